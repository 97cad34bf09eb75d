/*
 * store/db.h — the store's one SQL interface over two engines: SQLite (the
 * embedded default) and PostgreSQL (libpq, for several hosts). Internal to
 * the store module.
 *
 * The shape follows SQLite's prepared statements, so the store's queries are
 * written once: prepare SQL with numbered parameters (?1, ?2, ...), bind
 * them, step through rows, finalize. On PostgreSQL, ?N becomes $N, the
 * statement runs (PQexecParams, text format) at the first step and the rows
 * are walked from the result; "BEGIN IMMEDIATE" becomes "BEGIN".
 *
 * SQL that must run on both sticks to the common subset: ON CONFLICT upserts
 * with the target named and the target table's columns qualified, RETURNING,
 * coalesce, CASE instead of the two-argument min/max, instr() (defined as a
 * function by the PostgreSQL migrations), no engine-specific date functions
 * (times are bound as Unix seconds).
 *
 * Statement lifetime: m2p_db_prepare → binds → m2p_db_step until it returns
 * something other than M2P_DB_ROW → m2p_db_finalize (accepts NULL). Column
 * text is valid until the next step or finalize.
 */
#ifndef M2P_STORE_DB_H
#define M2P_STORE_DB_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct m2p_store m2p_store;
typedef struct m2p_db_stmt m2p_db_stmt;

/* m2p_db_step results. The negative ones are errors; their text is in the store
 * (m2p_store_db_error). */
enum {
    M2P_DB_ROW = 1,
    M2P_DB_DONE = 2,
    M2P_DB_ERROR = -1,
    M2P_DB_BUSY = -2,        /* SQLite busy/locked, PostgreSQL serialization failure or deadlock */
    M2P_DB_CONSTRAINT = -3,  /* unique, foreign key, check */
    M2P_DB_UNAVAILABLE = -4, /* PostgreSQL connection lost or refused */
};

/* Column types. */
enum { M2P_DB_NULL = 0, M2P_DB_INTEGER, M2P_DB_FLOAT, M2P_DB_TEXT };

/* Prepares sql; an error is reported through err (DB_QUERY, or DB_UNAVAILABLE
 * when PostgreSQL cannot be reached even after one reconnect). */
m2p_code m2p_db_prepare(m2p_store *s, const char *sql, m2p_db_stmt **out, m2p_error *err) M2P_WUR;
/* Bind parameter i (1-based, at most 32). Text is copied; NULL text binds a text-typed NULL.
 * Return 0, or -1 when i is out of range. */
int m2p_db_bind_text(m2p_db_stmt *st, int i, const char *v);
int m2p_db_bind_int64(m2p_db_stmt *st, int i, int64_t v);
int m2p_db_bind_int(m2p_db_stmt *st, int i, int v);
int m2p_db_bind_double(m2p_db_stmt *st, int i, double v);
int m2p_db_bind_null(m2p_db_stmt *st, int i);
/* Binary data (copied): BLOB on SQLite, bytea on PostgreSQL (sent in binary). */
int m2p_db_bind_blob(m2p_db_stmt *st, int i, const void *data, size_t len);
/* M2P_DB_ROW, M2P_DB_DONE or a negative error. */
int m2p_db_step(m2p_db_stmt *st);
int m2p_db_column_count(m2p_db_stmt *st);
const char *m2p_db_column_name(m2p_db_stmt *st, int col);
int m2p_db_column_type(m2p_db_stmt *st, int col);
int64_t m2p_db_column_int64(m2p_db_stmt *st, int col);
int m2p_db_column_int(m2p_db_stmt *st, int col);
double m2p_db_column_double(m2p_db_stmt *st, int col);
/* NULL for SQL NULL. */
const unsigned char *m2p_db_column_text(m2p_db_stmt *st, int col);
/* A copy of a BLOB/bytea column (m2p_free; empty for NULL). */
m2p_code m2p_db_column_blob_dup(m2p_db_stmt *st, int col, unsigned char **out, size_t *len, m2p_error *err) M2P_WUR;
void m2p_db_finalize(m2p_db_stmt *st);

/* Rows changed by the last INSERT/UPDATE/DELETE stepped on this store. */
int64_t m2p_db_changes(m2p_store *s);

/* Runs SQL without parameters or results (one or more statements). Returns a
 * negative code as m2p_db_step does, or 0. */
int m2p_db_exec(m2p_store *s, const char *sql);

/* Maps the last error (rc from step/exec) to a store error with the engine's message. */
m2p_code m2p_store_db_error(m2p_store *s, int rc, const char *what, m2p_error *err);

#endif
