/*
 * diffusion/unet_ops.c — blocked multi-head attention for the UNet (see
 * unet_ops.h). Stateless; the caller provides the scratch.
 *
 * exp: Cody–Waite range reduction x = n·ln2 + r, |r| ≤ ln2/2, a degree-6
 * polynomial for e^r (Cephes expf coefficients), 2^n through the exponent
 * bits; written branch-free so the softmax loop vectorises (AVX2 intrinsics
 * when available, the same arithmetic in scalar code otherwise).
 */
#include "diffusion/unet_ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define UNET_AVX2 1
#endif

#define EXP_HI 88.0f
#define EXP_LO (-87.0f)
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f
#define LN2_LO (-2.12194440e-4f)
#define P0 1.9875691500e-4f
#define P1 1.3981999507e-3f
#define P2 8.3334519073e-3f
#define P3 4.1665795894e-2f
#define P4 1.6666665459e-1f
#define P5 5.0000001201e-1f

float m2p_unet_expf(float x) {
    if (x < EXP_LO) {
        return 0.0f;
    }
    if (x > EXP_HI) {
        x = EXP_HI;
    }
    float n = floorf(x * LOG2E + 0.5f);
    float r = x - n * LN2_HI;
    r = r - n * LN2_LO;
    float r2 = r * r;
    float p = P0;
    p = p * r + P1;
    p = p * r + P2;
    p = p * r + P3;
    p = p * r + P4;
    p = p * r + P5;
    p = p * r2 + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &e, sizeof scale);
    return p * scale;
}

#ifdef UNET_AVX2
static inline __m256 exp8(__m256 x) {
    __m256 lo_mask = _mm256_cmp_ps(x, _mm256_set1_ps(EXP_LO), _CMP_LT_OQ);
    x = _mm256_min_ps(x, _mm256_set1_ps(EXP_HI));
    x = _mm256_max_ps(x, _mm256_set1_ps(EXP_LO));
    __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(LOG2E), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    __m256 r2 = _mm256_mul_ps(r, r);
    __m256 p = _mm256_set1_ps(P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P5));
    p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 res = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(lo_mask, res);
}
#endif

/* row[0..n) ← exp(row − max); returns the sum (accumulated in double per 8-lane chunk). */
static double exp_row(float *row, int n) {
    float mx = -INFINITY;
    int j = 0;
#ifdef UNET_AVX2
    __m256 vmx = _mm256_set1_ps(-INFINITY);
    for (; j + 8 <= n; j += 8) {
        vmx = _mm256_max_ps(vmx, _mm256_loadu_ps(row + j));
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, vmx);
    for (int l = 0; l < 8; l++) {
        mx = lanes[l] > mx ? lanes[l] : mx;
    }
#endif
    for (; j < n; j++) {
        mx = row[j] > mx ? row[j] : mx;
    }
    double sum = 0.0;
    j = 0;
#ifdef UNET_AVX2
    __m256 vm = _mm256_set1_ps(mx);
    __m256 acc = _mm256_setzero_ps();
    for (; j + 8 <= n; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + j), vm));
        _mm256_storeu_ps(row + j, e);
        acc = _mm256_add_ps(acc, e);
    }
    _mm256_storeu_ps(lanes, acc);
    for (int l = 0; l < 8; l++) {
        sum += lanes[l];
    }
#endif
    for (; j < n; j++) {
        float e = m2p_unet_expf(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    return sum;
}

size_t m2p_unet_attention_scratch(int tk) {
    int threads = omp_get_max_threads();
    if (threads < 1) {
        threads = 1;
    }
    return (size_t)threads * (size_t)M2P_UNET_ATTN_QBLOCK * ((size_t)(tk > 0 ? tk : 1) + 1);
}

void m2p_unet_attention(const float *q, int q_stride, const float *k, int k_stride, size_t k_batch_stride,
                        const float *v, int v_stride, size_t v_batch_stride, int b, int tq, int tk, int heads, int dh,
                        float *out, int out_stride, float *scratch) {
    if (b <= 0 || tq <= 0 || tk <= 0 || heads <= 0 || dh <= 0) {
        return;
    }
    const int qb = M2P_UNET_ATTN_QBLOCK;
    const int nblk = (tq + qb - 1) / qb;
    const long tasks = (long)b * heads * nblk;
    const float scale = 1.0f / sqrtf((float)dh);
    const size_t per_thread = (size_t)qb * ((size_t)tk + 1);
    const int max_threads = omp_get_max_threads();
#pragma omp parallel num_threads(max_threads > 0 ? max_threads : 1)
    {
        int tid = omp_get_thread_num();
        float *s = scratch + (size_t)tid * per_thread;
        float *inv = s + (size_t)qb * (size_t)tk;
#pragma omp for schedule(dynamic, 1)
        for (long task = 0; task < tasks; task++) {
            int blk = (int)(task % nblk);
            int h = (int)((task / nblk) % heads);
            int bi = (int)(task / ((long)nblk * heads));
            int q0 = blk * qb;
            int m = tq - q0 < qb ? tq - q0 : qb;
            size_t hoff = (size_t)h * (size_t)dh;
            const float *qp = q + ((size_t)bi * (size_t)tq + (size_t)q0) * (size_t)q_stride + hoff;
            const float *kp = k + (size_t)bi * k_batch_stride + hoff;
            const float *vp = v + (size_t)bi * v_batch_stride + hoff;
            float *op = out + ((size_t)bi * (size_t)tq + (size_t)q0) * (size_t)out_stride + hoff;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, tk, dh, scale, qp, q_stride, kp, k_stride, 0.0f, s,
                        tk);
            for (int i = 0; i < m; i++) {
                double sum = exp_row(s + (size_t)i * (size_t)tk, tk);
                inv[i] = sum > 0.0 ? (float)(1.0 / sum) : 0.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, dh, tk, 1.0f, s, tk, vp, v_stride, 0.0f, op,
                        out_stride);
            for (int i = 0; i < m; i++) {
                float *o = op + (size_t)i * (size_t)out_stride;
                for (int d = 0; d < dh; d++) {
                    o[d] *= inv[i];
                }
            }
        }
    }
}
