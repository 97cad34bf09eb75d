/*
 * web/web.h — the HTTP + WebSocket server of `mus2pic serve`.
 *
 * libmicrohttpd serves HTTP with one thread per connection (handlers may wait
 * on the database without stalling other clients); WebSocket connections are
 * taken over through its upgrade API and framed with wslay, one thread each.
 * Routes, limits and the error format are documented in docs/api.md and the
 * OpenAPI document served at /openapi.json.
 */
#ifndef M2P_WEB_WEB_H
#define M2P_WEB_WEB_H

#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "jobs/queue.h"
#include "pipeline/pipeline.h"

typedef struct m2p_web m2p_web;

/* Binds cfg->host:cfg->port (port 0: any free port) and starts serving.
 * queue and pipeline are not owned and must outlive the server. A host other
 * than loopback without cfg->api_token → M2P_E_CONFIG (refuses to start). */
m2p_code m2p_web_start(const m2p_config *cfg, m2p_queue *queue, m2p_pipeline *pipeline, m2p_web **out,
                       m2p_error *err) M2P_WUR;
/* The port actually bound. */
int m2p_web_port(const m2p_web *w);
/* Stops accepting, closes live sockets, waits for handlers; w may be NULL. */
void m2p_web_stop(m2p_web *w);

#endif
