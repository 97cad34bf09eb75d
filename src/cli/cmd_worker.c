/*
 * cli/cmd_worker.c — `mus2pic worker [--threads N] [--lease S] [--warmup]`:
 * a process that runs jobs from the shared queue (database_url =
 * postgresql://...) with the very same pipeline (m2p_pipeline_make) and
 * worker code (jobs/queue.c) as the server's in-process workers, without
 * HTTP. Start as many as the hosts allow; `mus2pic serve --no-workers`
 * enqueues and streams.
 *
 * Each claim holds a lease renewed by heartbeats; a worker killed mid-job
 * (SIGKILL, OOM, power) leaves a lease that expires after S seconds, and
 * another worker takes the job over as its next attempt (jobs/queue.h).
 * SIGINT/SIGTERM: running jobs stop at their next step and go back to the
 * queue without counting the attempt; exit 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/daemon.h"
#include "core/fs.h"
#include "core/log.h"
#include "jobs/queue.h"
#include "pipeline/pipeline.h"

static int usage_error(const char *what) {
    (void)fprintf(stderr,
                  "mus2pic worker: %s\nusage: mus2pic worker [--threads N] [--lease SECONDS] [--warmup]\n", what);
    return M2P_EXIT_USAGE;
}

int m2p_cmd_worker(m2p_config *cfg, int argc, char **argv) {
    bool warmup = false;
    double lease = M2P_QUEUE_DEFAULT_LEASE_S;
    m2p_error err;
    m2p_error_clear(&err);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--warmup") == 0) {
            warmup = true;
        } else if (strcmp(a, "--threads") == 0 && i + 1 < argc) {
            if (m2p_config_set(cfg, "workers", argv[++i], &err) != M2P_OK) {
                m2p_cli_print_error(&err);
                return M2P_EXIT_USAGE;
            }
        } else if (strcmp(a, "--lease") == 0 && i + 1 < argc) {
            char *end = NULL;
            lease = strtod(argv[++i], &end);
            if (end == argv[i] || *end != '\0' || !(lease >= 1.0 && lease <= 3600.0)) {
                return usage_error("--lease takes seconds between 1 and 3600");
            }
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            (void)printf("usage: mus2pic worker [--threads N] [--lease SECONDS] [--warmup]\n"
                         "Runs jobs from the shared queue; needs MUS2PIC_DATABASE_URL=postgresql://...\n"
                         "(docs/deploy.md). --threads: jobs at once (default: the workers setting);\n"
                         "--lease: seconds without a heartbeat before another worker takes a job over (30).\n");
            return M2P_EXIT_OK;
        } else {
            return usage_error(a);
        }
    }
    if (!m2p_store_url_is_postgres(cfg->database_url)) {
        (void)m2p_error_set(&err, M2P_E_CONFIG,
                      "a worker process needs the shared database: set MUS2PIC_DATABASE_URL=postgresql://...");
        m2p_cli_print_error(&err);
        return M2P_EXIT_USAGE;
    }

    sigset_t stop;
    m2p_cli_block_stop_signals(&stop);

    int status = M2P_EXIT_FAIL;
    m2p_pipeline *pipeline = NULL;
    m2p_queue *queue = NULL;
    const char *warm_name = NULL;
    if (m2p_cli_pipeline_start(cfg, warmup, &pipeline, &warm_name, &err) != M2P_OK) {
        goto done;
    }
    if (m2p_queue_create(cfg, pipeline, &queue, &err) != M2P_OK) {
        goto done;
    }
    m2p_queue_set_lease(queue, lease);
    if (m2p_queue_start(queue, &err) != M2P_OK) {
        goto done;
    }
    (void)printf("mus2pic: worker ready (%d threads, lease %.0f s)\n", cfg->workers, lease);
    (void)fflush(stdout);
    int sig = 0;
    (void)sigwait(&stop, &sig);
    (void)fprintf(stderr, "mus2pic worker: stopping (signal %d): running jobs go back to the queue\n", sig);
    status = M2P_EXIT_OK;
done:
    if (status != M2P_EXIT_OK) {
        m2p_cli_print_error(&err);
    }
    m2p_queue_free(queue);
    m2p_pipeline_free(pipeline);
    return status;
}
