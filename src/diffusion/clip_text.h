/*
 * diffusion/clip_text.h — the CLIP text encoder (transformers' CLIPTextModel,
 * as Stable Diffusion 1.x uses it): token ids → last_hidden_state.
 *
 * token embedding + position embedding, then `layers` pre-LayerNorm
 * transformer blocks (causal multi-head self-attention, MLP with quick_gelu
 * or gelu), then the final LayerNorm. fp32 compute on ops.h.
 *
 * Tokenising is not done here: src/prompt/clip_tokenizer.h turns text into the
 * 77 ids (start token, BPE tokens, end token, padding with the end token).
 *
 * A handle holds pointers into the model's weights (the model must outlive it)
 * and a workspace sized for the largest batch seen so far; one encode at a
 * time per handle (not thread-safe; make one handle per thread).
 */
#ifndef M2P_DIFFUSION_CLIP_TEXT_H
#define M2P_DIFFUSION_CLIP_TEXT_H

#include <stdint.h>

#include "core/error.h"
#include "diffusion/model.h"

/* Largest batch one call accepts. */
#define M2P_NN_CLIP_MAX_BATCH 64

typedef struct m2p_nn_clip m2p_nn_clip;

/* Binds the text encoder of m (opened with M2P_NN_LOAD_TEXT): every weight is
 * looked up and shape-checked here, so a later encode cannot hit a missing
 * tensor. *out: free with m2p_nn_clip_free. */
m2p_code m2p_nn_clip_create(const m2p_nn_model *m, m2p_nn_clip **out, m2p_error *err) M2P_WUR;
void m2p_nn_clip_free(m2p_nn_clip *c);

/* Hidden size (768 for SD1.x) and the maximum sequence length (77). */
int m2p_nn_clip_hidden(const m2p_nn_clip *c);
int m2p_nn_clip_max_len(const m2p_nn_clip *c);

/* ids [batch, seq] (seq ≤ max_len, each id < vocab size) → out [batch, seq, hidden].
 * Ids out of range → INVALID_ARG; workspace allocation failure → NOMEM. */
m2p_code m2p_nn_clip_encode(m2p_nn_clip *c, const int32_t *ids, int batch, int seq, float *out,
                            m2p_error *err) M2P_WUR;

#endif
