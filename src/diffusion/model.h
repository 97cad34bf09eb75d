/*
 * diffusion/model.h — a Stable Diffusion 1.x model folder in the diffusers
 * layout (e.g. SimianLuo/LCM_Dreamshaper_v7):
 *
 *   model_index.json
 *   unet/config.json          unet/diffusion_pytorch_model[.fp16].safetensors
 *   vae/config.json           vae/diffusion_pytorch_model[.fp16].safetensors
 *   text_encoder/config.json  text_encoder/model[.fp16].safetensors
 *   tokenizer/vocab.json      tokenizer/merges.txt
 *   scheduler/scheduler_config.json
 *
 * Opening parses each config.json (jansson) into a typed, range-checked struct
 * and opens the weight files of the parts asked for. Weights are handed out as
 * fp32: F32 tensors that are 4-byte aligned stay in the mmapped file (no
 * copy); F16/BF16 (and unaligned F32) tensors are converted once, at open,
 * into one buffer per part. Lookups are by the diffusers tensor name and check
 * the expected shape, so a model that does not match its config is a clear
 * MODEL_SHAPE / MODEL_TENSOR_MISSING error naming the tensor.
 *
 * An open m2p_nn_model is read-only: share it between threads freely.
 */
#ifndef M2P_DIFFUSION_MODEL_H
#define M2P_DIFFUSION_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"

#define M2P_NN_MAX_BLOCKS 8

typedef enum m2p_nn_part { M2P_NN_PART_UNET = 0, M2P_NN_PART_VAE, M2P_NN_PART_TEXT, M2P_NN_PART_COUNT } m2p_nn_part;

/* Bits for m2p_nn_model_open's parts argument. */
enum {
    M2P_NN_LOAD_UNET = 1u << M2P_NN_PART_UNET,
    M2P_NN_LOAD_VAE = 1u << M2P_NN_PART_VAE,
    M2P_NN_LOAD_TEXT = 1u << M2P_NN_PART_TEXT,
    M2P_NN_LOAD_ALL = 7u,
};

/* unet/config.json (UNet2DConditionModel). Only the SD1.x shape is accepted:
 * down blocks CrossAttnDownBlock2D / DownBlock2D, mid UNetMidBlock2DCrossAttn,
 * up blocks UpBlock2D / CrossAttnUpBlock2D, no class or addition embeddings. */
typedef struct m2p_nn_unet_config {
    int in_channels, out_channels, sample_size;
    int n_blocks;
    int block_out_channels[M2P_NN_MAX_BLOCKS];
    bool down_attn[M2P_NN_MAX_BLOCKS]; /* down block i is CrossAttnDownBlock2D */
    bool up_attn[M2P_NN_MAX_BLOCKS];   /* up block i (0 = deepest) is CrossAttnUpBlock2D */
    int layers_per_block;
    /* Attention heads of down block i (SD1.x stores the head count in
     * "attention_head_dim"; "num_attention_heads" wins when set). Up block i
     * uses heads[n_blocks - 1 - i]; the mid block heads[n_blocks - 1]. */
    int heads[M2P_NN_MAX_BLOCKS];
    int transformer_layers_per_block;
    int cross_attention_dim;
    int norm_num_groups;
    float norm_eps;
    int time_cond_proj_dim; /* 0 = none (plain SD1.x); 256 in LCM_Dreamshaper_v7 */
    bool flip_sin_to_cos;
    float freq_shift;
    bool use_linear_projection; /* proj_in/proj_out are Linear (true) or 1×1 conv (false) */
    bool upcast_attention;
    bool center_input_sample;
    int downsample_padding;
    float mid_block_scale_factor;
    int conv_in_kernel, conv_out_kernel;
} m2p_nn_unet_config;

/* vae/config.json (AutoencoderKL). */
typedef struct m2p_nn_vae_config {
    int in_channels, out_channels, latent_channels, sample_size;
    int n_blocks;
    int block_out_channels[M2P_NN_MAX_BLOCKS];
    int layers_per_block; /* the decoder has layers_per_block + 1 ResNets per up block */
    int norm_num_groups;
    float scaling_factor; /* 0.18215 for SD1.x */
    float shift_factor;   /* 0 when null */
    bool use_post_quant_conv;
    bool mid_block_add_attention;
} m2p_nn_vae_config;

/* text_encoder/config.json (CLIPTextModel). */
typedef struct m2p_nn_clip_config {
    int vocab_size, hidden, layers, heads, intermediate, max_positions;
    float layer_norm_eps;
    bool quick_gelu; /* hidden_act "quick_gelu" (true) or "gelu" (false) */
} m2p_nn_clip_config;

/* scheduler/scheduler_config.json. */
typedef struct m2p_nn_sched_config {
    char class_name[64]; /* "LCMScheduler", ... */
    int num_train_timesteps;
    double beta_start, beta_end;
    char beta_schedule[32]; /* "scaled_linear" | "linear" */
    int original_inference_steps; /* 50 when absent */
    char prediction_type[32];     /* "epsilon" | "v_prediction" | "sample" */
    double timestep_scaling;      /* 10 when absent */
    bool set_alpha_to_one;
    int steps_offset;
    bool rescale_betas_zero_snr;
    char timestep_spacing[32]; /* "leading" when absent */
} m2p_nn_sched_config;

typedef struct m2p_nn_model m2p_nn_model;

/* Opens the model folder dir: parses every config (all four, always) and the
 * weights of the parts in the parts bit set. Missing files → MODEL_MISSING
 * (naming the file, and saying `mus2pic model pull` / MUS2PIC_MODEL);
 * malformed → MODEL_CONFIG / MODEL_INVALID. *out: caller frees with
 * m2p_nn_model_free. */
m2p_code m2p_nn_model_open(const char *dir, unsigned parts, m2p_nn_model **out, m2p_error *err) M2P_WUR;
void m2p_nn_model_free(m2p_nn_model *m);

const char *m2p_nn_model_folder(const m2p_nn_model *m);
const m2p_nn_unet_config *m2p_nn_model_unet_config(const m2p_nn_model *m);
const m2p_nn_vae_config *m2p_nn_model_vae_config(const m2p_nn_model *m);
const m2p_nn_clip_config *m2p_nn_model_clip_config(const m2p_nn_model *m);
const m2p_nn_sched_config *m2p_nn_model_sched_config(const m2p_nn_model *m);

/* Full path of a file inside the folder ("tokenizer/vocab.json") into buf. */
const char *m2p_nn_model_path(const m2p_nn_model *m, const char *rel, char *buf, size_t cap);

/* The fp32 data of tensor name of a loaded part. ndim ≥ 0 checks the shape
 * against dims[0..ndim) (MODEL_SHAPE on mismatch); ndim < 0 skips the check.
 * The pointer stays valid until m2p_nn_model_free. Not loaded part →
 * INVALID_ARG; absent → MODEL_TENSOR_MISSING; non-float dtype → MODEL_DTYPE. */
m2p_code m2p_nn_model_tensor(const m2p_nn_model *m, m2p_nn_part part, const char *name, int ndim,
                             const int64_t *dims, const float **out, m2p_error *err) M2P_WUR;
/* True when the loaded part has a tensor called name. */
bool m2p_nn_model_has(const m2p_nn_model *m, m2p_nn_part part, const char *name);
/* Bytes of fp32 weights this model holds in memory (converted copies only; mapped files excluded). */
size_t m2p_nn_model_converted_bytes(const m2p_nn_model *m);

/* --- the folder on disk, without loading ------------------------------------------------------ */

/* Where the model lives: cfg->model when set, else <data_dir>/models/<model_id>. */
const char *m2p_nn_model_dir_for(const m2p_config *cfg, char *buf, size_t cap);

/* OK when dir holds every file the engine needs (configs, weights of the three
 * parts, tokenizer); else MODEL_MISSING naming the first missing file and both
 * ways to get it. Cheap: stats files, reads nothing. */
m2p_code m2p_nn_model_check(const char *dir, m2p_error *err) M2P_WUR;

/* A few lines for `mus2pic model info` / `doctor`: folder, whether it is
 * complete, the weight files with their sizes and dtypes, the main config
 * numbers. Always NUL-terminates buf; returns the same code as
 * m2p_nn_model_check (or MODEL_INVALID / MODEL_CONFIG when a file is bad). */
m2p_code m2p_nn_model_describe(const m2p_config *cfg, char *buf, size_t cap) M2P_WUR;

#endif
