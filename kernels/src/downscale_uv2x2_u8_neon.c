/* 2x2 box downscale of an interleaved UV plane, NEON (the seed article's
 * technique, with rounding): vld2q_u8 de-interleaves U and V, vpaddlq_u8 adds
 * horizontal neighbours into u16, vpadalq_u8 accumulates the second row,
 * vrshrn_n_u16(sum, 2) is (sum + 2) >> 2, vst2q_u8 re-interleaves.
 * 16 output pairs per iteration; the leftover is done by overlapping the last
 * 16-pair block (recomputing a few pairs with identical values), and rows
 * narrower than 16 output pairs use the C row. The plane loop is the
 * reference's (posetok_downscale_uv_plane). */
#include <arm_neon.h>

#include "internal.h"

static inline __attribute__((always_inline)) void block16(const uint8_t *row0, const uint8_t *row1,
                                                          uint8_t *dst, int x) {
    const uint8x16x2_t a0 = vld2q_u8(row0 + 4 * x), a1 = vld2q_u8(row0 + 4 * x + 32);
    const uint8x16x2_t b0 = vld2q_u8(row1 + 4 * x), b1 = vld2q_u8(row1 + 4 * x + 32);
    uint8x16x2_t out;
    for (int c = 0; c < 2; ++c) {
        const uint16x8_t s0 = vpadalq_u8(vpaddlq_u8(a0.val[c]), b0.val[c]);
        const uint16x8_t s1 = vpadalq_u8(vpaddlq_u8(a1.val[c]), b1.val[c]);
        out.val[c] = vrshrn_high_n_u16(vrshrn_n_u16(s0, 2), s1, 2);
    }
    vst2q_u8(dst + 2 * x, out);
}

/* The NEON row (posetok_downscale_uv_row_fn). */
static void downscale_uv_row_neon(const uint8_t *row0, const uint8_t *row1, uint8_t *dst,
                                  int out_w) {
    if (out_w < 16) {
        posetok_downscale_uv_row_ref(row0, row1, dst, out_w);
        return;
    }
    int x = 0;
    for (; x + 16 <= out_w; x += 16) block16(row0, row1, dst, x);
    if (x < out_w) block16(row0, row1, dst, out_w - 16);
}

int posetok_downscale_uv2x2_u8_neon(const uint8_t *src, int src_stride, uint8_t *dst,
                                    int dst_stride, int width, int height) {
    int status = posetok_check_downscale_uv(src, src_stride, dst, dst_stride, width, height);
    if (status) return status;
    posetok_downscale_uv_plane(downscale_uv_row_neon, src, src_stride, dst, dst_stride, width,
                               height);
    return POSETOK_OK;
}
