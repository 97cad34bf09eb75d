/*
 * jobs/queue.h — the server's local job queue: a pool of worker threads that
 * take jobs from the database (store/jobs.h), run the pipeline on them with a
 * live progress state, and write every change as an ordered event.
 *
 * The database is the queue; this object only holds the threads, the cancel
 * flags of running jobs and a change counter (m2p_queue_version) that live
 * views poll to learn that new events were written.
 *
 * Worker states (one per thread):
 *
 *   idle ──claim──► running job J ──pipeline returns──► finish/requeue ──► idle
 *     ▲                 │ cancel(J): flag set → pipeline stops at the next step
 *     └─────────────────┘ stop(): every flag set → J requeued, attempt not counted
 *
 * Stages: the workers take the job stages of worker_role (all, cpu =
 * analyze only, gpu = render only; store/jobs.h). A worker that can render
 * runs an analysed job on to the end under the same claim; a cpu-only one
 * hands it to the render queue.
 *
 * Retry policy: a transient failure (m2p_err_transient) with attempts left is
 * requeued with not_before = now + retry_base_s * 2^(attempt-1) (capped at
 * 300 s) times a random factor in [0.5, 1.5); a permanent one fails at once.
 * A job that got as far as its prompt but no image ends "partial".
 */
#ifndef M2P_JOBS_QUEUE_H
#define M2P_JOBS_QUEUE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "pipeline/pipeline.h"
#include "store/jobs.h"

typedef struct m2p_queue m2p_queue;

/* Counters for /metrics (monotonic since start). */
typedef struct m2p_queue_stats {
    uint64_t jobs_started, jobs_succeeded, jobs_failed, jobs_cancelled, jobs_partial, jobs_retried;
    uint64_t events;
    double step_seconds_sum[M2P_STEP_COUNT];
    uint64_t step_count[M2P_STEP_COUNT];
    uint64_t features_cached, features_computed;
    uint64_t audio_cache_hits, audio_cache_misses;
    int busy_workers;
    int workers;
    /* renderers created in this process (the pipeline creates each once and keeps it):
     * bit 0 sonic, bit 1 lcm; their count is the number of model loads */
    unsigned renderers_loaded;
} m2p_queue_stats;

/* Creates the queue for cfg (workers = cfg->workers) over pipeline (not owned;
 * must outlive the queue). Recovers jobs left running by a previous process.
 * Threads start with m2p_queue_start. */
m2p_code m2p_queue_create(const m2p_config *cfg, m2p_pipeline *pipeline, m2p_queue **out, m2p_error *err) M2P_WUR;
m2p_code m2p_queue_start(m2p_queue *q, m2p_error *err) M2P_WUR;
/* Starts only the first n workers (0: an API-only process that enqueues and
 * serves while separate `mus2pic worker` processes run the jobs). */
m2p_code m2p_queue_start_workers(m2p_queue *q, int n, m2p_error *err) M2P_WUR;

/* Distributed mode: the store is shared (PostgreSQL), so several processes on
 * several hosts run jobs from one queue. Each claim holds a lease renewed by
 * a heartbeat thread every min(lease/3, 0.5) s (which also picks up cancels requested
 * on other hosts); a job whose worker died is taken over by another worker
 * once its lease is older than lease_s, as a new attempt (attempts counted in
 * the database, fencing as in store/jobs.h), and fails job_interrupted when
 * its attempts are used up. No start-up recovery in this mode. */
#define M2P_QUEUE_DEFAULT_LEASE_S 30.0
bool m2p_queue_is_shared(const m2p_queue *q);
/* worker_role → the stages (M2P_STAGES_*) its workers take: "all" (or empty)
 * both, "cpu" analyze only (never loads the model), "gpu" render only.
 * False for anything else. m2p_queue_create reads cfg->worker_role. */
bool m2p_queue_role_parse(const char *role, unsigned *stages);

/* Sets the lease (seconds, > 0) before m2p_queue_start; ignored in local mode. */
void m2p_queue_set_lease(m2p_queue *q, double lease_s);
/* Graceful stop: running jobs are asked to stop at their next step boundary
 * and go back to queued without counting the attempt; joins every worker. */
void m2p_queue_stop(m2p_queue *q);
/* Stops (if needed) and frees; q may be NULL. */
void m2p_queue_free(m2p_queue *q);

/* Tells idle workers that a job may be ready. */
void m2p_queue_wake(m2p_queue *q);

/* Cancels job id (queued: at once; running: its worker stops at the next step
 * or denoising step). Errors: M2P_E_JOB_NOT_FOUND, M2P_E_JOB_STATE. */
m2p_code m2p_queue_cancel(m2p_queue *q, m2p_store *s, int64_t id, m2p_error *err) M2P_WUR;

/* Appends an event for job id through store s (the caller's thread's handle)
 * and bumps the change counter. data may be NULL. */
m2p_code m2p_queue_emit(m2p_queue *q, m2p_store *s, int64_t id, const char *type, json_t *data, bool queue_too,
                        m2p_error *err) M2P_WUR;

/* A job object (m2p_store_job_get) as clients get it: the live preview's
 * image bytes (progress.preview.data, base64) are replaced by its URL
 * (progress.preview.url = /api/jobs/{id}/preview?...), so job JSON stays
 * small; GET /api/jobs/{id}/preview serves the bytes. */
void m2p_queue_job_public(json_t *job);

/* Bumps the change counter (live views look for new events) and wakes idle
 * workers: call after committing a job (m2p_store_job_insert writes its event). */
void m2p_queue_notify(m2p_queue *q);

/* Monotonic counter bumped after every event written through this queue. */
uint64_t m2p_queue_version(const m2p_queue *q);

void m2p_queue_get_stats(m2p_queue *q, m2p_queue_stats *out);

/* Records that the pipeline created renderer name ("sonic", "lcm"), e.g. at --warmup. */
void m2p_queue_note_renderer(m2p_queue *q, const char *name);

/* The normalised job spec (JSON object as stored) → a pipeline spec whose
 * strings point into spec_json (which must outlive it). out_dir is written
 * into out_dir_buf. Exposed for tests. */
m2p_code m2p_queue_spec_from_json(const json_t *spec_json, const m2p_config *cfg, int64_t job_id, m2p_job_spec *out,
                                  char *out_dir_buf, size_t cap, m2p_error *err) M2P_WUR;

/* Backoff before attempt+1 after a transient failure of attempt (1-based):
 * base * 2^(attempt-1), capped at 300 s, times jitter in [0.5, 1.5). */
double m2p_queue_backoff(double base_s, int attempt, double jitter01);

#endif
