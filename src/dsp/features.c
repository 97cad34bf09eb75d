/*
 * dsp/features.c — the m2p_features value: free, deep copy, names, JSON.
 *
 * The JSON form is what the feature cache stores and what the API returns.
 * Scalars are written as they are; the two pictures (spectrogram, energy
 * curve) are rounded to 4 decimals so the JSON stays compact, and
 * m2p_features_from_json reads back exactly what m2p_features_to_json wrote
 * (to_json(from_json(to_json(f))) == to_json(f)). Everything read from JSON is
 * treated as untrusted: types, finiteness, ranges and array sizes are checked
 * against hard caps before anything is allocated.
 */
#include "dsp/features.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"

/* Hard caps on arrays read from JSON (a 10-minute song at 300 BPM has 3000 beats). */
#define FEAT_MAX_BEATS 100000u
#define FEAT_MAX_SECTIONS 4096u
#define FEAT_MAX_SPEC_CELLS (1u << 20)
#define FEAT_MAX_ENERGY (1u << 16)

static const char *const k_key_names[12] = {"C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"};

const char *m2p_key_name(int key) {
    if (key < 0 || key > 11) {
        return "?";
    }
    return k_key_names[key];
}

const char *m2p_mode_name(m2p_mode mode) {
    return mode == M2P_MODE_MINOR ? "minor" : "major";
}

void m2p_features_free(m2p_features *f) {
    if (f == NULL) {
        return;
    }
    m2p_free(f->beats);
    m2p_free(f->sections);
    m2p_free(f->spectrogram);
    m2p_free(f->energy_curve);
    m2p_free(f);
}

/* Copies n elements of size bytes (n may be 0 → NULL). */
static m2p_code dup_array(const void *src, size_t n, size_t size, void **out) {
    *out = NULL;
    if (n == 0 || src == NULL) {
        return M2P_OK;
    }
    size_t bytes;
    if (!m2p_size_mul(n, size, &bytes)) {
        return M2P_E_NOMEM;
    }
    void *p = m2p_malloc(bytes);
    if (p == NULL) {
        return M2P_E_NOMEM;
    }
    memcpy(p, src, bytes);
    *out = p;
    return M2P_OK;
}

m2p_code m2p_features_clone(const m2p_features *f, m2p_features **out) {
    *out = NULL;
    if (f == NULL) {
        return M2P_E_INVALID_ARG;
    }
    m2p_code rc = M2P_E_NOMEM;
    m2p_features *c = m2p_malloc(sizeof *c);
    if (c == NULL) {
        return M2P_E_NOMEM;
    }
    *c = *f;
    c->beats = NULL;
    c->sections = NULL;
    c->spectrogram = NULL;
    c->energy_curve = NULL;
    void *p;
    rc = dup_array(f->beats, f->n_beats, sizeof *f->beats, &p);
    if (rc != M2P_OK) {
        goto fail;
    }
    c->beats = p;
    rc = dup_array(f->sections, f->n_sections, sizeof *f->sections, &p);
    if (rc != M2P_OK) {
        goto fail;
    }
    c->sections = p;
    size_t cells = 0;
    if (f->spec_bands > 0 && f->spec_frames > 0) {
        cells = (size_t)f->spec_bands * (size_t)f->spec_frames;
    }
    rc = dup_array(f->spectrogram, cells, sizeof *f->spectrogram, &p);
    if (rc != M2P_OK) {
        goto fail;
    }
    c->spectrogram = p;
    rc = dup_array(f->energy_curve, f->n_energy > 0 ? (size_t)f->n_energy : 0, sizeof *f->energy_curve, &p);
    if (rc != M2P_OK) {
        goto fail;
    }
    c->energy_curve = p;
    if (c->beats == NULL) {
        c->n_beats = 0;
    }
    if (c->sections == NULL) {
        c->n_sections = 0;
    }
    if (c->spectrogram == NULL) {
        c->spec_bands = 0;
        c->spec_frames = 0;
    }
    if (c->energy_curve == NULL) {
        c->n_energy = 0;
    }
    *out = c;
    return M2P_OK;
fail:
    m2p_features_free(c);
    return rc;
}

/* --- JSON out ------------------------------------------------------------------------------ */

/* Rounds to `digits` decimals; non-finite values become 0 (JSON has no NaN). */
static double round_to(double v, int digits) {
    if (!isfinite(v)) {
        return 0.0;
    }
    double s = digits == 3 ? 1e3 : digits == 4 ? 1e4 : 1e6;
    return round(v * s) / s;
}

/* Adds key → real; takes care of the reference. Returns false on failure. */
static bool put_real(json_t *o, const char *key, double v) {
    if (!isfinite(v)) {
        v = 0.0;
    }
    return json_object_set_new(o, key, json_real(v)) == 0;
}

static bool put_int(json_t *o, const char *key, json_int_t v) {
    return json_object_set_new(o, key, json_integer(v)) == 0;
}

static json_t *float_array(const float *v, size_t n) {
    json_t *a = json_array();
    if (a == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        /* Rounded to 4 decimals: float → JSON → float → JSON is stable. */
        if (json_array_append_new(a, json_real(round_to((double)v[i], 4))) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

m2p_code m2p_features_to_json(const m2p_features *f, json_t **out) {
    *out = NULL;
    if (f == NULL) {
        return M2P_E_INVALID_ARG;
    }
    json_t *o = json_object();
    if (o == NULL) {
        return M2P_E_NOMEM;
    }
    bool ok = true;
    ok = ok && json_object_set_new(o, "analyzer_version", json_string(M2P_ANALYZER_VERSION)) == 0;
    ok = ok && put_real(o, "duration_s", f->duration_s);
    ok = ok && put_real(o, "tempo_bpm", f->tempo_bpm);
    ok = ok && put_real(o, "tempo_confidence", f->tempo_confidence);
    ok = ok && put_real(o, "beat_regularity", f->beat_regularity);
    ok = ok && json_object_set_new(o, "key", json_string(m2p_key_name(f->key))) == 0;
    ok = ok && json_object_set_new(o, "mode", json_string(m2p_mode_name(f->mode))) == 0;
    ok = ok && put_real(o, "key_confidence", f->key_confidence);
    ok = ok && put_real(o, "energy", f->energy);
    ok = ok && put_real(o, "loudness_db", f->loudness_db);
    ok = ok && put_real(o, "dynamic_range_db", f->dynamic_range_db);
    ok = ok && put_real(o, "brightness", f->brightness);
    ok = ok && put_real(o, "centroid_hz", f->centroid_hz);
    ok = ok && put_real(o, "percussiveness", f->percussiveness);
    ok = ok && put_real(o, "onset_density", f->onset_density);
    ok = ok && put_real(o, "danceability", f->danceability);
    ok = ok && put_real(o, "valence", f->valence);
    ok = ok && put_real(o, "arousal", f->arousal);
    if (!ok) {
        goto nomem;
    }

    json_t *a = json_array();
    if (a == NULL || json_object_set_new(o, "chroma", a) != 0) {
        goto nomem;
    }
    for (int i = 0; i < 12; i++) {
        if (json_array_append_new(a, json_real(isfinite(f->chroma[i]) ? f->chroma[i] : 0.0)) != 0) {
            goto nomem;
        }
    }

    a = json_array();
    if (a == NULL || json_object_set_new(o, "beats", a) != 0) {
        goto nomem;
    }
    for (size_t i = 0; i < f->n_beats && f->beats != NULL; i++) {
        if (json_array_append_new(a, json_real(isfinite(f->beats[i]) ? f->beats[i] : 0.0)) != 0) {
            goto nomem;
        }
    }

    a = json_array();
    if (a == NULL || json_object_set_new(o, "sections", a) != 0) {
        goto nomem;
    }
    for (size_t i = 0; i < f->n_sections && f->sections != NULL; i++) {
        const m2p_section *s = &f->sections[i];
        json_t *so = json_object();
        if (so == NULL || json_array_append_new(a, so) != 0) {
            goto nomem;
        }
        if (!put_real(so, "start_s", s->start_s) || !put_real(so, "end_s", s->end_s) ||
            !put_real(so, "energy", s->energy) || !put_real(so, "brightness", s->brightness) ||
            !put_int(so, "label", s->label)) {
            goto nomem;
        }
    }

    int bands = f->spectrogram != NULL && f->spec_bands > 0 && f->spec_frames > 0 ? f->spec_bands : 0;
    int frames = bands > 0 ? f->spec_frames : 0;
    json_t *spec = json_object();
    if (spec == NULL || json_object_set_new(o, "spectrogram", spec) != 0) {
        goto nomem;
    }
    if (!put_int(spec, "bands", bands) || !put_int(spec, "frames", frames)) {
        goto nomem;
    }
    a = float_array(f->spectrogram, (size_t)bands * (size_t)frames);
    if (a == NULL || json_object_set_new(spec, "values", a) != 0) {
        goto nomem;
    }

    int n_energy = f->energy_curve != NULL && f->n_energy > 0 ? f->n_energy : 0;
    a = float_array(f->energy_curve, (size_t)n_energy);
    if (a == NULL || json_object_set_new(o, "energy_curve", a) != 0) {
        goto nomem;
    }
    *out = o;
    return M2P_OK;
nomem:
    json_decref(o);
    return M2P_E_NOMEM;
}

/* --- JSON in ------------------------------------------------------------------------------- */

static m2p_code get_num(const json_t *o, const char *key, double lo, double hi, double *out, m2p_error *err) {
    const json_t *v = json_object_get(o, key);
    if (v == NULL || !json_is_number(v)) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "features: '%s' missing or not a number", key);
    }
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "features: '%s' out of range", key);
    }
    *out = d;
    return M2P_OK;
}

static m2p_code get_float_array(const json_t *a, size_t expect, float **out, const char *what, m2p_error *err) {
    *out = NULL;
    if (!json_is_array(a) || json_array_size(a) != expect) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "features: '%s' has the wrong size", what);
    }
    if (expect == 0) {
        return M2P_OK;
    }
    float *v = m2p_malloc_array(expect, sizeof *v);
    if (v == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "features: %zu values", expect);
    }
    for (size_t i = 0; i < expect; i++) {
        const json_t *x = json_array_get(a, i);
        double d = json_is_number(x) ? json_number_value(x) : NAN;
        if (!isfinite(d) || d < -1e6 || d > 1e6) {
            m2p_free(v);
            return m2p_error_set(err, M2P_E_INVALID_ARG, "features: '%s'[%zu] is not a number", what, i);
        }
        v[i] = (float)d;
    }
    *out = v;
    return M2P_OK;
}

m2p_code m2p_features_from_json(const json_t *j, m2p_features **out, m2p_error *err) {
    *out = NULL;
    if (!json_is_object(j)) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "features: not a JSON object");
    }
    m2p_features *f = m2p_calloc(1, sizeof *f);
    if (f == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "features");
    }
    m2p_code rc = M2P_OK;
    struct {
        const char *key;
        double *dst;
        double lo, hi;
    } scalars[] = {
        {"duration_s", &f->duration_s, 0, 1e7},
        {"tempo_bpm", &f->tempo_bpm, 0, 1000},
        {"tempo_confidence", &f->tempo_confidence, 0, 1},
        {"beat_regularity", &f->beat_regularity, 0, 1},
        {"key_confidence", &f->key_confidence, 0, 1},
        {"energy", &f->energy, 0, 1},
        {"loudness_db", &f->loudness_db, -1000, 100},
        {"dynamic_range_db", &f->dynamic_range_db, 0, 1000},
        {"brightness", &f->brightness, 0, 1},
        {"centroid_hz", &f->centroid_hz, 0, 1e6},
        {"percussiveness", &f->percussiveness, 0, 1},
        {"onset_density", &f->onset_density, 0, 1e4},
        {"danceability", &f->danceability, 0, 1},
        {"valence", &f->valence, 0, 1},
        {"arousal", &f->arousal, 0, 1},
    };
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++) {
        rc = get_num(j, scalars[i].key, scalars[i].lo, scalars[i].hi, scalars[i].dst, err);
        if (rc != M2P_OK) {
            goto fail;
        }
    }

    const char *key = json_string_value(json_object_get(j, "key"));
    f->key = -1;
    for (int k = 0; key != NULL && k < 12; k++) {
        if (strcmp(key, k_key_names[k]) == 0) {
            f->key = k;
        }
    }
    if (f->key < 0) {
        rc = m2p_error_set(err, M2P_E_INVALID_ARG, "features: 'key' must be a pitch class name such as \"A\"");
        goto fail;
    }
    const char *mode = json_string_value(json_object_get(j, "mode"));
    if (mode != NULL && strcmp(mode, "major") == 0) {
        f->mode = M2P_MODE_MAJOR;
    } else if (mode != NULL && strcmp(mode, "minor") == 0) {
        f->mode = M2P_MODE_MINOR;
    } else {
        rc = m2p_error_set(err, M2P_E_INVALID_ARG, "features: 'mode' must be \"major\" or \"minor\"");
        goto fail;
    }

    const json_t *a = json_object_get(j, "chroma");
    if (!json_is_array(a) || json_array_size(a) != 12) {
        rc = m2p_error_set(err, M2P_E_INVALID_ARG, "features: 'chroma' must have 12 numbers");
        goto fail;
    }
    for (size_t i = 0; i < 12; i++) {
        const json_t *x = json_array_get(a, i);
        double d = json_is_number(x) ? json_number_value(x) : NAN;
        if (!isfinite(d) || d < 0 || d > 1e6) {
            rc = m2p_error_set(err, M2P_E_INVALID_ARG, "features: 'chroma'[%zu] is not a number", i);
            goto fail;
        }
        f->chroma[i] = d;
    }

    a = json_object_get(j, "beats");
    if (!json_is_array(a) || json_array_size(a) > FEAT_MAX_BEATS) {
        rc = m2p_error_set(err, M2P_E_INVALID_ARG, "features: 'beats' missing or too long");
        goto fail;
    }
    f->n_beats = json_array_size(a);
    if (f->n_beats > 0) {
        f->beats = m2p_malloc_array(f->n_beats, sizeof *f->beats);
        if (f->beats == NULL) {
            rc = m2p_error_set(err, M2P_E_NOMEM, "features: beats");
            goto fail;
        }
        for (size_t i = 0; i < f->n_beats; i++) {
            const json_t *x = json_array_get(a, i);
            double d = json_is_number(x) ? json_number_value(x) : NAN;
            if (!isfinite(d) || d < 0 || d > 1e7) {
                rc = m2p_error_set(err, M2P_E_INVALID_ARG, "features: 'beats'[%zu] is not a time", i);
                goto fail;
            }
            f->beats[i] = d;
        }
    }

    a = json_object_get(j, "sections");
    if (!json_is_array(a) || json_array_size(a) > FEAT_MAX_SECTIONS) {
        rc = m2p_error_set(err, M2P_E_INVALID_ARG, "features: 'sections' missing or too long");
        goto fail;
    }
    f->n_sections = json_array_size(a);
    if (f->n_sections > 0) {
        f->sections = m2p_calloc(f->n_sections, sizeof *f->sections);
        if (f->sections == NULL) {
            rc = m2p_error_set(err, M2P_E_NOMEM, "features: sections");
            goto fail;
        }
        for (size_t i = 0; i < f->n_sections; i++) {
            const json_t *so = json_array_get(a, i);
            m2p_section *s = &f->sections[i];
            double label = 0;
            if (!json_is_object(so)) {
                rc = m2p_error_set(err, M2P_E_INVALID_ARG, "features: sections[%zu] is not an object", i);
                goto fail;
            }
            rc = get_num(so, "start_s", 0, 1e7, &s->start_s, err);
            if (rc == M2P_OK) {
                rc = get_num(so, "end_s", 0, 1e7, &s->end_s, err);
            }
            if (rc == M2P_OK) {
                rc = get_num(so, "energy", 0, 1, &s->energy, err);
            }
            if (rc == M2P_OK) {
                rc = get_num(so, "brightness", 0, 1, &s->brightness, err);
            }
            if (rc == M2P_OK) {
                rc = get_num(so, "label", 0, FEAT_MAX_SECTIONS, &label, err);
            }
            if (rc != M2P_OK) {
                goto fail;
            }
            if (s->end_s < s->start_s || !json_is_integer(json_object_get(so, "label"))) {
                rc = m2p_error_set(err, M2P_E_INVALID_ARG, "features: sections[%zu] is malformed", i);
                goto fail;
            }
            s->label = (int)label;
        }
    }

    const json_t *spec = json_object_get(j, "spectrogram");
    const json_t *jb = json_object_get(spec, "bands");
    const json_t *jf = json_object_get(spec, "frames");
    if (!json_is_object(spec) || !json_is_integer(jb) || !json_is_integer(jf)) {
        rc = m2p_error_set(err, M2P_E_INVALID_ARG, "features: 'spectrogram' must have bands, frames, values");
        goto fail;
    }
    json_int_t bands = json_integer_value(jb);
    json_int_t frames = json_integer_value(jf);
    if (bands < 0 || frames < 0 || bands > 4096 || frames > (json_int_t)FEAT_MAX_SPEC_CELLS ||
        (uint64_t)bands * (uint64_t)frames > FEAT_MAX_SPEC_CELLS || (bands == 0) != (frames == 0)) {
        rc = m2p_error_set(err, M2P_E_INVALID_ARG, "features: spectrogram size out of range");
        goto fail;
    }
    rc = get_float_array(json_object_get(spec, "values"), (size_t)bands * (size_t)frames, &f->spectrogram,
                         "spectrogram.values", err);
    if (rc != M2P_OK) {
        goto fail;
    }
    f->spec_bands = (int)bands;
    f->spec_frames = (int)frames;

    a = json_object_get(j, "energy_curve");
    if (!json_is_array(a) || json_array_size(a) > FEAT_MAX_ENERGY) {
        rc = m2p_error_set(err, M2P_E_INVALID_ARG, "features: 'energy_curve' missing or too long");
        goto fail;
    }
    rc = get_float_array(a, json_array_size(a), &f->energy_curve, "energy_curve", err);
    if (rc != M2P_OK) {
        goto fail;
    }
    f->n_energy = (int)json_array_size(a);
    *out = f;
    return M2P_OK;
fail:
    m2p_features_free(f);
    return rc;
}

void m2p_features_summary(const m2p_features *f, char *buf, size_t cap) {
    if (buf == NULL || cap == 0) {
        return;
    }
    if (f == NULL) {
        (void)snprintf(buf, cap, "no analysis");
        return;
    }
    (void)snprintf(buf, cap, "%.0f BPM \xc2\xb7 %s %s \xc2\xb7 energy %.2f \xc2\xb7 %zu section%s", f->tempo_bpm,
                   m2p_key_name(f->key), m2p_mode_name(f->mode), f->energy, f->n_sections,
                   f->n_sections == 1 ? "" : "s");
}
