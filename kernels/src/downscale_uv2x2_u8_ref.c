/* 2x2 box downscale of an interleaved UV plane: the C row (the specification)
 * and the plane loop that the reference and the NEON entry points share.
 * dst = (a + b + c + d + 2) >> 2 per channel (round half up; the seed
 * article's version truncates, which biases the image darker by 3/8 LSB). */
#include "internal.h"

void posetok_downscale_uv_row_ref(const uint8_t *row0, const uint8_t *row1, uint8_t *dst,
                                  int out_w) {
    for (int x = 0; x < out_w; ++x)
        for (int c = 0; c < 2; ++c) {
            const int i = 4 * x + c;
            dst[2 * x + c] = (uint8_t)((row0[i] + row0[i + 2] + row1[i] + row1[i + 2] + 2) >> 2);
        }
}

void posetok_downscale_uv_plane(posetok_downscale_uv_row_fn *row, const uint8_t *src,
                                int src_stride, uint8_t *dst, int dst_stride, int width,
                                int height) {
    for (int y = 0; y < height / 2; ++y) {
        const uint8_t *row0 = src + (ptrdiff_t)(2 * y) * src_stride;
        row(row0, row0 + src_stride, dst + (ptrdiff_t)y * dst_stride, width / 2);
    }
}

int posetok_downscale_uv2x2_u8_ref(const uint8_t *src, int src_stride, uint8_t *dst, int dst_stride,
                                   int width, int height) {
    int status = posetok_check_downscale_uv(src, src_stride, dst, dst_stride, width, height);
    if (status) return status;
    posetok_downscale_uv_plane(posetok_downscale_uv_row_ref, src, src_stride, dst, dst_stride,
                               width, height);
    return POSETOK_OK;
}
