/*
 * diffusion/scheduler.h — the LCM scheduler (diffusers' LCMScheduler) and the
 * per-image noise generator of the sampler.
 *
 * Scheduler: the noise schedule ᾱ_t (scaled-linear or linear betas,
 * cumulative product, float32 as diffusers computes it), the LCM inference
 * timesteps taken from the `original_inference_steps` schedule, the boundary
 * scalings c_skip/c_out (σ_data = 0.5, timestep scaled by timestep_scaling)
 * and one step:
 *     x0       = (x − √(1−ᾱ_t)·ε) / √ᾱ_t            (epsilon prediction)
 *     denoised = c_out·x0 + c_skip·x
 *     x_prev   = √ᾱ_prev·denoised + √(1−ᾱ_prev)·z   (z: fresh N(0,1) noise;
 *                                                  the last step returns denoised)
 * The scheduler is immutable after m2p_lcm_set_timesteps(); the step takes the
 * step index explicitly, so one scheduler can serve any number of images.
 *
 * Noise generator (m2p_lcm_rng): splitmix64 (Steele, Lea, Flood 2014) over a
 * 64-bit state seeded with the image's seed, turned into N(0,1) floats by the
 * Box–Muller transform (two uniforms u1 ∈ (0,1], u2 ∈ [0,1) of 53 bits each →
 * r·cos θ, r·sin θ with r = √(−2 ln u1), θ = 2π u2, computed in double and
 * rounded to float). Image i's initial latents and every later noise draw
 * come from its own generator seeded with seeds[i], in this order: the
 * latents (C·H·W values), then one draw of C·H·W values per non-final step.
 * So an image is reproducible from its seed alone, whatever the batch.
 */
#ifndef M2P_DIFFUSION_SCHEDULER_H
#define M2P_DIFFUSION_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "diffusion/model.h"

#define M2P_LCM_MAX_TRAIN_STEPS 10000
#define M2P_LCM_MAX_STEPS 50

typedef enum m2p_lcm_beta_schedule { M2P_LCM_BETA_SCALED_LINEAR = 0, M2P_LCM_BETA_LINEAR } m2p_lcm_beta_schedule;
typedef enum m2p_lcm_prediction { M2P_LCM_PRED_EPSILON = 0, M2P_LCM_PRED_SAMPLE, M2P_LCM_PRED_V } m2p_lcm_prediction;

/* The fields of scheduler/scheduler_config.json that LCM sampling uses. */
typedef struct m2p_lcm_config {
    int num_train_timesteps;  /* 1000 */
    double beta_start;        /* 0.00085 */
    double beta_end;          /* 0.012 */
    m2p_lcm_beta_schedule beta_schedule;
    int original_inference_steps; /* 50 */
    double timestep_scaling;      /* 10 */
    bool set_alpha_to_one;        /* true */
    m2p_lcm_prediction prediction_type;
    bool clip_sample;
    double clip_sample_range;
} m2p_lcm_config;

/* diffusers' LCMScheduler defaults (those of LCM_Dreamshaper_v7). */
void m2p_lcm_config_default(m2p_lcm_config *cfg);

/* Reads scheduler_config.json (text, len bytes) over the defaults. Unsupported
 * settings (thresholding, rescale_betas_zero_snr, trained_betas, another
 * beta_schedule, steps_offset != 0) → M2P_E_MODEL_CONFIG naming the key. */
m2p_code m2p_lcm_config_parse(const char *json, size_t len, m2p_lcm_config *cfg, m2p_error *err) M2P_WUR;
/* Same from a file (capped at 1 MB). A missing file → M2P_E_MODEL_MISSING. */
m2p_code m2p_lcm_config_load(const char *path, m2p_lcm_config *cfg, m2p_error *err) M2P_WUR;

/* From the model folder's parsed scheduler_config.json (diffusion/model.h).
 * Unsupported settings (rescale_betas_zero_snr, another beta_schedule or
 * prediction type) → M2P_E_MODEL_CONFIG. */
m2p_code m2p_lcm_config_from_model(const m2p_nn_sched_config *mc, m2p_lcm_config *cfg, m2p_error *err) M2P_WUR;

typedef struct m2p_lcm_scheduler m2p_lcm_scheduler;

m2p_code m2p_lcm_create(const m2p_lcm_config *cfg, m2p_lcm_scheduler **out, m2p_error *err) M2P_WUR;
void m2p_lcm_free(m2p_lcm_scheduler *s);

/* Chooses n inference steps (1..min(M2P_LCM_MAX_STEPS, original_inference_steps)),
 * out of range → M2P_E_RENDER_STEPS. */
m2p_code m2p_lcm_set_timesteps(m2p_lcm_scheduler *s, int n, m2p_error *err) M2P_WUR;
/* The chosen timesteps, descending; *n receives their count (0 before set_timesteps). */
const int *m2p_lcm_timesteps(const m2p_lcm_scheduler *s, int *n);
/* ᾱ_t for 0 <= t < num_train_timesteps (the table, float32). */
float m2p_lcm_alpha_cumprod(const m2p_lcm_scheduler *s, int t);
/* Boundary condition scalings for a discrete timestep. */
void m2p_lcm_scalings(const m2p_lcm_scheduler *s, int t, float *c_skip, float *c_out);

/* One step at step index i (0-based) over count values of one or more images.
 * sample is updated in place to x_prev; denoised (may be NULL) receives the
 * denoised estimate. noise is required unless i is the last step (it is then
 * ignored, and sample becomes denoised). */
m2p_code m2p_lcm_step(const m2p_lcm_scheduler *s, int i, const float *model_out, float *sample, float *denoised,
                      const float *noise, size_t count, m2p_error *err) M2P_WUR;

/* Per-image noise generator (see the top of this file). Plain value. */
typedef struct m2p_lcm_rng {
    uint64_t state;
} m2p_lcm_rng;

void m2p_lcm_rng_seed(m2p_lcm_rng *r, uint64_t seed);
/* Fills out with n N(0,1) floats (pairs; an odd n discards the last pair's second value). */
void m2p_lcm_rng_normal(m2p_lcm_rng *r, float *out, size_t n);

#endif
