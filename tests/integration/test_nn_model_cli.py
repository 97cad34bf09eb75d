#!/usr/bin/env python3
"""tests/integration/test_nn_model_cli.py — `mus2pic model pull` and `mus2pic model info` as a user
runs them: a pull from a loopback stand-in for the hub (tests/tools/nn_model_server.py) into a fresh
data folder gives a complete model that `model info` reports; a missing model is a one-line error
naming both ways to get one (exit 1); bad usage exits 2. The TAESD draft decoder: `model info`
says it is not installed, decoder=taesd without it fails naming both ways to get it, and
`model pull madebyollin/taesd` puts it where `model info` then finds it. Standard library only."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("MUS2PIC", "build/mus2pic")
SRC = os.environ.get("MUS2PIC_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
TINY = os.path.join(SRC, "tests", "fixtures", "nn", "tiny-lcm")
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def run(args, env):
    return subprocess.run([BIN] + args, env=env, capture_output=True, text=True, timeout=120)


def main():
    tmp = tempfile.mkdtemp(prefix="m2p-model-cli-")
    server = None
    try:
        portf = os.path.join(tmp, "port")
        server = subprocess.Popen([PY, os.path.join(SRC, "tests", "tools", "nn_model_server.py"), "--root", TINY,
                                   "--id", "test/tiny-lcm", "--port-file", portf,
                                   "--drop", "unet/diffusion_pytorch_model.safetensors:200000"],
                                  stdout=subprocess.DEVNULL)
        for _ in range(200):
            if os.path.exists(portf):
                break
            time.sleep(0.05)
        port = int(open(portf).read())
        env = dict(os.environ)
        for k in ("MUS2PIC_MODEL", "MUS2PIC_CONFIG"):
            env.pop(k, None)
        env["MUS2PIC_DATA_DIR"] = os.path.join(tmp, "data")
        env["MUS2PIC_HF_ENDPOINT"] = f"http://127.0.0.1:{port}"
        env["MUS2PIC_MODEL_ID"] = "test/tiny-lcm"

        # Nothing there yet: exit 1, one error line naming both ways.
        r = run(["model", "info"], env)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert "incomplete" in r.stdout, r.stdout
        err_lines = [l for l in r.stderr.splitlines() if l.startswith("mus2pic: error")]
        assert len(err_lines) == 1 and "model_missing" in err_lines[0], r.stderr
        assert "model pull" in err_lines[0] and "MUS2PIC_MODEL" in err_lines[0], err_lines[0]

        # Pull (the server drops the unet download once: the pull resumes by itself).
        r = run(["model", "pull", "-q"], env)
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        folder = r.stdout.strip()
        assert folder == os.path.join(tmp, "data", "models", "test", "tiny-lcm"), folder
        for rel in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                    "vae/diffusion_pytorch_model.safetensors", "tokenizer/vocab.json"):
            with open(os.path.join(folder, rel), "rb") as a, open(os.path.join(TINY, rel), "rb") as b:
                assert a.read() == b.read(), rel
        assert not any(n.endswith(".part") for _, _, ns in os.walk(folder) for n in ns)

        r = run(["model", "info"], env)
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        assert "status: complete" in r.stdout and "LCMScheduler" in r.stdout, r.stdout

        # MUS2PIC_MODEL points at a folder directly.
        env2 = dict(env, MUS2PIC_MODEL=TINY)
        r = run(["model", "info"], env2)
        assert r.returncode == 0 and "(MUS2PIC_MODEL)" in r.stdout, r.stdout

        # TAESD: not installed yet; asked for with decoder=taesd → exit 1 naming both ways.
        r = run(["model", "info"], env)
        assert "taesd: not installed" in r.stdout and "decoder: vae" in r.stdout, r.stdout
        r = run(["model", "info"], dict(env, MUS2PIC_DECODER="taesd"))
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        err_lines = [l for l in r.stderr.splitlines() if l.startswith("mus2pic: error")]
        assert len(err_lines) == 1 and "taesd_missing" in err_lines[0], r.stderr
        assert "model pull madebyollin/taesd" in err_lines[0] and "MUS2PIC_TAESD" in err_lines[0], err_lines[0]
        portf2 = os.path.join(tmp, "port2")
        server2 = subprocess.Popen([PY, os.path.join(SRC, "tests", "tools", "nn_model_server.py"), "--root",
                                    os.path.join(TINY, "taesd"), "--id", "madebyollin/taesd", "--port-file", portf2],
                                   stdout=subprocess.DEVNULL)
        try:
            for _ in range(200):
                if os.path.exists(portf2):
                    break
                time.sleep(0.05)
            port2 = int(open(portf2).read())
            r = run(["model", "pull", "madebyollin/taesd", "-q"], dict(env, MUS2PIC_HF_ENDPOINT=f"http://127.0.0.1:{port2}"))
        finally:
            server2.terminate()
            server2.wait()
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        tfolder = r.stdout.strip()
        assert tfolder == os.path.join(tmp, "data", "models", "madebyollin", "taesd"), tfolder
        for rel in ("config.json", "diffusion_pytorch_model.safetensors"):
            with open(os.path.join(tfolder, rel), "rb") as a, open(os.path.join(TINY, "taesd", rel), "rb") as b:
                assert a.read() == b.read(), rel
        r = run(["model", "info"], dict(env, MUS2PIC_DECODER="taesd"))
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        assert f"taesd: {tfolder} (diffusion_pytorch_model.safetensors" in r.stdout, r.stdout
        assert "decoder: taesd" in r.stdout, r.stdout

        # Usage errors exit 2.
        for args in (["model"], ["model", "pull", "../etc/passwd"], ["model", "frobnicate"],
                     ["model", "pull", "--retries", "x"]):
            r = run(args, env)
            assert r.returncode == 2, (args, r.returncode, r.stderr)
        # An unknown model: exit 1, a download error.
        r = run(["model", "pull", "nobody/nothing", "--retries", "0"], env)
        assert r.returncode == 1 and "model_download" in r.stderr, r.stderr
        print("ok")
        return 0
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
