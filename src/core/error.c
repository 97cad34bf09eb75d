/*
 * core/error.c — tables generated from M2P_ERRNO_MAP and the m2p_error helpers.
 */
#include "core/error.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef struct err_info {
    m2p_code code;
    const char *name;
    int http;
    bool transient;
    const char *msg;
    const char *hint;
} err_info;

static const err_info k_errors[] = {
#define M2P_ERR_ROW(name, num, http, transient, msg, hint) {M2P_E_##name, #name, http, transient, msg, hint},
    M2P_ERRNO_MAP(M2P_ERR_ROW)
#undef M2P_ERR_ROW
};

static const err_info *find(m2p_code code) {
    for (size_t i = 0; i < sizeof k_errors / sizeof k_errors[0]; i++) {
        if (k_errors[i].code == code) {
            return &k_errors[i];
        }
    }
    return NULL;
}

const char *m2p_strerror(m2p_code code) {
    const err_info *e = find(code);
    return e ? e->msg : "unknown error";
}

const char *m2p_errhint(m2p_code code) {
    const err_info *e = find(code);
    return e ? e->hint : "";
}

#define N_ERRORS (sizeof k_errors / sizeof k_errors[0])
static char g_names[N_ERRORS][40];
static pthread_once_t g_names_once = PTHREAD_ONCE_INIT;

/* Builds the lower-case names once (pthread_once makes it race-free). */
static void build_names(void) {
    for (size_t i = 0; i < N_ERRORS; i++) {
        size_t j = 0;
        for (; k_errors[i].name[j] != '\0' && j + 1 < sizeof g_names[i]; j++) {
            g_names[i][j] = (char)tolower((unsigned char)k_errors[i].name[j]);
        }
        g_names[i][j] = '\0';
    }
}

const char *m2p_errname(m2p_code code) {
    (void)pthread_once(&g_names_once, build_names);
    for (size_t i = 0; i < N_ERRORS; i++) {
        if (k_errors[i].code == code) {
            return g_names[i];
        }
    }
    return "unknown";
}

int m2p_err_http_status(m2p_code code) {
    const err_info *e = find(code);
    return e ? e->http : 500;
}

bool m2p_err_transient(m2p_code code) {
    const err_info *e = find(code);
    return e ? e->transient : false;
}

bool m2p_err_from_name(const char *name, m2p_code *out) {
    if (name == NULL) {
        return false;
    }
    for (size_t i = 0; i < sizeof k_errors / sizeof k_errors[0]; i++) {
        if (strcasecmp(k_errors[i].name, name) == 0) {
            *out = k_errors[i].code;
            return true;
        }
    }
    return false;
}

void m2p_error_clear(m2p_error *err) {
    if (err != NULL) {
        err->code = M2P_OK;
        err->detail[0] = '\0';
    }
}

m2p_code m2p_error_set(m2p_error *err, m2p_code code, const char *fmt, ...) {
    if (err == NULL) {
        return code;
    }
    err->code = code;
    err->detail[0] = '\0';
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(err->detail, sizeof err->detail, fmt, ap);
        va_end(ap);
    }
    return code;
}

char *m2p_error_format(const m2p_error *err, char *buf, size_t cap) {
    if (cap == 0) {
        return buf;
    }
    m2p_code code = err ? err->code : M2P_E_INTERNAL;
    const char *hint = m2p_errhint(code);
    if (err != NULL && err->detail[0] != '\0') {
        (void)snprintf(buf, cap, "error %s: %s (%s).%s%s", m2p_errname(code), m2p_strerror(code), err->detail,
                       hint[0] ? " Hint: " : "", hint);
    } else {
        (void)snprintf(buf, cap, "error %s: %s.%s%s", m2p_errname(code), m2p_strerror(code), hint[0] ? " Hint: " : "",
                       hint);
    }
    return buf;
}
