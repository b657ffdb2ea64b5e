/* Crop + area downscale (+ BT.601) + normalize, NEON rows for the reference's
 * plane loop (crop_area_u8_ref.c); every row computes the same exact integers
 * as its C row.
 *  - vertical: 64 columns per strip with the u16 sums in eight registers while
 *    the strip walks down the box's rows: one vld1q_u8_x4 and eight
 *    vmlal_u8 / vmlal_high_u8 per row; the remainder in 16-column blocks, the
 *    last block overlapping the previous one; rows under 16 columns and
 *    single-row boxes (weight 256) use the C row.
 *  - horizontal, one channel: per output a dot product over all taps (a
 *    multiple of 4, zero weights after the output's own; unrolled for the
 *    common tap counts) of 8 sums and 8 Q8 weights per step (vmlal_u16 +
 *    vmlal_high_u16; 4 for the last), two outputs finished together with
 *    vpaddq_u32 + vrshr_n_u32(., 16); two
 *    interleaved channels (U,V): 4 pairs per step against the pair weights
 *    (each weight twice, precomputed), the halves added, two outputs (4
 *    bytes) narrowed and stored together; three channels (packed RGB) and
 *    an odd last output use the C row.
 *  - YUV: 8 outputs per step in s16 Q6, vqaddq/vqsubq (saturating only where
 *    the result clamps to 255), vqrshrun_n_s16(., 6) = clamp((q + 32) >> 6),
 *    vst3_u8; leftovers use the C row.
 *  - normalize: the NEON entry point, once over the u8 result. */
#include <arm_neon.h>
#include <string.h>

#include "crop_area.h"
#include "yuv_constants.h"

static inline __attribute__((always_inline)) void mla16(uint16x8_t *lo, uint16x8_t *hi,
                                                        uint8x16_t p, uint8x16_t wv) {
    *lo = vmlal_u8(*lo, vget_low_u8(p), vget_low_u8(wv));
    *hi = vmlal_high_u8(*hi, p, wv);
}

static void vertical_neon(const uint8_t *src, ptrdiff_t stride, const uint16_t *w, int n,
                          unsigned base, uint16_t *acc, int len) {
    if (len < 16 || (n == 1 && w[0] > 255)) { /* weight 256: a single-row box */
        posetok_area_vertical_ref(src, stride, w, n, base, acc, len);
        return;
    }
    const uint16x8_t b = vdupq_n_u16((uint16_t)base);
    int k = 0;
    for (; k + 64 <= len; k += 64) {
        uint16x8_t a[8] = {b, b, b, b, b, b, b, b};
        const uint8_t *s = src + k;
        for (int j = 0; j < n; ++j, s += stride) {
            const uint8x16x4_t p = vld1q_u8_x4(s);
            const uint8x16_t wv = vdupq_n_u8((uint8_t)w[j]);
            mla16(&a[0], &a[1], p.val[0], wv);
            mla16(&a[2], &a[3], p.val[1], wv);
            mla16(&a[4], &a[5], p.val[2], wv);
            mla16(&a[6], &a[7], p.val[3], wv);
        }
        const uint16x8x4_t lo = {{a[0], a[1], a[2], a[3]}}, hi = {{a[4], a[5], a[6], a[7]}};
        vst1q_u16_x4(acc + k, lo);
        vst1q_u16_x4(acc + k + 32, hi);
    }
    while (k < len) {
        if (k + 16 > len) k = len - 16; /* overlap: the same sums again */
        uint16x8_t lo = b, hi = b;
        const uint8_t *s = src + k;
        for (int j = 0; j < n; ++j, s += stride)
            mla16(&lo, &hi, vld1q_u8(s), vdupq_n_u8((uint8_t)w[j]));
        vst1q_u16(acc + k, lo);
        vst1q_u16(acc + k + 8, hi);
        k += 16;
    }
}

/* sum_t w[t] * a[t] over all taps (zero weights after n; the sums are
 * readable up to count + taps): 8 lanes a step, then 4 when taps % 8 == 4.
 * Called with constant taps where it matters, so the loop unrolls. */
static inline __attribute__((always_inline)) uint32x4_t dot1(const uint16_t *a, const uint16_t *w,
                                                             int taps) {
    uint32x4_t sum = vdupq_n_u32(0);
    int t = 0;
    for (; t + 8 <= taps; t += 8) {
        const uint16x8_t av = vld1q_u16(a + t), wv = vld1q_u16(w + t);
        sum = vmlal_u16(sum, vget_low_u16(av), vget_low_u16(wv));
        sum = vmlal_high_u16(sum, av, wv);
    }
    if (t < taps) sum = vmlal_u16(sum, vld1_u16(a + t), vld1_u16(w + t));
    return sum;
}

/* Two outputs of one channel: the rounded sums in bytes 0 and 4. */
static inline __attribute__((always_inline)) void
horizontal1(const uint16_t *acc, const posetok_area_axis *ax, uint8_t *out, int taps) {
    const int32_t *first = ax->first;
    const uint16_t *w = ax->w;
    for (int o = 0; o + 2 <= ax->n_out; o += 2, w += 2 * taps) {
        const uint32x4_t p =
            vpaddq_u32(dot1(acc + first[o], w, taps), dot1(acc + first[o + 1], w + taps, taps));
        const uint8x8_t r =
            vreinterpret_u8_u32(vrshr_n_u32(vpadd_u32(vget_low_u32(p), vget_high_u32(p)), 16));
        out[o] = vget_lane_u8(r, 0);
        out[o + 1] = vget_lane_u8(r, 4);
    }
}

/* U,V pairs against the pair weights: (U, V) sums. */
static inline __attribute__((always_inline)) uint32x2_t dot2(const uint16_t *a, const uint16_t *w2,
                                                             int taps) {
    const uint32x4_t sum = dot1(a, w2, 2 * taps);
    return vadd_u32(vget_low_u32(sum), vget_high_u32(sum));
}

/* Two outputs of U,V pairs: 4 bytes. */
static inline __attribute__((always_inline)) void
horizontal2(const uint16_t *acc, const posetok_area_axis *ax, uint8_t *out, int taps) {
    const int32_t *first = ax->first;
    const uint16_t *w2 = ax->w2;
    for (int o = 0; o + 2 <= ax->n_out; o += 2, w2 += 4 * taps) {
        const uint32x2_t s0 = dot2(acc + 2 * (ptrdiff_t)first[o], w2, taps);
        const uint32x2_t s1 = dot2(acc + 2 * (ptrdiff_t)first[o + 1], w2 + 2 * taps, taps);
        const uint32x4_t r = vrshrq_n_u32(vcombine_u32(s0, s1), 16);
        const uint8x8_t b = vmovn_u16(vcombine_u16(vmovn_u32(r), vdup_n_u16(0)));
        const uint32_t four = vget_lane_u32(vreinterpret_u32_u8(b), 0);
        memcpy(out + 2 * o, &four, 4);
    }
}

static void horizontal_neon(const uint16_t *acc, const posetok_area_axis *ax, int channels,
                            uint8_t *out) {
    const int taps = ax->taps;
    if (channels == 1) {
        switch (taps) {
        case 4: horizontal1(acc, ax, out, 4); break;
        case 8: horizontal1(acc, ax, out, 8); break;
        case 12: horizontal1(acc, ax, out, 12); break;
        case 16: horizontal1(acc, ax, out, 16); break;
        case 20: horizontal1(acc, ax, out, 20); break;
        default: horizontal1(acc, ax, out, taps);
        }
    } else if (channels == 2) {
        switch (taps) {
        case 4: horizontal2(acc, ax, out, 4); break;
        case 8: horizontal2(acc, ax, out, 8); break;
        case 12: horizontal2(acc, ax, out, 12); break;
        default: horizontal2(acc, ax, out, taps);
        }
    } else {
        posetok_area_horizontal_ref(acc, ax, channels, out);
        return;
    }
    if (ax->n_out % 2)
        posetok_area_horizontal_span_ref(acc, ax, channels, out, ax->n_out - 1, ax->n_out);
}

static void yuv_neon(const uint8_t *y, const uint8_t *chroma, uint8_t *out, int width, int channels,
                     int u_first, int range) {
    const posetok_yuv_coeffs c = posetok_yuv_coeffs_for(range);
    const int video = range == POSETOK_YUV_RANGE_VIDEO;
    const int16x8_t zero = vdupq_n_s16(POSETOK_YUV_CHROMA_ZERO);
    int x = 0;
    for (; x + 8 <= width; x += 8) {
        const uint8x8_t yv = vld1_u8(y + x);
        int16x8_t yq;
        if (video)
            yq = vsubq_s16(
                vreinterpretq_s16_u16(vshrq_n_u16(vmull_u8(yv, vdup_n_u8(POSETOK_YUV_VIDEO_Y_MUL)),
                                                  POSETOK_YUV_VIDEO_Y_MUL_SHIFT)),
                vdupq_n_s16(POSETOK_YUV_VIDEO_Y_OFFSET));
        else
            yq = vreinterpretq_s16_u16(vshll_n_u8(yv, POSETOK_YUV_FULL_Y_SHIFT));
        if (channels == 1) {
            vst1_u8(out + x, vqrshrun_n_s16(yq, POSETOK_YUV_SHIFT));
            continue;
        }
        const uint8x8x2_t pair = vld2_u8(chroma + 2 * x);
        const int16x8_t d =
            vsubq_s16(vreinterpretq_s16_u16(vmovl_u8(u_first ? pair.val[0] : pair.val[1])), zero);
        const int16x8_t e =
            vsubq_s16(vreinterpretq_s16_u16(vmovl_u8(u_first ? pair.val[1] : pair.val[0])), zero);
        const int16x8_t r = vqaddq_s16(yq, vmulq_n_s16(e, (int16_t)c.crv));
        const int16x8_t g =
            vqsubq_s16(yq, vmlaq_n_s16(vmulq_n_s16(d, (int16_t)c.cgu), e, (int16_t)c.cgv));
        const int16x8_t b = vqaddq_s16(yq, vmulq_n_s16(d, (int16_t)c.cbu));
        const uint8x8x3_t rgb = {{vqrshrun_n_s16(r, POSETOK_YUV_SHIFT),
                                  vqrshrun_n_s16(g, POSETOK_YUV_SHIFT),
                                  vqrshrun_n_s16(b, POSETOK_YUV_SHIFT)}};
        vst3_u8(out + 3 * x, rgb);
    }
    if (x < width)
        posetok_area_yuv_ref(y + x, chroma + 2 * x, out + channels * x, width - x, channels,
                             u_first, range);
}

static const posetok_area_rows ROWS_NEON = {vertical_neon, horizontal_neon, yuv_neon,
                                            posetok_normalize_u8_f32_chw_neon};

int posetok_crop_area_yuv420sp_u8_neon(const uint8_t *y, int y_stride, const uint8_t *chroma,
                                       int chroma_stride, int width, int height, int chroma_order,
                                       int range, int box_x, int box_y, int box_w, int box_h,
                                       int out_w, int out_h, int channels, const float *mean,
                                       const float *scale, float *dst_f32, uint8_t *dst_u8) {
    const posetok_area_job j = posetok_area_yuv_job(
        y, y_stride, chroma, chroma_stride, width, height, chroma_order, range, box_x, box_y, box_w,
        box_h, out_w, out_h, channels, mean, scale, dst_f32, dst_u8);
    const int status = posetok_check_crop_yuv(&j);
    return status ? status : posetok_area_plane(&ROWS_NEON, &j);
}

int posetok_crop_area_u8_neon(const uint8_t *src, int src_stride, int width, int height,
                              int channels, int box_x, int box_y, int box_w, int box_h, int out_w,
                              int out_h, const float *mean, const float *scale, float *dst_f32,
                              uint8_t *dst_u8) {
    const posetok_area_job j =
        posetok_area_packed_job(src, src_stride, width, height, channels, box_x, box_y, box_w,
                                box_h, out_w, out_h, mean, scale, dst_f32, dst_u8);
    const int status = posetok_check_crop_packed(&j);
    return status ? status : posetok_area_plane(&ROWS_NEON, &j);
}
