/*
 * core/fs.c — folders, capped reads, atomic writes, SHA-256 (libavutil), clocks.
 */
#define _GNU_SOURCE
#include "core/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libavutil/mem.h>
#include <libavutil/sha.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"

m2p_code m2p_fs_mkdirs(const char *path, m2p_error *err) {
    char tmp[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof tmp) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "bad folder path");
    }
    memcpy(tmp, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char c = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
                return m2p_error_set(err, M2P_E_IO, "cannot create folder %s: %s", tmp, strerror(errno));
            }
            tmp[i] = c;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return m2p_error_set(err, M2P_E_IO, "%s is not a folder", path);
    }
    return M2P_OK;
}

m2p_code m2p_fs_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len, m2p_error *err) {
    *out = NULL;
    if (out_len != NULL) {
        *out_len = 0;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return m2p_error_set(err, M2P_E_FILE_NOT_FOUND, "%s", path);
        }
        return m2p_error_set(err, M2P_E_IO, "cannot open %s: %s", path, strerror(errno));
    }
    m2p_code rc = M2P_OK;
    char *buf = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = m2p_error_set(err, M2P_E_IO, "cannot stat %s: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = m2p_error_set(err, M2P_E_FILE_NOT_REGULAR, "%s", path);
        goto done;
    }
    if ((uint64_t)st.st_size > max_bytes) {
        rc = m2p_error_set(err, M2P_E_TOO_LARGE, "%s is %lld bytes, the limit is %zu", path, (long long)st.st_size,
                           max_bytes);
        goto done;
    }
    size_t size = (size_t)st.st_size;
    buf = m2p_malloc(size + 1);
    if (buf == NULL) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "reading %s", path);
        goto done;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *out = buf;
    buf = NULL;
    if (out_len != NULL) {
        *out_len = got;
    }
done:
    m2p_free(buf);
    (void)close(fd);
    return rc;
}

m2p_code m2p_fs_write_atomic(const char *path, const void *data, size_t len, m2p_error *err) {
    static atomic_uint counter;
    char tmp[4200];
    (void)snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&counter, 1));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        return m2p_error_set(err, M2P_E_IO, "cannot create %s: %s", tmp, strerror(errno));
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            int e = errno;
            (void)close(fd);
            (void)unlink(tmp);
            return m2p_error_set(err, M2P_E_IO, "cannot write %s: %s", tmp, strerror(e));
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        (void)unlink(tmp);
        return m2p_error_set(err, M2P_E_IO, "cannot write %s: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        (void)unlink(tmp);
        return m2p_error_set(err, M2P_E_IO, "cannot rename to %s: %s", path, strerror(e));
    }
    return M2P_OK;
}

m2p_code m2p_fs_remove_dir_files(const char *dir, m2p_error *err) {
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT) {
            return M2P_OK;
        }
        return m2p_error_set(err, M2P_E_IO, "cannot open %s: %s", dir, strerror(errno));
    }
    int fd = dirfd(d);
    m2p_code rc = M2P_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        struct stat st;
        if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISDIR(st.st_mode)) {
            continue;
        }
        if (unlinkat(fd, e->d_name, 0) != 0 && errno != ENOENT) {
            rc = m2p_error_set(err, M2P_E_IO, "cannot remove %s/%s: %s", dir, e->d_name, strerror(errno));
        }
    }
    (void)closedir(d);
    if (rc == M2P_OK && rmdir(dir) != 0 && errno != ENOENT) {
        rc = m2p_error_set(err, M2P_E_IO, "cannot remove %s: %s", dir, strerror(errno));
    }
    return rc;
}

static void to_hex(const uint8_t digest[32], char hex[65]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}

void m2p_sha256_hex(const void *data, size_t len, char hex[65]) {
    struct AVSHA *sha = av_sha_alloc();
    uint8_t digest[32] = {0};
    if (sha != NULL) {
        (void)av_sha_init(sha, 256);
        av_sha_update(sha, data, len);
        av_sha_final(sha, digest);
        av_free(sha);
    }
    to_hex(digest, hex);
}

m2p_code m2p_fs_sha256_file(const char *path, char hex[65], m2p_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return m2p_error_set(err, errno == ENOENT ? M2P_E_FILE_NOT_FOUND : M2P_E_IO, "%s: %s", path, strerror(errno));
    }
    struct AVSHA *sha = av_sha_alloc();
    if (sha == NULL) {
        (void)close(fd);
        return m2p_error_set(err, M2P_E_NOMEM, "sha256");
    }
    (void)av_sha_init(sha, 256);
    uint8_t buf[1 << 16];
    m2p_code rc = M2P_OK;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = m2p_error_set(err, M2P_E_IO, "reading %s: %s", path, strerror(errno));
            break;
        }
        if (n == 0) {
            break;
        }
        av_sha_update(sha, buf, (size_t)n);
    }
    uint8_t digest[32];
    av_sha_final(sha, digest);
    av_free(sha);
    (void)close(fd);
    if (rc == M2P_OK) {
        to_hex(digest, hex);
    }
    return rc;
}

double m2p_now_monotonic(void) {
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double m2p_now_wall(void) {
    struct timespec ts;
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *m2p_fs_exe_dir(char *buf, size_t cap) {
    if (cap == 0) {
        return buf;
    }
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n <= 0) {
        buf[0] = '\0';
        return buf;
    }
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash != NULL) {
        *slash = '\0';
    }
    return buf;
}
