/*
 * core/progress.h — how a pipeline step reports what it is doing.
 *
 * Every step of the data flow (fetch, decode, analyze, prompt, render, store)
 * receives a const m2p_progress * (which may be NULL: report nothing) and
 *  - calls m2p_progress_report(p, step, done, total, message) with real
 *    fractions (done/total in the step's own unit: bytes, frames, UNet steps),
 *  - calls m2p_progress_finding(p, step, key, text) as soon as a result is
 *    known ("tempo", "Found tempo: 124 BPM"),
 *  - checks m2p_progress_cancelled(p) between units of work and returns
 *    M2P_E_CANCELLED when it is set.
 * The same callbacks drive the CLI's progress bars, the server's job state and
 * the distributed workers; only the ctx differs. No globals.
 */
#ifndef M2P_CORE_PROGRESS_H
#define M2P_CORE_PROGRESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum m2p_step {
    M2P_STEP_FETCH = 0,
    M2P_STEP_DECODE,
    M2P_STEP_ANALYZE,
    M2P_STEP_PROMPT,
    M2P_STEP_RENDER,
    M2P_STEP_STORE,
    M2P_STEP_COUNT
} m2p_step;

/* "fetch", "decode", ...; never NULL. */
const char *m2p_step_name(m2p_step step);

typedef void (*m2p_report_fn)(void *ctx, m2p_step step, double done, double total, const char *message);
typedef void (*m2p_finding_fn)(void *ctx, m2p_step step, const char *key, const char *text);

typedef struct m2p_progress {
    m2p_report_fn report;   /* may be NULL */
    m2p_finding_fn finding; /* may be NULL */
    void *ctx;
    const atomic_bool *cancel; /* may be NULL: never cancelled */
} m2p_progress;

static inline void m2p_progress_report(const m2p_progress *p, m2p_step step, double done, double total,
                                       const char *message) {
    if (p != NULL && p->report != NULL) {
        p->report(p->ctx, step, done, total, message);
    }
}

static inline void m2p_progress_finding(const m2p_progress *p, m2p_step step, const char *key, const char *text) {
    if (p != NULL && p->finding != NULL) {
        p->finding(p->ctx, step, key, text);
    }
}

static inline bool m2p_progress_cancelled(const m2p_progress *p) {
    return p != NULL && p->cancel != NULL && atomic_load(p->cancel);
}

#endif
