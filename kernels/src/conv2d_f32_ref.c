/* 2-D convolution, f32, NCHW, zero padding, scalar reference: a direct sum in
 * the order bias, input channel, kernel row, kernel column. */
#include "internal.h"

float posetok_conv2d_point_ref(const float *src, int src_stride, int in_width, int in_height,
                               int in_c, const float *weight, const float *bias, int oc, int ksize,
                               int stride, int pad, int ox, int oy) {
    float acc = bias ? bias[oc] : 0.0f;
    const float *w = weight + (ptrdiff_t)oc * in_c * ksize * ksize;
    for (int ic = 0; ic < in_c; ++ic)
        for (int ky = 0; ky < ksize; ++ky) {
            const int iy = oy * stride + ky - pad;
            const float *wrow = w + ((ptrdiff_t)ic * ksize + ky) * ksize;
            if (iy < 0 || iy >= in_height) continue;
            const float *row = src + ((ptrdiff_t)ic * in_height + iy) * src_stride;
            for (int kx = 0; kx < ksize; ++kx) {
                const int ix = ox * stride + kx - pad;
                if (ix >= 0 && ix < in_width) acc += wrow[kx] * row[ix];
            }
        }
    return acc;
}

int posetok_conv2d_f32_ref(const float *src, int src_stride, int in_width, int in_height, int in_c,
                           const float *weight, const float *bias, int out_c, int ksize, int stride,
                           int pad, float *dst, int dst_stride) {
    int status = posetok_check_conv2d(src, src_stride, in_width, in_height, in_c, weight, out_c,
                                      ksize, stride, pad, dst, dst_stride);
    if (status) return status;
    const int out_w = posetok_conv_out_len(in_width, ksize, stride, pad);
    const int out_h = posetok_conv_out_len(in_height, ksize, stride, pad);
    for (int oc = 0; oc < out_c; ++oc)
        for (int oy = 0; oy < out_h; ++oy) {
            float *out = dst + ((ptrdiff_t)oc * out_h + oy) * dst_stride;
            for (int ox = 0; ox < out_w; ++ox)
                out[ox] = posetok_conv2d_point_ref(src, src_stride, in_width, in_height, in_c,
                                                   weight, bias, oc, ksize, stride, pad, ox, oy);
        }
    return POSETOK_OK;
}
