/*
 * store/store.c — opening the database, applying migrations, tracks and analyses.
 *
 * SQLite in WAL mode with a busy timeout, foreign keys on, synchronous=NORMAL
 * (durable across process crashes; WAL keeps readers and one writer going).
 * Open applies every pending migration, each in one IMMEDIATE transaction, so
 * two processes opening an old database at once upgrade it once.
 */
#include "store/store.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/fs.h"
#include "store/store_impl.h"

m2p_code m2p_store_sqlite_error(m2p_store *s, int rc, const char *what, m2p_error *err) {
    const char *msg = s != NULL && s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    int primary = rc & 0xff;
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
        return m2p_error_set(err, M2P_E_DB_BUSY, "%s: %s", what, msg);
    }
    if (primary == SQLITE_CONSTRAINT) {
        return m2p_error_set(err, M2P_E_DB_CONFLICT, "%s: %s", what, msg);
    }
    return m2p_error_set(err, M2P_E_DB_QUERY, "%s: %s", what, msg);
}

static m2p_code exec_sql(m2p_store *s, const char *sql, const char *what, m2p_error *err) {
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        m2p_code code = m2p_error_set(err, (rc & 0xff) == SQLITE_BUSY ? M2P_E_DB_BUSY : M2P_E_DB_QUERY, "%s: %s",
                                      what, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return code;
    }
    return M2P_OK;
}

static int read_version(m2p_store *s) {
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

static m2p_code migrate(m2p_store *s, m2p_error *err) {
    for (;;) {
        m2p_code rc = exec_sql(s, "BEGIN IMMEDIATE", "begin migration", err);
        if (rc != M2P_OK) {
            return rc;
        }
        int v = read_version(s);
        if (v < 0) {
            (void)exec_sql(s, "ROLLBACK", "rollback", NULL);
            return m2p_error_set(err, M2P_E_DB_MIGRATE, "cannot read the schema version of %s", s->path);
        }
        if (v > m2p_store_n_migrations) {
            (void)exec_sql(s, "ROLLBACK", "rollback", NULL);
            return m2p_error_set(err, M2P_E_DB_MIGRATE,
                                 "%s has schema version %d, newer than this mus2pic knows (%d)", s->path, v,
                                 m2p_store_n_migrations);
        }
        if (v == m2p_store_n_migrations) {
            s->schema_version = v;
            return exec_sql(s, "COMMIT", "commit", err);
        }
        const m2p_migration *m = &m2p_store_migrations[v];
        char what[160];
        (void)snprintf(what, sizeof what, "migration %d (%s)", v + 1, m->name);
        rc = exec_sql(s, m->sql, what, err);
        if (rc == M2P_OK) {
            char pragma[64];
            (void)snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
            rc = exec_sql(s, pragma, what, err);
        }
        if (rc != M2P_OK) {
            (void)exec_sql(s, "ROLLBACK", "rollback", NULL);
            if (err != NULL) {
                err->code = M2P_E_DB_MIGRATE;
            }
            return M2P_E_DB_MIGRATE;
        }
        rc = exec_sql(s, "COMMIT", what, err);
        if (rc != M2P_OK) {
            return rc;
        }
    }
}

m2p_code m2p_store_open(const m2p_config *cfg, m2p_store **out, m2p_error *err) {
    *out = NULL;
    char path[M2P_PATH_MAX];
    m2p_config_db_path(cfg, path, sizeof path);
    if (m2p_store_url_is_postgres(path)) {
        m2p_store *ps = m2p_calloc(1, sizeof *ps);
        if (ps == NULL) {
            return m2p_error_set(err, M2P_E_NOMEM, "store");
        }
        m2p_code prc = m2p_store_pg_open(ps, path, err);
        if (prc != M2P_OK) {
            m2p_store_close(ps);
            return prc;
        }
        *out = ps;
        return M2P_OK;
    }
    if (strncmp(path, "sqlite://", 9) == 0) {
        memmove(path, path + 9, strlen(path + 9) + 1);
    }
    if (cfg->database_url[0] == '\0') {
        m2p_code rc = m2p_fs_mkdirs(cfg->data_dir, err);
        if (rc != M2P_OK) {
            return rc;
        }
    }
    m2p_store *s = m2p_calloc(1, sizeof *s);
    if (s == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "store");
    }
    (void)snprintf(s->path, sizeof s->path, "%s", path);
    m2p_code rc = M2P_OK;
    s->kind = M2P_STORE_SQLITE;
    int src = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (src != SQLITE_OK) {
        rc = m2p_error_set(err, M2P_E_DB_OPEN, "%s: %s", path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(src));
        goto fail;
    }
    (void)sqlite3_busy_timeout(s->db, 10000);
    rc = exec_sql(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", "open", err);
    if (rc != M2P_OK) {
        if (err != NULL) {
            err->code = M2P_E_DB_OPEN;
        }
        rc = M2P_E_DB_OPEN;
        goto fail;
    }
    rc = migrate(s, err);
    if (rc != M2P_OK) {
        goto fail;
    }
    *out = s;
    return M2P_OK;
fail:
    m2p_store_close(s);
    return rc;
}

void m2p_store_close(m2p_store *s) {
    if (s == NULL) {
        return;
    }
    if (s->db != NULL) {
        (void)sqlite3_close_v2(s->db);
    }
    if (s->pg != NULL) {
        PQfinish(s->pg);
    }
    m2p_free(s);
}

bool m2p_store_url_is_postgres(const char *url) {
    return url != NULL && (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0);
}

bool m2p_store_is_shared(const m2p_store *s) {
    return s != NULL && s->kind == M2P_STORE_POSTGRES;
}

int m2p_store_schema_version(m2p_store *s) {
    return s->schema_version;
}

static void copy_col(m2p_db_stmt *st, int col, char *dst, size_t cap) {
    const unsigned char *t = m2p_db_column_text(st, col);
    (void)snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

static m2p_source_kind kind_from_name(const char *name) {
    static const m2p_source_kind kinds[] = {M2P_SOURCE_FILE,       M2P_SOURCE_UPLOAD,   M2P_SOURCE_YOUTUBE,
                                            M2P_SOURCE_SOUNDCLOUD, M2P_SOURCE_BANDCAMP, M2P_SOURCE_TEST_LOOPBACK};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(m2p_source_kind_name(kinds[i]), name) == 0) {
            return kinds[i];
        }
    }
    return M2P_SOURCE_FILE;
}

static void read_track(m2p_db_stmt *st, m2p_track *t, int64_t *id) {
    memset(t, 0, sizeof *t);
    if (id != NULL) {
        *id = m2p_db_column_int64(st, 0);
    }
    char kind[32];
    copy_col(st, 1, kind, sizeof kind);
    t->kind = kind_from_name(kind);
    copy_col(st, 2, t->source, sizeof t->source);
    copy_col(st, 3, t->video_id, sizeof t->video_id);
    copy_col(st, 4, t->title, sizeof t->title);
    copy_col(st, 5, t->uploader, sizeof t->uploader);
    t->duration_s = m2p_db_column_double(st, 6);
    copy_col(st, 7, t->content_hash, sizeof t->content_hash);
    copy_col(st, 8, t->path, sizeof t->path);
}

#define TRACK_COLS "id, kind, source, video_id, title, uploader, duration_s, content_hash, path"

m2p_code m2p_store_track_put(m2p_store *s, const m2p_track *t, int64_t *id_out, m2p_error *err) {
    static const char *sql =
        "INSERT INTO tracks (kind, source, video_id, title, uploader, duration_s, content_hash, path, created_at, "
        "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) "
        "ON CONFLICT(content_hash) DO UPDATE SET kind=excluded.kind, source=excluded.source, "
        "video_id=excluded.video_id, title=excluded.title, uploader=excluded.uploader, "
        "duration_s=excluded.duration_s, path=excluded.path, updated_at=excluded.updated_at RETURNING id";
    m2p_db_stmt *st = NULL;
    m2p_code pc = m2p_db_prepare(s, sql, &st, err);
    if (pc != M2P_OK) {
        return pc;
    }
    int rc;
    (void)m2p_db_bind_text(st, 1, m2p_source_kind_name(t->kind));
    (void)m2p_db_bind_text(st, 2, t->source);
    (void)m2p_db_bind_text(st, 3, t->video_id);
    (void)m2p_db_bind_text(st, 4, t->title);
    (void)m2p_db_bind_text(st, 5, t->uploader);
    (void)m2p_db_bind_double(st, 6, t->duration_s);
    (void)m2p_db_bind_text(st, 7, t->content_hash);
    (void)m2p_db_bind_text(st, 8, t->path);
    (void)m2p_db_bind_double(st, 9, m2p_now_wall());
    rc = m2p_db_step(st);
    m2p_code code = M2P_OK;
    if (rc == M2P_DB_ROW) {
        if (id_out != NULL) {
            *id_out = m2p_db_column_int64(st, 0);
        }
    } else {
        code = m2p_store_db_error(s, rc, "track put", err);
    }
    m2p_db_finalize(st);
    return code;
}

m2p_code m2p_store_track_get(m2p_store *s, int64_t id, m2p_track *out, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code pc = m2p_db_prepare(s, "SELECT " TRACK_COLS " FROM tracks WHERE id = ?1", &st, err);
    if (pc != M2P_OK) {
        return pc;
    }
    int rc;
    (void)m2p_db_bind_int64(st, 1, id);
    rc = m2p_db_step(st);
    m2p_code code = M2P_OK;
    if (rc == M2P_DB_ROW) {
        read_track(st, out, NULL);
    } else if (rc == M2P_DB_DONE) {
        code = m2p_error_set(err, M2P_E_NOT_FOUND, "no track %lld", (long long)id);
    } else {
        code = m2p_store_db_error(s, rc, "track get", err);
    }
    m2p_db_finalize(st);
    return code;
}

m2p_code m2p_store_track_find_video(m2p_store *s, const char *video_id, m2p_track *out, int64_t *id_out,
                                    m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code pc = m2p_db_prepare(s, "SELECT " TRACK_COLS " FROM tracks WHERE video_id = ?1 AND video_id != '' ORDER BY updated_at DESC LIMIT 1", &st, err);
    if (pc != M2P_OK) {
        return pc;
    }
    int rc;
    (void)m2p_db_bind_text(st, 1, video_id);
    rc = m2p_db_step(st);
    m2p_code code = M2P_OK;
    if (rc == M2P_DB_ROW) {
        read_track(st, out, id_out);
    } else if (rc == M2P_DB_DONE) {
        code = m2p_error_set(err, M2P_E_NOT_FOUND, "no track for %s", video_id);
    } else {
        code = m2p_store_db_error(s, rc, "track find", err);
    }
    m2p_db_finalize(st);
    return code;
}

m2p_code m2p_store_analysis_get(m2p_store *s, const char *content_hash, const char *analyzer_version,
                                char **json_out, m2p_error *err) {
    *json_out = NULL;
    m2p_db_stmt *st = NULL;
    m2p_code pc = m2p_db_prepare(s, "SELECT features_json FROM analyses WHERE content_hash = ?1 AND analyzer_version = ?2", &st, err);
    if (pc != M2P_OK) {
        return pc;
    }
    int rc;
    (void)m2p_db_bind_text(st, 1, content_hash);
    (void)m2p_db_bind_text(st, 2, analyzer_version);
    rc = m2p_db_step(st);
    m2p_code code = M2P_OK;
    if (rc == M2P_DB_ROW) {
        const char *j = (const char *)m2p_db_column_text(st, 0);
        *json_out = m2p_strdup(j != NULL ? j : "");
        if (*json_out == NULL) {
            code = m2p_error_set(err, M2P_E_NOMEM, "analysis get");
        }
    } else if (rc != M2P_DB_DONE) {
        code = m2p_store_db_error(s, rc, "analysis get", err);
    }
    m2p_db_finalize(st);
    return code;
}

m2p_code m2p_store_analysis_put(m2p_store *s, const char *content_hash, const char *analyzer_version,
                                const char *json, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code pc = m2p_db_prepare(s,
                                 "INSERT INTO analyses (content_hash, analyzer_version, features_json, created_at) "
                                 "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (content_hash, analyzer_version) DO UPDATE SET "
                                 "features_json = excluded.features_json",
                                 &st, err);
    if (pc != M2P_OK) {
        return pc;
    }
    (void)m2p_db_bind_text(st, 1, content_hash);
    (void)m2p_db_bind_text(st, 2, analyzer_version);
    (void)m2p_db_bind_text(st, 3, json);
    (void)m2p_db_bind_double(st, 4, m2p_now_wall());
    int rc = m2p_db_step(st);
    m2p_db_finalize(st);
    if (rc != M2P_DB_DONE) {
        return m2p_store_db_error(s, rc, "analysis put", err);
    }
    return M2P_OK;
}
