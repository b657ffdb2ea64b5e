/* u8 HWC -> f32 CHW normalize, NEON: vld{1,2,3,4}q_u8 de-interleaves 16 pixels
 * into one register per channel, and every value is the reference's
 * fl(fl(x - mean) * scale), bit for bit.
 *
 * Fixed-point paths, when every mean is in [0, 255] and a multiple of 2^-16
 * (FRAC = 16: any f32 mean >= 128, means such as 0 or 127.5, and the ImageNet
 * means 123.675f, 116.28f, 103.53f), else in [0, 255.99] and a multiple of
 * 2^-23 (FRAC = 23: every f32 mean in [1, 255.99] and 0): x - mean is formed
 * exactly as the integer D = (x - mean) * 2^FRAC, |D| < 2^31, whose one rounded
 * conversion is fl(x - mean) * 2^FRAC (for FRAC = 16, |D| < 2^24: no rounding
 * at all). With mean * 2^FRAC = hi * 65536 - lo (lo in 0..65535):
 *   FRAC 16: H = x - hi          vsubl_u8 / vsubl_high_u8 (hi = ceil(mean))
 *   FRAC 23: H = x * 128 - hi    vshll_n_u8(x, 7), vsubq_u16
 *   D = H * 65536 + lo           vzip1q_u16 / vzip2q_u16 (lo, H): H as s16
 *   y = (float)D * (scale / 2^FRAC)      vcvtq_f32_s32, vmulq_f32
 * The product is the reference's (x - mean) * scale, the same real number
 * rounded once, as long as scale / 2^FRAC is exact and normal (checked). 16
 * pixels of one channel cost 14 (FRAC 16) or 16 vector instructions and come
 * out in pixel order (one vst1q_f32_x4), 32 pixels per loop turn with
 * post-indexed pointers. (vcvtq_n_f32_s32(D, FRAC) would save the scale
 * division but costs QEMU about twice a plain conversion.)
 * Other means and scales take the generic path (one subtract and one multiply
 * per value, like the reference). The leftover of a row overlaps the last
 * 16-pixel block.
 * Unlike the other kernels, this file keeps its own row loop instead of handing
 * a row function to posetok_normalize_plane: the per-channel constants must
 * stay in registers across rows, and behind a row-function call gcc 12 reloads
 * them from memory in every block (2.98 -> 3.71 instructions per pixel for c3
 * at 640x480). Rows narrower than 16 pixels use the C row. */
#include <arm_neon.h>
#include <float.h>

#include "internal.h"

/* The 16 bytes of one channel are read as four u32 lanes; byte k of lane i
 * (pixel 4i + k) is extracted with shifts and masks, converted, normalised,
 * and vst4q_f32 writes the four vectors back in pixel order (out[4i + k]).
 * Shifts and masks instead of widening moves or table look-ups: the same
 * instruction count ballpark on hardware, several times cheaper under QEMU. */
static inline __attribute__((always_inline)) void
channel16(uint8x16_t v, uint32x4_t byte_mask, float32x4_t mean, float32x4_t scale, float *out) {
    const uint32x4_t w = vreinterpretq_u32_u8(v);
    uint32x4_t b[4];
    b[0] = vandq_u32(w, byte_mask);
    b[1] = vandq_u32(vshrq_n_u32(w, 8), byte_mask);
    b[2] = vandq_u32(vshrq_n_u32(w, 16), byte_mask);
    b[3] = vshrq_n_u32(w, 24);
    float32x4x4_t f;
    for (int i = 0; i < 4; ++i) f.val[i] = vmulq_f32(vsubq_f32(vcvtq_f32_u32(b[i]), mean), scale);
    vst4q_f32(out, f);
}

static inline __attribute__((always_inline)) void
block16(const uint8_t *src, int channels, uint32x4_t byte_mask, const float32x4_t *mean,
        const float32x4_t *scale, float *dst, ptrdiff_t plane, int x) {
    const uint8_t *p = src + x * channels;
    uint8x16_t v[4];
    if (channels == 1) {
        v[0] = vld1q_u8(p);
    } else if (channels == 2) {
        uint8x16x2_t t = vld2q_u8(p);
        v[0] = t.val[0], v[1] = t.val[1];
    } else if (channels == 3) {
        uint8x16x3_t t = vld3q_u8(p);
        v[0] = t.val[0], v[1] = t.val[1], v[2] = t.val[2];
    } else {
        uint8x16x4_t t = vld4q_u8(p);
        v[0] = t.val[0], v[1] = t.val[1], v[2] = t.val[2], v[3] = t.val[3];
    }
    for (int c = 0; c < channels; ++c)
        channel16(v[c], byte_mask, mean[c], scale[c], dst + c * plane + x);
}

/* Exact fixed-point paths. FRAC = 16: mean * 65536 an integer in [0, 255 * 65536];
 * FRAC = 23: mean * 2^23 an integer, mean in [0, 32767 / 128]. */
typedef struct {
    uint8x16_t hi8;    /* FRAC 16: ceil(mean) in every byte */
    uint16x8_t hi16;   /* FRAC 23: ceil(mean * 128) in every u16 lane */
    uint16x8_t lo;     /* the remainder, hi * 65536 - mean * 2^FRAC, in every u16 lane */
    float32x4_t scale; /* scale / 2^FRAC */
} fx_channel;

/* 1 when mean and scale fit the FRAC path (see above); fills q. */
static int fx_setup(int frac, float mean, float scale, fx_channel *q) {
    const float one = (float)(1 << frac), max_mean = frac == 16 ? 255.0f : 32767.0f / 128;
    if (!(mean >= 0.0f && mean <= max_mean)) return 0; /* also rejects NaN */
    const float mf = mean * one;                       /* exact: power of two */
    const int32_t mq = (int32_t)mf;
    if ((float)mq != mf) return 0;
    const int32_t hi = (int32_t)(((int64_t)mq + 65535) >> 16);
    q->hi8 = vdupq_n_u8((uint8_t)hi);
    q->hi16 = vdupq_n_u16((uint16_t)hi);
    q->lo = vdupq_n_u16((uint16_t)(hi * 65536 - mq));
    /* (float)D * (scale / 2^FRAC) is the reference's product: needs an exact,
     * normal scale / 2^FRAC */
    const float sf = scale / one;
    if (sf * one != scale) return 0;
    if (sf != 0.0f && sf < FLT_MIN && sf > -FLT_MIN) return 0; /* subnormal: FPCR.FZ */
    q->scale = vdupq_n_f32(sf);
    return 1;
}

static inline __attribute__((always_inline)) float32x4_t fx_convert(uint16x8_t lo, uint16x8_t h,
                                                                    int upper, float32x4_t scale) {
    const uint16x8_t d = upper ? vzip2q_u16(lo, h) : vzip1q_u16(lo, h);
    return vmulq_f32(vcvtq_f32_s32(vreinterpretq_s32_u16(d)), scale);
}

/* H (the high halves of D) for 16 pixels of one channel: h[0] pixels 0..7,
 * h[1] pixels 8..15, as s16 bit patterns */
static inline __attribute__((always_inline)) void fx_widen(int frac, uint8x16_t v,
                                                           const fx_channel *q, uint16x8_t h[2]) {
    if (frac == 16) {
        h[0] = vsubl_u8(vget_low_u8(v), vget_low_u8(q->hi8));
        h[1] = vsubl_high_u8(v, q->hi8);
    } else {
        h[0] = vsubq_u16(vshll_n_u8(vget_low_u8(v), 7), q->hi16);
        h[1] = vsubq_u16(vshll_high_n_u8(v, 7), q->hi16);
    }
}

static inline __attribute__((always_inline)) void fx_store16(const uint16x8_t h[2],
                                                             const fx_channel *q, float *out) {
    float32x4x4_t f;
    f.val[0] = fx_convert(q->lo, h[0], 0, q->scale);
    f.val[1] = fx_convert(q->lo, h[0], 1, q->scale);
    f.val[2] = fx_convert(q->lo, h[1], 0, q->scale);
    f.val[3] = fx_convert(q->lo, h[1], 1, q->scale);
    vst1q_f32_x4(out, f);
}

/* 16 pixels from p, channel c written to out[c][0..15]. */
static inline __attribute__((always_inline)) void
fx_block16(int frac, const uint8_t *p, int channels, const fx_channel *q, float *const *out) {
    uint8x16_t v[4];
    if (channels == 1) {
        v[0] = vld1q_u8(p);
    } else if (channels == 2) {
        const uint8x16x2_t t = vld2q_u8(p);
        v[0] = t.val[0], v[1] = t.val[1];
    } else if (channels == 3) {
        const uint8x16x3_t t = vld3q_u8(p);
        v[0] = t.val[0], v[1] = t.val[1], v[2] = t.val[2];
    } else {
        const uint8x16x4_t t = vld4q_u8(p);
        v[0] = t.val[0], v[1] = t.val[1], v[2] = t.val[2], v[3] = t.val[3];
    }
    uint16x8_t h[4][2];
    for (int c = 0; c < channels; ++c) fx_widen(frac, v[c], &q[c], h[c]);
    /* every H before any conversion: otherwise gcc 12 borrows the load's
     * registers for temporaries and adds a vector move per block */
    for (int c = 0; c < channels; ++c) __asm__("" : "+w"(h[c][0]), "+w"(h[c][1]));
    for (int c = 0; c < channels; ++c) fx_store16(h[c], &q[c], out[c]);
}

static inline __attribute__((always_inline)) void
normalize_fx(int frac, const uint8_t *src, int src_stride, int width, int height, int channels,
             const fx_channel *q, const float *mean, const float *scale, float *dst,
             int dst_stride) {
    const ptrdiff_t plane = (ptrdiff_t)height * dst_stride;
    const posetok_normalize_args a = {channels, mean, scale, plane};
    for (int y = 0; y < height; ++y) {
        const uint8_t *row = src + (ptrdiff_t)y * src_stride;
        float *out = dst + (ptrdiff_t)y * dst_stride;
        if (width < 16) {
            posetok_normalize_row_ref(row, out, width, &a);
            continue;
        }
        /* walking pointers (post-indexed loads and stores), 32 pixels a turn */
        const uint8_t *p = row;
        float *o[4];
        for (int c = 0; c < channels; ++c) o[c] = out + c * plane;
        for (int n = width >> 5; n > 0; --n) {
            for (int half = 0; half < 2; ++half) {
                fx_block16(frac, p, channels, q, o);
                p += 16 * channels;
                for (int c = 0; c < channels; ++c) o[c] += 16;
                /* opaque to the optimiser, so each block keeps its own
                 * post-indexed addressing instead of copies and offsets */
                __asm__("" : "+r"(p));
                for (int c = 0; c < channels; ++c) __asm__("" : "+r"(o[c]));
            }
        }
        if (width & 16) fx_block16(frac, p, channels, q, o);
        if (width & 15) {
            const int x0 = width - 16;
            float *t[4];
            for (int c = 0; c < channels; ++c) t[c] = out + c * plane + x0;
            fx_block16(frac, row + x0 * channels, channels, q, t);
        }
    }
}

static void normalize_fx_dispatch(int frac, const uint8_t *src, int src_stride, int width,
                                  int height, int channels, const fx_channel *q, const float *mean,
                                  const float *scale, float *dst, int dst_stride) {
#define POSETOK_FX(F, C) \
    normalize_fx(F, src, src_stride, width, height, C, q, mean, scale, dst, dst_stride)
    if (frac == 16) {
        switch (channels) {
        case 1: POSETOK_FX(16, 1); break;
        case 2: POSETOK_FX(16, 2); break;
        case 3: POSETOK_FX(16, 3); break;
        default: POSETOK_FX(16, 4); break;
        }
    } else {
        switch (channels) {
        case 1: POSETOK_FX(23, 1); break;
        case 2: POSETOK_FX(23, 2); break;
        case 3: POSETOK_FX(23, 3); break;
        default: POSETOK_FX(23, 4); break;
        }
    }
#undef POSETOK_FX
}

static inline __attribute__((always_inline)) void
normalize_neon(const uint8_t *src, int src_stride, int width, int height, int channels,
               const float *mean, const float *scale, float *dst, int dst_stride) {
    const ptrdiff_t plane = (ptrdiff_t)height * dst_stride;
    const posetok_normalize_args a = {channels, mean, scale, plane};
    float32x4_t m[4], s[4];
    const uint32x4_t byte_mask = vdupq_n_u32(0xff);
    for (int c = 0; c < channels; ++c) m[c] = vdupq_n_f32(mean[c]), s[c] = vdupq_n_f32(scale[c]);
    for (int y = 0; y < height; ++y) {
        const uint8_t *row = src + (ptrdiff_t)y * src_stride;
        float *out = dst + (ptrdiff_t)y * dst_stride;
        if (width < 16) {
            posetok_normalize_row_ref(row, out, width, &a);
            continue;
        }
        int x = 0;
        for (; x + 16 <= width; x += 16) block16(row, channels, byte_mask, m, s, out, plane, x);
        if (x < width) block16(row, channels, byte_mask, m, s, out, plane, width - 16);
    }
}

int posetok_normalize_u8_f32_chw_neon(const uint8_t *src, int src_stride, int width, int height,
                                      int channels, const float *mean, const float *scale,
                                      float *dst, int dst_stride) {
    int status = posetok_check_normalize(src, src_stride, width, height, channels, mean, scale, dst,
                                         dst_stride);
    if (status) return status;
    fx_channel q[4];
    for (int frac = 16; frac <= 23; frac += 7) {
        int ok = 1;
        for (int c = 0; c < channels; ++c) ok &= fx_setup(frac, mean[c], scale[c], &q[c]);
        if (ok) {
            normalize_fx_dispatch(frac, src, src_stride, width, height, channels, q, mean, scale,
                                  dst, dst_stride);
            return POSETOK_OK;
        }
    }
    switch (channels) {
    case 1: normalize_neon(src, src_stride, width, height, 1, mean, scale, dst, dst_stride); break;
    case 2: normalize_neon(src, src_stride, width, height, 2, mean, scale, dst, dst_stride); break;
    case 3: normalize_neon(src, src_stride, width, height, 3, mean, scale, dst, dst_stride); break;
    default: normalize_neon(src, src_stride, width, height, 4, mean, scale, dst, dst_stride); break;
    }
    return POSETOK_OK;
}
