/*
 * tests/unit/render/test_png.c — PNGs that carry their story: metadata
 * round trip (through libpng and through an independent chunk parser written
 * here with zlib only), deterministic bytes, no tIME chunk, pixels round
 * trip, foreign PNG formats, malformed input, the JSON sidecar and WebP thumbnails.
 */
#include "test_util.h"

#include <jansson.h>
#include <png.h>
#include <webp/decode.h>
#include <zlib.h>

#include "core/alloc.h"
#include "core/fs.h"
#include "render/png.h"
#include "sonic_fixtures.h"

static m2p_image *gradient(int w, int h) {
    m2p_image *img = NULL;
    assert_int_equal(m2p_image_create(w, h, &img), M2P_OK);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            uint8_t *p = img->pixels + (size_t)y * img->stride + (size_t)x * 3;
            p[0] = (uint8_t)(x * 255 / (w - 1));
            p[1] = (uint8_t)(y * 255 / (h - 1));
            p[2] = (uint8_t)((x ^ y) & 255);
        }
    }
    return img;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Independent reader: walks the chunks, checks every CRC, and returns the
 * value of keyword `key` from tEXt or iTXt (inflating compressed iTXt) in
 * out (NUL-terminated). Counts tIME chunks. Returns 1 found, 0 not found. */
static int chunk_text(const uint8_t *d, size_t n, const char *key, char *out, size_t cap, int *n_time,
                      int *text_before_idat) {
    assert_true(n > 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0);
    size_t pos = 8;
    int found = 0;
    bool seen_idat = false;
    *n_time = 0;
    *text_before_idat = 1;
    while (pos + 12 <= n) {
        uint32_t len = be32(d + pos);
        const uint8_t *type = d + pos + 4;
        const uint8_t *data = d + pos + 8;
        assert_true(pos + 12 + len <= n);
        uint32_t crc = (uint32_t)crc32(0, type, 4 + len);
        assert_int_equal(crc, be32(data + len));
        if (memcmp(type, "IDAT", 4) == 0) {
            seen_idat = true;
        }
        if (memcmp(type, "tIME", 4) == 0) {
            (*n_time)++;
        }
        bool is_text = memcmp(type, "tEXt", 4) == 0;
        bool is_itxt = memcmp(type, "iTXt", 4) == 0;
        if ((is_text || is_itxt) && seen_idat) {
            *text_before_idat = 0;
        }
        size_t kl = strnlen((const char *)data, len);
        if ((is_text || is_itxt) && kl == strlen(key) && memcmp(data, key, kl) == 0) {
            found = 1;
            if (is_text) {
                size_t vl = len - kl - 1;
                assert_true(vl < cap);
                memcpy(out, data + kl + 1, vl);
                out[vl] = 0;
            } else {
                const uint8_t *q = data + kl + 1;
                int comp = q[0];
                q += 2;                                       /* flag, method */
                q += strnlen((const char *)q, len) + 1;       /* language tag */
                q += strnlen((const char *)q, len) + 1;       /* translated keyword */
                size_t vl = (size_t)(data + len - q);
                if (comp) {
                    uLongf ol = (uLongf)(cap - 1);
                    assert_int_equal(uncompress((Bytef *)out, &ol, q, (uLong)vl), Z_OK);
                    out[ol] = 0;
                } else {
                    assert_true(vl < cap);
                    memcpy(out, q, vl);
                    out[vl] = 0;
                }
            }
        }
        pos += 12 + len;
    }
    return found;
}

static void test_meta_list(void **state) {
    (void)state;
    m2p_png_meta *m = NULL;
    m2p_error err;
    assert_int_equal(m2p_png_meta_create(&m), M2P_OK);
    assert_int_equal(m2p_png_meta_set(m, "prompt", "a", &err), M2P_OK);
    assert_int_equal(m2p_png_meta_set(m, "seed", "7", &err), M2P_OK);
    assert_int_equal(m2p_png_meta_set(m, "prompt", "b", &err), M2P_OK); /* replaces */
    assert_int_equal(m2p_png_meta_count(m), 2);
    assert_string_equal(m2p_png_meta_get(m, "prompt"), "b");
    assert_string_equal(m2p_png_meta_key(m, 1), "seed");
    assert_null(m2p_png_meta_key(m, 2));
    assert_null(m2p_png_meta_get(m, "nope"));
    /* Keyword rules and UTF-8. */
    assert_int_equal(m2p_png_meta_set(m, "", "x", &err), M2P_E_INVALID_ARG);
    assert_int_equal(m2p_png_meta_set(m, " lead", "x", &err), M2P_E_INVALID_ARG);
    assert_int_equal(m2p_png_meta_set(m, "two  spaces", "x", &err), M2P_E_INVALID_ARG);
    assert_int_equal(m2p_png_meta_set(m, "caf\xC3\xA9", "x", &err), M2P_E_INVALID_ARG);
    char longkey[100];
    memset(longkey, 'k', 80);
    longkey[80] = 0;
    assert_int_equal(m2p_png_meta_set(m, longkey, "x", &err), M2P_E_INVALID_ARG);
    assert_int_equal(m2p_png_meta_set(m, "bad", "\xC3\x28", &err), M2P_E_INVALID_ARG);
    assert_int_equal(m2p_png_meta_set(m, "bad", "\xED\xA0\x80", &err), M2P_E_INVALID_ARG); /* surrogate */
    assert_int_equal(m2p_png_meta_set(m, "bad", "\xC0\xAF", &err), M2P_E_INVALID_ARG);     /* overlong */
    char *big = malloc(M2P_PNG_MAX_VALUE + 2);
    memset(big, 'a', M2P_PNG_MAX_VALUE + 1);
    big[M2P_PNG_MAX_VALUE + 1] = 0;
    assert_int_equal(m2p_png_meta_set(m, "big", big, &err), M2P_E_INVALID_ARG);
    free(big);
    for (int i = 0; i < M2P_PNG_MAX_ENTRIES; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        m2p_code rc = m2p_png_meta_set(m, k, "v", &err);
        assert_int_equal(rc, i < M2P_PNG_MAX_ENTRIES - 2 ? M2P_OK : M2P_E_INVALID_ARG);
    }
    m2p_png_meta_free(m);
    m2p_png_meta_free(NULL);
}

static void test_roundtrip(void **state) {
    (void)state;
    m2p_features *f = fix_make(FIX_ELECTRO);
    m2p_prompt prompt = {"neon city at night, synthwave", "blurry, text", "synthwave", NULL, 0, 10, false};
    uint32_t seeds[2] = {11u, 4294967295u};
    m2p_render_request req = {&prompt, f, "synthwave", 2, 64, 48, seeds, 4, 8.0, "Caf\xC3\xA9 \xE6\x9D\xB1\xE4\xBA\xAC \xF0\x9F\x8E\xB5",
                              "Bj\xC3\xB6rk", false, 2};
    m2p_png_meta *m = NULL;
    m2p_error err;
    assert_int_equal(m2p_png_meta_create(&m), M2P_OK);
    assert_int_equal(m2p_png_meta_add_render(m, &req, 1, "lcm", "SimianLuo/LCM_Dreamshaper_v7", "https://youtu.be/x", &err),
                     M2P_OK);
    /* A long value travels as compressed iTXt. */
    char longv[3000];
    for (size_t i = 0; i < sizeof longv - 1; i++) {
        longv[i] = (char)('a' + i % 26);
    }
    longv[sizeof longv - 1] = 0;
    assert_int_equal(m2p_png_meta_set(m, "long_note", longv, &err), M2P_OK);
    assert_string_equal(m2p_png_meta_get(m, M2P_PNG_KEY_SEED), "4294967295");
    assert_string_equal(m2p_png_meta_get(m, M2P_PNG_KEY_SIZE), "64x48");
    assert_string_equal(m2p_png_meta_get(m, M2P_PNG_KEY_SECTION), "2");
    assert_string_equal(m2p_png_meta_get(m, M2P_PNG_KEY_VERSION), M2P_VERSION);
    assert_non_null(strstr(m2p_png_meta_get(m, M2P_PNG_KEY_FEATURES), "128 BPM"));
    assert_non_null(strstr(m2p_png_meta_get(m, M2P_PNG_KEY_FEATURES), "A minor"));
    assert_non_null(strstr(m2p_png_meta_get(m, M2P_PNG_KEY_PARAMETERS), "Seed: 4294967295"));
    assert_non_null(strstr(m2p_png_meta_get(m, M2P_PNG_KEY_PARAMETERS), "Negative prompt: blurry, text"));

    m2p_image *img = gradient(64, 48);
    char dir[64];
    m2p_test_tmpdir(dir, sizeof dir);
    char path[128];
    snprintf(path, sizeof path, "%s/a.png", dir);
    assert_int_equal(m2p_png_write(path, img, m, &err), M2P_OK);

    /* libpng reader: every key back, equal. */
    m2p_png_meta *back = NULL;
    m2p_image *pix = NULL;
    assert_int_equal(m2p_png_read(path, &pix, &back, &err), M2P_OK);
    assert_int_equal(m2p_png_meta_count(back), m2p_png_meta_count(m));
    for (size_t i = 0; i < m2p_png_meta_count(m); i++) {
        const char *k = m2p_png_meta_key(m, i);
        assert_non_null(m2p_png_meta_get(back, k));
        assert_string_equal(m2p_png_meta_get(back, k), m2p_png_meta_value(m, i));
    }
    assert_int_equal(pix->width, 64);
    assert_int_equal(pix->height, 48);
    assert_memory_equal(pix->pixels, img->pixels, 64 * 48 * 3);
    m2p_png_meta *back2 = NULL;
    assert_int_equal(m2p_png_read_meta(path, &back2, &err), M2P_OK);
    assert_string_equal(m2p_png_meta_get(back2, M2P_PNG_KEY_TITLE), req.title);

    /* Independent reader: CRCs, values, no tIME, text before IDAT. */
    char *bytes = NULL;
    size_t len = 0;
    assert_int_equal(m2p_fs_read_file(path, 1 << 24, &bytes, &len, &err), M2P_OK);
    char val[4096];
    int n_time = 0;
    int before = 0;
    assert_true(chunk_text((uint8_t *)bytes, len, "prompt", val, sizeof val, &n_time, &before));
    assert_string_equal(val, "neon city at night, synthwave");
    assert_true(chunk_text((uint8_t *)bytes, len, "Title", val, sizeof val, &n_time, &before));
    assert_string_equal(val, req.title); /* UTF-8 → iTXt */
    assert_true(chunk_text((uint8_t *)bytes, len, "long_note", val, sizeof val, &n_time, &before));
    assert_string_equal(val, longv); /* compressed iTXt */
    assert_true(chunk_text((uint8_t *)bytes, len, "seed", val, sizeof val, &n_time, &before));
    assert_string_equal(val, "4294967295");
    assert_int_equal(n_time, 0);
    assert_int_equal(before, 1);

    /* Determinism: same image and metadata → same bytes. */
    uint8_t *e1 = NULL;
    uint8_t *e2 = NULL;
    size_t l1 = 0;
    size_t l2 = 0;
    assert_int_equal(m2p_png_encode(img, m, &e1, &l1, &err), M2P_OK);
    assert_int_equal(m2p_png_encode(img, m, &e2, &l2, &err), M2P_OK);
    assert_int_equal(l1, l2);
    assert_int_equal(l1, len);
    assert_memory_equal(e1, e2, l1);
    assert_memory_equal(e1, bytes, l1);
    m2p_free(e1);
    m2p_free(e2);

    /* Sidecar JSON: same fields + the analysis. */
    json_t *feat = json_pack("{s:f,s:s}", "tempo_bpm", 128.0, "key", "A");
    snprintf(path, sizeof path, "%s/a.json", dir);
    assert_int_equal(m2p_png_write_sidecar(path, m, feat, &err), M2P_OK);
    json_error_t jerr;
    json_t *side = json_load_file(path, 0, &jerr);
    assert_non_null(side);
    assert_string_equal(json_string_value(json_object_get(side, "prompt")), "neon city at night, synthwave");
    assert_string_equal(json_string_value(json_object_get(side, "Title")), req.title);
    assert_string_equal(json_string_value(json_object_get(side, "seed")), "4294967295");
    assert_true(json_real_value(json_object_get(json_object_get(side, "analysis"), "tempo_bpm")) == 128.0);
    json_decref(side);
    json_decref(feat);

    m2p_free(bytes);
    m2p_png_meta_free(back2);
    m2p_png_meta_free(back);
    m2p_png_meta_free(m);
    m2p_image_free(pix);
    m2p_image_free(img);
    fix_free(f);
    m2p_test_rmdir(dir);
}

/* The sidecar of a real analysis (64 x 384 spectrogram, 512-point energy
 * curve, ~400 beats: ~300 KB of JSON in full) stays under 16 KB and keeps
 * what a person or a tool wants: scalars, key, chroma, sections, a coarse
 * energy curve and band profile, the prompt and the seed. */
static void test_sidecar_small(void **state) {
    (void)state;
    m2p_error err;
    m2p_features *f = fix_make(FIX_ELECTRO);
    json_t *feat = NULL;
    assert_int_equal(m2p_features_to_json(f, &feat), M2P_OK);
    char *full = json_dumps(feat, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(10));
    assert_non_null(full);
    assert_true(strlen(full) > 100000); /* the test means something */
    free(full);
    m2p_prompt prompt = {"neon city at night, synthwave, driving rhythm, deep teal and magenta hues",
                         "blurry, text, watermark", "synthwave", NULL, 0, 20, false};
    uint32_t seed = 77;
    m2p_render_request req = {&prompt, f, NULL, 1, 1024, 1024, &seed, 0, 0, "Night Drive", "Someone", true, 2};
    m2p_png_meta *m = NULL;
    assert_int_equal(m2p_png_meta_create(&m), M2P_OK);
    assert_int_equal(m2p_png_meta_add_render(m, &req, 0, "sonic", "procedural", "/music/night drive.wav", &err),
                     M2P_OK);
    char dir[64];
    m2p_test_tmpdir(dir, sizeof dir);
    char path[128];
    snprintf(path, sizeof path, "%s/side.json", dir);
    assert_int_equal(m2p_png_write_sidecar(path, m, feat, &err), M2P_OK);
    size_t len = 0;
    char *text = NULL;
    assert_int_equal(m2p_fs_read_file(path, 1u << 20, &text, &len, &err), M2P_OK);
    if (len >= 16 * 1024) {
        fail_msg("sidecar is %zu bytes, want < 16 KiB", len);
    }
    json_error_t jerr;
    json_t *side = json_loadb(text, len, 0, &jerr);
    assert_non_null(side);
    assert_string_equal(json_string_value(json_object_get(side, "prompt")), prompt.positive);
    assert_string_equal(json_string_value(json_object_get(side, "seed")), "77");
    assert_string_equal(json_string_value(json_object_get(side, "section")), "2");
    assert_string_equal(json_string_value(json_object_get(side, "renderer")), "sonic");
    const json_t *a = json_object_get(side, "analysis");
    assert_true(json_number_value(json_object_get(a, "tempo_bpm")) == f->tempo_bpm);
    assert_true(json_is_string(json_object_get(a, "key")));
    assert_int_equal(json_array_size(json_object_get(a, "chroma")), 12);
    assert_int_equal(json_array_size(json_object_get(a, "sections")), f->n_sections);
    assert_int_equal(json_integer_value(json_object_get(a, "n_sections")), f->n_sections);
    assert_int_equal(json_integer_value(json_object_get(a, "n_beats")), f->n_beats);
    assert_null(json_object_get(a, "beats"));
    const json_t *curve = json_object_get(a, "energy_curve");
    assert_int_equal(json_array_size(curve), 64);
    /* pooled, not sampled: the curve's mean is kept */
    double m_full = 0;
    double m_side = 0;
    for (int i = 0; i < f->n_energy; i++) {
        m_full += f->energy_curve[i] / (double)f->n_energy;
    }
    for (size_t i = 0; i < 64; i++) {
        m_side += json_number_value(json_array_get(curve, i)) / 64.0;
    }
    assert_true(fabs(m_full - m_side) < 1e-3);
    const json_t *spec = json_object_get(a, "spectrogram");
    assert_null(json_object_get(spec, "values"));
    assert_int_equal(json_integer_value(json_object_get(spec, "bands")), 64);
    assert_int_equal(json_integer_value(json_object_get(spec, "frames")), 384);
    assert_int_equal(json_array_size(json_object_get(spec, "band_profile")), 16);
    json_decref(side);
    m2p_free(text);
    json_decref(feat);
    m2p_png_meta_free(m);
    fix_free(f);
    m2p_test_rmdir(dir);
}

static void test_sonic_meta_has_no_steps(void **state) {
    (void)state;
    m2p_features *f = fix_make(FIX_CALM);
    m2p_prompt prompt = {"p", "n", "ink", NULL, 0, 3, false};
    uint32_t seed = 5;
    m2p_render_request req = {&prompt, f, NULL, 1, 512, 512, &seed, 4, 8.0, NULL, NULL, false, -1};
    m2p_png_meta *m = NULL;
    assert_int_equal(m2p_png_meta_create(&m), M2P_OK);
    assert_int_equal(m2p_png_meta_add_render(m, &req, 0, "sonic", "procedural", NULL, NULL), M2P_OK);
    assert_null(m2p_png_meta_get(m, M2P_PNG_KEY_STEPS));
    assert_null(m2p_png_meta_get(m, M2P_PNG_KEY_SOURCE));
    assert_null(m2p_png_meta_get(m, M2P_PNG_KEY_SECTION));
    assert_string_equal(m2p_png_meta_get(m, M2P_PNG_KEY_STYLE), "ink"); /* from the prompt */
    assert_int_equal(m2p_png_meta_add_render(m, &req, 1, "sonic", "procedural", NULL, NULL), M2P_E_INVALID_ARG);
    m2p_png_meta_free(m);
    fix_free(f);
}

/* Titles from file names and sites are not always valid UTF-8, prompts can
 * be long: the poster is still saved, with cleaned, capped text. */
static void test_untidy_text(void **state) {
    (void)state;
    m2p_features *f = fix_make(FIX_CALM);
    char longp[4000];
    size_t n = 0;
    while (n + 3 < sizeof longp - 1) { /* "é" repeated: a cut must not split one */
        longp[n++] = 'x';
        longp[n++] = '\xC3';
        longp[n++] = '\xA9';
    }
    longp[n] = 0;
    m2p_prompt prompt = {longp, "bad \xFF byte", "ink", NULL, 0, 3, false};
    uint32_t seed = 5;
    m2p_render_request req = {&prompt, f, NULL, 1, 512, 512, &seed, 4, 8.0, "Caf\xE9\x01 Song", "Art\xC3", false, -1};
    m2p_png_meta *m = NULL;
    m2p_error err;
    assert_int_equal(m2p_png_meta_create(&m), M2P_OK);
    assert_int_equal(m2p_png_meta_add_render(m, &req, 0, "lcm", "model", "/music/Caf\xE9.mp3", &err), M2P_OK);
    assert_string_equal(m2p_png_meta_get(m, M2P_PNG_KEY_TITLE), "Caf\xEF\xBF\xBD  Song");
    assert_string_equal(m2p_png_meta_get(m, M2P_PNG_KEY_ARTIST), "Art\xEF\xBF\xBD");
    assert_string_equal(m2p_png_meta_get(m, M2P_PNG_KEY_NEGATIVE), "bad \xEF\xBF\xBD byte");
    assert_string_equal(m2p_png_meta_get(m, M2P_PNG_KEY_SOURCE), "/music/Caf\xEF\xBF\xBD.mp3");
    const char *pp = m2p_png_meta_get(m, M2P_PNG_KEY_PROMPT);
    assert_true(strlen(pp) <= 1500 && strlen(pp) >= 1497);
    assert_int_equal(strlen(pp) % 3, 0); /* whole "xé" units only */
    assert_non_null(strstr(m2p_png_meta_get(m, M2P_PNG_KEY_PARAMETERS), "Negative prompt: bad"));
    /* And it all writes and reads back. */
    m2p_image *img = gradient(16, 16);
    uint8_t *enc = NULL;
    size_t len = 0;
    assert_int_equal(m2p_png_encode(img, m, &enc, &len, &err), M2P_OK);
    m2p_png_meta *back = NULL;
    assert_int_equal(m2p_png_read_meta_mem(enc, len, &back, &err), M2P_OK);
    assert_string_equal(m2p_png_meta_get(back, M2P_PNG_KEY_PROMPT), pp);
    m2p_png_meta_free(back);
    m2p_free(enc);
    m2p_image_free(img);
    m2p_png_meta_free(m);
    fix_free(f);
}

/* A 16-bit grey+alpha interlaced PNG written straight with libpng: the reader converts it. */
static void test_foreign_formats(void **state) {
    (void)state;
    char dir[64];
    m2p_test_tmpdir(dir, sizeof dir);
    char path[128];
    snprintf(path, sizeof path, "%s/g.png", dir);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_init_io(png, fp);
    png_set_IHDR(png, info, 5, 3, 16, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_ADAM7, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_text t = {0};
    t.compression = PNG_TEXT_COMPRESSION_zTXt;
    t.key = "Comment";
    t.text = "made elsewhere";
    png_set_text(png, info, &t, 1);
    png_write_info(png, info);
    uint8_t rows[3][5 * 4];
    png_bytep rp[3];
    for (int y = 0; y < 3; y++) {
        for (int x = 0; x < 5; x++) {
            rows[y][x * 4 + 0] = (uint8_t)(x * 50);
            rows[y][x * 4 + 1] = 0;
            rows[y][x * 4 + 2] = 0xFF;
            rows[y][x * 4 + 3] = 0xFF;
        }
        rp[y] = rows[y];
    }
    png_write_image(png, rp);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    fclose(fp);
    m2p_image *img = NULL;
    m2p_png_meta *m = NULL;
    assert_int_equal(m2p_png_read(path, &img, &m, NULL), M2P_OK);
    assert_int_equal(img->width, 5);
    assert_int_equal(img->height, 3);
    assert_int_equal(img->pixels[3 * 3 + 0], 150);
    assert_int_equal(img->pixels[3 * 3 + 1], 150);
    assert_string_equal(m2p_png_meta_get(m, "Comment"), "made elsewhere");
    m2p_image_free(img);
    m2p_png_meta_free(m);
    m2p_test_rmdir(dir);
}

static void test_malformed(void **state) {
    (void)state;
    m2p_png_meta *m = NULL;
    m2p_error err;
    assert_int_equal(m2p_png_read_meta_mem((const uint8_t *)"hello", 5, &m, &err), M2P_E_PNG_READ);
    assert_null(m);
    assert_int_equal(m2p_png_read_meta_mem(NULL, 0, &m, &err), M2P_E_PNG_READ);
    m2p_image *img = gradient(40, 30);
    m2p_png_meta *meta = NULL;
    assert_int_equal(m2p_png_meta_create(&meta), M2P_OK);
    assert_int_equal(m2p_png_meta_set(meta, "prompt", "x", NULL), M2P_OK);
    uint8_t *enc = NULL;
    size_t len = 0;
    assert_int_equal(m2p_png_encode(img, meta, &enc, &len, &err), M2P_OK);
    /* Every truncation is an error, never a crash. */
    for (size_t cut = 0; cut < len; cut += (cut < 100 ? 1 : 37)) {
        assert_int_equal(m2p_png_read_meta_mem(enc, cut, &m, &err), M2P_E_PNG_READ);
        assert_null(m);
    }
    /* Flipped bytes: an error or a valid read, never a crash. */
    for (size_t i = 8; i < len; i += 11) {
        uint8_t *cp = malloc(len);
        memcpy(cp, enc, len);
        cp[i] ^= 0x5A;
        m2p_code rc = m2p_png_read_meta_mem(cp, len, &m, &err);
        assert_true(rc == M2P_OK || rc == M2P_E_PNG_READ);
        m2p_png_meta_free(m);
        m = NULL;
        free(cp);
    }
    /* Huge declared dimensions are refused by the user limits. */
    uint8_t *cp = malloc(len);
    memcpy(cp, enc, len);
    cp[16] = 0x7F; /* width = 0x7F00002x */
    uint32_t crc = (uint32_t)crc32(0, cp + 12, 17);
    cp[29] = (uint8_t)(crc >> 24);
    cp[30] = (uint8_t)(crc >> 16);
    cp[31] = (uint8_t)(crc >> 8);
    cp[32] = (uint8_t)crc;
    assert_int_equal(m2p_png_read_meta_mem(cp, len, &m, &err), M2P_E_PNG_READ);
    free(cp);
    m2p_code rc = m2p_png_read_meta("/nonexistent/x.png", &m, &err);
    assert_int_not_equal(rc, M2P_OK);
    assert_int_equal(err.code, rc);
    assert_null(m);
    assert_int_equal(m2p_png_write("/nonexistent-dir/x.png", img, meta, &err), M2P_E_PNG_WRITE);
    m2p_free(enc);
    m2p_png_meta_free(meta);
    m2p_image_free(img);
}

static void test_webp_thumb(void **state) {
    (void)state;
    m2p_image *img = gradient(640, 320);
    uint8_t *w = NULL;
    size_t n = 0;
    assert_int_equal(m2p_png_thumb_webp(img, 256, 80, &w, &n, NULL), M2P_OK);
    assert_true(n > 20 && memcmp(w, "RIFF", 4) == 0 && memcmp(w + 8, "WEBP", 4) == 0);
    int tw = 0;
    int th = 0;
    assert_true(WebPGetInfo(w, n, &tw, &th));
    assert_int_equal(tw, 256);
    assert_int_equal(th, 128);
    /* The thumbnail keeps the picture: left edge dark red channel, right edge bright. */
    uint8_t *rgb = WebPDecodeRGB(w, n, &tw, &th);
    assert_non_null(rgb);
    assert_true(rgb[(64 * 256 + 2) * 3] < 40);
    assert_true(rgb[(64 * 256 + 253) * 3] > 215);
    WebPFree(rgb);
    m2p_free(w);
    /* Never scaled up. */
    m2p_image *small = gradient(100, 60);
    assert_int_equal(m2p_png_thumb_webp(small, 256, 80, &w, &n, NULL), M2P_OK);
    assert_true(WebPGetInfo(w, n, &tw, &th));
    assert_int_equal(tw, 100);
    m2p_free(w);
    assert_int_equal(m2p_png_thumb_webp(small, 4, 80, &w, &n, NULL), M2P_E_INVALID_ARG);
    assert_int_equal(m2p_png_thumb_webp(small, 256, 101, &w, &n, NULL), M2P_E_INVALID_ARG);
    char dir[64];
    m2p_test_tmpdir(dir, sizeof dir);
    char path[128];
    snprintf(path, sizeof path, "%s/t.webp", dir);
    assert_int_equal(m2p_png_write_thumb_webp(path, img, 128, 75, NULL), M2P_OK);
    char *bytes = NULL;
    size_t len = 0;
    assert_int_equal(m2p_fs_read_file(path, 1 << 20, &bytes, &len, NULL), M2P_OK);
    assert_true(WebPGetInfo((uint8_t *)bytes, len, &tw, &th));
    assert_int_equal(tw, 128);
    m2p_free(bytes);
    m2p_test_rmdir(dir);
    m2p_image_free(small);
    m2p_image_free(img);
}

static void test_alloc_failures(void **state) {
    (void)state;
    m2p_image *img = gradient(32, 32);
    m2p_png_meta *meta = NULL;
    assert_int_equal(m2p_png_meta_create(&meta), M2P_OK);
    assert_int_equal(m2p_png_meta_set(meta, "prompt", "x", NULL), M2P_OK);
    assert_int_equal(m2p_png_meta_set(meta, "Title", "\xC3\xA9t\xC3\xA9", NULL), M2P_OK);
    uint8_t *enc = NULL;
    size_t len = 0;
    assert_int_equal(m2p_png_encode(img, meta, &enc, &len, NULL), M2P_OK);
    /* Fail the Nth allocation of encode and decode: errors, no leaks (ASan checks). */
    for (long k = 0; k < 12; k++) {
        uint8_t *e = NULL;
        size_t l = 0;
        m2p_alloc_fail_after(k);
        m2p_code rc = m2p_png_encode(img, meta, &e, &l, NULL);
        m2p_alloc_fail_after(-1);
        assert_true(rc == M2P_OK || rc == M2P_E_NOMEM);
        m2p_free(e);
        m2p_png_meta *m = NULL;
        m2p_alloc_fail_after(k);
        rc = m2p_png_read_meta_mem(enc, len, &m, NULL);
        m2p_alloc_fail_after(-1);
        assert_true(rc == M2P_OK || rc == M2P_E_NOMEM);
        m2p_png_meta_free(m);
    }
    m2p_free(enc);
    m2p_png_meta_free(meta);
    m2p_image_free(img);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meta_list),     cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_sonic_meta_has_no_steps), cmocka_unit_test(test_sidecar_small), cmocka_unit_test(test_foreign_formats),
        cmocka_unit_test(test_untidy_text),
        cmocka_unit_test(test_malformed),     cmocka_unit_test(test_webp_thumb),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
