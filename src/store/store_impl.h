/*
 * store/store_impl.h — internals shared by the files of the store module
 * (store.c, jobs.c, ...). Not for other modules.
 */
#ifndef M2P_STORE_STORE_IMPL_H
#define M2P_STORE_STORE_IMPL_H

#include <sqlite3.h>

#include "store/store.h"

struct m2p_store {
    sqlite3 *db;
    char path[M2P_PATH_MAX];
    int schema_version;
};

/* One numbered migration: SQL run in one transaction; version = index + 1. */
typedef struct m2p_migration {
    const char *name;
    const char *sql;
} m2p_migration;

/* The list, in order (store/migrations.c). Append only; never edit a shipped one. */
extern const m2p_migration m2p_store_migrations[];
extern const int m2p_store_n_migrations;

/* Maps a SQLite result to a store error with the database's message. */
m2p_code m2p_store_sqlite_error(m2p_store *s, int rc, const char *what, m2p_error *err);

#endif
