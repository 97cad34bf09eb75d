/*
 * tests/unit/render/sonic_fixtures.h — plausible m2p_features for the render
 * tests and the sonic benchmark, built by hand (no analyser needed):
 *   FIX_CALM     a calm major ballad: D major, 72 BPM, low energy, slow swells
 *   FIX_ELECTRO  a fast minor electronic track: A minor, 128 BPM, loud, builds and drops
 *   FIX_ORCH     an orchestral piece: E-flat major, 96 BPM, long crescendo, wide spectrum
 * The spectrogram (64 bands x 384 frames) and energy curve follow the
 * sections, so section posters differ from each other. Header-only; free
 * with fix_free (not m2p_features_free, so tests do not need the analyser).
 */
#ifndef M2P_TEST_SONIC_FIXTURES_H
#define M2P_TEST_SONIC_FIXTURES_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dsp/features.h"

typedef enum fix_kind { FIX_CALM = 0, FIX_ELECTRO = 1, FIX_ORCH = 2 } fix_kind;

static inline double fix_rand(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return (double)(*s >> 8) / 16777216.0;
}

static inline void fix_free(m2p_features *f) {
    if (f == NULL) {
        return;
    }
    free(f->beats);
    free(f->sections);
    free(f->spectrogram);
    free(f->energy_curve);
    free(f);
}

static inline m2p_features *fix_make(fix_kind kind) {
    m2p_features *f = calloc(1, sizeof *f);
    if (f == NULL) {
        return NULL;
    }
    static const double sec_calm[][4] = {{0, 40, 0.25, 0.45}, {40, 95, 0.4, 0.55}, {95, 150, 0.55, 0.6},
                                         {150, 200, 0.3, 0.5}};
    static const double sec_el[][4] = {{0, 30, 0.35, 0.5},  {30, 60, 0.6, 0.65},  {60, 105, 0.95, 0.8},
                                       {105, 130, 0.4, 0.55}, {130, 175, 1.0, 0.85}, {175, 200, 0.45, 0.6}};
    static const double sec_or[][4] = {{0, 50, 0.2, 0.35}, {50, 100, 0.4, 0.45}, {100, 150, 0.7, 0.55},
                                       {150, 185, 0.95, 0.6}, {185, 200, 0.3, 0.4}};
    static const int lab_calm[] = {0, 1, 2, 1};
    static const int lab_el[] = {0, 1, 2, 3, 2, 0};
    static const int lab_or[] = {0, 1, 2, 3, 0};
    const double(*secs)[4];
    const int *labs;
    size_t ns;
    double chroma_major[12] = {1, 0.1, 0.6, 0.1, 0.7, 0.5, 0.1, 0.9, 0.1, 0.55, 0.1, 0.45};
    double chroma_minor[12] = {1, 0.1, 0.5, 0.7, 0.1, 0.5, 0.1, 0.85, 0.5, 0.1, 0.45, 0.2};
    const double *chroma;
    switch (kind) {
    case FIX_CALM:
        f->tempo_bpm = 72;
        f->key = 2;
        f->mode = M2P_MODE_MAJOR;
        f->energy = 0.3;
        f->brightness = 0.55;
        f->percussiveness = 0.15;
        f->onset_density = 1.2;
        f->valence = 0.7;
        f->arousal = 0.25;
        f->danceability = 0.3;
        secs = sec_calm;
        labs = lab_calm;
        ns = 4;
        chroma = chroma_major;
        break;
    case FIX_ELECTRO:
        f->tempo_bpm = 128;
        f->key = 9;
        f->mode = M2P_MODE_MINOR;
        f->energy = 0.85;
        f->brightness = 0.7;
        f->percussiveness = 0.8;
        f->onset_density = 6.5;
        f->valence = 0.35;
        f->arousal = 0.9;
        f->danceability = 0.85;
        secs = sec_el;
        labs = lab_el;
        ns = 6;
        chroma = chroma_minor;
        break;
    default:
        f->tempo_bpm = 96;
        f->key = 3;
        f->mode = M2P_MODE_MAJOR;
        f->energy = 0.55;
        f->brightness = 0.45;
        f->percussiveness = 0.3;
        f->onset_density = 2.5;
        f->valence = 0.55;
        f->arousal = 0.55;
        f->danceability = 0.35;
        secs = sec_or;
        labs = lab_or;
        ns = 5;
        chroma = chroma_major;
        break;
    }
    /* Rotate the chroma profile to the key. */
    for (int i = 0; i < 12; i++) {
        f->chroma[(i + f->key) % 12] = chroma[i];
    }
    f->duration_s = 200.0;
    f->tempo_confidence = 0.8;
    f->beat_regularity = kind == FIX_ELECTRO ? 0.95 : 0.6;
    f->key_confidence = 0.7;
    f->loudness_db = -20.0 + 12.0 * f->energy;
    f->dynamic_range_db = kind == FIX_ORCH ? 30.0 : 10.0;
    f->centroid_hz = 800.0 + 3000.0 * f->brightness;
    f->n_sections = ns;
    f->sections = calloc(ns, sizeof *f->sections);
    size_t nb = (size_t)(f->duration_s * f->tempo_bpm / 60.0);
    f->beats = calloc(nb, sizeof *f->beats);
    const int B = 64;
    const int F = 384;
    f->spec_bands = B;
    f->spec_frames = F;
    f->spectrogram = calloc((size_t)B * F, sizeof(float));
    f->n_energy = 512;
    f->energy_curve = calloc(512, sizeof(float));
    if (f->sections == NULL || f->beats == NULL || f->spectrogram == NULL || f->energy_curve == NULL) {
        fix_free(f);
        return NULL;
    }
    for (size_t i = 0; i < ns; i++) {
        f->sections[i].start_s = secs[i][0];
        f->sections[i].end_s = secs[i][1];
        f->sections[i].energy = secs[i][2];
        f->sections[i].brightness = secs[i][3];
        f->sections[i].label = labs[i];
    }
    f->n_beats = nb;
    for (size_t i = 0; i < nb; i++) {
        f->beats[i] = (double)i * 60.0 / f->tempo_bpm + 0.2;
    }
    uint32_t rs = 12345u + (uint32_t)kind;
    for (int fr = 0; fr < F; fr++) {
        double t = (double)fr / (F - 1) * f->duration_s;
        double se = 0.3;
        double sb = 0.5;
        for (size_t i = 0; i < ns; i++) {
            if (t >= secs[i][0] && t <= secs[i][1]) {
                double into = (t - secs[i][0]) / (secs[i][1] - secs[i][0]);
                se = secs[i][2] * (kind == FIX_ORCH ? 0.75 + 0.25 * into : 1.0);
                sb = secs[i][3];
            }
        }
        for (int b = 0; b < B; b++) {
            double bf = (double)b / (B - 1);
            double tilt = exp(-bf * (3.2 - 2.2 * sb));
            double v;
            if (kind == FIX_CALM) {
                double swell = 0.6 + 0.4 * sin(t * 0.35 + bf * 2.0);
                double harm = 0.0;
                for (int h = 1; h <= 5; h++) {
                    double c = 0.09 * h;
                    harm += 0.35 / h * exp(-(bf - c) * (bf - c) / 0.0012);
                }
                v = se * (0.55 * tilt * swell + harm * (0.7 + 0.3 * sin(t * 0.8)));
            } else if (kind == FIX_ELECTRO) {
                double kick = 0.9 * exp(-bf / 0.07) * (0.6 + 0.4 * fix_rand(&rs));
                double hats = 0.45 * fix_rand(&rs) * se / (1.0 + exp(-(bf - 0.7) / 0.04));
                double pad = 0.5 * exp(-(bf - 0.35) * (bf - 0.35) / 0.02);
                double drop = se * se;
                v = se * (kick * drop + pad * tilt + hats) + 0.1 * fix_rand(&rs) * se;
            } else {
                double strings = 0.6 * exp(-(bf - 0.3) * (bf - 0.3) / 0.05);
                double brass = se > 0.6 ? 0.5 * exp(-(bf - 0.5) * (bf - 0.5) / 0.01) : 0.0;
                double timp = 0.8 * se * se * exp(-bf / 0.05) * (0.5 + 0.5 * sin(t * 2.5));
                v = se * (0.5 * tilt + strings + brass) + timp * se + 0.05 * fix_rand(&rs);
            }
            v = v < 0 ? 0 : (v > 1 ? 1 : v);
            f->spectrogram[(size_t)b * F + fr] = (float)v;
        }
    }
    for (int i = 0; i < 512; i++) {
        double sum = 0.0;
        int fr = i * (F - 1) / 511;
        for (int b = 0; b < B; b++) {
            sum += f->spectrogram[(size_t)b * F + fr];
        }
        double e = sum / B * 2.2;
        f->energy_curve[i] = (float)(e > 1 ? 1 : e);
    }
    return f;
}

#endif
