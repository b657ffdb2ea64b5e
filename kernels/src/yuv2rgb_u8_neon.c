/* NV21 / NV12 -> RGB888, NEON, 16 pixels per iteration, s16 Q6 arithmetic.
 * Luma and chroma are loaded as u16 lanes: lane i of the luma vector holds
 * pixels 2i (low byte) and 2i+1 (high byte), exactly the two pixels that share
 * chroma pair i, which is lane i of the chroma vector. So the chroma terms
 * (with the video-range luma offset folded in) are formed once per pair and
 * added to the even and the odd luma halves without any shuffling.
 * vqaddq_s16 + vrshrq_n_s16(., 6) + clamp to [0, 255] is exactly the
 * reference's clamp((q + 32) >> 6) (saturation only where the result clamps to
 * 255 anyway); vsliq_n_u16 re-packs even and odd bytes, vst3q_u8 interleaves
 * R, G, B. Only full-width vector arithmetic (no widening, narrowing or
 * by-element multiplies). Leftover pixels (< 16) use the scalar row. */
#include <arm_neon.h>

#include "internal.h"

typedef struct {
    int16x8_t crv, cgu, cgv, cbu, y149, byte_mask, c128, max255, bias;
} yuv_consts;

static inline yuv_consts make_consts(int video) {
    yuv_consts k = {vdupq_n_s16(video ? 102 : 90), vdupq_n_s16(video ? 25 : 22),
                    vdupq_n_s16(video ? 52 : 46),  vdupq_n_s16(video ? 129 : 113),
                    vdupq_n_s16(149),              vdupq_n_s16(0xff),
                    vdupq_n_s16(128),              vdupq_n_s16(255),
                    vdupq_n_s16(video ? -1192 : 0)};
    /* keep the multipliers in vector registers (see gaussian3x3_u8_neon.c) */
    __asm__("" : "+w"(k.crv), "+w"(k.cgu), "+w"(k.cgv), "+w"(k.cbu), "+w"(k.y149));
    return k;
}

/* clamp((yq + c + 32) >> 6) for the even and odd halves, packed to 16 bytes */
static inline __attribute__((always_inline)) uint8x16_t
channel16(int16x8_t y_even, int16x8_t y_odd, int16x8_t c, const yuv_consts *k) {
    int16x8_t e = vrshrq_n_s16(vqaddq_s16(y_even, c), 6);
    int16x8_t o = vrshrq_n_s16(vqaddq_s16(y_odd, c), 6);
    e = vminq_s16(vmaxq_s16(e, vdupq_n_s16(0)), k->max255);
    o = vminq_s16(vmaxq_s16(o, vdupq_n_s16(0)), k->max255);
    return vreinterpretq_u8_s16(vsliq_n_s16(e, o, 8));
}

static inline __attribute__((always_inline)) void
yuv_row_neon(const uint8_t *y, const uint8_t *chroma, uint8_t *rgb, int width, int u_first,
             int video) {
    const yuv_consts k = make_consts(video);
    int x = 0;
    for (; x + 16 <= width; x += 16) {
        const int16x8_t luma = vreinterpretq_s16_u8(vld1q_u8(y + x));
        const int16x8_t pairs = vreinterpretq_s16_u8(vld1q_u8(chroma + x));
        const int16x8_t first = vsubq_s16(vandq_s16(pairs, k.byte_mask), k.c128);
        const int16x8_t second =
            vsubq_s16(vreinterpretq_s16_u16(vshrq_n_u16(vreinterpretq_u16_s16(pairs), 8)), k.c128);
        const int16x8_t d = u_first ? first : second, e = u_first ? second : first;
        int16x8_t y_even = vandq_s16(luma, k.byte_mask);
        int16x8_t y_odd = vreinterpretq_s16_u16(vshrq_n_u16(vreinterpretq_u16_s16(luma), 8));
        if (video) { /* (Y * 149) >> 1 as u16 (<= 18997); the -1192 is in k.bias */
            y_even = vreinterpretq_s16_u16(vshrq_n_u16(vreinterpretq_u16_s16(vmulq_s16(y_even, k.y149)), 1));
            y_odd = vreinterpretq_s16_u16(vshrq_n_u16(vreinterpretq_u16_s16(vmulq_s16(y_odd, k.y149)), 1));
        } else {
            y_even = vshlq_n_s16(y_even, 6);
            y_odd = vshlq_n_s16(y_odd, 6);
        }
        const int16x8_t cr = vmlaq_s16(k.bias, e, k.crv);
        const int16x8_t cg = vmlsq_s16(vmlsq_s16(k.bias, d, k.cgu), e, k.cgv);
        const int16x8_t cb = vmlaq_s16(k.bias, d, k.cbu);
        uint8x16x3_t out;
        out.val[0] = channel16(y_even, y_odd, cr, &k);
        out.val[1] = channel16(y_even, y_odd, cg, &k);
        out.val[2] = channel16(y_even, y_odd, cb, &k);
        vst3q_u8(rgb + 3 * x, out);
    }
    if (x < width) posetok_yuv_row_ref(y, chroma, rgb, x, width, u_first, video ? 0 : 1);
}

static void yuv_to_rgb_neon(const uint8_t *y, int y_stride, const uint8_t *c, int c_stride,
                            uint8_t *rgb, int rgb_stride, int width, int height, int range,
                            int u_first) {
    for (int row = 0; row < height; ++row) {
        const uint8_t *yr = y + (ptrdiff_t)row * y_stride;
        const uint8_t *cr = c + (ptrdiff_t)(row / 2) * c_stride;
        uint8_t *out = rgb + (ptrdiff_t)row * rgb_stride;
        const int video = range == POSETOK_YUV_RANGE_VIDEO;
        if (u_first && video) yuv_row_neon(yr, cr, out, width, 1, 1);
        else if (u_first) yuv_row_neon(yr, cr, out, width, 1, 0);
        else if (video) yuv_row_neon(yr, cr, out, width, 0, 1);
        else yuv_row_neon(yr, cr, out, width, 0, 0);
    }
}

int posetok_nv21_to_rgb888_neon(const uint8_t *y, int y_stride, const uint8_t *vu,
                                int vu_stride, uint8_t *rgb, int rgb_stride, int width,
                                int height, int range) {
    int status = posetok_check_yuv(y, y_stride, vu, vu_stride, rgb, rgb_stride, width, height,
                                   range);
    if (status) return status;
    yuv_to_rgb_neon(y, y_stride, vu, vu_stride, rgb, rgb_stride, width, height, range, 0);
    return POSETOK_OK;
}

int posetok_nv12_to_rgb888_neon(const uint8_t *y, int y_stride, const uint8_t *uv,
                                int uv_stride, uint8_t *rgb, int rgb_stride, int width,
                                int height, int range) {
    int status = posetok_check_yuv(y, y_stride, uv, uv_stride, rgb, rgb_stride, width, height,
                                   range);
    if (status) return status;
    yuv_to_rgb_neon(y, y_stride, uv, uv_stride, rgb, rgb_stride, width, height, range, 1);
    return POSETOK_OK;
}
