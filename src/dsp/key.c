/*
 * dsp/key.c — tuning, harmonic chroma and the key of the song.
 *
 * 1. Tuning: the front end's cents histogram of spectral peaks (weighted by
 *    amplitude) is smoothed circularly (±7 cents); its maximum is the song's
 *    deviation from A440, so a song tuned 30 cents sharp still maps every
 *    note to the right pitch class.
 * 2. Semitone spectrogram: the 1/3-semitone pitch bins are read at the tuned
 *    semitone centres with a triangular kernel (72 semitones, A1..G#7).
 * 3. Harmonic part: a 17-frame (~0.4 s) median along time per semitone
 *    (the H of median-filter HPSS): drums and note attacks, which are short,
 *    are removed; sustained notes stay.
 * 4. Chroma: each frame's semitones are log-compressed (log1p(100 x / max)),
 *    bass notes (below C3) weighted x1.5, and folded to 12 pitch classes.
 *    The song profile is the sum over frames.
 * 5. Key: Pearson correlation of the profile with the 24 rotations of a key
 *    profile (KEY_PROFILE below: Krumhansl–Kessler by default; Temperley's
 *    Kostka–Payne and Albrecht–Shanahan are kept for comparison, see
 *    docs/notes/dsp-bench.md) made harmonic-aware: each value also feeds the
 *    fifth (3rd partial, x KEY_H3) and major third (5th partial, x KEY_H5)
 *    above it, as an audio chroma hears them. The best correlation wins.
 *    confidence = clamp(r_best - r_second_best, 0, 0.25) * 4 * clamp(r_best, 0, 1).
 */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "dsp/dsp_internal.h"

/* Key profiles, tonic first. */
static const double k_prof[3][2][12] = {
    /* 0: Temperley (Kostka-Payne) */
    {{0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400},
     {0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330}},
    /* 1: Krumhansl-Kessler */
    {{6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88},
     {6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17}},
    /* 2: Albrecht-Shanahan */
    {{0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081},
     {0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061, 0.052}},
};

#ifndef KEY_PROFILE
#define KEY_PROFILE 1
#endif
#ifndef KEY_BASS_WEIGHT
#define KEY_BASS_WEIGHT 1.5
#endif
#define KEY_BASS_BELOW 48 /* MIDI C3 */
#define KEY_LOG_GAIN 100.0f
#ifndef KEY_H3
#define KEY_H3 0.3
#endif
#ifndef KEY_H5
#define KEY_H5 0.15
#endif
#ifndef KEY_MAX_MIDI
#define KEY_MAX_MIDI 200
#endif

static double pearson(const double *a, const double *b) {
    double ma = 0, mb = 0;
    for (int i = 0; i < 12; i++) {
        ma += a[i];
        mb += b[i];
    }
    ma /= 12;
    mb /= 12;
    double num = 0, da = 0, db = 0;
    for (int i = 0; i < 12; i++) {
        num += (a[i] - ma) * (b[i] - mb);
        da += (a[i] - ma) * (a[i] - ma);
        db += (b[i] - mb) * (b[i] - mb);
    }
    return da > 0 && db > 0 ? num / sqrt(da * db) : 0.0;
}

/* Tuning in cents (-50..50) from the histogram. */
static double tuning_cents(const double *hist) {
    double best = -1, arg = 50;
    for (int c = 0; c < M2P_DSP_TUNING_BINS; c++) {
        double s = 0;
        for (int d = -7; d <= 7; d++) {
            int i = (c + d + M2P_DSP_TUNING_BINS) % M2P_DSP_TUNING_BINS;
            s += hist[i] * (8 - abs(d));
        }
        if (s > best) {
            best = s;
            arg = c;
        }
    }
    return best > 0 ? arg - 50 + 0.5 : 0.0;
}

m2p_code m2p_dsp_key_estimate(const m2p_dsp_frames *fr, float *chroma_out, m2p_dsp_key *out) {
    memset(out, 0, sizeof *out);
    size_t n = fr->n;
    if (n == 0) {
        return M2P_OK;
    }
    out->tuning_cents = tuning_cents(fr->tuning);
    float *semi = m2p_malloc_array(n * M2P_DSP_SEMITONES, sizeof *semi);
    float *harm = m2p_malloc_array(n * M2P_DSP_SEMITONES, sizeof *harm);
    if (semi == NULL || harm == NULL) {
        m2p_free(semi);
        m2p_free(harm);
        return M2P_E_NOMEM;
    }
    /* Triangular read-out at the tuned semitone centres (half-width 1.5 sub-bins). */
    double delta = out->tuning_cents / 100.0;
#pragma omp parallel for schedule(static)
    for (size_t t = 0; t < n; t++) {
        const float *p = fr->pitch + t * M2P_DSP_PITCH;
        float *s = semi + t * M2P_DSP_SEMITONES;
        for (int k = 0; k < M2P_DSP_SEMITONES; k++) {
            double pos = (k + delta) * M2P_DSP_PITCH_SUB + 1.0;
            int j0 = (int)floor(pos - 1.5), j1 = (int)ceil(pos + 1.5);
            float acc = 0;
            for (int j = j0; j <= j1; j++) {
                if (j < 0 || j >= M2P_DSP_PITCH) {
                    continue;
                }
                double w = 1.0 - fabs(j - pos) / 1.5;
                if (w > 0) {
                    acc += (float)w * p[j];
                }
            }
            s[k] = acc;
        }
    }
#pragma omp parallel for schedule(static)
    for (int k = 0; k < M2P_DSP_SEMITONES; k++) {
        m2p_dsp_median_time(semi + k, M2P_DSP_SEMITONES, n, 8, harm + k, M2P_DSP_SEMITONES);
    }
    float hmax = 0;
    for (size_t i = 0; i < n * M2P_DSP_SEMITONES; i++) {
        hmax = harm[i] > hmax ? harm[i] : hmax;
    }
    double prof[12] = {0};
    if (hmax > 1e-9f) {
        float g = KEY_LOG_GAIN / hmax;
        for (size_t t = 0; t < n; t++) {
            const float *h = harm + t * M2P_DSP_SEMITONES;
            float c[12] = {0};
            for (int k = 0; k < M2P_DSP_SEMITONES; k++) {
                int midi = M2P_DSP_PITCH_LO + k;
                if (midi > KEY_MAX_MIDI) {
                    break;
                }
                float v = log1pf(g * h[k]);
                c[midi % 12] += midi < KEY_BASS_BELOW ? (float)KEY_BASS_WEIGHT * v : v;
            }
            for (int i = 0; i < 12; i++) {
                prof[i] += c[i];
            }
            if (chroma_out != NULL) {
                float mx = 0;
                for (int i = 0; i < 12; i++) {
                    mx = c[i] > mx ? c[i] : mx;
                }
                for (int i = 0; i < 12; i++) {
                    chroma_out[t * 12 + i] = mx > 0 ? c[i] / mx : 0.0f;
                }
            }
        }
    } else if (chroma_out != NULL) {
        memset(chroma_out, 0, n * 12 * sizeof(float));
    }
    m2p_free(semi);
    m2p_free(harm);

    double mx = 0;
    for (int i = 0; i < 12; i++) {
        mx = prof[i] > mx ? prof[i] : mx;
    }
    if (mx <= 0) {
        return M2P_OK; /* no pitched content: C major, confidence 0 */
    }
    for (int i = 0; i < 12; i++) {
        out->chroma[i] = prof[i] / mx;
    }
    double best = -2, second = -2;
    for (int mode = 0; mode < 2; mode++) {
        for (int tonic = 0; tonic < 12; tonic++) {
            double rot[12];
            for (int i = 0; i < 12; i++) {
                const double *pr = k_prof[KEY_PROFILE][mode];
                /* the profile as audio sounds: each note also feeds its 3rd (fifth) and 5th (major third) harmonic */
                rot[i] = pr[(i - tonic + 12) % 12] + KEY_H3 * pr[(i - tonic - 7 + 24) % 12] +
                         KEY_H5 * pr[(i - tonic - 4 + 24) % 12];
            }
            double r = pearson(out->chroma, rot);
            if (r > best) {
                second = best;
                best = r;
                out->key = tonic;
                out->mode = mode == 0 ? M2P_MODE_MAJOR : M2P_MODE_MINOR;
            } else if (r > second) {
                second = r;
            }
        }
    }
    double gap = best - second;
    gap = gap < 0 ? 0 : gap > 0.25 ? 0.25 : gap;
    double rb = best < 0 ? 0 : best > 1 ? 1 : best;
    out->confidence = gap * 4.0 * rb;
    return M2P_OK;
}
