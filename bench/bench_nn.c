/*
 * bench/bench_nn.c — times our CLIP text encoder and VAE decoder on a model
 * folder (normally the full-size random LCM model from
 * `tools/nn/make_fixtures.py full`), counts their multiply-adds, and measures
 * the machine's sgemm rate for the "% of peak" figure.
 *
 * Driven by tools/nn/bench_reference.py, which runs diffusers on the same
 * weights and inputs in the same session and prints the ratio and the largest
 * output difference. Standalone:
 *
 *   build/bench/bench_nn MODEL_DIR [--size 512] [--runs 3] [--latents F.f32]
 *                        [--ids F.i32] [--vae-out F.f32] [--clip-out F.f32]
 *                        [--skip-vae] [--skip-clip]
 *   build/bench/bench_nn --convs [--runs 5]
 *     im2col+sgemm vs Winograd on the 3×3 conv shapes of the SD VAE decoder at
 *     512² (runs alternate; min and median per shape: the min is the least
 *     disturbed run on a shared machine).
 *
 * Inputs default to seeded pseudo-random latents and a fixed token sequence.
 * Prints one JSON object on stdout (times in seconds, one per run, after
 * one untimed warm-up run).
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/fs.h"
#include "diffusion/ops.h"
#include "diffusion/clip_text.h"
#include "diffusion/model.h"
#include "diffusion/vae.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : (x > y ? 1 : 0);
}

static double median(double *v, int n) {
    double tmp[64];
    memcpy(tmp, v, sizeof(double) * (size_t)n);
    qsort(tmp, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? tmp[n / 2] : 0.5 * (tmp[n / 2 - 1] + tmp[n / 2]);
}

static bool read_raw(const char *path, void *dst, size_t bytes) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return false;
    }
    size_t n = fread(dst, 1, bytes, f);
    fclose(f);
    return n == bytes;
}

static bool write_raw(const char *path, const void *src, size_t bytes) {
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        return false;
    }
    size_t n = fwrite(src, 1, bytes, f);
    return fclose(f) == 0 && n == bytes;
}

/* Multiply-adds of the VAE decoder for latents h × w (convs, attention matmuls, linears). */
static double vae_macs(const m2p_nn_vae_config *c, int h, int w) {
    int nb = c->n_blocks, ch[M2P_NN_MAX_BLOCKS];
    for (int i = 0; i < nb; i++) {
        ch[i] = c->block_out_channels[nb - 1 - i];
    }
    double hw = (double)h * w, m = 0, lat = c->latent_channels;
    if (c->use_post_quant_conv) {
        m += lat * lat * hw;
    }
    m += (double)ch[0] * lat * 9 * hw; /* conv_in */
    double top = ch[0];
    m += 2 * (2 * top * top * 9 * hw); /* mid resnets */
    if (c->mid_block_add_attention) {
        m += 4 * top * top * hw + 2 * hw * hw * top; /* q, k, v, out + QK^T and PV */
    }
    for (int i = 0; i < nb; i++) {
        int prev = i == 0 ? ch[0] : ch[i - 1];
        for (int j = 0; j <= c->layers_per_block; j++) {
            double cin = j == 0 ? prev : ch[i], co = ch[i];
            m += cin * co * 9 * hw + co * co * 9 * hw;
            if (cin != co) {
                m += cin * co * hw;
            }
        }
        if (i + 1 < nb) {
            hw *= 4;
            m += (double)ch[i] * ch[i] * 9 * hw;
        }
    }
    m += (double)c->out_channels * ch[nb - 1] * 9 * hw;
    return m;
}

static double clip_macs(const m2p_nn_clip_config *c, int t) {
    double H = c->hidden, inter = c->intermediate;
    return c->layers * (4.0 * t * H * H + 2.0 * t * H * inter + 2.0 * t * t * H);
}

/* sgemm GFLOP/s at n = 2048 (median of 3). */
static double sgemm_rate(void) {
    const int n = 2048;
    float *a = m2p_malloc_array((size_t)n * n, sizeof(float));
    float *b = m2p_malloc_array((size_t)n * n, sizeof(float));
    float *c = m2p_malloc_array((size_t)n * n, sizeof(float));
    if (a == NULL || b == NULL || c == NULL) {
        m2p_free(a);
        m2p_free(b);
        m2p_free(c);
        return 0;
    }
    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = (float)(i % 7) * 0.1f;
        b[i] = (float)(i % 5) * 0.1f;
    }
    double t[3];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    for (int r = 0; r < 3; r++) {
        double t0 = m2p_now_monotonic();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        t[r] = m2p_now_monotonic() - t0;
    }
    m2p_free(a);
    m2p_free(b);
    m2p_free(c);
    return 2.0 * n * (double)n * n / median(t, 3) / 1e9;
}

static void print_times(const char *key, const double *t, int n) {
    (void)printf("\"%s\": [", key);
    for (int i = 0; i < n; i++) {
        (void)printf("%s%.4f", i ? ", " : "", t[i]);
    }
    (void)printf("], ");
}

/* im2col vs Winograd on VAE-decoder conv shapes. */
static int bench_convs(int runs) {
    static const int shapes[][3] = {{512, 512, 64}, {512, 512, 128}, {512, 512, 256}, {256, 256, 256},
                                    {256, 256, 512}, {128, 128, 512}};
    (void)printf("{\"convs\": [");
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int cin = shapes[si][0], cout = shapes[si][1], hw = shapes[si][2];
        size_t nx = (size_t)cin * hw * hw, ny = (size_t)cout * hw * hw, nw = (size_t)cout * cin * 9;
        float *x = m2p_malloc_array(nx, sizeof(float)), *y = m2p_malloc_array(ny, sizeof(float));
        float *y2 = m2p_malloc_array(ny, sizeof(float)), *wt = m2p_malloc_array(nw, sizeof(float));
        size_t ws1 = m2p_nn_conv2d_workspace(cin, hw, hw, 3, 1, 1), ws2 = m2p_nn_conv3x3_workspace(cin, cout, hw, hw);
        float *ws = m2p_malloc_array(ws1 > ws2 ? ws1 : ws2, sizeof(float));
        if (x == NULL || y == NULL || y2 == NULL || wt == NULL || ws == NULL) {
            return 1;
        }
        for (size_t i = 0; i < nx; i++) {
            x[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
        }
        for (size_t i = 0; i < nw; i++) {
            wt[i] = (float)((i * 40503u) % 1000) / 30000.0f - 0.016f;
        }
        double ti[64], tw[64];
        for (int r = 0; r < runs; r++) {
            double t0 = m2p_now_monotonic();
            m2p_nn_conv2d(x, 1, cin, hw, hw, wt, NULL, cout, 3, 1, 1, y, ws);
            ti[r] = m2p_now_monotonic() - t0;
            t0 = m2p_now_monotonic();
            m2p_nn_conv3x3(x, 1, cin, hw, hw, wt, NULL, cout, y2, ws);
            tw[r] = m2p_now_monotonic() - t0;
        }
        double maxd = 0;
        for (size_t i = 0; i < ny; i++) {
            maxd = fmax(maxd, fabs((double)y[i] - y2[i]));
        }
        double gmac = (double)cin * cout * 9 * hw * hw / 1e9, mi = ti[0], mw = tw[0];
        for (int r = 1; r < runs; r++) {
            mi = fmin(mi, ti[r]);
            mw = fmin(mw, tw[r]);
        }
        (void)printf("%s{\"cin\": %d, \"cout\": %d, \"hw\": %d, \"gmacs\": %.2f, \"im2col_min_s\": %.4f, "
                     "\"im2col_median_s\": %.4f, \"winograd_min_s\": %.4f, \"winograd_median_s\": %.4f, "
                     "\"im2col_gflops\": %.1f, \"max_abs_diff\": %.2g}",
                     si ? ", " : "", cin, cout, hw, gmac, mi, median(ti, runs), mw, median(tw, runs), 2 * gmac / mi,
                     maxd);
        (void)fflush(stdout);
        m2p_free(x);
        m2p_free(y);
        m2p_free(y2);
        m2p_free(wt);
        m2p_free(ws);
    }
    (void)printf("], \"sgemm2048_gflops\": %.1f}\n", sgemm_rate());
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--convs") == 0) {
        int runs = argc > 3 && strcmp(argv[2], "--runs") == 0 ? (int)strtol(argv[3], NULL, 10) : 5;
        return bench_convs(runs < 1 || runs > 64 ? 5 : runs);
    }
    const char *dir = argc > 1 ? argv[1] : "/tmp/m2p-full-lcm";
    int size = 512, runs = 3;
    const char *lat_in = NULL, *ids_in = NULL, *vae_out = NULL, *clip_out = NULL;
    bool do_vae = true, do_clip = true;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
            size = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--latents") == 0 && i + 1 < argc) {
            lat_in = argv[++i];
        } else if (strcmp(argv[i], "--ids") == 0 && i + 1 < argc) {
            ids_in = argv[++i];
        } else if (strcmp(argv[i], "--vae-out") == 0 && i + 1 < argc) {
            vae_out = argv[++i];
        } else if (strcmp(argv[i], "--clip-out") == 0 && i + 1 < argc) {
            clip_out = argv[++i];
        } else if (strcmp(argv[i], "--skip-vae") == 0) {
            do_vae = false;
        } else if (strcmp(argv[i], "--skip-clip") == 0) {
            do_clip = false;
        } else {
            (void)fprintf(stderr, "bench_nn: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (runs < 1 || runs > 64 || size < 8 || size > 2048 || size % 8 != 0) {
        (void)fprintf(stderr, "bench_nn: --runs 1..64, --size multiple of 8 in 8..2048\n");
        return 2;
    }
    m2p_error err;
    m2p_error_clear(&err);
    m2p_nn_model *m = NULL;
    double t0 = m2p_now_monotonic();
    unsigned parts = (do_vae ? M2P_NN_LOAD_VAE : 0u) | (do_clip ? M2P_NN_LOAD_TEXT : 0u);
    if (m2p_nn_model_open(dir, parts, &m, &err) != M2P_OK) {
        (void)fprintf(stderr, "bench_nn: %s\n", err.detail);
        return 1;
    }
    double load_s = m2p_now_monotonic() - t0;
    (void)printf("{\"model\": \"%s\", \"load_s\": %.3f, ", dir, load_s);
    int rc = 0;
    double times[64];
    if (do_clip) {
        m2p_nn_clip *c = NULL;
        if (m2p_nn_clip_create(m, &c, &err) != M2P_OK) {
            (void)fprintf(stderr, "bench_nn: %s\n", err.detail);
            return 1;
        }
        int T = m2p_nn_clip_max_len(c), H = m2p_nn_clip_hidden(c);
        int32_t ids[4096];
        for (int i = 0; i < T; i++) {
            ids[i] = i == 0 ? 49406 : (i < 12 ? 320 + 37 * i : 49407);
        }
        if (ids_in != NULL && !read_raw(ids_in, ids, sizeof(int32_t) * (size_t)T)) {
            (void)fprintf(stderr, "bench_nn: cannot read %s\n", ids_in);
            return 1;
        }
        float *out = m2p_malloc_array((size_t)T * H, sizeof(float));
        for (int r = -1; r < runs && out != NULL; r++) {
            double s = m2p_now_monotonic();
            if (m2p_nn_clip_encode(c, ids, 1, T, out, &err) != M2P_OK) {
                rc = 1;
                break;
            }
            if (r >= 0) {
                times[r] = m2p_now_monotonic() - s;
            }
        }
        if (clip_out != NULL && out != NULL && !write_raw(clip_out, out, sizeof(float) * (size_t)T * H)) {
            rc = 1;
        }
        double macs = clip_macs(m2p_nn_model_clip_config(m), T);
        print_times("clip_s", times, runs);
        (void)printf("\"clip_median_s\": %.4f, \"clip_gmacs\": %.3f, ", median(times, runs), macs / 1e9);
        m2p_free(out);
        m2p_nn_clip_free(c);
    }
    if (do_vae) {
        m2p_nn_vae *v = NULL;
        if (m2p_nn_vae_create(m, &v, &err) != M2P_OK) {
            (void)fprintf(stderr, "bench_nn: %s\n", err.detail);
            return 1;
        }
        int f = m2p_nn_vae_factor(v), C = m2p_nn_vae_latent_channels(v);
        int h = size / f, w = size / f;
        size_t nl = (size_t)C * h * w, no = (size_t)3 * size * size;
        float *lat = m2p_malloc_array(nl, sizeof(float));
        float *img = m2p_malloc_array(no, sizeof(float));
        if (lat == NULL || img == NULL) {
            return 1;
        }
        uint32_t s = 99;
        for (size_t i = 0; i < nl; i++) {
            s = s * 1664525u + 1013904223u;
            lat[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 2.0f;
        }
        if (lat_in != NULL && !read_raw(lat_in, lat, sizeof(float) * nl)) {
            (void)fprintf(stderr, "bench_nn: cannot read %s\n", lat_in);
            return 1;
        }
        for (int r = -1; r < runs; r++) {
            double st = m2p_now_monotonic();
            if (m2p_nn_vae_decode(v, lat, 1, h, w, img, NULL, &err) != M2P_OK) {
                (void)fprintf(stderr, "bench_nn: %s\n", err.detail);
                rc = 1;
                break;
            }
            if (r >= 0) {
                times[r] = m2p_now_monotonic() - st;
            }
        }
        if (vae_out != NULL && !write_raw(vae_out, img, sizeof(float) * no)) {
            rc = 1;
        }
        double macs = vae_macs(m2p_nn_model_vae_config(m), h, w);
        double med = median(times, runs);
        print_times("vae_s", times, runs);
        (void)printf("\"vae_median_s\": %.4f, \"vae_gmacs\": %.1f, \"vae_gflops\": %.1f, ", med, macs / 1e9,
                     2 * macs / med / 1e9);
        m2p_free(lat);
        m2p_free(img);
        m2p_nn_vae_free(v);
    }
    (void)printf("\"sgemm2048_gflops\": %.1f}\n", sgemm_rate());
    m2p_nn_model_free(m);
    return rc;
}
