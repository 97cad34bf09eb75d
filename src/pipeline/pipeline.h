/*
 * pipeline/pipeline.h — one job, end to end:
 *
 *   source ─► fetch ─► decode ─► analyze ─► prompt ─► render ─► store
 *
 * The same code runs from the CLI (progress bars), the server's in-process
 * workers and the distributed workers; only the m2p_progress callbacks differ.
 *
 * An m2p_pipeline lives for the whole process: it holds the configuration,
 * the audio cache and the renderer (created on first use and kept warm, so a
 * second job pays no model load). Store handles are per thread: each call
 * takes the store to use.
 */
#ifndef M2P_PIPELINE_PIPELINE_H
#define M2P_PIPELINE_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "audio/track.h"
#include "core/config.h"
#include "core/error.h"
#include "core/progress.h"
#include "dsp/features.h"
#include "prompt/prompt.h"
#include "render/render.h"
#include "store/store.h"

typedef struct m2p_pipeline m2p_pipeline;

/* Live previews (renderers that make them: lcm with TAESD, render.h): the
 * longer side of a preview image, and its WebP quality. */
#define M2P_PREVIEW_EDGE 256
#define M2P_PREVIEW_QUALITY 60

/* A live preview of image `index` (0-based within the job) after denoising
 * step `step` of `steps`: a lossy WebP of width × height (longer side at most
 * M2P_PREVIEW_EDGE), webp[0..len) valid during the call only. Called on the
 * rendering thread; return quickly. */
typedef void (*m2p_pipeline_preview_fn)(void *ctx, int index, int step, int steps, int width, int height,
                                        const uint8_t *webp, size_t len);

typedef struct m2p_job_spec {
    const char *source;        /* URL, bare YouTube id, or (allow_paths) a local path */
    bool allow_paths;          /* CLI: true; server: false (uploads come as upload_path) */
    const char *upload_path;   /* server: an uploaded file already on disk (overrides source) */
    const char *upload_name;   /* its original name, used as the title */
    const char *style;         /* NULL → cfg->style */
    const char *template_text; /* NULL → the preset's */
    const char *renderer;      /* NULL → cfg->renderer */
    int n;                     /* 0 → cfg->variations */
    int width, height;         /* 0 → cfg or renderer default */
    int steps;                 /* 0 → cfg->steps */
    double guidance;           /* 0 → cfg->guidance */
    uint32_t seed;             /* image i uses seed + i ... */
    bool seed_set;             /* ... when set; else a random base seed */
    bool layout;               /* poster typography */
    bool per_section;          /* one image per detected section */
    const char *out_dir;       /* where PNG + JSON sidecars go (NULL → <data_dir>/images) */
    const char *file_prefix;   /* file names: <prefix>-<i>.png (NULL → derived from title and seed) */
    m2p_pipeline_preview_fn preview; /* optional live previews (NULL: none; the server's job worker sets it) */
    void *preview_ctx;
} m2p_job_spec;

typedef struct m2p_job_result {
    m2p_track track;
    int64_t track_id;
    m2p_features *features; /* owned */
    bool features_cached;   /* true when the analysis came from the store */
    m2p_prompt *prompt;     /* owned; NULL after analyze-only */
    char renderer[16];
    char model[256];
    int width, height, steps;
    size_t n_images;
    char **image_paths;     /* owned, n_images */
    uint32_t *seeds;        /* owned, n_images */
    double step_seconds[M2P_STEP_COUNT];
} m2p_job_result;

m2p_code m2p_pipeline_create(const m2p_config *cfg, m2p_pipeline **out, m2p_error *err) M2P_WUR;
void m2p_pipeline_free(m2p_pipeline *p);
const m2p_config *m2p_pipeline_config(const m2p_pipeline *p);

/* The renderer for name (auto|sonic|lcm), created on first use and kept. */
m2p_code m2p_pipeline_renderer(m2p_pipeline *p, const char *name, m2p_renderer **out, m2p_error *err) M2P_WUR;

/* fetch → decode → analyze (features from the store when cached). */
m2p_code m2p_pipeline_analyze(m2p_pipeline *p, m2p_store *store, const m2p_job_spec *spec,
                              const m2p_progress *progress, m2p_job_result *out, m2p_error *err) M2P_WUR;

/* analyze → prompt (no rendering). */
m2p_code m2p_pipeline_prompt(m2p_pipeline *p, m2p_store *store, const m2p_job_spec *spec,
                             const m2p_progress *progress, m2p_job_result *out, m2p_error *err) M2P_WUR;

/* The whole job: analyze → prompt → render → PNG files with metadata and
 * JSON sidecars. Each saved image is announced as a finding with key "image"
 * and the file's path as text. */
m2p_code m2p_pipeline_make(m2p_pipeline *p, m2p_store *store, const m2p_job_spec *spec, const m2p_progress *progress,
                           m2p_job_result *out, m2p_error *err) M2P_WUR;

/* The render half of m2p_pipeline_make: renders from out (filled by
 * m2p_pipeline_prompt or m2p_pipeline_stage_restore: features, prompt,
 * track metadata) and saves the images. Never reads the audio file. */
m2p_code m2p_pipeline_render(m2p_pipeline *p, const m2p_job_spec *spec, const m2p_progress *progress,
                             m2p_job_result *out, m2p_error *err) M2P_WUR;

/* Jobs in two stages (analysis on one worker, rendering on another): what the
 * analyze stage hands to the render stage, as a JSON object (*out owned by the
 * caller): the track's metadata and content hash, the analyzer version, the
 * prompt with its trace and the step times. The features themselves stay in
 * the analyses table (keyed by content hash and analyzer version). */
m2p_code m2p_pipeline_stage_to_json(const m2p_job_result *r, json_t **out, m2p_error *err) M2P_WUR;
/* Fills out from stage_json and the stored features, for m2p_pipeline_render
 * (reports the prompt step as done). M2P_E_STAGE_DATA_MISSING when the stage
 * data or the analysis cannot be read. */
m2p_code m2p_pipeline_stage_restore(m2p_pipeline *p, m2p_store *store, const char *stage_json,
                                    const m2p_progress *progress, m2p_job_result *out, m2p_error *err) M2P_WUR;

/* Frees what a result owns and zeroes it. */
void m2p_job_result_clear(m2p_job_result *r);

#endif
