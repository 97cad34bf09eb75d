/*
 * store/store_impl.h — internals shared by the files of the store module
 * (store.c, jobs.c, db.c, ...). Not for other modules.
 */
#ifndef M2P_STORE_STORE_IMPL_H
#define M2P_STORE_STORE_IMPL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <sqlite3.h>

#include "store/db.h"
#include "store/store.h"

typedef enum m2p_store_kind { M2P_STORE_SQLITE = 0, M2P_STORE_POSTGRES } m2p_store_kind;

struct m2p_store {
    m2p_store_kind kind;
    sqlite3 *db;  /* SQLite */
    PGconn *pg;   /* PostgreSQL */
    bool in_tx;   /* PostgreSQL: inside BEGIN ... COMMIT/ROLLBACK (no reconnect there) */
    int64_t changes;
    char errmsg[512]; /* the engine's text of the last failure */
    char path[M2P_PATH_MAX];
    int schema_version;
};

/* One numbered migration: SQL run in one transaction; version = index + 1. */
typedef struct m2p_migration {
    const char *name;
    const char *sql;
} m2p_migration;

/* The lists, in order (store/migrations.c), one per engine with the same
 * numbering: migration N does the same thing on both. Append only; never
 * edit a shipped one. */
extern const m2p_migration m2p_store_migrations[];
extern const int m2p_store_n_migrations;
extern const m2p_migration m2p_store_pg_migrations[];
extern const int m2p_store_pg_n_migrations;

/* Maps a SQLite result code to a store error with the database's message. */
m2p_code m2p_store_sqlite_error(m2p_store *s, int rc, const char *what, m2p_error *err);

/* Opens a PostgreSQL store for url into s (kind, pg, schema_version set). */
m2p_code m2p_store_pg_open(m2p_store *s, const char *url, m2p_error *err);

#endif
