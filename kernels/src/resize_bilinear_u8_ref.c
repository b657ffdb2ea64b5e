/* Bilinear resize, u8, 1 or 3 channels, scalar reference. Conventions and
 * fixed-point formulas: posetok_kernels.h. */
#include <stdlib.h>

#include "internal.h"

void posetok_resize_taps(int src_len, int dst_len, posetok_lerp_tap *taps) {
    for (int i = 0; i < dst_len; ++i) {
        /* exact Q16 source position of the destination pixel centre */
        long long s = ((2LL * i + 1) * src_len * 65536) / (2LL * dst_len) - 32768;
        if (s < 0) s = 0;
        int i0 = (int)(s >> 16);
        int w = (int)(((s & 0xffff) + 256) >> 9);
        if (w == 128) {
            i0 += 1;
            w = 0;
        }
        if (i0 >= src_len - 1) {
            i0 = src_len - 1;
            w = 0;
        }
        taps[i].i0 = i0;
        taps[i].i1 = i0 + 1 < src_len ? i0 + 1 : src_len - 1;
        taps[i].w = w;
    }
}

int posetok_resize_bilinear_u8_ref(const uint8_t *src, int src_stride, int src_width,
                                   int src_height, uint8_t *dst, int dst_stride, int dst_width,
                                   int dst_height, int channels) {
    int status = posetok_check_resize(src, src_stride, src_width, src_height, dst, dst_stride,
                                      dst_width, dst_height, channels);
    if (status) return status;
    posetok_lerp_tap *xt = malloc(sizeof *xt * (size_t)dst_width);
    posetok_lerp_tap *yt = malloc(sizeof *yt * (size_t)dst_height);
    if (!xt || !yt) {
        free(xt);
        free(yt);
        return POSETOK_ERR_NO_MEMORY;
    }
    posetok_resize_taps(src_width, dst_width, xt);
    posetok_resize_taps(src_height, dst_height, yt);
    const int c = channels;
    for (int y = 0; y < dst_height; ++y) {
        const uint8_t *r0 = src + (ptrdiff_t)yt[y].i0 * src_stride;
        const uint8_t *r1 = src + (ptrdiff_t)yt[y].i1 * src_stride;
        const unsigned wy = (unsigned)yt[y].w;
        uint8_t *out = dst + (ptrdiff_t)y * dst_stride;
        for (int x = 0; x < dst_width; ++x) {
            const int a = xt[x].i0 * c, b = xt[x].i1 * c;
            for (int k = 0; k < c; ++k) {
                uint8_t va = posetok_lerp_q7(r0[a + k], r1[a + k], wy);
                uint8_t vb = posetok_lerp_q7(r0[b + k], r1[b + k], wy);
                out[x * c + k] = posetok_lerp_q7(va, vb, (unsigned)xt[x].w);
            }
        }
    }
    free(xt);
    free(yt);
    return POSETOK_OK;
}
