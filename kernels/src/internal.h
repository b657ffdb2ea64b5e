/* Shared by the reference and NEON files: argument checks (so every entry point
 * validates identically before touching memory) and the scalar per-row helpers
 * that the NEON files reuse for leftovers, libyuv-style. */
#ifndef POSETOK_KERNELS_INTERNAL_H
#define POSETOK_KERNELS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "posetok_kernels.h"

#define POSETOK_INTERNAL __attribute__((visibility("hidden")))

/* ---- argument checks (return POSETOK_OK or the status to report) ---- */
POSETOK_INTERNAL int posetok_check_yuv(const uint8_t *y, int y_stride, const uint8_t *c,
                                       int c_stride, const uint8_t *rgb, int rgb_stride,
                                       int width, int height, int range);
POSETOK_INTERNAL int posetok_check_downscale_uv(const uint8_t *src, int src_stride,
                                                const uint8_t *dst, int dst_stride, int width,
                                                int height);
POSETOK_INTERNAL int posetok_check_gaussian(const uint8_t *src, int src_stride,
                                            const uint8_t *dst, int dst_stride, int width,
                                            int height, int border, int border_value);
POSETOK_INTERNAL int posetok_check_resize(const uint8_t *src, int src_stride, int src_width,
                                          int src_height, const uint8_t *dst, int dst_stride,
                                          int dst_width, int dst_height, int channels);
POSETOK_INTERNAL int posetok_check_conv2d(const float *src, int src_stride, int in_width,
                                          int in_height, int in_c, const float *weight,
                                          int out_c, int ksize, int stride, int pad,
                                          const float *dst, int dst_stride);
POSETOK_INTERNAL int posetok_check_normalize(const uint8_t *src, int src_stride, int width,
                                             int height, int channels, const float *mean,
                                             const float *scale, const float *dst,
                                             int dst_stride);

/* ---- YUV -> RGB: one row, pixels [x_begin, x_end) ---- */
/* u_first: 1 for NV12 (U,V pairs), 0 for NV21 (V,U pairs). */
POSETOK_INTERNAL void posetok_yuv_row_ref(const uint8_t *y, const uint8_t *chroma,
                                          uint8_t *rgb, int x_begin, int x_end, int u_first,
                                          int range);

/* ---- UV 2x2 downscale: one output row, pairs [x_begin, x_end) ---- */
POSETOK_INTERNAL void posetok_downscale_uv_row_ref(const uint8_t *row0, const uint8_t *row1,
                                                   uint8_t *dst, int x_begin, int x_end);

/* ---- Gaussian: source row pointers for output row y; NULL = constant row ---- */
POSETOK_INTERNAL void posetok_gaussian_rows(const uint8_t *src, int src_stride, int height,
                                            int y, int border, const uint8_t **top,
                                            const uint8_t **bottom);
/* One output row, pixels [x_begin, x_end); top/bottom may be NULL (constant). */
POSETOK_INTERNAL void posetok_gaussian_row_ref(const uint8_t *top, const uint8_t *mid,
                                               const uint8_t *bottom, uint8_t *dst, int width,
                                               int x_begin, int x_end, int border,
                                               int border_value);
/* Vertical sum top + 2 mid + bottom of column x (x inside the row). */
static inline unsigned posetok_gaussian_column(const uint8_t *top, const uint8_t *mid,
                                               const uint8_t *bottom, int x,
                                               int border_value) {
    unsigned t = top ? top[x] : (unsigned)border_value;
    unsigned b = bottom ? bottom[x] : (unsigned)border_value;
    return t + 2u * mid[x] + b;
}

/* ---- bilinear resize: the source position table of one axis ---- */
typedef struct {
    int32_t i0, i1; /* source indices (pixels) */
    int32_t w;      /* Q7 weight of i1, 0..127 */
} posetok_lerp_tap;

/* Fills taps[0..dst_len) as documented in the header. */
POSETOK_INTERNAL void posetok_resize_taps(int src_len, int dst_len, posetok_lerp_tap *taps);

static inline uint8_t posetok_lerp_q7(unsigned a, unsigned b, unsigned w) {
    return (uint8_t)((a * (128u - w) + b * w + 64u) >> 7);
}

/* ---- conv2d: one output element computed with bounds checks ---- */
POSETOK_INTERNAL float posetok_conv2d_point_ref(const float *src, int src_stride, int in_width,
                                                int in_height, int in_c, const float *weight,
                                                const float *bias, int oc, int ksize, int stride,
                                                int pad, int ox, int oy);
static inline int posetok_conv_out_len(int in_len, int ksize, int stride, int pad) {
    return (in_len + 2 * pad - ksize) / stride + 1;
}

/* ---- normalize: one row, pixels [x_begin, x_end), every channel ---- */
POSETOK_INTERNAL void posetok_normalize_row_ref(const uint8_t *src, int channels,
                                                const float *mean,
                                                const float *scale, float *dst,
                                                ptrdiff_t plane_stride, int x_begin, int x_end);

#endif
