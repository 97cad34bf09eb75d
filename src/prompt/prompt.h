/*
 * prompt/prompt.h — features + style (+ optional user template) → a prompt.
 *
 * The result carries the positive and negative text and the fragments it was
 * built from, each traced to the feature that produced it (the "why this
 * image" table). Prompts are kept within CLIP's 77 tokens by dropping the
 * lowest-priority fragments first; `shortened` says when that happened.
 *
 * Related headers: prompt/presets.h (the styles), prompt/clip_tokenizer.h
 * (exact CLIP token counts; also used by the diffusion engine). The template
 * variables are listed by m2p_prompt_variable() and docs/notes/prompt.md.
 */
#ifndef M2P_PROMPT_PROMPT_H
#define M2P_PROMPT_PROMPT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/error.h"
#include "dsp/features.h"
#include "prompt/clip_tokenizer.h"
#include "prompt/presets.h"

typedef struct m2p_fragment {
    char *variable; /* template variable it fills ("mood"), owned */
    char *text;     /* "moody, cool dusk palette", owned */
    char *feature;  /* "mode=minor, brightness=0.21", owned */
    char *reason;   /* "minor mode + low brightness", owned */
    int priority;   /* higher survives shortening longer */
    bool kept;      /* false when dropped to fit 77 tokens */
} m2p_fragment;

typedef struct m2p_prompt {
    char *positive;          /* owned */
    char *negative;          /* owned */
    char *style;             /* preset name, owned */
    m2p_fragment *fragments; /* owned, n_fragments */
    size_t n_fragments;
    int n_tokens;   /* CLIP tokens of positive, including start and end */
    bool shortened; /* fragments were dropped to fit */
} m2p_prompt;

/* Text the caller can give for the {title}/{artist} variables (may be NULL). */
typedef struct m2p_prompt_input {
    const m2p_features *features;
    const char *style;         /* preset name; NULL → "abstract" */
    const char *template_text; /* user template or NULL for the preset's */
    const char *title;
    const char *artist;
    /* Optional, for callers that build many prompts: a loaded preset set and
     * tokenizer to use (NULL → loaded for this call; the tokenizer load costs
     * a few tens of milliseconds). Not owned. */
    const struct m2p_presets *presets;
    const struct m2p_clip_tokenizer *tokenizer;
} m2p_prompt_input;

/* Builds the prompt. features must not be NULL. Errors: unknown style →
 * M2P_E_STYLE_UNKNOWN; template problems → M2P_E_TEMPLATE_VARIABLE /
 * _SYNTAX / _EMPTY / _TOO_LONG (detail names the variable or offset).
 * Deterministic: the same input gives the same prompt, byte for byte.
 * *out owned by the caller (m2p_prompt_free). */
m2p_code m2p_prompt_build(const m2p_prompt_input *in, m2p_prompt **out, m2p_error *err) M2P_WUR;
void m2p_prompt_free(m2p_prompt *p);

/* The prompt for one section of the song (for one image per section): the
 * song's features with that section's energy and brightness, and {arc}
 * describing the section's place ("an opening, gathering momentum", "at its
 * peak, a blazing climax", "a fading finale"). section must be below
 * features->n_sections, else M2P_E_INVALID_ARG. */
m2p_code m2p_prompt_build_section(const m2p_prompt_input *in, size_t section, m2p_prompt **out, m2p_error *err) M2P_WUR;

/* Checks a user template without features, so callers can refuse a bad one
 * before any download or analysis: the same codes and details as
 * m2p_prompt_build (template_variable / _syntax / _empty / _too_long). */
m2p_code m2p_prompt_check_template(const char *template_text, m2p_error *err) M2P_WUR;

/* {"positive", "negative", "style", "n_tokens", "shortened", "fragments":
 * [{"variable", "text", "feature", "reason", "priority", "kept"}]};
 * *out is a new reference. */
m2p_code m2p_prompt_to_json(const m2p_prompt *p, json_t **out) M2P_WUR;

#endif
