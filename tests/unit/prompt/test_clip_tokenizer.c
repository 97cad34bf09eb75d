/*
 * tests/unit/prompt/test_clip_tokenizer.c — the C CLIP tokenizer against
 * Hugging Face's CLIPTokenizer: every case of tests/fixtures/tokenizer/
 * cases.json (written by tools/tokenizer/make_fixtures.py) must give the same
 * 77 ids; the vocab.json/merges.txt loader against small_cases.json; bad
 * tokenizer files; truncation and padding rules.
 */
#include "test_util.h"

#include <jansson.h>

#include "core/alloc.h"
#include "core/fs.h"
#include "prompt/clip_tokenizer.h"

static json_t *load_fixture(const char *name) {
    char path[1024];
    (void)snprintf(path, sizeof path, "%s/tests/fixtures/tokenizer/%s", m2p_test_source_dir(), name);
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (j == NULL) {
        fail_msg("cannot read %s: %s", path, jerr.text);
    }
    return j;
}

/* Compares every case of a fixture file; returns the number of cases. */
static size_t check_cases(const m2p_clip_tokenizer *t, json_t *root) {
    json_t *cases = json_object_get(root, "cases");
    assert_true(json_is_array(cases));
    size_t n = json_array_size(cases);
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(cases, i);
        const char *text = json_string_value(json_object_get(c, "text"));
        json_t *want = json_object_get(c, "ids");
        int want_real = (int)json_integer_value(json_object_get(c, "n_real"));
        assert_non_null(text);
        assert_int_equal(json_array_size(want), M2P_CLIP_MAX_TOKENS);
        int32_t ids[M2P_CLIP_MAX_TOKENS];
        int n_real = -1;
        m2p_error err;
        m2p_error_clear(&err);
        assert_int_equal(m2p_clip_tokenize(t, text, ids, M2P_CLIP_MAX_TOKENS, &n_real, &err), M2P_OK);
        for (int k = 0; k < M2P_CLIP_MAX_TOKENS; k++) {
            int32_t w = (int32_t)json_integer_value(json_array_get(want, (size_t)k));
            if (ids[k] != w) {
                fail_msg("case %zu \"%.60s\": id %d is %d, reference %d", i, text, k, ids[k], w);
            }
        }
        assert_int_equal(n_real, want_real);
        /* The count without truncation agrees whenever the text fits. */
        int count = 0;
        assert_int_equal(m2p_clip_count(t, text, &count, NULL), M2P_OK);
        if (want_real < M2P_CLIP_MAX_TOKENS) {
            assert_int_equal(count, want_real);
        } else {
            assert_true(count >= M2P_CLIP_MAX_TOKENS);
        }
    }
    return n;
}

static void test_default_matches_reference(void **state) {
    (void)state;
    m2p_clip_tokenizer *t = NULL;
    m2p_error err;
    m2p_error_clear(&err);
    double t0 = m2p_now_monotonic();
    assert_int_equal(m2p_clip_tokenizer_default(&t, &err), M2P_OK);
    double load_s = m2p_now_monotonic() - t0;
    print_message("default tokenizer loaded in %.1f ms (sanitizer build)\n", load_s * 1e3);
    assert_int_equal(m2p_clip_vocab_size(t), 49408);
    assert_int_equal(m2p_clip_bos_id(t), 49406);
    assert_int_equal(m2p_clip_eos_id(t), 49407);
    assert_int_equal(m2p_clip_pad_id(t), 49407);
    json_t *root = load_fixture("cases.json");
    size_t n = check_cases(t, root);
    assert_true(n >= 20);
    json_decref(root);
    m2p_clip_tokenizer_free(t);
}

static void test_load_pair(void **state) {
    (void)state;
    char vocab[1024];
    char merges[1024];
    (void)snprintf(vocab, sizeof vocab, "%s/tests/fixtures/tokenizer/small/vocab.json", m2p_test_source_dir());
    (void)snprintf(merges, sizeof merges, "%s/tests/fixtures/tokenizer/small/merges.txt", m2p_test_source_dir());
    m2p_clip_tokenizer *t = NULL;
    m2p_error err;
    m2p_error_clear(&err);
    assert_int_equal(m2p_clip_tokenizer_load(vocab, merges, &t, &err), M2P_OK);
    json_t *root = load_fixture("small_cases.json");
    assert_int_equal(m2p_clip_vocab_size(t), (size_t)json_integer_value(json_object_get(root, "vocab_size")));
    assert_int_equal(m2p_clip_bos_id(t), 2512);
    assert_true(check_cases(t, root) >= 4);
    m2p_clip_tokenizer_free(t);
    /* The same pair from memory. */
    char *vtext = NULL;
    char *mtext = NULL;
    size_t vlen = 0;
    size_t mlen = 0;
    assert_int_equal(m2p_fs_read_file(vocab, 1 << 24, &vtext, &vlen, NULL), M2P_OK);
    assert_int_equal(m2p_fs_read_file(merges, 1 << 24, &mtext, &mlen, NULL), M2P_OK);
    t = NULL;
    assert_int_equal(m2p_clip_tokenizer_load_buffers(vtext, vlen, mtext, mlen, &t, &err), M2P_OK);
    assert_true(check_cases(t, root) >= 4);
    m2p_clip_tokenizer_free(t);
    /* The fuzz corpus seed (40 merges) loads too: the fuzzer starts from a valid pair. */
    char seed[1024];
    (void)snprintf(seed, sizeof seed, "%s/tests/fuzz/corpus/clip_vocab/pair-40", m2p_test_source_dir());
    char *st = NULL;
    size_t sl = 0;
    assert_int_equal(m2p_fs_read_file(seed, 1 << 20, &st, &sl, NULL), M2P_OK);
    size_t split = (size_t)(unsigned char)st[0] | ((size_t)(unsigned char)st[1] << 8);
    t = NULL;
    assert_int_equal(m2p_clip_tokenizer_load_buffers(st + 2, split, st + 2 + split, sl - 2 - split, &t, &err), M2P_OK);
    assert_int_equal(m2p_clip_vocab_size(t), 512 + 40 + 2);
    m2p_clip_tokenizer_free(t);
    m2p_free(st);
    m2p_free(vtext);
    m2p_free(mtext);
    json_decref(root);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_load_bad_files(void **state) {
    (void)state;
    char dir[64];
    m2p_test_tmpdir(dir, sizeof dir);
    char vocab[128];
    char merges[128];
    char good_vocab[1024];
    (void)snprintf(vocab, sizeof vocab, "%s/vocab.json", dir);
    (void)snprintf(merges, sizeof merges, "%s/merges.txt", dir);
    (void)snprintf(good_vocab, sizeof good_vocab, "%s/tests/fixtures/tokenizer/small/vocab.json",
                   m2p_test_source_dir());
    m2p_clip_tokenizer *t = NULL;
    m2p_error err;
    /* Missing files. */
    m2p_error_clear(&err);
    assert_int_not_equal(m2p_clip_tokenizer_load(vocab, merges, &t, &err), M2P_OK);
    assert_null(t);
    /* Not JSON. */
    write_text(vocab, "{\"a\": ");
    write_text(merges, "#version: 0.2\ni n\n");
    assert_int_equal(m2p_clip_tokenizer_load(vocab, merges, &t, &err), M2P_E_TOKENIZER_INVALID);
    /* JSON without the byte symbols. */
    write_text(vocab, "{\"a\": 0, \"<|startoftext|>\": 1, \"<|endoftext|>\": 2}");
    assert_int_equal(m2p_clip_tokenizer_load(vocab, merges, &t, &err), M2P_E_TOKENIZER_INVALID);
    assert_non_null(strstr(err.detail, "byte"));
    /* Ids that are not numbers. */
    write_text(vocab, "{\"a\": \"x\"}");
    assert_int_equal(m2p_clip_tokenizer_load(vocab, merges, &t, &err), M2P_E_TOKENIZER_INVALID);
    /* A merge line with three symbols, and one naming an unknown symbol. */
    write_text(merges, "#version: 0.2\ni n x\n");
    assert_int_equal(m2p_clip_tokenizer_load(good_vocab, merges, &t, &err), M2P_E_TOKENIZER_INVALID);
    assert_non_null(strstr(err.detail, "line 2"));
    write_text(merges, "#version: 0.2\nqqq zzz\n");
    assert_int_equal(m2p_clip_tokenizer_load(good_vocab, merges, &t, &err), M2P_E_TOKENIZER_INVALID);
    assert_null(t);
    m2p_test_rmdir(dir);
}

static void test_truncation_and_padding(void **state) {
    (void)state;
    m2p_clip_tokenizer *t = NULL;
    assert_int_equal(m2p_clip_tokenizer_default(&t, NULL), M2P_OK);
    int32_t ids[M2P_CLIP_MAX_TOKENS];
    int n_real = 0;
    /* 200 words: truncated to 77 with the end token last. */
    char text[2048] = "";
    for (int i = 0; i < 200; i++) {
        strcat(text, "cat ");
    }
    assert_int_equal(m2p_clip_tokenize(t, text, ids, M2P_CLIP_MAX_TOKENS, &n_real, NULL), M2P_OK);
    assert_int_equal(n_real, 77);
    assert_int_equal(ids[0], 49406);
    assert_int_equal(ids[76], 49407);
    assert_int_equal(ids[75], ids[1]);
    int count = 0;
    assert_int_equal(m2p_clip_count(t, text, &count, NULL), M2P_OK);
    assert_int_equal(count, 202);
    /* A short max_len. */
    assert_int_equal(m2p_clip_tokenize(t, "a photo of a cat", ids, 4, &n_real, NULL), M2P_OK);
    assert_int_equal(n_real, 4);
    assert_int_equal(ids[0], 49406);
    assert_int_equal(ids[1], 320);
    assert_int_equal(ids[2], 1125);
    assert_int_equal(ids[3], 49407);
    /* Bad arguments. */
    assert_int_equal(m2p_clip_tokenize(t, "x", ids, 1, &n_real, NULL), M2P_E_INVALID_ARG);
    assert_int_equal(m2p_clip_tokenize(t, NULL, ids, 77, &n_real, NULL), M2P_E_INVALID_ARG);
    /* Over the text cap. */
    size_t big = M2P_CLIP_MAX_TEXT + 10;
    char *huge = m2p_malloc(big + 1);
    assert_non_null(huge);
    memset(huge, 'a', big);
    huge[big] = '\0';
    assert_int_equal(m2p_clip_count(t, huge, &count, NULL), M2P_E_TOO_LARGE);
    m2p_free(huge);
    /* Invalid UTF-8 is tokenized (as U+FFFD), never an error or a crash. */
    assert_int_equal(m2p_clip_tokenize(t, "bad \xff\xfe utf8 \xc3", ids, 77, &n_real, NULL), M2P_OK);
    assert_true(n_real > 4);
    m2p_clip_tokenizer_free(t);
}

/* Hostile: one very long word of mixed bytes stays fast (bounded by the cap). */
static void test_long_word(void **state) {
    (void)state;
    m2p_clip_tokenizer *t = NULL;
    assert_int_equal(m2p_clip_tokenizer_default(&t, NULL), M2P_OK);
    size_t n = 16384;
    char *w = m2p_malloc(n + 1);
    assert_non_null(w);
    uint32_t s = 7;
    for (size_t i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        w[i] = (char)('a' + (s >> 16) % 26);
    }
    w[n] = '\0';
    double t0 = m2p_now_monotonic();
    int count = 0;
    assert_int_equal(m2p_clip_count(t, w, &count, NULL), M2P_OK);
    double dt = m2p_now_monotonic() - t0;
    print_message("16 KiB single word: %d tokens in %.1f ms\n", count, dt * 1e3);
    assert_true(count > 1000);
    m2p_free(w);
    m2p_clip_tokenizer_free(t);
}

/* Every allocation failure while loading or tokenizing is a clean NOMEM. */
static void test_alloc_failures(void **state) {
    (void)state;
    char vocab[1024];
    char merges[1024];
    (void)snprintf(vocab, sizeof vocab, "%s/tests/fixtures/tokenizer/small/vocab.json", m2p_test_source_dir());
    (void)snprintf(merges, sizeof merges, "%s/tests/fixtures/tokenizer/small/merges.txt", m2p_test_source_dir());
    for (int which = 0; which < 2; which++) {
        bool ok = false;
        for (long n = 0; n < 200 && !ok; n++) {
            m2p_clip_tokenizer *t = NULL;
            m2p_alloc_fail_after(n);
            m2p_code rc =
                which == 0 ? m2p_clip_tokenizer_default(&t, NULL) : m2p_clip_tokenizer_load(vocab, merges, &t, NULL);
            m2p_alloc_fail_after(-1);
            if (rc == M2P_OK) {
                ok = true;
            } else {
                assert_int_equal(rc, M2P_E_NOMEM);
                assert_null(t);
            }
            m2p_clip_tokenizer_free(t);
        }
        assert_true(ok);
    }
    m2p_clip_tokenizer *t = NULL;
    assert_int_equal(m2p_clip_tokenizer_default(&t, NULL), M2P_OK);
    bool ok = false;
    for (long n = 0; n < 200 && !ok; n++) {
        int32_t ids[M2P_CLIP_MAX_TOKENS];
        int n_real = 0;
        m2p_alloc_fail_after(n);
        m2p_code rc = m2p_clip_tokenize(t, "caf\xc3\xa9 <|endoftext|> hello, world!", ids, 77, &n_real, NULL);
        m2p_alloc_fail_after(-1);
        if (rc == M2P_OK) {
            ok = true;
        } else {
            assert_int_equal(rc, M2P_E_NOMEM);
        }
    }
    assert_true(ok);
    m2p_clip_tokenizer_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_matches_reference),
        cmocka_unit_test(test_load_pair),
        cmocka_unit_test(test_load_bad_files),
        cmocka_unit_test(test_truncation_and_padding),
        cmocka_unit_test(test_long_word),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
