/*
 * bench/bench_lcm.c — the LCM engine against diffusers on PyTorch (CPU,
 * fp32), same weights, same inputs, measured side by side in one run.
 *
 *   build/bench/bench_lcm [--model /tmp/m2p-full-lcm] [--python tools/refvenv/bin/python]
 *                         [--ref /tmp/m2p-bench-lcm-ref] [--reuse-reference] [--quick] [--size 512]
 *                         [--once]   (one UNet step on the last reference inputs, for profilers)
 *
 * 1. Runs tools/nn/bench_lcm_reference.py first (a child process, argv, no
 *    shell; --reuse-reference skips it and reads its last files): PyTorch
 *    times one UNet step at batch 1 and 4, the whole 4-step pipeline for 1
 *    and 4 images, and writes its inputs and outputs.
 * 2. Then (the reference has exited, so the two models never share memory)
 *    runs the C engine on the same inputs: the UNet step at batch 1 (twice,
 *    best kept) and 4, the largest difference from PyTorch's outputs, the
 *    whole pipeline for 1 and 4 images (--quick skips the pipelines).
 * 3. Prints both columns with the ratio C / PyTorch (< 1: C is faster), the
 *    multiply-adds of a step and the rate reached against the sgemm peak.
 *
 * Makes the full-size model first with:
 *   tools/refvenv/bin/python tools/nn/make_fixtures.py full --out /tmp/m2p-full-lcm
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/fs.h"
#include "diffusion/model.h"
#include "diffusion/safetensors.h"
#include "diffusion/sd_pipeline.h"
#include "diffusion/unet.h"

#define SGEMM_PEAK_GFLOPS 207.0 /* OpenBLAS cblas_sgemm n=2048, 2 threads, this machine (lcm-engine notes) */

typedef struct opts {
    const char *model;
    const char *python;
    const char *ref;
    bool reuse;
    bool quick;
    bool once; /* one UNet step at batch 1, then exit (for profilers) */
    int size;
} opts;

static void usage(void) {
    fprintf(stderr, "usage: bench_lcm [--model DIR] [--python PATH] [--ref PREFIX] [--reuse-reference] [--quick] "
                    "[--size PIXELS] [--once]\n");
    exit(2);
}

static int run_reference(const opts *o) {
    char script[M2P_PATH_MAX];
    const char *src = getenv("MUS2PIC_SOURCE_DIR");
    (void)snprintf(script, sizeof script, "%s/tools/nn/bench_lcm_reference.py", src != NULL ? src : ".");
    char size[16];
    (void)snprintf(size, sizeof size, "%d", o->size);
    char *argv[12];
    int a = 0;
    argv[a++] = (char *)o->python;
    argv[a++] = script;
    argv[a++] = "--model";
    argv[a++] = (char *)o->model;
    argv[a++] = "--out";
    argv[a++] = (char *)o->ref;
    argv[a++] = "--size";
    argv[a++] = size;
    if (o->quick) {
        argv[a++] = "--quick";
    }
    argv[a] = NULL;
    fprintf(stderr, "bench_lcm: running the PyTorch reference: %s %s\n", o->python, script);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        execv(o->python, argv);
        perror("execv");
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            perror("waitpid");
            return -1;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench_lcm: the reference failed (status %d)\n", status);
        return -1;
    }
    return 0;
}

static float *load(const m2p_nn_st *st, const char *name, size_t *n) {
    const m2p_nn_st_tensor *t = m2p_nn_st_find(st, name);
    if (t == NULL) {
        fprintf(stderr, "bench_lcm: reference tensor %s missing\n", name);
        exit(1);
    }
    float *d = m2p_malloc_array(t->numel, sizeof(float));
    m2p_error err;
    if (d == NULL || m2p_nn_st_read_f32(t, d, t->numel, &err) != M2P_OK) {
        fprintf(stderr, "bench_lcm: cannot read %s\n", name);
        exit(1);
    }
    if (n != NULL) {
        *n = t->numel;
    }
    return d;
}

static double ref_num(json_t *root, const char *key) {
    json_t *v = json_object_get(root, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static void diff(const float *a, const float *b, size_t n, double *max_abs, double *max_ref) {
    *max_abs = 0;
    *max_ref = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        *max_abs = d > *max_abs ? d : *max_abs;
        *max_ref = fabs((double)b[i]) > *max_ref ? fabs((double)b[i]) : *max_ref;
    }
}

static void row(const char *what, double c, double ref, const char *unit) {
    if (isnan(ref)) {
        printf("| %-44s | %10.3f %-4s | %10s      | %8s |\n", what, c, unit, "-", "-");
    } else {
        printf("| %-44s | %10.3f %-4s | %10.3f %-4s | %8.2f |\n", what, c, unit, ref, unit, c / ref);
    }
}

int main(int argc, char **argv) {
    opts o = {"/tmp/m2p-full-lcm", NULL, "/tmp/m2p-bench-lcm-ref", false, false, false, 512};
    char python[M2P_PATH_MAX];
    const char *src = getenv("MUS2PIC_SOURCE_DIR");
    (void)snprintf(python, sizeof python, "%s/tools/refvenv/bin/python", src != NULL ? src : ".");
    o.python = python;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
            o.model = argv[++i];
        } else if (strcmp(argv[i], "--python") == 0 && i + 1 < argc) {
            o.python = argv[++i];
        } else if (strcmp(argv[i], "--ref") == 0 && i + 1 < argc) {
            o.ref = argv[++i];
        } else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
            o.size = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--reuse-reference") == 0) {
            o.reuse = true;
        } else if (strcmp(argv[i], "--quick") == 0) {
            o.quick = true;
        } else if (strcmp(argv[i], "--once") == 0) {
            o.once = true;
            o.reuse = true;
        } else {
            usage();
        }
    }
    if (o.size < 64 || o.size > 2048 || o.size % 64 != 0) {
        usage();
    }
    if (!o.reuse && run_reference(&o) != 0) {
        return 1;
    }
    char path[M2P_PATH_MAX + 32];
    (void)snprintf(path, sizeof path, "%s.json", o.ref);
    json_error_t jerr;
    json_t *ref = json_load_file(path, 0, &jerr);
    if (ref == NULL) {
        fprintf(stderr, "bench_lcm: cannot read %s: %s\n", path, jerr.text);
        return 1;
    }
    (void)snprintf(path, sizeof path, "%s.safetensors", o.ref);
    m2p_nn_st *st = NULL;
    m2p_error err;
    if (m2p_nn_st_open(path, &st, &err) != M2P_OK) {
        fprintf(stderr, "bench_lcm: %s\n", err.detail);
        return 1;
    }
    size_t n1 = 0, n4 = 0;
    float *lat = load(st, "latents", &n1);
    float *lat4 = load(st, "latents4", &n4);
    float *ctx = load(st, "context", NULL);
    float *cond = load(st, "cond", NULL);
    float *want = load(st, "out", NULL);
    float *want4 = load(st, "out4", NULL);
    float *out = m2p_malloc_array(n1, sizeof(float));
    float *out4 = m2p_malloc_array(n4, sizeof(float));
    int side = o.size / 8;

    /* --- UNet step --------------------------------------------------------------------------- */
    double t0 = m2p_now_monotonic();
    m2p_nn_model *model = NULL;
    m2p_unet *unet = NULL;
    if (m2p_nn_model_open(o.model, M2P_NN_LOAD_UNET, &model, &err) != M2P_OK ||
        m2p_unet_create_from_model(model, &unet, &err) != M2P_OK) {
        fprintf(stderr, "bench_lcm: %s\n", err.detail);
        return 1;
    }
    double load_unet = m2p_now_monotonic() - t0;
    float ts1[1] = {999.0f};
    float ts4[4] = {999.0f, 999.0f, 999.0f, 999.0f};
    int cond_dim = m2p_unet_get_config(unet)->time_cond_proj_dim;
    float *cond4 = m2p_malloc_array(4 * (size_t)(cond_dim > 0 ? cond_dim : 1), sizeof(float));
    for (int i = 0; i < 4 && cond_dim > 0; i++) {
        memcpy(cond4 + (size_t)i * (size_t)cond_dim, cond, (size_t)cond_dim * sizeof(float));
    }
    m2p_unet_input in1 = {lat, 1, side, side, ts1, cond_dim > 0 ? cond : NULL, ctx, 1, 77};
    m2p_unet_input in4 = {lat4, 4, side, side, ts4, cond_dim > 0 ? cond4 : NULL, ctx, 1, 77};
    double step1 = INFINITY, step1_first = 0;
    for (int r = 0; r < 2; r++) {
        double t1 = m2p_now_monotonic();
        if (m2p_unet_forward(unet, &in1, out, &err) != M2P_OK) {
            fprintf(stderr, "bench_lcm: %s\n", err.detail);
            return 1;
        }
        double dt = m2p_now_monotonic() - t1;
        if (r == 0) {
            step1_first = dt;
        }
        step1 = dt < step1 ? dt : step1;
        fprintf(stderr, "C: UNet step batch 1: %.2f s\n", dt);
        if (o.once) {
            double d, m;
            diff(out, want, n1, &d, &m);
            fprintf(stderr, "C: largest |C - torch| %.3g (max |out| %.3g)\n", d, m);
            return 0;
        }
    }
    double t1 = m2p_now_monotonic();
    if (m2p_unet_forward(unet, &in4, out4, &err) != M2P_OK) {
        fprintf(stderr, "bench_lcm: %s\n", err.detail);
        return 1;
    }
    double step4 = m2p_now_monotonic() - t1;
    fprintf(stderr, "C: UNet step batch 4: %.2f s\n", step4);
    double d1, r1, d4, r4;
    diff(out, want, n1, &d1, &r1);
    diff(out4, want4, n4, &d4, &r4);
    double macs = m2p_unet_macs(unet, 1, side, side, 77);
    size_t params = m2p_unet_param_count(unet);
    m2p_unet_free(unet);
    m2p_nn_model_free(model);

    /* --- whole pipeline ---------------------------------------------------------------------- */
    double image1 = NAN, batch4 = NAN, sd_load = NAN, sd_warm = NAN;
    if (!o.quick) {
        m2p_sd *sd = NULL;
        if (m2p_sd_open(o.model, NULL, &sd, &err) != M2P_OK) {
            fprintf(stderr, "bench_lcm: %s\n", err.detail);
            return 1;
        }
        m2p_sd_stats stats;
        m2p_sd_get_stats(sd, &stats);
        sd_load = stats.load_s;
        sd_warm = stats.warmup_s;
        const uint32_t seeds[4] = {1, 2, 3, 4};
        uint8_t *rgb = m2p_malloc((size_t)4 * (size_t)o.size * (size_t)o.size * 3);
        for (int k = 0; k < 2; k++) {
            int n = k == 0 ? 1 : 4;
            m2p_sd_request req = {"a neon city at night, synthwave poster", NULL, n, seeds, o.size, o.size, 4, 8.0,
                                  NULL, NULL};
            double t2 = m2p_now_monotonic();
            if (m2p_sd_generate(sd, &req, NULL, rgb, &err) != M2P_OK) {
                fprintf(stderr, "bench_lcm: %s\n", err.detail);
                return 1;
            }
            double dt = m2p_now_monotonic() - t2;
            fprintf(stderr, "C: pipeline %d image(s): %.2f s\n", n, dt);
            if (k == 0) {
                image1 = dt;
            } else {
                batch4 = dt;
            }
        }
        m2p_free(rgb);
        m2p_sd_free(sd);
    }
    struct rusage ru;
    (void)getrusage(RUSAGE_SELF, &ru);
    double peak_c = (double)ru.ru_maxrss * 1024.0;

    double gflop = 2.0 * macs / 1e9;
    printf("\nLCM engine vs diffusers %s (PyTorch CPU fp32, %d threads), %dx%d, model %s (%.0f M UNet parameters)\n\n",
           json_string_value(json_object_get(ref, "torch")) ? json_string_value(json_object_get(ref, "torch")) : "?",
           (int)ref_num(ref, "threads"), o.size, o.size, o.model, params / 1e6);
    printf("| %-44s | %15s | %15s | %8s |\n", "measure", "mus2pic (C)", "diffusers", "C/torch");
    printf("|%s|%s|%s|%s|\n", "----------------------------------------------", "-----------------",
           "-----------------", "----------");
    row("load UNet weights (C: map+bind; torch: pipe)", load_unet, ref_num(ref, "load_s"), "s");
    row("UNet step, batch 1 (best of 2)", step1, ref_num(ref, "step1_s"), "s");
    row("UNet step, batch 1, first call", step1_first, ref_num(ref, "step1_first_s"), "s");
    row("UNet step, batch 4", step4, ref_num(ref, "step4_s"), "s");
    row("UNet step, batch 4, per image", step4 / 4, ref_num(ref, "step4_s") / 4, "s");
    if (!o.quick) {
        row("image, 4 steps + text + decode, batch 1", image1, ref_num(ref, "image1_s"), "s");
        row("4 images in one batched call", batch4, ref_num(ref, "batch4_s"), "s");
        row("images/s batched (4 in one call)", 4 / batch4, 4 / ref_num(ref, "batch4_s"), "1/s");
        row("images/s as 4 single calls (4 x batch 1)", 1 / image1, 1 / ref_num(ref, "image1_s"), "1/s");
    }
    row("peak resident memory", peak_c / 1e9, ref_num(ref, "peak_rss") / 1e9, "GB");
    printf("\nC engine load for the pipeline: %.2f s open+bind, %.2f s warm-up\n", sd_load, sd_warm);
    printf("UNet step: %.1f GMACs = %.1f GFLOP at %dx%d latents; C reaches %.1f GFLOP/s = %.0f%% of the sgemm peak "
           "(%.0f GFLOP/s, 2 threads); batch 4: %.1f GFLOP/s\n",
           macs / 1e9, gflop, side, side, gflop / step1, 100.0 * gflop / step1 / SGEMM_PEAK_GFLOPS,
           SGEMM_PEAK_GFLOPS, 4 * gflop / step4);
    printf("largest |C - torch| of the UNet output: batch 1 %.3g (max |out| %.3g), batch 4 %.3g (max |out| %.3g)\n",
           d1, r1, d4, r4);
    m2p_free(lat);
    m2p_free(lat4);
    m2p_free(ctx);
    m2p_free(cond);
    m2p_free(cond4);
    m2p_free(want);
    m2p_free(want4);
    m2p_free(out);
    m2p_free(out4);
    m2p_nn_st_close(st);
    json_decref(ref);
    return 0;
}
