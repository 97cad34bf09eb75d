/*
 * bench/bench_previews.c — what live previews cost a render: the same LCM
 * generate without previews ("off"), with the per-step preview as the engine
 * makes it ("half": a half-size TAESD decode of image 0's pooled latent after
 * every step but the last, m2p_taesd_decode_half), and with the former
 * full-size preview decode ("full": m2p_sd_extra.preview_full), each frame
 * then handled as the job worker does (area-average to ≤ 256 px and WebP q60,
 * m2p_png_thumb_webp); side by side in one process, interleaved, with the
 * ratios.
 *
 *   bench_previews [--model DIR] [--taesd DIR] [--runs N] [--size PX] [--n IMAGES] [--steps K] [--frames]
 *     --model  full-size SD folder (default /tmp/m2p-full-lcm; tools/nn/make_fixtures.py full)
 *     --taesd  full-size TAESD folder (default /tmp/m2p-full-taesd; make_fixtures.py taesd-full)
 *     --runs   timed generates of each variant, interleaved off, half, full, off, ... (default 2)
 *     --size   square image edge (default 512), --n images per generate (default 1),
 *     --steps  denoising steps (default 4)
 *     --frames only the preview frame itself, without the UNet: a smooth latent of size/8
 *              decoded full size then encoded (the former preview) and half size then encoded
 *              (m2p_taesd_decode_half, the engine's preview), alternated `runs` times (TAESD
 *              opened alone; seconds instead of minutes)
 *
 * The engine is opened once (warm-up pass included) and one untimed generate
 * runs first. Prints wall and CPU seconds per run, medians, the ratios
 * to off, the preview CPU per frame ((variant − off) / frames), the frames'
 * sizes, and the load average before and after.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "diffusion/sd_pipeline.h"
#include "diffusion/taesd.h"
#include "diffusion/vae.h"
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

/* --frames: the per-frame cost, full-size decode vs half-size decode, each + RGB8 + WebP. */
static int bench_frames(const char *taesd, int runs, int size) {
    m2p_error err;
    m2p_error_clear(&err);
    m2p_taesd *t = NULL;
    if (m2p_taesd_open(taesd, &t, &err) != M2P_OK) {
        (void)fprintf(stderr, "bench_previews: %s: %s\n", m2p_errname(err.code), err.detail);
        return 1;
    }
    int f = m2p_taesd_factor(t);
    int l = size / f;
    int c = m2p_taesd_latent_channels(t);
    float *z = m2p_malloc_array((size_t)c * (size_t)l * (size_t)l, sizeof(float));
    float *img = m2p_malloc_array((size_t)3 * (size_t)size * (size_t)size, sizeof(float));
    uint8_t *rgb = m2p_malloc((size_t)3 * (size_t)size * (size_t)size);
    int rc = 0;
    if (z == NULL || img == NULL || rgb == NULL || l < 1) {
        rc = 1;
        goto done;
    }
    for (int ch = 0; ch < c; ch++) {
        for (int y = 0; y < l; y++) {
            for (int x = 0; x < l; x++) {
                z[((size_t)ch * (size_t)l + (size_t)y) * (size_t)l + (size_t)x] =
                    2.0f * sinf(0.11f * (float)y + (float)ch) * cosf(0.07f * (float)x - 0.5f * (float)ch);
            }
        }
    }
    (void)printf("frames: %dx%d image (%dx%d latent), %d timed frames of each, interleaved full/half\n", size, size, l,
                 l, runs);
    sink s[2];
    memset(s, 0, sizeof s);
    double cpu[2][20], wall[2][20];
    for (int r = -1; r < runs; r++) { /* r = -1: untimed (workspace, page faults) */
        for (int v = 0; v < 2; v++) {
            double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
            int fh = size, fw = size;
            m2p_code code = v == 0 ? m2p_taesd_decode(t, z, 1, l, l, img, NULL, &err)
                                   : m2p_taesd_decode_half(t, z, l, l, img, &fh, &fw, &err);
            if (code != M2P_OK) {
                (void)fprintf(stderr, "bench_previews: %s: %s\n", m2p_errname(err.code), err.detail);
                rc = 1;
                goto done;
            }
            m2p_nn_vae_to_rgb8(img, 1, fh, fw, rgb);
            on_preview(&s[v], 1, 2, fw, fh, rgb);
            if (r >= 0) {
                wall[v][r] = now(CLOCK_MONOTONIC) - w0;
                cpu[v][r] = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
                (void)printf("frame %d %-4s %dx%d: wall %.3f s, CPU %.3f s\n", r + 1, v ? "half" : "full", fw, fh,
                             wall[v][r], cpu[v][r]);
                (void)fflush(stdout);
            }
        }
    }
    double mw[2], mc[2];
    for (int v = 0; v < 2; v++) {
        mw[v] = median(wall[v], runs);
        mc[v] = median(cpu[v], runs);
        (void)printf("median %-4s frame (%dx%d, WebP %zu..%zu bytes): wall %.3f s, CPU %.3f s\n", v ? "half" : "full",
                     s[v].w, s[v].h, s[v].bytes_min, s[v].bytes_max, mw[v], mc[v]);
    }
    (void)printf("ratio half/full per frame: wall %.3f, CPU %.3f\n", mw[1] / mw[0], mc[1] / mc[0]);
done:
    m2p_free(z);
    m2p_free(img);
    m2p_free(rgb);
    m2p_taesd_free(t);
    return rc;
}

int main(int argc, char **argv) {
    const char *model = "/tmp/m2p-full-lcm";
    const char *taesd = "/tmp/m2p-full-taesd";
    int runs = 2, size = 512, n = 1, steps = 4;
    bool frames = false;
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
        } else if (strcmp(argv[i], "--frames") == 0) {
            frames = true;
        } else {
            (void)fprintf(stderr,
                          "usage: bench_previews [--model DIR] [--taesd DIR] [--runs N] [--size PX] [--n IMAGES] "
                          "[--steps K] [--frames]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > 20 || size < 64 || size > 2048 || n < 1 || n > M2P_SD_MAX_BATCH || steps < 2 || steps > 50) {
        (void)fprintf(stderr, "bench_previews: bad arguments\n");
        return 2;
    }
    print_load("at start");
    if (frames) {
        int frc = bench_frames(taesd, runs, size);
        print_load("at end");
        return frc;
    }
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
    enum { NV = 3 };
    static const char *const names[NV] = {"off", "half", "full"};
    double wall[NV][20], cpu[NV][20];
    sink s[NV];
    memset(s, 0, sizeof s);
    m2p_sd_extra extra[NV] = {{0, NULL, NULL, false}, {0, on_preview, &s[1], false}, {0, on_preview, &s[2], true}};
    int rc = 0;
    if (rgb == NULL) {
        rc = 1;
        goto done;
    }
    (void)printf("%d image(s) of %dx%d, %d steps, %d timed runs of each, interleaved off/half/full\n", n, size, size,
                 steps, runs);
    if (m2p_sd_generate(sd, &req, NULL, rgb, &err) != M2P_OK) { /* untimed: workspace, page faults */
        rc = 1;
        goto done;
    }
    for (int r = 0; r < runs; r++) {
        for (int v = 0; v < NV; v++) {
            double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
            m2p_code c = m2p_sd_generate_ex(sd, &req, v > 0 ? &extra[v] : NULL, NULL, rgb, &err);
            wall[v][r] = now(CLOCK_MONOTONIC) - w0;
            cpu[v][r] = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
            if (c != M2P_OK) {
                rc = 1;
                goto done;
            }
            (void)printf("run %d previews %-4s: wall %.2f s, CPU %.2f s\n", r + 1, names[v], wall[v][r], cpu[v][r]);
            (void)fflush(stdout);
        }
    }
    double mw[NV], mc[NV];
    for (int v = 0; v < NV; v++) {
        mw[v] = median(wall[v], runs);
        mc[v] = median(cpu[v], runs);
        (void)printf("median previews %-4s: wall %.2f s, CPU %.2f s\n", names[v], mw[v], mc[v]);
    }
    int per = steps - 1; /* frames per generate */
    for (int v = 1; v < NV; v++) {
        (void)printf("ratio %s/off: wall %.3f, CPU %.3f; preview CPU per frame %.2f s\n", names[v], mw[v] / mw[0],
                     mc[v] / mc[0], (mc[v] - mc[0]) / per);
        (void)printf("previews %s: %d frames (%d per generate), %dx%d RGB in, WebP %zu..%zu bytes, encode %.1f ms each\n",
                     names[v], s[v].frames, s[v].frames / runs, s[v].w, s[v].h, s[v].bytes_min, s[v].bytes_max,
                     s[v].frames > 0 ? 1e3 * s[v].encode_s / s[v].frames : 0.0);
    }
    (void)printf("ratio half/full: wall %.3f, CPU %.3f; preview CPU per frame half/full %.3f\n", mw[1] / mw[2],
                 mc[1] / mc[2], (mc[1] - mc[0]) / (mc[2] - mc[0]));
done:
    if (rc != 0 && err.code != M2P_OK) {
        (void)fprintf(stderr, "bench_previews: %s: %s\n", m2p_errname(err.code), err.detail);
    }
    print_load("at end");
    m2p_free(rgb);
    m2p_sd_free(sd);
    return rc;
}
