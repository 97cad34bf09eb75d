/*
 * audio/synth.h — a deterministic song synthesiser: the demo song of
 * `make run`, the DSP tests' fixtures and the accuracy benchmark's songs,
 * with known tempo, key, mode and sections.
 *
 * A song is 4/4 at exactly tempo_bpm, its first downbeat at t = 0 (beat k
 * starts at k * 60 / tempo_bpm seconds). Sections: intro, verse, chorus,
 * verse, chorus, ..., outro, on bar boundaries (m2p_synth_plan gives them).
 * Drums: kick on every beat (beats 1 and 3 in the intro), snare on 2 and 4,
 * hats on eighths (sixteenths in a high-energy chorus). Bass plays the chord
 * roots of a diatonic progression typical of the mode (I–V–vi–IV, I–vi–IV–V,
 * ... in major; i–iv–V–i, i–VII–VI–V, i–VI–iv–V, ... in minor, one chord per bar),
 * chords are voiced around middle C, a melody on the scale repeats a motif per
 * section and cadences on the tonic at section ends; the song ends on the
 * tonic chord. Mono, peak normalised to 0.9 (never clips), smooth envelopes,
 * a small Freeverb-style reverb. Same params → the same samples, bit for bit.
 *
 * Cost: a 4-minute song at 22050 Hz takes well under a second (see
 * docs/notes/audio-decode-bench.md).
 */
#ifndef M2P_AUDIO_SYNTH_H
#define M2P_AUDIO_SYNTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audio/audio.h"
#include "core/error.h"

typedef enum m2p_synth_style {
    M2P_SYNTH_PIANO = 0,      /* piano chords and melody, round bass, acoustic-ish drums */
    M2P_SYNTH_ELECTRONIC = 1, /* saw pad + plucks, square lead, saw bass, four-on-the-floor */
    M2P_SYNTH_ORCHESTRAL = 2, /* string pad, flute-like melody, soft drums, more reverb */
    M2P_SYNTH_STYLE_COUNT
} m2p_synth_style;

typedef struct m2p_synth_params {
    double tempo_bpm; /* 40..240 */
    int key;          /* tonic pitch class, 0 = C, 1 = C#, ..., 9 = A, 11 = B */
    bool minor;       /* false = major */
    double seconds;   /* 1..1800 */
    int rate;         /* 8000..96000 Hz */
    uint32_t seed;    /* picks progressions, melody, variations */
    double energy;    /* 0..1: drum density, loudness of the drums and the melody */
    m2p_synth_style style;
} m2p_synth_params;

typedef enum m2p_synth_section_kind {
    M2P_SECTION_INTRO = 0,
    M2P_SECTION_VERSE,
    M2P_SECTION_CHORUS,
    M2P_SECTION_OUTRO,
} m2p_synth_section_kind;

typedef struct m2p_synth_section {
    m2p_synth_section_kind kind;
    double start_s; /* on a bar boundary */
    double end_s;   /* the next section's start, or the song's end */
    int first_bar;
    int bars;
    double energy; /* relative loudness/density of the section, 0..1 */
} m2p_synth_section;

enum { M2P_SYNTH_MAX_SECTIONS = 64 };

/* The demo defaults: 124 BPM, A minor, 60 s, 44100 Hz, seed 1, energy 0.7, electronic. */
void m2p_synth_defaults(m2p_synth_params *p);

/* Checks the ranges above (M2P_E_INVALID_ARG naming the field). */
m2p_code m2p_synth_check(const m2p_synth_params *p, m2p_error *err) M2P_WUR;

/* The section plan of the song p would make: up to cap sections into out,
 * their count in *n (at most M2P_SYNTH_MAX_SECTIONS). */
m2p_code m2p_synth_plan(const m2p_synth_params *p, m2p_synth_section *out, size_t cap, size_t *n,
                        m2p_error *err) M2P_WUR;

/* Synthesises the song: *out (caller frees with m2p_audio_free) holds
 * round(seconds * rate) samples at rate. Errors: M2P_E_INVALID_ARG, M2P_E_NOMEM. */
m2p_code m2p_synth_song(const m2p_synth_params *p, m2p_audio **out) M2P_WUR;

/* Names: "piano", "electronic", "orchestral"; "intro", "verse", ... ; never NULL. */
const char *m2p_synth_style_name(m2p_synth_style s);
bool m2p_synth_style_parse(const char *name, m2p_synth_style *out);
const char *m2p_synth_section_name(m2p_synth_section_kind k);

/* Key names: "C", "C#", "Db", "A", "Bb", "B" (case of the letter ignored) → pitch class. */
bool m2p_synth_key_parse(const char *name, int *pitch_class);
/* "C", "C#", "D", ..., "B" (sharps). */
const char *m2p_synth_key_name(int pitch_class);

#endif
