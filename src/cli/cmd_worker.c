/*
 * cli/cmd_worker.c — `mus2pic worker [--role all|cpu|gpu] [--threads N] [--lease S] [--warmup]`:
 * a process that runs jobs from the shared queue (database_url =
 * postgresql://...) with the very same pipeline (m2p_pipeline_make) and
 * worker code (jobs/queue.c) as the server's in-process workers, without
 * HTTP. Start as many as the hosts allow; `mus2pic serve --no-workers`
 * enqueues and streams.
 *
 * Each claim holds a lease renewed by heartbeats; a worker killed mid-job
 * (SIGKILL, OOM, power) leaves a lease that expires after S seconds, and
 * another worker takes the job over as its next attempt (jobs/queue.h).
 * Roles (worker_role): cpu workers take only the analyze stage of jobs
 * (fetch, decode, analysis, prompt) and never load the model; gpu workers
 * take only the render stage (render + store from the stored analysis, no
 * audio), warm the renderer before taking jobs and run one job at a time
 * (one job per GPU: the workers setting is not used; --threads N asks for
 * more explicitly); all (default) takes both.
 *
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
                  "mus2pic worker: %s\nusage: mus2pic worker [--role all|cpu|gpu] [--threads N] [--lease SECONDS] "
                  "[--warmup]\n",
                  what);
    return M2P_EXIT_USAGE;
}

int m2p_cmd_worker(m2p_config *cfg, int argc, char **argv) {
    bool warmup = false;
    bool threads_flag = false;
    double lease = M2P_QUEUE_DEFAULT_LEASE_S;
    m2p_error err;
    m2p_error_clear(&err);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--warmup") == 0) {
            warmup = true;
        } else if (strcmp(a, "--role") == 0 && i + 1 < argc) {
            unsigned stages = 0;
            if (!m2p_queue_role_parse(argv[i + 1], &stages)) {
                return usage_error("--role takes all, cpu or gpu");
            }
            if (m2p_config_set(cfg, "worker_role", argv[++i], &err) != M2P_OK) {
                m2p_cli_print_error(&err);
                return M2P_EXIT_USAGE;
            }
        } else if (strcmp(a, "--threads") == 0 && i + 1 < argc) {
            threads_flag = true;
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
            (void)printf("usage: mus2pic worker [--role all|cpu|gpu] [--threads N] [--lease SECONDS] [--warmup]\n"
                         "Runs jobs from the shared queue; needs MUS2PIC_DATABASE_URL=postgresql://...\n"
                         "(docs/deploy.md). --role: cpu takes the analysis of jobs only (never loads the\n"
                         "model), gpu their rendering only (renderer warmed at start), all both (default:\n"
                         "the worker_role setting); --threads: jobs at once (default: the workers setting;\n"
                         "a gpu worker runs one job at a time unless --threads is given);\n"
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

    unsigned stages = M2P_STAGES_ALL;
    if (!m2p_queue_role_parse(cfg->worker_role, &stages)) {
        return usage_error("worker_role takes all, cpu or gpu");
    }
    if (stages == M2P_STAGES_ANALYZE && warmup) {
        M2P_INFO("cli", "--warmup ignored: a cpu worker never loads the model");
        warmup = false;
    } else if (stages == M2P_STAGES_RENDER) {
        warmup = true; /* a gpu worker maps and warms its model once, before its first job */
        if (!threads_flag) {
            cfg->workers = 1; /* one job at a time per GPU */
        }
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
    if (warm_name != NULL) {
        m2p_queue_note_renderer(queue, warm_name);
    }
    if (m2p_queue_start(queue, &err) != M2P_OK) {
        goto done;
    }
    (void)printf("mus2pic: worker ready (role %s, %d threads, lease %.0f s%s%s)\n",
                 cfg->worker_role[0] != '\0' ? cfg->worker_role : "all", cfg->workers, lease,
                 warm_name != NULL ? ", renderer " : "", warm_name != NULL ? warm_name : "");
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
