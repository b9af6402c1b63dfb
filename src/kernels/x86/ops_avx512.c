/*
 * x86/ops_avx512.c — AVX-512 versions of the forward-pass ops (ops.h), on zmm
 * registers.  Compiled with AVX-512 F/BW/VL flags; ops.c only calls these
 * when the CPU has them.
 *
 * exp: x = n·ln2 + r with n = round(x·log2 e), r reduced in two steps
 * (Cody–Waite), e^r by the Cephes degree-6 polynomial, then scalef(e^r, n),
 * which also gives 0 below the range and +inf above it.  Within 2 ulp of
 * libm's expf (test_ops checks it).
 *
 * Attention tiles: att_qk with transposed queries is a register-blocked
 * product, 4 keys × up to 64 rows (16 accumulators): per head dimension d
 * it loads 4 query vectors and broadcasts 4 key values.  att_pv keeps 4
 * output rows × 64 columns in registers while the tile's values stream
 * past, and folds the softmax correction into the load of the outputs.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "kernels/ops_int.h"

#define INLINE static inline __attribute__((always_inline))

INLINE __m512 exp512(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    x = _mm512_min_ps(x, _mm512_set1_ps(89.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 y = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(y, n);
}

void fr__avx512_exp16(const float *x, float *y) {
    _mm512_storeu_ps(y, exp512(_mm512_loadu_ps(x)));
}

static inline __mmask16 tail_mask(int64_t left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}

void fr__avx512_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps) {
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512d lo = _mm512_cvtps_pd(_mm256_loadu_ps(x + i));
        __m512d hi = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8));
        a0 = _mm512_fmadd_pd(lo, lo, a0);
        a1 = _mm512_fmadd_pd(hi, hi, a1);
    }
    double sum = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
    for (int64_t t = i; t < n; t++) sum += (double)x[t] * x[t];
    __m512 scale = _mm512_set1_ps(1.0f / sqrtf((float)(sum / (double)n) + eps));
    for (i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), scale);
        _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, w + i)));
    }
}

void fr__avx512_add(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        __m512 s = _mm512_add_ps(_mm512_maskz_loadu_ps(k, y + i), _mm512_maskz_loadu_ps(k, x + i));
        _mm512_mask_storeu_ps(y + i, k, s);
    }
}

void fr__avx512_rope(float *x, int n_heads, int hd, int n_rot, const float *cs, const float *sn,
                     bool neox) {
    int half = n_rot / 2;
    if (neox ? half % 16 != 0 : n_rot % 16 != 0) {
        fr__ref_rope(x, n_heads, hd, n_rot, cs, sn, neox);
        return;
    }
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * (size_t)hd;
        if (neox) {
            for (int i = 0; i < half; i += 16) {
                __m512 a = _mm512_loadu_ps(v + i), b = _mm512_loadu_ps(v + i + half);
                __m512 ra = _mm512_fmadd_ps(b, _mm512_loadu_ps(sn + i),
                                            _mm512_mul_ps(a, _mm512_loadu_ps(cs + i)));
                __m512 rb = _mm512_fmadd_ps(a, _mm512_loadu_ps(sn + i + half),
                                            _mm512_mul_ps(b, _mm512_loadu_ps(cs + i + half)));
                _mm512_storeu_ps(v + i, ra);
                _mm512_storeu_ps(v + i + half, rb);
            }
        } else {
            for (int i = 0; i < n_rot; i += 16) {
                __m512 a = _mm512_loadu_ps(v + i);
                __m512 sw = _mm512_permute_ps(a, 0xB1); /* swap adjacent pairs */
                __m512 r = _mm512_fmadd_ps(sw, _mm512_loadu_ps(sn + i),
                                           _mm512_mul_ps(a, _mm512_loadu_ps(cs + i)));
                _mm512_storeu_ps(v + i, r);
            }
        }
    }
}

void fr__avx512_scale(float *y, float s, int64_t n) {
    const __m512 sv = _mm512_set1_ps(s);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, y + i), sv));
    }
}

void fr__avx512_silu_mul(float *g, const float *u, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        __m512 x = _mm512_maskz_loadu_ps(k, g + i);
        __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
        __m512 s = _mm512_div_ps(x, _mm512_add_ps(one, e));
        _mm512_mask_storeu_ps(g + i, k, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(k, u + i)));
    }
}

/* ---- attention tiles ---- */

void fr__avx512_f16_rows(const uint16_t *src, size_t stride, int rows, int n, float *dst) {
    for (int i = 0; i < rows; i++) {
        const uint16_t *s = src + (size_t)i * stride;
        float *d = dst + (size_t)i * (size_t)n;
        for (int c = 0; c < n; c += 16) {
            __mmask16 k = tail_mask(n - c);
            __m256i h = _mm256_maskz_loadu_epi16(k, s + c);
            _mm512_mask_storeu_ps(d + c, k, _mm512_cvtph_ps(h));
        }
    }
}

/* st[j][16v ..] for NJ keys × NV vectors of 16 transposed query rows. */
INLINE void qk_block(const int NJ, const int NV, int hd, const float *k, const float *qt, int rp,
                     float scale, float *st) {
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int j = 0; j < NJ; j++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[j][v] = _mm512_setzero_ps();
    for (int d = 0; d < hd; d++) {
        __m512 q[4];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) q[v] = _mm512_loadu_ps(qt + (size_t)d * (size_t)rp + 16 * v);
#pragma GCC unroll 4
        for (int j = 0; j < NJ; j++) {
            __m512 kb = _mm512_set1_ps(k[(size_t)j * (size_t)hd + (size_t)d]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[j][v] = _mm512_fmadd_ps(kb, q[v], acc[j][v]);
        }
    }
    __m512 sc = _mm512_set1_ps(scale);
#pragma GCC unroll 4
    for (int j = 0; j < NJ; j++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            _mm512_storeu_ps(st + (size_t)j * (size_t)rp + 16 * v, _mm512_mul_ps(acc[j][v], sc));
}

#define QK(a, b) \
    case (a) * 8 + (b): qk_block(a, b, hd, kj, qt, rp, scale, sj); break

void fr__avx512_att_qk(int nk, int hd, const float *k, int R, int rp, const float *qs,
                       float scale, float *st) {
    if (R < FR_ATT_RMIN) {
        /* row-major queries: one dot product per (key, row) */
        for (int j = 0; j < nk; j++)
            for (int r = 0; r < R; r++) {
                __m512 acc = _mm512_setzero_ps();
                for (int d = 0; d < hd; d += 16) {
                    __mmask16 m = tail_mask(hd - d);
                    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, k + (size_t)j * (size_t)hd + d),
                                          _mm512_maskz_loadu_ps(m, qs + (size_t)r * (size_t)hd + d),
                                          acc);
                }
                st[j * rp + r] = scale * _mm512_reduce_add_ps(acc);
            }
        return;
    }
    for (int r0 = 0; r0 < rp; r0 += 64) {
        int nv = (rp - r0) / 16 < 4 ? (rp - r0) / 16 : 4;
        const float *qt = qs + r0;
        for (int j0 = 0; j0 < nk; j0 += 4) {
            int nj = nk - j0 < 4 ? nk - j0 : 4;
            const float *kj = k + (size_t)j0 * (size_t)hd;
            float *sj = st + (size_t)j0 * (size_t)rp + r0;
            switch (nj * 8 + nv) {
                QK(1, 1); QK(1, 2); QK(1, 3); QK(1, 4);
                QK(2, 1); QK(2, 2); QK(2, 3); QK(2, 4);
                QK(3, 1); QK(3, 2); QK(3, 3); QK(3, 4);
                QK(4, 1); QK(4, 2); QK(4, 3); QK(4, 4);
                default: break;
            }
        }
    }
}

#undef QK

void fr__avx512_att_softmax(int nk, int R, int rp, float *st, const int32_t *nv, float *m,
                            float *l, float *corr) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int r0 = 0; r0 < R; r0 += 16) {
        __mmask16 k = tail_mask(R - r0);
        __m512 m_old = _mm512_maskz_loadu_ps(k, m + r0);
        __m512i nvv = _mm512_maskz_loadu_epi32(k, nv + r0);
        __m512 mx = m_old;
        for (int j = 0; j < nk; j++) {
            __mmask16 vis = _mm512_mask_cmpgt_epi32_mask(k, nvv, _mm512_set1_epi32(j));
            __m512 s = _mm512_maskz_loadu_ps(k, st + (size_t)j * (size_t)rp + r0);
            mx = _mm512_mask_max_ps(mx, vis, mx, s);
        }
        __mmask16 same = _mm512_cmp_ps_mask(m_old, mx, _CMP_EQ_OQ);
        __m512 c = _mm512_mask_blend_ps(same, exp512(_mm512_sub_ps(m_old, mx)), one);
        __m512 sum = _mm512_setzero_ps();
        for (int j = 0; j < nk; j++) {
            __mmask16 vis = _mm512_mask_cmpgt_epi32_mask(k, nvv, _mm512_set1_epi32(j));
            float *sp = st + (size_t)j * (size_t)rp + r0;
            __m512 s = _mm512_maskz_loadu_ps(k, sp);
            __m512 p = _mm512_maskz_mov_ps(vis, exp512(_mm512_sub_ps(s, mx)));
            _mm512_mask_storeu_ps(sp, k, p);
            sum = _mm512_add_ps(sum, p);
        }
        __m512 lv = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, l + r0), c, sum);
        _mm512_mask_storeu_ps(l + r0, k, lv);
        _mm512_mask_storeu_ps(m + r0, k, mx);
        _mm512_mask_storeu_ps(corr + r0, k, c);
    }
}

/* NR output rows × NV vectors of 16 columns starting at column c0. */
INLINE void pv_block(const int NR, const int NV, int nk, int hd, const float *v, int rp,
                     const float *st, const float *corr, float *const *orow, int c0) {
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) {
        __m512 c = _mm512_set1_ps(corr[r]);
#pragma GCC unroll 4
        for (int x = 0; x < NV; x++)
            acc[r][x] = _mm512_mul_ps(_mm512_loadu_ps(orow[r] + c0 + 16 * x), c);
    }
    for (int j = 0; j < nk; j++) {
        __m512 vx[4];
#pragma GCC unroll 4
        for (int x = 0; x < NV; x++)
            vx[x] = _mm512_loadu_ps(v + (size_t)j * (size_t)hd + (size_t)c0 + 16 * x);
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            __m512 p = _mm512_set1_ps(st[(size_t)j * (size_t)rp + (size_t)r]);
#pragma GCC unroll 4
            for (int x = 0; x < NV; x++) acc[r][x] = _mm512_fmadd_ps(p, vx[x], acc[r][x]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 4
        for (int x = 0; x < NV; x++) _mm512_storeu_ps(orow[r] + c0 + 16 * x, acc[r][x]);
}

#define PV(a, b) \
    case (a) * 8 + (b): pv_block(a, b, nk, hd, v, rp, st + r, corr + r, orow + r, c0); break

void fr__avx512_att_pv(int nk, int hd, const float *v, int R, int rp, const float *st,
                       const float *corr, float *const *orow) {
    if (hd % 16 != 0) {
        fr__ref_att_pv(nk, hd, v, R, rp, st, corr, orow);
        return;
    }
    for (int r = 0; r < R; r += 4) {
        int nr = R - r < 4 ? R - r : 4;
        for (int c0 = 0; c0 < hd; c0 += 64) {
            int nv = (hd - c0) / 16 < 4 ? (hd - c0) / 16 : 4;
            switch (nr * 8 + nv) {
                PV(1, 1); PV(1, 2); PV(1, 3); PV(1, 4);
                PV(2, 1); PV(2, 2); PV(2, 3); PV(2, 4);
                PV(3, 1); PV(3, 2); PV(3, 3); PV(3, 4);
                PV(4, 1); PV(4, 2); PV(4, 3); PV(4, 4);
                default: break;
            }
        }
    }
}

#undef PV

/* ---- encoders: LayerNorm, GELU ---- */

void fr__avx512_layernorm(float *y, const float *x, const float *w, const float *b, int64_t n,
                          float eps) {
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm256_loadu_ps(x + i)));
        a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8)));
    }
    double sum = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
    for (int64_t t = i; t < n; t++) sum += x[t];
    float mean = (float)(sum / (double)n);
    const __m512 mv = _mm512_set1_ps(mean);
    a0 = a1 = _mm512_setzero_pd();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + i), mv);
        __m512 dd = _mm512_mul_ps(d, d);
        a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(dd)));
        a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(dd), 1))));
    }
    double sum2 = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
    for (int64_t t = i; t < n; t++) {
        float d = x[t] - mean;
        sum2 += (double)(d * d);
    }
    const __m512 sc = _mm512_set1_ps(1.0f / sqrtf((float)(sum2 / (double)n) + eps));
    for (i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), mv), sc);
        v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, w + i));
        if (b) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, b + i));
        _mm512_mask_storeu_ps(y + i, k, v);
    }
}

void fr__avx512_gelu(float *x, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f), a = _mm512_set1_ps(0.044715f);
    const __m512 m2c = _mm512_set1_ps(-2.0f * 0.79788456080286535587989211986876f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        /* −2u = −2·√(2/π)·v·(1 + a·v²);  GELU = v·sigmoid(2u) */
        __m512 inner = _mm512_fmadd_ps(_mm512_mul_ps(v, v), a, one);
        __m512 e = exp512(_mm512_mul_ps(_mm512_mul_ps(m2c, v), inner));
        _mm512_mask_storeu_ps(x + i, k, _mm512_div_ps(v, _mm512_add_ps(one, e)));
    }
}
