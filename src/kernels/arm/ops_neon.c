/*
 * arm/ops_neon.c — the forward-pass ops (ops.h) on plain ARMv8-A NEON
 * (4-lane float vectors; compiled with -march=armv8-a, so every level
 * neon < dotprod < i8mm uses them: arm/table.c puts them in the neon
 * level).  The same algorithms as x86/ops_avx2.c on 4 lanes; where a row
 * or a tail does not fill a vector, the twin in ops.c does that part (the
 * twins index by pointer, so a sub-range is the same call on offset
 * pointers).
 *
 * exp: Cephes' polynomial after a two-step reduction by ln 2 (as the x86
 * versions), 2^n built in the exponent bits as two factors so n = 128
 * works; below −87.34 the result is 0 where expf gives a denormal (softmax
 * weights and SiLU: no visible difference), above 88.72 it is +inf.
 * RMSNorm and LayerNorm sum in double (two float64x2 per 4 floats), as the
 * twins.
 */
#include <arm_neon.h>
#include <math.h>
#include <stdint.h>

#include "kernels/ops_int.h"

#define INLINE static inline __attribute__((always_inline))

INLINE float32x4_t exp4(float32x4_t x) {
    const float32x4_t lo = vdupq_n_f32(-87.33654f), hi = vdupq_n_f32(88.72283f);
    const uint32x4_t under = vcltq_f32(x, lo), over = vcgtq_f32(x, hi);
    x = vminq_f32(vmaxq_f32(x, lo), hi);
    const float32x4_t n = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
    p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
    float32x4_t y = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
    /* n in [−126, 128]: 2^n as 2^(n/2)·2^(n−n/2), each a normal float */
    const int32x4_t ni = vcvtq_s32_f32(n), n1 = vshrq_n_s32(ni, 1), n2 = vsubq_s32(ni, n1);
    const int32x4_t bias = vdupq_n_s32(127);
    y = vmulq_f32(y, vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23)));
    y = vmulq_f32(y, vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, bias), 23)));
    y = vbslq_f32(under, vdupq_n_f32(0), y);
    return vbslq_f32(over, vdupq_n_f32(INFINITY), y);
}

void fr__neon_exp4(const float *x, float *y) {
    vst1q_f32(y, exp4(vld1q_f32(x)));
}

void fr__neon_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps) {
    float64x2_t a0 = vdupq_n_f64(0), a1 = vdupq_n_f64(0);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t v = vld1q_f32(x + i);
        const float64x2_t lo = vcvt_f64_f32(vget_low_f32(v)), hi = vcvt_high_f64_f32(v);
        a0 = vfmaq_f64(a0, lo, lo);
        a1 = vfmaq_f64(a1, hi, hi);
    }
    double sum = vaddvq_f64(vaddq_f64(a0, a1));
    for (int64_t t = i; t < n; t++) sum += (double)x[t] * x[t];
    const float sc = 1.0f / sqrtf((float)(sum / (double)n) + eps);
    const float32x4_t scale = vdupq_n_f32(sc);
    for (i = 0; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vmulq_f32(vmulq_f32(vld1q_f32(x + i), scale), vld1q_f32(w + i)));
    for (; i < n; i++) y[i] = x[i] * sc * w[i];
}

void fr__neon_add(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vaddq_f32(vld1q_f32(y + i), vld1q_f32(x + i)));
    for (; i < n; i++) y[i] += x[i];
}

void fr__neon_scale(float *y, float s, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vmulq_n_f32(vld1q_f32(y + i), s));
    for (; i < n; i++) y[i] *= s;
}

void fr__neon_silu_mul(float *g, const float *u, int64_t n) {
    const float32x4_t one = vdupq_n_f32(1.0f);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t x = vld1q_f32(g + i);
        const float32x4_t s = vdivq_f32(x, vaddq_f32(one, exp4(vnegq_f32(x))));
        vst1q_f32(g + i, vmulq_f32(s, vld1q_f32(u + i)));
    }
    if (i < n) fr__ref_silu_mul(g + i, u + i, n - i);
}

void fr__neon_rope(float *x, int n_heads, int hd, int n_rot, const float *cs, const float *sn, bool neox) {
    const int half = n_rot / 2;
    if (neox ? half % 4 != 0 : n_rot % 4 != 0) {
        fr__ref_rope(x, n_heads, hd, n_rot, cs, sn, neox);
        return;
    }
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * (size_t)hd;
        if (neox) {
            for (int i = 0; i < half; i += 4) {
                const float32x4_t a = vld1q_f32(v + i), b = vld1q_f32(v + i + half);
                const float32x4_t ra = vfmaq_f32(vmulq_f32(a, vld1q_f32(cs + i)), b, vld1q_f32(sn + i));
                const float32x4_t rb = vfmaq_f32(vmulq_f32(b, vld1q_f32(cs + i + half)), a, vld1q_f32(sn + i + half));
                vst1q_f32(v + i, ra);
                vst1q_f32(v + i + half, rb);
            }
        } else {
            for (int i = 0; i < n_rot; i += 4) {
                const float32x4_t a = vld1q_f32(v + i);
                const float32x4_t sw = vrev64q_f32(a); /* swap each adjacent pair */
                vst1q_f32(v + i, vfmaq_f32(vmulq_f32(a, vld1q_f32(cs + i)), sw, vld1q_f32(sn + i)));
            }
        }
    }
}

void fr__neon_f16_rows(const uint16_t *src, size_t stride, int rows, int n, float *dst) {
    for (int i = 0; i < rows; i++) {
        const uint16_t *s = src + (size_t)i * stride;
        float *d = dst + (size_t)i * (size_t)n;
        int c = 0;
        for (; c + 4 <= n; c += 4) vst1q_f32(d + c, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(s + c))));
        if (c < n) fr__ref_f16_rows(s + c, stride, 1, n - c, d + c);
    }
}

/* ---- attention tiles ---- */

/* NJ keys × 16 transposed query rows (four vectors). */
INLINE void qk_block(const int NJ, int hd, const float *k, const float *qt, int rp, float scale, float *st) {
    float32x4_t acc[4][4];
#pragma GCC unroll 4
    for (int j = 0; j < NJ; j++)
        for (int c = 0; c < 4; c++) acc[j][c] = vdupq_n_f32(0);
    for (int d = 0; d < hd; d++) {
        const float *q = qt + (size_t)d * (size_t)rp;
        const float32x4_t q0 = vld1q_f32(q), q1 = vld1q_f32(q + 4), q2 = vld1q_f32(q + 8), q3 = vld1q_f32(q + 12);
#pragma GCC unroll 4
        for (int j = 0; j < NJ; j++) {
            const float kb = k[(size_t)j * (size_t)hd + (size_t)d];
            acc[j][0] = vfmaq_n_f32(acc[j][0], q0, kb);
            acc[j][1] = vfmaq_n_f32(acc[j][1], q1, kb);
            acc[j][2] = vfmaq_n_f32(acc[j][2], q2, kb);
            acc[j][3] = vfmaq_n_f32(acc[j][3], q3, kb);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NJ; j++)
        for (int c = 0; c < 4; c++) vst1q_f32(st + (size_t)j * (size_t)rp + 4 * c, vmulq_n_f32(acc[j][c], scale));
}

void fr__neon_att_qk(int nk, int hd, const float *k, int R, int rp, const float *qs, float scale, float *st) {
    if (R < FR_ATT_RMIN) {
        for (int j = 0; j < nk; j++)
            for (int r = 0; r < R; r++) {
                const float *kj = k + (size_t)j * (size_t)hd, *qr = qs + (size_t)r * (size_t)hd;
                float32x4_t acc = vdupq_n_f32(0);
                int d = 0;
                for (; d + 4 <= hd; d += 4) acc = vfmaq_f32(acc, vld1q_f32(kj + d), vld1q_f32(qr + d));
                float s = vaddvq_f32(acc);
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

void fr__neon_att_softmax(int nk, int R, int rp, float *st, const int32_t *nv, float *m, float *l, float *corr) {
    const float32x4_t one = vdupq_n_f32(1.0f);
    int r0 = 0;
    for (; r0 + 4 <= R; r0 += 4) {
        const float32x4_t m_old = vld1q_f32(m + r0);
        const int32x4_t nvv = vld1q_s32(nv + r0);
        float32x4_t mx = m_old;
        for (int j = 0; j < nk; j++) {
            const uint32x4_t vis = vcgtq_s32(nvv, vdupq_n_s32(j));
            const float32x4_t s = vld1q_f32(st + (size_t)j * (size_t)rp + r0);
            mx = vbslq_f32(vis, vmaxq_f32(mx, s), mx);
        }
        const uint32x4_t same = vceqq_f32(m_old, mx);
        const float32x4_t c = vbslq_f32(same, one, exp4(vsubq_f32(m_old, mx)));
        float32x4_t sum = vdupq_n_f32(0);
        for (int j = 0; j < nk; j++) {
            const uint32x4_t vis = vcgtq_s32(nvv, vdupq_n_s32(j));
            float *sp = st + (size_t)j * (size_t)rp + r0;
            const float32x4_t p = vreinterpretq_f32_u32(
                vandq_u32(vreinterpretq_u32_f32(exp4(vsubq_f32(vld1q_f32(sp), mx))), vis));
            vst1q_f32(sp, p);
            sum = vaddq_f32(sum, p);
        }
        vst1q_f32(l + r0, vfmaq_f32(sum, vld1q_f32(l + r0), c));
        vst1q_f32(m + r0, mx);
        vst1q_f32(corr + r0, c);
    }
    if (r0 < R) fr__ref_att_softmax(nk, R - r0, rp, st + r0, nv + r0, m + r0, l + r0, corr + r0);
}

/* NR output rows × 16 columns from c0. */
INLINE void pv_block(const int NR, int nk, int hd, const float *v, int rp, const float *st, const float *corr,
                     float *const *orow, int c0) {
    float32x4_t acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
        for (int c = 0; c < 4; c++) acc[r][c] = vmulq_n_f32(vld1q_f32(orow[r] + c0 + 4 * c), corr[r]);
    for (int j = 0; j < nk; j++) {
        const float *vj = v + (size_t)j * (size_t)hd + (size_t)c0;
        const float32x4_t v0 = vld1q_f32(vj), v1 = vld1q_f32(vj + 4), v2 = vld1q_f32(vj + 8), v3 = vld1q_f32(vj + 12);
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const float p = st[(size_t)j * (size_t)rp + (size_t)r];
            acc[r][0] = vfmaq_n_f32(acc[r][0], v0, p);
            acc[r][1] = vfmaq_n_f32(acc[r][1], v1, p);
            acc[r][2] = vfmaq_n_f32(acc[r][2], v2, p);
            acc[r][3] = vfmaq_n_f32(acc[r][3], v3, p);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
        for (int c = 0; c < 4; c++) vst1q_f32(orow[r] + c0 + 4 * c, acc[r][c]);
}

void fr__neon_att_pv(int nk, int hd, const float *v, int R, int rp, const float *st, const float *corr,
                     float *const *orow) {
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

void fr__neon_layernorm(float *y, const float *x, const float *w, const float *b, int64_t n, float eps) {
    float64x2_t a0 = vdupq_n_f64(0), a1 = vdupq_n_f64(0);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t v = vld1q_f32(x + i);
        a0 = vaddq_f64(a0, vcvt_f64_f32(vget_low_f32(v)));
        a1 = vaddq_f64(a1, vcvt_high_f64_f32(v));
    }
    double sum = vaddvq_f64(vaddq_f64(a0, a1));
    for (int64_t t = i; t < n; t++) sum += x[t];
    const float mean = (float)(sum / (double)n);
    const float32x4_t mv = vdupq_n_f32(mean);
    a0 = a1 = vdupq_n_f64(0);
    for (i = 0; i + 4 <= n; i += 4) {
        const float32x4_t d = vsubq_f32(vld1q_f32(x + i), mv);
        const float32x4_t dd = vmulq_f32(d, d);
        a0 = vaddq_f64(a0, vcvt_f64_f32(vget_low_f32(dd)));
        a1 = vaddq_f64(a1, vcvt_high_f64_f32(dd));
    }
    double sum2 = vaddvq_f64(vaddq_f64(a0, a1));
    for (int64_t t = i; t < n; t++) {
        const float d = x[t] - mean;
        sum2 += (double)(d * d);
    }
    const float scf = 1.0f / sqrtf((float)(sum2 / (double)n) + eps);
    for (i = 0; i + 4 <= n; i += 4) {
        float32x4_t v = vmulq_n_f32(vsubq_f32(vld1q_f32(x + i), mv), scf);
        v = vmulq_f32(v, vld1q_f32(w + i));
        if (b) v = vaddq_f32(v, vld1q_f32(b + i));
        vst1q_f32(y + i, v);
    }
    for (; i < n; i++) {
        const float v = (x[i] - mean) * scf * w[i];
        y[i] = b ? v + b[i] : v;
    }
}

void fr__neon_gelu(float *x, int64_t n) {
    const float32x4_t one = vdupq_n_f32(1.0f), a = vdupq_n_f32(0.044715f);
    const float m2c = -2.0f * 0.79788456080286535587989211986876f;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t v = vld1q_f32(x + i);
        /* −2u = −2·√(2/π)·v·(1 + a·v²);  GELU = v·sigmoid(2u) */
        const float32x4_t inner = vfmaq_f32(one, vmulq_f32(v, v), a);
        const float32x4_t e = exp4(vmulq_f32(vmulq_n_f32(v, m2c), inner));
        vst1q_f32(x + i, vdivq_f32(v, vaddq_f32(one, e)));
    }
    if (i < n) fr__ref_gelu(x + i, n - i);
}
