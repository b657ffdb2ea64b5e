/* NV21 / NV12 -> RGB888, BT.601, scalar reference (the specification; the
 * fixed-point formulas are documented in posetok_kernels.h). */
#include "internal.h"

static inline uint8_t clamp_q6(int q) {
    int v = (q + 32) >> 6; /* round half up; >> on negatives is arithmetic */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

void posetok_yuv_row_ref(const uint8_t *y, const uint8_t *chroma, uint8_t *rgb, int x_begin,
                         int x_end, int u_first, int range) {
    const int video = range == POSETOK_YUV_RANGE_VIDEO;
    const int crv = video ? 102 : 90, cgu = video ? 25 : 22, cgv = video ? 52 : 46,
              cbu = video ? 129 : 113;
    for (int x = x_begin; x < x_end; ++x) {
        const uint8_t *pair = chroma + 2 * (x / 2);
        int d = (u_first ? pair[0] : pair[1]) - 128;
        int e = (u_first ? pair[1] : pair[0]) - 128;
        int yq = video ? ((y[x] * 149) >> 1) - 1192 : y[x] * 64;
        rgb[3 * x + 0] = clamp_q6(yq + crv * e);
        rgb[3 * x + 1] = clamp_q6(yq - cgu * d - cgv * e);
        rgb[3 * x + 2] = clamp_q6(yq + cbu * d);
    }
}

static void yuv_to_rgb_ref(const uint8_t *y, int y_stride, const uint8_t *c, int c_stride,
                           uint8_t *rgb, int rgb_stride, int width, int height, int range,
                           int u_first) {
    for (int row = 0; row < height; ++row)
        posetok_yuv_row_ref(y + (ptrdiff_t)row * y_stride, c + (ptrdiff_t)(row / 2) * c_stride,
                            rgb + (ptrdiff_t)row * rgb_stride, 0, width, u_first, range);
}

int posetok_nv21_to_rgb888_ref(const uint8_t *y, int y_stride, const uint8_t *vu, int vu_stride,
                               uint8_t *rgb, int rgb_stride, int width, int height, int range) {
    int status = posetok_check_yuv(y, y_stride, vu, vu_stride, rgb, rgb_stride, width, height,
                                   range);
    if (status) return status;
    yuv_to_rgb_ref(y, y_stride, vu, vu_stride, rgb, rgb_stride, width, height, range, 0);
    return POSETOK_OK;
}

int posetok_nv12_to_rgb888_ref(const uint8_t *y, int y_stride, const uint8_t *uv, int uv_stride,
                               uint8_t *rgb, int rgb_stride, int width, int height, int range) {
    int status = posetok_check_yuv(y, y_stride, uv, uv_stride, rgb, rgb_stride, width, height,
                                   range);
    if (status) return status;
    yuv_to_rgb_ref(y, y_stride, uv, uv_stride, rgb, rgb_stride, width, height, range, 1);
    return POSETOK_OK;
}
