/*
 * diffusion/pull.h — downloading a diffusers model folder (`mus2pic model pull`).
 *
 * Files come from {hf_endpoint}/{id}/resolve/main/{path} with libcurl into
 * <data_dir>/models/<id>/. The file list is the repository's `siblings`
 * (GET {hf_endpoint}/api/models/{id}) filtered to what the engine needs, or
 * the fixed diffusers list when the API does not answer.
 *
 * Each file is written to <file>.part and renamed into place only when it is
 * complete and checked: the size against X-Linked-Size / Content-Range /
 * Content-Length, and the SHA-256 against X-Linked-ETag (Hugging Face gives it
 * for LFS files, i.e. every weight file). An interrupted download resumes from
 * the .part with an HTTP Range request (in the same run, up to `retries`
 * times, and in the next run). Files already in place are skipped. The model
 * folder counts as present only when every file is there
 * (m2p_nn_model_check), so a half-finished pull is never used. One pull per
 * folder at a time (a lock file).
 *
 * A single-component repository (madebyollin/taesd: config.json +
 * diffusion_pytorch_model[.fp16].safetensors at the top; recognised from the
 * listing, or by a name starting with "taesd" when the API does not answer)
 * is pulled the same way into <data_dir>/models/<id>/ — where the lcm
 * renderer looks for TAESD by default (diffusion/taesd.h).
 */
#ifndef M2P_DIFFUSION_PULL_H
#define M2P_DIFFUSION_PULL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/error.h"
#include "core/progress.h"

typedef struct m2p_nn_pull_opts {
    bool fp16;   /* prefer the *.fp16.safetensors weight variants when the repository has them */
    int retries; /* extra attempts per file after a network error (resuming); 0 = none */
} m2p_nn_pull_opts;

/* True when id looks like "owner/name" with [A-Za-z0-9._-] parts (no "..",
 * no leading dot or dash, each part ≤ 96 characters). */
bool m2p_nn_model_id_valid(const char *id);

/* Downloads model id (NULL → cfg->model_id) into <data_dir>/models/<id>/,
 * writing the folder into dir_out (may be NULL). progress (may be NULL) gets
 * M2P_STEP_FETCH reports in bytes per file, with the file name as message,
 * and is checked for cancellation. Errors: INVALID_ARG (bad id or endpoint),
 * MODEL_DOWNLOAD (network, HTTP status, size mismatch; the .part is kept for
 * resuming), MODEL_HASH (checksum mismatch; the .part is deleted), IO,
 * CANCELLED. */
m2p_code m2p_nn_pull(const m2p_config *cfg, const char *id, const m2p_nn_pull_opts *opts,
                     const m2p_progress *progress, char *dir_out, size_t dir_cap, m2p_error *err) M2P_WUR;

#endif
