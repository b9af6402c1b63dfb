/*
 * x86/quants_avx512.c — AVX-512 VNNI row kernels (compiled with the AVX-512
 * F/BW/VL/DQ/VNNI/BF16 flags; kernels.c calls them only when fr_cpu()
 * reports AVX-512 F, BW, VL and VNNI).  They run on 256-bit registers:
 * the gain is vpdpbusd (u8×s8 → int32, four products summed per lane, in
 * one instruction) replacing maddubs + madd + add.
 *
 * Each function computes exactly what its x86/quants_avx2.c namesake computes:
 * the same int32 lane sums, the same float operations in the same order,
 * so the results are bit-identical to the AVX2 versions (test_simd checks
 * that) and within the twins' tolerances of ref.c.
 *
 * The decode GEMVs at the end (fr__gemv: Q4_0, F16) are the exception:
 * they use zmm registers, work on an activation prepared once per matmul,
 * and agree with the twins within the vec_dot tolerances only.
 */
#include <immintrin.h>
#include <string.h>

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

/* Q4_0·Q8_0, nr (1 or 4) rows, computing exactly what x86/quants_avx2.c's
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

/* ---- decode GEMV on a prepared activation (kernels_int.h: fr__gemv) ----
 *
 * Q4_0.  The activation row is quantized to Q8_0 once per matmul (the same
 * codes as fr__avx2_quantize_q8_0) and laid out for the weight loop:
 *     int8 qs[nb][32] | float d[nb] | float off[nb],  off_b = −8·d_b·Σ qs_b,
 * so the −8 of the weight codes costs one FMA per 8 blocks per row
 * (Σ_b d_w·off_b) instead of a vpdpbusd per block.
 *
 * Weight codes: a zmm holds two blocks as [qs0, qs0, qs1, qs1] (16 bytes
 * each); AND with [0x0F.., 0xF0.., 0x0F.., 0xF0..] leaves the low nibbles
 * (elements 0..15) and 16× the high nibbles (elements 16..31) in place, so
 * one vpdpbusd against the activation bytes of the two blocks gives, per
 * block, 4 int32 lanes of Σ lo·a and 4 lanes of 16·Σ hi·a.  The sums of
 * 8 blocks are folded to 2 lanes per block (reduce_pairs: adds and
 * unpacks, exact), then one convert and one FMA by d_w·d_a into float
 * lanes; the 16× is undone once per row (an exact multiply by 1/16 of the
 * affected lanes).  The d_w of 8 blocks come from two 64-byte loads and
 * one vpermt2w.  The last nb % 8 blocks take the same path with masked
 * loads (nothing read past the row; missing blocks have d = 0 and zero
 * codes). */

/* Software prefetch distance in bytes of weights: hardware prefetch alone
 * left the single-row stream ~30% short of its in-cache speed (Q4_0, Q4_K,
 * Q6_K; F16, which streams the most bytes per instruction, measured
 * slower with it and goes without). */
#define PF_DIST 4096

/* The f16 scales of 8 blocks `st` bytes apart (st even, 7·st + 2 <= 128). */
static inline __m256 scales8(const uint8_t *p, __m512i idx) {
    const __m512i a = _mm512_loadu_si512(p), b = _mm512_loadu_si512(p + 64);
    return _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutex2var_epi16(a, idx, b)));
}

static size_t gemv_q4_0_size(int64_t n) {
    return (size_t)(n / 32) * (32 + 4 + 4);
}

static void gemv_q4_0_prepare(const float *x, int64_t n, int64_t b0, int64_t b1, void *prep) {
    const int64_t nb = n / 32;
    int8_t *qs = prep;
    float *d = (float *)(qs + 32 * nb), *off = d + nb;
    for (int64_t b = b0; b < b1; b++) {
        fr_block_q8_0 blk;
        fr__avx2_quantize_q8_0(x + 32 * b, &blk, 32);
        const __m256i q = _mm256_loadu_si256((const __m256i *)blk.qs);
        _mm256_storeu_si256((__m256i *)(qs + 32 * b), q);
        /* Σq exactly: vpdpbusd with all-ones unsigned bytes */
        const __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), q);
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 1));
        d[b] = f16(blk.d);
        off[b] = -8.0f * d[b] * (float)_mm_cvtsi128_si32(s4);
    }
}

/* int32 lane sums (4 codes each) of the Q4_0 blocks at xb and xb + 18
 * against their prepared activations at a; the second block is read only
 * when `two` (otherwise it counts 0). */
static inline __attribute__((always_inline)) __m512i q4_0_pair(const uint8_t *xb, const int8_t *a, __m512i mask,
                                                               const int two) {
    __m512i q = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(xb + 2)));
    q = _mm512_mask_broadcast_i32x4(q, 0xFF00, _mm_maskz_loadu_epi8(two ? 0xFFFF : 0, xb + 20));
    q = _mm512_and_si512(q, mask);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, _mm512_maskz_loadu_epi8(two ? ~0ull : 0xFFFFFFFFull, a));
}

/* Four pair sums (blocks 0..7 of a group) → one vector of 2 lanes per
 * block: 128-bit lane L holds blocks 0 2 4 6 (L = 0, 1) or 1 3 5 7
 * (L = 2, 3), from the same 128-bit lanes of the pairs (so Q4_0's ×16
 * stays in odd L).  Adds only: exact. */
static inline __m512i reduce_pairs(__m512i p0, __m512i p1, __m512i p2, __m512i p3) {
    const __m512i u0 = _mm512_add_epi32(_mm512_unpacklo_epi32(p0, p1), _mm512_unpackhi_epi32(p0, p1));
    const __m512i u1 = _mm512_add_epi32(_mm512_unpacklo_epi32(p2, p3), _mm512_unpackhi_epi32(p2, p3));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(u0, u1), _mm512_unpackhi_epi64(u0, u1));
}

/* One row of Q4_0 against the prepared activation. */
static inline float gemv_q4_0_row(int64_t nb, const uint8_t *x, const int8_t *qs, const float *da,
                                  const float *off) {
    const __m512i mask = _mm512_set_epi64((long long)0xF0F0F0F0F0F0F0F0ull, (long long)0xF0F0F0F0F0F0F0F0ull,
                                          0x0F0F0F0F0F0F0F0Fll, 0x0F0F0F0F0F0F0F0Fll,
                                          (long long)0xF0F0F0F0F0F0F0F0ull, (long long)0xF0F0F0F0F0F0F0F0ull,
                                          0x0F0F0F0F0F0F0F0Fll, 0x0F0F0F0F0F0F0F0Fll);
    /* words 0, 9, 18, .. 63: the d of 8 blocks of 18 bytes */
    const __m512i didx = _mm512_setr_epi32(0 | 9 << 16, 18 | 27 << 16, 36 | 45 << 16, 54 | 63 << 16,
                                           0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    /* the block of each lane of reduce_pairs' result */
    const __m512i sidx = _mm512_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6, 1, 3, 5, 7, 1, 3, 5, 7);
    __m512 acc = _mm512_setzero_ps();
    __m256 acco = _mm256_setzero_ps();
    int64_t b = 0;
#define PAIR(k, m1) q4_0_pair(x + 18 * (b + 2 * (k)), qs + 32 * (b + 2 * (k)), mask, m1)
#define GROUP(p0, p1, p2, p3, s) \
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(reduce_pairs(p0, p1, p2, p3)), _mm512_permutexvar_ps(sidx, s), acc)
    for (; b + 8 <= nb; b += 8) {
        const __m256 dw = scales8(x + 18 * b, didx);
        _mm_prefetch((const char *)x + 18 * b + PF_DIST, _MM_HINT_T0);
        _mm_prefetch((const char *)x + 18 * b + PF_DIST + 64, _MM_HINT_T0);
        _mm_prefetch((const char *)x + 18 * b + PF_DIST + 128, _MM_HINT_T0);
        acco = _mm256_fmadd_ps(dw, _mm256_loadu_ps(off + b), acco);
        const __m512 s = _mm512_castps256_ps512(_mm256_mul_ps(dw, _mm256_loadu_ps(da + b)));
        const __m512i p0 = PAIR(0, 1), p1 = PAIR(1, 1), p2 = PAIR(2, 1), p3 = PAIR(3, 1);
        GROUP(p0, p1, p2, p3, s);
    }
    if (b < nb) { /* the last 1..7 blocks: masked loads, missing blocks count 0 */
        const int cnt = (int)(nb - b), bytes = 18 * cnt;
        const __mmask64 ma = bytes >= 64 ? ~0ull : (1ull << bytes) - 1;
        const __mmask64 mb = bytes <= 64 ? 0 : bytes >= 128 ? ~0ull : (1ull << (bytes - 64)) - 1;
        const __m512i xa = _mm512_maskz_loadu_epi8(ma, x + 18 * b), xc = _mm512_maskz_loadu_epi8(mb, x + 18 * b + 64);
        const __m256 dw = _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutex2var_epi16(xa, didx, xc)));
        const __mmask8 mf = (__mmask8)((1u << cnt) - 1);
        acco = _mm256_fmadd_ps(dw, _mm256_maskz_loadu_ps(mf, off + b), acco);
        const __m512 s = _mm512_castps256_ps512(_mm256_mul_ps(dw, _mm256_maskz_loadu_ps(mf, da + b)));
        const __m512i z = _mm512_setzero_si512();
        const __m512i p0 = PAIR(0, cnt > 1);
        const __m512i p1 = cnt > 2 ? PAIR(1, cnt > 3) : z;
        const __m512i p2 = cnt > 4 ? PAIR(2, cnt > 5) : z;
        const __m512i p3 = cnt > 6 ? PAIR(3, 0) : z;
        GROUP(p0, p1, p2, p3, s);
    }
#undef GROUP
#undef PAIR
    const __m512 fold = _mm512_setr_ps(1, 1, 1, 1, 0.0625f, 0.0625f, 0.0625f, 0.0625f,
                                       1, 1, 1, 1, 0.0625f, 0.0625f, 0.0625f, 0.0625f);
    const __m512 t = _mm512_mul_ps(acc, fold);
    return hsum_f32x8(_mm256_add_ps(_mm256_add_ps(_mm512_castps512_ps256(t), _mm512_extractf32x8_ps(t, 1)), acco));
}

static void gemv_q4_0_rows(int64_t n, const void *w, size_t stride, int64_t nrows, const void *prep, float *y) {
    const int64_t nb = n / 32;
    const int8_t *qs = prep;
    const float *da = (const float *)(qs + 32 * nb), *off = da + nb;
    for (int64_t r = 0; r < nrows; r++)
        y[r] = gemv_q4_0_row(nb, (const uint8_t *)w + (size_t)r * stride, qs, da, off);
}

/* Up to four activations against one row (rows4): the weight loads, the
 * nibble masks and the block scales are shared; every activation keeps
 * its own accumulators and goes through exactly the operations of
 * gemv_q4_0_row, so each result equals it bit for bit. */
static inline __attribute__((always_inline)) void gemv_q4_0_row4(int64_t nb, const uint8_t *x,
                                                                 const int8_t *const *qs,
                                                                 const float *const *da,
                                                                 const float *const *off, const int na,
                                                                 float *out) {
    const __m512i mask = _mm512_set_epi64((long long)0xF0F0F0F0F0F0F0F0ull, (long long)0xF0F0F0F0F0F0F0F0ull,
                                          0x0F0F0F0F0F0F0F0Fll, 0x0F0F0F0F0F0F0F0Fll,
                                          (long long)0xF0F0F0F0F0F0F0F0ull, (long long)0xF0F0F0F0F0F0F0F0ull,
                                          0x0F0F0F0F0F0F0F0Fll, 0x0F0F0F0F0F0F0F0Fll);
    const __m512i didx = _mm512_setr_epi32(0 | 9 << 16, 18 | 27 << 16, 36 | 45 << 16, 54 | 63 << 16,
                                           0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i sidx = _mm512_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6, 1, 3, 5, 7, 1, 3, 5, 7);
    __m512 acc[4];
    __m256 acco[4];
    for (int t = 0; t < 4; t++) {
        acc[t] = _mm512_setzero_ps();
        acco[t] = _mm256_setzero_ps();
    }
    int64_t b = 0;
    /* the weight half of q4_0_pair: the two blocks' codes, masked */
#define WQ(k, two)                                                                                     \
    _mm512_and_si512(_mm512_mask_broadcast_i32x4(                                                     \
                         _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(x + 18 * (b + 2 * (k)) + 2))), \
                         0xFF00, _mm_maskz_loadu_epi8((two) ? 0xFFFF : 0, x + 18 * (b + 2 * (k)) + 20)),  \
                     mask)
#define ACT(t, k, two) _mm512_maskz_loadu_epi8((two) ? ~0ull : 0xFFFFFFFFull, qs[t] + 32 * (b + 2 * (k)))
    for (; b + 8 <= nb; b += 8) {
        const __m256 dw = scales8(x + 18 * b, didx);
        _mm_prefetch((const char *)x + 18 * b + PF_DIST, _MM_HINT_T0);
        _mm_prefetch((const char *)x + 18 * b + PF_DIST + 64, _MM_HINT_T0);
        _mm_prefetch((const char *)x + 18 * b + PF_DIST + 128, _MM_HINT_T0);
        const __m512i w0 = WQ(0, 1), w1 = WQ(1, 1), w2 = WQ(2, 1), w3 = WQ(3, 1);
        for (int t = 0; t < na; t++) {
            acco[t] = _mm256_fmadd_ps(dw, _mm256_loadu_ps(off[t] + b), acco[t]);
            const __m512 sc = _mm512_castps256_ps512(_mm256_mul_ps(dw, _mm256_loadu_ps(da[t] + b)));
            const __m512i z = _mm512_setzero_si512();
            const __m512i p0 = _mm512_dpbusd_epi32(z, w0, ACT(t, 0, 1)), p1 = _mm512_dpbusd_epi32(z, w1, ACT(t, 1, 1));
            const __m512i p2 = _mm512_dpbusd_epi32(z, w2, ACT(t, 2, 1)), p3 = _mm512_dpbusd_epi32(z, w3, ACT(t, 3, 1));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(reduce_pairs(p0, p1, p2, p3)),
                                     _mm512_permutexvar_ps(sidx, sc), acc[t]);
        }
    }
    if (b < nb) {
        const int cnt = (int)(nb - b), bytes = 18 * cnt;
        const __mmask64 ma = bytes >= 64 ? ~0ull : (1ull << bytes) - 1;
        const __mmask64 mb = bytes <= 64 ? 0 : bytes >= 128 ? ~0ull : (1ull << (bytes - 64)) - 1;
        const __m512i xa = _mm512_maskz_loadu_epi8(ma, x + 18 * b), xc = _mm512_maskz_loadu_epi8(mb, x + 18 * b + 64);
        const __m256 dw = _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutex2var_epi16(xa, didx, xc)));
        const __mmask8 mf = (__mmask8)((1u << cnt) - 1);
        for (int t = 0; t < na; t++) {
            acco[t] = _mm256_fmadd_ps(dw, _mm256_maskz_loadu_ps(mf, off[t] + b), acco[t]);
            const __m512 sc = _mm512_castps256_ps512(_mm256_mul_ps(dw, _mm256_maskz_loadu_ps(mf, da[t] + b)));
            const __m512i z = _mm512_setzero_si512();
            const __m512i p0 = q4_0_pair(x + 18 * b, qs[t] + 32 * b, mask, cnt > 1);
            const __m512i p1 = cnt > 2 ? q4_0_pair(x + 18 * (b + 2), qs[t] + 32 * (b + 2), mask, cnt > 3) : z;
            const __m512i p2 = cnt > 4 ? q4_0_pair(x + 18 * (b + 4), qs[t] + 32 * (b + 4), mask, cnt > 5) : z;
            const __m512i p3 = cnt > 6 ? q4_0_pair(x + 18 * (b + 6), qs[t] + 32 * (b + 6), mask, 0) : z;
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(reduce_pairs(p0, p1, p2, p3)),
                                     _mm512_permutexvar_ps(sidx, sc), acc[t]);
        }
    }
#undef ACT
#undef WQ
    const __m512 fold = _mm512_setr_ps(1, 1, 1, 1, 0.0625f, 0.0625f, 0.0625f, 0.0625f,
                                       1, 1, 1, 1, 0.0625f, 0.0625f, 0.0625f, 0.0625f);
    for (int t = 0; t < na; t++) {
        const __m512 v = _mm512_mul_ps(acc[t], fold);
        out[t] = hsum_f32x8(_mm256_add_ps(_mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1)),
                                          acco[t]));
    }
}

/* The rows4 driver of a 32-block type (Q4_0, Q8_0: one prepared layout,
 * codes then d then off per activation): for each row, ROW4 on up to four
 * activations, the count made a constant so the compiler unrolls. */
#define GEMV_ROWS4_Q32(NAME, ROW4)                                                                    \
    static void NAME(int64_t n, const void *w, size_t stride, int64_t nrows, const void *const *prep, \
                     int na, float *const *y) {                                                       \
        const int64_t nb = n / 32;                                                                    \
        const int8_t *qs[4];                                                                          \
        const float *da[4], *off[4];                                                                  \
        for (int t = 0; t < na; t++) {                                                                \
            qs[t] = prep[t];                                                                          \
            da[t] = (const float *)(qs[t] + 32 * nb);                                                 \
            off[t] = da[t] + nb;                                                                      \
        }                                                                                             \
        float out[4];                                                                                 \
        for (int64_t r = 0; r < nrows; r++) {                                                         \
            const uint8_t *x = (const uint8_t *)w + (size_t)r * stride;                               \
            switch (na) {                                                                             \
            case 1: ROW4(nb, x, qs, da, off, 1, out); break;                                          \
            case 2: ROW4(nb, x, qs, da, off, 2, out); break;                                          \
            case 3: ROW4(nb, x, qs, da, off, 3, out); break;                                          \
            default: ROW4(nb, x, qs, da, off, 4, out); break;                                         \
            }                                                                                         \
            for (int t = 0; t < na; t++) y[t][r] = out[t];                                            \
        }                                                                                             \
    }

GEMV_ROWS4_Q32(gemv_q4_0_rows4, gemv_q4_0_row4)

const fr__gemv fr__avx512_gemv_q4_0 = {32, gemv_q4_0_size, gemv_q4_0_prepare, gemv_q4_0_rows, gemv_q4_0_rows4};

/* Q8_0.  Same prepared layout as Q4_0, with off_b = −128·d·Σ qs_b: the
 * weight codes XOR 0x80 are the unsigned c + 128, so one vpdpbusd per two
 * blocks gives Σ (c + 128)·a and the 128·Σa comes off in floats, one FMA
 * per 8 blocks.  The d of 8 blocks (34 bytes apart) come from four 64-byte
 * loads and two vpermt2w; the rest is as Q4_0. */
static void gemv_q8_0_prepare(const float *x, int64_t n, int64_t b0, int64_t b1, void *prep) {
    const int64_t nb = n / 32;
    float *off = (float *)((int8_t *)prep + 32 * nb) + nb;
    gemv_q4_0_prepare(x, n, b0, b1, prep);
    for (int64_t b = b0; b < b1; b++) off[b] *= 16.0f; /* −8·d·Σq → −128·d·Σq, exact */
}

/* int32 lane sums of (code + 128)·a for the Q8_0 blocks at xb and xb + 34
 * (the second only when `two`). */
static inline __attribute__((always_inline)) __m512i q8_0_pair(const uint8_t *xb, const int8_t *a, const int two) {
    const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(xb + 2))),
                                         _mm256_maskz_loadu_epi8(two ? ~0u : 0, xb + 36), 1);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_xor_si512(q, _mm512_set1_epi8((char)0x80)),
                               _mm512_maskz_loadu_epi8(two ? ~0ull : 0xFFFFFFFFull, a));
}

/* The f16 d of 8 Q8_0 blocks at p (bytes 0..255 under masks m[0..3]). */
static inline __m256 q8_0_scales8(const uint8_t *p, const __mmask64 *m) {
    /* words 0, 17, 34, 51 of bytes 0..127 and 4, 21, 38, 55 of 128..255 */
    const __m512i idx = _mm512_setr_epi32(0 | 17 << 16, 34 | 51 << 16, 4 | 21 << 16, 38 | 55 << 16,
                                          0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i d01 = _mm512_permutex2var_epi16(_mm512_maskz_loadu_epi8(m[0], p), idx,
                                                  _mm512_maskz_loadu_epi8(m[1], p + 64));
    const __m512i d23 = _mm512_permutex2var_epi16(_mm512_maskz_loadu_epi8(m[2], p + 128), idx,
                                                  _mm512_maskz_loadu_epi8(m[3], p + 192));
    return _mm256_cvtph_ps(_mm_blend_epi32(_mm512_castsi512_si128(d01), _mm512_castsi512_si128(d23), 0xC));
}

static inline float gemv_q8_0_row(int64_t nb, const uint8_t *x, const int8_t *qs, const float *da,
                                  const float *off) {
    const __m512i sidx = _mm512_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6, 1, 3, 5, 7, 1, 3, 5, 7);
    const __mmask64 all[4] = {~0ull, ~0ull, ~0ull, ~0ull};
    __m512 acc = _mm512_setzero_ps();
    __m256 acco = _mm256_setzero_ps();
    int64_t b = 0;
#define PAIR(k, m1) q8_0_pair(x + 34 * (b + 2 * (k)), qs + 32 * (b + 2 * (k)), m1)
#define GROUP(p0, p1, p2, p3, s) \
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(reduce_pairs(p0, p1, p2, p3)), _mm512_permutexvar_ps(sidx, s), acc)
    for (; b + 8 <= nb; b += 8) {
        const uint8_t *xg = x + 34 * b;
        for (int l = 0; l < 5; l++) _mm_prefetch((const char *)xg + PF_DIST + 64 * l, _MM_HINT_T0);
        const __m256 dw = q8_0_scales8(xg, all);
        acco = _mm256_fmadd_ps(dw, _mm256_loadu_ps(off + b), acco);
        const __m512 s = _mm512_castps256_ps512(_mm256_mul_ps(dw, _mm256_loadu_ps(da + b)));
        const __m512i p0 = PAIR(0, 1), p1 = PAIR(1, 1), p2 = PAIR(2, 1), p3 = PAIR(3, 1);
        GROUP(p0, p1, p2, p3, s);
    }
    if (b < nb) { /* the last 1..7 blocks: masked loads, missing blocks count 0 */
        const int cnt = (int)(nb - b), bytes = 34 * cnt;
        __mmask64 m[4];
        for (int l = 0; l < 4; l++) {
            const int left = bytes - 64 * l;
            m[l] = left <= 0 ? 0 : left >= 64 ? ~0ull : (1ull << left) - 1;
        }
        const __m256 dw = q8_0_scales8(x + 34 * b, m);
        const __mmask8 mf = (__mmask8)((1u << cnt) - 1);
        acco = _mm256_fmadd_ps(dw, _mm256_maskz_loadu_ps(mf, off + b), acco);
        const __m512 s = _mm512_castps256_ps512(_mm256_mul_ps(dw, _mm256_maskz_loadu_ps(mf, da + b)));
        const __m512i z = _mm512_setzero_si512();
        const __m512i p0 = PAIR(0, cnt > 1);
        const __m512i p1 = cnt > 2 ? PAIR(1, cnt > 3) : z;
        const __m512i p2 = cnt > 4 ? PAIR(2, cnt > 5) : z;
        const __m512i p3 = cnt > 6 ? PAIR(3, 0) : z;
        GROUP(p0, p1, p2, p3, s);
    }
#undef GROUP
#undef PAIR
    return hsum_f32x8(_mm256_add_ps(_mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1)), acco));
}

static void gemv_q8_0_rows(int64_t n, const void *w, size_t stride, int64_t nrows, const void *prep, float *y) {
    const int64_t nb = n / 32;
    const int8_t *qs = prep;
    const float *da = (const float *)(qs + 32 * nb), *off = da + nb;
    for (int64_t r = 0; r < nrows; r++)
        y[r] = gemv_q8_0_row(nb, (const uint8_t *)w + (size_t)r * stride, qs, da, off);
}

/* rows4 for Q8_0: as gemv_q4_0_row4, the weight loads and scales shared,
 * each activation's operations those of gemv_q8_0_row. */
static inline __attribute__((always_inline)) void gemv_q8_0_row4(int64_t nb, const uint8_t *x,
                                                                 const int8_t *const *qs,
                                                                 const float *const *da,
                                                                 const float *const *off, const int na,
                                                                 float *out) {
    const __m512i sidx = _mm512_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6, 1, 3, 5, 7, 1, 3, 5, 7);
    const __mmask64 all[4] = {~0ull, ~0ull, ~0ull, ~0ull};
    __m512 acc[4];
    __m256 acco[4];
    for (int t = 0; t < 4; t++) {
        acc[t] = _mm512_setzero_ps();
        acco[t] = _mm256_setzero_ps();
    }
    int64_t b = 0;
#define WQ(k, two)                                                                                            \
    _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(                           \
                                            (const __m256i *)(x + 34 * (b + 2 * (k)) + 2))),                  \
                                        _mm256_maskz_loadu_epi8((two) ? ~0u : 0, x + 34 * (b + 2 * (k)) + 36), 1), \
                     _mm512_set1_epi8((char)0x80))
#define ACT(t, k, two) _mm512_maskz_loadu_epi8((two) ? ~0ull : 0xFFFFFFFFull, qs[t] + 32 * (b + 2 * (k)))
    for (; b + 8 <= nb; b += 8) {
        const uint8_t *xg = x + 34 * b;
        for (int l = 0; l < 5; l++) _mm_prefetch((const char *)xg + PF_DIST + 64 * l, _MM_HINT_T0);
        const __m256 dw = q8_0_scales8(xg, all);
        const __m512i w0 = WQ(0, 1), w1 = WQ(1, 1), w2 = WQ(2, 1), w3 = WQ(3, 1);
        for (int t = 0; t < na; t++) {
            acco[t] = _mm256_fmadd_ps(dw, _mm256_loadu_ps(off[t] + b), acco[t]);
            const __m512 sc = _mm512_castps256_ps512(_mm256_mul_ps(dw, _mm256_loadu_ps(da[t] + b)));
            const __m512i z = _mm512_setzero_si512();
            const __m512i p0 = _mm512_dpbusd_epi32(z, w0, ACT(t, 0, 1)), p1 = _mm512_dpbusd_epi32(z, w1, ACT(t, 1, 1));
            const __m512i p2 = _mm512_dpbusd_epi32(z, w2, ACT(t, 2, 1)), p3 = _mm512_dpbusd_epi32(z, w3, ACT(t, 3, 1));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(reduce_pairs(p0, p1, p2, p3)),
                                     _mm512_permutexvar_ps(sidx, sc), acc[t]);
        }
    }
#undef ACT
#undef WQ
    if (b < nb) {
        const int cnt = (int)(nb - b), bytes = 34 * cnt;
        __mmask64 m[4];
        for (int l = 0; l < 4; l++) {
            const int left = bytes - 64 * l;
            m[l] = left <= 0 ? 0 : left >= 64 ? ~0ull : (1ull << left) - 1;
        }
        const __m256 dw = q8_0_scales8(x + 34 * b, m);
        const __mmask8 mf = (__mmask8)((1u << cnt) - 1);
        for (int t = 0; t < na; t++) {
            acco[t] = _mm256_fmadd_ps(dw, _mm256_maskz_loadu_ps(mf, off[t] + b), acco[t]);
            const __m512 sc = _mm512_castps256_ps512(_mm256_mul_ps(dw, _mm256_maskz_loadu_ps(mf, da[t] + b)));
            const __m512i z = _mm512_setzero_si512();
            const __m512i p0 = q8_0_pair(x + 34 * b, qs[t] + 32 * b, cnt > 1);
            const __m512i p1 = cnt > 2 ? q8_0_pair(x + 34 * (b + 2), qs[t] + 32 * (b + 2), cnt > 3) : z;
            const __m512i p2 = cnt > 4 ? q8_0_pair(x + 34 * (b + 4), qs[t] + 32 * (b + 4), cnt > 5) : z;
            const __m512i p3 = cnt > 6 ? q8_0_pair(x + 34 * (b + 6), qs[t] + 32 * (b + 6), 0) : z;
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(reduce_pairs(p0, p1, p2, p3)),
                                     _mm512_permutexvar_ps(sidx, sc), acc[t]);
        }
    }
    for (int t = 0; t < na; t++)
        out[t] = hsum_f32x8(_mm256_add_ps(_mm256_add_ps(_mm512_castps512_ps256(acc[t]),
                                                        _mm512_extractf32x8_ps(acc[t], 1)),
                                          acco[t]));
}

GEMV_ROWS4_Q32(gemv_q8_0_rows4, gemv_q8_0_row4)

const fr__gemv fr__avx512_gemv_q8_0 = {32, gemv_q4_0_size, gemv_q8_0_prepare, gemv_q8_0_rows, gemv_q8_0_rows4};

/* F16.  The activation is rounded to f16 (as the F16 vec_dot_type) and kept
 * as floats, so each row converts only its own halves: one vcvtph2ps and
 * one FMA per 16 weights, four zmm accumulators, masked loads for the
 * tail.  No software prefetch (it slowed the stream from memory). */
static size_t gemv_f16_size(int64_t n) {
    return (size_t)n * sizeof(float);
}

static void gemv_f16_prepare(const float *x, int64_t n, int64_t b0, int64_t b1, void *prep) {
    (void)n;
    float *a = prep;
    int64_t i = b0;
    for (; i + 16 <= b1; i += 16)
        _mm512_storeu_ps(a + i, _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT)));
    for (; i < b1; i++) a[i] = f16(fr_f32_to_f16(x[i]));
}

static inline float gemv_f16_row(int64_t n, const uint16_t *w, const float *a) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int64_t i = 0;
#define H(j) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i + (j))))
    for (; i + 64 <= n; i += 64) {
        acc0 = _mm512_fmadd_ps(H(0), _mm512_loadu_ps(a + i), acc0);
        acc1 = _mm512_fmadd_ps(H(16), _mm512_loadu_ps(a + i + 16), acc1);
        acc2 = _mm512_fmadd_ps(H(32), _mm512_loadu_ps(a + i + 32), acc2);
        acc3 = _mm512_fmadd_ps(H(48), _mm512_loadu_ps(a + i + 48), acc3);
    }
    for (; i + 16 <= n; i += 16) acc0 = _mm512_fmadd_ps(H(0), _mm512_loadu_ps(a + i), acc0);
#undef H
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        acc1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w + i)), _mm512_maskz_loadu_ps(m, a + i),
                               acc1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

static void gemv_f16_rows(int64_t n, const void *w, size_t stride, int64_t nrows, const void *prep, float *y) {
    for (int64_t r = 0; r < nrows; r++)
        y[r] = gemv_f16_row(n, (const uint16_t *)((const char *)w + (size_t)r * stride), prep);
}

const fr__gemv fr__avx512_gemv_f16 = {1, gemv_f16_size, gemv_f16_prepare, gemv_f16_rows, NULL};

/* ---- K-quants: Q8_K activations, prepared per 256-element super-block ----
 *
 * Layout for nb super-blocks: int8 qs[nb][256] | float d[nb] | aux[nb],
 * 292 bytes per super-block like Q8_K itself (codes and d as
 * fr__avx2_quantize_q8_K gives them):
 *   Q6_K: qs in element order, aux = int16 bsums[16] (the −32 offset);
 *   Q4_K: qs permuted to match the weight bytes (below), aux = int16 Σ
 *         of each 32-element sub-block (the mins), then 8 zero int16.
 * Weight codes are unsigned, so one vpdpbusd per 64 codes gives 4-code
 * int32 lane sums; reduce_pairs folds the four of a super-block so that
 * each lane belongs to one sub-block, and one vpmulld
 * by the permuted sub-block scales keeps the super-block exact in int32;
 * then one convert and FMA by d_w·d_a per super-block. */

static size_t gemv_q8_K_size(int64_t n) {
    return (size_t)(n / 256) * (256 + 4 + 32);
}

static void gemv_q8_K_prepare(const float *x, int64_t n, int64_t b0, int64_t b1, void *prep, const int q4) {
    const int64_t nb = n / 256;
    int8_t *qs = prep;
    float *d = (float *)(qs + 256 * nb);
    unsigned char *aux = (unsigned char *)(d + nb);
    for (int64_t b = b0; b < b1; b++) {
        fr_block_q8_K blk;
        fr__avx2_quantize_q8_K(x + 256 * b, &blk, 256);
        d[b] = blk.d;
        if (!q4) {
            memcpy(qs + 256 * b, blk.qs, 256);
            memcpy(aux + 32 * b, blk.bsums, 32);
            continue;
        }
        /* Q4_K chunk c (32 weight bytes) holds sub-block 2c in its low and
         * 2c+1 in its high nibbles; a zmm takes two chunks, so the order is
         * sub-blocks 0 2 | 1 3 | 4 6 | 5 7 */
        static const int order[8] = {0, 2, 1, 3, 4, 6, 5, 7};
        int16_t s[16] = {0};
        for (int j = 0; j < 8; j++) {
            memcpy(qs + 256 * b + 32 * j, blk.qs + 32 * order[j], 32);
            s[j] = (int16_t)(blk.bsums[2 * j] + blk.bsums[2 * j + 1]); /* |Σ| <= 32·127 */
        }
        memcpy(aux + 32 * b, s, 32);
    }
}

static void gemv_q6_K_prepare(const float *x, int64_t n, int64_t b0, int64_t b1, void *prep) {
    gemv_q8_K_prepare(x, n, b0, b1, prep, 0);
}

static void gemv_q4_K_prepare(const float *x, int64_t n, int64_t b0, int64_t b1, void *prep) {
    gemv_q8_K_prepare(x, n, b0, b1, prep, 1);
}

/* Q6_K: per half (128 codes), ql (64 bytes) as one zmm and qh (32 bytes)
 * broadcast to both halves of a zmm: codes 0..31 | 32..63 are the low
 * nibbles with qh bits 0-1 | 2-3 moved to bits 4-5 (64-bit lane shifts
 * left by 4 | 2, then & 0x30), codes 64..95 | 96..127 the high nibbles
 * with qh bits 4-5 | 6-7 (shifts right by 0 | 2).  Scales are per 16
 * codes, one 128-bit lane of each vpdpbusd result; the −32 is
 * 32·Σ scale·bsum per super-block. */
static inline float gemv_q6_K_row(int64_t nb, const fr_block_q6_K *x, const int8_t *qs, const float *da,
                                  const int16_t *bs) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    const __m512i shl = _mm512_setr_epi64(4, 4, 4, 4, 2, 2, 2, 2), shr = _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2);
    const __m512i sidx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++, x++, qs += 256) {
        _mm_prefetch((const char *)x + PF_DIST, _MM_HINT_T0);
        _mm_prefetch((const char *)x + PF_DIST + 64, _MM_HINT_T0);
        _mm_prefetch((const char *)x + PF_DIST + 128, _MM_HINT_T0);
        _mm_prefetch((const char *)x + PF_DIST + 192, _MM_HINT_T0);
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)x->scales);
        const __m512i sc = _mm512_cvtepi8_epi32(sc8);
        __m512i p[4];
        for (int h = 0; h < 2; h++) {
            const __m512i l = _mm512_loadu_si512(x->ql + 64 * h);
            const __m512i hz = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x->qh + 32 * h)));
            /* (a & b) | c: ternary-logic table 0xEA */
            const __m512i q12 = _mm512_ternarylogic_epi32(l, m4, _mm512_and_si512(_mm512_sllv_epi64(hz, shl), m30),
                                                          0xEA);
            const __m512i q34 = _mm512_ternarylogic_epi32(_mm512_srli_epi16(l, 4), m4,
                                                          _mm512_and_si512(_mm512_srlv_epi64(hz, shr), m30), 0xEA);
            p[2 * h] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q12, _mm512_loadu_si512(qs + 128 * h));
            p[2 * h + 1] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q34, _mm512_loadu_si512(qs + 128 * h + 64));
        }
        /* 128-bit lane L of p[k] is sub-block 4k + L; reduced, lane (L, k) */
        __m512i isum = _mm512_mullo_epi32(reduce_pairs(p[0], p[1], p[2], p[3]), _mm512_permutexvar_epi32(sidx, sc));
        const __m256i off = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(bs + 16 * b)),
                                              _mm256_cvtepi8_epi16(sc8));
        isum = _mm512_sub_epi32(isum, _mm512_zextsi256_si512(_mm256_slli_epi32(off, 5)));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(f16(x->d) * da[b]), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

static void gemv_q6_K_rows(int64_t n, const void *w, size_t stride, int64_t nrows, const void *prep, float *y) {
    const int64_t nb = n / 256;
    const int8_t *qs = prep;
    const float *d = (const float *)(qs + 256 * nb);
    const int16_t *bs = (const int16_t *)(d + nb);
    for (int64_t r = 0; r < nrows; r++)
        y[r] = gemv_q6_K_row(nb, (const fr_block_q6_K *)((const char *)w + (size_t)r * stride), qs, d, bs);
}

/* rows4 for Q6_K: the 6-bit codes of a super-block rebuilt once for every
 * activation; each activation's operations those of gemv_q6_K_row. */
static inline __attribute__((always_inline)) void gemv_q6_K_row4(int64_t nb, const fr_block_q6_K *x,
                                                                 const int8_t *const *qs,
                                                                 const float *const *da,
                                                                 const int16_t *const *bs, const int na,
                                                                 float *out) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    const __m512i shl = _mm512_setr_epi64(4, 4, 4, 4, 2, 2, 2, 2), shr = _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2);
    const __m512i sidx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    __m512 acc[4];
    for (int t = 0; t < 4; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++, x++) {
        _mm_prefetch((const char *)x + PF_DIST, _MM_HINT_T0);
        _mm_prefetch((const char *)x + PF_DIST + 64, _MM_HINT_T0);
        _mm_prefetch((const char *)x + PF_DIST + 128, _MM_HINT_T0);
        _mm_prefetch((const char *)x + PF_DIST + 192, _MM_HINT_T0);
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)x->scales);
        const __m512i sc = _mm512_permutexvar_epi32(sidx, _mm512_cvtepi8_epi32(sc8));
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        __m512i q[4];
        for (int h = 0; h < 2; h++) {
            const __m512i l = _mm512_loadu_si512(x->ql + 64 * h);
            const __m512i hz = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x->qh + 32 * h)));
            q[2 * h] = _mm512_ternarylogic_epi32(l, m4, _mm512_and_si512(_mm512_sllv_epi64(hz, shl), m30), 0xEA);
            q[2 * h + 1] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(l, 4), m4,
                                                     _mm512_and_si512(_mm512_srlv_epi64(hz, shr), m30), 0xEA);
        }
        const float dw = f16(x->d);
        for (int t = 0; t < na; t++) {
            const int8_t *a = qs[t] + 256 * b;
            const __m512i z = _mm512_setzero_si512();
            const __m512i p0 = _mm512_dpbusd_epi32(z, q[0], _mm512_loadu_si512(a));
            const __m512i p1 = _mm512_dpbusd_epi32(z, q[1], _mm512_loadu_si512(a + 64));
            const __m512i p2 = _mm512_dpbusd_epi32(z, q[2], _mm512_loadu_si512(a + 128));
            const __m512i p3 = _mm512_dpbusd_epi32(z, q[3], _mm512_loadu_si512(a + 192));
            __m512i isum = _mm512_mullo_epi32(reduce_pairs(p0, p1, p2, p3), sc);
            const __m256i off = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(bs[t] + 16 * b)), sc16);
            isum = _mm512_sub_epi32(isum, _mm512_zextsi256_si512(_mm256_slli_epi32(off, 5)));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(dw * da[t][b]), acc[t]);
        }
    }
    for (int t = 0; t < na; t++) out[t] = _mm512_reduce_add_ps(acc[t]);
}

static void gemv_q6_K_rows4(int64_t n, const void *w, size_t stride, int64_t nrows, const void *const *prep,
                            int na, float *const *y) {
    const int64_t nb = n / 256;
    const int8_t *qs[4];
    const float *d[4];
    const int16_t *bs[4];
    for (int t = 0; t < na; t++) {
        qs[t] = prep[t];
        d[t] = (const float *)(qs[t] + 256 * nb);
        bs[t] = (const int16_t *)(d[t] + nb);
    }
    float out[4];
    for (int64_t r = 0; r < nrows; r++) {
        const fr_block_q6_K *x = (const fr_block_q6_K *)((const char *)w + (size_t)r * stride);
        switch (na) {
        case 1: gemv_q6_K_row4(nb, x, qs, d, bs, 1, out); break;
        case 2: gemv_q6_K_row4(nb, x, qs, d, bs, 2, out); break;
        case 3: gemv_q6_K_row4(nb, x, qs, d, bs, 3, out); break;
        default: gemv_q6_K_row4(nb, x, qs, d, bs, 4, out); break;
        }
        for (int t = 0; t < na; t++) y[t][r] = out[t];
    }
}

const fr__gemv fr__avx512_gemv_q6_K = {256, gemv_q8_K_size, gemv_q6_K_prepare, gemv_q6_K_rows, gemv_q6_K_rows4};

/* Q4_K's 12 scale bytes → bytes 0..7 scales, 8..15 mins (as x86/quants_avx2.c's
 * q4_K_scales_mins, in xmm lanes).  With u0, u1, u2 the three dwords:
 * scales 0-3 = u0 & 0x3f, 4-7 = (u2 & 0x0f) | ((u0 >> 2) & 0x30); mins
 * 0-3 = u1 & 0x3f, 4-7 = ((u2 >> 4) & 0x0f) | ((u1 >> 2) & 0x30).  The
 * 16-byte load reads 4 bytes of qs (inside the block). */
static inline __m128i q4_K_scales_mins(const uint8_t *q) {
    const __m128i v = _mm_loadu_si128((const __m128i *)q);
    const __m128i a = _mm_srlv_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 2, 0)), _mm_setr_epi32(0, 0, 0, 4));
    const __m128i b = _mm_srli_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(1, 1, 0, 0)), 2);
    const __m128i ma = _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f);
    const __m128i mb = _mm_setr_epi32(0, 0x30303030, 0, 0x30303030);
    return _mm_or_si128(_mm_and_si128(a, ma), _mm_and_si128(b, mb));
}

/* Q4_K: the 128 code bytes as two zmm (chunks 0,1 and 2,3); & 0x0F gives
 * sub-blocks 0,2 (4,6), & 0xF0 gives 16× sub-blocks 1,3 (5,7), against the
 * permuted activation.  After reduce_pairs and the scale multiply, the
 * lanes of the 16× sub-blocks are shifted back (exact: multiples of 16).
 * Mins: (dmin_w·d_a) · Σ_j m_j·Σa_j (exact int32 lanes), once per
 * super-block. */
static inline float gemv_q4_K_row(int64_t nb, const fr_block_q4_K *x, const int8_t *qs, const float *da,
                                  const int16_t *sa) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), m4h = _mm512_set1_epi8((char)0xF0);
    const __m512i sidx = _mm512_setr_epi32(0, 4, 1, 5, 0, 4, 1, 5, 2, 6, 3, 7, 2, 6, 3, 7);
    const __m512i sh16 = _mm512_setr_epi32(0, 0, 4, 4, 0, 0, 4, 4, 0, 0, 4, 4, 0, 0, 4, 4);
    __m512 acc = _mm512_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int64_t b = 0; b < nb; b++, x++, qs += 256) {
        _mm_prefetch((const char *)x + PF_DIST, _MM_HINT_T0);
        _mm_prefetch((const char *)x + PF_DIST + 64, _MM_HINT_T0);
        _mm_prefetch((const char *)x + PF_DIST + 128, _MM_HINT_T0);
        /* [d·d_a, dmin·d_a] from the adjacent f16 pair */
        uint32_t dd;
        memcpy(&dd, &x->d, 4);
        const __m128 dm = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)dd)), _mm_set1_ps(da[b]));
        const __m128i sm = q4_K_scales_mins(x->scales);
        const __m512i sc = _mm512_cvtepu8_epi32(sm);
        const __m512i z0 = _mm512_loadu_si512(x->qs), z1 = _mm512_loadu_si512(x->qs + 64);
        const __m512i p0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(z0, m4),
                                               _mm512_loadu_si512(qs));
        const __m512i p1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(z0, m4h),
                                               _mm512_loadu_si512(qs + 64));
        const __m512i p2 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(z1, m4),
                                               _mm512_loadu_si512(qs + 128));
        const __m512i p3 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(z1, m4h),
                                               _mm512_loadu_si512(qs + 192));
        /* reduced, 128-bit lane L holds sub-blocks 0 4 1 5 (L = 0, 1) or
         * 2 6 3 7 (L = 2, 3), the last two ×16 */
        const __m512i v = _mm512_mullo_epi32(reduce_pairs(p0, p2, p1, p3), _mm512_permutexvar_epi32(sidx, sc));
        const __m512i isum = _mm512_srav_epi32(v, sh16);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_broadcastss_ps(dm), acc);
        /* mins: Σ_j m_j·Σa_j exactly (int16 pairs), times dmin·d_a */
        const __m128i pm = _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_srli_si128(sm, 8)),
                                          _mm_loadu_si128((const __m128i *)(sa + 16 * b)));
        accm = _mm_fmadd_ps(_mm_cvtepi32_ps(pm), _mm_permute_ps(dm, 0x55), accm);
    }
    const __m128 m2 = _mm_add_ps(accm, _mm_movehl_ps(accm, accm));
    return _mm512_reduce_add_ps(acc) - _mm_cvtss_f32(_mm_add_ss(m2, _mm_movehdup_ps(m2)));
}

static void gemv_q4_K_rows(int64_t n, const void *w, size_t stride, int64_t nrows, const void *prep, float *y) {
    const int64_t nb = n / 256;
    const int8_t *qs = prep;
    const float *d = (const float *)(qs + 256 * nb);
    const int16_t *sa = (const int16_t *)(d + nb);
    for (int64_t r = 0; r < nrows; r++)
        y[r] = gemv_q4_K_row(nb, (const fr_block_q4_K *)((const char *)w + (size_t)r * stride), qs, d, sa);
}

const fr__gemv fr__avx512_gemv_q4_K = {256, gemv_q8_K_size, gemv_q4_K_prepare, gemv_q4_K_rows, NULL};
