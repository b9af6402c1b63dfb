/*
 * neon_int.h — small inline helpers shared by the AArch64 kernel files
 * (quants_neon.c, quants_i8mm.c): half to float, unpacking a block's codes into
 * signed bytes.  Plain ARMv8-A NEON only, so any of them may include it.
 */
#ifndef FR_KERNELS_ARM_NEON_INT_H
#define FR_KERNELS_ARM_NEON_INT_H

#include <arm_neon.h>
#include <string.h>

#include "kernels/kernels_int.h"

#define INLINE static inline __attribute__((always_inline))

INLINE float f16(uint16_t h) {
    __fp16 v;
    memcpy(&v, &h, 2);
    return (float)v;
}

/* 16 packed nibbles → codes 0..15: low nibbles (elements 0..15), high
 * nibbles (16..31). */
INLINE void nibbles(const uint8_t *qs, int8x16_t *lo, int8x16_t *hi) {
    const uint8x16_t q = vld1q_u8(qs);
    *lo = vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0xF)));
    *hi = vreinterpretq_s8_u8(vshrq_n_u8(q, 4));
}

/* 16 bits → 16 bytes, byte i = 0xFF when bit i of b is set. */
INLINE uint8x16_t bits16(uint32_t b) {
    static const uint8_t sel[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t v = vcombine_u8(vdup_n_u8((uint8_t)b), vdup_n_u8((uint8_t)(b >> 8)));
    return vtstq_u8(v, vld1q_u8(sel));
}

/* Block b of a weight row as 32 signed codes (two vectors). */
INLINE void codes32(int type, const void *w, int64_t b, int8x16_t *c0, int8x16_t *c1, float *d) {
    if (type == FR_TYPE_Q8_0) {
        const fr_block_q8_0 *x = (const fr_block_q8_0 *)w + b;
        *c0 = vld1q_s8(x->qs);
        *c1 = vld1q_s8(x->qs + 16);
        *d = f16(x->d);
    } else if (type == FR_TYPE_Q4_0) {
        const fr_block_q4_0 *x = (const fr_block_q4_0 *)w + b;
        int8x16_t lo, hi;
        nibbles(x->qs, &lo, &hi);
        *c0 = vsubq_s8(lo, vdupq_n_s8(8));
        *c1 = vsubq_s8(hi, vdupq_n_s8(8));
        *d = f16(x->d);
    } else { /* Q5_0 */
        const fr_block_q5_0 *x = (const fr_block_q5_0 *)w + b;
        uint32_t h;
        memcpy(&h, x->qh, 4);
        int8x16_t lo, hi;
        nibbles(x->qs, &lo, &hi);
        const uint8x16_t s16 = vdupq_n_u8(16);
        lo = vorrq_s8(lo, vreinterpretq_s8_u8(vandq_u8(bits16(h), s16)));
        hi = vorrq_s8(hi, vreinterpretq_s8_u8(vandq_u8(bits16(h >> 16), s16)));
        *c0 = vsubq_s8(lo, vdupq_n_s8(16));
        *c1 = vsubq_s8(hi, vdupq_n_s8(16));
        *d = f16(x->d);
    }
}

/* The four 32-code quarters of one Q6_K half, signed (−32..31). */
INLINE void q6_K_quarters(const uint8_t *ql, const uint8_t *qh, int8x16_t q[8]) {
    const uint8x16_t m4 = vdupq_n_u8(0xF), m3 = vdupq_n_u8(3);
    const int8x16_t off = vdupq_n_s8(32);
    for (int i = 0; i < 2; i++) {
        const uint8x16_t h = vld1q_u8(qh + 16 * i);
        const uint8x16_t a = vld1q_u8(ql + 16 * i), bb = vld1q_u8(ql + 32 + 16 * i);
        const uint8x16_t v0 = vorrq_u8(vandq_u8(a, m4), vshlq_n_u8(vandq_u8(h, m3), 4));
        const uint8x16_t v1 = vorrq_u8(vandq_u8(bb, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 2), m3), 4));
        const uint8x16_t v2 = vorrq_u8(vshrq_n_u8(a, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 4), m3), 4));
        const uint8x16_t v3 = vorrq_u8(vshrq_n_u8(bb, 4), vshlq_n_u8(vshrq_n_u8(h, 6), 4));
        q[0 + i] = vsubq_s8(vreinterpretq_s8_u8(v0), off);
        q[2 + i] = vsubq_s8(vreinterpretq_s8_u8(v1), off);
        q[4 + i] = vsubq_s8(vreinterpretq_s8_u8(v2), off);
        q[6 + i] = vsubq_s8(vreinterpretq_s8_u8(v3), off);
    }
}

#endif
