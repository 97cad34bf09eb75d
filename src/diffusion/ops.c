/*
 * diffusion/ops.c — the tensor operations of the inference engine (see ops.h).
 *
 * Matrix products go to OpenBLAS (cblas_sgemm, OpenMP build: it threads
 * itself). Element-wise and normalisation loops are threaded with OpenMP over
 * rows, channels or (batch, group) pairs. Reductions (norm statistics,
 * softmax sums) accumulate in double so that long rows (64·64·40 values per
 * group) keep fp32 accuracy.
 *
 * conv2d: a 1×1 stride-1 convolution is one sgemm per image
 * (y[cout, hw] = W[cout, cin] · x[cin, hw]). Any other convolution copies
 * input patches into the caller's workspace (im2col) one strip of output rows
 * at a time and runs one sgemm per strip with ldc = oh·ow, so the workspace
 * stays bounded (M2P_NN_IM2COL_CAP floats) even for a 512² VAE layer whose full
 * im2col matrix would take >1 GB.
 *
 * No function here allocates; no state is kept between calls.
 */
#include "diffusion/ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#if defined(__F16C__) && defined(__AVX__)
#include <immintrin.h>
#define M2P_HAVE_F16C 1
#endif

/* Upper bound of the im2col strip, in floats (32 MB). */
#define M2P_NN_IM2COL_CAP ((size_t)8 * 1024 * 1024)

void m2p_nn_linear(const float *x, int rows, int in, const float *w, const float *b, int out, float *y,
                   bool accumulate) {
    if (rows <= 0 || out <= 0) {
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, in, 1.0f, x, in, w, in, accumulate ? 1.0f : 0.0f,
                y, out);
    if (b != NULL) {
#pragma omp parallel for schedule(static) if ((size_t)rows * (size_t)out >= 262144)
        for (int r = 0; r < rows; r++) {
            float *yr = y + (size_t)r * (size_t)out;
            for (int o = 0; o < out; o++) {
                yr[o] += b[o];
            }
        }
    }
}

/* Output rows per im2col strip for this layer (≥ 1). */
static int conv_strip_rows(int cin, int k, int oh, int ow) {
    size_t per_row = (size_t)cin * (size_t)k * (size_t)k * (size_t)ow;
    size_t rows = per_row == 0 ? (size_t)oh : M2P_NN_IM2COL_CAP / per_row;
    if (rows < 1) {
        rows = 1;
    }
    if (rows > (size_t)oh) {
        rows = (size_t)oh;
    }
    return (int)rows;
}

size_t m2p_nn_conv2d_workspace(int cin, int h, int w, int k, int stride, int pad) {
    if (k == 1 && stride == 1 && pad == 0) {
        return 0;
    }
    int oh = (h + 2 * pad - k) / stride + 1;
    int ow = (w + 2 * pad - k) / stride + 1;
    if (oh <= 0 || ow <= 0) {
        return 0;
    }
    int strip = conv_strip_rows(cin, k, oh, ow);
    return (size_t)cin * (size_t)k * (size_t)k * (size_t)strip * (size_t)ow;
}

/* Fills col[(c·k + ky)·k + kx][r·ow + ox] for output rows oy0 .. oy0+nrows-1 of one image. */
static void im2col_strip(const float *x, int cin, int h, int w, int k, int stride, int pad, int oy0, int nrows, int ow,
                         float *col) {
    int kk = k * k;
    size_t ncols = (size_t)nrows * (size_t)ow;
#pragma omp parallel for schedule(static)
    for (int row = 0; row < cin * kk; row++) {
        int c = row / kk;
        int ky = (row % kk) / k;
        int kx = row % k;
        const float *xc = x + (size_t)c * (size_t)h * (size_t)w;
        float *dst = col + (size_t)row * ncols;
        for (int r = 0; r < nrows; r++) {
            int iy = (oy0 + r) * stride - pad + ky;
            float *d = dst + (size_t)r * (size_t)ow;
            if (iy < 0 || iy >= h) {
                memset(d, 0, sizeof(float) * (size_t)ow);
                continue;
            }
            const float *src = xc + (size_t)iy * (size_t)w;
            if (stride == 1) {
                /* ix = ox - pad + kx: valid for ox in [lo, hi). */
                int lo = pad - kx;
                int hi = w + pad - kx;
                if (lo < 0) {
                    lo = 0;
                }
                if (hi > ow) {
                    hi = ow;
                }
                if (lo > ow) {
                    lo = ow;
                }
                for (int ox = 0; ox < lo; ox++) {
                    d[ox] = 0.0f;
                }
                if (hi > lo) {
                    memcpy(d + lo, src + lo - pad + kx, sizeof(float) * (size_t)(hi - lo));
                } else {
                    hi = lo;
                }
                for (int ox = hi; ox < ow; ox++) {
                    d[ox] = 0.0f;
                }
            } else {
                for (int ox = 0; ox < ow; ox++) {
                    int ix = ox * stride - pad + kx;
                    d[ox] = (ix >= 0 && ix < w) ? src[ix] : 0.0f;
                }
            }
        }
    }
}

bool m2p_nn_conv2d_ex(const float *x, int n, int cin, int h, int w, const float *wt, const float *b, int cout, int k,
                      int stride, int pad, float *y, float *ws, size_t ws_floats) {
    int oh = (h + 2 * pad - k) / stride + 1;
    int ow = (w + 2 * pad - k) / stride + 1;
    if (n <= 0 || oh <= 0 || ow <= 0 || cout <= 0) {
        return true;
    }
    size_t ohw = (size_t)oh * (size_t)ow;
    size_t in_img = (size_t)cin * (size_t)h * (size_t)w;
    size_t out_img = (size_t)cout * ohw;
    int kdim = cin * k * k;
    bool direct = (k == 1 && stride == 1 && pad == 0);
    size_t per_row = (size_t)kdim * (size_t)ow;
    int strip = oh;
    if (!direct) {
        if (ws == NULL || ws_floats < per_row) {
            return false;
        }
        size_t fit = ws_floats / per_row;
        strip = fit < (size_t)oh ? (int)fit : oh;
    }
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * in_img;
        float *yi = y + (size_t)i * out_img;
        if (direct) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout, (int)ohw, cin, 1.0f, wt, cin, xi, (int)ohw,
                        0.0f, yi, (int)ohw);
        } else {
            for (int oy0 = 0; oy0 < oh; oy0 += strip) {
                int nrows = oh - oy0 < strip ? oh - oy0 : strip;
                int ncols = nrows * ow;
                im2col_strip(xi, cin, h, w, k, stride, pad, oy0, nrows, ow, ws);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout, ncols, kdim, 1.0f, wt, kdim, ws, ncols,
                            0.0f, yi + (size_t)oy0 * (size_t)ow, (int)ohw);
            }
        }
        if (b != NULL) {
#pragma omp parallel for schedule(static)
            for (int c = 0; c < cout; c++) {
                float *yc = yi + (size_t)c * ohw;
                float bc = b[c];
                for (size_t j = 0; j < ohw; j++) {
                    yc[j] += bc;
                }
            }
        }
    }
    return true;
}

void m2p_nn_conv2d(const float *x, int n, int cin, int h, int w, const float *wt, const float *b, int cout, int k,
                   int stride, int pad, float *y, float *ws) {
    bool ok = m2p_nn_conv2d_ex(x, n, cin, h, w, wt, b, cout, k, stride, pad, y, ws,
                               m2p_nn_conv2d_workspace(cin, h, w, k, stride, pad));
    (void)ok; /* only false for a NULL workspace, which the contract forbids */
}

static inline float silu1(float v) {
    return v / (1.0f + expf(-v));
}

void m2p_nn_group_norm(float *x, int n, int c, int hw, int groups, const float *gamma, const float *beta, float eps,
                       bool silu) {
    if (groups <= 0 || c % groups != 0) {
        return;
    }
    int cpg = c / groups;
    size_t len = (size_t)cpg * (size_t)hw;
#pragma omp parallel for schedule(static)
    for (int ng = 0; ng < n * groups; ng++) {
        int g = ng % groups;
        float *xg = x + (size_t)ng * len;
        double sum = 0.0;
        for (size_t j = 0; j < len; j++) {
            sum += xg[j];
        }
        double mean = sum / (double)len;
        double sq = 0.0;
        for (size_t j = 0; j < len; j++) {
            double d = xg[j] - mean;
            sq += d * d;
        }
        float inv = (float)(1.0 / sqrt(sq / (double)len + (double)eps));
        float fmean = (float)mean;
        for (int cc = 0; cc < cpg; cc++) {
            int ch = g * cpg + cc;
            float s = inv * (gamma != NULL ? gamma[ch] : 1.0f);
            float t = (beta != NULL ? beta[ch] : 0.0f) - fmean * s;
            float *xc = xg + (size_t)cc * (size_t)hw;
            if (silu) {
                for (int j = 0; j < hw; j++) {
                    xc[j] = silu1(xc[j] * s + t);
                }
            } else {
                for (int j = 0; j < hw; j++) {
                    xc[j] = xc[j] * s + t;
                }
            }
        }
    }
}

void m2p_nn_layer_norm(const float *x, int rows, int dim, const float *gamma, const float *beta, float eps, float *y) {
#pragma omp parallel for schedule(static) if ((size_t)rows * (size_t)dim >= 131072)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * (size_t)dim;
        float *yr = y + (size_t)r * (size_t)dim;
        double sum = 0.0;
        for (int j = 0; j < dim; j++) {
            sum += xr[j];
        }
        double mean = sum / dim;
        double sq = 0.0;
        for (int j = 0; j < dim; j++) {
            double d = xr[j] - mean;
            sq += d * d;
        }
        float inv = (float)(1.0 / sqrt(sq / dim + (double)eps));
        float fmean = (float)mean;
        for (int j = 0; j < dim; j++) {
            float v = (xr[j] - fmean) * inv;
            if (gamma != NULL) {
                v *= gamma[j];
            }
            if (beta != NULL) {
                v += beta[j];
            }
            yr[j] = v;
        }
    }
}

void m2p_nn_silu(float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (size_t i = 0; i < n; i++) {
        x[i] = silu1(x[i]);
    }
}

static inline float gelu1(float v) {
    return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
}

void m2p_nn_gelu(float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (size_t i = 0; i < n; i++) {
        x[i] = gelu1(x[i]);
    }
}

void m2p_nn_quick_gelu(float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (size_t i = 0; i < n; i++) {
        x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
    }
}

void m2p_nn_geglu(const float *in, int rows, int d, float *out) {
#pragma omp parallel for schedule(static) if ((size_t)rows * (size_t)d >= 65536)
    for (int r = 0; r < rows; r++) {
        const float *a = in + (size_t)r * 2 * (size_t)d;
        const float *g = a + d;
        float *o = out + (size_t)r * (size_t)d;
        for (int j = 0; j < d; j++) {
            o[j] = a[j] * gelu1(g[j]);
        }
    }
}

/* Score matrices up to this many floats run one (batch, head) per thread
 * (single-threaded sgemm inside): one parallel region instead of three per
 * head, which matters for CLIP's 77×77 heads. Larger ones use threaded sgemm. */
#define ATTN_SMALL ((size_t)65536)

size_t m2p_nn_attention_scratch(int tq, int tk) {
    if (tq <= 0 || tk <= 0) {
        return 0;
    }
    size_t one = (size_t)tq * (size_t)tk;
    return one <= ATTN_SMALL ? one * (size_t)omp_get_max_threads() : one;
}

/* Row-wise softmax of s[tq, tk] in place; causal zeroes j > i. */
static void softmax_rows(float *s, int tq, int tk, bool causal) {
#pragma omp parallel for schedule(static) if ((size_t)tq * (size_t)tk >= 16384)
    for (int i = 0; i < tq; i++) {
        float *row = s + (size_t)i * (size_t)tk;
        int lim = causal ? (i + 1 < tk ? i + 1 : tk) : tk;
        float mx = -INFINITY;
        for (int j = 0; j < lim; j++) {
            if (row[j] > mx) {
                mx = row[j];
            }
        }
        double sum = 0.0;
        for (int j = 0; j < lim; j++) {
            float e = expf(row[j] - mx);
            row[j] = e;
            sum += e;
        }
        float inv = sum > 0.0 ? (float)(1.0 / sum) : 0.0f;
        for (int j = 0; j < lim; j++) {
            row[j] *= inv;
        }
        for (int j = lim; j < tk; j++) {
            row[j] = 0.0f;
        }
    }
}

/* One (batch, head) pair: scores in s, result into out. */
static void attention_head(const float *q, int q_stride, const float *k, int k_stride, const float *v, int v_stride,
                           int tq, int tk, int dh, bool causal, float scale, float *out, int out_stride, float *s) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tq, tk, dh, scale, q, q_stride, k, k_stride, 0.0f, s, tk);
    softmax_rows(s, tq, tk, causal);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, tq, dh, tk, 1.0f, s, tk, v, v_stride, 0.0f, out,
                out_stride);
}

void m2p_nn_attention(const float *q, int q_stride, const float *k, int k_stride, const float *v, int v_stride, int b,
                      int tq, int tk, int heads, int dh, bool causal, float *out, int out_stride, float *scratch) {
    if (b <= 0 || tq <= 0 || tk <= 0 || heads <= 0 || dh <= 0) {
        return;
    }
    float scale = 1.0f / sqrtf((float)dh);
    size_t one = (size_t)tq * (size_t)tk;
    int pairs = b * heads;
    if (one <= ATTN_SMALL && pairs > 1) {
        int nt = omp_get_max_threads();
#pragma omp parallel num_threads(nt)
        {
            float *s = scratch + (size_t)omp_get_thread_num() * one;
#pragma omp for schedule(static)
            for (int p = 0; p < pairs; p++) {
                int bi = p / heads;
                size_t off = (size_t)(p % heads) * (size_t)dh;
                attention_head(q + (size_t)bi * (size_t)tq * (size_t)q_stride + off, q_stride,
                               k + (size_t)bi * (size_t)tk * (size_t)k_stride + off, k_stride,
                               v + (size_t)bi * (size_t)tk * (size_t)v_stride + off, v_stride, tq, tk, dh, causal,
                               scale, out + (size_t)bi * (size_t)tq * (size_t)out_stride + off, out_stride, s);
            }
        }
        return;
    }
    for (int p = 0; p < pairs; p++) {
        int bi = p / heads;
        size_t off = (size_t)(p % heads) * (size_t)dh;
        attention_head(q + (size_t)bi * (size_t)tq * (size_t)q_stride + off, q_stride,
                       k + (size_t)bi * (size_t)tk * (size_t)k_stride + off, k_stride,
                       v + (size_t)bi * (size_t)tk * (size_t)v_stride + off, v_stride, tq, tk, dh, causal, scale,
                       out + (size_t)bi * (size_t)tq * (size_t)out_stride + off, out_stride, scratch);
    }
}

void m2p_nn_upsample2x(const float *x, int n, int c, int h, int w, float *y) {
#pragma omp parallel for schedule(static)
    for (int nc = 0; nc < n * c; nc++) {
        const float *xp = x + (size_t)nc * (size_t)h * (size_t)w;
        float *yp = y + (size_t)nc * 4 * (size_t)h * (size_t)w;
        int w2 = 2 * w;
        for (int i = 0; i < h; i++) {
            float *r0 = yp + (size_t)(2 * i) * (size_t)w2;
            const float *src = xp + (size_t)i * (size_t)w;
            for (int j = 0; j < w; j++) {
                r0[2 * j] = src[j];
                r0[2 * j + 1] = src[j];
            }
            memcpy(r0 + w2, r0, sizeof(float) * (size_t)w2);
        }
    }
}

void m2p_nn_add(float *y, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (size_t i = 0; i < n; i++) {
        y[i] += x[i];
    }
}

void m2p_nn_add_channel(float *x, int n, int c, int hw, const float *v) {
#pragma omp parallel for schedule(static) if ((size_t)n * (size_t)c * (size_t)hw >= 65536)
    for (int nc = 0; nc < n * c; nc++) {
        float *xp = x + (size_t)nc * (size_t)hw;
        float a = v[nc];
        for (int j = 0; j < hw; j++) {
            xp[j] += a;
        }
    }
}

/* Blocked transpose of one [rows, cols] matrix into [cols, rows]. */
static void transpose_2d(const float *src, int rows, int cols, float *dst) {
    enum { BS = 32 };
#pragma omp parallel for schedule(static) if ((size_t)rows * (size_t)cols >= 65536)
    for (int r0 = 0; r0 < rows; r0 += BS) {
        int r1 = r0 + BS < rows ? r0 + BS : rows;
        for (int c0 = 0; c0 < cols; c0 += BS) {
            int c1 = c0 + BS < cols ? c0 + BS : cols;
            for (int r = r0; r < r1; r++) {
                for (int cc = c0; cc < c1; cc++) {
                    dst[(size_t)cc * (size_t)rows + (size_t)r] = src[(size_t)r * (size_t)cols + (size_t)cc];
                }
            }
        }
    }
}

void m2p_nn_nchw_to_nhwc(const float *x, int n, int c, int hw, float *y) {
    size_t img = (size_t)c * (size_t)hw;
    for (int i = 0; i < n; i++) {
        transpose_2d(x + (size_t)i * img, c, hw, y + (size_t)i * img);
    }
}

void m2p_nn_nhwc_to_nchw(const float *x, int n, int c, int hw, float *y) {
    size_t img = (size_t)c * (size_t)hw;
    for (int i = 0; i < n; i++) {
        transpose_2d(x + (size_t)i * img, hw, c, y + (size_t)i * img);
    }
}

/* IEEE half → float without F16C (handles subnormals, inf, NaN). */
static float half_to_float(unsigned short hbits) {
    unsigned sign = (hbits >> 15) & 1u;
    unsigned expo = (hbits >> 10) & 0x1fu;
    unsigned mant = hbits & 0x3ffu;
    float v;
    if (expo == 0) {
        v = ldexpf((float)mant, -24);
    } else if (expo == 31) {
        v = mant != 0 ? NAN : INFINITY;
    } else {
        v = ldexpf((float)(mant | 0x400u), (int)expo - 25);
    }
    return sign ? -v : v;
}

void m2p_nn_f16_to_f32(const unsigned short *src, float *dst, size_t n) {
    size_t i = 0;
#ifdef M2P_HAVE_F16C
    for (; i + 8 <= n; i += 8) {
        __m128i h;
        memcpy(&h, src + i, sizeof h);
        __m256 f = _mm256_cvtph_ps(h);
        _mm256_storeu_ps(dst + i, f);
    }
#endif
    for (; i < n; i++) {
        dst[i] = half_to_float(src[i]);
    }
}

void m2p_nn_bf16_to_f32(const unsigned short *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned u = (unsigned)src[i] << 16;
        float f;
        memcpy(&f, &u, sizeof f);
        dst[i] = f;
    }
}

static _Atomic int g_threads; /* the `threads` setting; 0 = default */

void m2p_nn_set_threads(int n) {
    g_threads = n > 0 ? n : 0;
    m2p_nn_apply_threads();
}

void m2p_nn_apply_threads(void) {
    int n = g_threads;
    if (n > 0 && omp_get_max_threads() != n) {
        omp_set_num_threads(n);
        openblas_set_num_threads(n);
    }
}

int m2p_nn_threads(void) {
    return omp_get_max_threads();
}

void m2p_nn_scale(float *x, size_t n, float s) {
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (size_t i = 0; i < n; i++) {
        x[i] *= s;
    }
}

/* --- Winograd F(2×2, 3×3) ------------------------------------------------------------------------
 * Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A per 4×4 input tile d / 2×2 output tile, with
 *   Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1],
 *   Aᵀ = [1 1 1 0; 0 1 -1 -1].
 * The element-wise products over channels become 16 sgemms [cout × cin]·[cin × tiles].
 * Workspace: U (16·cout·cin), then per strip of tile rows V (16·cin·T) and M (16·cout·T). */

#define WINO_STRIP_CAP ((size_t)32 * 1024 * 1024) /* floats of V + M per strip (128 MB) */
#define WINO_FT_BLOCK 256                         /* filters per block of the filter transform */

/* Tiles per strip (a multiple of the tiles of one row, ≥ one row). */
static size_t wino_strip_tiles(int cin, int cout, int tw, int th) {
    size_t per_row = (size_t)16 * ((size_t)cin + (size_t)cout) * (size_t)tw;
    size_t rows = WINO_STRIP_CAP / per_row;
    if (rows < 1) {
        rows = 1;
    }
    if (rows > (size_t)th) {
        rows = (size_t)th;
    }
    return rows * (size_t)tw;
}

size_t m2p_nn_conv3x3_workspace(int cin, int cout, int h, int w) {
    if (cin <= 0 || cout <= 0 || h <= 0 || w <= 0) {
        return 0;
    }
    int th = (h + 1) / 2, tw = (w + 1) / 2;
    size_t t = wino_strip_tiles(cin, cout, tw, th);
    return (size_t)16 * (size_t)cout * (size_t)cin + (size_t)16 * ((size_t)cin + (size_t)cout) * t;
}

void m2p_nn_conv3x3(const float *x, int n, int cin, int h, int w, const float *wt, const float *b, int cout, float *y,
                    float *ws) {
    bool ok = m2p_nn_conv3x3_ex(x, n, cin, h, w, wt, b, cout, y, ws, m2p_nn_conv3x3_workspace(cin, cout, h, w));
    (void)ok; /* only false for a workspace smaller than the contract's */
}

bool m2p_nn_conv3x3_ex(const float *x, int n, int cin, int h, int w, const float *wt, const float *b, int cout,
                       float *y, float *ws, size_t ws_floats) {
    if (n <= 0 || cin <= 0 || cout <= 0 || h <= 0 || w <= 0) {
        return true;
    }
    int th = (h + 1) / 2, tw = (w + 1) / 2;
    size_t cc = (size_t)cout * (size_t)cin;
    size_t per_tile = (size_t)16 * ((size_t)cin + (size_t)cout);
    if (ws == NULL || ws_floats < 16 * cc + per_tile) {
        return false;
    }
    size_t strip = (ws_floats - 16 * cc) / per_tile;
    if (strip > (size_t)th * (size_t)tw) {
        strip = (size_t)th * (size_t)tw;
    }
    float *U = ws;
    float *V = U + 16 * cc;
    float *M = V + (size_t)16 * (size_t)cin * strip;
    /* Filter transform U[k][o][c] = (G g Gᵀ)[k], WINO_FT_BLOCK filters at a time: the taps are
     * gathered into [9][block] rows first so that every loop below runs over consecutive
     * filters (vectorised) and each of the 16 outputs is written as one contiguous run
     * (3× faster than one filter at a time with 16 scattered stores; same values). */
    size_t nfb = (cc + WINO_FT_BLOCK - 1) / WINO_FT_BLOCK;
#pragma omp parallel for schedule(static)
    for (size_t fb = 0; fb < nfb; fb++) {
        size_t o0 = fb * WINO_FT_BLOCK;
        size_t m = cc - o0 < WINO_FT_BLOCK ? cc - o0 : WINO_FT_BLOCK;
        float g[9][WINO_FT_BLOCK];
        float t[4][3][WINO_FT_BLOCK];
        for (size_t i = 0; i < m; i++) {
            for (int a = 0; a < 9; a++) {
                g[a][i] = wt[(o0 + i) * 9 + (size_t)a];
            }
        }
        for (int j = 0; j < 3; j++) {
            for (size_t i = 0; i < m; i++) {
                t[0][j][i] = g[j][i];
                t[1][j][i] = 0.5f * (g[j][i] + g[3 + j][i] + g[6 + j][i]);
                t[2][j][i] = 0.5f * (g[j][i] - g[3 + j][i] + g[6 + j][i]);
                t[3][j][i] = g[6 + j][i];
            }
        }
        for (int r = 0; r < 4; r++) {
            float *u0 = U + (size_t)(r * 4 + 0) * cc + o0;
            float *u1 = U + (size_t)(r * 4 + 1) * cc + o0;
            float *u2 = U + (size_t)(r * 4 + 2) * cc + o0;
            float *u3 = U + (size_t)(r * 4 + 3) * cc + o0;
            for (size_t i = 0; i < m; i++) {
                float a = t[r][0][i], bb = t[r][1][i], c = t[r][2][i];
                u0[i] = a;
                u1[i] = 0.5f * (a + bb + c);
                u2[i] = 0.5f * (a - bb + c);
                u3[i] = c;
            }
        }
    }
    size_t hw = (size_t)h * (size_t)w;
    size_t ntiles = (size_t)th * (size_t)tw;
    /* One parallel region per strip, three phases separated by barriers; the 16
     * sgemms are spread over the threads, each single-threaded (OpenBLAS runs
     * one thread inside a parallel region). Few fork/joins: on a loaded
     * machine each costs a scheduler time slice. */
    for (int img = 0; img < n; img++) {
        const float *xi = x + (size_t)img * (size_t)cin * hw;
        float *yi = y + (size_t)img * (size_t)cout * hw;
        for (size_t t0 = 0; t0 < ntiles; t0 += strip) {
            size_t nt = ntiles - t0 < strip ? ntiles - t0 : strip;
#pragma omp parallel
            {
                /* Input transform V[k][c][t]. */
#pragma omp for schedule(static)
                for (int c = 0; c < cin; c++) {
                    const float *xc = xi + (size_t)c * hw;
                    for (size_t t = 0; t < nt; t++) {
                        int ty = (int)((t0 + t) / (size_t)tw), tx = (int)((t0 + t) % (size_t)tw);
                        int y0 = 2 * ty - 1, x0 = 2 * tx - 1;
                        float d[4][4];
                        if (y0 >= 0 && y0 + 3 < h && x0 >= 0 && x0 + 3 < w) {
                            /* Interior tile: no bounds checks. */
                            const float *src = xc + (size_t)y0 * (size_t)w + (size_t)x0;
                            for (int i = 0; i < 4; i++) {
                                memcpy(d[i], src + (size_t)i * (size_t)w, sizeof d[i]);
                            }
                        } else {
                            for (int i = 0; i < 4; i++) {
                                int iy = y0 + i;
                                for (int j = 0; j < 4; j++) {
                                    int ix = x0 + j;
                                    d[i][j] = (iy >= 0 && iy < h && ix >= 0 && ix < w)
                                                  ? xc[(size_t)iy * (size_t)w + (size_t)ix]
                                                  : 0.0f;
                                }
                            }
                        }
                        float r[4][4];
                        for (int j = 0; j < 4; j++) {
                            r[0][j] = d[0][j] - d[2][j];
                            r[1][j] = d[1][j] + d[2][j];
                            r[2][j] = d[2][j] - d[1][j];
                            r[3][j] = d[1][j] - d[3][j];
                        }
                        for (int i = 0; i < 4; i++) {
                            float v4[4] = {r[i][0] - r[i][2], r[i][1] + r[i][2], r[i][2] - r[i][1],
                                           r[i][1] - r[i][3]};
                            for (int j = 0; j < 4; j++) {
                                V[((size_t)(i * 4 + j) * (size_t)cin + (size_t)c) * nt + t] = v4[j];
                            }
                        }
                    }
                }
#pragma omp for schedule(static)
                for (int k = 0; k < 16; k++) {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout, (int)nt, cin, 1.0f,
                                U + (size_t)k * cc, cin, V + (size_t)k * (size_t)cin * nt, (int)nt, 0.0f,
                                M + (size_t)k * (size_t)cout * nt, (int)nt);
                }
                /* Output transform. */
#pragma omp for schedule(static)
                for (int o = 0; o < cout; o++) {
                    float bo = b != NULL ? b[o] : 0.0f;
                    float *yo = yi + (size_t)o * hw;
                    for (size_t t = 0; t < nt; t++) {
                        float m[4][4];
                        for (int k = 0; k < 16; k++) {
                            m[k / 4][k % 4] = M[((size_t)k * (size_t)cout + (size_t)o) * nt + t];
                        }
                        float s2[2][4];
                        for (int j = 0; j < 4; j++) {
                            s2[0][j] = m[0][j] + m[1][j] + m[2][j];
                            s2[1][j] = m[1][j] - m[2][j] - m[3][j];
                        }
                        int ty = (int)((t0 + t) / (size_t)tw), tx = (int)((t0 + t) % (size_t)tw);
                        for (int i = 0; i < 2; i++) {
                            int oy = 2 * ty + i;
                            if (oy >= h) {
                                continue;
                            }
                            yo[(size_t)oy * (size_t)w + (size_t)(2 * tx)] = s2[i][0] + s2[i][1] + s2[i][2] + bo;
                            if (2 * tx + 1 < w) {
                                yo[(size_t)oy * (size_t)w + (size_t)(2 * tx + 1)] = s2[i][1] - s2[i][2] - s2[i][3] + bo;
                            }
                        }
                    }
                }
            }
        }
    }
    return true;
}
