/*
 * prompt/presets.c — loading and looking up the style presets.
 *
 * The set keeps the parsed JSON document alive and its m2p_preset rows point
 * at the document's strings, so nothing is copied. Every preset is checked at
 * load: required strings present and bounded, name unique and made of
 * [a-z0-9-], template parses with known variables, numbers in range. The set
 * is immutable after m2p_presets_parse returns.
 */
#include "prompt/presets.h"

#include <ctype.h>
#include <jansson.h>
#include <string.h>

#include "core/alloc.h"
#include "core/assets.h"
#include "prompt/template.h"

#define PRESETS_MAX 256
#define PRESET_NAME_MAX 32
#define PRESET_TEXT_MAX 2000

#define PRESET_ALIASES_MAX 8

struct m2p_presets {
    json_t *root;
    m2p_preset *items;
    const char **aliases; /* PRESET_ALIASES_MAX slots per preset, pointing into root */
    size_t n;
};

static bool match_key(const char *in, char *buf, size_t cap);
static bool preset_matches(const m2p_preset *pr, const char *key);

void m2p_presets_free(m2p_presets *p) {
    if (p == NULL) {
        return;
    }
    m2p_free(p->items);
    m2p_free(p->aliases);
    json_decref(p->root);
    m2p_free(p);
}

size_t m2p_presets_count(const m2p_presets *p) {
    return p != NULL ? p->n : 0;
}

const m2p_preset *m2p_presets_at(const m2p_presets *p, size_t i) {
    if (p == NULL || i >= p->n) {
        return NULL;
    }
    return &p->items[i];
}

static m2p_code get_string(json_t *obj, const char *key, const char *name, bool required, const char *fallback,
                           const char **out, m2p_error *err) {
    json_t *v = json_object_get(obj, key);
    if (v == NULL && !required) {
        *out = fallback;
        return M2P_OK;
    }
    if (!json_is_string(v)) {
        return m2p_error_set(err, M2P_E_PRESETS_INVALID, "preset '%s': '%s' must be a string", name, key);
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n > PRESET_TEXT_MAX || strlen(s) != n) {
        return m2p_error_set(err, M2P_E_PRESETS_INVALID, "preset '%s': '%s' is too long or holds a NUL", name, key);
    }
    *out = s;
    return M2P_OK;
}

static m2p_code get_unit(json_t *obj, const char *key, const char *name, double fallback, double *out, m2p_error *err) {
    json_t *v = obj != NULL ? json_object_get(obj, key) : NULL;
    if (v == NULL) {
        *out = fallback;
        return M2P_OK;
    }
    if (!json_is_number(v) || json_number_value(v) < 0.0 || json_number_value(v) > 1.0) {
        return m2p_error_set(err, M2P_E_PRESETS_INVALID, "preset '%s': visual.%s must be a number from 0 to 1", name,
                             key);
    }
    *out = json_number_value(v);
    return M2P_OK;
}

static bool valid_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > PRESET_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
            return false;
        }
    }
    return true;
}

static m2p_code parse_one(json_t *o, size_t index, m2p_preset *p, const char **alias_slots, m2p_error *err) {
    if (!json_is_object(o)) {
        return m2p_error_set(err, M2P_E_PRESETS_INVALID, "preset #%zu is not an object", index);
    }
    char fallback_name[32];
    (void)snprintf(fallback_name, sizeof fallback_name, "#%zu", index);
    m2p_code rc = get_string(o, "name", fallback_name, true, NULL, &p->name, err);
    if (rc != M2P_OK) {
        return rc;
    }
    if (!valid_name(p->name)) {
        return m2p_error_set(err, M2P_E_PRESETS_INVALID, "preset #%zu: name must be 1-%d of [a-z0-9-]", index,
                             PRESET_NAME_MAX);
    }
    const char *nm = p->name;
    rc = get_string(o, "description", nm, true, NULL, &p->description, err);
    if (rc == M2P_OK) {
        rc = get_string(o, "template", nm, true, NULL, &p->template_text, err);
    }
    if (rc == M2P_OK) {
        rc = get_string(o, "negative", nm, true, NULL, &p->negative, err);
    }
    if (rc != M2P_OK) {
        return rc;
    }
    m2p_template *t = NULL;
    m2p_error terr;
    m2p_error_clear(&terr);
    m2p_code trc = m2p_template_parse(p->template_text, &t, &terr);
    if (trc == M2P_E_NOMEM) {
        return m2p_error_set(err, trc, "preset '%s': template", nm);
    }
    if (trc != M2P_OK) {
        return m2p_error_set(err, M2P_E_PRESETS_INVALID, "preset '%s': template: %s", nm, terr.detail);
    }
    m2p_template_free(t);

    json_t *al = json_object_get(o, "aliases");
    if (al != NULL) {
        if (!json_is_array(al) || json_array_size(al) > PRESET_ALIASES_MAX) {
            return m2p_error_set(err, M2P_E_PRESETS_INVALID, "preset '%s': aliases must be a list of up to %d names",
                                 nm, PRESET_ALIASES_MAX);
        }
        for (size_t a = 0; a < json_array_size(al); a++) {
            const char *s = json_string_value(json_array_get(al, a));
            if (s == NULL || !valid_name(s)) {
                return m2p_error_set(err, M2P_E_PRESETS_INVALID, "preset '%s': alias #%zu must be 1-%d of [a-z0-9-]",
                                     nm, a, PRESET_NAME_MAX);
            }
            alias_slots[a] = s;
        }
        p->n_aliases = json_array_size(al);
    }
    p->aliases = alias_slots;

    json_t *defaults = json_object_get(o, "defaults");
    p->steps = 4;
    p->guidance = 1.5;
    if (defaults != NULL) {
        json_t *st = json_object_get(defaults, "steps");
        json_t *gd = json_object_get(defaults, "guidance");
        if (st != NULL) {
            if (!json_is_integer(st) || json_integer_value(st) < 1 || json_integer_value(st) > 50) {
                return m2p_error_set(err, M2P_E_PRESETS_INVALID, "preset '%s': defaults.steps must be 1-50", nm);
            }
            p->steps = (int)json_integer_value(st);
        }
        if (gd != NULL) {
            if (!json_is_number(gd) || json_number_value(gd) < 0.0 || json_number_value(gd) > 30.0) {
                return m2p_error_set(err, M2P_E_PRESETS_INVALID, "preset '%s': defaults.guidance must be 0-30", nm);
            }
            p->guidance = json_number_value(gd);
        }
    }

    json_t *vis = json_object_get(o, "visual");
    if (vis != NULL && !json_is_object(vis)) {
        return m2p_error_set(err, M2P_E_PRESETS_INVALID, "preset '%s': visual must be an object", nm);
    }
    m2p_preset_visual *v = &p->visual;
    json_t *vo = vis; /* NULL (no "visual") → every hint takes its default */
    rc = get_string(vo, "shapes", nm, false, "blobs", &v->shapes, err);
    if (rc == M2P_OK) {
        rc = get_string(vo, "palette_bias", nm, false, "natural", &v->palette_bias, err);
    }
    if (rc == M2P_OK) {
        rc = get_string(vo, "background", nm, false, "gradient", &v->background, err);
    }
    if (rc == M2P_OK) {
        rc = get_string(vo, "text", nm, false, "none", &v->text, err);
    }
    if (rc == M2P_OK) {
        rc = get_unit(vis, "saturation", nm, 0.7, &v->saturation, err);
    }
    if (rc == M2P_OK) {
        rc = get_unit(vis, "contrast", nm, 0.6, &v->contrast, err);
    }
    if (rc == M2P_OK) {
        rc = get_unit(vis, "grain", nm, 0.2, &v->grain, err);
    }
    if (rc == M2P_OK) {
        rc = get_unit(vis, "softness", nm, 0.5, &v->softness, err);
    }
    if (rc == M2P_OK) {
        rc = get_unit(vis, "line_weight", nm, 0.4, &v->line_weight, err);
    }
    return rc;
}

m2p_code m2p_presets_parse(const char *json, size_t len, m2p_presets **out, m2p_error *err) {
    *out = NULL;
    m2p_code rc = M2P_OK;
    m2p_presets *set = m2p_calloc(1, sizeof *set);
    if (set == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "presets");
    }
    json_error_t jerr;
    set->root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (set->root == NULL) {
        rc = m2p_error_set(err, M2P_E_PRESETS_INVALID, "data/presets.json line %d: %s", jerr.line, jerr.text);
        goto fail;
    }
    json_t *arr = json_object_get(set->root, "presets");
    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > PRESETS_MAX) {
        rc = m2p_error_set(err, M2P_E_PRESETS_INVALID, "'presets' must be an array of 1 to %d presets", PRESETS_MAX);
        goto fail;
    }
    size_t n = json_array_size(arr);
    set->items = m2p_calloc(n, sizeof *set->items);
    set->aliases = m2p_calloc(n * PRESET_ALIASES_MAX, sizeof *set->aliases);
    if (set->items == NULL || set->aliases == NULL) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "presets");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        rc = parse_one(json_array_get(arr, i), i, &set->items[i], set->aliases + i * PRESET_ALIASES_MAX, err);
        if (rc != M2P_OK) {
            goto fail;
        }
        /* Names and aliases must stay unambiguous once reduced to letters and digits. */
        const m2p_preset *pi = &set->items[i];
        for (size_t a = 0; a <= pi->n_aliases; a++) {
            char key[PRESET_NAME_MAX + 2];
            (void)match_key(a == 0 ? pi->name : pi->aliases[a - 1], key, sizeof key);
            for (size_t j = 0; j < i; j++) {
                if (preset_matches(&set->items[j], key)) {
                    rc = m2p_error_set(err, M2P_E_PRESETS_INVALID, "preset '%s': name or alias '%s' is taken by '%s'",
                                       pi->name, a == 0 ? pi->name : pi->aliases[a - 1], set->items[j].name);
                    goto fail;
                }
            }
        }
        set->n = i + 1;
    }
    *out = set;
    return M2P_OK;
fail:
    m2p_presets_free(set);
    return rc;
}

m2p_code m2p_presets_load(m2p_presets **out, m2p_error *err) {
    const unsigned char *data = NULL;
    size_t len = 0;
    if (!m2p_asset_get("data/presets.json", &data, &len)) {
        *out = NULL;
        return m2p_error_set(err, M2P_E_PRESETS_INVALID, "data/presets.json is not embedded in this build");
    }
    return m2p_presets_parse((const char *)data, len, out, err);
}

/* A name reduced to lower-case letters and digits: "Album cover", "album_cover"
 * and "album-cover" all give "albumcover" (bounded; false when too long). */
static bool match_key(const char *in, char *buf, size_t cap) {
    size_t n = 0;
    for (const char *s = in; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (!isalnum(c)) {
            continue;
        }
        if (n + 1 >= cap) {
            return false;
        }
        buf[n++] = (char)tolower(c);
    }
    buf[n] = '\0';
    return true;
}

/* True when name (already a key) matches the preset's name or an alias. */
static bool preset_matches(const m2p_preset *pr, const char *key) {
    char k[PRESET_NAME_MAX + 2];
    if (match_key(pr->name, k, sizeof k) && strcmp(k, key) == 0) {
        return true;
    }
    for (size_t a = 0; a < pr->n_aliases; a++) {
        if (match_key(pr->aliases[a], k, sizeof k) && strcmp(k, key) == 0) {
            return true;
        }
    }
    return false;
}

m2p_code m2p_presets_find(const m2p_presets *p, const char *name, const m2p_preset **out, m2p_error *err) {
    *out = NULL;
    if (p == NULL || name == NULL) {
        return m2p_error_set(err, M2P_E_STYLE_UNKNOWN, "no style given");
    }
    char key[PRESET_NAME_MAX + 2];
    bool fits = match_key(name, key, sizeof key) && key[0] != '\0';
    if (fits) {
        for (size_t i = 0; i < p->n; i++) {
            if (preset_matches(&p->items[i], key)) {
                *out = &p->items[i];
                return M2P_OK;
            }
        }
    }
    /* Unknown: suggest the closest name, printable characters only. */
    char shown[PRESET_NAME_MAX + 8];
    size_t o = 0;
    for (const char *s = name; *s != '\0' && o + 4 < sizeof shown; s++) {
        unsigned char c = (unsigned char)*s;
        shown[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    shown[o] = '\0';
    const char *best = NULL;
    int best_d = 4;
    if (fits) {
        for (size_t i = 0; i < p->n; i++) {
            char k[PRESET_NAME_MAX + 2];
            if (!match_key(p->items[i].name, k, sizeof k)) {
                continue;
            }
            int d = m2p_prompt_edit_distance(key, strlen(key), k, strlen(k));
            if (d < best_d) {
                best_d = d;
                best = p->items[i].name;
            }
        }
    }
    if (best != NULL) {
        return m2p_error_set(err, M2P_E_STYLE_UNKNOWN, "unknown style '%s'; did you mean '%s'?", shown, best);
    }
    /* No close match: name them all (bounded by the detail's size). */
    char list[256];
    size_t o2 = 0;
    list[0] = '\0';
    for (size_t i = 0; i < p->n; i++) {
        int w = snprintf(list + o2, sizeof list - o2, "%s%s", i > 0 ? ", " : "", p->items[i].name);
        if (w < 0 || (size_t)w >= sizeof list - o2) {
            break;
        }
        o2 += (size_t)w;
    }
    return m2p_error_set(err, M2P_E_STYLE_UNKNOWN, "unknown style '%s'; the styles are %s", shown, list);
}
