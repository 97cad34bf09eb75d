/*
 * dsp/analyze_file.c — decode and analyse at the same time.
 *
 * The caller's thread runs the decoder (m2p_decode_file_stream); its sink
 * appends each chunk to a hand-over buffer. A second thread (the front-end
 * thread) repeatedly swaps that buffer for its own empty one and feeds the
 * samples to the STFT front end, so the spectrum of the first minute is done
 * while FFmpeg still decodes the second. When the decoder returns, the
 * front-end thread drains what is left and ends; then the global back end
 * (tempo, key, sections) runs on all cores in the caller's thread.
 *
 * Invariants (under `mu`): `buf` holds `n` samples not yet taken by the
 * front-end thread; the producer waits while n >= HANDOVER_CAP (memory stays
 * bounded even if the front end were slower than the decoder); `done` is set
 * once by the producer; `fe_rc` is set once by the front-end thread on
 * failure and makes the sink stop the decoder with that code.
 * The decoder's own verdict wins: if it fails, its code and detail are
 * returned unchanged and the partial analysis is dropped.
 */
#include <pthread.h>
#include <string.h>

#include "core/alloc.h"
#include "dsp/analyze.h"
#include "dsp/dsp_internal.h"

#define HANDOVER_CAP ((size_t)1 << 20) /* samples waiting for the front end, ~47 s at 22 kHz */

typedef struct stream_ctx {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled on every change of n, done or fe_rc */
    float *buf;
    size_t n, cap;
    bool done;
    m2p_code fe_rc;
    m2p_error fe_err;
    m2p_dsp_frontend *fe;
    const m2p_progress *progress;
} stream_ctx;

static m2p_code on_samples(void *ctx, const float *samples, size_t n) {
    stream_ctx *s = ctx;
    m2p_code rc = M2P_OK;
    pthread_mutex_lock(&s->mu);
    while (s->fe_rc == M2P_OK && s->n >= HANDOVER_CAP) {
        pthread_cond_wait(&s->cv, &s->mu);
    }
    if (s->fe_rc != M2P_OK) {
        rc = s->fe_rc;
        goto out;
    }
    size_t need;
    if (!m2p_size_add(s->n, n, &need)) {
        rc = M2P_E_NOMEM;
        goto out;
    }
    if (need > s->cap) {
        size_t cap = s->cap < 65536 ? 65536 : s->cap;
        while (cap < need) {
            cap *= 2;
        }
        float *p = m2p_realloc(s->buf, cap * sizeof(float));
        if (p == NULL) {
            rc = M2P_E_NOMEM;
            goto out;
        }
        s->buf = p;
        s->cap = cap;
    }
    memcpy(s->buf + s->n, samples, n * sizeof(float));
    s->n = need;
    pthread_cond_broadcast(&s->cv);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void *frontend_thread(void *arg) {
    stream_ctx *s = arg;
    float *mine = NULL;
    size_t mine_cap = 0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (s->n == 0 && !s->done) {
            pthread_cond_wait(&s->cv, &s->mu);
        }
        if (s->n == 0 && s->done) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        /* swap buffers: take the filled one, hand back our empty one */
        float *full = s->buf;
        size_t full_n = s->n, full_cap = s->cap;
        s->buf = mine;
        s->cap = mine_cap;
        s->n = 0;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        mine = full;
        mine_cap = full_cap;

        m2p_error e;
        m2p_error_clear(&e);
        m2p_code rc = m2p_progress_cancelled(s->progress) ? m2p_error_set(&e, M2P_E_CANCELLED, "analysis cancelled")
                                                          : m2p_dsp_frontend_push(s->fe, mine, full_n, false, &e);
        if (rc != M2P_OK) {
            pthread_mutex_lock(&s->mu);
            s->fe_rc = rc;
            s->fe_err = e;
            pthread_cond_broadcast(&s->cv);
            pthread_mutex_unlock(&s->mu);
            break;
        }
    }
    m2p_free(mine);
    return NULL;
}

m2p_code m2p_dsp_analyze_file(const char *path, const m2p_decode_opts *opts, const m2p_progress *progress,
                              m2p_features **out, m2p_error *err) {
    *out = NULL;
    m2p_decode_opts def;
    if (opts == NULL) {
        m2p_decode_opts_default(&def);
        opts = &def;
    }
    stream_ctx s;
    memset(&s, 0, sizeof s);
    s.progress = progress;
    m2p_code rc = m2p_dsp_frontend_create(opts->rate, &s.fe, err);
    if (rc != M2P_OK) {
        return rc;
    }
    bool sync_ok = false;
    if (pthread_mutex_init(&s.mu, NULL) != 0) {
        rc = m2p_error_set(err, M2P_E_INTERNAL, "pthread_mutex_init");
        goto done;
    }
    if (pthread_cond_init(&s.cv, NULL) != 0) {
        pthread_mutex_destroy(&s.mu);
        rc = m2p_error_set(err, M2P_E_INTERNAL, "pthread_cond_init");
        goto done;
    }
    sync_ok = true;
    pthread_t th;
    if (pthread_create(&th, NULL, frontend_thread, &s) != 0) {
        rc = m2p_error_set(err, M2P_E_INTERNAL, "could not start the analysis thread");
        goto done;
    }
    m2p_decode_sink sink = {on_samples, &s};
    rc = m2p_decode_file_stream(path, opts, progress, &sink, err);
    pthread_mutex_lock(&s.mu);
    s.done = true;
    pthread_cond_broadcast(&s.cv);
    pthread_mutex_unlock(&s.mu);
    (void)pthread_join(th, NULL);
    if (s.fe_rc != M2P_OK && (rc == M2P_OK || rc == s.fe_rc)) {
        /* the front end stopped the decoder: report its reason */
        rc = s.fe_rc;
        if (err != NULL) {
            *err = s.fe_err;
        }
        goto done;
    }
    if (rc != M2P_OK) {
        goto done; /* the decoder's verdict, unchanged */
    }
    m2p_progress_report(progress, M2P_STEP_ANALYZE, 0, 5, "spectrum");
    rc = m2p_dsp_analyze_frontend(s.fe, progress, out, err);
done:
    if (sync_ok) {
        pthread_cond_destroy(&s.cv);
        pthread_mutex_destroy(&s.mu);
    }
    m2p_free(s.buf);
    m2p_dsp_frontend_free(s.fe);
    return rc;
}
