/*
 * tests/unit/diffusion/test_nn_taesd.c — the TAESD decoder (diffusers'
 * AutoencoderTiny) on a tiny random model (tests/fixtures/nn/tiny-lcm/taesd:
 * 3 stages of 12 channels with 2, 2, 1 blocks, ×4 upsampling, fp16 weights)
 * against diffusers' decode(latents / scaling_factor) for non-square latents
 * [2, 4, 6, 10] wide enough that the tanh clamp matters
 * (tests/fixtures/nn/ref/taesd.safetensors, from tools/nn/make_fixtures.py taesd).
 *
 * Bound: max |ours − diffusers| ≤ 1e-4 · max(1, max |ref|) (fp32 both sides,
 * Winograd rounding on ours). Also: malformed folders give specific errors,
 * where the folder is looked for, the `decoder` setting, allocation failures,
 * the half-size preview decode (m2p_taesd_decode_half), and the pipeline side: draft decoding
 * and per-step previews (half size, odd latents, final pixels unchanged) on the tiny LCM.
 */
#include "test_util.h"

#include <math.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/config.h"
#include "core/fs.h"
#include "diffusion/safetensors.h"
#include "diffusion/sd_pipeline.h"
#include "diffusion/taesd.h"
#include "diffusion/vae.h"

static const char *fixture_dir(char *buf, size_t cap) {
    (void)snprintf(buf, cap, "%s/tests/fixtures/nn/tiny-lcm/taesd", m2p_test_source_dir());
    return buf;
}

static void test_taesd_matches_diffusers(void **state) {
    (void)state;
    char dir[1024], refp[1024];
    fixture_dir(dir, sizeof dir);
    (void)snprintf(refp, sizeof refp, "%s/tests/fixtures/nn/ref/taesd.safetensors", m2p_test_source_dir());
    m2p_error err;
    m2p_taesd *t = NULL;
    if (m2p_taesd_open(dir, &t, &err) != M2P_OK) {
        fail_msg("open: %s", err.detail);
    }
    assert_int_equal(m2p_taesd_factor(t), 4);
    assert_int_equal(m2p_taesd_latent_channels(t), 4);
    const m2p_taesd_config *c = m2p_taesd_get_config(t);
    assert_int_equal(c->n_stages, 3);
    assert_int_equal(c->blocks[0], 2);
    assert_int_equal(c->channels[2], 12);
    /* conv_in 4·12·9+12, 5 blocks × 3 × (12·12·9+12), 2 × 12·12·9, 12·3·9+3 */
    assert_int_equal(m2p_taesd_param_count(t), 444 + 5 * 3 * 1308 + 2 * 1296 + 327);

    m2p_nn_st *ref = NULL;
    assert_int_equal(m2p_nn_st_open(refp, &ref, &err), M2P_OK);
    const m2p_nn_st_tensor *tl = m2p_nn_st_find(ref, "latents");
    const m2p_nn_st_tensor *ts = m2p_nn_st_find(ref, "sample");
    assert_non_null(tl);
    assert_non_null(ts);
    int n = (int)tl->shape[0], h = (int)tl->shape[2], w = (int)tl->shape[3];
    assert_int_equal(ts->shape[2], h * 4);
    assert_int_equal(ts->shape[3], w * 4);
    float *lat = m2p_malloc_array(tl->numel, sizeof(float));
    float *want = m2p_malloc_array(ts->numel, sizeof(float));
    float *got = m2p_malloc_array(ts->numel, sizeof(float));
    float *again = m2p_malloc_array(ts->numel, sizeof(float));
    assert_non_null(lat);
    assert_non_null(want);
    assert_non_null(got);
    assert_non_null(again);
    assert_int_equal(m2p_nn_st_read_f32(tl, lat, tl->numel, &err), M2P_OK);
    assert_int_equal(m2p_nn_st_read_f32(ts, want, ts->numel, &err), M2P_OK);
    double maxlat = 0;
    for (size_t i = 0; i < tl->numel; i++) {
        maxlat = fmax(maxlat, fabs(lat[i]));
    }
    assert_true(maxlat > 4.0); /* the tanh clamp is exercised */

    assert_int_equal(m2p_taesd_decode(t, lat, n, h, w, got, NULL, &err), M2P_OK);
    double maxref = 0, maxdiff = 0, spread = 0;
    for (size_t i = 0; i < ts->numel; i++) {
        maxref = fmax(maxref, fabs(want[i]));
        maxdiff = fmax(maxdiff, fabs((double)got[i] - want[i]));
        spread = fmax(spread, fabs((double)want[i] - want[0]));
    }
    printf("taesd: max |diff| %.3g over max |ref| %.3g\n", maxdiff, maxref);
    assert_true(spread > 0.05); /* not a constant image */
    assert_true(maxdiff <= 1e-4 * fmax(1.0, maxref));

    /* Same bits again (workspace reused) and for the second image alone. */
    assert_int_equal(m2p_taesd_decode(t, lat, n, h, w, again, NULL, &err), M2P_OK);
    assert_memory_equal(again, got, ts->numel * sizeof(float));
    size_t per = ts->numel / (size_t)n;
    assert_int_equal(m2p_taesd_decode(t, lat + tl->numel / (size_t)n, 1, h, w, again, NULL, &err), M2P_OK);
    assert_memory_equal(again, got + per, per * sizeof(float));

    /* Another size reallocates the workspace. */
    assert_int_equal(m2p_taesd_decode(t, lat, 1, 3, 5, again, NULL, &err), M2P_OK);

    atomic_bool stop = true;
    m2p_progress cancel = {NULL, NULL, NULL, &stop};
    assert_int_equal(m2p_taesd_decode(t, lat, n, h, w, got, &cancel, &err), M2P_E_CANCELLED);
    assert_int_equal(m2p_taesd_decode(t, lat, 0, h, w, got, NULL, &err), M2P_E_INVALID_ARG);
    assert_int_equal(m2p_taesd_decode(t, lat, 1, 0, w, got, NULL, &err), M2P_E_INVALID_ARG);
    assert_int_equal(m2p_taesd_decode(t, lat, 1, 513, w, got, NULL, &err), M2P_E_INVALID_ARG);

    m2p_free(lat);
    m2p_free(want);
    m2p_free(got);
    m2p_free(again);
    m2p_nn_st_close(ref);
    m2p_taesd_free(t);
}

/* --- malformed folders ---------------------------------------------------------------------------- */

static void put(const char *dir, const char *name, const void *data, size_t len) {
    char path[1200];
    (void)snprintf(path, sizeof path, "%s/%s", dir, name);
    m2p_error err;
    if (m2p_fs_write_atomic(path, data, len, &err) != M2P_OK) {
        fail_msg("write %s: %s", path, err.detail);
    }
}

static char *slurp(const char *rel, size_t *len) {
    char path[1200], dir[1024];
    (void)snprintf(path, sizeof path, "%s/%s", fixture_dir(dir, sizeof dir), rel);
    char *data = NULL;
    m2p_error err;
    if (m2p_fs_read_file(path, (size_t)1 << 24, &data, len, &err) != M2P_OK) {
        fail_msg("read %s: %s", path, err.detail);
    }
    return data;
}

/* Replaces the first occurrence of from by to in the fixture's config.json, writes it to dir. */
static void put_config(const char *dir, const char *from, const char *to) {
    size_t len = 0;
    char *cfg = slurp("config.json", &len);
    char out[4096];
    const char *at = from != NULL ? strstr(cfg, from) : NULL;
    if (from != NULL && at == NULL) {
        fail_msg("'%s' not in config.json", from);
    }
    if (at == NULL) {
        (void)snprintf(out, sizeof out, "%s", cfg);
    } else {
        (void)snprintf(out, sizeof out, "%.*s%s%s", (int)(at - cfg), cfg, to, at + strlen(from));
    }
    put(dir, "config.json", out, strlen(out));
    m2p_free(cfg);
}

static m2p_code open_expect(const char *dir, m2p_code want, const char *needle) {
    m2p_taesd *t = NULL;
    m2p_error err;
    m2p_error_clear(&err);
    m2p_code rc = m2p_taesd_open(dir, &t, &err);
    if (rc != want || (needle != NULL && strstr(err.detail, needle) == NULL)) {
        fail_msg("expected %d with '%s', got %d: %s", (int)want, needle ? needle : "", (int)rc, err.detail);
    }
    assert_null(t);
    return rc;
}

static void test_taesd_malformed(void **state) {
    (void)state;
    char tmp[256];
    m2p_test_tmpdir(tmp, sizeof tmp);
    size_t wlen = 0;
    char *weights = slurp("diffusion_pytorch_model.safetensors", &wlen);

    /* No folder / no weights: both ways to get it are named. */
    char nope[300];
    (void)snprintf(nope, sizeof nope, "%s/none", tmp);
    open_expect(nope, M2P_E_TAESD_MISSING, "model pull madebyollin/taesd");
    open_expect(nope, M2P_E_TAESD_MISSING, "MUS2PIC_TAESD");
    put_config(tmp, NULL, NULL);
    open_expect(tmp, M2P_E_TAESD_MISSING, "diffusion_pytorch_model.safetensors is missing");
    m2p_error err;
    assert_int_equal(m2p_taesd_check(tmp, &err), M2P_E_TAESD_MISSING);
    put(tmp, "diffusion_pytorch_model.safetensors", weights, wlen);
    assert_int_equal(m2p_taesd_check(tmp, &err), M2P_OK);

    /* Config errors name the key. */
    put_config(tmp, "\"relu\"", "\"silu\"");
    open_expect(tmp, M2P_E_TAESD_CONFIG, "act_fn");
    put_config(tmp, "\"AutoencoderTiny\"", "\"AutoencoderKL\"");
    open_expect(tmp, M2P_E_TAESD_CONFIG, "_class_name");
    put_config(tmp, "\"decoder_block_out_channels\": [\n    12,\n    12,\n    12\n  ]",
               "\"decoder_block_out_channels\": [12, 16, 12]");
    open_expect(tmp, M2P_E_TAESD_CONFIG, "decoder_block_out_channels");
    put_config(tmp, "\"num_decoder_blocks\": [\n    2,\n    2,\n    1\n  ]", "\"num_decoder_blocks\": [2, 2]");
    open_expect(tmp, M2P_E_TAESD_CONFIG, "num_decoder_blocks");
    put(tmp, "config.json", "{\"act_fn\": \"relu\",", 18);
    open_expect(tmp, M2P_E_TAESD_CONFIG, "config.json");
    put(tmp, "config.json", "[1, 2]", 6);
    open_expect(tmp, M2P_E_TAESD_CONFIG, "JSON object");

    /* Config and weights disagree: the tensor is named. */
    put_config(tmp, "\"num_decoder_blocks\": [\n    2,\n    2,\n    1\n  ]", "\"num_decoder_blocks\": [2, 3, 1]");
    open_expect(tmp, M2P_E_MODEL_TENSOR_MISSING, "decoder.layers.");
    put_config(tmp, "\"decoder_block_out_channels\": [\n    12,\n    12,\n    12\n  ]",
               "\"decoder_block_out_channels\": [16, 16, 16]");
    open_expect(tmp, M2P_E_MODEL_SHAPE, "decoder.layers.0.weight");
    put_config(tmp, "\"latent_channels\": 4", "\"latent_channels\": 8");
    open_expect(tmp, M2P_E_MODEL_SHAPE, "[12,4,3,3]");

    /* Damaged weight file. */
    put_config(tmp, NULL, NULL);
    put(tmp, "diffusion_pytorch_model.safetensors", weights, wlen / 2);
    open_expect(tmp, M2P_E_MODEL_INVALID, NULL);
    put(tmp, "diffusion_pytorch_model.safetensors", weights, wlen);
    m2p_taesd *t = NULL;
    assert_int_equal(m2p_taesd_open(tmp, &t, &err), M2P_OK);
    m2p_taesd_free(t);

    m2p_free(weights);
    m2p_test_rmdir(tmp);
}

/* Where the folder is found, describe, and the decoder setting. */
static void test_taesd_lookup(void **state) {
    (void)state;
    char tmp[256];
    m2p_test_tmpdir(tmp, sizeof tmp);
    m2p_config cfg;
    m2p_config_defaults(&cfg);
    (void)snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", tmp);
    char dir[1024], buf[1200];

    /* Nothing set: the pull's folder; describe says how to get it. */
    m2p_taesd_dir_for(&cfg, dir, sizeof dir);
    (void)snprintf(buf, sizeof buf, "%s/models/madebyollin/taesd", tmp);
    assert_string_equal(dir, buf);
    assert_int_equal(m2p_taesd_describe(&cfg, buf, sizeof buf), M2P_E_TAESD_MISSING);
    assert_non_null(strstr(buf, "not installed"));
    assert_non_null(strstr(buf, "madebyollin/taesd"));

    /* A model folder with taesd/ inside wins over the pull's folder. */
    char model[1024];
    (void)snprintf(model, sizeof model, "%s/tests/fixtures/nn/tiny-lcm", m2p_test_source_dir());
    (void)snprintf(cfg.model, sizeof cfg.model, "%s", model);
    m2p_taesd_dir_for(&cfg, dir, sizeof dir);
    (void)snprintf(buf, sizeof buf, "%s/taesd", model);
    assert_string_equal(dir, buf);
    assert_int_equal(m2p_taesd_describe(&cfg, buf, sizeof buf), M2P_OK);
    assert_non_null(strstr(buf, "3 stages of 12 channels"));

    /* The taesd setting wins over everything. */
    (void)snprintf(cfg.taesd, sizeof cfg.taesd, "%s/elsewhere", tmp);
    m2p_taesd_dir_for(&cfg, dir, sizeof dir);
    assert_string_equal(dir, cfg.taesd);
    m2p_error err;
    assert_int_equal(m2p_taesd_check(dir, &err), M2P_E_TAESD_MISSING);

    /* Settings: decoder through the config table. */
    m2p_taesd_use use = M2P_DECODER_AUTO;
    assert_string_equal(cfg.decoder, "vae");
    assert_int_equal(m2p_taesd_parse_decoder(cfg.decoder, &use, &err), M2P_OK);
    assert_int_equal(use, M2P_DECODER_VAE);
    assert_int_equal(m2p_config_set(&cfg, "decoder", "taesd", &err), M2P_OK);
    assert_int_equal(m2p_taesd_parse_decoder(cfg.decoder, &use, &err), M2P_OK);
    assert_int_equal(use, M2P_DECODER_TAESD);
    assert_int_equal(m2p_taesd_parse_decoder("auto", &use, &err), M2P_OK);
    assert_int_equal(use, M2P_DECODER_AUTO);
    assert_int_equal(m2p_taesd_parse_decoder("fast", &use, &err), M2P_E_CONFIG);
    assert_non_null(strstr(err.detail, "vae, taesd or auto"));
    assert_int_equal(m2p_config_set(&cfg, "taesd", "/x/y", &err), M2P_OK);
    assert_string_equal(cfg.taesd, "/x/y");
    m2p_test_rmdir(tmp);
}

/* Failing the Nth allocation of open + first decode: NOMEM, no leak, the handle still works after. */
static void test_taesd_alloc_failures(void **state) {
    (void)state;
    char dir[1024];
    fixture_dir(dir, sizeof dir);
    float lat[4 * 3 * 5];
    float img[3 * 12 * 20];
    for (int i = 0; i < 60; i++) {
        lat[i] = (float)(i % 7) * 0.3f - 1.0f;
    }
    m2p_error err;
    int failures = 0;
    for (long k = 0; k < 60; k++) {
        m2p_taesd *t = NULL;
        m2p_alloc_fail_after(k);
        m2p_code rc = m2p_taesd_open(dir, &t, &err);
        if (rc == M2P_OK) {
            rc = m2p_taesd_decode(t, lat, 1, 3, 5, img, NULL, &err);
        }
        m2p_alloc_fail_after(-1);
        if (rc != M2P_OK) {
            assert_int_equal(rc, M2P_E_NOMEM);
            failures++;
        }
        if (t != NULL) {
            assert_int_equal(m2p_taesd_decode(t, lat, 1, 3, 5, img, NULL, &err), M2P_OK);
        }
        m2p_taesd_free(t);
    }
    assert_true(failures > 10);
}

/* --- the half-size preview decode ------------------------------------------------------------------ */

/* A smooth latent field [4, h, w], as a sampler's estimates are (low spatial frequencies). */
static void smooth_latent(float *z, int h, int w, float phase) {
    for (int c = 0; c < 4; c++) {
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                z[((size_t)c * (size_t)h + (size_t)y) * (size_t)w + (size_t)x] =
                    1.5f * sinf(0.45f * (float)y + 0.9f * (float)c + phase) * cosf(0.35f * (float)x - 0.6f * (float)c) +
                    0.3f * (float)(c - 1);
            }
        }
    }
}

/* Mean |a − box2(full)| over the half image [3, oh, ow], full [3, fh, fw] with fh ≥ 2·oh − 1: each
 * pixel against the average of its 2×2 block of the full decode (a block past the edge: what is there). */
static double box_err(const float *half, int oh, int ow, const float *full, int fh, int fw) {
    double sum = 0.0;
    for (int c = 0; c < 3; c++) {
        for (int y = 0; y < oh; y++) {
            for (int x = 0; x < ow; x++) {
                double acc = 0.0;
                int cnt = 0;
                for (int dy = 0; dy < 2; dy++) {
                    for (int dx = 0; dx < 2; dx++) {
                        int yy = 2 * y + dy, xx = 2 * x + dx;
                        if (yy < fh && xx < fw) {
                            acc += full[((size_t)c * (size_t)fh + (size_t)yy) * (size_t)fw + (size_t)xx];
                            cnt++;
                        }
                    }
                }
                sum += fabs(half[((size_t)c * (size_t)oh + (size_t)y) * (size_t)ow + (size_t)x] - acc / cnt);
            }
        }
    }
    return sum / (3.0 * oh * ow);
}

static void test_taesd_decode_half(void **state) {
    (void)state;
    char dir[1024];
    fixture_dir(dir, sizeof dir);
    m2p_error err;
    m2p_taesd *t = NULL;
    if (m2p_taesd_open(dir, &t, &err) != M2P_OK) {
        fail_msg("open: %s", err.detail);
    }
    enum { F = 4, MAXL = 12 };
    static float z[4 * MAXL * MAXL], pooled[4 * MAXL * MAXL], full[3 * MAXL * F * MAXL * F],
        half[3 * MAXL * F * MAXL * F], want[3 * MAXL * F * MAXL * F], other[3 * MAXL * F * MAXL * F];
    const int sizes[][2] = {{8, 12}, {9, 11}, {1, 1}, {1, 3}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int h = sizes[k][0], w = sizes[k][1];
        int ph = (h + 1) / 2, pw = (w + 1) / 2;
        smooth_latent(z, h, w, 0.0f);
        int oh = -1, ow = -1;
        assert_int_equal(m2p_taesd_decode_half(t, z, h, w, half, &oh, &ow, &err), M2P_OK);
        /* half the full decode's size, odd latents included (9×11 → 36×44 full, 18×22 here) */
        assert_int_equal(oh, h * F / 2);
        assert_int_equal(ow, w * F / 2);

        /* Exactly: the 2×2-averaged latent (odd edge with itself) decoded, cropped to oh×ow. */
        for (int c = 0; c < 4; c++) {
            for (int y = 0; y < ph; y++) {
                for (int x = 0; x < pw; x++) {
                    int y1 = 2 * y + 1 < h ? 2 * y + 1 : 2 * y, x1 = 2 * x + 1 < w ? 2 * x + 1 : 2 * x;
                    const float *zc = z + (size_t)c * (size_t)h * (size_t)w;
                    pooled[((size_t)c * (size_t)ph + (size_t)y) * (size_t)pw + (size_t)x] =
                        0.25f * ((zc[2 * y * w + 2 * x] + zc[2 * y * w + x1]) + (zc[y1 * w + 2 * x] + zc[y1 * w + x1]));
                }
            }
        }
        assert_int_equal(m2p_taesd_decode(t, pooled, 1, ph, pw, want, NULL, &err), M2P_OK);
        for (int c = 0; c < 3; c++) {
            for (int y = 0; y < oh; y++) {
                assert_memory_equal(half + ((size_t)c * (size_t)oh + (size_t)y) * (size_t)ow,
                                    want + ((size_t)c * (size_t)(ph * F) + (size_t)y) * (size_t)(pw * F),
                                    (size_t)ow * sizeof(float));
            }
        }
        if (h < 4) {
            continue; /* too small for the downscale comparison */
        }
        /* A sensible downscale. Tolerance (the tiny TAESD has random weights, so its output is far
         * from linear in the latent; measured 0.029 for both sizes, flat 0.114, other 0.055): the mean
         * |half − box2(full)| is ≤ 0.04 on the [-1, 1] image scale (≈ 5/255 of the 8-bit range),
         * ≤ 0.3 × what a flat image at the full decode's mean would miss by, and ≤ 0.75 × the same
         * comparison against the decode of another latent (the smooth field with sin negated). */
        assert_int_equal(m2p_taesd_decode(t, z, 1, h, w, full, NULL, &err), M2P_OK);
        double e = box_err(half, oh, ow, full, h * F, w * F);
        smooth_latent(z, h, w, 3.14159265f);
        assert_int_equal(m2p_taesd_decode(t, z, 1, h, w, other, NULL, &err), M2P_OK);
        double e_other = box_err(half, oh, ow, other, h * F, w * F);
        /* the signal: how far the box-downscaled full decode strays from its mean */
        double mean_full = 0.0;
        for (size_t i = 0; i < (size_t)3 * (size_t)(h * F) * (size_t)(w * F); i++) {
            mean_full += full[i];
        }
        mean_full /= 3.0 * h * F * w * F;
        for (size_t i = 0; i < (size_t)3 * (size_t)oh * (size_t)ow; i++) {
            want[i] = (float)mean_full;
        }
        double e_flat = box_err(want, oh, ow, full, h * F, w * F);
        print_message("half decode %dx%d: mean |half - box2(full)| %.4f, vs another latent %.4f, vs flat %.4f\n", h, w, e,
                      e_other, e_flat);
        assert_true(e <= 0.04);
        assert_true(e <= 0.3 * e_flat);
        assert_true(e <= 0.75 * e_other);
    }
    int oh = 0, ow = 0;
    assert_int_equal(m2p_taesd_decode_half(t, z, 0, 4, half, &oh, &ow, &err), M2P_E_INVALID_ARG);
    assert_int_equal(m2p_taesd_decode_half(t, z, 4, 513, half, &oh, &ow, &err), M2P_E_INVALID_ARG);
    m2p_taesd_free(t);
}

/* --- the pipeline: draft decode and previews -------------------------------------------------------- */

typedef struct previews {
    int calls;
    int last_step, steps, width, height;
    int distinct; /* distinct byte values seen in the last preview */
} previews;

static void on_preview(void *ctx, int step, int steps, int width, int height, const uint8_t *rgb) {
    previews *p = ctx;
    p->calls++;
    assert_int_equal(step, p->last_step + 1);
    p->last_step = step;
    p->steps = steps;
    p->width = width;
    p->height = height;
    bool seen[256] = {false};
    p->distinct = 0;
    for (size_t i = 0; i < (size_t)width * (size_t)height * 3; i++) {
        if (!seen[rgb[i]]) {
            seen[rgb[i]] = true;
            p->distinct++;
        }
    }
}

static void test_pipeline_draft_and_preview(void **state) {
    (void)state;
    enum { S = 32, F = 4, L = S / F };
    char model[1024], tdir[1024];
    (void)snprintf(model, sizeof model, "%s/tests/fixtures/nn/tiny-lcm", m2p_test_source_dir());
    fixture_dir(tdir, sizeof tdir);
    m2p_error err;
    m2p_sd_options opt;
    m2p_sd_options_default(&opt);
    opt.warmup = false;

    /* Draft without TAESD: refused at open, naming both ways to get it. */
    opt.draft = true;
    m2p_sd *sd = NULL;
    assert_int_equal(m2p_sd_open(model, &opt, &sd, &err), M2P_E_TAESD_MISSING);
    assert_non_null(strstr(err.detail, "model pull madebyollin/taesd"));
    assert_non_null(strstr(err.detail, "MUS2PIC_TAESD"));
    assert_null(sd);

    opt.draft = false;
    opt.taesd_dir = tdir;
    if (m2p_sd_open(model, &opt, &sd, &err) != M2P_OK) {
        fail_msg("open: %s", err.detail);
    }
    assert_true(m2p_sd_has_taesd(sd));
    uint32_t seed = 42;
    float lat[4 * L * L], img_vae[3 * S * S], img_taesd[3 * S * S], want[3 * S * S];
    m2p_sd_request req = {"a neon city", NULL, 1, &seed, S, S, 3, 8.0, lat, img_vae};
    previews pv = {0, 0, 0, 0, 0, 0};
    m2p_sd_extra ex = {1, on_preview, &pv, false};
    assert_int_equal(m2p_sd_generate_ex(sd, &req, &ex, NULL, NULL, &err), M2P_OK);
    /* One preview after each step but the last, at half the image size. */
    assert_int_equal(pv.calls, 2);
    assert_int_equal(pv.steps, 3);
    assert_int_equal(pv.width, S / 2);
    assert_int_equal(pv.height, S / 2);
    assert_true(pv.distinct > 4);
    /* preview_full: the whole size (the former previews), and the same final image either way */
    float again[3 * S * S];
    previews pf = {0, 0, 0, 0, 0, 0};
    m2p_sd_extra exf = {1, on_preview, &pf, true};
    req.out_image = again;
    assert_int_equal(m2p_sd_generate_ex(sd, &req, &exf, NULL, NULL, &err), M2P_OK);
    assert_int_equal(pf.calls, 2);
    assert_int_equal(pf.width, S);
    assert_int_equal(pf.height, S);
    assert_memory_equal(again, img_vae, sizeof again);
    req.out_image = img_vae;

    /* An odd latent (9×11 → 36×44 px): 18×22 previews, and the final pixels the same as without. */
    {
        enum { OH = 9 * F, OW = 11 * F };
        static float o_prev[3 * OH * OW], o_plain[3 * OH * OW];
        static uint8_t rgb_prev[3 * OH * OW], rgb_plain[3 * OH * OW];
        m2p_sd_request oreq = {"a neon city", NULL, 1, &seed, OW, OH, 3, 8.0, NULL, o_prev};
        previews po = {0, 0, 0, 0, 0, 0};
        m2p_sd_extra exo = {1, on_preview, &po, false};
        assert_int_equal(m2p_sd_generate_ex(sd, &oreq, &exo, NULL, rgb_prev, &err), M2P_OK);
        assert_int_equal(po.calls, 2);
        assert_int_equal(po.width, OW / 2);
        assert_int_equal(po.height, OH / 2);
        assert_true(po.distinct > 4);
        oreq.out_image = o_plain;
        assert_int_equal(m2p_sd_generate_ex(sd, &oreq, NULL, NULL, rgb_plain, &err), M2P_OK);
        assert_memory_equal(o_prev, o_plain, sizeof o_prev);
        assert_memory_equal(rgb_prev, rgb_plain, sizeof rgb_prev);
    }

    /* decoder 2: the same latents decoded by TAESD, bit for bit what the decoder alone gives. */
    req.out_image = img_taesd;
    m2p_sd_extra draft = {2, NULL, NULL, false};
    assert_int_equal(m2p_sd_generate_ex(sd, &req, &draft, NULL, NULL, &err), M2P_OK);
    m2p_taesd *t = NULL;
    assert_int_equal(m2p_taesd_open(tdir, &t, &err), M2P_OK);
    assert_int_equal(m2p_taesd_decode(t, lat, 1, L, L, want, NULL, &err), M2P_OK);
    assert_memory_equal(img_taesd, want, sizeof want);
    assert_memory_not_equal(img_taesd, img_vae, sizeof want);
    m2p_taesd_free(t);

    /* The default (no extra) is the VAE here: same as decoder 1. */
    req.out_image = want;
    assert_int_equal(m2p_sd_generate(sd, &req, NULL, NULL, &err), M2P_OK);
    assert_memory_equal(want, img_vae, sizeof want);
    m2p_sd_extra bad = {3, NULL, NULL, false};
    assert_int_equal(m2p_sd_generate_ex(sd, &req, &bad, NULL, NULL, &err), M2P_E_INVALID_ARG);
    m2p_sd_free(sd);

    /* An engine opened in draft mode decodes with TAESD by default. */
    opt.draft = true;
    assert_int_equal(m2p_sd_open(model, &opt, &sd, &err), M2P_OK);
    req.out_image = want;
    assert_int_equal(m2p_sd_generate(sd, &req, NULL, NULL, &err), M2P_OK);
    assert_memory_equal(want, img_taesd, sizeof want);
    m2p_sd_free(sd);

    /* No TAESD loaded: asking for it per call, or for previews, is a clear error. */
    opt.draft = false;
    opt.taesd_dir = NULL;
    assert_int_equal(m2p_sd_open(model, &opt, &sd, &err), M2P_OK);
    assert_false(m2p_sd_has_taesd(sd));
    assert_int_equal(m2p_sd_generate_ex(sd, &req, &draft, NULL, NULL, &err), M2P_E_TAESD_MISSING);
    assert_int_equal(m2p_sd_generate_ex(sd, &req, &ex, NULL, NULL, &err), M2P_E_TAESD_MISSING);
    assert_non_null(strstr(err.detail, "preview"));
    m2p_sd_free(sd);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_taesd_matches_diffusers),
        cmocka_unit_test(test_taesd_malformed),
        cmocka_unit_test(test_taesd_lookup),
        cmocka_unit_test(test_taesd_alloc_failures),
        cmocka_unit_test(test_taesd_decode_half),
        cmocka_unit_test(test_pipeline_draft_and_preview),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
