#!/usr/bin/env bash
# `make run`: the main job on embedded defaults — synthesise the demo song
# (once), then make posters from it with the default renderer (auto: lcm when
# model weights are there, else the instant procedural renderer).
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
echo "Posters are in $out"
