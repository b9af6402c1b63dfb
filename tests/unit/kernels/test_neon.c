/*
 * test_neon.c — every AArch64 kernel level (neon, dotprod, i8mm; the
 * functions of src/kernels/arm/) against the reference twins of ref.c, on
 * random rows of several lengths, tiny and huge activations and zeros.
 * Each level the CPU has is made active in turn (fr_kernels_force_isa) and
 * its table is compared with the twins' for every computable type:
 *
 *   exact (0)      dequantize, the activation quantizers (q8_0 and q8_1
 *                  round half away from zero with the twin's 1/d, q8_K half
 *                  to even as nearest_int), every quantized vec_dot (exact
 *                  int32 per block, the twin's scalar float steps), and
 *                  vec_dot4 / vec_dot4x4 against vec_dot of the twin for
 *                  each (row, activation): bit for bit (F16's vec_dot4x4
 *                  within TOL_FDOT_REL like the float dots);
 *   TOL_FDOT_REL 1e-5 · Σ|w·a|  F32/F16/BF16 dots: four 4-lane float FMA
 *                  chains against the twin's double accumulator;
 *   quantize_f16   bit-identical on finite values (hardware FCVTN rounds to
 *                  nearest even, as fr_f32_to_f16).
 * It also checks that each level's table holds that level's functions (and
 * that fr_ops_get gives arm/ops_neon.c's forward ops, which test_ops
 * compares with their twins), and
 * that the CPU's best level is the one FRUGAL_EXPECT_ISA names when set
 * (make test runs the arm64 build under qemu-aarch64 with -cpu cortex-a72,
 * cortex-a76 and max and sets it to neon, dotprod and i8mm), so a run that
 * silently fell back to a lower level fails.  On other architectures it
 * says so and checks nothing else.
 */
#include "harness.h"
#include "ktest.h"

#include <stdlib.h>

#include "base/mem.h"
#include "kernels/kernels.h"
#include "kernels/kernels_int.h"
#include "kernels/ops.h"
#include "kernels/ops_int.h"

#define TOL_FDOT_REL 1e-5

#ifdef __aarch64__
static size_t row_bytes(int type, int64_t n) {
    size_t b = 0;
    fr_type_row_size(type, n, &b);
    return b;
}

/* lengths: smallest, odd block counts, tails for the per-element types */
static int lengths(int type, int64_t *out) {
    const int blck = fr_type_get(type)->blck;
    if (blck == 1) {
        const int64_t l[] = {1, 7, 8, 31, 33, 100, 1000};
        memcpy(out, l, sizeof l);
        return 7;
    }
    if (blck == 32) {
        const int64_t l[] = {32, 64, 96, 224, 2048};
        memcpy(out, l, sizeof l);
        return 5;
    }
    const int64_t l[] = {256, 768, 2048};
    memcpy(out, l, sizeof l);
    return 3;
}

static bool float_type(int type) {
    return type == FR_TYPE_F32 || type == FR_TYPE_F16 || type == FR_TYPE_BF16;
}

/* dequantize and vec_dot of the active table against the twins */
static void check_type(const char *isa, int type) {
    const fr_type_ops *ops = fr_kernels_get(type), *ref = fr_kernels_ref(type);
    const int at = ref->vec_dot_type;
    const fr_type_ops *aref = fr_kernels_ref(at);
    int64_t ls[8];
    const int nl = lengths(type, ls);
    int bad_dq = 0, bad_dot = 0;
    for (int li = 0; li < nl; li++) {
        const int64_t n = ls[li];
        unsigned char *w = fr_malloc(row_bytes(type, n)), *aq = fr_malloc(row_bytes(at, n));
        float *x = fr_malloc(4 * (size_t)n), *wf = fr_malloc(4 * (size_t)n), *af = fr_malloc(4 * (size_t)n);
        float *got = fr_malloc(4 * (size_t)n);
        for (int rep = 0; rep < 6; rep++) {
            ktest_weight_row(type, w, n, x);
            ref->dequantize(w, wf, n);
            ops->dequantize(w, got, n);
            if (memcmp(wf, got, 4 * (size_t)n) && bad_dq++ < 3)
                fprintf(stderr, "  %s dequantize %s n=%lld differs\n", isa, fr_type_name(type), (long long)n);
            const float scale = rep == 3 ? 1e-3f : rep == 4 ? 1e3f : 1.0f;
            if (rep == 5) memset(x, 0, 4 * (size_t)n);
            else ktest_fill(x, n, scale);
            aref->quantize(x, aq, n);
            aref->dequantize(aq, af, n);
            const float want = ref->vec_dot(n, w, aq), have = ops->vec_dot(n, w, aq);
            double tol = 0;
            if (float_type(type)) {
                double mag = 0;
                for (int64_t k = 0; k < n; k++) mag += fabs((double)wf[k] * af[k]);
                tol = TOL_FDOT_REL * mag;
            }
            if (!(fabs((double)have - want) <= tol) && bad_dot++ < 3)
                fprintf(stderr, "  %s vec_dot %s n=%lld rep %d: %.9g, twin %.9g (tol %g)\n", isa,
                        fr_type_name(type), (long long)n, rep, have, want, tol);
        }
        fr_free(got); fr_free(af); fr_free(wf); fr_free(x); fr_free(aq); fr_free(w);
    }
    CHECK_MSG(bad_dq == 0, "%s dequantize %s: %d rows differ from the twin", isa, fr_type_name(type), bad_dq);
    CHECK_MSG(bad_dot == 0, "%s vec_dot %s: %d dots differ from the twin", isa, fr_type_name(type), bad_dot);
}

/* the activation quantizers: bit-identical to the twins */
static void check_quantize(const char *isa, int type) {
    int64_t ls[8];
    const int nl = lengths(type, ls);
    int bad = 0;
    for (int li = 0; li < nl; li++) {
        const int64_t n = ls[li] < 32 && type != FR_TYPE_F16 && type != FR_TYPE_BF16 ? 32 : ls[li];
        if (n % fr_type_get(type)->blck) continue;
        const size_t rb = row_bytes(type, n);
        float *x = fr_malloc(4 * (size_t)n);
        unsigned char *a = fr_malloc(rb), *b = fr_malloc(rb);
        for (int rep = 0; rep < 5; rep++) {
            if (rep == 3) memset(x, 0, 4 * (size_t)n);
            else ktest_fill(x, n, rep == 1 ? 1e-4f : rep == 2 ? 300.0f : 1.0f);
            if (rep == 4) /* exact halves: ties of both roundings, a repeated max */
                for (int64_t k = 0; k < n; k++) x[k] = (float)((int)(k % 17) - 8) * 0.5f * (k % 32 == 5 ? -16 : 1);
            fr_kernels_ref(type)->quantize(x, a, n);
            memset(b, 0xAB, rb);
            fr_kernels_get(type)->quantize(x, b, n);
            if (memcmp(a, b, rb) && bad++ < 3)
                fprintf(stderr, "  %s quantize %s n=%lld rep %d differs\n", isa, fr_type_name(type), (long long)n, rep);
        }
        fr_free(b); fr_free(a); fr_free(x);
    }
    CHECK_MSG(bad == 0, "%s quantize %s: %d rows differ from the twin", isa, fr_type_name(type), bad);
}

/* got = the twin's vec_dot: bit for bit for the quantized types, within
 * TOL_FDOT_REL·Σ|w·a| for the float ones */
static bool dot_close(int type, int64_t n, const void *w, const void *aq, float got) {
    const fr_type_ops *ref = fr_kernels_ref(type);
    const float want = ref->vec_dot(n, w, aq);
    if (!float_type(type)) return got == want;
    float *wf = fr_malloc(4 * (size_t)n), *af = fr_malloc(4 * (size_t)n);
    ref->dequantize(w, wf, n);
    fr_kernels_ref(ref->vec_dot_type)->dequantize(aq, af, n);
    double mag = 0;
    for (int64_t k = 0; k < n; k++) mag += fabs((double)wf[k] * af[k]);
    fr_free(af);
    fr_free(wf);
    return fabs((double)got - want) <= TOL_FDOT_REL * mag;
}

/* vec_dot4 (4 rows · 1 activation) and vec_dot4x4 (4 rows · 4
 * activations) of the active table: each output = the twin's vec_dot */
static void check_dot4(const char *isa, int type) {
    fr__vec_dot4_fn d4 = fr__kernels_dot4(type);
    fr__vec_dot4x4_fn d44 = fr__kernels_dot4x4(type);
    if (!d4 && !d44) return;
    const fr_type_ops *ref = fr_kernels_ref(type);
    int64_t ls[8];
    const int nl = lengths(type, ls);
    int bad = 0;
    for (int li = 0; li < nl; li++) {
        const int64_t n = ls[li];
        const size_t rb = row_bytes(type, n), ab = row_bytes(ref->vec_dot_type, n);
        unsigned char *w = fr_malloc(4 * rb), *aq = fr_malloc(4 * ab);
        float *x = fr_malloc(4 * (size_t)n);
        for (int r = 0; r < 4; r++) ktest_weight_row(type, w + r * rb, n, x);
        for (int t = 0; t < 4; t++) {
            ktest_fill(x, n, t == 1 ? 1e-3f : t == 2 ? 1e3f : 1.0f);
            if (t == 3) memset(x, 0, 4 * (size_t)n);
            fr_kernels_ref(ref->vec_dot_type)->quantize(x, aq + t * ab, n);
        }
        float out[16];
        if (d4)
            for (int t = 0; t < 4; t++) {
                d4(n, w, rb, aq + t * ab, out);
                for (int r = 0; r < 4; r++)
                    if (out[r] != ref->vec_dot(n, w + r * rb, aq + t * ab) && bad++ < 3)
                        fprintf(stderr, "  %s vec_dot4 %s n=%lld row %d act %d: %.9g vs %.9g\n", isa,
                                fr_type_name(type), (long long)n, r, t, out[r],
                                ref->vec_dot(n, w + r * rb, aq + t * ab));
            }
        if (d44) {
            d44(n, w, rb, aq, ab, out);
            for (int t = 0; t < 4; t++)
                for (int r = 0; r < 4; r++)
                    if (!dot_close(type, n, w + r * rb, aq + t * ab, out[4 * t + r]) && bad++ < 3)
                        fprintf(stderr, "  %s vec_dot4x4 %s n=%lld row %d act %d: %.9g vs %.9g\n", isa,
                                fr_type_name(type), (long long)n, r, t, out[4 * t + r],
                                ref->vec_dot(n, w + r * rb, aq + t * ab));
        }
        fr_free(x); fr_free(aq); fr_free(w);
    }
    CHECK_MSG(bad == 0, "%s %s: %d four-row results differ from the twin", isa, fr_type_name(type), bad);
}

/* fr_matmul on the active level for a batch (the four-row paths) equals
 * the twins' fr_matmul bit for bit (single-threaded: how rows are split
 * across threads is test_matmul's subject). */
static void check_matmul(const char *isa, int type) {
    const int64_t K = fr_type_get(type)->blck == 256 ? 512 : 96, M = 13, N = 6;
    const size_t rb = row_bytes(type, K);
    unsigned char *W = fr_malloc(rb * M);
    float *x = fr_malloc(4 * (size_t)(K * N)), *tmp = fr_malloc(4 * (size_t)K);
    float *want = fr_malloc(4 * (size_t)(M * N)), *y = fr_malloc(4 * (size_t)(M * N));
    void *work = fr_malloc_aligned(fr_matmul_work_size(type, K, N));
    for (int64_t r = 0; r < M; r++) ktest_weight_row(type, W + r * rb, K, tmp);
    ktest_fill(x, K * N, 1.0f);
    CHECK_INT(fr_kernels_force_isa("ref"), 0);
    fr_matmul(NULL, type, W, K, M, x, N, want, M, work);
    CHECK_INT(fr_kernels_force_isa(isa), 0);
    memset(y, 0, 4 * (size_t)(M * N));
    fr_matmul(NULL, type, W, K, M, x, N, y, M, work);
    CHECK_MSG(!memcmp(y, want, 4 * (size_t)(M * N)), "%s matmul %s differs from the twins'", isa,
              fr_type_name(type));
    fr_free_aligned(work);
    fr_free(y); fr_free(want); fr_free(tmp); fr_free(x); fr_free(W);
}

/* each level's table holds that level's functions */
static void check_wiring(const char *isa) {
    const fr_type_ops *q4 = fr_kernels_get(FR_TYPE_Q4_0), *q6 = fr_kernels_get(FR_TYPE_Q6_K);
    CHECK(fr_kernels_get(FR_TYPE_F16)->vec_dot == fr__neon_vec_dot_f16);
    CHECK(fr_kernels_get(FR_TYPE_Q8_K)->quantize == fr__neon_quantize_q8_K);
    CHECK(fr_ops_get()->rmsnorm == fr__neon_rmsnorm); /* the forward ops follow the level */
    CHECK(fr_ops_get()->att_pv == fr__neon_att_pv);
    if (!strcmp(isa, "neon")) {
        CHECK(q4->vec_dot == fr__neon_vec_dot_q4_0_q8_0);
        CHECK(q6->vec_dot == fr__neon_vec_dot_q6_K_q8_K);
        CHECK(fr__kernels_dot4x4(FR_TYPE_Q4_0) == fr__neon_vec_dot4x4_q4_0_q8_0);
    } else {
        CHECK(q4->vec_dot == fr__dotprod_vec_dot_q4_0_q8_0);
        CHECK(q6->vec_dot == fr__dotprod_vec_dot_q6_K_q8_K);
        CHECK(fr__kernels_dot4x4(FR_TYPE_Q4_0) ==
              (!strcmp(isa, "i8mm") ? fr__i8mm_vec_dot4x4_q4_0_q8_0 : fr__dotprod_vec_dot4x4_q4_0_q8_0));
        CHECK(!strcmp(isa, "dotprod") || fr__kernels_dot4x4(FR_TYPE_Q6_K) == fr__i8mm_vec_dot4x4_q6_K_q8_K);
    }
}
#endif

int main(void) {
    ktest_seed(4321);
    const size_t mem0 = fr_mem_in_use();
    const char *expect = getenv("FRUGAL_EXPECT_ISA");
    printf("kernel levels: best %s\n", fr_kernels_best_isa());
    if (expect && *expect) CHECK_STR(fr_kernels_best_isa(), expect);
#ifndef __aarch64__
    printf("skipped: not an aarch64 build; src/kernels/arm/ not tested\n");
#else
    static const char *const isas[] = {"neon", "dotprod", "i8mm"};
    int tested = 0;
    for (int i = 0; i < 3; i++) {
        if (fr_kernels_force_isa(isas[i]) != 0) {
            printf("skipped: this CPU lacks %s\n", isas[i]);
            continue;
        }
        tested++;
        CHECK_STR(fr_kernels_isa(), isas[i]);
        check_wiring(isas[i]);
        for (int k = 0; k < KTEST_NTYPES; k++) check_type(isas[i], ktest_types[k]);
        const int qt[] = {FR_TYPE_Q8_0, FR_TYPE_Q8_1, FR_TYPE_Q8_K, FR_TYPE_F16, FR_TYPE_BF16};
        for (size_t k = 0; k < sizeof qt / sizeof qt[0]; k++) check_quantize(isas[i], qt[k]);
        for (int k = 0; k < KTEST_NTYPES; k++) check_dot4(isas[i], ktest_types[k]);
        const int mt[] = {FR_TYPE_Q4_0, FR_TYPE_Q8_0, FR_TYPE_Q4_K, FR_TYPE_Q6_K, FR_TYPE_Q5_K};
        for (size_t k = 0; k < sizeof mt / sizeof mt[0]; k++) check_matmul(isas[i], mt[k]);
    }
    CHECK_MSG(tested > 0, "no NEON level present on an aarch64 CPU");
    fr_kernels_force_isa(NULL);
    CHECK_STR(fr_kernels_isa(), fr_kernels_best_isa());
#endif
    CHECK_INT(fr_mem_in_use(), mem0);
    return harness_done();
}
