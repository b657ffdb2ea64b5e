/* One-pass crop + area downscale (+ YUV -> RGB) + normalize: the types shared
 * by the reference file (tap tables, C rows, the plane loop, argument checks)
 * and the NEON file (its rows). Formulas: posetok_kernels.h, section 7. */
#ifndef POSETOK_CROP_AREA_H
#define POSETOK_CROP_AREA_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Q8 area weights: the taps of one output sum to exactly 256 per axis. */
#define POSETOK_AREA_ONE 256

/* The taps of one axis. Grid index g covers luma units [g*s, (g+1)*s), s = 1
 * (luma, packed pixels) or 2 (chroma); the crop touches grid samples
 * [g0, g0 + count). Output i uses samples g0 + first[i] + t, t < n[i], with
 * weights w[i*taps + t] (zero for t >= n[i]; taps is a multiple of 4). */
typedef struct {
    int n_out, g0, count, taps;
    int32_t *first, *n;
    uint16_t *w;
    uint16_t *w2; /* chroma x axis: each weight twice (U, V lanes), else NULL */
} posetok_area_axis;

/* acc[k] = base + sum_{j<n} w[j] * src[j*stride + k] for k < len (u16, exact:
 * the weights of a call sum to <= 256, base = fill * the rest). */
typedef void posetok_area_vertical_fn(const uint8_t *src, ptrdiff_t stride, const uint16_t *w,
                                      int n, unsigned base, uint16_t *acc, int len);
/* out[o*channels + c] = (sum_t w[o][t] * acc[(first[o] + t)*channels + c] + 32768) >> 16
 * for every output o of the axis; acc is readable up to (count + taps) * channels. */
typedef void posetok_area_horizontal_fn(const uint16_t *acc, const posetok_area_axis *ax,
                                        int channels, uint8_t *out);
/* Per-pixel BT.601 of averaged samples: y[x], chroma pair x (u_first: U,V
 * order) -> out (channels 3: R,G,B; 1: the grey of Y with neutral chroma). */
typedef void posetok_area_yuv_fn(const uint8_t *y, const uint8_t *chroma, uint8_t *out, int width,
                                 int channels, int u_first, int range);
typedef int posetok_area_normalize_fn(const uint8_t *src, int src_stride, int width, int height,
                                      int channels, const float *mean, const float *scale,
                                      float *dst, int dst_stride);

typedef struct {
    posetok_area_vertical_fn *vertical;
    posetok_area_horizontal_fn *horizontal;
    posetok_area_yuv_fn *yuv;
    posetok_area_normalize_fn *normalize;
} posetok_area_rows;

/* What one call converts (both entry points fill it after their checks). */
typedef struct {
    const uint8_t *plane[2]; /* luma (or packed pixels), chroma or NULL */
    int stride[2], width, height;
    int channels; /* packed: bytes per pixel; yuv: 1 or 3 output channels */
    int yuv, u_first, range;
    int box_x, box_y, box_w, box_h, out_w, out_h;
    const float *mean, *scale;
    float *dst_f32;
    uint8_t *dst_u8;
} posetok_area_job;

POSETOK_INTERNAL posetok_area_vertical_fn posetok_area_vertical_ref;
POSETOK_INTERNAL posetok_area_horizontal_fn posetok_area_horizontal_ref;
POSETOK_INTERNAL posetok_area_yuv_fn posetok_area_yuv_ref;
/* Outputs [o_begin, o_end) of the horizontal row (the NEON row's fallback). */
POSETOK_INTERNAL void posetok_area_horizontal_span_ref(const uint16_t *acc,
                                                       const posetok_area_axis *ax, int channels,
                                                       uint8_t *out, int o_begin, int o_end);
/* The plane loop: POSETOK_OK or POSETOK_ERR_NO_MEMORY (its one allocation). */
POSETOK_INTERNAL int posetok_area_plane(const posetok_area_rows *rows, const posetok_area_job *job);
POSETOK_INTERNAL posetok_area_job posetok_area_yuv_job(
    const uint8_t *y, int y_stride, const uint8_t *chroma, int chroma_stride, int width, int height,
    int chroma_order, int range, int box_x, int box_y, int box_w, int box_h, int out_w, int out_h,
    int channels, const float *mean, const float *scale, float *dst_f32, uint8_t *dst_u8);
POSETOK_INTERNAL posetok_area_job posetok_area_packed_job(const uint8_t *src, int src_stride,
                                                          int width, int height, int channels,
                                                          int box_x, int box_y, int box_w,
                                                          int box_h, int out_w, int out_h,
                                                          const float *mean, const float *scale,
                                                          float *dst_f32, uint8_t *dst_u8);
POSETOK_INTERNAL int posetok_check_crop_yuv(const posetok_area_job *job);
POSETOK_INTERNAL int posetok_check_crop_packed(const posetok_area_job *job);

#endif
