/* Adds two u8 vectors with saturation in NEON and checks every lane against
 * scalar C; exits non-zero on any mismatch. Proves compiler, libc, QEMU and
 * ctest wiring, nothing more. */
#include <stdint.h>
#include <stdio.h>
#if !defined(__aarch64__)
#error "hello_neon is an aarch64 program: build it with a cross toolchain"
#endif
#include <arm_neon.h>

int main(void) {
    uint8_t a[16], b[16], out[16];
    for (int i = 0; i < 16; ++i) {
        a[i] = (uint8_t)(i * 17);
        b[i] = (uint8_t)(250 - i * 3);
    }
    vst1q_u8(out, vqaddq_u8(vld1q_u8(a), vld1q_u8(b)));
    int bad = 0;
    for (int i = 0; i < 16; ++i) {
        int want = a[i] + b[i] > 255 ? 255 : a[i] + b[i];
        if (out[i] != want) {
            fprintf(stderr, "lane %d: neon %d != scalar %d\n", i, out[i], want);
            bad = 1;
        }
    }
    printf("hello_neon: 16 lanes of vqaddq_u8 %s\n", bad ? "MISMATCH" : "match scalar C");
    return bad;
}
