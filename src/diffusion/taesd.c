/*
 * diffusion/taesd.c — the TAESD decoder (diffusers' DecoderTiny), see taesd.h.
 *
 * Invariants of an open m2p_taesd: every conv of the decoder is bound to fp32
 * data of the checked shape (owned copies in `owned`, or zero-copy views of
 * the mapped file, which stays open in `st`); stage channels are all equal
 * (DecoderTiny feeds stage i's output straight into stage i+1's blocks).
 * Activations move between three buffers x, t, u sized for the largest
 * resolution of the decode; the 3×3 convs run as im2col + sgemm in strips of
 * rows (m2p_nn_conv2d_ex) through one shared workspace of ~9 MB.
 */
#include "diffusion/taesd.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/fs.h"
#include "diffusion/json_config.h"
#include "diffusion/ops.h"
#include "diffusion/safetensors.h"

#define TAESD_CONFIG_MAX_BYTES ((size_t)1 << 20)
#define TAESD_MAX_CHANNELS 4096
#define TAESD_STRIP_FLOATS ((size_t)9 * 64 * 512 * 8)
#define TAESD_MAX_BOUND (1 + M2P_TAESD_MAX_STAGES * (M2P_TAESD_MAX_BLOCKS * 3 + 1))

static const char *const k_weight_files[2] = {"diffusion_pytorch_model.safetensors",
                                              "diffusion_pytorch_model.fp16.safetensors"};

typedef struct tconv {
    const float *w, *b; /* b NULL: no bias */
    int cin, cout;
} tconv;

typedef struct tblock {
    tconv c[3];
} tblock;

struct m2p_taesd {
    m2p_taesd_config cfg;
    m2p_nn_st *st;
    char file[M2P_PATH_MAX + 64];
    float *owned[2 * TAESD_MAX_BOUND];
    int n_owned;
    size_t params;
    tconv conv_in;
    tblock blocks[M2P_TAESD_MAX_STAGES][M2P_TAESD_MAX_BLOCKS];
    tconv stage_out[M2P_TAESD_MAX_STAGES]; /* after the upsample; the last one is conv_out */
    /* workspace for latents of ws_h × ws_w */
    int ws_h, ws_w;
    float *x, *t, *u, *ws;
    size_t ws_floats;
};

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
    return m2p_error_set(err, M2P_E_TAESD_MISSING,
                         "%s is missing; run `mus2pic model pull madebyollin/taesd` or set MUS2PIC_TAESD to a TAESD "
                         "folder (config.json + diffusion_pytorch_model.safetensors)",
                         path);
}

/* The weight file of the folder (plain, then fp16); false when neither exists. */
static bool weight_file(const char *dir, char *buf, size_t cap) {
    for (int i = 0; i < 2; i++) {
        (void)snprintf(buf, cap, "%s/%s", dir, k_weight_files[i]);
        if (is_file(buf, NULL)) {
            return true;
        }
    }
    (void)snprintf(buf, cap, "%s/%s", dir, k_weight_files[0]);
    return false;
}

/* --- config.json --------------------------------------------------------------------------------- */

/* A string field that must equal want when present. */
static void tstr_is(m2p_nn_json *c, const char *key, const char *want, const char *what) {
    const json_t *v = json_object_get(c->root, key);
    if (v == NULL || json_is_null(v)) {
        return;
    }
    if (!json_is_string(v) || strcmp(json_string_value(v), want) != 0) {
        m2p_nn_json_fail(c, key, what);
    }
}

/* A list of 1..M2P_TAESD_MAX_STAGES ints in [lo, hi]; absent → def (n_def values). Returns the count. */
static int tints(m2p_nn_json *c, const char *key, int *out, const int *def, int n_def, int lo, int hi) {
    const json_t *v = json_object_get(c->root, key);
    if (v == NULL || json_is_null(v)) {
        memcpy(out, def, sizeof(int) * (size_t)n_def);
        return n_def;
    }
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > M2P_TAESD_MAX_STAGES) {
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

static m2p_code parse_config(const char *dir, m2p_taesd_config *cfg, m2p_error *err) {
    char path[M2P_PATH_MAX + 32];
    (void)snprintf(path, sizeof path, "%s/config.json", dir);
    if (!is_file(path, NULL)) {
        return missing(err, path);
    }
    char *text = NULL;
    size_t len = 0;
    m2p_code rc = m2p_fs_read_file(path, TAESD_CONFIG_MAX_BYTES, &text, &len, err);
    if (rc != M2P_OK) {
        return rc == M2P_E_TOO_LARGE ? m2p_error_set(err, M2P_E_TAESD_CONFIG, "%s is larger than 1 MB", path) : rc;
    }
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    m2p_free(text);
    if (root == NULL) {
        return m2p_error_set(err, M2P_E_TAESD_CONFIG, "%s: %s (line %d)", path, jerr.text, jerr.line);
    }
    m2p_nn_json c = {root, path, err, M2P_E_TAESD_CONFIG, M2P_OK};
    memset(cfg, 0, sizeof *cfg);
    if (!json_is_object(root)) {
        m2p_nn_json_fail(&c, "(top level)", "is not a JSON object");
    }
    tstr_is(&c, "_class_name", "AutoencoderTiny", "is not AutoencoderTiny (a TAESD folder is expected)");
    tstr_is(&c, "act_fn", "relu", "must be relu (TAESD)");
    tstr_is(&c, "upsample_fn", "nearest", "must be nearest (TAESD)");
    (void)m2p_nn_json_int(&c, "upsampling_scaling_factor", 2, 2, 2);
    cfg->latent_channels = m2p_nn_json_int(&c, "latent_channels", 4, 1, 64);
    cfg->out_channels = m2p_nn_json_int(&c, "out_channels", 3, 1, 64);
    static const int def_ch[4] = {64, 64, 64, 64};
    static const int def_blocks[4] = {3, 3, 3, 1};
    int nc = tints(&c, "decoder_block_out_channels", cfg->channels, def_ch, 4, 1, TAESD_MAX_CHANNELS);
    int nb = tints(&c, "num_decoder_blocks", cfg->blocks, def_blocks, 4, 0, M2P_TAESD_MAX_BLOCKS);
    cfg->scaling_factor = (float)m2p_nn_json_num(&c, "scaling_factor", 1.0, 1e-6, 1e6);
    cfg->shift_factor = (float)m2p_nn_json_num(&c, "shift_factor", 0.0, -1e6, 1e6);
    if (c.rc == M2P_OK && nc != nb) {
        m2p_nn_json_fail(&c, "num_decoder_blocks", "must have as many entries as decoder_block_out_channels");
    }
    for (int i = 1; c.rc == M2P_OK && i < nc; i++) {
        if (cfg->channels[i] != cfg->channels[0]) {
            m2p_nn_json_fail(&c, "decoder_block_out_channels", "must all be equal (AutoencoderTiny's decoder chains the stages)");
        }
    }
    cfg->n_stages = nc;
    json_decref(root);
    return c.rc;
}

/* --- weights ------------------------------------------------------------------------------------- */

typedef struct tbinder {
    m2p_taesd *t;
    m2p_error *err;
    m2p_code rc;
} tbinder;

/* Binds tensor name with shape dims[0..ndim) as fp32 (view or owned copy). */
static const float *tbind(tbinder *b, const char *name, int ndim, const int64_t *dims) {
    if (b->rc != M2P_OK) {
        return NULL;
    }
    m2p_taesd *t = b->t;
    const m2p_nn_st_tensor *ten = m2p_nn_st_find(t->st, name);
    if (ten == NULL) {
        b->rc = m2p_error_set(b->err, M2P_E_MODEL_TENSOR_MISSING, "%s has no tensor '%.120s' (is it a TAESD model?)",
                              t->file, name);
        return NULL;
    }
    if (ten->dtype != M2P_NN_F32 && ten->dtype != M2P_NN_F16 && ten->dtype != M2P_NN_BF16) {
        b->rc = m2p_error_set(b->err, M2P_E_MODEL_DTYPE, "%s: tensor '%.120s' is %s, not a float type", t->file, name,
                              m2p_nn_dtype_name(ten->dtype));
        return NULL;
    }
    bool ok = ten->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) {
        ok = ten->shape[i] == dims[i];
    }
    if (!ok) {
        char want[96] = "", got[96] = "";
        size_t wl = 0, gl = 0;
        for (int i = 0; i < ndim && wl < sizeof want - 24; i++) {
            wl += (size_t)snprintf(want + wl, sizeof want - wl, "%s%lld", i ? "," : "", (long long)dims[i]);
        }
        for (int i = 0; i < ten->ndim && gl < sizeof got - 24; i++) {
            gl += (size_t)snprintf(got + gl, sizeof got - gl, "%s%lld", i ? "," : "", (long long)ten->shape[i]);
        }
        b->rc = m2p_error_set(b->err, M2P_E_MODEL_SHAPE, "%s: tensor '%.120s' has shape [%s], the config needs [%s]",
                              t->file, name, got, want);
        return NULL;
    }
    t->params += ten->numel;
    const float *view = m2p_nn_st_f32_view(ten);
    if (view != NULL) {
        return view;
    }
    if (t->n_owned >= (int)(sizeof t->owned / sizeof t->owned[0])) {
        b->rc = m2p_error_set(b->err, M2P_E_INTERNAL, "taesd: too many tensors");
        return NULL;
    }
    float *copy = m2p_malloc_array(ten->numel, sizeof(float));
    if (copy == NULL) {
        b->rc = m2p_error_set(b->err, M2P_E_NOMEM, "taesd weights");
        return NULL;
    }
    t->owned[t->n_owned++] = copy;
    b->rc = m2p_nn_st_read_f32(ten, copy, ten->numel, b->err);
    return b->rc == M2P_OK ? copy : NULL;
}

static void bind_conv(tbinder *b, tconv *c, const char *prefix, int cin, int cout, bool bias) {
    char n[160];
    c->cin = cin;
    c->cout = cout;
    int64_t wd[4] = {cout, cin, 3, 3};
    (void)snprintf(n, sizeof n, "%s.weight", prefix);
    c->w = tbind(b, n, 4, wd);
    c->b = NULL;
    if (bias) {
        int64_t bd[1] = {cout};
        (void)snprintf(n, sizeof n, "%s.bias", prefix);
        c->b = tbind(b, n, 1, bd);
    } else if (b->rc == M2P_OK) {
        (void)snprintf(n, sizeof n, "%s.bias", prefix);
        if (m2p_nn_st_find(b->t->st, n) != NULL) {
            b->rc = m2p_error_set(b->err, M2P_E_MODEL_SHAPE,
                                  "%s: tensor '%.120s' exists but AutoencoderTiny has no bias there (config mismatch?)",
                                  b->t->file, n);
        }
    }
}

m2p_code m2p_taesd_open(const char *dir, m2p_taesd **out, m2p_error *err) {
    *out = NULL;
    if (dir == NULL || dir[0] == '\0' || strlen(dir) >= M2P_PATH_MAX) {
        return m2p_error_set(err, M2P_E_TAESD_MISSING, "no TAESD folder given");
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        return m2p_error_set(err, M2P_E_TAESD_MISSING,
                             "no TAESD folder at %s; run `mus2pic model pull madebyollin/taesd` or set MUS2PIC_TAESD to a "
                             "TAESD folder",
                             dir);
    }
    m2p_taesd *t = m2p_calloc(1, sizeof *t);
    if (t == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "taesd");
    }
    m2p_code rc = parse_config(dir, &t->cfg, err);
    if (rc == M2P_OK && !weight_file(dir, t->file, sizeof t->file)) {
        char bin[M2P_PATH_MAX + 64];
        (void)snprintf(bin, sizeof bin, "%s/diffusion_pytorch_model.bin", dir);
        rc = is_file(bin, NULL) ? m2p_error_set(err, M2P_E_MODEL_INVALID,
                                                "%s: only pickle (.bin) weights found; Mus2Pic loads safetensors only",
                                                bin)
                                : missing(err, t->file);
    }
    if (rc == M2P_OK) {
        rc = m2p_nn_st_open(t->file, &t->st, err);
    }
    if (rc != M2P_OK) {
        m2p_taesd_free(t);
        return rc;
    }
    const m2p_taesd_config *c = &t->cfg;
    tbinder b = {t, err, M2P_OK};
    int ch = c->channels[0];
    /* nn.Sequential indices: 0 conv, 1 ReLU, then per stage: blocks, [Upsample], conv. */
    int k = 0;
    char n[96];
    (void)snprintf(n, sizeof n, "decoder.layers.%d", k);
    bind_conv(&b, &t->conv_in, n, c->latent_channels, ch, true);
    k += 2;
    for (int i = 0; i < c->n_stages; i++) {
        bool last = i + 1 == c->n_stages;
        for (int j = 0; j < c->blocks[i]; j++, k++) {
            for (int q = 0; q < 3; q++) {
                (void)snprintf(n, sizeof n, "decoder.layers.%d.conv.%d", k, 2 * q);
                bind_conv(&b, &t->blocks[i][j].c[q], n, ch, ch, true);
            }
        }
        if (!last) {
            k++; /* the Upsample module */
        }
        (void)snprintf(n, sizeof n, "decoder.layers.%d", k);
        bind_conv(&b, &t->stage_out[i], n, ch, last ? c->out_channels : ch, last);
        k++;
    }
    if (b.rc != M2P_OK) {
        m2p_taesd_free(t);
        return b.rc;
    }
    *out = t;
    return M2P_OK;
}

static void free_ws(m2p_taesd *t) {
    m2p_free(t->x);
    m2p_free(t->t);
    m2p_free(t->u);
    m2p_free(t->ws);
    t->x = t->t = t->u = t->ws = NULL;
    t->ws_h = t->ws_w = 0;
    t->ws_floats = 0;
}

void m2p_taesd_free(m2p_taesd *t) {
    if (t == NULL) {
        return;
    }
    free_ws(t);
    for (int i = 0; i < t->n_owned; i++) {
        m2p_free(t->owned[i]);
    }
    m2p_nn_st_close(t->st);
    m2p_free(t);
}

const m2p_taesd_config *m2p_taesd_get_config(const m2p_taesd *t) {
    return &t->cfg;
}

int m2p_taesd_factor(const m2p_taesd *t) {
    return 1 << (t->cfg.n_stages - 1);
}

int m2p_taesd_latent_channels(const m2p_taesd *t) {
    return t->cfg.latent_channels;
}

size_t m2p_taesd_param_count(const m2p_taesd *t) {
    return t->params;
}

/* --- forward ------------------------------------------------------------------------------------- */

/* Rows of one im2col strip: about TAESD_STRIP_FLOATS floats (9.4 MB), so the strip and its sgemm
 * stay cache-friendly. At 64 channels this beat Winograd F(2×2, 3×3) (m2p_nn_conv3x3), whose
 * transformed tiles cost more memory traffic than the multiplies it saves at this width:
 * 2.3 vs 3.2 CPU-s for a 512² decode, measured in one process, alternating (docs/notes/nn-taesd.md). */
static int strip_rows(int cin, int h, int w) {
    size_t per_row = (size_t)9 * (size_t)cin * (size_t)w;
    size_t rows = TAESD_STRIP_FLOATS / per_row;
    if (rows < 1) {
        rows = 1;
    }
    return rows > (size_t)h ? h : (int)rows;
}

static size_t conv_ws(int cin, int h, int w) {
    return (size_t)9 * (size_t)cin * (size_t)w * (size_t)strip_rows(cin, h, w);
}

static void conv(m2p_taesd *t, const tconv *c, const float *in, int h, int w, float *out) {
    bool ok = m2p_nn_conv2d_ex(in, 1, c->cin, h, w, c->w, c->b, c->cout, 3, 1, 1, out, t->ws, conv_ws(c->cin, h, w));
    (void)ok; /* the workspace was sized for every conv of the decode */
}

static size_t max_sz(size_t a, size_t b) {
    return a > b ? a : b;
}

static m2p_code ensure_ws(m2p_taesd *t, int h, int w, m2p_error *err) {
    if (t->ws_h == h && t->ws_w == w) {
        return M2P_OK;
    }
    free_ws(t);
    const m2p_taesd_config *c = &t->cfg;
    int ch = c->channels[0];
    int f = m2p_taesd_factor(t);
    size_t big = (size_t)(h * f) * (size_t)(w * f);
    size_t act = max_sz((size_t)ch, (size_t)c->out_channels) * big;
    act = max_sz(act, (size_t)c->latent_channels * (size_t)h * (size_t)w);
    size_t ws = conv_ws(c->latent_channels, h, w);
    int rh = h, rw = w;
    for (int i = 0; i < c->n_stages; i++) {
        ws = max_sz(ws, conv_ws(ch, rh, rw));
        if (i + 1 < c->n_stages) {
            rh *= 2;
            rw *= 2;
            ws = max_sz(ws, conv_ws(ch, rh, rw));
        }
    }
    t->x = m2p_malloc_array(act, sizeof(float));
    t->t = m2p_malloc_array(act, sizeof(float));
    t->u = m2p_malloc_array(act, sizeof(float));
    t->ws = m2p_malloc_array(ws, sizeof(float));
    if (t->x == NULL || t->t == NULL || t->u == NULL || t->ws == NULL) {
        free_ws(t);
        return m2p_error_set(err, M2P_E_NOMEM, "taesd workspace for %dx%d latents (%zu MB)", h, w,
                             (3 * act + ws) * sizeof(float) >> 20);
    }
    t->ws_floats = ws;
    t->ws_h = h;
    t->ws_w = w;
    return M2P_OK;
}

static void relu(float *x, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        x[i] = x[i] > 0.0f ? x[i] : 0.0f;
    }
}

/* x = relu(x + y). */
static void add_relu(float *x, const float *y, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float v = x[i] + y[i];
        x[i] = v > 0.0f ? v : 0.0f;
    }
}

/* lat [C, h, w] → img [3, h·f, w·f]. */
static void decode_one(m2p_taesd *t, const float *lat, int h, int w, float *img) {
    const m2p_taesd_config *c = &t->cfg;
    int ch = c->channels[0];
    size_t n = (size_t)c->latent_channels * (size_t)h * (size_t)w;
    float inv = 1.0f / c->scaling_factor;
    for (size_t i = 0; i < n; i++) {
        t->u[i] = tanhf((lat[i] * inv + c->shift_factor) / 3.0f) * 3.0f;
    }
    conv(t, &t->conv_in, t->u, h, w, t->x);
    int rh = h, rw = w;
    relu(t->x, (size_t)ch * (size_t)rh * (size_t)rw);
    for (int i = 0; i < c->n_stages; i++) {
        size_t cnt = (size_t)ch * (size_t)rh * (size_t)rw;
        for (int j = 0; j < c->blocks[i]; j++) {
            const tblock *bl = &t->blocks[i][j];
            conv(t, &bl->c[0], t->x, rh, rw, t->t);
            relu(t->t, cnt);
            conv(t, &bl->c[1], t->t, rh, rw, t->u);
            relu(t->u, cnt);
            conv(t, &bl->c[2], t->u, rh, rw, t->t);
            add_relu(t->x, t->t, cnt);
        }
        if (i + 1 < c->n_stages) {
            m2p_nn_upsample2x(t->x, 1, ch, rh, rw, t->t);
            rh *= 2;
            rw *= 2;
            conv(t, &t->stage_out[i], t->t, rh, rw, t->x);
        } else {
            conv(t, &t->stage_out[i], t->x, rh, rw, img);
        }
    }
    size_t out_n = (size_t)c->out_channels * (size_t)rh * (size_t)rw;
    for (size_t i = 0; i < out_n; i++) {
        img[i] = img[i] * 2.0f - 1.0f;
    }
}

m2p_code m2p_taesd_decode(m2p_taesd *t, const float *latents, int n, int h, int w, float *out,
                          const m2p_progress *progress, m2p_error *err) {
    if (n < 1 || n > 64 || h < 1 || w < 1 || h > 512 || w > 512) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "taesd decode of %d latents of %dx%d", n, h, w);
    }
    m2p_code rc = ensure_ws(t, h, w, err);
    if (rc != M2P_OK) {
        return rc;
    }
    int f = m2p_taesd_factor(t);
    size_t in_img = (size_t)t->cfg.latent_channels * (size_t)h * (size_t)w;
    size_t out_img = (size_t)t->cfg.out_channels * (size_t)(h * f) * (size_t)(w * f);
    for (int i = 0; i < n; i++) {
        if (m2p_progress_cancelled(progress)) {
            return m2p_error_set(err, M2P_E_CANCELLED, "during the image decode");
        }
        m2p_progress_report(progress, M2P_STEP_RENDER, i, n, "decoding images (taesd)");
        decode_one(t, latents + (size_t)i * in_img, h, w, out + (size_t)i * out_img);
    }
    m2p_progress_report(progress, M2P_STEP_RENDER, n, n, "decoded images (taesd)");
    return M2P_OK;
}

/* 2×2 average pooling of one latent [c, h, w] into [c, (h+1)/2, (w+1)/2]; an odd last row or
 * column is averaged with itself (replicate padding). */
static void pool2(const float *in, int c, int h, int w, float *out) {
    int ph = (h + 1) / 2;
    int pw = (w + 1) / 2;
    for (int ch = 0; ch < c; ch++) {
        const float *src = in + (size_t)ch * (size_t)h * (size_t)w;
        float *dst = out + (size_t)ch * (size_t)ph * (size_t)pw;
        for (int y = 0; y < ph; y++) {
            const float *r0 = src + (size_t)(2 * y) * (size_t)w;
            const float *r1 = 2 * y + 1 < h ? r0 + w : r0;
            for (int x = 0; x < pw; x++) {
                int x0 = 2 * x;
                int x1 = x0 + 1 < w ? x0 + 1 : x0;
                dst[(size_t)y * (size_t)pw + (size_t)x] = 0.25f * ((r0[x0] + r0[x1]) + (r1[x0] + r1[x1]));
            }
        }
    }
}

m2p_code m2p_taesd_decode_half(m2p_taesd *t, const float *latent, int h, int w, float *out, int *out_h, int *out_w,
                               m2p_error *err) {
    if (h < 1 || w < 1 || h > 512 || w > 512) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "taesd half decode of a %dx%d latent", h, w);
    }
    int c = t->cfg.latent_channels;
    int ph = (h + 1) / 2;
    int pw = (w + 1) / 2;
    float *pooled = m2p_malloc_array((size_t)c * (size_t)ph * (size_t)pw, sizeof(float));
    if (pooled == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "pooled %dx%d latent for a preview decode", ph, pw);
    }
    pool2(latent, c, h, w, pooled);
    m2p_code rc = m2p_taesd_decode(t, pooled, 1, ph, pw, out, NULL, err);
    m2p_free(pooled);
    if (rc != M2P_OK) {
        return rc;
    }
    /* Crop [3, ph·f, pw·f] to [3, oh, ow] in place (every row moves to an index ≤ its own). */
    int f = m2p_taesd_factor(t);
    int dh = ph * f;
    int dw = pw * f;
    int oh = (h * f + 1) / 2;
    int ow = (w * f + 1) / 2;
    if (oh != dh || ow != dw) {
        for (int ch = 0; ch < t->cfg.out_channels; ch++) {
            for (int y = 0; y < oh; y++) {
                memmove(out + ((size_t)ch * (size_t)oh + (size_t)y) * (size_t)ow,
                        out + ((size_t)ch * (size_t)dh + (size_t)y) * (size_t)dw, (size_t)ow * sizeof(float));
            }
        }
    }
    *out_h = oh;
    *out_w = ow;
    return M2P_OK;
}

/* --- the folder on disk -------------------------------------------------------------------------- */

static bool is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

const char *m2p_taesd_dir_for(const m2p_config *cfg, char *buf, size_t cap) {
    int n;
    if (cfg->taesd[0] != '\0') {
        n = snprintf(buf, cap, "%s", cfg->taesd);
    } else {
        char model[M2P_PATH_MAX];
        int m = cfg->model[0] != '\0' ? snprintf(model, sizeof model, "%s", cfg->model)
                                      : snprintf(model, sizeof model, "%s/models/%s", cfg->data_dir, cfg->model_id);
        char inside[M2P_PATH_MAX + 8];
        if (m > 0 && (size_t)m < sizeof model && snprintf(inside, sizeof inside, "%s/taesd", model) > 0 &&
            is_dir(inside)) {
            n = snprintf(buf, cap, "%s", inside);
        } else {
            n = snprintf(buf, cap, "%s/models/madebyollin/taesd", cfg->data_dir);
        }
    }
    if (n < 0 || (size_t)n >= cap) {
        buf[0] = '\0'; /* never hand out a truncated path */
    }
    return buf;
}

m2p_code m2p_taesd_check(const char *dir, m2p_error *err) {
    if (dir == NULL || dir[0] == '\0' || !is_dir(dir)) {
        return m2p_error_set(err, M2P_E_TAESD_MISSING,
                             "no TAESD folder at %s; run `mus2pic model pull madebyollin/taesd` or set MUS2PIC_TAESD to a "
                             "TAESD folder",
                             dir != NULL ? dir : "(none)");
    }
    char path[M2P_PATH_MAX + 64];
    (void)snprintf(path, sizeof path, "%s/config.json", dir);
    if (!is_file(path, NULL)) {
        return missing(err, path);
    }
    if (!weight_file(dir, path, sizeof path)) {
        return missing(err, path);
    }
    return M2P_OK;
}

m2p_code m2p_taesd_describe(const m2p_config *cfg, char *buf, size_t cap) {
    if (cap == 0) {
        return M2P_E_INVALID_ARG;
    }
    buf[0] = '\0';
    char dir[M2P_PATH_MAX];
    (void)m2p_taesd_dir_for(cfg, dir, sizeof dir);
    m2p_error err;
    m2p_error_clear(&err);
    m2p_code rc = m2p_taesd_check(dir, &err);
    if (rc != M2P_OK) {
        (void)snprintf(buf, cap,
                       "taesd: not installed (looked in %s); for decoder=taesd run `mus2pic model pull "
                       "madebyollin/taesd` or set MUS2PIC_TAESD\n",
                       dir);
        return rc;
    }
    m2p_taesd *t = NULL;
    rc = m2p_taesd_open(dir, &t, &err);
    if (rc != M2P_OK) {
        (void)snprintf(buf, cap, "taesd: %s: damaged: %s\n", dir, err.detail);
        return rc;
    }
    int64_t size = 0;
    (void)is_file(t->file, &size);
    const char *slash = strrchr(t->file, '/');
    (void)snprintf(buf, cap, "taesd: %s%s (%s, %.1f MB), decoder %.2f M parameters, %d stages of %d channels, ×%d\n",
                   dir, cfg->taesd[0] != '\0' ? " (MUS2PIC_TAESD)" : "", slash != NULL ? slash + 1 : t->file,
                   (double)size / 1e6, (double)t->params / 1e6, t->cfg.n_stages, t->cfg.channels[0],
                   m2p_taesd_factor(t));
    m2p_taesd_free(t);
    return M2P_OK;
}

m2p_code m2p_taesd_parse_decoder(const char *s, m2p_taesd_use *out, m2p_error *err) {
    if (s == NULL || s[0] == '\0' || strcmp(s, "vae") == 0) {
        *out = M2P_DECODER_VAE;
    } else if (strcmp(s, "taesd") == 0) {
        *out = M2P_DECODER_TAESD;
    } else if (strcmp(s, "auto") == 0) {
        *out = M2P_DECODER_AUTO;
    } else {
        return m2p_error_set(err, M2P_E_CONFIG, "decoder '%.40s': use vae, taesd or auto", s);
    }
    return M2P_OK;
}
