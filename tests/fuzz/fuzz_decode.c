/*
 * tests/fuzz/fuzz_decode.c — libFuzzer target: arbitrary bytes through the
 * whole decoder (probe, whitelisted demuxers, the one audio decoder, the
 * resampler, the truncation checks) with a small duration cap, so no input
 * may crash, hang or hold much memory. Seed corpus: tests/fuzz/corpus/decode/
 * (tiny valid files of every accepted format, a playlist and a concat script).
 */
#include <stddef.h>
#include <stdint.h>

#include "audio/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    m2p_decode_opts o;
    m2p_decode_opts_default(&o);
    o.rate = 8000;
    o.max_duration_s = 10.0;
    o.min_duration_s = 0.0;
    o.allow_silent = true;
    o.max_wall_s = 10.0;
    m2p_audio *a = NULL;
    m2p_error err;
    m2p_code rc = m2p_decode_memory(data, size, &o, NULL, &a, &err);
    if (rc == M2P_OK) {
        /* the contract: at most the cap, every sample in [-1, 1] */
        if (a->n > (size_t)(10.0 * 8000) || a->rate != 8000) {
            __builtin_trap();
        }
        for (size_t i = 0; i < a->n; i++) {
            if (!(a->samples[i] >= -1.0f && a->samples[i] <= 1.0f)) {
                __builtin_trap();
            }
        }
    } else if (a != NULL) {
        __builtin_trap();
    }
    m2p_audio_free(a);
    return 0;
}
