/*
 * pipeline/pipeline.c — one job end to end: fetch → decode → analyze →
 * prompt → render → store.
 *
 * The pipeline object lives for the whole process and is shared by threads:
 * the configuration is read-only, the audio cache is thread-safe, and the
 * renderers are created once under `lock` and then used concurrently (each
 * backend serialises its own device). Per-call state lives on the caller's
 * stack; the store handle is the caller's (one per thread).
 */
#include "pipeline/pipeline.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "audio/cache.h"
#include "audio/decode.h"
#include "audio/fetch.h"
#include "audio/source.h"
#include "core/alloc.h"
#include "core/fs.h"
#include "core/log.h"
#include "dsp/analyze.h"
#include "prompt/clip_tokenizer.h"
#include "prompt/presets.h"
#include "render/png.h"

enum { R_SONIC = 0, R_LCM = 1, R_COUNT = 2 };

struct m2p_pipeline {
    m2p_config cfg;
    m2p_cache *cache;
    pthread_mutex_t lock;      /* guards renderers[], auto_choice and the lazy loads below */
    m2p_renderer *renderers[R_COUNT];
    int auto_choice;           /* -1 undecided, else R_SONIC or R_LCM */
    m2p_presets *presets;      /* loaded on first prompt, then read-only */
    m2p_clip_tokenizer *tokenizer; /* loaded on first prompt, then read-only */
};

m2p_code m2p_pipeline_create(const m2p_config *cfg, m2p_pipeline **out, m2p_error *err) {
    *out = NULL;
    if (strcmp(cfg->previews, "auto") != 0 && strcmp(cfg->previews, "off") != 0 && cfg->previews[0] != '\0') {
        return m2p_error_set(err, M2P_E_CONFIG, "previews takes auto or off (not '%s')", cfg->previews);
    }
    m2p_pipeline *p = m2p_calloc(1, sizeof *p);
    if (p == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "pipeline");
    }
    p->cfg = *cfg;
    p->auto_choice = -1;
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        m2p_free(p);
        return m2p_error_set(err, M2P_E_INTERNAL, "mutex");
    }
    m2p_code rc = m2p_cache_open(&p->cfg, &p->cache, err);
    if (rc != M2P_OK) {
        m2p_pipeline_free(p);
        return rc;
    }
    *out = p;
    return M2P_OK;
}

void m2p_pipeline_free(m2p_pipeline *p) {
    if (p == NULL) {
        return;
    }
    for (int i = 0; i < R_COUNT; i++) {
        m2p_renderer_free(p->renderers[i]);
    }
    m2p_cache_close(p->cache);
    m2p_presets_free(p->presets);
    m2p_clip_tokenizer_free(p->tokenizer);
    (void)pthread_mutex_destroy(&p->lock);
    m2p_free(p);
}

const m2p_config *m2p_pipeline_config(const m2p_pipeline *p) {
    return &p->cfg;
}

m2p_code m2p_pipeline_renderer(m2p_pipeline *p, const char *name, m2p_renderer **out, m2p_error *err) {
    *out = NULL;
    if (name == NULL || name[0] == '\0') {
        name = p->cfg.renderer;
    }
    int want;
    if (strcmp(name, "sonic") == 0) {
        want = R_SONIC;
    } else if (strcmp(name, "lcm") == 0) {
        want = R_LCM;
    } else if (strcmp(name, "auto") == 0) {
        want = -1;
    } else {
        return m2p_error_set(err, M2P_E_RENDERER_UNKNOWN, "'%s'", name);
    }
    m2p_code rc = M2P_OK;
    (void)pthread_mutex_lock(&p->lock);
    if (want < 0) {
        if (p->auto_choice < 0) {
            m2p_renderer *r = NULL;
            rc = m2p_renderer_create("auto", &p->cfg, &r, err);
            if (rc == M2P_OK) {
                int slot = strcmp(m2p_renderer_name(r), "lcm") == 0 ? R_LCM : R_SONIC;
                if (p->renderers[slot] == NULL) {
                    p->renderers[slot] = r;
                } else {
                    m2p_renderer_free(r);
                }
                p->auto_choice = slot;
            }
        }
        want = p->auto_choice;
    } else if (p->renderers[want] == NULL) {
        rc = m2p_renderer_create(want == R_LCM ? "lcm" : "sonic", &p->cfg, &p->renderers[want], err);
    }
    if (rc == M2P_OK) {
        *out = p->renderers[want];
    }
    (void)pthread_mutex_unlock(&p->lock);
    return rc;
}

/* The preset set and the CLIP tokenizer, loaded once per process (the
 * tokenizer costs tens of milliseconds) and shared read-only by all jobs. */
static m2p_code prompt_resources(m2p_pipeline *p, m2p_error *err) {
    m2p_code rc = M2P_OK;
    (void)pthread_mutex_lock(&p->lock);
    if (p->presets == NULL) {
        rc = m2p_presets_load(&p->presets, err);
    }
    if (rc == M2P_OK && p->tokenizer == NULL) {
        rc = m2p_clip_tokenizer_default(&p->tokenizer, err);
    }
    (void)pthread_mutex_unlock(&p->lock);
    return rc;
}

/* --- helpers ------------------------------------------------------------------------------- */

static void finding(const m2p_progress *progress, m2p_step step, const char *key, const char *fmt, ...)
    M2P_PRINTF(4, 5);
static void finding(const m2p_progress *progress, m2p_step step, const char *key, const char *fmt, ...) {
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    m2p_progress_finding(progress, step, key, text);
}

/* Title from a file name: basename without extension, underscores as spaces. */
static void title_from_name(const char *name, char *buf, size_t cap) {
    const char *base = strrchr(name, '/');
    base = base != NULL ? base + 1 : name;
    (void)snprintf(buf, cap, "%s", base);
    char *dot = strrchr(buf, '.');
    if (dot != NULL && dot != buf) {
        *dot = '\0';
    }
    for (char *c = buf; *c != '\0'; c++) {
        if (*c == '_') {
            *c = ' ';
        }
    }
}

static m2p_code local_track(const char *path, const char *name, m2p_source_kind kind, m2p_track *t, m2p_error *err) {
    memset(t, 0, sizeof *t);
    t->kind = kind;
    (void)snprintf(t->path, sizeof t->path, "%s", path);
    (void)snprintf(t->source, sizeof t->source, "%s", name != NULL ? name : path);
    title_from_name(name != NULL ? name : path, t->title, sizeof t->title);
    t->cache_hit = true;
    return m2p_fs_sha256_file(path, t->content_hash, err);
}

static void emit_analysis_findings(const m2p_progress *progress, const m2p_features *f) {
    finding(progress, M2P_STEP_ANALYZE, "tempo", "Found tempo: %.0f BPM", f->tempo_bpm);
    finding(progress, M2P_STEP_ANALYZE, "key", "Key: %s %s", m2p_key_name(f->key), m2p_mode_name(f->mode));
    finding(progress, M2P_STEP_ANALYZE, "energy", "Energy: %.2f", f->energy);
    finding(progress, M2P_STEP_ANALYZE, "sections", "%zu sections", f->n_sections);
}

m2p_code m2p_pipeline_analyze(m2p_pipeline *p, m2p_store *store, const m2p_job_spec *spec,
                              const m2p_progress *progress, m2p_job_result *out, m2p_error *err) {
    memset(out, 0, sizeof *out);
    const m2p_config *cfg = &p->cfg;
    double t0 = m2p_now_monotonic();
    m2p_code rc;

    /* 1. source → a local audio file (downloaded once, then cached). */
    if (spec->upload_path != NULL) {
        rc = local_track(spec->upload_path, spec->upload_name, M2P_SOURCE_UPLOAD, &out->track, err);
    } else {
        m2p_source src;
        rc = m2p_source_parse(spec->source, cfg, spec->allow_paths, &src, err);
        if (rc != M2P_OK) {
            return rc;
        }
        if (m2p_source_is_remote(&src)) {
            rc = m2p_fetch(cfg, p->cache, &src, progress, &out->track, err);
        } else {
            rc = local_track(src.path, NULL, src.kind, &out->track, err);
        }
    }
    if (rc != M2P_OK) {
        return rc;
    }
    if (m2p_progress_cancelled(progress)) {
        return m2p_error_set(err, M2P_E_CANCELLED, "after fetch");
    }
    m2p_progress_report(progress, M2P_STEP_FETCH, 1, 1, out->track.cache_hit ? "cached" : "downloaded");
    if (out->track.title[0] != '\0') {
        finding(progress, M2P_STEP_FETCH, "title", "%s", out->track.title);
    }
    out->step_seconds[M2P_STEP_FETCH] = m2p_now_monotonic() - t0;
    if (store != NULL) {
        rc = m2p_store_track_put(store, &out->track, &out->track_id, err);
        if (rc != M2P_OK) {
            return rc;
        }
    }

    /* 2. features: from the store when this audio was analysed by this analyzer version. */
    double t1 = m2p_now_monotonic();
    if (store != NULL) {
        char *json_text = NULL;
        rc = m2p_store_analysis_get(store, out->track.content_hash, M2P_ANALYZER_VERSION, &json_text, err);
        if (rc != M2P_OK) {
            return rc;
        }
        if (json_text != NULL) {
            json_error_t jerr;
            json_t *j = json_loads(json_text, 0, &jerr);
            m2p_free(json_text);
            if (j != NULL && m2p_features_from_json(j, &out->features, NULL) == M2P_OK) {
                out->features_cached = true;
            } else {
                M2P_WARN("pipeline", "cached analysis of %s is unreadable; analysing again", out->track.content_hash);
            }
            json_decref(j);
        }
    }
    if (out->features_cached) {
        m2p_progress_report(progress, M2P_STEP_DECODE, 1, 1, "cached analysis");
        m2p_progress_report(progress, M2P_STEP_ANALYZE, 1, 1, "cached analysis");
        emit_analysis_findings(progress, out->features);
    } else {
        m2p_decode_opts opts;
        m2p_decode_opts_default(&opts);
        opts.rate = cfg->analysis_rate;
        opts.max_duration_s = cfg->max_duration_s;
        opts.min_duration_s = 2.0;
        opts.allow_silent = false;
        rc = m2p_dsp_analyze_file(out->track.path, &opts, progress, &out->features, err);
        if (rc != M2P_OK) {
            return rc;
        }
        if (store != NULL) {
            json_t *j = NULL;
            rc = m2p_features_to_json(out->features, &j);
            if (rc != M2P_OK) {
                return m2p_error_set(err, rc, "features to JSON");
            }
            char *text = json_dumps(j, JSON_COMPACT);
            json_decref(j);
            if (text == NULL) {
                return m2p_error_set(err, M2P_E_NOMEM, "features JSON");
            }
            rc = m2p_store_analysis_put(store, out->track.content_hash, M2P_ANALYZER_VERSION, text, err);
            free(text);
            if (rc != M2P_OK) {
                return rc;
            }
        }
    }
    if (out->track.duration_s <= 0) {
        out->track.duration_s = out->features->duration_s;
    }
    out->step_seconds[M2P_STEP_ANALYZE] = m2p_now_monotonic() - t1;
    return M2P_OK;
}

static void prompt_input(const m2p_pipeline *p, const m2p_job_spec *spec, const m2p_job_result *out,
                         m2p_prompt_input *in) {
    memset(in, 0, sizeof *in);
    in->features = out->features;
    in->style = spec->style != NULL ? spec->style : p->cfg.style;
    in->template_text = spec->template_text;
    in->title = out->track.title;
    in->artist = out->track.uploader[0] != '\0' ? out->track.uploader : NULL;
    in->presets = p->presets;
    in->tokenizer = p->tokenizer;
}

m2p_code m2p_pipeline_prompt(m2p_pipeline *p, m2p_store *store, const m2p_job_spec *spec,
                             const m2p_progress *progress, m2p_job_result *out, m2p_error *err) {
    /* Refuse a bad style or template before any download or analysis. */
    m2p_code rc = prompt_resources(p, err);
    if (rc != M2P_OK) {
        return rc;
    }
    const char *style = spec->style != NULL ? spec->style : p->cfg.style;
    const m2p_preset *preset = NULL;
    rc = m2p_presets_find(p->presets, style, &preset, err);
    if (rc != M2P_OK) {
        return rc;
    }
    if (spec->template_text != NULL) {
        rc = m2p_prompt_check_template(spec->template_text, err);
        if (rc != M2P_OK) {
            return rc;
        }
    }
    rc = m2p_pipeline_analyze(p, store, spec, progress, out, err);
    if (rc != M2P_OK) {
        return rc;
    }
    double t0 = m2p_now_monotonic();
    m2p_prompt_input in;
    prompt_input(p, spec, out, &in);
    rc = m2p_prompt_build(&in, &out->prompt, err);
    if (rc != M2P_OK) {
        return rc;
    }
    m2p_progress_report(progress, M2P_STEP_PROMPT, 1, 1, "prompt ready");
    finding(progress, M2P_STEP_PROMPT, "prompt", "%s", out->prompt->positive);
    out->step_seconds[M2P_STEP_PROMPT] = m2p_now_monotonic() - t0;
    return M2P_OK;
}

/* The request for image i: the whole batch's request, or (per section) one
 * image of section i with that section's prompt and seed. *index is the
 * image's index within the request. */
static void image_request(const m2p_render_request *base, bool per_section, int i, m2p_prompt *const *sprompts,
                          const uint32_t *seeds, m2p_render_request *one, int *index) {
    *one = *base;
    *index = i;
    if (per_section) {
        one->n = 1;
        one->seeds = &seeds[i];
        one->section = sprompts != NULL ? i : -1;
        if (sprompts != NULL) {
            one->prompt = sprompts[i];
        }
        *index = 0;
    }
}

/* File-name-safe slug of the title: lower-case letters, digits and dashes, at most 40 characters. */
static void slugify(const char *title, char *buf, size_t cap) {
    size_t j = 0;
    bool dash = false;
    for (const unsigned char *c = (const unsigned char *)title; *c != '\0' && j + 1 < cap && j < 40; c++) {
        if (isalnum(*c)) {
            buf[j++] = (char)tolower(*c);
            dash = false;
        } else if (!dash && j > 0) {
            buf[j++] = '-';
            dash = true;
        }
    }
    while (j > 0 && buf[j - 1] == '-') {
        j--;
    }
    if (j == 0) {
        (void)snprintf(buf, cap, "song");
        return;
    }
    buf[j] = '\0';
}

/* Render preview sink → the job spec's: the frame scaled down and encoded as WebP. A preview is
 * best effort: a failed encode is logged and skipped. */
typedef struct preview_ctx {
    const m2p_job_spec *spec;
    int index; /* image index of the current request's first image */
} preview_ctx;

static void on_render_preview(void *ctx, int step, int steps, int width, int height, const uint8_t *rgb) {
    const preview_ctx *pc = ctx;
    if (rgb == NULL || width <= 0 || height <= 0) {
        return;
    }
    /* the encoder only reads the pixels */
    m2p_image frame = {width, height, (size_t)width * 3, (uint8_t *)(uintptr_t)rgb, 0};
    uint8_t *webp = NULL;
    size_t len = 0;
    m2p_error e;
    m2p_error_clear(&e);
    if (m2p_png_thumb_webp(&frame, M2P_PREVIEW_EDGE, M2P_PREVIEW_QUALITY, &webp, &len, &e) != M2P_OK) {
        M2P_WARN("render", "preview of step %d not encoded: %s", step, e.detail);
        return;
    }
    /* the encoder's size rule (m2p_png_thumb_webp) */
    int longer = width > height ? width : height;
    int tw = width;
    int th = height;
    if (longer > M2P_PREVIEW_EDGE) {
        tw = (int)((long long)width * M2P_PREVIEW_EDGE / longer);
        th = (int)((long long)height * M2P_PREVIEW_EDGE / longer);
        tw = tw < 1 ? 1 : tw;
        th = th < 1 ? 1 : th;
    }
    pc->spec->preview(pc->spec->preview_ctx, pc->index, step, steps, tw, th, webp, len);
    m2p_free(webp);
}

static m2p_code save_image(const m2p_pipeline *p, const m2p_job_spec *spec, const m2p_render_request *req, int index,
                           const m2p_image *img, const char *renderer, const char *model, const m2p_track *track,
                           const json_t *features_json, const char *dir, const char *prefix, char **path_out,
                           m2p_error *err) {
    (void)p;
    (void)spec;
    m2p_png_meta *meta = NULL;
    m2p_code rc = m2p_png_meta_create(&meta);
    if (rc != M2P_OK) {
        return m2p_error_set(err, rc, "png metadata");
    }
    char path[M2P_PATH_MAX + 256];
    char side[M2P_PATH_MAX + 288];
    rc = m2p_png_meta_add_render(meta, req, index, renderer, model, track->source, err);
    if (rc != M2P_OK) {
        goto done;
    }
    if (req->section >= 0) {
        (void)snprintf(path, sizeof path, "%s/%s-section%d-%u.png", dir, prefix, req->section + 1, req->seeds[index]);
    } else {
        (void)snprintf(path, sizeof path, "%s/%s-%u.png", dir, prefix, req->seeds[index]);
    }
    rc = m2p_png_write(path, img, meta, err);
    if (rc != M2P_OK) {
        goto done;
    }
    (void)snprintf(side, sizeof side, "%.*s.json", (int)(strlen(path) - 4), path);
    rc = m2p_png_write_sidecar(side, meta, features_json, err);
    if (rc != M2P_OK) {
        goto done;
    }
    *path_out = m2p_strdup(path);
    if (*path_out == NULL) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "path");
    }
done:
    m2p_png_meta_free(meta);
    return rc;
}

m2p_code m2p_pipeline_make(m2p_pipeline *p, m2p_store *store, const m2p_job_spec *spec, const m2p_progress *progress,
                           m2p_job_result *out, m2p_error *err) {
    m2p_code rc = m2p_pipeline_prompt(p, store, spec, progress, out, err);
    if (rc != M2P_OK) {
        return rc;
    }
    return m2p_pipeline_render(p, spec, progress, out, err);
}

m2p_code m2p_pipeline_render(m2p_pipeline *p, const m2p_job_spec *spec, const m2p_progress *progress,
                             m2p_job_result *out, m2p_error *err) {
    const m2p_config *cfg = &p->cfg;
    m2p_code rc = M2P_OK;
    if (out->features == NULL || out->prompt == NULL) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "render needs the features and the prompt");
    }
    if (spec->per_section) {
        rc = prompt_resources(p, err); /* section prompts are built here (a render-only worker has none yet) */
        if (rc != M2P_OK) {
            return rc;
        }
    }
    if (m2p_progress_cancelled(progress)) {
        return m2p_error_set(err, M2P_E_CANCELLED, "before rendering");
    }
    double t0 = m2p_now_monotonic();
    m2p_renderer *r = NULL;
    rc = m2p_pipeline_renderer(p, spec->renderer, &r, err);
    if (rc != M2P_OK) {
        return rc;
    }
    (void)snprintf(out->renderer, sizeof out->renderer, "%s", m2p_renderer_name(r));
    (void)snprintf(out->model, sizeof out->model, "%s", m2p_renderer_model(r));
    finding(progress, M2P_STEP_RENDER, "renderer", "Renderer: %s (%s)", out->renderer, out->model);
    const char *asked = spec->renderer != NULL && spec->renderer[0] != '\0' ? spec->renderer : cfg->renderer;
    char note[M2P_PATH_MAX + 256];
    if (strcmp(asked, "auto") == 0 && strcmp(out->renderer, "sonic") == 0 &&
        m2p_renderer_auto_note(cfg, note, sizeof note)) {
        finding(progress, M2P_STEP_RENDER, "renderer_note", "%s", note);
    }

    int n = spec->n > 0 ? spec->n : cfg->variations;
    int sections = spec->per_section ? (int)out->features->n_sections : 0;
    if (spec->per_section && sections == 0) {
        sections = 1;
    }
    int total = spec->per_section ? sections : n;
    if (total < 1 || total > (spec->per_section ? 64 : M2P_RENDER_MAX_N)) {
        return m2p_error_set(err, M2P_E_RENDER_COUNT, "%d images", total);
    }
    uint32_t base = spec->seed;
    if (!spec->seed_set) {
        if (getrandom(&base, sizeof base, 0) != (ssize_t)sizeof base) {
            base = (uint32_t)(m2p_now_wall() * 1000.0);
        }
    }
    out->width = spec->width > 0 ? spec->width : (cfg->width > 0 ? cfg->width : m2p_renderer_default_size(r));
    out->height = spec->height > 0 ? spec->height : (cfg->height > 0 ? cfg->height : out->width);
    out->steps = spec->steps > 0 ? spec->steps : cfg->steps;
    out->seeds = m2p_calloc((size_t)total, sizeof *out->seeds);
    out->image_paths = m2p_calloc((size_t)total, sizeof *out->image_paths);
    m2p_image **images = m2p_calloc((size_t)total, sizeof *images);
    m2p_prompt **sprompts = NULL; /* per-section prompts, sections entries */
    json_t *features_json = NULL;
    if (out->seeds == NULL || out->image_paths == NULL || images == NULL) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "images");
        goto done;
    }
    for (int i = 0; i < total; i++) {
        out->seeds[i] = base + (uint32_t)i;
    }
    m2p_render_request req = {
        .prompt = out->prompt,
        .features = out->features,
        .style = out->prompt->style,
        .n = spec->per_section ? 1 : n,
        .width = out->width,
        .height = out->height,
        .seeds = out->seeds,
        .steps = out->steps,
        .guidance = spec->guidance > 0 ? spec->guidance : cfg->guidance,
        .title = out->track.title,
        .artist = out->track.uploader[0] != '\0' ? out->track.uploader : NULL,
        .layout = spec->layout,
        .section = -1,
    };
    if (spec->per_section && out->features->n_sections > 0) {
        sprompts = m2p_calloc((size_t)sections, sizeof *sprompts);
        if (sprompts == NULL) {
            rc = m2p_error_set(err, M2P_E_NOMEM, "section prompts");
            goto done;
        }
        m2p_prompt_input in;
        prompt_input(p, spec, out, &in);
        for (int s = 0; s < sections && rc == M2P_OK; s++) {
            rc = m2p_prompt_build_section(&in, (size_t)s, &sprompts[s], err);
        }
        if (rc != M2P_OK) {
            goto done;
        }
    }
    preview_ctx pctx = {spec, 0};
    m2p_render_preview rpv = {on_render_preview, &pctx};
    const m2p_render_preview *pv = spec->preview != NULL && m2p_renderer_previews(r) ? &rpv : NULL;
    if (spec->per_section) {
        for (int s = 0; s < sections && rc == M2P_OK; s++) {
            m2p_render_request one;
            int index;
            image_request(&req, true, s, sprompts, out->seeds, &one, &index);
            pctx.index = s;
            rc = m2p_renderer_render_ex(r, &one, pv, progress, &images[s], err);
        }
    } else {
        rc = m2p_renderer_render_ex(r, &req, pv, progress, images, err);
    }
    if (rc != M2P_OK) {
        goto done;
    }
    out->step_seconds[M2P_STEP_RENDER] = m2p_now_monotonic() - t0;

    /* store: PNG with metadata + JSON sidecar per image. */
    double t1 = m2p_now_monotonic();
    char dir[M2P_PATH_MAX];
    if (spec->out_dir != NULL) {
        (void)snprintf(dir, sizeof dir, "%s", spec->out_dir);
    } else {
        m2p_config_subdir(cfg, "images", dir, sizeof dir);
    }
    rc = m2p_fs_mkdirs(dir, err);
    if (rc != M2P_OK) {
        goto done;
    }
    char prefix[112];
    if (spec->file_prefix != NULL) {
        (void)snprintf(prefix, sizeof prefix, "%s", spec->file_prefix);
    } else {
        /* title and style: posters of one song in two styles with the same seed must not overwrite each other */
        char slug[48];
        char style_slug[48];
        slugify(out->track.title, slug, sizeof slug);
        slugify(out->prompt->style, style_slug, sizeof style_slug);
        (void)snprintf(prefix, sizeof prefix, "%s-%s", slug, style_slug);
    }
    rc = m2p_features_to_json(out->features, &features_json);
    if (rc != M2P_OK) {
        (void)m2p_error_set(err, rc, "features to JSON");
        goto done;
    }
    for (int i = 0; i < total; i++) {
        m2p_render_request one;
        int index;
        image_request(&req, spec->per_section, i, sprompts, out->seeds, &one, &index);
        rc = save_image(p, spec, &one, index, images[i], out->renderer, out->model, &out->track, features_json, dir,
                        prefix, &out->image_paths[i], err);
        if (rc != M2P_OK) {
            goto done;
        }
        out->n_images++;
        m2p_progress_report(progress, M2P_STEP_STORE, i + 1, total, "saved");
        m2p_progress_finding(progress, M2P_STEP_STORE, "image", out->image_paths[i]);
    }
    out->step_seconds[M2P_STEP_STORE] = m2p_now_monotonic() - t1;
done:
    json_decref(features_json);
    if (sprompts != NULL) {
        for (int i = 0; i < sections; i++) {
            m2p_prompt_free(sprompts[i]);
        }
        m2p_free(sprompts);
    }
    if (images != NULL) {
        for (int i = 0; i < total; i++) {
            m2p_image_free(images[i]);
        }
    }
    m2p_free(images);
    return rc;
}

/* --- the analyze stage's output, stored between the stages -------------------------------- */

#define STAGE_FORMAT 1

m2p_code m2p_pipeline_stage_to_json(const m2p_job_result *r, json_t **out, m2p_error *err) {
    *out = NULL;
    if (r->prompt == NULL || r->features == NULL) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "the analyze stage has no prompt");
    }
    json_t *prompt = NULL;
    if (m2p_prompt_to_json(r->prompt, &prompt) != M2P_OK) {
        return m2p_error_set(err, M2P_E_NOMEM, "prompt JSON");
    }
    json_t *secs = json_array();
    for (int i = 0; secs != NULL && i < M2P_STEP_COUNT; i++) {
        (void)json_array_append_new(secs, json_real(r->step_seconds[i]));
    }
    json_t *o = json_pack("{s:i, s:I, s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:f, s:b, s:b, s:o, s:o}", "format",
                          STAGE_FORMAT, "track_id", (json_int_t)r->track_id, "content_hash", r->track.content_hash,
                          "analyzer_version", M2P_ANALYZER_VERSION, "kind", (int)r->track.kind, "source",
                          r->track.source, "video_id", r->track.video_id, "title", r->track.title, "uploader",
                          r->track.uploader, "duration_s", r->track.duration_s, "cache_hit", r->track.cache_hit,
                          "features_cached", r->features_cached, "prompt", prompt, "step_seconds",
                          secs != NULL ? secs : json_array());
    if (o == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "stage JSON");
    }
    *out = o;
    return M2P_OK;
}

static char *dup_field(const json_t *o, const char *key) {
    const char *v = json_string_value(json_object_get(o, key));
    return m2p_strdup(v != NULL ? v : "");
}

static m2p_code prompt_from_json(const json_t *j, m2p_prompt **out, m2p_error *err) {
    *out = NULL;
    if (!json_is_object(j) || !json_is_string(json_object_get(j, "positive"))) {
        return m2p_error_set(err, M2P_E_STAGE_DATA_MISSING, "no prompt in the stored stage");
    }
    m2p_prompt *p = m2p_calloc(1, sizeof *p);
    if (p == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "prompt");
    }
    p->positive = dup_field(j, "positive");
    p->negative = dup_field(j, "negative");
    p->style = dup_field(j, "style");
    p->n_tokens = (int)json_integer_value(json_object_get(j, "n_tokens"));
    p->shortened = json_is_true(json_object_get(j, "shortened"));
    bool ok = p->positive != NULL && p->negative != NULL && p->style != NULL;
    const json_t *frags = json_object_get(j, "fragments");
    size_t n = json_is_array(frags) ? json_array_size(frags) : 0;
    if (ok && n > 0) {
        p->fragments = m2p_calloc(n, sizeof *p->fragments);
        ok = p->fragments != NULL;
        for (size_t i = 0; ok && i < n; i++) {
            const json_t *f = json_array_get(frags, i);
            m2p_fragment *d = &p->fragments[i];
            p->n_fragments = i + 1;
            d->variable = dup_field(f, "variable");
            d->text = dup_field(f, "text");
            d->feature = dup_field(f, "feature");
            d->reason = dup_field(f, "reason");
            d->priority = (int)json_integer_value(json_object_get(f, "priority"));
            d->kept = json_is_true(json_object_get(f, "kept"));
            ok = d->variable != NULL && d->text != NULL && d->feature != NULL && d->reason != NULL;
        }
    }
    if (!ok) {
        m2p_prompt_free(p);
        return m2p_error_set(err, M2P_E_NOMEM, "prompt");
    }
    *out = p;
    return M2P_OK;
}

m2p_code m2p_pipeline_stage_restore(m2p_pipeline *p, m2p_store *store, const char *stage_json,
                                    const m2p_progress *progress, m2p_job_result *out, m2p_error *err) {
    (void)p;
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *j = stage_json != NULL ? json_loads(stage_json, 0, &jerr) : NULL;
    m2p_code rc = M2P_OK;
    const char *hash = json_string_value(json_object_get(j, "content_hash"));
    const char *version = json_string_value(json_object_get(j, "analyzer_version"));
    if (j == NULL || json_integer_value(json_object_get(j, "format")) != STAGE_FORMAT || hash == NULL ||
        version == NULL || strlen(hash) != 64) {
        rc = m2p_error_set(err, M2P_E_STAGE_DATA_MISSING, "the job has no readable analysis stage data");
        goto done;
    }
    m2p_track *t = &out->track;
    t->kind = (m2p_source_kind)json_integer_value(json_object_get(j, "kind"));
    (void)snprintf(t->content_hash, sizeof t->content_hash, "%s", hash);
    (void)snprintf(t->source, sizeof t->source, "%s", json_string_value(json_object_get(j, "source")) != NULL
                                                           ? json_string_value(json_object_get(j, "source"))
                                                           : "");
    (void)snprintf(t->video_id, sizeof t->video_id, "%s",
                   json_string_value(json_object_get(j, "video_id")) != NULL
                       ? json_string_value(json_object_get(j, "video_id"))
                       : "");
    (void)snprintf(t->title, sizeof t->title, "%s", json_string_value(json_object_get(j, "title")) != NULL
                                                         ? json_string_value(json_object_get(j, "title"))
                                                         : "");
    (void)snprintf(t->uploader, sizeof t->uploader, "%s",
                   json_string_value(json_object_get(j, "uploader")) != NULL
                       ? json_string_value(json_object_get(j, "uploader"))
                       : "");
    t->duration_s = json_number_value(json_object_get(j, "duration_s"));
    t->cache_hit = json_is_true(json_object_get(j, "cache_hit"));
    t->path[0] = '\0'; /* the render stage never reads the audio */
    out->track_id = (int64_t)json_integer_value(json_object_get(j, "track_id"));
    out->features_cached = json_is_true(json_object_get(j, "features_cached"));
    const json_t *secs = json_object_get(j, "step_seconds");
    for (int i = 0; i < M2P_STEP_COUNT && i < (int)json_array_size(secs); i++) {
        out->step_seconds[i] = json_number_value(json_array_get(secs, i));
    }
    /* the full features (spectrogram, energy curve, sections) are in the analyses table */
    char *text = NULL;
    rc = store != NULL ? m2p_store_analysis_get(store, hash, version, &text, err)
                       : m2p_error_set(err, M2P_E_STAGE_DATA_MISSING, "no store to read the analysis from");
    if (rc != M2P_OK) {
        goto done;
    }
    json_t *fj = text != NULL ? json_loads(text, 0, &jerr) : NULL;
    m2p_free(text);
    if (fj == NULL || m2p_features_from_json(fj, &out->features, NULL) != M2P_OK) {
        json_decref(fj);
        rc = m2p_error_set(err, M2P_E_STAGE_DATA_MISSING, "the analysis of %.16s (analyzer %s) is not stored", hash,
                           version);
        goto done;
    }
    json_decref(fj);
    rc = prompt_from_json(json_object_get(j, "prompt"), &out->prompt, err);
    if (rc != M2P_OK) {
        goto done;
    }
    m2p_progress_report(progress, M2P_STEP_PROMPT, 1, 1, "stored analysis and prompt");
done:
    json_decref(j);
    if (rc != M2P_OK) {
        m2p_job_result_clear(out);
    }
    return rc;
}

void m2p_job_result_clear(m2p_job_result *r) {
    if (r == NULL) {
        return;
    }
    m2p_features_free(r->features);
    m2p_prompt_free(r->prompt);
    if (r->image_paths != NULL) {
        for (size_t i = 0; i < r->n_images; i++) {
            m2p_free(r->image_paths[i]);
        }
    }
    m2p_free(r->image_paths);
    m2p_free(r->seeds);
    memset(r, 0, sizeof *r);
}
