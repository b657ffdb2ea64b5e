/* Benchmark driver: runs one kernel ITERS times per repetition on a seeded
 * random frame and prints one JSON line
 *   {"kernel": ..., "impl": ..., "out_pixels": N, "ns_per_call": [rep, ...]}
 * Set-up (allocation, filling) happens before the first call, so an
 * instruction trace of a run with ITERS=0 measures everything except the
 * kernel calls; `posetok kernels-bench` subtracts it.
 *
 * usage: posetok_kernels_bench KERNEL ref|neon WIDTH HEIGHT ITERS [REPS]
 * kernels: see KERNELS below; WIDTH x HEIGHT is the source frame (for
 * downscale_uv2x2 the UV plane in pairs). crop_nv21_c3: the one-pass kernel on
 * a WIDTH x HEIGHT NV21 frame, square box of side HEIGHT*14/15 (448 at 480)
 * in the centre -> 3x64x64 f32 (ImageNet mean/scale); chain_nv21_c3: the same
 * through today's chain (gaussian3x3 on Y, nv21_to_rgb888, crop view,
 * resize_bilinear c3, normalize). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "posetok_kernels.h"

static const char *const KERNELS[] = {
    "nv21_to_rgb888",     "nv12_to_rgb888",     "downscale_uv2x2",  "gaussian3x3",
    "resize_bilinear_c1", "resize_bilinear_c3", "conv2d_3x3_c3_c8", "normalize_c3",
    "crop_nv21_c3",       "chain_nv21_c3"};

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static uint8_t *random_bytes(size_t n, uint32_t seed) {
    uint8_t *p = xmalloc(n);
    for (size_t i = 0; i < n; ++i) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (uint8_t)(seed >> 24);
    }
    return p;
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s KERNEL ref|neon WIDTH HEIGHT ITERS [REPS]\nkernels:", argv[0]);
        for (size_t i = 0; i < sizeof KERNELS / sizeof *KERNELS; ++i)
            fprintf(stderr, " %s", KERNELS[i]);
        fputc('\n', stderr);
        return 2;
    }
    const char *kernel = argv[1];
    const int neon = strcmp(argv[2], "neon") == 0;
    if (!neon && strcmp(argv[2], "ref") != 0) {
        fprintf(stderr, "impl must be ref or neon, not %s\n", argv[2]);
        return 2;
    }
    const int w = atoi(argv[3]), h = atoi(argv[4]), iters = atoi(argv[5]);
    const int reps = argc > 6 ? atoi(argv[6]) : 1;
    if (w < 8 || h < 8 || iters < 0 || reps < 1) {
        fprintf(stderr, "need WIDTH, HEIGHT >= 8, ITERS >= 0, REPS >= 1\n");
        return 2;
    }
    /* inputs big enough for any kernel: 3 bytes per pixel, plus f32 planes */
    uint8_t *src = random_bytes((size_t)w * h * 3, 12345u);
    uint8_t *src2 = random_bytes((size_t)w * h, 777u);
    uint8_t *dst = xmalloc((size_t)w * h * 3);
    float *fsrc = xmalloc(sizeof(float) * (size_t)w * h * 3);
    float *fdst = xmalloc(sizeof(float) * (size_t)w * h * 8);
    float weights[8 * 3 * 9], bias[8];
    for (size_t i = 0; i < (size_t)w * h * 3; ++i) fsrc[i] = src[i] / 255.0f - 0.5f;
    for (int i = 0; i < 8 * 3 * 9; ++i) weights[i] = (float)((i * 37) % 19 - 9) / 9.0f;
    for (int i = 0; i < 8; ++i) bias[i] = 0.01f * i;
    const float mean[3] = {123.675f, 116.28f, 103.53f};
    const float scale[3] = {1 / 58.395f, 1 / 57.12f, 1 / 57.375f};
    const int rw = w * 2 / 3, rh = h * 2 / 3;
    const int side = h * 14 / 15, bx = (w - side) / 2, by = (h - side) / 2, mo = 64;
    uint8_t *blur = xmalloc((size_t)w * h), *rgb = xmalloc((size_t)w * h * 3);

    long long out_pixels = (long long)w * h;
    if (!strcmp(kernel, "downscale_uv2x2"))
        out_pixels = (long long)(w / 2) * (h / 2);
    else if (!strncmp(kernel, "resize_bilinear", 15))
        out_pixels = (long long)rw * rh;
    else if (!strcmp(kernel, "crop_nv21_c3") || !strcmp(kernel, "chain_nv21_c3"))
        out_pixels = (long long)mo * mo;

    printf("{\"kernel\": \"%s\", \"impl\": \"%s\", \"width\": %d, \"height\": %d, "
           "\"out_pixels\": %lld, \"ns_per_call\": [",
           kernel, neon ? "neon" : "ref", w, h, out_pixels);
    for (int r = 0; r < reps; ++r) {
        int status = 0;
        const double t0 = now_ns();
        for (int i = 0; i < iters && status == 0; ++i) {
            if (!strcmp(kernel, "nv21_to_rgb888"))
                status = (neon ? posetok_nv21_to_rgb888_neon : posetok_nv21_to_rgb888_ref)(
                    src, w, src2, w + (w & 1), dst, 3 * w, w, h, POSETOK_YUV_RANGE_VIDEO);
            else if (!strcmp(kernel, "nv12_to_rgb888"))
                status = (neon ? posetok_nv12_to_rgb888_neon : posetok_nv12_to_rgb888_ref)(
                    src, w, src2, w + (w & 1), dst, 3 * w, w, h, POSETOK_YUV_RANGE_VIDEO);
            else if (!strcmp(kernel, "downscale_uv2x2"))
                status = (neon ? posetok_downscale_uv2x2_u8_neon : posetok_downscale_uv2x2_u8_ref)(
                    src, 2 * w, dst, w, w & ~1, h & ~1);
            else if (!strcmp(kernel, "gaussian3x3"))
                status = (neon ? posetok_gaussian3x3_u8_neon : posetok_gaussian3x3_u8_ref)(
                    src, w, dst, w, w, h, POSETOK_BORDER_REFLECT_101, 0);
            else if (!strcmp(kernel, "resize_bilinear_c1"))
                status = (neon ? posetok_resize_bilinear_u8_neon
                               : posetok_resize_bilinear_u8_ref)(src, w, w, h, dst, rw, rw, rh, 1);
            else if (!strcmp(kernel, "resize_bilinear_c3"))
                status = (neon ? posetok_resize_bilinear_u8_neon : posetok_resize_bilinear_u8_ref)(
                    src, 3 * w, w, h, dst, 3 * rw, rw, rh, 3);
            else if (!strcmp(kernel, "conv2d_3x3_c3_c8"))
                status = (neon ? posetok_conv2d_f32_neon : posetok_conv2d_f32_ref)(
                    fsrc, w, w, h, 3, weights, bias, 8, 3, 1, 1, fdst, w);
            else if (!strcmp(kernel, "normalize_c3"))
                status =
                    (neon ? posetok_normalize_u8_f32_chw_neon : posetok_normalize_u8_f32_chw_ref)(
                        src, 3 * w, w, h, 3, mean, scale, fdst, w);
            else if (!strcmp(kernel, "crop_nv21_c3"))
                status =
                    (neon ? posetok_crop_area_yuv420sp_u8_neon : posetok_crop_area_yuv420sp_u8_ref)(
                        src, w, src2, w, w & ~1, h & ~1, POSETOK_CHROMA_VU, POSETOK_YUV_RANGE_VIDEO,
                        bx, by, side, side, mo, mo, 3, mean, scale, fdst, NULL);
            else if (!strcmp(kernel, "chain_nv21_c3")) {
                status = (neon ? posetok_gaussian3x3_u8_neon : posetok_gaussian3x3_u8_ref)(
                    src, w, blur, w, w, h, POSETOK_BORDER_REFLECT_101, 0);
                if (!status)
                    status = (neon ? posetok_nv21_to_rgb888_neon : posetok_nv21_to_rgb888_ref)(
                        blur, w, src2, w + (w & 1), rgb, 3 * w, w, h, POSETOK_YUV_RANGE_VIDEO);
                if (!status)
                    status = (neon ? posetok_resize_bilinear_u8_neon
                                   : posetok_resize_bilinear_u8_ref)(
                        rgb + ((size_t)by * w + bx) * 3, 3 * w, side, side, dst, 3 * mo, mo, mo, 3);
                if (!status)
                    status = (neon ? posetok_normalize_u8_f32_chw_neon
                                   : posetok_normalize_u8_f32_chw_ref)(dst, 3 * mo, mo, mo, 3, mean,
                                                                       scale, fdst, mo);
            } else {
                fprintf(stderr, "\nunknown kernel %s\n", kernel);
                return 2;
            }
        }
        const double t1 = now_ns();
        if (status) {
            fprintf(stderr, "\n%s %s: %s\n", kernel, argv[2], posetok_kernels_strerror(status));
            return 1;
        }
        printf("%s%.0f", r ? ", " : "", iters ? (t1 - t0) / iters : 0.0);
    }
    printf("]}\n");
    free(src), free(src2), free(dst), free(fsrc), free(fdst), free(blur), free(rgb);
    return 0;
}
