/* Built only when the target has no NEON: the *_neon symbols still exist (one
 * ABI on every platform) and report POSETOK_ERR_NO_NEON without touching memory. */
#include "internal.h"

#pragma GCC diagnostic ignored "-Wunused-parameter"

#define NO_NEON(name, args) \
    int name args { return POSETOK_ERR_NO_NEON; }

NO_NEON(posetok_nv21_to_rgb888_neon,
        (const uint8_t *a, int b, const uint8_t *c, int d, uint8_t *e, int f, int g, int h, int i))
NO_NEON(posetok_nv12_to_rgb888_neon,
        (const uint8_t *a, int b, const uint8_t *c, int d, uint8_t *e, int f, int g, int h, int i))
NO_NEON(posetok_downscale_uv2x2_u8_neon, (const uint8_t *a, int b, uint8_t *c, int d, int e, int f))
NO_NEON(posetok_gaussian3x3_u8_neon,
        (const uint8_t *a, int b, uint8_t *c, int d, int e, int f, int g, int h))
NO_NEON(posetok_resize_bilinear_u8_neon,
        (const uint8_t *a, int b, int c, int d, uint8_t *e, int f, int g, int h, int i))
NO_NEON(posetok_conv2d_f32_neon, (const float *a, int b, int c, int d, int e, const float *f,
                                  const float *g, int h, int i, int j, int k, float *l, int m))
NO_NEON(posetok_normalize_u8_f32_chw_neon, (const uint8_t *a, int b, int c, int d, int e,
                                            const float *f, const float *g, float *h, int i))
