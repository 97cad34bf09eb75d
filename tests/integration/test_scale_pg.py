"""Black-box tests of the distributed mode against a real PostgreSQL (started here).

One shared database (MUS2PIC_DATABASE_URL=postgresql://...), API processes
started with `serve --no-workers`, and separate `mus2pic worker` processes:

1. the service's API suite (test_serve_api.run) on a PostgreSQL-backed server;
2. jobs run by worker processes, progress streamed by an API process that runs
   no job itself; cancel reaches a job running in another process;
3. SIGKILL of the worker mid-job: another worker takes the job over after the
   lease and completes it exactly once (one image set, attempt 2);
4. a job whose worker dies during every attempt fails cleanly (job_interrupted);
5. two API instances, one job, a WebSocket on each: both streams complete and agree;
6. PostgreSQL down at submit: a clear 503 (db_unavailable), nothing half-written,
   and the API recovers when the database is back.

Workers and API processes share one data folder here (uploads and image files
are files on this machine; see docs/deploy.md for several hosts).
"""
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import BIN, WS, Server, check, demo_song, multipart  # noqa: E402
from services_util import Postgres  # noqa: E402

LEASE = "3"
FINAL = ("succeeded", "failed", "cancelled", "partial")


class Worker:
    def __init__(self, data_dir, settings, threads=1, lease=LEASE):
        self.data_dir = data_dir
        self.settings = settings
        self.threads = threads
        self.lease = lease
        self.proc = None
        self.log = os.path.join(data_dir, f"worker-{time.time_ns()}.txt")

    def start(self, timeout=60):
        cmd = [BIN, "worker", "--threads", str(self.threads), "--lease", self.lease]
        for k, v in self.settings.items():
            cmd += ["--set", f"{k}={v}"]
        env = dict(os.environ)
        env["MUS2PIC_DATA_DIR"] = self.data_dir
        env.pop("MUS2PIC_CONFIG", None)
        self.errf = open(self.log, "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.errf, env=env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if r:
                line = self.proc.stdout.readline()
                check(b"worker ready" in line, f"worker did not start: {line!r} {self.tail()}")
                return self
            check(self.proc.poll() is None, f"worker exited: {self.tail()}")
        check(False, "worker did not start in time")

    def tail(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            check(self.proc.returncode == 0, f"worker exit {self.proc.returncode}: {self.tail()}")
        self.proc = None

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def collect(ws, timeout=120):
    events = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        ev = ws.recv_json(timeout=max(1, deadline - time.time()))
        events.append(ev)
        if ev.get("type") == "state" and ev.get("status") in FINAL:
            return events
    check(False, f"no final state in {events[-5:]}")


def wait_status(srv, jid, statuses, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        _, j = srv.json("GET", f"/api/jobs/{jid}", expect=200)
        if j["status"] in statuses:
            return j
        time.sleep(0.05)
    check(False, f"job {jid} never reached {statuses}")


def submit(srv, song, fields):
    body, hdrs = multipart(fields, [("file", "song.wav", song)])
    _, job = srv.json("POST", "/api/jobs", body, hdrs, expect=201)
    return job["id"]


def config_refusals():
    """The distributed commands need the shared database: clear refusals, no hang."""
    tmp = tempfile.mkdtemp(prefix="m2p-scale-cfg-")
    env = dict(os.environ, MUS2PIC_DATA_DIR=tmp)
    env.pop("MUS2PIC_DATABASE_URL", None)
    try:
        cases = [([BIN, "worker"], 2, "MUS2PIC_DATABASE_URL=postgresql://"),
                 ([BIN, "serve", "--port", "0", "--no-workers"], 1, "--no-workers needs the shared database"),
                 ([BIN, "serve", "--port", "0", "--set", "queue=redis"], 1, "queue=redis needs the shared database"),
                 ([BIN, "worker", "--lease", "0"], 2, "--lease takes seconds"),
                 ([BIN, "worker", "--set", "database_url=postgresql://m2p@127.0.0.1:1/m2p"], 1,
                  "the database is unavailable")]
        for argv, rc, text in cases:
            r = subprocess.run(argv, capture_output=True, env=env, timeout=60)
            err = r.stderr.decode(errors="replace")
            check(r.returncode == rc and text in err, f"{argv[1:]}: exit {r.returncode}, {err[-500:]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    if os.environ.get("M2P_SKIP_SERVICES") == "1":
        print("skipped (M2P_SKIP_SERVICES=1)")
        return
    t0 = time.time()
    config_refusals()
    pg = Postgres().start()
    procs = []
    try:
        # 1. the API suite on PostgreSQL (in-process workers, one process)
        import test_serve_api
        srv = Server(settings={"database_url": pg.url}).start()
        procs.append(srv)
        test_serve_api.run(srv)
        srv.cleanup()
        procs.remove(srv)
        print(f"api suite on PostgreSQL: ok ({time.time() - t0:.1f} s)", flush=True)

        # fresh database for the distributed part
        pg.psql("DROP DATABASE m2p")
        pg.psql("CREATE DATABASE m2p OWNER m2p")
        settings = {"database_url": pg.url, "renderer": "sonic", "variations": "2", "width": "256",
                    "height": "256", "log_level": "warn", "retry_base_s": "0.3", "max_attempts": "2"}
        api = Server(settings=settings, args=["--no-workers"]).start()
        procs.append(api)
        data = api.data_dir
        song = demo_song(os.path.join(data, "song.wav"), seconds=20, seed=5)
        distributed(pg, api, settings, data, song, procs)
        print(f"distributed: ok ({time.time() - t0:.1f} s)", flush=True)
        db_down(pg, api, song)
        print(f"database down: ok ({time.time() - t0:.1f} s)", flush=True)
    except BaseException:
        for p in procs:
            if isinstance(p, Server):
                p.dump()
            elif isinstance(p, Worker):
                sys.stderr.write(p.tail())
        raise
    finally:
        for p in procs:
            if isinstance(p, Worker):
                p.kill()
            else:
                p.cleanup()
        pg.cleanup()
    print("ok")


def distributed(pg, api, settings, data, song, procs):
    # 2. a job run by a worker process, streamed by the API process
    w1 = Worker(data, settings).start()
    procs.append(w1)
    jid = submit(api, song, {"seed": "3"})
    ws = WS(api.port, f"/ws/jobs/{jid}")
    check(ws.status == 101, ws.head)
    snap = ws.recv_json()
    check(snap["type"] == "snapshot", snap)
    events = collect(ws)
    ws.close()
    check(events[-1]["status"] == "succeeded", events[-1])
    seqs = [e["seq"] for e in events]
    check(seqs == list(range(snap["seq"] + 1, snap["seq"] + 1 + len(seqs))), f"events not dense: {seqs}")
    steps = [e["step"] for e in events if e["type"] == "step"]
    check(steps[-3:] == ["prompt", "render", "store"], steps)
    _, j = api.json("GET", f"/api/jobs/{jid}", expect=200)
    check(len(j["images"]) == 2, j["images"])
    st, h, png = api.http("GET", j["images"][0]["url"])
    check(st == 200 and png[:8] == b"\x89PNG\r\n\x1a\n", (st, h))

    # cancel from the API reaches the job running in the worker process
    jid = submit(api, song, {"seed": "4", "variations": "8", "width": "1024", "height": "1024"})
    wait_status(api, jid, ("running",))
    api.json("POST", f"/api/jobs/{jid}/cancel", expect=202)
    j = api.wait_job(jid, timeout=60)
    check(j["status"] == "cancelled", j["status"])

    # 3. SIGKILL the worker mid-job: another worker completes it exactly once
    # (a job long enough that it cannot finish between "running" and the kill on a quiet machine)
    jid = submit(api, song, {"seed": "5", "variations": "8", "width": "1024", "height": "1024"})
    wait_status(api, jid, ("running",))
    w1.kill()
    procs.remove(w1)
    w2 = Worker(data, settings).start()
    procs.append(w2)
    j = api.wait_job(jid, timeout=120)
    check(j["status"] == "succeeded" and j["attempts"] == 2, (j["status"], j["attempts"], j["error"]))
    idx = sorted(i["index"] for i in j["images"])
    check(idx == list(range(8)), f"one image set expected: {idx}")
    check(pg.query(f"SELECT count(*) FROM images WHERE job_id = {jid}") == "8", "image rows")

    # 4. attempts used up: the worker dies during both attempts → failed, job_interrupted
    jid = submit(api, song, {"seed": "6", "variations": "8", "width": "1024", "height": "1024"})
    for attempt in (1, 2):
        wait_status(api, jid, ("running",), timeout=60)
        check(api.json("GET", f"/api/jobs/{jid}")[1]["attempts"] == attempt, "attempt count")
        w2.kill()
        procs.remove(w2)
        w2 = Worker(data, settings).start()
        procs.append(w2)
        if attempt == 1:
            # taken over after the lease
            deadline = time.time() + 30
            while api.json("GET", f"/api/jobs/{jid}")[1]["attempts"] < 2 and time.time() < deadline:
                time.sleep(0.1)
    j = api.wait_job(jid, timeout=60)
    check(j["status"] == "failed" and j["error"]["code"] == "job_interrupted", (j["status"], j["error"]))
    check(j["attempts"] == 2 and j["images"] == [], (j["attempts"], j["images"]))

    # 5. two API instances, one job, a WebSocket on each: both complete and agree
    api2 = Server(data_dir=data, settings=settings, args=["--no-workers"]).start()
    procs.append(api2)
    api.json("POST", "/api/queue/pause", expect=200)
    jid = submit(api2, song, {"seed": "8"})
    ws1 = WS(api.port, f"/ws/jobs/{jid}")
    ws2 = WS(api2.port, f"/ws/jobs/{jid}")
    s1, s2 = ws1.recv_json(), ws2.recv_json()
    check(s1["job"]["status"] == "queued" and s2["job"]["status"] == "queued", (s1, s2))
    api2.json("POST", "/api/queue/resume", expect=200)
    e1, e2 = collect(ws1), collect(ws2)
    ws1.close()
    ws2.close()
    key = [(e["seq"], e["type"], e.get("status"), e.get("step")) for e in e1]
    check(key == [(e["seq"], e["type"], e.get("status"), e.get("step")) for e in e2], "streams differ")
    check(e1[-1]["status"] == "succeeded", e1[-1])
    _, a = api.json("GET", f"/api/jobs/{jid}", expect=200)
    _, b = api2.json("GET", f"/api/jobs/{jid}", expect=200)
    check(a["images"] == b["images"] and len(a["images"]) == 2, (a["images"], b["images"]))
    w2.stop()
    procs.remove(w2)


def db_down(pg, api, song):
    # 6. PostgreSQL down at submit: 503 db_unavailable, nothing half-written
    before = pg.query("SELECT count(*) FROM jobs")
    pg.stop()
    body, hdrs = multipart({"seed": "9"}, [("file", "song.wav", song)])
    e = api.error("POST", "/api/jobs", body, hdrs, status=503, code="db_unavailable")
    check("PostgreSQL" in e["hint"], e)
    api.error("GET", "/api/jobs", status=503, code="db_unavailable")
    pg.resume()
    check(pg.query("SELECT count(*) FROM jobs") == before, "a job row was written while the database was down")
    check(pg.query("SELECT count(*) FROM jobs WHERE status = 'queued'") == "0", "queued rows")
    deadline = time.time() + 20
    while time.time() < deadline:
        st, _, _ = api.http("GET", "/api/jobs")
        if st == 200:
            break
        time.sleep(0.2)
    check(st == 200, f"the API did not recover after the database came back: {st}")


if __name__ == "__main__":
    main()
