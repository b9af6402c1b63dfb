/*
 * arm/vscan_neon.c — the int8 dot kernel (vscan.h) on AArch64.  This one
 * source is built twice: as itself for plain ARMv8-A NEON
 * (fr__vscan_dot_neon: vmull_s8 into int16, |q·v| <= 127² fits, then
 * vpadalq_s16 adds pairs into int32 lanes), and through vscan_dotprod.c
 * with -march=armv8.2-a+dotprod+fp16 (fr__vscan_dot_dotprod: SDOT, four
 * byte products per int32 lane).  Both give the twin's integers exactly
 * (no saturation anywhere).  Four rows at a time share the query's loads;
 * 64 codes per step (dim_pad % 64 == 0).  vscan_arm.c lists them by level.
 */
#include <arm_neon.h>

#include "search/vscan.h"

#ifdef __ARM_FEATURE_DOTPROD
#define VSCAN_DOT fr__vscan_dot_dotprod
#else
#define VSCAN_DOT fr__vscan_dot_neon
#endif

static inline __attribute__((always_inline)) int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#ifdef __ARM_FEATURE_DOTPROD
    return vdotq_s32(acc, a, b);
#else
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
#endif
}

void VSCAN_DOT(const int8_t *q, const int8_t *rows, size_t n, size_t dim_pad, int32_t *out) {
    size_t r = 0;
    for (; r + 4 <= n; r += 4) {
        const int8_t *v0 = rows + r * dim_pad, *v1 = v0 + dim_pad, *v2 = v1 + dim_pad, *v3 = v2 + dim_pad;
        int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
        for (size_t d = 0; d < dim_pad; d += 16) {
            const int8x16_t qv = vld1q_s8(q + d);
            a0 = dot16(a0, qv, vld1q_s8(v0 + d));
            a1 = dot16(a1, qv, vld1q_s8(v1 + d));
            a2 = dot16(a2, qv, vld1q_s8(v2 + d));
            a3 = dot16(a3, qv, vld1q_s8(v3 + d));
        }
        out[r] = vaddvq_s32(a0);
        out[r + 1] = vaddvq_s32(a1);
        out[r + 2] = vaddvq_s32(a2);
        out[r + 3] = vaddvq_s32(a3);
    }
    for (; r < n; r++) {
        const int8_t *v = rows + r * dim_pad;
        int32x4_t a = vdupq_n_s32(0);
        for (size_t d = 0; d < dim_pad; d += 16) a = dot16(a, vld1q_s8(q + d), vld1q_s8(v + d));
        out[r] = vaddvq_s32(a);
    }
}
