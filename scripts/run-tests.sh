#!/usr/bin/env bash
# Runs the whole suite on a sanitizer build: unit, integration and fuzz-replay
# tests through CTest. Starts no services itself: tests that need one start
# their own on loopback (see tests/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-asan}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
ctest --test-dir "$build" --output-on-failure -j "${TEST_JOBS:-2}" --timeout 900
