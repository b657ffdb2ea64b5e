/* 2x2 box downscale of an interleaved UV plane, scalar reference:
 * dst = (a + b + c + d + 2) >> 2 per channel (round half up; the seed
 * article's version truncates, which biases the image darker by 3/8 LSB). */
#include "internal.h"

void posetok_downscale_uv_row_ref(const uint8_t *row0, const uint8_t *row1, uint8_t *dst,
                                  int x_begin, int x_end) {
    for (int x = x_begin; x < x_end; ++x)
        for (int c = 0; c < 2; ++c) {
            const int i = 4 * x + c;
            dst[2 * x + c] = (uint8_t)((row0[i] + row0[i + 2] + row1[i] + row1[i + 2] + 2) >> 2);
        }
}

int posetok_downscale_uv2x2_u8_ref(const uint8_t *src, int src_stride, uint8_t *dst,
                                   int dst_stride, int width, int height) {
    int status = posetok_check_downscale_uv(src, src_stride, dst, dst_stride, width, height);
    if (status) return status;
    for (int y = 0; y < height / 2; ++y) {
        const uint8_t *row0 = src + (ptrdiff_t)(2 * y) * src_stride;
        posetok_downscale_uv_row_ref(row0, row0 + src_stride, dst + (ptrdiff_t)y * dst_stride, 0,
                                     width / 2);
    }
    return POSETOK_OK;
}
