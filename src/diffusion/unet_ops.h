/*
 * diffusion/unet_ops.h — ops the UNet needs beyond diffusion/ops.h (internal
 * to the diffusion engine).
 *
 * m2p_unet_attention: multi-head scaled dot-product attention (no mask),
 * blocked over queries: each task takes M2P_UNET_ATTN_QBLOCK (256) queries of one
 * (image, head), computes their full score rows [QBLOCK, tk] with one sgemm
 * into a per-thread buffer that stays in cache (256 × 4096 floats = 4 MB; 256
 * measured 5-10% faster than 64, whose K/V repacking per block costs more),
 * applies an exact row softmax (max-subtracted, vectorised exp, the
 * normalisation folded into the output rows) and multiplies by V with a
 * second sgemm. Tasks run in parallel over OpenMP threads (the sgemm calls
 * inside are then single-threaded), so neither the [tq, tk] score matrix
 * (64 MB per head at 64×64 latents) nor a memory-bound softmax pass over it
 * is ever materialised.
 */
#ifndef M2P_DIFFUSION_UNET_OPS_H
#define M2P_DIFFUSION_UNET_OPS_H

#include <stddef.h>

#define M2P_UNET_ATTN_QBLOCK 256

/* Floats of scratch m2p_unet_attention needs for tk keys with the current
 * OpenMP thread count (one [QBLOCK, tk] buffer per thread + row sums). */
size_t m2p_unet_attention_scratch(int tk);

/* q: [b, tq, heads·dh] (row stride q_stride), k/v: [b, tk, heads·dh] (strides),
 * out: [b, tq, heads·dh] (stride out_stride). k_batch_stride/v_batch_stride:
 * floats between the keys of consecutive images (0: one shared k/v for all). */
void m2p_unet_attention(const float *q, int q_stride, const float *k, int k_stride, size_t k_batch_stride,
                        const float *v, int v_stride, size_t v_batch_stride, int b, int tq, int tk, int heads, int dh,
                        float *out, int out_stride, float *scratch);

/* exp(x) for float x, max relative error ~2e-7 over the range (x ≤ 88; x < −87 → 0). */
float m2p_unet_expf(float x);

#endif
