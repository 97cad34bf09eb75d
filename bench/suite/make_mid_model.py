#!/usr/bin/env python3
"""bench/suite/make_mid_model.py — a mid-size random LCM model for `make bench`.

Same block types and the same CLIP text encoder as the full-size SimianLuo/LCM_Dreamshaper_v7
architecture (tools/nn/make_fixtures.py), but the UNet and VAE at 1/5 and 1/4 of the channel widths,
so that one UNet step costs ~1/25 of the full model's FLOPs and every model section fits in 2 min on
a 2-core machine. Random weights, fp16 on disk (as a real download), outside git.

    tools/refvenv/bin/python bench/suite/make_mid_model.py [--out /tmp/m2p-mid-lcm]
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/m2p-mid-lcm")
    args = ap.parse_args()
    torch.set_num_threads(2)
    mf.build(args.out, MID_UNET, MID_VAE, MID_CLIP, torch.float16, {"text_encoder", "vae", "unet"}, seed=4321)
    print(f"mid-size random model in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
