/* Shared by the reference and NEON files: argument checks (so every entry point
 * validates identically before touching memory), the row-function types, the
 * plane loops and the scalar row helpers the NEON files reuse for leftovers. */
#ifndef POSETOK_KERNELS_INTERNAL_H
#define POSETOK_KERNELS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "posetok_kernels.h"

#define POSETOK_INTERNAL __attribute__((visibility("hidden")))

/* ---- argument checks (return POSETOK_OK or the status to report) ---- */
POSETOK_INTERNAL int posetok_check_yuv(const uint8_t *y, int y_stride, const uint8_t *c,
                                       int c_stride, const uint8_t *rgb, int rgb_stride, int width,
                                       int height, int range);
POSETOK_INTERNAL int posetok_check_downscale_uv(const uint8_t *src, int src_stride,
                                                const uint8_t *dst, int dst_stride, int width,
                                                int height);
POSETOK_INTERNAL int posetok_check_gaussian(const uint8_t *src, int src_stride, const uint8_t *dst,
                                            int dst_stride, int width, int height, int border,
                                            int border_value);
POSETOK_INTERNAL int posetok_check_resize(const uint8_t *src, int src_stride, int src_width,
                                          int src_height, const uint8_t *dst, int dst_stride,
                                          int dst_width, int dst_height, int channels);
POSETOK_INTERNAL int posetok_check_conv2d(const float *src, int src_stride, int in_width,
                                          int in_height, int in_c, const float *weight, int out_c,
                                          int ksize, int stride, int pad, const float *dst,
                                          int dst_stride);
POSETOK_INTERNAL int posetok_check_normalize(const uint8_t *src, int src_stride, int width,
                                             int height, int channels, const float *mean,
                                             const float *scale, const float *dst, int dst_stride);

/* ---- row functions and plane loops ----
 * libyuv's split: each kernel has per-row functions, a C one (`_ref`) and a
 * NEON one with the same signature, and ONE plane-level loop (here, in the
 * kernel's _ref.c file) that walks the rows and calls the row function it is
 * given. posetok_X_ref passes the C row, posetok_X_neon the NEON row; the
 * plane loops run after the argument checks and touch only the given rows. */

/* ---- YUV -> RGB ---- */
/* One row of `width` pixels; chroma holds the (width + 1) / 2 pairs of the row.
 * u_first: 1 for NV12 (U,V pairs), 0 for NV21 (V,U pairs). */
typedef void posetok_yuv_row_fn(const uint8_t *y, const uint8_t *chroma, uint8_t *rgb, int width,
                                int u_first, int range);
POSETOK_INTERNAL posetok_yuv_row_fn posetok_yuv_row_ref;
POSETOK_INTERNAL void posetok_yuv_plane(posetok_yuv_row_fn *row, const uint8_t *y, int y_stride,
                                        const uint8_t *c, int c_stride, uint8_t *rgb,
                                        int rgb_stride, int width, int height, int range,
                                        int u_first);

/* ---- UV 2x2 downscale ---- */
/* One output row of out_w pairs from the source rows row0, row1. */
typedef void posetok_downscale_uv_row_fn(const uint8_t *row0, const uint8_t *row1, uint8_t *dst,
                                         int out_w);
POSETOK_INTERNAL posetok_downscale_uv_row_fn posetok_downscale_uv_row_ref;
POSETOK_INTERNAL void posetok_downscale_uv_plane(posetok_downscale_uv_row_fn *row,
                                                 const uint8_t *src, int src_stride, uint8_t *dst,
                                                 int dst_stride, int width, int height);

/* ---- Gaussian ---- */
/* The plane loop resolves the vertical border (source rows above and below
 * output row y; NULL = a constant row), the row function the horizontal one. */
typedef void posetok_gaussian_row_fn(const uint8_t *top, const uint8_t *mid, const uint8_t *bottom,
                                     uint8_t *dst, int width, int border, int border_value);
POSETOK_INTERNAL posetok_gaussian_row_fn posetok_gaussian_row_ref;
/* Pixels [x_begin, x_end) of a row (the NEON row's leftover columns). */
POSETOK_INTERNAL void posetok_gaussian_span_ref(const uint8_t *top, const uint8_t *mid,
                                                const uint8_t *bottom, uint8_t *dst, int width,
                                                int x_begin, int x_end, int border,
                                                int border_value);
POSETOK_INTERNAL void posetok_gaussian_plane(posetok_gaussian_row_fn *row, const uint8_t *src,
                                             int src_stride, uint8_t *dst, int dst_stride,
                                             int width, int height, int border, int border_value);
/* Vertical sum top + 2 mid + bottom of column x (x inside the row). */
static inline unsigned posetok_gaussian_column(const uint8_t *top, const uint8_t *mid,
                                               const uint8_t *bottom, int x, int border_value) {
    unsigned t = top ? top[x] : (unsigned)border_value;
    unsigned b = bottom ? bottom[x] : (unsigned)border_value;
    return t + 2u * mid[x] + b;
}

/* ---- bilinear resize ---- */
/* The source position table of one axis. */
typedef struct {
    int32_t i0, i1; /* source indices (pixels) */
    int32_t w;      /* Q7 weight of i1, 0..127 */
} posetok_lerp_tap;

/* What the row functions of one call share, built once by the plane loop in
 * one allocation: both tap tables, the row functions' own column plan (NEON)
 * and the scratch row that holds a vertically blended source row. */
typedef struct {
    int channels, row_len, out_len; /* bytes of a source / destination row */
    const posetok_lerp_tap *xt;     /* dst_width taps, pixels */
    const void *cols;               /* the column plan, or NULL */
} posetok_resize_plan;

/* libyuv's ScalePlaneBilinear split: a vertical row (blend of two source
 * rows, len bytes, weight wy in 1..127) and a horizontal row (taps of v,
 * the source row or its blend, to one destination row). cols_bytes / cols_plan
 * size and fill the column plan from the x taps (NULL: none). */
typedef struct {
    void (*vertical)(const uint8_t *r0, const uint8_t *r1, uint8_t *out, int len, int wy);
    void (*horizontal)(const uint8_t *v, uint8_t *out, const posetok_resize_plan *plan);
    size_t (*cols_bytes)(int row_len, int out_len);
    void (*cols_plan)(const posetok_lerp_tap *xt, int channels, int row_len, int out_len,
                      void *mem);
} posetok_resize_rows;

/* Fills taps[0..dst_len) as documented in the header. */
POSETOK_INTERNAL void posetok_resize_taps(int src_len, int dst_len, posetok_lerp_tap *taps);
/* The plane loop: POSETOK_OK or POSETOK_ERR_NO_MEMORY (its one allocation). */
POSETOK_INTERNAL int posetok_resize_plane(const posetok_resize_rows *rows, const uint8_t *src,
                                          int src_stride, int src_width, int src_height,
                                          uint8_t *dst, int dst_stride, int dst_width,
                                          int dst_height, int channels);
/* The C rows, also the NEON rows' fallbacks (out[k], k in [k_begin, k_end)). */
POSETOK_INTERNAL void posetok_resize_vertical_ref(const uint8_t *r0, const uint8_t *r1,
                                                  uint8_t *out, int len, int wy);
POSETOK_INTERNAL void posetok_resize_span_ref(const uint8_t *v, const posetok_lerp_tap *xt,
                                              int channels, uint8_t *out, int k_begin, int k_end);

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

/* ---- normalize ----
 * The C row and plane loop; the NEON file keeps its own row loop (see there). */
typedef struct {
    int channels;
    const float *mean, *scale;
    ptrdiff_t plane; /* floats from one channel plane of dst to the next */
} posetok_normalize_args;
/* One row of `width` pixels: src HWC, dst the row in channel plane 0. */
typedef void posetok_normalize_row_fn(const uint8_t *src, float *dst, int width,
                                      const posetok_normalize_args *a);
POSETOK_INTERNAL posetok_normalize_row_fn posetok_normalize_row_ref;
POSETOK_INTERNAL void posetok_normalize_plane(posetok_normalize_row_fn *row,
                                              const posetok_normalize_args *a, const uint8_t *src,
                                              int src_stride, int width, int height, float *dst,
                                              int dst_stride);

#endif
