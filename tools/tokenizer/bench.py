#!/usr/bin/env python3
"""Side-by-side timing of the C CLIP tokenizer and the Python references, in one run.

  tools/refvenv/bin/python tools/tokenizer/bench.py BUILD/bench/bench_clip_tokenizer [ROUNDS]

Texts: every case of tests/fixtures/tokenizer/cases.json. Reference 1: Hugging Face
transformers.CLIPTokenizer (Rust `tokenizers` backend; what diffusers uses), loaded from a
vocab.json/merges.txt pair; reference 2: open_clip's pure-Python SimpleTokenizer. Load time is
the best of 5 (C: best of 10); encode time is per text, padded/truncated to 77. The C bench runs
before and after the Python timings and the better of its two runs is used.
"""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures  # noqa: E402  (builds the vocab.json/merges.txt pair)


def run_c(binary, cases, rounds):
    out = subprocess.run([binary, cases, str(rounds)], check=True, capture_output=True, text=True).stdout
    return {k: float(v) for k, v in (line.split() for line in out.splitlines())}


def main():
    binary = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    cases_path = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "cases.json")
    texts = [c["text"] for c in json.load(open(cases_path, encoding="utf-8"))["cases"]]

    c1 = run_c(binary, cases_path, rounds)

    from transformers import CLIPTokenizer
    folder = "/tmp/m2p-clip-bench"
    make_fixtures.write_pair(folder, 48894)
    vocab = json.load(open(os.path.join(folder, "vocab.json"), encoding="utf-8"))
    load = []
    for _ in range(5):
        t0 = time.perf_counter()
        merges = [tuple(l.split()) for l in open(os.path.join(folder, "merges.txt"), encoding="utf-8").read().split("\n")[1:] if l]
        v = json.load(open(os.path.join(folder, "vocab.json"), encoding="utf-8"))
        hf = CLIPTokenizer(vocab=v, merges=merges)
        load.append(time.perf_counter() - t0)
    hf_load = min(load)
    py_rounds = max(1, rounds // 10)
    t0 = time.perf_counter()
    for _ in range(py_rounds):
        for t in texts:
            hf(t, padding="max_length", max_length=77, truncation=True)
    hf_enc = (time.perf_counter() - t0) / (py_rounds * len(texts))

    from open_clip.tokenizer import SimpleTokenizer
    load = []
    for _ in range(3):
        t0 = time.perf_counter()
        oc = SimpleTokenizer()
        load.append(time.perf_counter() - t0)
    oc_load = min(load)
    t0 = time.perf_counter()
    for _ in range(py_rounds):
        oc(texts)
    oc_enc = (time.perf_counter() - t0) / (py_rounds * len(texts))

    c2 = run_c(binary, cases_path, rounds)
    c_load = min(c1["load_ms"], c2["load_ms"]) / 1e3
    c_enc = min(c1["tokenize_us"], c2["tokenize_us"]) / 1e6
    c_build = min(c1["prompt_build_us"], c2["prompt_build_us"]) / 1e6
    del vocab

    print(f"texts: {len(texts)} (tests/fixtures/tokenizer/cases.json)")
    print(f"{'':34s} {'load':>10s} {'per text':>10s}")
    print(f"{'C m2p_clip_tokenizer (embedded)':34s} {c_load*1e3:8.1f}ms {c_enc*1e6:8.1f}us")
    print(f"{'HF CLIPTokenizer (tokenizers)':34s} {hf_load*1e3:8.1f}ms {hf_enc*1e6:8.1f}us")
    print(f"{'open_clip SimpleTokenizer':34s} {oc_load*1e3:8.1f}ms {oc_enc*1e6:8.1f}us")
    print(f"ratio load   HF/C {hf_load / c_load:6.1f}x   open_clip/C {oc_load / c_load:6.1f}x")
    print(f"ratio encode HF/C {hf_enc / c_enc:6.1f}x   open_clip/C {oc_enc / c_enc:6.1f}x")
    print(f"C load, CPU time of the process (not inflated by other load): {min(c1['load_cpu_ms'], c2['load_cpu_ms']):.1f}ms")
    print(f"C whole prompt build (presets + fragments + exact count): {c_build*1e6:.1f}us")


if __name__ == "__main__":
    main()
