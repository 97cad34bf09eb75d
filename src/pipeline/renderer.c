/*
 * pipeline/renderer.c — the renderer factory: wraps a backend (sonic, lcm)
 * behind the one interface of render/render.h and resolves "auto".
 *
 * It lives in the pipeline layer, not in render/, because it links both the
 * procedural renderer (render/) and the diffusion engine (diffusion/), and
 * the engine itself depends on render/ for images.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/log.h"
#include "diffusion/model.h"
#include "render/backend.h"
#include "render/render.h"

struct m2p_renderer {
    m2p_render_backend be;
};

bool m2p_renderer_auto_note(const m2p_config *cfg, char *note, size_t cap) {
    if (note != NULL && cap > 0) {
        note[0] = '\0';
    }
    char dir[M2P_PATH_MAX];
    if (m2p_lcm_weights_present(cfg, dir, sizeof dir)) {
        return false;
    }
    if (note == NULL || cap == 0) {
        return true;
    }
    struct stat sb;
    bool folder = dir[0] != '\0' && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode);
    const char *what = folder ? "incomplete model folder" : "nothing";
    if (cfg->model[0] != '\0') {
        (void)snprintf(note, cap,
                       "no LCM weights found (MUS2PIC_MODEL=%s: %s there); using the sonic renderer \u2014 "
                       "run `mus2pic model pull` for the diffusion model",
                       dir, what);
    } else {
        (void)snprintf(note, cap,
                       "no LCM weights found (MUS2PIC_MODEL unset, %s in %s); using the sonic renderer \u2014 "
                       "run `mus2pic model pull` for the diffusion model",
                       what, dir);
    }
    return true;
}

m2p_code m2p_renderer_create(const char *name, const m2p_config *cfg, m2p_renderer **out, m2p_error *err) {
    *out = NULL;
    if (name == NULL || name[0] == '\0') {
        name = "auto";
    }
    m2p_renderer *r = m2p_calloc(1, sizeof *r);
    if (r == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "renderer");
    }
    m2p_code rc;
    if (strcmp(name, "sonic") == 0) {
        rc = m2p_sonic_backend_create(cfg, &r->be, err);
    } else if (strcmp(name, "lcm") == 0) {
        rc = m2p_lcm_backend_create(cfg, &r->be, err);
    } else if (strcmp(name, "auto") == 0) {
        char path[M2P_PATH_MAX];
        if (m2p_lcm_weights_present(cfg, path, sizeof path)) {
            m2p_error lerr;
            m2p_error_clear(&lerr);
            rc = m2p_lcm_backend_create(cfg, &r->be, &lerr);
            if (rc != M2P_OK) {
                char line[768];
                M2P_WARN("render", "auto: the model at %s could not be loaded, using sonic: %s", path,
                         m2p_error_format(&lerr, line, sizeof line));
                rc = m2p_sonic_backend_create(cfg, &r->be, err);
            }
        } else {
            char note[M2P_PATH_MAX + 256];
            (void)m2p_renderer_auto_note(cfg, note, sizeof note);
            M2P_INFO("render", "auto: %s", note);
            rc = m2p_sonic_backend_create(cfg, &r->be, err);
        }
    } else {
        rc = m2p_error_set(err, M2P_E_RENDERER_UNKNOWN, "'%s'", name);
    }
    if (rc != M2P_OK) {
        m2p_free(r);
        return rc;
    }
    *out = r;
    return M2P_OK;
}

void m2p_renderer_free(m2p_renderer *r) {
    if (r == NULL) {
        return;
    }
    if (r->be.destroy != NULL) {
        r->be.destroy(r->be.self);
    }
    m2p_free(r);
}

const char *m2p_renderer_name(const m2p_renderer *r) {
    return r->be.name;
}

const char *m2p_renderer_model(const m2p_renderer *r) {
    return r->be.model != NULL ? r->be.model(r->be.self) : r->be.name;
}

bool m2p_renderer_previews(const m2p_renderer *r) {
    return r->be.render_preview != NULL;
}

int m2p_renderer_default_size(const m2p_renderer *r) {
    return r->be.default_size;
}

m2p_code m2p_renderer_render(m2p_renderer *r, const m2p_render_request *req, const m2p_progress *progress,
                             m2p_image **images, m2p_error *err) {
    return m2p_renderer_render_ex(r, req, NULL, progress, images, err);
}

m2p_code m2p_renderer_render_ex(m2p_renderer *r, const m2p_render_request *req, const m2p_render_preview *preview,
                                const m2p_progress *progress, m2p_image **images, m2p_error *err) {
    m2p_render_request resolved = *req;
    if (resolved.width == 0) {
        resolved.width = r->be.default_size;
    }
    if (resolved.height == 0) {
        resolved.height = r->be.default_size;
    }
    m2p_code rc = m2p_render_request_check(&resolved, err);
    if (rc != M2P_OK) {
        return rc;
    }
    for (int i = 0; i < resolved.n; i++) {
        images[i] = NULL;
    }
    if (preview != NULL && preview->fn != NULL && r->be.render_preview != NULL) {
        return r->be.render_preview(r->be.self, &resolved, preview, progress, images, err);
    }
    return r->be.render(r->be.self, &resolved, progress, images, err);
}
