/*
 * render/request.c — m2p_render_request_check: every field of a render
 * request checked before any pixel is allocated, each failure with its own
 * code (RENDER_SIZE, RENDER_COUNT, RENDER_STEPS, RENDER_SEED, ...) and a
 * detail naming the value, so the CLI and the API can say exactly what to fix.
 *
 * Rules (also in docs/notes/render.md):
 *   n          1..M2P_RENDER_MAX_N
 *   width      0 (renderer default) or 64..4096 and a multiple of 8; same for height
 *   n*w*h      at most M2P_RENDER_MAX_TOTAL_PX pixels in one request
 *   steps      0 (renderer default) or 1..50
 *   guidance   0 (renderer default) or 1..30, finite
 *   seeds      non-NULL (any 32-bit value is a valid seed)
 *   section    -1 or a section index of the features
 *   features   array lengths consistent with their pointers, within caps
 */
#include <math.h>
#include <stdio.h>

#include "render/render.h"

#define MIN_EDGE 64
#define MAX_EDGE 4096
#define MAX_STEPS 50
#define MAX_TOTAL_PX (4ull * 4096ull * 4096ull)
#define MAX_SPEC_BANDS 1024
#define MAX_SPEC_FRAMES 1000000
#define MAX_CURVE 1000000
#define MAX_SECTIONS 10000
#define MAX_BEATS 1000000

static m2p_code check_edge(const char *what, int v, m2p_error *err) {
    if (v == 0) {
        return M2P_OK;
    }
    if (v < MIN_EDGE || v > MAX_EDGE) {
        return m2p_error_set(err, M2P_E_RENDER_SIZE, "%s %d is outside %d..%d", what, v, MIN_EDGE, MAX_EDGE);
    }
    if (v % 8 != 0) {
        return m2p_error_set(err, M2P_E_RENDER_SIZE, "%s %d is not a multiple of 8 (try %d)", what, v,
                             (v + 4) / 8 * 8);
    }
    return M2P_OK;
}

static m2p_code check_features(const m2p_features *f, m2p_error *err) {
    if (f->spec_bands < 0 || f->spec_frames < 0 || f->spec_bands > MAX_SPEC_BANDS ||
        f->spec_frames > MAX_SPEC_FRAMES) {
        return m2p_error_set(err, M2P_E_RENDER_FEATURES, "spectrogram of %d bands x %d frames", f->spec_bands,
                             f->spec_frames);
    }
    if (f->spec_bands > 0 && f->spec_frames > 0 && f->spectrogram == NULL) {
        return m2p_error_set(err, M2P_E_RENDER_FEATURES, "spectrogram size given but no data");
    }
    if (f->n_energy < 0 || f->n_energy > MAX_CURVE || (f->n_energy > 0 && f->energy_curve == NULL)) {
        return m2p_error_set(err, M2P_E_RENDER_FEATURES, "energy curve of %d values", f->n_energy);
    }
    if (f->n_sections > MAX_SECTIONS || (f->n_sections > 0 && f->sections == NULL)) {
        return m2p_error_set(err, M2P_E_RENDER_FEATURES, "%zu sections", f->n_sections);
    }
    if (f->n_beats > MAX_BEATS || (f->n_beats > 0 && f->beats == NULL)) {
        return m2p_error_set(err, M2P_E_RENDER_FEATURES, "%zu beats", f->n_beats);
    }
    return M2P_OK;
}

m2p_code m2p_render_request_check(const m2p_render_request *req, m2p_error *err) {
    if (req == NULL || req->prompt == NULL || req->features == NULL) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "render request without %s",
                             req == NULL ? "anything" : (req->prompt == NULL ? "a prompt" : "features"));
    }
    if (req->n < 1 || req->n > M2P_RENDER_MAX_N) {
        return m2p_error_set(err, M2P_E_RENDER_COUNT, "%d variations asked, allowed 1..%d", req->n,
                             M2P_RENDER_MAX_N);
    }
    m2p_code rc = check_edge("width", req->width, err);
    if (rc != M2P_OK) {
        return rc;
    }
    rc = check_edge("height", req->height, err);
    if (rc != M2P_OK) {
        return rc;
    }
    /* With 0 meaning "default" the largest default edge (sonic's 1024) stands in. */
    unsigned long long w = req->width > 0 ? (unsigned long long)req->width : 1024ull;
    unsigned long long h = req->height > 0 ? (unsigned long long)req->height : 1024ull;
    if (w * h * (unsigned long long)req->n > MAX_TOTAL_PX) {
        return m2p_error_set(err, M2P_E_RENDER_SIZE, "%d images of %llux%llu exceed %llu pixels per request",
                             req->n, w, h, MAX_TOTAL_PX);
    }
    if (req->steps < 0 || req->steps > MAX_STEPS) {
        return m2p_error_set(err, M2P_E_RENDER_STEPS, "%d steps asked, allowed 1..%d", req->steps, MAX_STEPS);
    }
    if (!isfinite(req->guidance) || (req->guidance != 0.0 && (req->guidance < 1.0 || req->guidance > 30.0))) {
        return m2p_error_set(err, M2P_E_RENDER_GUIDANCE, "guidance %g asked, allowed 1..30", req->guidance);
    }
    if (req->seeds == NULL) {
        return m2p_error_set(err, M2P_E_RENDER_SEED, "no seeds given for %d images", req->n);
    }
    rc = check_features(req->features, err);
    if (rc != M2P_OK) {
        return rc;
    }
    if (req->section < -1 || (req->section >= 0 && (size_t)req->section >= req->features->n_sections)) {
        return m2p_error_set(err, M2P_E_RENDER_SECTION, "section %d asked, the song has %zu", req->section,
                             req->features->n_sections);
    }
    return M2P_OK;
}

/* m:ss, or h:mm:ss from an hour on; negative and non-finite times read 0:00. */
static void clock_time(double t, char *buf, size_t cap) {
    /* clamp before the cast: a bogus time would overflow long (UB); 10^7 s is past any song */
    long s = isfinite(t) && t > 0 ? (long)floor((t < 1e7 ? t : 1e7) + 0.5) : 0;
    if (s >= 3600) {
        (void)snprintf(buf, cap, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    } else {
        (void)snprintf(buf, cap, "%ld:%02ld", s / 60, s % 60);
    }
}

size_t m2p_render_section_label(const m2p_features *f, int section, char *buf, size_t cap) {
    if (buf == NULL || cap == 0) {
        return 0;
    }
    buf[0] = '\0';
    if (f == NULL || section < 0 || (size_t)section >= f->n_sections || f->sections == NULL) {
        return 0;
    }
    const m2p_section *s = &f->sections[section];
    char a[24];
    char b[24];
    clock_time(s->start_s, a, sizeof a);
    clock_time(s->end_s, b, sizeof b);
    /* U+00B7 middle dot, U+2013 en dash */
    int n = snprintf(buf, cap, "Part %d of %zu \xC2\xB7 %s\xE2\x80\x93%s", section + 1, f->n_sections, a, b);
    if (n < 0 || (size_t)n >= cap) {
        buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}
