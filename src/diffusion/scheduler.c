/*
 * diffusion/scheduler.c — LCMScheduler as diffusers computes it (float32
 * tables, the same operation order), and the splitmix64 + Box–Muller noise
 * generator. See scheduler.h for the formulas.
 *
 * Invariants of m2p_lcm_scheduler: alphas_cumprod has num_train_timesteps
 * entries, all in (0, 1]; after set_timesteps, 1 <= n_steps <= M2P_LCM_MAX_STEPS
 * and every timestep indexes alphas_cumprod, strictly descending.
 */
#include "diffusion/scheduler.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/fs.h"

struct m2p_lcm_scheduler {
    m2p_lcm_config cfg;
    float *alphas_cumprod; /* [num_train_timesteps] */
    float final_alpha_cumprod;
    int n_steps;
    int timesteps[M2P_LCM_MAX_STEPS];
};

void m2p_lcm_config_default(m2p_lcm_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->num_train_timesteps = 1000;
    cfg->beta_start = 0.00085;
    cfg->beta_end = 0.012;
    cfg->beta_schedule = M2P_LCM_BETA_SCALED_LINEAR;
    cfg->original_inference_steps = 50;
    cfg->timestep_scaling = 10.0;
    cfg->set_alpha_to_one = true;
    cfg->prediction_type = M2P_LCM_PRED_EPSILON;
    cfg->clip_sample = false;
    cfg->clip_sample_range = 1.0;
}

/* Reads an optional number field; wrong type → MODEL_CONFIG. */
static m2p_code get_num(json_t *root, const char *key, double *out, m2p_error *err) {
    json_t *v = json_object_get(root, key);
    if (v == NULL || json_is_null(v)) {
        return M2P_OK;
    }
    if (!json_is_number(v)) {
        return m2p_error_set(err, M2P_E_MODEL_CONFIG, "scheduler config: %s is not a number", key);
    }
    *out = json_number_value(v);
    if (!isfinite(*out)) {
        return m2p_error_set(err, M2P_E_MODEL_CONFIG, "scheduler config: %s is not finite", key);
    }
    return M2P_OK;
}

static m2p_code get_bool(json_t *root, const char *key, bool *out, m2p_error *err) {
    json_t *v = json_object_get(root, key);
    if (v == NULL || json_is_null(v)) {
        return M2P_OK;
    }
    if (!json_is_boolean(v)) {
        return m2p_error_set(err, M2P_E_MODEL_CONFIG, "scheduler config: %s is not true or false", key);
    }
    *out = json_is_true(v);
    return M2P_OK;
}

static m2p_code get_int(json_t *root, const char *key, int lo, int hi, int *out, m2p_error *err) {
    double d = *out;
    m2p_code rc = get_num(root, key, &d, err);
    if (rc != M2P_OK) {
        return rc;
    }
    if (d != floor(d) || d < lo || d > hi) {
        return m2p_error_set(err, M2P_E_MODEL_CONFIG, "scheduler config: %s = %g is not a whole number in %d..%d", key,
                             d, lo, hi);
    }
    *out = (int)d;
    return M2P_OK;
}

m2p_code m2p_lcm_config_parse(const char *json, size_t len, m2p_lcm_config *cfg, m2p_error *err) {
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return m2p_error_set(err, M2P_E_MODEL_CONFIG, "scheduler config: %s (line %d)", jerr.text, jerr.line);
    }
    m2p_code rc = M2P_OK;
    if (!json_is_object(root)) {
        rc = m2p_error_set(err, M2P_E_MODEL_CONFIG, "scheduler config is not a JSON object");
        goto done;
    }
    rc = get_int(root, "num_train_timesteps", 2, M2P_LCM_MAX_TRAIN_STEPS, &cfg->num_train_timesteps, err);
    if (rc == M2P_OK) {
        rc = get_num(root, "beta_start", &cfg->beta_start, err);
    }
    if (rc == M2P_OK) {
        rc = get_num(root, "beta_end", &cfg->beta_end, err);
    }
    if (rc == M2P_OK) {
        rc = get_int(root, "original_inference_steps", 1, M2P_LCM_MAX_TRAIN_STEPS, &cfg->original_inference_steps,
                     err);
    }
    if (rc == M2P_OK) {
        rc = get_num(root, "timestep_scaling", &cfg->timestep_scaling, err);
    }
    if (rc == M2P_OK) {
        rc = get_bool(root, "set_alpha_to_one", &cfg->set_alpha_to_one, err);
    }
    if (rc == M2P_OK) {
        rc = get_bool(root, "clip_sample", &cfg->clip_sample, err);
    }
    if (rc == M2P_OK) {
        rc = get_num(root, "clip_sample_range", &cfg->clip_sample_range, err);
    }
    if (rc != M2P_OK) {
        goto done;
    }
    /* Features diffusers has and this engine does not: refuse rather than compute something else. */
    bool flag = false;
    if (get_bool(root, "thresholding", &flag, err) != M2P_OK || flag) {
        rc = m2p_error_set(err, M2P_E_MODEL_CONFIG, "scheduler config: thresholding is not supported");
        goto done;
    }
    if (get_bool(root, "rescale_betas_zero_snr", &flag, err) != M2P_OK || flag) {
        rc = m2p_error_set(err, M2P_E_MODEL_CONFIG, "scheduler config: rescale_betas_zero_snr is not supported");
        goto done;
    }
    json_t *tb = json_object_get(root, "trained_betas");
    if (tb != NULL && !json_is_null(tb)) {
        rc = m2p_error_set(err, M2P_E_MODEL_CONFIG, "scheduler config: trained_betas is not supported");
        goto done;
    }
    json_t *bs = json_object_get(root, "beta_schedule");
    if (bs != NULL && !json_is_null(bs)) {
        const char *s = json_string_value(bs);
        if (s != NULL && strcmp(s, "scaled_linear") == 0) {
            cfg->beta_schedule = M2P_LCM_BETA_SCALED_LINEAR;
        } else if (s != NULL && strcmp(s, "linear") == 0) {
            cfg->beta_schedule = M2P_LCM_BETA_LINEAR;
        } else {
            rc = m2p_error_set(err, M2P_E_MODEL_CONFIG, "scheduler config: beta_schedule '%s' is not supported",
                               s != NULL ? s : "?");
            goto done;
        }
    }
    json_t *pt = json_object_get(root, "prediction_type");
    if (pt != NULL && !json_is_null(pt)) {
        const char *s = json_string_value(pt);
        if (s != NULL && strcmp(s, "epsilon") == 0) {
            cfg->prediction_type = M2P_LCM_PRED_EPSILON;
        } else if (s != NULL && strcmp(s, "sample") == 0) {
            cfg->prediction_type = M2P_LCM_PRED_SAMPLE;
        } else if (s != NULL && strcmp(s, "v_prediction") == 0) {
            cfg->prediction_type = M2P_LCM_PRED_V;
        } else {
            rc = m2p_error_set(err, M2P_E_MODEL_CONFIG, "scheduler config: prediction_type '%s' is not supported",
                               s != NULL ? s : "?");
            goto done;
        }
    }
    if (!(cfg->beta_start > 0 && cfg->beta_end > 0 && cfg->beta_start < 1 && cfg->beta_end < 1) ||
        !(cfg->timestep_scaling > 0) || cfg->original_inference_steps > cfg->num_train_timesteps) {
        rc = m2p_error_set(err, M2P_E_MODEL_CONFIG,
                           "scheduler config: betas must lie in (0, 1), timestep_scaling > 0 and "
                           "original_inference_steps <= num_train_timesteps");
        goto done;
    }
done:
    json_decref(root);
    return rc;
}

m2p_code m2p_lcm_config_load(const char *path, m2p_lcm_config *cfg, m2p_error *err) {
    char *text = NULL;
    size_t len = 0;
    m2p_code rc = m2p_fs_read_file(path, 1u << 20, &text, &len, err);
    if (rc != M2P_OK) {
        if (rc == M2P_E_IO || rc == M2P_E_NOT_FOUND || rc == M2P_E_FILE_NOT_FOUND) {
            return m2p_error_set(err, M2P_E_MODEL_MISSING, "cannot read %s", path);
        }
        return rc;
    }
    rc = m2p_lcm_config_parse(text, len, cfg, err);
    m2p_free(text);
    return rc;
}

m2p_code m2p_lcm_config_from_model(const m2p_nn_sched_config *mc, m2p_lcm_config *cfg, m2p_error *err) {
    m2p_lcm_config_default(cfg);
    cfg->num_train_timesteps = mc->num_train_timesteps;
    cfg->beta_start = mc->beta_start;
    cfg->beta_end = mc->beta_end;
    cfg->original_inference_steps = mc->original_inference_steps > 0 ? mc->original_inference_steps : 50;
    cfg->timestep_scaling = mc->timestep_scaling > 0 ? mc->timestep_scaling : 10.0;
    cfg->set_alpha_to_one = mc->set_alpha_to_one;
    if (mc->rescale_betas_zero_snr) {
        return m2p_error_set(err, M2P_E_MODEL_CONFIG, "scheduler config: rescale_betas_zero_snr is not supported");
    }
    if (mc->beta_schedule[0] == '\0' || strcmp(mc->beta_schedule, "scaled_linear") == 0) {
        cfg->beta_schedule = M2P_LCM_BETA_SCALED_LINEAR;
    } else if (strcmp(mc->beta_schedule, "linear") == 0) {
        cfg->beta_schedule = M2P_LCM_BETA_LINEAR;
    } else {
        return m2p_error_set(err, M2P_E_MODEL_CONFIG, "scheduler config: beta_schedule '%s' is not supported",
                             mc->beta_schedule);
    }
    if (mc->prediction_type[0] == '\0' || strcmp(mc->prediction_type, "epsilon") == 0) {
        cfg->prediction_type = M2P_LCM_PRED_EPSILON;
    } else if (strcmp(mc->prediction_type, "sample") == 0) {
        cfg->prediction_type = M2P_LCM_PRED_SAMPLE;
    } else if (strcmp(mc->prediction_type, "v_prediction") == 0) {
        cfg->prediction_type = M2P_LCM_PRED_V;
    } else {
        return m2p_error_set(err, M2P_E_MODEL_CONFIG, "scheduler config: prediction_type '%s' is not supported",
                             mc->prediction_type);
    }
    if (cfg->num_train_timesteps < 2 || cfg->num_train_timesteps > M2P_LCM_MAX_TRAIN_STEPS ||
        cfg->original_inference_steps > cfg->num_train_timesteps || !(cfg->beta_start > 0 && cfg->beta_start < 1) ||
        !(cfg->beta_end > 0 && cfg->beta_end < 1)) {
        return m2p_error_set(err, M2P_E_MODEL_CONFIG, "scheduler config: %d train steps, %d original steps, betas %g..%g",
                             cfg->num_train_timesteps, cfg->original_inference_steps, cfg->beta_start, cfg->beta_end);
    }
    return M2P_OK;
}

/* torch.linspace(start, end, steps) in float32: the first half counts up from
 * start, the second half down from end (that is how PyTorch fills it). */
static float linspace_f32(float start, float end, int steps, int i) {
    float step = (end - start) / (float)(steps - 1);
    if (i < steps / 2) {
        return start + step * (float)i;
    }
    return end - step * (float)(steps - i - 1);
}

m2p_code m2p_lcm_create(const m2p_lcm_config *cfg, m2p_lcm_scheduler **out, m2p_error *err) {
    *out = NULL;
    if (cfg->num_train_timesteps < 2 || cfg->num_train_timesteps > M2P_LCM_MAX_TRAIN_STEPS ||
        cfg->original_inference_steps < 1 || cfg->original_inference_steps > cfg->num_train_timesteps) {
        return m2p_error_set(err, M2P_E_MODEL_CONFIG, "scheduler: num_train_timesteps %d / original steps %d",
                             cfg->num_train_timesteps, cfg->original_inference_steps);
    }
    m2p_lcm_scheduler *s = m2p_calloc(1, sizeof *s);
    if (s == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "scheduler");
    }
    s->cfg = *cfg;
    int n = cfg->num_train_timesteps;
    s->alphas_cumprod = m2p_malloc_array((size_t)n, sizeof(float));
    if (s->alphas_cumprod == NULL) {
        m2p_free(s);
        return m2p_error_set(err, M2P_E_NOMEM, "scheduler table");
    }
    float acc = 1.0f;
    for (int i = 0; i < n; i++) {
        float beta;
        if (cfg->beta_schedule == M2P_LCM_BETA_SCALED_LINEAR) {
            float b = linspace_f32((float)sqrt(cfg->beta_start), (float)sqrt(cfg->beta_end), n, i);
            beta = b * b;
        } else {
            beta = linspace_f32((float)cfg->beta_start, (float)cfg->beta_end, n, i);
        }
        acc *= 1.0f - beta;
        s->alphas_cumprod[i] = acc;
    }
    s->final_alpha_cumprod = cfg->set_alpha_to_one ? 1.0f : s->alphas_cumprod[0];
    *out = s;
    return M2P_OK;
}

void m2p_lcm_free(m2p_lcm_scheduler *s) {
    if (s == NULL) {
        return;
    }
    m2p_free(s->alphas_cumprod);
    m2p_free(s);
}

m2p_code m2p_lcm_set_timesteps(m2p_lcm_scheduler *s, int n, m2p_error *err) {
    int orig = s->cfg.original_inference_steps;
    if (n < 1 || n > M2P_LCM_MAX_STEPS || n > orig) {
        return m2p_error_set(err, M2P_E_RENDER_STEPS, "%d steps (this model allows 1 to %d)", n,
                             orig < M2P_LCM_MAX_STEPS ? orig : M2P_LCM_MAX_STEPS);
    }
    int k = s->cfg.num_train_timesteps / orig;
    /* Origin schedule: (1..orig)·k − 1, reversed; take floor(linspace(0, orig, n, endpoint=False)).
     * numpy computes the linspace as i·(orig/n) in double. */
    double step = (double)orig / (double)n;
    for (int i = 0; i < n; i++) {
        int idx = (int)floor((double)i * step);
        if (idx >= orig) {
            idx = orig - 1;
        }
        /* reversed[idx] = (orig − idx)·k − 1 */
        s->timesteps[i] = (orig - idx) * k - 1;
    }
    s->n_steps = n;
    return M2P_OK;
}

const int *m2p_lcm_timesteps(const m2p_lcm_scheduler *s, int *n) {
    *n = s->n_steps;
    return s->timesteps;
}

float m2p_lcm_alpha_cumprod(const m2p_lcm_scheduler *s, int t) {
    if (t < 0) {
        return s->final_alpha_cumprod;
    }
    if (t >= s->cfg.num_train_timesteps) {
        t = s->cfg.num_train_timesteps - 1;
    }
    return s->alphas_cumprod[t];
}

void m2p_lcm_scalings(const m2p_lcm_scheduler *s, int t, float *c_skip, float *c_out) {
    /* diffusers: timestep (int tensor) · timestep_scaling (python float) → float32. */
    const float sigma_data = 0.5f;
    float scaled = (float)t * (float)s->cfg.timestep_scaling;
    *c_skip = sigma_data * sigma_data / (scaled * scaled + sigma_data * sigma_data);
    *c_out = scaled / sqrtf(scaled * scaled + sigma_data * sigma_data);
}

m2p_code m2p_lcm_step(const m2p_lcm_scheduler *s, int i, const float *model_out, float *sample, float *denoised,
                      const float *noise, size_t count, m2p_error *err) {
    if (i < 0 || i >= s->n_steps) {
        return m2p_error_set(err, M2P_E_INTERNAL, "scheduler step %d of %d", i, s->n_steps);
    }
    bool last = i == s->n_steps - 1;
    if (!last && noise == NULL) {
        return m2p_error_set(err, M2P_E_INTERNAL, "scheduler step %d needs noise", i);
    }
    int t = s->timesteps[i];
    int t_prev = last ? t : s->timesteps[i + 1];
    float a_t = s->alphas_cumprod[t];
    float a_prev = t_prev >= 0 ? s->alphas_cumprod[t_prev] : s->final_alpha_cumprod;
    float b_t = 1.0f - a_t;
    float b_prev = 1.0f - a_prev;
    float sa_t = sqrtf(a_t);
    float sb_t = sqrtf(b_t);
    float sa_prev = sqrtf(a_prev);
    float sb_prev = sqrtf(b_prev);
    float c_skip, c_out;
    m2p_lcm_scalings(s, t, &c_skip, &c_out);
    float lo = (float)-s->cfg.clip_sample_range;
    float hi = (float)s->cfg.clip_sample_range;
    for (size_t j = 0; j < count; j++) {
        float x = sample[j];
        float e = model_out[j];
        float x0;
        switch (s->cfg.prediction_type) {
        case M2P_LCM_PRED_SAMPLE:
            x0 = e;
            break;
        case M2P_LCM_PRED_V:
            x0 = sa_t * x - sb_t * e;
            break;
        case M2P_LCM_PRED_EPSILON:
        default:
            x0 = (x - sb_t * e) / sa_t;
            break;
        }
        if (s->cfg.clip_sample) {
            x0 = x0 < lo ? lo : (x0 > hi ? hi : x0);
        }
        float d = c_out * x0 + c_skip * x;
        if (denoised != NULL) {
            denoised[j] = d;
        }
        sample[j] = last ? d : sa_prev * d + sb_prev * noise[j];
    }
    return M2P_OK;
}

void m2p_lcm_rng_seed(m2p_lcm_rng *r, uint64_t seed) {
    r->state = seed;
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void m2p_lcm_rng_normal(m2p_lcm_rng *r, float *out, size_t n) {
    const double two_pi = 6.283185307179586476925286766559;
    const double inv53 = 1.0 / 9007199254740992.0; /* 2^-53 */
    for (size_t i = 0; i < n; i += 2) {
        double u1 = (double)((splitmix64(&r->state) >> 11) + 1) * inv53; /* (0, 1] */
        double u2 = (double)(splitmix64(&r->state) >> 11) * inv53;       /* [0, 1) */
        double rad = sqrt(-2.0 * log(u1));
        double th = two_pi * u2;
        out[i] = (float)(rad * cos(th));
        if (i + 1 < n) {
            out[i + 1] = (float)(rad * sin(th));
        }
    }
}
