/*
 * tests/unit/jobs/test_job_lease.c — the distributed mode's store functions on
 * SQLite (the same SQL runs on PostgreSQL; test_scale_pg.py runs them there):
 * leased claims and takeover after a missed heartbeat, the attempt fencing of
 * the old owner, attempts used up → job_interrupted, heartbeats carrying a
 * cancel, claims of one delivered id, the runnable list the reconciler uses,
 * poison jobs, and image bytes stored with the outcome.
 */
#include "test_util.h"

#include "core/alloc.h"
#include "core/config.h"
#include "core/fs.h"
#include "store/jobs.h"
#include "store/store.h"

typedef struct fixture {
    char dir[64];
    m2p_config cfg;
    m2p_store *s;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    m2p_test_tmpdir(f->dir, sizeof f->dir);
    m2p_config_defaults(&f->cfg);
    assert_int_equal(m2p_config_set(&f->cfg, "data_dir", f->dir, NULL), M2P_OK);
    assert_int_equal(m2p_store_open(&f->cfg, &f->s, NULL), M2P_OK);
    assert_false(m2p_store_is_shared(f->s));
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

static int64_t add_job(m2p_store *s, int max_attempts) {
    m2p_job_new nj = {"{\"source\":\"https://www.youtube.com/watch?v=dQw4w9WgXcQ\"}", NULL, "src", "abstract",
                      "127.0.0.1", max_attempts, 0};
    int64_t id = 0;
    assert_int_equal(m2p_store_job_insert(s, &nj, &id, NULL), M2P_OK);
    return id;
}

static json_t *job(m2p_store *s, int64_t id) {
    json_t *j = NULL;
    assert_int_equal(m2p_store_job_get(s, id, &j, NULL), M2P_OK);
    return j;
}

static void test_lease_takeover_and_fencing(void **state) {
    fixture *f = *state;
    double base = m2p_now_wall() + 1000.0; /* later than every real timestamp written */
    int64_t id = add_job(f->s, 2);
    m2p_job_claim c1, c2;
    assert_int_equal(m2p_store_job_claim_lease(f->s, base, 10, &c1, NULL), M2P_OK);
    assert_int_equal(c1.id, id);
    assert_int_equal(c1.attempt, 1);
    /* the lease is live: nobody else gets it */
    assert_int_equal(m2p_store_job_claim_lease(f->s, base + 5, 10, &c2, NULL), M2P_E_NOT_FOUND);
    bool cancel = true;
    bool lost = true;
    assert_int_equal(m2p_store_job_heartbeat(f->s, id, 1, base + 8, &cancel, &lost, NULL), M2P_OK);
    assert_false(cancel);
    assert_false(lost);
    assert_int_equal(m2p_store_job_claim_lease(f->s, base + 15, 10, &c2, NULL), M2P_E_NOT_FOUND);
    /* no heartbeat for longer than the lease: taken over as attempt 2 */
    assert_int_equal(m2p_store_job_claim_lease(f->s, base + 19, 10, &c2, NULL), M2P_OK);
    assert_int_equal(c2.id, id);
    assert_int_equal(c2.attempt, 2);
    /* the old owner learns it lost the row, and cannot finish it */
    assert_int_equal(m2p_store_job_heartbeat(f->s, id, 1, base + 20, &cancel, &lost, NULL), M2P_OK);
    assert_true(lost);
    m2p_job_outcome o = {M2P_JOB_SUCCEEDED, M2P_OK, NULL, NULL, 0, NULL, 0, NULL};
    bool applied = true;
    assert_int_equal(m2p_store_job_finish(f->s, id, 1, &o, &applied, NULL), M2P_OK);
    assert_false(applied);
    /* attempt 2 dies too: attempts used up → failed job_interrupted, never claimed again */
    m2p_job_claim_clear(&c1);
    assert_int_equal(m2p_store_job_claim_lease(f->s, base + 40, 10, &c1, NULL), M2P_E_NOT_FOUND);
    json_t *j = job(f->s, id);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "failed");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "job_interrupted");
    assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 2);
    json_decref(j);
    m2p_job_claim_clear(&c1);
    m2p_job_claim_clear(&c2);
}

static void test_heartbeat_cancel_claim_id_runnable(void **state) {
    fixture *f = *state;
    double now = m2p_now_wall();
    int64_t a = add_job(f->s, 3);
    int64_t b = add_job(f->s, 3);
    int64_t ids[8];
    size_t n = 0;
    assert_int_equal(m2p_store_job_runnable(f->s, now, 30, ids, 8, &n, NULL), M2P_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], a);
    assert_int_equal(ids[1], b);
    /* the broker delivered b: only b is claimed */
    m2p_job_claim c;
    assert_int_equal(m2p_store_job_claim_id(f->s, b, now, 30, &c, NULL), M2P_OK);
    assert_int_equal(c.id, b);
    m2p_job_claim c2;
    assert_int_equal(m2p_store_job_claim_id(f->s, b, now, 30, &c2, NULL), M2P_E_NOT_FOUND); /* duplicate */
    assert_int_equal(m2p_store_job_runnable(f->s, now, 30, ids, 8, &n, NULL), M2P_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], a);
    /* a cancel from another host reaches the running attempt through its heartbeat */
    bool was_running = false;
    assert_int_equal(m2p_store_job_cancel(f->s, b, &was_running, NULL), M2P_OK);
    assert_true(was_running);
    bool cancel = false;
    bool lost = true;
    assert_int_equal(m2p_store_job_heartbeat(f->s, b, c.attempt, m2p_now_wall(), &cancel, &lost, NULL), M2P_OK);
    assert_true(cancel);
    assert_false(lost);
    /* a poison job fails once, with the reason */
    bool applied = false;
    assert_int_equal(m2p_store_job_fail_poison(f->s, a, "delivered 9 times", &applied, NULL), M2P_OK);
    assert_true(applied);
    assert_int_equal(m2p_store_job_fail_poison(f->s, a, "delivered 9 times", &applied, NULL), M2P_OK);
    assert_false(applied);
    json_t *j = job(f->s, a);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "detail")), "delivered 9 times");
    json_decref(j);
    m2p_job_claim_clear(&c);
}

static void test_image_bytes_with_outcome(void **state) {
    fixture *f = *state;
    int64_t id = add_job(f->s, 1);
    m2p_job_claim c;
    assert_int_equal(m2p_store_job_claim(f->s, m2p_now_wall(), &c, NULL), M2P_OK);
    static const unsigned char png[] = {0x89, 'P', 'N', 'G', 0, 1, 2, 0, 255};
    m2p_image_row rows[2];
    memset(rows, 0, sizeof rows);
    for (int i = 0; i < 2; i++) {
        rows[i].index = i;
        rows[i].seed = 7u + (uint32_t)i;
        rows[i].path = "/nowhere.png";
        rows[i].width = rows[i].height = 8;
        rows[i].png = png;
        rows[i].png_len = sizeof png;
    }
    m2p_job_outcome o = {M2P_JOB_SUCCEEDED, M2P_OK, NULL, NULL, 0, rows, 2, NULL};
    bool applied = false;
    assert_int_equal(m2p_store_job_finish(f->s, id, c.attempt, &o, &applied, NULL), M2P_OK);
    assert_true(applied);
    json_t *j = job(f->s, id);
    json_t *imgs = json_object_get(j, "images");
    assert_int_equal(json_array_size(imgs), 2);
    int64_t img = json_integer_value(json_object_get(json_array_get(imgs, 1), "id"));
    json_decref(j);
    unsigned char *got = NULL;
    size_t len = 0;
    assert_int_equal(m2p_store_image_data(f->s, img, &got, &len, NULL), M2P_OK);
    assert_int_equal(len, sizeof png);
    assert_memory_equal(got, png, sizeof png);
    m2p_free(got);
    m2p_error e;
    assert_int_equal(m2p_store_image_data(f->s, img + 100, &got, &len, &e), M2P_E_IMAGE_NOT_FOUND);
    m2p_job_claim_clear(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lease_takeover_and_fencing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_cancel_claim_id_runnable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_image_bytes_with_outcome, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
