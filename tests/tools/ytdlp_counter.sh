#!/bin/sh
# tests/tools/ytdlp_counter.sh — stands in for yt-dlp in the fetch tests:
# appends one line per run (its arguments) to $M2P_YTDLP_COUNT_FILE, then runs
# the real yt-dlp ($M2P_REAL_YTDLP) with the same arguments. Lets a test prove
# that a cache hit starts no process at all.
if [ -n "$M2P_YTDLP_COUNT_FILE" ]; then
  printf '%s\n' "$*" >> "$M2P_YTDLP_COUNT_FILE"
fi
exec "$M2P_REAL_YTDLP" "$@"
