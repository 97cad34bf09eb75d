/*
 * diffusion/unet.c — UNet2DConditionModel forward pass (see unet.h).
 *
 * The network is a tree of plain structs holding borrowed weight pointers
 * (bound once in m2p_unet_create by their diffusers names, each shape checked
 * by the tensor source). The forward pass allocates its activations per call
 * and frees each as soon as it is consumed, so peak memory is the skip
 * connections plus the live working set of one block; the feed-forward of
 * the transformer blocks runs in row chunks to bound its 8×-wide
 * intermediate. Layouts follow ops.h: images NCHW, tokens [n, hw, c].
 *
 * Invariants after create: every pointer a layer uses is bound (optional
 * ones — conv shortcut, cond_proj, downsamplers/upsamplers — are NULL exactly
 * when the config says the layer does not exist); channel counts are
 * divisible by the GroupNorm group count and by the head count.
 */
#include "diffusion/unet.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "diffusion/model.h"
#include "diffusion/ops.h"
#include "diffusion/unet_ops.h"

/* ---------------------------------------------------------------- config */

m2p_code m2p_unet_config_from_model(const m2p_nn_unet_config *m, m2p_unet_config *c, m2p_error *err) {
    memset(c, 0, sizeof *c);
    if (m->n_blocks < 1 || m->n_blocks > M2P_UNET_MAX_BLOCKS) {
        return m2p_error_set(err, M2P_E_MODEL_CONFIG, "unet config: %d blocks (1 to %d supported)", m->n_blocks,
                             M2P_UNET_MAX_BLOCKS);
    }
    if (m->layers_per_block < 1 || m->layers_per_block > M2P_UNET_MAX_LAYERS) {
        return m2p_error_set(err, M2P_E_MODEL_CONFIG, "unet config: layers_per_block %d (1 to %d supported)",
                             m->layers_per_block, M2P_UNET_MAX_LAYERS);
    }
    if (m->transformer_layers_per_block < 1 || m->transformer_layers_per_block > M2P_UNET_MAX_TLAYERS) {
        return m2p_error_set(err, M2P_E_MODEL_CONFIG, "unet config: transformer_layers_per_block %d",
                             m->transformer_layers_per_block);
    }
    if (m->center_input_sample) {
        return m2p_error_set(err, M2P_E_MODEL_CONFIG, "unet config: center_input_sample is not supported");
    }
    if (m->downsample_padding != 1) {
        return m2p_error_set(err, M2P_E_MODEL_CONFIG, "unet config: downsample_padding must be 1");
    }
    if (m->norm_num_groups < 1 || !(m->norm_eps > 0) || !(m->mid_block_scale_factor > 0) ||
        m->conv_in_kernel % 2 == 0 || m->conv_out_kernel % 2 == 0 || m->cross_attention_dim < 1 ||
        m->cross_attention_dim > M2P_UNET_MAX_CHANNELS || m->time_cond_proj_dim < 0 ||
        m->time_cond_proj_dim > M2P_UNET_MAX_CHANNELS) {
        return m2p_error_set(err, M2P_E_MODEL_CONFIG, "unet config: norm/kernel/cross-attention settings out of range");
    }
    c->in_channels = m->in_channels;
    c->out_channels = m->out_channels;
    c->n_blocks = m->n_blocks;
    for (int i = 0; i < m->n_blocks; i++) {
        int ch = m->block_out_channels[i];
        if (ch < 1 || ch > M2P_UNET_MAX_CHANNELS || ch % m->norm_num_groups != 0 || m->heads[i] < 1 ||
            ch % m->heads[i] != 0) {
            return m2p_error_set(err, M2P_E_MODEL_CONFIG,
                                 "unet config: block %d has %d channels (must divide by %d groups and %d heads)", i,
                                 ch, m->norm_num_groups, m->heads[i]);
        }
        c->block_out_channels[i] = ch;
        c->down_attn[i] = m->down_attn[i];
        c->up_attn[i] = m->up_attn[i];
        c->layers_per_block[i] = m->layers_per_block;
        c->heads[i] = m->heads[i];
        c->transformer_layers[i] = m->transformer_layers_per_block;
        c->cross_attention_dim[i] = m->cross_attention_dim;
    }
    /* Up block i works at the channels of down block n−1−i with its heads. */
    for (int i = 0; i < m->n_blocks; i++) {
        int r = m->n_blocks - 1 - i;
        if (c->block_out_channels[r] % c->heads[r] != 0) {
            return m2p_error_set(err, M2P_E_MODEL_CONFIG, "unet config: heads do not divide the up block channels");
        }
    }
    c->mid_block = true;
    c->norm_num_groups = m->norm_num_groups;
    c->norm_eps = m->norm_eps;
    c->use_linear_projection = m->use_linear_projection;
    c->flip_sin_to_cos = m->flip_sin_to_cos;
    c->freq_shift = m->freq_shift;
    c->time_cond_proj_dim = m->time_cond_proj_dim;
    c->conv_in_kernel = m->conv_in_kernel;
    c->conv_out_kernel = m->conv_out_kernel;
    c->mid_block_scale_factor = m->mid_block_scale_factor;
    c->sample_size = m->sample_size;
    return M2P_OK;
}

static m2p_code model_tensor(void *ctx, const char *name, int ndim, const int64_t *shape, const float **data,
                             m2p_error *err) {
    return m2p_nn_model_tensor((const m2p_nn_model *)ctx, M2P_NN_PART_UNET, name, ndim, shape, data, err);
}

m2p_code m2p_unet_create_from_model(const m2p_nn_model *model, m2p_unet **out, m2p_error *err) {
    *out = NULL;
    m2p_unet_config cfg;
    m2p_code rc = m2p_unet_config_from_model(m2p_nn_model_unet_config(model), &cfg, err);
    if (rc != M2P_OK) {
        return rc;
    }
    return m2p_unet_create(&cfg, model_tensor, (void *)(uintptr_t)model, out, err);
}

/* ---------------------------------------------------------------- layers */

typedef struct lin {
    const float *w, *b; /* w [out, in]; b [out] or NULL */
    int in, out;
} lin;

typedef struct conv {
    const float *w, *b; /* w [cout, cin, k, k]; b [cout] */
    int cin, cout, k;
} conv;

typedef struct gnorm {
    const float *g, *b;
    int c;
} gnorm;

typedef struct resnet {
    gnorm norm1, norm2;
    conv conv1, conv2, shortcut; /* shortcut.w NULL when cin == cout */
    lin temb;
    int cin, cout;
    float eps, out_scale;
} resnet;

typedef struct attn {
    lin q, k, v, out;
    int heads, dh;
} attn;

typedef struct tblock {
    gnorm n1, n2, n3;
    attn a1, a2;
    lin ff1, ff2; /* ff1: dim → 2·ff_inner (GEGLU), ff2: ff_inner → dim */
    int ff_inner;
} tblock;

typedef struct transformer {
    gnorm gn;
    conv pin_conv, pout_conv; /* use_linear_projection false */
    lin pin_lin, pout_lin;    /* use_linear_projection true */
    int c, inner, n_layers, cross_dim;
    tblock blocks[M2P_UNET_MAX_TLAYERS];
} transformer;

typedef struct block {
    int n_res;
    resnet res[M2P_UNET_MAX_LAYERS + 1];
    bool has_attn;
    transformer tr[M2P_UNET_MAX_LAYERS + 1];
    conv sampler; /* downsampler (stride 2) or upsampler conv; w NULL when absent */
    int cout;
} block;

struct m2p_unet {
    m2p_unet_config cfg;
    int t_in, t_dim; /* timestep embedding width (block 0 channels) and time_embed_dim (×4) */
    lin t_lin1, t_lin2, t_cond;
    conv conv_in, conv_out;
    gnorm norm_out;
    block down[M2P_UNET_MAX_BLOCKS];
    block mid;
    block up[M2P_UNET_MAX_BLOCKS];
    size_t params;
    int wino_min_pixels; /* Winograd for 3×3 stride-1 convs at h·w ≥ this; < 0: never */
    bool batched_linears; /* benchmark knob: one sgemm over all images (not reproducible) */
};

/* ---------------------------------------------------------------- binding */

typedef struct binder {
    m2p_unet_tensor_fn get;
    void *ctx;
    size_t params;
    m2p_error *err;
} binder;

static m2p_code bind(binder *bd, const float **out, int ndim, const int64_t *shape, const char *prefix,
                     const char *suffix) {
    char name[256];
    int len = snprintf(name, sizeof name, "%s%s", prefix, suffix);
    if (len < 0 || (size_t)len >= sizeof name) {
        return m2p_error_set(bd->err, M2P_E_INTERNAL, "tensor name too long: %s", prefix);
    }
    m2p_code rc = bd->get(bd->ctx, name, ndim, shape, out, bd->err);
    if (rc != M2P_OK) {
        return rc;
    }
    if (*out == NULL) {
        return m2p_error_set(bd->err, M2P_E_MODEL_TENSOR_MISSING, "%s", name);
    }
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        count *= (size_t)shape[i];
    }
    bd->params += count;
    return M2P_OK;
}

static m2p_code bind_lin(binder *bd, lin *l, int in, int out, bool bias, const char *prefix) {
    l->in = in;
    l->out = out;
    l->b = NULL;
    int64_t ws[2] = {out, in};
    int64_t bs[1] = {out};
    m2p_code rc = bind(bd, &l->w, 2, ws, prefix, ".weight");
    if (rc == M2P_OK && bias) {
        rc = bind(bd, &l->b, 1, bs, prefix, ".bias");
    }
    return rc;
}

static m2p_code bind_conv(binder *bd, conv *cv, int cin, int cout, int k, const char *prefix) {
    cv->cin = cin;
    cv->cout = cout;
    cv->k = k;
    int64_t ws[4] = {cout, cin, k, k};
    int64_t bs[1] = {cout};
    m2p_code rc = bind(bd, &cv->w, 4, ws, prefix, ".weight");
    if (rc == M2P_OK) {
        rc = bind(bd, &cv->b, 1, bs, prefix, ".bias");
    }
    return rc;
}

static m2p_code bind_norm(binder *bd, gnorm *n, int c, const char *prefix) {
    n->c = c;
    int64_t s[1] = {c};
    m2p_code rc = bind(bd, &n->g, 1, s, prefix, ".weight");
    if (rc == M2P_OK) {
        rc = bind(bd, &n->b, 1, s, prefix, ".bias");
    }
    return rc;
}

/* name = prefix + "." + sub into buf (cap 256). */
static const char *join(char *buf, const char *prefix, const char *sub) {
    int len = snprintf(buf, 256, "%s.%s", prefix, sub);
    if (len < 0 || len >= 256) {
        buf[0] = '\0'; /* cannot happen with diffusers names; bind() then reports the tensor missing */
    }
    return buf;
}

static m2p_code bind_resnet(binder *bd, resnet *r, int cin, int cout, int temb, float eps, float scale,
                            const char *prefix) {
    char nm[256];
    m2p_code rc;
    r->cin = cin;
    r->cout = cout;
    r->eps = eps;
    r->out_scale = scale;
    if ((rc = bind_norm(bd, &r->norm1, cin, join(nm, prefix, "norm1"))) != M2P_OK ||
        (rc = bind_conv(bd, &r->conv1, cin, cout, 3, join(nm, prefix, "conv1"))) != M2P_OK ||
        (rc = bind_lin(bd, &r->temb, temb, cout, true, join(nm, prefix, "time_emb_proj"))) != M2P_OK ||
        (rc = bind_norm(bd, &r->norm2, cout, join(nm, prefix, "norm2"))) != M2P_OK ||
        (rc = bind_conv(bd, &r->conv2, cout, cout, 3, join(nm, prefix, "conv2"))) != M2P_OK) {
        return rc;
    }
    r->shortcut.w = NULL;
    if (cin != cout) {
        rc = bind_conv(bd, &r->shortcut, cin, cout, 1, join(nm, prefix, "conv_shortcut"));
    }
    return rc;
}

static m2p_code bind_attn(binder *bd, attn *a, int dim, int kv_dim, int heads, const char *prefix) {
    char nm[256];
    m2p_code rc;
    a->heads = heads;
    a->dh = dim / heads;
    if ((rc = bind_lin(bd, &a->q, dim, dim, false, join(nm, prefix, "to_q"))) != M2P_OK ||
        (rc = bind_lin(bd, &a->k, kv_dim, dim, false, join(nm, prefix, "to_k"))) != M2P_OK ||
        (rc = bind_lin(bd, &a->v, kv_dim, dim, false, join(nm, prefix, "to_v"))) != M2P_OK) {
        return rc;
    }
    return bind_lin(bd, &a->out, dim, dim, true, join(nm, prefix, "to_out.0"));
}

static m2p_code bind_transformer(binder *bd, transformer *t, int c, int heads, int layers, int cross_dim,
                                 bool linear, const char *prefix) {
    char nm[256];
    char bp[256];
    m2p_code rc;
    t->c = c;
    t->inner = c; /* heads · (c / heads) */
    t->n_layers = layers;
    t->cross_dim = cross_dim;
    if ((rc = bind_norm(bd, &t->gn, c, join(nm, prefix, "norm"))) != M2P_OK) {
        return rc;
    }
    if (linear) {
        rc = bind_lin(bd, &t->pin_lin, c, c, true, join(nm, prefix, "proj_in"));
    } else {
        rc = bind_conv(bd, &t->pin_conv, c, c, 1, join(nm, prefix, "proj_in"));
    }
    if (rc != M2P_OK) {
        return rc;
    }
    for (int l = 0; l < layers; l++) {
        tblock *b = &t->blocks[l];
        (void)snprintf(bp, sizeof bp, "%s.transformer_blocks.%d", prefix, l);
        b->ff_inner = 4 * c;
        if ((rc = bind_norm(bd, &b->n1, c, join(nm, bp, "norm1"))) != M2P_OK ||
            (rc = bind_attn(bd, &b->a1, c, c, heads, join(nm, bp, "attn1"))) != M2P_OK ||
            (rc = bind_norm(bd, &b->n2, c, join(nm, bp, "norm2"))) != M2P_OK ||
            (rc = bind_attn(bd, &b->a2, c, cross_dim, heads, join(nm, bp, "attn2"))) != M2P_OK ||
            (rc = bind_norm(bd, &b->n3, c, join(nm, bp, "norm3"))) != M2P_OK ||
            (rc = bind_lin(bd, &b->ff1, c, 2 * b->ff_inner, true, join(nm, bp, "ff.net.0.proj"))) != M2P_OK ||
            (rc = bind_lin(bd, &b->ff2, b->ff_inner, c, true, join(nm, bp, "ff.net.2"))) != M2P_OK) {
            return rc;
        }
    }
    if (linear) {
        rc = bind_lin(bd, &t->pout_lin, c, c, true, join(nm, prefix, "proj_out"));
    } else {
        rc = bind_conv(bd, &t->pout_conv, c, c, 1, join(nm, prefix, "proj_out"));
    }
    return rc;
}

static m2p_code bind_all(m2p_unet *u, binder *bd) {
    const m2p_unet_config *c = &u->cfg;
    char p[256];
    char nm[256];
    m2p_code rc;
    int nb = c->n_blocks;
    int c0 = c->block_out_channels[0];
    u->t_in = c0;
    u->t_dim = 4 * c0;
    if ((rc = bind_lin(bd, &u->t_lin1, u->t_in, u->t_dim, true, "time_embedding.linear_1")) != M2P_OK ||
        (rc = bind_lin(bd, &u->t_lin2, u->t_dim, u->t_dim, true, "time_embedding.linear_2")) != M2P_OK) {
        return rc;
    }
    u->t_cond.w = NULL;
    if (c->time_cond_proj_dim > 0 &&
        (rc = bind_lin(bd, &u->t_cond, c->time_cond_proj_dim, u->t_in, false, "time_embedding.cond_proj")) !=
            M2P_OK) {
        return rc;
    }
    if ((rc = bind_conv(bd, &u->conv_in, c->in_channels, c0, c->conv_in_kernel, "conv_in")) != M2P_OK) {
        return rc;
    }
    /* Down blocks. */
    int out_ch = c0;
    for (int i = 0; i < nb; i++) {
        int in_ch = out_ch;
        out_ch = c->block_out_channels[i];
        block *b = &u->down[i];
        b->n_res = c->layers_per_block[i];
        b->has_attn = c->down_attn[i];
        b->cout = out_ch;
        for (int l = 0; l < b->n_res; l++) {
            (void)snprintf(p, sizeof p, "down_blocks.%d.resnets.%d", i, l);
            if ((rc = bind_resnet(bd, &b->res[l], l == 0 ? in_ch : out_ch, out_ch, u->t_dim, c->norm_eps, 1.0f, p)) !=
                M2P_OK) {
                return rc;
            }
            if (b->has_attn) {
                (void)snprintf(p, sizeof p, "down_blocks.%d.attentions.%d", i, l);
                if ((rc = bind_transformer(bd, &b->tr[l], out_ch, c->heads[i], c->transformer_layers[i],
                                           c->cross_attention_dim[i], c->use_linear_projection, p)) != M2P_OK) {
                    return rc;
                }
            }
        }
        b->sampler.w = NULL;
        if (i < nb - 1) {
            (void)snprintf(p, sizeof p, "down_blocks.%d.downsamplers.0", i);
            if ((rc = bind_conv(bd, &b->sampler, out_ch, out_ch, 3, join(nm, p, "conv"))) != M2P_OK) {
                return rc;
            }
        }
    }
    /* Mid block. */
    if (c->mid_block) {
        int ch = c->block_out_channels[nb - 1];
        block *b = &u->mid;
        b->n_res = 2;
        b->has_attn = true;
        b->cout = ch;
        b->sampler.w = NULL;
        for (int l = 0; l < 2; l++) {
            (void)snprintf(p, sizeof p, "mid_block.resnets.%d", l);
            if ((rc = bind_resnet(bd, &b->res[l], ch, ch, u->t_dim, c->norm_eps, c->mid_block_scale_factor, p)) !=
                M2P_OK) {
                return rc;
            }
        }
        if ((rc = bind_transformer(bd, &b->tr[0], ch, c->heads[nb - 1], c->transformer_layers[nb - 1],
                                   c->cross_attention_dim[nb - 1], c->use_linear_projection,
                                   "mid_block.attentions.0")) != M2P_OK) {
            return rc;
        }
    }
    /* Up blocks (reversed channel lists; up block i mirrors down block nb−1−i). */
    out_ch = c->block_out_channels[nb - 1];
    for (int i = 0; i < nb; i++) {
        int r = nb - 1 - i;
        int prev_out = out_ch;
        out_ch = c->block_out_channels[r];
        int in_ch = c->block_out_channels[r - 1 >= 0 ? r - 1 : 0];
        block *b = &u->up[i];
        b->n_res = c->layers_per_block[r] + 1;
        b->has_attn = c->up_attn[i];
        b->cout = out_ch;
        for (int l = 0; l < b->n_res; l++) {
            int skip = l == b->n_res - 1 ? in_ch : out_ch;
            int rin = l == 0 ? prev_out : out_ch;
            (void)snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", i, l);
            if ((rc = bind_resnet(bd, &b->res[l], rin + skip, out_ch, u->t_dim, c->norm_eps, 1.0f, p)) != M2P_OK) {
                return rc;
            }
            if (b->has_attn) {
                (void)snprintf(p, sizeof p, "up_blocks.%d.attentions.%d", i, l);
                if ((rc = bind_transformer(bd, &b->tr[l], out_ch, c->heads[r], c->transformer_layers[r],
                                           c->cross_attention_dim[r], c->use_linear_projection, p)) != M2P_OK) {
                    return rc;
                }
            }
        }
        b->sampler.w = NULL;
        if (i < nb - 1) {
            (void)snprintf(p, sizeof p, "up_blocks.%d.upsamplers.0", i);
            if ((rc = bind_conv(bd, &b->sampler, out_ch, out_ch, 3, join(nm, p, "conv"))) != M2P_OK) {
                return rc;
            }
        }
    }
    if ((rc = bind_norm(bd, &u->norm_out, c0, "conv_norm_out")) != M2P_OK) {
        return rc;
    }
    return bind_conv(bd, &u->conv_out, c0, c->out_channels, c->conv_out_kernel, "conv_out");
}

m2p_code m2p_unet_create(const m2p_unet_config *cfg, m2p_unet_tensor_fn get, void *ctx, m2p_unet **out,
                         m2p_error *err) {
    *out = NULL;
    m2p_unet *u = m2p_calloc(1, sizeof *u);
    if (u == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "unet");
    }
    u->cfg = *cfg;
    binder bd = {get, ctx, 0, err};
    m2p_code rc = bind_all(u, &bd);
    if (rc != M2P_OK) {
        goto fail;
    }
    u->params = bd.params;
    u->wino_min_pixels = M2P_UNET_WINOGRAD_MIN_PIXELS;
    *out = u;
    return M2P_OK;
fail:
    m2p_free(u);
    return rc;
}

void m2p_unet_free(m2p_unet *u) {
    m2p_free(u);
}

const m2p_unet_config *m2p_unet_get_config(const m2p_unet *u) {
    return &u->cfg;
}

size_t m2p_unet_param_count(const m2p_unet *u) {
    return u->params;
}

void m2p_unet_set_winograd_min_pixels(m2p_unet *u, int pixels) {
    u->wino_min_pixels = pixels;
}

void m2p_unet_set_batched_linears(m2p_unet *u, bool on) {
    u->batched_linears = on;
}

/* ---------------------------------------------------------------- embeddings */

void m2p_unet_timestep_embedding(float t, int dim, bool flip_sin_to_cos, float freq_shift, float *out) {
    int half = dim / 2;
    /* float32 as diffusers: exponent = −ln(10000)·i / (half − shift); emb = t·exp(exponent). */
    float neg_log = -(float)log(10000.0);
    for (int i = 0; i < half; i++) {
        float e = neg_log * (float)i;
        e = e / ((float)half - freq_shift);
        float a = t * expf(e);
        float s = sinf(a);
        float c = cosf(a);
        if (flip_sin_to_cos) {
            out[i] = c;
            out[half + i] = s;
        } else {
            out[i] = s;
            out[half + i] = c;
        }
    }
    if (dim % 2 == 1) {
        out[dim - 1] = 0.0f;
    }
}

void m2p_unet_guidance_embedding(double guidance, int dim, float *out) {
    int half = dim / 2;
    float w = (float)(guidance - 1.0); /* torch.tensor(guidance − 1): float32 */
    w = w * 1000.0f;
    float step = (float)log(10000.0) / (float)(half - 1);
    for (int i = 0; i < half; i++) {
        float f = expf((float)i * -step);
        float a = w * f;
        out[i] = sinf(a);
        out[half + i] = cosf(a);
    }
    if (dim % 2 == 1) {
        out[dim - 1] = 0.0f;
    }
}

/* ---------------------------------------------------------------- forward */

static float *falloc(size_t count) {
    return m2p_malloc_array(count, sizeof(float));
}

/* The convolution workspace of one forward: grown to the largest conv's need
 * and reused by every conv after it (a fresh 50–200 MB buffer per conv would be
 * mapped and zero-filled by the kernel each time). */
typedef struct wsbuf {
    float *p;
    size_t cap;
} wsbuf;

static float *ws_get(wsbuf *wb, size_t floats) {
    if (floats == 0) {
        floats = 1;
    }
    if (floats > wb->cap) {
        m2p_free(wb->p);
        wb->cap = 0;
        wb->p = falloc(floats);
        if (wb->p == NULL) {
            return NULL;
        }
        wb->cap = floats;
    }
    return wb->p;
}

/* y = conv(x): x [n, cin, h, w] → y [n, cout, oh, ow], pad = k/2. 3×3 stride-1
 * convolutions on at least wino_min pixels per image go through Winograd (not
 * the 4-channel conv_in/conv_out: its products would have 4 rows or a
 * 4-deep sum), the rest through im2col; the choice depends on the per-image shape only (never
 * on n), and both ops run their sgemms per image with the same shapes whatever
 * n, so an image's output does not depend on its batch. */
static m2p_code conv_run(const conv *cv, const float *x, int n, int h, int w, int stride, int wino_min, wsbuf *wb,
                         float *y, m2p_error *err) {
    int pad = cv->k / 2;
    bool wino = cv->k == 3 && stride == 1 && cv->cin >= 16 && cv->cout >= 16 && wino_min >= 0 &&
                (long)h * (long)w >= (long)wino_min;
    if (wino) {
        size_t wsz = m2p_nn_conv3x3_workspace(cv->cin, cv->cout, h, w);
        float *ws = ws_get(wb, wsz);
        if (ws == NULL) {
            return m2p_error_set(err, M2P_E_NOMEM, "winograd workspace (%zu floats)", wsz);
        }
        m2p_nn_conv3x3(x, n, cv->cin, h, w, cv->w, cv->b, cv->cout, y, ws);
        return M2P_OK;
    }
    float *ws = NULL;
    if (cv->k != 1 || stride != 1) {
        size_t wsz = m2p_nn_conv2d_workspace(cv->cin, h, w, cv->k, stride, pad);
        ws = ws_get(wb, wsz);
        if (ws == NULL) {
            return m2p_error_set(err, M2P_E_NOMEM, "conv workspace (%zu floats)", wsz);
        }
    }
    m2p_nn_conv2d(x, n, cv->cin, h, w, cv->w, cv->b, cv->cout, cv->k, stride, pad, y, ws);
    return M2P_OK;
}

/* y = x·wᵀ + b over n images of rows_per rows each, one sgemm per image: the
 * result of an image then does not depend on the batch it is in (OpenBLAS
 * rounds an element differently depending on where it falls in the product:
 * the last tiles of a call and of each thread's share take other code paths).
 * batched: one sgemm over all n·rows_per rows (benchmark knob, not reproducible). */
static void linear_images(const float *x, int n, size_t rows_per, int in, const float *w, const float *b, int out,
                          float *y, bool acc, bool batched) {
    if (batched) {
        m2p_nn_linear(x, (int)((size_t)n * rows_per), in, w, b, out, y, acc);
        return;
    }
    for (int i = 0; i < n; i++) {
        m2p_nn_linear(x + (size_t)i * rows_per * (size_t)in, (int)rows_per, in, w, b, out,
                      y + (size_t)i * rows_per * (size_t)out, acc);
    }
}

/* Per-forward shared inputs. */
typedef struct fctx {
    int n;
    const float *temb_act; /* [n, t_dim]: SiLU(time embedding), shared by all resnets */
    int t_dim;
    const float *context;  /* [context_n, T, D] */
    int context_n, context_len;
    int groups;
    int wino_min;  /* conv_run's Winograd threshold */
    bool batched;  /* linear_images over all images at once */
    wsbuf *ws;     /* conv workspace of this forward */
} fctx;

/* ResnetBlock2D: x [n, cin, h·w] → y [n, cout, h·w]. */
static m2p_code resnet_run(const resnet *r, const fctx *f, const float *x, int h, int w, float *y, m2p_error *err) {
    int n = f->n;
    size_t hw = (size_t)h * (size_t)w;
    m2p_code rc = M2P_OK;
    float *a = falloc((size_t)n * (size_t)r->cin * hw);
    float *b = falloc((size_t)n * (size_t)r->cout * hw);
    float *tv = falloc((size_t)n * (size_t)r->cout);
    if (a == NULL || b == NULL || tv == NULL) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "resnet activations");
        goto done;
    }
    memcpy(a, x, (size_t)n * (size_t)r->cin * hw * sizeof(float));
    m2p_nn_group_norm(a, n, r->cin, (int)hw, f->groups, r->norm1.g, r->norm1.b, r->eps, true);
    if ((rc = conv_run(&r->conv1, a, n, h, w, 1, f->wino_min, f->ws, b, err)) != M2P_OK) {
        goto done;
    }
    linear_images(f->temb_act, n, 1, f->t_dim, r->temb.w, r->temb.b, r->cout, tv, false, f->batched);
    m2p_nn_add_channel(b, n, r->cout, (int)hw, tv);
    m2p_nn_group_norm(b, n, r->cout, (int)hw, f->groups, r->norm2.g, r->norm2.b, r->eps, true);
    if ((rc = conv_run(&r->conv2, b, n, h, w, 1, f->wino_min, f->ws, y, err)) != M2P_OK) {
        goto done;
    }
    size_t total = (size_t)n * (size_t)r->cout * hw;
    if (r->shortcut.w != NULL) {
        /* b is free again: shortcut into it. */
        if ((rc = conv_run(&r->shortcut, x, n, h, w, 1, f->wino_min, f->ws, b, err)) != M2P_OK) {
            goto done;
        }
        m2p_nn_add(y, b, total);
    } else {
        m2p_nn_add(y, x, total);
    }
    if (r->out_scale != 1.0f) {
        float inv = r->out_scale;
        for (size_t i = 0; i < total; i++) {
            y[i] /= inv;
        }
    }
done:
    m2p_free(a);
    m2p_free(b);
    m2p_free(tv);
    return rc;
}

/* Attention of q [n, tq, c] against k/v: self (k/v from the same rows) or the
 * text context (one k/v shared by all n images when kv_shared). out: [n·tq, c]. */
static m2p_code attention_run(const attn *a, const float *q, const float *k, const float *v, int n, int tq, int tk,
                              bool kv_shared, float *out, m2p_error *err) {
    int c = a->heads * a->dh;
    size_t total = m2p_unet_attention_scratch(tk);
    float *scratch = falloc(total);
    if (scratch == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "attention scratch (%zu floats)", total);
    }
    size_t kv_stride = kv_shared ? 0 : (size_t)tk * (size_t)c;
    m2p_unet_attention(q, c, k, c, kv_stride, v, c, kv_stride, n, tq, tk, a->heads, a->dh, out, c, scratch);
    m2p_free(scratch);
    return M2P_OK;
}

#define FF_CHUNK_ROWS 4096

/* One BasicTransformerBlock over tokens t [n·hw, c], in place. */
static m2p_code tblock_run(const tblock *b, const fctx *f, float *t, int hw, int c, int cross_dim, m2p_error *err) {
    int n = f->n;
    size_t rows = (size_t)n * (size_t)hw;
    m2p_code rc = M2P_OK;
    int tk = f->context_len;
    size_t kv_rows = (size_t)f->context_n * (size_t)tk;
    int chunk = FF_CHUNK_ROWS;
    float *ln = falloc(rows * (size_t)c);
    float *q = falloc(rows * (size_t)c);
    size_t kv_cap = (rows > kv_rows ? rows : kv_rows) * (size_t)c; /* self or cross keys/values */
    float *k = falloc(kv_cap);
    float *v = falloc(kv_cap);
    float *o = falloc(rows * (size_t)c);
    float *g = falloc((size_t)chunk * 2 * (size_t)b->ff_inner);
    float *gg = falloc((size_t)chunk * (size_t)b->ff_inner);
    if (ln == NULL || q == NULL || k == NULL || v == NULL || o == NULL || g == NULL || gg == NULL) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "transformer activations");
        goto done;
    }
    /* Self-attention. */
    m2p_nn_layer_norm(t, (int)rows, c, b->n1.g, b->n1.b, 1e-5f, ln);
    linear_images(ln, n, (size_t)hw, c, b->a1.q.w, NULL, c, q, false, f->batched);
    linear_images(ln, n, (size_t)hw, c, b->a1.k.w, NULL, c, k, false, f->batched);
    linear_images(ln, n, (size_t)hw, c, b->a1.v.w, NULL, c, v, false, f->batched);
    if ((rc = attention_run(&b->a1, q, k, v, n, hw, hw, false, o, err)) != M2P_OK) {
        goto done;
    }
    linear_images(o, n, (size_t)hw, c, b->a1.out.w, b->a1.out.b, c, t, true, f->batched);
    /* Cross-attention to the text. */
    m2p_nn_layer_norm(t, (int)rows, c, b->n2.g, b->n2.b, 1e-5f, ln);
    linear_images(ln, n, (size_t)hw, c, b->a2.q.w, NULL, c, q, false, f->batched);
    linear_images(f->context, f->context_n, (size_t)tk, cross_dim, b->a2.k.w, NULL, c, k, false, f->batched);
    linear_images(f->context, f->context_n, (size_t)tk, cross_dim, b->a2.v.w, NULL, c, v, false, f->batched);
    if ((rc = attention_run(&b->a2, q, k, v, n, hw, tk, f->context_n == 1, o, err)) != M2P_OK) {
        goto done;
    }
    linear_images(o, n, (size_t)hw, c, b->a2.out.w, b->a2.out.b, c, t, true, f->batched);
    /* GEGLU feed-forward, in row chunks. */
    m2p_nn_layer_norm(t, (int)rows, c, b->n3.g, b->n3.b, 1e-5f, ln);
    /* Per image (chunks never span two images), or over all rows with the batched knob. */
    int seg_n = f->batched ? 1 : n;
    size_t seg_rows = f->batched ? rows : (size_t)hw;
    for (int i = 0; i < seg_n; i++) {
        for (size_t r0 = 0; r0 < seg_rows; r0 += (size_t)chunk) {
            int m = seg_rows - r0 < (size_t)chunk ? (int)(seg_rows - r0) : chunk;
            size_t row = (size_t)i * seg_rows + r0;
            m2p_nn_linear(ln + row * (size_t)c, m, c, b->ff1.w, b->ff1.b, 2 * b->ff_inner, g, false);
            m2p_nn_geglu(g, m, b->ff_inner, gg);
            m2p_nn_linear(gg, m, b->ff_inner, b->ff2.w, b->ff2.b, c, t + row * (size_t)c, true);
        }
    }
done:
    m2p_free(ln);
    m2p_free(q);
    m2p_free(k);
    m2p_free(v);
    m2p_free(o);
    m2p_free(g);
    m2p_free(gg);
    return rc;
}

/* Transformer2DModel: x [n, c, h·w] → y [n, c, h·w] (y = x + block(x)). */
static m2p_code transformer_run(const transformer *tr, const fctx *f, const float *x, int h, int w, float *y,
                                m2p_error *err) {
    int n = f->n;
    int c = tr->c;
    size_t hw = (size_t)h * (size_t)w;
    size_t total = (size_t)n * (size_t)c * hw;
    m2p_code rc = M2P_OK;
    float *a = falloc(total);
    float *t = falloc(total);
    if (a == NULL || t == NULL) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "transformer activations");
        goto done;
    }
    memcpy(a, x, total * sizeof(float));
    m2p_nn_group_norm(a, n, c, (int)hw, f->groups, tr->gn.g, tr->gn.b, 1e-6f, false);
    if (tr->pin_conv.w != NULL) {
        if ((rc = conv_run(&tr->pin_conv, a, n, h, w, 1, f->wino_min, f->ws, y, err)) != M2P_OK) {
            goto done;
        }
        m2p_nn_nchw_to_nhwc(y, n, c, (int)hw, t);
    } else {
        m2p_nn_nchw_to_nhwc(a, n, c, (int)hw, y);
        linear_images(y, n, hw, c, tr->pin_lin.w, tr->pin_lin.b, c, t, false, f->batched);
    }
    for (int l = 0; l < tr->n_layers; l++) {
        if ((rc = tblock_run(&tr->blocks[l], f, t, (int)hw, c, tr->cross_dim, err)) != M2P_OK) {
            goto done;
        }
    }
    if (tr->pout_conv.w != NULL) {
        m2p_nn_nhwc_to_nchw(t, n, c, (int)hw, a);
        if ((rc = conv_run(&tr->pout_conv, a, n, h, w, 1, f->wino_min, f->ws, y, err)) != M2P_OK) {
            goto done;
        }
    } else {
        linear_images(t, n, hw, c, tr->pout_lin.w, tr->pout_lin.b, c, a, false, f->batched);
        m2p_nn_nhwc_to_nchw(a, n, c, (int)hw, y);
    }
    m2p_nn_add(y, x, total);
done:
    m2p_free(a);
    m2p_free(t);
    return rc;
}

/* A stored activation of the down path. */
typedef struct act {
    float *d;
    int c, h, w;
} act;

#define MAX_SKIPS (1 + M2P_UNET_MAX_BLOCKS * (M2P_UNET_MAX_LAYERS + 1))

/* Resnet then (optionally) transformer: x → out (new buffer in *out). */
static m2p_code layer_run(const block *b, int l, const fctx *f, const float *x, int h, int w, float **out,
                          m2p_error *err) {
    int n = f->n;
    size_t sz = (size_t)n * (size_t)b->cout * (size_t)h * (size_t)w;
    float *r = falloc(sz);
    if (r == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "activations");
    }
    m2p_code rc = resnet_run(&b->res[l], f, x, h, w, r, err);
    if (rc == M2P_OK && b->has_attn) {
        float *t = falloc(sz);
        if (t == NULL) {
            rc = m2p_error_set(err, M2P_E_NOMEM, "activations");
        } else {
            rc = transformer_run(&b->tr[l], f, r, h, w, t, err);
            m2p_free(r);
            r = t;
        }
    }
    if (rc != M2P_OK) {
        m2p_free(r);
        return rc;
    }
    *out = r;
    return M2P_OK;
}

/* Nearest-neighbour resize as torch's F.interpolate(size=...) (src = floor(dst·in/out)). */
static void resize_nearest(const float *x, int n, int c, int h, int w, int oh, int ow, float *y) {
    float sh = (float)h / (float)oh;
    float sw = (float)w / (float)ow;
    for (size_t p = 0; p < (size_t)n * (size_t)c; p++) {
        const float *src = x + p * (size_t)h * (size_t)w;
        float *dst = y + p * (size_t)oh * (size_t)ow;
        for (int i = 0; i < oh; i++) {
            int si = (int)floorf((float)i * sh);
            si = si < h - 1 ? si : h - 1;
            for (int j = 0; j < ow; j++) {
                int sj = (int)floorf((float)j * sw);
                sj = sj < w - 1 ? sj : w - 1;
                dst[(size_t)i * (size_t)ow + (size_t)j] = src[(size_t)si * (size_t)w + (size_t)sj];
            }
        }
    }
}

m2p_code m2p_unet_forward(const m2p_unet *u, const m2p_unet_input *in, float *out, m2p_error *err) {
    const m2p_unet_config *c = &u->cfg;
    int n = in->n;
    int nb = c->n_blocks;
    if (n < 1 || n > M2P_UNET_MAX_BATCH || in->h < 1 || in->w < 1 || in->h > M2P_UNET_MAX_SIDE ||
        in->w > M2P_UNET_MAX_SIDE || in->context_len < 1 || in->context_len > M2P_UNET_MAX_CONTEXT ||
        (in->context_n != 1 && in->context_n != n) || in->sample == NULL || in->timesteps == NULL ||
        in->context == NULL) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "unet input: n %d, %dx%d, context %dx%d", n, in->h, in->w,
                             in->context_n, in->context_len);
    }
    m2p_nn_apply_threads(); /* the `threads` setting, in whichever thread renders */
    m2p_code rc = M2P_OK;
    wsbuf wb = {NULL, 0};
    bool cur_owned = false; /* false while cur is also an entry of skips */
    act skips[MAX_SKIPS];
    int n_skips = 0;
    float *temb = NULL;
    float *tsin = NULL;
    float *cur = NULL;
    float *nxt = NULL;
    int h = in->h;
    int w = in->w;
    int ch = c->block_out_channels[0];

    /* Time embedding (+ guidance embedding), then SiLU once for all resnets. */
    tsin = falloc((size_t)n * (size_t)u->t_in);
    temb = falloc((size_t)n * (size_t)u->t_dim * 2);
    if (tsin == NULL || temb == NULL) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "time embedding");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        m2p_unet_timestep_embedding(in->timesteps[i], u->t_in, c->flip_sin_to_cos, c->freq_shift,
                                    tsin + (size_t)i * (size_t)u->t_in);
    }
    if (u->t_cond.w != NULL && in->timestep_cond != NULL) {
        linear_images(in->timestep_cond, n, 1, c->time_cond_proj_dim, u->t_cond.w, NULL, u->t_in, tsin, true,
                      u->batched_linears);
    }
    float *t_hidden = temb + (size_t)n * (size_t)u->t_dim;
    linear_images(tsin, n, 1, u->t_in, u->t_lin1.w, u->t_lin1.b, u->t_dim, t_hidden, false, u->batched_linears);
    m2p_nn_silu(t_hidden, (size_t)n * (size_t)u->t_dim);
    linear_images(t_hidden, n, 1, u->t_dim, u->t_lin2.w, u->t_lin2.b, u->t_dim, temb, false, u->batched_linears);
    m2p_nn_silu(temb, (size_t)n * (size_t)u->t_dim); /* every resnet applies SiLU to temb first */
    fctx f = {n,
              temb,
              u->t_dim,
              in->context,
              in->context_n,
              in->context_len,
              c->norm_num_groups,
              u->wino_min_pixels,
              u->batched_linears,
              &wb};

    /* conv_in. */
    cur = falloc((size_t)n * (size_t)ch * (size_t)h * (size_t)w);
    if (cur == NULL) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "activations");
        goto done;
    }
    cur_owned = true;
    if ((rc = conv_run(&u->conv_in, in->sample, n, h, w, 1, u->wino_min_pixels, &wb, cur, err)) != M2P_OK) {
        goto done;
    }
    skips[n_skips++] = (act){cur, ch, h, w};
    cur_owned = false;

    /* Down path: every resnet(+transformer) output and every downsample output is a skip. */
    for (int i = 0; i < nb; i++) {
        const block *b = &u->down[i];
        for (int l = 0; l < b->n_res; l++) {
            if ((rc = layer_run(b, l, &f, cur, h, w, &nxt, err)) != M2P_OK) {
                goto done;
            }
            cur = nxt;
            nxt = NULL;
            ch = b->cout;
            skips[n_skips++] = (act){cur, ch, h, w};
        }
        if (b->sampler.w != NULL) {
            int oh = (h + 2 - 3) / 2 + 1;
            int ow = (w + 2 - 3) / 2 + 1;
            nxt = falloc((size_t)n * (size_t)ch * (size_t)oh * (size_t)ow);
            if (nxt == NULL) {
                rc = m2p_error_set(err, M2P_E_NOMEM, "activations");
                goto done;
            }
            if ((rc = conv_run(&b->sampler, cur, n, h, w, 2, u->wino_min_pixels, &wb, nxt, err)) != M2P_OK) {
                goto done;
            }
            cur = nxt;
            nxt = NULL;
            h = oh;
            w = ow;
            skips[n_skips++] = (act){cur, ch, h, w};
        }
    }
    /* cur belongs to the skip list until the mid block replaces it. */
    if (c->mid_block) {
        const block *b = &u->mid;
        size_t sz = (size_t)n * (size_t)ch * (size_t)h * (size_t)w;
        for (int step = 0; step < 3; step++) {
            nxt = falloc(sz);
            if (nxt == NULL) {
                rc = m2p_error_set(err, M2P_E_NOMEM, "activations");
                goto done;
            }
            if (step == 1) {
                rc = transformer_run(&b->tr[0], &f, cur, h, w, nxt, err);
            } else {
                rc = resnet_run(&b->res[step / 2], &f, cur, h, w, nxt, err);
            }
            if (rc != M2P_OK) {
                goto done;
            }
            if (cur_owned) {
                m2p_free(cur);
            }
            cur = nxt;
            nxt = NULL;
            cur_owned = true;
        }
    }

    /* Up path: concatenate the newest skip on channels before every resnet. */
    for (int i = 0; i < nb; i++) {
        const block *b = &u->up[i];
        for (int l = 0; l < b->n_res; l++) {
            if (n_skips < 1) {
                rc = m2p_error_set(err, M2P_E_INTERNAL, "unet: skip connections exhausted");
                goto done;
            }
            act sk = skips[--n_skips];
            skips[n_skips].d = NULL;
            size_t hw = (size_t)h * (size_t)w;
            if (sk.h != h || sk.w != w) {
                m2p_free(sk.d);
                rc = m2p_error_set(err, M2P_E_INTERNAL, "unet: skip %dx%d vs %dx%d", sk.h, sk.w, h, w);
                goto done;
            }
            int cat_c = ch + sk.c;
            float *cat = falloc((size_t)n * (size_t)cat_c * hw);
            if (cat == NULL) {
                m2p_free(sk.d);
                rc = m2p_error_set(err, M2P_E_NOMEM, "activations");
                goto done;
            }
            for (int j = 0; j < n; j++) {
                memcpy(cat + (size_t)j * (size_t)cat_c * hw, cur + (size_t)j * (size_t)ch * hw,
                       (size_t)ch * hw * sizeof(float));
                memcpy(cat + ((size_t)j * (size_t)cat_c + (size_t)ch) * hw, sk.d + (size_t)j * (size_t)sk.c * hw,
                       (size_t)sk.c * hw * sizeof(float));
            }
            if (!cur_owned && cur == sk.d) {
                cur = NULL;
            }
            m2p_free(sk.d);
            rc = layer_run(b, l, &f, cat, h, w, &nxt, err);
            m2p_free(cat);
            if (rc != M2P_OK) {
                goto done;
            }
            if (cur_owned) {
                m2p_free(cur);
            }
            cur = nxt;
            nxt = NULL;
            cur_owned = true;
            ch = b->cout;
        }
        if (b->sampler.w != NULL) {
            if (n_skips < 1) {
                rc = m2p_error_set(err, M2P_E_INTERNAL, "unet: no skip left for the upsampler size");
                goto done;
            }
            /* Target the size of the next skip: 2× when the sizes divide evenly, else
             * what diffusers passes as upsample_size. */
            int oh = skips[n_skips - 1].h;
            int ow = skips[n_skips - 1].w;
            float *up = falloc((size_t)n * (size_t)ch * (size_t)oh * (size_t)ow);
            nxt = falloc((size_t)n * (size_t)ch * (size_t)oh * (size_t)ow);
            if (up == NULL || nxt == NULL) {
                m2p_free(up);
                rc = m2p_error_set(err, M2P_E_NOMEM, "activations");
                goto done;
            }
            if (oh == 2 * h && ow == 2 * w) {
                m2p_nn_upsample2x(cur, n, ch, h, w, up);
            } else {
                resize_nearest(cur, n, ch, h, w, oh, ow, up);
            }
            rc = conv_run(&b->sampler, up, n, oh, ow, 1, u->wino_min_pixels, &wb, nxt, err);
            m2p_free(up);
            if (rc != M2P_OK) {
                goto done;
            }
            if (cur_owned) {
                m2p_free(cur);
            }
            cur = nxt;
            nxt = NULL;
            cur_owned = true;
            h = oh;
            w = ow;
        }
    }
    if (!cur_owned || n_skips != 0) {
        rc = m2p_error_set(err, M2P_E_INTERNAL, "unet: %d skip connections left over", n_skips);
        goto done;
    }
    m2p_nn_group_norm(cur, n, ch, h * w, c->norm_num_groups, u->norm_out.g, u->norm_out.b, c->norm_eps, true);
    rc = conv_run(&u->conv_out, cur, n, h, w, 1, u->wino_min_pixels, &wb, out, err);
done:
    for (int i = 0; i < n_skips; i++) {
        if (skips[i].d == cur) {
            cur_owned = true; /* free it once, below */
            continue;
        }
        m2p_free(skips[i].d);
    }
    if (cur_owned) {
        m2p_free(cur);
    }
    m2p_free(nxt);
    m2p_free(temb);
    m2p_free(tsin);
    m2p_free(wb.p);
    return rc;
}

/* ---------------------------------------------------------------- cost */

static double conv_macs(const conv *cv, int n, int oh, int ow) {
    return (double)n * cv->cout * (double)oh * ow * cv->cin * cv->k * cv->k;
}

static double resnet_macs(const resnet *r, int n, int h, int w) {
    double m = conv_macs(&r->conv1, n, h, w) + conv_macs(&r->conv2, n, h, w);
    if (r->shortcut.w != NULL) {
        m += conv_macs(&r->shortcut, n, h, w);
    }
    return m;
}

static double transformer_macs(const transformer *t, int n, int h, int w, int tk) {
    double rows = (double)n * h * w;
    double c = t->c;
    double m = 2 * rows * c * c; /* proj in/out */
    for (int l = 0; l < t->n_layers; l++) {
        const tblock *b = &t->blocks[l];
        m += 4 * rows * c * c;                       /* self q k v out */
        m += 2 * rows * (double)h * w * c;            /* self QKᵀ, PV */
        m += 2 * rows * c * c + 2.0 * n * tk * t->cross_dim * c; /* cross q out, k v */
        m += 2 * rows * (double)tk * c;               /* cross QKᵀ, PV */
        m += rows * c * 2 * b->ff_inner + rows * b->ff_inner * c; /* GEGLU FF */
    }
    return m;
}

double m2p_unet_macs(const m2p_unet *u, int n, int h, int w, int context_len) {
    const m2p_unet_config *c = &u->cfg;
    double m = conv_macs(&u->conv_in, n, h, w);
    int hs[M2P_UNET_MAX_BLOCKS + 1];
    int ws[M2P_UNET_MAX_BLOCKS + 1];
    for (int i = 0; i < c->n_blocks; i++) {
        const block *b = &u->down[i];
        hs[i] = h;
        ws[i] = w;
        for (int l = 0; l < b->n_res; l++) {
            m += resnet_macs(&b->res[l], n, h, w);
            if (b->has_attn) {
                m += transformer_macs(&b->tr[l], n, h, w, context_len);
            }
        }
        if (b->sampler.w != NULL) {
            h = (hs[i] - 1) / 2 + 1;
            w = (ws[i] - 1) / 2 + 1;
            m += conv_macs(&b->sampler, n, h, w);
        }
    }
    if (c->mid_block) {
        m += resnet_macs(&u->mid.res[0], n, h, w) + resnet_macs(&u->mid.res[1], n, h, w);
        m += transformer_macs(&u->mid.tr[0], n, h, w, context_len);
    }
    for (int i = 0; i < c->n_blocks; i++) {
        const block *b = &u->up[i];
        for (int l = 0; l < b->n_res; l++) {
            m += resnet_macs(&b->res[l], n, h, w);
            if (b->has_attn) {
                m += transformer_macs(&b->tr[l], n, h, w, context_len);
            }
        }
        if (b->sampler.w != NULL) {
            int r = c->n_blocks - 2 - i;
            h = hs[r];
            w = ws[r];
            m += conv_macs(&b->sampler, n, h, w);
        }
    }
    m += conv_macs(&u->conv_out, n, h, w);
    return m;
}
