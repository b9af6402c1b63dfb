/*
 * x86/vscan_avx512.c — the int8 dot kernel (vscan.h) on AVX-512 VNNI: 64
 * codes per step, vpdpbusd of |q| (unsigned bytes) with v negated where q
 * is negative (a masked subtract; codes are in [-127, 127], so −v fits),
 * four int8 products summed into each int32 lane without saturation.
 * Four rows at a time share the query's registers.  Compiled with the
 * AVX-512 flags (Makefile: *_avx512.c); vscan.c calls it only when the
 * CPU has AVX-512 F/BW/VL and VNNI.
 */
#include <immintrin.h>

#include "search/vscan.h"

static inline __m512i step(__m512i acc, __m512i ax, __mmask64 neg, const int8_t *p) {
    __m512i v = _mm512_loadu_si512((const void *)p);
    v = _mm512_mask_sub_epi8(v, neg, _mm512_setzero_si512(), v);
    return _mm512_dpbusd_epi32(acc, ax, v);
}

void fr__vscan_dot_avx512(const int8_t *q, const int8_t *rows, size_t n, size_t dim_pad,
                          int32_t *out) {
    size_t r = 0;
    for (; r + 4 <= n; r += 4) {
        const int8_t *v0 = rows + r * dim_pad, *v1 = v0 + dim_pad, *v2 = v1 + dim_pad, *v3 = v2 + dim_pad;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t d = 0; d < dim_pad; d += 64) {
            __m512i qv = _mm512_loadu_si512((const void *)(q + d));
            __m512i ax = _mm512_abs_epi8(qv);
            __mmask64 neg = _mm512_movepi8_mask(qv);
            a0 = step(a0, ax, neg, v0 + d);
            a1 = step(a1, ax, neg, v1 + d);
            a2 = step(a2, ax, neg, v2 + d);
            a3 = step(a3, ax, neg, v3 + d);
        }
        out[r] = _mm512_reduce_add_epi32(a0);
        out[r + 1] = _mm512_reduce_add_epi32(a1);
        out[r + 2] = _mm512_reduce_add_epi32(a2);
        out[r + 3] = _mm512_reduce_add_epi32(a3);
    }
    for (; r < n; r++) {
        const int8_t *v = rows + r * dim_pad;
        __m512i a = _mm512_setzero_si512();
        for (size_t d = 0; d < dim_pad; d += 64) {
            __m512i qv = _mm512_loadu_si512((const void *)(q + d));
            a = step(a, _mm512_abs_epi8(qv), _mm512_movepi8_mask(qv), v + d);
        }
        out[r] = _mm512_reduce_add_epi32(a);
    }
}
