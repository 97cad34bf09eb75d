/*
 * tests/unit/core/test_core.c — errors, configuration precedence, allocation hook, fs helpers.
 */
#include "test_util.h"

#include "core/alloc.h"
#include "core/assets.h"
#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"

static void test_error_tables(void **state) {
    (void)state;
    assert_string_equal(m2p_errname(M2P_E_URL_PRIVATE), "url_private");
    assert_int_equal(m2p_err_http_status(M2P_E_URL_PRIVATE), 400);
    assert_int_equal(m2p_err_http_status(M2P_E_FETCH_RATE_LIMITED), 429);
    assert_true(m2p_err_transient(M2P_E_FETCH_NETWORK));
    assert_false(m2p_err_transient(M2P_E_DECODE_SILENT));
    m2p_code c;
    assert_true(m2p_err_from_name("decode_silent", &c));
    assert_int_equal(c, M2P_E_DECODE_SILENT);
    assert_false(m2p_err_from_name("no_such_code", &c));
    /* Every code has a message and a hint, and names are unique. */
    static const m2p_code all[] = {
#define ROW(name, num, http, tr, msg, hint) M2P_E_##name,
        M2P_ERRNO_MAP(ROW)
#undef ROW
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        assert_true(strlen(m2p_strerror(all[i])) > 0);
        if (all[i] != M2P_OK) {
            assert_true(strlen(m2p_errhint(all[i])) > 0);
        }
        for (size_t j = i + 1; j < sizeof all / sizeof all[0]; j++) {
            assert_int_not_equal(all[i], all[j]);
        }
    }
    m2p_error e;
    assert_int_equal(m2p_error_set(&e, M2P_E_STYLE_UNKNOWN, "no style '%s'", "neon"), M2P_E_STYLE_UNKNOWN);
    char line[512];
    m2p_error_format(&e, line, sizeof line);
    assert_non_null(strstr(line, "style_unknown"));
    assert_non_null(strstr(line, "neon"));
    assert_non_null(strstr(line, "mus2pic styles"));
}

static void test_config_precedence(void **state) {
    (void)state;
    char dir[64];
    m2p_test_tmpdir(dir, sizeof dir);
    char path[128];
    snprintf(path, sizeof path, "%s/mus2pic.conf", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "# comment\ncache_max_mb = 10\nmax_duration_s = 60\nallowed_sites = youtube, soundcloud\n");
    fclose(f);
    setenv("MUS2PIC_DATA_DIR", dir, 1);
    setenv("MUS2PIC_MAX_DURATION_S", "120", 1);
    unsetenv("MUS2PIC_CONFIG");
    m2p_config cfg;
    m2p_error err;
    assert_int_equal(m2p_config_load(&cfg, &err), M2P_OK);
    assert_string_equal(cfg.data_dir, dir);
    assert_int_equal(cfg.cache_max_mb, 10);        /* file beats default */
    assert_true(cfg.max_duration_s == 120.0);     /* env beats file */
    assert_int_equal(cfg.allowed_sites, M2P_SITE_YOUTUBE | M2P_SITE_SOUNDCLOUD);
    assert_int_equal(m2p_config_set(&cfg, "max_duration_s", "30", &err), M2P_OK); /* flag beats env */
    assert_true(cfg.max_duration_s == 30.0);
    assert_int_equal(m2p_config_set(&cfg, "no_such_key", "1", &err), M2P_E_CONFIG);
    assert_non_null(strstr(err.detail, "no_such_key"));
    assert_int_equal(m2p_config_set(&cfg, "port", "70000", &err), M2P_E_CONFIG);
    assert_int_equal(m2p_config_set(&cfg, "port", "12x", &err), M2P_E_CONFIG);
    assert_int_equal(m2p_config_set(&cfg, "allowed_sites", "myspace", &err), M2P_E_CONFIG);
    assert_int_equal(m2p_config_set(&cfg, "renderer", "dalle", &err), M2P_E_CONFIG);
    assert_string_equal(cfg.renderer, "auto"); /* a refused value changes nothing */
    assert_int_equal(m2p_config_set(&cfg, "decoder", "fast", &err), M2P_E_CONFIG);
    assert_non_null(strstr(err.detail, "vae, taesd or auto"));
    assert_int_equal(m2p_config_set(&cfg, "worker_role", "tpu", &err), M2P_E_CONFIG);
    assert_non_null(strstr(err.detail, "all, cpu or gpu"));
    assert_int_equal(m2p_config_set(&cfg, "previews", "sometimes", &err), M2P_E_CONFIG);
    char deep[M2P_DATA_DIR_MAX + 2];
    memset(deep, 'd', sizeof deep - 1);
    deep[0] = '/';
    deep[sizeof deep - 1] = '\0';
    assert_int_equal(m2p_config_set(&cfg, "data_dir", deep, &err), M2P_E_CONFIG);
    assert_non_null(strstr(err.detail, "data_dir is"));
    deep[M2P_DATA_DIR_MAX] = '\0';
    assert_int_equal(m2p_config_set(&cfg, "data_dir", deep, &err), M2P_OK);
    assert_int_equal(m2p_config_set(&cfg, "decoder", "taesd", &err), M2P_OK);
    assert_int_equal(m2p_config_set(&cfg, "worker_role", "gpu", &err), M2P_OK);
    setenv("MUS2PIC_PORT", "nope", 1);
    assert_int_equal(m2p_config_load(&cfg, &err), M2P_E_CONFIG);
    assert_non_null(strstr(err.detail, "MUS2PIC_PORT"));
    unsetenv("MUS2PIC_PORT");
    unsetenv("MUS2PIC_MAX_DURATION_S");
    unsetenv("MUS2PIC_DATA_DIR");
    m2p_test_rmdir(dir);
}

static void test_alloc_hook(void **state) {
    (void)state;
    m2p_alloc_fail_after(1);
    void *a = m2p_malloc(8);
    void *b = m2p_malloc(8);
    m2p_alloc_fail_after(-1);
    assert_non_null(a);
    assert_null(b);
    m2p_free(a);
    assert_null(m2p_malloc_array(SIZE_MAX / 2, 4));
}

static void test_fs(void **state) {
    (void)state;
    char dir[64];
    m2p_test_tmpdir(dir, sizeof dir);
    char sub[128], path[160];
    snprintf(sub, sizeof sub, "%s/a/b/c", dir);
    assert_int_equal(m2p_fs_mkdirs(sub, NULL), M2P_OK);
    snprintf(path, sizeof path, "%s/x.txt", sub);
    assert_int_equal(m2p_fs_write_atomic(path, "abc", 3, NULL), M2P_OK);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(m2p_fs_read_file(path, 100, &data, &len, NULL), M2P_OK);
    assert_int_equal(len, 3);
    assert_string_equal(data, "abc");
    m2p_free(data);
    assert_int_equal(m2p_fs_read_file(path, 2, &data, &len, NULL), M2P_E_TOO_LARGE);
    char hex[65];
    assert_int_equal(m2p_fs_sha256_file(path, hex, NULL), M2P_OK);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    m2p_test_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_tables),
        cmocka_unit_test(test_config_precedence),
        cmocka_unit_test(test_alloc_hook),
        cmocka_unit_test(test_fs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
