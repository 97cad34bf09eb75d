/*
 * audio/audio.c — the decoded-audio buffer.
 */
#include "audio/audio.h"

#include "core/alloc.h"

m2p_code m2p_audio_create(size_t n, int rate, m2p_audio **out) {
    *out = NULL;
    m2p_audio *a = m2p_calloc(1, sizeof *a);
    if (a == NULL) {
        return M2P_E_NOMEM;
    }
    a->samples = m2p_calloc(n == 0 ? 1 : n, sizeof(float));
    if (a->samples == NULL) {
        m2p_free(a);
        return M2P_E_NOMEM;
    }
    a->n = n;
    a->rate = rate;
    *out = a;
    return M2P_OK;
}

void m2p_audio_free(m2p_audio *a) {
    if (a == NULL) {
        return;
    }
    m2p_free(a->samples);
    m2p_free(a);
}
