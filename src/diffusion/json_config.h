/*
 * diffusion/json_config.h — typed reading of the fields of a diffusers
 * config.json (model parts, TAESD), with the first problem kept as one
 * specific error: "<file>: "<key>" <what is wrong>".
 *
 * Usage: fill an m2p_nn_json with the parsed root, the file name (for the
 * message), the caller's error and the code its errors carry
 * (M2P_E_MODEL_CONFIG, M2P_E_TAESD_CONFIG); call the readers; check rc at the
 * end. A reader whose field is absent or null returns the default; one whose
 * field is malformed records the error (the first one wins) and returns the
 * default, so a whole config can be read before one check.
 */
#ifndef M2P_DIFFUSION_JSON_CONFIG_H
#define M2P_DIFFUSION_JSON_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

typedef struct m2p_nn_json {
    const json_t *root;
    const char *file; /* named in the message */
    m2p_error *err;
    m2p_code code; /* the code of this file's errors */
    m2p_code rc;   /* M2P_OK, or the first error */
} m2p_nn_json;

/* Records "<file>: "<key>" <what>" as the error unless one is already recorded. */
void m2p_nn_json_fail(m2p_nn_json *c, const char *key, const char *what);
/* Integer in [lo, hi]; absent → def (def < lo means the field is required). */
int m2p_nn_json_int(m2p_nn_json *c, const char *key, int def, int lo, int hi);
/* Number in [lo, hi]; absent → def. */
double m2p_nn_json_num(m2p_nn_json *c, const char *key, double def, double lo, double hi);
/* true/false; absent → def. */
bool m2p_nn_json_bool(m2p_nn_json *c, const char *key, bool def);
/* String shorter than cap into buf; absent → def. */
void m2p_nn_json_str(m2p_nn_json *c, const char *key, const char *def, char *buf, size_t cap);

#endif
