/*
 * tests/fuzz/fuzz_http_spec.c — the job-request path of the HTTP API on
 * arbitrary bytes: JSON body parsing under its cap, then the job-spec
 * checker (JSON mode or form mode, chosen by the first byte), then the
 * request hash of whatever was accepted. Must never crash, leak or accept a
 * spec with out-of-range values.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "prompt/presets.h"
#include "web/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) {
        return 0;
    }
    bool form = (data[0] & 1) != 0;
    bool need_source = (data[0] & 2) == 0;
    m2p_config cfg;
    m2p_config_defaults(&cfg);
    json_t *body = NULL;
    if (m2p_web_parse_json_body((const char *)data + 1, size - 1, &body, NULL) != M2P_OK) {
        return 0;
    }
    m2p_presets *presets = NULL;
    if (m2p_presets_load(&presets, NULL) != M2P_OK) {
        json_decref(body);
        return 0;
    }
    json_t *defaults = json_pack("{s:s, s:s}", "variations", "3", "size", "512x512");
    m2p_spec_ctx ctx = {&cfg, presets, (data[0] & 4) != 0 ? defaults : NULL, form, need_source};
    json_t *spec = NULL;
    bool seed_given = false;
    if (m2p_web_parse_spec(body, &ctx, 7u, &spec, &seed_given, NULL) == M2P_OK) {
        json_t *v = json_object_get(spec, "variations");
        if (v != NULL && (json_integer_value(v) < 1 || json_integer_value(v) > 16)) {
            abort();
        }
        json_t *w = json_object_get(spec, "width");
        if (w != NULL && (json_integer_value(w) < 64 || json_integer_value(w) > 4096 || json_integer_value(w) % 8)) {
            abort();
        }
        if (need_source && !json_is_string(json_object_get(spec, "source"))) {
            abort();
        }
        char hex[65];
        if (m2p_web_request_hash(spec, hex, NULL) != M2P_OK || strlen(hex) != 64) {
            abort();
        }
        json_decref(spec);
    }
    json_decref(defaults);
    m2p_presets_free(presets);
    json_decref(body);
    return 0;
}
