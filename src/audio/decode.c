/*
 * audio/decode.c — untrusted audio file → mono float at the analysis rate,
 * streamed to a sink, with libavformat/libavcodec/libswresample.
 *
 * One decode is one `dec` value living on the caller's stack for the length
 * of the call; nothing outlives the call and nothing is shared between calls
 * (the FFmpeg log callback, installed once, is the only process-wide setting).
 *
 * The steps, each with its own error:
 *   1. input: a regular file opened by us (pread on an fd) or a memory buffer,
 *      behind a custom AVIOContext (read + seek only). 0 bytes → EMPTY.
 *   2. probe: av_probe_input_buffer2 with no file name (extensions never
 *      count), score >= AVPROBE_SCORE_RETRY, and the detected demuxer must be
 *      on k_demuxers → else FORMAT. The context also carries format_whitelist,
 *      io_open that refuses every nested open, bounded probesize /
 *      max_analyze_duration / max_streams and an interrupt callback (wall-time
 *      deadline and the cancel flag).
 *   3. streams: every stream is AVDISCARD_ALL but the one audio stream we
 *      pick (pick_stream); its codec must be on k_codecs (common audio codecs
 *      only). avformat_find_stream_info is never called (it would decode
 *      packets of every stream, cover art included). A header that promises
 *      far more than the cap is refused here; a WAV whose data chunk or an Ogg
 *      whose last page runs past the end of the file is TRUNCATED here.
 *   4. decode loop: packets → frames → swresample (mono = mean of the
 *      channels, float, opts->rate) → clamp to [-1, 1], peak → sink, in
 *      chunks. The decoded count is checked against the cap before each chunk
 *      is delivered (TOO_LONG), so a decode bomb costs at most the cap.
 *   5. verdict after the last chunk: nothing decoded (FAILED), far fewer
 *      samples than the header promised or a demuxer error after audio
 *      (TRUNCATED), too short, silent.
 *
 * Invariants: d->samples <= d->max_samples at all times; every chunk handed to
 * the sink is clamped to [-1, 1]; the swr context always matches the format of
 * the frames fed to it (it is drained and rebuilt when a stream changes
 * format mid-way, as chained Ogg can).
 */
#include "audio/decode.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>

#include "core/alloc.h"
#include "core/fs.h"
#include "core/log.h"

enum {
    AVIO_BUF = 64 * 1024,
    PROBE_BYTES = 2 * 1024 * 1024, /* probesize: bytes read to detect the format and streams */
    MAX_STREAMS = 32,              /* more streams than any song file has */
    MAX_CHANNELS = 64,
    MAX_FRAME_OUT = 1 << 22,      /* output samples of one frame; beyond → refused as malformed */
    MAX_BAD_PACKETS_IN_ROW = 200, /* consecutive undecodable packets before giving up */
};
#define SILENT_PEAK 0.001f /* -60 dBFS */
#define DEFAULT_WALL_S 120.0
#define HEADER_SLACK 1.05 /* header duration over cap*1.05 + 1 s → refused before decoding */

/* Demuxers we accept (matched against each name of an AVInputFormat's comma-separated list). */
static const char *const k_demuxers[] = {"wav", "w64", "aiff",     "caf", "au",  "flac",
                                         "mp3", "ogg", "matroska", "mov", "aac", NULL};
static const char k_format_whitelist[] = "wav,w64,aiff,caf,au,flac,mp3,ogg,matroska,webm,mov,mp4,m4a,aac";

/* Codecs we decode. PCM variants are accepted by name prefix. */
static const enum AVCodecID k_codecs[] = {
    AV_CODEC_ID_AAC,  AV_CODEC_ID_MP3,  AV_CODEC_ID_MP2, AV_CODEC_ID_MP1,  AV_CODEC_ID_VORBIS, AV_CODEC_ID_OPUS,
    AV_CODEC_ID_FLAC, AV_CODEC_ID_ALAC, AV_CODEC_ID_AC3, AV_CODEC_ID_EAC3, AV_CODEC_ID_NONE,
};

/* ---- input: a file descriptor or a memory buffer ------------------------------------------- */

typedef struct reader {
    int fd; /* -1 when reading memory */
    const uint8_t *mem;
    int64_t size;
    int64_t pos;
    int64_t bytes_read; /* total bytes handed to FFmpeg (progress) */
    int io_errno;       /* errno of a failed pread, 0 when none */
} reader;

static int reader_read(void *opaque, uint8_t *buf, int buf_size) {
    reader *r = opaque;
    if (buf_size <= 0 || r->pos >= r->size) {
        return AVERROR_EOF;
    }
    int64_t want = r->size - r->pos;
    if (want > buf_size) {
        want = buf_size;
    }
    if (r->mem != NULL) {
        memcpy(buf, r->mem + r->pos, (size_t)want);
    } else {
        ssize_t got;
        do {
            got = pread(r->fd, buf, (size_t)want, (off_t)r->pos);
        } while (got < 0 && errno == EINTR);
        if (got < 0) {
            r->io_errno = errno;
            return AVERROR(errno);
        }
        if (got == 0) {
            return AVERROR_EOF; /* the file shrank under us */
        }
        want = got;
    }
    r->pos += want;
    r->bytes_read += want;
    return (int)want;
}

static int64_t reader_seek(void *opaque, int64_t offset, int whence) {
    reader *r = opaque;
    whence &= ~AVSEEK_FORCE;
    int64_t base;
    switch (whence) {
    case AVSEEK_SIZE:
        return r->size;
    case SEEK_SET:
        base = 0;
        break;
    case SEEK_CUR:
        base = r->pos;
        break;
    case SEEK_END:
        base = r->size;
        break;
    default:
        return AVERROR(EINVAL);
    }
    int64_t pos;
    if (__builtin_add_overflow(base, offset, &pos) || pos < 0) {
        return AVERROR(EINVAL);
    }
    r->pos = pos; /* past the end is allowed: reads then return EOF */
    return pos;
}

/* Copies up to len bytes at off without moving the read position; returns the count (0 on error). */
static size_t reader_peek(const reader *r, int64_t off, uint8_t *buf, size_t len) {
    if (off < 0 || off >= r->size) {
        return 0;
    }
    if ((int64_t)len > r->size - off) {
        len = (size_t)(r->size - off);
    }
    if (r->mem != NULL) {
        memcpy(buf, r->mem + off, len);
        return len;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(r->fd, buf + got, len - got, (off_t)(off + (int64_t)got));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    return got;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* RIFF/WAVE: does the data chunk run past the end of the file? Sets *promised_s / *held_s. */
static bool wav_cut_short(const reader *r, double *promised_s, double *held_s) {
    uint8_t h[4096];
    size_t n = reader_peek(r, 0, h, sizeof h);
    if (n < 12 || memcmp(h, "RIFF", 4) != 0 || memcmp(h + 8, "WAVE", 4) != 0) {
        return false;
    }
    uint32_t byte_rate = 0;
    size_t at = 12;
    while (at + 8 <= n) {
        uint32_t size = le32(h + at + 4);
        if (memcmp(h + at, "fmt ", 4) == 0 && at + 20 <= n) {
            byte_rate = le32(h + at + 8 + 8);
        } else if (memcmp(h + at, "data", 4) == 0) {
            int64_t start = (int64_t)at + 8;
            if (size == 0 || size == UINT32_MAX || byte_rate == 0) {
                return false; /* streamed WAV: the size is unknown */
            }
            int64_t have = r->size - start;
            if ((int64_t)size <= have + 1) {
                return false;
            }
            *promised_s = (double)size / byte_rate;
            *held_s = have > 0 ? (double)have / byte_rate : 0.0;
            return true;
        }
        at += 8 + (size_t)size + (size & 1);
        if (size > n) {
            break;
        }
    }
    return false;
}

/* Ogg: is the last page cut off? (Pages are at most 65307 bytes, so the last page starts in the tail.) */
static bool ogg_cut_short(const reader *r) {
    enum { TAIL = 65536 + 1024 };
    int64_t off = r->size > TAIL ? r->size - TAIL : 0;
    uint8_t *t = m2p_malloc(TAIL);
    if (t == NULL) {
        return false;
    }
    size_t n = reader_peek(r, off, t, TAIL);
    bool cut = false;
    for (size_t i = n >= 4 ? n - 4 : 0; n >= 4; i--) {
        if (memcmp(t + i, "OggS", 4) == 0 && (i + 4 >= n || t[i + 4] == 0)) {
            if (i + 27 > n) {
                cut = true;
            } else {
                size_t nseg = t[i + 26];
                if (i + 27 + nseg > n) {
                    cut = true;
                } else {
                    size_t body = 0;
                    for (size_t k = 0; k < nseg; k++) {
                        body += t[i + 27 + k];
                    }
                    cut = i + 27 + nseg + body > n;
                }
            }
            break;
        }
        if (i == 0) {
            break;
        }
    }
    m2p_free(t);
    return cut;
}

/* ---- one decode ------------------------------------------------------------------------------ */

typedef struct dec {
    const m2p_decode_opts *opts;
    const m2p_progress *progress;
    const m2p_decode_sink *sink;
    m2p_decode_info *info;
    m2p_error *err;
    reader rd;

    AVIOContext *pb;
    AVFormatContext *fmt;
    AVCodecContext *cc;
    SwrContext *swr;
    AVPacket *pkt;
    AVFrame *frame;
    int stream_index;

    /* the swr context's current input format */
    AVChannelLayout swr_layout;
    int swr_rate;
    int swr_fmt;

    float *out;         /* swr output buffer */
    int out_cap;        /* in samples */
    size_t samples;     /* delivered so far */
    size_t max_samples; /* cap from opts->max_duration_s */
    float peak;
    double header_duration_s;

    double wall_s;      /* the wall-time limit */
    double deadline;    /* monotonic seconds */
    m2p_code stop_code; /* set by the interrupt callback: TIMEOUT or CANCELLED */
    int64_t last_report_bytes;
    long bad_in_row; /* undecodable packets since the last good frame */
    long bad_total;
} dec;

/* FFmpeg's messages go to our log at debug level (the user sees our one-line error). */
static void av_log_to_m2p(void *avcl, int level, const char *fmt, va_list vl) M2P_PRINTF(3, 0);
static void av_log_to_m2p(void *avcl, int level, const char *fmt, va_list vl) {
    (void)avcl;
    if (level > AV_LOG_WARNING || m2p_log_get_level() > M2P_LOG_DEBUG) {
        return;
    }
    char line[512];
    (void)vsnprintf(line, sizeof line, fmt, vl);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
        line[--n] = '\0';
    }
    m2p_log(M2P_LOG_DEBUG, "ffmpeg", "%s", line);
}

static pthread_once_t g_log_once = PTHREAD_ONCE_INIT;
static void install_av_log(void) {
    av_log_set_callback(av_log_to_m2p);
}

static int interrupt_cb(void *opaque) {
    dec *d = opaque;
    if (d->stop_code != M2P_OK) {
        return 1;
    }
    if (m2p_progress_cancelled(d->progress)) {
        d->stop_code = M2P_E_CANCELLED;
        return 1;
    }
    if (m2p_now_monotonic() > d->deadline) {
        d->stop_code = M2P_E_TIMEOUT;
        return 1;
    }
    return 0;
}

/* Every nested open (playlists, references, chained files) is refused. */
static int refuse_io_open(struct AVFormatContext *s, AVIOContext **pb, const char *url, int flags,
                          AVDictionary **options) {
    (void)s;
    (void)flags;
    (void)options;
    (void)url; /* attacker-chosen text: never logged */
    *pb = NULL;
    m2p_log(M2P_LOG_WARN, "decode", "refused a nested open requested by the file");
    return AVERROR(EPERM);
}

static m2p_code stopped(dec *d) {
    if (d->stop_code == M2P_E_TIMEOUT) {
        return m2p_error_set(d->err, M2P_E_TIMEOUT, "decoding took longer than the limit of %.0f s", d->wall_s);
    }
    return m2p_error_set(d->err, M2P_E_CANCELLED, "decoding was cancelled");
}

static const char *av_err(int code, char *buf, size_t cap) {
    if (av_strerror(code, buf, cap) < 0) {
        (void)snprintf(buf, cap, "error %d", code);
    }
    return buf;
}

static bool name_in_list(const char *names, const char *const *list) {
    /* names: "mov,mp4,m4a" — true when any of them is in list. */
    const char *p = names;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        for (const char *const *l = list; *l != NULL; l++) {
            if (strlen(*l) == len && strncmp(*l, p, len) == 0) {
                return true;
            }
        }
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    return false;
}

static bool codec_allowed(enum AVCodecID id) {
    for (size_t i = 0; k_codecs[i] != AV_CODEC_ID_NONE; i++) {
        if (k_codecs[i] == id) {
            return true;
        }
    }
    const char *name = avcodec_get_name(id);
    return name != NULL && strncmp(name, "pcm_", 4) == 0;
}

static void report_progress(dec *d, bool force) {
    int64_t step = d->rd.size / 100;
    if (force || d->rd.bytes_read - d->last_report_bytes >= (step > 0 ? step : 1)) {
        int64_t done = d->rd.bytes_read < d->rd.size ? d->rd.bytes_read : d->rd.size;
        m2p_progress_report(d->progress, M2P_STEP_DECODE, (double)done, (double)d->rd.size, "Decoding audio");
        d->last_report_bytes = d->rd.bytes_read;
    }
}

/* Clamps, measures and hands n output samples to the sink; refuses past the cap. */
static m2p_code deliver(dec *d, float *s, size_t n) {
    if (n == 0) {
        return M2P_OK;
    }
    if (n > d->max_samples - d->samples) {
        return m2p_error_set(d->err, M2P_E_DECODE_TOO_LONG, "more than %.0f s of audio (the limit)",
                             d->opts->max_duration_s);
    }
    float peak = d->peak;
    for (size_t i = 0; i < n; i++) {
        float v = s[i];
        if (!(v >= -1.0f)) { /* also catches NaN */
            v = v < 0.0f ? -1.0f : 0.0f;
        } else if (v > 1.0f) {
            v = 1.0f;
        }
        s[i] = v;
        float a = fabsf(v);
        peak = a > peak ? a : peak;
    }
    d->peak = peak;
    d->samples += n;
    m2p_code rc = d->sink->on_samples(d->sink->ctx, s, n);
    if (rc != M2P_OK) {
        return m2p_error_set(d->err, rc, "the consumer of the audio stopped decoding after %.1f s",
                             (double)d->samples / d->opts->rate);
    }
    return M2P_OK;
}

static m2p_code ensure_out(dec *d, int need) {
    if (need <= d->out_cap) {
        return M2P_OK;
    }
    if (need > MAX_FRAME_OUT) {
        return m2p_error_set(d->err, M2P_E_DECODE_FAILED, "a frame of %d samples is not plausible audio", need);
    }
    float *p = m2p_realloc(d->out, (size_t)need * sizeof(float));
    if (p == NULL) {
        return m2p_error_set(d->err, M2P_E_NOMEM, "resampler buffer of %d samples", need);
    }
    d->out = p;
    d->out_cap = need;
    return M2P_OK;
}

/* Pushes whatever the resampler still holds to the sink. */
static m2p_code drain_swr(dec *d) {
    if (d->swr == NULL) {
        return M2P_OK;
    }
    for (;;) {
        int need = swr_get_out_samples(d->swr, 0);
        if (need <= 0) {
            return M2P_OK;
        }
        m2p_code rc = ensure_out(d, need);
        if (rc != M2P_OK) {
            return rc;
        }
        uint8_t *outp = (uint8_t *)d->out;
        int got = swr_convert(d->swr, &outp, d->out_cap, NULL, 0);
        if (got < 0) {
            char b[128];
            return m2p_error_set(d->err, M2P_E_DECODE_FAILED, "resampler: %s", av_err(got, b, sizeof b));
        }
        if (got == 0) {
            return M2P_OK;
        }
        rc = deliver(d, d->out, (size_t)got);
        if (rc != M2P_OK) {
            return rc;
        }
    }
}

/* (Re)builds the resampler for the format of frame f: mono = mean of the channels. */
static m2p_code setup_swr(dec *d, const AVFrame *f) {
    AVChannelLayout in_layout;
    int nch = f->ch_layout.nb_channels;
    if (nch <= 0 || nch > MAX_CHANNELS || f->sample_rate < 1000 || f->sample_rate > 768000) {
        return m2p_error_set(d->err, M2P_E_DECODE_FAILED, "implausible audio: %d channels at %d Hz", nch,
                             f->sample_rate);
    }
    if (d->swr != NULL && d->swr_rate == f->sample_rate && d->swr_fmt == f->format &&
        av_channel_layout_compare(&d->swr_layout, &f->ch_layout) == 0) {
        return M2P_OK;
    }
    m2p_code rc = drain_swr(d); /* the old format's tail */
    if (rc != M2P_OK) {
        return rc;
    }
    swr_free(&d->swr);
    av_channel_layout_uninit(&d->swr_layout);
    if (f->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC) {
        av_channel_layout_default(&in_layout, nch);
    } else if (av_channel_layout_copy(&in_layout, &f->ch_layout) < 0) {
        return m2p_error_set(d->err, M2P_E_NOMEM, "channel layout");
    }
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    int ret = swr_alloc_set_opts2(&d->swr, &mono, AV_SAMPLE_FMT_FLT, d->opts->rate, &in_layout,
                                  (enum AVSampleFormat)f->format, f->sample_rate, 0, NULL);
    double matrix[MAX_CHANNELS];
    for (int i = 0; i < nch; i++) {
        matrix[i] = 1.0 / nch;
    }
    if (ret >= 0 && nch > 1) {
        ret = swr_set_matrix(d->swr, matrix, nch);
    }
    if (ret >= 0) {
        /* A shorter filter than the default 32 taps: plenty for analysis, about twice as fast. */
        ret = av_opt_set_int(d->swr, "filter_size", 16, 0);
    }
    if (ret >= 0) {
        ret = swr_init(d->swr);
    }
    if (ret < 0) {
        av_channel_layout_uninit(&in_layout);
        swr_free(&d->swr);
        char b[128];
        return m2p_error_set(d->err, M2P_E_DECODE_FAILED, "resampler for %d channels at %d Hz: %s", nch, f->sample_rate,
                             av_err(ret, b, sizeof b));
    }
    if (d->swr_rate == 0) { /* the first frame: now the format is known for sure */
        char line[160];
        double hd = d->header_duration_s;
        int n = snprintf(line, sizeof line, "Audio: %s, %d Hz, %s", d->cc->codec->name, f->sample_rate,
                         nch == 1   ? "mono"
                         : nch == 2 ? "stereo"
                                    : "multichannel");
        if (hd > 0 && n > 0 && (size_t)n < sizeof line) {
            (void)snprintf(line + n, sizeof line - (size_t)n, ", %d:%02d", (int)hd / 60, (int)hd % 60);
        }
        m2p_progress_finding(d->progress, M2P_STEP_DECODE, "audio", line);
    }
    d->swr_layout = in_layout; /* takes ownership */
    d->swr_rate = f->sample_rate;
    d->swr_fmt = f->format;
    if (d->info != NULL) {
        d->info->source_rate = f->sample_rate;
        d->info->source_channels = nch;
    }
    return M2P_OK;
}

static m2p_code convert_frame(dec *d, const AVFrame *f) {
    if (f->nb_samples <= 0) {
        return M2P_OK;
    }
    m2p_code rc = setup_swr(d, f);
    if (rc != M2P_OK) {
        return rc;
    }
    int need = swr_get_out_samples(d->swr, f->nb_samples);
    if (need < 0) {
        return m2p_error_set(d->err, M2P_E_DECODE_FAILED, "resampler size");
    }
    rc = ensure_out(d, need + 16);
    if (rc != M2P_OK) {
        return rc;
    }
    uint8_t *outp = (uint8_t *)d->out;
    int got = swr_convert(d->swr, &outp, d->out_cap, (const uint8_t **)f->extended_data, f->nb_samples);
    if (got < 0) {
        char b[128];
        return m2p_error_set(d->err, M2P_E_DECODE_FAILED, "resampler: %s", av_err(got, b, sizeof b));
    }
    return deliver(d, d->out, (size_t)got);
}

/* Receives every frame the decoder has ready. */
static m2p_code receive_frames(dec *d) {
    for (;;) {
        int ret = avcodec_receive_frame(d->cc, d->frame);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) {
            return M2P_OK;
        }
        if (ret < 0) {
            d->bad_in_row++;
            d->bad_total++;
            if (ret == AVERROR(ENOMEM)) {
                return m2p_error_set(d->err, M2P_E_NOMEM, "decoder");
            }
            if (ret != AVERROR_INVALIDDATA && ret != AVERROR(EINVAL)) {
                char b[128];
                return m2p_error_set(d->err, M2P_E_DECODE_FAILED, "decoder: %s", av_err(ret, b, sizeof b));
            }
            continue; /* a damaged frame: skip it, as players do */
        }
        d->bad_in_row = 0;
        m2p_code rc = convert_frame(d, d->frame);
        av_frame_unref(d->frame);
        if (rc != M2P_OK) {
            return rc;
        }
    }
}

static m2p_code open_input(dec *d) {
    char b[128];
    d->pkt = av_packet_alloc();
    d->frame = av_frame_alloc();
    uint8_t *buf = av_malloc(AVIO_BUF);
    if (d->pkt == NULL || d->frame == NULL || buf == NULL) {
        av_free(buf);
        return m2p_error_set(d->err, M2P_E_NOMEM, "decoder buffers");
    }
    d->pb = avio_alloc_context(buf, AVIO_BUF, 0, &d->rd, reader_read, NULL, reader_seek);
    if (d->pb == NULL) {
        av_free(buf);
        return m2p_error_set(d->err, M2P_E_NOMEM, "I/O context");
    }
    d->fmt = avformat_alloc_context();
    if (d->fmt == NULL) {
        return m2p_error_set(d->err, M2P_E_NOMEM, "format context");
    }
    d->fmt->pb = d->pb;
    d->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    d->fmt->interrupt_callback.callback = interrupt_cb;
    d->fmt->interrupt_callback.opaque = d;
    d->fmt->io_open = refuse_io_open;
    d->fmt->probesize = PROBE_BYTES;
    d->fmt->max_analyze_duration = 5 * (int64_t)AV_TIME_BASE;
    d->fmt->max_streams = MAX_STREAMS;
    d->fmt->format_whitelist = av_strdup(k_format_whitelist);
    d->fmt->protocol_whitelist = av_strdup("none");
    if (d->fmt->format_whitelist == NULL || d->fmt->protocol_whitelist == NULL) {
        return m2p_error_set(d->err, M2P_E_NOMEM, "whitelists");
    }

    /* Our own probe: content only (no file name), a confident score, a whitelisted demuxer. */
    const AVInputFormat *ifmt = NULL;
    int score = av_probe_input_buffer2(d->pb, &ifmt, "", d->fmt, 0, PROBE_BYTES);
    if (d->stop_code != M2P_OK) {
        return stopped(d);
    }
    if (score < 0 || ifmt == NULL) {
        if (d->rd.io_errno != 0) {
            return m2p_error_set(d->err, M2P_E_IO, "reading the file: %s", strerror(d->rd.io_errno));
        }
        return m2p_error_set(d->err, M2P_E_DECODE_FORMAT, "the data is not in any known format");
    }
    if (!name_in_list(ifmt->name, k_demuxers)) {
        return m2p_error_set(d->err, M2P_E_DECODE_FORMAT,
                             "the data looks like '%s' (%s), which is not an audio file format", ifmt->name,
                             ifmt->long_name != NULL ? ifmt->long_name : "?");
    }
    if (score < AVPROBE_SCORE_RETRY) {
        return m2p_error_set(d->err, M2P_E_DECODE_FORMAT, "the data only faintly resembles '%s' (probe score %d)",
                             ifmt->name, score);
    }

    AVFormatContext *fmt = d->fmt;
    int ret = avformat_open_input(&fmt, "", ifmt, NULL);
    if (ret < 0) {
        d->fmt = NULL; /* avformat_open_input freed it (not our pb) */
        if (d->stop_code != M2P_OK) {
            return stopped(d);
        }
        if (d->rd.io_errno != 0) {
            return m2p_error_set(d->err, M2P_E_IO, "reading the file: %s", strerror(d->rd.io_errno));
        }
        if (d->pb->eof_reached || d->rd.pos >= d->rd.size) {
            return m2p_error_set(d->err, M2P_E_DECODE_TRUNCATED, "the %s header runs past the end of the file",
                                 ifmt->name);
        }
        return m2p_error_set(d->err, M2P_E_DECODE_FAILED, "%s: %s", ifmt->name, av_err(ret, b, sizeof b));
    }
    d->fmt = fmt;
    if (d->info != NULL) {
        (void)snprintf(d->info->container, sizeof d->info->container, "%s", ifmt->name);
    }
    return M2P_OK;
}

/* Picks the audio stream to decode: the first audio stream marked default, else the first audio
 * stream. We choose ourselves rather than with av_find_best_stream, which skips streams whose rate
 * or channel count the demuxer left for avformat_find_stream_info to find (mp3, ADTS AAC); we never
 * call that function, as it decodes packets of every stream (cover art included) to fill them in.
 * The decoders we allow learn rate and channels from the bitstream itself. */
static int pick_stream(const AVFormatContext *fmt) {
    int first = -1;
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        const AVStream *st = fmt->streams[i];
        if (st->codecpar->codec_type != AVMEDIA_TYPE_AUDIO || (st->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
            continue;
        }
        if (st->disposition & AV_DISPOSITION_DEFAULT) {
            return (int)i;
        }
        if (first < 0) {
            first = (int)i;
        }
    }
    return first;
}

static m2p_code open_stream(dec *d) {
    char b[128];
    AVFormatContext *fmt = d->fmt;
    if (fmt == NULL) {
        return m2p_error_set(d->err, M2P_E_INTERNAL, "decode: no open input");
    }
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        fmt->streams[i]->discard = AVDISCARD_ALL; /* video, cover art, data, other tracks: never read */
    }
    if (d->info != NULL) {
        d->info->streams = (int)fmt->nb_streams;
    }
    int idx = pick_stream(fmt);
    if (idx < 0) {
        return m2p_error_set(d->err, M2P_E_DECODE_NO_AUDIO, "%u stream(s), none of them audio", fmt->nb_streams);
    }
    AVStream *st = fmt->streams[idx];
    if (!codec_allowed(st->codecpar->codec_id)) {
        return m2p_error_set(d->err, M2P_E_DECODE_FORMAT, "the audio codec '%s' is not supported",
                             avcodec_get_name(st->codecpar->codec_id));
    }
    const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
    if (codec == NULL) {
        return m2p_error_set(d->err, M2P_E_DECODE_FORMAT, "no decoder for the audio codec '%s'",
                             avcodec_get_name(st->codecpar->codec_id));
    }
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        fmt->streams[i]->discard = (int)i == idx ? AVDISCARD_DEFAULT : AVDISCARD_ALL;
    }
    d->stream_index = idx;

    d->cc = avcodec_alloc_context3(codec);
    if (d->cc == NULL) {
        return m2p_error_set(d->err, M2P_E_NOMEM, "codec context");
    }
    int ret = avcodec_parameters_to_context(d->cc, st->codecpar);
    if (ret >= 0) {
        d->cc->thread_count = 1;
        d->cc->pkt_timebase = st->time_base;
        ret = avcodec_open2(d->cc, codec, NULL);
    }
    if (ret < 0) {
        return m2p_error_set(d->err, M2P_E_DECODE_FAILED, "opening the %s decoder: %s", codec->name,
                             av_err(ret, b, sizeof b));
    }
    if (d->info != NULL) {
        (void)snprintf(d->info->codec, sizeof d->info->codec, "%s", codec->name);
        d->info->source_rate = st->codecpar->sample_rate;
        d->info->source_channels = st->codecpar->ch_layout.nb_channels;
    }

    /* What the container claims: the stream's own duration, else the file's. */
    double hd = 0.0;
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0 && st->time_base.den > 0 && st->time_base.num > 0) {
        hd = (double)st->duration * av_q2d(st->time_base);
    } else if (fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0) {
        hd = (double)fmt->duration / AV_TIME_BASE;
    }
    if (!(hd > 0.0 && hd < 1e9)) {
        hd = 0.0;
    }
    d->header_duration_s = hd;
    if (d->info != NULL) {
        d->info->header_duration_s = hd;
    }
    if (hd > d->opts->max_duration_s * HEADER_SLACK + 1.0) {
        return m2p_error_set(d->err, M2P_E_DECODE_TOO_LONG, "the file says it lasts %.0f s; the limit is %.0f s", hd,
                             d->opts->max_duration_s);
    }
    double promised = 0, held = 0;
    if (name_in_list(fmt->iformat->name, (const char *const[]){"wav", NULL}) &&
        wav_cut_short(&d->rd, &promised, &held)) {
        return m2p_error_set(d->err, M2P_E_DECODE_TRUNCATED, "the WAV header promises %.1f s, the file holds %.1f s",
                             promised, held);
    }
    if (name_in_list(fmt->iformat->name, (const char *const[]){"ogg", NULL}) && ogg_cut_short(&d->rd)) {
        return m2p_error_set(d->err, M2P_E_DECODE_TRUNCATED, "the last Ogg page is cut off");
    }
    return M2P_OK;
}

static m2p_code decode_loop(dec *d) {
    char b[128];
    int demux_error = 0;
    for (;;) {
        if (interrupt_cb(d)) {
            return stopped(d);
        }
        int ret = av_read_frame(d->fmt, d->pkt);
        if (ret == AVERROR_EOF) {
            break;
        }
        if (ret < 0) {
            if (d->stop_code != M2P_OK) {
                return stopped(d);
            }
            if (d->rd.io_errno != 0) {
                return m2p_error_set(d->err, M2P_E_IO, "reading the file: %s", strerror(d->rd.io_errno));
            }
            demux_error = ret;
            break;
        }
        if (d->pkt->stream_index != d->stream_index) {
            av_packet_unref(d->pkt);
            continue;
        }
        ret = avcodec_send_packet(d->cc, d->pkt);
        if (ret == AVERROR(EAGAIN)) { /* the decoder wants its frames taken first; then the same packet */
            m2p_code rc = receive_frames(d);
            if (rc != M2P_OK) {
                av_packet_unref(d->pkt);
                return rc;
            }
            ret = avcodec_send_packet(d->cc, d->pkt);
        }
        av_packet_unref(d->pkt);
        if (ret < 0 && ret != AVERROR(EAGAIN)) {
            if (ret != AVERROR_INVALIDDATA && ret != AVERROR(EINVAL)) {
                return m2p_error_set(d->err, M2P_E_DECODE_FAILED, "decoder: %s", av_err(ret, b, sizeof b));
            }
            d->bad_in_row++;
            d->bad_total++;
        }
        m2p_code rc = receive_frames(d);
        if (rc != M2P_OK) {
            return rc;
        }
        if (d->bad_in_row > MAX_BAD_PACKETS_IN_ROW) {
            if (d->samples > 0) {
                return m2p_error_set(d->err, M2P_E_DECODE_TRUNCATED,
                                     "the audio breaks off after %.1f s (%ld damaged packets in a row)",
                                     (double)d->samples / d->opts->rate, d->bad_in_row);
            }
            return m2p_error_set(d->err, M2P_E_DECODE_FAILED, "%ld damaged packets and no audio", d->bad_in_row);
        }
        report_progress(d, false);
    }
    /* Flush the decoder, then the resampler. */
    if (avcodec_send_packet(d->cc, NULL) >= 0) {
        m2p_code rc = receive_frames(d);
        if (rc != M2P_OK) {
            return rc;
        }
    }
    m2p_code rc = drain_swr(d);
    if (rc != M2P_OK) {
        return rc;
    }
    report_progress(d, true);

    double got_s = (double)d->samples / d->opts->rate;
    if (d->samples == 0 && d->bad_total > 0) {
        return m2p_error_set(d->err, M2P_E_DECODE_FAILED, "%ld damaged packets and no audio", d->bad_total);
    }
    if (demux_error != 0) {
        if (d->samples > 0) {
            return m2p_error_set(d->err, M2P_E_DECODE_TRUNCATED, "the file breaks off after %.1f s: %s", got_s,
                                 av_err(demux_error, b, sizeof b));
        }
        return m2p_error_set(d->err, M2P_E_DECODE_FAILED, "%s", av_err(demux_error, b, sizeof b));
    }
    double hd = d->header_duration_s;
    if (hd > 0.0 && got_s < hd * 0.9 - 0.25) {
        return m2p_error_set(d->err, M2P_E_DECODE_TRUNCATED, "the file holds %.1f s of the %.1f s its header promises",
                             got_s, hd);
    }
    if (d->opts->min_duration_s > 0 && got_s < d->opts->min_duration_s) {
        return m2p_error_set(d->err, M2P_E_DECODE_TOO_SHORT, "%.2f s of audio; at least %.1f s is needed", got_s,
                             d->opts->min_duration_s);
    }
    if (!d->opts->allow_silent && d->peak < SILENT_PEAK) {
        double db = d->peak > 0 ? 20.0 * log10(d->peak) : -INFINITY;
        return m2p_error_set(d->err, M2P_E_DECODE_SILENT, "the loudest sample is %.0f dBFS", db);
    }
    return M2P_OK;
}

static m2p_code check_opts(const m2p_decode_opts *opts, const m2p_decode_sink *sink, m2p_error *err) {
    if (opts == NULL || sink == NULL || sink->on_samples == NULL) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "decode: missing options or sink");
    }
    if (opts->rate < 8000 || opts->rate > 192000) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "decode: output rate %d Hz is outside 8000..192000", opts->rate);
    }
    if (!(opts->max_duration_s > 0.0 && opts->max_duration_s <= 24.0 * 3600.0)) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "decode: max_duration_s must be in (0, 86400]");
    }
    if (!(opts->min_duration_s >= 0.0) || !(opts->max_wall_s >= 0.0)) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "decode: negative min_duration_s or max_wall_s");
    }
    return M2P_OK;
}

/* The common body: rd is set up by the caller (fd or memory, size > 0). */
static m2p_code run(reader rd, const m2p_decode_opts *opts, const m2p_progress *progress, const m2p_decode_sink *sink,
                    m2p_decode_info *info, m2p_error *err) {
    if (opts == NULL || sink == NULL) { /* check_opts already refused these; keeps the contract local */
        return m2p_error_set(err, M2P_E_INVALID_ARG, "decode: missing options or sink");
    }
    (void)pthread_once(&g_log_once, install_av_log);
    dec d;
    memset(&d, 0, sizeof d);
    d.opts = opts;
    d.progress = progress;
    d.sink = sink;
    d.info = info;
    d.err = err;
    d.rd = rd;
    d.stream_index = -1;
    d.max_samples = (size_t)(opts->max_duration_s * opts->rate);
    d.wall_s = opts->max_wall_s > 0 ? opts->max_wall_s : DEFAULT_WALL_S;
    d.deadline = m2p_now_monotonic() + d.wall_s;
    d.stop_code = M2P_OK;

    report_progress(&d, true);
    m2p_code rc = open_input(&d);
    if (rc == M2P_OK) {
        rc = open_stream(&d);
    }
    if (rc == M2P_OK) {
        rc = decode_loop(&d);
    }

    if (info != NULL) {
        info->samples = d.samples;
        info->duration_s = (double)d.samples / opts->rate;
        info->peak = d.peak;
    }
    swr_free(&d.swr);
    av_channel_layout_uninit(&d.swr_layout);
    avcodec_free_context(&d.cc);
    avformat_close_input(&d.fmt);
    if (d.pb != NULL) {
        av_freep(&d.pb->buffer);
        avio_context_free(&d.pb);
    }
    av_packet_free(&d.pkt);
    av_frame_free(&d.frame);
    m2p_free(d.out);
    return rc;
}

void m2p_decode_opts_default(m2p_decode_opts *o) {
    memset(o, 0, sizeof *o);
    o->rate = 22050;
    o->max_duration_s = 900.0;
    o->min_duration_s = 2.0;
    o->allow_silent = false;
    o->max_wall_s = DEFAULT_WALL_S;
}

m2p_code m2p_decode_memory_stream(const void *data, size_t len, const m2p_decode_opts *opts,
                                  const m2p_progress *progress, const m2p_decode_sink *sink, m2p_decode_info *info,
                                  m2p_error *err) {
    if (info != NULL) {
        memset(info, 0, sizeof *info);
    }
    m2p_code rc = check_opts(opts, sink, err);
    if (rc != M2P_OK) {
        return rc;
    }
    if (len == 0) {
        return m2p_error_set(err, M2P_E_DECODE_EMPTY, "0 bytes");
    }
    if (data == NULL || len > (size_t)INT64_MAX) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "decode: no data");
    }
    reader rd = {.fd = -1, .mem = data, .size = (int64_t)len};
    return run(rd, opts, progress, sink, info, err);
}

m2p_code m2p_decode_file_stream_info(const char *path, const m2p_decode_opts *opts, const m2p_progress *progress,
                                     const m2p_decode_sink *sink, m2p_decode_info *info, m2p_error *err) {
    if (info != NULL) {
        memset(info, 0, sizeof *info);
    }
    m2p_code rc = check_opts(opts, sink, err);
    if (rc != M2P_OK) {
        return rc;
    }
    if (path == NULL || path[0] == '\0') {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "decode: no path");
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            return m2p_error_set(err, M2P_E_FILE_NOT_FOUND, "%s", path);
        }
        return m2p_error_set(err, M2P_E_IO, "%s: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        rc = m2p_error_set(err, M2P_E_IO, "%s: %s", path, strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        rc = m2p_error_set(err, M2P_E_FILE_NOT_REGULAR, "%s", path);
    } else if (sb.st_size == 0) {
        rc = m2p_error_set(err, M2P_E_DECODE_EMPTY, "%s has 0 bytes", path);
    } else {
        reader rd = {.fd = fd, .size = (int64_t)sb.st_size};
        rc = run(rd, opts, progress, sink, info, err);
    }
    (void)close(fd);
    return rc;
}

m2p_code m2p_decode_file_stream(const char *path, const m2p_decode_opts *opts, const m2p_progress *progress,
                                const m2p_decode_sink *sink, m2p_error *err) {
    return m2p_decode_file_stream_info(path, opts, progress, sink, NULL, err);
}

/* ---- whole-song buffers on top of the stream ---------------------------------------------------- */

typedef struct collect {
    float *buf;
    size_t n;
    size_t cap;
    size_t limit; /* never grows past the duration cap */
} collect;

static m2p_code collect_samples(void *ctx, const float *s, size_t n) {
    collect *c = ctx;
    size_t need;
    if (!m2p_size_add(c->n, n, &need) || need > c->limit) {
        return M2P_E_DECODE_TOO_LONG;
    }
    if (need > c->cap) {
        size_t cap = c->cap > 0 ? c->cap + c->cap / 2 : (size_t)1 << 20;
        if (cap < need) {
            cap = need;
        }
        if (cap > c->limit) {
            cap = c->limit;
        }
        float *p = m2p_realloc(c->buf, cap * sizeof(float));
        if (p == NULL) {
            return M2P_E_NOMEM;
        }
        c->buf = p;
        c->cap = cap;
    }
    memcpy(c->buf + c->n, s, n * sizeof(float));
    c->n = need;
    return M2P_OK;
}

static m2p_code to_audio(collect *c, int rate, m2p_code rc, m2p_audio **out) {
    if (rc != M2P_OK) {
        m2p_free(c->buf);
        return rc;
    }
    m2p_audio *a = m2p_calloc(1, sizeof *a);
    if (a == NULL) {
        m2p_free(c->buf);
        return M2P_E_NOMEM;
    }
    if (c->buf == NULL) { /* 0 samples (allowed when min_duration_s = 0 and allow_silent) */
        c->buf = m2p_calloc(1, sizeof(float));
        if (c->buf == NULL) {
            m2p_free(a);
            return M2P_E_NOMEM;
        }
    }
    a->samples = c->buf;
    a->n = c->n;
    a->rate = rate;
    *out = a;
    return M2P_OK;
}

m2p_code m2p_decode_file(const char *path, const m2p_decode_opts *opts, const m2p_progress *progress, m2p_audio **out,
                         m2p_error *err) {
    *out = NULL;
    collect c = {0};
    c.limit = opts != NULL && opts->max_duration_s > 0 ? (size_t)(opts->max_duration_s * opts->rate) : 0;
    m2p_decode_sink sink = {collect_samples, &c};
    m2p_code rc = m2p_decode_file_stream_info(path, opts, progress, &sink, NULL, err);
    rc = to_audio(&c, opts != NULL ? opts->rate : 0, rc, out);
    return rc == M2P_E_NOMEM ? m2p_error_set(err, rc, "decoded audio") : rc;
}

m2p_code m2p_decode_memory(const void *data, size_t len, const m2p_decode_opts *opts, const m2p_progress *progress,
                           m2p_audio **out, m2p_error *err) {
    *out = NULL;
    collect c = {0};
    c.limit = opts != NULL && opts->max_duration_s > 0 ? (size_t)(opts->max_duration_s * opts->rate) : 0;
    m2p_decode_sink sink = {collect_samples, &c};
    m2p_code rc = m2p_decode_memory_stream(data, len, opts, progress, &sink, NULL, err);
    rc = to_audio(&c, opts != NULL ? opts->rate : 0, rc, out);
    return rc == M2P_E_NOMEM ? m2p_error_set(err, rc, "decoded audio") : rc;
}
