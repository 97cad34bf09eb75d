"""Black-box test of stored bytes without a shared filesystem (real PostgreSQL, started here).

An API process (`serve --no-workers`) and a `mus2pic worker` with separate data
folders; after the jobs, the worker's folder is moved away, so nothing the worker
wrote can be read as a file by the API host. Then:

1. ZIP exports (a selection and a batch) hold every image, read from the database
   through the API host's image cache (no empty entries);
2. track audio (whole and with Range) and peaks of an upload come from the
   database (uploads table by the track's content hash) through
   <data_dir>/audio-cache/; when the content hash differs from the upload's
   SHA-256 the job's upload_sha256 is used; a fetched track whose bytes are in
   the database under its content hash (what the worker stores for fetched
   audio) is served too; a track with no bytes anywhere → 404 audio_not_stored;
3. deleting a job removes its image rows, their image_data rows (cascade on
   PostgreSQL) and the image-cache copies and thumbnails on the API host;
4. the pruner of a second API process (short retention, 1 MB cache cap): uploads
   rows and upload files no job uses go, the ones a job uses stay; old cache
   files go first and the caches end under the cap; images are still served.
"""
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import Server, check, demo_song, fail, multipart  # noqa: E402
from services_util import Postgres  # noqa: E402
from test_scale_pg import Worker  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def sha(b):
    return hashlib.sha256(b).hexdigest()


def metric(srv, prefix):
    _, _, m = srv.http("GET", "/metrics")
    for line in m.decode().splitlines():
        if line.startswith(prefix + " "):
            return int(float(line.split()[1]))
    fail(f"no metric {prefix}")


def cache_files(data):
    out = {}
    for d in ("image-cache", "audio-cache", "peaks"):
        p = os.path.join(data, d)
        if os.path.isdir(p):
            for n in os.listdir(p):
                out[os.path.join(d, n)] = os.path.getsize(os.path.join(p, n))
    return out


def main():
    if os.environ.get("M2P_SKIP_SERVICES") == "1":
        print("skipped (M2P_SKIP_SERVICES=1)")
        return
    t0 = time.time()
    pg = Postgres().start()
    wdata = tempfile.mkdtemp(prefix="m2p-worker-")
    procs = []
    try:
        settings = {"database_url": pg.url, "renderer": "sonic", "variations": "2", "width": "256",
                    "height": "256", "log_level": "warn", "retry_base_s": "0.3", "max_attempts": "2",
                    "prune_interval_s": "0"}
        api = Server(settings=settings, args=["--no-workers"]).start()
        procs.append(api)
        data = api.data_dir
        song_a = demo_song(os.path.join(data, "a.wav"), seconds=6, seed=5)
        song_b = demo_song(os.path.join(data, "b.wav"), seconds=6, seed=6)
        w = Worker(wdata, settings).start()
        procs.append(w)
        body, hdrs = multipart({"seed": "3"}, [("file", "a.wav", song_a), ("file", "b.wav", song_b)])
        _, batch = api.json("POST", "/api/batches", body, hdrs, expect=201)
        ja, jb = [api.wait_job(j["id"], timeout=180) for j in batch["jobs"]]
        check(ja["status"] == "succeeded" and jb["status"] == "succeeded", (ja["error"], jb["error"]))
        w.stop()
        procs.remove(w)
        # no shared filesystem: nothing the worker wrote is a file the API host can read
        os.rename(wdata, wdata + ".away")
        wdata += ".away"
        print(f"jobs by the worker: ok ({time.time() - t0:.1f} s)", flush=True)

        exports(api, data, ja, jb, batch["id"])
        print(f"zip exports: ok ({time.time() - t0:.1f} s)", flush=True)
        tracks(api, pg, data, ja, jb, song_a, song_b)
        print(f"track audio and peaks: ok ({time.time() - t0:.1f} s)", flush=True)
        delete(api, pg, data, jb)
        print(f"delete: ok ({time.time() - t0:.1f} s)", flush=True)
        api.stop()
        prune(pg, data, settings, ja, song_a, song_b, procs)
        print(f"pruning: ok ({time.time() - t0:.1f} s)", flush=True)
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
        shutil.rmtree(wdata, ignore_errors=True)
        pg.cleanup()
    print("ok")


def exports(api, data, ja, jb, batch_id):
    images = ja["images"] + jb["images"]
    check(len(images) == 4, images)
    check(not os.path.exists(os.path.join(data, "image-cache")), "image cache before any request")
    # the ZIP first: its entries come from the database through the image cache
    ids = ",".join(str(i["id"]) for i in images)
    st, h, z = api.http("GET", f"/api/export.zip?ids={ids}")
    check(st == 200 and h["content-type"] == "application/zip", (st, h))
    zf = zipfile.ZipFile(io.BytesIO(z))
    check(zf.testzip() is None, "bad CRC in the export")
    pngs = {n: zf.read(n) for n in zf.namelist() if n.endswith(".png")}
    check(len(pngs) == 4 and all(b.startswith(PNG) and len(b) > 1000 for b in pngs.values()),
          {n: len(b) for n, b in pngs.items()})
    for im in images:
        check(os.path.isfile(os.path.join(data, "image-cache", f"{im['id']}.png")), f"no cache copy of {im['id']}")
        st, h, png = api.http("GET", im["url"])
        check(st == 200 and png == pngs[f"images/{im['id']}.png"], f"image {im['id']}: {st}")
    # the batch export, after the cache copies of two images were removed: written again
    for im in jb["images"]:
        os.unlink(os.path.join(data, "image-cache", f"{im['id']}.png"))
    st, h, z = api.http("GET", f"/api/batches/{batch_id}/export.zip")
    zf = zipfile.ZipFile(io.BytesIO(z))
    bpngs = {n: zf.read(n) for n in zf.namelist() if n.endswith(".png")}
    check(st == 200 and bpngs == pngs, f"batch export differs: {sorted(bpngs)} {[len(b) for b in bpngs.values()]}")


def tracks(api, pg, data, ja, jb, song_a, song_b):
    # an upload: bytes in the uploads table under the track's content hash (its SHA-256)
    tid = ja["result"]["track_id"]
    _, t = api.json("GET", f"/api/tracks/{tid}", expect=200)
    check(t["content_hash"] == sha(song_a), t)
    check(not os.path.exists(os.path.join(data, "audio-cache")), "audio cache before any request")
    st, h, audio = api.http("GET", f"/api/tracks/{tid}/audio")
    check(st == 200 and audio == song_a and h["content-type"] == "audio/wav", (st, h, len(audio)))
    check(os.path.isfile(os.path.join(data, "audio-cache", sha(song_a) + ".wav")), "no audio cache copy")
    st, h, part = api.http("GET", f"/api/tracks/{tid}/audio", headers={"Range": "bytes=100-1123"})
    check(st == 206 and part == song_a[100:1124] and h["content-range"] == f"bytes 100-1123/{len(song_a)}",
          (st, h))
    _, peaks = api.json("GET", f"/api/tracks/{tid}/peaks", expect=200)
    check(peaks["count"] >= 100 and max(peaks["peaks"]) > 0.05, peaks["count"])

    # a content hash that is not the upload's SHA-256: found through the job's upload_sha256
    tb = jb["result"]["track_id"]
    pg.query(f"UPDATE tracks SET content_hash = '{'f' * 64}' WHERE id = {tb}")
    st, h, audio = api.http("GET", f"/api/tracks/{tb}/audio", headers={"Range": "bytes=0-"})
    check(st == 206 and audio == song_b, (st, h, len(audio)))
    _, peaks = api.json("GET", f"/api/tracks/{tb}/peaks", expect=200)
    check(peaks["count"] >= 100, peaks["count"])

    # a fetched track (the worker's file is elsewhere): no bytes anywhere → a clear 404
    hid = "c" * 64
    fid = pg.query("INSERT INTO tracks (kind, source, video_id, title, content_hash, path, created_at, updated_at)"
                   f" VALUES ('youtube', 'https://www.youtube.com/watch?v=AAAAAAAAAAA', 'AAAAAAAAAAA', 't',"
                   f" '{hid}', '/nonexistent/m2p/AAAAAAAAAAA.ogg', 0, 0) RETURNING id").splitlines()[0]
    for route in ("audio", "peaks"):
        e = api.error("GET", f"/api/tracks/{fid}/{route}", status=404, code="audio_not_stored")
        check("another host" in e["detail"] and e["hint"], e)
    # ... and once its bytes are in the database under its content hash, served from there
    ogg = os.path.join(data, "a.ogg")
    r = subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", os.path.join(data, "a.wav"), "-c:a",
                        "libvorbis", ogg], capture_output=True)
    check(r.returncode == 0, r.stderr[-300:])
    with open(ogg, "rb") as f:
        ogg_bytes = f.read()
    pg.query(f"INSERT INTO uploads (sha256, data, created_at) VALUES ('{hid}', "
             f"decode('{ogg_bytes.hex()}', 'hex'), extract(epoch from now()))")
    st, h, audio = api.http("GET", f"/api/tracks/{fid}/audio")
    check(st == 200 and audio == ogg_bytes and h["content-type"] == "audio/ogg", (st, h))
    check(os.path.isfile(os.path.join(data, "audio-cache", hid + ".ogg")), "no cache copy of the fetched track")
    _, peaks = api.json("GET", f"/api/tracks/{fid}/peaks", expect=200)
    check(peaks["count"] >= 100, peaks["count"])


def delete(api, pg, data, jb):
    ids = [im["id"] for im in jb["images"]]
    for im in jb["images"]:
        st, h, thumb = api.http("GET", im["thumb_url"])
        check(st == 200 and thumb[:4] == b"RIFF", (st, h))
        check(os.path.isfile(os.path.join(data, "image-cache", f"{im['id']}.png.thumb.webp")), "no cached thumb")
    idl = ",".join(map(str, ids))
    check(pg.query(f"SELECT count(*) FROM image_data WHERE image_id IN ({idl})") == "2", "image_data rows")
    api.json("DELETE", f"/api/jobs/{jb['id']}", expect=200)
    check(pg.query(f"SELECT count(*) FROM images WHERE job_id = {jb['id']}") == "0", "image rows left")
    check(pg.query(f"SELECT count(*) FROM image_data WHERE image_id IN ({idl})") == "0", "image_data rows left")
    left = [n for n in os.listdir(os.path.join(data, "image-cache")) if n.split(".")[0] in map(str, ids)]
    check(left == [], f"image-cache files of the deleted job: {left}")
    for i in ids:
        api.error("GET", f"/api/images/{i}", status=404, code="image_not_found")


def prune(pg, data, settings, ja, song_a, song_b, procs):
    a, b = sha(song_a), sha(song_b)
    check(pg.query(f"SELECT count(*) FROM uploads WHERE sha256 IN ('{a}', '{b}', '{'c' * 64}')") == "3",
          "upload rows before pruning")
    up = os.path.join(data, "uploads")
    check(os.path.isfile(os.path.join(up, a + ".wav")) and os.path.isfile(os.path.join(up, b + ".wav")),
          sorted(os.listdir(up)))
    # old cache files, least recently used first; 3 × 400 KB is over the 1 MB cap on its own
    old = time.time() - 7200
    for i in range(3):
        p = os.path.join(data, "image-cache", f"{900000 + i}.png")
        with open(p, "wb") as f:
            f.write(b"\0" * 400_000)
        os.utime(p, (old + i, old + i))
    time.sleep(2.5)  # past the retention below
    api2 = Server(data_dir=data, settings=dict(settings, prune_interval_s="1", upload_retention_s="2",
                                                file_cache_max_mb="1"), args=["--no-workers"]).start()
    procs.append(api2)
    deadline = time.time() + 20
    while time.time() < deadline:
        rows = pg.query("SELECT sha256 FROM uploads ORDER BY sha256").split()
        if rows == [a] and not os.path.exists(os.path.join(up, b + ".wav")):
            break
        time.sleep(0.2)
    # job a still uses its upload; b's job was deleted; the fetched track's audio has no job
    check(rows == [a], f"uploads left: {rows} (a={a[:8]}, b={b[:8]})")
    check(os.path.isfile(os.path.join(up, a + ".wav")), "the upload a job uses was removed")
    check(not os.path.exists(os.path.join(up, b + ".wav")), "the unused upload file is still there")
    files = cache_files(data)
    check(not any(f"{900000 + i}.png" in n for i in range(3) for n in files), f"old cache files kept: {files}")
    check(sum(files.values()) <= 1024 * 1024, f"caches over the cap: {files}")
    check(metric(api2, 'm2p_pruned_total{what="upload_rows"}') >= 2, "pruned rows not counted")
    # still served: from what the cache kept, or written again from the database
    for im in ja["images"]:
        st, h, png = api2.http("GET", im["url"])
        check(st == 200 and png.startswith(PNG), (st, h))
    st, h, audio = api2.http("GET", f"/api/tracks/{ja['result']['track_id']}/audio")
    check(st == 200 and audio == song_a, (st, len(audio)))
    api2.stop()
    procs.remove(api2)


if __name__ == "__main__":
    main()
