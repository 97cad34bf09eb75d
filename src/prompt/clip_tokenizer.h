/*
 * prompt/clip_tokenizer.h — CLIP's byte-level BPE tokenizer, in C.
 *
 * Gives the same ids as Hugging Face's CLIPTokenizer for Stable Diffusion 1.x
 * (openai/clip-vit-large-patch14): text → NFC → runs of Unicode whitespace
 * become one space → lower case → split into pieces by CLIP's pattern
 * `'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+` → each piece's UTF-8
 * bytes mapped to printable characters, "</w>" on the last → BPE merges by
 * rank → ids. The exact strings "<|startoftext|>" and "<|endoftext|>" in the
 * raw text become their special ids (as HF's added tokens do).
 *
 * Unicode classes, NFC and case mapping come from GNU libunistring. Not done
 * (documented differences from the Python tokenizers): ftfy's fix_text and
 * HTML unescaping (open_clip only), and context-dependent lower-casing (final
 * sigma). Invalid UTF-8 bytes are replaced by U+FFFD first.
 *
 * A tokenizer is immutable after loading: share one between threads freely.
 */
#ifndef M2P_PROMPT_CLIP_TOKENIZER_H
#define M2P_PROMPT_CLIP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define M2P_CLIP_MAX_TOKENS 77
/* Longest text m2p_clip_tokenize accepts, in bytes (M2P_E_TOO_LARGE above). */
#define M2P_CLIP_MAX_TEXT 65536

typedef struct m2p_clip_tokenizer m2p_clip_tokenizer;

/* From a diffusers model folder's tokenizer/vocab.json + merges.txt (with or
 * without the "#version" first line). Malformed files →
 * M2P_E_TOKENIZER_INVALID naming the file and line. */
m2p_code m2p_clip_tokenizer_load(const char *vocab_json_path, const char *merges_path, m2p_clip_tokenizer **out,
                                 m2p_error *err) M2P_WUR;
/* The same from the two files' contents in memory (need not be
 * NUL-terminated; each at most 16 MiB, at most 2^20 merges). */
m2p_code m2p_clip_tokenizer_load_buffers(const char *vocab_json, size_t vocab_len, const char *merges,
                                         size_t merges_len, m2p_clip_tokenizer **out, m2p_error *err) M2P_WUR;
/* The embedded default (OpenAI CLIP's bpe_simple_vocab_16e6, data/clip/;
 * same ids as SD1.x's tokenizer): vocabulary 49408, bos 49406, eos = pad 49407. */
m2p_code m2p_clip_tokenizer_default(m2p_clip_tokenizer **out, m2p_error *err) M2P_WUR;
void m2p_clip_tokenizer_free(m2p_clip_tokenizer *t);

/* ids: start token, BPE ids, end token, then padding to max_len with the pad
 * id; when too long, truncates keeping the end token last. ids must hold
 * max_len entries (max_len >= 2). *n_real (may be NULL): tokens before padding. */
m2p_code m2p_clip_tokenize(const m2p_clip_tokenizer *t, const char *text, int32_t *ids, int max_len, int *n_real,
                           m2p_error *err) M2P_WUR;

/* Tokens text needs without truncation, start and end included (so a prompt
 * fits CLIP when *n_tokens <= 77). */
m2p_code m2p_clip_count(const m2p_clip_tokenizer *t, const char *text, int *n_tokens, m2p_error *err) M2P_WUR;

int32_t m2p_clip_bos_id(const m2p_clip_tokenizer *t);
int32_t m2p_clip_eos_id(const m2p_clip_tokenizer *t);
int32_t m2p_clip_pad_id(const m2p_clip_tokenizer *t);
size_t m2p_clip_vocab_size(const m2p_clip_tokenizer *t);

#endif
