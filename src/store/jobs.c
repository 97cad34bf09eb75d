/*
 * store/jobs.c — the service's tables in SQLite: the persistent job queue and
 * its event logs, images, batches, settings, user templates and step-duration
 * statistics. The lifecycle and its invariants are described in store/jobs.h.
 *
 * Invariants kept here:
 *  - a job is written in one statement (or one BEGIN IMMEDIATE transaction)
 *    before any caller answers a client;
 *  - claim is one UPDATE ... RETURNING: two workers can never claim one row;
 *  - finish/requeue check (status = 'running' AND attempts = attempt), the
 *    fencing token of the claim, so a stale attempt cannot overwrite a newer
 *    one and a job completes at most once;
 *  - images are UNIQUE (job_id, idx) and inserted OR IGNORE in the same
 *    transaction as the final status;
 *  - job_events.seq is dense per job (1, 2, 3, ...) and taken from
 *    jobs.event_seq inside the transaction that writes the event.
 */
#include "store/jobs.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/fs.h"
#include "store/store_impl.h"

static const char *const k_status_names[] = {"queued", "running", "succeeded", "failed", "cancelled", "partial"};

const char *m2p_job_status_name(m2p_job_status s) {
    if ((int)s < 0 || (size_t)s >= sizeof k_status_names / sizeof k_status_names[0]) {
        return "unknown";
    }
    return k_status_names[s];
}

bool m2p_job_status_parse(const char *name, m2p_job_status *out) {
    for (size_t i = 0; i < sizeof k_status_names / sizeof k_status_names[0]; i++) {
        if (name != NULL && strcmp(name, k_status_names[i]) == 0) {
            *out = (m2p_job_status)i;
            return true;
        }
    }
    return false;
}

/* ---- small SQLite helpers ------------------------------------------------------------------ */

static m2p_code prep(m2p_store *s, const char *sql, m2p_db_stmt **st, m2p_error *err) {
    return m2p_db_prepare(s, sql, st, err);
}

static m2p_code exec_sql(m2p_store *s, const char *sql, m2p_error *err) {
    int rc = m2p_db_exec(s, sql);
    if (rc != 0) {
        return m2p_store_db_error(s, rc, sql, err);
    }
    return M2P_OK;
}

static m2p_code begin_write(m2p_store *s, m2p_error *err) {
    return exec_sql(s, "BEGIN IMMEDIATE", err);
}

static void rollback(m2p_store *s) {
    (void)m2p_db_exec(s, "ROLLBACK");
}

static m2p_code commit(m2p_store *s, m2p_error *err) {
    m2p_code c = exec_sql(s, "COMMIT", err);
    if (c != M2P_OK) {
        rollback(s);
    }
    return c;
}

/* Steps a statement expected to finish (no rows wanted). */
static m2p_code step_done(m2p_store *s, m2p_db_stmt *st, const char *what, m2p_error *err) {
    int rc = m2p_db_step(st);
    if (rc != M2P_DB_DONE && rc != M2P_DB_ROW) {
        return m2p_store_db_error(s, rc, what, err);
    }
    return M2P_OK;
}

static void bind_text_or_null(m2p_db_stmt *st, int i, const char *v) {
    (void)m2p_db_bind_text(st, i, v); /* NULL binds a (text) NULL */
}

/* The current row as a JSON object keyed by column name. Columns whose name
 * ends in "_json" are parsed and stored without the suffix (NULL or invalid → null). */
static json_t *row_to_json(m2p_db_stmt *st) {
    json_t *o = json_object();
    if (o == NULL) {
        return NULL;
    }
    int n = m2p_db_column_count(st);
    for (int i = 0; i < n; i++) {
        const char *name = m2p_db_column_name(st, i);
        json_t *v = NULL;
        size_t nlen = strlen(name);
        bool is_json = nlen > 5 && strcmp(name + nlen - 5, "_json") == 0;
        switch (m2p_db_column_type(st, i)) {
        case M2P_DB_INTEGER:
            v = json_integer(m2p_db_column_int64(st, i));
            break;
        case M2P_DB_FLOAT:
            v = json_real(m2p_db_column_double(st, i));
            break;
        case M2P_DB_TEXT: {
            const char *t = (const char *)m2p_db_column_text(st, i);
            if (is_json) {
                v = json_loads(t, 0, NULL);
                if (v == NULL) {
                    v = json_null();
                }
            } else {
                v = json_string(t);
                if (v == NULL) {
                    v = json_null(); /* not UTF-8 */
                }
            }
            break;
        }
        default:
            v = json_null();
            break;
        }
        if (is_json) {
            char key[64];
            size_t kl = nlen - 5 < sizeof key - 1 ? nlen - 5 : sizeof key - 1;
            memcpy(key, name, kl);
            key[kl] = '\0';
            (void)json_object_set_new(o, key, v);
        } else {
            (void)json_object_set_new(o, name, v);
        }
    }
    return o;
}

/* Runs st and collects every row into a JSON array. */
static m2p_code rows_to_array(m2p_store *s, m2p_db_stmt *st, json_t **out, m2p_error *err) {
    json_t *arr = json_array();
    if (arr == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "json array");
    }
    int rc;
    while ((rc = m2p_db_step(st)) == M2P_DB_ROW) {
        json_t *o = row_to_json(st);
        if (o == NULL || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            return m2p_error_set(err, M2P_E_NOMEM, "json row");
        }
    }
    if (rc != M2P_DB_DONE) {
        json_decref(arr);
        return m2p_store_db_error(s, rc, "query", err);
    }
    *out = arr;
    return M2P_OK;
}

static m2p_code count_query(m2p_store *s, m2p_db_stmt *st, int64_t *out, m2p_error *err) {
    int rc = m2p_db_step(st);
    if (rc != M2P_DB_ROW) {
        return m2p_store_db_error(s, rc, "count", err);
    }
    *out = m2p_db_column_int64(st, 0);
    return M2P_OK;
}

/* ---- jobs ------------------------------------------------------------------------------- */

#define JOB_COLUMNS                                                                                    \
    "id, batch_id, status, spec AS spec_json, request_hash, source, style, attempts, max_attempts, "  \
    "error_code, error_message, error_detail, error_hint, created_at, updated_at, started_at, "       \
    "finished_at, not_before, progress AS progress_json, result AS result_json, track_id, "           \
    "cancel_requested, event_seq, stage, attempts - stage_base AS stage_attempt"

static m2p_code write_event(m2p_store *s, int64_t id, const char *type, json_t *data, const char *progress_json,
                            bool queue_too, int64_t *seq_out, m2p_error *err);

m2p_code m2p_store_job_insert(m2p_store *s, const m2p_job_new *nj, int64_t *id_out, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    double now = m2p_now_wall();
    m2p_code c = begin_write(s, err);
    if (c != M2P_OK) {
        return c;
    }
    c = prep(s,
                      "INSERT INTO jobs (batch_id, status, spec, request_hash, source, style, client, max_attempts,"
                      " created_at, updated_at, queue_pos)"
                      " VALUES (?1, 'queued', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8,"
                      " (SELECT coalesce(max(queue_pos), 0) + 1 FROM jobs)) RETURNING id",
                      &st, err);
    if (c != M2P_OK) {
        return c;
    }
    if (nj->batch_id > 0) {
        (void)m2p_db_bind_int64(st, 1, nj->batch_id);
    } else {
        (void)m2p_db_bind_null(st, 1);
    }
    bind_text_or_null(st, 2, nj->spec_json);
    bind_text_or_null(st, 3, nj->request_hash);
    (void)m2p_db_bind_text(st, 4, nj->source != NULL ? nj->source : "");
    (void)m2p_db_bind_text(st, 5, nj->style != NULL ? nj->style : "");
    (void)m2p_db_bind_text(st, 6, nj->client != NULL ? nj->client : "");
    (void)m2p_db_bind_int(st, 7, nj->max_attempts > 0 ? nj->max_attempts : 1);
    (void)m2p_db_bind_double(st, 8, now);
    int rc = m2p_db_step(st);
    if (rc == M2P_DB_ROW) {
        *id_out = m2p_db_column_int64(st, 0);
        rc = m2p_db_step(st);
        c = M2P_OK;
    } else {
        c = m2p_store_db_error(s, rc, "insert job", err);
    }
    (void)m2p_db_finalize(st);
    if (c == M2P_OK) {
        /* The job's first event ("queued", seq 1) commits with the row. */
        json_t *d = json_pack("{s:s}", "status", "queued");
        c = d != NULL ? write_event(s, *id_out, "state", d, NULL, true, NULL, err)
                      : m2p_error_set(err, M2P_E_NOMEM, "event");
        json_decref(d);
    }
    if (c != M2P_OK) {
        rollback(s);
        return c;
    }
    return commit(s, err);
}

m2p_code m2p_store_job_find_hash(m2p_store *s, const char *request_hash, int64_t *id_out, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s,
                      "SELECT id FROM jobs WHERE request_hash = ?1 AND status = 'succeeded'"
                      " ORDER BY id DESC LIMIT 1",
                      &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_text(st, 1, request_hash);
    int rc = m2p_db_step(st);
    if (rc == M2P_DB_ROW) {
        *id_out = m2p_db_column_int64(st, 0);
        c = M2P_OK;
    } else if (rc == M2P_DB_DONE) {
        c = M2P_E_NOT_FOUND;
    } else {
        c = m2p_store_db_error(s, rc, "find job", err);
    }
    (void)m2p_db_finalize(st);
    return c;
}

/* Replaces the flat error_* fields of a job object by "error": {...} or null. */
static void shape_job(json_t *o) {
    json_t *code = json_object_get(o, "error_code");
    if (json_is_string(code)) {
        json_t *e = json_pack("{s:O, s:O, s:O, s:O}", "code", code, "message", json_object_get(o, "error_message"),
                              "detail", json_object_get(o, "error_detail"), "hint",
                              json_object_get(o, "error_hint"));
        (void)json_object_set_new(o, "error", e != NULL ? e : json_null());
    } else {
        (void)json_object_set_new(o, "error", json_null());
    }
    (void)json_object_del(o, "error_code");
    (void)json_object_del(o, "error_message");
    (void)json_object_del(o, "error_detail");
    (void)json_object_del(o, "error_hint");
    json_t *cr = json_object_get(o, "cancel_requested");
    (void)json_object_set_new(o, "cancel_requested", json_boolean(json_integer_value(cr) != 0));
    /* Server paths stay on the server: clients see the stored file's name only. */
    json_t *spec = json_object_get(o, "spec");
    const char *up = json_string_value(json_object_get(spec, "upload_path"));
    if (up != NULL) {
        const char *slash = strrchr(up, '/');
        (void)json_object_set_new(spec, "upload_file", json_string(slash != NULL ? slash + 1 : up));
        (void)json_object_del(spec, "upload_path");
    }
}

static m2p_code queue_position(m2p_store *s, int64_t id, int64_t *pos, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s,
                      "SELECT count(*) FROM jobs WHERE status = 'queued'"
                      " AND stage = (SELECT stage FROM jobs WHERE id = ?1) AND queue_pos <="
                      " (SELECT queue_pos FROM jobs WHERE id = ?1 AND status = 'queued')",
                      &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_int64(st, 1, id);
    c = count_query(s, st, pos, err);
    (void)m2p_db_finalize(st);
    return c;
}

static m2p_code job_images(m2p_store *s, int64_t id, json_t **out, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s,
                      "SELECT id, idx AS \"index\", seed, width, height, renderer, style, created_at,"
                      " '/api/images/' || id AS url, '/api/images/' || id || '/thumb' AS thumb_url"
                      " FROM images WHERE job_id = ?1 ORDER BY idx",
                      &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_int64(st, 1, id);
    c = rows_to_array(s, st, out, err);
    (void)m2p_db_finalize(st);
    return c;
}

m2p_code m2p_store_job_get(m2p_store *s, int64_t id, json_t **out, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?1", &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_int64(st, 1, id);
    int rc = m2p_db_step(st);
    if (rc == M2P_DB_DONE) {
        (void)m2p_db_finalize(st);
        return m2p_error_set(err, M2P_E_JOB_NOT_FOUND, "job %lld", (long long)id);
    }
    if (rc != M2P_DB_ROW) {
        c = m2p_store_db_error(s, rc, "get job", err);
        (void)m2p_db_finalize(st);
        return c;
    }
    json_t *o = row_to_json(st);
    (void)m2p_db_finalize(st);
    if (o == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "job json");
    }
    shape_job(o);
    int64_t pos = 0;
    json_t *imgs = NULL;
    c = queue_position(s, id, &pos, err);
    if (c == M2P_OK) {
        c = job_images(s, id, &imgs, err);
    }
    if (c != M2P_OK) {
        json_decref(o);
        return c;
    }
    (void)json_object_set_new(o, "queue_position", json_integer(pos));
    (void)json_object_set_new(o, "images", imgs);
    *out = o;
    return M2P_OK;
}

/* WHERE clause shared by list and count; binds come in this fixed order. */
#define JOB_WHERE                                                                                      \
    " WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR instr(source, ?2) > 0)"                    \
    " AND (?3 IS NULL OR style = ?3) AND (?4 = 0 OR created_at >= ?4) AND (?5 = 0 OR created_at <= ?5)" \
    " AND (?6 = 0 OR batch_id = ?6)"

static void bind_job_filter(m2p_db_stmt *st, const m2p_job_filter *f) {
    bind_text_or_null(st, 1, f->status);
    bind_text_or_null(st, 2, f->source);
    bind_text_or_null(st, 3, f->style);
    (void)m2p_db_bind_double(st, 4, f->from);
    (void)m2p_db_bind_double(st, 5, f->to);
    (void)m2p_db_bind_int64(st, 6, f->batch_id);
}

m2p_code m2p_store_job_list(m2p_store *s, const m2p_job_filter *f, json_t **out, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    json_t *arr = NULL;
    int64_t total = 0;
    m2p_code c = prep(s, "SELECT count(*) FROM jobs" JOB_WHERE, &st, err);
    if (c != M2P_OK) {
        return c;
    }
    bind_job_filter(st, f);
    c = count_query(s, st, &total, err);
    (void)m2p_db_finalize(st);
    if (c != M2P_OK) {
        return c;
    }
    c = prep(s, "SELECT " JOB_COLUMNS " FROM jobs" JOB_WHERE " ORDER BY id DESC LIMIT ?7 OFFSET ?8", &st, err);
    if (c != M2P_OK) {
        return c;
    }
    bind_job_filter(st, f);
    int limit = f->limit < 1 ? 50 : (f->limit > 500 ? 500 : f->limit);
    (void)m2p_db_bind_int(st, 7, limit);
    (void)m2p_db_bind_int(st, 8, f->offset < 0 ? 0 : f->offset);
    c = rows_to_array(s, st, &arr, err);
    (void)m2p_db_finalize(st);
    if (c != M2P_OK) {
        return c;
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        shape_job(v);
        (void)json_object_del(v, "progress"); /* the list stays small; GET /api/jobs/{id} has it */
    }
    *out = json_pack("{s:o, s:I, s:i, s:i}", "jobs", arr, "total", (json_int_t)total, "limit", limit, "offset",
                     f->offset < 0 ? 0 : f->offset);
    return *out != NULL ? M2P_OK : m2p_error_set(err, M2P_E_NOMEM, "json");
}

const char *m2p_job_stage_name(m2p_job_stage st) {
    return st == M2P_STAGE_RENDER ? "render" : "analyze";
}

bool m2p_job_stage_parse(const char *name, m2p_job_stage *out) {
    if (name != NULL && strcmp(name, "analyze") == 0) {
        *out = M2P_STAGE_ANALYZE;
        return true;
    }
    if (name != NULL && strcmp(name, "render") == 0) {
        *out = M2P_STAGE_RENDER;
        return true;
    }
    return false;
}

void m2p_job_claim_clear(m2p_job_claim *c) {
    if (c != NULL) {
        m2p_free(c->spec_json);
        m2p_free(c->stage_json);
        memset(c, 0, sizeof *c);
    }
}

/* Fails running jobs whose lease ran out (no heartbeat for lease_s) and whose
 * attempts are used up: the worker died during every attempt. */
static m2p_code fail_expired(m2p_store *s, double now, double lease_s, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s,
                      "UPDATE jobs SET status = 'failed', error_code = ?1, error_message = ?2,"
                      " error_detail = 'the worker running it stopped during every attempt', error_hint = ?3,"
                      " finished_at = ?4, updated_at = ?4"
                      " WHERE status = 'running' AND updated_at < ?4 - ?5 AND attempts - stage_base >= max_attempts"
                      " RETURNING id",
                      &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_text(st, 1, m2p_errname(M2P_E_JOB_INTERRUPTED));
    (void)m2p_db_bind_text(st, 2, m2p_strerror(M2P_E_JOB_INTERRUPTED));
    (void)m2p_db_bind_text(st, 3, m2p_errhint(M2P_E_JOB_INTERRUPTED));
    (void)m2p_db_bind_double(st, 4, now);
    (void)m2p_db_bind_double(st, 5, lease_s);
    int64_t ids[64];
    int n = 0;
    int rc;
    while ((rc = m2p_db_step(st)) == M2P_DB_ROW) {
        if (n < 64) {
            ids[n++] = m2p_db_column_int64(st, 0);
        }
    }
    m2p_db_finalize(st);
    if (rc != M2P_DB_DONE) {
        return m2p_store_db_error(s, rc, "expire jobs", err);
    }
    for (int i = 0; i < n; i++) {
        json_t *d = json_pack("{s:s, s:{s:s, s:s, s:s, s:s}}", "status", "failed", "error", "code",
                              m2p_errname(M2P_E_JOB_INTERRUPTED), "message", m2p_strerror(M2P_E_JOB_INTERRUPTED),
                              "detail", "the worker running it stopped during every attempt", "hint",
                              m2p_errhint(M2P_E_JOB_INTERRUPTED));
        m2p_error e;
        if (d != NULL && m2p_store_job_event(s, ids[i], "state", d, NULL, true, NULL, &e) != M2P_OK) {
            json_decref(d);
            return m2p_error_set(err, e.code, "%s", e.detail);
        }
        json_decref(d);
    }
    return M2P_OK;
}

static m2p_code claim(m2p_store *s, int64_t only_id, unsigned stages, double now, double lease_s,
                      m2p_job_claim *out, m2p_error *err) {
    memset(out, 0, sizeof *out);
    if (lease_s > 0) {
        m2p_code fc = fail_expired(s, now, lease_s, err);
        if (fc != M2P_OK) {
            return fc;
        }
    }
    m2p_db_stmt *st = NULL;
    /* One statement: pick the oldest runnable row (queued and due, or running
     * with an expired lease and attempts left) and take it. PostgreSQL locks
     * the picked row and skips rows other workers are taking (SKIP LOCKED);
     * SQLite has one writer at a time. */
    m2p_code c = prep(s,
                      s->kind == M2P_STORE_POSTGRES
                          ? "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ?1,"
                            " updated_at = ?1, cancel_requested = 0"
                            " WHERE id = (SELECT id FROM jobs WHERE ((status = 'queued' AND not_before <= ?1)"
                            "   OR (status = 'running' AND ?2 > 0 AND updated_at < ?1 - ?2"
                            "       AND attempts - stage_base < max_attempts))"
                            "   AND (?3 = 0 OR id = ?3)"
                            "   AND ((stage = 'analyze' AND ?4 = 1) OR (stage = 'render' AND ?5 = 1))"
                            "   AND NOT EXISTS (SELECT 1 FROM settings WHERE key = 'queue_paused' AND value = '1')"
                            "   ORDER BY queue_pos LIMIT 1 FOR UPDATE SKIP LOCKED)"
                            " RETURNING id, attempts, max_attempts, spec, stage, stage_data"
                          : "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ?1,"
                            " updated_at = ?1, cancel_requested = 0"
                            " WHERE id = (SELECT id FROM jobs WHERE ((status = 'queued' AND not_before <= ?1)"
                            "   OR (status = 'running' AND ?2 > 0 AND updated_at < ?1 - ?2"
                            "       AND attempts - stage_base < max_attempts))"
                            "   AND (?3 = 0 OR id = ?3)"
                            "   AND ((stage = 'analyze' AND ?4 = 1) OR (stage = 'render' AND ?5 = 1))"
                            "   ORDER BY queue_pos LIMIT 1)"
                            " AND NOT EXISTS (SELECT 1 FROM settings WHERE key = 'queue_paused' AND value = '1')"
                            " RETURNING id, attempts, max_attempts, spec, stage, stage_data",
                      &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_double(st, 1, now);
    (void)m2p_db_bind_double(st, 2, lease_s > 0 ? lease_s : 0);
    (void)m2p_db_bind_int64(st, 3, only_id);
    (void)m2p_db_bind_int(st, 4, (stages & M2P_STAGES_ANALYZE) != 0 ? 1 : 0);
    (void)m2p_db_bind_int(st, 5, (stages & M2P_STAGES_RENDER) != 0 ? 1 : 0);
    int rc = m2p_db_step(st);
    if (rc == M2P_DB_ROW) {
        out->id = m2p_db_column_int64(st, 0);
        out->attempt = m2p_db_column_int(st, 1);
        out->max_attempts = m2p_db_column_int(st, 2);
        const unsigned char *spec = m2p_db_column_text(st, 3);
        out->spec_json = m2p_strdup(spec != NULL ? (const char *)spec : "");
        if (!m2p_job_stage_parse((const char *)m2p_db_column_text(st, 4), &out->stage)) {
            out->stage = M2P_STAGE_ANALYZE;
        }
        const unsigned char *sd = m2p_db_column_text(st, 5);
        if (sd != NULL && m2p_db_column_type(st, 5) != M2P_DB_NULL) {
            out->stage_json = m2p_strdup((const char *)sd);
        }
        /* a render claim without its stage data would redo or lose the analysis */
        c = out->spec_json != NULL && (sd == NULL || m2p_db_column_type(st, 5) == M2P_DB_NULL || out->stage_json != NULL)
                ? M2P_OK
                : m2p_error_set(err, M2P_E_NOMEM, "claim of job %lld: copying its spec and stage data",
                                (long long)out->id);
        /* Finish the statement so the UPDATE commits. */
        rc = m2p_db_step(st);
        if (c == M2P_OK && rc != M2P_DB_DONE) {
            c = m2p_store_db_error(s, rc, "claim", err);
        }
    } else if (rc == M2P_DB_DONE) {
        c = M2P_E_NOT_FOUND;
    } else {
        c = m2p_store_db_error(s, rc, "claim", err);
    }
    m2p_db_finalize(st);
    if (c != M2P_OK) {
        m2p_job_claim_clear(out);
    }
    return c;
}

m2p_code m2p_store_job_claim(m2p_store *s, double now, m2p_job_claim *out, m2p_error *err) {
    return claim(s, 0, M2P_STAGES_ALL, now, 0, out, err);
}

m2p_code m2p_store_job_claim_lease(m2p_store *s, double now, double lease_s, m2p_job_claim *out, m2p_error *err) {
    return claim(s, 0, M2P_STAGES_ALL, now, lease_s, out, err);
}

m2p_code m2p_store_job_claim_stage(m2p_store *s, int64_t only_id, unsigned stages, double now, double lease_s,
                                   m2p_job_claim *out, m2p_error *err) {
    if (only_id < 0 || (stages & M2P_STAGES_ALL) == 0) {
        memset(out, 0, sizeof *out);
        return M2P_E_NOT_FOUND;
    }
    return claim(s, only_id, stages, now, lease_s, out, err);
}

m2p_code m2p_store_job_claim_id(m2p_store *s, int64_t id, double now, double lease_s, m2p_job_claim *out,
                                m2p_error *err) {
    if (id <= 0) {
        memset(out, 0, sizeof *out);
        return M2P_E_NOT_FOUND;
    }
    return claim(s, id, M2P_STAGES_ALL, now, lease_s, out, err);
}

m2p_code m2p_store_job_expire(m2p_store *s, double now, double lease_s, m2p_error *err) {
    return lease_s > 0 ? fail_expired(s, now, lease_s, err) : M2P_OK;
}

m2p_code m2p_store_job_runnable(m2p_store *s, double now, double lease_s, int64_t *ids, size_t cap, size_t *n,
                                m2p_error *err) {
    return m2p_store_job_runnable_stages(s, now, lease_s, ids, NULL, cap, n, err);
}

m2p_code m2p_store_job_runnable_stages(m2p_store *s, double now, double lease_s, int64_t *ids, m2p_job_stage *stages,
                                       size_t cap, size_t *n, m2p_error *err) {
    *n = 0;
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s,
                      "SELECT id, stage FROM jobs WHERE ((status = 'queued' AND not_before <= ?1)"
                      " OR (status = 'running' AND ?2 > 0 AND updated_at < ?1 - ?2"
                      "     AND attempts - stage_base < max_attempts))"
                      " AND NOT EXISTS (SELECT 1 FROM settings WHERE key = 'queue_paused' AND value = '1')"
                      " ORDER BY queue_pos LIMIT ?3",
                      &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_double(st, 1, now);
    (void)m2p_db_bind_double(st, 2, lease_s > 0 ? lease_s : 0);
    (void)m2p_db_bind_int64(st, 3, (int64_t)cap);
    int rc;
    while ((rc = m2p_db_step(st)) == M2P_DB_ROW && *n < cap) {
        ids[*n] = m2p_db_column_int64(st, 0);
        if (stages != NULL && !m2p_job_stage_parse((const char *)m2p_db_column_text(st, 1), &stages[*n])) {
            stages[*n] = M2P_STAGE_ANALYZE;
        }
        (*n)++;
    }
    m2p_db_finalize(st);
    if (rc != M2P_DB_DONE && rc != M2P_DB_ROW) {
        return m2p_store_db_error(s, rc, "runnable jobs", err);
    }
    return M2P_OK;
}

m2p_code m2p_store_job_advance(m2p_store *s, int64_t id, int attempt, const char *stage_json, bool keep,
                               bool *applied, m2p_error *err) {
    *applied = false;
    m2p_db_stmt *st = NULL;
    /* keep: the same worker goes on rendering under the same claim, and the
     * job keeps one attempt budget, as before stages existed (a process that
     * runs both stages behaves exactly as one that runs whole jobs); else the
     * row waits, queued, for a render worker, and the render stage gets a
     * budget of its own (stage_base = attempts: its first claim is render
     * attempt 1), so a handoff does not eat the render's retries.
     * A cancel that arrived after the analysis is not lost: such a row does
     * not move (cancel_requested = 0), and the worker ends it as cancelled. */
    m2p_code c = prep(s,
                      keep ? "UPDATE jobs SET stage = 'render', stage_data = ?1,"
                             " error_code = NULL, error_message = NULL, error_detail = NULL, error_hint = NULL,"
                             " updated_at = ?2"
                             " WHERE id = ?3 AND status = 'running' AND attempts = ?4 AND stage = 'analyze'"
                             " AND cancel_requested = 0"
                           : "UPDATE jobs SET stage = 'render', stage_data = ?1, stage_base = attempts,"
                             " status = 'queued', not_before = 0, error_code = NULL, error_message = NULL,"
                             " error_detail = NULL, error_hint = NULL, updated_at = ?2"
                             " WHERE id = ?3 AND status = 'running' AND attempts = ?4 AND stage = 'analyze'"
                             " AND cancel_requested = 0",
                      &st, err);
    if (c != M2P_OK) {
        return c;
    }
    bind_text_or_null(st, 1, stage_json);
    (void)m2p_db_bind_double(st, 2, m2p_now_wall());
    (void)m2p_db_bind_int64(st, 3, id);
    (void)m2p_db_bind_int(st, 4, attempt);
    c = step_done(s, st, "advance job", err);
    m2p_db_finalize(st);
    if (c == M2P_OK) {
        *applied = m2p_db_changes(s) > 0;
    }
    return c;
}

m2p_code m2p_store_job_fail_poison(m2p_store *s, int64_t id, const char *detail, bool *applied, m2p_error *err) {
    *applied = false;
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s,
                      "UPDATE jobs SET status = 'failed', error_code = ?1, error_message = ?2, error_detail = ?3,"
                      " error_hint = ?4, finished_at = ?5, updated_at = ?5"
                      " WHERE id = ?6 AND status IN ('queued', 'running')",
                      &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_text(st, 1, m2p_errname(M2P_E_JOB_INTERRUPTED));
    (void)m2p_db_bind_text(st, 2, m2p_strerror(M2P_E_JOB_INTERRUPTED));
    (void)m2p_db_bind_text(st, 3, detail);
    (void)m2p_db_bind_text(st, 4, m2p_errhint(M2P_E_JOB_INTERRUPTED));
    (void)m2p_db_bind_double(st, 5, m2p_now_wall());
    (void)m2p_db_bind_int64(st, 6, id);
    c = step_done(s, st, "fail job", err);
    m2p_db_finalize(st);
    if (c == M2P_OK && m2p_db_changes(s) > 0) {
        *applied = true;
        json_t *d = json_pack("{s:s, s:{s:s, s:s, s:s, s:s}}", "status", "failed", "error", "code",
                              m2p_errname(M2P_E_JOB_INTERRUPTED), "message", m2p_strerror(M2P_E_JOB_INTERRUPTED),
                              "detail", detail, "hint", m2p_errhint(M2P_E_JOB_INTERRUPTED));
        c = d != NULL ? m2p_store_job_event(s, id, "state", d, NULL, true, NULL, err)
                      : m2p_error_set(err, M2P_E_NOMEM, "event");
        json_decref(d);
    }
    return c;
}

m2p_code m2p_store_job_heartbeat(m2p_store *s, int64_t id, int attempt, double now, bool *cancel, bool *lost,
                                 m2p_error *err) {
    *cancel = false;
    *lost = false;
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s,
                      "UPDATE jobs SET updated_at = ?1 WHERE id = ?2 AND status = 'running' AND attempts = ?3"
                      " RETURNING cancel_requested",
                      &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_double(st, 1, now);
    (void)m2p_db_bind_int64(st, 2, id);
    (void)m2p_db_bind_int(st, 3, attempt);
    int rc = m2p_db_step(st);
    if (rc == M2P_DB_ROW) {
        *cancel = m2p_db_column_int64(st, 0) != 0;
        rc = m2p_db_step(st);
    } else if (rc == M2P_DB_DONE) {
        *lost = true;
    }
    if (rc != M2P_DB_DONE) {
        c = m2p_store_db_error(s, rc, "heartbeat", err);
    }
    m2p_db_finalize(st);
    return c;
}

static void bind_error(m2p_db_stmt *st, int first, m2p_code code, const char *detail) {
    if (code == M2P_OK) {
        for (int i = 0; i < 4; i++) {
            (void)m2p_db_bind_null(st, first + i);
        }
        return;
    }
    (void)m2p_db_bind_text(st, first, m2p_errname(code));
    (void)m2p_db_bind_text(st, first + 1, m2p_strerror(code));
    bind_text_or_null(st, first + 2, detail != NULL && detail[0] != '\0' ? detail : NULL);
    (void)m2p_db_bind_text(st, first + 3, m2p_errhint(code));
}

static m2p_code insert_image(m2p_store *s, int64_t job_id, const m2p_image_row *r, double now, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s,
                      "INSERT INTO images (job_id, idx, seed, path, width, height, prompt, style,"
                      " renderer, model, metadata, track_id, source, tempo, key, mode, created_at)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
                      " ON CONFLICT (job_id, idx) DO NOTHING",
                      &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_int64(st, 1, job_id);
    (void)m2p_db_bind_int(st, 2, r->index);
    (void)m2p_db_bind_int64(st, 3, (int64_t)r->seed);
    (void)m2p_db_bind_text(st, 4, r->path != NULL ? r->path : "");
    (void)m2p_db_bind_int(st, 5, r->width);
    (void)m2p_db_bind_int(st, 6, r->height);
    (void)m2p_db_bind_text(st, 7, r->prompt != NULL ? r->prompt : "");
    (void)m2p_db_bind_text(st, 8, r->style != NULL ? r->style : "");
    (void)m2p_db_bind_text(st, 9, r->renderer != NULL ? r->renderer : "");
    (void)m2p_db_bind_text(st, 10, r->model != NULL ? r->model : "");
    bind_text_or_null(st, 11, r->metadata_json);
    if (r->track_id > 0) {
        (void)m2p_db_bind_int64(st, 12, r->track_id);
    } else {
        (void)m2p_db_bind_null(st, 12);
    }
    (void)m2p_db_bind_text(st, 13, r->source != NULL ? r->source : "");
    (void)m2p_db_bind_double(st, 14, r->tempo);
    (void)m2p_db_bind_text(st, 15, r->key != NULL ? r->key : "");
    (void)m2p_db_bind_text(st, 16, r->mode != NULL ? r->mode : "");
    (void)m2p_db_bind_double(st, 17, now);
    c = step_done(s, st, "insert image", err);
    m2p_db_finalize(st);
    if (c == M2P_OK && r->png != NULL) {
        c = prep(s,
                 "INSERT INTO image_data (image_id, png) SELECT id, ?3 FROM images WHERE job_id = ?1 AND idx = ?2"
                 " ON CONFLICT (image_id) DO NOTHING",
                 &st, err);
        if (c == M2P_OK) {
            (void)m2p_db_bind_int64(st, 1, job_id);
            (void)m2p_db_bind_int(st, 2, r->index);
            if (m2p_db_bind_blob(st, 3, r->png, r->png_len) != 0) {
                c = m2p_error_set(err, M2P_E_NOMEM, "image bytes");
            } else {
                c = step_done(s, st, "insert image bytes", err);
            }
            m2p_db_finalize(st);
        }
    }
    return c;
}

m2p_code m2p_store_job_finish(m2p_store *s, int64_t id, int attempt, const m2p_job_outcome *o, bool *applied,
                              m2p_error *err) {
    *applied = false;
    double now = m2p_now_wall();
    m2p_code c = begin_write(s, err);
    if (c != M2P_OK) {
        return c;
    }
    m2p_db_stmt *st = NULL;
    c = prep(s,
             "UPDATE jobs SET status = ?1, error_code = ?2, error_message = ?3, error_detail = ?4, error_hint = ?5,"
             " result = coalesce(?6, result), track_id = coalesce(?7, track_id), finished_at = ?8, updated_at = ?8,"
             " not_before = 0, progress = coalesce(?11, progress)"
             " WHERE id = ?9 AND status = 'running' AND attempts = ?10",
             &st, err);
    if (c != M2P_OK) {
        rollback(s);
        return c;
    }
    (void)m2p_db_bind_text(st, 1, m2p_job_status_name(o->status));
    bind_error(st, 2, o->code, o->detail);
    bind_text_or_null(st, 6, o->result_json);
    if (o->track_id > 0) {
        (void)m2p_db_bind_int64(st, 7, o->track_id);
    } else {
        (void)m2p_db_bind_null(st, 7);
    }
    (void)m2p_db_bind_double(st, 8, now);
    (void)m2p_db_bind_int64(st, 9, id);
    (void)m2p_db_bind_int(st, 10, attempt);
    bind_text_or_null(st, 11, o->progress_json);
    c = step_done(s, st, "finish job", err);
    (void)m2p_db_finalize(st);
    if (c != M2P_OK) {
        rollback(s);
        return c;
    }
    if ((int)m2p_db_changes(s) == 0) {
        rollback(s);
        return M2P_OK; /* the row moved on: nothing to do */
    }
    for (size_t i = 0; i < o->n_images; i++) {
        c = insert_image(s, id, &o->images[i], now, err);
        if (c != M2P_OK) {
            rollback(s);
            return c;
        }
    }
    c = commit(s, err);
    if (c == M2P_OK) {
        *applied = true;
    }
    return c;
}

m2p_code m2p_store_job_requeue(m2p_store *s, int64_t id, int attempt, double when, m2p_code code, const char *detail,
                               bool uncount, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s,
                      "UPDATE jobs SET status = 'queued', not_before = ?1, attempts = attempts - ?2,"
                      " error_code = ?3, error_message = ?4, error_detail = ?5, error_hint = ?6, updated_at = ?7,"
                      " cancel_requested = 0"
                      " WHERE id = ?8 AND status = 'running' AND attempts = ?9",
                      &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_double(st, 1, when);
    (void)m2p_db_bind_int(st, 2, uncount ? 1 : 0);
    bind_error(st, 3, code, detail);
    (void)m2p_db_bind_double(st, 7, m2p_now_wall());
    (void)m2p_db_bind_int64(st, 8, id);
    (void)m2p_db_bind_int(st, 9, attempt);
    c = step_done(s, st, "requeue job", err);
    (void)m2p_db_finalize(st);
    return c;
}

/* Reads a job's status inside the current transaction. */
static m2p_code job_status(m2p_store *s, int64_t id, m2p_job_status *out, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s, "SELECT status FROM jobs WHERE id = ?1", &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_int64(st, 1, id);
    int rc = m2p_db_step(st);
    if (rc == M2P_DB_ROW) {
        if (!m2p_job_status_parse((const char *)m2p_db_column_text(st, 0), out)) {
            c = m2p_error_set(err, M2P_E_INTERNAL, "job %lld has an unknown status", (long long)id);
        }
    } else if (rc == M2P_DB_DONE) {
        c = m2p_error_set(err, M2P_E_JOB_NOT_FOUND, "job %lld", (long long)id);
    } else {
        c = m2p_store_db_error(s, rc, "job status", err);
    }
    (void)m2p_db_finalize(st);
    return c;
}

static m2p_code exec_id(m2p_store *s, const char *sql, int64_t id, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s, sql, &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_int64(st, 1, id);
    (void)m2p_db_bind_double(st, 2, m2p_now_wall());
    c = step_done(s, st, sql, err);
    (void)m2p_db_finalize(st);
    return c;
}

m2p_code m2p_store_job_cancel(m2p_store *s, int64_t id, bool *was_running, m2p_error *err) {
    *was_running = false;
    m2p_code c = begin_write(s, err);
    if (c != M2P_OK) {
        return c;
    }
    m2p_job_status status;
    c = job_status(s, id, &status, err);
    if (c == M2P_OK) {
        if (status == M2P_JOB_QUEUED) {
            c = exec_id(s,
                        "UPDATE jobs SET status = 'cancelled', error_code = 'cancelled', error_message = 'cancelled',"
                        " error_detail = 'cancelled before it started', error_hint = NULL,"
                        " finished_at = ?2, updated_at = ?2 WHERE id = ?1",
                        id, err);
        } else if (status == M2P_JOB_RUNNING) {
            c = exec_id(s, "UPDATE jobs SET cancel_requested = 1, updated_at = ?2 WHERE id = ?1", id, err);
            *was_running = true;
        } else {
            c = m2p_error_set(err, M2P_E_JOB_STATE, "job %lld is %s", (long long)id, m2p_job_status_name(status));
        }
    }
    if (c != M2P_OK) {
        rollback(s);
        return c;
    }
    return commit(s, err);
}

m2p_code m2p_store_job_retry(m2p_store *s, int64_t id, m2p_error *err) {
    m2p_code c = begin_write(s, err);
    if (c != M2P_OK) {
        return c;
    }
    m2p_job_status status;
    c = job_status(s, id, &status, err);
    if (c == M2P_OK && status != M2P_JOB_FAILED && status != M2P_JOB_CANCELLED && status != M2P_JOB_PARTIAL) {
        c = m2p_error_set(err, M2P_E_JOB_STATE, "job %lld is %s; only failed, cancelled or partial jobs can be retried",
                          (long long)id, m2p_job_status_name(status));
    }
    if (c == M2P_OK) {
        c = exec_id(s,
                    "UPDATE jobs SET status = 'queued', attempts = 0, stage = 'analyze', stage_data = NULL,"
                    " stage_base = 0, not_before = 0, error_code = NULL,"
                    " error_message = NULL, error_detail = NULL, error_hint = NULL, cancel_requested = 0,"
                    " started_at = NULL, finished_at = NULL, updated_at = ?2,"
                    " queue_pos = (SELECT coalesce(max(queue_pos), 0) + 1 FROM jobs) WHERE id = ?1",
                    id, err);
    }
    if (c != M2P_OK) {
        rollback(s);
        return c;
    }
    return commit(s, err);
}

m2p_code m2p_store_job_delete(m2p_store *s, int64_t id, m2p_error *err) {
    m2p_code c = begin_write(s, err);
    if (c != M2P_OK) {
        return c;
    }
    m2p_job_status status;
    c = job_status(s, id, &status, err);
    if (c == M2P_OK && status == M2P_JOB_RUNNING) {
        c = m2p_error_set(err, M2P_E_JOB_STATE, "job %lld is running; cancel it first", (long long)id);
    }
    if (c == M2P_OK) {
        c = exec_id(s, "DELETE FROM images WHERE job_id = ?1 AND ?2 IS NOT NULL", id, err);
    }
    if (c == M2P_OK) {
        c = exec_id(s, "DELETE FROM job_events WHERE job_id = ?1 AND ?2 IS NOT NULL", id, err);
    }
    if (c == M2P_OK) {
        c = exec_id(s, "DELETE FROM jobs WHERE id = ?1 AND ?2 IS NOT NULL", id, err);
    }
    if (c != M2P_OK) {
        rollback(s);
        return c;
    }
    return commit(s, err);
}

m2p_code m2p_store_job_recover(m2p_store *s, int *requeued, int *failed, m2p_error *err) {
    *requeued = 0;
    *failed = 0;
    m2p_code c = begin_write(s, err);
    if (c != M2P_OK) {
        return c;
    }
    m2p_db_stmt *st = NULL;
    c = prep(s,
             "UPDATE jobs SET status = 'failed', error_code = ?1, error_message = ?2,"
             " error_detail = 'the server stopped during every attempt', error_hint = ?3,"
             " finished_at = ?4, updated_at = ?4 WHERE status = 'running' AND attempts - stage_base >= max_attempts",
             &st, err);
    if (c == M2P_OK) {
        (void)m2p_db_bind_text(st, 1, m2p_errname(M2P_E_JOB_INTERRUPTED));
        (void)m2p_db_bind_text(st, 2, m2p_strerror(M2P_E_JOB_INTERRUPTED));
        (void)m2p_db_bind_text(st, 3, m2p_errhint(M2P_E_JOB_INTERRUPTED));
        (void)m2p_db_bind_double(st, 4, m2p_now_wall());
        c = step_done(s, st, "recover", err);
        *failed = (int)m2p_db_changes(s);
        (void)m2p_db_finalize(st);
    }
    if (c == M2P_OK) {
        c = exec_id(s,
                    "UPDATE jobs SET status = 'queued', not_before = 0, cancel_requested = 0, updated_at = ?2"
                    " WHERE status = 'running' AND ?1 = ?1",
                    0, err);
        *requeued = (int)m2p_db_changes(s);
    }
    if (c != M2P_OK) {
        rollback(s);
        return c;
    }
    return commit(s, err);
}

m2p_code m2p_store_job_cancel_requested(m2p_store *s, int64_t id, bool *out, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s, "SELECT cancel_requested FROM jobs WHERE id = ?1", &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_int64(st, 1, id);
    int rc = m2p_db_step(st);
    *out = rc == M2P_DB_ROW && m2p_db_column_int(st, 0) != 0;
    (void)m2p_db_finalize(st);
    return M2P_OK;
}

/* ---- events -------------------------------------------------------------------------------- */

/* Writes one event inside the caller's write transaction (no BEGIN/COMMIT here). */
static m2p_code write_event(m2p_store *s, int64_t id, const char *type, json_t *data, const char *progress_json,
                            bool queue_too, int64_t *seq_out, m2p_error *err) {
    double now = m2p_now_wall();
    m2p_code c = M2P_OK;
    m2p_db_stmt *st = NULL;
    int64_t seq = 0;
    char *text = NULL;
    c = prep(s,
             "UPDATE jobs SET event_seq = event_seq + 1, progress = coalesce(?1, progress), updated_at = ?2"
             " WHERE id = ?3 RETURNING event_seq",
             &st, err);
    if (c == M2P_OK) {
        bind_text_or_null(st, 1, progress_json);
        (void)m2p_db_bind_double(st, 2, now);
        (void)m2p_db_bind_int64(st, 3, id);
        int rc = m2p_db_step(st);
        if (rc == M2P_DB_ROW) {
            seq = m2p_db_column_int64(st, 0);
            rc = m2p_db_step(st);
        }
        if (seq == 0) {
            c = rc == M2P_DB_DONE ? m2p_error_set(err, M2P_E_JOB_NOT_FOUND, "job %lld", (long long)id)
                                  : m2p_store_db_error(s, rc, "event seq", err);
        }
        (void)m2p_db_finalize(st);
    }
    if (c == M2P_OK) {
        json_t *ev = data != NULL ? json_deep_copy(data) : json_object();
        if (ev == NULL || !json_is_object(ev)) {
            json_decref(ev);
            c = m2p_error_set(err, M2P_E_INVALID_ARG, "event data must be an object");
        } else {
            (void)json_object_set_new(ev, "seq", json_integer(seq));
            (void)json_object_set_new(ev, "type", json_string(type));
            (void)json_object_set_new(ev, "job_id", json_integer(id));
            (void)json_object_set_new(ev, "at", json_real(now));
            text = json_dumps(ev, JSON_COMPACT);
            json_decref(ev);
            if (text == NULL) {
                c = m2p_error_set(err, M2P_E_NOMEM, "event json");
            }
        }
    }
    if (c == M2P_OK) {
        c = prep(s, "INSERT INTO job_events (job_id, seq, data) VALUES (?1, ?2, ?3)", &st, err);
        if (c == M2P_OK) {
            (void)m2p_db_bind_int64(st, 1, id);
            (void)m2p_db_bind_int64(st, 2, seq);
            (void)m2p_db_bind_text(st, 3, text);
            c = step_done(s, st, "insert event", err);
            (void)m2p_db_finalize(st);
        }
    }
    if (c == M2P_OK && queue_too) {
        c = prep(s, "INSERT INTO queue_events (job_id, data) VALUES (?1, ?2)", &st, err);
        if (c == M2P_OK) {
            (void)m2p_db_bind_int64(st, 1, id);
            (void)m2p_db_bind_text(st, 2, text);
            c = step_done(s, st, "insert queue event", err);
            (void)m2p_db_finalize(st);
        }
    }
    free(text); /* jansson allocated it with its own allocator (malloc) */
    if (c == M2P_OK && seq_out != NULL) {
        *seq_out = seq;
    }
    return c;
}

m2p_code m2p_store_job_event(m2p_store *s, int64_t id, const char *type, json_t *data, const char *progress_json,
                             bool queue_too, int64_t *seq_out, m2p_error *err) {
    m2p_code c = begin_write(s, err);
    if (c != M2P_OK) {
        return c;
    }
    c = write_event(s, id, type, data, progress_json, queue_too, seq_out, err);
    if (c != M2P_OK) {
        rollback(s);
        return c;
    }
    return commit(s, err);
}

static m2p_code events_query(m2p_store *s, const char *sql, int64_t id, int64_t since, int limit, json_t **out,
                             m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s, sql, &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_int64(st, 1, since);
    (void)m2p_db_bind_int(st, 2, limit < 1 ? 1000 : limit);
    (void)m2p_db_bind_int64(st, 3, id);
    json_t *arr = json_array();
    int rc;
    while (arr != NULL && (rc = m2p_db_step(st)) == M2P_DB_ROW) {
        json_t *ev = json_loads((const char *)m2p_db_column_text(st, 0), 0, NULL);
        if (ev != NULL) {
            if (json_object_get(ev, "seq") == NULL || m2p_db_column_count(st) > 1) {
                /* queue events carry their own global sequence */
                (void)json_object_set_new(ev, "queue_seq", json_integer(m2p_db_column_int64(st, 1)));
            }
            (void)json_array_append_new(arr, ev);
        }
    }
    (void)m2p_db_finalize(st);
    if (arr == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "events");
    }
    *out = arr;
    return M2P_OK;
}

m2p_code m2p_store_job_events(m2p_store *s, int64_t id, int64_t since, int limit, json_t **out, m2p_error *err) {
    return events_query(s, "SELECT data FROM job_events WHERE job_id = ?3 AND seq > ?1 ORDER BY seq LIMIT ?2", id,
                        since, limit, out, err);
}

m2p_code m2p_store_queue_events(m2p_store *s, int64_t since, int limit, json_t **out, m2p_error *err) {
    return events_query(s, "SELECT data, seq FROM queue_events WHERE seq > ?1 AND ?3 = 0 ORDER BY seq LIMIT ?2", 0,
                        since, limit, out, err);
}

m2p_code m2p_store_job_seq(m2p_store *s, int64_t id, int64_t *seq, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s, "SELECT event_seq FROM jobs WHERE id = ?1", &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_int64(st, 1, id);
    int rc = m2p_db_step(st);
    if (rc == M2P_DB_ROW) {
        *seq = m2p_db_column_int64(st, 0);
    } else if (rc == M2P_DB_DONE) {
        c = m2p_error_set(err, M2P_E_JOB_NOT_FOUND, "job %lld", (long long)id);
    } else {
        c = m2p_store_db_error(s, rc, "job seq", err);
    }
    (void)m2p_db_finalize(st);
    return c;
}

m2p_code m2p_store_queue_seq(m2p_store *s, int64_t *seq, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s, "SELECT coalesce(max(seq), 0) FROM queue_events", &st, err);
    if (c != M2P_OK) {
        return c;
    }
    c = count_query(s, st, seq, err);
    (void)m2p_db_finalize(st);
    return c;
}

m2p_code m2p_store_job_counts(m2p_store *s, json_t **out, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s, "SELECT status, count(*) FROM jobs GROUP BY status", &st, err);
    if (c != M2P_OK) {
        return c;
    }
    json_t *o = json_object();
    for (size_t i = 0; o != NULL && i < sizeof k_status_names / sizeof k_status_names[0]; i++) {
        (void)json_object_set_new(o, k_status_names[i], json_integer(0));
    }
    int rc;
    while (o != NULL && (rc = m2p_db_step(st)) == M2P_DB_ROW) {
        (void)json_object_set_new(o, (const char *)m2p_db_column_text(st, 0),
                                  json_integer(m2p_db_column_int64(st, 1)));
    }
    (void)m2p_db_finalize(st);
    if (o == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "counts");
    }
    *out = o;
    return M2P_OK;
}

m2p_code m2p_store_job_stage_counts(m2p_store *s, json_t **out, m2p_error *err) {
    *out = NULL;
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s,
                      "SELECT stage, status, count(*) FROM jobs WHERE status IN ('queued', 'running')"
                      " GROUP BY stage, status",
                      &st, err);
    if (c != M2P_OK) {
        return c;
    }
    json_t *o = json_pack("{s:{s:i, s:i}, s:{s:i, s:i}}", "analyze", "queued", 0, "running", 0, "render", "queued", 0,
                          "running", 0);
    int rc = M2P_DB_DONE;
    while (o != NULL && (rc = m2p_db_step(st)) == M2P_DB_ROW) {
        m2p_job_stage stage;
        if (m2p_job_stage_parse((const char *)m2p_db_column_text(st, 0), &stage)) {
            (void)json_object_set_new(json_object_get(o, m2p_job_stage_name(stage)),
                                      (const char *)m2p_db_column_text(st, 1),
                                      json_integer(m2p_db_column_int64(st, 2)));
        }
    }
    m2p_db_finalize(st);
    if (o == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "stage counts");
    }
    if (rc != M2P_DB_DONE) { /* a failed scan is an error, not partial counts */
        json_decref(o);
        return m2p_store_db_error(s, rc, "stage counts", err);
    }
    *out = o;
    return M2P_OK;
}

/* ---- step statistics ------------------------------------------------------------------------ */

m2p_code m2p_store_step_stat_add(m2p_store *s, const char *step, const char *renderer, const char *size,
                                 double seconds, m2p_error *err) {
    if (!isfinite(seconds) || seconds < 0) {
        return M2P_OK;
    }
    m2p_db_stmt *st = NULL;
    /* A running mean over at most the last ~20 measurements (so it follows the machine). */
    m2p_code c = prep(s,
                      "INSERT INTO step_stats (step, renderer, size, n, mean_s) VALUES (?1, ?2, ?3, 1, ?4)"
                      " ON CONFLICT (step, renderer, size) DO UPDATE SET"
                      " mean_s = step_stats.mean_s + (excluded.mean_s - step_stats.mean_s)"
                      " / (CASE WHEN step_stats.n + 1 < 20 THEN step_stats.n + 1 ELSE 20 END),"
                      " n = step_stats.n + 1",
                      &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_text(st, 1, step);
    (void)m2p_db_bind_text(st, 2, renderer);
    (void)m2p_db_bind_text(st, 3, size);
    (void)m2p_db_bind_double(st, 4, seconds);
    c = step_done(s, st, "step stat", err);
    (void)m2p_db_finalize(st);
    return c;
}

m2p_code m2p_store_step_stat_get(m2p_store *s, const char *step, const char *renderer, const char *size,
                                 double *mean, bool *found, m2p_error *err) {
    *found = false;
    *mean = 0;
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s, "SELECT mean_s FROM step_stats WHERE step = ?1 AND renderer = ?2 AND size = ?3", &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_text(st, 1, step);
    (void)m2p_db_bind_text(st, 2, renderer);
    (void)m2p_db_bind_text(st, 3, size);
    if (m2p_db_step(st) == M2P_DB_ROW) {
        *mean = m2p_db_column_double(st, 0);
        *found = true;
    }
    (void)m2p_db_finalize(st);
    return M2P_OK;
}

m2p_code m2p_store_step_stats(m2p_store *s, json_t **out, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s, "SELECT step, renderer, size, n, mean_s FROM step_stats ORDER BY step, renderer, size", &st,
                      err);
    if (c != M2P_OK) {
        return c;
    }
    c = rows_to_array(s, st, out, err);
    (void)m2p_db_finalize(st);
    return c;
}

/* ---- images ---------------------------------------------------------------------------------- */

#define IMAGE_COLUMNS                                                                                 \
    "images.id, job_id, idx AS \"index\", seed, path, width, height, prompt, images.style, renderer,"  \
    " model, metadata AS metadata_json, images.track_id, images.source, tempo, key, mode,"            \
    " images.created_at, jobs.batch_id, '/api/images/' || images.id AS url,"                           \
    " '/api/images/' || images.id || '/thumb' AS thumb_url"

/* Steps a bound one-column query and copies the blob of its row into *out
 * (caller frees); no row → M2P_E_NOT_FOUND without touching err (the caller
 * says what was missing). Finalizes st. */
static m2p_code blob_row(m2p_store *s, m2p_db_stmt *st, const char *what, unsigned char **out, size_t *len,
                         m2p_error *err) {
    m2p_code c = M2P_OK;
    int rc = m2p_db_step(st);
    if (rc == M2P_DB_ROW) {
        c = m2p_db_column_blob_dup(st, 0, out, len, err);
    } else if (rc == M2P_DB_DONE) {
        c = M2P_E_NOT_FOUND;
    } else {
        c = m2p_store_db_error(s, rc, what, err);
    }
    m2p_db_finalize(st);
    return c;
}

m2p_code m2p_store_image_data(m2p_store *s, int64_t id, unsigned char **png, size_t *len, m2p_error *err) {
    *png = NULL;
    *len = 0;
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s, "SELECT png FROM image_data WHERE image_id = ?1", &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_int64(st, 1, id);
    c = blob_row(s, st, "image bytes", png, len, err);
    if (c == M2P_E_NOT_FOUND) {
        c = m2p_error_set(err, M2P_E_IMAGE_NOT_FOUND, "no stored bytes for image %lld", (long long)id);
    }
    return c;
}

m2p_code m2p_store_upload_put(m2p_store *s, const char *sha256, const void *data, size_t len, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s,
                      "INSERT INTO uploads (sha256, data, created_at) VALUES (?1, ?2, ?3)"
                      " ON CONFLICT (sha256) DO NOTHING",
                      &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_text(st, 1, sha256);
    if (m2p_db_bind_blob(st, 2, data, len) != 0) {
        m2p_db_finalize(st);
        return m2p_error_set(err, M2P_E_NOMEM, "upload bytes");
    }
    (void)m2p_db_bind_double(st, 3, m2p_now_wall());
    c = step_done(s, st, "store upload", err);
    m2p_db_finalize(st);
    return c;
}

m2p_code m2p_store_upload_exists(m2p_store *s, const char *sha256, bool *found, m2p_error *err) {
    *found = false;
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s, "SELECT 1 FROM uploads WHERE sha256 = ?1", &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_text(st, 1, sha256);
    int rc = m2p_db_step(st);
    if (rc == M2P_DB_ROW) {
        *found = true;
    } else if (rc != M2P_DB_DONE) {
        c = m2p_store_db_error(s, rc, "upload exists", err);
    }
    m2p_db_finalize(st);
    return c;
}

m2p_code m2p_store_upload_get(m2p_store *s, const char *sha256, unsigned char **data, size_t *len, m2p_error *err) {
    *data = NULL;
    *len = 0;
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s, "SELECT data FROM uploads WHERE sha256 = ?1", &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_text(st, 1, sha256);
    c = blob_row(s, st, "upload", data, len, err);
    if (c == M2P_E_NOT_FOUND) {
        c = m2p_error_set(err, M2P_E_NOT_FOUND, "no stored upload %.16s", sha256);
    }
    return c;
}

m2p_code m2p_store_image_get(m2p_store *s, int64_t id, json_t **out, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s, "SELECT " IMAGE_COLUMNS " FROM images JOIN jobs ON jobs.id = job_id WHERE images.id = ?1",
                      &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_int64(st, 1, id);
    int rc = m2p_db_step(st);
    if (rc == M2P_DB_ROW) {
        *out = row_to_json(st);
        c = *out != NULL ? M2P_OK : m2p_error_set(err, M2P_E_NOMEM, "image json");
    } else if (rc == M2P_DB_DONE) {
        c = m2p_error_set(err, M2P_E_IMAGE_NOT_FOUND, "image %lld", (long long)id);
    } else {
        c = m2p_store_db_error(s, rc, "get image", err);
    }
    (void)m2p_db_finalize(st);
    return c;
}

#define IMAGE_WHERE                                                                                    \
    " WHERE (?1 IS NULL OR images.style = ?1) AND (?2 IS NULL OR key = ?2) AND (?3 IS NULL OR mode = ?3)" \
    " AND (?4 IS NULL OR instr(lower(prompt), lower(?4)) > 0 OR instr(lower(images.source), lower(?4)) > 0)" \
    " AND (?5 IS NULL OR instr(images.source, ?5) > 0) AND (?6 = 0 OR tempo >= ?6) AND (?7 = 0 OR tempo <= ?7)" \
    " AND (?8 = 0 OR images.created_at >= ?8) AND (?9 = 0 OR images.created_at <= ?9)"                 \
    " AND (?10 = 0 OR job_id = ?10) AND (?11 = 0 OR jobs.batch_id = ?11)"

static void bind_image_filter(m2p_db_stmt *st, const m2p_image_filter *f) {
    bind_text_or_null(st, 1, f->style);
    bind_text_or_null(st, 2, f->key);
    bind_text_or_null(st, 3, f->mode);
    bind_text_or_null(st, 4, f->q);
    bind_text_or_null(st, 5, f->source);
    (void)m2p_db_bind_double(st, 6, f->tempo_min);
    (void)m2p_db_bind_double(st, 7, f->tempo_max);
    (void)m2p_db_bind_double(st, 8, f->from);
    (void)m2p_db_bind_double(st, 9, f->to);
    (void)m2p_db_bind_int64(st, 10, f->job_id);
    (void)m2p_db_bind_int64(st, 11, f->batch_id);
}

m2p_code m2p_store_images_query(m2p_store *s, const m2p_image_filter *f, json_t **out, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    int64_t total = 0;
    json_t *arr = NULL;
    m2p_code c = prep(s, "SELECT count(*) FROM images JOIN jobs ON jobs.id = job_id" IMAGE_WHERE, &st, err);
    if (c != M2P_OK) {
        return c;
    }
    bind_image_filter(st, f);
    c = count_query(s, st, &total, err);
    (void)m2p_db_finalize(st);
    if (c != M2P_OK) {
        return c;
    }
    c = prep(s,
             "SELECT " IMAGE_COLUMNS " FROM images JOIN jobs ON jobs.id = job_id" IMAGE_WHERE
             " ORDER BY images.id DESC LIMIT ?12 OFFSET ?13",
             &st, err);
    if (c != M2P_OK) {
        return c;
    }
    bind_image_filter(st, f);
    int limit = f->limit < 1 ? 100 : (f->limit > 1000 ? 1000 : f->limit);
    (void)m2p_db_bind_int(st, 12, limit);
    (void)m2p_db_bind_int(st, 13, f->offset < 0 ? 0 : f->offset);
    c = rows_to_array(s, st, &arr, err);
    (void)m2p_db_finalize(st);
    if (c != M2P_OK) {
        return c;
    }
    *out = json_pack("{s:o, s:I}", "images", arr, "total", (json_int_t)total);
    return *out != NULL ? M2P_OK : m2p_error_set(err, M2P_E_NOMEM, "json");
}

/* ---- batches ------------------------------------------------------------------------------- */

m2p_code m2p_store_batch_create(m2p_store *s, const char *client, int n_items, int64_t *id_out, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s, "INSERT INTO batches (client, n_items, created_at) VALUES (?1, ?2, ?3) RETURNING id", &st,
                      err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_text(st, 1, client != NULL ? client : "");
    (void)m2p_db_bind_int(st, 2, n_items);
    (void)m2p_db_bind_double(st, 3, m2p_now_wall());
    int rc = m2p_db_step(st);
    if (rc == M2P_DB_ROW) {
        *id_out = m2p_db_column_int64(st, 0);
        rc = m2p_db_step(st);
    } else {
        c = m2p_store_db_error(s, rc, "insert batch", err);
    }
    (void)m2p_db_finalize(st);
    return c;
}

m2p_code m2p_store_batch_get(m2p_store *s, int64_t id, json_t **out, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s, "SELECT id, n_items, created_at FROM batches WHERE id = ?1", &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_int64(st, 1, id);
    int rc = m2p_db_step(st);
    json_t *o = rc == M2P_DB_ROW ? row_to_json(st) : NULL;
    (void)m2p_db_finalize(st);
    if (o == NULL) {
        return rc == M2P_DB_DONE ? m2p_error_set(err, M2P_E_NOT_FOUND, "batch %lld", (long long)id)
                                 : m2p_store_db_error(s, rc, "get batch", err);
    }
    c = prep(s, "SELECT id, status FROM jobs WHERE batch_id = ?1 ORDER BY id", &st, err);
    if (c != M2P_OK) {
        json_decref(o);
        return c;
    }
    (void)m2p_db_bind_int64(st, 1, id);
    json_t *jobs = json_array();
    json_t *counts = json_object();
    for (size_t i = 0; counts != NULL && i < sizeof k_status_names / sizeof k_status_names[0]; i++) {
        (void)json_object_set_new(counts, k_status_names[i], json_integer(0));
    }
    int64_t done = 0;
    int64_t total = 0;
    while (jobs != NULL && counts != NULL && m2p_db_step(st) == M2P_DB_ROW) {
        const char *status = (const char *)m2p_db_column_text(st, 1);
        (void)json_array_append_new(jobs, json_pack("{s:I, s:s}", "id", (json_int_t)m2p_db_column_int64(st, 0),
                                                    "status", status));
        json_t *n = json_object_get(counts, status);
        (void)json_object_set_new(counts, status, json_integer(json_integer_value(n) + 1));
        total++;
        if (strcmp(status, "queued") != 0 && strcmp(status, "running") != 0) {
            done++;
        }
    }
    (void)m2p_db_finalize(st);
    if (jobs == NULL || counts == NULL) {
        json_decref(jobs);
        json_decref(counts);
        json_decref(o);
        return m2p_error_set(err, M2P_E_NOMEM, "batch");
    }
    (void)json_object_set_new(o, "jobs", jobs);
    (void)json_object_set_new(o, "counts", counts);
    (void)json_object_set_new(o, "done", json_integer(done));
    (void)json_object_set_new(o, "total", json_integer(total));
    (void)json_object_set_new(o, "fraction", json_real(total > 0 ? (double)done / (double)total : 0.0));
    *out = o;
    return M2P_OK;
}

/* ---- settings ------------------------------------------------------------------------------- */

m2p_code m2p_store_settings_get(m2p_store *s, json_t **out, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s, "SELECT key, value FROM settings ORDER BY key", &st, err);
    if (c != M2P_OK) {
        return c;
    }
    json_t *o = json_object();
    while (o != NULL && m2p_db_step(st) == M2P_DB_ROW) {
        (void)json_object_set_new(o, (const char *)m2p_db_column_text(st, 0),
                                  json_string((const char *)m2p_db_column_text(st, 1)));
    }
    (void)m2p_db_finalize(st);
    if (o == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "settings");
    }
    *out = o;
    return M2P_OK;
}

m2p_code m2p_store_setting_put(m2p_store *s, const char *key, const char *value, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s,
                      value != NULL ? "INSERT INTO settings (key, value) VALUES (?1, ?2)"
                                      " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                                    : "DELETE FROM settings WHERE key = ?1",
                      &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_text(st, 1, key);
    if (value != NULL) {
        (void)m2p_db_bind_text(st, 2, value);
    }
    c = step_done(s, st, "setting", err);
    (void)m2p_db_finalize(st);
    return c;
}

m2p_code m2p_store_setting_get(m2p_store *s, const char *key, char *buf, size_t cap, bool *found, m2p_error *err) {
    *found = false;
    if (cap > 0) {
        buf[0] = '\0';
    }
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s, "SELECT value FROM settings WHERE key = ?1", &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_text(st, 1, key);
    if (m2p_db_step(st) == M2P_DB_ROW) {
        (void)snprintf(buf, cap, "%s", (const char *)m2p_db_column_text(st, 0));
        *found = true;
    }
    (void)m2p_db_finalize(st);
    return M2P_OK;
}

/* ---- templates ------------------------------------------------------------------------------- */

m2p_code m2p_store_template_put(m2p_store *s, int64_t id, const char *name, const char *text, int64_t *id_out,
                                m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s,
                      id > 0 ? "UPDATE templates SET name = ?1, text = ?2, updated_at = ?3 WHERE id = ?4 RETURNING id"
                             : "INSERT INTO templates (name, text, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)"
                               " RETURNING id",
                      &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_text(st, 1, name);
    (void)m2p_db_bind_text(st, 2, text);
    (void)m2p_db_bind_double(st, 3, m2p_now_wall());
    if (id > 0) {
        (void)m2p_db_bind_int64(st, 4, id);
    }
    int rc = m2p_db_step(st);
    if (rc == M2P_DB_ROW) {
        *id_out = m2p_db_column_int64(st, 0);
        (void)m2p_db_step(st);
    } else if (rc == M2P_DB_DONE) {
        c = m2p_error_set(err, M2P_E_NOT_FOUND, "template %lld", (long long)id);
    } else if (rc == M2P_DB_CONSTRAINT) {
        c = m2p_error_set(err, M2P_E_DB_CONFLICT, "a template named '%s' exists", name);
    } else {
        c = m2p_store_db_error(s, rc, "template", err);
    }
    (void)m2p_db_finalize(st);
    return c;
}

static m2p_code template_one(m2p_store *s, const char *sql, int64_t id, const char *name, json_t **out,
                             m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s, sql, &st, err);
    if (c != M2P_OK) {
        return c;
    }
    if (name != NULL) {
        (void)m2p_db_bind_text(st, 1, name);
    } else {
        (void)m2p_db_bind_int64(st, 1, id);
    }
    int rc = m2p_db_step(st);
    if (rc == M2P_DB_ROW) {
        *out = row_to_json(st);
        c = *out != NULL ? M2P_OK : m2p_error_set(err, M2P_E_NOMEM, "template");
    } else if (rc == M2P_DB_DONE) {
        c = name != NULL ? m2p_error_set(err, M2P_E_NOT_FOUND, "template '%s'", name)
                         : m2p_error_set(err, M2P_E_NOT_FOUND, "template %lld", (long long)id);
    } else {
        c = m2p_store_db_error(s, rc, "template", err);
    }
    (void)m2p_db_finalize(st);
    return c;
}

m2p_code m2p_store_template_get(m2p_store *s, int64_t id, json_t **out, m2p_error *err) {
    return template_one(s, "SELECT id, name, text, created_at, updated_at FROM templates WHERE id = ?1", id, NULL,
                        out, err);
}

m2p_code m2p_store_template_find(m2p_store *s, const char *name, json_t **out, m2p_error *err) {
    return template_one(s, "SELECT id, name, text, created_at, updated_at FROM templates WHERE name = ?1", 0, name,
                        out, err);
}

m2p_code m2p_store_template_list(m2p_store *s, json_t **out, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s, "SELECT id, name, text, created_at, updated_at FROM templates ORDER BY name", &st, err);
    if (c != M2P_OK) {
        return c;
    }
    c = rows_to_array(s, st, out, err);
    (void)m2p_db_finalize(st);
    return c;
}

m2p_code m2p_store_template_delete(m2p_store *s, int64_t id, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s, "DELETE FROM templates WHERE id = ?1", &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_int64(st, 1, id);
    c = step_done(s, st, "delete template", err);
    (void)m2p_db_finalize(st);
    if (c == M2P_OK && (int)m2p_db_changes(s) == 0) {
        c = m2p_error_set(err, M2P_E_NOT_FOUND, "template %lld", (long long)id);
    }
    return c;
}

m2p_code m2p_store_track_path(m2p_store *s, int64_t id, char *buf, size_t cap, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = prep(s, "SELECT path FROM tracks WHERE id = ?1", &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_int64(st, 1, id);
    int rc = m2p_db_step(st);
    if (rc == M2P_DB_ROW) {
        (void)snprintf(buf, cap, "%s", (const char *)m2p_db_column_text(st, 0));
    } else if (rc == M2P_DB_DONE) {
        c = m2p_error_set(err, M2P_E_NOT_FOUND, "track %lld", (long long)id);
    } else {
        c = m2p_store_db_error(s, rc, "track", err);
    }
    (void)m2p_db_finalize(st);
    return c;
}
