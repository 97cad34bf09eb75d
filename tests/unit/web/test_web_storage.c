/*
 * tests/unit/web/test_web_storage.c — web/storage.c and store/blobs.c on a real
 * SQLite store: the upload probe (not audio → upload_not_audio), one pruning
 * pass (unused old uploads rows and files go, used or young ones stay, caches
 * end under the cap with the least recently used removed first, stale temp
 * files go) and image_data going with its job (foreign keys on).
 */
#define _GNU_SOURCE
#include "test_util.h"

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "core/config.h"
#include "core/fs.h"
#include "store/blobs.h"
#include "store/db.h"
#include "store/jobs.h"
#include "web/server_int.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define SHA_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define SHA_D "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
#define SHA_E "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"

typedef struct fixture {
    char dir[64];
    m2p_web w;
    m2p_store *s;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    m2p_test_tmpdir(f->dir, sizeof f->dir);
    m2p_config_defaults(&f->w.cfg);
    (void)snprintf(f->w.cfg.data_dir, sizeof f->w.cfg.data_dir, "%s", f->dir);
    f->w.cfg.upload_retention_s = 3600;
    f->w.cfg.file_cache_max_mb = 1;
    m2p_error err;
    assert_int_equal(m2p_store_open(&f->w.cfg, &f->s, &err), M2P_OK);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    m2p_store_close(f->s);
    m2p_test_rmdir(f->dir);
    free(f);
    return 0;
}

static void write_file(const char *path, const void *data, size_t len, double age_s) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
    double t = m2p_now_wall() - age_s;
    struct timespec ts[2] = {{(time_t)t, 0}, {(time_t)t, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void write_sized(const fixture *f, const char *sub, const char *name, size_t len, double age_s) {
    char dir[600];
    char path[800];
    (void)snprintf(dir, sizeof dir, "%s/%s", f->dir, sub);
    assert_int_equal(m2p_fs_mkdirs(dir, NULL), M2P_OK);
    (void)snprintf(path, sizeof path, "%s/%s", dir, name);
    char *buf = calloc(1, len + 1);
    assert_non_null(buf);
    write_file(path, buf, len, age_s);
    free(buf);
}

static bool exists(const fixture *f, const char *sub, const char *name) {
    char path[800];
    struct stat st;
    (void)snprintf(path, sizeof path, "%s/%s/%s", f->dir, sub, name);
    return stat(path, &st) == 0;
}

static void sql(fixture *f, const char *text) {
    assert_int_equal(m2p_db_exec(f->s, text), 0);
}

static int64_t count(fixture *f, const char *text) {
    m2p_db_stmt *st = NULL;
    assert_int_equal(m2p_db_prepare(f->s, text, &st, NULL), M2P_OK);
    assert_int_equal(m2p_db_step(st), M2P_DB_ROW);
    int64_t n = m2p_db_column_int64(st, 0);
    m2p_db_finalize(st);
    return n;
}

/* A 16-bit mono WAV of a 440 Hz tone. */
static size_t make_wav(unsigned char *out, size_t cap, int rate, double seconds) {
    size_t n = (size_t)(rate * seconds);
    size_t len = 44 + 2 * n;
    assert_true(len <= cap);
    uint32_t v32;
    uint16_t v16;
    memcpy(out, "RIFF", 4);
    v32 = (uint32_t)(len - 8);
    memcpy(out + 4, &v32, 4);
    memcpy(out + 8, "WAVEfmt ", 8);
    v32 = 16;
    memcpy(out + 16, &v32, 4);
    v16 = 1;
    memcpy(out + 20, &v16, 2);
    memcpy(out + 22, &v16, 2);
    v32 = (uint32_t)rate;
    memcpy(out + 24, &v32, 4);
    v32 = (uint32_t)rate * 2;
    memcpy(out + 28, &v32, 4);
    v16 = 2;
    memcpy(out + 32, &v16, 2);
    v16 = 16;
    memcpy(out + 34, &v16, 2);
    memcpy(out + 36, "data", 4);
    v32 = (uint32_t)(2 * n);
    memcpy(out + 40, &v32, 4);
    for (size_t i = 0; i < n; i++) {
        int16_t s = (int16_t)(12000.0 * sin(2.0 * M_PI * 440.0 * (double)i / rate));
        memcpy(out + 44 + 2 * i, &s, 2);
    }
    return len;
}

static m2p_code probe(fixture *f, const void *data, size_t len, m2p_error *err) {
    char path[600];
    (void)snprintf(path, sizeof path, "%s/probe.bin", f->dir);
    write_file(path, data, len, 0);
    return web_probe_upload(&f->w, path, "file 1 ('x')", err);
}

static void test_probe(void **state) {
    fixture *f = *state;
    static unsigned char wav[44 + 2 * 8000 * 3];
    m2p_error err;
    size_t len = make_wav(wav, sizeof wav, 8000, 3.0);
    assert_int_equal(probe(f, wav, len, &err), M2P_OK);
    /* cut short: the WAV header promises 3 s, the file holds 0.5 s (refused before decoding) */
    assert_int_equal(probe(f, wav, 44 + 2 * 4000, &err), M2P_E_UPLOAD_NOT_AUDIO);
    assert_non_null(strstr(err.detail, "cut short"));
    /* a short song (under the probe's second) is decoded whole and passes */
    len = make_wav(wav, sizeof wav, 8000, 0.5);
    assert_int_equal(probe(f, wav, len, &err), M2P_OK);
    /* not audio */
    const char text[] = "just some text, not a song\n just some text, not a song\n";
    assert_int_equal(probe(f, text, sizeof text - 1, &err), M2P_E_UPLOAD_NOT_AUDIO);
    assert_non_null(strstr(err.detail, "file 1 ('x')"));
    static const unsigned char png[64] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    assert_int_equal(probe(f, png, sizeof png, &err), M2P_E_UPLOAD_NOT_AUDIO);
    len = make_wav(wav, sizeof wav, 8000, 3.0);
    assert_int_equal(probe(f, wav, 44, &err), M2P_E_UPLOAD_NOT_AUDIO); /* a header, no samples */
}

static void insert_job(fixture *f, int64_t id, const char *spec, const char *track_id) {
    char text[1024];
    (void)snprintf(text, sizeof text,
                   "INSERT INTO jobs (id, status, spec, max_attempts, created_at, updated_at, queue_pos, track_id)"
                   " VALUES (%lld, 'succeeded', '%s', 3, 1, 1, %lld, %s)",
                   (long long)id, spec, (long long)id, track_id);
    sql(f, text);
}

static void test_prune(void **state) {
    fixture *f = *state;
    double now = m2p_now_wall();
    char text[512];
    /* A: a job's upload; B: nobody's; C: nobody's but young; D: the audio of a job's track; E: an
     * old track's audio whose job is gone */
    insert_job(f, 1, "{\"style\":\"x\",\"upload_sha256\":\"" SHA_A "\"}", "NULL");
    sql(f, "INSERT INTO tracks (id, kind, source, content_hash, path, created_at, updated_at)"
           " VALUES (7, 'youtube', 'u', '" SHA_D "', '/nowhere.ogg', 1, 1),"
           " (8, 'youtube', 'v', '" SHA_E "', '/nowhere2.ogg', 1, 1)");
    insert_job(f, 2, "{\"source\":\"u\"}", "7");
    const char *shas[] = {SHA_A, SHA_B, SHA_C, SHA_D, SHA_E};
    for (size_t i = 0; i < 5; i++) {
        (void)snprintf(text, sizeof text, "INSERT INTO uploads (sha256, data, created_at) VALUES ('%s', x'00', %f)",
                       shas[i], i == 2 ? now : now - 7200);
        sql(f, text);
    }
    m2p_sha256_set used;
    assert_int_equal(m2p_store_uploads_in_use(f->s, &used, NULL), M2P_OK);
    assert_int_equal(used.n, 2);
    assert_true(m2p_sha256_set_has(&used, SHA_A) && m2p_sha256_set_has(&used, SHA_D));
    assert_false(m2p_sha256_set_has(&used, SHA_B) || m2p_sha256_set_has(&used, SHA_E));
    m2p_sha256_set_free(&used);

    /* upload files: the same rules by age and use; a crashed upload's .part- file */
    write_sized(f, "uploads", SHA_A ".wav", 10, 7200);
    write_sized(f, "uploads", SHA_B ".wav", 10, 7200);
    write_sized(f, "uploads", SHA_C ".mp3", 10, 0);
    write_sized(f, "uploads", ".part-old", 10, 2 * 86400);
    write_sized(f, "uploads", "notes.txt", 10, 7200); /* not ours: left alone */
    /* caches: 1.3 MB over a 1 MB cap; the least recently used go first; a stale temp file goes */
    write_sized(f, "image-cache", "1.png", 400000, 3000);
    write_sized(f, "audio-cache", SHA_D ".ogg", 300000, 2000);
    write_sized(f, "peaks", SHA_D ".json", 300000, 1000);
    write_sized(f, "image-cache", "2.png", 300000, 10);
    write_sized(f, "image-cache", "3.png.tmp.1.2", 10, 7200);

    web_prune_stats st;
    m2p_error err;
    assert_int_equal(web_prune_once(&f->w, f->s, &st, &err), M2P_OK);
    assert_int_equal(st.upload_rows, 2);
    assert_int_equal(count(f, "SELECT count(*) FROM uploads WHERE sha256 IN ('" SHA_A "', '" SHA_C "', '" SHA_D "')"),
                     3);
    assert_int_equal(count(f, "SELECT count(*) FROM uploads"), 3);
    assert_true(exists(f, "uploads", SHA_A ".wav") && exists(f, "uploads", SHA_C ".mp3"));
    assert_false(exists(f, "uploads", SHA_B ".wav") || exists(f, "uploads", ".part-old"));
    assert_true(exists(f, "uploads", "notes.txt"));
    assert_false(exists(f, "image-cache", "1.png") || exists(f, "image-cache", "3.png.tmp.1.2"));
    assert_true(exists(f, "audio-cache", SHA_D ".ogg") && exists(f, "peaks", SHA_D ".json") &&
                exists(f, "image-cache", "2.png"));
    assert_int_equal(st.cache_bytes, 900000);
    /* one more file: the next least recently used goes */
    write_sized(f, "image-cache", "4.png", 300000, 5);
    assert_int_equal(web_prune_once(&f->w, f->s, &st, &err), M2P_OK);
    assert_false(exists(f, "audio-cache", SHA_D ".ogg"));
    assert_true(exists(f, "peaks", SHA_D ".json") && exists(f, "image-cache", "4.png"));
    assert_true(st.cache_bytes <= 1024 * 1024);
    /* deleting job 1 makes A unused (after the retention) */
    sql(f, "DELETE FROM jobs WHERE id = 1");
    assert_int_equal(web_prune_once(&f->w, f->s, &st, &err), M2P_OK);
    assert_int_equal(count(f, "SELECT count(*) FROM uploads WHERE sha256 = '" SHA_A "'"), 0);
    assert_false(exists(f, "uploads", SHA_A ".wav"));
}

typedef struct prune_run {
    fixture *f;
    web_prune_stats st;
    m2p_code code;
} prune_run;

static void *prune_thread(void *arg) {
    prune_run *p = arg;
    m2p_error err;
    p->code = web_prune_once(&p->f->w, p->f->s, &p->st, &err);
    return NULL;
}

/* An old, unused upload that a request stores again while the pruner runs:
 * the request renews its time under a shared flock (server.c), and the pruner
 * must wait for that lock and then see the new time, not remove the file the
 * request's job is about to use. */
static void test_prune_renewed(void **state) {
    fixture *f = *state;
    write_sized(f, "uploads", SHA_B ".wav", 10, 7200);
    char path[800];
    (void)snprintf(path, sizeof path, "%s/uploads/%s.wav", f->dir, SHA_B);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_SH), 0); /* the request holds it ... */
    prune_run run = {f, {0}, M2P_E_INTERNAL};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, prune_thread, &run), 0);
    struct timespec pause = {0, 300 * 1000 * 1000};
    (void)nanosleep(&pause, NULL);
    assert_true(exists(f, "uploads", SHA_B ".wav")); /* ... so the pruner waits */
    assert_int_equal(futimens(fd, NULL), 0);         /* used again */
    assert_int_equal(close(fd), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(run.code, M2P_OK);
    assert_true(exists(f, "uploads", SHA_B ".wav"));
    /* not renewed: the same file goes */
    write_sized(f, "uploads", SHA_B ".wav", 10, 7200);
    web_prune_stats st;
    m2p_error err;
    assert_int_equal(web_prune_once(&f->w, f->s, &st, &err), M2P_OK);
    assert_false(exists(f, "uploads", SHA_B ".wav"));
    assert_int_equal(st.bytes_removed, 10);
}

/* A cache path that does not fit is the server's problem (its data_dir), an
 * I/O error (500), not "image not found" (404). */
static void test_cache_path_too_long(void **state) {
    fixture *f = *state;
    char buf[M2P_PATH_MAX];
    m2p_error err;
    assert_int_equal(web_image_cache_path(&f->w, 42, ".thumb.webp", buf, sizeof buf, &err), M2P_OK);
    memset(f->w.cfg.data_dir, 'd', sizeof f->w.cfg.data_dir - 20);
    f->w.cfg.data_dir[0] = '/';
    f->w.cfg.data_dir[sizeof f->w.cfg.data_dir - 20] = '\0';
    assert_int_equal(web_image_cache_path(&f->w, 42, ".thumb.webp", buf, sizeof buf, &err), M2P_E_IO);
    assert_non_null(strstr(err.detail, "image 42"));
}

static void test_touch(void **state) {
    fixture *f = *state;
    sql(f, "INSERT INTO uploads (sha256, data, created_at) VALUES ('" SHA_B "', x'00', 5)");
    assert_int_equal(m2p_store_upload_touch(f->s, SHA_B, NULL), M2P_OK);
    assert_int_equal(m2p_store_upload_touch(f->s, SHA_C, NULL), M2P_OK); /* absent: no-op */
    int64_t deleted = -1;
    assert_int_equal(m2p_store_uploads_prune(f->s, m2p_now_wall() - 60, &deleted, NULL), M2P_OK);
    assert_int_equal(deleted, 0); /* touched: young again */
}

static void test_cascade(void **state) {
    fixture *f = *state;
    insert_job(f, 3, "{\"upload_sha256\":\"" SHA_A "\"}", "NULL");
    sql(f, "INSERT INTO images (id, job_id, idx, seed, path, width, height, created_at)"
           " VALUES (11, 3, 0, 1, '/x/11.png', 8, 8, 1), (12, 3, 1, 2, '/x/12.png', 8, 8, 1)");
    sql(f, "INSERT INTO image_data (image_id, png) VALUES (11, x'89'), (12, x'89')");
    int64_t ids[4];
    size_t n = 0;
    assert_int_equal(m2p_store_job_image_ids(f->s, 3, ids, 4, &n, NULL), M2P_OK);
    assert_int_equal(n, 2);
    assert_true(ids[0] == 11 && ids[1] == 12);
    char sha[65];
    bool found = false;
    sql(f, "UPDATE jobs SET track_id = 7 WHERE id = 3");
    assert_int_equal(m2p_store_track_upload_sha(f->s, 7, sha, &found, NULL), M2P_OK);
    assert_true(found);
    assert_string_equal(sha, SHA_A);
    assert_int_equal(m2p_store_job_delete(f->s, 3, NULL), M2P_OK);
    assert_int_equal(count(f, "SELECT count(*) FROM image_data"), 0);
    assert_int_equal(m2p_store_track_upload_sha(f->s, 7, sha, &found, NULL), M2P_OK);
    assert_false(found);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_probe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_renewed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_path_too_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_touch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cascade, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
