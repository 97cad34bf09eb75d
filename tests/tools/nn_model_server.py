#!/usr/bin/env python3
"""tests/tools/nn_model_server.py — a loopback stand-in for the Hugging Face hub, serving one
model folder the way huggingface.co does, for the `model pull` tests (Python standard library).

  GET /api/models/{id}                → {"id": ..., "siblings": [{"rfilename": ...}, ...]}
  GET /{id}/resolve/main/{path}       → the file; for *.safetensors (LFS files) a 302 to
                                        /cdn/{path} carrying X-Linked-Size and X-Linked-ETag
                                        (the sha256), as the hub does
  GET /cdn/{path}                     → the bytes, with Range support (206 / 416)

Faults for the tests:
  --drop PATH:N     the first GET of PATH's bytes announces the full length, sends N bytes, then
                    closes the connection (repeatable)
  --corrupt PATH    serve PATH with one byte flipped while advertising the true sha256
  --no-range        ignore Range headers (always 200 with the whole file)
  --no-api          answer /api/models/... with 500 (a mirror without the API)
Writes the chosen port to --port-file and one JSON line per request to --log.
"""
import argparse
import hashlib
import http.server
import json
import os
import re
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--id", default="test/tiny-lcm")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", default=None)
    ap.add_argument("--drop", action="append", default=[])
    ap.add_argument("--corrupt", action="append", default=[])
    ap.add_argument("--no-range", action="store_true")
    ap.add_argument("--no-api", action="store_true")
    args = ap.parse_args()

    root = os.path.abspath(args.root)
    drops = {}
    for d in args.drop:
        path, n = d.rsplit(":", 1)
        drops[path] = int(n)
    lock = threading.Lock()
    files = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            rel = os.path.relpath(os.path.join(dirpath, n), root)
            if not n.startswith("."):
                files.append(rel)
    files.sort()

    def body_of(rel):
        with open(os.path.join(root, rel), "rb") as f:
            data = f.read()
        if rel in args.corrupt:
            data = bytearray(data)
            data[len(data) // 2] ^= 0x5A
            data = bytes(data)
        return data

    def sha_of(rel):
        with open(os.path.join(root, rel), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"
        disable_nagle_algorithm = True

        def log_message(self, fmt, *a):
            pass

        def record(self):
            if args.log:
                with lock, open(args.log, "a") as f:
                    f.write(json.dumps({"path": self.path, "range": self.headers.get("Range"), "t": round(time.time(), 3)}) + "\n")

        def send_bytes(self, rel):
            data = body_of(rel)
            total = len(data)
            start, status = 0, 200
            rng = self.headers.get("Range")
            if rng and not args.no_range:
                m = re.fullmatch(r"bytes=(\d+)-", rng.strip())
                if m:
                    start = int(m.group(1))
                    if start >= total:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{total}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
            chunk = data[start:]
            self.send_response(status)
            self.send_header("Content-Length", str(len(chunk)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            with lock:
                cut = drops.pop(rel, None)
            if cut is not None and cut < len(chunk):
                self.wfile.write(chunk[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(chunk)

        def do_GET(self):
            self.record()
            p = self.path.split("?", 1)[0]
            if p == f"/api/models/{args.id}":
                if args.no_api:
                    self.send_error(500)
                    return
                body = json.dumps({"id": args.id, "siblings": [{"rfilename": f} for f in files]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            prefix = f"/{args.id}/resolve/main/"
            if p.startswith(prefix):
                rel = p[len(prefix):]
                if rel not in files:
                    self.send_error(404)
                    return
                if rel.endswith(".safetensors"):
                    self.send_response(302)
                    self.send_header("Location", f"/cdn/{rel}")
                    self.send_header("X-Linked-Size", str(os.path.getsize(os.path.join(root, rel))))
                    self.send_header("X-Linked-ETag", f'"{sha_of(rel)}"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_bytes(rel)
                return
            if p.startswith("/cdn/") and p[5:] in files:
                self.send_bytes(p[5:])
                return
            self.send_error(404)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, args.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
