/*
 * cli/cmd_serve.c — `mus2pic serve [--host H] [--port P] [--warmup]`: the
 * pipeline, the persistent job queue and the HTTP/WebSocket server in one
 * process.
 *
 * Start: the pipeline is created once (with --warmup its renderer is created
 * up front, so the first job pays no model load), the queue recovers jobs a
 * previous process left running, workers start, the server binds and prints
 * "mus2pic: serving on http://HOST:PORT/" on stdout (port 0 picks a free one).
 * Stop (SIGINT/SIGTERM): stop accepting, close live sockets, ask running jobs
 * to stop at their next step and put them back in the queue, then exit 0.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/daemon.h"
#include "core/fs.h"
#include "core/log.h"
#include "jobs/queue.h"
#include "pipeline/pipeline.h"
#include "web/web.h"

static int usage_error(const char *what) {
    (void)fprintf(stderr, "mus2pic serve: %s\nusage: mus2pic serve [--host H] [--port P] [--warmup]\n", what);
    return M2P_EXIT_USAGE;
}

int m2p_cmd_serve(m2p_config *cfg, int argc, char **argv) {
    bool warmup = false;
    bool no_workers = false;
    const char *warm_name = NULL;
    m2p_error err;
    m2p_error_clear(&err);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--warmup") == 0) {
            warmup = true;
        } else if (strcmp(a, "--no-workers") == 0) {
            no_workers = true; /* API only: `mus2pic worker` processes run the jobs (shared database) */
        } else if ((strcmp(a, "--host") == 0 || strcmp(a, "--port") == 0) && i + 1 < argc) {
            if (m2p_config_set(cfg, a + 2, argv[++i], &err) != M2P_OK) {
                m2p_cli_print_error(&err);
                return M2P_EXIT_USAGE;
            }
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            (void)printf("usage: mus2pic serve [--host H] [--port P] [--warmup] [--no-workers]\n"
                         "Serves the web app and the API (docs/api.md). Settings: workers, api_token,\n"
                         "max_upload_mb, rate_limit_per_min, max_ws_per_client, max_batch, max_attempts.\n");
            return M2P_EXIT_OK;
        } else {
            return usage_error(a);
        }
    }

    /* Block the stop signals in every thread; this one waits for them. */
    sigset_t stop;
    m2p_cli_block_stop_signals(&stop);

    int status = M2P_EXIT_FAIL;
    m2p_pipeline *pipeline = NULL;
    m2p_queue *queue = NULL;
    m2p_web *web = NULL;
    if (m2p_cli_pipeline_start(cfg, warmup, &pipeline, &warm_name, &err) != M2P_OK) {
        goto done;
    }
    if (m2p_queue_create(cfg, pipeline, &queue, &err) != M2P_OK) {
        goto done;
    }
    if (warm_name != NULL) {
        m2p_queue_note_renderer(queue, warm_name);
    }
    if (m2p_web_start(cfg, queue, pipeline, &web, &err) != M2P_OK) {
        goto done;
    }
    if (no_workers && !m2p_queue_is_shared(queue)) {
        (void)m2p_error_set(&err, M2P_E_CONFIG,
                            "--no-workers needs the shared database (MUS2PIC_DATABASE_URL=postgresql://...)");
        goto done;
    }
    if (m2p_queue_start_workers(queue, no_workers ? 0 : cfg->workers, &err) != M2P_OK) {
        goto done;
    }
    const char *host = cfg->host;
    bool v6 = strchr(host, ':') != NULL;
    (void)printf("mus2pic: serving on http://%s%s%s:%d/\n", v6 ? "[" : "", host, v6 ? "]" : "", m2p_web_port(web));
    (void)fflush(stdout);
    int sig = 0;
    (void)sigwait(&stop, &sig);
    (void)fprintf(stderr, "mus2pic: stopping (signal %d): finishing the current step of running jobs\n", sig);
    status = M2P_EXIT_OK;
done:
    if (status != M2P_EXIT_OK) {
        m2p_cli_print_error(&err);
    }
    m2p_web_stop(web);
    m2p_queue_free(queue);
    m2p_pipeline_free(pipeline);
    return status;
}
