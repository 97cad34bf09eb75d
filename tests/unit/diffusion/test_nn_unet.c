/*
 * tests/unit/diffusion/test_nn_unet.c — the UNet on the tiny LCM model
 * (tests/fixtures/nn/tiny-lcm) against diffusers' UNet2DConditionModel
 * (tests/fixtures/nn/unet/unet.safetensors, tools/nn/make_unet_fixtures.py):
 *  - case a: batch 2, 8×16 latents, one timestep per image, one guidance
 *    embedding per image, one text embedding per image;
 *  - case b: batch 2, 6×10 latents (not divisible by 8: the upsampler follows
 *    the skip sizes), one text embedding broadcast to both images;
 *  - the timestep and guidance embeddings alone;
 *  - batching: image 1 of a batch equals image 1 run alone;
 *  - Winograd F(2×2, 3×3) for every 3×3 stride-1 conv (threshold 0) against
 *    diffusers (cases a and b);
 *  - reproducibility: each image of a batch of 3 is bitwise the image run
 *    alone, at an odd latent size whose levels (9×11, 5×6, 3×3, 2×2) mix
 *    Winograd and im2col convolutions, for several thresholds;
 *  - a missing tensor / a wrong shape in a copy of the model → clear errors;
 *  - the blocked attention op and its exp against naive double-precision references;
 *  - every allocation of create and forward failing in turn → NOMEM, no leak, no crash.
 * Tolerance: |diff| ≤ 2e-5 + 1e-4·|expected| (measured max |diff| 1.4e-6; fp32 against fp32 PyTorch; the
 * sums run in a different order).
 */
#include "nn_fixture.h"

#include "diffusion/model.h"
#include "diffusion/unet.h"
#include "diffusion/unet_ops.h"

#define ATOL 2e-5
#define RTOL 1e-4

static const char *tiny_dir(char *buf, size_t cap) {
    (void)snprintf(buf, cap, "%s/tests/fixtures/nn/tiny-lcm", m2p_test_source_dir());
    return buf;
}

typedef struct fixture {
    m2p_nn_model *model;
    m2p_unet *unet;
    m2p_nn_st *ref;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    char dir[1024];
    m2p_error err;
    if (m2p_nn_model_open(tiny_dir(dir, sizeof dir), M2P_NN_LOAD_UNET, &f->model, &err) != M2P_OK) {
        fprintf(stderr, "model: %s\n", err.detail);
        return -1;
    }
    if (m2p_unet_create_from_model(f->model, &f->unet, &err) != M2P_OK) {
        fprintf(stderr, "unet: %s\n", err.detail);
        return -1;
    }
    f->ref = nnfx_open("unet/unet.safetensors");
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    m2p_unet_free(f->unet);
    m2p_nn_model_free(f->model);
    m2p_nn_st_close(f->ref);
    free(f);
    return 0;
}

static void run_case(fixture *f, const char *c, int h, int w, int context_n) {
    char name[32];
    size_t n_out = 0;
#define LOAD(var, key, cnt)                                                                                            \
    (void)snprintf(name, sizeof name, "%s_%s", c, key);                                                              \
    float *var = nnfx_load(f->ref, name, cnt)
    LOAD(sample, "sample", NULL);
    LOAD(ts, "timesteps", NULL);
    LOAD(cond, "cond", NULL);
    LOAD(ctx, "context", NULL);
    LOAD(want, "out", &n_out);
#undef LOAD
    float *out = m2p_malloc_array(n_out, sizeof(float));
    assert_non_null(out);
    m2p_unet_input in = {sample, 2, h, w, ts, cond, ctx, context_n, 77};
    m2p_error err;
    m2p_code rc = m2p_unet_forward(f->unet, &in, out, &err);
    if (rc != M2P_OK) {
        fail_msg("forward: %s", err.detail);
    }
    assert_true(n_out == (size_t)2 * 4 * h * w);
    NNFX_ASSERT_CLOSE(c, out, want, n_out, ATOL, RTOL);
    m2p_free(sample);
    m2p_free(ts);
    m2p_free(cond);
    m2p_free(ctx);
    m2p_free(want);
    m2p_free(out);
}

static void test_case_a(void **state) {
    run_case(*state, "a", 8, 16, 2);
}

static void test_case_b_broadcast_odd_size(void **state) {
    run_case(*state, "b", 6, 10, 1);
}

/* Every 3×3 stride-1 conv (except the 4-channel conv_in/conv_out) through Winograd. */
static void test_winograd_vs_diffusers(void **state) {
    fixture *f = *state;
    m2p_unet_set_winograd_min_pixels(f->unet, 0);
    run_case(f, "a", 8, 16, 2);
    run_case(f, "b", 6, 10, 1);
    m2p_unet_set_winograd_min_pixels(f->unet, M2P_UNET_WINOGRAD_MIN_PIXELS);
}

static void fill(float *x, size_t n, uint32_t seed, float scale) {
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = scale * ((float)(s >> 8) / 16777216.0f - 0.5f);
    }
}

/* Each image of a batch of 3 is bitwise the same image run alone. */
static void check_batch_bitwise(fixture *f, int h, int w, int context_n, int wino_min) {
    enum { N = 3, T = 77, D = 32, CD = 32 };
    size_t per = (size_t)4 * (size_t)h * (size_t)w;
    float *sample = m2p_malloc_array(N * per, sizeof(float));
    float *ctx = m2p_malloc_array((size_t)N * T * D, sizeof(float));
    float *both = m2p_malloc_array(N * per, sizeof(float));
    float *one = m2p_malloc_array(per, sizeof(float));
    assert_true(sample != NULL && ctx != NULL && both != NULL && one != NULL);
    float cond[N * CD];
    float ts[N] = {999.0f, 759.0f, 259.0f};
    fill(sample, N * per, 7u + (uint32_t)h, 2.0f);
    fill(ctx, (size_t)N * T * D, 11u, 1.0f);
    fill(cond, N * CD, 13u, 1.0f);
    m2p_unet_set_winograd_min_pixels(f->unet, wino_min);
    m2p_error err;
    m2p_unet_input in = {sample, N, h, w, ts, cond, ctx, context_n, T};
    assert_int_equal(m2p_unet_forward(f->unet, &in, both, &err), M2P_OK);
    for (int i = 0; i < N; i++) {
        const float *c1 = context_n == 1 ? ctx : ctx + (size_t)i * T * D;
        m2p_unet_input in1 = {sample + (size_t)i * per, 1, h, w, ts + i, cond + i * CD, c1, 1, T};
        assert_int_equal(m2p_unet_forward(f->unet, &in1, one, &err), M2P_OK);
        if (memcmp(one, both + (size_t)i * per, per * sizeof(float)) != 0) {
            fail_msg("image %d of 3 differs from the same image alone (%dx%d, context_n %d, winograd from %d px)", i,
                     h, w, context_n, wino_min);
        }
    }
    m2p_unet_set_winograd_min_pixels(f->unet, M2P_UNET_WINOGRAD_MIN_PIXELS);
    m2p_free(sample);
    m2p_free(ctx);
    m2p_free(both);
    m2p_free(one);
}

static void test_batch_bitwise_levels(void **state) {
    fixture *f = *state;
    check_batch_bitwise(f, 9, 11, 3, 20); /* Winograd at 9×11 and 5×6, im2col at 3×3 and 2×2 */
    check_batch_bitwise(f, 9, 11, 1, 0);  /* Winograd everywhere, broadcast text */
    check_batch_bitwise(f, 16, 24, 3, M2P_UNET_WINOGRAD_MIN_PIXELS); /* default: Winograd at 16×24 only */
    check_batch_bitwise(f, 7, 5, 1, -1);  /* never Winograd */
}

static void test_embeddings(void **state) {
    fixture *f = *state;
    float *g = nnfx_load(f->ref, "g_emb8", NULL);
    float mine[32];
    m2p_unet_guidance_embedding(8.0, 32, mine);
    NNFX_ASSERT_CLOSE("guidance embedding", mine, g, 32, 1e-5, 1e-5);
    float *t = nnfx_load(f->ref, "t_emb", NULL);
    float te[64];
    m2p_unet_timestep_embedding(999.0f, 32, true, 0.0f, te);
    m2p_unet_timestep_embedding(759.0f, 32, true, 0.0f, te + 32);
    NNFX_ASSERT_CLOSE("timestep embedding", te, t, 64, 1e-5, 1e-5);
    m2p_free(g);
    m2p_free(t);
}

/* Image 1 of the batch run alone gives the same output as in the batch. */
static void test_batch_equals_single(void **state) {
    fixture *f = *state;
    float *sample = nnfx_load(f->ref, "a_sample", NULL);
    float *ts = nnfx_load(f->ref, "a_timesteps", NULL);
    float *cond = nnfx_load(f->ref, "a_cond", NULL);
    float *ctx = nnfx_load(f->ref, "a_context", NULL);
    size_t per = 4 * 8 * 16;
    float both[2 * 4 * 8 * 16];
    float one[4 * 8 * 16];
    m2p_error err;
    m2p_unet_input in2 = {sample, 2, 8, 16, ts, cond, ctx, 2, 77};
    assert_int_equal(m2p_unet_forward(f->unet, &in2, both, &err), M2P_OK);
    m2p_unet_input in1 = {sample + per, 1, 8, 16, ts + 1, cond + 32, ctx + 77 * 32, 1, 77};
    assert_int_equal(m2p_unet_forward(f->unet, &in1, one, &err), M2P_OK);
    NNFX_ASSERT_CLOSE("single vs batch", one, both + per, per, 1e-6, 1e-6);
    /* Bad inputs are refused, not run. */
    m2p_unet_input bad = in2;
    bad.context_n = 3;
    assert_int_equal(m2p_unet_forward(f->unet, &bad, both, &err), M2P_E_INVALID_ARG);
    bad = in2;
    bad.n = 0;
    assert_int_equal(m2p_unet_forward(f->unet, &bad, both, &err), M2P_E_INVALID_ARG);
    m2p_free(sample);
    m2p_free(ts);
    m2p_free(cond);
    m2p_free(ctx);
}

static void test_macs(void **state) {
    fixture *f = *state;
    double m1 = m2p_unet_macs(f->unet, 1, 8, 8, 77);
    double m2 = m2p_unet_macs(f->unet, 2, 8, 8, 77);
    assert_true(m1 > 1e5);
    assert_true(m2 > 1.9 * m1 && m2 < 2.1 * m1);
    assert_true(m2p_unet_param_count(f->unet) > 100000);
}

/* Copies the tiny model to a temp folder and patches bytes of the UNet's safetensors header. */
static void patched_copy(char *dir, size_t cap, const char *from, const char *to) {
    char src[1024];
    m2p_test_tmpdir(dir, cap);
    char cmd[3000];
    (void)snprintf(cmd, sizeof cmd, "cp -r '%s'/. '%s'/", tiny_dir(src, sizeof src), dir);
    assert_int_equal(system(cmd), 0);
    char path[1200];
    (void)snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", dir);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    unsigned char len8[8];
    assert_int_equal(fread(len8, 1, 8, fp), 8);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) {
        hl = (hl << 8) | len8[i];
    }
    assert_true(hl < 10u * 1024 * 1024);
    char *hdr = malloc(hl + 1);
    assert_non_null(hdr);
    assert_int_equal(fread(hdr, 1, hl, fp), hl);
    hdr[hl] = '\0';
    char *at = strstr(hdr, from);
    assert_non_null(at);
    assert_int_equal(strlen(from), strlen(to));
    memcpy(at, to, strlen(to));
    assert_int_equal(fseek(fp, 8, SEEK_SET), 0);
    assert_int_equal(fwrite(hdr, 1, hl, fp), hl);
    assert_int_equal(fclose(fp), 0);
    free(hdr);
}

static m2p_code open_unet(const char *dir, m2p_error *err) {
    m2p_nn_model *m = NULL;
    m2p_unet *u = NULL;
    m2p_code rc = m2p_nn_model_open(dir, M2P_NN_LOAD_UNET, &m, err);
    if (rc == M2P_OK) {
        rc = m2p_unet_create_from_model(m, &u, err);
        if (rc != M2P_OK) {
            assert_null(u);
        }
    }
    m2p_unet_free(u);
    m2p_nn_model_free(m);
    return rc;
}

static void test_missing_tensor(void **state) {
    (void)state;
    char dir[64];
    patched_copy(dir, sizeof dir, "\"mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight\"",
                 "\"mid_block.attentions.0.transformer_blocks.0.attn2.to_z.weight\"");
    m2p_error err;
    m2p_code rc = open_unet(dir, &err);
    assert_int_equal(rc, M2P_E_MODEL_TENSOR_MISSING);
    assert_non_null(strstr(err.detail, "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight"));
    m2p_test_rmdir(dir);
}

static void test_wrong_shape(void **state) {
    (void)state;
    char dir[64];
    patched_copy(dir, sizeof dir, "\"conv_in.weight\":{\"dtype\":\"F16\",\"shape\":[32,4,3,3]",
                 "\"conv_in.weight\":{\"dtype\":\"F16\",\"shape\":[32,4,9,1]");
    m2p_error err;
    m2p_code rc = open_unet(dir, &err);
    assert_int_equal(rc, M2P_E_MODEL_SHAPE);
    assert_non_null(strstr(err.detail, "conv_in.weight"));
    m2p_test_rmdir(dir);
}

static void test_config_refusals(void **state) {
    fixture *f = *state;
    m2p_nn_unet_config mc = *m2p_nn_model_unet_config(f->model);
    m2p_unet_config c;
    m2p_error err;
    assert_int_equal(m2p_unet_config_from_model(&mc, &c, &err), M2P_OK);
    assert_int_equal(c.n_blocks, 4);
    assert_int_equal(c.time_cond_proj_dim, 32);
    m2p_nn_unet_config bad = mc;
    bad.center_input_sample = true;
    assert_int_equal(m2p_unet_config_from_model(&bad, &c, &err), M2P_E_MODEL_CONFIG);
    bad = mc;
    bad.layers_per_block = M2P_UNET_MAX_LAYERS + 1;
    assert_int_equal(m2p_unet_config_from_model(&bad, &c, &err), M2P_E_MODEL_CONFIG);
    bad = mc;
    bad.heads[1] = 5;
    assert_int_equal(m2p_unet_config_from_model(&bad, &c, &err), M2P_E_MODEL_CONFIG);
}

/* Naive attention in double: the reference of m2p_unet_attention. */
static void naive_attention(const float *q, const float *k, const float *v, size_t kv_bs, int b, int tq, int tk, int heads,
                            int dh, float *out) {
    int c = heads * dh;
    double *s = malloc(sizeof(double) * (size_t)tk);
    assert_non_null(s);
    for (int bi = 0; bi < b; bi++) {
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < tq; i++) {
                const float *qi = q + ((size_t)bi * tq + i) * c + (size_t)h * dh;
                double mx = -1e300;
                for (int j = 0; j < tk; j++) {
                    const float *kj = k + bi * kv_bs + (size_t)j * c + (size_t)h * dh;
                    double d = 0;
                    for (int e = 0; e < dh; e++) {
                        d += (double)qi[e] * kj[e];
                    }
                    s[j] = d / sqrt((double)dh);
                    mx = s[j] > mx ? s[j] : mx;
                }
                double sum = 0;
                for (int j = 0; j < tk; j++) {
                    s[j] = exp(s[j] - mx);
                    sum += s[j];
                }
                for (int e = 0; e < dh; e++) {
                    double acc = 0;
                    for (int j = 0; j < tk; j++) {
                        acc += s[j] * v[bi * kv_bs + (size_t)j * c + (size_t)h * dh + e];
                    }
                    out[((size_t)bi * tq + i) * c + (size_t)h * dh + e] = (float)(acc / sum);
                }
            }
        }
    }
    free(s);
}

static void test_attention_op(void **state) {
    (void)state;
    /* tq not a multiple of the query block; tk not a multiple of 8 (vector tail); shared and per-image k/v. */
    enum { B = 2, TQ = 300, TK = 77, H = 3, DH = 5, C = H * DH }; /* TQ: one full query block + a partial one */
    static float q[B * TQ * C], k[B * TK * C], v[B * TK * C], out[B * TQ * C], ref[B * TQ * C];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        x = x * 1664525u + 1013904223u;
        q[i] = (float)((x >> 8) & 0xffff) / 65536.0f * 6.0f - 3.0f;
    }
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        x = x * 1664525u + 1013904223u;
        k[i] = (float)((x >> 8) & 0xffff) / 65536.0f * 6.0f - 3.0f;
        x = x * 1664525u + 1013904223u;
        v[i] = (float)((x >> 8) & 0xffff) / 65536.0f * 2.0f - 1.0f;
    }
    size_t scratch_n = m2p_unet_attention_scratch(TK);
    float *scratch = malloc(scratch_n * sizeof(float));
    assert_non_null(scratch);
    for (int shared = 0; shared < 2; shared++) {
        size_t bs = shared ? 0 : (size_t)TK * C;
        m2p_unet_attention(q, C, k, C, bs, v, C, bs, B, TQ, TK, H, DH, out, C, scratch);
        naive_attention(q, k, v, bs, B, TQ, TK, H, DH, ref);
        NNFX_ASSERT_CLOSE(shared ? "attention, shared k/v" : "attention", out, ref, sizeof out / sizeof out[0], 2e-6,
                          2e-5);
    }
    free(scratch);
    /* exp against libm over the range the softmax uses and beyond. */
    double worst = 0;
    for (float t = -87.0f; t <= 88.0f; t += 0.01234f) {
        double r = fabs((double)m2p_unet_expf(t) / exp((double)t) - 1.0);
        worst = r > worst ? r : worst;
    }
    assert_true(worst < 5e-7);
    assert_true(m2p_unet_expf(-100.0f) == 0.0f);
    assert_true(m2p_unet_expf(0.0f) == 1.0f);
}

/* Fails the k-th allocation for k = 0, 1, ... until the call succeeds: each failure must be
 * M2P_E_NOMEM with everything freed (ASan's leak check runs at exit). */
static void test_alloc_failures(void **state) {
    fixture *f = *state;
    float *sample = nnfx_load(f->ref, "b_sample", NULL);
    float *ts = nnfx_load(f->ref, "b_timesteps", NULL);
    float *cond = nnfx_load(f->ref, "b_cond", NULL);
    float *ctx = nnfx_load(f->ref, "b_context", NULL);
    float *want = nnfx_load(f->ref, "b_out", NULL);
    static float out[2 * 4 * 6 * 10];
    m2p_unet_input in = {sample, 2, 6, 10, ts, cond, ctx, 1, 77};
    m2p_error err;
    int failures = 0;
    for (long k = 0; k < 100000; k++) {
        m2p_alloc_fail_after(k);
        m2p_code rc = m2p_unet_forward(f->unet, &in, out, &err);
        m2p_alloc_fail_after(-1);
        if (rc == M2P_OK) {
            break;
        }
        assert_int_equal(rc, M2P_E_NOMEM);
        failures++;
    }
    assert_true(failures > 10);
    NNFX_ASSERT_CLOSE("after allocation failures", out, want, sizeof out / sizeof out[0], ATOL, RTOL);
    m2p_unet_config cfg;
    assert_int_equal(m2p_unet_config_from_model(m2p_nn_model_unet_config(f->model), &cfg, &err), M2P_OK);
    for (long k = 0; k < 100; k++) {
        m2p_unet *u = NULL;
        m2p_alloc_fail_after(k);
        m2p_code rc = m2p_unet_create_from_model(f->model, &u, &err);
        m2p_alloc_fail_after(-1);
        if (rc == M2P_OK) {
            m2p_unet_free(u);
            break;
        }
        assert_int_equal(rc, M2P_E_NOMEM);
        assert_null(u);
    }
    m2p_free(sample);
    m2p_free(ts);
    m2p_free(cond);
    m2p_free(ctx);
    m2p_free(want);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_case_a),
        cmocka_unit_test(test_case_b_broadcast_odd_size),
        cmocka_unit_test(test_embeddings),
        cmocka_unit_test(test_batch_equals_single),
        cmocka_unit_test(test_winograd_vs_diffusers),
        cmocka_unit_test(test_batch_bitwise_levels),
        cmocka_unit_test(test_macs),
        cmocka_unit_test(test_missing_tensor),
        cmocka_unit_test(test_wrong_shape),
        cmocka_unit_test(test_config_refusals),
        cmocka_unit_test(test_attention_op),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
