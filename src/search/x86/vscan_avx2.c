/*
 * x86/vscan_avx2.c — the int8 dot kernel (vscan.h) on AVX2: 32 codes per
 * step, |q| · (v with the sign of q) by vpmaddubsw (unsigned × signed
 * bytes into pairs of int16: at most 2·127·127 = 32258, no saturation),
 * vpmaddwd against ones into int32 lanes.  Four rows at a time share the
 * query's loads.  Compiled with -mavx2 (Makefile: *_avx2.c); vscan.c
 * calls it only when the CPU has AVX2.
 */
#include <immintrin.h>

#include "search/vscan.h"

static inline int32_t hsum(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

static inline __m256i step(__m256i acc, __m256i ax, __m256i qv, const int8_t *p, __m256i ones) {
    __m256i v = _mm256_loadu_si256((const __m256i *)p);
    __m256i p16 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(v, qv));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, ones));
}

void fr__vscan_dot_avx2(const int8_t *q, const int8_t *rows, size_t n, size_t dim_pad, int32_t *out) {
    const __m256i ones = _mm256_set1_epi16(1);
    size_t r = 0;
    for (; r + 4 <= n; r += 4) {
        const int8_t *v0 = rows + r * dim_pad, *v1 = v0 + dim_pad, *v2 = v1 + dim_pad, *v3 = v2 + dim_pad;
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t d = 0; d < dim_pad; d += 32) {
            __m256i qv = _mm256_loadu_si256((const __m256i *)(q + d));
            __m256i ax = _mm256_sign_epi8(qv, qv);
            a0 = step(a0, ax, qv, v0 + d, ones);
            a1 = step(a1, ax, qv, v1 + d, ones);
            a2 = step(a2, ax, qv, v2 + d, ones);
            a3 = step(a3, ax, qv, v3 + d, ones);
        }
        out[r] = hsum(a0);
        out[r + 1] = hsum(a1);
        out[r + 2] = hsum(a2);
        out[r + 3] = hsum(a3);
    }
    for (; r < n; r++) {
        const int8_t *v = rows + r * dim_pad;
        __m256i a = _mm256_setzero_si256();
        for (size_t d = 0; d < dim_pad; d += 32) {
            __m256i qv = _mm256_loadu_si256((const __m256i *)(q + d));
            a = step(a, _mm256_sign_epi8(qv, qv), qv, v + d, ones);
        }
        out[r] = hsum(a);
    }
}
