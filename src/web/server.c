/*
 * web/server.c — the libmicrohttpd daemon of `mus2pic serve`: request state,
 * body reading with caps, streamed multipart uploads, authentication, rate
 * limits, the store-handle pool, static files from the embedded table and the
 * error format.
 *
 * A request goes through libmicrohttpd's access handler several times:
 *   first call   → web_req created; auth, method and Content-Length checked
 *                  (an oversized declared body is answered 413 at once);
 *   body calls   → JSON appended under M2P_WEB_MAX_JSON_BODY, or multipart fed
 *                  to the post processor which streams file parts to
 *                  <data_dir>/uploads/.part-XXXXXX while counting bytes
 *                  against max_upload_mb (chunked JSON bodies are accepted with the
 *                  same cap, counted while streaming); after the first error
 *                  the rest of the body is discarded (up to a bound, then the
 *                  connection is closed) and the error is answered at the end;
 *   final call   → uploads finalised (probed: not audio → 415 upload_not_audio;
 *                  hashed, renamed to <sha256>.<ext>), then
 *                  the route's handler runs with a borrowed store handle.
 * web_req is freed by the completion callback, which also removes temporary
 * files that were not finalised. Every error is answered as
 * {"error": {"code", "message", "detail", "hint"}} with the code's HTTP status.
 */
#define _GNU_SOURCE /* O_CLOEXEC, mkostemp */
#include "web/server_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/assets.h"
#include "core/fs.h"
#include "core/log.h"
#include "jobs/broker.h"

#define DISCARD_LIMIT (8u * 1024u * 1024u) /* bytes read after a body error before closing */
#define MAX_URL 2048

/* ---- store pool ------------------------------------------------------------------------------ */

m2p_code web_store_get(m2p_web *w, m2p_store **out, m2p_error *err) {
    (void)pthread_mutex_lock(&w->pool_mu);
    for (;;) {
        for (int i = 0; i < WEB_STORE_POOL; i++) {
            if (!w->pool_busy[i]) {
                w->pool_busy[i] = true;
                m2p_store *s = w->pool[i];
                (void)pthread_mutex_unlock(&w->pool_mu);
                if (s == NULL) {
                    m2p_code c = m2p_store_open(&w->cfg, &s, err);
                    if (c != M2P_OK) {
                        (void)pthread_mutex_lock(&w->pool_mu);
                        w->pool_busy[i] = false;
                        (void)pthread_cond_signal(&w->pool_cv);
                        (void)pthread_mutex_unlock(&w->pool_mu);
                        return c;
                    }
                    (void)pthread_mutex_lock(&w->pool_mu);
                    w->pool[i] = s;
                    (void)pthread_mutex_unlock(&w->pool_mu);
                }
                *out = s;
                return M2P_OK;
            }
        }
        (void)pthread_cond_wait(&w->pool_cv, &w->pool_mu);
    }
}

void web_store_put(m2p_web *w, m2p_store *s) {
    if (s == NULL) {
        return;
    }
    (void)pthread_mutex_lock(&w->pool_mu);
    for (int i = 0; i < WEB_STORE_POOL; i++) {
        if (w->pool[i] == s) {
            w->pool_busy[i] = false;
        }
    }
    (void)pthread_cond_signal(&w->pool_cv);
    (void)pthread_mutex_unlock(&w->pool_mu);
}

/* ---- clients: rate limits and socket caps ---------------------------------------------------- */

static web_client *client_slot(m2p_web *w, const char *addr, double now) {
    web_client *oldest = &w->clients[0];
    for (int i = 0; i < WEB_MAX_CLIENTS; i++) {
        web_client *c = &w->clients[i];
        if (c->addr[0] != '\0' && strcmp(c->addr, addr) == 0) {
            c->last_seen = now;
            return c;
        }
        if (c->addr[0] == '\0') {
            oldest = c;
            break;
        }
        if (c->ws_open == 0 && (oldest->ws_open > 0 || c->last_seen < oldest->last_seen)) {
            oldest = c;
        }
    }
    memset(oldest, 0, sizeof *oldest);
    (void)snprintf(oldest->addr, sizeof oldest->addr, "%s", addr);
    oldest->window_start = now;
    oldest->last_seen = now;
    return oldest;
}

/* queue=redis: the count is shared by every API instance: INCRBY on a key per
 * client and wall-clock minute, expiring after it. *decided false when Redis
 * could not be asked (the caller counts locally instead). */
static bool rate_allow_redis(m2p_web *w, const char *client, int n, int limit, int *retry_after, bool *decided) {
    *decided = false;
    double wall = m2p_now_wall();
    long long minute = (long long)(wall / 60.0);
    char key[200];
    (void)snprintf(key, sizeof key, "m2p:rate:%.120s:%lld", client, minute);
    m2p_error e;
    m2p_error_clear(&e);
    int64_t count = 0;
    (void)pthread_mutex_lock(&w->clients_mu);
    m2p_code c = w->rate_broker != NULL ? M2P_OK : m2p_broker_open(&w->cfg, NULL, &w->rate_broker, &e);
    if (c == M2P_OK) {
        c = m2p_broker_incr(w->rate_broker, key, n, 120, &count, &e);
    }
    if (c == M2P_OK && count > limit) {
        int64_t back = 0;
        if (m2p_broker_incr(w->rate_broker, key, -n, 120, &back, &e) != M2P_OK) {
            M2P_DEBUG("web", "rate limit: %s", e.detail);
        }
    }
    (void)pthread_mutex_unlock(&w->clients_mu);
    if (c != M2P_OK) {
        M2P_WARN("web", "rate limit counted locally: %s", e.detail);
        return true;
    }
    *decided = true;
    if (count > limit) {
        *retry_after = 60 - (int)(wall - (double)minute * 60.0);
        if (*retry_after < 1) {
            *retry_after = 1;
        }
        return false;
    }
    return true;
}

bool web_rate_allow(m2p_web *w, const char *client, int n, int *retry_after) {
    int limit = w->cfg.rate_limit_per_min;
    *retry_after = 0;
    if (limit <= 0) {
        return true;
    }
    if (strcmp(w->cfg.queue, "redis") == 0) {
        bool decided = false;
        bool ok = rate_allow_redis(w, client, n, limit, retry_after, &decided);
        if (decided) {
            return ok;
        }
    }
    double now = m2p_now_monotonic();
    (void)pthread_mutex_lock(&w->clients_mu);
    web_client *c = client_slot(w, client, now);
    if (now - c->window_start >= 60.0) {
        c->window_start = now;
        c->created = 0;
    }
    bool ok = c->created + n <= limit;
    if (ok) {
        c->created += n;
    } else {
        *retry_after = (int)(60.0 - (now - c->window_start)) + 1;
    }
    (void)pthread_mutex_unlock(&w->clients_mu);
    return ok;
}

/* Whether one more job creation would be allowed now (nothing counted). */
static bool rate_would_allow(m2p_web *w, const char *client, int *retry_after) {
    int limit = w->cfg.rate_limit_per_min;
    *retry_after = 0;
    if (limit <= 0) {
        return true;
    }
    double now = m2p_now_monotonic();
    (void)pthread_mutex_lock(&w->clients_mu);
    web_client *c = client_slot(w, client, now);
    bool ok = now - c->window_start >= 60.0 || c->created + 1 <= limit;
    if (!ok) {
        *retry_after = (int)(60.0 - (now - c->window_start)) + 1;
    }
    (void)pthread_mutex_unlock(&w->clients_mu);
    return ok;
}

bool web_ws_acquire(m2p_web *w, const char *client) {
    (void)pthread_mutex_lock(&w->clients_mu);
    web_client *c = client_slot(w, client, m2p_now_monotonic());
    bool ok = c->ws_open < w->cfg.max_ws_per_client;
    if (ok) {
        c->ws_open++;
    }
    (void)pthread_mutex_unlock(&w->clients_mu);
    return ok;
}

void web_ws_release(m2p_web *w, const char *client) {
    (void)pthread_mutex_lock(&w->clients_mu);
    for (int i = 0; i < WEB_MAX_CLIENTS; i++) {
        if (strcmp(w->clients[i].addr, client) == 0 && w->clients[i].ws_open > 0) {
            w->clients[i].ws_open--;
            break;
        }
    }
    (void)pthread_mutex_unlock(&w->clients_mu);
}

/* ---- responses ------------------------------------------------------------------------------- */

void web_add_common_headers(struct MHD_Response *r) {
    (void)MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    (void)MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    (void)MHD_add_response_header(r, "X-Frame-Options", "DENY");
}

static struct MHD_Response *json_response(json_t *j) {
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL) {
        static const char k_oom[] = "{\"error\":{\"code\":\"nomem\",\"message\":\"out of memory\"}}";
        struct MHD_Response *r =
            MHD_create_response_from_buffer(sizeof k_oom - 1, (void *)k_oom, MHD_RESPMEM_PERSISTENT);
        return r;
    }
    /* jansson allocates with malloc, which MHD_RESPMEM_MUST_FREE frees. */
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(text);
        return NULL;
    }
    (void)MHD_add_response_header(r, "Content-Type", "application/json");
    (void)MHD_add_response_header(r, "Cache-Control", "no-store");
    web_add_common_headers(r);
    return r;
}

void web_json(web_ctx *c, unsigned status, json_t *j) {
    if (c->resp != NULL) {
        MHD_destroy_response(c->resp);
    }
    c->resp = json_response(j);
    c->status = status;
}

struct MHD_Response *web_error_response(m2p_code code, const char *detail, unsigned *status) {
    json_t *e = json_pack("{s:{s:s, s:s, s:s, s:s}}", "error", "code", m2p_errname(code), "message",
                          m2p_strerror(code), "detail", detail != NULL ? detail : "", "hint", m2p_errhint(code));
    *status = (unsigned)m2p_err_http_status(code);
    return json_response(e);
}

const char *web_query(web_ctx *c, const char *key) {
    return MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, key);
}

static enum MHD_Result send_error(struct MHD_Connection *conn, m2p_web *w, m2p_code code, const char *detail,
                                  int retry_after) {
    unsigned status = 500;
    struct MHD_Response *r = web_error_response(code, detail, &status);
    if (r == NULL) {
        return MHD_NO;
    }
    if (retry_after > 0) {
        char ra[16];
        (void)snprintf(ra, sizeof ra, "%d", retry_after);
        (void)MHD_add_response_header(r, "Retry-After", ra);
    }
    if (code == M2P_E_AUTH_REQUIRED) {
        (void)MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    }
    atomic_fetch_add(status >= 500 ? &w->responses_5xx : &w->responses_4xx, 1);
    enum MHD_Result res = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return res;
}

/* ---- authentication ----------------------------------------------------------------------------- */

m2p_code web_check_auth(m2p_web *w, struct MHD_Connection *conn, bool *from_query, m2p_error *err) {
    *from_query = false;
    if (w->cfg.api_token[0] == '\0') {
        return M2P_OK;
    }
    char tok[300];
    bool have = m2p_web_bearer(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"), tok, sizeof tok);
    if (!have) {
        have = m2p_web_cookie(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Cookie"), "m2p_token", tok,
                              sizeof tok);
    }
    if (!have) {
        const char *q = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "token");
        if (q != NULL && strlen(q) < sizeof tok) {
            (void)snprintf(tok, sizeof tok, "%s", q);
            have = true;
            *from_query = true;
        }
    }
    if (!have) {
        return m2p_error_set(err, M2P_E_AUTH_REQUIRED, "this server requires an API token");
    }
    if (!m2p_web_token_equal(tok, w->cfg.api_token)) {
        return m2p_error_set(err, M2P_E_AUTH_INVALID, "the token does not match");
    }
    return M2P_OK;
}

/* ---- static files ------------------------------------------------------------------------------- */

static const char *content_type_for(const char *name) {
    const char *dot = strrchr(name, '.');
    static const struct {
        const char *ext, *type;
    } k_types[] = {{".html", "text/html; charset=utf-8"},
                   {".js", "text/javascript; charset=utf-8"},
                   {".css", "text/css; charset=utf-8"},
                   {".json", "application/json"},
                   {".svg", "image/svg+xml"},
                   {".png", "image/png"},
                   {".ico", "image/x-icon"},
                   {".woff2", "font/woff2"},
                   {".txt", "text/plain; charset=utf-8"}};
    for (size_t i = 0; dot != NULL && i < sizeof k_types / sizeof k_types[0]; i++) {
        if (strcmp(dot, k_types[i].ext) == 0) {
            return k_types[i].type;
        }
    }
    return "application/octet-stream";
}

/* Serves web/<path> from the embedded table; only plain names (no "..", no
 * leading slash, a small character set) are looked up at all. */
static m2p_code serve_static(web_ctx *c, bool set_cookie, m2p_error *err) {
    const char *path = c->url + 1;
    if (path[0] == '\0') {
        path = "index.html";
    }
    size_t n = strlen(path);
    if (n > 200 || strstr(path, "..") != NULL || path[0] == '/' || path[0] == '.') {
        return m2p_error_set(err, M2P_E_NOT_FOUND, "no such page");
    }
    for (size_t i = 0; i < n; i++) {
        char ch = path[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                  ch == '-' || ch == '_' || ch == '/';
        if (!ok) {
            return m2p_error_set(err, M2P_E_NOT_FOUND, "no such page");
        }
    }
    char name[256];
    (void)snprintf(name, sizeof name, "web/%s", path);
    const unsigned char *data = NULL;
    size_t len = 0;
    if (!m2p_asset_get(name, &data, &len)) {
        return m2p_error_set(err, M2P_E_NOT_FOUND, "no such page");
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "response");
    }
    (void)MHD_add_response_header(r, "Content-Type", content_type_for(name));
    (void)MHD_add_response_header(r, "Cache-Control", "no-cache");
    (void)MHD_add_response_header(r, "Content-Security-Policy",
                                  "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                                  "connect-src 'self' ws: wss:; style-src 'self' 'unsafe-inline'");
    web_add_common_headers(r);
    if (set_cookie) {
        char cookie[400];
        (void)snprintf(cookie, sizeof cookie, "m2p_token=%s; Path=/; HttpOnly; SameSite=Strict", c->w->cfg.api_token);
        (void)MHD_add_response_header(r, "Set-Cookie", cookie);
    }
    c->resp = r;
    c->status = MHD_HTTP_OK;
    return M2P_OK;
}

/* ---- multipart uploads ----------------------------------------------------------------------- */

static void upload_discard(web_upload *u) {
    if (u->fd >= 0) {
        (void)close(u->fd);
        u->fd = -1;
    }
    if (u->tmp_path[0] != '\0') {
        (void)unlink(u->tmp_path);
        u->tmp_path[0] = '\0';
    }
}

static m2p_code upload_begin(web_req *r, const char *filename, m2p_error *err) {
    if (r->n_uploads >= (size_t)r->w->cfg.max_batch) {
        return m2p_error_set(err, M2P_E_BATCH_TOO_LARGE, "at most %d files per request", r->w->cfg.max_batch);
    }
    if (r->n_uploads == r->uploads_cap) {
        size_t cap = r->uploads_cap == 0 ? 2 : r->uploads_cap * 2;
        web_upload *nu = m2p_realloc(r->uploads, cap * sizeof *nu);
        if (nu == NULL) {
            return m2p_error_set(err, M2P_E_NOMEM, "uploads");
        }
        r->uploads = nu;
        r->uploads_cap = cap;
    }
    web_upload *u = &r->uploads[r->n_uploads];
    memset(u, 0, sizeof *u);
    u->fd = -1;
    char dir[M2P_PATH_MAX];
    (void)m2p_config_subdir(&r->w->cfg, "uploads", dir, sizeof dir);
    m2p_code c = m2p_fs_mkdirs(dir, err);
    if (c != M2P_OK) {
        return c;
    }
    int n = snprintf(u->tmp_path, sizeof u->tmp_path, "%s/.part-XXXXXX", dir);
    if (n < 0 || (size_t)n >= sizeof u->tmp_path) {
        return m2p_error_set(err, M2P_E_IO, "upload folder path too long");
    }
    u->fd = mkostemp(u->tmp_path, O_CLOEXEC);
    if (u->fd < 0) {
        u->tmp_path[0] = '\0';
        return m2p_error_set(err, M2P_E_IO, "cannot create an upload file in %s: %s", dir, strerror(errno));
    }
    /* Keep only a printable, slash-free name for titles. */
    size_t j = 0;
    const char *base = filename != NULL ? filename : "upload";
    const char *slash = strrchr(base, '/');
    if (slash != NULL) {
        base = slash + 1;
    }
    for (size_t i = 0; base[i] != '\0' && j + 1 < sizeof u->name; i++) {
        unsigned char ch = (unsigned char)base[i];
        if (ch >= 0x20 && ch != 0x7f && ch != '\\') {
            u->name[j++] = (char)ch;
        }
    }
    u->name[j] = '\0';
    r->n_uploads++;
    return M2P_OK;
}

static enum MHD_Result on_post_data(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                    const char *content_type, const char *transfer_encoding, const char *data,
                                    uint64_t off, size_t size) {
    web_req *r = cls;
    if (r->body_code != M2P_OK) {
        return MHD_NO;
    }
    if (key == NULL) {
        r->body_code = m2p_error_set(&r->body_err, M2P_E_MULTIPART_INVALID, "a part has no name");
        return MHD_NO;
    }
    if (strcmp(key, "file") == 0 || strcmp(key, "files") == 0) {
        web_upload *cur = r->n_uploads > 0 ? &r->uploads[r->n_uploads - 1] : NULL;
        if (off == 0 && (cur == NULL || cur->size > 0 || cur->fd < 0)) {
            r->body_code = upload_begin(r, filename, &r->body_err);
            if (r->body_code != M2P_OK) {
                return MHD_NO;
            }
            cur = &r->uploads[r->n_uploads - 1];
        }
        if (size == 0) {
            return MHD_YES;
        }
        uint64_t cap = (uint64_t)r->w->cfg.max_upload_mb * 1024u * 1024u;
        if (cur->size + size > cap) {
            r->body_code = m2p_error_set(&r->body_err, M2P_E_UPLOAD_TOO_LARGE, "the limit is %lld MB",
                                         (long long)r->w->cfg.max_upload_mb);
            return MHD_NO;
        }
        size_t done = 0;
        while (done < size) {
            ssize_t k = write(cur->fd, data + done, size - done);
            if (k < 0 && errno == EINTR) {
                continue;
            }
            if (k <= 0) {
                r->body_code = m2p_error_set(&r->body_err, M2P_E_IO, "writing the upload: %s", strerror(errno));
                return MHD_NO;
            }
            done += (size_t)k;
        }
        cur->size += size;
        atomic_fetch_add(&r->w->upload_bytes, size);
        return MHD_YES;
    }
    /* A plain form field: collected as text under caps. */
    json_t *prev = json_object_get(r->fields, key);
    if (prev == NULL) {
        if (r->n_fields >= WEB_MAX_FIELDS || strlen(key) > 64) {
            r->body_code = m2p_error_set(&r->body_err, M2P_E_MULTIPART_INVALID, "too many or too long form fields");
            return MHD_NO;
        }
        r->n_fields++;
    }
    size_t old = prev != NULL ? json_string_length(prev) : 0;
    if (old + size > WEB_MAX_FIELD_BYTES) {
        r->body_code =
            m2p_error_set(&r->body_err, M2P_E_FIELD_INVALID, "form field '%.64s' is over %d bytes", key,
                          WEB_MAX_FIELD_BYTES);
        return MHD_NO;
    }
    char buf[WEB_MAX_FIELD_BYTES + 1];
    if (old > 0) {
        memcpy(buf, json_string_value(prev), old);
    }
    if (size > 0) {
        memcpy(buf + old, data, size);
    }
    buf[old + size] = '\0';
    json_t *v = json_stringn(buf, old + size);
    if (v == NULL) {
        r->body_code = m2p_error_set(&r->body_err, M2P_E_FIELD_INVALID, "form field '%.64s' is not UTF-8 text", key);
        return MHD_NO;
    }
    (void)json_object_set_new(r->fields, key, v);
    return MHD_YES;
}

/* Hashes each streamed file and moves it to uploads/<sha256><ext>. */
/* An upload already stored under the same name, used again: its time is
 * renewed (the pruner's retention restarts) under a shared flock, the pruner
 * removing an old file under an exclusive one (storage.c). True when the file
 * is there and renewed; false when it is absent or was just removed (nlink 0):
 * then the caller stores its own copy. */
static bool upload_renew(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return false;
    }
    struct stat st;
    bool kept = flock(fd, LOCK_SH) == 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink > 0 &&
                futimens(fd, NULL) == 0;
    (void)close(fd); /* releases the lock */
    return kept;
}

static m2p_code finish_uploads(web_req *r, m2p_error *err) {
    for (size_t i = 0; i < r->n_uploads; i++) {
        web_upload *u = &r->uploads[i];
        if (u->fd >= 0) {
            if (close(u->fd) != 0) {
                u->fd = -1;
                return m2p_error_set(err, M2P_E_IO, "closing the upload: %s", strerror(errno));
            }
            u->fd = -1;
        }
        if (u->size == 0) {
            return m2p_error_set(err, M2P_E_UPLOAD_EMPTY, "file %zu ('%.100s') is empty", i + 1, u->name);
        }
        /* Not audio: refused before it is stored or becomes a job (the temp
         * file goes with the request). */
        char label[160];
        (void)snprintf(label, sizeof label, "file %zu ('%.100s')", i + 1, u->name);
        m2p_code c = web_probe_upload(r->w, u->tmp_path, label, err);
        if (c != M2P_OK) {
            atomic_fetch_add(&r->w->uploads_refused, 1);
            return c;
        }
        c = m2p_fs_sha256_file(u->tmp_path, u->sha256, err);
        if (c != M2P_OK) {
            return c;
        }
        char dir[M2P_PATH_MAX];
        (void)m2p_config_subdir(&r->w->cfg, "uploads", dir, sizeof dir);
        int n = snprintf(u->final_path, sizeof u->final_path, "%s/%s%s", dir, u->sha256, m2p_web_upload_ext(u->name));
        if (n < 0 || (size_t)n >= sizeof u->final_path) {
            return m2p_error_set(err, M2P_E_IO, "upload path too long");
        }
        if (upload_renew(u->final_path)) {
            /* same content already stored (a temp file left by a failed unlink
             * goes with the pruner's stale .part- files) */
            (void)unlink(u->tmp_path);
        } else if (rename(u->tmp_path, u->final_path) != 0) {
            return m2p_error_set(err, M2P_E_IO, "storing the upload: %s", strerror(errno));
        }
        u->tmp_path[0] = '\0';
        atomic_fetch_add(&r->w->uploads, 1);
    }
    return M2P_OK;
}

/* ---- the access handler ----------------------------------------------------------------------- */

static void client_address(struct MHD_Connection *conn, char *buf, size_t cap) {
    (void)snprintf(buf, cap, "unknown");
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || ci->client_addr == NULL) {
        return;
    }
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        (void)inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf, (socklen_t)cap);
    } else if (sa->sa_family == AF_INET6) {
        (void)inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf, (socklen_t)cap);
    }
}

static bool has_body_method(const char *m) {
    return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
}

static enum MHD_Result begin_request(m2p_web *w, struct MHD_Connection *conn, const char *url, const char *method,
                                     web_req *r) {
    (void)snprintf(r->method, sizeof r->method, "%s", method);
    client_address(conn, r->client, sizeof r->client);
    /* The token is checked before any body is read (no upload streams to disk
     * for a client without it). */
    /* WebSocket routes check it themselves, to refuse with a close frame (1008). */
    if (strcmp(url, "/healthz") != 0 && strncmp(url, "/ws/", 4) != 0) {
        m2p_error e;
        m2p_error_clear(&e);
        if (web_check_auth(w, conn, &r->token_in_query, &e) != M2P_OK) {
            r->responded = true;
            return send_error(conn, w, e.code, e.detail, 0);
        }
    }
    if (!has_body_method(method)) {
        return MHD_YES;
    }
    const char *ctype = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    const char *clen = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    long long declared = -1;
    if (clen != NULL) {
        char *end = NULL;
        errno = 0;
        declared = strtoll(clen, &end, 10);
        if (errno != 0 || end == clen || *end != '\0' || declared < 0) {
            r->responded = true;
            return send_error(conn, w, M2P_E_INVALID_ARG, "malformed Content-Length", 0);
        }
    }
    if (ctype != NULL && strncasecmp(ctype, "multipart/form-data", 19) == 0) {
        r->is_multipart = true;
        /* Files are streamed to disk only where a job is made of them, and not at all
         * for a client already over its job-creation limit. */
        if (strcmp(method, "POST") != 0 || (strcmp(url, "/api/jobs") != 0 && strcmp(url, "/api/batches") != 0)) {
            r->responded = true;
            return send_error(conn, w, M2P_E_MULTIPART_INVALID, "uploads go to POST /api/jobs or /api/batches", 0);
        }
        int retry_after = 0;
        if (!rate_would_allow(w, r->client, &retry_after)) {
            r->responded = true;
            return send_error(conn, w, M2P_E_RATE_LIMITED, "too many jobs from this address", retry_after);
        }
        long long cap = (long long)w->cfg.max_upload_mb * 1024 * 1024 * (long long)w->cfg.max_batch + 1024 * 1024;
        if (strncmp(url, "/api/batches", 12) != 0) {
            cap = (long long)w->cfg.max_upload_mb * 1024 * 1024 + 1024 * 1024;
        }
        if (clen == NULL) {
            /* An upload without a length (chunked) is refused before any byte is
             * stored: a client must say what it is sending. */
            r->responded = true;
            return send_error(conn, w, M2P_E_LENGTH_REQUIRED, "uploads need a Content-Length (no chunked uploads)", 0);
        }
        if (declared > cap) {
            r->responded = true;
            return send_error(conn, w, M2P_E_UPLOAD_TOO_LARGE, "the declared size is over the limit", 0);
        }
        r->fields = json_object();
        r->pp = MHD_create_post_processor(conn, 64 * 1024, on_post_data, r);
        if (r->pp == NULL || r->fields == NULL) {
            r->responded = true;
            return send_error(conn, w, M2P_E_MULTIPART_INVALID, "multipart/form-data without a valid boundary", 0);
        }
        return MHD_YES;
    }
    r->is_json = true;
    if (declared > M2P_WEB_MAX_JSON_BODY) {
        r->responded = true;
        return send_error(conn, w, M2P_E_BODY_TOO_LARGE, "JSON bodies are limited to 64 KB", 0);
    }
    return MHD_YES;
}

static void body_chunk(web_req *r, const char *data, size_t size) {
    if (r->body_code != M2P_OK) {
        return;
    }
    if (r->is_multipart) {
        if (MHD_post_process(r->pp, data, size) != MHD_YES && r->body_code == M2P_OK) {
            r->body_code = m2p_error_set(&r->body_err, M2P_E_MULTIPART_INVALID, "the multipart body is malformed");
        }
        return;
    }
    size_t need = 0;
    if (!m2p_size_add(r->body_len, size, &need) || need > M2P_WEB_MAX_JSON_BODY) {
        r->body_code = m2p_error_set(&r->body_err, M2P_E_BODY_TOO_LARGE, "JSON bodies are limited to 64 KB");
        return;
    }
    if (need + 1 > r->body_cap) {
        size_t cap = r->body_cap == 0 ? 1024 : r->body_cap;
        while (cap < need + 1) {
            cap *= 2;
        }
        char *nb = m2p_realloc(r->body, cap);
        if (nb == NULL) {
            r->body_code = m2p_error_set(&r->body_err, M2P_E_NOMEM, "request body");
            return;
        }
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, size);
    r->body_len += size;
    r->body[r->body_len] = '\0';
}

static enum MHD_Result dispatch(m2p_web *w, struct MHD_Connection *conn, const char *url, web_req *r) {
    web_ctx c;
    memset(&c, 0, sizeof c);
    c.w = w;
    c.conn = conn;
    c.req = r;
    c.url = url;
    m2p_error err;
    m2p_error_clear(&err);
    m2p_code code = M2P_OK;
    char path[MAX_URL];
    int retry_after = 0;
    if (strlen(url) >= sizeof path || url[0] != '/') {
        code = m2p_error_set(&err, M2P_E_NOT_FOUND, "no such path");
        goto respond;
    }
    if (strcmp(url, "/healthz") == 0) {
        web_json(&c, MHD_HTTP_OK, json_pack("{s:s, s:s}", "status", "ok", "version", M2P_VERSION));
        goto respond;
    }
    /* Split the (already percent-decoded) path into segments. */
    (void)snprintf(path, sizeof path, "%s", url);
    char *save = NULL;
    for (char *tok = strtok_r(path, "/", &save); tok != NULL; tok = strtok_r(NULL, "/", &save)) {
        if (c.nseg == WEB_MAX_SEGS) {
            code = m2p_error_set(&err, M2P_E_NOT_FOUND, "no such path");
            goto respond;
        }
        c.segs[c.nseg++] = tok;
    }
    if (r->body_code != M2P_OK) {
        code = r->body_code;
        err = r->body_err;
        goto respond;
    }
    if (r->is_multipart) {
        code = finish_uploads(r, &err);
        if (code != M2P_OK) {
            for (size_t i = 0; i < r->n_uploads; i++) {
                upload_discard(&r->uploads[i]); /* refused: nothing stays, even before the answer */
            }
            goto respond;
        }
    }
    if (c.nseg >= 1 && strcmp(c.segs[0], "ws") == 0) {
        code = web_ws_upgrade(&c, &err);
    } else if (c.nseg >= 1 && (strcmp(c.segs[0], "api") == 0 || strcmp(c.segs[0], "metrics") == 0 ||
                               strcmp(c.segs[0], "openapi.json") == 0)) {
        code = web_store_get(w, &c.store, &err);
        if (code == M2P_OK) {
            code = web_route(&c, &err);
        }
        web_store_put(w, c.store);
        c.store = NULL;
    } else if (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0) {
        code = serve_static(&c, r->token_in_query, &err);
    } else {
        code = m2p_error_set(&err, M2P_E_METHOD_NOT_ALLOWED, "%s %s", r->method, url);
    }
respond:
    if (code != M2P_OK) {
        if (c.resp != NULL) {
            MHD_destroy_response(c.resp);
            c.resp = NULL;
        }
        if (code == M2P_E_RATE_LIMITED) {
            long ra = 0;
            retry_after = m2p_web_parse_int(err.detail, 1, 3600, &ra) ? (int)ra : 60;
            (void)snprintf(err.detail, sizeof err.detail, "retry after %d s", retry_after);
        }
        return send_error(conn, w, code, err.detail, retry_after);
    }
    if (c.resp == NULL) {
        return MHD_YES; /* the handler queued its own response (WebSocket upgrade) */
    }
    if (c.status >= 400) {
        atomic_fetch_add(c.status >= 500 ? &w->responses_5xx : &w->responses_4xx, 1);
    }
    enum MHD_Result res = MHD_queue_response(conn, c.status, c.resp);
    MHD_destroy_response(c.resp);
    return res;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    m2p_web *w = cls;
    web_req *r = *con_cls;
    if (r == NULL) {
        r = m2p_calloc(1, sizeof *r);
        if (r == NULL) {
            return MHD_NO;
        }
        r->w = w;
        *con_cls = r;
        atomic_fetch_add(&w->requests, 1);
        /* begin_request sets r->responded when it answers at once (an early error). */
        return begin_request(w, conn, url, method, r);
    }
    if (*upload_data_size > 0) {
        size_t size = *upload_data_size;
        *upload_data_size = 0;
        if (r->responded) {
            return MHD_YES;
        }
        if (r->body_code != M2P_OK) {
            /* Discard the rest up to a bound so the error can still be answered. */
            r->body_len += size;
            return r->body_len > DISCARD_LIMIT ? MHD_NO : MHD_YES;
        }
        body_chunk(r, upload_data, size);
        if (r->body_code != M2P_OK) {
            r->body_len = 0;
        }
        return MHD_YES;
    }
    if (r->responded) {
        return MHD_YES;
    }
    r->responded = true;
    if (r->pp != NULL) {
        if (MHD_destroy_post_processor(r->pp) != MHD_YES && r->body_code == M2P_OK) {
            r->body_code = m2p_error_set(&r->body_err, M2P_E_MULTIPART_INVALID, "the multipart body ended early");
        }
        r->pp = NULL;
    }
    return dispatch(w, conn, url, r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    web_req *r = *con_cls;
    if (r == NULL) {
        return;
    }
    if (r->pp != NULL) {
        (void)MHD_destroy_post_processor(r->pp);
    }
    for (size_t i = 0; i < r->n_uploads; i++) {
        upload_discard(&r->uploads[i]);
    }
    m2p_free(r->uploads);
    json_decref(r->fields);
    m2p_free(r->body);
    m2p_free(r);
    *con_cls = NULL;
}

/* Percent-decoding of the path and query (web/parse.c: NUL-safe). */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s) {
    return m2p_web_unescape(s);
}

/* ---- start / stop ----------------------------------------------------------------------------- */

m2p_code m2p_web_start(const m2p_config *cfg, m2p_queue *queue, m2p_pipeline *pipeline, m2p_web **out,
                       m2p_error *err) {
    *out = NULL;
    if (!m2p_web_host_is_loopback(cfg->host) && cfg->api_token[0] == '\0') {
        return m2p_error_set(err, M2P_E_CONFIG,
                             "host %s is not loopback: set api_token (MUS2PIC_API_TOKEN) to serve other machines",
                             cfg->host);
    }
    m2p_code c = M2P_OK;
    struct addrinfo *ai = NULL;
    m2p_web *w = m2p_calloc(1, sizeof *w);
    if (w == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "server");
    }
    w->cfg = *cfg;
    w->queue = queue;
    w->pipeline = pipeline;
    w->started_at = m2p_now_wall();
    (void)pthread_mutex_init(&w->pool_mu, NULL);
    (void)pthread_cond_init(&w->pool_cv, NULL);
    (void)pthread_mutex_init(&w->clients_mu, NULL);
    (void)pthread_mutex_init(&w->ws_mu, NULL);
    (void)pthread_cond_init(&w->ws_cv, NULL);
    atomic_init(&w->stopping, false);
    c = m2p_presets_load(&w->presets, err);
    if (c != M2P_OK) {
        goto fail;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    (void)snprintf(port, sizeof port, "%d", cfg->port);
    const char *host = strcmp(cfg->host, "localhost") == 0 ? "127.0.0.1" : cfg->host;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0 || ai == NULL) {
        c = m2p_error_set(err, M2P_E_CONFIG, "host %s: %s", cfg->host, gai_strerror(gai));
        goto fail;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
                     MHD_ALLOW_UPGRADE | MHD_USE_ITC;
    if (ai->ai_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }
    w->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, w, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, w, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                 (size_t)(64 * 1024), MHD_OPTION_CONNECTION_LIMIT, (unsigned)512,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_UNESCAPE_CALLBACK, unescape,
                                 w, MHD_OPTION_END);
    if (w->daemon == NULL) {
        c = m2p_error_set(err, M2P_E_CONFIG, "cannot listen on %s:%d (in use, or not an address of this machine)",
                          cfg->host, cfg->port);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(w->daemon, MHD_DAEMON_INFO_BIND_PORT);
    w->port = di != NULL ? di->port : cfg->port;
    c = web_prune_start(w, err);
    if (c != M2P_OK) {
        goto fail;
    }
    freeaddrinfo(ai);
    *out = w;
    return M2P_OK;
fail:
    if (ai != NULL) {
        freeaddrinfo(ai);
    }
    m2p_web_stop(w);
    return c;
}

int m2p_web_port(const m2p_web *w) {
    return w->port;
}

void m2p_web_stop(m2p_web *w) {
    if (w == NULL) {
        return;
    }
    atomic_store(&w->stopping, true);
    if (w->daemon != NULL) {
        (void)MHD_quiesce_daemon(w->daemon); /* stop accepting */
    }
    web_prune_stop(w);
    web_ws_shutdown(w);
    if (w->daemon != NULL) {
        MHD_stop_daemon(w->daemon);
    }
    web_ws_free_pending(w);
    for (int i = 0; i < WEB_STORE_POOL; i++) {
        m2p_store_close(w->pool[i]);
    }
    m2p_presets_free(w->presets);
    (void)pthread_cond_destroy(&w->ws_cv);
    (void)pthread_mutex_destroy(&w->ws_mu);
    m2p_broker_free(w->rate_broker);
    (void)pthread_mutex_destroy(&w->clients_mu);
    (void)pthread_cond_destroy(&w->pool_cv);
    (void)pthread_mutex_destroy(&w->pool_mu);
    m2p_free(w);
}
