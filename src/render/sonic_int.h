/*
 * render/sonic_int.h — internals shared by the sonic renderer's files
 * (sonic.c: backend and threads; sonic_kit.c: colour, randomness, the song
 * view, pixel post-processing; sonic_styles.c: one painter per style;
 * layout.c: poster typography). Not a public header.
 *
 * Everything here is pure with respect to its arguments: a painter draws on
 * the cairo context it is given, with randomness only from the sn_rng seeded
 * by the image's seed, so the same request and seed give the same pixels on
 * any thread.
 */
#ifndef M2P_RENDER_SONIC_INT_H
#define M2P_RENDER_SONIC_INT_H

#include <cairo.h>
#include <stdbool.h>
#include <stdint.h>

#include "render/render.h"

/* ---- colour (sRGB components 0..1) ---- */
typedef struct sn_col {
    double r, g, b;
} sn_col;

/* OKLCH (L 0..1, C ~0..0.37, h degrees) → sRGB, chroma reduced until in gamut. */
sn_col sn_oklch(double L, double C, double h);
/* sRGB → OKLCH lightness (perceived lightness, 0..1). */
double sn_lightness(sn_col c);
sn_col sn_mix(sn_col a, sn_col b, double t);
void sn_source(cairo_t *cr, sn_col c, double alpha);
void sn_stop(cairo_pattern_t *p, double off, sn_col c, double alpha);

/* ---- deterministic randomness ---- */
typedef struct sn_rng {
    uint64_t s;
} sn_rng;

void sn_rng_seed(sn_rng *r, uint64_t seed, uint64_t stream);
uint64_t sn_next(sn_rng *r);
double sn_unif(sn_rng *r);                  /* [0, 1) */
double sn_range(sn_rng *r, double a, double b); /* [a, b) */
double sn_gauss(sn_rng *r);                 /* mean 0, sd 1 */
int sn_int(sn_rng *r, int n);               /* 0..n-1 */
uint32_t sn_hash32(uint32_t x);
/* Smooth value noise in [-1, 1] (period-free), and 4-octave fbm. */
double sn_noise2(double x, double y, uint32_t seed);
double sn_fbm(double x, double y, uint32_t seed);

/* ---- the song as the painters see it (a section's slice when asked) ---- */
typedef struct sn_song {
    const float *spec; /* bands x frames of the whole song, may be NULL */
    int bands, frames;
    const float *curve; /* whole-song energy curve, may be NULL */
    int n_curve;
    double t0, t1;      /* slice of the song drawn, fractions 0..1 */
    double spec_gain;   /* lifts quiet spectrograms (1..3), from the slice's 95th percentile */
    double curve_gain;  /* lifts quiet energy curves (1..3), from the slice's maximum */
    double duration_s;
    double tempo, energy, bright, perc, onset, valence, arousal, dance;
    double chroma[12];
    int key;
    bool minor;
    /* sections of the slice, times normalised to the slice (0..1) */
    int n_secs;
    double sec_start[32], sec_end[32], sec_energy[32], sec_bright[32];
    int sec_label[32];
    /* beats in the slice, normalised to 0..1, at most 4096 */
    int n_beats;
    double beat[4096];
} sn_song;

/* Fills s from features (section -1 = whole song); every number clamped to sane ranges. */
void sn_song_init(sn_song *s, const m2p_features *f, int section);
/* Spectrogram value 0..1 at band fraction b (0 = lowest) and time fraction t
 * of the slice, bilinear; synthesised from the energy curve and chroma when
 * the features carry no spectrogram. */
double sn_spec(const sn_song *s, double b, double t);
/* Mean of the spectrogram over bands [b0, b1) at time t (a few samples). */
double sn_spec_band(const sn_song *s, double b0, double b1, double t);
/* Energy curve 0..1 at time fraction t of the slice (spectrogram mean when absent). */
double sn_energy(const sn_song *s, double t);

/* ---- palette: key → hue wheel, mode, energy, brightness, seed ---- */
typedef struct sn_palette {
    double hue;     /* base hue, degrees (OKLCH) */
    double chroma;  /* accent chroma from energy */
    double light;   /* accent lightness from brightness */
    sn_col deep;    /* darkest background tone (tinted) */
    sn_col mid;     /* mid background tone */
    sn_col paper;   /* light ground for paper styles */
    sn_col ink;     /* near-black, tinted */
    sn_col acc[5];  /* accents: 0 = key colour, 1..4 by the harmony scheme */
    sn_col glow;    /* light, warm/cool highlight */
    int scheme;     /* 0 analogous, 1 complementary, 2 split, 3 triadic */
} sn_palette;

/* Hue of a key (0 = C ... 11 = B) on the circle of fifths, degrees. */
double sn_key_hue(int key);
void sn_palette_make(sn_palette *p, const sn_song *s, sn_rng *r);

/* ---- what a painter gets ---- */
typedef struct sn_ctx {
    cairo_t *cr;
    cairo_surface_t *surf; /* ARGB32 image surface, opaque */
    int w, h;
    double u;        /* unit: min(w, h) / 1000 */
    uint32_t seed;
    const char *style; /* canonical style name */
    sn_rng rng;
    const sn_song *song;
    sn_palette pal;
    /* post-processing the painter asks for (applied by sonic.c after it) */
    double grain, vignette, paper;
    double scanlines;
    /* typography sits in the bottom band; painters keep it calm below text_top */
    double text_top; /* fraction of the height where the text band may start (default 0.72) */
    bool text_dark; /* true: dark text reads better than light on this poster */
    /* typography input/output (layout.c) */
    const char *kicker;  /* small line above the title (the section label), NULL/"" for none */
    char typeset[1024];  /* what sn_layout_draw set, one line per block: kicker, title, details */
} sn_ctx;

typedef void (*sn_painter)(sn_ctx *c);

/* The painter of a style name (normalised: case and - _ space ignored);
 * unknown → abstract. *canonical gets the canonical name. */
sn_painter sn_style_find(const char *style, const char **canonical);
/* Canonical style names, NULL-terminated. */
extern const char *const sn_style_names[];

/* ---- pixels ---- */
/* Grain, vignette, paper mottling, scanlines on the surface's pixels. */
void sn_post(sn_ctx *c);
/* Halftone: where the A8 mask is set, dots of colour col whose area follows
 * the mask (cell px, angle radians), over the ARGB32 surface. */
void sn_halftone(cairo_surface_t *dst, cairo_surface_t *mask, sn_col col, double cell, double angle);
/* ARGB32 surface → packed RGB. */
void sn_to_rgb(cairo_surface_t *s, uint8_t *rgb, size_t stride);

/* ---- typography (layout.c) ---- */
/* Title, artist, BPM and key set on the poster, with c->kicker (the section
 * label of a --per-section poster) above the title, or in the top letterbox
 * bar of the cinematic style; never fails (text that cannot be set is
 * skipped). c->typeset gets the text actually set (after cleaning), a line per block. */
void sn_layout_draw(sn_ctx *c, const char *title, const char *artist);

#endif
