/*
 * bench/bench_analysis.c — our whole-song decode + analysis, timed and graded.
 *
 *   bench_analysis gen DIR [--count N] [--seconds S] [--seed N]
 *       writes N synthesised songs (audio/synth.h, tempi 55..200 BPM, keys
 *       cycling through all 24, the three styles) as DIR/synthNN.wav and
 *       DIR/truth.json in the format of tools/songs/make_corpus.py.
 *   bench_analysis gen-lengths DIR
 *       writes DIR/len{30,60,120,240,600}.wav (one song each) and truth.json,
 *       for the cost-versus-length table.
 *   bench_analysis run TRUTH.json [--runs N] [--out RESULTS.json]
 *       for every song of TRUTH.json (paths relative to its folder):
 *       m2p_dsp_analyze_file (decode and analysis overlapped) N times
 *       (default 5): wall and CPU seconds (median, min, max), and a decode-only
 *       pass for comparison; then tempo Acc1 (±4 %), Acc2 (×2, ×½, ×3, ×⅓)
 *       and the MIREX key score (exact 1, fifth 0.5, relative 0.3,
 *       parallel 0.2) over the songs. RESULTS.json feeds
 *       bench/analysis_compare.py, which sets them beside librosa's.
 * Never part of the tests: timings depend on the machine and its load.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audio/decode.h"
#include "audio/synth.h"
#include "audio/wav.h"
#include "dsp/analyze.h"

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static const char *k_names[12] = {"C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"};

static int key_index(const char *name) {
    for (int i = 0; name != NULL && i < 12; i++) {
        if (strcmp(name, k_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

static double mirex(int key, bool minor, int tkey, bool tminor) {
    if (key == tkey && minor == tminor) {
        return 1.0;
    }
    if (minor == tminor && (key == (tkey + 7) % 12 || key == (tkey + 5) % 12)) {
        return 0.5;
    }
    if (minor != tminor) {
        if (!tminor && key == (tkey + 9) % 12) {
            return 0.3;
        }
        if (tminor && key == (tkey + 3) % 12) {
            return 0.3;
        }
        if (key == tkey) {
            return 0.2;
        }
    }
    return 0.0;
}

static int write_song(const char *dir, const char *name, const m2p_synth_params *p, json_t *songs) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    m2p_audio *a = NULL;
    m2p_error err;
    if (m2p_synth_song(p, &a) != M2P_OK || m2p_audio_write_wav(a, path, M2P_WAV_PCM16, &err) != M2P_OK) {
        fprintf(stderr, "bench_analysis: cannot write %s\n", path);
        m2p_audio_free(a);
        return 1;
    }
    m2p_audio_free(a);
    json_t *s = json_pack("{s:s, s:f, s:s, s:i, s:s, s:f, s:s}", "file", name, "tempo", p->tempo_bpm, "key",
                          k_names[p->key], "key_pc", p->key, "mode", p->minor ? "minor" : "major", "seconds",
                          p->seconds, "style", m2p_synth_style_name(p->style));
    json_array_append_new(songs, s);
    return 0;
}

static int save_truth(const char *dir, json_t *songs) {
    char path[1024];
    snprintf(path, sizeof path, "%s/truth.json", dir);
    json_t *root = json_pack("{s:s, s:o}", "generator", "bench_analysis gen (src/audio/synth.c)", "songs", songs);
    int rc = json_dump_file(root, path, JSON_INDENT(1)) == 0 ? 0 : 1;
    json_decref(root);
    return rc;
}

static int cmd_gen(const char *dir, int count, double seconds, unsigned seed) {
    json_t *songs = json_array();
    for (int i = 0; i < count; i++) {
        m2p_synth_params p;
        m2p_synth_defaults(&p);
        p.tempo_bpm = 55.0 + fmod(i * 61.7 + seed * 13.0, 145.0);
        p.key = (i * 7 + (int)seed) % 12;
        p.minor = (i / 12 + i) % 2 == 1;
        p.seconds = seconds;
        p.rate = 44100;
        p.seed = seed * 1000u + (unsigned)i;
        p.energy = 0.3 + 0.6 * ((i * 3) % 7) / 6.0;
        p.style = (m2p_synth_style)(i % M2P_SYNTH_STYLE_COUNT);
        char name[64];
        snprintf(name, sizeof name, "synth%02d.wav", i + 1);
        if (write_song(dir, name, &p, songs) != 0) {
            json_decref(songs);
            return 1;
        }
    }
    return save_truth(dir, songs);
}

static int cmd_gen_lengths(const char *dir) {
    static const double lens[] = {30, 60, 120, 240, 600};
    json_t *songs = json_array();
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        m2p_synth_params p;
        m2p_synth_defaults(&p);
        p.seconds = lens[i];
        p.rate = 44100;
        p.tempo_bpm = 124;
        p.key = 9;
        p.minor = true;
        p.seed = 7;
        char name[64];
        snprintf(name, sizeof name, "len%03.0f.wav", lens[i]);
        if (write_song(dir, name, &p, songs) != 0) {
            json_decref(songs);
            return 1;
        }
    }
    return save_truth(dir, songs);
}

static m2p_code null_sink(void *ctx, const float *s, size_t n) {
    (void)ctx;
    (void)s;
    (void)n;
    return M2P_OK;
}

static int cmd_run(const char *truth_path, int runs, const char *out_path) {
    json_error_t jerr;
    json_t *truth = json_load_file(truth_path, 0, &jerr);
    json_t *songs = json_object_get(truth, "songs");
    if (!json_is_array(songs)) {
        fprintf(stderr, "bench_analysis: %s: no songs (%s)\n", truth_path, jerr.text);
        json_decref(truth);
        return 1;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", truth_path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL) {
        *slash = '\0';
    } else {
        snprintf(dir, sizeof dir, ".");
    }
    m2p_decode_opts opts;
    m2p_decode_opts_default(&opts);
    opts.max_duration_s = 1800;
    opts.max_wall_s = 600;
    json_t *results = json_array();
    int n = 0, acc1 = 0, acc2 = 0;
    double keysum = 0, tot_wall = 0, tot_audio = 0;
    printf("%-14s %7s %7s  %-9s %-9s  %8s %8s %8s  %8s %8s\n", "song", "tempo", "ours", "key", "ours", "wall_med",
           "wall_min", "wall_max", "cpu_med", "decode");
    size_t idx;
    json_t *s;
    json_array_foreach(songs, idx, s) {
        const char *file = json_string_value(json_object_get(s, "file"));
        double ttempo = json_number_value(json_object_get(s, "tempo"));
        int tkey = key_index(json_string_value(json_object_get(s, "key")));
        const char *tmode = json_string_value(json_object_get(s, "mode"));
        bool tminor = tmode != NULL && strcmp(tmode, "minor") == 0;
        if (file == NULL) {
            continue;
        }
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, file);
        double wall[64], cpu[64], dec[64];
        if (runs > 64) {
            runs = 64;
        }
        m2p_features *f = NULL;
        for (int r = 0; r < runs; r++) {
            m2p_features_free(f);
            f = NULL;
            m2p_error err;
            double w0 = wall_now(), c0 = cpu_now();
            m2p_code rc = m2p_dsp_analyze_file(path, &opts, NULL, &f, &err);
            wall[r] = wall_now() - w0;
            cpu[r] = cpu_now() - c0;
            if (rc != M2P_OK) {
                fprintf(stderr, "bench_analysis: %s: %s (%s)\n", path, m2p_errname(rc), err.detail);
                json_decref(truth);
                json_decref(results);
                return 1;
            }
            m2p_decode_sink sink = {null_sink, NULL};
            w0 = wall_now();
            if (m2p_decode_file_stream(path, &opts, NULL, &sink, &err) != M2P_OK) {
                dec[r] = NAN;
            } else {
                dec[r] = wall_now() - w0;
            }
        }
        double wmin = wall[0], wmax = wall[0];
        for (int r = 1; r < runs; r++) {
            wmin = fmin(wmin, wall[r]);
            wmax = fmax(wmax, wall[r]);
        }
        double wmed = median(wall, runs), cmed = median(cpu, runs), dmed = median(dec, runs);
        double ratio = ttempo > 0 ? f->tempo_bpm / ttempo : 0;
        bool ok1 = fabs(ratio - 1) < 0.04;
        bool ok2 = ok1 || fabs(ratio / 2 - 1) < 0.04 || fabs(ratio * 2 - 1) < 0.04 || fabs(ratio / 3 - 1) < 0.04 ||
                   fabs(ratio * 3 - 1) < 0.04;
        double ks = tkey >= 0 ? mirex(f->key, f->mode == M2P_MODE_MINOR, tkey, tminor) : 0;
        acc1 += ok1;
        acc2 += ok2;
        keysum += ks;
        n++;
        tot_wall += wmed;
        tot_audio += f->duration_s;
        char tk[16], ok[16];
        snprintf(tk, sizeof tk, "%s %s", tkey >= 0 ? k_names[tkey] : "?", tminor ? "min" : "maj");
        snprintf(ok, sizeof ok, "%s %s", m2p_key_name(f->key), f->mode == M2P_MODE_MINOR ? "min" : "maj");
        printf("%-14s %7.1f %7.1f%s %-9s %-9s%s %8.3f %8.3f %8.3f  %8.3f %8.3f\n", file, ttempo, f->tempo_bpm,
               ok1 ? " " : ok2 ? "o" : "x", tk, ok, ks == 1.0 ? " " : "x", wmed, wmin, wmax, cmed, dmed);
        json_array_append_new(results,
                              json_pack("{s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:s, s:s, s:f, s:f, s:b, s:b, s:f}",
                                        "file", file, "duration_s", f->duration_s, "wall_median_s", wmed,
                                        "wall_min_s", wmin, "wall_max_s", wmax, "cpu_median_s", cmed,
                                        "decode_median_s", dmed, "tempo", f->tempo_bpm, "key", m2p_key_name(f->key),
                                        "mode", m2p_mode_name(f->mode), "true_tempo", ttempo, "key_score", ks, "acc1",
                                        ok1, "acc2", ok2, "key_confidence", f->key_confidence));
        m2p_features_free(f);
    }
    if (n > 0) {
        printf("\nours: %d songs, Acc1 %.3f, Acc2 %.3f, MIREX key score %.3f; %.1f s of audio in %.2f s (median "
               "wall per song summed)\n",
               n, (double)acc1 / n, (double)acc2 / n, keysum / n, tot_audio, tot_wall);
    }
    if (out_path != NULL) {
        json_t *root = json_pack("{s:s, s:i, s:o}", "tool", "bench_analysis", "runs", runs, "results", results);
        if (json_dump_file(root, out_path, JSON_INDENT(1)) != 0) {
            fprintf(stderr, "bench_analysis: cannot write %s\n", out_path);
        }
        json_decref(root);
    } else {
        json_decref(results);
    }
    json_decref(truth);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "gen") == 0) {
        int count = 24;
        double seconds = 30;
        unsigned seed = 1;
        for (int i = 3; i + 1 < argc; i += 2) {
            if (strcmp(argv[i], "--count") == 0) {
                count = (int)strtol(argv[i + 1], NULL, 10);
            } else if (strcmp(argv[i], "--seconds") == 0) {
                seconds = strtod(argv[i + 1], NULL);
            } else if (strcmp(argv[i], "--seed") == 0) {
                seed = (unsigned)strtoul(argv[i + 1], NULL, 10);
            }
        }
        if (count < 1 || count > 500 || !(seconds >= 1 && seconds <= 1800)) {
            fprintf(stderr, "bench_analysis gen: --count 1..500, --seconds 1..1800\n");
            return 2;
        }
        return cmd_gen(argv[2], count, seconds, seed);
    }
    if (argc >= 3 && strcmp(argv[1], "gen-lengths") == 0) {
        return cmd_gen_lengths(argv[2]);
    }
    if (argc >= 3 && strcmp(argv[1], "run") == 0) {
        int runs = 5;
        const char *out = NULL;
        for (int i = 3; i + 1 < argc; i += 2) {
            if (strcmp(argv[i], "--runs") == 0) {
                runs = (int)strtol(argv[i + 1], NULL, 10);
            } else if (strcmp(argv[i], "--out") == 0) {
                out = argv[i + 1];
            }
        }
        if (runs < 1 || runs > 64) {
            fprintf(stderr, "bench_analysis run: --runs 1..64\n");
            return 2;
        }
        return cmd_run(argv[2], runs, out);
    }
    fprintf(stderr, "usage: bench_analysis gen DIR [--count N] [--seconds S] [--seed N]\n"
                    "       bench_analysis gen-lengths DIR\n"
                    "       bench_analysis run TRUTH.json [--runs N] [--out RESULTS.json]\n");
    return 2;
}
