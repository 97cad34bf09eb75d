/*
 * render/png.h — PNGs that carry their story, and gallery thumbnails.
 *
 * An m2p_png_meta is an ordered list of key/value text pairs (keys are PNG
 * keywords: 1..79 printable Latin-1 characters, no leading, trailing or double
 * spaces; we use ASCII only). m2p_png_write stores each pair as a text chunk
 * before the image data: tEXt when the value is printable ASCII (plus newline),
 * iTXt (UTF-8, compressed when longer than 1 KiB) otherwise. No tIME chunk and
 * fixed zlib settings: the same image and metadata give the same bytes.
 *
 * The usual keys are the M2P_PNG_KEY_* names below; "parameters" carries the
 * one-line summary in the Automatic1111 layout ("prompt\nNegative prompt:
 * ...\nSteps: 4, Seed: 7, Size: 512x512, Model: ...") that many image tools
 * already show. m2p_png_meta_add_render fills them all from a request.
 *
 * Reading (m2p_png_read_meta, m2p_png_read) accepts any PNG, caps its size and
 * dimensions, and returns M2P_E_PNG_READ for anything malformed.
 */
#ifndef M2P_RENDER_PNG_H
#define M2P_RENDER_PNG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "render/image.h"
#include "render/render.h"

#define M2P_PNG_KEY_PROMPT "prompt"
#define M2P_PNG_KEY_NEGATIVE "negative_prompt"
#define M2P_PNG_KEY_SEED "seed"
#define M2P_PNG_KEY_STYLE "style"
#define M2P_PNG_KEY_RENDERER "renderer"
#define M2P_PNG_KEY_MODEL "model"
#define M2P_PNG_KEY_STEPS "steps"
#define M2P_PNG_KEY_GUIDANCE "guidance"
#define M2P_PNG_KEY_SIZE "size"
#define M2P_PNG_KEY_SOURCE "source"
#define M2P_PNG_KEY_TITLE "Title"      /* PNG's registered keyword */
#define M2P_PNG_KEY_ARTIST "Author"    /* PNG's registered keyword */
#define M2P_PNG_KEY_SECTION "section"
#define M2P_PNG_KEY_SECTION_LABEL "section_label" /* "Part 2 of 4 · 1:02–1:45" (iTXt) */
#define M2P_PNG_KEY_FEATURES "features" /* one-line summary: "124 BPM · A minor · energy 0.72 · 3 sections" */
#define M2P_PNG_KEY_SOFTWARE "Software" /* "Mus2Pic 0.1.0" */
#define M2P_PNG_KEY_VERSION "mus2pic_version"
#define M2P_PNG_KEY_PARAMETERS "parameters"

#define M2P_PNG_MAX_ENTRIES 64
#define M2P_PNG_MAX_VALUE (64u * 1024u)
#define M2P_PNG_MAX_FILE (256u * 1024u * 1024u)

typedef struct m2p_png_meta m2p_png_meta;

m2p_code m2p_png_meta_create(m2p_png_meta **out) M2P_WUR;
void m2p_png_meta_free(m2p_png_meta *m);

/* Sets key to value (copied; replaces an existing value of that key).
 * Bad keyword, value over M2P_PNG_MAX_VALUE, invalid UTF-8 or more than
 * M2P_PNG_MAX_ENTRIES keys → M2P_E_INVALID_ARG. */
m2p_code m2p_png_meta_set(m2p_png_meta *m, const char *key, const char *value, m2p_error *err) M2P_WUR;
/* printf-style variant of m2p_png_meta_set. */
m2p_code m2p_png_meta_setf(m2p_png_meta *m, const char *key, m2p_error *err, const char *fmt, ...)
    M2P_PRINTF(4, 5) M2P_WUR;
/* The value of key, or NULL; valid until the key is set again or m is freed. */
const char *m2p_png_meta_get(const m2p_png_meta *m, const char *key);
size_t m2p_png_meta_count(const m2p_png_meta *m);
/* Key and value of entry i (insertion order); NULL when i is out of range. */
const char *m2p_png_meta_key(const m2p_png_meta *m, size_t i);
const char *m2p_png_meta_value(const m2p_png_meta *m, size_t i);

/* Fills the standard keys for image `index` of req (its width and height
 * resolved, not 0: they are written as the size): prompt, negative, seed,
 * style, renderer, model, steps, guidance, size, title, artist, section,
 * features (summary), Software, mus2pic_version, parameters. source may be NULL. */
m2p_code m2p_png_meta_add_render(m2p_png_meta *m, const m2p_render_request *req, int index, const char *renderer,
                                 const char *model, const char *source, m2p_error *err) M2P_WUR;

/* "124 BPM · A minor · energy 0.72 · 3 sections" (render's own copy, so this
 * module does not depend on the analyser's code). */
void m2p_png_features_line(const m2p_features *f, char *buf, size_t cap);

/* Encodes img (+ meta, may be NULL) into a PNG in memory; *out owned by the caller (m2p_free). */
m2p_code m2p_png_encode(const m2p_image *img, const m2p_png_meta *meta, uint8_t **out, size_t *out_len,
                        m2p_error *err) M2P_WUR;
/* Encodes and writes atomically (temp file + rename) → M2P_E_PNG_WRITE on failure. */
m2p_code m2p_png_write(const char *path, const m2p_image *img, const m2p_png_meta *meta, m2p_error *err) M2P_WUR;

/* Reads the text chunks (tEXt, zTXt, iTXt) of a PNG in memory / on disk. *out owned by the caller. */
m2p_code m2p_png_read_meta_mem(const uint8_t *data, size_t len, m2p_png_meta **out, m2p_error *err) M2P_WUR;
m2p_code m2p_png_read_meta(const char *path, m2p_png_meta **out, m2p_error *err) M2P_WUR;
/* Reads pixels (as 8-bit RGB, whatever the PNG's format) and, when meta_out
 * is not NULL, the text chunks. Edges over 16384 → M2P_E_PNG_READ. */
m2p_code m2p_png_read(const char *path, m2p_image **img_out, m2p_png_meta **meta_out, m2p_error *err) M2P_WUR;

/* JSON sidecar: {"key": "value", ..., "analysis": <summary of features_json>}
 * written atomically with sorted keys (deterministic). The summary keeps the
 * scalars, key, mode, chroma and sections; the spectrogram becomes its shape
 * and a 16-band mean profile, the beat list its count (n_beats), the energy
 * curve 64 mean-pooled points: a few KB. features_json may be NULL. */
m2p_code m2p_png_write_sidecar(const char *path, const m2p_png_meta *meta, const json_t *features_json,
                               m2p_error *err) M2P_WUR;

/* Gallery thumbnail: img scaled down (area average) so its longer edge is at
 * most max_edge (never up), encoded as lossy WebP at quality 0..100. */
m2p_code m2p_png_thumb_webp(const m2p_image *img, int max_edge, int quality, uint8_t **out, size_t *out_len,
                            m2p_error *err) M2P_WUR;
m2p_code m2p_png_write_thumb_webp(const char *path, const m2p_image *img, int max_edge, int quality,
                                  m2p_error *err) M2P_WUR;

#endif
