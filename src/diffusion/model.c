/*
 * diffusion/model.c — the diffusers model folder (see model.h).
 *
 * Invariants of an open m2p_nn_model:
 *  - all four configs are parsed and range-checked;
 *  - for each loaded part p: parts[p].st is an open safetensors file and
 *    parts[p].f32[i] is the fp32 data of tensor i of that file (in st's name
 *    order): either a pointer into the mapping (aligned F32) or into
 *    parts[p].converted; NULL for non-float tensors (e.g. I64 position_ids);
 *  - nothing changes after open (read-only, thread-safe).
 */
#include "diffusion/model.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/fs.h"
#include "diffusion/json_config.h"
#include "diffusion/safetensors.h"

#define CONFIG_MAX_BYTES ((size_t)1 << 20)
#define MAX_CHANNELS 8192

typedef struct loaded_part {
    m2p_nn_st *st;
    const float **f32; /* per tensor, st name order */
    float *converted;
    size_t converted_floats;
    char file[M2P_PATH_MAX];
} loaded_part;

struct m2p_nn_model {
    char dir[M2P_PATH_MAX];
    m2p_nn_unet_config unet;
    m2p_nn_vae_config vae;
    m2p_nn_clip_config clip;
    m2p_nn_sched_config sched;
    loaded_part parts[M2P_NN_PART_COUNT];
};

/* Read-only table: per part, the folder and the weight file names tried in order. */
static const struct {
    const char *folder;
    const char *files[2];
} k_parts[M2P_NN_PART_COUNT] = {
    {"unet", {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"}},
    {"vae", {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"}},
    {"text_encoder", {"model.safetensors", "model.fp16.safetensors"}},
};

static const char *k_part_names[M2P_NN_PART_COUNT] = {"unet", "vae", "text_encoder"};

static bool is_file(const char *path, int64_t *size) {
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        return false;
    }
    if (size != NULL) {
        *size = (int64_t)sb.st_size;
    }
    return true;
}

static m2p_code missing(m2p_error *err, const char *path) {
    return m2p_error_set(err, M2P_E_MODEL_MISSING,
                         "%s is missing; run `mus2pic model pull` or set MUS2PIC_MODEL to a diffusers model folder",
                         path);
}

/* Finds the weight file of a part (plain, then fp16 variant); false when neither exists. */
static bool weight_file(const char *dir, m2p_nn_part p, char *buf, size_t cap) {
    for (int i = 0; i < 2; i++) {
        (void)snprintf(buf, cap, "%s/%s/%s", dir, k_parts[p].folder, k_parts[p].files[i]);
        if (is_file(buf, NULL)) {
            return true;
        }
    }
    (void)snprintf(buf, cap, "%s/%s/%s", dir, k_parts[p].folder, k_parts[p].files[0]);
    return false;
}

/* --- config parsing ----------------------------------------------------------------------------- */

/* Array of n_max ints each in [lo, hi]; returns the count (0 on error). */
static int jints(m2p_nn_json *c, const char *key, int *out, int n_max, int lo, int hi) {
    const json_t *v = json_object_get(c->root, key);
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > (size_t)n_max) {
        m2p_nn_json_fail(c, key, "must be a list of 1 to 8 integers");
        return 0;
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *e = json_array_get(v, i);
        if (!json_is_integer(e) || json_integer_value(e) < lo || json_integer_value(e) > hi) {
            m2p_nn_json_fail(c, key, "has a value out of the supported range");
            return 0;
        }
        out[i] = (int)json_integer_value(e);
    }
    return (int)json_array_size(v);
}

/* An int, or a list with one int per block, into out[n]. */
static void jint_or_list(m2p_nn_json *c, const char *key, int *out, int n, int def, int lo, int hi) {
    const json_t *v = json_object_get(c->root, key);
    if (json_is_array(v)) {
        int tmp[M2P_NN_MAX_BLOCKS];
        int k = jints(c, key, tmp, M2P_NN_MAX_BLOCKS, lo, hi);
        if (k != n) {
            m2p_nn_json_fail(c, key, "must have one value per block");
            return;
        }
        memcpy(out, tmp, sizeof(int) * (size_t)n);
        return;
    }
    int one = m2p_nn_json_int(c, key, def, lo, hi);
    for (int i = 0; i < n; i++) {
        out[i] = one;
    }
}

/* Reads a list of block type names; each must be a or b; flags[i] = (name == a). */
static int jblocks(m2p_nn_json *c, const char *key, const char *a, const char *b, bool *flags) {
    const json_t *v = json_object_get(c->root, key);
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > M2P_NN_MAX_BLOCKS) {
        m2p_nn_json_fail(c, key, "must be a list of 1 to 8 block types");
        return 0;
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        const char *s = json_string_value(json_array_get(v, i));
        if (s != NULL && strcmp(s, a) == 0) {
            flags[i] = true;
        } else if (s != NULL && b != NULL && strcmp(s, b) == 0) {
            flags[i] = false;
        } else {
            m2p_nn_json_fail(c, key, "has a block type this engine does not implement (Stable Diffusion 1.x only)");
            return 0;
        }
    }
    return (int)json_array_size(v);
}

static bool jnull_or_absent(m2p_nn_json *c, const char *key) {
    const json_t *v = json_object_get(c->root, key);
    return v == NULL || json_is_null(v);
}

static m2p_code load_json(const char *path, json_t **out, m2p_error *err) {
    *out = NULL;
    if (!is_file(path, NULL)) {
        return missing(err, path);
    }
    char *text = NULL;
    size_t len = 0;
    m2p_code rc = m2p_fs_read_file(path, CONFIG_MAX_BYTES, &text, &len, err);
    if (rc != M2P_OK) {
        return rc == M2P_E_TOO_LARGE ? m2p_error_set(err, M2P_E_MODEL_CONFIG, "%s is larger than 1 MB", path) : rc;
    }
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    m2p_free(text);
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        return m2p_error_set(err, M2P_E_MODEL_CONFIG, "%s is not a JSON object (%.100s, line %d)", path,
                             root == NULL ? jerr.text : "not an object", root == NULL ? jerr.line : 0);
    }
    *out = root;
    return M2P_OK;
}

static bool divides(int a, int b) {
    return a > 0 && b % a == 0;
}

static m2p_code parse_unet(const char *dir, m2p_nn_unet_config *u, m2p_error *err) {
    char path[M2P_PATH_MAX];
    (void)snprintf(path, sizeof path, "%s/unet/config.json", dir);
    json_t *root = NULL;
    m2p_code rc = load_json(path, &root, err);
    if (rc != M2P_OK) {
        return rc;
    }
    m2p_nn_json c = {root, path, err, M2P_E_MODEL_CONFIG, M2P_OK};
    memset(u, 0, sizeof *u);
    u->in_channels = m2p_nn_json_int(&c, "in_channels", 4, 1, 64);
    u->out_channels = m2p_nn_json_int(&c, "out_channels", 4, 1, 64);
    u->sample_size = m2p_nn_json_int(&c, "sample_size", 64, 1, 1024);
    u->n_blocks = jints(&c, "block_out_channels", u->block_out_channels, M2P_NN_MAX_BLOCKS, 1, MAX_CHANNELS);
    int nd = jblocks(&c, "down_block_types", "CrossAttnDownBlock2D", "DownBlock2D", u->down_attn);
    int nu = jblocks(&c, "up_block_types", "CrossAttnUpBlock2D", "UpBlock2D", u->up_attn);
    char mid[64];
    m2p_nn_json_str(&c, "mid_block_type", "UNetMidBlock2DCrossAttn", mid, sizeof mid);
    if (c.rc == M2P_OK && (nd != u->n_blocks || nu != u->n_blocks)) {
        m2p_nn_json_fail(&c, "down_block_types", "and up_block_types must have one entry per block_out_channels");
    }
    if (strcmp(mid, "UNetMidBlock2DCrossAttn") != 0) {
        m2p_nn_json_fail(&c, "mid_block_type", "must be UNetMidBlock2DCrossAttn");
    }
    u->layers_per_block = m2p_nn_json_int(&c, "layers_per_block", 2, 1, 8);
    if (!jnull_or_absent(&c, "num_attention_heads")) {
        jint_or_list(&c, "num_attention_heads", u->heads, u->n_blocks, 8, 1, 256);
    } else {
        jint_or_list(&c, "attention_head_dim", u->heads, u->n_blocks, 8, 1, 256);
    }
    u->transformer_layers_per_block = m2p_nn_json_int(&c, "transformer_layers_per_block", 1, 1, 1);
    u->cross_attention_dim = m2p_nn_json_int(&c, "cross_attention_dim", 768, 1, MAX_CHANNELS);
    u->norm_num_groups = m2p_nn_json_int(&c, "norm_num_groups", 32, 1, 1024);
    u->norm_eps = (float)m2p_nn_json_num(&c, "norm_eps", 1e-5, 1e-12, 1e-1);
    u->time_cond_proj_dim = m2p_nn_json_int(&c, "time_cond_proj_dim", 0, 0, MAX_CHANNELS);
    u->flip_sin_to_cos = m2p_nn_json_bool(&c, "flip_sin_to_cos", true);
    u->freq_shift = (float)m2p_nn_json_num(&c, "freq_shift", 0, -10, 10);
    u->use_linear_projection = m2p_nn_json_bool(&c, "use_linear_projection", false);
    u->upcast_attention = m2p_nn_json_bool(&c, "upcast_attention", false);
    u->center_input_sample = m2p_nn_json_bool(&c, "center_input_sample", false);
    u->downsample_padding = m2p_nn_json_int(&c, "downsample_padding", 1, 0, 1);
    u->mid_block_scale_factor = (float)m2p_nn_json_num(&c, "mid_block_scale_factor", 1.0, 1e-6, 1e6);
    u->conv_in_kernel = m2p_nn_json_int(&c, "conv_in_kernel", 3, 1, 7);
    u->conv_out_kernel = m2p_nn_json_int(&c, "conv_out_kernel", 3, 1, 7);
    if (u->conv_in_kernel % 2 == 0 || u->conv_out_kernel % 2 == 0) {
        m2p_nn_json_fail(&c, "conv_in_kernel", "must be odd");
    }
    char act[32];
    m2p_nn_json_str(&c, "act_fn", "silu", act, sizeof act);
    if (strcmp(act, "silu") != 0) {
        m2p_nn_json_fail(&c, "act_fn", "must be silu");
    }
    static const char *const k_unsupported[] = {"class_embed_type", "addition_embed_type", "encoder_hid_dim",
                                                "time_embedding_dim", "time_embedding_act_fn", "timestep_post_act"};
    for (size_t i = 0; i < sizeof k_unsupported / sizeof k_unsupported[0]; i++) {
        if (!jnull_or_absent(&c, k_unsupported[i])) {
            m2p_nn_json_fail(&c, k_unsupported[i], "must be null (Stable Diffusion 1.x only)");
        }
    }
    if (m2p_nn_json_bool(&c, "dual_cross_attention", false) || m2p_nn_json_bool(&c, "only_cross_attention", false) ||
        m2p_nn_json_bool(&c, "class_embeddings_concat", false) || m2p_nn_json_bool(&c, "resnet_skip_time_act", false)) {
        m2p_nn_json_fail(&c, "dual_cross_attention", "and only_cross_attention must be false (Stable Diffusion 1.x only)");
    }
    char tsh[32];
    m2p_nn_json_str(&c, "resnet_time_scale_shift", "default", tsh, sizeof tsh);
    if (strcmp(tsh, "default") != 0) {
        m2p_nn_json_fail(&c, "resnet_time_scale_shift", "must be \"default\"");
    }
    for (int i = 0; c.rc == M2P_OK && i < u->n_blocks; i++) {
        if (!divides(u->norm_num_groups, u->block_out_channels[i]) || !divides(u->heads[i], u->block_out_channels[i])) {
            m2p_nn_json_fail(&c, "block_out_channels", "must be multiples of norm_num_groups and of the head count");
        }
    }
    json_decref(root);
    return c.rc;
}

static m2p_code parse_vae(const char *dir, m2p_nn_vae_config *v, m2p_error *err) {
    char path[M2P_PATH_MAX];
    (void)snprintf(path, sizeof path, "%s/vae/config.json", dir);
    json_t *root = NULL;
    m2p_code rc = load_json(path, &root, err);
    if (rc != M2P_OK) {
        return rc;
    }
    m2p_nn_json c = {root, path, err, M2P_E_MODEL_CONFIG, M2P_OK};
    memset(v, 0, sizeof *v);
    v->in_channels = m2p_nn_json_int(&c, "in_channels", 3, 1, 64);
    v->out_channels = m2p_nn_json_int(&c, "out_channels", 3, 1, 64);
    v->latent_channels = m2p_nn_json_int(&c, "latent_channels", 4, 1, 64);
    v->sample_size = m2p_nn_json_int(&c, "sample_size", 512, 1, 8192);
    v->n_blocks = jints(&c, "block_out_channels", v->block_out_channels, M2P_NN_MAX_BLOCKS, 1, MAX_CHANNELS);
    bool flags[M2P_NN_MAX_BLOCKS];
    int nu = jblocks(&c, "up_block_types", "UpDecoderBlock2D", NULL, flags);
    if (c.rc == M2P_OK && nu != v->n_blocks) {
        m2p_nn_json_fail(&c, "up_block_types", "must have one entry per block_out_channels");
    }
    v->layers_per_block = m2p_nn_json_int(&c, "layers_per_block", 2, 1, 8);
    v->norm_num_groups = m2p_nn_json_int(&c, "norm_num_groups", 32, 1, 1024);
    v->scaling_factor = (float)m2p_nn_json_num(&c, "scaling_factor", 0.18215, 1e-6, 1e6);
    v->shift_factor = (float)m2p_nn_json_num(&c, "shift_factor", 0.0, -1e6, 1e6);
    v->use_post_quant_conv = m2p_nn_json_bool(&c, "use_post_quant_conv", true);
    v->mid_block_add_attention = m2p_nn_json_bool(&c, "mid_block_add_attention", true);
    char act[32];
    m2p_nn_json_str(&c, "act_fn", "silu", act, sizeof act);
    if (strcmp(act, "silu") != 0) {
        m2p_nn_json_fail(&c, "act_fn", "must be silu");
    }
    if (!jnull_or_absent(&c, "latents_mean") || !jnull_or_absent(&c, "latents_std")) {
        m2p_nn_json_fail(&c, "latents_mean", "must be null (Stable Diffusion 1.x VAE only)");
    }
    for (int i = 0; c.rc == M2P_OK && i < v->n_blocks; i++) {
        if (!divides(v->norm_num_groups, v->block_out_channels[i])) {
            m2p_nn_json_fail(&c, "block_out_channels", "must be multiples of norm_num_groups");
        }
    }
    json_decref(root);
    return c.rc;
}

static m2p_code parse_clip(const char *dir, m2p_nn_clip_config *t, m2p_error *err) {
    char path[M2P_PATH_MAX];
    (void)snprintf(path, sizeof path, "%s/text_encoder/config.json", dir);
    json_t *root = NULL;
    m2p_code rc = load_json(path, &root, err);
    if (rc != M2P_OK) {
        return rc;
    }
    m2p_nn_json c = {root, path, err, M2P_E_MODEL_CONFIG, M2P_OK};
    memset(t, 0, sizeof *t);
    t->vocab_size = m2p_nn_json_int(&c, "vocab_size", 49408, 1, 1 << 20);
    t->hidden = m2p_nn_json_int(&c, "hidden_size", 512, 1, MAX_CHANNELS);
    t->layers = m2p_nn_json_int(&c, "num_hidden_layers", 12, 1, 64);
    t->heads = m2p_nn_json_int(&c, "num_attention_heads", 8, 1, 256);
    t->intermediate = m2p_nn_json_int(&c, "intermediate_size", 2048, 1, 4 * MAX_CHANNELS);
    t->max_positions = m2p_nn_json_int(&c, "max_position_embeddings", 77, 1, 4096);
    t->layer_norm_eps = (float)m2p_nn_json_num(&c, "layer_norm_eps", 1e-5, 1e-12, 1e-1);
    char act[32];
    m2p_nn_json_str(&c, "hidden_act", "quick_gelu", act, sizeof act);
    if (strcmp(act, "quick_gelu") == 0) {
        t->quick_gelu = true;
    } else if (strcmp(act, "gelu") == 0) {
        t->quick_gelu = false;
    } else {
        m2p_nn_json_fail(&c, "hidden_act", "must be quick_gelu or gelu");
    }
    if (c.rc == M2P_OK && !divides(t->heads, t->hidden)) {
        m2p_nn_json_fail(&c, "hidden_size", "must be a multiple of num_attention_heads");
    }
    json_decref(root);
    return c.rc;
}

static m2p_code parse_sched(const char *dir, m2p_nn_sched_config *s, m2p_error *err) {
    char path[M2P_PATH_MAX];
    (void)snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", dir);
    json_t *root = NULL;
    m2p_code rc = load_json(path, &root, err);
    if (rc != M2P_OK) {
        return rc;
    }
    m2p_nn_json c = {root, path, err, M2P_E_MODEL_CONFIG, M2P_OK};
    memset(s, 0, sizeof *s);
    m2p_nn_json_str(&c, "_class_name", "LCMScheduler", s->class_name, sizeof s->class_name);
    s->num_train_timesteps = m2p_nn_json_int(&c, "num_train_timesteps", 1000, 1, 100000);
    s->beta_start = m2p_nn_json_num(&c, "beta_start", 0.00085, 0.0, 1.0);
    s->beta_end = m2p_nn_json_num(&c, "beta_end", 0.012, 0.0, 1.0);
    m2p_nn_json_str(&c, "beta_schedule", "scaled_linear", s->beta_schedule, sizeof s->beta_schedule);
    s->original_inference_steps = m2p_nn_json_int(&c, "original_inference_steps", 50, 1, 100000);
    m2p_nn_json_str(&c, "prediction_type", "epsilon", s->prediction_type, sizeof s->prediction_type);
    s->timestep_scaling = m2p_nn_json_num(&c, "timestep_scaling", 10.0, 0.0, 1e6);
    s->set_alpha_to_one = m2p_nn_json_bool(&c, "set_alpha_to_one", true);
    s->steps_offset = m2p_nn_json_int(&c, "steps_offset", 0, 0, 100000);
    s->rescale_betas_zero_snr = m2p_nn_json_bool(&c, "rescale_betas_zero_snr", false);
    m2p_nn_json_str(&c, "timestep_spacing", "leading", s->timestep_spacing, sizeof s->timestep_spacing);
    if (c.rc == M2P_OK && s->original_inference_steps > s->num_train_timesteps) {
        m2p_nn_json_fail(&c, "original_inference_steps", "must not exceed num_train_timesteps");
    }
    if (c.rc == M2P_OK && strcmp(s->beta_schedule, "scaled_linear") != 0 && strcmp(s->beta_schedule, "linear") != 0) {
        m2p_nn_json_fail(&c, "beta_schedule", "must be scaled_linear or linear");
    }
    json_decref(root);
    return c.rc;
}

/* --- weights ------------------------------------------------------------------------------------ */

static m2p_code load_part(m2p_nn_model *m, m2p_nn_part p, m2p_error *err) {
    loaded_part *lp = &m->parts[p];
    if (!weight_file(m->dir, p, lp->file, sizeof lp->file)) {
        char bin[M2P_PATH_MAX + 64];
        (void)snprintf(bin, sizeof bin, "%s/%s/%s", m->dir, k_parts[p].folder,
                       p == M2P_NN_PART_TEXT ? "pytorch_model.bin" : "diffusion_pytorch_model.bin");
        if (is_file(bin, NULL)) {
            return m2p_error_set(err, M2P_E_MODEL_INVALID,
                                 "%s: only pickle (.bin) weights found; Mus2Pic loads safetensors only (pickle can run code)",
                                 bin);
        }
        return missing(err, lp->file);
    }
    m2p_code rc = m2p_nn_st_open(lp->file, &lp->st, err);
    if (rc != M2P_OK) {
        return rc;
    }
    size_t n = m2p_nn_st_count(lp->st);
    lp->f32 = m2p_calloc(n == 0 ? 1 : n, sizeof *lp->f32);
    if (lp->f32 == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "%s: tensor table", lp->file);
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const m2p_nn_st_tensor *t = m2p_nn_st_at(lp->st, i);
        bool is_float = t->dtype == M2P_NN_F32 || t->dtype == M2P_NN_F16 || t->dtype == M2P_NN_BF16;
        if (is_float && m2p_nn_st_f32_view(t) == NULL && !m2p_size_add(total, t->numel, &total)) {
            return m2p_error_set(err, M2P_E_MODEL_INVALID, "%s: too large", lp->file);
        }
    }
    if (total > 0) {
        lp->converted = m2p_malloc_array(total, sizeof(float));
        if (lp->converted == NULL) {
            return m2p_error_set(err, M2P_E_NOMEM, "%s: %zu MB of fp32 weights", lp->file,
                                 total * sizeof(float) >> 20);
        }
        lp->converted_floats = total;
    }
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        const m2p_nn_st_tensor *t = m2p_nn_st_at(lp->st, i);
        bool is_float = t->dtype == M2P_NN_F32 || t->dtype == M2P_NN_F16 || t->dtype == M2P_NN_BF16;
        if (!is_float) {
            continue;
        }
        const float *view = m2p_nn_st_f32_view(t);
        if (view != NULL) {
            lp->f32[i] = view;
            continue;
        }
        rc = m2p_nn_st_read_f32(t, lp->converted + pos, total - pos, err);
        if (rc != M2P_OK) {
            return rc;
        }
        lp->f32[i] = lp->converted + pos;
        pos += t->numel;
    }
    return M2P_OK;
}

m2p_code m2p_nn_model_open(const char *dir, unsigned parts, m2p_nn_model **out, m2p_error *err) {
    *out = NULL;
    m2p_code rc = M2P_OK;
    m2p_nn_model *m = m2p_calloc(1, sizeof *m);
    if (m == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "model handle");
    }
    if (dir == NULL || dir[0] == '\0' || strlen(dir) >= sizeof m->dir - 64) {
        rc = m2p_error_set(err, M2P_E_MODEL_MISSING, "no model folder given");
        goto fail;
    }
    (void)snprintf(m->dir, sizeof m->dir, "%s", dir);
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        rc = m2p_error_set(err, M2P_E_MODEL_MISSING,
                           "no model folder at %s; run `mus2pic model pull` or set MUS2PIC_MODEL to a diffusers model folder",
                           dir);
        goto fail;
    }
    rc = parse_unet(dir, &m->unet, err);
    if (rc == M2P_OK) {
        rc = parse_vae(dir, &m->vae, err);
    }
    if (rc == M2P_OK) {
        rc = parse_clip(dir, &m->clip, err);
    }
    if (rc == M2P_OK) {
        rc = parse_sched(dir, &m->sched, err);
    }
    for (int p = 0; rc == M2P_OK && p < M2P_NN_PART_COUNT; p++) {
        if (parts & (1u << p)) {
            rc = load_part(m, (m2p_nn_part)p, err);
        }
    }
    if (rc != M2P_OK) {
        goto fail;
    }
    *out = m;
    return M2P_OK;
fail:
    m2p_nn_model_free(m);
    return rc;
}

void m2p_nn_model_free(m2p_nn_model *m) {
    if (m == NULL) {
        return;
    }
    for (int p = 0; p < M2P_NN_PART_COUNT; p++) {
        m2p_nn_st_close(m->parts[p].st);
        m2p_free(m->parts[p].f32);
        m2p_free(m->parts[p].converted);
    }
    m2p_free(m);
}

const char *m2p_nn_model_folder(const m2p_nn_model *m) {
    return m->dir;
}
const m2p_nn_unet_config *m2p_nn_model_unet_config(const m2p_nn_model *m) {
    return &m->unet;
}
const m2p_nn_vae_config *m2p_nn_model_vae_config(const m2p_nn_model *m) {
    return &m->vae;
}
const m2p_nn_clip_config *m2p_nn_model_clip_config(const m2p_nn_model *m) {
    return &m->clip;
}
const m2p_nn_sched_config *m2p_nn_model_sched_config(const m2p_nn_model *m) {
    return &m->sched;
}

const char *m2p_nn_model_path(const m2p_nn_model *m, const char *rel, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "%s/%s", m->dir, rel);
    if (n < 0 || (size_t)n >= cap) {
        buf[0] = '\0'; /* a truncated path would name another file */
    }
    return buf;
}

m2p_code m2p_nn_model_tensor(const m2p_nn_model *m, m2p_nn_part part, const char *name, int ndim,
                             const int64_t *dims, const float **out, m2p_error *err) {
    *out = NULL;
    if ((int)part < 0 || part >= M2P_NN_PART_COUNT || m->parts[part].st == NULL) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "model part %d is not loaded", (int)part);
    }
    const loaded_part *lp = &m->parts[part];
    const m2p_nn_st_tensor *t = m2p_nn_st_find(lp->st, name);
    if (t == NULL) {
        return m2p_error_set(err, M2P_E_MODEL_TENSOR_MISSING, "%s has no tensor '%.120s'", lp->file, name);
    }
    size_t idx = (size_t)(t - m2p_nn_st_at(lp->st, 0));
    if (lp->f32[idx] == NULL) {
        return m2p_error_set(err, M2P_E_MODEL_DTYPE, "%s: tensor '%.120s' is %s, not a float type", lp->file, name,
                             m2p_nn_dtype_name(t->dtype));
    }
    if (ndim >= 0) {
        bool ok = t->ndim == ndim;
        for (int i = 0; ok && i < ndim; i++) {
            ok = t->shape[i] == dims[i];
        }
        if (!ok) {
            char want[128] = "", got[128] = "";
            size_t wl = 0, gl = 0;
            for (int i = 0; i < ndim && wl < sizeof want - 24; i++) {
                wl += (size_t)snprintf(want + wl, sizeof want - wl, "%s%lld", i ? "," : "", (long long)dims[i]);
            }
            for (int i = 0; i < t->ndim && gl < sizeof got - 24; i++) {
                gl += (size_t)snprintf(got + gl, sizeof got - gl, "%s%lld", i ? "," : "", (long long)t->shape[i]);
            }
            return m2p_error_set(err, M2P_E_MODEL_SHAPE, "%s: tensor '%.120s' has shape [%s], the config needs [%s]",
                                 lp->file, name, got, want);
        }
    }
    *out = lp->f32[idx];
    return M2P_OK;
}

bool m2p_nn_model_has(const m2p_nn_model *m, m2p_nn_part part, const char *name) {
    if ((int)part < 0 || part >= M2P_NN_PART_COUNT || m->parts[part].st == NULL) {
        return false;
    }
    return m2p_nn_st_find(m->parts[part].st, name) != NULL;
}

size_t m2p_nn_model_converted_bytes(const m2p_nn_model *m) {
    size_t total = 0;
    for (int p = 0; p < M2P_NN_PART_COUNT; p++) {
        total += m->parts[p].converted_floats * sizeof(float);
    }
    return total;
}

/* --- the folder on disk -------------------------------------------------------------------------- */

const char *m2p_nn_model_dir_for(const m2p_config *cfg, char *buf, size_t cap) {
    int n = cfg->model[0] != '\0' ? snprintf(buf, cap, "%s", cfg->model)
                                   : snprintf(buf, cap, "%s/models/%s", cfg->data_dir, cfg->model_id);
    if (n < 0 || (size_t)n >= cap) {
        buf[0] = '\0'; /* never hand out a truncated path */
    }
    return buf;
}

/* Files the engine needs, besides the weights. */
static const char *const k_required[] = {
    "unet/config.json",       "vae/config.json",     "text_encoder/config.json",
    "tokenizer/vocab.json",   "tokenizer/merges.txt", "scheduler/scheduler_config.json",
};

m2p_code m2p_nn_model_check(const char *dir, m2p_error *err) {
    char path[M2P_PATH_MAX + 64];
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        return m2p_error_set(err, M2P_E_MODEL_MISSING,
                             "no model folder at %s; run `mus2pic model pull` or set MUS2PIC_MODEL to a diffusers model folder",
                             dir);
    }
    for (size_t i = 0; i < sizeof k_required / sizeof k_required[0]; i++) {
        (void)snprintf(path, sizeof path, "%s/%s", dir, k_required[i]);
        if (!is_file(path, NULL)) {
            return missing(err, path);
        }
    }
    for (int p = 0; p < M2P_NN_PART_COUNT; p++) {
        if (!weight_file(dir, (m2p_nn_part)p, path, sizeof path)) {
            return missing(err, path);
        }
    }
    return M2P_OK;
}

/* Appends printf-style text to buf at *len (bounded, always NUL-terminated). */
static void appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...) M2P_PRINTF(4, 5);
static void appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...) {
    if (*len + 1 >= cap) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0) {
        *len += (size_t)n < cap - *len ? (size_t)n : cap - *len - 1;
    }
}

m2p_code m2p_nn_model_describe(const m2p_config *cfg, char *buf, size_t cap) {
    size_t len = 0;
    char dir[M2P_PATH_MAX];
    if (cap == 0) {
        return M2P_E_INVALID_ARG;
    }
    buf[0] = '\0';
    (void)m2p_nn_model_dir_for(cfg, dir, sizeof dir);
    appendf(buf, cap, &len, "model folder: %s%s\n", dir, cfg->model[0] ? " (MUS2PIC_MODEL)" : "");
    m2p_error err;
    m2p_error_clear(&err);
    m2p_code rc = m2p_nn_model_check(dir, &err);
    if (rc != M2P_OK) {
        appendf(buf, cap, &len, "status: incomplete: %s\n", err.detail);
        return rc;
    }
    for (int p = 0; p < M2P_NN_PART_COUNT; p++) {
        char path[M2P_PATH_MAX + 64];
        int64_t size = 0;
        (void)weight_file(dir, (m2p_nn_part)p, path, sizeof path);
        (void)is_file(path, &size);
        m2p_nn_st *st = NULL;
        rc = m2p_nn_st_open(path, &st, &err);
        if (rc != M2P_OK) {
            appendf(buf, cap, &len, "status: damaged: %s\n", err.detail);
            return rc;
        }
        size_t counts[M2P_NN_F8_E5M2 + 1] = {0};
        size_t params = 0;
        for (size_t i = 0; i < m2p_nn_st_count(st); i++) {
            const m2p_nn_st_tensor *t = m2p_nn_st_at(st, i);
            counts[t->dtype] += t->numel;
            params += t->numel;
        }
        const char *main_dtype = counts[M2P_NN_F16] > counts[M2P_NN_F32] ? "fp16"
                                 : counts[M2P_NN_BF16] > counts[M2P_NN_F32] ? "bf16"
                                                                           : "fp32";
        appendf(buf, cap, &len, "%-12s %s/%s  %.1f MB, %zu tensors, %.1f M parameters, %s\n", k_part_names[p],
                k_parts[p].folder, strrchr(path, '/') + 1, (double)size / 1e6, m2p_nn_st_count(st),
                (double)params / 1e6, main_dtype);
        m2p_nn_st_close(st);
    }
    m2p_nn_model *m = NULL;
    rc = m2p_nn_model_open(dir, 0, &m, &err);
    if (rc != M2P_OK) {
        appendf(buf, cap, &len, "status: bad configuration: %s\n", err.detail);
        return rc;
    }
    const m2p_nn_unet_config *u = &m->unet;
    appendf(buf, cap, &len, "unet: channels");
    for (int i = 0; i < u->n_blocks; i++) {
        appendf(buf, cap, &len, "%s%d", i ? "/" : " ", u->block_out_channels[i]);
    }
    appendf(buf, cap, &len, ", cross-attention %d, guidance embedding %s\n", u->cross_attention_dim,
            u->time_cond_proj_dim > 0 ? "yes (LCM)" : "no");
    appendf(buf, cap, &len, "text encoder: %d layers, hidden %d; vae: scaling %.5f; scheduler: %s\n", m->clip.layers,
            m->clip.hidden, (double)m->vae.scaling_factor, m->sched.class_name);
    appendf(buf, cap, &len, "status: complete\n");
    m2p_nn_model_free(m);
    return M2P_OK;
}
