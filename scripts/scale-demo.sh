#!/usr/bin/env bash
# scripts/scale-demo.sh — the scale-out story of docs/deploy.md on one machine, end to end.
#
#   scripts/scale-demo.sh [--routed] [--keep] [BINARY]      (`make scale-demo` builds and runs it)
#
# Starts a private PostgreSQL and Redis on loopback (in a temporary folder, free ports), then with
# the commands of docs/deploy.md ("Example: one host, by hand"): two API instances
# (`mus2pic serve --no-workers`, two ports) and two workers (`mus2pic worker`), each in its own
# data folder — they share nothing but PostgreSQL and Redis, as on separate hosts. It then
#
#   1. submits jobs with curl to both API instances (two long ones that keep both workers busy,
#      then short ones that wait in the queue),
#   2. SIGKILLs the worker that is rendering the first long job, in the middle of it,
#   3. restarts Redis while jobs are still queued (it comes back empty: no persistence),
#   4. starts a replacement worker, waits for every job to end, and
#   5. checks from BOTH API instances that every job succeeded exactly once: the attempt counts
#      (2 for the killed job, 1 for the others), one image set per job (also counted in
#      PostgreSQL), one "succeeded" event, the same image ids from both instances, and every
#      image URL answering a PNG from both instances. Prints a summary table.
#
# --routed: the same story with one `--role cpu` worker (analysis) and two `--role gpu` workers
# (rendering); the killed worker is the gpu worker rendering the first long job.
# --keep:   leave the temporary folder (logs, data folders) for a look afterwards.
#
# Everything it starts is stopped on exit, also on failure or Ctrl-C; the temporary folder is
# removed. Exit status 0 when every check passed, 1 when one failed (with the logs' tails), 2 on a
# bad command line. Knobs (environment): M2P_DEMO_LONG_SIZE (side of the long jobs' images,
# default 2048), M2P_DEMO_SHORT_JOBS (default 4), M2P_DEMO_LEASE (seconds, default 3),
# M2P_DEMO_TIMEOUT (seconds to wait for all jobs, default 240).
set -euo pipefail

# ---------------------------------------------------------------------------------------------
# Command line and knobs
# ---------------------------------------------------------------------------------------------
routed=0
keep=0
bin=build/mus2pic
for a in "$@"; do
  case "$a" in
    --routed) routed=1 ;;
    --keep) keep=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "scale-demo: unknown option $a (try --help)" >&2; exit 2 ;;
    *) bin=$a ;;
  esac
done
LONG_SIZE=${M2P_DEMO_LONG_SIZE:-2048}   # the two long jobs: 8 images of LONG_SIZE x LONG_SIZE
LONG_VARIATIONS=8
SHORT_JOBS=${M2P_DEMO_SHORT_JOBS:-4}    # then short jobs of 2 images of 256 x 256
LEASE=${M2P_DEMO_LEASE:-3}              # a killed worker's job is taken over after this long
TIMEOUT=${M2P_DEMO_TIMEOUT:-240}

T0=${EPOCHREALTIME/[.,]/}
say() { # a line with the seconds since the start
  local us=$((${EPOCHREALTIME/[.,]/} - T0))
  printf '[scale-demo %3d.%ds] %s\n' $((us / 1000000)) $((us / 100000 % 10)) "$*"
}
fail() {
  echo "scale-demo: FAILED: $*" >&2
  exit 1
}
# any other command that fails stops the script too (set -e): say which
trap 'echo "scale-demo: FAILED: line $LINENO exited $?" >&2' ERR

# ---------------------------------------------------------------------------------------------
# What it needs (Debian packages; scripts/install-deps.sh --test installs postgresql and
# redis-server). A missing one is named, with its package, before anything starts.
# ---------------------------------------------------------------------------------------------
pg_bin() { # the newest PostgreSQL server binary of that name (Debian keeps them out of PATH)
  local c
  c=$(ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1 || true)
  [[ -n "$c" ]] && { echo "$c"; return; }
  command -v "$1" || true
}
need() { # need TOOL-PATH-OR-NAME PACKAGE
  if [[ -z "$1" ]] || ! command -v "$1" >/dev/null 2>&1; then
    echo "scale-demo: missing $3 — install the Debian package '$2' (apt-get install $2)" >&2
    exit 1
  fi
}
INITDB=$(pg_bin initdb)
PG_CTL=$(pg_bin pg_ctl)
need "$INITDB" postgresql "PostgreSQL's initdb"
need "$PG_CTL" postgresql "PostgreSQL's pg_ctl"
need psql postgresql-client "psql"
need redis-server redis-server "redis-server"
need redis-cli redis-tools "redis-cli"
need curl curl "curl"
need python3 python3 "python3 (used to read the API's JSON)"
[[ -x "$bin" ]] || { echo "scale-demo: no mus2pic binary at $bin (build it: make build, or pass its path)" >&2; exit 1; }
bin=$(realpath "$bin")
if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
  echo "scale-demo: running as root needs the 'postgres' user (Debian package postgresql creates it)" >&2
  exit 1
fi

# ---------------------------------------------------------------------------------------------
# Clean-up: every process this script starts is in pid_of; on exit (success, failure, Ctrl-C)
# they get SIGTERM (workers put running jobs back, API instances finish), then SIGKILL after
# 20 s, PostgreSQL is stopped and the temporary folder removed.
# ---------------------------------------------------------------------------------------------
declare -A pid_of=()
tmp=""
pg_started=0
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM ERR
  # a failure (not Ctrl-C or SIGTERM): the last lines of every log
  if ((rc == 1)) && [[ -n "$tmp" ]]; then
    for f in "$tmp"/*/err.log "$tmp"/redis/log "$tmp"/pg/log; do
      [[ -s "$f" ]] || continue
      echo "---- ${f#"$tmp"/} (last lines)" >&2
      tail -n 15 "$f" >&2
    done
  fi
  local name
  for name in "${!pid_of[@]}"; do kill -TERM "${pid_of[$name]}" 2>/dev/null; done
  local deadline=$((SECONDS + 20))
  for name in "${!pid_of[@]}"; do
    while kill -0 "${pid_of[$name]}" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "${pid_of[$name]}" 2>/dev/null
    wait "${pid_of[$name]}" 2>/dev/null
  done
  if ((pg_started)); then
    pg_run "$PG_CTL" -D "$tmp/pg/data" -m immediate -w stop >/dev/null 2>&1
  fi
  if [[ -n "$tmp" ]]; then
    if ((keep)); then echo "scale-demo: kept $tmp"; else rm -rf "$tmp"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

tmp=$(mktemp -d /tmp/m2p-scale-demo-XXXXXX)
chmod 755 "$tmp" # the postgres user must reach its folder inside
say "working folder $tmp (logs: */err.log; --keep leaves it)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# json EXPR: evaluates a Python expression over the JSON document on stdin (bound to d)
json() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

# ---------------------------------------------------------------------------------------------
# 1. PostgreSQL and Redis, private, on loopback
# ---------------------------------------------------------------------------------------------
pg_run() { # as root the server runs as the postgres user, like Debian's own cluster
  if [[ $(id -u) -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}
PG_PORT=$(free_port)
mkdir -p "$tmp/pg"
[[ $(id -u) -eq 0 ]] && chown postgres:postgres "$tmp/pg"
pg_run "$INITDB" -D "$tmp/pg/data" --auth=trust -U postgres -E UTF8 --no-sync >"$tmp/pg/initdb.log" 2>&1 ||
  { cat "$tmp/pg/initdb.log" >&2; fail "initdb"; }
pg_run "$PG_CTL" -D "$tmp/pg/data" -l "$tmp/pg/log" -w -t 60 \
  -o "-p $PG_PORT -k $tmp/pg -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null || fail "PostgreSQL did not start"
pg_started=1
pg_run psql -h "$tmp/pg" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
  -c "CREATE ROLE m2p LOGIN PASSWORD 'm2p'" -c "CREATE DATABASE m2p OWNER m2p" || fail "creating the m2p database"
say "PostgreSQL on 127.0.0.1:$PG_PORT (database m2p, user m2p)"

REDIS_PORT=$(free_port)
mkdir -p "$tmp/redis"
start_redis() { # no persistence: a restart comes back empty, the worst case for the queue
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp/redis" \
    >>"$tmp/redis/log" 2>&1 &
  pid_of[redis]=$!
  local i
  for i in $(seq 100); do
    [[ $(redis-cli -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] && return 0
    sleep 0.1
  done
  fail "redis-server did not start"
}
start_redis
say "Redis on 127.0.0.1:$REDIS_PORT (no persistence, pid ${pid_of[redis]})"

# ---------------------------------------------------------------------------------------------
# 2. The deployment, with the commands of docs/deploy.md. The demo's own settings come first:
#    the instant procedural renderer (sonic) and quiet logs; a real user's config file is ignored.
# ---------------------------------------------------------------------------------------------
unset MUS2PIC_CONFIG MUS2PIC_DATA_DIR MUS2PIC_MODEL
export MUS2PIC_RENDERER=sonic MUS2PIC_LOG_LEVEL=warn

export MUS2PIC_DATABASE_URL=postgresql://m2p:m2p@127.0.0.1:$PG_PORT/m2p
export MUS2PIC_QUEUE=redis MUS2PIC_BROKER_URL=redis://127.0.0.1:$REDIS_PORT/0

wait_line() { # wait_line NAME FILE TEXT: the process NAME printed TEXT (or died: fail)
  local i
  for i in $(seq 600); do
    grep -q "$3" "$2" 2>/dev/null && return 0
    kill -0 "${pid_of[$1]}" 2>/dev/null || fail "$1 exited at start: $(tail -n 5 "$tmp/$1/err.log")"
    sleep 0.1
  done
  fail "$1 did not start in 60 s"
}

start_api() { # start_api NAME PORT — an API instance that runs no job itself
  mkdir -p "$tmp/$1"
  MUS2PIC_DATA_DIR=$tmp/$1 "$bin" serve --no-workers --host 127.0.0.1 --port "$2" \
    >"$tmp/$1/out.log" 2>"$tmp/$1/err.log" &
  pid_of[$1]=$!
  wait_line "$1" "$tmp/$1/out.log" "serving on"
  say "$1: mus2pic serve --no-workers --host 127.0.0.1 --port $2   (pid ${pid_of[$1]})"
}

start_worker() { # start_worker NAME [ROLE ARGS...] — a worker in its own data folder
  local name=$1
  shift
  mkdir -p "$tmp/$name"
  MUS2PIC_DATA_DIR=$tmp/$name "$bin" worker "$@" --lease "$LEASE" \
    >"$tmp/$name/out.log" 2>"$tmp/$name/err.log" &
  pid_of[$name]=$!
  wait_line "$name" "$tmp/$name/out.log" "worker ready"
  say "$name: mus2pic worker $* --lease $LEASE   (pid ${pid_of[$name]})"
}

API1_PORT=$(free_port)
API2_PORT=$(free_port)
start_api api1 "$API1_PORT"
start_api api2 "$API2_PORT"
if ((routed)); then
  start_worker cpu1 --role cpu --threads 2
  start_worker gpu1 --role gpu
  start_worker gpu2 --role gpu
else
  start_worker worker1 --threads 1 --warmup
  start_worker worker2 --threads 1 --warmup
fi
API1=http://127.0.0.1:$API1_PORT
API2=http://127.0.0.1:$API2_PORT

# ---------------------------------------------------------------------------------------------
# 3. Jobs, submitted with curl to both instances (the same request the web page sends)
# ---------------------------------------------------------------------------------------------
song=$tmp/song.wav
"$bin" demo-song "$song" --seconds 20 --seed 5 >/dev/null
declare -a job_ids=() job_api=() job_n=() job_size=()
submit() { # submit API VARIATIONS SIZE SEED — prints the new job's id
  local out
  out=$(curl -sS --fail-with-body -F "file=@$song" -F renderer=sonic -F "variations=$2" \
    -F "width=$3" -F "height=$3" -F "seed=$4" "$1/api/jobs") || fail "POST $1/api/jobs: $out"
  echo "$out" | json 'd["id"]'
}
add_job() { # add_job API VARIATIONS SIZE SEED
  local id
  id=$(submit "$@")
  job_ids+=("$id")
  job_api+=("$([[ $1 == "$API1" ]] && echo api1 || echo api2)")
  job_n+=("$2")
  job_size+=("$3")
}
# two long jobs first (one per worker; the first is the one whose worker gets killed) ...
add_job "$API1" "$LONG_VARIATIONS" "$LONG_SIZE" 101
add_job "$API2" "$LONG_VARIATIONS" "$LONG_SIZE" 102
# ... then short ones, alternating between the instances; they wait in the queue
for i in $(seq "$SHORT_JOBS"); do
  if ((i % 2)); then add_job "$API2" 2 256 $((200 + i)); else add_job "$API1" 2 256 $((200 + i)); fi
done
say "submitted ${#job_ids[@]} jobs: ${job_ids[*]} (to api1 and api2 in turn)"
killed_job=${job_ids[0]}

# ---------------------------------------------------------------------------------------------
# 4. Kill the worker that is rendering the first long job, mid-render (SIGKILL: no goodbye)
# ---------------------------------------------------------------------------------------------
# the worker running a job: the last "running" event names it host-pid-thread
running_pid() { # running_pid JOB
  curl -sS "$API2/api/jobs/$1/events" |
    json '[e.get("worker", "") for e in d["events"] if e["type"] == "state" and e.get("status") == "running"][-1].rsplit("-", 2)[1]'
}
name_of_pid() { # the name this script gave to process PID (empty: not one of ours any more)
  local n
  for n in "${!pid_of[@]}"; do
    if [[ ${pid_of[$n]} == "$1" ]]; then echo "$n"; fi
  done
}
deadline=$((SECONDS + 60))
while ((SECONDS < deadline)); do
  state=$(curl -sS "$API1/api/jobs/$killed_job" | json 'd["status"] + " " + d["stage"]')
  [[ $state == "queued analyze" || $state == "running analyze" || $state == "queued render" ]] || break
  sleep 0.05
done
[[ $state == "running render" ]] || fail "job $killed_job: expected it rendering, found '$state' (make it longer: M2P_DEMO_LONG_SIZE)"
victim=$(name_of_pid "$(running_pid "$killed_job")")
[[ -n "$victim" ]] || fail "job $killed_job runs on no worker of this demo"
kill -KILL "${pid_of[$victim]}"
{ wait "${pid_of[$victim]}" || true; } 2>/dev/null
unset "pid_of[$victim]"
say "SIGKILL $victim while it rendered job $killed_job"

# ---------------------------------------------------------------------------------------------
# 5. Restart Redis while jobs are queued; it comes back empty
# ---------------------------------------------------------------------------------------------
streams_len() { # entries in both stage streams
  echo $(($(redis-cli -p "$REDIS_PORT" XLEN m2p:jobs:analyze) + $(redis-cli -p "$REDIS_PORT" XLEN m2p:jobs:render)))
}
before=$(streams_len)
((before > 0)) || fail "the streams are empty before the restart: nothing was queued"
kill -TERM "${pid_of[redis]}"
wait "${pid_of[redis]}" || true
start_redis
after=$(streams_len)
((after == 0)) || fail "Redis kept $after entries over the restart"
say "restarted Redis (pid ${pid_of[redis]}): $before stream entries before, $after after (the database puts them back)"

# ---------------------------------------------------------------------------------------------
# 6. A replacement worker, then wait until every job has ended
# ---------------------------------------------------------------------------------------------
if ((routed)); then start_worker gpu3 --role gpu; else start_worker worker3 --threads 1 --warmup; fi
deadline=$((SECONDS + TIMEOUT))
for id in "${job_ids[@]}"; do
  while :; do
    status=$(curl -sS "$API1/api/jobs/$id" | json 'd["status"]')
    [[ $status == queued || $status == running ]] || break
    ((SECONDS < deadline)) || fail "job $id still $status after $TIMEOUT s"
    sleep 0.2
  done
done
say "every job has ended; checking from both instances"

# ---------------------------------------------------------------------------------------------
# 7. Checks, from both API instances
# ---------------------------------------------------------------------------------------------
PNG_MAGIC=89504e470d0a1a0a
psql_m2p() { psql "$MUS2PIC_DATABASE_URL" -At -c "$1"; }
rows=()
for k in "${!job_ids[@]}"; do
  id=${job_ids[$k]}
  n=${job_n[$k]}
  want_attempt=1 # stage_attempt: attempts of the job's last stage (render, when a cpu worker handed over)
  [[ $id == "$killed_job" ]] && want_attempt=2
  want_attempts=$((want_attempt + routed)) # all attempts: + the one analysis on the cpu worker
  sets=()
  for api in "$API1" "$API2"; do
    j=$(curl -sS --fail "$api/api/jobs/$id") || fail "GET $api/api/jobs/$id"
    read -r status attempt attempts indexes images urls <<<"$(echo "$j" | json '" ".join([d["status"],
      str(d["stage_attempt"]), str(d["attempts"]),
      ",".join(str(i["index"]) for i in sorted(d["images"], key=lambda i: i["index"])),
      ",".join("%d:%s" % (i["index"], i["id"]) for i in sorted(d["images"], key=lambda i: i["index"]))]
      + [i["url"] for i in d["images"]])')"
    [[ $status == succeeded ]] || fail "job $id is $status from $api: $(echo "$j" | json 'd.get("error")')"
    if [[ $id == "$killed_job" ]] && ((attempt == 1)); then
      fail "job $id finished before its worker was killed (make it longer: M2P_DEMO_LONG_SIZE=4096)"
    fi
    ((attempt == want_attempt && attempts == want_attempts)) ||
      fail "job $id: attempt $attempt of its stage, $attempts in all from $api; want $want_attempt and $want_attempts"
    [[ $indexes == "$(seq -s , 0 $((n - 1)))" ]] || fail "job $id: image indexes '$indexes' from $api, want 0..$((n - 1))"
    sets+=("$images")
    # every image URL answers a PNG from this instance (the worker's files are not on this
    # instance's disk: it serves the bytes stored in PostgreSQL)
    for url in $urls; do
      curl -sS --fail -o "$tmp/img.png" "$api$url" || fail "GET $api$url"
      [[ $(head -c 8 "$tmp/img.png" | od -An -tx1 | tr -d ' \n') == "$PNG_MAGIC" ]] || fail "$api$url is not a PNG"
    done
    # one "succeeded" event: the job ended once; the "running" events name the workers (host-pid-thread)
    read -r ends workers <<<"$(curl -sS --fail "$api/api/jobs/$id/events" | json '" ".join(
      [str(sum(1 for e in d["events"] if e["type"] == "state" and e.get("status") == "succeeded"))]
      + [e.get("worker", "").rsplit("-", 2)[1] for e in d["events"] if e["type"] == "state" and e.get("status") == "running"])')"
    ((ends == 1)) || fail "job $id: $ends succeeded events from $api"
  done
  [[ ${sets[0]} == "${sets[1]}" ]] || fail "job $id: the instances disagree on its images: '${sets[0]}' vs '${sets[1]}'"
  # one image set in the database: n rows, n distinct indexes
  db=$(psql_m2p "SELECT count(*) || ' ' || count(DISTINCT idx) FROM images WHERE job_id = $id")
  [[ $db == "$n $n" ]] || fail "job $id: images in PostgreSQL '$db', want '$n $n'"
  ran_on=""
  for p in $workers; do
    w=$(name_of_pid "$p")
    [[ -n "$w" ]] || w=$victim # no longer in pid_of: the killed one
    [[ $w == "$victim" && $id == "$killed_job" ]] && w="$w(killed)"
    ran_on+="${ran_on:+ > }$w"
  done
  rows+=("$(printf '%-4s %-5s %-10s %-9s %-14s %-14s %s' "$id" "${job_api[$k]}" "$n x ${job_size[$k]}" \
    "$attempts" "$attempt" "$n + $n" "$ran_on")")
done

echo
echo "job  via   images     attempts  stage_attempt  PNGs (1 + 2)   ran on"
printf '%s\n' "${rows[@]}"
echo
say "ok: ${#job_ids[@]} jobs succeeded exactly once, identical image sets and PNGs from api1 and api2" \
  "($( ((routed)) && echo "routed: 1 cpu + 2 gpu workers" || echo "2 workers"), 1 killed mid-render, Redis restarted)"
