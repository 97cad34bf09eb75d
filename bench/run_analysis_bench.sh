#!/usr/bin/env bash
# bench/run_analysis_bench.sh — our decode + whole-song analysis against librosa's recipe, side by
# side on the same files, in one run:
#   1. cost versus song length: one song of 30 s, 1, 2, 4 and 10 min (OGG/Vorbis);
#   2. the synthesised corpus (bench_analysis gen: 24 songs, 30 s, all styles, 55..200 BPM);
#   3. the held-out corpus: General MIDI songs rendered with FluidSynth (tools/songs/make_corpus.py,
#      48 songs, OGG and MP3) — never used for tuning beyond its first half (see docs/notes/dsp.md).
# Timings: median of RUNS runs (default 5) with min/max, wall and CPU. librosa runs in the reference
# venv (tools/refvenv). Results and logs land in OUT (default /tmp/m2p-analysis-bench).
#
#   bench/run_analysis_bench.sh [BUILD_DIR] [OUT_DIR]      (env: RUNS=5 REF_RUNS=5 CORPUS_REF_RUNS=1)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUT=${2:-/tmp/m2p-analysis-bench}
RUNS=${RUNS:-5}
REF_RUNS=${REF_RUNS:-5}
CORPUS_REF_RUNS=${CORPUS_REF_RUNS:-1}
PY=${REFPY:-tools/refvenv/bin/python}
BENCH=$BUILD/bench/bench_analysis

[ -x "$PY" ] || { echo "run_analysis_bench: the reference venv $PY is missing" >&2; exit 1; }
command -v ffmpeg >/dev/null || { echo "run_analysis_bench: ffmpeg is needed to encode the songs" >&2; exit 1; }
cmake --build "$BUILD" --target bench_analysis >/dev/null
mkdir -p "$OUT"

# WAV → OGG/Vorbis (q4, stereo like a download) and rewrite truth.json to match.
to_ogg() {
    local dir=$1
    for w in "$dir"/*.wav; do
        ffmpeg -loglevel error -y -i "$w" -ac 2 -c:a libvorbis -q:a 4 "${w%.wav}.ogg" && rm -f "$w"
    done
    sed -i 's/\.wav"/.ogg"/' "$dir/truth.json"
}

if [ ! -f "$OUT/lengths/truth.json" ]; then
    mkdir -p "$OUT/lengths"
    "$BENCH" gen-lengths "$OUT/lengths"
    to_ogg "$OUT/lengths"
fi
if [ ! -f "$OUT/synth/truth.json" ]; then
    mkdir -p "$OUT/synth"
    "$BENCH" gen "$OUT/synth" --count 24 --seconds 30 --seed 3
    to_ogg "$OUT/synth"
fi
if [ ! -f "$OUT/corpus/truth.json" ]; then
    python3 tools/songs/make_corpus.py --out "$OUT/corpus" --count 48 --seed 1 >"$OUT/corpus.log"
fi

echo "machine: $(nproc) cores, $(uptime)"
for set in lengths synth corpus; do
    runs=$RUNS
    ref_runs=$REF_RUNS
    [ "$set" = corpus ] && ref_runs=$CORPUS_REF_RUNS
    [ "$set" = synth ] && ref_runs=$CORPUS_REF_RUNS
    echo "== $set: ours"
    "$BENCH" run "$OUT/$set/truth.json" --runs "$runs" --out "$OUT/$set-ours.json" | tee "$OUT/$set-ours.txt" | tail -1
    echo "== $set: librosa"
    "$PY" bench/analysis_reference.py "$OUT/$set/truth.json" --runs "$ref_runs" --out "$OUT/$set-ref.json" \
        >"$OUT/$set-ref.txt"
    tail -2 "$OUT/$set-ref.txt"
done
for set in lengths synth corpus; do
    python3 bench/analysis_compare.py "$set" "$OUT/$set-ours.json" "$OUT/$set-ref.json"
done
