/* NV21 / NV12 -> RGB888, BT.601: the C row (the specification; constants in
 * yuv_constants.h, formulas in posetok_kernels.h) and the plane loop that the
 * reference and the NEON entry points share. */
#include "internal.h"
#include "yuv_constants.h"

void posetok_yuv_row_ref(const uint8_t *y, const uint8_t *chroma, uint8_t *rgb, int width,
                         int u_first, int range) {
    const posetok_yuv_coeffs k = posetok_yuv_coeffs_for(range);
    for (int x = 0; x < width; ++x) {
        const uint8_t *pair = chroma + 2 * (x / 2);
        const int d = (u_first ? pair[0] : pair[1]) - POSETOK_YUV_CHROMA_ZERO;
        const int e = (u_first ? pair[1] : pair[0]) - POSETOK_YUV_CHROMA_ZERO;
        const int yq = posetok_yuv_luma_q6(y[x], range);
        rgb[3 * x + 0] = posetok_yuv_clamp_q6(yq + k.crv * e);
        rgb[3 * x + 1] = posetok_yuv_clamp_q6(yq - k.cgu * d - k.cgv * e);
        rgb[3 * x + 2] = posetok_yuv_clamp_q6(yq + k.cbu * d);
    }
}

void posetok_yuv_plane(posetok_yuv_row_fn *row, const uint8_t *y, int y_stride, const uint8_t *c,
                       int c_stride, uint8_t *rgb, int rgb_stride, int width, int height, int range,
                       int u_first) {
    for (int r = 0; r < height; ++r)
        row(y + (ptrdiff_t)r * y_stride, c + (ptrdiff_t)(r / 2) * c_stride,
            rgb + (ptrdiff_t)r * rgb_stride, width, u_first, range);
}

int posetok_nv21_to_rgb888_ref(const uint8_t *y, int y_stride, const uint8_t *vu, int vu_stride,
                               uint8_t *rgb, int rgb_stride, int width, int height, int range) {
    int status =
        posetok_check_yuv(y, y_stride, vu, vu_stride, rgb, rgb_stride, width, height, range);
    if (status) return status;
    posetok_yuv_plane(posetok_yuv_row_ref, y, y_stride, vu, vu_stride, rgb, rgb_stride, width,
                      height, range, 0);
    return POSETOK_OK;
}

int posetok_nv12_to_rgb888_ref(const uint8_t *y, int y_stride, const uint8_t *uv, int uv_stride,
                               uint8_t *rgb, int rgb_stride, int width, int height, int range) {
    int status =
        posetok_check_yuv(y, y_stride, uv, uv_stride, rgb, rgb_stride, width, height, range);
    if (status) return status;
    posetok_yuv_plane(posetok_yuv_row_ref, y, y_stride, uv, uv_stride, rgb, rgb_stride, width,
                      height, range, 1);
    return POSETOK_OK;
}
