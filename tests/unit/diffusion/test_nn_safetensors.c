/*
 * tests/unit/diffusion/test_nn_safetensors.c — the safetensors reader on
 * hand-built good and bad files: every check named in safetensors.h has a
 * file that must be refused with MODEL_INVALID / MODEL_DTYPE, and good files
 * (unaligned F32, F16, BF16, metadata, trailing spaces, scalars, empty
 * tensors) must read back exactly.
 */
#include "test_util.h"

#include <math.h>

#include "core/alloc.h"
#include "diffusion/safetensors.h"

/* Builds "8-byte length + header + data" into buf; returns the length. */
static size_t build(unsigned char *buf, size_t cap, const char *header, const void *data, size_t data_len) {
    size_t hl = strlen(header);
    assert_true(8 + hl + data_len <= cap);
    for (int i = 0; i < 8; i++) {
        buf[i] = (unsigned char)(((uint64_t)hl >> (8 * i)) & 0xff);
    }
    memcpy(buf + 8, header, hl);
    if (data_len > 0) {
        memcpy(buf + 8 + hl, data, data_len);
    }
    return 8 + hl + data_len;
}

static m2p_code open_hdr(const char *header, size_t data_len, m2p_error *err) {
    static unsigned char buf[4096];
    unsigned char data[512];
    memset(data, 0x11, sizeof data);
    size_t n = build(buf, sizeof buf, header, data, data_len);
    m2p_nn_st *st = NULL;
    m2p_code rc = m2p_nn_st_open_memory(buf, n, "test.safetensors", &st, err);
    if (rc == M2P_OK) {
        assert_non_null(st);
    } else {
        assert_null(st);
    }
    m2p_nn_st_close(st);
    return rc;
}

static void test_good_file(void **state) {
    (void)state;
    /* Header length 7 + ... makes the data section start at an odd address: F32 is unaligned. */
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},"
                      "\"b.half\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[8,14]},"
                      "\"a.w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"c.bf\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[14,18]},"
                      "\"d.scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[18,22]},"
                      "\"e.empty\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[22,22]},"
                      "\"f.ids\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[22,30]}}      ";
    unsigned char data[30];
    float f[2] = {1.5f, -2.25f};
    memcpy(data, f, 8);
    unsigned short h[3] = {0x3c00, 0xc000, 0x3555};
    memcpy(data + 8, h, 6);
    unsigned short bf[2] = {0x3f80, 0x4049};
    memcpy(data + 14, bf, 4);
    float sc = 42.0f;
    memcpy(data + 18, &sc, 4);
    int64_t id = 7;
    memcpy(data + 22, &id, 8);
    /* Pad with spaces so that 8 + header length is odd: every F32 tensor is unaligned. */
    char padded[1024];
    size_t hl = strlen(hdr);
    memcpy(padded, hdr, hl + 1);
    while ((8 + hl) % 4 != 1) {
        padded[hl++] = ' ';
        padded[hl] = '\0';
    }
    static unsigned char buf[1024];
    size_t n = build(buf, sizeof buf, padded, data, sizeof data);

    m2p_error err;
    m2p_nn_st *st = NULL;
    assert_int_equal(m2p_nn_st_open_memory(buf, n, "good", &st, &err), M2P_OK);
    assert_int_equal(m2p_nn_st_count(st), 6);
    assert_string_equal(m2p_nn_st_at(st, 0)->name, "a.w"); /* sorted by name */
    assert_string_equal(m2p_nn_st_at(st, 5)->name, "f.ids");
    assert_null(m2p_nn_st_at(st, 6));
    assert_null(m2p_nn_st_find(st, "__metadata__"));
    assert_null(m2p_nn_st_find(st, "zzz"));
    assert_int_equal(m2p_nn_st_data_bytes(st), 30);

    float out[8];
    const m2p_nn_st_tensor *t = m2p_nn_st_find(st, "a.w");
    assert_non_null(t);
    assert_int_equal(t->dtype, M2P_NN_F32);
    assert_int_equal(t->ndim, 1);
    assert_int_equal(t->shape[0], 2);
    assert_null(m2p_nn_st_f32_view(t)); /* unaligned → no view */
    assert_int_equal(m2p_nn_st_read_f32(t, out, 8, &err), M2P_OK);
    assert_true(out[0] == 1.5f && out[1] == -2.25f);

    t = m2p_nn_st_find(st, "b.half");
    assert_int_equal(m2p_nn_st_read_f32(t, out, 8, &err), M2P_OK);
    assert_true(out[0] == 1.0f && out[1] == -2.0f && fabsf(out[2] - 0.33325195f) < 1e-7f);

    t = m2p_nn_st_find(st, "c.bf");
    assert_int_equal(t->ndim, 2);
    assert_int_equal(m2p_nn_st_read_f32(t, out, 8, &err), M2P_OK);
    assert_true(out[0] == 1.0f && out[1] == 3.140625f);
    assert_int_equal(m2p_nn_st_read_f32(t, out, 1, &err), M2P_E_INVALID_ARG);

    t = m2p_nn_st_find(st, "d.scalar");
    assert_int_equal(t->ndim, 0);
    assert_int_equal(t->numel, 1);
    assert_int_equal(m2p_nn_st_read_f32(t, out, 8, &err), M2P_OK);
    assert_true(out[0] == 42.0f);

    t = m2p_nn_st_find(st, "e.empty");
    assert_int_equal(t->numel, 0);

    t = m2p_nn_st_find(st, "f.ids");
    assert_int_equal(t->dtype, M2P_NN_I64);
    assert_int_equal(m2p_nn_st_read_f32(t, out, 8, &err), M2P_E_MODEL_DTYPE);
    assert_non_null(strstr(err.detail, "I64"));
    m2p_nn_st_close(st);
}

static void test_file_on_disk(void **state) {
    (void)state;
    char dir[64], path[128];
    m2p_test_tmpdir(dir, sizeof dir);
    (void)snprintf(path, sizeof path, "%s/w.safetensors", dir);
    /* Header padded to 16 bytes total → data at offset 24: aligned, zero-copy view. */
    const char *hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
    char padded[128];
    size_t hl = strlen(hdr);
    size_t target = (hl + 8 + 15) / 16 * 16 - 8;
    memcpy(padded, hdr, hl);
    memset(padded + hl, ' ', target - hl);
    padded[target] = '\0';
    float v[4] = {1, 2, 3, 4};
    unsigned char buf[256];
    size_t n = build(buf, sizeof buf, padded, v, sizeof v);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    fclose(f);

    m2p_error err;
    m2p_nn_st *st = NULL;
    assert_int_equal(m2p_nn_st_open(path, &st, &err), M2P_OK);
    const m2p_nn_st_tensor *t = m2p_nn_st_find(st, "w");
    const float *view = m2p_nn_st_f32_view(t);
    assert_non_null(view);
    assert_true(view[3] == 4.0f);
    m2p_nn_st_close(st);

    /* Truncated copy on disk: refused with the offset in the message. */
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n - 3, f), n - 3);
    fclose(f);
    assert_int_equal(m2p_nn_st_open(path, &st, &err), M2P_E_MODEL_INVALID);
    assert_null(st);
    assert_non_null(strstr(err.detail, "truncated"));

    /* Empty file, missing file, a folder. */
    f = fopen(path, "wb");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(m2p_nn_st_open(path, &st, &err), M2P_E_MODEL_INVALID);
    (void)snprintf(path, sizeof path, "%s/none.safetensors", dir);
    assert_int_equal(m2p_nn_st_open(path, &st, &err), M2P_E_MODEL_MISSING);
    assert_int_equal(m2p_nn_st_open(dir, &st, &err), M2P_E_MODEL_INVALID);
    m2p_test_rmdir(dir);
}

static void test_bad_headers(void **state) {
    (void)state;
    m2p_error err;
    struct {
        const char *hdr;
        size_t data_len;
        m2p_code want;
        const char *needle;
    } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, M2P_E_MODEL_INVALID, "truncated"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, M2P_E_MODEL_INVALID, "need 12"},
        {"{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, M2P_E_MODEL_DTYPE, "Q4"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, M2P_E_MODEL_INVALID, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, M2P_E_MODEL_INVALID, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0.0,8]}}", 8, M2P_E_MODEL_INVALID, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, M2P_E_MODEL_INVALID, "shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8, M2P_E_MODEL_INVALID,
         "dimensions"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", 8,
         M2P_E_MODEL_INVALID, "large"},
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,8]}}", 8, M2P_E_MODEL_INVALID,
         "large"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, M2P_E_MODEL_INVALID, "overlap"},
        /* An empty tensor between two overlapping ones must not hide the overlap. */
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[100],\"data_offsets\":[0,100]},"
         "\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[50,50]},"
         "\"b\":{\"dtype\":\"U8\",\"shape\":[20],\"data_offsets\":[60,80]}}",
         100, M2P_E_MODEL_INVALID, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
         16, M2P_E_MODEL_INVALID, "JSON"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, M2P_E_MODEL_INVALID, "lacks"},
        {"{\"a\":[1,2]}", 8, M2P_E_MODEL_INVALID, "not an object"},
        {"[1,2,3]", 8, M2P_E_MODEL_INVALID, "not a JSON object"},
        {"{\"a\":", 8, M2P_E_MODEL_INVALID, "JSON"},
        {"{\"__metadata__\":[1]}", 0, M2P_E_MODEL_INVALID, "__metadata__"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} xx", 8, M2P_E_MODEL_INVALID, "JSON"},
        {"{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, M2P_E_MODEL_INVALID, "JSON"},
        {"{", 0, M2P_E_MODEL_INVALID, "header"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        m2p_error_clear(&err);
        m2p_code rc = open_hdr(cases[i].hdr, cases[i].data_len, &err);
        if (rc != cases[i].want || strstr(err.detail, cases[i].needle) == NULL) {
            fail_msg("case %zu: got %s '%s', want %s containing '%s'", i, m2p_errname(rc), err.detail,
                     m2p_errname(cases[i].want), cases[i].needle);
        }
    }
    /* Empty object: valid, zero tensors. */
    assert_int_equal(open_hdr("{}", 0, &err), M2P_OK);
    assert_int_equal(open_hdr("{\"__metadata__\":{}}  ", 0, &err), M2P_OK);
}

static void test_bad_length_prefix(void **state) {
    (void)state;
    m2p_error err;
    m2p_nn_st *st = NULL;
    unsigned char buf[64];
    memset(buf, 0, sizeof buf);
    assert_int_equal(m2p_nn_st_open_memory(buf, 5, "short", &st, &err), M2P_E_MODEL_INVALID);
    assert_non_null(strstr(err.detail, "too short"));
    /* Header length beyond 100 MB. */
    buf[0] = 0x01;
    buf[4] = 0x01; /* 4 GiB + 1 */
    assert_int_equal(m2p_nn_st_open_memory(buf, sizeof buf, "huge", &st, &err), M2P_E_MODEL_INVALID);
    assert_non_null(strstr(err.detail, "100 MB"));
    /* Header length all ones (would overflow 8 + N). */
    memset(buf, 0xff, 8);
    assert_int_equal(m2p_nn_st_open_memory(buf, sizeof buf, "ones", &st, &err), M2P_E_MODEL_INVALID);
    /* Header length past the end of the file. */
    memset(buf, 0, 8);
    buf[0] = 100;
    assert_int_equal(m2p_nn_st_open_memory(buf, sizeof buf, "past", &st, &err), M2P_E_MODEL_INVALID);
    assert_non_null(strstr(err.detail, "truncated"));
    assert_null(st);
}

static void test_alloc_failures(void **state) {
    (void)state;
    const char *hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12]}}";
    unsigned char buf[256], data[12] = {0};
    size_t n = build(buf, sizeof buf, hdr, data, sizeof data);
    /* Failing each of the first allocations in turn: a clean error, no leak (ASan checks). */
    for (long k = 0; k < 6; k++) {
        m2p_nn_st *st = NULL;
        m2p_alloc_fail_after(k);
        m2p_code rc = m2p_nn_st_open_memory(buf, n, "alloc", &st, NULL);
        m2p_alloc_fail_after(-1);
        if (rc == M2P_OK) {
            assert_int_equal(m2p_nn_st_count(st), 2);
            m2p_nn_st_close(st);
        } else {
            assert_int_equal(rc, M2P_E_NOMEM);
            assert_null(st);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_file),       cmocka_unit_test(test_file_on_disk),
        cmocka_unit_test(test_bad_headers),     cmocka_unit_test(test_bad_length_prefix),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
