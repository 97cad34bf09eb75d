/*
 * store/db.c — the statement interface of store/db.h on SQLite and on
 * PostgreSQL (libpq).
 *
 * PostgreSQL statements keep their parameters as text with a type (int8,
 * float8, text, or unknown for NULL so the server infers it from the
 * query), run at the first m2p_db_step and then walk the result. A
 * connection found broken before a statement outside a transaction is
 * reset once (PQreset); failing that, or a break inside a transaction, is
 * M2P_DB_UNAVAILABLE (→ DB_UNAVAILABLE, 503): nothing half-written, since
 * the server rolls back an interrupted transaction.
 */
#include "store/db.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "store/store_impl.h"

#define MAX_PARAMS 32
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_TEXT 25
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_NUMERIC 1700
#define OID_BOOL 16
#define OID_BYTEA 17

struct m2p_db_stmt {
    m2p_store *s;
    sqlite3_stmt *lite;
    /* PostgreSQL */
    char *sql;
    char *vals[MAX_PARAMS];
    Oid types[MAX_PARAMS];
    int lens[MAX_PARAMS];
    int fmts[MAX_PARAMS]; /* 1: binary (blobs) */
    int n_params;
    PGresult *res;
    int row; /* current row; -1 before the first step */
    bool ran;
};

static bool pg_has(m2p_db_stmt *st, int col);

static void set_msg(m2p_store *s, const char *msg) {
    (void)snprintf(s->errmsg, sizeof s->errmsg, "%s", msg != NULL ? msg : "");
    size_t n = strlen(s->errmsg);
    while (n > 0 && (s->errmsg[n - 1] == '\n' || s->errmsg[n - 1] == ' ')) {
        s->errmsg[--n] = '\0';
    }
}

static int lite_rc(m2p_store *s, int rc) {
    if (rc == SQLITE_ROW) {
        return M2P_DB_ROW;
    }
    if (rc == SQLITE_DONE || rc == SQLITE_OK) {
        return M2P_DB_DONE;
    }
    set_msg(s, sqlite3_errmsg(s->db));
    int primary = rc & 0xff;
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
        return M2P_DB_BUSY;
    }
    if (primary == SQLITE_CONSTRAINT) {
        return M2P_DB_CONSTRAINT;
    }
    return M2P_DB_ERROR;
}

/* The PostgreSQL result's error class. */
static int pg_rc(m2p_store *s, const PGresult *res) {
    const char *msg = res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(s->pg);
    set_msg(s, msg != NULL && msg[0] != '\0' ? msg : PQerrorMessage(s->pg));
    if (PQstatus(s->pg) != CONNECTION_OK) {
        return M2P_DB_UNAVAILABLE;
    }
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state == NULL) {
        return M2P_DB_UNAVAILABLE; /* no result: the connection failed */
    }
    if (strncmp(state, "23", 2) == 0) {
        return M2P_DB_CONSTRAINT;
    }
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0) {
        return M2P_DB_BUSY;
    }
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 || strcmp(state, "53300") == 0) {
        return M2P_DB_UNAVAILABLE;
    }
    return M2P_DB_ERROR;
}

/* Outside a transaction, a broken connection gets one reset. */
static bool pg_ready(m2p_store *s) {
    if (PQstatus(s->pg) == CONNECTION_OK) {
        return true;
    }
    if (s->in_tx) {
        return false;
    }
    PQreset(s->pg);
    if (PQstatus(s->pg) == CONNECTION_OK) {
        PGresult *r = PQexec(s->pg, "SET client_min_messages = warning");
        PQclear(r);
        return true;
    }
    set_msg(s, PQerrorMessage(s->pg));
    return false;
}

m2p_code m2p_store_db_error(m2p_store *s, int rc, const char *what, m2p_error *err) {
    const char *msg = s != NULL ? s->errmsg : "";
    switch (rc) {
    case M2P_DB_BUSY:
        return m2p_error_set(err, M2P_E_DB_BUSY, "%s: %s", what, msg);
    case M2P_DB_CONSTRAINT:
        return m2p_error_set(err, M2P_E_DB_CONFLICT, "%s: %s", what, msg);
    case M2P_DB_UNAVAILABLE:
        return m2p_error_set(err, M2P_E_DB_UNAVAILABLE, "%s: %s", what, msg);
    default:
        return m2p_error_set(err, M2P_E_DB_QUERY, "%s: %s", what, msg);
    }
}

/* ?N → $N outside quotes. */
static char *pg_sql(const char *sql) {
    size_t n = strlen(sql);
    char *out = m2p_malloc(n + 1);
    if (out == NULL) {
        return NULL;
    }
    char quote = 0;
    for (size_t i = 0; i <= n; i++) {
        char c = sql[i];
        if (quote != 0) {
            if (c == quote) {
                quote = 0;
            }
        } else if (c == '\'' || c == '"') {
            quote = c;
        } else if (c == '?' && sql[i + 1] >= '0' && sql[i + 1] <= '9') {
            c = '$';
        }
        out[i] = c;
    }
    return out;
}

m2p_code m2p_db_prepare(m2p_store *s, const char *sql, m2p_db_stmt **out, m2p_error *err) {
    *out = NULL;
    m2p_db_stmt *st = m2p_calloc(1, sizeof *st);
    if (st == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "statement");
    }
    st->s = s;
    st->row = -1;
    if (s->kind == M2P_STORE_SQLITE) {
        int rc = sqlite3_prepare_v2(s->db, sql, -1, &st->lite, NULL);
        if (rc != SQLITE_OK) {
            m2p_code c = m2p_store_db_error(s, lite_rc(s, rc), "prepare", err);
            m2p_free(st);
            return c;
        }
    } else {
        if (!pg_ready(s)) {
            m2p_free(st);
            return m2p_error_set(err, M2P_E_DB_UNAVAILABLE, "PostgreSQL: %s", s->errmsg);
        }
        st->sql = pg_sql(sql);
        if (st->sql == NULL) {
            m2p_free(st);
            return m2p_error_set(err, M2P_E_NOMEM, "statement");
        }
    }
    *out = st;
    return M2P_OK;
}

static int pg_bind(m2p_db_stmt *st, int i, const char *text, Oid type) {
    if (i < 1 || i > MAX_PARAMS) {
        return -1;
    }
    m2p_free(st->vals[i - 1]);
    st->vals[i - 1] = NULL;
    if (text != NULL) {
        st->vals[i - 1] = m2p_strdup(text);
        if (st->vals[i - 1] == NULL) {
            return -1;
        }
    }
    st->types[i - 1] = type;
    st->lens[i - 1] = 0;
    st->fmts[i - 1] = 0;
    if (i > st->n_params) {
        st->n_params = i;
    }
    return 0;
}

int m2p_db_bind_text(m2p_db_stmt *st, int i, const char *v) {
    if (st->lite != NULL) {
        return sqlite3_bind_text(st->lite, i, v, -1, SQLITE_TRANSIENT) == SQLITE_OK ? 0 : -1;
    }
    return pg_bind(st, i, v, OID_TEXT); /* NULL: a text NULL (typed, so `?1 IS NULL` works) */
}

int m2p_db_bind_int64(m2p_db_stmt *st, int i, int64_t v) {
    if (st->lite != NULL) {
        return sqlite3_bind_int64(st->lite, i, v) == SQLITE_OK ? 0 : -1;
    }
    char buf[32];
    (void)snprintf(buf, sizeof buf, "%" PRId64, v);
    return pg_bind(st, i, buf, OID_INT8);
}

int m2p_db_bind_int(m2p_db_stmt *st, int i, int v) {
    return m2p_db_bind_int64(st, i, v);
}

int m2p_db_bind_double(m2p_db_stmt *st, int i, double v) {
    if (st->lite != NULL) {
        return sqlite3_bind_double(st->lite, i, v) == SQLITE_OK ? 0 : -1;
    }
    char buf[40];
    (void)snprintf(buf, sizeof buf, "%.17g", v);
    return pg_bind(st, i, buf, OID_FLOAT8);
}

int m2p_db_bind_blob(m2p_db_stmt *st, int i, const void *data, size_t len) {
    if (len > (size_t)INT32_MAX) {
        return -1;
    }
    if (st->lite != NULL) {
        return sqlite3_bind_blob(st->lite, i, len > 0 ? data : "", (int)len, SQLITE_TRANSIENT) == SQLITE_OK ? 0 : -1;
    }
    if (i < 1 || i > MAX_PARAMS) {
        return -1;
    }
    m2p_free(st->vals[i - 1]);
    st->vals[i - 1] = m2p_malloc(len > 0 ? len : 1);
    if (st->vals[i - 1] == NULL) {
        return -1;
    }
    if (len > 0) {
        memcpy(st->vals[i - 1], data, len);
    }
    st->types[i - 1] = OID_BYTEA;
    st->lens[i - 1] = (int)len;
    st->fmts[i - 1] = 1;
    if (i > st->n_params) {
        st->n_params = i;
    }
    return 0;
}

m2p_code m2p_db_column_blob_dup(m2p_db_stmt *st, int col, unsigned char **out, size_t *len, m2p_error *err) {
    *out = NULL;
    *len = 0;
    const unsigned char *src = NULL;
    size_t n = 0;
    unsigned char *pgbuf = NULL;
    if (st->lite != NULL) {
        src = sqlite3_column_blob(st->lite, col);
        n = (size_t)sqlite3_column_bytes(st->lite, col);
    } else if (pg_has(st, col) && !PQgetisnull(st->res, st->row, col)) {
        pgbuf = PQunescapeBytea((const unsigned char *)PQgetvalue(st->res, st->row, col), &n);
        if (pgbuf == NULL) {
            return m2p_error_set(err, M2P_E_NOMEM, "bytea");
        }
        src = pgbuf;
    }
    *out = m2p_malloc(n > 0 ? n : 1);
    if (*out == NULL) {
        PQfreemem(pgbuf);
        return m2p_error_set(err, M2P_E_NOMEM, "blob");
    }
    if (n > 0 && src != NULL) {
        memcpy(*out, src, n);
    }
    *len = n;
    PQfreemem(pgbuf);
    return M2P_OK;
}

int m2p_db_bind_null(m2p_db_stmt *st, int i) {
    if (st->lite != NULL) {
        return sqlite3_bind_null(st->lite, i) == SQLITE_OK ? 0 : -1;
    }
    return pg_bind(st, i, NULL, 0);
}

int m2p_db_step(m2p_db_stmt *st) {
    m2p_store *s = st->s;
    if (st->lite != NULL) {
        int rc = lite_rc(s, sqlite3_step(st->lite));
        if (rc == M2P_DB_DONE) {
            s->changes = sqlite3_changes(s->db);
        }
        return rc;
    }
    if (!st->ran) {
        st->ran = true;
        if (!pg_ready(s)) {
            return M2P_DB_UNAVAILABLE;
        }
        st->res = PQexecParams(s->pg, st->sql, st->n_params, st->types, (const char *const *)st->vals, st->lens,
                               st->fmts, 0);
        ExecStatusType es = st->res != NULL ? PQresultStatus(st->res) : PGRES_FATAL_ERROR;
        if (es != PGRES_TUPLES_OK && es != PGRES_COMMAND_OK) {
            return pg_rc(s, st->res);
        }
        const char *ct = PQcmdTuples(st->res);
        s->changes = ct != NULL && ct[0] != '\0' ? strtoll(ct, NULL, 10) : 0;
    }
    if (st->res == NULL || PQresultStatus(st->res) != PGRES_TUPLES_OK) {
        return M2P_DB_DONE;
    }
    st->row++;
    return st->row < PQntuples(st->res) ? M2P_DB_ROW : M2P_DB_DONE;
}

int m2p_db_column_count(m2p_db_stmt *st) {
    if (st->lite != NULL) {
        return sqlite3_column_count(st->lite);
    }
    return st->res != NULL ? PQnfields(st->res) : 0;
}

const char *m2p_db_column_name(m2p_db_stmt *st, int col) {
    if (st->lite != NULL) {
        return sqlite3_column_name(st->lite, col);
    }
    const char *n = st->res != NULL ? PQfname(st->res, col) : NULL;
    return n != NULL ? n : "";
}

static bool pg_has(m2p_db_stmt *st, int col) {
    return st->res != NULL && st->row >= 0 && st->row < PQntuples(st->res) && col >= 0 && col < PQnfields(st->res);
}

int m2p_db_column_type(m2p_db_stmt *st, int col) {
    if (st->lite != NULL) {
        switch (sqlite3_column_type(st->lite, col)) {
        case SQLITE_INTEGER:
            return M2P_DB_INTEGER;
        case SQLITE_FLOAT:
            return M2P_DB_FLOAT;
        case SQLITE_TEXT:
            return M2P_DB_TEXT;
        default:
            return M2P_DB_NULL;
        }
    }
    if (!pg_has(st, col) || PQgetisnull(st->res, st->row, col)) {
        return M2P_DB_NULL;
    }
    switch (PQftype(st->res, col)) {
    case OID_INT8:
    case OID_INT4:
    case OID_INT2:
        return M2P_DB_INTEGER;
    case OID_FLOAT4:
    case OID_FLOAT8:
    case OID_NUMERIC:
        return M2P_DB_FLOAT;
    default:
        return M2P_DB_TEXT;
    }
}

int64_t m2p_db_column_int64(m2p_db_stmt *st, int col) {
    if (st->lite != NULL) {
        return sqlite3_column_int64(st->lite, col);
    }
    if (!pg_has(st, col) || PQgetisnull(st->res, st->row, col)) {
        return 0;
    }
    const char *v = PQgetvalue(st->res, st->row, col);
    if (PQftype(st->res, col) == OID_BOOL) {
        return v[0] == 't' ? 1 : 0;
    }
    return strtoll(v, NULL, 10);
}

int m2p_db_column_int(m2p_db_stmt *st, int col) {
    return (int)m2p_db_column_int64(st, col);
}

double m2p_db_column_double(m2p_db_stmt *st, int col) {
    if (st->lite != NULL) {
        return sqlite3_column_double(st->lite, col);
    }
    if (!pg_has(st, col) || PQgetisnull(st->res, st->row, col)) {
        return 0;
    }
    return strtod(PQgetvalue(st->res, st->row, col), NULL);
}

const unsigned char *m2p_db_column_text(m2p_db_stmt *st, int col) {
    if (st->lite != NULL) {
        return sqlite3_column_text(st->lite, col);
    }
    if (!pg_has(st, col) || PQgetisnull(st->res, st->row, col)) {
        return NULL;
    }
    return (const unsigned char *)PQgetvalue(st->res, st->row, col);
}

void m2p_db_finalize(m2p_db_stmt *st) {
    if (st == NULL) {
        return;
    }
    if (st->lite != NULL) {
        (void)sqlite3_finalize(st->lite);
    }
    PQclear(st->res);
    for (int i = 0; i < MAX_PARAMS; i++) {
        m2p_free(st->vals[i]);
    }
    m2p_free(st->sql);
    m2p_free(st);
}

int64_t m2p_db_changes(m2p_store *s) {
    return s->changes;
}

int m2p_db_exec(m2p_store *s, const char *sql) {
    if (s->kind == M2P_STORE_SQLITE) {
        char *msg = NULL;
        int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
            int r = lite_rc(s, rc);
            set_msg(s, msg != NULL ? msg : sqlite3_errstr(rc));
            sqlite3_free(msg);
            return r;
        }
        return 0;
    }
    bool begin = strncmp(sql, "BEGIN", 5) == 0;
    bool end = strcmp(sql, "COMMIT") == 0 || strcmp(sql, "ROLLBACK") == 0;
    if (!pg_ready(s)) {
        if (end) {
            s->in_tx = false;
        }
        return M2P_DB_UNAVAILABLE;
    }
    PGresult *r = PQexec(s->pg, begin ? "BEGIN" : sql);
    ExecStatusType es = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    int rc = 0;
    if (es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK) {
        rc = pg_rc(s, r);
    }
    PQclear(r);
    if (begin && rc == 0) {
        s->in_tx = true;
    }
    if (end) {
        s->in_tx = false;
    }
    return rc;
}
