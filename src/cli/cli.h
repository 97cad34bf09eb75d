/*
 * cli/cli.h — the subcommands of `mus2pic`. Each lives in its own file under
 * src/cli/ and is listed in main.c's table. A command returns the process
 * exit status: 0 success, 1 a failure of the job (one clear line printed),
 * 2 a usage error.
 */
#ifndef M2P_CLI_CLI_H
#define M2P_CLI_CLI_H

#include "core/config.h"
#include "core/error.h"

enum { M2P_EXIT_OK = 0, M2P_EXIT_FAIL = 1, M2P_EXIT_USAGE = 2 };

/* Prints one clear line for err on stderr: "mus2pic: error CODE: message (detail). Hint: ..." */
void m2p_cli_print_error(const m2p_error *err);

/* Common option handling: consumes --set KEY=VALUE, --data-dir DIR, -v/--verbose,
 * -q/--quiet from argv (compacting it) and applies them to cfg.
 * Returns M2P_OK or a config/usage error. */
m2p_code m2p_cli_common_options(m2p_config *cfg, int *argc, char **argv, m2p_error *err) M2P_WUR;

int m2p_cmd_config(m2p_config *cfg, int argc, char **argv);
int m2p_cmd_analyze(m2p_config *cfg, int argc, char **argv);
int m2p_cmd_prompt(m2p_config *cfg, int argc, char **argv);
int m2p_cmd_make(m2p_config *cfg, int argc, char **argv);
int m2p_cmd_styles(m2p_config *cfg, int argc, char **argv);
int m2p_cmd_demo_song(m2p_config *cfg, int argc, char **argv);
int m2p_cmd_doctor(m2p_config *cfg, int argc, char **argv);
int m2p_cmd_model(m2p_config *cfg, int argc, char **argv);
int m2p_cmd_serve(m2p_config *cfg, int argc, char **argv);
int m2p_cmd_worker(m2p_config *cfg, int argc, char **argv);

#endif
