/*
 * tests/unit/render/test_sonic.c — the sonic renderer: every style paints a
 * real picture, seeds vary it, the same seed repeats it to the byte (on any
 * thread count), contrasting songs get contrasting palettes, sections draw
 * their own slice, odd features and failures are handled.
 */
#include "test_util.h"

#include <math.h>
#include <stdatomic.h>

#include "core/alloc.h"
#include "core/fs.h"
#include "render/backend.h"
#include "render/sonic_int.h"
#include "sonic_fixtures.h"

#define EDGE 128

typedef struct stats {
    double luma_mean, luma_sd;
    double hue_deg, sat_mean;
    int colours; /* distinct 5-bit colours */
} stats;

static stats image_stats(const m2p_image *img) {
    stats s = {0};
    static uint8_t seen[32 * 32 * 32];
    memset(seen, 0, sizeof seen);
    double sum = 0;
    double sum2 = 0;
    double hx = 0;
    double hy = 0;
    double sat = 0;
    size_t n = (size_t)img->width * (size_t)img->height;
    for (int y = 0; y < img->height; y++) {
        for (int x = 0; x < img->width; x++) {
            const uint8_t *p = img->pixels + (size_t)y * img->stride + (size_t)x * 3;
            double r = p[0] / 255.0;
            double g = p[1] / 255.0;
            double b = p[2] / 255.0;
            double l = 0.2126 * r + 0.7152 * g + 0.0722 * b;
            sum += l;
            sum2 += l * l;
            double mx = fmax(r, fmax(g, b));
            double mn = fmin(r, fmin(g, b));
            double c = mx - mn;
            sat += c;
            if (c > 0.05) {
                double h;
                if (mx == r) {
                    h = fmod((g - b) / c + 6.0, 6.0);
                } else if (mx == g) {
                    h = (b - r) / c + 2.0;
                } else {
                    h = (r - g) / c + 4.0;
                }
                h *= M_PI / 3.0;
                hx += c * cos(h);
                hy += c * sin(h);
            }
            int k = (p[0] >> 3) << 10 | (p[1] >> 3) << 5 | (p[2] >> 3);
            if (!seen[k]) {
                seen[k] = 1;
                s.colours++;
            }
        }
    }
    s.luma_mean = sum / n * 255.0;
    s.luma_sd = sqrt(fmax(0.0, sum2 / n - (sum / n) * (sum / n))) * 255.0;
    s.hue_deg = fmod(atan2(hy, hx) * 180.0 / M_PI + 360.0, 360.0);
    s.sat_mean = sat / n;
    return s;
}

static double mean_abs_diff(const m2p_image *a, const m2p_image *b) {
    double d = 0;
    size_t n = (size_t)a->height * a->stride;
    for (size_t i = 0; i < n; i++) {
        d += abs((int)a->pixels[i] - (int)b->pixels[i]);
    }
    return d / (double)n;
}

static bool same_pixels(const m2p_image *a, const m2p_image *b) {
    return a->width == b->width && a->height == b->height &&
           memcmp(a->pixels, b->pixels, (size_t)a->height * a->stride) == 0;
}

typedef struct fx {
    m2p_render_backend be;
    m2p_features *f[3];
    m2p_prompt prompt;
} fx;

static int setup(void **state) {
    fx *x = calloc(1, sizeof *x);
    m2p_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.threads = 2;
    if (m2p_sonic_backend_create(&cfg, &x->be, NULL) != M2P_OK) {
        return -1;
    }
    for (int k = 0; k < 3; k++) {
        x->f[k] = fix_make((fix_kind)k);
    }
    x->prompt.positive = "a poster";
    x->prompt.negative = "";
    x->prompt.style = "abstract";
    *state = x;
    return 0;
}

static int teardown(void **state) {
    fx *x = *state;
    x->be.destroy(x->be.self);
    for (int k = 0; k < 3; k++) {
        fix_free(x->f[k]);
    }
    free(x);
    return 0;
}

static m2p_render_request request(fx *x, const m2p_features *f, const char *style, int n, const uint32_t *seeds) {
    m2p_render_request r = {&x->prompt, f, style, n, EDGE, EDGE, seeds, 0, 0, NULL, NULL, false, -1};
    return r;
}

static void render(fx *x, const m2p_render_request *req, m2p_image **imgs) {
    m2p_error err;
    m2p_code rc = x->be.render(x->be.self, req, NULL, imgs, &err);
    if (rc != M2P_OK) {
        fail_msg("render %s: %s (%s)", req->style, m2p_errname(rc), err.detail);
    }
}

static void free_all(m2p_image **imgs, int n) {
    for (int i = 0; i < n; i++) {
        m2p_image_free(imgs[i]);
    }
}

static void test_backend_shape(void **state) {
    fx *x = *state;
    assert_string_equal(x->be.name, "sonic");
    assert_int_equal(x->be.default_size, 1024);
    assert_string_equal(x->be.model(x->be.self), "procedural");
}

/* Every style: a real picture (not blank, not flat, many colours), seeds
 * differ clearly, the same seed repeats to the byte. */
static void test_every_style(void **state) {
    fx *x = *state;
    uint32_t seeds[3] = {1u, 2u, 1u};
    int count = 0;
    for (int i = 0; sn_style_names[i] != NULL; i++, count++) {
        const char *style = sn_style_names[i];
        m2p_render_request req = request(x, x->f[i % 3], style, 3, seeds);
        m2p_image *imgs[3];
        double t0 = m2p_now_monotonic();
        render(x, &req, imgs);
        double dt = m2p_now_monotonic() - t0;
        for (int k = 0; k < 3; k++) {
            assert_int_equal(imgs[k]->width, EDGE);
            assert_int_equal(imgs[k]->seed, seeds[k]);
            stats s = image_stats(imgs[k]);
            bool pixel = strcmp(style, "pixel-art") == 0;
            if (pixel && (s.colours < 5 || s.colours > 8)) { /* the limited palette is the point */
                fail_msg("pixel-art seed %u: %d colours, want 5..8", seeds[k], s.colours);
            }
            if (s.luma_sd < 6.0 || (!pixel && s.colours < 60) || s.luma_mean < 8.0 || s.luma_mean > 250.0) {
                fail_msg("%s seed %u: flat or blank (luma %.1f sd %.1f, %d colours)", style, seeds[k], s.luma_mean,
                         s.luma_sd, s.colours);
            }
        }
        double d = mean_abs_diff(imgs[0], imgs[1]);
        if (d < 6.0) {
            fail_msg("%s: seeds 1 and 2 too similar (mean abs diff %.2f)", style, d);
        }
        if (!same_pixels(imgs[0], imgs[2])) {
            fail_msg("%s: the same seed gave different pixels", style);
        }
        if (dt > 20.0) {
            fail_msg("%s: 3 posters of %d² took %.1f s", style, EDGE, dt);
        }
        free_all(imgs, 3);
    }
    assert_int_equal(count, 14);
}

/* Composition distance of two posters: both are area-averaged to a 16 x 16
 * grid of luma (grain and fine texture gone), each grid is standardised
 * (minus its mean, over its spread + 8 levels: a palette change alone — a
 * brighter or a bluer version of the same picture — scores ~0), and the
 * result is the mean absolute difference of the two grids, in standard
 * deviations. Same layout ~0.02-0.05; the sun moved by a fifth of the
 * width, a horizon by a tenth of the height or a different scene: > 0.2. */
#define COMP_GRID 16
static void comp_grid(const m2p_image *img, double g[COMP_GRID * COMP_GRID]) {
    int bw = img->width / COMP_GRID;
    int bh = img->height / COMP_GRID;
    double mean = 0;
    for (int gy = 0; gy < COMP_GRID; gy++) {
        for (int gx = 0; gx < COMP_GRID; gx++) {
            double sum = 0;
            for (int y = gy * bh; y < (gy + 1) * bh; y++) {
                const uint8_t *row = img->pixels + (size_t)y * img->stride;
                for (int x = gx * bw; x < (gx + 1) * bw; x++) {
                    const uint8_t *px = row + (size_t)x * 3;
                    sum += 0.2126 * px[0] + 0.7152 * px[1] + 0.0722 * px[2];
                }
            }
            g[gy * COMP_GRID + gx] = sum / (bw * bh);
            mean += g[gy * COMP_GRID + gx];
        }
    }
    mean /= COMP_GRID * COMP_GRID;
    double var = 0;
    for (int i = 0; i < COMP_GRID * COMP_GRID; i++) {
        var += (g[i] - mean) * (g[i] - mean);
    }
    double sd = sqrt(var / (COMP_GRID * COMP_GRID)) + 8.0;
    for (int i = 0; i < COMP_GRID * COMP_GRID; i++) {
        g[i] = (g[i] - mean) / sd;
    }
}

static double comp_dist(const m2p_image *a, const m2p_image *b) {
    double ga[COMP_GRID * COMP_GRID];
    double gb[COMP_GRID * COMP_GRID];
    comp_grid(a, ga);
    comp_grid(b, gb);
    double d = 0;
    for (int i = 0; i < COMP_GRID * COMP_GRID; i++) {
        d += fabs(ga[i] - gb[i]);
    }
    return d / (COMP_GRID * COMP_GRID);
}

/* The floor every style must clear: the least distance between any two of
 * four consecutive seeds (what `make -n 4` gives), on two songs. */
#define COMP_FLOOR 0.14

/* Variations of a style are different compositions, not recolourings: for
 * every style, every pair among seeds s..s+3 is at least COMP_FLOOR apart. */
static void test_variations_distinct(void **state) {
    fx *x = *state;
    uint32_t seeds[4] = {1000u, 1001u, 1002u, 1003u};
    bool failed = false;
    char report[4096];
    size_t at = 0;
    for (int i = 0; sn_style_names[i] != NULL; i++) {
        const char *style = sn_style_names[i];
        double worst = 1e9;
        double sum = 0;
        int pairs = 0;
        for (int song = 0; song < 2; song++) {
            m2p_render_request req = request(x, x->f[(i + song) % 3], style, 4, seeds);
            m2p_image *imgs[4];
            render(x, &req, imgs);
            for (int a = 0; a < 4; a++) {
                for (int b = a + 1; b < 4; b++) {
                    double d = comp_dist(imgs[a], imgs[b]);
                    worst = fmin(worst, d);
                    sum += d;
                    pairs++;
                }
            }
            free_all(imgs, 4);
        }
        at += (size_t)snprintf(report + at, sizeof report - at, "  %-13s min %.3f mean %.3f%s\n", style, worst,
                               sum / pairs, worst < COMP_FLOOR ? "  <-- below the floor" : "");
        failed |= worst < COMP_FLOOR;
    }
    print_message("composition distance of 4 consecutive seeds (floor %.2f):\n%s", COMP_FLOOR, report);
    if (failed) {
        fail_msg("some styles repeat one composition across seeds");
    }
    /* The metric itself: a recoloured copy is ~0, a mirrored one is far. */
    uint32_t seed = 7;
    m2p_render_request req = request(x, x->f[0], "synthwave", 1, &seed);
    m2p_image *img;
    render(x, &req, &img);
    m2p_image *tint = NULL;
    m2p_image *flip = NULL;
    assert_int_equal(m2p_image_create(img->width, img->height, &tint), M2P_OK);
    assert_int_equal(m2p_image_create(img->width, img->height, &flip), M2P_OK);
    for (int y = 0; y < img->height; y++) {
        for (int xx = 0; xx < img->width * 3; xx++) {
            uint8_t v = img->pixels[(size_t)y * img->stride + xx];
            tint->pixels[(size_t)y * tint->stride + xx] = (uint8_t)(xx % 3 == 2 ? 255 - (255 - v) / 2 : v * 3 / 4);
            flip->pixels[(size_t)(img->height - 1 - y) * flip->stride + xx] = v;
        }
    }
    assert_true(comp_dist(img, img) == 0.0);
    if (comp_dist(img, tint) > 0.08 || comp_dist(img, flip) < 0.3) {
        fail_msg("metric: tinted %.3f, flipped %.3f", comp_dist(img, tint), comp_dist(img, flip));
    }
    m2p_image_free(tint);
    m2p_image_free(flip);
    m2p_image_free(img);
}

static void test_style_names(void **state) {
    fx *x = *state;
    const char *canon = NULL;
    assert_ptr_equal(sn_style_find("Oil Painting", &canon), sn_style_find("oil-painting", NULL));
    assert_string_equal(canon, "oil-painting");
    (void)sn_style_find("retro-poster", &canon);
    assert_string_equal(canon, "retro-poster");
    (void)sn_style_find("ALBUM COVER", &canon);
    assert_string_equal(canon, "album-cover");
    (void)sn_style_find("no such style", &canon);
    assert_string_equal(canon, "abstract");
    (void)sn_style_find(NULL, &canon);
    assert_string_equal(canon, "abstract");
    /* Unknown style → the abstract poster, same pixels; NULL style → the prompt's. */
    uint32_t seed = 9;
    m2p_render_request a = request(x, x->f[0], "abstract", 1, &seed);
    m2p_render_request b = request(x, x->f[0], "bogus-style", 1, &seed);
    m2p_render_request c = request(x, x->f[0], NULL, 1, &seed);
    x->prompt.style = "ink";
    m2p_render_request d = request(x, x->f[0], "ink", 1, &seed);
    m2p_image *ia;
    m2p_image *ib;
    m2p_image *ic;
    m2p_image *id;
    render(x, &a, &ia);
    render(x, &b, &ib);
    render(x, &c, &ic);
    render(x, &d, &id);
    assert_true(same_pixels(ia, ib));
    assert_true(same_pixels(ic, id));
    assert_false(same_pixels(ia, ic));
    x->prompt.style = "abstract";
    m2p_image_free(ia);
    m2p_image_free(ib);
    m2p_image_free(ic);
    m2p_image_free(id);
}

static double hue_dist(double a, double b) {
    double d = fabs(a - b);
    return d > 180 ? 360 - d : d;
}

/* A bright calm major song and a dark loud minor song in a far key: the
 * palettes differ in brightness and hue, for every seed. */
static void test_palette_contrast(void **state) {
    fx *x = *state;
    m2p_features bright = *x->f[0];
    bright.key = 2; /* D major: amber */
    bright.mode = M2P_MODE_MAJOR;
    bright.energy = 0.35;
    bright.brightness = 0.9;
    m2p_features dark = *x->f[0];
    dark.key = 1; /* C# minor: blue-violet on the wheel */
    dark.mode = M2P_MODE_MINOR;
    dark.energy = 0.9;
    dark.brightness = 0.1;
    static const char *const styles[] = {"abstract", "realistic", "album-cover"};
    for (int si = 0; si < 3; si++) {
        uint32_t seeds[3] = {3u, 77u, 123456u};
        m2p_render_request rb = request(x, &bright, styles[si], 3, seeds);
        m2p_render_request rd = request(x, &dark, styles[si], 3, seeds);
        m2p_image *ib[3];
        m2p_image *id[3];
        render(x, &rb, ib);
        render(x, &rd, id);
        for (int k = 0; k < 3; k++) {
            stats sb = image_stats(ib[k]);
            stats sd = image_stats(id[k]);
            if (sb.luma_mean < sd.luma_mean + 8.0) {
                fail_msg("%s seed %u: bright song luma %.1f not above dark song %.1f", styles[si], seeds[k],
                         sb.luma_mean, sd.luma_mean);
            }
            if (hue_dist(sb.hue_deg, sd.hue_deg) < 40.0) {
                fail_msg("%s seed %u: hues %.0f and %.0f too close", styles[si], seeds[k], sb.hue_deg, sd.hue_deg);
            }
        }
        free_all(ib, 3);
        free_all(id, 3);
    }
    /* The key wheel itself: fifths apart are neighbours, a tritone is opposite. */
    assert_true(hue_dist(sn_key_hue(0), sn_key_hue(7)) == 30.0);
    assert_true(hue_dist(sn_key_hue(0), sn_key_hue(6)) == 180.0);
}

static void test_sections(void **state) {
    fx *x = *state;
    uint32_t seed = 5;
    m2p_image *whole;
    m2p_image *s[3];
    m2p_render_request r = request(x, x->f[1], "album-cover", 1, &seed);
    render(x, &r, &whole);
    for (int k = 0; k < 3; k++) {
        r.section = k * 2; /* sections 0 (quiet intro), 2 (drop), 4 (second drop) */
        render(x, &r, &s[k]);
        assert_true(mean_abs_diff(whole, s[k]) > 2.0);
    }
    assert_true(mean_abs_diff(s[0], s[1]) > 2.0);
    /* The drop is louder than the intro: its poster carries more ink. */
    assert_true(image_stats(s[1]).luma_sd != image_stats(s[0]).luma_sd);
    m2p_image *again;
    r.section = 2;
    render(x, &r, &again);
    assert_true(same_pixels(again, s[1]));
    m2p_image_free(again);
    m2p_image_free(whole);
    free_all(s, 3);
}

/* Image i depends on seeds[i] only: thread count and batch position do not matter. */
static void test_threads_and_batch(void **state) {
    fx *x = *state;
    m2p_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.threads = 1;
    m2p_render_backend one;
    assert_int_equal(m2p_sonic_backend_create(&cfg, &one, NULL), M2P_OK);
    uint32_t seeds[3] = {10u, 20u, 30u};
    m2p_render_request r = request(x, x->f[2], "geometric", 3, seeds);
    m2p_image *a[3];
    m2p_image *b[3];
    assert_int_equal(one.render(one.self, &r, NULL, a, NULL), M2P_OK);
    render(x, &r, b);
    for (int k = 0; k < 3; k++) {
        assert_true(same_pixels(a[k], b[k]));
    }
    uint32_t only = 30u;
    m2p_render_request r1 = request(x, x->f[2], "geometric", 1, &only);
    m2p_image *c;
    render(x, &r1, &c);
    assert_true(same_pixels(c, a[2]));
    m2p_image_free(c);
    free_all(a, 3);
    free_all(b, 3);
    one.destroy(one.self);
}

/* Features without spectrogram, curve, beats or sections, and with NaN fields: still a poster. */
static void test_sparse_features(void **state) {
    fx *x = *state;
    m2p_features f;
    memset(&f, 0, sizeof f);
    f.tempo_bpm = NAN;
    f.energy = INFINITY;
    f.brightness = -3;
    f.key = 40;
    f.duration_s = NAN;
    uint32_t seeds[2] = {1, 2};
    for (int i = 0; sn_style_names[i] != NULL; i++) {
        m2p_render_request r = request(x, &f, sn_style_names[i], 2, seeds);
        r.width = 96;
        r.height = 160; /* portrait */
        m2p_image *imgs[2];
        render(x, &r, imgs);
        assert_int_equal(imgs[0]->width, 96);
        assert_int_equal(imgs[0]->height, 160);
        stats s = image_stats(imgs[0]);
        if (s.luma_sd < 3.0) {
            fail_msg("%s with empty features is flat (sd %.1f)", sn_style_names[i], s.luma_sd);
        }
        free_all(imgs, 2);
    }
}

static void test_refusals_and_cancel(void **state) {
    fx *x = *state;
    uint32_t seeds[2] = {1, 2};
    m2p_render_request r = request(x, x->f[0], "abstract", 2, seeds);
    m2p_image *imgs[2] = {NULL, NULL};
    m2p_error err;
    r.width = 100;
    assert_int_equal(x->be.render(x->be.self, &r, NULL, imgs, &err), M2P_E_RENDER_SIZE);
    r.width = EDGE;
    r.n = 17;
    assert_int_equal(x->be.render(x->be.self, &r, NULL, imgs, &err), M2P_E_RENDER_COUNT);
    r.n = 2;
    atomic_bool cancel = true;
    m2p_progress p = {NULL, NULL, NULL, &cancel};
    assert_int_equal(x->be.render(x->be.self, &r, &p, imgs, &err), M2P_E_CANCELLED);
    assert_null(imgs[0]);
    assert_null(imgs[1]);
}

typedef struct counter {
    int calls;
    double last_done, last_total;
} counter;

static void on_report(void *ctx, m2p_step step, double done, double total, const char *msg) {
    counter *c = ctx;
    assert_int_equal(step, M2P_STEP_RENDER);
    assert_non_null(msg);
    c->calls++;
    c->last_done = done;
    c->last_total = total;
}

static void test_progress(void **state) {
    fx *x = *state;
    uint32_t seeds[4] = {1, 2, 3, 4};
    m2p_render_request r = request(x, x->f[0], "minimalist", 4, seeds);
    counter c = {0};
    m2p_progress p = {on_report, NULL, &c, NULL};
    m2p_image *imgs[4];
    assert_int_equal(x->be.render(x->be.self, &r, &p, imgs, NULL), M2P_OK);
    assert_int_equal(c.calls, 5);
    assert_true(c.last_done == 4.0 && c.last_total == 4.0);
    free_all(imgs, 4);
}

static void test_alloc_failures(void **state) {
    fx *x = *state;
    uint32_t seeds[2] = {1, 2};
    m2p_render_request r = request(x, x->f[0], "watercolor", 2, seeds);
    r.width = r.height = 64;
    int failures = 0;
    for (long k = 0; k < 8; k++) {
        m2p_image *imgs[2] = {NULL, NULL};
        m2p_alloc_fail_after(k);
        m2p_code rc = x->be.render(x->be.self, &r, NULL, imgs, NULL);
        m2p_alloc_fail_after(-1);
        assert_true(rc == M2P_OK || rc == M2P_E_NOMEM);
        if (rc == M2P_OK) {
            free_all(imgs, 2);
        } else {
            failures++;
            assert_null(imgs[0]);
            assert_null(imgs[1]);
        }
    }
    assert_true(failures > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_backend_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_style, setup, teardown),
        cmocka_unit_test_setup_teardown(test_variations_distinct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_style_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_palette_contrast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_and_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sparse_features, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_and_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
