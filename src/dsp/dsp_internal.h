/*
 * dsp/dsp_internal.h — what the files of src/dsp share (not a public header).
 *
 * The analysis is split in two halves:
 *
 *  front end (frontend.c, streaming): samples arrive in chunks of any size;
 *    every complete frame (centred, n_fft samples, hop n_fft/4) is windowed,
 *    transformed once with av_tx (real FFT) and reduced to per-frame rows:
 *    RMS, spectral centroid, a mel power spectrum (M2P_DSP_MEL bands) and a
 *    "pitch" spectrum (3 bins per semitone, built from interpolated spectral
 *    peaks) plus a tuning histogram. Nothing else of the spectrum is kept.
 *
 *  back end (tempo.c, key.c, segment.c, analyze.c): global work over the
 *    per-frame rows once the last sample is in: onset envelope, tempo and
 *    beats, tuning-corrected harmonic chroma and key, HPSS share, sections,
 *    scalar descriptors and the renderers' pictures.
 *
 * Invariants of m2p_dsp_frames: n frames are filled; every row pointer has
 * room for cap frames; frame i is centred on sample i*hop of the input.
 */
#ifndef M2P_DSP_INTERNAL_H
#define M2P_DSP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "core/progress.h"
#include "dsp/features.h"

#define M2P_DSP_MEL 64          /* mel bands kept per frame */
#define M2P_DSP_PITCH_LO 33     /* MIDI note of the lowest pitch bin (A1, 55 Hz) */
#define M2P_DSP_SEMITONES 72    /* A1 .. G#7 */
#define M2P_DSP_PITCH_SUB 3     /* bins per semitone */
#define M2P_DSP_PITCH (M2P_DSP_SEMITONES * M2P_DSP_PITCH_SUB)
#define M2P_DSP_TUNING_BINS 100 /* tuning histogram: 1 cent per bin, -50..+49 */
#define M2P_DSP_MAX_SECONDS (30.0 * 60.0) /* hard cap on analysed audio */

/* Per-frame rows produced by the front end; owned by the front end. */
typedef struct m2p_dsp_frames {
    int rate, n_fft, hop;
    double fps;           /* frames per second = rate / hop */
    size_t n, cap;        /* frames filled / allocated */
    size_t n_samples;     /* input samples consumed */
    double sum_sq;        /* Σ x² over the input (for the RMS level) */
    float peak;           /* max |x| */
    float *rms;           /* [cap] frame RMS (linear) */
    float *centroid;      /* [cap] spectral centroid, Hz (0 for silent frames) */
    float *mel;           /* [cap][M2P_DSP_MEL] power */
    float *logmel;        /* [cap][M2P_DSP_MEL] 10*log10(power + 1e-10), dB */
    float *pitch;         /* [cap][M2P_DSP_PITCH] peak amplitude per 1/3-semitone bin */
    double tuning[M2P_DSP_TUNING_BINS]; /* peak-amplitude weighted cents histogram */
    float mel_hz[M2P_DSP_MEL];          /* centre frequency of each mel band */
} m2p_dsp_frames;

typedef struct m2p_dsp_frontend m2p_dsp_frontend;

/* A front end for audio at rate Hz (8000..192000). */
m2p_code m2p_dsp_frontend_create(int rate, m2p_dsp_frontend **out, m2p_error *err) M2P_WUR;
void m2p_dsp_frontend_free(m2p_dsp_frontend *fe);
/* Consumes n samples (any n, including 0). Frames complete in this call are
 * computed, in parallel when there are many (parallel=true). */
m2p_code m2p_dsp_frontend_push(m2p_dsp_frontend *fe, const float *x, size_t n, bool parallel,
                               m2p_error *err) M2P_WUR;
/* Pads the end and computes the remaining frames; afterwards the frames are final. */
m2p_code m2p_dsp_frontend_finish(m2p_dsp_frontend *fe, m2p_error *err) M2P_WUR;
/* The rows (valid until the front end is freed). */
const m2p_dsp_frames *m2p_dsp_frontend_frames(const m2p_dsp_frontend *fe);

/* Finishes the front end and runs the whole back end (analyze.c). */
m2p_code m2p_dsp_analyze_frontend(m2p_dsp_frontend *fe, const m2p_progress *p, m2p_features **out,
                                  m2p_error *err) M2P_WUR;

/* --- back end pieces (pure functions over the rows) -------------------------------------- */

/* Onset strength per frame (spectral flux of log mel, mean over bands), out[n];
 * low[n] (may be NULL): the same over the bands below 3 kHz (kick, snare
 * body, bass; not the hats), which carries the accents of the beat. */
void m2p_dsp_onset_envelope(const m2p_dsp_frames *fr, float *out, float *low);

typedef struct m2p_dsp_tempo {
    double bpm;        /* 0 when no pulse was found */
    double confidence; /* 0..1 */
    double *beats;     /* beat times, s (owned, m2p_free) */
    size_t n_beats;
    double regularity; /* 0..1 */
} m2p_dsp_tempo;

/* Tempo and beats from the onset envelopes onset[n] and low[n] at fps frames/s. */
m2p_code m2p_dsp_tempo_beats(const float *onset, const float *low, size_t n, double fps,
                             m2p_dsp_tempo *out) M2P_WUR;

typedef struct m2p_dsp_key {
    int key;          /* 0..11 */
    m2p_mode mode;
    double confidence;  /* 0..1 */
    double tuning_cents; /* -50..50 */
    double chroma[12];  /* max-normalised */
} m2p_dsp_key;

/* Harmonic, tuning-corrected semitone spectrogram → chroma rows
 * chroma_out[n][12] (may be NULL) and the song's key. */
m2p_code m2p_dsp_key_estimate(const m2p_dsp_frames *fr, float *chroma_out, m2p_dsp_key *out) M2P_WUR;

/* Share 0..1 of percussive energy by median-filter HPSS on the mel rows. */
double m2p_dsp_percussive_share(const m2p_dsp_frames *fr);

/* Median of a small array (copied; n <= 64). */
float m2p_dsp_median_small(const float *v, int n);
/* Sliding median along a strided series: out[t*ostride] = median of
 * in[u*istride], u in [t-half, t+half] clipped to [0, n); half <= 31. */
void m2p_dsp_median_time(const float *in, size_t istride, size_t n, int half, float *out, size_t ostride);

/* Sections from beat-synchronous chroma + timbre + loudness. chroma[n][12]
 * from m2p_dsp_key_estimate; beats may be empty (fixed 0.5 s blocks are
 * used instead). *out is m2p_malloc'ed. */
m2p_code m2p_dsp_segment(const m2p_dsp_frames *fr, const float *chroma, const double *beats, size_t n_beats,
                         m2p_section **out, size_t *n_out) M2P_WUR;

#endif
