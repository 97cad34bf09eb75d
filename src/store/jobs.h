/*
 * store/jobs.h — what the service keeps about jobs, beside tracks and analyses:
 * jobs (the persistent queue), their event logs, images, batches, the user's
 * settings, user templates and measured step durations (for ETAs).
 *
 * The database is the queue. A job row is committed before the API answers;
 * workers take jobs with an atomic claim (one UPDATE ... RETURNING that moves
 * the oldest runnable queued row to running and counts the attempt). The
 * attempt number taken by the claim is the fencing token of every later
 * write by that worker: finish/requeue only touch a row that is still
 * running that same attempt, so a job never completes twice, and images are
 * unique per (job, index) (INSERT OR IGNORE), so completion is idempotent.
 *
 * Job lifecycle (status column):
 *
 *   queued ──claim──► running ──finish(ok)──────────► succeeded
 *     ▲  │              │ ├───finish(render failed,    partial
 *     │  │              │ │    prompt kept)──────────►
 *     │  │              │ ├───finish(permanent error,
 *     │  │              │ │    or attempts used up)──► failed
 *     │  │              │ └───finish(cancelled)──────► cancelled
 *     │  └─cancel───────┼────────────────────────────► cancelled
 *     ├────requeue──────┘ (transient error: not_before = now + backoff;
 *     │                    shutdown: attempt not counted)
 *     ├────recover (at start: running rows of a crashed process, while
 *     │             attempts < max_attempts; else failed job_interrupted)
 *     └────retry (failed, cancelled, partial; attempts reset)
 *
 * Stages (migration 5): a job is first in stage "analyze" (source, fetch,
 * decode, analysis, prompt: CPU work) and then in stage "render" (render and
 * store from the stored features, prompt and track, without the audio:
 * GPU work). Claims can be restricted to stages, so CPU workers and GPU
 * workers take separate queues. m2p_store_job_advance ends the analyze
 * stage: the row keeps its claim (a worker that renders too, no round trip)
 * or goes back to queued in stage render (it waits there, never fails, until
 * a render worker claims it). attempts counts every claim of the job and
 * stays the fencing token. A handoff gives the render stage max_attempts
 * attempts of its own (stage_base = the attempts the analysis used; claims
 * need attempts - stage_base < max_attempts); a worker that keeps the job
 * across the stages keeps one budget for the whole job, as before stages
 * existed. retry starts at analyze again.
 *
 *   analyze ──advance(keep)──► render (still running, same worker)
 *      └─────advance────────► render, queued ──claim(render)──► running
 *
 * Every state change and progress report appends a row to job_events with a
 * per-job sequence number (jobs.event_seq) and, for state changes, a row to
 * queue_events (global sequence); WebSocket clients replay from either.
 *
 * All functions take a store handle used by one thread at a time (store.h).
 * JSON results are jansson references owned by the caller (json_decref).
 */
#ifndef M2P_STORE_JOBS_H
#define M2P_STORE_JOBS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "store/store.h"

typedef enum m2p_job_status {
    M2P_JOB_QUEUED = 0,
    M2P_JOB_RUNNING,
    M2P_JOB_SUCCEEDED,
    M2P_JOB_FAILED,
    M2P_JOB_CANCELLED,
    M2P_JOB_PARTIAL
} m2p_job_status;

/* "queued", "running", ...; never NULL. */
const char *m2p_job_status_name(m2p_job_status s);
/* False when name is not a status. */
bool m2p_job_status_parse(const char *name, m2p_job_status *out);

/* Schema: migration 2 in store/migrations.c ("jobs, images, batches, ..."). */

/* ---- jobs ------------------------------------------------------------------------------- */

typedef struct m2p_job_new {
    const char *spec_json;    /* required: the normalised job spec */
    const char *request_hash; /* may be NULL */
    const char *source;       /* for listing/filtering (URL or upload name) */
    const char *style;
    const char *client;       /* client address */
    int max_attempts;
    int64_t batch_id;         /* 0: none */
} m2p_job_new;

/* Inserts a queued job and its first event ("state", status "queued", seq 1,
 * also on the queue stream) in one transaction. */
m2p_code m2p_store_job_insert(m2p_store *s, const m2p_job_new *nj, int64_t *id_out, m2p_error *err) M2P_WUR;

/* The newest succeeded job with this request hash: *id_out, or M2P_E_NOT_FOUND. */
m2p_code m2p_store_job_find_hash(m2p_store *s, const char *request_hash, int64_t *id_out, m2p_error *err) M2P_WUR;

/* Full job JSON (row, spec, progress, result, error, images, queue position).
 * M2P_E_JOB_NOT_FOUND when absent. */
m2p_code m2p_store_job_get(m2p_store *s, int64_t id, json_t **out, m2p_error *err) M2P_WUR;

typedef struct m2p_job_filter {
    const char *status; /* NULL: any */
    const char *source; /* substring */
    const char *style;
    double from, to;    /* created_at range, Unix seconds; 0: open */
    int64_t batch_id;   /* 0: any */
    int limit;          /* 1..500 (clamped) */
    int offset;
} m2p_job_filter;

/* {"jobs": [...], "total": N}. */
m2p_code m2p_store_job_list(m2p_store *s, const m2p_job_filter *f, json_t **out, m2p_error *err) M2P_WUR;

typedef enum m2p_job_stage { M2P_STAGE_ANALYZE = 0, M2P_STAGE_RENDER = 1 } m2p_job_stage;

/* Stage masks for claims. */
#define M2P_STAGES_ANALYZE 1u
#define M2P_STAGES_RENDER 2u
#define M2P_STAGES_ALL 3u

/* "analyze" or "render"; never NULL. */
const char *m2p_job_stage_name(m2p_job_stage st);
/* False when name is not a stage. */
bool m2p_job_stage_parse(const char *name, m2p_job_stage *out);

/* What a worker gets from a claim. spec_json and stage_json are owned (m2p_free). */
typedef struct m2p_job_claim {
    int64_t id;
    int attempt; /* attempts after this claim (the fencing token) */
    int max_attempts;
    char *spec_json;
    m2p_job_stage stage; /* the stage this claim runs */
    char *stage_json;    /* render stage: what the analyze stage stored (NULL before) */
} m2p_job_claim;

/* Atomically moves the oldest queued job with not_before <= now to running.
 * M2P_E_NOT_FOUND when there is none (or the queue is paused). */
m2p_code m2p_store_job_claim(m2p_store *s, double now, m2p_job_claim *out, m2p_error *err) M2P_WUR;
void m2p_job_claim_clear(m2p_job_claim *c);

/* Distributed workers (several processes or hosts): as claim, but a running
 * job whose lease ran out (updated_at older than now - lease_s: its worker
 * stopped sending heartbeats) is taken over as the next attempt while it has
 * attempts left, and failed with job_interrupted (event written) once they
 * are used up. lease_s 0: same as m2p_store_job_claim. The attempt number
 * fences the old worker out: its finish/requeue no longer match. */
m2p_code m2p_store_job_claim_lease(m2p_store *s, double now, double lease_s, m2p_job_claim *out,
                                   m2p_error *err) M2P_WUR;

/* Claims job id only (the broker delivered it): as claim_lease restricted to
 * that row. M2P_E_NOT_FOUND when it is not runnable (done, cancelled,
 * running with a live lease, paused queue, backoff not over). */
m2p_code m2p_store_job_claim_id(m2p_store *s, int64_t id, double now, double lease_s, m2p_job_claim *out,
                                m2p_error *err) M2P_WUR;
/* As claim_lease (only_id 0) or claim_id (only_id > 0), restricted to the
 * stages in the mask (M2P_STAGES_*): a CPU worker claims analyze-stage rows
 * only, a GPU worker render-stage rows only. */
m2p_code m2p_store_job_claim_stage(m2p_store *s, int64_t only_id, unsigned stages, double now, double lease_s,
                                   m2p_job_claim *out, m2p_error *err) M2P_WUR;
/* Ends the analyze stage of a running attempt (fenced like finish): stage
 * becomes render with stage_json (the stored analysis, prompt and track, see
 * pipeline.h) and the error fields are cleared. keep: the row stays running
 * under the same claim (the caller renders next); else it is queued in stage
 * render. *applied false: the row moved on, or a cancel was requested (the
 * caller then ends the attempt as cancelled). */
m2p_code m2p_store_job_advance(m2p_store *s, int64_t id, int attempt, const char *stage_json, bool keep,
                               bool *applied, m2p_error *err) M2P_WUR;
/* As m2p_store_job_runnable, also giving each job's stage (stages may be NULL). */
m2p_code m2p_store_job_runnable_stages(m2p_store *s, double now, double lease_s, int64_t *ids, m2p_job_stage *stages,
                                       size_t cap, size_t *n, m2p_error *err) M2P_WUR;
/* Fails running jobs whose lease expired with their attempts used up (job_interrupted, event written). */
m2p_code m2p_store_job_expire(m2p_store *s, double now, double lease_s, m2p_error *err) M2P_WUR;
/* Ids of runnable jobs (queued and due, or running with an expired lease and
 * attempts left), oldest first, at most cap; none while the queue is paused. */
m2p_code m2p_store_job_runnable(m2p_store *s, double now, double lease_s, int64_t *ids, size_t cap, size_t *n,
                                m2p_error *err) M2P_WUR;
/* A poison job (the broker delivered it too often): queued or running → failed
 * job_interrupted with detail, event written; *applied false when it was done already. */
m2p_code m2p_store_job_fail_poison(m2p_store *s, int64_t id, const char *detail, bool *applied,
                                   m2p_error *err) M2P_WUR;

/* Renews the lease of a running attempt (updated_at = now). *cancel: a cancel
 * was requested (from any host); *lost: the row is no longer running this
 * attempt (taken over, or finished), so the worker should stop. */
m2p_code m2p_store_job_heartbeat(m2p_store *s, int64_t id, int attempt, double now, bool *cancel, bool *lost,
                                 m2p_error *err) M2P_WUR;

/* One image of a finished job. */
typedef struct m2p_image_row {
    int index;
    uint32_t seed;
    const char *path;
    int width, height;
    const char *prompt, *style, *renderer, *model;
    const char *metadata_json; /* may be NULL */
    int64_t track_id;
    const char *source;
    double tempo;
    const char *key, *mode;
    /* the PNG's bytes, stored in the database (image_data) when not NULL: the
     * distributed mode, where API hosts share no filesystem with workers */
    const unsigned char *png;
    size_t png_len;
} m2p_image_row;

typedef struct m2p_job_outcome {
    m2p_job_status status;     /* succeeded, partial, failed or cancelled */
    m2p_code code;             /* M2P_OK for succeeded */
    const char *detail;        /* may be NULL */
    const char *result_json;   /* may be NULL */
    int64_t track_id;
    const m2p_image_row *images;
    size_t n_images;
    const char *progress_json; /* may be NULL: the final live state, written with the status so a
                                  reader never sees a finished job with a stale snapshot */
} m2p_job_outcome;

/* Ends the attempt: in one transaction the row (still running this attempt)
 * gets its final status, error and result, and the images are inserted
 * (unique per job and index). *applied is false when the row had moved on
 * (nothing changed). */
m2p_code m2p_store_job_finish(m2p_store *s, int64_t id, int attempt, const m2p_job_outcome *o, bool *applied,
                              m2p_error *err) M2P_WUR;

/* Puts a running attempt back to queued: not_before = when; the failure's code
 * and detail are kept; uncount=true gives the attempt back (shutdown). */
m2p_code m2p_store_job_requeue(m2p_store *s, int64_t id, int attempt, double when, m2p_code code, const char *detail,
                               bool uncount, m2p_error *err) M2P_WUR;

/* Cancels a queued job (→ cancelled) or flags a running one (cancel_requested;
 * *was_running = true: the worker stops it). Terminal → M2P_E_JOB_STATE. */
m2p_code m2p_store_job_cancel(m2p_store *s, int64_t id, bool *was_running, m2p_error *err) M2P_WUR;
/* failed / cancelled / partial → queued with attempts reset. */
m2p_code m2p_store_job_retry(m2p_store *s, int64_t id, m2p_error *err) M2P_WUR;
/* Deletes a job that is not running, its events and its image rows (files are
 * the caller's). */
m2p_code m2p_store_job_delete(m2p_store *s, int64_t id, m2p_error *err) M2P_WUR;

/* At start: running rows (a crashed or killed process) go back to queued
 * while attempts < max_attempts, else fail with job_interrupted. */
m2p_code m2p_store_job_recover(m2p_store *s, int *requeued, int *failed, m2p_error *err) M2P_WUR;

/* Whether a cancel was requested for the job. */
m2p_code m2p_store_job_cancel_requested(m2p_store *s, int64_t id, bool *out, m2p_error *err) M2P_WUR;

/* Appends an event (type + data object, which gets "seq", "type", "job_id",
 * "at" added) and, when progress_json is not NULL, replaces the job's live
 * state snapshot, in one transaction. queue_too also appends it to the
 * queue-wide log. *seq_out (may be NULL) gets the event's sequence number. */
m2p_code m2p_store_job_event(m2p_store *s, int64_t id, const char *type, json_t *data, const char *progress_json,
                             bool queue_too, int64_t *seq_out, m2p_error *err) M2P_WUR;
/* Events with seq > since, oldest first, at most limit: a JSON array. */
m2p_code m2p_store_job_events(m2p_store *s, int64_t id, int64_t since, int limit, json_t **out, m2p_error *err) M2P_WUR;
/* Latest event seq of a job (0 when none); M2P_E_JOB_NOT_FOUND when absent. */
m2p_code m2p_store_job_seq(m2p_store *s, int64_t id, int64_t *seq, m2p_error *err) M2P_WUR;
/* Queue-wide events with seq > since. */
m2p_code m2p_store_queue_events(m2p_store *s, int64_t since, int limit, json_t **out, m2p_error *err) M2P_WUR;
m2p_code m2p_store_queue_seq(m2p_store *s, int64_t *seq, m2p_error *err) M2P_WUR;

/* {"queued": n, "running": n, ...} */
m2p_code m2p_store_job_counts(m2p_store *s, json_t **out, m2p_error *err) M2P_WUR;
/* Live jobs by stage: {"analyze": {"queued": n, "running": n}, "render": {...}};
 * render.queued is the work waiting for a render (GPU) worker. */
m2p_code m2p_store_job_stage_counts(m2p_store *s, json_t **out, m2p_error *err) M2P_WUR;

/* ---- step durations (ETA) ---------------------------------------------------------------- */

/* Adds one measured duration to the running mean of (step, renderer, size). */
m2p_code m2p_store_step_stat_add(m2p_store *s, const char *step, const char *renderer, const char *size,
                                  double seconds, m2p_error *err) M2P_WUR;
/* The running mean, or *found = false. */
m2p_code m2p_store_step_stat_get(m2p_store *s, const char *step, const char *renderer, const char *size,
                                 double *mean, bool *found, m2p_error *err) M2P_WUR;
/* All stats as [{step, renderer, size, n, mean_s}]. */
m2p_code m2p_store_step_stats(m2p_store *s, json_t **out, m2p_error *err) M2P_WUR;

/* ---- images ------------------------------------------------------------------------------ */

/* Image JSON (with path); M2P_E_IMAGE_NOT_FOUND when absent. */
m2p_code m2p_store_image_get(m2p_store *s, int64_t id, json_t **out, m2p_error *err) M2P_WUR;

/* The PNG bytes stored for image id (*png: m2p_free); M2P_E_IMAGE_NOT_FOUND when none. */
m2p_code m2p_store_image_data(m2p_store *s, int64_t id, unsigned char **png, size_t *len, m2p_error *err) M2P_WUR;

/* Uploaded audio by content hash, for workers on hosts without the API's
 * folder (distributed mode). put: stored once (a second put is a no-op);
 * get: *data is m2p_free'd by the caller, M2P_E_NOT_FOUND when absent. */
m2p_code m2p_store_upload_put(m2p_store *s, const char *sha256, const void *data, size_t len,
                              m2p_error *err) M2P_WUR;
m2p_code m2p_store_upload_get(m2p_store *s, const char *sha256, unsigned char **data, size_t *len,
                              m2p_error *err) M2P_WUR;
/* Whether an upload with this hash is stored (no bytes read). */
m2p_code m2p_store_upload_exists(m2p_store *s, const char *sha256, bool *found, m2p_error *err) M2P_WUR;

typedef struct m2p_image_filter {
    const char *style, *key, *mode, *q, *source;
    double tempo_min, tempo_max; /* 0: open */
    double from, to;
    int64_t job_id, batch_id;    /* 0: any */
    int limit, offset;
} m2p_image_filter;

/* {"images": [...], "total": N}, newest first. */
m2p_code m2p_store_images_query(m2p_store *s, const m2p_image_filter *f, json_t **out, m2p_error *err) M2P_WUR;

/* ---- batches ----------------------------------------------------------------------------- */

m2p_code m2p_store_batch_create(m2p_store *s, const char *client, int n_items, int64_t *id_out,
                                m2p_error *err) M2P_WUR;
/* {"id", "created_at", "counts": {...}, "done": k, "total": n, "jobs": [ids]}. */
m2p_code m2p_store_batch_get(m2p_store *s, int64_t id, json_t **out, m2p_error *err) M2P_WUR;

/* ---- settings (key/value) and the queue's pause flag --------------------------------------- */

/* All settings as a JSON object of strings. */
m2p_code m2p_store_settings_get(m2p_store *s, json_t **out, m2p_error *err) M2P_WUR;
/* value NULL deletes the key. */
m2p_code m2p_store_setting_put(m2p_store *s, const char *key, const char *value, m2p_error *err) M2P_WUR;
m2p_code m2p_store_setting_get(m2p_store *s, const char *key, char *buf, size_t cap, bool *found,
                               m2p_error *err) M2P_WUR;

/* ---- user templates ------------------------------------------------------------------------ */

m2p_code m2p_store_template_put(m2p_store *s, int64_t id, const char *name, const char *text, int64_t *id_out,
                                m2p_error *err) M2P_WUR; /* id 0: insert */
m2p_code m2p_store_template_get(m2p_store *s, int64_t id, json_t **out, m2p_error *err) M2P_WUR;
m2p_code m2p_store_template_find(m2p_store *s, const char *name, json_t **out, m2p_error *err) M2P_WUR;
m2p_code m2p_store_template_list(m2p_store *s, json_t **out, m2p_error *err) M2P_WUR;
m2p_code m2p_store_template_delete(m2p_store *s, int64_t id, m2p_error *err) M2P_WUR;

/* ---- tracks (for the audio routes) ---------------------------------------------------------- */

/* Path and content type hint of a stored track's audio file (buf), or M2P_E_NOT_FOUND. */
m2p_code m2p_store_track_path(m2p_store *s, int64_t id, char *buf, size_t cap, m2p_error *err) M2P_WUR;

#endif
