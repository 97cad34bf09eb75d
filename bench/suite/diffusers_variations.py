#!/usr/bin/env python3
"""bench/suite/diffusers_variations.py — the Python way, for `make bench`: diffusers'
LatentConsistencyModelPipeline on the CPU (fp32), on the same random weights the C engine uses.

Measures, in one process, interleaved round by round:
  * "load per request": from_pretrained + one image, once (what a script that loads the model for
    each request pays on every request);
  * warm pipeline, N images batched (num_images_per_prompt=N), N in --ns, rounds interleaving the N
    (sequential = N × the N=1 median, as the suite does for the C engine).
Prints one JSON object: {"load_s": [...], "first_image_s": [...], "batch": {N: [s...]}, ...}.

    tools/refvenv/bin/python bench/suite/diffusers_variations.py --model /tmp/m2p-mid-lcm \
        --size 256 --steps 4 --ns 1,2,4 --rounds 3 [--deadline-s 100]
"""
import argparse
import json
import resource
import sys
import time

import torch

PROMPT = "a neon city at night, synthwave poster"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--ns", default="1,2,4")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--deadline-s", type=float, default=100.0)
    args = ap.parse_args()
    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    from diffusers import LatentConsistencyModelPipeline

    ns = [int(x) for x in args.ns.split(",")]

    def load():
        p = LatentConsistencyModelPipeline.from_pretrained(args.model, torch_dtype=torch.float32,
                                                           safety_checker=None, requires_safety_checker=False)
        p.set_progress_bar_config(disable=True)
        return p

    def gen(p, n, seed):
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            p(PROMPT, num_inference_steps=args.steps, guidance_scale=8.0, height=args.size, width=args.size,
              num_images_per_prompt=n, generator=g, output_type="np")

    res = {"torch": torch.__version__, "threads": args.threads, "size": args.size, "steps": args.steps,
           "load_s": [], "first_image_s": [], "batch": {str(n): [] for n in ns},
           "rounds_done": 0}
    # the Python way: a fresh pipeline per request
    t0 = time.perf_counter()
    pipe = load()
    t1 = time.perf_counter()
    gen(pipe, 1, 1)
    t2 = time.perf_counter()
    res["load_s"].append(t1 - t0)
    res["first_image_s"].append(t2 - t1)
    for r in range(args.rounds):
        for n in ns:
            if time.perf_counter() - t_start > args.deadline_s:
                break
            t0 = time.perf_counter()
            gen(pipe, n, 10 + r)
            res["batch"][str(n)].append(time.perf_counter() - t0)
        else:
            res["rounds_done"] = r + 1
            continue
        break
    res["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(res))


if __name__ == "__main__":
    sys.exit(main())
