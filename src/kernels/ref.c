/*
 * ref.c — the plain C reference twins of every row kernel.
 *
 * These define what the SIMD kernels must compute.  They follow the block
 * layouts and formulas of GGUF.md §2 and llama.cpp's reference code:
 *
 *   dequantize  type → f32, one block at a time;
 *   quantize    f32 → type: the activation quantizers (Q8_0, Q8_1, Q8_K,
 *               F16, BF16, F32) and the weight quantizers Q4_0, Q4_1, Q5_0,
 *               Q5_1, Q8_0 (llama.cpp's quantize_row_*_ref rounding);
 *   vec_dot     weight row · activation row already in the weight type's
 *               vec_dot_type.  Quantized dots work in integers inside each
 *               block (or super-block) and apply the float scales once per
 *               block, as llama.cpp does: Σ_b d_w·d_a·Σ q_w·q_a (+ mins).
 *               Float dots (F32, F16, BF16) accumulate in double.
 *
 * n is always a multiple of the type's block size; rows need no alignment
 * beyond their natural 2 bytes (4 for Q8_K and F32).
 */
#include "kernels/kernels_int.h"

#include <math.h>
#include <string.h>

/* ---- dequantize ---- */

void fr__ref_dequantize_f32(const void *src, float *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void fr__ref_dequantize_f16(const void *src, float *dst, int64_t n) {
    const uint16_t *x = src;
    for (int64_t i = 0; i < n; i++) dst[i] = fr_f16_to_f32(x[i]);
}

void fr__ref_dequantize_bf16(const void *src, float *dst, int64_t n) {
    const uint16_t *x = src;
    for (int64_t i = 0; i < n; i++) dst[i] = fr_bf16_to_f32(x[i]);
}

void fr__ref_dequantize_q4_0(const void *src, float *dst, int64_t n) {
    const fr_block_q4_0 *x = src;
    for (int64_t b = 0; b < n / 32; b++, dst += 32) {
        const float d = fr_f16_to_f32(x[b].d);
        for (int j = 0; j < 16; j++) {
            dst[j] = (float)((x[b].qs[j] & 0xF) - 8) * d;
            dst[j + 16] = (float)((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

void fr__ref_dequantize_q4_1(const void *src, float *dst, int64_t n) {
    const fr_block_q4_1 *x = src;
    for (int64_t b = 0; b < n / 32; b++, dst += 32) {
        const float d = fr_f16_to_f32(x[b].d), m = fr_f16_to_f32(x[b].m);
        for (int j = 0; j < 16; j++) {
            dst[j] = (float)(x[b].qs[j] & 0xF) * d + m;
            dst[j + 16] = (float)(x[b].qs[j] >> 4) * d + m;
        }
    }
}

void fr__ref_dequantize_q5_0(const void *src, float *dst, int64_t n) {
    const fr_block_q5_0 *x = src;
    for (int64_t b = 0; b < n / 32; b++, dst += 32) {
        const float d = fr_f16_to_f32(x[b].d);
        uint32_t h;
        memcpy(&h, x[b].qh, 4);
        for (int j = 0; j < 16; j++) {
            int hb0 = (int)((h >> j) & 1) << 4, hb1 = (int)((h >> (j + 16)) & 1) << 4;
            dst[j] = (float)(((x[b].qs[j] & 0xF) | hb0) - 16) * d;
            dst[j + 16] = (float)(((x[b].qs[j] >> 4) | hb1) - 16) * d;
        }
    }
}

void fr__ref_dequantize_q5_1(const void *src, float *dst, int64_t n) {
    const fr_block_q5_1 *x = src;
    for (int64_t b = 0; b < n / 32; b++, dst += 32) {
        const float d = fr_f16_to_f32(x[b].d), m = fr_f16_to_f32(x[b].m);
        uint32_t h;
        memcpy(&h, x[b].qh, 4);
        for (int j = 0; j < 16; j++) {
            int hb0 = (int)((h >> j) & 1) << 4, hb1 = (int)((h >> (j + 16)) & 1) << 4;
            dst[j] = (float)((x[b].qs[j] & 0xF) | hb0) * d + m;
            dst[j + 16] = (float)((x[b].qs[j] >> 4) | hb1) * d + m;
        }
    }
}

void fr__ref_dequantize_q8_0(const void *src, float *dst, int64_t n) {
    const fr_block_q8_0 *x = src;
    for (int64_t b = 0; b < n / 32; b++, dst += 32) {
        const float d = fr_f16_to_f32(x[b].d);
        for (int j = 0; j < 32; j++) dst[j] = (float)x[b].qs[j] * d;
    }
}

void fr__ref_dequantize_q8_1(const void *src, float *dst, int64_t n) {
    const fr_block_q8_1 *x = src;
    for (int64_t b = 0; b < n / 32; b++, dst += 32) {
        const float d = fr_f16_to_f32(x[b].d);
        for (int j = 0; j < 32; j++) dst[j] = (float)x[b].qs[j] * d;
    }
}

/* Q2_K: 2 halves of 128; in each, shift 2j picks 32 codes from qs[32h..]
 * for sub-blocks 8h+2j (first 16) and 8h+2j+1 (next 16). */
void fr__ref_dequantize_q2_K(const void *src, float *dst, int64_t n) {
    const fr_block_q2_K *x = src;
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const float d = fr_f16_to_f32(x[b].d), dmin = fr_f16_to_f32(x[b].dmin);
        const uint8_t *q = x[b].qs;
        int is = 0;
        for (int h = 0; h < 2; h++, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int s = 0; s < 2; s++) {
                    const uint8_t sc = x[b].scales[is++];
                    const float dl = d * (float)(sc & 0xF), ml = dmin * (float)(sc >> 4);
                    for (int l = 0; l < 16; l++)
                        *dst++ = dl * (float)((q[16 * s + l] >> shift) & 3) - ml;
                }
            }
        }
    }
}

/* Q3_K's 16 signed six-bit scales (−32..31) from the 12 packed bytes. */
static void q3_K_scales(const uint8_t *b, int8_t *out) {
    for (int j = 0; j < 16; j++) {
        int low4 = j < 8 ? (b[j] & 0xF) : (b[j - 8] >> 4);
        int high2 = (b[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = (int8_t)((low4 | high2 << 4) - 32);
    }
}

void fr__ref_dequantize_q3_K(const void *src, float *dst, int64_t n) {
    const fr_block_q3_K *x = src;
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const float d = fr_f16_to_f32(x[b].d);
        int8_t sc[16];
        q3_K_scales(x[b].scales, sc);
        const uint8_t *q = x[b].qs;
        uint8_t m = 1;
        int is = 0;
        for (int h = 0; h < 2; h++, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
                for (int s = 0; s < 2; s++) {
                    const float dl = d * (float)sc[is++];
                    for (int l = 0; l < 16; l++) {
                        int v = ((q[16 * s + l] >> shift) & 3) - ((x[b].hmask[16 * s + l] & m) ? 0 : 4);
                        *dst++ = dl * (float)v;
                    }
                }
            }
        }
    }
}

void fr__ref_dequantize_q4_K(const void *src, float *dst, int64_t n) {
    const fr_block_q4_K *x = src;
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const float d = fr_f16_to_f32(x[b].d), dmin = fr_f16_to_f32(x[b].dmin);
        const uint8_t *q = x[b].qs;
        for (int c = 0; c < 4; c++, q += 32) {
            uint8_t sc, m;
            fr__get_scale_min_k4(2 * c, x[b].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            fr__get_scale_min_k4(2 * c + 1, x[b].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) *dst++ = d1 * (float)(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) *dst++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

void fr__ref_dequantize_q5_K(const void *src, float *dst, int64_t n) {
    const fr_block_q5_K *x = src;
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const float d = fr_f16_to_f32(x[b].d), dmin = fr_f16_to_f32(x[b].dmin);
        const uint8_t *q = x[b].qs, *qh = x[b].qh;
        uint8_t u1 = 1, u2 = 2;
        for (int c = 0; c < 4; c++, q += 32, u1 <<= 2, u2 <<= 2) {
            uint8_t sc, m;
            fr__get_scale_min_k4(2 * c, x[b].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            fr__get_scale_min_k4(2 * c + 1, x[b].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++)
                *dst++ = d1 * (float)((q[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++)
                *dst++ = d2 * (float)((q[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

void fr__ref_dequantize_q6_K(const void *src, float *dst, int64_t n) {
    const fr_block_q6_K *x = src;
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const float d = fr_f16_to_f32(x[b].d);
        const uint8_t *ql = x[b].ql, *qh = x[b].qh;
        const int8_t *sc = x[b].scales;
        for (int h = 0; h < 2; h++, dst += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
                const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                dst[l] = d * (float)sc[is + 0] * (float)q1;
                dst[l + 32] = d * (float)sc[is + 2] * (float)q2;
                dst[l + 64] = d * (float)sc[is + 4] * (float)q3;
                dst[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

void fr__ref_dequantize_q8_K(const void *src, float *dst, int64_t n) {
    const fr_block_q8_K *x = src;
    for (int64_t b = 0; b < n / FR_QK_K; b++, dst += FR_QK_K)
        for (int j = 0; j < FR_QK_K; j++) dst[j] = x[b].d * (float)x[b].qs[j];
}

/* ---- quantize ---- */

void fr__ref_quantize_f32(const float *src, void *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void fr__ref_quantize_f16(const float *src, void *dst, int64_t n) {
    uint16_t *y = dst;
    for (int64_t i = 0; i < n; i++) y[i] = fr_f32_to_f16(src[i]);
}

void fr__ref_quantize_bf16(const float *src, void *dst, int64_t n) {
    uint16_t *y = dst;
    for (int64_t i = 0; i < n; i++) y[i] = fr_f32_to_bf16(src[i]);
}

/* Q4_0: d = (signed value of largest magnitude) / −8, so that value maps
 * to code 0 and the opposite end clamps at 15. */
void fr__ref_quantize_q4_0(const float *src, void *dst, int64_t n) {
    fr_block_q4_0 *y = dst;
    for (int64_t b = 0; b < n / 32; b++, src += 32) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; j++)
            if (amax < fabsf(src[j])) { amax = fabsf(src[j]); max = src[j]; }
        const float d = max / -8, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = fr_f32_to_f16(d);
        for (int j = 0; j < 16; j++) {
            int8_t x0 = (int8_t)(src[j] * id + 8.5f), x1 = (int8_t)(src[j + 16] * id + 8.5f);
            uint8_t q0 = (uint8_t)(x0 < 15 ? x0 : 15), q1 = (uint8_t)(x1 < 15 ? x1 : 15);
            y[b].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

void fr__ref_quantize_q4_1(const float *src, void *dst, int64_t n) {
    fr_block_q4_1 *y = dst;
    for (int64_t b = 0; b < n / 32; b++, src += 32) {
        float min = INFINITY, max = -INFINITY;
        for (int j = 0; j < 32; j++) {
            if (src[j] < min) min = src[j];
            if (src[j] > max) max = src[j];
        }
        const float d = (max - min) / 15, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = fr_f32_to_f16(d);
        y[b].m = fr_f32_to_f16(min);
        for (int j = 0; j < 16; j++) {
            int8_t x0 = (int8_t)((src[j] - min) * id + 0.5f);
            int8_t x1 = (int8_t)((src[j + 16] - min) * id + 0.5f);
            uint8_t q0 = (uint8_t)(x0 < 15 ? x0 : 15), q1 = (uint8_t)(x1 < 15 ? x1 : 15);
            y[b].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

void fr__ref_quantize_q5_0(const float *src, void *dst, int64_t n) {
    fr_block_q5_0 *y = dst;
    for (int64_t b = 0; b < n / 32; b++, src += 32) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; j++)
            if (amax < fabsf(src[j])) { amax = fabsf(src[j]); max = src[j]; }
        const float d = max / -16, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = fr_f32_to_f16(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int8_t x0 = (int8_t)(src[j] * id + 16.5f), x1 = (int8_t)(src[j + 16] * id + 16.5f);
            uint8_t q0 = (uint8_t)(x0 < 31 ? x0 : 31), q1 = (uint8_t)(x1 < 31 ? x1 : 31);
            y[b].qs[j] = (uint8_t)((q0 & 0xF) | (q1 & 0xF) << 4);
            qh |= (uint32_t)((q0 & 0x10) >> 4) << j;
            qh |= (uint32_t)((q1 & 0x10) >> 4) << (j + 16);
        }
        memcpy(y[b].qh, &qh, 4);
    }
}

void fr__ref_quantize_q5_1(const float *src, void *dst, int64_t n) {
    fr_block_q5_1 *y = dst;
    for (int64_t b = 0; b < n / 32; b++, src += 32) {
        float min = INFINITY, max = -INFINITY;
        for (int j = 0; j < 32; j++) {
            if (src[j] < min) min = src[j];
            if (src[j] > max) max = src[j];
        }
        const float d = (max - min) / 31, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = fr_f32_to_f16(d);
        y[b].m = fr_f32_to_f16(min);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            /* (max − min)·id may round a hair above 31; clamp as Q4_1 does */
            int x0 = (int)((src[j] - min) * id + 0.5f), x1 = (int)((src[j + 16] - min) * id + 0.5f);
            uint8_t q0 = (uint8_t)(x0 < 31 ? x0 : 31), q1 = (uint8_t)(x1 < 31 ? x1 : 31);
            y[b].qs[j] = (uint8_t)((q0 & 0xF) | (q1 & 0xF) << 4);
            qh |= (uint32_t)((q0 & 0x10) >> 4) << j;
            qh |= (uint32_t)((q1 & 0x10) >> 4) << (j + 16);
        }
        memcpy(y[b].qh, &qh, 4);
    }
}

/* roundf (half away from zero) for |x| < 2^31, without the libm call that
 * baseline x86-64 code makes for roundf. */
static inline int round_away(float x) {
    const int i = (int)x;            /* toward zero */
    const float frac = x - (float)i; /* exact */
    return i + (frac >= 0.5f) - (frac <= -0.5f);
}

/* Q8_0 (reference rounding: roundf, half away from zero). */
void fr__ref_quantize_q8_0(const float *src, void *dst, int64_t n) {
    fr_block_q8_0 *y = dst;
    for (int64_t b = 0; b < n / 32; b++, src += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) if (fabsf(src[j]) > amax) amax = fabsf(src[j]);
        const float d = amax / 127, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = fr_f32_to_f16(d);
        for (int j = 0; j < 32; j++) y[b].qs[j] = (int8_t)round_away(src[j] * id);
    }
}

/* Q8_1: Q8_0 plus s = d·Σq (d before its rounding to f16). */
void fr__ref_quantize_q8_1(const float *src, void *dst, int64_t n) {
    fr_block_q8_1 *y = dst;
    for (int64_t b = 0; b < n / 32; b++, src += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) if (fabsf(src[j]) > amax) amax = fabsf(src[j]);
        const float d = amax / 127, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = fr_f32_to_f16(d);
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            y[b].qs[j] = (int8_t)round_away(src[j] * id);
            sum += y[b].qs[j];
        }
        y[b].s = fr_f32_to_f16((float)sum * d);
    }
}

/* Q8_K: the scale comes from the signed value of largest magnitude, which
 * maps to −127; d = 1/iscale may be negative.  nearest_int rounds half to
 * even. */
void fr__ref_quantize_q8_K(const float *src, void *dst, int64_t n) {
    fr_block_q8_K *y = dst;
    for (int64_t b = 0; b < n / FR_QK_K; b++, src += FR_QK_K) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < FR_QK_K; j++)
            if (fabsf(src[j]) > amax) { amax = fabsf(src[j]); max = src[j]; }
        if (amax == 0.0f) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < FR_QK_K; j++) {
            int v = fr__nearest_int(iscale * src[j]);
            y[b].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int k = 0; k < 16; k++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += y[b].qs[16 * k + l];
            y[b].bsums[k] = (int16_t)sum;
        }
        y[b].d = 1 / iscale;
    }
}

/* ---- dot products ---- */

float fr__ref_vec_dot_f32(int64_t n, const void *w, const void *a) {
    const float *x = w, *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)(x[i] * y[i]);
    return (float)sum;
}

float fr__ref_vec_dot_f16(int64_t n, const void *w, const void *a) {
    const uint16_t *x = w, *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)(fr_f16_to_f32(x[i]) * fr_f16_to_f32(y[i]));
    return (float)sum;
}

float fr__ref_vec_dot_bf16(int64_t n, const void *w, const void *a) {
    const uint16_t *x = w, *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)(fr_bf16_to_f32(x[i]) * fr_bf16_to_f32(y[i]));
    return (float)sum;
}

float fr__ref_vec_dot_q4_0_q8_0(int64_t n, const void *w, const void *a) {
    const fr_block_q4_0 *x = w;
    const fr_block_q8_0 *y = a;
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            sumi += ((x[b].qs[j] & 0xF) - 8) * y[b].qs[j];
            sumi += ((x[b].qs[j] >> 4) - 8) * y[b].qs[j + 16];
        }
        sumf += (float)sumi * (fr_f16_to_f32(x[b].d) * fr_f16_to_f32(y[b].d));
    }
    return sumf;
}

float fr__ref_vec_dot_q4_1_q8_1(int64_t n, const void *w, const void *a) {
    const fr_block_q4_1 *x = w;
    const fr_block_q8_1 *y = a;
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            sumi += (x[b].qs[j] & 0xF) * y[b].qs[j];
            sumi += (x[b].qs[j] >> 4) * y[b].qs[j + 16];
        }
        sumf += (fr_f16_to_f32(x[b].d) * fr_f16_to_f32(y[b].d)) * (float)sumi +
                fr_f16_to_f32(x[b].m) * fr_f16_to_f32(y[b].s);
    }
    return sumf;
}

float fr__ref_vec_dot_q5_0_q8_0(int64_t n, const void *w, const void *a) {
    const fr_block_q5_0 *x = w;
    const fr_block_q8_0 *y = a;
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        uint32_t h;
        memcpy(&h, x[b].qh, 4);
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            int hb0 = (int)((h >> j) & 1) << 4, hb1 = (int)((h >> (j + 16)) & 1) << 4;
            sumi += (((x[b].qs[j] & 0xF) | hb0) - 16) * y[b].qs[j];
            sumi += (((x[b].qs[j] >> 4) | hb1) - 16) * y[b].qs[j + 16];
        }
        sumf += (fr_f16_to_f32(x[b].d) * fr_f16_to_f32(y[b].d)) * (float)sumi;
    }
    return sumf;
}

float fr__ref_vec_dot_q5_1_q8_1(int64_t n, const void *w, const void *a) {
    const fr_block_q5_1 *x = w;
    const fr_block_q8_1 *y = a;
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        uint32_t h;
        memcpy(&h, x[b].qh, 4);
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            int hb0 = (int)((h >> j) & 1) << 4, hb1 = (int)((h >> (j + 16)) & 1) << 4;
            sumi += ((x[b].qs[j] & 0xF) | hb0) * y[b].qs[j];
            sumi += ((x[b].qs[j] >> 4) | hb1) * y[b].qs[j + 16];
        }
        sumf += (fr_f16_to_f32(x[b].d) * fr_f16_to_f32(y[b].d)) * (float)sumi +
                fr_f16_to_f32(x[b].m) * fr_f16_to_f32(y[b].s);
    }
    return sumf;
}

float fr__ref_vec_dot_q8_0_q8_0(int64_t n, const void *w, const void *a) {
    const fr_block_q8_0 *x = w;
    const fr_block_q8_0 *y = a;
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        int sumi = 0;
        for (int j = 0; j < 32; j++) sumi += x[b].qs[j] * y[b].qs[j];
        sumf += (float)sumi * (fr_f16_to_f32(x[b].d) * fr_f16_to_f32(y[b].d));
    }
    return sumf;
}

/* K-quants: per super-block, isum = Σ_sub scale·Σ q·a in int32, then
 * sumf += (d_w·d_a)·isum − (dmin_w·d_a)·Σ_sub min·bsum. */

float fr__ref_vec_dot_q2_K_q8_K(int64_t n, const void *w, const void *a) {
    const fr_block_q2_K *x = w;
    const fr_block_q8_K *y = a;
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const uint8_t *q2 = x[b].qs, *sc = x[b].scales;
        const int8_t *q8 = y[b].qs;
        int summs = 0;
        for (int j = 0; j < 16; j++) summs += y[b].bsums[j] * (sc[j] >> 4);
        int isum = 0, is = 0;
        for (int h = 0; h < 2; h++, q2 += 32) {
            for (int shift = 0; shift < 8; shift += 2, q8 += 32) {
                for (int s = 0; s < 2; s++) {
                    int isuml = 0;
                    for (int l = 16 * s; l < 16 * s + 16; l++) isuml += q8[l] * ((q2[l] >> shift) & 3);
                    isum += (sc[is++] & 0xF) * isuml;
                }
            }
        }
        const float dall = y[b].d * fr_f16_to_f32(x[b].d);
        const float dmin = y[b].d * fr_f16_to_f32(x[b].dmin);
        sumf += dall * (float)isum - dmin * (float)summs;
    }
    return sumf;
}

float fr__ref_vec_dot_q3_K_q8_K(int64_t n, const void *w, const void *a) {
    const fr_block_q3_K *x = w;
    const fr_block_q8_K *y = a;
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        int8_t sc[16];
        q3_K_scales(x[b].scales, sc);
        const uint8_t *q = x[b].qs, *hm = x[b].hmask;
        const int8_t *q8 = y[b].qs;
        uint8_t m = 1;
        int isum = 0, is = 0;
        for (int h = 0; h < 2; h++, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, m <<= 1, q8 += 32) {
                for (int s = 0; s < 2; s++) {
                    int isuml = 0;
                    for (int l = 16 * s; l < 16 * s + 16; l++) {
                        int v = ((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4);
                        isuml += v * q8[l];
                    }
                    isum += sc[is++] * isuml;
                }
            }
        }
        sumf += (fr_f16_to_f32(x[b].d) * y[b].d) * (float)isum;
    }
    return sumf;
}

float fr__ref_vec_dot_q4_K_q8_K(int64_t n, const void *w, const void *a) {
    const fr_block_q4_K *x = w;
    const fr_block_q8_K *y = a;
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const uint8_t *q = x[b].qs;
        const int8_t *q8 = y[b].qs;
        int isum = 0, summs = 0;
        for (int c = 0; c < 4; c++, q += 32, q8 += 64) {
            uint8_t sc0, m0, sc1, m1;
            fr__get_scale_min_k4(2 * c, x[b].scales, &sc0, &m0);
            fr__get_scale_min_k4(2 * c + 1, x[b].scales, &sc1, &m1);
            int s0 = 0, s1 = 0;
            for (int l = 0; l < 32; l++) {
                s0 += (q[l] & 0xF) * q8[l];
                s1 += (q[l] >> 4) * q8[l + 32];
            }
            isum += sc0 * s0 + sc1 * s1;
            summs += m0 * (y[b].bsums[4 * c] + y[b].bsums[4 * c + 1]) +
                     m1 * (y[b].bsums[4 * c + 2] + y[b].bsums[4 * c + 3]);
        }
        const float d = fr_f16_to_f32(x[b].d) * y[b].d;
        const float dmin = fr_f16_to_f32(x[b].dmin) * y[b].d;
        sumf += d * (float)isum - dmin * (float)summs;
    }
    return sumf;
}

float fr__ref_vec_dot_q5_K_q8_K(int64_t n, const void *w, const void *a) {
    const fr_block_q5_K *x = w;
    const fr_block_q8_K *y = a;
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const uint8_t *q = x[b].qs, *qh = x[b].qh;
        const int8_t *q8 = y[b].qs;
        int isum = 0, summs = 0;
        for (int c = 0; c < 4; c++, q += 32, q8 += 64) {
            uint8_t sc0, m0, sc1, m1;
            fr__get_scale_min_k4(2 * c, x[b].scales, &sc0, &m0);
            fr__get_scale_min_k4(2 * c + 1, x[b].scales, &sc1, &m1);
            int s0 = 0, s1 = 0;
            for (int l = 0; l < 32; l++) {
                int v0 = (q[l] & 0xF) | ((qh[l] >> (2 * c)) & 1) << 4;
                int v1 = (q[l] >> 4) | ((qh[l] >> (2 * c + 1)) & 1) << 4;
                s0 += v0 * q8[l];
                s1 += v1 * q8[l + 32];
            }
            isum += sc0 * s0 + sc1 * s1;
            summs += m0 * (y[b].bsums[4 * c] + y[b].bsums[4 * c + 1]) +
                     m1 * (y[b].bsums[4 * c + 2] + y[b].bsums[4 * c + 3]);
        }
        const float d = fr_f16_to_f32(x[b].d) * y[b].d;
        const float dmin = fr_f16_to_f32(x[b].dmin) * y[b].d;
        sumf += d * (float)isum - dmin * (float)summs;
    }
    return sumf;
}

float fr__ref_vec_dot_q6_K_q8_K(int64_t n, const void *w, const void *a) {
    const fr_block_q6_K *x = w;
    const fr_block_q8_K *y = a;
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const uint8_t *ql = x[b].ql, *qh = x[b].qh;
        const int8_t *sc = x[b].scales, *q8 = y[b].qs;
        int isum = 0;
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, q8 += 128) {
            int s[8] = {0};  /* sub-block sums: s[2k + l/16] for quarter k */
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
                const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                s[is + 0] += q1 * q8[l];
                s[is + 2] += q2 * q8[l + 32];
                s[is + 4] += q3 * q8[l + 64];
                s[is + 6] += q4 * q8[l + 96];
            }
            for (int k = 0; k < 8; k++) isum += sc[k] * s[k];
        }
        sumf += (fr_f16_to_f32(x[b].d) * y[b].d) * (float)isum;
    }
    return sumf;
}
