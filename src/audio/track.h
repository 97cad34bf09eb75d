/*
 * audio/track.h — a song Mus2Pic has on disk, with what we know about it.
 */
#ifndef M2P_AUDIO_TRACK_H
#define M2P_AUDIO_TRACK_H

#include "audio/source.h"
#include "core/config.h"

typedef struct m2p_track {
    m2p_source_kind kind;
    char source[1024];        /* canonical URL, or the file's path/name */
    char video_id[128];       /* m2p_source.id ("" for local files) */
    char title[512];
    char uploader[256];
    double duration_s;        /* from metadata; 0 when unknown */
    char content_hash[65];    /* SHA-256 of the audio file */
    char path[M2P_PATH_MAX];  /* the audio file (cache entry or local file) */
    bool cache_hit;           /* true when no network request was made */
} m2p_track;

#endif
