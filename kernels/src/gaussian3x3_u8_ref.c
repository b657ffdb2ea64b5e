/* 3x3 Gaussian [1 2 1]x[1 2 1]/16 with (acc + 8) >> 4: the C row (the
 * specification) and the plane loop that the reference and the NEON entry
 * points share. The plane loop resolves the vertical border (which source rows
 * are above and below, or a constant row), the row the horizontal one. */
#include "internal.h"

/* Index of the neighbour outside [0, len) for reflect-101 / replicate. */
static inline int border_index(int i, int len, int border) {
    if (i >= 0 && i < len) return i;
    if (len == 1) return 0;
    if (border == POSETOK_BORDER_REFLECT_101) return i < 0 ? 1 : len - 2;
    return i < 0 ? 0 : len - 1; /* replicate */
}

/* Source rows above and below output row y; NULL = a constant row. */
static void rows_around(const uint8_t *src, int src_stride, int height, int y, int border,
                        const uint8_t **top, const uint8_t **bottom) {
    if (border == POSETOK_BORDER_CONSTANT) {
        *top = y > 0 ? src + (ptrdiff_t)(y - 1) * src_stride : NULL;
        *bottom = y + 1 < height ? src + (ptrdiff_t)(y + 1) * src_stride : NULL;
        return;
    }
    *top = src + (ptrdiff_t)border_index(y - 1, height, border) * src_stride;
    *bottom = src + (ptrdiff_t)border_index(y + 1, height, border) * src_stride;
}

/* Output pixel x from the column sums left of, at and right of it. */
static inline uint8_t filter_columns(unsigned left, unsigned centre, unsigned right) {
    return (uint8_t)((left + 2u * centre + right + 8u) >> 4);
}

/* Column sum of column x, which may be -1 or width (outside the image). */
static unsigned column_or_border(const uint8_t *top, const uint8_t *mid, const uint8_t *bottom,
                                 int x, int width, int border, int border_value) {
    if (border == POSETOK_BORDER_CONSTANT && (x < 0 || x >= width))
        return 4u * (unsigned)border_value; /* a whole constant column */
    return posetok_gaussian_column(top, mid, bottom, border_index(x, width, border), border_value);
}

void posetok_gaussian_span_ref(const uint8_t *top, const uint8_t *mid, const uint8_t *bottom,
                               uint8_t *dst, int width, int x_begin, int x_end, int border,
                               int border_value) {
    int x = x_begin;
    /* first and last columns need the border; the interior reads directly */
    for (; x < x_end && (x == 0 || x == width - 1); ++x)
        dst[x] =
            filter_columns(column_or_border(top, mid, bottom, x - 1, width, border, border_value),
                           column_or_border(top, mid, bottom, x, width, border, border_value),
                           column_or_border(top, mid, bottom, x + 1, width, border, border_value));
    const int interior_end = x_end < width - 1 ? x_end : width - 1;
    for (; x < interior_end; ++x)
        dst[x] = filter_columns(posetok_gaussian_column(top, mid, bottom, x - 1, border_value),
                                posetok_gaussian_column(top, mid, bottom, x, border_value),
                                posetok_gaussian_column(top, mid, bottom, x + 1, border_value));
    for (; x < x_end; ++x)
        dst[x] =
            filter_columns(column_or_border(top, mid, bottom, x - 1, width, border, border_value),
                           column_or_border(top, mid, bottom, x, width, border, border_value),
                           column_or_border(top, mid, bottom, x + 1, width, border, border_value));
}

void posetok_gaussian_row_ref(const uint8_t *top, const uint8_t *mid, const uint8_t *bottom,
                              uint8_t *dst, int width, int border, int border_value) {
    posetok_gaussian_span_ref(top, mid, bottom, dst, width, 0, width, border, border_value);
}

void posetok_gaussian_plane(posetok_gaussian_row_fn *row, const uint8_t *src, int src_stride,
                            uint8_t *dst, int dst_stride, int width, int height, int border,
                            int border_value) {
    for (int y = 0; y < height; ++y) {
        const uint8_t *top, *bottom;
        rows_around(src, src_stride, height, y, border, &top, &bottom);
        row(top, src + (ptrdiff_t)y * src_stride, bottom, dst + (ptrdiff_t)y * dst_stride, width,
            border, border_value);
    }
}

int posetok_gaussian3x3_u8_ref(const uint8_t *src, int src_stride, uint8_t *dst, int dst_stride,
                               int width, int height, int border, int border_value) {
    int status = posetok_check_gaussian(src, src_stride, dst, dst_stride, width, height, border,
                                        border_value);
    if (status) return status;
    posetok_gaussian_plane(posetok_gaussian_row_ref, src, src_stride, dst, dst_stride, width,
                           height, border, border_value);
    return POSETOK_OK;
}
