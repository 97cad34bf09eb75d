/*
 * audio/cache.h — downloaded (and uploaded) audio, kept under
 * <data_dir>/audio/, by video id (uploads by content hash), with metadata.
 *
 * TTL (cache_ttl_days) and a total size cap (cache_max_mb) with
 * least-recently-used eviction; entries appear atomically (temp + rename) so an
 * aborted download leaves nothing; m2p_cache_lock_key serialises work on one
 * key across threads and processes (flock on <key>.lock), so concurrent
 * requests for one video download it once. Thread-safe.
 *
 * Files (see cache.c): <data_dir>/audio/<stem>.audio (the audio; its mtime is
 * when it was stored, the TTL counts from there), <stem>.json (metadata; its
 * mtime is the last use), <stem>.lock. cache_ttl_days = 0 keeps nothing.
 * put() must be called while holding the key's lock (m2p_fetch does).
 */
#ifndef M2P_AUDIO_CACHE_H
#define M2P_AUDIO_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "audio/track.h"
#include "core/config.h"
#include "core/error.h"

typedef struct m2p_cache m2p_cache;
typedef struct m2p_cache_lock m2p_cache_lock;

m2p_code m2p_cache_open(const m2p_config *cfg, m2p_cache **out, m2p_error *err) M2P_WUR;
void m2p_cache_close(m2p_cache *c);

/* Looks key up; on a fresh hit fills *track (path, metadata, cache_hit=true),
 * touches its last-use time and returns true. Expired entries are removed. */
bool m2p_cache_get(m2p_cache *c, const char *key, m2p_track *track);

/* Moves the finished file at tmp_path into the cache under key with the
 * metadata of *track (atomic rename), fills track->path and content_hash,
 * then evicts least-recently-used entries over the size cap. */
m2p_code m2p_cache_put(m2p_cache *c, const char *key, const char *tmp_path, m2p_track *track, m2p_error *err) M2P_WUR;

/* A fresh temporary path inside the cache folder (same file system as the
 * entries, so put() is a rename). */
m2p_code m2p_cache_tmp_path(m2p_cache *c, const char *key, char *buf, size_t cap, m2p_error *err) M2P_WUR;

/* Exclusive per-key lock across threads and processes; blocks. */
m2p_code m2p_cache_lock_key(m2p_cache *c, const char *key, m2p_cache_lock **out, m2p_error *err) M2P_WUR;
/* The same without waiting: M2P_E_CACHE_LOCK when someone holds it. */
m2p_code m2p_cache_try_lock_key(m2p_cache *c, const char *key, m2p_cache_lock **out, m2p_error *err) M2P_WUR;
void m2p_cache_unlock(m2p_cache_lock *l);

/* Stores uploaded bytes under their SHA-256 (the key; kind UPLOAD), taking the
 * key's lock; the same bytes uploaded twice are stored once (out->cache_hit).
 * name (may be NULL) becomes the track's source and title. */
m2p_code m2p_cache_put_upload(m2p_cache *c, const void *data, size_t len, const char *name, m2p_track *out,
                              m2p_error *err) M2P_WUR;

/* Stats for /metrics and doctor. */
typedef struct m2p_cache_stats {
    uint64_t entries, bytes, hits, misses, evictions;
} m2p_cache_stats;
void m2p_cache_get_stats(m2p_cache *c, m2p_cache_stats *out);

#endif
