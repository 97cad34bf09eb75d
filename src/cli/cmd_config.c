/*
 * cli/cmd_config.c — `mus2pic config [--markdown]`: the settings in force.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int m2p_cmd_config(m2p_config *cfg, int argc, char **argv) {
    bool markdown = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--markdown") == 0) {
            markdown = true;
        } else {
            (void)fprintf(stderr, "mus2pic config: unknown option '%s'\n", argv[i]);
            return M2P_EXIT_USAGE;
        }
    }
    m2p_config_print(cfg, stdout, markdown);
    return M2P_EXIT_OK;
}
