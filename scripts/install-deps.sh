#!/usr/bin/env bash
# Installs what Mus2Pic needs to build, test and run, from Debian's packages
# (and a current yt-dlp from PyPI into tools/, since Debian 12's 2023 build no
# longer works with YouTube). Idempotent and quiet when everything is there.
#   scripts/install-deps.sh          build + run dependencies
#   scripts/install-deps.sh --test   also what the test suite needs
#   scripts/install-deps.sh --services  PostgreSQL, Redis and curl (make scale-demo)
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake ninja-build pkg-config
      libavformat-dev libavcodec-dev libswresample-dev libavutil-dev
      libcairo2-dev libpango1.0-dev fonts-dejavu-core fonts-droid-fallback
      libopenblas-openmp-dev libsqlite3-dev libpq-dev libhiredis-dev
      libcurl4-openssl-dev libmicrohttpd-dev libwslay-dev libjansson-dev
      libpng-dev libwebp-dev zlib1g-dev libcmocka-dev
      libunistring-dev
      python3 python3-venv)
if [[ "${1:-}" == "--test" || "${1:-}" == "--services" ]]; then
  PKGS+=(redis-server postgresql curl)
fi
if [[ "${1:-}" == "--test" ]]; then
  PKGS+=(clang libclang-rt-14-dev clang-format clang-tidy valgrind ffmpeg)
  # the held-out GM song corpus of the accuracy benchmark (tools/songs/make_corpus.py)
  PKGS+=(fluidsynth musescore-general-soundfont-small)
  # clang's OpenMP runtime and omp.h: `make fuzz` builds the OpenMP modules (nn, dsp) with clang
  PKGS+=(libomp-14-dev)
  # the browser tests (tests/browser, Playwright driving Debian's chromium); node/npm from Debian
  # only when none is installed (a NodeSource nodejs package already ships npm)
  PKGS+=(chromium)
  if ! command -v npm >/dev/null 2>&1; then
    PKGS+=(nodejs npm)
  fi
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A current yt-dlp in tools/ (its own venv), unless one >= 2024.07 is already there, with deno
# beside it: YouTube now needs a JavaScript runtime, and yt-dlp finds it on PATH (Mus2Pic puts
# tools/bin first on yt-dlp's PATH). Both come from PyPI.
need_ytdlp=1
if [[ -x tools/bin/yt-dlp && -x tools/bin/deno ]]; then
  v=$(tools/bin/yt-dlp --version 2>/dev/null || echo 0)
  [[ "$v" > "2024.07" ]] && need_ytdlp=0
fi
if ((need_ytdlp)); then
  echo "install-deps: installing a current yt-dlp (and deno) into tools/"
  rm -rf tools/venv
  python3 -m venv tools/venv
  tools/venv/bin/pip install -q --disable-pip-version-check -U yt-dlp deno
  mkdir -p tools/bin
  ln -sf ../venv/bin/yt-dlp tools/bin/yt-dlp
  ln -sf ../venv/bin/deno tools/bin/deno
fi
