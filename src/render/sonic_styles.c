/*
 * render/sonic_styles.c — one painter per style preset: each turns the song
 * view (spectrogram, energy curve, chroma, beats, sections) and the palette
 * into its own visual language, with composition choices drawn from the
 * image's seed. Painters only draw; grain, vignette and paper are applied
 * afterwards from the sn_ctx fields they set (sonic.c), then typography.
 *
 * Path budget: every painter stays under a few thousand cairo fills or
 * strokes at any size, textures are pixel passes (sonic_kit.c), so a
 * 1024x1024 poster costs tens of milliseconds.
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "render/sonic_int.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

#define TAU (2.0 * M_PI)

static double clamp01(double v) {
    return v < 0.0 ? 0.0 : (v > 1.0 ? 1.0 : v);
}

static double smooth(double e0, double e1, double x) {
    double t = clamp01((x - e0) / (e1 - e0));
    return t * t * (3.0 - 2.0 * t);
}

/* ---------------------------------------------------------------- helpers */

static void fill_all(sn_ctx *c, sn_col col) {
    sn_source(c->cr, col, 1.0);
    cairo_paint(c->cr);
}

static void fill_vertical_on(cairo_t *cr, double w, double y0, double y1, const sn_col *cols, const double *offs,
                             int n) {
    cairo_pattern_t *p = cairo_pattern_create_linear(0, y0, 0, y1);
    for (int i = 0; i < n; i++) {
        sn_stop(p, offs[i], cols[i], 1.0);
    }
    cairo_set_source(cr, p);
    cairo_rectangle(cr, 0, y0, w, y1 - y0);
    cairo_fill(cr);
    cairo_pattern_destroy(p);
}

static void fill_vertical(sn_ctx *c, double y0, double y1, const sn_col *cols, const double *offs, int n) {
    fill_vertical_on(c->cr, c->w, y0, y1, cols, offs, n);
}

static void glow(cairo_t *cr, double x, double y, double r, sn_col col, double alpha) {
    cairo_pattern_t *p = cairo_pattern_create_radial(x, y, 0, x, y, r);
    sn_stop(p, 0.0, col, alpha);
    sn_stop(p, 0.35, col, alpha * 0.45);
    sn_stop(p, 1.0, col, 0.0);
    cairo_set_source(cr, p);
    cairo_arc(cr, x, y, r, 0, TAU);
    cairo_fill(cr);
    cairo_pattern_destroy(p);
}

/* A soft layer: smooth things (sky gradients, glows, colour fields, washes)
 * are drawn at 1/f resolution and scaled up bilinearly in one composite,
 * which costs a fraction of drawing wide gradients at full size and is
 * invisible in content that has no edges. Painters draw in full-size
 * coordinates on the returned context. If the layer cannot be made, the
 * main context is returned and drawing happens at full size. */
typedef struct soft {
    cairo_surface_t *surf;
    cairo_t *cr;
    double f;
} soft;

static cairo_t *soft_begin(sn_ctx *c, soft *sl, double f) {
    sl->f = f;
    sl->cr = NULL;
    sl->surf = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)(c->w / f) + 2, (int)(c->h / f) + 2);
    if (cairo_surface_status(sl->surf) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(sl->surf);
        sl->surf = NULL;
        return c->cr;
    }
    sl->cr = cairo_create(sl->surf);
    cairo_scale(sl->cr, 1.0 / f, 1.0 / f);
    cairo_set_tolerance(sl->cr, 0.5);
    return sl->cr;
}

static void soft_end(sn_ctx *c, soft *sl, cairo_operator_t op) {
    if (sl->surf == NULL) {
        return;
    }
    cairo_destroy(sl->cr);
    cairo_t *cr = c->cr;
    cairo_save(cr);
    cairo_scale(cr, sl->f, sl->f);
    cairo_set_source_surface(cr, sl->surf, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_BILINEAR);
    cairo_pattern_set_extend(cairo_get_source(cr), CAIRO_EXTEND_PAD); /* no dark seam at the edges */
    cairo_set_operator(cr, op);
    cairo_rectangle(cr, 0, 0, c->w / sl->f, c->h / sl->f);
    cairo_fill(cr);
    cairo_restore(cr);
    cairo_surface_destroy(sl->surf);
    sl->surf = NULL;
}

/* Smooth curve through n points (Catmull-Rom as Bezier segments); appends to the path. */
static void curve_through(cairo_t *cr, const double *xs, const double *ys, int n, bool move) {
    if (n < 2) {
        return;
    }
    if (move) {
        cairo_move_to(cr, xs[0], ys[0]);
    } else {
        cairo_line_to(cr, xs[0], ys[0]);
    }
    for (int i = 0; i < n - 1; i++) {
        int i0 = i > 0 ? i - 1 : i;
        int i3 = i + 2 < n ? i + 2 : i + 1;
        double c1x = xs[i] + (xs[i + 1] - xs[i0]) / 6.0;
        double c1y = ys[i] + (ys[i + 1] - ys[i0]) / 6.0;
        double c2x = xs[i + 1] - (xs[i3] - xs[i]) / 6.0;
        double c2y = ys[i + 1] - (ys[i3] - ys[i]) / 6.0;
        cairo_curve_to(cr, c1x, c1y, c2x, c2y, xs[i + 1], ys[i + 1]);
    }
}

/* Mountain ridge: y at x-fraction xf from the spectrogram's band range over
 * time (smoothed over a short window), with ridged fbm for rock-like peaks. */
static double ridge_y(const sn_ctx *c, double base, double amp, double b0, double b1, double xf, double rough,
                      uint32_t seed) {
    const sn_song *s = c->song;
    double v = 0.0;
    double wsum = 0.0;
    for (int k = -3; k <= 3; k++) { /* triangular window of ±3 % of the width */
        double w = 4.0 - abs(k);
        v += w * sn_spec_band(s, b0, b1, xf + k * 0.01);
        wsum += w;
    }
    v /= wsum;
    double n = sn_fbm(xf * 5.0, 0.5, seed);
    double ridged = 1.0 - fabs(sn_noise2(xf * 9.0, 1.5, seed + 3u));
    return base - amp * (0.2 + 0.8 * v) - amp * rough * (0.3 * n + 0.35 * ridged * ridged);
}

/* Fills a silhouette under a ridge from x=0 to x=w down to y_bottom. */
static void ridge_fill(sn_ctx *c, double base, double amp, double b0, double b1, double rough, uint32_t seed,
                       double y_bottom, int n) {
    enum { MAXP = 257 };
    double xs[MAXP];
    double ys[MAXP];
    n = n > MAXP ? MAXP : n;
    for (int i = 0; i < n; i++) {
        double xf = (double)i / (n - 1);
        xs[i] = -4.0 + xf * (c->w + 8.0);
        ys[i] = ridge_y(c, base, amp, b0, b1, xf, rough, seed);
    }
    curve_through(c->cr, xs, ys, n, true);
    cairo_line_to(c->cr, c->w + 4.0, y_bottom);
    cairo_line_to(c->cr, -4.0, y_bottom);
    cairo_close_path(c->cr);
}

static void stars(sn_ctx *c, int n, double y_max, sn_col col) {
    cairo_t *cr = c->cr;
    for (int i = 0; i < n; i++) {
        double x = sn_unif(&c->rng) * c->w;
        double y = pow(sn_unif(&c->rng), 1.3) * y_max;
        double r = (0.5 + 1.3 * pow(sn_unif(&c->rng), 3.0)) * c->u;
        sn_source(cr, col, 0.25 + 0.7 * sn_unif(&c->rng) * (1.0 - y / y_max));
        cairo_arc(cr, x, y, r, 0, TAU);
        cairo_fill(cr);
    }
}

/* Colour of section k (by label) from the accents. */
static sn_col section_col(const sn_ctx *c, int k) {
    int lab = c->song->sec_label[k];
    return c->pal.acc[(lab * 2 + 1) % 5];
}

/* Colour at time t: the colour of the section containing t, blended at borders. */
static sn_col time_col(const sn_ctx *c, double t) {
    const sn_song *s = c->song;
    for (int k = 0; k < s->n_secs; k++) {
        if (t >= s->sec_start[k] && t <= s->sec_end[k]) {
            sn_col a = section_col(c, k);
            double edge = 0.03;
            if (k + 1 < s->n_secs && t > s->sec_end[k] - edge) {
                double f = (t - (s->sec_end[k] - edge)) / (2 * edge);
                return sn_mix(a, section_col(c, k + 1), clamp01(f));
            }
            return a;
        }
    }
    return c->pal.acc[0];
}

/* Third-point focal positions, chosen by the seed. */
static void focal(sn_ctx *c, double *fx, double *fy) {
    static const double xs[3] = {0.5, 0.36, 0.64};
    static const double ys[3] = {0.40, 0.36, 0.44};
    *fx = c->w * xs[sn_int(&c->rng, 3)];
    *fy = c->h * ys[sn_int(&c->rng, 3)];
}

/* ------------------------------------------------------------- abstract */

static void paint_abstract(sn_ctx *c) {
    cairo_t *cr = c->cr;
    const sn_song *s = c->song;
    const sn_palette *p = &c->pal;
    double W = c->w;
    double H = c->h;
    double u = c->u;
    double fx;
    double fy;
    focal(c, &fx, &fy);
    double R = fmin(W, H) * sn_range(&c->rng, 0.20, 0.27);
    soft sl;
    cairo_t *sc = soft_begin(c, &sl, 4.0);
    cairo_pattern_t *bg = cairo_pattern_create_radial(fx, fy, 0, fx, fy, 0.85 * hypot(W, H));
    sn_stop(bg, 0.0, p->mid, 1.0);
    sn_stop(bg, 0.6, p->deep, 1.0);
    sn_stop(bg, 1.0, sn_mix(p->deep, p->ink, 0.5), 1.0);
    cairo_set_source(sc, bg);
    cairo_paint(sc);
    cairo_pattern_destroy(bg);
    /* Colour fields, and the halo of the focal point. */
    cairo_set_operator(sc, CAIRO_OPERATOR_SCREEN);
    int nf = 4 + sn_int(&c->rng, 3);
    for (int i = 0; i < nf; i++) {
        double x = W * sn_range(&c->rng, -0.1, 1.1);
        double y = H * sn_range(&c->rng, -0.1, 0.9);
        glow(sc, x, y, W * sn_range(&c->rng, 0.25, 0.55), p->acc[(i + 1) % 5], 0.18 + 0.22 * s->energy);
    }
    glow(sc, fx, fy, R * 1.9, p->glow, 0.22 + 0.2 * s->bright);
    soft_end(c, &sl, CAIRO_OPERATOR_SOURCE);
    cairo_set_operator(cr, CAIRO_OPERATOR_SCREEN);
    /* Ribbons from the energy curve and band groups. */
    int nr = 3 + (int)lround(s->arousal * 4.0);
    double phase = sn_range(&c->rng, 0, TAU);
    double tilt = sn_range(&c->rng, -0.12, 0.12);
    /* The seed turns and shifts the whole flow: a different composition each time. */
    double turn = sn_range(&c->rng, -0.6, 0.6);
    double shift = H * sn_range(&c->rng, -0.12, 0.08);
    cairo_save(cr);
    cairo_translate(cr, W * 0.5, H * 0.5 + shift);
    cairo_rotate(cr, turn);
    cairo_scale(cr, 1.35, 1.0);
    cairo_translate(cr, -W * 0.5, -H * 0.5);
    enum { NP = 96 };
    double tx[NP];
    double ty[NP];
    double bx[NP];
    double by[NP];
    for (int r = 0; r < nr; r++) {
        double b0 = (double)r / nr;
        double b1 = (double)(r + 1) / nr;
        double base = H * (0.50 + 0.22 * ((double)r / (nr - 1 + 1e-9) - 0.5)) + H * 0.12;
        double amp = H * (0.16 + 0.10 * s->energy);
        double freq = sn_range(&c->rng, 1.0, 2.5);
        for (int i = 0; i < NP; i++) {
            double t = (double)i / (NP - 1);
            double e = 0.0;
            double v = 0.0;
            for (int k = -3; k <= 3; k++) { /* a short window: ribbons flow, they do not step */
                double w = (4.0 - abs(k)) / 16.0;
                e += sn_energy(s, t + k * 0.012) * w;
                v += sn_spec_band(s, b0, b1, t + k * 0.012) * w;
            }
            double wob = sin(t * TAU * freq + phase + r * 0.9) * H * 0.035;
            double y = base - amp * e + wob + tilt * (t - 0.5) * H;
            double thick = H * (0.012 + 0.085 * v * v);
            tx[i] = bx[NP - 1 - i] = -10 + t * (W + 20);
            ty[i] = y;
            by[NP - 1 - i] = y + thick;
        }
        cairo_pattern_t *g = cairo_pattern_create_linear(0, 0, W, 0);
        sn_stop(g, 0.0, p->acc[(r + 1) % 5], 0.15);
        sn_stop(g, 0.45, p->acc[(r + 2) % 5], 0.75);
        sn_stop(g, 1.0, p->acc[(r + 3) % 5], 0.25);
        curve_through(cr, tx, ty, NP, true);
        curve_through(cr, bx, by, NP, false);
        cairo_close_path(cr);
        cairo_set_source(cr, g);
        cairo_fill(cr);
        curve_through(cr, tx, ty, NP, true);
        sn_source(cr, p->glow, 0.35);
        cairo_set_line_width(cr, 1.1 * u);
        cairo_stroke(cr);
        cairo_pattern_destroy(g);
    }
    cairo_restore(cr);
    /* Polar sunburst: rays over time (spectrum energy), chroma petals. */
    double rot = sn_range(&c->rng, 0, TAU);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    int nrays = 180;
    for (int i = 0; i < nrays; i++) {
        double t = (double)i / nrays;
        double a = rot + t * TAU;
        double e = sn_spec_band(s, 0.0, 0.5, t);
        double r0 = R * 0.42;
        double r1 = R * (0.5 + 0.65 * e);
        sn_source(cr, sn_mix(time_col(c, t), p->glow, 0.35), 0.55);
        cairo_set_line_width(cr, 1.3 * u);
        cairo_move_to(cr, fx + r0 * cos(a), fy + r0 * sin(a));
        cairo_line_to(cr, fx + r1 * cos(a), fy + r1 * sin(a));
        cairo_stroke(cr);
    }
    cairo_set_operator(cr, CAIRO_OPERATOR_OVER);
    /* The core: a lit disc, and the twelve pitch classes as beads on a ring
     * (bead size = how much the song uses that note). */
    /* A luminous core rather than a ball: hot centre, the key's colour, a soft edge. */
    cairo_pattern_t *core = cairo_pattern_create_radial(fx, fy, 0, fx, fy, R * 0.42);
    sn_stop(core, 0.0, sn_mix(p->glow, (sn_col){1, 1, 1}, 0.7), 1.0);
    sn_stop(core, 0.45, sn_mix(p->glow, p->acc[0], 0.5), 1.0);
    sn_stop(core, 0.86, p->acc[0], 1.0);
    sn_stop(core, 1.0, p->acc[0], 0.0);
    cairo_set_source(cr, core);
    cairo_arc(cr, fx, fy, R * 0.42, 0, TAU);
    cairo_fill(cr);
    cairo_pattern_destroy(core);
    for (int k = 0; k < 12; k++) {
        double a = -M_PI / 2 + (k - s->key) * TAU / 12.0;
        double rr = R * 1.22;
        sn_source(cr, k == s->key ? p->glow : sn_mix(p->acc[(k % 4) + 1], p->glow, 0.3), 0.9);
        cairo_arc(cr, fx + cos(a) * rr, fy + sin(a) * rr, u * (1.5 + 6.0 * s->chroma[k]), 0, TAU);
        cairo_fill(cr);
    }
    sn_source(cr, p->glow, 0.25);
    cairo_set_line_width(cr, 1.0 * u);
    cairo_arc(cr, fx, fy, R * 1.22, 0, TAU);
    cairo_stroke(cr);
    c->grain = 0.045;
    c->vignette = 0.45;
}

/* ----------------------------------------------------------- album cover */

static void paint_album(sn_ctx *c) {
    cairo_t *cr = c->cr;
    const sn_song *s = c->song;
    const sn_palette *p = &c->pal;
    double W = c->w;
    double H = c->h;
    double u = c->u;
    bool light = !s->minor && s->bright > 0.62 && sn_unif(&c->rng) < 0.5;
    sn_col ground = light ? p->paper : sn_mix(p->deep, p->ink, 0.4);
    fill_all(c, ground);
    /* Four arrangements (seed modulo 4): 0 the classic centred block under a
     * disc; 1 a narrow column of lines on one side, a big disc on the other;
     * 2 wide lines across the cover, the peak off centre, a small disc low;
     * 3 a short band of lines at the bottom under a big disc, like a sun. */
    int arr = (int)(c->seed % 4u);
    double side = sn_unif(&c->rng) < 0.5 ? -1.0 : 1.0;
    double x0 = W * 0.17;
    double x1 = W * 0.83;
    double top = H * 0.13;
    double bottom = H * 0.72;
    double off = sn_range(&c->rng, -0.12, 0.12);
    double dr = fmin(W, H) * sn_range(&c->rng, 0.13, 0.19);
    double dx = W * sn_range(&c->rng, 0.35, 0.65);
    double dy = top + dr * sn_range(&c->rng, -0.1, 0.35);
    double nscale = 1.0;
    if (arr == 1) {
        double cxl = 0.5 + side * 0.2;
        x0 = W * (cxl - 0.22);
        x1 = W * (cxl + 0.22);
        top = H * 0.1;
        dr = fmin(W, H) * sn_range(&c->rng, 0.2, 0.25);
        dx = W * (0.5 - side * sn_range(&c->rng, 0.22, 0.28));
        dy = H * sn_range(&c->rng, 0.3, 0.45);
    } else if (arr == 2) {
        x0 = W * 0.05;
        x1 = W * 0.95;
        top = H * 0.3;
        off = side * sn_range(&c->rng, 0.3, 0.45);
        nscale = 0.7;
        dr = fmin(W, H) * sn_range(&c->rng, 0.07, 0.1);
        dx = W * (0.5 - side * sn_range(&c->rng, 0.2, 0.3));
        dy = H * sn_range(&c->rng, 0.12, 0.18);
    } else if (arr == 3) {
        top = H * 0.48;
        nscale = 0.55;
        dr = fmin(W, H) * sn_range(&c->rng, 0.24, 0.3);
        dx = W * sn_range(&c->rng, 0.4, 0.6);
        dy = top - dr * sn_range(&c->rng, 0.0, 0.3);
    }
    double mx = x0;
    double mxr = W - x1;
    int n = (int)lround((38 + (int)lround(fmin(s->onset, 8.0) / 8.0 * 30.0)) * nscale);
    double gap = (bottom - top) / (n - 1);
    double lift = gap * (5.0 + 6.0 * s->energy) / sqrt(nscale);
    double sharp = 1.2 + 0.8 * s->perc;
    uint32_t nseed = c->seed * 31u + 7u;
    enum { NP = 140 };
    double xs[NP];
    double ys[NP];
    /* A disc behind the lines, the single accent of the cover. */
    soft sl;
    cairo_t *sc = soft_begin(c, &sl, 4.0);
    sn_source(sc, ground, 1.0);
    cairo_paint(sc);
    glow(sc, dx, dy, dr * 2.8, p->acc[1], light ? 0.2 : 0.35);
    soft_end(c, &sl, CAIRO_OPERATOR_SOURCE);
    sn_source(cr, p->acc[1], 0.95);
    cairo_arc(cr, dx, dy, dr, 0, TAU);
    cairo_fill(cr);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    for (int i = 0; i < n; i++) {
        double t = (double)i / (n - 1);
        double y0 = top + i * gap;
        for (int k = 0; k < NP; k++) {
            double xf = (double)k / (NP - 1);
            double xn = xf * 2.0 - 1.0;
            double b = fabs(xn - off) * 0.8;
            double xe = arr == 2 ? (xn - off) / (1.0 + fabs(off)) : xn; /* the peak under off on the wide cover */
            double env = pow(clamp01(1.0 - xe * xe), 2.2);
            double v = pow(0.5 * sn_spec(s, b, t) + 0.25 * sn_spec(s, b, t - 0.006) + 0.25 * sn_spec(s, b, t + 0.006),
                           sharp);
            double jitter = 0.35 + 0.65 * (0.5 + 0.5 * sn_noise2(xf * 14.0, i * 0.8, nseed));
            xs[k] = mx + xf * (W - mx - mxr);
            ys[k] = y0 - lift * v * env * jitter;
        }
        curve_through(cr, xs, ys, NP, true);
        cairo_line_to(cr, W - mxr, y0 + gap * 2);
        cairo_line_to(cr, mx, y0 + gap * 2);
        cairo_close_path(cr);
        sn_source(cr, ground, 1.0);
        cairo_fill(cr);
        curve_through(cr, xs, ys, NP, true);
        sn_col col = time_col(c, t);
        if (light) {
            col = sn_mix(col, p->ink, 0.45);
        } else {
            col = sn_mix(col, p->glow, 0.25);
        }
        sn_source(cr, col, 0.95);
        cairo_set_line_width(cr, (1.6 + 1.0 * s->energy) * u);
        cairo_stroke(cr);
    }
    c->grain = 0.05;
    c->vignette = light ? 0.12 : 0.35;
    c->paper = light ? 0.5 : 0.0;
    c->text_dark = light;
}

/* ----------------------------------------------------------- minimalist */

static void paint_minimalist(sn_ctx *c) {
    cairo_t *cr = c->cr;
    const sn_song *s = c->song;
    const sn_palette *p = &c->pal;
    double W = c->w;
    double H = c->h;
    double u = c->u;
    bool dark = s->minor && s->bright < 0.45;
    sn_col ground = dark ? sn_mix(p->deep, p->mid, 0.3) : p->paper;
    sn_col ink = dark ? sn_mix(p->paper, p->glow, 0.3) : p->ink;
    fill_all(c, ground);
    /* Four arrangements (seed modulo 4): 0 a disc on a third-point over a
     * long horizontal hairline; 1 a small disc high on one side, the line
     * higher and shorter; 2 a large disc rising from the line like a sun
     * (only its upper half); 3 the line standing vertical on one side, time
     * running down, the disc beside it. The line is the song's energy, its
     * ticks the beats, its dots the section starts, in every arrangement. */
    int arr = (int)(c->seed % 4u);
    double side = sn_unif(&c->rng) < 0.5 ? -1.0 : 1.0;
    double fx;
    double fy;
    focal(c, &fx, &fy);
    double R = fmin(W, H) * (0.13 + 0.12 * s->energy);
    /* The line's frame: origin, direction (angle) and length. */
    double ox = W * 0.1;
    double oy = H * 0.70;
    double len = W * 0.8;
    double ang = 0.0;
    bool half_disc = false;
    if (arr == 1) {
        R *= 0.55;
        fx = W * (0.5 + side * sn_range(&c->rng, 0.18, 0.26));
        fy = H * sn_range(&c->rng, 0.2, 0.28);
        ox = W * (side > 0 ? 0.1 : 0.3);
        oy = H * sn_range(&c->rng, 0.5, 0.56);
        len = W * 0.6;
    } else if (arr == 2) {
        R *= 1.55;
        oy = H * sn_range(&c->rng, 0.6, 0.66);
        fx = W * (0.5 + side * sn_range(&c->rng, 0.0, 0.14));
        fy = oy;
        half_disc = true;
    } else if (arr == 3) {
        ang = M_PI / 2.0;
        ox = W * (0.5 + side * sn_range(&c->rng, 0.24, 0.32));
        oy = H * 0.08;
        len = H * 0.6;
        fx = W * (0.5 - side * sn_range(&c->rng, 0.1, 0.16));
        fy = H * sn_range(&c->rng, 0.3, 0.42);
        R *= 0.9;
    }
    cairo_save(cr);
    if (half_disc) {
        cairo_rectangle(cr, 0, 0, W, fy);
        cairo_clip(cr);
    }
    sn_source(cr, p->acc[0], 1.0);
    cairo_arc(cr, fx, fy, R, 0, TAU);
    cairo_fill(cr);
    if (sn_unif(&c->rng) < 0.6) {
        cairo_set_operator(cr, dark ? CAIRO_OPERATOR_SCREEN : CAIRO_OPERATOR_MULTIPLY);
        double a = half_disc ? sn_range(&c->rng, M_PI * 1.15, M_PI * 1.85) : sn_range(&c->rng, 0, TAU);
        sn_source(cr, p->acc[2], 0.85);
        cairo_arc(cr, fx + cos(a) * R * 0.9, fy + sin(a) * R * 0.9, R * sn_range(&c->rng, 0.35, 0.6), 0, TAU);
        cairo_fill(cr);
        cairo_set_operator(cr, CAIRO_OPERATOR_OVER);
    }
    cairo_restore(cr);
    /* One hairline: the energy of the song, drawn in the line's own frame
     * (x along time, up = -y), so a vertical line bulges to the right. */
    cairo_save(cr);
    cairo_translate(cr, ox, oy);
    cairo_rotate(cr, ang);
    if (ang != 0.0) {
        cairo_scale(cr, 1.0, -1.0); /* bulge toward the middle of the poster */
        if (side < 0) {
            cairo_scale(cr, 1.0, -1.0);
        }
    }
    double amp = H * 0.07;
    enum { NP = 160 };
    double xs[NP];
    double ys[NP];
    for (int i = 0; i < NP; i++) {
        double t = (double)i / (NP - 1);
        xs[i] = t * len;
        double e = 0.0;
        for (int k = -3; k <= 3; k++) {
            e += sn_energy(s, t + k * 0.006);
        }
        ys[i] = -e / 7.0 * amp;
    }
    curve_through(cr, xs, ys, NP, true);
    sn_source(cr, ink, 0.9);
    cairo_set_line_width(cr, 1.4 * u);
    cairo_stroke(cr);
    /* Beat ticks under it, every beat (or every bar when dense). */
    int step = s->n_beats > 160 ? 4 : 1;
    cairo_set_line_width(cr, 1.0 * u);
    for (int i = 0; i < s->n_beats; i += step) {
        double x = s->beat[i] * len;
        double hgt = (i / step) % 4 == 0 ? 9.0 : 5.0;
        cairo_move_to(cr, x, 14 * u);
        cairo_line_to(cr, x, (14 + hgt) * u);
    }
    sn_source(cr, ink, 0.45);
    cairo_stroke(cr);
    for (int k = 1; k < s->n_secs; k++) {
        double x = s->sec_start[k] * len;
        double e = sn_energy(s, s->sec_start[k]);
        sn_source(cr, p->acc[0], 1.0);
        cairo_arc(cr, x, -e * amp, 3.2 * u, 0, TAU);
        cairo_fill(cr);
    }
    cairo_restore(cr);
    c->grain = 0.02;
    c->paper = dark ? 0.0 : 0.35;
    c->text_dark = !dark;
}

/* ------------------------------------------------------------- synthwave */

static void sun_with_slits(sn_ctx *c, double x, double y, double r, sn_col top, sn_col bot, int slits,
                           double slit_scale) {
    cairo_t *cr = c->cr;
    cairo_save(cr);
    cairo_arc(cr, x, y, r, 0, TAU);
    cairo_clip(cr);
    cairo_pattern_t *g = cairo_pattern_create_linear(0, y - r, 0, y + r);
    sn_stop(g, 0.0, top, 1.0);
    sn_stop(g, 1.0, bot, 1.0);
    cairo_set_source(cr, g);
    /* Bands between slits; slits start at the middle and thicken downwards. */
    double yy = y - r;
    double start = y - r * 0.1;
    cairo_rectangle(cr, x - r, yy, 2 * r, start - yy);
    double band = (y + r - start) / slits;
    for (int i = 0; i < slits; i++) {
        double gap = band * slit_scale * (0.12 + 0.55 * (double)i / slits);
        double b0 = start + i * band + gap;
        cairo_rectangle(cr, x - r, b0, 2 * r, band - gap);
    }
    cairo_fill(cr);
    cairo_pattern_destroy(g);
    cairo_restore(cr);
}

static void neon_stroke(cairo_t *cr, sn_col col, double w) {
    static const double widths[3] = {7.0, 3.2, 1.0};
    static const double alphas[3] = {0.10, 0.28, 0.95};
    for (int i = 0; i < 3; i++) {
        sn_source(cr, i == 2 ? sn_mix(col, (sn_col){1, 1, 1}, 0.45) : col, alphas[i]);
        cairo_set_line_width(cr, w * widths[i]);
        cairo_stroke_preserve(cr);
    }
    cairo_new_path(cr);
}

/* Skyline of a neon city on the horizon: building heights from the
 * spectrogram (bass on the left … treble on the right, as in an equaliser),
 * lit windows from the seed. */
static void skyline(sn_ctx *c, double horizon, double max_h, sn_col body, sn_col rim, sn_col window) {
    cairo_t *cr = c->cr;
    const sn_song *s = c->song;
    double W = c->w;
    double x = -sn_range(&c->rng, 0.0, 0.03) * W;
    while (x < W) {
        double bw = W * sn_range(&c->rng, 0.035, 0.08);
        double xf = (x + bw * 0.5) / W;
        double v = sn_spec_band(s, xf * 0.85, xf * 0.85 + 0.15, 0.5);
        double bh = max_h * (0.25 + 0.75 * v) * sn_range(&c->rng, 0.55, 1.0);
        sn_source(cr, body, 1.0);
        cairo_rectangle(cr, x, horizon - bh, bw - c->u * 2.0, bh + 1.0);
        cairo_fill(cr);
        cairo_move_to(cr, x, horizon - bh);
        cairo_line_to(cr, x + bw - c->u * 2.0, horizon - bh);
        neon_stroke(cr, rim, 0.6 * c->u);
        double cell = fmax(3.0, 9.0 * c->u);
        sn_source(cr, window, 0.8);
        for (double wy = horizon - bh + cell; wy < horizon - cell; wy += cell * 1.6) {
            for (double wx = x + cell * 0.7; wx < x + bw - cell * 1.4; wx += cell * 1.3) {
                if (sn_unif(&c->rng) < 0.22) {
                    cairo_rectangle(cr, wx, wy, cell * 0.55, cell * 0.7);
                }
            }
        }
        cairo_fill(cr);
        x += bw;
    }
}

/* Four arrangements (the seed modulo 4, so `make -n 4` shows all four), each
 * varied by the seed's stream:
 *   0 the classic: centred sun sitting on spectrogram mountains, mid horizon;
 *   1 the city: low horizon, a big sun on a third behind a neon skyline;
 *   2 the highway: high horizon, a small sun high in the sky, a road running
 *     to a vanishing point off centre;
 *   3 the canyon: a sun setting at one edge, one tall range rising on the
 *     other side.
 * The grid's vanishing point follows the sun. */
static void paint_synthwave(sn_ctx *c) {
    cairo_t *cr = c->cr;
    const sn_song *s = c->song;
    const sn_palette *p = &c->pal;
    double W = c->w;
    double H = c->h;
    double u = c->u;
    double hue = p->hue;
    int arr = (int)(c->seed % 4u);
    /* Synthwave lives in purple-magenta-orange; the key turns it a little. */
    double twist = fmod(hue - 320.0 + 540.0, 360.0) - 180.0;
    double hs = 315.0 + twist * 0.25;
    double side = sn_unif(&c->rng) < 0.5 ? -1.0 : 1.0;
    double sr0 = fmin(W, H) * (0.17 + 0.08 * s->energy);
    double horizon;
    double sx;
    double sr;
    double sy;
    switch (arr) {
    case 1:
        horizon = H * sn_range(&c->rng, 0.47, 0.52);
        sx = W * (0.5 + side * sn_range(&c->rng, 0.14, 0.2));
        sr = sr0 * 1.3;
        sy = horizon - sr * sn_range(&c->rng, 0.3, 0.5);
        break;
    case 2:
        horizon = H * sn_range(&c->rng, 0.66, 0.71);
        sx = W * (0.5 + side * sn_range(&c->rng, 0.1, 0.22));
        sr = sr0 * 0.62;
        sy = horizon - sr * sn_range(&c->rng, 2.6, 3.6);
        break;
    case 3:
        horizon = H * sn_range(&c->rng, 0.55, 0.6);
        sx = W * (0.5 + side * sn_range(&c->rng, 0.22, 0.28));
        sr = sr0 * 1.1;
        sy = horizon - sr * sn_range(&c->rng, 0.05, 0.3);
        break;
    default:
        horizon = H * sn_range(&c->rng, 0.58, 0.64);
        sx = W * (0.5 + sn_range(&c->rng, -0.06, 0.06));
        sr = sr0;
        sy = horizon - sr * sn_range(&c->rng, 0.15, 0.55);
        break;
    }
    sn_col sky[4] = {sn_oklch(0.12, 0.06, hs - 40), sn_oklch(0.28, 0.14, hs), sn_oklch(0.55, 0.2, hs + 40),
                     sn_oklch(0.75, 0.16, hs + 95)};
    double offs[4] = {0.0, 0.45, 0.85, 1.0};
    if (arr == 2) { /* the sun is high: a darker, starrier sky */
        offs[1] = 0.6;
        offs[2] = 0.93;
    }
    soft sl;
    cairo_t *sc = soft_begin(c, &sl, 4.0);
    sn_source(sc, sky[3], 1.0);
    cairo_paint(sc);
    fill_vertical_on(sc, W, 0, horizon, sky, offs, 4);
    cairo_set_operator(sc, CAIRO_OPERATOR_SCREEN);
    glow(sc, sx, sy, sr * 2.4, sn_oklch(0.65, 0.2, hs + 30), 0.6);
    soft_end(c, &sl, CAIRO_OPERATOR_SOURCE);
    stars(c, arr == 2 ? 220 : 140, horizon * 0.7, (sn_col){1.0, 0.95, 1.0});
    sun_with_slits(c, sx, sy, sr, sn_oklch(0.92, 0.16, 95), sn_oklch(0.62, 0.24, hs + 35),
                   5 + (int)(s->tempo / 40.0), 1.0);
    uint32_t ms = c->seed * 13u + 1u;
    enum { NP = 120 };
    double xs[NP];
    double ys[NP];
    if (arr == 0 || arr == 2) {
        /* Spectrogram mountains on the horizon with neon rims (low and far on the highway). */
        for (int layer = 0; layer < 2; layer++) {
            double amp = H * (layer == 0 ? 0.16 : 0.09) * (0.6 + 0.6 * s->energy) * (arr == 2 ? 0.45 : 1.0);
            ridge_fill(c, horizon + 1, amp, layer == 0 ? 0.45 : 0.0, layer == 0 ? 0.9 : 0.45, 0.5, ms + layer,
                       horizon + 2, 120);
            sn_source(cr, sn_oklch(0.14 + 0.05 * layer, 0.08, hs - 20), 1.0);
            cairo_fill(cr);
            for (int i = 0; i < NP; i++) {
                double xf = (double)i / (NP - 1);
                xs[i] = -4.0 + xf * (W + 8.0);
                ys[i] = ridge_y(c, horizon + 1, amp, layer == 0 ? 0.45 : 0.0, layer == 0 ? 0.9 : 0.45, xf, 0.5,
                                ms + layer);
            }
            curve_through(cr, xs, ys, NP, true);
            neon_stroke(cr, layer == 0 ? sn_oklch(0.75, 0.15, hs + 210) : sn_oklch(0.7, 0.2, hs + 20), 0.9 * u);
        }
    } else if (arr == 1) {
        skyline(c, horizon + 1, H * (0.12 + 0.1 * s->energy), sn_oklch(0.13, 0.06, hs - 20),
                sn_oklch(0.75, 0.15, hs + 210), sn_oklch(0.85, 0.12, 85));
    } else {
        /* The canyon: one tall range rising away from the sun. */
        double amp = H * (0.3 + 0.12 * s->energy);
        for (int i = 0; i < NP; i++) {
            double xf = (double)i / (NP - 1);
            double away = side > 0 ? 1.0 - xf : xf; /* 1 at the edge opposite the sun */
            xs[i] = -4.0 + xf * (W + 8.0);
            double ramp = smooth(0.2, 1.0, away);
            ys[i] = horizon + 1 - (horizon + 1 - ridge_y(c, horizon + 1, amp, 0.0, 0.6, xf, 0.6, ms)) * ramp;
        }
        curve_through(cr, xs, ys, NP, true);
        cairo_line_to(cr, W + 4.0, horizon + 2);
        cairo_line_to(cr, -4.0, horizon + 2);
        cairo_close_path(cr);
        sn_source(cr, sn_oklch(0.13, 0.07, hs - 20), 1.0);
        cairo_fill(cr);
        curve_through(cr, xs, ys, NP, true);
        neon_stroke(cr, sn_oklch(0.75, 0.15, hs + 210), 0.9 * u);
    }
    /* Ground and the perspective grid (line spacing from the tempo), vanishing under the sun. */
    sn_col ground[2] = {sn_oklch(0.16, 0.08, hs - 10), sn_oklch(0.05, 0.02, hs - 30)};
    double goffs[2] = {0.0, 1.0};
    fill_vertical(c, horizon, H, ground, goffs, 2);
    sn_col grid = sn_oklch(0.68, 0.22, hs + 15);
    double vx = sx;
    cairo_save(cr);
    cairo_rectangle(cr, 0, horizon, W, H - horizon);
    cairo_clip(cr);
    int nv = 13 + 2 * sn_int(&c->rng, 4);
    for (int k = -nv - 6; k <= nv + 6; k++) {
        double xb = vx + k * W * 0.16;
        cairo_move_to(cr, vx + k * W * 0.008, horizon);
        cairo_line_to(cr, vx + (xb - vx) * 2.2, H * 1.4);
    }
    int nh = 8 + (int)(s->tempo / 20.0);
    for (int j = 1; j <= nh; j++) {
        double z = (double)j / nh;
        double y = horizon + (H - horizon) * z * z;
        cairo_move_to(cr, 0, y);
        cairo_line_to(cr, W, y);
    }
    neon_stroke(cr, grid, 0.8 * u);
    if (arr == 2) {
        /* The highway: dark asphalt to the vanishing point, neon edges, a dashed centre line. */
        double bw = W * 0.42;
        cairo_move_to(cr, vx - W * 0.004, horizon);
        cairo_line_to(cr, vx + W * 0.004, horizon);
        cairo_line_to(cr, vx + bw, H);
        cairo_line_to(cr, vx - bw, H);
        cairo_close_path(cr);
        sn_source(cr, sn_oklch(0.08, 0.03, hs - 20), 1.0);
        cairo_fill(cr);
        for (int e = -1; e <= 1; e += 2) {
            cairo_move_to(cr, vx + e * W * 0.004, horizon);
            cairo_line_to(cr, vx + e * bw, H);
            neon_stroke(cr, sn_oklch(0.78, 0.16, hs + 60), 1.0 * u);
        }
        for (int j = 0; j < nh; j += 1) {
            double z0 = (j + 0.15) / nh;
            double z1 = (j + 0.55) / nh;
            double y0 = horizon + (H - horizon) * z0 * z0;
            double y1 = horizon + (H - horizon) * z1 * z1;
            double w0 = fmax(0.6, 4.0 * u * z0 * z0 * 2.0);
            double w1 = fmax(0.6, 4.0 * u * z1 * z1 * 2.0);
            cairo_move_to(cr, vx - w0, y0);
            cairo_line_to(cr, vx + w0, y0);
            cairo_line_to(cr, vx + w1, y1);
            cairo_line_to(cr, vx - w1, y1);
            cairo_close_path(cr);
        }
        sn_source(cr, sn_oklch(0.9, 0.12, 90), 0.9);
        cairo_fill(cr);
    }
    cairo_restore(cr);
    /* Horizon line glow. */
    cairo_move_to(cr, 0, horizon);
    cairo_line_to(cr, W, horizon);
    neon_stroke(cr, sn_oklch(0.8, 0.15, hs + 60), 1.0 * u);
    c->grain = 0.035;
    c->vignette = 0.4;
    c->scanlines = 0.06;
}

/* ------------------------------------------------------------- vaporwave */

static void pillar(sn_ctx *c, double x, double ybase, double wd, double ht, sn_col light, sn_col shade) {
    cairo_t *cr = c->cr;
    cairo_pattern_t *g = cairo_pattern_create_linear(x - wd / 2, 0, x + wd / 2, 0);
    sn_stop(g, 0.0, shade, 1.0);
    sn_stop(g, 0.35, light, 1.0);
    sn_stop(g, 1.0, shade, 1.0);
    cairo_set_source(cr, g);
    cairo_rectangle(cr, x - wd / 2, ybase - ht, wd, ht);
    cairo_fill(cr);
    cairo_set_source(cr, g);
    cairo_rectangle(cr, x - wd * 0.7, ybase - ht - wd * 0.25, wd * 1.4, wd * 0.25);
    cairo_rectangle(cr, x - wd * 0.62, ybase - ht - wd * 0.38, wd * 1.24, wd * 0.13);
    cairo_rectangle(cr, x - wd * 0.7, ybase - wd * 0.2, wd * 1.4, wd * 0.2);
    cairo_fill(cr);
    cairo_pattern_destroy(g);
    sn_source(cr, shade, 0.55);
    cairo_set_line_width(cr, c->u * 1.2);
    for (int i = 1; i < 6; i++) {
        double fx = x - wd / 2 + wd * i / 6.0;
        cairo_move_to(cr, fx, ybase - ht + wd * 0.05);
        cairo_line_to(cr, fx, ybase - wd * 0.25);
    }
    cairo_stroke(cr);
}

static void paint_vaporwave(sn_ctx *c) {
    cairo_t *cr = c->cr;
    const sn_song *s = c->song;
    const sn_palette *p = &c->pal;
    double W = c->w;
    double H = c->h;
    double u = c->u;
    double tw = (fmod(p->hue - 330.0 + 540.0, 360.0) - 180.0) * 0.2;
    /* Four arrangements (seed modulo 4): 0 a centred sun between two columns;
     * 1 a sun on a third, one tall column on the other side, low horizon;
     * 2 a huge sun half set, a colonnade running to the vanishing point;
     * 3 a high horizon, a small sun high up, a gate of two columns off centre. */
    int arr = (int)(c->seed % 4u);
    double side = sn_unif(&c->rng) < 0.5 ? -1.0 : 1.0;
    double sr = fmin(W, H) * (0.16 + 0.06 * s->energy);
    double horizon;
    double sx;
    double sy;
    switch (arr) {
    case 1:
        horizon = H * sn_range(&c->rng, 0.52, 0.56);
        sx = W * (0.5 + side * sn_range(&c->rng, 0.15, 0.2));
        sy = horizon - sr * sn_range(&c->rng, 0.9, 1.4);
        break;
    case 2:
        horizon = H * sn_range(&c->rng, 0.58, 0.62);
        sr *= 1.7;
        sx = W * (0.5 + sn_range(&c->rng, -0.05, 0.05));
        sy = horizon - sr * sn_range(&c->rng, 0.05, 0.25);
        break;
    case 3:
        horizon = H * sn_range(&c->rng, 0.68, 0.72);
        sr *= 0.7;
        sx = W * (0.5 - side * sn_range(&c->rng, 0.12, 0.2));
        sy = horizon - sr * sn_range(&c->rng, 2.8, 3.6);
        break;
    default:
        horizon = H * sn_range(&c->rng, 0.6, 0.66);
        sx = W * sn_range(&c->rng, 0.44, 0.56);
        sy = horizon - sr * sn_range(&c->rng, 0.45, 0.9);
        break;
    }
    sn_col sky[4] = {sn_oklch(0.74, 0.10, 290 + tw), sn_oklch(0.82, 0.11, 345 + tw),
                     sn_oklch(0.88, 0.08, 40 + tw), sn_oklch(0.9, 0.07, 200 + tw)};
    double offs[4] = {0.0, 0.45, 0.8, 1.0};
    soft sl;
    cairo_t *sc = soft_begin(c, &sl, 4.0);
    sn_source(sc, sky[3], 1.0);
    cairo_paint(sc);
    fill_vertical_on(sc, W, 0, horizon, sky, offs, 4);
    glow(sc, sx, sy, sr * 2.0, sn_oklch(0.93, 0.09, 20 + tw), 0.5);
    soft_end(c, &sl, CAIRO_OPERATOR_SOURCE);
    /* Spectrogram scanlines across the sky, faint. */
    int nl = 22;
    cairo_set_line_width(cr, 1.0 * u);
    for (int i = 0; i < nl; i++) {
        double y0 = horizon * (0.12 + 0.8 * i / nl);
        for (int k = 0; k <= 80; k++) {
            double xf = k / 80.0;
            double y = y0 - sn_spec(s, (double)i / nl, xf) * H * 0.025;
            if (k == 0) {
                cairo_move_to(cr, xf * W, y);
            } else {
                cairo_line_to(cr, xf * W, y);
            }
        }
    }
    sn_source(cr, (sn_col){1, 1, 1}, 0.28);
    cairo_stroke(cr);
    sun_with_slits(c, sx, sy, sr, sn_oklch(0.93, 0.12, 95 + tw), sn_oklch(0.72, 0.17, 350 + tw), 6, 0.8);
    /* Checkerboard floor in perspective. */
    sn_col ca = sn_oklch(0.70, 0.13, 200 + tw);
    sn_col cb = sn_oklch(0.86, 0.08, 330 + tw);
    double f = H - horizon;
    sn_source(cr, sn_mix(sky[3], cb, 0.3), 1.0);
    cairo_rectangle(cr, 0, horizon, W, H - horizon);
    cairo_fill(cr);
    int rows = 14;
    int cols = 24;
    double zn = 1.0;
    double zf = 40.0;
    for (int j = 0; j < rows; j++) {
        double z0 = zn * pow(zf / zn, (double)j / rows);
        double z1 = zn * pow(zf / zn, (double)(j + 1) / rows);
        double y0 = horizon + f / z0;
        double y1 = horizon + f / z1;
        for (int i = -cols - 8; i < cols + 8; i++) {
            double X0 = i * 0.5;
            double X1 = (i + 1) * 0.5;
            sn_col col = ((i + j) & 1) ? ca : cb;
            col = sn_mix(col, sky[3], clamp01((double)j / rows) * 0.6);
            sn_source(cr, col, 1.0);
            cairo_move_to(cr, sx + X0 / z0 * W * 0.5, y0);
            cairo_line_to(cr, sx + X1 / z0 * W * 0.5, y0);
            cairo_line_to(cr, sx + X1 / z1 * W * 0.5, y1);
            cairo_line_to(cr, sx + X0 / z1 * W * 0.5, y1);
            cairo_close_path(cr);
            cairo_fill(cr);
        }
    }
    /* Pillars, heights from the loudest sections. */
    sn_col pl = sn_oklch(0.96, 0.02, 60 + tw);
    sn_col ps = sn_oklch(0.72, 0.06, 300 + tw);
    double pw = W * 0.07;
    double pb = horizon + (H - horizon) * 0.55;
    double e0 = s->sec_energy[0];
    double e1 = s->sec_energy[s->n_secs - 1];
    if (arr == 0) {
        double at = sn_range(&c->rng, 0.1, 0.18);
        pillar(c, W * at, pb, pw, H * (0.32 + 0.12 * e0), pl, ps);
        pillar(c, W * (1 - at), pb, pw, H * (0.32 + 0.12 * e1), pl, ps);
    } else if (arr == 1) {
        double at = 0.5 - side * sn_range(&c->rng, 0.26, 0.34);
        pillar(c, W * at, horizon + (H - horizon) * 0.7, pw * 1.5, H * (0.5 + 0.12 * e1), pl, ps);
    } else if (arr == 2) {
        /* A colonnade on both sides, receding to the vanishing point under the sun. */
        for (int k = 5; k >= 0; k--) {
            double z = 1.0 + k * 0.9;
            double yb = horizon + (H - horizon) * 0.75 / z;
            double zs = 1.0 / z;
            double e = k % 2 ? e0 : e1;
            for (int sd = -1; sd <= 1; sd += 2) {
                pillar(c, sx + sd * W * 0.62 * zs, yb, pw * 1.2 * zs, H * (0.42 + 0.12 * e) * zs, pl, ps);
            }
        }
    } else {
        double at = 0.5 + side * sn_range(&c->rng, 0.16, 0.24);
        pillar(c, W * (at - 0.09), pb, pw * 0.9, H * (0.36 + 0.1 * e0), pl, ps);
        pillar(c, W * (at + 0.09), pb, pw * 0.9, H * (0.36 + 0.1 * e1), pl, ps);
        /* the lintel of the gate */
        cairo_rectangle(cr, W * (at - 0.09) - pw * 0.7, pb - H * (0.36 + 0.1 * fmax(e0, e1)) - pw * 0.7,
                        W * 0.18 + pw * 1.4, pw * 0.34);
        sn_source(cr, pl, 1.0);
        cairo_fill(cr);
    }
    /* Pastel haze over the near floor: the calm band for the title. */
    cairo_pattern_t *fog = cairo_pattern_create_linear(0, H * 0.7, 0, H);
    sn_stop(fog, 0.0, sky[1], 0.0);
    sn_stop(fog, 0.6, sky[1], 0.75);
    sn_stop(fog, 1.0, sky[0], 0.9);
    cairo_set_source(cr, fog);
    cairo_rectangle(cr, 0, H * 0.7, W, H * 0.3);
    cairo_fill(cr);
    cairo_pattern_destroy(fog);
    c->grain = 0.025;
    c->scanlines = 0.04;
    c->vignette = 0.15;
    c->text_dark = true;
}

/* ------------------------------------------------------------ watercolor */

enum { WC_MAX = 2048 };

/* One deformation pass: each edge gets a displaced midpoint. Points are (x, y)
 * pairs; out has room for WC_MAX / 2 of them, the pass stops there. */
static int wc_deform(sn_rng *r, const double *in, const double *var, int n, double *out, double *ovar,
                     double scale) {
    int m = 0;
    for (int i = 0; i < n && 2 * (m + 2) <= WC_MAX; i++) { /* out holds WC_MAX/2 points */
        int j = (i + 1) % n;
        double ax = in[2 * i];
        double ay = in[2 * i + 1];
        double bx = in[2 * j];
        double by = in[2 * j + 1];
        double v = var[i] * scale;
        out[2 * m] = ax;
        out[2 * m + 1] = ay;
        ovar[m] = var[i] * 0.55;
        m++;
        out[2 * m] = (ax + bx) * 0.5 + sn_gauss(r) * v;
        out[2 * m + 1] = (ay + by) * 0.5 + sn_gauss(r) * v;
        ovar[m] = var[i] * 0.55;
        m++;
    }
    return m;
}

static void paint_watercolor(sn_ctx *c) {
    cairo_t *cr = c->cr;
    const sn_song *s = c->song;
    const sn_palette *p = &c->pal;
    double W = c->w;
    double H = c->h;
    double u = c->u;
    fill_all(c, p->paper);
    double *bufa = m2p_malloc(sizeof(double) * WC_MAX * 4);
    if (bufa == NULL) {
        return; /* paper alone: still a valid, if quiet, image */
    }
    double *bufb = bufa + WC_MAX;
    double *va = bufa + 2 * WC_MAX;
    double *vb = bufa + 3 * WC_MAX;
    double *shape = m2p_malloc(sizeof(double) * WC_MAX * 2);
    if (shape == NULL) {
        m2p_free(bufa);
        return;
    }
    double *svar = shape + WC_MAX;
    int nb = s->n_secs < 3 ? 5 : (s->n_secs > 8 ? 8 : s->n_secs + 1);
    int loudest = 0;
    for (int k = 1; k < s->n_secs; k++) {
        loudest = s->sec_energy[k] > s->sec_energy[loudest] ? k : loudest;
    }
    /* Pigment at half resolution: softer edges (paint bleeds) and a quarter of the fill cost. */
    soft sl;
    cairo_t *sc = soft_begin(c, &sl, 2.0);
    double ang = sn_range(&c->rng, 0, TAU);
    int arrangement = sn_int(&c->rng, 3);
    for (int bI = 0; bI < nb; bI++) {
        int k = bI % s->n_secs;
        double e = s->sec_energy[k];
        double R = fmin(W, H) * (0.10 + 0.10 * e) * sn_range(&c->rng, 0.8, 1.2);
        /* Blotches arranged along a loose arc so the composition has a centre of weight. */
        double a = ang + bI * TAU / nb * 0.8;
        double f = (bI + 0.5) / nb;
        double cx;
        double cy;
        if (arrangement == 0) { /* a loose wreath */
            cx = W * 0.5 + cos(a) * W * sn_range(&c->rng, 0.16, 0.30);
            cy = H * 0.40 + sin(a) * H * sn_range(&c->rng, 0.10, 0.24);
        } else if (arrangement == 1) { /* a diagonal cascade, in song order */
            double dir = sn_unif(&c->rng) < 0.5 ? 1.0 : -1.0;
            cx = W * (0.5 + dir * (f - 0.5) * 0.62) + sn_gauss(&c->rng) * W * 0.03;
            cy = H * (0.14 + 0.52 * f) + sn_gauss(&c->rng) * H * 0.03;
        } else { /* a horizon of washes, in song order */
            cx = W * (0.12 + 0.76 * f) + sn_gauss(&c->rng) * W * 0.02;
            cy = H * 0.42 + sn_gauss(&c->rng) * H * 0.06;
        }
        /* Keep every wash on the sheet, with a margin. */
        cx = fmin(fmax(cx, W * 0.08 + R * 0.8), W * 0.92 - R * 0.8);
        cy = fmin(fmax(cy, H * 0.08 + R * 0.8), H * 0.72 - R * 0.8);
        /* Neighbouring hues per section label: overlapping washes stay clean
         * (complementary pigments multiply to mud); the loudest section is the
         * deepest wash. */
        static const double offs[5] = {0.0, 45.0, -45.0, 90.0, -90.0};
        double hue = c->pal.hue + offs[c->song->sec_label[k] % 5] * (0.6 + 0.2 * c->pal.scheme);
        if (k == loudest) {
            e = fmin(1.0, e + 0.25);
        }
        sn_col col = sn_oklch(0.70 + 0.1 * c->song->sec_bright[k], 0.10 + 0.06 * e, hue);
        int n0 = 10;
        for (int i = 0; i < n0; i++) {
            double t = TAU * i / n0;
            double rr = R * sn_range(&c->rng, 0.85, 1.15);
            bufa[2 * i] = cx + cos(t) * rr;
            bufa[2 * i + 1] = cy + sin(t) * rr;
            va[i] = R * sn_range(&c->rng, 0.12, 0.35);
        }
        int n = n0;
        for (int d = 0; d < 3; d++) {
            n = wc_deform(&c->rng, bufa, va, n, bufb, vb, 1.0);
            memcpy(bufa, bufb, sizeof(double) * 2 * (size_t)n);
            memcpy(va, vb, sizeof(double) * (size_t)n);
        }
        memcpy(shape, bufa, sizeof(double) * 2 * (size_t)n);
        memcpy(svar, va, sizeof(double) * (size_t)n);
        int layers = 12;
        for (int l = 0; l < layers; l++) {
            memcpy(bufa, shape, sizeof(double) * 2 * (size_t)n);
            memcpy(va, svar, sizeof(double) * (size_t)n);
            int m = n;
            for (int d = 0; d < 3; d++) {
                m = wc_deform(&c->rng, bufa, va, m, bufb, vb, 0.9);
                memcpy(bufa, bufb, sizeof(double) * 2 * (size_t)m);
                memcpy(va, vb, sizeof(double) * (size_t)m);
            }
            cairo_move_to(sc, bufa[0], bufa[1]);
            for (int i = 1; i < m; i++) {
                cairo_line_to(sc, bufa[2 * i], bufa[2 * i + 1]);
            }
            cairo_close_path(sc);
            sn_source(sc, col, 0.045 + 0.025 * e);
            if (l == layers - 1) {
                /* Pigment gathers at the edge of a drying wash: a faint darker rim. */
                cairo_fill_preserve(sc);
                sn_source(sc, sn_mix(col, c->pal.ink, 0.35), 0.16);
                cairo_set_line_width(sc, 1.6 * c->u);
                cairo_stroke(sc);
            } else {
                cairo_fill(sc);
            }
        }
    }
    m2p_free(shape);
    m2p_free(bufa);
    cairo_set_operator(sc, CAIRO_OPERATOR_OVER);
    soft_end(c, &sl, CAIRO_OPERATOR_MULTIPLY);
    /* A graphite line of the energy curve and a few splashes. */
    enum { NP = 140 };
    double xs[NP];
    double ys[NP];
    double base_y = H * 0.76;
    for (int i = 0; i < NP; i++) {
        double t = (double)i / (NP - 1);
        xs[i] = W * 0.12 + t * W * 0.76;
        double e = 0.0;
        for (int k = -4; k <= 4; k++) { /* a pencil line, not a seismograph */
            e += sn_energy(s, t + k * 0.01) / 9.0;
        }
        ys[i] = base_y - e * H * 0.05 + sn_noise2(t * 40.0, 3.0, c->seed) * u * 1.2;
    }
    curve_through(cr, xs, ys, NP, true);
    sn_source(cr, p->ink, 0.55);
    cairo_set_line_width(cr, 0.9 * u);
    cairo_stroke(cr);
    int ns = 10 + (int)(s->perc * 40.0);
    cairo_set_operator(cr, CAIRO_OPERATOR_MULTIPLY);
    for (int i = 0; i < ns; i++) {
        double x = W * 0.5 + sn_gauss(&c->rng) * W * 0.2;
        double y = H * 0.42 + sn_gauss(&c->rng) * H * 0.16;
        sn_source(cr, p->acc[sn_int(&c->rng, 5)], 0.35);
        cairo_arc(cr, x, y, u * sn_range(&c->rng, 1.0, 5.0), 0, TAU);
        cairo_fill(cr);
    }
    cairo_set_operator(cr, CAIRO_OPERATOR_OVER);
    c->paper = 1.0;
    c->grain = 0.03;
    c->text_dark = true;
}

/* ------------------------------------------------------------------- ink */

static void paint_ink(sn_ctx *c) {
    cairo_t *cr = c->cr;
    const sn_song *s = c->song;
    const sn_palette *p = &c->pal;
    double W = c->w;
    double H = c->h;
    double u = c->u;
    sn_col paper = sn_oklch(0.95, 0.012, 85);
    sn_col ink = sn_oklch(0.16, 0.01, p->hue);
    fill_all(c, paper);
    /* Misty mountain washes from the low bands. */
    uint32_t ms = c->seed * 7u + 3u;
    for (int l = 0; l < 3; l++) {
        double base = H * (0.70 + 0.07 * l);
        double amp = H * (0.20 - 0.04 * l) * (0.6 + 0.5 * s->energy);
        ridge_fill(c, base, amp, 0.1 * l, 0.1 * l + 0.35, 0.9, ms + (uint32_t)l, H, 160);
        cairo_pattern_t *g = cairo_pattern_create_linear(0, base - amp, 0, base + H * 0.1);
        sn_stop(g, 0.0, ink, 0.10 + 0.08 * l);
        sn_stop(g, 1.0, ink, 0.0);
        cairo_set_source(cr, g);
        cairo_fill(cr);
        cairo_pattern_destroy(g);
    }
    /* The enso: one breath of the brush, its width the song's energy. */
    double cx = W * (0.5 + sn_range(&c->rng, -0.06, 0.06));
    double cy = H * 0.42;
    double R = fmin(W, H) * sn_range(&c->rng, 0.24, 0.29);
    double a0 = sn_range(&c->rng, 0, TAU);
    double sweep = TAU * sn_range(&c->rng, 0.82, 0.94);
    int bristles = 22;
    int segs = 260;
    uint32_t ns = c->seed * 3u + 11u;
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    for (int b = 0; b < bristles; b++) {
        double o = (double)b / (bristles - 1) - 0.5;
        bool down = false;
        for (int i = 0; i <= segs; i++) {
            double f = (double)i / segs;
            double e = sn_energy(s, f);
            double taper = smooth(0.0, 0.06, f) * (1.0 - 0.75 * smooth(0.7, 1.0, f));
            double width = R * (0.06 + 0.17 * e) * taper + R * 0.012;
            double a = a0 + f * sweep;
            double rr = R + o * width + sn_noise2(f * 6.0, b * 1.7, ns) * R * 0.01;
            double x = cx + cos(a) * rr;
            double y = cy + sin(a) * rr;
            /* Dry brush: bristles skip where the ink runs out (more towards the end). */
            double dry = sn_noise2(f * 30.0, b * 3.1, ns + 5u) * 0.5 + 0.5;
            bool inked = dry > 0.15 + 0.7 * smooth(0.45, 1.0, f) * (0.6 + fabs(o));
            if (inked && !down) {
                cairo_move_to(cr, x, y);
                down = true;
            } else if (inked) {
                cairo_line_to(cr, x, y);
            } else if (down) {
                down = false;
            }
        }
        sn_source(cr, ink, 0.55);
        cairo_set_line_width(cr, R * 0.018 + 0.8 * u);
        cairo_stroke(cr);
    }
    /* Splatter from the percussion. */
    int nsp = (int)(s->perc * 30.0) + 3;
    for (int i = 0; i < nsp; i++) {
        double a = a0 + sweep * sn_unif(&c->rng);
        double rr = R * (1.0 + sn_gauss(&c->rng) * 0.18);
        sn_source(cr, ink, 0.7);
        cairo_arc(cr, cx + cos(a) * rr, cy + sin(a) * rr, u * sn_range(&c->rng, 0.8, 3.5), 0, TAU);
        cairo_fill(cr);
    }
    /* The seal. */
    double sz = W * 0.045;
    double sx = W * 0.86 - sz;
    double sy = H * 0.58;
    sn_col red = sn_oklch(0.52, 0.17, 30);
    sn_source(cr, red, 0.9);
    cairo_rectangle(cr, sx, sy, sz, sz * 1.3);
    cairo_fill(cr);
    sn_source(cr, paper, 0.9);
    cairo_set_line_width(cr, sz * 0.08);
    cairo_rectangle(cr, sx + sz * 0.14, sy + sz * 0.14, sz * 0.72, sz * 1.02);
    cairo_move_to(cr, sx + sz * 0.5, sy + sz * 0.25);
    cairo_line_to(cr, sx + sz * 0.5, sy + sz * 1.05);
    cairo_move_to(cr, sx + sz * 0.28, sy + sz * 0.65);
    cairo_line_to(cr, sx + sz * 0.72, sy + sz * 0.65);
    cairo_stroke(cr);
    c->paper = 0.9;
    c->grain = 0.025;
    c->text_dark = true;
}

/* ------------------------------------------------------ realistic (landscape) */

static void landscape(sn_ctx *c, bool with_stars) {
    cairo_t *cr = c->cr;
    const sn_song *s = c->song;
    const sn_palette *p = &c->pal;
    double W = c->w;
    double H = c->h;
    bool night = s->minor && s->bright < 0.5;
    /* Four arrangements (seed modulo 4): 0 mid horizon, six ranges, the light
     * on a third, a lake by chance; 1 a high horizon, four big near ranges,
     * the light high on one side, no lake; 2 a low horizon, a wide sky with a
     * large low sun or moon, a lake; 3 steep ranges, the light at an edge. */
    int arr = (int)(c->seed % 4u);
    double side = sn_unif(&c->rng) < 0.5 ? -1.0 : 1.0;
    double horizon;
    double sx;
    double sy;
    double sr = fmin(W, H) * (night ? 0.045 : 0.06);
    int layers = 6;
    double spacing = 0.055;
    double steep = 1.0;
    double lake_p = 0.55 + 0.3 * (1.0 - s->arousal);
    switch (arr) {
    case 1:
        horizon = H * sn_range(&c->rng, 0.36, 0.42);
        sx = W * (0.5 + side * sn_range(&c->rng, 0.2, 0.3));
        sy = horizon - H * sn_range(&c->rng, 0.18, 0.26);
        layers = 4;
        spacing = 0.1;
        steep = 1.5;
        lake_p = 0.0;
        break;
    case 2:
        horizon = H * sn_range(&c->rng, 0.6, 0.66);
        sx = W * (0.5 + side * sn_range(&c->rng, 0.0, 0.12));
        sr *= 2.4;
        sy = horizon - sr * sn_range(&c->rng, 0.5, 1.3);
        layers = 3;
        spacing = 0.035;
        steep = 0.7;
        lake_p = 1.0;
        break;
    case 3:
        horizon = H * sn_range(&c->rng, 0.5, 0.55);
        sx = W * (0.5 + side * sn_range(&c->rng, 0.3, 0.36));
        sy = horizon - H * sn_range(&c->rng, 0.16, 0.22);
        steep = 1.9;
        lake_p = 0.0;
        break;
    default:
        horizon = H * sn_range(&c->rng, 0.50, 0.58);
        sx = W * (0.5 + side * sn_range(&c->rng, 0.12, 0.22));
        sy = horizon - H * sn_range(&c->rng, 0.06, 0.22);
        break;
    }
    double hh = p->hue;
    sn_col top = night ? sn_oklch(0.16, 0.05, 265) : sn_oklch(0.45 + 0.2 * s->bright, 0.09, 250);
    sn_col mid = night ? sn_oklch(0.30, 0.07, hh) : sn_oklch(0.72, 0.08, hh);
    sn_col low = night ? sn_oklch(0.48, 0.09, hh + 20) : sn_oklch(0.88, 0.09, hh + 30);
    sn_col sky[3] = {top, mid, low};
    double offs[3] = {0.0, 0.6, 1.0};
    soft sl;
    cairo_t *sc = soft_begin(c, &sl, 4.0);
    sn_source(sc, low, 1.0);
    cairo_paint(sc);
    fill_vertical_on(sc, W, 0, horizon + H * 0.1, sky, offs, 3);
    cairo_set_operator(sc, CAIRO_OPERATOR_SCREEN);
    glow(sc, sx, sy, W * 0.45, p->glow, night ? 0.25 : 0.55);
    soft_end(c, &sl, CAIRO_OPERATOR_SOURCE);
    if (night && with_stars) {
        stars(c, 220, horizon * 0.85, (sn_col){1, 1, 0.96});
    }
    sn_source(cr, night ? sn_oklch(0.95, 0.02, 90) : sn_oklch(0.97, 0.06, 90), 1.0);
    cairo_arc(cr, sx, sy, sr, 0, TAU);
    cairo_fill(cr);
    /* Ranges: far ones from the high bands, hazy; near ones from the bass, dark. */
    sn_col near = sn_mix(p->deep, p->ink, 0.3);
    uint32_t ms = c->seed * 17u + 5u;
    for (int l = 0; l < layers; l++) {
        double f = (double)l / (layers - 1);
        double base = horizon + H * spacing * l;
        double amp = H * (0.10 + 0.10 * s->energy) * (1.0 - 0.35 * f) * steep;
        double b1 = 1.0 - f * 0.85;
        ridge_fill(c, base, amp, b1 - 0.25 < 0 ? 0 : b1 - 0.25, b1, 0.4 + 0.6 * f, ms + (uint32_t)l, H + 4, 180);
        sn_col col = sn_mix(sn_mix(low, p->acc[(l + 2) % 5], 0.25), near, 0.2 + 0.8 * f);
        sn_source(cr, col, 1.0);
        cairo_fill(cr);
        /* Mist over the range. */
        cairo_pattern_t *g = cairo_pattern_create_linear(0, base - amp * 0.3, 0, base + H * 0.06);
        sn_stop(g, 0.0, low, 0.0);
        sn_stop(g, 1.0, low, 0.35 * (1.0 - f));
        cairo_set_source(cr, g);
        cairo_rectangle(cr, 0, base - amp * 0.3, W, H * 0.06 + amp * 0.3);
        cairo_fill(cr);
        cairo_pattern_destroy(g);
    }
    /* A lake in the foreground (calm or bright songs; seed decides too):
     * the sky mirrored and darkened, the light's reflection broken by
     * ripples whose spacing follows the beat. */
    if (sn_unif(&c->rng) < lake_p) {
        double wy = horizon + H * spacing * (layers - 2) + H * 0.02;
        sn_col wcols[3] = {sn_mix(low, near, 0.45), sn_mix(mid, near, 0.55), sn_mix(top, near, 0.7)};
        double woffs[3] = {0.0, 0.4, 1.0};
        soft wl;
        cairo_t *wc = soft_begin(c, &wl, 4.0);
        sn_source(wc, wcols[2], 1.0);
        cairo_paint(wc);
        fill_vertical_on(wc, W, wy, H, wcols, woffs, 3);
        cairo_set_operator(wc, CAIRO_OPERATOR_SCREEN);
        cairo_save(wc);
        cairo_translate(wc, sx, wy);
        cairo_scale(wc, 0.18, 1.0);
        glow(wc, 0, 0, (H - wy) * 0.9, p->glow, night ? 0.35 : 0.6);
        cairo_restore(wc);
        if (wl.surf != NULL) {
            cairo_destroy(wl.cr);
            cairo_save(cr);
            cairo_rectangle(cr, 0, wy, W, H - wy);
            cairo_clip(cr);
            cairo_scale(cr, wl.f, wl.f);
            cairo_set_source_surface(cr, wl.surf, 0, 0);
            cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_BILINEAR);
            cairo_pattern_set_extend(cairo_get_source(cr), CAIRO_EXTEND_PAD);
            cairo_paint(cr);
            cairo_restore(cr);
            cairo_surface_destroy(wl.surf);
        }
        int nrip = 18 + (int)(s->tempo / 8.0);
        for (int i = 0; i < nrip; i++) {
            double t = (double)i / nrip;
            double yy = wy + (H - wy) * t * t + 2.0;
            double half = c->u * (8.0 + 90.0 * t) * (0.5 + sn_unif(&c->rng));
            double xx = sx + sn_gauss(&c->rng) * W * (0.02 + 0.06 * t);
            sn_source(cr, p->glow, 0.18 + 0.25 * (1.0 - t));
            cairo_rectangle(cr, xx - half, yy, 2.0 * half, c->u * (0.8 + 1.5 * t));
            cairo_fill(cr);
        }
        sn_source(cr, sn_mix(low, p->glow, 0.5), 0.5);
        cairo_rectangle(cr, 0, wy - 0.5 * c->u, W, 1.0 * c->u);
        cairo_fill(cr);
    }
}

static void paint_realistic(sn_ctx *c) {
    landscape(c, true);
    const sn_song *s = c->song;
    /* Weather: a driving minor song brings rain, slanted by the tempo. */
    if (s->minor && s->energy > 0.55 && s->perc > 0.4) {
        cairo_t *cr = c->cr;
        double slant = 0.12 + 0.25 * clamp01((s->tempo - 80.0) / 100.0);
        int drops = (int)(520.0 * s->energy * (c->w * (double)c->h) / (1024.0 * 1024.0)) + 40;
        cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
        for (int i = 0; i < drops; i++) {
            double x = sn_range(&c->rng, -0.1, 1.1) * c->w;
            double y = sn_unif(&c->rng) * c->h;
            double len = c->u * sn_range(&c->rng, 18.0, 46.0);
            cairo_move_to(cr, x, y);
            cairo_line_to(cr, x - len * slant, y + len);
            sn_source(cr, c->pal.glow, sn_range(&c->rng, 0.14, 0.34));
            cairo_set_line_width(cr, c->u * sn_range(&c->rng, 0.6, 1.3));
            cairo_stroke(cr);
        }
    }
    c->grain = 0.03;
    c->vignette = 0.3;
}

/* ---------------------------------------------------------- oil painting */

static void paint_oil(sn_ctx *c) {
    cairo_t *cr = c->cr;
    const sn_song *s = c->song;
    double W = c->w;
    double H = c->h;
    double u = c->u;
    landscape(c, false);
    cairo_surface_flush(c->surf);
    int stride = cairo_image_surface_get_stride(c->surf);
    size_t bytes = (size_t)stride * (size_t)c->h;
    uint8_t *copy = m2p_malloc(bytes);
    if (copy == NULL) {
        return;
    }
    memcpy(copy, cairo_image_surface_get_data(c->surf), bytes);
    int n = (int)(3000.0 * (W * H) / (1024.0 * 1024.0));
    n = n < 300 ? 300 : (n > 9000 ? 9000 : n);
    uint32_t fs = c->seed * 5u + 9u;
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    for (int i = 0; i < n; i++) {
        double big = 1.0 - (double)i / n; /* large strokes first, finer on top */
        double x = sn_unif(&c->rng) * W;
        double y = sn_unif(&c->rng) * H;
        int ix = (int)x;
        int iy = (int)y;
        ix = ix >= c->w ? c->w - 1 : ix;
        iy = iy >= c->h ? c->h - 1 : iy;
        uint32_t px = *(const uint32_t *)(const void *)(copy + (size_t)iy * (size_t)stride + (size_t)ix * 4);
        sn_col col = {((px >> 16) & 255) / 255.0, ((px >> 8) & 255) / 255.0, (px & 255) / 255.0};
        double jit = 1.0 + sn_range(&c->rng, -0.09, 0.09); /* relative: dark passages stay dark */
        col.r = clamp01(col.r * jit);
        col.g = clamp01(col.g * jit);
        col.b = clamp01(col.b * jit);
        double sky = y < H * 0.5 ? 0.35 : 1.0; /* sky strokes lie flatter */
        double a = (sn_noise2(x * 0.003, y * 0.003, fs) * M_PI * 0.35 + (sn_energy(s, x / W) - 0.5) * 0.5 +
                    (sn_unif(&c->rng) - 0.5) * 0.4) * sky;
        double len = u * (20.0 + 40.0 * big) * sn_range(&c->rng, 0.7, 1.2);
        double wd = u * (7.0 + 14.0 * big);
        double dx = cos(a) * len * 0.5;
        double dy = sin(a) * len * 0.5;
        double nx = -sin(a);
        double ny = cos(a);
        /* The dab: a hexagon tapered at both ends (a fill is much cheaper than a round-capped stroke). */
        double hw = wd * 0.5;
        cairo_move_to(cr, x - dx * 1.15, y - dy * 1.15);
        cairo_line_to(cr, x - dx * 0.7 + nx * hw, y - dy * 0.7 + ny * hw);
        cairo_line_to(cr, x + dx * 0.75 + nx * hw * 0.9, y + dy * 0.75 + ny * hw * 0.9);
        cairo_line_to(cr, x + dx * 1.1, y + dy * 1.1);
        cairo_line_to(cr, x + dx * 0.75 - nx * hw * 0.9, y + dy * 0.75 - ny * hw * 0.9);
        cairo_line_to(cr, x - dx * 0.7 - nx * hw, y - dy * 0.7 - ny * hw);
        cairo_close_path(cr);
        sn_source(cr, col, 0.92);
        cairo_fill(cr);
        if (big > 0.45) {
            /* Impasto: a lit ridge along one side of the larger dabs. */
            cairo_move_to(cr, x - dx * 0.7 - nx * hw * 0.55, y - dy * 0.7 - ny * hw * 0.55);
            cairo_line_to(cr, x + dx * 0.7 - nx * hw * 0.55, y + dy * 0.7 - ny * hw * 0.55);
            sn_source(cr, sn_mix(col, (sn_col){1, 1, 1}, 0.3), 0.22);
            cairo_set_line_width(cr, wd * 0.2);
            cairo_stroke(cr);
        }
    }
    m2p_free(copy);
    c->grain = 0.03;
    c->paper = 0.6;
    c->vignette = 0.3;
}

/* ------------------------------------------------------------- cinematic */

static void paint_cinematic(sn_ctx *c) {
    cairo_t *cr = c->cr;
    const sn_song *s = c->song;
    const sn_palette *p = &c->pal;
    double W = c->w;
    double H = c->h;
    double u = c->u;
    double bar = H * 0.13;
    double y0 = bar;
    double y1 = H - bar;
    double ih = y1 - y0;
    /* Teal and orange, turned by the key. */
    double warm = fmod(p->hue * 0.3 + 45.0 * 0.7, 360.0);
    double cool = fmod(warm + 170.0, 360.0);
    /* Four arrangements (seed modulo 4): 0 a low sun near the middle, a
     * high horizon line; 1 a high horizon over wide water, the sun on a
     * third; 2 the sun at the frame's edge, tall headlands across; 3 the sun
     * high in the sky above a mid horizon. */
    int arr = (int)(c->seed % 4u);
    double side = sn_unif(&c->rng) < 0.5 ? -1.0 : 1.0;
    double horizon;
    double lx;
    double lift = 0.02; /* sun height above the horizon, in image heights */
    double cliffs = 1.0;
    switch (arr) {
    case 1:
        horizon = y0 + ih * sn_range(&c->rng, 0.4, 0.48);
        lx = W * (0.5 + side * sn_range(&c->rng, 0.16, 0.22));
        cliffs = 0.6;
        break;
    case 2:
        horizon = y0 + ih * sn_range(&c->rng, 0.62, 0.7);
        lx = W * (0.5 + side * sn_range(&c->rng, 0.36, 0.42));
        cliffs = 1.7;
        break;
    case 3:
        horizon = y0 + ih * sn_range(&c->rng, 0.58, 0.64);
        lx = W * (0.5 + side * sn_range(&c->rng, 0.05, 0.2));
        lift = sn_range(&c->rng, 0.3, 0.38);
        break;
    default:
        horizon = y0 + ih * sn_range(&c->rng, 0.68, 0.76);
        lx = W * sn_range(&c->rng, 0.38, 0.62);
        break;
    }
    sn_col sky[3] = {sn_oklch(0.18, 0.05, cool), sn_oklch(0.42, 0.08, cool + 10), sn_oklch(0.78, 0.11, warm)};
    double offs[3] = {0.0, 0.6, 1.0};
    fill_all(c, (sn_col){0.015, 0.015, 0.02});
    double ly = horizon - ih * lift;
    soft sl;
    cairo_t *sc = soft_begin(c, &sl, 4.0);
    fill_vertical_on(sc, W, y0, horizon + 2, sky, offs, 3);
    /* Wide translucent bands, one per section, heights by duration, strength by energy. */
    cairo_set_operator(sc, CAIRO_OPERATOR_SOFT_LIGHT);
    for (int k = 0; k < s->n_secs; k++) {
        double a = y0 + (horizon - y0) * s->sec_start[k];
        double b = y0 + (horizon - y0) * s->sec_end[k];
        sn_source(sc, section_col(c, k), 0.25 + 0.5 * s->sec_energy[k]);
        cairo_rectangle(sc, 0, a, W, b - a);
        cairo_fill(sc);
    }
    cairo_set_operator(sc, CAIRO_OPERATOR_OVER);
    cairo_set_operator(sc, CAIRO_OPERATOR_SCREEN);
    /* God rays. */
    int nr = 14;
    for (int i = 0; i < nr; i++) {
        double a = -M_PI + M_PI * (i + 0.5) / nr + sn_range(&c->rng, -0.05, 0.05);
        double spread = 0.025 + 0.02 * sn_unif(&c->rng);
        cairo_move_to(sc, lx, ly);
        cairo_line_to(sc, lx + cos(a - spread) * W * 1.5, ly + sin(a - spread) * W * 1.5);
        cairo_line_to(sc, lx + cos(a + spread) * W * 1.5, ly + sin(a + spread) * W * 1.5);
        cairo_close_path(sc);
        sn_source(sc, sn_oklch(0.9, 0.08, warm), 0.025 + 0.03 * s->energy);
        cairo_fill(sc);
    }
    glow(sc, lx, ly, W * 0.35, sn_oklch(0.88, 0.12, warm), 0.75);
    glow(sc, lx, ly, W * 0.08, (sn_col){1, 1, 0.95}, 0.95);
    /* Anamorphic streak. */
    cairo_save(sc);
    cairo_translate(sc, lx, ly);
    cairo_scale(sc, 1.0, 0.025);
    glow(sc, 0, 0, W * 0.9, sn_oklch(0.85, 0.1, cool + 20), 0.9);
    cairo_restore(sc);
    cairo_set_operator(sc, CAIRO_OPERATOR_OVER);
    /* Water below the horizon with the light's reflection. */
    sn_col water[2] = {sn_oklch(0.30, 0.06, cool), sn_oklch(0.10, 0.03, cool)};
    double woffs[2] = {0.0, 1.0};
    fill_vertical_on(sc, W, horizon, y1, water, woffs, 2);
    cairo_set_operator(sc, CAIRO_OPERATOR_SCREEN);
    cairo_save(sc);
    cairo_translate(sc, lx, horizon);
    cairo_scale(sc, 0.12, 1.0);
    glow(sc, 0, 0, (y1 - horizon) * 1.1, sn_oklch(0.85, 0.11, warm), 0.7);
    cairo_restore(sc);
    soft_end(c, &sl, CAIRO_OPERATOR_OVER);
    cairo_set_operator(cr, CAIRO_OPERATOR_SCREEN);
    /* Glitter: beats as sparks on the water. */
    for (int i = 0; i < s->n_beats; i += (s->n_beats > 200 ? 2 : 1)) {
        double t = s->beat[i];
        double yy = horizon + (y1 - horizon) * pow(sn_unif(&c->rng), 1.6);
        double spread = (yy - horizon) / (y1 - horizon);
        double xx = lx + (t - 0.5) * W * (0.1 + 0.5 * spread);
        sn_source(cr, sn_oklch(0.92, 0.08, warm), 0.25 + 0.35 * sn_energy(s, t));
        cairo_rectangle(cr, xx, yy, u * (2.0 + 6.0 * spread), u * 0.8);
        cairo_fill(cr);
    }
    cairo_set_operator(cr, CAIRO_OPERATOR_OVER);
    /* Silhouettes: headlands rising away from the light, from the spectrogram. */
    uint32_t ms = c->seed * 19u + 2u;
    for (int l = 0; l < 2; l++) {
        double amp = ih * (0.20 - 0.06 * l) * (0.6 + 0.6 * s->energy) * cliffs;
        enum { NP = 160 };
        double xs[NP];
        double ys[NP];
        for (int i = 0; i < NP; i++) {
            double xf = (double)i / (NP - 1);
            double env = smooth(0.06, 0.4 + 0.1 * l, fabs(xf - lx / W));
            xs[i] = -4.0 + xf * (W + 8.0);
            ys[i] = horizon + 1 - (horizon + 1 - ridge_y(c, horizon + 1, amp, 0.2 * l, 0.4 + 0.2 * l, xf, 0.6,
                                                         ms + (uint32_t)l)) * env;
        }
        curve_through(cr, xs, ys, NP, true);
        cairo_line_to(cr, W + 4, horizon + 2);
        cairo_line_to(cr, -4, horizon + 2);
        cairo_close_path(cr);
        sn_source(cr, sn_oklch(0.12 + 0.07 * (1 - l), 0.04, cool), 1.0);
        cairo_fill(cr);
    }
    /* Letterbox. */
    cairo_set_source_rgb(cr, 0.015, 0.015, 0.02);
    cairo_rectangle(cr, 0, 0, W, bar);
    cairo_rectangle(cr, 0, H - bar, W, bar);
    cairo_fill(cr);
    (void)u;
    c->grain = 0.05;
    c->vignette = 0.35;
}

/* ---------------------------------------------------------- retro poster */

static void paint_retro(sn_ctx *c) {
    cairo_t *cr = c->cr;
    const sn_song *s = c->song;
    const sn_palette *p = &c->pal;
    double W = c->w;
    double H = c->h;
    double u = c->u;
    sn_col paper = sn_oklch(0.93, 0.035, 85);
    /* Three printing inks, pulled toward the paper for a printed feel. */
    sn_col ink1 = sn_mix(sn_oklch(0.62, 0.17, p->hue), paper, 0.08);
    sn_col ink2 = sn_mix(sn_oklch(0.72, 0.14, p->hue + (p->scheme == 0 ? 45 : 160)), paper, 0.08);
    sn_col ink3 = sn_oklch(0.28, 0.06, p->hue + 200);
    fill_all(c, paper);
    double m = W * 0.06;
    double px0 = m;
    double py0 = m;
    double pw = W - 2 * m;
    double ph = H * 0.74 - m;
    cairo_save(cr);
    cairo_rectangle(cr, px0, py0, pw, ph);
    cairo_clip(cr);
    sn_source(cr, sn_mix(ink2, paper, 0.55), 1.0);
    cairo_paint(cr);
    /* Four arrangements (seed modulo 4): 0 a centred sun on the hills; 1 a
     * low sun on a third behind slanted hills; 2 a big sun high on the other
     * side over low hills; 3 a sun setting into a banded sea. */
    int arr = (int)(c->seed % 4u);
    double side = sn_unif(&c->rng) < 0.5 ? -1.0 : 1.0;
    double cx = W * 0.5;
    double cy = py0 + ph * sn_range(&c->rng, 0.48, 0.58);
    double rscale = 1.0;
    double hills = 1.0; /* height of the ranges */
    if (arr == 1) {
        cx = W * (0.5 + side * sn_range(&c->rng, 0.24, 0.28));
        cy = py0 + ph * sn_range(&c->rng, 0.62, 0.68);
        rscale = 0.75;
    } else if (arr == 2) {
        cx = W * (0.5 + side * sn_range(&c->rng, 0.2, 0.24));
        cy = py0 + ph * sn_range(&c->rng, 0.24, 0.3);
        rscale = 0.95;
        hills = 0.4;
    } else if (arr == 3) {
        cx = W * (0.5 + side * sn_range(&c->rng, 0.04, 0.1));
        cy = py0 + ph * sn_range(&c->rng, 0.5, 0.56);
        rscale = 0.85;
    }
    /* Sun rays: count from the tempo. */
    int rays = 12 + 2 * (int)(s->tempo / 30.0);
    double rot = sn_range(&c->rng, 0, TAU);
    for (int i = 0; i < rays; i += 2) {
        double a0 = rot + TAU * i / rays;
        double a1 = rot + TAU * (i + 1) / rays;
        cairo_move_to(cr, cx, cy);
        cairo_arc(cr, cx, cy, W * 1.2, a0, a1);
        cairo_close_path(cr);
    }
    sn_source(cr, sn_mix(ink2, paper, 0.25), 1.0);
    cairo_fill(cr);
    double R = fmin(pw, ph) * (0.30 + 0.08 * s->energy) * rscale;
    sun_with_slits(c, cx, cy, R, ink1, sn_mix(ink1, ink3, 0.2), 5, 0.9);
    /* Flat mountains from the spectrogram. */
    uint32_t ms = c->seed * 23u + 4u;
    double base = py0 + ph * 0.92;
    if (arr == 1) {
        /* the far range rises away from the sun: a slanted base */
        cairo_save(cr);
        cairo_translate(cr, W * 0.5, base);
        cairo_rotate(cr, side * 0.2);
        cairo_translate(cr, -W * 0.5, -base);
        ridge_fill(c, base, ph * 0.4, 0.3, 0.7, 0.3, ms, py0 + ph + W * 0.3, 120);
        sn_source(cr, ink2, 1.0);
        cairo_fill(cr);
        cairo_restore(cr);
    } else if (arr != 3) {
        ridge_fill(c, base, ph * 0.3 * hills, 0.3, 0.7, 0.3, ms, py0 + ph + 2, 120);
        sn_source(cr, ink2, 1.0);
        cairo_fill(cr);
    }
    if (arr == 3) {
        /* The sea: dark ink from the horizon down, light bands thickening toward the viewer,
         * their lengths from the spectrogram (a wave per band). */
        sn_source(cr, ink3, 1.0);
        cairo_rectangle(cr, px0, cy, pw, py0 + ph - cy);
        cairo_fill(cr);
        int rows = 9;
        for (int i = 0; i < rows; i++) {
            double f = (i + 0.5) / rows;
            double y = cy + (py0 + ph - cy) * f * f;
            double th = (py0 + ph - cy) * (0.012 + 0.05 * f);
            for (int k = 0; k < 6; k++) {
                double xf = (k + sn_unif(&c->rng)) / 6.0;
                double v = sn_spec(s, f, xf);
                double len = pw * (0.04 + 0.12 * v) * (0.5 + f);
                cairo_rectangle(cr, px0 + xf * pw - len * 0.5, y, len, th);
            }
        }
        sn_source(cr, sn_mix(ink2, paper, 0.3), 1.0);
        cairo_fill(cr);
    } else {
        ridge_fill(c, base + ph * 0.06, ph * 0.2, 0.0, 0.3, 0.3, ms + 1u, py0 + ph + 2, 120);
        sn_source(cr, ink3, 1.0);
        cairo_fill(cr);
    }
    cairo_restore(cr);
    /* Halftone shading: dark at the panel's top, and over the far range. */
    cairo_surface_t *mask = cairo_image_surface_create(CAIRO_FORMAT_A8, c->w, c->h);
    if (cairo_surface_status(mask) == CAIRO_STATUS_SUCCESS) {
        cairo_t *mc = cairo_create(mask);
        cairo_rectangle(mc, px0, py0, pw, ph);
        cairo_clip(mc);
        cairo_pattern_t *g = cairo_pattern_create_linear(0, py0, 0, py0 + ph * 0.5);
        cairo_pattern_add_color_stop_rgba(g, 0.0, 0, 0, 0, 0.32);
        cairo_pattern_add_color_stop_rgba(g, 1.0, 0, 0, 0, 0.0);
        cairo_set_source(mc, g);
        cairo_paint(mc);
        cairo_pattern_destroy(g);
        cairo_destroy(mc);
        sn_halftone(c->surf, mask, ink3, 7.0 * u, 0.785);
    }
    cairo_surface_destroy(mask);
    sn_source(cr, ink3, 1.0);
    cairo_set_line_width(cr, 2.0 * u);
    cairo_rectangle(cr, px0, py0, pw, ph);
    cairo_stroke(cr);
    c->grain = 0.035;
    c->paper = 0.7;
    c->text_dark = true;
    c->text_top = 0.76;
}

/* ------------------------------------------------------------- geometric */

static void paint_geometric(sn_ctx *c) {
    cairo_t *cr = c->cr;
    const sn_song *s = c->song;
    const sn_palette *p = &c->pal;
    double W = c->w;
    double H = c->h;
    double u = c->u;
    bool dark = s->minor && s->bright < 0.5;
    sn_col ground = dark ? sn_mix(p->deep, p->ink, 0.2) : p->paper;
    sn_col ink = dark ? p->paper : p->ink;
    fill_all(c, ground);
    int cols = 4 + (int)lround(fmin(s->onset, 8.0) / 2.0);
    cols = cols > 8 ? 8 : cols;
    double m = fmin(W, H) * 0.1;
    double cell = (W - 2 * m) / cols;
    int rows = (int)((H * 0.74 - m) / cell);
    if (rows < 3) { /* wide canvas: the height decides the cell, columns fill the width */
        rows = 3;
        cell = (H * 0.74 - m) / rows;
        cols = (int)((W - 2 * m) / cell);
    }
    double mx = (W - cols * cell) * 0.5; /* centred */
    double gap = cell * 0.06;
    uint32_t hs = c->seed * 2654435761u;
    sn_col cols5[6] = {p->acc[0], p->acc[1], p->acc[2], p->acc[3], p->acc[4], ink};
    for (int j = 0; j < rows; j++) {
        for (int i = 0; i < cols; i++) {
            double t = (i + 0.5) / cols;
            double band = 1.0 - (j + 0.5) / rows;
            double v = sn_spec_band(s, band - 0.5 / rows, band + 0.5 / rows, t);
            uint32_t h = sn_hash32(hs ^ (uint32_t)(j * 131 + i * 7919));
            double x = mx + i * cell + gap / 2;
            double y = m + j * cell + gap / 2;
            double sz = cell - gap;
            sn_col col = cols5[(h >> 8) % 6];
            sn_col col2 = cols5[(h >> 12) % 6];
            int shape = v < 0.08 ? 6 : (int)((h >> 4) % 6);
            int rot = (int)(h % 4);
            cairo_save(cr);
            cairo_translate(cr, x + sz / 2, y + sz / 2);
            cairo_rotate(cr, rot * M_PI / 2);
            cairo_translate(cr, -sz / 2, -sz / 2);
            if (shape != 6 && ((h >> 20) & 1)) {
                sn_source(cr, col2, 0.9);
                cairo_rectangle(cr, 0, 0, sz, sz);
                cairo_fill(cr);
            }
            sn_source(cr, col, 1.0);
            switch (shape) {
            case 0: /* quarter circle from a corner */
                cairo_move_to(cr, 0, 0);
                cairo_arc(cr, 0, 0, sz, 0, M_PI / 2);
                cairo_close_path(cr);
                cairo_fill(cr);
                break;
            case 1: /* circle, size by loudness */
                cairo_arc(cr, sz / 2, sz / 2, sz * (0.2 + 0.3 * v), 0, TAU);
                cairo_fill(cr);
                break;
            case 2: /* half circle */
                cairo_arc(cr, sz / 2, sz, sz / 2, M_PI, TAU);
                cairo_fill(cr);
                break;
            case 3: /* triangle */
                cairo_move_to(cr, 0, sz);
                cairo_line_to(cr, sz, sz);
                cairo_line_to(cr, 0, sz * (1.0 - v * 1.2 > 0 ? 1.0 - v * 1.2 : 0));
                cairo_close_path(cr);
                cairo_fill(cr);
                break;
            case 4: /* stripes, count by loudness */
            {
                int ns = 2 + (int)(v * 5);
                for (int k = 0; k < ns; k++) {
                    cairo_rectangle(cr, 0, sz * (k + 0.25) / ns, sz, sz * 0.5 / ns);
                }
                cairo_fill(cr);
                break;
            }
            case 5: /* ring */
                cairo_set_line_width(cr, sz * 0.12);
                cairo_arc(cr, sz / 2, sz / 2, sz * 0.32, 0, TAU);
                cairo_stroke(cr);
                break;
            default: /* quiet: a dot */
                sn_source(cr, ink, 0.5);
                cairo_arc(cr, sz / 2, sz / 2, sz * 0.05, 0, TAU);
                cairo_fill(cr);
                break;
            }
            cairo_restore(cr);
        }
    }
    /* One large circle across the grid, the focal accent. */
    double fx = mx + cell * (1 + sn_int(&c->rng, cols - 1));
    double fy = m + cell * (1 + sn_int(&c->rng, rows - 1));
    sn_source(cr, ink, 0.9);
    cairo_set_line_width(cr, 2.2 * u);
    cairo_arc(cr, fx, fy, fmin(cell * (1.2 + s->energy), fmin(W, H) * 0.33), 0, TAU);
    cairo_stroke(cr);
    c->grain = 0.03;
    c->paper = dark ? 0.0 : 0.4;
    c->text_dark = !dark;
}

/* ----------------------------------------------------------- psychedelic */

/* Kaleidoscopic, domain-warped colour bands computed per pixel at half
 * resolution (smooth by nature, so the bilinear upscale is invisible), then
 * crisp rings and petals on top. Symmetry order from the seed, band count
 * from the tempo, warp strength from the energy, the colour wheel from the key. */
static void paint_psychedelic(sn_ctx *c) {
    cairo_t *cr = c->cr;
    const sn_song *s = c->song;
    const sn_palette *p = &c->pal;
    double W = c->w;
    double H = c->h;
    double u = c->u;
    enum { LUT = 256 };
    uint32_t lut[LUT];
    double spin = sn_range(&c->rng, 0.0, 360.0);
    for (int i = 0; i < LUT; i++) {
        double t = (double)i / LUT;
        /* A walk two-thirds round the wheel from the key's hue, lightness breathing;
         * read back and forth (triangle wave), so the bands melt into each other. */
        sn_col col = sn_oklch(0.62 + 0.18 * sin(t * TAU * 1.5 + spin), 0.16 + 0.06 * s->energy, p->hue + t * 240.0);
        lut[i] = 0xFF000000u | (uint32_t)(col.r * 255.0 + 0.5) << 16 | (uint32_t)(col.g * 255.0 + 0.5) << 8 |
                 (uint32_t)(col.b * 255.0 + 0.5);
    }
    int order = 5 + sn_int(&c->rng, 4);
    double bands = 1.2 + s->tempo / 70.0;
    double warp = 0.5 + 1.1 * s->energy;
    double cx = 0.5 + sn_range(&c->rng, -0.05, 0.05);
    double cy = 0.45;
    uint32_t ws = c->seed * 29u + 13u;
    /* The energy curve read outward from the centre, smoothed (a step in
     * loudness would otherwise cut a hard, aliased ring through the bands). */
    enum { NRAD = 256 };
    double radial[NRAD];
    for (int i = 0; i < NRAD; i++) {
        double t = (double)i / (NRAD - 1);
        double acc = 0.0;
        for (int k = -6; k <= 6; k++) {
            acc += sn_energy(s, t + k * 0.01) * (7.0 - abs(k)) / 49.0;
        }
        radial[i] = acc;
    }
    soft sl;
    cairo_t *sc = soft_begin(c, &sl, 2.0);
    if (sl.surf != NULL) {
        cairo_surface_flush(sl.surf);
        uint8_t *d = cairo_image_surface_get_data(sl.surf);
        int st = cairo_image_surface_get_stride(sl.surf);
        int sw = cairo_image_surface_get_width(sl.surf);
        int sh = cairo_image_surface_get_height(sl.surf);
        double inv = 1.0 / (sw < sh ? sw : sh);
        for (int y = 0; y < sh; y++) {
            uint32_t *row = (uint32_t *)(void *)(d + (size_t)y * (size_t)st);
            for (int x = 0; x < sw; x++) {
                double nx = (x - cx * sw) * inv;
                double ny = (y - cy * sh) * inv;
                double r = sqrt(nx * nx + ny * ny);
                double a = atan2(ny, nx);
                double wedge = TAU / order;
                double fa = fmod(a + 10.0 * TAU, wedge);
                fa = fa > wedge * 0.5 ? wedge - fa : fa; /* mirror: kaleidoscope */
                double kx = r * cos(fa);
                double ky = r * sin(fa);
                double w1 = sn_fbm(kx * 3.0, ky * 3.0, ws);
                double e = radial[(int)(clamp01(r * 1.4) * (NRAD - 1))];
                double v = r * bands * (1.0 + 0.4 * e) + warp * w1 + 0.35 * sin(fa * order * 2.0);
                double fr = v - floor(v);
                double tri = 1.0 - fabs(2.0 * fr - 1.0); /* back and forth: no hard seams to alias */
                row[x] = lut[(int)(tri * (LUT - 1))];
            }
        }
        cairo_surface_mark_dirty(sl.surf);
    }
    soft_end(c, &sl, CAIRO_OPERATOR_SOURCE);
    (void)sc;
    /* Crisp on top: rings at radii set by the chroma, and petals of the spectrum. */
    double fx = cx * W;
    double fy = cy * H;
    double R = fmin(W, H) * 0.28;
    for (int k = 0; k < 12; k++) {
        double rr = R * (0.25 + 0.06 * k);
        sn_source(cr, k % 2 ? p->ink : (sn_col){1, 1, 1}, 0.25 + 0.5 * s->chroma[(k + s->key) % 12]);
        cairo_set_line_width(cr, u * (0.8 + 2.0 * s->chroma[(k + s->key) % 12]));
        cairo_arc(cr, fx, fy, rr, 0, TAU);
        cairo_stroke(cr);
    }
    int petals = order * 2;
    for (int i = 0; i < petals; i++) {
        double a = TAU * i / petals;
        double len = R * (0.45 + 0.5 * sn_spec_band(s, 0.0, 0.4, (double)i / petals));
        cairo_save(cr);
        cairo_translate(cr, fx, fy);
        cairo_rotate(cr, a);
        cairo_move_to(cr, R * 0.2, 0);
        cairo_curve_to(cr, R * 0.3, -len * 0.22, len * 0.8, -len * 0.1, len, 0);
        cairo_curve_to(cr, len * 0.8, len * 0.1, R * 0.3, len * 0.22, R * 0.2, 0);
        cairo_restore(cr);
        sn_source(cr, sn_oklch(0.85, 0.12, p->hue + 180.0 + i * 360.0 / petals * 0.25), 0.85);
        cairo_fill_preserve(cr);
        sn_source(cr, p->ink, 0.8);
        cairo_set_line_width(cr, 1.2 * u);
        cairo_stroke(cr);
    }
    sn_source(cr, p->ink, 1.0);
    cairo_arc(cr, fx, fy, R * 0.17, 0, TAU);
    cairo_fill(cr);
    sn_source(cr, p->glow, 1.0);
    cairo_arc(cr, fx, fy, R * 0.07, 0, TAU);
    cairo_fill(cr);
    c->grain = 0.0; /* the bands are texture enough */
    c->vignette = 0.35;
}

/* ------------------------------------------------------------- pixel art */

/* A game title screen: the scene is drawn without anti-aliasing on a small
 * canvas (about 112 px on the short edge), quantised to an 8-colour palette
 * with ordered (Bayer) dithering, and scaled up with nearest-neighbour. */
static void paint_pixel(sn_ctx *c) {
    cairo_t *cr = c->cr;
    const sn_song *s = c->song;
    const sn_palette *p = &c->pal;
    double scale = fmax(2.0, floor(fmin(c->w, c->h) / 112.0));
    int pw = (int)ceil(c->w / scale);
    int ph = (int)ceil(c->h / scale);
    cairo_surface_t *small = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, pw, ph);
    if (cairo_surface_status(small) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(small);
        fill_all(c, p->deep);
        return;
    }
    cairo_t *sc = cairo_create(small);
    cairo_set_antialias(sc, CAIRO_ANTIALIAS_NONE);
    sn_col pal8[8] = {sn_mix(p->deep, p->ink, 0.5), p->deep, p->mid, p->acc[1], p->acc[0], p->acc[2], p->acc[3],
                      p->glow};
    /* Four arrangements (seed modulo 4): 0 the title screen: a sun on the
     * mountains, a full-width equaliser; 1 a high horizon, a moon high on a
     * third, a tall narrow equaliser; 2 a low horizon, a big sun low on one
     * side, the equaliser as a skyline on the horizon; 3 a sunset over a
     * pixel sea with the sun's reflection, a small equaliser in a corner. */
    int arr = (int)(c->seed % 4u);
    double side = sn_unif(&c->rng) < 0.5 ? -1.0 : 1.0;
    double horizon;
    double sx;
    double sr = ph * (0.12 + 0.05 * s->energy);
    double lift = 0.4;        /* sun centre above the horizon, in radii */
    double bx0 = 0.0;         /* equaliser span, fractions of the width */
    double bx1 = 1.0;
    double bbase = 0.74;      /* its baseline, fraction of the height */
    double bheight = 0.2;
    switch (arr) {
    case 1:
        horizon = ph * sn_range(&c->rng, 0.42, 0.48);
        sx = pw * (0.5 + side * sn_range(&c->rng, 0.18, 0.26));
        sr *= 0.7;
        lift = 2.6;
        bx0 = 0.3;
        bx1 = 0.7;
        bheight = 0.3;
        break;
    case 2:
        horizon = ph * sn_range(&c->rng, 0.64, 0.68);
        sx = pw * (0.5 + side * sn_range(&c->rng, 0.2, 0.26));
        sr *= 1.5;
        lift = 0.2;
        bbase = horizon / ph;
        bheight = 0.24;
        break;
    case 3:
        horizon = ph * sn_range(&c->rng, 0.5, 0.54);
        sx = pw * (0.5 + side * sn_range(&c->rng, 0.0, 0.12));
        lift = 0.1;
        bx0 = side > 0 ? 0.04 : 0.66;
        bx1 = bx0 + 0.3;
        bbase = 0.76;
        bheight = 0.1;
        break;
    default:
        horizon = ph * sn_range(&c->rng, 0.55, 0.62);
        sx = pw * sn_range(&c->rng, 0.3, 0.7);
        break;
    }
    sn_col sky[3] = {pal8[1], pal8[2], sn_mix(pal8[3], pal8[7], 0.3)};
    double offs[3] = {0.0, 0.6, 1.0};
    fill_vertical_on(sc, pw, 0, horizon, sky, offs, 3);
    /* Stars, sun. */
    for (int i = 0; i < 40; i++) {
        sn_source(sc, pal8[7], 1.0);
        cairo_rectangle(sc, floor(sn_unif(&c->rng) * pw), floor(sn_unif(&c->rng) * horizon * 0.6), 1, 1);
        cairo_fill(sc);
    }
    sn_source(sc, pal8[7], 1.0);
    cairo_arc(sc, sx, horizon - sr * lift, sr, 0, TAU);
    cairo_fill(sc);
    /* Mountains from the spectrogram, two layers (none over the sea). */
    for (int l = 0; l < (arr == 3 ? 0 : 2); l++) {
        cairo_move_to(sc, 0, ph);
        for (int x = 0; x <= pw; x++) {
            double xf = (double)x / pw;
            double v = sn_spec_band(s, 0.4 * (1 - l), 0.4 * (1 - l) + 0.5, xf);
            double n = sn_noise2(xf * 8.0, l * 3.0, c->seed);
            cairo_line_to(sc, x, floor(horizon - ph * (0.22 - 0.1 * l) * (0.3 + 0.7 * v) - n * ph * 0.03));
        }
        cairo_line_to(sc, pw, ph);
        cairo_close_path(sc);
        sn_source(sc, l == 0 ? pal8[2] : pal8[1], 1.0);
        cairo_fill(sc);
    }
    /* Ground and an equaliser: one bar per column group, heights from the bands. */
    sn_source(sc, pal8[0], 1.0);
    if (arr == 3) {
        /* The sea: from the horizon down, the sun's reflection in broken rows. */
        sn_source(sc, pal8[1], 1.0);
        cairo_rectangle(sc, 0, floor(horizon), pw, ph);
        cairo_fill(sc);
        for (int y = (int)horizon + 1; y < ph; y += 2) {
            double f = (y - horizon) / (ph - horizon);
            double half = sr * (0.9 - 0.5 * f) * (0.6 + 0.4 * sn_unif(&c->rng));
            sn_source(sc, f < 0.5 ? pal8[7] : pal8[3], 1.0);
            cairo_rectangle(sc, floor(sx - half), y, floor(2 * half), 1);
            cairo_fill(sc);
        }
    } else {
        cairo_rectangle(sc, 0, floor(horizon + ph * 0.06), pw, ph);
        cairo_fill(sc);
    }
    int nbars = 12 + 2 * sn_int(&c->rng, 4);
    double bw = (double)pw * (bx1 - bx0) / nbars;
    double t = sn_range(&c->rng, 0.3, 0.7);
    double base = ph * bbase;
    for (int i = 0; i < nbars; i++) {
        double v = sn_spec_band(s, (double)i / nbars, (double)(i + 1) / nbars, t);
        int hgt = (int)(sqrt(v) * ph * bheight) + 1;
        for (int k = 0; k < hgt; k += 2) {
            double f = (double)k / (ph * bheight);
            sn_source(sc, f > 0.75 ? pal8[6] : (f > 0.45 ? pal8[5] : pal8[4]), 1.0);
            cairo_rectangle(sc, floor(pw * bx0 + i * bw) + 1, floor(base - k), fmax(1.0, floor(bw) - 1), 1);
            cairo_fill(sc);
        }
    }
    cairo_destroy(sc);
    /* Quantise to the 8 colours with a 4x4 Bayer matrix. */
    static const int bayer[4][4] = {{0, 8, 2, 10}, {12, 4, 14, 6}, {3, 11, 1, 9}, {15, 7, 13, 5}};
    cairo_surface_flush(small);
    uint8_t *d = cairo_image_surface_get_data(small);
    int st = cairo_image_surface_get_stride(small);
    for (int y = 0; y < ph; y++) {
        uint32_t *row = (uint32_t *)(void *)(d + (size_t)y * (size_t)st);
        for (int x = 0; x < pw; x++) {
            uint32_t px = row[x];
            double dth = (bayer[y & 3][x & 3] / 16.0 - 0.5) * 0.12;
            double r = ((px >> 16) & 255) / 255.0 + dth;
            double g = ((px >> 8) & 255) / 255.0 + dth;
            double b = (px & 255) / 255.0 + dth;
            int best = 0;
            double bd = 1e9;
            for (int k = 0; k < 8; k++) {
                double dr = r - pal8[k].r;
                double dg = g - pal8[k].g;
                double db = b - pal8[k].b;
                double dd = dr * dr * 0.3 + dg * dg * 0.59 + db * db * 0.11;
                if (dd < bd) {
                    bd = dd;
                    best = k;
                }
            }
            row[x] = 0xFF000000u | (uint32_t)(pal8[best].r * 255.0 + 0.5) << 16 |
                     (uint32_t)(pal8[best].g * 255.0 + 0.5) << 8 | (uint32_t)(pal8[best].b * 255.0 + 0.5);
        }
    }
    cairo_surface_mark_dirty(small);
    cairo_save(cr);
    cairo_scale(cr, scale, scale);
    cairo_set_source_surface(cr, small, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
    cairo_set_operator(cr, CAIRO_OPERATOR_SOURCE);
    cairo_paint(cr);
    cairo_restore(cr);
    cairo_surface_destroy(small);
    c->text_top = 0.78;
}

/* ------------------------------------------------------------- the table */

typedef struct style_row {
    const char *name;
    const char *key; /* normalised */
    sn_painter paint;
} style_row;

static const style_row k_styles[] = {
    {"abstract", "abstract", paint_abstract},
    {"realistic", "realistic", paint_realistic},
    {"minimalist", "minimalist", paint_minimalist},
    {"synthwave", "synthwave", paint_synthwave},
    {"watercolor", "watercolor", paint_watercolor},
    {"album-cover", "albumcover", paint_album},
    {"ink", "ink", paint_ink},
    {"oil-painting", "oilpainting", paint_oil},
    {"cinematic", "cinematic", paint_cinematic},
    {"retro-poster", "retroposter", paint_retro},
    {"geometric", "geometric", paint_geometric},
    {"vaporwave", "vaporwave", paint_vaporwave},
    {"psychedelic", "psychedelic", paint_psychedelic},
    {"pixel-art", "pixelart", paint_pixel},
};

/* The names of data/presets.json, in its order. */
const char *const sn_style_names[] = {"abstract",  "realistic",    "minimalist", "synthwave",    "watercolor",
                                      "album-cover", "ink",        "oil-painting", "cinematic", "retro-poster",
                                      "geometric", "vaporwave",    "psychedelic", "pixel-art",  NULL};

sn_painter sn_style_find(const char *style, const char **canonical) {
    char key[48];
    size_t n = 0;
    for (const char *p = style != NULL ? style : ""; *p != 0 && n + 1 < sizeof key; p++) {
        if (isalnum((unsigned char)*p)) {
            key[n++] = (char)tolower((unsigned char)*p);
        }
    }
    key[n] = 0;
    /* Common spellings. */
    if (strcmp(key, "watercolour") == 0) {
        (void)snprintf(key, sizeof key, "watercolor");
    } else if (strcmp(key, "oil") == 0) {
        (void)snprintf(key, sizeof key, "oilpainting");
    } else if (strcmp(key, "retro") == 0) {
        (void)snprintf(key, sizeof key, "retroposter");
    } else if (strcmp(key, "album") == 0) {
        (void)snprintf(key, sizeof key, "albumcover");
    } else if (strcmp(key, "pixel") == 0 || strcmp(key, "8bit") == 0) {
        (void)snprintf(key, sizeof key, "pixelart");
    } else if (strcmp(key, "minimal") == 0) {
        (void)snprintf(key, sizeof key, "minimalist");
    }
    for (size_t i = 0; i < sizeof k_styles / sizeof k_styles[0]; i++) {
        if (strcmp(key, k_styles[i].key) == 0) {
            if (canonical != NULL) {
                *canonical = k_styles[i].name;
            }
            return k_styles[i].paint;
        }
    }
    if (canonical != NULL) {
        *canonical = "abstract";
    }
    return paint_abstract;
}
