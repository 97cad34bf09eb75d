#!/usr/bin/env python3
"""Writes the CLIP tokenizer fixtures for tests/unit/prompt/test_clip_tokenizer.c.

Reference: Hugging Face transformers.CLIPTokenizer (the tokenizer diffusers uses
for Stable Diffusion 1.x) built from a vocab.json/merges.txt that this script
derives from data/clip/bpe_simple_vocab_16e6.txt.gz exactly as OpenAI's CLIP
does (256 byte symbols, the same with </w>, one token per merge line 1..48894,
<|startoftext|>, <|endoftext|>). Pad = <|endoftext|> as in SD1.x.

Outputs (small, committed):
  tests/fixtures/tokenizer/cases.json         tricky prompts and their 77 ids
  tests/fixtures/tokenizer/small/vocab.json   a cut-down pair (first 2000 merges)
  tests/fixtures/tokenizer/small/merges.txt     for m2p_clip_tokenizer_load
  tests/fixtures/tokenizer/small_cases.json   ids from that small pair

Run with the reference venv (never part of `make test`):
  tools/refvenv/bin/python tools/tokenizer/make_fixtures.py
"""
import gzip
import json
import os
import sys

from transformers import CLIPTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BPE = os.path.join(ROOT, "data", "clip", "bpe_simple_vocab_16e6.txt.gz")
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def build_vocab(n_merges):
    lines = gzip.open(BPE).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:1 + n_merges]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    for m in merges:
        vocab.append("".join(m))
    vocab.extend(["<|startoftext|>", "<|endoftext|>"])
    return {t: i for i, t in enumerate(vocab)}, merges


def write_pair(folder, n_merges):
    vocab, merges = build_vocab(n_merges)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    return CLIPTokenizer(vocab=vocab, merges=[(a, b) for a, b in merges])


LONG = ("a breathtaking cinematic poster of a lonely lighthouse on a stormy coast at dusk, "
        "waves crashing, dramatic clouds, volumetric light, intricate details, ") * 4

CASES = [
    "",
    "a photo of a cat",
    "A Photo Of A CAT",
    "moody, cool dusk palette, kinetic, fractured motion",
    "Hello, world! What's up? I'm fine; you'd say it's 'great'...",
    "don't won't they're we've I'll he'd she's",
    "'s 't 're 've 'm 'll 'd '''quoted''' rock'n'roll",
    "124 BPM in A minor, 3.14159, 1,000,000 and 2nd 21st 90s",
    "café naïve résumé Ærøskøbing crème brûlée",
    "Straße ÉCOLE İstanbul ΑΘΗΝΑ",
    "ΟΔΟΣ ΟΔΟΣ. final sigma",
    "emoji 🎵🎶🔥 and 👩‍🎤 star ✨",
    "日本語のテキスト 音楽 and 한국어 노래 中文",
    "tabs\tand\nnewlines   and    runs     of\u00a0spaces",
    "   leading and trailing   ",
    "punctuation!!! ??? ... --- *** ### @@@ $$$ %%% ^^^ &&& ((())) [[]] {{}} <<>>",
    "under_score hyphen-ated slash/separated back\\slash pipe|bar",
    "<|startoftext|>special<|endoftext|> tokens inline",
    "mixed123numbers456 x2 3d 4k 8-bit 16:9",
    "über ÜBER Ünïcödé",
    "a" * 300,
    LONG,
    "synthwave artwork, neon grid horizon, euphoric, jubilant, kinetic, fractured motion, vivid scarlet and crimson hues",
    "zero\u200bwidth joiner\u200d and soft\u00adhyphen",
    "Ω ohm sign and Å angstrom",
    "fullwidth ＡＢＣ１２３ and ligature ﬁne",
    "decomposed cafe\u0301 nai\u0308ve A\u030a and Hangul \u1100\u1161",
    "math 𝐀𝐁𝐂 x² ½ ⅷ ① and arabic-indic ٣٤ digits",
]

def random_cases(n=24, seed=1234):
    """Seeded random strings mixing letters, digits, punctuation, accents, CJK,
    emoji and whitespace: they exercise the BPE merge order beyond the table."""
    import random
    rng = random.Random(seed)
    alphabet = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") * 4 + list("0123456789") +
                list(" ,.;:!?'\"-_/()[]&%$#@*+=<>|~`^") + list("éèêëàâäôöûüçñßøåæœÉÀÇ") +
                list("日本語音楽中文한국어노래") + ["🎵", "🔥", "✨", "👩‍🎤", " ", "\t", "\n"])
    out = []
    for i in range(n):
        length = rng.randint(5, 40) if i % 3 else rng.randint(80, 400)
        out.append("".join(rng.choice(alphabet) for _ in range(length)))
    # Long single "words" of letters: deep merge chains.
    for i in range(4):
        out.append("".join(rng.choice("aeiourstlnmkbdp") for _ in range(60 + 40 * i)))
    return out


SMALL_CASES = [
    "a photo of a cat",
    "hello world, it's the 1st test!",
    "café 🎵 日本",
    "the quick brown fox jumps over the lazy dog",
]


def encode(tok, text):
    enc = tok(text, padding="max_length", max_length=77, truncation=True)
    ids = enc["input_ids"]
    n_real = sum(enc["attention_mask"])
    return ids, n_real


def main():
    full = write_pair(os.path.join("/tmp", "m2p-clip-full"), 48894)
    assert full.pad_token_id == 49407 and full.bos_token_id == 49406, (full.pad_token_id, full.bos_token_id)
    cases = []
    for text in CASES + random_cases():
        ids, n_real = encode(full, text)
        assert len(ids) == 77
        cases.append({"text": text, "ids": ids, "n_real": n_real})
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
        json.dump({"reference": "transformers.CLIPTokenizer " + __import__("transformers").__version__,
                   "max_len": 77, "cases": cases}, f, ensure_ascii=False, indent=0)
    small = write_pair(os.path.join(OUT, "small"), 2000)
    scases = []
    for text in SMALL_CASES:
        ids, n_real = encode(small, text)
        scases.append({"text": text, "ids": ids, "n_real": n_real})
    with open(os.path.join(OUT, "small_cases.json"), "w", encoding="utf-8") as f:
        json.dump({"vocab_size": len(small.get_vocab()), "cases": scases}, f, ensure_ascii=False, indent=0)
    print(f"wrote {len(cases)} cases and {len(scases)} small cases to {OUT}")


if __name__ == "__main__":
    sys.exit(main())
