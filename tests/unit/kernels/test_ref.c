/*
 * test_ref.c — the reference twins (ref.c) against hand-computed values.
 *
 * 1. Dequantize: one hand-built block per type with distinctive scales,
 *    mins and high bits; the expected values were worked out by hand from
 *    the GGUF.md §2 formulas (shown next to each).  Then random blocks of
 *    every type against an independent element-by-element transcription of
 *    the same formulas (value(e) in double).
 * 2. Quantizers: hand-checked codes (roundf ties, nearest_int ties, the
 *    signed max of Q4_0/Q8_K, clamping, bsums, Q8_1's s), then round-trip
 *    error bounds.
 * 3. vec_dot of every type = dot(dequant(w), dequant(quant(a))) in double.
 * 4. fp16/bf16 conversions on edge values.
 *
 * Tolerances:
 *   TOL_DQ_REL  1e-6   relative: dequantize vs the double formula (float
 *                      rounding of d·sc·q − dmin·m, one or two ulps);
 *   TOL_DOT     1e-5 · Σ|w_k·a_k|: float block scales and summation order;
 *   TOL_S       2e-3 · Σ_b |m_b|·Σ|a_k|: Q8_1's s = d·Σq is stored as f16
 *                      and uses the unrounded d.
 */
#include "harness.h"
#include "ktest.h"

#include "base/mem.h"
#include "kernels/kernels.h"

#define TOL_DQ_REL 1e-6
#define TOL_DOT 1e-5
#define TOL_S 2e-3

static void dequant(int type, const void *src, float *dst, int64_t n) {
    fr_kernels_ref(type)->dequantize(src, dst, n);
}

/* ---- 1a. hand-built blocks ---- */

static void test_float_rows(void) {
    const uint16_t h[4] = {0x3C00, 0xC000, 0x3555, 0x0001};  /* 1, −2, 0.333251953125, 2^-24 */
    const uint16_t bf[3] = {0x3F80, 0xC040, 0x3EAB};         /* 1, −3, 0.333984375 */
    const float f[2] = {1.5f, -7.25f};
    float y[4];
    dequant(FR_TYPE_F16, h, y, 4);
    CHECK_NEAR(y[0], 1.0, 0); CHECK_NEAR(y[1], -2.0, 0);
    CHECK_NEAR(y[2], 0.333251953125, 0); CHECK_NEAR(y[3], ldexp(1, -24), 0);
    dequant(FR_TYPE_BF16, bf, y, 3);
    CHECK_NEAR(y[0], 1.0, 0); CHECK_NEAR(y[1], -3.0, 0); CHECK_NEAR(y[2], 0.333984375, 0);
    dequant(FR_TYPE_F32, f, y, 2);
    CHECK_NEAR(y[0], 1.5, 0); CHECK_NEAR(y[1], -7.25, 0);
    /* and the float dots: 1·1 + (−2)·(−2) + ... in double */
    CHECK_NEAR(fr__ref_vec_dot_f16(2, h, h), 5.0, 0);
    CHECK_NEAR(fr__ref_vec_dot_bf16(2, bf, bf), 10.0, 0);
    CHECK_NEAR(fr__ref_vec_dot_f32(2, f, f), 1.5 * 1.5 + 7.25 * 7.25, 0);
}

static void test_q4_0(void) {
    fr_block_q4_0 b;
    b.d = 0x3800; /* 0.5 */
    for (int j = 0; j < 16; j++) b.qs[j] = (uint8_t)(j | (15 - j) << 4);
    float y[32];
    dequant(FR_TYPE_Q4_0, &b, y, 32);
    CHECK_NEAR(y[0], -4.0, 0);   /* (0 − 8)·0.5 */
    CHECK_NEAR(y[1], -3.5, 0);   /* (1 − 8)·0.5 */
    CHECK_NEAR(y[15], 3.5, 0);   /* (15 − 8)·0.5 */
    CHECK_NEAR(y[16], 3.5, 0);   /* high nibble of qs[0] = 15 */
    CHECK_NEAR(y[31], -4.0, 0);  /* high nibble of qs[15] = 0 */
}

static void test_q4_1(void) {
    fr_block_q4_1 b;
    b.d = 0x3400;  /* 0.25 */
    b.m = 0xBC00;  /* −1 */
    for (int j = 0; j < 16; j++) b.qs[j] = (uint8_t)(j | (15 - j) << 4);
    float y[32];
    dequant(FR_TYPE_Q4_1, &b, y, 32);
    CHECK_NEAR(y[0], -1.0, 0);   /* 0·0.25 − 1 */
    CHECK_NEAR(y[3], -0.25, 0);  /* 3·0.25 − 1 */
    CHECK_NEAR(y[16], 2.75, 0);  /* 15·0.25 − 1 */
    CHECK_NEAR(y[31], -1.0, 0);
}

static void test_q5_0_q5_1(void) {
    const uint8_t qh[4] = {0x01, 0x00, 0x02, 0x80}; /* h = 0x80020001: bits 0, 17, 31 */
    fr_block_q5_0 b;
    b.d = 0x3C00; /* 1 */
    memcpy(b.qh, qh, 4);
    memset(b.qs, 0x21, 16); /* low nibble 1, high nibble 2 */
    float y[32];
    dequant(FR_TYPE_Q5_0, &b, y, 32);
    CHECK_NEAR(y[0], 1.0, 0);    /* (1|16) − 16 */
    CHECK_NEAR(y[1], -15.0, 0);  /* 1 − 16 */
    CHECK_NEAR(y[15], -15.0, 0);
    CHECK_NEAR(y[16], -14.0, 0); /* 2 − 16, bit 16 clear */
    CHECK_NEAR(y[17], 2.0, 0);   /* (2|16) − 16, bit 17 */
    CHECK_NEAR(y[31], 2.0, 0);   /* bit 31 */

    fr_block_q5_1 c;
    c.d = 0x3800; /* 0.5 */
    c.m = 0x4000; /* 2 */
    memcpy(c.qh, qh, 4);
    memset(c.qs, 0x21, 16);
    dequant(FR_TYPE_Q5_1, &c, y, 32);
    CHECK_NEAR(y[0], 10.5, 0);   /* 17·0.5 + 2 */
    CHECK_NEAR(y[1], 2.5, 0);    /* 1·0.5 + 2 */
    CHECK_NEAR(y[16], 3.0, 0);   /* 2·0.5 + 2 */
    CHECK_NEAR(y[17], 11.0, 0);  /* 18·0.5 + 2 */
}

static void test_q8_0_q8_K(void) {
    fr_block_q8_0 b;
    b.d = 0x3000; /* 0.125 */
    for (int j = 0; j < 32; j++) b.qs[j] = (int8_t)(j - 16);
    float y[256];
    dequant(FR_TYPE_Q8_0, &b, y, 32);
    CHECK_NEAR(y[0], -2.0, 0);
    CHECK_NEAR(y[31], 1.875, 0);

    fr_block_q8_K k;
    k.d = 0.25f;
    for (int j = 0; j < 256; j++) k.qs[j] = (int8_t)(j - 128);
    dequant(FR_TYPE_Q8_K, &k, y, 256);
    CHECK_NEAR(y[0], -32.0, 0);
    CHECK_NEAR(y[255], 31.75, 0);
}

static void test_q2_K(void) {
    fr_block_q2_K b;
    /* sub-block is: scale nibble 15 − is, min nibble is/2 */
    for (int is = 0; is < 16; is++) b.scales[is] = (uint8_t)((15 - is) | (is / 2) << 4);
    memset(b.qs, 0xE4, 64); /* 2-bit fields 0,1,2,3 from the low end */
    b.qs[5] = 0x1B;         /* fields 3,2,1,0 */
    b.qs[40] = 0x1B;
    b.d = 0x3C00;    /* 1 */
    b.dmin = 0x3800; /* 0.5 */
    float y[256];
    dequant(FR_TYPE_Q2_K, &b, y, 256);
    CHECK_NEAR(y[0], 0.0, 0);     /* q 0, is 0: 15·0 − 0.5·0 */
    CHECK_NEAR(y[5], 45.0, 0);    /* qs[5] shift 0 → 3, is 0: 15·3 */
    CHECK_NEAR(y[37], 25.5, 0);   /* j 1, l 5: qs[5]>>2 → 2, is 2: 13·2 − 0.5·1 */
    CHECK_NEAR(y[120], 22.5, 0);  /* j 3, s 1, l 8: qs[24]>>6 → 3, is 7: 8·3 − 0.5·3 */
    CHECK_NEAR(y[136], 19.0, 0);  /* h 1, l 8: qs[40] → 3, is 8: 7·3 − 0.5·4 */
    CHECK_NEAR(y[255], -3.5, 0);  /* is 15: 0·3 − 0.5·7 */
}

static void test_q3_K(void) {
    fr_block_q3_K b;
    /* scales: low4 of j = j (b[j] low nibble j, high nibble j+8), high2 of
     * j = j%4 (every 2-bit field of b[8+k] is k): scale_j = (j | (j%4)<<4) − 32 */
    for (int j = 0; j < 8; j++) b.scales[j] = (uint8_t)(j | (j + 8) << 4);
    b.scales[8] = 0x00; b.scales[9] = 0x55; b.scales[10] = 0xAA; b.scales[11] = 0xFF;
    for (int k = 0; k < 32; k++) b.hmask[k] = k < 16 ? 0x0F : 0xF0;
    memset(b.qs, 0xE4, 64);
    b.qs[3] = 0x1B;
    b.d = 0x3800; /* 0.5 */
    float y[256];
    dequant(FR_TYPE_Q3_K, &b, y, 256);
    CHECK_NEAR(y[3], -48.0, 0);   /* low2 3, hmask bit set → 3; scale −32 */
    CHECK_NEAR(y[20], 30.0, 0);   /* s 1: low2 0, bit 0 of 0xF0 clear → −4; scale 1|16−32 = −15 */
    CHECK_NEAR(y[35], 2.0, 0);    /* j 1: qs[3]>>2 → 2, bit 1 set; scale 2|32−32 = 2 */
    CHECK_NEAR(y[130], 48.0, 0);  /* h 1: low2 0, bit 4 of 0x0F clear → −4; scale 8−32 = −24 */
    CHECK_NEAR(y[255], 46.5, 0);  /* low2 3, bit 7 of 0xF0 set; scale 15|48−32 = 31 */
}

/* Q4_K / Q5_K scales: sc = {1,2,3,4,33,50,17,63}, m = {5,6,7,8,20,40,60,1},
 * packed by hand into the 12 bytes. */
static const uint8_t k4_scales[12] = {129, 194, 67, 196, 69, 134, 199, 8, 65, 130, 193, 31};

static void test_q4_K(void) {
    fr_block_q4_K b;
    b.d = 0x3800;    /* 0.5 */
    b.dmin = 0x3400; /* 0.25 */
    memcpy(b.scales, k4_scales, 12);
    memset(b.qs, 0x5A, 128);
    b.qs[0] = 0x3C;
    b.qs[97] = 0x0F;
    float y[256];
    dequant(FR_TYPE_Q4_K, &b, y, 256);
    CHECK_NEAR(y[0], 4.75, 0);     /* 0.5·1·12 − 0.25·5 */
    CHECK_NEAR(y[1], 3.75, 0);     /* 0.5·1·10 − 1.25 */
    CHECK_NEAR(y[32], 1.5, 0);     /* 0.5·2·3 − 0.25·6 */
    CHECK_NEAR(y[101], 8.0, 0);    /* 0.5·4·5 − 0.25·8 */
    CHECK_NEAR(y[130], 160.0, 0);  /* 0.5·33·10 − 0.25·20 */
    CHECK_NEAR(y[160], 115.0, 0);  /* 0.5·50·5 − 0.25·40 */
    CHECK_NEAR(y[193], 112.5, 0);  /* 0.5·17·15 − 0.25·60 */
    CHECK_NEAR(y[225], -0.25, 0);  /* 0.5·63·0 − 0.25·1 */
    CHECK_NEAR(y[255], 157.25, 0); /* 0.5·63·5 − 0.25 */
}

static void test_q5_K(void) {
    fr_block_q5_K b;
    b.d = 0x3800;
    b.dmin = 0x3400;
    memcpy(b.scales, k4_scales, 12);
    memset(b.qs, 0x5A, 128);
    b.qs[0] = 0x3C;
    b.qs[97] = 0x0F;
    memset(b.qh, 0, 32);
    b.qh[0] = 0x01; /* bit 0: element 0 */
    b.qh[1] = 0x80; /* bit 7: element 192+32+1 */
    b.qh[5] = 0x08; /* bit 3: element 64+32+5 */
    float y[256];
    dequant(FR_TYPE_Q5_K, &b, y, 256);
    CHECK_NEAR(y[0], 12.75, 0);    /* 0.5·1·28 − 1.25 */
    CHECK_NEAR(y[1], 3.75, 0);
    CHECK_NEAR(y[32], 1.5, 0);
    CHECK_NEAR(y[101], 40.0, 0);   /* 0.5·4·21 − 2 */
    CHECK_NEAR(y[193], 112.5, 0);
    CHECK_NEAR(y[225], 503.75, 0); /* 0.5·63·16 − 0.25 */
}

static void test_q6_K(void) {
    fr_block_q6_K b;
    for (int i = 0; i < 16; i++) b.scales[i] = (int8_t)((i % 2 ? -1 : 1) * (i + 1));
    memset(b.ql, 0x21, 128);
    b.ql[3] = 0xF0;
    b.ql[35] = 0x0F;
    b.ql[104] = 0x7E;
    memset(b.qh, 0, 64);
    b.qh[3] = 0xE4;
    b.qh[41] = 0x1B;
    b.d = 0x3800; /* 0.5 */
    float y[256];
    dequant(FR_TYPE_Q6_K, &b, y, 256);
    CHECK_NEAR(y[3], -16.0, 0);    /* (0|0)−32, SC[0]=1 */
    CHECK_NEAR(y[20], 31.0, 0);    /* 1−32, SC[1]=−2 */
    CHECK_NEAR(y[35], -1.5, 0);    /* (15|16)−32, SC[2]=3 */
    CHECK_NEAR(y[67], 37.5, 0);    /* (15|32)−32, SC[4]=5 */
    CHECK_NEAR(y[99], 56.0, 0);    /* (0|48)−32, SC[6]=7 */
    CHECK_NEAR(y[137], 76.5, 0);   /* (1|48)−32, SC[8]=9 */
    CHECK_NEAR(y[168], -99.0, 0);  /* 14−32, SC[10]=11 */
    CHECK_NEAR(y[169], 5.5, 0);    /* (1|32)−32, SC[10]=11 */
    CHECK_NEAR(y[201], -91.0, 0);  /* (2|16)−32, SC[12]=13 */
    CHECK_NEAR(y[232], -187.5, 0); /* 7−32, SC[14]=15 */
    CHECK_NEAR(y[233], -225.0, 0); /* 2−32, SC[14]=15 */
    CHECK_NEAR(y[255], 240.0, 0);  /* 2−32, SC[15]=−16 */
}

/* ---- 1b. random blocks against the GGUF.md formulas, element by element ---- */

static int k4_scale(const uint8_t *q, int j, int want_min) {
    int sc, m;
    if (j < 4) { sc = q[j] & 63; m = q[j + 4] & 63; }
    else {
        sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
    return want_min ? m : sc;
}

/* value of element e (of the whole row) per GGUF.md §2 */
static double formula(int type, const void *row, int64_t e) {
    const int64_t bi = type == FR_TYPE_F32 || type == FR_TYPE_F16 || type == FR_TYPE_BF16 ? e
                       : e / fr_type_get(type)->blck;
    const int i = (int)(e % fr_type_get(type)->blck);
    switch (type) {
    case FR_TYPE_F32: return ((const float *)row)[e];
    case FR_TYPE_F16: return fr_f16_to_f32(((const uint16_t *)row)[e]);
    case FR_TYPE_BF16: return fr_bf16_to_f32(((const uint16_t *)row)[e]);
    case FR_TYPE_Q4_0: {
        const fr_block_q4_0 *b = (const fr_block_q4_0 *)row + bi;
        int q = i < 16 ? b->qs[i] & 0xF : b->qs[i - 16] >> 4;
        return (q - 8) * (double)fr_f16_to_f32(b->d);
    }
    case FR_TYPE_Q4_1: {
        const fr_block_q4_1 *b = (const fr_block_q4_1 *)row + bi;
        int q = i < 16 ? b->qs[i] & 0xF : b->qs[i - 16] >> 4;
        return q * (double)fr_f16_to_f32(b->d) + fr_f16_to_f32(b->m);
    }
    case FR_TYPE_Q5_0: case FR_TYPE_Q5_1: {
        const uint8_t *qh, *qs;
        double d, m = 0;
        if (type == FR_TYPE_Q5_0) {
            const fr_block_q5_0 *b = (const fr_block_q5_0 *)row + bi;
            qh = b->qh; qs = b->qs; d = fr_f16_to_f32(b->d);
        } else {
            const fr_block_q5_1 *b = (const fr_block_q5_1 *)row + bi;
            qh = b->qh; qs = b->qs; d = fr_f16_to_f32(b->d); m = fr_f16_to_f32(b->m);
        }
        uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
        int q = (i < 16 ? qs[i] & 0xF : qs[i - 16] >> 4) | (int)((h >> i) & 1) << 4;
        return type == FR_TYPE_Q5_0 ? (q - 16) * d : q * d + m;
    }
    case FR_TYPE_Q8_0: {
        const fr_block_q8_0 *b = (const fr_block_q8_0 *)row + bi;
        return b->qs[i] * (double)fr_f16_to_f32(b->d);
    }
    case FR_TYPE_Q2_K: case FR_TYPE_Q3_K: {
        const int h = i / 128, r = i % 128, j = r / 32, s = (r % 32) / 16, l = r % 16;
        const int is = 8 * h + 2 * j + s;
        if (type == FR_TYPE_Q2_K) {
            const fr_block_q2_K *b = (const fr_block_q2_K *)row + bi;
            int q = (b->qs[32 * h + 16 * s + l] >> (2 * j)) & 3, sc = b->scales[is];
            return fr_f16_to_f32(b->d) * (double)(sc & 0xF) * q - fr_f16_to_f32(b->dmin) * (double)(sc >> 4);
        }
        const fr_block_q3_K *b = (const fr_block_q3_K *)row + bi;
        const uint8_t *sb = b->scales;
        int low4 = is < 8 ? (sb[is] & 0xF) : (sb[is - 8] >> 4);
        int high2 = (sb[8 + is % 4] >> (2 * (is / 4))) & 3;
        int scale = (low4 | high2 << 4) - 32;
        int low2 = (b->qs[32 * h + 16 * s + l] >> (2 * j)) & 3;
        int hb = (b->hmask[16 * s + l] >> (4 * h + j)) & 1;
        return fr_f16_to_f32(b->d) * (double)scale * (low2 - (hb ? 0 : 4));
    }
    case FR_TYPE_Q4_K: case FR_TYPE_Q5_K: {
        const int c = i / 64, hi = (i % 64) >= 32, l = i % 32, j = 2 * c + hi;
        const uint8_t *sc12, *qs;
        double d, dmin;
        int q5 = 0;
        if (type == FR_TYPE_Q4_K) {
            const fr_block_q4_K *b = (const fr_block_q4_K *)row + bi;
            sc12 = b->scales; qs = b->qs; d = fr_f16_to_f32(b->d); dmin = fr_f16_to_f32(b->dmin);
        } else {
            const fr_block_q5_K *b = (const fr_block_q5_K *)row + bi;
            sc12 = b->scales; qs = b->qs; d = fr_f16_to_f32(b->d); dmin = fr_f16_to_f32(b->dmin);
            q5 = ((b->qh[l] >> (2 * c + hi)) & 1) << 4;
        }
        int q = (hi ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 0xF) + q5;
        return d * k4_scale(sc12, j, 0) * q - dmin * k4_scale(sc12, j, 1);
    }
    case FR_TYPE_Q6_K: {
        const fr_block_q6_K *b = (const fr_block_q6_K *)row + bi;
        const int h = i / 128, r = i % 128, quarter = r / 32, l = r % 32, is = l / 16;
        const uint8_t *QL = b->ql + 64 * h, *QH = b->qh + 32 * h;
        const int8_t *SC = b->scales + 8 * h;
        int low = quarter == 0 ? QL[l] & 0xF : quarter == 1 ? QL[l + 32] & 0xF
                : quarter == 2 ? QL[l] >> 4 : QL[l + 32] >> 4;
        int q = (low | ((QH[l] >> (2 * quarter)) & 3) << 4) - 32;
        return fr_f16_to_f32(b->d) * (double)SC[is + 2 * quarter] * q;
    }
    }
    return NAN;
}

static void test_random_vs_formula(void) {
    enum { K = 512 };
    unsigned char row[K * 4];
    float tmp[K], y[K];
    for (int ti = 0; ti < KTEST_NTYPES; ti++) {
        const int type = ktest_types[ti];
        int bad = 0;
        for (int rep = 0; rep < 4; rep++) {
            ktest_weight_row(type, row, K, tmp);
            dequant(type, row, y, K);
            for (int e = 0; e < K; e++) {
                double want = formula(type, row, e);
                if (!(fabs(y[e] - want) <= TOL_DQ_REL * fabs(want) + 1e-30) && bad++ < 3)
                    fprintf(stderr, "  %s element %d: %.9g, want %.9g\n", fr_type_name(type), e, y[e], want);
            }
        }
        CHECK_MSG(bad == 0, "%s: %d elements differ from the GGUF.md formula", fr_type_name(type), bad);
    }
}

/* ---- 2. quantizers ---- */

static void test_quantize_hand(void) {
    float x[256] = {0};

    /* Q8_0: amax 127 → d = 1, q = roundf(x): ties away from zero */
    x[0] = 127.0f; x[1] = -63.5f; x[2] = 0.5f; x[3] = -0.5f; x[4] = 2.5f; x[5] = -1.49f;
    fr_block_q8_0 q8;
    fr__ref_quantize_q8_0(x, &q8, 32);
    CHECK_INT(q8.d, 0x3C00);
    CHECK_INT(q8.qs[0], 127); CHECK_INT(q8.qs[1], -64); CHECK_INT(q8.qs[2], 1);
    CHECK_INT(q8.qs[3], -1); CHECK_INT(q8.qs[4], 3); CHECK_INT(q8.qs[5], -1); CHECK_INT(q8.qs[6], 0);

    /* Q8_1: same codes, s = d·Σq = 127 − 64 + 1 − 1 + 3 − 1 = 65 */
    fr_block_q8_1 q81;
    fr__ref_quantize_q8_1(x, &q81, 32);
    CHECK_INT(q81.d, 0x3C00);
    CHECK_INT(q81.qs[1], -64);
    CHECK_NEAR(fr_f16_to_f32(q81.s), 65.0, 0);

    /* all-zero block: d = 0, codes 0 */
    float z[32] = {0};
    fr__ref_quantize_q8_0(z, &q8, 32);
    CHECK_INT(q8.d, 0);
    CHECK_INT(q8.qs[7], 0);

    /* Q4_0: signed max −8 → d = 1; q = min(15, (int8)(x + 8.5)) */
    memset(x, 0, sizeof x);
    x[0] = -8.0f; x[1] = 7.0f; x[2] = 8.0f; x[3] = 0.49f; x[4] = 0.5f; x[5] = -0.5f;
    x[16] = 3.0f; x[17] = -3.2f;
    fr_block_q4_0 q4;
    fr__ref_quantize_q4_0(x, &q4, 32);
    CHECK_INT(q4.d, 0x3C00);
    CHECK_INT(q4.qs[0], 0 | 11 << 4);  /* −8 → 0; 3 → 11 */
    CHECK_INT(q4.qs[1], 15 | 5 << 4);  /* 7 → 15; −3.2 → (int)5.3 = 5 */
    CHECK_INT(q4.qs[2], 15 | 8 << 4);  /* 8 → 16 clamps to 15 */
    CHECK_INT(q4.qs[3] & 0xF, 8);      /* 8.99 → 8 */
    CHECK_INT(q4.qs[4] & 0xF, 9);      /* 9.0 */
    CHECK_INT(q4.qs[5] & 0xF, 8);      /* 8.0 */
    /* positive signed max: d negative */
    memset(x, 0, sizeof x);
    x[0] = 4.0f; x[1] = -3.0f;
    fr__ref_quantize_q4_0(x, &q4, 32);
    CHECK_NEAR(fr_f16_to_f32(q4.d), -0.5, 0);
    CHECK_INT(q4.qs[0], 0 | 8 << 4);   /* 4·(−2) + 8.5 → 0; 0 → 8 */
    CHECK_INT(q4.qs[1], 14 | 8 << 4);  /* −3·(−2) + 8.5 → 14 */

    /* Q8_K: signed max −2 → iscale 63.5; nearest_int ties to even */
    memset(x, 0, sizeof x);
    x[0] = -2.0f; x[1] = 1.0f; x[2] = 0.5f; x[3] = -1.0f; x[20] = 0.25f; x[255] = 2.0f;
    fr_block_q8_K qk;
    fr__ref_quantize_q8_K(x, &qk, 256);
    CHECK_NEAR(qk.d, 1.0 / 63.5, 1e-9);
    CHECK_INT(qk.qs[0], -127);
    CHECK_INT(qk.qs[1], 64);   /* 63.5 → 64 (even) */
    CHECK_INT(qk.qs[2], 32);   /* 31.75 */
    CHECK_INT(qk.qs[3], -64);  /* −63.5 → −64 (even) */
    CHECK_INT(qk.qs[20], 16);  /* 15.875 */
    CHECK_INT(qk.qs[255], 127);
    CHECK_INT(qk.bsums[0], -127 + 64 + 32 - 64);
    CHECK_INT(qk.bsums[1], 16);
    CHECK_INT(qk.bsums[15], 127);
    x[5] = 3.0f; /* now the max is positive: d = −3/127 */
    fr__ref_quantize_q8_K(x, &qk, 256);
    CHECK_INT(qk.qs[5], -127);
    CHECK_NEAR(qk.d, -3.0 / 127.0, 1e-9);
}

/* Quantize random rows, dequantize, bound the error per element. */
static void test_round_trip(void) {
    enum { K = 1024 };
    float x[K], y[K];
    unsigned char q[K * 2];
    struct { int type; int blk; } cases[] = {
        {FR_TYPE_Q8_0, 32}, {FR_TYPE_Q4_0, 32}, {FR_TYPE_Q4_1, 32}, {FR_TYPE_Q5_0, 32},
        {FR_TYPE_Q5_1, 32}, {FR_TYPE_Q8_1, 32}, {FR_TYPE_Q8_K, 256},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int type = cases[c].type, blk = cases[c].blk;
        int bad = 0;
        double worst = 0;
        for (int rep = 0; rep < 8; rep++) {
            ktest_fill(x, K, rep % 2 ? 0.01f : 3.0f);
            fr_kernels_ref(type)->quantize(x, q, K);
            dequant(type, q, y, K);
            for (int b = 0; b < K / blk; b++) {
                float amax = 0, mn = INFINITY, mx = -INFINITY;
                for (int j = 0; j < blk; j++) {
                    float v = x[b * blk + j];
                    amax = fmaxf(amax, fabsf(v)); mn = fminf(mn, v); mx = fmaxf(mx, v);
                }
                /* step/2 rounding, plus the f16 rounding of the scale
                 * (2^-11 relative on the largest code) and of the min */
                double bound;
                switch (type) {
                case FR_TYPE_Q4_0: bound = amax / 8.0 * (1 + 1.0 / 128); break; /* the far end clamps: one step */
                case FR_TYPE_Q5_0: bound = amax / 16.0 * (1 + 1.0 / 128); break;
                case FR_TYPE_Q4_1: bound = (mx - mn) / 15.0 * (0.5 + 15.0 / 2048) + fabs(mn) / 2048; break;
                case FR_TYPE_Q5_1: bound = (mx - mn) / 31.0 * (0.5 + 31.0 / 2048) + fabs(mn) / 2048; break;
                case FR_TYPE_Q8_K: bound = amax / 127.0 * 0.5 * (1 + 1e-5); break;
                default: bound = amax / 127.0 * (0.5 + 127.0 / 2048); break;
                }
                for (int j = 0; j < blk; j++) {
                    double err = fabs(y[b * blk + j] - x[b * blk + j]);
                    if (amax > 0) worst = fmax(worst, err / amax);
                    if (!(err <= bound * (1 + 1e-6)) && bad++ < 3)
                        fprintf(stderr, "  %s: x %.9g → %.9g (bound %g)\n", fr_type_name(type),
                                x[b * blk + j], y[b * blk + j], bound);
                }
            }
        }
        CHECK_MSG(bad == 0, "%s round trip: %d elements out of bounds", fr_type_name(type), bad);
        CHECK_MSG(worst > 0, "%s round trip: no error at all", fr_type_name(type));
    }
}

/* ---- 3. vec_dot = dot(dequant(w), dequant(quant(a))) ---- */

static void test_vec_dot(void) {
    /* hand check: Q8_0·Q8_0, w codes 1 (d 0.5), a codes j (d 2): Σj = 496 */
    fr_block_q8_0 w, a;
    w.d = 0x3800; a.d = 0x4000;
    for (int j = 0; j < 32; j++) { w.qs[j] = 1; a.qs[j] = (int8_t)j; }
    CHECK_NEAR(fr__ref_vec_dot_q8_0_q8_0(32, &w, &a), 496.0, 0);

    const int64_t Ks[] = {256, 768, 2304};
    for (int ti = 0; ti < KTEST_NTYPES; ti++) {
        const int type = ktest_types[ti];
        const fr_type_ops *ops = fr_kernels_ref(type);
        const fr_type_ops *aops = fr_kernels_ref(ops->vec_dot_type);
        int bad = 0;
        for (int ki = 0; ki < 3; ki++) {
            const int64_t K = Ks[ki];
            size_t wb, ab;
            fr_type_row_size(type, K, &wb);
            fr_type_row_size(ops->vec_dot_type, K, &ab);
            unsigned char *wq = fr_malloc(wb), *aq = fr_malloc(ab);
            float *x = fr_malloc(4 * (size_t)K), *wf = fr_malloc(4 * (size_t)K), *af = fr_malloc(4 * (size_t)K);
            for (int rep = 0; rep < 5; rep++) {
                ktest_weight_row(type, wq, K, x);
                ktest_fill(x, K, rep == 4 ? 100.0f : 1.0f);
                aops->quantize(x, aq, K);
                ops->dequantize(wq, wf, K);
                aops->dequantize(aq, af, K);
                double want = 0, mag = 0, magm = 0;
                for (int64_t k = 0; k < K; k++) {
                    want += (double)wf[k] * af[k];
                    mag += fabs((double)wf[k] * af[k]);
                }
                if (type == FR_TYPE_Q4_1 || type == FR_TYPE_Q5_1)
                    for (int64_t b = 0; b < K / 32; b++) {
                        uint16_t m = type == FR_TYPE_Q4_1 ? ((fr_block_q4_1 *)wq)[b].m : ((fr_block_q5_1 *)wq)[b].m;
                        double s = 0;
                        for (int j = 0; j < 32; j++) s += fabs(af[b * 32 + j]);
                        magm += fabs(fr_f16_to_f32(m)) * s;
                    }
                float got = ops->vec_dot(K, wq, aq);
                if (!(fabs(got - want) <= TOL_DOT * mag + TOL_S * magm) && bad++ < 3)
                    fprintf(stderr, "  %s K=%lld: %.9g, want %.9g (mag %g)\n", fr_type_name(type),
                            (long long)K, got, want, mag);
            }
            fr_free(af); fr_free(wf); fr_free(x); fr_free(aq); fr_free(wq);
        }
        CHECK_MSG(bad == 0, "%s vec_dot: %d mismatches", fr_type_name(type), bad);
    }
}

/* ---- 4. half-precision conversions ---- */

static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static void test_halves(void) {
    /* f16 → f32 */
    CHECK(fr_f16_to_f32(0x0000) == 0.0f && !signbit(fr_f16_to_f32(0x0000)));
    CHECK(fr_f16_to_f32(0x8000) == 0.0f && signbit(fr_f16_to_f32(0x8000)));
    CHECK_NEAR(fr_f16_to_f32(0x0001), ldexp(1, -24), 0);            /* smallest subnormal */
    CHECK_NEAR(fr_f16_to_f32(0x03FF), 1023 * ldexp(1, -24), 0);     /* largest subnormal */
    CHECK_NEAR(fr_f16_to_f32(0x8200), -512 * ldexp(1, -24), 0);
    CHECK_NEAR(fr_f16_to_f32(0x0400), ldexp(1, -14), 0);            /* smallest normal */
    CHECK_NEAR(fr_f16_to_f32(0x7BFF), 65504.0, 0);                  /* max */
    CHECK_NEAR(fr_f16_to_f32(0x3C00), 1.0, 0);
    CHECK_NEAR(fr_f16_to_f32(0xC000), -2.0, 0);
    CHECK_NEAR(fr_f16_to_f32(0x3555), 0.333251953125, 0);
    CHECK(isinf(fr_f16_to_f32(0x7C00)) && fr_f16_to_f32(0x7C00) > 0);
    CHECK(isinf(fr_f16_to_f32(0xFC00)) && fr_f16_to_f32(0xFC00) < 0);
    CHECK(isnan(fr_f16_to_f32(0x7E00)));
    CHECK(isnan(fr_f16_to_f32(0x7C01)));

    /* f32 → f16, round to nearest even */
    CHECK_INT(fr_f32_to_f16(0.0f), 0x0000);
    CHECK_INT(fr_f32_to_f16(-0.0f), 0x8000);
    CHECK_INT(fr_f32_to_f16(1.0f), 0x3C00);
    CHECK_INT(fr_f32_to_f16(65504.0f), 0x7BFF);
    CHECK_INT(fr_f32_to_f16(65519.99f), 0x7BFF);
    CHECK_INT(fr_f32_to_f16(65520.0f), 0x7C00);          /* tie rounds to even = inf */
    CHECK_INT(fr_f32_to_f16(1e9f), 0x7C00);
    CHECK_INT(fr_f32_to_f16(-INFINITY), 0xFC00);
    CHECK(((fr_f32_to_f16(NAN) & 0x7C00) == 0x7C00) && (fr_f32_to_f16(NAN) & 0x3FF));
    CHECK_INT(fr_f32_to_f16((float)ldexp(1, -24)), 0x0001);
    CHECK_INT(fr_f32_to_f16((float)ldexp(1, -25)), 0x0000);   /* tie → even (0) */
    CHECK_INT(fr_f32_to_f16((float)ldexp(3, -26)), 0x0001);   /* 0.75 ulp → 1 */
    CHECK_INT(fr_f32_to_f16((float)ldexp(3, -25)), 0x0002);   /* 1.5 ulp → 2 (even) */
    CHECK_INT(fr_f32_to_f16((float)ldexp(5, -25)), 0x0002);   /* 2.5 ulp → 2 (even) */
    CHECK_INT(fr_f32_to_f16((float)ldexp(1, -14)), 0x0400);
    CHECK_INT(fr_f32_to_f16((float)(ldexp(1, -14) - ldexp(1, -25))), 0x0400); /* tie 0x3FF/0x400 → even */
    CHECK_INT(fr_f32_to_f16((float)ldexp(1, -26)), 0x0000);
    CHECK_INT(fr_f32_to_f16(1.0f + (float)ldexp(1, -11)), 0x3C00);      /* tie → even */
    CHECK_INT(fr_f32_to_f16(1.0f + (float)ldexp(3, -11)), 0x3C02);      /* tie → even */
    CHECK_INT(fr_f32_to_f16(1.0f + (float)ldexp(1, -11) + (float)ldexp(1, -20)), 0x3C01);
    CHECK_INT(fr_f32_to_f16(-2.0f), 0xC000);

    /* every finite half survives f16 → f32 → f16 */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF)) continue; /* NaN */
        bad += fr_f32_to_f16(fr_f16_to_f32((uint16_t)h)) != h;
    }
    CHECK_INT(bad, 0);

    /* bf16 */
    CHECK_NEAR(fr_bf16_to_f32(0x3F80), 1.0, 0);
    CHECK_NEAR(fr_bf16_to_f32(0xC040), -3.0, 0);
    CHECK_NEAR(fr_bf16_to_f32(0x7F7F), (double)bits_f32(0x7F7F0000), 0);
    CHECK_NEAR(fr_bf16_to_f32(0x0001), (double)bits_f32(0x00010000), 0); /* subnormal */
    CHECK(isinf(fr_bf16_to_f32(0x7F80)));
    CHECK(isnan(fr_bf16_to_f32(0x7FC0)));
    CHECK(signbit(fr_bf16_to_f32(0x8000)));
    CHECK_INT(fr_f32_to_bf16(1.0f), 0x3F80);
    CHECK_INT(fr_f32_to_bf16(-0.0f), 0x8000);
    CHECK_INT(fr_f32_to_bf16(1.0f + (float)ldexp(1, -8)), 0x3F80);   /* tie → even */
    CHECK_INT(fr_f32_to_bf16(1.0f + (float)ldexp(3, -8)), 0x3F82);   /* tie → even */
    CHECK_INT(fr_f32_to_bf16(1.0f + (float)ldexp(1, -8) + (float)ldexp(1, -20)), 0x3F81);
    CHECK_INT(fr_f32_to_bf16(INFINITY), 0x7F80);
    CHECK_INT(fr_f32_to_bf16(bits_f32(0x7F7FFFFF)), 0x7F80);         /* max float rounds to inf */
    CHECK_INT(fr_f32_to_bf16(bits_f32(0x00010000)), 0x0001);          /* subnormal kept */
    uint16_t bn = fr_f32_to_bf16(NAN);
    CHECK((bn & 0x7F80) == 0x7F80 && (bn & 0x7F));
    CHECK_INT(fr_f32_to_bf16(bits_f32(0x12345678)), 0x1234);   /* below half: down */
    CHECK_INT(fr_f32_to_bf16(bits_f32(0x1234C000)), 0x1235);   /* above half: up */
    CHECK_INT(f32_bits(fr_bf16_to_f32(0x1235)), 0x12350000);
}

int main(void) {
    size_t mem0 = fr_mem_in_use();
    ktest_seed(7);
    test_float_rows();
    test_q4_0();
    test_q4_1();
    test_q5_0_q5_1();
    test_q8_0_q8_K();
    test_q2_K();
    test_q3_K();
    test_q4_K();
    test_q5_K();
    test_q6_K();
    test_random_vs_formula();
    test_quantize_hand();
    test_round_trip();
    test_vec_dot();
    test_halves();
    CHECK_INT(fr_mem_in_use(), mem0);
    return harness_done();
}
