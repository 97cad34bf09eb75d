/*
 * web/routes.c — the handlers of the HTTP API (docs/api.md, /openapi.json).
 *
 * Each handler reads its inputs (path segments, query, the body already read
 * and capped by server.c), checks them with web/parse.c, talks to the store
 * through the borrowed handle c->store and to the queue, and sets c->resp.
 * Errors are returned as m2p_code with a detail; server.c turns them into the
 * JSON error format. Files (images, thumbnails, audio) are found by database
 * id only, never by a name from the request.
 */
#define _GNU_SOURCE /* O_NOFOLLOW, O_CLOEXEC */
#include <errno.h>
#include <fcntl.h>
#include <libavutil/base64.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/decode.h"
#include "core/alloc.h"
#include "core/assets.h"
#include "core/fs.h"
#include "core/log.h"
#include "prompt/template.h"
#include "render/image.h"
#include "render/png.h"
#include "store/blobs.h"
#include "web/server_int.h"

static bool is_method(const web_ctx *c, const char *m) {
    return strcmp(c->req->method, m) == 0;
}

static bool seg_is(const web_ctx *c, int i, const char *s) {
    return i < c->nseg && strcmp(c->segs[i], s) == 0;
}

static m2p_code method_not_allowed(const web_ctx *c, m2p_error *err) {
    return m2p_error_set(err, M2P_E_METHOD_NOT_ALLOWED, "%s %s", c->req->method, c->url);
}

static m2p_code path_id(const web_ctx *c, int i, m2p_code not_found, int64_t *id, m2p_error *err) {
    if (i >= c->nseg || !m2p_web_parse_id(c->segs[i], id)) {
        return m2p_error_set(err, not_found, "'%.40s' is not an id", i < c->nseg ? c->segs[i] : "");
    }
    return M2P_OK;
}

/* Parses the JSON body of the request. */
static m2p_code body_json(web_ctx *c, json_t **out, m2p_error *err) {
    if (c->req->is_multipart) {
        return m2p_error_set(err, M2P_E_JSON_INVALID, "send application/json here");
    }
    return m2p_web_parse_json_body(c->req->body, c->req->body_len, out, err);
}

static m2p_code query_double(web_ctx *c, const char *key, double min, double max, double *out, m2p_error *err) {
    const char *v = web_query(c, key);
    *out = 0;
    if (v == NULL || v[0] == '\0') {
        return M2P_OK;
    }
    if (!m2p_web_parse_double(v, min, max, out)) {
        return m2p_error_set(err, M2P_E_FIELD_INVALID, "%s: '%.40s' is not a number in range", key, v);
    }
    return M2P_OK;
}

static m2p_code query_int(web_ctx *c, const char *key, long min, long max, long def, long *out, m2p_error *err) {
    const char *v = web_query(c, key);
    *out = def;
    if (v == NULL || v[0] == '\0') {
        return M2P_OK;
    }
    if (!m2p_web_parse_int(v, min, max, out)) {
        return m2p_error_set(err, M2P_E_FIELD_INVALID, "%s: '%.40s' is not a whole number in %ld..%ld", key, v, min,
                             max);
    }
    return M2P_OK;
}

/* The window every list query shares: from/to (Unix seconds), limit (1..max_limit,
 * default def_limit), offset and batch. */
typedef struct list_window {
    double from, to;
    long limit, offset, batch;
} list_window;

static m2p_code query_window(web_ctx *c, long max_limit, long def_limit, list_window *w, m2p_error *err) {
    memset(w, 0, sizeof *w);
    m2p_code code = query_double(c, "from", 0, 1e11, &w->from, err);
    if (code == M2P_OK) {
        code = query_double(c, "to", 0, 1e11, &w->to, err);
    }
    if (code == M2P_OK) {
        code = query_int(c, "limit", 1, max_limit, def_limit, &w->limit, err);
    }
    if (code == M2P_OK) {
        code = query_int(c, "offset", 0, 1000000000L, 0, &w->offset, err);
    }
    if (code == M2P_OK) {
        code = query_int(c, "batch", 0, 1000000000000L, 0, &w->batch, err);
    }
    return code;
}


static const char *query_str(web_ctx *c, const char *key, size_t max) {
    const char *v = web_query(c, key);
    if (v == NULL || v[0] == '\0' || strlen(v) > max) {
        return NULL;
    }
    return v;
}

/* ---- jobs ------------------------------------------------------------------------------------ */

/* One validated item waiting to become a job. */
typedef struct pending_job {
    json_t *spec;
    bool seed_given;
    char hash[65];
    const char *source_label;
} pending_job;

static uint32_t random_seed(void) {
    uint32_t s = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f != NULL) {
        if (fread(&s, sizeof s, 1, f) != 1) {
            s = 0;
        }
        (void)fclose(f);
    }
    if (s == 0) {
        s = (uint32_t)(m2p_now_wall() * 1000.0);
    }
    return s;
}

static m2p_code user_defaults(web_ctx *c, json_t **out, m2p_error *err) {
    return m2p_store_settings_get(c->store, out, err);
}

/* Validates one request object (JSON or form fields) into p. upload may be NULL. */
static m2p_code prepare_job(web_ctx *c, const json_t *in, bool form, const json_t *defaults, const web_upload *upload,
                            pending_job *p, m2p_error *err) {
    memset(p, 0, sizeof *p);
    m2p_spec_ctx sc = {&c->w->cfg, c->w->presets, defaults, form, upload == NULL};
    /* "template" may name a saved user template; its text is used then. */
    json_t *own = NULL;
    const char *tname = json_string_value(json_object_get(in, "template"));
    if (tname != NULL && strchr(tname, '{') == NULL && strlen(tname) <= 64) {
        json_t *tpl = NULL;
        m2p_error e2;
        if (m2p_store_template_find(c->store, tname, &tpl, &e2) == M2P_OK) {
            own = json_deep_copy(in);
            if (own != NULL) {
                (void)json_object_set(own, "template", json_object_get(tpl, "text"));
                in = own;
            }
        }
        json_decref(tpl);
    }
    m2p_code code = m2p_web_parse_spec(in, &sc, random_seed(), &p->spec, &p->seed_given, err);
    json_decref(own);
    if (code != M2P_OK) {
        return code;
    }
    if (upload != NULL) {
        (void)json_object_set_new(p->spec, "upload_path", json_string(upload->final_path));
        (void)json_object_set_new(p->spec, "upload_name", json_string(upload->name));
        (void)json_object_set_new(p->spec, "upload_sha256", json_string(upload->sha256));
        p->source_label = json_string_value(json_object_get(p->spec, "upload_name"));
    } else {
        p->source_label = json_string_value(json_object_get(p->spec, "source"));
    }
    return m2p_web_request_hash(p->spec, p->hash, err);
}

/* Commits one job (or finds the stored identical one) and returns its JSON. */
static m2p_code commit_job(web_ctx *c, pending_job *p, int64_t batch_id, json_t **job_out, bool *reused,
                           m2p_error *err) {
    *reused = false;
    int64_t id = 0;
    m2p_code code = M2P_OK;
    if (p->seed_given) {
        code = m2p_store_job_find_hash(c->store, p->hash, &id, err);
        if (code == M2P_OK) {
            *reused = true;
            atomic_fetch_add(&c->w->dedup_hits, 1);
            code = m2p_store_job_get(c->store, id, job_out, err);
            if (code == M2P_OK) {
                (void)json_object_set_new(*job_out, "reused", json_true());
            }
            return code;
        }
        if (code != M2P_E_NOT_FOUND) {
            return code;
        }
    }
    const char *up_path = json_string_value(json_object_get(p->spec, "upload_path"));
    const char *up_sha = json_string_value(json_object_get(p->spec, "upload_sha256"));
    if (up_path != NULL && up_sha != NULL && m2p_store_is_shared(c->store)) {
        /* Workers may run on hosts without this folder: the bytes go to the
         * database before the job row, so a committed job always has them. */
        char *bytes = NULL;
        size_t len = 0;
        uint64_t cap = (uint64_t)c->w->cfg.max_upload_mb * 1024u * 1024u;
        code = m2p_fs_read_file(up_path, (size_t)cap + 1, &bytes, &len, err);
        /* touch first: a stored row old enough for the pruner gets a fresh
         * retention before this job (which keeps it in use) is committed */
        if (code == M2P_OK) {
            code = m2p_store_upload_touch(c->store, up_sha, err);
        }
        if (code == M2P_OK) {
            code = m2p_store_upload_put(c->store, up_sha, bytes, len, err);
        }
        m2p_free(bytes);
        if (code != M2P_OK) {
            return code;
        }
    }
    char *text = json_dumps(p->spec, JSON_COMPACT);
    if (text == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "spec");
    }
    m2p_job_new nj = {text,
                      p->hash,
                      p->source_label,
                      json_string_value(json_object_get(p->spec, "style")),
                      c->req->client,
                      c->w->cfg.max_attempts,
                      batch_id};
    code = m2p_store_job_insert(c->store, &nj, &id, err);
    free(text);
    if (code != M2P_OK) {
        return code;
    }
    m2p_queue_notify(c->w->queue);
    return m2p_store_job_get(c->store, id, job_out, err);
}

static m2p_code rate_check(web_ctx *c, int n, m2p_error *err) {
    int retry_after = 0;
    if (!web_rate_allow(c->w, c->req->client, n, &retry_after)) {
        return m2p_error_set(err, M2P_E_RATE_LIMITED, "%d", retry_after);
    }
    return M2P_OK;
}

static void set_location(web_ctx *c, const char *prefix, int64_t id) {
    char loc[64];
    (void)snprintf(loc, sizeof loc, "%s%lld", prefix, (long long)id);
    if (c->resp != NULL) {
        (void)MHD_add_response_header(c->resp, "Location", loc);
    }
}

static m2p_code create_job(web_ctx *c, m2p_error *err) {
    json_t *defaults = NULL;
    json_t *in = NULL;
    json_t *job = NULL;
    pending_job p;
    memset(&p, 0, sizeof p);
    bool reused = false;
    m2p_code code = M2P_OK;
    const web_upload *upload = NULL;
    if (c->req->is_multipart) {
        if (c->req->n_uploads != 1) {
            return m2p_error_set(err, M2P_E_MULTIPART_INVALID, "send exactly one file part named 'file' (got %zu)",
                                 c->req->n_uploads);
        }
        upload = &c->req->uploads[0];
        in = json_incref(c->req->fields);
    } else {
        code = body_json(c, &in, err);
    }
    if (code == M2P_OK) {
        code = rate_check(c, 1, err);
    }
    if (code == M2P_OK) {
        code = user_defaults(c, &defaults, err);
    }
    if (code == M2P_OK) {
        code = prepare_job(c, in, c->req->is_multipart, defaults, upload, &p, err);
    }
    if (code == M2P_OK) {
        code = commit_job(c, &p, 0, &job, &reused, err);
    }
    if (code == M2P_OK) {
        int64_t id = (int64_t)json_integer_value(json_object_get(job, "id"));
        m2p_queue_job_public(job); /* a reused running job: its preview's URL, not its bytes */
        web_json(c, reused ? MHD_HTTP_OK : MHD_HTTP_CREATED, job);
        set_location(c, "/api/jobs/", id);
    }
    json_decref(p.spec);
    json_decref(defaults);
    json_decref(in);
    return code;
}

static m2p_code list_jobs(web_ctx *c, m2p_error *err) {
    m2p_job_filter f;
    memset(&f, 0, sizeof f);
    f.status = query_str(c, "status", 16);
    m2p_job_status st;
    if (f.status != NULL && !m2p_job_status_parse(f.status, &st)) {
        return m2p_error_set(err, M2P_E_FIELD_INVALID, "status '%.16s': use queued, running, succeeded, failed, "
                                                       "cancelled or partial", f.status);
    }
    f.source = query_str(c, "source", 2048);
    f.style = query_str(c, "style", 48);
    list_window win;
    m2p_code code = query_window(c, 500, 50, &win, err);
    if (code != M2P_OK) {
        return code;
    }
    f.from = win.from;
    f.to = win.to;
    f.limit = (int)win.limit;
    f.offset = (int)win.offset;
    f.batch_id = win.batch;
    json_t *out = NULL;
    code = m2p_store_job_list(c->store, &f, &out, err);
    if (code == M2P_OK) {
        web_json(c, MHD_HTTP_OK, out);
    }
    return code;
}

/* Deletes a job that is not running: its rows (events, images; image_data by
 * cascade), then its files on this host: images/job-<id>/ (PNGs, thumbnails,
 * sidecars) and the image-cache copies of its images. */
static m2p_code delete_job(web_ctx *c, int64_t id, m2p_error *err) {
    int64_t ids[1024];
    size_t n = 0;
    m2p_code code = m2p_store_job_image_ids(c->store, id, ids, sizeof ids / sizeof ids[0], &n, err);
    if (code == M2P_OK) {
        code = m2p_store_job_delete(c->store, id, err);
    }
    if (code != M2P_OK) {
        return code;
    }
    char images[M2P_PATH_MAX];
    char dir[M2P_PATH_MAX + 32];
    (void)m2p_config_subdir(&c->w->cfg, "images", images, sizeof images);
    (void)snprintf(dir, sizeof dir, "%s/job-%lld", images, (long long)id);
    m2p_error ferr;
    m2p_error_clear(&ferr);
    if (m2p_fs_remove_dir_files(dir, &ferr) != M2P_OK) {
        M2P_WARN("web", "job %lld deleted, its files not all: %s", (long long)id, ferr.detail);
    }
    static const char *const k_cached[] = {"", ".thumb.webp"};
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < sizeof k_cached / sizeof k_cached[0]; k++) {
            char path[M2P_PATH_MAX + 64];
            if (web_image_cache_path(c->w, ids[i], k_cached[k], path, sizeof path, &ferr) == M2P_OK &&
                unlink(path) != 0 && errno != ENOENT) {
                M2P_WARN("web", "job %lld deleted, not %s: %s", (long long)id, path, strerror(errno));
            }
        }
    }
    web_json(c, MHD_HTTP_OK, json_pack("{s:I, s:b}", "id", (json_int_t)id, "deleted", 1));
    return M2P_OK;
}

/* GET /api/jobs/{id}/preview: the job's latest live preview (a WebP kept in
 * its live state, progress.preview, in the shared database: any API host can
 * answer), or 204 when it has none now. The query (?i=&step=) only makes each
 * preview's URL distinct. */
static m2p_code job_preview(web_ctx *c, int64_t id, m2p_error *err) {
    json_t *job = NULL;
    m2p_code code = m2p_store_job_get(c->store, id, &job, err);
    if (code != M2P_OK) {
        return code;
    }
    json_t *pv = json_object_get(json_object_get(job, "progress"), "preview");
    const char *b64 = json_string_value(json_object_get(pv, "data"));
    const char *type = json_string_value(json_object_get(pv, "type"));
    const char *status = json_string_value(json_object_get(job, "status"));
    if (b64 == NULL || type == NULL || strcmp(type, "image/webp") != 0 || status == NULL ||
        strcmp(status, "running") != 0) {
        /* No preview now (not rendering yet, no previews for this job, or finished): 204, not an
         * error — a page asking just as the render ends must not log a failed request. */
        json_decref(job);
        struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (r == NULL) {
            return m2p_error_set(err, M2P_E_NOMEM, "response");
        }
        (void)MHD_add_response_header(r, "Cache-Control", "no-store");
        web_add_common_headers(r);
        c->resp = r;
        c->status = MHD_HTTP_NO_CONTENT;
        return M2P_OK;
    }
    char hdr[3][24];
    (void)snprintf(hdr[0], sizeof hdr[0], "%lld", (long long)json_integer_value(json_object_get(pv, "step")));
    (void)snprintf(hdr[1], sizeof hdr[1], "%lld", (long long)json_integer_value(json_object_get(pv, "steps")));
    (void)snprintf(hdr[2], sizeof hdr[2], "%lld", (long long)json_integer_value(json_object_get(pv, "index")));
    size_t b64_len = strlen(b64);
    size_t cap = b64_len / 4 * 3 + 3;
    uint8_t *buf = b64_len < (1u << 20) ? malloc(cap) : NULL; /* MHD frees it with free() */
    int n = buf != NULL ? av_base64_decode(buf, b64, (int)cap) : -1;
    json_decref(job);
    if (n <= 0) {
        free(buf);
        return m2p_error_set(err, M2P_E_INTERNAL, "job %lld: the stored preview is unreadable", (long long)id);
    }
    struct MHD_Response *r = MHD_create_response_from_buffer((size_t)n, buf, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(buf);
        return m2p_error_set(err, M2P_E_NOMEM, "response");
    }
    (void)MHD_add_response_header(r, "Content-Type", "image/webp");
    (void)MHD_add_response_header(r, "Cache-Control", "no-store");
    (void)MHD_add_response_header(r, "X-Preview-Step", hdr[0]);
    (void)MHD_add_response_header(r, "X-Preview-Steps", hdr[1]);
    (void)MHD_add_response_header(r, "X-Preview-Index", hdr[2]);
    web_add_common_headers(r);
    c->resp = r;
    c->status = MHD_HTTP_OK;
    return M2P_OK;
}

/* A job's JSON for clients: the preview's bytes become its URL (jobs/queue.h). */
static void web_job_json(web_ctx *c, unsigned status, json_t *job) {
    m2p_queue_job_public(job);
    web_json(c, status, job);
}

static m2p_code job_routes(web_ctx *c, m2p_error *err) {
    if (c->nseg == 2) {
        if (is_method(c, "POST")) {
            return create_job(c, err);
        }
        if (is_method(c, "GET") || is_method(c, "HEAD")) {
            return list_jobs(c, err);
        }
        return method_not_allowed(c, err);
    }
    int64_t id = 0;
    m2p_code code = path_id(c, 2, M2P_E_JOB_NOT_FOUND, &id, err);
    if (code != M2P_OK) {
        return code;
    }
    json_t *out = NULL;
    if (c->nseg == 3) {
        if (is_method(c, "GET") || is_method(c, "HEAD")) {
            code = m2p_store_job_get(c->store, id, &out, err);
            if (code == M2P_OK) {
                web_job_json(c, MHD_HTTP_OK, out);
            }
            return code;
        }
        if (is_method(c, "DELETE")) {
            return delete_job(c, id, err);
        }
        return method_not_allowed(c, err);
    }
    if (c->nseg == 4 && seg_is(c, 3, "cancel")) {
        if (!is_method(c, "POST")) {
            return method_not_allowed(c, err);
        }
        code = m2p_queue_cancel(c->w->queue, c->store, id, err);
        if (code == M2P_OK) {
            code = m2p_store_job_get(c->store, id, &out, err);
        }
        if (code == M2P_OK) {
            web_job_json(c, MHD_HTTP_ACCEPTED, out);
        }
        return code;
    }
    if (c->nseg == 4 && seg_is(c, 3, "retry")) {
        if (!is_method(c, "POST")) {
            return method_not_allowed(c, err);
        }
        code = m2p_store_job_retry(c->store, id, err);
        if (code == M2P_OK) {
            json_t *d = json_pack("{s:s, s:b}", "status", "queued", "retried", 1);
            code = m2p_queue_emit(c->w->queue, c->store, id, "state", d, true, err);
            json_decref(d);
            m2p_queue_wake(c->w->queue);
        }
        if (code == M2P_OK) {
            code = m2p_store_job_get(c->store, id, &out, err);
        }
        if (code == M2P_OK) {
            web_job_json(c, MHD_HTTP_ACCEPTED, out);
        }
        return code;
    }
    if (c->nseg == 4 && seg_is(c, 3, "preview")) {
        return is_method(c, "GET") || is_method(c, "HEAD") ? job_preview(c, id, err) : method_not_allowed(c, err);
    }
    if (c->nseg == 4 && seg_is(c, 3, "events")) {
        long since = 0;
        long limit = 0;
        code = query_int(c, "since", 0, 1000000000000L, 0, &since, err);
        if (code == M2P_OK) {
            code = query_int(c, "limit", 1, 5000, 1000, &limit, err);
        }
        int64_t seq = 0;
        if (code == M2P_OK) {
            code = m2p_store_job_seq(c->store, id, &seq, err);
        }
        if (code == M2P_OK) {
            code = m2p_store_job_events(c->store, id, since, (int)limit, &out, err);
        }
        if (code == M2P_OK) {
            web_json(c, MHD_HTTP_OK, json_pack("{s:I, s:o}", "seq", (json_int_t)seq, "events", out));
        }
        return code;
    }
    return m2p_error_set(err, M2P_E_NOT_FOUND, "no such route");
}

/* ---- batches ---------------------------------------------------------------------------------- */

static m2p_code create_batch(web_ctx *c, m2p_error *err) {
    json_t *in = NULL;
    json_t *defaults = NULL;
    json_t *common = NULL;
    json_t *jobs = json_array();
    pending_job *items = NULL;
    size_t n = 0;
    int64_t batch_id = 0;
    m2p_code code = jobs != NULL ? M2P_OK : m2p_error_set(err, M2P_E_NOMEM, "batch");
    int max_batch = c->w->cfg.max_batch;
    if (code == M2P_OK && c->req->is_multipart) {
        n = c->req->n_uploads;
        common = json_incref(c->req->fields);
        if (n == 0) {
            code = m2p_error_set(err, M2P_E_MULTIPART_INVALID, "send one or more file parts named 'file'");
        }
    } else if (code == M2P_OK) {
        code = body_json(c, &in, err);
        json_t *sources = json_object_get(in, "sources");
        if (code == M2P_OK && (!json_is_array(sources) || json_array_size(sources) == 0)) {
            code = m2p_error_set(err, M2P_E_FIELD_INVALID, "sources must be a non-empty array of links");
        }
        if (code == M2P_OK) {
            n = json_array_size(sources);
            common = json_deep_copy(in);
            (void)json_object_del(common, "sources");
        }
    }
    if (code == M2P_OK && n > (size_t)max_batch) {
        code = m2p_error_set(err, M2P_E_BATCH_TOO_LARGE, "%zu items; at most %d per batch", n, max_batch);
    }
    if (code == M2P_OK) {
        code = rate_check(c, (int)n, err);
    }
    if (code == M2P_OK) {
        code = user_defaults(c, &defaults, err);
    }
    if (code == M2P_OK) {
        items = m2p_calloc(n, sizeof *items);
        if (items == NULL) {
            code = m2p_error_set(err, M2P_E_NOMEM, "batch items");
        }
    }
    /* Validate every item before storing any. */
    for (size_t i = 0; code == M2P_OK && i < n; i++) {
        json_t *one = json_deep_copy(common);
        if (one == NULL) {
            code = m2p_error_set(err, M2P_E_NOMEM, "batch item");
            break;
        }
        const web_upload *up = NULL;
        if (c->req->is_multipart) {
            up = &c->req->uploads[i];
        } else {
            (void)json_object_set(one, "source", json_array_get(json_object_get(in, "sources"), i));
        }
        code = prepare_job(c, one, c->req->is_multipart, defaults, up, &items[i], err);
        json_decref(one);
        if (code != M2P_OK) {
            char detail[sizeof err->detail];
            (void)snprintf(detail, sizeof detail, "item %zu: %.340s", i + 1, err->detail);
            (void)snprintf(err->detail, sizeof err->detail, "%s", detail);
        }
    }
    if (code == M2P_OK) {
        code = m2p_store_batch_create(c->store, c->req->client, (int)n, &batch_id, err);
    }
    for (size_t i = 0; code == M2P_OK && i < n; i++) {
        json_t *job = NULL;
        bool reused = false;
        items[i].seed_given = false; /* a batch always gets its own jobs */
        code = commit_job(c, &items[i], batch_id, &job, &reused, err);
        if (code == M2P_OK) {
            (void)json_array_append_new(jobs, json_pack("{s:O, s:O}", "id", json_object_get(job, "id"), "status",
                                                        json_object_get(job, "status")));
            json_decref(job);
        }
    }
    if (code == M2P_OK) {
        web_json(c, MHD_HTTP_CREATED, json_pack("{s:I, s:O, s:I}", "id", (json_int_t)batch_id, "jobs", jobs, "total",
                                                (json_int_t)n));
        set_location(c, "/api/batches/", batch_id);
    }
    for (size_t i = 0; items != NULL && i < n; i++) {
        json_decref(items[i].spec);
    }
    m2p_free(items);
    json_decref(jobs);
    json_decref(common);
    json_decref(defaults);
    json_decref(in);
    return code;
}

static m2p_code batch_routes(web_ctx *c, m2p_error *err) {
    if (c->nseg == 2) {
        return is_method(c, "POST") ? create_batch(c, err) : method_not_allowed(c, err);
    }
    int64_t id = 0;
    m2p_code code = path_id(c, 2, M2P_E_NOT_FOUND, &id, err);
    if (code != M2P_OK) {
        return code;
    }
    if (c->nseg == 3 && (is_method(c, "GET") || is_method(c, "HEAD"))) {
        json_t *out = NULL;
        code = m2p_store_batch_get(c->store, id, &out, err);
        if (code == M2P_OK) {
            web_json(c, MHD_HTTP_OK, out);
        }
        return code;
    }
    if (c->nseg == 4 && seg_is(c, 3, "export.zip") && is_method(c, "GET")) {
        json_t *b = NULL;
        code = m2p_store_batch_get(c->store, id, &b, err);
        json_decref(b);
        m2p_image_filter f;
        memset(&f, 0, sizeof f);
        f.batch_id = id;
        f.limit = 1000;
        json_t *imgs = NULL;
        if (code == M2P_OK) {
            code = m2p_store_images_query(c->store, &f, &imgs, err);
        }
        if (code == M2P_OK) {
            code = web_zip_response(c, json_object_get(imgs, "images"), err);
        }
        json_decref(imgs);
        return code;
    }
    return m2p_error_set(err, M2P_E_NOT_FOUND, "no such route");
}

/* ---- images ----------------------------------------------------------------------------------- */

/* Opens a stored file for serving: regular, not a symlink. Owns nothing on failure. */
static m2p_code open_stored(const char *path, int *fd_out, struct stat *st, m2p_code not_found, m2p_error *err) {
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return m2p_error_set(err, not_found, "the file is gone");
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        (void)close(fd);
        return m2p_error_set(err, not_found, "not a regular file");
    }
    *fd_out = fd;
    return M2P_OK;
}

static m2p_code serve_file(web_ctx *c, const char *path, const char *ctype, const char *etag_prefix, int64_t id,
                           m2p_code not_found, m2p_error *err) {
    int fd = -1;
    struct stat st;
    m2p_code code = open_stored(path, &fd, &st, not_found, err);
    if (code != M2P_OK) {
        return code;
    }
    char etag[96];
    (void)snprintf(etag, sizeof etag, "\"%s-%lld-%lld-%lld\"", etag_prefix, (long long)id, (long long)st.st_size,
                   (long long)st.st_mtime);
    const char *inm = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "If-None-Match");
    struct MHD_Response *r = NULL;
    unsigned status = MHD_HTTP_OK;
    if (inm != NULL && strcmp(inm, etag) == 0) {
        (void)close(fd);
        r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_NOT_MODIFIED;
    } else {
        r = MHD_create_response_from_fd((size_t)st.st_size, fd); /* takes the fd */
        if (r == NULL) {
            (void)close(fd);
        }
    }
    if (r == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "response");
    }
    (void)MHD_add_response_header(r, "Content-Type", ctype);
    (void)MHD_add_response_header(r, "ETag", etag);
    (void)MHD_add_response_header(r, "Cache-Control", "public, max-age=31536000, immutable");
    (void)MHD_add_response_header(r, "Content-Security-Policy", "default-src 'none'");
    web_add_common_headers(r);
    c->resp = r;
    c->status = status;
    return M2P_OK;
}

static m2p_code image_thumb(web_ctx *c, int64_t id, const char *path, m2p_error *err) {
    char thumb[M2P_PATH_MAX + 16];
    int n = snprintf(thumb, sizeof thumb, "%s.thumb.webp", path);
    if (n < 0 || (size_t)n >= sizeof thumb) {
        return m2p_error_set(err, M2P_E_IO, "thumbnail path of image %lld too long (data_dir is too deep)",
                             (long long)id);
    }
    struct stat st;
    if (stat(thumb, &st) != 0) {
        m2p_image *img = NULL;
        m2p_png_meta *meta = NULL;
        m2p_code code = m2p_png_read(path, &img, &meta, err);
        if (code == M2P_OK) {
            code = m2p_png_write_thumb_webp(thumb, img, 384, 80, err);
        }
        m2p_image_free(img);
        m2p_png_meta_free(meta);
        if (code != M2P_OK) {
            return code == M2P_E_FILE_NOT_FOUND || code == M2P_E_IO
                       ? m2p_error_set(err, M2P_E_IMAGE_NOT_FOUND, "the image file is gone")
                       : code;
        }
    }
    web_cache_touch(thumb); /* last use, for the pruner when it is a cache copy */
    return serve_file(c, thumb, "image/webp", "thumb", id, M2P_E_IMAGE_NOT_FOUND, err);
}

static m2p_code gallery(web_ctx *c, m2p_error *err) {
    m2p_image_filter f;
    memset(&f, 0, sizeof f);
    f.style = query_str(c, "style", 48);
    f.key = query_str(c, "key", 4);
    f.mode = query_str(c, "mode", 8);
    f.q = query_str(c, "q", 200);
    f.source = query_str(c, "source", 2048);
    long job = 0;
    list_window win;
    m2p_code code = query_double(c, "tempo_min", 0, 1000, &f.tempo_min, err);
    if (code == M2P_OK) {
        code = query_double(c, "tempo_max", 0, 1000, &f.tempo_max, err);
    }
    if (code == M2P_OK) {
        code = query_window(c, 1000, 100, &win, err);
    }
    if (code == M2P_OK) {
        code = query_int(c, "job", 0, 1000000000000L, 0, &job, err);
    }
    if (code != M2P_OK) {
        return code;
    }
    f.from = win.from;
    f.to = win.to;
    f.limit = (int)win.limit;
    f.offset = (int)win.offset;
    f.job_id = job;
    f.batch_id = win.batch;
    json_t *out = NULL;
    code = m2p_store_images_query(c->store, &f, &out, err);
    if (code == M2P_OK) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(out, "images"), i, v) {
            (void)json_object_del(v, "path"); /* server paths stay on the server */
        }
        web_json(c, MHD_HTTP_OK, out);
    }
    return code;
}

/* Parses "ids=1,2,3" into image rows for the ZIP export. */
static m2p_code export_selection(web_ctx *c, m2p_error *err) {
    const char *ids = web_query(c, "ids");
    if (ids == NULL || ids[0] == '\0' || strlen(ids) > 20000) {
        return m2p_error_set(err, M2P_E_FIELD_INVALID, "ids: give image ids as ids=1,2,3");
    }
    json_t *rows = json_array();
    if (rows == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "export");
    }
    char buf[24];
    const char *p = ids;
    m2p_code code = M2P_OK;
    while (code == M2P_OK && *p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        int64_t id = 0;
        if (len == 0 || len >= sizeof buf) {
            code = m2p_error_set(err, M2P_E_FIELD_INVALID, "ids: malformed list");
            break;
        }
        memcpy(buf, p, len);
        buf[len] = '\0';
        if (!m2p_web_parse_id(buf, &id)) {
            code = m2p_error_set(err, M2P_E_FIELD_INVALID, "ids: '%s' is not an id", buf);
            break;
        }
        if (json_array_size(rows) >= 1000) {
            code = m2p_error_set(err, M2P_E_BATCH_TOO_LARGE, "at most 1000 images per export");
            break;
        }
        json_t *img = NULL;
        code = m2p_store_image_get(c->store, id, &img, err);
        if (code == M2P_OK) {
            (void)json_array_append_new(rows, img);
        }
        p = comma != NULL ? comma + 1 : p + len;
    }
    if (code == M2P_OK) {
        code = web_zip_response(c, rows, err);
    }
    json_decref(rows);
    return code;
}

static m2p_code image_routes(web_ctx *c, m2p_error *err) {
    if (!is_method(c, "GET") && !is_method(c, "HEAD")) {
        return method_not_allowed(c, err);
    }
    if (c->nseg == 2) {
        return gallery(c, err);
    }
    int64_t id = 0;
    m2p_code code = path_id(c, 2, M2P_E_IMAGE_NOT_FOUND, &id, err);
    if (code != M2P_OK) {
        return code;
    }
    json_t *img = NULL;
    code = m2p_store_image_get(c->store, id, &img, err);
    if (code != M2P_OK) {
        return code;
    }
    const char *stored = json_string_value(json_object_get(img, "path"));
    const char *path = stored;
    char local[M2P_PATH_MAX];
    bool file_route = c->nseg == 3 || (c->nseg == 4 && seg_is(c, 3, "thumb"));
    /* Shared database, no shared filesystem: an image whose file is not on this
     * host is served from this host's copy of its stored bytes (storage.c). The
     * pruner may remove a cache copy between the two steps: then once more. */
    for (int attempt = 0; file_route && stored != NULL && attempt < 2; attempt++) {
        code = web_image_local(c->w, c->store, id, stored, local, sizeof local, &path, err);
        if (code == M2P_OK) {
            code = c->nseg == 3 ? serve_file(c, path, "image/png", "img", id, M2P_E_IMAGE_NOT_FOUND, err)
                                : image_thumb(c, id, path, err);
        }
        if (code != M2P_E_IMAGE_NOT_FOUND || path == stored) {
            break;
        }
    }
    if (stored == NULL) {
        code = m2p_error_set(err, M2P_E_IMAGE_NOT_FOUND, "image %lld has no file", (long long)id);
    } else if (file_route) {
        /* served (or failed) above */
    } else if (c->nseg == 4 && seg_is(c, 3, "meta")) {
        (void)json_object_del(img, "path");
        web_json(c, MHD_HTTP_OK, json_incref(img));
    } else {
        code = m2p_error_set(err, M2P_E_NOT_FOUND, "no such route");
    }
    json_decref(img);
    return code;
}

/* ---- tracks: metadata, audio with Range, waveform peaks -------------------------------------- */

static const char *audio_type(const char *path) {
    const char *dot = strrchr(path, '.');
    static const struct {
        const char *ext, *type;
    } k[] = {{".wav", "audio/wav"},   {".mp3", "audio/mpeg"}, {".flac", "audio/flac"}, {".ogg", "audio/ogg"},
             {".opus", "audio/ogg"},  {".m4a", "audio/mp4"},  {".webm", "audio/webm"}, {".aac", "audio/aac"}};
    for (size_t i = 0; dot != NULL && i < sizeof k / sizeof k[0]; i++) {
        if (strcmp(dot, k[i].ext) == 0) {
            return k[i].type;
        }
    }
    return "application/octet-stream";
}

static m2p_code track_audio(web_ctx *c, int64_t id, const char *path, m2p_error *err) {
    int fd = -1;
    struct stat st;
    m2p_code code = open_stored(path, &fd, &st, M2P_E_AUDIO_NOT_STORED, err);
    if (code != M2P_OK) {
        return code;
    }
    const char *range = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Range");
    uint64_t start = 0;
    uint64_t len = (uint64_t)st.st_size;
    unsigned status = MHD_HTTP_OK;
    if (range != NULL) {
        code = m2p_web_parse_range(range, (uint64_t)st.st_size, &start, &len, err);
        if (code != M2P_OK) {
            (void)close(fd);
            return code;
        }
        status = MHD_HTTP_PARTIAL_CONTENT;
    }
    struct MHD_Response *r = MHD_create_response_from_fd_at_offset64(len, fd, start);
    if (r == NULL) {
        (void)close(fd);
        return m2p_error_set(err, M2P_E_NOMEM, "response");
    }
    (void)MHD_add_response_header(r, "Content-Type", audio_type(path));
    (void)MHD_add_response_header(r, "Accept-Ranges", "bytes");
    (void)MHD_add_response_header(r, "Cache-Control", "private, max-age=3600");
    if (status == MHD_HTTP_PARTIAL_CONTENT) {
        char cr[96];
        (void)snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu", (unsigned long long)start,
                       (unsigned long long)(start + len - 1), (unsigned long long)st.st_size);
        (void)MHD_add_response_header(r, "Content-Range", cr);
    }
    web_add_common_headers(r);
    c->resp = r;
    c->status = status;
    (void)id;
    return M2P_OK;
}

typedef struct peaks_ctx {
    float *peaks;
    size_t n, cap;
    size_t per_bucket, in_bucket;
    float cur;
} peaks_ctx;

static m2p_code peaks_sink(void *ctx, const float *samples, size_t n) {
    peaks_ctx *p = ctx;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(samples[i]);
        if (a > p->cur) {
            p->cur = a;
        }
        if (++p->in_bucket == p->per_bucket) {
            if (p->n < p->cap) {
                p->peaks[p->n++] = p->cur;
            }
            p->cur = 0;
            p->in_bucket = 0;
        }
    }
    return M2P_OK;
}

/* Peaks are decoded once per audio content and kept in <data_dir>/peaks/<sha256>.json;
 * the audio is looked for (and copied here from the database) only on a miss. */
static m2p_code track_peaks(web_ctx *c, int64_t id, const m2p_track *t, m2p_error *err) {
    const char *content_hash = t->content_hash;
    char cache[M2P_PATH_MAX + 80];
    char dir[M2P_PATH_MAX];
    bool cacheable = strlen(content_hash) == 64 && strspn(content_hash, "0123456789abcdef") == 64;
    (void)m2p_config_subdir(&c->w->cfg, "peaks", dir, sizeof dir);
    int cn = snprintf(cache, sizeof cache, "%s/%s.json", dir, content_hash);
    cacheable = cacheable && cn > 0 && (size_t)cn < sizeof cache;
    if (cacheable) {
        char *text = NULL;
        size_t len = 0;
        m2p_error e2;
        if (m2p_fs_read_file(cache, 16u * 1024u * 1024u, &text, &len, &e2) == M2P_OK) {
            json_t *j = json_loadb(text, len, 0, NULL);
            m2p_free(text);
            if (json_is_object(j)) {
                web_cache_touch(cache);
                web_json(c, MHD_HTTP_OK, j);
                return M2P_OK;
            }
            json_decref(j);
        }
    }
    char local[M2P_PATH_MAX + 80];
    const char *path = NULL;
    m2p_code lc = web_track_local(c->w, c->store, id, t, local, sizeof local, &path, err);
    if (lc != M2P_OK) {
        return lc;
    }
    const int rate = 8000;
    m2p_decode_opts o;
    m2p_decode_opts_default(&o);
    o.rate = rate;
    o.max_duration_s = c->w->cfg.max_duration_s;
    o.min_duration_s = 0;
    o.allow_silent = true;
    peaks_ctx p;
    memset(&p, 0, sizeof p);
    p.per_bucket = rate / 20; /* 50 ms per peak */
    p.cap = (size_t)(o.max_duration_s * 20.0) + 2;
    p.peaks = m2p_malloc_array(p.cap, sizeof *p.peaks);
    if (p.peaks == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "peaks");
    }
    m2p_decode_sink sink = {peaks_sink, &p};
    m2p_code code = m2p_decode_file_stream(path, &o, NULL, &sink, err);
    if (code == M2P_OK) {
        if (p.in_bucket > 0 && p.n < p.cap) {
            p.peaks[p.n++] = p.cur;
        }
        json_t *arr = json_array();
        for (size_t i = 0; arr != NULL && i < p.n; i++) {
            (void)json_array_append_new(arr, json_real(round((double)p.peaks[i] * 1000.0) / 1000.0));
        }
        json_t *out = json_pack("{s:f, s:I, s:o}", "seconds_per_peak", 0.05, "count", (json_int_t)p.n, "peaks",
                                arr != NULL ? arr : json_array());
        char *text = cacheable && out != NULL ? json_dumps(out, JSON_COMPACT) : NULL;
        m2p_error e2;
        if (text != NULL && (m2p_fs_mkdirs(dir, &e2) != M2P_OK ||
                             m2p_fs_write_atomic(cache, text, strlen(text), &e2) != M2P_OK)) {
            M2P_WARN("web", "peaks not cached: %s", e2.detail);
        }
        free(text);
        web_json(c, MHD_HTTP_OK, out);
    }
    m2p_free(p.peaks);
    return code;
}

static m2p_code track_routes(web_ctx *c, m2p_error *err) {
    if (!is_method(c, "GET") && !is_method(c, "HEAD")) {
        return method_not_allowed(c, err);
    }
    int64_t id = 0;
    m2p_code code = path_id(c, 2, M2P_E_NOT_FOUND, &id, err);
    if (code != M2P_OK) {
        return code;
    }
    m2p_track t;
    code = m2p_store_track_get(c->store, id, &t, err);
    if (code != M2P_OK) {
        return code == M2P_E_NOT_FOUND ? m2p_error_set(err, M2P_E_NOT_FOUND, "track %lld", (long long)id) : code;
    }
    if (c->nseg == 3) {
        web_json(c, MHD_HTTP_OK,
                 json_pack("{s:I, s:s, s:s, s:s, s:s, s:f, s:s, s:s, s:s}", "id", (json_int_t)id, "kind",
                           m2p_source_kind_name(t.kind), "source", t.kind == M2P_SOURCE_UPLOAD ? "" : t.source,
                           "title", t.title, "uploader", t.uploader, "duration_s", t.duration_s, "content_hash",
                           t.content_hash, "audio_url", "audio", "peaks_url", "peaks"));
        return M2P_OK;
    }
    if (c->nseg == 4 && seg_is(c, 3, "audio")) {
        /* Shared database: the file may be on the worker's host; then this
         * host's copy of the bytes stored in the database (storage.c). */
        char local[M2P_PATH_MAX + 80];
        const char *path = NULL;
        code = web_track_local(c->w, c->store, id, &t, local, sizeof local, &path, err);
        if (code == M2P_OK) {
            code = track_audio(c, id, path, err);
        }
        if (code == M2P_E_AUDIO_NOT_STORED && path == local) { /* pruned in between: once more */
            code = web_track_local(c->w, c->store, id, &t, local, sizeof local, &path, err);
            if (code == M2P_OK) {
                code = track_audio(c, id, path, err);
            }
        }
        return code;
    }
    if (c->nseg == 4 && seg_is(c, 3, "peaks")) {
        return track_peaks(c, id, &t, err);
    }
    return m2p_error_set(err, M2P_E_NOT_FOUND, "no such route");
}

/* ---- presets, templates, settings, queue ------------------------------------------------------- */

static m2p_code presets_route(web_ctx *c, m2p_error *err) {
    if (!is_method(c, "GET") && !is_method(c, "HEAD")) {
        return method_not_allowed(c, err);
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < m2p_presets_count(c->w->presets); i++) {
        const m2p_preset *p = m2p_presets_at(c->w->presets, i);
        (void)json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:i, s:f}", "name", p->name, "description",
                                                   p->description, "template", p->template_text, "negative",
                                                   p->negative, "steps", p->steps, "guidance", p->guidance));
    }
    web_json(c, MHD_HTTP_OK, json_pack("{s:o}", "presets", arr != NULL ? arr : json_array()));
    return M2P_OK;
}

static m2p_code template_body(web_ctx *c, const char **name, const char **text, json_t **in, m2p_error *err) {
    m2p_code code = body_json(c, in, err);
    if (code != M2P_OK) {
        return code;
    }
    *name = json_string_value(json_object_get(*in, "name"));
    *text = json_string_value(json_object_get(*in, "text"));
    if (*name == NULL || (*name)[0] == '\0' || strlen(*name) > 64) {
        return m2p_error_set(err, M2P_E_FIELD_INVALID, "name: 1 to 64 characters of text");
    }
    if (*text == NULL || strlen(*text) > M2P_WEB_MAX_TEMPLATE) {
        return m2p_error_set(err, M2P_E_FIELD_INVALID, "text: the template, up to %d bytes", M2P_WEB_MAX_TEMPLATE);
    }
    m2p_template *t = NULL;
    code = m2p_template_parse(*text, &t, err);
    m2p_template_free(t);
    return code;
}

static m2p_code template_routes(web_ctx *c, m2p_error *err) {
    json_t *out = NULL;
    json_t *in = NULL;
    const char *name = NULL;
    const char *text = NULL;
    int64_t id = 0;
    m2p_code code = M2P_OK;
    if (c->nseg == 2) {
        if (is_method(c, "GET") || is_method(c, "HEAD")) {
            code = m2p_store_template_list(c->store, &out, err);
            if (code == M2P_OK) {
                web_json(c, MHD_HTTP_OK, json_pack("{s:o}", "templates", out));
            }
            return code;
        }
        if (!is_method(c, "POST")) {
            return method_not_allowed(c, err);
        }
        code = template_body(c, &name, &text, &in, err);
        if (code == M2P_OK) {
            code = m2p_store_template_put(c->store, 0, name, text, &id, err);
        }
        if (code == M2P_OK) {
            code = m2p_store_template_get(c->store, id, &out, err);
        }
        if (code == M2P_OK) {
            web_json(c, MHD_HTTP_CREATED, out);
            set_location(c, "/api/templates/", id);
        }
        json_decref(in);
        return code;
    }
    code = path_id(c, 2, M2P_E_NOT_FOUND, &id, err);
    if (code != M2P_OK || c->nseg != 3) {
        return code != M2P_OK ? code : m2p_error_set(err, M2P_E_NOT_FOUND, "no such route");
    }
    if (is_method(c, "GET") || is_method(c, "HEAD")) {
        code = m2p_store_template_get(c->store, id, &out, err);
    } else if (is_method(c, "PUT")) {
        int64_t got = 0;
        code = template_body(c, &name, &text, &in, err);
        if (code == M2P_OK) {
            code = m2p_store_template_put(c->store, id, name, text, &got, err);
        }
        if (code == M2P_OK) {
            code = m2p_store_template_get(c->store, id, &out, err);
        }
    } else if (is_method(c, "DELETE")) {
        code = m2p_store_template_delete(c->store, id, err);
        if (code == M2P_OK) {
            out = json_pack("{s:I, s:b}", "id", (json_int_t)id, "deleted", 1);
        }
    } else {
        code = method_not_allowed(c, err);
    }
    if (code == M2P_OK) {
        web_json(c, MHD_HTTP_OK, out);
    }
    json_decref(in);
    return code;
}

/* The user's defaults: each key is checked like the job field of the same name. */
static const char *const k_setting_keys[] = {"style", "variations", "steps", "size", "renderer", "guidance"};

static m2p_code settings_routes(web_ctx *c, m2p_error *err) {
    json_t *out = NULL;
    m2p_code code = M2P_OK;
    if (is_method(c, "PUT") || is_method(c, "PATCH")) {
        json_t *in = NULL;
        code = body_json(c, &in, err);
        const char *key;
        json_t *val;
        json_t *probe = json_object();
        if (code == M2P_OK && probe == NULL) {
            code = m2p_error_set(err, M2P_E_NOMEM, "settings");
        }
        if (code == M2P_OK) {
            json_object_foreach(in, key, val) {
                if (strcmp(key, "theme") == 0) { /* a preference of the page (web/), not a job field */
                    const char *t = json_string_value(val);
                    if (!json_is_null(val) && (t == NULL || (strcmp(t, "dark") != 0 && strcmp(t, "light") != 0))) {
                        code = m2p_error_set(err, M2P_E_FIELD_INVALID, "theme: \"dark\" or \"light\"");
                        break;
                    }
                    continue;
                }
                bool known = false;
                for (size_t i = 0; i < sizeof k_setting_keys / sizeof k_setting_keys[0]; i++) {
                    known = known || strcmp(key, k_setting_keys[i]) == 0;
                }
                if (!known) {
                    code = m2p_error_set(err, M2P_E_FIELD_INVALID, "unknown setting '%.64s'; known: style, "
                                                                   "variations, steps, size, renderer, guidance", key);
                    break;
                }
                (void)json_object_set(probe, key, val);
            }
        }
        /* Check the values through the job-spec parser (with a dummy upload, so no source is needed). */
        if (code == M2P_OK) {
            json_t *spec = NULL;
            bool sg = false;
            m2p_spec_ctx sc = {&c->w->cfg, c->w->presets, NULL, false, false};
            code = m2p_web_parse_spec(probe, &sc, 0, &spec, &sg, err);
            json_decref(spec);
        }
        if (code == M2P_OK) {
            json_object_foreach(in, key, val) {
                char text[64];
                if (json_is_null(val)) {
                    code = m2p_store_setting_put(c->store, key, NULL, err);
                } else {
                    if (json_is_string(val)) {
                        (void)snprintf(text, sizeof text, "%s", json_string_value(val));
                    } else if (json_is_integer(val)) {
                        (void)snprintf(text, sizeof text, "%lld", (long long)json_integer_value(val));
                    } else if (json_is_number(val)) {
                        (void)snprintf(text, sizeof text, "%g", json_number_value(val));
                    } else {
                        code = m2p_error_set(err, M2P_E_FIELD_INVALID, "%s: text or a number", key);
                        break;
                    }
                    code = m2p_store_setting_put(c->store, key, text, err);
                }
                if (code != M2P_OK) {
                    break;
                }
            }
        }
        json_decref(probe);
        json_decref(in);
    } else if (!is_method(c, "GET") && !is_method(c, "HEAD")) {
        return method_not_allowed(c, err);
    }
    if (code == M2P_OK) {
        code = m2p_store_settings_get(c->store, &out, err);
    }
    if (code == M2P_OK) {
        (void)json_object_del(out, "queue_paused");
        const m2p_config *cfg = &c->w->cfg;
        json_t *defaults = json_pack("{s:s, s:i, s:i, s:s, s:f, s:i, s:i}", "style", cfg->style, "variations",
                                     cfg->variations, "steps", cfg->steps, "renderer", cfg->renderer, "guidance",
                                     cfg->guidance, "width", cfg->width, "height", cfg->height);
        web_json(c, MHD_HTTP_OK, json_pack("{s:o, s:o}", "settings", out, "server_defaults", defaults));
    }
    return code;
}

static m2p_code queue_routes(web_ctx *c, m2p_error *err) {
    m2p_code code = M2P_OK;
    if (c->nseg == 3 && (seg_is(c, 2, "pause") || seg_is(c, 2, "resume"))) {
        if (!is_method(c, "POST")) {
            return method_not_allowed(c, err);
        }
        code = m2p_store_setting_put(c->store, "queue_paused", seg_is(c, 2, "pause") ? "1" : NULL, err);
        if (code == M2P_OK) {
            m2p_queue_wake(c->w->queue);
        }
    } else if (c->nseg != 2) {
        return m2p_error_set(err, M2P_E_NOT_FOUND, "no such route");
    } else if (!is_method(c, "GET") && !is_method(c, "HEAD")) {
        return method_not_allowed(c, err);
    }
    json_t *counts = NULL;
    json_t *stages = NULL;
    char v[8];
    bool paused = false;
    code = code == M2P_OK ? m2p_store_job_counts(c->store, &counts, err) : code;
    if (code == M2P_OK) {
        code = m2p_store_job_stage_counts(c->store, &stages, err);
    }
    if (code == M2P_OK) {
        code = m2p_store_setting_get(c->store, "queue_paused", v, sizeof v, &paused, err);
    }
    if (code == M2P_OK) {
        m2p_queue_stats st;
        m2p_queue_get_stats(c->w->queue, &st);
        web_json(c, MHD_HTTP_OK,
                 json_pack("{s:o, s:o, s:b, s:i, s:i}", "counts", counts, "stages", stages, "paused", paused,
                           "workers", st.workers, "busy_workers", st.busy_workers));
        counts = NULL;
        stages = NULL;
    }
    json_decref(counts);
    json_decref(stages);
    return code;
}

/* ---- /metrics (Prometheus text format) ------------------------------------------------------------ */

typedef struct textbuf {
    char *p;
    size_t len, cap;
    bool failed;
} textbuf;

static void tb_printf(textbuf *t, const char *fmt, ...) M2P_PRINTF(2, 3);
static void tb_printf(textbuf *t, const char *fmt, ...) {
    if (t->failed) {
        return;
    }
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p != NULL ? t->p + t->len : NULL, t->p != NULL ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if (t->p != NULL && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap == 0 ? 4096 : t->cap * 2;
        while (cap < t->len + (size_t)n + 1) {
            cap *= 2;
        }
        char *np = realloc(t->p, cap); /* freed by MHD (MHD_RESPMEM_MUST_FREE) */
        if (np == NULL) {
            t->failed = true;
            return;
        }
        t->p = np;
        t->cap = cap;
    }
}

static m2p_code metrics_route(web_ctx *c, m2p_error *err) {
    json_t *counts = NULL;
    json_t *stats = NULL;
    json_t *stages = NULL;
    m2p_code code = m2p_store_job_counts(c->store, &counts, err);
    if (code == M2P_OK) {
        code = m2p_store_step_stats(c->store, &stats, err);
    }
    if (code == M2P_OK) {
        code = m2p_store_job_stage_counts(c->store, &stages, err);
    }
    if (code != M2P_OK) {
        json_decref(counts);
        json_decref(stats);
        return code;
    }
    m2p_queue_stats st;
    m2p_queue_get_stats(c->w->queue, &st);
    m2p_web *w = c->w;
    textbuf t = {0};
    tb_printf(&t, "# HELP m2p_jobs Jobs in the database by status.\n# TYPE m2p_jobs gauge\n");
    const char *key;
    json_t *val;
    json_object_foreach(counts, key, val) {
        tb_printf(&t, "m2p_jobs{status=\"%s\"} %lld\n", key, (long long)json_integer_value(val));
    }
    tb_printf(&t, "# HELP m2p_jobs_stage Queued and running jobs by stage (analyze: CPU workers, render: GPU "
                  "workers).\n# TYPE m2p_jobs_stage gauge\n");
    const char *stage;
    json_t *by_status;
    json_object_foreach(stages, stage, by_status) {
        json_object_foreach(by_status, key, val) {
            tb_printf(&t, "m2p_jobs_stage{stage=\"%s\",status=\"%s\"} %lld\n", stage, key,
                      (long long)json_integer_value(val));
        }
    }
    json_decref(stages);
    tb_printf(&t, "# HELP m2p_queue_depth Jobs waiting to run.\n# TYPE m2p_queue_depth gauge\nm2p_queue_depth %lld\n",
              (long long)json_integer_value(json_object_get(counts, "queued")));
    tb_printf(&t, "# TYPE m2p_workers gauge\nm2p_workers %d\n# TYPE m2p_workers_busy gauge\nm2p_workers_busy %d\n",
              st.workers, st.busy_workers);
    tb_printf(&t, "# TYPE m2p_jobs_started_total counter\nm2p_jobs_started_total %llu\n",
              (unsigned long long)st.jobs_started);
    tb_printf(&t, "# TYPE m2p_jobs_finished_total counter\n");
    tb_printf(&t, "m2p_jobs_finished_total{status=\"succeeded\"} %llu\n", (unsigned long long)st.jobs_succeeded);
    tb_printf(&t, "m2p_jobs_finished_total{status=\"failed\"} %llu\n", (unsigned long long)st.jobs_failed);
    tb_printf(&t, "m2p_jobs_finished_total{status=\"cancelled\"} %llu\n", (unsigned long long)st.jobs_cancelled);
    tb_printf(&t, "m2p_jobs_finished_total{status=\"partial\"} %llu\n", (unsigned long long)st.jobs_partial);
    tb_printf(&t, "# TYPE m2p_jobs_retried_total counter\nm2p_jobs_retried_total %llu\n",
              (unsigned long long)st.jobs_retried);
    tb_printf(&t, "# HELP m2p_step_seconds Time spent in each pipeline step by this process.\n"
                  "# TYPE m2p_step_seconds summary\n");
    for (int s = 0; s < M2P_STEP_COUNT; s++) {
        tb_printf(&t, "m2p_step_seconds_sum{step=\"%s\"} %.6f\nm2p_step_seconds_count{step=\"%s\"} %llu\n",
                  m2p_step_name((m2p_step)s), st.step_seconds_sum[s], m2p_step_name((m2p_step)s),
                  (unsigned long long)st.step_count[s]);
    }
    tb_printf(&t, "# HELP m2p_step_mean_seconds Running mean of step durations (for ETAs).\n"
                  "# TYPE m2p_step_mean_seconds gauge\n");
    size_t i;
    json_array_foreach(stats, i, val) {
        tb_printf(&t, "m2p_step_mean_seconds{step=\"%s\",renderer=\"%s\",size=\"%s\"} %.6f\n",
                  json_string_value(json_object_get(val, "step")), json_string_value(json_object_get(val, "renderer")),
                  json_string_value(json_object_get(val, "size")),
                  json_number_value(json_object_get(val, "mean_s")));
    }
    uint64_t fh = st.features_cached;
    uint64_t fm = st.features_computed;
    uint64_t ah = st.audio_cache_hits;
    uint64_t am = st.audio_cache_misses;
    tb_printf(&t, "# TYPE m2p_cache_hits_total counter\nm2p_cache_hits_total{cache=\"features\"} %llu\n"
                  "m2p_cache_hits_total{cache=\"audio\"} %llu\n",
              (unsigned long long)fh, (unsigned long long)ah);
    tb_printf(&t, "# TYPE m2p_cache_misses_total counter\nm2p_cache_misses_total{cache=\"features\"} %llu\n"
                  "m2p_cache_misses_total{cache=\"audio\"} %llu\n",
              (unsigned long long)fm, (unsigned long long)am);
    tb_printf(&t, "# TYPE m2p_cache_hit_ratio gauge\nm2p_cache_hit_ratio{cache=\"features\"} %.4f\n"
                  "m2p_cache_hit_ratio{cache=\"audio\"} %.4f\n",
              fh + fm > 0 ? (double)fh / (double)(fh + fm) : 0.0, ah + am > 0 ? (double)ah / (double)(ah + am) : 0.0);
    tb_printf(&t, "# HELP m2p_request_dedup_total Job requests answered from stored results.\n"
                  "# TYPE m2p_request_dedup_total counter\nm2p_request_dedup_total %llu\n",
              (unsigned long long)atomic_load(&w->dedup_hits));
    int loads = (int)(st.renderers_loaded & 1u) + (int)((st.renderers_loaded >> 1) & 1u);
    tb_printf(&t, "# HELP m2p_model_loads_total Renderers (models) loaded by this process; each is loaded once "
                  "and kept warm.\n# TYPE m2p_model_loads_total counter\nm2p_model_loads_total %d\n"
                  "# TYPE m2p_renderer_loaded gauge\nm2p_renderer_loaded{renderer=\"sonic\"} %u\n"
                  "m2p_renderer_loaded{renderer=\"lcm\"} %u\n",
              loads, st.renderers_loaded & 1u, (st.renderers_loaded >> 1) & 1u);
    tb_printf(&t, "# TYPE m2p_http_requests_total counter\nm2p_http_requests_total %llu\n",
              (unsigned long long)atomic_load(&w->requests));
    tb_printf(&t, "# TYPE m2p_http_responses_total counter\nm2p_http_responses_total{class=\"4xx\"} %llu\n"
                  "m2p_http_responses_total{class=\"5xx\"} %llu\n",
              (unsigned long long)atomic_load(&w->responses_4xx), (unsigned long long)atomic_load(&w->responses_5xx));
    tb_printf(&t, "# TYPE m2p_uploads_total counter\nm2p_uploads_total %llu\n# TYPE m2p_upload_bytes_total counter\n"
                  "m2p_upload_bytes_total %llu\n",
              (unsigned long long)atomic_load(&w->uploads), (unsigned long long)atomic_load(&w->upload_bytes));
    tb_printf(&t, "# HELP m2p_uploads_refused_total Uploads refused because they are not audio.\n"
                  "# TYPE m2p_uploads_refused_total counter\nm2p_uploads_refused_total %llu\n",
              (unsigned long long)atomic_load(&w->uploads_refused));
    tb_printf(&t, "# HELP m2p_pruned_total Unused uploads rows and cache/upload files removed by the pruner.\n"
                  "# TYPE m2p_pruned_total counter\nm2p_pruned_total{what=\"upload_rows\"} %llu\n"
                  "m2p_pruned_total{what=\"files\"} %llu\n",
              (unsigned long long)atomic_load(&w->pruned_rows), (unsigned long long)atomic_load(&w->pruned_files));
    (void)pthread_mutex_lock(&w->ws_mu);
    int ws_open = w->ws_open;
    (void)pthread_mutex_unlock(&w->ws_mu);
    tb_printf(&t, "# TYPE m2p_websockets_open gauge\nm2p_websockets_open %d\n# TYPE m2p_websockets_total counter\n"
                  "m2p_websockets_total %llu\n",
              ws_open, (unsigned long long)atomic_load(&w->ws_total));
    tb_printf(&t, "# TYPE m2p_events_total counter\nm2p_events_total %llu\n", (unsigned long long)st.events);
    tb_printf(&t, "# TYPE m2p_uptime_seconds gauge\nm2p_uptime_seconds %.1f\n", m2p_now_wall() - w->started_at);
    /* resident memory of this process (Linux /proc; absent elsewhere), for the page's performance panel */
    FILE *statm = fopen("/proc/self/statm", "r");
    unsigned long long vm_pages = 0;
    unsigned long long rss_pages = 0;
    if (statm != NULL) {
        if (fscanf(statm, "%llu %llu", &vm_pages, &rss_pages) == 2) {
            tb_printf(&t, "# HELP m2p_process_resident_bytes Resident memory of the server process.\n"
                          "# TYPE m2p_process_resident_bytes gauge\nm2p_process_resident_bytes %llu\n",
                      rss_pages * (unsigned long long)sysconf(_SC_PAGESIZE));
        }
        (void)fclose(statm);
    }
    json_decref(counts);
    json_decref(stats);
    if (t.failed || t.p == NULL) {
        free(t.p);
        return m2p_error_set(err, M2P_E_NOMEM, "metrics");
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(t.len, t.p, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(t.p);
        return m2p_error_set(err, M2P_E_NOMEM, "metrics");
    }
    (void)MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    (void)MHD_add_response_header(r, "Cache-Control", "no-store");
    web_add_common_headers(r);
    c->resp = r;
    c->status = MHD_HTTP_OK;
    return M2P_OK;
}

static m2p_code openapi_route(web_ctx *c, m2p_error *err) {
    const unsigned char *data = NULL;
    size_t len = 0;
    if (!m2p_asset_get("data/openapi.json", &data, &len)) {
        return m2p_error_set(err, M2P_E_NOT_FOUND, "openapi.json is not embedded");
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "response");
    }
    (void)MHD_add_response_header(r, "Content-Type", "application/json");
    web_add_common_headers(r);
    c->resp = r;
    c->status = MHD_HTTP_OK;
    return M2P_OK;
}

m2p_code web_route(web_ctx *c, m2p_error *err) {
    if (c->nseg == 1 && seg_is(c, 0, "metrics")) {
        return is_method(c, "GET") || is_method(c, "HEAD") ? metrics_route(c, err) : method_not_allowed(c, err);
    }
    if (c->nseg == 1 && seg_is(c, 0, "openapi.json")) {
        return openapi_route(c, err);
    }
    if (c->nseg < 2 || !seg_is(c, 0, "api")) {
        return m2p_error_set(err, M2P_E_NOT_FOUND, "no such route");
    }
    if (seg_is(c, 1, "jobs")) {
        return job_routes(c, err);
    }
    if (seg_is(c, 1, "batches")) {
        return batch_routes(c, err);
    }
    if (seg_is(c, 1, "images")) {
        return image_routes(c, err);
    }
    if (seg_is(c, 1, "export.zip") && c->nseg == 2) {
        return is_method(c, "GET") ? export_selection(c, err) : method_not_allowed(c, err);
    }
    if (seg_is(c, 1, "tracks") && c->nseg >= 3) {
        return track_routes(c, err);
    }
    if (seg_is(c, 1, "presets") && c->nseg == 2) {
        return presets_route(c, err);
    }
    if (seg_is(c, 1, "templates")) {
        return template_routes(c, err);
    }
    if (seg_is(c, 1, "settings") && c->nseg == 2) {
        return settings_routes(c, err);
    }
    if (seg_is(c, 1, "queue")) {
        return queue_routes(c, err);
    }
    return m2p_error_set(err, M2P_E_NOT_FOUND, "no such route");
}
