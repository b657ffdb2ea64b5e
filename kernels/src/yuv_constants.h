/* BT.601 YUV -> RGB in Q6 fixed point: the one definition of the coefficients,
 * offsets and rounding, shared by the reference row (yuv2rgb_u8_ref.c) and the
 * NEON row (yuv2rgb_u8_neon.c). The formulas (posetok_kernels.h):
 *   d = U - 128, e = V - 128
 *   video range: Yq = ((Y * 149) >> 1) - 1192     (= 1.1641 * 64 * (Y - 16))
 *   full range:  Yq = Y << 6
 *   R = Yq + crv e,  G = Yq - cgu d - cgv e,  B = Yq + cbu d
 *   out = clamp((q + 32) >> 6, 0, 255)
 * Every intermediate fits in s16 except where the result clamps to 255 (the
 * NEON row relies on that: saturating adds). */
#ifndef POSETOK_YUV_CONSTANTS_H
#define POSETOK_YUV_CONSTANTS_H

#include <stdint.h>

#include "posetok_kernels.h"

/* fixed point: Q6, rounded half up */
#define POSETOK_YUV_SHIFT             6
#define POSETOK_YUV_ROUND             (1 << (POSETOK_YUV_SHIFT - 1))
/* chroma zero (U, V = 128 is grey) */
#define POSETOK_YUV_CHROMA_ZERO       128
/* video-range luma: Yq = ((Y * MUL) >> MUL_SHIFT) - OFFSET, OFFSET = 16 * MUL / 2 */
#define POSETOK_YUV_VIDEO_Y_MUL       149
#define POSETOK_YUV_VIDEO_Y_MUL_SHIFT 1
#define POSETOK_YUV_VIDEO_Y_OFFSET    1192
/* full-range luma: Yq = Y << FULL_Y_SHIFT (1.0 in Q6) */
#define POSETOK_YUV_FULL_Y_SHIFT      POSETOK_YUV_SHIFT

/* The chroma coefficients (x 64) of one range. */
typedef struct {
    int crv; /* V -> R: 1.596 (video), 1.402 (full) */
    int cgu; /* U -> G: 0.391, 0.344 */
    int cgv; /* V -> G: 0.813, 0.714 */
    int cbu; /* U -> B: 2.018, 1.772 */
} posetok_yuv_coeffs;

static inline posetok_yuv_coeffs posetok_yuv_coeffs_for(int range) {
    static const posetok_yuv_coeffs video = {102, 25, 52, 129};
    static const posetok_yuv_coeffs full = {90, 22, 46, 113};
    return range == POSETOK_YUV_RANGE_VIDEO ? video : full;
}

/* The scaled luma Yq of one pixel. */
static inline int posetok_yuv_luma_q6(unsigned y, int range) {
    if (range == POSETOK_YUV_RANGE_VIDEO)
        return (int)((y * POSETOK_YUV_VIDEO_Y_MUL) >> POSETOK_YUV_VIDEO_Y_MUL_SHIFT) -
               POSETOK_YUV_VIDEO_Y_OFFSET;
    return (int)(y << POSETOK_YUV_FULL_Y_SHIFT);
}

/* clamp((q + ROUND) >> SHIFT, 0, 255); >> on negatives is arithmetic. */
static inline uint8_t posetok_yuv_clamp_q6(int q) {
    const int v = (q + POSETOK_YUV_ROUND) >> POSETOK_YUV_SHIFT;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

#endif
