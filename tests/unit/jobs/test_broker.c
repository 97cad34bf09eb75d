/*
 * tests/unit/jobs/test_broker.c — the Redis broker's configuration checks and
 * its failure when Redis cannot be reached (no Redis needed here; the real
 * stream behaviour is tested against a real Redis in
 * tests/integration/test_scale_redis.py).
 */
#include "test_util.h"

#include <sys/socket.h>
#include <netinet/in.h>

#include "core/config.h"
#include "jobs/broker.h"

static m2p_code open_url(const char *url, m2p_error *e) {
    m2p_config cfg;
    m2p_config_defaults(&cfg);
    (void)snprintf(cfg.broker_url, sizeof cfg.broker_url, "%s", url);
    m2p_broker *b = NULL;
    m2p_code c = m2p_broker_open(&cfg, "test", &b, e);
    m2p_broker_free(b);
    return c;
}

/* A loopback port with nothing listening (bound, then closed). */
static int closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_bad_urls(void **state) {
    (void)state;
    m2p_error e;
    assert_int_equal(open_url("http://127.0.0.1:6379", &e), M2P_E_CONFIG);
    assert_int_equal(open_url("redis://", &e), M2P_E_CONFIG);
    assert_int_equal(open_url("redis://127.0.0.1:99999", &e), M2P_E_CONFIG);
    assert_int_equal(open_url("redis://127.0.0.1:0", &e), M2P_E_CONFIG);
    assert_int_equal(open_url("redis://127.0.0.1:6379/x", &e), M2P_E_CONFIG);
    char longpw[400];
    memset(longpw, 'a', sizeof longpw);
    longpw[sizeof longpw - 1] = '\0';
    char url[512];
    (void)snprintf(url, sizeof url, "redis://:%s@127.0.0.1:6379", longpw);
    assert_int_equal(open_url(url, &e), M2P_E_CONFIG);
}

static void test_unreachable(void **state) {
    (void)state;
    char url[64];
    (void)snprintf(url, sizeof url, "redis://:secret@127.0.0.1:%d/2", closed_port());
    m2p_error e;
    assert_int_equal(open_url(url, &e), M2P_E_BROKER_UNAVAILABLE);
    assert_int_equal(m2p_err_http_status(M2P_E_BROKER_UNAVAILABLE), 503);
    /* the password is not in the message */
    assert_null(strstr(e.detail, "secret"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_unreachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
