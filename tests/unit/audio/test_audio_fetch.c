/*
 * tests/unit/audio/test_audio_fetch.c — m2p_fetch through the real yt-dlp,
 * without the internet: tests/tools/loopback_server.py serves pages on
 * 127.0.0.1 (unsafe_test_loopback=true lets exactly those through, with the
 * generic extractor) and counts every request; tests/tools/ytdlp_counter.sh
 * counts every yt-dlp process. Checked: a download lands in the cache with
 * its metadata; the second request is a hit with zero requests and zero
 * processes; too long, unknown duration, too large (counted while
 * downloading), 429 (retried, then failing), 404 and 410 each give their code;
 * progress fractions; two threads and two processes → one download; the
 * production default refuses the same URL before any request. A fake yt-dlp
 * (tests/tools/fake_ytdlp.sh) covers live streams, playlists and the argv.
 */
#include "test_util.h"

#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "audio/cache.h"
#include "audio/fetch.h"
#include "audio/source.h"
#include "core/alloc.h"
#include "core/config.h"
#include "core/fs.h"

extern char **environ;

typedef struct server {
    pid_t pid;
    int port;
    char dir[64];
    char stats[128];
    char count_file[128];
} server;

static server g_srv; /* the one loopback server of this test file (set up once) */

static int start_server(void **state) {
    (void)state;
    m2p_test_tmpdir(g_srv.dir, sizeof g_srv.dir);
    char port_file[128], script[1024], real[1024];
    snprintf(port_file, sizeof port_file, "%s/port", g_srv.dir);
    snprintf(g_srv.stats, sizeof g_srv.stats, "%s/stats.json", g_srv.dir);
    snprintf(g_srv.count_file, sizeof g_srv.count_file, "%s/ytdlp-runs", g_srv.dir);
    snprintf(script, sizeof script, "%s/tests/tools/loopback_server.py", m2p_test_source_dir());
    snprintf(real, sizeof real, "%s/tools/bin/yt-dlp", m2p_test_source_dir());
    if (access(real, X_OK) != 0) {
        fprintf(stderr, "yt-dlp missing at %s: run scripts/install-deps.sh\n", real);
        return -1;
    }
    setenv("M2P_REAL_YTDLP", real, 1);
    setenv("M2P_YTDLP_COUNT_FILE", g_srv.count_file, 1);
    char *argv[] = {"python3", script, "--port-file", port_file, "--stats-file", g_srv.stats, NULL};
    if (posix_spawnp(&g_srv.pid, "python3", NULL, NULL, argv, environ) != 0) {
        return -1;
    }
    for (int i = 0; i < 200; i++) { /* up to 10 s */
        FILE *f = fopen(port_file, "r");
        if (f != NULL) {
            int ok = fscanf(f, "%d", &g_srv.port);
            fclose(f);
            if (ok == 1 && g_srv.port > 0) {
                return 0;
            }
        }
        usleep(50 * 1000);
    }
    return -1;
}

static int stop_server(void **state) {
    (void)state;
    if (g_srv.pid > 0) {
        kill(g_srv.pid, SIGTERM);
        int st;
        waitpid(g_srv.pid, &st, 0);
    }
    m2p_test_rmdir(g_srv.dir);
    return 0;
}

/* Requests the server has answered for path (NULL: all). */
static int requests(const char *path) {
    json_error_t e;
    json_t *root = json_load_file(g_srv.stats, 0, &e);
    assert_non_null(root);
    int n = path == NULL ? (int)json_integer_value(json_object_get(root, "total"))
                         : (int)json_integer_value(json_object_get(json_object_get(root, "paths"), path));
    json_decref(root);
    return n;
}

static int ytdlp_runs(void) {
    FILE *f = fopen(g_srv.count_file, "r");
    if (f == NULL) {
        return 0;
    }
    int n = 0, ch;
    while ((ch = fgetc(f)) != EOF) {
        n += ch == '\n';
    }
    fclose(f);
    return n;
}

typedef struct fixture {
    char dir[64];
    m2p_config cfg;
    m2p_cache *cache;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    m2p_test_tmpdir(f->dir, sizeof f->dir);
    m2p_config_defaults(&f->cfg);
    m2p_error err;
    snprintf(f->cfg.data_dir, sizeof f->cfg.data_dir, "%s", f->dir);
    snprintf(f->cfg.ytdlp, sizeof f->cfg.ytdlp, "%s/tests/tools/ytdlp_counter.sh", m2p_test_source_dir());
    assert_int_equal(m2p_config_set(&f->cfg, "unsafe_test_loopback", "true", &err), M2P_OK);
    assert_int_equal(m2p_config_set(&f->cfg, "fetch_retries", "2", &err), M2P_OK);
    assert_int_equal(m2p_config_set(&f->cfg, "fetch_retry_base_s", "0.01", &err), M2P_OK);
    assert_int_equal(m2p_cache_open(&f->cfg, &f->cache, &err), M2P_OK);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    m2p_cache_close(f->cache);
    m2p_test_rmdir(f->dir);
    free(f);
    return 0;
}

static void loopback_source(const m2p_config *cfg, const char *path, m2p_source *src) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", g_srv.port, path);
    m2p_error err;
    m2p_code rc = m2p_source_parse(url, cfg, false, src, &err);
    if (rc != M2P_OK) {
        fail_msg("%s: %s %s", url, m2p_errname(rc), err.detail);
    }
    assert_int_equal(src->kind, M2P_SOURCE_TEST_LOOPBACK);
}

/* Files in <data_dir>/audio but the yt-dlp version memo (nothing may be left
 * behind by a failure). */
static int leftover_files(const fixture *f) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls -A '%s/audio' | grep -v '^[.]ytdlp-version$' | wc -l", f->dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int n = -1;
    if (fscanf(p, "%d", &n) != 1) {
        n = -1;
    }
    pclose(p);
    return n;
}

typedef struct progress_log {
    int reports;
    int partial; /* reports with 0 < done < total */
    double last_done, last_total;
    char finding[700];
} progress_log;

static void on_report(void *ctx, m2p_step step, double done, double total, const char *msg) {
    progress_log *l = ctx;
    assert_int_equal(step, M2P_STEP_FETCH);
    assert_non_null(msg);
    l->reports++;
    if (total > 0 && done > 0 && done < total) {
        l->partial++;
    }
    l->last_done = done;
    l->last_total = total;
}

static void on_finding(void *ctx, m2p_step step, const char *key, const char *text) {
    progress_log *l = ctx;
    (void)step;
    if (strcmp(key, "song") == 0) {
        snprintf(l->finding, sizeof l->finding, "%s", text);
    }
}

static m2p_code fetch_path(fixture *f, const char *path, m2p_track *t, m2p_error *err) {
    m2p_source src;
    loopback_source(&f->cfg, path, &src);
    return m2p_fetch(&f->cfg, f->cache, &src, NULL, t, err);
}

static void test_download_then_cache_hit(void **state) {
    fixture *f = *state;
    m2p_source src;
    loopback_source(&f->cfg, "/song", &src);
    int page0 = requests("/song"), media0 = requests("/media/song.wav"), runs0 = ytdlp_runs();
    progress_log log;
    memset(&log, 0, sizeof log);
    m2p_progress prog = {on_report, on_finding, &log, NULL};
    m2p_track t;
    m2p_error err;
    m2p_code rc = m2p_fetch(&f->cfg, f->cache, &src, &prog, &t, &err);
    if (rc != M2P_OK) {
        fail_msg("fetch: %s %s", m2p_errname(rc), err.detail);
    }
    assert_false(t.cache_hit);
    assert_string_equal(t.title, "Loopback Song");
    assert_string_equal(t.uploader, "Loopback Artist");
    assert_true(t.duration_s == 30.0);
    assert_int_equal(t.kind, M2P_SOURCE_TEST_LOOPBACK);
    assert_string_equal(t.source, src.url);
    assert_string_equal(t.video_id, src.id);
    struct stat st;
    assert_int_equal(stat(t.path, &st), 0);
    assert_int_equal(st.st_size, 16044); /* the server's 1 s WAV */
    char hex[65];
    assert_int_equal(m2p_fs_sha256_file(t.path, hex, NULL), M2P_OK);
    assert_string_equal(t.content_hash, hex);
    assert_int_equal(requests("/song") - page0, 1); /* metadata read once, reused for the download */
    assert_int_equal(requests("/media/song.wav") - media0, 1);
    assert_int_equal(ytdlp_runs() - runs0, 3); /* --version, -J, download */
    assert_true(log.last_done == 1.0 && log.last_total == 1.0);
    assert_non_null(strstr(log.finding, "Loopback Song"));
    assert_int_equal(leftover_files(f), 3); /* <stem>.audio, <stem>.json, <stem>.lock */

    /* Second request: a cache hit, no request, no process. */
    int total1 = requests(NULL), runs1 = ytdlp_runs();
    m2p_track t2;
    assert_int_equal(m2p_fetch(&f->cfg, f->cache, &src, &prog, &t2, &err), M2P_OK);
    assert_true(t2.cache_hit);
    assert_string_equal(t2.path, t.path);
    assert_string_equal(t2.title, "Loopback Song");
    assert_string_equal(t2.content_hash, t.content_hash);
    /* And from a fresh cache handle (another process would see the same). */
    m2p_cache *c2 = NULL;
    assert_int_equal(m2p_cache_open(&f->cfg, &c2, &err), M2P_OK);
    assert_int_equal(m2p_fetch(&f->cfg, c2, &src, NULL, &t2, &err), M2P_OK);
    assert_true(t2.cache_hit);
    m2p_cache_close(c2);
    assert_int_equal(requests(NULL), total1);
    assert_int_equal(ytdlp_runs(), runs1);
}

/* A data folder with template characters: -o must still be our exact path. */
static void test_percent_in_data_dir(void **state) {
    fixture *f = *state;
    m2p_config cfg = f->cfg;
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s/100%%(title)s", f->dir);
    m2p_cache *c = NULL;
    m2p_error err;
    assert_int_equal(m2p_cache_open(&cfg, &c, &err), M2P_OK);
    m2p_source src;
    loopback_source(&cfg, "/song", &src);
    m2p_track t;
    m2p_code rc = m2p_fetch(&cfg, c, &src, NULL, &t, &err);
    if (rc != M2P_OK) {
        fail_msg("fetch: %s %s", m2p_errname(rc), err.detail);
    }
    char want[256];
    snprintf(want, sizeof want, "%s/100%%(title)s/audio/", f->dir);
    assert_true(strncmp(t.path, want, strlen(want)) == 0);
    struct stat st;
    assert_int_equal(stat(t.path, &st), 0);
    assert_int_equal(st.st_size, 16044);
    m2p_cache_close(c);
}

static void test_too_long_and_unknown_duration(void **state) {
    fixture *f = *state;
    m2p_track t;
    m2p_error err;
    int media0 = requests("/media/song.wav");
    assert_int_equal(fetch_path(f, "/long", &t, &err), M2P_E_FETCH_TOO_LONG);
    assert_non_null(strstr(err.detail, "7200"));
    assert_int_equal(fetch_path(f, "/noduration", &t, &err), M2P_E_FETCH_DURATION_UNKNOWN);
    assert_int_equal(requests("/media/song.wav"), media0); /* refused before downloading */
    assert_int_equal(requests("/long"), 1);                /* not retried */
    assert_int_equal(leftover_files(f), 0);
    m2p_cache_stats st;
    m2p_cache_get_stats(f->cache, &st);
    assert_int_equal(st.entries, 0);
}

static void test_too_large_counted_while_downloading(void **state) {
    fixture *f = *state;
    m2p_error err;
    assert_int_equal(m2p_config_set(&f->cfg, "max_download_mb", "1", &err), M2P_OK);
    m2p_track t;
    double t0 = m2p_now_monotonic();
    assert_int_equal(fetch_path(f, "/huge", &t, &err), M2P_E_FETCH_TOO_LARGE);
    assert_true(m2p_now_monotonic() - t0 < 30.0);
    assert_non_null(strstr(err.detail, "stopped after"));
    assert_int_equal(requests("/media/huge"), 1); /* not retried */
    /* The server saw the client hang up long before the end of its 64 MiB. */
    long long sent = -1;
    for (int i = 0; i < 100 && sent < 0; i++) {
        json_error_t e;
        json_t *root = json_load_file(g_srv.stats, 0, &e);
        assert_non_null(root);
        sent = (long long)json_integer_value(json_object_get(root, "huge_bytes"));
        json_decref(root);
        if (sent < 0) {
            usleep(50 * 1000);
        }
    }
    assert_true(sent > 0);
    assert_true(sent < 24LL * 1024 * 1024);
    assert_int_equal(leftover_files(f), 0); /* the partial file is gone */
}

static void test_rate_limit_retried_then_fails(void **state) {
    fixture *f = *state;
    m2p_track t;
    m2p_error err;
    int before = requests("/ratelimit");
    assert_int_equal(fetch_path(f, "/ratelimit", &t, &err), M2P_E_FETCH_RATE_LIMITED);
    assert_int_equal(requests("/ratelimit") - before, 3); /* 1 + fetch_retries */
    assert_non_null(strstr(err.detail, "429"));
}

/* Back-off: doubles each retry, jitter ±50 %, capped. */
static void test_retry_delay(void **state) {
    (void)state;
    assert_true(m2p_fetch_retry_delay(1.0, 0, 0.5) == 1.0);
    assert_true(m2p_fetch_retry_delay(1.0, 1, 0.5) == 2.0);
    assert_true(m2p_fetch_retry_delay(1.0, 2, 0.5) == 4.0);
    assert_true(m2p_fetch_retry_delay(1.0, 2, 0.0) == 2.0); /* jitter low end */
    assert_true(m2p_fetch_retry_delay(1.0, 2, 1.0) == 6.0); /* jitter high end */
    assert_true(m2p_fetch_retry_delay(0.01, 1, 0.5) == 0.02);
    assert_true(m2p_fetch_retry_delay(10.0, 9, 1.0) == 120.0); /* capped */
    assert_true(m2p_fetch_retry_delay(0.0, 3, 1.0) == 0.0);
}

static void test_unavailable_not_retried(void **state) {
    fixture *f = *state;
    m2p_track t;
    m2p_error err;
    assert_int_equal(fetch_path(f, "/missing", &t, &err), M2P_E_FETCH_UNAVAILABLE);
    assert_int_equal(requests("/missing"), 1);
    assert_int_equal(fetch_path(f, "/gone", &t, &err), M2P_E_FETCH_REMOVED);
    assert_int_equal(requests("/gone"), 1);
    assert_int_equal(leftover_files(f), 0);
}

static void test_progress_fractions(void **state) {
    fixture *f = *state;
    m2p_source src;
    loopback_source(&f->cfg, "/slow", &src);
    progress_log log;
    memset(&log, 0, sizeof log);
    m2p_progress prog = {on_report, on_finding, &log, NULL};
    m2p_track t;
    m2p_error err;
    assert_int_equal(m2p_fetch(&f->cfg, f->cache, &src, &prog, &t, &err), M2P_OK);
    assert_true(log.partial >= 2); /* real fractions while the bytes arrive */
    assert_true(log.last_done == 1.0 && log.last_total == 1.0);
}

typedef struct cancel_ctx {
    atomic_bool cancel;
    int reports;
} cancel_ctx;

static void cancel_on_first_bytes(void *ctx, m2p_step step, double done, double total, const char *msg) {
    cancel_ctx *c = ctx;
    (void)step;
    (void)msg;
    c->reports++;
    if (total > 0 && done > 0 && done < total) { /* bytes are arriving: the user gives up */
        atomic_store(&c->cancel, true);
    }
}

static void test_cancel_mid_download(void **state) {
    fixture *f = *state;
    m2p_source src;
    loopback_source(&f->cfg, "/slow", &src);
    cancel_ctx cc;
    memset(&cc, 0, sizeof cc);
    atomic_init(&cc.cancel, false);
    m2p_progress prog = {cancel_on_first_bytes, NULL, &cc, &cc.cancel};
    m2p_track t;
    m2p_error err;
    assert_int_equal(m2p_fetch(&f->cfg, f->cache, &src, &prog, &t, &err), M2P_E_CANCELLED);
    assert_int_equal(leftover_files(f), 0); /* the aborted download left nothing */
    m2p_cache_stats st;
    m2p_cache_get_stats(f->cache, &st);
    assert_int_equal(st.entries, 0);
}

static void cancel_when_waiting(void *ctx, m2p_step step, double done, double total, const char *msg) {
    cancel_ctx *c = ctx;
    (void)step;
    (void)done;
    (void)total;
    c->reports++;
    if (strstr(msg, "Waiting for another download") != NULL) {
        atomic_store(&c->cancel, true);
    }
}

static void test_cancel_while_waiting_for_the_lock(void **state) {
    fixture *f = *state;
    m2p_source src;
    loopback_source(&f->cfg, "/song", &src);
    m2p_cache_lock *held = NULL; /* "another download" of the same song */
    assert_int_equal(m2p_cache_lock_key(f->cache, src.id, &held, NULL), M2P_OK);
    m2p_cache_lock *again = NULL;
    assert_int_equal(m2p_cache_try_lock_key(f->cache, src.id, &again, NULL), M2P_E_CACHE_LOCK);
    assert_null(again);
    cancel_ctx cc;
    memset(&cc, 0, sizeof cc);
    atomic_init(&cc.cancel, false);
    m2p_progress prog = {cancel_when_waiting, NULL, &cc, &cc.cancel};
    int total0 = requests(NULL), runs0 = ytdlp_runs();
    m2p_track t;
    m2p_error err;
    assert_int_equal(m2p_fetch(&f->cfg, f->cache, &src, &prog, &t, &err), M2P_E_CANCELLED);
    assert_true(cc.reports >= 1);
    assert_int_equal(requests(NULL), total0);
    assert_int_equal(ytdlp_runs(), runs0);
    m2p_cache_unlock(held);
}

static void test_production_default_refuses_loopback(void **state) {
    fixture *f = *state;
    m2p_config prod;
    m2p_config_defaults(&prod);
    snprintf(prod.data_dir, sizeof prod.data_dir, "%s", f->dir);
    snprintf(prod.ytdlp, sizeof prod.ytdlp, "%s", f->cfg.ytdlp);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/song", g_srv.port);
    int total0 = requests(NULL), runs0 = ytdlp_runs();
    m2p_source src;
    m2p_error err;
    assert_int_equal(m2p_source_parse(url, &prod, false, &src, &err), M2P_E_URL_LOCALHOST);
    /* A loopback source made under the test setting is refused by a production fetch too. */
    loopback_source(&f->cfg, "/song", &src);
    m2p_track t;
    assert_int_equal(m2p_fetch(&prod, f->cache, &src, NULL, &t, &err), M2P_E_URL_LOCALHOST);
    assert_int_equal(requests(NULL), total0);
    assert_int_equal(ytdlp_runs(), runs0);
}

typedef struct thread_arg {
    fixture *f;
    m2p_source src;
    m2p_track track;
    m2p_code rc;
} thread_arg;

static void *fetch_thread(void *p) {
    thread_arg *a = p;
    a->rc = m2p_fetch(&a->f->cfg, a->f->cache, &a->src, NULL, &a->track, NULL);
    return NULL;
}

static void test_two_threads_one_download(void **state) {
    fixture *f = *state;
    thread_arg a[2];
    memset(a, 0, sizeof a);
    int media0 = requests("/media/slow.wav");
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        a[i].f = f;
        loopback_source(&f->cfg, "/slow", &a[i].src);
        assert_int_equal(pthread_create(&th[i], NULL, fetch_thread, &a[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(a[i].rc, M2P_OK);
    }
    assert_int_equal(requests("/media/slow.wav") - media0, 1);
    assert_true(a[0].track.cache_hit != a[1].track.cache_hit);
    assert_string_equal(a[0].track.path, a[1].track.path);
}

static void test_two_processes_one_download(void **state) {
    fixture *f = *state;
    int media0 = requests("/media/slow.wav");
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            m2p_cache *c = NULL;
            m2p_source src;
            char url[128];
            snprintf(url, sizeof url, "http://127.0.0.1:%d/slow", g_srv.port);
            if (m2p_cache_open(&f->cfg, &c, NULL) != M2P_OK ||
                m2p_source_parse(url, &f->cfg, false, &src, NULL) != M2P_OK) {
                _exit(3);
            }
            m2p_track t;
            m2p_code rc = m2p_fetch(&f->cfg, c, &src, NULL, &t, NULL);
            m2p_cache_close(c);
            _exit(rc == M2P_OK ? (t.cache_hit ? 10 : 11) : 1);
        }
    }
    int codes = 0;
    for (int i = 0; i < 2; i++) {
        int status = 0;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_true(WEXITSTATUS(status) == 10 || WEXITSTATUS(status) == 11);
        codes += WEXITSTATUS(status);
    }
    assert_int_equal(codes, 21); /* one downloaded (11), one cache hit (10) */
    assert_int_equal(requests("/media/slow.wav") - media0, 1);
}

static void write_file(const char *path, const char *text, int mode) {
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(chmod(path, (mode_t)mode), 0);
}

static void test_ytdlp_lookup_and_version(void **state) {
    fixture *f = *state;
    m2p_config cfg = f->cfg;
    char path[1024], version[32];
    m2p_error err;
    /* The real one (through the counter): current. */
    assert_int_equal(m2p_fetch_ytdlp_check(&cfg, path, sizeof path, version, sizeof version, &err), M2P_OK);
    int y = 0, m = 0;
    assert_int_equal(sscanf(version, "%d.%d", &y, &m), 2);
    assert_true(y > 2024 || (y == 2024 && m >= 7));
    /* Missing. */
    snprintf(cfg.ytdlp, sizeof cfg.ytdlp, "%s/no-such-yt-dlp", f->dir);
    assert_int_equal(m2p_fetch_ytdlp_check(&cfg, path, sizeof path, version, sizeof version, &err),
                     M2P_E_YTDLP_MISSING);
    assert_non_null(strstr(m2p_errhint(M2P_E_YTDLP_MISSING), "pip install -U yt-dlp"));
    /* Outdated (a 2023 build, like Debian 12's). */
    char old[128];
    snprintf(old, sizeof old, "%s/old-yt-dlp", f->dir);
    write_file(old, "#!/bin/sh\necho 2023.03.04\n", 0755);
    snprintf(cfg.ytdlp, sizeof cfg.ytdlp, "%s", old);
    assert_int_equal(m2p_fetch_ytdlp_check(&cfg, path, sizeof path, version, sizeof version, &err),
                     M2P_E_YTDLP_OUTDATED);
    assert_string_equal(version, "2023.03.04");
    assert_non_null(strstr(m2p_errhint(M2P_E_YTDLP_OUTDATED), "pip install -U yt-dlp"));
    assert_non_null(strstr(m2p_errhint(M2P_E_YTDLP_OUTDATED), "make run"));
    assert_non_null(strstr(m2p_errhint(M2P_E_YTDLP_MISSING), "make run"));
    /* m2p_fetch says so before any request. */
    int total0 = requests(NULL);
    m2p_source src;
    loopback_source(&cfg, "/song", &src);
    m2p_track t;
    assert_int_equal(m2p_fetch(&cfg, f->cache, &src, NULL, &t, &err), M2P_E_YTDLP_OUTDATED);
    assert_int_equal(requests(NULL), total0);
    /* Without the config setting: tools/bin of the checkout (MUS2PIC_SOURCE_DIR) or PATH. */
    cfg.ytdlp[0] = '\0';
    assert_int_equal(m2p_fetch_ytdlp_check(&cfg, path, sizeof path, version, sizeof version, &err), M2P_OK);
    assert_non_null(strstr(path, "yt-dlp"));
}

/* The fake yt-dlp: metadata cases and the exact argv for a YouTube source. */
static void fake_setup(fixture *f, m2p_config *cfg, const char *json) {
    *cfg = f->cfg;
    snprintf(cfg->ytdlp, sizeof cfg->ytdlp, "%s/tests/tools/fake_ytdlp.sh", m2p_test_source_dir());
    char path[128], log[128];
    snprintf(path, sizeof path, "%s/fake.json", f->dir);
    snprintf(log, sizeof log, "%s/fake.log", f->dir);
    write_file(path, json, 0644);
    setenv("FAKE_JSON", path, 1);
    setenv("FAKE_LOG", log, 1);
    unlink(log);
}

static void test_metadata_refusals_with_fake_ytdlp(void **state) {
    fixture *f = *state;
    m2p_config cfg;
    m2p_source src;
    m2p_track t;
    m2p_error err;
    assert_int_equal(m2p_source_parse("https://youtu.be/dQw4w9WgXcQ?si=x", &f->cfg, false, &src, &err), M2P_OK);
    fake_setup(f, &cfg, "{\"id\":\"dQw4w9WgXcQ\",\"title\":\"Live!\",\"is_live\":true,\"duration\":null}");
    assert_int_equal(m2p_fetch(&cfg, f->cache, &src, NULL, &t, &err), M2P_E_FETCH_LIVE);
    fake_setup(f, &cfg, "{\"id\":\"dQw4w9WgXcQ\",\"title\":\"Soon\",\"live_status\":\"is_upcoming\",\"duration\":60}");
    assert_int_equal(m2p_fetch(&cfg, f->cache, &src, NULL, &t, &err), M2P_E_FETCH_LIVE);
    fake_setup(f, &cfg, "{\"_type\":\"playlist\",\"id\":\"PL1\",\"entries\":[]}");
    assert_int_equal(m2p_fetch(&cfg, f->cache, &src, NULL, &t, &err), M2P_E_FETCH_PLAYLIST);
    fake_setup(f, &cfg, "{\"id\":\"dQw4w9WgXcQ\",\"title\":\"T\",\"duration\":\"212\"}");
    assert_int_equal(m2p_fetch(&cfg, f->cache, &src, NULL, &t, &err), M2P_E_FETCH_DURATION_UNKNOWN);
    fake_setup(f, &cfg, "{\"id\":\"dQw4w9WgXcQ\",\"title\":\"T\",\"duration\":212,\"filesize\":999999999}");
    assert_int_equal(m2p_fetch(&cfg, f->cache, &src, NULL, &t, &err), M2P_E_FETCH_TOO_LARGE);
    fake_setup(f, &cfg, "not json");
    assert_int_equal(m2p_fetch(&cfg, f->cache, &src, NULL, &t, &err), M2P_E_FETCH_FAILED);
    assert_int_equal(leftover_files(f), 0);

    /* A good one: check the argv yt-dlp was given. */
    fake_setup(f, &cfg,
               "{\"id\":\"dQw4w9WgXcQ\",\"title\":\"Never Gonna\",\"channel\":\"Rick\",\"duration\":212,"
               "\"live_status\":\"not_live\"}");
    assert_int_equal(m2p_fetch(&cfg, f->cache, &src, NULL, &t, &err), M2P_OK);
    assert_string_equal(t.title, "Never Gonna");
    assert_string_equal(t.uploader, "Rick");
    assert_string_equal(t.source, "https://www.youtube.com/watch?v=dQw4w9WgXcQ");
    char *log = NULL;
    char logpath[128];
    snprintf(logpath, sizeof logpath, "%s/fake.log", f->dir);
    assert_int_equal(m2p_fs_read_file(logpath, 1 << 20, &log, NULL, NULL), M2P_OK);
    char *meta = strstr(log, "--dump-single-json");
    assert_non_null(meta);
    assert_non_null(strstr(log, "--ignore-config --no-playlist --use-extractors youtube -f bestaudio/best"));
    assert_non_null(strstr(log, "-- https://www.youtube.com/watch?v=dQw4w9WgXcQ\n"));
    char *dl = strstr(log, "--load-info-json");
    assert_non_null(dl);
    assert_non_null(strstr(dl, "--fixup never"));
    assert_non_null(strstr(dl, "--max-filesize 104857600"));
    char want_out[160];
    snprintf(want_out, sizeof want_out, "-o %s/audio/.tmp-", f->dir);
    assert_non_null(strstr(dl, want_out));
    assert_null(strstr(log, "generic"));
    assert_null(strstr(log, "--version")); /* the first fetch's probe is remembered */
    m2p_free(log);

    /* A helper that outlives yt-dlp holding its stdout does not hang us. */
    assert_int_equal(m2p_source_parse("https://youtu.be/aaaaaaaaaaa", &f->cfg, false, &src, &err), M2P_OK);
    fake_setup(f, &cfg, "{\"id\":\"aaaaaaaaaaa\",\"title\":\"L\",\"duration\":10}");
    setenv("FAKE_LINGER", "1", 1);
    double t0 = m2p_now_monotonic();
    assert_int_equal(m2p_fetch(&cfg, f->cache, &src, NULL, &t, &err), M2P_OK);
    assert_true(m2p_now_monotonic() - t0 < 10.0);
    unsetenv("FAKE_LINGER");
    unsetenv("FAKE_JSON");
    unsetenv("FAKE_LOG");
}

static int log_count(const fixture *f, const char *needle) {
    char path[128];
    snprintf(path, sizeof path, "%s/fake.log", f->dir);
    char *log = NULL;
    if (m2p_fs_read_file(path, 1 << 20, &log, NULL, NULL) != M2P_OK) {
        return 0;
    }
    int n = 0;
    for (const char *p = strstr(log, needle); p != NULL; p = strstr(p + 1, needle)) {
        n++;
    }
    m2p_free(log);
    return n;
}

/* The version memo: one probe per yt-dlp file; a changed file is probed again. */
static void test_version_memo(void **state) {
    fixture *f = *state;
    m2p_config cfg;
    m2p_source src;
    m2p_track t;
    m2p_error err;
    assert_int_equal(m2p_source_parse("https://youtu.be/ccccccccccc", &f->cfg, false, &src, NULL), M2P_OK);
    fake_setup(f, &cfg, "{\"id\":\"ccccccccccc\",\"is_live\":true}");
    char copy[128], cmd[512];
    snprintf(copy, sizeof copy, "%s/y.sh", f->dir);
    snprintf(cmd, sizeof cmd, "cp '%s/tests/tools/fake_ytdlp.sh' '%s'", m2p_test_source_dir(), copy);
    assert_int_equal(system(cmd), 0);
    snprintf(cfg.ytdlp, sizeof cfg.ytdlp, "%s", copy);
    assert_int_equal(m2p_fetch(&cfg, f->cache, &src, NULL, &t, &err), M2P_E_FETCH_LIVE);
    assert_int_equal(log_count(f, "--version"), 1);
    assert_int_equal(m2p_fetch(&cfg, f->cache, &src, NULL, &t, &err), M2P_E_FETCH_LIVE);
    assert_int_equal(log_count(f, "--version"), 1); /* remembered */
    /* The file is replaced by an old build: probed again, refused. */
    setenv("FAKE_VERSION", "2023.01.01", 1);
    struct timespec ts[2] = {{1000000000, 0}, {1000000000, 0}};
    assert_int_equal(utimensat(AT_FDCWD, copy, ts, 0), 0);
    assert_int_equal(m2p_fetch(&cfg, f->cache, &src, NULL, &t, &err), M2P_E_YTDLP_OUTDATED);
    assert_int_equal(log_count(f, "--version"), 2);
    /* doctor's check always probes. */
    unsetenv("FAKE_VERSION");
    char path[1024], version[32];
    assert_int_equal(m2p_fetch_ytdlp_check(&cfg, path, sizeof path, version, sizeof version, &err), M2P_OK);
    assert_int_equal(log_count(f, "--version"), 3);
    unsetenv("FAKE_JSON");
    unsetenv("FAKE_LOG");
}

/* Allocation failures anywhere in a fetch end in NOMEM (or success), never a
 * crash or a leak, and leave no temp file. Uses the fake yt-dlp (fast). */
static void test_fetch_allocation_failures(void **state) {
    fixture *f = *state;
    m2p_config cfg;
    m2p_source src;
    int failures = 0;
    assert_int_equal(m2p_source_parse("https://youtu.be/bbbbbbbbbbb", &f->cfg, false, &src, NULL), M2P_OK);
    fake_setup(f, &cfg, "{\"id\":\"bbbbbbbbbbb\",\"title\":\"A\",\"duration\":10}");
    for (long n = 0; n < 30; n++) {
        m2p_track t;
        m2p_alloc_fail_after(n);
        m2p_error err;
        m2p_code rc = m2p_fetch(&cfg, f->cache, &src, NULL, &t, &err);
        m2p_alloc_fail_after(-1);
        if (!(rc == M2P_OK || rc == M2P_E_NOMEM)) {
            fail_msg("allocation %ld failing gave %s (%s)", n, m2p_errname(rc), err.detail);
        }
        failures += rc != M2P_OK;
        if (rc == M2P_OK) {
            break; /* stored: later calls would be cache hits */
        }
        if (leftover_files(f) != 0) {
            char cmd[200];
            snprintf(cmd, sizeof cmd, "ls -la '%s/audio'", f->dir);
            (void)system(cmd);
            fail_msg("left files after failing allocation %ld", n);
        }
    }
    assert_true(failures > 0);
    unsetenv("FAKE_JSON");
    unsetenv("FAKE_LOG");
}

static void test_classify_errors(void **state) {
    (void)state;
    static const struct {
        const char *text;
        m2p_code code;
    } k[] = {
        {"ERROR: [youtube] abc: Private video. Sign in if you've been granted access", M2P_E_FETCH_PRIVATE},
        {"ERROR: [youtube] abc: Sign in to confirm your age. This video may be inappropriate for some users.",
         M2P_E_FETCH_AGE_RESTRICTED},
        {"ERROR: [youtube] abc: The uploader has not made this video available in your country",
         M2P_E_FETCH_REGION_BLOCKED},
        {"ERROR: [youtube] abc: Video unavailable. The uploader has blocked it in your country.",
         M2P_E_FETCH_REGION_BLOCKED},
        {"ERROR: [youtube] abc: Video unavailable. This video is not available in your country",
         M2P_E_FETCH_REGION_BLOCKED},
        {"ERROR: [youtube] abc: Video unavailable. This video has been removed by the uploader", M2P_E_FETCH_REMOVED},
        {"ERROR: [youtube] abc: Video unavailable. This video is no longer available because the YouTube account "
         "associated with this video has been terminated.",
         M2P_E_FETCH_REMOVED},
        {"ERROR: [youtube] abc: Video unavailable", M2P_E_FETCH_UNAVAILABLE},
        {"ERROR: [generic] x: Unable to download webpage: HTTP Error 404: Not Found", M2P_E_FETCH_UNAVAILABLE},
        {"ERROR: [generic] x: Unable to download webpage: HTTP Error 429: Too Many Requests", M2P_E_FETCH_RATE_LIMITED},
        {"ERROR: [youtube] abc: Sign in to confirm you're not a bot. Use --cookies", M2P_E_FETCH_RATE_LIMITED},
        {"ERROR: Unable to download webpage: <urlopen error [Errno -3] Temporary failure in name resolution>",
         M2P_E_FETCH_NETWORK},
        {"ERROR: unable to download video data: The read operation timed out", M2P_E_FETCH_NETWORK},
        {"ERROR: [generic] x: Unable to download webpage: HTTP Error 503: Service Unavailable", M2P_E_FETCH_NETWORK},
        {"WARNING: some formats are unavailable\nERROR: [generic] x: HTTP Error 429: Too Many Requests",
         M2P_E_FETCH_RATE_LIMITED},
        {"[download] File is larger than max-filesize (200 bytes > 100 bytes). Aborting.", M2P_E_FETCH_TOO_LARGE},
        {"WARNING: [youtube] No supported JavaScript runtime could be found. Only deno is enabled by default\n"
         "ERROR: [youtube] abc: Requested format is not available. Use --list-formats",
         M2P_E_FETCH_FAILED},
        {"ERROR: [youtube] abc: Requested format is not available. Use --list-formats", M2P_E_FETCH_UNAVAILABLE},
        {"[download] Song does not pass filter (duration<900), skipping ..", M2P_E_FETCH_TOO_LONG},
        {"[download] Stream does not pass filter (!is_live), skipping ..", M2P_E_FETCH_LIVE},
        {"ERROR: [youtube] abc: This live event will begin in 3 hours.", M2P_E_FETCH_LIVE},
        {"ERROR: something nobody expected", M2P_E_FETCH_FAILED},
        {"", M2P_E_FETCH_FAILED},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        m2p_code c = m2p_fetch_classify_error(k[i].text);
        if (c != k[i].code) {
            fail_msg("'%s': got %s want %s", k[i].text, m2p_errname(c), m2p_errname(k[i].code));
        }
    }
    /* Network and rate limits are the transient ones (retried); the rest are not. */
    assert_true(m2p_err_transient(M2P_E_FETCH_NETWORK));
    assert_true(m2p_err_transient(M2P_E_FETCH_RATE_LIMITED));
    assert_false(m2p_err_transient(M2P_E_FETCH_UNAVAILABLE));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_errors),
        cmocka_unit_test(test_retry_delay),
        cmocka_unit_test_setup_teardown(test_download_then_cache_hit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_percent_in_data_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_long_and_unknown_duration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large_counted_while_downloading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_retried_then_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unavailable_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_fractions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_mid_download, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_while_waiting_for_the_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_production_default_refuses_loopback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_threads_one_download, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_processes_one_download, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ytdlp_lookup_and_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_refusals_with_fake_ytdlp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_memo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_allocation_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, start_server, stop_server);
}
