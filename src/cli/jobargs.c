/*
 * cli/jobargs.c — option parsing for the job commands.
 */
#include "cli/jobargs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/fs.h"

static bool parse_long(const char *s, long lo, long hi, long *out) {
    if (s == NULL || *s == '\0') {
        return false;
    }
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        return false;
    }
    *out = (long)v;
    return true;
}

static m2p_code parse_size(const char *s, int *w, int *h, m2p_error *err) {
    long a = 0, b = 0;
    const char *x = strchr(s, 'x');
    if (x == NULL) {
        x = strchr(s, 'X');
    }
    if (x == NULL) {
        if (!parse_long(s, 1, 100000, &a)) {
            return m2p_error_set(err, M2P_E_RENDER_SIZE, "'%s' is not WIDTHxHEIGHT or a number", s);
        }
        b = a;
    } else {
        char left[32];
        size_t n = (size_t)(x - s);
        if (n == 0 || n >= sizeof left) {
            return m2p_error_set(err, M2P_E_RENDER_SIZE, "'%s' is not WIDTHxHEIGHT", s);
        }
        memcpy(left, s, n);
        left[n] = '\0';
        if (!parse_long(left, 1, 100000, &a) || !parse_long(x + 1, 1, 100000, &b)) {
            return m2p_error_set(err, M2P_E_RENDER_SIZE, "'%s' is not WIDTHxHEIGHT", s);
        }
    }
    if (a < 64 || b < 64 || a > 4096 || b > 4096 || a % 8 != 0 || b % 8 != 0) {
        return m2p_error_set(err, M2P_E_RENDER_SIZE, "%ldx%ld", a, b);
    }
    *w = (int)a;
    *h = (int)b;
    return M2P_OK;
}

static bool allowed_has(const char *allowed, char group) {
    return strchr(allowed, group) != NULL;
}

m2p_code m2p_jobargs_parse(m2p_jobargs *a, const m2p_config *cfg, int argc, char **argv, const char *allowed,
                           m2p_error *err) {
    memset(a, 0, sizeof *a);
    a->spec.allow_paths = true;
    const char *cmd = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes_value = true;
        char group = 0;
        if (strcmp(o, "--json") == 0) {
            group = 'j';
            takes_value = false;
        } else if (strcmp(o, "--per-section") == 0 || strcmp(o, "--layout") == 0) {
            group = 'r';
            takes_value = false;
        } else if (strcmp(o, "--style") == 0 || strcmp(o, "--template") == 0) {
            group = 's';
        } else if (strcmp(o, "-n") == 0 || strcmp(o, "--variations") == 0 || strcmp(o, "--size") == 0 ||
                   strcmp(o, "--steps") == 0 || strcmp(o, "--seed") == 0 || strcmp(o, "--renderer") == 0 ||
                   strcmp(o, "--out") == 0 || strcmp(o, "--guidance") == 0) {
            group = 'r';
        } else if (o[0] == '-' && o[1] != '\0') {
            return m2p_error_set(err, M2P_E_USAGE, "%s: unknown option '%s'", cmd, o);
        } else {
            if (a->spec.source != NULL) {
                return m2p_error_set(err, M2P_E_USAGE, "%s: one source only (got '%s' and '%s')", cmd,
                                     a->spec.source, o);
            }
            a->spec.source = o;
            continue;
        }
        if (!allowed_has(allowed, group)) {
            return m2p_error_set(err, M2P_E_USAGE, "%s does not take %s", cmd, o);
        }
        if (takes_value && v == NULL) {
            return m2p_error_set(err, M2P_E_USAGE, "%s needs a value", o);
        }
        long n = 0;
        m2p_code rc = M2P_OK;
        if (strcmp(o, "--json") == 0) {
            a->json = true;
        } else if (strcmp(o, "--per-section") == 0) {
            a->spec.per_section = true;
        } else if (strcmp(o, "--layout") == 0) {
            a->spec.layout = true;
        } else if (strcmp(o, "--style") == 0) {
            a->spec.style = v;
        } else if (strcmp(o, "--template") == 0) {
            if (v[0] == '@') {
                size_t len = 0;
                m2p_free(a->template_owned);
                a->template_owned = NULL;
                rc = m2p_fs_read_file(v + 1, 64 * 1024, &a->template_owned, &len, err);
                a->spec.template_text = a->template_owned;
            } else {
                a->spec.template_text = v;
            }
        } else if (strcmp(o, "-n") == 0 || strcmp(o, "--variations") == 0) {
            if (!parse_long(v, 1, M2P_RENDER_MAX_N, &n)) {
                rc = m2p_error_set(err, M2P_E_RENDER_COUNT, "'%s'", v);
            }
            a->spec.n = (int)n;
        } else if (strcmp(o, "--steps") == 0) {
            if (!parse_long(v, 1, 50, &n)) {
                rc = m2p_error_set(err, M2P_E_RENDER_STEPS, "'%s'", v);
            }
            a->spec.steps = (int)n;
        } else if (strcmp(o, "--seed") == 0) {
            if (!parse_long(v, 0, 4294967295L, &n)) {
                rc = m2p_error_set(err, M2P_E_RENDER_SEED, "'%s'", v);
            }
            a->spec.seed = (uint32_t)n;
            a->spec.seed_set = true;
        } else if (strcmp(o, "--size") == 0) {
            rc = parse_size(v, &a->spec.width, &a->spec.height, err);
        } else if (strcmp(o, "--renderer") == 0) {
            if (strcmp(v, "auto") != 0 && strcmp(v, "sonic") != 0 && strcmp(v, "lcm") != 0) {
                rc = m2p_error_set(err, M2P_E_RENDERER_UNKNOWN, "'%s'", v);
            }
            a->spec.renderer = v;
        } else if (strcmp(o, "--out") == 0) {
            a->spec.out_dir = v;
        } else if (strcmp(o, "--guidance") == 0) {
            char *end = NULL;
            double g = strtod(v, &end);
            if (end == v || *end != '\0' || !(g >= 1.0 && g <= 30.0)) {
                rc = m2p_error_set(err, M2P_E_INVALID_ARG, "--guidance '%s' is not between 1 and 30", v);
            }
            a->spec.guidance = g;
        }
        if (rc != M2P_OK) {
            return rc;
        }
        if (takes_value) {
            i++;
        }
    }
    (void)cfg;
    if (a->spec.source == NULL) {
        return m2p_error_set(err, M2P_E_USAGE, "usage: mus2pic %s SOURCE (a YouTube link or an audio file)", cmd);
    }
    return M2P_OK;
}

void m2p_jobargs_free(m2p_jobargs *a) {
    m2p_free(a->template_owned);
    a->template_owned = NULL;
}
