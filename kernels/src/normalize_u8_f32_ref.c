/* u8 HWC -> f32 CHW, (x - mean[c]) * scale[c]: the C row (the specification)
 * and the plane loop of the reference (the NEON file keeps its own, see there). */
#include "internal.h"

void posetok_normalize_row_ref(const uint8_t *src, float *dst, int width,
                               const posetok_normalize_args *a) {
    const int channels = a->channels;
    for (int c = 0; c < channels; ++c) {
        const float m = a->mean[c], s = a->scale[c];
        float *out = dst + c * a->plane;
        for (int x = 0; x < width; ++x) out[x] = ((float)src[x * channels + c] - m) * s;
    }
}

void posetok_normalize_plane(posetok_normalize_row_fn *row, const posetok_normalize_args *a,
                             const uint8_t *src, int src_stride, int width, int height, float *dst,
                             int dst_stride) {
    for (int y = 0; y < height; ++y)
        row(src + (ptrdiff_t)y * src_stride, dst + (ptrdiff_t)y * dst_stride, width, a);
}

int posetok_normalize_u8_f32_chw_ref(const uint8_t *src, int src_stride, int width, int height,
                                     int channels, const float *mean, const float *scale,
                                     float *dst, int dst_stride) {
    int status = posetok_check_normalize(src, src_stride, width, height, channels, mean, scale, dst,
                                         dst_stride);
    if (status) return status;
    const posetok_normalize_args a = {channels, mean, scale, (ptrdiff_t)height * dst_stride};
    posetok_normalize_plane(posetok_normalize_row_ref, &a, src, src_stride, width, height, dst,
                            dst_stride);
    return POSETOK_OK;
}
