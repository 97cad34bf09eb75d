/*
 * tests/unit/audio/test_audio_cache.c — the audio cache: metadata round trip,
 * TTL expiry, LRU eviction order under the size cap, one download for two
 * threads and for two processes asking for the same key, aborted downloads
 * leaving nothing, uploads stored once by content hash.
 */
#include "test_util.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "audio/cache.h"
#include "core/alloc.h"
#include "core/config.h"
#include "core/fs.h"

typedef struct fixture {
    char dir[64];
    m2p_config cfg;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    m2p_test_tmpdir(f->dir, sizeof f->dir);
    m2p_config_defaults(&f->cfg);
    snprintf(f->cfg.data_dir, sizeof f->cfg.data_dir, "%s", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    m2p_test_rmdir(f->dir);
    free(f);
    return 0;
}

/* Simulates a download: size bytes of a pattern into the cache's temp path, then put. */
static void store(m2p_cache *c, const char *key, size_t size, const char *title) {
    char tmp[1200];
    assert_int_equal(m2p_cache_tmp_path(c, key, tmp, sizeof tmp, NULL), M2P_OK);
    FILE *fp = fopen(tmp, "wb");
    assert_non_null(fp);
    for (size_t i = 0; i < size; i++) {
        fputc((int)((i * 7 + strlen(key)) & 0xff), fp);
    }
    fclose(fp);
    m2p_track t;
    memset(&t, 0, sizeof t);
    t.kind = M2P_SOURCE_YOUTUBE;
    snprintf(t.source, sizeof t.source, "https://www.youtube.com/watch?v=%s", key);
    snprintf(t.video_id, sizeof t.video_id, "%s", key);
    snprintf(t.title, sizeof t.title, "%s", title);
    snprintf(t.uploader, sizeof t.uploader, "Uploader");
    t.duration_s = 212.5;
    m2p_error err;
    assert_int_equal(m2p_cache_put(c, key, tmp, &t, &err), M2P_OK);
    assert_true(access(tmp, F_OK) != 0); /* moved, not copied */
    assert_int_equal(access(t.path, R_OK), 0);
}

/* Sets a file's mtime to now - age_s. */
static void set_age(const char *path, double age_s) {
    struct timespec ts[2];
    double t = m2p_now_wall() - age_s;
    ts[0].tv_sec = (time_t)t;
    ts[0].tv_nsec = 0;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* <stem>.json beside <stem>.audio */
static void sidecar_of(const char *audio, char *buf, size_t cap) {
    size_t n = strlen(audio);
    assert_true(n > 6 && strcmp(audio + n - 6, ".audio") == 0);
    snprintf(buf, cap, "%.*s.json", (int)(n - 6), audio);
}

static void test_roundtrip(void **state) {
    fixture *f = *state;
    m2p_cache *c = NULL;
    assert_int_equal(m2p_cache_open(&f->cfg, &c, NULL), M2P_OK);
    m2p_track t;
    assert_false(m2p_cache_get(c, "dQw4w9WgXcQ", &t));
    store(c, "dQw4w9WgXcQ", 1000, "Never \"Gonna\" Give — You Up");
    assert_true(m2p_cache_get(c, "dQw4w9WgXcQ", &t));
    assert_true(t.cache_hit);
    assert_int_equal(t.kind, M2P_SOURCE_YOUTUBE);
    assert_string_equal(t.title, "Never \"Gonna\" Give — You Up");
    assert_string_equal(t.uploader, "Uploader");
    assert_string_equal(t.video_id, "dQw4w9WgXcQ");
    assert_string_equal(t.source, "https://www.youtube.com/watch?v=dQw4w9WgXcQ");
    assert_true(t.duration_s == 212.5);
    char hex[65];
    assert_int_equal(m2p_fs_sha256_file(t.path, hex, NULL), M2P_OK);
    assert_string_equal(t.content_hash, hex);
    assert_non_null(strstr(t.path, "/audio/"));
    /* Keys with any characters map to one plain file in the cache folder. */
    store(c, "soundcloud:artist/../../track", 10, "x");
    assert_true(m2p_cache_get(c, "soundcloud:artist/../../track", &t));
    assert_non_null(strstr(t.path, "/audio/soundcloud_artist_______track-"));
    assert_false(m2p_cache_get(c, "soundcloud:artist/track", &t));
    m2p_cache_stats st;
    m2p_cache_get_stats(c, &st);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.bytes, 1010);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 2);
    m2p_cache_lock *l = NULL;
    assert_int_equal(m2p_cache_lock_key(c, "", &l, NULL), M2P_E_INVALID_ARG);
    m2p_cache_close(c);
    m2p_cache_close(NULL);
    m2p_cache_unlock(NULL);
}

static void test_ttl_expiry(void **state) {
    fixture *f = *state;
    f->cfg.cache_ttl_days = 7;
    m2p_cache *c = NULL;
    assert_int_equal(m2p_cache_open(&f->cfg, &c, NULL), M2P_OK);
    store(c, "aaaaaaaaaaa", 100, "a");
    store(c, "bbbbbbbbbbb", 100, "b");
    m2p_track t;
    assert_true(m2p_cache_get(c, "aaaaaaaaaaa", &t));
    char a_audio[1100];
    snprintf(a_audio, sizeof a_audio, "%s", t.path);
    set_age(a_audio, 6.9 * 86400); /* still fresh */
    assert_true(m2p_cache_get(c, "aaaaaaaaaaa", &t));
    set_age(a_audio, 7.1 * 86400); /* stored over 7 days ago: expired */
    assert_false(m2p_cache_get(c, "aaaaaaaaaaa", &t));
    assert_true(access(a_audio, F_OK) != 0); /* removed */
    assert_true(m2p_cache_get(c, "bbbbbbbbbbb", &t));
    /* Recent use does not extend the TTL: it counts from the download. */
    char b_side[1100];
    sidecar_of(t.path, b_side, sizeof b_side);
    set_age(t.path, 8 * 86400);
    set_age(b_side, 0);
    assert_false(m2p_cache_get(c, "bbbbbbbbbbb", &t));
    m2p_cache_close(c);
}

static void test_lru_eviction(void **state) {
    fixture *f = *state;
    f->cfg.cache_max_mb = 1;
    m2p_cache *c = NULL;
    assert_int_equal(m2p_cache_open(&f->cfg, &c, NULL), M2P_OK);
    const size_t sz = 400 * 1024;
    store(c, "key-A", sz, "A");
    store(c, "key-B", sz, "B");
    m2p_track ta, tb;
    assert_true(m2p_cache_get(c, "key-A", &ta));
    assert_true(m2p_cache_get(c, "key-B", &tb));
    char side_a[1100], side_b[1100];
    sidecar_of(ta.path, side_a, sizeof side_a);
    sidecar_of(tb.path, side_b, sizeof side_b);
    set_age(side_a, 100);                        /* A used long ago */
    set_age(side_b, 50);                         /* B more recently */
    assert_true(m2p_cache_get(c, "key-A", &ta)); /* now A is the most recent */
    store(c, "key-C", sz, "C");                  /* 1.2 MB > 1 MB: one must go */
    m2p_track t;
    assert_false(m2p_cache_get(c, "key-B", &t)); /* least recently used */
    assert_true(m2p_cache_get(c, "key-A", &t));
    assert_true(m2p_cache_get(c, "key-C", &t));
    m2p_cache_stats st;
    m2p_cache_get_stats(c, &st);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.entries, 2);
    assert_true(st.bytes <= 1024 * 1024);
    /* A busy (locked) entry is skipped by eviction, the next one goes. */
    char side_c[1100];
    sidecar_of(t.path, side_c, sizeof side_c);
    set_age(side_c, 10);
    set_age(side_a, 6); /* order now: C, A (both outside the 5 s grace) */
    m2p_cache_lock *l = NULL;
    assert_int_equal(m2p_cache_lock_key(c, "key-C", &l, NULL), M2P_OK);
    store(c, "key-D", sz, "D");
    m2p_cache_unlock(l);
    assert_true(m2p_cache_get(c, "key-C", &t));
    assert_false(m2p_cache_get(c, "key-A", &t));
    assert_true(m2p_cache_get(c, "key-D", &t));
    /* Entries just handed to a reader (used < 5 s ago) are not evicted, even
     * over the cap: C and D were both just used, E is the one just stored. */
    store(c, "key-E", sz, "E");
    assert_true(m2p_cache_get(c, "key-C", &t));
    assert_true(m2p_cache_get(c, "key-D", &t));
    assert_true(m2p_cache_get(c, "key-E", &t));
    m2p_cache_close(c);
}

/* One "download" per key: lock, re-check, fetch, put — as m2p_fetch does. */
typedef struct worker {
    m2p_cache *cache;
    const char *counter_path; /* one line appended per download */
    m2p_track track;
    int rc;
} worker;

static void *fetch_once(void *arg) {
    worker *w = arg;
    m2p_cache_lock *l = NULL;
    w->rc = m2p_cache_lock_key(w->cache, "same-key", &l, NULL);
    if (w->rc != M2P_OK) {
        return NULL;
    }
    if (!m2p_cache_get(w->cache, "same-key", &w->track)) {
        int fd = open(w->counter_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            ssize_t n = write(fd, "x\n", 2);
            (void)n;
            close(fd);
        }
        char tmp[1200];
        w->rc = m2p_cache_tmp_path(w->cache, "same-key", tmp, sizeof tmp, NULL);
        FILE *fp = w->rc == M2P_OK ? fopen(tmp, "wb") : NULL;
        if (fp != NULL) {
            fputs("some audio bytes", fp);
            fclose(fp);
            usleep(100 * 1000); /* a slow download: the other waiter must block */
            memset(&w->track, 0, sizeof w->track);
            snprintf(w->track.title, sizeof w->track.title, "T");
            w->rc = m2p_cache_put(w->cache, "same-key", tmp, &w->track, NULL);
        } else {
            w->rc = M2P_E_IO;
        }
    }
    m2p_cache_unlock(l);
    return NULL;
}

static int count_lines(const char *path) {
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        return 0;
    }
    int n = 0;
    int ch;
    while ((ch = fgetc(fp)) != EOF) {
        n += ch == '\n';
    }
    fclose(fp);
    return n;
}

static void test_two_threads_one_download(void **state) {
    fixture *f = *state;
    m2p_cache *c = NULL;
    assert_int_equal(m2p_cache_open(&f->cfg, &c, NULL), M2P_OK);
    char counter[128];
    snprintf(counter, sizeof counter, "%s/downloads", f->dir);
    worker w[2] = {{c, counter, {0}, -1}, {c, counter, {0}, -1}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, fetch_once, &w[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].rc, M2P_OK);
    }
    assert_int_equal(count_lines(counter), 1);
    assert_true(w[0].track.cache_hit != w[1].track.cache_hit); /* one downloaded, one hit */
    assert_string_equal(w[0].track.path, w[1].track.path);
    m2p_cache_close(c);
}

static void test_two_processes_one_download(void **state) {
    fixture *f = *state;
    char counter[128];
    snprintf(counter, sizeof counter, "%s/downloads", f->dir);
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            m2p_cache *c = NULL;
            if (m2p_cache_open(&f->cfg, &c, NULL) != M2P_OK) {
                _exit(2);
            }
            worker w = {c, counter, {0}, -1};
            (void)fetch_once(&w);
            int ok = w.rc == M2P_OK && access(w.track.path, R_OK) == 0;
            m2p_cache_close(c);
            _exit(ok ? 0 : 1);
        }
    }
    for (int i = 0; i < 2; i++) {
        int status = 0;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(count_lines(counter), 1);
}

static void test_aborted_download_leaves_nothing(void **state) {
    fixture *f = *state;
    m2p_cache *c = NULL;
    assert_int_equal(m2p_cache_open(&f->cfg, &c, NULL), M2P_OK);
    /* A download that dies half-way: temp file written, never put. */
    char tmp[1200];
    assert_int_equal(m2p_cache_tmp_path(c, "aborted", tmp, sizeof tmp, NULL), M2P_OK);
    FILE *fp = fopen(tmp, "wb");
    assert_non_null(fp);
    fputs("half a song", fp);
    fclose(fp);
    m2p_track t;
    assert_false(m2p_cache_get(c, "aborted", &t));
    m2p_cache_stats st;
    m2p_cache_get_stats(c, &st);
    assert_int_equal(st.entries, 0);
    /* While someone holds the key's lock, its temp file is theirs: kept. */
    m2p_cache_lock *l = NULL;
    assert_int_equal(m2p_cache_lock_key(c, "aborted", &l, NULL), M2P_OK);
    m2p_cache *c2 = NULL;
    assert_int_equal(m2p_cache_open(&f->cfg, &c2, NULL), M2P_OK);
    m2p_cache_close(c2);
    assert_int_equal(access(tmp, F_OK), 0);
    m2p_cache_unlock(l);
    /* The writer is gone: the next open removes the stale temp file. */
    assert_int_equal(m2p_cache_open(&f->cfg, &c2, NULL), M2P_OK);
    assert_true(access(tmp, F_OK) != 0);
    m2p_cache_close(c2);
    /* put of a missing or empty file fails and stores nothing. */
    memset(&t, 0, sizeof t);
    assert_int_equal(m2p_cache_put(c, "aborted", tmp, &t, NULL), M2P_E_IO);
    assert_int_equal(m2p_cache_tmp_path(c, "aborted", tmp, sizeof tmp, NULL), M2P_OK);
    fp = fopen(tmp, "wb");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(m2p_cache_put(c, "aborted", tmp, &t, NULL), M2P_E_FETCH_FAILED);
    assert_false(m2p_cache_get(c, "aborted", &t));
    m2p_cache_close(c);
}

static void test_damaged_entry_removed(void **state) {
    fixture *f = *state;
    m2p_cache *c = NULL;
    assert_int_equal(m2p_cache_open(&f->cfg, &c, NULL), M2P_OK);
    store(c, "damaged", 100, "d");
    m2p_track t;
    assert_true(m2p_cache_get(c, "damaged", &t));
    /* The audio file was truncated behind our back: size no longer matches. */
    assert_int_equal(truncate(t.path, 10), 0);
    char audio[1100];
    snprintf(audio, sizeof audio, "%s", t.path);
    assert_false(m2p_cache_get(c, "damaged", &t));
    assert_true(access(audio, F_OK) != 0);
    /* A sidecar that is not JSON. */
    store(c, "damaged", 100, "d");
    assert_true(m2p_cache_get(c, "damaged", &t));
    char side[1100];
    sidecar_of(t.path, side, sizeof side);
    FILE *fp = fopen(side, "w");
    assert_non_null(fp);
    fputs("{not json", fp);
    fclose(fp);
    assert_false(m2p_cache_get(c, "damaged", &t));
    m2p_cache_close(c);
}

/* Lock files come and go (unlock removes them when the key has no entry):
 * mutual exclusion must hold through that. */
typedef struct lock_stress {
    m2p_cache *cache;
    atomic_int inside;
    atomic_int overlaps;
} lock_stress;

static void *lock_loop(void *arg) {
    lock_stress *ls = arg;
    for (int i = 0; i < 150; i++) {
        m2p_cache_lock *l = NULL;
        if (m2p_cache_lock_key(ls->cache, "contended", &l, NULL) != M2P_OK) {
            atomic_fetch_add(&ls->overlaps, 1000);
            return NULL;
        }
        if (atomic_fetch_add(&ls->inside, 1) != 0) {
            atomic_fetch_add(&ls->overlaps, 1);
        }
        sched_yield();
        atomic_fetch_sub(&ls->inside, 1);
        m2p_cache_unlock(l);
    }
    return NULL;
}

static void test_lock_exclusion_while_lock_files_vanish(void **state) {
    fixture *f = *state;
    lock_stress ls;
    memset(&ls, 0, sizeof ls);
    assert_int_equal(m2p_cache_open(&f->cfg, &ls.cache, NULL), M2P_OK);
    atomic_init(&ls.inside, 0);
    atomic_init(&ls.overlaps, 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, lock_loop, &ls), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    assert_int_equal(atomic_load(&ls.overlaps), 0);
    /* No entry was stored: the lock file is gone too. */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s/audio')\"", f->dir);
    assert_int_equal(system(cmd), 0);
    m2p_cache_close(ls.cache);
}

/* Every allocation that can fail does so cleanly (ASan reports any leak). */
static void test_allocation_failures(void **state) {
    fixture *f = *state;
    const char data[] = "some uploaded audio bytes";
    int failures = 0;
    for (long n = 0; n < 40; n++) {
        m2p_alloc_fail_after(n);
        m2p_cache *c = NULL;
        m2p_code rc = m2p_cache_open(&f->cfg, &c, NULL);
        if (rc == M2P_OK) {
            m2p_track t;
            rc = m2p_cache_put_upload(c, data, sizeof data, "a.wav", &t, NULL);
            if (rc == M2P_OK) {
                (void)m2p_cache_get(c, t.video_id, &t);
            }
            m2p_cache_stats st;
            m2p_cache_get_stats(c, &st);
            m2p_cache_close(c);
        }
        m2p_alloc_fail_after(-1);
        assert_true(rc == M2P_OK || rc == M2P_E_NOMEM);
        failures += rc != M2P_OK;
    }
    assert_true(failures > 0); /* the hook did reach the cache's allocations */
    /* And afterwards everything still works. */
    m2p_cache *c = NULL;
    assert_int_equal(m2p_cache_open(&f->cfg, &c, NULL), M2P_OK);
    m2p_track t;
    assert_int_equal(m2p_cache_put_upload(c, data, sizeof data, "a.wav", &t, NULL), M2P_OK);
    assert_true(m2p_cache_get(c, t.video_id, &t));
    m2p_cache_close(c);
}

static void test_upload_stored_once(void **state) {
    fixture *f = *state;
    m2p_cache *c = NULL;
    assert_int_equal(m2p_cache_open(&f->cfg, &c, NULL), M2P_OK);
    const char data[] = "RIFF....WAVEfmt some uploaded audio";
    m2p_track t1, t2;
    assert_int_equal(m2p_cache_put_upload(c, data, sizeof data, "my song.wav", &t1, NULL), M2P_OK);
    assert_false(t1.cache_hit);
    assert_int_equal(t1.kind, M2P_SOURCE_UPLOAD);
    char hex[65];
    m2p_sha256_hex(data, sizeof data, hex);
    assert_string_equal(t1.content_hash, hex);
    assert_string_equal(t1.video_id, hex);
    assert_int_equal(m2p_cache_put_upload(c, data, sizeof data, "again.wav", &t2, NULL), M2P_OK);
    assert_true(t2.cache_hit);
    assert_string_equal(t2.path, t1.path);
    assert_string_equal(t2.title, "my song.wav");
    assert_int_equal(m2p_cache_put_upload(c, data, 0, "empty", &t2, NULL), M2P_E_UPLOAD_EMPTY);
    m2p_cache_close(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lru_eviction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_threads_one_download, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_processes_one_download, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aborted_download_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_entry_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_exclusion_while_lock_files_vanish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allocation_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload_stored_once, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
