/*
 * diffusion/unet.h — UNet2DConditionModel (Stable Diffusion 1.x family, as
 * diffusers computes it), fp32 on the ops of diffusion/ops.h.
 *
 * Structure, driven by unet/config.json (parsed by diffusion/model.h): sinusoidal timestep embedding
 * (flip_sin_to_cos, freq_shift) [+ time_embedding.cond_proj(guidance
 * embedding) when time_cond_proj_dim is set] → linear_1 → SiLU → linear_2;
 * conv_in; down blocks (ResnetBlock2D with a time-embedding projection, and
 * for CrossAttnDownBlock2D a Transformer2DModel after each resnet: GroupNorm →
 * proj_in (1×1 conv, or linear when use_linear_projection) → BasicTransformerBlock
 * (LayerNorm → self-attention, LayerNorm → cross-attention to the text,
 * LayerNorm → GEGLU feed-forward, each residual) → proj_out, + input;
 * Downsample2D = 3×3 conv stride 2); UNetMidBlock2DCrossAttn (resnet,
 * transformer, resnet); up blocks (skip concatenation on channels, resnets,
 * transformers, Upsample2D = nearest 2× + 3×3 conv); GroupNorm → SiLU → conv_out.
 *
 * Batched: one forward call runs n latents at once (batch dimension n); the
 * text embeddings are either one per image or one for all (broadcast).
 *
 * Weights are not copied: the UNet keeps pointers to fp32 arrays handed out
 * by a tensor source (m2p_unet_tensor_fn), which must outlive it.
 */
#ifndef M2P_DIFFUSION_UNET_H
#define M2P_DIFFUSION_UNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "diffusion/model.h"

#define M2P_UNET_MAX_BLOCKS 6
#define M2P_UNET_MAX_LAYERS 4      /* resnets per down block (up blocks have one more) */
#define M2P_UNET_MAX_TLAYERS 4     /* transformer blocks per Transformer2DModel */
#define M2P_UNET_MAX_CHANNELS 8192
#define M2P_UNET_MAX_SIDE 512      /* latent side (4096 px) */
#define M2P_UNET_MAX_BATCH 16
#define M2P_UNET_MAX_CONTEXT 1024  /* text tokens */

/* What the engine needs from unet/config.json. */
typedef struct m2p_unet_config {
    int in_channels, out_channels;
    int n_blocks;                                  /* len(block_out_channels) */
    int block_out_channels[M2P_UNET_MAX_BLOCKS];
    bool down_attn[M2P_UNET_MAX_BLOCKS];           /* CrossAttnDownBlock2D (else DownBlock2D) */
    bool up_attn[M2P_UNET_MAX_BLOCKS];             /* CrossAttnUpBlock2D (else UpBlock2D) */
    bool mid_block;                                /* UNetMidBlock2DCrossAttn (false: no mid block) */
    int layers_per_block[M2P_UNET_MAX_BLOCKS];
    int heads[M2P_UNET_MAX_BLOCKS];                /* attention_head_dim: heads in SD 1.x configs */
    int transformer_layers[M2P_UNET_MAX_BLOCKS];
    int cross_attention_dim[M2P_UNET_MAX_BLOCKS];
    int norm_num_groups;
    float norm_eps;
    bool use_linear_projection;
    bool flip_sin_to_cos;
    float freq_shift;
    int time_cond_proj_dim;                        /* 0: none */
    int conv_in_kernel, conv_out_kernel;
    float mid_block_scale_factor;
    int sample_size;                               /* informative */
} m2p_unet_config;

/* Converts the model folder's parsed unet/config.json (diffusion/model.h) into
 * this engine's per-block form. Settings it cannot honour (center_input_sample,
 * downsample_padding 0, more blocks or layers than the caps) → M2P_E_MODEL_CONFIG. */
m2p_code m2p_unet_config_from_model(const m2p_nn_unet_config *model_cfg, m2p_unet_config *cfg,
                                    m2p_error *err) M2P_WUR;

/* A tensor source: hands out the fp32 data of tensor `name` after checking
 * that it exists (else M2P_E_MODEL_TENSOR_MISSING) and has exactly the given
 * shape (else M2P_E_MODEL_SHAPE). The data stays valid while the source lives. */
typedef m2p_code (*m2p_unet_tensor_fn)(void *ctx, const char *name, int ndim, const int64_t *shape,
                                       const float **data, m2p_error *err);

typedef struct m2p_unet m2p_unet;

/* Builds the network and binds every weight (names as in diffusers'
 * state dict, e.g. "down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k.weight"). */
m2p_code m2p_unet_create(const m2p_unet_config *cfg, m2p_unet_tensor_fn get, void *ctx, m2p_unet **out,
                         m2p_error *err) M2P_WUR;
/* The same from an open model (its UNet part loaded); the model must outlive the UNet. */
m2p_code m2p_unet_create_from_model(const m2p_nn_model *model, m2p_unet **out, m2p_error *err) M2P_WUR;
void m2p_unet_free(m2p_unet *u);
const m2p_unet_config *m2p_unet_get_config(const m2p_unet *u);
/* Number of parameters bound (for reports). */
size_t m2p_unet_param_count(const m2p_unet *u);

typedef struct m2p_unet_input {
    const float *sample;        /* [n, in_channels, h, w] */
    int n, h, w;
    const float *timesteps;     /* [n] */
    const float *timestep_cond; /* [n, time_cond_proj_dim] or NULL (no guidance embedding) */
    const float *context;       /* [context_n, context_len, cross_attention_dim] */
    int context_n;              /* 1 (shared by all n) or n */
    int context_len;            /* tokens, e.g. 77 */
} m2p_unet_input;

/* out: [n, out_channels, h, w]. Thread-safe for concurrent calls on one UNet
 * (it holds no mutable state); allocates its activations per call.
 * Reproducible: image i of a batch is bitwise the output of the same image
 * run alone (every matrix product is issued per image with the same shape
 * whatever the batch, and each layer's algorithm depends only on the per-image
 * shape). A different thread count can move the last bits (OpenBLAS splits
 * a product over its threads, and an element's rounding depends on its tile). */
m2p_code m2p_unet_forward(const m2p_unet *u, const m2p_unet_input *in, float *out, m2p_error *err) M2P_WUR;

/* 3×3 stride-1 convolutions whose latent has at least this many pixels (h·w)
 * per image use Winograd F(2×2, 3×3) (ops.h m2p_nn_conv3x3), the others
 * im2col + sgemm. Measured on the SD 1.x shapes (bench_batch --convs,
 * nn-unet-bench.md): Winograd takes 0.60–0.81 of im2col's CPU time from 16×16
 * up, and 1.35–2.6× below (its 16 products get too few columns and the
 * filter transform is paid per call) at batch 1. */
#define M2P_UNET_WINOGRAD_MIN_PIXELS 256

/* Benchmark knobs; set them before any concurrent forward.
 * m2p_unet_set_winograd_min_pixels: the threshold above (< 0: never Winograd,
 * i.e. every convolution by im2col as before Winograd was used here).
 * m2p_unet_set_batched_linears(true): every linear runs as one sgemm over the
 * rows of all n images instead of one per image. Faster per image at batch > 1,
 * but image i is then no longer bitwise the same alone and in a batch: with
 * OpenBLAS an element's rounding depends on where it falls in the product
 * (the last row/column tiles of a call and the thread split take other code
 * paths), so this is for measuring what reproducibility costs, never the default. */
void m2p_unet_set_winograd_min_pixels(m2p_unet *u, int pixels);
void m2p_unet_set_batched_linears(m2p_unet *u, bool on);

/* Approximate multiply-adds of one forward pass for n latents of h×w with
 * context_len tokens (convolutions, linears and attention matmuls). */
double m2p_unet_macs(const m2p_unet *u, int n, int h, int w, int context_len);

/* The LCM guidance embedding (diffusers' get_guidance_scale_embedding):
 * w' = (guidance − 1)·1000, f_i = exp(−i·ln(10000)/(dim/2 − 1)),
 * out = [sin(w'f), cos(w'f)] (+ a zero when dim is odd). out: [dim]. */
void m2p_unet_guidance_embedding(double guidance, int dim, float *out);

/* diffusers' get_timestep_embedding for one timestep: out [dim]. */
void m2p_unet_timestep_embedding(float t, int dim, bool flip_sin_to_cos, float freq_shift, float *out);

#endif
