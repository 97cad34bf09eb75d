/*
 * render/render.h — one interface for every renderer.
 *
 *   m2p_renderer_create("auto"|"sonic"|"lcm", cfg) → renderer (auto: lcm when
 *   the model's weights are there, else sonic; m2p_renderer_name says which)
 *   m2p_renderer_render(r, request, progress) → n images
 *
 * A renderer is created once per process and reused: the lcm renderer maps
 * its weights at create time, so later renders pay no load. Rendering on one
 * renderer is serialised by the renderer itself (one device, one lock).
 */
#ifndef M2P_RENDER_RENDER_H
#define M2P_RENDER_RENDER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "core/progress.h"
#include "dsp/features.h"
#include "prompt/prompt.h"
#include "render/image.h"

#define M2P_RENDER_MAX_N 16

/* A live preview of a render in progress: after denoising step `step` (1-based) of `steps`, the
 * current estimate of the request's first image, at the size the renderer chooses (lcm: half the
 * image's, ⌊(W+1)/2⌋×⌊(H+1)/2⌋), as RGB8 [height][width][3] (tightly packed; valid
 * during the call only). Called on the rendering thread while the renderer's device is held:
 * copy or encode the pixels and return quickly. Only the lcm renderer calls it, and only when a
 * TAESD decoder is loaded and the setting `previews` is not off (m2p_renderer_previews); never
 * after the last step. */
typedef void (*m2p_render_preview_fn)(void *ctx, int step, int steps, int width, int height, const uint8_t *rgb);

typedef struct m2p_render_request {
    const m2p_prompt *prompt;     /* required */
    const m2p_features *features; /* required */
    const char *style;            /* preset name (visual language of sonic) */
    int n;                        /* 1..M2P_RENDER_MAX_N images */
    int width, height;            /* pixels; 0 → renderer default */
    const uint32_t *seeds;        /* n seeds: image i is reproducible from seeds[i] alone */
    int steps;                    /* denoising steps (lcm); ignored by sonic */
    double guidance;              /* guidance scale (lcm) */
    const char *title, *artist;   /* for --layout (may be NULL) */
    bool layout;                  /* poster typography: title, artist, BPM, key */
    int section;                  /* -1: whole song; else draw this section only */
} m2p_render_request;

/* A preview sink for m2p_renderer_render_ex. */
typedef struct m2p_render_preview {
    m2p_render_preview_fn fn;
    void *ctx;
} m2p_render_preview;

typedef struct m2p_renderer m2p_renderer;

/* name: "auto", "sonic" or "lcm". Unknown → M2P_E_RENDERER_UNKNOWN; "lcm"
 * without weights → M2P_E_MODEL_MISSING. */
m2p_code m2p_renderer_create(const char *name, const m2p_config *cfg, m2p_renderer **out, m2p_error *err) M2P_WUR;
void m2p_renderer_free(m2p_renderer *r);

/* True when "auto" would fall back to sonic for lack of model weights; note
 * (may be NULL) gets one line for the user saying why and what to do:
 * "no LCM weights found (MUS2PIC_MODEL unset, nothing in <dir>); using the
 * sonic renderer — run `mus2pic model pull` for the diffusion model".
 * Cheap (a few stat calls). m2p_renderer_create("auto") logs it at info. */
bool m2p_renderer_auto_note(const m2p_config *cfg, char *note, size_t cap);

/* "sonic" or "lcm". */
const char *m2p_renderer_name(const m2p_renderer *r);
/* Model description for metadata ("procedural", "SimianLuo/LCM_Dreamshaper_v7"). */
const char *m2p_renderer_model(const m2p_renderer *r);
/* True when renders of r call a request's preview sink (lcm with TAESD loaded and previews on). */
bool m2p_renderer_previews(const m2p_renderer *r);
/* Default square size of the renderer (sonic 1024, lcm 512). */
int m2p_renderer_default_size(const m2p_renderer *r);

/* The label a poster of one section carries (--per-section): "Part 2 of 4 ·
 * 1:02–1:45" (1-based part, of how many, its time span as m:ss or h:mm:ss).
 * Written into buf (UTF-8); returns its length, 0 (buf "") when section is
 * not a section of f or buf is too small. Set on the poster by --layout and
 * in the PNG metadata as "section_label". */
size_t m2p_render_section_label(const m2p_features *f, int section, char *buf, size_t cap);

/* Checks the request (sizes, counts, steps) → specific M2P_E_RENDER_* errors. */
m2p_code m2p_render_request_check(const m2p_render_request *req, m2p_error *err) M2P_WUR;

/* Renders req->n images into images[0..n-1] (each owned by the caller; free
 * with m2p_image_free). On error no image is returned. */
m2p_code m2p_renderer_render(m2p_renderer *r, const m2p_render_request *req, const m2p_progress *progress,
                             m2p_image **images, m2p_error *err) M2P_WUR;
/* m2p_renderer_render with live previews sent to preview (may be NULL: none) when the renderer
 * makes them (m2p_renderer_previews); otherwise the same as m2p_renderer_render. */
m2p_code m2p_renderer_render_ex(m2p_renderer *r, const m2p_render_request *req, const m2p_render_preview *preview,
                                const m2p_progress *progress, m2p_image **images, m2p_error *err) M2P_WUR;

#endif
