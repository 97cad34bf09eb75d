/*
 * core/fs.h — small file-system helpers used by every module: create folders,
 * read a whole file under a cap, write a file atomically (temp + fsync +
 * rename, so readers never see half a file), hash a file, monotonic time.
 */
#ifndef M2P_CORE_FS_H
#define M2P_CORE_FS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* mkdir -p with mode 0755; existing folders are fine. */
m2p_code m2p_fs_mkdirs(const char *path, m2p_error *err) M2P_WUR;

/* Reads the whole file into a NUL-terminated buffer owned by the caller
 * (m2p_free). Files larger than max_bytes → M2P_E_TOO_LARGE. */
m2p_code m2p_fs_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len, m2p_error *err) M2P_WUR;

/* Writes data to path atomically: path.tmp.<pid>.<n>, fsync, rename. */
m2p_code m2p_fs_write_atomic(const char *path, const void *data, size_t len, m2p_error *err) M2P_WUR;

/* Removes every entry of dir that is not a folder (symbolic links are
 * removed, never followed), then dir itself. A missing dir is fine. */
m2p_code m2p_fs_remove_dir_files(const char *dir, m2p_error *err) M2P_WUR;

/* SHA-256 of a file / a buffer as 64 lower-case hex digits + NUL (hex[65]). */
m2p_code m2p_fs_sha256_file(const char *path, char hex[65], m2p_error *err) M2P_WUR;
void m2p_sha256_hex(const void *data, size_t len, char hex[65]);

/* Seconds from a monotonic clock / the wall clock (Unix time). */
double m2p_now_monotonic(void);
double m2p_now_wall(void);

/* Directory holding the running executable (e.g. /repo/build); "" when unknown. */
const char *m2p_fs_exe_dir(char *buf, size_t cap);

#endif
