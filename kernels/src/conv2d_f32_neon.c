/* 2-D convolution, f32, NCHW, NEON. Output channels are processed four at a
 * time against weights repacked once per call to [oc/4][ic][ky][kx][4], so one
 * vld1q gives the four weights of a tap and each input vector feeds four
 * accumulators with vfmaq_laneq_f32. The interior (all kernel columns inside
 * the row) runs 8 then 4 output pixels at a time; the border columns and the
 * few interior leftovers use the scalar point formula. Summation order is the
 * reference's (bias, ic, ky, kx); only FMA rounding differs. */
#include <arm_neon.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static inline __attribute__((always_inline)) float32x4_t load4(const float *p, int stride,
                                                               int unit) {
    if (unit) return vld1q_f32(p);
    float32x4_t v = vld1q_dup_f32(p);
    v = vld1q_lane_f32(p + stride, v, 1);
    v = vld1q_lane_f32(p + 2 * stride, v, 2);
    return vld1q_lane_f32(p + 3 * stride, v, 3);
}

#define FMA4(acc, x, w)                            \
    do {                                           \
        acc[0] = vfmaq_laneq_f32(acc[0], x, w, 0); \
        acc[1] = vfmaq_laneq_f32(acc[1], x, w, 1); \
        acc[2] = vfmaq_laneq_f32(acc[2], x, w, 2); \
        acc[3] = vfmaq_laneq_f32(acc[3], x, w, 3); \
    } while (0)

/* `pixels` output pixels (4 or 8) of four output channels at ox. */
static inline __attribute__((always_inline)) void
conv_block(const float *src, int src_stride, int in_height, int in_c, const float *wp,
           float32x4_t bias4, int ksize, int stride, int pad, int ox, int oy, int ky_lo, int ky_hi,
           float *const *out, int nvalid, int pixels, int unit) {
    float32x4_t a[4], b[4];
    a[0] = b[0] = vdupq_laneq_f32(bias4, 0);
    a[1] = b[1] = vdupq_laneq_f32(bias4, 1);
    a[2] = b[2] = vdupq_laneq_f32(bias4, 2);
    a[3] = b[3] = vdupq_laneq_f32(bias4, 3);
    const int x0 = ox * stride - pad;
    for (int ic = 0; ic < in_c; ++ic)
        for (int ky = ky_lo; ky < ky_hi; ++ky) {
            const float *row =
                src + ((ptrdiff_t)ic * in_height + oy * stride + ky - pad) * src_stride + x0;
            const float *w = wp + (((ptrdiff_t)ic * ksize + ky) * ksize) * 4;
            for (int kx = 0; kx < ksize; ++kx, w += 4) {
                const float32x4_t w4 = vld1q_f32(w);
                const float32x4_t xa = load4(row + kx, stride, unit);
                FMA4(a, xa, w4);
                if (pixels == 8) {
                    const float32x4_t xb = load4(row + kx + 4 * stride, stride, unit);
                    FMA4(b, xb, w4);
                }
            }
        }
    for (int j = 0; j < nvalid; ++j) {
        vst1q_f32(out[j] + ox, a[j]);
        if (pixels == 8) vst1q_f32(out[j] + ox + 4, b[j]);
    }
}

static inline __attribute__((always_inline)) void
conv_rows(const float *src, int src_stride, int in_width, int in_height, int in_c,
          const float *weight, const float *bias, int out_c, int ksize, int stride, int pad,
          float *dst, int dst_stride, const float *packed, int unit) {
    const int out_w = posetok_conv_out_len(in_width, ksize, stride, pad);
    const int out_h = posetok_conv_out_len(in_height, ksize, stride, pad);
    /* interior columns: every kernel column inside the row */
    const int ox_lo = (pad + stride - 1) / stride;
    int ox_end = in_width - ksize + pad >= 0 ? (in_width - ksize + pad) / stride + 1 : 0;
    if (ox_end > out_w) ox_end = out_w;
    const ptrdiff_t taps = (ptrdiff_t)in_c * ksize * ksize;
    for (int ob = 0; ob * 4 < out_c; ++ob) {
        const int nvalid = out_c - ob * 4 < 4 ? out_c - ob * 4 : 4;
        const float *wp = packed + ob * taps * 4;
        float bias_lanes[4] = {0, 0, 0, 0};
        for (int j = 0; j < nvalid && bias; ++j) bias_lanes[j] = bias[ob * 4 + j];
        const float32x4_t bias4 = vld1q_f32(bias_lanes);
        for (int oy = 0; oy < out_h; ++oy) {
            int ky_lo = pad - oy * stride, ky_hi = in_height + pad - oy * stride;
            ky_lo = ky_lo < 0 ? 0 : ky_lo;
            ky_hi = ky_hi > ksize ? ksize : ky_hi;
            float *out[4];
            for (int j = 0; j < nvalid; ++j)
                out[j] = dst + ((ptrdiff_t)(ob * 4 + j) * out_h + oy) * dst_stride;
            int ox = 0;
            for (; ox < out_w; ++ox) {
                if (ox >= ox_lo && ox + 4 <= ox_end) break;
                for (int j = 0; j < nvalid; ++j)
                    out[j][ox] =
                        posetok_conv2d_point_ref(src, src_stride, in_width, in_height, in_c, weight,
                                                 bias, ob * 4 + j, ksize, stride, pad, ox, oy);
            }
            for (; ox + 8 <= ox_end; ox += 8)
                conv_block(src, src_stride, in_height, in_c, wp, bias4, ksize, stride, pad, ox, oy,
                           ky_lo, ky_hi, out, nvalid, 8, unit);
            for (; ox + 4 <= ox_end; ox += 4)
                conv_block(src, src_stride, in_height, in_c, wp, bias4, ksize, stride, pad, ox, oy,
                           ky_lo, ky_hi, out, nvalid, 4, unit);
            for (; ox < out_w; ++ox)
                for (int j = 0; j < nvalid; ++j)
                    out[j][ox] =
                        posetok_conv2d_point_ref(src, src_stride, in_width, in_height, in_c, weight,
                                                 bias, ob * 4 + j, ksize, stride, pad, ox, oy);
        }
    }
}

int posetok_conv2d_f32_neon(const float *src, int src_stride, int in_width, int in_height, int in_c,
                            const float *weight, const float *bias, int out_c, int ksize,
                            int stride, int pad, float *dst, int dst_stride) {
    int status = posetok_check_conv2d(src, src_stride, in_width, in_height, in_c, weight, out_c,
                                      ksize, stride, pad, dst, dst_stride);
    if (status) return status;
    const ptrdiff_t taps = (ptrdiff_t)in_c * ksize * ksize;
    const int oblocks = (out_c + 3) / 4;
    float *packed = malloc(sizeof(float) * (size_t)(oblocks * taps * 4));
    if (!packed) return POSETOK_ERR_NO_MEMORY;
    memset(packed, 0, sizeof(float) * (size_t)(oblocks * taps * 4));
    for (int oc = 0; oc < out_c; ++oc)
        for (ptrdiff_t t = 0; t < taps; ++t)
            packed[((oc / 4) * taps + t) * 4 + oc % 4] = weight[oc * taps + t];
    if (stride == 1)
        conv_rows(src, src_stride, in_width, in_height, in_c, weight, bias, out_c, ksize, 1, pad,
                  dst, dst_stride, packed, 1);
    else
        conv_rows(src, src_stride, in_width, in_height, in_c, weight, bias, out_c, ksize, stride,
                  pad, dst, dst_stride, packed, 0);
    free(packed);
    return POSETOK_OK;
}
