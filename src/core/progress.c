/*
 * core/progress.c — step names.
 */
#include "core/progress.h"

const char *m2p_step_name(m2p_step step) {
    switch (step) {
    case M2P_STEP_FETCH:
        return "fetch";
    case M2P_STEP_DECODE:
        return "decode";
    case M2P_STEP_ANALYZE:
        return "analyze";
    case M2P_STEP_PROMPT:
        return "prompt";
    case M2P_STEP_RENDER:
        return "render";
    case M2P_STEP_STORE:
        return "store";
    case M2P_STEP_COUNT:
        break;
    }
    return "unknown";
}
