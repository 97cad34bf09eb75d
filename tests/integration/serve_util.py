"""Helpers for the black-box tests of `mus2pic serve` (Python standard library only).

Server: starts the binary on a free port with a private data folder and reads the
URL it prints. http(): one request. ws_connect(): a small WebSocket client
(RFC 6455 handshake and frames over a plain socket). multipart(): a
multipart/form-data body. demo_song(): a short synthetic song from
`mus2pic demo-song`.
"""
import base64
import hashlib
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("MUS2PIC", "./mus2pic")


def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


class Server:
    def __init__(self, data_dir=None, settings=None, args=None):
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="m2p-serve-")
        self.settings = {"renderer": "sonic", "variations": "1", "width": "256", "height": "256",
                         "log_level": "warn", "retry_base_s": "0.3"}
        self.settings.update(settings or {})
        self.args = args or []
        self.proc = None
        self.port = None
        self.stderr_path = os.path.join(self.data_dir, "server-stderr.txt")

    def start(self, timeout=60):
        cmd = [BIN, "serve", "--port", "0"] + self.args
        for k, v in self.settings.items():
            cmd += ["--set", f"{k}={v}"]
        env = dict(os.environ)
        env["MUS2PIC_DATA_DIR"] = self.data_dir
        env.pop("MUS2PIC_CONFIG", None)
        env.pop("MUS2PIC_MODEL", None)  # the lcm renderer must find no weights here
        self.errf = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.errf, env=env)
        deadline = time.time() + timeout
        line = b""
        while time.time() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if r:
                line = self.proc.stdout.readline()
                break
            if self.proc.poll() is not None:
                break
        m = re.search(rb"serving on http://[^:]+:(\d+)/", line)
        if not m:
            self.dump()
            fail(f"server did not start: {line!r}")
        self.port = int(m.group(1))
        return self

    def dump(self):
        try:
            with open(self.stderr_path, "rb") as f:
                sys.stderr.write(f.read().decode(errors="replace")[-6000:])
        except OSError:
            pass

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            self.dump()
            fail("server did not stop within %d s" % timeout)
        self.proc.stdout.close()
        self.errf.close()
        self.proc = None
        if sig == signal.SIGTERM and rc != 0:
            self.dump()
            fail(f"server exited with {rc} after SIGTERM (sanitizer report above?)")
        return rc

    def kill(self):
        return self.stop(signal.SIGKILL)

    def cleanup(self):
        if self.proc is not None:
            self.stop()
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # ---- HTTP ----
    def http(self, method, path, body=None, headers=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        conn.close()
        return r.status, hdrs, data

    def json(self, method, path, body=None, headers=None, expect=None):
        status, hdrs, data = self.http(method, path, body, headers)
        try:
            j = json.loads(data) if data else None
        except ValueError:
            fail(f"{method} {path}: not JSON ({status}): {data[:200]!r}")
        if expect is not None and status != expect:
            fail(f"{method} {path}: expected {expect}, got {status}: {data[:400]!r}")
        return status, j

    def error(self, method, path, body=None, headers=None, status=None, code=None):
        st, j = self.json(method, path, body, headers)
        check(status is None or st == status, f"{method} {path}: expected status {status}, got {st}: {j}")
        check(isinstance(j, dict) and "error" in j, f"{method} {path}: no error object: {j}")
        e = j["error"]
        check(code is None or e.get("code") == code, f"{method} {path}: expected code {code}, got {e}")
        check(e.get("message") and "hint" in e, f"{method} {path}: error without message/hint: {e}")
        return e

    def wait_job(self, job_id, statuses=("succeeded", "failed", "cancelled", "partial"), timeout=120):
        deadline = time.time() + timeout
        j = None
        while time.time() < deadline:
            _, j = self.json("GET", f"/api/jobs/{job_id}", expect=200)
            if j["status"] in statuses:
                return j
            time.sleep(0.1)
        self.dump()
        fail(f"job {job_id} did not reach {statuses}: {j and j['status']}")


def multipart(fields, files):
    """files: list of (field, filename, bytes)."""
    boundary = "----m2ptest" + hashlib.md5(os.urandom(8)).hexdigest()
    out = []
    for k, v in fields.items():
        out.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode())
    for field, name, data in files:
        out.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
                   f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def demo_song(path, seconds=6, seed=1):
    r = subprocess.run([BIN, "demo-song", path, "--seconds", str(seconds), "--seed", str(seed)],
                       capture_output=True)
    check(r.returncode == 0, f"demo-song failed: {r.stderr!r}")
    with open(path, "rb") as f:
        return f.read()


class WS:
    """A minimal RFC 6455 client: text frames in, close frames out."""

    def __init__(self, port, path, headers=None, timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ")[1]) if head else 0
        self.head = head.decode(errors="replace")
        self.buf = rest
        if self.status == 101:
            want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode())
                                    .digest()).decode()
            check(f"Sec-WebSocket-Accept: {want}".lower() in self.head.lower(),
                  f"bad Sec-WebSocket-Accept in {self.head}")
        else:
            # The error body follows the headers.
            self.body = rest

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("socket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self, timeout=30):
        """Next message: ('text', str) or ('close', code)."""
        self.sock.settimeout(timeout)
        b0, b1 = self._read(2)
        op = b0 & 0x0F
        n = b1 & 0x7F
        check(not (b1 & 0x80), "server frames must not be masked")
        if n == 126:
            n = struct.unpack(">H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._read(8))[0]
        payload = self._read(n)
        if op == 1:
            return "text", payload.decode()
        if op == 8:
            code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
            self.close_reason = payload[2:].decode(errors="replace")
            return "close", code
        if op == 9:  # ping → pong
            self._send(0xA, payload)
            return self.recv(timeout)
        return "other", payload

    def expect_refusal(self, reason, timeout=10):
        """A refused live connection: 101, then at once a close frame 1008 naming the error."""
        check(self.status == 101, f"expected 101 then close 1008, got {self.head}")
        kind, code = self.recv(timeout)
        check(kind == "close" and code == 1008 and self.close_reason == reason,
              f"expected close 1008 {reason}, got {kind} {code} {getattr(self, 'close_reason', '')}")
        self.sock.close()

    def recv_json(self, timeout=30):
        kind, data = self.recv(timeout)
        check(kind == "text", f"expected a text frame, got {kind} {data}")
        return json.loads(data)

    def _send(self, op, payload):
        mask = os.urandom(4)
        n = len(payload)
        hdr = bytes([0x80 | op])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(hdr + mask + masked)

    def send_text(self, text):
        self._send(1, text.encode())

    def close(self):
        try:
            self._send(8, struct.pack(">H", 1000))
        except OSError:
            pass
        self.sock.close()
