/*
 * audio/synth.c — the deterministic song synthesiser (see synth.h for what a
 * song contains and what is ground truth).
 *
 * How it works: the plan (sections on bar boundaries) and the score (note
 * and drum events, all timed in samples from exact beat positions) are made
 * from the parameters and one private PRNG seeded by p->seed; then each note
 * is rendered by a small wavetable voice (band-limited tables built lazily
 * per waveform and MIDI note, linear interpolation, attack/decay/sustain/
 * linear-release envelope, optional detuned unison, vibrato and a one-pole
 * low-pass) into a dry bus and a reverb send; drums are one-shot samples made
 * once per song. The send goes through a Freeverb-style reverb (4 damped combs
 * + 2 allpasses), the result is faded at the end and normalised to a peak of
 * 0.9. Everything lives in one `synth` value for the length of the call; no
 * global state, so concurrent calls are fine.
 *
 * Invariants: every envelope starts at 0 and ends at 0 (no clicks); no event
 * writes outside [0, n); the same params give the same samples.
 */
#include "audio/synth.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

enum { TBL_BITS = 11, TBL = 1 << TBL_BITS };

/* ---- deterministic randomness ---------------------------------------------------------------- */

typedef struct rng {
    uint64_t s;
} rng;

static uint32_t rng_next(rng *r) { /* splitmix64 */
    r->s += 0x9E3779B97F4A7C15ull;
    uint64_t z = r->s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

static double rng_unit(rng *r) {
    return rng_next(r) / 4294967296.0;
}

static int rng_int(rng *r, int n) {
    return (int)(rng_unit(r) * n);
}

/* ---- waveforms and instruments ---------------------------------------------------------------- */

typedef enum wave { W_MELLOW, W_BRIGHT, W_SAW, W_SQUARE, W_FLUTE, W_BASS, W_COUNT } wave;

typedef enum instr { I_PIANO, I_STRINGS, I_SAWPAD, I_PLUCK, I_LEAD, I_FLUTE, I_BASS, I_SAWBASS, I_COUNT } instr;

typedef struct instr_def {
    wave w; /* main table */
    int w2; /* bright table crossfaded out over bright_tau_s, -1 = none */
    float attack_s;
    float decay_tau_s; /* towards sustain; 0 = stays at 1 */
    float sustain;
    float release_s;
    float bright_tau_s;
    int voices; /* unison voices (1..3), spread over ±detune_cents */
    float detune_cents;
    float vibrato;    /* depth as a fraction of the frequency */
    float lowpass_hz; /* one-pole; 0 = none */
    float gain;
    float send; /* reverb send */
} instr_def;

static const instr_def k_instr[I_COUNT] = {
    [I_PIANO] = {W_MELLOW, W_BRIGHT, 0.003f, 1.2f, 0.0f, 0.08f, 0.25f, 1, 0.0f, 0.0f, 0.0f, 1.0f, 0.25f},
    [I_STRINGS] = {W_SAW, -1, 0.30f, 0.0f, 1.0f, 0.45f, 0.0f, 2, 6.0f, 0.004f, 2200.0f, 0.55f, 0.45f},
    [I_SAWPAD] = {W_SAW, -1, 0.12f, 1.5f, 0.6f, 0.25f, 0.0f, 2, 8.0f, 0.0f, 1800.0f, 0.45f, 0.3f},
    [I_PLUCK] = {W_SAW, -1, 0.003f, 0.12f, 0.0f, 0.05f, 0.0f, 1, 0.0f, 0.0f, 3000.0f, 0.6f, 0.3f},
    [I_LEAD] = {W_SQUARE, -1, 0.008f, 0.4f, 0.7f, 0.08f, 0.0f, 1, 0.0f, 0.002f, 2600.0f, 0.55f, 0.25f},
    [I_FLUTE] = {W_FLUTE, -1, 0.05f, 0.0f, 1.0f, 0.12f, 0.0f, 1, 0.0f, 0.006f, 0.0f, 0.9f, 0.35f},
    [I_BASS] = {W_BASS, -1, 0.006f, 0.6f, 0.55f, 0.06f, 0.0f, 1, 0.0f, 0.0f, 0.0f, 1.0f, 0.05f},
    [I_SAWBASS] = {W_SAW, -1, 0.004f, 0.25f, 0.5f, 0.05f, 0.0f, 1, 0.0f, 0.0f, 700.0f, 1.0f, 0.05f},
};

typedef enum drum { D_KICK, D_SNARE, D_HAT, D_OHAT, D_CRASH, D_COUNT } drum;

typedef struct synth {
    const m2p_synth_params *p;
    int rate;
    size_t n;
    float *mix;  /* dry bus, n samples */
    float *send; /* reverb send, n samples */
    /* The window notes and drums of one bar are rendered into (cache-sized, then added to
     * mix/send): wmix[i] is sample base + i; wlen = min(wcap, n - base). */
    float *wmix, *wsend;
    size_t wcap, wlen;
    int64_t base;
    float *tables[W_COUNT][128];
    float *drum_buf[D_COUNT];
    size_t drum_len[D_COUNT];
    double beat; /* samples per beat */
    float drum_gain, hat_gain;
    rng r;
} synth;

static const int k_major[7] = {0, 2, 4, 5, 7, 9, 11};
static const int k_minor[7] = {0, 2, 3, 5, 7, 8, 10};

static double midi_hz(int m) {
    return 440.0 * pow(2.0, (m - 69) / 12.0);
}

/* Harmonic amplitude of waveform w. */
static double harmonic(wave w, int h) {
    switch (w) {
    case W_MELLOW: {
        static const double a[] = {1.0, 0.35, 0.12, 0.05, 0.02};
        return h <= 5 ? a[h - 1] : 0.0;
    }
    case W_BRIGHT:
        return h <= 14 ? pow(h, -1.1) * (h % 2 == 0 ? 0.8 : 1.0) : 0.0;
    case W_SAW: /* a soft saw: the upper harmonics (fifths, thirds) would pull the key */
        return h <= 16 ? 1.0 / h * exp(-(h - 1) / 4.0) : 0.0;
    case W_SQUARE: { /* a hollow lead, fundamental-heavy */
        static const double a[] = {1.0, 0.15, 0.25, 0.05, 0.1, 0.02, 0.05};
        return h <= 7 ? a[h - 1] : 0.0;
    }
    case W_FLUTE: {
        static const double a[] = {1.0, 0.22, 0.07};
        return h <= 3 ? a[h - 1] : 0.0;
    }
    case W_BASS: {
        static const double a[] = {1.0, 0.45, 0.2, 0.08};
        return h <= 4 ? a[h - 1] : 0.0;
    }
    default:
        return 0.0;
    }
}

/* The band-limited single-cycle table of w for MIDI note m (TBL + 1 floats, peak 1). */
static const float *table_for(synth *s, wave w, int m) {
    if (m < 0) {
        m = 0;
    }
    if (m > 127) {
        m = 127;
    }
    if (s->tables[w][m] != NULL) {
        return s->tables[w][m];
    }
    float *t = m2p_malloc((TBL + 1) * sizeof(float));
    if (t == NULL) {
        return NULL;
    }
    double nyq = 0.45 * s->rate;
    double f = midi_hz(m) * 1.01; /* headroom for vibrato and detune */
    double peak = 0.0;
    for (int i = 0; i < TBL; i++) {
        double x = 0.0;
        double ph = 2.0 * M_PI * i / TBL;
        for (int h = 1; h <= 24 && h * f < nyq; h++) {
            double a = harmonic(w, h);
            if (a != 0.0) {
                x += a * sin(h * ph);
            }
        }
        t[i] = (float)x;
        peak = fabs(x) > peak ? fabs(x) : peak;
    }
    float k = peak > 0 ? (float)(1.0 / peak) : 1.0f;
    for (int i = 0; i < TBL; i++) {
        t[i] *= k;
    }
    t[TBL] = t[0];
    s->tables[w][m] = t;
    return t;
}

static inline float lookup(const float *t, uint32_t ph) {
    uint32_t i = ph >> (32 - TBL_BITS);
    float frac = (float)(ph & ((1u << (32 - TBL_BITS)) - 1)) * (1.0f / (float)(1u << (32 - TBL_BITS)));
    return t[i] + frac * (t[i + 1] - t[i]);
}

/* Renders one note of instrument in starting at sample start, held len samples, then released. */
static m2p_code note(synth *s, instr in, double start_beat, double len_beats, int m, float vel) {
    const instr_def *d = &k_instr[in];
    int64_t start = llround(start_beat * s->beat);
    int64_t len = llround(len_beats * s->beat);
    start -= s->base;
    if (start < 0 || (size_t)start >= s->wlen || len <= 0) {
        return M2P_OK;
    }
    const float *t1 = table_for(s, d->w, m);
    const float *t2 = d->w2 >= 0 ? table_for(s, (wave)d->w2, m) : NULL;
    if (t1 == NULL || (d->w2 >= 0 && t2 == NULL)) {
        return M2P_E_NOMEM;
    }
    const double rate = s->rate;
    int64_t att = (int64_t)(d->attack_s * rate) + 1;
    int64_t rel = (int64_t)(d->release_s * rate) + 1;
    int64_t total = len + rel;
    if ((size_t)(start + total) > s->wlen) {
        total = (int64_t)s->wlen - start;
    }
    double f = midi_hz(m);
    uint32_t inc[3];
    uint32_t ph[3] = {0, 0, 0};
    int nv = d->voices > 3 ? 3 : d->voices;
    for (int v = 0; v < nv; v++) {
        double cents = nv > 1 ? d->detune_cents * (2.0 * v / (nv - 1) - 1.0) : 0.0;
        inc[v] = (uint32_t)(f * pow(2.0, cents / 1200.0) / rate * 4294967296.0);
        ph[v] = v == 0 ? 0 : rng_next(&s->r);
    }
    const float vgain = 1.0f / (float)nv;
    const float dec = d->decay_tau_s > 0 ? (float)exp(-1.0 / (d->decay_tau_s * rate)) : 1.0f;
    const float bdec = d->bright_tau_s > 0 ? (float)exp(-1.0 / (d->bright_tau_s * rate)) : 0.0f;
    /* Higher notes of plucked/struck instruments die away faster. */
    float pdec = dec;
    if (in == I_PIANO) {
        pdec = (float)exp(-1.0 / (d->decay_tau_s * pow(2.0, -(m - 60) / 24.0) * rate));
    }
    const float lp = d->lowpass_hz > 0 ? (float)(1.0 - exp(-2.0 * M_PI * d->lowpass_hz / rate)) : 1.0f;
    /* vibrato: a rotating phasor at 5.3 Hz, depth fading in after 0.2 s */
    const double vw = 2.0 * M_PI * 5.3 / rate;
    const float vc = (float)cos(vw), vs = (float)sin(vw);
    float px = 1.0f, py = 0.0f;
    float depth = 0.0f;
    const int64_t vib_delay = (int64_t)(0.2 * rate);
    const float vib_step = (float)(d->vibrato / (0.3 * rate));
    float x = 1.0f;  /* decaying part of the envelope */
    float bx = 1.0f; /* brightness */
    float y = 0.0f;  /* low-pass state */
    const float g = vel * d->gain;
    const float sustain = d->sustain;
    float *mix = s->wmix + start;
    float *send = s->wsend + start;
    const float sendg = d->send;
    for (int64_t i = 0; i < total; i++) {
        float env;
        if (i < att) {
            env = (float)i / (float)att;
        } else {
            x *= pdec;
            env = sustain + (1.0f - sustain) * x;
        }
        if (i >= len) {
            env *= 1.0f - (float)(i - len) / (float)rel;
        }
        float smp = 0.0f;
        if (d->vibrato > 0.0f) {
            float nx = px * vc - py * vs;
            py = px * vs + py * vc;
            px = nx;
            if (i >= vib_delay && depth < d->vibrato) {
                depth += vib_step;
            }
            float k = 1.0f + depth * py;
            for (int v = 0; v < nv; v++) {
                ph[v] += (uint32_t)((float)inc[v] * k);
                smp += lookup(t1, ph[v]);
            }
        } else {
            for (int v = 0; v < nv; v++) {
                ph[v] += inc[v];
                smp += lookup(t1, ph[v]);
            }
        }
        smp *= vgain;
        if (t2 != NULL) {
            float b = lookup(t2, ph[0]);
            smp += bx * 0.7f * (b - smp);
            bx *= bdec;
        }
        y += lp * (smp - y);
        float o = y * env * g;
        mix[i] += o;
        send[i] += o * sendg;
        if ((i & 1023) == 1023) { /* keep the phasor on the unit circle */
            float r = 1.0f / sqrtf(px * px + py * py);
            px *= r;
            py *= r;
        }
    }
    return M2P_OK;
}

/* ---- drums: one-shot samples made once per song ---------------------------------------------- */

static m2p_code make_drums(synth *s) {
    static const double k_len[D_COUNT] = {0.45, 0.3, 0.12, 0.5, 1.6};
    const double rate = s->rate;
    double kick_hz = midi_hz(28 + (s->p->key + 8) % 12); /* the tonic in [41, 78) Hz: E1..D#2 */
    for (int k = 0; k < D_COUNT; k++) {
        size_t n = (size_t)(k_len[k] * rate);
        float *b = m2p_calloc(n, sizeof(float));
        if (b == NULL) {
            return M2P_E_NOMEM;
        }
        s->drum_buf[k] = b;
        s->drum_len[k] = n;
        double phase = 0.0;
        float hp1 = 0, hp2 = 0, prev = 0, lpn = 0;
        for (size_t i = 0; i < n; i++) {
            double t = i / rate;
            double ramp = fmin(1.0, t / 0.001);             /* 1 ms attack: no click */
            double tail = fmin(1.0, (k_len[k] - t) / 0.01); /* 10 ms fade: ends at 0 */
            float noise = (float)(rng_unit(&s->r) * 2.0 - 1.0);
            double v = 0.0;
            switch (k) {
            case D_KICK: { /* tuned to the tonic (as producers do), so it does not pull the key */
                double fq = kick_hz + 110.0 * exp(-t / 0.035);
                phase += 2.0 * M_PI * fq / rate;
                v = sin(phase) * exp(-t / 0.22) + 0.15 * noise * exp(-t / 0.004);
                break;
            }
            case D_SNARE: {
                phase += 2.0 * M_PI * 185.0 / rate;
                lpn += 0.5f * (noise - lpn);
                v = 0.3 * sin(phase) * exp(-t / 0.05) + 0.8 * (noise - 0.6 * lpn) * exp(-t / 0.11);
                break;
            }
            case D_HAT:
            case D_OHAT:
            case D_CRASH: {
                /* differences of noise: energy high up */
                hp1 = noise - prev;
                prev = noise;
                hp2 = hp1 - 0.3f * hp2;
                double tau = k == D_HAT ? 0.025 : k == D_OHAT ? 0.16 : 0.7;
                v = 0.5 * hp2 * exp(-t / tau);
                break;
            }
            default:
                break;
            }
            b[i] = (float)(v * ramp * (tail > 0 ? tail : 0));
        }
    }
    return M2P_OK;
}

static void hit(synth *s, drum k, double beat, float vel) {
    int64_t start = llround(beat * s->beat);
    start -= s->base;
    if (start < 0 || (size_t)start >= s->wlen) {
        return;
    }
    float g = vel * (k == D_HAT || k == D_OHAT || k == D_CRASH ? s->hat_gain : s->drum_gain);
    static const float k_gain[D_COUNT] = {1.0f, 0.55f, 0.35f, 0.3f, 0.3f};
    static const float k_send[D_COUNT] = {0.02f, 0.25f, 0.05f, 0.1f, 0.3f};
    g *= k_gain[k];
    size_t n = s->drum_len[k];
    if ((size_t)start + n > s->wlen) {
        n = s->wlen - (size_t)start;
    }
    const float *b = s->drum_buf[k];
    for (size_t i = 0; i < n; i++) {
        float o = b[i] * g;
        s->wmix[start + i] += o;
        s->wsend[start + i] += o * k_send[k];
    }
}

/* ---- reverb ------------------------------------------------------------------------------------ */

static m2p_code reverb(synth *s, float wet) {
    static const int k_comb[4] = {1116, 1188, 1277, 1356};
    static const int k_ap[2] = {556, 441};
    const double scale = s->rate / 44100.0;
    float *buf[6] = {0};
    int len[6];
    int pos[6] = {0};
    float damp_state[4] = {0};
    m2p_code rc = M2P_OK;
    for (int i = 0; i < 6; i++) {
        len[i] = (int)((i < 4 ? k_comb[i] : k_ap[i - 4]) * scale) + 1;
        buf[i] = m2p_calloc((size_t)len[i], sizeof(float));
        if (buf[i] == NULL) {
            rc = M2P_E_NOMEM;
            goto done;
        }
    }
    const float fb = 0.80f, damp = 0.3f;
    for (size_t n = 0; n < s->n; n++) {
        float in = s->send[n] * 0.25f;
        float out = 0.0f;
        for (int c = 0; c < 4; c++) {
            float y = buf[c][pos[c]];
            damp_state[c] = y * (1.0f - damp) + damp_state[c] * damp;
            buf[c][pos[c]] = in + damp_state[c] * fb;
            if (++pos[c] >= len[c]) {
                pos[c] = 0;
            }
            out += y;
        }
        for (int a = 4; a < 6; a++) {
            float bo = buf[a][pos[a]];
            buf[a][pos[a]] = out + bo * 0.5f;
            out = bo - out;
            if (++pos[a] >= len[a]) {
                pos[a] = 0;
            }
        }
        s->mix[n] += wet * out;
    }
done:
    for (int i = 0; i < 6; i++) {
        m2p_free(buf[i]);
    }
    return rc;
}

/* ---- the plan --------------------------------------------------------------------------------- */

static const double k_section_energy[4] = {0.45, 0.7, 1.0, 0.5};

m2p_code m2p_synth_plan(const m2p_synth_params *p, m2p_synth_section *out, size_t cap, size_t *n, m2p_error *err) {
    *n = 0;
    m2p_code rc = m2p_synth_check(p, err);
    if (rc != M2P_OK) {
        return rc;
    }
    double bar_s = 240.0 / p->tempo_bpm;
    int bars = (int)ceil(p->seconds / bar_s - 1e-9);
    if (bars < 1) {
        bars = 1;
    }
    m2p_synth_section tmp[M2P_SYNTH_MAX_SECTIONS];
    size_t k = 0;
    if (bars < 4) {
        tmp[k++] = (m2p_synth_section){M2P_SECTION_VERSE, 0, 0, 0, bars, 0};
    } else {
        int intro = bars >= 24 ? 4 : bars >= 12 ? 2 : 1;
        int outro = intro;
        int middle = bars - intro - outro;
        /* 2..6 verse/chorus sections (an even count ends on a chorus), 4-bar multiples; the
         * remainder joins the last one. */
        int parts = middle / 8;
        parts = parts < 2 ? (middle >= 4 ? 2 : 1) : parts > 6 ? 6 : parts - parts % 2;
        int unit = (int)lround((double)middle / 4.0 / parts) * 4;
        if (unit < 1 || unit * (parts - 1) >= middle) {
            unit = middle / parts;
        }
        tmp[k++] = (m2p_synth_section){M2P_SECTION_INTRO, 0, 0, 0, intro, 0};
        int at = intro;
        for (int i = 0; i < parts; i++) {
            int len = i + 1 < parts ? unit : intro + middle - at;
            tmp[k++] = (m2p_synth_section){i % 2 ? M2P_SECTION_CHORUS : M2P_SECTION_VERSE, 0, 0, at, len, 0};
            at += len;
        }
        tmp[k++] = (m2p_synth_section){M2P_SECTION_OUTRO, 0, 0, at, outro, 0};
    }
    for (size_t i = 0; i < k; i++) {
        tmp[i].start_s = tmp[i].first_bar * bar_s;
        tmp[i].end_s = i + 1 < k ? (tmp[i].first_bar + tmp[i].bars) * bar_s : p->seconds;
        tmp[i].energy = k_section_energy[tmp[i].kind];
        if (i < cap) {
            out[i] = tmp[i];
        }
    }
    *n = k;
    return M2P_OK;
}

/* ---- the score -------------------------------------------------------------------------------- */

typedef struct chord {
    int degree;    /* 0..6 on the scale */
    bool harmonic; /* minor V with the raised seventh (a major V) */
} chord;

static const chord k_prog_major[][4] = {
    {{0, 0}, {4, 0}, {5, 0}, {3, 0}}, /* I–V–vi–IV */
    {{0, 0}, {5, 0}, {3, 0}, {4, 0}}, /* I–vi–IV–V */
    {{0, 0}, {3, 0}, {4, 0}, {3, 0}}, /* I–IV–V–IV */
    {{0, 0}, {3, 0}, {0, 0}, {4, 0}}, /* I–IV–I–V */
    {{0, 0}, {2, 0}, {3, 0}, {4, 0}}, /* I–iii–IV–V */
};
/* Minor progressions lean on the major V (harmonic minor's leading tone) or resolve to i, so the
 * key is not heard as its relative major (i–VI–III–VII alone is C major's vi–IV–I–V). */
static const chord k_prog_minor[][4] = {
    {{0, 0}, {3, 0}, {4, 1}, {0, 0}}, /* i–iv–V–i */
    {{0, 0}, {5, 0}, {6, 0}, {0, 0}}, /* i–VI–VII–i */
    {{0, 0}, {6, 0}, {5, 0}, {4, 1}}, /* i–VII–VI–V (Andalusian) */
    {{0, 0}, {3, 0}, {5, 0}, {4, 1}}, /* i–iv–VI–V */
    {{0, 0}, {5, 0}, {3, 0}, {4, 1}}, /* i–VI–iv–V */
};
enum { N_PROG = 5 };

/* Pitch class of scale degree deg (any integer) in the key; octave offset in *oct. */
static int degree_pc(const m2p_synth_params *p, int deg, bool harmonic, int *oct) {
    const int *sc = p->minor ? k_minor : k_major;
    int o = deg >= 0 ? deg / 7 : -((-deg + 6) / 7);
    int d = deg - 7 * o;
    int pc = sc[d];
    if (p->minor && harmonic && d == 6) {
        pc += 1;
    }
    if (oct != NULL) {
        *oct = o;
    }
    return pc;
}

/* MIDI note of pitch class pc (relative to the key) placed in [lo, lo + 12). */
static int place(const m2p_synth_params *p, int pc_rel, int lo) {
    int pc = (p->key + pc_rel) % 12;
    int m = lo + ((pc - lo % 12) + 24) % 12;
    return m;
}

typedef struct mnote {
    float start, len; /* beats within the bar */
    int step;         /* scale step relative to the chord root (strong beats: chord tones) */
} mnote;

typedef struct motif {
    mnote notes[2][8];
    int count[2];
} motif;

static const float k_rhythm_sparse[][8][2] = {
    {{0, 1}, {1, 1}, {2, 2}},
    {{0, 1.5f}, {1.5f, 0.5f}, {2, 2}},
    {{0, 2}, {2, 1}, {3, 1}},
    {{0, 1}, {1, 0.5f}, {1.5f, 0.5f}, {2, 2}},
};
static const int k_rhythm_sparse_n[] = {3, 3, 3, 4};
static const float k_rhythm_dense[][8][2] = {
    {{0, 0.5f}, {0.5f, 0.5f}, {1, 1}, {2, 0.5f}, {2.5f, 0.5f}, {3, 1}},
    {{0, 1}, {1, 0.5f}, {1.5f, 0.5f}, {2, 0.5f}, {2.5f, 0.5f}, {3, 1}},
    {{0, 0.75f}, {0.75f, 0.75f}, {1.5f, 0.5f}, {2, 1}, {3, 1}},
    {{0.5f, 0.5f}, {1, 1}, {2, 0.5f}, {2.5f, 1.5f}},
};
static const int k_rhythm_dense_n[] = {6, 6, 5, 4};

static void make_motif(synth *s, motif *mo, bool dense) {
    int prev = 0;
    for (int b = 0; b < 2; b++) {
        int r = rng_int(&s->r, 4);
        const float(*rh)[2] = dense ? k_rhythm_dense[r] : k_rhythm_sparse[r];
        int cnt = dense ? k_rhythm_dense_n[r] : k_rhythm_sparse_n[r];
        mo->count[b] = cnt;
        for (int i = 0; i < cnt; i++) {
            float st = rh[i][0];
            int step;
            if (st == 0.0f || st == 2.0f) {
                static const int k_tones[] = {0, 2, 4, 7};
                step = k_tones[rng_int(&s->r, 4)];
            } else {
                step = prev + (rng_int(&s->r, 2) ? 1 : -1) * (1 + rng_int(&s->r, 2));
            }
            if (step < -2) {
                step = -2;
            }
            if (step > 9) {
                step = 9;
            }
            mo->notes[b][i] = (mnote){st, rh[i][1], step};
            prev = step;
        }
    }
}

/* Renders bar number `bar` (absolute) of a section. */
static m2p_code render_bar(synth *s, const m2p_synth_section *sec, int bar_in_sec, chord ch, const motif *mo,
                           bool last_bar_of_song) {
    const m2p_synth_params *p = s->p;
    const double b0 = (sec->first_bar + bar_in_sec) * 4.0;
    const bool last_in_sec = bar_in_sec == sec->bars - 1;
    const float e = (float)(0.5 + 0.5 * p->energy);
    const float se = (float)sec->energy;
    m2p_code rc = M2P_OK;
    int oct;
    /* chord tones relative to the key */
    int tones[3];
    for (int j = 0; j < 3; j++) {
        tones[j] = degree_pc(p, ch.degree + 2 * j, ch.harmonic, &oct);
    }
    const int root_pc = tones[0];

#define V(x) ((float)(x) * (0.92f + 0.16f * (float)rng_unit(&s->r))) /* a human touch on the velocity */
    /* drums */
    if (last_bar_of_song) {
        hit(s, D_KICK, b0, V(0.9f));
        hit(s, D_CRASH, b0, V(0.8f));
    } else {
        for (int beat = 0; beat < 4; beat++) {
            bool kick = sec->kind != M2P_SECTION_INTRO || beat % 2 == 0;
            if (kick) {
                hit(s, D_KICK, b0 + beat, V((beat == 0 ? 1.0f : 0.9f) * (0.6f + 0.4f * se)));
            }
            if ((beat == 1 || beat == 3) && sec->kind != M2P_SECTION_INTRO) {
                hit(s, D_SNARE, b0 + beat, V(0.85f * (0.6f + 0.4f * se)));
            }
            bool sixteenths = sec->kind == M2P_SECTION_CHORUS && p->energy > 0.6;
            int per = sixteenths ? 4 : 2;
            for (int k = 0; k < per; k++) {
                float acc = k == 0 ? 1.0f : (k == per / 2 ? 0.8f : 0.55f);
                drum hd = (sec->kind == M2P_SECTION_CHORUS && beat == 3 && k == per / 2) ? D_OHAT : D_HAT;
                hit(s, hd, b0 + beat + (double)k / per, V(acc * e * (0.5f + 0.5f * se)));
            }
        }
        if (sec->kind == M2P_SECTION_CHORUS && bar_in_sec == 0) {
            hit(s, D_CRASH, b0, V(0.7f * e));
        }
        if (sec->kind == M2P_SECTION_VERSE && last_in_sec && p->energy > 0.4) { /* a fill into the chorus */
            hit(s, D_SNARE, b0 + 3.5, V(0.5f));
            hit(s, D_SNARE, b0 + 3.75, V(0.6f));
        }
    }

    /* bass */
    const instr bass = p->style == M2P_SYNTH_ELECTRONIC ? I_SAWBASS : I_BASS;
    const int bass_root = place(p, root_pc, 33); /* A1..G#2 */
    const float bg = 0.5f * (0.7f + 0.3f * se);
    if (last_bar_of_song) {
        rc = note(s, bass, b0, 4.0, place(p, 0, 33), V(bg));
    } else if (sec->kind == M2P_SECTION_INTRO) {
        if (bar_in_sec >= sec->bars / 2) {
            rc = note(s, bass, b0, 3.9, bass_root, V(bg * 0.8f));
        }
    } else if (sec->kind == M2P_SECTION_CHORUS && p->style == M2P_SYNTH_ELECTRONIC) {
        for (int k = 0; k < 8 && rc == M2P_OK; k++) {
            rc = note(s, bass, b0 + k * 0.5, 0.42, bass_root + (k % 2 == 1 ? 12 : 0), V(bg * (k % 2 ? 0.8f : 1.0f)));
        }
    } else if (sec->kind == M2P_SECTION_OUTRO) {
        rc = note(s, bass, b0, 1.9, bass_root, V(bg));
        if (rc == M2P_OK) {
            rc = note(s, bass, b0 + 2, 1.9, bass_root, V(bg * 0.9f));
        }
    } else {
        int fifth = place(p, degree_pc(p, ch.degree + 4, ch.harmonic, NULL), bass_root + 1);
        const int pat[4] = {bass_root, bass_root, fifth, bass_root + (sec->kind == M2P_SECTION_CHORUS ? 12 : 0)};
        for (int k = 0; k < 4 && rc == M2P_OK; k++) {
            rc = note(s, bass, b0 + k, 0.9, pat[k], V(bg * (k == 0 ? 1.0f : 0.85f)));
        }
    }
    if (rc != M2P_OK) {
        return rc;
    }

    /* chords, voiced in [55, 67) (G3..F#4), which leads the voices smoothly */
    const float cg = 0.16f * (0.75f + 0.25f * se);
    for (int j = 0; j < 3 && rc == M2P_OK; j++) {
        int m = place(p, tones[j], 55);
        switch (p->style) {
        case M2P_SYNTH_PIANO:
            if (sec->kind == M2P_SECTION_INTRO || sec->kind == M2P_SECTION_OUTRO || last_bar_of_song) {
                rc = note(s, I_PIANO, b0, 4.0, m, V(cg * 1.2f));
            } else {
                rc = note(s, I_PIANO, b0, 2.0, m, V(cg * 1.2f));
                if (rc == M2P_OK) {
                    rc = note(s, I_PIANO, b0 + 2, 2.0, m, V(cg));
                }
                if (rc == M2P_OK && sec->kind == M2P_SECTION_CHORUS && j == 0) {
                    rc = note(s, I_PIANO, b0 + 1.5, 0.5, m + 12, V(cg * 0.7f));
                }
            }
            break;
        case M2P_SYNTH_ELECTRONIC:
            rc = note(s, I_SAWPAD, b0, 4.0, m, V(cg * 0.9f));
            if (sec->kind != M2P_SECTION_INTRO && !last_bar_of_song) {
                for (int k = 0; k < 4 && rc == M2P_OK; k++) {
                    rc = note(s, I_PLUCK, b0 + k + 0.5, 0.25, m + 12, V(cg * 0.6f * (0.6f + 0.4f * se)));
                }
            }
            break;
        default:
            rc = note(s, I_STRINGS, b0, 4.0, m, V(cg * 1.1f));
            if (rc == M2P_OK && sec->kind == M2P_SECTION_CHORUS) {
                rc = note(s, I_STRINGS, b0, 4.0, m + 12, V(cg * 0.6f));
            }
            break;
        }
    }
    if (rc != M2P_OK) {
        return rc;
    }

    /* melody around the key's tonic in [62, 74) */
    const instr lead = p->style == M2P_SYNTH_PIANO ? I_PIANO : p->style == M2P_SYNTH_ELECTRONIC ? I_LEAD : I_FLUTE;
    const int tonic = place(p, 0, 62);
    const float mg = 0.3f * e * (0.7f + 0.3f * se);
    if (last_bar_of_song) {
        return note(s, lead, b0, 3.5, tonic, V(mg));
    }
    if (mo == NULL) {
        return M2P_OK;
    }
    int half = bar_in_sec % 2;
    for (int i = 0; i < mo->count[half] && rc == M2P_OK; i++) {
        const mnote *mn = &mo->notes[half][i];
        bool final = last_in_sec && i == mo->count[half] - 1;
        int deg = ch.degree + mn->step;
        int m;
        if (final) {
            m = tonic; /* cadence on the tonic at every section end */
        } else {
            int pc = degree_pc(p, deg, ch.harmonic, &oct);
            m = place(p, pc, 62) + (oct > 0 && mn->step >= 7 ? 12 : 0);
            if (m > 81) {
                m -= 12;
            }
        }
        float len = final ? 4.0f - mn->start : mn->len * 0.92f;
        rc = note(s, lead, b0 + mn->start, len, m, V(mg * (mn->start == 0.0f ? 1.0f : 0.85f)));
    }
#undef V
    return rc;
}

static m2p_code compose(synth *s) {
    const m2p_synth_params *p = s->p;
    m2p_synth_section secs[M2P_SYNTH_MAX_SECTIONS];
    size_t nsec = 0;
    m2p_code rc = m2p_synth_plan(p, secs, M2P_SYNTH_MAX_SECTIONS, &nsec, NULL);
    if (rc != M2P_OK) {
        return rc;
    }
    const chord(*progs)[4] = p->minor ? k_prog_minor : k_prog_major;
    int pv = rng_int(&s->r, N_PROG);
    int pc = (pv + 1 + rng_int(&s->r, N_PROG - 1)) % N_PROG;
    motif verse, chorus;
    make_motif(s, &verse, false);
    make_motif(s, &chorus, true);
    const chord cadence[4] = {{3, false}, {4, true}, {0, false}, {0, false}};
    int total_bars = secs[nsec - 1].first_bar + secs[nsec - 1].bars;
    for (size_t i = 0; i < nsec && rc == M2P_OK; i++) {
        const m2p_synth_section *sec = &secs[i];
        for (int b = 0; b < sec->bars && rc == M2P_OK; b++) {
            chord ch;
            const motif *mo = NULL;
            if (sec->kind == M2P_SECTION_OUTRO) {
                int from_end = sec->bars - 1 - b;
                ch = from_end < 4 ? cadence[3 - from_end] : progs[pv][b % 4];
                mo = from_end >= 1 ? &verse : NULL;
            } else if (sec->kind == M2P_SECTION_CHORUS) {
                ch = progs[pc][b % 4];
                mo = &chorus;
            } else {
                ch = progs[pv][b % 4];
                mo = sec->kind == M2P_SECTION_VERSE ? &verse : NULL;
            }
            if (!p->minor) {
                ch.harmonic = false;
            }
            bool last = sec->first_bar + b == total_bars - 1 && total_bars > 1;
            s->base = llround((sec->first_bar + b) * 4.0 * s->beat);
            if ((size_t)s->base >= s->n) {
                break;
            }
            s->wlen = s->n - (size_t)s->base < s->wcap ? s->n - (size_t)s->base : s->wcap;
            memset(s->wmix, 0, s->wlen * sizeof(float));
            memset(s->wsend, 0, s->wlen * sizeof(float));
            rc = render_bar(s, sec, b, ch, mo, last);
            float *mix = s->mix + s->base;
            float *send = s->send + s->base;
            for (size_t j = 0; j < s->wlen; j++) {
                mix[j] += s->wmix[j];
                send[j] += s->wsend[j];
            }
        }
    }
    return rc;
}

/* ---- public ----------------------------------------------------------------------------------- */

void m2p_synth_defaults(m2p_synth_params *p) {
    memset(p, 0, sizeof *p);
    p->tempo_bpm = 124.0;
    p->key = 9;
    p->minor = true;
    p->seconds = 60.0;
    p->rate = 44100;
    p->seed = 1;
    p->energy = 0.7;
    p->style = M2P_SYNTH_ELECTRONIC;
}

m2p_code m2p_synth_check(const m2p_synth_params *p, m2p_error *err) {
    if (p == NULL) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "synth: no parameters");
    }
    if (!(p->tempo_bpm >= 40.0 && p->tempo_bpm <= 240.0)) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "tempo must be 40..240 BPM");
    }
    if (p->key < 0 || p->key > 11) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "key must be a pitch class 0..11");
    }
    if (!(p->seconds >= 1.0 && p->seconds <= 1800.0)) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "duration must be 1..1800 s");
    }
    if (p->rate < 8000 || p->rate > 96000) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "sample rate must be 8000..96000 Hz");
    }
    if (!(p->energy >= 0.0 && p->energy <= 1.0)) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "energy must be 0..1");
    }
    if ((int)p->style < 0 || p->style >= M2P_SYNTH_STYLE_COUNT) {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "unknown synth style");
    }
    return M2P_OK;
}

m2p_code m2p_synth_song(const m2p_synth_params *p, m2p_audio **out) {
    *out = NULL;
    m2p_code rc = m2p_synth_check(p, NULL);
    if (rc != M2P_OK) {
        return rc;
    }
    synth s;
    memset(&s, 0, sizeof s);
    s.p = p;
    s.rate = p->rate;
    s.n = (size_t)llround(p->seconds * p->rate);
    s.beat = 60.0 * p->rate / p->tempo_bpm;
    s.r.s = 0x6D327053796E7468ull ^ ((uint64_t)p->seed * 0x2545F4914F6CDD1Dull);
    s.drum_gain = p->style == M2P_SYNTH_ORCHESTRAL ? 0.55f : p->style == M2P_SYNTH_PIANO ? 0.8f : 1.0f;
    s.hat_gain = s.drum_gain * (p->style == M2P_SYNTH_ORCHESTRAL ? 0.6f : 1.0f);
    m2p_audio *a = NULL;
    rc = m2p_audio_create(s.n, p->rate, &a);
    if (rc != M2P_OK) {
        goto done;
    }
    s.mix = a->samples;
    s.send = m2p_calloc(s.n == 0 ? 1 : s.n, sizeof(float));
    if (s.send == NULL) {
        rc = M2P_E_NOMEM;
        goto done;
    }
    /* a bar plus the longest tail (notes are at most 4 beats + 0.5 s release, the crash 1.6 s) */
    s.wcap = (size_t)(4.0 * s.beat + 2.0 * p->rate) + 1;
    s.wmix = m2p_malloc_array(s.wcap, sizeof(float));
    s.wsend = m2p_malloc_array(s.wcap, sizeof(float));
    if (s.wmix == NULL || s.wsend == NULL) {
        rc = M2P_E_NOMEM;
        goto done;
    }
    rc = make_drums(&s);
    if (rc == M2P_OK) {
        rc = compose(&s);
    }
    if (rc == M2P_OK) {
        float wet = p->style == M2P_SYNTH_ORCHESTRAL ? 0.45f : p->style == M2P_SYNTH_PIANO ? 0.3f : 0.25f;
        rc = reverb(&s, wet);
    }
    if (rc != M2P_OK) {
        goto done;
    }
    /* fade out over the last bar (at most 3 s), a 5 ms fade in, then normalise to 0.9 */
    size_t fade = (size_t)fmin(4.0 * s.beat, 3.0 * p->rate);
    if (fade > s.n) {
        fade = s.n;
    }
    for (size_t i = 0; i < fade; i++) {
        float g = (float)i / (float)fade;
        s.mix[s.n - 1 - i] *= g * g;
    }
    size_t fin = (size_t)(0.005 * p->rate);
    for (size_t i = 0; i < fin && i < s.n; i++) {
        s.mix[i] *= (float)i / (float)fin;
    }
    float peak = 0.0f;
    for (size_t i = 0; i < s.n; i++) {
        float v = fabsf(s.mix[i]);
        peak = v > peak ? v : peak;
    }
    if (peak > 0.0f) {
        float g = 0.9f / peak;
        for (size_t i = 0; i < s.n; i++) {
            s.mix[i] *= g;
        }
    }
    *out = a;
    a = NULL;
done:
    m2p_audio_free(a);
    m2p_free(s.send);
    m2p_free(s.wmix);
    m2p_free(s.wsend);
    for (int w = 0; w < W_COUNT; w++) {
        for (int m = 0; m < 128; m++) {
            m2p_free(s.tables[w][m]);
        }
    }
    for (int k = 0; k < D_COUNT; k++) {
        m2p_free(s.drum_buf[k]);
    }
    return rc;
}

static const char *const k_style_names[M2P_SYNTH_STYLE_COUNT] = {"piano", "electronic", "orchestral"};

const char *m2p_synth_style_name(m2p_synth_style st) {
    return (int)st >= 0 && st < M2P_SYNTH_STYLE_COUNT ? k_style_names[st] : "unknown";
}

bool m2p_synth_style_parse(const char *name, m2p_synth_style *out) {
    for (int i = 0; name != NULL && i < M2P_SYNTH_STYLE_COUNT; i++) {
        if (strcasecmp(name, k_style_names[i]) == 0) {
            *out = (m2p_synth_style)i;
            return true;
        }
    }
    return false;
}

const char *m2p_synth_section_name(m2p_synth_section_kind k) {
    static const char *const names[] = {"intro", "verse", "chorus", "outro"};
    return (int)k >= 0 && k <= M2P_SECTION_OUTRO ? names[k] : "unknown";
}

bool m2p_synth_key_parse(const char *name, int *pitch_class) {
    static const int k_letter[7] = {9, 11, 0, 2, 4, 5, 7}; /* A B C D E F G */
    if (name == NULL || name[0] == '\0') {
        return false;
    }
    char c = name[0];
    if (c >= 'a' && c <= 'g') {
        c = (char)(c - 'a' + 'A');
    }
    if (c < 'A' || c > 'G') {
        return false;
    }
    int pc = k_letter[c - 'A'];
    const char *r = name + 1;
    if (*r == '#') {
        pc += 1;
        r++;
    } else if (*r == 'b') {
        pc += 11;
        r++;
    }
    if (*r != '\0') {
        return false;
    }
    *pitch_class = pc % 12;
    return true;
}

const char *m2p_synth_key_name(int pc) {
    static const char *const names[12] = {"C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"};
    return pc >= 0 && pc < 12 ? names[pc] : "?";
}
