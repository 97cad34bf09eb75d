/*
 * render/sonic.c — the sonic backend: the embedded procedural renderer.
 *
 * For each of the request's n images, on its own thread (OpenMP, one cairo
 * image surface per image, nothing shared but read-only inputs):
 *   song view (once, shared) → palette from key/mode/energy/brightness and the
 *   seed → the style's painter → pixel passes (grain, vignette, paper) →
 *   typography when asked → packed RGB.
 * The backend holds no state besides the thread count, so it is safe to call
 * from several threads at once. Image i depends on seeds[i] and the request
 * only: the same seed gives the same pixels whatever the thread count.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "render/backend.h"
#include "render/sonic_int.h"

#define SONIC_DEFAULT_SIZE 1024

typedef struct sonic_self {
    int threads; /* 0 = all cores */
} sonic_self;

static uint64_t style_stream(const char *name) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *p = name; *p != 0; p++) {
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    }
    return h;
}

static m2p_code render_one(const m2p_render_request *req, const sn_song *song, const char *style, sn_painter paint,
                           int index, m2p_image **out, m2p_error *err) {
    *out = NULL;
    int w = req->width > 0 ? req->width : SONIC_DEFAULT_SIZE;
    int h = req->height > 0 ? req->height : SONIC_DEFAULT_SIZE;
    m2p_code rc = M2P_OK;
    m2p_image *img = NULL;
    cairo_t *cr = NULL;
    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, w, h);
    if (cairo_surface_status(surf) != CAIRO_STATUS_SUCCESS) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "drawing surface of %dx%d", w, h);
        goto done;
    }
    cr = cairo_create(surf);
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "cairo context");
        goto done;
    }
    sn_ctx c;
    memset(&c, 0, sizeof c);
    c.cr = cr;
    c.surf = surf;
    c.w = w;
    c.h = h;
    c.u = (w < h ? w : h) / 1000.0;
    c.seed = req->seeds[index];
    c.style = style;
    c.song = song;
    c.text_top = 0.72;
    sn_rng prng;
    sn_rng_seed(&prng, c.seed, 0x9a1e77eull);
    sn_palette_make(&c.pal, song, &prng);
    sn_rng_seed(&c.rng, c.seed, style_stream(style));
    cairo_set_antialias(cr, CAIRO_ANTIALIAS_GOOD);
    cairo_set_tolerance(cr, 0.25); /* curve flattening: invisible at 0.25 px, fewer segments than 0.1 */
    paint(&c);
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS) {
        rc = m2p_error_set(err, M2P_E_RENDER_FAILED, "cairo: %s", cairo_status_to_string(cairo_status(cr)));
        goto done;
    }
    sn_post(&c);
    char kicker[96];
    if (req->layout) {
        c.kicker = m2p_render_section_label(req->features, req->section, kicker, sizeof kicker) > 0 ? kicker : NULL;
        sn_layout_draw(&c, req->title, req->artist);
    }
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS) {
        rc = m2p_error_set(err, M2P_E_RENDER_FAILED, "cairo: %s", cairo_status_to_string(cairo_status(cr)));
        goto done;
    }
    rc = m2p_image_create(w, h, &img);
    if (rc != M2P_OK) {
        rc = m2p_error_set(err, rc, "image of %dx%d", w, h);
        goto done;
    }
    sn_to_rgb(surf, img->pixels, img->stride);
    img->seed = c.seed;
    *out = img;
    img = NULL;
done:
    m2p_image_free(img);
    if (cr != NULL) {
        cairo_destroy(cr);
    }
    cairo_surface_destroy(surf);
    return rc;
}

static m2p_code sonic_render(void *self_, const m2p_render_request *req, const m2p_progress *progress,
                             m2p_image **images, m2p_error *err) {
    const sonic_self *self = self_;
    m2p_code rc = m2p_render_request_check(req, err);
    if (rc != M2P_OK) {
        return rc;
    }
    const char *style = NULL;
    const char *want = req->style != NULL ? req->style : req->prompt->style;
    sn_painter paint = sn_style_find(want, &style);
    sn_song *song = m2p_malloc(sizeof *song);
    if (song == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "song view");
    }
    sn_song_init(song, req->features, req->section);
    int n = req->n;
    m2p_code rcs[M2P_RENDER_MAX_N];
    m2p_error errs[M2P_RENDER_MAX_N];
    int done_count = 0;
    int nt = self->threads > 0 ? self->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    nt = nt > n ? n : (nt < 1 ? 1 : nt);
    for (int i = 0; i < n; i++) {
        images[i] = NULL;
        rcs[i] = M2P_OK;
        m2p_error_clear(&errs[i]);
    }
    m2p_progress_report(progress, M2P_STEP_RENDER, 0, n, "painting");
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int i = 0; i < n; i++) {
        if (m2p_progress_cancelled(progress)) {
            rcs[i] = M2P_E_CANCELLED;
            continue;
        }
        rcs[i] = render_one(req, song, style, paint, i, &images[i], &errs[i]);
#pragma omp critical(m2p_sonic_progress)
        {
            done_count++;
            char msg[64];
            (void)snprintf(msg, sizeof msg, "painted %d of %d", done_count, n);
            m2p_progress_report(progress, M2P_STEP_RENDER, done_count, n, msg);
        }
    }
    m2p_free(song);
    rc = M2P_OK;
    for (int i = 0; i < n && rc == M2P_OK; i++) {
        if (rcs[i] != M2P_OK) {
            rc = rcs[i];
            if (err != NULL) {
                *err = errs[i];
                err->code = rc;
            }
        }
    }
    if (rc != M2P_OK) {
        for (int i = 0; i < n; i++) {
            m2p_image_free(images[i]);
            images[i] = NULL;
        }
    }
    return rc;
}

static const char *sonic_model(const void *self) {
    (void)self;
    return "procedural";
}

static void sonic_destroy(void *self) {
    m2p_free(self);
}

m2p_code m2p_sonic_backend_create(const m2p_config *cfg, m2p_render_backend *out, m2p_error *err) {
    memset(out, 0, sizeof *out);
    sonic_self *self = m2p_calloc(1, sizeof *self);
    if (self == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "sonic renderer");
    }
    self->threads = cfg != NULL ? cfg->threads : 0;
    out->name = "sonic";
    out->default_size = SONIC_DEFAULT_SIZE;
    out->self = self;
    out->render = sonic_render;
    out->model = sonic_model;
    out->destroy = sonic_destroy;
    return M2P_OK;
}
