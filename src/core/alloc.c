/*
 * core/alloc.c — allocation through one hook, with a fail-the-Nth switch for tests.
 */
#include "core/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long g_fail_after = -1;

void m2p_alloc_fail_after(long n) {
    atomic_store(&g_fail_after, n);
}

/* Returns true when this allocation must fail (test hook armed and spent). */
static bool should_fail(void) {
    long left = atomic_load(&g_fail_after);
    while (left >= 0) {
        if (left == 0) {
            return true;
        }
        if (atomic_compare_exchange_weak(&g_fail_after, &left, left - 1)) {
            return false;
        }
    }
    return false;
}

void *m2p_malloc(size_t n) {
    if (should_fail()) {
        return NULL;
    }
    return malloc(n == 0 ? 1 : n);
}

void *m2p_calloc(size_t count, size_t size) {
    if (should_fail()) {
        return NULL;
    }
    if (count == 0 || size == 0) {
        return calloc(1, 1);
    }
    return calloc(count, size);
}

void *m2p_realloc(void *p, size_t n) {
    if (should_fail()) {
        return NULL;
    }
    return realloc(p, n == 0 ? 1 : n);
}

void *m2p_malloc_array(size_t count, size_t size) {
    size_t total;
    if (!m2p_size_mul(count, size, &total)) {
        return NULL;
    }
    return m2p_malloc(total);
}

char *m2p_strdup(const char *s) {
    if (s == NULL) {
        return NULL;
    }
    return m2p_strndup(s, strlen(s));
}

char *m2p_strndup(const char *s, size_t n) {
    if (s == NULL) {
        return NULL;
    }
    size_t len = strnlen(s, n);
    char *out = m2p_malloc(len + 1);
    if (out == NULL) {
        return NULL;
    }
    memcpy(out, s, len);
    out[len] = '\0';
    return out;
}

void m2p_free(void *p) {
    free(p);
}
