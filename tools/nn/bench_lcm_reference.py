#!/usr/bin/env python3
"""tools/nn/bench_lcm_reference.py — the PyTorch (diffusers, CPU, fp32) side of bench/bench_lcm.c.

Never run by the tests. bench_lcm starts it first (so the two never hold their models in memory
at the same time), then runs the C engine on the very inputs written here and prints both side
by side. It can also be run alone:

    tools/refvenv/bin/python tools/nn/bench_lcm_reference.py --model /tmp/m2p-full-lcm \
        --out /tmp/m2p-bench-lcm-ref [--threads 2] [--quick]

Writes <out>.safetensors (F32): latents [1,4,64,64], latents4 [4,4,64,64], context [1,77,768],
cond [1,256] (guidance embedding of 8), timestep [1] (999), out [1,4,64,64] (UNet output for
latents), out4 [4,4,64,64]; and <out>.json with the timings (seconds) and peak memory (bytes):
  load_s, step1_s (min of 2), step1_first_s, step4_s, image1_s (the whole 4-step pipeline, one
  image, 512²), batch4_s (four images in one call), peak_rss.
--quick skips the two whole-pipeline timings.
"""
import argparse
import json
import os
import resource
import sys
import time

import torch

PROMPT = "a neon city at night, synthwave poster"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="/tmp/m2p-full-lcm")
    ap.add_argument("--out", default="/tmp/m2p-bench-lcm-ref")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from diffusers import LatentConsistencyModelPipeline
    from safetensors.torch import save_file

    res = {"threads": args.threads, "torch": torch.__version__}
    t0 = time.perf_counter()
    pipe = LatentConsistencyModelPipeline.from_pretrained(args.model, torch_dtype=torch.float32, safety_checker=None,
                                                          requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    res["load_s"] = time.perf_counter() - t0
    unet = pipe.unet.eval()
    lat_side = args.size // 8
    g = torch.Generator().manual_seed(2024)
    latents = torch.randn((1, 4, lat_side, lat_side), generator=g)
    latents4 = torch.randn((4, 4, lat_side, lat_side), generator=g)
    context = torch.randn((1, 77, unet.config.cross_attention_dim), generator=g)
    cond = pipe.get_guidance_scale_embedding(torch.tensor([8.0 - 1.0]), embedding_dim=unet.config.time_cond_proj_dim)
    t = torch.tensor([999])
    times = []
    with torch.inference_mode():
        for _ in range(2):
            t1 = time.perf_counter()
            out = unet(latents, t, encoder_hidden_states=context, timestep_cond=cond).sample
            times.append(time.perf_counter() - t1)
        res["step1_first_s"] = times[0]
        res["step1_s"] = min(times)
        print(f"torch: UNet step batch 1: {times}", file=sys.stderr)
        t1 = time.perf_counter()
        out4 = unet(latents4, t.repeat(4), encoder_hidden_states=context.repeat(4, 1, 1),
                    timestep_cond=cond.repeat(4, 1)).sample
        res["step4_s"] = time.perf_counter() - t1
        print(f"torch: UNet step batch 4: {res['step4_s']:.2f} s", file=sys.stderr)
        if not args.quick:
            for n, key in ((1, "image1_s"), (4, "batch4_s")):
                t1 = time.perf_counter()
                pipe(PROMPT, height=args.size, width=args.size, num_inference_steps=4, guidance_scale=8.0,
                     num_images_per_prompt=n, output_type="np")
                res[key] = time.perf_counter() - t1
                print(f"torch: pipeline {n} image(s): {res[key]:.2f} s", file=sys.stderr)
    res["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    save_file({"latents": latents, "latents4": latents4, "context": context, "cond": cond.float().contiguous(),
               "timestep": t.float(), "out": out.contiguous(), "out4": out4.contiguous()}, args.out + ".safetensors")
    with open(args.out + ".json", "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res), file=sys.stderr)


if __name__ == "__main__":
    main()
