/*
 * prompt/prompt.c — features + style (+ user template) → a prompt whose every
 * fragment says which features produced it and why.
 *
 * Steps of m2p_prompt_build:
 *   1. resolve the style (presets.h) and parse the template (template.h);
 *   2. for each variable the template uses, derive one fragment from the
 *      features with fixed rules (below): text, the feature values, the
 *      reason, a priority;
 *   3. fill the template, tidy separators (empty comma items, whitespace);
 *   4. count CLIP tokens exactly (clip_tokenizer.h); while over 77, drop the
 *      lowest-priority fragment still kept (kept=false, shortened=true); if
 *      the literal text alone is still too long, cut whole words at the end.
 * Everything is a pure function of the input: no clocks, no randomness, no
 * locale-dependent formatting of the numbers that reach the text.
 *
 * Key → colour (a Scriabin-inspired table; major keys vivid, minor deep):
 * C scarlet/crimson, C# violet/plum, D yellow/ochre, D# steel blue/gunmetal,
 * E sky blue/icy blue, F ruby/burgundy, F# cobalt/midnight blue,
 * G orange/rust, G# lilac/mauve, A emerald/forest green, A# silver/slate,
 * B azure/deep sea teal. Low key confidence → "shifting iridescent hues".
 */
#include "prompt/prompt.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistr.h>

#include "core/alloc.h"
#include "prompt/template.h"

#define FRAG_TEXT_MAX 160
#define USER_TEXT_MAX 100 /* bytes kept of a title or artist */

typedef struct frag {
    int var;
    int priority;
    char text[FRAG_TEXT_MAX];
    char feature[FRAG_TEXT_MAX];
    char reason[FRAG_TEXT_MAX];
} frag;

/* Read-only: key colours, [key][0 = major, 1 = minor]. */
static const char *const k_key_colors[12][2] = {
    {"vivid scarlet and crimson", "deep crimson and oxblood"},
    {"bright violet and magenta", "deep violet and plum"},
    {"sunny yellow and gold", "muted ochre and mustard"},
    {"gleaming steel blue", "cold gunmetal blue"},
    {"pale sky blue and pearl", "icy blue and frost white"},
    {"rich ruby and rose", "dark burgundy and maroon"},
    {"brilliant cobalt and ultramarine", "midnight blue and indigo"},
    {"warm orange and coral", "burnt orange and rust"},
    {"soft lilac and lavender", "dusky mauve and purple"},
    {"fresh emerald and spring green", "deep forest green and teal"},
    {"polished silver and chrome", "slate grey and pewter"},
    {"clear azure and turquoise", "deep sea blue and teal"},
};

/* Read-only: key names (own table, so the prompt does not depend on dsp code). */
static const char *const k_key_names[12] = {"C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"};

/* Read-only: mood by valence (row: low, mid, high) and arousal (column). */
static const char *const k_moods[3][3] = {
    {"melancholic, wistful", "brooding, introspective", "dark, tense intensity"},
    {"calm, contemplative", "dreamy, bittersweet", "restless, urgent"},
    {"tender, peaceful", "warm, hopeful", "euphoric, jubilant"},
};
static const char *const k_level_words[3] = {"low", "mid", "high"};

/* A 0..1 score made safe: NaN → 0, clamped. */
static double unit(double x) {
    if (!(x >= 0.0)) {
        return 0.0;
    }
    return x > 1.0 ? 1.0 : x;
}

/* A non-negative finite value, capped. */
static double nonneg(double x, double cap) {
    if (!(x >= 0.0)) {
        return 0.0;
    }
    return x > cap ? cap : x;
}

static int level3(double x, double lo, double hi) {
    if (x < lo) {
        return 0;
    }
    return x > hi ? 2 : 1;
}

static bool is_minor(const m2p_features *f) {
    return f->mode == M2P_MODE_MINOR;
}

static bool key_known(const m2p_features *f) {
    return f->key >= 0 && f->key < 12 && unit(f->key_confidence) >= 0.15;
}

static void set3(frag *o, const char *text, const char *reason) {
    (void)snprintf(o->text, sizeof o->text, "%s", text);
    (void)snprintf(o->reason, sizeof o->reason, "%s", reason);
}

static void frag_mood(const m2p_features *f, frag *o) {
    double v = unit(f->valence);
    double a = unit(f->arousal);
    int vi = level3(v, 0.4, 0.6);
    int ai = level3(a, 0.4, 0.6);
    o->priority = 95;
    (void)snprintf(o->text, sizeof o->text, "%s", k_moods[vi][ai]);
    (void)snprintf(o->feature, sizeof o->feature, "valence=%.2f, arousal=%.2f", v, a);
    (void)snprintf(o->reason, sizeof o->reason, "%s valence (%s) + %s arousal (%s)", k_level_words[vi],
                   vi == 0 ? "sad" : (vi == 2 ? "happy" : "neutral"), k_level_words[ai],
                   ai == 0 ? "calm" : (ai == 2 ? "excited" : "moderate"));
}

static void frag_palette(const m2p_features *f, frag *o) {
    double b = unit(f->brightness);
    bool minor = is_minor(f);
    o->priority = 90;
    (void)snprintf(o->feature, sizeof o->feature, "mode=%s, brightness=%.2f", minor ? "minor" : "major", b);
    if (minor) {
        if (b < 0.4) {
            set3(o, "moody, cool dusk palette", "minor mode + low brightness");
        } else if (b < 0.65) {
            set3(o, "cool, silvery twilight palette", "minor mode + medium brightness");
        } else {
            set3(o, "icy, luminous palette", "minor mode + high brightness");
        }
    } else {
        if (b < 0.4) {
            set3(o, "soft, warm candlelit palette", "major mode + low brightness");
        } else if (b < 0.65) {
            set3(o, "warm golden-hour palette", "major mode + medium brightness");
        } else {
            set3(o, "radiant, sunlit palette", "major mode + high brightness");
        }
    }
}

static void frag_color(const m2p_features *f, frag *o) {
    o->priority = 70;
    double kc = unit(f->key_confidence);
    if (!key_known(f)) {
        (void)snprintf(o->feature, sizeof o->feature, "key_confidence=%.2f", kc);
        set3(o, "shifting iridescent hues", "no clear key");
        return;
    }
    bool minor = is_minor(f);
    (void)snprintf(o->text, sizeof o->text, "%s hues", k_key_colors[f->key][minor ? 1 : 0]);
    (void)snprintf(o->feature, sizeof o->feature, "key=%s %s, key_confidence=%.2f", k_key_names[f->key],
                   minor ? "minor" : "major", kc);
    (void)snprintf(o->reason, sizeof o->reason, "key of %s %s (key colour table)", k_key_names[f->key],
                   minor ? "minor" : "major");
}

static void frag_motion(const m2p_features *f, frag *o) {
    double t = nonneg(f->tempo_bpm, 400.0);
    double od = nonneg(f->onset_density, 100.0);
    double reg = unit(f->beat_regularity);
    double e = unit(f->energy);
    o->priority = 85;
    (void)snprintf(o->feature, sizeof o->feature, "tempo=%.0f BPM, onset_density=%.1f/s, beat_regularity=%.2f", t, od,
                   reg);
    if (t <= 0.0 || unit(f->tempo_confidence) < 0.1) {
        set3(o, "free-floating, beatless drift", "no steady beat");
    } else if (t >= 140.0 && od >= 4.0) {
        set3(o, "kinetic, fractured motion", "fast tempo + dense onsets");
    } else if (t >= 140.0) {
        set3(o, "racing, streaking motion", "fast tempo");
    } else if (od >= 6.0) {
        set3(o, "busy, flickering motion", "very dense onsets");
    } else if (t >= 115.0 && reg >= 0.6) {
        set3(o, "driving, pulsing rhythm", "upbeat tempo + steady beat");
    } else if (t >= 115.0) {
        set3(o, "lively, bouncing movement", "upbeat tempo");
    } else if (t >= 90.0) {
        if (reg >= 0.5) {
            set3(o, "even, flowing movement", "moderate tempo + steady beat");
        } else {
            set3(o, "loose, swaying movement", "moderate tempo + loose beat");
        }
    } else if (!is_minor(f) && e < 0.4) {
        set3(o, "serene, gentle drift", "slow tempo + major mode + soft");
    } else if (e < 0.4) {
        set3(o, "slow, drifting stillness", "slow tempo + soft");
    } else {
        set3(o, "slow, heavy sway", "slow tempo + loud");
    }
}

static void frag_texture(const m2p_features *f, frag *o) {
    double p = unit(f->percussiveness);
    double b = unit(f->brightness);
    double dr = nonneg(f->dynamic_range_db, 200.0);
    o->priority = 75;
    (void)snprintf(o->feature, sizeof o->feature, "percussiveness=%.2f, brightness=%.2f, dynamic_range=%.1f dB", p, b,
                   dr);
    if (p >= 0.6) {
        set3(o, "punchy, staccato shapes", "high percussiveness");
    } else if (p < 0.3 && dr >= 18.0) {
        set3(o, "sweeping, layered swells", "sustained sound + wide dynamics");
    } else if (p >= 0.4 && b >= 0.6) {
        set3(o, "crisp, glittering fragments", "percussive + bright");
    } else if (p < 0.3 && b >= 0.6) {
        set3(o, "shimmering, airy haze", "sustained + bright sound");
    } else if (p < 0.3) {
        set3(o, "smooth, velvety washes", "sustained, mellow sound");
    } else {
        set3(o, "layered, textured strokes", "mixed percussive and tonal sound");
    }
}

static void frag_energy(const m2p_features *f, frag *o) {
    double e = unit(f->energy);
    double db = f->loudness_db;
    if (!(db >= -200.0 && db <= 20.0)) {
        db = -200.0;
    }
    o->priority = 80;
    (void)snprintf(o->feature, sizeof o->feature, "energy=%.2f, loudness=%.1f dBFS", e, db);
    if (e >= 0.75) {
        set3(o, "explosive, high energy", "very high energy");
    } else if (e >= 0.55) {
        set3(o, "vibrant, lively energy", "high energy");
    } else if (e >= 0.35) {
        set3(o, "restrained, measured energy", "medium energy");
    } else {
        set3(o, "quiet, intimate hush", "low energy");
    }
}

/* The song's arc from a sequence of energies (sections or the energy curve).
 * peak_bright: brightness at the peak (<0 when unknown). */
static void arc_from(const double *e, size_t n, double peak_bright, const char *what, frag *o) {
    size_t imax = 0;
    size_t imin = 0;
    for (size_t i = 1; i < n; i++) {
        if (e[i] > e[imax]) {
            imax = i;
        }
        if (e[i] < e[imin]) {
            imin = i;
        }
    }
    double first = e[0];
    double last = e[n - 1];
    double range = e[imax] - e[imin];
    double rise = e[imax] - first;
    double fall = e[imax] - last;
    int jumps = 0;
    for (size_t i = 1; i < n; i++) {
        if (fabs(e[i] - e[i - 1]) >= 0.25) {
            jumps++;
        }
    }
    (void)snprintf(o->feature, sizeof o->feature, "%s: first=%.2f, peak=%.2f at %zu/%zu, last=%.2f", what, first,
                   e[imax], imax + 1, n, last);
    if (range < 0.15) {
        set3(o, "steady, unwavering atmosphere", "even energy throughout");
    } else if (rise >= 0.3 && 2 * imax >= n && fall < 0.2) {
        if (peak_bright >= 0.5) {
            set3(o, "building to a bright climax", "big energy rise toward the end + bright peak");
        } else {
            set3(o, "building to a powerful climax", "big energy rise toward the end");
        }
    } else if (rise >= 0.3 && fall >= 0.3) {
        set3(o, "rising to a peak, then fading", "energy peaks mid-song");
    } else if (first - last >= 0.3) {
        set3(o, "fading into quiet", "energy falls toward the end");
    } else if (jumps >= 2) {
        set3(o, "surging waves of contrast", "repeated big energy changes");
    } else {
        set3(o, "gently evolving atmosphere", "moderate energy changes");
    }
}

static void frag_arc(const m2p_features *f, frag *o) {
    enum { MAXS = 64 };
    double e[MAXS];
    o->priority = 60;
    if (f->sections != NULL && f->n_sections >= 2) {
        size_t n = f->n_sections < MAXS ? f->n_sections : MAXS;
        size_t imax = 0;
        for (size_t i = 0; i < n; i++) {
            e[i] = unit(f->sections[i].energy);
            if (e[i] > e[imax]) {
                imax = i;
            }
        }
        arc_from(e, n, unit(f->sections[imax].brightness), "section energy", o);
        return;
    }
    if (f->energy_curve != NULL && f->n_energy >= 4) {
        /* Quarters of the loudness curve. */
        size_t n = (size_t)f->n_energy;
        for (size_t q = 0; q < 4; q++) {
            size_t a = q * n / 4;
            size_t b = (q + 1) * n / 4;
            double s = 0.0;
            for (size_t i = a; i < b; i++) {
                s += unit((double)f->energy_curve[i]);
            }
            e[q] = b > a ? s / (double)(b - a) : 0.0;
        }
        arc_from(e, 4, -1.0, "energy by quarter", o);
        return;
    }
    (void)snprintf(o->feature, sizeof o->feature, "sections=%zu", f->n_sections);
    set3(o, "steady, unwavering atmosphere", "a single section");
}

/* The arc fragment of one section (per-section prompts): where it sits in
 * the song's energy. f->sections has n_sections > section. */
static void frag_section_arc(const m2p_features *f, size_t section, frag *o) {
    const m2p_section *sec = f->sections;
    size_t n = f->n_sections;
    size_t s = section;
    size_t imax = 0;
    double lo = unit(sec[0].energy);
    for (size_t i = 1; i < n; i++) {
        if (unit(sec[i].energy) > unit(sec[imax].energy)) {
            imax = i;
        }
        lo = unit(sec[i].energy) < lo ? unit(sec[i].energy) : lo;
    }
    double e = unit(sec[s].energy);
    double before = s > 0 ? unit(sec[s - 1].energy) : e;
    double after = s + 1 < n ? unit(sec[s + 1].energy) : e;
    o->priority = 88; /* what makes this section's image differ: kept early */
    (void)snprintf(o->feature, sizeof o->feature, "section %zu/%zu (%.0f-%.0f s): energy=%.2f, brightness=%.2f", s + 1,
                   n, nonneg(sec[s].start_s, 1e6), nonneg(sec[s].end_s, 1e6), e, unit(sec[s].brightness));
    if (s == imax && e - lo >= 0.3) {
        if (unit(sec[s].brightness) >= 0.5) {
            set3(o, "at its peak, a blazing climax", "the loudest section, bright");
        } else {
            set3(o, "at its peak, a powerful climax", "the loudest section");
        }
    } else if (s == 0) {
        if (after > e + 0.15) {
            set3(o, "an opening, gathering momentum", "first section, energy rises next");
        } else {
            set3(o, "a quiet opening, slowly unfolding", "first section");
        }
    } else if (s + 1 == n && e < before - 0.15) {
        set3(o, "a fading finale", "last section, energy falls");
    } else if (s + 1 == n) {
        set3(o, "a closing resolution", "last section");
    } else if (e > before + 0.15) {
        set3(o, "rising, gathering intensity", "energy rises from the previous section");
    } else if (e < before - 0.15) {
        set3(o, "receding into calm", "energy falls from the previous section");
    } else {
        set3(o, "a sustained passage", "energy close to the previous section");
    }
}

static void frag_tempo(const m2p_features *f, frag *o) {
    double t = nonneg(f->tempo_bpm, 400.0);
    o->priority = 40;
    (void)snprintf(o->feature, sizeof o->feature, "tempo=%.0f BPM", t);
    if (t <= 0.0 || unit(f->tempo_confidence) < 0.1) {
        set3(o, "free tempo", "no steady beat");
    } else if (t >= 140.0) {
        set3(o, "fast-paced", "tempo of 140 BPM or more");
    } else if (t >= 115.0) {
        set3(o, "upbeat", "tempo of 115-140 BPM");
    } else if (t >= 90.0) {
        set3(o, "moderate pace", "tempo of 90-115 BPM");
    } else {
        set3(o, "slow, unhurried", "tempo under 90 BPM");
    }
}

static void frag_key(const m2p_features *f, frag *o) {
    o->priority = 35;
    double kc = unit(f->key_confidence);
    if (!key_known(f)) {
        (void)snprintf(o->feature, sizeof o->feature, "key_confidence=%.2f", kc);
        set3(o, "ambiguous tonality", "no clear key");
        return;
    }
    const char *mode = is_minor(f) ? "minor" : "major";
    (void)snprintf(o->text, sizeof o->text, "%s %s key", k_key_names[f->key], mode);
    (void)snprintf(o->feature, sizeof o->feature, "key=%s %s, key_confidence=%.2f", k_key_names[f->key], mode, kc);
    (void)snprintf(o->reason, sizeof o->reason, "detected key");
}

static void frag_genre(const m2p_features *f, frag *o) {
    double p = unit(f->percussiveness);
    double t = nonneg(f->tempo_bpm, 400.0);
    double d = unit(f->danceability);
    double b = unit(f->brightness);
    double e = unit(f->energy);
    double dr = nonneg(f->dynamic_range_db, 200.0);
    o->priority = 50;
    (void)snprintf(o->feature, sizeof o->feature,
                   "percussiveness=%.2f, tempo=%.0f BPM, danceability=%.2f, energy=%.2f, dynamic_range=%.1f dB", p, t,
                   d, e, dr);
    if (p >= 0.5 && t >= 118.0 && t <= 160.0 && d >= 0.6 && b >= 0.45) {
        set3(o, "electronic dance music", "percussive, danceable, 118-160 BPM, bright");
    } else if (p >= 0.45 && t >= 70.0 && t <= 105.0 && d >= 0.55) {
        set3(o, "hip-hop beat", "percussive, danceable, 70-105 BPM");
    } else if (p < 0.3 && dr >= 18.0) {
        set3(o, "orchestral, cinematic score", "sustained sound + wide dynamics");
    } else if (p < 0.3 && e < 0.4 && b < 0.55) {
        set3(o, "gentle acoustic piano", "sustained, soft and mellow");
    } else if (p >= 0.4 && e >= 0.65) {
        set3(o, "driving rock", "percussive + high energy");
    } else if (e < 0.35) {
        set3(o, "ambient soundscape", "low energy");
    } else {
        set3(o, "modern pop", "no stronger cue");
    }
}

/* Copies user text (title/artist) bounded: invalid UTF-8 → '?', control
 * characters and whitespace runs → one space, trimmed, never cut inside a
 * character. */
static void clean_user_text(const char *in, char *buf, size_t cap) {
    size_t o = 0;
    bool space = true; /* drops leading whitespace */
    size_t n = strlen(in);
    size_t i = 0;
    while (i < n) {
        ucs4_t uc = 0;
        int k = u8_mbtoucr(&uc, (const uint8_t *)in + i, n - i);
        if (k <= 0) {
            uc = '?';
            k = 1;
        }
        bool ws = uc < 0x20 || uc == 0x7f || uc == ' ' || (uc >= 0x80 && uc < 0xa0);
        if (ws) {
            if (!space && o + 1 < cap) {
                buf[o++] = ' ';
                space = true;
            }
            i += (size_t)k;
            continue;
        }
        if (o + (size_t)k >= cap) {
            break;
        }
        if (uc == '?' && k == 1) {
            buf[o++] = '?';
        } else {
            memcpy(buf + o, in + i, (size_t)k);
            o += (size_t)k;
        }
        space = false;
        i += (size_t)k;
    }
    while (o > 0 && buf[o - 1] == ' ') {
        o--;
    }
    buf[o] = '\0';
}

static bool frag_user(const char *value, int var, frag *o) {
    if (value == NULL) {
        return false;
    }
    clean_user_text(value, o->text, USER_TEXT_MAX + 1 < sizeof o->text ? USER_TEXT_MAX + 1 : sizeof o->text);
    if (o->text[0] == '\0') {
        return false;
    }
    o->priority = var == M2P_VAR_TITLE ? 55 : 45;
    (void)snprintf(o->feature, sizeof o->feature, "%s given", var == M2P_VAR_TITLE ? "title" : "artist");
    (void)snprintf(o->reason, sizeof o->reason, "from the song's metadata");
    return true;
}

/* Fills o for variable var; false when the variable has no text (no title).
 * f: the features (per-section: with the section's energy and brightness);
 * section: the section index, or -1 for the whole song. */
static bool make_fragment(const m2p_prompt_input *in, const m2p_features *f, long section, int var, frag *o) {
    memset(o, 0, sizeof *o);
    o->var = var;
    if (var == M2P_VAR_ARC && section >= 0) {
        frag_section_arc(f, (size_t)section, o);
        return true;
    }
    switch (var) {
    case M2P_VAR_MOOD:
        frag_mood(f, o);
        return true;
    case M2P_VAR_PALETTE:
        frag_palette(f, o);
        return true;
    case M2P_VAR_COLOR:
        frag_color(f, o);
        return true;
    case M2P_VAR_MOTION:
        frag_motion(f, o);
        return true;
    case M2P_VAR_TEXTURE:
        frag_texture(f, o);
        return true;
    case M2P_VAR_ENERGY:
        frag_energy(f, o);
        return true;
    case M2P_VAR_ARC:
        frag_arc(f, o);
        return true;
    case M2P_VAR_TEMPO:
        frag_tempo(f, o);
        return true;
    case M2P_VAR_KEY:
        frag_key(f, o);
        return true;
    case M2P_VAR_GENRE_HINT:
        frag_genre(in->features, o);
        return true; /* the whole song's */
    case M2P_VAR_TITLE:
        return frag_user(in->title, var, o);
    case M2P_VAR_ARTIST:
        return frag_user(in->artist, var, o);
    default:
        return false;
    }
}

/* --- filling the template --------------------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static m2p_code buf_add(buf *b, const char *s, size_t n) {
    size_t need;
    if (!m2p_size_add(b->n, n, &need) || !m2p_size_add(need, 1, &need)) {
        return M2P_E_NOMEM;
    }
    if (need > b->cap) {
        size_t cap = b->cap < 256 ? 256 : b->cap;
        while (cap < need) {
            cap *= 2;
        }
        char *q = m2p_realloc(b->p, cap);
        if (q == NULL) {
            return M2P_E_NOMEM;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return M2P_OK;
}

static bool is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Tidies a filled template from s into out: ASCII whitespace runs → one
 * space, empty comma-separated items dropped (", ," and leading/trailing
 * commas), items joined by ", ", trimmed. out must hold 2 * strlen(s) + 1
 * bytes (each ',' may become ", "). */
static void tidy(const char *s, char *out) {
    size_t n = strlen(s);
    size_t o = 0;
    size_t i = 0;
    bool first_item = true;
    while (i <= n) {
        /* One comma-separated item: s[i .. j). */
        size_t j = i;
        while (j < n && s[j] != ',') {
            j++;
        }
        size_t a = i;
        size_t b = j;
        while (a < b && is_ws(s[a])) {
            a++;
        }
        while (b > a && is_ws(s[b - 1])) {
            b--;
        }
        if (b > a) {
            if (!first_item) {
                out[o++] = ',';
                out[o++] = ' ';
            }
            bool space = false;
            for (size_t k = a; k < b; k++) {
                if (is_ws(s[k])) {
                    space = true;
                    continue;
                }
                if (space) {
                    out[o++] = ' ';
                    space = false;
                }
                out[o++] = s[k];
            }
            first_item = false;
        }
        i = j + 1;
    }
    out[o] = '\0';
}

/* The text for the current kept flags; *out owned by the caller. */
static m2p_code fill(const m2p_template *t, const frag *frags, const bool *kept, size_t n_frags, char **out) {
    buf b = {0};
    m2p_code rc = buf_add(&b, "", 0);
    for (size_t i = 0; rc == M2P_OK && i < t->n_parts; i++) {
        const m2p_tpl_part *part = &t->parts[i];
        if (part->kind == M2P_TPL_TEXT) {
            rc = buf_add(&b, part->text, strlen(part->text));
            continue;
        }
        for (size_t k = 0; k < n_frags; k++) {
            if (frags[k].var == part->var && kept[k]) {
                rc = buf_add(&b, frags[k].text, strlen(frags[k].text));
                break;
            }
        }
    }
    if (rc != M2P_OK) {
        m2p_free(b.p);
        return rc;
    }
    size_t cap;
    char *text = NULL;
    if (m2p_size_mul(b.n, 2, &cap) && m2p_size_add(cap, 1, &cap)) {
        text = m2p_malloc(cap);
    }
    if (text == NULL) {
        m2p_free(b.p);
        return M2P_E_NOMEM;
    }
    tidy(b.p, text);
    m2p_free(b.p);
    *out = text;
    return M2P_OK;
}

/* Is position i of text (0 < i < n) a place to cut? Words: before a space.
 * Characters: not inside a UTF-8 sequence. */
static bool cut_point(const char *text, size_t i, bool words) {
    if (words) {
        return is_ws(text[i]);
    }
    return ((unsigned char)text[i] & 0xC0) != 0x80;
}

/* The longest cut prefix text[0, cut) within max_tokens, by binary search
 * over cut points (token counts only grow with the prefix at these points
 * in practice; the final count is checked by the caller). 0 when none fits. */
static m2p_code longest_fit(const m2p_clip_tokenizer *tok, char *text, size_t n, int max_tokens, bool words,
                            size_t *cut, m2p_error *err) {
    size_t lo = 0; /* fits (the empty prefix always does) */
    size_t hi = n; /* does not fit */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        size_t m = mid;
        while (m > lo && !cut_point(text, m, words)) {
            m--;
        }
        if (m <= lo) {
            m = mid;
            while (m < hi && !cut_point(text, m, words)) {
                m++;
            }
            if (m >= hi) {
                break; /* no cut point strictly between lo and hi */
            }
        }
        char saved = text[m];
        text[m] = '\0';
        int cnt = 0;
        m2p_code rc = m2p_clip_count(tok, text, &cnt, err);
        text[m] = saved;
        if (rc != M2P_OK) {
            return rc;
        }
        if (cnt <= max_tokens) {
            lo = m;
        } else {
            hi = m;
        }
    }
    *cut = lo;
    return M2P_OK;
}

/* Cuts whole words off the end of text until it fits max_tokens (inside the
 * first word, on a character boundary, when even one word is too long). */
static m2p_code cut_to_fit(const m2p_clip_tokenizer *tok, char *text, int max_tokens, int *n_tokens, m2p_error *err) {
    size_t n = strlen(text);
    size_t cut = 0;
    m2p_code rc = longest_fit(tok, text, n, max_tokens, true, &cut, err);
    if (rc == M2P_OK && cut == 0) {
        rc = longest_fit(tok, text, n, max_tokens, false, &cut, err);
    }
    if (rc != M2P_OK) {
        return rc;
    }
    /* No dangling separator at the end. */
    while (cut > 0 && (is_ws(text[cut - 1]) || text[cut - 1] == ',')) {
        cut--;
    }
    text[cut] = '\0';
    return m2p_clip_count(tok, text, n_tokens, err);
}

void m2p_prompt_free(m2p_prompt *p) {
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < p->n_fragments; i++) {
        m2p_free(p->fragments[i].variable);
        m2p_free(p->fragments[i].text);
        m2p_free(p->fragments[i].feature);
        m2p_free(p->fragments[i].reason);
    }
    m2p_free(p->fragments);
    m2p_free(p->positive);
    m2p_free(p->negative);
    m2p_free(p->style);
    m2p_free(p);
}

static m2p_code build(const m2p_prompt_input *in, long section, m2p_prompt **out, m2p_error *err) {
    *out = NULL;
    if (in == NULL || in->features == NULL) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "no features given to the prompt builder");
    }
    /* Per section: the song's features with the section's energy and brightness. */
    m2p_features fs = *in->features;
    if (section >= 0) {
        if (fs.sections == NULL || (size_t)section >= fs.n_sections) {
            return m2p_error_set(err, M2P_E_INVALID_ARG, "section %ld of a song with %zu sections", section,
                                 fs.n_sections);
        }
        fs.energy = fs.sections[section].energy;
        fs.brightness = fs.sections[section].brightness;
    }
    m2p_code rc = M2P_OK;
    m2p_presets *own_presets = NULL;
    m2p_clip_tokenizer *own_tok = NULL;
    m2p_template *tpl = NULL;
    m2p_prompt *p = NULL;
    frag frags[M2P_VAR_COUNT];
    bool kept[M2P_VAR_COUNT];
    size_t n_frags = 0;

    const m2p_presets *presets = in->presets;
    if (presets == NULL) {
        rc = m2p_presets_load(&own_presets, err);
        if (rc != M2P_OK) {
            goto fail;
        }
        presets = own_presets;
    }
    const m2p_preset *preset = NULL;
    rc = m2p_presets_find(presets, in->style != NULL ? in->style : "abstract", &preset, err);
    if (rc != M2P_OK) {
        goto fail;
    }
    rc = m2p_template_parse(in->template_text != NULL ? in->template_text : preset->template_text, &tpl, err);
    if (rc != M2P_OK) {
        goto fail;
    }
    const m2p_clip_tokenizer *tok = in->tokenizer;
    if (tok == NULL) {
        rc = m2p_clip_tokenizer_default(&own_tok, err);
        if (rc != M2P_OK) {
            goto fail;
        }
        tok = own_tok;
    }

    /* One fragment per variable used, in order of first use. */
    for (size_t i = 0; i < tpl->n_parts; i++) {
        if (tpl->parts[i].kind != M2P_TPL_VAR) {
            continue;
        }
        int var = tpl->parts[i].var;
        bool seen = false;
        for (size_t k = 0; k < n_frags; k++) {
            seen = seen || frags[k].var == var;
        }
        if (!seen && make_fragment(in, &fs, section, var, &frags[n_frags])) {
            kept[n_frags] = true;
            n_frags++;
        }
    }

    p = m2p_calloc(1, sizeof *p);
    if (p == NULL) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "prompt");
        goto fail;
    }
    rc = fill(tpl, frags, kept, n_frags, &p->positive);
    if (rc == M2P_OK && p->positive[0] == '\0') {
        rc = m2p_error_set(err, M2P_E_TEMPLATE_EMPTY,
                           "the template gives no text for this song ({title} and {artist} are empty when unknown)");
        goto fail;
    }
    if (rc == M2P_OK) {
        rc = m2p_clip_count(tok, p->positive, &p->n_tokens, err);
    }
    /* Drop the lowest priority (ties: the later variable) until it fits. */
    while (rc == M2P_OK && p->n_tokens > M2P_CLIP_MAX_TOKENS) {
        int drop = -1;
        for (size_t k = 0; k < n_frags; k++) {
            if (kept[k] && (drop < 0 || frags[k].priority < frags[drop].priority ||
                            (frags[k].priority == frags[drop].priority && frags[k].var > frags[drop].var))) {
                drop = (int)k;
            }
        }
        if (drop < 0) {
            break;
        }
        kept[drop] = false;
        p->shortened = true;
        m2p_free(p->positive);
        p->positive = NULL;
        rc = fill(tpl, frags, kept, n_frags, &p->positive);
        if (rc == M2P_OK) {
            rc = m2p_clip_count(tok, p->positive, &p->n_tokens, err);
        }
    }
    if (rc == M2P_OK && p->n_tokens > M2P_CLIP_MAX_TOKENS) {
        p->shortened = true;
        rc = cut_to_fit(tok, p->positive, M2P_CLIP_MAX_TOKENS, &p->n_tokens, err);
    }
    if (rc != M2P_OK) {
        if (rc == M2P_E_NOMEM) {
            (void)m2p_error_set(err, rc, "prompt text");
        }
        goto fail;
    }
    p->negative = m2p_strdup(preset->negative);
    p->style = m2p_strdup(preset->name);
    p->fragments = n_frags > 0 ? m2p_calloc(n_frags, sizeof *p->fragments) : NULL;
    if (p->negative == NULL || p->style == NULL || (n_frags > 0 && p->fragments == NULL)) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "prompt");
        goto fail;
    }
    for (size_t k = 0; k < n_frags; k++) {
        m2p_fragment *fr = &p->fragments[k];
        p->n_fragments = k + 1;
        fr->variable = m2p_strdup(m2p_prompt_variable((size_t)frags[k].var, NULL));
        fr->text = m2p_strdup(frags[k].text);
        fr->feature = m2p_strdup(frags[k].feature);
        fr->reason = m2p_strdup(frags[k].reason);
        fr->priority = frags[k].priority;
        fr->kept = kept[k];
        if (fr->variable == NULL || fr->text == NULL || fr->feature == NULL || fr->reason == NULL) {
            rc = m2p_error_set(err, M2P_E_NOMEM, "prompt fragment");
            goto fail;
        }
    }
    m2p_template_free(tpl);
    m2p_clip_tokenizer_free(own_tok);
    m2p_presets_free(own_presets);
    *out = p;
    return M2P_OK;
fail:
    m2p_prompt_free(p);
    m2p_template_free(tpl);
    m2p_clip_tokenizer_free(own_tok);
    m2p_presets_free(own_presets);
    return rc;
}

m2p_code m2p_prompt_build(const m2p_prompt_input *in, m2p_prompt **out, m2p_error *err) {
    return build(in, -1, out, err);
}

m2p_code m2p_prompt_check_template(const char *template_text, m2p_error *err) {
    m2p_template *t = NULL;
    m2p_code rc = m2p_template_parse(template_text, &t, err);
    m2p_template_free(t);
    return rc;
}

m2p_code m2p_prompt_build_section(const m2p_prompt_input *in, size_t section, m2p_prompt **out, m2p_error *err) {
    if (section > (size_t)LONG_MAX) {
        *out = NULL;
        return m2p_error_set(err, M2P_E_INVALID_ARG, "section %zu", section);
    }
    return build(in, (long)section, out, err);
}

m2p_code m2p_prompt_to_json(const m2p_prompt *p, json_t **out) {
    *out = NULL;
    json_t *o = json_object();
    json_t *arr = json_array();
    if (o == NULL || arr == NULL) {
        json_decref(o);
        json_decref(arr);
        return M2P_E_NOMEM;
    }
    int bad = 0;
    bad |= json_object_set_new(o, "positive", json_string(p->positive != NULL ? p->positive : ""));
    bad |= json_object_set_new(o, "negative", json_string(p->negative != NULL ? p->negative : ""));
    bad |= json_object_set_new(o, "style", json_string(p->style != NULL ? p->style : ""));
    bad |= json_object_set_new(o, "n_tokens", json_integer(p->n_tokens));
    bad |= json_object_set_new(o, "shortened", json_boolean(p->shortened));
    for (size_t i = 0; i < p->n_fragments; i++) {
        const m2p_fragment *f = &p->fragments[i];
        json_t *fo = json_pack("{s:s, s:s, s:s, s:s, s:i, s:b}", "variable", f->variable, "text", f->text, "feature",
                               f->feature, "reason", f->reason, "priority", f->priority, "kept", f->kept ? 1 : 0);
        bad |= json_array_append_new(arr, fo);
    }
    bad |= json_object_set_new(o, "fragments", arr);
    if (bad != 0) {
        json_decref(o);
        return M2P_E_NOMEM;
    }
    *out = o;
    return M2P_OK;
}
