/*
 * cli/cmd_job.c — the job commands: `analyze`, `prompt` and `make`.
 *
 *   mus2pic analyze SOURCE [--json]
 *   mus2pic prompt SOURCE [--style S] [--template T|@FILE] [--json]
 *   mus2pic make SOURCE [-n N] [--style S] [--template T] [--renderer R] [--size WxH]
 *                [--steps N] [--seed N] [--per-section] [--layout] [--out DIR] [--json]
 *
 * Progress goes to stderr, results to stdout. Exit 0 on success, 1 with one
 * clear line (code, message, hint) on a failure, 2 on a usage error.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/jobargs.h"
#include "cli/term.h"
#include "core/log.h"
#include "pipeline/pipeline.h"

typedef enum job_kind { JOB_ANALYZE, JOB_PROMPT, JOB_MAKE } job_kind;

static int fail(const m2p_error *err) {
    m2p_cli_print_error(err);
    return err->code == M2P_E_USAGE ? M2P_EXIT_USAGE : M2P_EXIT_FAIL;
}

static void print_times(const m2p_job_result *r) {
    (void)fprintf(stderr, "  time:");
    for (int s = 0; s < M2P_STEP_COUNT; s++) {
        if (r->step_seconds[s] > 0) {
            (void)fprintf(stderr, " %s %.2fs", m2p_step_name((m2p_step)s), r->step_seconds[s]);
        }
    }
    (void)fprintf(stderr, "\n");
}

static json_t *track_json(const m2p_job_result *r) {
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:s, s:b, s:b}", "kind", m2p_source_kind_name(r->track.kind),
                     "source", r->track.source, "video_id", r->track.video_id, "title", r->track.title, "uploader",
                     r->track.uploader, "duration_s", r->track.duration_s, "content_hash", r->track.content_hash,
                     "audio_cached", r->track.cache_hit, "features_cached", r->features_cached);
}

static void print_why(const m2p_prompt *p) {
    (void)printf("\nwhy this image:\n");
    for (size_t i = 0; i < p->n_fragments; i++) {
        const m2p_fragment *f = &p->fragments[i];
        bool has_feature = f->feature != NULL && f->feature[0] != '\0';
        (void)printf("  %-36.36s <- %s%s%s%s%s\n", f->text ? f->text : "", f->reason ? f->reason : "",
                     has_feature ? " [" : "", has_feature ? f->feature : "", has_feature ? "]" : "",
                     f->kept ? "" : " (dropped to fit CLIP's 77 tokens)");
    }
}

/* `mus2pic make --help` (or -h right after the command): the command's usage on stdout, exit 0. */
static bool wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            return true;
        }
    }
    return argc > 1 && strcmp(argv[1], "-h") == 0;
}

static void print_help(job_kind kind) {
    static const char *const k_source =
        "SOURCE: an audio file (wav, flac, mp3, ogg, opus, m4a/aac, webm) or a link (YouTube in any form;\n"
        "        SoundCloud and Bandcamp when allowed_sites lists them)\n";
    static const char *const k_style =
        "  --style S         style preset (`mus2pic styles` lists them; default abstract)\n"
        "  --template T      your own template: {mood} {palette} {motion} ... or @FILE\n";
    if (kind == JOB_ANALYZE) {
        (void)printf("usage: mus2pic analyze SOURCE [--json]\n  understand a song: tempo, key, mood, sections\n%s"
                     "  --json            print the features as JSON\n",
                     k_source);
    } else if (kind == JOB_PROMPT) {
        (void)printf("usage: mus2pic prompt SOURCE [--style S] [--template T] [--json]\n"
                     "  the prompt it would use and why each part is there\n%s%s"
                     "  --json            print features and prompt as JSON\n",
                     k_source, k_style);
    } else {
        (void)printf("usage: mus2pic make SOURCE [options]\n  posters from a song\n%s%s"
                     "  -n, --variations N  images, 1 to 16 (default 4)\n"
                     "  --renderer R      auto (lcm when weights are there, else sonic), sonic or lcm\n"
                     "  --size WxH        64 to 4096, multiples of 8 (default: sonic 1024x1024, lcm 512x512)\n"
                     "  --steps N         denoising steps of the lcm renderer, 1 to 50 (default 4)\n"
                     "  --seed N          first seed, 0 to 4294967295 (default: random; file names show it)\n"
                     "  --per-section     one poster per section of the song (instead of -n)\n"
                     "  --layout          poster typography: title, artist, BPM, key\n"
                     "  --out DIR         where the PNGs and JSON sidecars go (default <data_dir>/images)\n"
                     "  --json            print features, prompt and image paths as JSON\n",
                     k_source, k_style);
    }
    (void)printf("common options: --set KEY=VALUE, --data-dir DIR, -v/--verbose, -q/--quiet\n");
}

static int run_job(m2p_config *cfg, int argc, char **argv, job_kind kind) {
    m2p_error err;
    m2p_error_clear(&err);
    if (wants_help(argc, argv)) {
        print_help(kind);
        return M2P_EXIT_OK;
    }
    m2p_jobargs args;
    const char *allowed = kind == JOB_ANALYZE ? "j" : (kind == JOB_PROMPT ? "sj" : "srj");
    if (m2p_jobargs_parse(&args, cfg, argc, argv, allowed, &err) != M2P_OK) {
        m2p_jobargs_free(&args);
        return fail(&err);
    }
    if (args.spec.per_section && args.spec.n > 0 && m2p_log_get_level() < M2P_LOG_ERROR) {
        (void)fprintf(stderr, "mus2pic: note: --per-section makes one poster per section; -n %d is not used\n",
                      args.spec.n);
    }
    /* auto without model weights: say once why the posters will be procedural, and how to get the model. */
    char renderer_note[M2P_PATH_MAX + 256];
    renderer_note[0] = '\0';
    if (kind == JOB_MAKE) {
        const char *want = args.spec.renderer != NULL && args.spec.renderer[0] != '\0' ? args.spec.renderer
                                                                                       : cfg->renderer;
        if ((want[0] == '\0' || strcmp(want, "auto") == 0) &&
            m2p_renderer_auto_note(cfg, renderer_note, sizeof renderer_note) &&
            m2p_log_get_level() < M2P_LOG_ERROR && !args.json) {
            (void)fprintf(stderr, "mus2pic: note: %s\n", renderer_note);
        }
    }
    m2p_term term;
    m2p_progress progress;
    m2p_term_init(&term, m2p_log_get_level() >= M2P_LOG_ERROR, &progress);
    m2p_pipeline *pipe = NULL;
    m2p_store *store = NULL;
    m2p_job_result res;
    memset(&res, 0, sizeof res);
    int exit_code = M2P_EXIT_OK;
    m2p_code rc = m2p_pipeline_create(cfg, &pipe, &err);
    if (rc == M2P_OK) {
        rc = m2p_store_open(cfg, &store, &err);
    }
    if (rc == M2P_OK) {
        switch (kind) {
        case JOB_ANALYZE:
            rc = m2p_pipeline_analyze(pipe, store, &args.spec, &progress, &res, &err);
            break;
        case JOB_PROMPT:
            rc = m2p_pipeline_prompt(pipe, store, &args.spec, &progress, &res, &err);
            break;
        case JOB_MAKE:
            rc = m2p_pipeline_make(pipe, store, &args.spec, &progress, &res, &err);
            break;
        }
    }
    m2p_term_finish(&term);
    if (rc != M2P_OK) {
        exit_code = fail(&err);
        goto done;
    }
    if (args.json) {
        json_t *root = NULL;
        if (m2p_features_to_json(res.features, &root) != M2P_OK) {
            (void)m2p_error_set(&err, M2P_E_NOMEM, "JSON");
            exit_code = fail(&err);
            goto done;
        }
        (void)json_object_set_new(root, "track", track_json(&res));
        json_t *pj = NULL;
        if (res.prompt != NULL && m2p_prompt_to_json(res.prompt, &pj) == M2P_OK) {
            (void)json_object_set_new(root, "prompt", pj);
        }
        if (kind == JOB_MAKE) {
            json_t *imgs = json_array();
            for (size_t i = 0; i < res.n_images; i++) {
                (void)json_array_append_new(imgs, json_pack("{s:s, s:I}", "path", res.image_paths[i], "seed",
                                                            (json_int_t)res.seeds[i]));
            }
            (void)json_object_set_new(root, "images", imgs);
            (void)json_object_set_new(root, "renderer", json_string(res.renderer));
            (void)json_object_set_new(root, "model", json_string(res.model));
            if (renderer_note[0] != '\0' && strcmp(res.renderer, "sonic") == 0) {
                (void)json_object_set_new(root, "renderer_note", json_string(renderer_note));
            }
        }
        char *text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        json_decref(root);
        if (text != NULL) {
            (void)puts(text);
            free(text);
        }
        goto done;
    }
    char summary[512];
    m2p_features_summary(res.features, summary, sizeof summary);
    (void)printf("%s — %s\n", res.track.title[0] ? res.track.title : res.track.source, summary);
    if (kind == JOB_ANALYZE) {
        const m2p_features *f = res.features;
        (void)printf("  tempo %.1f BPM (confidence %.2f), key %s %s (confidence %.2f)\n", f->tempo_bpm,
                     f->tempo_confidence, m2p_key_name(f->key), m2p_mode_name(f->mode), f->key_confidence);
        (void)printf("  energy %.2f, loudness %.1f dBFS, dynamic range %.1f dB, brightness %.2f (%.0f Hz)\n",
                     f->energy, f->loudness_db, f->dynamic_range_db, f->brightness, f->centroid_hz);
        (void)printf("  percussiveness %.2f, onsets %.2f/s, danceability %.2f, valence %.2f, arousal %.2f\n",
                     f->percussiveness, f->onset_density, f->danceability, f->valence, f->arousal);
        for (size_t i = 0; i < f->n_sections; i++) {
            (void)printf("  section %zu: %6.1fs – %6.1fs  energy %.2f  brightness %.2f\n", i + 1,
                         f->sections[i].start_s, f->sections[i].end_s, f->sections[i].energy,
                         f->sections[i].brightness);
        }
    }
    if (res.prompt != NULL) {
        (void)printf("\nprompt (%s, %d tokens%s):\n  %s\nnegative:\n  %s\n", res.prompt->style, res.prompt->n_tokens,
                     res.prompt->shortened ? ", shortened to fit" : "", res.prompt->positive, res.prompt->negative);
        if (kind == JOB_PROMPT) {
            print_why(res.prompt);
        }
    }
    if (kind == JOB_MAKE) {
        (void)printf("\n%zu poster%s (%s, %dx%d):\n", res.n_images, res.n_images == 1 ? "" : "s", res.renderer,
                     res.width, res.height);
        for (size_t i = 0; i < res.n_images; i++) {
            (void)printf("  %s\n", res.image_paths[i]);
        }
    }
    if (m2p_log_get_level() < M2P_LOG_ERROR) {
        print_times(&res);
    }
done:
    m2p_job_result_clear(&res);
    m2p_store_close(store);
    m2p_pipeline_free(pipe);
    m2p_jobargs_free(&args);
    return exit_code;
}

int m2p_cmd_analyze(m2p_config *cfg, int argc, char **argv) {
    return run_job(cfg, argc, argv, JOB_ANALYZE);
}

int m2p_cmd_prompt(m2p_config *cfg, int argc, char **argv) {
    return run_job(cfg, argc, argv, JOB_PROMPT);
}

int m2p_cmd_make(m2p_config *cfg, int argc, char **argv) {
    return run_job(cfg, argc, argv, JOB_MAKE);
}
