/*
 * tests/unit/dsp/test_dsp_analyze.c — the analyzer against signals whose
 * answer is known: click tracks (tempo), sustained chords (key and mode),
 * sines (centroid, chroma), silence / noise / very short and very long input
 * (no NaN or inf anywhere, no crash), a quiet part then a loud part (a section
 * boundary near the change), progress findings and cancellation, and the
 * streaming file analysis against the buffer analysis. Accuracy on the
 * synthesised songs is in test_dsp_songs.c.
 */
#include "test_util.h"

#include <math.h>
#include <stdatomic.h>

#include "audio/synth.h"
#include "audio/wav.h"
#include "core/alloc.h"
#include "dsp/analyze.h"

#define RATE 22050

/* Deterministic noise in [-1, 1]. */
static float noise(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) / 8388608.0 - 1.0);
}

static m2p_audio *make_audio(double seconds, int rate) {
    m2p_audio *a = NULL;
    assert_int_equal(m2p_audio_create((size_t)(seconds * rate), rate, &a), M2P_OK);
    return a;
}

/* Adds a click (10 ms decaying noise burst + 1 kHz blip) at time t. */
static void add_click(m2p_audio *a, double t, float amp, uint32_t *seed) {
    size_t i0 = (size_t)(t * a->rate);
    size_t len = (size_t)(0.03 * a->rate);
    for (size_t i = 0; i < len && i0 + i < a->n; i++) {
        double tt = (double)i / a->rate;
        double env = exp(-tt / 0.006);
        a->samples[i0 + i] += (float)(amp * env * (0.6 * noise(seed) + 0.4 * sin(2 * M_PI * 1000 * tt)));
    }
}

static m2p_audio *click_track(double bpm, double seconds) {
    m2p_audio *a = make_audio(seconds, RATE);
    uint32_t seed = 7;
    for (double t = 0.25; t < seconds; t += 60.0 / bpm) {
        add_click(a, t, 0.8f, &seed);
    }
    return a;
}

/* A note with 6 decaying harmonics. */
static void add_note(m2p_audio *a, double t0, double dur, double midi, float amp) {
    double f0 = 440.0 * pow(2.0, (midi - 69.0) / 12.0);
    size_t i0 = (size_t)(t0 * a->rate), n = (size_t)(dur * a->rate);
    for (size_t i = 0; i < n && i0 + i < a->n; i++) {
        double tt = (double)i / a->rate;
        double env = fmin(1.0, tt / 0.02) * fmin(1.0, (dur - tt) / 0.05);
        double s = 0;
        for (int h = 1; h <= 6; h++) {
            if (f0 * h < a->rate / 2.0) {
                s += sin(2 * M_PI * f0 * h * tt) / (h * 1.3);
            }
        }
        a->samples[i0 + i] += (float)(amp * env * s);
    }
}

static void assert_finite_features(const m2p_features *f) {
    const double v[] = {f->duration_s, f->tempo_bpm, f->tempo_confidence, f->beat_regularity, f->key_confidence,
                        f->energy, f->loudness_db, f->dynamic_range_db, f->brightness, f->centroid_hz,
                        f->percussiveness, f->onset_density, f->danceability, f->valence, f->arousal};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        assert_true(isfinite(v[i]));
    }
    const double unit[] = {f->tempo_confidence, f->beat_regularity, f->key_confidence, f->energy, f->brightness,
                           f->percussiveness, f->danceability, f->valence, f->arousal};
    for (size_t i = 0; i < sizeof unit / sizeof unit[0]; i++) {
        assert_true(unit[i] >= 0.0 && unit[i] <= 1.0);
    }
    assert_true(f->key >= 0 && f->key < 12);
    for (int i = 0; i < 12; i++) {
        assert_true(isfinite(f->chroma[i]) && f->chroma[i] >= 0 && f->chroma[i] <= 1.0);
    }
    for (size_t i = 0; i < f->n_beats; i++) {
        assert_true(isfinite(f->beats[i]) && f->beats[i] >= 0 && f->beats[i] <= f->duration_s + 0.1);
        if (i > 0) {
            assert_true(f->beats[i] > f->beats[i - 1]);
        }
    }
    assert_true(f->n_sections >= 1);
    assert_true(fabs(f->sections[0].start_s) < 1e-9);
    assert_true(fabs(f->sections[f->n_sections - 1].end_s - f->duration_s) < 0.05);
    for (size_t i = 0; i < f->n_sections; i++) {
        const m2p_section *s = &f->sections[i];
        assert_true(s->end_s >= s->start_s);
        assert_true(s->energy >= 0 && s->energy <= 1 && s->brightness >= 0 && s->brightness <= 1);
        assert_true(s->label >= 0);
        if (i > 0) {
            assert_true(fabs(s->start_s - f->sections[i - 1].end_s) < 1e-9);
        }
    }
    assert_int_equal(f->spec_bands, 64);
    assert_int_equal(f->spec_frames, 256);
    for (int i = 0; i < f->spec_bands * f->spec_frames; i++) {
        assert_true(isfinite(f->spectrogram[i]) && f->spectrogram[i] >= 0 && f->spectrogram[i] <= 1);
    }
    assert_int_equal(f->n_energy, 512);
    for (int i = 0; i < f->n_energy; i++) {
        assert_true(isfinite(f->energy_curve[i]) && f->energy_curve[i] >= 0 && f->energy_curve[i] <= 1);
    }
    /* whatever we produce, the JSON form round-trips */
    json_t *j = NULL;
    assert_int_equal(m2p_features_to_json(f, &j), M2P_OK);
    m2p_features *g = NULL;
    m2p_error err;
    assert_int_equal(m2p_features_from_json(j, &g, &err), M2P_OK);
    assert_int_equal(g->n_sections, f->n_sections);
    m2p_features_free(g);
    json_decref(j);
}

static m2p_features *analyze(const m2p_audio *a) {
    m2p_features *f = NULL;
    m2p_error err;
    m2p_error_clear(&err);
    m2p_code rc = m2p_dsp_analyze(a, NULL, &f, &err);
    if (rc != M2P_OK) {
        fail_msg("analyze: %s (%s)", m2p_errname(rc), err.detail);
    }
    assert_non_null(f);
    assert_finite_features(f);
    return f;
}

static void test_click_tempo(void **state) {
    (void)state;
    const double tempi[] = {60, 90, 120, 145, 180};
    for (size_t i = 0; i < sizeof tempi / sizeof tempi[0]; i++) {
        m2p_audio *a = click_track(tempi[i], 16.0);
        m2p_features *f = analyze(a);
        print_message("clicks %.0f BPM -> %.1f BPM (%zu beats)\n", tempi[i], f->tempo_bpm, f->n_beats);
        assert_true(fabs(f->tempo_bpm / tempi[i] - 1.0) < 0.04);
        /* beats land on the clicks (within 50 ms) and are regular */
        assert_true(f->n_beats >= (size_t)(16.0 * tempi[i] / 60.0 * 0.7));
        for (size_t b = 0; b < f->n_beats; b++) {
            double k = (f->beats[b] - 0.25) / (60.0 / tempi[i]);
            double off = fabs(k - round(k)) * (60.0 / tempi[i]);
            assert_true(off < 0.05);
        }
        assert_true(f->beat_regularity > 0.8);
        assert_true(f->onset_density > tempi[i] / 60.0 * 0.7 && f->onset_density < tempi[i] / 60.0 * 1.3);
        m2p_features_free(f);
        m2p_audio_free(a);
    }
}

static void test_chord_key(void **state) {
    (void)state;
    struct {
        int root;     /* MIDI note of the chord root */
        bool minor;
        int key;
    } cases[] = {{57, true, 9}, {60, false, 0}, {54, false, 6}, {50, true, 2}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        m2p_audio *a = make_audio(8.0, RATE);
        int r = cases[i].root;
        add_note(a, 0, 8.0, r - 12, 0.25f); /* bass */
        add_note(a, 0, 8.0, r, 0.2f);
        add_note(a, 0, 8.0, r + (cases[i].minor ? 3 : 4), 0.2f);
        add_note(a, 0, 8.0, r + 7, 0.2f);
        m2p_features *f = analyze(a);
        print_message("chord root %d %s -> %s %s (%.2f)\n", r, cases[i].minor ? "minor" : "major",
                      m2p_key_name(f->key), m2p_mode_name(f->mode), f->key_confidence);
        assert_int_equal(f->key, cases[i].key);
        assert_int_equal(f->mode, cases[i].minor ? M2P_MODE_MINOR : M2P_MODE_MAJOR);
        /* the chord tones lead the pitch-class profile */
        assert_true(fabs(f->chroma[r % 12] - 1.0) < 1e-9 || f->chroma[r % 12] > 0.7);
        m2p_features_free(f);
        m2p_audio_free(a);
    }
}

static void test_detuned_chord_key(void **state) {
    (void)state;
    /* A minor tuned 40 cents sharp still reads as A minor. */
    m2p_audio *a = make_audio(8.0, RATE);
    add_note(a, 0, 8.0, 45.4, 0.25f);
    add_note(a, 0, 8.0, 57.4, 0.2f);
    add_note(a, 0, 8.0, 60.4, 0.2f);
    add_note(a, 0, 8.0, 64.4, 0.2f);
    m2p_features *f = analyze(a);
    assert_int_equal(f->key, 9);
    assert_int_equal(f->mode, M2P_MODE_MINOR);
    m2p_features_free(f);
    m2p_audio_free(a);
}

static void test_sine_centroid(void **state) {
    (void)state;
    const double freqs[] = {440.0, 1000.0, 3000.0};
    double last_brightness = -1;
    for (size_t i = 0; i < 3; i++) {
        m2p_audio *a = make_audio(4.0, RATE);
        for (size_t k = 0; k < a->n; k++) {
            a->samples[k] = (float)(0.5 * sin(2 * M_PI * freqs[i] * k / RATE));
        }
        m2p_features *f = analyze(a);
        print_message("sine %.0f Hz -> centroid %.1f Hz\n", freqs[i], f->centroid_hz);
        assert_true(fabs(f->centroid_hz / freqs[i] - 1.0) < 0.05);
        assert_true(f->brightness > last_brightness);
        last_brightness = f->brightness;
        /* a 0.5 sine: RMS level -9 dBFS */
        assert_true(fabs(f->loudness_db - 20.0 * log10(0.5 / sqrt(2.0))) < 0.2);
        if (i == 0) {
            assert_true(f->chroma[9] > 0.99); /* A */
        }
        m2p_features_free(f);
        m2p_audio_free(a);
    }
}

static void test_edge_inputs(void **state) {
    (void)state;
    /* digital silence */
    m2p_audio *a = make_audio(10.0, RATE);
    m2p_features *f = analyze(a);
    assert_true(f->tempo_bpm == 0.0);
    assert_int_equal(f->n_beats, 0);
    assert_int_equal(f->n_sections, 1);
    assert_true(f->energy < 0.01);
    assert_true(f->key_confidence == 0.0);
    m2p_features_free(f);
    m2p_audio_free(a);
    /* empty buffer */
    a = make_audio(0.0, RATE);
    f = analyze(a);
    assert_true(f->duration_s == 0.0);
    m2p_features_free(f);
    m2p_audio_free(a);
    /* 0.5 s of noise, NaN and inf samples */
    a = make_audio(0.5, RATE);
    uint32_t seed = 3;
    for (size_t i = 0; i < a->n; i++) {
        a->samples[i] = 0.5f * noise(&seed);
    }
    a->samples[100] = NAN;
    a->samples[200] = INFINITY;
    f = analyze(a);
    assert_true(fabs(f->duration_s - 0.5) < 1e-6);
    m2p_features_free(f);
    m2p_audio_free(a);
    /* 10 minutes of noise bursts (8 kHz keeps it quick under ASan) */
    a = make_audio(600.0, 8000);
    for (size_t i = 0; i < a->n; i++) {
        a->samples[i] = (i / 4000) % 2 == 0 ? 0.3f * noise(&seed) : 0.01f * noise(&seed);
    }
    f = analyze(a);
    assert_true(fabs(f->duration_s - 600.0) < 1e-6);
    assert_true(f->n_sections >= 1 && f->n_sections <= 32); /* at most duration / 20 s + 2 */
    m2p_features_free(f);
    m2p_audio_free(a);
    /* bad arguments */
    m2p_error err;
    assert_int_equal(m2p_dsp_analyze(NULL, NULL, &f, &err), M2P_E_INVALID_ARG);
    assert_null(f);
    m2p_audio bad = {NULL, 0, 1000};
    assert_int_equal(m2p_dsp_analyze(&bad, NULL, &f, &err), M2P_E_INVALID_ARG);
}

static void test_quiet_then_loud(void **state) {
    (void)state;
    /* 30 s of soft sustained chords, then 30 s of loud chords with drums: one boundary near 30 s. */
    m2p_audio *a = make_audio(60.0, RATE);
    uint32_t seed = 11;
    for (double t = 0; t < 30.0; t += 2.0) {
        add_note(a, t, 2.0, 57, 0.02f);
        add_note(a, t, 2.0, 60, 0.02f);
        add_note(a, t, 2.0, 64, 0.02f);
    }
    for (double t = 30.0; t < 60.0; t += 2.0) {
        add_note(a, t, 2.0, 45, 0.25f);
        add_note(a, t, 2.0, 53, 0.2f);
        add_note(a, t, 2.0, 57, 0.2f);
        add_note(a, t, 2.0, 60, 0.2f);
    }
    for (double t = 30.0; t < 60.0; t += 0.5) {
        add_click(a, t, 0.7f, &seed);
    }
    m2p_features *f = analyze(a);
    print_message("quiet/loud: %zu sections:", f->n_sections);
    for (size_t i = 0; i < f->n_sections; i++) {
        print_message(" [%.1f-%.1f e%.2f L%d]", f->sections[i].start_s, f->sections[i].end_s, f->sections[i].energy,
                      f->sections[i].label);
    }
    print_message("\n");
    assert_true(f->n_sections >= 2);
    bool found = false;
    for (size_t i = 1; i < f->n_sections; i++) {
        if (fabs(f->sections[i].start_s - 30.0) < 2.0) {
            found = true;
            assert_true(f->sections[i].energy > f->sections[i - 1].energy + 0.2);
            assert_int_not_equal(f->sections[i].label, f->sections[i - 1].label);
        }
    }
    assert_true(found);
    /* the energy curve follows: first half lower than second half */
    double e0 = 0, e1 = 0;
    for (int i = 0; i < 256; i++) {
        e0 += f->energy_curve[i];
        e1 += f->energy_curve[256 + i];
    }
    assert_true(e1 > e0 * 1.5);
    m2p_features_free(f);
    m2p_audio_free(a);
}

typedef struct findings {
    char keys[8][16];
    char texts[8][96];
    int n;
    double last_done;
    int reports;
} findings;

static void on_report(void *ctx, m2p_step step, double done, double total, const char *message) {
    findings *fd = ctx;
    (void)message;
    if (step == M2P_STEP_ANALYZE) {
        assert_true(done >= fd->last_done && done <= total);
        fd->last_done = done;
        fd->reports++;
    }
}

static void on_finding(void *ctx, m2p_step step, const char *key, const char *text) {
    findings *fd = ctx;
    assert_int_equal(step, M2P_STEP_ANALYZE);
    if (fd->n < 8) {
        snprintf(fd->keys[fd->n], sizeof fd->keys[0], "%s", key);
        snprintf(fd->texts[fd->n], sizeof fd->texts[0], "%s", text);
        fd->n++;
    }
}

static void test_progress_and_cancel(void **state) {
    (void)state;
    m2p_audio *a = click_track(120, 12.0);
    findings fd;
    memset(&fd, 0, sizeof fd);
    m2p_progress p = {on_report, on_finding, &fd, NULL};
    m2p_features *f = NULL;
    assert_int_equal(m2p_dsp_analyze(a, &p, &f, NULL), M2P_OK);
    const char *want[] = {"tempo", "key", "energy", "sections", "mood"};
    for (size_t w = 0; w < 5; w++) {
        bool seen = false;
        for (int i = 0; i < fd.n; i++) {
            if (strcmp(fd.keys[i], want[w]) == 0) {
                seen = true;
            }
        }
        assert_true(seen);
    }
    assert_string_equal(fd.texts[0], "Found tempo: 120 BPM");
    assert_non_null(strstr(fd.texts[1], "Key: "));
    assert_true(fd.reports >= 3);
    m2p_features_free(f);

    atomic_bool cancel = true;
    m2p_progress pc = {NULL, NULL, NULL, &cancel};
    f = NULL;
    m2p_error err;
    assert_int_equal(m2p_dsp_analyze(a, &pc, &f, &err), M2P_E_CANCELLED);
    assert_null(f);
    m2p_audio_free(a);
}

static void test_analyze_file_matches_buffer(void **state) {
    (void)state;
    char dir[64];
    m2p_test_tmpdir(dir, sizeof dir);
    char path[128];
    snprintf(path, sizeof path, "%s/song.wav", dir);
    m2p_synth_params sp;
    m2p_synth_defaults(&sp);
    sp.seconds = 20;
    sp.rate = RATE;
    sp.tempo_bpm = 128;
    sp.key = 2;
    sp.minor = false;
    m2p_audio *a = NULL;
    assert_int_equal(m2p_synth_song(&sp, &a), M2P_OK);
    m2p_error err;
    assert_int_equal(m2p_audio_write_wav(a, path, M2P_WAV_FLOAT32, &err), M2P_OK);
    m2p_features *fb = analyze(a);

    m2p_decode_opts o;
    m2p_decode_opts_default(&o);
    o.rate = RATE;
    m2p_features *ff = NULL;
    m2p_code rc = m2p_dsp_analyze_file(path, &o, NULL, &ff, &err);
    if (rc != M2P_OK) {
        fail_msg("analyze_file: %s (%s)", m2p_errname(rc), err.detail);
    }
    assert_finite_features(ff);
    assert_true(fabs(ff->duration_s - fb->duration_s) < 0.01);
    assert_true(fabs(ff->tempo_bpm - fb->tempo_bpm) < 0.5);
    assert_int_equal(ff->key, fb->key);
    assert_int_equal(ff->mode, fb->mode);
    assert_true(fabs(ff->tempo_bpm / 128.0 - 1) < 0.04);
    assert_int_equal(ff->key, 2);
    m2p_features_free(ff);
    m2p_features_free(fb);

    /* the decoder's errors come back unchanged */
    m2p_audio *quiet = make_audio(5.0, RATE);
    snprintf(path, sizeof path, "%s/silent.wav", dir);
    assert_int_equal(m2p_audio_write_wav(quiet, path, M2P_WAV_PCM16, &err), M2P_OK);
    ff = NULL;
    assert_int_equal(m2p_dsp_analyze_file(path, &o, NULL, &ff, &err), M2P_E_DECODE_SILENT);
    assert_null(ff);
    snprintf(path, sizeof path, "%s/missing.wav", dir);
    assert_int_equal(m2p_dsp_analyze_file(path, NULL, NULL, &ff, &err), M2P_E_FILE_NOT_FOUND);
    snprintf(path, sizeof path, "%s/long.wav", dir);
    assert_int_equal(m2p_audio_write_wav(a, path, M2P_WAV_PCM16, &err), M2P_OK);
    o.max_duration_s = 10;
    assert_int_equal(m2p_dsp_analyze_file(path, &o, NULL, &ff, &err), M2P_E_DECODE_TOO_LONG);
    assert_null(ff);
    m2p_audio_free(quiet);
    m2p_audio_free(a);
    m2p_test_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_click_tempo),
        cmocka_unit_test(test_chord_key),
        cmocka_unit_test(test_detuned_chord_key),
        cmocka_unit_test(test_sine_centroid),
        cmocka_unit_test(test_edge_inputs),
        cmocka_unit_test(test_quiet_then_loud),
        cmocka_unit_test(test_progress_and_cancel),
        cmocka_unit_test(test_analyze_file_matches_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
