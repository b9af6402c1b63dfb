/*
 * arm/quants_neon.c — AArch64 NEON row kernels (kernels_int.h), the twins of ref.c.
 *
 * This one source is compiled twice: as itself for plain ARMv8-A NEON
 * (Cortex-A72, Raspberry Pi 4; names fr__neon_*), and through
 * quants_dotprod.c with -march=armv8.2-a+dotprod+fp16 (Cortex-A76, Pi 5;
 * names fr__dotprod_*).  The only difference is the int8 dot primitive:
 * plain NEON multiplies bytes into int16 (vmull_s8) and adds pairs into
 * int32 lanes (vpadalq_s16); the dotprod build uses SDOT (vdotq_s32),
 * four byte products per int32 lane in one instruction.  The float,
 * quantize and dequantize kernels do not depend on the level and exist
 * only in the plain build (the dotprod table inherits them).
 *
 * What they compute, against the twins:
 * - Quantized dots sum each block (or sub-block) in int32 lanes, reduce it
 *   to one int32 and apply the float scales in scalar code exactly as
 *   ref.c does, block by block: bit-identical to the twins (the build uses
 *   -std=c11, so nothing is contracted into FMAs).  vec_dot4 (four rows,
 *   one activation) and vec_dot4x4 (four rows, four activations) keep one
 *   float chain per (row, activation) in the same order: bit-identical to
 *   vec_dot as well.
 * - quantize_q8_0/q8_1 use the twin's d = amax/127, id = 1/d and round
 *   half away from zero (FCVTAS, as roundf); quantize_q8_K rounds half to
 *   even (FCVTNS, as nearest_int): all bit-identical to the twins.
 *   quantize_f16 converts in hardware (round to nearest even, as
 *   fr_f32_to_f16; NaN payloads may differ).
 * - Dequantizers multiply (and subtract) exactly as the twins.
 * - Float dots (F32, F16, BF16) accumulate in four 4-lane float
 *   accumulators with FMA; the twins in double (float rounding only).
 *   F16's vec_dot4x4 (prefill) keeps one such chain per (row, token).
 * arm/table.c puts these in the dispatch levels: the plain ones in neon,
 * the SDOT dots in dotprod (and so in i8mm, which adds quants_i8mm.c).
 */
#include <arm_neon.h>
#include <string.h>

#include "kernels/arm/neon_int.h"

#ifdef __ARM_FEATURE_DOTPROD
#define FN(name) fr__dotprod_##name
#else
#define FN(name) fr__neon_##name
#endif

/* acc + Σ a·b of 16 signed bytes, four products per int32 lane. */
INLINE int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#ifdef __ARM_FEATURE_DOTPROD
    return vdotq_s32(acc, a, b);
#else
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
#endif
}

/* The same where |a| <= 32 (4, 5, 6-bit codes): pairs of products fit
 * int16, so plain NEON adds them before widening. */
INLINE int32x4_t dot16s(int32x4_t acc, int8x16_t a, int8x16_t b) {
#ifdef __ARM_FEATURE_DOTPROD
    return vdotq_s32(acc, a, b);
#else
    return vpadalq_s16(acc, vmlal_high_s8(vmull_s8(vget_low_s8(a), vget_low_s8(b)), a, b));
#endif
}

/* ---- the 32-element families: Q4_0, Q5_0, Q8_0 against Q8_0 ---- */

/* nr (1 or 4) rows `stride` bytes apart against one Q8_0 row: each row's
 * sumf += (float)sumi·(d_w·d_a) block by block, as the twin. */
INLINE void rows_q8_0(int type, int64_t n, const void *w, size_t stride, const void *a, float *out,
                      const int nr) {
    const fr_block_q8_0 *y = a;
    float sumf[4] = {0, 0, 0, 0};
    for (int64_t b = 0; b < n / 32; b++) {
        const int8x16_t y0 = vld1q_s8(y[b].qs), y1 = vld1q_s8(y[b].qs + 16);
        const float dy = f16(y[b].d);
        for (int r = 0; r < nr; r++) {
            int8x16_t c0, c1;
            float dx;
            codes32(type, (const char *)w + (size_t)r * stride, b, &c0, &c1, &dx);
            int32x4_t acc;
            if (type == FR_TYPE_Q8_0) acc = dot16(dot16(vdupq_n_s32(0), c0, y0), c1, y1);
            else acc = dot16s(dot16s(vdupq_n_s32(0), c0, y0), c1, y1);
            sumf[r] += (float)vaddvq_s32(acc) * (dx * dy);
        }
    }
    for (int r = 0; r < nr; r++) out[r] = sumf[r];
}

float FN(vec_dot_q4_0_q8_0)(int64_t n, const void *w, const void *a) {
    float out;
    rows_q8_0(FR_TYPE_Q4_0, n, w, 0, a, &out, 1);
    return out;
}

float FN(vec_dot_q5_0_q8_0)(int64_t n, const void *w, const void *a) {
    float out;
    rows_q8_0(FR_TYPE_Q5_0, n, w, 0, a, &out, 1);
    return out;
}

float FN(vec_dot_q8_0_q8_0)(int64_t n, const void *w, const void *a) {
    float out;
    rows_q8_0(FR_TYPE_Q8_0, n, w, 0, a, &out, 1);
    return out;
}

void FN(vec_dot4_q4_0_q8_0)(int64_t n, const void *w, size_t stride, const void *a, float *out) {
    rows_q8_0(FR_TYPE_Q4_0, n, w, stride, a, out, 4);
}

void FN(vec_dot4_q8_0_q8_0)(int64_t n, const void *w, size_t stride, const void *a, float *out) {
    rows_q8_0(FR_TYPE_Q8_0, n, w, stride, a, out, 4);
}

/* Four rows × four activations: each weight block unpacked once for the
 * four tokens; the four int32 sums of a row are reduced together (pairwise
 * adds, exact) and scaled lane-wise: lane t does the twin's
 * sumf += (float)sumi·(d_w·d_a), so out[4t + r] equals vec_dot bit for bit. */
INLINE void dot4x4_q8_0(int type, int64_t n, const void *w, size_t wstride, const void *a, size_t astride,
                        float *out) {
    float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    for (int64_t b = 0; b < n / 32; b++) {
        int8x16_t y0[4], y1[4];
        float dy[4];
        for (int t = 0; t < 4; t++) {
            const fr_block_q8_0 *y = (const fr_block_q8_0 *)((const char *)a + (size_t)t * astride) + b;
            y0[t] = vld1q_s8(y->qs);
            y1[t] = vld1q_s8(y->qs + 16);
            dy[t] = f16(y->d);
        }
        const float32x4_t dyv = vld1q_f32(dy);
        for (int r = 0; r < 4; r++) {
            int8x16_t c0, c1;
            float dx;
            codes32(type, (const char *)w + (size_t)r * wstride, b, &c0, &c1, &dx);
            int32x4_t s[4];
            for (int t = 0; t < 4; t++) {
                if (type == FR_TYPE_Q8_0) s[t] = dot16(dot16(vdupq_n_s32(0), c0, y0[t]), c1, y1[t]);
                else s[t] = dot16s(dot16s(vdupq_n_s32(0), c0, y0[t]), c1, y1[t]);
            }
            const int32x4_t sumi = vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]));
            acc[r] = vaddq_f32(acc[r], vmulq_f32(vcvtq_f32_s32(sumi), vmulq_n_f32(dyv, dx)));
        }
    }
    /* vmulq_n_f32(dyv, dx) = dy·dx per lane: the same product as dx·dy */
    for (int r = 0; r < 4; r++) {
        float v[4];
        vst1q_f32(v, acc[r]);
        for (int t = 0; t < 4; t++) out[4 * t + r] = v[t];
    }
}

void FN(vec_dot4x4_q4_0_q8_0)(int64_t n, const void *w, size_t wstride, const void *a, size_t astride,
                              float *out) {
    dot4x4_q8_0(FR_TYPE_Q4_0, n, w, wstride, a, astride, out);
}

void FN(vec_dot4x4_q8_0_q8_0)(int64_t n, const void *w, size_t wstride, const void *a, size_t astride,
                              float *out) {
    dot4x4_q8_0(FR_TYPE_Q8_0, n, w, wstride, a, astride, out);
}

/* ---- Q4_1, Q5_1 against Q8_1: unsigned codes, plus m_w·s_a ---- */

INLINE float dot_q_1(int64_t n, const void *w, const void *a, const int five) {
    const fr_block_q8_1 *y = a;
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        int8x16_t lo, hi;
        float dx, mx;
        if (five) {
            const fr_block_q5_1 *x = (const fr_block_q5_1 *)w + b;
            uint32_t h;
            memcpy(&h, x->qh, 4);
            nibbles(x->qs, &lo, &hi);
            lo = vorrq_s8(lo, vreinterpretq_s8_u8(vandq_u8(bits16(h), vdupq_n_u8(16))));
            hi = vorrq_s8(hi, vreinterpretq_s8_u8(vandq_u8(bits16(h >> 16), vdupq_n_u8(16))));
            dx = f16(x->d);
            mx = f16(x->m);
        } else {
            const fr_block_q4_1 *x = (const fr_block_q4_1 *)w + b;
            nibbles(x->qs, &lo, &hi);
            dx = f16(x->d);
            mx = f16(x->m);
        }
        const int32x4_t acc = dot16s(dot16s(vdupq_n_s32(0), lo, vld1q_s8(y[b].qs)), hi, vld1q_s8(y[b].qs + 16));
        sumf += (dx * f16(y[b].d)) * (float)vaddvq_s32(acc) + mx * f16(y[b].s);
    }
    return sumf;
}

float FN(vec_dot_q4_1_q8_1)(int64_t n, const void *w, const void *a) {
    return dot_q_1(n, w, a, 0);
}

float FN(vec_dot_q5_1_q8_1)(int64_t n, const void *w, const void *a) {
    return dot_q_1(n, w, a, 1);
}

/* ---- K-quants against Q8_K: exact int32 per super-block ---- */

/* Σ of 32 codes (two vectors) · 32 activations at q8, in int32 lanes. */
INLINE int32x4_t dot32s(int8x16_t c0, int8x16_t c1, const int8_t *q8) {
    return dot16s(dot16s(vdupq_n_s32(0), c0, vld1q_s8(q8)), c1, vld1q_s8(q8 + 16));
}

float FN(vec_dot_q2_K_q8_K)(int64_t n, const void *w, const void *a) {
    const fr_block_q2_K *x = w;
    const fr_block_q8_K *y = a;
    const uint8x16_t m3 = vdupq_n_u8(3);
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const uint8_t *sc = x[b].scales;
        int summs = 0;
        for (int j = 0; j < 16; j++) summs += y[b].bsums[j] * (sc[j] >> 4);
        int32x4_t acc = vdupq_n_s32(0);
        const int8_t *q8 = y[b].qs;
        int is = 0;
        for (int h = 0; h < 2; h++) {
            const uint8x16_t q0 = vld1q_u8(x[b].qs + 32 * h), q1 = vld1q_u8(x[b].qs + 32 * h + 16);
            for (int shift = 0; shift < 8; shift += 2, q8 += 32) {
                const int8x16_t c0 = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q0, vdupq_n_s8((int8_t)-shift)), m3));
                const int8x16_t c1 = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q1, vdupq_n_s8((int8_t)-shift)), m3));
                acc = vmlaq_n_s32(acc, dot16s(vdupq_n_s32(0), c0, vld1q_s8(q8)), sc[is++] & 0xF);
                acc = vmlaq_n_s32(acc, dot16s(vdupq_n_s32(0), c1, vld1q_s8(q8 + 16)), sc[is++] & 0xF);
            }
        }
        const int isum = vaddvq_s32(acc);
        const float dall = y[b].d * f16(x[b].d);
        const float dmin = y[b].d * f16(x[b].dmin);
        sumf += dall * (float)isum - dmin * (float)summs;
    }
    return sumf;
}

/* Q3_K's 16 signed six-bit scales (as ref.c's q3_K_scales). */
INLINE void q3_K_scales(const uint8_t *p, int8_t *out) {
    for (int j = 0; j < 16; j++) {
        int low4 = j < 8 ? (p[j] & 0xF) : (p[j - 8] >> 4);
        int high2 = (p[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = (int8_t)((low4 | high2 << 4) - 32);
    }
}

float FN(vec_dot_q3_K_q8_K)(int64_t n, const void *w, const void *a) {
    const fr_block_q3_K *x = w;
    const fr_block_q8_K *y = a;
    const uint8x16_t m3 = vdupq_n_u8(3), four = vdupq_n_u8(4);
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        int8_t sc[16];
        q3_K_scales(x[b].scales, sc);
        const uint8x16_t hm0 = vld1q_u8(x[b].hmask), hm1 = vld1q_u8(x[b].hmask + 16);
        const int8_t *q8 = y[b].qs;
        int32x4_t acc = vdupq_n_s32(0);
        int is = 0, bit = 0;
        for (int h = 0; h < 2; h++) {
            const uint8x16_t q0 = vld1q_u8(x[b].qs + 32 * h), q1 = vld1q_u8(x[b].qs + 32 * h + 16);
            for (int shift = 0; shift < 8; shift += 2, bit++, q8 += 32) {
                const uint8x16_t m = vdupq_n_u8((uint8_t)(1u << bit));
                /* code − (high bit clear ? 4 : 0) */
                const uint8x16_t s0 = vbicq_u8(four, vtstq_u8(hm0, m)), s1 = vbicq_u8(four, vtstq_u8(hm1, m));
                const int8x16_t c0 = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q0, vdupq_n_s8((int8_t)-shift)), m3)),
                                              vreinterpretq_s8_u8(s0));
                const int8x16_t c1 = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q1, vdupq_n_s8((int8_t)-shift)), m3)),
                                              vreinterpretq_s8_u8(s1));
                acc = vmlaq_n_s32(acc, dot16s(vdupq_n_s32(0), c0, vld1q_s8(q8)), sc[is++]);
                acc = vmlaq_n_s32(acc, dot16s(vdupq_n_s32(0), c1, vld1q_s8(q8 + 16)), sc[is++]);
            }
        }
        sumf += (f16(x[b].d) * y[b].d) * (float)vaddvq_s32(acc);
    }
    return sumf;
}

/* Q4_K and Q5_K (five: the fifth bit from qh). */
INLINE float dot_q45_K(int64_t n, const void *w, const void *a, const int five) {
    const fr_block_q8_K *y = a;
    const uint8x16_t m4 = vdupq_n_u8(0xF), s16 = vdupq_n_u8(16);
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const uint8_t *scales, *qs, *qh = NULL;
        uint16_t xd, xdmin;
        if (five) {
            const fr_block_q5_K *x = (const fr_block_q5_K *)w + b;
            scales = x->scales; qs = x->qs; qh = x->qh; xd = x->d; xdmin = x->dmin;
        } else {
            const fr_block_q4_K *x = (const fr_block_q4_K *)w + b;
            scales = x->scales; qs = x->qs; xd = x->d; xdmin = x->dmin;
        }
        uint8x16_t h0 = vdupq_n_u8(0), h1 = vdupq_n_u8(0);
        if (five) {
            h0 = vld1q_u8(qh);
            h1 = vld1q_u8(qh + 16);
        }
        const int8_t *q8 = y[b].qs;
        int32x4_t acc = vdupq_n_s32(0);
        int summs = 0;
        for (int c = 0; c < 4; c++, qs += 32, q8 += 64) {
            uint8_t sc0, m0, sc1, m1;
            fr__get_scale_min_k4(2 * c, scales, &sc0, &m0);
            fr__get_scale_min_k4(2 * c + 1, scales, &sc1, &m1);
            const uint8x16_t b0 = vld1q_u8(qs), b1 = vld1q_u8(qs + 16);
            uint8x16_t l0 = vandq_u8(b0, m4), l1 = vandq_u8(b1, m4);
            uint8x16_t u0 = vshrq_n_u8(b0, 4), u1 = vshrq_n_u8(b1, 4);
            if (five) {
                const uint8x16_t bl = vdupq_n_u8((uint8_t)(1u << (2 * c))), bu = vdupq_n_u8((uint8_t)(2u << (2 * c)));
                l0 = vorrq_u8(l0, vandq_u8(vtstq_u8(h0, bl), s16));
                l1 = vorrq_u8(l1, vandq_u8(vtstq_u8(h1, bl), s16));
                u0 = vorrq_u8(u0, vandq_u8(vtstq_u8(h0, bu), s16));
                u1 = vorrq_u8(u1, vandq_u8(vtstq_u8(h1, bu), s16));
            }
            acc = vmlaq_n_s32(acc, dot32s(vreinterpretq_s8_u8(l0), vreinterpretq_s8_u8(l1), q8), sc0);
            acc = vmlaq_n_s32(acc, dot32s(vreinterpretq_s8_u8(u0), vreinterpretq_s8_u8(u1), q8 + 32), sc1);
            summs += m0 * (y[b].bsums[4 * c] + y[b].bsums[4 * c + 1]) +
                     m1 * (y[b].bsums[4 * c + 2] + y[b].bsums[4 * c + 3]);
        }
        const float d = f16(xd) * y[b].d;
        const float dmin = f16(xdmin) * y[b].d;
        sumf += d * (float)vaddvq_s32(acc) - dmin * (float)summs;
    }
    return sumf;
}

float FN(vec_dot_q4_K_q8_K)(int64_t n, const void *w, const void *a) {
    return dot_q45_K(n, w, a, 0);
}

float FN(vec_dot_q5_K_q8_K)(int64_t n, const void *w, const void *a) {
    return dot_q45_K(n, w, a, 1);
}

float FN(vec_dot_q6_K_q8_K)(int64_t n, const void *w, const void *a) {
    const fr_block_q6_K *x = w;
    const fr_block_q8_K *y = a;
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        int32x4_t acc = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            int8x16_t q[8];
            q6_K_quarters(x[b].ql + 64 * h, x[b].qh + 32 * h, q);
            const int8_t *sc = x[b].scales + 8 * h, *q8 = y[b].qs + 128 * h;
            /* q[2k + i]: quarter k, elements 16i..16i+15, scale sc[2k + i] */
            for (int k = 0; k < 8; k++)
                acc = vmlaq_n_s32(acc, dot16s(vdupq_n_s32(0), q[k], vld1q_s8(q8 + 16 * k)), sc[k]);
        }
        sumf += (f16(x[b].d) * y[b].d) * (float)vaddvq_s32(acc);
    }
    return sumf;
}

#ifndef __ARM_FEATURE_DOTPROD
/* ---- level-independent: float dots, dequantize, quantize (plain only) ---- */

INLINE float32x4_t h4(const uint16_t *p) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}

INLINE float32x4_t bf4(const uint16_t *p) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
}

float fr__neon_vec_dot_f32(int64_t n, const void *w, const void *a) {
    const float *x = w, *y = a;
    float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 4; k++) acc[k] = vfmaq_f32(acc[k], vld1q_f32(x + i + 4 * k), vld1q_f32(y + i + 4 * k));
    for (; i + 4 <= n; i += 4) acc[0] = vfmaq_f32(acc[0], vld1q_f32(x + i), vld1q_f32(y + i));
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
    for (; i < n; i++) sum += x[i] * y[i];
    return sum;
}

float fr__neon_vec_dot_f16(int64_t n, const void *w, const void *a) {
    const uint16_t *x = w, *y = a;
    float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 4; k++) acc[k] = vfmaq_f32(acc[k], h4(x + i + 4 * k), h4(y + i + 4 * k));
    for (; i + 4 <= n; i += 4) acc[0] = vfmaq_f32(acc[0], h4(x + i), h4(y + i));
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
    for (; i < n; i++) sum += f16(x[i]) * f16(y[i]);
    return sum;
}

float fr__neon_vec_dot_bf16(int64_t n, const void *w, const void *a) {
    const uint16_t *x = w, *y = a;
    float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 4; k++) acc[k] = vfmaq_f32(acc[k], bf4(x + i + 4 * k), bf4(y + i + 4 * k));
    for (; i + 4 <= n; i += 4) acc[0] = vfmaq_f32(acc[0], bf4(x + i), bf4(y + i));
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
    for (; i < n; i++) sum += fr_bf16_to_f32(x[i]) * fr_bf16_to_f32(y[i]);
    return sum;
}

/* F16 four rows × four activations (prefill): 16 four-lane FMA chains,
 * each weight and activation vector converted once for four products.
 * Within float rounding of vec_dot (other lane split), as vec_dot4x4
 * allows. */
void fr__neon_vec_dot4x4_f16(int64_t n, const void *w, size_t wstride, const void *a, size_t astride,
                             float *out) {
    float32x4_t acc[4][4];
    for (int r = 0; r < 4; r++)
        for (int t = 0; t < 4; t++) acc[r][t] = vdupq_n_f32(0);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t x[4], y[4];
        for (int r = 0; r < 4; r++) x[r] = h4((const uint16_t *)((const char *)w + (size_t)r * wstride) + i);
        for (int t = 0; t < 4; t++) y[t] = h4((const uint16_t *)((const char *)a + (size_t)t * astride) + i);
        for (int r = 0; r < 4; r++)
            for (int t = 0; t < 4; t++) acc[r][t] = vfmaq_f32(acc[r][t], x[r], y[t]);
    }
    for (int r = 0; r < 4; r++) {
        const uint16_t *x = (const uint16_t *)((const char *)w + (size_t)r * wstride);
        for (int t = 0; t < 4; t++) {
            const uint16_t *y = (const uint16_t *)((const char *)a + (size_t)t * astride);
            float sum = vaddvq_f32(acc[r][t]);
            for (int64_t k = i; k < n; k++) sum += f16(x[k]) * f16(y[k]);
            out[4 * t + r] = sum;
        }
    }
}

void fr__neon_dequantize_f16(const void *src, float *dst, int64_t n) {
    const uint16_t *x = src;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, h4(x + i));
    for (; i < n; i++) dst[i] = f16(x[i]);
}

void fr__neon_dequantize_bf16(const void *src, float *dst, int64_t n) {
    const uint16_t *x = src;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, bf4(x + i));
    for (; i < n; i++) dst[i] = fr_bf16_to_f32(x[i]);
}

/* dst[0..15] = d·q for 16 signed codes (one multiply each, as ref.c). */
INLINE void store_i8x16(float *dst, int8x16_t q, float32x4_t d) {
    const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_high_s8(q);
    vst1q_f32(dst, vmulq_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), d));
    vst1q_f32(dst + 4, vmulq_f32(vcvtq_f32_s32(vmovl_high_s16(lo)), d));
    vst1q_f32(dst + 8, vmulq_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), d));
    vst1q_f32(dst + 12, vmulq_f32(vcvtq_f32_s32(vmovl_high_s16(hi)), d));
}

/* dst[0..15] = d·q − m for 16 unsigned codes (mul then sub, as ref.c). */
INLINE void store_u8x16_affine(float *dst, uint8x16_t q, float32x4_t d, float32x4_t m) {
    const uint16x8_t lo = vmovl_u8(vget_low_u8(q)), hi = vmovl_high_u8(q);
    vst1q_f32(dst, vsubq_f32(vmulq_f32(d, vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo)))), m));
    vst1q_f32(dst + 4, vsubq_f32(vmulq_f32(d, vcvtq_f32_u32(vmovl_high_u16(lo))), m));
    vst1q_f32(dst + 8, vsubq_f32(vmulq_f32(d, vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi)))), m));
    vst1q_f32(dst + 12, vsubq_f32(vmulq_f32(d, vcvtq_f32_u32(vmovl_high_u16(hi))), m));
}

void fr__neon_dequantize_q4_0(const void *src, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, dst += 32) {
        int8x16_t c0, c1;
        float d;
        codes32(FR_TYPE_Q4_0, src, b, &c0, &c1, &d);
        store_i8x16(dst, c0, vdupq_n_f32(d));
        store_i8x16(dst + 16, c1, vdupq_n_f32(d));
    }
}

void fr__neon_dequantize_q8_0(const void *src, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, dst += 32) {
        int8x16_t c0, c1;
        float d;
        codes32(FR_TYPE_Q8_0, src, b, &c0, &c1, &d);
        store_i8x16(dst, c0, vdupq_n_f32(d));
        store_i8x16(dst + 16, c1, vdupq_n_f32(d));
    }
}

void fr__neon_dequantize_q4_K(const void *src, float *dst, int64_t n) {
    const fr_block_q4_K *x = src;
    const uint8x16_t m4 = vdupq_n_u8(0xF);
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const float d = f16(x[b].d), dmin = f16(x[b].dmin);
        for (int c = 0; c < 4; c++, dst += 64) {
            uint8_t sc, m;
            const uint8x16_t q0 = vld1q_u8(x[b].qs + 32 * c), q1 = vld1q_u8(x[b].qs + 32 * c + 16);
            fr__get_scale_min_k4(2 * c, x[b].scales, &sc, &m);
            float32x4_t dv = vdupq_n_f32(d * (float)sc), mv = vdupq_n_f32(dmin * (float)m);
            store_u8x16_affine(dst, vandq_u8(q0, m4), dv, mv);
            store_u8x16_affine(dst + 16, vandq_u8(q1, m4), dv, mv);
            fr__get_scale_min_k4(2 * c + 1, x[b].scales, &sc, &m);
            dv = vdupq_n_f32(d * (float)sc);
            mv = vdupq_n_f32(dmin * (float)m);
            store_u8x16_affine(dst + 32, vshrq_n_u8(q0, 4), dv, mv);
            store_u8x16_affine(dst + 48, vshrq_n_u8(q1, 4), dv, mv);
        }
    }
}

void fr__neon_dequantize_q6_K(const void *src, float *dst, int64_t n) {
    const fr_block_q6_K *x = src;
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const float d = f16(x[b].d);
        for (int h = 0; h < 2; h++, dst += 128) {
            int8x16_t q[8];
            q6_K_quarters(x[b].ql + 64 * h, x[b].qh + 32 * h, q);
            const int8_t *sc = x[b].scales + 8 * h;
            /* the twin: d·sc·q, multiplied left to right */
            for (int k = 0; k < 8; k++) store_i8x16(dst + 16 * k, q[k], vdupq_n_f32(d * (float)sc[k]));
        }
    }
}

void fr__neon_quantize_f16(const float *src, void *dst, int64_t n) {
    uint16_t *y = dst;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src + i))));
    for (; i < n; i++) y[i] = fr_f32_to_f16(src[i]);
}

/* f32 → bf16 rounding to nearest even, NaN kept quiet (as fr_f32_to_bf16). */
void fr__neon_quantize_bf16(const float *src, void *dst, int64_t n) {
    uint16_t *y = dst;
    const uint32x4_t one = vdupq_n_u32(1), bias = vdupq_n_u32(0x7fff), inf = vdupq_n_u32(0x7f800000);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32x4_t x = vreinterpretq_u32_f32(vld1q_f32(src + i));
        const uint32x4_t lsb = vandq_u32(vshrq_n_u32(x, 16), one);
        const uint32x4_t r = vshrq_n_u32(vaddq_u32(x, vaddq_u32(bias, lsb)), 16);
        const uint32x4_t qnan = vorrq_u32(vshrq_n_u32(x, 16), vdupq_n_u32(64));
        const uint32x4_t isnan = vcgtq_u32(vandq_u32(x, vdupq_n_u32(0x7fffffff)), inf);
        vst1_u16(y + i, vmovn_u32(vbslq_u32(isnan, qnan, r)));
    }
    for (; i < n; i++) y[i] = fr_f32_to_bf16(src[i]);
}

/* The largest |x| of 32 floats. */
INLINE float amax32(const float *x) {
    float32x4_t m = vabsq_f32(vld1q_f32(x));
    for (int k = 4; k < 32; k += 4) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(x + k)));
    return vmaxvq_f32(m);
}

/* 32 floats·id → 32 int8 rounded half away from zero (FCVTAS = roundf),
 * stored at q; returns Σq. */
INLINE int round32(const float *x, float id, int8_t *q) {
    const float32x4_t v = vdupq_n_f32(id);
    int32x4_t sum = vdupq_n_s32(0);
    for (int k = 0; k < 32; k += 8) {
        const int32x4_t i0 = vcvtaq_s32_f32(vmulq_f32(vld1q_f32(x + k), v));
        const int32x4_t i1 = vcvtaq_s32_f32(vmulq_f32(vld1q_f32(x + k + 4), v));
        sum = vaddq_s32(sum, vaddq_s32(i0, i1));
        vst1_s8(q + k, vmovn_s16(vcombine_s16(vmovn_s32(i0), vmovn_s32(i1))));
    }
    return vaddvq_s32(sum);
}

void fr__neon_quantize_q8_0(const float *src, void *dst, int64_t n) {
    fr_block_q8_0 *y = dst;
    for (int64_t b = 0; b < n / 32; b++, src += 32) {
        const float amax = amax32(src);
        const float d = amax / 127, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = fr_f32_to_f16(d);
        round32(src, id, y[b].qs);
    }
}

void fr__neon_quantize_q8_1(const float *src, void *dst, int64_t n) {
    fr_block_q8_1 *y = dst;
    for (int64_t b = 0; b < n / 32; b++, src += 32) {
        const float amax = amax32(src);
        const float d = amax / 127, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = fr_f32_to_f16(d);
        const int sum = round32(src, id, y[b].qs);
        y[b].s = fr_f32_to_f16((float)sum * d);
    }
}

void fr__neon_quantize_q8_K(const float *src, void *dst, int64_t n) {
    fr_block_q8_K *y = dst;
    for (int64_t b = 0; b < n / FR_QK_K; b++, src += FR_QK_K) {
        float32x4_t m = vdupq_n_f32(0);
        for (int j = 0; j < FR_QK_K; j += 4) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(src + j)));
        const float amax = vmaxvq_f32(m);
        if (amax == 0.0f) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        /* the first element of largest magnitude gives the signed max */
        float max = amax;
        for (int j = 0; j < FR_QK_K; j++)
            if (__builtin_fabsf(src[j]) == amax) { max = src[j]; break; }
        const float iscale = -127.f / max;
        const float32x4_t is = vdupq_n_f32(iscale);
        const int32x4_t lim = vdupq_n_s32(127);
        for (int j = 0; j < FR_QK_K; j += 16) {
            int32x4_t v[4];
            for (int k = 0; k < 4; k++)
                v[k] = vminq_s32(vcvtnq_s32_f32(vmulq_f32(is, vld1q_f32(src + j + 4 * k))), lim);
            const int16x8_t a0 = vcombine_s16(vmovn_s32(v[0]), vmovn_s32(v[1]));
            const int16x8_t a1 = vcombine_s16(vmovn_s32(v[2]), vmovn_s32(v[3]));
            vst1q_s8(y[b].qs + j, vcombine_s8(vmovn_s16(a0), vmovn_s16(a1)));
            y[b].bsums[j / 16] = (int16_t)vaddvq_s32(vaddq_s32(vaddq_s32(v[0], v[1]), vaddq_s32(v[2], v[3])));
        }
        y[b].d = 1 / iscale;
    }
}
#endif
