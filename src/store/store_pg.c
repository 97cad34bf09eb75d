/*
 * store/store_pg.c — opening a PostgreSQL store (database_url =
 * postgresql://... or postgres://...) and applying its migrations.
 *
 * Migrations run in one transaction each, under a transaction-scoped
 * advisory lock, so several processes starting at once against an old
 * schema upgrade it once; the version is the single row of m2p_schema.
 * A server that cannot be reached is DB_UNAVAILABLE (503, transient).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_impl.h"

#define MIGRATE_LOCK_KEY 0x6d327031 /* "m2p1" */

static m2p_code pg_exec(m2p_store *s, const char *sql, const char *what, m2p_error *err) {
    int rc = m2p_db_exec(s, sql);
    return rc == 0 ? M2P_OK : m2p_store_db_error(s, rc, what, err);
}

static m2p_code read_version(m2p_store *s, int *v, m2p_error *err) {
    m2p_db_stmt *st = NULL;
    m2p_code c = m2p_db_prepare(s, "SELECT version FROM m2p_schema LIMIT 1", &st, err);
    if (c != M2P_OK) {
        return c;
    }
    int rc = m2p_db_step(st);
    if (rc == M2P_DB_ROW) {
        *v = m2p_db_column_int(st, 0);
    } else if (rc == M2P_DB_DONE) {
        *v = 0;
    } else {
        c = m2p_store_db_error(s, rc, "schema version", err);
    }
    m2p_db_finalize(st);
    return c;
}

static m2p_code migrate(m2p_store *s, m2p_error *err) {
    m2p_code c = pg_exec(s, "CREATE TABLE IF NOT EXISTS m2p_schema (version INTEGER NOT NULL)", "schema table", err);
    for (;;) {
        if (c != M2P_OK) {
            return c;
        }
        c = pg_exec(s, "BEGIN", "begin migration", err);
        if (c != M2P_OK) {
            return c;
        }
        char lock[96];
        (void)snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%d)", MIGRATE_LOCK_KEY);
        int v = 0;
        c = pg_exec(s, lock, "migration lock", err);
        if (c == M2P_OK) {
            c = read_version(s, &v, err);
        }
        if (c == M2P_OK && v > m2p_store_pg_n_migrations) {
            c = m2p_error_set(err, M2P_E_DB_MIGRATE, "the database has schema version %d, newer than this mus2pic knows (%d)",
                              v, m2p_store_pg_n_migrations);
        }
        if (c != M2P_OK) {
            (void)m2p_db_exec(s, "ROLLBACK");
            return c;
        }
        if (v == m2p_store_pg_n_migrations) {
            s->schema_version = v;
            return pg_exec(s, "COMMIT", "commit", err);
        }
        const m2p_migration *m = &m2p_store_pg_migrations[v];
        char what[160];
        (void)snprintf(what, sizeof what, "migration %d (%s)", v + 1, m->name);
        c = pg_exec(s, m->sql, what, err);
        if (c == M2P_OK) {
            char upd[96];
            (void)snprintf(upd, sizeof upd, "DELETE FROM m2p_schema; INSERT INTO m2p_schema VALUES (%d)", v + 1);
            c = pg_exec(s, upd, what, err);
        }
        if (c != M2P_OK) {
            (void)m2p_db_exec(s, "ROLLBACK");
            if (err != NULL && err->code != M2P_E_DB_UNAVAILABLE) {
                err->code = M2P_E_DB_MIGRATE;
                return M2P_E_DB_MIGRATE;
            }
            return c;
        }
        c = pg_exec(s, "COMMIT", what, err);
    }
}

/* The URL without its password, for messages. */
static void redact(const char *url, char *buf, size_t cap) {
    const char *at = strrchr(url, '@');
    const char *scheme = strstr(url, "://");
    if (at == NULL || scheme == NULL || scheme > at) {
        (void)snprintf(buf, cap, "%s", url);
        return;
    }
    const char *colon = memchr(scheme + 3, ':', (size_t)(at - (scheme + 3)));
    if (colon == NULL) {
        (void)snprintf(buf, cap, "%s", url);
        return;
    }
    (void)snprintf(buf, cap, "%.*s:***%s", (int)(colon - url), url, at);
}

m2p_code m2p_store_pg_open(m2p_store *s, const char *url, m2p_error *err) {
    s->kind = M2P_STORE_POSTGRES;
    redact(url, s->path, sizeof s->path);
    /* A 5 s connect timeout: an unreachable server is a fast 503. */
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {url, "5", "mus2pic", NULL};
    s->pg = PQconnectdbParams(keys, vals, 1);
    if (s->pg == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "PostgreSQL connection");
    }
    if (PQstatus(s->pg) != CONNECTION_OK) {
        char msg[512];
        (void)snprintf(msg, sizeof msg, "%s", PQerrorMessage(s->pg));
        size_t n = strlen(msg);
        while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) {
            msg[--n] = '\0';
        }
        return m2p_error_set(err, M2P_E_DB_UNAVAILABLE, "%s: %s", s->path, msg);
    }
    PGresult *r = PQexec(s->pg, "SET client_min_messages = warning");
    PQclear(r);
    return migrate(s, err);
}
