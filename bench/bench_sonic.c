/*
 * bench/bench_sonic.c — how fast the sonic renderer paints, and the sample posters.
 *
 *   bench_sonic [--runs N]          ms per poster at 512², 1024², 2048² (4 posters
 *                                   per request), one thread vs all, median of N
 *                                   runs (default 5), with the ratios; then every
 *                                   style at 1024²; then the headline: four
 *                                   1024² posters, wall time.
 *   bench_sonic --samples DIR       writes the review posters (512², with
 *                                   typography and metadata) into DIR.
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "../tests/unit/render/sonic_fixtures.h"
#include "core/fs.h"
#include "render/backend.h"
#include "render/png.h"
#include "render/sonic_int.h"

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

static m2p_prompt g_prompt_template = {"a poster of the song", "text, watermark", "abstract", NULL, 0, 12, false};

/* Median wall time (ms) of rendering n posters of style at size with threads;
 * *cpu_ms gets the median CPU time of the process over the same runs (the
 * honest figure when other programs share the cores). */
static double time_render(const m2p_features *f, const char *style, int size, int n, int threads, int runs,
                          double *cpu_ms) {
    m2p_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.threads = threads;
    m2p_render_backend be;
    if (m2p_sonic_backend_create(&cfg, &be, NULL) != M2P_OK) {
        return -1;
    }
    uint32_t seeds[16];
    for (int i = 0; i < 16; i++) {
        seeds[i] = 1000u + (uint32_t)i;
    }
    m2p_prompt prompt = g_prompt_template;
    m2p_render_request req = {&prompt, f, style, n, size, size, seeds, 0, 0, "Night Drive", "The Examples", false, -1};
    double t[64];
    double cpu[64];
    runs = runs > 64 ? 64 : runs;
    for (int r = 0; r < runs; r++) {
        m2p_image *imgs[16];
        double t0 = m2p_now_monotonic();
        double c0 = cpu_now();
        m2p_code rc = be.render(be.self, &req, NULL, imgs, NULL);
        t[r] = (m2p_now_monotonic() - t0) * 1000.0;
        cpu[r] = (cpu_now() - c0) * 1000.0;
        if (rc != M2P_OK) {
            fprintf(stderr, "render failed: %s\n", m2p_errname(rc));
            be.destroy(be.self);
            return -1;
        }
        for (int i = 0; i < n; i++) {
            m2p_image_free(imgs[i]);
        }
    }
    be.destroy(be.self);
    qsort(t, (size_t)runs, sizeof t[0], cmp_double);
    qsort(cpu, (size_t)runs, sizeof cpu[0], cmp_double);
    if (cpu_ms != NULL) {
        *cpu_ms = cpu[runs / 2];
    }
    return t[runs / 2];
}

/* Renders req (one image) and writes it to path with its metadata; 0 on success. */
static int write_one(const m2p_render_backend *be, const m2p_render_request *req, const char *path) {
    m2p_image *img = NULL;
    m2p_png_meta *meta = NULL;
    m2p_error err;
    int bad = 0;
    if (be->render(be->self, req, NULL, &img, &err) != M2P_OK || m2p_png_meta_create(&meta) != M2P_OK ||
        m2p_png_meta_add_render(meta, req, 0, "sonic", "procedural", "bench_sonic fixture", &err) != M2P_OK ||
        m2p_png_write(path, img, meta, &err) != M2P_OK) {
        fprintf(stderr, "%s: %s\n", path, err.detail);
        bad = 1;
    }
    m2p_png_meta_free(meta);
    m2p_image_free(img);
    return bad;
}

static int write_samples(const char *dir) {
    if (m2p_fs_mkdirs(dir, NULL) != M2P_OK) {
        return 1;
    }
    static const char *const fix_names[3] = {"calm-major", "electro-minor", "orchestral"};
    static const char *const titles[3] = {"Slow Morning Light", "Night Drive", "Symphony of the Tides"};
    static const char *const artists[3] = {"Ada & the Lanterns", "NEON ARCADE", "Orquesta Océano"};
    m2p_features *fx[3];
    for (int k = 0; k < 3; k++) {
        fx[k] = fix_make((fix_kind)k);
        if (fx[k] == NULL) {
            return 1;
        }
    }
    m2p_render_backend be;
    if (m2p_sonic_backend_create(NULL, &be, NULL) != M2P_OK) {
        return 1;
    }
    int fails = 0;
    /* Every style once, with typography, the three songs in turn. */
    for (int si = 0; sn_style_names[si] != NULL; si++) {
        int k = (si + si / 3) % 3;
        uint32_t seed = 7u + (uint32_t)si;
        m2p_prompt prompt = g_prompt_template;
        m2p_render_request req = {&prompt, fx[k], sn_style_names[si], 1, 512, 512, &seed, 0, 0,
                                  titles[k], artists[k], true, -1};
        char path[1200];
        (void)snprintf(path, sizeof path, "%s/%s-%s.png", dir, sn_style_names[si], fix_names[k]);
        fails += write_one(&be, &req, path);
    }
    /* Seeds: three variations of one song and style. */
    for (uint32_t sd = 1; sd <= 3; sd++) {
        m2p_prompt prompt = g_prompt_template;
        m2p_render_request req = {&prompt, fx[0], "abstract", 1, 512, 512, &sd, 0, 0, NULL, NULL, false, -1};
        char path[1200];
        (void)snprintf(path, sizeof path, "%s/seed%u-abstract-calm-major.png", dir, sd);
        fails += write_one(&be, &req, path);
    }
    /* A storyboard: one poster per section of the electronic fixture. */
    for (size_t sec = 0; sec < fx[1]->n_sections; sec++) {
        uint32_t seed = 42u;
        m2p_prompt prompt = g_prompt_template;
        m2p_render_request req = {&prompt, fx[1], "album-cover", 1, 512, 512, &seed, 0, 0, NULL, NULL, false, (int)sec};
        char path[1200];
        (void)snprintf(path, sizeof path, "%s/storyboard-section%zu.png", dir, sec);
        fails += write_one(&be, &req, path);
    }
    be.destroy(be.self);
    for (int k = 0; k < 3; k++) {
        fix_free(fx[k]);
    }
    printf("samples written to %s (%d failures)\n", dir, fails);
    return fails != 0;
}

int main(int argc, char **argv) {
    int runs = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--samples") == 0 && i + 1 < argc) {
            return write_samples(argv[i + 1]);
        }
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = (int)strtol(argv[i + 1], NULL, 10);
            runs = runs < 1 ? 1 : runs;
            i++;
        }
    }
    m2p_features *f = fix_make(FIX_ELECTRO);
    if (f == NULL) {
        return 1;
    }
    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    double load[3] = {0, 0, 0};
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf != NULL) {
        if (fscanf(lf, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) {
            load[0] = -1;
        }
        fclose(lf);
    }
    printf("sonic renderer, %d cores (load average %.1f), median of %d runs, 4 posters per request (abstract)\n",
           cores, load[0], runs);
    printf("%-10s %12s %12s %12s %8s\n", "size", "1 thr wall", "all wall", "cpu/poster", "speedup");
    static const int sizes[3] = {512, 1024, 2048};
    for (int s = 0; s < 3; s++) {
        double c1 = 0;
        double c2 = 0;
        double one = time_render(f, "abstract", sizes[s], 4, 1, runs, &c1) / 4.0;
        double all = time_render(f, "abstract", sizes[s], 4, cores, runs, &c2) / 4.0;
        printf("%4dx%-5d %9.1f ms %9.1f ms %9.1f ms %7.2fx\n", sizes[s], sizes[s], one, all, c1 / 4.0, one / all);
    }
    printf("\nper style, 1024x1024, 4 posters, all cores: wall ms per poster, cpu ms per poster (medians)\n");
    double worst = 0.0;
    for (int i = 0; sn_style_names[i] != NULL; i++) {
        double cpu = 0;
        double ms = time_render(f, sn_style_names[i], 1024, 4, cores, runs, &cpu) / 4.0;
        worst = cpu / 4.0 > worst ? cpu / 4.0 : worst;
        printf("  %-14s %7.1f %7.1f\n", sn_style_names[i], ms, cpu / 4.0);
    }
    double cpu4 = 0;
    double total = time_render(f, "abstract", 1024, 4, cores, runs, &cpu4);
    printf("\nheadline: four 1024x1024 posters (abstract): %.0f ms wall, %.0f ms cpu (target <= 500 ms wall on %d "
           "idle cores; cpu/%d = %.0f ms); slowest style %.0f ms cpu per poster\n",
           total, cpu4, cores, cores, cpu4 / cores, worst);
    fix_free(f);
    return 0;
}
