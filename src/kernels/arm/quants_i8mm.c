/*
 * arm/quants_i8mm.c — batch (prefill) tiles with the int8 matrix multiply
 * extension: SMMLA (vmmlaq_s32) multiplies a 2×8 byte matrix by an 8×2 one
 * into a 2×2 int32 tile, eight times the work of one SDOT.  Compiled with
 * -march=armv8.2-a+dotprod+i8mm; kernels.c installs these only when the
 * kernel reports HWCAP2_I8MM (Neoverse V1/N2, Graviton 3, Apple M-class;
 * not the Cortex-A76 of the Pi 5).
 *
 * Each function is a vec_dot4x4 (kernels_int.h): four weight rows × four
 * activation rows, out[4t + r].  Rows are taken in pairs (r0, r1) and
 * tokens in pairs (t0, t1); for 16 bytes of each, the 8-byte halves are
 * interleaved (vzip of 64-bit lanes) so two SMMLAs give the tile
 * [r0·t0, r0·t1, r1·t0, r1·t1].  The integer sums per block (Q4_0, Q8_0)
 * or per sub-block, scaled by the integer sub-block scale (Q4_K, Q6_K),
 * are exact; the float scales are then applied lane by lane with the same
 * operations, in the same order, as the twin's scalar code, so every
 * output equals vec_dot (and the twin) bit for bit.
 */
#include "kernels/arm/neon_int.h"

/* acc + the 2×2 tile of 16-byte dots: rows a0, a1 by tokens b0, b1. */
INLINE int32x4_t tile16(int32x4_t acc, int8x16_t a0, int8x16_t a1, int8x16_t b0, int8x16_t b1) {
    const int64x2_t x0 = vreinterpretq_s64_s8(a0), x1 = vreinterpretq_s64_s8(a1);
    const int64x2_t y0 = vreinterpretq_s64_s8(b0), y1 = vreinterpretq_s64_s8(b1);
    acc = vmmlaq_s32(acc, vreinterpretq_s8_s64(vzip1q_s64(x0, x1)), vreinterpretq_s8_s64(vzip1q_s64(y0, y1)));
    return vmmlaq_s32(acc, vreinterpretq_s8_s64(vzip2q_s64(x0, x1)), vreinterpretq_s8_s64(vzip2q_s64(y0, y1)));
}

/* Lane vectors of a tile (rows 2rp, 2rp+1; tokens 2tp, 2tp+1) from four
 * per-row values and four per-token values. */
INLINE float32x4_t rows_lanes(const float *v, int rp) {
    const float l[4] = {v[2 * rp], v[2 * rp], v[2 * rp + 1], v[2 * rp + 1]};
    return vld1q_f32(l);
}

INLINE float32x4_t toks_lanes(const float *v, int tp) {
    const float l[4] = {v[2 * tp], v[2 * tp + 1], v[2 * tp], v[2 * tp + 1]};
    return vld1q_f32(l);
}

INLINE void store_tiles(const float32x4_t acc[4], float *out) {
    for (int rp = 0; rp < 2; rp++)
        for (int tp = 0; tp < 2; tp++) {
            float v[4];
            vst1q_f32(v, acc[2 * rp + tp]);
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) out[4 * (2 * tp + j) + 2 * rp + i] = v[2 * i + j];
        }
}

/* Q4_0 and Q8_0 against Q8_0: per block sumf += (float)sumi·(d_w·d_a). */
INLINE void dot4x4_32(int type, int64_t n, const void *w, size_t wstride, const void *a, size_t astride,
                      float *out) {
    float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    for (int64_t b = 0; b < n / 32; b++) {
        int8x16_t c[4][2], y[4][2];
        float dx[4], dy[4];
        for (int r = 0; r < 4; r++) codes32(type, (const char *)w + (size_t)r * wstride, b, &c[r][0], &c[r][1], &dx[r]);
        for (int t = 0; t < 4; t++) {
            const fr_block_q8_0 *yb = (const fr_block_q8_0 *)((const char *)a + (size_t)t * astride) + b;
            y[t][0] = vld1q_s8(yb->qs);
            y[t][1] = vld1q_s8(yb->qs + 16);
            dy[t] = f16(yb->d);
        }
        for (int rp = 0; rp < 2; rp++)
            for (int tp = 0; tp < 2; tp++) {
                int32x4_t s = vdupq_n_s32(0);
                for (int h = 0; h < 2; h++)
                    s = tile16(s, c[2 * rp][h], c[2 * rp + 1][h], y[2 * tp][h], y[2 * tp + 1][h]);
                const float32x4_t d = vmulq_f32(rows_lanes(dx, rp), toks_lanes(dy, tp));
                acc[2 * rp + tp] = vaddq_f32(acc[2 * rp + tp], vmulq_f32(vcvtq_f32_s32(s), d));
            }
    }
    store_tiles(acc, out);
}

void fr__i8mm_vec_dot4x4_q4_0_q8_0(int64_t n, const void *w, size_t wstride, const void *a, size_t astride,
                                   float *out) {
    dot4x4_32(FR_TYPE_Q4_0, n, w, wstride, a, astride, out);
}

void fr__i8mm_vec_dot4x4_q8_0_q8_0(int64_t n, const void *w, size_t wstride, const void *a, size_t astride,
                                   float *out) {
    dot4x4_32(FR_TYPE_Q8_0, n, w, wstride, a, astride, out);
}

/* Int32 lanes [v[2rp], v[2rp], v[2rp+1], v[2rp+1]]. */
INLINE int32x4_t rows_ilanes(const int *v, int rp) {
    const int32_t l[4] = {v[2 * rp], v[2 * rp], v[2 * rp + 1], v[2 * rp + 1]};
    return vld1q_s32(l);
}

/* Q4_K against Q8_K: per super-block and (row, token)
 * sumf += d·(float)isum − dmin·(float)summs, d = d_w·d_a, dmin = dmin_w·d_a. */
void fr__i8mm_vec_dot4x4_q4_K_q8_K(int64_t n, const void *w, size_t wstride, const void *a, size_t astride,
                                   float *out) {
    float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    const uint8x16_t m4 = vdupq_n_u8(0xF);
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const fr_block_q4_K *x[4];
        const fr_block_q8_K *y[4];
        int sc[8][4], mn[8][4];
        float dx[4], dmx[4], dy[4];
        for (int r = 0; r < 4; r++) {
            x[r] = (const fr_block_q4_K *)((const char *)w + (size_t)r * wstride) + b;
            for (int j = 0; j < 8; j++) {
                uint8_t s, m;
                fr__get_scale_min_k4(j, x[r]->scales, &s, &m);
                sc[j][r] = s;
                mn[j][r] = m;
            }
            dx[r] = f16(x[r]->d);
            dmx[r] = f16(x[r]->dmin);
        }
        for (int t = 0; t < 4; t++) {
            y[t] = (const fr_block_q8_K *)((const char *)a + (size_t)t * astride) + b;
            dy[t] = y[t]->d;
        }
        int32x4_t isum[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
        for (int c = 0; c < 4; c++) {
            int8x16_t lo[4][2], hi[4][2];
            for (int r = 0; r < 4; r++)
                for (int h = 0; h < 2; h++) {
                    const uint8x16_t q = vld1q_u8(x[r]->qs + 32 * c + 16 * h);
                    lo[r][h] = vreinterpretq_s8_u8(vandq_u8(q, m4));
                    hi[r][h] = vreinterpretq_s8_u8(vshrq_n_u8(q, 4));
                }
            for (int tp = 0; tp < 2; tp++) {
                int8x16_t a0[2][2], a1[2][2]; /* [token of pair][h] for the low and high sub-block */
                for (int j = 0; j < 2; j++)
                    for (int h = 0; h < 2; h++) {
                        a0[j][h] = vld1q_s8(y[2 * tp + j]->qs + 64 * c + 16 * h);
                        a1[j][h] = vld1q_s8(y[2 * tp + j]->qs + 64 * c + 32 + 16 * h);
                    }
                for (int rp = 0; rp < 2; rp++) {
                    int32x4_t s0 = vdupq_n_s32(0), s1 = vdupq_n_s32(0);
                    for (int h = 0; h < 2; h++) {
                        s0 = tile16(s0, lo[2 * rp][h], lo[2 * rp + 1][h], a0[0][h], a0[1][h]);
                        s1 = tile16(s1, hi[2 * rp][h], hi[2 * rp + 1][h], a1[0][h], a1[1][h]);
                    }
                    int32x4_t *t = &isum[2 * rp + tp];
                    *t = vmlaq_s32(*t, s0, rows_ilanes(sc[2 * c], rp));
                    *t = vmlaq_s32(*t, s1, rows_ilanes(sc[2 * c + 1], rp));
                }
            }
        }
        for (int rp = 0; rp < 2; rp++)
            for (int tp = 0; tp < 2; tp++) {
                int summs[4];
                for (int i = 0; i < 2; i++)
                    for (int j = 0; j < 2; j++) {
                        const int r = 2 * rp + i;
                        const int16_t *bs = y[2 * tp + j]->bsums;
                        int s = 0;
                        for (int c = 0; c < 4; c++)
                            s += mn[2 * c][r] * (bs[4 * c] + bs[4 * c + 1]) +
                                 mn[2 * c + 1][r] * (bs[4 * c + 2] + bs[4 * c + 3]);
                        summs[2 * i + j] = s;
                    }
                const float32x4_t dyl = toks_lanes(dy, tp);
                const float32x4_t d = vmulq_f32(rows_lanes(dx, rp), dyl);
                const float32x4_t dmin = vmulq_f32(rows_lanes(dmx, rp), dyl);
                const float32x4_t v = vsubq_f32(vmulq_f32(d, vcvtq_f32_s32(isum[2 * rp + tp])),
                                                vmulq_f32(dmin, vcvtq_f32_s32(vld1q_s32(summs))));
                acc[2 * rp + tp] = vaddq_f32(acc[2 * rp + tp], v);
            }
    }
    store_tiles(acc, out);
}

/* Q6_K against Q8_K: per super-block sumf += (d_w·d_a)·(float)isum. */
void fr__i8mm_vec_dot4x4_q6_K_q8_K(int64_t n, const void *w, size_t wstride, const void *a, size_t astride,
                                   float *out) {
    float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const fr_block_q6_K *x[4];
        const fr_block_q8_K *y[4];
        float dx[4], dy[4];
        for (int r = 0; r < 4; r++) {
            x[r] = (const fr_block_q6_K *)((const char *)w + (size_t)r * wstride) + b;
            dx[r] = f16(x[r]->d);
        }
        for (int t = 0; t < 4; t++) {
            y[t] = (const fr_block_q8_K *)((const char *)a + (size_t)t * astride) + b;
            dy[t] = y[t]->d;
        }
        int32x4_t isum[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
        for (int h = 0; h < 2; h++) {
            int8x16_t q[4][8];
            for (int r = 0; r < 4; r++) q6_K_quarters(x[r]->ql + 64 * h, x[r]->qh + 32 * h, q[r]);
            for (int k = 0; k < 8; k++) {
                int sc[4];
                for (int r = 0; r < 4; r++) sc[r] = x[r]->scales[8 * h + k];
                for (int tp = 0; tp < 2; tp++) {
                    const int8x16_t a0 = vld1q_s8(y[2 * tp]->qs + 128 * h + 16 * k);
                    const int8x16_t a1 = vld1q_s8(y[2 * tp + 1]->qs + 128 * h + 16 * k);
                    for (int rp = 0; rp < 2; rp++) {
                        const int32x4_t s = tile16(vdupq_n_s32(0), q[2 * rp][k], q[2 * rp + 1][k], a0, a1);
                        isum[2 * rp + tp] = vmlaq_s32(isum[2 * rp + tp], s, rows_ilanes(sc, rp));
                    }
                }
            }
        }
        for (int rp = 0; rp < 2; rp++)
            for (int tp = 0; tp < 2; tp++) {
                const float32x4_t d = vmulq_f32(rows_lanes(dx, rp), toks_lanes(dy, tp));
                acc[2 * rp + tp] = vaddq_f32(acc[2 * rp + tp], vmulq_f32(d, vcvtq_f32_s32(isum[2 * rp + tp])));
            }
    }
    store_tiles(acc, out);
}
