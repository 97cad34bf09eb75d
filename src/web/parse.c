/*
 * web/parse.c — pure parsers of the HTTP API (see parse.h). Everything here
 * reads untrusted bytes: every length is capped, every number range-checked,
 * and nothing is allocated that is not freed on every path.
 */
#include "web/parse.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audio/source.h"
#include "core/fs.h"
#include "prompt/presets.h"
#include "prompt/template.h"

static const char *const k_spec_keys[] = {"source", "style",    "variations", "steps",  "size",
                                          "width",  "height",   "seed",       "guidance", "renderer",
                                          "template", "layout", "per_section"};

static bool known_key(const char *k) {
    for (size_t i = 0; i < sizeof k_spec_keys / sizeof k_spec_keys[0]; i++) {
        if (strcmp(k, k_spec_keys[i]) == 0) {
            return true;
        }
    }
    return false;
}

bool m2p_web_parse_int(const char *s, long min, long max, long *out) {
    if (s == NULL || s[0] == '\0' || strlen(s) > 20) {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (!(isdigit((unsigned char)*p) || (p == s && *p == '-'))) {
            return false;
        }
    }
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        return false;
    }
    *out = (long)v;
    return true;
}

bool m2p_web_parse_double(const char *s, double min, double max, double *out) {
    if (s == NULL || s[0] == '\0' || strlen(s) > 40) {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (!(isdigit((unsigned char)*p) || *p == '.' || *p == '-' || *p == '+' || *p == 'e' || *p == 'E')) {
            return false;
        }
    }
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

bool m2p_web_parse_id(const char *s, int64_t *out) {
    if (s == NULL || s[0] < '1' || s[0] > '9') {
        return false;
    }
    int64_t v = 0;
    size_t n = 0;
    for (const char *p = s; *p != '\0'; p++, n++) {
        if (!isdigit((unsigned char)*p) || n >= 18) {
            return false;
        }
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return true;
}

/* A number field: JSON integer (or, from a form, decimal text). */
static m2p_code get_long(const json_t *in, const char *key, bool form, long min, long max, m2p_code range_code,
                         long *out, bool *present, m2p_error *err) {
    *present = false;
    json_t *v = json_object_get(in, key);
    if (v == NULL || json_is_null(v)) {
        return M2P_OK;
    }
    long x = 0;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < min || i > max) {
            return m2p_error_set(err, range_code, "%s: %lld is outside %ld..%ld", key, (long long)i, min, max);
        }
        x = (long)i;
    } else if (form && json_is_string(v)) {
        if (!m2p_web_parse_int(json_string_value(v), min, max, &x)) {
            return m2p_error_set(err, range_code, "%s: '%.40s' is not a whole number in %ld..%ld", key,
                                 json_string_value(v), min, max);
        }
    } else {
        return m2p_error_set(err, range_code, "%s must be a whole number", key);
    }
    *out = x;
    *present = true;
    return M2P_OK;
}

static m2p_code get_bool(const json_t *in, const char *key, bool form, bool *out, m2p_error *err) {
    json_t *v = json_object_get(in, key);
    *out = false;
    if (v == NULL || json_is_null(v)) {
        return M2P_OK;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return M2P_OK;
    }
    if (form && json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0 || strcmp(s, "on") == 0) {
            *out = true;
            return M2P_OK;
        }
        if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0 || strcmp(s, "off") == 0 || s[0] == '\0') {
            return M2P_OK;
        }
    }
    return m2p_error_set(err, M2P_E_FIELD_INVALID, "%s must be true or false", key);
}

static m2p_code get_string(const json_t *in, const char *key, size_t max, const char **out, m2p_error *err) {
    json_t *v = json_object_get(in, key);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        return M2P_OK;
    }
    if (!json_is_string(v)) {
        return m2p_error_set(err, M2P_E_FIELD_INVALID, "%s must be text", key);
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len > max) {
        return m2p_error_set(err, key[0] == 's' && strcmp(key, "source") == 0 ? M2P_E_URL_TOO_LONG : M2P_E_FIELD_INVALID,
                             "%s is longer than %zu bytes", key, max);
    }
    if (strlen(s) != len) {
        return m2p_error_set(err, M2P_E_FIELD_INVALID, "%s contains a NUL byte", key);
    }
    *out = len > 0 ? s : NULL;
    return M2P_OK;
}

static m2p_code check_dim(long v, const char *what, m2p_error *err) {
    if (v < 64 || v > 4096 || v % 8 != 0) {
        return m2p_error_set(err, M2P_E_RENDER_SIZE, "%s %ld: use 64..4096, a multiple of 8", what, v);
    }
    return M2P_OK;
}

/* Takes a value from the request, else from the user's defaults (text). */
static const json_t *pick(const json_t *in, const json_t *defaults, const char *key, json_t **tmp, bool *from_default) {
    *from_default = false;
    const json_t *v = json_object_get(in, key);
    if (v != NULL && !json_is_null(v)) {
        return in;
    }
    if (defaults != NULL && json_is_string(json_object_get(defaults, key))) {
        *tmp = json_pack("{s:O}", key, json_object_get(defaults, key));
        *from_default = true;
        return *tmp;
    }
    return in;
}

m2p_code m2p_web_parse_spec(const json_t *in, const m2p_spec_ctx *ctx, uint32_t seed_if_unset, json_t **out,
                            bool *seed_given, m2p_error *err) {
    *out = NULL;
    *seed_given = false;
    if (!json_is_object(in)) {
        return m2p_error_set(err, M2P_E_JSON_INVALID, "the body must be a JSON object");
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)in, key, val) {
        if (!known_key(key)) {
            return m2p_error_set(err, M2P_E_FIELD_INVALID, "unknown field '%.64s'", key);
        }
    }
    json_t *spec = json_object();
    json_t *tmp = NULL;
    m2p_code c = M2P_OK;
    if (spec == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "spec");
    }
    /* source */
    const char *source = NULL;
    c = get_string(in, "source", M2P_WEB_MAX_SOURCE, &source, err);
    if (c == M2P_OK && ctx->need_source) {
        if (source == NULL) {
            c = m2p_error_set(err, M2P_E_URL_EMPTY, "give a source link or upload a file");
        } else {
            m2p_source src;
            c = m2p_source_parse(source, ctx->cfg, false, &src, err);
            if (c == M2P_OK && !m2p_source_is_remote(&src)) {
                c = m2p_error_set(err, M2P_E_PATH_UNSAFE, "the server does not read local files; upload the file");
            }
            if (c == M2P_OK) {
                (void)json_object_set_new(spec, "source", json_string(src.url[0] != '\0' ? src.url : source));
            }
        }
    } else if (c == M2P_OK && source != NULL) {
        c = m2p_error_set(err, M2P_E_FIELD_INVALID, "give either a source link or a file, not both");
    }
    /* style */
    const char *style = NULL;
    bool fd = false;
    if (c == M2P_OK) {
        c = get_string(pick(in, ctx->defaults, "style", &tmp, &fd), "style", 48, &style, err);
    }
    if (c == M2P_OK && style != NULL) {
        if (ctx->presets != NULL) {
            const m2p_preset *p = NULL;
            c = m2p_presets_find(ctx->presets, style, &p, err);
            if (c == M2P_OK) {
                (void)json_object_set_new(spec, "style", json_string(p->name));
            }
        } else {
            (void)json_object_set_new(spec, "style", json_string(style));
        }
    }
    json_decref(tmp);
    tmp = NULL;
    /* template */
    const char *tpl = NULL;
    if (c == M2P_OK) {
        c = get_string(in, "template", M2P_WEB_MAX_TEMPLATE, &tpl, err);
    }
    if (c == M2P_OK && tpl != NULL) {
        m2p_template *t = NULL;
        c = m2p_template_parse(tpl, &t, err);
        m2p_template_free(t);
        if (c == M2P_OK) {
            (void)json_object_set_new(spec, "template", json_string(tpl));
        }
    }
    /* renderer */
    const char *renderer = NULL;
    if (c == M2P_OK) {
        c = get_string(pick(in, ctx->defaults, "renderer", &tmp, &fd), "renderer", 15, &renderer, err);
    }
    if (c == M2P_OK && renderer != NULL) {
        if (strcmp(renderer, "auto") != 0 && strcmp(renderer, "sonic") != 0 && strcmp(renderer, "lcm") != 0) {
            c = m2p_error_set(err, M2P_E_RENDERER_UNKNOWN, "renderer '%.15s'", renderer);
        } else {
            (void)json_object_set_new(spec, "renderer", json_string(renderer));
        }
    }
    json_decref(tmp);
    tmp = NULL;
    /* numbers */
    long v = 0;
    bool present = false;
    if (c == M2P_OK) {
        const json_t *src = pick(in, ctx->defaults, "variations", &tmp, &fd);
        c = get_long(src, "variations", ctx->form || fd, 1, 16, M2P_E_RENDER_COUNT, &v, &present, err);
        if (c == M2P_OK && present) {
            (void)json_object_set_new(spec, "variations", json_integer(v));
        }
        json_decref(tmp);
        tmp = NULL;
    }
    if (c == M2P_OK) {
        const json_t *src = pick(in, ctx->defaults, "steps", &tmp, &fd);
        c = get_long(src, "steps", ctx->form || fd, 1, 50, M2P_E_RENDER_STEPS, &v, &present, err);
        if (c == M2P_OK && present) {
            (void)json_object_set_new(spec, "steps", json_integer(v));
        }
        json_decref(tmp);
        tmp = NULL;
    }
    if (c == M2P_OK) {
        c = get_long(in, "seed", ctx->form, 0, 4294967295L, M2P_E_RENDER_SEED, &v, &present, err);
        if (c == M2P_OK) {
            *seed_given = present;
            (void)json_object_set_new(spec, "seed", json_integer(present ? v : (json_int_t)seed_if_unset));
        }
    }
    if (c == M2P_OK) {
        const json_t *src = pick(in, ctx->defaults, "guidance", &tmp, &fd);
        json_t *g = json_object_get(src, "guidance");
        double gv = 0;
        if (g != NULL && !json_is_null(g)) {
            bool ok = false;
            if (json_is_number(g)) {
                gv = json_number_value(g);
                ok = isfinite(gv) && gv >= 1 && gv <= 30;
            } else if ((ctx->form || fd) && json_is_string(g)) {
                ok = m2p_web_parse_double(json_string_value(g), 1, 30, &gv);
            }
            if (!ok) {
                c = m2p_error_set(err, M2P_E_RENDER_GUIDANCE, "guidance must be a number from 1 to 30");
            } else {
                (void)json_object_set_new(spec, "guidance", json_real(gv));
            }
        }
        json_decref(tmp);
        tmp = NULL;
    }
    /* size: "WxH", or width/height */
    long w = 0;
    long h = 0;
    if (c == M2P_OK) {
        const char *size = NULL;
        const json_t *src = pick(in, ctx->defaults, "size", &tmp, &fd);
        c = get_string(src, "size", 16, &size, err);
        if (c == M2P_OK && size != NULL) {
            char wbuf[17];
            (void)snprintf(wbuf, sizeof wbuf, "%s", size);
            char *x = strchr(wbuf, 'x');
            if (x == NULL) {
                c = m2p_error_set(err, M2P_E_RENDER_SIZE, "size '%.16s': write WIDTHxHEIGHT, e.g. 512x512", size);
            } else {
                *x = '\0';
                if (!m2p_web_parse_int(wbuf, 1, 100000, &w) || !m2p_web_parse_int(x + 1, 1, 100000, &h)) {
                    c = m2p_error_set(err, M2P_E_RENDER_SIZE, "size '%.16s': write WIDTHxHEIGHT, e.g. 512x512", size);
                }
            }
        }
        json_decref(tmp);
        tmp = NULL;
    }
    if (c == M2P_OK && w == 0) {
        c = get_long(in, "width", ctx->form, 1, 100000, M2P_E_RENDER_SIZE, &w, &present, err);
    }
    if (c == M2P_OK && h == 0) {
        c = get_long(in, "height", ctx->form, 1, 100000, M2P_E_RENDER_SIZE, &h, &present, err);
    }
    if (c == M2P_OK && (w != 0 || h != 0)) {
        if (w == 0) {
            w = h;
        }
        if (h == 0) {
            h = w;
        }
        c = check_dim(w, "width", err);
        if (c == M2P_OK) {
            c = check_dim(h, "height", err);
        }
        if (c == M2P_OK) {
            (void)json_object_set_new(spec, "width", json_integer(w));
            (void)json_object_set_new(spec, "height", json_integer(h));
        }
    }
    bool b = false;
    if (c == M2P_OK) {
        c = get_bool(in, "layout", ctx->form, &b, err);
        if (c == M2P_OK && b) {
            (void)json_object_set_new(spec, "layout", json_true());
        }
    }
    if (c == M2P_OK) {
        c = get_bool(in, "per_section", ctx->form, &b, err);
        if (c == M2P_OK && b) {
            (void)json_object_set_new(spec, "per_section", json_true());
        }
    }
    if (c != M2P_OK) {
        json_decref(spec);
        return c;
    }
    *out = spec;
    return M2P_OK;
}

m2p_code m2p_web_parse_json_body(const char *body, size_t len, json_t **out, m2p_error *err) {
    *out = NULL;
    if (len > M2P_WEB_MAX_JSON_BODY) {
        return m2p_error_set(err, M2P_E_BODY_TOO_LARGE, "JSON bodies are limited to %d bytes", M2P_WEB_MAX_JSON_BODY);
    }
    if (body == NULL || len == 0) {
        return m2p_error_set(err, M2P_E_JSON_INVALID, "the body is empty");
    }
    json_error_t je;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL) {
        return m2p_error_set(err, M2P_E_JSON_INVALID, "line %d column %d: %.120s", je.line, je.column, je.text);
    }
    if (!json_is_object(j)) {
        json_decref(j);
        return m2p_error_set(err, M2P_E_JSON_INVALID, "the body must be a JSON object");
    }
    *out = j;
    return M2P_OK;
}

m2p_code m2p_web_request_hash(const json_t *spec, char hex[65], m2p_error *err) {
    char *text = json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS);
    if (text == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "request hash");
    }
    m2p_sha256_hex(text, strlen(text), hex);
    free(text);
    return M2P_OK;
}

static bool parse_u64(const char *s, size_t n, uint64_t *out) {
    if (n == 0 || n > 19) {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) {
            return false;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

m2p_code m2p_web_parse_range(const char *header, uint64_t size, uint64_t *start, uint64_t *len, m2p_error *err) {
    if (header == NULL || strncmp(header, "bytes=", 6) != 0) {
        return m2p_error_set(err, M2P_E_RANGE_INVALID, "only byte ranges are served");
    }
    const char *spec = header + 6;
    size_t n = strlen(spec);
    if (n > 64 || strchr(spec, ',') != NULL) {
        return m2p_error_set(err, M2P_E_RANGE_INVALID, "only one range per request is served");
    }
    const char *dash = strchr(spec, '-');
    if (dash == NULL) {
        return m2p_error_set(err, M2P_E_RANGE_INVALID, "malformed range");
    }
    uint64_t a = 0;
    uint64_t b = 0;
    size_t na = (size_t)(dash - spec);
    size_t nb = strlen(dash + 1);
    if (na == 0) {
        if (!parse_u64(dash + 1, nb, &b) || b == 0 || size == 0) {
            return m2p_error_set(err, M2P_E_RANGE_INVALID, "malformed or empty suffix range");
        }
        if (b > size) {
            b = size;
        }
        *start = size - b;
        *len = b;
        return M2P_OK;
    }
    if (!parse_u64(spec, na, &a) || a >= size) {
        return m2p_error_set(err, M2P_E_RANGE_INVALID, "range start outside the file");
    }
    if (nb == 0) {
        b = size - 1;
    } else if (!parse_u64(dash + 1, nb, &b) || b < a) {
        return m2p_error_set(err, M2P_E_RANGE_INVALID, "malformed range");
    }
    if (b >= size) {
        b = size - 1;
    }
    *start = a;
    *len = b - a + 1;
    return M2P_OK;
}

bool m2p_web_cookie(const char *header, const char *name, char *buf, size_t cap) {
    if (header == NULL || cap == 0) {
        return false;
    }
    size_t nl = strlen(name);
    const char *p = header;
    while (*p != '\0') {
        while (*p == ' ' || *p == ';') {
            p++;
        }
        const char *end = strchr(p, ';');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            size_t vl = len - nl - 1;
            if (vl >= cap) {
                return false;
            }
            memcpy(buf, p + nl + 1, vl);
            buf[vl] = '\0';
            return true;
        }
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    return false;
}

bool m2p_web_bearer(const char *header, char *buf, size_t cap) {
    if (header == NULL || strncasecmp(header, "Bearer ", 7) != 0) {
        return false;
    }
    const char *t = header + 7;
    while (*t == ' ') {
        t++;
    }
    size_t n = strlen(t);
    while (n > 0 && t[n - 1] == ' ') {
        n--;
    }
    if (n == 0 || n >= cap) {
        return false;
    }
    memcpy(buf, t, n);
    buf[n] = '\0';
    return true;
}

bool m2p_web_token_equal(const char *a, const char *b) {
    size_t la = strlen(a);
    size_t lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    size_t n = la > lb ? la : lb;
    for (size_t i = 0; i < n; i++) {
        unsigned char ca = i < la ? (unsigned char)a[i] : 0;
        unsigned char cb = i < lb ? (unsigned char)b[i] : 0;
        diff |= (unsigned char)(ca ^ cb);
    }
    return diff == 0;
}

bool m2p_web_origin_allowed(const char *origin, const char *host) {
    if (origin == NULL) {
        return true;
    }
    if (host == NULL || host[0] == '\0') {
        return false;
    }
    const char *rest = NULL;
    if (strncasecmp(origin, "http://", 7) == 0) {
        rest = origin + 7;
    } else if (strncasecmp(origin, "https://", 8) == 0) {
        rest = origin + 8;
    } else {
        return false;
    }
    size_t n = strlen(rest);
    if (n > 0 && rest[n - 1] == '/') {
        n--;
    }
    return n == strlen(host) && strncasecmp(rest, host, n) == 0;
}

const char *m2p_web_upload_ext(const char *filename) {
    static const char *const k_exts[] = {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a",
                                         ".aac", ".mp4",  ".webm", ".aiff", ".aif", ".caf", ".w64", ".mka"};
    if (filename == NULL) {
        return ".bin";
    }
    const char *dot = strrchr(filename, '.');
    if (dot == NULL) {
        return ".bin";
    }
    for (size_t i = 0; i < sizeof k_exts / sizeof k_exts[0]; i++) {
        if (strcasecmp(dot, k_exts[i]) == 0) {
            return k_exts[i];
        }
    }
    return ".bin";
}

bool m2p_web_host_is_loopback(const char *host) {
    if (host == NULL) {
        return false;
    }
    if (strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0) {
        return true;
    }
    unsigned a = 0;
    unsigned b = 0;
    unsigned c = 0;
    unsigned d = 0;
    char tail = 0;
    if (sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4) {
        return a == 127 && b <= 255 && c <= 255 && d <= 255;
    }
    return false;
}

static int hex_value(char ch) {
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

size_t m2p_web_unescape(char *s) {
    char *out = s;
    for (const char *in = s; *in != '\0'; in++) {
        int hi = in[0] == '%' ? hex_value(in[1]) : -1;
        int lo = hi >= 0 ? hex_value(in[2]) : -1;
        if (hi >= 0 && lo >= 0) {
            int v = hi * 16 + lo;
            *out++ = v == 0 ? '\x01' : (char)v;
            in += 2;
        } else {
            *out++ = *in;
        }
    }
    *out = '\0';
    return (size_t)(out - s);
}
