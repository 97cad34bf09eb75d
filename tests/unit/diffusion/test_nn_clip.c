/*
 * tests/unit/diffusion/test_nn_clip.c — the CLIP text encoder on the tiny
 * reference model (tests/fixtures/nn/tiny-lcm, fp16 weights) against
 * transformers' CLIPTextModel output for the same token ids
 * (tests/fixtures/nn/ref/clip.safetensors, made by tools/nn/make_fixtures.py).
 *
 * Bound: max |ours − transformers| ≤ 1e-4 · max(1, max |ref|) (fp32 compute
 * on both sides from the same fp16-rounded weights; measured ≈ 1e-6).
 */
#include "test_util.h"

#include <math.h>

#include "core/alloc.h"
#include "diffusion/clip_text.h"
#include "diffusion/model.h"
#include "diffusion/safetensors.h"

static void fixture(char *buf, size_t cap, const char *rel) {
    (void)snprintf(buf, cap, "%s/tests/fixtures/nn/%s", m2p_test_source_dir(), rel);
}

static void test_clip_matches_transformers(void **state) {
    (void)state;
    char dir[1024], refp[1024];
    fixture(dir, sizeof dir, "tiny-lcm");
    fixture(refp, sizeof refp, "ref/clip.safetensors");
    m2p_error err;
    m2p_nn_model *m = NULL;
    m2p_code rc = m2p_nn_model_open(dir, M2P_NN_LOAD_TEXT, &m, &err);
    if (rc != M2P_OK) {
        fail_msg("open: %s", err.detail);
    }
    m2p_nn_clip *c = NULL;
    rc = m2p_nn_clip_create(m, &c, &err);
    if (rc != M2P_OK) {
        fail_msg("clip create: %s", err.detail);
    }
    assert_int_equal(m2p_nn_clip_max_len(c), 77);
    int hidden = m2p_nn_clip_hidden(c);

    m2p_nn_st *ref = NULL;
    assert_int_equal(m2p_nn_st_open(refp, &ref, &err), M2P_OK);
    const m2p_nn_st_tensor *tid = m2p_nn_st_find(ref, "input_ids");
    const m2p_nn_st_tensor *tout = m2p_nn_st_find(ref, "last_hidden_state");
    assert_non_null(tid);
    assert_non_null(tout);
    assert_int_equal(tid->dtype, M2P_NN_I32);
    int batch = (int)tid->shape[0], seq = (int)tid->shape[1];
    assert_int_equal(tout->shape[2], hidden);
    int32_t *ids = m2p_malloc(tid->nbytes);
    float *want = m2p_malloc_array(tout->numel, sizeof(float));
    float *got = m2p_malloc_array(tout->numel, sizeof(float));
    assert_non_null(ids);
    assert_non_null(want);
    assert_non_null(got);
    memcpy(ids, tid->data, tid->nbytes);
    assert_int_equal(m2p_nn_st_read_f32(tout, want, tout->numel, &err), M2P_OK);

    assert_int_equal(m2p_nn_clip_encode(c, ids, batch, seq, got, &err), M2P_OK);
    double maxref = 0, maxdiff = 0;
    for (size_t i = 0; i < tout->numel; i++) {
        maxref = fmax(maxref, fabs(want[i]));
        maxdiff = fmax(maxdiff, fabs((double)got[i] - want[i]));
    }
    printf("clip: max |diff| %.3g over max |ref| %.3g\n", maxdiff, maxref);
    assert_true(maxref > 0.1);
    assert_true(maxdiff <= 1e-4 * fmax(1.0, maxref));

    /* One prompt alone gives the same rows as within the batch (batch rows independent). */
    assert_int_equal(m2p_nn_clip_encode(c, ids + seq, 1, seq, got, &err), M2P_OK);
    for (size_t i = 0; i < (size_t)seq * hidden; i++) {
        assert_true(fabs((double)got[i] - want[(size_t)seq * hidden + i]) <= 1e-4 * fmax(1.0, maxref));
    }

    /* Bad input: ids out of the vocabulary, too long, bad batch. */
    ids[3] = 49408;
    assert_int_equal(m2p_nn_clip_encode(c, ids, 1, seq, got, &err), M2P_E_INVALID_ARG);
    ids[3] = -1;
    assert_int_equal(m2p_nn_clip_encode(c, ids, 1, seq, got, &err), M2P_E_INVALID_ARG);
    assert_int_equal(m2p_nn_clip_encode(c, ids, 1, 78, got, &err), M2P_E_INVALID_ARG);
    assert_int_equal(m2p_nn_clip_encode(c, ids, 0, seq, got, &err), M2P_E_INVALID_ARG);

    m2p_free(ids);
    m2p_free(want);
    m2p_free(got);
    m2p_nn_st_close(ref);
    m2p_nn_clip_free(c);
    m2p_nn_model_free(m);
}

static void test_clip_needs_loaded_part(void **state) {
    (void)state;
    char dir[1024];
    fixture(dir, sizeof dir, "tiny-lcm");
    m2p_error err;
    m2p_nn_model *m = NULL;
    assert_int_equal(m2p_nn_model_open(dir, M2P_NN_LOAD_VAE, &m, &err), M2P_OK);
    m2p_nn_clip *c = NULL;
    assert_int_equal(m2p_nn_clip_create(m, &c, &err), M2P_E_INVALID_ARG);
    assert_null(c);
    m2p_nn_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clip_matches_transformers),
        cmocka_unit_test(test_clip_needs_loaded_part),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
