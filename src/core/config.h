/*
 * core/config.h — the one configuration of Mus2Pic.
 *
 * Precedence, lowest first: built-in defaults, then a config file, then
 * MUS2PIC_* environment variables, then command-line flags. Every setting is a
 * row of one table (config.c) giving its key, environment variable, type,
 * default and description; `mus2pic config` prints the table and the README's
 * configuration table is generated from it.
 *
 * Config file: the path in MUS2PIC_CONFIG, else <data_dir>/mus2pic.conf when
 * it exists. Lines are `key = value`; '#' starts a comment.
 *
 * m2p_config is a plain value (no heap memory): copy it freely.
 */
#ifndef M2P_CORE_CONFIG_H
#define M2P_CORE_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"

#define M2P_PATH_MAX 1024
#define M2P_DATA_DIR_MAX (M2P_PATH_MAX - 256) /* room for the files under it */

/* Bits of m2p_config.allowed_sites. */
enum { M2P_SITE_YOUTUBE = 1u << 0, M2P_SITE_SOUNDCLOUD = 1u << 1, M2P_SITE_BANDCAMP = 1u << 2 };

typedef struct m2p_config {
    /* paths */
    char data_dir[M2P_PATH_MAX];     /* data_dir: caches, database, images */
    char database_url[M2P_PATH_MAX]; /* "" → <data_dir>/mus2pic.db (SQLite); or postgresql://... */
    char ytdlp[M2P_PATH_MAX];        /* "" → tools/bin/yt-dlp beside the binary's repo, then PATH */
    char model[M2P_PATH_MAX];        /* "" → <data_dir>/models/<model_id>; or a diffusers folder */
    char model_id[256];
    char hf_endpoint[256];
    char taesd[M2P_PATH_MAX]; /* "" → <model>/taesd, else <data_dir>/models/madebyollin/taesd */
    char decoder[16];         /* vae | taesd | auto (lcm renderer) */
    char previews[8];         /* auto | off: live TAESD previews of lcm jobs (auto = when TAESD is installed) */
    /* sources and cache */
    double cache_ttl_days;
    int64_t cache_max_mb;
    double max_duration_s;
    int64_t max_download_mb;
    char allowed_sites_str[128];
    unsigned allowed_sites; /* derived from allowed_sites_str */
    bool unsafe_test_loopback; /* TESTS ONLY: allow http://127.0.0.1 sources via yt-dlp's generic extractor */
    int fetch_retries;
    double fetch_retry_base_s; /* first fetch retry delay; doubles each retry, with jitter */
    /* analysis and rendering */
    int analysis_rate;
    int threads; /* 0 = all cores */
    char renderer[16];
    char style[48];
    int variations;
    int steps;
    double guidance;
    int width;  /* 0 = renderer default */
    int height; /* 0 = renderer default */
    /* server */
    char host[128];
    int port;
    char api_token[256];
    int64_t max_upload_mb;
    double upload_retention_s; /* unused uploads are pruned after this (web/prune) */
    int64_t file_cache_max_mb; /* image-cache/ + audio-cache/ size cap of an API host */
    double prune_interval_s;   /* 0 = no pruning */
    int workers;
    int rate_limit_per_min;
    int max_ws_per_client;
    int max_batch;
    int max_attempts;
    double retry_base_s;        /* first backoff of a transient failure; doubles each attempt */
    int unsafe_test_fail_first; /* TESTS ONLY: the first N attempts of every job fail (fetch_network) */
    /* scale-out */
    char queue[16]; /* local | redis */
    char broker_url[512];
    char worker_role[8]; /* all | cpu (analysis stage only) | gpu (render stage only) */
    /* misc */
    char log_level[16];
} m2p_config;

/* Fills cfg with the built-in defaults only. */
void m2p_config_defaults(m2p_config *cfg);

/* Defaults, then the config file, then the environment. Flags are applied by
 * the caller afterwards with m2p_config_set(). */
m2p_code m2p_config_load(m2p_config *cfg, m2p_error *err) M2P_WUR;

/* Sets one key from text ("cache_max_mb", "512"). Unknown key or bad value →
 * M2P_E_CONFIG naming both. */
m2p_code m2p_config_set(m2p_config *cfg, const char *key, const char *value, m2p_error *err) M2P_WUR;

/* Reads `key = value` lines from path into cfg. */
m2p_code m2p_config_load_file(m2p_config *cfg, const char *path, m2p_error *err) M2P_WUR;

/* Applies MUS2PIC_* variables from the environment. */
m2p_code m2p_config_load_env(m2p_config *cfg, m2p_error *err) M2P_WUR;

/* Recomputes derived fields and checks ranges; called by load/set. */
m2p_code m2p_config_validate(m2p_config *cfg, m2p_error *err) M2P_WUR;

/* Resolved paths: the SQLite file or database URL, the audio cache folder,
 * the image folder. Write into buf (cap bytes) and return buf. */
const char *m2p_config_db_path(const m2p_config *cfg, char *buf, size_t cap);
const char *m2p_config_subdir(const m2p_config *cfg, const char *name, char *buf, size_t cap);

/* Prints the settings table (key, env, value, description) to out;
 * markdown=true prints the README's table with defaults instead of values. */
void m2p_config_print(const m2p_config *cfg, FILE *out, bool markdown);

#endif
