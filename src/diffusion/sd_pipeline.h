/*
 * diffusion/sd_pipeline.h — text → images with a latent consistency model
 * (diffusers' LatentConsistencyModelPipeline, without classifier-free
 * guidance: one UNet evaluation per step for the whole batch).
 *
 *   prompt ─► CLIP tokenizer ─► text encoder ─► [1, 77, D] (shared by the batch)
 *   seeds[i] ─► N(0,1) latents [n, 4, H/f, W/f]
 *   for each of the LCM timesteps: UNet(latents, t, guidance embedding, text) → ε
 *                                  LCM step (fresh noise from each image's own generator)
 *   VAE decode(denoised) ─► RGB8 [n, H, W, 3]
 *   (or, in draft mode, the TAESD decoder (diffusion/taesd.h): ~20× fewer
 *   multiply-adds, approximate colours and detail)
 *
 * The engine (m2p_sd) is loaded once: the model folder is opened (weights
 * mapped; fp16 converted to fp32 once), every weight bound and shape-checked,
 * and a small warm-up pass touches every UNet weight so the first request
 * pays no page faults. One generate runs at a time per engine (a mutex
 * serialises callers: the engine owns one device's worth of workspace); any
 * thread may call it.
 *
 * Reproducibility: image i depends only on (prompt, size, steps, guidance,
 * seeds[i]); rendering it alone or inside a batch gives the same pixels (the
 * batched UNet computes each image independently; see scheduler.h for the
 * generator).
 */
#ifndef M2P_DIFFUSION_SD_PIPELINE_H
#define M2P_DIFFUSION_SD_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/progress.h"

#define M2P_SD_MAX_BATCH 16

typedef struct m2p_sd m2p_sd;

typedef struct m2p_sd_options {
    bool warmup; /* run the warm-up pass at open (default true through m2p_sd_options_default) */
    /* A TAESD folder (diffusion/taesd.h) to load beside the model, or NULL. Needed for draft
     * decoding and previews; its latent channels and upsampling factor must match the VAE's. */
    const char *taesd_dir;
    /* Decode the final images with TAESD instead of the VAE (requires taesd_dir). */
    bool draft;
} m2p_sd_options;

void m2p_sd_options_default(m2p_sd_options *opt);

/* Load statistics, for logs and `mus2pic model info`. */
typedef struct m2p_sd_stats {
    double load_s;           /* open + bind, seconds */
    double warmup_s;         /* warm-up pass, seconds (0 when skipped) */
    size_t rss_bytes;        /* resident memory of the process after load and warm-up */
    size_t converted_bytes;  /* fp32 copies made at load (fp16 weights); mapped fp32 files excluded */
    size_t unet_params;
} m2p_sd_stats;

/* Opens the model folder dir (diffusers layout, see diffusion/model.h).
 * opt may be NULL (defaults). Missing folder or files → M2P_E_MODEL_MISSING;
 * malformed → MODEL_CONFIG / MODEL_INVALID / MODEL_TENSOR_MISSING / MODEL_SHAPE. */
m2p_code m2p_sd_open(const char *dir, const m2p_sd_options *opt, m2p_sd **out, m2p_error *err) M2P_WUR;
void m2p_sd_free(m2p_sd *sd);

void m2p_sd_get_stats(const m2p_sd *sd, m2p_sd_stats *out);
/* Pixels per latent (8 for SD 1.x). */
int m2p_sd_vae_factor(const m2p_sd *sd);
/* True when a TAESD decoder was loaded (options.taesd_dir). */
bool m2p_sd_has_taesd(const m2p_sd *sd);

typedef struct m2p_sd_request {
    const char *prompt;          /* UTF-8 text; required unless prompt_embeds is given */
    const float *prompt_embeds;  /* optional [1, 77, D]: skips tokenizing and text encoding */
    int n;                       /* images, 1..M2P_SD_MAX_BATCH */
    const uint32_t *seeds;       /* n seeds */
    int width, height;           /* pixels, multiples of the VAE factor; 0 → 512 */
    int steps;                   /* 0 → 4 */
    double guidance;             /* 0 → 8 */
    /* Optional outputs (may be NULL): the final denoised latents [n, 4, H/f, W/f] and the decoded
     * image before 8-bit conversion [n, 3, H, W] (values nominally in [-1, 1]). */
    float *out_latents;
    float *out_image;
} m2p_sd_request;

/* Runs the whole pipeline into rgb [n, height, width, 3] (caller-owned, may be NULL when only the
 * float outputs are wanted). progress (may be NULL) receives M2P_STEP_RENDER reports
 * "Encoding the prompt", "Denoising step k/N", "Decoding image i/n" with done/total counted in
 * sub-steps (1 + steps + n), and is checked for cancellation before every sub-step
 * (→ M2P_E_CANCELLED, nothing written). Bad sizes → RENDER_SIZE; steps → RENDER_STEPS;
 * n → RENDER_COUNT; guidance → INVALID_ARG. */
m2p_code m2p_sd_generate(m2p_sd *sd, const m2p_sd_request *req, const m2p_progress *progress, uint8_t *rgb,
                         m2p_error *err) M2P_WUR;

/* A live preview: after denoising step `step` (1-based) of `steps` (not after the last one), the
 * current denoised estimate of the request's first image decoded by TAESD at HALF the image's
 * size (m2p_taesd_decode_half: the latent 2×2 average pooled, then decoded), as RGB8
 * [height, width, 3] where width/height are the frame's own: ⌊(W+1)/2⌋ × ⌊(H+1)/2⌋ for a W×H
 * image (all of W×H with m2p_sd_extra.preview_full). Valid during the call only. Runs on the
 * generating thread, with the engine lock held: copy or encode the pixels and return quickly. */
typedef void (*m2p_sd_preview_fn)(void *ctx, int step, int steps, int width, int height, const uint8_t *rgb);

/* Per-call choices beyond m2p_sd_request. */
typedef struct m2p_sd_extra {
    int decoder; /* 0: the engine's default (options.draft); 1: VAE; 2: TAESD */
    m2p_sd_preview_fn preview; /* NULL: no previews */
    void *preview_ctx;
    bool preview_full; /* previews at the full image size (4× the decode work; for benches/comparisons) */
} m2p_sd_extra;

/* m2p_sd_generate with extra choices (extra may be NULL = m2p_sd_generate). TAESD asked for
 * (decoder 2, or a preview) without a TAESD loaded → TAESD_MISSING naming both ways to get it.
 * A preview costs one half-size TAESD decode of one image per step: a 256² frame from a 32² pooled
 * latent for a 512² image, ≈ 0.7 CPU-s (0.26× the 2.7 CPU-s of the full-size frame; the job's CPU
 * +3 % for 3 frames instead of +10 %; bench_previews, --frames). */
m2p_code m2p_sd_generate_ex(m2p_sd *sd, const m2p_sd_request *req, const m2p_sd_extra *extra,
                            const m2p_progress *progress, uint8_t *rgb, m2p_error *err) M2P_WUR;

#endif
