#!/bin/sh
# tests/tools/fake_ytdlp.sh — a stand-in yt-dlp for metadata cases no loopback
# page can produce (live streams, playlists, YouTube argv): logs its
# arguments (one run per line) to $FAKE_LOG; `--version` prints
# $FAKE_VERSION (default 2025.01.01); with -o PATH it writes a few bytes there
# (a "download"); otherwise it prints the file $FAKE_JSON (the -J output) and
# exits with $FAKE_RC (default 0), printing $FAKE_STDERR to stderr. With
# $FAKE_LINGER set, a helper (sleep 20) outlives it holding its stdout open.
[ -n "$FAKE_LOG" ] && printf '%s\n' "$*" >> "$FAKE_LOG"
for a in "$@"; do
  if [ "$a" = "--version" ]; then echo "${FAKE_VERSION:-2025.01.01}"; exit 0; fi
done
out=""; prev=""
for a in "$@"; do
  if [ "$prev" = "-o" ]; then out="$a"; fi
  prev="$a"
done
if [ -n "$out" ]; then
  printf 'fake audio bytes' > "$out"
  echo "M2P 16 16 NA finished"
  exit 0
fi
[ -n "$FAKE_LINGER" ] && sleep 20 &
[ -n "$FAKE_STDERR" ] && printf '%s\n' "$FAKE_STDERR" >&2
[ -n "$FAKE_JSON" ] && cat "$FAKE_JSON"
exit "${FAKE_RC:-0}"
