/*
 * core/config.c — table-driven settings: defaults, file, environment, flags.
 */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

typedef enum opt_type { OPT_STR, OPT_INT, OPT_I64, OPT_DBL, OPT_BOOL } opt_type;

typedef struct opt {
    const char *key;
    opt_type type;
    size_t offset;
    size_t size; /* for strings */
    const char *def;
    double min, max; /* numeric range */
    const char *desc;
} opt;

#define S(field) OPT_STR, offsetof(m2p_config, field), sizeof(((m2p_config *)0)->field)
#define N(t, field) t, offsetof(m2p_config, field), 0

static const opt k_opts[] = {
    {"data_dir", S(data_dir), "", 0, 0, "where caches, the database and images live (default $XDG_DATA_HOME/mus2pic or ~/.local/share/mus2pic)"},
    {"database_url", S(database_url), "", 0, 0, "SQLite file path (default <data_dir>/mus2pic.db) or postgresql://user@host/db"},
    {"ytdlp", S(ytdlp), "", 0, 0, "path of yt-dlp (default: tools/bin/yt-dlp of the checkout, then PATH)"},
    {"model", S(model), "", 0, 0, "diffusers model folder for the lcm renderer (default <data_dir>/models/<model_id>)"},
    {"model_id", S(model_id), "SimianLuo/LCM_Dreamshaper_v7", 0, 0, "model that `mus2pic model pull` downloads"},
    {"hf_endpoint", S(hf_endpoint), "https://huggingface.co", 0, 0, "where `mus2pic model pull` downloads from"},
    {"taesd", S(taesd), "", 0, 0, "TAESD folder, the fast draft decoder (default <model>/taesd, else <data_dir>/models/madebyollin/taesd)"},
    {"decoder", S(decoder), "vae", 0, 0, "image decoder of the lcm renderer: vae (full quality), taesd (fast draft) or auto (taesd when installed)"},
    {"previews", S(previews), "auto", 0, 0, "live previews of lcm jobs in the web app: auto (one small TAESD image per denoising step when TAESD is installed) or off"},
    {"cache_ttl_days", N(OPT_DBL, cache_ttl_days), "7", 0, 3650, "days a downloaded song stays in the audio cache"},
    {"cache_max_mb", N(OPT_I64, cache_max_mb), "2048", 1, 1e7, "total size cap of the audio cache (least recently used evicted first)"},
    {"max_duration_s", N(OPT_DBL, max_duration_s), "900", 1, 86400, "longest song accepted, in seconds"},
    {"max_download_mb", N(OPT_I64, max_download_mb), "100", 1, 1e5, "largest download accepted, counted while downloading"},
    {"allowed_sites", S(allowed_sites_str), "youtube", 0, 0, "comma list of youtube, soundcloud, bandcamp"},
    {"unsafe_test_loopback", N(OPT_BOOL, unsafe_test_loopback), "false", 0, 1, "TESTS ONLY: accept http://127.0.0.1 sources through yt-dlp's generic extractor"},
    {"fetch_retries", N(OPT_INT, fetch_retries), "3", 0, 10, "retries of network and rate-limit failures (exponential backoff with jitter)"},
    {"analysis_rate", N(OPT_INT, analysis_rate), "22050", 8000, 48000, "sample rate of the analysis, Hz"},
    {"threads", N(OPT_INT, threads), "0", 0, 256, "worker threads for analysis and inference (0 = all cores)"},
    {"renderer", S(renderer), "auto", 0, 0, "auto (lcm when weights are there, else sonic), sonic or lcm"},
    {"style", S(style), "abstract", 0, 0, "default style preset"},
    {"variations", N(OPT_INT, variations), "4", 1, 16, "images per job"},
    {"steps", N(OPT_INT, steps), "4", 1, 50, "denoising steps of the lcm renderer"},
    {"guidance", N(OPT_DBL, guidance), "8", 1, 30, "guidance scale of the lcm renderer"},
    {"width", N(OPT_INT, width), "0", 0, 4096, "image width (0 = renderer default: sonic 1024, lcm 512)"},
    {"height", N(OPT_INT, height), "0", 0, 4096, "image height (0 = renderer default)"},
    {"host", S(host), "127.0.0.1", 0, 0, "address the server binds (anything but loopback requires api_token)"},
    {"port", N(OPT_INT, port), "8000", 0, 65535, "port the server listens on"},
    {"api_token", S(api_token), "", 0, 0, "token required by the API (header Authorization: Bearer, or cookie m2p_token)"},
    {"max_upload_mb", N(OPT_I64, max_upload_mb), "100", 1, 1e5, "largest upload accepted, enforced while streaming"},
    {"upload_retention_s", N(OPT_DBL, upload_retention_s), "604800", 1, 1e9, "seconds an upload that no job uses any more is kept (database uploads table and uploads/ folder)"},
    {"file_cache_max_mb", N(OPT_I64, file_cache_max_mb), "2048", 1, 1e7, "size cap of a server's image-cache/, audio-cache/ and peaks/ folders together (least recently served removed first)"},
    {"prune_interval_s", N(OPT_DBL, prune_interval_s), "600", 0, 86400, "how often the server prunes old uploads and its caches (0 = never)"},
    {"workers", N(OPT_INT, workers), "1", 1, 64, "in-process job workers of the server"},
    {"rate_limit_per_min", N(OPT_INT, rate_limit_per_min), "60", 0, 1e6, "job creations per client per minute (0 = off)"},
    {"max_ws_per_client", N(OPT_INT, max_ws_per_client), "16", 1, 1000, "open WebSockets per client address"},
    {"max_batch", N(OPT_INT, max_batch), "50", 1, 1000, "items per batch"},
    {"max_attempts", N(OPT_INT, max_attempts), "3", 1, 20, "attempts per job before it fails for good"},
    {"queue", S(queue), "local", 0, 0, "local (in-process, persistent in the database) or redis"},
    {"broker_url", S(broker_url), "redis://127.0.0.1:6379", 0, 0, "Redis URL of the distributed queue"},
    {"worker_role", S(worker_role), "all", 0, 0, "which job stages this process's workers take: all, cpu (fetch, decode, analysis, prompt; never loads the model) or gpu (render and store, one job at a time; model warmed at start)"},
    {"log_level", S(log_level), "warn", 0, 0, "debug, info, warn, error or off"},
    {"retry_base_s", N(OPT_DBL, retry_base_s), "2", 0, 3600, "first retry delay of a transient job failure (doubles each attempt, with jitter)"},
    {"unsafe_test_fail_first", N(OPT_INT, unsafe_test_fail_first), "0", 0, 100, "TESTS ONLY: the first N attempts of every server job fail with a transient network error"},
    {"fetch_retry_base_s", N(OPT_DBL, fetch_retry_base_s), "1", 0, 600, "first delay before retrying a failed download (doubles each retry, with jitter)"},
};

#undef S
#undef N

#define N_OPTS (sizeof k_opts / sizeof k_opts[0])

static const opt *find_opt(const char *key) {
    for (size_t i = 0; i < N_OPTS; i++) {
        if (strcmp(k_opts[i].key, key) == 0) {
            return &k_opts[i];
        }
    }
    return NULL;
}

static m2p_code set_opt(m2p_config *cfg, const opt *o, const char *value, m2p_error *err) {
    char *base = (char *)cfg + o->offset;
    char *end = NULL;
    switch (o->type) {
    case OPT_STR: {
        size_t len = strlen(value);
        if (len >= o->size) {
            return m2p_error_set(err, M2P_E_CONFIG, "%s: value longer than %zu characters", o->key, o->size - 1);
        }
        memcpy(base, value, len + 1);
        return M2P_OK;
    }
    case OPT_BOOL: {
        bool b;
        if (strcasecmp(value, "1") == 0 || strcasecmp(value, "true") == 0 || strcasecmp(value, "yes") == 0 ||
            strcasecmp(value, "on") == 0) {
            b = true;
        } else if (strcasecmp(value, "0") == 0 || strcasecmp(value, "false") == 0 || strcasecmp(value, "no") == 0 ||
                   strcasecmp(value, "off") == 0 || value[0] == '\0') {
            b = false;
        } else {
            return m2p_error_set(err, M2P_E_CONFIG, "%s: '%s' is not true or false", o->key, value);
        }
        memcpy(base, &b, sizeof b);
        return M2P_OK;
    }
    case OPT_INT:
    case OPT_I64: {
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0') {
            return m2p_error_set(err, M2P_E_CONFIG, "%s: '%s' is not a whole number", o->key, value);
        }
        if ((double)v < o->min || (double)v > o->max) {
            return m2p_error_set(err, M2P_E_CONFIG, "%s: %lld is outside %.0f..%.0f", o->key, v, o->min, o->max);
        }
        if (o->type == OPT_INT) {
            int iv = (int)v;
            memcpy(base, &iv, sizeof iv);
        } else {
            int64_t lv = (int64_t)v;
            memcpy(base, &lv, sizeof lv);
        }
        return M2P_OK;
    }
    case OPT_DBL: {
        errno = 0;
        double v = strtod(value, &end);
        if (errno != 0 || end == value || *end != '\0' || !isfinite(v)) {
            return m2p_error_set(err, M2P_E_CONFIG, "%s: '%s' is not a number", o->key, value);
        }
        if (v < o->min || v > o->max) {
            return m2p_error_set(err, M2P_E_CONFIG, "%s: %g is outside %g..%g", o->key, v, o->min, o->max);
        }
        memcpy(base, &v, sizeof v);
        return M2P_OK;
    }
    }
    return m2p_error_set(err, M2P_E_INTERNAL, "bad option type");
}

static void default_data_dir(char *buf, size_t cap) {
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    if (xdg != NULL && xdg[0] == '/') {
        (void)snprintf(buf, cap, "%s/mus2pic", xdg);
    } else if (home != NULL && home[0] == '/') {
        (void)snprintf(buf, cap, "%s/.local/share/mus2pic", home);
    } else {
        (void)snprintf(buf, cap, "./mus2pic-data");
    }
}

void m2p_config_defaults(m2p_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_OPTS; i++) {
        m2p_code rc = set_opt(cfg, &k_opts[i], k_opts[i].def, NULL);
        (void)rc; /* built-in defaults are valid by construction (checked by tests) */
    }
    default_data_dir(cfg->data_dir, sizeof cfg->data_dir);
    cfg->allowed_sites = M2P_SITE_YOUTUBE;
}

m2p_code m2p_config_validate(m2p_config *cfg, m2p_error *err) {
    unsigned sites = 0;
    char tmp[sizeof cfg->allowed_sites_str];
    memcpy(tmp, cfg->allowed_sites_str, sizeof tmp);
    char *save = NULL;
    for (char *tok = strtok_r(tmp, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
        if (strcasecmp(tok, "youtube") == 0) {
            sites |= M2P_SITE_YOUTUBE;
        } else if (strcasecmp(tok, "soundcloud") == 0) {
            sites |= M2P_SITE_SOUNDCLOUD;
        } else if (strcasecmp(tok, "bandcamp") == 0) {
            sites |= M2P_SITE_BANDCAMP;
        } else {
            return m2p_error_set(err, M2P_E_CONFIG, "allowed_sites: unknown site '%s' (use youtube, soundcloud, bandcamp)",
                                 tok);
        }
    }
    cfg->allowed_sites = sites;
    if (strcmp(cfg->renderer, "auto") != 0 && strcmp(cfg->renderer, "sonic") != 0 &&
        strcmp(cfg->renderer, "lcm") != 0) {
        return m2p_error_set(err, M2P_E_CONFIG, "renderer: '%s' is not auto, sonic or lcm", cfg->renderer);
    }
    if (strcmp(cfg->decoder, "vae") != 0 && strcmp(cfg->decoder, "taesd") != 0 &&
        strcmp(cfg->decoder, "auto") != 0) {
        return m2p_error_set(err, M2P_E_CONFIG, "decoder takes vae, taesd or auto (not '%s')", cfg->decoder);
    }
    if (strcmp(cfg->previews, "auto") != 0 && strcmp(cfg->previews, "off") != 0) {
        return m2p_error_set(err, M2P_E_CONFIG, "previews takes auto or off (not '%s')", cfg->previews);
    }
    if (strcmp(cfg->worker_role, "all") != 0 && strcmp(cfg->worker_role, "cpu") != 0 &&
        strcmp(cfg->worker_role, "gpu") != 0) {
        return m2p_error_set(err, M2P_E_CONFIG, "worker_role takes all, cpu or gpu (not '%s')", cfg->worker_role);
    }
    if (strcmp(cfg->queue, "local") != 0 && strcmp(cfg->queue, "redis") != 0) {
        return m2p_error_set(err, M2P_E_CONFIG, "queue: '%s' is not local or redis", cfg->queue);
    }
    static const char *levels[] = {"debug", "info", "warn", "error", "off"};
    bool level_ok = false;
    for (size_t i = 0; i < 5; i++) {
        level_ok = level_ok || strcasecmp(cfg->log_level, levels[i]) == 0;
    }
    if (!level_ok) {
        return m2p_error_set(err, M2P_E_CONFIG, "log_level: '%s' is not debug, info, warn, error or off", cfg->log_level);
    }
    if (cfg->data_dir[0] == '\0') {
        default_data_dir(cfg->data_dir, sizeof cfg->data_dir);
    }
    /* Paths under it (<data_dir>/image-cache/<id>.png.thumb.webp, ...) must fit M2P_PATH_MAX:
     * refuse a data_dir that leaves them no room rather than truncate them later. */
    if (strlen(cfg->data_dir) > M2P_DATA_DIR_MAX) {
        return m2p_error_set(err, M2P_E_CONFIG, "data_dir is %zu bytes long (at most %d): choose a shorter folder",
                             strlen(cfg->data_dir), M2P_DATA_DIR_MAX);
    }
    return M2P_OK;
}

m2p_code m2p_config_set(m2p_config *cfg, const char *key, const char *value, m2p_error *err) {
    const opt *o = find_opt(key);
    if (o == NULL) {
        return m2p_error_set(err, M2P_E_CONFIG, "unknown setting '%s' (run `mus2pic config` for the list)", key);
    }
    /* All or nothing: a refused value leaves the configuration as it was (it
     * holds no pointers, so a copy is a full copy). */
    m2p_config next = *cfg;
    m2p_code rc = set_opt(&next, o, value, err);
    if (rc == M2P_OK) {
        rc = m2p_config_validate(&next, err);
    }
    if (rc == M2P_OK) {
        *cfg = next;
    }
    return rc;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) {
        s[--n] = '\0';
    }
    return s;
}

m2p_code m2p_config_load_file(m2p_config *cfg, const char *path, m2p_error *err) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return m2p_error_set(err, M2P_E_CONFIG, "cannot read config file %s: %s", path, strerror(errno));
    }
    char line[2048];
    int lineno = 0;
    m2p_code rc = M2P_OK;
    while (fgets(line, sizeof line, f) != NULL) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash != NULL) {
            *hash = '\0';
        }
        char *s = trim(line);
        if (*s == '\0') {
            continue;
        }
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            rc = m2p_error_set(err, M2P_E_CONFIG, "%s:%d: expected `key = value`", path, lineno);
            break;
        }
        *eq = '\0';
        char *key = trim(s);
        char *value = trim(eq + 1);
        size_t vlen = strlen(value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
            value[vlen - 1] = '\0';
            value++;
        }
        rc = m2p_config_set(cfg, key, value, err);
        if (rc != M2P_OK) {
            if (err != NULL) {
                char detail[sizeof err->detail];
                memcpy(detail, err->detail, sizeof detail);
                (void)m2p_error_set(err, rc, "%s:%d: %s", path, lineno, detail);
            }
            break;
        }
    }
    (void)fclose(f);
    return rc;
}

m2p_code m2p_config_load_env(m2p_config *cfg, m2p_error *err) {
    for (size_t i = 0; i < N_OPTS; i++) {
        char name[96] = "MUS2PIC_";
        size_t j = strlen(name);
        for (const char *k = k_opts[i].key; *k != '\0' && j + 1 < sizeof name; k++) {
            name[j++] = (char)toupper((unsigned char)*k);
        }
        name[j] = '\0';
        const char *v = getenv(name);
        if (v == NULL) {
            continue;
        }
        m2p_code rc = m2p_config_set(cfg, k_opts[i].key, v, err);
        if (rc != M2P_OK) {
            if (err != NULL) {
                char detail[sizeof err->detail];
                memcpy(detail, err->detail, sizeof detail);
                (void)m2p_error_set(err, rc, "%s: %s", name, detail);
            }
            return rc;
        }
    }
    return M2P_OK;
}

m2p_code m2p_config_load(m2p_config *cfg, m2p_error *err) {
    m2p_config_defaults(cfg);
    /* data_dir may come from the environment and decides where the file is. */
    const char *dd = getenv("MUS2PIC_DATA_DIR");
    if (dd != NULL && dd[0] != '\0') {
        m2p_code rc = m2p_config_set(cfg, "data_dir", dd, err);
        if (rc != M2P_OK) {
            return rc;
        }
    }
    const char *file = getenv("MUS2PIC_CONFIG");
    char path[M2P_PATH_MAX + 32];
    if (file != NULL && file[0] != '\0') {
        m2p_code rc = m2p_config_load_file(cfg, file, err);
        if (rc != M2P_OK) {
            return rc;
        }
    } else {
        (void)snprintf(path, sizeof path, "%s/mus2pic.conf", cfg->data_dir);
        struct stat st;
        if (stat(path, &st) == 0) {
            m2p_code rc = m2p_config_load_file(cfg, path, err);
            if (rc != M2P_OK) {
                return rc;
            }
        }
    }
    return m2p_config_load_env(cfg, err);
}

const char *m2p_config_db_path(const m2p_config *cfg, char *buf, size_t cap) {
    if (cfg->database_url[0] != '\0') {
        (void)snprintf(buf, cap, "%s", cfg->database_url);
    } else {
        (void)snprintf(buf, cap, "%s/mus2pic.db", cfg->data_dir);
    }
    return buf;
}

const char *m2p_config_subdir(const m2p_config *cfg, const char *name, char *buf, size_t cap) {
    (void)snprintf(buf, cap, "%s/%s", cfg->data_dir, name);
    return buf;
}

static void value_text(const m2p_config *cfg, const opt *o, char *buf, size_t cap) {
    const char *base = (const char *)cfg + o->offset;
    switch (o->type) {
    case OPT_STR:
        (void)snprintf(buf, cap, "%s", base);
        break;
    case OPT_BOOL: {
        bool b;
        memcpy(&b, base, sizeof b);
        (void)snprintf(buf, cap, "%s", b ? "true" : "false");
        break;
    }
    case OPT_INT: {
        int v;
        memcpy(&v, base, sizeof v);
        (void)snprintf(buf, cap, "%d", v);
        break;
    }
    case OPT_I64: {
        int64_t v;
        memcpy(&v, base, sizeof v);
        (void)snprintf(buf, cap, "%lld", (long long)v);
        break;
    }
    case OPT_DBL: {
        double v;
        memcpy(&v, base, sizeof v);
        (void)snprintf(buf, cap, "%g", v);
        break;
    }
    }
}

void m2p_config_print(const m2p_config *cfg, FILE *out, bool markdown) {
    if (markdown) {
        (void)fprintf(out, "| key | environment | default | what it does |\n|---|---|---|---|\n");
    }
    for (size_t i = 0; i < N_OPTS; i++) {
        const opt *o = &k_opts[i];
        char env[96] = "MUS2PIC_";
        size_t j = strlen(env);
        for (const char *k = o->key; *k != '\0' && j + 1 < sizeof env; k++) {
            env[j++] = (char)toupper((unsigned char)*k);
        }
        env[j] = '\0';
        if (markdown) {
            (void)fprintf(out, "| `%s` | `%s` | `%s` | %s |\n", o->key, env, o->def, o->desc);
        } else {
            char v[M2P_PATH_MAX];
            value_text(cfg, o, v, sizeof v);
            (void)fprintf(out, "%-20s %-30s %s\n", o->key, env, v);
        }
    }
}
