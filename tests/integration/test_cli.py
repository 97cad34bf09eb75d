#!/usr/bin/env python3
"""Black-box tests of the `mus2pic` CLI: exit codes, one-line errors, analyze/prompt/make
on a synthesised song, caching, reproducibility. Python standard library only."""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
import wave

BIN = os.environ.get("MUS2PIC", "build/mus2pic")


def run(args, env, timeout=300):
    p = subprocess.run([BIN] + args, env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def read_bytes(path):
    with open(path, "rb") as fh:
        return fh.read()


def error_line(stderr):
    lines = [l for l in stderr.splitlines() if l.startswith("mus2pic: error ")]
    return lines


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="m2p-cli-")
        cls.env = dict(os.environ)
        cls.env["MUS2PIC_DATA_DIR"] = os.path.join(cls.tmp, "data")
        cls.env.pop("MUS2PIC_CONFIG", None)
        cls.song = os.path.join(cls.tmp, "Demo Song.wav")
        rc, out, err = run(["demo-song", cls.song, "--tempo", "124", "--key", "A", "--mode", "minor",
                            "--seconds", "40", "--seed", "3"], cls.env)
        assert rc == 0, err

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def expect_error(self, args, code, exit_code=1):
        rc, out, err = run(args, self.env)
        self.assertEqual(rc, exit_code, f"{args}: rc={rc} stderr={err}")
        lines = error_line(err)
        self.assertEqual(len(lines), 1, f"{args}: expected one error line, got {err!r}")
        self.assertIn(f"error {code}:", lines[0])
        self.assertIn("Hint:", lines[0])
        return lines[0]

    def test_usage(self):
        rc, out, err = run([], self.env)
        self.assertEqual(rc, 2)
        self.assertIn("usage: mus2pic", err)
        rc, out, err = run(["no-such-command"], self.env)
        self.assertEqual(rc, 2)
        rc, out, err = run(["help"], self.env)
        self.assertEqual(rc, 0)
        for cmd in ("analyze", "prompt", "make", "styles", "doctor", "config"):
            self.assertIn(cmd, out)
        self.expect_error(["analyze"], "usage", exit_code=2)
        self.expect_error(["analyze", self.song, "--bogus"], "usage", exit_code=2)
        self.expect_error(["analyze", "--set", "port=nope", self.song], "config", exit_code=2)
        # `mus2pic make --help` (and -h right after the command): that command's options, exit 0
        for cmd in ("analyze", "prompt", "make"):
            for flag in ("--help", "-h"):
                rc, out, err = run([cmd, flag], self.env)
                self.assertEqual(rc, 0, err)
                self.assertIn("usage: mus2pic " + cmd, out)
        rc, out, err = run(["make", self.song, "--help"], self.env)
        self.assertEqual(rc, 0, err)
        for opt in ("--variations", "--style", "--template", "--size", "--seed", "--per-section", "--layout", "--out"):
            self.assertIn(opt, out)
        # --per-section makes one poster per section: a -n beside it is said to be unused, not silently dropped
        out_dir = os.path.join(self.tmp, "per-section-n")
        rc, out, err = run(["make", self.song, "--per-section", "-n", "2", "--size", "64x64", "--out", out_dir], self.env)
        self.assertEqual(rc, 0, err)
        self.assertIn("-n 2 is not used", err)

    def test_bad_sources(self):
        cases = [
            ("/no/such/file.mp3", "file_not_found"),
            ("ftp://example.com/a.mp3", "url_scheme"),
            ("https://example.com/song.mp3", "url_site_unsupported"),
            ("https://www.youtube.com/playlist?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG", "url_playlist"),
            ("http://169.254.169.254/latest/meta-data/", None),
            ("https://soundcloud.com/artist/track", "url_site_disabled"),
        ]
        for src, code in cases:
            rc, out, err = run(["analyze", src], self.env)
            self.assertEqual(rc, 1, f"{src}: {err}")
            lines = error_line(err)
            self.assertEqual(len(lines), 1, err)
            if code:
                self.assertIn(f"error {code}:", lines[0])

    def test_bad_audio(self):
        empty = os.path.join(self.tmp, "empty.mp3")
        open(empty, "wb").close()
        self.expect_error(["analyze", empty], "decode_empty")
        text = os.path.join(self.tmp, "notes.mp3")
        with open(text, "w") as f:
            f.write("this is not audio at all\n" * 100)
        self.expect_error(["analyze", text], "decode_format")
        silent = os.path.join(self.tmp, "silent.wav")
        with wave.open(silent, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(22050)
            w.writeframes(b"\0\0" * 22050 * 5)
        self.expect_error(["analyze", silent], "decode_silent")
        self.expect_error(["analyze", self.tmp], "file_not_regular")

    def test_analyze_json_and_cache(self):
        rc, out, err = run(["analyze", self.song, "--json"], self.env)
        self.assertEqual(rc, 0, err)
        f = json.loads(out)
        for key in ("duration_s", "tempo_bpm", "key", "mode", "energy", "sections"):
            self.assertIn(key, f)
        self.assertAlmostEqual(f["duration_s"], 40.0, delta=0.5)
        self.assertLess(abs(f["tempo_bpm"] - 124) / 124, 0.04, f["tempo_bpm"])
        self.assertEqual((f["key"], f["mode"]), ("A", "minor"))
        self.assertTrue(0 <= f["energy"] <= 1)
        self.assertFalse(f["track"]["features_cached"])
        # The same song again: the analysis comes from the store.
        rc, out2, err = run(["analyze", self.song, "--json"], self.env)
        self.assertEqual(rc, 0, err)
        g = json.loads(out2)
        self.assertTrue(g["track"]["features_cached"])
        self.assertEqual(g["tempo_bpm"], f["tempo_bpm"])
        # Human summary.
        rc, out3, err = run(["analyze", self.song], self.env)
        self.assertEqual(rc, 0, err)
        self.assertIn("BPM", out3)
        self.assertIn("A minor", out3)

    def test_prompt_and_styles(self):
        rc, out, err = run(["styles"], self.env)
        self.assertEqual(rc, 0, err)
        self.assertGreaterEqual(len([l for l in out.splitlines() if l.strip()]), 12)
        rc, out, err = run(["prompt", self.song, "--style", "watercolor"], self.env)
        self.assertEqual(rc, 0, err)
        self.assertIn("why this image", out)
        self.assertIn("<-", out)
        self.expect_error(["prompt", self.song, "--style", "no-such-style"], "style_unknown")
        self.expect_error(["prompt", self.song, "--template", "a {moood} poster"], "template_variable")

    def test_make(self):
        out_dir = os.path.join(self.tmp, "posters")
        rc, out, err = run(["make", self.song, "-n", "2", "--seed", "7", "--size", "256x256",
                            "--renderer", "sonic", "--out", out_dir, "--json"], self.env)
        self.assertEqual(rc, 0, err)
        res = json.loads(out)
        paths = [i["path"] for i in res["images"]]
        self.assertEqual(len(paths), 2)
        self.assertEqual([i["seed"] for i in res["images"]], [7, 8])
        for p in paths:
            with open(p, "rb") as fh:
                data = fh.read()
            self.assertTrue(data.startswith(b"\x89PNG\r\n\x1a\n"))
            self.assertIn(b"tEXt", data)
            self.assertTrue(os.path.exists(p[:-4] + ".json"))
        first = read_bytes(paths[0])
        self.assertNotEqual(first, read_bytes(paths[1]))
        # Same settings, same bytes.
        out_dir2 = os.path.join(self.tmp, "posters2")
        rc, out, err = run(["make", self.song, "-n", "1", "--seed", "7", "--size", "256x256",
                            "--renderer", "sonic", "--out", out_dir2, "--json"], self.env)
        self.assertEqual(rc, 0, err)
        again = json.loads(out)["images"][0]["path"]
        self.assertEqual(read_bytes(again), first)

    def test_auto_without_weights_says_why(self):
        # No model anywhere: `auto` falls back to sonic and says so once, with what to do.
        env = dict(self.env)
        env.pop("MUS2PIC_MODEL", None)
        env.pop("MUS2PIC_RENDERER", None)
        out_dir = os.path.join(self.tmp, "auto")
        rc, out, err = run(["make", self.song, "-n", "2", "--seed", "5", "--size", "64x64", "--out", out_dir], env)
        self.assertEqual(rc, 0, err)
        models = os.path.join(env["MUS2PIC_DATA_DIR"], "models")
        notes = [l for l in err.splitlines() if "no LCM weights found" in l]
        self.assertEqual(len(notes), 1, err)
        self.assertIn("MUS2PIC_MODEL unset", notes[0])
        self.assertIn(models, notes[0])
        self.assertIn("using the sonic renderer", notes[0])
        self.assertIn("mus2pic model pull", notes[0])
        self.assertIn("2 posters (sonic", out)
        # A model folder named but empty: the note names it.
        env["MUS2PIC_MODEL"] = os.path.join(self.tmp, "no-model-here")
        rc, out, err = run(["make", self.song, "-n", "1", "--size", "64x64", "--out", out_dir, "--json"], env)
        self.assertEqual(rc, 0, err)
        res = json.loads(out)
        self.assertEqual(res["renderer"], "sonic")
        self.assertIn("MUS2PIC_MODEL=" + env["MUS2PIC_MODEL"], res["renderer_note"])
        # Asking for sonic, or -q: no note.
        rc, out, err = run(["make", self.song, "-n", "1", "--size", "64x64", "--renderer", "sonic", "--out", out_dir],
                           self.env)
        self.assertEqual(rc, 0, err)
        self.assertNotIn("LCM weights", err + out)
        rc, out, err = run(["make", self.song, "-n", "1", "--size", "64x64", "-q", "--out", out_dir], env)
        self.assertEqual(rc, 0, err)
        self.assertNotIn("LCM weights", err)

    def test_make_bad_options(self):
        self.expect_error(["make", self.song, "--size", "13x13"], "render_size")
        self.expect_error(["make", self.song, "-n", "0"], "render_count")
        self.expect_error(["make", self.song, "-n", "17"], "render_count")
        self.expect_error(["make", self.song, "--steps", "0"], "render_steps")
        self.expect_error(["make", self.song, "--seed", "-1"], "render_seed")
        self.expect_error(["make", self.song, "--renderer", "dalle"], "renderer_unknown")
        self.expect_error(["analyze", self.song, "-n", "2"], "usage", exit_code=2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
