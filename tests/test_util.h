/*
 * tests/test_util.h — helpers shared by the unit tests (header-only).
 * Every test file includes cmocka through this header.
 */
#ifndef M2P_TEST_UTIL_H
#define M2P_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
// clang-format off
#include <cmocka.h>
// clang-format on
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Repository root (set by CTest as MUS2PIC_SOURCE_DIR). */
static inline const char *m2p_test_source_dir(void) {
    const char *d = getenv("MUS2PIC_SOURCE_DIR");
    return d != NULL ? d : ".";
}

/* A fresh private temporary folder "/tmp/m2p-test-XXXXXX" written into buf. */
static inline const char *m2p_test_tmpdir(char *buf, size_t cap) {
    (void)snprintf(buf, cap, "/tmp/m2p-test-XXXXXX");
    if (mkdtemp(buf) == NULL) {
        fail_msg("mkdtemp failed");
    }
    return buf;
}

/* rm -rf of a test folder (only under /tmp/m2p-test-). */
static inline void m2p_test_rmdir(const char *dir) {
    if (strncmp(dir, "/tmp/m2p-test-", 14) != 0) {
        return;
    }
    char cmd[1200];
    (void)snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    int rc = system(cmd);
    (void)rc;
}

#endif
