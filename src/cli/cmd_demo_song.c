/*
 * cli/cmd_demo_song.c — `mus2pic demo-song OUT.wav [options]`: writes a
 * synthesised song with known tempo, key, mode and sections (audio/synth.h),
 * for the demo, for trying the analysis, and as test input.
 *
 * Exit status: 0 written, 1 the synthesis or the write failed, 2 bad options
 * (one clear line on stderr each time).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/synth.h"
#include "audio/wav.h"
#include "cli/cli.h"

static const char k_usage[] =
    "usage: mus2pic demo-song OUT.wav [--tempo BPM] [--key A] [--mode minor|major] [--seconds N]\n"
    "                         [--seed N] [--style piano|electronic|orchestral] [--energy 0..1]\n"
    "                         [--rate HZ] [--float]\n";

static bool parse_double(const char *s, double *out) {
    if (s == NULL || s[0] == '\0') {
        return false;
    }
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v)) {
        return false;
    }
    *out = v;
    return true;
}

static bool parse_u32(const char *s, uint32_t *out) {
    if (s == NULL || s[0] < '0' || s[0] > '9') {
        return false;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > UINT32_MAX) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

/* Prints the usage error already set in err: one line (`--help` shows the usage). */
static int usage_fail(const m2p_error *err) {
    m2p_cli_print_error(err);
    return M2P_EXIT_USAGE;
}
#define USAGE_ERROR(...) usage_fail((m2p_error_set(&uerr, M2P_E_USAGE, __VA_ARGS__), &uerr))

int m2p_cmd_demo_song(m2p_config *cfg, int argc, char **argv) {
    (void)cfg;
    m2p_synth_params p;
    m2p_synth_defaults(&p);
    m2p_error uerr;
    m2p_error_clear(&uerr);
    const char *out_path = NULL;
    bool as_float = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            (void)fputs(k_usage, stdout);
            return M2P_EXIT_OK;
        }
        if (strcmp(a, "--float") == 0) {
            as_float = true;
            continue;
        }
        if (a[0] == '-' && a[1] == '-') {
            static const char *const k_known[] = {"--tempo", "--key",   "--mode",   "--seconds",
                                                  "--seed",  "--style", "--energy", "--rate"};
            bool known = false;
            for (size_t k = 0; k < sizeof k_known / sizeof k_known[0]; k++) {
                known = known || strcmp(a, k_known[k]) == 0;
            }
            if (!known) {
                return USAGE_ERROR("unknown option '%s' (see mus2pic demo-song --help)", a);
            }
            if (i + 1 >= argc) {
                return USAGE_ERROR("%s needs a value", a);
            }
            const char *v = argv[++i];
            double d = 0.0;
            uint32_t u = 0;
            if (strcmp(a, "--tempo") == 0) {
                if (!parse_double(v, &d) || d < 40.0 || d > 240.0) {
                    return USAGE_ERROR("--tempo must be a number of BPM from 40 to 240, got '%s'", v);
                }
                p.tempo_bpm = d;
            } else if (strcmp(a, "--key") == 0) {
                char k[8];
                size_t n = strlen(v);
                if (n == 0 || n >= sizeof k) {
                    return USAGE_ERROR("--key must be a note name such as A, C#, Bb or Am, got '%s'", v);
                }
                memcpy(k, v, n + 1);
                if (n >= 2 && k[n - 1] == 'm') { /* "Am", "F#m": minor */
                    k[n - 1] = '\0';
                    p.minor = true;
                }
                if (!m2p_synth_key_parse(k, &p.key)) {
                    return USAGE_ERROR("--key must be a note name such as A, C#, Bb or Am, got '%s'", v);
                }
            } else if (strcmp(a, "--mode") == 0) {
                if (strcmp(v, "minor") == 0) {
                    p.minor = true;
                } else if (strcmp(v, "major") == 0) {
                    p.minor = false;
                } else {
                    return USAGE_ERROR("--mode must be major or minor, got '%s'", v);
                }
            } else if (strcmp(a, "--seconds") == 0) {
                if (!parse_double(v, &d) || d < 1.0 || d > 1800.0) {
                    return USAGE_ERROR("--seconds must be a number from 1 to 1800, got '%s'", v);
                }
                p.seconds = d;
            } else if (strcmp(a, "--seed") == 0) {
                if (!parse_u32(v, &u)) {
                    return USAGE_ERROR("--seed must be a whole number from 0 to 4294967295, got '%s'", v);
                }
                p.seed = u;
            } else if (strcmp(a, "--style") == 0) {
                if (!m2p_synth_style_parse(v, &p.style)) {
                    return USAGE_ERROR("--style must be piano, electronic or orchestral, got '%s'", v);
                }
            } else if (strcmp(a, "--energy") == 0) {
                if (!parse_double(v, &d) || d < 0.0 || d > 1.0) {
                    return USAGE_ERROR("--energy must be a number from 0 to 1, got '%s'", v);
                }
                p.energy = d;
            } else if (strcmp(a, "--rate") == 0) {
                if (!parse_u32(v, &u) || u < 8000 || u > 96000) {
                    return USAGE_ERROR("--rate must be a sample rate from 8000 to 96000 Hz, got '%s'", v);
                }
                p.rate = (int)u;
            } else {
                return USAGE_ERROR("unknown option '%s'", a);
            }
            continue;
        }
        if (out_path != NULL) {
            return USAGE_ERROR("only one output file, got another: '%s'", a);
        }
        out_path = a;
    }
    if (out_path == NULL) {
        return USAGE_ERROR("give the output file, e.g. mus2pic demo-song song.wav");
    }

    m2p_error err;
    m2p_error_clear(&err);
    m2p_audio *audio = NULL;
    m2p_code rc = m2p_synth_song(&p, &audio);
    if (rc != M2P_OK) {
        (void)m2p_error_set(&err, rc, "synthesising the song");
        m2p_cli_print_error(&err);
        return M2P_EXIT_FAIL;
    }
    rc = m2p_audio_write_wav(audio, out_path, as_float ? M2P_WAV_FLOAT32 : M2P_WAV_PCM16, &err);
    m2p_audio_free(audio);
    if (rc != M2P_OK) {
        m2p_cli_print_error(&err);
        return M2P_EXIT_FAIL;
    }
    m2p_synth_section secs[M2P_SYNTH_MAX_SECTIONS];
    size_t nsec = 0;
    if (m2p_synth_plan(&p, secs, M2P_SYNTH_MAX_SECTIONS, &nsec, NULL) != M2P_OK) {
        nsec = 0;
    }
    (void)printf("wrote %s: %.1f s, %g BPM, %s %s, %s, seed %u, sections:", out_path, p.seconds, p.tempo_bpm,
                 m2p_synth_key_name(p.key), p.minor ? "minor" : "major", m2p_synth_style_name(p.style),
                 (unsigned)p.seed);
    for (size_t i = 0; i < nsec && i < M2P_SYNTH_MAX_SECTIONS; i++) {
        (void)printf(" %s@%.1fs", m2p_synth_section_name(secs[i].kind), secs[i].start_s);
    }
    (void)printf("\n");
    return M2P_EXIT_OK;
}
