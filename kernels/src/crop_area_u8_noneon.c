/* Built only when the target has no NEON: the crop kernels' *_neon symbols
 * report POSETOK_ERR_NO_NEON without touching memory (like neon_unavailable.c). */
#include "posetok_kernels.h"

int posetok_crop_area_yuv420sp_u8_neon(const uint8_t *y, int y_stride, const uint8_t *chroma,
                                       int chroma_stride, int width, int height, int chroma_order,
                                       int range, int box_x, int box_y, int box_w, int box_h,
                                       int out_w, int out_h, int channels, const float *mean,
                                       const float *scale, float *dst_f32, uint8_t *dst_u8) {
    (void)y, (void)y_stride, (void)chroma, (void)chroma_stride, (void)width, (void)height;
    (void)chroma_order, (void)range, (void)box_x, (void)box_y, (void)box_w, (void)box_h;
    (void)out_w, (void)out_h, (void)channels, (void)mean, (void)scale, (void)dst_f32, (void)dst_u8;
    return POSETOK_ERR_NO_NEON;
}

int posetok_crop_area_u8_neon(const uint8_t *src, int src_stride, int width, int height,
                              int channels, int box_x, int box_y, int box_w, int box_h, int out_w,
                              int out_h, const float *mean, const float *scale, float *dst_f32,
                              uint8_t *dst_u8) {
    (void)src, (void)src_stride, (void)width, (void)height, (void)channels, (void)box_x;
    (void)box_y, (void)box_w, (void)box_h, (void)out_w, (void)out_h, (void)mean, (void)scale;
    (void)dst_f32, (void)dst_u8;
    return POSETOK_ERR_NO_NEON;
}
