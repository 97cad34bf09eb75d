/*
 * cli/daemon.h — what the long-running commands (`serve`, `worker`) share:
 * stop-signal handling and the start of the process's pipeline.
 */
#ifndef M2P_CLI_DAEMON_H
#define M2P_CLI_DAEMON_H

#include <signal.h>
#include <stdbool.h>

#include "core/config.h"
#include "pipeline/pipeline.h"

/* Blocks SIGINT and SIGTERM in this thread and every thread it starts later
 * (the caller waits for them with sigwait(stop, ...)), and ignores SIGPIPE
 * (a client closing its socket must not kill the process). */
void m2p_cli_block_stop_signals(sigset_t *stop);

/* Creates the process's pipeline; with warmup also its renderer (the model is
 * mapped and warmed before any job), setting *warm_name to the renderer's name
 * (NULL without warmup). On error nothing is left allocated. */
m2p_code m2p_cli_pipeline_start(const m2p_config *cfg, bool warmup, m2p_pipeline **out, const char **warm_name,
                                m2p_error *err) M2P_WUR;

#endif
