/*
 * core/error.h — the one error type of Mus2Pic.
 *
 * Every failure is an m2p_code from the single X-macro list below. Each code
 * has a stable number (never renumbered: new codes are appended), a stable
 * machine name ("url_private"), a message for a person, a hint saying what to
 * do, the HTTP status the API answers with, and whether retrying can help
 * (transient: network, rate limit, out of memory).
 *
 * Functions return an m2p_code and hand results out through parameters. The
 * optional m2p_error out-parameter carries the code plus one line of detail
 * ("unknown variable {moood}"); callers that only need the code pass NULL.
 * There is no hidden "last error" global.
 */
#ifndef M2P_CORE_ERROR_H
#define M2P_CORE_ERROR_H

#include <stdbool.h>
#include <stddef.h>

#if defined(__GNUC__) || defined(__clang__)
#define M2P_WUR __attribute__((warn_unused_result))
#define M2P_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define M2P_WUR
#define M2P_PRINTF(f, a)
#endif

/* X(NAME, number, http_status, transient, message, hint) */
#define M2P_ERRNO_MAP(X)                                                                             \
    X(OK, 0, 200, 0, "success", "")                                                                  \
    X(NOMEM, 1, 503, 1, "out of memory", "close other programs or lower the size or variations")     \
    X(INVALID_ARG, 2, 400, 0, "invalid argument", "check the value you passed")                      \
    X(IO, 3, 500, 0, "file or disk error", "check that the folder named in the message is writable and has free space") \
    X(CONFIG, 4, 500, 0, "invalid configuration", "fix the setting named in the message")            \
    X(INTERNAL, 5, 500, 0, "internal error", "please report this as a bug with the command you ran") \
    X(CANCELLED, 6, 409, 0, "cancelled", "start the job again if you still want it")                 \
    X(TIMEOUT, 7, 504, 1, "timed out", "try again; if it keeps happening raise the time limit")     \
    X(NOT_FOUND, 8, 404, 0, "not found", "check the name or id")                                     \
    X(USAGE, 9, 400, 0, "invalid command line", "run `mus2pic help` for the usage")                  \
    X(UNSUPPORTED, 10, 400, 0, "not supported", "see the README for what is supported")             \
    X(TOO_LARGE, 11, 413, 0, "input too large", "use a smaller input")                               \
    /* sources: 20.. */                                                                              \
    X(URL_EMPTY, 20, 400, 0, "no source given", "paste a YouTube link or choose an audio file")      \
    X(URL_NOT_URL, 21, 400, 0, "not a link or a file", "paste a full link such as https://youtu.be/VIDEOID or give a path to an audio file") \
    X(URL_SCHEME, 22, 400, 0, "only http and https links are accepted", "paste an https:// link")   \
    X(URL_IP_LITERAL, 23, 400, 0, "links to IP addresses are not accepted", "paste a link to a supported site such as youtube.com") \
    X(URL_LOCALHOST, 24, 400, 0, "links to this machine are not accepted", "paste a link to a supported site such as youtube.com") \
    X(URL_PRIVATE, 25, 400, 0, "links to private or internal addresses are not accepted", "paste a public link to a supported site") \
    X(URL_SITE_UNSUPPORTED, 26, 400, 0, "this site is not supported", "use a YouTube, SoundCloud or Bandcamp link, or upload the audio file") \
    X(URL_SITE_DISABLED, 27, 400, 0, "this site is disabled in the configuration", "enable it with MUS2PIC_ALLOWED_SITES or upload the audio file") \
    X(URL_PLAYLIST, 28, 400, 0, "playlists are not accepted", "open one song of the playlist and paste its link") \
    X(URL_CHANNEL, 29, 400, 0, "channel and user pages are not accepted", "paste the link of one song") \
    X(URL_SEARCH, 30, 400, 0, "search pages are not accepted", "open one song and paste its link") \
    X(URL_NO_VIDEO, 31, 400, 0, "the link does not name a video or track", "paste the link of one song, e.g. https://www.youtube.com/watch?v=VIDEOID") \
    X(URL_MANIFEST, 32, 400, 0, "stream manifests (.m3u8, .mpd) are not accepted", "paste the page link of the song instead") \
    X(URL_CREDENTIALS, 33, 400, 0, "links with a user name or password are not accepted", "remove the user:password@ part") \
    X(URL_TOO_LONG, 34, 400, 0, "the link is too long", "paste a shorter link to one song")          \
    X(FILE_NOT_FOUND, 35, 404, 0, "audio file not found", "check the path")                          \
    X(FILE_NOT_REGULAR, 36, 400, 0, "not a regular file", "give the path of an audio file, not a folder or device") \
    X(PATH_UNSAFE, 37, 400, 0, "unsafe file name", "use a plain file name without '..' or slashes") \
    /* fetch: 40.. */                                                                                \
    X(YTDLP_MISSING, 40, 503, 0, "yt-dlp was not found", "run `make run` (it installs a current yt-dlp into tools/) or `pip install -U yt-dlp`, or set MUS2PIC_YTDLP") \
    X(YTDLP_OUTDATED, 41, 503, 0, "yt-dlp is too old", "install a current one: `make run` (it installs one into tools/) or `pip install -U yt-dlp`") \
    X(FETCH_UNAVAILABLE, 42, 422, 0, "the video is unavailable", "check the link in a browser; pick another upload of the song") \
    X(FETCH_PRIVATE, 43, 422, 0, "the video is private", "ask the owner to make it public or use another upload") \
    X(FETCH_REMOVED, 44, 422, 0, "the video was removed", "use another upload of the song")       \
    X(FETCH_AGE_RESTRICTED, 45, 422, 0, "the video is age-restricted", "download the audio yourself and upload the file") \
    X(FETCH_REGION_BLOCKED, 46, 422, 0, "the video is not available in this region", "use another upload or upload the file") \
    X(FETCH_NETWORK, 47, 502, 1, "network error while downloading", "check the connection and try again") \
    X(FETCH_RATE_LIMITED, 48, 429, 1, "the site is rate-limiting downloads", "wait a few minutes and try again") \
    X(FETCH_TOO_LARGE, 49, 413, 0, "the download is larger than allowed", "use a shorter song or raise MUS2PIC_MAX_DOWNLOAD_MB") \
    X(FETCH_TOO_LONG, 50, 422, 0, "the song is longer than allowed", "use a song under the limit or raise MUS2PIC_MAX_DURATION_S") \
    X(FETCH_LIVE, 51, 422, 0, "live streams are not accepted", "wait until the stream is over and use the recording") \
    X(FETCH_DURATION_UNKNOWN, 52, 422, 0, "the song's duration is unknown", "use a link to a normal video or upload the file") \
    X(FETCH_FAILED, 53, 502, 0, "the download failed", "check the link; run `mus2pic doctor` to check yt-dlp") \
    X(FETCH_PLAYLIST, 54, 422, 0, "the link resolved to a playlist", "paste the link of a single song") \
    /* cache: 60.. */                                                                                \
    X(CACHE_LOCK, 60, 503, 1, "the audio cache is busy", "try again in a moment")                  \
    X(CACHE_CORRUPT, 61, 500, 0, "a cache entry is damaged", "it was removed; run the job again")  \
    /* decode: 70.. */                                                                               \
    X(DECODE_EMPTY, 70, 422, 0, "the audio file is empty", "choose a file that contains audio")     \
    X(DECODE_TRUNCATED, 71, 422, 0, "the audio file is truncated", "download or export the file again") \
    X(DECODE_FORMAT, 72, 415, 0, "not an audio format Mus2Pic can read", "use wav, flac, mp3, ogg, opus, m4a/aac or webm audio") \
    X(DECODE_NO_AUDIO, 73, 422, 0, "the file has no audio stream", "choose a file with sound")      \
    X(DECODE_TOO_LONG, 74, 422, 0, "the audio is longer than allowed", "trim it or raise MUS2PIC_MAX_DURATION_S") \
    X(DECODE_SILENT, 75, 422, 0, "the audio is silent", "choose a file with audible sound")          \
    X(DECODE_TOO_SHORT, 76, 422, 0, "the audio is too short to analyse", "use at least 2 seconds of audio") \
    X(DECODE_FAILED, 77, 422, 0, "the audio could not be decoded", "re-encode the file (e.g. to flac) and try again") \
    /* analysis: 90.. */                                                                             \
    X(ANALYSIS_FAILED, 90, 500, 0, "the analysis failed", "please report this with the song")       \
    /* prompt: 100.. */                                                                              \
    X(STYLE_UNKNOWN, 100, 400, 0, "unknown style", "run `mus2pic styles` to list the styles")       \
    X(TEMPLATE_VARIABLE, 101, 400, 0, "unknown template variable", "use one of {mood} {palette} {color} {motion} {texture} {energy} {arc} {tempo} {key} {genre_hint} {title} {artist}") \
    X(TEMPLATE_SYNTAX, 102, 400, 0, "malformed template", "close every { with a }; write {{ and }} for literal braces") \
    X(TEMPLATE_EMPTY, 103, 400, 0, "the template is empty", "write a template with some text")     \
    X(PRESETS_INVALID, 104, 500, 0, "the style presets file is invalid", "fix the presets file named in the message") \
    X(TEMPLATE_TOO_LONG, 105, 400, 0, "the template is too long", "keep the template under 2000 characters") \
    X(TOKENIZER_INVALID, 106, 422, 0, "malformed tokenizer files", "use the tokenizer/vocab.json and merges.txt of a Stable Diffusion 1.x model") \
    /* render: 120.. */                                                                              \
    X(RENDER_SIZE, 120, 400, 0, "invalid image size", "use WIDTHxHEIGHT between 64 and 4096, multiples of 8") \
    X(RENDER_COUNT, 121, 400, 0, "invalid number of variations", "use 1 to 16 variations")           \
    X(RENDER_STEPS, 122, 400, 0, "invalid number of steps", "use 1 to 50 steps")                     \
    X(RENDER_SEED, 123, 400, 0, "invalid seed", "use a whole number from 0 to 4294967295")          \
    X(RENDERER_UNKNOWN, 124, 400, 0, "unknown renderer", "use auto, sonic or lcm")                 \
    X(RENDER_FAILED, 125, 500, 0, "rendering failed", "try again with a smaller size")             \
    X(PNG_WRITE, 126, 500, 0, "could not write the image", "check that the output folder is writable and has space") \
    X(RENDER_GUIDANCE, 127, 400, 0, "invalid guidance scale", "use a guidance scale from 1 to 30") \
    X(RENDER_SECTION, 128, 400, 0, "no such section", "use a section number listed by `mus2pic analyze`") \
    X(PNG_READ, 129, 422, 0, "not a readable PNG image", "give a PNG written by Mus2Pic or another intact PNG file") \
    X(RENDER_FEATURES, 130, 400, 0, "the song features are inconsistent", "analyse the song again") \
    /* model: 140.. */                                                                               \
    X(MODEL_MISSING, 140, 503, 0, "model weights not found", "run `mus2pic model pull` or set MUS2PIC_MODEL=/path/to/model-folder") \
    X(MODEL_INVALID, 141, 422, 0, "malformed model file", "download the model again with `mus2pic model pull`") \
    X(MODEL_CONFIG, 142, 422, 0, "invalid model configuration", "use a Stable Diffusion 1.x model in the diffusers layout") \
    X(MODEL_TENSOR_MISSING, 143, 422, 0, "a tensor is missing from the model", "use a complete Stable Diffusion 1.x model in the diffusers layout") \
    X(MODEL_SHAPE, 144, 422, 0, "a tensor has the wrong shape", "the weights do not match the config; download the model again") \
    X(MODEL_DTYPE, 145, 422, 0, "unsupported tensor type", "use fp32, fp16 or bf16 safetensors") \
    X(MODEL_DOWNLOAD, 146, 502, 1, "the model download failed", "check the connection and run `mus2pic model pull` again (it resumes)") \
    X(MODEL_HASH, 147, 502, 0, "the downloaded model file is corrupt", "run `mus2pic model pull` again") \
    X(TAESD_MISSING, 148, 503, 0, "the TAESD decoder is not installed", "run `mus2pic model pull madebyollin/taesd` or set MUS2PIC_TAESD=/path/to/taesd-folder") \
    X(TAESD_CONFIG, 149, 422, 0, "invalid TAESD configuration", "use madebyollin/taesd (AutoencoderTiny in the diffusers layout)") \
    /* storage: 160.. */                                                                             \
    X(DB_OPEN, 160, 503, 0, "cannot open the database", "check MUS2PIC_DB and that the folder is writable") \
    X(DB_MIGRATE, 161, 500, 0, "the database schema could not be upgraded", "restore a backup or use a newer mus2pic") \
    X(DB_QUERY, 162, 500, 0, "database error", "please report this with the log")                  \
    X(DB_BUSY, 163, 503, 1, "the database is busy", "try again in a moment")                         \
    X(DB_UNAVAILABLE, 164, 503, 1, "the database is unavailable", "check that PostgreSQL is running and MUS2PIC_DATABASE_URL is right") \
    X(DB_CONFLICT, 165, 409, 0, "the record was changed by someone else", "reload and try again")   \
    /* jobs and API: 180.. */                                                                        \
    X(JOB_NOT_FOUND, 180, 404, 0, "no such job", "check the job id")                                 \
    X(JOB_STATE, 181, 409, 0, "the job cannot do that in its current state", "check the job's status first") \
    X(RATE_LIMITED, 182, 429, 1, "too many requests", "wait a moment and try again")                 \
    X(AUTH_REQUIRED, 183, 401, 0, "an API token is required", "send it as `Authorization: Bearer TOKEN` or the m2p_token cookie") \
    X(AUTH_INVALID, 184, 403, 0, "the API token is wrong", "check MUS2PIC_API_TOKEN")                \
    X(ORIGIN_FORBIDDEN, 185, 403, 0, "requests from this origin are not allowed", "open the app from the server's own address") \
    X(BODY_TOO_LARGE, 186, 413, 0, "the request body is too large", "send a smaller request")         \
    X(JSON_INVALID, 187, 400, 0, "malformed JSON", "send a valid JSON object")                       \
    X(MULTIPART_INVALID, 188, 400, 0, "malformed upload", "send the file as multipart/form-data in a field named file") \
    X(UPLOAD_EMPTY, 189, 400, 0, "the upload is empty", "choose a file that contains audio")         \
    X(UPLOAD_TOO_LARGE, 190, 413, 0, "the upload is larger than allowed", "upload a smaller file or raise MUS2PIC_MAX_UPLOAD_MB") \
    X(LENGTH_REQUIRED, 191, 411, 0, "the upload has no length", "send a Content-Length header")       \
    X(TOO_MANY_SOCKETS, 192, 429, 1, "too many open live connections", "close other tabs and try again") \
    X(BATCH_TOO_LARGE, 193, 400, 0, "the batch has too many items", "split it into smaller batches")  \
    X(METHOD_NOT_ALLOWED, 194, 405, 0, "method not allowed", "see /openapi.json for the API")         \
    X(IMAGE_NOT_FOUND, 195, 404, 0, "no such image", "check the image id")                            \
    X(FIELD_INVALID, 196, 400, 0, "invalid field", "fix the field named in the message")             \
    X(HEADER_TOO_LARGE, 197, 431, 0, "request headers too large", "send smaller headers")            \
    X(QUEUE_FULL, 198, 503, 1, "the job queue is full", "wait for some jobs to finish")              \
    X(JOB_INTERRUPTED, 199, 500, 0, "the job was interrupted too many times", "retry it; if it keeps failing, check the server log") \
    X(RANGE_INVALID, 200, 416, 0, "invalid or unsupported Range header", "ask for one byte range, e.g. Range: bytes=0-1023") \
    X(QUEUE_PAUSED, 201, 409, 0, "the queue is paused", "resume it with POST /api/queue/resume") \
    X(UPLOAD_NOT_AUDIO, 202, 415, 0, "the uploaded file is not audio Mus2Pic can read", "upload a song file: wav, flac, mp3, ogg, opus, m4a/aac or webm") \
    X(AUDIO_NOT_STORED, 203, 404, 0, "the track's audio is not available on this server", "run a job for the song again; its audio is kept only while a job uses it") \
    X(STAGE_DATA_MISSING, 206, 500, 0, "the job's stored analysis is missing or unreadable, so it cannot be rendered", "retry the job: it analyses the song again") \
    /* broker: 210.. */                                                                              \
    X(BROKER_UNAVAILABLE, 210, 503, 1, "the job broker is unavailable", "check that Redis is running and MUS2PIC_BROKER_URL is right") \
    X(BROKER_PROTOCOL, 211, 500, 0, "unexpected reply from the job broker", "check the Redis version (7 or newer)")

typedef enum m2p_code {
#define M2P_ERR_ENUM(name, num, http, transient, msg, hint) M2P_E_##name = num,
    M2P_ERRNO_MAP(M2P_ERR_ENUM)
#undef M2P_ERR_ENUM
} m2p_code;

#define M2P_OK M2P_E_OK

/* Detail carried beside a code. Plain value type; no allocation. */
typedef struct m2p_error {
    m2p_code code;
    char detail[384];
} m2p_error;

/* Message for a person ("the video is private"); never NULL. */
const char *m2p_strerror(m2p_code code);
/* What to do about it; never NULL, may be "". */
const char *m2p_errhint(m2p_code code);
/* Stable machine name, lower case ("url_private"); never NULL. */
const char *m2p_errname(m2p_code code);
/* HTTP status the API answers with for this code. */
int m2p_err_http_status(m2p_code code);
/* True when retrying later can succeed (network, rate limit, out of memory). */
bool m2p_err_transient(m2p_code code);
/* Looks a code up by its stable name; returns false when unknown. */
bool m2p_err_from_name(const char *name, m2p_code *out);

/* Clears err (may be NULL). */
void m2p_error_clear(m2p_error *err);
/* Sets err (may be NULL) to code with a printf-style detail (fmt may be NULL)
 * and returns code, so callers can write `return m2p_error_set(err, ...)`. */
m2p_code m2p_error_set(m2p_error *err, m2p_code code, const char *fmt, ...) M2P_PRINTF(3, 4);
/* One line for a person: "error url_private: links to private ... (detail). Hint: ...".
 * Writes at most cap bytes (NUL-terminated) into buf and returns buf. */
char *m2p_error_format(const m2p_error *err, char *buf, size_t cap);

#endif
