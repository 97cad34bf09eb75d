/*
 * tests/unit/diffusion/test_nn_ops.c — every op of diffusion/ops.h against a
 * naive reference written here (direct loops, double accumulation), on odd
 * shapes.
 *
 * Error bounds. Dot-product ops (linear, conv2d, attention's matmuls) are
 * checked per output against the classical bound for a K-term float sum:
 * |y − ref| ≤ K · 2⁻²³ · Σ|terms| + 1e-6 (any summation order, FMA or not,
 * stays inside it; a wrong index or a missing term does not). Element-wise and
 * normalisation ops: |y − ref| ≤ 2e-6 · max(1, |ref|) (float libm vs double).
 */
#include "test_util.h"

#include <math.h>
#include <omp.h>
#include <pthread.h>

#include "core/alloc.h"
#include "diffusion/ops.h"

/* Deterministic uniform values in [-1, 1). */
static void fill(float *x, size_t n, unsigned seed) {
    uint32_t s = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((double)(s >> 8) / (double)(1u << 24) * 2.0 - 1.0);
    }
}

static float *fvec(size_t n, unsigned seed) {
    float *x = m2p_malloc_array(n == 0 ? 1 : n, sizeof(float));
    assert_non_null(x);
    fill(x, n, seed);
    return x;
}

static double *dvec(size_t n) {
    double *x = m2p_calloc(n == 0 ? 1 : n, sizeof(double));
    assert_non_null(x);
    return x;
}

static void check_dot(const char *what, const float *y, const double *ref, const double *absum, size_t n, int kterms) {
    for (size_t i = 0; i < n; i++) {
        double tol = (double)kterms * ldexp(1.0, -23) * absum[i] + 1e-6;
        double d = fabs((double)y[i] - ref[i]);
        if (!(d <= tol)) {
            fail_msg("%s[%zu]: got %.9g want %.9g (diff %.3g > bound %.3g)", what, i, (double)y[i], ref[i], d, tol);
        }
    }
}

static void check_close(const char *what, const float *y, const double *ref, size_t n, double rel) {
    for (size_t i = 0; i < n; i++) {
        double tol = rel * fmax(1.0, fabs(ref[i]));
        double d = fabs((double)y[i] - ref[i]);
        if (!(d <= tol)) {
            fail_msg("%s[%zu]: got %.9g want %.9g (diff %.3g > %.3g)", what, i, (double)y[i], ref[i], d, tol);
        }
    }
}

static void test_linear(void **state) {
    (void)state;
    const int rows = 7, in = 13, out = 11;
    float *x = fvec((size_t)rows * in, 1), *w = fvec((size_t)out * in, 2), *b = fvec(out, 3);
    float *y = fvec((size_t)rows * out, 4);
    float *y0 = fvec((size_t)rows * out, 4);
    double *ref = dvec((size_t)rows * out), *abs_ = dvec((size_t)rows * out);
    for (int pass = 0; pass < 2; pass++) {
        bool acc = pass == 1;
        for (int r = 0; r < rows; r++) {
            for (int o = 0; o < out; o++) {
                double s = acc ? y0[r * out + o] : 0.0, a = fabs(s);
                for (int i = 0; i < in; i++) {
                    s += (double)x[r * in + i] * w[o * in + i];
                    a += fabs((double)x[r * in + i] * w[o * in + i]);
                }
                s += b[o];
                a += fabs(b[o]);
                ref[r * out + o] = s;
                abs_[r * out + o] = a;
            }
        }
        memcpy(y, y0, sizeof(float) * (size_t)rows * out);
        m2p_nn_linear(x, rows, in, w, b, out, y, acc);
        check_dot(acc ? "linear+acc" : "linear", y, ref, abs_, (size_t)rows * out, in + 2);
    }
    /* No bias. */
    m2p_nn_linear(x, rows, in, w, NULL, out, y, false);
    for (int o = 0; o < out; o++) {
        double s = 0;
        for (int i = 0; i < in; i++) {
            s += (double)x[i] * w[o * in + i];
        }
        assert_true(fabs(y[o] - s) < 1e-5);
    }
    m2p_free(x);
    m2p_free(w);
    m2p_free(b);
    m2p_free(y);
    m2p_free(y0);
    m2p_free(ref);
    m2p_free(abs_);
}

/* Naive conv: y[n, co, oy, ox] = b[co] + Σ x[n, ci, oy·s − p + ky, ox·s − p + kx] · w[co, ci, ky, kx]. */
static void conv_case(int n, int cin, int h, int w, int cout, int k, int stride, int pad, bool bias, size_t ws_override) {
    int oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
    size_t ny = (size_t)n * cout * oh * ow;
    float *x = fvec((size_t)n * cin * h * w, 11), *wt = fvec((size_t)cout * cin * k * k, 12);
    float *b = bias ? fvec(cout, 13) : NULL;
    float *y = fvec(ny, 14);
    double *ref = dvec(ny), *abs_ = dvec(ny);
    for (int i = 0; i < n; i++) {
        for (int co = 0; co < cout; co++) {
            for (int oy = 0; oy < oh; oy++) {
                for (int ox = 0; ox < ow; ox++) {
                    double s = b ? b[co] : 0.0, a = fabs(s);
                    for (int ci = 0; ci < cin; ci++) {
                        for (int ky = 0; ky < k; ky++) {
                            for (int kx = 0; kx < k; kx++) {
                                int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w) {
                                    continue;
                                }
                                double t = (double)x[(((size_t)i * cin + ci) * h + iy) * w + ix] *
                                           wt[(((size_t)co * cin + ci) * k + ky) * k + kx];
                                s += t;
                                a += fabs(t);
                            }
                        }
                    }
                    size_t idx = (((size_t)i * cout + co) * oh + oy) * ow + ox;
                    ref[idx] = s;
                    abs_[idx] = a;
                }
            }
        }
    }
    size_t wsn = m2p_nn_conv2d_workspace(cin, h, w, k, stride, pad);
    float *ws = wsn ? fvec(wsn, 15) : NULL;
    m2p_nn_conv2d(x, n, cin, h, w, wt, b, cout, k, stride, pad, y, ws);
    check_dot("conv2d", y, ref, abs_, ny, cin * k * k + 1);
    if (k == 3 && stride == 1 && pad == 1) {
        /* Winograd F(2x2, 3x3): same result; its transforms (entries ±1, ½) may add a few roundings
         * per term, so the bound is 8 times the direct one. */
        float *wws = fvec(m2p_nn_conv3x3_workspace(cin, cout, h, w), 17);
        memset(y, 0, sizeof(float) * ny);
        m2p_nn_conv3x3(x, n, cin, h, w, wt, b, cout, y, wws);
        check_dot("conv3x3 winograd", y, ref, abs_, ny, 8 * (cin * k * k + 1));
        /* A workspace for 5 tiles at a time: strips that split tile rows. */
        size_t small = (size_t)16 * cout * cin + (size_t)5 * 16 * (cin + cout);
        memset(y, 0, sizeof(float) * ny);
        assert_true(m2p_nn_conv3x3_ex(x, n, cin, h, w, wt, b, cout, y, wws, small));
        check_dot("conv3x3 winograd strips", y, ref, abs_, ny, 8 * (cin * k * k + 1));
        assert_false(m2p_nn_conv3x3_ex(x, n, cin, h, w, wt, b, cout, y, wws, (size_t)16 * cout * cin));
        m2p_free(wws);
    }
    if (ws_override > 0) {
        /* Strip path: a workspace holding only a few output rows gives the same result. */
        float *ws2 = fvec(ws_override, 16);
        memset(y, 0, sizeof(float) * ny);
        assert_true(m2p_nn_conv2d_ex(x, n, cin, h, w, wt, b, cout, k, stride, pad, y, ws2, ws_override));
        check_dot("conv2d strips", y, ref, abs_, ny, cin * k * k + 1);
        /* Too small for one row: refused. */
        assert_false(m2p_nn_conv2d_ex(x, n, cin, h, w, wt, b, cout, k, stride, pad, y, ws2,
                                      (size_t)cin * k * k * ow - 1));
        m2p_free(ws2);
    }
    m2p_free(ws);
    m2p_free(x);
    m2p_free(wt);
    m2p_free(b);
    m2p_free(y);
    m2p_free(ref);
    m2p_free(abs_);
}

static void test_conv2d(void **state) {
    (void)state;
    conv_case(2, 3, 7, 9, 5, 3, 1, 1, true, 0);
    conv_case(1, 5, 9, 6, 4, 3, 2, 1, true, 0);  /* downsample */
    conv_case(2, 6, 5, 7, 3, 1, 1, 0, true, 0);  /* 1×1 direct sgemm */
    conv_case(1, 4, 6, 5, 7, 1, 1, 0, false, 0); /* 1×1 without bias */
    conv_case(1, 2, 4, 4, 3, 3, 1, 0, false, 0); /* no padding */
    conv_case(2, 3, 11, 10, 4, 3, 1, 1, true, (size_t)3 * 9 * 10 * 3 + 5); /* strips of 3 rows (11 = 3+3+3+2) */
    conv_case(1, 1, 1, 1, 2, 3, 1, 1, true, 0);   /* a single pixel: one partial Winograd tile */
    conv_case(1, 7, 2, 13, 5, 3, 1, 1, false, 0); /* odd width: partial tiles on the right */
    conv_case(2, 19, 6, 5, 29, 3, 1, 1, true, 0); /* 551 filters: two transform blocks of 256 + a partial one */
}

/* Image i of a batch is bitwise the same image convolved alone (im2col and Winograd). */
static void test_conv_batch_bitwise(void **state) {
    (void)state;
    static const int cases[][4] = {{40, 48, 9, 11}, {64, 32, 17, 6}, {24, 40, 3, 3}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int cin = cases[c][0], cout = cases[c][1], h = cases[c][2], w = cases[c][3];
        enum { N = 3 };
        size_t in_img = (size_t)cin * h * w, out_img = (size_t)cout * h * w;
        float *x = fvec(N * in_img, 21);
        float *wt = fvec((size_t)cout * cin * 9, 22);
        float *b = fvec((size_t)cout, 23);
        float *yb = fvec(N * out_img, 24);
        float *y1 = fvec(out_img, 25);
        float *ws = fvec(m2p_nn_conv2d_workspace(cin, h, w, 3, 1, 1), 26);
        float *wws = fvec(m2p_nn_conv3x3_workspace(cin, cout, h, w), 27);
        for (int wino = 0; wino < 2; wino++) {
            if (wino) {
                m2p_nn_conv3x3(x, N, cin, h, w, wt, b, cout, yb, wws);
            } else {
                m2p_nn_conv2d(x, N, cin, h, w, wt, b, cout, 3, 1, 1, yb, ws);
            }
            for (int i = 0; i < N; i++) {
                if (wino) {
                    m2p_nn_conv3x3(x + i * in_img, 1, cin, h, w, wt, b, cout, y1, wws);
                } else {
                    m2p_nn_conv2d(x + i * in_img, 1, cin, h, w, wt, b, cout, 3, 1, 1, y1, ws);
                }
                if (memcmp(y1, yb + i * out_img, out_img * sizeof(float)) != 0) {
                    fail_msg("%s %dx%d %d->%d: image %d differs alone", wino ? "winograd" : "im2col", h, w, cin,
                             cout, i);
                }
            }
        }
        m2p_free(x);
        m2p_free(wt);
        m2p_free(b);
        m2p_free(yb);
        m2p_free(y1);
        m2p_free(ws);
        m2p_free(wws);
    }
}

static void *apply_in_thread(void *arg) {
    m2p_nn_apply_threads();
    *(int *)arg = m2p_nn_threads();
    return NULL;
}

/* The `threads` setting reaches this thread and threads that call m2p_nn_apply_threads. */
static void test_threads_setting(void **state) {
    (void)state;
    int before = m2p_nn_threads();
    assert_true(before >= 1);
    m2p_nn_set_threads(1);
    assert_int_equal(m2p_nn_threads(), 1);
    int seen = 0;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, apply_in_thread, &seen), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(seen, 1);
    m2p_nn_set_threads(3);
    assert_int_equal(m2p_nn_threads(), 3);
    int got = 0;
#pragma omp parallel
    {
#pragma omp single
        got = omp_get_num_threads();
    }
    assert_int_equal(got, 3);
    /* 0 = keep the current default; restore the count this test started with. */
    m2p_nn_set_threads(0);
    assert_int_equal(m2p_nn_threads(), 3);
    m2p_nn_set_threads(before);
    assert_int_equal(m2p_nn_threads(), before);
}

static void test_group_norm(void **state) {
    (void)state;
    const int n = 2, c = 12, hw = 13, groups = 4;
    size_t len = (size_t)n * c * hw;
    for (int variant = 0; variant < 3; variant++) {
        bool silu = variant == 1;
        bool affine = variant != 2;
        float *x = fvec(len, 21), *g = fvec(c, 22), *b = fvec(c, 23);
        for (size_t i = 0; i < len; i++) {
            x[i] = x[i] * 3.0f + 5.0f; /* offset mean: catches a one-pass variance */
        }
        double *ref = dvec(len);
        int cpg = c / groups;
        for (int i = 0; i < n; i++) {
            for (int gi = 0; gi < groups; gi++) {
                double s = 0, sq = 0;
                size_t base = ((size_t)i * c + (size_t)gi * cpg) * hw;
                for (size_t j = 0; j < (size_t)cpg * hw; j++) {
                    s += x[base + j];
                }
                double mean = s / (cpg * hw);
                for (size_t j = 0; j < (size_t)cpg * hw; j++) {
                    sq += (x[base + j] - mean) * (x[base + j] - mean);
                }
                double inv = 1.0 / sqrt(sq / (cpg * hw) + 1e-5);
                for (int cc = 0; cc < cpg; cc++) {
                    int ch = gi * cpg + cc;
                    for (int j = 0; j < hw; j++) {
                        size_t idx = base + (size_t)cc * hw + j;
                        double v = (x[idx] - mean) * inv;
                        if (affine) {
                            v = v * g[ch] + b[ch];
                        }
                        if (silu) {
                            v = v / (1.0 + exp(-v));
                        }
                        ref[idx] = v;
                    }
                }
            }
        }
        m2p_nn_group_norm(x, n, c, hw, groups, affine ? g : NULL, affine ? b : NULL, 1e-5f, silu);
        check_close("group_norm", x, ref, len, 2e-6);
        m2p_free(x);
        m2p_free(g);
        m2p_free(b);
        m2p_free(ref);
    }
}

static void test_layer_norm(void **state) {
    (void)state;
    const int rows = 5, dim = 37;
    float *x = fvec((size_t)rows * dim, 31), *g = fvec(dim, 32), *b = fvec(dim, 33);
    float *y = fvec((size_t)rows * dim, 34);
    for (int i = 0; i < rows * dim; i++) {
        x[i] = x[i] * 2.0f - 7.0f;
    }
    double *ref = dvec((size_t)rows * dim);
    for (int r = 0; r < rows; r++) {
        double s = 0, sq = 0;
        for (int j = 0; j < dim; j++) {
            s += x[r * dim + j];
        }
        double mean = s / dim;
        for (int j = 0; j < dim; j++) {
            sq += (x[r * dim + j] - mean) * (x[r * dim + j] - mean);
        }
        double inv = 1.0 / sqrt(sq / dim + 1e-5);
        for (int j = 0; j < dim; j++) {
            ref[r * dim + j] = (x[r * dim + j] - mean) * inv * g[j] + b[j];
        }
    }
    m2p_nn_layer_norm(x, rows, dim, g, b, 1e-5f, y);
    check_close("layer_norm", y, ref, (size_t)rows * dim, 2e-6);
    m2p_nn_layer_norm(x, rows, dim, g, b, 1e-5f, x); /* in place */
    check_close("layer_norm in place", x, ref, (size_t)rows * dim, 2e-6);
    m2p_free(x);
    m2p_free(g);
    m2p_free(b);
    m2p_free(y);
    m2p_free(ref);
}

static void test_activations(void **state) {
    (void)state;
    const size_t n = 101;
    float *x = fvec(n, 41);
    for (size_t i = 0; i < n; i++) {
        x[i] *= 6.0f;
    }
    double *ref = dvec(n);
    float *y = fvec(n, 0);

    memcpy(y, x, n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        ref[i] = x[i] / (1.0 + exp(-(double)x[i]));
    }
    m2p_nn_silu(y, n);
    check_close("silu", y, ref, n, 2e-6);

    memcpy(y, x, n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        ref[i] = 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)));
    }
    m2p_nn_gelu(y, n);
    check_close("gelu", y, ref, n, 2e-6);

    memcpy(y, x, n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        ref[i] = x[i] / (1.0 + exp(-1.702 * x[i]));
    }
    m2p_nn_quick_gelu(y, n);
    check_close("quick_gelu", y, ref, n, 2e-6);

    memcpy(y, x, n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        ref[i] = x[i] * -0.375;
    }
    m2p_nn_scale(y, n, -0.375f);
    check_close("scale", y, ref, n, 1e-7);

    /* GEGLU: rows 3, d 17. */
    const int rows = 3, d = 17;
    float *in = fvec((size_t)rows * 2 * d, 42), *out = fvec((size_t)rows * d, 0);
    double *gref = dvec((size_t)rows * d);
    for (int r = 0; r < rows; r++) {
        for (int j = 0; j < d; j++) {
            double a = in[r * 2 * d + j], g = 3.0 * in[r * 2 * d + d + j];
            in[r * 2 * d + d + j] = (float)g;
            gref[r * d + j] = a * 0.5 * g * (1.0 + erf(g / sqrt(2.0)));
        }
    }
    m2p_nn_geglu(in, rows, d, out);
    check_close("geglu", out, gref, (size_t)rows * d, 2e-6);
    m2p_free(in);
    m2p_free(out);
    m2p_free(gref);
    m2p_free(x);
    m2p_free(y);
    m2p_free(ref);
}

static void attention_case(int b, int tq, int tk, int heads, int dh, bool causal, bool fused) {
    int hd = heads * dh;
    /* fused: q, k, v interleaved in one [b, t, 3·hd] buffer (tq == tk). */
    int qs = fused ? 3 * hd : hd, ks = fused ? 3 * hd : hd + 2, vs = fused ? 3 * hd : hd + 1, os = hd + 3;
    float *qbuf = fvec((size_t)b * tq * qs, 51);
    float *kbuf = fused ? qbuf : fvec((size_t)b * tk * ks, 52);
    float *vbuf = fused ? qbuf : fvec((size_t)b * tk * vs, 53);
    const float *q = qbuf, *k = fused ? qbuf + hd : kbuf, *v = fused ? qbuf + 2 * hd : vbuf;
    for (size_t i = 0; i < (size_t)b * tq * qs; i++) {
        qbuf[i] *= 2.0f;
    }
    size_t no = (size_t)b * tq * os;
    float *out = fvec(no, 54);
    float *keep = fvec(no, 54); /* padding columns must stay untouched */
    double *ref = dvec(no), *abs_ = dvec(no);
    double *p = dvec((size_t)tk);
    for (int bi = 0; bi < b; bi++) {
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < tq; i++) {
                double mx = -INFINITY;
                for (int j = 0; j < tk; j++) {
                    double s = 0;
                    for (int e = 0; e < dh; e++) {
                        s += (double)q[((size_t)bi * tq + i) * qs + h * dh + e] * k[((size_t)bi * tk + j) * ks + h * dh + e];
                    }
                    p[j] = (causal && j > i) ? -INFINITY : s / sqrt((double)dh);
                    mx = fmax(mx, p[j]);
                }
                double sum = 0;
                for (int j = 0; j < tk; j++) {
                    p[j] = exp(p[j] - mx);
                    sum += p[j];
                }
                for (int e = 0; e < dh; e++) {
                    double s = 0, a = 0;
                    for (int j = 0; j < tk; j++) {
                        double t = p[j] / sum * v[((size_t)bi * tk + j) * vs + h * dh + e];
                        s += t;
                        a += fabs(t);
                    }
                    size_t idx = ((size_t)bi * tq + i) * os + h * dh + e;
                    ref[idx] = s;
                    abs_[idx] = a;
                }
            }
        }
    }
    for (size_t i = 0; i < no; i++) {
        if ((int)(i % os) >= hd) {
            ref[i] = keep[i];
        }
    }
    float *scratch = fvec(m2p_nn_attention_scratch(tq, tk), 55);
    m2p_nn_attention(q, qs, k, ks, v, vs, b, tq, tk, heads, dh, causal, out, os, scratch);
    /* Softmax adds its own rounding: allow the bound of a (tk + dh)-term sum, plus 1e-6. */
    check_dot("attention", out, ref, abs_, no, tk + dh + 8);
    m2p_free(scratch);
    m2p_free(qbuf);
    if (!fused) {
        m2p_free(kbuf);
        m2p_free(vbuf);
    }
    m2p_free(out);
    m2p_free(keep);
    m2p_free(ref);
    m2p_free(abs_);
    m2p_free(p);
}

static void test_attention(void **state) {
    (void)state;
    attention_case(2, 5, 7, 3, 4, false, false); /* cross-attention shape */
    attention_case(2, 6, 6, 3, 5, true, true);   /* CLIP: causal, fused qkv */
    attention_case(1, 9, 9, 1, 8, false, true);  /* VAE: one head */
}

static void test_layout_and_misc(void **state) {
    (void)state;
    const int n = 2, c = 3, h = 5, w = 7, hw = h * w;
    size_t len = (size_t)n * c * hw;
    float *x = fvec(len, 61), *y = fvec(len * 4, 0), *z = fvec(len, 0);
    m2p_nn_upsample2x(x, n, c, h, w, y);
    for (int i = 0; i < n * c; i++) {
        for (int yy = 0; yy < 2 * h; yy++) {
            for (int xx = 0; xx < 2 * w; xx++) {
                assert_true(y[((size_t)i * 2 * h + yy) * 2 * w + xx] == x[((size_t)i * h + yy / 2) * w + xx / 2]);
            }
        }
    }
    m2p_nn_nchw_to_nhwc(x, n, c, hw, y);
    for (int i = 0; i < n; i++) {
        for (int ch = 0; ch < c; ch++) {
            for (int p = 0; p < hw; p++) {
                assert_true(y[((size_t)i * hw + p) * c + ch] == x[((size_t)i * c + ch) * hw + p]);
            }
        }
    }
    m2p_nn_nhwc_to_nchw(y, n, c, hw, z);
    assert_memory_equal(z, x, len * sizeof(float));

    float *v = fvec((size_t)n * c, 62);
    memcpy(z, x, len * sizeof(float));
    m2p_nn_add_channel(z, n, c, hw, v);
    for (size_t i = 0; i < len; i++) {
        assert_true(z[i] == x[i] + v[i / hw]);
    }
    float *t = fvec(len, 63);
    memcpy(z, x, len * sizeof(float));
    m2p_nn_add(z, t, len);
    for (size_t i = 0; i < len; i++) {
        assert_true(z[i] == x[i] + t[i]);
    }
    m2p_free(v);
    m2p_free(t);
    m2p_free(x);
    m2p_free(y);
    m2p_free(z);
}

static void test_half_conversion(void **state) {
    (void)state;
    /* Known encodings, including subnormals, infinities and the odd tail after the 8-wide loop. */
    static const unsigned short h[] = {0x0000, 0x8000, 0x3c00, 0xbc00, 0x3555, 0x7bff, 0x0001, 0x03ff,
                                       0x0400, 0x7c00, 0xfc00, 0x4248, 0xc000};
    static const double want[] = {0.0,     -0.0, 1.0, -1.0, 0.333251953125, 65504.0, 5.960464477539063e-08,
                                  6.097555160522461e-05, 6.103515625e-05, INFINITY, -INFINITY, 3.140625, -2.0};
    float f[13];
    m2p_nn_f16_to_f32(h, f, 13);
    for (int i = 0; i < 13; i++) {
        if (!((double)f[i] == want[i])) {
            fail_msg("f16 %04x: got %.17g want %.17g", h[i], (double)f[i], want[i]);
        }
    }
    assert_true(signbit(f[1]));
    unsigned short nan16 = 0x7e00;
    m2p_nn_f16_to_f32(&nan16, f, 1);
    assert_true(isnan(f[0]));

    static const unsigned short bf[] = {0x3f80, 0xc040, 0x4049, 0x0000, 0x7f80};
    static const double bwant[] = {1.0, -3.0, 3.140625, 0.0, INFINITY};
    m2p_nn_bf16_to_f32(bf, f, 5);
    for (int i = 0; i < 5; i++) {
        assert_true((double)f[i] == bwant[i]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),      cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_group_norm),  cmocka_unit_test(test_layer_norm),
        cmocka_unit_test(test_activations), cmocka_unit_test(test_attention),
        cmocka_unit_test(test_layout_and_misc), cmocka_unit_test(test_half_conversion),
        cmocka_unit_test(test_conv_batch_bitwise), cmocka_unit_test(test_threads_setting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
