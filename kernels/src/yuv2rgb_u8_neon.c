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
 * by-element multiplies). Leftover pixels (< 16) use the C row; the plane loop
 * is the reference's (posetok_yuv_plane), the constants yuv_constants.h. */
#include <arm_neon.h>

#include "internal.h"
#include "yuv_constants.h"

/* vrshrq_n_s16(q, SHIFT) adds 1 << (SHIFT - 1) before shifting */
_Static_assert(POSETOK_YUV_ROUND == 1 << (POSETOK_YUV_SHIFT - 1), "Q6 rounding is half up");

typedef struct {
    int16x8_t crv, cgu, cgv, cbu, y_mul, byte_mask, chroma_zero, max255, bias;
} yuv_consts;

static inline yuv_consts make_consts(int video) {
    const posetok_yuv_coeffs c =
        posetok_yuv_coeffs_for(video ? POSETOK_YUV_RANGE_VIDEO : POSETOK_YUV_RANGE_FULL);
    yuv_consts k = {vdupq_n_s16((int16_t)c.crv),
                    vdupq_n_s16((int16_t)c.cgu),
                    vdupq_n_s16((int16_t)c.cgv),
                    vdupq_n_s16((int16_t)c.cbu),
                    vdupq_n_s16(POSETOK_YUV_VIDEO_Y_MUL),
                    vdupq_n_s16(0xff),
                    vdupq_n_s16(POSETOK_YUV_CHROMA_ZERO),
                    vdupq_n_s16(255),
                    vdupq_n_s16(video ? -POSETOK_YUV_VIDEO_Y_OFFSET : 0)};
    /* keep the multipliers in vector registers (see gaussian3x3_u8_neon.c) */
    __asm__("" : "+w"(k.crv), "+w"(k.cgu), "+w"(k.cgv), "+w"(k.cbu), "+w"(k.y_mul));
    return k;
}

/* clamp((yq + c + ROUND) >> SHIFT) for the even and odd halves, packed to 16 bytes */
static inline __attribute__((always_inline)) uint8x16_t
channel16(int16x8_t y_even, int16x8_t y_odd, int16x8_t c, const yuv_consts *k) {
    int16x8_t e = vrshrq_n_s16(vqaddq_s16(y_even, c), POSETOK_YUV_SHIFT);
    int16x8_t o = vrshrq_n_s16(vqaddq_s16(y_odd, c), POSETOK_YUV_SHIFT);
    e = vminq_s16(vmaxq_s16(e, vdupq_n_s16(0)), k->max255);
    o = vminq_s16(vmaxq_s16(o, vdupq_n_s16(0)), k->max255);
    return vreinterpretq_u8_s16(vsliq_n_s16(e, o, 8));
}

/* The luma scaled to Q6: video (Y * MUL) >> MUL_SHIFT as u16 (<= 18997; the
 * offset is in k->bias), full Y << FULL_Y_SHIFT. */
static inline __attribute__((always_inline)) int16x8_t luma_q6(int16x8_t y, const yuv_consts *k,
                                                               int video) {
    if (!video) return vshlq_n_s16(y, POSETOK_YUV_FULL_Y_SHIFT);
    const uint16x8_t prod = vreinterpretq_u16_s16(vmulq_s16(y, k->y_mul));
    return vreinterpretq_s16_u16(vshrq_n_u16(prod, POSETOK_YUV_VIDEO_Y_MUL_SHIFT));
}

/* The first width & ~15 pixels of a row; returns how many it did. */
static inline __attribute__((always_inline)) int yuv_blocks16(const uint8_t *y,
                                                              const uint8_t *chroma, uint8_t *rgb,
                                                              int width, int u_first, int video) {
    const yuv_consts k = make_consts(video);
    int x = 0;
    for (; x + 16 <= width; x += 16) {
        const int16x8_t luma = vreinterpretq_s16_u8(vld1q_u8(y + x));
        const int16x8_t pairs = vreinterpretq_s16_u8(vld1q_u8(chroma + x));
        const uint16x8_t high = vshrq_n_u16(vreinterpretq_u16_s16(pairs), 8);
        const int16x8_t first = vsubq_s16(vandq_s16(pairs, k.byte_mask), k.chroma_zero);
        const int16x8_t second = vsubq_s16(vreinterpretq_s16_u16(high), k.chroma_zero);
        const int16x8_t d = u_first ? first : second, e = u_first ? second : first;
        const int16x8_t y_even = luma_q6(vandq_s16(luma, k.byte_mask), &k, video);
        const int16x8_t y_odd =
            luma_q6(vreinterpretq_s16_u16(vshrq_n_u16(vreinterpretq_u16_s16(luma), 8)), &k, video);
        const int16x8_t cr = vmlaq_s16(k.bias, e, k.crv);
        const int16x8_t cg = vmlsq_s16(vmlsq_s16(k.bias, d, k.cgu), e, k.cgv);
        const int16x8_t cb = vmlaq_s16(k.bias, d, k.cbu);
        uint8x16x3_t out;
        out.val[0] = channel16(y_even, y_odd, cr, &k);
        out.val[1] = channel16(y_even, y_odd, cg, &k);
        out.val[2] = channel16(y_even, y_odd, cb, &k);
        vst3q_u8(rgb + 3 * x, out);
    }
    return x;
}

/* The NEON row (posetok_yuv_row_fn): 16-pixel blocks specialised per layout
 * and range, the leftover (< 16 pixels, an even start) with the C row. */
static void yuv_row_neon(const uint8_t *y, const uint8_t *chroma, uint8_t *rgb, int width,
                         int u_first, int range) {
    const int video = range == POSETOK_YUV_RANGE_VIDEO;
    int x;
    if (u_first && video)
        x = yuv_blocks16(y, chroma, rgb, width, 1, 1);
    else if (u_first)
        x = yuv_blocks16(y, chroma, rgb, width, 1, 0);
    else if (video)
        x = yuv_blocks16(y, chroma, rgb, width, 0, 1);
    else
        x = yuv_blocks16(y, chroma, rgb, width, 0, 0);
    if (x < width) posetok_yuv_row_ref(y + x, chroma + x, rgb + 3 * x, width - x, u_first, range);
}

int posetok_nv21_to_rgb888_neon(const uint8_t *y, int y_stride, const uint8_t *vu, int vu_stride,
                                uint8_t *rgb, int rgb_stride, int width, int height, int range) {
    int status =
        posetok_check_yuv(y, y_stride, vu, vu_stride, rgb, rgb_stride, width, height, range);
    if (status) return status;
    posetok_yuv_plane(yuv_row_neon, y, y_stride, vu, vu_stride, rgb, rgb_stride, width, height,
                      range, 0);
    return POSETOK_OK;
}

int posetok_nv12_to_rgb888_neon(const uint8_t *y, int y_stride, const uint8_t *uv, int uv_stride,
                                uint8_t *rgb, int rgb_stride, int width, int height, int range) {
    int status =
        posetok_check_yuv(y, y_stride, uv, uv_stride, rgb, rgb_stride, width, height, range);
    if (status) return status;
    posetok_yuv_plane(yuv_row_neon, y, y_stride, uv, uv_stride, rgb, rgb_stride, width, height,
                      range, 1);
    return POSETOK_OK;
}
