"""Black-box test of `mus2pic serve` against bad input: each gets its own 4xx and error
code, nothing stored is lost or changed, and the server does not crash.

Covers: unknown ids, path tricks (../, %2e%2e%2f, absolute paths), malformed and
oversized JSON, unknown fields, refused sources (private addresses, localhost,
file://, playlists, empty), out-of-range settings, empty / oversized / chunked
oversized / boundary-less / file-less uploads, uploads that are not audio (text,
HTML, PNG, a WAV header without samples, random bytes: 415 upload_not_audio at
upload time, nothing stored, no job; ogg and mp3 still accepted), wrong methods, huge headers, many Range parts, rate
limits (429 + Retry-After), batch size, tokens (missing, wrong, header, cookie,
query), foreign WebSocket origins, the per-client socket cap, and refusing to
bind a public address without a token.
"""
import os
import random
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import BIN, WS, Server, check, demo_song, fail, multipart  # noqa: E402


def raw_request(port, data, read=True):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    try:
        s.sendall(data)
    except OSError:
        pass
    out = b""
    if read:
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out and b'"error"' in out and out.rstrip().endswith(b"}}"):
                    break
        except OSError:
            pass
    s.close()
    return out


def status_of(resp):
    try:
        return int(resp.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def metric(srv, name):
    st, h, m = srv.http("GET", "/metrics")
    for line in m.decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    fail(f"no metric {name}")


def main():
    srv = Server(settings={"max_upload_mb": "1", "max_batch": "2", "max_ws_per_client": "2",
                           "rate_limit_per_min": "1000"}).start()
    try:
        run(srv)
        srv.stop()
        limits()
        auth()
        public_bind()
    except BaseException:
        srv.dump()
        raise
    finally:
        srv.cleanup()
    print("ok")


def run(srv):
    song = demo_song(os.path.join(srv.data_dir, "song.wav"), seconds=5, seed=2)
    body, hdrs = multipart({"seed": "1"}, [("file", "song.wav", song)])
    st, good = srv.json("POST", "/api/jobs", body, hdrs, expect=201)
    good = srv.wait_job(good["id"])
    check(good["status"] == "succeeded", good)
    img_id = good["images"][0]["id"]

    # unknown ids and path tricks: 404, by id only
    srv.error("GET", "/api/jobs/999999", status=404, code="job_not_found")
    srv.error("GET", "/api/jobs/abc", status=404, code="job_not_found")
    srv.error("GET", "/api/jobs/-1", status=404, code="job_not_found")
    srv.error("GET", "/api/jobs/0x10", status=404, code="job_not_found")
    srv.error("POST", "/api/jobs/999999/cancel", status=404, code="job_not_found")
    srv.error("POST", "/api/jobs/999999/retry", status=404, code="job_not_found")
    srv.error("DELETE", "/api/jobs/999999", status=404, code="job_not_found")
    srv.error("GET", "/api/images/999999", status=404, code="image_not_found")
    srv.error("GET", "/api/images/999999/thumb", status=404, code="image_not_found")
    srv.error("GET", "/api/tracks/999999/audio", status=404, code="not_found")
    srv.error("GET", "/api/batches/999999", status=404, code="not_found")
    for path in ["/api/images/../../etc/passwd", "/api/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                 "/api/images/..%2f..%2fetc%2fpasswd", "/..%2f..%2fetc%2fpasswd", "/%2e%2e/%2e%2e/etc/passwd",
                 "/web/../CMakeLists.txt", "/../CMakeLists.txt", "//etc/passwd", "/etc/passwd",
                 "/api/images/" + img_id.__str__() + "/..%2f..%2f..%2fetc%2fpasswd",
                 "/index.html%00.png", "/.git/config", "/api/nothing", "/ws/nothing"]:
        st, h, data = srv.http("GET", path)
        check(st == 404 and b"root:" not in data and b"[core]" not in data, f"{path} → {st} {data[:100]!r}")
    resp = raw_request(srv.port, b"GET /../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n")
    check(status_of(resp) in (400, 404) and b"root:" not in resp, resp[:200])

    # malformed JSON bodies
    srv.error("POST", "/api/jobs", b"{not json", {"Content-Type": "application/json"}, 400, "json_invalid")
    srv.error("POST", "/api/jobs", b"[1,2]", {"Content-Type": "application/json"}, 400, "json_invalid")
    srv.error("POST", "/api/jobs", b"", {"Content-Type": "application/json"}, 400, "json_invalid")
    srv.error("POST", "/api/jobs", b'{"source":"x","source":"y"}', {"Content-Type": "application/json"}, 400,
              "json_invalid")
    srv.error("POST", "/api/jobs", b'{"source":"\xff\xfe"}', {"Content-Type": "application/json"}, 400,
              "json_invalid")
    srv.error("POST", "/api/jobs", b"[" * 5000 + b"]" * 5000, {"Content-Type": "application/json"}, 400,
              "json_invalid")
    big = b'{"source":"' + b"a" * 70000 + b'"}'
    srv.error("POST", "/api/jobs", big, {"Content-Type": "application/json"}, 413, "body_too_large")
    # the same, chunked (no Content-Length): counted while reading
    resp = raw_request(srv.port, b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(big) + big + b"\r\n0\r\n\r\n")
    check(status_of(resp) == 413 and b"body_too_large" in resp, resp[:300])

    # fields and sources
    cases = [
        ({"source": "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "colour": "red"}, "field_invalid"),
        ({}, "url_empty"),
        ({"source": ""}, "url_empty"),
        ({"source": "http://localhost:6379/"}, "url_localhost"),
        ({"source": "file:///etc/passwd"}, "url_scheme"),
        ({"source": "https://www.youtube.com/playlist?list=PL123"}, "url_playlist"),
        ({"source": "https://example.com/song"}, "url_site_unsupported"),
        ({"source": "https://user:pw@www.youtube.com/watch?v=dQw4w9WgXcQ"}, "url_credentials"),
        ({"source": "https://x.test/a.m3u8"}, "url_manifest"),
        ({"source": 42}, "field_invalid"),
        ({"source": "dQw4w9WgXcQ", "variations": 99}, "render_count"),
        ({"source": "dQw4w9WgXcQ", "variations": "4"}, "render_count"),
        ({"source": "dQw4w9WgXcQ", "steps": 0}, "render_steps"),
        ({"source": "dQw4w9WgXcQ", "size": "13x13"}, "render_size"),
        ({"source": "dQw4w9WgXcQ", "size": "huge"}, "render_size"),
        ({"source": "dQw4w9WgXcQ", "seed": -1}, "render_seed"),
        ({"source": "dQw4w9WgXcQ", "seed": 4294967296}, "render_seed"),
        ({"source": "dQw4w9WgXcQ", "guidance": 100}, "render_guidance"),
        ({"source": "dQw4w9WgXcQ", "style": "nope"}, "style_unknown"),
        ({"source": "dQw4w9WgXcQ", "renderer": "gpu"}, "renderer_unknown"),
        ({"source": "dQw4w9WgXcQ", "template": "{moood}"}, "template_variable"),
        ({"source": "dQw4w9WgXcQ", "template": "{mood"}, "template_syntax"),
        ({"source": "dQw4w9WgXcQ", "layout": "yes"}, "field_invalid"),
    ]
    for body_, code in cases:
        e = srv.error("POST", "/api/jobs", body_, status=400, code=code)
        check(e["detail"] != "" or code == "url_empty", f"{code}: no detail")
    for src in ["http://169.254.169.254/latest/meta-data", "http://10.0.0.1/x", "http://192.168.1.1/"]:
        e = srv.error("POST", "/api/jobs", {"source": src}, status=400)
        check(e["code"] in ("url_private", "url_ip_literal"), e)
    e = srv.error("POST", "/api/jobs", {"source": "/etc/passwd"}, status=400)
    check(e["code"] in ("url_not_url", "path_unsafe"), e)

    # uploads
    b2, h2 = multipart({}, [("file", "empty.wav", b"")])
    srv.error("POST", "/api/jobs", b2, h2, 400, "upload_empty")
    b2, h2 = multipart({}, [("file", "big.wav", b"\0" * (1024 * 1024 + 10))])
    srv.error("POST", "/api/jobs", b2, h2, 413, "upload_too_large")
    # declared far over the cap: refused before reading the body
    resp = raw_request(srv.port, b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                       b"boundary=zz\r\nContent-Length: 999999999\r\n\r\n")
    check(status_of(resp) == 413 and b"upload_too_large" in resp, resp[:300])
    # chunked, no length: refused (411) before anything is stored
    part = b"--zz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n"
    payload = part + b"\1" * (1024 * 1024 + 4096) + b"\r\n--zz--\r\n"
    chunks = b"".join(b"%x\r\n" % len(payload[i:i + 65536]) + payload[i:i + 65536] + b"\r\n"
                      for i in range(0, len(payload), 65536)) + b"0\r\n\r\n"
    resp = raw_request(srv.port, b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                       b"boundary=zz\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
    check(status_of(resp) == 411 and b"length_required" in resp, resp[:300])
    srv.error("POST", "/api/jobs", b"--zz\r\n", {"Content-Type": "multipart/form-data"}, 400, "multipart_invalid")
    b2, h2 = multipart({"style": "abstract"}, [])
    srv.error("POST", "/api/jobs", b2, h2, 400, "multipart_invalid")
    b2, h2 = multipart({}, [("file", "a.wav", song), ("file", "b.wav", song)])
    srv.error("POST", "/api/jobs", b2, h2, 400, "multipart_invalid")
    b2, h2 = multipart({"source": "dQw4w9WgXcQ"}, [("file", "a.wav", song)])
    srv.error("POST", "/api/jobs", b2, h2, 400, "field_invalid")
    b2, h2 = multipart({"x%d" % i: "1" for i in range(40)}, [("file", "a.wav", song)])
    srv.error("POST", "/api/jobs", b2, h2, 400, "multipart_invalid")
    b2, h2 = multipart({"variations": "lots"}, [("file", "a.wav", song)])
    srv.error("POST", "/api/jobs", b2, h2, 400, "render_count")
    # uploads that are not audio: refused at upload time (415 upload_not_audio), nothing stored, no job
    refused_before = metric(srv, "m2p_uploads_refused_total")
    _, before = srv.json("GET", "/api/jobs", expect=200)
    uploads_dir = os.path.join(srv.data_dir, "uploads")
    files_before = sorted(os.listdir(uploads_dir)) if os.path.isdir(uploads_dir) else []
    png = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x02\x00\x00\x00\x90\x91h6"
           + b"\x00" * 200)
    wav_header = (b"RIFF" + (36 + 882000).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
                  + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (22050).to_bytes(4, "little")
                  + (44100).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
                  + b"data" + (882000).to_bytes(4, "little"))
    bad_files = [("../../evil.html", b"<html><script>alert(1)</script></html>" * 50),
                 ("notes.txt", b"just some text, not a song\n" * 40),
                 ("cover.png", png),
                 ("header-only.wav", wav_header),
                 ("noise.mp3", random.Random(7).randbytes(20000))]
    for name, data in bad_files:
        b2, h2 = multipart({}, [("file", name, data)])
        e = srv.error("POST", "/api/jobs", b2, h2, 415, "upload_not_audio")
        check("file 1" in e["detail"] and e["hint"], e)
    # in a batch: the whole request is refused, no job of it is created
    b2, h2 = multipart({}, [("file", "a.wav", song), ("file", "b.txt", b"text " * 100)])
    e = srv.error("POST", "/api/batches", b2, h2, 415, "upload_not_audio")
    check("file 2" in e["detail"] and "b.txt" in e["detail"], e)
    _, after = srv.json("GET", "/api/jobs", expect=200)
    check(after["total"] == before["total"], f"a refused upload made a job: {before['total']} -> {after['total']}")
    files_after = sorted(os.listdir(uploads_dir)) if os.path.isdir(uploads_dir) else []
    check(files_after == files_before, f"a refused upload was stored: {set(files_after) - set(files_before)}")
    check(metric(srv, "m2p_uploads_refused_total") == refused_before + len(bad_files) + 1, "refusal count")
    # a song under a hostile name: kept only as a title, stored by hash with a neutral extension
    b2, h2 = multipart({"seed": "2"}, [("file", "../../evil.html", song)])
    st, odd = srv.json("POST", "/api/jobs", b2, h2, expect=201)
    check(odd["spec"]["upload_name"] == "evil.html" and "upload_path" not in odd["spec"], odd["spec"])
    check(odd["spec"]["upload_file"] == odd["spec"]["upload_sha256"] + ".bin", odd["spec"])
    check(os.path.isfile(os.path.join(uploads_dir, odd["spec"]["upload_file"])), "stored by hash")
    # real audio in other containers still passes (ogg/vorbis, mp3 made by ffmpeg from our synth)
    wav_path = os.path.join(srv.data_dir, "song.wav")
    for ext, codec in (("ogg", "libvorbis"), ("mp3", "libmp3lame")):
        out = os.path.join(srv.data_dir, "song." + ext)
        r = subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", wav_path, "-c:a", codec, out],
                           capture_output=True)
        check(r.returncode == 0, r.stderr[-300:])
        with open(out, "rb") as f:
            b2, h2 = multipart({"seed": "1"}, [("file", "song." + ext, f.read())])
        st, j = srv.json("POST", "/api/jobs", b2, h2, expect=201)
        j = srv.wait_job(j["id"])
        check(j["status"] == "succeeded", (ext, j["status"], j["error"]))

    # malformed multipart bodies of many shapes: always a 4xx (or a job), never a crash or a 5xx
    rnd = random.Random(1234)
    pieces = [b"--zz", b"\r\n", b"Content-Disposition: form-data; name=\"file\"; filename=\"a.wav\"",
              b"Content-Disposition: form-data; name=\"style\"", b"Content-Type: audio/wav", b"--zz--",
              b"RIFF", b"\x00" * 7, b"name=", b";", b"\"", b"filename*=UTF-8''%e2%82%ac.wav", b"--z", b"\r\n\r\n"]
    for i in range(60):
        body_ = b"".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 14)))
        ctype = rnd.choice(["multipart/form-data; boundary=zz", "multipart/form-data; boundary=\"zz\"",
                            "multipart/form-data; boundary=", "multipart/form-data; charset=x; boundary=zz"])
        st, h, data = srv.http("POST", rnd.choice(["/api/jobs", "/api/batches"]), body_, {"Content-Type": ctype})
        check(st in (200, 201) or 400 <= st < 500, f"multipart sweep {i}: {st} {data[:200]!r} for {body_!r}")
    st, _ = srv.json("GET", "/healthz", expect=200)

    # methods, headers, ranges, batches
    srv.error("PUT", "/api/jobs", {"a": 1}, status=405, code="method_not_allowed")
    bu, hu = multipart({}, [("file", "a.wav", song)])
    srv.error("PUT", "/api/settings", bu, hu, status=400, code="multipart_invalid")
    srv.error("POST", "/api/templates", bu, hu, status=400, code="multipart_invalid")
    srv.error("DELETE", "/api/images/%d" % img_id, status=405, code="method_not_allowed")
    srv.error("POST", "/", b"x", {"Content-Type": "text/plain"}, 405, "method_not_allowed")
    resp = raw_request(srv.port, b"GET /api/jobs HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n")
    check(status_of(resp) in (0, 413, 414, 431), f"huge header → {resp[:100]!r}")
    tid = good["result"]["track_id"]
    many = "bytes=" + ",".join("%d-%d" % (i, i) for i in range(2000))
    t0 = time.time()
    srv.error("GET", f"/api/tracks/{tid}/audio", headers={"Range": many}, status=416, code="range_invalid")
    check(time.time() - t0 < 2, "many ranges must be refused fast")
    srv.error("GET", f"/api/tracks/{tid}/audio", headers={"Range": "bytes=999999999-"}, status=416,
              code="range_invalid")
    srv.error("GET", f"/api/tracks/{tid}/audio", headers={"Range": "items=0-1"}, status=416, code="range_invalid")
    srv.error("POST", "/api/batches", {"sources": ["dQw4w9WgXcQ"] * 3}, status=400, code="batch_too_large")
    srv.error("POST", "/api/batches", {"sources": []}, status=400, code="field_invalid")
    e = srv.error("POST", "/api/batches", {"sources": ["dQw4w9WgXcQ", "http://localhost/"]}, status=400,
                  code="url_localhost")
    check(e["detail"].startswith("item 2"), e)
    srv.error("GET", "/api/jobs?status=exploded", status=400, code="field_invalid")
    srv.error("GET", "/api/jobs?limit=-5", status=400, code="field_invalid")
    srv.error("GET", "/api/images?tempo_min=fast", status=400, code="field_invalid")
    srv.error("GET", "/api/export.zip?ids=1,../2", status=400, code="field_invalid")
    srv.error("GET", "/api/export.zip?ids=999999", status=404, code="image_not_found")
    srv.error("DELETE", "/api/templates/999999", status=404, code="not_found")
    srv.error("POST", "/api/templates", {"name": "", "text": "x"}, status=400, code="field_invalid")

    # WebSockets: bad handshakes, foreign origin, unknown job, socket cap
    WS(srv.port, f"/ws/jobs/{good['id']}", {"Origin": "http://evil.example"}).expect_refusal("origin_forbidden")
    WS(srv.port, f"/ws/jobs/{good['id']}", {"Origin": f"http://127.0.0.1:{srv.port}.evil.example"}) \
        .expect_refusal("origin_forbidden")
    WS(srv.port, "/ws/jobs/999999").expect_refusal("job_not_found")
    WS(srv.port, "/ws/queue?since=abc").expect_refusal("field_invalid")
    st, h, data = srv.http("GET", f"/ws/jobs/{good['id']}")
    check(st == 400, f"plain GET of a WebSocket route → {st}")
    a = WS(srv.port, f"/ws/jobs/{good['id']}", {"Origin": f"http://127.0.0.1:{srv.port}"})
    b = WS(srv.port, "/ws/queue")
    check(a.status == 101 and b.status == 101, (a.head, b.head))
    check(a.recv_json()["type"] == "snapshot", "snapshot")
    WS(srv.port, "/ws/queue").expect_refusal("too_many_sockets")
    a.close()
    b.close()
    time.sleep(0.5)
    d = WS(srv.port, "/ws/queue")
    check(d.status == 101, "a closed socket frees its slot")
    d.close()

    # nothing stored was lost or changed
    st, again = srv.json("GET", f"/api/jobs/{good['id']}", expect=200)
    check(again["status"] == "succeeded" and again["images"] == good["images"], "the good job changed")
    st, lst = srv.json("GET", "/api/jobs", expect=200)
    check(lst["total"] == 4, f"bad requests must not create jobs: {lst['total']}")  # good, evil.html, ogg, mp3
    st, h, png = srv.http("GET", f"/api/images/{img_id}")
    check(st == 200 and png[:4] == b"\x89PNG", "image still served")


def limits():
    srv = Server(settings={"rate_limit_per_min": "3"}).start()
    try:
        st, _ = srv.json("POST", "/api/queue/pause", expect=200)
        for _ in range(3):
            srv.json("POST", "/api/jobs", {"source": "dQw4w9WgXcQ"}, expect=201)
        st, h, data = srv.http("POST", "/api/jobs", {"source": "dQw4w9WgXcQ"})
        check(st == 429 and b"rate_limited" in data and int(h["retry-after"]) >= 1, (st, h, data))
        bu, hu = multipart({}, [("file", "a.wav", b"RIFF" + b"\0" * 5000)])
        st, h, data = srv.http("POST", "/api/jobs", bu, hu)
        check(st == 429 and int(h["retry-after"]) >= 1, "an upload over the limit must be refused before reading")
        srv.error("POST", "/api/batches", {"sources": ["dQw4w9WgXcQ"]}, status=429, code="rate_limited")
        st, lst = srv.json("GET", "/api/jobs", expect=200)
        check(lst["total"] == 3, lst)
        srv.stop()
    finally:
        srv.cleanup()


def auth():
    srv = Server(settings={"api_token": "s3cret-token"}).start()
    try:
        st, _ = srv.json("GET", "/healthz", expect=200)
        srv.error("GET", "/api/jobs", status=401, code="auth_required")
        srv.error("GET", "/", status=401, code="auth_required")
        srv.error("GET", "/metrics", status=401, code="auth_required")
        srv.error("GET", "/api/jobs", headers={"Authorization": "Bearer wrong"}, status=403, code="auth_invalid")
        srv.error("GET", "/api/jobs?token=s3cret-tokeX", status=403, code="auth_invalid")
        srv.json("GET", "/api/jobs", headers={"Authorization": "Bearer s3cret-token"}, expect=200)
        # an upload without the token is refused before its body is read: nothing reaches the disk
        bu, hu = multipart({}, [("file", "a.wav", b"RIFF" + b"\0" * 5000)])
        srv.error("POST", "/api/jobs", bu, hu, status=401, code="auth_required")
        check(not os.path.isdir(os.path.join(srv.data_dir, "uploads")) or
              os.listdir(os.path.join(srv.data_dir, "uploads")) == [], "an unauthenticated upload was stored")
        srv.json("GET", "/api/jobs", headers={"Cookie": "a=b; m2p_token=s3cret-token"}, expect=200)
        st, h, body = srv.http("GET", "/?token=s3cret-token")
        check(st == 200 and "m2p_token=s3cret-token" in h.get("set-cookie", "") and "HttpOnly" in h["set-cookie"], h)
        WS(srv.port, "/ws/queue").expect_refusal("auth_required")
        WS(srv.port, "/ws/queue?token=nope").expect_refusal("auth_invalid")
        ws = WS(srv.port, "/ws/queue?token=s3cret-token")
        check(ws.status == 101 and ws.recv_json()["type"] == "snapshot", ws.head)
        ws.close()
        srv.stop()
    finally:
        srv.cleanup()


def public_bind():
    d = tempfile.mkdtemp(prefix="m2p-serve-")
    env = dict(os.environ, MUS2PIC_DATA_DIR=d)
    r = subprocess.run([BIN, "serve", "--host", "0.0.0.0", "--port", "0"], capture_output=True, env=env, timeout=60)
    check(r.returncode != 0 and b"api_token" in r.stderr, f"public bind without a token must fail: {r.stderr!r}")
    subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    main()
