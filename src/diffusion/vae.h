/*
 * diffusion/vae.h — the AutoencoderKL decoder of Stable Diffusion 1.x:
 * latents [n, 4, h, w] → image [n, 3, h·f, w·f] (f = 2^(blocks−1), 8 for SD).
 *
 * z = latents / scaling_factor + shift_factor; post_quant_conv (1×1);
 * decoder.conv_in; mid block (ResNet, single-head self-attention with group
 * norm, ResNet); up blocks (layers_per_block + 1 ResNets, then nearest 2×
 * upsample + 3×3 conv except the last); conv_norm_out + SiLU; conv_out.
 * Output values are nominally in [-1, 1]; m2p_nn_vae_to_rgb8 maps them to
 * 8-bit RGB exactly as diffusers' image processor does ((x/2 + 0.5) clamped,
 * × 255, rounded).
 *
 * Images of a batch are decoded one after another through one workspace
 * sized for the largest resolution seen (about 4 × 256 × (8h) × (8w) floats:
 * ~1.1 GB at 512²), so memory does not grow with the batch. One decode at a
 * time per handle; the model must outlive the handle.
 */
#ifndef M2P_DIFFUSION_VAE_H
#define M2P_DIFFUSION_VAE_H

#include <stddef.h>

#include "core/error.h"
#include "core/progress.h"
#include "diffusion/model.h"

typedef struct m2p_nn_vae m2p_nn_vae;

/* Binds the VAE decoder weights of m (opened with M2P_NN_LOAD_VAE), checking
 * every shape. *out: free with m2p_nn_vae_free. */
m2p_code m2p_nn_vae_create(const m2p_nn_model *m, m2p_nn_vae **out, m2p_error *err) M2P_WUR;
void m2p_nn_vae_free(m2p_nn_vae *v);

/* Upsampling factor from latents to pixels (8 for SD1.x) and latent channels (4). */
int m2p_nn_vae_factor(const m2p_nn_vae *v);
int m2p_nn_vae_latent_channels(const m2p_nn_vae *v);

/* Decodes n latents [n, C, h, w] (as the sampler produces them, before the
 * 1/scaling_factor) into out [n, 3, h·f, w·f]. progress (may be NULL) gets
 * M2P_STEP_RENDER reports per image and is checked for cancellation between
 * images (→ CANCELLED). h, w in 1..512. */
m2p_code m2p_nn_vae_decode(m2p_nn_vae *v, const float *latents, int n, int h, int w, float *out,
                           const m2p_progress *progress, m2p_error *err) M2P_WUR;

/* img [n, 3, H, W] floats in [-1, 1] → rgb [n, H, W, 3] bytes. */
void m2p_nn_vae_to_rgb8(const float *img, int n, int height, int width, unsigned char *rgb);

#endif
