/*
 * dsp/hpss.c — median filters and the harmonic/percussive share.
 *
 * Median-filtering HPSS (Fitzgerald 2010, as librosa.decompose.hpss): on a
 * magnitude spectrogram X, H = median of X along time (17 frames, ~0.4 s),
 * P = median of X along frequency (9 mel bands); soft masks
 * Mh = H²/(H²+P²), Mp = P²/(H²+P²). The percussive share is
 * Σ Mp·X / Σ X over the song. We run it on the 64-band mel magnitudes
 * (not the 1025-bin STFT): percussive events are broadband, so the mel
 * resolution is enough, and it is ~16x cheaper.
 *
 * Time medians use a sliding sorted window (O(k) per step); the
 * frequency medians sort 9 values, on every second frame (the share is a
 * song-wide ratio, which half the frames estimate as well).
 */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "dsp/dsp_internal.h"

float m2p_dsp_median_small(const float *v, int n) {
    float t[64];
    if (n <= 0) {
        return 0.0f;
    }
    if (n > 64) {
        n = 64;
    }
    for (int i = 0; i < n; i++) {
        float x = v[i];
        int j = i;
        while (j > 0 && t[j - 1] > x) {
            t[j] = t[j - 1];
            j--;
        }
        t[j] = x;
    }
    return t[n / 2];
}

void m2p_dsp_median_time(const float *in, size_t istride, size_t n, int half, float *out, size_t ostride) {
    float win[64];
    int cnt = 0;
    if (half > 31) {
        half = 31;
    }
    size_t next_in = 0; /* next sample to insert */
    for (size_t t = 0; t < n; t++) {
        size_t want_hi = t + (size_t)half < n - 1 ? t + (size_t)half : n - 1;
        while (next_in <= want_hi) {
            float x = in[next_in * istride];
            int j = cnt;
            while (j > 0 && win[j - 1] > x) {
                win[j] = win[j - 1];
                j--;
            }
            win[j] = x;
            cnt++;
            next_in++;
        }
        if (t > (size_t)half) {
            float x = in[(t - (size_t)half - 1) * istride];
            int j = 0;
            while (j < cnt - 1 && win[j] != x) {
                j++;
            }
            memmove(win + j, win + j + 1, (size_t)(cnt - j - 1) * sizeof(float));
            cnt--;
        }
        out[t * ostride] = win[cnt / 2];
    }
}

double m2p_dsp_percussive_share(const m2p_dsp_frames *fr) {
    size_t n = fr->n;
    if (n < 3) {
        return 0.0;
    }
    float *mag = m2p_malloc_array(n * M2P_DSP_MEL, sizeof *mag);
    float *harm = m2p_malloc_array(n * M2P_DSP_MEL, sizeof *harm);
    if (mag == NULL || harm == NULL) {
        m2p_free(mag);
        m2p_free(harm);
        return 0.0;
    }
    for (size_t i = 0; i < n * M2P_DSP_MEL; i++) {
        mag[i] = sqrtf(fr->mel[i]);
    }
#pragma omp parallel for schedule(static)
    for (int b = 0; b < M2P_DSP_MEL; b++) {
        m2p_dsp_median_time(mag + b, M2P_DSP_MEL, n, 8, harm + b, M2P_DSP_MEL);
    }
    double sp = 0, sx = 0;
    /* The share is a song-wide ratio: every second frame estimates it as well. */
#pragma omp parallel for schedule(static) reduction(+ : sp, sx)
    for (size_t t = 0; t < n; t += 2) {
        const float *x = mag + t * M2P_DSP_MEL;
        const float *h = harm + t * M2P_DSP_MEL;
        for (int b = 0; b < M2P_DSP_MEL; b++) {
            int lo = b - 4 < 0 ? 0 : b - 4, hi = b + 4 >= M2P_DSP_MEL ? M2P_DSP_MEL - 1 : b + 4;
            float p = m2p_dsp_median_small(x + lo, hi - lo + 1);
            float h2 = h[b] * h[b], p2 = p * p;
            float den = h2 + p2;
            if (den > 1e-20f) {
                sp += (double)x[b] * (p2 / den);
            }
            sx += x[b];
        }
    }
    m2p_free(mag);
    m2p_free(harm);
    return sx > 1e-12 ? sp / sx : 0.0;
}
