/*
 * x86_avx512.c — AVX-512 VNNI row kernels (compiled with the AVX-512
 * F/BW/VL/DQ/VNNI/BF16 flags; kernels.c calls them only when fr_cpu()
 * reports AVX-512 F, BW, VL and VNNI).  They run on 256-bit registers:
 * the gain is vpdpbusd (u8×s8 → int32, four products summed per lane, in
 * one instruction) replacing maddubs + madd + add.
 *
 * Each function computes exactly what its x86_avx2.c namesake computes:
 * the same int32 lane sums, the same float operations in the same order,
 * so the results are bit-identical to the AVX2 versions (test_simd checks
 * that) and within the twins' tolerances of ref.c.
 */
#include <immintrin.h>

#include "kernels/kernels_int.h"

static inline float hsum_f32x8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float f16(uint16_t h) {
    return _cvtsh_ss(h);
}

/* 16 packed nibbles → 32 bytes: low nibbles first, then high nibbles. */
static inline __m256i nibbles_32(const uint8_t *qs) {
    const __m128i t = _mm_loadu_si128((const __m128i *)qs);
    const __m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(b, _mm256_set1_epi8(0xF));
}

/* [Σ p0, Σ p1, Σ p2, Σ p3] over the 8 int32 lanes of each (exact). */
static inline __m128i sum4_i32x8(__m256i p0, __m256i p1, __m256i p2, __m256i p3) {
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* Four f16 values → four floats (gathered with scalar loads). */
static inline __m128 f16x4(uint16_t h0, uint16_t h1, uint16_t h2, uint16_t h3) {
    const uint64_t v = (uint64_t)h0 | (uint64_t)h1 << 16 | (uint64_t)h2 << 32 | (uint64_t)h3 << 48;
    return _mm_cvtph_ps(_mm_cvtsi64_si128((long long)v));
}

/* −8·Σa per 4-byte group of an activation block: the accumulator input of
 * vpdpbusd, so that one instruction gives Σ (q−8)·a per group. */
static inline __m256i q4_0_offset(__m256i yv) {
    return _mm256_sub_epi32(_mm256_setzero_si256(),
                            _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(8), yv));
}

/* Q4_0·Q8_0, nr (1 or 4) rows, computing exactly what x86_avx2.c's
 * q4_0_rows computes (same int32 lanes, same float chain per row): the
 * accumulator input of vpdpbusd carries the −8·Σa offset. */
static inline __attribute__((always_inline)) void
q4_0_rows(int64_t n, const void *w, size_t stride, const void *a, float *out, const int nr) {
    const fr_block_q8_0 *y = a;
    const int64_t nb = n / 32;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b = 0; b < nb; b++) {
        const __m256i yv = _mm256_loadu_si256((const __m256i *)y[b].qs);
        const __m256i off = q4_0_offset(yv);
        const float dy = f16(y[b].d);
        for (int r = 0; r < nr; r++) {
            const fr_block_q4_0 *x = (const fr_block_q4_0 *)((const char *)w + (size_t)r * stride) + b;
            const __m256i p = _mm256_dpbusd_epi32(off, nibbles_32(x->qs), yv);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(f16(x->d) * dy), _mm256_cvtepi32_ps(p), acc[r]);
        }
    }
    for (int r = 0; r < nr; r++) out[r] = hsum_f32x8(acc[r]);
}

float fr__avx512_vec_dot_q4_0_q8_0(int64_t n, const void *w, const void *a) {
    float out;
    q4_0_rows(n, w, 0, a, &out, 1);
    return out;
}

void fr__avx512_vec_dot4_q4_0_q8_0(int64_t n, const void *w, size_t stride, const void *a, float *out) {
    q4_0_rows(n, w, stride, a, out, 4);
}

/* Q4_0·Q8_0 for 4 weight rows × 4 activation rows (prefill):
 * out[4·t + r] = row r · activation t.  The codes and scales of each
 * weight block are unpacked once for the four activation rows.  Per block,
 * the 16 integer sums are reduced exactly (four per xmm, one lane per row)
 * and scaled in four-lane floats as the twin does it in scalar code:
 * sumf += (float)sumi·(d_w·d_a).  So each output is bit-identical to
 * fr__ref_vec_dot_q4_0_q8_0, and within float rounding of vec_dot, whose
 * lanes accumulate in a different order.  (The same scheme for Q8_0
 * weights measured slower than its vec_dot, so Q8_0 has none.) */
void fr__avx512_vec_dot4x4_q4_0_q8_0(int64_t n, const void *w, size_t wstride, const void *a,
                                     size_t astride, float *out) {
    const int64_t nb = n / 32;
    const fr_block_q4_0 *x[4];
    const fr_block_q8_0 *y[4];
    for (int r = 0; r < 4; r++) x[r] = (const fr_block_q4_0 *)((const char *)w + (size_t)r * wstride);
    for (int t = 0; t < 4; t++) y[t] = (const fr_block_q8_0 *)((const char *)a + (size_t)t * astride);
    __m128 acc[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
    for (int64_t b = 0; b < nb; b++) {
        __m256i q[4];
        for (int r = 0; r < 4; r++) q[r] = nibbles_32(x[r][b].qs);
        const __m128 dw = f16x4(x[0][b].d, x[1][b].d, x[2][b].d, x[3][b].d);
        for (int t = 0; t < 4; t++) {
            const __m256i yv = _mm256_loadu_si256((const __m256i *)y[t][b].qs);
            const __m256i off = q4_0_offset(yv);
            const __m128i s = sum4_i32x8(_mm256_dpbusd_epi32(off, q[0], yv), _mm256_dpbusd_epi32(off, q[1], yv),
                                         _mm256_dpbusd_epi32(off, q[2], yv), _mm256_dpbusd_epi32(off, q[3], yv));
            const __m128 d = _mm_mul_ps(dw, _mm_set1_ps(f16(y[t][b].d)));
            acc[t] = _mm_add_ps(acc[t], _mm_mul_ps(_mm_cvtepi32_ps(s), d));
        }
    }
    for (int t = 0; t < 4; t++) _mm_storeu_ps(out + 4 * t, acc[t]);
}

/* Q8_0·Q8_0 with the sign trick: |w| unsigned, a carrying w's sign. */
float fr__avx512_vec_dot_q8_0_q8_0(int64_t n, const void *w, const void *a) {
    const fr_block_q8_0 *x = w;
    const fr_block_q8_0 *y = a;
    const int64_t nb = n / 32;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t b = 0;
#define DOT(i) _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(),                           \
        _mm256_abs_epi8(_mm256_loadu_si256((const __m256i *)x[i].qs)),                                   \
        _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)y[i].qs),                                   \
                         _mm256_loadu_si256((const __m256i *)x[i].qs))))
    for (; b + 2 <= nb; b += 2) {
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[b].d) * f16(y[b].d)), DOT(b), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[b + 1].d) * f16(y[b + 1].d)), DOT(b + 1), acc1);
    }
    for (; b < nb; b++) acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[b].d) * f16(y[b].d)), DOT(b), acc0);
#undef DOT
    return hsum_f32x8(_mm256_add_ps(acc0, acc1));
}
