/*
 * prompt/template.h — prompt templates with {variables} (internal to the
 * prompt module; the builder and the preset loader use it).
 *
 * Grammar: text with {name} variables, name one of the known variables
 * (m2p_prompt_variable). "{{" and "}}" are literal braces. An unknown name →
 * M2P_E_TEMPLATE_VARIABLE ("unknown variable {moood}; did you mean {mood}?");
 * a lone "}", an unclosed "{", "{}" or a brace inside a name →
 * M2P_E_TEMPLATE_SYNTAX naming the offset; only whitespace →
 * M2P_E_TEMPLATE_EMPTY; more than M2P_TEMPLATE_MAX_BYTES →
 * M2P_E_TEMPLATE_TOO_LONG.
 */
#ifndef M2P_PROMPT_TEMPLATE_H
#define M2P_PROMPT_TEMPLATE_H

#include <stddef.h>

#include "core/error.h"

#define M2P_TEMPLATE_MAX_BYTES 2000
#define M2P_TEMPLATE_MAX_PARTS 256

/* The variables, in the order of the table in template.c. */
enum {
    M2P_VAR_MOOD,
    M2P_VAR_PALETTE,
    M2P_VAR_COLOR,
    M2P_VAR_MOTION,
    M2P_VAR_TEXTURE,
    M2P_VAR_ENERGY,
    M2P_VAR_ARC,
    M2P_VAR_TEMPO,
    M2P_VAR_KEY,
    M2P_VAR_GENRE_HINT,
    M2P_VAR_TITLE,
    M2P_VAR_ARTIST,
    M2P_VAR_COUNT
};

typedef enum m2p_tpl_kind { M2P_TPL_TEXT = 0, M2P_TPL_VAR = 1 } m2p_tpl_kind;

typedef struct m2p_tpl_part {
    m2p_tpl_kind kind;
    char *text; /* literal text (braces unescaped) or the variable name; owned */
    int var;    /* index into the variable table for M2P_TPL_VAR, else -1 */
} m2p_tpl_part;

typedef struct m2p_template {
    m2p_tpl_part *parts; /* owned, n_parts */
    size_t n_parts;
} m2p_template;

m2p_code m2p_template_parse(const char *text, m2p_template **out, m2p_error *err) M2P_WUR;
void m2p_template_free(m2p_template *t);

/* Number of known variables; index of a name or -1. */
size_t m2p_template_n_variables(void);
int m2p_template_variable_index(const char *name, size_t len);

/* Levenshtein distance of two short strings (bytes), capped at 99. */
int m2p_prompt_edit_distance(const char *a, size_t alen, const char *b, size_t blen);

#endif
