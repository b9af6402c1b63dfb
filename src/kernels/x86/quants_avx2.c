/*
 * x86/quants_avx2.c — AVX2 + FMA + F16C row kernels (compiled with -mavx2 -mfma
 * -mf16c; kernels.c calls them only when fr_cpu() reports all three).
 *
 * Each function is the twin of the fr__ref_* function of the same name in
 * ref.c and computes the same thing:
 *
 * - Integer parts are exact.  Q8_0·Q8_0 uses the sign trick (|w| as
 *   maddubs' unsigned operand, a carrying w's sign as the signed one), then
 *   madd with ones to int32 per 32-block, and accumulates d_w·d_a·sumi in
 *   8 float lanes (order differs from the twin: float rounding only).
 *   Q4_0·Q8_0 keeps the codes unsigned and subtracts 8·Σa; Q5_0·Q8_0
 *   likewise (fifth bit from qh, offset 16·Σa); both accumulate in lanes.
 *   vec_dot4 computes four rows at once, each bit-identical to vec_dot.
 * - Q2_K, Q3_K, Q4_K, Q5_K (Q4_K plus the fifth bit) and Q6_K ·Q8_K sum
 *   the whole super-block in int32 lanes (codes are unsigned, so maddubs
 *   needs no sign trick; madd with the int16 sub-block scale applies the
 *   scale and widens), reduce to one int32 and then apply the scales in
 *   scalar code exactly as ref.c does: bit-identical to the twins.
 * - Dequantizers multiply exactly as the twins (no FMA contraction), so
 *   they are bit-identical too.
 * - quantize_q8_0 rounds half to even (llama.cpp's AVX path) and uses
 *   id = 127/amax; the twin uses roundf and 1/d.  A code may differ by one
 *   where x·id falls on (or a rounding away from) .5.
 * - quantize_q8_1 rounds like quantize_q8_0; s = d·Σq of its own codes.
 * - Q4_1/Q5_1·Q8_1 accumulate d_w·d_a·sumi in lanes and m_w·s_a in a
 *   scalar (float rounding only).  BF16 converts by shifting (exact) and
 *   rounds to nearest even like fr_f32_to_bf16.
 * - quantize_q8_K is bit-identical to its twin (nearest_int is round to
 *   nearest even, as cvtps2dq).
 * - Float dots (F32, F16) accumulate in four 8-lane float accumulators;
 *   the twins accumulate in double.
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

static inline int hsum_i32x8(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
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

/* Σ x·y of signed bytes as 8 int32 lanes (|x|·sign(x)y through maddubs). */
static inline __m256i dot_i8_i32(__m256i x, __m256i y) {
    const __m256i ax = _mm256_sign_epi8(x, x);
    const __m256i sy = _mm256_sign_epi8(y, x);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}

/* ---- dequantize ---- */

void fr__avx2_dequantize_f16(const void *src, float *dst, int64_t n) {
    const uint16_t *x = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++) dst[i] = f16(x[i]);
}

/* dst[0..15] = d·q for 16 int8 codes (one multiply each, as ref.c). */
static inline void store_i8x16_scaled(float *dst, __m128i q, __m256 d) {
    _mm256_storeu_ps(dst, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q))));
    _mm256_storeu_ps(dst + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8)))));
}

static inline void store_i8x32_scaled(float *dst, __m256i q, __m256 d) {
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    _mm256_storeu_ps(dst + 0, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), d));
    _mm256_storeu_ps(dst + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), d));
    _mm256_storeu_ps(dst + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), d));
    _mm256_storeu_ps(dst + 24, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), d));
}

void fr__avx2_dequantize_q4_0(const void *src, float *dst, int64_t n) {
    const fr_block_q4_0 *x = src;
    for (int64_t b = 0; b < n / 32; b++, dst += 32) {
        const __m256i q = _mm256_sub_epi8(nibbles_32(x[b].qs), _mm256_set1_epi8(8));
        store_i8x32_scaled(dst, q, _mm256_set1_ps(f16(x[b].d)));
    }
}

void fr__avx2_dequantize_q8_0(const void *src, float *dst, int64_t n) {
    const fr_block_q8_0 *x = src;
    for (int64_t b = 0; b < n / 32; b++, dst += 32) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)x[b].qs);
        store_i8x32_scaled(dst, q, _mm256_set1_ps(f16(x[b].d)));
    }
}

/* dst[0..31] = d·q − m for 32 unsigned byte codes (mul then sub, as ref.c). */
static inline void store_u8x32_affine(float *dst, __m256i q, __m256 d, __m256 m) {
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    for (int k = 0; k < 4; k++) {
        const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[k]));
        _mm256_storeu_ps(dst + 8 * k, _mm256_sub_ps(_mm256_mul_ps(d, v), m));
    }
}

void fr__avx2_dequantize_q4_K(const void *src, float *dst, int64_t n) {
    const fr_block_q4_K *x = src;
    const __m256i m4 = _mm256_set1_epi8(0xF);
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const float d = f16(x[b].d), dmin = f16(x[b].dmin);
        for (int c = 0; c < 4; c++, dst += 64) {
            uint8_t sc, m;
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * c));
            fr__get_scale_min_k4(2 * c, x[b].scales, &sc, &m);
            store_u8x32_affine(dst, _mm256_and_si256(q, m4), _mm256_set1_ps(d * (float)sc),
                               _mm256_set1_ps(dmin * (float)m));
            fr__get_scale_min_k4(2 * c + 1, x[b].scales, &sc, &m);
            store_u8x32_affine(dst + 32, _mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
                               _mm256_set1_ps(d * (float)sc), _mm256_set1_ps(dmin * (float)m));
        }
    }
}

/* The four 32-code quarters of one Q6_K half as unsigned bytes 0..63. */
static inline void q6_K_quarters(const uint8_t *ql, const uint8_t *qh, __m256i q[4]) {
    const __m256i m4 = _mm256_set1_epi8(0xF), m2 = _mm256_set1_epi8(3);
    const __m256i h = _mm256_loadu_si256((const __m256i *)qh);
    const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
    const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
    const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(h, m2), 4);
    const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4);
    const __m256i h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4);
    const __m256i h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4);
    q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), h0);
    q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), h1);
    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), h2);
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), h3);
}

void fr__avx2_dequantize_q6_K(const void *src, float *dst, int64_t n) {
    const fr_block_q6_K *x = src;
    const __m256i off = _mm256_set1_epi8(32);
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const float d = f16(x[b].d);
        for (int h = 0; h < 2; h++, dst += 128) {
            __m256i q[4];
            q6_K_quarters(x[b].ql + 64 * h, x[b].qh + 32 * h, q);
            const int8_t *sc = x[b].scales + 8 * h;
            for (int k = 0; k < 4; k++) {
                const __m256i v = _mm256_sub_epi8(q[k], off);
                const __m256 d0 = _mm256_set1_ps(d * (float)sc[2 * k]);
                const __m256 d1 = _mm256_set1_ps(d * (float)sc[2 * k + 1]);
                store_i8x16_scaled(dst + 32 * k, _mm256_castsi256_si128(v), d0);
                store_i8x16_scaled(dst + 32 * k + 16, _mm256_extracti128_si256(v, 1), d1);
            }
        }
    }
}

/* ---- quantize ---- */

void fr__avx2_quantize_f16(const float *src, void *dst, int64_t n) {
    uint16_t *y = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = fr_f32_to_f16(src[i]);
}

static inline float hmax_f32x8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* 32 floats (already scaled) → 32 int8, round to nearest even, saturating. */
static inline __m256i round_pack_32(__m256 v0, __m256 v1, __m256 v2, __m256 v3) {
    const __m256i i0 = _mm256_cvtps_epi32(v0), i1 = _mm256_cvtps_epi32(v1);
    const __m256i i2 = _mm256_cvtps_epi32(v2), i3 = _mm256_cvtps_epi32(v3);
    /* packs work per 128-bit lane: the result's dwords come out in the
     * order 0 4 1 5 2 6 3 7; the permute puts them back. */
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

void fr__avx2_quantize_q8_0(const float *src, void *dst, int64_t n) {
    fr_block_q8_0 *y = dst;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / 32; b++, src += 32) {
        __m256 v0 = _mm256_loadu_ps(src), v1 = _mm256_loadu_ps(src + 8);
        __m256 v2 = _mm256_loadu_ps(src + 16), v3 = _mm256_loadu_ps(src + 24);
        __m256 amax = _mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1));
        amax = _mm256_max_ps(amax, _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        const float max = hmax_f32x8(amax);
        y[b].d = _cvtss_sh(max / 127.f, _MM_FROUND_TO_NEAREST_INT);
        const __m256 id = _mm256_set1_ps(max != 0.0f ? 127.f / max : 0.0f);
        v0 = _mm256_mul_ps(v0, id); v1 = _mm256_mul_ps(v1, id);
        v2 = _mm256_mul_ps(v2, id); v3 = _mm256_mul_ps(v3, id);
        _mm256_storeu_si256((__m256i *)y[b].qs, round_pack_32(v0, v1, v2, v3));
    }
}

/* Q8_1: the Q8_0 codes (same rounding) plus s = d·Σq, d unrounded. */
void fr__avx2_quantize_q8_1(const float *src, void *dst, int64_t n) {
    fr_block_q8_1 *y = dst;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / 32; b++, src += 32) {
        __m256 v0 = _mm256_loadu_ps(src), v1 = _mm256_loadu_ps(src + 8);
        __m256 v2 = _mm256_loadu_ps(src + 16), v3 = _mm256_loadu_ps(src + 24);
        __m256 amax = _mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1));
        amax = _mm256_max_ps(amax, _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        const float max = hmax_f32x8(amax), d = max / 127.f;
        y[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        const __m256 id = _mm256_set1_ps(max != 0.0f ? 127.f / max : 0.0f);
        v0 = _mm256_mul_ps(v0, id); v1 = _mm256_mul_ps(v1, id);
        v2 = _mm256_mul_ps(v2, id); v3 = _mm256_mul_ps(v3, id);
        const __m256i q = round_pack_32(v0, v1, v2, v3);
        _mm256_storeu_si256((__m256i *)y[b].qs, q);
        /* Σq through sad of q + 128 */
        const __m256i sad = _mm256_sad_epu8(_mm256_xor_si256(q, _mm256_set1_epi8((char)0x80)), _mm256_setzero_si256());
        const int sum = hsum_i32x8(sad) - 32 * 128;
        y[b].s = _cvtss_sh((float)sum * d, _MM_FROUND_TO_NEAREST_INT);
    }
}

void fr__avx2_quantize_q8_K(const float *src, void *dst, int64_t n) {
    fr_block_q8_K *y = dst;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / FR_QK_K; b++, src += FR_QK_K) {
        __m256 amax8 = _mm256_setzero_ps();
        for (int j = 0; j < FR_QK_K; j += 8)
            amax8 = _mm256_max_ps(amax8, _mm256_andnot_ps(sign, _mm256_loadu_ps(src + j)));
        const float amax = hmax_f32x8(amax8);
        if (amax == 0.0f) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        /* the first element of largest magnitude gives the signed max */
        const __m256 target = _mm256_set1_ps(amax);
        float max = amax;
        for (int j = 0; j < FR_QK_K; j += 8) {
            const __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(src + j));
            const int mask = _mm256_movemask_ps(_mm256_cmp_ps(a, target, _CMP_EQ_OQ));
            if (mask) { max = src[j + __builtin_ctz((unsigned)mask)]; break; }
        }
        const float iscale = -127.f / max;
        const __m256 is = _mm256_set1_ps(iscale);
        const __m256i bias = _mm256_set1_epi8((char)0x80);
        for (int j = 0; j < FR_QK_K; j += 32) {
            const __m256i q = round_pack_32(_mm256_mul_ps(is, _mm256_loadu_ps(src + j)),
                                            _mm256_mul_ps(is, _mm256_loadu_ps(src + j + 8)),
                                            _mm256_mul_ps(is, _mm256_loadu_ps(src + j + 16)),
                                            _mm256_mul_ps(is, _mm256_loadu_ps(src + j + 24)));
            _mm256_storeu_si256((__m256i *)(y[b].qs + j), q);
            /* bsums: sad of (q + 128) against 0 sums 8 bytes per qword */
            const __m256i s = _mm256_sad_epu8(_mm256_xor_si256(q, bias), _mm256_setzero_si256());
            int64_t w[4];
            _mm256_storeu_si256((__m256i *)w, s);
            y[b].bsums[j / 16] = (int16_t)(w[0] + w[1] - 16 * 128);
            y[b].bsums[j / 16 + 1] = (int16_t)(w[2] + w[3] - 16 * 128);
        }
        y[b].d = 1 / iscale;
    }
}

/* ---- dot products ---- */

float fr__avx2_vec_dot_f32(int64_t n, const void *w, const void *a) {
    const float *x = w, *y = a;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++)
            acc[k] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8 * k), _mm256_loadu_ps(y + i + 8 * k), acc[k]);
    for (; i + 8 <= n; i += 8)
        acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc[0]);
    float sum = hsum_f32x8(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++) sum += x[i] * y[i];
    return sum;
}

float fr__avx2_vec_dot_f16(int64_t n, const void *w, const void *a) {
    const uint16_t *x = w, *y = a;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
#define LOADH(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++)
            acc[k] = _mm256_fmadd_ps(LOADH(x + i + 8 * k), LOADH(y + i + 8 * k), acc[k]);
    for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(LOADH(x + i), LOADH(y + i), acc[0]);
#undef LOADH
    float sum = hsum_f32x8(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++) sum += f16(x[i]) * f16(y[i]);
    return sum;
}

/* 8 bf16 → 8 floats (exact: the bits shifted up). */
static inline __m256 bf16x8(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

void fr__avx2_dequantize_bf16(const void *src, float *dst, int64_t n) {
    const uint16_t *x = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, bf16x8(x + i));
    for (; i < n; i++) dst[i] = fr_bf16_to_f32(x[i]);
}

/* f32 → bf16 rounding to nearest even, NaN kept quiet (as fr_f32_to_bf16). */
void fr__avx2_quantize_bf16(const float *src, void *dst, int64_t n) {
    uint16_t *y = dst;
    const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff);
    const __m256i absmask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i x = _mm256_loadu_si256((const __m256i *)(src + i));
        const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), one);
        const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(x, _mm256_add_epi32(bias, lsb)), 16);
        const __m256i qnan = _mm256_or_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(64));
        const __m256i isnan = _mm256_cmpgt_epi32(_mm256_and_si256(x, absmask), inf);
        const __m256i v = _mm256_blendv_epi8(r, qnan, isnan);
        /* 8 × 32-bit values (< 2^16) → 8 × 16 bits */
        const __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        _mm_storeu_si128((__m128i *)(y + i), packed);
    }
    for (; i < n; i++) y[i] = fr_f32_to_bf16(src[i]);
}

/* BF16·BF16: products are exact in f32 (8-bit significands); four 8-lane
 * float accumulators. */
float fr__avx2_vec_dot_bf16(int64_t n, const void *w, const void *a) {
    const uint16_t *x = w, *y = a;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++)
            acc[k] = _mm256_fmadd_ps(bf16x8(x + i + 8 * k), bf16x8(y + i + 8 * k), acc[k]);
    for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(bf16x8(x + i), bf16x8(y + i), acc[0]);
    float sum = hsum_f32x8(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++) sum += fr_bf16_to_f32(x[i]) * fr_bf16_to_f32(y[i]);
    return sum;
}

/* Q4_0·Q8_0 for nr (1 or 4) weight rows `stride` bytes apart against one
 * activation row.  Codes stay unsigned (0..15) so maddubs needs no sign
 * trick; the −8 offset is 8·Σa per 4-byte group, computed once per block
 * and shared by the rows.  Each row accumulates d_w·d_a·sumi in one 8-lane
 * float chain, block by block, so a row's result does not depend on nr. */
static inline __attribute__((always_inline)) void
q4_0_rows(int64_t n, const void *w, size_t stride, const void *a, float *out, const int nr) {
    const fr_block_q8_0 *y = a;
    const int64_t nb = n / 32;
    const __m256i eights = _mm256_set1_epi8(8), ones16 = _mm256_set1_epi16(1);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b = 0; b < nb; b++) {
        const __m256i yv = _mm256_loadu_si256((const __m256i *)y[b].qs);
        const __m256i ys8 = _mm256_madd_epi16(_mm256_maddubs_epi16(eights, yv), ones16);
        const float dy = f16(y[b].d);
        for (int r = 0; r < nr; r++) {
            const fr_block_q4_0 *x = (const fr_block_q4_0 *)((const char *)w + (size_t)r * stride) + b;
            const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(nibbles_32(x->qs), yv), ones16);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(f16(x->d) * dy), _mm256_cvtepi32_ps(_mm256_sub_epi32(p, ys8)),
                                     acc[r]);
        }
    }
    for (int r = 0; r < nr; r++) out[r] = hsum_f32x8(acc[r]);
}

float fr__avx2_vec_dot_q4_0_q8_0(int64_t n, const void *w, const void *a) {
    float out;
    q4_0_rows(n, w, 0, a, &out, 1);
    return out;
}

void fr__avx2_vec_dot4_q4_0_q8_0(int64_t n, const void *w, size_t stride, const void *a, float *out) {
    q4_0_rows(n, w, stride, a, out, 4);
}

/* 32 bits → 32 bytes, byte i = 0xFF when bit i is set, else 0. */
static inline __m256i bytes_from_bits_32(const uint8_t *p) {
    uint32_t x;
    memcpy(&x, p, 4);
    const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101,
                                            0x0202020202020202, 0x0303030303030303);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), shuf);
    bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}

/* Q5_0·Q8_0, nr (1 or 4) rows, as q4_0_rows: unsigned 5-bit codes, the −16
 * offset is 16·Σa per 4-byte group, shared by the rows. */
static inline __attribute__((always_inline)) void
q5_0_rows(int64_t n, const void *w, size_t stride, const void *a, float *out, const int nr) {
    const fr_block_q8_0 *y = a;
    const int64_t nb = n / 32;
    const __m256i sixteens = _mm256_set1_epi8(16), ones16 = _mm256_set1_epi16(1);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b = 0; b < nb; b++) {
        const __m256i yv = _mm256_loadu_si256((const __m256i *)y[b].qs);
        const __m256i ys16 = _mm256_madd_epi16(_mm256_maddubs_epi16(sixteens, yv), ones16);
        const float dy = f16(y[b].d);
        for (int r = 0; r < nr; r++) {
            const fr_block_q5_0 *x = (const fr_block_q5_0 *)((const char *)w + (size_t)r * stride) + b;
            const __m256i q = _mm256_or_si256(nibbles_32(x->qs),
                                              _mm256_and_si256(bytes_from_bits_32(x->qh), sixteens));
            const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, yv), ones16);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(f16(x->d) * dy), _mm256_cvtepi32_ps(_mm256_sub_epi32(p, ys16)),
                                     acc[r]);
        }
    }
    for (int r = 0; r < nr; r++) out[r] = hsum_f32x8(acc[r]);
}

float fr__avx2_vec_dot_q5_0_q8_0(int64_t n, const void *w, const void *a) {
    float out;
    q5_0_rows(n, w, 0, a, &out, 1);
    return out;
}

void fr__avx2_vec_dot4_q5_0_q8_0(int64_t n, const void *w, size_t stride, const void *a, float *out) {
    q5_0_rows(n, w, stride, a, out, 4);
}

/* Q4_1·Q8_1 and Q5_1·Q8_1: unsigned codes (no offset), d_w·d_a·sumi in 8
 * float lanes, plus m_w·s_a per block in a scalar sum. */
static inline __attribute__((always_inline)) float
q_1_dot(int64_t n, const void *w, const void *a, const int five) {
    const fr_block_q8_1 *y = a;
    const int64_t nb = n / 32;
    const __m256i ones16 = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    float summ = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        __m256i q;
        float dx, mx;
        if (five) {
            const fr_block_q5_1 *x = (const fr_block_q5_1 *)w + b;
            q = _mm256_or_si256(nibbles_32(x->qs), _mm256_and_si256(bytes_from_bits_32(x->qh), _mm256_set1_epi8(16)));
            dx = f16(x->d); mx = f16(x->m);
        } else {
            const fr_block_q4_1 *x = (const fr_block_q4_1 *)w + b;
            q = nibbles_32(x->qs);
            dx = f16(x->d); mx = f16(x->m);
        }
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)y[b].qs)), ones16);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dx * f16(y[b].d)), _mm256_cvtepi32_ps(p), acc);
        summ += mx * f16(y[b].s);
    }
    return hsum_f32x8(acc) + summ;
}

float fr__avx2_vec_dot_q4_1_q8_1(int64_t n, const void *w, const void *a) {
    return q_1_dot(n, w, a, 0);
}

float fr__avx2_vec_dot_q5_1_q8_1(int64_t n, const void *w, const void *a) {
    return q_1_dot(n, w, a, 1);
}

float fr__avx2_vec_dot_q8_0_q8_0(int64_t n, const void *w, const void *a) {
    const fr_block_q8_0 *x = w;
    const fr_block_q8_0 *y = a;
    const int64_t nb = n / 32;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const __m256i p0 = dot_i8_i32(_mm256_loadu_si256((const __m256i *)x[b].qs),
                                      _mm256_loadu_si256((const __m256i *)y[b].qs));
        const __m256i p1 = dot_i8_i32(_mm256_loadu_si256((const __m256i *)x[b + 1].qs),
                                      _mm256_loadu_si256((const __m256i *)y[b + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[b].d) * f16(y[b].d)), _mm256_cvtepi32_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[b + 1].d) * f16(y[b + 1].d)), _mm256_cvtepi32_ps(p1), acc1);
    }
    for (; b < nb; b++) {
        const __m256i p0 = dot_i8_i32(_mm256_loadu_si256((const __m256i *)x[b].qs),
                                      _mm256_loadu_si256((const __m256i *)y[b].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[b].d) * f16(y[b].d)), _mm256_cvtepi32_ps(p0), acc0);
    }
    return hsum_f32x8(_mm256_add_ps(acc0, acc1));
}

/* 32 int8 at p (unaligned). */
static inline __m256i load32(const void *p) {
    return _mm256_loadu_si256((const __m256i *)p);
}

/* Byte-shuffle masks.  word_bcast[j]: every 16-bit word = word j of a
 * 128-bit lane (Q4_K: scale j of 8 int16).  pair_bcast[q]: low 8 bytes =
 * byte 2q, high 8 bytes = byte 2q+1 (Q6_K: the int8 scales of the two
 * 16-element sub-blocks of quarter q). */
static const uint8_t word_bcast[8][32] __attribute__((aligned(32))) = {
#define W(j) {2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, \
              2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1}
    W(0), W(1), W(2), W(3), W(4), W(5), W(6), W(7)
#undef W
};
static const uint8_t pair_bcast[8][16] __attribute__((aligned(16))) = {
#define P(q) {2*q, 2*q, 2*q, 2*q, 2*q, 2*q, 2*q, 2*q, 2*q+1, 2*q+1, 2*q+1, 2*q+1, 2*q+1, 2*q+1, 2*q+1, 2*q+1}
    P(0), P(1), P(2), P(3), P(4), P(5), P(6), P(7)
#undef P
};

/* Q4_K's 12 scale bytes → bytes 0..7 = scales, 8..15 = mins (6 bits each),
 * the word-parallel form of fr__get_scale_min_k4. */
static inline __m128i q4_K_scales_mins(const uint8_t *q) {
    uint32_t u[4];
    memcpy(u, q, 12);
    const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
    u[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4);
    const uint32_t mins_lo = u[1] & m6;
    u[1] = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);
    u[2] = mins_lo;
    u[0] &= m6;
    return _mm_loadu_si128((const __m128i *)u);
}

float fr__avx2_vec_dot_q4_K_q8_K(int64_t n, const void *w, const void *a) {
    const fr_block_q4_K *x = w;
    const fr_block_q8_K *y = a;
    const __m256i m4 = _mm256_set1_epi8(0xF);
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const __m256i sm = _mm256_cvtepu8_epi16(q4_K_scales_mins(x[b].scales)); /* [sc0..7 | m0..7] */
        /* mins: Σ_j m_j·(bsum_2j + bsum_2j+1) */
        const __m256i bs = _mm256_loadu_si256((const __m256i *)y[b].bsums);
        const __m128i bs8 = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
        const __m128i pm = _mm_madd_epi16(bs8, _mm256_extracti128_si256(sm, 1));
        __m128i s4 = _mm_add_epi32(pm, _mm_unpackhi_epi64(pm, pm));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 1));
        const int summs = _mm_cvtsi128_si32(s4);

        const __m256i scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm));
        const uint8_t *q4 = x[b].qs;
        const int8_t *q8 = y[b].qs;
        __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++, q4 += 32, q8 += 64) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)q4);
            const __m256i lo = _mm256_and_si256(bits, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
            const __m256i sc_lo = _mm256_shuffle_epi8(scales, _mm256_load_si256((const __m256i *)word_bcast[2 * c]));
            const __m256i sc_hi = _mm256_shuffle_epi8(scales, _mm256_load_si256((const __m256i *)word_bcast[2 * c + 1]));
            const __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q8));
            const __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 32)));
            acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(p0, sc_lo));
            acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(p1, sc_hi));
        }
        const int isum = hsum_i32x8(_mm256_add_epi32(acc0, acc1));
        const float d = f16(x[b].d) * y[b].d;
        const float dmin = f16(x[b].dmin) * y[b].d;
        sumf += d * (float)isum - dmin * (float)summs;
    }
    return sumf;
}

/* Q2_K·Q8_K: per half h and shift 2j, 32 two-bit codes (sub-blocks 8h+2j
 * and 8h+2j+1) against 32 activations; maddubs, then madd with the two
 * sub-block scales (low nibbles).  Mins (high nibbles) · bsums once per
 * super-block.  Exact int32, scalar scaling as the twin: bit-identical. */
float fr__avx2_vec_dot_q2_K_q8_K(int64_t n, const void *w, const void *a) {
    const fr_block_q2_K *x = w;
    const fr_block_q8_K *y = a;
    const __m256i m3 = _mm256_set1_epi8(3);
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const __m128i sc = _mm_loadu_si128((const __m128i *)x[b].scales);
        const __m128i scales = _mm_and_si128(sc, _mm_set1_epi8(0xF));
        const __m128i mins = _mm_and_si128(_mm_srli_epi16(sc, 4), _mm_set1_epi8(0xF));
        const int summs = hsum_i32x8(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[b].bsums),
                                                        _mm256_cvtepu8_epi16(mins)));
        __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * h));
            for (int j = 0; j < 4; j++) {
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * j), m3);
                const __m256i p = _mm256_maddubs_epi16(q, load32(y[b].qs + 128 * h + 32 * j));
                const __m128i pair = _mm_load_si128((const __m128i *)pair_bcast[4 * h + j]);
                const __m256i s16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(scales, pair));
                if (j & 1) acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(p, s16));
                else acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(p, s16));
            }
        }
        const int isum = hsum_i32x8(_mm256_add_epi32(acc0, acc1));
        const float dall = y[b].d * f16(x[b].d);
        const float dmin = y[b].d * f16(x[b].dmin);
        sumf += dall * (float)isum - dmin * (float)summs;
    }
    return sumf;
}

/* Bit k of every byte of h, moved to bit 2 (value 4). */
static inline __m256i hbit4(__m256i h, int k) {
    const __m256i v = k <= 2 ? _mm256_slli_epi16(h, 2 - k) : _mm256_srli_epi16(h, k - 2);
    return _mm256_and_si256(v, _mm256_set1_epi8(4));
}

/* Q3_K·Q8_K: codes u = low2 | hbit<<2 (0..7) are q + 4, so
 * Σ q·a·sc = Σ u·a·sc − 4·Σ_sub sc·bsum (bsums cover exactly the 16-element
 * sub-blocks).  Exact int32, scalar scaling as the twin: bit-identical. */
float fr__avx2_vec_dot_q3_K_q8_K(int64_t n, const void *w, const void *a) {
    const fr_block_q3_K *x = w;
    const fr_block_q8_K *y = a;
    const __m256i m3 = _mm256_set1_epi8(3);
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        /* the 16 six-bit scales, word-parallel (GGUF.md §2, Q3_K) */
        uint32_t aux[4];
        memcpy(aux, x[b].scales, 12);
        const uint32_t m4 = 0x0f0f0f0f, m2 = 0x03030303, tmp = aux[2];
        aux[2] = ((aux[0] >> 4) & m4) | (((tmp >> 4) & m2) << 4);
        aux[3] = ((aux[1] >> 4) & m4) | (((tmp >> 6) & m2) << 4);
        aux[0] = (aux[0] & m4) | (((tmp >> 0) & m2) << 4);
        aux[1] = (aux[1] & m4) | (((tmp >> 2) & m2) << 4);
        const __m128i sc8 = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)aux), _mm_set1_epi8(32));
        const __m256i offs = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[b].bsums),
                                               _mm256_cvtepi8_epi16(sc8));
        const __m256i hm = _mm256_loadu_si256((const __m256i *)x[b].hmask);
        __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * h));
            for (int j = 0; j < 4; j++) {
                const __m256i u = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 2 * j), m3),
                                                  hbit4(hm, 4 * h + j));
                const __m256i p = _mm256_maddubs_epi16(u, load32(y[b].qs + 128 * h + 32 * j));
                const __m128i pair = _mm_load_si128((const __m128i *)pair_bcast[4 * h + j]);
                const __m256i s16 = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, pair));
                if (j & 1) acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(p, s16));
                else acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(p, s16));
            }
        }
        const __m256i acc = _mm256_sub_epi32(_mm256_add_epi32(acc0, acc1), _mm256_slli_epi32(offs, 2));
        const int isum = hsum_i32x8(acc);
        sumf += (f16(x[b].d) * y[b].d) * (float)isum;
    }
    return sumf;
}

/* Bit k of every byte of h, moved to bit 4 (value 16). */
static inline __m256i hbit16(__m256i h, int k) {
    const __m256i v = k <= 4 ? _mm256_slli_epi16(h, 4 - k) : _mm256_srli_epi16(h, k - 4);
    return _mm256_and_si256(v, _mm256_set1_epi8(16));
}

/* Q5_K: Q4_K plus a fifth bit per code from qh (bit 2c for the low nibbles
 * of chunk c, bit 2c+1 for the high ones). */
float fr__avx2_vec_dot_q5_K_q8_K(int64_t n, const void *w, const void *a) {
    const fr_block_q5_K *x = w;
    const fr_block_q8_K *y = a;
    const __m256i m4 = _mm256_set1_epi8(0xF);
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const __m256i sm = _mm256_cvtepu8_epi16(q4_K_scales_mins(x[b].scales));
        const __m256i bs = _mm256_loadu_si256((const __m256i *)y[b].bsums);
        const __m128i bs8 = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
        const __m128i pm = _mm_madd_epi16(bs8, _mm256_extracti128_si256(sm, 1));
        __m128i s4 = _mm_add_epi32(pm, _mm_unpackhi_epi64(pm, pm));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 1));
        const int summs = _mm_cvtsi128_si32(s4);

        const __m256i scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm));
        const __m256i hbits = _mm256_loadu_si256((const __m256i *)x[b].qh);
        const uint8_t *q5 = x[b].qs;
        const int8_t *q8 = y[b].qs;
        __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++, q5 += 32, q8 += 64) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)q5);
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(bits, m4), hbit16(hbits, 2 * c));
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
                                               hbit16(hbits, 2 * c + 1));
            const __m256i sc_lo = _mm256_shuffle_epi8(scales, _mm256_load_si256((const __m256i *)word_bcast[2 * c]));
            const __m256i sc_hi = _mm256_shuffle_epi8(scales, _mm256_load_si256((const __m256i *)word_bcast[2 * c + 1]));
            const __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q8));
            const __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 32)));
            acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(p0, sc_lo));
            acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(p1, sc_hi));
        }
        const int isum = hsum_i32x8(_mm256_add_epi32(acc0, acc1));
        const float d = f16(x[b].d) * y[b].d;
        const float dmin = f16(x[b].dmin) * y[b].d;
        sumf += d * (float)isum - dmin * (float)summs;
    }
    return sumf;
}

/* One Q6_K half (128 codes) · its 128 activations, scaled per 16-element
 * sub-block, added to acc0/acc1. */
static inline __attribute__((always_inline)) void
q6_K_half(const uint8_t *ql, const uint8_t *qh, const int8_t *q8, __m128i sc8, int h,
          __m256i *acc0, __m256i *acc1) {
    __m256i q[4];
    q6_K_quarters(ql, qh, q);
    for (int k = 0; k < 4; k++) {
        const __m256i p = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)(q8 + 32 * k)));
        const __m128i pair = _mm_load_si128((const __m128i *)pair_bcast[4 * h + k]);
        const __m256i s = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, pair));
        if (k & 1) *acc1 = _mm256_add_epi32(*acc1, _mm256_madd_epi16(p, s));
        else *acc0 = _mm256_add_epi32(*acc0, _mm256_madd_epi16(p, s));
    }
}

float fr__avx2_vec_dot_q6_K_q8_K(int64_t n, const void *w, const void *a) {
    const fr_block_q6_K *x = w;
    const fr_block_q8_K *y = a;
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)x[b].scales);
        /* the −32 offset: 32·Σ_k scale_k·bsum_k */
        const __m256i offs = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[b].bsums),
                                               _mm256_cvtepi8_epi16(sc8));
        __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
        q6_K_half(x[b].ql, x[b].qh, y[b].qs, sc8, 0, &acc0, &acc1);
        q6_K_half(x[b].ql + 64, x[b].qh + 32, y[b].qs + 128, sc8, 1, &acc0, &acc1);
        const __m256i acc = _mm256_sub_epi32(_mm256_add_epi32(acc0, acc1), _mm256_slli_epi32(offs, 5));
        const int isum = hsum_i32x8(acc);
        sumf += (f16(x[b].d) * y[b].d) * (float)isum;
    }
    return sumf;
}
