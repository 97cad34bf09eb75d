/*
 * tests/fuzz/fuzz_features_json.c — arbitrary bytes as a cached analysis
 * (the feature cache and the API hand JSON back to m2p_features_from_json).
 * Parsing must fail cleanly with M2P_E_INVALID_ARG / M2P_E_NOMEM, or give
 * features whose JSON form round-trips byte for byte.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dsp/features.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_error_t jerr;
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY, &jerr);
    if (j == NULL) {
        return 0;
    }
    m2p_features *f = NULL;
    m2p_error err;
    m2p_error_clear(&err);
    m2p_code rc = m2p_features_from_json(j, &f, &err);
    json_decref(j);
    if (rc != M2P_OK) {
        if (f != NULL || (rc != M2P_E_INVALID_ARG && rc != M2P_E_NOMEM)) {
            abort();
        }
        return 0;
    }
    json_t *a = NULL, *b = NULL;
    m2p_features *g = NULL;
    if (m2p_features_to_json(f, &a) != M2P_OK || m2p_features_from_json(a, &g, &err) != M2P_OK ||
        m2p_features_to_json(g, &b) != M2P_OK) {
        abort();
    }
    char *sa = json_dumps(a, JSON_SORT_KEYS | JSON_COMPACT);
    char *sb = json_dumps(b, JSON_SORT_KEYS | JSON_COMPACT);
    if (sa == NULL || sb == NULL || strcmp(sa, sb) != 0) {
        abort();
    }
    char line[256];
    m2p_features_summary(g, line, sizeof line);
    free(sa);
    free(sb);
    json_decref(a);
    json_decref(b);
    m2p_features_free(f);
    m2p_features_free(g);
    return 0;
}
