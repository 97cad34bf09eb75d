/*
 * tests/unit/render/test_sonic_layout.c — poster typography: titles in any
 * script render without harm (accents, CJK, emoji, invalid UTF-8, control
 * characters), text stays in the bottom band, long titles shrink and wrap
 * instead of running off the poster.
 */
#include "test_util.h"

#include <cairo.h>

#include "render/backend.h"
#include "render/sonic_int.h"
#include "sonic_fixtures.h"

#define EDGE 256

/* fontconfig's one-time 256-byte leak is suppressed by render/layout.c. */

typedef struct fx {
    m2p_render_backend be;
    m2p_features *f;
    m2p_prompt prompt;
} fx;

static int setup(void **state) {
    fx *x = calloc(1, sizeof *x);
    if (m2p_sonic_backend_create(NULL, &x->be, NULL) != M2P_OK) {
        return -1;
    }
    x->f = fix_make(FIX_ORCH);
    x->prompt.positive = "p";
    x->prompt.negative = "";
    x->prompt.style = "abstract";
    *state = x;
    return 0;
}

static int teardown(void **state) {
    fx *x = *state;
    x->be.destroy(x->be.self);
    fix_free(x->f);
    free(x);
    return 0;
}

static m2p_image *poster(fx *x, const char *style, const char *title, const char *artist, bool layout) {
    uint32_t seed = 4;
    m2p_render_request r = {&x->prompt, x->f, style, 1, EDGE, EDGE, &seed, 0, 0, title, artist, layout, -1};
    m2p_image *img = NULL;
    m2p_error err;
    m2p_code rc = x->be.render(x->be.self, &r, NULL, &img, &err);
    if (rc != M2P_OK) {
        fail_msg("%s: %s", m2p_errname(rc), err.detail);
    }
    return img;
}

/* First and last rows where a and b differ (-1 when equal). */
static void diff_rows(const m2p_image *a, const m2p_image *b, int *first, int *last, long *count) {
    *first = -1;
    *last = -1;
    *count = 0;
    for (int y = 0; y < a->height; y++) {
        const uint8_t *ra = a->pixels + (size_t)y * a->stride;
        const uint8_t *rb = b->pixels + (size_t)y * b->stride;
        for (int x = 0; x < a->width * 3; x++) {
            if (abs((int)ra[x] - (int)rb[x]) > 24) {
                (*count)++;
                if (*first < 0) {
                    *first = y;
                }
                *last = y;
            }
        }
    }
}

static void test_titles_in_any_script(void **state) {
    fx *x = *state;
    static const char *const titles[] = {
        "Caf\xC3\xA9 Ol\xC3\xA9 \xE2\x80\x94 D\xC3\xA9j\xC3\xA0 Vu",        /* accents, dash */
        "\xE5\xA4\x9C\xE3\x81\xAE\xE6\xB5\xB7 (Night Sea)",                 /* CJK */
        "Dance \xF0\x9F\x8E\xB5\xF0\x9F\x94\xA5 Floor",                     /* emoji */
        "\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D \xD8\xB3\xD9\x84\xD8\xA7\xD9\x85", /* Hebrew, Arabic */
        "bad \xC3\x28 utf8 \xFF\xFE",                                       /* invalid bytes */
        "tab\there\nnewline\x01\x7F",                                       /* control characters */
        "",
    };
    m2p_image *plain = poster(x, "abstract", NULL, NULL, false);
    for (size_t i = 0; i < sizeof titles / sizeof titles[0]; i++) {
        m2p_image *img = poster(x, "abstract", titles[i], "Bj\xC3\xB6rk & \xE5\x9D\x82\xE6\x9C\xAC", true);
        int first;
        int last;
        long count;
        diff_rows(plain, img, &first, &last, &count);
        /* Something was set (at least the details line), and only in the bottom band. */
        if (count < 50 || first < EDGE * 0.55) {
            fail_msg("title %zu: %ld changed values, first changed row %d", i, count, first);
        }
        m2p_image_free(img);
    }
    /* A Latin-1 title keeps its readable letters: invalid bytes are dropped, not the rest of the line. */
    m2p_image *latin = poster(x, "abstract", "Caf\xE9 Ol\xE9\x02", NULL, true);
    m2p_image *ascii = poster(x, "abstract", "Caf Ol", NULL, true);
    assert_memory_equal(latin->pixels, ascii->pixels, (size_t)EDGE * latin->stride);
    m2p_image_free(latin);
    m2p_image_free(ascii);
    /* NULL title and artist: BPM and key still set. */
    m2p_image *bare = poster(x, "abstract", NULL, NULL, true);
    int first;
    int last;
    long count;
    diff_rows(plain, bare, &first, &last, &count);
    assert_true(count > 50);
    m2p_image_free(bare);
    m2p_image_free(plain);
}

static void test_long_titles_fit(void **state) {
    fx *x = *state;
    char longt[600];
    longt[0] = 0;
    for (int i = 0; i < 40; i++) {
        strcat(longt, "Everlasting ");
    }
    char word[300];
    memset(word, 'W', 250);
    word[250] = 0; /* one unbreakable word */
    static const char *const styles[] = {"abstract", "retro-poster", "cinematic", "minimalist", "ink"};
    for (size_t s = 0; s < sizeof styles / sizeof styles[0]; s++) {
        m2p_image *plain = poster(x, styles[s], NULL, NULL, false);
        m2p_image *shortp = poster(x, styles[s], "Blue", "A", true);
        m2p_image *longp = poster(x, styles[s], longt, "An Artist With A Very Long Name Indeed", true);
        m2p_image *wordp = poster(x, styles[s], word, NULL, true);
        int f1;
        int l1;
        int f2;
        int l2;
        int f3;
        int l3;
        long c1;
        long c2;
        long c3;
        diff_rows(plain, shortp, &f1, &l1, &c1);
        diff_rows(plain, longp, &f2, &l2, &c2);
        diff_rows(plain, wordp, &f3, &l3, &c3);
        /* The long title takes more room, but stays in the bottom band and off the margins. */
        if (f2 < EDGE * 0.55 || f3 < EDGE * 0.55 || l2 >= EDGE - 4 || l3 >= EDGE - 4) {
            fail_msg("%s: long title rows %d..%d, long word rows %d..%d", styles[s], f2, l2, f3, l3);
        }
        assert_true(c2 > c1);
        m2p_image_free(plain);
        m2p_image_free(shortp);
        m2p_image_free(longp);
        m2p_image_free(wordp);
    }
}

/* Typography on several threads at once gives the same pixels as one at a time. */
static void test_parallel_layout(void **state) {
    fx *x = *state;
    m2p_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.threads = 2;
    m2p_render_backend two;
    assert_int_equal(m2p_sonic_backend_create(&cfg, &two, NULL), M2P_OK);
    uint32_t seeds[4] = {4, 5, 6, 7};
    m2p_render_request r = {&x->prompt, x->f, "cinematic", 4, EDGE, EDGE, seeds, 0, 0,
                            "\xE5\xA4\x9C\xE3\x81\xAE Caf\xC3\xA9", "Ensemble", true, -1};
    m2p_image *many[4];
    assert_int_equal(two.render(two.self, &r, NULL, many, NULL), M2P_OK);
    for (int i = 0; i < 4; i++) {
        m2p_render_request one = r;
        one.n = 1;
        one.seeds = &seeds[i];
        m2p_image *img = NULL;
        assert_int_equal(x->be.render(x->be.self, &one, NULL, &img, NULL), M2P_OK);
        assert_memory_equal(img->pixels, many[i]->pixels, (size_t)EDGE * img->stride);
        m2p_image_free(img);
        m2p_image_free(many[i]);
    }
    two.destroy(two.self);
}

/* Draws the typography of section `section` of x->f (its label as the
 * kicker when with_label) on a flat dark 256² ground; returns the surface. */
static cairo_surface_t *typeset(fx *x, const char *style, int section, bool with_label, const char *title,
                                char *out, size_t cap) {
    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, EDGE, EDGE);
    cairo_t *cr = cairo_create(surf);
    cairo_set_source_rgb(cr, 0.05, 0.05, 0.08);
    cairo_paint(cr);
    sn_song *song = calloc(1, sizeof *song);
    assert_non_null(song);
    sn_song_init(song, x->f, section);
    sn_ctx *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->cr = cr;
    c->surf = surf;
    c->w = EDGE;
    c->h = EDGE;
    c->u = EDGE / 1000.0;
    c->seed = 4;
    c->style = style;
    c->song = song;
    c->text_top = 0.72;
    sn_rng r;
    sn_rng_seed(&r, 4, 1);
    sn_palette_make(&c->pal, song, &r);
    char label[96];
    assert_true(m2p_render_section_label(x->f, section, label, sizeof label) > 0);
    c->kicker = with_label ? label : NULL;
    sn_layout_draw(c, title, "Ensemble");
    cairo_surface_flush(surf);
    (void)snprintf(out, cap, "%s", c->typeset);
    cairo_destroy(cr);
    free(c);
    free(song);
    return surf;
}

/* Rows where two surfaces differ: first, last, and how many pixels. */
static long surf_diff(cairo_surface_t *a, cairo_surface_t *b, int *first, int *last) {
    const uint8_t *pa = cairo_image_surface_get_data(a);
    const uint8_t *pb = cairo_image_surface_get_data(b);
    int stride = cairo_image_surface_get_stride(a);
    long n = 0;
    *first = -1;
    *last = -1;
    for (int y = 0; y < EDGE; y++) {
        if (memcmp(pa + (size_t)y * stride, pb + (size_t)y * stride, (size_t)EDGE * 4) != 0) {
            n++;
            if (*first < 0) {
                *first = y;
            }
            *last = y;
        }
    }
    return n;
}

/* --per-section --layout: the poster says which part of the song it shows. */
static void test_section_label(void **state) {
    fx *x = *state;
    char buf[96];
    /* FIX_ORCH sections: 0-50, 50-100, 100-150, 150-185, 185-200 s */
    size_t len = m2p_render_section_label(x->f, 1, buf, sizeof buf);
    assert_int_equal(len, strlen(buf));
    assert_string_equal(buf, "Part 2 of 5 \xC2\xB7 0:50\xE2\x80\x93" "1:40");
    (void)m2p_render_section_label(x->f, 4, buf, sizeof buf);
    assert_string_equal(buf, "Part 5 of 5 \xC2\xB7 3:05\xE2\x80\x93" "3:20");
    assert_int_equal(m2p_render_section_label(x->f, 5, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    assert_int_equal(m2p_render_section_label(x->f, -1, buf, sizeof buf), 0);
    assert_int_equal(m2p_render_section_label(x->f, 1, buf, 8), 0); /* too small: nothing, not a cut label */
    m2p_section hour = x->f->sections[4];
    x->f->sections[4].start_s = 3599.6;
    x->f->sections[4].end_s = 3725.0;
    (void)m2p_render_section_label(x->f, 4, buf, sizeof buf);
    assert_string_equal(buf, "Part 5 of 5 \xC2\xB7 1:00:00\xE2\x80\x93" "1:02:05");
    /* bogus times are clamped before the conversion (a cast of 1e300 to long is undefined) */
    x->f->sections[4].end_s = 1e300;
    (void)m2p_render_section_label(x->f, 4, buf, sizeof buf);
    assert_string_equal(buf, "Part 5 of 5 \xC2\xB7 1:00:00\xE2\x80\x93" "2777:46:40");
    x->f->sections[4] = hour;

    /* The layout sets it: first block of what was typeset, above the title, in the bottom band
     * (in the top letterbox bar for cinematic). */
    static const char *const styles[] = {"abstract", "synthwave", "minimalist", "cinematic"};
    for (size_t i = 0; i < sizeof styles / sizeof styles[0]; i++) {
        char with[1024];
        char without[1024];
        cairo_surface_t *a = typeset(x, styles[i], 2, true, "Night Sea", with, sizeof with);
        cairo_surface_t *b = typeset(x, styles[i], 2, false, "Night Sea", without, sizeof without);
        (void)m2p_render_section_label(x->f, 2, buf, sizeof buf);
        if (strncmp(with, buf, strlen(buf)) != 0 || with[strlen(buf)] != '\n') {
            fail_msg("%s: typeset '%s', want the label '%s' first", styles[i], with, buf);
        }
        assert_non_null(strstr(with, "Night Sea"));
        assert_non_null(strstr(with, "ENSEMBLE") != NULL ? strstr(with, "ENSEMBLE") : strstr(with, "Ensemble"));
        assert_null(strstr(without, "Part 3"));
        int first;
        int last;
        long rows = surf_diff(a, b, &first, &last);
        bool cine = strcmp(styles[i], "cinematic") == 0;
        if (rows < 3 || (cine ? last > EDGE * 0.13 : first < EDGE * 0.55)) {
            fail_msg("%s: the label changed %ld rows, %d..%d", styles[i], rows, first, last);
        }
        cairo_surface_destroy(a);
        cairo_surface_destroy(b);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_titles_in_any_script, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_titles_fit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parallel_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_section_label, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
