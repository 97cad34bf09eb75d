#!/usr/bin/env bash
# tests/integration/test_scale_demo.sh — scripts/scale-demo.sh (what `make scale-demo` runs) against
# the binary under test: the scale-out story of docs/deploy.md end to end, with a real PostgreSQL and
# Redis. The script itself checks, from both API instances, that every job succeeded exactly once
# (attempt counts, one image set, identical image ids, PNGs); here we check that it passes in both
# variants (2 workers; --routed: 1 cpu + 2 gpu workers), that its table shows the killed worker's
# job finished by another worker, that nothing it started is left running and its folder is gone
# (also when it is stopped mid-run or a check fails), and that a bad command line, binary or a
# missing package is refused clearly.
set -u
M="${MUS2PIC:?MUS2PIC must name the binary}"
SRC="${MUS2PIC_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
DEMO="$SRC/scripts/scale-demo.sh"
if [[ "${M2P_SKIP_SERVICES:-}" == "1" ]]; then
  echo "skipped (M2P_SKIP_SERVICES=1)"
  exit 0
fi
T=$(mktemp -d /tmp/m2p-test-scale-demo-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# quick enough for the suite (also under ASan): the long jobs are 8 images of 1024 x 1024
export M2P_DEMO_LONG_SIZE=1024 M2P_DEMO_SHORT_JOBS=4

# nothing the script started may outlive it: the pids it printed, and any process that names its
# working folder (the PostgreSQL server)
check_gone() { # check_gone OUTPUT-FILE
  local dir pid
  dir=$(sed -n 's/.*working folder \([^ ]*\).*/\1/p' "$1" | head -n 1)
  [[ -n "$dir" ]] || fail "no working folder line in the output"
  [[ ! -e "$dir" ]] || fail "the working folder $dir is still there"
  for pid in $(grep -o '(pid [0-9]*' "$1" | grep -o '[0-9]*'); do
    kill -0 "$pid" 2>/dev/null && fail "process $pid is still running after the script: $(ps -o args= -p "$pid")"
  done
  pgrep -f "$dir" >/dev/null && fail "processes still use $dir: $(pgrep -af "$dir")"
  return 0
}

for variant in "" --routed; do
  start=$SECONDS
  bash "$DEMO" $variant "$M" >"$T/out" 2>"$T/err"
  rc=$?
  cat "$T/out"
  ((rc == 0)) || { cat "$T/err" >&2; fail "scale-demo.sh $variant exited $rc"; }
  grep -q "ok: 6 jobs succeeded exactly once" "$T/out" || fail "$variant: no success line"
  # the table: job 1 was started by the killed worker and finished by another; 6 rows
  if [[ -z "$variant" ]]; then
    grep -Eq '^1 +api1 +8 x 1024 +2 +2 +8 \+ 8 +worker[12]\(killed\) > worker[0-9]$' "$T/out" ||
      fail "no row of the killed job: $(grep '^1 ' "$T/out")"
  else
    grep -Eq '^1 +api1 +8 x 1024 +3 +2 +8 \+ 8 +cpu1 > gpu[12]\(killed\) > gpu[0-9]$' "$T/out" ||
      fail "no row of the killed job: $(grep '^1 ' "$T/out")"
  fi
  (($(grep -Ec '^[0-9]+ +api[12] ' "$T/out") == 6)) || fail "$variant: want 6 rows in the table"
  grep -q "restarted Redis" "$T/out" || fail "$variant: Redis was not restarted"
  check_gone "$T/out"
  echo "-- scale-demo.sh $variant: ok ($((SECONDS - start)) s)"
done

# stopped mid-run (SIGTERM once everything is up): exit 143, and it still cleans up everything
bash "$DEMO" "$M" >"$T/out" 2>"$T/err" &
demo=$!
for _ in $(seq 600); do
  grep -q "worker2: " "$T/out" && break
  kill -0 "$demo" 2>/dev/null || break
  sleep 0.1
done
grep -q "worker2: " "$T/out" || { cat "$T/out" "$T/err" >&2; fail "the demo did not get to starting its workers"; }
kill -TERM "$demo"
wait "$demo"
rc=$?
((rc == 143)) || fail "stopped with SIGTERM: exit $rc, want 143"
check_gone "$T/out"
echo "-- stopped mid-run: cleaned up"

# a failed check (no time to wait for the jobs: job 1 cannot end before its lease is over): exit 1,
# the failure named, and everything cleaned up all the same
M2P_DEMO_TIMEOUT=0 M2P_DEMO_SHORT_JOBS=2 bash "$DEMO" "$M" >"$T/out" 2>"$T/err"
rc=$?
((rc == 1)) || fail "a failed check: exit $rc, want 1"
grep -q "scale-demo: FAILED: job 1 still" "$T/err" || fail "a failed check: $(cat "$T/err")"
check_gone "$T/out"
echo "-- a failed check: exit 1, cleaned up"

# refusals: one clear line each
bash "$DEMO" --bogus >"$T/out" 2>"$T/err"
rc=$?
((rc == 2)) && grep -q "unknown option --bogus" "$T/err" || fail "--bogus: exit $rc, $(cat "$T/err")"
bash "$DEMO" "$T/no-such-binary" >"$T/out" 2>"$T/err"
rc=$?
((rc == 1)) && grep -q "no mus2pic binary at $T/no-such-binary" "$T/err" || fail "missing binary: exit $rc, $(cat "$T/err")"
# a missing tool is named with its Debian package (PATH without redis-server)
mkdir -p "$T/bin"
for t in bash curl python3 psql redis-cli mktemp realpath id sort ls tail; do
  p=$(command -v "$t") && ln -sf "$p" "$T/bin/$t"
done
PATH="$T/bin" "$T/bin/bash" "$DEMO" "$M" >"$T/out" 2>"$T/err"
rc=$?
((rc == 1)) && grep -q "install the Debian package 'redis-server'" "$T/err" || fail "no redis-server: exit $rc, $(cat "$T/err")"
echo "ok"
