#!/usr/bin/env python3
"""Live previews of lcm jobs through the API, on the tiny random model of tests/fixtures/nn/tiny-lcm
(its taesd/ folder is the tiny TAESD):

- previews=auto with TAESD: a job of `steps` denoising steps emits one "preview" event per step but
  the last (steps 1..n-1, in order, index 0, stated width/height ≤ 256 on the longer side, no image
  bytes in the event); while it renders, GET /api/jobs/{id} carries progress.preview with a url and
  no data, and GET /api/jobs/{id}/preview answers a valid WebP of the stated size with
  X-Preview-Step; once finished the preview is gone (no progress.preview, 204 No Content)
  and the final images are there;
- previews=off: no preview event, 204 from the preview route;
- TAESD not installed (a model folder without taesd/): no preview event, the job succeeds;
- the final image is the same with and without previews (same seed: the same pixels).

The previews are caught live: a WebSocket reader thread GETs the preview the moment each event
arrives (each preview is written before the render goes on, so the picture of that step, or of a
later one, is there until the render ends).
Python standard library only."""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import time  # noqa: E402
from serve_util import WS, Server, check, demo_song, multipart  # noqa: E402
from test_lcm_make import png_pixels  # noqa: E402

SRC = os.environ.get("MUS2PIC_SOURCE_DIR", ".")
TINY = os.path.abspath(os.path.join(SRC, "tests", "fixtures", "nn", "tiny-lcm"))
STEPS = 4
# the engine decodes previews at half size (272×32 here, m2p_taesd_decode_half) and the worker scales
# that to 256×30 (longer side 256)
W, H = 544, 64
PW, PH = 256, 30


def webp_size(data):
    """(width, height) of a lossy (VP8) or lossless (VP8L) WebP; raises on anything else."""
    check(data[:4] == b"RIFF" and data[8:12] == b"WEBP", f"not a WebP: {data[:16]!r}")
    (riff_len,) = struct.unpack("<I", data[4:8])
    check(riff_len + 8 == len(data), f"RIFF length {riff_len + 8} != {len(data)}")
    kind = data[12:16]
    if kind == b"VP8 ":
        check(data[23:26] == b"\x9d\x01\x2a", "VP8 start code missing")
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if kind == b"VP8L":
        b = data[21:25]
        bits = int.from_bytes(b, "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    check(False, f"unexpected WebP chunk {kind!r}")
    return 0, 0


def image_pixels(srv, job, index):
    im = next(i for i in job["images"] if i["index"] == index)
    st, _, data = srv.http("GET", im["url"])
    check(st == 200, f"GET {im['url']}: {st}")
    path = os.path.join(srv.data_dir, f"check-{job['id']}-{index}.png")
    with open(path, "wb") as f:
        f.write(data)
    return png_pixels(path)


def run_job(srv, song, watch_previews, variations=2):
    """Submits a job; returns (final job, events, fetched previews [(headers, bytes)], live job JSONs)."""
    srv.json("POST", "/api/queue/pause", expect=200)
    body, hdrs = multipart({"variations": str(variations), "size": f"{W}x{H}", "steps": str(STEPS), "renderer": "lcm",
                            "seed": "5"}, [("file", "song.wav", song)])
    _, job = srv.json("POST", "/api/jobs", body, hdrs, expect=201)
    jid = job["id"]
    ws = WS(srv.port, f"/ws/jobs/{jid}")
    check(ws.status == 101, ws.head)
    check(ws.recv_json()["type"] == "snapshot", "snapshot first")
    events, fetched, live = [], [], []

    def reader():
        while True:
            ev = ws.recv_json(timeout=300)
            events.append(ev)
            if ev.get("type") == "preview" and watch_previews:
                st, h, data = srv.http("GET", f"/api/jobs/{jid}/preview")
                if st == 200:
                    fetched.append((h, data))
                _, j = srv.json("GET", f"/api/jobs/{jid}")
                live.append(j)
            if ev.get("type") == "state" and ev.get("status") in ("succeeded", "failed", "cancelled", "partial"):
                return

    t0 = time.time()
    t = threading.Thread(target=reader)
    t.start()
    srv.json("POST", "/api/queue/resume", expect=200)
    t.join(timeout=600)
    ws.close()
    check(not t.is_alive(), "the job did not finish")
    final = srv.wait_job(jid)
    print(f"job {jid}: {time.time() - t0:.1f} s, step times {[(k, round(v.get('elapsed_s', 0), 2)) for k, v in ((final.get('progress') or {}).get('steps') or {}).items()]}")
    return final, events, fetched, live


def distributed(base, song, tmp):
    from services_util import Postgres
    from test_scale_pg import Worker
    pg = Postgres().start()
    api = w = None
    try:
        settings = dict(base, database_url=pg.url, retry_base_s="0.3")
        api = Server(settings=settings, args=["--no-workers"]).start()
        wdata = os.path.join(tmp, "worker-data")
        os.makedirs(wdata)
        w = Worker(wdata, settings).start()
        job, events, fetched, live = run_job(api, song, True, variations=1)
        check(job["status"] == "succeeded", f"distributed job failed: {job.get('error')}")
        pv = [e for e in events if e["type"] == "preview"]
        check([e["step"] for e in pv] == list(range(1, STEPS)), f"distributed preview steps: {pv}")
        check(fetched, "the API host served no preview")
        for h, data in fetched:
            check(webp_size(data) == (PW, PH), "distributed preview size")
        check(api.http("GET", f"/api/jobs/{job['id']}/preview")[0] == 204, "finished: not 204")
    except BaseException:
        if api is not None:
            api.dump()
        if w is not None:
            sys.stderr.write(w.tail())
        raise
    finally:
        if w is not None:
            w.kill()
        if api is not None:
            api.cleanup()
        pg.cleanup()


def main():
    tmp = tempfile.mkdtemp(prefix="m2p-previews-")
    try:
        song = demo_song(os.path.join(tmp, "song.wav"), seconds=6)
        # a model folder without TAESD: the tiny model's parts, linked
        bare = os.path.join(tmp, "bare-lcm")
        os.makedirs(bare)
        for name in os.listdir(TINY):
            if name != "taesd":
                os.symlink(os.path.join(TINY, name), os.path.join(bare, name))
        base = {"renderer": "lcm", "model": TINY, "steps": str(STEPS), "variations": "2",
                "taesd": "", "log_level": "warn"}

        # --- previews=auto, TAESD inside the model folder
        srv = Server(settings=dict(base)).start()
        try:
            job, events, fetched, live = run_job(srv, song, True)
            first_pixels = image_pixels(srv, job, 0)
            check(job["status"] == "succeeded", f"job failed: {job.get('error')}")
            check(len(job["images"]) == 2, f"images: {job['images']}")
            pv = [e for e in events if e["type"] == "preview"]
            check([e["step"] for e in pv] == list(range(1, STEPS)), f"preview steps: {[e['step'] for e in pv]}")
            for e in pv:
                check(e["steps"] == STEPS and e["index"] == 0, e)
                check((e["width"], e["height"]) == (PW, PH), f"preview size {e['width']}x{e['height']}")
                check(e["type"] == "preview" and "data" not in e and 0 < e["bytes"] <= 48 * 1024, e)
            # each preview comes before the final images are stored
            first_saved = min(i for i, e in enumerate(events) if e["type"] == "finding" and e.get("key") == "image")
            check(max(events.index(e) for e in pv) < first_saved, "a preview after the images were saved")
            check(fetched, "no preview could be fetched while the job rendered")
            for h, data in fetched:
                step = int(h["x-preview-step"])
                check(1 <= step < STEPS and h["x-preview-steps"] == str(STEPS) and h["x-preview-index"] == "0", h)
                check(h["content-type"] == "image/webp" and "no-store" in h.get("cache-control", ""), h)
                check(webp_size(data) == (PW, PH), f"fetched preview is {webp_size(data)}")
                check(len(data) == next(e["bytes"] for e in pv if e["step"] == step), "bytes differ from the event")
            with_pv = [j for j in live if j["status"] == "running" and (j.get("progress") or {}).get("preview")]
            check(with_pv, "GET /api/jobs/{id} never showed progress.preview during the render")
            for j in with_pv:
                p = j["progress"]["preview"]
                check("data" not in p and p["url"].startswith(f"/api/jobs/{j['id']}/preview?"), p)
            check("preview" not in (job.get("progress") or {}), "the finished job still carries a preview")
            check(srv.http("GET", f"/api/jobs/{job['id']}/preview")[0] == 204, "finished job: preview not 204")
            srv.error("POST", f"/api/jobs/{job['id']}/preview", status=405)
            srv.error("GET", "/api/jobs/999999/preview", status=404, code="job_not_found")
            # the stored event log holds no image bytes
            _, evs = srv.json("GET", f"/api/jobs/{job['id']}/events", expect=200)
            check(all("data" not in e for e in evs["events"]), "image bytes in the event log")
            check(len(json.dumps(evs)) < 64 * 1024, f"event log of {len(json.dumps(evs))} bytes")
        except BaseException:
            srv.dump()
            raise
        finally:
            srv.cleanup()

        # --- several hosts, no shared filesystem: an API process without workers and a
        # `mus2pic worker` with its own data folder on one PostgreSQL; the API host serves the
        # previews from the database
        if os.environ.get("M2P_SKIP_SERVICES") == "1":
            print("PostgreSQL part skipped (M2P_SKIP_SERVICES=1)")
        else:
            distributed(base, song, tmp)

        # --- previews=off, and TAESD not installed: no previews, same images
        for name, extra in (("previews=off", {"previews": "off"}), ("no TAESD", {"model": bare})):
            s = dict(base)
            s.update(extra)
            srv = Server(settings=s).start()
            try:
                job, events, _, _ = run_job(srv, song, False, variations=1)
                check(job["status"] == "succeeded", f"{name}: job failed: {job.get('error')}")
                check(not [e for e in events if e["type"] == "preview"], f"{name}: preview events")
                check(len(job["images"]) == 1, f"{name}: images")
                # previews never touch the final image: the same seed gives the same pixels
                check(image_pixels(srv, job, 0) == first_pixels, f"{name}: other pixels than with previews")
                check(srv.http("GET", f"/api/jobs/{job['id']}/preview")[0] == 204, f"{name}: preview not 204")
            except BaseException:
                srv.dump()
                raise
            finally:
                srv.cleanup()

        # --- a bad value is refused at start, naming the setting
        env = dict(os.environ, MUS2PIC_DATA_DIR=os.path.join(tmp, "bad"))
        p = subprocess.run([os.environ.get("MUS2PIC", "./mus2pic"), "serve", "--port", "0", "--set", "previews=maybe",
                            "--set", "renderer=sonic"], env=env, capture_output=True, text=True, timeout=60)
        check(p.returncode != 0 and "previews takes auto or off" in p.stderr, f"previews=maybe: {p.returncode} {p.stderr}")
        print("ok")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
