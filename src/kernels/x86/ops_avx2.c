/*
 * x86/ops_avx2.c — AVX2+FMA+F16C versions of the forward-pass ops (ops.h), for
 * x86 CPUs without AVX-512.  The same algorithms as x86/ops_avx512.c on 8-lane
 * ymm registers; where a row or a tail does not fill a vector the twin in
 * ops.c does that part (the twins index by pointer, so a sub-range is the
 * same call on offset pointers).
 *
 * exp: as x86/ops_avx512.c, with 2^n built in the exponent bits (two factors,
 * so n = 128 works); below −87.34 the result is 0 where expf gives a
 * denormal (softmax weights and SiLU: no visible difference), above 88.72
 * it is +inf.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "kernels/ops_int.h"

#define INLINE static inline __attribute__((always_inline))

INLINE __m256 exp256(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.33654f), hi = _mm256_set1_ps(88.72283f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ), over = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 y = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    /* n in [−126, 128]: 2^n as 2^(n/2)·2^(n−n/2), each a normal float */
    __m256i ni = _mm256_cvtps_epi32(n), n1 = _mm256_srai_epi32(ni, 1);
    __m256i n2 = _mm256_sub_epi32(ni, n1), bias = _mm256_set1_epi32(127);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23)));
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23)));
    y = _mm256_blendv_ps(y, _mm256_setzero_ps(), under);
    return _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), over);
}

void fr__avx2_exp8(const float *x, float *y) {
    _mm256_storeu_ps(y, exp256(_mm256_loadu_ps(x)));
}

INLINE float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

void fr__avx2_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps) {
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256d lo = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
        __m256d hi = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
        a0 = _mm256_fmadd_pd(lo, lo, a0);
        a1 = _mm256_fmadd_pd(hi, hi, a1);
    }
    __m256d a = _mm256_add_pd(a0, a1);
    __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    double sum = _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
    for (int64_t t = i; t < n; t++) sum += (double)x[t] * x[t];
    float sc = 1.0f / sqrtf((float)(sum / (double)n) + eps);
    __m256 scale = _mm256_set1_ps(sc);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), scale),
                                              _mm256_loadu_ps(w + i)));
    for (; i < n; i++) y[i] = x[i] * sc * w[i];
}

void fr__avx2_add(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] += x[i];
}

void fr__avx2_scale(float *y, float s, int64_t n) {
    const __m256 sv = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), sv));
    for (; i < n; i++) y[i] *= s;
}

void fr__avx2_silu_mul(float *g, const float *u, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i);
        __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), x));
        __m256 s = _mm256_div_ps(x, _mm256_add_ps(one, e));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
    if (i < n) fr__ref_silu_mul(g + i, u + i, n - i);
}

void fr__avx2_rope(float *x, int n_heads, int hd, int n_rot, const float *cs, const float *sn,
                   bool neox) {
    int half = n_rot / 2;
    if (neox ? half % 8 != 0 : n_rot % 8 != 0) {
        fr__ref_rope(x, n_heads, hd, n_rot, cs, sn, neox);
        return;
    }
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * (size_t)hd;
        if (neox) {
            for (int i = 0; i < half; i += 8) {
                __m256 a = _mm256_loadu_ps(v + i), b = _mm256_loadu_ps(v + i + half);
                __m256 ra = _mm256_fmadd_ps(b, _mm256_loadu_ps(sn + i),
                                            _mm256_mul_ps(a, _mm256_loadu_ps(cs + i)));
                __m256 rb = _mm256_fmadd_ps(a, _mm256_loadu_ps(sn + i + half),
                                            _mm256_mul_ps(b, _mm256_loadu_ps(cs + i + half)));
                _mm256_storeu_ps(v + i, ra);
                _mm256_storeu_ps(v + i + half, rb);
            }
        } else {
            for (int i = 0; i < n_rot; i += 8) {
                __m256 a = _mm256_loadu_ps(v + i);
                __m256 sw = _mm256_permute_ps(a, 0xB1);
                __m256 r = _mm256_fmadd_ps(sw, _mm256_loadu_ps(sn + i),
                                           _mm256_mul_ps(a, _mm256_loadu_ps(cs + i)));
                _mm256_storeu_ps(v + i, r);
            }
        }
    }
}

void fr__avx2_f16_rows(const uint16_t *src, size_t stride, int rows, int n, float *dst) {
    for (int i = 0; i < rows; i++) {
        const uint16_t *s = src + (size_t)i * stride;
        float *d = dst + (size_t)i * (size_t)n;
        int c = 0;
        for (; c + 8 <= n; c += 8)
            _mm256_storeu_ps(d + c, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + c))));
        if (c < n) fr__ref_f16_rows(s + c, stride, 1, n - c, d + c);
    }
}

/* ---- attention tiles ---- */

/* NJ keys × 16 transposed query rows (two vectors). */
INLINE void qk_block(const int NJ, int hd, const float *k, const float *qt, int rp, float scale,
                     float *st) {
    __m256 acc[4][2];
#pragma GCC unroll 4
    for (int j = 0; j < NJ; j++) acc[j][0] = acc[j][1] = _mm256_setzero_ps();
    for (int d = 0; d < hd; d++) {
        __m256 q0 = _mm256_loadu_ps(qt + (size_t)d * (size_t)rp);
        __m256 q1 = _mm256_loadu_ps(qt + (size_t)d * (size_t)rp + 8);
#pragma GCC unroll 4
        for (int j = 0; j < NJ; j++) {
            __m256 kb = _mm256_broadcast_ss(k + (size_t)j * (size_t)hd + (size_t)d);
            acc[j][0] = _mm256_fmadd_ps(kb, q0, acc[j][0]);
            acc[j][1] = _mm256_fmadd_ps(kb, q1, acc[j][1]);
        }
    }
    __m256 sc = _mm256_set1_ps(scale);
#pragma GCC unroll 4
    for (int j = 0; j < NJ; j++) {
        _mm256_storeu_ps(st + (size_t)j * (size_t)rp, _mm256_mul_ps(acc[j][0], sc));
        _mm256_storeu_ps(st + (size_t)j * (size_t)rp + 8, _mm256_mul_ps(acc[j][1], sc));
    }
}

void fr__avx2_att_qk(int nk, int hd, const float *k, int R, int rp, const float *qs, float scale,
                     float *st) {
    if (R < FR_ATT_RMIN) {
        for (int j = 0; j < nk; j++)
            for (int r = 0; r < R; r++) {
                const float *kj = k + (size_t)j * (size_t)hd, *qr = qs + (size_t)r * (size_t)hd;
                __m256 acc = _mm256_setzero_ps();
                int d = 0;
                for (; d + 8 <= hd; d += 8)
                    acc = _mm256_fmadd_ps(_mm256_loadu_ps(kj + d), _mm256_loadu_ps(qr + d), acc);
                float s = hsum256(acc);
                for (; d < hd; d++) s += kj[d] * qr[d];
                st[j * rp + r] = scale * s;
            }
        return;
    }
    for (int r0 = 0; r0 < rp; r0 += 16)
        for (int j0 = 0; j0 < nk; j0 += 4) {
            const float *kj = k + (size_t)j0 * (size_t)hd;
            float *sj = st + (size_t)j0 * (size_t)rp + r0;
            switch (nk - j0 < 4 ? nk - j0 : 4) {
                case 1: qk_block(1, hd, kj, qs + r0, rp, scale, sj); break;
                case 2: qk_block(2, hd, kj, qs + r0, rp, scale, sj); break;
                case 3: qk_block(3, hd, kj, qs + r0, rp, scale, sj); break;
                default: qk_block(4, hd, kj, qs + r0, rp, scale, sj); break;
            }
        }
}

void fr__avx2_att_softmax(int nk, int R, int rp, float *st, const int32_t *nv, float *m, float *l,
                          float *corr) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int r0 = 0;
    for (; r0 + 8 <= R; r0 += 8) {
        __m256 m_old = _mm256_loadu_ps(m + r0);
        __m256i nvv = _mm256_loadu_si256((const __m256i *)(nv + r0));
        __m256 mx = m_old;
        for (int j = 0; j < nk; j++) {
            __m256 vis = _mm256_castsi256_ps(_mm256_cmpgt_epi32(nvv, _mm256_set1_epi32(j)));
            __m256 s = _mm256_loadu_ps(st + (size_t)j * (size_t)rp + r0);
            mx = _mm256_blendv_ps(mx, _mm256_max_ps(mx, s), vis);
        }
        __m256 same = _mm256_cmp_ps(m_old, mx, _CMP_EQ_OQ);
        __m256 c = _mm256_blendv_ps(exp256(_mm256_sub_ps(m_old, mx)), one, same);
        __m256 sum = _mm256_setzero_ps();
        for (int j = 0; j < nk; j++) {
            __m256 vis = _mm256_castsi256_ps(_mm256_cmpgt_epi32(nvv, _mm256_set1_epi32(j)));
            float *sp = st + (size_t)j * (size_t)rp + r0;
            __m256 p = _mm256_and_ps(exp256(_mm256_sub_ps(_mm256_loadu_ps(sp), mx)), vis);
            _mm256_storeu_ps(sp, p);
            sum = _mm256_add_ps(sum, p);
        }
        _mm256_storeu_ps(l + r0, _mm256_fmadd_ps(_mm256_loadu_ps(l + r0), c, sum));
        _mm256_storeu_ps(m + r0, mx);
        _mm256_storeu_ps(corr + r0, c);
    }
    if (r0 < R) fr__ref_att_softmax(nk, R - r0, rp, st + r0, nv + r0, m + r0, l + r0, corr + r0);
}

/* NR output rows × 16 columns from c0. */
INLINE void pv_block(const int NR, int nk, int hd, const float *v, int rp, const float *st,
                     const float *corr, float *const *orow, int c0) {
    __m256 acc[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) {
        __m256 c = _mm256_set1_ps(corr[r]);
        acc[r][0] = _mm256_mul_ps(_mm256_loadu_ps(orow[r] + c0), c);
        acc[r][1] = _mm256_mul_ps(_mm256_loadu_ps(orow[r] + c0 + 8), c);
    }
    for (int j = 0; j < nk; j++) {
        __m256 v0 = _mm256_loadu_ps(v + (size_t)j * (size_t)hd + (size_t)c0);
        __m256 v1 = _mm256_loadu_ps(v + (size_t)j * (size_t)hd + (size_t)c0 + 8);
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            __m256 p = _mm256_broadcast_ss(st + (size_t)j * (size_t)rp + (size_t)r);
            acc[r][0] = _mm256_fmadd_ps(p, v0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(p, v1, acc[r][1]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) {
        _mm256_storeu_ps(orow[r] + c0, acc[r][0]);
        _mm256_storeu_ps(orow[r] + c0 + 8, acc[r][1]);
    }
}

void fr__avx2_att_pv(int nk, int hd, const float *v, int R, int rp, const float *st,
                     const float *corr, float *const *orow) {
    if (hd % 16 != 0) {
        fr__ref_att_pv(nk, hd, v, R, rp, st, corr, orow);
        return;
    }
    for (int r = 0; r < R; r += 4)
        for (int c0 = 0; c0 < hd; c0 += 16) {
            switch (R - r < 4 ? R - r : 4) {
                case 1: pv_block(1, nk, hd, v, rp, st + r, corr + r, orow + r, c0); break;
                case 2: pv_block(2, nk, hd, v, rp, st + r, corr + r, orow + r, c0); break;
                case 3: pv_block(3, nk, hd, v, rp, st + r, corr + r, orow + r, c0); break;
                default: pv_block(4, nk, hd, v, rp, st + r, corr + r, orow + r, c0); break;
            }
        }
}

/* ---- encoders: LayerNorm, GELU ---- */

void fr__avx2_layernorm(float *y, const float *x, const float *w, const float *b, int64_t n,
                        float eps) {
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm_loadu_ps(x + i)));
        a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4)));
    }
    __m256d a = _mm256_add_pd(a0, a1);
    __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    double sum = _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
    for (int64_t t = i; t < n; t++) sum += x[t];
    float mean = (float)(sum / (double)n);
    const __m256 mv = _mm256_set1_ps(mean);
    a0 = a1 = _mm256_setzero_pd();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), mv);
        __m256 dd = _mm256_mul_ps(d, d);
        a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(dd)));
        a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(dd, 1)));
    }
    a = _mm256_add_pd(a0, a1);
    s2 = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    double sum2 = _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
    for (int64_t t = i; t < n; t++) {
        float d = x[t] - mean;
        sum2 += (double)(d * d);
    }
    float scf = 1.0f / sqrtf((float)(sum2 / (double)n) + eps);
    const __m256 sc = _mm256_set1_ps(scf);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv), sc);
        v = _mm256_mul_ps(v, _mm256_loadu_ps(w + i));
        if (b) v = _mm256_add_ps(v, _mm256_loadu_ps(b + i));
        _mm256_storeu_ps(y + i, v);
    }
    for (; i < n; i++) {
        float v = (x[i] - mean) * scf * w[i];
        y[i] = b ? v + b[i] : v;
    }
}

void fr__avx2_gelu(float *x, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), a = _mm256_set1_ps(0.044715f);
    const __m256 m2c = _mm256_set1_ps(-2.0f * 0.79788456080286535587989211986876f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        /* −2u = −2·√(2/π)·v·(1 + a·v²);  GELU = v·sigmoid(2u) */
        __m256 inner = _mm256_fmadd_ps(_mm256_mul_ps(v, v), a, one);
        __m256 e = exp256(_mm256_mul_ps(_mm256_mul_ps(m2c, v), inner));
        _mm256_storeu_ps(x + i, _mm256_div_ps(v, _mm256_add_ps(one, e)));
    }
    if (i < n) fr__ref_gelu(x + i, n - i);
}
