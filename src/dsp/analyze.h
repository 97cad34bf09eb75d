/*
 * dsp/analyze.h — the whole song, understood: our own DSP in C.
 *
 * One STFT shared by every feature; beat-synchronous features; both cores
 * (OpenMP). Reports progress under M2P_STEP_ANALYZE and findings ("tempo",
 * "key", "mood", "sections") as soon as each is known.
 */
#ifndef M2P_DSP_ANALYZE_H
#define M2P_DSP_ANALYZE_H

#include "audio/audio.h"
#include "audio/decode.h"
#include "core/error.h"
#include "core/progress.h"
#include "dsp/features.h"

m2p_code m2p_dsp_analyze(const m2p_audio *audio, const m2p_progress *progress, m2p_features **out,
                         m2p_error *err) M2P_WUR;

/* Decodes the file at path (audio/decode.h, opts may be NULL for the
 * defaults) in the calling thread while a second thread runs the front end
 * (STFT, mel, pitch bins) on the chunks as they arrive; then the global parts
 * run on all cores. The decoder's errors are returned unchanged
 * (M2P_E_DECODE_SILENT, M2P_E_DECODE_TOO_LONG, ...); progress gets the
 * decoder's M2P_STEP_DECODE reports and the analysis' findings. */
m2p_code m2p_dsp_analyze_file(const char *path, const m2p_decode_opts *opts, const m2p_progress *progress,
                              m2p_features **out, m2p_error *err) M2P_WUR;

#endif
