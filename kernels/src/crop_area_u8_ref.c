/* Crop + area downscale (+ BT.601) + normalize in one pass: the tap tables,
 * the C rows (the specification; formulas in posetok_kernels.h, section 7),
 * the argument checks and the plane loop shared by the reference and the NEON
 * entry points. Per output row: a vertical row sums the source rows of the
 * box with their Q8 weights into a u16 row (row scratch, one per plane), a
 * horizontal row applies the Q8 column weights, the YUV row converts the
 * averaged samples, and the normalize entry point writes one row of each f32
 * plane. Samples outside the frame are a constant (black), set once. */
#include <limits.h>
#include <stdlib.h>

#include "crop_area.h"
#include "yuv_constants.h"

/* ---- argument checks ------------------------------------------------------ */
#define POSETOK_AREA_MAX_BOX (1 << 16)
#define POSETOK_AREA_MAX_OUT (1 << 14)

static int check_common(const posetok_area_job *j) {
    if (!j->dst_f32 && !j->dst_u8) return POSETOK_ERR_NULL_POINTER;
    if (j->dst_f32 && (!j->mean || !j->scale)) return POSETOK_ERR_NULL_POINTER;
    if (j->width <= 0 || j->height <= 0 || j->box_w <= 0 || j->box_h <= 0 || j->out_w <= 0 ||
        j->out_h <= 0 || j->channels <= 0)
        return POSETOK_ERR_BAD_SIZE;
    if (j->channels != 1 && j->channels != 3) return POSETOK_ERR_BAD_OPTION;
    if (j->box_w > POSETOK_AREA_MAX_BOX || j->box_h > POSETOK_AREA_MAX_BOX ||
        j->out_w > POSETOK_AREA_MAX_OUT || j->out_h > POSETOK_AREA_MAX_OUT ||
        (long long)j->box_x + j->box_w > INT_MAX / 2 || (long long)j->box_x < INT_MIN / 2 ||
        (long long)j->box_y + j->box_h > INT_MAX / 2 || (long long)j->box_y < INT_MIN / 2 ||
        (long long)j->out_w * j->out_h * j->channels > INT_MAX)
        return POSETOK_ERR_TOO_LARGE;
    return POSETOK_OK;
}

int posetok_check_crop_yuv(const posetok_area_job *j) {
    if (!j->plane[0] || (j->channels == 3 && !j->plane[1])) return POSETOK_ERR_NULL_POINTER;
    int status = check_common(j);
    if (status) return status;
    if (j->width % 2 || j->height % 2) return POSETOK_ERR_ODD_SIZE;
    if ((j->u_first != 0 && j->u_first != 1) ||
        (j->range != POSETOK_YUV_RANGE_VIDEO && j->range != POSETOK_YUV_RANGE_FULL))
        return POSETOK_ERR_BAD_OPTION;
    if (j->stride[0] < j->width) return POSETOK_ERR_BAD_STRIDE;
    if (j->channels == 3 && j->stride[1] < j->width) return POSETOK_ERR_BAD_STRIDE;
    return POSETOK_OK;
}

int posetok_check_crop_packed(const posetok_area_job *j) {
    if (!j->plane[0]) return POSETOK_ERR_NULL_POINTER;
    int status = check_common(j);
    if (status) return status;
    if ((long long)j->width * j->channels > INT_MAX) return POSETOK_ERR_TOO_LARGE;
    if (j->stride[0] < j->width * j->channels) return POSETOK_ERR_BAD_STRIDE;
    return POSETOK_OK;
}

/* ---- tap tables ------------------------------------------------------------ */
static long long floor_div(long long a, long long b) { /* b > 0 */
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}
static long long ceil_div(long long a, long long b) { return -floor_div(-a, b); }

/* Output i of n_out covers luma units [pos + i*len/n_out, pos + (i+1)*len/n_out). */
/* Grid samples [ga, gb) that output i overlaps (grid pixel size s). */
static void axis_range(long long pos, long long len, int s, int n_out, int i, long long *ga,
                       long long *gb) {
    const long long a = pos * n_out + i * len;
    *ga = floor_div(a, (long long)s * n_out);
    *gb = ceil_div(a + len, (long long)s * n_out);
}

static int axis_taps(long long pos, long long len, int s, int n_out) {
    long long most = 1, ga, gb;
    for (int i = 0; i < n_out; ++i) {
        axis_range(pos, len, s, n_out, i, &ga, &gb);
        if (gb - ga > most) most = gb - ga;
    }
    return (int)((most + 3) & ~3LL);
}

/* Fills the taps. Inside output i's interval the boundary shares are
 * floor((512 c + len) / (2 len)) with c growing by s*n_out per grid sample:
 * one division per output, then quotient and remainder steps. */
static void axis_fill(posetok_area_axis *ax, long long pos, long long len, int s, int n_out) {
    ax->n_out = n_out;
    ax->g0 = (int)floor_div(pos, s);
    ax->count = (int)(ceil_div(pos + len, s) - ax->g0);
    const long long den = 2 * len, step = 2LL * POSETOK_AREA_ONE * s * n_out;
    const long long dq = step / den, dr = step % den;
    for (int i = 0; i < n_out; ++i) {
        long long ga, gb;
        axis_range(pos, len, s, n_out, i, &ga, &gb);
        ax->first[i] = (int32_t)(ga - ax->g0);
        ax->n[i] = (int32_t)(gb - ga);
        uint16_t *w = ax->w + (size_t)i * ax->taps;
        /* boundary ga + 1 (inside the interval unless gb == ga + 1) */
        const long long c1 = (s * (ga + 1) - pos) * n_out - i * len;
        long long num = 2LL * POSETOK_AREA_ONE * c1 + len;
        long long q = num / den, r = num % den, prev = 0;
        for (long long g = ga; g < gb; ++g) {
            const long long cur = g + 1 == gb ? POSETOK_AREA_ONE : q;
            w[g - ga] = (uint16_t)(cur - prev);
            prev = cur;
            q += dq, r += dr;
            if (r >= den) ++q, r -= den;
        }
        for (long long t = gb - ga; t < ax->taps; ++t) w[t] = 0;
    }
}

/* ---- C rows ---------------------------------------------------------------- */
void posetok_area_vertical_ref(const uint8_t *src, ptrdiff_t stride, const uint16_t *w, int n,
                               unsigned base, uint16_t *acc, int len) {
    for (int k = 0; k < len; ++k) acc[k] = (uint16_t)base;
    for (int j = 0; j < n; ++j) {
        const uint8_t *row = src + j * stride;
        for (int k = 0; k < len; ++k) acc[k] = (uint16_t)(acc[k] + w[j] * row[k]);
    }
}

void posetok_area_horizontal_span_ref(const uint16_t *acc, const posetok_area_axis *ax,
                                      int channels, uint8_t *out, int o_begin, int o_end) {
    for (int o = o_begin; o < o_end; ++o) {
        const uint16_t *w = ax->w + (size_t)o * ax->taps;
        const uint16_t *a = acc + (size_t)ax->first[o] * channels;
        for (int c = 0; c < channels; ++c) {
            uint32_t sum = 0;
            for (int t = 0; t < ax->n[o]; ++t) sum += (uint32_t)w[t] * a[t * channels + c];
            out[o * channels + c] = (uint8_t)((sum + 32768u) >> 16);
        }
    }
}

void posetok_area_horizontal_ref(const uint16_t *acc, const posetok_area_axis *ax, int channels,
                                 uint8_t *out) {
    posetok_area_horizontal_span_ref(acc, ax, channels, out, 0, ax->n_out);
}

void posetok_area_yuv_ref(const uint8_t *y, const uint8_t *chroma, uint8_t *out, int width,
                          int channels, int u_first, int range) {
    const posetok_yuv_coeffs k = posetok_yuv_coeffs_for(range);
    for (int x = 0; x < width; ++x) {
        const int yq = posetok_yuv_luma_q6(y[x], range);
        if (channels == 1) {
            out[x] = posetok_yuv_clamp_q6(yq);
            continue;
        }
        const uint8_t *pair = chroma + 2 * x;
        const int d = (u_first ? pair[0] : pair[1]) - POSETOK_YUV_CHROMA_ZERO;
        const int e = (u_first ? pair[1] : pair[0]) - POSETOK_YUV_CHROMA_ZERO;
        out[3 * x + 0] = posetok_yuv_clamp_q6(yq + k.crv * e);
        out[3 * x + 1] = posetok_yuv_clamp_q6(yq - k.cgu * d - k.cgv * e);
        out[3 * x + 2] = posetok_yuv_clamp_q6(yq + k.cbu * d);
    }
}

/* ---- the plane loop -------------------------------------------------------- */
static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

/* One plane of the job: grid size, bytes per sample, constant outside. */
typedef struct {
    const uint8_t *src;
    int stride, gw, gh, c, fill;
    posetok_area_axis x, y;
    uint16_t *acc;
} area_plane;

/* first, n | w | w2 (pairs: 2 * taps per output) */
static size_t axis_bytes(int n_out, int taps, int pairs) {
    const size_t w = align16(sizeof(uint16_t) * (size_t)n_out * (size_t)taps);
    return align16(2 * sizeof(int32_t) * (size_t)n_out) + w + (pairs ? 2 * w : 0);
}
static unsigned char *axis_place(posetok_area_axis *ax, int n_out, int taps, int pairs,
                                 unsigned char *mem) {
    ax->taps = taps;
    ax->first = (int32_t *)mem;
    ax->n = ax->first + n_out;
    ax->w = (uint16_t *)(mem + align16(2 * sizeof(int32_t) * (size_t)n_out));
    ax->w2 = pairs ? ax->w + align16(sizeof(uint16_t) * (size_t)n_out * (size_t)taps) / 2 : NULL;
    return mem + axis_bytes(n_out, taps, pairs);
}
static void axis_pairs(posetok_area_axis *ax) {
    for (size_t k = 0; k < (size_t)ax->n_out * ax->taps; ++k)
        ax->w2[2 * k] = ax->w2[2 * k + 1] = ax->w[k];
}
static size_t acc_bytes(const area_plane *p, int count, int taps) {
    return align16(sizeof(uint16_t) * (size_t)(count + taps) * (size_t)p->c);
}

/* The columns outside the frame hold 256 * fill for good (every output row's
 * weights sum to 256), the padding after the row zeros. */
static void acc_init(area_plane *p) {
    const int c = p->c, count = p->x.count;
    const int kin0 = p->x.g0 < 0 ? -p->x.g0 : 0;
    const int kin1 = p->gw - p->x.g0 < count ? p->gw - p->x.g0 : count;
    for (int k = 0; k < count; ++k)
        if (k < kin0 || k >= kin1)
            for (int i = 0; i < c; ++i) p->acc[k * c + i] = (uint16_t)(POSETOK_AREA_ONE * p->fill);
    for (int k = count * c; k < (count + p->x.taps) * c; ++k) p->acc[k] = 0;
}

/* The vertical sums of output row i into p->acc (columns inside the frame). */
static void vertical_pass(const posetok_area_rows *rows, area_plane *p, int i) {
    const int kin0 = p->x.g0 < 0 ? -p->x.g0 : 0;
    const int kin1 = p->gw - p->x.g0 < p->x.count ? p->gw - p->x.g0 : p->x.count;
    if (kin1 <= kin0) return;
    const int ga = p->y.g0 + p->y.first[i], n = p->y.n[i];
    const uint16_t *w = p->y.w + (size_t)i * p->y.taps;
    const int r0 = ga < 0 ? 0 : ga, r1 = ga + n < p->gh ? ga + n : p->gh;
    unsigned outside = 0;
    for (int t = 0; t < n; ++t)
        if (ga + t < 0 || ga + t >= p->gh) outside += w[t];
    const int n_in = r1 > r0 ? r1 - r0 : 0;
    const uint8_t *src =
        n_in ? p->src + (ptrdiff_t)r0 * p->stride + (ptrdiff_t)(p->x.g0 + kin0) * p->c : p->src;
    rows->vertical(src, p->stride, n_in ? w + (r0 - ga) : w, n_in, outside * (unsigned)p->fill,
                   p->acc + (size_t)kin0 * p->c, (kin1 - kin0) * p->c);
}

int posetok_area_plane(const posetok_area_rows *rows, const posetok_area_job *j) {
    const int ow = j->out_w, oh = j->out_h, out_c = j->channels;
    const int planes = j->yuv && out_c == 3 ? 2 : 1;
    area_plane p[2];
    p[0] = (area_plane){.src = j->plane[0],
                        .stride = j->stride[0],
                        .gw = j->width,
                        .gh = j->height,
                        .c = j->yuv ? 1 : out_c,
                        .fill = j->yuv && j->range == POSETOK_YUV_RANGE_VIDEO ? 16 : 0};
    p[1] = (area_plane){.src = j->plane[1],
                        .stride = j->stride[1],
                        .gw = j->width / 2,
                        .gh = j->height / 2,
                        .c = 2,
                        .fill = POSETOK_YUV_CHROMA_ZERO};
    int tx[2], ty[2];
    size_t total = 0;
    for (int q = 0; q < planes; ++q) {
        const int s = q ? 2 : 1;
        tx[q] = axis_taps(j->box_x, j->box_w, s, ow);
        ty[q] = axis_taps(j->box_y, j->box_h, s, oh);
        const int count =
            (int)(ceil_div((long long)j->box_x + j->box_w, s) - floor_div(j->box_x, s));
        total +=
            axis_bytes(ow, tx[q], q) + axis_bytes(oh, ty[q], 0) + acc_bytes(&p[q], count, tx[q]);
    }
    const size_t rows_at = total;
    /* luma row, chroma row, and the u8 image when dst_u8 is NULL (output sized) */
    total += 2 * align16((size_t)ow * 2) + (j->dst_u8 ? 0 : (size_t)ow * oh * out_c);
    unsigned char *mem = malloc(total), *at = mem;
    if (!mem) return POSETOK_ERR_NO_MEMORY;
    for (int q = 0; q < planes; ++q) {
        const int s = q ? 2 : 1;
        at = axis_place(&p[q].x, ow, tx[q], q, at);
        at = axis_place(&p[q].y, oh, ty[q], 0, at);
        axis_fill(&p[q].x, j->box_x, j->box_w, s, ow);
        if (q) axis_pairs(&p[q].x);
        /* a square box to a square output: the y taps are the x taps (chroma:
         * when x and y have the same parity) */
        if (j->box_w == j->box_h && ow == oh && (s == 1 || (j->box_x - j->box_y) % 2 == 0)) {
            const posetok_area_axis x = p[q].x;
            p[q].y.n_out = x.n_out, p[q].y.count = x.count;
            p[q].y.first = x.first, p[q].y.n = x.n, p[q].y.w = x.w;
            p[q].y.g0 = (int)floor_div(j->box_y, s);
        } else {
            axis_fill(&p[q].y, j->box_y, j->box_h, s, oh);
        }
        p[q].acc = (uint16_t *)at;
        at += acc_bytes(&p[q], p[q].x.count, tx[q]);
        acc_init(&p[q]);
    }
    uint8_t *row0 = mem + rows_at, *row1 = row0 + align16((size_t)ow * 2);
    uint8_t *img = j->dst_u8 ? j->dst_u8 : row1 + align16((size_t)ow * 2);

    for (int i = 0; i < oh; ++i) {
        uint8_t *px = img + (size_t)i * ow * out_c;
        for (int q = 0; q < planes; ++q) {
            vertical_pass(rows, &p[q], i);
            rows->horizontal(p[q].acc, &p[q].x, p[q].c, j->yuv ? (q ? row1 : row0) : px);
        }
        if (j->yuv) rows->yuv(row0, row1, px, ow, out_c, j->u_first, j->range);
    }
    if (j->dst_f32)
        rows->normalize(img, ow * out_c, ow, oh, out_c, j->mean, j->scale, j->dst_f32, ow);
    free(mem);
    return POSETOK_OK;
}

/* ---- entry points ----------------------------------------------------------- */
posetok_area_job posetok_area_yuv_job(const uint8_t *y, int y_stride, const uint8_t *chroma,
                                      int chroma_stride, int width, int height, int chroma_order,
                                      int range, int box_x, int box_y, int box_w, int box_h,
                                      int out_w, int out_h, int channels, const float *mean,
                                      const float *scale, float *dst_f32, uint8_t *dst_u8) {
    posetok_area_job j = {{y, chroma},  {y_stride, chroma_stride},
                          width,        height,
                          channels,     1,
                          chroma_order, range,
                          box_x,        box_y,
                          box_w,        box_h,
                          out_w,        out_h,
                          mean,         scale,
                          dst_f32,      dst_u8};
    return j;
}

posetok_area_job posetok_area_packed_job(const uint8_t *src, int src_stride, int width, int height,
                                         int channels, int box_x, int box_y, int box_w, int box_h,
                                         int out_w, int out_h, const float *mean,
                                         const float *scale, float *dst_f32, uint8_t *dst_u8) {
    posetok_area_job j = {{src, NULL}, {src_stride, 0}, width,   height, channels, 0,     0,
                          0,           box_x,           box_y,   box_w,  box_h,    out_w, out_h,
                          mean,        scale,           dst_f32, dst_u8};
    return j;
}

static const posetok_area_rows ROWS_REF = {posetok_area_vertical_ref, posetok_area_horizontal_ref,
                                           posetok_area_yuv_ref, posetok_normalize_u8_f32_chw_ref};

int posetok_crop_area_yuv420sp_u8_ref(const uint8_t *y, int y_stride, const uint8_t *chroma,
                                      int chroma_stride, int width, int height, int chroma_order,
                                      int range, int box_x, int box_y, int box_w, int box_h,
                                      int out_w, int out_h, int channels, const float *mean,
                                      const float *scale, float *dst_f32, uint8_t *dst_u8) {
    const posetok_area_job j = posetok_area_yuv_job(
        y, y_stride, chroma, chroma_stride, width, height, chroma_order, range, box_x, box_y, box_w,
        box_h, out_w, out_h, channels, mean, scale, dst_f32, dst_u8);
    const int status = posetok_check_crop_yuv(&j);
    return status ? status : posetok_area_plane(&ROWS_REF, &j);
}

int posetok_crop_area_u8_ref(const uint8_t *src, int src_stride, int width, int height,
                             int channels, int box_x, int box_y, int box_w, int box_h, int out_w,
                             int out_h, const float *mean, const float *scale, float *dst_f32,
                             uint8_t *dst_u8) {
    const posetok_area_job j =
        posetok_area_packed_job(src, src_stride, width, height, channels, box_x, box_y, box_w,
                                box_h, out_w, out_h, mean, scale, dst_f32, dst_u8);
    const int status = posetok_check_crop_packed(&j);
    return status ? status : posetok_area_plane(&ROWS_REF, &j);
}
