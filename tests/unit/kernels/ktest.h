/*
 * ktest.h — helpers shared by the kernel tests: a seeded PRNG and builders
 * of random weight rows for every computable type.
 */
#ifndef FR_TEST_KTEST_H
#define FR_TEST_KTEST_H

#include <stdint.h>
#include <string.h>

#include "kernels/kernels_int.h"

/* The weight types the kernels compute, in type-id order. */
static const int ktest_types[] = {
    FR_TYPE_F32, FR_TYPE_F16, FR_TYPE_Q4_0, FR_TYPE_Q4_1, FR_TYPE_Q5_0, FR_TYPE_Q5_1,
    FR_TYPE_Q8_0, FR_TYPE_Q2_K, FR_TYPE_Q3_K, FR_TYPE_Q4_K, FR_TYPE_Q5_K, FR_TYPE_Q6_K,
    FR_TYPE_BF16,
};
#define KTEST_NTYPES ((int)(sizeof ktest_types / sizeof ktest_types[0]))

static uint64_t ktest_state = 0x9e3779b97f4a7c15ull;

static inline void ktest_seed(uint64_t s) { ktest_state = s * 0x9e3779b97f4a7c15ull + 1; }

static inline uint32_t ktest_u32(void) {
    uint64_t x = ktest_state;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    ktest_state = x;
    return (uint32_t)(x >> 32);
}

/* uniform in [lo, hi) */
static inline float ktest_uniform(float lo, float hi) {
    return lo + (hi - lo) * (float)(ktest_u32() >> 8) * (1.0f / 16777216.0f);
}

/* roughly normal, mean 0, deviation s (sum of 4 uniforms) */
static inline float ktest_normal(float s) {
    float v = 0;
    for (int i = 0; i < 4; i++) v += ktest_uniform(-1.0f, 1.0f);
    return v * s * 0.866f;
}

static inline void ktest_fill(float *x, int64_t n, float s) {
    for (int64_t i = 0; i < n; i++) x[i] = ktest_normal(s);
}

static inline uint16_t ktest_half(float lo, float hi) {
    return fr_f32_to_f16(ktest_uniform(lo, hi));
}

/* A random row of n elements of weight type `type` into dst (row-size
 * bytes).  Types with a weight quantizer quantize random floats with the
 * reference twin; K-quants get random code bytes with sane f16 scales. */
static inline void ktest_weight_row(int type, void *dst, int64_t n, float *tmp) {
    const fr_type_ops *ops = fr_kernels_ref(type);
    if (ops->quantize) {
        ktest_fill(tmp, n, 1.0f);
        ops->quantize(tmp, dst, n);
        return;
    }
    size_t bytes;
    fr_type_row_size(type, n, &bytes);
    unsigned char *p = dst;
    for (size_t i = 0; i < bytes; i++) p[i] = (unsigned char)ktest_u32();
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        switch (type) {
        case FR_TYPE_Q2_K: {
            fr_block_q2_K *x = (fr_block_q2_K *)dst + b;
            x->d = ktest_half(0.01f, 0.1f); x->dmin = ktest_half(0.01f, 0.05f);
            break;
        }
        case FR_TYPE_Q3_K: ((fr_block_q3_K *)dst + b)->d = ktest_half(0.005f, 0.05f); break;
        case FR_TYPE_Q4_K: {
            fr_block_q4_K *x = (fr_block_q4_K *)dst + b;
            x->d = ktest_half(0.001f, 0.01f); x->dmin = ktest_half(0.001f, 0.01f);
            break;
        }
        case FR_TYPE_Q5_K: {
            fr_block_q5_K *x = (fr_block_q5_K *)dst + b;
            x->d = ktest_half(0.001f, 0.01f); x->dmin = ktest_half(0.001f, 0.01f);
            break;
        }
        case FR_TYPE_Q6_K: ((fr_block_q6_K *)dst + b)->d = ktest_half(0.0005f, 0.005f); break;
        default: break;
        }
    }
}

/* Elements per block of the type and of its activation type: K must be a
 * multiple of this. */
static inline int64_t ktest_blck(int type) {
    const fr_type_info *t = fr_type_get(type);
    return t->blck < 32 ? 32 : t->blck;
}

#endif
