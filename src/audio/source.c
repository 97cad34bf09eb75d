/*
 * audio/source.c — what the user gave us (a URL, a bare YouTube id, a local
 * path, an upload hash) turned into a validated m2p_source, before any
 * network request.
 *
 * The URL splitter is our own, deliberately strict and allocation-free:
 * printable ASCII only, no backslashes or spaces, no percent-escapes or
 * non-ASCII in host names, http/https only. Accepted sources never hand the
 * user's text to yt-dlp: the canonical URL is rebuilt from the parts we
 * validated (video id, artist and track slugs), so a difference between our
 * parser and yt-dlp's (the classic SSRF trick) cannot change the target.
 *
 * Host checks never resolve DNS. IP literals are recognised the way the
 * resolver reads them (inet_aton: decimal, hex and octal parts, 1 to 4 of
 * them, so http://2130706433/ and http://0x7f.1/ are 127.0.0.1) and IPv6 in
 * brackets with inet_pton; loopback → URL_LOCALHOST, private, link-local,
 * CGNAT, ULA and other special ranges → URL_PRIVATE, any other address →
 * URL_IP_LITERAL. Names that only resolve inside a network (localhost,
 * *.localhost, single-label names, .local, .internal, .lan, .home.arpa)
 * are refused as well. Only the exact hosts of the allowed sites pass.
 */
#include "audio/source.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/fs.h"

#define SRC_MAX_INPUT 2048 /* longest input accepted (URL_TOO_LONG beyond) */
#define YT_ID_LEN 11

/* The parts of an absolute http(s) URL; pointers into one scratch buffer. */
typedef struct url_parts {
    bool https;
    char host[256];                /* lower case, trailing dot removed */
    int port;                      /* -1 when absent */
    char path[SRC_MAX_INPUT + 1];  /* starts with '/' ("/" when empty) */
    char query[SRC_MAX_INPUT + 1]; /* without '?'; "" when absent */
} url_parts;

const char *m2p_source_kind_name(m2p_source_kind kind) {
    switch (kind) {
    case M2P_SOURCE_FILE:
        return "file";
    case M2P_SOURCE_UPLOAD:
        return "upload";
    case M2P_SOURCE_YOUTUBE:
        return "youtube";
    case M2P_SOURCE_SOUNDCLOUD:
        return "soundcloud";
    case M2P_SOURCE_BANDCAMP:
        return "bandcamp";
    case M2P_SOURCE_TEST_LOOPBACK:
        return "test";
    }
    return "unknown";
}

static bool is_yt_id_char(char c) {
    return isalnum((unsigned char)c) || c == '-' || c == '_';
}

/* Exactly 11 characters of [A-Za-z0-9_-] in s[0..n). */
static bool is_yt_id(const char *s, size_t n) {
    if (n != YT_ID_LEN) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_yt_id_char(s[i])) {
            return false;
        }
    }
    return true;
}

static bool ends_with_ci(const char *s, size_t n, const char *suffix) {
    size_t m = strlen(suffix);
    return n >= m && strncasecmp(s + n - m, suffix, m) == 0;
}

/* ---- IP literals ------------------------------------------------------------------------- */

typedef enum addr_class { ADDR_PUBLIC, ADDR_LOOPBACK, ADDR_PRIVATE } addr_class;

static addr_class classify_v4(uint32_t a) {
    uint32_t b0 = a >> 24;
    uint32_t b1 = (a >> 16) & 0xff;
    if (b0 == 127) {
        return ADDR_LOOPBACK;
    }
    if (b0 == 0 || b0 == 10 || b0 >= 224 ||                 /* this-network, private, multicast, reserved */
        (b0 == 169 && b1 == 254) ||                         /* link-local (cloud metadata) */
        (b0 == 172 && b1 >= 16 && b1 <= 31) ||              /* private */
        (b0 == 192 && b1 == 168) ||                         /* private */
        (b0 == 100 && b1 >= 64 && b1 <= 127) ||             /* CGNAT */
        (b0 == 192 && b1 == 0 && ((a >> 8) & 0xff) == 0) || /* IETF protocol assignments */
        (b0 == 198 && (b1 == 18 || b1 == 19))) {            /* benchmarking */
        return ADDR_PRIVATE;
    }
    return ADDR_PUBLIC;
}

static addr_class classify_v6(const unsigned char b[16]) {
    static const unsigned char loop[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const unsigned char zero[16] = {0};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(b, loop, 16) == 0) {
        return ADDR_LOOPBACK;
    }
    if (memcmp(b, zero, 16) == 0) {
        return ADDR_PRIVATE;
    }
    if (memcmp(b, mapped, 12) == 0 || memcmp(b, zero, 12) == 0) { /* v4-mapped / v4-compatible */
        uint32_t a = ((uint32_t)b[12] << 24) | ((uint32_t)b[13] << 16) | ((uint32_t)b[14] << 8) | b[15];
        return classify_v4(a);
    }
    if ((b[0] & 0xfe) == 0xfc ||                                          /* fc00::/7 ULA */
        (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) ||                        /* fe80::/10 link-local */
        (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) ||                        /* fec0::/10 site-local */
        b[0] == 0xff ||                                                   /* multicast */
        (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) || /* documentation */
        (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b) || /* NAT64 64:ff9b::/96 */
        (b[0] == 0x20 && b[1] == 0x02)) {                                 /* 6to4 embeds any v4 */
        return ADDR_PRIVATE;
    }
    return ADDR_PUBLIC;
}

/* A host every label of which is a number (decimal, 0x hex or 0 octal), or
 * whose last label is all digits (browsers read it as an address): an IPv4
 * literal. *parsed=false when it is numeric but not a valid address. */
static bool host_is_numeric(const char *host, bool *parsed, uint32_t *addr) {
    *parsed = false;
    size_t n = strlen(host);
    if (n == 0) {
        return false;
    }
    bool all_numeric = true;
    const char *label = host;
    const char *last_label = host;
    for (const char *p = host;; p++) {
        if (*p == '.' || *p == '\0') {
            size_t len = (size_t)(p - label);
            bool numeric = len > 0;
            size_t start = 0;
            bool hex = len > 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X');
            if (hex) {
                start = 2;
            }
            for (size_t i = start; i < len && numeric; i++) {
                numeric = hex ? isxdigit((unsigned char)label[i]) != 0 : isdigit((unsigned char)label[i]) != 0;
            }
            if (len == 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X')) {
                numeric = true; /* "0x" alone reads as 0 */
            }
            all_numeric = all_numeric && numeric;
            last_label = label;
            if (*p == '\0') {
                break;
            }
            label = p + 1;
        }
    }
    bool last_digits = *last_label != '\0';
    for (const char *p = last_label; *p != '\0'; p++) {
        last_digits = last_digits && isdigit((unsigned char)*p);
    }
    if (!all_numeric && !last_digits) {
        return false;
    }
    struct in_addr in;
    if (inet_aton(host, &in) != 0) {
        *parsed = true;
        *addr = ntohl(in.s_addr);
    }
    return true;
}

/* ---- URL splitting ------------------------------------------------------------------------- */

/* Splits an absolute http(s) URL. Refusals: scheme, credentials, malformed. */
static m2p_code split_url(const char *s, url_parts *u, m2p_error *err) {
    memset(u, 0, sizeof *u);
    u->port = -1;
    const char *colon = strchr(s, ':');
    if (colon == NULL) {
        return m2p_error_set(err, M2P_E_URL_NOT_URL, "no scheme");
    }
    size_t slen = (size_t)(colon - s);
    if (slen == 4 && strncasecmp(s, "http", 4) == 0) {
        u->https = false;
    } else if (slen == 5 && strncasecmp(s, "https", 5) == 0) {
        u->https = true;
    } else {
        return m2p_error_set(err, M2P_E_URL_SCHEME, "scheme '%.*s:' is not http or https", (int)(slen > 32 ? 32 : slen),
                             s);
    }
    if (colon[1] != '/' || colon[2] != '/') {
        return m2p_error_set(err, M2P_E_URL_NOT_URL, "expected // after %.*s:", (int)slen, s);
    }
    const char *auth = colon + 3;
    size_t alen = strcspn(auth, "/?#");
    const char *rest = auth + alen;
    if (memchr(auth, '@', alen) != NULL) {
        return m2p_error_set(err, M2P_E_URL_CREDENTIALS, "the link contains user@ or user:password@");
    }
    /* host[:port] or [v6]:port */
    const char *host = auth;
    size_t hlen = alen;
    const char *port = NULL;
    size_t plen = 0;
    if (alen > 0 && auth[0] == '[') {
        const char *close = memchr(auth, ']', alen);
        if (close == NULL) {
            return m2p_error_set(err, M2P_E_URL_NOT_URL, "unterminated [ in host");
        }
        hlen = (size_t)(close - auth) + 1;
        if (hlen < alen) {
            if (auth[hlen] != ':') {
                return m2p_error_set(err, M2P_E_URL_NOT_URL, "junk after ]");
            }
            port = auth + hlen + 1;
            plen = alen - hlen - 1;
        }
    } else {
        const char *pc = memchr(auth, ':', alen);
        if (pc != NULL) {
            hlen = (size_t)(pc - auth);
            port = pc + 1;
            plen = alen - hlen - 1;
        }
    }
    if (hlen == 0) {
        return m2p_error_set(err, M2P_E_URL_NOT_URL, "the link has no host name");
    }
    if (hlen >= sizeof u->host) {
        return m2p_error_set(err, M2P_E_URL_TOO_LONG, "host name too long");
    }
    for (size_t i = 0; i < hlen; i++) {
        u->host[i] = (char)tolower((unsigned char)host[i]);
    }
    u->host[hlen] = '\0';
    if (hlen > 1 && u->host[hlen - 1] == '.') {
        u->host[hlen - 1] = '\0';
    }
    if (port != NULL) {
        if (plen == 0) {
            u->port = u->https ? 443 : 80;
        } else {
            long v = 0;
            for (size_t i = 0; i < plen; i++) {
                if (!isdigit((unsigned char)port[i]) || v > 65535) {
                    return m2p_error_set(err, M2P_E_URL_NOT_URL, "bad port");
                }
                v = v * 10 + (port[i] - '0');
            }
            if (v < 1 || v > 65535) {
                return m2p_error_set(err, M2P_E_URL_NOT_URL, "bad port");
            }
            u->port = (int)v;
        }
    }
    /* path ? query # fragment */
    size_t path_len = strcspn(rest, "?#");
    if (path_len == 0) {
        (void)snprintf(u->path, sizeof u->path, "/");
    } else {
        memcpy(u->path, rest, path_len);
        u->path[path_len] = '\0';
    }
    if (rest[path_len] == '?') {
        const char *q = rest + path_len + 1;
        size_t qlen = strcspn(q, "#");
        memcpy(u->query, q, qlen);
        u->query[qlen] = '\0';
    }
    return M2P_OK;
}

/* Host refusals that do not depend on the site list. */
static m2p_code check_host(const url_parts *u, m2p_error *err) {
    const char *h = u->host;
    if (h[0] == '[') {
        char inner[64];
        size_t n = strlen(h);
        if (n < 3 || n - 2 >= sizeof inner) {
            return m2p_error_set(err, M2P_E_URL_IP_LITERAL, "bad IPv6 literal");
        }
        memcpy(inner, h + 1, n - 2);
        inner[n - 2] = '\0';
        char *zone = strchr(inner, '%');
        if (zone != NULL) {
            *zone = '\0';
        }
        unsigned char b[16];
        if (inet_pton(AF_INET6, inner, b) != 1) {
            return m2p_error_set(err, M2P_E_URL_IP_LITERAL, "bad IPv6 literal %s", h);
        }
        switch (classify_v6(b)) {
        case ADDR_LOOPBACK:
            return m2p_error_set(err, M2P_E_URL_LOCALHOST, "%s is this machine", h);
        case ADDR_PRIVATE:
            return m2p_error_set(err, M2P_E_URL_PRIVATE, "%s is a private or special address", h);
        case ADDR_PUBLIC:
            break;
        }
        return m2p_error_set(err, M2P_E_URL_IP_LITERAL, "%s", h);
    }
    for (const char *p = h; *p != '\0'; p++) {
        if (*p == '%') {
            return m2p_error_set(err, M2P_E_URL_NOT_URL, "escaped characters in the host name");
        }
    }
    bool parsed = false;
    uint32_t a = 0;
    if (host_is_numeric(h, &parsed, &a)) {
        if (!parsed) {
            return m2p_error_set(err, M2P_E_URL_IP_LITERAL, "%s reads as a malformed IP address", h);
        }
        switch (classify_v4(a)) {
        case ADDR_LOOPBACK:
            return m2p_error_set(err, M2P_E_URL_LOCALHOST, "%s is this machine", h);
        case ADDR_PRIVATE:
            return m2p_error_set(err, M2P_E_URL_PRIVATE, "%s is a private or special address", h);
        case ADDR_PUBLIC:
            break;
        }
        return m2p_error_set(err, M2P_E_URL_IP_LITERAL, "%s", h);
    }
    size_t n = strlen(h);
    if (strcmp(h, "localhost") == 0 || ends_with_ci(h, n, ".localhost") || strcmp(h, "localhost.localdomain") == 0 ||
        strcmp(h, "ip6-localhost") == 0 || strcmp(h, "ip6-loopback") == 0) {
        return m2p_error_set(err, M2P_E_URL_LOCALHOST, "%s", h);
    }
    if (strchr(h, '.') == NULL || ends_with_ci(h, n, ".local") || ends_with_ci(h, n, ".internal") ||
        ends_with_ci(h, n, ".lan") || ends_with_ci(h, n, ".home.arpa") || ends_with_ci(h, n, ".intranet") ||
        ends_with_ci(h, n, ".corp")) {
        return m2p_error_set(err, M2P_E_URL_PRIVATE, "%s is an internal host name", h);
    }
    for (const char *p = h; *p != '\0'; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.') {
            return m2p_error_set(err, M2P_E_URL_NOT_URL, "bad character in host name %s", h);
        }
    }
    return M2P_OK;
}

/* ---- query helpers ------------------------------------------------------------------------- */

/* Finds name=value in a query string; the value span goes to *val and *vlen. */
static bool query_get(const char *query, const char *name, const char **val, size_t *vlen) {
    size_t nlen = strlen(name);
    const char *p = query;
    while (*p != '\0') {
        size_t len = strcspn(p, "&;");
        if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            *val = p + nlen + 1;
            *vlen = len - nlen - 1;
            return true;
        }
        p += len;
        if (*p != '\0') {
            p++;
        }
    }
    return false;
}

/* Path segment i (0-based) of path "/a/b/c"; false when there is none. */
static bool path_seg(const char *path, int i, const char **seg, size_t *len) {
    const char *p = path;
    int k = -1;
    while (*p != '\0') {
        while (*p == '/') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        size_t l = strcspn(p, "/");
        k++;
        if (k == i) {
            *seg = p;
            *len = l;
            return true;
        }
        p += l;
    }
    return false;
}

static int path_nsegs(const char *path) {
    int n = 0;
    const char *s;
    size_t l;
    while (path_seg(path, n, &s, &l)) {
        n++;
    }
    return n;
}

static bool seg_is(const char *seg, size_t len, const char *word) {
    return strlen(word) == len && strncasecmp(seg, word, len) == 0;
}

/* ---- sites --------------------------------------------------------------------------------- */

static m2p_code set_youtube(const char *id, size_t n, m2p_source *out, m2p_error *err) {
    if (!is_yt_id(id, n)) {
        return m2p_error_set(err, M2P_E_URL_NO_VIDEO, "'%.*s' is not an 11-character video id", (int)(n > 40 ? 40 : n),
                             id);
    }
    out->kind = M2P_SOURCE_YOUTUBE;
    memcpy(out->id, id, n);
    out->id[n] = '\0';
    (void)snprintf(out->url, sizeof out->url, "https://www.youtube.com/watch?v=%s", out->id);
    return M2P_OK;
}

static m2p_code parse_youtube(const url_parts *u, bool short_host, m2p_source *out, m2p_error *err) {
    const char *seg = NULL;
    size_t len = 0;
    const char *v = NULL;
    size_t vlen = 0;
    if (short_host) { /* youtu.be/ID */
        if (!path_seg(u->path, 0, &seg, &len)) {
            return m2p_error_set(err, M2P_E_URL_NO_VIDEO, "youtu.be link without a video id");
        }
        return set_youtube(seg, len, out, err);
    }
    if (!path_seg(u->path, 0, &seg, &len)) {
        if (query_get(u->query, "v", &v, &vlen)) {
            return set_youtube(v, vlen, out, err);
        }
        return m2p_error_set(err, M2P_E_URL_NO_VIDEO, "the YouTube home page is not a video");
    }
    if (seg_is(seg, len, "watch")) {
        if (query_get(u->query, "v", &v, &vlen)) {
            return set_youtube(v, vlen, out, err);
        }
        if (query_get(u->query, "list", &v, &vlen)) {
            return m2p_error_set(err, M2P_E_URL_PLAYLIST, "watch link with a playlist but no video");
        }
        return m2p_error_set(err, M2P_E_URL_NO_VIDEO, "watch link without v=");
    }
    if (seg_is(seg, len, "shorts") || seg_is(seg, len, "embed") || seg_is(seg, len, "live") || seg_is(seg, len, "v") ||
        seg_is(seg, len, "e")) {
        const char *id = NULL;
        size_t idlen = 0;
        if (!path_seg(u->path, 1, &id, &idlen)) {
            return m2p_error_set(err, M2P_E_URL_NO_VIDEO, "/%.*s/ without a video id", (int)len, seg);
        }
        if (seg_is(id, idlen, "videoseries")) {
            return m2p_error_set(err, M2P_E_URL_PLAYLIST, "embedded playlist");
        }
        return set_youtube(id, idlen, out, err);
    }
    if (seg_is(seg, len, "playlist")) {
        return m2p_error_set(err, M2P_E_URL_PLAYLIST, "a YouTube playlist");
    }
    if (seg_is(seg, len, "results") || seg_is(seg, len, "search") || seg_is(seg, len, "hashtag")) {
        return m2p_error_set(err, M2P_E_URL_SEARCH, "a YouTube search page");
    }
    if (seg[0] == '@' || seg_is(seg, len, "channel") || seg_is(seg, len, "c") || seg_is(seg, len, "user")) {
        return m2p_error_set(err, M2P_E_URL_CHANNEL, "a YouTube channel page");
    }
    return m2p_error_set(err, M2P_E_URL_NO_VIDEO, "YouTube page /%.*s is not a video", (int)(len > 40 ? 40 : len), seg);
}

/* SoundCloud and Bandcamp slugs: [A-Za-z0-9_-], 1..100, stored lower case. */
static bool copy_slug(const char *seg, size_t len, char *dst, size_t cap) {
    if (len == 0 || len > 100 || len >= cap) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = seg[i];
        if (!isalnum((unsigned char)c) && c != '-' && c != '_') {
            return false;
        }
        dst[i] = (char)tolower((unsigned char)c);
    }
    dst[len] = '\0';
    return true;
}

/* id "<site>:<artist>/<track>"; when that does not fit, "<site>:" + a hash of the URL. */
static void set_slug_id(m2p_source *out, const char *site, const char *artist, const char *track) {
    int n = snprintf(out->id, sizeof out->id, "%s:%s/%s", site, artist, track);
    if (n < 0 || (size_t)n >= sizeof out->id) {
        char hex[65];
        m2p_sha256_hex(out->url, strlen(out->url), hex);
        n = snprintf(out->id, sizeof out->id, "%s:%s", site, hex);
        (void)n;
    }
}

static m2p_code parse_soundcloud(const url_parts *u, m2p_source *out, m2p_error *err) {
    const char *a = NULL, *t = NULL;
    size_t alen = 0, tlen = 0;
    int n = path_nsegs(u->path);
    if (n == 0) {
        return m2p_error_set(err, M2P_E_URL_NO_VIDEO, "the SoundCloud home page is not a track");
    }
    (void)path_seg(u->path, 0, &a, &alen);
    if (seg_is(a, alen, "search")) {
        return m2p_error_set(err, M2P_E_URL_SEARCH, "a SoundCloud search page");
    }
    static const char *k_not_artist[] = {"discover",     "stream",   "you",           "charts",   "upload",
                                         "feed",         "messages", "notifications", "settings", "pages",
                                         "terms-of-use", "mobile",   "tags"};
    for (size_t i = 0; i < sizeof k_not_artist / sizeof k_not_artist[0]; i++) {
        if (seg_is(a, alen, k_not_artist[i])) {
            return m2p_error_set(err, M2P_E_URL_NO_VIDEO, "SoundCloud page /%s is not a track", k_not_artist[i]);
        }
    }
    if (n == 1) {
        return m2p_error_set(err, M2P_E_URL_CHANNEL, "a SoundCloud artist page");
    }
    (void)path_seg(u->path, 1, &t, &tlen);
    if (seg_is(t, tlen, "sets")) {
        return m2p_error_set(err, M2P_E_URL_PLAYLIST, "a SoundCloud set");
    }
    static const char *k_user_pages[] = {"likes",     "tracks",         "albums",   "reposts",   "followers",
                                         "following", "popular-tracks", "comments", "spotlight", "toptracks"};
    for (size_t i = 0; i < sizeof k_user_pages / sizeof k_user_pages[0]; i++) {
        if (seg_is(t, tlen, k_user_pages[i])) {
            return m2p_error_set(err, M2P_E_URL_CHANNEL, "a SoundCloud user's /%s page", k_user_pages[i]);
        }
    }
    if (n > 2) {
        return m2p_error_set(err, M2P_E_URL_NO_VIDEO, "unexpected SoundCloud link shape");
    }
    char artist[128], track[128];
    if (!copy_slug(a, alen, artist, sizeof artist) || !copy_slug(t, tlen, track, sizeof track)) {
        return m2p_error_set(err, M2P_E_URL_NO_VIDEO, "unexpected characters in the SoundCloud link");
    }
    out->kind = M2P_SOURCE_SOUNDCLOUD;
    (void)snprintf(out->url, sizeof out->url, "https://soundcloud.com/%s/%s", artist, track);
    set_slug_id(out, "soundcloud", artist, track);
    return M2P_OK;
}

static m2p_code parse_bandcamp(const url_parts *u, const char *artist_host, size_t artist_len, m2p_source *out,
                               m2p_error *err) {
    char artist[128], track[128];
    const char *s0 = NULL, *s1 = NULL;
    size_t l0 = 0, l1 = 0;
    int n = path_nsegs(u->path);
    if (artist_len == 0 || seg_is(artist_host, artist_len, "www")) {
        if (n > 0 && path_seg(u->path, 0, &s0, &l0) && seg_is(s0, l0, "search")) {
            return m2p_error_set(err, M2P_E_URL_SEARCH, "a Bandcamp search page");
        }
        return m2p_error_set(err, M2P_E_URL_NO_VIDEO, "paste the link of one track (artist.bandcamp.com/track/...)");
    }
    if (!copy_slug(artist_host, artist_len, artist, sizeof artist)) {
        return m2p_error_set(err, M2P_E_URL_NO_VIDEO, "unexpected Bandcamp host name");
    }
    if (n == 0) {
        return m2p_error_set(err, M2P_E_URL_CHANNEL, "a Bandcamp artist page");
    }
    (void)path_seg(u->path, 0, &s0, &l0);
    if (seg_is(s0, l0, "album")) {
        return m2p_error_set(err, M2P_E_URL_PLAYLIST, "a Bandcamp album");
    }
    if (seg_is(s0, l0, "music") || seg_is(s0, l0, "merch") || seg_is(s0, l0, "community")) {
        return m2p_error_set(err, M2P_E_URL_CHANNEL, "a Bandcamp artist page");
    }
    if (seg_is(s0, l0, "search")) {
        return m2p_error_set(err, M2P_E_URL_SEARCH, "a Bandcamp search page");
    }
    if (!seg_is(s0, l0, "track") || n != 2 || !path_seg(u->path, 1, &s1, &l1) ||
        !copy_slug(s1, l1, track, sizeof track)) {
        return m2p_error_set(err, M2P_E_URL_NO_VIDEO, "paste the link of one track (artist.bandcamp.com/track/...)");
    }
    out->kind = M2P_SOURCE_BANDCAMP;
    set_slug_id(out, "bandcamp", artist, track);
    (void)snprintf(out->url, sizeof out->url, "https://%s.bandcamp.com/track/%s", artist, track);
    return M2P_OK;
}

/* http://127.0.0.1:PORT/path, tests only. The path keeps only safe characters. */
static m2p_code parse_loopback(const url_parts *u, m2p_source *out, m2p_error *err) {
    if (u->port < 0 || u->https) {
        return m2p_error_set(err, M2P_E_URL_LOCALHOST, "test loopback sources are http://127.0.0.1:PORT/...");
    }
    for (const char *p = u->path; *p != '\0'; p++) {
        if (!isalnum((unsigned char)*p) && strchr("/-_.", *p) == NULL) {
            return m2p_error_set(err, M2P_E_URL_NOT_URL, "unexpected character in test path");
        }
    }
    int n = snprintf(out->url, sizeof out->url, "http://127.0.0.1:%d%s", u->port, u->path);
    if (n < 0 || (size_t)n >= sizeof out->url) {
        return m2p_error_set(err, M2P_E_URL_TOO_LONG, "test URL too long");
    }
    char hex[65];
    m2p_sha256_hex(out->url, strlen(out->url), hex);
    out->kind = M2P_SOURCE_TEST_LOOPBACK;
    (void)snprintf(out->id, sizeof out->id, "test-%.24s", hex);
    return M2P_OK;
}

static m2p_code parse_url(const char *s, const m2p_config *cfg, m2p_source *out, m2p_error *err) {
    url_parts u;
    m2p_code rc = split_url(s, &u, err);
    if (rc != M2P_OK) {
        return rc;
    }
    if (cfg != NULL && cfg->unsafe_test_loopback && strcmp(u.host, "127.0.0.1") == 0) {
        return parse_loopback(&u, out, err);
    }
    rc = check_host(&u, err);
    if (rc != M2P_OK) {
        return rc;
    }
    size_t plen = strlen(u.path);
    if (ends_with_ci(u.path, plen, ".m3u8") || ends_with_ci(u.path, plen, ".m3u") ||
        ends_with_ci(u.path, plen, ".mpd") || ends_with_ci(u.path, plen, ".f4m") ||
        ends_with_ci(u.path, plen, ".ism")) {
        return m2p_error_set(err, M2P_E_URL_MANIFEST, "%.60s", u.path);
    }
    if (u.port >= 0 && u.port != 80 && u.port != 443) {
        return m2p_error_set(err, M2P_E_URL_NOT_URL, "unexpected port %d", u.port);
    }
    unsigned allowed = cfg != NULL ? cfg->allowed_sites : M2P_SITE_YOUTUBE;
    const char *h = u.host;
    size_t hn = strlen(h);
    if (strcmp(h, "youtube.com") == 0 || strcmp(h, "www.youtube.com") == 0 || strcmp(h, "m.youtube.com") == 0 ||
        strcmp(h, "music.youtube.com") == 0 || strcmp(h, "youtu.be") == 0 || strcmp(h, "www.youtu.be") == 0 ||
        strcmp(h, "youtube-nocookie.com") == 0 || strcmp(h, "www.youtube-nocookie.com") == 0) {
        if ((allowed & M2P_SITE_YOUTUBE) == 0) {
            return m2p_error_set(err, M2P_E_URL_SITE_DISABLED, "youtube is not in allowed_sites");
        }
        return parse_youtube(&u, strstr(h, "youtu.be") != NULL, out, err);
    }
    if (strcmp(h, "soundcloud.com") == 0 || strcmp(h, "www.soundcloud.com") == 0 ||
        strcmp(h, "m.soundcloud.com") == 0) {
        if ((allowed & M2P_SITE_SOUNDCLOUD) == 0) {
            return m2p_error_set(err, M2P_E_URL_SITE_DISABLED, "soundcloud is not in allowed_sites");
        }
        return parse_soundcloud(&u, out, err);
    }
    if (strcmp(h, "on.soundcloud.com") == 0) {
        if ((allowed & M2P_SITE_SOUNDCLOUD) == 0) {
            return m2p_error_set(err, M2P_E_URL_SITE_DISABLED, "soundcloud is not in allowed_sites");
        }
        return m2p_error_set(err, M2P_E_URL_NO_VIDEO, "short links are not followed; open it and paste the full link");
    }
    if (strcmp(h, "bandcamp.com") == 0 || ends_with_ci(h, hn, ".bandcamp.com")) {
        if ((allowed & M2P_SITE_BANDCAMP) == 0) {
            return m2p_error_set(err, M2P_E_URL_SITE_DISABLED, "bandcamp is not in allowed_sites");
        }
        size_t alen = hn > strlen(".bandcamp.com") ? hn - strlen(".bandcamp.com") : 0;
        if (memchr(h, '.', alen) != NULL) {
            return m2p_error_set(err, M2P_E_URL_SITE_UNSUPPORTED, "%s", h);
        }
        return parse_bandcamp(&u, h, alen, out, err);
    }
    return m2p_error_set(err, M2P_E_URL_SITE_UNSUPPORTED, "%.200s", h);
}

/* ---- entry point --------------------------------------------------------------------------- */

/* "scheme:" at the start, followed by "//" or a scheme we know is not a host:port. */
static bool has_scheme(const char *s) {
    if (!isalpha((unsigned char)s[0])) {
        return false;
    }
    size_t i = 1;
    while (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.') {
        i++;
    }
    if (s[i] != ':') {
        return false;
    }
    if (s[i + 1] == '/' && s[i + 2] == '/') {
        return true;
    }
    static const char *k_schemes[] = {
        "http", "https", "file",  "ftp",         "ftps",   "sftp", "data", "javascript", "vbscript", "mailto", "gopher",
        "dict", "ldap",  "ldaps", "tftp",        "telnet", "ws",   "wss",  "rtmp",       "rtsp",     "mms",    "smb",
        "blob", "about", "jar",   "view-source", "chrome", "scp",  "ssh",  "git",        "irc",      "tel",    "sms"};
    for (size_t k = 0; k < sizeof k_schemes / sizeof k_schemes[0]; k++) {
        if (strlen(k_schemes[k]) == i && strncasecmp(s, k_schemes[k], i) == 0) {
            return true;
        }
    }
    return false;
}

/* "host.tld/...", "host:port", "localhost": a URL without a scheme. */
static bool looks_like_host(const char *s) {
    size_t n = strcspn(s, "/?#");
    if (n == 0) {
        return false;
    }
    if (s[0] == '[') {
        return true;
    }
    if (n == 9 && strncasecmp(s, "localhost", 9) == 0) {
        return true;
    }
    const char *colon = memchr(s, ':', n);
    if (colon != NULL) {
        const char *p = colon + 1;
        if (p >= s + n) {
            return false;
        }
        for (; p < s + n; p++) {
            if (!isdigit((unsigned char)*p)) {
                return false;
            }
        }
        return true;
    }
    return memchr(s, '.', n) != NULL;
}

static bool looks_like_audio_file(const char *s) {
    static const char *k_ext[] = {".mp3",  ".wav", ".flac", ".ogg",  ".oga", ".opus", ".m4a", ".aac",
                                  ".webm", ".mka", ".aif",  ".aiff", ".wma", ".mp4",  ".mkv"};
    size_t n = strlen(s);
    for (size_t i = 0; i < sizeof k_ext / sizeof k_ext[0]; i++) {
        if (ends_with_ci(s, n, k_ext[i])) {
            return true;
        }
    }
    return false;
}

static m2p_code parse_path(const char *s, m2p_source *out, m2p_error *err) {
    size_t n = strlen(s);
    if (n >= sizeof out->path) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "path longer than %zu characters", sizeof out->path - 1);
    }
    struct stat st;
    if (stat(s, &st) != 0) {
        return m2p_error_set(err, M2P_E_FILE_NOT_FOUND, "%.300s", s);
    }
    if (!S_ISREG(st.st_mode)) {
        return m2p_error_set(err, M2P_E_FILE_NOT_REGULAR, "%.300s", s);
    }
    out->kind = M2P_SOURCE_FILE;
    memcpy(out->path, s, n + 1);
    return M2P_OK;
}

m2p_code m2p_source_parse(const char *input, const m2p_config *cfg, bool allow_paths, m2p_source *out, m2p_error *err) {
    memset(out, 0, sizeof *out);
    if (input == NULL) {
        return m2p_error_set(err, M2P_E_URL_EMPTY, NULL);
    }
    /* Trim surrounding white space (people paste with spaces and newlines). */
    while (*input != '\0' && isspace((unsigned char)*input)) {
        input++;
    }
    size_t n = strnlen(input, SRC_MAX_INPUT + 1);
    if (n > SRC_MAX_INPUT) {
        return m2p_error_set(err, M2P_E_URL_TOO_LONG, "more than %d characters", SRC_MAX_INPUT);
    }
    while (n > 0 && isspace((unsigned char)input[n - 1])) {
        n--;
    }
    if (n == 0) {
        return m2p_error_set(err, M2P_E_URL_EMPTY, NULL);
    }
    char s[SRC_MAX_INPUT + 1];
    memcpy(s, input, n);
    s[n] = '\0';

    if (has_scheme(s)) {
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c <= 0x20 || c >= 0x7f || c == '\\') {
                return m2p_error_set(err, M2P_E_URL_NOT_URL, "unexpected character (code %u) in the link", c);
            }
        }
        return parse_url(s, cfg, out, err);
    }
    if (allow_paths) {
        struct stat st;
        if (s[0] == '/' || s[0] == '.' || s[0] == '~' || stat(s, &st) == 0 || looks_like_audio_file(s)) {
            return parse_path(s, out, err);
        }
    }
    if (is_yt_id(s, n)) {
        return set_youtube(s, n, out, err);
    }
    if (looks_like_host(s)) {
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c <= 0x20 || c >= 0x7f || c == '\\') {
                return m2p_error_set(err, M2P_E_URL_NOT_URL, "unexpected character (code %u) in the link", c);
            }
        }
        char full[SRC_MAX_INPUT + 16];
        (void)snprintf(full, sizeof full, "https://%s", s);
        return parse_url(full, cfg, out, err);
    }
    if (allow_paths) {
        return parse_path(s, out, err);
    }
    return m2p_error_set(err, M2P_E_URL_NOT_URL, "'%.60s'", s);
}

m2p_code m2p_source_upload(const char *sha256_hex, const char *path, m2p_source *out, m2p_error *err) {
    memset(out, 0, sizeof *out);
    if (sha256_hex == NULL || strlen(sha256_hex) != 64) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "upload hash must be 64 hex digits");
    }
    for (size_t i = 0; i < 64; i++) {
        char c = sha256_hex[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return m2p_error_set(err, M2P_E_INVALID_ARG, "upload hash must be lower-case hex");
        }
    }
    out->kind = M2P_SOURCE_UPLOAD;
    memcpy(out->id, sha256_hex, 65);
    if (path != NULL) {
        size_t n = strlen(path);
        if (n >= sizeof out->path) {
            return m2p_error_set(err, M2P_E_INVALID_ARG, "path too long");
        }
        memcpy(out->path, path, n + 1);
    }
    return M2P_OK;
}
