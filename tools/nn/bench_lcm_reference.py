#!/usr/bin/env python3
"""tools/nn/bench_lcm_reference.py — the PyTorch (diffusers, CPU, fp32) side of bench/bench_lcm.c.

Never run by the tests. bench_lcm starts it first (so the two never hold their models in memory
at the same time), then runs the C engine on the very inputs written here and prints both side
by side. It can also be run alone:

    tools/refvenv/bin/python tools/nn/bench_lcm_reference.py --model /tmp/m2p-full-lcm \
        --out /tmp/m2p-bench-lcm-ref [--threads 2] [--quick]

Writes <out>.safetensors (F32): latents [1,4,64,64], latents4 [4,4,64,64], context [1,77,768],
cond [1,256] (guidance embedding of 8), timestep [1] (999), out [1,4,64,64] (UNet output for
latents), out4 [4,4,64,64], vae_out [1,3,512,512] (VAE decode of latents); and <out>.json with the
timings (wall seconds, and *_cpu_s: CPU seconds of all threads) and peak memory (bytes):
  load_s, step1_first_s, step1_s (second call), step4_s, text_s, vae1_s, peak_rss.
A whole image costs text + 4 steps + decode; bench_lcm composes per-image and per-batch figures
from these parts (running whole pipelines at 512² takes too long on a shared 2-core machine).
--quick skips the VAE decode.
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
    ids = pipe.tokenizer(PROMPT, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    times = []
    cpu = []

    def timed(fn):
        w0, c0 = time.perf_counter(), time.process_time()
        r = fn()
        return r, time.perf_counter() - w0, time.process_time() - c0

    with torch.inference_mode():
        for _ in range(2):
            out, w, c = timed(lambda: unet(latents, t, encoder_hidden_states=context, timestep_cond=cond).sample)
            times.append(w)
            cpu.append(c)
        res["step1_first_s"], res["step1_s"] = times[0], times[1]
        res["step1_cpu_s"] = cpu[1]
        print(f"torch: UNet step batch 1: {times} s wall, {cpu} s cpu", file=sys.stderr)
        out4, res["step4_s"], res["step4_cpu_s"] = timed(
            lambda: unet(latents4, t.repeat(4), encoder_hidden_states=context.repeat(4, 1, 1),
                         timestep_cond=cond.repeat(4, 1)).sample)
        print(f"torch: UNet step batch 4: {res['step4_s']:.2f} s", file=sys.stderr)
        _, res["text_s"], res["text_cpu_s"] = timed(lambda: pipe.text_encoder(ids)[0])
        vae_out = None
        if not args.quick:
            vae_out, res["vae1_s"], res["vae1_cpu_s"] = timed(
                lambda: pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample)
            print(f"torch: VAE decode 1 image: {res['vae1_s']:.2f} s", file=sys.stderr)
    res["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tensors = {"latents": latents, "latents4": latents4, "context": context, "cond": cond.float().contiguous(),
               "timestep": t.float(), "out": out.contiguous(), "out4": out4.contiguous()}
    if vae_out is not None:
        tensors["vae_out"] = vae_out.contiguous()
    save_file(tensors, args.out + ".safetensors")
    with open(args.out + ".json", "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res), file=sys.stderr)


if __name__ == "__main__":
    main()
