/*
 * tests/fuzz/fuzz_http_headers.c — the header and path parsers of the HTTP
 * API on arbitrary bytes: Range (single range only, always inside the file),
 * Cookie, Authorization: Bearer, Origin, ids, upload names, numbers and the
 * NUL-safe percent-decoder. Must never crash and never return a range outside
 * the resource or a decoded string with an embedded NUL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "web/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 8192) {
        return 0;
    }
    char *s = malloc(size + 1);
    if (s == NULL) {
        return 0;
    }
    memcpy(s, data, size);
    s[size] = '\0';
    uint64_t file_size = size > 0 ? (uint64_t)data[0] * 977u : 0;
    uint64_t start = 0;
    uint64_t len = 0;
    if (m2p_web_parse_range(s, file_size, &start, &len, NULL) == M2P_OK) {
        if (len == 0 || start >= file_size || start + len > file_size) {
            abort();
        }
    }
    char buf[64];
    if (m2p_web_cookie(s, "m2p_token", buf, sizeof buf) && strlen(buf) >= sizeof buf) {
        abort();
    }
    if (m2p_web_bearer(s, buf, sizeof buf) && (buf[0] == '\0' || strlen(buf) >= sizeof buf)) {
        abort();
    }
    (void)m2p_web_origin_allowed(s, "127.0.0.1:8000");
    (void)m2p_web_token_equal(s, "secret");
    int64_t id = 0;
    if (m2p_web_parse_id(s, &id) && id <= 0) {
        abort();
    }
    const char *ext = m2p_web_upload_ext(s);
    if (ext[0] != '.' || strchr(ext, '/') != NULL) {
        abort();
    }
    long v = 0;
    double d = 0;
    (void)m2p_web_parse_int(s, -100, 100, &v);
    (void)m2p_web_parse_double(s, -1e6, 1e6, &d);
    (void)m2p_web_host_is_loopback(s);
    size_t n = m2p_web_unescape(s);
    if (n > size || strlen(s) != n) {
        abort();
    }
    free(s);
    return 0;
}
