"""Black-box tests of queue=redis (Redis Streams + pub/sub) against a real Redis and
PostgreSQL, both started here.

1. a job submitted to an API process (serve --no-workers) is XADDed, taken by a
   `mus2pic worker` through its consumer group, and streamed over the WebSocket
   of the API process (events published by the worker); its images are served
   from the bytes in PostgreSQL once the files are gone;
2. SIGKILL of the worker mid-job: another worker takes the stream entry over
   (XAUTOCLAIM after the lease) and the job completes exactly once (attempt 2,
   one image set);
3. Redis restarted empty mid-queue: the queued jobs are put on the stream again
   from the database and all complete;
4. rate limits are counted in Redis: two API processes share one budget.
"""
import os
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import WS, Server, check, demo_song, multipart  # noqa: E402
from services_util import Postgres, Redis  # noqa: E402
from test_scale_pg import Worker, collect, submit, wait_status  # noqa: E402


class Dir:
    """A temporary folder removed at the end (in the list of things to clean up)."""

    def __init__(self, path):
        self.path = path

    def tail(self):
        return ""

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)


def redis_cmd(port, *args):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        out = f"*{len(args)}\r\n".encode()
        for a in args:
            a = str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(out)
        return s.recv(65536).decode(errors="replace")


def main():
    if os.environ.get("M2P_SKIP_SERVICES") == "1":
        print("skipped (M2P_SKIP_SERVICES=1)")
        return
    t0 = time.time()
    pg = Postgres().start()
    rd = Redis().start()
    procs = []
    try:
        settings = {"database_url": pg.url, "queue": "redis", "broker_url": rd.url, "renderer": "sonic",
                    "variations": "2", "width": "256", "height": "256", "log_level": "warn",
                    "retry_base_s": "0.3", "max_attempts": "3"}
        api = Server(settings=settings, args=["--no-workers"]).start()
        procs.append(api)
        data = api.data_dir
        song = demo_song(os.path.join(data, "song.wav"), seconds=20, seed=5)
        run(api, settings, data, song, rd, procs)
        print(f"redis mode: ok ({time.time() - t0:.1f} s)", flush=True)
    except BaseException:
        for p in procs:
            if isinstance(p, Server):
                p.dump()
            else:
                sys.stderr.write(p.tail())
        raise
    finally:
        for p in procs:
            if isinstance(p, Worker):
                p.kill()
            else:
                p.cleanup()
        rd.cleanup()
        pg.cleanup()
    print("ok")


def run(api, settings, data, song, rd, procs):
    # workers get their own folder: nothing shared with the API but PostgreSQL and Redis
    wdata = tempfile.mkdtemp(prefix="m2p-worker-")
    procs.append(Dir(wdata))
    # 1. stream → worker → pub/sub → WebSocket of the API process
    w1 = Worker(wdata, settings).start()
    procs.append(w1)
    jid = submit(api, song, {"seed": "3"})
    ws = WS(api.port, f"/ws/jobs/{jid}")
    check(ws.status == 101, ws.head)
    snap = ws.recv_json()
    events = collect(ws)
    ws.close()
    check(events[-1]["status"] == "succeeded", events[-1])
    seqs = [e["seq"] for e in events]
    check(seqs == list(range(snap["seq"] + 1, snap["seq"] + 1 + len(seqs))), f"events not dense: {seqs}")
    # no shared filesystem: the worker's folder is not the API's; the upload
    # reached the worker through PostgreSQL, and the API serves the image bytes
    # stored there (and makes the thumbnail)
    _, j = api.json("GET", f"/api/jobs/{jid}", expect=200)
    check(not os.path.exists(os.path.join(data, "images", f"job-{jid}")), "the API host has the image files")
    check(os.path.isdir(os.path.join(wdata, "uploads")), "the worker got no copy of the upload")
    for im in j["images"]:
        st, h, png = api.http("GET", im["url"])
        check(st == 200 and png[:8] == b"\x89PNG\r\n\x1a\n", (st, png[:300]))
        st, h, thumb = api.http("GET", im["thumb_url"])
        check(st == 200 and thumb[:4] == b"RIFF" and h["content-type"] == "image/webp", (st, h))
    # the entry was acked and deleted after the commit (one stream per stage; a worker of role all
    # kept the job across both stages, so nothing went to the render stream)
    for stream in ("m2p:jobs:analyze", "m2p:jobs:render"):
        check(redis_cmd(rd.port, "XLEN", stream).strip() == ":0", (stream, redis_cmd(rd.port, "XLEN", stream)))

    # 2. SIGKILL mid-job → XAUTOCLAIM by another worker → exactly one image set
    # (a job long enough that it cannot finish between "running" and the kill on a quiet machine)
    jid = submit(api, song, {"seed": "5", "variations": "8", "width": "1024", "height": "1024"})
    wait_status(api, jid, ("running",))
    w1.kill()
    procs.remove(w1)
    w2 = Worker(wdata, settings).start()
    procs.append(w2)
    j = api.wait_job(jid, timeout=120)
    check(j["status"] == "succeeded" and j["attempts"] == 2, (j["status"], j["attempts"], j["error"]))
    check(sorted(i["index"] for i in j["images"]) == list(range(8)), j["images"])
    w2.stop()
    procs.remove(w2)

    # 3. Redis restarted empty mid-queue: queued jobs still complete
    ids = [submit(api, song, {"seed": str(20 + i)}) for i in range(3)]
    time.sleep(0.5)
    check(redis_cmd(rd.port, "XLEN", "m2p:jobs:analyze").strip() == ":3", redis_cmd(rd.port, "XLEN", "m2p:jobs:analyze"))
    rd.stop()
    time.sleep(0.5)
    rd.start()
    check(redis_cmd(rd.port, "XLEN", "m2p:jobs:analyze").strip() == ":0", "redis kept its data")
    w3 = Worker(wdata, settings).start()
    procs.append(w3)
    for jid in ids:
        j = api.wait_job(jid, timeout=120)
        check(j["status"] == "succeeded" and len(j["images"]) == 2, (jid, j["status"], j["error"]))

    w3.stop()
    procs.remove(w3)

    # 4. rate limits counted in Redis: two API processes share the budget
    lim = dict(settings, rate_limit_per_min="4")
    a1 = Server(data_dir=data, settings=lim, args=["--no-workers"]).start()
    procs.append(a1)
    a2 = Server(data_dir=data, settings=lim, args=["--no-workers"]).start()
    procs.append(a2)
    codes = []
    for i in range(6):
        srv = a1 if i % 2 == 0 else a2
        body, hdrs = multipart({"seed": str(100 + i)}, [("file", "song.wav", song)])
        st, _, _ = srv.http("POST", "/api/jobs", body, hdrs)
        codes.append(st)
    check(codes.count(429) >= 2, f"the limit was not shared: {codes}")


if __name__ == "__main__":
    main()
