#!/usr/bin/env bash
# `make run`: the main job on embedded defaults. Synthesises the demo song
# (once), makes posters from it with the default renderer (auto: lcm when model
# weights are there, else the instant procedural renderer) and says where they
# are, then starts the web app (SQLite, in-process workers) and prints its URL.
# Ctrl-C stops the server; jobs still queued run again at the next start.
set -euo pipefail
bin=${1:-build/mus2pic}
data=${MUS2PIC_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/mus2pic}
mkdir -p "$data/demo"
song="$data/demo/mus2pic-demo.wav"
if [[ ! -s "$song" ]]; then
  "$bin" demo-song "$song"
fi
out="$data/demo/posters"
"$bin" make "$song" --out "$out" --seed 2026
echo
echo "Posters of the demo song are in $out"
echo "Starting the web app (Ctrl-C to stop)..."
exec "$bin" serve ${MUS2PIC_RUN_ARGS:-}
