/*
 * render/png.c — PNG writing with text metadata, reading it back, the JSON
 * sidecar and WebP thumbnails (render/png.h).
 *
 * Determinism: text chunks are written in insertion order before IDAT, zlib
 * level 3 with the default strategy and all filters, and no tIME chunk, so
 * the same pixels and metadata give the same bytes on one machine. Level 3,
 * not 6: on grainy 1024x1024 posters level 6 spends ~0.7 s a poster in zlib's
 * lazy matching (most of `make -n 4`) for files only ~5% smaller.
 *
 * Untrusted input (reading): the whole file must be under M2P_PNG_MAX_FILE,
 * every chunk length is checked against the bytes actually there before
 * libpng sees them, libpng's user limits cap the edges at 16384 (and 64 Mpx in
 * all) and ancillary chunk memory at 8 MiB, every libpng error longjmps back to one cleanup exit that returns
 * M2P_E_PNG_READ with libpng's message as the detail.
 */
#include "render/png.h"

#include <png.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <webp/encode.h>

#include "core/alloc.h"
#include "core/fs.h"

#define MAX_EDGE 16384
#define MAX_PIXELS (64ull * 1024ull * 1024ull) /* decoding cost cap (a small zlib stream can claim a lot) */
#define ITXT_COMPRESS_OVER 1024

/* ---------------------------------------------------------------- metadata list */

struct m2p_png_meta {
    char *keys[M2P_PNG_MAX_ENTRIES];
    char *values[M2P_PNG_MAX_ENTRIES];
    size_t n;
};

m2p_code m2p_png_meta_create(m2p_png_meta **out) {
    *out = m2p_calloc(1, sizeof **out);
    return *out == NULL ? M2P_E_NOMEM : M2P_OK;
}

void m2p_png_meta_free(m2p_png_meta *m) {
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        m2p_free(m->keys[i]);
        m2p_free(m->values[i]);
    }
    m2p_free(m);
}

/* PNG keyword rules (ISO 15948 11.3.4.3), restricted to printable ASCII. */
static bool keyword_ok(const char *k) {
    size_t n = strlen(k);
    if (n < 1 || n > 79 || k[0] == ' ' || k[n - 1] == ' ') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)k[i];
        if (c < 32 || c > 126 || (c == ' ' && k[i + 1] == ' ')) {
            return false;
        }
    }
    return true;
}

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
static bool utf8_ok(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n) {
            return false;
        }
        for (size_t j = 1; j < len; j++) {
            if ((s[i + j] & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
            return false;
        }
        i += len;
    }
    return true;
}

static bool plain_ascii(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p != 0; p++) {
        if ((*p < 32 && *p != '\n') || *p > 126) {
            return false;
        }
    }
    return true;
}

m2p_code m2p_png_meta_set(m2p_png_meta *m, const char *key, const char *value, m2p_error *err) {
    if (m == NULL || key == NULL || value == NULL) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "metadata key or value missing");
    }
    if (!keyword_ok(key)) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "'%.80s' is not a PNG keyword", key);
    }
    size_t vlen = strlen(value);
    if (vlen > M2P_PNG_MAX_VALUE) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "value of %s is %zu bytes (max %u)", key, vlen,
                             M2P_PNG_MAX_VALUE);
    }
    if (!utf8_ok((const unsigned char *)value, vlen)) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "value of %s is not UTF-8", key);
    }
    char *copy = m2p_strdup(value);
    if (copy == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "metadata value");
    }
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->keys[i], key) == 0) {
            m2p_free(m->values[i]);
            m->values[i] = copy;
            return M2P_OK;
        }
    }
    if (m->n >= M2P_PNG_MAX_ENTRIES) {
        m2p_free(copy);
        return m2p_error_set(err, M2P_E_INVALID_ARG, "more than %d metadata keys", M2P_PNG_MAX_ENTRIES);
    }
    char *kcopy = m2p_strdup(key);
    if (kcopy == NULL) {
        m2p_free(copy);
        return m2p_error_set(err, M2P_E_NOMEM, "metadata key");
    }
    m->keys[m->n] = kcopy;
    m->values[m->n] = copy;
    m->n++;
    return M2P_OK;
}

m2p_code m2p_png_meta_setf(m2p_png_meta *m, const char *key, m2p_error *err, const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "value of %s too long for setf", key);
    }
    return m2p_png_meta_set(m, key, buf, err);
}

const char *m2p_png_meta_get(const m2p_png_meta *m, const char *key) {
    if (m == NULL || key == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->keys[i], key) == 0) {
            return m->values[i];
        }
    }
    return NULL;
}

size_t m2p_png_meta_count(const m2p_png_meta *m) {
    return m == NULL ? 0 : m->n;
}

const char *m2p_png_meta_key(const m2p_png_meta *m, size_t i) {
    return (m == NULL || i >= m->n) ? NULL : m->keys[i];
}

const char *m2p_png_meta_value(const m2p_png_meta *m, size_t i) {
    return (m == NULL || i >= m->n) ? NULL : m->values[i];
}

static const char *const k_keys[12] = {"C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"};

void m2p_png_features_line(const m2p_features *f, char *buf, size_t cap) {
    if (cap == 0) {
        return;
    }
    if (f == NULL) {
        buf[0] = 0;
        return;
    }
    const char *key = (f->key >= 0 && f->key < 12) ? k_keys[f->key] : "?";
    (void)snprintf(buf, cap, "%.0f BPM \xC2\xB7 %s %s \xC2\xB7 energy %.2f \xC2\xB7 %zu section%s", f->tempo_bpm, key,
                   f->mode == M2P_MODE_MINOR ? "minor" : "major", f->energy, f->n_sections,
                   f->n_sections == 1 ? "" : "s");
}

/* Length of the valid UTF-8 sequence starting at s (1..4), 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t left) {
    if (s[0] < 0x80) {
        return 1;
    }
    size_t len = s[0] >= 0xC2 && s[0] <= 0xDF ? 2 : (s[0] >= 0xE0 && s[0] <= 0xEF ? 3 : (s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : 0));
    if (len == 0 || len > left) {
        return 0;
    }
    return utf8_ok(s, len) ? len : 0;
}

/* A copy of s that is valid UTF-8 (each invalid byte becomes U+FFFD, control
 * characters other than newline and tab become spaces), at most max bytes,
 * cut on a character boundary. Names of files on disk and titles from
 * elsewhere are not always valid UTF-8; a poster must still be saved. */
static char *clean_copy(const char *s, size_t max) {
    size_t n = strlen(s);
    size_t grown = n <= SIZE_MAX / 3 ? n * 3 : SIZE_MAX; /* each invalid byte may become 3 */
    size_t cap = (grown < max ? grown : max) + 1;
    char *out = m2p_malloc(cap);
    if (out == NULL) {
        return NULL;
    }
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t len = utf8_seq(p + i, n - i);
        const char *src = (const char *)(p + i);
        char repl[1];
        if (len == 0) {
            src = "\xEF\xBF\xBD";
            len = 3;
            i += 1;
        } else {
            if (len == 1 && (p[i] < 32 || p[i] == 127) && p[i] != '\n' && p[i] != '\t') {
                repl[0] = ' ';
                src = repl;
            }
            i += len;
        }
        size_t need = len;
        if (o + need + 1 > cap) {
            break;
        }
        memcpy(out + o, src, need);
        o += need;
    }
    out[o] = 0;
    return out;
}

/* Sets key to a cleaned copy of value (see clean_copy). */
static m2p_code set_clean(m2p_png_meta *m, const char *key, const char *value, size_t max, m2p_error *err) {
    char *c = clean_copy(value, max);
    if (c == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "metadata value");
    }
    m2p_code rc = m2p_png_meta_set(m, key, c, err);
    m2p_free(c);
    return rc;
}

m2p_code m2p_png_meta_add_render(m2p_png_meta *m, const m2p_render_request *req, int index, const char *renderer,
                                 const char *model, const char *source, m2p_error *err) {
    if (m == NULL || req == NULL || req->prompt == NULL || req->seeds == NULL || index < 0 || index >= req->n) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "metadata of image %d of an incomplete request", index);
    }
    const m2p_prompt *p = req->prompt;
    const char *style_in = req->style != NULL ? req->style : (p->style != NULL ? p->style : "abstract");
    bool steps_matter = renderer == NULL || strcmp(renderer, "sonic") != 0;
    char feat[256];
    m2p_png_features_line(req->features, feat, sizeof feat);
    m2p_code rc = M2P_OK;
    /* Cleaned, capped copies of what came from outside. */
    char *pos = clean_copy(p->positive != NULL ? p->positive : "", 1500);
    char *neg = clean_copy(p->negative != NULL ? p->negative : "", 1000);
    char *style = clean_copy(style_in, 64);
    char *mod = clean_copy(model != NULL ? model : "unknown", 200);
    char *ren = clean_copy(renderer != NULL ? renderer : "unknown", 32);
    if (pos == NULL || neg == NULL || style == NULL || mod == NULL || ren == NULL) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "metadata");
        goto done;
    }
#define TRY(expr)           \
    do {                    \
        rc = (expr);        \
        if (rc != M2P_OK) { \
            goto done;      \
        }                   \
    } while (0)
    TRY(m2p_png_meta_set(m, M2P_PNG_KEY_PROMPT, pos, err));
    TRY(m2p_png_meta_set(m, M2P_PNG_KEY_NEGATIVE, neg, err));
    TRY(m2p_png_meta_setf(m, M2P_PNG_KEY_SEED, err, "%u", (unsigned)req->seeds[index]));
    TRY(m2p_png_meta_set(m, M2P_PNG_KEY_STYLE, style, err));
    TRY(m2p_png_meta_set(m, M2P_PNG_KEY_RENDERER, ren, err));
    TRY(m2p_png_meta_set(m, M2P_PNG_KEY_MODEL, mod, err));
    if (steps_matter) {
        TRY(m2p_png_meta_setf(m, M2P_PNG_KEY_STEPS, err, "%d", req->steps));
        TRY(m2p_png_meta_setf(m, M2P_PNG_KEY_GUIDANCE, err, "%g", req->guidance));
    }
    TRY(m2p_png_meta_setf(m, M2P_PNG_KEY_SIZE, err, "%dx%d", req->width, req->height));
    if (source != NULL) {
        TRY(set_clean(m, M2P_PNG_KEY_SOURCE, source, 2048, err));
    }
    if (req->title != NULL) {
        TRY(set_clean(m, M2P_PNG_KEY_TITLE, req->title, 1024, err));
    }
    if (req->artist != NULL) {
        TRY(set_clean(m, M2P_PNG_KEY_ARTIST, req->artist, 1024, err));
    }
    if (req->section >= 0) {
        TRY(m2p_png_meta_setf(m, M2P_PNG_KEY_SECTION, err, "%d", req->section));
        char label[96];
        if (m2p_render_section_label(req->features, req->section, label, sizeof label) > 0) {
            TRY(m2p_png_meta_set(m, M2P_PNG_KEY_SECTION_LABEL, label, err));
        }
    }
    TRY(m2p_png_meta_set(m, M2P_PNG_KEY_FEATURES, feat, err));
    TRY(m2p_png_meta_set(m, M2P_PNG_KEY_SOFTWARE, "Mus2Pic " M2P_VERSION, err));
    TRY(m2p_png_meta_set(m, M2P_PNG_KEY_VERSION, M2P_VERSION, err));
    /* The A1111 "parameters" layout (fits setf's buffer: the parts are capped above). */
    if (steps_matter) {
        TRY(m2p_png_meta_setf(m, M2P_PNG_KEY_PARAMETERS, err,
                              "%s\nNegative prompt: %s\nSteps: %d, CFG scale: %g, Seed: %u, Size: %dx%d, "
                              "Model: %s, Renderer: %s, Style: %s, Version: Mus2Pic %s",
                              pos, neg, req->steps, req->guidance, (unsigned)req->seeds[index], req->width,
                              req->height, mod, ren, style, M2P_VERSION));
    } else {
        TRY(m2p_png_meta_setf(m, M2P_PNG_KEY_PARAMETERS, err,
                              "%s\nNegative prompt: %s\nSeed: %u, Size: %dx%d, Model: %s, Renderer: %s, Style: %s, "
                              "Version: Mus2Pic %s",
                              pos, neg, (unsigned)req->seeds[index], req->width, req->height, mod, ren, style,
                              M2P_VERSION));
    }
#undef TRY
done:
    m2p_free(pos);
    m2p_free(neg);
    m2p_free(style);
    m2p_free(mod);
    m2p_free(ren);
    return rc;
}

/* ---------------------------------------------------------------- libpng glue */

typedef struct png_io {
    jmp_buf jmp;
    char msg[200];
    /* write side: growing buffer */
    uint8_t *buf;
    size_t len, cap;
    bool nomem;
    /* read side */
    const uint8_t *in;
    size_t in_len, in_pos;
} png_io;

static void on_error(png_structp png, png_const_charp msg) {
    png_io *io = png_get_error_ptr(png);
    (void)snprintf(io->msg, sizeof io->msg, "%s", msg != NULL ? msg : "libpng error");
    longjmp(io->jmp, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* warnings (e.g. unknown chunks) are not errors for us */
}

static void on_write(png_structp png, png_bytep data, size_t n) {
    png_io *io = png_get_io_ptr(png);
    if (io->len + n > io->cap) {
        size_t want = io->cap < 65536 ? 65536 : io->cap;
        while (want < io->len + n) {
            if (want > SIZE_MAX / 2) {
                io->nomem = true;
                png_error(png, "PNG too large");
            }
            want *= 2;
        }
        uint8_t *nb = m2p_realloc(io->buf, want);
        if (nb == NULL) {
            io->nomem = true;
            png_error(png, "out of memory");
        }
        io->buf = nb;
        io->cap = want;
    }
    memcpy(io->buf + io->len, data, n);
    io->len += n;
}

static void on_flush(png_structp png) {
    (void)png;
}

static void on_read(png_structp png, png_bytep data, size_t n) {
    png_io *io = png_get_io_ptr(png);
    if (n > io->in_len - io->in_pos) {
        png_error(png, "file truncated");
    }
    memcpy(data, io->in + io->in_pos, n);
    io->in_pos += n;
}

m2p_code m2p_png_encode(const m2p_image *img, const m2p_png_meta *meta, uint8_t **out, size_t *out_len,
                        m2p_error *err) {
    *out = NULL;
    *out_len = 0;
    if (img == NULL || img->pixels == NULL || img->width <= 0 || img->height <= 0 || img->width > MAX_EDGE ||
        img->height > MAX_EDGE || img->stride < (size_t)img->width * 3) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "no image to encode");
    }
    png_io io;
    memset(&io, 0, sizeof io);
    png_text *texts = NULL;
    size_t n_text = meta != NULL ? meta->n : 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &io, on_error, on_warning);
    png_infop info = png != NULL ? png_create_info_struct(png) : NULL;
    if (png == NULL || info == NULL) {
        png_destroy_write_struct(&png, &info);
        return m2p_error_set(err, M2P_E_NOMEM, "libpng");
    }
    if (n_text > 0) {
        texts = m2p_calloc(n_text, sizeof *texts);
        if (texts == NULL) {
            png_destroy_write_struct(&png, &info);
            return m2p_error_set(err, M2P_E_NOMEM, "PNG text");
        }
    }
    if (setjmp(io.jmp) != 0) {
        png_destroy_write_struct(&png, &info);
        m2p_free(texts);
        m2p_free(io.buf);
        return m2p_error_set(err, io.nomem ? M2P_E_NOMEM : M2P_E_PNG_WRITE, "%s", io.msg);
    }
    png_set_write_fn(png, &io, on_write, on_flush);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 3);
    png_set_compression_strategy(png, 0 /* Z_DEFAULT_STRATEGY */);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_ALL_FILTERS);
    png_set_text_compression_level(png, 9);
    for (size_t i = 0; i < n_text; i++) {
        char *v = meta->values[i];
        texts[i].key = meta->keys[i];
        texts[i].text = v;
        texts[i].lang = NULL;
        texts[i].lang_key = NULL;
        if (plain_ascii(v) && strlen(v) <= ITXT_COMPRESS_OVER) {
            texts[i].compression = PNG_TEXT_COMPRESSION_NONE;
            texts[i].text_length = strlen(v);
        } else {
            texts[i].compression = strlen(v) > ITXT_COMPRESS_OVER ? PNG_ITXT_COMPRESSION_zTXt : PNG_ITXT_COMPRESSION_NONE;
            texts[i].itxt_length = strlen(v);
        }
    }
    if (n_text > 0) {
        png_set_text(png, info, texts, (int)n_text);
    }
    png_write_info(png, info);
    for (int y = 0; y < img->height; y++) {
        png_write_row(png, img->pixels + (size_t)y * img->stride);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    m2p_free(texts);
    *out = io.buf;
    *out_len = io.len;
    return M2P_OK;
}

m2p_code m2p_png_write(const char *path, const m2p_image *img, const m2p_png_meta *meta, m2p_error *err) {
    uint8_t *buf = NULL;
    size_t len = 0;
    m2p_code rc = m2p_png_encode(img, meta, &buf, &len, err);
    if (rc != M2P_OK) {
        return rc;
    }
    rc = m2p_fs_write_atomic(path, buf, len, err);
    m2p_free(buf);
    if (rc != M2P_OK && rc != M2P_E_NOMEM) {
        char detail[sizeof err->detail];
        (void)snprintf(detail, sizeof detail, "%s", err != NULL ? err->detail : "");
        return m2p_error_set(err, M2P_E_PNG_WRITE, "%s: %s", path, detail);
    }
    return rc;
}

/* Decodes data; when img_out is NULL the pixel rows are decoded into one
 * scratch row (they must be read to reach text chunks after IDAT). */
static m2p_code decode(const uint8_t *data, size_t len, m2p_image **img_out, m2p_png_meta **meta_out,
                       m2p_error *err) {
    if (img_out != NULL) {
        *img_out = NULL;
    }
    if (meta_out != NULL) {
        *meta_out = NULL;
    }
    if (data == NULL || len < 8 || png_sig_cmp(data, 0, 8) != 0) {
        return m2p_error_set(err, M2P_E_PNG_READ, "no PNG signature");
    }
    if (len > M2P_PNG_MAX_FILE) {
        return m2p_error_set(err, M2P_E_PNG_READ, "file of %zu bytes is over the %u byte cap", len,
                             M2P_PNG_MAX_FILE);
    }
    /* Chunk framing first, on the bytes we hold: every declared length must
     * fit in the file (libpng would otherwise allocate what a header claims,
     * e.g. a 1 GiB zTXt in a 100-byte file) and ancillary chunks stay under 8 MiB. */
    size_t pos = 8;
    while (pos < len) {
        if (len - pos < 12) {
            return m2p_error_set(err, M2P_E_PNG_READ, "truncated chunk header at byte %zu", pos);
        }
        const uint8_t *c = data + pos;
        size_t clen = (size_t)c[0] << 24 | (size_t)c[1] << 16 | (size_t)c[2] << 8 | (size_t)c[3];
        bool critical = (c[4] & 0x20) == 0;
        if (clen > len - pos - 12 || (!critical && clen > 8u * 1024u * 1024u)) {
            return m2p_error_set(err, M2P_E_PNG_READ, "chunk of %zu bytes at byte %zu does not fit the file", clen,
                                 pos);
        }
        pos += 12 + clen;
        if (memcmp(c + 4, "IEND", 4) == 0) {
            break;
        }
    }
    png_io io;
    memset(&io, 0, sizeof io);
    io.in = data;
    io.in_len = len;
    /* Everything the longjmp path frees lives in this struct so setjmp cannot clobber it. */
    struct {
        uint8_t *row;
        m2p_image *img;
        m2p_png_meta *meta;
        m2p_code rc;
    } volatile st = {NULL, NULL, NULL, M2P_E_PNG_READ};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &io, on_error, on_warning);
    png_infop info = png != NULL ? png_create_info_struct(png) : NULL;
    if (png == NULL || info == NULL) {
        png_destroy_read_struct(&png, &info, NULL);
        return m2p_error_set(err, M2P_E_NOMEM, "libpng");
    }
    if (setjmp(io.jmp) != 0) {
        png_destroy_read_struct(&png, &info, NULL);
        m2p_free(st.row);
        m2p_image_free(st.img);
        m2p_png_meta_free(st.meta);
        return m2p_error_set(err, st.rc, "%s", io.msg[0] != 0 ? io.msg : "malformed PNG");
    }
    png_set_read_fn(png, &io, on_read);
    png_set_user_limits(png, MAX_EDGE, MAX_EDGE);
    png_set_chunk_cache_max(png, 1000);
    png_set_chunk_malloc_max(png, 8u * 1024u * 1024u);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info);
    png_uint_32 h = png_get_image_height(png, info);
    if ((uint64_t)w * h > MAX_PIXELS) {
        png_error(png, "image has too many pixels");
    }
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    png_set_gray_to_rgb(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (rowbytes != (size_t)w * 3) {
        png_error(png, "unexpected row size after conversion");
    }
    if (img_out != NULL) {
        m2p_image *img = NULL;
        if (m2p_image_create((int)w, (int)h, &img) != M2P_OK) {
            st.rc = M2P_E_NOMEM;
            png_error(png, "out of memory for the image");
        }
        st.img = img;
        for (int pass = 0; pass < passes; pass++) {
            for (png_uint_32 y = 0; y < h; y++) {
                png_read_row(png, img->pixels + (size_t)y * img->stride, NULL);
            }
        }
    } else {
        st.row = m2p_malloc(rowbytes);
        if (st.row == NULL) {
            st.rc = M2P_E_NOMEM;
            png_error(png, "out of memory for a row");
        }
        for (int pass = 0; pass < passes; pass++) {
            for (png_uint_32 y = 0; y < h; y++) {
                png_read_row(png, st.row, NULL);
            }
        }
    }
    png_read_end(png, info);
    if (meta_out != NULL) {
        m2p_png_meta *meta = NULL;
        if (m2p_png_meta_create(&meta) != M2P_OK) {
            st.rc = M2P_E_NOMEM;
            png_error(png, "out of memory for metadata");
        }
        st.meta = meta;
        png_textp texts = NULL;
        int nt = png_get_text(png, info, &texts, NULL);
        for (int i = 0; i < nt; i++) {
            if (texts[i].key == NULL || texts[i].text == NULL) {
                continue;
            }
            /* Foreign files may hold Latin-1 or oversized text: keep what is valid, skip the rest. */
            m2p_code rc = m2p_png_meta_set(meta, texts[i].key, texts[i].text, NULL);
            if (rc == M2P_E_NOMEM) {
                st.rc = M2P_E_NOMEM;
                png_error(png, "out of memory for metadata");
            }
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    m2p_free(st.row);
    if (img_out != NULL) {
        *img_out = st.img;
    }
    if (meta_out != NULL) {
        *meta_out = st.meta;
    }
    return M2P_OK;
}

m2p_code m2p_png_read_meta_mem(const uint8_t *data, size_t len, m2p_png_meta **out, m2p_error *err) {
    return decode(data, len, NULL, out, err);
}

m2p_code m2p_png_read_meta(const char *path, m2p_png_meta **out, m2p_error *err) {
    *out = NULL;
    char *data = NULL;
    size_t len = 0;
    m2p_code rc = m2p_fs_read_file(path, M2P_PNG_MAX_FILE, &data, &len, err);
    if (rc != M2P_OK) {
        return rc;
    }
    rc = decode((const uint8_t *)data, len, NULL, out, err);
    m2p_free(data);
    return rc;
}

m2p_code m2p_png_read(const char *path, m2p_image **img_out, m2p_png_meta **meta_out, m2p_error *err) {
    *img_out = NULL;
    if (meta_out != NULL) {
        *meta_out = NULL;
    }
    char *data = NULL;
    size_t len = 0;
    m2p_code rc = m2p_fs_read_file(path, M2P_PNG_MAX_FILE, &data, &len, err);
    if (rc != M2P_OK) {
        return rc;
    }
    rc = decode((const uint8_t *)data, len, img_out, meta_out, err);
    m2p_free(data);
    return rc;
}

/* ---------------------------------------------------------------- sidecar */

/* Longest numeric array kept as it is in the sidecar; longer ones are mean-pooled to this many points. */
#define SIDECAR_CURVE_POINTS 64
/* Bands of the spectrogram's mean profile (low → high) kept in the sidecar. */
#define SIDECAR_SPEC_BANDS 16
/* Sections listed in the sidecar at most (the count is always there). */
#define SIDECAR_MAX_SECTIONS 48

static bool number_array(const json_t *a) {
    if (!json_is_array(a)) {
        return false;
    }
    for (size_t i = 0; i < json_array_size(a); i++) {
        if (!json_is_number(json_array_get(a, i))) {
            return false;
        }
    }
    return true;
}

/* Mean of a[i0, i1) as a 4-decimal number (the sidecar is for people and tools, not for resynthesis). */
static json_t *pooled(const json_t *a, size_t i0, size_t i1) {
    double s = 0;
    for (size_t i = i0; i < i1; i++) {
        s += json_number_value(json_array_get(a, i));
    }
    double m = i1 > i0 ? s / (double)(i1 - i0) : 0.0;
    return json_real(nearbyint(m * 1e4) / 1e4);
}

static json_t *pool_array(const json_t *a, size_t points) {
    json_t *out = json_array();
    size_t n = json_array_size(a);
    for (size_t k = 0; out != NULL && k < points; k++) {
        size_t i0 = k * n / points;
        size_t i1 = (k + 1) * n / points;
        if (json_array_append_new(out, pooled(a, i0, i1 > i0 ? i1 : i0 + 1)) != 0) {
            json_decref(out);
            out = NULL;
        }
    }
    return out;
}

/* {"bands", "frames", "band_profile": mean over time of SIDECAR_SPEC_BANDS band groups} */
static json_t *spectrogram_summary(const json_t *spec) {
    json_int_t bands = json_integer_value(json_object_get(spec, "bands"));
    json_int_t frames = json_integer_value(json_object_get(spec, "frames"));
    const json_t *values = json_object_get(spec, "values");
    json_t *out = json_pack("{s:I, s:I}", "bands", bands, "frames", frames);
    /* the sizes come from our analysis, but never trust a product to fit */
    if (out == NULL || bands <= 0 || frames <= 0 || (unsigned long long)bands > SIZE_MAX / (unsigned long long)frames ||
        !json_is_array(values) || json_array_size(values) != (size_t)bands * (size_t)frames) {
        return out;
    }
    json_t *profile = json_array();
    size_t groups = (size_t)bands < SIDECAR_SPEC_BANDS ? (size_t)bands : SIDECAR_SPEC_BANDS;
    for (size_t g = 0; profile != NULL && g < groups; g++) {
        size_t b0 = g * (size_t)bands / groups;
        size_t b1 = (g + 1) * (size_t)bands / groups;
        /* values are band-major (bands x frames): a band group is one contiguous run. */
        if (json_array_append_new(profile, pooled(values, b0 * (size_t)frames, b1 * (size_t)frames)) != 0) {
            json_decref(profile);
            profile = NULL;
        }
    }
    if (profile == NULL || json_object_set_new(out, "band_profile", profile) != 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* The analysis as the sidecar carries it: every scalar, key, mode, chroma and
 * sections as they are; the spectrogram as its shape and band profile; the
 * beat times as their count; any longer numeric array (the energy curve)
 * mean-pooled to SIDECAR_CURVE_POINTS. A few KB instead of ~270 KB. */
static json_t *analysis_summary(const json_t *features) {
    json_t *out = json_object();
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)features, key, v) {
        if (out == NULL) {
            break;
        }
        json_t *nv;
        const char *nk = key;
        if (strcmp(key, "spectrogram") == 0 && json_is_object(v)) {
            nv = spectrogram_summary(v);
        } else if (strcmp(key, "beats") == 0 && json_is_array(v)) {
            nk = "n_beats";
            nv = json_integer((json_int_t)json_array_size(v));
        } else if (strcmp(key, "sections") == 0 && json_array_size(v) > SIDECAR_MAX_SECTIONS) {
            nv = json_array();
            for (size_t i = 0; nv != NULL && i < SIDECAR_MAX_SECTIONS; i++) {
                if (json_array_append(nv, json_array_get(v, i)) != 0) {
                    json_decref(nv);
                    nv = NULL;
                }
            }
        } else if (number_array(v) && json_array_size(v) > SIDECAR_CURVE_POINTS) {
            nv = pool_array(v, SIDECAR_CURVE_POINTS);
        } else {
            nv = json_deep_copy(v);
        }
        if (nv == NULL || json_object_set_new(out, nk, nv) != 0) {
            json_decref(out);
            out = NULL;
        }
    }
    if (out != NULL && json_is_array(json_object_get(features, "sections")) &&
        json_object_set_new(out, "n_sections", json_integer((json_int_t)json_array_size(
                                                      json_object_get(features, "sections")))) != 0) {
        json_decref(out);
        out = NULL;
    }
    return out;
}

m2p_code m2p_png_write_sidecar(const char *path, const m2p_png_meta *meta, const json_t *features_json,
                               m2p_error *err) {
    json_t *root = json_object();
    char *text = NULL;
    m2p_code rc = M2P_OK;
    if (root == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "sidecar JSON");
    }
    for (size_t i = 0; meta != NULL && i < meta->n; i++) {
        if (json_object_set_new(root, meta->keys[i], json_string(meta->values[i])) != 0) {
            rc = m2p_error_set(err, M2P_E_NOMEM, "sidecar JSON");
            goto done;
        }
    }
    if (features_json != NULL) {
        if (json_object_set_new(root, "analysis", analysis_summary(features_json)) != 0) {
            rc = m2p_error_set(err, M2P_E_NOMEM, "sidecar JSON");
            goto done;
        }
    }
    text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(10));
    if (text == NULL) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "sidecar JSON");
        goto done;
    }
    rc = m2p_fs_write_atomic(path, text, strlen(text), err);
done:
    free(text); /* jansson allocates with malloc */
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------- thumbnails */

m2p_code m2p_png_thumb_webp(const m2p_image *img, int max_edge, int quality, uint8_t **out, size_t *out_len,
                            m2p_error *err) {
    *out = NULL;
    *out_len = 0;
    if (img == NULL || img->pixels == NULL || img->width <= 0 || img->height <= 0 || max_edge < 8 ||
        max_edge > MAX_EDGE || quality < 0 || quality > 100) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "thumbnail of edge %d, quality %d", max_edge, quality);
    }
    int longer = img->width > img->height ? img->width : img->height;
    int tw = img->width;
    int th = img->height;
    if (longer > max_edge) {
        tw = (int)((long long)img->width * max_edge / longer);
        th = (int)((long long)img->height * max_edge / longer);
        tw = tw < 1 ? 1 : tw;
        th = th < 1 ? 1 : th;
    }
    uint8_t *small = m2p_malloc_array((size_t)tw * 3, (size_t)th);
    if (small == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "thumbnail");
    }
    /* Area average: output pixel (x, y) is the mean of its source rectangle. */
    for (int y = 0; y < th; y++) {
        int y0 = (int)((long long)y * img->height / th);
        int y1 = (int)((long long)(y + 1) * img->height / th);
        y1 = y1 > y0 ? y1 : y0 + 1;
        for (int x = 0; x < tw; x++) {
            int x0 = (int)((long long)x * img->width / tw);
            int x1 = (int)((long long)(x + 1) * img->width / tw);
            x1 = x1 > x0 ? x1 : x0 + 1;
            unsigned long sum[3] = {0, 0, 0};
            for (int sy = y0; sy < y1; sy++) {
                const uint8_t *p = img->pixels + (size_t)sy * img->stride + (size_t)x0 * 3;
                for (int sx = x0; sx < x1; sx++, p += 3) {
                    sum[0] += p[0];
                    sum[1] += p[1];
                    sum[2] += p[2];
                }
            }
            unsigned long cnt = (unsigned long)(x1 - x0) * (unsigned long)(y1 - y0);
            uint8_t *q = small + ((size_t)y * (size_t)tw + (size_t)x) * 3;
            for (int c = 0; c < 3; c++) {
                q[c] = (uint8_t)((sum[c] + cnt / 2) / cnt);
            }
        }
    }
    uint8_t *webp = NULL;
    size_t n = WebPEncodeRGB(small, tw, th, tw * 3, (float)quality, &webp);
    m2p_free(small);
    if (n == 0 || webp == NULL) {
        return m2p_error_set(err, M2P_E_PNG_WRITE, "WebP encoding failed");
    }
    /* Copy into our allocator so the caller frees with m2p_free like everything else. */
    *out = m2p_malloc(n);
    if (*out == NULL) {
        WebPFree(webp);
        return m2p_error_set(err, M2P_E_NOMEM, "thumbnail");
    }
    memcpy(*out, webp, n);
    WebPFree(webp);
    *out_len = n;
    return M2P_OK;
}

m2p_code m2p_png_write_thumb_webp(const char *path, const m2p_image *img, int max_edge, int quality,
                                  m2p_error *err) {
    uint8_t *buf = NULL;
    size_t len = 0;
    m2p_code rc = m2p_png_thumb_webp(img, max_edge, quality, &buf, &len, err);
    if (rc != M2P_OK) {
        return rc;
    }
    rc = m2p_fs_write_atomic(path, buf, len, err);
    m2p_free(buf);
    return rc;
}
