/*
 * web/parse.h — the pure parsers of the HTTP API: job specs from JSON bodies
 * or form fields, ids in paths, Range headers, tokens in headers and cookies,
 * Origin checks and upload file names. No I/O and no server state, so each is
 * unit-tested and fuzzed on its own (tests/fuzz/fuzz_http_*.c).
 *
 * Every function validates input from outside against hard caps and returns a
 * specific error code (core/error.h) with a detail naming the field.
 */
#ifndef M2P_WEB_PARSE_H
#define M2P_WEB_PARSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"

#define M2P_WEB_MAX_JSON_BODY (64 * 1024)
#define M2P_WEB_MAX_SOURCE 2048
#define M2P_WEB_MAX_TEMPLATE 4096

struct m2p_presets;

/* Context a spec is checked against. presets and defaults may be NULL
 * (no style check / no user defaults). */
typedef struct m2p_spec_ctx {
    const m2p_config *cfg;
    const struct m2p_presets *presets;
    const json_t *defaults; /* the user's settings object ({"steps": "4", ...}) */
    bool form;              /* values come from form fields: numbers and booleans as text */
    bool need_source;       /* false for uploads (the file is the source) */
} m2p_spec_ctx;

/*
 * Checks a job request object {source, style, variations, steps, size, width,
 * height, seed, guidance, renderer, template, layout, per_section} and writes
 * the normalised spec (*out, new reference): only known keys, numbers as
 * numbers, size split into width/height, the source validated and made
 * canonical (m2p_source_parse), defaults from ctx->defaults filled in, and a
 * seed drawn from seed_if_unset when none was given (so every attempt and
 * every re-run renders the same images). *seed_given tells which.
 * Unknown keys → M2P_E_FIELD_INVALID; the source's own errors (url_private,
 * ...) as they are; ranges → M2P_E_RENDER_*.
 */
m2p_code m2p_web_parse_spec(const json_t *in, const m2p_spec_ctx *ctx, uint32_t seed_if_unset, json_t **out,
                            bool *seed_given, m2p_error *err) M2P_WUR;

/* Parses a JSON object body of len bytes (≤ M2P_WEB_MAX_JSON_BODY, no
 * duplicate keys) → *out. Errors: M2P_E_BODY_TOO_LARGE, M2P_E_JSON_INVALID. */
m2p_code m2p_web_parse_json_body(const char *body, size_t len, json_t **out, m2p_error *err) M2P_WUR;

/* SHA-256 hex of the canonical form (sorted keys) of a normalised spec. */
m2p_code m2p_web_request_hash(const json_t *spec, char hex[65], m2p_error *err) M2P_WUR;

/* A positive decimal id of at most 18 digits, nothing else ("12"; not "012x",
 * "-1", "1e3", ""). */
bool m2p_web_parse_id(const char *s, int64_t *out);

/* A byte range of a resource of size bytes, from a Range header value.
 * Only one range of unit "bytes" is served: "bytes=a-b", "bytes=a-",
 * "bytes=-n". Several ranges, other units, garbage or an unsatisfiable range
 * → M2P_E_RANGE_INVALID. */
m2p_code m2p_web_parse_range(const char *header, uint64_t size, uint64_t *start, uint64_t *len,
                             m2p_error *err) M2P_WUR;

/* The value of cookie name in a Cookie header into buf; false when absent. */
bool m2p_web_cookie(const char *header, const char *name, char *buf, size_t cap);

/* The token of an "Authorization: Bearer TOKEN" value; false when absent. */
bool m2p_web_bearer(const char *header, char *buf, size_t cap);

/* Constant-time string comparison (for tokens). */
bool m2p_web_token_equal(const char *a, const char *b);

/* True when an Origin header value names the same host[:port] as the Host
 * header (scheme http or https). NULL origin → true (not a browser). */
bool m2p_web_origin_allowed(const char *origin, const char *host);

/* A safe file extension (".wav", ".mp3", ...; lower case) for an uploaded
 * file's name; ".bin" when it has none we accept. Never fails. */
const char *m2p_web_upload_ext(const char *filename);

/* Whether host is a loopback address or name (127.0.0.0/8, ::1, localhost). */
bool m2p_web_host_is_loopback(const char *host);

/* A number from a query parameter: strict decimal/float text within
 * [min, max]; false otherwise. */
bool m2p_web_parse_double(const char *s, double min, double max, double *out);
bool m2p_web_parse_int(const char *s, long min, long max, long *out);

/* Percent-decodes s in place and returns its new length. A decoded NUL would
 * cut a C string short ("/index.html%00.png" → "/index.html"), so %00 becomes
 * 0x01, which no route, id or file name accepts. Malformed escapes stay as
 * they are. */
size_t m2p_web_unescape(char *s);

#endif
