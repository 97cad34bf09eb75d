/*
 * cli/daemon.c — stop signals and pipeline start for `serve` and `worker`.
 */
#include "cli/daemon.h"

#include <pthread.h>

#include "core/fs.h"
#include "core/log.h"

void m2p_cli_block_stop_signals(sigset_t *stop) {
    (void)sigemptyset(stop);
    (void)sigaddset(stop, SIGINT);
    (void)sigaddset(stop, SIGTERM);
    (void)pthread_sigmask(SIG_BLOCK, stop, NULL);
    (void)signal(SIGPIPE, SIG_IGN);
}

m2p_code m2p_cli_pipeline_start(const m2p_config *cfg, bool warmup, m2p_pipeline **out, const char **warm_name,
                                m2p_error *err) {
    *out = NULL;
    *warm_name = NULL;
    m2p_pipeline *pipeline = NULL;
    m2p_code rc = m2p_pipeline_create(cfg, &pipeline, err);
    if (rc != M2P_OK) {
        return rc;
    }
    if (warmup) {
        m2p_renderer *r = NULL;
        double t0 = m2p_now_monotonic();
        rc = m2p_pipeline_renderer(pipeline, cfg->renderer, &r, err);
        if (rc != M2P_OK) {
            m2p_pipeline_free(pipeline);
            return rc;
        }
        *warm_name = m2p_renderer_name(r);
        M2P_INFO("cli", "renderer %s ready in %.2f s", *warm_name, m2p_now_monotonic() - t0);
    }
    *out = pipeline;
    return M2P_OK;
}
