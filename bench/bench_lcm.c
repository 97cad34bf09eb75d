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
 *    times the UNet step at batch 1 (twice) and 4, the text encoder and one
 *    VAE decode, wall and CPU seconds, and writes its inputs and outputs.
 * 2. Then (the reference has exited, so the two never share memory) the C
 *    engine runs the same parts on the same inputs, and the largest
 *    differences from PyTorch's outputs are computed (UNet, VAE).
 * 3. Prints both columns with the ratio C / PyTorch (< 1: C is faster): per
 *    step, per image (text + 4 steps + decode, summed from the parts: whole
 *    512² pipelines take too long on a shared 2-core machine), per batch of 4,
 *    the multiply-adds of a step and the rate reached against the sgemm peak.
 *    --quick skips the VAE.
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
#include "diffusion/clip_text.h"
#include "diffusion/model.h"
#include "diffusion/safetensors.h"
#include "diffusion/unet.h"
#include "diffusion/vae.h"
#include "prompt/clip_tokenizer.h"

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

static double cpu_now(void) {
    struct rusage ru;
    (void)getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
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
        printf("| %-52s | %10.3f %-4s | %10s      | %8s |\n", what, c, unit, "-", "-");
    } else {
        printf("| %-52s | %10.3f %-4s | %10.3f %-4s | %8.2f |\n", what, c, unit, ref, unit, c / ref);
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

    /* --- load: the three networks of the pipeline ---------------------------------------------- */
    double t0 = m2p_now_monotonic();
    m2p_nn_model *model = NULL;
    m2p_unet *unet = NULL;
    m2p_nn_vae *vae = NULL;
    m2p_nn_clip *clip = NULL;
    m2p_clip_tokenizer *tok = NULL;
    char vocab[M2P_PATH_MAX], merges[M2P_PATH_MAX];
    if (m2p_nn_model_open(o.model, M2P_NN_LOAD_ALL, &model, &err) != M2P_OK ||
        m2p_unet_create_from_model(model, &unet, &err) != M2P_OK || m2p_nn_vae_create(model, &vae, &err) != M2P_OK ||
        m2p_nn_clip_create(model, &clip, &err) != M2P_OK ||
        m2p_clip_tokenizer_load(m2p_nn_model_path(model, "tokenizer/vocab.json", vocab, sizeof vocab),
                                m2p_nn_model_path(model, "tokenizer/merges.txt", merges, sizeof merges), &tok,
                                &err) != M2P_OK) {
        fprintf(stderr, "bench_lcm: %s\n", err.detail);
        return 1;
    }
    double load_c = m2p_now_monotonic() - t0;

    /* --- UNet step ----------------------------------------------------------------------------- */
    float ts1[1] = {999.0f};
    float ts4[4] = {999.0f, 999.0f, 999.0f, 999.0f};
    int cond_dim = m2p_unet_get_config(unet)->time_cond_proj_dim;
    float *cond4 = m2p_malloc_array(4 * (size_t)(cond_dim > 0 ? cond_dim : 1), sizeof(float));
    for (int i = 0; i < 4 && cond_dim > 0; i++) {
        memcpy(cond4 + (size_t)i * (size_t)cond_dim, cond, (size_t)cond_dim * sizeof(float));
    }
    m2p_unet_input in1 = {lat, 1, side, side, ts1, cond_dim > 0 ? cond : NULL, ctx, 1, 77};
    m2p_unet_input in4 = {lat4, 4, side, side, ts4, cond_dim > 0 ? cond4 : NULL, ctx, 1, 77};
    double step1 = 0, step1_first = 0, step1_cpu = 0;
    for (int r = 0; r < 2; r++) {
        double w0 = m2p_now_monotonic(), c0 = cpu_now();
        if (m2p_unet_forward(unet, &in1, out, &err) != M2P_OK) {
            fprintf(stderr, "bench_lcm: %s\n", err.detail);
            return 1;
        }
        double dt = m2p_now_monotonic() - w0;
        if (r == 0) {
            step1_first = dt;
        } else {
            step1 = dt;
            step1_cpu = cpu_now() - c0;
        }
        fprintf(stderr, "C: UNet step batch 1: %.2f s\n", dt);
        if (o.once) {
            double d, m;
            diff(out, want, n1, &d, &m);
            fprintf(stderr, "C: largest |C - torch| %.3g (max |out| %.3g)\n", d, m);
            return 0;
        }
    }
    double w0 = m2p_now_monotonic(), c0 = cpu_now();
    if (m2p_unet_forward(unet, &in4, out4, &err) != M2P_OK) {
        fprintf(stderr, "bench_lcm: %s\n", err.detail);
        return 1;
    }
    double step4 = m2p_now_monotonic() - w0;
    double step4_cpu = cpu_now() - c0;
    fprintf(stderr, "C: UNet step batch 4: %.2f s\n", step4);
    double d1, r1, d4, r4;
    diff(out, want, n1, &d1, &r1);
    diff(out4, want4, n4, &d4, &r4);
    double macs = m2p_unet_macs(unet, 1, side, side, 77);
    size_t params = m2p_unet_param_count(unet);

    /* --- text encoder and VAE decoder ---------------------------------------------------------- */
    int32_t ids[77];
    float *emb = m2p_malloc_array(77 * 768 * 2, sizeof(float));
    w0 = m2p_now_monotonic();
    c0 = cpu_now();
    if (m2p_clip_tokenize(tok, "a neon city at night, synthwave poster", ids, 77, NULL, &err) != M2P_OK ||
        m2p_nn_clip_encode(clip, ids, 1, 77, emb, &err) != M2P_OK) {
        fprintf(stderr, "bench_lcm: %s\n", err.detail);
        return 1;
    }
    double text = m2p_now_monotonic() - w0;
    double text_cpu = cpu_now() - c0;
    double vae1 = NAN, vae1_cpu = NAN, dv = NAN, rv = NAN;
    if (!o.quick) {
        size_t nv = 0;
        float *want_v = load(st, "vae_out", &nv);
        float *img = m2p_malloc_array(nv, sizeof(float));
        w0 = m2p_now_monotonic();
        c0 = cpu_now();
        if (m2p_nn_vae_decode(vae, lat, 1, side, side, img, NULL, &err) != M2P_OK) {
            fprintf(stderr, "bench_lcm: %s\n", err.detail);
            return 1;
        }
        vae1 = m2p_now_monotonic() - w0;
        vae1_cpu = cpu_now() - c0;
        fprintf(stderr, "C: VAE decode 1 image: %.2f s\n", vae1);
        diff(img, want_v, nv, &dv, &rv);
        m2p_free(img);
        m2p_free(want_v);
    }
    m2p_free(emb);
    m2p_clip_tokenizer_free(tok);
    m2p_nn_clip_free(clip);
    m2p_nn_vae_free(vae);
    m2p_unet_free(unet);
    m2p_nn_model_free(model);
    struct rusage ru;
    (void)getrusage(RUSAGE_SELF, &ru);
    double peak_c = (double)ru.ru_maxrss * 1024.0;

    /* --- report -------------------------------------------------------------------------------- */
    double gflop = 2.0 * macs / 1e9;
    const char *tv = json_string_value(json_object_get(ref, "torch"));
    printf("\nLCM engine vs diffusers (torch %s, CPU fp32, %d threads), %dx%d, model %s (%.0f M UNet parameters)\n\n",
           tv != NULL ? tv : "?", (int)ref_num(ref, "threads"), o.size, o.size, o.model, params / 1e6);
    printf("| %-52s | %15s | %15s | %8s |\n", "measure", "mus2pic (C)", "diffusers", "C/torch");
    printf("|%s|%s|%s|%s|\n", "------------------------------------------------------", "-----------------",
           "-----------------", "----------");
    row("load (C: map + bind all; torch: from_pretrained)", load_c, ref_num(ref, "load_s"), "s");
    row("UNet step, batch 1, first call", step1_first, ref_num(ref, "step1_first_s"), "s");
    row("UNet step, batch 1 (second call)", step1, ref_num(ref, "step1_s"), "s");
    row("  CPU seconds of that step (all threads)", step1_cpu, ref_num(ref, "step1_cpu_s"), "s");
    row("UNet step, batch 4", step4, ref_num(ref, "step4_s"), "s");
    row("  CPU seconds of that step (all threads)", step4_cpu, ref_num(ref, "step4_cpu_s"), "s");
    row("UNet step, batch 4, per image", step4 / 4, ref_num(ref, "step4_s") / 4, "s");
    row("text encoder (1 prompt)", text, ref_num(ref, "text_s"), "s");
    row("  CPU seconds", text_cpu, ref_num(ref, "text_cpu_s"), "s");
    if (!o.quick) {
        double tr_text = ref_num(ref, "text_s"), tr1 = ref_num(ref, "step1_s"), tr4 = ref_num(ref, "step4_s");
        double tr_v = ref_num(ref, "vae1_s");
        row("VAE decode (1 image)", vae1, tr_v, "s");
        row("  CPU seconds", vae1_cpu, ref_num(ref, "vae1_cpu_s"), "s");
        double img_c = text + 4 * step1 + vae1, img_t = tr_text + 4 * tr1 + tr_v;
        double b4_c = text + 4 * step4 + 4 * vae1, b4_t = tr_text + 4 * tr4 + 4 * tr_v;
        row("image: text + 4 steps + decode (sum of parts)", img_c, img_t, "s");
        row("4 images batched: text + 4 batch-4 steps + 4 decodes", b4_c, b4_t, "s");
        row("images/s, batch of 4", 4 / b4_c, 4 / b4_t, "1/s");
        row("images/s, 4 single runs", 1 / img_c, 1 / img_t, "1/s");
    }
    row("peak resident memory", peak_c / 1e9, ref_num(ref, "peak_rss") / 1e9, "GB");
    printf("\nUNet step: %.1f GMACs = %.1f GFLOP at %dx%d latents; C: %.1f GFLOP/s wall = %.0f%% of the sgemm peak "
           "(%.0f GFLOP/s, 2 threads), %.1f GFLOP per CPU-second; batch 4: %.1f GFLOP/s wall\n",
           macs / 1e9, gflop, side, side, gflop / step1, 100.0 * gflop / step1 / SGEMM_PEAK_GFLOPS,
           SGEMM_PEAK_GFLOPS, gflop / step1_cpu, 4 * gflop / step4);
    printf("largest |C - torch|: UNet batch 1 %.3g (max |out| %.3g), batch 4 %.3g (max |out| %.3g), VAE %.3g (max %.3g)\n",
           d1, r1, d4, r4, dv, rv);
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
