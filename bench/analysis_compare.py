#!/usr/bin/env python3
"""Sets bench_analysis results beside analysis_reference.py results for the same TRUTH.json.

  python3 bench/analysis_compare.py TITLE OURS.json REF.json

Prints, per song and overall, the wall-time ratio librosa / ours (librosa on the first 30 s and on
the whole song; ours always on the whole song): median over the songs of each song's median-of-runs
ratio, with min and max; the CPU-time ratio (the honest figure when other programs share the cores);
and the accuracy of each (tempo Acc1, Acc2, MIREX key score). Standard library only.
"""
import json
import statistics
import sys


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    title, ours_path, ref_path = sys.argv[1:]
    ours = {r["file"]: r for r in json.load(open(ours_path))["results"]}
    ref = json.load(open(ref_path))
    rows = [r for r in ref["results"] if r["file"] in ours]
    modes = [m for m in ("30", "full") if rows and m in rows[0]]
    print(f"\n== {title}: {len(rows)} songs (ours: {json.load(open(ours_path))['runs']} runs each, "
          f"librosa {ref.get('librosa', '?')}: {ref['runs']} runs each) ==")
    hdr = f"{'song':14} {'secs':>6} {'ours s':>8} {'ours cpu':>8}"
    for m in modes:
        hdr += f" {'lib' + m + ' s':>9} {'ratio':>6}"
    print(hdr)
    ratios = {m: [] for m in modes}
    cpu_ratios = {m: [] for m in modes}
    for r in rows:
        o = ours[r["file"]]
        line = f"{r['file']:14} {o['duration_s']:6.1f} {o['wall_median_s']:8.3f} {o['cpu_median_s']:8.3f}"
        for m in modes:
            q = r[m]["wall_median_s"] / o["wall_median_s"]
            ratios[m].append(q)
            cpu_ratios[m].append(r[m]["cpu_median_s"] / o["cpu_median_s"])
            line += f" {r[m]['wall_median_s']:9.3f} {q:6.1f}x"
        print(line)
    for m in modes:
        what = "first 30 s" if m == "30" else "whole song"
        v, c = ratios[m], cpu_ratios[m]
        print(f"speed: librosa ({what}) / ours (whole song): wall median {statistics.median(v):.1f}x "
              f"(min {min(v):.1f}x, max {max(v):.1f}x); CPU median {statistics.median(c):.1f}x")
    n = len(rows)
    if n:
        a1 = sum(ours[r["file"]]["acc1"] for r in rows) / n
        a2 = sum(ours[r["file"]]["acc2"] for r in rows) / n
        ks = sum(ours[r["file"]]["key_score"] for r in rows) / n
        print(f"accuracy ours (whole song):      Acc1 {a1:.3f}  Acc2 {a2:.3f}  key {ks:.3f}")
        for m in modes:
            what = "first 30 s" if m == "30" else "whole song"
            a1 = sum(r[m]["acc1"] for r in rows) / n
            a2 = sum(r[m]["acc2"] for r in rows) / n
            ks = sum(r[m]["key_score"] for r in rows) / n
            print(f"accuracy librosa ({what:10}): Acc1 {a1:.3f}  Acc2 {a2:.3f}  key {ks:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
