/*
 * audio/decode.h — any common audio file → mono float at the analysis rate,
 * with FFmpeg's libraries, safely.
 *
 * Untrusted input: we open the file ourselves (custom AVIOContext, no nested
 * opens), allow only a whitelist of audio demuxers (no playlists, concat,
 * network or image formats), bound probing, ignore video and cover art, and
 * stop at a hard cap on decoded duration (max_duration_s) by counting decoded
 * samples, not by trusting headers. Specific errors for empty, truncated,
 * undecodable, too long and silent input.
 */
#ifndef M2P_AUDIO_DECODE_H
#define M2P_AUDIO_DECODE_H

#include "audio/audio.h"
#include "core/error.h"
#include "core/progress.h"

typedef struct m2p_decode_opts {
    int rate;              /* output rate, Hz (e.g. 22050) */
    double max_duration_s; /* refuse longer audio (M2P_E_DECODE_TOO_LONG) */
    double min_duration_s; /* refuse shorter audio (M2P_E_DECODE_TOO_SHORT); 0 = no minimum */
    bool allow_silent;     /* false → all-silent input is M2P_E_DECODE_SILENT */
} m2p_decode_opts;

m2p_code m2p_decode_file(const char *path, const m2p_decode_opts *opts, const m2p_progress *progress,
                         m2p_audio **out, m2p_error *err) M2P_WUR;

/* Same on bytes in memory (fuzzing, uploads). */
m2p_code m2p_decode_memory(const void *data, size_t len, const m2p_decode_opts *opts, const m2p_progress *progress,
                           m2p_audio **out, m2p_error *err) M2P_WUR;

#endif
