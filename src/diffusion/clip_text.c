/*
 * diffusion/clip_text.c — CLIPTextModel forward pass (see clip_text.h).
 *
 * Per layer (pre-LN, as transformers' CLIPEncoderLayer):
 *   x = LN1(h); h += out_proj(attention(q_proj x, k_proj x, v_proj x, causal))
 *   x = LN2(h); h += fc2(act(fc1 x))
 * then last_hidden_state = final_layer_norm(h). Every row of the batch is
 * independent, so the linears run on [batch·seq, hidden] in one sgemm each.
 *
 * Weight names: transformers ≤ 4 saved them under "text_model."; transformers
 * 5 saves them without the prefix. Both are accepted (detected at create).
 *
 * Invariants: every weight pointer is non-NULL and shape-checked after create;
 * ws holds ws_batch × seq rows of every buffer, ws_batch only grows.
 */
#include "diffusion/clip_text.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "diffusion/ops.h"

#define CLIP_MAX_LAYERS 64

typedef struct clip_layer {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    const float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
    const float *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} clip_layer;

struct m2p_nn_clip {
    m2p_nn_clip_config cfg;
    const float *tok_emb, *pos_emb, *final_w, *final_b;
    clip_layer layers[CLIP_MAX_LAYERS];
    /* workspace */
    float *ws;
    int ws_rows; /* rows (batch·seq) the workspace holds */
};

typedef struct binder {
    const m2p_nn_model *m;
    const char *prefix;
    m2p_error *err;
    m2p_code rc;
} binder;

/* Looks up prefix+name with the given shape (2 dims; d1 = 0 means 1-D). */
static const float *bind(binder *b, const char *name, int64_t d0, int64_t d1) {
    if (b->rc != M2P_OK) {
        return NULL;
    }
    char full[256];
    (void)snprintf(full, sizeof full, "%s%s", b->prefix, name);
    int64_t dims[2] = {d0, d1};
    const float *p = NULL;
    b->rc = m2p_nn_model_tensor(b->m, M2P_NN_PART_TEXT, full, d1 > 0 ? 2 : 1, dims, &p, b->err);
    return p;
}

m2p_code m2p_nn_clip_create(const m2p_nn_model *m, m2p_nn_clip **out, m2p_error *err) {
    *out = NULL;
    m2p_nn_clip *c = m2p_calloc(1, sizeof *c);
    if (c == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "text encoder");
    }
    c->cfg = *m2p_nn_model_clip_config(m);
    const m2p_nn_clip_config *k = &c->cfg;
    binder b = {m, "text_model.", err, M2P_OK};
    if (!m2p_nn_model_has(m, M2P_NN_PART_TEXT, "text_model.embeddings.token_embedding.weight")) {
        b.prefix = "";
    }
    if (k->layers > CLIP_MAX_LAYERS) {
        b.rc = m2p_error_set(err, M2P_E_MODEL_CONFIG, "text encoder has %d layers (at most %d)", k->layers,
                             CLIP_MAX_LAYERS);
    }
    int64_t hd = k->hidden, im = k->intermediate;
    c->tok_emb = bind(&b, "embeddings.token_embedding.weight", k->vocab_size, hd);
    c->pos_emb = bind(&b, "embeddings.position_embedding.weight", k->max_positions, hd);
    c->final_w = bind(&b, "final_layer_norm.weight", hd, 0);
    c->final_b = bind(&b, "final_layer_norm.bias", hd, 0);
    for (int i = 0; i < k->layers && b.rc == M2P_OK; i++) {
        clip_layer *L = &c->layers[i];
        char n[128];
#define BIND(field, suffix, d0, d1)                                                   \
    (void)snprintf(n, sizeof n, "encoder.layers.%d.%s", i, suffix);                   \
    L->field = bind(&b, n, d0, d1)
        BIND(ln1_w, "layer_norm1.weight", hd, 0);
        BIND(ln1_b, "layer_norm1.bias", hd, 0);
        BIND(ln2_w, "layer_norm2.weight", hd, 0);
        BIND(ln2_b, "layer_norm2.bias", hd, 0);
        BIND(q_w, "self_attn.q_proj.weight", hd, hd);
        BIND(q_b, "self_attn.q_proj.bias", hd, 0);
        BIND(k_w, "self_attn.k_proj.weight", hd, hd);
        BIND(k_b, "self_attn.k_proj.bias", hd, 0);
        BIND(v_w, "self_attn.v_proj.weight", hd, hd);
        BIND(v_b, "self_attn.v_proj.bias", hd, 0);
        BIND(o_w, "self_attn.out_proj.weight", hd, hd);
        BIND(o_b, "self_attn.out_proj.bias", hd, 0);
        BIND(fc1_w, "mlp.fc1.weight", im, hd);
        BIND(fc1_b, "mlp.fc1.bias", im, 0);
        BIND(fc2_w, "mlp.fc2.weight", hd, im);
        BIND(fc2_b, "mlp.fc2.bias", hd, 0);
#undef BIND
    }
    if (b.rc != M2P_OK) {
        m2p_nn_clip_free(c);
        return b.rc;
    }
    *out = c;
    return M2P_OK;
}

void m2p_nn_clip_free(m2p_nn_clip *c) {
    if (c == NULL) {
        return;
    }
    m2p_free(c->ws);
    m2p_free(c);
}

int m2p_nn_clip_hidden(const m2p_nn_clip *c) {
    return c->cfg.hidden;
}

int m2p_nn_clip_max_len(const m2p_nn_clip *c) {
    return c->cfg.max_positions;
}

/* Floats of workspace for rows token rows: h, x, q, k, v, attn, mlp, scores. */
static bool ws_floats(const m2p_nn_clip_config *k, int rows, int seq, size_t *out) {
    size_t r = (size_t)rows, total = 0, t;
    if (!m2p_size_mul(r, (size_t)k->hidden * 6, &t) || !m2p_size_add(total, t, &total) ||
        !m2p_size_mul(r, (size_t)k->intermediate, &t) || !m2p_size_add(total, t, &total) ||
        !m2p_size_add(total, m2p_nn_attention_scratch(seq, seq), &total)) {
        return false;
    }
    *out = total;
    return true;
}

m2p_code m2p_nn_clip_encode(m2p_nn_clip *c, const int32_t *ids, int batch, int seq, float *out, m2p_error *err) {
    const m2p_nn_clip_config *k = &c->cfg;
    if (batch < 1 || batch > M2P_NN_CLIP_MAX_BATCH || seq < 1 || seq > k->max_positions) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "text encoder: batch %d × %d tokens (at most %d × %d)", batch,
                             seq, M2P_NN_CLIP_MAX_BATCH, k->max_positions);
    }
    for (int i = 0; i < batch * seq; i++) {
        if (ids[i] < 0 || ids[i] >= k->vocab_size) {
            return m2p_error_set(err, M2P_E_INVALID_ARG, "token id %d at %d is outside the vocabulary (%d)",
                                 (int)ids[i], i, k->vocab_size);
        }
    }
    int rows = batch * seq;
    /* Sized for max_positions so that any seq fits once rows fit. */
    if (rows > c->ws_rows) {
        size_t n;
        if (!ws_floats(k, rows, k->max_positions, &n)) {
            return m2p_error_set(err, M2P_E_NOMEM, "text encoder workspace");
        }
        float *ws = m2p_malloc_array(n, sizeof(float));
        if (ws == NULL) {
            return m2p_error_set(err, M2P_E_NOMEM, "text encoder workspace of %zu MB", n * sizeof(float) >> 20);
        }
        m2p_free(c->ws);
        c->ws = ws;
        c->ws_rows = rows;
    }
    size_t hs = (size_t)rows * (size_t)k->hidden;
    float *h = c->ws, *x = h + hs, *q = x + hs, *kk = q + hs, *v = kk + hs, *att = v + hs;
    float *mlp = att + hs, *scores = mlp + (size_t)rows * (size_t)k->intermediate;
    int H = k->hidden;
    for (int b = 0; b < batch; b++) {
        for (int t = 0; t < seq; t++) {
            const float *te = c->tok_emb + (size_t)ids[b * seq + t] * (size_t)H;
            const float *pe = c->pos_emb + (size_t)t * (size_t)H;
            float *dst = h + ((size_t)b * (size_t)seq + (size_t)t) * (size_t)H;
            for (int j = 0; j < H; j++) {
                dst[j] = te[j] + pe[j];
            }
        }
    }
    int heads = k->heads, dh = H / heads;
    for (int l = 0; l < k->layers; l++) {
        const clip_layer *L = &c->layers[l];
        m2p_nn_layer_norm(h, rows, H, L->ln1_w, L->ln1_b, k->layer_norm_eps, x);
        m2p_nn_linear(x, rows, H, L->q_w, L->q_b, H, q, false);
        m2p_nn_linear(x, rows, H, L->k_w, L->k_b, H, kk, false);
        m2p_nn_linear(x, rows, H, L->v_w, L->v_b, H, v, false);
        m2p_nn_attention(q, H, kk, H, v, H, batch, seq, seq, heads, dh, true, att, H, scores);
        m2p_nn_linear(att, rows, H, L->o_w, L->o_b, H, h, true); /* residual: h += out_proj(att) */
        m2p_nn_layer_norm(h, rows, H, L->ln2_w, L->ln2_b, k->layer_norm_eps, x);
        m2p_nn_linear(x, rows, H, L->fc1_w, L->fc1_b, k->intermediate, mlp, false);
        if (k->quick_gelu) {
            m2p_nn_quick_gelu(mlp, (size_t)rows * (size_t)k->intermediate);
        } else {
            m2p_nn_gelu(mlp, (size_t)rows * (size_t)k->intermediate);
        }
        m2p_nn_linear(mlp, rows, k->intermediate, L->fc2_w, L->fc2_b, H, h, true);
    }
    m2p_nn_layer_norm(h, rows, H, c->final_w, c->final_b, k->layer_norm_eps, out);
    return M2P_OK;
}
