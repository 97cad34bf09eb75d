"""Real PostgreSQL and Redis for the scale-out tests (Python standard library only).

Each service is started by the test itself on loopback at a free port, in a
temporary folder, and stopped and removed at the end. No mocks.

PostgreSQL: initdb + pg_ctl from /usr/lib/postgresql/<ver>/bin (Debian's
`postgresql` package). As root the server runs as the `postgres` user
(runuser), in a folder it owns. A role and a database named m2p are created;
Postgres.url is the postgresql:// URL for MUS2PIC_DATABASE_URL.

Redis: `redis-server` as a child process, no persistence.
"""
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name):
    cands = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if cands:
        return cands[-1]
    found = shutil.which(name)
    if found:
        return found
    raise RuntimeError(f"PostgreSQL's {name} not found: install the postgresql package")


def available():
    """True when both services can be started here."""
    try:
        _pg_bin("initdb")
    except RuntimeError:
        return False
    return shutil.which("redis-server") is not None


class Postgres:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="m2p-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.root = os.geteuid() == 0
        self.url = f"postgresql://m2p:m2p@127.0.0.1:{self.port}/m2p"
        self.running = False

    def _run(self, argv, check=True):
        if self.root:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd="/")
        if check and r.returncode != 0:
            raise RuntimeError(f"{argv}: {r.stdout.decode(errors='replace')[-2000:]}")
        return r

    def start(self):
        if self.root:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run([_pg_bin("initdb"), "-D", self.data, "--auth=trust", "-U", "postgres", "-E", "UTF8",
                   "--no-sync"])
        self.resume()
        self.psql("CREATE ROLE m2p LOGIN PASSWORD 'm2p'")
        self.psql("CREATE DATABASE m2p OWNER m2p")
        return self

    def resume(self):
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run([_pg_bin("pg_ctl"), "-D", self.data, "-o", opts, "-l", os.path.join(self.dir, "log"),
                   "-w", "-t", "60", "start"])
        self.running = True

    def stop(self, mode="fast"):
        if self.running:
            self._run([_pg_bin("pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop"], check=False)
            self.running = False

    def psql(self, sql, db="postgres"):
        r = self._run([_pg_bin("psql"), "-h", self.dir, "-p", str(self.port), "-U", "postgres", "-d", db,
                       "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
        return r.stdout.decode().strip()

    def query(self, sql):
        return self.psql(sql, db="m2p")

    def cleanup(self):
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class Redis:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="m2p-redis-")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None

    def start(self, timeout=20):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
