/*
 * quantize.c — the weight quantizers behind `frugal quantize`.
 *
 * Each quantizer reproduces llama.cpp's reference weight quantizer for its
 * type (quantize_row_*_ref without an importance matrix, as llama-quantize
 * runs them when no imatrix is given), including its rounding: the legacy
 * types truncate `x·id + 8.5` through an int8 cast, Q8_0 uses roundf, the
 * K-quants use nearest_int (round half to even through the 1.5·2^23 trick).
 * Scales are stored as f16 rounded to nearest even, as F16C does.
 *
 * Block layouts (bytes; GGUF.md §2):
 *
 *   Q4_0  32 elems  18 B   d:f16 @0, qs[16] @2         (low nibbles = 0..15)
 *   Q4_1  32 elems  20 B   d:f16 @0, m:f16 @2, qs[16] @4
 *   Q5_0  32 elems  22 B   d:f16 @0, qh[4] @2, qs[16] @6
 *   Q5_1  32 elems  24 B   d:f16 @0, m:f16 @2, qh[4] @4, qs[16] @8
 *   Q8_0  32 elems  34 B   d:f16 @0, qs[32] int8 @2
 *   Q4_K 256 elems 144 B   d:f16 @0, dmin:f16 @2, scales[12] @4, qs[128] @16
 *   Q5_K 256 elems 176 B   d:f16 @0, dmin:f16 @2, scales[12] @4, qh[32] @16, qs[128] @48
 *   Q6_K 256 elems 210 B   ql[128] @0, qh[64] @128, scales[16] int8 @192, d:f16 @208
 *
 * The K-quant scale searches (make_qkx2_quants for Q4_K/Q5_K,
 * make_qx_quants for Q6_K) are written above the functions that use them.
 * All arithmetic is float, in the order llama.cpp writes it, so that the
 * results match byte for byte where the compiler does not contract
 * multiply-adds differently.
 */
#include "kernels/quantize.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "base/err.h"
#include "kernels/types.h"

#define GROUP_MAX_EPS 1e-15f

static void put_f16(uint8_t *p, float f) {
    uint16_t h = fr_f32_to_f16(f);
    memcpy(p, &h, 2);
}

static float get_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return fr_f16_to_f32(h);
}

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* Round to nearest, ties to even, for |f| <= 2^22 (llama.cpp nearest_int). */
static int nearest_int(float f) {
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* ---- float types ---- */

static void quantize_f16(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = fr_f32_to_f16(x[i]);
        memcpy(y + 2 * i, &h, 2);
    }
}

static void quantize_bf16(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = fr_f32_to_bf16(x[i]);
        memcpy(y + 2 * i, &h, 2);
    }
}

/* ---- legacy 32-element blocks ---- */

/* The value of largest magnitude, with its sign (first one on ties). */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void quantize_q4_0(const float *x, uint8_t *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 32, y += 18) {
        const float d = signed_absmax(x, 32) / -8;
        const float id = d ? 1.0f / d : 0.0f;
        put_f16(y, d);
        for (int j = 0; j < 16; j++) {
            const float x0 = x[j] * id, x1 = x[16 + j] * id;
            const int q0 = imin(15, (int8_t)(x0 + 8.5f));
            const int q1 = imin(15, (int8_t)(x1 + 8.5f));
            y[2 + j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static void minmax(const float *x, int n, float *mn, float *mx) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

static void quantize_q4_1(const float *x, uint8_t *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 32, y += 20) {
        float min, max;
        minmax(x, 32, &min, &max);
        const float d = (max - min) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        put_f16(y, d);
        put_f16(y + 2, min);
        for (int j = 0; j < 16; j++) {
            const float x0 = (x[j] - min) * id, x1 = (x[16 + j] - min) * id;
            const int q0 = imin(15, (int8_t)(x0 + 0.5f));
            const int q1 = imin(15, (int8_t)(x1 + 0.5f));
            y[4 + j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static void quantize_q5_0(const float *x, uint8_t *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 32, y += 22) {
        const float d = signed_absmax(x, 32) / -16;
        const float id = d ? 1.0f / d : 0.0f;
        uint32_t qh = 0;
        put_f16(y, d);
        for (int j = 0; j < 16; j++) {
            const float x0 = x[j] * id, x1 = x[16 + j] * id;
            const uint32_t q0 = (uint32_t)imin(31, (int8_t)(x0 + 16.5f));
            const uint32_t q1 = (uint32_t)imin(31, (int8_t)(x1 + 16.5f));
            y[6 + j] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
            qh |= ((q0 & 0x10u) >> 4) << j;
            qh |= ((q1 & 0x10u) >> 4) << (j + 16);
        }
        memcpy(y + 2, &qh, 4);
    }
}

static void quantize_q5_1(const float *x, uint8_t *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 32, y += 24) {
        float min, max;
        minmax(x, 32, &min, &max);
        const float d = (max - min) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        uint32_t qh = 0;
        put_f16(y, d);
        put_f16(y + 2, min);
        for (int j = 0; j < 16; j++) {
            const float x0 = (x[j] - min) * id, x1 = (x[16 + j] - min) * id;
            /* llama.cpp casts to uint8 without a clamp; (max-min)·id + 0.5
             * cannot reach 32, so the clamp only guards rounding. */
            const uint32_t q0 = (uint32_t)imin(31, (uint8_t)(x0 + 0.5f));
            const uint32_t q1 = (uint32_t)imin(31, (uint8_t)(x1 + 0.5f));
            y[8 + j] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
            qh |= ((q0 & 0x10u) >> 4) << j;
            qh |= ((q1 & 0x10u) >> 4) << (j + 16);
        }
        memcpy(y + 4, &qh, 4);
    }
}

static void quantize_q8_0(const float *x, uint8_t *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 32, y += 34) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        put_f16(y, d);
        for (int j = 0; j < 32; j++) y[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}

/* ---- K-quants ---- */

/*
 * make_qkx2_quants: fit x[i] ≈ scale·L[i] − min_out with L in 0..nmax,
 * minimising Σ w[i]·(error)².  Start from the plain min/max grid, then try
 * nstep+1 grids with iscale = (nmax + rmin + rdelta·is)/(max − min); for
 * each, solve the weighted least squares for (scale, min) with L fixed
 * (min forced ≤ 0, i.e. the offset is never positive), and keep the best.
 * Returns the scale; *the_min receives −min (≥ 0).
 */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights,
                              uint8_t *L, float *the_min, uint8_t *Laux,
                              float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * (x[i] - min));
            l = imax(0, imin(nmax, l));
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Sub-block j's 6-bit scale and min from the 12 packed bytes (GGUF.md §2). */
static void get_scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/*
 * Q4_K and Q5_K share everything but the bit width and the search grid:
 * per sub-block of 32, weights w = rms(x) + |x|, make_qkx2_quants; the
 * eight scales and mins are then quantized to 6 bits against the largest
 * of each (d = max_scale/63, dmin = max_min/63), and the elements are
 * re-quantized with the scales as stored.  L receives 0..nmax.
 */
static void k_scales_and_levels(const float *x, int nmax, float rmin, int nstep,
                                uint8_t *hdr /* d, dmin, scales[12] */, uint8_t *L) {
    float mins[8], scales[8], weights[32];
    uint8_t Laux[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j],
                                     Laux, rmin, 0.1f, nstep);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t *sc = hdr + 4;
    memset(sc, 0, 12);
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)imin(63, (uint8_t)nearest_int(inv_scale * scales[j]));
        uint8_t lm = (uint8_t)imin(63, (uint8_t)nearest_int(inv_min * mins[j]));
        if (j < 4) {
            sc[j] = ls;
            sc[j + 4] = lm;
        } else {
            sc[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
            sc[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    put_f16(hdr, max_scale / 63.f);
    put_f16(hdr + 2, max_min / 63.f);
    const float dd = get_f16(hdr), dm_all = get_f16(hdr + 2);
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        get_scale_min_k4(j, sc, &s, &m);
        const float d = dd * s;
        if (!d) continue;
        const float dm = dm_all * m;
        for (int ii = 0; ii < 32; ii++) {
            int l = nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)imax(0, imin(nmax, l));
        }
    }
}

static void quantize_q4_k(const float *x, uint8_t *y, int64_t n) {
    uint8_t L[FR_QK_K];
    for (int64_t b = 0; b < n / FR_QK_K; b++, x += FR_QK_K, y += 144) {
        k_scales_and_levels(x, 15, -1.f, 20, y, L);
        uint8_t *q = y + 16;
        for (int j = 0; j < FR_QK_K; j += 64, q += 32)
            for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
}

static void quantize_q5_k(const float *x, uint8_t *y, int64_t n) {
    uint8_t L[FR_QK_K];
    for (int64_t b = 0; b < n / FR_QK_K; b++, x += FR_QK_K, y += 176) {
        k_scales_and_levels(x, 31, -0.5f, 15, y, L);
        uint8_t *qh = y + 16, *ql = y + 48;
        memset(qh, 0, 32);
        uint8_t m1 = 1, m2 = 2;
        for (int j = 0; j < FR_QK_K; j += 64, ql += 32) {
            for (int l = 0; l < 32; l++) {
                int l1 = L[j + l], l2 = L[j + l + 32];
                if (l1 > 15) { l1 -= 16; qh[l] |= m1; }
                if (l2 > 15) { l2 -= 16; qh[l] |= m2; }
                ql[l] = (uint8_t)(l1 | (l2 << 4));
            }
            m1 = (uint8_t)(m1 << 2);
            m2 = (uint8_t)(m2 << 2);
        }
    }
}

/*
 * make_qx_quants (rmse_type 1, weights x²): symmetric quantization to
 * −nmax..nmax−1 around the signed absolute maximum, then 18 nearby grids
 * iscale = −(nmax + 0.1·is)/max, keeping the one with the best weighted
 * least-squares fit.  L receives nmax + l (0..2·nmax−1); all-zero input
 * gives L = 0 and scale 0.
 */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * x[i]);
        l = imax(-nmax, imin(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * x[i]);
            l = imax(-nmax, imin(nmax - 1, l));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

static void quantize_q6_k(const float *x, uint8_t *y, int64_t n) {
    int8_t L[FR_QK_K];
    float scales[16];
    for (int64_t b = 0; b < n / FR_QK_K; b++, x += FR_QK_K, y += 210) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < 16; ib++) {
            const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            scales[ib] = scale;
            if (fabsf(scale) > max_abs_scale) {
                max_abs_scale = fabsf(scale);
                max_scale = scale;
            }
        }
        memset(y, 0, 210);
        if (max_abs_scale < GROUP_MAX_EPS) continue; /* all zero; d = +0 */
        const float iscale = -128.f / max_scale;
        int8_t *sc = (int8_t *)(y + 192);
        put_f16(y + 208, 1 / iscale);
        for (int ib = 0; ib < 16; ib++) sc[ib] = (int8_t)imin(127, nearest_int(iscale * scales[ib]));
        const float dd = get_f16(y + 208);
        for (int j = 0; j < 16; j++) {
            const float d = dd * sc[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ii++) {
                int l = nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = (int8_t)(imax(-32, imin(31, l)) + 32);
            }
        }
        uint8_t *ql = y, *qh = y + 128;
        for (int j = 0; j < FR_QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l++) {
                const uint8_t q1 = (uint8_t)(L[j + l + 0] & 0xF);
                const uint8_t q2 = (uint8_t)(L[j + l + 32] & 0xF);
                const uint8_t q3 = (uint8_t)(L[j + l + 64] & 0xF);
                const uint8_t q4 = (uint8_t)(L[j + l + 96] & 0xF);
                ql[l] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                  ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
            }
        }
    }
}

/* ---- dispatch ---- */

bool fr_quantize_supported(int type) {
    switch (type) {
    case FR_TYPE_F32: case FR_TYPE_F16: case FR_TYPE_BF16:
    case FR_TYPE_Q4_0: case FR_TYPE_Q4_1: case FR_TYPE_Q5_0: case FR_TYPE_Q5_1:
    case FR_TYPE_Q8_0: case FR_TYPE_Q4_K: case FR_TYPE_Q5_K: case FR_TYPE_Q6_K:
        return true;
    default:
        return false;
    }
}

int fr_quantize_row(int type, const float *src, void *dst, int64_t n) {
    if (!fr_quantize_supported(type))
        return fr_errf(FR_EUNSUPP, "quantize: cannot write type %s (%d)", fr_type_name(type), type);
    const fr_type_info *ti = fr_type_get(type);
    if (n <= 0 || n % ti->blck)
        return fr_errf(FR_EINVAL, "quantize: %s row of %lld elements is not a positive "
                       "multiple of %d", ti->name, (long long)n, ti->blck);
    uint8_t *y = dst;
    switch (type) {
    case FR_TYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    case FR_TYPE_F16: quantize_f16(src, y, n); break;
    case FR_TYPE_BF16: quantize_bf16(src, y, n); break;
    case FR_TYPE_Q4_0: quantize_q4_0(src, y, n); break;
    case FR_TYPE_Q4_1: quantize_q4_1(src, y, n); break;
    case FR_TYPE_Q5_0: quantize_q5_0(src, y, n); break;
    case FR_TYPE_Q5_1: quantize_q5_1(src, y, n); break;
    case FR_TYPE_Q8_0: quantize_q8_0(src, y, n); break;
    case FR_TYPE_Q4_K: quantize_q4_k(src, y, n); break;
    case FR_TYPE_Q5_K: quantize_q5_k(src, y, n); break;
    case FR_TYPE_Q6_K: quantize_q6_k(src, y, n); break;
    }
    return 0;
}
