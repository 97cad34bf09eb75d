/*
 * tests/unit/store/test_store.c — SQLite store: migrations, tracks, analyses cache.
 */
#include "test_util.h"

#include <sqlite3.h>

#include "core/alloc.h"
#include "store/jobs.h"
#include "store/store.h"
#include "store/store_impl.h"

static void make_cfg(m2p_config *cfg, const char *dir) {
    m2p_config_defaults(cfg);
    assert_int_equal(m2p_config_set(cfg, "data_dir", dir, NULL), M2P_OK);
}

static void test_open_migrates_once(void **state) {
    (void)state;
    char dir[64];
    m2p_test_tmpdir(dir, sizeof dir);
    m2p_config cfg;
    make_cfg(&cfg, dir);
    m2p_store *s = NULL;
    m2p_error err;
    assert_int_equal(m2p_store_open(&cfg, &s, &err), M2P_OK);
    assert_int_equal(m2p_store_schema_version(s), m2p_store_n_migrations);
    m2p_store_close(s);
    /* Reopening applies nothing new and keeps the version. */
    assert_int_equal(m2p_store_open(&cfg, &s, &err), M2P_OK);
    assert_int_equal(m2p_store_schema_version(s), m2p_store_n_migrations);
    /* A database from the future is refused, not damaged. */
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", m2p_store_n_migrations + 5);
    assert_int_equal(sqlite3_exec(s->db, sql, NULL, NULL, NULL), SQLITE_OK);
    m2p_store_close(s);
    assert_int_equal(m2p_store_open(&cfg, &s, &err), M2P_E_DB_MIGRATE);
    assert_null(s);
    assert_non_null(strstr(err.detail, "newer"));
    m2p_test_rmdir(dir);
}

static void test_tracks_and_analyses(void **state) {
    (void)state;
    char dir[64];
    m2p_test_tmpdir(dir, sizeof dir);
    m2p_config cfg;
    make_cfg(&cfg, dir);
    m2p_store *s = NULL;
    assert_int_equal(m2p_store_open(&cfg, &s, NULL), M2P_OK);
    m2p_track t;
    memset(&t, 0, sizeof t);
    t.kind = M2P_SOURCE_YOUTUBE;
    snprintf(t.source, sizeof t.source, "https://www.youtube.com/watch?v=dQw4w9WgXcQ");
    snprintf(t.video_id, sizeof t.video_id, "dQw4w9WgXcQ");
    snprintf(t.title, sizeof t.title, "Ünïcode title — ok");
    snprintf(t.uploader, sizeof t.uploader, "someone");
    t.duration_s = 212.5;
    snprintf(t.content_hash, sizeof t.content_hash, "%064d", 7);
    snprintf(t.path, sizeof t.path, "/tmp/x.webm");
    int64_t id1 = 0, id2 = 0;
    assert_int_equal(m2p_store_track_put(s, &t, &id1, NULL), M2P_OK);
    snprintf(t.title, sizeof t.title, "renamed");
    assert_int_equal(m2p_store_track_put(s, &t, &id2, NULL), M2P_OK);
    assert_int_equal(id1, id2); /* same content hash → same row */
    m2p_track got;
    assert_int_equal(m2p_store_track_get(s, id1, &got, NULL), M2P_OK);
    assert_string_equal(got.title, "renamed");
    assert_int_equal(got.kind, M2P_SOURCE_YOUTUBE);
    assert_true(got.duration_s == 212.5);
    int64_t fid = 0;
    assert_int_equal(m2p_store_track_find_video(s, "dQw4w9WgXcQ", &got, &fid, NULL), M2P_OK);
    assert_int_equal(fid, id1);
    assert_int_equal(m2p_store_track_find_video(s, "nope", &got, &fid, NULL), M2P_E_NOT_FOUND);
    assert_int_equal(m2p_store_track_get(s, 999, &got, NULL), M2P_E_NOT_FOUND);

    char *json = NULL;
    assert_int_equal(m2p_store_analysis_get(s, t.content_hash, "1", &json, NULL), M2P_OK);
    assert_null(json);
    assert_int_equal(m2p_store_analysis_put(s, t.content_hash, "1", "{\"tempo_bpm\":124}", NULL), M2P_OK);
    assert_int_equal(m2p_store_analysis_get(s, t.content_hash, "1", &json, NULL), M2P_OK);
    assert_string_equal(json, "{\"tempo_bpm\":124}");
    m2p_free(json);
    /* Another analyzer version is a miss: features are recomputed when the analyzer changes. */
    assert_int_equal(m2p_store_analysis_get(s, t.content_hash, "2", &json, NULL), M2P_OK);
    assert_null(json);
    m2p_store_close(s);
    m2p_test_rmdir(dir);
}

static void test_bad_path(void **state) {
    (void)state;
    m2p_config cfg;
    m2p_config_defaults(&cfg);
    assert_int_equal(m2p_config_set(&cfg, "database_url", "/proc/no/such/dir/x.db", NULL), M2P_OK);
    m2p_store *s = NULL;
    m2p_error err;
    assert_int_equal(m2p_store_open(&cfg, &s, &err), M2P_E_DB_OPEN);
    assert_null(s);
}

/* A query that fails while its rows are read is an error, not partial (here:
 * zero) counts. A temporary view shadows the jobs table with one whose rows
 * fail to compute (integer overflow in abs()). */
static void test_stage_counts_step_error(void **state) {
    (void)state;
    char dir[64];
    m2p_test_tmpdir(dir, sizeof dir);
    m2p_config cfg;
    make_cfg(&cfg, dir);
    m2p_store *s = NULL;
    m2p_error err;
    assert_int_equal(m2p_store_open(&cfg, &s, &err), M2P_OK);
    json_t *counts = NULL;
    assert_int_equal(m2p_store_job_stage_counts(s, &counts, &err), M2P_OK);
    assert_non_null(counts);
    json_decref(counts);
    assert_int_equal(sqlite3_exec(s->db,
                                  "CREATE TEMP VIEW jobs AS SELECT 'analyze' AS stage,"
                                  " CASE WHEN abs(-9223372036854775807 - 1) > 0 THEN 'queued' END AS status",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    counts = NULL;
    m2p_error_clear(&err);
    m2p_code c = m2p_store_job_stage_counts(s, &counts, &err);
    assert_int_not_equal(c, M2P_OK);
    assert_null(counts);
    assert_non_null(strstr(err.detail, "stage counts"));
    m2p_store_close(s);
    m2p_test_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_migrates_once),
        cmocka_unit_test(test_tracks_and_analyses),
        cmocka_unit_test(test_bad_path),
        cmocka_unit_test(test_stage_counts_step_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
