/*
 * core/assets.h — files under data/ and web/ embedded in the binary at build
 * time (CMake generates the table). Names are paths relative to the
 * repository root: "data/presets.json", "web/index.html".
 */
#ifndef M2P_CORE_ASSETS_H
#define M2P_CORE_ASSETS_H

#include <stdbool.h>
#include <stddef.h>

/* Points *data at the embedded bytes (followed by one NUL byte, not counted
 * in *len). The bytes live as long as the program. False when not found. */
bool m2p_asset_get(const char *name, const unsigned char **data, size_t *len);
size_t m2p_asset_count(void);
const char *m2p_asset_name(size_t i);

#endif
