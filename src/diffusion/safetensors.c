/*
 * diffusion/safetensors.c — mmap + validation of .safetensors files (see
 * safetensors.h for the format and the checks).
 *
 * Invariants of an open m2p_nn_st (established by parse_header before the
 * handle is returned, never changed afterwards):
 *  - tensors[] is sorted by name (strcmp), names unique;
 *  - for every tensor, data .. data + nbytes lies inside the data section,
 *    nbytes == numel × dtype size without overflow;
 *  - sorted by offset, no two tensors' byte ranges overlap.
 * The handle is read-only after open, so it may be shared between threads.
 */
#include "diffusion/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "diffusion/ops.h"

struct m2p_nn_st {
    void *map;          /* mmap base (NULL for memory images) */
    size_t map_len;     /* bytes mapped */
    const unsigned char *base;
    size_t len;
    const unsigned char *data; /* start of the data section */
    size_t data_len;
    m2p_nn_st_tensor *tensors;
    size_t count;
    char *names; /* one block holding every name */
    char label[256];
};

typedef struct dtype_row {
    const char *name;
    m2p_nn_dtype t;
    size_t size;
} dtype_row;

/* Read-only table of the dtypes the format defines. */
static const dtype_row k_dtypes[] = {
    {"F32", M2P_NN_F32, 4},  {"F16", M2P_NN_F16, 2},          {"BF16", M2P_NN_BF16, 2},
    {"F64", M2P_NN_F64, 8},  {"I64", M2P_NN_I64, 8},          {"I32", M2P_NN_I32, 4},
    {"I16", M2P_NN_I16, 2},  {"I8", M2P_NN_I8, 1},            {"U8", M2P_NN_U8, 1},
    {"BOOL", M2P_NN_BOOL, 1}, {"U16", M2P_NN_U16, 2},         {"U32", M2P_NN_U32, 4},
    {"U64", M2P_NN_U64, 8},  {"F8_E4M3", M2P_NN_F8_E4M3, 1}, {"F8_E5M2", M2P_NN_F8_E5M2, 1},
};
#define N_DTYPES (sizeof k_dtypes / sizeof k_dtypes[0])

const char *m2p_nn_dtype_name(m2p_nn_dtype t) {
    for (size_t i = 0; i < N_DTYPES; i++) {
        if (k_dtypes[i].t == t) {
            return k_dtypes[i].name;
        }
    }
    return "?";
}

size_t m2p_nn_dtype_size(m2p_nn_dtype t) {
    for (size_t i = 0; i < N_DTYPES; i++) {
        if (k_dtypes[i].t == t) {
            return k_dtypes[i].size;
        }
    }
    return 0;
}

static bool dtype_from_name(const char *s, m2p_nn_dtype *t) {
    for (size_t i = 0; i < N_DTYPES; i++) {
        if (strcmp(k_dtypes[i].name, s) == 0) {
            *t = k_dtypes[i].t;
            return true;
        }
    }
    return false;
}

static int cmp_name(const void *a, const void *b) {
    const m2p_nn_st_tensor *x = a, *y = b;
    return strcmp(x->name, y->name);
}

static int cmp_offset(const void *a, const void *b) {
    const m2p_nn_st_tensor *x = *(const m2p_nn_st_tensor *const *)a, *y = *(const m2p_nn_st_tensor *const *)b;
    if (x->data != y->data) {
        return (const unsigned char *)x->data < (const unsigned char *)y->data ? -1 : 1;
    }
    return x->nbytes < y->nbytes ? -1 : (x->nbytes > y->nbytes ? 1 : 0);
}

/* Reads one non-negative JSON integer. */
static bool get_uint(const json_t *v, uint64_t *out) {
    if (!json_is_integer(v)) {
        return false;
    }
    json_int_t i = json_integer_value(v);
    if (i < 0) {
        return false;
    }
    *out = (uint64_t)i;
    return true;
}

/* Fills one tensor entry from its JSON description; checks dtype, shape, offsets. */
static m2p_code parse_entry(m2p_nn_st *st, const char *name, const json_t *desc, m2p_nn_st_tensor *t,
                            m2p_error *err) {
    if (!json_is_object(desc)) {
        return m2p_error_set(err, M2P_E_MODEL_INVALID, "%s: entry '%.80s' is not an object", st->label, name);
    }
    const json_t *jd = json_object_get(desc, "dtype");
    const json_t *js = json_object_get(desc, "shape");
    const json_t *jo = json_object_get(desc, "data_offsets");
    if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo)) {
        return m2p_error_set(err, M2P_E_MODEL_INVALID, "%s: tensor '%.80s' lacks dtype, shape or data_offsets",
                             st->label, name);
    }
    if (!dtype_from_name(json_string_value(jd), &t->dtype)) {
        return m2p_error_set(err, M2P_E_MODEL_DTYPE, "%s: tensor '%.80s' has unknown dtype '%.16s'", st->label, name,
                             json_string_value(jd));
    }
    size_t nd = json_array_size(js);
    if (nd > M2P_NN_ST_MAX_DIMS) {
        return m2p_error_set(err, M2P_E_MODEL_INVALID, "%s: tensor '%.80s' has %zu dimensions (at most %d)",
                             st->label, name, nd, M2P_NN_ST_MAX_DIMS);
    }
    t->ndim = (int)nd;
    size_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (!get_uint(json_array_get(js, i), &d) || d > (uint64_t)INT64_MAX || d > (uint64_t)SIZE_MAX ||
            !m2p_size_mul(numel, (size_t)d, &numel)) {
            return m2p_error_set(err, M2P_E_MODEL_INVALID, "%s: tensor '%.80s' has an invalid or too large shape",
                                 st->label, name);
        }
        t->shape[i] = (int64_t)d;
    }
    size_t nbytes;
    if (!m2p_size_mul(numel, m2p_nn_dtype_size(t->dtype), &nbytes)) {
        return m2p_error_set(err, M2P_E_MODEL_INVALID, "%s: tensor '%.80s' is too large", st->label, name);
    }
    uint64_t begin, end;
    if (json_array_size(jo) != 2 || !get_uint(json_array_get(jo, 0), &begin) ||
        !get_uint(json_array_get(jo, 1), &end) || begin > end) {
        return m2p_error_set(err, M2P_E_MODEL_INVALID, "%s: tensor '%.80s' has invalid data_offsets", st->label,
                             name);
    }
    if (end > (uint64_t)st->data_len) {
        return m2p_error_set(err, M2P_E_MODEL_INVALID,
                             "%s: tensor '%.80s' ends at byte %llu but the data section has %zu bytes (truncated file?)",
                             st->label, name, (unsigned long long)end, st->data_len);
    }
    if (end - begin != (uint64_t)nbytes) {
        return m2p_error_set(err, M2P_E_MODEL_INVALID,
                             "%s: tensor '%.80s' spans %llu bytes but its shape and dtype need %zu", st->label, name,
                             (unsigned long long)(end - begin), nbytes);
    }
    t->numel = numel;
    t->nbytes = nbytes;
    t->data = st->data + begin;
    return M2P_OK;
}

/* Parses and checks the JSON header; fills st->tensors (sorted by name). */
static m2p_code parse_header(m2p_nn_st *st, const char *json, size_t json_len, m2p_error *err) {
    m2p_code rc = M2P_OK;
    m2p_nn_st_tensor **by_off = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(json, json_len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return m2p_error_set(err, M2P_E_MODEL_INVALID, "%s: the header is not valid JSON (%.120s at byte %d)",
                             st->label, jerr.text, jerr.position);
    }
    if (!json_is_object(root)) {
        rc = m2p_error_set(err, M2P_E_MODEL_INVALID, "%s: the header is not a JSON object", st->label);
        goto done;
    }
    size_t n = 0, names_len = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            continue;
        }
        n++;
        if (!m2p_size_add(names_len, strlen(key) + 1, &names_len)) {
            rc = m2p_error_set(err, M2P_E_MODEL_INVALID, "%s: header too large", st->label);
            goto done;
        }
    }
    st->tensors = m2p_calloc(n == 0 ? 1 : n, sizeof *st->tensors);
    st->names = m2p_malloc(names_len == 0 ? 1 : names_len);
    by_off = m2p_malloc_array(n == 0 ? 1 : n, sizeof *by_off);
    if (st->tensors == NULL || st->names == NULL || by_off == NULL) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "%s: %zu tensors", st->label, n);
        goto done;
    }
    size_t i = 0, pos = 0;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(val)) {
                rc = m2p_error_set(err, M2P_E_MODEL_INVALID, "%s: __metadata__ is not an object", st->label);
                goto done;
            }
            continue;
        }
        size_t kl = strlen(key);
        memcpy(st->names + pos, key, kl + 1);
        st->tensors[i].name = st->names + pos;
        pos += kl + 1;
        rc = parse_entry(st, key, val, &st->tensors[i], err);
        if (rc != M2P_OK) {
            goto done;
        }
        by_off[i] = &st->tensors[i];
        i++;
    }
    st->count = n;
    /* No two tensors may share bytes (running maximum of the ends seen so far). */
    qsort(by_off, n, sizeof *by_off, cmp_offset);
    const unsigned char *max_end = st->data;
    const char *max_name = "";
    for (size_t j = 0; j < n; j++) {
        const unsigned char *b = by_off[j]->data;
        if (by_off[j]->nbytes > 0 && b < max_end) {
            rc = m2p_error_set(err, M2P_E_MODEL_INVALID, "%s: tensors '%.80s' and '%.80s' overlap", st->label,
                               max_name, by_off[j]->name);
            goto done;
        }
        if (b + by_off[j]->nbytes > max_end) {
            max_end = b + by_off[j]->nbytes;
            max_name = by_off[j]->name;
        }
    }
    qsort(st->tensors, n, sizeof *st->tensors, cmp_name);
done:
    m2p_free(by_off);
    json_decref(root);
    return rc;
}

/* Validates the image base[0..len) and fills st. */
static m2p_code parse_image(m2p_nn_st *st, m2p_error *err) {
    if (st->len < 8) {
        return m2p_error_set(err, M2P_E_MODEL_INVALID, "%s: %zu bytes is too short for a safetensors file",
                             st->label, st->len);
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) {
        n = (n << 8) | st->base[i];
    }
    if (n > M2P_NN_ST_MAX_HEADER) {
        return m2p_error_set(err, M2P_E_MODEL_INVALID, "%s: header length %llu exceeds the 100 MB limit (not a safetensors file?)",
                             st->label, (unsigned long long)n);
    }
    if (n > (uint64_t)(st->len - 8)) {
        return m2p_error_set(err, M2P_E_MODEL_INVALID, "%s: header of %llu bytes but the file has %zu (truncated?)",
                             st->label, (unsigned long long)n, st->len);
    }
    if (n < 2) {
        return m2p_error_set(err, M2P_E_MODEL_INVALID, "%s: empty header", st->label);
    }
    st->data = st->base + 8 + n;
    st->data_len = st->len - 8 - (size_t)n;
    return parse_header(st, (const char *)st->base + 8, (size_t)n, err);
}

static void set_label(m2p_nn_st *st, const char *label) {
    (void)snprintf(st->label, sizeof st->label, "%s", label != NULL ? label : "safetensors");
}

m2p_code m2p_nn_st_open_memory(const void *data, size_t len, const char *label, m2p_nn_st **out, m2p_error *err) {
    *out = NULL;
    m2p_nn_st *st = m2p_calloc(1, sizeof *st);
    if (st == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "safetensors handle");
    }
    set_label(st, label);
    st->base = data;
    st->len = len;
    m2p_code rc = parse_image(st, err);
    if (rc != M2P_OK) {
        m2p_nn_st_close(st);
        return rc;
    }
    *out = st;
    return M2P_OK;
}

m2p_code m2p_nn_st_open(const char *path, m2p_nn_st **out, m2p_error *err) {
    *out = NULL;
    m2p_code rc = M2P_OK;
    int fd = -1;
    m2p_nn_st *st = m2p_calloc(1, sizeof *st);
    if (st == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "safetensors handle");
    }
    set_label(st, path);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = m2p_error_set(err, errno == ENOENT ? M2P_E_MODEL_MISSING : M2P_E_IO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        rc = m2p_error_set(err, M2P_E_IO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = m2p_error_set(err, M2P_E_MODEL_INVALID, "%s: not a regular file", path);
        goto fail;
    }
    if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX) {
        rc = m2p_error_set(err, M2P_E_MODEL_INVALID, "%s: too large", path);
        goto fail;
    }
    st->len = (size_t)sb.st_size;
    if (st->len >= 8) {
        void *m = mmap(NULL, st->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            rc = m2p_error_set(err, M2P_E_IO, "%s: mmap: %s", path, strerror(errno));
            goto fail;
        }
        st->map = m;
        st->map_len = st->len;
        st->base = m;
    }
    (void)close(fd);
    fd = -1;
    rc = parse_image(st, err);
    if (rc != M2P_OK) {
        goto fail;
    }
    *out = st;
    return M2P_OK;
fail:
    if (fd >= 0) {
        (void)close(fd);
    }
    m2p_nn_st_close(st);
    return rc;
}

void m2p_nn_st_close(m2p_nn_st *st) {
    if (st == NULL) {
        return;
    }
    if (st->map != NULL) {
        (void)munmap(st->map, st->map_len);
    }
    m2p_free(st->tensors);
    m2p_free(st->names);
    m2p_free(st);
}

size_t m2p_nn_st_count(const m2p_nn_st *st) {
    return st->count;
}

const m2p_nn_st_tensor *m2p_nn_st_at(const m2p_nn_st *st, size_t i) {
    return i < st->count ? &st->tensors[i] : NULL;
}

const m2p_nn_st_tensor *m2p_nn_st_find(const m2p_nn_st *st, const char *name) {
    m2p_nn_st_tensor key;
    memset(&key, 0, sizeof key);
    key.name = name;
    return bsearch(&key, st->tensors, st->count, sizeof *st->tensors, cmp_name);
}

size_t m2p_nn_st_data_bytes(const m2p_nn_st *st) {
    return st->data_len;
}

m2p_code m2p_nn_st_read_f32(const m2p_nn_st_tensor *t, float *dst, size_t cap, m2p_error *err) {
    if (cap < t->numel) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "tensor '%.80s' has %zu values, buffer %zu", t->name, t->numel,
                             cap);
    }
    switch (t->dtype) {
    case M2P_NN_F32:
        memcpy(dst, t->data, t->nbytes);
        return M2P_OK;
    case M2P_NN_F16:
    case M2P_NN_BF16: {
        /* Convert in aligned chunks: the source may be unaligned. */
        enum { CHUNK = 4096 };
        unsigned short tmp[CHUNK];
        const unsigned char *src = t->data;
        for (size_t i = 0; i < t->numel; i += CHUNK) {
            size_t m = t->numel - i < CHUNK ? t->numel - i : CHUNK;
            memcpy(tmp, src + i * 2, m * 2);
            if (t->dtype == M2P_NN_F16) {
                m2p_nn_f16_to_f32(tmp, dst + i, m);
            } else {
                m2p_nn_bf16_to_f32(tmp, dst + i, m);
            }
        }
        return M2P_OK;
    }
    default:
        return m2p_error_set(err, M2P_E_MODEL_DTYPE, "tensor '%.80s' is %s; weights must be F32, F16 or BF16",
                             t->name, m2p_nn_dtype_name(t->dtype));
    }
}

const float *m2p_nn_st_f32_view(const m2p_nn_st_tensor *t) {
    if (t->dtype != M2P_NN_F32 || ((uintptr_t)t->data % sizeof(float)) != 0) {
        return NULL;
    }
    return (const float *)t->data;
}
