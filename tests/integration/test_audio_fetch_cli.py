#!/usr/bin/env python3
"""tests/integration/test_audio_fetch_cli.py — the fetch path end to end through
the binary, without the internet: `mus2pic analyze http://127.0.0.1:PORT/slow`
against tests/tools/loopback_server.py (which counts requests), with the
test-only setting unsafe_test_loopback=true.

Checks: the first run downloads (one page request, one media request) and
reports the track's metadata; the second run is an audio cache hit with zero
new requests; an over-long song is refused with its own error line and exit
code before any audio is fetched; with the production default the same URL is
refused before any request at all.

Environment: MUS2PIC (the binary), MUS2PIC_SOURCE_DIR (the repository).
Python standard library only.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("MUS2PIC", "build/mus2pic")
SRC = os.environ.get("MUS2PIC_SOURCE_DIR", ".")


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def stats(path):
    with open(path) as f:
        return json.load(f)


def run(args, data_dir):
    env = dict(os.environ, MUS2PIC_DATA_DIR=data_dir)
    return subprocess.run([BIN] + args, env=env, capture_output=True, text=True, timeout=300)


def main():
    with tempfile.TemporaryDirectory(prefix="m2p-fetch-cli-") as tmp:
        port_file = os.path.join(tmp, "port")
        stats_file = os.path.join(tmp, "stats.json")
        server = subprocess.Popen([sys.executable, os.path.join(SRC, "tests/tools/loopback_server.py"),
                                   "--port-file", port_file, "--stats-file", stats_file])
        try:
            for _ in range(200):
                if os.path.exists(port_file):
                    break
                time.sleep(0.05)
            with open(port_file) as f:
                port = int(f.read())
            data = os.path.join(tmp, "data")
            url = "http://127.0.0.1:%d/slow" % port
            loop = ["--set", "unsafe_test_loopback=true", "--set", "fetch_retry_base_s=0.01"]

            # 1. First run: downloads once, metadata in the result.
            r = run(["analyze", url, "--json"] + loop, data)
            if r.returncode != 0:
                fail("first analyze exited %d: %s" % (r.returncode, r.stderr[-800:]))
            out = json.loads(r.stdout)
            track = out.get("track", {})
            if track.get("title") != "Slow Song" or track.get("uploader") != "Loopback Artist":
                fail("track metadata: %r" % track)
            if track.get("audio_cached") is not False:
                fail("first run should download: %r" % track)
            s1 = stats(stats_file)
            if s1["paths"].get("/slow") != 1 or s1["paths"].get("/media/slow.wav") != 1:
                fail("first run requests: %r" % s1)

            # 2. Second run: an audio cache hit, no request at all.
            r = run(["analyze", url, "--json"] + loop, data)
            if r.returncode != 0:
                fail("second analyze exited %d: %s" % (r.returncode, r.stderr[-800:]))
            track = json.loads(r.stdout).get("track", {})
            if track.get("audio_cached") is not True:
                fail("second run should be a cache hit: %r" % track)
            if stats(stats_file)["total"] != s1["total"]:
                fail("cache hit made requests: %r" % stats(stats_file))

            # 3. Too long: refused from the metadata, the media is never fetched.
            r = run(["analyze", "http://127.0.0.1:%d/long" % port] + loop, data)
            if r.returncode == 0 or "fetch_too_long" not in r.stderr:
                fail("too long: rc %d, stderr %r" % (r.returncode, r.stderr[-500:]))
            if stats(stats_file)["paths"].get("/media/song.wav"):
                fail("too long song was downloaded: %r" % stats(stats_file))

            # 4. Production default: refused before any request.
            before = stats(stats_file)["total"]
            r = run(["analyze", url], data)
            if r.returncode == 0 or "url_localhost" not in r.stderr:
                fail("production default: rc %d, stderr %r" % (r.returncode, r.stderr[-500:]))
            if stats(stats_file)["total"] != before:
                fail("production default made a request")
        finally:
            server.terminate()
            server.wait(timeout=10)
    print("ok: download once, cache hit without requests, too long refused, loopback refused by default")


if __name__ == "__main__":
    main()
