/*
 * audio/decode.h — any common audio file → mono float at the analysis rate,
 * with FFmpeg's libraries, safely.
 *
 * Untrusted input: we open the file ourselves (custom AVIOContext, no URL
 * protocols, nested opens refused through io_open), probe the format ourselves
 * and accept only a whitelist of audio demuxers (wav, w64, aiff, caf, flac,
 * mp3, ogg, matroska/webm, mov/mp4/m4a, aac; never hls, concat, dash, image2 or
 * playlists), bound probing (probesize, max_analyze_duration, max_streams),
 * stop at a wall-time deadline (interrupt callback), decode only the best
 * audio stream (video and cover art are AVDISCARD_ALL, never decoded), and stop
 * at a hard cap on decoded duration (max_duration_s) by counting decoded
 * samples, not by trusting headers. Specific errors for empty, truncated,
 * undecodable, too long, too short and silent input.
 *
 * Output: mono (mean of the channels), float, at opts->rate, clamped to [-1, 1].
 *
 * Streaming: m2p_decode_*_stream hand consecutive chunks of output to a sink
 * while decoding, so analysis can run beside decoding. Memory stays bounded
 * (a few chunks) whatever the input. The return code is the final verdict:
 * the checks that need the whole song (too short, silent, truncated) are made
 * after the last chunk, so a caller that got chunks must still discard its
 * work when the call does not return M2P_OK.
 *
 * Errors (each with a detail line in err):
 *   M2P_E_DECODE_EMPTY     0-byte input
 *   M2P_E_DECODE_FORMAT    not a recognised audio container (random bytes,
 *                          images, text, playlists, video-only formats)
 *   M2P_E_DECODE_NO_AUDIO  a recognised container without an audio stream
 *   M2P_E_DECODE_TRUNCATED cut short: far fewer samples than the header
 *                          promised, a demuxer/decoder error after some audio,
 *                          or the header runs past the end of the file
 *   M2P_E_DECODE_TOO_LONG  more than max_duration_s decoded (or the header
 *                          claims more than twice that)
 *   M2P_E_DECODE_TOO_SHORT less than min_duration_s
 *   M2P_E_DECODE_SILENT    peak below -60 dBFS (unless allow_silent)
 *   M2P_E_DECODE_FAILED    the codec produced nothing usable
 *   M2P_E_TIMEOUT          the wall-time deadline passed
 *   M2P_E_CANCELLED        progress->cancel was set
 *   M2P_E_FILE_NOT_FOUND / M2P_E_FILE_NOT_REGULAR / M2P_E_IO  for paths
 *   any code the sink returned
 */
#ifndef M2P_AUDIO_DECODE_H
#define M2P_AUDIO_DECODE_H

#include <stdbool.h>
#include <stddef.h>

#include "audio/audio.h"
#include "core/error.h"
#include "core/progress.h"

typedef struct m2p_decode_opts {
    int rate;              /* output rate, Hz (e.g. 22050); 8000..192000 */
    double max_duration_s; /* refuse longer audio (M2P_E_DECODE_TOO_LONG); must be > 0 */
    double min_duration_s; /* refuse shorter audio (M2P_E_DECODE_TOO_SHORT); 0 = no minimum */
    bool allow_silent;     /* false → all-silent input is M2P_E_DECODE_SILENT */
    double max_wall_s;     /* wall-time limit for the whole decode (M2P_E_TIMEOUT); 0 = 120 s */
} m2p_decode_opts;

/* Fills o with sensible defaults: 22050 Hz, 15 minutes max, 2 s min, not silent, 120 s wall. */
void m2p_decode_opts_default(m2p_decode_opts *o);

/* What the decoder found; filled (when non-NULL) as far as it got, also on failure. */
typedef struct m2p_decode_info {
    size_t samples;           /* mono samples delivered at opts->rate */
    double duration_s;        /* samples / rate */
    float peak;               /* max |sample| delivered, after the clamp to [-1, 1] */
    double header_duration_s; /* what the container claimed; 0 when unknown */
    int source_rate;          /* Hz of the decoded stream */
    int source_channels;
    char container[32]; /* demuxer name, e.g. "ogg", "mov,mp4,m4a,3gp,3g2,mj2" (truncated) */
    char codec[32];     /* decoder name, e.g. "vorbis", "mp3float" */
    int streams;        /* streams in the container (only one audio stream is decoded) */
} m2p_decode_info;

typedef struct m2p_decode_sink {
    /* Called from the decoding thread (the caller's thread) with consecutive
     * chunks of mono float at opts->rate, in [-1, 1]; samples is valid only
     * during the call. n > 0. Return M2P_OK to continue, anything else to stop
     * decoding with that code (returned by the decode call). */
    m2p_code (*on_samples)(void *ctx, const float *samples, size_t n);
    void *ctx;
} m2p_decode_sink;

/* Streams the file at path into sink. progress (may be NULL) gets
 * M2P_STEP_DECODE reports in bytes read / file size and is checked for
 * cancellation. Silence, too short and truncation are checked after the last
 * chunk (see above). */
m2p_code m2p_decode_file_stream(const char *path, const m2p_decode_opts *opts, const m2p_progress *progress,
                                const m2p_decode_sink *sink, m2p_error *err) M2P_WUR;

/* Same, also filling info (may be NULL). */
m2p_code m2p_decode_file_stream_info(const char *path, const m2p_decode_opts *opts, const m2p_progress *progress,
                                     const m2p_decode_sink *sink, m2p_decode_info *info, m2p_error *err) M2P_WUR;

/* Same on bytes in memory (uploads); data is only read, and only during the call. */
m2p_code m2p_decode_memory_stream(const void *data, size_t len, const m2p_decode_opts *opts,
                                  const m2p_progress *progress, const m2p_decode_sink *sink, m2p_decode_info *info,
                                  m2p_error *err) M2P_WUR;

/* Whole file → one m2p_audio owned by the caller (m2p_audio_free); *out is
 * NULL on failure. Memory is bounded by max_duration_s. */
m2p_code m2p_decode_file(const char *path, const m2p_decode_opts *opts, const m2p_progress *progress, m2p_audio **out,
                         m2p_error *err) M2P_WUR;

/* Same on bytes in memory (fuzzing, uploads). */
m2p_code m2p_decode_memory(const void *data, size_t len, const m2p_decode_opts *opts, const m2p_progress *progress,
                           m2p_audio **out, m2p_error *err) M2P_WUR;

#endif
