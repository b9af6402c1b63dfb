/*
 * test_quantize.c — the weight quantizers of kernels/quantize.c.
 *
 * 1. Hand-checked blocks whose bytes follow from the format by hand.
 * 2. Random rows of several distributions (normal, positive-only,
 *    negative-only, all zero, one huge outlier, tiny values): every type is
 *    dequantized with the reference kernels and its relative RMS error must
 *    stay under a bound derived from the type's step (uniform rounding
 *    error is step/√12; the step is amax/8 for q4_0, amax/16 for q5_0,
 *    amax/127 for q8_0, and a fitted range over 15/31/63 levels for the
 *    others), plus structural checks on the stored scales.
 * 3. llama.cpp's own output: the F32 tensors of tiny-llama-f32.gguf are
 *    quantized and compared block by block with the tensors of the same
 *    type in llama-quantize's files: q8_0, q4_0, q4_k and q6_k must all be
 *    byte-identical (they are; the fraction is printed), and the
 *    dequantized tensors must agree with cosine ≥ 0.999.
 *
 * The file comparisons read GGUF through engine/gguf.h: a test may reach
 * across layers to get at its reference data.
 */
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/gguf.h"
#include "harness.h"
#include "kernels/kernels.h"
#include "kernels/quantize.h"
#include "ktest.h"

static const int qtypes[] = {
    FR_TYPE_F32, FR_TYPE_F16, FR_TYPE_BF16, FR_TYPE_Q4_0, FR_TYPE_Q4_1, FR_TYPE_Q5_0,
    FR_TYPE_Q5_1, FR_TYPE_Q8_0, FR_TYPE_Q4_K, FR_TYPE_Q5_K, FR_TYPE_Q6_K,
};
#define NQTYPES ((int)(sizeof qtypes / sizeof qtypes[0]))

/* Relative RMS error bounds, from step/√12 over a block's spread:
 * q4_0 uses 8 steps per amax (≈ 0.09σ for normal data), q4_1 15 steps over
 * max−min, q5 twice finer, q8_0 127 steps per amax, q6_k 32 steps per
 * sub-block amax (16 elements), q4_k/q5_k fitted ranges of 15/31 levels
 * with 6-bit scales; f16 has 11 significant bits, bf16 8. */
static double rel_bound(int type) {
    switch (type) {
    case FR_TYPE_F32: return 0.0;
    case FR_TYPE_F16: return 5e-4;
    case FR_TYPE_BF16: return 4e-3;
    case FR_TYPE_Q4_0: return 0.12;
    case FR_TYPE_Q4_1: return 0.09;
    case FR_TYPE_Q5_0: return 0.06;
    case FR_TYPE_Q5_1: return 0.045;
    case FR_TYPE_Q8_0: return 0.0075;
    case FR_TYPE_Q4_K: return 0.09;
    case FR_TYPE_Q5_K: return 0.045;
    case FR_TYPE_Q6_K: return 0.025;
    }
    return 0.0;
}

enum { DIST_NORMAL, DIST_POSITIVE, DIST_NEGATIVE, DIST_ZERO, DIST_OUTLIER, DIST_TINY, DIST_COUNT };
static const char *dist_name[] = {"normal", "positive", "negative", "zero", "outlier", "tiny"};

static void fill(int dist, float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        switch (dist) {
        case DIST_NORMAL: x[i] = ktest_normal(1.0f); break;
        case DIST_POSITIVE: x[i] = ktest_uniform(0.0f, 2.0f); break;
        case DIST_NEGATIVE: x[i] = ktest_uniform(-3.0f, -0.5f); break;
        case DIST_ZERO: x[i] = 0.0f; break;
        case DIST_OUTLIER: x[i] = ktest_normal(0.02f); break;
        case DIST_TINY: x[i] = ktest_normal(1e-3f); break;
        }
    }
    if (dist == DIST_OUTLIER) x[n / 3] = 1000.0f;
}

static double cosine(const float *a, const float *b, int64_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    if (aa == 0 && bb == 0) return 1.0;
    return ab / sqrt(aa * bb);
}

static uint16_t rd16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* ---- 1. hand-checked blocks ---- */

static void test_hand_blocks(void) {
    float x[32];
    uint8_t y[64];

    /* Q8_0: amax 127 gives d = 1 (f16 0x3C00) and q = x. */
    x[0] = -127;
    for (int j = 1; j < 32; j++) x[j] = (float)j;
    CHECK_INT(fr_quantize_row(FR_TYPE_Q8_0, x, y, 32), 0);
    CHECK_INT(rd16(y), 0x3C00);
    CHECK_INT((int8_t)y[2], -127);
    for (int j = 1; j < 32; j++) CHECK_INT((int8_t)y[2 + j], j);

    /* Q4_0: max = −8 gives d = −8/−8 = 1; q = trunc(x + 8.5) = x + 8. */
    for (int j = 0; j < 16; j++) {
        x[j] = (float)(j - 8);
        x[16 + j] = (float)(7 - j);
    }
    CHECK_INT(fr_quantize_row(FR_TYPE_Q4_0, x, y, 32), 0);
    CHECK_INT(rd16(y), 0x3C00);
    for (int j = 0; j < 16; j++) CHECK_INT(y[2 + j], j | ((15 - j) << 4));

    /* Q4_1: min 0, max 15 → d = 1, m = 0, q = x. */
    for (int j = 0; j < 32; j++) x[j] = (float)(j % 16);
    CHECK_INT(fr_quantize_row(FR_TYPE_Q4_1, x, y, 32), 0);
    CHECK_INT(rd16(y), 0x3C00);
    CHECK_INT(rd16(y + 2), 0);
    for (int j = 0; j < 16; j++) CHECK_INT(y[4 + j], j | (j << 4));

    /* Q5_0: max = −16 → d = 1; q = x + 16: elements 0..15 hold −16..−1
     * (q 0..15, high bit 0), elements 16..31 hold 0..15 (q 16..31, high
     * bit 1) → qh = 0xFFFF0000. */
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16);
    CHECK_INT(fr_quantize_row(FR_TYPE_Q5_0, x, y, 32), 0);
    CHECK_INT(rd16(y), 0x3C00);
    CHECK_INT(y[2] | y[3] << 8 | y[4] << 16 | (uint32_t)y[5] << 24, 0xFFFF0000u);
    for (int j = 0; j < 16; j++) CHECK_INT(y[6 + j], j | (j << 4));

    /* Q5_1: min −1, max 30 → d = 1, m = −1 (0xBC00), q = x + 1. */
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 1);
    CHECK_INT(fr_quantize_row(FR_TYPE_Q5_1, x, y, 32), 0);
    CHECK_INT(rd16(y), 0x3C00);
    CHECK_INT(rd16(y + 2), 0xBC00);
    CHECK_INT(y[4] | y[5] << 8 | y[6] << 16 | (uint32_t)y[7] << 24, 0xFFFF0000u);
    for (int j = 0; j < 16; j++) CHECK_INT(y[8 + j], j | (j << 4));

    /* F16/BF16 round half to even: in f16 (step 2^-10 at 1) 1 + 2^-11 ties
     * down to 1.0 and 1 + 3·2^-11 ties up to 1 + 2^-9 (0x3C02); likewise in
     * bf16 (step 2^-7) 1 + 2^-8 → 0x3F80 and 1 + 3·2^-8 → 0x3F82. */
    float h[2] = {1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048};
    CHECK_INT(fr_quantize_row(FR_TYPE_F16, h, y, 2), 0);
    CHECK_INT(rd16(y), 0x3C00);
    CHECK_INT(rd16(y + 2), 0x3C02);
    float b[2] = {1.0f + 1.0f / 256, 1.0f + 3.0f / 256};
    CHECK_INT(fr_quantize_row(FR_TYPE_BF16, b, y, 2), 0);
    CHECK_INT(rd16(y), 0x3F80);
    CHECK_INT(rd16(y + 2), 0x3F82);

    /* Errors: unsupported type, bad length. */
    CHECK_INT(fr_quantize_row(FR_TYPE_Q2_K, x, y, 256), FR_EUNSUPP);
    CHECK_INT(fr_quantize_row(FR_TYPE_Q8_K, x, y, 256), FR_EUNSUPP);
    CHECK_INT(fr_quantize_row(FR_TYPE_Q4_0, x, y, 31), FR_EINVAL);
    CHECK_INT(fr_quantize_row(FR_TYPE_Q4_K, x, y, 32), FR_EINVAL);
    CHECK(!fr_quantize_supported(FR_TYPE_IQ4_NL));
}

/* ---- 2. random rows ---- */

/* Scales as stored must span their code range: the largest scale of a
 * non-zero block decodes to amax/8 (q4_0), amax/16 (q5_0), amax/127
 * (q8_0); the 6-bit scales of q4_k/q5_k reach 63 and the int8 scales of
 * q6_k reach −128. */
static void check_structure(int type, const float *x, const uint8_t *y, int64_t n,
                            const char *dist) {
    const fr_type_info *ti = fr_type_get(type);
    int bad = 0;
    for (int64_t b = 0; b < n / ti->blck; b++) {
        const float *xb = x + b * ti->blck;
        const uint8_t *yb = y + (size_t)b * ti->size;
        float amax = 0;
        for (int j = 0; j < ti->blck; j++) amax = fmaxf(amax, fabsf(xb[j]));
        if (amax == 0) {
            /* all-zero input: every byte of the block decodes to 0 */
            float out[256];
            fr_kernels_ref(type)->dequantize(yb, out, ti->blck);
            for (int j = 0; j < ti->blck; j++) bad += out[j] != 0;
            continue;
        }
        switch (type) {
        case FR_TYPE_Q4_0: case FR_TYPE_Q5_0: case FR_TYPE_Q8_0: {
            float div = type == FR_TYPE_Q4_0 ? 8 : type == FR_TYPE_Q5_0 ? 16 : 127;
            float d = fabsf(fr_f16_to_f32(rd16(yb)));
            /* f16 keeps 11 bits: relative error ≤ 2^-11 (normal range) */
            if (amax / div > 1e-4f && fabsf(d - amax / div) > (amax / div) * 1e-3f) bad++;
            break;
        }
        case FR_TYPE_Q4_K: case FR_TYPE_Q5_K: {
            int max_sc = 0;
            for (int j = 0; j < 8; j++) {
                int sc = j < 4 ? (yb[4 + j] & 63)
                               : ((yb[4 + j + 4] & 0xF) | ((yb[4 + j - 4] >> 6) << 4));
                if (sc > max_sc) max_sc = sc;
            }
            if (max_sc != 63) bad++;
            break;
        }
        case FR_TYPE_Q6_K: {
            int min_sc = 0;
            for (int j = 0; j < 16; j++)
                if ((int8_t)yb[192 + j] < min_sc) min_sc = (int8_t)yb[192 + j];
            if (min_sc != -128) bad++;
            break;
        }
        }
    }
    CHECK_MSG(bad == 0, "%s %s: %d structural faults", fr_type_name(type), dist, bad);
}

static void test_random_rows(void) {
    enum { N = 1024 };
    double worst[NQTYPES] = {0};
    float x[N], out[N];
    static uint8_t y[N * 4];
    for (int d = 0; d < DIST_COUNT; d++) {
        for (int t = 0; t < NQTYPES; t++) {
            const int type = qtypes[t];
            ktest_seed((uint64_t)(100 + d * 16 + t));
            fill(d, x, N);
            size_t rs;
            CHECK(fr_type_row_size(type, N, &rs) && rs <= sizeof y);
            memset(y, 0xAB, sizeof y);
            CHECK_INT(fr_quantize_row(type, x, y, N), 0);
            fr_kernels_ref(type)->dequantize(y, out, N);
            double se = 0, sx = 0;
            for (int i = 0; i < N; i++) {
                se += ((double)x[i] - out[i]) * ((double)x[i] - out[i]);
                sx += (double)x[i] * x[i];
            }
            double rel = sx > 0 ? sqrt(se / sx) : sqrt(se);
            if (rel > worst[t]) worst[t] = rel;
            CHECK_MSG(rel <= rel_bound(type), "%s %s: relative RMSE %.5f > %.5f",
                      fr_type_name(type), dist_name[d], rel, rel_bound(type));
            if (d == DIST_ZERO) CHECK_MSG(se == 0, "%s zero: non-zero output", fr_type_name(type));
            check_structure(type, x, y, N, dist_name[d]);
        }
    }
    printf("worst relative RMSE over %d distributions:", DIST_COUNT);
    for (int t = 0; t < NQTYPES; t++) printf(" %s %.4f", fr_type_name(qtypes[t]), worst[t]);
    printf("\n");
}

/* ---- 3. against llama-quantize's files ---- */

typedef struct cmp_result {
    int64_t blocks, same;
    double min_cos;
    int tensors;
} cmp_result;

/* Quantize every f32 tensor of src whose counterpart in ref has `type`
 * and compare them block by block and after dequantization. */
static void compare_file(const fr_gguf *src, const fr_gguf *ref, int type, cmp_result *r) {
    memset(r, 0, sizeof *r);
    r->min_cos = 1.0;
    const fr_type_info *ti = fr_type_get(type);
    for (int64_t i = 0; i < fr_gguf_n_tensors(ref); i++) {
        const fr_gguf_tensor *rt = fr_gguf_tensor_at(ref, i);
        if (rt->type != type) continue;
        const fr_gguf_tensor *st = fr_gguf_find_tensor(src, rt->name);
        CHECK_MSG(st && st->type == FR_TYPE_F32, "%s: no f32 source", rt->name);
        if (!st || st->type != FR_TYPE_F32) continue;
        int64_t nel = st->ne[0] * st->ne[1] * st->ne[2] * st->ne[3];
        CHECK_INT(rt->nbytes, (size_t)(nel / ti->blck) * ti->size);
        uint8_t *q = fr_malloc(rt->nbytes);
        float *a = fr_malloc((size_t)nel * sizeof(float));
        float *b = fr_malloc((size_t)nel * sizeof(float));
        float *xs = fr_malloc((size_t)nel * sizeof(float));
        CHECK(q && a && b && xs);
        if (!q || !a || !b || !xs) goto next;
        memcpy(xs, st->data, (size_t)nel * sizeof(float)); /* mapping may be unaligned */
        CHECK_INT(fr_quantize_row(type, xs, q, nel), 0);
        int64_t nb = nel / ti->blck, same = 0;
        const uint8_t *rb = rt->data;
        for (int64_t k = 0; k < nb; k++)
            same += !memcmp(q + k * ti->size, rb + k * ti->size, ti->size);
        fr_kernels_ref(type)->dequantize(q, a, nel);
        fr_kernels_ref(type)->dequantize(rt->data, b, nel);
        double c = cosine(a, b, nel);
        if (c < r->min_cos) r->min_cos = c;
        r->blocks += nb;
        r->same += same;
        r->tensors++;
    next:
        fr_free(q);
        fr_free(a);
        fr_free(b);
        fr_free(xs);
    }
}

static void test_against_llama_cpp(void) {
    static const struct {
        const char *file;
        int type;
    } cases[] = {
        {"tiny-llama-q8_0.gguf", FR_TYPE_Q8_0},
        {"tiny-llama-q4_0.gguf", FR_TYPE_Q4_0},
        {"tiny-llama-q4_0.gguf", FR_TYPE_Q6_K},   /* output.weight */
        {"tiny-llama-q4_k_m.gguf", FR_TYPE_Q4_K},
        {"tiny-llama-q4_k_m.gguf", FR_TYPE_Q6_K},
        {"tiny-llama-q6_k.gguf", FR_TYPE_Q6_K},
    };
    char path[1024];
    fr_gguf *src = NULL;
    snprintf(path, sizeof path, "%s/models/tiny-llama-f32.gguf", harness_testdata());
    int rc = fr_gguf_open(path, &src);
    CHECK_MSG(rc == 0, "open %s: %s", path, fr_errdetail());
    if (rc) return;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fr_gguf *ref = NULL;
        snprintf(path, sizeof path, "%s/models/%s", harness_testdata(), cases[c].file);
        rc = fr_gguf_open(path, &ref);
        CHECK_MSG(rc == 0, "open %s: %s", path, fr_errdetail());
        if (rc) continue;
        cmp_result r;
        compare_file(src, ref, cases[c].type, &r);
        printf("%-24s %-5s %d tensors, %lld/%lld blocks identical (%.4f%%), min cosine %.7f\n",
               cases[c].file, fr_type_name(cases[c].type), r.tensors, (long long)r.same,
               (long long)r.blocks, r.blocks ? 100.0 * (double)r.same / (double)r.blocks : 0.0,
               r.min_cos);
        CHECK_MSG(r.tensors > 0, "%s: no %s tensors", cases[c].file, fr_type_name(cases[c].type));
        /* every type is byte-exact today (float arithmetic in llama.cpp's
         * order, no contracted multiply-adds); keep it so */
        CHECK_MSG(r.same == r.blocks, "%s %s: %lld of %lld blocks differ", cases[c].file,
                      fr_type_name(cases[c].type), (long long)(r.blocks - r.same),
                      (long long)r.blocks);
        CHECK_MSG(r.min_cos >= 0.999, "%s %s: cosine %.6f < 0.999", cases[c].file,
                  fr_type_name(cases[c].type), r.min_cos);
        fr_gguf_close(ref);
    }
    fr_gguf_close(src);
}

int main(void) {
    test_hand_blocks();
    test_random_rows();
    test_against_llama_cpp();
    return harness_done();
}
