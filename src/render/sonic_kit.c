/*
 * render/sonic_kit.c — the sonic renderer's toolkit: OKLCH colour, the
 * palette rules, deterministic randomness and value noise, the song view
 * (a features slice with every number clamped), and the per-pixel passes
 * (grain, vignette, paper, scanlines, halftone, ARGB → RGB).
 *
 * Palette rules (documented in docs/notes/render.md):
 *   key → hue: position on the circle of fifths × 30°, starting at C = 25°
 *     (OKLCH hue: C red, G orange, D amber, A yellow-green ... F rose), so
 *     related keys get neighbouring hues;
 *   minor → hue turned 20 % toward blue (250°), lightness −0.07, darker grounds;
 *   grounds (deep, mid) lean 50 % / 30 % toward blue: warm light, cool shade;
 *   energy → accent chroma 0.05..0.19 (and contrast of the painters);
 *   brightness → accent lightness 0.55..0.85 and ground lightness;
 *   seed → hue offset ±35° and the harmony scheme (analogous,
 *     complementary, split complementary, triadic).
 */
#include <math.h>
#include <string.h>

#include "render/sonic_int.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static double clamp01(double v) {
    if (!(v > 0.0)) {
        return 0.0;
    }
    return v > 1.0 ? 1.0 : v;
}

static double clampd(double v, double lo, double hi, double dflt) {
    if (!isfinite(v)) {
        return dflt;
    }
    return v < lo ? lo : (v > hi ? hi : v);
}

/* ------------------------------------------------------------------ colour */

static double srgb_gamma(double c) {
    return c <= 0.0031308 ? 12.92 * c : 1.055 * pow(c, 1.0 / 2.4) - 0.055;
}

static double srgb_linear(double c) {
    return c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4);
}

static bool oklab_to_linear(double L, double a, double b, double out[3]) {
    double l_ = L + 0.3963377774 * a + 0.2158037573 * b;
    double m_ = L - 0.1055613458 * a - 0.0638541728 * b;
    double s_ = L - 0.0894841775 * a - 1.2914855480 * b;
    double l = l_ * l_ * l_;
    double m = m_ * m_ * m_;
    double s = s_ * s_ * s_;
    out[0] = 4.0767416621 * l - 3.3077115913 * m + 0.2309699292 * s;
    out[1] = -1.2684380046 * l + 2.6097574011 * m - 0.3413193965 * s;
    out[2] = -0.0041960863 * l - 0.7034186147 * m + 1.7076147010 * s;
    const double eps = 1e-4;
    return out[0] >= -eps && out[0] <= 1 + eps && out[1] >= -eps && out[1] <= 1 + eps && out[2] >= -eps &&
           out[2] <= 1 + eps;
}

sn_col sn_oklch(double L, double C, double h) {
    L = clamp01(L);
    C = clampd(C, 0.0, 0.4, 0.0);
    double hr = h * M_PI / 180.0;
    double rgb[3];
    if (!oklab_to_linear(L, C * cos(hr), C * sin(hr), rgb)) {
        /* Out of gamut: largest chroma that fits (bisection). */
        double lo = 0.0;
        double hi = C;
        for (int i = 0; i < 14; i++) {
            double mid = 0.5 * (lo + hi);
            if (oklab_to_linear(L, mid * cos(hr), mid * sin(hr), rgb)) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        (void)oklab_to_linear(L, lo * cos(hr), lo * sin(hr), rgb);
    }
    sn_col c = {srgb_gamma(clamp01(rgb[0])), srgb_gamma(clamp01(rgb[1])), srgb_gamma(clamp01(rgb[2]))};
    return c;
}

double sn_lightness(sn_col c) {
    double r = srgb_linear(c.r);
    double g = srgb_linear(c.g);
    double b = srgb_linear(c.b);
    double l = 0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b;
    double m = 0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b;
    double s = 0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b;
    return 0.2104542553 * cbrt(l) + 0.7936177850 * cbrt(m) - 0.0040720468 * cbrt(s);
}

sn_col sn_mix(sn_col a, sn_col b, double t) {
    sn_col c = {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t};
    return c;
}

void sn_source(cairo_t *cr, sn_col c, double alpha) {
    cairo_set_source_rgba(cr, c.r, c.g, c.b, alpha);
}

void sn_stop(cairo_pattern_t *p, double off, sn_col c, double alpha) {
    cairo_pattern_add_color_stop_rgba(p, off, c.r, c.g, c.b, alpha);
}

/* ------------------------------------------------------------- randomness */

void sn_rng_seed(sn_rng *r, uint64_t seed, uint64_t stream) {
    r->s = seed * 0x9E3779B97F4A7C15ull ^ (stream + 0x632BE59BD9B4E019ull);
    (void)sn_next(r);
}

/* splitmix64: tiny, fast, and good enough for art. */
uint64_t sn_next(sn_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double sn_unif(sn_rng *r) {
    return (double)(sn_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

double sn_range(sn_rng *r, double a, double b) {
    return a + (b - a) * sn_unif(r);
}

double sn_gauss(sn_rng *r) {
    double u1 = sn_unif(r);
    double u2 = sn_unif(r);
    if (u1 < 1e-12) {
        u1 = 1e-12;
    }
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

int sn_int(sn_rng *r, int n) {
    return n <= 1 ? 0 : (int)(sn_next(r) % (uint64_t)n);
}

uint32_t sn_hash32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

static double lattice(int x, int y, uint32_t seed) {
    uint32_t h = sn_hash32((uint32_t)x * 0x8da6b343U ^ (uint32_t)y * 0xd8163841U ^ seed * 0xcb1ab31fU);
    return (double)h * (2.0 / 4294967295.0) - 1.0;
}

double sn_noise2(double x, double y, uint32_t seed) {
    double fx = floor(x);
    double fy = floor(y);
    int ix = (int)fx;
    int iy = (int)fy;
    double tx = x - fx;
    double ty = y - fy;
    tx = tx * tx * (3.0 - 2.0 * tx);
    ty = ty * ty * (3.0 - 2.0 * ty);
    double a = lattice(ix, iy, seed);
    double b = lattice(ix + 1, iy, seed);
    double c = lattice(ix, iy + 1, seed);
    double d = lattice(ix + 1, iy + 1, seed);
    return (a + (b - a) * tx) + ((c + (d - c) * tx) - (a + (b - a) * tx)) * ty;
}

double sn_fbm(double x, double y, uint32_t seed) {
    double sum = 0.0;
    double amp = 0.5;
    for (int o = 0; o < 4; o++) {
        sum += amp * sn_noise2(x, y, seed + (uint32_t)o * 101u);
        x = x * 2.03 + 17.1;
        y = y * 2.03 - 9.7;
        amp *= 0.5;
    }
    return sum / 0.9375;
}

/* ------------------------------------------------------------------ song */

void sn_song_init(sn_song *s, const m2p_features *f, int section) {
    memset(s, 0, sizeof *s);
    s->spec = (f->spectrogram != NULL && f->spec_bands > 1 && f->spec_frames > 1) ? f->spectrogram : NULL;
    s->bands = s->spec != NULL ? f->spec_bands : 0;
    s->frames = s->spec != NULL ? f->spec_frames : 0;
    s->curve = (f->energy_curve != NULL && f->n_energy > 1) ? f->energy_curve : NULL;
    s->n_curve = s->curve != NULL ? f->n_energy : 0;
    s->duration_s = clampd(f->duration_s, 0.0, 1e6, 0.0);
    s->tempo = clampd(f->tempo_bpm, 30.0, 300.0, 110.0);
    s->energy = clampd(f->energy, 0.0, 1.0, 0.5);
    s->bright = clampd(f->brightness, 0.0, 1.0, 0.5);
    s->perc = clampd(f->percussiveness, 0.0, 1.0, 0.4);
    s->onset = clampd(f->onset_density, 0.0, 30.0, 2.0);
    s->valence = clampd(f->valence, 0.0, 1.0, 0.5);
    s->arousal = clampd(f->arousal, 0.0, 1.0, 0.5);
    s->dance = clampd(f->danceability, 0.0, 1.0, 0.5);
    double cmax = 0.0;
    for (int i = 0; i < 12; i++) {
        s->chroma[i] = clampd(f->chroma[i], 0.0, 1e6, 0.0);
        cmax = s->chroma[i] > cmax ? s->chroma[i] : cmax;
    }
    for (int i = 0; i < 12; i++) {
        s->chroma[i] = cmax > 0.0 ? s->chroma[i] / cmax : 0.5;
    }
    s->key = (f->key >= 0 && f->key < 12) ? f->key : 0;
    s->minor = f->mode == M2P_MODE_MINOR;
    s->t0 = 0.0;
    s->t1 = 1.0;
    double dur = s->duration_s;
    bool one = section >= 0 && f->sections != NULL && (size_t)section < f->n_sections && dur > 0.0;
    if (one) {
        const m2p_section *sec = &f->sections[section];
        double a = clampd(sec->start_s / dur, 0.0, 1.0, 0.0);
        double b = clampd(sec->end_s / dur, 0.0, 1.0, 1.0);
        if (b < a + 1e-3) {
            b = a + 1e-3 > 1.0 ? 1.0 : a + 1e-3;
            a = b - 1e-3;
        }
        s->t0 = a;
        s->t1 = b;
        s->energy = clampd(sec->energy, 0.0, 1.0, s->energy);
        s->bright = clampd(sec->brightness, 0.0, 1.0, s->bright);
        s->n_secs = 1;
        s->sec_start[0] = 0.0;
        s->sec_end[0] = 1.0;
        s->sec_energy[0] = s->energy;
        s->sec_bright[0] = s->bright;
        s->sec_label[0] = sec->label < 0 ? 0 : sec->label % 1000;
    } else if (f->sections != NULL && dur > 0.0) {
        for (size_t i = 0; i < f->n_sections && s->n_secs < 32; i++) {
            const m2p_section *sec = &f->sections[i];
            double a = clampd(sec->start_s / dur, 0.0, 1.0, 0.0);
            double b = clampd(sec->end_s / dur, 0.0, 1.0, 1.0);
            if (b <= a) {
                continue;
            }
            int k = s->n_secs++;
            s->sec_start[k] = a;
            s->sec_end[k] = b;
            s->sec_energy[k] = clampd(sec->energy, 0.0, 1.0, s->energy);
            s->sec_bright[k] = clampd(sec->brightness, 0.0, 1.0, s->bright);
            s->sec_label[k] = sec->label < 0 ? 0 : sec->label % 1000;
        }
    }
    if (s->n_secs == 0) {
        s->n_secs = 1;
        s->sec_start[0] = 0.0;
        s->sec_end[0] = 1.0;
        s->sec_energy[0] = s->energy;
        s->sec_bright[0] = s->bright;
    }
    /* Beats of the slice, normalised; synthesised from the tempo when absent. */
    double span = (s->t1 - s->t0) * dur;
    if (f->beats != NULL && f->n_beats > 0 && span > 0.0) {
        for (size_t i = 0; i < f->n_beats && s->n_beats < 4096; i++) {
            double t = (f->beats[i] - s->t0 * dur) / span;
            if (isfinite(t) && t >= 0.0 && t <= 1.0) {
                s->beat[s->n_beats++] = t;
            }
        }
    }
    /* Quiet songs still fill the poster: partial normalisation (power 0.7,
     * so loud songs stay visibly louder than quiet ones). */
    s->spec_gain = 1.0;
    s->curve_gain = 1.0;
    if (s->spec != NULL) {
        int hist[101] = {0};
        int total = 0;
        for (int k = 0; k < 64; k++) {
            for (int b = 0; b < 16; b++) {
                double v = sn_spec(s, (b + 0.5) / 16.0, (k + 0.5) / 64.0);
                hist[(int)(v * 100.0)]++;
                total++;
            }
        }
        int acc = 0;
        int p95 = 100;
        for (int i = 0; i <= 100; i++) {
            acc += hist[i];
            if (acc >= total * 95 / 100) {
                p95 = i;
                break;
            }
        }
        double g = pow(0.9 / fmax(p95 / 100.0, 0.05), 0.7);
        s->spec_gain = clampd(g, 1.0, 3.0, 1.0);
    }
    if (s->curve != NULL) {
        double mx = 0.0;
        for (int k = 0; k <= 128; k++) {
            mx = fmax(mx, sn_energy(s, k / 128.0));
        }
        double g = pow(0.95 / fmax(mx, 0.05), 0.7);
        s->curve_gain = clampd(g, 1.0, 3.0, 1.0);
    }
    if (s->n_beats == 0) {
        double secs = span > 0.0 ? span : 180.0;
        int nb = (int)(secs * s->tempo / 60.0);
        nb = nb < 8 ? 8 : (nb > 4096 ? 4096 : nb);
        for (int i = 0; i < nb; i++) {
            s->beat[s->n_beats++] = (i + 0.5) / nb;
        }
    }
}

double sn_energy(const sn_song *s, double t) {
    t = clamp01(t);
    double tt = s->t0 + t * (s->t1 - s->t0);
    if (s->curve != NULL) {
        double x = tt * (s->n_curve - 1);
        int i = (int)x;
        double g = s->curve_gain > 0.0 ? s->curve_gain : 1.0;
        if (i >= s->n_curve - 1) {
            return clamp01(s->curve[s->n_curve - 1] * g);
        }
        double fr = x - i;
        return clamp01((s->curve[i] + (s->curve[i + 1] - s->curve[i]) * fr) * g);
    }
    if (s->spec != NULL) {
        double sum = 0.0;
        for (int k = 0; k < 8; k++) {
            sum += sn_spec(s, (k + 0.5) / 8.0, t);
        }
        return sum / 8.0;
    }
    return s->energy * (0.75 + 0.25 * sin(t * 9.0));
}

double sn_spec(const sn_song *s, double b, double t) {
    b = clamp01(b);
    t = clamp01(t);
    if (s->spec == NULL) {
        double e = s->curve != NULL ? sn_energy(s, t) : s->energy * (0.75 + 0.25 * sin(t * 9.0));
        double c = s->chroma[(int)(b * 36.0) % 12];
        return clamp01(e * (0.3 + 0.7 * pow(1.0 - b, 1.5)) * (0.7 + 0.3 * c));
    }
    double tt = s->t0 + t * (s->t1 - s->t0);
    double fx = tt * (s->frames - 1);
    double fy = b * (s->bands - 1);
    int x0 = (int)fx;
    int y0 = (int)fy;
    x0 = x0 >= s->frames - 1 ? s->frames - 2 : x0;
    y0 = y0 >= s->bands - 1 ? s->bands - 2 : y0;
    double ax = fx - x0;
    double ay = fy - y0;
    const float *r0 = s->spec + (size_t)y0 * (size_t)s->frames;
    const float *r1 = r0 + s->frames;
    double v0 = r0[x0] + (r0[x0 + 1] - r0[x0]) * ax;
    double v1 = r1[x0] + (r1[x0 + 1] - r1[x0]) * ax;
    double v = (v0 + (v1 - v0) * ay) * (s->spec_gain > 0.0 ? s->spec_gain : 1.0);
    return isfinite(v) ? clamp01(v) : 0.0;
}

double sn_spec_band(const sn_song *s, double b0, double b1, double t) {
    double sum = 0.0;
    for (int k = 0; k < 4; k++) {
        sum += sn_spec(s, b0 + (b1 - b0) * (k + 0.5) / 4.0, t);
    }
    return sum / 4.0;
}

/* ---------------------------------------------------------------- palette */

double sn_key_hue(int key) {
    int fifths = ((key % 12 + 12) % 12) * 7 % 12; /* C=0 G=1 D=2 A=3 E=4 B=5 F#=6 ... F=11 */
    return fmod(25.0 + fifths * 30.0, 360.0);
}

static double hue_toward(double h, double target, double t) {
    double d = fmod(target - h + 540.0, 360.0) - 180.0;
    return fmod(h + d * t + 360.0, 360.0);
}

void sn_palette_make(sn_palette *p, const sn_song *s, sn_rng *r) {
    memset(p, 0, sizeof *p);
    double h = sn_key_hue(s->key);
    if (s->minor) {
        h = hue_toward(h, 250.0, 0.2);
    }
    h = fmod(h + sn_range(r, -35.0, 35.0) + 360.0, 360.0);
    p->hue = h;
    p->chroma = 0.05 + 0.14 * s->energy;
    p->light = 0.55 + 0.30 * s->bright - (s->minor ? 0.07 : 0.0);
    p->scheme = sn_int(r, 4);
    static const double offs[4][4] = {
        {30.0, -30.0, 60.0, -12.0},    /* analogous */
        {180.0, 165.0, 20.0, -20.0},   /* complementary */
        {150.0, 210.0, 30.0, -15.0},   /* split complementary */
        {120.0, 240.0, 15.0, -10.0},   /* triadic */
    };
    p->acc[0] = sn_oklch(p->light, p->chroma, h);
    for (int i = 0; i < 4; i++) {
        double L = p->light + sn_range(r, -0.10, 0.10) + (i == 3 ? 0.08 : 0.0);
        double C = p->chroma * sn_range(r, 0.75, 1.1);
        p->acc[i + 1] = sn_oklch(L, C, h + offs[p->scheme][i]);
    }
    /* Warm light, cool shade (the painters' rule): grounds lean toward blue,
     * so dark tones of yellow keys read as dusk, not olive. */
    double dark = s->minor ? 0.11 : 0.15;
    double shade = hue_toward(h, 265.0, 0.5);
    p->deep = sn_oklch(dark + 0.07 * s->bright, 0.03 + 0.03 * s->energy, shade);
    p->mid = sn_oklch(0.30 + 0.14 * s->bright - (s->minor ? 0.05 : 0.0), 0.05 + 0.04 * s->energy,
                      hue_toward(h, 265.0, 0.3));
    p->paper = sn_oklch(0.955 - 0.025 * (1.0 - s->bright), 0.014, hue_toward(h, 85.0, 0.7));
    p->ink = sn_oklch(0.19, 0.025, h);
    p->glow = sn_oklch(0.93, 0.07, hue_toward(h, 75.0, 0.5));
}

/* ----------------------------------------------------------------- pixels */

void sn_post(sn_ctx *c) {
    cairo_surface_t *s = c->surf;
    cairo_surface_flush(s);
    uint8_t *data = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    int w = c->w;
    int h = c->h;
    double cx = 0.5 * w;
    double cy = 0.5 * h;
    double inv_r2 = 1.0 / (cx * cx + cy * cy);
    int gi = (int)(c->grain * 150.0); /* grain 0.05 → about ±7 levels, triangular */
    double vig = c->vignette;
    double paper = c->paper;
    uint32_t seed = sn_hash32(c->seed ^ 0x5eedu);
    /* Paper mottling: fbm on a coarse grid (every G px), two grid rows kept,
     * bilinear per pixel; fibres are the fine grain on top. */
    enum { G = 8, GW = 4096 / G + 3 };
    float g0[GW];
    float g1[GW];
    int gw = w / G + 2;
    int cur = -1;
    if (gw + 1 > GW) {
        paper = 0.0; /* wider than any request allows; skip rather than overrun the rows */
    }
    for (int y = 0; y < h; y++) {
        uint32_t *row = (uint32_t *)(void *)(data + (size_t)y * (size_t)stride);
        double dy = (y - cy) * (y - cy);
        int gy = y / G;
        double fy = (double)(y % G) / G;
        if (paper > 0.0 && gy != cur) {
            for (int k = 0; k < gw && k < GW; k++) {
                g0[k] = (float)sn_fbm(k * 0.45, gy * 0.45, seed);
                g1[k] = (float)sn_fbm(k * 0.45, (gy + 1) * 0.45, seed);
            }
            cur = gy;
        }
        for (int x = 0; x < w; x++) {
            uint32_t px = row[x];
            int r = (int)((px >> 16) & 255);
            int g = (int)((px >> 8) & 255);
            int b = (int)(px & 255);
            double m = 1.0;
            if (vig > 0.0) {
                double d2 = ((x - cx) * (x - cx) + dy) * inv_r2; /* 0 centre .. 1 corner */
                double t = d2 - 0.2;
                m = t > 0.0 ? 1.0 - vig * t * 1.25 : 1.0;
            }
            int add = 0;
            if (gi > 0) {
                uint32_t hsh = sn_hash32((uint32_t)x * 73856093u ^ (uint32_t)y * 19349663u ^ seed);
                int n = (int)(hsh & 255) + (int)((hsh >> 8) & 255) - 255; /* triangular -255..255 */
                add = n * gi / 255;
            }
            if (paper > 0.0) {
                int gx = x / G;
                double fx = (double)(x % G) / G;
                double a = g0[gx] + (g0[gx + 1] - g0[gx]) * fx;
                double bb = g1[gx] + (g1[gx + 1] - g1[gx]) * fx;
                add += (int)((a + (bb - a) * fy) * 7.0 * paper);
            }
            r = (int)(r * m) + add;
            g = (int)(g * m) + add;
            b = (int)(b * m) + add;
            if (c->scanlines > 0.0 && y % 3 == 0) {
                double k = 1.0 - c->scanlines;
                r = (int)(r * k);
                g = (int)(g * k);
                b = (int)(b * k);
            }
            r = r < 0 ? 0 : (r > 255 ? 255 : r);
            g = g < 0 ? 0 : (g > 255 ? 255 : g);
            b = b < 0 ? 0 : (b > 255 ? 255 : b);
            row[x] = 0xFF000000u | ((uint32_t)r << 16) | ((uint32_t)g << 8) | (uint32_t)b;
        }
    }
    cairo_surface_mark_dirty(s);
}

void sn_halftone(cairo_surface_t *dst, cairo_surface_t *mask, sn_col col, double cell, double angle) {
    cairo_surface_flush(dst);
    cairo_surface_flush(mask);
    uint8_t *d = cairo_image_surface_get_data(dst);
    const uint8_t *mk = cairo_image_surface_get_data(mask);
    int ds = cairo_image_surface_get_stride(dst);
    int ms = cairo_image_surface_get_stride(mask);
    int w = cairo_image_surface_get_width(dst);
    int h = cairo_image_surface_get_height(dst);
    double ca = cos(angle) / cell;
    double sa = sin(angle) / cell;
    int cr = (int)(col.r * 255.0 + 0.5);
    int cg = (int)(col.g * 255.0 + 0.5);
    int cb = (int)(col.b * 255.0 + 0.5);
    for (int y = 0; y < h; y++) {
        uint32_t *row = (uint32_t *)(void *)(d + (size_t)y * (size_t)ds);
        const uint8_t *mrow = mk + (size_t)y * (size_t)ms;
        for (int x = 0; x < w; x++) {
            int mv = mrow[x];
            if (mv == 0) {
                continue;
            }
            double u = x * ca + y * sa;
            double v = -x * sa + y * ca;
            double fu = u - floor(u) - 0.5;
            double fv = v - floor(v) - 0.5;
            double dist = sqrt(fu * fu + fv * fv) * cell;         /* px from the dot centre */
            double rad = cell * 0.62 * sqrt(mv / 255.0);          /* dot area follows the tone */
            double cov = rad - dist + 0.5;
            if (cov <= 0.0) {
                continue;
            }
            cov = cov > 1.0 ? 1.0 : cov;
            uint32_t px = row[x];
            int r = (int)((px >> 16) & 255);
            int g = (int)((px >> 8) & 255);
            int b = (int)(px & 255);
            r = (int)(r + (cr - r) * cov);
            g = (int)(g + (cg - g) * cov);
            b = (int)(b + (cb - b) * cov);
            row[x] = 0xFF000000u | ((uint32_t)r << 16) | ((uint32_t)g << 8) | (uint32_t)b;
        }
    }
    cairo_surface_mark_dirty(dst);
}

void sn_to_rgb(cairo_surface_t *s, uint8_t *rgb, size_t stride) {
    cairo_surface_flush(s);
    const uint8_t *data = cairo_image_surface_get_data(s);
    int ss = cairo_image_surface_get_stride(s);
    int w = cairo_image_surface_get_width(s);
    int h = cairo_image_surface_get_height(s);
    for (int y = 0; y < h; y++) {
        const uint32_t *row = (const uint32_t *)(const void *)(data + (size_t)y * (size_t)ss);
        uint8_t *o = rgb + (size_t)y * stride;
        for (int x = 0; x < w; x++) {
            uint32_t px = row[x];
            o[0] = (uint8_t)(px >> 16);
            o[1] = (uint8_t)(px >> 8);
            o[2] = (uint8_t)px;
            o += 3;
        }
    }
}
