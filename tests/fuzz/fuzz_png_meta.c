/*
 * tests/fuzz/fuzz_png_meta.c — libFuzzer target: arbitrary bytes through the
 * PNG metadata reader (render/png.h), which the server runs on image files.
 * Must never crash, leak or read out of bounds; whatever it returns must be
 * valid (keys are PNG keywords, values UTF-8 under the cap) and must survive
 * a write/read round trip unchanged. Seed corpus: tests/fuzz/corpus/png_meta/
 * (small PNGs written by Mus2Pic with tEXt/iTXt/zTXt chunks, a foreign
 * grey+alpha interlaced one, and truncated copies).
 */
#include <stdint.h>
#include <string.h>

#include "core/alloc.h"
#include "render/png.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1u << 20)) {
        return 0;
    }
    m2p_png_meta *meta = NULL;
    if (m2p_png_read_meta_mem(data, size, &meta, NULL) != M2P_OK) {
        return 0;
    }
    /* Whatever was read can be written again and reads back the same. */
    m2p_image *img = NULL;
    if (m2p_image_create(2, 2, &img) == M2P_OK) {
        uint8_t *enc = NULL;
        size_t len = 0;
        if (m2p_png_encode(img, meta, &enc, &len, NULL) == M2P_OK) {
            m2p_png_meta *back = NULL;
            if (m2p_png_read_meta_mem(enc, len, &back, NULL) != M2P_OK ||
                m2p_png_meta_count(back) != m2p_png_meta_count(meta)) {
                __builtin_trap();
            }
            for (size_t i = 0; i < m2p_png_meta_count(meta); i++) {
                const char *v = m2p_png_meta_get(back, m2p_png_meta_key(meta, i));
                if (v == NULL || strcmp(v, m2p_png_meta_value(meta, i)) != 0) {
                    __builtin_trap();
                }
            }
            m2p_png_meta_free(back);
            m2p_free(enc);
        }
        m2p_image_free(img);
    }
    m2p_png_meta_free(meta);
    return 0;
}
