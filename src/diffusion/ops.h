/*
 * diffusion/ops.h — the tensor operations of the inference engine, fp32, on
 * OpenBLAS (sgemm) and OpenMP. Plain functions over float arrays with explicit
 * shapes: no hidden allocation except where a workspace is documented.
 * Layouts: images NCHW; token sequences [B, T, C] row-major.
 * Every op has a naive reference in tests/unit/diffusion/test_nn_ops.c and is
 * checked against it under an error bound (double-accumulated direct loops).
 * Threading: sgemm threads itself (OpenBLAS, OpenMP build); the other loops
 * use OpenMP. Ops must not be called from inside an OpenMP parallel region
 * if they are to use more than one core.
 */
#ifndef M2P_DIFFUSION_OPS_H
#define M2P_DIFFUSION_OPS_H

#include <stdbool.h>
#include <stddef.h>

/* y[rows, out] = x[rows, in] · wᵀ (w is [out, in] as PyTorch stores Linear) + b (b may be NULL).
 * accumulate=true adds into y instead of overwriting it. */
void m2p_nn_linear(const float *x, int rows, int in, const float *w, const float *b, int out, float *y,
                   bool accumulate);

/* 2-D convolution, NCHW, square kernel k, stride, zero padding pad.
 * w: [cout, cin, k, k]; b: [cout] or NULL. y: [n, cout, oh, ow] with
 * oh = (h + 2 pad - k) / stride + 1. ws: workspace of
 * m2p_nn_conv2d_workspace(cin, h, w, k, stride, pad) floats (may be NULL for 1x1 stride 1). */
size_t m2p_nn_conv2d_workspace(int cin, int h, int w, int k, int stride, int pad);
void m2p_nn_conv2d(const float *x, int n, int cin, int h, int w, const float *wt, const float *b, int cout, int k,
                   int stride, int pad, float *y, float *ws);

/* Group norm over [n, c, hw] in place, per-channel affine (gamma/beta may be NULL);
 * silu=true applies SiLU after (the common GroupNorm → SiLU pair). */
void m2p_nn_group_norm(float *x, int n, int c, int hw, int groups, const float *gamma, const float *beta, float eps,
                       bool silu);

/* Layer norm over the last dim: y[rows, dim] (y may equal x). */
void m2p_nn_layer_norm(const float *x, int rows, int dim, const float *gamma, const float *beta, float eps, float *y);

/* Element-wise activations in place. gelu is the exact (erf) form PyTorch uses by default. */
void m2p_nn_silu(float *x, size_t n);
void m2p_nn_gelu(float *x, size_t n);
void m2p_nn_quick_gelu(float *x, size_t n); /* x · sigmoid(1.702 x), CLIP */

/* GEGLU: in [rows, 2·d] → out [rows, d] = a · gelu(g) where a = in[:, :d], g = in[:, d:]. */
void m2p_nn_geglu(const float *in, int rows, int d, float *out);

/* Multi-head scaled dot-product attention.
 * q: [b, tq, heads·dh], k and v: [b, tk, heads·dh] (row strides given so that
 * fused qkv buffers work), out: [b, tq, heads·dh]. causal=true masks j > i
 * (CLIP). Scale 1/sqrt(dh). scratch: m2p_nn_attention_scratch(tq, tk) floats
 * in total: for small score matrices (tq·tk ≤ 65536) one [tq, tk] matrix per
 * OpenMP thread, (batch, head) pairs spread over the threads; for larger ones
 * a single matrix, one pair at a time with multi-threaded sgemm and softmax.
 * Size the scratch and call with the same OpenMP thread setting. */
size_t m2p_nn_attention_scratch(int tq, int tk);
void m2p_nn_attention(const float *q, int q_stride, const float *k, int k_stride, const float *v, int v_stride, int b,
                      int tq, int tk, int heads, int dh, bool causal, float *out, int out_stride, float *scratch);

/* Nearest-neighbour 2x upsampling: x [n, c, h, w] → y [n, c, 2h, 2w]. */
void m2p_nn_upsample2x(const float *x, int n, int c, int h, int w, float *y);

/* y += x (n floats) / y = x + y, and per-channel broadcast add of v[c] over [n, c, hw]. */
void m2p_nn_add(float *y, const float *x, size_t n);
void m2p_nn_add_channel(float *x, int n, int c, int hw, const float *v /* [n, c] */);

/* NCHW [n, c, hw] ↔ token layout [n, hw, c]. */
void m2p_nn_nchw_to_nhwc(const float *x, int n, int c, int hw, float *y);
void m2p_nn_nhwc_to_nchw(const float *x, int n, int c, int hw, float *y);

/* Half / bfloat16 → float conversion of n values. */
void m2p_nn_f16_to_f32(const unsigned short *src, float *dst, size_t n);
void m2p_nn_bf16_to_f32(const unsigned short *src, float *dst, size_t n);


/* conv2d with a workspace of ws_floats floats chosen by the caller: the im2col
 * matrix is built ws_floats / (cin·k·k·ow) output rows at a time (smaller
 * workspace = more, smaller sgemm calls; same result). Returns false, doing
 * nothing, when the workspace cannot hold one output row (1×1 stride-1 needs
 * none). m2p_nn_conv2d == this with m2p_nn_conv2d_workspace() floats. */
bool m2p_nn_conv2d_ex(const float *x, int n, int cin, int h, int w, const float *wt, const float *b, int cout, int k,
                      int stride, int pad, float *y, float *ws, size_t ws_floats);

/* 3×3 convolution, stride 1, zero padding 1 (the shape of almost every conv
 * in SD's UNet and VAE), by Winograd F(2×2, 3×3): 2.25× fewer multiplies than
 * im2col, as 16 sgemms [cout × cin]·[cin × tiles] per strip of tile rows.
 * Same arguments as m2p_nn_conv2d with k = 3, stride = 1, pad = 1; ws holds
 * m2p_nn_conv3x3_workspace(cin, cout, h, w) floats (the transformed filter +
 * one strip, ≤ 128 MB + 64·cout·cin bytes). Rounding differs from direct
 * summation by a small factor (transform entries are ±1 and ½). */
size_t m2p_nn_conv3x3_workspace(int cin, int cout, int h, int w);
void m2p_nn_conv3x3(const float *x, int n, int cin, int h, int w, const float *wt, const float *b, int cout, float *y,
                    float *ws);
/* The same with an explicit workspace size: tiles are processed
 * (ws_floats − 16·cout·cin) / (16·(cin + cout)) at a time. Returns false,
 * doing nothing, when that is less than one tile. */
bool m2p_nn_conv3x3_ex(const float *x, int n, int cin, int h, int w, const float *wt, const float *b, int cout,
                       float *y, float *ws, size_t ws_floats);

/* x *= s (n floats). */
void m2p_nn_scale(float *x, size_t n, float s);

/* Threads for the engine's OpenMP loops and OpenBLAS (the `threads` setting).
 * m2p_nn_set_threads(n): n > 0 uses n threads, 0 leaves the default (all
 * cores, or OMP_NUM_THREADS); records n process-wide and applies it to the
 * calling thread. OpenMP's thread count is a per-thread setting and OpenBLAS
 * (OpenMP build) follows the caller's, so a thread that did not make the call
 * (a render or job thread) picks it up with m2p_nn_apply_threads(), which the
 * engine's entry points call; cheap, and a no-op while the setting is 0.
 * m2p_nn_threads() is the count a parallel region started now would get. */
void m2p_nn_set_threads(int n);
void m2p_nn_apply_threads(void);
int m2p_nn_threads(void);

#endif
