/*
 * tests/unit/dsp/test_dsp_songs.c — accuracy on synthesised songs with known
 * tempo, key and sections (audio/synth.h), across slow and fast tempi, all
 * three synth styles and both modes.
 *
 * Stated tolerances (the measures): over the 12 songs below,
 * tempo Acc1 (within ±4 %) ≥ 11/12 and Acc2 (octave errors ×2, ×½, ×3, ×⅓
 * allowed) = 12/12; MIREX weighted key score ≥ 0.90 (exact 1, fifth 0.5,
 * relative 0.3, parallel 0.2). Sections: a 96-s song gets boundaries within
 * 2 s of the planned section changes. The full 24-key sweep and the held-out
 * fluidsynth corpus are in bench/ (docs/notes/dsp-bench.md).
 */
#include "test_util.h"

#include <math.h>

#include "audio/synth.h"
#include "dsp/analyze.h"

static double mirex(int key, m2p_mode mode, int tkey, bool tminor) {
    m2p_mode tmode = tminor ? M2P_MODE_MINOR : M2P_MODE_MAJOR;
    if (key == tkey && mode == tmode) {
        return 1.0;
    }
    if (mode == tmode && (key == (tkey + 7) % 12 || key == (tkey + 5) % 12)) {
        return 0.5;
    }
    if (mode != tmode) {
        if (!tminor && key == (tkey + 9) % 12) {
            return 0.3; /* relative minor of a major key */
        }
        if (tminor && key == (tkey + 3) % 12) {
            return 0.3; /* relative major of a minor key */
        }
        if (key == tkey) {
            return 0.2;
        }
    }
    return 0.0;
}

static void test_songs_tempo_key(void **state) {
    (void)state;
    int acc1 = 0, acc2 = 0, n = 0;
    double keysum = 0;
    for (int i = 0; i < 12; i++) {
        m2p_synth_params p;
        m2p_synth_defaults(&p);
        p.tempo_bpm = 62.0 + i * 11.3; /* 62 .. 186 BPM */
        p.key = (i * 7) % 12;          /* 12 different tonics */
        p.minor = i % 2 == 1;
        p.seconds = 20.0;
        p.rate = 22050;
        p.seed = 40u + (uint32_t)i;
        p.energy = 0.4 + 0.05 * (i % 6);
        p.style = (m2p_synth_style)(i % 3);
        m2p_audio *a = NULL;
        assert_int_equal(m2p_synth_song(&p, &a), M2P_OK);
        m2p_features *f = NULL;
        m2p_error err;
        assert_int_equal(m2p_dsp_analyze(a, NULL, &f, &err), M2P_OK);
        double r = f->tempo_bpm / p.tempo_bpm;
        bool ok1 = fabs(r - 1) < 0.04;
        bool ok2 = ok1 || fabs(r / 2 - 1) < 0.04 || fabs(r * 2 - 1) < 0.04 || fabs(r / 3 - 1) < 0.04 ||
                   fabs(r * 3 - 1) < 0.04;
        double k = mirex(f->key, f->mode, p.key, p.minor);
        print_message("%-10s %6.1f BPM -> %6.1f  %s %s -> %s %s (%.1f)\n", m2p_synth_style_name(p.style), p.tempo_bpm,
                      f->tempo_bpm, m2p_key_name(p.key), p.minor ? "minor" : "major", m2p_key_name(f->key),
                      m2p_mode_name(f->mode), k);
        acc1 += ok1;
        acc2 += ok2;
        keysum += k;
        n++;
        m2p_features_free(f);
        m2p_audio_free(a);
    }
    print_message("Acc1 %d/%d Acc2 %d/%d key score %.3f\n", acc1, n, acc2, n, keysum / n);
    assert_true(acc1 >= 11);
    assert_int_equal(acc2, 12);
    assert_true(keysum / n >= 0.90);
}

static void test_song_sections(void **state) {
    (void)state;
    m2p_synth_params p;
    m2p_synth_defaults(&p);
    p.seconds = 96.0;
    p.rate = 16000;
    p.tempo_bpm = 120;
    p.seed = 5;
    m2p_synth_section plan[M2P_SYNTH_MAX_SECTIONS];
    size_t np = 0;
    m2p_error err;
    assert_int_equal(m2p_synth_plan(&p, plan, M2P_SYNTH_MAX_SECTIONS, &np, &err), M2P_OK);
    m2p_audio *a = NULL;
    assert_int_equal(m2p_synth_song(&p, &a), M2P_OK);
    m2p_features *f = NULL;
    assert_int_equal(m2p_dsp_analyze(a, NULL, &f, &err), M2P_OK);
    print_message("planned:");
    for (size_t i = 0; i < np; i++) {
        print_message(" %s@%.1f", m2p_synth_section_name(plan[i].kind), plan[i].start_s);
    }
    print_message("\nfound:");
    for (size_t i = 0; i < f->n_sections; i++) {
        print_message(" [%.1f-%.1f e%.2f L%d]", f->sections[i].start_s, f->sections[i].end_s, f->sections[i].energy,
                      f->sections[i].label);
    }
    print_message("\n");
    /* A sensible count, and every found boundary is near a planned one. */
    assert_true(f->n_sections >= 2 && f->n_sections <= np + 1);
    for (size_t i = 1; i < f->n_sections; i++) {
        double best = 1e9;
        for (size_t j = 1; j < np; j++) {
            best = fmin(best, fabs(f->sections[i].start_s - plan[j].start_s));
        }
        assert_true(best < 2.0);
    }
    m2p_features_free(f);
    m2p_audio_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_songs_tempo_key),
        cmocka_unit_test(test_song_sections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
