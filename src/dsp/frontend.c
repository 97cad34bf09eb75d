/*
 * dsp/frontend.c — the streaming front end: samples → one STFT → per-frame rows.
 *
 * Frames are centred (frame i is centred on sample i*hop, the signal is
 * zero-padded by n_fft/2 at both ends), so a song of N samples gives
 * 1 + N/hop frames, as librosa's center=True does. Each frame is Hann
 * windowed and transformed once with FFmpeg's av_tx real FFT; the magnitude
 * spectrum is reduced at once to the rows of m2p_dsp_frames (RMS, centroid,
 * mel power, pitch bins from interpolated peaks, tuning histogram) and
 * dropped.
 *
 * Invariants: `pend` holds the input samples from absolute sample index
 * `pend_start` (negative at the start: the zero padding) onward, `pend_n` of
 * them; every frame < frames.n has been computed; the next frame to compute
 * is frames.n and its first sample is frames.n*hop - n_fft/2 >= pend_start.
 * Amplitudes are scaled so a full-scale sine has peak amplitude ~1.
 */
#include <libavutil/tx.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "core/alloc.h"
#include "dsp/dsp_internal.h"

#define FE_MAX_THREADS 16

/* One thread's FFT context and scratch (aligned to 64 bytes inside raw blocks). */
typedef struct fe_work {
    AVTXContext *tx;
    av_tx_fn fn;
    void *raw_in, *raw_out;
    float *in;          /* [n_fft] */
    AVComplexFloat *out; /* [n_fft/2 + 1] */
    float *mag;         /* [n_fft/2 + 1] power */
} fe_work;

struct m2p_dsp_frontend {
    m2p_dsp_frames fr;
    int n_bins;       /* n_fft/2 + 1 */
    float *window;    /* [n_fft] Hann, periodic */
    float amp_scale;  /* 2 / Σw */
    /* mel filterbank: band b covers bins mel_lo[b] .. mel_lo[b]+mel_len[b]-1 with weights at mel_w + mel_off[b] */
    int mel_lo[M2P_DSP_MEL], mel_len[M2P_DSP_MEL], mel_off[M2P_DSP_MEL];
    float *mel_w;
    int pitch_k0, pitch_k1; /* FFT bins searched for peaks */
    float *pend;
    size_t pend_n, pend_cap;
    long long pend_start;
    int n_work;
    fe_work work[FE_MAX_THREADS];
};

static void *align64(void *raw) {
    uintptr_t p = (uintptr_t)raw;
    return (void *)((p + 63u) & ~(uintptr_t)63u);
}

static double hz_to_mel(double f) {
    return 2595.0 * log10(1.0 + f / 700.0);
}
static double mel_to_hz(double m) {
    return 700.0 * (pow(10.0, m / 2595.0) - 1.0);
}

static m2p_code work_init(fe_work *w, int n_fft) {
    float scale = 1.0f;
    if (av_tx_init(&w->tx, &w->fn, AV_TX_FLOAT_RDFT, 0, n_fft, &scale, 0) < 0) {
        return M2P_E_INTERNAL;
    }
    size_t nb = (size_t)n_fft / 2 + 1;
    w->raw_in = m2p_malloc((size_t)n_fft * sizeof(float) + 64);
    w->raw_out = m2p_calloc(1, (nb + 1) * sizeof(AVComplexFloat) + 64);
    w->mag = m2p_malloc_array(nb, sizeof(float));
    if (w->raw_in == NULL || w->raw_out == NULL || w->mag == NULL) {
        return M2P_E_NOMEM;
    }
    w->in = align64(w->raw_in);
    w->out = align64(w->raw_out);
    return M2P_OK;
}

static void work_free(fe_work *w) {
    av_tx_uninit(&w->tx);
    m2p_free(w->raw_in);
    m2p_free(w->raw_out);
    m2p_free(w->mag);
}

void m2p_dsp_frontend_free(m2p_dsp_frontend *fe) {
    if (fe == NULL) {
        return;
    }
    for (int i = 0; i < fe->n_work; i++) {
        work_free(&fe->work[i]);
    }
    m2p_free(fe->window);
    m2p_free(fe->mel_w);
    m2p_free(fe->pend);
    m2p_free(fe->fr.rms);
    m2p_free(fe->fr.centroid);
    m2p_free(fe->fr.mel);
    m2p_free(fe->fr.logmel);
    m2p_free(fe->fr.pitch);
    m2p_free(fe);
}

/* Triangular mel filters (HTK mel scale, peak weight 1) from 30 Hz to min(11025, rate/2). */
static m2p_code build_mel(m2p_dsp_frontend *fe) {
    int n_fft = fe->fr.n_fft;
    double fmax = fmin(11025.0, fe->fr.rate / 2.0);
    double m0 = hz_to_mel(30.0), m1 = hz_to_mel(fmax);
    double edges[M2P_DSP_MEL + 2];
    for (int i = 0; i < M2P_DSP_MEL + 2; i++) {
        edges[i] = mel_to_hz(m0 + (m1 - m0) * i / (M2P_DSP_MEL + 1));
    }
    double bin_hz = (double)fe->fr.rate / n_fft;
    int total = 0;
    for (int b = 0; b < M2P_DSP_MEL; b++) {
        int lo = (int)ceil(edges[b] / bin_hz);
        int hi = (int)floor(edges[b + 2] / bin_hz);
        if (hi >= fe->n_bins) {
            hi = fe->n_bins - 1;
        }
        if (hi < lo) {
            /* A band narrower than a bin: take the nearest bin. */
            lo = (int)lround(edges[b + 1] / bin_hz);
            hi = lo;
        }
        fe->fr.mel_hz[b] = (float)edges[b + 1];
        fe->mel_lo[b] = lo;
        fe->mel_len[b] = hi - lo + 1;
        fe->mel_off[b] = total;
        total += hi - lo + 1;
    }
    fe->mel_w = m2p_malloc_array((size_t)total, sizeof(float));
    if (fe->mel_w == NULL) {
        return M2P_E_NOMEM;
    }
    for (int b = 0; b < M2P_DSP_MEL; b++) {
        for (int i = 0; i < fe->mel_len[b]; i++) {
            double f = (fe->mel_lo[b] + i) * bin_hz;
            double w;
            if (f <= edges[b + 1]) {
                w = (f - edges[b]) / (edges[b + 1] - edges[b]);
            } else {
                w = (edges[b + 2] - f) / (edges[b + 2] - edges[b + 1]);
            }
            fe->mel_w[fe->mel_off[b] + i] = (float)(w < 0 ? (fe->mel_len[b] == 1 ? 1.0 : 0.0) : w > 1 ? 1.0 : w);
        }
    }
    return M2P_OK;
}

m2p_code m2p_dsp_frontend_create(int rate, m2p_dsp_frontend **out, m2p_error *err) {
    *out = NULL;
    if (rate < 8000 || rate > 192000) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "analysis rate %d Hz is outside 8000..192000", rate);
    }
    m2p_code rc = M2P_E_NOMEM;
    m2p_dsp_frontend *fe = m2p_calloc(1, sizeof *fe);
    if (fe == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "analysis front end");
    }
    /* ~93 ms window whatever the rate: 2048 at 22050 Hz, 4096 at 44.1/48 kHz. */
    int n_fft = 256;
    while (n_fft * 2 <= (int)lround(rate * 0.0929 * 1.42)) {
        n_fft *= 2;
    }
    fe->fr.rate = rate;
    fe->fr.n_fft = n_fft;
    fe->fr.hop = n_fft / 4;
    fe->fr.fps = (double)rate / fe->fr.hop;
    fe->n_bins = n_fft / 2 + 1;
    fe->pend_start = -(long long)(n_fft / 2);
    fe->window = m2p_malloc_array((size_t)n_fft, sizeof(float));
    if (fe->window == NULL) {
        goto fail;
    }
    double wsum = 0;
    for (int i = 0; i < n_fft; i++) {
        fe->window[i] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * i / n_fft));
        wsum += fe->window[i];
    }
    fe->amp_scale = (float)(2.0 / wsum);
    rc = build_mel(fe);
    if (rc != M2P_OK) {
        goto fail;
    }
    double bin_hz = (double)rate / n_fft;
    double f_lo = 440.0 * pow(2.0, (M2P_DSP_PITCH_LO - 0.5 - 69) / 12.0);
    double f_hi = 440.0 * pow(2.0, (M2P_DSP_PITCH_LO + M2P_DSP_SEMITONES - 0.5 - 69) / 12.0);
    fe->pitch_k0 = (int)floor(f_lo / bin_hz);
    if (fe->pitch_k0 < 2) {
        fe->pitch_k0 = 2;
    }
    fe->pitch_k1 = (int)ceil(f_hi / bin_hz);
    if (fe->pitch_k1 > fe->n_bins - 2) {
        fe->pitch_k1 = fe->n_bins - 2;
    }
    int threads = omp_get_max_threads();
    fe->n_work = threads < 1 ? 1 : threads > FE_MAX_THREADS ? FE_MAX_THREADS : threads;
    for (int i = 0; i < fe->n_work; i++) {
        rc = work_init(&fe->work[i], n_fft);
        if (rc != M2P_OK) {
            fe->n_work = i + 1;
            goto fail;
        }
    }
    *out = fe;
    return M2P_OK;
fail:
    m2p_dsp_frontend_free(fe);
    return m2p_error_set(err, rc, "analysis front end (FFT %d)", n_fft);
}

const m2p_dsp_frames *m2p_dsp_frontend_frames(const m2p_dsp_frontend *fe) {
    return &fe->fr;
}

static m2p_code grow_rows(m2p_dsp_frames *fr, size_t need) {
    if (need <= fr->cap) {
        return M2P_OK;
    }
    size_t cap = fr->cap < 256 ? 256 : fr->cap;
    while (cap < need) {
        cap *= 2;
    }
    size_t mel_bytes, pitch_bytes;
    if (!m2p_size_mul(cap, sizeof(float) * M2P_DSP_MEL, &mel_bytes) ||
        !m2p_size_mul(cap, sizeof(float) * M2P_DSP_PITCH, &pitch_bytes)) {
        return M2P_E_NOMEM;
    }
    float *p = m2p_realloc(fr->rms, cap * sizeof(float));
    if (p == NULL) {
        return M2P_E_NOMEM;
    }
    fr->rms = p;
    p = m2p_realloc(fr->centroid, cap * sizeof(float));
    if (p == NULL) {
        return M2P_E_NOMEM;
    }
    fr->centroid = p;
    p = m2p_realloc(fr->mel, mel_bytes);
    if (p == NULL) {
        return M2P_E_NOMEM;
    }
    fr->mel = p;
    p = m2p_realloc(fr->logmel, mel_bytes);
    if (p == NULL) {
        return M2P_E_NOMEM;
    }
    fr->logmel = p;
    p = m2p_realloc(fr->pitch, pitch_bytes);
    if (p == NULL) {
        return M2P_E_NOMEM;
    }
    fr->pitch = p;
    fr->cap = cap;
    return M2P_OK;
}

/* Computes frame i from src (n_fft samples) with scratch w; tuning accumulates into tun. */
static void compute_frame(m2p_dsp_frontend *fe, fe_work *w, const float *src, size_t i, double *tun) {
    m2p_dsp_frames *fr = &fe->fr;
    int n_fft = fr->n_fft, nb = fe->n_bins;
    /* 8 independent float lanes so the compiler vectorises the reductions (n_fft % 8 == 0). */
    float acc[8] = {0};
    for (int k = 0; k < n_fft; k += 8) {
        for (int j = 0; j < 8; j++) {
            float v = src[k + j];
            acc[j] += v * v;
            w->in[k + j] = v * fe->window[k + j];
        }
    }
    double ss = 0;
    for (int j = 0; j < 8; j++) {
        ss += acc[j];
    }
    fr->rms[i] = (float)sqrt(ss / n_fft);
    w->fn(w->tx, w->out, w->in, sizeof(float));
    /* FFmpeg's real DFT (libavutil 57) writes the Nyquist bin's real part
     * only: its imaginary part (0 by definition) is left as it was in the
     * buffer, i.e. uninitialised heap memory, which made mag[nb-1] (and the
     * centroid and top mel band through it) depend on whatever malloc
     * returned (valgrind: "depends on uninitialised value" at the centroid). */
    w->out[nb - 1].im = 0.0f;
    w->out[0].im = 0.0f;
    float bin_hz = (float)fr->rate / (float)n_fft;
    float sc2 = fe->amp_scale * fe->amp_scale;
    for (int k = 0; k < nb; k++) {
        float re = w->out[k].re, im = w->out[k].im;
        w->mag[k] = (re * re + im * im) * sc2;
    }
    float nacc[8] = {0}, dacc[8] = {0};
    int k8 = nb & ~7;
    for (int k = 0; k < k8; k += 8) {
        for (int j = 0; j < 8; j++) {
            float a = sqrtf(w->mag[k + j]);
            nacc[j] += (float)(k + j) * a;
            dacc[j] += a;
        }
    }
    double num = 0, den = 0;
    for (int j = 0; j < 8; j++) {
        num += nacc[j];
        den += dacc[j];
    }
    for (int k = k8; k < nb; k++) {
        float a = sqrtf(w->mag[k]);
        num += (double)k * a;
        den += a;
    }
    num *= bin_hz;
    float pmax = 0;
    for (int k = fe->pitch_k0; k <= fe->pitch_k1; k++) {
        pmax = w->mag[k] > pmax ? w->mag[k] : pmax;
    }
    fr->centroid[i] = den > 1e-9 ? (float)(num / den) : 0.0f;
    float *mel = fr->mel + i * M2P_DSP_MEL;
    for (int b = 0; b < M2P_DSP_MEL; b++) {
        const float *wt = fe->mel_w + fe->mel_off[b];
        const float *pw = w->mag + fe->mel_lo[b];
        float s4[4] = {0};
        int len = fe->mel_len[b], j = 0;
        for (; j + 4 <= len; j += 4) {
            for (int q = 0; q < 4; q++) {
                s4[q] += wt[j + q] * pw[j + q];
            }
        }
        for (; j < len; j++) {
            s4[0] += wt[j] * pw[j];
        }
        mel[b] = (s4[0] + s4[1]) + (s4[2] + s4[3]);
    }
    float *logmel = fr->logmel + i * M2P_DSP_MEL;
    for (int b = 0; b < M2P_DSP_MEL; b++) {
        logmel[b] = 10.0f * log10f(mel[b] + 1e-10f);
    }
    /* Pitch bins from interpolated spectral peaks (≥ -50 dB below the frame's loudest, ≥ -100 dBFS). */
    float *pitch = fr->pitch + i * M2P_DSP_PITCH;
    memset(pitch, 0, sizeof(float) * M2P_DSP_PITCH);
    float thr = fmaxf(pmax * 1e-5f, 1e-10f);
    if (pmax <= 1e-10f) {
        return;
    }
    for (int k = fe->pitch_k0; k <= fe->pitch_k1; k++) {
        float pw = w->mag[k];
        if (pw < thr || pw <= w->mag[k - 1] || pw < w->mag[k + 1]) {
            continue;
        }
        /* parabolic interpolation on the dB magnitudes of the peak and its neighbours */
        float al = 10.0f * log10f(w->mag[k - 1] + 1e-12f), be = 10.0f * log10f(pw + 1e-12f);
        float ga = 10.0f * log10f(w->mag[k + 1] + 1e-12f);
        float d = al - 2 * be + ga;
        float off = d < -1e-6f ? 0.5f * (al - ga) / d : 0.0f;
        if (off > 0.5f) {
            off = 0.5f;
        } else if (off < -0.5f) {
            off = -0.5f;
        }
        float peak_db = be - 0.25f * (al - ga) * off;
        double f = (k + off) * bin_hz;
        double midi = 69.0 + 12.0 * log2(f / 440.0);
        float amp = powf(10.0f, peak_db / 20.0f);
        double pos = (midi - M2P_DSP_PITCH_LO) * M2P_DSP_PITCH_SUB + 1.0;
        int j0 = (int)floor(pos);
        float frac = (float)(pos - j0);
        if (j0 >= 0 && j0 < M2P_DSP_PITCH) {
            pitch[j0] += amp * (1.0f - frac);
        }
        if (j0 + 1 >= 0 && j0 + 1 < M2P_DSP_PITCH) {
            pitch[j0 + 1] += amp * frac;
        }
        double cents = 100.0 * (midi - floor(midi + 0.5)); /* -50 .. 50 */
        int tb = (int)floor(cents + 50.0);
        tb = tb < 0 ? 0 : tb >= M2P_DSP_TUNING_BINS ? M2P_DSP_TUNING_BINS - 1 : tb;
        tun[tb] += amp;
    }
}

/* Computes every frame whose samples are all in pend. */
static m2p_code run_frames(m2p_dsp_frontend *fe, bool parallel) {
    m2p_dsp_frames *fr = &fe->fr;
    long long half = fr->n_fft / 2;
    long long avail_end = fe->pend_start + (long long)fe->pend_n;
    long long first = (long long)fr->n;
    /* frame i is ready when i*hop + half <= avail_end */
    long long last_ready = (avail_end - half) / fr->hop; /* floor for non-negative values */
    if (avail_end - half < 0 || last_ready < first) {
        return M2P_OK;
    }
    size_t count = (size_t)(last_ready - first + 1);
    m2p_code rc = grow_rows(fr, fr->n + count);
    if (rc != M2P_OK) {
        return rc;
    }
    int nt = parallel && count >= 64 ? fe->n_work : 1;
    double tun[FE_MAX_THREADS][M2P_DSP_TUNING_BINS];
    memset(tun, 0, sizeof tun);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (long long i = first; i <= last_ready; i++) {
        int t = omp_get_thread_num();
        if (t >= fe->n_work) {
            t = 0; /* cannot happen: num_threads <= n_work */
        }
        const float *src = fe->pend + (i * fr->hop - half - fe->pend_start);
        compute_frame(fe, &fe->work[t], src, (size_t)i, tun[t]);
    }
    for (int t = 0; t < nt; t++) {
        for (int b = 0; b < M2P_DSP_TUNING_BINS; b++) {
            fr->tuning[b] += tun[t][b];
        }
    }
    fr->n += count;
    /* Drop samples no later frame needs. */
    long long keep_from = (long long)fr->n * fr->hop - half;
    if (keep_from > fe->pend_start) {
        size_t drop = (size_t)(keep_from - fe->pend_start);
        if (drop > fe->pend_n) {
            drop = fe->pend_n;
        }
        memmove(fe->pend, fe->pend + drop, (fe->pend_n - drop) * sizeof(float));
        fe->pend_n -= drop;
        fe->pend_start += (long long)drop;
    }
    return M2P_OK;
}

static m2p_code append(m2p_dsp_frontend *fe, const float *x, size_t n, bool zeros) {
    size_t need;
    if (!m2p_size_add(fe->pend_n, n, &need)) {
        return M2P_E_NOMEM;
    }
    if (need > fe->pend_cap) {
        size_t cap = fe->pend_cap < 8192 ? 8192 : fe->pend_cap;
        while (cap < need) {
            cap *= 2;
        }
        float *p = m2p_realloc(fe->pend, cap * sizeof(float));
        if (p == NULL) {
            return M2P_E_NOMEM;
        }
        fe->pend = p;
        fe->pend_cap = cap;
    }
    if (zeros) {
        memset(fe->pend + fe->pend_n, 0, n * sizeof(float));
    } else {
        memcpy(fe->pend + fe->pend_n, x, n * sizeof(float));
    }
    fe->pend_n = need;
    return M2P_OK;
}

m2p_code m2p_dsp_frontend_push(m2p_dsp_frontend *fe, const float *x, size_t n, bool parallel, m2p_error *err) {
    m2p_dsp_frames *fr = &fe->fr;
    if (n == 0) {
        return M2P_OK;
    }
    if ((double)(fr->n_samples + n) > M2P_DSP_MAX_SECONDS * fr->rate) {
        return m2p_error_set(err, M2P_E_TOO_LARGE, "the analysis takes at most %.0f minutes of audio",
                             M2P_DSP_MAX_SECONDS / 60.0);
    }
    if (fe->pend_n == 0 && fr->n == 0) {
        /* leading zero padding of the first centred frame */
        m2p_code rc = append(fe, NULL, (size_t)(fr->n_fft / 2), true);
        if (rc != M2P_OK) {
            return m2p_error_set(err, rc, "analysis buffer");
        }
    }
    /* Feed in slices so the pending buffer stays small for long inputs. */
    size_t slice = (size_t)fr->hop * 2048;
    for (size_t off = 0; off < n; off += slice) {
        size_t m = n - off < slice ? n - off : slice;
        double ss = 0;
        float pk = fr->peak;
        for (size_t i = 0; i < m; i++) {
            float v = x[off + i];
            if (!isfinite(v)) {
                v = 0.0f;
            }
            ss += (double)v * v;
            pk = fabsf(v) > pk ? fabsf(v) : pk;
        }
        size_t at = fe->pend_n;
        m2p_code rc = append(fe, x + off, m, false);
        if (rc != M2P_OK) {
            return m2p_error_set(err, rc, "analysis buffer");
        }
        for (size_t i = at; i < fe->pend_n; i++) {
            if (!isfinite(fe->pend[i])) {
                fe->pend[i] = 0.0f;
            }
        }
        fr->sum_sq += ss;
        fr->peak = pk;
        fr->n_samples += m;
        rc = run_frames(fe, parallel);
        if (rc != M2P_OK) {
            return m2p_error_set(err, rc, "analysis frames");
        }
    }
    return M2P_OK;
}

m2p_code m2p_dsp_frontend_finish(m2p_dsp_frontend *fe, m2p_error *err) {
    m2p_dsp_frames *fr = &fe->fr;
    if (fe->pend_n == 0 && fr->n == 0) {
        m2p_code rc = append(fe, NULL, (size_t)(fr->n_fft / 2), true);
        if (rc != M2P_OK) {
            return m2p_error_set(err, rc, "analysis buffer");
        }
    }
    /* Trailing padding: frames up to n_samples/hop become complete. */
    m2p_code rc = append(fe, NULL, (size_t)(fr->n_fft / 2 + fr->hop), true);
    if (rc == M2P_OK) {
        rc = run_frames(fe, true);
    }
    if (rc != M2P_OK) {
        return m2p_error_set(err, rc, "analysis frames");
    }
    size_t want = 1 + fr->n_samples / (size_t)fr->hop;
    if (fr->n > want) {
        fr->n = want; /* the extra padding may complete one frame too many */
    }
    return M2P_OK;
}
