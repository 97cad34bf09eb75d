/*
 * main.c — `mus2pic`: the CLI and the server in one binary.
 *
 * Loads the configuration (defaults, file, MUS2PIC_* environment), then hands
 * the remaining arguments to the subcommand named first. Each subcommand
 * lives in src/cli/.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/config.h"
#include "core/log.h"

typedef struct command {
    const char *name;
    int (*run)(m2p_config *cfg, int argc, char **argv);
    const char *usage;
} command;

static const command k_commands[] = {
    {"analyze", m2p_cmd_analyze, "analyze SOURCE [--json]                      understand a song: tempo, key, mood, sections"},
    {"prompt", m2p_cmd_prompt, "prompt SOURCE [--style S] [--template T] [--json]  the prompt and why"},
    {"make", m2p_cmd_make,
     "make SOURCE [-n N] [--style S] [--template T] [--renderer auto|sonic|lcm] [--size WxH]\n"
     "       [--steps N] [--seed N] [--per-section] [--layout] [--out DIR] [--json]   posters from a song"},
    {"styles", m2p_cmd_styles, "styles                                       list the style presets"},
    {"demo-song", m2p_cmd_demo_song, "demo-song OUT.wav [--tempo BPM] [--key K] [--mode M] [--seconds N] [--seed N]"},
    {"doctor", m2p_cmd_doctor, "doctor                                       check yt-dlp, the model, the database"},
    {"config", m2p_cmd_config, "config [--markdown]                          print the settings in force"},
    {"model", m2p_cmd_model, "model pull [ID] [--fp16] [--retries N] | model info   download / describe the diffusion model"},
    {"serve", m2p_cmd_serve, "serve [--host H] [--port P] [--warmup]      the web app, API and job queue"},
    {"worker", m2p_cmd_worker, "worker [--threads N] [--lease S]    runs jobs from the shared queue (PostgreSQL)"},
};

static void usage(FILE *out) {
    (void)fprintf(out, "mus2pic %s — turn music into pictures\n\nusage: mus2pic COMMAND [options]\n\ncommands:\n",
                  M2P_VERSION);
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++) {
        (void)fprintf(out, "  %s\n", k_commands[i].usage);
    }
    (void)fprintf(out,
                  "\ncommon options: --set KEY=VALUE (any setting), --data-dir DIR, -v/--verbose, -q/--quiet\n"
                  "settings: `mus2pic config` lists every key and its MUS2PIC_* variable.\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? M2P_EXIT_USAGE : M2P_EXIT_OK;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        (void)printf("mus2pic %s\n", M2P_VERSION);
        return M2P_EXIT_OK;
    }
    m2p_config cfg;
    m2p_error err;
    m2p_error_clear(&err);
    if (m2p_config_load(&cfg, &err) != M2P_OK) {
        m2p_cli_print_error(&err);
        return M2P_EXIT_FAIL;
    }
    m2p_log_level level;
    if (m2p_log_parse_level(cfg.log_level, &level)) {
        m2p_log_set_level(level);
    }
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++) {
        if (strcmp(argv[1], k_commands[i].name) == 0) {
            int sub_argc = argc - 1;
            char **sub_argv = argv + 1;
            if (m2p_cli_common_options(&cfg, &sub_argc, sub_argv, &err) != M2P_OK) {
                m2p_cli_print_error(&err);
                return M2P_EXIT_USAGE;
            }
            return k_commands[i].run(&cfg, sub_argc, sub_argv);
        }
    }
    (void)m2p_error_set(&err, M2P_E_USAGE, "unknown command '%s'", argv[1]);
    m2p_cli_print_error(&err);
    return M2P_EXIT_USAGE;
}
