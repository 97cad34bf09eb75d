#!/usr/bin/env bash
# scripts/run-bench.sh BUILD_DIR — `make bench`: every speed claim of Mus2Pic measured side by side
# against its reference (librosa, ffmpeg, diffusers/transformers on PyTorch), each section bounded to
# 2 minutes, a table printed per section, BENCHMARKS.md and docs/charts/*.png rewritten.
#
#   scripts/run-bench.sh build                       # the whole suite (~25 min on 2 cores)
#   ONLY=lcm,variations scripts/run-bench.sh build   # some sections; the report keeps the others' last results
#   REPORT_ONLY=1 scripts/run-bench.sh build         # rebuild BENCHMARKS.md and the charts from stored results
#
# Needs the reference venv tools/refvenv (torch, diffusers, librosa; matplotlib is installed into it
# if missing) — the benchmark harness and the references are Python, the product is not.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
PY=tools/refvenv/bin/python
RESULTS=${RESULTS:-$BUILD/bench-results}
MODEL=${M2P_BENCH_MODEL:-/tmp/m2p-mid-lcm}
export M2P_BENCH_MODEL=$MODEL

[ -x "$PY" ] || { echo "run-bench: the reference venv $PY is missing (scripts/install-deps.sh --test)" >&2; exit 1; }
mkdir -p "$RESULTS"
if [ -z "${REPORT_ONLY:-}" ]; then
    echo "== building the product and the benchmark programs ($BUILD)"
    cmake --build "$BUILD" --target mus2pic bench_decode bench_analysis bench_sonic bench_nn bench_lcm bench_batch \
        bench_clip_tokenizer || echo "run-bench: some benchmark programs do not build; their sections say so" >&2
    inc=$(sed -n 's/^OPENBLAS_INCLUDE:PATH=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true)
    cc -O2 ${inc:+-I"$inc"} bench/suite/sgemm_probe.c -lopenblas -o "$RESULTS/sgemm_probe" ||
        echo "run-bench: sgemm_probe does not compile" >&2
    "$PY" -c "import matplotlib" 2>/dev/null || "$PY" -m pip install -q matplotlib ||
        echo "run-bench: no matplotlib, no charts" >&2
    if [ ! -f "$MODEL/unet/config.json" ]; then
        echo "== building the mid-size random model in $MODEL (once, ~1 min)"
        timeout 600 "$PY" bench/suite/make_mid_model.py --out "$MODEL" || echo "run-bench: no model" >&2
    fi
    SMALL=${M2P_BENCH_SMALL_MODEL:-/tmp/m2p-small-lcm}
    if [ ! -f "$SMALL/unet/config.json" ]; then
        echo "== building the small random model in $SMALL (once, ~1 min)"
        timeout 600 "$PY" bench/suite/make_mid_model.py --small --out "$SMALL" || echo "run-bench: no small model" >&2
    fi
fi
args=(--build "$BUILD" --results "$RESULTS")
[ -n "${ONLY:-}" ] && args+=(--only "$ONLY")
[ -n "${REPORT_ONLY:-}" ] && args+=(--report-only)
exec "$PY" bench/suite/suite.py "${args[@]}"
