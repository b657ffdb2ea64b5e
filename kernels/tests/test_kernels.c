/* C tests for libposetok_kernels.
 *  - every buffer sits between two PROT_NONE guard pages, placed once flush
 *    against the trailing guard page and once against the leading one, so any
 *    read or write outside the described rows faults;
 *  - stride padding is filled with a sentinel and must come back unchanged;
 *  - on aarch64 the NEON output must equal the reference byte for byte (floats:
 *    conv2d within 1e-5 of max|ref|, normalize bit-exact) for widths 1..67,
 *    heights 1..9 (even sizes for the 2x2 kernel), strides wider than the row,
 *    and 640x480 / 1920x1080; the crop kernels for every output size 1..67 x
 *    1..9 with boxes at odd coordinates, over each edge, wholly outside and
 *    smaller than the output (f32 and u8 outputs);
 *  - on every ISA the reference is checked against hand-computed values, and
 *    bad arguments must give their documented status without touching memory.
 * Exit status 0 = all passed. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "posetok_kernels.h"

static int failures;
static long checks;
#define CHECK(cond, ...)                                        \
    do {                                                        \
        ++checks;                                               \
        if (!(cond)) {                                          \
            if (failures++ < 30) {                              \
                fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
                fprintf(stderr, __VA_ARGS__);                   \
                fputc('\n', stderr);                            \
            }                                                   \
        }                                                       \
    } while (0)

/* ---- guarded buffers ---------------------------------------------------- */
typedef struct {
    uint8_t *map;
    size_t map_len;
    uint8_t *p; /* the buffer */
    size_t len;
} guarded;

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* len bytes between guard pages; at_end: the buffer ends where the trailing
 * guard page starts, else it starts where the leading guard page ends. */
static guarded guarded_alloc(size_t len, int at_end) {
    const size_t pg = page_size();
    const size_t body = (len + pg - 1) / pg * pg + pg;
    guarded g;
    g.map_len = body + 2 * pg;
    g.map = mmap(NULL, g.map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g.map == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    mprotect(g.map, pg, PROT_NONE);
    mprotect(g.map + pg + body, pg, PROT_NONE);
    g.p = at_end ? g.map + pg + body - len : g.map + pg;
    g.len = len;
    return g;
}

static void guarded_free(guarded *g) { munmap(g->map, g->map_len); }

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static void fill_random(uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; ++i) p[i] = (uint8_t)rnd();
}
static float rnd_float(void) { return (float)(rnd() % 20001) / 10000.0f - 1.0f; }

/* Bytes an image of `rows` rows of `row_bytes` needs with `stride` (no padding
 * after the last row, so it touches the guard page). */
static size_t image_bytes(int rows, int row_bytes, int stride) {
    return (size_t)(rows - 1) * (size_t)stride + (size_t)row_bytes;
}

#define SENTINEL 0xA5
/* Fills stride padding with SENTINEL. */
static void fill_padding(uint8_t *p, int rows, int row_bytes, int stride) {
    for (int r = 0; r + 1 < rows; ++r)
        memset(p + (size_t)r * stride + row_bytes, SENTINEL, (size_t)(stride - row_bytes));
}
static int padding_intact(const uint8_t *p, int rows, int row_bytes, int stride) {
    for (int r = 0; r + 1 < rows; ++r)
        for (int i = row_bytes; i < stride; ++i)
            if (p[(size_t)r * stride + i] != SENTINEL) return 0;
    return 1;
}
/* First differing row/column of two strided u8 images, or -1. */
static long first_diff(const uint8_t *a, const uint8_t *b, int rows, int row_bytes, int stride) {
    for (int r = 0; r < rows; ++r)
        for (int i = 0; i < row_bytes; ++i)
            if (a[(size_t)r * stride + i] != b[(size_t)r * stride + i]) return (long)r * 100000 + i;
    return -1;
}

/* ---- a u8 kernel case: one or two sources, one destination ---------------- */
typedef struct {
    int src_rows, src_row_bytes, src_stride;
    int src2_rows, src2_row_bytes, src2_stride; /* 0 rows: no second source */
    int dst_rows, dst_row_bytes, dst_stride;
} u8_shape;

typedef int (*u8_runner)(int impl, const uint8_t *s, const uint8_t *s2, uint8_t *d,
                         const u8_shape *sh, const int *params);

/* Runs ref (and NEON where available) on guarded buffers at both placements;
 * checks statuses, padding and byte equality. */
static void check_u8_case(const char *name, u8_runner run, const u8_shape *sh, const int *params) {
    for (int at_end = 0; at_end < 2; ++at_end) {
        guarded s =
            guarded_alloc(image_bytes(sh->src_rows, sh->src_row_bytes, sh->src_stride), at_end);
        guarded s2 = guarded_alloc(
            sh->src2_rows ? image_bytes(sh->src2_rows, sh->src2_row_bytes, sh->src2_stride) : 1,
            at_end);
        const size_t dlen = image_bytes(sh->dst_rows, sh->dst_row_bytes, sh->dst_stride);
        guarded d_ref = guarded_alloc(dlen, at_end), d_neon = guarded_alloc(dlen, at_end);
        fill_random(s.p, s.len);
        fill_random(s2.p, s2.len);
        memset(d_ref.p, 0x5A, dlen);
        memset(d_neon.p, 0x3C, dlen);
        fill_padding(d_ref.p, sh->dst_rows, sh->dst_row_bytes, sh->dst_stride);
        fill_padding(d_neon.p, sh->dst_rows, sh->dst_row_bytes, sh->dst_stride);
        int st = run(0, s.p, s2.p, d_ref.p, sh, params);
        CHECK(st == 0, "%s ref: status %d (%s)", name, st, posetok_kernels_strerror(st));
        CHECK(padding_intact(d_ref.p, sh->dst_rows, sh->dst_row_bytes, sh->dst_stride),
              "%s ref wrote into stride padding", name);
        if (posetok_kernels_have_neon()) {
            st = run(1, s.p, s2.p, d_neon.p, sh, params);
            CHECK(st == 0, "%s neon: status %d", name, st);
            CHECK(padding_intact(d_neon.p, sh->dst_rows, sh->dst_row_bytes, sh->dst_stride),
                  "%s neon wrote into stride padding", name);
            long diff =
                first_diff(d_ref.p, d_neon.p, sh->dst_rows, sh->dst_row_bytes, sh->dst_stride);
            CHECK(diff < 0, "%s: neon != ref at row %ld byte %ld (dst %d rows x %d bytes)", name,
                  diff / 100000, diff % 100000, sh->dst_rows, sh->dst_row_bytes);
        }
        guarded_free(&s), guarded_free(&s2), guarded_free(&d_ref), guarded_free(&d_neon);
    }
}

/* ---- runners (impl 0 = ref, 1 = neon); params documented per runner ---- */
static int run_yuv(int impl, const uint8_t *s, const uint8_t *s2, uint8_t *d, const u8_shape *sh,
                   const int *p) { /* p: width, height, range, nv12 */
    if (p[3])
        return (impl ? posetok_nv12_to_rgb888_neon : posetok_nv12_to_rgb888_ref)(
            s, sh->src_stride, s2, sh->src2_stride, d, sh->dst_stride, p[0], p[1], p[2]);
    return (impl ? posetok_nv21_to_rgb888_neon : posetok_nv21_to_rgb888_ref)(
        s, sh->src_stride, s2, sh->src2_stride, d, sh->dst_stride, p[0], p[1], p[2]);
}
static int run_uv(int impl, const uint8_t *s, const uint8_t *s2, uint8_t *d, const u8_shape *sh,
                  const int *p) { /* p: width, height (in pairs) */
    (void)s2;
    return (impl ? posetok_downscale_uv2x2_u8_neon : posetok_downscale_uv2x2_u8_ref)(
        s, sh->src_stride, d, sh->dst_stride, p[0], p[1]);
}
static int run_gauss(int impl, const uint8_t *s, const uint8_t *s2, uint8_t *d, const u8_shape *sh,
                     const int *p) { /* p: width, height, border, value */
    (void)s2;
    return (impl ? posetok_gaussian3x3_u8_neon : posetok_gaussian3x3_u8_ref)(
        s, sh->src_stride, d, sh->dst_stride, p[0], p[1], p[2], p[3]);
}
static int run_resize(int impl, const uint8_t *s, const uint8_t *s2, uint8_t *d, const u8_shape *sh,
                      const int *p) { /* p: sw, sh, dw, dh, channels */
    (void)s2;
    return (impl ? posetok_resize_bilinear_u8_neon : posetok_resize_bilinear_u8_ref)(
        s, sh->src_stride, p[0], p[1], d, sh->dst_stride, p[2], p[3], p[4]);
}

static void yuv_case(int w, int h, int pad, int range, int nv12) {
    const int cw = 2 * ((w + 1) / 2), ch = (h + 1) / 2;
    u8_shape sh = {h, w, w + pad, ch, cw, cw + pad, h, 3 * w, 3 * w + pad};
    int p[4] = {w, h, range, nv12};
    check_u8_case(nv12 ? "nv12_to_rgb888" : "nv21_to_rgb888", run_yuv, &sh, p);
}
static void uv_case(int w, int h, int pad) {
    u8_shape sh = {h, 2 * w, 2 * w + pad, 0, 0, 0, h / 2, w, w + pad};
    int p[2] = {w, h};
    check_u8_case("downscale_uv2x2", run_uv, &sh, p);
}
static void gauss_case(int w, int h, int pad, int border) {
    u8_shape sh = {h, w, w + pad, 0, 0, 0, h, w, w + pad};
    int p[4] = {w, h, border, border == POSETOK_BORDER_CONSTANT ? 77 : 0};
    check_u8_case("gaussian3x3", run_gauss, &sh, p);
}
static void resize_case(int sw, int sh_, int dw, int dh, int c, int pad) {
    u8_shape sh = {sh_, sw * c, sw * c + pad, 0, 0, 0, dh, dw * c, dw * c + pad};
    int p[5] = {sw, sh_, dw, dh, c};
    check_u8_case("resize_bilinear", run_resize, &sh, p);
}

/* ---- float kernels -------------------------------------------------------- */
static void conv_case(int w, int h, int in_c, int out_c, int k, int stride, int pad, int spad,
                      int with_bias) {
    const int ow = (w + 2 * pad - k) / stride + 1, oh = (h + 2 * pad - k) / stride + 1;
    if (w + 2 * pad < k || h + 2 * pad < k || pad >= k) return;
    const int ss = w + spad, ds = ow + spad;
    for (int at_end = 0; at_end < 2; ++at_end) {
        guarded s = guarded_alloc(sizeof(float) * ((size_t)(in_c * h - 1) * ss + w), at_end);
        guarded wt = guarded_alloc(sizeof(float) * (size_t)(out_c * in_c * k * k), at_end);
        guarded b = guarded_alloc(sizeof(float) * (size_t)out_c, at_end);
        const size_t dn = (size_t)(out_c * oh - 1) * ds + ow;
        guarded d0 = guarded_alloc(sizeof(float) * dn, at_end);
        guarded d1 = guarded_alloc(sizeof(float) * dn, at_end);
        float *sp = (float *)s.p, *wp = (float *)wt.p, *bp = (float *)b.p;
        for (size_t i = 0; i < s.len / 4; ++i) sp[i] = rnd_float();
        for (size_t i = 0; i < wt.len / 4; ++i) wp[i] = rnd_float();
        for (size_t i = 0; i < b.len / 4; ++i) bp[i] = rnd_float();
        memset(d0.p, 0, d0.len);
        memset(d1.p, 0, d1.len);
        int st = posetok_conv2d_f32_ref(sp, ss, w, h, in_c, wp, with_bias ? bp : NULL, out_c, k,
                                        stride, pad, (float *)d0.p, ds);
        CHECK(st == 0, "conv2d ref status %d", st);
        if (posetok_kernels_have_neon()) {
            st = posetok_conv2d_f32_neon(sp, ss, w, h, in_c, wp, with_bias ? bp : NULL, out_c, k,
                                         stride, pad, (float *)d1.p, ds);
            CHECK(st == 0, "conv2d neon status %d", st);
            const float *r = (const float *)d0.p, *n = (const float *)d1.p;
            float maxabs = 0, maxerr = 0;
            for (size_t i = 0; i < dn; ++i) {
                maxabs = fmaxf(maxabs, fabsf(r[i]));
                maxerr = fmaxf(maxerr, fabsf(r[i] - n[i]));
            }
            CHECK(maxerr <= 1e-5f * fmaxf(maxabs, 1e-30f),
                  "conv2d %dx%d c%d->%d k%d s%d p%d: max err %g vs max|ref| %g", w, h, in_c, out_c,
                  k, stride, pad, maxerr, maxabs);
        }
        guarded_free(&s), guarded_free(&wt), guarded_free(&b), guarded_free(&d0), guarded_free(&d1);
    }
}

/* mean/scale sets, for the NEON version's three paths: 0 the ImageNet values
 * (multiples of 2^-16: Q16 path), 1 means that are not multiples of 2^-23 or
 * outside [0, 255.99] (generic path), 2 Q16 edges: means 0, 255, 255 - 2^-16
 * and an integer mean (x - mean = +0) with negative scales (-0 results), 3
 * scale 0 (Q16) then a scale whose 2^-16 multiple is subnormal (generic from 2
 * channels on), 4 multiples of 2^-23 that are not multiples of 2^-16 (Q23
 * path: rounded x - mean), with 255.99, near its largest mean */
#define NORM_SETS 5
static const float NORM_MEAN[NORM_SETS][4] = {{123.675f, 116.28f, 103.53f, 50.0f},
                                              {0.1f, 127.3f, -3.0f, 255.5f},
                                              {17.0f, 255.0f, 0.0f, 254.9999847f},
                                              {10.0f, 20.5f, 30.25f, 40.0f},
                                              {123.775f, 1.1f, 255.99f, 0.75f}};
static const float NORM_SCALE[NORM_SETS][4] = {{1 / 58.395f, 1 / 57.12f, 1 / 57.375f, 0.5f},
                                               {3.0f, -0.02f, 1 / 57.0f, 1e-3f},
                                               {-0.25f, 0.5f, -1.0f, 3.0f},
                                               {0.0f, 1e-36f, 2.0f, -3.0f},
                                               {1 / 58.395f, -2.5f, 0.01f, 1e3f}};

static void normalize_case(int w, int h, int c, int spad, int dpad, int set) {
    const int ss = w * c + spad, ds = w + dpad;
    const float *mean = NORM_MEAN[set], *scale = NORM_SCALE[set];
    for (int at_end = 0; at_end < 2; ++at_end) {
        guarded s = guarded_alloc(image_bytes(h, w * c, ss), at_end);
        const size_t dn = (size_t)(c * h - 1) * ds + w;
        guarded d0 = guarded_alloc(sizeof(float) * dn, at_end);
        guarded d1 = guarded_alloc(sizeof(float) * dn, at_end);
        fill_random(s.p, s.len);
        memset(d0.p, 0, d0.len);
        memset(d1.p, 0, d1.len);
        int st = posetok_normalize_u8_f32_chw_ref(s.p, ss, w, h, c, mean, scale, (float *)d0.p, ds);
        CHECK(st == 0, "normalize ref status %d", st);
        if (posetok_kernels_have_neon()) {
            st =
                posetok_normalize_u8_f32_chw_neon(s.p, ss, w, h, c, mean, scale, (float *)d1.p, ds);
            CHECK(st == 0, "normalize neon status %d", st);
            CHECK(memcmp(d0.p, d1.p, d0.len) == 0, "normalize %dx%d c%d set %d: neon != ref bits",
                  w, h, c, set);
        }
        guarded_free(&s), guarded_free(&d0), guarded_free(&d1);
    }
}

/* ---- reference values computed by hand ---------------------------------- */
static void known_values(void) {
    /* Gaussian of a single bright pixel = the kernel itself, rounded. */
    uint8_t img[25] = {0}, out[25];
    img[12] = 160;
    CHECK(posetok_gaussian3x3_u8_ref(img, 5, out, 5, 5, 5, POSETOK_BORDER_REFLECT_101, 0) == 0,
          "gaussian status");
    const uint8_t want[9] = {10, 20, 10, 20, 40, 20, 10, 20, 10};
    for (int i = 0; i < 9; ++i)
        CHECK(out[(1 + i / 3) * 5 + 1 + i % 3] == want[i], "gaussian impulse tap %d = %d", i,
              out[(1 + i / 3) * 5 + 1 + i % 3]);
    /* Constant border 255 on a black 1x1 image: (12*255 + 4*0 + 8) >> 4 = 191. */
    uint8_t one = 0, one_out = 0;
    posetok_gaussian3x3_u8_ref(&one, 1, &one_out, 1, 1, 1, POSETOK_BORDER_CONSTANT, 255);
    CHECK(one_out == 191, "gaussian constant border: %d", one_out);
    /* BT.601: video-range white/black/grey, full-range red. */
    uint8_t y[2] = {235, 16}, vu[2] = {128, 128}, rgb[6];
    posetok_nv21_to_rgb888_ref(y, 2, vu, 2, rgb, 6, 2, 1, POSETOK_YUV_RANGE_VIDEO);
    CHECK(rgb[0] == 255 && rgb[1] == 255 && rgb[2] == 255, "video white -> %d %d %d", rgb[0],
          rgb[1], rgb[2]);
    CHECK(rgb[3] == 0 && rgb[4] == 0 && rgb[5] == 0, "video black -> %d %d %d", rgb[3], rgb[4],
          rgb[5]);
    /* full-range pure red R=255,G=0,B=0: Y=76, U=85, V=255 */
    uint8_t yr[1] = {76}, uvr[2] = {85, 255};
    posetok_nv12_to_rgb888_ref(yr, 1, uvr, 2, rgb, 3, 1, 1, POSETOK_YUV_RANGE_FULL);
    CHECK(rgb[0] >= 253 && rgb[1] <= 2 && rgb[2] <= 2, "full red -> %d %d %d", rgb[0], rgb[1],
          rgb[2]);
    /* UV 2x2: (1 + 2 + 3 + 4 + 2) >> 2 = 3 and (10 + 11 + 10 + 12 + 2) >> 2 = 11 */
    uint8_t uv[8] = {1, 10, 2, 11, 3, 10, 4, 12}, uvo[2];
    posetok_downscale_uv2x2_u8_ref(uv, 4, uvo, 2, 2, 2);
    CHECK(uvo[0] == 3 && uvo[1] == 11, "uv2x2 -> %d %d", uvo[0], uvo[1]);
    /* Resize 2 -> 4 (half-pixel centres): 0,255 -> 0, 64, 191, 255 */
    uint8_t r2[2] = {0, 255}, r4[4];
    posetok_resize_bilinear_u8_ref(r2, 2, 2, 1, r4, 4, 4, 1, 1);
    CHECK(r4[0] == 0 && r4[1] == 64 && r4[2] == 191 && r4[3] == 255, "resize 2->4: %d %d %d %d",
          r4[0], r4[1], r4[2], r4[3]);
    /* conv: 3x3 ones kernel, pad 1, on a 2x2 ones image = 4 everywhere, + bias */
    float ci[4] = {1, 1, 1, 1}, cw[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, cb = 0.5f, co[4];
    posetok_conv2d_f32_ref(ci, 2, 2, 2, 1, cw, &cb, 1, 3, 1, 1, co, 2);
    for (int i = 0; i < 4; ++i) CHECK(co[i] == 4.5f, "conv ones[%d] = %g", i, co[i]);
}

/* ---- bad arguments: documented status, nothing touched ------------------- */
static void bad_arguments(void) {
    uint8_t src[64], dst[64];
    float f[64], fo[64];
    memset(dst, 0x11, sizeof dst);
    const float m[4] = {0}, s[4] = {1, 1, 1, 1};
    for (int impl = 0; impl < 3; ++impl) {
        /* impl 0 = dispatched, 1 = ref, 2 = neon (skipped where not built) */
        if (impl == 2 && !posetok_kernels_have_neon()) {
            CHECK(posetok_gaussian3x3_u8_neon(src, 8, dst, 8, 8, 8, 0, 0) == POSETOK_ERR_NO_NEON,
                  "neon stub must report NO_NEON");
            continue;
        }
#define G                                     \
    (impl == 0   ? posetok_gaussian3x3_u8     \
     : impl == 1 ? posetok_gaussian3x3_u8_ref \
                 : posetok_gaussian3x3_u8_neon)
#define UV                                        \
    (impl == 0   ? posetok_downscale_uv2x2_u8     \
     : impl == 1 ? posetok_downscale_uv2x2_u8_ref \
                 : posetok_downscale_uv2x2_u8_neon)
#define NV                                    \
    (impl == 0   ? posetok_nv21_to_rgb888     \
     : impl == 1 ? posetok_nv21_to_rgb888_ref \
                 : posetok_nv21_to_rgb888_neon)
#define RS                                        \
    (impl == 0   ? posetok_resize_bilinear_u8     \
     : impl == 1 ? posetok_resize_bilinear_u8_ref \
                 : posetok_resize_bilinear_u8_neon)
#define CV \
    (impl == 0 ? posetok_conv2d_f32 : impl == 1 ? posetok_conv2d_f32_ref : posetok_conv2d_f32_neon)
#define NZ                                          \
    (impl == 0   ? posetok_normalize_u8_f32_chw     \
     : impl == 1 ? posetok_normalize_u8_f32_chw_ref \
                 : posetok_normalize_u8_f32_chw_neon)
        CHECK(G(NULL, 8, dst, 8, 8, 8, 0, 0) == POSETOK_ERR_NULL_POINTER, "gauss null src");
        CHECK(G(src, 8, NULL, 8, 8, 8, 0, 0) == POSETOK_ERR_NULL_POINTER, "gauss null dst");
        CHECK(G(src, 8, dst, 8, 0, 8, 0, 0) == POSETOK_ERR_BAD_SIZE, "gauss zero width");
        CHECK(G(src, 8, dst, 8, 8, -3, 0, 0) == POSETOK_ERR_BAD_SIZE, "gauss negative height");
        CHECK(G(src, 7, dst, 8, 8, 8, 0, 0) == POSETOK_ERR_BAD_STRIDE, "gauss short src stride");
        CHECK(G(src, 8, dst, 7, 8, 8, 0, 0) == POSETOK_ERR_BAD_STRIDE, "gauss short dst stride");
        CHECK(G(src, 8, dst, 8, 8, 8, 3, 0) == POSETOK_ERR_BAD_OPTION, "gauss bad border");
        CHECK(G(src, 8, dst, 8, 8, 8, 2, 256) == POSETOK_ERR_BAD_OPTION, "gauss bad value");
        CHECK(UV(src, 8, dst, 4, 3, 2) == POSETOK_ERR_ODD_SIZE, "uv odd width");
        CHECK(UV(src, 8, dst, 4, 4, 3) == POSETOK_ERR_ODD_SIZE, "uv odd height");
        CHECK(UV(src, 7, dst, 4, 4, 2) == POSETOK_ERR_BAD_STRIDE, "uv short src stride");
        CHECK(UV(src, 8, dst, 3, 4, 2) == POSETOK_ERR_BAD_STRIDE, "uv short dst stride");
        CHECK(NV(src, 4, NULL, 4, dst, 12, 4, 2, 0) == POSETOK_ERR_NULL_POINTER, "nv21 null vu");
        CHECK(NV(src, 4, src, 4, dst, 12, 4, 2, 2) == POSETOK_ERR_BAD_OPTION, "nv21 bad range");
        CHECK(NV(src, 4, src, 3, dst, 12, 4, 2, 0) == POSETOK_ERR_BAD_STRIDE, "nv21 vu stride");
        CHECK(NV(src, 4, src, 4, dst, 11, 4, 2, 0) == POSETOK_ERR_BAD_STRIDE, "nv21 rgb stride");
        CHECK(RS(src, 8, 8, 8, dst, 4, 4, 4, 2) == POSETOK_ERR_BAD_OPTION, "resize 2 channels");
        CHECK(RS(src, 8, 8, 8, dst, 4, 0, 4, 1) == POSETOK_ERR_BAD_SIZE, "resize zero dst");
        CHECK(RS(src, 8, 8, 8, dst, 11, 4, 4, 3) == POSETOK_ERR_BAD_STRIDE, "resize dst stride");
        CHECK(CV(f, 4, 4, 4, 1, f, NULL, 1, 3, 0, 1, fo, 4) == POSETOK_ERR_BAD_OPTION,
              "conv stride 0");
        CHECK(CV(f, 4, 4, 4, 1, f, NULL, 1, 3, 1, 3, fo, 4) == POSETOK_ERR_BAD_OPTION,
              "conv pad >= k");
        CHECK(CV(f, 4, 2, 2, 1, f, NULL, 1, 3, 1, 0, fo, 4) == POSETOK_ERR_BAD_SIZE,
              "conv kernel larger than padded input");
        CHECK(CV(f, 4, 4, 4, 1, NULL, NULL, 1, 3, 1, 1, fo, 4) == POSETOK_ERR_NULL_POINTER,
              "conv null weight");
        CHECK(NZ(src, 12, 4, 4, 5, m, s, fo, 4) == POSETOK_ERR_BAD_OPTION, "normalize 5 ch");
        CHECK(NZ(src, 12, 4, 4, 3, NULL, s, fo, 4) == POSETOK_ERR_NULL_POINTER, "normalize mean");
        CHECK(NZ(src, 11, 4, 4, 3, m, s, fo, 4) == POSETOK_ERR_BAD_STRIDE, "normalize stride");
    }
    for (int i = 0; i < 64; ++i) CHECK(dst[i] == 0x11, "bad call wrote dst[%d]", i);
    for (int code = -8; code <= 0; ++code)
        CHECK(strcmp(posetok_kernels_strerror(code), "unknown status code") != 0,
              "strerror(%d) undocumented", code);
}

/* ---- crop + area downscale: two outputs (f32 CHW, u8 HWC), both compared ---- */
typedef struct {
    int w, h, pad;                  /* frame (even for YUV), extra stride bytes */
    int bx, by, bw, bh, ow, oh, ch; /* box, output size, output channels */
    int yuv, nv12, range;           /* yuv: NV21/NV12 + range, else packed ch bytes/px */
} crop_spec;

static int run_crop(int impl, const crop_spec *c, const uint8_t *a, int as, const uint8_t *b,
                    int bs, const float *m, const float *sc, float *f, uint8_t *u) {
    if (c->yuv)
        return (impl ? posetok_crop_area_yuv420sp_u8_neon : posetok_crop_area_yuv420sp_u8_ref)(
            a, as, b, bs, c->w, c->h, c->nv12, c->range, c->bx, c->by, c->bw, c->bh, c->ow, c->oh,
            c->ch, m, sc, f, u);
    return (impl ? posetok_crop_area_u8_neon : posetok_crop_area_u8_ref)(
        a, as, c->w, c->h, c->ch, c->bx, c->by, c->bw, c->bh, c->ow, c->oh, m, sc, f, u);
}

static void crop_case(const crop_spec *c) {
    const int px = c->yuv ? 1 : c->ch, as = c->w * px + c->pad, bs = c->w + c->pad;
    const size_t fn = (size_t)c->ch * c->oh * c->ow, un = fn;
    static const float mean[3] = {123.675f, 116.28f, 103.53f};
    static const float scale[3] = {1 / 58.395f, 1 / 57.12f, 1 / 57.375f};
    for (int at_end = 0; at_end < 2; ++at_end) {
        guarded a = guarded_alloc(image_bytes(c->h, c->w * px, as), at_end);
        guarded b = guarded_alloc(c->yuv ? image_bytes(c->h / 2, c->w, bs) : 1, at_end);
        guarded ms = guarded_alloc(6 * sizeof(float), at_end);
        guarded f[2], u[2];
        for (int i = 0; i < 2; ++i) {
            f[i] = guarded_alloc(fn * sizeof(float), at_end);
            u[i] = guarded_alloc(un, at_end);
            memset(f[i].p, 0x77 + i, f[i].len);
            memset(u[i].p, 0x33 + i, u[i].len);
        }
        fill_random(a.p, a.len);
        fill_random(b.p, b.len);
        float *m = (float *)ms.p;
        for (int i = 0; i < c->ch; ++i) m[i] = mean[i], m[3 + i] = scale[i];
        for (int impl = 0; impl < 1 + posetok_kernels_have_neon(); ++impl) {
            /* alternately both outputs, f32 only and u8 only */
            const int which = (c->ow + c->oh + at_end) % 3;
            float *fo = which == 2 ? NULL : (float *)f[impl].p;
            uint8_t *uo = which == 1 ? NULL : u[impl].p;
            int st = run_crop(impl, c, a.p, as, b.p, bs, m, m + 3, fo, uo);
            CHECK(st == 0, "crop %s: status %d (%s)", impl ? "neon" : "ref", st,
                  posetok_kernels_strerror(st));
            if (which != 0) { /* the other output is checked against a full run */
                st = run_crop(impl, c, a.p, as, b.p, bs, m, m + 3, (float *)f[impl].p, u[impl].p);
                CHECK(st == 0, "crop rerun status %d", st);
            }
        }
        if (posetok_kernels_have_neon()) {
            CHECK(memcmp(u[0].p, u[1].p, un) == 0 && memcmp(f[0].p, f[1].p, fn * 4) == 0,
                  "crop %s %dx%d box (%d,%d,%d,%d) -> %dx%d c%d range %d: neon != ref",
                  c->yuv ? (c->nv12 ? "nv12" : "nv21") : "packed", c->w, c->h, c->bx, c->by, c->bw,
                  c->bh, c->ow, c->oh, c->ch, c->range);
        }
        /* f32 = normalize(u8) bit for bit */
        const float *fr = (const float *)f[0].p;
        for (size_t i = 0; i < fn; ++i) {
            const size_t ci = i / ((size_t)c->oh * c->ow), pix = i % ((size_t)c->oh * c->ow);
            const float want = ((float)u[0].p[pix * c->ch + ci] - m[ci]) * m[3 + ci];
            if (fr[i] != want) {
                CHECK(0, "crop f32[%zu] = %g, normalize of its u8 = %g", i, fr[i], want);
                break;
            }
        }
        guarded_free(&a), guarded_free(&b), guarded_free(&ms);
        for (int i = 0; i < 2; ++i) guarded_free(&f[i]), guarded_free(&u[i]);
    }
}

/* Boxes for one output size: inside at odd coordinates, over the top-left and
 * the bottom-right edges, smaller than the output (upscale), wholly outside,
 * and the whole frame. */
static void crop_sweep_size(int ow, int oh, int pad) {
    const int w = 2 * (ow / 2 + 7), h = 2 * (oh + 3);
    const int boxes[6][4] = {{1, 1, w - 3, h - 2},         {-3, -2, w / 2 + 1, h / 2 + 3},
                             {w / 2 - 1, h / 2 + 1, w, h}, {3, 1, ow / 3 + 1, oh / 2 + 1},
                             {w + 5, -h - 3, 7, 5},        {0, 0, w, h}};
    for (int k = 0; k < 6; ++k) {
        crop_spec c = {w,  h,  pad, boxes[k][0], boxes[k][1],  boxes[k][2], boxes[k][3],
                       ow, oh, 3,   1,           (ow + k) % 2, (oh + k) % 2};
        crop_case(&c);
        if (k % 2 == 0) {
            c.ch = 1;
            crop_case(&c);
        }
        c.yuv = 0, c.ch = k % 2 ? 1 : 3, c.w = w - 1; /* packed: odd widths too */
        crop_case(&c);
    }
}

static void crop_known_values(void) {
    /* uniform frame Y=100, U=V=128 (video): grey (100*149 >> 1) - 1192 = 6258,
     * (6258 + 32) >> 6 = 98 everywhere, also for a box that overlaps the
     * frame by a fraction; the black outside mixes in by area. */
    uint8_t y[8 * 4], vu[8 * 2], out[4 * 2 * 3];
    memset(y, 100, sizeof y);
    memset(vu, 128, sizeof vu);
    int st = posetok_crop_area_yuv420sp_u8_ref(y, 8, vu, 8, 8, 4, POSETOK_CHROMA_VU,
                                               POSETOK_YUV_RANGE_VIDEO, 1, 1, 5, 3, 4, 2, 3, NULL,
                                               NULL, NULL, out);
    CHECK(st == 0, "crop known status %d", st);
    for (int i = 0; i < 24; ++i) CHECK(out[i] == 98, "crop uniform grey [%d] = %d", i, out[i]);
    /* half the box outside (black Y=16 -> 0): luma mean (100+16)/2 = 58 ->
     * (58*149 >> 1) - 1192 = 3129 -> 49 */
    st = posetok_crop_area_yuv420sp_u8_ref(y, 8, vu, 8, 8, 4, POSETOK_CHROMA_VU,
                                           POSETOK_YUV_RANGE_VIDEO, -8, 0, 16, 4, 1, 1, 1, NULL,
                                           NULL, NULL, out);
    CHECK(st == 0 && out[0] == 49, "crop half outside: status %d value %d", st, out[0]);
    /* wholly outside: black */
    st = posetok_crop_area_yuv420sp_u8_ref(y, 8, vu, 8, 8, 4, POSETOK_CHROMA_UV,
                                           POSETOK_YUV_RANGE_VIDEO, 100, -50, 3, 3, 2, 1, 3, NULL,
                                           NULL, NULL, out);
    CHECK(st == 0 && out[0] == 0 && out[1] == 0 && out[5] == 0, "crop outside: %d %d %d", out[0],
          out[1], out[5]);
    /* packed grey 1x3 row 0, 90, 255 -> 2 outputs: [0, 1.5) = (0*256 + 90*128)
     * / 384... in Q8: weights 171, 85 | 85+..: out0 = (0*171 + 90*85) = 7650 /256
     * = 29.88 -> 30, out1 = (90*85 + 255*171)/256 = 200.2 -> 200 (vertical weight 256) */
    const uint8_t g[3] = {0, 90, 255};
    float f[2];
    const float m1 = 10.0f, s1 = 0.5f;
    st = posetok_crop_area_u8_ref(g, 3, 3, 1, 1, 0, 0, 3, 1, 2, 1, &m1, &s1, f, out);
    CHECK(st == 0 && out[0] == 30 && out[1] == 200, "crop 3->2: %d %d", out[0], out[1]);
    CHECK(f[0] == 10.0f && f[1] == 95.0f, "crop 3->2 f32: %g %g", f[0], f[1]);
}

static void crop_bad_arguments(void) {
    uint8_t y[64] = {0}, c[32] = {0}, u8o[64];
    float f[64];
    const float m[3] = {0}, s[3] = {1, 1, 1};
    memset(u8o, 0x11, sizeof u8o);
    for (int impl = 0; impl < 3; ++impl) {
        if (impl == 2 && !posetok_kernels_have_neon()) {
            CHECK(posetok_crop_area_u8_neon(y, 8, 8, 8, 1, 0, 0, 8, 8, 2, 2, m, s, f, u8o) ==
                      POSETOK_ERR_NO_NEON,
                  "crop neon stub must report NO_NEON");
            continue;
        }
#define CY                                           \
    (impl == 0   ? posetok_crop_area_yuv420sp_u8     \
     : impl == 1 ? posetok_crop_area_yuv420sp_u8_ref \
                 : posetok_crop_area_yuv420sp_u8_neon)
#define CP                                  \
    (impl == 0   ? posetok_crop_area_u8     \
     : impl == 1 ? posetok_crop_area_u8_ref \
                 : posetok_crop_area_u8_neon)
        CHECK(CY(NULL, 8, c, 8, 8, 8, 0, 0, 0, 0, 8, 8, 2, 2, 3, m, s, f, u8o) ==
                  POSETOK_ERR_NULL_POINTER,
              "crop null y");
        CHECK(CY(y, 8, NULL, 8, 8, 8, 0, 0, 0, 0, 8, 8, 2, 2, 3, m, s, f, u8o) ==
                  POSETOK_ERR_NULL_POINTER,
              "crop null chroma with 3 channels");
        CHECK(CY(y, 8, c, 8, 8, 8, 0, 0, 0, 0, 8, 8, 2, 2, 3, m, s, NULL, NULL) ==
                  POSETOK_ERR_NULL_POINTER,
              "crop no output");
        CHECK(CY(y, 8, c, 8, 8, 8, 0, 0, 0, 0, 8, 8, 2, 2, 3, NULL, s, f, NULL) ==
                  POSETOK_ERR_NULL_POINTER,
              "crop f32 without mean");
        CHECK(CY(y, 8, c, 8, 7, 8, 0, 0, 0, 0, 8, 8, 2, 2, 3, m, s, f, u8o) == POSETOK_ERR_ODD_SIZE,
              "crop odd width");
        CHECK(CY(y, 8, c, 8, 8, 8, 0, 0, 0, 0, 0, 8, 2, 2, 3, m, s, f, u8o) == POSETOK_ERR_BAD_SIZE,
              "crop zero box");
        CHECK(CY(y, 8, c, 8, 8, 8, 0, 0, 0, 0, 8, 8, 2, -1, 3, m, s, f, u8o) ==
                  POSETOK_ERR_BAD_SIZE,
              "crop negative out");
        CHECK(CY(y, 8, c, 8, 8, 8, 2, 0, 0, 0, 8, 8, 2, 2, 3, m, s, f, u8o) ==
                  POSETOK_ERR_BAD_OPTION,
              "crop chroma order");
        CHECK(CY(y, 8, c, 8, 8, 8, 0, 5, 0, 0, 8, 8, 2, 2, 3, m, s, f, u8o) ==
                  POSETOK_ERR_BAD_OPTION,
              "crop range");
        CHECK(CY(y, 8, c, 8, 8, 8, 0, 0, 0, 0, 8, 8, 2, 2, 2, m, s, f, u8o) ==
                  POSETOK_ERR_BAD_OPTION,
              "crop 2 channels");
        CHECK(CY(y, 7, c, 8, 8, 8, 0, 0, 0, 0, 8, 8, 2, 2, 3, m, s, f, u8o) ==
                  POSETOK_ERR_BAD_STRIDE,
              "crop y stride");
        CHECK(CY(y, 8, c, 6, 8, 8, 0, 0, 0, 0, 8, 8, 2, 2, 3, m, s, f, u8o) ==
                  POSETOK_ERR_BAD_STRIDE,
              "crop chroma stride");
        CHECK(CY(y, 8, c, 8, 8, 8, 0, 0, 0, 0, 1 << 17, 8, 2, 2, 3, m, s, f, u8o) ==
                  POSETOK_ERR_TOO_LARGE,
              "crop huge box");
        CHECK(CY(y, 8, c, 8, 8, 8, 0, 0, 0x7fffff00, 0, 8, 8, 2, 2, 3, m, s, f, u8o) ==
                  POSETOK_ERR_TOO_LARGE,
              "crop box far away");
        CHECK(CP(y, 8, 8, 8, 4, 0, 0, 8, 8, 2, 2, m, s, f, u8o) == POSETOK_ERR_BAD_OPTION,
              "crop packed 4 channels");
        CHECK(CP(y, 23, 8, 2, 3, 0, 0, 8, 8, 2, 2, m, s, f, u8o) == POSETOK_ERR_BAD_STRIDE,
              "crop packed stride");
        CHECK(CP(y, 8, 8, 8, 1, 0, 0, 8, 8, 0, 2, m, s, f, u8o) == POSETOK_ERR_BAD_SIZE,
              "crop packed zero out");
    }
    for (int i = 0; i < 64; ++i) CHECK(u8o[i] == 0x11, "bad crop call wrote u8[%d]", i);
}

int main(int argc, char **argv) {
    /* argv[1] = "quick": skip the two big frames (for slow sanitizer builds) */
    const int quick = argc > 1 && strcmp(argv[1], "quick") == 0;
    known_values();
    bad_arguments();
    crop_known_values();
    crop_bad_arguments();
    for (int h = 1; h <= 9; ++h)
        for (int w = 1; w <= 67; ++w) {
            const int pad = (w * 7 + h) % 3 == 0 ? 0 : 1 + (w + h) % 13;
            for (int range = 0; range < 2; ++range)
                for (int nv12 = 0; nv12 < 2; ++nv12) yuv_case(w, h, pad, range, nv12);
            if (w % 2 == 0 && h % 2 == 0) uv_case(w, h, pad);
            for (int border = 0; border < 3; ++border) gauss_case(w, h, pad, border);
            for (int c = 1; c <= 3; c += 2) {
                resize_case(w * 3 + 1, h + 4, w, h, c, pad);         /* down */
                resize_case((w + 2) / 3, (h + 1) / 2, w, h, c, pad); /* up */
                resize_case(64 + w, 2 * h + 1, w, h, c, pad);        /* mixed */
            }
            for (int c = 1; c <= 4; ++c)
                for (int set = 0; set < NORM_SETS; ++set) normalize_case(w, h, c, pad, pad, set);
            const int k = 1 + 2 * ((w + h) % 3), stride = 1 + (w % 2);
            conv_case(w, h, 2, 5, k, stride, (w / 2) % k, pad, w % 3 != 0);
            crop_sweep_size(w, h, pad);
        }
    /* extreme downscale (scalar gather blocks) and 1-pixel sources */
    resize_case(1000, 3, 9, 2, 3, 0);
    resize_case(1, 1, 40, 3, 1, 0);
    if (!quick) {
        const int sizes[2][2] = {{640, 480}, {1920, 1080}};
        for (int i = 0; i < 2; ++i) {
            const int w = sizes[i][0], h = sizes[i][1];
            yuv_case(w, h, 0, 0, 0);
            yuv_case(w, h, 64, 1, 1);
            uv_case(w, h, 0);
            for (int border = 0; border < 3; ++border) gauss_case(w, h, border * 32, border);
            resize_case(w, h, w * 2 / 3, h * 2 / 3, 3, 0);
            resize_case(w, h, 224, 224, 1, 0);
            normalize_case(w, h, 3, 0, 0, 0);
            normalize_case(w, h, 3, 0, 0, 1);
            normalize_case(w, h, 3, 0, 0, 4);
        }
        conv_case(160, 120, 3, 8, 3, 1, 1, 0, 1);
        /* camera frames: the 448-px person box, boxes over the edges, large outputs */
        const crop_spec frames[] = {
            {640, 480, 0, 96, 16, 448, 448, 64, 64, 3, 1, 0, 0},
            {640, 480, 32, -51, 301, 333, 250, 67, 9, 3, 1, 1, 1},
            {640, 480, 0, 3, 1, 637, 479, 160, 120, 1, 1, 0, 0},
            {1920, 1080, 0, 420, 0, 1080, 1080, 64, 64, 3, 1, 0, 0},
            {1920, 1080, 64, 1501, 777, 511, 405, 192, 256, 3, 1, 1, 1},
            {1920, 1080, 0, -100, -60, 2200, 1300, 96, 54, 3, 0, 0, 0},
        };
        for (size_t i = 0; i < sizeof frames / sizeof *frames; ++i) crop_case(&frames[i]);
    }
    printf("test_kernels (%s): %ld checks, %d failures\n", posetok_kernels_isa(), checks, failures);
    return failures ? 1 : 0;
}
