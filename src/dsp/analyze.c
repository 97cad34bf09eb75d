/*
 * dsp/analyze.c — the back end: from the front end's per-frame rows to
 * m2p_features, plus m2p_dsp_analyze on a decoded buffer.
 *
 * Order: onset envelope; then, side by side on the cores (OpenMP sections),
 * tempo + beats, tuning + harmonic chroma + key, HPSS percussive share; then
 * sections on beat-synchronous features; then the scalar descriptors and the
 * renderers' pictures. Findings are reported from the calling thread as soon
 * as each result is known; cancellation is checked between the stages.
 *
 * The formulas of the 0..1 descriptors (energy, brightness, percussiveness,
 * danceability, valence, arousal) and the mood words are documented in
 * docs/notes/dsp.md; keep the two in step.
 */
#include "dsp/analyze.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "dsp/dsp_internal.h"

#define SPEC_BANDS 64
#define SPEC_FRAMES 256
#define ENERGY_POINTS 512

static double clamp01(double x) {
    return x < 0 ? 0 : x > 1 ? 1 : (isfinite(x) ? x : 0);
}

/* Loudness (dBFS of an RMS) → 0..1: -32 dB → 0, -8 dB → 1. */
static double loud_norm(double db) {
    return clamp01((db + 32.0) / 24.0);
}

/* Spectral centroid (Hz) → 0..1 on a log scale: 400 Hz → 0, 5 kHz → 1. */
static double bright_norm(double hz) {
    if (!(hz > 0)) {
        return 0.0;
    }
    return clamp01(log2(hz / 400.0) / log2(5000.0 / 400.0));
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Onsets per second: local maxima of the envelope (±3 frames, ≥ 50 ms apart) above mean + 1 std. */
static double onset_density(const float *o, size_t n, double fps, double dur) {
    if (n < 8 || dur <= 0) {
        return 0.0;
    }
    double m = 0, s = 0;
    for (size_t t = 0; t < n; t++) {
        m += o[t];
    }
    m /= (double)n;
    for (size_t t = 0; t < n; t++) {
        s += (o[t] - m) * (o[t] - m);
    }
    s = sqrt(s / (double)n);
    if (s < 1e-6) {
        return 0.0;
    }
    double thr = m + s;
    size_t count = 0;
    long last = -1000000;
    long gap = (long)ceil(0.05 * fps);
    for (size_t t = 0; t < n; t++) {
        if (o[t] <= thr) {
            continue;
        }
        bool peak = true;
        for (long d = -3; d <= 3 && peak; d++) {
            long u = (long)t + d;
            if (d != 0 && u >= 0 && (size_t)u < n && o[u] > o[t]) {
                peak = false;
            }
        }
        if (peak && (long)t - last >= gap) {
            count++;
            last = (long)t;
        }
    }
    return (double)count / dur;
}

static const char *valence_word(double v) {
    static const char *const w[5] = {"brooding", "wistful", "bittersweet", "warm", "joyful"};
    int i = (int)(clamp01(v) * 5.0);
    return w[i > 4 ? 4 : i];
}

static const char *arousal_word(double a) {
    static const char *const w[5] = {"calm", "gentle", "steady", "lively", "driving"};
    int i = (int)(clamp01(a) * 5.0);
    return w[i > 4 ? 4 : i];
}

/* The renderers' pictures: mel spectrogram (dB, 80 dB range) and energy curve (dB, 40 dB range). */
static m2p_code pictures(const m2p_dsp_frames *fr, m2p_features *f) {
    size_t n = fr->n;
    f->spectrogram = m2p_malloc_array((size_t)SPEC_BANDS * SPEC_FRAMES, sizeof(float));
    f->energy_curve = m2p_malloc_array(ENERGY_POINTS, sizeof(float));
    if (f->spectrogram == NULL || f->energy_curve == NULL) {
        return M2P_E_NOMEM;
    }
    f->spec_bands = SPEC_BANDS;
    f->spec_frames = SPEC_FRAMES;
    f->n_energy = ENERGY_POINTS;
    if (n == 0) {
        memset(f->spectrogram, 0, sizeof(float) * SPEC_BANDS * SPEC_FRAMES);
        memset(f->energy_curve, 0, sizeof(float) * ENERGY_POINTS);
        return M2P_OK;
    }
    float dbmax = -1e30f;
    for (int j = 0; j < SPEC_FRAMES; j++) {
        size_t t0 = (size_t)j * n / SPEC_FRAMES, t1 = (size_t)(j + 1) * n / SPEC_FRAMES;
        if (t1 <= t0) {
            t1 = t0 + 1;
        }
        for (int b = 0; b < SPEC_BANDS; b++) {
            double s = 0;
            for (size_t t = t0; t < t1 && t < n; t++) {
                s += fr->mel[t * M2P_DSP_MEL + b];
            }
            float db = (float)(10.0 * log10(s / (double)(t1 - t0) + 1e-12));
            f->spectrogram[(size_t)b * SPEC_FRAMES + (size_t)j] = db;
            dbmax = db > dbmax ? db : dbmax;
        }
    }
    for (size_t i = 0; i < (size_t)SPEC_BANDS * SPEC_FRAMES; i++) {
        f->spectrogram[i] = (float)clamp01((f->spectrogram[i] - (dbmax - 80.0f)) / 80.0f);
        if (dbmax < -100.0f) {
            f->spectrogram[i] = 0.0f; /* digital silence */
        }
    }
    float emax = -1e30f;
    for (int j = 0; j < ENERGY_POINTS; j++) {
        size_t t0 = (size_t)j * n / ENERGY_POINTS, t1 = (size_t)(j + 1) * n / ENERGY_POINTS;
        if (t1 <= t0) {
            t1 = t0 + 1;
        }
        double s = 0;
        for (size_t t = t0; t < t1 && t < n; t++) {
            s += (double)fr->rms[t] * fr->rms[t];
        }
        float db = (float)(10.0 * log10(s / (double)(t1 - t0) + 1e-12));
        f->energy_curve[j] = db;
        emax = db > emax ? db : emax;
    }
    for (int j = 0; j < ENERGY_POINTS; j++) {
        f->energy_curve[j] = emax < -100.0f ? 0.0f : (float)clamp01((f->energy_curve[j] - (emax - 40.0f)) / 40.0f);
    }
    return M2P_OK;
}

/* Mean of rms² and centroid over frames [t0, t1). */
static void frame_means(const m2p_dsp_frames *fr, size_t t0, size_t t1, double *db, double *centroid) {
    double ss = 0, cs = 0;
    size_t cn = 0;
    for (size_t t = t0; t < t1 && t < fr->n; t++) {
        ss += (double)fr->rms[t] * fr->rms[t];
        if (fr->centroid[t] > 0 && fr->rms[t] > 3e-4f) {
            cs += fr->centroid[t];
            cn++;
        }
    }
    size_t cnt = t1 > t0 ? t1 - t0 : 1;
    *db = 10.0 * log10(ss / (double)cnt + 1e-12);
    *centroid = cn > 0 ? cs / (double)cn : 0.0;
}

static m2p_code backend(const m2p_dsp_frames *fr, const m2p_progress *p, m2p_features **out, m2p_error *err) {
    *out = NULL;
    m2p_code rc = M2P_E_NOMEM;
    size_t n = fr->n;
    float *onset = NULL, *low = NULL, *chroma = NULL;
    m2p_dsp_tempo tempo;
    memset(&tempo, 0, sizeof tempo);
    m2p_features *f = m2p_calloc(1, sizeof *f);
    if (f == NULL) {
        goto fail;
    }
    f->duration_s = (double)fr->n_samples / fr->rate;
    onset = m2p_calloc(n > 0 ? n : 1, sizeof *onset);
    low = m2p_calloc(n > 0 ? n : 1, sizeof *low);
    chroma = m2p_calloc((n > 0 ? n : 1) * 12, sizeof *chroma);
    if (onset == NULL || low == NULL || chroma == NULL) {
        goto fail;
    }
    m2p_progress_report(p, M2P_STEP_ANALYZE, 1, 5, "rhythm and harmony");
    if (m2p_progress_cancelled(p)) {
        rc = M2P_E_CANCELLED;
        goto fail;
    }
    m2p_dsp_onset_envelope(fr, onset, low);

    m2p_code rc_tempo = M2P_OK, rc_key = M2P_OK;
    m2p_dsp_key key;
    double perc = 0;
#pragma omp parallel sections num_threads(2)
    {
#pragma omp section
        rc_tempo = m2p_dsp_tempo_beats(onset, low, n, fr->fps, &tempo);
#pragma omp section
        rc_key = m2p_dsp_key_estimate(fr, chroma, &key);
#pragma omp section
        perc = m2p_dsp_percussive_share(fr);
    }
    if (rc_tempo != M2P_OK || rc_key != M2P_OK) {
        rc = rc_tempo != M2P_OK ? rc_tempo : rc_key;
        goto fail;
    }
    char msg[128];
    f->tempo_bpm = tempo.bpm;
    f->tempo_confidence = tempo.confidence;
    f->beat_regularity = tempo.regularity;
    f->beats = tempo.beats;
    f->n_beats = tempo.n_beats;
    tempo.beats = NULL;
    if (f->tempo_bpm > 0) {
        (void)snprintf(msg, sizeof msg, "Found tempo: %.0f BPM", f->tempo_bpm);
    } else {
        (void)snprintf(msg, sizeof msg, "No steady beat found");
    }
    m2p_progress_finding(p, M2P_STEP_ANALYZE, "tempo", msg);
    f->key = key.key;
    f->mode = key.mode;
    f->key_confidence = key.confidence;
    memcpy(f->chroma, key.chroma, sizeof f->chroma);
    (void)snprintf(msg, sizeof msg, "Key: %s %s", m2p_key_name(f->key), m2p_mode_name(f->mode));
    m2p_progress_finding(p, M2P_STEP_ANALYZE, "key", msg);
    m2p_progress_report(p, M2P_STEP_ANALYZE, 3, 5, "structure");
    if (m2p_progress_cancelled(p)) {
        rc = M2P_E_CANCELLED;
        goto fail;
    }

    /* loudness, dynamics, brightness */
    f->loudness_db = fr->n_samples > 0 ? 10.0 * log10(fr->sum_sq / (double)fr->n_samples + 1e-12) : -120.0;
    if (f->loudness_db < -120.0) {
        f->loudness_db = -120.0;
    }
    {
        float *db = m2p_malloc_array(n > 0 ? n : 1, sizeof *db);
        if (db == NULL) {
            goto fail;
        }
        size_t m = 0;
        double cs = 0;
        size_t cn = 0;
        for (size_t t = 0; t < n; t++) {
            float d = 20.0f * log10f(fr->rms[t] + 1e-9f);
            if (d > -70.0f) {
                db[m++] = d;
            }
            if (fr->centroid[t] > 0 && fr->rms[t] > 3e-4f) {
                cs += fr->centroid[t];
                cn++;
            }
        }
        if (m > 1) {
            qsort(db, m, sizeof *db, cmp_float);
            f->dynamic_range_db = db[(size_t)(0.95 * (double)(m - 1))] - db[(size_t)(0.10 * (double)(m - 1))];
        }
        m2p_free(db);
        f->centroid_hz = cn > 0 ? cs / (double)cn : 0.0;
    }
    f->brightness = bright_norm(f->centroid_hz);
    f->onset_density = onset_density(onset, n, fr->fps, f->duration_s);
    f->percussiveness = clamp01(perc);
    f->energy = clamp01(0.75 * loud_norm(f->loudness_db) + 0.25 * clamp01(f->onset_density / 6.0));
    (void)snprintf(msg, sizeof msg, "Energy: %.2f (%s)", f->energy,
                   f->energy < 0.33 ? "low" : f->energy < 0.66 ? "medium" : "high");
    m2p_progress_finding(p, M2P_STEP_ANALYZE, "energy", msg);

    /* descriptors (docs/notes/dsp.md) */
    double tempo_fit = 0, tempo_norm = 0;
    if (f->tempo_bpm > 0) {
        double z = log2(f->tempo_bpm / 118.0) / 0.35;
        tempo_fit = exp(-0.5 * z * z);
        tempo_norm = clamp01((f->tempo_bpm - 60.0) / 120.0);
    }
    f->danceability = clamp01(0.35 * tempo_fit + 0.25 * f->beat_regularity + 0.25 * clamp01(f->percussiveness * 2.0) +
                              0.15 * f->tempo_confidence);
    f->arousal = clamp01(0.4 * f->energy + 0.25 * tempo_norm + 0.2 * clamp01(f->onset_density / 6.0) +
                         0.15 * f->brightness);
    double mode_term = (f->mode == M2P_MODE_MAJOR ? 0.2 : -0.2) * (0.5 + 0.5 * f->key_confidence);
    f->valence = clamp01(0.45 + mode_term + 0.2 * (f->brightness - 0.5) + 0.15 * (tempo_norm - 0.5) +
                         0.1 * (f->danceability - 0.5));

    /* sections */
    rc = m2p_dsp_segment(fr, chroma, f->beats, f->n_beats, &f->sections, &f->n_sections);
    if (rc != M2P_OK) {
        goto fail;
    }
    for (size_t s = 0; s < f->n_sections; s++) {
        m2p_section *sec = &f->sections[s];
        size_t t0 = (size_t)lround(sec->start_s * fr->fps), t1 = (size_t)lround(sec->end_s * fr->fps);
        double db, c;
        frame_means(fr, t0, t1 > t0 ? t1 : t0 + 1, &db, &c);
        sec->energy = loud_norm(db);
        sec->brightness = bright_norm(c);
    }
    (void)snprintf(msg, sizeof msg, "%zu section%s", f->n_sections, f->n_sections == 1 ? "" : "s");
    m2p_progress_finding(p, M2P_STEP_ANALYZE, "sections", msg);
    (void)snprintf(msg, sizeof msg, "Mood: %s, %s", valence_word(f->valence), arousal_word(f->arousal));
    m2p_progress_finding(p, M2P_STEP_ANALYZE, "mood", msg);

    rc = pictures(fr, f);
    if (rc != M2P_OK) {
        goto fail;
    }
    m2p_progress_report(p, M2P_STEP_ANALYZE, 5, 5, "analysis done");
    m2p_free(onset);
    m2p_free(low);
    m2p_free(chroma);
    *out = f;
    return M2P_OK;
fail:
    m2p_free(tempo.beats);
    m2p_free(onset);
    m2p_free(low);
    m2p_free(chroma);
    m2p_features_free(f);
    if (rc == M2P_E_CANCELLED) {
        return m2p_error_set(err, rc, "analysis cancelled");
    }
    return m2p_error_set(err, rc, "analysis back end");
}

m2p_code m2p_dsp_analyze_frontend(m2p_dsp_frontend *fe, const m2p_progress *p, m2p_features **out, m2p_error *err) {
    *out = NULL;
    m2p_code rc = m2p_dsp_frontend_finish(fe, err);
    if (rc != M2P_OK) {
        return rc;
    }
    return backend(m2p_dsp_frontend_frames(fe), p, out, err);
}

m2p_code m2p_dsp_analyze(const m2p_audio *audio, const m2p_progress *progress, m2p_features **out, m2p_error *err) {
    *out = NULL;
    if (audio == NULL || (audio->samples == NULL && audio->n > 0)) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "no audio to analyse");
    }
    m2p_dsp_frontend *fe = NULL;
    m2p_code rc = m2p_dsp_frontend_create(audio->rate, &fe, err);
    if (rc != M2P_OK) {
        return rc;
    }
    m2p_progress_report(progress, M2P_STEP_ANALYZE, 0, 5, "spectrum");
    /* Push in blocks of ~10 s so a cancel is noticed quickly. */
    size_t block = (size_t)audio->rate * 10;
    for (size_t off = 0; off < audio->n; off += block) {
        if (m2p_progress_cancelled(progress)) {
            rc = m2p_error_set(err, M2P_E_CANCELLED, "analysis cancelled");
            goto done;
        }
        size_t m = audio->n - off < block ? audio->n - off : block;
        rc = m2p_dsp_frontend_push(fe, audio->samples + off, m, true, err);
        if (rc != M2P_OK) {
            goto done;
        }
    }
    rc = m2p_dsp_analyze_frontend(fe, progress, out, err);
done:
    m2p_dsp_frontend_free(fe);
    return rc;
}
