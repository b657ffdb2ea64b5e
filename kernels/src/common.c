/* Status messages, build information and the argument checks every entry point
 * (dispatched, _ref, _neon) runs before touching memory. */
#include <limits.h>

#include "internal.h"

const char *posetok_kernels_strerror(int status) {
    switch (status) {
    case POSETOK_OK: return "ok";
    case POSETOK_ERR_NULL_POINTER: return "a required pointer is NULL";
    case POSETOK_ERR_BAD_SIZE: return "width, height, channel or kernel count must be positive";
    case POSETOK_ERR_BAD_STRIDE: return "a row stride is smaller than its row";
    case POSETOK_ERR_ODD_SIZE: return "a 2x2 layout needs even width and height";
    case POSETOK_ERR_BAD_OPTION:
        return "unsupported option (border mode, range, channel count, conv stride or padding)";
    case POSETOK_ERR_NO_MEMORY: return "scratch memory allocation failed";
    case POSETOK_ERR_NO_NEON: return "this library was built without NEON";
    case POSETOK_ERR_TOO_LARGE: return "a size overflows 31 bits";
    default: return "unknown status code";
    }
}

const char *posetok_kernels_isa(void) {
#if defined(__aarch64__)
    return "neon";
#else
    return "ref";
#endif
}

int posetok_kernels_have_neon(void) {
#if defined(__aarch64__)
    return 1;
#else
    return 0;
#endif
}

/* Row of `count` elements of `elem` bytes; stride counted in elements. */
static int check_plane(const void *p, int stride, long long count) {
    if (!p) return POSETOK_ERR_NULL_POINTER;
    if (count > INT_MAX) return POSETOK_ERR_TOO_LARGE;
    if (stride < count) return POSETOK_ERR_BAD_STRIDE;
    return POSETOK_OK;
}

/* Order of the checks: pointers, then sizes and options, then strides (so a
 * zero width is reported as a size problem, not as a stride problem). */
#define RETURN_IF(expr)              \
    do {                             \
        int status_ = (expr);        \
        if (status_) return status_; \
    } while (0)

int posetok_check_yuv(const uint8_t *y, int y_stride, const uint8_t *c, int c_stride,
                      const uint8_t *rgb, int rgb_stride, int width, int height, int range) {
    if (!y || !c || !rgb) return POSETOK_ERR_NULL_POINTER;
    if (width <= 0 || height <= 0) return POSETOK_ERR_BAD_SIZE;
    if (range != POSETOK_YUV_RANGE_VIDEO && range != POSETOK_YUV_RANGE_FULL)
        return POSETOK_ERR_BAD_OPTION;
    RETURN_IF(check_plane(y, y_stride, width));
    RETURN_IF(check_plane(c, c_stride, 2LL * ((width + 1) / 2)));
    RETURN_IF(check_plane(rgb, rgb_stride, 3LL * width));
    return POSETOK_OK;
}

int posetok_check_downscale_uv(const uint8_t *src, int src_stride, const uint8_t *dst,
                               int dst_stride, int width, int height) {
    if (!src || !dst) return POSETOK_ERR_NULL_POINTER;
    if (width <= 0 || height <= 0) return POSETOK_ERR_BAD_SIZE;
    if (width % 2 || height % 2) return POSETOK_ERR_ODD_SIZE;
    RETURN_IF(check_plane(src, src_stride, 2LL * width));
    RETURN_IF(check_plane(dst, dst_stride, width));
    return POSETOK_OK;
}

int posetok_check_gaussian(const uint8_t *src, int src_stride, const uint8_t *dst, int dst_stride,
                           int width, int height, int border, int border_value) {
    if (!src || !dst) return POSETOK_ERR_NULL_POINTER;
    if (width <= 0 || height <= 0) return POSETOK_ERR_BAD_SIZE;
    if (border != POSETOK_BORDER_REFLECT_101 && border != POSETOK_BORDER_REPLICATE &&
        border != POSETOK_BORDER_CONSTANT)
        return POSETOK_ERR_BAD_OPTION;
    if (border_value < 0 || border_value > 255) return POSETOK_ERR_BAD_OPTION;
    RETURN_IF(check_plane(src, src_stride, width));
    RETURN_IF(check_plane(dst, dst_stride, width));
    return POSETOK_OK;
}

int posetok_check_resize(const uint8_t *src, int src_stride, int src_width, int src_height,
                         const uint8_t *dst, int dst_stride, int dst_width, int dst_height,
                         int channels) {
    if (!src || !dst) return POSETOK_ERR_NULL_POINTER;
    if (src_width <= 0 || src_height <= 0 || dst_width <= 0 || dst_height <= 0 || channels <= 0)
        return POSETOK_ERR_BAD_SIZE;
    if (channels != 1 && channels != 3) return POSETOK_ERR_BAD_OPTION;
    /* posetok_resize_taps keeps (2x+1) * src_len * 65536 within int64 for any int sizes */
    RETURN_IF(check_plane(src, src_stride, (long long)src_width * channels));
    RETURN_IF(check_plane(dst, dst_stride, (long long)dst_width * channels));
    return POSETOK_OK;
}

int posetok_check_conv2d(const float *src, int src_stride, int in_width, int in_height, int in_c,
                         const float *weight, int out_c, int ksize, int stride, int pad,
                         const float *dst, int dst_stride) {
    if (!src || !weight || !dst) return POSETOK_ERR_NULL_POINTER;
    if (in_width <= 0 || in_height <= 0 || in_c <= 0 || out_c <= 0 || ksize <= 0)
        return POSETOK_ERR_BAD_SIZE;
    if (stride <= 0 || pad < 0 || pad >= ksize) return POSETOK_ERR_BAD_OPTION;
    if ((long long)in_width + 2LL * pad > INT_MAX / 2 ||
        (long long)in_height + 2LL * pad > INT_MAX / 2 ||
        (long long)out_c * in_c * ksize * ksize > INT_MAX)
        return POSETOK_ERR_TOO_LARGE;
    if (in_width + 2 * pad < ksize || in_height + 2 * pad < ksize) return POSETOK_ERR_BAD_SIZE;
    RETURN_IF(check_plane(src, src_stride, in_width));
    RETURN_IF(check_plane(dst, dst_stride, posetok_conv_out_len(in_width, ksize, stride, pad)));
    if ((long long)src_stride * in_height * in_c > INT_MAX) return POSETOK_ERR_TOO_LARGE;
    return POSETOK_OK;
}

int posetok_check_normalize(const uint8_t *src, int src_stride, int width, int height, int channels,
                            const float *mean, const float *scale, const float *dst,
                            int dst_stride) {
    if (!src || !mean || !scale || !dst) return POSETOK_ERR_NULL_POINTER;
    if (width <= 0 || height <= 0 || channels <= 0) return POSETOK_ERR_BAD_SIZE;
    if (channels > 4) return POSETOK_ERR_BAD_OPTION;
    RETURN_IF(check_plane(src, src_stride, (long long)width * channels));
    RETURN_IF(check_plane(dst, dst_stride, width));
    if ((long long)dst_stride * height * channels > INT_MAX) return POSETOK_ERR_TOO_LARGE;
    return POSETOK_OK;
}
