/*
 * store/blobs.c — pruning and lookups of stored bytes (store/blobs.h).
 *
 * One SQL text for both engines (store/db.h's subset; instr() is defined on
 * PostgreSQL by migration 1), except where a field of the JSON spec is read
 * (json_extract vs ->>). Times are Unix seconds bound as doubles.
 */
#include "store/blobs.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/fs.h"
#include "store/db.h"

/* The SHA-256 values in use: the upload_sha256 of every job's spec, and the
 * content hash of every track a job made. One scan of jobs (an anti-join for
 * pruning), whatever the number of uploads. The spec is JSON text; reading a
 * field of it is the one place where the two engines need their own SQL. */
#define IN_USE_SQLITE                                                                                \
    "SELECT json_extract(spec, '$.upload_sha256') FROM jobs"                                         \
    " WHERE json_extract(spec, '$.upload_sha256') IS NOT NULL"                                       \
    " UNION SELECT tracks.content_hash FROM tracks JOIN jobs ON jobs.track_id = tracks.id"
#define IN_USE_PG                                                                                    \
    "SELECT CAST(spec AS jsonb) ->> 'upload_sha256' FROM jobs"                                       \
    " WHERE CAST(spec AS jsonb) ->> 'upload_sha256' IS NOT NULL"                                     \
    " UNION SELECT tracks.content_hash FROM tracks JOIN jobs ON jobs.track_id = tracks.id"

m2p_code m2p_store_uploads_prune(m2p_store *s, double before, int64_t *deleted, m2p_error *err) {
    if (deleted != NULL) {
        *deleted = 0;
    }
    m2p_db_stmt *st = NULL;
    m2p_code c = m2p_db_prepare(s,
                                m2p_store_is_shared(s)
                                    ? "DELETE FROM uploads WHERE created_at < ?1 AND sha256 NOT IN (" IN_USE_PG ")"
                                    : "DELETE FROM uploads WHERE created_at < ?1 AND sha256 NOT IN (" IN_USE_SQLITE ")",
                                &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_double(st, 1, before);
    int rc = m2p_db_step(st);
    m2p_db_finalize(st);
    if (rc != M2P_DB_DONE && rc != M2P_DB_ROW) {
        return m2p_store_db_error(s, rc, "prune uploads", err);
    }
    if (deleted != NULL) {
        *deleted = m2p_db_changes(s);
    }
    return M2P_OK;
}

static int cmp_sha(const void *a, const void *b) {
    return memcmp(a, b, 65);
}

m2p_code m2p_store_uploads_in_use(m2p_store *s, m2p_sha256_set *out, m2p_error *err) {
    memset(out, 0, sizeof *out);
    m2p_db_stmt *st = NULL;
    m2p_code c = m2p_db_prepare(s, m2p_store_is_shared(s) ? IN_USE_PG : IN_USE_SQLITE, &st, err);
    if (c != M2P_OK) {
        return c;
    }
    int rc;
    while ((rc = m2p_db_step(st)) == M2P_DB_ROW) {
        const char *v = (const char *)m2p_db_column_text(st, 0);
        if (v == NULL || strlen(v) != 64) {
            continue;
        }
        if (out->n == out->cap) {
            size_t cap = out->cap == 0 ? 64 : out->cap * 2;
            char(*nv)[65] = m2p_realloc(out->v, cap * sizeof *nv);
            if (nv == NULL) {
                c = m2p_error_set(err, M2P_E_NOMEM, "uploads in use");
                break;
            }
            out->v = nv;
            out->cap = cap;
        }
        memcpy(out->v[out->n++], v, 65);
    }
    if (c == M2P_OK && rc != M2P_DB_DONE) {
        c = m2p_store_db_error(s, rc, "uploads in use", err);
    }
    m2p_db_finalize(st);
    if (c != M2P_OK) {
        m2p_sha256_set_free(out);
        return c;
    }
    if (out->n > 1) {
        qsort(out->v, out->n, sizeof *out->v, cmp_sha);
    }
    return M2P_OK;
}

bool m2p_sha256_set_has(const m2p_sha256_set *set, const char *sha256) {
    char key[65];
    if (set->n == 0 || strlen(sha256) != 64) {
        return false;
    }
    memcpy(key, sha256, 65);
    return bsearch(key, set->v, set->n, sizeof *set->v, cmp_sha) != NULL;
}

void m2p_sha256_set_free(m2p_sha256_set *set) {
    m2p_free(set->v);
    memset(set, 0, sizeof *set);
}

m2p_code m2p_store_upload_touch(m2p_store *s, const char *sha256, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = m2p_db_prepare(s, "UPDATE uploads SET created_at = ?2 WHERE sha256 = ?1", &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_text(st, 1, sha256);
    (void)m2p_db_bind_double(st, 2, m2p_now_wall());
    int rc = m2p_db_step(st);
    m2p_db_finalize(st);
    if (rc != M2P_DB_DONE && rc != M2P_DB_ROW) {
        return m2p_store_db_error(s, rc, "touch upload", err);
    }
    return M2P_OK;
}

m2p_code m2p_store_job_image_ids(m2p_store *s, int64_t job_id, int64_t *ids, size_t cap, size_t *n,
                                 m2p_error *err) {
    *n = 0;
    m2p_db_stmt *st = NULL;
    m2p_code c = m2p_db_prepare(s, "SELECT id FROM images WHERE job_id = ?1 ORDER BY id", &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_int64(st, 1, job_id);
    int rc;
    while ((rc = m2p_db_step(st)) == M2P_DB_ROW) {
        if (*n < cap) {
            ids[(*n)++] = m2p_db_column_int64(st, 0);
        }
    }
    if (rc != M2P_DB_DONE) {
        c = m2p_store_db_error(s, rc, "image ids", err);
    }
    m2p_db_finalize(st);
    return c;
}

m2p_code m2p_store_track_upload_sha(m2p_store *s, int64_t track_id, char sha256[65], bool *found, m2p_error *err) {
    *found = false;
    sha256[0] = '\0';
    m2p_db_stmt *st = NULL;
    m2p_code c = m2p_db_prepare(s,
                                "SELECT spec FROM jobs WHERE track_id = ?1 AND instr(spec, 'upload_sha256') > 0"
                                " ORDER BY id DESC LIMIT 1",
                                &st, err);
    if (c != M2P_OK) {
        return c;
    }
    (void)m2p_db_bind_int64(st, 1, track_id);
    int rc = m2p_db_step(st);
    if (rc == M2P_DB_ROW) {
        const char *text = (const char *)m2p_db_column_text(st, 0);
        json_t *spec = text != NULL ? json_loads(text, 0, NULL) : NULL;
        const char *sha = json_string_value(json_object_get(spec, "upload_sha256"));
        if (sha != NULL && strlen(sha) == 64 && strspn(sha, "0123456789abcdef") == 64) {
            memcpy(sha256, sha, 65);
            *found = true;
        }
        json_decref(spec);
    } else if (rc != M2P_DB_DONE) {
        c = m2p_store_db_error(s, rc, "track upload", err);
    }
    m2p_db_finalize(st);
    return c;
}
