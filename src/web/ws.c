/*
 * web/ws.c — live progress over WebSocket: /ws/jobs/{id} and /ws/queue.
 *
 * The handshake is checked here (GET, Upgrade: websocket, a 24-character
 * Sec-WebSocket-Key, version 13: else HTTP 400). A valid handshake that may not
 * open (missing or wrong token, foreign Origin, unknown job, per-client socket
 * cap, shutdown) is answered 101 and closed at once with code 1008 and the
 * error's name as reason (browsers cannot read HTTP error bodies of failed
 * upgrades). Otherwise libmicrohttpd hands
 * the socket over (MHD_create_response_for_upgrade) and one thread per session
 * frames messages with wslay.
 *
 * Session life (a handshake whose connection dies before the upgrade stays in
 * the pending list until the server stops, when it is freed):
 *
 * Session life:
 *
 *   handshake ok ─► pending (in w->pending list) ─on_upgrade─► running thread
 *     running: send snapshot {"type":"snapshot","seq":S,...}; then replay events
 *     with seq > since (the ?since=SEQ of a reconnecting client, else S); then
 *     every 50 ms, when the queue's change counter moved, read new events from
 *     the database and send them in seq order
 *     ─► closed (client close, socket error, slow client: 1008, shutdown: 1001)
 *     ─► socket handed back (MHD_UPGRADE_ACTION_CLOSE), slot released, freed.
 *
 * Events live in the database (store/jobs.h), so a reconnecting client loses
 * nothing and a client leaving never affects the job. Incoming messages are
 * capped at 4 KB and ignored (ping/pong and close are answered by wslay).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libavutil/base64.h>
#include <libavutil/mem.h>
#include <libavutil/sha.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "core/fs.h"
#include "core/alloc.h"
#include "core/log.h"
#include "web/server_int.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_MAX_EXTRA 4096
#define WS_MAX_QUEUED 2000
#define WS_BATCH 500

typedef struct ws_session {
    m2p_web *w;
    int64_t job_id; /* 0: the queue stream */
    int64_t since;  /* -1: none given */
    char client[64];
    MHD_socket sock;
    struct MHD_UpgradeResponseHandle *urh;
    unsigned char extra[WS_MAX_EXTRA];
    size_t extra_len, extra_off;
    wslay_event_context_ptr ctx;
    bool failed;
    struct ws_session *next; /* in w->ws_pending until upgraded (guarded by w->ws_mu) */
} ws_session;

/* Removes s from the pending list; false when it was not there. Call with ws_mu held. */
static bool unlink_pending(m2p_web *w, ws_session *s) {
    for (ws_session **pp = &w->ws_pending; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            s->next = NULL;
            return true;
        }
    }
    return false;
}

/* ---- wslay callbacks ----------------------------------------------------------------------- */

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user) {
    ws_session *s = user;
    if (s->extra_off < s->extra_len) {
        size_t n = s->extra_len - s->extra_off;
        if (n > len) {
            n = len;
        }
        memcpy(buf, s->extra + s->extra_off, n);
        s->extra_off += n;
        return (ssize_t)n;
    }
    ssize_t r;
    do {
        r = recv(s->sock, buf, len, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        wslay_event_set_error(ctx, errno == EAGAIN || errno == EWOULDBLOCK ? WSLAY_ERR_WOULDBLOCK
                                                                            : WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    if (r == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return r;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user) {
    ws_session *s = user;
    ssize_t r;
    do {
        r = send(s->sock, data, len, MSG_NOSIGNAL);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        wslay_event_set_error(ctx, errno == EAGAIN || errno == EWOULDBLOCK ? WSLAY_ERR_WOULDBLOCK
                                                                            : WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return r;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user) {
    (void)ctx;
    (void)arg;
    (void)user; /* clients have nothing to say; control frames are handled by wslay */
}

/* ---- sending ------------------------------------------------------------------------------- */

static void queue_json(ws_session *s, json_t *j) {
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    if (text == NULL) {
        s->failed = true;
        return;
    }
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)text, strlen(text)};
    if (wslay_event_queue_msg(s->ctx, &m) != 0) {
        s->failed = true;
    }
    free(text);
}

static void send_snapshot(ws_session *s, int64_t *last) {
    m2p_store *st = NULL;
    m2p_error err;
    m2p_error_clear(&err);
    if (web_store_get(s->w, &st, &err) != M2P_OK) {
        s->failed = true;
        return;
    }
    int64_t seq = 0;
    json_t *msg = NULL;
    if (s->job_id > 0) {
        json_t *job = NULL;
        if (m2p_store_job_seq(st, s->job_id, &seq, &err) == M2P_OK &&
            m2p_store_job_get(st, s->job_id, &job, &err) == M2P_OK) {
            m2p_queue_job_public(job); /* the preview's URL, not its bytes */
            msg = json_pack("{s:s, s:I, s:o}", "type", "snapshot", "seq", (json_int_t)seq, "job", job);
        }
    } else {
        json_t *counts = NULL;
        char v[8];
        bool paused = false;
        if (m2p_store_queue_seq(st, &seq, &err) == M2P_OK && m2p_store_job_counts(st, &counts, &err) == M2P_OK &&
            m2p_store_setting_get(st, "queue_paused", v, sizeof v, &paused, &err) == M2P_OK) {
            msg = json_pack("{s:s, s:I, s:o, s:b}", "type", "snapshot", "seq", (json_int_t)seq, "counts", counts,
                            "paused", paused);
        } else {
            json_decref(counts);
        }
    }
    web_store_put(s->w, st);
    if (msg == NULL) {
        s->failed = true;
        return;
    }
    queue_json(s, msg);
    json_decref(msg);
    *last = s->since >= 0 && s->since <= seq ? s->since : seq;
}

/* Sends every event after *last (in order), advancing *last. */
static void send_events(ws_session *s, int64_t *last) {
    for (int round = 0; round < 20 && !s->failed; round++) {
        m2p_store *st = NULL;
        m2p_error err;
        m2p_error_clear(&err);
        if (web_store_get(s->w, &st, &err) != M2P_OK) {
            return; /* try again at the next tick */
        }
        json_t *events = NULL;
        m2p_code c = s->job_id > 0 ? m2p_store_job_events(st, s->job_id, *last, WS_BATCH, &events, &err)
                                   : m2p_store_queue_events(st, *last, WS_BATCH, &events, &err);
        web_store_put(s->w, st);
        if (c != M2P_OK) {
            return;
        }
        size_t i;
        json_t *ev;
        json_array_foreach(events, i, ev) {
            const char *k = s->job_id > 0 ? "seq" : "queue_seq";
            int64_t seq = (int64_t)json_integer_value(json_object_get(ev, k));
            if (s->job_id == 0) {
                /* On the queue stream the sequence clients resume from is the queue's. */
                (void)json_object_set_new(ev, "job_seq", json_integer(json_integer_value(json_object_get(ev, "seq"))));
                (void)json_object_set_new(ev, "seq", json_integer(seq));
            }
            queue_json(s, ev);
            if (seq > *last) {
                *last = seq;
            }
        }
        size_t n = json_array_size(events);
        json_decref(events);
        if (n < WS_BATCH) {
            return;
        }
    }
}

/* ---- the session thread ---------------------------------------------------------------------- */

static void session_end(ws_session *s) {
    m2p_web *w = s->w;
    if (s->ctx != NULL) {
        wslay_event_context_free(s->ctx);
    }
    (void)MHD_upgrade_action(s->urh, MHD_UPGRADE_ACTION_CLOSE);
    web_ws_release(w, s->client);
    m2p_free(s);
    (void)pthread_mutex_lock(&w->ws_mu);
    w->ws_open--;
    (void)pthread_cond_broadcast(&w->ws_cv);
    (void)pthread_mutex_unlock(&w->ws_mu);
}

static void *session_main(void *arg) {
    ws_session *s = arg;
    m2p_web *w = s->w;
    int fl = fcntl(s->sock, F_GETFL, 0);
    if (fl >= 0) {
        (void)fcntl(s->sock, F_SETFL, fl | O_NONBLOCK);
    }
    struct wslay_event_callbacks cbs = {on_recv, on_send, NULL, NULL, NULL, NULL, on_msg};
    if (wslay_event_context_server_init(&s->ctx, &cbs, s) != 0) {
        s->ctx = NULL;
        session_end(s);
        return NULL;
    }
    wslay_event_config_set_max_recv_msg_length(s->ctx, 4096);
    int64_t last = 0;
    send_snapshot(s, &last);
    send_events(s, &last);
    uint64_t seen = m2p_queue_version(w->queue);
    /* Shared database: events are written by workers in other processes, so
     * the log is also polled (every 200 ms), not only on local changes. */
    bool poll_db = m2p_queue_is_shared(w->queue);
    double last_poll = m2p_now_monotonic();
    bool closing = false;
    while (!s->failed) {
        if (atomic_load(&w->stopping) && !closing) {
            static const char k_reason[] = "server shutting down";
            (void)wslay_event_queue_close(s->ctx, 1001, (const uint8_t *)k_reason, sizeof k_reason - 1);
            closing = true;
        }
        if (!closing && wslay_event_get_queued_msg_count(s->ctx) > WS_MAX_QUEUED) {
            static const char k_slow[] = "client too slow";
            (void)wslay_event_queue_close(s->ctx, 1008, (const uint8_t *)k_slow, sizeof k_slow - 1);
            closing = true;
        }
        struct pollfd pfd = {s->sock, POLLIN, 0};
        if (wslay_event_want_write(s->ctx)) {
            pfd.events |= POLLOUT;
        }
        int pr = s->extra_off < s->extra_len ? 1 : poll(&pfd, 1, 50);
        if (pr < 0 && errno != EINTR) {
            break;
        }
        if ((pr > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR))) || s->extra_off < s->extra_len) {
            if (wslay_event_recv(s->ctx) != 0) {
                break;
            }
        }
        uint64_t v = m2p_queue_version(w->queue);
        double now = m2p_now_monotonic();
        if ((v != seen || (poll_db && now - last_poll >= 0.2)) && !closing) {
            seen = v;
            last_poll = now;
            send_events(s, &last);
        }
        if (wslay_event_want_write(s->ctx) && wslay_event_send(s->ctx) != 0) {
            break;
        }
        if (!wslay_event_want_read(s->ctx) && !wslay_event_want_write(s->ctx)) {
            break; /* closed both ways */
        }
        if (closing && wslay_event_get_close_sent(s->ctx) && !wslay_event_want_write(s->ctx)) {
            break;
        }
    }
    session_end(s);
    return NULL;
}

static void on_upgrade(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra_in,
                       size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh) {
    ws_session *s = cls;
    m2p_web *w = s->w;
    s->sock = sock;
    s->urh = urh;
    if (extra_in_size > 0 && extra_in_size <= sizeof s->extra) {
        memcpy(s->extra, extra_in, extra_in_size);
        s->extra_len = extra_in_size;
    }
    (void)pthread_mutex_lock(&w->ws_mu);
    (void)unlink_pending(w, s);
    bool stopping = atomic_load(&w->stopping);
    if (!stopping) {
        w->ws_open++;
    }
    (void)pthread_mutex_unlock(&w->ws_mu);
    if (stopping) {
        (void)MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        web_ws_release(w, s->client);
        m2p_free(s);
        return;
    }
    atomic_fetch_add(&w->ws_total, 1);
    pthread_t t;
    pthread_attr_t attr;
    (void)pthread_attr_init(&attr);
    (void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, session_main, s) != 0) {
        session_end(s);
    }
    (void)pthread_attr_destroy(&attr);
}

/* ---- refusals: a valid handshake that may not open gets 101, then close 1008 ------------------ */

/* cls is the error's stable name (static storage). Sends one close frame with
 * code 1008 and the name as reason, then hands the socket back. */
static void on_refuse(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra_in,
                      size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh) {
    const char *reason = cls;
    size_t n = strlen(reason);
    if (n > 100) {
        n = 100;
    }
    unsigned char frame[2 + 2 + 100];
    frame[0] = 0x88; /* FIN + close */
    frame[1] = (unsigned char)(2 + n);
    frame[2] = (unsigned char)(1008 >> 8);
    frame[3] = (unsigned char)(1008 & 0xff);
    memcpy(frame + 4, reason, n);
    size_t len = 4 + n;
    size_t off = 0;
    while (off < len) {
        ssize_t k = send(sock, frame + off, len - off, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            break;
        }
        off += (size_t)k;
    }
    (void)MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

static m2p_code refuse(web_ctx *c, const char *accept, m2p_code code, m2p_error *err) {
    struct MHD_Response *r = MHD_create_response_for_upgrade(on_refuse, (void *)m2p_errname(code));
    if (r == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "upgrade");
    }
    (void)MHD_add_response_header(r, "Upgrade", "websocket");
    (void)MHD_add_response_header(r, "Sec-WebSocket-Accept", accept);
    enum MHD_Result q = MHD_queue_response(c->conn, MHD_HTTP_SWITCHING_PROTOCOLS, r);
    MHD_destroy_response(r);
    if (q != MHD_YES) {
        return m2p_error_set(err, code, "refused");
    }
    c->resp = NULL;
    return M2P_OK;
}

/* ---- handshake ------------------------------------------------------------------------------- */

static bool header_has_token(const char *value, const char *token) {
    if (value == NULL) {
        return false;
    }
    size_t n = strlen(token);
    for (const char *p = value; *p != '\0'; p++) {
        if (strncasecmp(p, token, n) == 0) {
            return true;
        }
    }
    return false;
}

static bool accept_key(const char *key, char out[64]) {
    struct AVSHA *sha = av_sha_alloc();
    if (sha == NULL) {
        return false;
    }
    uint8_t digest[20];
    (void)av_sha_init(sha, 160);
    av_sha_update(sha, (const uint8_t *)key, strlen(key));
    av_sha_update(sha, (const uint8_t *)WS_GUID, strlen(WS_GUID));
    av_sha_final(sha, digest);
    av_free(sha);
    return av_base64_encode(out, 64, digest, (int)sizeof digest) != NULL;
}

m2p_code web_ws_upgrade(web_ctx *c, m2p_error *err) {
    m2p_web *w = c->w;
    int64_t job_id = 0;
    if (c->nseg == 3 && strcmp(c->segs[1], "jobs") == 0) {
        if (!m2p_web_parse_id(c->segs[2], &job_id)) {
            return m2p_error_set(err, M2P_E_JOB_NOT_FOUND, "'%.40s' is not a job id", c->segs[2]);
        }
    } else if (!(c->nseg == 2 && strcmp(c->segs[1], "queue") == 0)) {
        return m2p_error_set(err, M2P_E_NOT_FOUND, "no such live stream");
    }
    if (strcmp(c->req->method, "GET") != 0) {
        return m2p_error_set(err, M2P_E_METHOD_NOT_ALLOWED, "WebSockets open with GET");
    }
    const char *upgrade = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Upgrade");
    const char *key = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Sec-WebSocket-Key");
    const char *version = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Sec-WebSocket-Version");
    if (!header_has_token(upgrade, "websocket") || key == NULL || strlen(key) != 24 || version == NULL ||
        strcmp(version, "13") != 0) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "not a WebSocket (version 13) handshake");
    }
    char acc[64];
    if (!accept_key(key, acc)) {
        return m2p_error_set(err, M2P_E_NOMEM, "handshake");
    }
    /* From here the handshake is valid: refusals are a close frame 1008 whose
     * reason is the error's name (browsers cannot read an HTTP error body). */
    bool from_query = false;
    m2p_error e2;
    m2p_error_clear(&e2);
    m2p_code auth = web_check_auth(w, c->conn, &from_query, &e2);
    if (auth != M2P_OK) {
        return refuse(c, acc, auth, err);
    }
    const char *origin = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Origin");
    const char *host = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Host");
    if (!m2p_web_origin_allowed(origin, host)) {
        return refuse(c, acc, M2P_E_ORIGIN_FORBIDDEN, err);
    }
    long since = -1;
    const char *sv = web_query(c, "since");
    if (sv != NULL && !m2p_web_parse_int(sv, 0, 1000000000000L, &since)) {
        return refuse(c, acc, M2P_E_FIELD_INVALID, err);
    }
    if (atomic_load(&w->stopping)) {
        return refuse(c, acc, M2P_E_QUEUE_FULL, err);
    }
    if (job_id > 0) {
        m2p_store *st = NULL;
        int64_t seq = 0;
        m2p_code code = web_store_get(w, &st, err);
        if (code == M2P_OK) {
            code = m2p_store_job_seq(st, job_id, &seq, err);
        }
        web_store_put(w, st);
        if (code == M2P_E_JOB_NOT_FOUND) {
            return refuse(c, acc, code, err);
        }
        if (code != M2P_OK) {
            return code;
        }
    }
    if (!web_ws_acquire(w, c->req->client)) {
        return refuse(c, acc, M2P_E_TOO_MANY_SOCKETS, err);
    }
    ws_session *s = m2p_calloc(1, sizeof *s);
    if (s == NULL) {
        web_ws_release(w, c->req->client);
        return m2p_error_set(err, M2P_E_NOMEM, "session");
    }
    s->w = w;
    s->job_id = job_id;
    s->since = since;
    (void)snprintf(s->client, sizeof s->client, "%s", c->req->client);
    struct MHD_Response *r = MHD_create_response_for_upgrade(on_upgrade, s);
    if (r != NULL) {
        (void)pthread_mutex_lock(&w->ws_mu);
        s->next = w->ws_pending;
        w->ws_pending = s;
        (void)pthread_mutex_unlock(&w->ws_mu);
    }
    if (r == NULL) {
        m2p_free(s);
        web_ws_release(w, c->req->client);
        return m2p_error_set(err, M2P_E_NOMEM, "upgrade");
    }
    (void)MHD_add_response_header(r, "Upgrade", "websocket");
    (void)MHD_add_response_header(r, "Sec-WebSocket-Accept", acc);
    if (MHD_queue_response(c->conn, MHD_HTTP_SWITCHING_PROTOCOLS, r) != MHD_YES) {
        MHD_destroy_response(r);
        (void)pthread_mutex_lock(&w->ws_mu);
        (void)unlink_pending(w, s);
        (void)pthread_mutex_unlock(&w->ws_mu);
        m2p_free(s);
        web_ws_release(w, c->req->client);
        return m2p_error_set(err, M2P_E_INTERNAL, "could not switch protocols");
    }
    MHD_destroy_response(r);
    c->resp = NULL; /* queued here */
    return M2P_OK;
}

void web_ws_shutdown(m2p_web *w) {
    atomic_store(&w->stopping, true);
    (void)pthread_mutex_lock(&w->ws_mu);
    /* Sessions see the flag within one 50 ms poll and close; the server must
     * not be freed under a running session, so wait for every one of them. */
    for (int i = 0; w->ws_open > 0; i++) {
        if (i == 200) {
            M2P_WARN("web", "waiting for %d live connections to close", w->ws_open);
        }
        struct timespec ts;
        (void)clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        (void)pthread_cond_timedwait(&w->ws_cv, &w->ws_mu, &ts);
    }
    (void)pthread_mutex_unlock(&w->ws_mu);
}

void web_ws_free_pending(m2p_web *w) {
    (void)pthread_mutex_lock(&w->ws_mu);
    while (w->ws_pending != NULL) {
        ws_session *s = w->ws_pending;
        w->ws_pending = s->next;
        m2p_free(s);
    }
    (void)pthread_mutex_unlock(&w->ws_mu);
}
