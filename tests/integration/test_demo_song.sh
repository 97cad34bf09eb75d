#!/usr/bin/env bash
# tests/integration/test_demo_song.sh — `mus2pic demo-song`: writes a deterministic WAV of the
# asked length, refuses bad options with exit 2 and one line, fails with exit 1 when it cannot write.
set -u
M="${MUS2PIC:?MUS2PIC must name the binary}"
T=$(mktemp -d /tmp/m2p-test-demo-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

out=$("$M" demo-song "$T/a.wav" --seconds 6 --tempo 100 --key C --mode major --style piano --seed 3) \
  || fail "demo-song exited $?"
echo "$out"
[[ "$out" == *"100 BPM, C major, piano, seed 3"* ]] || fail "summary line: $out"
[[ $(head -c 4 "$T/a.wav") == "RIFF" ]] || fail "not a RIFF file"
[[ $(head -c 16 "$T/a.wav" | tail -c 8) == "WAVEfmt " ]] || fail "not a WAVE file"
size=$(stat -c %s "$T/a.wav")
(( size == 44 + 6 * 44100 * 2 )) || fail "size $size, want $((44 + 6 * 44100 * 2))"

# the same options give the same bytes; another seed another song
"$M" demo-song "$T/b.wav" --seconds 6 --tempo 100 --key C --mode major --style piano --seed 3 >/dev/null || fail "second run"
cmp -s "$T/a.wav" "$T/b.wav" || fail "not deterministic"
"$M" demo-song "$T/c.wav" --seconds 6 --tempo 100 --key C --mode major --style piano --seed 4 >/dev/null || fail "seed 4"
cmp -s "$T/a.wav" "$T/c.wav" && fail "seed makes no difference"
"$M" demo-song "$T/f.wav" --seconds 2 --rate 22050 --float >/dev/null || fail "--float"
(( $(stat -c %s "$T/f.wav") == 58 + 2 * 22050 * 4 )) || fail "float WAV size"

# bad options: exit 2, one line naming the problem
check_usage() {
  local want="$1"; shift
  "$M" demo-song "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  (( rc == 2 )) || fail "demo-song $* exited $rc, want 2"
  (( $(wc -l <"$T/err") == 1 )) || fail "demo-song $*: want one line, got: $(cat "$T/err")"
  grep -q -- "$want" "$T/err" || fail "demo-song $*: '$want' not in: $(cat "$T/err")"
}
check_usage "tempo" "$T/x.wav" --tempo 500
check_usage "tempo" "$T/x.wav" --tempo fast
check_usage "key" "$T/x.wav" --key H
check_usage "mode" "$T/x.wav" --mode dorian
check_usage "seconds" "$T/x.wav" --seconds 0
check_usage "seed" "$T/x.wav" --seed -1
check_usage "style" "$T/x.wav" --style polka
check_usage "unknown option" "$T/x.wav" --loud
check_usage "output file" --seconds 3
check_usage "needs a value" "$T/x.wav" --tempo
[[ -e "$T/x.wav" ]] && fail "a refused command wrote a file"

# cannot write: exit 1, one line
"$M" demo-song "$T/no/such/dir/x.wav" --seconds 2 >/dev/null 2>"$T/err"
rc=$?
(( rc == 1 )) || fail "unwritable path exited $rc, want 1"
(( $(wc -l <"$T/err") == 1 )) || fail "unwritable path: want one line, got: $(cat "$T/err")"
echo "ok"
