/*
 * tests/fuzz/fuzz_url.c — arbitrary bytes (as a NUL-terminated string) into
 * m2p_source_parse, with every site and the test loopback allowed so that all
 * branches are reachable. Paths are not allowed (no file-system probing).
 * Checks the invariants of an accepted source: a remote kind, a non-empty id
 * and an https/http canonical URL that parses again to the same source.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audio/source.h"
#include "core/config.h"

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
    m2p_config cfg;
    m2p_config_defaults(&cfg);
    cfg.allowed_sites = M2P_SITE_YOUTUBE | M2P_SITE_SOUNDCLOUD | M2P_SITE_BANDCAMP;
    cfg.unsafe_test_loopback = (size % 2) == 0;
    m2p_source src;
    m2p_error err;
    if (m2p_source_parse(s, &cfg, false, &src, &err) == M2P_OK) {
        if (!m2p_source_is_remote(&src) || src.id[0] == '\0' || strncmp(src.url, "http", 4) != 0) {
            abort();
        }
        m2p_source again;
        if (m2p_source_parse(src.url, &cfg, false, &again, &err) != M2P_OK || strcmp(again.url, src.url) != 0 ||
            strcmp(again.id, src.id) != 0) {
            abort();
        }
    }
    free(s);
    return 0;
}
