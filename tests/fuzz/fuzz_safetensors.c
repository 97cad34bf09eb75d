/*
 * tests/fuzz/fuzz_safetensors.c — libFuzzer target for the safetensors reader:
 * any byte string is opened from memory; when it is accepted, every tensor is
 * looked up by name and (when small) converted to fp32, which touches every
 * byte the header claims — so a validation gap shows up as an ASan report.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/alloc.h"
#include "diffusion/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    m2p_nn_st *st = NULL;
    m2p_error err;
    if (m2p_nn_st_open_memory(data, size, "fuzz", &st, &err) != M2P_OK) {
        return 0;
    }
    for (size_t i = 0; i < m2p_nn_st_count(st); i++) {
        const m2p_nn_st_tensor *t = m2p_nn_st_at(st, i);
        if (m2p_nn_st_find(st, t->name) != t) {
            __builtin_trap();
        }
        if (t->numel <= 65536) {
            float *buf = m2p_malloc_array(t->numel == 0 ? 1 : t->numel, sizeof(float));
            if (buf != NULL) {
                m2p_code rc = m2p_nn_st_read_f32(t, buf, t->numel, &err);
                (void)rc; /* non-float dtypes are refused; that is fine */
                m2p_free(buf);
            }
        }
        /* Touch every byte of non-float tensors too. */
        volatile unsigned char acc = 0;
        const unsigned char *p = t->data;
        for (size_t j = 0; j < t->nbytes && j < (1u << 20); j++) {
            acc ^= p[j];
        }
        (void)acc;
    }
    m2p_nn_st_close(st);
    return 0;
}
