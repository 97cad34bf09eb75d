/*
 * cli/cmd_model.c — `mus2pic model pull [ID] [--fp16] [--retries N]` and
 * `mus2pic model info`.
 *
 * pull: downloads the diffusers files of ID (default: the model_id setting)
 * into <data_dir>/models/ID/ with progress bars on stderr, resuming partial
 * files, checking sizes and SHA-256; prints the folder on stdout. Run it
 * again after an interruption: it resumes.
 * `mus2pic model pull madebyollin/taesd` fetches the TAESD draft decoder the
 * same way (into <data_dir>/models/madebyollin/taesd, where the lcm renderer
 * looks for it).
 * info: says where the model is looked for (MUS2PIC_MODEL or the data
 * folder), whether it is complete, the weight files (size, dtype,
 * parameters) and the main config numbers, then the TAESD line (found or
 * not, and the decoder setting in force). Exit 1 when the model is missing
 * or damaged, with the usual one-line error naming both ways to get it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/term.h"
#include "core/log.h"
#include "diffusion/model.h"
#include "diffusion/pull.h"
#include "diffusion/taesd.h"

static int usage_error(const char *detail) {
    m2p_error err;
    (void)m2p_error_set(&err, M2P_E_USAGE, "%s; usage: mus2pic model pull [ID] [--fp16] [--retries N] | mus2pic model info",
                        detail);
    m2p_cli_print_error(&err);
    return M2P_EXIT_USAGE;
}

static int cmd_pull(m2p_config *cfg, int argc, char **argv) {
    m2p_nn_pull_opts opts = {false, 3};
    const char *id = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--fp16") == 0) {
            opts.fp16 = true;
        } else if (strcmp(argv[i], "--retries") == 0 && i + 1 < argc) {
            char *end = NULL;
            long v = strtol(argv[++i], &end, 10);
            if (end == argv[i] || *end != '\0' || v < 0 || v > 100) {
                return usage_error("--retries takes a number from 0 to 100");
            }
            opts.retries = (int)v;
        } else if (argv[i][0] == '-') {
            return usage_error("unknown option");
        } else if (id == NULL) {
            id = argv[i];
        } else {
            return usage_error("one model ID at most");
        }
    }
    m2p_error err;
    m2p_error_clear(&err);
    if (id != NULL && !m2p_nn_model_id_valid(id)) {
        (void)m2p_error_set(&err, M2P_E_USAGE, "'%.100s' is not a model ID of the form owner/name", id);
        m2p_cli_print_error(&err);
        return M2P_EXIT_USAGE;
    }
    m2p_term term;
    m2p_progress progress;
    m2p_term_init(&term, m2p_log_get_level() >= M2P_LOG_ERROR, &progress);
    char dir[M2P_PATH_MAX];
    m2p_code rc = m2p_nn_pull(cfg, id, &opts, &progress, dir, sizeof dir, &err);
    m2p_term_finish(&term);
    char unet_cfg[M2P_PATH_MAX + 32];
    (void)snprintf(unet_cfg, sizeof unet_cfg, "%s/unet/config.json", dir);
    bool component = rc == M2P_OK && access(unet_cfg, F_OK) != 0 && m2p_taesd_check(dir, NULL) == M2P_OK;
    if (rc == M2P_OK && !component) {
        rc = m2p_nn_model_check(dir, &err);
    }
    if (rc != M2P_OK) {
        m2p_cli_print_error(&err);
        return M2P_EXIT_FAIL;
    }
    (void)printf("%s\n", dir);
    if (component) {
        char tdir[M2P_PATH_MAX];
        (void)m2p_taesd_dir_for(cfg, tdir, sizeof tdir);
        if (strcmp(tdir, dir) != 0) {
            (void)fprintf(stderr, "note: the lcm renderer looks for TAESD in %s; set MUS2PIC_TAESD=%s to use this one\n",
                          tdir, dir);
        }
        (void)fprintf(stderr, "TAESD decoder ready: render drafts with --set decoder=taesd (or MUS2PIC_DECODER=taesd)\n");
        return M2P_EXIT_OK;
    }
    char where[M2P_PATH_MAX];
    (void)m2p_nn_model_dir_for(cfg, where, sizeof where);
    if (strcmp(where, dir) != 0) {
        (void)fprintf(stderr, "note: the lcm renderer uses %s (MUS2PIC_MODEL / model_id); set MUS2PIC_MODEL=%s to use this one\n",
                      where, dir);
    }
    return M2P_EXIT_OK;
}

static int cmd_info(m2p_config *cfg, int argc, char **argv) {
    (void)argv;
    if (argc > 2) {
        return usage_error("model info takes no arguments");
    }
    char buf[4096];
    m2p_code rc = m2p_nn_model_describe(cfg, buf, sizeof buf);
    (void)fputs(buf, stdout);
    char tline[2048];
    m2p_code trc = m2p_taesd_describe(cfg, tline, sizeof tline);
    (void)fputs(tline, stdout);
    (void)printf("decoder: %s\n", cfg->decoder[0] != '\0' ? cfg->decoder : "vae");
    m2p_taesd_use use = M2P_DECODER_VAE;
    m2p_error derr;
    m2p_error_clear(&derr);
    if (m2p_taesd_parse_decoder(cfg->decoder, &use, &derr) != M2P_OK ||
        (use == M2P_DECODER_TAESD && trc != M2P_OK)) {
        if (use == M2P_DECODER_TAESD) {
            (void)m2p_error_set(&derr, trc, "decoder=taesd but TAESD is not usable (see above)");
        }
        m2p_cli_print_error(&derr);
        return M2P_EXIT_FAIL;
    }
    if (rc != M2P_OK) {
        char dir[M2P_PATH_MAX];
        m2p_error err;
        m2p_error_clear(&err);
        (void)m2p_nn_model_dir_for(cfg, dir, sizeof dir);
        if (m2p_nn_model_check(dir, &err) == M2P_OK) {
            (void)m2p_error_set(&err, rc, "in %s", dir);
        }
        m2p_cli_print_error(&err);
        return M2P_EXIT_FAIL;
    }
    return M2P_EXIT_OK;
}

int m2p_cmd_model(m2p_config *cfg, int argc, char **argv) {
    if (argc < 2) {
        return usage_error("missing subcommand");
    }
    if (strcmp(argv[1], "pull") == 0) {
        return cmd_pull(cfg, argc, argv);
    }
    if (strcmp(argv[1], "info") == 0) {
        return cmd_info(cfg, argc, argv);
    }
    return usage_error("unknown subcommand");
}
