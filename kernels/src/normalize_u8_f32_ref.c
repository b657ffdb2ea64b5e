/* u8 HWC -> f32 CHW, (x - mean[c]) * scale[c], scalar reference. */
#include "internal.h"

void posetok_normalize_row_ref(const uint8_t *src, int channels, const float *mean,
                               const float *scale, float *dst, ptrdiff_t plane_stride,
                               int x_begin, int x_end) {
    for (int c = 0; c < channels; ++c) {
        const float m = mean[c], s = scale[c];
        float *out = dst + c * plane_stride;
        for (int x = x_begin; x < x_end; ++x) out[x] = ((float)src[x * channels + c] - m) * s;
    }
}

int posetok_normalize_u8_f32_chw_ref(const uint8_t *src, int src_stride, int width, int height,
                                     int channels, const float *mean, const float *scale,
                                     float *dst, int dst_stride) {
    int status = posetok_check_normalize(src, src_stride, width, height, channels, mean, scale,
                                         dst, dst_stride);
    if (status) return status;
    const ptrdiff_t plane = (ptrdiff_t)height * dst_stride;
    for (int y = 0; y < height; ++y)
        posetok_normalize_row_ref(src + (ptrdiff_t)y * src_stride, channels, mean, scale,
                                  dst + (ptrdiff_t)y * dst_stride, plane, 0, width);
    return POSETOK_OK;
}
