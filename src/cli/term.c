/*
 * cli/term.c — terminal progress bars and findings.
 */
#include "cli/term.h"

#include <string.h>
#include <unistd.h>

#include "core/fs.h"

static void end_line(m2p_term *t) {
    if (t->current >= 0 && t->tty) {
        (void)fputc('\n', t->out);
    }
}

static void draw(m2p_term *t, m2p_step step, double done, double total, const char *message, bool force) {
    double now = m2p_now_monotonic();
    if (!force && now - t->last_draw < 0.05) {
        return;
    }
    t->last_draw = now;
    double frac = total > 0 ? done / total : 0;
    if (frac < 0) {
        frac = 0;
    }
    if (frac > 1) {
        frac = 1;
    }
    char bar[25];
    int fill = (int)(frac * 24.0 + 0.5);
    for (int i = 0; i < 24; i++) {
        bar[i] = i < fill ? '#' : '.';
    }
    bar[24] = '\0';
    double elapsed = now - t->step_start[step];
    (void)fprintf(t->out, "%s%-8s [%s] %3.0f%%  %5.2fs  %-40.40s", t->tty ? "\r" : "", m2p_step_name(step), bar,
                  frac * 100.0, elapsed, message ? message : "");
    if (!t->tty) {
        (void)fputc('\n', t->out);
    }
    (void)fflush(t->out);
}

static void on_report(void *ctx, m2p_step step, double done, double total, const char *message) {
    m2p_term *t = ctx;
    if (t->quiet || step >= M2P_STEP_COUNT) {
        return;
    }
    double now = m2p_now_monotonic();
    if ((int)step != t->current) {
        if (t->current >= 0 && t->step_done[t->current] < 0) {
            t->step_done[t->current] = now - t->step_start[t->current];
        }
        end_line(t);
        t->current = (int)step;
        if (t->step_start[step] == 0) {
            t->step_start[step] = now;
        }
    }
    bool finished = total > 0 && done >= total;
    bool already = t->step_done[step] >= 0;
    /* Without a TTY, print each step once, when it finishes. */
    if (t->tty ? !already || !finished : finished && !already) {
        draw(t, step, done, total, message, finished);
    }
    if (finished && !already) {
        t->step_done[step] = now - t->step_start[step];
    }
}

static void on_finding(void *ctx, m2p_step step, const char *key, const char *text) {
    m2p_term *t = ctx;
    (void)step;
    /* renderer_note: `mus2pic make` prints it once itself, before the work starts */
    if (t->quiet || strcmp(key, "prompt") == 0 || strcmp(key, "image") == 0 || strcmp(key, "renderer_note") == 0) {
        return;
    }
    if (t->current >= 0 && t->tty) {
        (void)fputs("\r\033[K", t->out);
    }
    (void)fprintf(t->out, "  %s\n", text);
    (void)fflush(t->out);
}

void m2p_term_init(m2p_term *t, bool quiet, m2p_progress *progress) {
    memset(t, 0, sizeof *t);
    t->out = stderr;
    t->tty = isatty(STDERR_FILENO) != 0;
    t->quiet = quiet;
    t->current = -1;
    for (int i = 0; i < M2P_STEP_COUNT; i++) {
        t->step_done[i] = -1;
    }
    atomic_init(&t->cancel, false);
    progress->report = on_report;
    progress->finding = on_finding;
    progress->ctx = t;
    progress->cancel = &t->cancel;
}

void m2p_term_finish(m2p_term *t) {
    if (t->quiet) {
        return;
    }
    end_line(t);
    t->current = -1;
    (void)fflush(t->out);
}
