/*
 * diffusion/taesd.h — TAESD, the tiny autoencoder of Stable Diffusion
 * (madebyollin/taesd; diffusers' AutoencoderTiny), decoder only: a fast,
 * approximate replacement of the AutoencoderKL decode for drafts and previews
 * (about 1.2 M decoder parameters and ~20× fewer multiply-adds at 512²).
 *
 * Folder (diffusers layout): config.json (AutoencoderTiny) +
 * diffusion_pytorch_model[.fp16].safetensors (encoder.* tensors are ignored).
 *
 * Forward (DecoderTiny):
 *   x = tanh((latents / scaling_factor + shift_factor) / 3) · 3
 *   layers.0  conv 3×3 latent → C, ReLU
 *   per stage i of num_decoder_blocks: n_i blocks (conv-ReLU-conv-ReLU-conv, + x, ReLU),
 *       then (not the last stage) nearest 2× upsample, conv 3×3 C → C without bias;
 *       the last stage ends with conv 3×3 C → 3 with bias
 *   image = 2·x − 1  (nominally [-1, 1]; no clamp, exactly as diffusers)
 * Weights are bound by their diffusers names (decoder.layers.K.weight,
 * decoder.layers.K.conv.{0,2,4}.weight/bias) with the index K computed as
 * nn.Sequential numbers the modules, and every shape checked at open.
 *
 * Where the folder is found (m2p_taesd_dir_for): the setting `taesd`
 * (MUS2PIC_TAESD) when set; else <model folder>/taesd/ when it exists; else
 * <data_dir>/models/madebyollin/taesd (where `mus2pic model pull
 * madebyollin/taesd` puts it).
 *
 * One decode at a time per handle (it owns its workspace); the workspace is
 * sized for the largest latent size seen (3 activations of C·(f·h)·(f·w)
 * floats + a ~9 MB im2col strip: ~200 MB at 512² with C = 64).
 */
#ifndef M2P_DIFFUSION_TAESD_H
#define M2P_DIFFUSION_TAESD_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/error.h"
#include "core/progress.h"

#define M2P_TAESD_MAX_STAGES 8
#define M2P_TAESD_MAX_BLOCKS 16 /* per stage */

/* config.json (AutoencoderTiny), the decoder's part. */
typedef struct m2p_taesd_config {
    int latent_channels; /* 4 */
    int out_channels;    /* 3 */
    int n_stages;        /* len(num_decoder_blocks) */
    int channels[M2P_TAESD_MAX_STAGES]; /* decoder_block_out_channels (all equal, as DecoderTiny requires) */
    int blocks[M2P_TAESD_MAX_STAGES];   /* num_decoder_blocks */
    float scaling_factor; /* 1.0 for madebyollin/taesd */
    float shift_factor;   /* 0 */
} m2p_taesd_config;

typedef struct m2p_taesd m2p_taesd;

/* Opens the folder dir: parses config.json (only act_fn "relu", upsample_fn
 * "nearest", upsampling_scaling_factor 2 are supported) and binds every
 * decoder weight with its shape checked. Missing folder/file → TAESD_MISSING
 * (naming `mus2pic model pull madebyollin/taesd` and MUS2PIC_TAESD);
 * malformed config → TAESD_CONFIG naming the key; bad weights →
 * MODEL_INVALID / MODEL_TENSOR_MISSING / MODEL_SHAPE / MODEL_DTYPE naming the
 * tensor. *out: free with m2p_taesd_free. */
m2p_code m2p_taesd_open(const char *dir, m2p_taesd **out, m2p_error *err) M2P_WUR;
void m2p_taesd_free(m2p_taesd *t);

const m2p_taesd_config *m2p_taesd_get_config(const m2p_taesd *t);
/* Pixels per latent (2^(stages−1): 8 for madebyollin/taesd). */
int m2p_taesd_factor(const m2p_taesd *t);
int m2p_taesd_latent_channels(const m2p_taesd *t);
/* Decoder parameters (for logs and `model info`). */
size_t m2p_taesd_param_count(const m2p_taesd *t);

/* Decodes n latents [n, C, h, w] (as the sampler leaves them: the decode
 * divides by scaling_factor itself) into out [n, 3, h·f, w·f]. progress (may
 * be NULL) gets M2P_STEP_RENDER reports per image and is checked for
 * cancellation between images (→ CANCELLED). n in 1..64, h, w in 1..512. */
m2p_code m2p_taesd_decode(m2p_taesd *t, const float *latents, int n, int h, int w, float *out,
                          const m2p_progress *progress, m2p_error *err) M2P_WUR;

/* A preview decode at half the size, for about a quarter of the work: one latent [C, h, w]
 * 2×2 average pooled to [C, ⌈h/2⌉, ⌈w/2⌉] (an odd last row or column averaged with itself, i.e.
 * replicate padding), decoded, and the image cropped to out [3, *out_h, *out_w] with
 * *out_h = ⌊(h·f+1)/2⌋, *out_w = ⌊(w·f+1)/2⌋ — half the full decode's size, the crop only
 * dropping what the padding added. out must hold 3·⌈h/2⌉·f·⌈w/2⌉·f floats (the uncropped
 * decode; never more than a full decode's 3·h·f·w·f). Close to a 2× box downscale of
 * m2p_taesd_decode's image for the smooth latents a sampler makes (test_nn_taesd.c).
 * h, w in 1..512; no progress reports. */
m2p_code m2p_taesd_decode_half(m2p_taesd *t, const float *latent, int h, int w, float *out, int *out_h, int *out_w,
                               m2p_error *err) M2P_WUR;

/* --- the folder on disk ---------------------------------------------------------------------- */

/* Where TAESD is looked for (see the top of this file); writes into buf and returns it. */
const char *m2p_taesd_dir_for(const m2p_config *cfg, char *buf, size_t cap);
/* OK when dir has config.json and a weight file; else TAESD_MISSING naming
 * the file and both ways to get it. Stats only. */
m2p_code m2p_taesd_check(const char *dir, m2p_error *err) M2P_WUR;
/* One line for `mus2pic model info` / `doctor` ("taesd: <dir>, 9.8 MB fp32, ..."
 * or "taesd: not installed ..."); always NUL-terminates. Returns the check's code. */
m2p_code m2p_taesd_describe(const m2p_config *cfg, char *buf, size_t cap) M2P_WUR;

/* The `decoder` setting. */
typedef enum m2p_taesd_use { M2P_DECODER_VAE = 0, M2P_DECODER_TAESD, M2P_DECODER_AUTO } m2p_taesd_use;
/* "vae" | "taesd" | "auto" ("" → vae); anything else → CONFIG. */
m2p_code m2p_taesd_parse_decoder(const char *s, m2p_taesd_use *out, m2p_error *err) M2P_WUR;

#endif
