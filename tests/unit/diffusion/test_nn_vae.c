/*
 * tests/unit/diffusion/test_nn_vae.c — the AutoencoderKL decoder on the tiny
 * reference model (3 blocks: ×4 upsampling; fp16 weights) against diffusers'
 * vae.decode(latents / scaling_factor) for non-square latents [2, 4, 6, 10]
 * (tests/fixtures/nn/ref/vae.safetensors, made by tools/nn/make_fixtures.py).
 *
 * Bound: max |ours − diffusers| ≤ 1e-4 · max(1, max |ref|) (fp32 both sides).
 * Also: RGB8 conversion as diffusers' image processor does it, cancellation,
 * bad sizes.
 */
#include "test_util.h"

#include <math.h>
#include <stdatomic.h>

#include "core/alloc.h"
#include "diffusion/model.h"
#include "diffusion/safetensors.h"
#include "diffusion/vae.h"

typedef struct counter {
    int reports;
    double last_done;
} counter;

static void on_report(void *ctx, m2p_step step, double done, double total, const char *message) {
    counter *c = ctx;
    (void)step;
    (void)total;
    (void)message;
    c->reports++;
    c->last_done = done;
}

static void test_vae_matches_diffusers(void **state) {
    (void)state;
    char dir[1024], refp[1024];
    (void)snprintf(dir, sizeof dir, "%s/tests/fixtures/nn/tiny-lcm", m2p_test_source_dir());
    (void)snprintf(refp, sizeof refp, "%s/tests/fixtures/nn/ref/vae.safetensors", m2p_test_source_dir());
    m2p_error err;
    m2p_nn_model *m = NULL;
    if (m2p_nn_model_open(dir, M2P_NN_LOAD_VAE, &m, &err) != M2P_OK) {
        fail_msg("open: %s", err.detail);
    }
    m2p_nn_vae *v = NULL;
    if (m2p_nn_vae_create(m, &v, &err) != M2P_OK) {
        fail_msg("vae create: %s", err.detail);
    }
    assert_int_equal(m2p_nn_vae_factor(v), 4);
    assert_int_equal(m2p_nn_vae_latent_channels(v), 4);

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
    assert_non_null(lat);
    assert_non_null(want);
    assert_non_null(got);
    assert_int_equal(m2p_nn_st_read_f32(tl, lat, tl->numel, &err), M2P_OK);
    assert_int_equal(m2p_nn_st_read_f32(ts, want, ts->numel, &err), M2P_OK);

    counter cnt = {0, 0};
    m2p_progress prog = {on_report, NULL, &cnt, NULL};
    assert_int_equal(m2p_nn_vae_decode(v, lat, n, h, w, got, &prog, &err), M2P_OK);
    double maxref = 0, maxdiff = 0;
    for (size_t i = 0; i < ts->numel; i++) {
        maxref = fmax(maxref, fabs(want[i]));
        maxdiff = fmax(maxdiff, fabs((double)got[i] - want[i]));
    }
    printf("vae: max |diff| %.3g over max |ref| %.3g\n", maxdiff, maxref);
    assert_true(maxref > 0.1);
    assert_true(maxdiff <= 1e-4 * fmax(1.0, maxref));
    assert_true(cnt.reports >= n);
    assert_true(cnt.last_done == n);

    /* Second decode reuses the workspace and gives the same bits; one image alone too. */
    float *again = m2p_malloc_array(ts->numel, sizeof(float));
    assert_non_null(again);
    assert_int_equal(m2p_nn_vae_decode(v, lat, n, h, w, again, NULL, &err), M2P_OK);
    assert_memory_equal(again, got, ts->numel * sizeof(float));
    size_t per = ts->numel / (size_t)n;
    assert_int_equal(m2p_nn_vae_decode(v, lat + tl->numel / (size_t)n, 1, h, w, again, NULL, &err), M2P_OK);
    assert_memory_equal(again, got + per, per * sizeof(float));

    /* RGB8 exactly as diffusers: round(clamp(x/2 + 0.5, 0, 1) · 255), channels interleaved. */
    int H = h * 4, W = w * 4;
    unsigned char *rgb = m2p_malloc((size_t)n * H * W * 3);
    assert_non_null(rgb);
    m2p_nn_vae_to_rgb8(want, n, H, W, rgb);
    for (int i = 0; i < n; i++) {
        for (int c = 0; c < 3; c++) {
            for (int p = 0; p < H * W; p += 37) {
                double x = want[((size_t)i * 3 + c) * H * W + p] / 2.0 + 0.5;
                x = x < 0 ? 0 : (x > 1 ? 1 : x);
                int e = (int)lrint(x * 255.0);
                int g = rgb[((size_t)i * H * W + p) * 3 + c];
                assert_true(abs(e - g) <= 1);
            }
        }
    }
    float edge[3 * 2] = {-2.0f, 2.0f, 0.0f, NAN, -1.0f, 1.0f};
    unsigned char px[6];
    m2p_nn_vae_to_rgb8(edge, 1, 1, 2, px);
    assert_int_equal(px[0], 0);   /* R of pixel 0: -2 clamps to 0 */
    assert_int_equal(px[3], 255); /* R of pixel 1: 2 clamps to 255 */
    assert_int_equal(px[1], 128); /* G of pixel 0: 0 → 127.5 → 128 (half to even) */
    assert_int_equal(px[4], 0);   /* NaN → 0 */

    /* Cancellation and bad sizes. */
    atomic_bool stop = true;
    m2p_progress cancel = {NULL, NULL, NULL, &stop};
    assert_int_equal(m2p_nn_vae_decode(v, lat, n, h, w, got, &cancel, &err), M2P_E_CANCELLED);
    assert_int_equal(m2p_nn_vae_decode(v, lat, 0, h, w, got, NULL, &err), M2P_E_INVALID_ARG);
    assert_int_equal(m2p_nn_vae_decode(v, lat, 1, 0, w, got, NULL, &err), M2P_E_INVALID_ARG);
    assert_int_equal(m2p_nn_vae_decode(v, lat, 1, 513, w, got, NULL, &err), M2P_E_INVALID_ARG);

    m2p_free(rgb);
    m2p_free(again);
    m2p_free(lat);
    m2p_free(want);
    m2p_free(got);
    m2p_nn_st_close(ref);
    m2p_nn_vae_free(v);
    m2p_nn_model_free(m);
}

/* Failing the Nth allocation of create + first decode: NOMEM, no leak, and the handle still works after. */
static void test_vae_alloc_failures(void **state) {
    (void)state;
    char dir[1024];
    (void)snprintf(dir, sizeof dir, "%s/tests/fixtures/nn/tiny-lcm", m2p_test_source_dir());
    m2p_error err;
    m2p_nn_model *m = NULL;
    assert_int_equal(m2p_nn_model_open(dir, M2P_NN_LOAD_VAE, &m, &err), M2P_OK);
    float lat[4 * 3 * 5];
    float img[3 * 12 * 20];
    for (int i = 0; i < 60; i++) {
        lat[i] = (float)(i % 7) * 0.1f;
    }
    int failures = 0;
    for (long k = 0; k < 14; k++) {
        m2p_nn_vae *v = NULL;
        m2p_alloc_fail_after(k);
        m2p_code rc = m2p_nn_vae_create(m, &v, &err);
        if (rc == M2P_OK) {
            rc = m2p_nn_vae_decode(v, lat, 1, 3, 5, img, NULL, &err);
        }
        m2p_alloc_fail_after(-1);
        if (rc != M2P_OK) {
            assert_int_equal(rc, M2P_E_NOMEM);
            failures++;
        }
        if (v != NULL) {
            assert_int_equal(m2p_nn_vae_decode(v, lat, 1, 3, 5, img, NULL, &err), M2P_OK);
        }
        m2p_nn_vae_free(v);
    }
    assert_true(failures > 3);
    m2p_nn_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vae_matches_diffusers),
        cmocka_unit_test(test_vae_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
