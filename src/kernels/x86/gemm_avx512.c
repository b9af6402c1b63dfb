/*
 * x86/gemm_avx512.c — register-tiled int8 GEMM with AVX-512 VNNI for batches
 * of activation rows (prefill): Q4_0 and Q8_0 weights against Q8_0
 * activations, Q4_K and Q6_K against Q8_K.  fr_matmul (matmul.c) calls it
 * for N ≥ a few rows when the active table is the AVX-512 one.
 *
 * Layout in registers.  A zmm holds 16 int32 lanes, one per weight row of
 * a panel.  Lane r of "quad" register q holds four consecutive weight
 * codes of row r (elements 4q..4q+3 of a group), as unsigned bytes.  One
 * vpdpbusd of that register with four activation bytes broadcast to every
 * lane adds Σ w·a over the four elements to all 16 rows at once; eight
 * such steps cover a 32-element block and leave each row's block sum in
 * its own lane, with no horizontal reduction.  A tile is 16 rows × up to
 * TT = 12 tokens: 12 int32 accumulators for the current block, 12 float
 * accumulators, one weight register loaded once for 12 vpdpbusd.
 *
 * Signedness: vpdpbusd multiplies unsigned by signed bytes, so the weight
 * codes are made unsigned and the offset is taken out through the
 * activation sums, computed once per matmul:
 *   Q4_0  codes 0..15,  value d·(q − 8):   int acc starts at −8·Σa;
 *   Q8_0  q + 128 (xor 0x80):               int acc starts at −128·Σa;
 *   Q6_K  codes 0..63,  d·sc·(q − 32):     per 16-sub-block acc starts at
 *         −32·bsum (Q8_K's bsums);
 *   Q4_K  codes 0..15,  d·sc·q − dmin·m:    mins applied in float with the
 *         32-sub-block sums (pairs of bsums).
 * The integer block sums are the exact integers the reference computes;
 * scales are applied in float per block (Q4_0, Q8_0: d_w·d_a) or per
 * sub-block then per super-block (K-quants: Σ_j (d·sc_j)·S_j, times d_a),
 * so results match ref.c within float rounding.
 *
 * Packing.  For a panel of 16 rows and a K-slice of up to 1024 elements,
 * each row's codes are unpacked to bytes (64 per zmm) and 16 such rows are
 * transposed as a 16×16 matrix of dwords (64 shuffles), giving 16 quad
 * registers.  The packed slice (≤ 20 KiB, with per-row float scales per
 * group) lives on the stack, stays in L1 while every token tile passes
 * over it, and the weights in the mapping are only read, once per call.
 * Results of successive K-slices are added into y.
 *
 * A panel is computed the same way whichever thread takes it, so y does
 * not depend on the thread count.
 */
#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "base/err.h"
#include "kernels/kernels_int.h"

#define TT   FR__GEMM_TT
#define REC32  FR__GEMM_REC32
#define REC256 FR__GEMM_REC256

/* Packed weights of one group, per panel:
 *   32-blocks: 8 quads + 16 float scales                         = 576 B;
 *   Q4_K super-block: 64 quads, dsc[8][16], dmm[8][16]           = 5120 B;
 *   Q6_K super-block: 64 quads, dsc[16][16]                      = 5120 B. */
#define PK32  (9 * 64)
#define PK256 (80 * 64)
#define KC32  32   /* blocks per K-slice */
#define KC256 4    /* super-blocks per K-slice */
#define PACK_BYTES (KC256 * PK256 > KC32 * PK32 ? KC256 * PK256 : KC32 * PK32)

/* ---------------------------------------------------------------- packing */

/* In place: row r of the input, dword q → lane r of output register q. */
static inline void transpose16(__m512i z[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(z[2 * i], z[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(z[2 * i], z[2 * i + 1]);
    }
    /* u[4g + j], 128-bit lane k: rows 4g..4g+3 of dword 4k + j */
    for (int g = 0; g < 4; g++) {
        u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
        u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
        u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
        u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    for (int j = 0; j < 4; j++) {
        const __m512i s0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88);
        const __m512i s1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xDD);
        const __m512i s2 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88);
        const __m512i s3 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xDD);
        z[j] = _mm512_shuffle_i32x4(s0, s2, 0x88);
        z[8 + j] = _mm512_shuffle_i32x4(s0, s2, 0xDD);
        z[4 + j] = _mm512_shuffle_i32x4(s1, s3, 0x88);
        z[12 + j] = _mm512_shuffle_i32x4(s1, s3, 0xDD);
    }
}

/* 16-bit shift counts: 0 in 128-bit lanes 0 and 2, 4 in lanes 1 and 3. */
static inline __m512i shift_0404(void) {
    const long long s = 0x0004000400040004LL;
    return _mm512_set_epi64(s, s, 0, 0, s, s, 0, 0);
}

/* Blocks [b0, b0+nb) of Q4_0 or Q8_0 rows → pk (nb · PK32 bytes). */
static void pack_b32(int wtype, const unsigned char *W, size_t wrow, int nrows, int64_t b0, int64_t nb,
                     unsigned char *pk) {
    const size_t bs = wtype == FR_TYPE_Q4_0 ? sizeof(fr_block_q4_0) : sizeof(fr_block_q8_0);
    const __m512i sh = shift_0404(), m4 = _mm512_set1_epi8(0x0F), x80 = _mm512_set1_epi8((char)0x80);
    for (int64_t b = 0; b < nb; b += 2) {
        const bool two = b + 1 < nb;
        __m512i z[16];
        _Alignas(64) uint16_t d[2][16];
        for (int r = 0; r < 16; r++) {
            if (r >= nrows) {
                z[r] = _mm512_setzero_si512();
                d[0][r] = d[1][r] = 0;
                continue;
            }
            const unsigned char *x = W + (size_t)r * wrow + (size_t)(b0 + b) * bs;
            memcpy(&d[0][r], x, 2);
            if (two) memcpy(&d[1][r], x + bs, 2);
            else d[1][r] = 0;
            if (wtype == FR_TYPE_Q4_0) {
                const __m128i lo = _mm_loadu_si128((const __m128i *)(x + 2));
                const __m128i hi = two ? _mm_loadu_si128((const __m128i *)(x + bs + 2)) : _mm_setzero_si128();
                const __m512i v = _mm512_inserti64x4(
                    _mm512_castsi256_si512(_mm256_broadcastsi128_si256(lo)), _mm256_broadcastsi128_si256(hi), 1);
                z[r] = _mm512_and_si512(_mm512_srlv_epi16(v, sh), m4);
            } else {
                const __m256i lo = _mm256_loadu_si256((const __m256i *)(x + 2));
                const __m256i hi = two ? _mm256_loadu_si256((const __m256i *)(x + bs + 2)) : _mm256_setzero_si256();
                z[r] = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), x80);
            }
        }
        transpose16(z);
        unsigned char *p = pk + (size_t)b * PK32;
        for (int q = 0; q < 8; q++) _mm512_store_si512((__m512i *)(p + 64 * q), z[q]);
        _mm512_store_ps((float *)(p + 512), _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)d[0])));
        if (two) {
            p += PK32;
            for (int q = 0; q < 8; q++) _mm512_store_si512((__m512i *)(p + 64 * q), z[8 + q]);
            _mm512_store_ps((float *)(p + 512), _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)d[1])));
        }
    }
}

/* Super-blocks [s0, s0+ns) of Q4_K or Q6_K rows → pk (ns · PK256 bytes). */
static void pack_b256(int wtype, const unsigned char *W, size_t wrow, int nrows, int64_t s0, int64_t ns,
                      unsigned char *pk) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(3);
    const long long s2 = 0x0002000200020002LL, s4 = 0x0004000400040004LL, s6 = 0x0006000600060006LL;
    const __m512i sh02 = _mm512_set_epi64(s2, s2, s2, s2, 0, 0, 0, 0);
    const __m512i sh46 = _mm512_set_epi64(s6, s6, s6, s6, s4, s4, s4, s4);
    const __m512i sh04 = _mm512_set_epi64(s4, s4, s4, s4, 0, 0, 0, 0);
    for (int64_t s = 0; s < ns; s++) {
        unsigned char *p = pk + (size_t)s * PK256;
        float *sc = (float *)(p + 4096);
        for (int c = 0; c < 4; c++) {
            __m512i z[16];
            for (int r = 0; r < 16; r++) {
                if (r >= nrows) {
                    z[r] = _mm512_setzero_si512();
                    continue;
                }
                if (wtype == FR_TYPE_Q4_K) {
                    /* sub-blocks 2c (low nibbles of qs[32c..]) and 2c+1 (high) */
                    const fr_block_q4_K *x = (const fr_block_q4_K *)(W + (size_t)r * wrow) + s0 + s;
                    const __m256i q = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * c));
                    const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(q), q, 1);
                    z[r] = _mm512_and_si512(_mm512_srlv_epi16(v, sh04), m4);
                } else {
                    /* elements 64c..64c+63: half h = c/2, quarters 2(c%2), 2(c%2)+1 */
                    const fr_block_q6_K *x = (const fr_block_q6_K *)(W + (size_t)r * wrow) + s0 + s;
                    const int h = c / 2, odd = c & 1;
                    const __m512i ql = _mm512_loadu_si512((const void *)(x->ql + 64 * h));
                    const __m256i qh = _mm256_loadu_si256((const __m256i *)(x->qh + 32 * h));
                    const __m512i lo = odd ? _mm512_and_si512(_mm512_srli_epi16(ql, 4), m4)
                                           : _mm512_and_si512(ql, m4);
                    const __m512i hv = _mm512_inserti64x4(_mm512_castsi256_si512(qh), qh, 1);
                    const __m512i hb = _mm512_and_si512(_mm512_srlv_epi16(hv, odd ? sh46 : sh02), m2);
                    z[r] = _mm512_or_si512(lo, _mm512_slli_epi16(hb, 4));
                }
            }
            transpose16(z);
            for (int q = 0; q < 16; q++) _mm512_store_si512((__m512i *)(p + 1024 * c + 64 * q), z[q]);
        }
        for (int r = 0; r < 16; r++) {
            if (wtype == FR_TYPE_Q4_K) {
                float *dmm = sc + 8 * 16;
                if (r >= nrows) {
                    for (int j = 0; j < 8; j++) sc[16 * j + r] = dmm[16 * j + r] = 0;
                    continue;
                }
                const fr_block_q4_K *x = (const fr_block_q4_K *)(W + (size_t)r * wrow) + s0 + s;
                const float d = fr_f16_to_f32(x->d), dmin = fr_f16_to_f32(x->dmin);
                for (int j = 0; j < 8; j++) {
                    uint8_t scj, mj;
                    fr__get_scale_min_k4(j, x->scales, &scj, &mj);
                    sc[16 * j + r] = d * (float)scj;
                    dmm[16 * j + r] = dmin * (float)mj;
                }
            } else {
                if (r >= nrows) {
                    for (int j = 0; j < 16; j++) sc[16 * j + r] = 0;
                    continue;
                }
                const fr_block_q6_K *x = (const fr_block_q6_K *)(W + (size_t)r * wrow) + s0 + s;
                const float d = fr_f16_to_f32(x->d);
                for (int j = 0; j < 16; j++) sc[16 * j + r] = d * (float)x->scales[j];
            }
        }
    }
}

/* ------------------------------------------------------------ micro-kernels */

/* Loops over tokens, quads and sub-blocks are unrolled so that the
 * accumulator arrays live in registers. */
#define UNROLL _Pragma("GCC unroll 16")

static inline __m512i bcast32(const unsigned char *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

static inline __m512 bcastf(const unsigned char *p) {
    float v;
    memcpy(&v, p, 4);
    return _mm512_set1_ps(v);
}

/* y[t][0..15] (+)= v under mask; add when !first. */
static inline void put(float *y, __mmask16 mask, bool first, __m512 v) {
    if (!first) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, y));
    _mm512_mask_storeu_ps(y, mask, v);
}

/* T tokens × 16 rows over nb 32-blocks (Q4_0, Q8_0).  aq: the first
 * token's q bytes in the tile's first record, ax: its d (then TT floats
 * later its init); both advance by one record per block.
 *
 * Cost per block and 12 tokens: 96 vpdpbusd, 12 vmulps and 12 vfmadd on
 * the two pipes that do 512-bit multiplies on Zen 4 (cvtdq2ps, broadcasts
 * and adds go elsewhere), so at best 80% of the vpdpbusd rate.  Each
 * token's scale work follows right after its last vpdpbusd of the block
 * (not all twelve after the last quad): measured ~20% faster in L1, since
 * the multiplies then interleave with the next block's vpdpbusd. */
static inline __attribute__((always_inline)) void
tile_b32(const int T, const unsigned char *pk, const unsigned char *a, int toff, int64_t nb, float *y,
         int64_t ldy, bool first, __mmask16 mask) {
    const unsigned char *aq = a + 32 * toff;
    const unsigned char *ax = a + TT * 32 + 4 * toff;
    __m512 acc[TT];
    UNROLL
    for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++, pk += PK32, aq += REC32, ax += REC32) {
        __m512i s[TT];
        UNROLL
        for (int t = 0; t < T; t++) s[t] = bcast32(ax + 4 * TT + 4 * t);
        UNROLL
        for (int q = 0; q < 7; q++) {
            const __m512i w = _mm512_load_si512((const __m512i *)(pk + 64 * q));
            UNROLL
            for (int t = 0; t < T; t++) s[t] = _mm512_dpbusd_epi32(s[t], w, bcast32(aq + 32 * t + 4 * q));
        }
        const __m512i w7 = _mm512_load_si512((const __m512i *)(pk + 64 * 7));
        const __m512 dw = _mm512_load_ps((const float *)(pk + 512));
        UNROLL
        for (int t = 0; t < T; t++) {
            s[t] = _mm512_dpbusd_epi32(s[t], w7, bcast32(aq + 32 * t + 28));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t]), _mm512_mul_ps(dw, bcastf(ax + 4 * t)), acc[t]);
        }
    }
    UNROLL
    for (int t = 0; t < T; t++) put(y + t * ldy, mask, first, acc[t]);
}

/* T tokens × 16 rows over ns Q4_K super-blocks.  aq: the first token's q
 * bytes, ad: its d, au: its aux row (all advance one record per
 * super-block); accb holds the float sums between super-blocks. */
static inline __attribute__((always_inline)) void
tile_q4_K(const int T, const unsigned char *pk, const unsigned char *a, int toff, int64_t ns, float *y,
          int64_t ldy, bool first, __mmask16 mask) {
    const unsigned char *aq = a + 256 * toff, *ad = a + TT * 256 + 4 * toff, *au = a + TT * 260 + 64 * toff;
    _Alignas(64) float accb[TT][16];
    UNROLL
    for (int t = 0; t < T; t++) _mm512_store_ps(accb[t], _mm512_setzero_ps());
    for (int64_t sb = 0; sb < ns; sb++, pk += PK256, aq += REC256, ad += REC256, au += REC256) {
        __m512 in[TT];
        UNROLL
        for (int t = 0; t < T; t++) in[t] = _mm512_setzero_ps();
        for (int j = 0; j < 8; j++) {
            const unsigned char *pj = pk + 512 * j, *aj = aq + 32 * j, *uj = au + 4 * j;
            __m512i s[TT];
            UNROLL
            for (int t = 0; t < T; t++) s[t] = _mm512_setzero_si512();
            UNROLL
            for (int q = 0; q < 7; q++) {
                const __m512i w = _mm512_load_si512((const __m512i *)(pj + 64 * q));
                UNROLL
                for (int t = 0; t < T; t++) s[t] = _mm512_dpbusd_epi32(s[t], w, bcast32(aj + 256 * t + 4 * q));
            }
            const __m512i w7 = _mm512_load_si512((const __m512i *)(pj + 64 * 7));
            const __m512 dsc = _mm512_load_ps((const float *)(pk + 4096 + 64 * j));
            const __m512 dmm = _mm512_load_ps((const float *)(pk + 4608 + 64 * j));
            UNROLL
            for (int t = 0; t < T; t++) {
                s[t] = _mm512_dpbusd_epi32(s[t], w7, bcast32(aj + 256 * t + 28));
                in[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t]), dsc, in[t]);
                in[t] = _mm512_fmadd_ps(dmm, bcastf(uj + 64 * t), in[t]);
            }
        }
        UNROLL
        for (int t = 0; t < T; t++)
            _mm512_store_ps(accb[t], _mm512_fmadd_ps(in[t], bcastf(ad + 4 * t), _mm512_load_ps(accb[t])));
    }
    UNROLL
    for (int t = 0; t < T; t++) put(y + t * ldy, mask, first, _mm512_load_ps(accb[t]));
}

/* T tokens × 16 rows over ns Q6_K super-blocks (pointers as tile_q4_K). */
static inline __attribute__((always_inline)) void
tile_q6_K(const int T, const unsigned char *pk, const unsigned char *a, int toff, int64_t ns, float *y,
          int64_t ldy, bool first, __mmask16 mask) {
    const unsigned char *aq = a + 256 * toff, *ad = a + TT * 256 + 4 * toff, *au = a + TT * 260 + 64 * toff;
    _Alignas(64) float accb[TT][16];
    UNROLL
    for (int t = 0; t < T; t++) _mm512_store_ps(accb[t], _mm512_setzero_ps());
    for (int64_t sb = 0; sb < ns; sb++, pk += PK256, aq += REC256, ad += REC256, au += REC256) {
        __m512 in[TT];
        UNROLL
        for (int t = 0; t < T; t++) in[t] = _mm512_setzero_ps();
        for (int j = 0; j < 16; j++) {
            const unsigned char *pj = pk + 256 * j, *aj = aq + 16 * j, *uj = au + 4 * j;
            __m512i s[TT];
            UNROLL
            for (int t = 0; t < T; t++) s[t] = bcast32(uj + 64 * t);
            UNROLL
            for (int q = 0; q < 3; q++) {
                const __m512i w = _mm512_load_si512((const __m512i *)(pj + 64 * q));
                UNROLL
                for (int t = 0; t < T; t++) s[t] = _mm512_dpbusd_epi32(s[t], w, bcast32(aj + 256 * t + 4 * q));
            }
            const __m512i w3 = _mm512_load_si512((const __m512i *)(pj + 64 * 3));
            const __m512 dsc = _mm512_load_ps((const float *)(pk + 4096 + 64 * j));
            UNROLL
            for (int t = 0; t < T; t++) {
                s[t] = _mm512_dpbusd_epi32(s[t], w3, bcast32(aj + 256 * t + 12));
                in[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t]), dsc, in[t]);
            }
        }
        UNROLL
        for (int t = 0; t < T; t++)
            _mm512_store_ps(accb[t], _mm512_fmadd_ps(in[t], bcastf(ad + 4 * t), _mm512_load_ps(accb[t])));
    }
    UNROLL
    for (int t = 0; t < T; t++) put(y + t * ldy, mask, first, _mm512_load_ps(accb[t]));
}

/* One function per (kernel, token count): T is a constant inside, so the
 * accumulator arrays become registers.  Counts without their own function
 * run the next smaller one and then the rest (tile_take). */
typedef void (*tile_fn)(const unsigned char *pk, const unsigned char *a, int toff, int64_t ng, float *y,
                        int64_t ldy, bool first, __mmask16 mask);

#define TILE_FN(kern, T)                                                                              \
    static void kern##_##T(const unsigned char *pk, const unsigned char *a, int toff, int64_t ng,      \
                           float *y, int64_t ldy, bool first, __mmask16 mask) {                        \
        kern(T, pk, a, toff, ng, y, ldy, first, mask);                                                 \
    }
#define TILE_FNS(kern)                                                                                \
    TILE_FN(kern, 1) TILE_FN(kern, 2) TILE_FN(kern, 3) TILE_FN(kern, 4) TILE_FN(kern, 6)               \
    TILE_FN(kern, 8) TILE_FN(kern, 12)                                                                 \
    static const tile_fn kern##_fns[TT + 1] = {                                                        \
        NULL, kern##_1, kern##_2, kern##_3, kern##_4, kern##_4, kern##_6,                              \
        kern##_6, kern##_8, kern##_8, kern##_8, kern##_8, kern##_12,                                   \
    };

TILE_FNS(tile_b32)
TILE_FNS(tile_q4_K)
TILE_FNS(tile_q6_K)

/* How many tokens the function for a count of n computes (≤ n). */
static const int tile_take[TT + 1] = {0, 1, 2, 3, 4, 4, 6, 6, 8, 8, 8, 8, 12};

/* ------------------------------------------------------------ entry points */

static bool is_b32(int wtype) {
    return wtype == FR_TYPE_Q4_0 || wtype == FR_TYPE_Q8_0;
}

void fr__avx512_gemm_convert(const fr__gemm *g, const float *x, int ith, int nth) {
    const bool b32 = is_b32(g->wtype);
    const int64_t gs = b32 ? 32 : 256, ng = g->K / gs, total = ng * g->N;
    const int64_t start = total * ith / nth, end = total * (ith + 1) / nth;
    const size_t rec = b32 ? REC32 : REC256;
    for (int64_t i = start; i < end;) {
        const int64_t tok = i / ng, b0 = i % ng, tt = tok % TT;
        int64_t cnt = ng - b0;
        if (cnt > end - i) cnt = end - i;
        if (cnt > 32) cnt = 32;
        unsigned char *r = g->act + (size_t)((tok / TT) * ng + b0) * rec;
        if (b32) {
            fr_block_q8_0 tmp[32];
            const int32_t off = g->wtype == FR_TYPE_Q4_0 ? 8 : 128;
            g->quantize(x + tok * g->K + b0 * 32, tmp, cnt * 32);
            for (int64_t b = 0; b < cnt; b++, r += rec) {
                int32_t sum = 0;
                for (int k = 0; k < 32; k++) sum += tmp[b].qs[k];
                const float d = fr_f16_to_f32(tmp[b].d);
                const int32_t init = -off * sum;
                memcpy(r + 32 * tt, tmp[b].qs, 32);
                memcpy(r + TT * 32 + 4 * tt, &d, 4);
                memcpy(r + TT * 36 + 4 * tt, &init, 4);
            }
        } else {
            fr_block_q8_K tmp[4];
            if (cnt > 4) cnt = 4;
            g->quantize(x + tok * g->K + b0 * 256, tmp, cnt * 256);
            for (int64_t b = 0; b < cnt; b++, r += rec) {
                int32_t aux[16];
                memcpy(r + 256 * tt, tmp[b].qs, 256);
                memcpy(r + TT * 256 + 4 * tt, &tmp[b].d, 4);
                if (g->wtype == FR_TYPE_Q4_K)
                    for (int j = 0; j < 8; j++) {
                        const float s = -(float)(tmp[b].bsums[2 * j] + tmp[b].bsums[2 * j + 1]);
                        memcpy(&aux[j], &s, 4);
                    }
                else
                    for (int j = 0; j < 16; j++) aux[j] = -32 * tmp[b].bsums[j];
                memcpy(r + TT * 260 + 64 * tt, aux, sizeof aux);
            }
        }
        i += cnt;
    }
}

void fr__avx512_gemm_panel(const fr__gemm *g, int64_t p) {
    _Alignas(64) unsigned char pk[PACK_BYTES];
    const int64_t r0 = p * FR__GEMM_ROWS;
    FR_ASSERT(r0 < g->M);
    const int nrows = g->M - r0 < FR__GEMM_ROWS ? (int)(g->M - r0) : FR__GEMM_ROWS;
    const __mmask16 mask = (__mmask16)((1u << nrows) - 1);
    const bool b32 = is_b32(g->wtype);
    const int64_t ng = g->K / (b32 ? 32 : 256), kc = b32 ? KC32 : KC256;
    const size_t rec = b32 ? REC32 : REC256;
    const tile_fn *fns = b32 ? tile_b32_fns : g->wtype == FR_TYPE_Q4_K ? tile_q4_K_fns : tile_q6_K_fns;
    const unsigned char *W = g->W + (size_t)r0 * g->wrow;
    for (int64_t g0 = 0; g0 < ng; g0 += kc) {
        const int64_t n = ng - g0 < kc ? ng - g0 : kc;
        if (b32) pack_b32(g->wtype, W, g->wrow, nrows, g0, n, pk);
        else pack_b256(g->wtype, W, g->wrow, nrows, g0, n, pk);
        for (int64_t t0 = 0; t0 < g->N; t0 += TT) {
            const unsigned char *a = g->act + (size_t)((t0 / TT) * ng + g0) * rec;
            int64_t left = g->N - t0 < TT ? g->N - t0 : TT;
            for (int64_t t = 0; t < left;) {
                const int take = tile_take[left - t];
                fns[left - t](pk, a, (int)t, n, g->y + (t0 + t) * g->ldy + r0, g->ldy, g0 == 0,
                              mask);
                t += take;
            }
        }
    }
}
