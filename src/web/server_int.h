/*
 * web/server_int.h — internals shared by the files of the web module
 * (server.c: daemon, requests, bodies, auth, limits; routes.c: API handlers;
 * ws.c: WebSocket sessions; zip.c: ZIP export). Not for other modules.
 */
#ifndef M2P_WEB_SERVER_INT_H
#define M2P_WEB_SERVER_INT_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "jobs/queue.h"
#include "pipeline/pipeline.h"
#include "prompt/presets.h"
#include "store/jobs.h"
#include "web/parse.h"
#include "web/web.h"

#define WEB_STORE_POOL 8
#define WEB_MAX_CLIENTS 1024
#define WEB_MAX_FIELDS 32
#define WEB_MAX_FIELD_BYTES 4096
#define WEB_MAX_SEGS 8

/* Per-client counters: job creations in the current minute, open WebSockets. */
typedef struct web_client {
    char addr[64];
    double window_start;
    int created;
    int ws_open;
    double last_seen;
} web_client;

struct m2p_web {
    m2p_config cfg;
    m2p_queue *queue;
    m2p_pipeline *pipeline;
    m2p_presets *presets;
    struct MHD_Daemon *daemon;
    int port;
    /* store handle pool (handles are per thread; requests borrow one) */
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    m2p_store *pool[WEB_STORE_POOL];
    bool pool_busy[WEB_STORE_POOL];
    /* clients (rate limits, socket caps) */
    pthread_mutex_t clients_mu;
    web_client clients[WEB_MAX_CLIENTS];
    struct m2p_broker *rate_broker; /* queue=redis: job-creation limits counted in Redis (under clients_mu) */
    /* WebSocket sessions */
    pthread_mutex_t ws_mu;
    pthread_cond_t ws_cv;
    int ws_open;
    struct ws_session *ws_pending; /* handshakes answered but not upgraded yet (ws.c's list) */
    atomic_bool stopping;
    /* pruner (storage.c) */
    pthread_t prune_thread;
    pthread_mutex_t prune_mu;
    pthread_cond_t prune_cv;
    bool prune_inited, prune_running, prune_stop;
    /* metrics */
    atomic_uint_fast64_t requests, responses_4xx, responses_5xx, uploads, upload_bytes, dedup_hits, ws_total;
    atomic_uint_fast64_t uploads_refused, pruned_rows, pruned_files;
    double started_at;
};

/* One uploaded file, streamed to a temporary file while it arrives. */
typedef struct web_upload {
    char tmp_path[M2P_PATH_MAX];
    char final_path[M2P_PATH_MAX];
    char name[256]; /* the client's file name, for titles only */
    char sha256[65];
    int fd;
    uint64_t size;
} web_upload;

/* State of one HTTP request across libmicrohttpd's calls. */
typedef struct web_req {
    m2p_web *w;
    char method[8];
    char client[64];
    bool is_json, is_multipart;
    bool token_in_query; /* the token came as ?token= (the page then sets the cookie) */
    /* JSON body */
    char *body;
    size_t body_len, body_cap;
    /* multipart */
    struct MHD_PostProcessor *pp;
    web_upload *uploads;
    size_t n_uploads, uploads_cap;
    json_t *fields;
    size_t n_fields;
    /* first error met while reading the body (answered at the end) */
    m2p_code body_code;
    m2p_error body_err;
    bool responded;
} web_req;

/* What a handler hands back: a response and its status. */
typedef struct web_ctx {
    m2p_web *w;
    struct MHD_Connection *conn;
    web_req *req;
    const char *url;
    const char *segs[WEB_MAX_SEGS];
    int nseg;
    m2p_store *store; /* borrowed for the handler's duration */
    struct MHD_Response *resp;
    unsigned status;
} web_ctx;

/* ---- server.c ---- */
m2p_code web_store_get(m2p_web *w, m2p_store **out, m2p_error *err) M2P_WUR;
void web_store_put(m2p_web *w, m2p_store *s);
/* JSON response (takes the reference to j). */
void web_json(web_ctx *c, unsigned status, json_t *j);
struct MHD_Response *web_error_response(m2p_code code, const char *detail, unsigned *status);
void web_add_common_headers(struct MHD_Response *r);
const char *web_query(web_ctx *c, const char *key);
/* Checks the API token (header, cookie or ?token=) when the server has one. */
m2p_code web_check_auth(m2p_web *w, struct MHD_Connection *conn, bool *from_query, m2p_error *err) M2P_WUR;
/* Counts one job creation for the client; false (and *retry_after) when over the limit. */
bool web_rate_allow(m2p_web *w, const char *client, int n, int *retry_after);
/* Takes a WebSocket slot for client; false when the client has too many. */
bool web_ws_acquire(m2p_web *w, const char *client);
void web_ws_release(m2p_web *w, const char *client);

/* ---- routes.c ---- */
/* Dispatches an API request (/api/..., /healthz, /metrics, /openapi.json); M2P_E_NOT_FOUND when no route. */
m2p_code web_route(web_ctx *c, m2p_error *err) M2P_WUR;

/* ---- ws.c ---- */
/* Handles GET /ws/jobs/{id} and /ws/queue (validation, upgrade). */
m2p_code web_ws_upgrade(web_ctx *c, m2p_error *err) M2P_WUR;
/* Asks every session to close and waits for them. */
void web_ws_shutdown(m2p_web *w);
/* Frees handshakes whose upgrade never happened (after the daemon stopped). */
void web_ws_free_pending(m2p_web *w);

/* ---- storage.c ---- */
/* <data_dir>/image-cache/<id>.png<suffix>. */
m2p_code web_image_cache_path(const m2p_web *w, int64_t id, const char *suffix, char *buf, size_t cap,
                              m2p_error *err) M2P_WUR;
/* The file to serve for image id: path when it is on this host (or the store is
 * not shared), else the cache copy, written from image_data when missing. *out
 * points to path or buf. */
m2p_code web_image_local(m2p_web *w, m2p_store *s, int64_t id, const char *path, char *buf, size_t cap,
                         const char **out, m2p_error *err) M2P_WUR;
/* The same for a track's audio (uploads table by content hash, then by the
 * upload's SHA-256); M2P_E_AUDIO_NOT_STORED when neither exists. */
m2p_code web_track_local(m2p_web *w, m2p_store *s, int64_t track_id, const m2p_track *t, char *buf, size_t cap,
                         const char **out, m2p_error *err) M2P_WUR;
/* Marks a cache file as used now (access time; the modification time, part of ETags, is kept). */
void web_cache_touch(const char *path);
/* Decodes up to ~1 s of the file: M2P_E_UPLOAD_NOT_AUDIO when it is not audio
 * (label names it in the detail), a decoder code for audio that cannot be
 * used (too long, truncated), M2P_OK otherwise. */
m2p_code web_probe_upload(const m2p_web *w, const char *path, const char *label, m2p_error *err) M2P_WUR;

typedef struct web_prune_stats {
    uint64_t upload_rows, files_removed, bytes_removed, cache_bytes;
} web_prune_stats;
/* One pruning pass (store/blobs.h, storage.c's header comment). */
m2p_code web_prune_once(m2p_web *w, m2p_store *s, web_prune_stats *st, m2p_error *err) M2P_WUR;
/* The pruning thread (every prune_interval_s; none when 0). */
m2p_code web_prune_start(m2p_web *w, m2p_error *err) M2P_WUR;
void web_prune_stop(m2p_web *w);

/* ---- zip.c ---- */
/* Streams a ZIP of images (ids) with each image's metadata JSON and the jobs' analyses. */
m2p_code web_zip_response(web_ctx *c, json_t *images, m2p_error *err) M2P_WUR;

#endif
