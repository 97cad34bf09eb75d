#!/usr/bin/env python3
"""Posters that carry their story, read back by an independent PNG reader (Python's zlib and
struct only, no libpng): `mus2pic make --renderer sonic` writes PNGs whose text chunks hold the
prompt, seed, style, renderer, model, size, source, title, features summary and version; every
chunk CRC is valid, the text comes before the image data, there is no tIME chunk, the image data
inflates to the declared size, the JSON sidecar carries the same fields plus a summary of the analysis (< 16 KB), the same
settings give the same bytes, and --per-section / --layout / every style work."""
import json
import os
import shutil
import struct
import subprocess
import tempfile
import unittest
import zlib

BIN = os.environ.get("MUS2PIC", "build/mus2pic")
STYLES = ["abstract", "realistic", "minimalist", "synthwave", "watercolor", "album-cover", "ink",
          "oil-painting", "cinematic", "retro-poster", "geometric", "vaporwave", "psychedelic", "pixel-art"]


def run(args, env, timeout=300):
    p = subprocess.run([BIN] + args, env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def read_bytes(path):
    with open(path, "rb") as fh:
        return fh.read()


def read_png(path):
    """Returns (width, height, text dict, chunk type list, raw image bytes)."""
    data = read_bytes(path)
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "signature"
    pos, text, types, idat = 8, {}, [], b""
    width = height = None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        ctype = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(ctype + body) & 0xFFFFFFFF == crc, f"bad CRC in {ctype!r}"
        types.append(ctype.decode("ascii"))
        if ctype == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour == 2, "8-bit RGB"
        elif ctype == b"tEXt":
            key, _, value = body.partition(b"\0")
            text[key.decode("latin-1")] = value.decode("latin-1")
        elif ctype == b"zTXt":
            key, _, rest = body.partition(b"\0")
            text[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        elif ctype == b"iTXt":
            key, _, rest = body.partition(b"\0")
            flag, method = rest[0], rest[1]
            rest = rest[2:]
            _lang, _, rest = rest.partition(b"\0")
            _tkey, _, rest = rest.partition(b"\0")
            value = zlib.decompress(rest) if flag else rest
            text[key.decode("latin-1")] = value.decode("utf-8")
        elif ctype == b"IDAT":
            idat += body
        pos += 12 + length
    assert types[-1] == "IEND"
    return width, height, text, types, zlib.decompress(idat)


class PngStoryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="m2p-png-")
        cls.env = dict(os.environ)
        cls.env["MUS2PIC_DATA_DIR"] = os.path.join(cls.tmp, "data")
        cls.env.pop("MUS2PIC_CONFIG", None)
        cls.song = os.path.join(cls.tmp, "Caf\u00e9 Song.wav")
        rc, out, err = run(["demo-song", cls.song, "--tempo", "110", "--key", "E", "--mode", "major",
                            "--seconds", "24", "--seed", "5"], cls.env)
        assert rc == 0, err

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def make(self, name, *extra):
        out = os.path.join(self.tmp, name)
        rc, stdout, err = run(["make", self.song, "--renderer", "sonic", "--size", "128x128", "--out", out,
                               "--json", *extra], self.env)
        self.assertEqual(rc, 0, err)
        return [i["path"] for i in json.loads(stdout)["images"]]

    def test_metadata_read_independently(self):
        paths = self.make("meta", "-n", "2", "--seed", "41", "--style", "synthwave", "--layout")
        self.assertEqual(len(paths), 2)
        for seed, path in zip((41, 42), paths):
            w, h, text, types, raw = read_png(path)
            self.assertEqual((w, h), (128, 128))
            self.assertEqual(len(raw), (1 + 3 * w) * h)  # filter byte + RGB per row
            self.assertNotIn("tIME", types)
            self.assertLess(max(i for i, t in enumerate(types) if t in ("tEXt", "iTXt", "zTXt")),
                            types.index("IDAT"), "text chunks come before the image data")
            self.assertEqual(text["seed"], str(seed))
            self.assertEqual(text["style"], "synthwave")
            self.assertEqual(text["renderer"], "sonic")
            self.assertEqual(text["model"], "procedural")
            self.assertEqual(text["size"], "128x128")
            self.assertTrue(text["prompt"].strip())
            self.assertIn("negative_prompt", text)
            self.assertIn("BPM", text["features"])
            self.assertTrue(text["Software"].startswith("Mus2Pic "))
            self.assertEqual(text["Software"], "Mus2Pic " + text["mus2pic_version"])
            self.assertIn(f"Seed: {seed}", text["parameters"])
            self.assertTrue(text["source"].endswith(".wav"))
            # The sidecar: same fields, plus a summary of the analysis, small (no spectrogram pixels).
            side_path = path[:-4] + ".json"
            self.assertLess(os.path.getsize(side_path), 16 * 1024)
            with open(side_path, encoding="utf-8") as fh:
                side = json.load(fh)
            for k, v in text.items():
                self.assertEqual(side[k], v, k)
            self.assertIn("tempo_bpm", side["analysis"])
            self.assertNotIn("values", side["analysis"]["spectrogram"])
            self.assertLessEqual(len(side["analysis"]["energy_curve"]), 64)

    def test_same_settings_same_bytes(self):
        a = self.make("det-a", "-n", "1", "--seed", "9", "--style", "watercolor")[0]
        b = self.make("det-b", "-n", "1", "--seed", "9", "--style", "watercolor")[0]
        c = self.make("det-c", "-n", "1", "--seed", "10", "--style", "watercolor")[0]
        self.assertEqual(read_bytes(a), read_bytes(b))
        self.assertNotEqual(read_png(a)[4], read_png(c)[4])

    def test_every_style_and_sections(self):
        pixels = set()
        for style in STYLES:
            path = self.make("style-" + style, "-n", "1", "--seed", "3", "--style", style)[0]
            w, h, text, types, raw = read_png(path)
            self.assertEqual(text["style"], style)
            pixels.add(raw)
        self.assertEqual(len(pixels), len(STYLES), "every style paints its own picture")
        paths = self.make("sections", "-n", "1", "--seed", "3", "--style", "album-cover", "--per-section")
        self.assertGreaterEqual(len(paths), 1)
        sections = sorted(int(read_png(p)[2]["section"]) for p in paths)
        self.assertEqual(sections, list(range(len(paths))))
        # Each section poster says which part of the song it shows (iTXt: it has a middle dot and an en dash).
        for p in paths:
            w, h, text, types, raw = read_png(p)
            k = int(text["section"])
            self.assertRegex(text["section_label"], rf"^Part {k + 1} of {len(paths)} \u00b7 \d+:\d\d\u2013\d+:\d\d$")
            self.assertIn("iTXt", types)
        # With --layout too (the label is then also set on the poster: tests/unit/render/test_sonic_layout.c).
        laid = self.make("sections-layout", "-n", "1", "--seed", "3", "--style", "album-cover", "--per-section",
                         "--layout")
        self.assertEqual(len(laid), len(paths))
        for p in laid:
            self.assertIn("section_label", read_png(p)[2])


if __name__ == "__main__":
    unittest.main()
