#!/usr/bin/env python3
"""bench/suite/make_mid_model.py — a mid-size random LCM model for `make bench`.

Same block types and the same CLIP text encoder as the full-size SimianLuo/LCM_Dreamshaper_v7
architecture (tools/nn/make_fixtures.py), but the UNet and VAE at 1/5 and 1/4 of the channel widths,
so that one UNet step costs ~1/25 of the full model's FLOPs and every model section fits in 2 min on
a 2-core machine. Random weights, fp16 on disk (as a real download), outside git.

    tools/refvenv/bin/python bench/suite/make_mid_model.py [--out /tmp/m2p-mid-lcm] [--small]
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "nn"))

import torch  # noqa: E402
import make_fixtures as mf  # noqa: E402

MID_UNET = dict(mf.FULL_UNET, block_out_channels=(64, 128, 256, 256), attention_head_dim=8)
MID_VAE = dict(mf.FULL_VAE, block_out_channels=(32, 64, 128, 128))
MID_CLIP = dict(mf.FULL_CLIP)
# --small: UNet at 1/10 and VAE at 1/4–1/8 of the widths, for the sections that run the whole CLI
# several times (one mid-size 128² image costs ~10 CPU seconds, ~40 s of wall time under load 18).
SMALL_UNET = dict(mf.FULL_UNET, block_out_channels=(32, 64, 128, 128), attention_head_dim=8)
SMALL_VAE = dict(mf.FULL_VAE, block_out_channels=(32, 32, 64, 64))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/m2p-mid-lcm")
    ap.add_argument("--small", action="store_true", help="the small variant (default out /tmp/m2p-small-lcm)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.small:
        out = args.out if args.out != "/tmp/m2p-mid-lcm" else "/tmp/m2p-small-lcm"
        mf.build(out, SMALL_UNET, SMALL_VAE, MID_CLIP, torch.float16, {"text_encoder", "vae", "unet"}, seed=4321)
        print(f"small random model in {out}", file=sys.stderr)
        return
    mf.build(args.out, MID_UNET, MID_VAE, MID_CLIP, torch.float16, {"text_encoder", "vae", "unet"}, seed=4321)
    print(f"mid-size random model in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
