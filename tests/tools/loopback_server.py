#!/usr/bin/env python3
"""tests/tools/loopback_server.py — a tiny HTTP server on 127.0.0.1 for the
fetch tests, so the real yt-dlp download path runs without the internet.

Pages (HTML with a JSON-LD VideoObject, which yt-dlp's generic extractor
reads: title, uploader, duration, contentUrl):
  /song        a 30 s song; its audio is /media/song.wav (a small WAV)
  /long        a 2 h song (refused as too long)
  /noduration  no duration (refused: unknown duration fails closed)
  /huge        a 30 s song whose audio /media/huge streams 64 MiB with no
               Content-Length (only counting bytes can stop it)
  /slow        a 30 s song whose audio /media/slow.wav arrives in small
               chunks over about a second (progress fractions)
  /ratelimit   HTTP 429;  /gone  HTTP 410;  /missing (and anything else) 404
Every request is counted; the counts are rewritten atomically to the stats
file as JSON {"total": N, "paths": {"/song": N, ...}, "huge_bytes": B} after
each request (huge_bytes: bytes of /media/huge sent before the client hung
up, -1 while sending; times: the last 20 arrival times per path, monotonic
seconds, so tests can see retry back-off).

Usage: loopback_server.py --port-file F --stats-file S   (prints nothing;
the chosen port is written to F once listening). Python stdlib only.
"""
import argparse
import io
import json
import math
import os
import struct
import threading
import time
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_wav(seconds=1.0, rate=8000):
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = bytearray()
        for i in range(int(seconds * rate)):
            frames += struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
        w.writeframes(bytes(frames))
    return buf.getvalue()


SONG_WAV = make_wav(1.0)
SLOW_WAV = make_wav(8.0)  # 128 KB, sent in 16 pieces


def page(base, title, media, duration, fmt="audio/wav"):
    obj = {
        "@context": "https://schema.org",
        "@type": "VideoObject",
        "name": title,
        "author": {"@type": "Person", "name": "Loopback Artist"},
        "contentUrl": base + media,
        "encodingFormat": fmt,
        "uploadDate": "2024-01-01",
    }
    if duration is not None:
        obj["duration"] = duration
    return ("<!DOCTYPE html><html><head><title>%s</title>"
            '<script type="application/ld+json">%s</script></head>'
            "<body><h1>%s</h1></body></html>" % (title, json.dumps(obj), title)).encode()


PAGES = {
    "/song": ("Loopback Song", "/media/song.wav", "PT30S", "audio/wav"),
    "/long": ("A Very Long Song", "/media/song.wav", "PT2H", "audio/wav"),
    "/noduration": ("No Duration", "/media/song.wav", None, "audio/wav"),
    "/huge": ("Huge Song", "/media/huge", "PT30S", "audio/mpeg"),
    "/slow": ("Slow Song", "/media/slow.wav", "PT30S", "audio/wav"),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def write_stats(self):
        srv = self.server
        tmp = srv.stats_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"total": srv.total, "paths": srv.paths, "huge_bytes": srv.huge_bytes,
                       "times": srv.times}, f)
        os.replace(tmp, srv.stats_file)

    def count(self):
        srv = self.server
        with srv.lock:
            srv.total += 1
            path = self.path.split("?")[0]
            srv.paths[path] = srv.paths.get(path, 0) + 1
            srv.times.setdefault(path, []).append(time.monotonic())
            del srv.times[path][:-20]  # the last 20 arrival times per path
            if path == "/media/huge":
                srv.huge_bytes = -1  # sending
            self.write_stats()

    def send(self, code, body, ctype="text/html; charset=utf-8"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self.count()
        path = self.path.split("?")[0]
        base = "http://%s" % (self.headers.get("Host") or "127.0.0.1:%d" % self.server.server_port)
        if path in PAGES:
            title, media, duration, fmt = PAGES[path]
            self.send(200, page(base, title, media, duration, fmt))
        elif path == "/media/song.wav":
            self.send(200, SONG_WAV, "audio/wav")
        elif path == "/media/slow.wav":
            self.send_response(200)
            self.send_header("Content-Type", "audio/wav")
            self.send_header("Content-Length", str(len(SLOW_WAV)))
            self.end_headers()
            if self.command == "HEAD":
                return
            step = len(SLOW_WAV) // 16 + 1
            try:
                for i in range(0, len(SLOW_WAV), step):
                    self.wfile.write(SLOW_WAV[i:i + step])
                    self.wfile.flush()
                    time.sleep(0.06)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
        elif path == "/media/huge":
            # No Content-Length: the size is only known by counting.
            self.send_response(200)
            self.send_header("Content-Type", "audio/mpeg")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if self.command == "HEAD":
                return
            chunk = b"\xff\xfb\x90\x00" * 16384  # 64 KiB
            sent = 0
            try:
                for _ in range(1024):  # 64 MiB
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    time.sleep(0.005)  # at most ~12 MB/s: killing it early is measurable
            except (BrokenPipeError, ConnectionResetError):
                pass
            with self.server.lock:  # how much went out before the client hung up
                self.server.huge_bytes = sent
                self.write_stats()
        elif path == "/ratelimit":
            self.send(429, b"<html><body>Too Many Requests</body></html>")
        elif path == "/gone":
            self.send(410, b"<html><body>Gone</body></html>")
        else:
            self.send(404, b"<html><body>Not Found</body></html>")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--stats-file", required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.lock = threading.Lock()
    srv.total = 0
    srv.paths = {}
    srv.huge_bytes = 0
    srv.times = {}
    srv.stats_file = args.stats_file
    with open(args.stats_file, "w") as f:
        json.dump({"total": 0, "paths": {}}, f)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(tmp, args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
