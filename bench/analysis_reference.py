#!/usr/bin/env python3
"""The reference recipe the old app used, timed and graded on the same songs as bench_analysis.

For every song of TRUTH.json: librosa.load (22050 Hz mono) + librosa.beat.beat_track + a key estimate
from the mean chroma (librosa.feature.chroma_cqt) correlated with the 24 rotations of the
Krumhansl-Kessler profiles; once on the first 30 s (what the old app analysed) and once on the whole
song. Timing: wall and CPU seconds, median/min/max over --runs runs (after one warm-up run that pays
numba's compilation). Accuracy: tempo Acc1 (+-4 %), Acc2 (x2, x1/2, x3, x1/3), MIREX key score.

Runs in the reference venv only (never in `make test`):
  tools/refvenv/bin/python bench/analysis_reference.py TRUTH.json [--runs 5] [--out ref.json] [--modes 30,full]
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import librosa

NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def estimate_key(chroma_mean):
    best = (-2.0, 0, "major")
    for tonic in range(12):
        for mode, prof in (("major", KK_MAJOR), ("minor", KK_MINOR)):
            r = np.corrcoef(chroma_mean, np.roll(prof, tonic))[0, 1]
            if r > best[0]:
                best = (r, tonic, mode)
    return NAMES[best[1]], best[2]


def recipe(path, duration):
    y, sr = librosa.load(path, sr=22050, mono=True, duration=duration)
    tempo, _beats = librosa.beat.beat_track(y=y, sr=sr)
    chroma = librosa.feature.chroma_cqt(y=y, sr=sr)
    key, mode = estimate_key(chroma.mean(axis=1))
    return float(np.atleast_1d(tempo)[0]), key, mode, len(y) / sr


def mirex(key, mode, tkey, tmode):
    k, t = NAMES.index(key), NAMES.index(tkey)
    if k == t and mode == tmode:
        return 1.0
    if mode == tmode and k in ((t + 7) % 12, (t + 5) % 12):
        return 0.5
    if mode != tmode:
        if tmode == "major" and k == (t + 9) % 12:
            return 0.3
        if tmode == "minor" and k == (t + 3) % 12:
            return 0.3
        if k == t:
            return 0.2
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("truth")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out")
    ap.add_argument("--modes", default="30,full", help="comma list of 30 (first 30 s) and full")
    args = ap.parse_args()
    truth = json.load(open(args.truth))
    base = os.path.dirname(os.path.abspath(args.truth))
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    songs = truth["songs"]
    # warm-up (numba compilation, caches), not timed
    recipe(os.path.join(base, songs[0]["file"]), 5.0)
    out = {"tool": "analysis_reference.py", "librosa": librosa.__version__, "runs": args.runs, "results": []}
    totals = {m: {"n": 0, "acc1": 0, "acc2": 0, "key": 0.0} for m in modes}
    for s in songs:
        path = os.path.join(base, s["file"])
        row = {"file": s["file"], "true_tempo": s["tempo"]}
        for m in modes:
            dur = 30.0 if m == "30" else None
            walls, cpus = [], []
            res = None
            for _ in range(args.runs):
                w0, c0 = time.perf_counter(), time.process_time()
                res = recipe(path, dur)
                walls.append(time.perf_counter() - w0)
                cpus.append(time.process_time() - c0)
            tempo, key, mode, seconds = res
            r = tempo / s["tempo"] if s["tempo"] else 0.0
            ok1 = abs(r - 1) < 0.04
            ok2 = ok1 or any(abs(r * f - 1) < 0.04 for f in (0.5, 2.0, 1 / 3, 3.0))
            ks = mirex(key, mode, s["key"], s["mode"])
            t = totals[m]
            t["n"] += 1
            t["acc1"] += ok1
            t["acc2"] += ok2
            t["key"] += ks
            row[m] = {"wall_median_s": statistics.median(walls), "wall_min_s": min(walls), "wall_max_s": max(walls),
                      "cpu_median_s": statistics.median(cpus), "tempo": tempo, "key": key, "mode": mode,
                      "seconds": seconds, "acc1": ok1, "acc2": ok2, "key_score": ks}
            print(f"{s['file']:14} {m:>4}: tempo {s['tempo']:6.1f} -> {tempo:6.1f}{' ' if ok1 else ('o' if ok2 else 'x')}"
                  f"  key {s['key']} {s['mode']} -> {key} {mode} ({ks:.1f})  wall {statistics.median(walls):.3f} s",
                  flush=True)
        out["results"].append(row)
    for m in modes:
        t = totals[m]
        if t["n"]:
            print(f"librosa ({'first 30 s' if m == '30' else 'whole song'}): {t['n']} songs, Acc1 {t['acc1'] / t['n']:.3f}, "
                  f"Acc2 {t['acc2'] / t['n']:.3f}, MIREX key score {t['key'] / t['n']:.3f}")
    if args.out:
        json.dump(out, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    sys.exit(main())
