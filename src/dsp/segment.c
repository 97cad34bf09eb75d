/*
 * dsp/segment.c — structural segmentation: where the song changes.
 *
 * 1. Units: beats (or 0.5 s blocks when fewer than 8 beats were found); per
 *    unit the mean of harmonic chroma (12, L2-normalised), an MFCC-like
 *    timbre vector (DCT-II of the mean log-mel, coefficients 1..12) and the
 *    loudness (dB of the mean RMS). Each dimension is z-scored over the song;
 *    the groups are weighted (chroma 1, timbre 1, loudness 2.5) so that a
 *    quiet→loud change counts as much as a change of harmony or timbre.
 * 2. Foote novelty: a Gaussian-tapered checkerboard kernel of K units each
 *    side (K ≈ 6 s of units) slid along the diagonal of the cosine
 *    self-similarity matrix (only the band |i-j| < 2K is computed).
 * 3. Boundaries: novelty peaks, strongest first, kept when above mean + 0.75
 *    std of the novelty and at least 8 s from every kept boundary and from
 *    both ends; at most duration/30 s + 1 boundaries (songs' sections last
 *    20-40 s; a 5-minute song gets at most 11).
 * 4. Labels: sections whose mean feature vectors have cosine similarity
 *    ≥ 0.75 with an earlier section take its label, else a new one.
 * Section energy and brightness are filled by the caller (analyze.c).
 */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "dsp/dsp_internal.h"

#define SEG_DIM (12 + 12 + 1)
#define SEG_MIN_LEN_S 8.0
#define SEG_LABEL_SIM 0.75

static double cosine(const float *a, const float *b, int d) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < d; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa > 1e-12 && bb > 1e-12 ? ab / sqrt(aa * bb) : 0.0;
}

m2p_code m2p_dsp_segment(const m2p_dsp_frames *fr, const float *chroma, const double *beats, size_t n_beats,
                         m2p_section **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    size_t n = fr->n;
    double dur = (double)fr->n_samples / fr->rate;
    m2p_code rc = M2P_E_NOMEM;
    size_t *ub = NULL; /* unit start frames, nu + 1 entries */
    float *feat = NULL, *band = NULL;
    double *nov = NULL;
    size_t *bounds = NULL;
    m2p_section *sec = NULL;
    float *means = NULL;

    /* 1. units */
    size_t nu = 0;
    size_t max_units = n_beats >= 8 ? n_beats + 1 : (size_t)(dur / 0.5) + 2;
    ub = m2p_malloc_array(max_units + 1, sizeof *ub);
    if (ub == NULL) {
        goto done;
    }
    ub[nu++] = 0;
    if (n_beats >= 8) {
        for (size_t i = 0; i < n_beats; i++) {
            size_t f = (size_t)lround(beats[i] * fr->fps);
            if (f > ub[nu - 1] && f < n && nu < max_units) {
                ub[nu++] = f;
            }
        }
    } else {
        size_t step = (size_t)lround(0.5 * fr->fps);
        step = step < 1 ? 1 : step;
        for (size_t f = step; f < n && nu < max_units; f += step) {
            ub[nu++] = f;
        }
    }
    ub[nu] = n; /* nu units: [ub[i], ub[i+1]) */
    if (n == 0 || nu < 4) {
        goto single;
    }

    feat = m2p_calloc(nu * SEG_DIM, sizeof *feat);
    if (feat == NULL) {
        goto done;
    }
#pragma omp parallel for schedule(static)
    for (size_t u = 0; u < nu; u++) {
        float *v = feat + u * SEG_DIM;
        double lm[M2P_DSP_MEL] = {0}, rms = 0;
        size_t cnt = ub[u + 1] - ub[u];
        for (size_t t = ub[u]; t < ub[u + 1]; t++) {
            for (int i = 0; i < 12; i++) {
                v[i] += chroma[t * 12 + i];
            }
            for (int m = 0; m < M2P_DSP_MEL; m++) {
                lm[m] += fr->logmel[t * M2P_DSP_MEL + m] / 10.0;
            }
            rms += (double)fr->rms[t] * fr->rms[t];
        }
        double l2 = 0;
        for (int i = 0; i < 12; i++) {
            l2 += (double)v[i] * v[i];
        }
        for (int i = 0; i < 12; i++) {
            v[i] = l2 > 0 ? (float)(v[i] / sqrt(l2)) : 0.0f;
        }
        for (int c = 1; c <= 12; c++) {
            double s = 0;
            for (int m = 0; m < M2P_DSP_MEL; m++) {
                s += lm[m] / (double)cnt * cos(M_PI * c * (m + 0.5) / M2P_DSP_MEL);
            }
            v[12 + c - 1] = (float)s;
        }
        v[24] = (float)(10.0 * log10(rms / (double)cnt + 1e-10));
    }
    /* z-score every dimension, then weight the groups */
    for (int d = 0; d < SEG_DIM; d++) {
        double m = 0, s = 0;
        for (size_t u = 0; u < nu; u++) {
            m += feat[u * SEG_DIM + d];
        }
        m /= (double)nu;
        for (size_t u = 0; u < nu; u++) {
            double x = feat[u * SEG_DIM + d] - m;
            s += x * x;
        }
        s = sqrt(s / (double)nu);
        double w = d < 12 ? 1.0 / sqrt(12.0) : d < 24 ? 1.0 / sqrt(12.0) : 2.5;
        for (size_t u = 0; u < nu; u++) {
            float *x = &feat[u * SEG_DIM + d];
            *x = s > 1e-9 ? (float)((*x - m) / s * w) : 0.0f;
        }
    }

    /* 2. novelty */
    double unit_s = dur / (double)nu;
    int K = (int)lround(6.0 / (unit_s > 1e-6 ? unit_s : 1e-6));
    K = K < 2 ? 2 : K > 64 ? 64 : K;
    size_t bw = (size_t)(2 * K);
    band = m2p_malloc_array(nu * bw, sizeof *band);
    nov = m2p_calloc(nu, sizeof *nov);
    if (band == NULL || nov == NULL) {
        goto done;
    }
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < nu; i++) {
        for (size_t d = 0; d < bw; d++) {
            band[i * bw + d] = i + d < nu ? (float)cosine(feat + i * SEG_DIM, feat + (i + d) * SEG_DIM, SEG_DIM) : 0.0f;
        }
    }
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < nu; i++) {
        double s = 0, wsum = 0;
        for (int a = -K; a < K; a++) {
            for (int b = -K; b < K; b++) {
                long p = (long)i + a, q = (long)i + b;
                if (p < 0 || q < 0 || (size_t)p >= nu || (size_t)q >= nu) {
                    continue;
                }
                long lo = p < q ? p : q, d = p < q ? q - p : p - q;
                if (d >= (long)bw) {
                    continue;
                }
                double za = (a + 0.5) / K, zb = (b + 0.5) / K;
                double g = exp(-2.0 * (za * za + zb * zb));
                double sign = ((a < 0) == (b < 0)) ? 1.0 : -1.0;
                s += sign * g * band[(size_t)lo * bw + (size_t)d];
                wsum += g;
            }
        }
        nov[i] = wsum > 0 ? s / wsum : 0.0;
    }

    /* 3. boundaries */
    {
        double m = 0, sd = 0;
        for (size_t i = 0; i < nu; i++) {
            m += nov[i];
        }
        m /= (double)nu;
        for (size_t i = 0; i < nu; i++) {
            sd += (nov[i] - m) * (nov[i] - m);
        }
        sd = sqrt(sd / (double)nu);
        double thr = m + 0.75 * sd;
        size_t max_b = (size_t)(dur / 30.0) + 1;
        bounds = m2p_malloc_array(max_b + 2, sizeof *bounds);
        if (bounds == NULL) {
            goto done;
        }
        size_t nbnd = 0;
        double min_gap = SEG_MIN_LEN_S;
        while (nbnd < max_b) {
            double best = thr;
            long arg = -1;
            for (size_t i = 1; i + 1 < nu; i++) {
                if (nov[i] <= best || nov[i] < nov[i - 1] || nov[i] < nov[i + 1]) {
                    continue;
                }
                double ts = (double)ub[i] / fr->fps;
                if (ts < min_gap || dur - ts < min_gap) {
                    continue;
                }
                bool ok = true;
                for (size_t k = 0; k < nbnd && ok; k++) {
                    if (fabs(ts - (double)ub[bounds[k]] / fr->fps) < min_gap) {
                        ok = false;
                    }
                }
                if (ok) {
                    best = nov[i];
                    arg = (long)i;
                }
            }
            if (arg < 0) {
                break;
            }
            bounds[nbnd++] = (size_t)arg;
        }
        /* sort boundaries */
        for (size_t a = 1; a < nbnd; a++) {
            size_t x = bounds[a], b = a;
            while (b > 0 && bounds[b - 1] > x) {
                bounds[b] = bounds[b - 1];
                b--;
            }
            bounds[b] = x;
        }
        size_t ns = nbnd + 1;
        sec = m2p_calloc(ns, sizeof *sec);
        means = m2p_calloc(ns * SEG_DIM, sizeof *means);
        if (sec == NULL || means == NULL) {
            goto done;
        }
        for (size_t s = 0; s < ns; s++) {
            size_t u0 = s == 0 ? 0 : bounds[s - 1];
            size_t u1 = s == nbnd ? nu : bounds[s];
            sec[s].start_s = s == 0 ? 0.0 : (double)ub[u0] / fr->fps;
            sec[s].end_s = s == nbnd ? dur : (double)ub[u1] / fr->fps;
            for (size_t u = u0; u < u1; u++) {
                for (int d = 0; d < SEG_DIM; d++) {
                    means[s * SEG_DIM + d] += feat[u * SEG_DIM + d] / (float)(u1 - u0);
                }
            }
        }
        /* 4. labels */
        int next = 0;
        for (size_t s = 0; s < ns; s++) {
            sec[s].label = -1;
            double bestsim = SEG_LABEL_SIM;
            for (size_t p = 0; p < s; p++) {
                double c = cosine(means + s * SEG_DIM, means + p * SEG_DIM, SEG_DIM);
                if (c >= bestsim) {
                    bestsim = c;
                    sec[s].label = sec[p].label;
                }
            }
            if (sec[s].label < 0) {
                sec[s].label = next++;
            }
        }
        *out = sec;
        *n_out = ns;
        sec = NULL;
        rc = M2P_OK;
        goto done;
    }

single:
    sec = m2p_calloc(1, sizeof *sec);
    if (sec == NULL) {
        goto done;
    }
    sec[0].start_s = 0;
    sec[0].end_s = dur;
    *out = sec;
    *n_out = 1;
    sec = NULL;
    rc = M2P_OK;
done:
    m2p_free(ub);
    m2p_free(feat);
    m2p_free(band);
    m2p_free(nov);
    m2p_free(bounds);
    m2p_free(sec);
    m2p_free(means);
    return rc;
}
