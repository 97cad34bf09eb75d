/*
 * tests/unit/audio/test_audio_decode.c — the FFmpeg decoder on real files of
 * every format we accept (made here from a synthesised WAV with the ffmpeg
 * command-line tool) and on each kind of bad input: empty, truncated, wrong
 * magic, images, playlists, video, cover art, silent, too short, decode bombs.
 */
#include "test_util.h"

#include <math.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "audio/decode.h"
#include "audio/wav.h"
#include "core/alloc.h"
#include "core/fs.h"

#define TONE_HZ 440.0
#define TONE_S 4.0
#define OUT_RATE 22050

static char g_dir[64];

static void sh(const char *fmt, ...) M2P_PRINTF(1, 2);
static void sh(const char *fmt, ...) {
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof cmd);
    int rc = system(cmd);
    if (rc != 0) {
        fail_msg("command failed (%d): %s", rc, cmd);
    }
}

static const char *path_of(char *buf, size_t cap, const char *name) {
    (void)snprintf(buf, cap, "%s/%s", g_dir, name);
    return buf;
}

/* A mono 440 Hz tone at 44100 Hz with a gentle fade in/out, written with our WAV writer. */
static void write_tone(const char *name, double seconds, float amp) {
    m2p_audio *a = NULL;
    size_t n = (size_t)(seconds * 44100);
    assert_int_equal(m2p_audio_create(n, 44100, &a), M2P_OK);
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / 44100;
        double fade = fmin(1.0, fmin(t, seconds - t) / 0.01);
        a->samples[i] = (float)(amp * fade * sin(2 * M_PI * TONE_HZ * t));
    }
    char p[256];
    m2p_error err;
    assert_int_equal(m2p_audio_write_wav(a, path_of(p, sizeof p, name), M2P_WAV_PCM16, &err), M2P_OK);
    m2p_audio_free(a);
}

static int setup(void **state) {
    (void)state;
    m2p_test_tmpdir(g_dir, sizeof g_dir);
    if (system("ffmpeg -version >/dev/null 2>&1") != 0) {
        fail_msg("the ffmpeg command is needed by this test: run scripts/install-deps.sh --test");
    }
    write_tone("tone.wav", TONE_S, 0.5f);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    m2p_test_rmdir(g_dir);
    return 0;
}

static void opts_default(m2p_decode_opts *o) {
    m2p_decode_opts_default(o);
    o->rate = OUT_RATE;
    o->max_duration_s = 600;
    o->min_duration_s = 1.0;
}

/* Frequency from upward zero crossings over the middle of the signal. */
static double zc_freq(const m2p_audio *a) {
    size_t lo = a->n / 4, hi = a->n * 3 / 4;
    size_t first = 0, last = 0, count = 0;
    for (size_t i = lo + 1; i < hi; i++) {
        if (a->samples[i - 1] < 0.0f && a->samples[i] >= 0.0f) {
            if (count == 0) {
                first = i;
            }
            last = i;
            count++;
        }
    }
    if (count < 2) {
        return 0.0;
    }
    return (double)(count - 1) * a->rate / (double)(last - first);
}

static m2p_code decode_name(const char *name, const m2p_decode_opts *o, m2p_audio **out, m2p_error *err) {
    char p[256];
    return m2p_decode_file(path_of(p, sizeof p, name), o, NULL, out, err);
}

static void check_tone(const char *name, const char *ffmpeg_args) {
    char src[256], dst[256];
    sh("ffmpeg -v error -y -i '%s' %s '%s'", path_of(src, sizeof src, "tone.wav"), ffmpeg_args,
       path_of(dst, sizeof dst, name));
    m2p_decode_opts o;
    opts_default(&o);
    m2p_audio *a = NULL;
    m2p_error err;
    m2p_error_clear(&err);
    m2p_code rc = decode_name(name, &o, &a, &err);
    if (rc != M2P_OK) {
        fail_msg("%s: %s: %s", name, m2p_errname(rc), err.detail);
    }
    assert_int_equal(a->rate, OUT_RATE);
    double dur = m2p_audio_duration(a);
    double f = zc_freq(a);
    print_message("%-12s %.3f s, %.1f Hz\n", name, dur, f);
    assert_true(fabs(dur - TONE_S) < 0.08); /* codec priming/padding is a few ms */
    assert_true(fabs(f - TONE_HZ) < TONE_HZ * 0.01);
    float peak = 0;
    for (size_t i = 0; i < a->n; i++) {
        assert_true(a->samples[i] >= -1.0f && a->samples[i] <= 1.0f);
        peak = fmaxf(peak, fabsf(a->samples[i]));
    }
    assert_true(peak > 0.2f && peak < 0.8f);
    m2p_audio_free(a);
}

static void test_formats(void **state) {
    (void)state;
    check_tone("t.wav", "-c:a pcm_s16le");
    check_tone("t24.wav", "-ac 2 -c:a pcm_s24le");
    check_tone("t.flac", "-c:a flac");
    check_tone("t.mp3", "-ac 2 -c:a libmp3lame -b:a 128k");
    check_tone("t.ogg", "-ac 2 -c:a libvorbis");
    check_tone("t.opus", "-ac 2 -c:a libopus -b:a 96k");
    check_tone("t.m4a", "-ac 2 -c:a aac -b:a 128k");
    check_tone("t.aac", "-c:a aac -f adts");
    check_tone("t.webm", "-c:a libopus -f webm");
    check_tone("t.mka", "-c:a flac -f matroska");
    check_tone("t.aiff", "-c:a pcm_s16be");
}

typedef struct counter {
    size_t n;
    size_t max_chunk;
    size_t stop_after; /* 0 = never */
} counter;

static m2p_code count_samples(void *ctx, const float *s, size_t n) {
    counter *c = ctx;
    (void)s;
    c->n += n;
    c->max_chunk = n > c->max_chunk ? n : c->max_chunk;
    if (c->stop_after > 0 && c->n >= c->stop_after) {
        return M2P_E_CANCELLED;
    }
    return M2P_OK;
}

typedef struct prog {
    double last_done, total;
    int calls;
    bool monotonic;
    int findings;
} prog;

static void on_report(void *ctx, m2p_step step, double done, double total, const char *msg) {
    prog *p = ctx;
    assert_int_equal(step, M2P_STEP_DECODE);
    assert_non_null(msg);
    if (done < p->last_done) {
        p->monotonic = false;
    }
    p->last_done = done;
    p->total = total;
    p->calls++;
}

static void on_finding(void *ctx, m2p_step step, const char *key, const char *text) {
    prog *p = ctx;
    (void)step;
    (void)key;
    assert_non_null(strstr(text, "Hz"));
    p->findings++;
}

static void test_stream_progress_memory(void **state) {
    (void)state;
    char src[256], dst[256];
    sh("ffmpeg -v error -y -i '%s' -ac 2 -c:a libvorbis '%s'", path_of(src, sizeof src, "tone.wav"),
       path_of(dst, sizeof dst, "s.ogg"));
    m2p_decode_opts o;
    opts_default(&o);
    /* streaming: chunks add up, progress reaches the file size, one finding */
    counter c = {0};
    m2p_decode_sink sink = {count_samples, &c};
    prog pr = {.monotonic = true};
    m2p_progress progress = {on_report, on_finding, &pr, NULL};
    m2p_decode_info info;
    m2p_error err;
    assert_int_equal(m2p_decode_file_stream_info(dst, &o, &progress, &sink, &info, &err), M2P_OK);
    assert_int_equal(c.n, info.samples);
    assert_true(fabs(info.duration_s - TONE_S) < 0.05);
    assert_true(c.max_chunk < 65536);
    assert_true(pr.monotonic);
    assert_true(pr.calls >= 2);
    struct stat sb;
    assert_int_equal(stat(dst, &sb), 0);
    assert_true(pr.total == (double)sb.st_size && pr.last_done == pr.total);
    assert_int_equal(pr.findings, 1);
    assert_string_equal(info.codec, "vorbis");
    assert_int_equal(info.source_channels, 2);
    assert_int_equal(info.source_rate, 44100);
    assert_true(info.peak > 0.3f && info.peak < 0.7f);

    /* the same bytes from memory give the same samples */
    char *bytes = NULL;
    size_t len = 0;
    assert_int_equal(m2p_fs_read_file(dst, 1 << 24, &bytes, &len, &err), M2P_OK);
    m2p_audio *a = NULL, *b = NULL;
    assert_int_equal(m2p_decode_file(dst, &o, NULL, &a, &err), M2P_OK);
    assert_int_equal(m2p_decode_memory(bytes, len, &o, NULL, &b, &err), M2P_OK);
    assert_int_equal(a->n, b->n);
    assert_memory_equal(a->samples, b->samples, a->n * sizeof(float));
    m2p_audio_free(a);
    m2p_audio_free(b);

    /* the sink can stop decoding */
    counter stop = {.stop_after = 1};
    m2p_decode_sink stop_sink = {count_samples, &stop};
    assert_int_equal(m2p_decode_memory_stream(bytes, len, &o, NULL, &stop_sink, NULL, &err), M2P_E_CANCELLED);
    assert_true(stop.n < 65536);
    m2p_free(bytes);

    /* the cancel flag stops it before any audio */
    atomic_bool cancel = true;
    m2p_progress cancelled = {NULL, NULL, NULL, &cancel};
    counter c2 = {0};
    m2p_decode_sink sink2 = {count_samples, &c2};
    assert_int_equal(m2p_decode_file_stream(dst, &o, &cancelled, &sink2, &err), M2P_E_CANCELLED);
    assert_int_equal(c2.n, 0);

    /* the wall-time limit */
    m2p_decode_opts hurry = o;
    hurry.max_wall_s = 1e-6;
    assert_int_equal(m2p_decode_file_stream(dst, &hurry, NULL, &sink2, &err), M2P_E_TIMEOUT);

    /* a failed allocation anywhere is reported as such and frees everything (ASan checks leaks) */
    for (long k = 0; k < 12; k++) {
        m2p_audio *x = NULL;
        m2p_alloc_fail_after(k);
        m2p_code rc = m2p_decode_file(dst, &o, NULL, &x, &err);
        m2p_alloc_fail_after(-1);
        if (rc == M2P_OK) {
            assert_non_null(x);
            m2p_audio_free(x);
        } else {
            assert_int_equal(rc, M2P_E_NOMEM);
            assert_null(x);
        }
    }
}

static void expect(const char *name, const m2p_decode_opts *o, m2p_code want) {
    m2p_audio *a = NULL;
    m2p_error err;
    m2p_error_clear(&err);
    m2p_code rc = decode_name(name, o, &a, &err);
    print_message("%-14s → %s (%s)\n", name, m2p_errname(rc), err.detail);
    if (rc != want) {
        fail_msg("%s: want %s, got %s: %s", name, m2p_errname(want), m2p_errname(rc), err.detail);
    }
    if (want != M2P_OK) {
        assert_null(a);
        assert_int_equal(err.code, want);
        assert_true(strlen(err.detail) > 0);
    }
    m2p_audio_free(a);
}

static void test_empty_missing_not_regular(void **state) {
    (void)state;
    m2p_decode_opts o;
    opts_default(&o);
    char p[256];
    FILE *f = fopen(path_of(p, sizeof p, "empty.mp3"), "wb");
    assert_non_null(f);
    assert_int_equal(fclose(f), 0);
    expect("empty.mp3", &o, M2P_E_DECODE_EMPTY);
    expect("no-such-file.mp3", &o, M2P_E_FILE_NOT_FOUND);
    m2p_audio *a = NULL;
    m2p_error err;
    assert_int_equal(m2p_decode_file(g_dir, &o, NULL, &a, &err), M2P_E_FILE_NOT_REGULAR);
    assert_int_equal(m2p_decode_memory("", 0, &o, NULL, &a, &err), M2P_E_DECODE_EMPTY);
    assert_null(a);
    /* bad options */
    m2p_decode_opts bad = o;
    bad.rate = 100;
    assert_int_equal(m2p_decode_file(p, &bad, NULL, &a, &err), M2P_E_INVALID_ARG);
    bad = o;
    bad.max_duration_s = 0;
    assert_int_equal(m2p_decode_file(p, &bad, NULL, &a, &err), M2P_E_INVALID_ARG);
}

static void test_truncated(void **state) {
    (void)state;
    m2p_decode_opts o;
    opts_default(&o);
    char src[256], dst[256];
    write_tone("long.wav", 20.0, 0.5f);
    path_of(src, sizeof src, "long.wav");
    static const char *const k[][2] = {
        {"cut.flac", "-c:a flac"},     {"cut.mp3", "-c:a libmp3lame -b:a 128k"},
        {"cut.ogg", "-c:a libvorbis"}, {"cut.opus", "-c:a libopus"},
        {"cut.m4a", "-c:a aac"},       {"cut.webm", "-c:a libopus -f webm"},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        char full[64], fullp[256];
        (void)snprintf(full, sizeof full, "full-%s", k[i][0]);
        sh("ffmpeg -v error -y -i '%s' %s '%s'", src, k[i][1], path_of(fullp, sizeof fullp, full));
        sh("head -c $(( $(stat -c %%s '%s') / 2 )) '%s' > '%s'", fullp, fullp, path_of(dst, sizeof dst, k[i][0]));
        expect(full, &o, M2P_OK);
        expect(k[i][0], &o, M2P_E_DECODE_TRUNCATED);
    }
    sh("head -c $(( $(stat -c %%s '%s') / 2 )) '%s' > '%s'", src, src, path_of(dst, sizeof dst, "cut.wav"));
    expect("cut.wav", &o, M2P_E_DECODE_TRUNCATED);
}

static void test_not_audio(void **state) {
    (void)state;
    m2p_decode_opts o;
    opts_default(&o);
    char p[256], q[256];
    /* random bytes named .mp3 */
    sh("head -c 40000 /dev/urandom > '%s'", path_of(p, sizeof p, "random.mp3"));
    expect("random.mp3", &o, M2P_E_DECODE_FORMAT);
    /* a PNG named .mp3 */
    sh("ffmpeg -v error -y -f lavfi -i testsrc=size=64x64 -frames:v 1 '%s'", path_of(p, sizeof p, "pic.png"));
    sh("cp '%s' '%s'", p, path_of(q, sizeof q, "pic.mp3"));
    expect("pic.mp3", &o, M2P_E_DECODE_FORMAT);
    /* text */
    sh("printf 'hello, this is not a song\\n' > '%s'", path_of(p, sizeof p, "text.mp3"));
    expect("text.mp3", &o, M2P_E_DECODE_FORMAT);
    /* an HLS playlist pointing at a local file, as .m3u8 and renamed .mp3: refused, never followed */
    sh("printf '#EXTM3U\\n#EXT-X-TARGETDURATION:10\\n#EXTINF:10,\\n%s\\n#EXT-X-ENDLIST\\n' > '%s'",
       path_of(q, sizeof q, "tone.wav"), path_of(p, sizeof p, "list.m3u8"));
    expect("list.m3u8", &o, M2P_E_DECODE_FORMAT);
    sh("cp '%s' '%s'", p, path_of(q, sizeof q, "list.mp3"));
    expect("list.mp3", &o, M2P_E_DECODE_FORMAT);
    /* an ffconcat script */
    sh("printf \"ffconcat version 1.0\\nfile '%s'\\n\" > '%s'", path_of(q, sizeof q, "tone.wav"),
       path_of(p, sizeof p, "concat.txt"));
    expect("concat.txt", &o, M2P_E_DECODE_FORMAT);
    /* a DASH manifest */
    sh("printf '<?xml version=\"1.0\"?>\\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\"><Period><AdaptationSet>"
       "<Representation><BaseURL>file:///etc/passwd</BaseURL></Representation></AdaptationSet></Period></MPD>\\n' > "
       "'%s'",
       path_of(p, sizeof p, "dash.mpd"));
    expect("dash.mpd", &o, M2P_E_DECODE_FORMAT);
    /* a video without sound */
    sh("ffmpeg -v error -y -f lavfi -i testsrc=size=96x64:rate=10:duration=3 -c:v mpeg4 '%s'",
       path_of(p, sizeof p, "silent-film.mp4"));
    expect("silent-film.mp4", &o, M2P_E_DECODE_NO_AUDIO);
}

static void test_cover_art_and_video(void **state) {
    (void)state;
    m2p_decode_opts o;
    opts_default(&o);
    char wav[256], png[256], p[256];
    path_of(wav, sizeof wav, "tone.wav");
    sh("ffmpeg -v error -y -f lavfi -i testsrc=size=64x64 -frames:v 1 '%s'", path_of(png, sizeof png, "cover.png"));
    sh("ffmpeg -v error -y -i '%s' -i '%s' -map 0 -map 1 -c:a libmp3lame -c:v png -id3v2_version 3 "
       "-disposition:v attached_pic '%s'",
       wav, png, path_of(p, sizeof p, "cover.mp3"));
    sh("ffmpeg -v error -y -f lavfi -i testsrc=size=96x64:rate=10:duration=4 -i '%s' -c:v mpeg4 -c:a aac '%s'", wav,
       path_of(p + 0, sizeof p, "clip.mp4"));
    const char *names[] = {"cover.mp3", "clip.mp4"};
    for (int i = 0; i < 2; i++) {
        counter c = {0};
        m2p_decode_sink sink = {count_samples, &c};
        m2p_decode_info info;
        m2p_error err;
        m2p_code rc = m2p_decode_file_stream_info(path_of(p, sizeof p, names[i]), &o, NULL, &sink, &info, &err);
        if (rc != M2P_OK) {
            fail_msg("%s: %s", names[i], err.detail);
        }
        assert_int_equal(info.streams, 2); /* the picture/video stream was there, and ignored */
        assert_true(fabs(info.duration_s - TONE_S) < 0.08);
    }
}

static void test_silent_short_long(void **state) {
    (void)state;
    m2p_decode_opts o;
    opts_default(&o);
    char p[256];
    sh("ffmpeg -v error -y -f lavfi -i anullsrc=r=22050:cl=mono -t 3 -c:a libvorbis '%s'",
       path_of(p, sizeof p, "silent.ogg"));
    expect("silent.ogg", &o, M2P_E_DECODE_SILENT);
    /* very quiet (-70 dBFS) is silent too; allow_silent lets it through */
    write_tone("quiet.wav", 3.0, 0.0003f);
    expect("quiet.wav", &o, M2P_E_DECODE_SILENT);
    m2p_decode_opts loud_ok = o;
    loud_ok.allow_silent = true;
    expect("quiet.wav", &loud_ok, M2P_OK);
    write_tone("short.wav", 0.5, 0.5f);
    expect("short.wav", &o, M2P_E_DECODE_TOO_SHORT);
    /* the header says 4 s, the cap is 2 s: refused before decoding */
    m2p_decode_opts tight = o;
    tight.max_duration_s = 2.0;
    tight.min_duration_s = 0.0;
    expect("tone.wav", &tight, M2P_E_DECODE_TOO_LONG);
}

/* A 20 KB FLAC that decodes to two hours of silence, with no length in its header (written to a
 * pipe): refused when the decoded count passes the cap, quickly, without holding hours. */
static void test_decode_bomb(void **state) {
    (void)state;
    char p[256];
    path_of(p, sizeof p, "bomb.flac");
    sh("ffmpeg -v error -y -f lavfi -i anullsrc=r=8000:cl=mono -t 7200 -c:a flac -frame_size 65535 -f flac - > '%s'",
       p);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_true(sb.st_size < 64L * 1024);
    m2p_decode_opts o;
    opts_default(&o);
    o.max_duration_s = 60.0;
    o.rate = 8000;
    counter c = {0};
    m2p_decode_sink sink = {count_samples, &c};
    m2p_error err;
    double t0 = m2p_now_monotonic();
    assert_int_equal(m2p_decode_file_stream(p, &o, NULL, &sink, &err), M2P_E_DECODE_TOO_LONG);
    double took = m2p_now_monotonic() - t0;
    print_message("bomb: refused after %.1f s of audio in %.2f s\n", (double)c.n / o.rate, took);
    assert_true(c.n <= (size_t)(60.0 * o.rate));
    assert_true(c.n > (size_t)(55.0 * o.rate));
    assert_true(took < 10.0);

    struct rusage before, after;
    assert_int_equal(getrusage(RUSAGE_SELF, &before), 0);
    m2p_audio *a = NULL;
    assert_int_equal(m2p_decode_file(p, &o, NULL, &a, &err), M2P_E_DECODE_TOO_LONG);
    assert_null(a);
    assert_int_equal(getrusage(RUSAGE_SELF, &after), 0);
    /* two hours at 8 kHz would be 230 MB of floats; the cap holds it to about 2 MB */
    assert_true(after.ru_maxrss - before.ru_maxrss < 64L * 1024);

    /* the same bomb with an honest header is refused before any decoding */
    sh("ffmpeg -v error -y -f lavfi -i anullsrc=r=8000:cl=mono -t 7200 -c:a flac -frame_size 65535 '%s'",
       path_of(p, sizeof p, "bomb-honest.flac"));
    counter c2 = {0};
    m2p_decode_sink sink2 = {count_samples, &c2};
    assert_int_equal(m2p_decode_file_stream(p, &o, NULL, &sink2, &err), M2P_E_DECODE_TOO_LONG);
    assert_int_equal(c2.n, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_stream_progress_memory),
        cmocka_unit_test(test_empty_missing_not_regular),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_not_audio),
        cmocka_unit_test(test_cover_art_and_video),
        cmocka_unit_test(test_silent_short_long),
        cmocka_unit_test(test_decode_bomb),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
