#!/usr/bin/env python3
"""Black-box: contrasting songs → clearly different prompts, each fragment traced to features.

Makes a slow C-major demo song and a fast A-minor one with `mus2pic demo-song`, runs
`mus2pic prompt --json` on both and checks the prompt step end to end (real analysis, embedded
presets, exact CLIP count): the prompts differ, the palette follows the mode, the colour follows
the key, the motion follows the tempo, every fragment says what it read and why, and everything
fits 77 tokens. Also: a template typo is refused with a suggestion, an unknown style with its code.
"""
import json
import os
import subprocess
import sys
import tempfile

M = os.environ["MUS2PIC"]


def run(*args, check=True):
    r = subprocess.run([M, *args], capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        sys.exit(f"{args}: exit {r.returncode}: {r.stderr}")
    return r


def prompt_of(path, *extra):
    d = json.loads(run("prompt", path, "--json", *extra).stdout)
    return d["prompt"]


def frag(p, var):
    for f in p["fragments"]:
        if f["variable"] == var:
            return f
    sys.exit(f"no {{{var}}} fragment in {p}")


def main():
    with tempfile.TemporaryDirectory(prefix="m2p-prompt-") as tmp:
        os.environ["MUS2PIC_DATA_DIR"] = tmp
        calm = os.path.join(tmp, "calm.wav")
        fast = os.path.join(tmp, "fast.wav")
        run("demo-song", calm, "--tempo", "66", "--key", "C", "--mode", "major", "--seconds", "20", "--seed", "1")
        run("demo-song", fast, "--tempo", "150", "--key", "A", "--mode", "minor", "--seconds", "20", "--seed", "2")
        a = prompt_of(calm)
        b = prompt_of(fast)
        print("calm:", a["positive"])
        print("fast:", b["positive"])
        assert a["positive"] != b["positive"]
        for p in (a, b):
            n_tokens = p.get("n_tokens", p.get("tokens"))  # the CLI's JSON names it "tokens"
            assert 2 <= n_tokens <= 77, p
            assert p["style"] == "abstract"
            assert p["negative"]
            for f in p["fragments"]:
                assert f["text"] and f["feature"] and f["reason"], f
                if f["kept"]:
                    assert f["text"] in p["positive"], f
        # Mode → palette, key → colour, tempo → motion.
        assert "major mode" in frag(a, "palette")["reason"], frag(a, "palette")
        assert "minor mode" in frag(b, "palette")["reason"], frag(b, "palette")
        assert "key=C major" in frag(a, "color")["feature"], frag(a, "color")
        assert "scarlet" in frag(a, "color")["text"]
        assert "key=A minor" in frag(b, "color")["feature"], frag(b, "color")
        assert "forest green" in frag(b, "color")["text"]
        assert frag(b, "motion")["text"] in ("kinetic, fractured motion", "racing, streaking motion"), frag(b, "motion")
        assert "slow" in frag(a, "motion")["reason"] or "beat" in frag(a, "motion")["reason"], frag(a, "motion")
        # Another style keeps the analysis but changes the words around it.
        s = prompt_of(fast, "--style", "synthwave")
        assert s["style"] == "synthwave" and "neon grid" in s["positive"]
        assert frag(s, "color")["text"] == frag(b, "color")["text"]
        # Bad templates and styles: one clear line, non-zero exit.
        r = run("prompt", fast, "--template", "{moood} poster", check=False)
        assert r.returncode != 0 and "did you mean {mood}" in r.stderr, r.stderr
        r = run("prompt", fast, "--style", "synthwav", check=False)
        assert r.returncode != 0 and "style_unknown" in r.stderr, r.stderr
    print("prompt contrast: ok")


if __name__ == "__main__":
    main()
