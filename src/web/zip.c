/*
 * web/zip.c — ZIP export of images, streamed to the client.
 *
 * The archive uses the "store" method (PNGs are already compressed) with
 * CRC-32 from zlib. Entries: images/<image id>.png, images/<image id>.json
 * (the image's metadata) and jobs/<job id>.json (the job's result: analysis,
 * prompt with its "why" trace, settings), once per job. The JSON entries are
 * built when the response is created (the store handle is the request's);
 * image files are read one at a time while streaming (at most 64 MB each),
 * so memory stays bounded by one image. With a shared database an image whose
 * file is not on this host goes through the same local copy as a single image
 * (storage.c: image-cache/<id>.png written from image_data), with a store handle
 * borrowed from the pool for that entry; if the copy cannot be read either, the
 * stored bytes are used as they are. Archives stay under 4 GB (no ZIP64):
 * past that the stream ends with an error.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/alloc.h"
#include "core/fs.h"
#include "web/server_int.h"

#define ZIP_MAX_FILE (64u * 1024u * 1024u)

typedef struct zip_entry {
    char name[96];
    int64_t image_id; /* > 0: an image (path is its stored path) */
    char *path; /* file to read while streaming, or NULL */
    char *data; /* in-memory content (JSON), or NULL */
    size_t data_len;
    uint32_t crc, size, offset;
} zip_entry;

typedef struct zip_stream {
    m2p_web *w;
    bool shared; /* database shared with workers on other hosts */
    zip_entry *entries;
    size_t n, cap;
    size_t next;     /* next entry to emit */
    bool central_done;
    unsigned char *chunk; /* current output chunk */
    size_t chunk_len, chunk_off;
    uint64_t written;
    uint16_t dos_time, dos_date;
} zip_stream;

static void put16(unsigned char *p, uint16_t v) {
    p[0] = (unsigned char)(v & 0xff);
    p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v & 0xff);
    p[1] = (unsigned char)((v >> 8) & 0xff);
    p[2] = (unsigned char)((v >> 16) & 0xff);
    p[3] = (unsigned char)(v >> 24);
}

static void zip_free(void *cls) {
    zip_stream *z = cls;
    if (z == NULL) {
        return;
    }
    for (size_t i = 0; i < z->n; i++) {
        m2p_free(z->entries[i].path);
        m2p_free(z->entries[i].data);
    }
    m2p_free(z->entries);
    m2p_free(z->chunk);
    m2p_free(z);
}

static bool add_entry(zip_stream *z, const char *name, int64_t image_id, const char *path, char *data, size_t len) {
    if (z->n == z->cap) {
        size_t cap = z->cap == 0 ? 16 : z->cap * 2;
        zip_entry *ne = m2p_realloc(z->entries, cap * sizeof *ne);
        if (ne == NULL) {
            return false;
        }
        z->entries = ne;
        z->cap = cap;
    }
    zip_entry *e = &z->entries[z->n];
    memset(e, 0, sizeof *e);
    (void)snprintf(e->name, sizeof e->name, "%s", name);
    if (path != NULL) {
        e->path = m2p_strdup(path);
        if (e->path == NULL) {
            return false;
        }
    }
    e->image_id = image_id;
    e->data = data;
    e->data_len = len;
    z->n++;
    return true;
}

/* The bytes of an image entry (m2p_free), NULL with *len 0 when they are gone
 * (a vanished image becomes an empty entry rather than a broken archive). */
static char *read_image(zip_stream *z, const zip_entry *e, size_t *len) {
    char *file = NULL;
    m2p_error err;
    m2p_error_clear(&err);
    *len = 0;
    if (m2p_fs_read_file(e->path, ZIP_MAX_FILE, &file, len, &err) == M2P_OK) {
        return file;
    }
    if (!z->shared || e->image_id <= 0) {
        return NULL;
    }
    m2p_store *s = NULL;
    if (web_store_get(z->w, &s, &err) != M2P_OK) {
        return NULL;
    }
    char local[M2P_PATH_MAX];
    const char *path = NULL;
    if (web_image_local(z->w, s, e->image_id, e->path, local, sizeof local, &path, &err) == M2P_OK &&
        m2p_fs_read_file(path, ZIP_MAX_FILE, &file, len, &err) == M2P_OK) {
        web_store_put(z->w, s);
        return file;
    }
    unsigned char *png = NULL;
    if (m2p_store_image_data(s, e->image_id, &png, len, &err) != M2P_OK) {
        png = NULL;
        *len = 0;
    }
    web_store_put(z->w, s);
    return (char *)png;
}

/* Builds the next chunk (local header + data of the next entry, or the
 * central directory). False at the end or on error (*failed set). */
static bool next_chunk(zip_stream *z, bool *failed) {
    m2p_free(z->chunk);
    z->chunk = NULL;
    z->chunk_len = 0;
    z->chunk_off = 0;
    if (z->next < z->n) {
        zip_entry *e = &z->entries[z->next++];
        char *content = e->data;
        size_t len = e->data_len;
        char *file = NULL;
        if (e->path != NULL) {
            content = file = read_image(z, e, &len);
        }
        size_t nl = strlen(e->name);
        size_t total = 30 + nl + len;
        if (z->written + total > 0xFFFFFFFFull) {
            m2p_free(file);
            *failed = true;
            return false;
        }
        e->crc = (uint32_t)crc32(0L, (const Bytef *)content, (uInt)len);
        e->size = (uint32_t)len;
        e->offset = (uint32_t)z->written;
        z->chunk = m2p_malloc(total);
        if (z->chunk == NULL) {
            m2p_free(file);
            *failed = true;
            return false;
        }
        unsigned char *h = z->chunk;
        put32(h, 0x04034b50);
        put16(h + 4, 20);
        put16(h + 6, 0);
        put16(h + 8, 0);
        put16(h + 10, z->dos_time);
        put16(h + 12, z->dos_date);
        put32(h + 14, e->crc);
        put32(h + 18, e->size);
        put32(h + 22, e->size);
        put16(h + 26, (uint16_t)nl);
        put16(h + 28, 0);
        memcpy(h + 30, e->name, nl);
        if (len > 0) {
            memcpy(h + 30 + nl, content, len);
        }
        m2p_free(file);
        z->chunk_len = total;
        return true;
    }
    if (z->central_done) {
        return false;
    }
    z->central_done = true;
    size_t total = 22;
    for (size_t i = 0; i < z->n; i++) {
        total += 46 + strlen(z->entries[i].name);
    }
    z->chunk = m2p_malloc(total);
    if (z->chunk == NULL) {
        *failed = true;
        return false;
    }
    unsigned char *p = z->chunk;
    uint32_t cd_offset = (uint32_t)z->written;
    for (size_t i = 0; i < z->n; i++) {
        zip_entry *e = &z->entries[i];
        size_t nl = strlen(e->name);
        put32(p, 0x02014b50);
        put16(p + 4, 20);
        put16(p + 6, 20);
        put16(p + 8, 0);
        put16(p + 10, 0);
        put16(p + 12, z->dos_time);
        put16(p + 14, z->dos_date);
        put32(p + 16, e->crc);
        put32(p + 20, e->size);
        put32(p + 24, e->size);
        put16(p + 28, (uint16_t)nl);
        put16(p + 30, 0);
        put16(p + 32, 0);
        put16(p + 34, 0);
        put16(p + 36, 0);
        put32(p + 38, 0);
        put32(p + 42, e->offset);
        memcpy(p + 46, e->name, nl);
        p += 46 + nl;
    }
    put32(p, 0x06054b50);
    put16(p + 4, 0);
    put16(p + 6, 0);
    put16(p + 8, (uint16_t)z->n);
    put16(p + 10, (uint16_t)z->n);
    put32(p + 12, (uint32_t)(total - 22));
    put32(p + 16, cd_offset);
    put16(p + 20, 0);
    z->chunk_len = total;
    return true;
}

static ssize_t zip_read(void *cls, uint64_t pos, char *buf, size_t max) {
    zip_stream *z = cls;
    size_t out = 0;
    while (out < max) {
        if (z->chunk_off == z->chunk_len) {
            bool failed = false;
            if (!next_chunk(z, &failed)) {
                if (failed) {
                    return MHD_CONTENT_READER_END_WITH_ERROR;
                }
                break;
            }
        }
        size_t n = z->chunk_len - z->chunk_off;
        if (n > max - out) {
            n = max - out;
        }
        memcpy(buf + out, z->chunk + z->chunk_off, n);
        z->chunk_off += n;
        out += n;
        z->written += n;
    }
    if (out == 0) {
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    return (ssize_t)out;
}

static char *dump(json_t *j, size_t *len) {
    char *t = j != NULL ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    if (t == NULL) {
        return NULL;
    }
    char *copy = m2p_strdup(t);
    free(t);
    *len = copy != NULL ? strlen(copy) : 0;
    return copy;
}

m2p_code web_zip_response(web_ctx *c, json_t *images, m2p_error *err) {
    if (!json_is_array(images) || json_array_size(images) == 0) {
        return m2p_error_set(err, M2P_E_IMAGE_NOT_FOUND, "nothing to export");
    }
    if (json_array_size(images) > 1000) {
        return m2p_error_set(err, M2P_E_BATCH_TOO_LARGE, "at most 1000 images per export");
    }
    zip_stream *z = m2p_calloc(1, sizeof *z);
    if (z == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "zip");
    }
    z->w = c->w;
    z->shared = m2p_store_is_shared(c->store);
    z->dos_time = 0;
    z->dos_date = (uint16_t)(((2026 - 1980) << 9) | (1 << 5) | 1);
    m2p_code code = M2P_OK;
    json_t *seen_jobs = json_object();
    size_t i;
    json_t *img;
    json_array_foreach(images, i, img) {
        int64_t id = (int64_t)json_integer_value(json_object_get(img, "id"));
        int64_t job = (int64_t)json_integer_value(json_object_get(img, "job_id"));
        const char *path = json_string_value(json_object_get(img, "path"));
        char name[96];
        (void)snprintf(name, sizeof name, "images/%lld.png", (long long)id);
        if (path == NULL || !add_entry(z, name, id, path, NULL, 0)) {
            code = m2p_error_set(err, M2P_E_NOMEM, "zip entry");
            break;
        }
        json_t *meta = json_deep_copy(img);
        (void)json_object_del(meta, "path");
        size_t len = 0;
        char *text = dump(meta, &len);
        json_decref(meta);
        (void)snprintf(name, sizeof name, "images/%lld.json", (long long)id);
        if (text == NULL || !add_entry(z, name, 0, NULL, text, len)) {
            m2p_free(text);
            code = m2p_error_set(err, M2P_E_NOMEM, "zip entry");
            break;
        }
        char jk[32];
        (void)snprintf(jk, sizeof jk, "%lld", (long long)job);
        if (seen_jobs != NULL && json_object_get(seen_jobs, jk) == NULL) {
            (void)json_object_set_new(seen_jobs, jk, json_true());
            json_t *jj = NULL;
            m2p_error e2;
            if (m2p_store_job_get(c->store, job, &jj, &e2) == M2P_OK) {
                json_t *doc = json_pack("{s:O, s:O, s:O, s:O}", "id", json_object_get(jj, "id"), "spec",
                                        json_object_get(jj, "spec"), "result", json_object_get(jj, "result"),
                                        "created_at", json_object_get(jj, "created_at"));
                (void)json_object_del(json_object_get(doc, "spec"), "upload_path");
                json_decref(jj);
                text = dump(doc, &len);
                json_decref(doc);
                (void)snprintf(name, sizeof name, "jobs/%lld.json", (long long)job);
                if (text == NULL || !add_entry(z, name, 0, NULL, text, len)) {
                    m2p_free(text);
                    code = m2p_error_set(err, M2P_E_NOMEM, "zip entry");
                    break;
                }
            }
        }
    }
    json_decref(seen_jobs);
    if (code != M2P_OK) {
        zip_free(z);
        return code;
    }
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, zip_read, z, zip_free);
    if (r == NULL) {
        zip_free(z);
        return m2p_error_set(err, M2P_E_NOMEM, "response");
    }
    (void)MHD_add_response_header(r, "Content-Type", "application/zip");
    (void)MHD_add_response_header(r, "Content-Disposition", "attachment; filename=\"mus2pic-export.zip\"");
    (void)MHD_add_response_header(r, "Cache-Control", "no-store");
    web_add_common_headers(r);
    c->resp = r;
    c->status = MHD_HTTP_OK;
    return M2P_OK;
}
