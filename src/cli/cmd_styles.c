/*
 * cli/cmd_styles.c — `mus2pic styles [NAME] [--json]`: the style presets.
 *
 * Without NAME: one line per preset, "name  description". With NAME: that
 * preset's template, negative prompt, suggested settings and renderer hints,
 * plus the template variables. --json prints the same as JSON (an array, or
 * one object). Unknown NAME → style_unknown (exit 1) with a suggestion.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "prompt/presets.h"

static json_t *preset_json(const m2p_preset *p) {
    json_t *aliases = json_array();
    for (size_t i = 0; aliases != NULL && i < p->n_aliases; i++) {
        (void)json_array_append_new(aliases, json_string(p->aliases[i]));
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:{s:i, s:f}, s:{s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:s, s:s}}", "name",
                          p->name, "description", p->description, "template", p->template_text, "negative", p->negative,
                          "defaults", "steps", p->steps, "guidance", p->guidance, "visual", "shapes", p->visual.shapes,
                          "palette_bias", p->visual.palette_bias, "saturation", p->visual.saturation, "contrast",
                          p->visual.contrast, "grain", p->visual.grain, "softness", p->visual.softness, "line_weight",
                          p->visual.line_weight, "background", p->visual.background, "text", p->visual.text);
    if (o == NULL || aliases == NULL) {
        json_decref(o);
        json_decref(aliases);
        return NULL;
    }
    if (json_object_set_new(o, "aliases", aliases) != 0) { /* steals aliases even on failure */
        json_decref(o);
        return NULL;
    }
    return o;
}

static int print_json(json_t *j) {
    if (j == NULL) {
        m2p_error err;
        (void)m2p_error_set(&err, M2P_E_NOMEM, "styles as JSON");
        m2p_cli_print_error(&err);
        return M2P_EXIT_FAIL;
    }
    int rc = json_dumpf(j, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    (void)fputc('\n', stdout);
    json_decref(j);
    return rc == 0 ? M2P_EXIT_OK : M2P_EXIT_FAIL;
}

static void print_one(const m2p_preset *p) {
    (void)printf("%s — %s\n\n", p->name, p->description);
    if (p->n_aliases > 0) {
        (void)printf("aliases:   ");
        for (size_t i = 0; i < p->n_aliases; i++) {
            (void)printf("%s%s", i > 0 ? ", " : "", p->aliases[i]);
        }
        (void)printf("\n");
    }
    (void)printf("template:  %s\n", p->template_text);
    (void)printf("negative:  %s\n", p->negative);
    (void)printf("defaults:  steps %d, guidance %.1f\n", p->steps, p->guidance);
    (void)printf("visual:    shapes %s, palette %s, background %s, text %s, saturation %.2f, contrast %.2f\n",
                 p->visual.shapes, p->visual.palette_bias, p->visual.background, p->visual.text, p->visual.saturation,
                 p->visual.contrast);
    (void)printf("\nvariables (use them in --template; {{ and }} are literal braces):\n");
    const char *desc = NULL;
    for (size_t i = 0; m2p_prompt_variable(i, &desc) != NULL; i++) {
        (void)printf("  {%s}%*s %s\n", m2p_prompt_variable(i, NULL), (int)(12 - strlen(m2p_prompt_variable(i, NULL))),
                     "", desc);
    }
}

int m2p_cmd_styles(m2p_config *cfg, int argc, char **argv) {
    (void)cfg;
    bool as_json = false;
    const char *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            as_json = true;
        } else if (argv[i][0] == '-' || name != NULL) {
            (void)fprintf(stderr, "mus2pic styles: unexpected argument '%s'\nusage: mus2pic styles [NAME] [--json]\n",
                          argv[i]);
            return M2P_EXIT_USAGE;
        } else {
            name = argv[i];
        }
    }
    m2p_error err;
    m2p_error_clear(&err);
    m2p_presets *set = NULL;
    if (m2p_presets_load(&set, &err) != M2P_OK) {
        m2p_cli_print_error(&err);
        return M2P_EXIT_FAIL;
    }
    int rc = M2P_EXIT_OK;
    if (name != NULL) {
        const m2p_preset *p = NULL;
        if (m2p_presets_find(set, name, &p, &err) != M2P_OK) {
            m2p_cli_print_error(&err);
            rc = M2P_EXIT_FAIL;
        } else if (as_json) {
            rc = print_json(preset_json(p));
        } else {
            print_one(p);
        }
    } else if (as_json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr != NULL && i < m2p_presets_count(set); i++) {
            if (json_array_append_new(arr, preset_json(m2p_presets_at(set, i))) != 0) {
                json_decref(arr);
                arr = NULL;
            }
        }
        rc = print_json(arr);
    } else {
        for (size_t i = 0; i < m2p_presets_count(set); i++) {
            const m2p_preset *p = m2p_presets_at(set, i);
            (void)printf("%-14s %s\n", p->name, p->description);
        }
    }
    m2p_presets_free(set);
    return rc;
}
