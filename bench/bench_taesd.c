/*
 * bench/bench_taesd.c — the full AutoencoderKL decode vs the TAESD decoder on
 * the same latents, side by side in one process (wall and CPU seconds, the
 * ratios), plus TAESD's difference to diffusers' AutoencoderTiny on them.
 *
 *   bench_taesd [--model DIR] [--taesd DIR] [--runs N] [--latent N]
 *     --model   full-size SD folder with vae/ (default /tmp/m2p-full-lcm;
 *               tools/nn/make_fixtures.py full --parts vae)
 *     --taesd   full-size TAESD folder (default /tmp/m2p-full-taesd;
 *               tools/nn/make_fixtures.py taesd-full, which also writes
 *               bench_latents.safetensors: seeded [1, 4, 64, 64] latents and
 *               diffusers' decode of them)
 *     --runs    timed decodes of each, interleaved VAE, TAESD, VAE, ... (default 2)
 *     --latent  latent side when no bench_latents file is there (default 64 → 512²)
 *     --skip-vae  time TAESD only (for tuning; no ratio then)
 *
 * Each decoder decodes once untimed first (workspace allocation, page faults).
 * Prints the load average before and after: other work on the machine
 * inflates wall time more than CPU time.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "diffusion/model.h"
#include "diffusion/safetensors.h"
#include "diffusion/scheduler.h"
#include "diffusion/taesd.h"
#include "diffusion/vae.h"

static double now(clockid_t id) {
    struct timespec ts;
    (void)clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void print_load(const char *when) {
    double l[3] = {0, 0, 0};
    if (getloadavg(l, 3) == 3) {
        (void)printf("load average %s: %.2f %.2f %.2f\n", when, l[0], l[1], l[2]);
    }
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Multiply-adds of the TAESD decoder at latent h × w (3×3 convs only; activations are noise). */
static double taesd_macs(const m2p_taesd_config *c, int h, int w) {
    double ch = c->channels[0], px = (double)h * w, macs = 9.0 * c->latent_channels * ch * px;
    for (int i = 0; i < c->n_stages; i++) {
        macs += 9.0 * ch * ch * px * 3 * c->blocks[i];
        if (i + 1 < c->n_stages) {
            px *= 4;
            macs += 9.0 * ch * ch * px;
        } else {
            macs += 9.0 * ch * c->out_channels * px;
        }
    }
    return macs;
}

int main(int argc, char **argv) {
    const char *model_dir = "/tmp/m2p-full-lcm", *taesd_dir = "/tmp/m2p-full-taesd";
    int runs = 2, side = 64;
    bool skip_vae = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
            model_dir = argv[++i];
        } else if (strcmp(argv[i], "--taesd") == 0 && i + 1 < argc) {
            taesd_dir = argv[++i];
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--skip-vae") == 0) {
            skip_vae = true;
        } else if (strcmp(argv[i], "--latent") == 0 && i + 1 < argc) {
            side = atoi(argv[++i]);
        } else {
            (void)fprintf(stderr, "usage: bench_taesd [--model DIR] [--taesd DIR] [--runs N] [--latent N]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > 50 || side < 1 || side > 512) {
        (void)fprintf(stderr, "bench_taesd: --runs 1..50, --latent 1..512\n");
        return 2;
    }
    print_load("at start");
    m2p_error err;
    m2p_nn_model *m = NULL;
    m2p_nn_vae *vae = NULL;
    m2p_taesd *t = NULL;
    double t0 = now(CLOCK_MONOTONIC);
    if (m2p_nn_model_open(model_dir, M2P_NN_LOAD_VAE, &m, &err) != M2P_OK ||
        m2p_nn_vae_create(m, &vae, &err) != M2P_OK) {
        (void)fprintf(stderr, "bench_taesd: %s\n", err.detail);
        return 1;
    }
    double t1 = now(CLOCK_MONOTONIC);
    if (m2p_taesd_open(taesd_dir, &t, &err) != M2P_OK) {
        (void)fprintf(stderr, "bench_taesd: %s\n", err.detail);
        return 1;
    }
    double t2 = now(CLOCK_MONOTONIC);
    (void)printf("load: vae %.3f s, taesd %.3f s (%.2f M decoder parameters)\n", t1 - t0, t2 - t1,
                 (double)m2p_taesd_param_count(t) / 1e6);

    /* Latents: diffusers' bench file when there, else seeded noise. */
    char path[1200];
    (void)snprintf(path, sizeof path, "%s/bench_latents.safetensors", taesd_dir);
    m2p_nn_st *ref = NULL;
    float *want = NULL, *lat = NULL;
    int C = m2p_nn_vae_latent_channels(vae), f = m2p_nn_vae_factor(vae);
    if (m2p_nn_st_open(path, &ref, &err) == M2P_OK) {
        const m2p_nn_st_tensor *tl = m2p_nn_st_find(ref, "latents");
        const m2p_nn_st_tensor *ts = m2p_nn_st_find(ref, "sample");
        if (tl == NULL || ts == NULL || tl->ndim != 4 || tl->shape[0] != 1 || tl->shape[1] != C ||
            tl->shape[2] != tl->shape[3]) {
            (void)fprintf(stderr, "bench_taesd: %s is not [1, %d, N, N] latents + sample\n", path, C);
            return 1;
        }
        side = (int)tl->shape[2];
        lat = m2p_malloc_array(tl->numel, sizeof(float));
        want = m2p_malloc_array(ts->numel, sizeof(float));
        if (lat == NULL || want == NULL || m2p_nn_st_read_f32(tl, lat, tl->numel, &err) != M2P_OK ||
            m2p_nn_st_read_f32(ts, want, ts->numel, &err) != M2P_OK) {
            (void)fprintf(stderr, "bench_taesd: %s unreadable\n", path);
            return 1;
        }
    } else {
        size_t n = (size_t)C * (size_t)side * (size_t)side;
        lat = m2p_malloc_array(n, sizeof(float));
        if (lat == NULL) {
            return 1;
        }
        m2p_lcm_rng r;
        m2p_lcm_rng_seed(&r, 3);
        m2p_lcm_rng_normal(&r, lat, n);
    }
    int H = side * f;
    size_t out_n = (size_t)3 * (size_t)H * (size_t)H;
    float *img_vae = m2p_malloc_array(out_n, sizeof(float));
    float *img_t = m2p_malloc_array(out_n, sizeof(float));
    if (img_vae == NULL || img_t == NULL) {
        return 1;
    }
    (void)printf("latents [1, %d, %d, %d] → image %dx%d; %d timed run(s) each, interleaved\n", C, side, side, H, H,
                 runs);

    /* Untimed first decodes. */
    if ((!skip_vae && m2p_nn_vae_decode(vae, lat, 1, side, side, img_vae, NULL, &err) != M2P_OK) ||
        m2p_taesd_decode(t, lat, 1, side, side, img_t, NULL, &err) != M2P_OK) {
        (void)fprintf(stderr, "bench_taesd: %s\n", err.detail);
        return 1;
    }
    double vw[50], vc[50], tw[50], tc[50];
    for (int r = 0; r < runs; r++) {
        double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
        if (!skip_vae && m2p_nn_vae_decode(vae, lat, 1, side, side, img_vae, NULL, &err) != M2P_OK) {
            return 1;
        }
        double w1 = now(CLOCK_MONOTONIC), c1 = now(CLOCK_PROCESS_CPUTIME_ID);
        if (m2p_taesd_decode(t, lat, 1, side, side, img_t, NULL, &err) != M2P_OK) {
            return 1;
        }
        double w2 = now(CLOCK_MONOTONIC), c2 = now(CLOCK_PROCESS_CPUTIME_ID);
        vw[r] = w1 - w0;
        vc[r] = c1 - c0;
        tw[r] = w2 - w1;
        tc[r] = c2 - c1;
        (void)printf("run %d: vae wall %.3f s cpu %.3f s | taesd wall %.3f s cpu %.3f s\n", r + 1, vw[r], vc[r], tw[r],
                     tc[r]);
    }
    double mvw = median(vw, runs), mvc = median(vc, runs), mtw = median(tw, runs), mtc = median(tc, runs);
    double macs = taesd_macs(m2p_taesd_get_config(t), side, side);
    (void)printf("median: vae wall %.3f s, cpu %.3f s; taesd wall %.3f s, cpu %.3f s (%.1f GMACs, %.1f GFLOP/s wall)\n",
                 mvw, mvc, mtw, mtc, macs / 1e9, 2.0 * macs / 1e9 / mtw);
    (void)printf("ratio vae/taesd: wall %.1fx, cpu %.1fx\n", mvw / mtw, mvc / mtc);
    if (want != NULL) {
        double maxdiff = 0, maxref = 0;
        for (size_t i = 0; i < out_n; i++) {
            maxdiff = fmax(maxdiff, fabs((double)img_t[i] - want[i]));
            maxref = fmax(maxref, fabs((double)want[i]));
        }
        (void)printf("taesd vs diffusers AutoencoderTiny on the same latents: max |diff| %.3g (max |ref| %.3g)\n",
                     maxdiff, maxref);
    }
    print_load("at end");
    m2p_free(lat);
    m2p_free(want);
    m2p_free(img_vae);
    m2p_free(img_t);
    m2p_nn_st_close(ref);
    m2p_taesd_free(t);
    m2p_nn_vae_free(vae);
    m2p_nn_model_free(m);
    return 0;
}
