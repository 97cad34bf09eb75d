/*
 * tests/unit/dsp/test_dsp_features.c — the m2p_features value: JSON round trip, clone, names,
 * and refusal of malformed JSON.
 */
#include "test_util.h"

#include <math.h>

#include "core/alloc.h"
#include "dsp/features.h"

static m2p_features *make_sample(void) {
    m2p_features *f = m2p_calloc(1, sizeof *f);
    assert_non_null(f);
    f->duration_s = 201.5;
    f->tempo_bpm = 123.7;
    f->tempo_confidence = 0.8;
    f->n_beats = 3;
    f->beats = m2p_malloc_array(3, sizeof(double));
    assert_non_null(f->beats);
    f->beats[0] = 0.5;
    f->beats[1] = 1.0;
    f->beats[2] = 1.49;
    f->beat_regularity = 0.9;
    f->key = 9;
    f->mode = M2P_MODE_MINOR;
    f->key_confidence = 0.6;
    f->energy = 0.72;
    f->loudness_db = -14.2;
    f->dynamic_range_db = 9.5;
    f->brightness = 0.4;
    f->centroid_hz = 1830.0;
    f->percussiveness = 0.33;
    f->onset_density = 3.1;
    f->danceability = 0.7;
    f->valence = 0.3;
    f->arousal = 0.8;
    for (int i = 0; i < 12; i++) {
        f->chroma[i] = i / 11.0;
    }
    f->n_sections = 2;
    f->sections = m2p_calloc(2, sizeof *f->sections);
    assert_non_null(f->sections);
    f->sections[0] = (m2p_section){0, 100.25, 0.4, 0.3, 0};
    f->sections[1] = (m2p_section){100.25, 201.5, 0.9, 0.6, 1};
    f->spec_bands = 4;
    f->spec_frames = 5;
    f->spectrogram = m2p_malloc_array(20, sizeof(float));
    assert_non_null(f->spectrogram);
    for (int i = 0; i < 20; i++) {
        f->spectrogram[i] = (float)i / 19.0f;
    }
    f->n_energy = 7;
    f->energy_curve = m2p_malloc_array(7, sizeof(float));
    assert_non_null(f->energy_curve);
    for (int i = 0; i < 7; i++) {
        f->energy_curve[i] = (float)(i * i) / 36.0f;
    }
    return f;
}

static void test_names(void **state) {
    (void)state;
    assert_string_equal(m2p_key_name(0), "C");
    assert_string_equal(m2p_key_name(9), "A");
    assert_string_equal(m2p_key_name(11), "B");
    assert_string_equal(m2p_key_name(12), "?");
    assert_string_equal(m2p_key_name(-1), "?");
    assert_string_equal(m2p_mode_name(M2P_MODE_MINOR), "minor");
    assert_string_equal(m2p_mode_name(M2P_MODE_MAJOR), "major");
}

static void test_json_round_trip(void **state) {
    (void)state;
    m2p_features *f = make_sample();
    json_t *j = NULL;
    assert_int_equal(m2p_features_to_json(f, &j), M2P_OK);
    assert_string_equal(json_string_value(json_object_get(j, "key")), "A");
    assert_string_equal(json_string_value(json_object_get(j, "mode")), "minor");
    assert_true(fabs(json_number_value(json_object_get(j, "tempo_bpm")) - 123.7) < 1e-9);
    assert_true(fabs(json_number_value(json_object_get(j, "energy")) - 0.72) < 1e-9);
    assert_int_equal(json_array_size(json_object_get(j, "sections")), 2);
    json_t *s1 = json_array_get(json_object_get(j, "sections"), 1);
    assert_true(fabs(json_number_value(json_object_get(s1, "start_s")) - 100.25) < 1e-9);
    assert_int_equal(json_integer_value(json_object_get(s1, "label")), 1);

    m2p_features *g = NULL;
    m2p_error err;
    assert_int_equal(m2p_features_from_json(j, &g, &err), M2P_OK);
    assert_int_equal(g->key, 9);
    assert_int_equal(g->mode, M2P_MODE_MINOR);
    assert_int_equal(g->n_beats, 3);
    assert_true(fabs(g->beats[2] - 1.49) < 1e-12);
    assert_int_equal(g->n_sections, 2);
    assert_int_equal(g->spec_bands, 4);
    assert_int_equal(g->spec_frames, 5);
    assert_int_equal(g->n_energy, 7);
    for (int i = 0; i < 20; i++) {
        assert_true(fabsf(g->spectrogram[i] - f->spectrogram[i]) < 1e-4f);
    }
    /* Writing what was read gives the same JSON again, byte for byte. */
    json_t *j2 = NULL;
    assert_int_equal(m2p_features_to_json(g, &j2), M2P_OK);
    char *a = json_dumps(j, JSON_SORT_KEYS);
    char *b = json_dumps(j2, JSON_SORT_KEYS);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a, b);
    free(a);
    free(b);

    /* A clone is deep and equal. */
    m2p_features *c = NULL;
    assert_int_equal(m2p_features_clone(g, &c), M2P_OK);
    assert_ptr_not_equal(c->beats, g->beats);
    assert_ptr_not_equal(c->spectrogram, g->spectrogram);
    assert_memory_equal(c->energy_curve, g->energy_curve, 7 * sizeof(float));
    assert_memory_equal(c->sections, g->sections, 2 * sizeof(m2p_section));

    char line[256];
    m2p_features_summary(g, line, sizeof line);
    assert_non_null(strstr(line, "124 BPM"));
    assert_non_null(strstr(line, "A minor"));
    assert_non_null(strstr(line, "2 sections"));

    json_decref(j);
    json_decref(j2);
    m2p_features_free(f);
    m2p_features_free(g);
    m2p_features_free(c);
    m2p_features_free(NULL);
}

static void test_json_rejects_bad(void **state) {
    (void)state;
    m2p_features *f = make_sample();
    json_t *j = NULL;
    assert_int_equal(m2p_features_to_json(f, &j), M2P_OK);
    struct {
        const char *key;
        json_t *value;
    } bad[] = {
        {"key", json_string("H")},
        {"mode", json_string("dorian")},
        {"energy", json_real(1.5)},
        {"tempo_bpm", json_string("fast")},
        {"chroma", json_array()},
        {"beats", json_string("x")},
        {"energy_curve", json_integer(3)},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *copy = json_deep_copy(j);
        assert_non_null(copy);
        assert_int_equal(json_object_set_new(copy, bad[i].key, bad[i].value), 0);
        m2p_features *g = NULL;
        m2p_error err;
        assert_int_equal(m2p_features_from_json(copy, &g, &err), M2P_E_INVALID_ARG);
        assert_null(g);
        json_decref(copy);
    }
    /* Spectrogram claiming more cells than it has. */
    json_t *copy = json_deep_copy(j);
    json_object_set_new(json_object_get(copy, "spectrogram"), "frames", json_integer(50000));
    m2p_features *g = NULL;
    assert_int_equal(m2p_features_from_json(copy, &g, NULL), M2P_E_INVALID_ARG);
    json_decref(copy);
    /* Missing field. */
    copy = json_deep_copy(j);
    json_object_del(copy, "duration_s");
    assert_int_equal(m2p_features_from_json(copy, &g, NULL), M2P_E_INVALID_ARG);
    json_decref(copy);
    assert_int_equal(m2p_features_from_json(json_object_get(j, "beats"), &g, NULL), M2P_E_INVALID_ARG);
    json_decref(j);
    m2p_features_free(f);
}

static void test_alloc_failures(void **state) {
    (void)state;
    m2p_features *f = make_sample();
    json_t *j = NULL;
    assert_int_equal(m2p_features_to_json(f, &j), M2P_OK);
    for (long n = 0; n < 8; n++) {
        m2p_features *g = NULL;
        m2p_alloc_fail_after(n);
        m2p_code rc = m2p_features_from_json(j, &g, NULL);
        m2p_alloc_fail_after(-1);
        if (rc == M2P_OK) {
            m2p_features_free(g);
        } else {
            assert_int_equal(rc, M2P_E_NOMEM);
            assert_null(g);
        }
        m2p_features *c = NULL;
        m2p_alloc_fail_after(n);
        rc = m2p_features_clone(f, &c);
        m2p_alloc_fail_after(-1);
        if (rc == M2P_OK) {
            m2p_features_free(c);
        } else {
            assert_int_equal(rc, M2P_E_NOMEM);
            assert_null(c);
        }
    }
    json_decref(j);
    m2p_features_free(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_json_rejects_bad),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
