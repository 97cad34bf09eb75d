#!/usr/bin/env python3
"""Jobs per second with 1 vs 2 `mus2pic worker` processes, side by side in one run;
with --split also 1 cpu worker + 1 gpu worker (analysis and rendering routed to
separate processes) against 2 workers of role all.

Starts a private PostgreSQL and Redis (tests/integration/services_util.py), one
API process (`serve --no-workers`, queue=redis), then for each worker count:
submits N jobs (sonic renderer, one image each, distinct seeds, one short song
whose analysis is cached after the first job), starts that many workers, and
times from the first submit to the last job's completion. Prints both rates and
their ratio; the same jobs, song and settings for both rounds.

    MUS2PIC=build/mus2pic python3 bench/bench_scale.py [--jobs 12] [--size 512] [--mode redis|pg] [--split]

The ratio is bounded by the machine: on a host with C cores shared by the API,
the database and the workers, two workers cannot be more than about
min(2, C / cores-per-job) times one.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from serve_util import Server, demo_song, multipart  # noqa: E402
from services_util import Postgres, Redis  # noqa: E402
from test_scale_pg import Worker  # noqa: E402


def round_(api, settings, data, song, roles, n_jobs, seed0):
    """roles: one worker_role per worker process ("all", "cpu", "gpu")."""
    api.json("POST", "/api/queue/pause", expect=200)
    ids = []
    for i in range(n_jobs):
        body, hdrs = multipart({"seed": str(seed0 + i)}, [("file", "song.wav", song)])
        _, job = api.json("POST", "/api/jobs", body, hdrs, expect=201)
        ids.append(job["id"])
    workers = [Worker(data, dict(settings, worker_role=r)).start() for r in roles]
    t0 = time.time()
    api.json("POST", "/api/queue/resume", expect=200)
    for jid in ids:
        j = api.wait_job(jid, timeout=600)
        if j["status"] != "succeeded":
            raise SystemExit(f"job {jid} {j['status']}: {j['error']}")
    dt = time.time() - t0
    for w in workers:
        w.stop()
    return dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=12)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--mode", choices=["redis", "pg"], default="redis")
    ap.add_argument("--split", action="store_true", help="also time 1 cpu + 1 gpu worker")
    a = ap.parse_args()
    pg = Postgres().start()
    rd = Redis().start() if a.mode == "redis" else None
    api = None
    try:
        settings = {"database_url": pg.url, "renderer": "sonic", "variations": "1", "width": str(a.size),
                    "height": str(a.size), "log_level": "warn", "rate_limit_per_min": "0", "workers": "1"}
        if rd is not None:
            settings.update(queue="redis", broker_url=rd.url)
        api = Server(settings=settings, args=["--no-workers"]).start()
        data = api.data_dir
        song = demo_song(os.path.join(data, "song.wav"), seconds=10, seed=2)
        # warm the analysis cache and the page cache: one job, not timed
        round_(api, settings, data, song, ["all"], 1, 9000)
        t1 = round_(api, settings, data, song, ["all"], a.jobs, 1000)
        t2 = round_(api, settings, data, song, ["all", "all"], a.jobs, 2000)
        ts = round_(api, settings, data, song, ["cpu", "gpu"], a.jobs, 3000) if a.split else None
        r1, r2 = a.jobs / t1, a.jobs / t2
        print(f"mode {a.mode}, {a.jobs} jobs, sonic {a.size}x{a.size}, 1 image each, {os.cpu_count()} CPUs")
        print(f"{'workers':>8} {'seconds':>8} {'jobs/s':>8}")
        print(f"{1:>8} {t1:>8.2f} {r1:>8.2f}")
        print(f"{2:>8} {t2:>8.2f} {r2:>8.2f}")
        print(f"ratio 2 workers / 1 worker: {r2 / r1:.2f}x")
        if ts is not None:
            rs = a.jobs / ts
            print(f"{'cpu+gpu':>8} {ts:>8.2f} {rs:>8.2f}")
            print(f"ratio 1 cpu + 1 gpu worker / 2 workers of role all: {rs / r2:.2f}x")
    finally:
        if api is not None:
            api.cleanup()
        if rd is not None:
            rd.cleanup()
        pg.cleanup()


if __name__ == "__main__":
    main()
