/*
 * audio/audio.h — decoded audio: mono float samples at one rate.
 * Owned by whoever created it; free with m2p_audio_free (NULL is fine).
 */
#ifndef M2P_AUDIO_AUDIO_H
#define M2P_AUDIO_AUDIO_H

#include <stddef.h>

#include "core/error.h"

typedef struct m2p_audio {
    float *samples; /* n samples in [-1, 1], owned */
    size_t n;
    int rate;       /* Hz */
} m2p_audio;

/* Allocates a zeroed buffer of n samples. */
m2p_code m2p_audio_create(size_t n, int rate, m2p_audio **out) M2P_WUR;
void m2p_audio_free(m2p_audio *a);
static inline double m2p_audio_duration(const m2p_audio *a) {
    return a->rate > 0 ? (double)a->n / (double)a->rate : 0.0;
}

#endif
