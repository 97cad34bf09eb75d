/*
 * tests/fuzz/fuzz_template.c — arbitrary bytes as a user template (and, from
 * the first byte, a style and a title) → m2p_prompt_build. Must never crash,
 * leak or read out of bounds; a success must fit 77 CLIP tokens and a failure
 * must be one of the documented template/style codes.
 *
 * The preset set and tokenizer are loaded once per process (fuzzer harness
 * state, not product code).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "prompt/prompt.h"

static m2p_presets *g_presets;
static m2p_clip_tokenizer *g_tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (g_presets == NULL && m2p_presets_load(&g_presets, NULL) != M2P_OK) {
        abort();
    }
    if (g_tok == NULL && m2p_clip_tokenizer_default(&g_tok, NULL) != M2P_OK) {
        abort();
    }
    if (size > 8192) {
        return 0;
    }
    unsigned sel = size > 0 ? data[0] : 0;
    char *text = m2p_malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';

    m2p_section sections[3] = {{0, 10, 0.2, 0.3, 0}, {10, 20, 0.9, 0.8, 1}, {20, 30, 0.4, 0.5, 0}};
    m2p_features f = {0};
    f.tempo_bpm = 60 + (sel % 120);
    f.tempo_confidence = 0.8;
    f.key = (int)(sel % 13) - 1;
    f.mode = (sel & 1) ? M2P_MODE_MINOR : M2P_MODE_MAJOR;
    f.key_confidence = 0.7;
    f.energy = (sel % 10) / 10.0;
    f.brightness = ((sel >> 2) % 10) / 10.0;
    f.percussiveness = ((sel >> 3) % 10) / 10.0;
    f.valence = ((sel >> 1) % 10) / 10.0;
    f.arousal = ((sel >> 4) % 10) / 10.0;
    f.sections = sections;
    f.n_sections = 3;

    static const char *styles[] = {NULL, "synthwave", "album-cover", "nope", "Oil Painting"};
    m2p_prompt_input in = {0};
    in.features = &f;
    in.style = styles[sel % 5];
    in.template_text = (sel & 0x80) ? NULL : text; /* sometimes the preset's own template */
    in.title = (sel & 0x40) ? text : NULL;         /* and the bytes as a title */
    in.artist = (sel & 0x20) ? "Artist" : NULL;
    in.presets = g_presets;
    in.tokenizer = g_tok;
    m2p_prompt *p = NULL;
    m2p_error err;
    m2p_error_clear(&err);
    m2p_code rc = m2p_prompt_build(&in, &p, &err);
    if (rc == M2P_OK) {
        if (p == NULL || p->n_tokens > 77 || p->positive == NULL) {
            abort();
        }
        json_t *j = NULL;
        if (m2p_prompt_to_json(p, &j) != M2P_OK) {
            abort(); /* positive must be valid UTF-8 */
        }
        json_decref(j);
        m2p_prompt_free(p);
    } else if (p != NULL ||
               (rc != M2P_E_TEMPLATE_VARIABLE && rc != M2P_E_TEMPLATE_SYNTAX && rc != M2P_E_TEMPLATE_EMPTY &&
                rc != M2P_E_TEMPLATE_TOO_LONG && rc != M2P_E_STYLE_UNKNOWN)) {
        abort();
    }
    /* The tokenizer alone on the raw bytes. */
    int32_t ids[77];
    int n_real = 0;
    if (m2p_clip_tokenize(g_tok, text, ids, 77, &n_real, NULL) != M2P_OK || n_real < 2 || n_real > 77 ||
        ids[n_real - 1] != m2p_clip_eos_id(g_tok)) {
        abort();
    }
    m2p_free(text);
    return 0;
}
