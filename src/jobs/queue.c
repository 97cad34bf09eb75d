/*
 * jobs/queue.c — worker pool of the persistent job queue, local or
 * distributed.
 *
 * Each worker thread owns one store handle and loops: claim a job (atomic in
 * the database), run m2p_pipeline_make with progress callbacks that keep the
 * job's live state (step, fraction, per-step times, ETA, findings) and write
 * it as ordered events, then finish or requeue the attempt with the claim's
 * attempt number as fencing token (store/jobs.h). See queue.h for the worker
 * state diagram and the retry policy.
 *
 * Invariants:
 *  - worker.job_id is non-zero exactly while the worker runs that job, and is
 *    read and written under q->mu (cancel looks the worker up by it);
 *  - every event goes through emit(), which bumps q->version after the commit,
 *    so a live view that sees a new version finds the event in the database;
 *  - a job's live state is touched only by the worker running it.
 *
 * Stages (worker_role; docs/notes/scale.md): a claim runs one stage of a
 * job. Analyze: m2p_pipeline_prompt, then (shared store) the track's audio
 * into uploads, then m2p_store_job_advance with the stage data; a process
 * whose workers also render keeps the claim and renders at once (no round
 * trip through the queue, the in-memory features and prompt are used), a
 * cpu-only process hands the job over (queued in stage render, event
 * "Analysis done, waiting for a render worker") and forgets it. Render:
 * m2p_pipeline_stage_restore (stored features, prompt, track; no audio),
 * m2p_pipeline_render, finish as before. Workers claim only the stages of
 * q->stages; every event of a claim names the stage and the worker
 * (w->name = host-pid-index).
 *
 * Distributed mode (shared PostgreSQL store; docs/notes/scale.md):
 *  - claims hold a lease; the heartbeat thread renews it for every running
 *    (job, attempt), reads cancels requested on other hosts, and stops an
 *    attempt that lost its row; no start-up recovery (expired leases are
 *    taken over by claims instead);
 *  - queue=redis: workers take ids from the streams of their stages
 *    (jobs/broker.h), claim that id in the database for that stage and XACK
 *    only after the outcome (or the handoff to the render stage) is committed;
 *    worker.entry is the stream entry of worker.job_id (under q->mu) so the
 *    heartbeat keeps it claimed; the reconciler thread XADDs runnable jobs
 *    missing from the stream; the subscriber thread bumps q->version when
 *    another process published an event.
 */
#include "jobs/queue.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/fs.h"
#include "core/log.h"
#include "jobs/broker.h"

#define PROGRESS_FLUSH_S 0.25 /* at most ~4 progress events a second per job */
#define MAX_FINDINGS 64
/* An encoded live preview larger than this is not published (256² frames of the
 * tiny test model are ≈ 8 KB at quality 60). */
#define PREVIEW_MAX_BYTES (48u * 1024u)

typedef struct worker {
    m2p_queue *q;
    pthread_t thread;
    bool started;
    m2p_store *store;
    int64_t job_id; /* guarded by q->mu */
    int attempt;    /* of job_id; guarded by q->mu */
    char entry[48]; /* redis mode: the stream entry of job_id; guarded by q->mu */
    m2p_job_stage entry_stage; /* redis mode: the stream (stage) of entry; guarded by q->mu */
    char name[128];     /* "<host>-<pid>-<index>": recorded in the events of the stages it runs */
    char consumer[128]; /* redis mode: its consumer name in the group */
    m2p_broker *broker; /* redis mode: this worker's consumer connection */
    double backoff;     /* redis mode: wait after a broker failure (s) */
    atomic_bool cancel;
    uint64_t rng;
} worker;

struct m2p_queue {
    m2p_config cfg;
    m2p_pipeline *pipeline;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping; /* guarded by mu */
    bool started;
    int n_workers;
    worker *workers;
    atomic_uint_fast64_t version;
    m2p_queue_stats stats; /* guarded by mu */
    /* distributed mode (shared PostgreSQL store): claims carry a lease that a
     * heartbeat thread renews; 0 = local mode (recovery at start instead) */
    double lease_s;
    bool shared;
    m2p_store *hb_store; /* the heartbeat thread's handle */
    pthread_t hb_thread;
    bool hb_started;
    /* redis mode (queue=redis): jobs are delivered through a Redis Stream
     * (jobs/broker.h); events are also published for other API processes */
    atomic_int n_started; /* worker threads started (for /metrics) */
    bool redis;
    m2p_broker *hb_broker; /* the heartbeat thread's (XCLAIM JUSTID) */
    m2p_broker *pub;       /* guarded by pub_mu */
    pthread_mutex_t pub_mu;
    m2p_broker *rc_broker; /* the reconciler's */
    m2p_store *rc_store;
    pthread_t rc_thread, sub_thread;
    bool rc_started, sub_started;
    pthread_cond_t rc_cv; /* with mu: wakes the reconciler (a job was submitted) */
    bool rc_kick;         /* guarded by mu */
    /* worker_role: the stages this process's workers take (M2P_STAGES_*) */
    unsigned stages;
};

/* ---- small helpers ------------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

double m2p_queue_backoff(double base_s, int attempt, double jitter01) {
    if (attempt < 1) {
        attempt = 1;
    }
    if (attempt > 20) {
        attempt = 20;
    }
    double d = base_s * ldexp(1.0, attempt - 1);
    if (d > 300.0) {
        d = 300.0;
    }
    if (jitter01 < 0) {
        jitter01 = 0;
    }
    if (jitter01 > 1) {
        jitter01 = 1;
    }
    return d * (0.5 + jitter01);
}

uint64_t m2p_queue_version(const m2p_queue *q) {
    return atomic_load(&q->version);
}

/* Redis mode: tells the other processes (their live views) that job id has
 * event seq. Best effort: they also poll the database. */
static void publish(m2p_queue *q, int64_t id, int64_t seq) {
    if (!q->redis) {
        return;
    }
    m2p_error e;
    m2p_error_clear(&e);
    (void)pthread_mutex_lock(&q->pub_mu);
    m2p_code c = q->pub != NULL ? M2P_OK : m2p_broker_open(&q->cfg, NULL, &q->pub, &e);
    if (c == M2P_OK) {
        c = m2p_broker_publish(q->pub, id, seq, &e);
    }
    (void)pthread_mutex_unlock(&q->pub_mu);
    if (c != M2P_OK) {
        M2P_DEBUG("jobs", "event of job %lld not published: %s", (long long)id, e.detail);
    }
}

m2p_code m2p_queue_emit(m2p_queue *q, m2p_store *s, int64_t id, const char *type, json_t *data, bool queue_too,
                        m2p_error *err) {
    int64_t seq = 0;
    m2p_code c = m2p_store_job_event(s, id, type, data, NULL, queue_too, &seq, err);
    if (c == M2P_OK) {
        atomic_fetch_add(&q->version, 1);
        publish(q, id, seq);
    }
    return c;
}

void m2p_queue_note_renderer(m2p_queue *q, const char *name) {
    unsigned bit = 0;
    if (name != NULL && strcmp(name, "sonic") == 0) {
        bit = 1u;
    } else if (name != NULL && strcmp(name, "lcm") == 0) {
        bit = 2u;
    }
    (void)pthread_mutex_lock(&q->mu);
    q->stats.renderers_loaded |= bit;
    (void)pthread_mutex_unlock(&q->mu);
}

void m2p_queue_notify(m2p_queue *q) {
    atomic_fetch_add(&q->version, 1);
    if (q->redis) {
        /* a job was committed: the reconciler XADDs it now */
        (void)pthread_mutex_lock(&q->mu);
        q->rc_kick = true;
        (void)pthread_cond_signal(&q->rc_cv);
        (void)pthread_mutex_unlock(&q->mu);
    }
    m2p_queue_wake(q);
}

void m2p_queue_wake(m2p_queue *q) {
    (void)pthread_mutex_lock(&q->mu);
    (void)pthread_cond_broadcast(&q->cv);
    (void)pthread_mutex_unlock(&q->mu);
}

void m2p_queue_get_stats(m2p_queue *q, m2p_queue_stats *out) {
    (void)pthread_mutex_lock(&q->mu);
    *out = q->stats;
    out->workers = atomic_load(&q->n_started); /* an API-only process (serve --no-workers) reports 0 */
    out->busy_workers = 0;
    for (int i = 0; i < q->n_workers; i++) {
        if (q->workers[i].job_id != 0) {
            out->busy_workers++;
        }
    }
    out->events = atomic_load(&q->version);
    (void)pthread_mutex_unlock(&q->mu);
}

/* ---- spec ------------------------------------------------------------------------------------ */

static const char *opt_str(const json_t *o, const char *key) {
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL && s[0] != '\0' ? s : NULL;
}

static int opt_int(const json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int)json_integer_value(v) : 0;
}

m2p_code m2p_queue_spec_from_json(const json_t *j, const m2p_config *cfg, int64_t job_id, m2p_job_spec *out,
                                  char *out_dir_buf, size_t cap, m2p_error *err) {
    memset(out, 0, sizeof *out);
    if (!json_is_object(j)) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "job spec is not an object");
    }
    out->source = opt_str(j, "source");
    out->upload_path = opt_str(j, "upload_path");
    out->upload_name = opt_str(j, "upload_name");
    if (out->source == NULL && out->upload_path == NULL) {
        return m2p_error_set(err, M2P_E_URL_EMPTY, "job %lld has no source", (long long)job_id);
    }
    out->allow_paths = false;
    out->style = opt_str(j, "style");
    out->template_text = opt_str(j, "template");
    out->renderer = opt_str(j, "renderer");
    out->n = opt_int(j, "variations");
    out->width = opt_int(j, "width");
    out->height = opt_int(j, "height");
    out->steps = opt_int(j, "steps");
    json_t *g = json_object_get(j, "guidance");
    out->guidance = json_is_number(g) ? json_number_value(g) : 0.0;
    json_t *seed = json_object_get(j, "seed");
    if (json_is_integer(seed)) {
        out->seed = (uint32_t)json_integer_value(seed);
        out->seed_set = true;
    }
    out->layout = json_is_true(json_object_get(j, "layout"));
    out->per_section = json_is_true(json_object_get(j, "per_section"));
    char images[M2P_PATH_MAX];
    (void)m2p_config_subdir(cfg, "images", images, sizeof images);
    int n = snprintf(out_dir_buf, cap, "%s/job-%lld", images, (long long)job_id);
    if (n < 0 || (size_t)n >= cap) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "image folder path too long");
    }
    out->out_dir = out_dir_buf;
    out->file_prefix = "image";
    return M2P_OK;
}

/* ---- one running job: live state and progress callbacks ------------------------------------- */

typedef struct run_ctx {
    worker *w;
    int64_t id;
    int attempt;
    json_t *state; /* the live state (progress column) */
    int cur_step;  /* -1 before the first report */
    double step_started;
    double last_flush;
    double job_started;
    double elapsed[M2P_STEP_COUNT];
    bool done[M2P_STEP_COUNT];
    double mean[M2P_STEP_COUNT];
    bool have_mean[M2P_STEP_COUNT];
    double fraction;
    bool got_prompt;
    int images_saved;
    int n_images;
    char renderer[16];
    char size[32];
} run_ctx;

static double eta_seconds(const run_ctx *r, bool *known) {
    *known = true;
    double eta = 0;
    for (int s = r->cur_step < 0 ? 0 : r->cur_step; s < M2P_STEP_COUNT; s++) {
        if (r->done[s]) {
            continue;
        }
        if (!r->have_mean[s]) {
            if (s == M2P_STEP_FETCH) {
                continue; /* uploads and cached songs skip it; unknown cost is small */
            }
            *known = false;
            return 0;
        }
        double part = r->mean[s];
        if (s == r->cur_step) {
            double spent = m2p_now_monotonic() - r->step_started;
            double left = part * (1.0 - r->fraction);
            if (part - spent > left) {
                left = part - spent;
            }
            part = left > 0 ? left : 0;
        }
        eta += part;
    }
    return eta;
}

static void refresh_state(run_ctx *r) {
    json_t *steps = json_object();
    for (int s = 0; steps != NULL && s < M2P_STEP_COUNT; s++) {
        const char *st = r->done[s] ? "done" : (s == r->cur_step ? "running" : "pending");
        double el = r->elapsed[s];
        if (s == r->cur_step && !r->done[s]) {
            el = m2p_now_monotonic() - r->step_started;
        }
        (void)json_object_set_new(steps, m2p_step_name((m2p_step)s),
                                  json_pack("{s:s, s:f}", "state", st, "elapsed_s", el));
    }
    (void)json_object_set_new(r->state, "steps", steps != NULL ? steps : json_null());
    bool known = false;
    double eta = eta_seconds(r, &known);
    (void)json_object_set_new(r->state, "eta_s", known ? json_real(eta) : json_null());
    double overall = ((r->cur_step < 0 ? 0 : r->cur_step) + r->fraction) / (double)M2P_STEP_COUNT;
    (void)json_object_set_new(r->state, "overall", json_real(overall));
    (void)json_object_set_new(r->state, "elapsed_s", json_real(m2p_now_monotonic() - r->job_started));
}

/* Writes an event with the refreshed state snapshot. Failures are logged:
 * progress is best-effort and must never fail the job. */
static void flush_event(run_ctx *r, const char *type, json_t *data, bool queue_too) {
    refresh_state(r);
    char *text = json_dumps(r->state, JSON_COMPACT);
    m2p_error e;
    m2p_error_clear(&e);
    if (text != NULL) {
        int64_t seq = 0;
        if (m2p_store_job_event(r->w->store, r->id, type, data, text, queue_too, &seq, &e) == M2P_OK) {
            atomic_fetch_add(&r->w->q->version, 1);
            publish(r->w->q, r->id, seq);
        } else {
            M2P_WARN("jobs", "job %lld: event not written: %s", (long long)r->id, e.detail);
        }
        free(text);
    }
    r->last_flush = m2p_now_monotonic();
}

static void start_step(run_ctx *r, int step) {
    double now = m2p_now_monotonic();
    if (r->cur_step >= 0 && r->cur_step != step) {
        r->elapsed[r->cur_step] = now - r->step_started;
        r->done[r->cur_step] = true;
    }
    r->cur_step = step;
    r->step_started = now;
    r->fraction = 0;
    (void)json_object_set_new(r->state, "step", json_string(m2p_step_name((m2p_step)step)));
    (void)json_object_set_new(r->state, "step_index", json_integer(step + 1));
    (void)json_object_set_new(r->state, "step_count", json_integer(M2P_STEP_COUNT));
    (void)json_object_set_new(r->state, "fraction", json_real(0));
    json_t *d = json_pack("{s:s, s:i, s:i}", "step", m2p_step_name((m2p_step)step), "index", step + 1, "of",
                          M2P_STEP_COUNT);
    flush_event(r, "step", d, true);
    json_decref(d);
}

static void on_report(void *ctx, m2p_step step, double done, double total, const char *message) {
    run_ctx *r = ctx;
    if ((int)step < 0 || step >= M2P_STEP_COUNT) {
        return;
    }
    if ((int)step != r->cur_step) {
        start_step(r, (int)step);
    }
    double f = total > 0 && isfinite(done) && isfinite(total) ? done / total : 0;
    f = f < 0 ? 0 : (f > 1 ? 1 : f);
    r->fraction = f;
    (void)json_object_set_new(r->state, "fraction", json_real(f));
    (void)json_object_set_new(r->state, "done", json_real(isfinite(done) ? done : 0));
    (void)json_object_set_new(r->state, "total", json_real(isfinite(total) ? total : 0));
    if (message != NULL) {
        (void)json_object_set_new(r->state, "message", json_string(message));
    }
    double now = m2p_now_monotonic();
    if (now - r->last_flush >= PROGRESS_FLUSH_S || f >= 1.0) {
        json_t *d = json_pack("{s:s, s:f, s:f, s:f, s:s?}", "step", m2p_step_name(step), "done",
                              isfinite(done) ? done : 0, "total", isfinite(total) ? total : 0, "fraction", f,
                              "message", message);
        flush_event(r, "progress", d, false);
        json_decref(d);
    }
}

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

static void on_finding(void *ctx, m2p_step step, const char *key, const char *text) {
    run_ctx *r = ctx;
    if (key == NULL || text == NULL || (int)step < 0 || step >= M2P_STEP_COUNT) {
        return;
    }
    json_t *d = NULL;
    if (strcmp(key, "image") == 0) {
        /* The text is a server path: clients get the index and the file name only. */
        r->images_saved++;
        char line[128];
        (void)snprintf(line, sizeof line, "Saved image %d", r->images_saved);
        d = json_pack("{s:s, s:s, s:s, s:i, s:s}", "step", m2p_step_name(step), "key", key, "text", line, "index",
                      r->images_saved - 1, "file", base_name(text));
        (void)json_object_set_new(r->state, "images_saved", json_integer(r->images_saved));
    } else {
        if (strcmp(key, "prompt") == 0) {
            r->got_prompt = true;
        }
        d = json_pack("{s:s, s:s, s:s}", "step", m2p_step_name(step), "key", key, "text", text);
    }
    if (d == NULL) {
        return;
    }
    json_t *findings = json_object_get(r->state, "findings");
    if (json_is_array(findings) && json_array_size(findings) < MAX_FINDINGS) {
        (void)json_array_append(findings, d);
    }
    flush_event(r, "finding", d, strcmp(key, "image") == 0);
    json_decref(d);
}

/* Standard base64 (RFC 4648, padded) of in[0..n) into a new NUL-terminated string; NULL when out of memory. */
static char *base64_encode(const uint8_t *in, size_t n) {
    static const char k[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = m2p_malloc((n + 2) / 3 * 4 + 1);
    if (out == NULL) {
        return NULL;
    }
    size_t j = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= in[i + 2];
        }
        out[j++] = k[(v >> 18) & 63];
        out[j++] = k[(v >> 12) & 63];
        out[j++] = i + 1 < n ? k[(v >> 6) & 63] : '=';
        out[j++] = i + 2 < n ? k[v & 63] : '=';
    }
    out[j] = '\0';
    return out;
}

/* A live preview (pipeline.h): the latest one replaces the previous in the
 * job's live state ("preview": {index, step, steps, width, height, type,
 * bytes, data: base64}); the event ("preview") carries the same fields
 * without the image, so the event log stays small and every API host can
 * serve the picture from the shared database (GET /api/jobs/{id}/preview). */
static void on_preview(void *ctx, int index, int step, int steps, int width, int height, const uint8_t *webp,
                       size_t len) {
    run_ctx *r = ctx;
    if (webp == NULL || len == 0 || len > PREVIEW_MAX_BYTES) {
        M2P_DEBUG("jobs", "job %lld: preview of step %d skipped (%zu bytes)", (long long)r->id, step, len);
        return;
    }
    char *b64 = base64_encode(webp, len);
    json_t *d = json_pack("{s:i, s:i, s:i, s:i, s:i, s:s, s:I}", "index", index, "step", step, "steps", steps,
                          "width", width, "height", height, "type", "image/webp", "bytes", (json_int_t)len);
    json_t *pv = d != NULL ? json_deep_copy(d) : NULL;
    if (b64 == NULL || d == NULL || pv == NULL) {
        m2p_free(b64);
        json_decref(d);
        json_decref(pv);
        return;
    }
    (void)json_object_set_new(pv, "data", json_string(b64));
    m2p_free(b64);
    (void)json_object_set_new(r->state, "preview", pv);
    flush_event(r, "preview", d, false);
    json_decref(d);
}

void m2p_queue_job_public(json_t *job) {
    json_t *pv = json_object_get(json_object_get(job, "progress"), "preview");
    if (!json_is_object(pv)) {
        return;
    }
    json_int_t id = json_integer_value(json_object_get(job, "id"));
    json_int_t step = json_integer_value(json_object_get(pv, "step"));
    json_int_t index = json_integer_value(json_object_get(pv, "index"));
    char url[96];
    (void)snprintf(url, sizeof url, "/api/jobs/%lld/preview?i=%lld&step=%lld", (long long)id, (long long)index,
                   (long long)step);
    (void)json_object_del(pv, "data");
    (void)json_object_set_new(pv, "url", json_string(url));
}

/* ---- finishing a job ------------------------------------------------------------------------- */

/* Drops the big arrays of the features JSON (kept in the analyses table). */
static json_t *analysis_json(const m2p_features *f) {
    json_t *j = NULL;
    if (f == NULL || m2p_features_to_json(f, &j) != M2P_OK || j == NULL) {
        return json_null();
    }
    const char *big[] = {"spectrogram", "energy_curve", "beats"};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        (void)json_object_del(j, big[i]);
    }
    return j;
}

static json_t *prompt_json(const m2p_prompt *p) {
    if (p == NULL) {
        return json_null();
    }
    json_t *frags = json_array();
    for (size_t i = 0; frags != NULL && i < p->n_fragments; i++) {
        const m2p_fragment *f = &p->fragments[i];
        (void)json_array_append_new(frags, json_pack("{s:s?, s:s?, s:s?, s:s?, s:i, s:b}", "variable", f->variable,
                                                     "text", f->text, "feature", f->feature, "reason", f->reason,
                                                     "priority", f->priority, "kept", f->kept));
    }
    return json_pack("{s:s?, s:s?, s:s?, s:i, s:b, s:o}", "positive", p->positive, "negative", p->negative, "style",
                     p->style, "n_tokens", p->n_tokens, "shortened", p->shortened, "fragments",
                     frags != NULL ? frags : json_array());
}

static json_t *result_json(const m2p_job_result *res) {
    json_t *steps = json_object();
    for (int s = 0; steps != NULL && s < M2P_STEP_COUNT; s++) {
        (void)json_object_set_new(steps, m2p_step_name((m2p_step)s), json_real(res->step_seconds[s]));
    }
    json_t *seeds = json_array();
    for (size_t i = 0; seeds != NULL && i < res->n_images; i++) {
        (void)json_array_append_new(seeds, json_integer(res->seeds[i]));
    }
    return json_pack("{s:I, s:s, s:s, s:f, s:b, s:b, s:o, s:o, s:s, s:s, s:i, s:i, s:i, s:o, s:o}", "track_id",
                     (json_int_t)res->track_id, "title", res->track.title, "uploader", res->track.uploader,
                     "duration_s", res->track.duration_s, "audio_cache_hit", res->track.cache_hit, "features_cached",
                     res->features_cached, "analysis", analysis_json(res->features), "prompt",
                     prompt_json(res->prompt), "renderer", res->renderer, "model", res->model, "width", res->width,
                     "height", res->height, "steps", res->steps, "seeds", seeds != NULL ? seeds : json_array(),
                     "step_seconds", steps != NULL ? steps : json_object());
}

static void record_stats(run_ctx *r, const m2p_job_result *res) {
    m2p_queue *q = r->w->q;
    m2p_queue_note_renderer(q, res->renderer);
    const char *renderer = res->renderer[0] != '\0' ? res->renderer : r->renderer;
    char size[32];
    if (res->width > 0) {
        (void)snprintf(size, sizeof size, "%dx%d", res->width, res->height);
    } else {
        (void)snprintf(size, sizeof size, "%s", r->size);
    }
    (void)pthread_mutex_lock(&q->mu);
    for (int s = 0; s < M2P_STEP_COUNT; s++) {
        double sec = res->step_seconds[s] > 0 ? res->step_seconds[s] : r->elapsed[s];
        if (sec > 0) {
            q->stats.step_seconds_sum[s] += sec;
            q->stats.step_count[s]++;
        }
    }
    if (res->features_cached) {
        q->stats.features_cached++;
    } else {
        q->stats.features_computed++;
    }
    if (res->track.cache_hit) {
        q->stats.audio_cache_hits++;
    } else {
        q->stats.audio_cache_misses++;
    }
    (void)pthread_mutex_unlock(&q->mu);
    for (int s = 0; s < M2P_STEP_COUNT; s++) {
        double sec = res->step_seconds[s] > 0 ? res->step_seconds[s] : r->elapsed[s];
        if (sec > 0) {
            m2p_error e;
            if (m2p_store_step_stat_add(r->w->store, m2p_step_name((m2p_step)s), renderer, size, sec, &e) != M2P_OK) {
                M2P_WARN("jobs", "step stat not saved: %s", e.detail);
            }
        }
    }
}

static void count(m2p_queue *q, m2p_job_status st, bool retried) {
    (void)pthread_mutex_lock(&q->mu);
    if (retried) {
        q->stats.jobs_retried++;
    } else if (st == M2P_JOB_SUCCEEDED) {
        q->stats.jobs_succeeded++;
    } else if (st == M2P_JOB_FAILED) {
        q->stats.jobs_failed++;
    } else if (st == M2P_JOB_CANCELLED) {
        q->stats.jobs_cancelled++;
    } else if (st == M2P_JOB_PARTIAL) {
        q->stats.jobs_partial++;
    }
    (void)pthread_mutex_unlock(&q->mu);
}

static bool stopping(m2p_queue *q) {
    (void)pthread_mutex_lock(&q->mu);
    bool s = q->stopping;
    (void)pthread_mutex_unlock(&q->mu);
    return s;
}

/* Emits the final "state" event with the job's status, error and image list. */
static void emit_final(run_ctx *r, const char *status, m2p_code code, const char *detail, double retry_at) {
    json_t *d = json_pack("{s:s, s:i}", "status", status, "attempt", r->attempt);
    if (d == NULL) {
        return;
    }
    if (code != M2P_OK) {
        (void)json_object_set_new(d, "error", json_pack("{s:s, s:s, s:s, s:s}", "code", m2p_errname(code), "message",
                                                        m2p_strerror(code), "detail", detail != NULL ? detail : "",
                                                        "hint", m2p_errhint(code)));
    }
    if (retry_at > 0) {
        (void)json_object_set_new(d, "retry_at", json_real(retry_at));
    }
    json_t *job = NULL;
    m2p_error e;
    if (m2p_store_job_get(r->w->store, r->id, &job, &e) == M2P_OK) {
        (void)json_object_set(d, "images", json_object_get(job, "images"));
        json_decref(job);
    }
    (void)json_object_set_new(r->state, "status", json_string(status));
    flush_event(r, "state", d, true);
    json_decref(d);
}

/* Shared database: the upload is a file on the API host that took it, and
 * its bytes are stored with the job. A worker reads it from its own
 * <data_dir>/uploads/<sha256><ext> only, writing it there from the database
 * first when missing (same content-hash name); the API host's path in the
 * spec is used only when the database has no copy. */
static m2p_code local_upload_copy(worker *w, const json_t *spec_json, const char *path, char *buf, size_t cap,
                                  m2p_error *err) {
    const char *sha = json_string_value(json_object_get(spec_json, "upload_sha256"));
    const char *slash = strrchr(path, '/');
    const char *base = slash != NULL ? slash + 1 : path;
    if (sha == NULL || strlen(sha) != 64 || strncmp(base, sha, 64) != 0 || strchr(base, '/') != NULL) {
        (void)snprintf(buf, cap, "%s", path);
        return M2P_OK;
    }
    char dir[M2P_PATH_MAX];
    (void)m2p_config_subdir(&w->q->cfg, "uploads", dir, sizeof dir);
    int n = snprintf(buf, cap, "%s/%s", dir, base);
    if (n < 0 || (size_t)n >= cap) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "upload path too long");
    }
    struct stat st;
    if (stat(buf, &st) == 0) {
        return M2P_OK;
    }
    unsigned char *bytes = NULL;
    size_t len = 0;
    m2p_code c = m2p_store_upload_get(w->store, sha, &bytes, &len, err);
    if (c == M2P_E_NOT_FOUND) {
        (void)snprintf(buf, cap, "%s", path); /* stored before uploads went to the database */
        return M2P_OK;
    }
    if (c == M2P_OK) {
        c = m2p_fs_mkdirs(dir, err);
    }
    if (c == M2P_OK) {
        c = m2p_fs_write_atomic(buf, bytes, len, err);
    }
    m2p_free(bytes);
    return c;
}

/* Shared database: the track's audio goes to the uploads table (keyed by its
 * content hash, the SHA-256 of the file, as uploads are), so an API host
 * without this worker's audio cache can serve the track. Skipped when the
 * row exists or the file is over the cap; failures are logged, never fatal. */
static void keep_track_audio(worker *w, const m2p_track *t) {
    m2p_queue *q = w->q;
    if (!q->shared || t->content_hash[0] == '\0' || t->path[0] == '\0') {
        return;
    }
    int64_t cap_mb = q->cfg.max_upload_mb > q->cfg.max_download_mb ? q->cfg.max_upload_mb : q->cfg.max_download_mb;
    size_t cap = (size_t)cap_mb * 1024u * 1024u;
    m2p_error e;
    m2p_error_clear(&e);
    bool found = false;
    if (m2p_store_upload_exists(w->store, t->content_hash, &found, &e) != M2P_OK) {
        M2P_WARN("jobs", "track audio not stored: %s", e.detail);
        return;
    }
    struct stat st;
    if (found || stat(t->path, &st) != 0 || st.st_size <= 0 || (uint64_t)st.st_size > (uint64_t)cap) {
        return;
    }
    char *bytes = NULL;
    size_t len = 0;
    if (m2p_fs_read_file(t->path, cap, &bytes, &len, &e) != M2P_OK ||
        m2p_store_upload_put(w->store, t->content_hash, bytes, len, &e) != M2P_OK) {
        M2P_WARN("jobs", "track audio %.16s not stored: %s", t->content_hash, e.detail);
    }
    m2p_free(bytes);
}

/* Render stage: the live state goes on from the analyze stage's (its
 * findings, and its steps shown as done). */
static void carry_over(worker *w, run_ctx *r, int64_t id) {
    json_t *job = NULL;
    m2p_error e;
    if (m2p_store_job_get(w->store, id, &job, &e) != M2P_OK) {
        return;
    }
    json_t *prev = json_object_get(job, "progress");
    json_t *findings = json_object_get(prev, "findings");
    if (json_is_array(findings)) {
        (void)json_object_set(r->state, "findings", findings);
    }
    json_t *steps = json_object_get(prev, "steps");
    for (int s = 0; s < M2P_STEP_PROMPT; s++) {
        json_t *one = json_object_get(steps, m2p_step_name((m2p_step)s));
        r->done[s] = true;
        r->elapsed[s] = json_number_value(json_object_get(one, "elapsed_s"));
    }
    json_decref(job);
}

/* End of the analyze stage (committed with the stage data, fenced by the
 * attempt): a process that renders too goes on at once (*waiting false);
 * else the job waits, queued in stage render, for a render worker. *lost:
 * the row moved on (nothing to write). A cancel that came in meanwhile ends
 * the attempt as cancelled. */
static m2p_code end_analysis(worker *w, run_ctx *r, const m2p_job_claim *claim, const m2p_job_result *res,
                             bool *waiting, bool *lost, m2p_error *err) {
    m2p_queue *q = w->q;
    bool keep = (q->stages & M2P_STAGES_RENDER) != 0;
    *waiting = false;
    *lost = false;
    json_t *sj = NULL;
    m2p_code c = m2p_pipeline_stage_to_json(res, &sj, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)json_object_set_new(sj, "analyzed_by", json_string(w->name));
    char *text = json_dumps(sj, JSON_COMPACT);
    json_decref(sj);
    if (text == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "stage data");
    }
    bool applied = false;
    c = m2p_store_job_advance(w->store, claim->id, claim->attempt, text, keep, &applied, err);
    free(text);
    if (c != M2P_OK) {
        return c;
    }
    if (!applied) {
        bool requested = false;
        m2p_error ce;
        m2p_error_clear(&ce);
        if (m2p_store_job_cancel_requested(w->store, claim->id, &requested, &ce) != M2P_OK) {
            /* cannot tell: treat the claim as lost (its lease expires and the job runs again) */
            M2P_WARN("jobs", "job %lld: cancel flag unreadable after the analysis: %s", (long long)claim->id,
                     ce.detail);
        } else if (requested) {
            return m2p_error_set(err, M2P_E_CANCELLED, "cancelled after the analysis");
        }
        M2P_WARN("jobs", "job %lld: attempt %d lost its claim before the render stage", (long long)claim->id,
                 claim->attempt);
        *lost = true;
        return M2P_OK;
    }
    (void)json_object_set_new(r->state, "stage", json_string("render"));
    const char *text_line = keep ? "Analysis done, rendering" : "Analysis done, waiting for a render worker";
    json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s}", "step", m2p_step_name(M2P_STEP_PROMPT), "key", "stage", "text",
                          text_line, "stage", "render", "worker", w->name);
    if (d != NULL) {
        json_t *findings = json_object_get(r->state, "findings");
        if (json_is_array(findings) && json_array_size(findings) < MAX_FINDINGS) {
            (void)json_array_append(findings, d);
        }
        if (!keep) {
            (void)json_object_set_new(r->state, "status", json_string("queued"));
        }
        flush_event(r, "finding", d, true);
        json_decref(d);
    }
    if (!keep) {
        json_t *st = json_pack("{s:s, s:s, s:s, s:i}", "status", "queued", "stage", "render", "waiting_for",
                               "render worker", "attempt", claim->attempt);
        flush_event(r, "state", st, true);
        json_decref(st);
        /* not this worker's any more: its heartbeat must not report a lost claim */
        (void)pthread_mutex_lock(&q->mu);
        w->job_id = 0;
        w->attempt = 0;
        (void)pthread_mutex_unlock(&q->mu);
        m2p_queue_notify(q); /* the reconciler puts it on the render stream now */
        *waiting = true;
    }
    return M2P_OK;
}

static void run_job(worker *w, m2p_job_claim *claim) {
    m2p_queue *q = w->q;
    const m2p_config *cfg = &q->cfg;
    m2p_error err;
    m2p_error_clear(&err);
    run_ctx r;
    memset(&r, 0, sizeof r);
    r.w = w;
    r.id = claim->id;
    r.attempt = claim->attempt;
    r.cur_step = -1;
    r.job_started = m2p_now_monotonic();
    r.last_flush = 0;
    r.state = json_pack("{s:s, s:i, s:i, s:[]}", "status", "running", "attempt", claim->attempt, "max_attempts",
                        claim->max_attempts, "findings");
    m2p_job_result res;
    memset(&res, 0, sizeof res);
    char out_dir[M2P_PATH_MAX];
    json_t *spec_json = json_loads(claim->spec_json, 0, NULL);
    m2p_job_spec spec;
    m2p_code code = M2P_OK;
    if (r.state == NULL) {
        code = m2p_error_set(&err, M2P_E_NOMEM, "job state");
    } else if (spec_json == NULL) {
        code = m2p_error_set(&err, M2P_E_INTERNAL, "stored job spec is not JSON");
    } else {
        code = m2p_queue_spec_from_json(spec_json, cfg, claim->id, &spec, out_dir, sizeof out_dir, &err);
    }
    bool analyze = claim->stage == M2P_STAGE_ANALYZE;
    bool renders = !analyze || (q->stages & M2P_STAGES_RENDER) != 0;
    (void)json_object_set_new(r.state, "stage", json_string(m2p_job_stage_name(claim->stage)));
    char local_upload[M2P_PATH_MAX];
    if (code == M2P_OK && analyze && q->shared && spec.upload_path != NULL) {
        code = local_upload_copy(w, spec_json, spec.upload_path, local_upload, sizeof local_upload, &err);
        if (code == M2P_OK) {
            spec.upload_path = local_upload;
        }
    }
    if (code == M2P_OK) {
        (void)snprintf(r.renderer, sizeof r.renderer, "%s", spec.renderer != NULL ? spec.renderer : cfg->renderer);
        (void)snprintf(r.size, sizeof r.size, "%dx%d", spec.width, spec.height);
        for (int s = 0; s < M2P_STEP_COUNT; s++) {
            m2p_error e2;
            if (m2p_store_step_stat_get(w->store, m2p_step_name((m2p_step)s), r.renderer, r.size, &r.mean[s],
                                        &r.have_mean[s], &e2) != M2P_OK) {
                r.have_mean[s] = false; /* no ETA for this step: not an error */
            }
        }
        if (!analyze) {
            carry_over(w, &r, claim->id);
        }
        json_t *d = json_pack("{s:s, s:i, s:i, s:s, s:s}", "status", "running", "attempt", claim->attempt,
                              "max_attempts", claim->max_attempts, "stage", m2p_job_stage_name(claim->stage),
                              "worker", w->name);
        flush_event(&r, "state", d, true);
        json_decref(d);
        if (renders) {
            code = m2p_fs_mkdirs(out_dir, &err);
        }
    }
    if (code == M2P_OK && analyze && claim->attempt <= cfg->unsafe_test_fail_first) {
        code = m2p_error_set(&err, M2P_E_FETCH_NETWORK, "injected failure of attempt %d (unsafe_test_fail_first=%d)",
                             claim->attempt, cfg->unsafe_test_fail_first);
    }
    m2p_progress progress = {on_report, on_finding, &r, &w->cancel};
    if (code == M2P_OK && analyze) {
        /* stage 1: source, fetch, decode, analysis (cached in analyses), prompt */
        code = m2p_pipeline_prompt(q->pipeline, w->store, &spec, &progress, &res, &err);
        if (code == M2P_OK) {
            keep_track_audio(w, &res.track);
            bool waiting = false;
            bool lost = false;
            code = end_analysis(w, &r, claim, &res, &waiting, &lost, &err);
            if (code == M2P_OK && (waiting || lost)) {
                goto done; /* a render worker takes it from here (or the row moved on) */
            }
        }
    } else if (code == M2P_OK) {
        /* stage 2 on its own: from the stored analysis, prompt and track; no audio */
        code = m2p_pipeline_stage_restore(q->pipeline, w->store, claim->stage_json, &progress, &res, &err);
        if (code == M2P_OK) {
            r.got_prompt = true;
        }
    }
    if (code == M2P_OK) {
        spec.preview = on_preview;
        spec.preview_ctx = &r;
        code = m2p_pipeline_render(q->pipeline, &spec, &progress, &res, &err);
        if (r.cur_step >= 0 && code == M2P_OK) {
            r.elapsed[r.cur_step] = m2p_now_monotonic() - r.step_started;
            r.done[r.cur_step] = true;
        }
        /* the images (or the error) replace the preview: not kept in the finished job */
        (void)json_object_del(r.state, "preview");
    }
    if (code != M2P_OK && err.code == M2P_OK) {
        err.code = code;
    }

    bool applied = false;
    m2p_error e;
    m2p_error_clear(&e);
    if (code == M2P_OK) {
        record_stats(&r, &res);
        json_t *rj = result_json(&res);
        char *rtext = rj != NULL ? json_dumps(rj, JSON_COMPACT) : NULL;
        json_decref(rj);
        m2p_image_row *rows = res.n_images > 0 ? m2p_calloc(res.n_images, sizeof *rows) : NULL;
        const char *key = res.features != NULL ? m2p_key_name(res.features->key) : "";
        const char *mode = res.features != NULL ? m2p_mode_name(res.features->mode) : "";
        char **meta = res.n_images > 0 ? m2p_calloc(res.n_images, sizeof *meta) : NULL;
        char **pngs = q->shared && res.n_images > 0 ? m2p_calloc(res.n_images, sizeof *pngs) : NULL;
        size_t *png_lens = q->shared && res.n_images > 0 ? m2p_calloc(res.n_images, sizeof *png_lens) : NULL;
        if (res.n_images > 0 && (rows == NULL || meta == NULL || (q->shared && (pngs == NULL || png_lens == NULL)))) {
            code = m2p_error_set(&err, M2P_E_NOMEM, "image rows");
        }
        for (size_t i = 0; code == M2P_OK && i < res.n_images; i++) {
            json_t *mj = json_pack("{s:s?, s:s?, s:s?, s:I, s:i, s:i, s:i, s:s, s:s, s:f, s:s, s:s, s:s, s:I}",
                                   "prompt", res.prompt != NULL ? res.prompt->positive : NULL, "negative",
                                   res.prompt != NULL ? res.prompt->negative : NULL, "style",
                                   res.prompt != NULL ? res.prompt->style : NULL, "seed", (json_int_t)res.seeds[i],
                                   "width", res.width, "height", res.height, "steps", res.steps, "renderer",
                                   res.renderer, "model", res.model, "tempo_bpm",
                                   res.features != NULL ? res.features->tempo_bpm : 0.0, "key", key, "mode", mode,
                                   "title", res.track.title, "job_id", (json_int_t)claim->id);
            meta[i] = mj != NULL ? json_dumps(mj, JSON_COMPACT) : NULL;
            json_decref(mj);
            if (q->shared && pngs != NULL) {
                /* no shared filesystem between hosts: the bytes go to the database too */
                m2p_code rc2 = m2p_fs_read_file(res.image_paths[i], 256u * 1024u * 1024u, &pngs[i], &png_lens[i], &err);
                if (rc2 != M2P_OK) {
                    code = rc2;
                    break;
                }
            }
            rows[i] = (m2p_image_row){
                .index = (int)i,
                .seed = res.seeds[i],
                .path = res.image_paths[i],
                .width = res.width,
                .height = res.height,
                .prompt = res.prompt != NULL ? res.prompt->positive : "",
                .style = res.prompt != NULL && res.prompt->style != NULL ? res.prompt->style : "",
                .renderer = res.renderer,
                .model = res.model,
                .metadata_json = meta[i],
                .track_id = res.track_id,
                .source = res.track.source,
                .tempo = res.features != NULL ? res.features->tempo_bpm : 0,
                .key = key,
                .mode = mode,
                .png = pngs != NULL ? (const unsigned char *)pngs[i] : NULL,
                .png_len = png_lens != NULL ? png_lens[i] : 0,
            };
        }
        char *ptext = NULL;
        if (code == M2P_OK) {
            /* the final snapshot commits with the status (emit_final writes it again with the event) */
            (void)json_object_set_new(r.state, "status", json_string("succeeded"));
            refresh_state(&r);
            ptext = json_dumps(r.state, JSON_COMPACT);
        }
        if (code == M2P_OK) {
            m2p_job_outcome o = {M2P_JOB_SUCCEEDED, M2P_OK, NULL, rtext, res.track_id, rows, res.n_images, ptext};
            if (m2p_store_job_finish(w->store, claim->id, claim->attempt, &o, &applied, &e) != M2P_OK) {
                M2P_ERROR("jobs", "job %lld: could not save the result: %s", (long long)claim->id, e.detail);
            }
        }
        for (size_t i = 0; meta != NULL && i < res.n_images; i++) {
            free(meta[i]);
        }
        for (size_t i = 0; pngs != NULL && i < res.n_images; i++) {
            m2p_free(pngs[i]);
        }
        m2p_free(pngs);
        m2p_free(png_lens);
        free(ptext);
        m2p_free(meta);
        m2p_free(rows);
        free(rtext);
        if (applied) {
            count(q, M2P_JOB_SUCCEEDED, false);
            emit_final(&r, "succeeded", M2P_OK, NULL, 0);
        }
    }
    if (code != M2P_OK) {
        bool shutting = stopping(q);
        m2p_job_status final = M2P_JOB_FAILED;
        if (shutting) {
            /* Graceful stop: back to the queue; this attempt does not count. */
            if (m2p_store_job_requeue(w->store, claim->id, claim->attempt, 0, M2P_OK, NULL, true, &e) != M2P_OK) {
                M2P_ERROR("jobs", "job %lld: requeue at shutdown failed: %s", (long long)claim->id, e.detail);
            }
            emit_final(&r, "queued", M2P_OK, NULL, 0);
            goto done;
        }
        if (code == M2P_E_CANCELLED) {
            final = M2P_JOB_CANCELLED;
        } else if (m2p_err_transient(code) && claim->attempt < claim->max_attempts) {
            double jitter = (double)(rng_next(&w->rng) >> 11) / 9007199254740992.0;
            double delay = m2p_queue_backoff(cfg->retry_base_s, claim->attempt, jitter);
            double when = m2p_now_wall() + delay;
            if (m2p_store_job_requeue(w->store, claim->id, claim->attempt, when, code, err.detail, false, &e) ==
                M2P_OK) {
                M2P_INFO("jobs", "job %lld: attempt %d failed (%s); retry in %.1f s", (long long)claim->id,
                         claim->attempt, m2p_errname(code), delay);
                count(q, M2P_JOB_QUEUED, true);
                emit_final(&r, "queued", code, err.detail, when);
                goto done;
            }
            M2P_ERROR("jobs", "job %lld: requeue failed: %s", (long long)claim->id, e.detail);
        } else if (r.got_prompt) {
            /* The analysis and the prompt are kept (result); no image was rendered. */
            final = M2P_JOB_PARTIAL;
        }
        json_t *rj = res.prompt != NULL || res.features != NULL ? result_json(&res) : NULL;
        char *rtext = rj != NULL ? json_dumps(rj, JSON_COMPACT) : NULL;
        json_decref(rj);
        (void)json_object_set_new(r.state, "status", json_string(m2p_job_status_name(final)));
        refresh_state(&r);
        char *ftext = json_dumps(r.state, JSON_COMPACT);
        m2p_job_outcome o = {final, code, err.detail, rtext, res.track_id, NULL, 0, ftext};
        if (m2p_store_job_finish(w->store, claim->id, claim->attempt, &o, &applied, &e) != M2P_OK) {
            M2P_ERROR("jobs", "job %lld: could not save the failure: %s", (long long)claim->id, e.detail);
        }
        free(rtext);
        free(ftext);
        if (applied) {
            count(q, final, false);
            emit_final(&r, m2p_job_status_name(final), code, err.detail, 0);
        }
    }
done:
    m2p_job_result_clear(&res);
    json_decref(spec_json);
    json_decref(r.state);
}

/* ---- worker threads ------------------------------------------------------------------------- */

/* Waits up to s seconds unless the queue stops. */
static void idle_wait(m2p_queue *q, double s) {
    (void)pthread_mutex_lock(&q->mu);
    if (!q->stopping) {
        struct timespec ts;
        (void)clock_gettime(CLOCK_REALTIME, &ts);
        long long ns = (long long)ts.tv_nsec + (long long)(s * 1e9);
        ts.tv_sec += (time_t)(ns / 1000000000LL);
        ts.tv_nsec = (long)(ns % 1000000000LL);
        (void)pthread_cond_timedwait(&q->cv, &q->mu, &ts);
    }
    (void)pthread_mutex_unlock(&q->mu);
}

static void broker_failed(worker *w, const m2p_error *e) {
    M2P_WARN("jobs", "broker: %s (retrying in %.1f s)", e->detail, w->backoff);
    idle_wait(w->q, w->backoff);
    w->backoff = w->backoff < 0.1 ? 0.1 : (w->backoff * 2 > 2.0 ? 2.0 : w->backoff * 2);
}

/* Redis mode: one delivery from the stream → claim that job in the database
 * (the source of truth) → run it → XACK once the outcome is committed. */
static void take_from_broker(worker *w) {
    m2p_queue *q = w->q;
    m2p_error err;
    m2p_error_clear(&err);
    if (w->broker == NULL) {
        char consumer[128];
        char host[64] = "host";
        (void)gethostname(host, sizeof host - 1);
        (void)snprintf(consumer, sizeof consumer, "%s-%ld-%d", host, (long)getpid(), (int)(w - q->workers));
        (void)pthread_mutex_lock(&q->mu);
        (void)snprintf(w->consumer, sizeof w->consumer, "%s", consumer);
        (void)pthread_mutex_unlock(&q->mu);
        if (m2p_broker_open(&q->cfg, consumer, &w->broker, &err) != M2P_OK) {
            broker_failed(w, &err);
            return;
        }
    }
    m2p_broker_msg m;
    m2p_code c = m2p_broker_take(w->broker, q->stages, 1000, (int64_t)(q->lease_s * 1000.0), &m, &err);
    if (c == M2P_E_NOT_FOUND) {
        w->backoff = 0;
        return;
    }
    if (c != M2P_OK) {
        broker_failed(w, &err);
        return;
    }
    w->backoff = 0;
    int64_t max_deliveries = (int64_t)q->cfg.max_attempts + 2;
    if (m.deliveries > max_deliveries) {
        char detail[160];
        (void)snprintf(detail, sizeof detail,
                       "delivered %lld times without completing; moved to the dead-letter stream",
                       (long long)m.deliveries);
        bool applied = false;
        if (m2p_store_job_fail_poison(w->store, m.job_id, detail, &applied, &err) != M2P_OK) {
            M2P_WARN("jobs", "job %lld: %s", (long long)m.job_id, err.detail);
            return; /* comes back after the lease; the database decides then */
        }
        if (applied) {
            atomic_fetch_add(&q->version, 1);
        }
        M2P_WARN("jobs", "job %lld: %s", (long long)m.job_id, detail);
        if (m2p_broker_dead_letter(w->broker, &m, "too many deliveries", &err) != M2P_OK) {
            M2P_WARN("jobs", "dead letter: %s", err.detail);
        }
        return;
    }
    m2p_job_claim claim;
    /* the stream tells the stage: an analyze entry of a job already in stage render is stale */
    c = m2p_store_job_claim_stage(w->store, m.job_id, m.stage == M2P_STAGE_RENDER ? M2P_STAGES_RENDER : M2P_STAGES_ANALYZE,
                                  m2p_now_wall(), q->lease_s, &claim, &err);
    if (c == M2P_E_NOT_FOUND) {
        /* done, cancelled, in the other stage, or a duplicate entry of a job running elsewhere: nothing to do */
        if (m2p_broker_ack(w->broker, m.stage, m.entry, &err) != M2P_OK) {
            M2P_DEBUG("jobs", "ack: %s", err.detail);
        }
        return;
    }
    if (c != M2P_OK) {
        M2P_WARN("jobs", "claim of job %lld failed: %s", (long long)m.job_id, err.detail);
        idle_wait(q, 0.5); /* the entry stays pending: retaken after the lease */
        return;
    }
    (void)pthread_mutex_lock(&q->mu);
    w->job_id = claim.id;
    w->attempt = claim.attempt;
    (void)snprintf(w->entry, sizeof w->entry, "%s", m.entry);
    w->entry_stage = m.stage;
    atomic_store(&w->cancel, q->stopping);
    q->stats.jobs_started++;
    (void)pthread_mutex_unlock(&q->mu);
    run_job(w, &claim);
    /* The outcome (or the requeue) is committed: the entry is done. A job put
     * back in the queue is XADDed again by the reconciler when it is due. */
    if (m2p_broker_ack(w->broker, m.stage, m.entry, &err) != M2P_OK) {
        M2P_WARN("jobs", "job %lld: ack failed (%s); a redelivery will find it done", (long long)claim.id,
                 err.detail);
    }
    (void)pthread_mutex_lock(&q->mu);
    w->job_id = 0;
    w->attempt = 0;
    w->entry[0] = '\0';
    atomic_store(&w->cancel, false);
    (void)pthread_mutex_unlock(&q->mu);
    m2p_job_claim_clear(&claim);
}

static void *worker_main(void *arg) {
    worker *w = arg;
    m2p_queue *q = w->q;
    /* Rendering is throughput work; answering the API is latency work. Lower
     * this thread's priority (and that of the threads it starts) so status
     * reads stay fast while every core renders. Failure is harmless. */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
    while (!stopping(q)) {
        if (q->redis) {
            take_from_broker(w);
            continue;
        }
        m2p_job_claim claim;
        m2p_error err;
        m2p_error_clear(&err);
        m2p_code c = m2p_store_job_claim_stage(w->store, 0, q->stages, m2p_now_wall(), q->lease_s, &claim, &err);
        if (c == M2P_OK) {
            (void)pthread_mutex_lock(&q->mu);
            w->job_id = claim.id;
            w->attempt = claim.attempt;
            atomic_store(&w->cancel, q->stopping);
            q->stats.jobs_started++;
            (void)pthread_mutex_unlock(&q->mu);
            bool requested = false;
            if (m2p_store_job_cancel_requested(w->store, claim.id, &requested, &err) == M2P_OK && requested) {
                atomic_store(&w->cancel, true);
            }
            run_job(w, &claim);
            (void)pthread_mutex_lock(&q->mu);
            w->job_id = 0;
            w->attempt = 0;
            atomic_store(&w->cancel, false);
            (void)pthread_mutex_unlock(&q->mu);
            m2p_job_claim_clear(&claim);
            continue;
        }
        if (c != M2P_E_NOT_FOUND) {
            M2P_WARN("jobs", "claim failed: %s", err.detail);
        }
        /* Idle: wait for a wake-up, or poll again soon (backoff timers, other processes). */
        (void)pthread_mutex_lock(&q->mu);
        if (!q->stopping) {
            struct timespec ts;
            (void)clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 250 * 1000 * 1000;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            (void)pthread_cond_timedwait(&q->cv, &q->mu, &ts);
        }
        (void)pthread_mutex_unlock(&q->mu);
    }
    return NULL;
}

/* ---- redis mode: reconciler and event subscriber ------------------------------------------- */

/* The database is the source of truth: every second (and at once after a
 * submit) runnable jobs that have no entry in the stream get one: new jobs,
 * jobs whose backoff is over, jobs of a dead worker, and every queued job
 * after Redis restarted empty. Duplicates are harmless (the claim in the
 * database takes a job once; a second delivery is acked and dropped). */
static void reconcile_once(m2p_queue *q, m2p_error *err, m2p_code *c) {
    enum { CAP = 256, LIST_CAP = 4096 };
    int64_t ids[CAP];
    m2p_job_stage stages[CAP];
    size_t n = 0;
    double now = m2p_now_wall();
    *c = m2p_store_job_expire(q->rc_store, now, q->lease_s, err);
    if (*c == M2P_OK) {
        *c = m2p_store_job_runnable_stages(q->rc_store, now, q->lease_s, ids, stages, CAP, &n, err);
    }
    if (*c != M2P_OK || n == 0) {
        return;
    }
    if (q->rc_broker == NULL) {
        *c = m2p_broker_open(&q->cfg, NULL, &q->rc_broker, err);
        if (*c != M2P_OK) {
            return;
        }
    }
    int64_t *present = m2p_calloc(LIST_CAP, sizeof *present);
    if (present == NULL) {
        *c = m2p_error_set(err, M2P_E_NOMEM, "reconcile");
        return;
    }
    /* each runnable job needs an entry in the stream of its stage */
    for (int st = 0; *c == M2P_OK && st < 2; st++) {
        size_t np = 0;
        bool any = false;
        for (size_t i = 0; i < n && !any; i++) {
            any = (int)stages[i] == st;
        }
        if (!any) {
            continue;
        }
        *c = m2p_broker_list(q->rc_broker, (m2p_job_stage)st, present, LIST_CAP, &np, err);
        for (size_t i = 0; *c == M2P_OK && i < n; i++) {
            if ((int)stages[i] != st) {
                continue;
            }
            bool found = false;
            for (size_t k = 0; k < np && !found; k++) {
                found = present[k] == ids[i];
            }
            if (!found) {
                *c = m2p_broker_enqueue(q->rc_broker, (m2p_job_stage)st, ids[i], err);
                M2P_DEBUG("jobs", "job %lld enqueued on %s", (long long)ids[i], m2p_broker_stream((m2p_job_stage)st));
            }
        }
    }
    m2p_free(present);
}

static void *reconcile_main(void *arg) {
    m2p_queue *q = arg;
    double wait = 0.05;
    for (;;) {
        (void)pthread_mutex_lock(&q->mu);
        if (!q->stopping && !q->rc_kick) {
            struct timespec ts;
            (void)clock_gettime(CLOCK_REALTIME, &ts);
            long long ns = (long long)ts.tv_nsec + (long long)(wait * 1e9);
            ts.tv_sec += (time_t)(ns / 1000000000LL);
            ts.tv_nsec = (long)(ns % 1000000000LL);
            (void)pthread_cond_timedwait(&q->rc_cv, &q->mu, &ts);
        }
        q->rc_kick = false;
        bool stop = q->stopping;
        (void)pthread_mutex_unlock(&q->mu);
        if (stop) {
            return NULL;
        }
        m2p_error e;
        m2p_error_clear(&e);
        m2p_code c = M2P_OK;
        reconcile_once(q, &e, &c);
        if (c != M2P_OK) {
            M2P_WARN("jobs", "reconcile: %s", e.detail);
            if (c == M2P_E_BROKER_UNAVAILABLE) {
                m2p_broker_free(q->rc_broker);
                q->rc_broker = NULL;
            }
            wait = wait < 0.25 ? 0.25 : (wait * 2 > 2.0 ? 2.0 : wait * 2);
        } else {
            wait = 1.0;
        }
    }
}

/* Other processes' events arrive on the channel: the live views of this one
 * look in the database at once instead of at their next poll. */
static void *subscribe_main(void *arg) {
    m2p_queue *q = arg;
    m2p_broker *sub = NULL;
    while (!stopping(q)) {
        m2p_error e;
        m2p_error_clear(&e);
        if (sub == NULL && m2p_broker_open(&q->cfg, NULL, &sub, &e) != M2P_OK) {
            idle_wait(q, 0.5);
            continue;
        }
        m2p_code c = m2p_broker_wait_event(sub, 250, &e);
        if (c == M2P_OK) {
            atomic_fetch_add(&q->version, 1);
        } else if (c != M2P_E_NOT_FOUND) {
            M2P_DEBUG("jobs", "event subscription: %s", e.detail);
            m2p_broker_free(sub);
            sub = NULL;
            idle_wait(q, 0.5);
        }
    }
    m2p_broker_free(sub);
    return NULL;
}

/* ---- heartbeats (distributed mode) ----------------------------------------------------------- */

/* Every min(lease/3, 0.5) seconds: renews the lease of each running attempt and looks
 * for cancels requested from any host; an attempt that lost its row (taken
 * over after a stall, or finished elsewhere) is stopped. */
static void *heartbeat_main(void *arg) {
    m2p_queue *q = arg;
    /* a third of the lease, and at most 0.5 s so a cancel from another host lands fast */
    double period = q->lease_s / 3.0;
    if (period > 0.5) {
        period = 0.5;
    }
    if (period < 0.2) {
        period = 0.2;
    }
    for (;;) {
        (void)pthread_mutex_lock(&q->mu);
        if (!q->stopping) {
            struct timespec ts;
            (void)clock_gettime(CLOCK_REALTIME, &ts);
            long long ns = (long long)ts.tv_nsec + (long long)(period * 1e9);
            ts.tv_sec += (time_t)(ns / 1000000000LL);
            ts.tv_nsec = (long)(ns % 1000000000LL);
            (void)pthread_cond_timedwait(&q->cv, &q->mu, &ts);
        }
        bool stop = q->stopping;
        int64_t ids[64];
        int attempts[64];
        char entries[64][48];
        m2p_job_stage entry_stages[64];
        char consumers[64][128];
        int n = 0;
        for (int i = 0; i < q->n_workers && n < 64; i++) {
            if (q->workers[i].job_id != 0) {
                ids[n] = q->workers[i].job_id;
                attempts[n] = q->workers[i].attempt;
                memcpy(entries[n], q->workers[i].entry, sizeof entries[n]);
                entry_stages[n] = q->workers[i].entry_stage;
                memcpy(consumers[n], q->workers[i].consumer, sizeof consumers[n]);
                n++;
            }
        }
        (void)pthread_mutex_unlock(&q->mu);
        if (stop) {
            return NULL;
        }
        for (int i = 0; i < n; i++) {
            bool cancel = false;
            bool lost = false;
            m2p_error e;
            m2p_error_clear(&e);
            if (q->redis && entries[i][0] != '\0') {
                /* keep the stream entry ours: reset its idle time */
                if (q->hb_broker == NULL && m2p_broker_open(&q->cfg, "heartbeat", &q->hb_broker, &e) != M2P_OK) {
                    M2P_WARN("jobs", "broker heartbeat: %s", e.detail);
                } else if (m2p_broker_touch(q->hb_broker, consumers[i], entry_stages[i], entries[i], &e) != M2P_OK) {
                    M2P_WARN("jobs", "job %lld: broker heartbeat failed: %s", (long long)ids[i], e.detail);
                }
                m2p_error_clear(&e);
            }
            if (m2p_store_job_heartbeat(q->hb_store, ids[i], attempts[i], m2p_now_wall(), &cancel, &lost, &e) !=
                M2P_OK) {
                M2P_WARN("jobs", "job %lld: heartbeat failed: %s", (long long)ids[i], e.detail);
                continue;
            }
            if (lost) {
                M2P_WARN("jobs", "job %lld: attempt %d lost its claim; stopping it", (long long)ids[i], attempts[i]);
            }
            if (cancel || lost) {
                (void)pthread_mutex_lock(&q->mu);
                for (int k = 0; k < q->n_workers; k++) {
                    if (q->workers[k].job_id == ids[i] && q->workers[k].attempt == attempts[i]) {
                        atomic_store(&q->workers[k].cancel, true);
                    }
                }
                (void)pthread_mutex_unlock(&q->mu);
            }
        }
    }
}

void m2p_queue_set_lease(m2p_queue *q, double lease_s) {
    q->lease_s = q->shared && lease_s > 0 ? lease_s : 0;
}

bool m2p_queue_is_shared(const m2p_queue *q) {
    return q->shared;
}

m2p_code m2p_queue_create(const m2p_config *cfg, m2p_pipeline *pipeline, m2p_queue **out, m2p_error *err) {
    *out = NULL;
    m2p_code c = M2P_OK;
    m2p_store *s = NULL;
    m2p_queue *q = m2p_calloc(1, sizeof *q);
    if (q == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "queue");
    }
    q->cfg = *cfg;
    q->pipeline = pipeline;
    (void)pthread_mutex_init(&q->mu, NULL);
    (void)pthread_cond_init(&q->cv, NULL);
    (void)pthread_mutex_init(&q->pub_mu, NULL);
    (void)pthread_cond_init(&q->rc_cv, NULL);
    q->redis = strcmp(cfg->queue, "redis") == 0;
    if (!m2p_queue_role_parse(cfg->worker_role, &q->stages)) {
        c = m2p_error_set(err, M2P_E_CONFIG, "worker_role: '%s' is not all, cpu or gpu", cfg->worker_role);
        goto fail;
    }
    atomic_init(&q->version, 0);
    atomic_init(&q->n_started, 0);
    q->n_workers = cfg->workers < 1 ? 1 : cfg->workers;
    q->workers = m2p_calloc((size_t)q->n_workers, sizeof *q->workers);
    if (q->workers == NULL) {
        c = m2p_error_set(err, M2P_E_NOMEM, "workers");
        goto fail;
    }
    for (int i = 0; i < q->n_workers; i++) {
        worker *w = &q->workers[i];
        w->q = q;
        char host[64] = "host";
        (void)gethostname(host, sizeof host - 1);
        (void)snprintf(w->name, sizeof w->name, "%s-%ld-%d", host, (long)getpid(), i);
        atomic_init(&w->cancel, false);
        w->rng = (uint64_t)(m2p_now_wall() * 1e6) ^ ((uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull);
        if (w->rng == 0) {
            w->rng = 88172645463325252ull;
        }
        c = m2p_store_open(cfg, &w->store, err);
        if (c != M2P_OK) {
            goto fail;
        }
    }
    c = m2p_store_open(cfg, &s, err);
    q->shared = c == M2P_OK && m2p_store_is_shared(s);
    if (c == M2P_OK && q->shared) {
        /* Several processes share the queue: a restarted process must not take
         * the jobs other live workers run; expired leases are taken over instead. */
        q->lease_s = M2P_QUEUE_DEFAULT_LEASE_S;
        q->hb_store = s;
        s = NULL;
        if (q->redis) {
            c = m2p_store_open(cfg, &q->rc_store, err);
        }
    } else if (c == M2P_OK) {
        int requeued = 0;
        int failed = 0;
        c = m2p_store_job_recover(s, &requeued, &failed, err);
        if (c == M2P_OK && (requeued > 0 || failed > 0)) {
            M2P_WARN("jobs", "recovered interrupted jobs: %d queued again, %d failed (attempts used up)", requeued,
                     failed);
        }
    }
    m2p_store_close(s);
    if (c == M2P_OK && q->redis && !q->shared) {
        c = m2p_error_set(err, M2P_E_CONFIG,
                          "queue=redis needs the shared database: set MUS2PIC_DATABASE_URL=postgresql://...");
    }
    if (c != M2P_OK) {
        goto fail;
    }
    *out = q;
    return M2P_OK;
fail:
    m2p_queue_free(q);
    return c;
}

bool m2p_queue_role_parse(const char *role, unsigned *stages) {
    if (role == NULL || role[0] == '\0' || strcmp(role, "all") == 0) {
        *stages = M2P_STAGES_ALL;
    } else if (strcmp(role, "cpu") == 0) {
        *stages = M2P_STAGES_ANALYZE;
    } else if (strcmp(role, "gpu") == 0) {
        *stages = M2P_STAGES_RENDER;
    } else {
        return false;
    }
    return true;
}

m2p_code m2p_queue_start(m2p_queue *q, m2p_error *err) {
    return m2p_queue_start_workers(q, q->n_workers, err);
}

m2p_code m2p_queue_start_workers(m2p_queue *q, int n, m2p_error *err) {
    if (q->redis) {
        if (pthread_create(&q->rc_thread, NULL, reconcile_main, q) != 0) {
            return m2p_error_set(err, M2P_E_NOMEM, "cannot start the reconciler thread");
        }
        q->rc_started = true;
        if (pthread_create(&q->sub_thread, NULL, subscribe_main, q) != 0) {
            m2p_queue_stop(q);
            return m2p_error_set(err, M2P_E_NOMEM, "cannot start the subscriber thread");
        }
        q->sub_started = true;
    }
    if (q->lease_s > 0 && q->hb_store != NULL && n > 0) {
        if (pthread_create(&q->hb_thread, NULL, heartbeat_main, q) != 0) {
            return m2p_error_set(err, M2P_E_NOMEM, "cannot start the heartbeat thread");
        }
        q->hb_started = true;
    }
    for (int i = 0; i < q->n_workers && i < n; i++) {
        if (pthread_create(&q->workers[i].thread, NULL, worker_main, &q->workers[i]) != 0) {
            m2p_queue_stop(q);
            return m2p_error_set(err, M2P_E_NOMEM, "cannot start worker thread %d", i);
        }
        q->workers[i].started = true;
        atomic_fetch_add(&q->n_started, 1);
    }
    q->started = true;
    return M2P_OK;
}

void m2p_queue_stop(m2p_queue *q) {
    if (q == NULL) {
        return;
    }
    (void)pthread_mutex_lock(&q->mu);
    q->stopping = true;
    for (int i = 0; i < q->n_workers; i++) {
        atomic_store(&q->workers[i].cancel, true);
    }
    (void)pthread_cond_broadcast(&q->cv);
    (void)pthread_cond_broadcast(&q->rc_cv);
    (void)pthread_mutex_unlock(&q->mu);
    for (int i = 0; i < q->n_workers; i++) {
        if (q->workers[i].started) {
            (void)pthread_join(q->workers[i].thread, NULL);
            q->workers[i].started = false;
        }
    }
    if (q->hb_started) {
        (void)pthread_join(q->hb_thread, NULL);
        q->hb_started = false;
    }
    if (q->rc_started) {
        (void)pthread_join(q->rc_thread, NULL);
        q->rc_started = false;
    }
    if (q->sub_started) {
        (void)pthread_join(q->sub_thread, NULL);
        q->sub_started = false;
    }
}

void m2p_queue_free(m2p_queue *q) {
    if (q == NULL) {
        return;
    }
    m2p_queue_stop(q);
    for (int i = 0; q->workers != NULL && i < q->n_workers; i++) {
        m2p_store_close(q->workers[i].store);
        m2p_broker_free(q->workers[i].broker);
    }
    m2p_free(q->workers);
    m2p_store_close(q->hb_store);
    m2p_store_close(q->rc_store);
    m2p_broker_free(q->hb_broker);
    m2p_broker_free(q->rc_broker);
    m2p_broker_free(q->pub);
    (void)pthread_mutex_destroy(&q->pub_mu);
    (void)pthread_cond_destroy(&q->rc_cv);
    (void)pthread_cond_destroy(&q->cv);
    (void)pthread_mutex_destroy(&q->mu);
    m2p_free(q);
}

m2p_code m2p_queue_cancel(m2p_queue *q, m2p_store *s, int64_t id, m2p_error *err) {
    bool was_running = false;
    m2p_code c = m2p_store_job_cancel(s, id, &was_running, err);
    if (c != M2P_OK) {
        return c;
    }
    if (was_running) {
        (void)pthread_mutex_lock(&q->mu);
        for (int i = 0; i < q->n_workers; i++) {
            if (q->workers[i].job_id == id) {
                atomic_store(&q->workers[i].cancel, true);
            }
        }
        (void)pthread_mutex_unlock(&q->mu);
        json_t *d = json_pack("{s:b}", "cancel_requested", 1);
        c = m2p_queue_emit(q, s, id, "cancel_requested", d, false, err);
        json_decref(d);
        return c;
    }
    json_t *d = json_pack("{s:s}", "status", "cancelled");
    c = m2p_queue_emit(q, s, id, "state", d, true, err);
    json_decref(d);
    return c;
}
