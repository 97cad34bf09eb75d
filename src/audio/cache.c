/*
 * audio/cache.c — the audio cache under <data_dir>/audio/.
 *
 * Layout, one entry per key (a video id, "soundcloud:a/b", an upload hash):
 *   <stem>.audio   the audio file as downloaded (its mtime = when it was stored)
 *   <stem>.json    the metadata sidecar (its mtime = last use, touched by get)
 *   <stem>.lock    the per-key flock file
 *   .tmp-<stem>.<pid>.<n>   downloads in progress (same folder: put is a rename)
 * where <stem> is the key's safe characters (at most 48) + "-" + 12 hex digits
 * of its SHA-256, so any key maps to one plain file name.
 *
 * Invariants:
 *  - An entry exists exactly when both <stem>.audio and <stem>.json exist and
 *    the sidecar's size matches the file; the sidecar is written last (after
 *    the audio file's rename), so readers never see half an entry. Anything
 *    else (orphan audio, orphan sidecar, temp files) belongs to a writer that
 *    holds the key's lock, or is garbage from a dead one and is removed by
 *    m2p_cache_open when the key's lock is free.
 *  - Lock files are removed on unlock when the key has no entry (failed
 *    downloads leave nothing) and with their entry on eviction/expiry.
 *  - Files of an entry are only created or removed while holding its key lock
 *    (put's caller holds it; eviction and expiry take it without blocking and
 *    skip busy keys). Lock files are unlinked only while held; lock_key checks
 *    that the file it locked is still the one at the path, and retries.
 *  - TTL counts from when the entry was stored; eviction is least recently
 *    used first (sidecar mtime) until the total is under cache_max_mb, never
 *    touching an entry used in the last 5 s (its reader may be opening it).
 * Thread-safe: the struct is read-only after open except the counters (mutex).
 */
#define _GNU_SOURCE
#include "audio/cache.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/fs.h"
#include "core/log.h"

#define STEM_MAX 72
#define SIDECAR_MAX ((size_t)64 * 1024)
#define KEY_MAX 256
#define EVICT_GRACE_S 5.0 /* entries used this recently are not evicted */

struct m2p_cache {
    char dir[M2P_PATH_MAX];
    double ttl_s;
    uint64_t max_bytes;
    pthread_mutex_t mu; /* guards the counters below */
    uint64_t hits, misses, evictions;
    atomic_uint tmp_counter;
};

struct m2p_cache_lock {
    int fd;
    char lock_path[M2P_PATH_MAX + 96];
    char json_path[M2P_PATH_MAX + 96];
};

/* ---- names --------------------------------------------------------------------------------- */

static m2p_code key_stem(const char *key, char stem[STEM_MAX], m2p_error *err) {
    size_t n = key != NULL ? strlen(key) : 0;
    if (n == 0 || n > KEY_MAX) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "cache key must be 1..%d characters", KEY_MAX);
    }
    char hex[65];
    m2p_sha256_hex(key, n, hex);
    size_t j = 0;
    for (size_t i = 0; i < n && j < 48; i++) {
        char c = key[i];
        stem[j++] = (isalnum((unsigned char)c) || c == '-' || c == '_') ? c : '_';
    }
    (void)snprintf(stem + j, STEM_MAX - j, "-%.12s", hex);
    return M2P_OK;
}

static m2p_code entry_path(const m2p_cache *c, const char *stem, const char *ext, char *buf, size_t cap,
                           m2p_error *err) {
    int n = snprintf(buf, cap, "%s/%s%s", c->dir, stem, ext);
    if (n < 0 || (size_t)n >= cap) {
        return m2p_error_set(err, M2P_E_IO, "cache path too long");
    }
    return M2P_OK;
}

/* ---- locks --------------------------------------------------------------------------------- */

/* Locks <stem>.lock; nonblocking → *busy=true when someone else holds it. */
static m2p_code lock_stem(m2p_cache *c, const char *stem, bool block, m2p_cache_lock **out, bool *busy,
                          m2p_error *err) {
    *out = NULL;
    if (busy != NULL) {
        *busy = false;
    }
    /* Allocated first, so running out of memory leaves no lock file behind. */
    m2p_cache_lock *l = m2p_malloc(sizeof *l);
    if (l == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "cache lock");
    }
    m2p_code rc = entry_path(c, stem, ".lock", l->lock_path, sizeof l->lock_path, err);
    if (rc == M2P_OK && entry_path(c, stem, ".json", l->json_path, sizeof l->json_path, NULL) != M2P_OK) {
        l->json_path[0] = '\0';
    }
    for (int attempt = 0; rc == M2P_OK; attempt++) {
        if (attempt == 100) {
            rc = m2p_error_set(err, M2P_E_CACHE_LOCK, "lock file %s keeps changing", l->lock_path);
            break;
        }
        int fd = open(l->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            rc = m2p_error_set(err, M2P_E_CACHE_LOCK, "cannot open %s: %s", l->lock_path, strerror(errno));
            break;
        }
        int r;
        do {
            r = flock(fd, LOCK_EX | (block ? 0 : LOCK_NB));
        } while (r != 0 && errno == EINTR);
        if (r != 0) {
            int e = errno;
            (void)close(fd);
            if (!block && e == EWOULDBLOCK) {
                if (busy != NULL) {
                    *busy = true;
                }
                rc = M2P_E_CACHE_LOCK;
            } else {
                rc = m2p_error_set(err, M2P_E_CACHE_LOCK, "flock %s: %s", l->lock_path, strerror(e));
            }
            break;
        }
        /* The file may have been unlinked (and recreated) by whoever held it. */
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(l->lock_path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
            l->fd = fd;
            *out = l;
            return M2P_OK;
        }
        (void)close(fd);
    }
    m2p_free(l);
    return rc;
}

m2p_code m2p_cache_lock_key(m2p_cache *c, const char *key, m2p_cache_lock **out, m2p_error *err) {
    *out = NULL;
    char stem[STEM_MAX];
    m2p_code rc = key_stem(key, stem, err);
    if (rc != M2P_OK) {
        return rc;
    }
    return lock_stem(c, stem, true, out, NULL, err);
}

m2p_code m2p_cache_try_lock_key(m2p_cache *c, const char *key, m2p_cache_lock **out, m2p_error *err) {
    *out = NULL;
    char stem[STEM_MAX];
    m2p_code rc = key_stem(key, stem, err);
    if (rc != M2P_OK) {
        return rc;
    }
    bool busy = false;
    rc = lock_stem(c, stem, false, out, &busy, err);
    if (busy) {
        return m2p_error_set(err, M2P_E_CACHE_LOCK, "another download of this song is running");
    }
    return rc;
}

void m2p_cache_unlock(m2p_cache_lock *l) {
    if (l == NULL) {
        return;
    }
    /* No entry for this key (a failed or refused download): drop the lock file
     * too, while still holding it, so failures leave nothing behind. Waiters
     * that opened it re-check the inode after locking and start over. */
    struct stat st, mine, at_path;
    if (l->json_path[0] != '\0' && stat(l->json_path, &st) != 0 && errno == ENOENT && fstat(l->fd, &mine) == 0 &&
        stat(l->lock_path, &at_path) == 0 && mine.st_ino == at_path.st_ino && mine.st_dev == at_path.st_dev) {
        (void)unlink(l->lock_path); /* only holders unlink, so the path is still ours */
    }
    (void)close(l->fd); /* releases the flock */
    m2p_free(l);
}

/* Removes every file of an entry; the caller holds its lock (remove_lockfile
 * also unlinks the lock file, which is safe only while holding it). */
static void remove_entry_files(m2p_cache *c, const char *stem, bool remove_lockfile) {
    static const char *k_ext[] = {".json", ".audio", ".lock"};
    for (size_t i = 0; i < 3; i++) {
        if (i == 2 && !remove_lockfile) {
            break;
        }
        char path[M2P_PATH_MAX + 96];
        if (entry_path(c, stem, k_ext[i], path, sizeof path, NULL) == M2P_OK) {
            (void)unlink(path);
        }
    }
}

/* Removes an entry if nobody holds its lock; true when removed. */
static bool try_remove_entry(m2p_cache *c, const char *stem) {
    m2p_cache_lock *l = NULL;
    bool busy = false;
    if (lock_stem(c, stem, false, &l, &busy, NULL) != M2P_OK) {
        return false;
    }
    remove_entry_files(c, stem, true);
    m2p_cache_unlock(l);
    return true;
}

/* ---- open / close -------------------------------------------------------------------------- */

/* The stem a file name belongs to: ".tmp-<stem>.…" or "<stem>.…". */
static bool name_stem(const char *name, char stem[STEM_MAX]) {
    const char *s = name;
    if (strncmp(s, ".tmp-", 5) == 0) {
        s += 5;
    } else if (s[0] == '.') {
        return false;
    }
    size_t n = strcspn(s, ".");
    if (n == 0 || n >= STEM_MAX || s[n] != '.') {
        return false;
    }
    memcpy(stem, s, n);
    stem[n] = '\0';
    return true;
}

static bool file_exists(const m2p_cache *c, const char *stem, const char *ext) {
    char path[M2P_PATH_MAX + 96];
    struct stat st;
    return entry_path(c, stem, ext, path, sizeof path, NULL) == M2P_OK && stat(path, &st) == 0;
}

/* Removes temp files and half entries whose key lock is free (their writer died). */
static void clean_stale(m2p_cache *c) {
    DIR *d = opendir(c->dir);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char stem[STEM_MAX];
        if (!name_stem(e->d_name, stem)) {
            continue;
        }
        bool is_tmp = strncmp(e->d_name, ".tmp-", 5) == 0 || strstr(e->d_name, ".tmp.") != NULL;
        bool half = false;
        size_t n = strlen(e->d_name);
        if (!is_tmp && n > 6 && strcmp(e->d_name + n - 6, ".audio") == 0) {
            half = !file_exists(c, stem, ".json");
        } else if (!is_tmp && n > 5 && strcmp(e->d_name + n - 5, ".json") == 0) {
            half = !file_exists(c, stem, ".audio");
        }
        if (!is_tmp && !half) {
            continue;
        }
        m2p_cache_lock *l = NULL;
        bool busy = false;
        if (lock_stem(c, stem, false, &l, &busy, NULL) != M2P_OK) {
            continue;
        }
        char path[M2P_PATH_MAX + 300];
        int w = snprintf(path, sizeof path, "%s/%s", c->dir, e->d_name);
        if (w > 0 && (size_t)w < sizeof path) {
            M2P_DEBUG("cache", "removing stale %s", e->d_name);
            (void)unlink(path);
        }
        m2p_cache_unlock(l);
    }
    (void)closedir(d);
}

m2p_code m2p_cache_open(const m2p_config *cfg, m2p_cache **out, m2p_error *err) {
    *out = NULL;
    m2p_code rc = M2P_OK;
    m2p_cache *c = m2p_calloc(1, sizeof *c);
    if (c == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "cache");
    }
    if (cfg->data_dir[0] == '\0') {
        rc = m2p_error_set(err, M2P_E_CONFIG, "data_dir is empty");
        goto fail;
    }
    if (strlen(cfg->data_dir) > M2P_PATH_MAX - 256) {
        /* entry paths add "/audio/<key>.<ext>" (≤ 200 bytes) and must fit M2P_PATH_MAX */
        rc = m2p_error_set(err, M2P_E_CONFIG, "data_dir is longer than %d characters", M2P_PATH_MAX - 256);
        goto fail;
    }
    int n = snprintf(c->dir, sizeof c->dir, "%s/audio", cfg->data_dir);
    if (n < 0 || (size_t)n >= sizeof c->dir - 100) {
        rc = m2p_error_set(err, M2P_E_CONFIG, "data_dir is too long");
        goto fail;
    }
    rc = m2p_fs_mkdirs(c->dir, err);
    if (rc != M2P_OK) {
        goto fail;
    }
    c->ttl_s = cfg->cache_ttl_days * 86400.0;
    c->max_bytes = cfg->cache_max_mb > 0 ? (uint64_t)cfg->cache_max_mb * 1024u * 1024u : 0;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        rc = m2p_error_set(err, M2P_E_INTERNAL, "mutex");
        goto fail;
    }
    atomic_init(&c->tmp_counter, 0);
    clean_stale(c);
    *out = c;
    return M2P_OK;
fail:
    m2p_free(c);
    return rc;
}

void m2p_cache_close(m2p_cache *c) {
    if (c == NULL) {
        return;
    }
    (void)pthread_mutex_destroy(&c->mu);
    m2p_free(c);
}

/* ---- get ----------------------------------------------------------------------------------- */

/* Copies src into dst (cap bytes), truncating. Paths cannot be truncated in
 * practice: m2p_cache_open refuses data folders long enough for that. */
static void copy_str(char *dst, size_t cap, const char *src) {
    size_t n = src != NULL ? strlen(src) : 0;
    if (n >= cap) {
        n = cap - 1;
    }
    if (n > 0) {
        memcpy(dst, src, n);
    }
    dst[n] = '\0';
}

static void count(m2p_cache *c, uint64_t *counter) {
    (void)pthread_mutex_lock(&c->mu);
    (*counter)++;
    (void)pthread_mutex_unlock(&c->mu);
}

static m2p_source_kind kind_from_name(const char *name) {
    static const m2p_source_kind k_kinds[] = {M2P_SOURCE_FILE,       M2P_SOURCE_UPLOAD,   M2P_SOURCE_YOUTUBE,
                                              M2P_SOURCE_SOUNDCLOUD, M2P_SOURCE_BANDCAMP, M2P_SOURCE_TEST_LOOPBACK};
    for (size_t i = 0; i < sizeof k_kinds / sizeof k_kinds[0]; i++) {
        if (name != NULL && strcmp(name, m2p_source_kind_name(k_kinds[i])) == 0) {
            return k_kinds[i];
        }
    }
    return M2P_SOURCE_FILE;
}

bool m2p_cache_get(m2p_cache *c, const char *key, m2p_track *track) {
    char stem[STEM_MAX];
    char json_path[M2P_PATH_MAX + 96], audio_path[M2P_PATH_MAX + 96];
    if (key_stem(key, stem, NULL) != M2P_OK ||
        entry_path(c, stem, ".json", json_path, sizeof json_path, NULL) != M2P_OK ||
        entry_path(c, stem, ".audio", audio_path, sizeof audio_path, NULL) != M2P_OK) {
        count(c, &c->misses);
        return false;
    }
    char *text = NULL;
    size_t len = 0;
    if (m2p_fs_read_file(json_path, SIDECAR_MAX, &text, &len, NULL) != M2P_OK) {
        count(c, &c->misses);
        return false;
    }
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    m2p_free(text);
    struct stat st;
    bool ok = root != NULL && json_is_object(root) && stat(audio_path, &st) == 0 && S_ISREG(st.st_mode);
    if (ok) {
        json_t *size = json_object_get(root, "size");
        const char *k = json_string_value(json_object_get(root, "key"));
        ok = json_is_integer(size) && (long long)st.st_size == (long long)json_integer_value(size) && k != NULL &&
             strcmp(k, key) == 0;
    }
    if (!ok) {
        M2P_WARN("cache", "damaged entry %s removed", stem);
        (void)try_remove_entry(c, stem);
        json_decref(root);
        count(c, &c->misses);
        return false;
    }
    double stored = (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec * 1e-9;
    if (m2p_now_wall() - stored >= c->ttl_s) {
        M2P_DEBUG("cache", "entry %s expired", stem);
        (void)try_remove_entry(c, stem);
        json_decref(root);
        count(c, &c->misses);
        return false;
    }
    (void)utimensat(AT_FDCWD, json_path, NULL, 0); /* last use = now */
    memset(track, 0, sizeof *track);
    track->kind = kind_from_name(json_string_value(json_object_get(root, "kind")));
    copy_str(track->source, sizeof track->source, json_string_value(json_object_get(root, "source")));
    copy_str(track->video_id, sizeof track->video_id, json_string_value(json_object_get(root, "video_id")));
    copy_str(track->title, sizeof track->title, json_string_value(json_object_get(root, "title")));
    copy_str(track->uploader, sizeof track->uploader, json_string_value(json_object_get(root, "uploader")));
    copy_str(track->content_hash, sizeof track->content_hash, json_string_value(json_object_get(root, "content_hash")));
    track->duration_s = json_number_value(json_object_get(root, "duration_s"));
    copy_str(track->path, sizeof track->path, audio_path);
    track->cache_hit = true;
    json_decref(root);
    count(c, &c->hits);
    return true;
}

/* ---- put and eviction ---------------------------------------------------------------------- */

typedef struct entry_info {
    char stem[STEM_MAX];
    double last_use; /* -1 when expired (sorts first) */
    bool recent;     /* used within EVICT_GRACE_S: a reader may be opening it */
    uint64_t size;
} entry_info;

static int by_last_use(const void *a, const void *b) {
    const entry_info *x = a;
    const entry_info *y = b;
    return x->last_use < y->last_use ? -1 : x->last_use > y->last_use ? 1 : strcmp(x->stem, y->stem);
}

/* Lists complete entries (sidecar + audio). *out owned by the caller (m2p_free). */
static m2p_code list_entries(m2p_cache *c, entry_info **out, size_t *count_out, m2p_error *err) {
    *out = NULL;
    *count_out = 0;
    DIR *d = opendir(c->dir);
    if (d == NULL) {
        return m2p_error_set(err, M2P_E_IO, "cannot read %s: %s", c->dir, strerror(errno));
    }
    entry_info *v = NULL;
    size_t n = 0, cap = 0;
    m2p_code rc = M2P_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        char stem[STEM_MAX];
        if (e->d_name[0] == '.' || len <= 5 || strcmp(e->d_name + len - 5, ".json") != 0 ||
            !name_stem(e->d_name, stem) || strlen(stem) + 5 != len) {
            continue;
        }
        char jp[M2P_PATH_MAX + 96], ap[M2P_PATH_MAX + 96];
        struct stat js, as;
        if (entry_path(c, stem, ".json", jp, sizeof jp, NULL) != M2P_OK ||
            entry_path(c, stem, ".audio", ap, sizeof ap, NULL) != M2P_OK || stat(jp, &js) != 0 || stat(ap, &as) != 0) {
            continue;
        }
        if (n == cap) {
            size_t ncap = cap == 0 ? 64 : cap * 2;
            entry_info *nv = m2p_realloc(v, ncap * sizeof *nv);
            if (nv == NULL) {
                rc = m2p_error_set(err, M2P_E_NOMEM, "cache listing");
                break;
            }
            v = nv;
            cap = ncap;
        }
        memcpy(v[n].stem, stem, sizeof stem);
        v[n].last_use = (double)js.st_mtim.tv_sec + (double)js.st_mtim.tv_nsec * 1e-9;
        v[n].recent = m2p_now_wall() - v[n].last_use < EVICT_GRACE_S;
        v[n].size = (uint64_t)as.st_size;
        /* Expired entries sort first: they go before any fresh one. */
        double stored = (double)as.st_mtim.tv_sec + (double)as.st_mtim.tv_nsec * 1e-9;
        if (m2p_now_wall() - stored >= c->ttl_s) {
            v[n].last_use = -1.0;
        }
        n++;
    }
    (void)closedir(d);
    if (rc != M2P_OK) {
        m2p_free(v);
        return rc;
    }
    *out = v;
    *count_out = n;
    return M2P_OK;
}

/* Removes expired entries, then least recently used ones until the total is
 * under the cap. keep_stem (just stored), busy entries (locked) and entries
 * used in the last EVICT_GRACE_S seconds (get() just handed their path to a
 * reader that is about to open it) are never removed; the total may then stay
 * over the cap until the next put. */
static void evict(m2p_cache *c, const char *keep_stem) {
    entry_info *v = NULL;
    size_t n = 0;
    if (list_entries(c, &v, &n, NULL) != M2P_OK) {
        return;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += v[i].size;
    }
    qsort(v, n, sizeof *v, by_last_use);
    for (size_t i = 0; i < n; i++) {
        bool expired = v[i].last_use < 0;
        if (!expired && total <= c->max_bytes) {
            break;
        }
        if (strcmp(v[i].stem, keep_stem) == 0 || v[i].recent) {
            continue;
        }
        if (try_remove_entry(c, v[i].stem)) {
            M2P_INFO("cache", "evicted %s (%s)", v[i].stem, expired ? "expired" : "over the size cap");
            total -= v[i].size;
            count(c, &c->evictions);
        }
    }
    m2p_free(v);
}

m2p_code m2p_cache_put(m2p_cache *c, const char *key, const char *tmp_path, m2p_track *track, m2p_error *err) {
    char stem[STEM_MAX];
    char json_path[M2P_PATH_MAX + 96], audio_path[M2P_PATH_MAX + 96];
    m2p_code rc = key_stem(key, stem, err);
    if (rc != M2P_OK) {
        return rc;
    }
    rc = entry_path(c, stem, ".json", json_path, sizeof json_path, err);
    if (rc == M2P_OK) {
        rc = entry_path(c, stem, ".audio", audio_path, sizeof audio_path, err);
    }
    if (rc != M2P_OK) {
        return rc;
    }
    struct stat st;
    if (stat(tmp_path, &st) != 0 || !S_ISREG(st.st_mode)) {
        return m2p_error_set(err, M2P_E_IO, "downloaded file %s is missing", tmp_path);
    }
    if (st.st_size == 0) {
        return m2p_error_set(err, M2P_E_FETCH_FAILED, "the downloaded file is empty");
    }
    rc = m2p_fs_sha256_file(tmp_path, track->content_hash, err);
    if (rc != M2P_OK) {
        return rc;
    }
    (void)utimensat(AT_FDCWD, tmp_path, NULL, 0); /* stored now: the TTL counts from here */
    if (rename(tmp_path, audio_path) != 0) {
        return m2p_error_set(err, M2P_E_IO, "cannot store %s: %s", audio_path, strerror(errno));
    }
    json_t *root =
        json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:s, s:I, s:f}", "version", 1, "key", key, "kind",
                  m2p_source_kind_name(track->kind), "source", track->source, "video_id", track->video_id, "title",
                  track->title, "uploader", track->uploader, "duration_s", track->duration_s, "content_hash",
                  track->content_hash, "size", (json_int_t)st.st_size, "created", m2p_now_wall());
    char *text = root != NULL ? json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    if (text == NULL) {
        (void)unlink(audio_path);
        return m2p_error_set(err, M2P_E_NOMEM, "cache metadata (title or uploader not UTF-8?)");
    }
    rc = m2p_fs_write_atomic(json_path, text, strlen(text), err);
    free(text); /* jansson's allocator */
    if (rc != M2P_OK) {
        (void)unlink(audio_path);
        return rc;
    }
    copy_str(track->path, sizeof track->path, audio_path);
    evict(c, stem);
    return M2P_OK;
}

m2p_code m2p_cache_tmp_path(m2p_cache *c, const char *key, char *buf, size_t cap, m2p_error *err) {
    char stem[STEM_MAX];
    m2p_code rc = key_stem(key, stem, err);
    if (rc != M2P_OK) {
        return rc;
    }
    unsigned n = atomic_fetch_add(&c->tmp_counter, 1u);
    int w = snprintf(buf, cap, "%s/.tmp-%s.%ld.%u", c->dir, stem, (long)getpid(), n);
    if (w < 0 || (size_t)w >= cap) {
        return m2p_error_set(err, M2P_E_IO, "cache temp path too long");
    }
    return M2P_OK;
}

/* ---- uploads ------------------------------------------------------------------------------- */

static m2p_code write_all(const char *path, const void *data, size_t len, m2p_error *err) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        return m2p_error_set(err, M2P_E_IO, "cannot create %s: %s", path, strerror(errno));
    }
    const unsigned char *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            int e = errno;
            (void)close(fd);
            (void)unlink(path);
            return m2p_error_set(err, M2P_E_IO, "cannot write %s: %s", path, strerror(e));
        }
        done += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        (void)unlink(path);
        return m2p_error_set(err, M2P_E_IO, "cannot write %s", path);
    }
    return M2P_OK;
}

m2p_code m2p_cache_put_upload(m2p_cache *c, const void *data, size_t len, const char *name, m2p_track *out,
                              m2p_error *err) {
    memset(out, 0, sizeof *out);
    if (len == 0) {
        return m2p_error_set(err, M2P_E_UPLOAD_EMPTY, NULL);
    }
    char hash[65];
    m2p_sha256_hex(data, len, hash);
    m2p_cache_lock *lock = NULL;
    m2p_code rc = m2p_cache_lock_key(c, hash, &lock, err);
    if (rc != M2P_OK) {
        return rc;
    }
    if (m2p_cache_get(c, hash, out)) {
        m2p_cache_unlock(lock);
        return M2P_OK;
    }
    char tmp[M2P_PATH_MAX + 128];
    rc = m2p_cache_tmp_path(c, hash, tmp, sizeof tmp, err);
    if (rc == M2P_OK) {
        rc = write_all(tmp, data, len, err);
    }
    if (rc == M2P_OK) {
        out->kind = M2P_SOURCE_UPLOAD;
        copy_str(out->video_id, sizeof out->video_id, hash);
        copy_str(out->source, sizeof out->source, name != NULL ? name : "upload");
        copy_str(out->title, sizeof out->title, name != NULL ? name : "");
        rc = m2p_cache_put(c, hash, tmp, out, err);
        if (rc != M2P_OK) {
            (void)unlink(tmp);
        }
    }
    m2p_cache_unlock(lock);
    return rc;
}

/* ---- stats --------------------------------------------------------------------------------- */

void m2p_cache_get_stats(m2p_cache *c, m2p_cache_stats *out) {
    memset(out, 0, sizeof *out);
    entry_info *v = NULL;
    size_t n = 0;
    if (list_entries(c, &v, &n, NULL) == M2P_OK) {
        out->entries = n;
        for (size_t i = 0; i < n; i++) {
            out->bytes += v[i].size;
        }
        m2p_free(v);
    }
    (void)pthread_mutex_lock(&c->mu);
    out->hits = c->hits;
    out->misses = c->misses;
    out->evictions = c->evictions;
    (void)pthread_mutex_unlock(&c->mu);
}
