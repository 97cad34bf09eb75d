/*
 * dsp/tempo.c — onset envelope, tempo (with metrical-level choice) and beats.
 *
 * 1. Onset envelope: spectral flux of the log-mel rows (dB, floored 80 dB
 *    under the song's loudest cell), positive differences averaged over bands.
 * 2. Periodicity: autocorrelation A(τ) of the high-passed, lightly smoothed
 *    envelope; every candidate tempo b (40..240 BPM, 0.5 % steps) gets a comb
 *    salience S(b) = mean of A at 1..4 multiples of its period, times a broad
 *    log-normal prior around 120 BPM (σ = 1 octave). The best is b0.
 * 3. Metrical level: beats are tracked at b0 (Ellis' dynamic programme,
 *    as in librosa) and the accent pattern of the tracked beats decides the
 *    octave (rules and thresholds at LEVEL_* below: halve when alternate
 *    beats are much weaker or nothing happens between beats, or when beats
 *    4k and 4k+2 differ in high/low band balance as a kick and a snare do:
 *    the backbeat is two pulses apart; double when the
 *    midpoints are nearly as strong, or eighth-note hats fill the quarter
 *    points while alternate beats are alike); then beats are tracked again at
 *    the chosen tempo. Kick/snare accents are read on the low-band envelope
 *    (below 3 kHz), the hats on the full-band one, the snare's balance on
 *    the bands above 3 kHz (derived from the two).
 * 4. Tempo = 60 / mean inter-beat interval of the consistent beats
 *    (falls back to b when there are too few beats).
 * All inputs are finite; nothing here allocates more than O(n).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "dsp/dsp_internal.h"

#define TEMPO_MIN 40.0
#define TEMPO_MAX 240.0
#define TEMPO_PRIOR_BPM 120.0
#define TEMPO_PRIOR_OCT 1.0
/* Metrical-level rules (accents measured on the floor-subtracted envelopes):
 * down (halve) when alternate pulses are much weaker, or when nothing happens
 * between pulses (nowhere in the middle half of the interval, so swung
 * eighths count) and alternate pulses are clearly weaker;
 * up (double) when the midpoints are nearly as strong as the pulses, or
 * fairly strong while the quarter points carry events too (the pulse found
 * is every other beat of a song with eighth-note hats) and alternate pulses
 * are alike (a syncopated kick pattern — funk, hip-hop — makes them unlike
 * at the true beat, where sixteenth hats would otherwise suggest doubling). */
#define LEVEL_DOWN_RATIO 0.35
#define LEVEL_DOWN_EMPTY_MID 0.1
#define LEVEL_DOWN_RATIO_EMPTY 0.7
#define LEVEL_UP_RATIO 0.8
#define LEVEL_UP_MID 0.45
#define LEVEL_UP_QUARTER 0.22
#define LEVEL_UP_ALT 0.7
/* halve when beats 4k vs 4k+2 (or 4k+1 vs 4k+3) differ this much in high/low band balance
 * (|log ratio|): the kick/snare backbeat is two pulses apart */
#define LEVEL_DOWN_BACKBEAT 0.75
/* share of the 64 mel bands (30 Hz..11.025 kHz) below 3 kHz: 37 */
#define LOW_SHARE (37.0 / 64.0)

void m2p_dsp_onset_envelope(const m2p_dsp_frames *fr, float *out, float *low) {
    size_t n = fr->n;
    if (n == 0) {
        return;
    }
    float mx = -100.0f;
    for (size_t i = 0; i < n * M2P_DSP_MEL; i++) {
        mx = fr->logmel[i] > mx ? fr->logmel[i] : mx;
    }
    int n_low = 0;
    while (n_low < M2P_DSP_MEL && fr->mel_hz[n_low] < 3000.0f) {
        n_low++;
    }
    float floor_db = mx - 80.0f;
    out[0] = 0.0f;
    if (low != NULL) {
        low[0] = 0.0f;
    }
#pragma omp parallel for schedule(static) if (n > 4096)
    for (size_t t = 1; t < n; t++) {
        const float *a = fr->logmel + (t - 1) * M2P_DSP_MEL;
        const float *b = fr->logmel + t * M2P_DSP_MEL;
        float s = 0, sl = 0;
        for (int m = 0; m < M2P_DSP_MEL; m++) {
            float da = fmaxf(a[m], floor_db);
            float db = fmaxf(b[m], floor_db);
            float d = db > da ? db - da : 0.0f;
            s += d;
            if (m < n_low) {
                sl += d;
            }
        }
        out[t] = s / M2P_DSP_MEL;
        if (low != NULL) {
            low[t] = n_low > 0 ? sl / (float)n_low : 0.0f;
        }
    }
}

/* max of a[] over lags within ±0.5 of x (x >= 0). */
static double ac_at(const double *a, size_t na, double x) {
    long lo = (long)floor(x - 0.5), hi = (long)ceil(x + 0.5);
    double best = -1e300;
    for (long i = lo; i <= hi; i++) {
        if (i >= 0 && (size_t)i < na && a[i] > best) {
            best = a[i];
        }
    }
    return best == -1e300 ? 0.0 : best;
}

static double prior(double bpm) {
    double z = log2(bpm / TEMPO_PRIOR_BPM) / TEMPO_PRIOR_OCT;
    return exp(-0.5 * z * z);
}

/* Comb salience of period L frames over the autocorrelation a[0..na). */
static double salience(const double *a, size_t na, double period) {
    double s = 0, w = 0;
    for (int k = 1; k <= 4; k++) {
        double x = k * period;
        if (x + 1 >= (double)na) {
            break;
        }
        s += ac_at(a, na, x);
        w += 1;
    }
    return w > 0 ? s / w : 0.0;
}

/* Beat tracking by dynamic programming (Ellis 2007) at a period of `period` frames.
 * ls: local score (n). beats_out: room for n ints. Returns the count. */
static size_t track_beats(const float *ls, size_t n, double period, int *beats_out, double *cum, int *back) {
    const double tightness = 100.0;
    int lo_off = (int)lround(2.0 * period), hi_off = (int)lround(period / 2.0);
    if (hi_off < 1) {
        hi_off = 1;
    }
    double ls_max = 0;
    for (size_t t = 0; t < n; t++) {
        ls_max = ls[t] > ls_max ? ls[t] : ls_max;
    }
    bool started = false;
    for (size_t t = 0; t < n; t++) {
        long lo = (long)t - lo_off, hi = (long)t - hi_off;
        double best = -1e300;
        int arg = -1;
        for (long u = lo < 0 ? 0 : lo; u <= hi; u++) {
            double r = log((double)((long)t - u) / period);
            double s = cum[u] - tightness * r * r;
            if (s > best) {
                best = s;
                arg = (int)u;
            }
        }
        /* Until the first real onset no chain starts. */
        if (!started && ls[t] < 0.01 * ls_max) {
            arg = -1;
        } else {
            started = true;
        }
        if (arg >= 0 && best > 0) {
            cum[t] = ls[t] + best;
            back[t] = arg;
        } else {
            cum[t] = ls[t];
            back[t] = -1;
        }
    }
    /* Last beat: the last local maximum of cum above half the median of local maxima. */
    double *tmp = NULL;
    size_t nmax = 0;
    for (size_t t = 1; t + 1 < n; t++) {
        if (cum[t] > cum[t - 1] && cum[t] >= cum[t + 1]) {
            nmax++;
        }
    }
    if (nmax == 0) {
        return 0;
    }
    tmp = m2p_malloc_array(nmax, sizeof *tmp);
    if (tmp == NULL) {
        return 0;
    }
    size_t j = 0;
    for (size_t t = 1; t + 1 < n; t++) {
        if (cum[t] > cum[t - 1] && cum[t] >= cum[t + 1]) {
            tmp[j++] = cum[t];
        }
    }
    /* median by partial selection sort on a copy (nmax is O(n / 2) at most; keep it simple) */
    for (size_t a = 0; a <= nmax / 2; a++) {
        size_t m = a;
        for (size_t b = a + 1; b < nmax; b++) {
            if (tmp[b] < tmp[m]) {
                m = b;
            }
        }
        double x = tmp[a];
        tmp[a] = tmp[m];
        tmp[m] = x;
    }
    double med = tmp[nmax / 2];
    m2p_free(tmp);
    long last = -1;
    for (size_t t = 1; t + 1 < n; t++) {
        if (cum[t] > cum[t - 1] && cum[t] >= cum[t + 1] && cum[t] >= 0.5 * med) {
            last = (long)t;
        }
    }
    if (last < 0) {
        return 0;
    }
    size_t count = 0;
    for (long t = last; t >= 0; t = back[t]) {
        beats_out[count++] = (int)t;
        if (count >= n) {
            break;
        }
    }
    /* reverse into time order */
    for (size_t a = 0; a < count / 2; a++) {
        int x = beats_out[a];
        beats_out[a] = beats_out[count - 1 - a];
        beats_out[count - 1 - a] = x;
    }
    /* Trim weak beats at both ends (below half the RMS local score of the beats). */
    double ss = 0;
    for (size_t a = 0; a < count; a++) {
        ss += (double)ls[beats_out[a]] * ls[beats_out[a]];
    }
    double thr = count > 0 ? 0.5 * sqrt(ss / count) : 0;
    size_t s0 = 0, s1 = count;
    while (s0 < s1 && ls[beats_out[s0]] < thr) {
        s0++;
    }
    while (s1 > s0 && ls[beats_out[s1 - 1]] < thr) {
        s1--;
    }
    if (s0 > 0) {
        memmove(beats_out, beats_out + s0, (s1 - s0) * sizeof(int));
    }
    return s1 - s0;
}

/* Onset strength near frame f (max over f-1..f+1) of the floor-subtracted envelope. */
static double strength_at(const float *o, size_t n, long f) {
    double best = 0;
    for (long i = f - 1; i <= f + 1; i++) {
        if (i >= 0 && (size_t)i < n && o[i] > best) {
            best = o[i];
        }
    }
    return best;
}

/* Accent ratios of a beat sequence on envelope o: r_mid (midpoints / beats), r_alt (weaker
 * parity / stronger); on envelope q: r_q (quarter points between beats / beats). */
static void accent_ratios(const float *o, const float *q, size_t n, const int *beats, size_t nb, double *r_mid,
                          double *r_alt, double *r_q, double *r_between) {
    *r_mid = 0;
    *r_alt = 1;
    *r_q = 0;
    *r_between = 0;
    if (nb < 4) {
        return;
    }
    double qb = 0, qq = 0, lb = 0, lin = 0;
    for (size_t i = 0; i + 1 < nb; i++) {
        long a = beats[i], b = beats[i + 1];
        qb += strength_at(q, n, a);
        qq += 0.5 * (strength_at(q, n, a + (b - a + 2) / 4) + strength_at(q, n, a + (3 * (b - a) + 2) / 4));
        /* strongest low-band event anywhere in the middle half of the interval (swung eighths included) */
        lb += strength_at(o, n, a);
        double in = 0;
        for (long t = a + (b - a + 2) / 4; t <= a + (3 * (b - a) + 2) / 4 && t < (long)n; t++) {
            in = o[t] > in ? o[t] : in;
        }
        lin += in;
    }
    *r_q = qb > 1e-12 ? qq / qb : 0.0;
    *r_between = lb > 1e-12 ? lin / lb : 0.0;
    double sb = 0, sm = 0, se = 0, so = 0;
    size_t ne = 0, no = 0;
    for (size_t i = 0; i < nb; i++) {
        double s = strength_at(o, n, beats[i]);
        sb += s;
        if (i % 2 == 0) {
            se += s;
            ne++;
        } else {
            so += s;
            no++;
        }
        if (i + 1 < nb) {
            sm += strength_at(o, n, (beats[i] + beats[i + 1] + 1) / 2);
        }
    }
    sb /= (double)nb;
    sm /= (double)(nb - 1);
    se /= (double)ne;
    so /= (double)no;
    if (sb <= 1e-12) {
        return;
    }
    *r_mid = sm / sb;
    double hi = se > so ? se : so, lo = se > so ? so : se;
    *r_alt = hi > 1e-12 ? lo / hi : 1.0;
}

/* Band balance of one class of pulses: log of high-band over low-band onset strength (floor-
 * subtracted envelopes), summed over beats cls, cls + m, cls + 2m, ... (or over the midpoints after
 * them when mid is true). Two classes differ in timbre when their values differ. */
static double class_ratio(const float *lo, const float *hi, size_t n, const int *beats, size_t nb, size_t m, size_t cls,
                          bool mid) {
    double h = 0, l = 0;
    for (size_t i = cls; i + (mid ? 1 : 0) < nb; i += m) {
        long f = mid ? (beats[i] + beats[i + 1] + 1) / 2 : beats[i];
        h += strength_at(hi, n, f);
        l += strength_at(lo, n, f);
    }
    return log((h + 1e-6) / (l + 1e-6));
}

/* Backbeat contrast at the tracked level (beats i even vs odd), at half the tempo (beats 4k vs
 * 4k+2, or 4k+1 vs 4k+3, the larger), and at double the tempo (beats vs midpoints). */
static void backbeat(const float *lo, const float *hi, size_t n, const int *beats, size_t nb, double *c_cur,
                     double *c_half, double *c_double) {
    *c_cur = *c_half = *c_double = 0;
    if (nb < 8) {
        return;
    }
    *c_cur = fabs(class_ratio(lo, hi, n, beats, nb, 2, 0, false) - class_ratio(lo, hi, n, beats, nb, 2, 1, false));
    double a = fabs(class_ratio(lo, hi, n, beats, nb, 4, 0, false) - class_ratio(lo, hi, n, beats, nb, 4, 2, false));
    double b = fabs(class_ratio(lo, hi, n, beats, nb, 4, 1, false) - class_ratio(lo, hi, n, beats, nb, 4, 3, false));
    *c_half = a > b ? a : b;
    *c_double = fabs(class_ratio(lo, hi, n, beats, nb, 1, 0, false) - class_ratio(lo, hi, n, beats, nb, 1, 0, true));
}

m2p_code m2p_dsp_tempo_beats(const float *onset, const float *low, size_t n, double fps, m2p_dsp_tempo *out) {
    memset(out, 0, sizeof *out);
    if (n < (size_t)(fps * 3.0) || n < 16) {
        return M2P_OK; /* under 3 s: no tempo */
    }
    m2p_code rc = M2P_E_NOMEM;
    float *x = m2p_malloc_array(n, sizeof *x);
    float *fl = m2p_malloc_array(n, sizeof *fl);
    float *fh = m2p_malloc_array(n, sizeof *fh);
    float *ls = m2p_malloc_array(n, sizeof *ls);
    float *fhi = m2p_malloc_array(n, sizeof *fhi);
    double *cum = m2p_malloc_array(n, sizeof *cum);
    int *back = m2p_malloc_array(n, sizeof *back);
    int *beats = m2p_malloc_array(n, sizeof *beats);
    size_t na = (size_t)(4.0 * 60.0 / TEMPO_MIN * fps) + 2;
    if (na > n / 2) {
        na = n / 2;
    }
    double *ac = m2p_malloc_array(na + 1, sizeof *ac);
    if (x == NULL || fl == NULL || fh == NULL || ls == NULL || fhi == NULL || cum == NULL || back == NULL ||
        beats == NULL || ac == NULL) {
        goto done;
    }
    rc = M2P_OK;

    /* Floor-subtracted envelope (for accents) and its std (for the local score). */
    double mean = 0;
    for (size_t t = 0; t < n; t++) {
        mean += onset[t];
    }
    mean /= (double)n;
    double var = 0;
    for (size_t t = 0; t < n; t++) {
        var += (onset[t] - mean) * (onset[t] - mean);
    }
    double sd = sqrt(var / (double)n);
    if (!(sd > 1e-9)) {
        goto done; /* flat envelope: no pulse */
    }
    {
        /* Accent envelope: the low bands minus their floor (mean of the lower half). */
        double lm = 0;
        for (size_t t = 0; t < n; t++) {
            lm += low[t];
        }
        lm /= (double)n;
        double lowsum = 0;
        size_t lown = 0;
        for (size_t t = 0; t < n; t++) {
            if (low[t] <= lm) {
                lowsum += low[t];
                lown++;
            }
        }
        double floorv = lown > 0 ? lowsum / (double)lown : 0;
        for (size_t t = 0; t < n; t++) {
            fl[t] = (float)fmax(0.0, low[t] - floorv);
        }
        /* the full-band envelope minus its floor, for the quarter-beat points */
        double hsum = 0;
        size_t hn = 0;
        for (size_t t = 0; t < n; t++) {
            if (onset[t] <= mean) {
                hsum += onset[t];
                hn++;
            }
        }
        double hfloor = hn > 0 ? hsum / (double)hn : 0;
        for (size_t t = 0; t < n; t++) {
            fh[t] = (float)fmax(0.0, onset[t] - hfloor);
        }
        /* The bands above 3 kHz (snare noise, hats): the full-band mean is LOW_SHARE of the low-band
         * mean plus (1 - LOW_SHARE) of theirs; floor-subtracted like the others. */
        double hm = 0;
        for (size_t t = 0; t < n; t++) {
            ls[t] = (float)fmax(0.0, (onset[t] - LOW_SHARE * low[t]) / (1.0 - LOW_SHARE));
            hm += ls[t];
        }
        hm /= (double)n;
        double hs2 = 0;
        size_t hn2 = 0;
        for (size_t t = 0; t < n; t++) {
            if (ls[t] <= hm) {
                hs2 += ls[t];
                hn2++;
            }
        }
        double hfl2 = hn2 > 0 ? hs2 / (double)hn2 : 0;
        for (size_t t = 0; t < n; t++) {
            fhi[t] = (float)fmax(0.0, ls[t] - hfl2);
        }
    }

    /* High-pass (minus a 1 s moving average) and smooth (3 taps) for the autocorrelation. */
    {
        long w = (long)(fps / 2.0);
        double run = 0;
        long cnt = 0;
        long lo = 0, hi = -1;
        for (size_t t = 0; t < n; t++) {
            long want_hi = (long)t + w < (long)n - 1 ? (long)t + w : (long)n - 1;
            long want_lo = (long)t - w > 0 ? (long)t - w : 0;
            while (hi < want_hi) {
                hi++;
                run += onset[hi];
                cnt++;
            }
            while (lo < want_lo) {
                run -= onset[lo];
                lo++;
                cnt--;
            }
            ls[t] = (float)(onset[t] - run / (double)cnt);
        }
        for (size_t t = 0; t < n; t++) {
            float a = ls[t > 0 ? t - 1 : t], b = ls[t], c = ls[t + 1 < n ? t + 1 : t];
            x[t] = 0.25f * a + 0.5f * b + 0.25f * c;
        }
    }
#pragma omp parallel for schedule(dynamic, 16)
    for (size_t k = 0; k <= na; k++) {
        double s = 0;
        for (size_t t = 0; t + k < n; t++) {
            s += (double)x[t] * x[t + k];
        }
        ac[k] = s / (double)(n - k);
    }
    if (!(ac[0] > 0)) {
        goto done;
    }
    for (size_t k = 1; k <= na; k++) {
        ac[k] /= ac[0];
    }
    ac[0] = 1.0;

    double best = -1e300, b0 = 0, smean = 0;
    int ncand = 0;
    for (double b = TEMPO_MIN; b <= TEMPO_MAX; b *= 1.005) {
        double period = 60.0 * fps / b;
        if (period + 1 >= (double)na) {
            continue;
        }
        double s = salience(ac, na + 1, period);
        double score = fmax(s, 0.0) * prior(b);
        smean += fmax(s, 0.0);
        ncand++;
        if (score > best) {
            best = score;
            b0 = b;
        }
    }
    if (ncand == 0 || best <= 0) {
        goto done;
    }
    smean /= ncand;

    /* Local score for the DP: envelope / std, smoothed by a Gaussian of the beat period. */
    double bpm = b0;
    size_t nb = 0;
    int last_step = 0;
    for (int pass = 0; pass < 3; pass++) {
        double period = 60.0 * fps / bpm;
        /* Taps beyond 4σ (σ = period/32) are below 3e-4: a window of ±period/8 is exact enough. */
        int half = (int)lround(period / 8.0) + 1;
        double gw[64];
        if (half > 63) {
            half = 63;
        }
        for (int j = 0; j <= half; j++) {
            double z = j * 32.0 / period;
            gw[j] = exp(-0.5 * z * z) / sd;
        }
        for (size_t t = 0; t < n; t++) {
            double s = 0;
            for (int j = -half; j <= half; j++) {
                long u = (long)t + j;
                if (u < 0 || (size_t)u >= n) {
                    continue;
                }
                s += gw[j < 0 ? -j : j] * onset[u];
            }
            ls[t] = (float)s;
        }
        nb = track_beats(ls, n, period, beats, cum, back);
        if (pass == 2) {
            break;
        }
        double r_mid, r_alt, r_q, r_between;
        accent_ratios(fl, fh, n, beats, nb, &r_mid, &r_alt, &r_q, &r_between);
        double c_cur, c_half, c_double;
        backbeat(fl, fhi, n, beats, nb, &c_cur, &c_half, &c_double);
#ifdef M2P_DSP_DEBUG
        fprintf(stderr, "  pass %d bpm %.1f r_mid %.2f r_alt %.2f r_q %.2f r_between %.2f", pass, bpm, r_mid, r_alt,
                r_q, r_between);
        fprintf(stderr, " nb %zu cc %.2f ch %.2f cd %.2f\n", nb, c_cur, c_half, c_double);
#endif
        /* a backbeat two pulses apart (kick on 1 and 3, snare on 2 and 4 of a pulse twice too fast) */
        bool down_bb = c_half > LEVEL_DOWN_BACKBEAT;
        bool down =
            down_bb || r_alt < LEVEL_DOWN_RATIO || (r_between < LEVEL_DOWN_EMPTY_MID && r_alt < LEVEL_DOWN_RATIO_EMPTY);
        bool up = r_mid > LEVEL_UP_RATIO || (r_mid > LEVEL_UP_MID && r_q > LEVEL_UP_QUARTER && r_alt > LEVEL_UP_ALT);
        /* never undo the previous step (up then down would bounce back to b0), except for a backbeat
         * found at half the doubled tempo: then b0 was right (at most two changes in all) */
        if (down && bpm / 2 >= TEMPO_MIN && (last_step <= 0 || down_bb)) {
            bpm /= 2;
            last_step = -1;
        } else if (up && bpm * 2 <= TEMPO_MAX && last_step >= 0) {
            bpm *= 2;
            last_step = 1;
        } else {
            break;
        }
    }

    /* Tempo from the beats: mean of the inter-beat intervals within 10 % of the expected period. */
    double period = 60.0 * fps / bpm, sum = 0;
    size_t cnt = 0, regular = 0;
    for (size_t i = 1; i < nb; i++) {
        double d = beats[i] - beats[i - 1];
        if (fabs(d - period) < 0.1 * period) {
            sum += d;
            cnt++;
        }
        if (fabs(d - period) < 0.06 * period) {
            regular++;
        }
    }
    out->bpm = cnt >= 4 ? 60.0 * fps / (sum / (double)cnt) : bpm;
    out->regularity = nb > 1 ? (double)regular / (double)(nb - 1) : 0.0;
    double s_final = salience(ac, na + 1, 60.0 * fps / out->bpm);
    double conf = smean < 1.0 ? (s_final - smean) / (1.0 - smean) : 0.0;
    out->confidence = conf < 0 ? 0 : conf > 1 ? 1 : conf;
    if (nb > 0) {
        out->beats = m2p_malloc_array(nb, sizeof *out->beats);
        if (out->beats == NULL) {
            rc = M2P_E_NOMEM;
            goto done;
        }
        for (size_t i = 0; i < nb; i++) {
            out->beats[i] = beats[i] / fps;
        }
        out->n_beats = nb;
    }
done:
    m2p_free(x);
    m2p_free(fl);
    m2p_free(fh);
    m2p_free(ls);
    m2p_free(fhi);
    m2p_free(cum);
    m2p_free(back);
    m2p_free(beats);
    m2p_free(ac);
    return rc;
}
