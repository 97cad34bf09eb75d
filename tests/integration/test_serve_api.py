"""Black-box test of `mus2pic serve`: every route of the HTTP API on its happy path.

Uploads a short synthetic song, follows the job to its images, and checks images,
thumbnails, caching headers, de-duplication of identical requests, listing and
gallery filters, tracks (audio with Range, peaks), ZIP export, settings,
templates, presets, batches, queue pause/resume, cancel, retry, delete, metrics,
the embedded page and the OpenAPI document; then a graceful stop.
"""
import io
import json
import os
import sqlite3
import sys
import time
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import Server, check, demo_song, multipart  # noqa: E402


def sqlite_db(srv):
    """The server's SQLite file, or None when it runs on PostgreSQL."""
    url = srv.settings.get("database_url", "")
    if url.startswith("postgres"):
        return None
    return url or os.path.join(srv.data_dir, "mus2pic.db")


def main():
    srv = Server().start()
    try:
        run(srv)
    except BaseException:
        srv.dump()
        raise
    finally:
        srv.cleanup()
    # --warmup creates the renderer before the port opens: no job pays the load
    warm = Server(args=["--warmup"]).start()
    try:
        st, h, m = warm.http("GET", "/metrics")
        check(st == 200 and "m2p_model_loads_total 1" in m.decode(), m[:300])
        # renderer auto without weights: the job says why it got the sonic renderer
        song = demo_song(os.path.join(warm.data_dir, "song.wav"), seconds=4, seed=5)
        body, hdrs = multipart({"renderer": "auto", "variations": "1", "width": "128", "height": "128"},
                               [("file", "song.wav", song)])
        st, job = warm.json("POST", "/api/jobs", body, hdrs, expect=201)
        done = warm.wait_job(job["id"])
        notes = [f["text"] for f in done["progress"]["findings"] if f["key"] == "renderer_note"]
        check(done["status"] == "succeeded" and len(notes) == 1 and "no LCM weights found" in notes[0] and
              "mus2pic model pull" in notes[0], done["progress"]["findings"])
        warm.stop()
    finally:
        warm.cleanup()
    print("ok")


def run(srv):
    song = demo_song(os.path.join(srv.data_dir, "song.wav"), seconds=6, seed=3)

    # health, page, OpenAPI
    st, j = srv.json("GET", "/healthz", expect=200)
    check(j["status"] == "ok", j)
    st, h, body = srv.http("GET", "/")
    check(st == 200 and b"<html" in body and h["content-type"].startswith("text/html"), (st, h))
    check(h.get("x-content-type-options") == "nosniff", h)
    st, h, body = srv.http("GET", "/app.js")
    check(st == 200 and h["content-type"].startswith("text/javascript"), (st, h))
    st, spec = srv.json("GET", "/openapi.json", expect=200)
    check(spec["openapi"].startswith("3.") and "/api/jobs" in spec["paths"], "openapi document incomplete")

    # presets
    st, p = srv.json("GET", "/api/presets", expect=200)
    names = [x["name"] for x in p["presets"]]
    check("abstract" in names and len(names) >= 3, names)

    # a job from an upload, with a fixed seed
    body, hdrs = multipart({"style": "abstract", "seed": "7", "variations": "2"}, [("file", "song.wav", song)])
    st, job = srv.json("POST", "/api/jobs", body, hdrs, expect=201)
    check(job["status"] in ("queued", "running") and job["spec"]["seed"] == 7, job)
    check(job["spec"]["variations"] == 2 and job["spec"]["upload_name"] == "song.wav", job["spec"])
    jid = job["id"]
    done = srv.wait_job(jid)
    check(done["status"] == "succeeded", done)
    check(done["attempts"] == 1 and done["error"] is None, done)
    check(len(done["images"]) == 2 and [i["index"] for i in done["images"]] == [0, 1], done["images"])
    check([i["seed"] for i in done["images"]] == [7, 8], done["images"])
    prog = done["progress"]
    check(prog["step_count"] == 6 and prog["overall"] == 1.0, prog)
    keys = [f["key"] for f in prog["findings"]]
    for k in ("tempo", "key", "prompt", "image"):
        check(k in keys, f"finding {k} missing from {keys}")
    for step in ("decode", "analyze", "prompt", "render", "store"):
        check(prog["steps"][step]["state"] == "done" and prog["steps"][step]["elapsed_s"] >= 0, prog["steps"])
    res = done["result"]
    check(res["analysis"]["tempo_bpm"] > 0 and res["prompt"]["positive"], res)
    check("spectrogram" not in res["analysis"], "big arrays must stay out of the job result")

    # images: PNG, ETag, 304, thumbnail, metadata
    img = done["images"][0]
    st, h, png = srv.http("GET", img["url"])
    check(st == 200 and png[:8] == b"\x89PNG\r\n\x1a\n", (st, png[:8]))
    check(h["content-type"] == "image/png" and h["x-content-type-options"] == "nosniff", h)
    check("immutable" in h["cache-control"] and h.get("etag"), h)
    st, h2, _ = srv.http("GET", img["url"], headers={"If-None-Match": h["etag"]})
    check(st == 304, f"If-None-Match → {st}")
    st, h, webp = srv.http("GET", img["thumb_url"])
    check(st == 200 and h["content-type"] == "image/webp" and webp[:4] == b"RIFF" and webp[8:12] == b"WEBP",
          (st, h, webp[:12]))
    st, meta = srv.json("GET", f"/api/images/{img['id']}/meta", expect=200)
    check(meta["job_id"] == jid and meta["seed"] == 7 and "path" not in meta, meta)
    check(meta["metadata"]["prompt"] and meta["tempo"] > 0, meta)

    # the identical request is answered from stored results, without a new job
    st, again = srv.json("POST", "/api/jobs", body, hdrs, expect=200)
    check(again["id"] == jid and again.get("reused") is True and again["status"] == "succeeded", again)

    # listing and gallery filters
    st, lst = srv.json("GET", "/api/jobs?status=succeeded&limit=10", expect=200)
    check(lst["total"] == 1 and lst["jobs"][0]["id"] == jid, lst)
    st, lst = srv.json("GET", "/api/jobs?status=failed", expect=200)
    check(lst["total"] == 0, lst)
    st, lst = srv.json("GET", "/api/jobs?source=song.wav&style=abstract", expect=200)
    check(lst["total"] == 1, lst)
    st, g = srv.json("GET", "/api/images?style=abstract", expect=200)
    check(g["total"] == 2 and all("path" not in i for i in g["images"]), g)
    tempo = g["images"][0]["tempo"]
    st, g = srv.json("GET", f"/api/images?tempo_min={tempo - 1}&tempo_max={tempo + 1}&key={g['images'][0]['key']}",
                     expect=200)
    check(g["total"] == 2, g)
    st, g = srv.json("GET", "/api/images?tempo_min=400", expect=200)
    check(g["total"] == 0, g)
    st, g = srv.json("GET", "/api/images?q=abstract", expect=200)
    check(g["total"] == 2, g)

    # tracks: metadata, audio with one Range, peaks
    tid = res["track_id"]
    st, t = srv.json("GET", f"/api/tracks/{tid}", expect=200)
    check(t["kind"] == "upload" and t["title"] == "song" and len(t["content_hash"]) == 64, t)
    st, h, audio = srv.http("GET", f"/api/tracks/{tid}/audio")
    check(st == 200 and audio == song and h["accept-ranges"] == "bytes", (st, len(audio), len(song)))
    st, h, part = srv.http("GET", f"/api/tracks/{tid}/audio", headers={"Range": "bytes=0-99"})
    check(st == 206 and part == song[:100] and h["content-range"] == f"bytes 0-99/{len(song)}", (st, h))
    st, h, part = srv.http("GET", f"/api/tracks/{tid}/audio", headers={"Range": "bytes=-10"})
    check(st == 206 and part == song[-10:], (st, len(part)))
    srv.error("GET", f"/api/tracks/{tid}/audio", headers={"Range": "bytes=0-1,2-3,4-5"}, status=416,
              code="range_invalid")
    st, pk = srv.json("GET", f"/api/tracks/{tid}/peaks", expect=200)
    check(pk["count"] >= 100 and max(pk["peaks"]) > 0.01 and max(pk["peaks"]) <= 1.0, pk["count"])
    check(os.path.isfile(os.path.join(srv.data_dir, "peaks", t["content_hash"] + ".json")), "peaks not cached")
    st, pk2 = srv.json("GET", f"/api/tracks/{tid}/peaks", expect=200)
    check(pk2 == pk, "cached peaks differ")

    # ZIP export of a selection
    ids = ",".join(str(i["id"]) for i in done["images"])
    st, h, z = srv.http("GET", f"/api/export.zip?ids={ids}")
    check(st == 200 and h["content-type"] == "application/zip", (st, h))
    zf = zipfile.ZipFile(io.BytesIO(z))
    check(zf.testzip() is None, "zip CRC check")
    names = sorted(zf.namelist())
    want = sorted([f"images/{i['id']}.png" for i in done["images"]] + [f"images/{i['id']}.json" for i in done["images"]]
                  + [f"jobs/{jid}.json"])
    check(names == want, names)
    check(zf.read(f"images/{img['id']}.png") == png, "zip image differs from the served one")
    jobdoc = json.loads(zf.read(f"jobs/{jid}.json"))
    check(jobdoc["result"]["analysis"]["tempo_bpm"] > 0 and "upload_path" not in jobdoc["spec"], jobdoc)

    # settings: the user's defaults apply to new jobs
    st, s = srv.json("PUT", "/api/settings", {"variations": 1, "style": "minimalist", "size": "128x128"}, expect=200)
    check(s["settings"]["variations"] == "1" and s["settings"]["style"] == "minimalist", s)
    srv.error("PUT", "/api/settings", {"steps": 99}, status=400, code="render_steps")
    srv.error("PUT", "/api/settings", {"colour": "red"}, status=400, code="field_invalid")
    st, s = srv.json("GET", "/api/settings", expect=200)
    check(s["settings"].get("size") == "128x128" and "steps" not in s["settings"], s)

    # templates CRUD
    st, tp = srv.json("POST", "/api/templates", {"name": "mine", "text": "poster, {mood}, {palette}"}, expect=201)
    tpid = tp["id"]
    srv.error("POST", "/api/templates", {"name": "bad", "text": "poster {moood}"}, status=400,
              code="template_variable")
    srv.error("POST", "/api/templates", {"name": "mine", "text": "x"}, status=409, code="db_conflict")
    st, tp = srv.json("PUT", f"/api/templates/{tpid}", {"name": "mine", "text": "art of {mood}"}, expect=200)
    check(tp["text"] == "art of {mood}", tp)
    st, tl = srv.json("GET", "/api/templates", expect=200)
    check([t["name"] for t in tl["templates"]] == ["mine"], tl)
    srv.json("POST", "/api/queue/pause", expect=200)
    bt, ht = multipart({"template": "mine"}, [("file", "song.wav", song)])
    st, tj = srv.json("POST", "/api/jobs", bt, ht, expect=201)
    check(tj["spec"]["template"] == "art of {mood}", f"a template named by the job: {tj['spec']}")
    srv.json("POST", f"/api/jobs/{tj['id']}/cancel", expect=202)
    srv.json("DELETE", f"/api/jobs/{tj['id']}", expect=200)
    srv.json("POST", "/api/queue/resume", expect=200)
    srv.json("DELETE", f"/api/templates/{tpid}", expect=200)
    srv.error("GET", f"/api/templates/{tpid}", status=404, code="not_found")

    # pause: jobs wait; cancel a queued job; resume; retry the cancelled one
    srv.json("POST", "/api/queue/pause", expect=200)
    body2, hdrs2 = multipart({"template": "art of {mood}"}, [("file", "song.wav", song)])
    st, j2 = srv.json("POST", "/api/jobs", body2, hdrs2, expect=201)
    check(j2["spec"]["style"] == "minimalist" and j2["spec"]["width"] == 128, j2["spec"])
    st, j3 = srv.json("POST", "/api/jobs", body2, hdrs2, expect=201)
    check(j3["id"] != j2["id"], "jobs without a seed are never de-duplicated")
    time.sleep(0.8)
    st, q = srv.json("GET", "/api/queue", expect=200)
    check(q["paused"] is True and q["counts"]["queued"] == 2, q)
    # embedded workers run both stages; queued jobs wait in the analyze stage
    check(q["stages"]["analyze"]["queued"] == 2 and q["stages"]["render"]["queued"] == 0, q)
    st, j2s = srv.json("GET", f"/api/jobs/{j2['id']}", expect=200)
    check(j2s["status"] == "queued" and j2s["queue_position"] == 1, j2s)
    st, j3s = srv.json("GET", f"/api/jobs/{j3['id']}", expect=200)
    check(j3s["queue_position"] == 2, j3s)
    st, c = srv.json("POST", f"/api/jobs/{j3['id']}/cancel", expect=202)
    check(c["status"] == "cancelled" and c["error"]["code"] == "cancelled", c)
    srv.error("POST", f"/api/jobs/{j3['id']}/cancel", status=409, code="job_state")
    srv.json("POST", "/api/queue/resume", expect=200)
    d2 = srv.wait_job(j2["id"])
    check(d2["status"] == "succeeded" and len(d2["images"]) == 1 and d2["images"][0]["width"] == 128, d2)
    st, r3 = srv.json("POST", f"/api/jobs/{j3['id']}/retry", expect=202)
    check(r3["status"] in ("queued", "running") and r3["attempts"] in (0, 1) and r3["error"] is None, r3)
    d3 = srv.wait_job(j3["id"])
    check(d3["status"] == "succeeded", d3)
    srv.error("POST", f"/api/jobs/{j3['id']}/retry", status=409, code="job_state")

    # batch: two files in one request, a job each, batch progress, batch export
    other = demo_song(os.path.join(srv.data_dir, "other.wav"), seconds=5, seed=9)
    body4, hdrs4 = multipart({"style": "abstract"}, [("file", "a.wav", song), ("file", "b.wav", other)])
    st, b = srv.json("POST", "/api/batches", body4, hdrs4, expect=201)
    check(b["total"] == 2 and len(b["jobs"]) == 2, b)
    for bj in b["jobs"]:
        srv.wait_job(bj["id"])
    st, bs = srv.json("GET", f"/api/batches/{b['id']}", expect=200)
    check(bs["done"] == 2 and bs["fraction"] == 1.0 and bs["counts"]["succeeded"] == 2, bs)
    st, lst = srv.json("GET", f"/api/jobs?batch={b['id']}", expect=200)
    check(lst["total"] == 2, lst)
    st, h, z = srv.http("GET", f"/api/batches/{b['id']}/export.zip")
    check(st == 200 and len([n for n in zipfile.ZipFile(io.BytesIO(z)).namelist() if n.endswith(".png")]) == 2,
          "batch export")

    # delete a finished job: its rows and its files (images, thumbnails, sidecars) go, the others stay
    job_dir = os.path.join(srv.data_dir, "images", f"job-{j2['id']}")
    check(os.path.isdir(job_dir) and any(n.endswith(".png") for n in os.listdir(job_dir)), job_dir)
    st, h, _ = srv.http("GET", d2["images"][0]["thumb_url"])
    check(st == 200 and any(n.endswith(".thumb.webp") for n in os.listdir(job_dir)), "thumbnail beside the image")
    db = sqlite_db(srv)
    if db is not None:
        # image bytes stored in the database go with their image (ON DELETE CASCADE; SQLite needs
        # foreign keys on in the server's connection)
        with sqlite3.connect(db, timeout=30) as con:
            con.execute("INSERT INTO image_data (image_id, png) VALUES (?, ?)", (d2["images"][0]["id"], b"png"))
    srv.json("DELETE", f"/api/jobs/{j2['id']}", expect=200)
    check(not os.path.exists(job_dir), f"{job_dir} still there after DELETE")
    if db is not None:
        with sqlite3.connect(db, timeout=30) as con:
            n = con.execute("SELECT count(*) FROM image_data WHERE image_id = ?", (d2["images"][0]["id"],)).fetchone()
            check(n[0] == 0, "image_data row left after its image was deleted")
            check(con.execute("SELECT count(*) FROM images WHERE job_id = ?", (j2["id"],)).fetchone()[0] == 0,
                  "image rows left")
    srv.error("GET", f"/api/jobs/{j2['id']}", status=404, code="job_not_found")
    srv.error("GET", f"/api/images/{d2['images'][0]['id']}", status=404, code="image_not_found")
    st, lst = srv.json("GET", "/api/jobs", expect=200)
    check(lst["total"] == 4, lst)

    # events of a job, in order, from a sequence number
    st, ev = srv.json("GET", f"/api/jobs/{jid}/events", expect=200)
    seqs = [e["seq"] for e in ev["events"]]
    check(seqs == list(range(1, len(seqs) + 1)) and ev["seq"] == seqs[-1], seqs)
    st, ev2 = srv.json("GET", f"/api/jobs/{jid}/events?since=3", expect=200)
    check([e["seq"] for e in ev2["events"]] == seqs[3:], "events since")

    # metrics
    st, h, m = srv.http("GET", "/metrics")
    m = m.decode()
    check(st == 200 and h["content-type"].startswith("text/plain"), h)
    check('m2p_jobs{status="succeeded"} 4' in m and "m2p_queue_depth 0" in m, m[:800])
    check('m2p_step_seconds_count{step="render"}' in m and "m2p_request_dedup_total 1" in m, m)
    check('m2p_jobs_stage{stage="analyze",status="queued"} 0' in m and
          'm2p_jobs_stage{stage="render",status="running"} 0' in m, m)
    check("m2p_model_loads_total 1" in m and 'm2p_renderer_loaded{renderer="sonic"} 1' in m, m)

    rc = srv.stop()
    check(rc == 0, f"exit {rc}")


if __name__ == "__main__":
    main()
