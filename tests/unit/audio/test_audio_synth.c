/*
 * tests/unit/audio/test_audio_synth.c — the song synthesiser (length, determinism, no clipping,
 * beats where the tempo says, the key's notes louder than the others, the section plan) and the
 * WAV writer (bytes of the header, a round trip through the decoder).
 */
#include "test_util.h"

#include <math.h>

#include "audio/decode.h"
#include "audio/synth.h"
#include "audio/wav.h"
#include "core/alloc.h"

static m2p_synth_params short_song(void) {
    m2p_synth_params p;
    m2p_synth_defaults(&p);
    p.seconds = 8.0;
    p.rate = 22050;
    return p;
}

static void test_length_determinism_peak(void **state) {
    (void)state;
    for (int st = 0; st < M2P_SYNTH_STYLE_COUNT; st++) {
        m2p_synth_params p = short_song();
        p.style = (m2p_synth_style)st;
        m2p_audio *a = NULL, *b = NULL, *c = NULL;
        assert_int_equal(m2p_synth_song(&p, &a), M2P_OK);
        assert_int_equal(m2p_synth_song(&p, &b), M2P_OK);
        p.seed = 2;
        assert_int_equal(m2p_synth_song(&p, &c), M2P_OK);
        assert_int_equal(a->rate, 22050);
        assert_int_equal(a->n, (size_t)(8.0 * 22050));
        assert_memory_equal(a->samples, b->samples, a->n * sizeof(float)); /* same seed, same song */
        assert_int_equal(c->n, a->n);
        assert_true(memcmp(a->samples, c->samples, a->n * sizeof(float)) != 0); /* another seed, another song */
        float peak = 0.0f;
        double energy = 0.0;
        for (size_t i = 0; i < a->n; i++) {
            assert_true(isfinite(a->samples[i]));
            peak = fmaxf(peak, fabsf(a->samples[i]));
            energy += (double)a->samples[i] * a->samples[i];
        }
        double rms = sqrt(energy / a->n);
        print_message("%s: peak %.3f rms %.3f\n", m2p_synth_style_name(p.style), peak, rms);
        assert_true(peak < 1.0f && peak > 0.85f); /* normalised to 0.9, never clipping */
        assert_true(rms > 0.05);                  /* music, not a few clicks */
        /* starts and ends at silence (fade in/out: no click) */
        assert_true(fabsf(a->samples[0]) < 1e-3f);
        assert_true(fabsf(a->samples[a->n - 1]) < 1e-3f);
        m2p_audio_free(a);
        m2p_audio_free(b);
        m2p_audio_free(c);
    }
}

/* Kick on every beat: an onset envelope (rises of the energy in 10 ms frames) is much stronger at
 * the beats than a third of a beat later (no note or drum starts there), and the same measure at
 * a wrong tempo drifts off the beats. */
static double beat_contrast(const m2p_audio *a, double bpm, double from_s, double to_s) {
    const double frame_s = 0.01;
    const size_t hop = (size_t)(frame_s * a->rate);
    const size_t frames = a->n / hop;
    double *onset = calloc(frames, sizeof *onset);
    assert_non_null(onset);
    double prev = 0;
    for (size_t f = 1; f < frames; f++) {
        double e = 0; /* energy of the first difference: attacks, not the low notes' own ripple */
        for (size_t i = 0; i < hop; i++) {
            double d = (double)a->samples[f * hop + i] - a->samples[f * hop + i - 1];
            e += d * d;
        }
        onset[f] = e > prev ? e - prev : 0.0;
        prev = e;
    }
    double beat = 60.0 / bpm, on = 0, off = 0;
    for (double t = ceil(from_s / beat) * beat; t + beat < to_s; t += beat) {
        for (int which = 0; which < 2; which++) {
            double c = which == 0 ? t : t + beat / 3.0;
            size_t f0 = (size_t)(c / frame_s);
            double best = 0;
            for (size_t f = f0; f <= f0 + 1 && f < frames; f++) {
                best = fmax(best, onset[f]);
            }
            *(which == 0 ? &on : &off) += best;
        }
    }
    free(onset);
    return on / (off + 1e-12);
}

static void test_beats_on_tempo(void **state) {
    (void)state;
    static const double tempos[] = {72.0, 124.0, 170.0};
    for (size_t i = 0; i < 3; i++) {
        m2p_synth_params p = short_song();
        p.tempo_bpm = tempos[i];
        p.seconds = 20.0;
        p.style = (m2p_synth_style)(i % M2P_SYNTH_STYLE_COUNT);
        m2p_audio *a = NULL;
        assert_int_equal(m2p_synth_song(&p, &a), M2P_OK);
        m2p_synth_section secs[M2P_SYNTH_MAX_SECTIONS];
        size_t n = 0;
        assert_int_equal(m2p_synth_plan(&p, secs, M2P_SYNTH_MAX_SECTIONS, &n, NULL), M2P_OK);
        assert_true(n >= 3);
        double right = beat_contrast(a, p.tempo_bpm, secs[1].start_s, secs[n - 1].start_s);
        double wrong = beat_contrast(a, p.tempo_bpm * 1.13, secs[1].start_s, secs[n - 1].start_s);
        print_message("%.0f BPM: on/off-beat energy %.1f, at a wrong tempo %.1f\n", p.tempo_bpm, right, wrong);
        assert_true(right > 2.0);
        assert_true(right > 1.8 * wrong);
        m2p_audio_free(a);
    }
}

/* Energy of pitch class pc over octaves 2..5 (Goertzel at each note's frequency). */
static double pc_energy(const m2p_audio *a, int pc) {
    double total = 0;
    for (int oct = 3; oct <= 5; oct++) {
        int midi = 12 * (oct + 1) + pc;
        double f = 440.0 * pow(2.0, (midi - 69) / 12.0);
        double w = 2 * M_PI * f / a->rate, c = 2 * cos(w);
        /* blocks of 0.5 s: bins 2 Hz wide, well apart from the neighbouring semitones */
        size_t blk = (size_t)(0.5 * a->rate);
        for (size_t s0 = 0; s0 + blk <= a->n; s0 += blk) {
            double s1 = 0, s2 = 0;
            for (size_t i = 0; i < blk; i++) {
                double s = a->samples[s0 + i] + c * s1 - s2;
                s2 = s1;
                s1 = s;
            }
            total += s1 * s1 + s2 * s2 - c * s1 * s2;
        }
    }
    return total;
}

static void test_key_and_mode(void **state) {
    (void)state;
    static const struct {
        int key;
        bool minor;
    } cases[] = {{9, true}, {0, false}, {6, true}, {10, false}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        m2p_synth_params p = short_song();
        p.key = cases[i].key;
        p.minor = cases[i].minor;
        p.style = (m2p_synth_style)(i % M2P_SYNTH_STYLE_COUNT);
        p.seconds = 16.0;
        p.seed = (uint32_t)(10 + i);
        m2p_audio *a = NULL;
        assert_int_equal(m2p_synth_song(&p, &a), M2P_OK);
        double e[12];
        for (int pc = 0; pc < 12; pc++) {
            e[pc] = pc_energy(a, pc);
        }
        static const int major[7] = {0, 2, 4, 5, 7, 9, 11}, minor[7] = {0, 2, 3, 5, 7, 8, 10};
        const int *sc = p.minor ? minor : major;
        bool in_scale[12] = {0};
        for (int k = 0; k < 7; k++) {
            in_scale[(p.key + sc[k]) % 12] = true;
        }
        in_scale[(p.key + 11) % 12] = true; /* the leading tone of harmonic minor's V */
        double out_max = 0;
        for (int pc = 0; pc < 12; pc++) {
            if (!in_scale[pc]) {
                out_max = fmax(out_max, e[pc]);
            }
        }
        for (int pc = 0; pc < 12; pc++) {
            print_message("%s%.2f", pc ? " " : "  ", e[pc] / e[p.key]);
        }
        print_message("\n");
        double tonic = e[p.key];
        double third = e[(p.key + (p.minor ? 3 : 4)) % 12];
        double wrong_third = e[(p.key + (p.minor ? 4 : 3)) % 12];
        print_message("%s %s: tonic %.3g, third %.3g, other third %.3g, loudest outside the scale %.3g\n",
                      m2p_synth_key_name(p.key), p.minor ? "minor" : "major", tonic, third, wrong_third, out_max);
        assert_true(tonic > 2.0 * out_max);
        assert_true(third > 2.0 * wrong_third); /* the mode is heard */
        m2p_audio_free(a);
    }
}

static void test_plan(void **state) {
    (void)state;
    static const double secs_list[] = {1.0, 8.0, 30.0, 60.0, 240.0, 1800.0};
    for (size_t t = 0; t < sizeof secs_list / sizeof secs_list[0]; t++) {
        m2p_synth_params p;
        m2p_synth_defaults(&p);
        p.seconds = secs_list[t];
        m2p_synth_section s[M2P_SYNTH_MAX_SECTIONS];
        size_t n = 0;
        assert_int_equal(m2p_synth_plan(&p, s, M2P_SYNTH_MAX_SECTIONS, &n, NULL), M2P_OK);
        assert_true(n >= 1 && n <= M2P_SYNTH_MAX_SECTIONS);
        double bar = 240.0 / p.tempo_bpm;
        assert_true(s[0].start_s == 0.0);
        assert_true(fabs(s[n - 1].end_s - p.seconds) < 1e-9);
        for (size_t i = 0; i < n; i++) {
            assert_true(s[i].bars >= 1);
            assert_true(fabs(s[i].start_s - s[i].first_bar * bar) < 1e-9); /* on a bar line */
            if (i + 1 < n) {
                assert_true(s[i].end_s == s[i + 1].start_s);
                assert_int_equal(s[i].first_bar + s[i].bars, s[i + 1].first_bar);
            }
        }
        if (p.seconds >= 30.0) {
            assert_int_equal(s[0].kind, M2P_SECTION_INTRO);
            assert_int_equal(s[n - 1].kind, M2P_SECTION_OUTRO);
            bool verse = false, chorus = false;
            for (size_t i = 0; i < n; i++) {
                verse |= s[i].kind == M2P_SECTION_VERSE;
                chorus |= s[i].kind == M2P_SECTION_CHORUS;
                if (s[i].kind == M2P_SECTION_CHORUS) {
                    assert_true(s[i].energy > s[0].energy);
                }
            }
            assert_true(verse && chorus);
        }
    }
    /* the chorus is louder than the intro in the audio too */
    m2p_synth_params p = short_song();
    p.seconds = 40.0;
    m2p_synth_section s[M2P_SYNTH_MAX_SECTIONS];
    size_t n = 0;
    assert_int_equal(m2p_synth_plan(&p, s, M2P_SYNTH_MAX_SECTIONS, &n, NULL), M2P_OK);
    m2p_audio *a = NULL;
    assert_int_equal(m2p_synth_song(&p, &a), M2P_OK);
    double rms[M2P_SECTION_OUTRO + 1] = {0}, cnt[M2P_SECTION_OUTRO + 1] = {0};
    for (size_t i = 0; i < n; i++) {
        for (size_t k = (size_t)(s[i].start_s * a->rate); k < (size_t)(s[i].end_s * a->rate) && k < a->n; k++) {
            rms[s[i].kind] += (double)a->samples[k] * a->samples[k];
            cnt[s[i].kind] += 1;
        }
    }
    double intro = sqrt(rms[M2P_SECTION_INTRO] / cnt[M2P_SECTION_INTRO]);
    double chorus = sqrt(rms[M2P_SECTION_CHORUS] / cnt[M2P_SECTION_CHORUS]);
    print_message("rms intro %.3f chorus %.3f\n", intro, chorus);
    assert_true(chorus > 1.3 * intro);
    m2p_audio_free(a);
}

static void test_params_and_names(void **state) {
    (void)state;
    m2p_synth_params p = short_song();
    m2p_audio *a = NULL;
    m2p_synth_params bad = p;
    bad.tempo_bpm = 20;
    assert_int_equal(m2p_synth_song(&bad, &a), M2P_E_INVALID_ARG);
    bad = p;
    bad.key = 12;
    assert_int_equal(m2p_synth_song(&bad, &a), M2P_E_INVALID_ARG);
    bad = p;
    bad.seconds = 0.5;
    assert_int_equal(m2p_synth_song(&bad, &a), M2P_E_INVALID_ARG);
    bad = p;
    bad.rate = 4000;
    assert_int_equal(m2p_synth_song(&bad, &a), M2P_E_INVALID_ARG);
    bad = p;
    bad.energy = NAN;
    assert_int_equal(m2p_synth_song(&bad, &a), M2P_E_INVALID_ARG);
    assert_null(a);
    int pc = -1;
    assert_true(m2p_synth_key_parse("A", &pc) && pc == 9);
    assert_true(m2p_synth_key_parse("c#", &pc) && pc == 1);
    assert_true(m2p_synth_key_parse("Bb", &pc) && pc == 10);
    assert_true(m2p_synth_key_parse("Cb", &pc) && pc == 11);
    assert_false(m2p_synth_key_parse("H", &pc));
    assert_false(m2p_synth_key_parse("A#x", &pc));
    assert_false(m2p_synth_key_parse("", &pc));
    assert_string_equal(m2p_synth_key_name(9), "A");
    m2p_synth_style st;
    assert_true(m2p_synth_style_parse("Orchestral", &st) && st == M2P_SYNTH_ORCHESTRAL);
    assert_false(m2p_synth_style_parse("polka", &st));
    assert_string_equal(m2p_synth_style_name(M2P_SYNTH_PIANO), "piano");
    /* allocation failures are reported, never crash or leak */
    p.seconds = 2.0;
    p.rate = 8000;
    for (long k = 0; k < 40; k++) {
        m2p_alloc_fail_after(k);
        m2p_code rc = m2p_synth_song(&p, &a);
        m2p_alloc_fail_after(-1);
        if (rc == M2P_OK) {
            m2p_audio_free(a);
            a = NULL;
            continue;
        }
        assert_int_equal(rc, M2P_E_NOMEM);
        assert_null(a);
    }
}

static void test_wav_writer(void **state) {
    (void)state;
    m2p_audio *a = NULL;
    assert_int_equal(m2p_audio_create(22050, 22050, &a), M2P_OK);
    for (size_t i = 0; i < a->n; i++) {
        a->samples[i] = (float)(0.5 * sin(2 * M_PI * 330.0 * i / 22050.0));
    }
    a->samples[10] = 1.5f; /* clamped */
    a->samples[11] = -2.0f;
    uint8_t *buf = NULL;
    size_t len = 0;
    m2p_error err;
    assert_int_equal(m2p_audio_wav_encode(a, M2P_WAV_PCM16, &buf, &len, &err), M2P_OK);
    assert_int_equal(len, 44 + 2 * a->n);
    assert_memory_equal(buf, "RIFF", 4);
    assert_int_equal(buf[4] | buf[5] << 8 | buf[6] << 16 | buf[7] << 24, (int)(len - 8));
    assert_memory_equal(buf + 8, "WAVEfmt ", 8);
    assert_int_equal(buf[20], 1); /* PCM */
    assert_int_equal(buf[22], 1); /* mono */
    assert_int_equal(buf[24] | buf[25] << 8, 22050);
    assert_int_equal(buf[34], 16); /* bits */
    assert_memory_equal(buf + 36, "data", 4);
    assert_int_equal(buf[44 + 20] | buf[44 + 21] << 8, 32767);             /* +1.5 → +1 */
    assert_int_equal((int16_t)(buf[44 + 22] | buf[44 + 23] << 8), -32767); /* -2 → -1 */
    m2p_free(buf);
    a->samples[10] = a->samples[11] = 0.0f;

    /* round trip through the decoder: float exact, 16-bit within one step */
    char dir[64], path[128];
    m2p_test_tmpdir(dir, sizeof dir);
    for (int f = 0; f < 2; f++) {
        (void)snprintf(path, sizeof path, "%s/rt%d.wav", dir, f);
        assert_int_equal(m2p_audio_write_wav(a, path, f ? M2P_WAV_FLOAT32 : M2P_WAV_PCM16, &err), M2P_OK);
        m2p_decode_opts o;
        m2p_decode_opts_default(&o);
        o.rate = 22050;
        o.min_duration_s = 0.5;
        m2p_audio *b = NULL;
        m2p_code rc = m2p_decode_file(path, &o, NULL, &b, &err);
        if (rc != M2P_OK) {
            fail_msg("%s: %s", path, err.detail);
        }
        assert_int_equal(b->n, a->n);
        float worst = 0;
        for (size_t i = 0; i < a->n; i++) {
            worst = fmaxf(worst, fabsf(a->samples[i] - b->samples[i]));
        }
        assert_true(worst <= (f ? 1e-7f : 1.0f / 32767.0f));
        m2p_audio_free(b);
    }
    m2p_test_rmdir(dir);
    assert_int_equal(m2p_audio_write_wav(a, "", M2P_WAV_PCM16, &err), M2P_E_INVALID_ARG);
    m2p_audio_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_length_determinism_peak),
        cmocka_unit_test(test_beats_on_tempo),
        cmocka_unit_test(test_key_and_mode),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_params_and_names),
        cmocka_unit_test(test_wav_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
