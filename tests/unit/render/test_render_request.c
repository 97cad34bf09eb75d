/*
 * tests/unit/render/test_render_request.c — m2p_render_request_check refuses
 * each bad field with its own code and a detail naming the value.
 */
#include "test_util.h"

#include "render/render.h"
#include "sonic_fixtures.h"

typedef struct fx {
    m2p_features *f;
    m2p_prompt prompt;
    uint32_t seeds[M2P_RENDER_MAX_N + 1];
    m2p_render_request req;
} fx;

static int setup(void **state) {
    fx *x = calloc(1, sizeof *x);
    x->f = fix_make(FIX_CALM);
    x->prompt.positive = "a poster";
    x->prompt.negative = "";
    x->prompt.style = "abstract";
    for (int i = 0; i <= M2P_RENDER_MAX_N; i++) {
        x->seeds[i] = (uint32_t)i;
    }
    m2p_render_request r = {&x->prompt, x->f, "abstract", 4, 512, 512, x->seeds, 4, 8.0, NULL, NULL, false, -1};
    x->req = r;
    *state = x;
    return 0;
}

static int teardown(void **state) {
    fx *x = *state;
    fix_free(x->f);
    free(x);
    return 0;
}

static void expect(const m2p_render_request *req, m2p_code want, const char *needle) {
    m2p_error err;
    m2p_error_clear(&err);
    m2p_code rc = m2p_render_request_check(req, &err);
    if (rc != want) {
        fail_msg("want %s, got %s (%s)", m2p_errname(want), m2p_errname(rc), err.detail);
    }
    if (needle != NULL && strstr(err.detail, needle) == NULL) {
        fail_msg("detail '%s' lacks '%s'", err.detail, needle);
    }
}

static void test_good(void **state) {
    fx *x = *state;
    expect(&x->req, M2P_OK, NULL);
    m2p_render_request r = x->req;
    r.width = r.height = 0; /* renderer default */
    r.steps = 0;
    r.guidance = 0;
    expect(&r, M2P_OK, NULL);
    r.width = 64;
    r.height = 4096;
    r.n = 1;
    expect(&r, M2P_OK, NULL);
    r.n = M2P_RENDER_MAX_N;
    r.width = r.height = 1024;
    r.section = 3;
    expect(&r, M2P_OK, NULL);
}

static void test_sizes(void **state) {
    fx *x = *state;
    m2p_render_request r = x->req;
    static const int bad[] = {-8, 1, 8, 56, 63, 100, 513, 4104, 8192, 1 << 30};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = x->req;
        r.width = bad[i];
        expect(&r, M2P_E_RENDER_SIZE, "width");
        r = x->req;
        r.height = bad[i];
        expect(&r, M2P_E_RENDER_SIZE, "height");
    }
    r = x->req;
    r.width = 516;
    expect(&r, M2P_E_RENDER_SIZE, "multiple of 8");
    /* Sixteen 4096² images are too many pixels for one request. */
    r = x->req;
    r.n = 16;
    r.width = r.height = 4096;
    expect(&r, M2P_E_RENDER_SIZE, "pixels");
}

static void test_counts_steps_seeds(void **state) {
    fx *x = *state;
    m2p_render_request r = x->req;
    r.n = 0;
    expect(&r, M2P_E_RENDER_COUNT, "0");
    r.n = 17;
    expect(&r, M2P_E_RENDER_COUNT, "17");
    r.n = -1;
    expect(&r, M2P_E_RENDER_COUNT, NULL);
    r = x->req;
    r.steps = 51;
    expect(&r, M2P_E_RENDER_STEPS, "51");
    r.steps = -1;
    expect(&r, M2P_E_RENDER_STEPS, NULL);
    r = x->req;
    r.seeds = NULL;
    expect(&r, M2P_E_RENDER_SEED, NULL);
    r = x->req;
    r.guidance = 31.0;
    expect(&r, M2P_E_RENDER_GUIDANCE, NULL);
    r.guidance = 0.5;
    expect(&r, M2P_E_RENDER_GUIDANCE, NULL);
    r.guidance = NAN;
    expect(&r, M2P_E_RENDER_GUIDANCE, NULL);
}

static void test_section_and_features(void **state) {
    fx *x = *state;
    m2p_render_request r = x->req;
    r.section = 4; /* the calm fixture has 4 sections */
    expect(&r, M2P_E_RENDER_SECTION, "section 4");
    r.section = -2;
    expect(&r, M2P_E_RENDER_SECTION, NULL);
    r = x->req;
    r.prompt = NULL;
    expect(&r, M2P_E_INVALID_ARG, "prompt");
    r = x->req;
    r.features = NULL;
    expect(&r, M2P_E_INVALID_ARG, "features");
    expect(NULL, M2P_E_INVALID_ARG, NULL);
    /* Inconsistent arrays from a damaged cache entry. */
    m2p_features bad = *x->f;
    r = x->req;
    r.features = &bad;
    bad.spectrogram = NULL;
    expect(&r, M2P_E_RENDER_FEATURES, "spectrogram");
    bad = *x->f;
    bad.spec_bands = -3;
    expect(&r, M2P_E_RENDER_FEATURES, NULL);
    bad = *x->f;
    bad.energy_curve = NULL;
    expect(&r, M2P_E_RENDER_FEATURES, "energy");
    bad = *x->f;
    bad.sections = NULL;
    expect(&r, M2P_E_RENDER_FEATURES, "sections");
    bad = *x->f;
    bad.beats = NULL;
    expect(&r, M2P_E_RENDER_FEATURES, "beats");
    /* No spectrogram at all is fine (sonic synthesises one). */
    bad = *x->f;
    bad.spectrogram = NULL;
    bad.spec_bands = bad.spec_frames = 0;
    expect(&r, M2P_OK, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counts_steps_seeds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_section_and_features, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
