/* 3x3 Gaussian, NEON, 16 pixels per block, two blocks per loop iteration.
 *
 * Rows are loaded as u16 lanes, so lane i holds pixel 2i (low byte, "even")
 * and pixel 2i+1 (high byte, "odd"). No widening or narrowing instructions:
 *   odd vertical sums   VO = (t >> 8) + (b >> 8) + 2 (m >> 8)
 *   even vertical sums  VE = (t + b + 2m) - (VO << 8)   (exact modulo 2^16:
 *                        the whole-word sum is VE + 256 VO, and VE <= 1020)
 *   even outputs        VO[i-1] + 2 VE[i] + VO[i]      (vextq_u16 for VO[i-1])
 *   odd outputs         VE[i] + 2 VO[i] + VE[i+1]      (vextq_u16 for VE[i+1])
 *   (acc + 8) >> 4       vrshrq_n_u16, then vsliq_n_u16 puts the odd result in
 *                        the high byte: the 16 output bytes in pixel order.
 * Each vertical sum is computed once; the neighbour lanes come from the
 * previous / next block's sums carried in registers.
 * Borders live in registers: constant rows are vdupq_n_u8, the columns left of
 * 0 and right of width-1 are lanes set with vdupq_n_u16; the image is never
 * copied. Widths that are not a multiple of 16 finish with the C row; the plane
 * loop (and so the vertical border) is the reference's, posetok_gaussian_plane. */
#include <arm_neon.h>

#include "internal.h"

typedef struct {
    uint16x8_t even, odd; /* vertical sums of pixels x+2i and x+2i+1 */
} vsums;

/* Multipliers kept in full vector registers: compilers like to turn a
 * multiply by a duplicated constant into the by-element form (mla v.8h, v.h[0]),
 * which QEMU emulates lane by lane, ~25x slower than the vector form. The
 * empty asm hides the constant. */
typedef struct {
    uint16x8_t two, k256;
} multipliers;

static inline multipliers make_multipliers(void) {
    multipliers k = {vdupq_n_u16(2), vdupq_n_u16(256)};
    __asm__("" : "+w"(k.two), "+w"(k.k256));
    return k;
}

static inline __attribute__((always_inline)) vsums
vertical16(const uint8_t *top, const uint8_t *mid, const uint8_t *bottom, int x,
           uint16x8_t constant_row, multipliers k, int top_const, int bottom_const) {
    const uint16x8_t t = top_const ? constant_row : vreinterpretq_u16_u8(vld1q_u8(top + x));
    const uint16x8_t b = bottom_const ? constant_row : vreinterpretq_u16_u8(vld1q_u8(bottom + x));
    const uint16x8_t m = vreinterpretq_u16_u8(vld1q_u8(mid + x));
    vsums v;
    v.odd = vmlaq_u16(vsraq_n_u16(vshrq_n_u16(t, 8), b, 8), vshrq_n_u16(m, 8), k.two);
    const uint16x8_t whole = vmlaq_u16(vaddq_u16(t, b), m, k.two);
    v.even = vmlsq_u16(whole, v.odd, k.k256);
    return v;
}

/* Filters the 16 pixels of block v given the previous block's odd sums (lane
 * 7 = column x-1) and the next block's even sums (lane 0 = column x+16). */
static inline __attribute__((always_inline)) void
horizontal16(vsums v, uint16x8_t prev_odd, uint16x8_t next_even, multipliers k, uint8_t *dst) {
    const uint16x8_t left_odd = vextq_u16(prev_odd, v.odd, 7);     /* V[2i-1] */
    const uint16x8_t right_even = vextq_u16(v.even, next_even, 1); /* V[2i+2] */
    const uint16x8_t out_even = vmlaq_u16(vaddq_u16(left_odd, v.odd), v.even, k.two);
    const uint16x8_t out_odd = vmlaq_u16(vaddq_u16(v.even, right_even), v.odd, k.two);
    const uint16x8_t packed = vsliq_n_u16(vrshrq_n_u16(out_even, 4), vrshrq_n_u16(out_odd, 4), 8);
    vst1q_u8(dst, vreinterpretq_u8_u16(packed));
}

static inline __attribute__((always_inline)) void
gaussian_blocks(const uint8_t *top, const uint8_t *mid, const uint8_t *bottom, uint8_t *dst,
                int width, int border, int border_value, int top_const, int bottom_const) {
    const uint16x8_t constant_row = vreinterpretq_u16_u8(vdupq_n_u8((uint8_t)border_value));
    const unsigned outside = 4u * (unsigned)border_value;
    const multipliers k = make_multipliers();
    vsums v = vertical16(top, mid, bottom, 0, constant_row, k, top_const, bottom_const);

    /* column -1: reflect-101 -> column 1, replicate -> column 0, constant */
    const unsigned left = border == POSETOK_BORDER_REFLECT_101 ? vgetq_lane_u16(v.odd, 0)
                          : border == POSETOK_BORDER_REPLICATE ? vgetq_lane_u16(v.even, 0)
                                                               : outside;
    uint16x8_t prev_odd = vdupq_n_u16((uint16_t)left);

    int x = 0;
    for (; x + 48 <= width; x += 32) {
        const vsums n1 =
            vertical16(top, mid, bottom, x + 16, constant_row, k, top_const, bottom_const);
        horizontal16(v, prev_odd, n1.even, k, dst + x);
        const vsums n2 =
            vertical16(top, mid, bottom, x + 32, constant_row, k, top_const, bottom_const);
        horizontal16(n1, v.odd, n2.even, k, dst + x + 16);
        prev_odd = n1.odd;
        v = n2;
    }
    for (; x + 32 <= width; x += 16) {
        const vsums n =
            vertical16(top, mid, bottom, x + 16, constant_row, k, top_const, bottom_const);
        horizontal16(v, prev_odd, n.even, k, dst + x);
        prev_odd = v.odd;
        v = n;
    }
    /* last full block: column x + 16 is the border or the first leftover column */
    unsigned right;
    if (x + 16 == width)
        right = border == POSETOK_BORDER_REFLECT_101 ? vgetq_lane_u16(v.even, 7) /* x+14 */
                : border == POSETOK_BORDER_REPLICATE ? vgetq_lane_u16(v.odd, 7)  /* x+15 */
                                                     : outside;
    else
        right = posetok_gaussian_column(top_const ? NULL : top, mid, bottom_const ? NULL : bottom,
                                        x + 16, border_value);
    horizontal16(v, prev_odd, vdupq_n_u16((uint16_t)right), k, dst + x);
    if (x + 16 < width)
        posetok_gaussian_span_ref(top_const ? NULL : top, mid, bottom_const ? NULL : bottom, dst,
                                  width, x + 16, width, border, border_value);
}

/* The NEON row (posetok_gaussian_row_fn): specialised per constant top /
 * bottom row; rows narrower than 16 pixels use the C row. */
static void gaussian_row_neon(const uint8_t *top, const uint8_t *mid, const uint8_t *bottom,
                              uint8_t *dst, int width, int border, int border_value) {
    if (width < 16)
        posetok_gaussian_row_ref(top, mid, bottom, dst, width, border, border_value);
    else if (top && bottom)
        gaussian_blocks(top, mid, bottom, dst, width, border, border_value, 0, 0);
    else if (bottom)
        gaussian_blocks(top, mid, bottom, dst, width, border, border_value, 1, 0);
    else if (top)
        gaussian_blocks(top, mid, bottom, dst, width, border, border_value, 0, 1);
    else
        gaussian_blocks(top, mid, bottom, dst, width, border, border_value, 1, 1);
}

int posetok_gaussian3x3_u8_neon(const uint8_t *src, int src_stride, uint8_t *dst, int dst_stride,
                                int width, int height, int border, int border_value) {
    int status = posetok_check_gaussian(src, src_stride, dst, dst_stride, width, height, border,
                                        border_value);
    if (status) return status;
    posetok_gaussian_plane(gaussian_row_neon, src, src_stride, dst, dst_stride, width, height,
                           border, border_value);
    return POSETOK_OK;
}
