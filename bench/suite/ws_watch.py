#!/usr/bin/env python3
"""bench/suite/ws_watch.py — N WebSocket clients watching N jobs of `mus2pic serve` (sonic).

Starts its own server on a free port with a temporary data folder (like bench/bench_service.py),
submits N jobs at once (uploads of a short synthetic song, distinct seeds), and for each job opens
one WebSocket on /ws/jobs/ID right after its submit. Each client reads the snapshot and the events
until its job's final state. Prints one JSON object: clients connected, finals seen (exactly once
per job = nothing lost, nothing twice), events received, latency from the job's final event
(created_at is not used: the client's receive time minus its connect time is reported), the
server's VmHWM, and the /metrics WebSocket gauges.

    ws_watch.py --bin build/mus2pic [--jobs 100] [--workers 2] [--size 256x256] [--timeout 100]
Python standard library only.
"""
import argparse
import base64
import concurrent.futures as cf
import http.client
import json
import os
import re
import select
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time


def vm_hwm_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def multipart(fields, name, data):
    b = "----m2pws"
    out = [f"--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode() for k, v in fields.items()]
    out.append(f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n".encode()
               + data + b"\r\n")
    out.append(f"--{b}--\r\n".encode())
    return b"".join(out), {"Content-Type": f"multipart/form-data; boundary={b}"}


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def send_frame(s, opcode, payload=b""):
    mask = os.urandom(4)
    hdr = bytes([0x80 | opcode])
    n = len(payload)
    hdr += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
    s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def watch(port, job_id, deadline):
    """Returns dict: connected, finals, events, t_connect, t_final (monotonic)."""
    res = {"job": job_id, "connected": False, "finals": 0, "events": 0, "error": None}
    t0 = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=max(1.0, deadline - time.monotonic()))
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /ws/jobs/{job_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            c = s.recv(1)
            if not c:
                raise ConnectionError("closed during handshake")
            head += c
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(head.split(b"\r\n")[0].decode(errors="replace"))
        res["connected"] = True
        res["t_connect"] = time.monotonic() - t0
        while time.monotonic() < deadline:
            s.settimeout(max(0.5, deadline - time.monotonic()))
            h = recv_exact(s, 2)
            op, n = h[0] & 0x0F, h[1] & 0x7F
            if n == 126:
                n = struct.unpack(">H", recv_exact(s, 2))[0]
            elif n == 127:
                n = struct.unpack(">Q", recv_exact(s, 8))[0]
            payload = recv_exact(s, n)
            if op == 8:
                break
            if op == 9:
                send_frame(s, 10, payload)
                continue
            if op != 1:
                continue
            msg = json.loads(payload)
            if msg.get("type") == "snapshot":
                st = (msg.get("job") or {}).get("status")
                if st in ("succeeded", "failed", "cancelled", "partial"):
                    res["finals"] += 1  # already over when we connected
                    res["final_status"] = st
                    res["t_final"] = time.monotonic() - t0
                    break
                continue
            res["events"] += 1
            if msg.get("type") == "state" and msg.get("status") in ("succeeded", "failed", "cancelled", "partial"):
                res["finals"] += 1
                res["final_status"] = msg.get("status")
                res["t_final"] = time.monotonic() - t0
                # keep reading briefly to catch a duplicate final
                s.settimeout(0.3)
                try:
                    while True:
                        h = recv_exact(s, 2)
                        n = h[1] & 0x7F
                        if n == 126:
                            n = struct.unpack(">H", recv_exact(s, 2))[0]
                        p = recv_exact(s, n)
                        if h[0] & 0x0F == 1:
                            m2 = json.loads(p)
                            if m2.get("type") == "state" and m2.get("status") in ("succeeded", "failed"):
                                res["finals"] += 1
                except (socket.timeout, ConnectionError, OSError):
                    pass
                break
        try:
            send_frame(s, 8, b"\x03\xe8")
        except OSError:
            pass
        s.close()
    except Exception as ex:  # noqa: BLE001
        res["error"] = f"{type(ex).__name__}: {ex}"[:200]
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/mus2pic")
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", default="256x256")
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=100.0)
    args = ap.parse_args()
    deadline = time.monotonic() + args.timeout
    data_dir = tempfile.mkdtemp(prefix="m2p-ws-")
    song_path = os.path.join(data_dir, "song.wav")
    subprocess.run([args.bin, "demo-song", song_path, "--seconds", str(args.seconds)], check=True, capture_output=True)
    song = open(song_path, "rb").read()
    w, h = args.size.split("x")
    env = dict(os.environ, MUS2PIC_DATA_DIR=data_dir)
    cmd = [args.bin, "serve", "--port", "0", "--set", "renderer=sonic", "--set", f"workers={args.workers}",
           "--set", "rate_limit_per_min=0", "--set", f"width={w}", "--set", f"height={h}", "--set", "variations=1",
           "--set", f"max_ws_per_client={max(16, args.jobs + 10)}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    out = {"jobs": args.jobs}
    try:
        r, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if r else b""
        m = re.search(rb":(\d+)/", line)
        if not m:
            print(json.dumps({"error": "server did not start"}))
            return 1
        port = int(m.group(1))
        out["rss_idle_kb"] = vm_hwm_kb(proc.pid)
        local = threading.local()

        def submit(i):
            c = getattr(local, "c", None)
            if c is None:
                c = local.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            body, hdrs = multipart({"seed": str(5000 + i)}, "song.wav", song)
            c.request("POST", "/api/jobs", body, hdrs)
            resp = c.getresponse()
            data = resp.read()
            if resp.status != 201:
                raise RuntimeError(f"submit {i}: {resp.status} {data[:120]!r}")
            return json.loads(data)["id"]

        t_start = time.monotonic()
        with cf.ThreadPoolExecutor(max_workers=min(args.jobs, 100)) as subex, \
                cf.ThreadPoolExecutor(max_workers=args.jobs) as wsex:
            watchers = []
            for fut in cf.as_completed([subex.submit(submit, i) for i in range(args.jobs)]):
                jid = fut.result()
                watchers.append(wsex.submit(watch, port, jid, deadline))
            results = [f.result() for f in watchers]
        out["all_s"] = time.monotonic() - t_start
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/metrics")
            met = c.getresponse().read().decode()
            for k in ("m2p_websockets_open", "m2p_websockets_total"):
                mm = re.search(rf"^{k} (\d+)", met, re.M)
                if mm:
                    out[k] = int(mm.group(1))
        except OSError:
            pass
        out["connected"] = sum(r["connected"] for r in results)
        out["finals_once"] = sum(r["finals"] == 1 for r in results)
        out["finals_twice"] = sum(r["finals"] > 1 for r in results)
        out["lost"] = sum(r["finals"] == 0 for r in results)
        out["events"] = sum(r["events"] for r in results)
        out["statuses"] = {}
        for r in results:
            st = r.get("final_status", "none")
            out["statuses"][st] = out["statuses"].get(st, 0) + 1
        conn = [r["t_connect"] * 1000 for r in results if "t_connect" in r]
        if conn:
            out["connect_ms_p50"] = statistics.median(conn)
            out["connect_ms_max"] = max(conn)
        out["errors"] = [r["error"] for r in results if r["error"]][:5]
        out["rss_peak_kb"] = vm_hwm_kb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
