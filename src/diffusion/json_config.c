/*
 * diffusion/json_config.c — typed config.json field readers (json_config.h).
 */
#include "diffusion/json_config.h"

#include <stdio.h>
#include <string.h>

void m2p_nn_json_fail(m2p_nn_json *c, const char *key, const char *what) {
    if (c->rc == M2P_OK) {
        c->rc = m2p_error_set(c->err, c->code, "%s: \"%s\" %s", c->file, key, what);
    }
}

int m2p_nn_json_int(m2p_nn_json *c, const char *key, int def, int lo, int hi) {
    const json_t *v = json_object_get(c->root, key);
    if (v == NULL || json_is_null(v)) {
        if (def < lo) {
            m2p_nn_json_fail(c, key, "is required");
        }
        return def;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        m2p_nn_json_fail(c, key, "is not an integer in the supported range");
        return def;
    }
    return (int)json_integer_value(v);
}

double m2p_nn_json_num(m2p_nn_json *c, const char *key, double def, double lo, double hi) {
    const json_t *v = json_object_get(c->root, key);
    if (v == NULL || json_is_null(v)) {
        return def;
    }
    if (!json_is_number(v) || !(json_number_value(v) >= lo && json_number_value(v) <= hi)) {
        m2p_nn_json_fail(c, key, "is not a number in the supported range");
        return def;
    }
    return json_number_value(v);
}

bool m2p_nn_json_bool(m2p_nn_json *c, const char *key, bool def) {
    const json_t *v = json_object_get(c->root, key);
    if (v == NULL || json_is_null(v)) {
        return def;
    }
    if (!json_is_boolean(v)) {
        m2p_nn_json_fail(c, key, "is not true or false");
        return def;
    }
    return json_is_true(v);
}

void m2p_nn_json_str(m2p_nn_json *c, const char *key, const char *def, char *buf, size_t cap) {
    const json_t *v = json_object_get(c->root, key);
    if (v == NULL || json_is_null(v)) {
        (void)snprintf(buf, cap, "%s", def);
        return;
    }
    if (!json_is_string(v) || strlen(json_string_value(v)) >= cap) {
        m2p_nn_json_fail(c, key, "is not a short string");
        (void)snprintf(buf, cap, "%s", def);
        return;
    }
    (void)snprintf(buf, cap, "%s", json_string_value(v));
}
