#!/usr/bin/env python3
"""Black-box test of the `lcm` renderer through the CLI, on the tiny random model of
tests/fixtures/nn/tiny-lcm (MUS2PIC_MODEL): `mus2pic make --renderer lcm` writes one PNG per
variation with consecutive seeds; an image rendered alone has the same pixels as in the batch;
different seeds give different pixels; a missing model is one clear error line.
The TAESD draft decoder: `--set decoder=taesd` renders with tests/fixtures/nn/tiny-lcm/taesd
(found inside the model folder, or through MUS2PIC_TAESD) — other pixels than the VAE, still
reproducible per seed; decoder=auto falls back to the VAE when TAESD is absent; decoder=taesd
without TAESD is one clear error naming both ways to get it. The `previews` setting (live
previews are the server's; see test_serve_previews.py) never changes the pixels; a bad value is
one error line.
Python standard library only (a small PNG decoder below)."""
import json
import os
import shutil
import struct
import subprocess
import tempfile
import unittest
import zlib

BIN = os.environ.get("MUS2PIC", "build/mus2pic")
SRC = os.environ.get("MUS2PIC_SOURCE_DIR", ".")
TINY = os.path.join(SRC, "tests", "fixtures", "nn", "tiny-lcm")


def run(args, env, timeout=600):
    p = subprocess.run([BIN] + args, env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def png_pixels(path):
    """(width, height, bytes) of an 8-bit RGB/RGBA non-interlaced PNG."""
    with open(path, "rb") as fh:
        data = fh.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat, w, h, ctype = 8, b"", 0, 0, 2
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and ctype in (2, 6), (depth, ctype, interlace)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    out = bytearray()
    prev = bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pred) & 255
        out += line
        prev = line
    return w, h, bytes(out)


class LcmMakeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="m2p-lcm-")
        cls.env = dict(os.environ)
        cls.env["MUS2PIC_DATA_DIR"] = os.path.join(cls.tmp, "data")
        cls.env["MUS2PIC_MODEL"] = TINY
        cls.env.pop("MUS2PIC_CONFIG", None)
        cls.song = os.path.join(cls.tmp, "song.wav")
        rc, out, err = run(["demo-song", cls.song, "--tempo", "100", "--seconds", "12", "--seed", "4"], cls.env)
        assert rc == 0, err

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def make(self, n, seed, out, extra=(), env=None):
        rc, stdout, err = run(["make", self.song, "-n", str(n), "--seed", str(seed), "--size", "64x64",
                               "--steps", "2", "--renderer", "lcm", "--out", os.path.join(self.tmp, out), "--json"]
                              + list(extra), env or self.env)
        self.assertEqual(rc, 0, err)
        return json.loads(stdout)["images"]

    def test_batch_and_single(self):
        batch = self.make(2, 40, "batch")
        self.assertEqual([i["seed"] for i in batch], [40, 41])
        pix = [png_pixels(i["path"]) for i in batch]
        for w, h, _ in pix:
            self.assertEqual((w, h), (64, 64))
        self.assertNotEqual(pix[0][2], pix[1][2], "two seeds gave the same image")
        single = self.make(1, 41, "single")
        self.assertEqual(single[0]["seed"], 41)
        self.assertEqual(png_pixels(single[0]["path"])[2], pix[1][2], "seed 41 alone differs from seed 41 in a batch")

    def test_taesd_decoder(self):
        vae = [png_pixels(i["path"]) for i in self.make(2, 40, "t-vae")]
        draft = self.make(2, 40, "t-taesd", ["--set", "decoder=taesd"])
        self.assertEqual([i["seed"] for i in draft], [40, 41])
        pix = [png_pixels(i["path"]) for i in draft]
        for (w, h, data), (_, _, vdata) in zip(pix, vae):
            self.assertEqual((w, h), (64, 64))
            self.assertNotEqual(data, vdata, "decoder=taesd gave the VAE's pixels")
            self.assertGreater(len(set(data)), 8, "a flat TAESD image")
        self.assertNotEqual(pix[0][2], pix[1][2])
        # Reproducible per seed, alone or in a batch; MUS2PIC_TAESD names the same folder.
        env = dict(self.env)
        env["MUS2PIC_TAESD"] = os.path.join(TINY, "taesd")
        single = self.make(1, 41, "t-single", ["--set", "decoder=taesd"], env)
        self.assertEqual(png_pixels(single[0]["path"])[2], pix[1][2])

    def test_taesd_missing_and_auto(self):
        env = dict(self.env)
        env["MUS2PIC_TAESD"] = os.path.join(self.tmp, "no-taesd")
        rc, out, err = run(["make", self.song, "--renderer", "lcm", "--size", "64x64", "--set", "decoder=taesd",
                            "--out", os.path.join(self.tmp, "none")], env)
        self.assertEqual(rc, 1, err)
        lines = [l for l in err.splitlines() if l.startswith("mus2pic: error ")]
        self.assertEqual(len(lines), 1, err)
        self.assertIn("error taesd_missing:", lines[0])
        self.assertIn("mus2pic model pull madebyollin/taesd", lines[0])
        self.assertIn("MUS2PIC_TAESD", lines[0])
        # auto without TAESD: the VAE, same pixels as decoder=vae.
        auto = self.make(1, 40, "t-auto", ["--set", "decoder=auto"], env)
        vae = self.make(1, 40, "t-vae1", ["--set", "decoder=vae"])
        self.assertEqual(png_pixels(auto[0]["path"])[2], png_pixels(vae[0]["path"])[2])
        rc, out, err = run(["make", self.song, "--renderer", "lcm", "--size", "64x64", "--set", "decoder=fast",
                            "--out", os.path.join(self.tmp, "none")], self.env)
        self.assertNotEqual(rc, 0, err)
        self.assertIn("vae, taesd or auto", err)

    def test_previews_setting(self):
        # Live previews are a server feature: they never change the images. previews=off renders
        # the same pixels and keeps TAESD for decoder=taesd; an unknown value is one error line.
        auto = self.make(1, 42, "p-auto")
        off = self.make(1, 42, "p-off", ["--set", "previews=off"])
        self.assertEqual(png_pixels(auto[0]["path"])[2], png_pixels(off[0]["path"])[2])
        draft = self.make(1, 42, "p-draft", ["--set", "decoder=taesd"])
        draft_off = self.make(1, 42, "p-draft-off", ["--set", "decoder=taesd", "--set", "previews=off"])
        self.assertEqual(png_pixels(draft[0]["path"])[2], png_pixels(draft_off[0]["path"])[2])
        self.assertNotEqual(png_pixels(draft[0]["path"])[2], png_pixels(auto[0]["path"])[2])
        rc, out, err = run(["make", self.song, "--renderer", "lcm", "--size", "64x64", "--set", "previews=maybe",
                            "--out", os.path.join(self.tmp, "none")], self.env)
        self.assertNotEqual(rc, 0, err)
        lines = [l for l in err.splitlines() if l.startswith("mus2pic: error ")]
        self.assertEqual(len(lines), 1, err)
        self.assertIn("previews takes auto or off (not 'maybe')", lines[0])

    def test_missing_model(self):
        env = dict(self.env)
        env["MUS2PIC_MODEL"] = os.path.join(self.tmp, "no-such-model")
        rc, out, err = run(["make", self.song, "--renderer", "lcm", "--size", "64x64", "--out",
                            os.path.join(self.tmp, "none")], env)
        self.assertEqual(rc, 1, err)
        lines = [l for l in err.splitlines() if l.startswith("mus2pic: error ")]
        self.assertEqual(len(lines), 1, err)
        self.assertIn("error model_missing:", lines[0])


if __name__ == "__main__":
    unittest.main()
