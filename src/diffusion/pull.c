/*
 * diffusion/pull.c — `mus2pic model pull` (see pull.h).
 *
 * One file's life:  absent ──GET──► <file>.part (growing) ──size+sha256 ok──► rename ──► <file>
 *                                  │  network error: keep .part, retry with Range (resume)
 *                                  │  200 to a Range request: server ignored it, start over
 *                                  │  416: .part already whole (check it) or bad (delete, restart)
 *                                  └─ size or hash wrong: delete .part, error
 * Invariant: a path without ".part" is only ever created by rename of a fully
 * verified download, so a file in place is complete.
 */
#include "diffusion/pull.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/fs.h"

#define API_MAX_BYTES ((size_t)8 << 20)
#define FILE_MAX_BYTES ((uint64_t)64 << 30) /* no SD1.x file comes near */
#define URL_MAX 2048

/* What the engine needs. weight: true for the safetensors (variant choice applies). */
typedef struct wanted {
    const char *plain;
    const char *fp16;
    bool required;
} wanted;

/* Read-only table of the files of a diffusers SD1.x folder. */
static const wanted k_files[] = {
    {"model_index.json", NULL, false},
    {"scheduler/scheduler_config.json", NULL, true},
    {"text_encoder/config.json", NULL, true},
    {"text_encoder/model.safetensors", "text_encoder/model.fp16.safetensors", true},
    {"tokenizer/vocab.json", NULL, true},
    {"tokenizer/merges.txt", NULL, true},
    {"tokenizer/special_tokens_map.json", NULL, false},
    {"tokenizer/tokenizer_config.json", NULL, false},
    {"unet/config.json", NULL, true},
    {"unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors", true},
    {"vae/config.json", NULL, true},
    {"vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.fp16.safetensors", true},
};
#define N_FILES (sizeof k_files / sizeof k_files[0])

/* A single-component repository such as madebyollin/taesd (the TAESD decoder): the files sit at
 * the top of the repository. */
static const wanted k_component_files[] = {
    {"config.json", NULL, true},
    {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors", true},
};
#define N_COMPONENT_FILES (sizeof k_component_files / sizeof k_component_files[0])

static bool id_part_ok(const char *s, size_t n) {
    if (n == 0 || n > 96 || s[0] == '.' || s[0] == '-') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '.' || c == '_' || c == '-')) {
            return false;
        }
        if (c == '.' && i + 1 < n && s[i + 1] == '.') {
            return false;
        }
    }
    return true;
}

bool m2p_nn_model_id_valid(const char *id) {
    if (id == NULL) {
        return false;
    }
    const char *slash = strchr(id, '/');
    if (slash == NULL || strchr(slash + 1, '/') != NULL) {
        return false;
    }
    return id_part_ok(id, (size_t)(slash - id)) && id_part_ok(slash + 1, strlen(slash + 1));
}

/* --- one HTTP transfer --------------------------------------------------------------------------- */

typedef struct xfer {
    CURL *curl;
    /* response headers */
    int64_t linked_size;    /* X-Linked-Size, -1 unknown */
    char sha256[65];        /* X-Linked-ETag (or a 64-hex ETag), "" unknown */
    int64_t range_total;    /* from Content-Range of the last response, -1 unknown */
    int64_t content_length; /* of the last response, -1 unknown */
    /* body sink: a file (fd ≥ 0) or memory */
    int fd;
    bool fd_decided;   /* append vs truncate decided on the first body byte */
    int64_t have;      /* bytes in the .part before this transfer */
    int64_t written;   /* bytes written by this transfer */
    int64_t cap;       /* abort when have + written would exceed this */
    const char *part_path;
    char *mem;
    size_t mem_len, mem_cap;
    bool write_failed;
    bool too_big; /* the body outgrew the announced size (or the hard cap) */
    /* progress */
    const m2p_progress *progress;
    const char *label;
    bool cancelled;
    double last_report;
} xfer;

static bool header_is(const char *line, size_t n, const char *name, const char **value, size_t *vlen) {
    size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':') {
        return false;
    }
    const char *v = line + k + 1;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) {
        end--;
    }
    *value = v;
    *vlen = (size_t)(end - v);
    return true;
}

static int64_t parse_i64(const char *s, size_t n) {
    int64_t v = 0;
    if (n == 0 || n > 18) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Takes a 64-hex-digit sha256 out of an ETag value ("\"hex\"", W/"hex"); false otherwise. */
static bool etag_sha(const char *v, size_t n, char out[65]) {
    if (n >= 2 && v[0] == 'W' && v[1] == '/') {
        v += 2;
        n -= 2;
    }
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v++;
        n -= 2;
    }
    if (n != 64) {
        return false;
    }
    for (size_t i = 0; i < 64; i++) {
        if (!isxdigit((unsigned char)v[i])) {
            return false;
        }
        out[i] = (char)tolower((unsigned char)v[i]);
    }
    out[64] = '\0';
    return true;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *ud) {
    xfer *x = ud;
    size_t n = size * nitems;
    const char *v;
    size_t vl;
    if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* A new response of the redirect chain: per-response fields start over. */
        x->range_total = -1;
        x->content_length = -1;
    } else if (header_is(line, n, "X-Linked-Size", &v, &vl)) {
        x->linked_size = parse_i64(v, vl);
    } else if (header_is(line, n, "X-Linked-ETag", &v, &vl)) {
        (void)etag_sha(v, vl, x->sha256);
    } else if (header_is(line, n, "ETag", &v, &vl)) {
        if (x->sha256[0] == '\0') {
            (void)etag_sha(v, vl, x->sha256);
        }
    } else if (header_is(line, n, "Content-Length", &v, &vl)) {
        x->content_length = parse_i64(v, vl);
    } else if (header_is(line, n, "Content-Range", &v, &vl)) {
        const char *slash = memchr(v, '/', vl);
        if (slash != NULL) {
            x->range_total = parse_i64(slash + 1, (size_t)(v + vl - slash - 1));
        }
    }
    return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
    xfer *x = ud;
    size_t n = size * nmemb;
    long status = 0;
    (void)curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200 && status != 206) {
        return n; /* error bodies are not kept */
    }
    if (x->part_path == NULL) {
        if (x->mem_len + n > x->mem_cap) {
            x->write_failed = true;
            return 0; /* over the cap: abort */
        }
        memcpy(x->mem + x->mem_len, data, n);
        x->mem_len += n;
        return n;
    }
    if (!x->fd_decided) {
        /* 206: continue the .part; 200: the server sends the whole file, start over. */
        int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (status == 206 ? O_APPEND : O_TRUNC);
        if (status == 200) {
            x->have = 0;
        }
        x->fd = open(x->part_path, flags, 0644);
        x->fd_decided = true;
        int64_t announced = x->linked_size >= 0 ? x->linked_size
                            : x->range_total >= 0 ? x->range_total
                            : (status == 200 ? x->content_length : -1);
        if (announced >= 0 && announced < x->cap) {
            x->cap = announced;
        }
        if (x->fd < 0) {
            x->write_failed = true;
            return 0;
        }
    }
    if (x->have + x->written + (int64_t)n > x->cap) {
        x->too_big = true;
        return 0;
    }
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(x->fd, data + off, n - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            x->write_failed = true;
            return 0;
        }
        off += (size_t)w;
    }
    x->written += (int64_t)n;
    return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    xfer *x = ud;
    (void)ultotal;
    (void)ulnow;
    if (m2p_progress_cancelled(x->progress)) {
        x->cancelled = true;
        return 1;
    }
    if (x->progress != NULL && x->label != NULL) {
        double now = m2p_now_monotonic();
        if (now - x->last_report >= 0.1) {
            x->last_report = now;
            double total = x->linked_size > 0 ? (double)x->linked_size : (double)(x->have + dltotal);
            m2p_progress_report(x->progress, M2P_STEP_FETCH, (double)(x->have + dlnow), total, x->label);
        }
    }
    return 0;
}

static CURL *make_curl(xfer *x, const char *url) {
    CURL *c = curl_easy_init();
    if (c == NULL) {
        return NULL;
    }
    x->curl = c;
    bool ok = curl_easy_setopt(c, CURLOPT_URL, url) == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L) == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L) == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_USERAGENT, "mus2pic/" M2P_VERSION) == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L) == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L) == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L) == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_HEADERDATA, x) == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_WRITEDATA, x) == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress) == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_XFERINFODATA, x) == CURLE_OK &&
              curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) == CURLE_OK;
    if (!ok) {
        curl_easy_cleanup(c);
        x->curl = NULL;
        return NULL;
    }
    return c;
}

static void xfer_init(xfer *x) {
    memset(x, 0, sizeof *x);
    x->linked_size = -1;
    x->range_total = -1;
    x->content_length = -1;
    x->fd = -1;
}

/* --- the file list ------------------------------------------------------------------------------- */

typedef struct listing {
    json_t *siblings; /* array of {"rfilename": ...}, or NULL: use the fixed list */
} listing;

static bool listed(const listing *l, const char *path) {
    if (l->siblings == NULL) {
        return true;
    }
    size_t i;
    json_t *s;
    json_array_foreach(l->siblings, i, s) {
        const char *name = json_string_value(json_object_get(s, "rfilename"));
        if (name != NULL && strcmp(name, path) == 0) {
            return true;
        }
    }
    return false;
}

/* GET {endpoint}/api/models/{id}: siblings, or NULL when the endpoint has no such API. */
static m2p_code fetch_listing(const char *endpoint, const char *id, listing *l, m2p_error *err) {
    char url[URL_MAX];
    l->siblings = NULL;
    if (snprintf(url, sizeof url, "%s/api/models/%s", endpoint, id) >= (int)sizeof url) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "endpoint too long");
    }
    xfer x;
    xfer_init(&x);
    x.mem_cap = API_MAX_BYTES;
    x.mem = m2p_malloc(x.mem_cap);
    if (x.mem == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "model listing");
    }
    CURL *c = make_curl(&x, url);
    if (c == NULL) {
        m2p_free(x.mem);
        return m2p_error_set(err, M2P_E_INTERNAL, "curl setup failed");
    }
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    (void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    m2p_code rc = M2P_OK;
    if (cc != CURLE_OK && !x.write_failed) {
        rc = m2p_error_set(err, M2P_E_MODEL_DOWNLOAD, "%s: %s", url, curl_easy_strerror(cc));
    } else if (status == 200 && !x.write_failed) {
        json_t *root = json_loadb(x.mem, x.mem_len, 0, NULL);
        json_t *sib = json_object_get(root, "siblings");
        if (json_is_array(sib)) {
            l->siblings = json_incref(sib);
        }
        json_decref(root);
    }
    /* Any other answer (a mirror without the API; 404 also for a wrong ID): fall back to the
     * fixed list, whose first required file then fails with a clear HTTP 404. */
    m2p_free(x.mem);
    return rc;
}

/* --- one file ------------------------------------------------------------------------------------ */

typedef struct pull_ctx {
    const char *endpoint;
    const char *id;
    const char *dir;
    int retries;
    const m2p_progress *progress;
} pull_ctx;

static int64_t file_size(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        return -1;
    }
    return (int64_t)sb.st_size;
}

static m2p_code finish_file(const char *part, const char *final, const char *sha, const char *rel, m2p_error *err) {
    if (sha[0] != '\0') {
        char got[65];
        m2p_code rc = m2p_fs_sha256_file(part, got, err);
        if (rc != M2P_OK) {
            return rc;
        }
        if (strcmp(got, sha) != 0) {
            (void)unlink(part);
            return m2p_error_set(err, M2P_E_MODEL_HASH, "%s: sha256 %.12s… but the server says %.12s…", rel, got, sha);
        }
    }
    int fd = open(part, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        (void)close(fd);
    }
    if (rename(part, final) != 0) {
        return m2p_error_set(err, M2P_E_IO, "rename %s: %s", final, strerror(errno));
    }
    return M2P_OK;
}

static m2p_code pull_file(const pull_ctx *pc, const char *rel, m2p_error *err) {
    char url[URL_MAX], final[M2P_PATH_MAX + 128], part[M2P_PATH_MAX + 140];
    if (snprintf(url, sizeof url, "%s/%s/resolve/main/%s", pc->endpoint, pc->id, rel) >= (int)sizeof url ||
        snprintf(final, sizeof final, "%s/%s", pc->dir, rel) >= (int)sizeof final ||
        snprintf(part, sizeof part, "%s.part", final) >= (int)sizeof part) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "path too long for %s", rel);
    }
    if (file_size(final) >= 0) {
        return M2P_OK; /* in place ⇒ complete (see the invariant) */
    }
    char sub[M2P_PATH_MAX + 128];
    (void)snprintf(sub, sizeof sub, "%s", final);
    char *slash = strrchr(sub, '/');
    if (slash != NULL) {
        *slash = '\0';
        m2p_code rc = m2p_fs_mkdirs(sub, err);
        if (rc != M2P_OK) {
            return rc;
        }
    }
    for (int attempt = 0;; attempt++) {
        xfer x;
        xfer_init(&x);
        x.part_path = part;
        x.have = file_size(part);
        if (x.have < 0) {
            x.have = 0;
        }
        x.cap = (int64_t)FILE_MAX_BYTES;
        x.progress = pc->progress;
        x.label = rel;
        CURL *c = make_curl(&x, url);
        if (c == NULL) {
            return m2p_error_set(err, M2P_E_INTERNAL, "curl setup failed");
        }
        char range[48];
        if (x.have > 0) {
            (void)snprintf(range, sizeof range, "%lld-", (long long)x.have);
            (void)curl_easy_setopt(c, CURLOPT_RANGE, range);
        }
        CURLcode cc = curl_easy_perform(c);
        long status = 0;
        (void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(c);
        if (x.fd >= 0) {
            (void)close(x.fd);
        }
        int64_t now = file_size(part);
        int64_t expect = x.linked_size >= 0 ? x.linked_size
                         : x.range_total >= 0 ? x.range_total
                         : (status == 200 ? x.content_length : -1);
        bool retryable = attempt < pc->retries;
        if (x.cancelled) {
            return m2p_error_set(err, M2P_E_CANCELLED, "while downloading %s (the partial file is kept)", rel);
        }
        if (status == 416) {
            /* Range not satisfiable: the .part may already hold the whole file. */
            if (x.range_total >= 0 && now == x.range_total) {
                return finish_file(part, final, x.sha256, rel, err);
            }
            (void)unlink(part);
            if (retryable) {
                continue;
            }
            return m2p_error_set(err, M2P_E_MODEL_DOWNLOAD, "%s: the server refused to resume", rel);
        }
        if (cc == CURLE_OK && status >= 400) {
            if (status >= 500 && retryable) {
                continue;
            }
            return m2p_error_set(err, M2P_E_MODEL_DOWNLOAD, "%s: HTTP %ld from %s%s", rel, status, url,
                                 status == 404 || status == 401 ? " (check the model ID)" : "");
        }
        if (cc == CURLE_OK && status != 200 && status != 206) {
            return m2p_error_set(err, M2P_E_MODEL_DOWNLOAD, "%s: unexpected HTTP %ld", rel, status);
        }
        if (x.too_big) {
            (void)unlink(part);
            return m2p_error_set(err, M2P_E_MODEL_DOWNLOAD, "%s is larger than announced", rel);
        }
        if (x.write_failed) {
            return m2p_error_set(err, M2P_E_IO, "cannot write %s: %s", part, strerror(errno));
        }
        if (cc != CURLE_OK || (expect >= 0 && now < expect)) {
            if (retryable) {
                continue; /* resume from what arrived */
            }
            return m2p_error_set(err, M2P_E_MODEL_DOWNLOAD, "%s: %s after %lld bytes (run the pull again to resume)",
                                 rel, cc != CURLE_OK ? curl_easy_strerror(cc) : "connection closed early",
                                 (long long)(now < 0 ? 0 : now));
        }
        if (now < 0) {
            /* An empty 200 body never opened the file. */
            int fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (fd < 0) {
                return m2p_error_set(err, M2P_E_IO, "cannot write %s: %s", part, strerror(errno));
            }
            (void)close(fd);
            now = 0;
        }
        if (expect >= 0 && now != expect) {
            (void)unlink(part);
            return m2p_error_set(err, M2P_E_MODEL_DOWNLOAD, "%s: got %lld bytes, expected %lld", rel, (long long)now,
                                 (long long)expect);
        }
        m2p_progress_report(pc->progress, M2P_STEP_FETCH, (double)now, (double)now, rel);
        return finish_file(part, final, x.sha256, rel, err);
    }
}

/* --- the whole folder ---------------------------------------------------------------------------- */

m2p_code m2p_nn_pull(const m2p_config *cfg, const char *id, const m2p_nn_pull_opts *opts,
                     const m2p_progress *progress, char *dir_out, size_t dir_cap, m2p_error *err) {
    if (id == NULL || id[0] == '\0') {
        id = cfg->model_id;
    }
    if (!m2p_nn_model_id_valid(id)) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "'%.100s' is not a model ID of the form owner/name", id);
    }
    char endpoint[256];
    (void)snprintf(endpoint, sizeof endpoint, "%s", cfg->hf_endpoint);
    size_t el = strlen(endpoint);
    while (el > 0 && endpoint[el - 1] == '/') {
        endpoint[--el] = '\0';
    }
    if (strncmp(endpoint, "https://", 8) != 0 && strncmp(endpoint, "http://", 7) != 0) {
        return m2p_error_set(err, M2P_E_CONFIG, "hf_endpoint '%.100s' must start with https:// or http://", endpoint);
    }
    char dir[M2P_PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s/models/%s", cfg->data_dir, id) >= (int)sizeof dir) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "data_dir too long");
    }
    if (dir_out != NULL && dir_cap > 0) {
        (void)snprintf(dir_out, dir_cap, "%s", dir);
    }
    m2p_code rc = m2p_fs_mkdirs(dir, err);
    if (rc != M2P_OK) {
        return rc;
    }
    char lock[M2P_PATH_MAX + 16];
    (void)snprintf(lock, sizeof lock, "%s/.pull.lock", dir);
    int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lfd < 0) {
        return m2p_error_set(err, M2P_E_IO, "%s: %s", lock, strerror(errno));
    }
    if (flock(lfd, LOCK_EX | LOCK_NB) != 0) {
        (void)close(lfd);
        return m2p_error_set(err, M2P_E_MODEL_DOWNLOAD, "another `mus2pic model pull` is writing %s; wait for it", dir);
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        (void)close(lfd);
        return m2p_error_set(err, M2P_E_INTERNAL, "curl_global_init failed");
    }
    listing l = {NULL};
    rc = fetch_listing(endpoint, id, &l, err);
    pull_ctx pc = {endpoint, id, dir, opts != NULL && opts->retries > 0 ? opts->retries : 0, progress};
    bool fp16 = opts != NULL && opts->fp16;
    /* A component repository (TAESD): listed with a top-level config.json and no unet/, or,
     * without the API, known by its name. */
    bool component = l.siblings != NULL ? listed(&l, "config.json") && !listed(&l, "unet/config.json")
                                        : strncasecmp(strchr(id, '/') + 1, "taesd", 5) == 0;
    const wanted *files = component ? k_component_files : k_files;
    size_t n_files = component ? N_COMPONENT_FILES : N_FILES;
    for (size_t i = 0; rc == M2P_OK && i < n_files; i++) {
        const wanted *w = &files[i];
        const char *rel = w->plain;
        if (w->fp16 != NULL) {
            bool has_plain = listed(&l, w->plain), has_fp16 = l.siblings != NULL && listed(&l, w->fp16);
            if (l.siblings == NULL) {
                rel = fp16 ? w->fp16 : w->plain;
            } else if ((fp16 && has_fp16) || !has_plain) {
                rel = has_fp16 ? w->fp16 : NULL;
            }
            /* A variant already in place from an earlier pull counts. */
            char other[M2P_PATH_MAX + 128];
            (void)snprintf(other, sizeof other, "%s/%s", dir, rel == w->plain ? w->fp16 : w->plain);
            if (file_size(other) >= 0) {
                continue;
            }
        } else if (!listed(&l, rel)) {
            rel = NULL;
        }
        if (rel == NULL) {
            if (w->required) {
                rc = m2p_error_set(err, M2P_E_MODEL_DOWNLOAD,
                                   component ? "'%s' has no %s (is it a TAESD decoder in the diffusers layout?)"
                                             : "model '%s' has no %s (is it a Stable Diffusion 1.x model in the diffusers layout?)",
                                   id, w->plain);
            }
            continue;
        }
        rc = pull_file(&pc, rel, err);
    }
    json_decref(l.siblings);
    curl_global_cleanup();
    (void)close(lfd);
    return rc;
}
