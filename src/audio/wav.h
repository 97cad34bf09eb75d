/*
 * audio/wav.h — writes an m2p_audio (mono) as a RIFF/WAVE file: 16-bit PCM
 * (rounded, clamped to [-1, 1]) or 32-bit IEEE float (WAVE_FORMAT_IEEE_FLOAT
 * with the fact chunk). The file is written atomically (temp + rename), so a
 * reader never sees half a file.
 */
#ifndef M2P_AUDIO_WAV_H
#define M2P_AUDIO_WAV_H

#include <stddef.h>
#include <stdint.h>

#include "audio/audio.h"
#include "core/error.h"

typedef enum m2p_wav_format { M2P_WAV_PCM16 = 0, M2P_WAV_FLOAT32 = 1 } m2p_wav_format;

/* Encodes a into a new buffer (*out, *out_len) owned by the caller (m2p_free).
 * Refuses (M2P_E_TOO_LARGE) audio whose file would exceed 4 GiB, the RIFF limit. */
m2p_code m2p_audio_wav_encode(const m2p_audio *a, m2p_wav_format fmt, uint8_t **out, size_t *out_len,
                              m2p_error *err) M2P_WUR;

/* Writes a to path (atomically). */
m2p_code m2p_audio_write_wav(const m2p_audio *a, const char *path, m2p_wav_format fmt, m2p_error *err) M2P_WUR;

#endif
