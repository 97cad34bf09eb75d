/*
 * tests/fuzz/fuzz_clip_vocab.c — arbitrary bytes as a diffusers tokenizer
 * pair (vocab.json + merges.txt, which come with downloaded model folders) →
 * m2p_clip_tokenizer_load_buffers. The first two bytes give the length of the
 * vocab.json part (little-endian), the rest is merges.txt. A load must fail
 * cleanly or give a tokenizer whose ids stay inside the vocabulary.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "prompt/clip_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) {
        return 0;
    }
    size_t split = (size_t)data[0] | ((size_t)data[1] << 8);
    data += 2;
    size -= 2;
    if (split > size) {
        split = size;
    }
    m2p_clip_tokenizer *t = NULL;
    m2p_error err;
    m2p_error_clear(&err);
    m2p_code rc =
        m2p_clip_tokenizer_load_buffers((const char *)data, split, (const char *)data + split, size - split, &t, &err);
    if (rc != M2P_OK) {
        if (t != NULL || (rc != M2P_E_TOKENIZER_INVALID && rc != M2P_E_NOMEM)) {
            abort();
        }
        return 0;
    }
    static const char *texts[] = {"a photo of a cat", "caf\xc3\xa9 \xf0\x9f\x8e\xb5 it's 1999!", "<|endoftext|>x", ""};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t ids[77];
        int n_real = 0;
        if (m2p_clip_tokenize(t, texts[i], ids, 77, &n_real, NULL) != M2P_OK || n_real < 2 || n_real > 77) {
            abort();
        }
        for (int k = 0; k < 77; k++) {
            if (ids[k] < 0 || (size_t)ids[k] >= m2p_clip_vocab_size(t)) {
                abort();
            }
        }
    }
    m2p_clip_tokenizer_free(t);
    return 0;
}
