/*
 * bench/bench_clip_tokenizer.c — timings of the C CLIP tokenizer and prompt
 * builder, printed as "key value" lines for tools/tokenizer/bench.py, which
 * runs Hugging Face's tokenizer on the same texts in the same run and prints
 * the ratios.
 *
 *   bench_clip_tokenizer CASES_JSON [ROUNDS]
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/fs.h"
#include "prompt/clip_tokenizer.h"
#include "prompt/prompt.h"

/* CPU seconds of this process: unlike wall time, not inflated by other load on the machine. */
static double cpu_now(void) {
    struct timespec ts;
    (void)clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        (void)fprintf(stderr, "usage: %s tests/fixtures/tokenizer/cases.json [ROUNDS]\n", argv[0]);
        return 2;
    }
    long rounds = argc > 2 ? strtol(argv[2], NULL, 10) : 200;
    if (rounds < 1 || rounds > 100000) {
        rounds = 200;
    }
    json_t *root = json_load_file(argv[1], 0, NULL);
    json_t *cases = json_object_get(root, "cases");
    if (!json_is_array(cases)) {
        (void)fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }
    /* Load: best of 10. */
    double best_load = 1e9;
    double best_load_cpu = 1e9;
    m2p_clip_tokenizer *t = NULL;
    for (int i = 0; i < 10; i++) {
        m2p_clip_tokenizer_free(t);
        t = NULL;
        double t0 = m2p_now_monotonic();
        double c0 = cpu_now();
        if (m2p_clip_tokenizer_default(&t, NULL) != M2P_OK) {
            return 1;
        }
        double dt = m2p_now_monotonic() - t0;
        double dc = cpu_now() - c0;
        best_load = dt < best_load ? dt : best_load;
        best_load_cpu = dc < best_load_cpu ? dc : best_load_cpu;
    }
    size_t n = json_array_size(cases);
    int32_t ids[M2P_CLIP_MAX_TOKENS];
    long checksum = 0;
    double t0 = m2p_now_monotonic();
    for (long r = 0; r < rounds; r++) {
        for (size_t i = 0; i < n; i++) {
            const char *text = json_string_value(json_object_get(json_array_get(cases, i), "text"));
            int n_real = 0;
            if (m2p_clip_tokenize(t, text, ids, M2P_CLIP_MAX_TOKENS, &n_real, NULL) != M2P_OK) {
                return 1;
            }
            checksum += ids[n_real - 2];
        }
    }
    double per_text = (m2p_now_monotonic() - t0) / (double)(rounds * (long)n);

    /* A whole prompt build (presets + fragments + exact count), shared tokenizer. */
    m2p_presets *ps = NULL;
    if (m2p_presets_load(&ps, NULL) != M2P_OK) {
        return 1;
    }
    m2p_section secs[3] = {{0, 60, 0.3, 0.4, 0}, {60, 120, 0.8, 0.7, 1}, {120, 180, 0.5, 0.5, 0}};
    m2p_features f = {.tempo_bpm = 128,
                      .tempo_confidence = 0.9,
                      .key = 9,
                      .mode = M2P_MODE_MINOR,
                      .key_confidence = 0.8,
                      .energy = 0.7,
                      .brightness = 0.6,
                      .percussiveness = 0.6,
                      .onset_density = 4,
                      .valence = 0.4,
                      .arousal = 0.7,
                      .sections = secs,
                      .n_sections = 3};
    long builds = rounds * 5;
    t0 = m2p_now_monotonic();
    for (long r = 0; r < builds; r++) {
        m2p_prompt_input in = {.features = &f,
                               .style = m2p_presets_at(ps, (size_t)r % m2p_presets_count(ps))->name,
                               .title = "Midnight City",
                               .presets = ps,
                               .tokenizer = t};
        m2p_prompt *p = NULL;
        if (m2p_prompt_build(&in, &p, NULL) != M2P_OK) {
            return 1;
        }
        checksum += p->n_tokens;
        m2p_prompt_free(p);
    }
    double per_build = (m2p_now_monotonic() - t0) / (double)builds;
    (void)printf("load_cpu_ms %.3f\n", best_load_cpu * 1e3);
    (void)printf("texts %zu\nrounds %ld\nload_ms %.3f\ntokenize_us %.3f\nprompt_build_us %.3f\nchecksum %ld\n", n,
                 rounds, best_load * 1e3, per_text * 1e6, per_build * 1e6, checksum);
    m2p_presets_free(ps);
    m2p_clip_tokenizer_free(t);
    json_decref(root);
    return 0;
}
