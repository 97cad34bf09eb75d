/*
 * bench/bench_batch.c — batch throughput of the LCM engine, side by side in
 * one process with the model loaded once.
 *
 *   build/bench/bench_batch [--model DIR] [--size PX] [--rounds R] [--configs before,after,blin] [--json]
 *     UNet steps: every round runs, for each configuration in turn (the order
 *     rotates every round), one batch-of-4 step and 4 single steps on the same
 *     4 latents (timesteps 999/759/499/259, one guidance embedding per image,
 *     one text embedding for all), timing wall and CPU seconds (all threads).
 *     Configurations, all on the same weights:
 *       before — every convolution by im2col + sgemm (the engine before Winograd
 *                was used in the UNet);
 *       after  — the default: Winograd F(2×2,3×3) for 3×3 convs on ≥ 32×32 latents;
 *       blin   — after + every linear as one sgemm over all images' rows
 *                (m2p_unet_set_batched_linears; NOT reproducible: shows what
 *                bitwise batch identity costs).
 *     Prints per configuration the medians over rounds, the ratio
 *     images/s(batch of 4) ÷ images/s(4 single runs), batch-4 ÷ batch-1 cost
 *     per step, GFLOP per step and GFLOP per CPU-second, and whether each image
 *     of the batch is bitwise the image run alone.
 *   build/bench/bench_batch --image [--model DIR] [--size PX] [--rounds R]
 *     Whole images through the sampling pipeline (m2p_sd_generate: text + 4
 *     steps + VAE decode): 4 seeds as one request of n = 4 vs 4 requests of
 *     n = 1, interleaved; checks the pixels are identical.
 *   build/bench/bench_batch --convs [--rounds R]
 *     im2col vs Winograd on the UNet's 3×3 conv shapes (SD 1.x channels at
 *     64², 32², 16², 8², 4² latents), batch 1 and 4, CPU seconds per call
 *     (minimum over rounds): the data behind M2P_UNET_WINOGRAD_MIN_PIXELS.
 *   build/bench/bench_batch --probe
 *     Whether OpenBLAS gives an element the same bits when the product it
 *     belongs to grows (rows ×4 / columns ×4), for the linear and conv shapes:
 *     why the UNet issues its products per image.
 *
 * Run with OMP_WAIT_POLICY=passive on a shared machine; the load average is
 * printed before and after.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/alloc.h"
#include "core/fs.h"
#include "diffusion/model.h"
#include "diffusion/ops.h"
#include "diffusion/sd_pipeline.h"
#include "diffusion/unet.h"

#define MAX_ROUNDS 32
#define NB 4 /* the batch */

static double cpu_now(void) {
    struct rusage ru;
    (void)getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

static void loadavg(char *buf, size_t cap) {
    buf[0] = '\0';
    FILE *f = fopen("/proc/loadavg", "r");
    if (f != NULL) {
        if (fgets(buf, (int)cap, f) == NULL) {
            buf[0] = '\0';
        }
        fclose(f);
    }
    size_t l = strlen(buf);
    if (l > 0 && buf[l - 1] == '\n') {
        buf[l - 1] = '\0';
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : (x > y ? 1 : 0);
}

static double median(const double *v, int n) {
    double t[MAX_ROUNDS];
    memcpy(t, v, sizeof(double) * (size_t)n);
    qsort(t, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static void fill(float *x, size_t n, uint32_t seed, float scale) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i += 2) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u1 = ((double)(s >> 11) + 1.0) / 9007199254740993.0;
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u2 = (double)(s >> 11) / 9007199254740992.0;
        double r = sqrt(-2.0 * log(u1));
        x[i] = scale * (float)(r * cos(6.283185307179586 * u2));
        if (i + 1 < n) {
            x[i + 1] = scale * (float)(r * sin(6.283185307179586 * u2));
        }
    }
}

/* ------------------------------------------------------------------ UNet steps */

typedef struct cfg {
    const char *name;
    int wino;  /* m2p_unet_set_winograd_min_pixels */
    bool blin; /* m2p_unet_set_batched_linears */
    double b4_wall[MAX_ROUNDS], b4_cpu[MAX_ROUNDS], s4_wall[MAX_ROUNDS], s4_cpu[MAX_ROUNDS];
    bool identical;
    double max_diff;
} cfg;

static int run_unet(const char *model_dir, int size, int rounds, const char *configs, bool json) {
    m2p_error err;
    m2p_nn_model *model = NULL;
    m2p_unet *u = NULL;
    if (m2p_nn_model_open(model_dir, M2P_NN_LOAD_UNET, &model, &err) != M2P_OK ||
        m2p_unet_create_from_model(model, &u, &err) != M2P_OK) {
        fprintf(stderr, "bench_batch: %s\n", err.detail);
        return 1;
    }
    const m2p_unet_config *uc = m2p_unet_get_config(u);
    int side = size / 8, T = 77, D = uc->cross_attention_dim[0], CD = uc->time_cond_proj_dim;
    size_t per = (size_t)uc->in_channels * (size_t)side * (size_t)side;
    size_t per_out = (size_t)uc->out_channels * (size_t)side * (size_t)side;
    float *lat = m2p_malloc_array(NB * per, sizeof(float));
    float *ctx = m2p_malloc_array((size_t)T * (size_t)D, sizeof(float));
    float *cond = m2p_malloc_array((size_t)NB * (size_t)(CD > 0 ? CD : 1), sizeof(float));
    float *out4 = m2p_malloc_array(NB * per_out, sizeof(float));
    float *out1 = m2p_malloc_array(NB * per_out, sizeof(float));
    if (lat == NULL || ctx == NULL || cond == NULL || out4 == NULL || out1 == NULL) {
        fprintf(stderr, "bench_batch: out of memory\n");
        return 1;
    }
    fill(lat, NB * per, 1, 1.0f);
    fill(ctx, (size_t)T * (size_t)D, 2, 1.0f);
    for (int i = 0; i < NB && CD > 0; i++) {
        m2p_unet_guidance_embedding(8.0, CD, cond + (size_t)i * (size_t)CD);
    }
    float ts[NB] = {999.0f, 759.0f, 499.0f, 259.0f};
    cfg all[3] = {{.name = "before", .wino = -1, .blin = false},
                  {.name = "after", .wino = M2P_UNET_WINOGRAD_MIN_PIXELS, .blin = false},
                  {.name = "blin", .wino = M2P_UNET_WINOGRAD_MIN_PIXELS, .blin = true}};
    cfg *cs[3];
    int nc = 0;
    for (int i = 0; i < 3; i++) {
        if (strstr(configs, all[i].name) != NULL) {
            cs[nc++] = &all[i];
        }
    }
    if (nc == 0) {
        fprintf(stderr, "bench_batch: --configs names none of before, after, blin\n");
        return 2;
    }
    char la0[128], la1[128];
    loadavg(la0, sizeof la0);
    fprintf(stderr, "bench_batch: %s, %dx%d (latents %dx%d), %d rounds, %d threads, load %s\n", model_dir, size,
            size, side, side, rounds, m2p_nn_threads(), la0);
    /* Warm-up: touch every weight once (page faults are not what is measured). */
    m2p_unet_input w1 = {lat, 1, side, side, ts, CD > 0 ? cond : NULL, ctx, 1, T};
    if (m2p_unet_forward(u, &w1, out1, &err) != M2P_OK) {
        fprintf(stderr, "bench_batch: %s\n", err.detail);
        return 1;
    }
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < nc; k++) {
            cfg *c = cs[(k + r) % nc];
            m2p_unet_set_winograd_min_pixels(u, c->wino);
            m2p_unet_set_batched_linears(u, c->blin);
            for (int half = 0; half < 2; half++) {
                bool batch = (half == 0) == (r % 2 == 0);
                double w0 = m2p_now_monotonic(), c0 = cpu_now();
                if (batch) {
                    m2p_unet_input in = {lat, NB, side, side, ts, CD > 0 ? cond : NULL, ctx, 1, T};
                    if (m2p_unet_forward(u, &in, out4, &err) != M2P_OK) {
                        fprintf(stderr, "bench_batch: %s\n", err.detail);
                        return 1;
                    }
                    c->b4_wall[r] = m2p_now_monotonic() - w0;
                    c->b4_cpu[r] = cpu_now() - c0;
                } else {
                    for (int i = 0; i < NB; i++) {
                        m2p_unet_input in = {lat + (size_t)i * per, 1, side, side, ts + i,
                                             CD > 0 ? cond + (size_t)i * (size_t)CD : NULL, ctx, 1, T};
                        if (m2p_unet_forward(u, &in, out1 + (size_t)i * per_out, &err) != M2P_OK) {
                            fprintf(stderr, "bench_batch: %s\n", err.detail);
                            return 1;
                        }
                    }
                    c->s4_wall[r] = m2p_now_monotonic() - w0;
                    c->s4_cpu[r] = cpu_now() - c0;
                }
            }
            c->identical = memcmp(out1, out4, NB * per_out * sizeof(float)) == 0;
            c->max_diff = 0;
            for (size_t j = 0; j < NB * per_out; j++) {
                double d = fabs((double)out1[j] - (double)out4[j]);
                c->max_diff = d > c->max_diff ? d : c->max_diff;
            }
            fprintf(stderr, "round %d %-6s: batch of 4 %.2f s wall %.2f s CPU | 4 single %.2f s wall %.2f s CPU\n",
                    r + 1, c->name, c->b4_wall[r], c->b4_cpu[r], c->s4_wall[r], c->s4_cpu[r]);
        }
    }
    loadavg(la1, sizeof la1);
    double gflop = 2.0 * m2p_unet_macs(u, 1, side, side, T) / 1e9;
    if (json) {
        printf("{\"model\": \"%s\", \"size\": %d, \"rounds\": %d, \"threads\": %d, \"gflop_per_image_step\": %.2f, "
               "\"load_before\": \"%s\", \"load_after\": \"%s\", \"configs\": {",
               model_dir, size, rounds, m2p_nn_threads(), gflop, la0, la1);
    } else {
        printf("\nUNet steps, batch of 4 vs 4 single runs, model loaded once: %s, %dx%d (%dx%d latents), %d rounds "
               "(medians), %d threads\nload average before: %s; after: %s\n"
               "FLOP per image per step: %.1f GFLOP (m2p_unet_macs x 2)\n\n",
               model_dir, size, size, side, side, rounds, m2p_nn_threads(), la0, la1, gflop);
        printf("| config | batch 4 wall | batch 4 CPU | 4 singles wall | 4 singles CPU | img/s b4 / img/s singles "
               "(wall, CPU) | b4 / b1 per step (CPU) | GFLOP/CPU-s b1, b4 | b4 image == alone |\n");
        printf("|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
    }
    for (int k = 0; k < nc; k++) {
        cfg *c = &all[0];
        for (int i = 0; i < 3; i++) {
            if (cs[k] == &all[i]) {
                c = &all[i];
            }
        }
        double bw = median(c->b4_wall, rounds), bc = median(c->b4_cpu, rounds);
        double sw = median(c->s4_wall, rounds), sc = median(c->s4_cpu, rounds);
        if (json) {
            printf("%s\"%s\": {\"b4_wall\": %.3f, \"b4_cpu\": %.3f, \"s4_wall\": %.3f, \"s4_cpu\": %.3f, "
                   "\"ratio_wall\": %.4f, \"ratio_cpu\": %.4f, \"b4_over_b1_cpu\": %.4f, \"gflop_per_cpu_s_b1\": %.2f, "
                   "\"gflop_per_cpu_s_b4\": %.2f, \"bitwise\": %s, \"max_diff\": %.3g}",
                   k ? ", " : "", c->name, bw, bc, sw, sc, sw / bw, sc / bc, bc / (sc / NB), NB * gflop / sc,
                   NB * gflop / bc, c->identical ? "true" : "false", c->max_diff);
        } else {
            char same[64];
            if (c->identical) {
                (void)snprintf(same, sizeof same, "bitwise");
            } else {
                (void)snprintf(same, sizeof same, "no (max diff %.2g)", c->max_diff);
            }
            printf("| %s | %.2f s | %.2f s | %.2f s | %.2f s | %.3f, %.3f | %.3f | %.1f, %.1f | %s |\n", c->name, bw,
                   bc, sw, sc, sw / bw, sc / bc, bc / (sc / NB), NB * gflop / sc, NB * gflop / bc, same);
        }
    }
    if (json) {
        printf("}}\n");
    } else if (nc > 1 && strstr(configs, "before") != NULL && strstr(configs, "after") != NULL) {
        printf("\nafter / before, CPU seconds: batch 1 %.3f, batch 4 %.3f\n",
               median(all[1].s4_cpu, rounds) / median(all[0].s4_cpu, rounds),
               median(all[1].b4_cpu, rounds) / median(all[0].b4_cpu, rounds));
    }
    m2p_free(lat);
    m2p_free(ctx);
    m2p_free(cond);
    m2p_free(out4);
    m2p_free(out1);
    m2p_unet_free(u);
    m2p_nn_model_free(model);
    return 0;
}

/* ------------------------------------------------------------------ whole images */

static int run_image(const char *model_dir, int size, int rounds, bool json) {
    m2p_error err;
    m2p_sd *sd = NULL;
    m2p_sd_options opt;
    m2p_sd_options_default(&opt);
    if (m2p_sd_open(model_dir, &opt, &sd, &err) != M2P_OK) {
        fprintf(stderr, "bench_batch: %s\n", err.detail);
        return 1;
    }
    size_t px = (size_t)size * (size_t)size * 3;
    uint8_t *rgb4 = m2p_malloc_array(NB * px, 1);
    uint8_t *rgb1 = m2p_malloc_array(NB * px, 1);
    if (rgb4 == NULL || rgb1 == NULL) {
        return 1;
    }
    uint32_t seeds[NB] = {11, 22, 33, 44};
    double b4w[MAX_ROUNDS], b4c[MAX_ROUNDS], s4w[MAX_ROUNDS], s4c[MAX_ROUNDS];
    char la0[128], la1[128];
    loadavg(la0, sizeof la0);
    bool same = true;
    for (int r = 0; r < rounds; r++) {
        for (int half = 0; half < 2; half++) {
            bool batch = (half == 0) == (r % 2 == 0);
            double w0 = m2p_now_monotonic(), c0 = cpu_now();
            for (int i = 0; i < (batch ? 1 : NB); i++) {
                m2p_sd_request req = {0};
                req.prompt = "a neon city at night, synthwave poster";
                req.n = batch ? NB : 1;
                req.seeds = batch ? seeds : seeds + i;
                req.width = size;
                req.height = size;
                req.steps = 4;
                req.guidance = 8.0;
                if (m2p_sd_generate(sd, &req, NULL, batch ? rgb4 : rgb1 + (size_t)i * px, &err) != M2P_OK) {
                    fprintf(stderr, "bench_batch: %s\n", err.detail);
                    return 1;
                }
            }
            double dw = m2p_now_monotonic() - w0, dc = cpu_now() - c0;
            if (batch) {
                b4w[r] = dw;
                b4c[r] = dc;
            } else {
                s4w[r] = dw;
                s4c[r] = dc;
            }
        }
        same = same && memcmp(rgb1, rgb4, NB * px) == 0;
        fprintf(stderr, "round %d: 4 images as one batch %.2f s wall %.2f s CPU | 4 single %.2f s wall %.2f s CPU\n",
                r + 1, b4w[r], b4c[r], s4w[r], s4c[r]);
    }
    loadavg(la1, sizeof la1);
    double bw = median(b4w, rounds), bc = median(b4c, rounds), sw = median(s4w, rounds), sc = median(s4c, rounds);
    if (json) {
        printf("{\"model\": \"%s\", \"size\": %d, \"rounds\": %d, \"b4_wall\": %.3f, \"b4_cpu\": %.3f, \"s4_wall\": "
               "%.3f, \"s4_cpu\": %.3f, \"ratio_wall\": %.4f, \"ratio_cpu\": %.4f, \"pixels_identical\": %s, "
               "\"load_before\": \"%s\", \"load_after\": \"%s\"}\n",
               model_dir, size, rounds, bw, bc, sw, sc, sw / bw, sc / bc, same ? "true" : "false", la0, la1);
    } else {
        printf("\nWhole images (text + 4 steps + VAE decode, m2p_sd_generate), 4 seeds: one request of 4 vs 4 "
               "requests of 1\n%s, %dx%d, %d rounds (medians), load before %s, after %s\n\n",
               model_dir, size, size, rounds, la0, la1);
        printf("| measure | batch of 4 | 4 single runs | img/s b4 / img/s singles |\n|---|---:|---:|---:|\n");
        printf("| wall | %.2f s | %.2f s | %.3f |\n| CPU | %.2f s | %.2f s | %.3f |\n", bw, sw, sw / bw, bc, sc,
               sc / bc);
        printf("\npixels of each image identical alone and in the batch: %s\n", same ? "yes" : "NO");
    }
    m2p_free(rgb4);
    m2p_free(rgb1);
    m2p_sd_free(sd);
    return same ? 0 : 1;
}

/* ------------------------------------------------------------------ conv shapes */

static int run_convs(int rounds) {
    static const int shapes[][3] = {{320, 320, 64},  {640, 320, 64},   {960, 320, 64},   {640, 640, 32},
                                    {1280, 640, 32}, {1920, 640, 32},  {320, 320, 32},   {1280, 1280, 16},
                                    {2560, 1280, 16}, {640, 640, 16},  {1280, 1280, 8},  {2560, 1280, 8},
                                    {1280, 1280, 4}};
    char la[128];
    loadavg(la, sizeof la);
    printf("UNet 3x3 convs: im2col+sgemm vs Winograd F(2x2,3x3), CPU seconds per call (min of %d rounds), "
           "%d threads, load %s\n\n",
           rounds, m2p_nn_threads(), la);
    printf("| cin | cout | latent | n | im2col | Winograd | Winograd / im2col |\n"
           "|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int cin = shapes[s][0], cout = shapes[s][1], side = shapes[s][2];
        for (int n = 1; n <= NB; n += NB - 1) {
            size_t xs = (size_t)n * cin * side * side, ys = (size_t)n * cout * side * side;
            float *x = m2p_malloc_array(xs, sizeof(float));
            float *w = m2p_malloc_array((size_t)cout * cin * 9, sizeof(float));
            float *b = m2p_malloc_array((size_t)cout, sizeof(float));
            float *y = m2p_malloc_array(ys, sizeof(float));
            float *ws1 = m2p_malloc_array(m2p_nn_conv2d_workspace(cin, side, side, 3, 1, 1), sizeof(float));
            float *ws2 = m2p_malloc_array(m2p_nn_conv3x3_workspace(cin, cout, side, side), sizeof(float));
            if (x == NULL || w == NULL || b == NULL || y == NULL || ws1 == NULL || ws2 == NULL) {
                return 1;
            }
            fill(x, xs, 3, 1.0f);
            fill(w, (size_t)cout * cin * 9, 4, 0.02f);
            fill(b, (size_t)cout, 5, 0.1f);
            double macs = (double)n * cout * cin * 9 * side * side;
            int reps = (int)(2e9 / macs);
            reps = reps < 1 ? 1 : (reps > 50 ? 50 : reps);
            double ti = 1e30, tw = 1e30;
            for (int r = 0; r < rounds; r++) {
                double c0 = cpu_now();
                for (int k = 0; k < reps; k++) {
                    m2p_nn_conv2d(x, n, cin, side, side, w, b, cout, 3, 1, 1, y, ws1);
                }
                double c1 = cpu_now();
                for (int k = 0; k < reps; k++) {
                    m2p_nn_conv3x3(x, n, cin, side, side, w, b, cout, y, ws2);
                }
                double c2 = cpu_now();
                ti = (c1 - c0) / reps < ti ? (c1 - c0) / reps : ti;
                tw = (c2 - c1) / reps < tw ? (c2 - c1) / reps : tw;
            }
            printf("| %d | %d | %dx%d | %d | %.4f s | %.4f s | %.2f |\n", cin, cout, side, side, n, ti, tw, tw / ti);
            fflush(stdout);
            m2p_free(x);
            m2p_free(w);
            m2p_free(b);
            m2p_free(y);
            m2p_free(ws1);
            m2p_free(ws2);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ OpenBLAS probe */

/* For C = A·B (row-major, NN as the convs, NT as the linears): compute the
 * product for one block alone and as part of a 4× larger one; count elements
 * whose bits differ. */
static int run_probe(void) {
    static const int shapes[][3] = {/* rows (linear: tokens of one image; conv: cout), cols, depth */
                                    {64, 1280, 1280}, {256, 1280, 1280}, {1024, 640, 640},  {4096, 320, 320},
                                    {77, 320, 768},   {1, 1280, 1280},   {1280, 64, 11520}, {640, 1024, 5760},
                                    {320, 4096, 2880}};
    char la[128];
    loadavg(la, sizeof la);
    printf("OpenBLAS %s: does an element keep its bits when its product grows 4x? (%d threads, load %s)\n\n",
           OPENBLAS_VERSION, m2p_nn_threads(), la);
    printf("| product | shape of one image | differing elements, rows x4 (linear: 4 images' tokens) | differing, "
           "columns x4 (conv: 4 images' pixels side by side) |\n|---|---|---:|---:|\n");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int m = shapes[s][0], nn = shapes[s][1], k = shapes[s][2];
        float *a = m2p_malloc_array((size_t)NB * m * k, sizeof(float));
        float *b = m2p_malloc_array((size_t)NB * nn * k, sizeof(float));
        float *c1 = m2p_malloc_array((size_t)m * nn, sizeof(float));
        float *c4 = m2p_malloc_array((size_t)NB * m * nn, sizeof(float));
        float *b1 = m2p_malloc_array((size_t)k * nn, sizeof(float));
        if (a == NULL || b == NULL || c1 == NULL || c4 == NULL || b1 == NULL) {
            return 1;
        }
        fill(a, (size_t)NB * m * k, 6, 1.0f);
        fill(b, (size_t)NB * nn * k, 7, 0.05f);
        /* Rows ×4 (NT, the linear: y[rows, out] = x[rows, in]·wᵀ with w = b as [nn, k]). */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, nn, k, 1.0f, a, k, b, k, 0.0f, c1, nn);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, NB * m, nn, k, 1.0f, a, k, b, k, 0.0f, c4, nn);
        size_t dr = 0;
        for (size_t i = 0; i < (size_t)m * nn; i++) {
            dr += memcmp(&c1[i], &c4[i], sizeof(float)) != 0;
        }
        /* Columns ×4 (NN, the conv: y[cout, cols] = w[cout, k]·col[k, cols]; image 0's columns first). */
        for (int r = 0; r < k; r++) {
            memcpy(b1 + (size_t)r * nn, b + (size_t)r * NB * nn, sizeof(float) * (size_t)nn);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, nn, k, 1.0f, a, k, b1, nn, 0.0f, c1, nn);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, NB * nn, k, 1.0f, a, k, b, NB * nn, 0.0f, c4,
                    NB * nn);
        size_t dc = 0;
        for (int r = 0; r < m; r++) {
            for (int j = 0; j < nn; j++) {
                dc += memcmp(&c1[(size_t)r * nn + j], &c4[(size_t)r * NB * nn + j], sizeof(float)) != 0;
            }
        }
        printf("| sgemm | %d x %d x %d | %zu of %zu | %zu of %zu |\n", m, nn, k, dr, (size_t)m * nn, dc,
               (size_t)m * nn);
        m2p_free(a);
        m2p_free(b);
        m2p_free(c1);
        m2p_free(c4);
        m2p_free(b1);
    }
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: bench_batch [--model DIR] [--size PX] [--rounds R] [--configs before,after,blin] [--json]\n"
                    "       bench_batch --image [--model DIR] [--size PX] [--rounds R] [--json]\n"
                    "       bench_batch --convs [--rounds R]\n"
                    "       bench_batch --probe\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *model = "/tmp/m2p-full-lcm";
    const char *configs = "before,after,blin";
    int size = 256, rounds = 3;
    bool json = false, image = false, convs = false, probe = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
            model = argv[++i];
        } else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
            size = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            rounds = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--configs") == 0 && i + 1 < argc) {
            configs = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--image") == 0) {
            image = true;
        } else if (strcmp(argv[i], "--convs") == 0) {
            convs = true;
        } else if (strcmp(argv[i], "--probe") == 0) {
            probe = true;
        } else {
            usage();
        }
    }
    if (size < 64 || size > 2048 || size % 64 != 0 || rounds < 1 || rounds > MAX_ROUNDS) {
        usage();
    }
    if (probe) {
        return run_probe();
    }
    if (convs) {
        return run_convs(rounds);
    }
    if (image) {
        return run_image(model, size, rounds, json);
    }
    return run_unet(model, size, rounds, configs, json);
}
