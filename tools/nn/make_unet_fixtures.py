#!/usr/bin/env python3
"""tools/nn/make_unet_fixtures.py — diffusers' outputs for the UNet, the LCM scheduler and the
whole LCM pipeline on the tiny model, for tests/unit/diffusion/test_nn_{unet,scheduler,pipeline}.c.

Run with the reference venv (never at run time, never in `make test`):

    tools/refvenv/bin/python tools/nn/make_unet_fixtures.py

Reads  tests/fixtures/nn/tiny-lcm/          (made by tools/nn/make_fixtures.py tiny)
Writes tests/fixtures/nn/unet/unet.safetensors       UNet forward, two cases (all F32):
          a_sample [2,4,8,16], a_timesteps [2] (999, 759: one per image), a_cond [2,32]
          (guidance embedding of w=8 and w=2), a_context [2,77,32], a_out [2,4,8,16];
          b_*: [2,4,6,10] (not divisible by 8: the upsample_size path), one timestep 499,
          ONE context [1,77,32] that diffusers sees repeated (the C side broadcasts it), b_out.
          g_emb8 [32]: diffusers' get_guidance_scale_embedding(8 − 1, 32).
          t_emb [2,32]: the sinusoidal timestep embedding of 999 and 759.
       tests/fixtures/nn/unet/scheduler.safetensors  LCMScheduler (the tiny model's config):
          alphas_cumprod [1000]; timesteps_{1,2,4,8}; c_skip_4, c_out_4 [4];
          step1_* (step index 1 of 4: model_output, sample, noise → prev_sample, denoised);
          step3_* (the last step: no noise, prev_sample == denoised).
       tests/fixtures/nn/unet/pipeline.safetensors   LatentConsistencyModelPipeline, 64×64, 4 steps,
          guidance 8, two images with seeds 42 and 7: initial latents and every noise draw come
          from the engine's own generator (splitmix64 + Box–Muller, re-implemented below), so the
          C pipeline must reproduce the output from the seeds alone:
          prompt_ids [77], prompt_embeds [1,77,32], latents [2,4,16,16], noise_{0,1,2} [2,4,16,16],
          denoised [2,4,16,16] (the final latents), image [2,3,64,64] (float in [0,1], before the
          uint8 rounding), image_u8 [2,64,64,3].
All inputs are seeded, so rerunning gives the same files (same torch version).
"""
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
MODEL = os.path.join(REPO, "tests", "fixtures", "nn", "tiny-lcm")
OUT = os.path.join(REPO, "tests", "fixtures", "nn", "unet")
PROMPT = "a neon city at night, synthwave poster"
SEEDS = [42, 7]
SIZE = 64
STEPS = 4
GUIDANCE = 8.0

MASK = (1 << 64) - 1


class Rng:
    """m2p_lcm_rng (src/diffusion/scheduler.c): splitmix64 → Box–Muller, in double, rounded to float."""

    def __init__(self, seed):
        self.state = seed & MASK

    def _next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def normal(self, n):
        out = np.empty(n, dtype=np.float32)
        inv53 = 1.0 / 9007199254740992.0
        for i in range(0, n, 2):
            u1 = ((self._next() >> 11) + 1) * inv53
            u2 = (self._next() >> 11) * inv53
            r = math.sqrt(-2.0 * math.log(u1))
            th = 6.283185307179586476925286766559 * u2
            out[i] = r * math.cos(th)
            if i + 1 < n:
                out[i + 1] = r * math.sin(th)
        return out


def save(name, tensors):
    from safetensors.torch import save_file

    os.makedirs(OUT, exist_ok=True)
    save_file({k: torch.as_tensor(v).float().clone().contiguous() for k, v in tensors.items()}, os.path.join(OUT, name))


def unet_fixture(pipe):
    unet = pipe.unet
    g = torch.Generator().manual_seed(11)
    cond_dim = unet.config.time_cond_proj_dim
    cross = unet.config.cross_attention_dim
    w = torch.tensor([GUIDANCE - 1.0, 2.0 - 1.0])
    cond = pipe.get_guidance_scale_embedding(w, embedding_dim=cond_dim)
    a_sample = torch.randn((2, 4, 8, 16), generator=g)
    a_t = torch.tensor([999, 759])
    a_ctx = torch.randn((2, 77, cross), generator=g)
    b_sample = torch.randn((2, 4, 6, 10), generator=g)
    b_ctx = torch.randn((1, 77, cross), generator=g)
    with torch.no_grad():
        a_out = unet(a_sample, a_t, encoder_hidden_states=a_ctx, timestep_cond=cond).sample
        b_out = unet(b_sample, 499, encoder_hidden_states=b_ctx.repeat(2, 1, 1), timestep_cond=cond[:1].repeat(2, 1)).sample
        t_emb = unet.time_proj(a_t)
    save("unet.safetensors", {
        "a_sample": a_sample, "a_timesteps": a_t.float(), "a_cond": cond, "a_context": a_ctx, "a_out": a_out,
        "b_sample": b_sample, "b_timesteps": torch.tensor([499.0, 499.0]), "b_cond": cond[:1].repeat(2, 1),
        "b_context": b_ctx, "b_out": b_out,
        "g_emb8": cond[0], "t_emb": t_emb,
    })
    print("unet: a_out", tuple(a_out.shape), "|a_out| max", float(a_out.abs().max()),
          "b_out", tuple(b_out.shape), file=sys.stderr)


def scheduler_fixture(pipe):
    from diffusers import LCMScheduler

    s = LCMScheduler.from_config(pipe.scheduler.config)
    t = {"alphas_cumprod": s.alphas_cumprod}
    for n in (1, 2, 4, 8):
        s.set_timesteps(n)
        t[f"timesteps_{n}"] = s.timesteps.float()
    s.set_timesteps(4)
    cs, co = zip(*[s.get_scalings_for_boundary_condition_discrete(int(x)) for x in s.timesteps])
    t["c_skip_4"] = torch.tensor([float(x) for x in cs])
    t["c_out_4"] = torch.tensor([float(x) for x in co])
    g = torch.Generator().manual_seed(5)
    shape = (2, 4, 4, 4)
    for idx in (1, 3):
        s.set_timesteps(4)
        s._step_index = idx
        mo = torch.randn(shape, generator=g)
        x = torch.randn(shape, generator=g)
        noise = torch.randn(shape, generator=g)
        gen = torch.Generator().manual_seed(0)
        import diffusers.schedulers.scheduling_lcm as sl

        orig = sl.randn_tensor
        sl.randn_tensor = lambda *a, **k: noise.clone()
        try:
            prev, den = s.step(mo, s.timesteps[idx], x, generator=gen, return_dict=False)
        finally:
            sl.randn_tensor = orig
        t.update({f"step{idx}_model_output": mo, f"step{idx}_sample": x, f"step{idx}_noise": noise,
                  f"step{idx}_prev_sample": prev, f"step{idx}_denoised": den})
    save("scheduler.safetensors", t)
    print("scheduler: timesteps_4", t["timesteps_4"].tolist(), "c_skip", t["c_skip_4"].tolist(), file=sys.stderr)


def pipeline_fixture(pipe):
    import diffusers.schedulers.scheduling_lcm as sl

    vae_scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    lh = SIZE // vae_scale
    per = 4 * lh * lh
    rngs = [Rng(s) for s in SEEDS]
    latents = torch.from_numpy(np.stack([r.normal(per) for r in rngs])).reshape(len(SEEDS), 4, lh, lh)
    noises = []

    def fake_randn(shape, generator=None, device=None, dtype=None, layout=None):
        z = torch.from_numpy(np.stack([r.normal(per) for r in rngs])).reshape(shape)
        noises.append(z.clone())
        return z

    ids = pipe.tokenizer(PROMPT, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        embeds = pipe.text_encoder(ids)[0]
    orig = sl.randn_tensor
    sl.randn_tensor = fake_randn
    captured = {}

    def on_end(p, i, t, kw):
        captured["denoised"] = kw["denoised"].clone()
        return {}

    try:
        with torch.no_grad():
            img = pipe(PROMPT, height=SIZE, width=SIZE, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                       num_images_per_prompt=len(SEEDS), latents=latents.clone(), output_type="pt",
                       callback_on_step_end=on_end, callback_on_step_end_tensor_inputs=["denoised"]).images
    finally:
        sl.randn_tensor = orig
    assert len(noises) == STEPS - 1, len(noises)
    u8 = (img.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    t = {"prompt_ids": ids[0].float(), "prompt_embeds": embeds, "latents": latents, "denoised": captured["denoised"],
         "image": img, "image_u8": torch.from_numpy(u8.astype(np.float32))}
    for i, z in enumerate(noises):
        t[f"noise_{i}"] = z
    save("pipeline.safetensors", t)
    print("pipeline: latents", tuple(latents.shape), "image", tuple(img.shape), "mean", float(img.mean()),
          file=sys.stderr)


def main():
    from diffusers import LatentConsistencyModelPipeline

    torch.set_num_threads(2)
    pipe = LatentConsistencyModelPipeline.from_pretrained(MODEL, torch_dtype=torch.float32, safety_checker=None,
                                                          requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    unet_fixture(pipe)
    scheduler_fixture(pipe)
    pipeline_fixture(pipe)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"fixtures: {total / 1e6:.3f} MB in {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
