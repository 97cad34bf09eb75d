/*
 * audio/fetch.h — get a remote source's audio into the cache with yt-dlp.
 *
 * yt-dlp runs as a program (argv, never a shell, --ignore-config,
 * --no-playlist, audio only, extractors limited to the allowed sites), first
 * for metadata (live streams, over-long and unknown durations are refused
 * before downloading), then for the audio, with its progress parsed into real
 * fractions and the bytes counted while they arrive (the size cap is enforced
 * during the download). Network and rate-limit failures are retried with
 * bounded exponential backoff and jitter; others never.
 *
 * A cache hit makes no network request and starts no process.
 */
#ifndef M2P_AUDIO_FETCH_H
#define M2P_AUDIO_FETCH_H

#include "audio/cache.h"
#include "audio/source.h"
#include "audio/track.h"
#include "core/config.h"
#include "core/progress.h"

/* Resolves src (remote) to a cached audio file, downloading it once. */
m2p_code m2p_fetch(const m2p_config *cfg, m2p_cache *cache, const m2p_source *src, const m2p_progress *progress,
                   m2p_track *out, m2p_error *err) M2P_WUR;

/* Finds yt-dlp and checks its version (>= 2024.07.01): config `ytdlp` when
 * set (only it), else <exe_dir>/../tools/bin/yt-dlp (and ../../ for test
 * binaries in build/tests/), $MUS2PIC_SOURCE_DIR/tools/bin/yt-dlp, then PATH;
 * the first current one wins. Runs `yt-dlp --version` (a process, no
 * network). path/version filled when found (also for YTDLP_OUTDATED). */
m2p_code m2p_fetch_ytdlp_check(const m2p_config *cfg, char *path, size_t path_cap, char *version, size_t version_cap,
                               m2p_error *err) M2P_WUR;

/* The error code for yt-dlp's stderr text (its ERROR: line when there is
 * one): private, age-restricted, region-blocked, removed, unavailable, rate
 * limited (429, bot checks), network, too large; else FETCH_FAILED. */
m2p_code m2p_fetch_classify_error(const char *ytdlp_stderr);

/* Seconds to wait before retry number attempt+1: base_s × 2^attempt × (0.5 + u01),
 * u01 a uniform random number in [0, 1] (the jitter), capped at 120 s. */
double m2p_fetch_retry_delay(double base_s, int attempt, double u01);

#endif
