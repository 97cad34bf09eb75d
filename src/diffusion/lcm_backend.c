/*
 * diffusion/lcm_backend.c — the `lcm` renderer: render/backend.h on top of
 * the LCM sampling pipeline (sd_pipeline.h).
 *
 * Created once per process: the model folder (config `model` /
 * MUS2PIC_MODEL, else <data_dir>/models/<model_id>) is opened, every weight
 * bound and checked, and a warm-up pass run, so no request pays the load; the
 * load time and memory are logged at info level. A render turns the prompt's
 * positive text into req->n images in one batched pass (negative prompts are
 * not used: LCM distils classifier-free guidance into the guidance
 * embedding), seeds[i] → image i, steps 0 → 4, guidance 0 → 8, size from
 * the request (default 512). The engine serialises renders itself.
 *
 * Decoder (setting `decoder`): vae (default, full quality), taesd (the tiny
 * TAESD decoder: drafts at a fraction of the decode cost; missing → a
 * TAESD_MISSING error naming `mus2pic model pull madebyollin/taesd` and
 * MUS2PIC_TAESD) or auto (taesd when installed, else vae). TAESD is looked
 * for as diffusion/taesd.h says (MUS2PIC_TAESD, <model>/taesd/, the pull
 * folder); when it is there and loads, it is kept beside the VAE even for
 * decoder=vae (≈10 MB), so previews can use it (not with previews=off).
 * Draft images carry the model name "<model>+taesd".
 *
 * Previews (setting `previews`: auto, the default, or off): with TAESD loaded
 * and previews not off, a request with a preview sink (render.h) gets the
 * first image's current estimate after every denoising step but the last,
 * decoded by TAESD at half the image's size from a 2×2-pooled latent
 * (m2p_sd_generate_ex's preview: a 256² frame for a 512² image, ≈ 0.7 CPU-s,
 * bench/bench_previews); the pipeline scales it to ≤ 256 px whatever its size.
 * Without TAESD, or with previews=off, no
 * preview is made and the render is the plain m2p_sd_generate.
 */
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "diffusion/model.h"
#include "diffusion/sd_pipeline.h"
#include "diffusion/taesd.h"
#include "render/backend.h"
#include "render/image.h"

#define LCM_DEFAULT_SIZE 512

typedef struct lcm_backend {
    m2p_sd *sd;
    bool previews; /* TAESD loaded and previews not off */
    char model[M2P_PATH_MAX + 32];
} lcm_backend;

static const char *lcm_model(const void *self) {
    return ((const lcm_backend *)self)->model;
}

static void lcm_destroy(void *self) {
    lcm_backend *b = self;
    if (b == NULL) {
        return;
    }
    m2p_sd_free(b->sd);
    m2p_free(b);
}

static m2p_code lcm_render_preview(void *self, const m2p_render_request *req, const m2p_render_preview *preview,
                                   const m2p_progress *progress, m2p_image **images, m2p_error *err) {
    lcm_backend *b = self;
    int w = req->width > 0 ? req->width : LCM_DEFAULT_SIZE;
    int h = req->height > 0 ? req->height : LCM_DEFAULT_SIZE;
    int f = m2p_sd_vae_factor(b->sd);
    if (w % f != 0 || h % f != 0) {
        return m2p_error_set(err, M2P_E_RENDER_SIZE, "%dx%d is not a multiple of %d", w, h, f);
    }
    if (req->prompt == NULL || req->prompt->positive == NULL || req->seeds == NULL) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "lcm render without a prompt or seeds");
    }
    size_t px;
    size_t bytes;
    if (!m2p_size_mul((size_t)w * 3, (size_t)h, &px) || !m2p_size_mul(px, (size_t)req->n, &bytes)) {
        return m2p_error_set(err, M2P_E_RENDER_SIZE, "%dx%d x %d images", w, h, req->n);
    }
    uint8_t *rgb = m2p_malloc(bytes);
    if (rgb == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "%d images of %dx%d", req->n, w, h);
    }
    m2p_sd_request sr = {req->prompt->positive, NULL, req->n, req->seeds, w, h, req->steps, req->guidance, NULL, NULL};
    m2p_code rc;
    if (preview != NULL && preview->fn != NULL && b->previews) {
        m2p_sd_extra extra = {0, preview->fn, preview->ctx, false};
        rc = m2p_sd_generate_ex(b->sd, &sr, &extra, progress, rgb, err);
    } else {
        rc = m2p_sd_generate(b->sd, &sr, progress, rgb, err);
    }
    int made = 0;
    for (int i = 0; rc == M2P_OK && i < req->n; i++) {
        m2p_image *img = NULL;
        rc = m2p_image_create(w, h, &img);
        if (rc != M2P_OK) {
            (void)m2p_error_set(err, rc, "image %d of %dx%d", i, w, h);
            break;
        }
        for (int y = 0; y < h; y++) {
            memcpy(img->pixels + (size_t)y * img->stride, rgb + (size_t)i * px + (size_t)y * (size_t)w * 3,
                   (size_t)w * 3);
        }
        img->seed = req->seeds[i];
        images[i] = img;
        made++;
    }
    if (rc != M2P_OK) {
        for (int i = 0; i < made; i++) {
            m2p_image_free(images[i]);
            images[i] = NULL;
        }
    }
    m2p_free(rgb);
    return rc;
}

static m2p_code lcm_render(void *self, const m2p_render_request *req, const m2p_progress *progress,
                           m2p_image **images, m2p_error *err) {
    return lcm_render_preview(self, req, NULL, progress, images, err);
}

m2p_code m2p_lcm_backend_create(const m2p_config *cfg, m2p_render_backend *out, m2p_error *err) {
    memset(out, 0, sizeof *out);
    char dir[M2P_PATH_MAX];
    (void)m2p_nn_model_dir_for(cfg, dir, sizeof dir);
    m2p_code rc = m2p_nn_model_check(dir, err);
    if (rc != M2P_OK) {
        return rc;
    }
    m2p_taesd_use use = M2P_DECODER_VAE;
    if ((rc = m2p_taesd_parse_decoder(cfg->decoder, &use, err)) != M2P_OK) {
        return rc;
    }
    bool previews_off = strcmp(cfg->previews, "off") == 0;
    if (!previews_off && strcmp(cfg->previews, "auto") != 0 && cfg->previews[0] != '\0') {
        return m2p_error_set(err, M2P_E_CONFIG, "previews takes auto or off (not '%s')", cfg->previews);
    }
    char tdir[M2P_PATH_MAX];
    (void)m2p_taesd_dir_for(cfg, tdir, sizeof tdir);
    m2p_error terr;
    m2p_error_clear(&terr);
    bool have_taesd = m2p_taesd_check(tdir, &terr) == M2P_OK;
    if (use == M2P_DECODER_TAESD && !have_taesd) {
        return m2p_error_set(err, M2P_E_TAESD_MISSING,
                             "decoder=taesd but no TAESD decoder at %s; run `mus2pic model pull madebyollin/taesd` or set "
                             "MUS2PIC_TAESD to a TAESD folder",
                             tdir);
    }
    if (have_taesd && use == M2P_DECODER_VAE && !previews_off) {
        /* Optional here: a broken TAESD must not stop full-quality renders. */
        m2p_taesd *probe = NULL;
        if (m2p_taesd_open(tdir, &probe, &terr) != M2P_OK) {
            M2P_WARN("render", "TAESD at %s not usable (previews off): %s", tdir, terr.detail);
            have_taesd = false;
        }
        m2p_taesd_free(probe);
    }
    m2p_sd_options opt;
    m2p_sd_options_default(&opt);
    /* decoder=vae with previews=off has no use for TAESD: not loaded */
    opt.taesd_dir = have_taesd && !(previews_off && use == M2P_DECODER_VAE) ? tdir : NULL;
    opt.draft = have_taesd && use != M2P_DECODER_VAE;
    lcm_backend *b = m2p_calloc(1, sizeof *b);
    if (b == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "lcm renderer");
    }
    rc = m2p_sd_open(dir, &opt, &b->sd, err);
    if (rc != M2P_OK) {
        goto fail;
    }
    b->previews = !previews_off && m2p_sd_has_taesd(b->sd);
    (void)snprintf(b->model, sizeof b->model, "%s%s", cfg->model[0] != '\0' ? dir : cfg->model_id,
                   opt.draft ? "+taesd" : "");
    if (opt.draft) {
        M2P_INFO("render", "lcm renderer decodes with TAESD (%s): draft quality", tdir);
    }
    m2p_sd_stats st;
    m2p_sd_get_stats(b->sd, &st);
    M2P_INFO("render", "lcm renderer ready: %s (load %.2f s, warm-up %.2f s, %.0f MB resident, previews %s)", b->model,
             st.load_s, st.warmup_s, st.rss_bytes / 1e6,
             b->previews ? "on" : (previews_off ? "off" : "off: no TAESD"));
    out->name = "lcm";
    out->default_size = LCM_DEFAULT_SIZE;
    out->render_preview = b->previews ? lcm_render_preview : NULL;
    out->self = b;
    out->render = lcm_render;
    out->model = lcm_model;
    out->destroy = lcm_destroy;
    return M2P_OK;
fail:
    lcm_destroy(b);
    return rc;
}

bool m2p_lcm_weights_present(const m2p_config *cfg, char *path, size_t cap) {
    char dir[M2P_PATH_MAX];
    (void)m2p_nn_model_dir_for(cfg, dir, sizeof dir);
    if (path != NULL && cap > 0) {
        (void)snprintf(path, cap, "%s", dir);
    }
    return m2p_nn_model_check(dir, NULL) == M2P_OK;
}
