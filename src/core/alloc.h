/*
 * core/alloc.h — the one allocation hook of Mus2Pic.
 *
 * Every module allocates through m2p_malloc/m2p_calloc/m2p_realloc/m2p_strdup
 * and frees with m2p_free. Tests can make the Nth allocation fail
 * (m2p_alloc_fail_after) to check that every error path cleans up (in the way
 * of Lua's ltests.c and curl's torture tests). Size arithmetic helpers return
 * false on overflow instead of wrapping.
 */
#ifndef M2P_CORE_ALLOC_H
#define M2P_CORE_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

void *m2p_malloc(size_t n) M2P_WUR;
void *m2p_calloc(size_t count, size_t size) M2P_WUR;
void *m2p_realloc(void *p, size_t n) M2P_WUR;
/* Allocates an array of count elements of size bytes; NULL on overflow. */
void *m2p_malloc_array(size_t count, size_t size) M2P_WUR;
char *m2p_strdup(const char *s) M2P_WUR;
char *m2p_strndup(const char *s, size_t n) M2P_WUR;
/* Frees p; p may be NULL. */
void m2p_free(void *p);

/* Test hook: after n more successful allocations, every allocation fails
 * (n < 0 disables the hook). Process-wide; tests only. */
void m2p_alloc_fail_after(long n);

/* *out = a * b / a + b; false on overflow. */
static inline bool m2p_size_mul(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool m2p_size_add(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

#endif
