/*
 * jobs/broker.c — Redis Streams, dead letters and pub/sub for the distributed
 * mode (hiredis). See broker.h for the keys and the entry lifecycle.
 *
 * hiredis formats: %s, %d, %lld only (no PRId64, no %zu: "Invalid format string").
 *
 * Connection: connect (2 s timeout), AUTH/SELECT from the URL, then commands
 * with a 5 s timeout (XREADGROUP's BLOCK is kept below it). Any I/O or
 * protocol error drops the connection; the next call reconnects.
 */
#include "jobs/broker.h"

#include <hiredis.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/alloc.h"

struct m2p_broker {
    redisContext *ctx;
    char host[256];
    int port;
    int db;
    char password[256];
    char consumer[128];
    bool subscribed;
};

static m2p_code parse_url(m2p_broker *b, const char *url, m2p_error *err) {
    const char *p = url;
    if (strncmp(p, "redis://", 8) != 0) {
        return m2p_error_set(err, M2P_E_CONFIG, "broker_url must start with redis:// (got '%.64s')", url);
    }
    p += 8;
    const char *at = strchr(p, '@');
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon != NULL ? colon + 1 : p;
        size_t n = (size_t)(at - pw);
        if (n >= sizeof b->password) {
            return m2p_error_set(err, M2P_E_CONFIG, "broker_url: password too long");
        }
        memcpy(b->password, pw, n);
        b->password[n] = '\0';
        p = at + 1;
    }
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= sizeof b->host) {
        return m2p_error_set(err, M2P_E_CONFIG, "broker_url: no host in '%.64s'", url);
    }
    memcpy(b->host, p, hl);
    b->host[hl] = '\0';
    p += hl;
    b->port = 6379;
    if (*p == ':') {
        char *end = NULL;
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || v < 1 || v > 65535) {
            return m2p_error_set(err, M2P_E_CONFIG, "broker_url: bad port in '%.64s'", url);
        }
        b->port = (int)v;
        p = end;
    }
    if (*p == '/' && p[1] != '\0') {
        char *end = NULL;
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || v < 0 || v > 1000) {
            return m2p_error_set(err, M2P_E_CONFIG, "broker_url: bad database number in '%.64s'", url);
        }
        b->db = (int)v;
    }
    return M2P_OK;
}

static void drop(m2p_broker *b) {
    if (b->ctx != NULL) {
        redisFree(b->ctx);
        b->ctx = NULL;
    }
    b->subscribed = false;
}

static m2p_code unavailable(m2p_broker *b, const char *what, m2p_error *err) {
    m2p_code c = m2p_error_set(err, M2P_E_BROKER_UNAVAILABLE, "%s (redis://%s:%d): %s", what, b->host, b->port,
                               b->ctx != NULL && b->ctx->err != 0 ? b->ctx->errstr : "connection lost");
    drop(b);
    return c;
}

/* Runs one command; NULL reply or an error reply → an error (connection dropped on I/O errors). */
static m2p_code cmd(m2p_broker *b, redisReply **out, m2p_error *err, const char *fmt, ...);

static m2p_code ensure(m2p_broker *b, m2p_error *err) {
    if (b->ctx != NULL && b->ctx->err == 0) {
        return M2P_OK;
    }
    drop(b);
    struct timeval tv = {2, 0};
    b->ctx = redisConnectWithTimeout(b->host, b->port, tv);
    if (b->ctx == NULL || b->ctx->err != 0) {
        return unavailable(b, "cannot connect to Redis", err);
    }
    struct timeval rw = {5, 0};
    (void)redisSetTimeout(b->ctx, rw);
    redisReply *r = NULL;
    m2p_code c = M2P_OK;
    if (b->password[0] != '\0') {
        c = cmd(b, &r, err, "AUTH %s", b->password);
        freeReplyObject(r);
        r = NULL;
    }
    if (c == M2P_OK && b->db != 0) {
        c = cmd(b, &r, err, "SELECT %d", b->db);
        freeReplyObject(r);
        r = NULL;
    }
    if (c == M2P_OK && b->consumer[0] != '\0') {
        /* The groups (and the streams) may exist already: BUSYGROUP is fine. */
        for (int st = 0; c == M2P_OK && st < 2; st++) {
            r = redisCommand(b->ctx, "XGROUP CREATE %s %s 0 MKSTREAM", m2p_broker_stream((m2p_job_stage)st),
                             M2P_BROKER_GROUP);
            if (r == NULL) {
                c = unavailable(b, "XGROUP CREATE", err);
            } else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0) {
                c = m2p_error_set(err, M2P_E_BROKER_PROTOCOL, "XGROUP CREATE: %s", r->str);
            }
            freeReplyObject(r);
            r = NULL;
        }
    }
    if (c != M2P_OK) {
        drop(b);
    }
    return c;
}

static m2p_code cmd(m2p_broker *b, redisReply **out, m2p_error *err, const char *fmt, ...) {
    *out = NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(b->ctx, fmt, ap);
    va_end(ap);
    if (r == NULL) {
        return unavailable(b, "Redis command failed", err);
    }
    if (r->type == REDIS_REPLY_ERROR) {
        m2p_code c;
        if (strncmp(r->str, "LOADING", 7) == 0 || strncmp(r->str, "NOGROUP", 7) == 0) {
            /* restarted Redis (still loading, or its group is gone): reconnect and recreate */
            c = m2p_error_set(err, M2P_E_BROKER_UNAVAILABLE, "Redis: %s", r->str);
            freeReplyObject(r);
            drop(b);
            return c;
        }
        c = m2p_error_set(err, M2P_E_BROKER_PROTOCOL, "Redis: %s", r->str);
        freeReplyObject(r);
        return c;
    }
    *out = r;
    return M2P_OK;
}

const char *m2p_broker_stream(m2p_job_stage stage) {
    return stage == M2P_STAGE_RENDER ? M2P_BROKER_STREAM_RENDER : M2P_BROKER_STREAM_ANALYZE;
}

const char *m2p_broker_dead_stream(m2p_job_stage stage) {
    return stage == M2P_STAGE_RENDER ? M2P_BROKER_DEAD_RENDER : M2P_BROKER_DEAD_ANALYZE;
}

const char *m2p_broker_consumer(const m2p_broker *b) {
    return b->consumer;
}

m2p_code m2p_broker_open(const m2p_config *cfg, const char *consumer, m2p_broker **out, m2p_error *err) {
    *out = NULL;
    m2p_broker *b = m2p_calloc(1, sizeof *b);
    if (b == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "broker");
    }
    m2p_code c = parse_url(b, cfg->broker_url, err);
    if (c == M2P_OK) {
        (void)snprintf(b->consumer, sizeof b->consumer, "%s", consumer != NULL ? consumer : "");
        c = ensure(b, err);
    }
    if (c != M2P_OK) {
        m2p_broker_free(b);
        return c;
    }
    *out = b;
    return M2P_OK;
}

void m2p_broker_free(m2p_broker *b) {
    if (b == NULL) {
        return;
    }
    drop(b);
    m2p_free(b);
}

m2p_code m2p_broker_enqueue(m2p_broker *b, m2p_job_stage stage, int64_t job_id, m2p_error *err) {
    m2p_code c = ensure(b, err);
    redisReply *r = NULL;
    if (c == M2P_OK) {
        c = cmd(b, &r, err, "XADD %s * job %lld", m2p_broker_stream(stage), (long long)job_id);
    }
    freeReplyObject(r);
    return c;
}

/* Reads [id, [field, value, ...]] into m; false when the shape is wrong or the entry was deleted. */
static bool read_entry(const redisReply *e, m2p_broker_msg *m) {
    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING) {
        return false;
    }
    (void)snprintf(m->entry, sizeof m->entry, "%s", e->element[0]->str);
    const redisReply *f = e->element[1];
    if (f == NULL || f->type != REDIS_REPLY_ARRAY) {
        return false; /* deleted while pending */
    }
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        if (f->element[i]->type == REDIS_REPLY_STRING && strcmp(f->element[i]->str, "job") == 0 &&
            f->element[i + 1]->type == REDIS_REPLY_STRING) {
            m->job_id = strtoll(f->element[i + 1]->str, NULL, 10);
            return m->job_id > 0;
        }
    }
    return false;
}

static m2p_code deliveries(m2p_broker *b, m2p_broker_msg *m, m2p_error *err) {
    redisReply *r = NULL;
    m2p_code c = cmd(b, &r, err, "XPENDING %s %s %s %s 1", m2p_broker_stream(m->stage), M2P_BROKER_GROUP, m->entry,
                     m->entry);
    if (c == M2P_OK && r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
        r->element[0]->elements == 4 && r->element[0]->element[3]->type == REDIS_REPLY_INTEGER) {
        m->deliveries = r->element[0]->element[3]->integer;
    }
    freeReplyObject(r);
    return c;
}

/* XAUTOCLAIM of one entry of stage idle for longer than idle_ms: M2P_OK with
 * *got when one came. */
static m2p_code autoclaim(m2p_broker *b, m2p_job_stage stage, int64_t idle_ms, m2p_broker_msg *out, bool *got,
                          m2p_error *err) {
    *got = false;
    redisReply *r = NULL;
    m2p_code c = cmd(b, &r, err, "XAUTOCLAIM %s %s %s %lld 0 COUNT 1", m2p_broker_stream(stage), M2P_BROKER_GROUP,
                     b->consumer, (long long)idle_ms);
    if (c != M2P_OK) {
        return c;
    }
    out->stage = stage;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && r->element[1]->type == REDIS_REPLY_ARRAY &&
        r->element[1]->elements >= 1) {
        *got = read_entry(r->element[1]->element[0], out);
        if (!*got && r->element[1]->element[0]->type == REDIS_REPLY_ARRAY &&
            r->element[1]->element[0]->elements >= 1) {
            /* a malformed or deleted entry: ack it so it does not come back */
            char id[48];
            (void)snprintf(id, sizeof id, "%s", out->entry);
            freeReplyObject(r);
            r = NULL;
            if (id[0] != '\0') {
                if (m2p_broker_ack(b, stage, id, NULL) != M2P_OK) {
                    /* it comes back once more and is acked then */
                }
            }
        }
    }
    freeReplyObject(r);
    if (*got) {
        c = deliveries(b, out, err);
    }
    return c;
}

/* XREADGROUP of one new entry of stage (block_ms < 0: no BLOCK). */
static m2p_code read_new(m2p_broker *b, m2p_job_stage stage, int block_ms, m2p_broker_msg *out, bool *got,
                         m2p_error *err) {
    *got = false;
    redisReply *r = NULL;
    m2p_code c = block_ms >= 0 ? cmd(b, &r, err, "XREADGROUP GROUP %s %s COUNT 1 BLOCK %d STREAMS %s >",
                                     M2P_BROKER_GROUP, b->consumer, block_ms, m2p_broker_stream(stage))
                               : cmd(b, &r, err, "XREADGROUP GROUP %s %s COUNT 1 STREAMS %s >", M2P_BROKER_GROUP,
                                     b->consumer, m2p_broker_stream(stage));
    if (c != M2P_OK) {
        return c;
    }
    out->stage = stage;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
        r->element[0]->elements == 2 && r->element[0]->element[1]->type == REDIS_REPLY_ARRAY &&
        r->element[0]->element[1]->elements >= 1) {
        *got = read_entry(r->element[0]->element[1]->element[0], out);
        out->deliveries = 1;
        if (!*got && out->entry[0] != '\0') {
            char id[48];
            (void)snprintf(id, sizeof id, "%s", out->entry);
            freeReplyObject(r);
            if (m2p_broker_ack(b, stage, id, NULL) != M2P_OK) {
                /* it comes back once more and is acked then */
            }
            return M2P_OK;
        }
    }
    freeReplyObject(r);
    return M2P_OK;
}

m2p_code m2p_broker_take(m2p_broker *b, unsigned stages, int block_ms, int64_t idle_ms, m2p_broker_msg *out,
                         m2p_error *err) {
    memset(out, 0, sizeof *out);
    m2p_code c = ensure(b, err);
    if (c != M2P_OK) {
        return c;
    }
    bool want[2] = {(stages & M2P_STAGES_ANALYZE) != 0, (stages & M2P_STAGES_RENDER) != 0};
    bool got = false;
    /* 1. an entry a dead consumer left behind (render first: started jobs finish first) */
    for (int st = 1; st >= 0 && !got; st--) {
        if (want[st]) {
            memset(out, 0, sizeof *out);
            c = autoclaim(b, (m2p_job_stage)st, idle_ms, out, &got, err);
            if (c != M2P_OK) {
                return c;
            }
        }
    }
    if (got) {
        return M2P_OK;
    }
    /* 2. a new entry; with both stages, render without blocking, then analyze blocking */
    for (int st = 1; st >= 0 && !got; st--) {
        if (want[st]) {
            memset(out, 0, sizeof *out);
            bool last = st == 0 || !want[0];
            c = read_new(b, (m2p_job_stage)st, last ? block_ms : -1, out, &got, err);
            if (c != M2P_OK) {
                return c;
            }
        }
    }
    return got ? M2P_OK : M2P_E_NOT_FOUND;
}

m2p_code m2p_broker_touch(m2p_broker *b, const char *consumer, m2p_job_stage stage, const char *entry,
                          m2p_error *err) {
    m2p_code c = ensure(b, err);
    redisReply *r = NULL;
    if (c == M2P_OK) {
        c = cmd(b, &r, err, "XCLAIM %s %s %s 0 %s JUSTID", m2p_broker_stream(stage), M2P_BROKER_GROUP, consumer,
                entry);
    }
    freeReplyObject(r);
    return c;
}

m2p_code m2p_broker_ack(m2p_broker *b, m2p_job_stage stage, const char *entry, m2p_error *err) {
    m2p_code c = ensure(b, err);
    redisReply *r = NULL;
    if (c == M2P_OK) {
        c = cmd(b, &r, err, "XACK %s %s %s", m2p_broker_stream(stage), M2P_BROKER_GROUP, entry);
        freeReplyObject(r);
        r = NULL;
    }
    if (c == M2P_OK) {
        c = cmd(b, &r, err, "XDEL %s %s", m2p_broker_stream(stage), entry);
    }
    freeReplyObject(r);
    return c;
}

m2p_code m2p_broker_dead_letter(m2p_broker *b, const m2p_broker_msg *m, const char *reason, m2p_error *err) {
    m2p_code c = ensure(b, err);
    redisReply *r = NULL;
    if (c == M2P_OK) {
        c = cmd(b, &r, err, "XADD %s * job %lld reason %s deliveries %lld entry %s", m2p_broker_dead_stream(m->stage),
                (long long)m->job_id, reason, (long long)m->deliveries, m->entry);
        freeReplyObject(r);
    }
    if (c == M2P_OK) {
        c = m2p_broker_ack(b, m->stage, m->entry, err);
    }
    return c;
}

m2p_code m2p_broker_list(m2p_broker *b, m2p_job_stage stage, int64_t *ids, size_t cap, size_t *n, m2p_error *err) {
    *n = 0;
    m2p_code c = ensure(b, err);
    redisReply *r = NULL;
    if (c == M2P_OK) {
        c = cmd(b, &r, err, "XRANGE %s - + COUNT %lld", m2p_broker_stream(stage), (long long)cap);
    }
    if (c == M2P_OK && r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements && *n < cap; i++) {
            m2p_broker_msg m;
            memset(&m, 0, sizeof m);
            if (read_entry(r->element[i], &m)) {
                ids[(*n)++] = m.job_id;
            }
        }
    }
    freeReplyObject(r);
    return c;
}

m2p_code m2p_broker_publish(m2p_broker *b, int64_t job_id, int64_t seq, m2p_error *err) {
    m2p_code c = ensure(b, err);
    redisReply *r = NULL;
    if (c == M2P_OK) {
        c = cmd(b, &r, err, "PUBLISH %s %lld:%lld", M2P_BROKER_CHANNEL, (long long)job_id, (long long)seq);
    }
    freeReplyObject(r);
    return c;
}

m2p_code m2p_broker_wait_event(m2p_broker *b, int timeout_ms, m2p_error *err) {
    m2p_code c = ensure(b, err);
    if (c != M2P_OK) {
        return c;
    }
    if (!b->subscribed) {
        redisReply *r = NULL;
        c = cmd(b, &r, err, "SUBSCRIBE %s", M2P_BROKER_CHANNEL);
        freeReplyObject(r);
        if (c != M2P_OK) {
            return c;
        }
        b->subscribed = true;
    }
    /* A reply already read? Else wait on the socket, so a timeout keeps the subscription. */
    void *reply = NULL;
    if (redisGetReplyFromReader(b->ctx, &reply) != REDIS_OK) {
        return unavailable(b, "Redis subscription", err);
    }
    if (reply == NULL) {
        struct pollfd pfd = {b->ctx->fd, POLLIN, 0};
        int pr = poll(&pfd, 1, timeout_ms);
        if (pr == 0 || (pr < 0 && errno == EINTR)) {
            return M2P_E_NOT_FOUND;
        }
        if (pr < 0 || redisBufferRead(b->ctx) != REDIS_OK || redisGetReplyFromReader(b->ctx, &reply) != REDIS_OK) {
            return unavailable(b, "Redis subscription", err);
        }
        if (reply == NULL) {
            return M2P_E_NOT_FOUND; /* part of a message */
        }
    }
    freeReplyObject(reply);
    return M2P_OK;
}

m2p_code m2p_broker_incr(m2p_broker *b, const char *key, int by, int window_s, int64_t *count, m2p_error *err) {
    *count = 0;
    m2p_code c = ensure(b, err);
    redisReply *r = NULL;
    if (c == M2P_OK) {
        c = cmd(b, &r, err, "INCRBY %s %d", key, by);
    }
    if (c == M2P_OK) {
        *count = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        freeReplyObject(r);
        r = NULL;
        if (*count == by) {
            c = cmd(b, &r, err, "EXPIRE %s %d", key, window_s);
        }
    }
    freeReplyObject(r);
    return c;
}
