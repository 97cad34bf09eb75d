/*
 * tests/unit/jobs/test_job_store.c — the persistent queue in SQLite: atomic
 * claims, the attempt fencing token, idempotent completion, cancel/retry/delete
 * rules, recovery after a crash, dense per-job event sequences, settings,
 * templates, step statistics, and the queue's backoff and spec helpers.
 */
#include "test_util.h"

#include <pthread.h>

#include "core/config.h"
#include "jobs/queue.h"
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

static int64_t add_job(m2p_store *s, const char *hash, int max_attempts) {
    m2p_job_new nj = {"{\"source\":\"https://www.youtube.com/watch?v=dQw4w9WgXcQ\",\"seed\":1}", hash, "src", "abstract",
                      "127.0.0.1", max_attempts, 0};
    int64_t id = 0;
    assert_int_equal(m2p_store_job_insert(s, &nj, &id, NULL), M2P_OK);
    assert_true(id > 0);
    return id;
}

static const char *status_of(m2p_store *s, int64_t id) {
    static char buf[32];
    json_t *j = NULL;
    assert_int_equal(m2p_store_job_get(s, id, &j, NULL), M2P_OK);
    (void)snprintf(buf, sizeof buf, "%s", json_string_value(json_object_get(j, "status")));
    json_decref(j);
    return buf;
}

static void test_claim_order_and_fencing(void **state) {
    fixture *f = *state;
    int64_t a = add_job(f->s, "h1", 3);
    int64_t b = add_job(f->s, "h2", 3);
    m2p_job_claim c1;
    m2p_job_claim c2;
    m2p_job_claim c3;
    assert_int_equal(m2p_store_job_claim(f->s, 1e12, &c1, NULL), M2P_OK);
    assert_int_equal(c1.id, a); /* oldest first */
    assert_int_equal(c1.attempt, 1);
    assert_non_null(strstr(c1.spec_json, "dQw4w9WgXcQ"));
    assert_int_equal(m2p_store_job_claim(f->s, 1e12, &c2, NULL), M2P_OK);
    assert_int_equal(c2.id, b);
    assert_int_equal(m2p_store_job_claim(f->s, 1e12, &c3, NULL), M2P_E_NOT_FOUND);
    /* a stale attempt number cannot finish the job */
    m2p_image_row img = {.index = 0, .seed = 1, .path = "/x/0.png", .width = 8, .height = 8};
    m2p_job_outcome ok = {M2P_JOB_SUCCEEDED, M2P_OK, NULL, "{\"r\":1}", 0, &img, 1, NULL};
    bool applied = true;
    assert_int_equal(m2p_store_job_finish(f->s, a, c1.attempt + 1, &ok, &applied, NULL), M2P_OK);
    assert_false(applied);
    assert_string_equal(status_of(f->s, a), "running");
    assert_int_equal(m2p_store_job_finish(f->s, a, c1.attempt, &ok, &applied, NULL), M2P_OK);
    assert_true(applied);
    assert_string_equal(status_of(f->s, a), "succeeded");
    /* completing again changes nothing: one image set */
    assert_int_equal(m2p_store_job_finish(f->s, a, c1.attempt, &ok, &applied, NULL), M2P_OK);
    assert_false(applied);
    m2p_image_filter flt = {.job_id = a};
    json_t *imgs = NULL;
    assert_int_equal(m2p_store_images_query(f->s, &flt, &imgs, NULL), M2P_OK);
    assert_int_equal(json_integer_value(json_object_get(imgs, "total")), 1);
    json_decref(imgs);
    /* dedupe finds the succeeded job by its request hash only */
    int64_t found = 0;
    assert_int_equal(m2p_store_job_find_hash(f->s, "h1", &found, NULL), M2P_OK);
    assert_int_equal(found, a);
    assert_int_equal(m2p_store_job_find_hash(f->s, "h2", &found, NULL), M2P_E_NOT_FOUND);
    m2p_job_claim_clear(&c1);
    m2p_job_claim_clear(&c2);
}

static void test_requeue_backoff_and_pause(void **state) {
    fixture *f = *state;
    int64_t a = add_job(f->s, NULL, 3);
    m2p_job_claim c;
    assert_int_equal(m2p_store_job_claim(f->s, 100.0, &c, NULL), M2P_OK);
    assert_int_equal(m2p_store_job_requeue(f->s, a, c.attempt, 200.0, M2P_E_FETCH_NETWORK, "net down", false, NULL),
                     M2P_OK);
    m2p_job_claim_clear(&c);
    json_t *j = NULL;
    assert_int_equal(m2p_store_job_get(f->s, a, &j, NULL), M2P_OK);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "queued");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "fetch_network");
    assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 1);
    json_decref(j);
    /* not before its time */
    assert_int_equal(m2p_store_job_claim(f->s, 150.0, &c, NULL), M2P_E_NOT_FOUND);
    /* nor while paused */
    assert_int_equal(m2p_store_setting_put(f->s, "queue_paused", "1", NULL), M2P_OK);
    assert_int_equal(m2p_store_job_claim(f->s, 250.0, &c, NULL), M2P_E_NOT_FOUND);
    assert_int_equal(m2p_store_setting_put(f->s, "queue_paused", NULL, NULL), M2P_OK);
    assert_int_equal(m2p_store_job_claim(f->s, 250.0, &c, NULL), M2P_OK);
    assert_int_equal(c.attempt, 2);
    /* shutdown gives the attempt back */
    assert_int_equal(m2p_store_job_requeue(f->s, a, c.attempt, 0, M2P_OK, NULL, true, NULL), M2P_OK);
    m2p_job_claim_clear(&c);
    assert_int_equal(m2p_store_job_claim(f->s, 250.0, &c, NULL), M2P_OK);
    assert_int_equal(c.attempt, 2);
    m2p_job_claim_clear(&c);
    /* backoff: base * 2^(attempt-1), jitter 0.5..1.5, capped */
    assert_true(m2p_queue_backoff(2.0, 1, 0.0) == 1.0);
    assert_true(m2p_queue_backoff(2.0, 3, 0.5) == 8.0);
    assert_true(m2p_queue_backoff(2.0, 3, 1.0) == 12.0);
    assert_true(m2p_queue_backoff(2.0, 30, 1.0) == 450.0);
}

static void test_cancel_retry_delete_recover(void **state) {
    fixture *f = *state;
    int64_t q = add_job(f->s, NULL, 2);
    int64_t r = add_job(f->s, NULL, 2);
    bool was_running = true;
    assert_int_equal(m2p_store_job_cancel(f->s, q, &was_running, NULL), M2P_OK);
    assert_false(was_running);
    assert_string_equal(status_of(f->s, q), "cancelled");
    assert_int_equal(m2p_store_job_cancel(f->s, q, &was_running, NULL), M2P_E_JOB_STATE);
    assert_int_equal(m2p_store_job_cancel(f->s, 9999, &was_running, NULL), M2P_E_JOB_NOT_FOUND);
    m2p_job_claim c;
    assert_int_equal(m2p_store_job_claim(f->s, 1e12, &c, NULL), M2P_OK);
    assert_int_equal(c.id, r);
    assert_int_equal(m2p_store_job_cancel(f->s, r, &was_running, NULL), M2P_OK);
    assert_true(was_running);
    bool requested = false;
    assert_int_equal(m2p_store_job_cancel_requested(f->s, r, &requested, NULL), M2P_OK);
    assert_true(requested);
    assert_int_equal(m2p_store_job_delete(f->s, r, NULL), M2P_E_JOB_STATE);
    assert_int_equal(m2p_store_job_retry(f->s, r, NULL), M2P_E_JOB_STATE);
    /* the process dies: running → queued (attempt 1 of 2 used) */
    int requeued = 0;
    int failed = 0;
    assert_int_equal(m2p_store_job_recover(f->s, &requeued, &failed, NULL), M2P_OK);
    assert_true(requeued == 1 && failed == 0);
    m2p_job_claim_clear(&c);
    assert_int_equal(m2p_store_job_claim(f->s, 1e12, &c, NULL), M2P_OK);
    assert_int_equal(c.attempt, 2);
    m2p_job_claim_clear(&c);
    /* dies again with no attempts left: failed, job_interrupted */
    assert_int_equal(m2p_store_job_recover(f->s, &requeued, &failed, NULL), M2P_OK);
    assert_true(requeued == 0 && failed == 1);
    assert_string_equal(status_of(f->s, r), "failed");
    assert_int_equal(m2p_store_job_retry(f->s, r, NULL), M2P_OK);
    assert_string_equal(status_of(f->s, r), "queued");
    assert_int_equal(m2p_store_job_retry(f->s, q, NULL), M2P_OK);
    assert_int_equal(m2p_store_job_cancel(f->s, q, &was_running, NULL), M2P_OK);
    assert_int_equal(m2p_store_job_delete(f->s, q, NULL), M2P_OK);
    json_t *j = NULL;
    assert_int_equal(m2p_store_job_get(f->s, q, &j, NULL), M2P_E_JOB_NOT_FOUND);
    json_t *counts = NULL;
    assert_int_equal(m2p_store_job_counts(f->s, &counts, NULL), M2P_OK);
    assert_int_equal(json_integer_value(json_object_get(counts, "queued")), 1);
    assert_int_equal(json_integer_value(json_object_get(counts, "cancelled")), 0);
    json_decref(counts);
}

static void test_events_dense(void **state) {
    fixture *f = *state;
    int64_t a = add_job(f->s, NULL, 1);
    int64_t b = add_job(f->s, NULL, 1);
    for (int i = 0; i < 5; i++) {
        json_t *d = json_pack("{s:i}", "i", i);
        int64_t seq = 0;
        assert_int_equal(m2p_store_job_event(f->s, i % 2 == 0 ? a : b, "progress", d, "{\"x\":1}", i == 4, &seq, NULL),
                         M2P_OK);
        json_decref(d);
        assert_int_equal(seq, i / 2 + 2); /* seq 1 is the "queued" event written with the row */
    }
    json_t *ev = NULL;
    assert_int_equal(m2p_store_job_events(f->s, a, 0, 100, &ev, NULL), M2P_OK);
    assert_int_equal(json_array_size(ev), 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 0), "status")), "queued");
    json_decref(ev);
    assert_int_equal(m2p_store_job_events(f->s, a, 2, 100, &ev, NULL), M2P_OK);
    assert_int_equal(json_array_size(ev), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(ev, 0), "seq")), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(ev, 1), "i")), 4);
    json_decref(ev);
    int64_t seq = 0;
    assert_int_equal(m2p_store_job_seq(f->s, a, &seq, NULL), M2P_OK);
    assert_int_equal(seq, 4);
    assert_int_equal(m2p_store_queue_events(f->s, 0, 100, &ev, NULL), M2P_OK);
    assert_int_equal(json_array_size(ev), 3); /* two creations + the one queue_too event */
    json_decref(ev);
    assert_int_equal(m2p_store_job_event(f->s, 424242, "x", NULL, NULL, false, NULL, NULL), M2P_E_JOB_NOT_FOUND);
    json_t *j = NULL;
    assert_int_equal(m2p_store_job_get(f->s, a, &j, NULL), M2P_OK);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "progress"), "x")), 1);
    json_decref(j);
}

typedef struct claimer {
    const m2p_config *cfg;
    int claimed;
} claimer;

static void *claim_all(void *arg) {
    claimer *c = arg;
    m2p_store *s = NULL;
    if (m2p_store_open(c->cfg, &s, NULL) != M2P_OK) {
        return NULL;
    }
    m2p_job_claim cl;
    while (m2p_store_job_claim(s, 1e12, &cl, NULL) == M2P_OK) {
        c->claimed++;
        m2p_job_claim_clear(&cl);
    }
    m2p_store_close(s);
    return NULL;
}

static void test_concurrent_claims(void **state) {
    fixture *f = *state;
    for (int i = 0; i < 60; i++) {
        (void)add_job(f->s, NULL, 1);
    }
    pthread_t t[4];
    claimer c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (claimer){&f->cfg, 0};
        assert_int_equal(pthread_create(&t[i], NULL, claim_all, &c[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        total += c[i].claimed;
    }
    assert_int_equal(total, 60); /* each job claimed exactly once */
}

static void test_settings_templates_stats(void **state) {
    fixture *f = *state;
    assert_int_equal(m2p_store_setting_put(f->s, "steps", "8", NULL), M2P_OK);
    assert_int_equal(m2p_store_setting_put(f->s, "steps", "6", NULL), M2P_OK);
    char buf[16];
    bool found = false;
    assert_int_equal(m2p_store_setting_get(f->s, "steps", buf, sizeof buf, &found, NULL), M2P_OK);
    assert_true(found);
    assert_string_equal(buf, "6");
    int64_t id = 0;
    int64_t id2 = 0;
    assert_int_equal(m2p_store_template_put(f->s, 0, "t1", "poster {mood}", &id, NULL), M2P_OK);
    assert_int_equal(m2p_store_template_put(f->s, 0, "t1", "dup", &id2, NULL), M2P_E_DB_CONFLICT);
    assert_int_equal(m2p_store_template_put(f->s, id, "t1", "art {mood}", &id2, NULL), M2P_OK);
    json_t *t = NULL;
    assert_int_equal(m2p_store_template_find(f->s, "t1", &t, NULL), M2P_OK);
    assert_string_equal(json_string_value(json_object_get(t, "text")), "art {mood}");
    json_decref(t);
    assert_int_equal(m2p_store_template_delete(f->s, id, NULL), M2P_OK);
    assert_int_equal(m2p_store_template_delete(f->s, id, NULL), M2P_E_NOT_FOUND);
    double mean = 0;
    assert_int_equal(m2p_store_step_stat_add(f->s, "render", "sonic", "512x512", 2.0, NULL), M2P_OK);
    assert_int_equal(m2p_store_step_stat_add(f->s, "render", "sonic", "512x512", 4.0, NULL), M2P_OK);
    assert_int_equal(m2p_store_step_stat_get(f->s, "render", "sonic", "512x512", &mean, &found, NULL), M2P_OK);
    assert_true(found);
    assert_true(mean > 2.99 && mean < 3.01);
    assert_int_equal(m2p_store_step_stat_get(f->s, "render", "lcm", "512x512", &mean, &found, NULL), M2P_OK);
    assert_false(found);
}

static void test_spec_from_json(void **state) {
    fixture *f = *state;
    json_t *j = json_pack("{s:s, s:s, s:i, s:i, s:i, s:b}", "upload_path", "/d/uploads/x.wav", "upload_name", "x.wav",
                          "seed", 77, "variations", 3, "width", 256, "layout", 1);
    m2p_job_spec spec;
    char dir[256];
    assert_int_equal(m2p_queue_spec_from_json(j, &f->cfg, 12, &spec, dir, sizeof dir, NULL), M2P_OK);
    assert_string_equal(spec.upload_path, "/d/uploads/x.wav");
    assert_true(spec.seed_set && spec.seed == 77 && spec.n == 3 && spec.width == 256 && spec.layout);
    assert_false(spec.allow_paths);
    assert_non_null(strstr(spec.out_dir, "/job-12"));
    json_decref(j);
    j = json_pack("{s:i}", "seed", 1);
    assert_int_equal(m2p_queue_spec_from_json(j, &f->cfg, 1, &spec, dir, sizeof dir, NULL), M2P_E_URL_EMPTY);
    json_decref(j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_claim_order_and_fencing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requeue_backoff_and_pause, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_retry_delete_recover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_dense, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings_templates_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spec_from_json, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
