/*
 * diffusion/sd_pipeline.c — the LCM sampling pipeline (see sd_pipeline.h).
 *
 * Invariants of m2p_sd after m2p_sd_open: model, tokenizer, text encoder,
 * UNet and VAE are all bound to the same open model; the UNet's in_channels
 * equal the VAE's latent channels and its cross-attention width equals the
 * text encoder's hidden size. generate holds `lock` for its whole run
 * (the text encoder and VAE handles keep workspaces and are single-caller).
 *
 * With options.taesd_dir the TAESD decoder is loaded too (same factor and
 * latent channels as the VAE, checked); it decodes the final images in draft
 * mode and the per-step previews (into the image buffer, before the final
 * decode needs it).
 *
 * Per-generate memory: latents, ε, denoised and noise (4 × n·4·h·w floats),
 * the text embedding (77 × D), the UNet's activations (allocated inside
 * m2p_unet_forward) and the decoded image (n·3·H·W floats).
 */
#include "diffusion/sd_pipeline.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/fs.h"
#include "core/log.h"
#include "diffusion/clip_text.h"
#include "diffusion/model.h"
#include "diffusion/ops.h"
#include "diffusion/scheduler.h"
#include "diffusion/taesd.h"
#include "diffusion/unet.h"
#include "diffusion/vae.h"
#include "prompt/clip_tokenizer.h"

#define DEFAULT_SIZE 512
#define DEFAULT_STEPS 4
#define DEFAULT_GUIDANCE 8.0
#define WARMUP_SIDE 8

struct m2p_sd {
    m2p_nn_model *model;
    m2p_clip_tokenizer *tok;
    m2p_nn_clip *clip;
    m2p_unet *unet;
    m2p_nn_vae *vae;
    m2p_taesd *taesd; /* NULL unless options.taesd_dir */
    bool draft;       /* decode with taesd by default */
    m2p_lcm_config sched;
    int factor, latent_c, hidden, max_len, cond_dim;
    pthread_mutex_t lock;
    bool lock_ready;
    m2p_sd_stats stats;
};

void m2p_sd_options_default(m2p_sd_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->warmup = true;
}

static size_t resident_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) {
        return 0;
    }
    unsigned long size = 0, res = 0;
    int got = fscanf(f, "%lu %lu", &size, &res);
    (void)fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return got == 2 && page > 0 ? (size_t)res * (size_t)page : 0;
}

/* One UNet pass on tiny latents: touches every weight page once. */
static m2p_code warmup(m2p_sd *sd, m2p_error *err) {
    size_t lat = (size_t)sd->latent_c * WARMUP_SIDE * WARMUP_SIDE;
    size_t ctx_n = (size_t)sd->max_len * (size_t)sd->hidden;
    float *x = m2p_calloc(lat, sizeof(float));
    float *y = m2p_calloc(lat, sizeof(float));
    float *ctx = m2p_calloc(ctx_n, sizeof(float));
    float *cond = m2p_calloc(sd->cond_dim > 0 ? (size_t)sd->cond_dim : 1, sizeof(float));
    m2p_code rc;
    if (x == NULL || y == NULL || ctx == NULL || cond == NULL) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "warm-up");
    } else {
        float t = 999.0f;
        m2p_unet_input in = {x, 1, WARMUP_SIDE, WARMUP_SIDE, &t, sd->cond_dim > 0 ? cond : NULL, ctx, 1, sd->max_len};
        rc = m2p_unet_forward(sd->unet, &in, y, err);
    }
    m2p_free(x);
    m2p_free(y);
    m2p_free(ctx);
    m2p_free(cond);
    return rc;
}

m2p_code m2p_sd_open(const char *dir, const m2p_sd_options *opt, m2p_sd **out, m2p_error *err) {
    *out = NULL;
    m2p_sd_options defaults;
    if (opt == NULL) {
        m2p_sd_options_default(&defaults);
        opt = &defaults;
    }
    double t0 = m2p_now_monotonic();
    m2p_code rc;
    m2p_sd *sd = m2p_calloc(1, sizeof *sd);
    if (sd == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "engine");
    }
    if (pthread_mutex_init(&sd->lock, NULL) != 0) {
        rc = m2p_error_set(err, M2P_E_INTERNAL, "mutex");
        goto fail;
    }
    sd->lock_ready = true;
    if ((rc = m2p_nn_model_open(dir, M2P_NN_LOAD_ALL, &sd->model, err)) != M2P_OK) {
        goto fail;
    }
    char vocab[M2P_PATH_MAX];
    char merges[M2P_PATH_MAX];
    (void)m2p_nn_model_path(sd->model, "tokenizer/vocab.json", vocab, sizeof vocab);
    (void)m2p_nn_model_path(sd->model, "tokenizer/merges.txt", merges, sizeof merges);
    if (access(vocab, R_OK) == 0 && access(merges, R_OK) == 0) {
        rc = m2p_clip_tokenizer_load(vocab, merges, &sd->tok, err);
    } else {
        M2P_INFO("lcm", "no tokenizer files in %s: using the built-in CLIP vocabulary", dir);
        rc = m2p_clip_tokenizer_default(&sd->tok, err);
    }
    if (rc != M2P_OK) {
        goto fail;
    }
    if ((rc = m2p_nn_clip_create(sd->model, &sd->clip, err)) != M2P_OK ||
        (rc = m2p_unet_create_from_model(sd->model, &sd->unet, err)) != M2P_OK ||
        (rc = m2p_nn_vae_create(sd->model, &sd->vae, err)) != M2P_OK ||
        (rc = m2p_lcm_config_from_model(m2p_nn_model_sched_config(sd->model), &sd->sched, err)) != M2P_OK) {
        goto fail;
    }
    if (opt->taesd_dir != NULL) {
        if ((rc = m2p_taesd_open(opt->taesd_dir, &sd->taesd, err)) != M2P_OK) {
            goto fail;
        }
        if (m2p_taesd_factor(sd->taesd) != m2p_nn_vae_factor(sd->vae) ||
            m2p_taesd_latent_channels(sd->taesd) != m2p_nn_vae_latent_channels(sd->vae)) {
            rc = m2p_error_set(err, M2P_E_TAESD_CONFIG,
                               "%s upsamples %d× from %d latent channels, the model's VAE %d× from %d: not this model's TAESD",
                               opt->taesd_dir, m2p_taesd_factor(sd->taesd), m2p_taesd_latent_channels(sd->taesd),
                               m2p_nn_vae_factor(sd->vae), m2p_nn_vae_latent_channels(sd->vae));
            goto fail;
        }
    }
    if (opt->draft && sd->taesd == NULL) {
        rc = m2p_error_set(err, M2P_E_TAESD_MISSING,
                           "draft decoding needs TAESD; run `mus2pic model pull madebyollin/taesd` or set MUS2PIC_TAESD");
        goto fail;
    }
    sd->draft = opt->draft;
    const m2p_unet_config *uc = m2p_unet_get_config(sd->unet);
    sd->factor = m2p_nn_vae_factor(sd->vae);
    sd->latent_c = m2p_nn_vae_latent_channels(sd->vae);
    sd->hidden = m2p_nn_clip_hidden(sd->clip);
    sd->max_len = m2p_nn_clip_max_len(sd->clip);
    sd->cond_dim = uc->time_cond_proj_dim;
    if (uc->in_channels != sd->latent_c || uc->out_channels != sd->latent_c) {
        rc = m2p_error_set(err, M2P_E_MODEL_CONFIG, "the UNet takes %d channels but the VAE's latents have %d",
                           uc->in_channels, sd->latent_c);
        goto fail;
    }
    for (int i = 0; i < uc->n_blocks; i++) {
        if (uc->cross_attention_dim[i] != sd->hidden) {
            rc = m2p_error_set(err, M2P_E_MODEL_CONFIG, "the UNet attends to %d-wide text but the text encoder gives %d",
                               uc->cross_attention_dim[i], sd->hidden);
            goto fail;
        }
    }
    if (sd->max_len < 2 || sd->max_len > M2P_CLIP_MAX_TOKENS) {
        rc = m2p_error_set(err, M2P_E_MODEL_CONFIG, "text encoder with %d positions (2..%d supported)", sd->max_len,
                           M2P_CLIP_MAX_TOKENS);
        goto fail;
    }
    sd->stats.load_s = m2p_now_monotonic() - t0;
    if (opt->warmup) {
        double t1 = m2p_now_monotonic();
        if ((rc = warmup(sd, err)) != M2P_OK) {
            goto fail;
        }
        sd->stats.warmup_s = m2p_now_monotonic() - t1;
    }
    sd->stats.converted_bytes = m2p_nn_model_converted_bytes(sd->model);
    sd->stats.unet_params = m2p_unet_param_count(sd->unet);
    sd->stats.rss_bytes = resident_bytes();
    M2P_INFO("lcm", "model %s loaded in %.2f s (+%.2f s warm-up), %zu UNet parameters, %.0f MB converted, %.0f MB resident",
             dir, sd->stats.load_s, sd->stats.warmup_s, sd->stats.unet_params, sd->stats.converted_bytes / 1e6,
             sd->stats.rss_bytes / 1e6);
    *out = sd;
    return M2P_OK;
fail:
    m2p_sd_free(sd);
    return rc;
}

void m2p_sd_free(m2p_sd *sd) {
    if (sd == NULL) {
        return;
    }
    m2p_taesd_free(sd->taesd);
    m2p_nn_vae_free(sd->vae);
    m2p_unet_free(sd->unet);
    m2p_nn_clip_free(sd->clip);
    m2p_clip_tokenizer_free(sd->tok);
    m2p_nn_model_free(sd->model);
    if (sd->lock_ready) {
        (void)pthread_mutex_destroy(&sd->lock);
    }
    m2p_free(sd);
}

void m2p_sd_get_stats(const m2p_sd *sd, m2p_sd_stats *out) {
    *out = sd->stats;
}

int m2p_sd_vae_factor(const m2p_sd *sd) {
    return sd->factor;
}

bool m2p_sd_has_taesd(const m2p_sd *sd) {
    return sd->taesd != NULL;
}

/* Maps the VAE's per-image reports into the pipeline's sub-step count. */
typedef struct vae_progress {
    const m2p_progress *parent;
    double base, total;
} vae_progress;

static void vae_report(void *ctx, m2p_step step, double done, double total, const char *message) {
    const vae_progress *vp = ctx;
    (void)total;
    (void)message;
    char msg[64];
    int n_img = (int)(vp->total - vp->base);
    int i = (int)done;
    if (i < n_img) {
        (void)snprintf(msg, sizeof msg, "Decoding image %d/%d", i + 1, n_img);
    } else {
        (void)snprintf(msg, sizeof msg, "Decoded %d image%s", n_img, n_img == 1 ? "" : "s");
    }
    m2p_progress_report(vp->parent, step, vp->base + done, vp->total, msg);
}

static m2p_code check_request(const m2p_sd *sd, const m2p_sd_request *req, int *w, int *h, int *steps, double *g,
                              m2p_error *err) {
    if (req->n < 1 || req->n > M2P_SD_MAX_BATCH) {
        return m2p_error_set(err, M2P_E_RENDER_COUNT, "%d images asked, 1..%d allowed", req->n, M2P_SD_MAX_BATCH);
    }
    if (req->seeds == NULL || (req->prompt == NULL && req->prompt_embeds == NULL)) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "request without %s", req->seeds == NULL ? "seeds" : "a prompt");
    }
    *w = req->width > 0 ? req->width : DEFAULT_SIZE;
    *h = req->height > 0 ? req->height : DEFAULT_SIZE;
    int f = sd->factor;
    if (req->width < 0 || req->height < 0 || *w % f != 0 || *h % f != 0 || *w / f > M2P_UNET_MAX_SIDE ||
        *h / f > M2P_UNET_MAX_SIDE) {
        return m2p_error_set(err, M2P_E_RENDER_SIZE, "%dx%d: width and height must be multiples of %d up to %d", *w, *h,
                             f, f * M2P_UNET_MAX_SIDE);
    }
    *steps = req->steps > 0 ? req->steps : DEFAULT_STEPS;
    if (req->steps < 0 || *steps > M2P_LCM_MAX_STEPS || *steps > sd->sched.original_inference_steps) {
        return m2p_error_set(err, M2P_E_RENDER_STEPS, "%d steps (1..%d)", req->steps,
                             sd->sched.original_inference_steps < M2P_LCM_MAX_STEPS ? sd->sched.original_inference_steps
                                                                                    : M2P_LCM_MAX_STEPS);
    }
    *g = req->guidance != 0.0 ? req->guidance : DEFAULT_GUIDANCE;
    if (!isfinite(*g) || *g < 0.0 || *g > 100.0) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "guidance %g (0..100)", req->guidance);
    }
    return M2P_OK;
}

/* The body of m2p_sd_generate, with sd->lock held. */
static m2p_code generate_locked(m2p_sd *sd, const m2p_sd_request *req, const m2p_sd_extra *extra,
                                const m2p_progress *progress, uint8_t *rgb, m2p_error *err) {
    int width = 0;
    int height = 0;
    int steps = 0;
    double guidance = 0.0;
    m2p_code rc = check_request(sd, req, &width, &height, &steps, &guidance, err);
    if (rc != M2P_OK) {
        return rc;
    }
    bool use_taesd = extra == NULL || extra->decoder == 0 ? sd->draft : extra->decoder == 2;
    bool preview = extra != NULL && extra->preview != NULL;
    if ((use_taesd || preview) && sd->taesd == NULL) {
        return m2p_error_set(err, M2P_E_TAESD_MISSING,
                             "%s needs the TAESD decoder; run `mus2pic model pull madebyollin/taesd` or set MUS2PIC_TAESD",
                             preview ? "a live preview" : "decoder=taesd");
    }
    int n = req->n;
    int lh = height / sd->factor;
    int lw = width / sd->factor;
    size_t per = (size_t)sd->latent_c * (size_t)lh * (size_t)lw;
    size_t total = (size_t)n * per;
    size_t img_n = (size_t)n * 3 * (size_t)height * (size_t)width;
    size_t ctx_n = (size_t)sd->max_len * (size_t)sd->hidden;
    double units = 1.0 + steps + n;
    m2p_lcm_scheduler *sched = NULL;
    m2p_lcm_rng *rngs = m2p_calloc((size_t)n, sizeof *rngs);
    float *lat = m2p_malloc_array(total, sizeof(float));
    float *eps = m2p_malloc_array(total, sizeof(float));
    float *den = m2p_malloc_array(total, sizeof(float));
    float *noise = m2p_malloc_array(total, sizeof(float));
    float *ctx = m2p_malloc_array(ctx_n, sizeof(float));
    float *cond = m2p_malloc_array((size_t)n * (size_t)(sd->cond_dim > 0 ? sd->cond_dim : 1), sizeof(float));
    float *ts = m2p_malloc_array((size_t)n, sizeof(float));
    float *img = m2p_malloc_array(img_n, sizeof(float));
    bool prev_full = preview && extra->preview_full;
    /* the preview frame: half the image's size (m2p_taesd_decode_half), or all of it (preview_full) */
    int prev_w = prev_full ? width : (lw * sd->factor + 1) / 2;
    int prev_h = prev_full ? height : (lh * sd->factor + 1) / 2;
    uint8_t *prev_rgb = preview ? m2p_malloc((size_t)3 * (size_t)prev_h * (size_t)prev_w) : NULL;
    int32_t ids[M2P_CLIP_MAX_TOKENS];
    if (rngs == NULL || lat == NULL || eps == NULL || den == NULL || noise == NULL || ctx == NULL || cond == NULL ||
        ts == NULL || img == NULL || (preview && prev_rgb == NULL)) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "sampler buffers for %d images of %dx%d", n, width, height);
        goto done;
    }
    if ((rc = m2p_lcm_create(&sd->sched, &sched, err)) != M2P_OK ||
        (rc = m2p_lcm_set_timesteps(sched, steps, err)) != M2P_OK) {
        goto done;
    }
    /* Each image's initial latents from its own generator. */
    for (int i = 0; i < n; i++) {
        m2p_lcm_rng_seed(&rngs[i], req->seeds[i]);
        m2p_lcm_rng_normal(&rngs[i], lat + (size_t)i * per, per);
    }

    /* 1. Text. */
    if (m2p_progress_cancelled(progress)) {
        rc = m2p_error_set(err, M2P_E_CANCELLED, "before text encoding");
        goto done;
    }
    m2p_progress_report(progress, M2P_STEP_RENDER, 0, units, "Encoding the prompt");
    if (req->prompt_embeds != NULL) {
        memcpy(ctx, req->prompt_embeds, ctx_n * sizeof(float));
    } else {
        if ((rc = m2p_clip_tokenize(sd->tok, req->prompt, ids, sd->max_len, NULL, err)) != M2P_OK ||
            (rc = m2p_nn_clip_encode(sd->clip, ids, 1, sd->max_len, ctx, err)) != M2P_OK) {
            goto done;
        }
    }
    if (sd->cond_dim > 0) {
        m2p_unet_guidance_embedding(guidance, sd->cond_dim, cond);
        for (int i = 1; i < n; i++) {
            memcpy(cond + (size_t)i * (size_t)sd->cond_dim, cond, (size_t)sd->cond_dim * sizeof(float));
        }
    }

    /* 2. LCM steps: one batched UNet pass per step. */
    int n_ts = 0;
    const int *tsteps = m2p_lcm_timesteps(sched, &n_ts);
    for (int k = 0; k < n_ts; k++) {
        if (m2p_progress_cancelled(progress)) {
            rc = m2p_error_set(err, M2P_E_CANCELLED, "before denoising step %d of %d", k + 1, n_ts);
            goto done;
        }
        char msg[64];
        (void)snprintf(msg, sizeof msg, "Denoising step %d/%d", k + 1, n_ts);
        m2p_progress_report(progress, M2P_STEP_RENDER, 1.0 + k, units, msg);
        for (int i = 0; i < n; i++) {
            ts[i] = (float)tsteps[k];
        }
        m2p_unet_input in = {lat, n, lh, lw, ts, sd->cond_dim > 0 ? cond : NULL, ctx, 1, sd->max_len};
        if ((rc = m2p_unet_forward(sd->unet, &in, eps, err)) != M2P_OK) {
            goto done;
        }
        bool last = k == n_ts - 1;
        if (!last) {
            for (int i = 0; i < n; i++) {
                m2p_lcm_rng_normal(&rngs[i], noise + (size_t)i * per, per);
            }
        }
        if ((rc = m2p_lcm_step(sched, k, eps, lat, den, last ? NULL : noise, total, err)) != M2P_OK) {
            goto done;
        }
        if (preview && !last) {
            /* The first image's current estimate, through TAESD (img is free until the final decode and
             * holds the uncropped half decode: ⌈lh/2⌉·⌈lw/2⌉ ≤ lh·lw). */
            int fh = height;
            int fw = width;
            rc = prev_full ? m2p_taesd_decode(sd->taesd, den, 1, lh, lw, img, NULL, err)
                           : m2p_taesd_decode_half(sd->taesd, den, lh, lw, img, &fh, &fw, err);
            if (rc != M2P_OK) {
                goto done;
            }
            m2p_nn_vae_to_rgb8(img, 1, fh, fw, prev_rgb);
            extra->preview(extra->preview_ctx, k + 1, n_ts, fw, fh, prev_rgb);
        }
    }

    /* 3. Decode. */
    if (m2p_progress_cancelled(progress)) {
        rc = m2p_error_set(err, M2P_E_CANCELLED, "before decoding");
        goto done;
    }
    vae_progress vp = {progress, 1.0 + n_ts, units};
    m2p_progress sub = {vae_report, NULL, &vp, progress != NULL ? progress->cancel : NULL};
    rc = use_taesd ? m2p_taesd_decode(sd->taesd, den, n, lh, lw, img, &sub, err)
                   : m2p_nn_vae_decode(sd->vae, den, n, lh, lw, img, &sub, err);
    if (rc != M2P_OK) {
        goto done;
    }
    if (req->out_latents != NULL) {
        memcpy(req->out_latents, den, total * sizeof(float));
    }
    if (req->out_image != NULL) {
        memcpy(req->out_image, img, img_n * sizeof(float));
    }
    if (rgb != NULL) {
        m2p_nn_vae_to_rgb8(img, n, height, width, rgb);
    }
done:
    m2p_lcm_free(sched);
    m2p_free(rngs);
    m2p_free(lat);
    m2p_free(eps);
    m2p_free(den);
    m2p_free(noise);
    m2p_free(ctx);
    m2p_free(cond);
    m2p_free(ts);
    m2p_free(img);
    m2p_free(prev_rgb);
    return rc;
}

m2p_code m2p_sd_generate(m2p_sd *sd, const m2p_sd_request *req, const m2p_progress *progress, uint8_t *rgb,
                         m2p_error *err) {
    if (pthread_mutex_lock(&sd->lock) != 0) {
        return m2p_error_set(err, M2P_E_INTERNAL, "engine lock");
    }
    m2p_code rc = generate_locked(sd, req, NULL, progress, rgb, err);
    (void)pthread_mutex_unlock(&sd->lock);
    return rc;
}

m2p_code m2p_sd_generate_ex(m2p_sd *sd, const m2p_sd_request *req, const m2p_sd_extra *extra,
                            const m2p_progress *progress, uint8_t *rgb, m2p_error *err) {
    if (extra != NULL && (extra->decoder < 0 || extra->decoder > 2)) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "decoder %d (0 default, 1 vae, 2 taesd)", extra->decoder);
    }
    if (pthread_mutex_lock(&sd->lock) != 0) {
        return m2p_error_set(err, M2P_E_INTERNAL, "engine lock");
    }
    m2p_nn_apply_threads(); /* OpenMP's thread count is per thread: the `threads` setting, here */
    m2p_code rc = generate_locked(sd, req, extra, progress, rgb, err);
    (void)pthread_mutex_unlock(&sd->lock);
    return rc;
}
