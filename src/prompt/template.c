/*
 * prompt/template.c — parsing prompt templates into literal and variable
 * parts, and the read-only table of template variables.
 *
 * The parser is a single left-to-right scan; it never reads past the NUL and
 * caps the template at M2P_TEMPLATE_MAX_BYTES and M2P_TEMPLATE_MAX_PARTS, so
 * arbitrary text is safe to hand it (tests/fuzz/fuzz_template.c).
 */
#include "prompt/template.h"

#include <stdbool.h>
#include <string.h>
#include <unistr.h>

#include "core/alloc.h"
#include "prompt/presets.h"

typedef struct var_row {
    const char *name;
    const char *description;
} var_row;

/* Read-only: the variables a template may use (order = the M2P_VAR_* enum). */
static const var_row k_vars[M2P_VAR_COUNT] = {
    {"mood", "emotional colour from valence, arousal and mode (\"melancholic, wistful\")"},
    {"palette", "light and temperature from mode and brightness (\"moody, cool dusk palette\")"},
    {"color", "hues associated with the key (\"deep forest green and teal hues\")"},
    {"motion", "movement from tempo, onset density and beat regularity (\"kinetic, fractured motion\")"},
    {"texture", "surface from percussiveness, brightness and dynamics (\"punchy, staccato shapes\")"},
    {"energy", "overall intensity from energy and loudness (\"explosive, high energy\")"},
    {"arc", "the song's shape over time from its sections (\"building to a bright climax\")"},
    {"tempo", "pace in words (\"fast-paced\")"},
    {"key", "key and mode in words (\"A minor key\")"},
    {"genre_hint", "a loose genre guess from the features (\"electronic dance music\")"},
    {"title", "the song title given by the user (empty when unknown)"},
    {"artist", "the artist given by the user (empty when unknown)"},
};

const char *m2p_prompt_variable(size_t i, const char **description) {
    if (i >= M2P_VAR_COUNT) {
        return NULL;
    }
    if (description != NULL) {
        *description = k_vars[i].description;
    }
    return k_vars[i].name;
}

size_t m2p_template_n_variables(void) {
    return M2P_VAR_COUNT;
}

int m2p_template_variable_index(const char *name, size_t len) {
    for (int i = 0; i < M2P_VAR_COUNT; i++) {
        if (strlen(k_vars[i].name) == len && memcmp(k_vars[i].name, name, len) == 0) {
            return i;
        }
    }
    return -1;
}

int m2p_prompt_edit_distance(const char *a, size_t alen, const char *b, size_t blen) {
    enum { CAP = 64 };
    if (alen > CAP || blen > CAP) {
        return 99;
    }
    int prev[CAP + 1];
    int cur[CAP + 1];
    for (size_t j = 0; j <= blen; j++) {
        prev[j] = (int)j;
    }
    for (size_t i = 1; i <= alen; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= blen; j++) {
            int sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
            int del = prev[j] + 1;
            int ins = cur[j - 1] + 1;
            int best = sub < del ? sub : del;
            cur[j] = best < ins ? best : ins;
        }
        memcpy(prev, cur, sizeof(int) * (blen + 1));
    }
    return prev[blen] > 99 ? 99 : prev[blen];
}

void m2p_template_free(m2p_template *t) {
    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < t->n_parts; i++) {
        m2p_free(t->parts[i].text);
    }
    m2p_free(t->parts);
    m2p_free(t);
}

static m2p_code add_part(m2p_template *t, m2p_tpl_kind kind, const char *s, size_t n, int var, m2p_error *err) {
    if (t->n_parts >= M2P_TEMPLATE_MAX_PARTS) {
        return m2p_error_set(err, M2P_E_TEMPLATE_TOO_LONG, "more than %d parts", M2P_TEMPLATE_MAX_PARTS);
    }
    char *text = m2p_strndup(s, n);
    if (text == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "template part");
    }
    t->parts[t->n_parts].kind = kind;
    t->parts[t->n_parts].text = text;
    t->parts[t->n_parts].var = var;
    t->n_parts++;
    return M2P_OK;
}

/* Prints a variable name safely into the error detail (printable ASCII only). */
static void safe_name(const char *s, size_t n, char *buf, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (n > 0 && o + 4 >= cap) {
        buf[o++] = '.';
        buf[o++] = '.';
        buf[o++] = '.';
    }
    buf[o] = '\0';
}

static m2p_code unknown_variable(const char *name, size_t n, m2p_error *err) {
    char shown[48];
    safe_name(name, n, shown, sizeof shown);
    int best = -1;
    int best_d = 3;
    for (int i = 0; i < M2P_VAR_COUNT; i++) {
        int d = m2p_prompt_edit_distance(name, n, k_vars[i].name, strlen(k_vars[i].name));
        if (d < best_d) {
            best_d = d;
            best = i;
        }
    }
    if (best >= 0) {
        return m2p_error_set(err, M2P_E_TEMPLATE_VARIABLE, "unknown variable {%s}; did you mean {%s}?", shown,
                             k_vars[best].name);
    }
    return m2p_error_set(err, M2P_E_TEMPLATE_VARIABLE, "unknown variable {%s}", shown);
}

m2p_code m2p_template_parse(const char *text, m2p_template **out, m2p_error *err) {
    *out = NULL;
    if (text == NULL) {
        return m2p_error_set(err, M2P_E_TEMPLATE_EMPTY, "no template given");
    }
    size_t len = strnlen(text, M2P_TEMPLATE_MAX_BYTES + 1);
    if (len > M2P_TEMPLATE_MAX_BYTES) {
        return m2p_error_set(err, M2P_E_TEMPLATE_TOO_LONG, "the template is over %d bytes", M2P_TEMPLATE_MAX_BYTES);
    }
    const uint8_t *bad = u8_check((const uint8_t *)text, len);
    if (bad != NULL) {
        return m2p_error_set(err, M2P_E_TEMPLATE_SYNTAX, "invalid UTF-8 at offset %zu",
                             (size_t)(bad - (const uint8_t *)text));
    }
    bool blank = true;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\v' && c != '\f') {
            blank = false;
            break;
        }
    }
    if (blank) {
        return m2p_error_set(err, M2P_E_TEMPLATE_EMPTY, "the template has no text");
    }
    m2p_code rc = M2P_OK;
    char *lit = NULL;
    m2p_template *t = m2p_calloc(1, sizeof *t);
    if (t == NULL) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "template");
        goto fail;
    }
    t->parts = m2p_calloc(M2P_TEMPLATE_MAX_PARTS, sizeof *t->parts);
    lit = m2p_malloc(len + 1);
    if (t->parts == NULL || lit == NULL) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "template");
        goto fail;
    }
    size_t n_lit = 0;
    size_t i = 0;
    while (i < len) {
        char c = text[i];
        if (c == '{' && i + 1 < len && text[i + 1] == '{') {
            lit[n_lit++] = '{';
            i += 2;
            continue;
        }
        if (c == '}' && i + 1 < len && text[i + 1] == '}') {
            lit[n_lit++] = '}';
            i += 2;
            continue;
        }
        if (c == '}') {
            rc =
                m2p_error_set(err, M2P_E_TEMPLATE_SYNTAX, "unmatched } at offset %zu; write }} for a literal brace", i);
            goto fail;
        }
        if (c != '{') {
            lit[n_lit++] = c;
            i++;
            continue;
        }
        /* A variable: '{' name '}'. */
        size_t start = i + 1;
        size_t j = start;
        while (j < len && text[j] != '}' && text[j] != '{') {
            j++;
        }
        if (j >= len) {
            rc = m2p_error_set(err, M2P_E_TEMPLATE_SYNTAX, "unclosed { at offset %zu; close it with } or write {{", i);
            goto fail;
        }
        if (text[j] == '{') {
            rc = m2p_error_set(err, M2P_E_TEMPLATE_SYNTAX, "{ inside a variable at offset %zu", j);
            goto fail;
        }
        if (j == start) {
            rc = m2p_error_set(err, M2P_E_TEMPLATE_SYNTAX, "empty {} at offset %zu; name a variable such as {mood}", i);
            goto fail;
        }
        int var = m2p_template_variable_index(text + start, j - start);
        if (var < 0) {
            rc = unknown_variable(text + start, j - start, err);
            goto fail;
        }
        if (n_lit > 0) {
            rc = add_part(t, M2P_TPL_TEXT, lit, n_lit, -1, err);
            if (rc != M2P_OK) {
                goto fail;
            }
            n_lit = 0;
        }
        rc = add_part(t, M2P_TPL_VAR, text + start, j - start, var, err);
        if (rc != M2P_OK) {
            goto fail;
        }
        i = j + 1;
    }
    if (n_lit > 0) {
        rc = add_part(t, M2P_TPL_TEXT, lit, n_lit, -1, err);
        if (rc != M2P_OK) {
            goto fail;
        }
    }
    m2p_free(lit);
    *out = t;
    return M2P_OK;
fail:
    m2p_free(lit);
    m2p_template_free(t);
    return rc;
}
