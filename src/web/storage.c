/*
 * web/storage.c — the files of an API host that shares only the database with
 * the workers, the probe of uploads, and the pruner.
 *
 * Local copies. With a shared database (PostgreSQL) the workers may run on
 * other hosts: an image or a track's audio whose file is not here is written
 * once from its stored bytes into this host's cache folder (atomically: temp
 * file + rename, so two requests racing both end with the same whole file):
 *   images  <data_dir>/image-cache/<image id>.png      (table image_data)
 *   audio   <data_dir>/audio-cache/<content hash><ext> (table uploads, keyed by
 *           the track's content hash; for an upload that is its SHA-256, and
 *           the job's upload_sha256 is asked for as well)
 * Serving a cached file sets its access time, which the pruner uses as
 * "last used".
 *
 * Probe. An upload is decoded at most ~1 s of audio (8 kHz, bounded wall time)
 * by our FFmpeg decoder before anything is stored: a file that is not audio is
 * refused with upload_not_audio (415) and its temporary file removed.
 *
 * Pruner. A thread of the API process wakes every prune_interval_s and
 *   1. deletes uploads rows older than upload_retention_s that no job uses
 *      (store/blobs.h says what "uses" means);
 *   2. removes files of <data_dir>/uploads/ older than that which no job uses
 *      (and temporary .part- files older than a day);
 *   3. caps image-cache/ + audio-cache/ + peaks/ at file_cache_max_mb, removing
 *      the least recently used files first (access time), and stale temp files.
 * image_data rows need no pruning: they go with their image row (ON DELETE
 * CASCADE; SQLite has foreign keys on).
 */
#define _GNU_SOURCE /* utimensat, O_CLOEXEC */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audio/decode.h"
#include "core/alloc.h"
#include "core/fs.h"
#include "core/log.h"
#include "store/blobs.h"
#include "web/server_int.h"

#define STALE_TMP_S 3600.0      /* temp files of an interrupted write */
#define STALE_PART_S 86400.0    /* upload temp files of a crashed process */
#define PROBE_SECONDS 1.0       /* audio decoded by the upload probe */
#define PROBE_WALL_S 10.0

static bool is_hex64(const char *s) {
    return s != NULL && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

void web_cache_touch(const char *path) {
    struct timespec ts[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}}; /* atime now; mtime (the ETag) kept */
    (void)utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
}

static bool regular_file(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- images ---------------------------------------------------------------------------------- */

m2p_code web_image_cache_path(const m2p_web *w, int64_t id, const char *suffix, char *buf, size_t cap,
                              m2p_error *err) {
    char dir[M2P_PATH_MAX];
    (void)m2p_config_subdir(&w->cfg, "image-cache", dir, sizeof dir);
    int n = snprintf(buf, cap, "%s/%lld.png%s", dir, (long long)id, suffix);
    if (n < 0 || (size_t)n >= cap) {
        /* the server's data_dir is too long: its fault, not a missing image (500, not 404) */
        return m2p_error_set(err, M2P_E_IO, "image %lld: its cache path under '%.200s' exceeds %zu bytes",
                             (long long)id, dir, cap);
    }
    return M2P_OK;
}

m2p_code web_image_local(m2p_web *w, m2p_store *s, int64_t id, const char *path, char *buf, size_t cap,
                         const char **out, m2p_error *err) {
    *out = path;
    if (!m2p_store_is_shared(s) || (path != NULL && regular_file(path))) {
        return M2P_OK;
    }
    m2p_code code = web_image_cache_path(w, id, "", buf, cap, err);
    if (code != M2P_OK) {
        return code;
    }
    *out = buf;
    if (regular_file(buf)) {
        web_cache_touch(buf);
        return M2P_OK;
    }
    unsigned char *png = NULL;
    size_t len = 0;
    code = m2p_store_image_data(s, id, &png, &len, err);
    if (code == M2P_OK) {
        char dir[M2P_PATH_MAX];
        code = m2p_fs_mkdirs(m2p_config_subdir(&w->cfg, "image-cache", dir, sizeof dir), err);
    }
    if (code == M2P_OK) {
        code = m2p_fs_write_atomic(buf, png, len, err);
    }
    m2p_free(png);
    return code;
}

/* ---- track audio ------------------------------------------------------------------------------- */

/* The extension of a track file kept in the cache name (the Content-Type comes from it). */
static const char *audio_ext(const char *path) {
    static const char *const k[] = {".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".webm", ".aac"};
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    for (size_t i = 0; dot != NULL && (slash == NULL || dot > slash) && i < sizeof k / sizeof k[0]; i++) {
        if (strcmp(dot, k[i]) == 0) {
            return k[i];
        }
    }
    return ".bin";
}

m2p_code web_track_local(m2p_web *w, m2p_store *s, int64_t track_id, const m2p_track *t, char *buf, size_t cap,
                         const char **out, m2p_error *err) {
    *out = t->path;
    if (t->path[0] != '\0' && regular_file(t->path)) {
        return M2P_OK;
    }
    if (!m2p_store_is_shared(s)) {
        return m2p_error_set(err, M2P_E_AUDIO_NOT_STORED, "track %lld: its file is gone from this server",
                             (long long)track_id);
    }
    if (!is_hex64(t->content_hash)) {
        return m2p_error_set(err, M2P_E_AUDIO_NOT_STORED, "track %lld has no content hash", (long long)track_id);
    }
    char dir[M2P_PATH_MAX];
    (void)m2p_config_subdir(&w->cfg, "audio-cache", dir, sizeof dir);
    int n = snprintf(buf, cap, "%s/%s%s", dir, t->content_hash, audio_ext(t->path));
    if (n < 0 || (size_t)n >= cap) {
        return m2p_error_set(err, M2P_E_IO, "audio cache path too long");
    }
    *out = buf;
    if (regular_file(buf)) {
        web_cache_touch(buf);
        return M2P_OK;
    }
    unsigned char *bytes = NULL;
    size_t len = 0;
    m2p_code code = m2p_store_upload_get(s, t->content_hash, &bytes, &len, err);
    if (code == M2P_E_NOT_FOUND) {
        /* an upload: its bytes are keyed by the file's SHA-256, which is the
         * content hash today; ask the job that made the track in case they differ */
        char sha[65];
        bool found = false;
        code = m2p_store_track_upload_sha(s, track_id, sha, &found, err);
        if (code == M2P_OK && found && strcmp(sha, t->content_hash) != 0) {
            code = m2p_store_upload_get(s, sha, &bytes, &len, err);
        } else if (code == M2P_OK) {
            code = M2P_E_NOT_FOUND;
        }
        if (code == M2P_E_NOT_FOUND) {
            return m2p_error_set(err, M2P_E_AUDIO_NOT_STORED,
                                 "track %lld: the file is on another host and the database has no copy (%.12s)",
                                 (long long)track_id, t->content_hash);
        }
    }
    if (code == M2P_OK) {
        code = m2p_fs_mkdirs(dir, err);
    }
    if (code == M2P_OK) {
        code = m2p_fs_write_atomic(buf, bytes, len, err);
    }
    m2p_free(bytes);
    return code;
}

/* ---- the upload probe -------------------------------------------------------------------------- */

typedef struct probe_ctx {
    size_t samples, want;
    bool enough;
} probe_ctx;

static m2p_code probe_sink(void *ctx, const float *samples, size_t n) {
    probe_ctx *p = ctx;
    (void)samples;
    p->samples += n;
    if (p->samples >= p->want) {
        p->enough = true;
        return M2P_E_CANCELLED; /* stop decoding: this is audio */
    }
    return M2P_OK;
}

m2p_code web_probe_upload(const m2p_web *w, const char *path, const char *label, m2p_error *err) {
    m2p_decode_opts o;
    m2p_decode_opts_default(&o);
    o.rate = 8000;
    o.max_duration_s = w->cfg.max_duration_s;
    o.min_duration_s = 0;
    o.allow_silent = true;
    o.max_wall_s = PROBE_WALL_S;
    probe_ctx p = {0, (size_t)(PROBE_SECONDS * o.rate), false};
    m2p_decode_sink sink = {probe_sink, &p};
    m2p_error e;
    m2p_error_clear(&e);
    m2p_code rc = m2p_decode_file_stream(path, &o, NULL, &sink, &e);
    if (rc == M2P_OK || (rc == M2P_E_CANCELLED && p.enough)) {
        return M2P_OK;
    }
    switch (rc) {
    case M2P_E_DECODE_FORMAT:
    case M2P_E_DECODE_NO_AUDIO:
    case M2P_E_DECODE_EMPTY:
    case M2P_E_DECODE_FAILED:
        return m2p_error_set(err, M2P_E_UPLOAD_NOT_AUDIO, "%s: %s (%s)", label, m2p_strerror(rc), e.detail);
    case M2P_E_DECODE_TRUNCATED:
        if (p.samples == 0) {
            /* refused before any sample (e.g. a WAV header promising more than the file holds) */
            return m2p_error_set(err, M2P_E_UPLOAD_NOT_AUDIO, "%s: the file is cut short (%s)", label, e.detail);
        }
        return m2p_error_set(err, rc, "%s: %s", label, e.detail);
    case M2P_E_TIMEOUT:
        /* a slow machine is no verdict: the job's decoder decides */
        M2P_WARN("web", "upload probe of %s timed out; accepted", label);
        return M2P_OK;
    default:
        return m2p_error_set(err, rc, "%s: %s", label, e.detail);
    }
}

/* ---- the pruner -------------------------------------------------------------------------------- */

typedef struct cache_file {
    char *path;
    off_t size;
    double used; /* access time */
} cache_file;

typedef struct cache_list {
    cache_file *v;
    size_t n, cap;
    uint64_t total;
} cache_list;

static double ts_seconds(struct timespec t) {
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Adds the regular files of dir; removes temp files of interrupted writes. */
static void cache_scan(const char *dir, double now, cache_list *l, uint64_t *removed) {
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char path[M2P_PATH_MAX + 300];
        int n = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (n < 0 || (size_t)n >= sizeof path || lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        if (strstr(e->d_name, ".tmp.") != NULL) {
            if (now - ts_seconds(st.st_mtim) > STALE_TMP_S && unlink(path) == 0) {
                (*removed)++;
            }
            continue;
        }
        if (l->n == l->cap) {
            size_t cap = l->cap == 0 ? 64 : l->cap * 2;
            cache_file *nv = m2p_realloc(l->v, cap * sizeof *nv);
            if (nv == NULL) {
                break;
            }
            l->v = nv;
            l->cap = cap;
        }
        char *p = m2p_strdup(path);
        if (p == NULL) {
            break;
        }
        double used = ts_seconds(st.st_atim);
        double mod = ts_seconds(st.st_mtim);
        l->v[l->n++] = (cache_file){p, st.st_size, used > mod ? used : mod};
        l->total += (uint64_t)st.st_size;
    }
    (void)closedir(d);
}

static int by_use(const void *a, const void *b) {
    const cache_file *x = a;
    const cache_file *y = b;
    return x->used < y->used ? -1 : x->used > y->used ? 1 : strcmp(x->path, y->path);
}

static void prune_caches(m2p_web *w, double now, web_prune_stats *st) {
    static const char *const k_dirs[] = {"image-cache", "audio-cache", "peaks"};
    cache_list l;
    memset(&l, 0, sizeof l);
    for (size_t i = 0; i < sizeof k_dirs / sizeof k_dirs[0]; i++) {
        char dir[M2P_PATH_MAX];
        cache_scan(m2p_config_subdir(&w->cfg, k_dirs[i], dir, sizeof dir), now, &l, &st->files_removed);
    }
    uint64_t cap = (uint64_t)w->cfg.file_cache_max_mb * 1024u * 1024u;
    if (l.total > cap) {
        qsort(l.v, l.n, sizeof *l.v, by_use);
        for (size_t i = 0; i < l.n && l.total > cap; i++) {
            if (unlink(l.v[i].path) == 0 || errno == ENOENT) {
                l.total -= (uint64_t)l.v[i].size;
                st->files_removed++;
                st->bytes_removed += (uint64_t)l.v[i].size;
            }
        }
    }
    st->cache_bytes = l.total;
    for (size_t i = 0; i < l.n; i++) {
        m2p_free(l.v[i].path);
    }
    m2p_free(l.v);
}

/* Removes an upload file listed as old and unused unless it was used again
 * since: a request storing the same bytes renews the file's time under a
 * shared flock (server.c's finish_uploads), and here the time is read once
 * more under an exclusive one before the unlink. So either that request sees
 * the file gone (and stores its own copy) or this sees the new time (and keeps
 * it); without the lock a file renewed between the listing and the unlink was
 * lost under the job just created for it. *size gets the bytes removed. */
static bool remove_unused_upload(const char *path, double now, double retention, uint64_t *size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return false;
    }
    bool removed = false;
    struct stat held;
    struct stat named;
    if (flock(fd, LOCK_EX) == 0 && fstat(fd, &held) == 0 && held.st_nlink > 0 &&
        now - ts_seconds(held.st_mtim) > retention && lstat(path, &named) == 0 && named.st_ino == held.st_ino &&
        named.st_dev == held.st_dev && unlink(path) == 0) {
        removed = true;
        *size = (uint64_t)held.st_size;
    }
    (void)close(fd); /* releases the lock */
    return removed;
}

/* uploads/<sha256><ext> older than the retention that no job uses (the set of
 * uses is read once, and only when some file is old enough). */
static m2p_code prune_upload_files(m2p_web *w, m2p_store *s, double now, web_prune_stats *st, m2p_error *err) {
    char dir[M2P_PATH_MAX];
    (void)m2p_config_subdir(&w->cfg, "uploads", dir, sizeof dir);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return M2P_OK;
    }
    m2p_code code = M2P_OK;
    m2p_sha256_set used;
    bool have_used = false;
    memset(&used, 0, sizeof used);
    struct dirent *e;
    while (code == M2P_OK && (e = readdir(d)) != NULL) {
        char path[M2P_PATH_MAX + 300];
        int n = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (n < 0 || (size_t)n >= sizeof path || lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            continue;
        }
        double age = now - ts_seconds(sb.st_mtim);
        if (strncmp(e->d_name, ".part-", 6) == 0) {
            if (age > STALE_PART_S && unlink(path) == 0) {
                st->files_removed++;
            }
            continue;
        }
        char sha[65];
        if (strlen(e->d_name) < 64 || (e->d_name[64] != '\0' && e->d_name[64] != '.')) {
            continue;
        }
        memcpy(sha, e->d_name, 64);
        sha[64] = '\0';
        if (!is_hex64(sha) || age <= w->cfg.upload_retention_s) {
            continue;
        }
        if (!have_used) {
            code = m2p_store_uploads_in_use(s, &used, err);
            have_used = code == M2P_OK;
        }
        uint64_t size = 0;
        if (code == M2P_OK && !m2p_sha256_set_has(&used, sha) &&
            remove_unused_upload(path, now, w->cfg.upload_retention_s, &size)) {
            st->files_removed++;
            st->bytes_removed += size;
        }
    }
    (void)closedir(d);
    m2p_sha256_set_free(&used);
    return code;
}

m2p_code web_prune_once(m2p_web *w, m2p_store *s, web_prune_stats *st, m2p_error *err) {
    memset(st, 0, sizeof *st);
    double now = m2p_now_wall();
    int64_t rows = 0;
    m2p_code code = m2p_store_uploads_prune(s, now - w->cfg.upload_retention_s, &rows, err);
    st->upload_rows = rows > 0 ? (uint64_t)rows : 0;
    if (code == M2P_OK) {
        code = prune_upload_files(w, s, now, st, err);
    }
    prune_caches(w, now, st); /* files only: also when the database is down */
    atomic_fetch_add(&w->pruned_rows, st->upload_rows);
    atomic_fetch_add(&w->pruned_files, st->files_removed);
    return code;
}

static void *prune_main(void *arg) {
    m2p_web *w = arg;
    m2p_store *s = NULL;
    (void)pthread_mutex_lock(&w->prune_mu);
    while (!w->prune_stop) {
        (void)pthread_mutex_unlock(&w->prune_mu);
        m2p_error err;
        m2p_error_clear(&err);
        m2p_code code = s != NULL ? M2P_OK : m2p_store_open(&w->cfg, &s, &err);
        web_prune_stats st;
        if (code == M2P_OK) {
            code = web_prune_once(w, s, &st, &err);
            if (code == M2P_OK && (st.upload_rows > 0 || st.files_removed > 0)) {
                M2P_INFO("web", "pruned %llu upload rows, %llu files (%llu bytes); caches hold %llu bytes",
                         (unsigned long long)st.upload_rows, (unsigned long long)st.files_removed,
                         (unsigned long long)st.bytes_removed, (unsigned long long)st.cache_bytes);
            }
        }
        if (code != M2P_OK) {
            M2P_WARN("web", "pruning: %s", err.detail);
        }
        double wait = w->cfg.prune_interval_s;
        struct timespec until;
        (void)clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += (time_t)wait;
        until.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        (void)pthread_mutex_lock(&w->prune_mu);
        while (!w->prune_stop && pthread_cond_timedwait(&w->prune_cv, &w->prune_mu, &until) == 0) {
        }
    }
    (void)pthread_mutex_unlock(&w->prune_mu);
    m2p_store_close(s);
    return NULL;
}

m2p_code web_prune_start(m2p_web *w, m2p_error *err) {
    (void)pthread_mutex_init(&w->prune_mu, NULL);
    pthread_condattr_t ca;
    (void)pthread_condattr_init(&ca);
    (void)pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    (void)pthread_cond_init(&w->prune_cv, &ca);
    (void)pthread_condattr_destroy(&ca);
    w->prune_inited = true;
    if (w->cfg.prune_interval_s <= 0) {
        return M2P_OK;
    }
    if (pthread_create(&w->prune_thread, NULL, prune_main, w) != 0) {
        return m2p_error_set(err, M2P_E_NOMEM, "pruning thread");
    }
    w->prune_running = true;
    return M2P_OK;
}

void web_prune_stop(m2p_web *w) {
    if (!w->prune_inited) {
        return;
    }
    (void)pthread_mutex_lock(&w->prune_mu);
    w->prune_stop = true;
    (void)pthread_cond_broadcast(&w->prune_cv);
    (void)pthread_mutex_unlock(&w->prune_mu);
    if (w->prune_running) {
        (void)pthread_join(w->prune_thread, NULL);
        w->prune_running = false;
    }
    (void)pthread_cond_destroy(&w->prune_cv);
    (void)pthread_mutex_destroy(&w->prune_mu);
    w->prune_inited = false;
}
