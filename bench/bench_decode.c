/*
 * bench/bench_decode.c — how fast a whole song is decoded to mono float at the
 * analysis rate, against the ffmpeg command-line tool doing the same job, and
 * how fast the synthesiser makes the song.
 *
 *   bench_decode [--runs N] [--seconds S] [--rate HZ]
 *
 * Makes an S-second song (default 240) with the synthesiser, encodes it with
 * ffmpeg to ogg/vorbis, mp3, m4a/aac, opus and flac (stereo, typical
 * bitrates), then for each: the median over N runs (default 5) of
 * m2p_decode_file at HZ (default 22050) and of `ffmpeg -threads 1 -i F -ac 1
 * -ar HZ -f f32le /dev/null`, wall and CPU seconds, and the CPU ratio
 * (CPU is the honest figure when other programs share the cores).
 */
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audio/decode.h"
#include "audio/synth.h"
#include "audio/wav.h"
#include "core/fs.h"

extern char **environ;

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Runs argv, returns its exit status; *cpu gets the child's user+system seconds. */
static int run(char *const argv[], double *cpu) {
    pid_t pid;
    if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0) {
        return -1;
    }
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) {
        return -1;
    }
    *cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int main(int argc, char **argv) {
    int runs = 5;
    double seconds = 240.0;
    int rate = 22050;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--runs") == 0) {
            runs = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--seconds") == 0) {
            seconds = atof(argv[i + 1]);
        } else if (strcmp(argv[i], "--rate") == 0) {
            rate = atoi(argv[i + 1]);
        }
    }
    if (runs < 1 || runs > 50 || !(seconds >= 5 && seconds <= 900) || rate < 8000 || rate > 96000) {
        (void)fprintf(stderr, "usage: bench_decode [--runs 1..50] [--seconds 5..900] [--rate 8000..96000]\n");
        return 2;
    }
    char dir[] = "/tmp/m2p-bench-decode-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }

    /* the song, and how fast it is made */
    m2p_synth_params p;
    m2p_synth_defaults(&p);
    p.seconds = seconds;
    p.style = M2P_SYNTH_PIANO;
    double sw[50], sc[50];
    m2p_audio *song = NULL;
    for (int r = 0; r < runs; r++) {
        m2p_audio_free(song);
        song = NULL;
        double w0 = m2p_now_monotonic(), c0 = cpu_now();
        if (m2p_synth_song(&p, &song) != M2P_OK) {
            (void)fprintf(stderr, "synth failed\n");
            return 1;
        }
        sw[r] = m2p_now_monotonic() - w0;
        sc[r] = cpu_now() - c0;
    }
    double synth_wall = median(sw, runs), synth_cpu = median(sc, runs);
    char wav[128];
    (void)snprintf(wav, sizeof wav, "%s/song.wav", dir);
    m2p_error err;
    if (m2p_audio_write_wav(song, wav, M2P_WAV_PCM16, &err) != M2P_OK) {
        (void)fprintf(stderr, "write: %s\n", err.detail);
        return 1;
    }
    m2p_audio_free(song);
    p.rate = rate;
    for (int r = 0; r < runs; r++) {
        double w0 = m2p_now_monotonic(), c0 = cpu_now();
        if (m2p_synth_song(&p, &song) != M2P_OK) {
            return 1;
        }
        sw[r] = m2p_now_monotonic() - w0;
        sc[r] = cpu_now() - c0;
        m2p_audio_free(song);
    }
    printf("synthesiser, %.0f s piano song: 44100 Hz %.3f s wall / %.3f s CPU; %d Hz %.3f s wall / %.3f s CPU "
           "(median of %d)\n",
           seconds, synth_wall, synth_cpu, rate, median(sw, runs), median(sc, runs), runs);

    static const struct {
        const char *ext;
        const char *args[6];
    } k_fmt[] = {
        {"ogg", {"-c:a", "libvorbis", "-q:a", "5", NULL}},
        {"mp3", {"-c:a", "libmp3lame", "-b:a", "192k", NULL}},
        {"m4a", {"-c:a", "aac", "-b:a", "192k", NULL}},
        {"opus", {"-c:a", "libopus", "-b:a", "128k", NULL}},
        {"flac", {"-c:a", "flac", NULL}},
    };
    printf("%-5s %10s %10s | %12s %12s | %9s\n", "fmt", "m2p wall", "m2p CPU", "ffmpeg wall", "ffmpeg CPU",
           "CPU ratio");
    m2p_decode_opts o;
    m2p_decode_opts_default(&o);
    o.rate = rate;
    o.max_duration_s = seconds + 60;
    char rate_s[16];
    (void)snprintf(rate_s, sizeof rate_s, "%d", rate);
    for (size_t f = 0; f < sizeof k_fmt / sizeof k_fmt[0]; f++) {
        char enc[160];
        (void)snprintf(enc, sizeof enc, "%s/song.%s", dir, k_fmt[f].ext);
        char *eargv[20];
        int k = 0;
        eargv[k++] = "ffmpeg";
        eargv[k++] = "-v";
        eargv[k++] = "error";
        eargv[k++] = "-y";
        eargv[k++] = "-i";
        eargv[k++] = wav;
        eargv[k++] = "-ac";
        eargv[k++] = "2";
        for (int j = 0; k_fmt[f].args[j] != NULL; j++) {
            eargv[k++] = (char *)k_fmt[f].args[j];
        }
        eargv[k++] = enc;
        eargv[k] = NULL;
        double ecpu;
        if (run(eargv, &ecpu) != 0) {
            (void)fprintf(stderr, "ffmpeg could not encode %s\n", enc);
            return 1;
        }
        double mw[50], mc[50], fw[50], fc[50];
        for (int r = 0; r < runs; r++) {
            m2p_audio *a = NULL;
            double w0 = m2p_now_monotonic(), c0 = cpu_now();
            m2p_code rc = m2p_decode_file(enc, &o, NULL, &a, &err);
            mw[r] = m2p_now_monotonic() - w0;
            mc[r] = cpu_now() - c0;
            if (rc != M2P_OK || fabs(m2p_audio_duration(a) - seconds) > 0.1) {
                (void)fprintf(stderr, "decode %s: %s %s\n", enc, m2p_errname(rc), err.detail);
                return 1;
            }
            m2p_audio_free(a);
            char *dargv[] = {"ffmpeg", "-v",  "error", "-threads", "1",     "-i", enc,         "-ac",
                             "1",      "-ar", rate_s,  "-f",       "f32le", "-y", "/dev/null", NULL};
            double w1 = m2p_now_monotonic();
            if (run(dargv, &fc[r]) != 0) {
                return 1;
            }
            fw[r] = m2p_now_monotonic() - w1;
        }
        double m_w = median(mw, runs), m_c = median(mc, runs), f_w = median(fw, runs), f_c = median(fc, runs);
        printf("%-5s %9.3fs %9.3fs | %11.3fs %11.3fs | %8.2fx\n", k_fmt[f].ext, m_w, m_c, f_w, f_c, f_c / m_c);
    }
    char cmd[200];
    (void)snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        (void)fprintf(stderr, "could not remove %s\n", dir);
    }
    return 0;
}
