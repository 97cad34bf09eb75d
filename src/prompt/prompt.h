/*
 * prompt/prompt.h — features + style (+ optional user template) → a prompt.
 *
 * The result carries the positive and negative text and the fragments it was
 * built from, each traced to the feature that produced it (the "why this
 * image" table). Prompts are kept within CLIP's 77 tokens by dropping the
 * lowest-priority fragments first; `shortened` says when that happened.
 */
#ifndef M2P_PROMPT_PROMPT_H
#define M2P_PROMPT_PROMPT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "dsp/features.h"

typedef struct m2p_fragment {
    char *variable; /* template variable it fills ("mood"), owned */
    char *text;     /* "moody, cool dusk palette", owned */
    char *feature;  /* "mode=minor, brightness=0.21", owned */
    char *reason;   /* "minor mode + low brightness", owned */
    int priority;   /* higher survives shortening longer */
    bool kept;      /* false when dropped to fit 77 tokens */
} m2p_fragment;

typedef struct m2p_prompt {
    char *positive; /* owned */
    char *negative; /* owned */
    char *style;    /* preset name, owned */
    m2p_fragment *fragments; /* owned, n_fragments */
    size_t n_fragments;
    int n_tokens;   /* CLIP tokens of positive, including start and end */
    bool shortened; /* fragments were dropped to fit */
} m2p_prompt;

/* Text the caller can give for the {title}/{artist} variables (may be NULL). */
typedef struct m2p_prompt_input {
    const m2p_features *features;
    const char *style;    /* preset name; NULL → "abstract" */
    const char *template_text; /* user template or NULL for the preset's */
    const char *title;
    const char *artist;
} m2p_prompt_input;

m2p_code m2p_prompt_build(const m2p_prompt_input *in, m2p_prompt **out, m2p_error *err) M2P_WUR;
void m2p_prompt_free(m2p_prompt *p);

#endif
