/*
 * diffusion/safetensors.h — reading .safetensors weight files, safely.
 *
 * Format: 8 bytes little-endian u64 N, N bytes of JSON header, then the data
 * section. The header maps tensor names to {dtype, shape, data_offsets
 * [begin, end)} relative to the data section; an optional "__metadata__"
 * object is ignored.
 *
 * Everything in the header is checked before any tensor is handed out: header
 * length ≤ 100 MB and within the file, valid JSON object (trailing spaces
 * allowed, duplicate keys refused), known dtype, ≤ 8 dims, shape product ×
 * dtype size == end − begin (overflow-checked), offsets within the data
 * section, no two tensors overlapping. Any failure is M2P_E_MODEL_INVALID (or
 * M2P_E_MODEL_DTYPE for an unknown dtype) with a detail naming the file and
 * tensor — never a crash or an out-of-bounds read.
 *
 * The file is mmapped read-only and never copied; m2p_nn_st_tensor.data points
 * into the mapping and may be unaligned (the format does not align tensors):
 * use m2p_nn_st_read_f32() to get fp32 values, or m2p_nn_st_f32_view() for a
 * zero-copy view when the tensor is F32 and 4-byte aligned.
 * (A file truncated by another process while mapped can still raise SIGBUS; the
 * model folder is only ever replaced by rename, never rewritten in place.)
 */
#ifndef M2P_DIFFUSION_SAFETENSORS_H
#define M2P_DIFFUSION_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define M2P_NN_ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)
#define M2P_NN_ST_MAX_DIMS 8

typedef enum m2p_nn_dtype {
    M2P_NN_F32 = 0,
    M2P_NN_F16,
    M2P_NN_BF16,
    M2P_NN_F64,
    M2P_NN_I64,
    M2P_NN_I32,
    M2P_NN_I16,
    M2P_NN_I8,
    M2P_NN_U8,
    M2P_NN_BOOL,
    M2P_NN_U16,
    M2P_NN_U32,
    M2P_NN_U64,
    M2P_NN_F8_E4M3,
    M2P_NN_F8_E5M2,
} m2p_nn_dtype;

/* "F32", "F16", ...; never NULL. */
const char *m2p_nn_dtype_name(m2p_nn_dtype t);
/* Bytes per element. */
size_t m2p_nn_dtype_size(m2p_nn_dtype t);

typedef struct m2p_nn_st_tensor {
    const char *name; /* owned by the file handle */
    m2p_nn_dtype dtype;
    int ndim;
    int64_t shape[M2P_NN_ST_MAX_DIMS];
    size_t numel;       /* product of shape (1 for a scalar) */
    size_t nbytes;      /* numel × dtype size */
    const void *data;   /* into the mapping; possibly unaligned */
} m2p_nn_st_tensor;

typedef struct m2p_nn_st m2p_nn_st;

/* Maps and validates a file. *out is owned by the caller (m2p_nn_st_close). */
m2p_code m2p_nn_st_open(const char *path, m2p_nn_st **out, m2p_error *err) M2P_WUR;

/* Validates a file image already in memory (tests, fuzzing). data is not
 * copied and must outlive the handle. label names it in error details. */
m2p_code m2p_nn_st_open_memory(const void *data, size_t len, const char *label, m2p_nn_st **out,
                               m2p_error *err) M2P_WUR;

/* Unmaps and frees; st may be NULL. Every tensor pointer from st becomes invalid. */
void m2p_nn_st_close(m2p_nn_st *st);

/* Number of tensors and the i-th in name order (NULL when out of range). */
size_t m2p_nn_st_count(const m2p_nn_st *st);
const m2p_nn_st_tensor *m2p_nn_st_at(const m2p_nn_st *st, size_t i);

/* The tensor called name, or NULL. O(log n). */
const m2p_nn_st_tensor *m2p_nn_st_find(const m2p_nn_st *st, const char *name);

/* Total bytes of the data section. */
size_t m2p_nn_st_data_bytes(const m2p_nn_st *st);

/* Converts t (F32, F16 or BF16) to fp32 into dst of cap floats (cap ≥ t->numel).
 * Other dtypes → M2P_E_MODEL_DTYPE; cap too small → M2P_E_INVALID_ARG. */
m2p_code m2p_nn_st_read_f32(const m2p_nn_st_tensor *t, float *dst, size_t cap, m2p_error *err) M2P_WUR;

/* Zero-copy fp32 view of t when it is F32 and 4-byte aligned; NULL otherwise. */
const float *m2p_nn_st_f32_view(const m2p_nn_st_tensor *t);

#endif
