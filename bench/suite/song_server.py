#!/usr/bin/env python3
"""bench/suite/song_server.py — a loopback "video page" for the repeated-song benchmark.

Like tests/tools/loopback_server.py (same JSON-LD page that yt-dlp's generic extractor reads), but
it serves one real song file (a whole synthetic song, OGG) and throttles the media download to a
realistic bandwidth (default 8 Mbit/s, a home connection's share of a streaming site), so the
first request pays a download the repeat should not. Every request is counted in the stats file:
{"total": N, "paths": {...}, "media_bytes": B}.

    song_server.py --song song.ogg --duration 240 --port-file F --stats-file S [--kbps 8000]
"""
import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def count(self, path, nbytes=0):
        srv = self.server
        with srv.lock:
            if path is not None:
                srv.total += 1
                srv.paths[path] = srv.paths.get(path, 0) + 1
            srv.media_bytes += nbytes
            tmp = srv.stats_file + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"total": srv.total, "paths": srv.paths, "media_bytes": srv.media_bytes}, f)
            os.replace(tmp, srv.stats_file)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = self.path.split("?")[0]
        self.count(path)
        base = "http://%s" % (self.headers.get("Host") or "127.0.0.1:%d" % self.server.server_port)
        if path == "/song":
            obj = {"@context": "https://schema.org", "@type": "VideoObject", "name": "Bench Song",
                   "author": {"@type": "Person", "name": "Bench Artist"}, "contentUrl": base + "/media/song.ogg",
                   "encodingFormat": "audio/ogg", "uploadDate": "2024-01-01",
                   "duration": "PT%dS" % self.server.duration}
            body = ("<!DOCTYPE html><html><head><title>Bench Song</title>"
                    '<script type="application/ld+json">%s</script></head><body>Bench Song</body></html>'
                    % json.dumps(obj)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        elif path == "/media/song.ogg":
            data = self.server.song
            self.send_response(200)
            self.send_header("Content-Type", "audio/ogg")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command == "HEAD":
                return
            chunk = 16384
            rate = self.server.kbps * 1000 / 8  # bytes per second
            t0 = time.monotonic()
            sent = 0
            try:
                while sent < len(data):
                    piece = data[sent:sent + chunk]
                    self.wfile.write(piece)
                    sent += len(piece)
                    ahead = sent / rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            self.count(None, sent)
        else:
            body = b"not found"
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--song", required=True)
    ap.add_argument("--duration", type=int, required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--stats-file", required=True)
    ap.add_argument("--kbps", type=float, default=8000.0)
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.lock = threading.Lock()
    srv.total, srv.paths, srv.media_bytes = 0, {}, 0
    srv.song = open(args.song, "rb").read()
    srv.duration, srv.kbps, srv.stats_file = args.duration, args.kbps, args.stats_file
    with open(args.stats_file, "w") as f:
        json.dump({"total": 0, "paths": {}, "media_bytes": 0}, f)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(tmp, args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
