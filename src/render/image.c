/*
 * render/image.c — the RGB image the renderers hand out (render/image.h).
 *
 * Invariants: pixels holds height rows of stride bytes, stride == 3 * width
 * (rows are packed), and the size fits a size_t; width and height are within
 * 1..M2P_IMAGE_MAX_EDGE so callers need no overflow checks of their own.
 */
#include "render/image.h"

#include "core/alloc.h"

#define M2P_IMAGE_MAX_EDGE 16384

m2p_code m2p_image_create(int width, int height, m2p_image **out) {
    *out = NULL;
    if (width <= 0 || height <= 0 || width > M2P_IMAGE_MAX_EDGE || height > M2P_IMAGE_MAX_EDGE) {
        return M2P_E_INVALID_ARG;
    }
    size_t stride;
    size_t total;
    if (!m2p_size_mul((size_t)width, 3, &stride) || !m2p_size_mul(stride, (size_t)height, &total)) {
        return M2P_E_TOO_LARGE;
    }
    m2p_image *img = m2p_calloc(1, sizeof *img);
    if (img == NULL) {
        return M2P_E_NOMEM;
    }
    img->pixels = m2p_calloc(total, 1);
    if (img->pixels == NULL) {
        m2p_free(img);
        return M2P_E_NOMEM;
    }
    img->width = width;
    img->height = height;
    img->stride = stride;
    *out = img;
    return M2P_OK;
}

void m2p_image_free(m2p_image *img) {
    if (img == NULL) {
        return;
    }
    m2p_free(img->pixels);
    m2p_free(img);
}
