/*
 * diffusion/vae.c — AutoencoderKL decoder forward pass (see vae.h).
 *
 * Activations live in three equal buffers X (current), T and Hb (temporaries),
 * each big enough for the largest activation of the decode; a ResNet block
 * computes into T and swaps it with X, so no block allocates. The mid-block
 * attention has its own token buffers (it runs at latent resolution, small).
 * 3×3 convolutions run as Winograd F(2×2, 3×3) (m2p_nn_conv3x3), 1×1 as one
 * sgemm; they share one workspace sized for the largest of them.
 *
 * Invariants: after create every weight pointer is bound and shape-checked;
 * ws is NULL or sized for (ws_h, ws_w), the latent size it was made for.
 */
#include "diffusion/vae.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "diffusion/ops.h"

#define VAE_MAX_RES 9 /* layers_per_block + 1 ≤ 9 */
#define VAE_EPS 1e-6f

typedef struct conv {
    const float *w, *b;
    int cin, cout, k;
} conv;

typedef struct gnorm {
    const float *w, *b;
} gnorm;

typedef struct resnet {
    gnorm n1, n2;
    conv c1, c2, shortcut;
    bool has_shortcut;
    int cin, cout;
} resnet;

typedef struct vattn {
    gnorm gn;
    const float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
} vattn;

struct m2p_nn_vae {
    m2p_nn_vae_config cfg;
    int nb;        /* blocks */
    int nres;      /* ResNets per up block */
    int ch[M2P_NN_MAX_BLOCKS]; /* channels of up block i (reversed block_out_channels) */
    bool has_pq;
    conv post_quant, conv_in, conv_out;
    resnet mid[2];
    bool has_attn;
    vattn attn;
    resnet up[M2P_NN_MAX_BLOCKS][VAE_MAX_RES];
    conv upsample[M2P_NN_MAX_BLOCKS];
    gnorm norm_out;
    /* workspace for one image of latent size ws_h × ws_w */
    int ws_h, ws_w;
    float *x, *t, *hb, *col, *tok, *q, *k, *v, *o, *scores;
    size_t col_floats;
};

typedef struct binder {
    const m2p_nn_model *m;
    m2p_error *err;
    m2p_code rc;
} binder;

static const float *bindt(binder *b, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    if (b->rc != M2P_OK) {
        return NULL;
    }
    int64_t dims[4] = {d0, d1, d2, d3};
    const float *p = NULL;
    b->rc = m2p_nn_model_tensor(b->m, M2P_NN_PART_VAE, name, ndim, dims, &p, b->err);
    return p;
}

static void bind_conv(binder *b, conv *c, const char *prefix, int cin, int cout, int k) {
    char n[200];
    c->cin = cin;
    c->cout = cout;
    c->k = k;
    (void)snprintf(n, sizeof n, "%s.weight", prefix);
    c->w = bindt(b, n, 4, cout, cin, k, k);
    (void)snprintf(n, sizeof n, "%s.bias", prefix);
    c->b = bindt(b, n, 1, cout, 0, 0, 0);
}

static void bind_norm(binder *b, gnorm *g, const char *prefix, int c) {
    char n[200];
    (void)snprintf(n, sizeof n, "%s.weight", prefix);
    g->w = bindt(b, n, 1, c, 0, 0, 0);
    (void)snprintf(n, sizeof n, "%s.bias", prefix);
    g->b = bindt(b, n, 1, c, 0, 0, 0);
}

static void bind_resnet(binder *b, resnet *r, const char *prefix, int cin, int cout) {
    char n[200];
    r->cin = cin;
    r->cout = cout;
    (void)snprintf(n, sizeof n, "%s.norm1", prefix);
    bind_norm(b, &r->n1, n, cin);
    (void)snprintf(n, sizeof n, "%s.conv1", prefix);
    bind_conv(b, &r->c1, n, cin, cout, 3);
    (void)snprintf(n, sizeof n, "%s.norm2", prefix);
    bind_norm(b, &r->n2, n, cout);
    (void)snprintf(n, sizeof n, "%s.conv2", prefix);
    bind_conv(b, &r->c2, n, cout, cout, 3);
    r->has_shortcut = cin != cout;
    if (r->has_shortcut) {
        (void)snprintf(n, sizeof n, "%s.conv_shortcut", prefix);
        bind_conv(b, &r->shortcut, n, cin, cout, 1);
    }
}

/* A [c, c] linear of the attention, under its current name or the legacy one
 * (query/key/value/proj_attn), stored 2-D or as a 1×1 conv. */
static void bind_attn_linear(binder *b, const float **w, const float **bias, const char *name, const char *legacy,
                             int c) {
    if (b->rc != M2P_OK) {
        return;
    }
    const char *use = name;
    char n[200];
    (void)snprintf(n, sizeof n, "decoder.mid_block.attentions.0.%s.weight", name);
    if (!m2p_nn_model_has(b->m, M2P_NN_PART_VAE, n)) {
        use = legacy;
        (void)snprintf(n, sizeof n, "decoder.mid_block.attentions.0.%s.weight", legacy);
    }
    *w = bindt(b, n, 2, c, c, 0, 0);
    if (b->rc == M2P_E_MODEL_SHAPE) {
        b->rc = M2P_OK;
        *w = bindt(b, n, 4, c, c, 1, 1);
    }
    (void)snprintf(n, sizeof n, "decoder.mid_block.attentions.0.%s.bias", use);
    *bias = bindt(b, n, 1, c, 0, 0, 0);
}

m2p_code m2p_nn_vae_create(const m2p_nn_model *m, m2p_nn_vae **out, m2p_error *err) {
    *out = NULL;
    m2p_nn_vae *v = m2p_calloc(1, sizeof *v);
    if (v == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "vae");
    }
    v->cfg = *m2p_nn_model_vae_config(m);
    const m2p_nn_vae_config *c = &v->cfg;
    binder b = {m, err, M2P_OK};
    v->nb = c->n_blocks;
    v->nres = c->layers_per_block + 1;
    if (v->nres > VAE_MAX_RES) {
        b.rc = m2p_error_set(err, M2P_E_MODEL_CONFIG, "vae layers_per_block %d is too large", c->layers_per_block);
    }
    for (int i = 0; i < v->nb; i++) {
        v->ch[i] = c->block_out_channels[v->nb - 1 - i];
    }
    int lat = c->latent_channels, top = v->ch[0];
    v->has_pq = c->use_post_quant_conv;
    if (v->has_pq) {
        bind_conv(&b, &v->post_quant, "post_quant_conv", lat, lat, 1);
    }
    bind_conv(&b, &v->conv_in, "decoder.conv_in", lat, top, 3);
    bind_resnet(&b, &v->mid[0], "decoder.mid_block.resnets.0", top, top);
    bind_resnet(&b, &v->mid[1], "decoder.mid_block.resnets.1", top, top);
    v->has_attn = c->mid_block_add_attention;
    if (v->has_attn) {
        bind_norm(&b, &v->attn.gn, "decoder.mid_block.attentions.0.group_norm", top);
        bind_attn_linear(&b, &v->attn.q_w, &v->attn.q_b, "to_q", "query", top);
        bind_attn_linear(&b, &v->attn.k_w, &v->attn.k_b, "to_k", "key", top);
        bind_attn_linear(&b, &v->attn.v_w, &v->attn.v_b, "to_v", "value", top);
        bind_attn_linear(&b, &v->attn.o_w, &v->attn.o_b, "to_out.0", "proj_attn", top);
    }
    for (int i = 0; i < v->nb && b.rc == M2P_OK; i++) {
        int prev = i == 0 ? v->ch[0] : v->ch[i - 1];
        for (int j = 0; j < v->nres; j++) {
            char n[128];
            (void)snprintf(n, sizeof n, "decoder.up_blocks.%d.resnets.%d", i, j);
            bind_resnet(&b, &v->up[i][j], n, j == 0 ? prev : v->ch[i], v->ch[i]);
        }
        if (i + 1 < v->nb) {
            char n[128];
            (void)snprintf(n, sizeof n, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            bind_conv(&b, &v->upsample[i], n, v->ch[i], v->ch[i], 3);
        }
    }
    int bottom = v->ch[v->nb - 1];
    bind_norm(&b, &v->norm_out, "decoder.conv_norm_out", bottom);
    bind_conv(&b, &v->conv_out, "decoder.conv_out", bottom, c->out_channels, 3);
    if (b.rc != M2P_OK) {
        m2p_nn_vae_free(v);
        return b.rc;
    }
    *out = v;
    return M2P_OK;
}

static void free_ws(m2p_nn_vae *v) {
    m2p_free(v->x);
    m2p_free(v->t);
    m2p_free(v->hb);
    m2p_free(v->col);
    m2p_free(v->tok);
    m2p_free(v->q);
    m2p_free(v->k);
    m2p_free(v->v);
    m2p_free(v->o);
    m2p_free(v->scores);
    v->x = v->t = v->hb = v->col = v->tok = v->q = v->k = v->v = v->o = v->scores = NULL;
    v->ws_h = v->ws_w = 0;
}

void m2p_nn_vae_free(m2p_nn_vae *v) {
    if (v == NULL) {
        return;
    }
    free_ws(v);
    m2p_free(v);
}

int m2p_nn_vae_factor(const m2p_nn_vae *v) {
    return 1 << (v->nb - 1);
}

int m2p_nn_vae_latent_channels(const m2p_nn_vae *v) {
    return v->cfg.latent_channels;
}

static size_t max_sz(size_t a, size_t b) {
    return a > b ? a : b;
}

static size_t conv_ws(const conv *c, int h, int w) {
    if (c->k == 3) {
        return m2p_nn_conv3x3_workspace(c->cin, c->cout, h, w);
    }
    return m2p_nn_conv2d_workspace(c->cin, h, w, c->k, 1, c->k / 2);
}

/* Allocates the workspace for latents of h × w (all sizes fit in size_t: h, w ≤ 512). */
static m2p_code ensure_ws(m2p_nn_vae *v, int h, int w, m2p_error *err) {
    if (v->ws_h == h && v->ws_w == w) {
        return M2P_OK;
    }
    free_ws(v);
    size_t hw = (size_t)h * (size_t)w;
    size_t act = (size_t)v->cfg.latent_channels * hw, col = 0;
    act = max_sz(act, (size_t)v->ch[0] * hw);
    col = max_sz(col, conv_ws(&v->conv_in, h, w));
    col = max_sz(col, conv_ws(&v->mid[0].c1, h, w));
    col = max_sz(col, conv_ws(&v->mid[0].c2, h, w));
    int rh = h, rw = w;
    for (int i = 0; i < v->nb; i++) {
        size_t rhw = (size_t)rh * (size_t)rw;
        int prev = i == 0 ? v->ch[0] : v->ch[i - 1];
        act = max_sz(act, (size_t)max_sz((size_t)prev, (size_t)v->ch[i]) * rhw);
        for (int j = 0; j < v->nres; j++) {
            col = max_sz(col, conv_ws(&v->up[i][j].c1, rh, rw));
            col = max_sz(col, conv_ws(&v->up[i][j].c2, rh, rw));
        }
        if (i + 1 < v->nb) {
            rh *= 2;
            rw *= 2;
            act = max_sz(act, (size_t)v->ch[i] * (size_t)rh * (size_t)rw);
            col = max_sz(col, conv_ws(&v->upsample[i], rh, rw));
        }
    }
    col = max_sz(col, conv_ws(&v->conv_out, rh, rw));
    act = max_sz(act, (size_t)v->cfg.out_channels * (size_t)rh * (size_t)rw);
    size_t tok = v->has_attn ? (size_t)v->ch[0] * hw : 1;
    v->x = m2p_malloc_array(act, sizeof(float));
    v->t = m2p_malloc_array(act, sizeof(float));
    v->hb = m2p_malloc_array(act, sizeof(float));
    v->col = m2p_malloc_array(col == 0 ? 1 : col, sizeof(float));
    v->tok = m2p_malloc_array(tok, sizeof(float));
    v->q = m2p_malloc_array(tok, sizeof(float));
    v->k = m2p_malloc_array(tok, sizeof(float));
    v->v = m2p_malloc_array(tok, sizeof(float));
    v->o = m2p_malloc_array(tok, sizeof(float));
    v->scores = m2p_malloc_array(v->has_attn ? m2p_nn_attention_scratch((int)hw, (int)hw) : 1, sizeof(float));
    v->col_floats = col;
    if (v->x == NULL || v->t == NULL || v->hb == NULL || v->col == NULL || v->tok == NULL || v->q == NULL ||
        v->k == NULL || v->v == NULL || v->o == NULL || v->scores == NULL) {
        free_ws(v);
        return m2p_error_set(err, M2P_E_NOMEM, "vae workspace for %dx%d latents (%zu MB)", h, w,
                             (3 * act + col) * sizeof(float) >> 20);
    }
    v->ws_h = h;
    v->ws_w = w;
    return M2P_OK;
}

/* 3×3 convs (all but the 1×1 ones) go through Winograd F(2×2, 3×3). */
static void run_conv(m2p_nn_vae *v, const conv *c, const float *in, int h, int w, float *out) {
    bool ok;
    if (c->k == 3) {
        ok = m2p_nn_conv3x3_ex(in, 1, c->cin, h, w, c->w, c->b, c->cout, out, v->col, v->col_floats);
    } else {
        ok = m2p_nn_conv2d_ex(in, 1, c->cin, h, w, c->w, c->b, c->cout, c->k, 1, c->k / 2, out, v->col,
                              v->col_floats);
    }
    (void)ok; /* the workspace was sized for every conv of the decode */
}

static void swap(float **a, float **b) {
    float *t = *a;
    *a = *b;
    *b = t;
}

/* x ← resnet(x) at h × w (x, t, hb are the three activation buffers). */
static void run_resnet(m2p_nn_vae *v, const resnet *r, int h, int w, int groups) {
    size_t hw = (size_t)h * (size_t)w;
    memcpy(v->t, v->x, sizeof(float) * (size_t)r->cin * hw);
    m2p_nn_group_norm(v->t, 1, r->cin, (int)hw, groups, r->n1.w, r->n1.b, VAE_EPS, true);
    run_conv(v, &r->c1, v->t, h, w, v->hb);
    m2p_nn_group_norm(v->hb, 1, r->cout, (int)hw, groups, r->n2.w, r->n2.b, VAE_EPS, true);
    run_conv(v, &r->c2, v->hb, h, w, v->t);
    if (r->has_shortcut) {
        run_conv(v, &r->shortcut, v->x, h, w, v->hb);
        m2p_nn_add(v->t, v->hb, (size_t)r->cout * hw);
    } else {
        m2p_nn_add(v->t, v->x, (size_t)r->cout * hw);
    }
    swap(&v->x, &v->t);
}

/* x ← x + attention(group_norm(x)), one head over the h·w positions. */
static void run_attention(m2p_nn_vae *v, int h, int w, int groups) {
    int c = v->ch[0];
    int hw = h * w;
    const vattn *a = &v->attn;
    memcpy(v->t, v->x, sizeof(float) * (size_t)c * (size_t)hw);
    m2p_nn_group_norm(v->t, 1, c, hw, groups, a->gn.w, a->gn.b, VAE_EPS, false);
    m2p_nn_nchw_to_nhwc(v->t, 1, c, hw, v->tok);
    m2p_nn_linear(v->tok, hw, c, a->q_w, a->q_b, c, v->q, false);
    m2p_nn_linear(v->tok, hw, c, a->k_w, a->k_b, c, v->k, false);
    m2p_nn_linear(v->tok, hw, c, a->v_w, a->v_b, c, v->v, false);
    m2p_nn_attention(v->q, c, v->k, c, v->v, c, 1, hw, hw, 1, c, false, v->o, c, v->scores);
    m2p_nn_linear(v->o, hw, c, a->o_w, a->o_b, c, v->tok, false);
    m2p_nn_nhwc_to_nchw(v->tok, 1, c, hw, v->hb);
    m2p_nn_add(v->x, v->hb, (size_t)c * (size_t)hw);
}

/* Decodes one image: lat [C, h, w] → img [3, h·f, w·f]. */
static void decode_one(m2p_nn_vae *v, const float *lat, int h, int w, float *img) {
    const m2p_nn_vae_config *c = &v->cfg;
    int g = c->norm_num_groups;
    size_t n = (size_t)c->latent_channels * (size_t)h * (size_t)w;
    float inv = 1.0f / c->scaling_factor;
    for (size_t i = 0; i < n; i++) {
        v->x[i] = lat[i] * inv + c->shift_factor;
    }
    if (v->has_pq) {
        run_conv(v, &v->post_quant, v->x, h, w, v->t);
        swap(&v->x, &v->t);
    }
    run_conv(v, &v->conv_in, v->x, h, w, v->t);
    swap(&v->x, &v->t);
    run_resnet(v, &v->mid[0], h, w, g);
    if (v->has_attn) {
        run_attention(v, h, w, g);
    }
    run_resnet(v, &v->mid[1], h, w, g);
    int rh = h, rw = w;
    for (int i = 0; i < v->nb; i++) {
        for (int j = 0; j < v->nres; j++) {
            run_resnet(v, &v->up[i][j], rh, rw, g);
        }
        if (i + 1 < v->nb) {
            m2p_nn_upsample2x(v->x, 1, v->ch[i], rh, rw, v->t);
            rh *= 2;
            rw *= 2;
            run_conv(v, &v->upsample[i], v->t, rh, rw, v->x);
        }
    }
    int bottom = v->ch[v->nb - 1];
    m2p_nn_group_norm(v->x, 1, bottom, rh * rw, g, v->norm_out.w, v->norm_out.b, VAE_EPS, true);
    run_conv(v, &v->conv_out, v->x, rh, rw, img);
}

m2p_code m2p_nn_vae_decode(m2p_nn_vae *v, const float *latents, int n, int h, int w, float *out,
                           const m2p_progress *progress, m2p_error *err) {
    if (n < 1 || n > 64 || h < 1 || w < 1 || h > 512 || w > 512) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "vae decode of %d latents of %dx%d", n, h, w);
    }
    m2p_code rc = ensure_ws(v, h, w, err);
    if (rc != M2P_OK) {
        return rc;
    }
    int f = m2p_nn_vae_factor(v);
    size_t in_img = (size_t)v->cfg.latent_channels * (size_t)h * (size_t)w;
    size_t out_img = (size_t)v->cfg.out_channels * (size_t)(h * f) * (size_t)(w * f);
    for (int i = 0; i < n; i++) {
        if (m2p_progress_cancelled(progress)) {
            return m2p_error_set(err, M2P_E_CANCELLED, "during the image decode");
        }
        m2p_progress_report(progress, M2P_STEP_RENDER, i, n, "decoding images");
        decode_one(v, latents + (size_t)i * in_img, h, w, out + (size_t)i * out_img);
    }
    m2p_progress_report(progress, M2P_STEP_RENDER, n, n, "decoded images");
    return M2P_OK;
}

void m2p_nn_vae_to_rgb8(const float *img, int n, int height, int width, unsigned char *rgb) {
    size_t hw = (size_t)height * (size_t)width;
    for (int i = 0; i < n; i++) {
        const float *src = img + (size_t)i * 3 * hw;
        unsigned char *dst = rgb + (size_t)i * 3 * hw;
        for (size_t p = 0; p < hw; p++) {
            for (int c = 0; c < 3; c++) {
                float x = src[(size_t)c * hw + p] * 0.5f + 0.5f;
                x = x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x);
                if (isnan(x)) {
                    x = 0.0f;
                }
                dst[p * 3 + (size_t)c] = (unsigned char)lrintf(x * 255.0f);
            }
        }
    }
}
