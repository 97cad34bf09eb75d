/*
 * core/log.h — leveled logging to stderr ("mus2pic[info] fetch: ...").
 * The level is process-wide and set once at start (config `log_level`).
 */
#ifndef M2P_CORE_LOG_H
#define M2P_CORE_LOG_H

#include "core/error.h"

typedef enum m2p_log_level { M2P_LOG_DEBUG = 0, M2P_LOG_INFO, M2P_LOG_WARN, M2P_LOG_ERROR, M2P_LOG_OFF } m2p_log_level;

void m2p_log_set_level(m2p_log_level level);
m2p_log_level m2p_log_get_level(void);
/* Parses "debug|info|warn|error|off"; false when unknown. */
bool m2p_log_parse_level(const char *s, m2p_log_level *out);
void m2p_log(m2p_log_level level, const char *module, const char *fmt, ...) M2P_PRINTF(3, 4);

#define M2P_DEBUG(mod, ...) m2p_log(M2P_LOG_DEBUG, mod, __VA_ARGS__)
#define M2P_INFO(mod, ...) m2p_log(M2P_LOG_INFO, mod, __VA_ARGS__)
#define M2P_WARN(mod, ...) m2p_log(M2P_LOG_WARN, mod, __VA_ARGS__)
#define M2P_ERROR(mod, ...) m2p_log(M2P_LOG_ERROR, mod, __VA_ARGS__)

#endif
