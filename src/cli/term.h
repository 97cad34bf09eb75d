/*
 * cli/term.h — progress on the terminal: one bar per step with real
 * fractions and per-step elapsed time, findings as they arrive, all on
 * stderr (stdout stays clean for --json and paths).
 *
 * On a TTY the current step's bar is redrawn in place (\r); otherwise one
 * line is printed when a step finishes, so logs stay readable.
 */
#ifndef M2P_CLI_TERM_H
#define M2P_CLI_TERM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

#include "core/progress.h"

typedef struct m2p_term {
    FILE *out;
    bool tty;
    bool quiet;
    int current;                       /* step being drawn, -1 none */
    double step_start[M2P_STEP_COUNT]; /* monotonic seconds, 0 = not started */
    double step_done[M2P_STEP_COUNT];  /* elapsed when finished, <0 = not finished */
    double last_draw;
    atomic_bool cancel;
} m2p_term;

/* Sets up t on stderr and fills progress with callbacks into it. */
void m2p_term_init(m2p_term *t, bool quiet, m2p_progress *progress);
/* Finishes the bar being drawn (call before printing results). */
void m2p_term_finish(m2p_term *t);

#endif
