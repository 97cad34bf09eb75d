/*
 * cli/cmd_doctor.c — `mus2pic doctor`: what is installed and what is missing,
 * each line with what to do about it. Exit 0 when everything needed for the
 * embedded defaults works (a missing model is not an error: sonic renders
 * without one), 1 otherwise.
 */
#include <libavformat/avformat.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "audio/fetch.h"
#include "cli/cli.h"
#include "core/fs.h"
#include "diffusion/taesd.h"
#include "render/backend.h"
#include "store/store.h"

static void line(const char *status, const char *what, const char *detail) {
    (void)printf("  [%-4s] %-10s %s\n", status, what, detail);
}

int m2p_cmd_doctor(m2p_config *cfg, int argc, char **argv) {
    (void)argv;
    if (argc > 1) {
        (void)fprintf(stderr, "mus2pic doctor: takes no arguments\n");
        return M2P_EXIT_USAGE;
    }
    int problems = 0;
    char buf[2048];
    m2p_error err;
    (void)printf("mus2pic %s\n", M2P_VERSION);

    m2p_error_clear(&err);
    if (m2p_fs_mkdirs(cfg->data_dir, &err) == M2P_OK && access(cfg->data_dir, W_OK) == 0) {
        line("ok", "data", cfg->data_dir);
    } else {
        line("FAIL", "data", m2p_error_format(&err, buf, sizeof buf));
        problems++;
    }

    m2p_store *store = NULL;
    m2p_error_clear(&err);
    if (m2p_store_open(cfg, &store, &err) == M2P_OK) {
        char db[M2P_PATH_MAX];
        (void)snprintf(buf, sizeof buf, "%s (schema %d)", m2p_config_db_path(cfg, db, sizeof db),
                       m2p_store_schema_version(store));
        line("ok", "database", buf);
        m2p_store_close(store);
    } else {
        line("FAIL", "database", m2p_error_format(&err, buf, sizeof buf));
        problems++;
    }

    char path[M2P_PATH_MAX], version[64];
    m2p_error_clear(&err);
    if (m2p_fetch_ytdlp_check(cfg, path, sizeof path, version, sizeof version, &err) == M2P_OK) {
        (void)snprintf(buf, sizeof buf, "%s (%s)", path, version);
        line("ok", "yt-dlp", buf);
        /* YouTube now needs a JavaScript runtime beside yt-dlp (deno); fetch puts
         * yt-dlp's folder first on its PATH. */
        char deno[M2P_PATH_MAX + 8];
        const char *slash = strrchr(path, '/');
        (void)snprintf(deno, sizeof deno, "%.*s/deno", slash ? (int)(slash - path) : 1, slash ? path : ".");
        if (access(deno, X_OK) == 0) {
            line("ok", "deno", deno);
        } else {
            line("warn", "deno", "no deno beside yt-dlp: YouTube downloads may fail; run `make run` (installs it)");
        }
    } else {
        line("warn", "yt-dlp", m2p_error_format(&err, buf, sizeof buf));
        (void)printf("%17slinks cannot be downloaded; local files and uploads still work\n", "");
    }

    (void)snprintf(buf, sizeof buf, "libavformat %s", av_version_info());
    line("ok", "ffmpeg", buf);

    if (m2p_lcm_weights_present(cfg, path, sizeof path)) {
        (void)snprintf(buf, sizeof buf, "%s (renderer auto → lcm)", path);
        line("ok", "model", buf);
    } else {
        line("info", "model", "no diffusion weights: renderer auto → sonic (procedural, instant).");
        (void)printf("%17sfor the lcm renderer run `mus2pic model pull` or set MUS2PIC_MODEL=/path/to/model\n", "");
    }
    /* TAESD, the draft decoder: a problem only when decoder=taesd asks for it. */
    char tline[2048];
    m2p_taesd_use use = M2P_DECODER_VAE;
    m2p_error derr;
    m2p_error_clear(&derr);
    bool bad_setting = m2p_taesd_parse_decoder(cfg->decoder, &use, &derr) != M2P_OK;
    bool have_taesd = m2p_taesd_describe(cfg, tline, sizeof tline) == M2P_OK;
    size_t tl = strlen(tline);
    if (tl > 0 && tline[tl - 1] == '\n') {
        tline[tl - 1] = '\0';
    }
    const char *tdetail = strncmp(tline, "taesd: ", 7) == 0 ? tline + 7 : tline;
    if (bad_setting) {
        line("FAIL", "decoder", m2p_error_format(&derr, buf, sizeof buf));
        problems++;
    } else if (!have_taesd && use == M2P_DECODER_TAESD) {
        line("FAIL", "taesd", tdetail);
        problems++;
    } else {
        line(have_taesd ? "ok" : "info", "taesd", tdetail);
    }
    (void)printf(problems == 0 ? "everything needed is there\n" : "%d problem(s) found\n", problems);
    return problems == 0 ? M2P_EXIT_OK : M2P_EXIT_FAIL;
}
