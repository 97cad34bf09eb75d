/*
 * audio/source.h — what the user gave us: a local path, uploaded bytes or a
 * URL, parsed and validated before any network request.
 *
 * URL rules (docs/architecture.md "Sources"): YouTube in every form people
 * paste (watch?v=, youtu.be/, shorts/, embed/, live/, m., music., extra
 * parameters, bare 11-character ids) becomes the canonical
 * https://www.youtube.com/watch?v=ID; SoundCloud and Bandcamp track URLs when
 * allowed by the configuration. Refused, each with its own code: not a URL,
 * unsupported site, IP literals, localhost, private/link-local addresses,
 * non-http(s) schemes, credentials, manifests, playlist/channel/search pages.
 *
 * Input order: a "scheme:" prefix makes it a URL; else (allow_paths) an
 * existing file, or anything starting with / . ~ or ending in an audio
 * extension, is a path; else an 11-character id is a YouTube id; else
 * "host.tld/..." is a URL without its scheme; else not a URL (or, with
 * allow_paths, a missing file). Input is trimmed; over 2048 bytes is
 * URL_TOO_LONG. Loopback IPs give URL_LOCALHOST, other special ranges
 * URL_PRIVATE, public IP literals URL_IP_LITERAL.
 */
#ifndef M2P_AUDIO_SOURCE_H
#define M2P_AUDIO_SOURCE_H

#include <stdbool.h>

#include "core/config.h"
#include "core/error.h"

typedef enum m2p_source_kind {
    M2P_SOURCE_FILE = 0, /* local path given on the command line */
    M2P_SOURCE_UPLOAD,   /* bytes uploaded to the server, stored by content hash */
    M2P_SOURCE_YOUTUBE,
    M2P_SOURCE_SOUNDCLOUD,
    M2P_SOURCE_BANDCAMP,
    M2P_SOURCE_TEST_LOOPBACK /* tests only (unsafe_test_loopback): http://127.0.0.1:PORT/... */
} m2p_source_kind;

typedef struct m2p_source {
    m2p_source_kind kind;
    char id[128];            /* YouTube video id, "soundcloud:<artist>/<track>", upload hash, ... ("" for FILE) */
    char url[1024];          /* canonical URL for yt-dlp ("" for FILE/UPLOAD) */
    char path[M2P_PATH_MAX]; /* FILE/UPLOAD: the file */
} m2p_source;

/* Parses user input: a URL, a bare YouTube id, or (when allow_paths) a local
 * file path. Never touches the network. */
m2p_code m2p_source_parse(const char *input, const m2p_config *cfg, bool allow_paths, m2p_source *out,
                          m2p_error *err) M2P_WUR;

/* A source for audio uploaded to the server and stored by content hash
 * (sha256_hex: 64 lower-case hex digits; path: the stored file, may be NULL). */
m2p_code m2p_source_upload(const char *sha256_hex, const char *path, m2p_source *out, m2p_error *err) M2P_WUR;

/* "file", "upload", "youtube", "soundcloud", "bandcamp", "test". */
const char *m2p_source_kind_name(m2p_source_kind kind);

/* True for sources that need a download. */
static inline bool m2p_source_is_remote(const m2p_source *s) {
    return s->kind != M2P_SOURCE_FILE && s->kind != M2P_SOURCE_UPLOAD;
}

#endif
