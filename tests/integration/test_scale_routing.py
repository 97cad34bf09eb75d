"""Black-box tests of job routing: analysis on CPU workers, rendering on GPU workers
(`mus2pic worker --role cpu|gpu`), against a real PostgreSQL and Redis started here.

For queue=db (PostgreSQL only) and queue=redis (a stream per stage), with an API
process (serve --no-workers) and workers that share nothing with it or with each
other but the database (and Redis): each has its own data folder.

1. one cpu worker + one gpu worker: jobs complete; the analyze stage ran on the cpu
   worker and the render stage on the gpu worker (the worker ids in the events);
   the web page's log gets "Analysis done, waiting for a render worker"; the gpu
   worker never saw the audio (no uploads/ in its folder) and warmed its renderer
   at start, the cpu worker never loaded one; (db mode) a per-section job too;
2. only cpu workers running: the job waits in the render stage (queued, not failed,
   long after any lease) and completes once a gpu worker starts;
3. SIGKILL of the gpu worker mid-render: another gpu worker completes the job
   exactly once (one image set, one "succeeded" event);
4. (db mode) a song fetched by URL: the cpu worker stores its audio in `uploads`
   keyed by the track's content hash (the bytes hash to the key);
5. (redis mode) the dead-letter path: an entry delivered more often than
   max_attempts + 2 (a consumer that took it and died before claiming it in the
   database, again and again) goes to m2p:jobs:analyze:dead and the job fails
   job_interrupted.
"""
import json
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
from serve_util import BIN, Server, check, demo_song  # noqa: E402
from services_util import Postgres, Redis  # noqa: E402
from test_scale_pg import submit  # noqa: E402
from test_scale_redis import redis_cmd  # noqa: E402

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LEASE = "2"


class RoleWorker:
    """`mus2pic worker --role ROLE` in its own data folder."""

    def __init__(self, role, settings, lease=LEASE):
        self.role = role
        self.settings = settings
        self.lease = lease
        self.data_dir = tempfile.mkdtemp(prefix=f"m2p-{role}-")
        self.log = os.path.join(self.data_dir, "worker.txt")
        self.proc = None
        self.ready = ""

    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=60, threads="1"):
        cmd = [BIN, "worker", "--role", self.role, "--lease", self.lease] + (["--threads", threads] if threads else [])
        for k, v in self.settings.items():
            cmd += ["--set", f"{k}={v}"]
        env = dict(os.environ, MUS2PIC_DATA_DIR=self.data_dir)
        env.pop("MUS2PIC_CONFIG", None)
        self.errf = open(self.log, "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.errf, env=env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if r:
                self.ready = self.proc.stdout.readline().decode(errors="replace")
                check("worker ready" in self.ready, f"{self.role} worker did not start: {self.ready!r} {self.tail()}")
                return self
            check(self.proc.poll() is None, f"{self.role} worker exited: {self.tail()}")
        check(False, f"{self.role} worker did not start in time")

    def tail(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
            check(self.proc.returncode == 0, f"{self.role} worker exit {self.proc.returncode}: {self.tail()}")
        self.proc = None

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def events(api, jid):
    _, ev = api.json("GET", f"/api/jobs/{jid}/events", expect=200)
    return ev["events"]


def running_by_stage(evs):
    """{stage: [worker, ...]} from the 'running' state events."""
    out = {}
    for e in evs:
        if e["type"] == "state" and e.get("status") == "running":
            out.setdefault(e.get("stage"), []).append(e.get("worker", ""))
    return out


def wait_job(api, jid, pred, what, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        _, j = api.json("GET", f"/api/jobs/{jid}", expect=200)
        if pred(j):
            return j
        check(j["status"] in ("queued", "running") or pred(j), f"job {jid} ended early: {j['status']} {j['error']}")
        time.sleep(0.05)
    check(False, f"job {jid}: {what} did not happen")


def done_once(api, pg, jid, n_images):
    j = api.wait_job(jid, timeout=120)
    check(j["status"] == "succeeded" and j["stage"] == "render", (j["status"], j["stage"], j["error"]))
    check(sorted(i["index"] for i in j["images"]) == list(range(n_images)), j["images"])
    check(pg.query(f"SELECT count(*) FROM images WHERE job_id = {jid}") == str(n_images), "image rows")
    finals = [e for e in events(api, jid) if e["type"] == "state" and e.get("status") == "succeeded"]
    check(len(finals) == 1, f"job {jid} completed {len(finals)} times")
    return j


def scenario(mode, pg, rd, song, procs):
    t0 = time.time()
    pg.psql("DROP DATABASE IF EXISTS m2p")
    pg.psql("CREATE DATABASE m2p OWNER m2p")
    redis_cmd(rd.port, "FLUSHALL")
    settings = {"database_url": pg.url, "renderer": "sonic", "variations": "2", "width": "256", "height": "256",
                "log_level": "warn", "retry_base_s": "0.3", "max_attempts": "3", "unsafe_test_loopback": "true"}
    if mode == "redis":
        settings.update(queue="redis", broker_url=rd.url)
    api = Server(settings=settings, args=["--no-workers"]).start()
    procs.append(api)
    cpu = RoleWorker("cpu", settings).start()
    procs.append(cpu)
    # a gpu worker runs one job at a time whatever the workers setting says (no --threads given)
    gpu = RoleWorker("gpu", dict(settings, workers="3")).start(threads=None)
    check("role gpu, 1 threads" in gpu.ready, gpu.ready)
    procs.append(gpu)
    check("renderer sonic" in gpu.ready and "role gpu" in gpu.ready, gpu.ready)
    check("renderer" not in cpu.ready and "role cpu" in cpu.ready, cpu.ready)

    # 1. cpu analyses, gpu renders
    jid = submit(api, song, {"seed": "3"})
    j = done_once(api, pg, jid, 2)
    evs = events(api, jid)
    by = running_by_stage(evs)
    check(len(by.get("analyze", [])) == 1 and f"-{cpu.pid}-" in by["analyze"][0], (by, cpu.pid))
    check(len(by.get("render", [])) == 1 and f"-{gpu.pid}-" in by["render"][0], (by, gpu.pid))
    texts = [e.get("text") for e in evs if e["type"] == "finding" and e.get("key") == "stage"]
    check(texts == ["Analysis done, waiting for a render worker"], texts)
    waiting = [e for e in evs if e["type"] == "state" and e.get("status") == "queued" and e.get("stage") == "render"]
    check(len(waiting) == 1, "no 'queued in stage render' event")
    # steps in order across the two workers; the render worker's live state keeps the analysis findings
    steps = [e["step"] for e in evs if e["type"] == "step"]
    check(steps.index("analyze") < steps.index("render") < steps.index("store"), steps)
    keys = [f.get("key") for f in j["progress"]["findings"]]
    check("tempo" in keys and "image" in keys, keys)
    check(j["result"]["analysis"]["tempo_bpm"] > 0 and j["result"]["prompt"]["positive"], j["result"])
    check(not os.path.exists(os.path.join(gpu.data_dir, "uploads")), "the gpu worker fetched the audio")
    check(os.path.isdir(os.path.join(cpu.data_dir, "uploads")), "the cpu worker got no copy of the upload")
    st, _, png = api.http("GET", j["images"][0]["url"])
    check(st == 200 and png[:8] == b"\x89PNG\r\n\x1a\n", st)
    if mode == "db":
        # one poster per section: the gpu worker builds the section prompts from the stored features
        jid = submit(api, song, {"seed": "6", "per_section": "true", "layout": "true"})
        j = api.wait_job(jid, timeout=120)
        n_sections = len(j["result"]["analysis"]["sections"]) if j["status"] == "succeeded" else -1
        check(j["status"] == "succeeded" and len(j["images"]) == max(1, n_sections), (j["status"], j["error"]))
        check(f"-{gpu.pid}-" in running_by_stage(events(api, jid))["render"][0], "per-section render elsewhere")
    print(f"{mode}: cpu analyses, gpu renders ({time.time() - t0:.1f} s)", flush=True)

    # 2. no gpu worker: the job waits in the render stage, then completes when one starts
    gpu.stop()
    jid = submit(api, song, {"seed": "4"})
    wait_job(api, jid, lambda j: j["stage"] == "render" and j["status"] == "queued", "analysis")
    time.sleep(float(LEASE) * 2 + 0.5)  # well past any lease: still waiting, not failed
    _, j = api.json("GET", f"/api/jobs/{jid}", expect=200)
    check(j["status"] == "queued" and j["stage"] == "render" and j["error"] is None, (j["status"], j["error"]))
    if mode == "redis":
        check(redis_cmd(rd.port, "XLEN", "m2p:jobs:render").strip() == ":1", redis_cmd(rd.port, "XLEN", "m2p:jobs:render"))
    gpu2 = RoleWorker("gpu", settings).start()
    procs.append(gpu2)
    done_once(api, pg, jid, 2)
    print(f"{mode}: waits for a gpu worker ({time.time() - t0:.1f} s)", flush=True)

    # 3. SIGKILL the gpu worker mid-render: another gpu worker completes it exactly once
    jid = submit(api, song, {"seed": "5", "variations": "6", "width": "768", "height": "768"})
    wait_job(api, jid, lambda j: j["status"] == "running" and (j["progress"] or {}).get("step") == "render",
             "render start")
    killed = gpu2.pid
    gpu2.kill()
    gpu3 = RoleWorker("gpu", settings).start()
    procs.append(gpu3)
    j = done_once(api, pg, jid, 6)
    check(j["attempts"] == 3, f"analyze 1 + render 2 attempts expected: {j['attempts']}")
    by = running_by_stage(events(api, jid))
    check(len(by["render"]) == 2 and f"-{killed}-" in by["render"][0] and f"-{gpu3.pid}-" in by["render"][1], by)
    print(f"{mode}: gpu killed mid-render, completed once ({time.time() - t0:.1f} s)", flush=True)

    if mode == "db":
        fetched_audio_kept(api, pg, cpu, song)
        print(f"{mode}: fetched audio kept in uploads ({time.time() - t0:.1f} s)", flush=True)
    else:
        dead_letter(api, rd, settings, song, cpu, procs)
        print(f"{mode}: dead letter ({time.time() - t0:.1f} s)", flush=True)
    for w in (cpu, gpu3):
        w.stop()


def fetched_audio_kept(api, pg, cpu, song):
    """4. A song fetched by URL (yt-dlp from a loopback page): its bytes in uploads, keyed by content hash."""
    tmp = tempfile.mkdtemp(prefix="m2p-loop-")
    port_file = os.path.join(tmp, "port")
    server = subprocess.Popen([sys.executable, os.path.join(SRC, "tests/tools/loopback_server.py"),
                               "--port-file", port_file, "--stats-file", os.path.join(tmp, "stats.json")])
    try:
        for _ in range(200):
            if os.path.exists(port_file):
                break
            time.sleep(0.05)
        with open(port_file) as f:
            port = int(f.read())
        _, job = api.json("POST", "/api/jobs", json.dumps({"source": f"http://127.0.0.1:{port}/slow", "seed": 7}),
                          {"Content-Type": "application/json"}, expect=201)
        jid = job["id"]
        j = api.wait_job(jid, timeout=120)
        check(j["status"] == "succeeded", (j["status"], j["error"]))
        h = pg.query(f"SELECT t.content_hash FROM jobs j JOIN tracks t ON t.id = j.track_id WHERE j.id = {jid}")
        check(re.fullmatch(r"[0-9a-f]{64}", h), f"track hash {h!r}")
        got = pg.query(f"SELECT encode(sha256(data), 'hex') FROM uploads WHERE sha256 = '{h}'")
        check(got == h, f"uploads row for the fetched track: {got!r} vs {h}")
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def dead_letter(api, rd, settings, song, cpu, procs):
    """5. Too many deliveries → the per-stage dead-letter stream, job failed job_interrupted."""
    cpu.stop()
    jid = submit(api, song, {"seed": "9"})
    deadline = time.time() + 10
    while redis_cmd(rd.port, "XLEN", "m2p:jobs:analyze").strip() != ":1" and time.time() < deadline:
        time.sleep(0.05)
    # Every process runs a reconciler; two of them may both XADD the new job in the same second
    # (duplicates are harmless in the product: the database claim takes a job once). Let them
    # settle, then the ghost takes every entry of the job, so no fresh entry is left to run it.
    time.sleep(2.5)
    # and one duplicate for sure, as two reconcilers racing would leave it
    redis_cmd(rd.port, "XADD", "m2p:jobs:analyze", "*", "job", str(jid))
    # a consumer takes the entries and dies before claiming the job in the database, six times over
    reply = redis_cmd(rd.port, "XREADGROUP", "GROUP", "workers", "ghost", "COUNT", "100", "STREAMS",
                      "m2p:jobs:analyze", ">")
    entries = re.findall(r"\$\d+\r\n(\d+-\d+)\r\n", reply)
    check(len(entries) >= 2, f"entries delivered: {reply!r}")
    for entry in entries:
        for _ in range(5):
            redis_cmd(rd.port, "XCLAIM", "m2p:jobs:analyze", "workers", "ghost", "0", entry)
    pending = redis_cmd(rd.port, "XPENDING", "m2p:jobs:analyze", "workers", "-", "+", "100")
    counts = re.findall(r"\$\d+\r\n(\d+-\d+)\r\n\$\d+\r\n\w+\r\n:\d+\r\n:(\d+)\r\n", pending)
    check(sorted(counts) == sorted((e, "6") for e in entries), f"delivery counts: {pending!r}")
    # a live worker takes the idle entry over (XAUTOCLAIM after its lease): the 7th delivery is one too many
    w = RoleWorker("cpu", settings, lease="1").start()
    procs.append(w)
    j = api.wait_job(jid, timeout=30)
    check(j["status"] == "failed" and j["error"]["code"] == "job_interrupted" and "delivered" in j["error"]["detail"],
          (j["status"], j["error"]))
    check(j["attempts"] == 0, f"the job never ran: {j['attempts']}")
    # the worker fails the job in the database first (the source of truth), then moves the entry:
    # the dead letter may arrive a moment after the job reads failed
    deadline = time.time() + 10
    dead = redis_cmd(rd.port, "XRANGE", "m2p:jobs:analyze:dead", "-", "+")
    while f"\r\n{jid}\r\n" not in dead and time.time() < deadline:
        time.sleep(0.1)
        dead = redis_cmd(rd.port, "XRANGE", "m2p:jobs:analyze:dead", "-", "+")
    check(f"\r\n{jid}\r\n" in dead and any(e in dead for e in entries), f"dead letter: {dead!r}")
    # a duplicate entry (if any) is taken over after its idle time and dropped: the job is over
    deadline = time.time() + 15
    while redis_cmd(rd.port, "XLEN", "m2p:jobs:analyze").strip() != ":0" and time.time() < deadline:
        time.sleep(0.1)
    check(redis_cmd(rd.port, "XLEN", "m2p:jobs:analyze").strip() == ":0", "an entry is still on the stream")
    check(api.json("GET", f"/api/jobs/{jid}", expect=200)[1]["status"] == "failed", "the job stays failed")
    w.stop()


def role_refusals():
    """A role that does not exist is a usage error (exit 2) naming the choices, from the flag or the setting."""
    env = dict(os.environ, MUS2PIC_DATABASE_URL="postgresql://m2p@127.0.0.1:1/m2p")
    env.pop("MUS2PIC_CONFIG", None)
    for argv, text in (([BIN, "worker", "--role", "tpu"], "--role takes all, cpu or gpu"),
                       ([BIN, "worker", "--set", "worker_role=tpu"], "worker_role takes all, cpu or gpu")):
        r = subprocess.run(argv, capture_output=True, env=env, timeout=60)
        err = r.stderr.decode(errors="replace")
        check(r.returncode == 2 and text in err, f"{argv[1:]}: exit {r.returncode}, {err[-300:]}")


def main():
    role_refusals()
    if os.environ.get("M2P_SKIP_SERVICES") == "1":
        print("skipped (M2P_SKIP_SERVICES=1)")
        return
    t0 = time.time()
    pg = Postgres().start()
    rd = Redis().start()
    procs = []
    song_dir = tempfile.mkdtemp(prefix="m2p-routing-")
    try:
        song = demo_song(os.path.join(song_dir, "song.wav"), seconds=20, seed=5)
        for mode in ("db", "redis"):
            scenario(mode, pg, rd, song, procs)
            for p in procs:
                p.cleanup()
            procs.clear()
        print(f"routing: ok ({time.time() - t0:.1f} s)", flush=True)
    except BaseException:
        for p in procs:
            if isinstance(p, Server):
                p.dump()
            else:
                sys.stderr.write(f"--- {p.role} worker ---\n{p.tail()}\n")
        raise
    finally:
        for p in procs:
            p.cleanup()
        rd.cleanup()
        pg.cleanup()
        shutil.rmtree(song_dir, ignore_errors=True)
    print("ok")


if __name__ == "__main__":
    main()
