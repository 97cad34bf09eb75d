/*
 * render/layout.c — poster typography for --layout: a strong title, then one
 * line of small letter-spaced capitals (artist · BPM · key), set with pango
 * in DejaVu (fonts-dejavu-core, which the install guarantees; fontconfig
 * falls back to other installed fonts for scripts DejaVu lacks: the install
 * adds fonts-droid-fallback for CJK). Emoji that no installed font has are
 * dropped from the line rather than drawn as hex boxes.
 *
 * Type choices per style: serif for the painterly styles (watercolor, ink,
 * oil painting, realistic, cinematic), condensed bold capitals for the
 * retro, synthwave and pixel-art posters, extra-light for minimalist, bold sans for the
 * rest. Long titles wrap to at most two lines and shrink (down to 3.2 % of
 * the short edge), then end with an ellipsis. Text sits in the calm bottom
 * band every painter leaves free; light text gets a soft scrim under it.
 */
#include <math.h>
#include <pango/pangocairo.h>
#include <stdio.h>
#include <string.h>

#include "render/sonic_int.h"

/* Sanitizer builds: fontconfig (2.14, Debian 12) loses 256 bytes once while
 * parsing its XML configuration. It does not grow with use, but LeakSanitizer
 * would fail every run that sets type, so it is suppressed here, in the one
 * object every program that draws text links (a weak hook of the sanitizer
 * runtime; no effect in normal builds). Nothing else may define this hook. */
#if defined(__SANITIZE_ADDRESS__)
#define M2P_LSAN_HOOK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define M2P_LSAN_HOOK 1
#endif
#endif
#ifdef M2P_LSAN_HOOK
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:libfontconfig.so\n";
}
#endif

static const char *const k_key_names[12] = {"C", "C\xE2\x99\xAF", "D", "E\xE2\x99\xAD", "E", "F",
                                            "F\xE2\x99\xAF", "G", "A\xE2\x99\xAD", "A", "B\xE2\x99\xAD", "B"};

typedef struct type_spec {
    const char *title_font; /* pango description without size */
    bool upper;             /* title in capitals */
    bool centred;
    double title_scale;     /* of the short edge */
} type_spec;

static type_spec type_for(const char *style) {
    type_spec t = {"DejaVu Sans Bold", false, false, 0.085};
    if (style == NULL) {
        return t;
    }
    if (strcmp(style, "watercolor") == 0 || strcmp(style, "ink") == 0 || strcmp(style, "oil-painting") == 0 ||
        strcmp(style, "realistic") == 0) {
        t.title_font = "DejaVu Serif Bold";
    } else if (strcmp(style, "cinematic") == 0) {
        t.title_font = "DejaVu Serif";
        t.upper = true;
        t.centred = true;
        t.title_scale = 0.05;
    } else if (strcmp(style, "retro-poster") == 0 || strcmp(style, "synthwave") == 0 ||
               strcmp(style, "pixel-art") == 0) {
        t.title_font = "DejaVu Sans Condensed Bold";
        t.upper = true;
        t.centred = true;
    } else if (strcmp(style, "vaporwave") == 0) {
        t.title_font = "DejaVu Sans Bold";
        t.centred = true;
    } else if (strcmp(style, "minimalist") == 0) {
        t.title_font = "DejaVu Sans ExtraLight";
        t.title_scale = 0.075;
    }
    return t;
}

/* True for code points that are pictographs or emoji plumbing (variation
 * selectors, zero-width joiner, skin tones, keycaps): dropped from a line
 * when no installed font has them, instead of drawing hex boxes. */
static bool is_emoji(gunichar ch) {
    return (ch >= 0x1F000 && ch <= 0x1FAFF) || (ch >= 0x2600 && ch <= 0x27BF) || (ch >= 0xFE00 && ch <= 0xFE0F) ||
           ch == 0x200D || ch == 0x20E3 || (ch >= 0xE0020 && ch <= 0xE007F) || (ch >= 0x2B00 && ch <= 0x2BFF);
}

/* Removes emoji from buf in place, collapsing the spaces they leave. */
static void drop_emoji(char *buf) {
    char *w = buf;
    const char *p = buf;
    while (*p != 0) {
        const char *next = g_utf8_next_char(p);
        gunichar ch = g_utf8_get_char(p);
        if (!is_emoji(ch) && !(ch == ' ' && (w == buf || w[-1] == ' '))) {
            size_t cl = (size_t)(next - p);
            memmove(w, p, cl);
            w += cl;
        }
        p = next;
    }
    while (w > buf && w[-1] == ' ') {
        w--;
    }
    *w = 0;
}

/* Sets text on lay; when some glyph is missing from every font, retries without emoji. */
static void set_text_fallback(PangoLayout *lay, char *buf) {
    pango_layout_set_text(lay, buf, -1);
    if (pango_layout_get_unknown_glyphs_count(lay) > 0) {
        drop_emoji(buf);
        pango_layout_set_text(lay, buf, -1);
    }
}

static void set_font(PangoLayout *lay, const char *desc, double px) {
    PangoFontDescription *fd = pango_font_description_from_string(desc);
    pango_font_description_set_absolute_size(fd, px * PANGO_SCALE);
    pango_layout_set_font_description(lay, fd);
    pango_font_description_free(fd);
}

static void set_attrs(PangoLayout *lay, bool upper, double spacing_px) {
    PangoAttrList *al = pango_attr_list_new();
    if (upper) {
        pango_attr_list_insert(al, pango_attr_text_transform_new(PANGO_TEXT_TRANSFORM_UPPERCASE));
    }
    if (spacing_px != 0.0) {
        pango_attr_list_insert(al, pango_attr_letter_spacing_new((int)(spacing_px * PANGO_SCALE)));
    }
    pango_layout_set_attributes(lay, al);
    pango_attr_list_unref(al);
}

/* Copies s into buf, dropping control characters and the bytes of invalid
 * UTF-8 (a Latin-1 file name keeps its readable letters), tabs and newlines
 * as spaces; at most cap-1 bytes, cut on a character boundary. */
static void clean_text(const char *s, char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = 0;
    if (s == NULL) {
        return;
    }
    const char *p = s;
    while (*p != 0) {
        gunichar ch = g_utf8_get_char_validated(p, -1);
        if (ch == (gunichar)-1 || ch == (gunichar)-2) {
            p++; /* not a character: skip the byte */
            continue;
        }
        const char *next = g_utf8_next_char(p);
        size_t cl = (size_t)(next - p);
        if (n + cl + 1 > cap) {
            break;
        }
        if (ch == '\n' || ch == '\t') {
            buf[n++] = ' ';
        } else if (!g_unichar_iscntrl(ch)) {
            memcpy(buf + n, p, cl);
            n += cl;
        }
        p = next;
    }
    buf[n] = 0;
}

void sn_layout_draw(sn_ctx *c, const char *title, const char *artist) {
    cairo_t *cr = c->cr;
    const sn_song *s = c->song;
    double W = c->w;
    double H = c->h;
    double e = W < H ? W : H;
    type_spec ts = type_for(c->style);
    bool cinematic = c->style != NULL && strcmp(c->style, "cinematic") == 0;
    double m = e * 0.07;
    double box_w = W - 2 * m;
    char tbuf[512];
    char abuf[256];
    clean_text(title, tbuf, sizeof tbuf);
    clean_text(artist, abuf, sizeof abuf);
    char details[400];
    char bpm[32];
    (void)snprintf(bpm, sizeof bpm, "%.0f BPM", s->tempo);
    (void)snprintf(details, sizeof details, "%s%s%s  \xC2\xB7  %s %s", abuf, abuf[0] != 0 ? "  \xC2\xB7  " : "", bpm,
                   k_key_names[s->key], s->minor ? "minor" : "major");

    sn_col fg = c->text_dark ? c->pal.ink : sn_mix(c->pal.glow, (sn_col){1, 1, 1}, 0.6);
    /* A private font map per poster: nothing cached in thread-local state
     * outlives the render (pango's per-thread default map would be held by
     * the thread pool), at the cost of a font lookup per poster. */
    PangoFontMap *fm = pango_cairo_font_map_new();
    PangoContext *pc = pango_font_map_create_context(fm);
    pango_cairo_update_context(cr, pc);
    PangoLayout *tl = pango_layout_new(pc);
    PangoLayout *dl = pango_layout_new(pc);
    PangoLayout *kl = pango_layout_new(pc);
    /* Kicker (the section label): small letter-spaced capitals above the
     * title, or centred in the top letterbox bar of the cinematic poster. */
    char kbuf[256];
    clean_text(c->kicker, kbuf, sizeof kbuf);
    double ksize = e * (cinematic ? 0.02 : 0.024);
    int kw = 0;
    int kh = 0;
    if (kbuf[0] != 0) {
        set_font(kl, "DejaVu Sans Bold", ksize);
        set_text_fallback(kl, kbuf);
    }
    if (kbuf[0] != 0) {
        set_attrs(kl, true, ksize * 0.25);
        pango_layout_set_width(kl, (int)(box_w * PANGO_SCALE));
        pango_layout_set_ellipsize(kl, PANGO_ELLIPSIZE_END);
        pango_layout_set_alignment(kl, ts.centred || cinematic ? PANGO_ALIGN_CENTER : PANGO_ALIGN_LEFT);
        pango_layout_get_pixel_size(kl, &kw, &kh);
    }
    double kgap = kh > 0 && !cinematic ? ksize * 0.9 : 0.0;
    double kblock = cinematic ? 0.0 : kh + kgap; /* what the kicker takes from the bottom band */
    /* Title: shrink until it fits two lines (one in the cinematic bar). */
    int max_lines = cinematic ? 1 : 2;
    double size = e * ts.title_scale;
    double min_size = e * 0.032;
    int tw = 0;
    int th = 0;
    if (tbuf[0] != 0) {
        set_font(tl, ts.title_font, size);
        set_text_fallback(tl, tbuf);
    }
    if (tbuf[0] != 0) { /* still something after dropping emoji */
        pango_layout_set_width(tl, (int)(box_w * PANGO_SCALE));
        pango_layout_set_wrap(tl, PANGO_WRAP_WORD_CHAR);
        pango_layout_set_alignment(tl, ts.centred ? PANGO_ALIGN_CENTER : PANGO_ALIGN_LEFT);
        /* Room for title + details between text_top and the bottom margin. */
        double room = cinematic ? H * 0.13 * 0.6
                                : (H - m) - H * (c->text_top > 0.0 ? c->text_top : 0.72) - e * 0.06 - kblock;
        for (;;) {
            set_font(tl, ts.title_font, size);
            set_attrs(tl, ts.upper, ts.upper ? size * 0.04 : -size * 0.01);
            pango_layout_set_spacing(tl, (int)(-size * 0.08 * PANGO_SCALE));
            int lw = 0;
            int lh = 0;
            pango_layout_get_pixel_size(tl, &lw, &lh);
            if ((pango_layout_get_line_count(tl) <= max_lines && lh <= room) || size <= min_size) {
                break;
            }
            size = fmax(min_size, size * 0.9);
        }
        if (pango_layout_get_line_count(tl) > max_lines) {
            pango_layout_set_height(tl, -max_lines);
            pango_layout_set_ellipsize(tl, PANGO_ELLIPSIZE_END);
        }
        pango_layout_get_pixel_size(tl, &tw, &th);
    }
    double dsize = e * (cinematic ? 0.018 : 0.021);
    set_font(dl, "DejaVu Sans", dsize);
    set_text_fallback(dl, details);
    set_attrs(dl, true, dsize * 0.22);
    pango_layout_set_width(dl, (int)(box_w * PANGO_SCALE));
    pango_layout_set_ellipsize(dl, PANGO_ELLIPSIZE_END);
    pango_layout_set_alignment(dl, ts.centred ? PANGO_ALIGN_CENTER : PANGO_ALIGN_LEFT);
    int dw = 0;
    int dh = 0;
    pango_layout_get_pixel_size(dl, &dw, &dh);
    double gap = dsize * 1.1;
    double block = kblock + th + (th > 0 ? gap : 0) + dh;
    double top;
    if (cinematic) {
        double bar = H * 0.13;
        top = H - bar + (bar - block) * 0.5;
    } else {
        top = H - m - block;
    }
    if (!c->text_dark && !cinematic) {
        cairo_pattern_t *g = cairo_pattern_create_linear(0, top - m * 1.5, 0, H);
        cairo_pattern_add_color_stop_rgba(g, 0.0, 0, 0, 0, 0.0);
        cairo_pattern_add_color_stop_rgba(g, 1.0, 0, 0, 0, 0.45);
        cairo_set_source(cr, g);
        cairo_rectangle(cr, 0, top - m * 1.5, W, H - top + m * 1.5);
        cairo_fill(cr);
        cairo_pattern_destroy(g);
    }
    if (kh > 0) {
        /* accent colour pulled toward the text colour, so it reads on any ground */
        sn_source(cr, sn_mix(c->pal.acc[0], fg, c->text_dark ? 0.55 : 0.35), 0.95);
        if (cinematic) {
            double bar = H * 0.13;
            cairo_move_to(cr, m, (bar - kh) * 0.5);
        } else {
            cairo_move_to(cr, m, top);
        }
        pango_cairo_show_layout(cr, kl);
        top += kblock;
    }
    if (th > 0) {
        sn_source(cr, fg, 1.0);
        cairo_move_to(cr, m, top);
        pango_cairo_show_layout(cr, tl);
    }
    /* What was set, for the caller (tests, metadata): the texts after cleaning. */
    (void)snprintf(c->typeset, sizeof c->typeset, "%s%s%s%s%s", kh > 0 ? pango_layout_get_text(kl) : "",
                   kh > 0 ? "\n" : "", th > 0 ? pango_layout_get_text(tl) : "", th > 0 ? "\n" : "",
                   dh > 0 ? pango_layout_get_text(dl) : "");
    /* A short accent rule between title and details. */
    double ry = top + th + gap * 0.45;
    double rw = e * 0.06;
    double rx = ts.centred ? W * 0.5 - rw * 0.5 : m;
    if (th > 0) {
        sn_source(cr, c->pal.acc[0], 1.0);
        cairo_rectangle(cr, rx, ry - c->u, rw, 2.0 * c->u);
        cairo_fill(cr);
    }
    sn_source(cr, fg, 0.82);
    cairo_move_to(cr, m, top + th + (th > 0 ? gap : 0));
    pango_cairo_show_layout(cr, dl);
    g_object_unref(tl);
    g_object_unref(dl);
    g_object_unref(kl);
    g_object_unref(pc);
    g_object_unref(fm);
}
