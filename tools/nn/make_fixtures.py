#!/usr/bin/env python3
"""tools/nn/make_fixtures.py — builds the reference models and fixtures of the inference engine.

Run with the reference venv (never at run time, never in `make test`):

    tools/refvenv/bin/python tools/nn/make_fixtures.py tiny
        → tests/fixtures/nn/tiny-lcm/      a tiny random model with the real SD1.x / LCM
                                            architecture in the diffusers layout (fp16 weights)
        → tests/fixtures/nn/ref/clip.safetensors   token ids → last_hidden_state (diffusers)
        → tests/fixtures/nn/ref/vae.safetensors    latents → decoded image (diffusers)

    tools/refvenv/bin/python tools/nn/make_fixtures.py full [--out /tmp/m2p-full-lcm] [--parts vae,text_encoder,unet]
        → the full-size SimianLuo/LCM_Dreamshaper_v7 architecture (public configs) with random
          weights, fp32, for the benchmarks (outside git: ~4.3 GB with the UNet).

    tools/refvenv/bin/python tools/nn/make_fixtures.py taesd
        → tests/fixtures/nn/tiny-lcm/taesd/         a tiny random AutoencoderTiny (TAESD) in the diffusers
                                                     layout (config.json + fp16 safetensors)
        → tests/fixtures/nn/ref/taesd.safetensors   latents → AutoencoderTiny.decode (diffusers)
        (adds files only: the other fixtures are not touched)

    tools/refvenv/bin/python tools/nn/make_fixtures.py taesd-full [--out /tmp/m2p-full-taesd] [--time]
        → the full-size madebyollin/taesd architecture with random weights, fp32, plus
          bench_latents.safetensors (seeded [1, 4, 64, 64] latents → diffusers' decode) for
          bench/bench_taesd.c; --time also times diffusers' decode of those latents.

Everything is seeded: rerunning gives the same files (same torch version).
The reference outputs are computed in fp32 from the fp16-rounded weights exactly as our
loader sees them (the saved model is loaded back in fp32 before running it).
"""
import argparse
import gzip
import json
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
BPE = os.path.join(REPO, "data", "clip", "bpe_simple_vocab_16e6.txt.gz")

# --- public configs of SimianLuo/LCM_Dreamshaper_v7 (see /work/shared/notes/lcm-engine.md) ---------
FULL_UNET = dict(
    sample_size=96, in_channels=4, out_channels=4, center_input_sample=False, flip_sin_to_cos=True,
    freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    mid_block_type="UNetMidBlock2DCrossAttn",
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, downsample_padding=1,
    mid_block_scale_factor=1, act_fn="silu", norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=768,
    attention_head_dim=8, use_linear_projection=False, upcast_attention=False, time_cond_proj_dim=256,
)
FULL_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512), layers_per_block=2, act_fn="silu", norm_num_groups=32,
    sample_size=768, scaling_factor=0.18215,
)
FULL_CLIP = dict(
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=768,
    bos_token_id=0, eos_token_id=2, pad_token_id=1,
)
SCHEDULER = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    original_inference_steps=50, prediction_type="epsilon", set_alpha_to_one=True, steps_offset=1,
    clip_sample=False, timestep_scaling=10.0,
)

# --- the tiny model: same block types, tiny widths ------------------------------------------------
TINY_UNET = dict(FULL_UNET, sample_size=8, block_out_channels=(32, 32, 64, 64), layers_per_block=2,
                 norm_num_groups=8, attention_head_dim=2, cross_attention_dim=32, time_cond_proj_dim=32)
TINY_VAE = dict(FULL_VAE, down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                block_out_channels=(16, 32, 32), layers_per_block=1, norm_num_groups=8, sample_size=32)
TINY_CLIP = dict(FULL_CLIP, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 projection_dim=32)

PROMPTS = ["a neon city at night, synthwave poster", "Brooding, driving: A minor 124 BPM!"]


def write_tokenizer(folder):
    """The OpenAI CLIP tokenizer (vocab.json + merges.txt) built from the BPE file in data/clip."""
    from transformers import CLIPTokenizer

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

    merges = gzip.open(BPE).read().decode("utf-8").split("\n")
    merges = merges[1 : 49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    for m in merges:
        vocab.append("".join(m.split()))
    vocab.extend(["<|startoftext|>", "<|endoftext|>"])
    assert len(vocab) == 49408
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({v: i for i, v in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
               "unk_token": "<|endoftext|>"}
    with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
        json.dump(special, f, indent=2)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(dict(special, add_prefix_space=False, do_lower_case=True, errors="replace",
                       model_max_length=77, tokenizer_class="CLIPTokenizer"), f, indent=2)
    return CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"),
                         pad_token="<|endoftext|>", model_max_length=77)


def build(out, unet_cfg, vae_cfg, clip_cfg, dtype, parts, seed=1234):
    from diffusers import AutoencoderKL, LCMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    os.makedirs(out, exist_ok=True)
    torch.manual_seed(seed)
    if "text_encoder" in parts:
        te = CLIPTextModel(CLIPTextConfig(**clip_cfg)).eval()
        te.to(dtype).save_pretrained(os.path.join(out, "text_encoder"), safe_serialization=True)
    if "vae" in parts:
        vae = AutoencoderKL(**vae_cfg).eval()
        randomize_norms(vae)
        vae.to(dtype).save_pretrained(os.path.join(out, "vae"), safe_serialization=True)
    if "unet" in parts:
        unet = UNet2DConditionModel(**unet_cfg).eval()
        randomize_norms(unet)
        unet.to(dtype).save_pretrained(os.path.join(out, "unet"), safe_serialization=True)
    LCMScheduler(**SCHEDULER).save_pretrained(os.path.join(out, "scheduler"))
    if not os.path.exists(os.path.join(out, "tokenizer", "vocab.json")):
        write_tokenizer(os.path.join(out, "tokenizer"))
    index = {
        "_class_name": "LatentConsistencyModelPipeline", "_diffusers_version": "0.22.0.dev0",
        "feature_extractor": [None, None], "requires_safety_checker": False, "safety_checker": [None, None],
        "scheduler": ["diffusers", "LCMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    with open(os.path.join(out, "model_index.json"), "w") as f:
        json.dump(index, f, indent=2)


def randomize_norms(model):
    """Fresh models have norm weight 1 / bias 0 and zero-initialised output convs in places;
    give every parameter a non-trivial value so a swapped or skipped tensor changes the output."""
    g = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name):
                if name.endswith("weight"):
                    p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif torch.count_nonzero(p) == 0:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))


def save_ref(path, tensors):
    from safetensors.torch import save_file

    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, path)


def tiny(args):
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTokenizer

    out = os.path.join(REPO, "tests", "fixtures", "nn", "tiny-lcm")
    if os.path.exists(out):
        shutil.rmtree(out)
    build(out, TINY_UNET, TINY_VAE, TINY_CLIP, torch.float16, {"text_encoder", "vae", "unet"})
    ref = os.path.join(REPO, "tests", "fixtures", "nn", "ref")

    # Text encoder: the tokenizer's ids for two prompts → last_hidden_state (fp32 compute).
    tok = CLIPTokenizer(os.path.join(out, "tokenizer", "vocab.json"), os.path.join(out, "tokenizer", "merges.txt"),
                        pad_token="<|endoftext|>", model_max_length=77)
    ids = tok(PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    te = CLIPTextModel.from_pretrained(os.path.join(out, "text_encoder"), torch_dtype=torch.float32).eval()
    with torch.no_grad():
        hidden = te(ids).last_hidden_state
    save_ref(os.path.join(ref, "clip.safetensors"), {"input_ids": ids.to(torch.int32), "last_hidden_state": hidden.float()})

    # VAE: latents (non-square) → decoded sample in [-1, 1]-ish, fp32 compute; the decode gets
    # latents / scaling_factor exactly as the pipeline passes them.
    vae = AutoencoderKL.from_pretrained(os.path.join(out, "vae"), torch_dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(7)
    lat = torch.randn((2, 4, 6, 10), generator=g)
    with torch.no_grad():
        img = vae.decode(lat / vae.config.scaling_factor).sample
    save_ref(os.path.join(ref, "vae.safetensors"), {"latents": lat, "sample": img.float()})
    total = 0
    for root, _, files in os.walk(os.path.join(REPO, "tests", "fixtures", "nn")):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    print(f"tiny model + references: {total / 1e6:.2f} MB", file=sys.stderr)
    print("clip ids[0][:12]", ids[0][:12].tolist(), "hidden", tuple(hidden.shape), file=sys.stderr)
    print("vae sample", tuple(img.shape), "range", float(img.min()), float(img.max()), file=sys.stderr)
    # The folder was rebuilt from scratch: put the TAESD fixture (tiny-lcm/taesd) back too.
    taesd(args)


def full(args):
    parts = set(args.parts.split(","))
    build(args.out, FULL_UNET, FULL_VAE, FULL_CLIP, torch.float32, parts, seed=4321)
    print(f"full-size random model in {args.out} ({sorted(parts)})", file=sys.stderr)


# --- TAESD (diffusers AutoencoderTiny; public config of madebyollin/taesd) ----------------------------
FULL_TAESD = dict(
    in_channels=3, out_channels=3, encoder_block_out_channels=(64, 64, 64, 64),
    decoder_block_out_channels=(64, 64, 64, 64), act_fn="relu", upsample_fn="nearest", latent_channels=4,
    upsampling_scaling_factor=2, num_encoder_blocks=(1, 3, 3, 3), num_decoder_blocks=(3, 3, 3, 1),
    latent_magnitude=3, latent_shift=0.5, force_upcast=False, scaling_factor=1.0,
)
# Three stages (×4 upsampling like the tiny VAE), two of them with several blocks.
TINY_TAESD = dict(FULL_TAESD, encoder_block_out_channels=(8, 8, 8), decoder_block_out_channels=(12, 12, 12),
                  num_encoder_blocks=(1, 1, 1), num_decoder_blocks=(2, 2, 1))


def build_taesd(out, cfg, dtype, seed):
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    m = AutoencoderTiny(**cfg).eval()
    randomize_norms(m)
    m.to(dtype).save_pretrained(out, safe_serialization=True)
    return AutoencoderTiny.from_pretrained(out, torch_dtype=torch.float32).eval()


def taesd(args):
    out = os.path.join(REPO, "tests", "fixtures", "nn", "tiny-lcm", "taesd")
    if os.path.exists(out):
        shutil.rmtree(out)
    m = build_taesd(out, TINY_TAESD, torch.float16, seed=5678)
    g = torch.Generator().manual_seed(11)
    # Latents as the sampler leaves them (before 1/scaling_factor), wide enough that tanh(x/3)·3 clamps.
    lat = 2.0 * torch.randn((2, 4, 6, 10), generator=g)
    with torch.no_grad():
        img = m.decode(lat / m.config.scaling_factor).sample
    save_ref(os.path.join(REPO, "tests", "fixtures", "nn", "ref", "taesd.safetensors"),
             {"latents": lat, "sample": img.float()})
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"tiny taesd: {size / 1e3:.1f} kB; sample {tuple(img.shape)} range {float(img.min()):.3f}..{float(img.max()):.3f}",
          file=sys.stderr)


def taesd_full(args):
    import time

    m = build_taesd(args.out, FULL_TAESD, torch.float32, seed=8765)
    g = torch.Generator().manual_seed(3)
    lat = torch.randn((1, 4, 64, 64), generator=g)
    with torch.no_grad():
        img = m.decode(lat).sample
        if args.time:
            best = None
            for _ in range(3):
                w0, c0 = time.perf_counter(), time.process_time()
                m.decode(lat)
                w, c = time.perf_counter() - w0, time.process_time() - c0
                if best is None or w < best[0]:
                    best = (w, c)
            print(f"diffusers AutoencoderTiny decode 512x512 (torch {torch.__version__}, "
                  f"{torch.get_num_threads()} threads): wall {best[0]:.3f} s, cpu {best[1]:.3f} s (best of 3)",
                  file=sys.stderr)
    save_ref(os.path.join(args.out, "bench_latents.safetensors"), {"latents": lat, "sample": img.float()})
    print(f"full-size random taesd in {args.out}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("tiny")
    f = sub.add_parser("full")
    f.add_argument("--out", default="/tmp/m2p-full-lcm")
    f.add_argument("--parts", default="vae,text_encoder,unet")
    sub.add_parser("taesd")
    t = sub.add_parser("taesd-full")
    t.add_argument("--out", default="/tmp/m2p-full-taesd")
    t.add_argument("--time", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    {"tiny": tiny, "full": full, "taesd": taesd, "taesd-full": taesd_full}[args.cmd](args)


if __name__ == "__main__":
    main()
