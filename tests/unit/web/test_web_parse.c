/*
 * tests/unit/web/test_web_parse.c — the pure parsers of the HTTP API: job specs,
 * JSON bodies, ids, Range headers, tokens, cookies, origins, upload names.
 */
#include "test_util.h"

#include "core/config.h"
#include "prompt/presets.h"
#include "web/parse.h"

static m2p_config g_cfg;

static int setup(void **state) {
    (void)state;
    m2p_config_defaults(&g_cfg);
    return 0;
}

static m2p_code parse(const char *text, bool form, bool need_source, json_t **out, bool *seed_given) {
    json_t *in = json_loads(text, 0, NULL);
    assert_non_null(in);
    m2p_presets *presets = NULL;
    assert_int_equal(m2p_presets_load(&presets, NULL), M2P_OK);
    m2p_spec_ctx ctx = {&g_cfg, presets, NULL, form, need_source};
    m2p_error err;
    m2p_code c = m2p_web_parse_spec(in, &ctx, 1234u, out, seed_given, &err);
    json_decref(in);
    m2p_presets_free(presets);
    return c;
}

static void test_spec_normalises(void **state) {
    (void)state;
    json_t *spec = NULL;
    bool seed_given = true;
    assert_int_equal(parse("{\"source\": \"https://youtu.be/dQw4w9WgXcQ?t=3\", \"size\": \"512x768\", "
                           "\"variations\": 3, \"layout\": true, \"style\": \"Album cover\"}",
                           false, true, &spec, &seed_given),
                     M2P_OK);
    assert_false(seed_given);
    assert_string_equal(json_string_value(json_object_get(spec, "source")),
                        "https://www.youtube.com/watch?v=dQw4w9WgXcQ");
    assert_int_equal(json_integer_value(json_object_get(spec, "width")), 512);
    assert_int_equal(json_integer_value(json_object_get(spec, "height")), 768);
    assert_int_equal(json_integer_value(json_object_get(spec, "variations")), 3);
    assert_int_equal(json_integer_value(json_object_get(spec, "seed")), 1234);
    assert_true(json_is_true(json_object_get(spec, "layout")));
    assert_string_equal(json_string_value(json_object_get(spec, "style")), "album-cover");
    assert_null(json_object_get(spec, "per_section"));
    json_decref(spec);
}

static void test_spec_form_values(void **state) {
    (void)state;
    json_t *spec = NULL;
    bool seed_given = false;
    assert_int_equal(parse("{\"variations\": \"2\", \"seed\": \"42\", \"per_section\": \"on\", \"guidance\": \"7.5\"}",
                           true, false, &spec, &seed_given),
                     M2P_OK);
    assert_true(seed_given);
    assert_int_equal(json_integer_value(json_object_get(spec, "seed")), 42);
    assert_int_equal(json_integer_value(json_object_get(spec, "variations")), 2);
    assert_true(json_is_true(json_object_get(spec, "per_section")));
    assert_true(json_number_value(json_object_get(spec, "guidance")) == 7.5);
    json_decref(spec);
    /* text numbers are only accepted from forms */
    assert_int_equal(parse("{\"source\": \"dQw4w9WgXcQ\", \"variations\": \"2\"}", false, true, &spec, &seed_given),
                     M2P_E_RENDER_COUNT);
}

static void test_spec_errors(void **state) {
    (void)state;
    static const struct {
        const char *json;
        m2p_code code;
    } k_cases[] = {
        {"{\"source\": \"dQw4w9WgXcQ\", \"bogus\": 1}", M2P_E_FIELD_INVALID},
        {"{}", M2P_E_URL_EMPTY},
        {"{\"source\": \"http://127.0.0.1/x\"}", M2P_E_URL_LOCALHOST},
        {"{\"source\": \"file:///etc/passwd\"}", M2P_E_URL_SCHEME},
        {"{\"source\": \"dQw4w9WgXcQ\", \"variations\": 0}", M2P_E_RENDER_COUNT},
        {"{\"source\": \"dQw4w9WgXcQ\", \"variations\": 17}", M2P_E_RENDER_COUNT},
        {"{\"source\": \"dQw4w9WgXcQ\", \"steps\": 51}", M2P_E_RENDER_STEPS},
        {"{\"source\": \"dQw4w9WgXcQ\", \"size\": \"100x100\"}", M2P_E_RENDER_SIZE},
        {"{\"source\": \"dQw4w9WgXcQ\", \"size\": \"512x\"}", M2P_E_RENDER_SIZE},
        {"{\"source\": \"dQw4w9WgXcQ\", \"width\": 8192}", M2P_E_RENDER_SIZE},
        {"{\"source\": \"dQw4w9WgXcQ\", \"seed\": 1.5}", M2P_E_RENDER_SEED},
        {"{\"source\": \"dQw4w9WgXcQ\", \"guidance\": 0.5}", M2P_E_RENDER_GUIDANCE},
        {"{\"source\": \"dQw4w9WgXcQ\", \"renderer\": \"dalle\"}", M2P_E_RENDERER_UNKNOWN},
        {"{\"source\": \"dQw4w9WgXcQ\", \"style\": \"synthwav\"}", M2P_E_STYLE_UNKNOWN},
        {"{\"source\": \"dQw4w9WgXcQ\", \"template\": \"{nope}\"}", M2P_E_TEMPLATE_VARIABLE},
        {"{\"source\": \"dQw4w9WgXcQ\", \"layout\": 1}", M2P_E_FIELD_INVALID},
        {"{\"source\": [\"a\"]}", M2P_E_FIELD_INVALID},
    };
    for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) {
        json_t *spec = NULL;
        bool sg = false;
        m2p_code c = parse(k_cases[i].json, false, true, &spec, &sg);
        if (c != k_cases[i].code) {
            fail_msg("%s: expected %s, got %s", k_cases[i].json, m2p_errname(k_cases[i].code), m2p_errname(c));
        }
        assert_null(spec);
    }
    /* an upload must not also name a source */
    json_t *spec = NULL;
    bool sg = false;
    assert_int_equal(parse("{\"source\": \"dQw4w9WgXcQ\"}", true, false, &spec, &sg), M2P_E_FIELD_INVALID);
}

static void test_spec_defaults_and_hash(void **state) {
    (void)state;
    json_t *defaults = json_pack("{s:s, s:s, s:s}", "variations", "5", "size", "256x256", "style", "abstract");
    json_t *in = json_pack("{s:s, s:i}", "source", "dQw4w9WgXcQ", "seed", 9);
    m2p_spec_ctx ctx = {&g_cfg, NULL, defaults, false, true};
    json_t *a = NULL;
    json_t *b = NULL;
    bool sg = false;
    assert_int_equal(m2p_web_parse_spec(in, &ctx, 1, &a, &sg, NULL), M2P_OK);
    assert_true(sg);
    assert_int_equal(json_integer_value(json_object_get(a, "variations")), 5);
    assert_int_equal(json_integer_value(json_object_get(a, "width")), 256);
    (void)json_object_set_new(in, "variations", json_integer(2)); /* the request beats the defaults */
    assert_int_equal(m2p_web_parse_spec(in, &ctx, 1, &b, &sg, NULL), M2P_OK);
    assert_int_equal(json_integer_value(json_object_get(b, "variations")), 2);
    char ha[65];
    char hb[65];
    char ha2[65];
    assert_int_equal(m2p_web_request_hash(a, ha, NULL), M2P_OK);
    assert_int_equal(m2p_web_request_hash(b, hb, NULL), M2P_OK);
    json_t *a2 = json_deep_copy(a);
    assert_int_equal(m2p_web_request_hash(a2, ha2, NULL), M2P_OK);
    assert_string_not_equal(ha, hb);
    assert_string_equal(ha, ha2);
    json_decref(a);
    json_decref(a2);
    json_decref(b);
    json_decref(in);
    json_decref(defaults);
}

static void test_json_body(void **state) {
    (void)state;
    json_t *j = NULL;
    assert_int_equal(m2p_web_parse_json_body("{\"a\":1}", 7, &j, NULL), M2P_OK);
    json_decref(j);
    assert_int_equal(m2p_web_parse_json_body("{\"a\":1,\"a\":2}", 13, &j, NULL), M2P_E_JSON_INVALID);
    assert_int_equal(m2p_web_parse_json_body("[]", 2, &j, NULL), M2P_E_JSON_INVALID);
    assert_int_equal(m2p_web_parse_json_body("", 0, &j, NULL), M2P_E_JSON_INVALID);
    assert_int_equal(m2p_web_parse_json_body("{", 1, &j, NULL), M2P_E_JSON_INVALID);
    assert_int_equal(m2p_web_parse_json_body("{}", M2P_WEB_MAX_JSON_BODY + 1, &j, NULL), M2P_E_BODY_TOO_LARGE);
    assert_null(j);
}

static void test_ids(void **state) {
    (void)state;
    int64_t id = 0;
    assert_true(m2p_web_parse_id("42", &id));
    assert_int_equal(id, 42);
    assert_true(m2p_web_parse_id("999999999999999999", &id));
    const char *bad[] = {"", "0", "012", "-1", "1e3", "12a", "..", "1/2", "9999999999999999999", " 1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (m2p_web_parse_id(bad[i], &id)) {
            fail_msg("'%s' accepted as an id", bad[i]);
        }
    }
}

static void test_range(void **state) {
    (void)state;
    uint64_t s = 0;
    uint64_t n = 0;
    assert_int_equal(m2p_web_parse_range("bytes=0-99", 1000, &s, &n, NULL), M2P_OK);
    assert_true(s == 0 && n == 100);
    assert_int_equal(m2p_web_parse_range("bytes=900-", 1000, &s, &n, NULL), M2P_OK);
    assert_true(s == 900 && n == 100);
    assert_int_equal(m2p_web_parse_range("bytes=-10", 1000, &s, &n, NULL), M2P_OK);
    assert_true(s == 990 && n == 10);
    assert_int_equal(m2p_web_parse_range("bytes=-5000", 1000, &s, &n, NULL), M2P_OK);
    assert_true(s == 0 && n == 1000);
    assert_int_equal(m2p_web_parse_range("bytes=10-999999", 1000, &s, &n, NULL), M2P_OK);
    assert_true(s == 10 && n == 990);
    const char *bad[] = {"bytes=0-1,5-6", "bytes=1000-", "bytes=5-2", "bytes=-0", "items=0-1", "bytes=a-b",
                         "bytes=-", "bytes=99999999999999999999-", "bytes 0-1", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (m2p_web_parse_range(bad[i], 1000, &s, &n, NULL) != M2P_E_RANGE_INVALID) {
            fail_msg("range '%s' accepted", bad[i]);
        }
    }
}

static void test_tokens_and_origin(void **state) {
    (void)state;
    char buf[64];
    assert_true(m2p_web_cookie("a=1; m2p_token=abc; b=2", "m2p_token", buf, sizeof buf));
    assert_string_equal(buf, "abc");
    assert_false(m2p_web_cookie("xm2p_token=abc", "m2p_token", buf, sizeof buf));
    assert_false(m2p_web_cookie(NULL, "m2p_token", buf, sizeof buf));
    assert_true(m2p_web_bearer("Bearer  tok ", buf, sizeof buf));
    assert_string_equal(buf, "tok");
    assert_false(m2p_web_bearer("Basic dXNlcg==", buf, sizeof buf));
    assert_false(m2p_web_bearer("Bearer ", buf, sizeof buf));
    assert_true(m2p_web_token_equal("secret", "secret"));
    assert_false(m2p_web_token_equal("secret", "secreT"));
    assert_false(m2p_web_token_equal("secret", "secret2"));
    assert_false(m2p_web_token_equal("", "x"));
    assert_true(m2p_web_origin_allowed(NULL, "127.0.0.1:8000"));
    assert_true(m2p_web_origin_allowed("http://127.0.0.1:8000", "127.0.0.1:8000"));
    assert_true(m2p_web_origin_allowed("https://Example.org", "example.org"));
    assert_false(m2p_web_origin_allowed("http://127.0.0.1:8001", "127.0.0.1:8000"));
    assert_false(m2p_web_origin_allowed("http://127.0.0.1:8000.evil.com", "127.0.0.1:8000"));
    assert_false(m2p_web_origin_allowed("null", "127.0.0.1:8000"));
    assert_false(m2p_web_origin_allowed("http://x", NULL));
}

static void test_names_and_hosts(void **state) {
    (void)state;
    assert_string_equal(m2p_web_upload_ext("Song.MP3"), ".mp3");
    assert_string_equal(m2p_web_upload_ext("a.tar.flac"), ".flac");
    assert_string_equal(m2p_web_upload_ext("evil.html"), ".bin");
    assert_string_equal(m2p_web_upload_ext("../../x.wav/"), ".bin");
    assert_string_equal(m2p_web_upload_ext(NULL), ".bin");
    assert_true(m2p_web_host_is_loopback("127.0.0.1"));
    assert_true(m2p_web_host_is_loopback("127.1.2.3"));
    assert_true(m2p_web_host_is_loopback("::1"));
    assert_true(m2p_web_host_is_loopback("localhost"));
    assert_false(m2p_web_host_is_loopback("0.0.0.0"));
    assert_false(m2p_web_host_is_loopback("192.168.0.1"));
    assert_false(m2p_web_host_is_loopback("127.0.0.1.evil.com"));
    long v = 0;
    double d = 0;
    assert_true(m2p_web_parse_int("-3", -5, 5, &v) && v == -3);
    assert_false(m2p_web_parse_int("3x", 0, 5, &v));
    assert_false(m2p_web_parse_int("6", 0, 5, &v));
    assert_true(m2p_web_parse_double("1.5e2", 0, 1000, &d) && d == 150.0);
    assert_false(m2p_web_parse_double("nan", 0, 1000, &d));
    assert_false(m2p_web_parse_double("inf", 0, 1e300, &d));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_normalises), cmocka_unit_test(test_spec_form_values),
        cmocka_unit_test(test_spec_errors),     cmocka_unit_test(test_spec_defaults_and_hash),
        cmocka_unit_test(test_json_body),       cmocka_unit_test(test_ids),
        cmocka_unit_test(test_range),           cmocka_unit_test(test_tokens_and_origin),
        cmocka_unit_test(test_names_and_hosts),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
