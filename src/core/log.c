/*
 * core/log.c — leveled logging; one fprintf per line so lines from threads do not interleave.
 */
#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static atomic_int g_level = M2P_LOG_WARN;

void m2p_log_set_level(m2p_log_level level) {
    atomic_store(&g_level, (int)level);
}

m2p_log_level m2p_log_get_level(void) {
    return (m2p_log_level)atomic_load(&g_level);
}

bool m2p_log_parse_level(const char *s, m2p_log_level *out) {
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++) {
        if (s != NULL && strcasecmp(s, names[i]) == 0) {
            *out = (m2p_log_level)i;
            return true;
        }
    }
    return false;
}

void m2p_log(m2p_log_level level, const char *module, const char *fmt, ...) {
    static const char *tags[] = {"debug", "info", "warn", "error", "off"};
    if ((int)level < atomic_load(&g_level) || level >= M2P_LOG_OFF) {
        return;
    }
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    (void)fprintf(stderr, "mus2pic[%s] %s: %s\n", tags[level], module ? module : "-", line);
}
