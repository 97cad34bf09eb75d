/*
 * jobs/broker.h — the Redis side of the distributed mode (queue=redis,
 * broker_url=redis://host:port[/db]): a Redis Stream of job ids with one
 * consumer group of workers, a dead-letter stream, and a pub/sub channel of
 * job events. The database stays the source of truth; Redis only delivers.
 *
 * Keys: one stream per job stage, m2p:jobs:analyze and m2p:jobs:render
 * (entries {job: id}), each with the consumer group "workers"; one
 * dead-letter stream per stage, m2p:jobs:analyze:dead and
 * m2p:jobs:render:dead ({job, reason, deliveries, entry}); channel m2p:events
 * (messages "job_id:seq" after an event was committed). A CPU worker reads
 * the analyze stream only, a GPU worker the render stream only, a worker of
 * role all both (render first, so started jobs finish first).
 *
 * Entry lifecycle:
 *   XADD (submit, or reconcile from the database)
 *     → XREADGROUP delivers it to one consumer (pending, delivery count 1)
 *     → XCLAIM ... JUSTID every heartbeat keeps its idle time low
 *     → XACK + XDEL once the job's outcome is committed
 *   a consumer that died: idle > lease → XAUTOCLAIM by another (count + 1)
 *   delivery count above the limit → XADD to the dead-letter stream, XACK.
 *
 * A handle is one connection, used by one thread at a time. Every call
 * reconnects first when the connection was lost; an unreachable Redis is
 * M2P_E_BROKER_UNAVAILABLE (the caller backs off and retries).
 */
#ifndef M2P_JOBS_BROKER_H
#define M2P_JOBS_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "store/jobs.h"

typedef struct m2p_broker m2p_broker;

#define M2P_BROKER_STREAM_ANALYZE "m2p:jobs:analyze"
#define M2P_BROKER_STREAM_RENDER "m2p:jobs:render"
#define M2P_BROKER_DEAD_ANALYZE "m2p:jobs:analyze:dead"
#define M2P_BROKER_DEAD_RENDER "m2p:jobs:render:dead"
#define M2P_BROKER_GROUP "workers"

/* The stream (and dead-letter stream) of a stage. */
const char *m2p_broker_stream(m2p_job_stage stage);
const char *m2p_broker_dead_stream(m2p_job_stage stage);
#define M2P_BROKER_CHANNEL "m2p:events"

/* One delivered entry. */
typedef struct m2p_broker_msg {
    char entry[48]; /* stream entry id, "1700000000000-0" */
    int64_t job_id;
    int64_t deliveries;
    m2p_job_stage stage; /* the stream it came from */
} m2p_broker_msg;

/* Connects to cfg->broker_url as consumer name (for XREADGROUP; may be NULL
 * for publishers); creates both stage streams and their group when missing. */
m2p_code m2p_broker_open(const m2p_config *cfg, const char *consumer, m2p_broker **out, m2p_error *err) M2P_WUR;
void m2p_broker_free(m2p_broker *b);

/* XADD job_id to the stream of stage. */
m2p_code m2p_broker_enqueue(m2p_broker *b, m2p_job_stage stage, int64_t job_id, m2p_error *err) M2P_WUR;
/* Takes one entry from the streams of the stages in the mask (M2P_STAGES_*):
 * first one idle for longer than idle_ms from a dead consumer (XAUTOCLAIM),
 * else a new one (XREADGROUP, blocking up to block_ms; with both stages the
 * render stream is read first without blocking). M2P_E_NOT_FOUND when none. */
m2p_code m2p_broker_take(m2p_broker *b, unsigned stages, int block_ms, int64_t idle_ms, m2p_broker_msg *out,
                         m2p_error *err) M2P_WUR;
/* Heartbeat: resets the entry's idle time (XCLAIM ... JUSTID, keeping consumer
 * as its owner; b may be another connection, e.g. a heartbeat thread's). */
m2p_code m2p_broker_touch(m2p_broker *b, const char *consumer, m2p_job_stage stage, const char *entry,
                          m2p_error *err) M2P_WUR;
/* The consumer name given to m2p_broker_open. */
const char *m2p_broker_consumer(const m2p_broker *b);
/* XACK + XDEL on the stream of stage: the job's outcome is committed. */
m2p_code m2p_broker_ack(m2p_broker *b, m2p_job_stage stage, const char *entry, m2p_error *err) M2P_WUR;
/* Moves the entry to its stage's dead-letter stream and acks it. */
m2p_code m2p_broker_dead_letter(m2p_broker *b, const m2p_broker_msg *m, const char *reason, m2p_error *err) M2P_WUR;
/* Job ids of every entry in the stream of stage (at most cap): for reconciling. */
m2p_code m2p_broker_list(m2p_broker *b, m2p_job_stage stage, int64_t *ids, size_t cap, size_t *n,
                         m2p_error *err) M2P_WUR;
/* PUBLISH "job_id seq" on the events channel. */
m2p_code m2p_broker_publish(m2p_broker *b, int64_t job_id, int64_t seq, m2p_error *err) M2P_WUR;
/* Subscribes this connection to the events channel, then waits up to
 * timeout_ms for one message: M2P_OK (a message came), M2P_E_NOT_FOUND
 * (timeout). After the first call the handle is only for waiting. */
m2p_code m2p_broker_wait_event(m2p_broker *b, int timeout_ms, m2p_error *err) M2P_WUR;
/* Rate limit: INCRBY key by, EXPIRE it after window_s on the first hit; *count gets the new value. */
m2p_code m2p_broker_incr(m2p_broker *b, const char *key, int by, int window_s, int64_t *count,
                         m2p_error *err) M2P_WUR;

#endif
