#!/usr/bin/env python3
"""tools/nn/bench_reference.py — our CLIP text encoder and VAE decoder against diffusers /
transformers on PyTorch CPU, on the same full-size weights and the same inputs, side by side in
one run (runs alternate between the two engines so that load from other processes hits both).

    tools/refvenv/bin/python tools/nn/make_fixtures.py full --parts vae,text_encoder   # once
    cmake -S . -B build-nn-rel -G Ninja -DCMAKE_BUILD_TYPE=Release && \
        cmake --build build-nn-rel --target bench_nn
    tools/refvenv/bin/python tools/nn/bench_reference.py --bench build-nn-rel/bench/bench_nn \
        --model /tmp/m2p-full-lcm --size 512 --runs 3

Prints, per network: median seconds of each engine, the ratio ours / PyTorch (≤ 1.0 means we are
at least as fast), GFLOP/s, and the largest absolute output difference.
Reference only: never run by the tests.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="/tmp/m2p-full-lcm")
    ap.add_argument("--bench", default="build-nn-rel/bench/bench_nn")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-clip", action="store_true")
    ap.add_argument("--skip-vae", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))

    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTokenizer

    tmp = tempfile.mkdtemp(prefix="m2p-nnbench-")
    tok = CLIPTokenizer(os.path.join(args.model, "tokenizer", "vocab.json"),
                        os.path.join(args.model, "tokenizer", "merges.txt"), pad_token="<|endoftext|>",
                        model_max_length=77)
    ids = tok(["a brooding synthwave poster, neon city at night, 124 BPM, A minor"], padding="max_length",
              max_length=77, truncation=True, return_tensors="pt").input_ids
    ids_path = os.path.join(tmp, "ids.i32")
    ids.to(torch.int32).numpy().tofile(ids_path)
    g = torch.Generator().manual_seed(2024)
    h = w = args.size // 8
    lat = torch.randn((1, 4, h, w), generator=g)
    lat_path = os.path.join(tmp, "lat.f32")
    lat.numpy().astype(np.float32).tofile(lat_path)

    te = vae = None
    if not args.skip_clip:
        te = CLIPTextModel.from_pretrained(os.path.join(args.model, "text_encoder"), torch_dtype=torch.float32).eval()
    if not args.skip_vae:
        vae = AutoencoderKL.from_pretrained(os.path.join(args.model, "vae"), torch_dtype=torch.float32).eval()

    def torch_clip():
        with torch.no_grad():
            return te(ids).last_hidden_state

    def torch_vae():
        with torch.no_grad():
            return vae.decode(lat / vae.config.scaling_factor).sample

    # Warm-up of the PyTorch side (ours warms up inside each bench_nn call).
    ref_clip = torch_clip() if te is not None else None
    ref_vae = torch_vae() if vae is not None else None

    ours = {"clip": [], "vae": []}
    theirs = {"clip": [], "vae": []}
    sgemm = []
    last = None
    for r in range(args.runs):
        cmd = [args.bench, args.model, "--size", str(args.size), "--runs", "1", "--latents", lat_path, "--ids",
               ids_path, "--vae-out", os.path.join(tmp, "vae.f32"), "--clip-out", os.path.join(tmp, "clip.f32")]
        if args.skip_clip:
            cmd.append("--skip-clip")
        if args.skip_vae:
            cmd.append("--skip-vae")
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        last = json.loads(out.stdout)
        if not args.skip_clip:
            ours["clip"].append(last["clip_s"][0])
            t0 = time.perf_counter()
            torch_clip()
            theirs["clip"].append(time.perf_counter() - t0)
        if not args.skip_vae:
            ours["vae"].append(last["vae_s"][0])
            t0 = time.perf_counter()
            torch_vae()
            theirs["vae"].append(time.perf_counter() - t0)
        sgemm.append(last["sgemm2048_gflops"])
        print(f"run {r + 1}/{args.runs}: ours {last.get('clip_s', ['-'])[0]} / {last.get('vae_s', ['-'])[0]} s, "
              f"torch {theirs['clip'][-1] if theirs['clip'] else '-'} / {theirs['vae'][-1] if theirs['vae'] else '-'} s",
              file=sys.stderr)

    result = {"size": args.size, "runs": args.runs, "threads": args.threads, "torch": torch.__version__,
              "sgemm2048_gflops_median": statistics.median(sgemm)}
    if not args.skip_clip:
        got = np.fromfile(os.path.join(tmp, "clip.f32"), dtype=np.float32).reshape(ref_clip.shape)
        ref = ref_clip.numpy()
        result["clip"] = {
            "ours_s": statistics.median(ours["clip"]), "torch_s": statistics.median(theirs["clip"]),
            "ratio": statistics.median(ours["clip"]) / statistics.median(theirs["clip"]),
            "gmacs": last["clip_gmacs"], "max_abs_diff": float(np.abs(got - ref).max()),
            "max_abs_ref": float(np.abs(ref).max()), "all_ours": ours["clip"], "all_torch": theirs["clip"]}
    if not args.skip_vae:
        got = np.fromfile(os.path.join(tmp, "vae.f32"), dtype=np.float32).reshape(ref_vae.shape)
        ref = ref_vae.numpy()
        med = statistics.median(ours["vae"])
        result["vae"] = {
            "ours_s": med, "torch_s": statistics.median(theirs["vae"]),
            "ratio": med / statistics.median(theirs["vae"]), "gmacs": last["vae_gmacs"],
            "ours_gflops": 2 * last["vae_gmacs"] / med,
            "torch_gflops": 2 * last["vae_gmacs"] / statistics.median(theirs["vae"]),
            "max_abs_diff": float(np.abs(got - ref).max()), "max_abs_ref": float(np.abs(ref).max()),
            "all_ours": ours["vae"], "all_torch": theirs["vae"]}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
