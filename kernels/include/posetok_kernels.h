/*
 * posetok_kernels.h — image pre-processing kernels for the posetok SDK.
 *
 * Every kernel exists three times with the same arguments:
 *   posetok_NAME       dispatched: the NEON version on aarch64, the reference elsewhere;
 *   posetok_NAME_ref   portable scalar C, the specification;
 *   posetok_NAME_neon  arm_neon.h intrinsics (returns POSETOK_ERR_NO_NEON on other ISAs).
 *
 * Conventions shared by all kernels
 *   - Sizes are counted in pixels; u8 row strides in bytes, f32 row strides in
 *     floats. A stride may exceed the row; padding bytes are never read or written.
 *   - Only the bytes of the rows described by (pointer, stride, width, height)
 *     are touched: no kernel reads before the first or after the last pixel of a
 *     row, not even inside a vector load.
 *   - Arguments are validated before any memory is touched; the return value is
 *     POSETOK_OK (0) or one of the negative codes below. Source and destination
 *     must not overlap.
 *   - Integer kernels: the NEON output equals the reference byte for byte.
 *     normalize is bit-exact too (same IEEE operations); conv2d differs
 *     only by fused multiply-add rounding (relative error ~1e-6).
 */
#ifndef POSETOK_KERNELS_H
#define POSETOK_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define POSETOK_API __declspec(dllexport)
#else
#define POSETOK_API __attribute__((visibility("default")))
#endif

/* ---- status codes ------------------------------------------------------ */
#define POSETOK_OK               0
#define POSETOK_ERR_NULL_POINTER (-1) /* a required pointer is NULL */
#define POSETOK_ERR_BAD_SIZE     (-2) /* width, height, channel or kernel count <= 0 */
#define POSETOK_ERR_BAD_STRIDE   (-3) /* a row stride is smaller than the row it holds */
#define POSETOK_ERR_ODD_SIZE     (-4) /* a 2x2 layout needs even width and height */
/* POSETOK_ERR_BAD_OPTION: unknown border mode / range, unsupported channel
 * count, conv stride or padding out of range */
#define POSETOK_ERR_BAD_OPTION   (-5)
#define POSETOK_ERR_NO_MEMORY    (-6) /* scratch allocation failed */
#define POSETOK_ERR_NO_NEON      (-7) /* *_neon called in a library built without NEON */
#define POSETOK_ERR_TOO_LARGE    (-8) /* a size product overflows 31 bits */

/* A static English message for any status code (never NULL). */
POSETOK_API const char *posetok_kernels_strerror(int status);
/* "neon" when the dispatched entry points use NEON, else "ref". */
POSETOK_API const char *posetok_kernels_isa(void);
/* 1 when the *_neon entry points are implemented in this build, else 0. */
POSETOK_API int posetok_kernels_have_neon(void);

/* ---- 1. NV21 / NV12 -> RGB888 (BT.601) -----------------------------------
 * y: width x height luma plane. vu (NV21: V,U byte order) / uv (NV12: U,V):
 * ceil(height/2) rows of ceil(width/2) chroma pairs (2*ceil(width/2) bytes);
 * pixel (x, y) uses the pair at (x/2, y/2). Any width and height >= 1.
 * rgb: height rows of width*3 bytes, R,G,B order.
 *
 * Fixed point, Q6 (64 = 1.0), d = U-128, e = V-128:
 *   video range (Y 16..235):  Yq = ((Y*149) >> 1) - 1192     (1.1641*64*(Y-16))
 *                             R = Yq + 102e, G = Yq - 25d - 52e, B = Yq + 129d
 *                             (1.596, 0.391, 0.813, 2.018 scaled by 64, rounded)
 *   full range (JPEG):        Yq = Y*64
 *                             R = Yq + 90e,  G = Yq - 22d - 46e, B = Yq + 113d
 *                             (1.402, 0.344, 0.714, 1.772 scaled by 64, rounded)
 *   out = clamp((q + 32) >> 6, 0, 255)   (round half up, arithmetic shift)
 * Worst case vs the exact real-valued BT.601 formula: 2 LSB. */
#define POSETOK_YUV_RANGE_VIDEO 0
#define POSETOK_YUV_RANGE_FULL  1

#define POSETOK_DECLARE_3(ret, name, args) \
    POSETOK_API ret name args;             \
    POSETOK_API ret name##_ref args;       \
    POSETOK_API ret name##_neon args;

POSETOK_DECLARE_3(int, posetok_nv21_to_rgb888,
                  (const uint8_t *y, int y_stride, const uint8_t *vu, int vu_stride, uint8_t *rgb,
                   int rgb_stride, int width, int height, int range))
POSETOK_DECLARE_3(int, posetok_nv12_to_rgb888,
                  (const uint8_t *y, int y_stride, const uint8_t *uv, int uv_stride, uint8_t *rgb,
                   int rgb_stride, int width, int height, int range))

/* ---- 2. 2x2 box downscale of an interleaved UV plane ----------------------
 * src: height rows of width UV pairs (2*width bytes). width and height must be
 * even (POSETOK_ERR_ODD_SIZE otherwise). dst: height/2 rows of width/2 pairs.
 *   dst = (a + b + c + d + 2) >> 2   per channel (round half up) */
POSETOK_DECLARE_3(int, posetok_downscale_uv2x2_u8,
                  (const uint8_t *src, int src_stride, uint8_t *dst, int dst_stride, int width,
                   int height))

/* ---- 3. 3x3 Gaussian, kernel [1 2 1] x [1 2 1] / 16, one channel ---------
 *   dst = (sum_{i,j} k_i k_j src + 8) >> 4     (exact integer arithmetic)
 * Pixels outside the image come from the border mode:
 *   REFLECT_101  gfedcb|abcdefgh|gfedcba   (OpenCV's default; a 1-pixel
 *                dimension reflects onto itself)
 *   REPLICATE    aaaaaa|abcdefgh|hhhhhhh
 *   CONSTANT     vvvvvv|abcdefgh|vvvvvvv   (v = border_value)
 * REFLECT_101 equals cv2.GaussianBlur(img, (3,3), 0, borderType=BORDER_REFLECT_101)
 * bit for bit. Borders are formed in registers; the image is never copied. */
#define POSETOK_BORDER_REFLECT_101 0
#define POSETOK_BORDER_REPLICATE   1
#define POSETOK_BORDER_CONSTANT    2

POSETOK_DECLARE_3(int, posetok_gaussian3x3_u8,
                  (const uint8_t *src, int src_stride, uint8_t *dst, int dst_stride, int width,
                   int height, int border, int border_value))

/* ---- 4. Bilinear resize, u8, 1 or 3 interleaved channels ------------------
 * Pixel-centre convention: half-pixel centres (OpenCV INTER_LINEAR, torch
 * align_corners=False). Destination x maps to source
 *   sx = (x + 0.5) * src_w / dst_w - 0.5,  clamped to [0, src_w - 1]
 * computed exactly in Q16 integers:
 *   s = floor((2x+1) * src_w * 65536 / (2 dst_w)) - 32768, s = max(s, 0)
 *   i0 = s >> 16, w = ((s & 0xffff) + 256) >> 9      (Q7 weight 0..128)
 *   if w == 128 { i0 += 1; w = 0 };  if i0 >= src_w-1 { i0 = src_w-1; w = 0 }
 *   i1 = min(i0 + 1, src_w - 1)
 * and the same for y. Two rounded stages, vertical first:
 *   v(x) = (row_i0[x] * (128-wy) + row_i1[x] * wy + 64) >> 7
 *   out  = (v(i0) * (128-wx) + v(i1) * wx + 64) >> 7
 * Within 3 LSB of exact real-valued bilinear (Q7 weights and two roundings;
 * 2.5 measured on random images). Any scale up or down. */
POSETOK_DECLARE_3(int, posetok_resize_bilinear_u8,
                  (const uint8_t *src, int src_stride, int src_width, int src_height, uint8_t *dst,
                   int dst_stride, int dst_width, int dst_height, int channels))

/* ---- 5. 2-D convolution, f32, NCHW (one image) ----------------------------
 * src: in_c planes of in_height rows of in_width floats; element (c, y, x) at
 *   src[(c*in_height + y)*src_stride + x].
 * weight: [out_c][in_c][ksize][ksize] contiguous; bias: out_c floats or NULL.
 * dst: out_c planes, out_h = (in_height + 2 pad - ksize)/stride + 1 rows of
 *   out_w = (in_width + 2 pad - ksize)/stride + 1 floats, element (c, y, x) at
 *   dst[(c*out_h + y)*dst_stride + x]. Zero padding, like torch's conv2d.
 * Sum order: bias, then input channel, kernel row, kernel column.
 * stride >= 1, 0 <= pad < ksize; out_w and out_h must be >= 1. */
POSETOK_DECLARE_3(int, posetok_conv2d_f32,
                  (const float *src, int src_stride, int in_width, int in_height, int in_c,
                   const float *weight, const float *bias, int out_c, int ksize, int stride,
                   int pad, float *dst, int dst_stride))

/* ---- 6. u8 HWC -> f32 CHW normalize ----------------------------------------
 * src: height rows of width pixels of channels (1..4) interleaved bytes.
 * dst: channels planes of height rows; element (c, y, x) at
 *   dst[(c*height + y)*dst_stride + x] = ((float)src - mean[c]) * scale[c]
 * evaluated as one f32 subtraction then one f32 multiplication (no FMA), so
 * every build gives identical bits. The NEON version is fastest when every
 * mean is in [0, 255] and a multiple of 2^-16 (e.g. 0, 127.5, any f32 >= 128,
 * the ImageNet 123.675f, 116.28f, 103.53f), then when every mean is a
 * multiple of 2^-23 in [0, 255.99] (any f32 in [1, 255.99]): x - mean is
 * formed in integers; other means use a slower path with the same results. */
POSETOK_DECLARE_3(int, posetok_normalize_u8_f32_chw,
                  (const uint8_t *src, int src_stride, int width, int height, int channels,
                   const float *mean, const float *scale, float *dst, int dst_stride))

/* ---- 7. Crop + area downscale (+ BT.601) + normalize, one pass -------------
 * From a camera frame and a crop box straight to model input: no full-frame
 * intermediate (row scratch only, one allocation per call).
 *
 * Box: (box_x, box_y, box_w, box_h) in frame pixels, box_w, box_h >= 1. It may
 * extend past any edge or lie wholly outside the frame: samples outside the
 * frame read as black, Y = 16 (video range) or 0 (full range) with U = V = 128
 * for YUV, 0 in every channel for packed pixels. Output out_w x out_h.
 *
 * Area filter (per axis, separable): output i of n covers the source interval
 * [x + i*w/n, x + (i+1)*w/n). Its Q8 weights round the exact overlaps
 * cumulatively, so they sum to exactly 256: with
 *   C_i(t) = (512 * clamp((t - x)*n - i*w, 0, w) + w) / (2w)   (integer division)
 * the share of output i left of position t (round half up of 256 * overlap),
 * grid sample g (covering [s*g, s*(g+1)), s = 1 for luma and packed pixels,
 * s = 2 for chroma) has weight W_i(g) = C_i(s*(g+1)) - C_i(s*g). Then
 *   V(x) = sum_g Wy_i(g) * p(g, x)                 (u16, exact, <= 65280)
 *   out  = (sum_g Wx_o(g) * V(g) + 32768) >> 16    (u8, exact integers)
 * Within (taps/2) * 255/256 LSB per axis of the exact area mean in the worst
 * case (weight rounding); measured: 0.61 LSB on smooth images, 1.53 on
 * uniform noise (the final rounding included). A box smaller
 * than the output upsamples by area (each output averages the 1 or 2 samples
 * it overlaps: nearest where it lies inside one).
 *
 * YUV (NV21: chroma_order POSETOK_CHROMA_VU, NV12: POSETOK_CHROMA_UV; even
 * width and height; chroma plane height/2 rows of width/2 pairs): Y is
 * averaged on the luma grid, U and V on the chroma grid over the same box
 * (exactly the average of each luma pixel's co-sited chroma sample), then the
 * averages are converted per output pixel with the formula of section 1:
 *   channels 3: R, G, B = nv21_to_rgb888(Ybar, Ubar, Vbar)
 *   channels 1: clamp((Yq + 32) >> 6) — the grey of Ybar with U = V = 128
 *               (= Ybar for full range); chroma may be NULL.
 * (BT.601 is affine, so average-then-convert equals convert-then-average
 * except where per-pixel results clamp at 0/255, i.e. saturated colours; it
 * costs one conversion per output instead of one per source pixel.)
 * Packed pixels: channels 1 (grey) or 3 (RGB), each channel averaged.
 *
 * Outputs (either may be NULL, not both): dst_u8 out_h rows of out_w*channels
 * bytes, HWC, packed; dst_f32 channels planes of out_h x out_w floats, CHW,
 * packed, = posetok_normalize_u8_f32_chw of the u8 result (bit for bit).
 * mean/scale (channels floats) are needed only with dst_f32.
 * Limits: box_w, box_h <= 65536, out_w, out_h <= 16384, |box_x|, |box_y|
 * below 2^30 (POSETOK_ERR_TOO_LARGE). */
#define POSETOK_CHROMA_VU 0 /* NV21 */
#define POSETOK_CHROMA_UV 1 /* NV12 */

POSETOK_DECLARE_3(int, posetok_crop_area_yuv420sp_u8,
                  (const uint8_t *y, int y_stride, const uint8_t *chroma, int chroma_stride,
                   int width, int height, int chroma_order, int range, int box_x, int box_y,
                   int box_w, int box_h, int out_w, int out_h, int channels, const float *mean,
                   const float *scale, float *dst_f32, uint8_t *dst_u8))
POSETOK_DECLARE_3(int, posetok_crop_area_u8,
                  (const uint8_t *src, int src_stride, int width, int height, int channels,
                   int box_x, int box_y, int box_w, int box_h, int out_w, int out_h,
                   const float *mean, const float *scale, float *dst_f32, uint8_t *dst_u8))

#undef POSETOK_DECLARE_3

#ifdef __cplusplus
}
#endif
#endif /* POSETOK_KERNELS_H */
