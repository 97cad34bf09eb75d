/*
 * audio/wav.c — the RIFF/WAVE writer (mono, 16-bit PCM or 32-bit float).
 * All fields are written little-endian byte by byte, so the output does not
 * depend on the host's byte order.
 */
#include "audio/wav.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/fs.h"

static uint8_t *put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)((v >> 8) & 0xff);
    p[2] = (uint8_t)((v >> 16) & 0xff);
    p[3] = (uint8_t)((v >> 24) & 0xff);
    return p + 4;
}

static uint8_t *put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)((v >> 8) & 0xff);
    return p + 2;
}

static uint8_t *put_tag(uint8_t *p, const char tag[4]) {
    memcpy(p, tag, 4);
    return p + 4;
}

m2p_code m2p_audio_wav_encode(const m2p_audio *a, m2p_wav_format fmt, uint8_t **out, size_t *out_len, m2p_error *err) {
    *out = NULL;
    *out_len = 0;
    if (a == NULL || (a->samples == NULL && a->n > 0) || a->rate <= 0 ||
        (fmt != M2P_WAV_PCM16 && fmt != M2P_WAV_FLOAT32)) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "wav: no audio, bad rate or bad format");
    }
    const bool is_float = fmt == M2P_WAV_FLOAT32;
    const size_t bps = is_float ? 4 : 2;
    const size_t header = is_float ? 58 : 44; /* float adds cbSize + fact chunk */
    size_t data_bytes;
    size_t total;
    if (!m2p_size_mul(a->n, bps, &data_bytes) || !m2p_size_add(data_bytes, header, &total) ||
        total > (size_t)UINT32_MAX) {
        return m2p_error_set(err, M2P_E_TOO_LARGE, "wav: %zu samples do not fit a WAV file", a->n);
    }
    uint8_t *buf = m2p_malloc(total);
    if (buf == NULL) {
        return m2p_error_set(err, M2P_E_NOMEM, "wav: %zu bytes", total);
    }
    uint8_t *p = buf;
    p = put_tag(p, "RIFF");
    p = put_u32(p, (uint32_t)(total - 8));
    p = put_tag(p, "WAVE");
    p = put_tag(p, "fmt ");
    p = put_u32(p, is_float ? 18 : 16);
    p = put_u16(p, is_float ? 3 : 1); /* WAVE_FORMAT_IEEE_FLOAT / WAVE_FORMAT_PCM */
    p = put_u16(p, 1);                /* mono */
    p = put_u32(p, (uint32_t)a->rate);
    p = put_u32(p, (uint32_t)((size_t)a->rate * bps));
    p = put_u16(p, (uint16_t)bps);
    p = put_u16(p, (uint16_t)(bps * 8));
    if (is_float) {
        p = put_u16(p, 0); /* cbSize */
        p = put_tag(p, "fact");
        p = put_u32(p, 4);
        p = put_u32(p, (uint32_t)a->n);
    }
    p = put_tag(p, "data");
    p = put_u32(p, (uint32_t)data_bytes);
    for (size_t i = 0; i < a->n; i++) {
        float v = a->samples[i];
        if (!(v >= -1.0f)) { /* also NaN */
            v = v < 0.0f ? -1.0f : 0.0f;
        } else if (v > 1.0f) {
            v = 1.0f;
        }
        if (is_float) {
            uint32_t bits;
            memcpy(&bits, &v, sizeof bits);
            p = put_u32(p, bits);
        } else {
            long s = lrintf(v * 32767.0f);
            p = put_u16(p, (uint16_t)(int16_t)s);
        }
    }
    *out = buf;
    *out_len = total;
    return M2P_OK;
}

m2p_code m2p_audio_write_wav(const m2p_audio *a, const char *path, m2p_wav_format fmt, m2p_error *err) {
    if (path == NULL || path[0] == '\0') {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "wav: no path");
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    m2p_code rc = m2p_audio_wav_encode(a, fmt, &buf, &len, err);
    if (rc != M2P_OK) {
        return rc;
    }
    rc = m2p_fs_write_atomic(path, buf, len, err);
    m2p_free(buf);
    return rc;
}
