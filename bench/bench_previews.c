/*
 * bench/bench_previews.c — what live previews cost a render: the same LCM
 * generate with and without the per-step preview (a TAESD decode of image 0
 * after every step but the last, then what the job worker does with it:
 * area-average to 256 px and WebP q60, m2p_png_thumb_webp), side by side in
 * one process, interleaved, with the ratios.
 *
 *   bench_previews [--model DIR] [--taesd DIR] [--runs N] [--size PX] [--n IMAGES] [--steps K]
 *     --model  full-size SD folder (default /tmp/m2p-full-lcm; tools/nn/make_fixtures.py full)
 *     --taesd  full-size TAESD folder (default /tmp/m2p-full-taesd; make_fixtures.py taesd-full)
 *     --runs   timed generates of each variant, interleaved off, on, off, ... (default 2)
 *     --size   square image edge (default 512), --n images per generate (default 1),
 *     --steps  denoising steps (default 4)
 *
 * The engine is opened once (warm-up pass included) and one untimed generate
 * runs first. Prints wall and CPU seconds per run, medians, the ratios
 * on/off, the previews' sizes, and the load average before and after.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "diffusion/sd_pipeline.h"
#include "render/png.h"

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

typedef struct sink {
    int frames;
    size_t bytes_min, bytes_max;
    int w, h;
    double encode_s;
} sink;

static void on_preview(void *ctx, int step, int steps, int width, int height, const uint8_t *rgb) {
    (void)step;
    (void)steps;
    sink *s = ctx;
    double t0 = now(CLOCK_MONOTONIC);
    m2p_image frame = {width, height, (size_t)width * 3, (uint8_t *)(uintptr_t)rgb, 0};
    uint8_t *webp = NULL;
    size_t len = 0;
    m2p_error e;
    m2p_error_clear(&e);
    if (m2p_png_thumb_webp(&frame, 256, 60, &webp, &len, &e) != M2P_OK) {
        (void)fprintf(stderr, "encode: %s\n", e.detail);
        return;
    }
    m2p_free(webp);
    s->encode_s += now(CLOCK_MONOTONIC) - t0;
    s->frames++;
    s->bytes_min = s->bytes_min == 0 || len < s->bytes_min ? len : s->bytes_min;
    s->bytes_max = len > s->bytes_max ? len : s->bytes_max;
    s->w = width;
    s->h = height;
}

int main(int argc, char **argv) {
    const char *model = "/tmp/m2p-full-lcm";
    const char *taesd = "/tmp/m2p-full-taesd";
    int runs = 2, size = 512, n = 1, steps = 4;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
            model = argv[++i];
        } else if (strcmp(argv[i], "--taesd") == 0 && i + 1 < argc) {
            taesd = argv[++i];
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
            size = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc) {
            n = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) {
            steps = atoi(argv[++i]);
        } else {
            (void)fprintf(stderr,
                          "usage: bench_previews [--model DIR] [--taesd DIR] [--runs N] [--size PX] [--n IMAGES] "
                          "[--steps K]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > 20 || size < 64 || size > 2048 || n < 1 || n > M2P_SD_MAX_BATCH || steps < 2 || steps > 50) {
        (void)fprintf(stderr, "bench_previews: bad arguments\n");
        return 2;
    }
    print_load("at start");
    m2p_error err;
    m2p_error_clear(&err);
    m2p_sd_options opt;
    m2p_sd_options_default(&opt);
    opt.taesd_dir = taesd;
    m2p_sd *sd = NULL;
    if (m2p_sd_open(model, &opt, &sd, &err) != M2P_OK) {
        (void)fprintf(stderr, "bench_previews: %s: %s\n", m2p_errname(err.code), err.detail);
        return 1;
    }
    uint32_t seeds[M2P_SD_MAX_BATCH];
    for (int i = 0; i < n; i++) {
        seeds[i] = 7u + (uint32_t)i;
    }
    m2p_sd_request req = {"abstract painting, warm, slow, candlelit palette", NULL, n, seeds, size, size, steps, 8.0,
                          NULL, NULL};
    uint8_t *rgb = m2p_malloc((size_t)n * (size_t)size * (size_t)size * 3);
    double wall[2][20], cpu[2][20];
    sink s;
    memset(&s, 0, sizeof s);
    m2p_sd_extra extra = {0, on_preview, &s};
    int rc = 0;
    if (rgb == NULL) {
        rc = 1;
        goto done;
    }
    (void)printf("%d image(s) of %dx%d, %d steps, %d timed runs of each, interleaved off/on\n", n, size, size, steps,
                 runs);
    if (m2p_sd_generate(sd, &req, NULL, rgb, &err) != M2P_OK) { /* untimed: workspace, page faults */
        rc = 1;
        goto done;
    }
    for (int r = 0; r < runs; r++) {
        for (int v = 0; v < 2; v++) {
            double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
            m2p_code c = m2p_sd_generate_ex(sd, &req, v == 1 ? &extra : NULL, NULL, rgb, &err);
            wall[v][r] = now(CLOCK_MONOTONIC) - w0;
            cpu[v][r] = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
            if (c != M2P_OK) {
                rc = 1;
                goto done;
            }
            (void)printf("run %d previews %-3s: wall %.2f s, CPU %.2f s\n", r + 1, v ? "on" : "off", wall[v][r],
                         cpu[v][r]);
            (void)fflush(stdout);
        }
    }
    double mw[2], mc[2];
    for (int v = 0; v < 2; v++) {
        mw[v] = median(wall[v], runs);
        mc[v] = median(cpu[v], runs);
    }
    (void)printf("median previews off: wall %.2f s, CPU %.2f s\n", mw[0], mc[0]);
    (void)printf("median previews on : wall %.2f s, CPU %.2f s\n", mw[1], mc[1]);
    (void)printf("ratio on/off: wall %.3f, CPU %.3f\n", mw[1] / mw[0], mc[1] / mc[0]);
    (void)printf("previews: %d frames (%d per generate), %dx%d RGB in, WebP %zu..%zu bytes, encode %.1f ms each\n",
                 s.frames, s.frames / runs, s.w, s.h, s.bytes_min, s.bytes_max,
                 s.frames > 0 ? 1e3 * s.encode_s / s.frames : 0.0);
done:
    if (rc != 0 && err.code != M2P_OK) {
        (void)fprintf(stderr, "bench_previews: %s: %s\n", m2p_errname(err.code), err.detail);
    }
    print_load("at end");
    m2p_free(rgb);
    m2p_sd_free(sd);
    return rc;
}
