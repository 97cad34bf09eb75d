/*
 * tests/unit/prompt/test_prompt.c — presets, templates and the prompt builder:
 * contrasting songs give the expected, different fragments; every preset fits
 * 77 CLIP tokens for several songs; template and style errors give their
 * codes; over-long templates are shortened by priority and say so; the same
 * input gives the same prompt; allocation failures clean up.
 */
#include "test_util.h"

#include <math.h>
#include <pthread.h>

#include "core/alloc.h"
#include "prompt/clip_tokenizer.h"
#include "prompt/presets.h"
#include "prompt/prompt.h"

typedef struct fixture {
    m2p_presets *presets;
    m2p_clip_tokenizer *tok;
    m2p_section sections[4];
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    assert_int_equal(m2p_presets_load(&fx->presets, NULL), M2P_OK);
    assert_int_equal(m2p_clip_tokenizer_default(&fx->tok, NULL), M2P_OK);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    m2p_presets_free(fx->presets);
    m2p_clip_tokenizer_free(fx->tok);
    free(fx);
    return 0;
}

/* --- songs --------------------------------------------------------------------------------------- */

static m2p_section k_even[3] = {{0, 60, 0.30, 0.3, 0}, {60, 120, 0.35, 0.3, 1}, {120, 180, 0.32, 0.3, 0}};
static m2p_section k_rise[4] = {
    {0, 40, 0.30, 0.4, 0}, {40, 90, 0.55, 0.5, 1}, {90, 150, 0.80, 0.7, 2}, {150, 200, 0.92, 0.8, 2}};
static m2p_section k_peak[3] = {{0, 80, 0.20, 0.3, 0}, {80, 160, 0.85, 0.6, 1}, {160, 240, 0.25, 0.3, 0}};

/* Calm piano in a major key. */
static m2p_features calm_piano(void) {
    m2p_features f = {0};
    f.duration_s = 180;
    f.tempo_bpm = 72;
    f.tempo_confidence = 0.7;
    f.beat_regularity = 0.6;
    f.key = 0; /* C */
    f.mode = M2P_MODE_MAJOR;
    f.key_confidence = 0.8;
    f.energy = 0.22;
    f.loudness_db = -24;
    f.dynamic_range_db = 12;
    f.brightness = 0.30;
    f.percussiveness = 0.10;
    f.onset_density = 1.2;
    f.danceability = 0.2;
    f.valence = 0.75;
    f.arousal = 0.20;
    f.sections = k_even;
    f.n_sections = 3;
    return f;
}

/* Fast minor electronic track that builds. */
static m2p_features fast_electronic(void) {
    m2p_features f = {0};
    f.duration_s = 200;
    f.tempo_bpm = 150;
    f.tempo_confidence = 0.9;
    f.beat_regularity = 0.9;
    f.key = 9; /* A */
    f.mode = M2P_MODE_MINOR;
    f.key_confidence = 0.7;
    f.energy = 0.85;
    f.loudness_db = -7;
    f.dynamic_range_db = 8;
    f.brightness = 0.70;
    f.percussiveness = 0.72;
    f.onset_density = 6.5;
    f.danceability = 0.85;
    f.valence = 0.25;
    f.arousal = 0.88;
    f.sections = k_rise;
    f.n_sections = 4;
    return f;
}

/* Orchestral piece: sustained, wide dynamics, a peak in the middle. */
static m2p_features orchestral(void) {
    m2p_features f = {0};
    f.duration_s = 240;
    f.tempo_bpm = 96;
    f.tempo_confidence = 0.4;
    f.beat_regularity = 0.3;
    f.key = 2; /* D */
    f.mode = M2P_MODE_MAJOR;
    f.key_confidence = 0.6;
    f.energy = 0.50;
    f.loudness_db = -18;
    f.dynamic_range_db = 26;
    f.brightness = 0.45;
    f.percussiveness = 0.15;
    f.onset_density = 2.0;
    f.danceability = 0.3;
    f.valence = 0.50;
    f.arousal = 0.50;
    f.sections = k_peak;
    f.n_sections = 3;
    return f;
}

/* Dark minor ballad: minor mode, low brightness. */
static m2p_features dark_ballad(void) {
    m2p_features f = calm_piano();
    f.mode = M2P_MODE_MINOR;
    f.key = 4; /* E */
    f.brightness = 0.21;
    f.valence = 0.2;
    f.arousal = 0.3;
    f.energy = 0.3;
    return f;
}

static const m2p_fragment *find_frag(const m2p_prompt *p, const char *var) {
    for (size_t i = 0; i < p->n_fragments; i++) {
        if (strcmp(p->fragments[i].variable, var) == 0) {
            return &p->fragments[i];
        }
    }
    fail_msg("no fragment for {%s}", var);
    return NULL;
}

static void expect_frag(const m2p_prompt *p, const char *var, const char *text) {
    const m2p_fragment *f = find_frag(p, var);
    if (strcmp(f->text, text) != 0) {
        fail_msg("{%s} is \"%s\", expected \"%s\" (reason: %s)", var, f->text, text, f->reason);
    }
    assert_true(strlen(f->feature) > 0);
    assert_true(strlen(f->reason) > 0);
    if (f->kept && strstr(p->positive, text) == NULL) {
        fail_msg("kept fragment \"%s\" missing from \"%s\"", text, p->positive);
    }
}

static m2p_prompt *build(fixture *fx, const m2p_features *f, const char *style, const char *tpl, m2p_error *err) {
    m2p_prompt_input in = {0};
    in.features = f;
    in.style = style;
    in.template_text = tpl;
    in.presets = fx->presets;
    in.tokenizer = fx->tok;
    m2p_prompt *p = NULL;
    m2p_code rc = m2p_prompt_build(&in, &p, err);
    if (rc != M2P_OK) {
        assert_null(p);
        return NULL;
    }
    assert_non_null(p);
    return p;
}

/* --- tests ---------------------------------------------------------------------------------------- */

static void test_contrasting_songs(void **state) {
    fixture *fx = *state;
    m2p_features a = calm_piano();
    m2p_features b = fast_electronic();
    m2p_features c = orchestral();
    m2p_features d = dark_ballad();
    m2p_error err;
    m2p_prompt *pa = build(fx, &a, "abstract", NULL, &err);
    m2p_prompt *pb = build(fx, &b, "abstract", NULL, &err);
    m2p_prompt *pc = build(fx, &c, "abstract", NULL, &err);
    m2p_prompt *pd = build(fx, &d, "abstract", NULL, &err);
    assert_non_null(pa);
    assert_non_null(pb);
    assert_non_null(pc);
    assert_non_null(pd);
    print_message("calm piano : %s\nelectronic : %s\norchestral : %s\ndark ballad: %s\n", pa->positive, pb->positive,
                  pc->positive, pd->positive);

    expect_frag(pa, "mood", "tender, peaceful");
    expect_frag(pa, "motion", "serene, gentle drift");
    expect_frag(pa, "palette", "soft, warm candlelit palette");
    expect_frag(pa, "color", "vivid scarlet and crimson hues");
    expect_frag(pa, "texture", "smooth, velvety washes");
    expect_frag(pa, "arc", "steady, unwavering atmosphere");
    expect_frag(pa, "genre_hint", "gentle acoustic piano");

    expect_frag(pb, "mood", "dark, tense intensity");
    expect_frag(pb, "motion", "kinetic, fractured motion");
    expect_frag(pb, "texture", "punchy, staccato shapes");
    expect_frag(pb, "energy", "explosive, high energy");
    expect_frag(pb, "arc", "building to a bright climax");
    expect_frag(pb, "color", "deep forest green and teal hues");
    expect_frag(pb, "genre_hint", "electronic dance music");
    assert_non_null(strstr(find_frag(pb, "motion")->reason, "fast tempo + dense onsets"));
    assert_non_null(strstr(find_frag(pb, "motion")->feature, "tempo=150 BPM"));

    expect_frag(pc, "genre_hint", "orchestral, cinematic score");
    expect_frag(pc, "texture", "sweeping, layered swells");
    expect_frag(pc, "arc", "rising to a peak, then fading");
    expect_frag(pc, "color", "sunny yellow and gold hues");

    expect_frag(pd, "palette", "moody, cool dusk palette");
    assert_string_equal(find_frag(pd, "palette")->reason, "minor mode + low brightness");
    assert_non_null(strstr(find_frag(pd, "palette")->feature, "brightness=0.21"));
    expect_frag(pd, "mood", "melancholic, wistful");

    /* Clearly different prompts. */
    assert_string_not_equal(pa->positive, pb->positive);
    assert_string_not_equal(pa->positive, pc->positive);
    assert_string_not_equal(pb->positive, pc->positive);
    assert_string_not_equal(pa->positive, pd->positive);
    m2p_prompt_free(pa);
    m2p_prompt_free(pb);
    m2p_prompt_free(pc);
    m2p_prompt_free(pd);
}

/* No comma-separated item of a prompt appears twice (two fragments once both said "moody"). */
static void assert_no_repeated_item(const char *s) {
    const char *a = s;
    while (*a != '\0') {
        const char *e = strchr(a, ',');
        size_t len = e != NULL ? (size_t)(e - a) : strlen(a);
        for (const char *b = e; b != NULL;) {
            b++;
            while (*b == ' ') {
                b++;
            }
            const char *f = strchr(b, ',');
            size_t blen = f != NULL ? (size_t)(f - b) : strlen(b);
            if (blen == len && strncmp(a, b, len) == 0) {
                fail_msg("'%.*s' appears twice in: %s", (int)len, a, s);
            }
            b = f;
        }
        if (e == NULL) {
            break;
        }
        a = e + 1;
        while (*a == ' ') {
            a++;
        }
    }
}

static void test_every_preset_fits(void **state) {
    fixture *fx = *state;
    size_t n = m2p_presets_count(fx->presets);
    assert_true(n >= 12);
    static const char *required[] = {"abstract",   "realistic",    "minimalist", "synthwave",
                                     "watercolor", "album-cover",  "ink",        "oil-painting",
                                     "cinematic",  "retro-poster", "geometric",  "vaporwave"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        const m2p_preset *pr = NULL;
        assert_int_equal(m2p_presets_find(fx->presets, required[i], &pr, NULL), M2P_OK);
        assert_true(strlen(pr->description) > 10);
        assert_true(strlen(pr->negative) > 0);
        assert_true(pr->steps >= 1);
    }
    /* Spellings and aliases (the sonic renderer accepts the same ones). */
    static const char *spellings[][2] = {
        {"Oil Painting", "oil-painting"}, {"OILPAINTING", "oil-painting"}, {"oil", "oil-painting"},
        {"watercolour", "watercolor"},    {"8bit", "pixel-art"},           {"album_cover", "album-cover"},
        {"minimal", "minimalist"},        {"Retro", "retro-poster"}};
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++) {
        const m2p_preset *pr = NULL;
        assert_int_equal(m2p_presets_find(fx->presets, spellings[i][0], &pr, NULL), M2P_OK);
        assert_string_equal(pr->name, spellings[i][1]);
    }
    const m2p_preset *none = NULL;
    assert_int_equal(m2p_presets_find(fx->presets, "--", &none, NULL), M2P_E_STYLE_UNKNOWN);
    assert_int_equal(m2p_presets_find(fx->presets, "", &none, NULL), M2P_E_STYLE_UNKNOWN);
    /* brooding: low valence, mid arousal, minor and dark, moderate steady tempo, even energy (once
     * "moody" twice from {mood} and {palette}, "steady" twice from {motion} and {arc}) */
    m2p_features brooding = dark_ballad();
    brooding.arousal = 0.5;
    brooding.tempo_bpm = 100;
    brooding.beat_regularity = 0.8;
    m2p_features songs[5] = {calm_piano(), fast_electronic(), orchestral(), dark_ballad(), brooding};
    for (size_t i = 0; i < n; i++) {
        const m2p_preset *pr = m2p_presets_at(fx->presets, i);
        for (size_t s = 0; s < 5; s++) {
            m2p_prompt_input in = {0};
            in.features = &songs[s];
            in.style = pr->name;
            in.title = "Midnight City, extended remix with a long subtitle";
            in.artist = "M83 and the Orchestra of the Night";
            in.presets = fx->presets;
            in.tokenizer = fx->tok;
            m2p_prompt *p = NULL;
            m2p_error err;
            m2p_error_clear(&err);
            if (m2p_prompt_build(&in, &p, &err) != M2P_OK) {
                fail_msg("preset %s: %s", pr->name, err.detail);
            }
            assert_string_equal(p->style, pr->name);
            assert_string_equal(p->negative, pr->negative);
            assert_true(p->n_tokens >= 2 && p->n_tokens <= 77);
            int count = 0;
            assert_int_equal(m2p_clip_count(fx->tok, p->negative, &count, NULL), M2P_OK);
            assert_true(count <= 77); /* the negative goes through CLIP too */
            assert_int_equal(m2p_clip_count(fx->tok, p->positive, &count, NULL), M2P_OK);
            assert_int_equal(count, p->n_tokens);
            assert_true(p->n_fragments >= 5);
            for (size_t k = 0; k < p->n_fragments; k++) {
                if (p->fragments[k].kept) {
                    assert_non_null(strstr(p->positive, p->fragments[k].text));
                }
            }
            /* Nothing left of the template syntax, no empty comma items. */
            assert_null(strchr(p->positive, '{'));
            assert_null(strstr(p->positive, ", ,"));
            assert_null(strstr(p->positive, ",,"));
            assert_no_repeated_item(p->positive);
            m2p_prompt_free(p);
        }
    }
}

static void expect_error(fixture *fx, const char *style, const char *tpl, m2p_code code, const char *detail) {
    m2p_features f = calm_piano();
    m2p_error err;
    m2p_error_clear(&err);
    m2p_prompt *p = build(fx, &f, style, tpl, &err);
    assert_null(p);
    if (err.code != code) {
        fail_msg("template \"%.40s\": got %s (%s), expected %s", tpl != NULL ? tpl : "(null)", m2p_errname(err.code),
                 err.detail, m2p_errname(code));
    }
    if (detail != NULL && strstr(err.detail, detail) == NULL) {
        fail_msg("detail \"%s\" lacks \"%s\"", err.detail, detail);
    }
}

static void test_template_errors(void **state) {
    fixture *fx = *state;
    expect_error(fx, NULL, "art, {moood}", M2P_E_TEMPLATE_VARIABLE, "unknown variable {moood}; did you mean {mood}?");
    expect_error(fx, NULL, "art, {genre}", M2P_E_TEMPLATE_VARIABLE, "{genre}");
    expect_error(fx, NULL, "art, {zzzzzzzzzz}", M2P_E_TEMPLATE_VARIABLE, "unknown variable {zzzzzzzzzz}");
    expect_error(fx, NULL, "art, {mood", M2P_E_TEMPLATE_SYNTAX, "unclosed {");
    expect_error(fx, NULL, "art, mood}", M2P_E_TEMPLATE_SYNTAX, "unmatched }");
    expect_error(fx, NULL, "art, {}", M2P_E_TEMPLATE_SYNTAX, "empty {}");
    expect_error(fx, NULL, "art, {mo{od}", M2P_E_TEMPLATE_SYNTAX, NULL);
    expect_error(fx, NULL, "", M2P_E_TEMPLATE_EMPTY, NULL);
    expect_error(fx, NULL, " \t\n ", M2P_E_TEMPLATE_EMPTY, NULL);
    expect_error(fx, NULL, "{title}, {artist} ,", M2P_E_TEMPLATE_EMPTY, "no text for this song");
    expect_error(fx, NULL, "bad \xff utf-8 {mood}", M2P_E_TEMPLATE_SYNTAX, "UTF-8");
    expect_error(fx, "neon", NULL, M2P_E_STYLE_UNKNOWN, "unknown style 'neon'; the styles are abstract, realistic");
    expect_error(fx, "synthwav", NULL, M2P_E_STYLE_UNKNOWN, "did you mean 'synthwave'?");
    char big[2100];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    expect_error(fx, NULL, big, M2P_E_TEMPLATE_TOO_LONG, NULL);
    /* The same checks without features (to refuse before any work). */
    m2p_error e2;
    assert_int_equal(m2p_prompt_check_template("{moood}", &e2), M2P_E_TEMPLATE_VARIABLE);
    assert_non_null(strstr(e2.detail, "did you mean {mood}?"));
    assert_int_equal(m2p_prompt_check_template("{mood", NULL), M2P_E_TEMPLATE_SYNTAX);
    assert_int_equal(m2p_prompt_check_template("", NULL), M2P_E_TEMPLATE_EMPTY);
    assert_int_equal(m2p_prompt_check_template(NULL, NULL), M2P_E_TEMPLATE_EMPTY);
    assert_int_equal(m2p_prompt_check_template("fine, {{ok}} {mood}", NULL), M2P_OK);
    /* No features at all. */
    m2p_prompt_input in = {0};
    m2p_prompt *p = NULL;
    assert_int_equal(m2p_prompt_build(&in, &p, NULL), M2P_E_INVALID_ARG);
}

static void test_template_literals_and_names(void **state) {
    fixture *fx = *state;
    m2p_features f = fast_electronic();
    m2p_error err;
    m2p_prompt *p = build(fx, &f, "Album cover", "{{braces}} stay, {mood} in {key}, {tempo}, {title}", &err);
    assert_non_null(p);
    assert_string_equal(p->style, "album-cover");
    assert_string_equal(p->positive, "{braces} stay, dark, tense intensity in A minor key, fast-paced");
    assert_false(p->shortened);
    assert_int_equal(p->n_fragments, 3); /* no title given: no {title} fragment */
    m2p_prompt_free(p);
    /* Commas are tidied: items joined by ", ", empty items dropped (output longer than input). */
    p = build(fx, &f, NULL, "a,b,,c ,\t, {title},d,e,f,g,h,i,j,k,l,m,n,o,p", &err);
    assert_non_null(p);
    assert_string_equal(p->positive, "a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p");
    m2p_prompt_free(p);
    /* Title and artist are cleaned: control characters and invalid UTF-8. */
    m2p_prompt_input in = {0};
    in.features = &f;
    in.style = "album_cover";
    in.template_text = "poster, {title}, {artist}";
    in.title = "  Night\tDrive\n\x01 ";
    in.artist = "Ca\xffn";
    in.presets = fx->presets;
    in.tokenizer = fx->tok;
    assert_int_equal(m2p_prompt_build(&in, &p, NULL), M2P_OK);
    assert_string_equal(p->positive, "poster, Night Drive, Ca?n");
    m2p_prompt_free(p);
}

static void test_overlong_template_shortened(void **state) {
    fixture *fx = *state;
    m2p_features f = orchestral();
    const char *tpl = "an enormous richly detailed panoramic oil painting of a vast imaginary concert hall at night, "
                      "{mood}, {palette}, {color}, {motion}, {texture}, {energy}, {arc}, {tempo}, {key}, {genre_hint}, "
                      "gilded balconies, velvet curtains, chandeliers";
    m2p_error err;
    m2p_prompt *p = build(fx, &f, "oil painting", tpl, &err);
    assert_non_null(p);
    print_message("shortened: %s (%d tokens)\n", p->positive, p->n_tokens);
    assert_true(p->shortened);
    assert_true(p->n_tokens <= 77);
    int lowest_kept = 1000;
    int highest_dropped = -1;
    size_t dropped = 0;
    for (size_t i = 0; i < p->n_fragments; i++) {
        const m2p_fragment *fr = &p->fragments[i];
        if (fr->kept) {
            lowest_kept = fr->priority < lowest_kept ? fr->priority : lowest_kept;
        } else {
            dropped++;
            highest_dropped = fr->priority > highest_dropped ? fr->priority : highest_dropped;
            assert_null(strstr(p->positive, fr->text));
        }
    }
    assert_true(dropped >= 1);
    assert_true(highest_dropped <= lowest_kept);
    /* The most important fragments survive, the literal text too. */
    assert_true(find_frag(p, "mood")->kept);
    assert_non_null(strstr(p->positive, "chandeliers"));
    m2p_prompt_free(p);

    /* Literal text alone over 77 tokens: words cut from the end, still says so. */
    char lit[1600] = "";
    for (int i = 0; i < 60; i++) {
        strcat(lit, "bright lantern ");
    }
    strcat(lit, "{mood}");
    p = build(fx, &f, NULL, lit, &err);
    assert_non_null(p);
    assert_true(p->shortened);
    assert_true(p->n_tokens <= 77 && p->n_tokens >= 70);
    assert_false(find_frag(p, "mood")->kept);
    int count = 0;
    assert_int_equal(m2p_clip_count(fx->tok, p->positive, &count, NULL), M2P_OK);
    assert_int_equal(count, p->n_tokens);
    m2p_prompt_free(p);

    /* One enormous "word": cut inside it on a character boundary, never emptied. */
    char word[1200];
    size_t w = 0;
    for (int i = 0; i < 200; i++) {
        memcpy(word + w, "x\xc3\xa9Q!", 5); /* letters, a 2-byte character, punctuation */
        w += 5;
    }
    word[w] = '\0';
    p = build(fx, &f, NULL, word, &err);
    assert_non_null(p);
    assert_true(p->shortened);
    assert_true(p->n_tokens >= 70 && p->n_tokens <= 77);
    assert_true(strlen(p->positive) > 20);
    json_t *j = NULL;
    assert_int_equal(m2p_prompt_to_json(p, &j), M2P_OK); /* still valid UTF-8 */
    json_decref(j);
    m2p_prompt_free(p);
}

static void test_deterministic(void **state) {
    fixture *fx = *state;
    m2p_features f = fast_electronic();
    for (int s = 0; s < 3; s++) {
        const char *style = s == 0 ? "synthwave" : (s == 1 ? "ink" : "album-cover");
        m2p_prompt *a = build(fx, &f, style, NULL, NULL);
        m2p_prompt *b = build(fx, &f, style, NULL, NULL);
        assert_non_null(a);
        assert_non_null(b);
        json_t *ja = NULL;
        json_t *jb = NULL;
        assert_int_equal(m2p_prompt_to_json(a, &ja), M2P_OK);
        assert_int_equal(m2p_prompt_to_json(b, &jb), M2P_OK);
        assert_true(json_equal(ja, jb));
        assert_string_equal(a->positive, b->positive);
        assert_string_equal(json_string_value(json_object_get(ja, "positive")), a->positive);
        assert_int_equal(json_array_size(json_object_get(ja, "fragments")), a->n_fragments);
        json_decref(ja);
        json_decref(jb);
        m2p_prompt_free(a);
        m2p_prompt_free(b);
    }
    /* Also without a shared tokenizer/presets (each call loads its own). */
    m2p_prompt_input in = {0};
    in.features = &f;
    in.style = "synthwave";
    m2p_prompt *c = NULL;
    assert_int_equal(m2p_prompt_build(&in, &c, NULL), M2P_OK);
    m2p_prompt *d = build(fx, &f, "synthwave", NULL, NULL);
    assert_string_equal(c->positive, d->positive);
    m2p_prompt_free(c);
    m2p_prompt_free(d);
}

static m2p_prompt *build_section(fixture *fx, const m2p_features *f, size_t section) {
    m2p_prompt_input in = {0};
    in.features = f;
    in.style = "cinematic";
    in.presets = fx->presets;
    in.tokenizer = fx->tok;
    m2p_prompt *p = NULL;
    m2p_error err;
    m2p_error_clear(&err);
    if (m2p_prompt_build_section(&in, section, &p, &err) != M2P_OK) {
        fail_msg("section %zu: %s", section, err.detail);
    }
    assert_true(p->n_tokens <= 77);
    return p;
}

static void test_section_prompts(void **state) {
    fixture *fx = *state;
    m2p_features f = fast_electronic();
    m2p_prompt *s0 = build_section(fx, &f, 0);
    m2p_prompt *s1 = build_section(fx, &f, 1);
    m2p_prompt *s3 = build_section(fx, &f, 3);
    print_message("section 1: %s\nsection 4: %s\n", s0->positive, s3->positive);
    expect_frag(s0, "arc", "an opening, gathering momentum");
    expect_frag(s1, "arc", "rising, gathering intensity");
    expect_frag(s3, "arc", "at its peak, a blazing climax");
    assert_non_null(strstr(find_frag(s3, "arc")->feature, "section 4/4"));
    /* The section's own energy, not the song's. */
    expect_frag(s0, "energy", "quiet, intimate hush");
    expect_frag(s3, "energy", "explosive, high energy");
    assert_string_not_equal(s0->positive, s3->positive);
    expect_frag(s0, "genre_hint", "electronic dance music"); /* genre is the whole song's */
    m2p_prompt_free(s0);
    m2p_prompt_free(s1);
    m2p_prompt_free(s3);
    m2p_features o = orchestral();
    m2p_prompt *last = build_section(fx, &o, 2);
    expect_frag(last, "arc", "a fading finale");
    m2p_prompt_free(last);
    /* Out of range, and a song without sections. */
    m2p_prompt_input in = {0};
    in.features = &o;
    in.presets = fx->presets;
    in.tokenizer = fx->tok;
    m2p_prompt *p = NULL;
    assert_int_equal(m2p_prompt_build_section(&in, 3, &p, NULL), M2P_E_INVALID_ARG);
    assert_null(p);
    o.n_sections = 0;
    o.sections = NULL;
    assert_int_equal(m2p_prompt_build_section(&in, 0, &p, NULL), M2P_E_INVALID_ARG);
}

/* Many different songs → many different prompts: the rules do not collapse to a few outputs. */
static void test_variety(void **state) {
    fixture *fx = *state;
    enum { N = 150, V = 6 };
    static const char *vars[V] = {"mood", "palette", "color", "motion", "texture", "genre_hint"};
    static const size_t at_least[V] = {8, 6, 20, 8, 5, 5};
    char *seen[V][N];
    size_t n_seen[V] = {0};
    char *positives[N];
    size_t n_pos = 0;
    uint32_t r = 2024;
#define RND() ((r = r * 1664525u + 1013904223u), (double)(r >> 8) / 16777216.0)
    for (int i = 0; i < N; i++) {
        m2p_features f = {0};
        f.tempo_bpm = 50 + 130 * RND();
        f.tempo_confidence = RND();
        f.beat_regularity = RND();
        f.key = (int)(12 * RND());
        f.mode = RND() < 0.5 ? M2P_MODE_MAJOR : M2P_MODE_MINOR;
        f.key_confidence = 0.1 + 0.9 * RND();
        f.energy = RND();
        f.brightness = RND();
        f.percussiveness = RND();
        f.onset_density = 8 * RND();
        f.danceability = RND();
        f.valence = RND();
        f.arousal = RND();
        f.dynamic_range_db = 30 * RND();
        f.sections = k_rise;
        f.n_sections = 4;
        m2p_prompt *p = build(fx, &f, "abstract", NULL, NULL);
        assert_non_null(p);
        for (int v = 0; v < V; v++) {
            const char *t = find_frag(p, vars[v])->text;
            bool dup = false;
            for (size_t k = 0; k < n_seen[v] && !dup; k++) {
                dup = strcmp(seen[v][k], t) == 0;
            }
            if (!dup) {
                seen[v][n_seen[v]++] = strdup(t);
            }
        }
        bool dup = false;
        for (size_t k = 0; k < n_pos && !dup; k++) {
            dup = strcmp(positives[k], p->positive) == 0;
        }
        if (!dup) {
            positives[n_pos++] = strdup(p->positive);
        }
        m2p_prompt_free(p);
    }
#undef RND
    print_message("%zu distinct prompts of %d songs\n", n_pos, N);
    assert_true(n_pos >= N * 9 / 10);
    for (int v = 0; v < V; v++) {
        if (n_seen[v] < at_least[v]) {
            fail_msg("{%s} took only %zu different values", vars[v], n_seen[v]);
        }
        for (size_t k = 0; k < n_seen[v]; k++) {
            free(seen[v][k]);
        }
    }
    for (size_t k = 0; k < n_pos; k++) {
        free(positives[k]);
    }
}

typedef struct thread_job {
    fixture *fx;
    const char *expect[14];
    int failures;
} thread_job;

static void *build_many(void *arg) {
    thread_job *job = arg;
    m2p_features f = fast_electronic();
    for (int r = 0; r < 3; r++) {
        for (size_t i = 0; i < m2p_presets_count(job->fx->presets) && i < 14; i++) {
            m2p_prompt_input in = {0};
            in.features = &f;
            in.style = m2p_presets_at(job->fx->presets, i)->name;
            in.title = "Title";
            in.presets = job->fx->presets;
            in.tokenizer = job->fx->tok;
            m2p_prompt *p = NULL;
            if (m2p_prompt_build(&in, &p, NULL) != M2P_OK || strcmp(p->positive, job->expect[i]) != 0) {
                job->failures++;
            }
            m2p_prompt_free(p);
        }
    }
    return NULL;
}

/* One preset set and one tokenizer shared by several threads give the same prompts. */
static void test_shared_between_threads(void **state) {
    fixture *fx = *state;
    m2p_features f = fast_electronic();
    m2p_prompt *expect[14] = {0};
    thread_job jobs[4];
    memset(jobs, 0, sizeof jobs);
    size_t n = m2p_presets_count(fx->presets) < 14 ? m2p_presets_count(fx->presets) : 14;
    for (size_t i = 0; i < n; i++) {
        m2p_prompt_input in = {0};
        in.features = &f;
        in.style = m2p_presets_at(fx->presets, i)->name;
        in.title = "Title";
        in.presets = fx->presets;
        in.tokenizer = fx->tok;
        assert_int_equal(m2p_prompt_build(&in, &expect[i], NULL), M2P_OK);
    }
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        jobs[t].fx = fx;
        for (size_t i = 0; i < n; i++) {
            jobs[t].expect[i] = expect[i]->positive;
        }
        assert_int_equal(pthread_create(&th[t], NULL, build_many, &jobs[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        assert_int_equal(jobs[t].failures, 0);
    }
    for (size_t i = 0; i < n; i++) {
        m2p_prompt_free(expect[i]);
    }
}

static void test_odd_features(void **state) {
    fixture *fx = *state;
    m2p_features f = {0};
    f.tempo_bpm = NAN;
    f.valence = NAN;
    f.arousal = INFINITY;
    f.brightness = -3;
    f.energy = 7;
    f.key = 99;
    f.key_confidence = 1;
    f.loudness_db = NAN;
    f.dynamic_range_db = -INFINITY;
    float curve[8] = {0.1f, 0.1f, 0.2f, 0.3f, 0.5f, 0.7f, 0.9f, 0.95f};
    f.energy_curve = curve;
    f.n_energy = 8;
    m2p_prompt *p = build(fx, &f, "abstract", NULL, NULL);
    assert_non_null(p);
    expect_frag(p, "color", "shifting iridescent hues");
    expect_frag(p, "motion", "free-floating, beatless drift");
    expect_frag(p, "arc", "building to a powerful climax");
    assert_null(strstr(p->positive, "nan"));
    for (size_t i = 0; i < p->n_fragments; i++) {
        assert_null(strstr(p->fragments[i].feature, "nan"));
        assert_null(strstr(p->fragments[i].feature, "inf"));
    }
    m2p_prompt_free(p);
}

static void test_presets_file_checks(void **state) {
    (void)state;
    m2p_presets *ps = NULL;
    m2p_error err;
    const char *bad[] = {
        "not json",
        "{\"presets\": []}",
        "{\"presets\": [{\"name\": \"a\", \"description\": \"d\", \"negative\": \"n\"}]}",
        "{\"presets\": [{\"name\": \"a\", \"description\": \"d\", \"template\": \"{moood}\", \"negative\": \"n\"}]}",
        "{\"presets\": [{\"name\": \"A B\", \"description\": \"d\", \"template\": \"t\", \"negative\": \"n\"}]}",
        "{\"presets\": [{\"name\": \"a\", \"description\": \"d\", \"template\": \"t\", \"negative\": \"n\"},"
        " {\"name\": \"a\", \"description\": \"d\", \"template\": \"t\", \"negative\": \"n\"}]}",
        "{\"presets\": [{\"name\": \"a\", \"description\": \"d\", \"template\": \"t\", \"negative\": \"n\","
        " \"visual\": {\"saturation\": 3}}]}",
        /* An alias that is another preset's name once reduced to letters and digits. */
        "{\"presets\": [{\"name\": \"a-b\", \"description\": \"d\", \"template\": \"t\", \"negative\": \"n\"},"
        " {\"name\": \"c\", \"aliases\": [\"ab\"], \"description\": \"d\", \"template\": \"t\", \"negative\": \"n\"}]}",
        "{\"presets\": [{\"name\": \"a\", \"aliases\": [\"B C\"], \"description\": \"d\", \"template\": \"t\","
        " \"negative\": \"n\"}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m2p_error_clear(&err);
        assert_int_equal(m2p_presets_parse(bad[i], strlen(bad[i]), &ps, &err), M2P_E_PRESETS_INVALID);
        assert_null(ps);
        assert_true(strlen(err.detail) > 0);
    }
    const char *good =
        "{\"presets\": [{\"name\": \"a\", \"description\": \"d\", \"template\": \"{mood}\", \"negative\": \"n\"}]}";
    assert_int_equal(m2p_presets_parse(good, strlen(good), &ps, &err), M2P_OK);
    assert_int_equal(m2p_presets_count(ps), 1);
    const m2p_preset *p0 = m2p_presets_at(ps, 0);
    assert_string_equal(p0->visual.shapes, "blobs");
    assert_int_equal(p0->steps, 4);
    assert_null(m2p_presets_at(ps, 1));
    m2p_presets_free(ps);
    /* Allocation failures while loading the embedded set: clean NOMEM. */
    bool ok = false;
    for (long n = 0; n < 5000 && !ok; n++) {
        ps = NULL;
        m2p_alloc_fail_after(n);
        m2p_code rc = m2p_presets_load(&ps, NULL);
        m2p_alloc_fail_after(-1);
        if (rc == M2P_OK) {
            ok = true;
            assert_true(m2p_presets_count(ps) >= 12);
        } else {
            assert_int_equal(rc, M2P_E_NOMEM);
            assert_null(ps);
        }
        m2p_presets_free(ps);
    }
    assert_true(ok);
}

static void test_variables_documented(void **state) {
    (void)state;
    /* The variables listed in data/presets.json are exactly the builder's. */
    char path[1024];
    (void)snprintf(path, sizeof path, "%s/data/presets.json", m2p_test_source_dir());
    json_t *root = json_load_file(path, 0, NULL);
    assert_non_null(root);
    json_t *vars = json_object_get(root, "variables");
    size_t n = 0;
    while (m2p_prompt_variable(n, NULL) != NULL) {
        n++;
    }
    assert_int_equal(json_array_size(vars), n);
    for (size_t i = 0; i < n; i++) {
        const char *desc = NULL;
        assert_string_equal(json_string_value(json_object_get(json_array_get(vars, i), "name")),
                            m2p_prompt_variable(i, &desc));
        assert_non_null(desc);
    }
    json_decref(root);
}

static void test_alloc_failures(void **state) {
    fixture *fx = *state;
    m2p_features f = fast_electronic();
    m2p_prompt_input in = {0};
    in.features = &f;
    in.style = "album-cover";
    in.title = "Title";
    in.presets = fx->presets;
    in.tokenizer = fx->tok;
    bool ok = false;
    for (long n = 0; n < 2000 && !ok; n++) {
        m2p_alloc_fail_after(n);
        m2p_prompt *p = NULL;
        m2p_code rc = m2p_prompt_build(&in, &p, NULL);
        m2p_alloc_fail_after(-1);
        if (rc == M2P_OK) {
            ok = true;
            m2p_prompt_free(p);
        } else {
            assert_int_equal(rc, M2P_E_NOMEM);
            assert_null(p);
        }
    }
    assert_true(ok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contrasting_songs),
        cmocka_unit_test(test_every_preset_fits),
        cmocka_unit_test(test_template_errors),
        cmocka_unit_test(test_template_literals_and_names),
        cmocka_unit_test(test_overlong_template_shortened),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_section_prompts),
        cmocka_unit_test(test_variety),
        cmocka_unit_test(test_shared_between_threads),
        cmocka_unit_test(test_odd_features),
        cmocka_unit_test(test_presets_file_checks),
        cmocka_unit_test(test_variables_documented),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
