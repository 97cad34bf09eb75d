/*
 * store/store.h — everything Mus2Pic keeps, behind one interface.
 *
 * SQLite (WAL) is the embedded default: <data_dir>/mus2pic.db, or the path in
 * database_url. Numbered SQL migrations (store/migrations.c) are applied at
 * open, each in one transaction; the schema version is PRAGMA user_version.
 * PostgreSQL (database_url = postgresql://... or postgres://...) is the
 * shared backend of the distributed mode (several API instances and workers
 * on several hosts), behind the same functions (store/db.h, store_pg.c).
 *
 * A store handle is used by one thread at a time; threads open their own
 * (SQLite's WAL lets readers and one writer proceed together; writers wait
 * on busy_timeout).
 */
#ifndef M2P_STORE_STORE_H
#define M2P_STORE_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "audio/track.h"
#include "core/config.h"
#include "core/error.h"

typedef struct m2p_store m2p_store;

m2p_code m2p_store_open(const m2p_config *cfg, m2p_store **out, m2p_error *err) M2P_WUR;
void m2p_store_close(m2p_store *s);

/* True when url names a PostgreSQL database (postgresql:// or postgres://). */
bool m2p_store_url_is_postgres(const char *url);
/* True when the store is shared by processes on several hosts (PostgreSQL). */
bool m2p_store_is_shared(const m2p_store *s);

/* Schema version after migrations (number of the last applied migration). */
int m2p_store_schema_version(m2p_store *s);

/* Inserts or updates the track with this content_hash (source, video id,
 * title, uploader, duration, cached file); *id_out gets its row id. */
m2p_code m2p_store_track_put(m2p_store *s, const m2p_track *t, int64_t *id_out, m2p_error *err) M2P_WUR;
/* Reads a track by row id; M2P_E_NOT_FOUND when absent. */
m2p_code m2p_store_track_get(m2p_store *s, int64_t id, m2p_track *out, m2p_error *err) M2P_WUR;
/* Finds the track last stored for a remote id ("dQw4w9WgXcQ"); M2P_E_NOT_FOUND when absent. */
m2p_code m2p_store_track_find_video(m2p_store *s, const char *video_id, m2p_track *out, int64_t *id_out,
                                    m2p_error *err) M2P_WUR;

/* The features JSON stored for (content_hash, analyzer_version): *json_out
 * is a new string (m2p_free) or NULL on a miss (returns M2P_OK either way). */
m2p_code m2p_store_analysis_get(m2p_store *s, const char *content_hash, const char *analyzer_version,
                                char **json_out, m2p_error *err) M2P_WUR;
m2p_code m2p_store_analysis_put(m2p_store *s, const char *content_hash, const char *analyzer_version,
                                const char *json, m2p_error *err) M2P_WUR;

#endif
