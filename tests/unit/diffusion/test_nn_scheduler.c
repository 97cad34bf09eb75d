/*
 * tests/unit/diffusion/test_nn_scheduler.c — the LCM scheduler against
 * diffusers' LCMScheduler (tests/fixtures/nn/unet/scheduler.safetensors, made
 * by tools/nn/make_unet_fixtures.py): the ᾱ table, the timesteps for 1, 2, 4
 * and 8 steps, c_skip/c_out, a middle step with noise and the last step; the
 * scheduler config parser on good and bad files; the noise generator's
 * distribution and reproducibility.
 */
#include "nn_fixture.h"

#include "diffusion/scheduler.h"

static m2p_lcm_scheduler *tiny_scheduler(void) {
    char path[1024];
    (void)snprintf(path, sizeof path, "%s/tests/fixtures/nn/tiny-lcm/scheduler/scheduler_config.json",
                   m2p_test_source_dir());
    m2p_lcm_config cfg;
    m2p_lcm_config_default(&cfg);
    m2p_error err;
    if (m2p_lcm_config_load(path, &cfg, &err) != M2P_OK) {
        fail_msg("%s", err.detail);
    }
    m2p_lcm_scheduler *s = NULL;
    assert_int_equal(m2p_lcm_create(&cfg, &s, &err), M2P_OK);
    return s;
}

static void test_alphas_and_timesteps(void **state) {
    (void)state;
    m2p_lcm_scheduler *s = tiny_scheduler();
    m2p_nn_st *st = nnfx_open("unet/scheduler.safetensors");
    size_t n = 0;
    float *ac = nnfx_load(st, "alphas_cumprod", &n);
    assert_int_equal(n, 1000);
    float mine[1000];
    for (int t = 0; t < 1000; t++) {
        mine[t] = m2p_lcm_alpha_cumprod(s, t);
    }
    NNFX_ASSERT_CLOSE("alphas_cumprod", mine, ac, 1000, 0.0, 2e-6);
    m2p_free(ac);

    const int counts[] = {1, 2, 4, 8};
    for (size_t i = 0; i < 4; i++) {
        char name[32];
        (void)snprintf(name, sizeof name, "timesteps_%d", counts[i]);
        size_t k = 0;
        float *want = nnfx_load(st, name, &k);
        assert_int_equal(k, (size_t)counts[i]);
        m2p_error err;
        assert_int_equal(m2p_lcm_set_timesteps(s, counts[i], &err), M2P_OK);
        int got_n = 0;
        const int *got = m2p_lcm_timesteps(s, &got_n);
        assert_int_equal(got_n, counts[i]);
        for (int j = 0; j < got_n; j++) {
            assert_int_equal(got[j], (int)want[j]);
        }
        m2p_free(want);
    }
    /* The documented 4-step schedule of LCM_Dreamshaper_v7. */
    m2p_error err;
    assert_int_equal(m2p_lcm_set_timesteps(s, 4, &err), M2P_OK);
    int n4 = 0;
    const int *t4 = m2p_lcm_timesteps(s, &n4);
    assert_int_equal(t4[0], 999);
    assert_int_equal(t4[1], 759);
    assert_int_equal(t4[2], 499);
    assert_int_equal(t4[3], 259);

    float *cs = nnfx_load(st, "c_skip_4", NULL);
    float *co = nnfx_load(st, "c_out_4", NULL);
    float my_cs[4], my_co[4];
    for (int j = 0; j < 4; j++) {
        m2p_lcm_scalings(s, t4[j], &my_cs[j], &my_co[j]);
    }
    NNFX_ASSERT_CLOSE("c_skip", my_cs, cs, 4, 0.0, 1e-5);
    NNFX_ASSERT_CLOSE("c_out", my_co, co, 4, 0.0, 1e-6);
    m2p_free(cs);
    m2p_free(co);

    /* Out-of-range step counts are refused with the render error. */
    assert_int_equal(m2p_lcm_set_timesteps(s, 0, &err), M2P_E_RENDER_STEPS);
    assert_int_equal(m2p_lcm_set_timesteps(s, 51, &err), M2P_E_RENDER_STEPS);
    m2p_nn_st_close(st);
    m2p_lcm_free(s);
}

static void check_step(const m2p_nn_st *st, m2p_lcm_scheduler *s, int idx) {
    char name[64];
    size_t n = 0;
    (void)snprintf(name, sizeof name, "step%d_model_output", idx);
    float *mo = nnfx_load(st, name, &n);
    (void)snprintf(name, sizeof name, "step%d_sample", idx);
    float *x = nnfx_load(st, name, NULL);
    (void)snprintf(name, sizeof name, "step%d_noise", idx);
    float *z = nnfx_load(st, name, NULL);
    (void)snprintf(name, sizeof name, "step%d_prev_sample", idx);
    float *want_prev = nnfx_load(st, name, NULL);
    (void)snprintf(name, sizeof name, "step%d_denoised", idx);
    float *want_den = nnfx_load(st, name, NULL);
    float *den = m2p_malloc_array(n, sizeof(float));
    assert_non_null(den);
    m2p_error err;
    assert_int_equal(m2p_lcm_step(s, idx, mo, x, den, z, n, &err), M2P_OK);
    NNFX_ASSERT_CLOSE("denoised", den, want_den, n, 1e-5, 1e-5);
    NNFX_ASSERT_CLOSE("prev_sample", x, want_prev, n, 1e-5, 1e-5);
    m2p_free(mo);
    m2p_free(x);
    m2p_free(z);
    m2p_free(want_prev);
    m2p_free(want_den);
    m2p_free(den);
}

static void test_step_vs_diffusers(void **state) {
    (void)state;
    m2p_lcm_scheduler *s = tiny_scheduler();
    m2p_nn_st *st = nnfx_open("unet/scheduler.safetensors");
    m2p_error err;
    assert_int_equal(m2p_lcm_set_timesteps(s, 4, &err), M2P_OK);
    check_step(st, s, 1);
    check_step(st, s, 3);
    /* A middle step without noise is a programming error, reported, not a crash. */
    float v[4] = {0};
    assert_int_equal(m2p_lcm_step(s, 0, v, v, NULL, NULL, 4, &err), M2P_E_INTERNAL);
    assert_int_equal(m2p_lcm_step(s, 4, v, v, NULL, v, 4, &err), M2P_E_INTERNAL);
    m2p_nn_st_close(st);
    m2p_lcm_free(s);
}

static void test_config_parse(void **state) {
    (void)state;
    m2p_lcm_config cfg;
    m2p_error err;
    m2p_lcm_config_default(&cfg);
    const char *good = "{\"_class_name\":\"LCMScheduler\",\"original_inference_steps\":25,\"beta_schedule\":\"linear\","
                       "\"timestep_scaling\":5.0,\"steps_offset\":1,\"timestep_spacing\":\"leading\"}";
    assert_int_equal(m2p_lcm_config_parse(good, strlen(good), &cfg, &err), M2P_OK);
    assert_int_equal(cfg.original_inference_steps, 25);
    assert_int_equal(cfg.beta_schedule, M2P_LCM_BETA_LINEAR);
    assert_true(cfg.timestep_scaling == 5.0);
    /* Each malformed config is MODEL_CONFIG with a detail naming what is wrong (jansson parses;
     * the detail keeps the key, or jansson's message and line for broken JSON). */
    static const struct {
        const char *json, *detail;
    } bad[] = {
        {"{\"thresholding\":true}", "thresholding"},
        {"{\"rescale_betas_zero_snr\":true}", "rescale_betas_zero_snr"},
        {"{\"beta_schedule\":\"squaredcos_cap_v2\"}", "squaredcos_cap_v2"},
        {"{\"prediction_type\":\"flow\"}", "prediction_type 'flow'"},
        {"{\"trained_betas\":[0.1,0.2]}", "trained_betas"},
        {"{\"num_train_timesteps\":\"many\"}", "num_train_timesteps is not a number"},
        {"{\"num_train_timesteps\":1e12}", "num_train_timesteps"},
        {"{\"original_inference_steps\":2000}", "original_inference_steps"},
        {"{\"beta_start\":-1}", "betas"},
        {"{\"set_alpha_to_one\":\"yes\"}", "set_alpha_to_one is not true or false"},
        {"{\"beta_end\":0.01,\"beta_end\":0.02}", "duplicate"},
        {"[1,2]", "not a JSON object"},
        {"{not json", "line 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m2p_lcm_config_default(&cfg);
        m2p_error_clear(&err);
        m2p_code rc = m2p_lcm_config_parse(bad[i].json, strlen(bad[i].json), &cfg, &err);
        if (rc != M2P_E_MODEL_CONFIG || strstr(err.detail, bad[i].detail) == NULL) {
            fail_msg("config %s: got %d '%s', expected MODEL_CONFIG naming '%s'", bad[i].json, rc, err.detail,
                     bad[i].detail);
        }
    }
    assert_int_equal(m2p_lcm_config_load("/nonexistent/scheduler_config.json", &cfg, &err), M2P_E_MODEL_MISSING);
}

static void test_rng(void **state) {
    (void)state;
    enum { N = 20000 };
    static float a[N], b[N];
    m2p_lcm_rng r1, r2;
    m2p_lcm_rng_seed(&r1, 42);
    m2p_lcm_rng_seed(&r2, 42);
    m2p_lcm_rng_normal(&r1, a, N);
    m2p_lcm_rng_normal(&r2, b, N);
    assert_memory_equal(a, b, sizeof a);
    double sum = 0.0, sq = 0.0;
    for (int i = 0; i < N; i++) {
        sum += a[i];
        sq += (double)a[i] * a[i];
    }
    double mean = sum / N;
    double var = sq / N - mean * mean;
    assert_true(fabs(mean) < 0.03);
    assert_true(fabs(var - 1.0) < 0.05);
    /* A different seed gives a different stream; draws continue the stream. */
    m2p_lcm_rng_seed(&r2, 43);
    m2p_lcm_rng_normal(&r2, b, N);
    assert_true(memcmp(a, b, sizeof a) != 0);
    m2p_lcm_rng_seed(&r1, 42);
    m2p_lcm_rng_normal(&r1, b, 100);
    m2p_lcm_rng_normal(&r1, b + 100, 100);
    assert_memory_equal(a, b, 200 * sizeof(float));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alphas_and_timesteps),
        cmocka_unit_test(test_step_vs_diffusers),
        cmocka_unit_test(test_config_parse),
        cmocka_unit_test(test_rng),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
