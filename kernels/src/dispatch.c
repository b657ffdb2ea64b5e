/* The public entry points: NEON on aarch64, the scalar reference elsewhere.
 * Chosen at compile time — every aarch64 core has Advanced SIMD. */
#include "internal.h"

#if defined(__aarch64__)
#define POSETOK_IMPL(name) name##_neon
#else
#define POSETOK_IMPL(name) name##_ref
#endif

int posetok_nv21_to_rgb888(const uint8_t *y, int y_stride, const uint8_t *vu, int vu_stride,
                           uint8_t *rgb, int rgb_stride, int width, int height, int range) {
    return POSETOK_IMPL(posetok_nv21_to_rgb888)(y, y_stride, vu, vu_stride, rgb, rgb_stride, width,
                                                height, range);
}

int posetok_nv12_to_rgb888(const uint8_t *y, int y_stride, const uint8_t *uv, int uv_stride,
                           uint8_t *rgb, int rgb_stride, int width, int height, int range) {
    return POSETOK_IMPL(posetok_nv12_to_rgb888)(y, y_stride, uv, uv_stride, rgb, rgb_stride, width,
                                                height, range);
}

int posetok_downscale_uv2x2_u8(const uint8_t *src, int src_stride, uint8_t *dst, int dst_stride,
                               int width, int height) {
    return POSETOK_IMPL(posetok_downscale_uv2x2_u8)(src, src_stride, dst, dst_stride, width,
                                                    height);
}

int posetok_gaussian3x3_u8(const uint8_t *src, int src_stride, uint8_t *dst, int dst_stride,
                           int width, int height, int border, int border_value) {
    return POSETOK_IMPL(posetok_gaussian3x3_u8)(src, src_stride, dst, dst_stride, width, height,
                                                border, border_value);
}

int posetok_resize_bilinear_u8(const uint8_t *src, int src_stride, int src_width, int src_height,
                               uint8_t *dst, int dst_stride, int dst_width, int dst_height,
                               int channels) {
    return POSETOK_IMPL(posetok_resize_bilinear_u8)(src, src_stride, src_width, src_height, dst,
                                                    dst_stride, dst_width, dst_height, channels);
}

int posetok_conv2d_f32(const float *src, int src_stride, int in_width, int in_height, int in_c,
                       const float *weight, const float *bias, int out_c, int ksize, int stride,
                       int pad, float *dst, int dst_stride) {
    return POSETOK_IMPL(posetok_conv2d_f32)(src, src_stride, in_width, in_height, in_c, weight,
                                            bias, out_c, ksize, stride, pad, dst, dst_stride);
}

int posetok_normalize_u8_f32_chw(const uint8_t *src, int src_stride, int width, int height,
                                 int channels, const float *mean, const float *scale, float *dst,
                                 int dst_stride) {
    return POSETOK_IMPL(posetok_normalize_u8_f32_chw)(src, src_stride, width, height, channels,
                                                      mean, scale, dst, dst_stride);
}

int posetok_crop_area_yuv420sp_u8(const uint8_t *y, int y_stride, const uint8_t *chroma,
                                  int chroma_stride, int width, int height, int chroma_order,
                                  int range, int box_x, int box_y, int box_w, int box_h, int out_w,
                                  int out_h, int channels, const float *mean, const float *scale,
                                  float *dst_f32, uint8_t *dst_u8) {
    return POSETOK_IMPL(posetok_crop_area_yuv420sp_u8)(
        y, y_stride, chroma, chroma_stride, width, height, chroma_order, range, box_x, box_y, box_w,
        box_h, out_w, out_h, channels, mean, scale, dst_f32, dst_u8);
}

int posetok_crop_area_u8(const uint8_t *src, int src_stride, int width, int height, int channels,
                         int box_x, int box_y, int box_w, int box_h, int out_w, int out_h,
                         const float *mean, const float *scale, float *dst_f32, uint8_t *dst_u8) {
    return POSETOK_IMPL(posetok_crop_area_u8)(src, src_stride, width, height, channels, box_x,
                                              box_y, box_w, box_h, out_w, out_h, mean, scale,
                                              dst_f32, dst_u8);
}
