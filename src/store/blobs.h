/*
 * store/blobs.h — the life of stored bytes beside the rows that use them:
 * uploads (table uploads, by SHA-256) and image bytes (image_data, one row
 * per image, removed with it by ON DELETE CASCADE on both engines).
 *
 * An upload is "in use" while a job refers to it: a job whose spec names it
 * (upload_sha256), or a job whose track has it as content hash (the audio a
 * worker stored for playback on other hosts). Deleting the job (the user's way
 * to free space) ends that; the track row itself stays and does not count. Unused uploads older than the
 * retention are pruned by the API process (web/server.c's pruner).
 */
#ifndef M2P_STORE_BLOBS_H
#define M2P_STORE_BLOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "store/store.h"

/* Deletes uploads rows created before `before` (Unix seconds) that no job
 * uses; *deleted (may be NULL) gets the number of rows removed. */
m2p_code m2p_store_uploads_prune(m2p_store *s, double before, int64_t *deleted, m2p_error *err) M2P_WUR;

/* The SHA-256 values some job uses, sorted (m2p_sha256_set_has looks one up). */
typedef struct m2p_sha256_set {
    char (*v)[65];
    size_t n, cap;
} m2p_sha256_set;
m2p_code m2p_store_uploads_in_use(m2p_store *s, m2p_sha256_set *out, m2p_error *err) M2P_WUR;
bool m2p_sha256_set_has(const m2p_sha256_set *set, const char *sha256);
void m2p_sha256_set_free(m2p_sha256_set *set);

/* Sets the upload's created_at to now (a new job uses it again: the retention
 * counts from its last use). No-op when the row is absent. */
m2p_code m2p_store_upload_touch(m2p_store *s, const char *sha256, m2p_error *err) M2P_WUR;

/* The upload_sha256 of a job that made track_id from an upload (*found false
 * when none): the key of the upload's bytes when it differs from the track's
 * content hash. */
m2p_code m2p_store_track_upload_sha(m2p_store *s, int64_t track_id, char sha256[65], bool *found,
                                    m2p_error *err) M2P_WUR;

/* Ids of the images of a job (at most cap; *n set), for removing their files. */
m2p_code m2p_store_job_image_ids(m2p_store *s, int64_t job_id, int64_t *ids, size_t cap, size_t *n,
                                 m2p_error *err) M2P_WUR;

#endif
