/*
 * render/image.h — an 8-bit RGB image as the renderers hand it out.
 */
#ifndef M2P_RENDER_IMAGE_H
#define M2P_RENDER_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct m2p_image {
    int width, height;
    size_t stride;   /* bytes per row (>= 3 * width) */
    uint8_t *pixels; /* RGB, owned */
    uint32_t seed;   /* the seed that made it */
} m2p_image;

m2p_code m2p_image_create(int width, int height, m2p_image **out) M2P_WUR;
void m2p_image_free(m2p_image *img);

#endif
