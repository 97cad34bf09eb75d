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
#include "core/error.h"
#include "core/progress.h"
#include "dsp/features.h"

m2p_code m2p_dsp_analyze(const m2p_audio *audio, const m2p_progress *progress, m2p_features **out,
                         m2p_error *err) M2P_WUR;

#endif
