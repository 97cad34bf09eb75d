#!/usr/bin/env python3
"""Benchmark of `mus2pic serve`: N concurrent job submissions (uploads of a short
synthetic song, sonic renderer), then status reads while the queue drains.

Prints: submit latency p50/p99, status-read latency p50/p99 (goal p99 <= 20 ms),
jobs/s from first submit to last completion, that every job finished exactly once
(nothing lost), and the server's peak memory (VmHWM).

usage: bench/bench_service.py [--bin build/mus2pic] [--jobs 100] [--workers 2]
                              [--size 256x256] [--variations 1] [--readers 8] [--poll-ms 25]
Python standard library only; starts its own server on a free port with a
temporary data folder.
"""
import argparse
import concurrent.futures as cf
import http.client
import json
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * (len(xs) - 1)))))
    return xs[k]


def multipart(fields, name, data):
    b = "----m2pbench"
    out = []
    for k, v in fields.items():
        out.append(f"--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode())
    out.append(f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n".encode()
               + data + b"\r\n")
    out.append(f"--{b}--\r\n".encode())
    return b"".join(out), {"Content-Type": f"multipart/form-data; boundary={b}"}


class Client:
    def __init__(self, port):
        self.port = port
        self.local = threading.local()

    def conn(self):
        c = getattr(self.local, "c", None)
        if c is None:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.local.c = c
        return c

    def req(self, method, path, body=None, headers=None):
        for attempt in range(2):
            c = self.conn()
            try:
                t0 = time.perf_counter()
                c.request(method, path, body=body, headers=headers or {})
                r = c.getresponse()
                data = r.read()
                return r.status, data, time.perf_counter() - t0
            except (http.client.HTTPException, OSError):
                c.close()
                self.local.c = None
                if attempt == 1:
                    raise


def vm_hwm_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("MUS2PIC", "build/mus2pic"))
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", default="256x256")
    ap.add_argument("--variations", type=int, default=1)
    ap.add_argument("--readers", type=int, default=8)
    ap.add_argument("--poll-ms", type=float, default=25.0,
                    help="pause between a reader's status reads (0: as fast as possible)")
    ap.add_argument("--seconds", type=int, default=8, help="length of the synthetic song")
    args = ap.parse_args()

    data_dir = tempfile.mkdtemp(prefix="m2p-bench-")
    song_path = os.path.join(data_dir, "song.wav")
    subprocess.run([args.bin, "demo-song", song_path, "--seconds", str(args.seconds)], check=True,
                   capture_output=True)
    song = open(song_path, "rb").read()
    w, h = args.size.split("x")
    env = dict(os.environ, MUS2PIC_DATA_DIR=data_dir)
    cmd = [args.bin, "serve", "--port", "0", "--set", "renderer=sonic", "--set", f"workers={args.workers}",
           "--set", "rate_limit_per_min=0", "--set", f"width={w}", "--set", f"height={h}",
           "--set", f"variations={args.variations}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        r, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if r else b""
        m = re.search(rb":(\d+)/", line)
        if not m:
            print("server did not start", file=sys.stderr)
            return 1
        port = int(m.group(1))
        cl = Client(port)
        rss_idle = vm_hwm_kb(proc.pid)

        # 1. N concurrent submissions (distinct seeds: no de-duplication)
        t_start = time.perf_counter()
        submit_lat = []
        ids = []

        def submit(i):
            body, hdrs = multipart({"seed": str(1000 + i)}, "song.wav", song)
            st, data, dt = cl.req("POST", "/api/jobs", body, hdrs)
            if st != 201:
                raise RuntimeError(f"submit {i}: {st} {data[:200]!r}")
            return json.loads(data)["id"], dt

        with cf.ThreadPoolExecutor(max_workers=min(args.jobs, 100)) as ex:
            for jid, dt in ex.map(submit, range(args.jobs)):
                ids.append(jid)
                submit_lat.append(dt)
        t_submitted = time.perf_counter()

        # 2. status reads from several clients while the queue drains
        status_lat = []
        lock = threading.Lock()
        finished = {}
        stop = threading.Event()

        def reader(k):
            n = 0
            while not stop.is_set():
                jid = ids[(k * 7919 + n) % len(ids)]
                n += 1
                st, data, dt = cl.req("GET", f"/api/jobs/{jid}")
                if st != 200:
                    raise RuntimeError(f"status {jid}: {st}")
                j = json.loads(data)
                with lock:
                    status_lat.append(dt)
                    if j["status"] in ("succeeded", "failed", "cancelled", "partial"):
                        finished[jid] = j
                if args.poll_ms > 0:
                    time.sleep(args.poll_ms / 1000.0)
            return n

        threads = [threading.Thread(target=reader, args=(k,)) for k in range(args.readers)]
        for t in threads:
            t.start()
        deadline = time.time() + 3600
        while time.time() < deadline:
            st, data, _ = cl.req("GET", "/api/queue")
            counts = json.loads(data)["counts"]
            if counts["queued"] == 0 and counts["running"] == 0:
                break
            time.sleep(0.2)
        t_done = time.perf_counter()
        stop.set()
        for t in threads:
            t.join()

        # 3. nothing lost, nothing twice
        st, data, _ = cl.req("GET", f"/api/jobs?limit=500")
        listing = json.loads(data)
        statuses = {}
        images = 0
        twice = 0
        for jid in ids:
            st, data, _ = cl.req("GET", f"/api/jobs/{jid}")
            j = json.loads(data)
            statuses[j["status"]] = statuses.get(j["status"], 0) + 1
            images += len(j["images"])
            st, data, _ = cl.req("GET", f"/api/jobs/{jid}/events")
            finals = [e for e in json.loads(data)["events"] if e["type"] == "state" and e["status"] == "succeeded"]
            twice += len(finals) > 1
        rss_peak = vm_hwm_kb(proc.pid)
        st, data, _ = cl.req("GET", "/metrics")
        metrics = data.decode()

        print(f"mus2pic serve benchmark: {args.jobs} jobs, {args.workers} workers, sonic {args.size}, "
              f"{args.variations} image(s)/job, {args.seconds} s song, {args.readers} status readers "
              f"polling every {args.poll_ms:g} ms")
        print(f"submit   : p50 {pct(submit_lat, 50) * 1000:7.2f} ms  p99 {pct(submit_lat, 99) * 1000:7.2f} ms  "
              f"(all {args.jobs} accepted in {t_submitted - t_start:.2f} s, "
              f"{args.jobs / (t_submitted - t_start):.0f} submits/s)")
        print(f"status   : p50 {pct(status_lat, 50) * 1000:7.2f} ms  p99 {pct(status_lat, 99) * 1000:7.2f} ms  "
              f"({len(status_lat)} reads; goal p99 <= 20 ms: {'met' if pct(status_lat, 99) <= 0.020 else 'MISSED'})")
        print(f"throughput: {args.jobs / (t_done - t_start):.2f} jobs/s end to end "
              f"({t_done - t_start:.1f} s for all jobs)")
        print(f"outcome  : {statuses}, {images} images, listed {listing['total']}, completed twice: {twice}, "
              f"lost: {args.jobs - sum(statuses.values())}")
        print(f"memory   : server VmHWM {rss_idle / 1024:.0f} MiB idle, {rss_peak / 1024:.0f} MiB peak")
        for line in metrics.splitlines():
            if line.startswith("m2p_step_seconds_sum") or line.startswith("m2p_step_seconds_count"):
                print("  " + line)
        ok = statuses.get("succeeded", 0) == args.jobs and twice == 0
        return 0 if ok else 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
