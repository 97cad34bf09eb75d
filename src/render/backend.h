/*
 * render/backend.h — what a renderer implementation provides (internal to
 * Mus2Pic; callers use render/render.h). The factory in
 * src/pipeline/renderer.c wraps a backend in an m2p_renderer.
 *
 * A backend is created once per process and must be safe to call from several
 * threads (it serialises rendering itself if it holds one device).
 */
#ifndef M2P_RENDER_BACKEND_H
#define M2P_RENDER_BACKEND_H

#include "core/config.h"
#include "render/render.h"

typedef struct m2p_render_backend {
    const char *name;  /* "sonic", "lcm" */
    int default_size;  /* square edge in pixels when the request says 0 */
    void *self;        /* backend state, owned */
    /* Renders req->n images (req already checked and sizes resolved). */
    m2p_code (*render)(void *self, const m2p_render_request *req, const m2p_progress *progress, m2p_image **images,
                       m2p_error *err);
    /* render with live previews (render.h, m2p_render_preview); NULL when the backend makes none
     * (sonic: instant; lcm without TAESD or with previews=off). */
    m2p_code (*render_preview)(void *self, const m2p_render_request *req, const m2p_render_preview *preview,
                               const m2p_progress *progress, m2p_image **images, m2p_error *err);
    /* Model description for metadata; never NULL. */
    const char *(*model)(const void *self);
    void (*destroy)(void *self);
} m2p_render_backend;

/* The procedural renderer (src/render/sonic.c). Never fails for lack of weights. */
m2p_code m2p_sonic_backend_create(const m2p_config *cfg, m2p_render_backend *out, m2p_error *err) M2P_WUR;

/* The latent consistency model renderer (src/diffusion/). */
m2p_code m2p_lcm_backend_create(const m2p_config *cfg, m2p_render_backend *out, m2p_error *err) M2P_WUR;
/* True when cfg points at (or the data directory holds) model weights;
 * writes the folder into path. Cheap: checks files, loads nothing. */
bool m2p_lcm_weights_present(const m2p_config *cfg, char *path, size_t cap);

#endif
