/*
 * cli/jobargs.h — the options shared by `analyze`, `prompt` and `make`, parsed
 * into an m2p_job_spec. Values are checked here with the same error codes the
 * API uses (RENDER_SIZE, RENDER_COUNT, RENDER_STEPS, RENDER_SEED, ...).
 */
#ifndef M2P_CLI_JOBARGS_H
#define M2P_CLI_JOBARGS_H

#include <stdbool.h>

#include "core/config.h"
#include "pipeline/pipeline.h"

typedef struct m2p_jobargs {
    m2p_job_spec spec;
    bool json;
    char *template_owned; /* template text read from @file, owned */
} m2p_jobargs;

/* Parses argv[1..] (argv[0] is the command). Exactly one positional SOURCE.
 * allowed: a string of the option groups this command accepts: 'r' render
 * options (-n, --size, --steps, --seed, --renderer, --per-section, --layout,
 * --out), 's' style options (--style, --template), 'j' --json. */
m2p_code m2p_jobargs_parse(m2p_jobargs *a, const m2p_config *cfg, int argc, char **argv, const char *allowed,
                           m2p_error *err) M2P_WUR;
void m2p_jobargs_free(m2p_jobargs *a);

#endif
