/*
 * tests/unit/jobs/test_job_stage.c — jobs in two stages (analyze on CPU
 * workers, render on GPU workers) in the store, on SQLite (the same SQL runs
 * on PostgreSQL in test_scale_routing.py): claims filtered by stage, the
 * advance from analyze to render (kept by the same worker, or queued for a
 * render worker), a render-stage job that waits instead of failing when no
 * render worker comes, one attempt budget per stage with the attempt number
 * as fencing token across stages, a cancel during the analysis, retry from
 * the start, the runnable list per stage and the stage in the job's JSON.
 */
#include "test_util.h"

#include "core/alloc.h"
#include "core/config.h"
#include "core/fs.h"
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

static void assert_job(m2p_store *s, int64_t id, const char *status, const char *stage, int attempts) {
    json_t *j = job(s, id);
    assert_string_equal(json_string_value(json_object_get(j, "status")), status);
    assert_string_equal(json_string_value(json_object_get(j, "stage")), stage);
    assert_int_equal(json_integer_value(json_object_get(j, "attempts")), attempts);
    json_decref(j);
}

/* A CPU worker takes analyze-stage jobs only, a GPU worker render-stage jobs
 * only; the advance hands the job from one queue to the other with its data. */
static void test_stage_queues(void **state) {
    fixture *f = *state;
    double now = m2p_now_wall();
    int64_t id = add_job(f->s, 3);
    assert_job(f->s, id, "queued", "analyze", 0);
    m2p_job_claim c;
    /* a render worker finds nothing: the job is in the analyze stage */
    assert_int_equal(m2p_store_job_claim_stage(f->s, 0, M2P_STAGES_RENDER, now, 30, &c, NULL), M2P_E_NOT_FOUND);
    assert_int_equal(m2p_store_job_claim_stage(f->s, id, M2P_STAGES_RENDER, now, 30, &c, NULL), M2P_E_NOT_FOUND);
    assert_int_equal(m2p_store_job_claim_stage(f->s, 0, M2P_STAGES_ANALYZE, now, 30, &c, NULL), M2P_OK);
    assert_int_equal(c.id, id);
    assert_int_equal(c.stage, M2P_STAGE_ANALYZE);
    assert_null(c.stage_json);
    assert_int_equal(c.attempt, 1);
    /* analysis done; no render here: queued in stage render */
    bool applied = false;
    assert_int_equal(m2p_store_job_advance(f->s, id, c.attempt, "{\"format\":1}", false, &applied, NULL), M2P_OK);
    assert_true(applied);
    m2p_job_claim_clear(&c);
    assert_job(f->s, id, "queued", "render", 1);
    /* only CPU workers: nothing for them, and the job waits (never fails), even long after any lease */
    assert_int_equal(m2p_store_job_claim_stage(f->s, 0, M2P_STAGES_ANALYZE, now + 1e6, 30, &c, NULL),
                     M2P_E_NOT_FOUND);
    assert_int_equal(m2p_store_job_expire(f->s, now + 1e6, 30, NULL), M2P_OK);
    assert_job(f->s, id, "queued", "render", 1);
    int64_t ids[4];
    m2p_job_stage stages[4];
    size_t n = 0;
    assert_int_equal(m2p_store_job_runnable_stages(f->s, now, 30, ids, stages, 4, &n, NULL), M2P_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], id);
    assert_int_equal(stages[0], M2P_STAGE_RENDER);
    json_t *counts = NULL;
    assert_int_equal(m2p_store_job_stage_counts(f->s, &counts, NULL), M2P_OK);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(counts, "render"), "queued")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(counts, "analyze"), "queued")), 0);
    json_decref(counts);
    int64_t other = add_job(f->s, 3); /* queued for analysis: not ahead of the render-stage job */
    json_t *pj = job(f->s, id);
    assert_int_equal(json_integer_value(json_object_get(pj, "queue_position")), 1);
    json_decref(pj);
    pj = job(f->s, other);
    assert_int_equal(json_integer_value(json_object_get(pj, "queue_position")), 1);
    json_decref(pj);
    /* a GPU worker comes: it gets the stage data; its claim is render attempt 1 (attempt 2 of the job) */
    assert_int_equal(m2p_store_job_claim_stage(f->s, id, M2P_STAGES_RENDER, now, 30, &c, NULL), M2P_OK);
    assert_int_equal(c.stage, M2P_STAGE_RENDER);
    assert_non_null(c.stage_json);
    assert_string_equal(c.stage_json, "{\"format\":1}");
    assert_int_equal(c.attempt, 2);
    json_t *j = job(f->s, id);
    assert_int_equal(json_integer_value(json_object_get(j, "stage_attempt")), 1);
    json_decref(j);
    /* the analyze attempt's late writes are fenced out */
    assert_int_equal(m2p_store_job_advance(f->s, id, 1, "{}", false, &applied, NULL), M2P_OK);
    assert_false(applied);
    m2p_job_outcome o = {M2P_JOB_SUCCEEDED, M2P_OK, NULL, "{}", 0, NULL, 0, NULL};
    assert_int_equal(m2p_store_job_finish(f->s, id, 1, &o, &applied, NULL), M2P_OK);
    assert_false(applied);
    assert_int_equal(m2p_store_job_finish(f->s, id, c.attempt, &o, &applied, NULL), M2P_OK);
    assert_true(applied);
    m2p_job_claim_clear(&c);
    assert_job(f->s, id, "succeeded", "render", 2);
}

/* A worker of role all keeps its claim across the stages (no round trip). */
static void test_advance_keep(void **state) {
    fixture *f = *state;
    double now = m2p_now_wall();
    int64_t id = add_job(f->s, 2);
    m2p_job_claim c;
    assert_int_equal(m2p_store_job_claim_stage(f->s, 0, M2P_STAGES_ALL, now, 30, &c, NULL), M2P_OK);
    bool applied = false;
    assert_int_equal(m2p_store_job_advance(f->s, id, c.attempt, "{\"format\":1}", true, &applied, NULL), M2P_OK);
    assert_true(applied);
    assert_job(f->s, id, "running", "render", 1);
    /* its lease is live: nobody else takes it */
    m2p_job_claim other;
    assert_int_equal(m2p_store_job_claim_stage(f->s, 0, M2P_STAGES_ALL, now + 1, 30, &other, NULL), M2P_E_NOT_FOUND);
    /* the worker dies mid-render: after the lease a render worker takes it as attempt 2 (one budget) */
    double later = now + 100;
    assert_int_equal(m2p_store_job_claim_stage(f->s, 0, M2P_STAGES_ANALYZE, later, 30, &other, NULL),
                     M2P_E_NOT_FOUND);
    assert_int_equal(m2p_store_job_claim_stage(f->s, 0, M2P_STAGES_RENDER, later, 30, &other, NULL), M2P_OK);
    assert_int_equal(other.attempt, 2);
    assert_int_equal(other.stage, M2P_STAGE_RENDER);
    assert_string_equal(other.stage_json, "{\"format\":1}");
    /* the dead owner's finish does nothing: one image set */
    m2p_image_row img = {.index = 0, .seed = 1, .path = "/x.png", .width = 8, .height = 8};
    m2p_job_outcome o = {M2P_JOB_SUCCEEDED, M2P_OK, NULL, "{}", 0, &img, 1, NULL};
    assert_int_equal(m2p_store_job_finish(f->s, id, c.attempt, &o, &applied, NULL), M2P_OK);
    assert_false(applied);
    assert_int_equal(m2p_store_job_finish(f->s, id, other.attempt, &o, &applied, NULL), M2P_OK);
    assert_true(applied);
    json_t *j = job(f->s, id);
    assert_int_equal(json_array_size(json_object_get(j, "images")), 1);
    json_decref(j);
    m2p_job_claim_clear(&c);
    m2p_job_claim_clear(&other);
    /* one budget across kept stages: attempt 1 analyse + render, attempt 2 render, then used up */
    int64_t id2 = add_job(f->s, 2);
    assert_int_equal(m2p_store_job_claim_stage(f->s, 0, M2P_STAGES_ALL, later, 30, &c, NULL), M2P_OK);
    assert_int_equal(c.id, id2);
    assert_int_equal(m2p_store_job_advance(f->s, id2, c.attempt, "{}", true, &applied, NULL), M2P_OK);
    m2p_job_claim_clear(&c);
    assert_int_equal(m2p_store_job_claim_stage(f->s, 0, M2P_STAGES_ALL, later + 100, 30, &c, NULL), M2P_OK);
    assert_int_equal(c.attempt, 2);
    m2p_job_claim_clear(&c);
    assert_int_equal(m2p_store_job_claim_stage(f->s, 0, M2P_STAGES_ALL, later + 200, 30, &c, NULL), M2P_E_NOT_FOUND);
    json_t *j2 = job(f->s, id2);
    assert_string_equal(json_string_value(json_object_get(j2, "status")), "failed");
    json_decref(j2);
}

/* Each stage has max_attempts attempts of its own: attempts the analysis used
 * do not count against the render; a render that dies every time fails
 * job_interrupted after max_attempts render attempts. */
static void test_attempts_per_stage(void **state) {
    fixture *f = *state;
    double now = m2p_now_wall() + 1000.0;
    int64_t id = add_job(f->s, 2);
    m2p_job_claim c;
    /* analysis: attempt 1 dies, attempt 2 succeeds */
    assert_int_equal(m2p_store_job_claim_stage(f->s, 0, M2P_STAGES_ANALYZE, now, 10, &c, NULL), M2P_OK);
    m2p_job_claim_clear(&c);
    assert_int_equal(m2p_store_job_claim_stage(f->s, 0, M2P_STAGES_ANALYZE, now + 20, 10, &c, NULL), M2P_OK);
    assert_int_equal(c.attempt, 2);
    bool applied = false;
    assert_int_equal(m2p_store_job_advance(f->s, id, c.attempt, "{}", false, &applied, NULL), M2P_OK);
    assert_true(applied);
    m2p_job_claim_clear(&c);
    /* render: two attempts of its own (job attempts 3 and 4), both die */
    assert_int_equal(m2p_store_job_claim_stage(f->s, 0, M2P_STAGES_RENDER, now + 40, 10, &c, NULL), M2P_OK);
    assert_int_equal(c.attempt, 3);
    m2p_job_claim_clear(&c);
    assert_int_equal(m2p_store_job_claim_stage(f->s, 0, M2P_STAGES_RENDER, now + 60, 10, &c, NULL), M2P_OK);
    assert_int_equal(c.attempt, 4);
    m2p_job_claim_clear(&c);
    assert_int_equal(m2p_store_job_claim_stage(f->s, 0, M2P_STAGES_RENDER, now + 80, 10, &c, NULL), M2P_E_NOT_FOUND);
    json_t *j = job(f->s, id);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "failed");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "job_interrupted");
    json_decref(j);
    /* retry starts over at the analysis */
    assert_int_equal(m2p_store_job_retry(f->s, id, NULL), M2P_OK);
    assert_job(f->s, id, "queued", "analyze", 0);
    assert_int_equal(m2p_store_job_claim_stage(f->s, 0, M2P_STAGES_ANALYZE, now + 100, 10, &c, NULL), M2P_OK);
    assert_int_equal(c.stage, M2P_STAGE_ANALYZE);
    assert_null(c.stage_json);
    m2p_job_claim_clear(&c);
}

/* A cancel requested while the analysis ran is not lost by the advance. */
static void test_cancel_during_analysis(void **state) {
    fixture *f = *state;
    double now = m2p_now_wall();
    int64_t id = add_job(f->s, 3);
    m2p_job_claim c;
    assert_int_equal(m2p_store_job_claim_stage(f->s, 0, M2P_STAGES_ANALYZE, now, 30, &c, NULL), M2P_OK);
    bool was_running = false;
    assert_int_equal(m2p_store_job_cancel(f->s, id, &was_running, NULL), M2P_OK);
    assert_true(was_running);
    bool applied = true;
    assert_int_equal(m2p_store_job_advance(f->s, id, c.attempt, "{}", false, &applied, NULL), M2P_OK);
    assert_false(applied);
    assert_job(f->s, id, "running", "analyze", 1);
    m2p_job_claim_clear(&c);
}

/* Track audio kept for API hosts: existence by content hash without reading bytes. */
static void test_upload_exists(void **state) {
    fixture *f = *state;
    const char *sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    bool found = true;
    assert_int_equal(m2p_store_upload_exists(f->s, sha, &found, NULL), M2P_OK);
    assert_false(found);
    assert_int_equal(m2p_store_upload_put(f->s, sha, "RIFF", 4, NULL), M2P_OK);
    assert_int_equal(m2p_store_upload_exists(f->s, sha, &found, NULL), M2P_OK);
    assert_true(found);
}

static void test_stage_names(void **state) {
    (void)state;
    m2p_job_stage st;
    assert_true(m2p_job_stage_parse("render", &st));
    assert_int_equal(st, M2P_STAGE_RENDER);
    assert_true(m2p_job_stage_parse("analyze", &st));
    assert_int_equal(st, M2P_STAGE_ANALYZE);
    assert_false(m2p_job_stage_parse("gpu", &st));
    assert_false(m2p_job_stage_parse(NULL, &st));
    assert_string_equal(m2p_job_stage_name(M2P_STAGE_RENDER), "render");
    assert_string_equal(m2p_job_stage_name(M2P_STAGE_ANALYZE), "analyze");
    unsigned stages = 0;
    assert_true(m2p_queue_role_parse("cpu", &stages));
    assert_int_equal(stages, M2P_STAGES_ANALYZE);
    assert_true(m2p_queue_role_parse("gpu", &stages));
    assert_int_equal(stages, M2P_STAGES_RENDER);
    assert_true(m2p_queue_role_parse("all", &stages));
    assert_int_equal(stages, M2P_STAGES_ALL);
    assert_true(m2p_queue_role_parse("", &stages));
    assert_int_equal(stages, M2P_STAGES_ALL);
    assert_false(m2p_queue_role_parse("tpu", &stages));
}

/* A render claim whose stage data cannot be copied (no memory) is an error,
 * never a claim without the analysis: whichever allocation fails, a claim that
 * succeeds carries the stage data. */
static void test_claim_nomem_stage_data(void **state) {
    fixture *f = *state;
    double now = m2p_now_wall();
    int64_t id = add_job(f->s, 100);
    m2p_job_claim c;
    assert_int_equal(m2p_store_job_claim_stage(f->s, 0, M2P_STAGES_ANALYZE, now, 30, &c, NULL), M2P_OK);
    bool applied = false;
    assert_int_equal(m2p_store_job_advance(f->s, id, c.attempt, "{\"format\":1}", false, &applied, NULL), M2P_OK);
    assert_true(applied);
    m2p_job_claim_clear(&c);
    bool claimed = false;
    for (long n = 0; n < 20 && !claimed; n++) {
        /* each failed try left the row claimed: the next one takes it again after the lease */
        m2p_alloc_fail_after(n);
        m2p_code code = m2p_store_job_claim_stage(f->s, id, M2P_STAGES_RENDER, now + 100.0 * (double)(n + 1), 30, &c,
                                                  NULL);
        m2p_alloc_fail_after(-1);
        if (code == M2P_OK) {
            assert_non_null(c.spec_json);
            assert_non_null(c.stage_json);
            assert_string_equal(c.stage_json, "{\"format\":1}");
            claimed = true;
        } else {
            assert_int_equal(code, M2P_E_NOMEM);
            assert_null(c.stage_json);
        }
        m2p_job_claim_clear(&c);
    }
    assert_true(claimed);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stage_queues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_advance_keep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attempts_per_stage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_during_analysis, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload_exists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_nomem_stage_data, setup, teardown),
        cmocka_unit_test(test_stage_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
