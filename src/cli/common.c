/*
 * cli/common.c — options every subcommand accepts, and the one-line error printer.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/log.h"
#include "diffusion/ops.h"

void m2p_cli_print_error(const m2p_error *err) {
    char line[1024];
    (void)fprintf(stderr, "mus2pic: %s\n", m2p_error_format(err, line, sizeof line));
}

m2p_code m2p_cli_common_options(m2p_config *cfg, int *argc, char **argv, m2p_error *err) {
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--set") == 0 || strcmp(a, "--data-dir") == 0) {
            if (i + 1 >= *argc) {
                return m2p_error_set(err, M2P_E_USAGE, "%s needs a value", a);
            }
            const char *v = argv[++i];
            if (strcmp(a, "--data-dir") == 0) {
                m2p_code rc = m2p_config_set(cfg, "data_dir", v, err);
                if (rc != M2P_OK) {
                    return rc;
                }
                continue;
            }
            const char *eq = strchr(v, '=');
            if (eq == NULL || eq == v) {
                return m2p_error_set(err, M2P_E_USAGE, "--set needs KEY=VALUE, got '%s'", v);
            }
            char key[64];
            size_t klen = (size_t)(eq - v);
            if (klen >= sizeof key) {
                return m2p_error_set(err, M2P_E_CONFIG, "unknown setting '%.*s'", (int)klen, v);
            }
            memcpy(key, v, klen);
            key[klen] = '\0';
            m2p_code rc = m2p_config_set(cfg, key, eq + 1, err);
            if (rc != M2P_OK) {
                return rc;
            }
            continue;
        }
        if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            m2p_log_set_level(M2P_LOG_INFO);
            continue;
        }
        if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            m2p_log_set_level(M2P_LOG_ERROR);
            continue;
        }
        argv[out++] = argv[i];
    }
    argv[out] = NULL;
    *argc = out;
    /* `threads` (config file, MUS2PIC_THREADS or --set threads=N): OpenMP loops and OpenBLAS
     * of this process; 0 keeps the default (all cores, or OMP_NUM_THREADS). */
    m2p_nn_set_threads(cfg->threads);
    return M2P_OK;
}
