/* Bilinear resize, u8, 1 or 3 channels: the tap tables, the C rows (the
 * specification; formulas in posetok_kernels.h) and the plane loop that the
 * reference and the NEON entry points share (libyuv's ScalePlaneBilinear
 * split: a vertical row blends the two source rows of an output row into a
 * scratch row, a horizontal row applies the x taps to it; a row with zero
 * vertical weight is used in place, which is the same value). */
#include <stdlib.h>

#include "internal.h"

void posetok_resize_taps(int src_len, int dst_len, posetok_lerp_tap *taps) {
    for (int i = 0; i < dst_len; ++i) {
        /* exact Q16 source position of the destination pixel centre,
         * (2i+1) * src_len * 65536 / (2 * dst_len), from the quotient and the
         * remainder of (2i+1) * src_len: the plain product passes 2^63 for
         * sizes of 2^23 and more */
        const long long num = (2LL * i + 1) * src_len, den = 2LL * dst_len;
        long long s = (num / den) * 65536 + (num % den) * 65536 / den - 32768;
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

void posetok_resize_vertical_ref(const uint8_t *r0, const uint8_t *r1, uint8_t *out, int len,
                                 int wy) {
    for (int i = 0; i < len; ++i) out[i] = posetok_lerp_q7(r0[i], r1[i], (unsigned)wy);
}

void posetok_resize_span_ref(const uint8_t *v, const posetok_lerp_tap *xt, int channels,
                             uint8_t *out, int k_begin, int k_end) {
    for (int k = k_begin; k < k_end; ++k) {
        const int p = k / channels, c = k % channels;
        out[k] = posetok_lerp_q7(v[xt[p].i0 * channels + c], v[xt[p].i1 * channels + c],
                                 (unsigned)xt[p].w);
    }
}

static void horizontal_ref(const uint8_t *v, uint8_t *out, const posetok_resize_plan *plan) {
    const int c = plan->channels, out_w = plan->out_len / c;
    const posetok_lerp_tap *xt = plan->xt;
    for (int x = 0; x < out_w; ++x) {
        const int a = xt[x].i0 * c, b = xt[x].i1 * c;
        for (int k = 0; k < c; ++k)
            out[x * c + k] = posetok_lerp_q7(v[a + k], v[b + k], (unsigned)xt[x].w);
    }
}

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

int posetok_resize_plane(const posetok_resize_rows *rows, const uint8_t *src, int src_stride,
                         int src_width, int src_height, uint8_t *dst, int dst_stride, int dst_width,
                         int dst_height, int channels) {
    const int row_len = src_width * channels, out_len = dst_width * channels;
    /* one allocation: x taps | y taps | column plan | scratch row */
    const size_t xt_bytes = sizeof(posetok_lerp_tap) * (size_t)dst_width;
    const size_t yt_bytes = sizeof(posetok_lerp_tap) * (size_t)dst_height;
    const size_t cols_bytes = rows->cols_bytes ? rows->cols_bytes(row_len, out_len) : 0;
    const size_t cols_at = align16(xt_bytes + yt_bytes), row_at = align16(cols_at + cols_bytes);
    unsigned char *mem = malloc(row_at + (size_t)row_len);
    if (!mem) return POSETOK_ERR_NO_MEMORY;
    posetok_lerp_tap *xt = (posetok_lerp_tap *)mem, *yt = xt + dst_width;
    uint8_t *vrow = mem + row_at;
    posetok_resize_taps(src_width, dst_width, xt);
    posetok_resize_taps(src_height, dst_height, yt);
    const posetok_resize_plan plan = {channels, row_len, out_len, xt,
                                      cols_bytes ? mem + cols_at : NULL};
    if (rows->cols_plan) rows->cols_plan(xt, channels, row_len, out_len, mem + cols_at);

    for (int y = 0; y < dst_height; ++y) {
        const uint8_t *v = src + (ptrdiff_t)yt[y].i0 * src_stride;
        if (yt[y].w) {
            rows->vertical(v, src + (ptrdiff_t)yt[y].i1 * src_stride, vrow, row_len, yt[y].w);
            v = vrow;
        }
        rows->horizontal(v, dst + (ptrdiff_t)y * dst_stride, &plan);
    }
    free(mem);
    return POSETOK_OK;
}

int posetok_resize_bilinear_u8_ref(const uint8_t *src, int src_stride, int src_width,
                                   int src_height, uint8_t *dst, int dst_stride, int dst_width,
                                   int dst_height, int channels) {
    int status = posetok_check_resize(src, src_stride, src_width, src_height, dst, dst_stride,
                                      dst_width, dst_height, channels);
    if (status) return status;
    static const posetok_resize_rows rows = {posetok_resize_vertical_ref, horizontal_ref, NULL,
                                             NULL};
    return posetok_resize_plane(&rows, src, src_stride, src_width, src_height, dst, dst_stride,
                                dst_width, dst_height, channels);
}
