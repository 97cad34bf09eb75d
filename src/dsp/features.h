/*
 * dsp/features.h — what Mus2Pic understands of a whole song.
 *
 * m2p_features is produced by m2p_dsp_analyze (dsp/analyze.h), cached as JSON
 * by audio content hash and M2P_ANALYZER_VERSION, and read by the prompt
 * builder and the renderers. It owns its arrays; free with m2p_features_free.
 * All 0..1 scores are documented in docs/architecture.md ("Features").
 */
#ifndef M2P_DSP_FEATURES_H
#define M2P_DSP_FEATURES_H

#include <jansson.h>
#include <stddef.h>

#include "core/error.h"

#define M2P_ANALYZER_VERSION "3"

typedef enum m2p_mode { M2P_MODE_MAJOR = 0, M2P_MODE_MINOR = 1 } m2p_mode;

typedef struct m2p_section {
    double start_s, end_s;
    double energy;     /* 0..1, relative loudness of the section */
    double brightness; /* 0..1 */
    int label;         /* sections with similar content share a label (0, 1, 2, ...) */
} m2p_section;

typedef struct m2p_features {
    double duration_s;
    double tempo_bpm;
    double tempo_confidence; /* 0..1 */
    double *beats;           /* beat times in seconds, owned */
    size_t n_beats;
    double beat_regularity;  /* 0..1: 1 = metronomic */
    int key;                 /* 0 = C ... 11 = B */
    m2p_mode mode;
    double key_confidence;   /* 0..1 */
    double energy;           /* 0..1 overall loudness/energy */
    double loudness_db;      /* mean RMS level, dBFS */
    double dynamic_range_db; /* spread of frame loudness (95th - 10th percentile), dB */
    double brightness;       /* 0..1 (spectral centroid mapped to 0..1) */
    double centroid_hz;      /* mean spectral centroid */
    double percussiveness;   /* 0..1 share of percussive energy (HPSS) */
    double onset_density;    /* onsets per second */
    double danceability;     /* 0..1 */
    double valence;          /* 0..1 sad → happy */
    double arousal;          /* 0..1 calm → excited */
    double chroma[12];       /* pitch-class profile, max-normalised */
    m2p_section *sections;   /* owned */
    size_t n_sections;
    /* A compact picture of the song for the renderers: a mel spectrogram,
     * spec_bands x spec_frames, values 0..1 (dB mapped), row-major by band
     * (band 0 = lowest), frames spread evenly over the whole song. */
    float *spectrogram; /* owned */
    int spec_bands, spec_frames;
    /* Loudness over time: n_energy values 0..1 spread evenly over the song. */
    float *energy_curve; /* owned */
    int n_energy;
} m2p_features;

void m2p_features_free(m2p_features *f);

/* Deep copy; *out owned by the caller. */
m2p_code m2p_features_clone(const m2p_features *f, m2p_features **out) M2P_WUR;

/* "C", "C#", ... "B" (never NULL; "?" when out of range). */
const char *m2p_key_name(int key);
/* "major" / "minor". */
const char *m2p_mode_name(m2p_mode mode);

/* JSON with at least duration_s, tempo_bpm, key ("A"), mode ("minor"),
 * energy, sections[], plus every other field; *out is a new reference. */
m2p_code m2p_features_to_json(const m2p_features *f, json_t **out) M2P_WUR;
/* Parses what m2p_features_to_json wrote; bad/missing fields →
 * M2P_E_INVALID_ARG. *out owned by the caller. */
m2p_code m2p_features_from_json(const json_t *j, m2p_features **out, m2p_error *err) M2P_WUR;

/* One line for people: "124 BPM · A minor · energy 0.72 · 3 sections". */
void m2p_features_summary(const m2p_features *f, char *buf, size_t cap);

#endif
