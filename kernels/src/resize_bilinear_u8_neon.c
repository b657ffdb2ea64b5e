/* Bilinear resize, u8, 1 or 3 channels, NEON. Same two rounded stages as the
 * reference, vertical first. Both stages work in u16 lanes that hold two
 * bytes, with plain vector multiplies, shifts and vsliq_n_u16, and no
 * widening or narrowing instruction (QEMU emulates those lane by lane):
 *  1. vertical: the two source rows are blended over the full source row into
 *     a scratch row, 32 bytes a turn (see vertical_lanes); a row with zero
 *     vertical weight is used in place.
 *  2. horizontal: a column plan built once per call cuts the destination row into
 *     groups of 16 output bytes. When the taps of a group fit one 64-byte
 *     source window, two vqtbl4q_u8 gather the (left, right) pairs of its even
 *     and odd outputs into u16 lanes and the lerp is done in those lanes (see
 *     lane_pair). Otherwise the group is two blocks of 8: a vqtbl4q_u8 index
 *     vector gathers the 8 left taps into the low half and the 8 right taps
 *     into the high half of a register, with weights (128-w | w); vmull_u8 +
 *     vmlal_high_u8 + vrshrn_n_u16(., 7) finish the lerp. Windows never extend
 *     past the row. Blocks whose taps span more than 64 bytes (downscale by
 *     more than ~7x) or rows shorter than 64 bytes fall back to scalar lerps.
 * The last group or block overlaps the previous one when the row is not a
 * multiple of its size. The plane loop, its one allocation (taps, column plan,
 * scratch row) and the tap tables are the reference's (posetok_resize_plane). */
#include <arm_neon.h>

#include "internal.h"

typedef struct {
    int32_t base;       /* window start in the row */
    int32_t k0;         /* first output byte of the block */
    uint8_t idx[16];    /* vqtbl4q_u8 indices: 8 left taps, then 8 right taps */
    uint8_t weight[16]; /* 8 x (128 - w), then 8 x w */
} gather_block;

/* Two consecutive gather blocks: 16 output bytes, one store. */
typedef struct {
    gather_block a, b;
} gather_pair;

/* Groups consecutive blocks (k0, k0 + 8) into pairs; returns the pair count
 * and leaves the unpaired blocks at the start of `blocks` (count in *nsingle). */
static int pair_blocks(gather_block *blocks, int nvec, gather_pair *pairs, int *nsingle) {
    int npairs = 0, ns = 0;
    for (int i = 0; i < nvec;) {
        if (i + 1 < nvec && blocks[i + 1].k0 == blocks[i].k0 + 8) {
            pairs[npairs].a = blocks[i];
            pairs[npairs++].b = blocks[i + 1];
            i += 2;
        } else {
            blocks[ns++] = blocks[i++];
        }
    }
    *nsingle = ns;
    return npairs;
}

/* 16 consecutive output bytes whose taps fit one 64-byte window, computed
 * in u16 lanes without widening or narrowing instructions: two vqtbl4q_u8
 * gather the (left, right) byte pairs of the even and of the odd outputs, so
 * lane i holds X = left + 256 * right. With W0 = 128 - w and
 * K = w - 256 * (128 - w) (mod 2^16), X * W0 + (X >> 8) * K is
 * left * (128 - w) + right * w modulo 2^16 (the sum is at most 255 * 128);
 * vrshrq_n_u16(., 7) rounds and vsliq_n_u16 interleaves odd and even bytes. */
typedef struct {
    int32_t base;    /* window start in the row */
    int32_t k0;      /* first output byte */
    uint8_t idx[32]; /* (left, right) index pairs: 8 even outputs, then 8 odd */
    uint16_t w[32];  /* even: 8 x W0, 8 x K; odd: 8 x W0, 8 x K */
} lane_pair;

/* Fills lp for outputs k0..k0+15; 0 when their taps span 64 bytes or more.
 * off[j] (o0 = left tap byte, o1 = right tap byte) walks pixel p and channel
 * c of output byte k0 + j without divisions. */
static int plan_lane_pair(const posetok_lerp_tap *xt, int channels, int row_len, int k0,
                          lane_pair *lp) {
    int o0[16], o1[16], w[16];
    int p = k0 / channels, c = k0 % channels, lo = row_len, hi = 0;
    for (int j = 0; j < 16; ++j) {
        o0[j] = xt[p].i0 * channels + c;
        o1[j] = xt[p].i1 * channels + c;
        w[j] = xt[p].w;
        lo = o0[j] < lo ? o0[j] : lo;
        hi = o1[j] > hi ? o1[j] : hi;
        if (++c == channels) c = 0, ++p;
    }
    if (row_len < 64 || hi - lo >= 64) return 0;
    lp->k0 = k0;
    lp->base = lo + 64 <= row_len ? lo : row_len - 64;
    for (int j = 0; j < 16; ++j) {
        const int odd = j & 1, lane = j >> 1;
        lp->idx[16 * odd + 2 * lane] = (uint8_t)(o0[j] - lp->base);
        lp->idx[16 * odd + 2 * lane + 1] = (uint8_t)(o1[j] - lp->base);
        lp->w[16 * odd + lane] = (uint16_t)(128 - w[j]);
        lp->w[16 * odd + 8 + lane] = (uint16_t)(w[j] - 256 * (128 - w[j]));
    }
    return 1;
}

static inline __attribute__((always_inline)) uint8x16_t lane_pair16(const uint8_t *v,
                                                                    const lane_pair *g) {
    const uint8x16x4_t window = vld1q_u8_x4(v + g->base);
    const uint8x16x2_t idx = vld1q_u8_x2(g->idx);
    const uint16x8x4_t w = vld1q_u16_x4(g->w);
    const uint16x8_t te = vreinterpretq_u16_u8(vqtbl4q_u8(window, idx.val[0]));
    const uint16x8_t to = vreinterpretq_u16_u8(vqtbl4q_u8(window, idx.val[1]));
    const uint16x8_t se = vmlaq_u16(vmulq_u16(te, w.val[0]), vshrq_n_u16(te, 8), w.val[1]);
    const uint16x8_t so = vmlaq_u16(vmulq_u16(to, w.val[2]), vshrq_n_u16(to, 8), w.val[3]);
    return vreinterpretq_u8_u16(vsliq_n_u16(vrshrq_n_u16(se, 7), vrshrq_n_u16(so, 7), 8));
}

static inline __attribute__((always_inline)) uint8x8_t gather8(const uint8_t *v,
                                                               const gather_block *g) {
    const uint8x16x4_t window = vld1q_u8_x4(v + g->base);
    const uint8x16_t taps = vqtbl4q_u8(window, vld1q_u8(g->idx)); /* lefts | rights */
    const uint8x16_t w = vld1q_u8(g->weight);
    const uint16x8_t sum = vmlal_high_u8(vmull_u8(vget_low_u8(taps), vget_low_u8(w)), taps, w);
    return vrshrn_n_u16(sum, 7);
}

/* Plans the 8 output bytes from k0 as a gather block in *g (returns 1), or
 * returns 0 when their taps span 64 bytes or more (scalar lerps). */
static int plan_block(const posetok_lerp_tap *xt, int channels, int row_len, int k0,
                      gather_block *g) {
    int lo = row_len, hi = 0;
    for (int j = 0; j < 8; ++j) {
        const int k = k0 + j, p = k / channels, c = k % channels;
        const int o0 = xt[p].i0 * channels + c, o1 = xt[p].i1 * channels + c;
        lo = o0 < lo ? o0 : lo;
        hi = o1 > hi ? o1 : hi;
    }
    if (row_len < 64 || hi - lo >= 64) return 0;
    g->k0 = k0;
    g->base = lo + 64 <= row_len ? lo : row_len - 64;
    for (int j = 0; j < 8; ++j) {
        const int k = k0 + j, p = k / channels, c = k % channels;
        g->idx[j] = (uint8_t)(xt[p].i0 * channels + c - g->base);
        g->idx[8 + j] = (uint8_t)(xt[p].i1 * channels + c - g->base);
        g->weight[j] = (uint8_t)(128 - xt[p].w);
        g->weight[8 + j] = (uint8_t)xt[p].w;
    }
    return 1;
}

/* Splits the row (out_len >= 8 bytes) into groups of 16 output bytes, the last
 * one overlapping its neighbour when out_len is not a multiple of 16 (a single
 * block of 8 when out_len < 16): lane pairs to lpairs[0..*nlpairs); groups
 * that do not fit one window as two blocks of 8, gather blocks to
 * blocks[0..*nvec) and the first output byte of each scalar block to
 * scalar_k0[0..*nscalar). */
static void plan_row(const posetok_lerp_tap *xt, int channels, int row_len, int out_len,
                     lane_pair *lpairs, int *nlpairs, gather_block *blocks, int *nvec,
                     int32_t *scalar_k0, int *nscalar) {
    *nlpairs = *nvec = *nscalar = 0;
    int k0s[2], nk = 0;
    if (out_len < 16) {
        k0s[0] = 0, k0s[1] = out_len - 8, nk = out_len > 8 ? 2 : 1; /* overlapping */
        for (int i = 0; i < nk; ++i) {
            if (plan_block(xt, channels, row_len, k0s[i], &blocks[*nvec]))
                ++*nvec;
            else
                scalar_k0[(*nscalar)++] = k0s[i];
        }
        return;
    }
    const int ngroups = (out_len + 15) / 16;
    for (int i = 0; i < ngroups; ++i) {
        const int k0 = i * 16 + 16 <= out_len ? i * 16 : out_len - 16;
        if (plan_lane_pair(xt, channels, row_len, k0, &lpairs[*nlpairs])) {
            ++*nlpairs;
            continue;
        }
        for (int h = 0; h < 2; ++h) {
            if (plan_block(xt, channels, row_len, k0 + 8 * h, &blocks[*nvec]))
                ++*nvec;
            else
                scalar_k0[(*nscalar)++] = k0 + 8 * h;
        }
    }
}

/* 16 bytes of the vertical blend: the rows are read as u16 lanes, lane i
 * holding bytes 2i (low) and 2i+1 (high). Odd sums O = (a >> 8) * (128 - wy) +
 * (b >> 8) * wy; even sums from the whole-lane sum, E = a * (128 - wy) + b * wy
 * - (O << 8), exact modulo 2^16 (both sums are at most 255 * 128); then
 * (sum + 64) >> 7 with vrshrq_n_u16 and vsliq_n_u16 puts the odd bytes back. */
static inline __attribute__((always_inline)) uint8x16_t
vertical_lanes(uint8x16_t ra, uint8x16_t rb, uint16x8_t w0, uint16x8_t w1, uint16x8_t c256) {
    const uint16x8_t a = vreinterpretq_u16_u8(ra), b = vreinterpretq_u16_u8(rb);
    const uint16x8_t odd = vmlaq_u16(vmulq_u16(vshrq_n_u16(a, 8), w0), vshrq_n_u16(b, 8), w1);
    const uint16x8_t even = vmlsq_u16(vmlaq_u16(vmulq_u16(a, w0), b, w1), odd, c256);
    return vreinterpretq_u8_u16(vsliq_n_u16(vrshrq_n_u16(even, 7), vrshrq_n_u16(odd, 7), 8));
}

static inline __attribute__((always_inline)) void vertical16(const uint8_t *r0, const uint8_t *r1,
                                                             uint8_t *out, int i, uint16x8_t w0,
                                                             uint16x8_t w1, uint16x8_t c256) {
    vst1q_u8(out + i, vertical_lanes(vld1q_u8(r0 + i), vld1q_u8(r1 + i), w0, w1, c256));
}

static void vertical_row(const uint8_t *r0, const uint8_t *r1, uint8_t *out, int len, int wy) {
    const uint16x8_t w1 = vdupq_n_u16((uint16_t)wy), w0 = vdupq_n_u16((uint16_t)(128 - wy));
    const uint16x8_t c256 = vdupq_n_u16(256);
    if (len < 16) {
        posetok_resize_vertical_ref(r0, r1, out, len, wy);
        return;
    }
    /* 32 bytes a turn: two-register loads, a store pair, walking pointers */
    const uint8_t *a = r0, *b = r1;
    uint8_t *o = out;
    for (int n = len >> 5; n > 0; --n) {
        const uint8x16x2_t ta = vld1q_u8_x2(a), tb = vld1q_u8_x2(b);
        vst1q_u8(o, vertical_lanes(ta.val[0], tb.val[0], w0, w1, c256));
        vst1q_u8(o + 16, vertical_lanes(ta.val[1], tb.val[1], w0, w1, c256));
        a += 32, b += 32, o += 32;
        __asm__("" : "+r"(a), "+r"(b), "+r"(o)); /* keeps the post-indexed addressing */
    }
    int i = len & ~31;
    if (i + 16 <= len) vertical16(r0, r1, out, i, w0, w1, c256), i += 16;
    if (i < len) vertical16(r0, r1, out, len - 16, w0, w1, c256); /* overlap the last block */
}

/* The column plan: the groups and blocks of plan_row, paired, in one block of
 * memory (sized by cols_bytes, filled by cols_plan). */
typedef struct {
    int nlpairs, npairs, nsingle, nscalar;
    int vector; /* 0: the row is shorter than 8 bytes, all scalar */
    const lane_pair *lpairs;
    const gather_pair *pairs;
    const gather_block *singles;
    const int32_t *scalar_k0;
} cols_plan;

/* plan_row's worst case: one lane pair or two blocks of 8 per group of 16
 * output bytes; pair_blocks makes at most one pair per two blocks */
static int max_blocks(int out_len) { return out_len >= 8 ? 2 * ((out_len + 15) / 16) : 0; }

static size_t cols_bytes(int row_len, int out_len) {
    (void)row_len;
    const size_t nblocks = (size_t)max_blocks(out_len), ngroups = nblocks / 2;
    return sizeof(cols_plan) + ngroups * (sizeof(lane_pair) + sizeof(gather_pair)) +
           nblocks * (sizeof(gather_block) + sizeof(int32_t));
}

static void cols_plan_build(const posetok_lerp_tap *xt, int channels, int row_len, int out_len,
                            void *mem) {
    const int nblocks = max_blocks(out_len), ngroups = nblocks / 2;
    cols_plan *cp = mem;
    lane_pair *lpairs = (lane_pair *)(cp + 1);
    gather_pair *pairs = (gather_pair *)(lpairs + ngroups);
    gather_block *blocks = (gather_block *)(pairs + ngroups);
    int32_t *scalar_k0 = (int32_t *)(blocks + nblocks);
    int nvec = 0;
    *cp = (cols_plan){0, 0, 0, 0, nblocks > 0, lpairs, pairs, blocks, scalar_k0};
    if (!nblocks) return;
    plan_row(xt, channels, row_len, out_len, lpairs, &cp->nlpairs, blocks, &nvec, scalar_k0,
             &cp->nscalar);
    cp->npairs = pair_blocks(blocks, nvec, pairs, &cp->nsingle);
}

/* The NEON horizontal row: lane pairs, gather pairs, single gather blocks,
 * then the scalar blocks. */
static void horizontal_neon(const uint8_t *v, uint8_t *out, const posetok_resize_plan *plan) {
    const cols_plan *cp = plan->cols;
    const posetok_lerp_tap *xt = plan->xt;
    const int channels = plan->channels;
    if (!cp->vector) {
        posetok_resize_span_ref(v, xt, channels, out, 0, plan->out_len);
        return;
    }
    for (const lane_pair *g = cp->lpairs, *end = g + cp->nlpairs; g < end; ++g)
        vst1q_u8(out + g->k0, lane_pair16(v, g));
    for (const gather_pair *p = cp->pairs, *end = p + cp->npairs; p < end; ++p)
        vst1q_u8(out + p->a.k0, vcombine_u8(gather8(v, &p->a), gather8(v, &p->b)));
    for (int i = 0; i < cp->nsingle; ++i)
        vst1_u8(out + cp->singles[i].k0, gather8(v, &cp->singles[i]));
    for (int i = 0; i < cp->nscalar; ++i)
        posetok_resize_span_ref(v, xt, channels, out, cp->scalar_k0[i], cp->scalar_k0[i] + 8);
}

int posetok_resize_bilinear_u8_neon(const uint8_t *src, int src_stride, int src_width,
                                    int src_height, uint8_t *dst, int dst_stride, int dst_width,
                                    int dst_height, int channels) {
    int status = posetok_check_resize(src, src_stride, src_width, src_height, dst, dst_stride,
                                      dst_width, dst_height, channels);
    if (status) return status;
    static const posetok_resize_rows rows = {vertical_row, horizontal_neon, cols_bytes,
                                             cols_plan_build};
    return posetok_resize_plane(&rows, src, src_stride, src_width, src_height, dst, dst_stride,
                                dst_width, dst_height, channels);
}
