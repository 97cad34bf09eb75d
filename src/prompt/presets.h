/*
 * prompt/presets.h — the style presets (data/presets.json, embedded in the
 * binary): name, one-line description, prompt template, negative prompt,
 * suggested steps/guidance and visual hints for the procedural renderer.
 *
 * A preset set is loaded once (m2p_presets_load parses the embedded JSON,
 * well under a millisecond) and is read-only afterwards, so one set may be
 * shared by any number of threads. Every string a preset points at lives as
 * long as the set (until m2p_presets_free).
 *
 * Names are matched on their letters and digits only, case-insensitively, so
 * "Album cover", "album_cover", "AlbumCover" and "album-cover" name the same
 * preset; a preset may list aliases ("oil" → oil-painting).
 */
#ifndef M2P_PROMPT_PRESETS_H
#define M2P_PROMPT_PRESETS_H

#include <stddef.h>

#include "core/error.h"

/* Hints for renderers that draw without a network (render/sonic.c). Numbers
 * are 0..1. Strings are never NULL. */
typedef struct m2p_preset_visual {
    const char *shapes;       /* blobs | strokes | grid | circles | bands | polygons | waves | dots */
    const char *palette_bias; /* natural | warm | cool | neon | pastel | mono | earth | vintage */
    double saturation;
    double contrast;
    double grain;    /* film/paper grain */
    double softness; /* 0 hard edges .. 1 soft washes */
    double line_weight;
    const char *background; /* dark | light | gradient */
    const char *text;       /* none | title | title_artist: what to letter on the poster */
} m2p_preset_visual;

typedef struct m2p_preset {
    const char *name;          /* "album-cover" */
    const char *description;   /* one line */
    const char *template_text; /* "album cover art, {title}, {mood}, ..." */
    const char *negative;
    int steps;       /* suggested sampler steps */
    double guidance; /* suggested guidance scale */
    m2p_preset_visual visual;
    const char *const *aliases; /* other accepted names ("oil" for oil-painting), n_aliases */
    size_t n_aliases;
} m2p_preset;

typedef struct m2p_presets m2p_presets;

/* Parses the embedded data/presets.json. *out owned by the caller. */
m2p_code m2p_presets_load(m2p_presets **out, m2p_error *err) M2P_WUR;
/* Parses presets from JSON text (len bytes, need not be NUL-terminated).
 * A malformed file, a missing field, a duplicate name or a template that does
 * not parse → M2P_E_PRESETS_INVALID naming the preset and field. */
m2p_code m2p_presets_parse(const char *json, size_t len, m2p_presets **out, m2p_error *err) M2P_WUR;
void m2p_presets_free(m2p_presets *p);

size_t m2p_presets_count(const m2p_presets *p);
/* The i-th preset in file order; NULL when i is out of range. */
const m2p_preset *m2p_presets_at(const m2p_presets *p, size_t i);
/* Looks a preset up by name. Unknown → M2P_E_STYLE_UNKNOWN with a detail
 * such as "unknown style 'synthwav'; did you mean 'synthwave'?". */
m2p_code m2p_presets_find(const m2p_presets *p, const char *name, const m2p_preset **out, m2p_error *err) M2P_WUR;

/* The template variables, in documentation order (read-only table):
 * m2p_prompt_variable(i, &description) returns the name ("mood") or NULL
 * past the end; description may be NULL. */
const char *m2p_prompt_variable(size_t i, const char **description);

#endif
