#!/usr/bin/env python3
"""Score librosa on the held-out corpus: the reference figures Mus2Pic's own estimators are compared with.

Reads OUT/truth.json written by make_corpus.py, estimates each song's tempo (librosa.beat.beat_track)
and key (mean chroma_cqt correlated with the Krumhansl-Kessler profiles), and prints per song and in
total: tempo Acc1 (within 4 %), Acc2 (also at 2x, 1/2x, 3x, 1/3x), and the MIREX key score (1 exact,
0.5 fifth, 0.3 relative, 0.2 parallel).

Usage (the reference venv, never at run time):
  tools/refvenv/bin/python tools/songs/check_corpus.py [/tmp/m2p-corpus] [--json results.json]
"""
import argparse
import json
import os
import sys

import numpy as np

NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def mirex(key, minor, tkey, tminor):
    if key == tkey and minor == tminor:
        return 1.0
    if minor == tminor and (key - tkey) % 12 in (5, 7):
        return 0.5
    if not tminor and minor and key == (tkey + 9) % 12:
        return 0.3
    if tminor and not minor and key == (tkey + 3) % 12:
        return 0.3
    if key == tkey:
        return 0.2
    return 0.0


def estimate(path):
    import librosa

    y, sr = librosa.load(path, sr=22050, mono=True)
    tempo, _ = librosa.beat.beat_track(y=y, sr=sr)
    tempo = float(np.atleast_1d(tempo)[0])
    chroma = librosa.feature.chroma_cqt(y=y, sr=sr).mean(axis=1)
    best = (-2.0, 0, False)
    for minor, prof in ((False, KK_MAJOR), (True, KK_MINOR)):
        for k in range(12):
            r = float(np.corrcoef(np.roll(prof, k), chroma)[0, 1])
            if r > best[0]:
                best = (r, k, minor)
    return tempo, best[1], best[2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus", nargs="?", default="/tmp/m2p-corpus")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    with open(os.path.join(args.corpus, "truth.json")) as f:
        truth = json.load(f)
    acc1 = acc2 = 0
    key_total = 0.0
    rows = []
    for s in truth["songs"]:
        tempo, key, minor = estimate(os.path.join(args.corpus, s["file"]))
        r = tempo / s["tempo"]
        ok1 = abs(r - 1) < 0.04
        ok2 = ok1 or any(abs(r * m - 1) < 0.04 for m in (0.5, 2.0, 1 / 3.0, 3.0))
        k = mirex(key, minor, s["key_pc"], s["mode"] == "minor")
        acc1 += ok1
        acc2 += ok2
        key_total += k
        rows.append({"file": s["file"], "tempo": tempo, "key": NAMES[key], "mode": "minor" if minor else "major",
                     "tempo_ok1": ok1, "tempo_ok2": ok2, "key_score": k})
        print("%-11s %6.1f BPM -> %6.1f %s   %-2s %-5s -> %-2s %-5s %.1f" % (
            s["file"], s["tempo"], tempo, "ok " if ok1 else ("x2 " if ok2 else "BAD"), s["key"], s["mode"],
            NAMES[key], "minor" if minor else "major", k), flush=True)
    n = len(rows)
    print("librosa on %d songs: tempo Acc1 %d/%d (%.0f %%), Acc2 %d/%d (%.0f %%), key MIREX %.3f" % (
        n, acc1, n, 100.0 * acc1 / n, acc2, n, 100.0 * acc2 / n, key_total / n))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"songs": rows, "acc1": acc1 / n, "acc2": acc2 / n, "key_mirex": key_total / n}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
