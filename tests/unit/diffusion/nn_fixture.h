/*
 * tests/unit/diffusion/nn_fixture.h — helpers of the UNet / scheduler /
 * pipeline tests (header-only): open a fixture file of tests/fixtures/nn/,
 * load one of its tensors as fp32 (caller frees with m2p_free), compare arrays
 * with a stated tolerance and print the worst element when they differ.
 */
#ifndef M2P_TEST_NN_FIXTURE_H
#define M2P_TEST_NN_FIXTURE_H

#include "test_util.h"

#include <math.h>

#include "core/alloc.h"
#include "diffusion/safetensors.h"

static inline m2p_nn_st *nnfx_open(const char *rel) {
    char path[1024];
    (void)snprintf(path, sizeof path, "%s/tests/fixtures/nn/%s", m2p_test_source_dir(), rel);
    m2p_nn_st *st = NULL;
    m2p_error err;
    m2p_code rc = m2p_nn_st_open(path, &st, &err);
    if (rc != M2P_OK) {
        fail_msg("cannot open fixture %s: %s", path, err.detail);
    }
    return st;
}

/* Loads tensor name as fp32; *numel (may be NULL) receives its size. */
static inline float *nnfx_load(const m2p_nn_st *st, const char *name, size_t *numel) {
    const m2p_nn_st_tensor *t = m2p_nn_st_find(st, name);
    if (t == NULL) {
        fail_msg("fixture tensor %s missing", name);
    }
    float *d = m2p_malloc_array(t->numel > 0 ? t->numel : 1, sizeof(float));
    assert_non_null(d);
    m2p_error err;
    if (m2p_nn_st_read_f32(t, d, t->numel, &err) != M2P_OK) {
        fail_msg("fixture tensor %s: %s", name, err.detail);
    }
    if (numel != NULL) {
        *numel = t->numel;
    }
    return d;
}

/* Largest |a − b| / (atol + rtol·|b|) over n values; prints the worst one. Returns that max
 * (≤ 1 means within tolerance). */
static inline double nnfx_compare(const char *what, const float *a, const float *b, size_t n, double atol,
                                  double rtol) {
    double worst = 0.0;
    double max_abs = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d == d)) {
            fail_msg("%s: NaN at %zu", what, i);
        }
        double r = d / (atol + rtol * fabs((double)b[i]));
        if (d > max_abs) {
            max_abs = d;
        }
        if (r > worst) {
            worst = r;
            at = i;
        }
    }
    if (worst > 1.0) {
        print_message("%s: element %zu is %.9g, expected %.9g (max |diff| %.3g, atol %.3g rtol %.3g)\n", what, at,
                      (double)a[at], (double)b[at], max_abs, atol, rtol);
    }
    return worst;
}

#define NNFX_ASSERT_CLOSE(what, a, b, n, atol, rtol) assert_true(nnfx_compare((what), (a), (b), (n), (atol), (rtol)) <= 1.0)

#endif
