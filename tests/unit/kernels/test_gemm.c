/*
 * test_gemm.c — the AVX-512 VNNI GEMM (x86/gemm_avx512.c) against the
 * reference twins of ref.c.
 *
 * For Q4_0, Q8_0, Q4_K and Q6_K weights: random rows (ktest.h), M rows
 * with partial panels (M = 16k + 5, and M < 16), K with an odd number of
 * blocks and more than one K-slice (1056 = 33 blocks; 1280 = 5
 * super-blocks), N from 1 to 41 tokens so that every tile width (12, 8,
 * 6, 4, 3, 2, 1) and partial token tiles run.  Activations are converted
 * by fr__avx512_gemm_convert shared over nth = 1, 2 and 3 threads (the
 * shares must give bit-identical y), then every panel runs.  Each output
 * must match
 *     fr__ref_vec_dot(row r, quant(x[t]))
 * where quant is the same activation quantizer the GEMM was given (the
 * active table's; test_simd checks it against its twin), so the integer
 * block sums are the same and only float rounding differs:
 *
 *   TOL_GEMM = 2e-6 · mag,  mag = Σ_k |w_k|·|a_k| (dequantized), plus for
 *              Q4_K Σ_k dmin·m·|a_k|: the GEMM adds the scale and the min
 *              terms separately, so it rounds on both before they cancel.
 *              Float sums of ≤ 44 blocks or sub-block terms in a different
 *              order than the twin: a few ulp of mag (2e-6 ≈ 17 ulp).
 *
 * Also: an extreme case (every code at its most negative value, every
 * activation at +127) for the int32 range; y between rows (ldy > M) must
 * stay untouched.
 */
#include "harness.h"
#include "ktest.h"

#include "base/mem.h"
#include "base/sysinfo.h"
#include "kernels/kernels.h"

#define TOL_GEMM 2e-6

#if defined(__x86_64__)

static size_t act_size(int type, int64_t K, int64_t N) {
    const bool b32 = type == FR_TYPE_Q4_0 || type == FR_TYPE_Q8_0;
    const int64_t tiles = (N + FR__GEMM_TT - 1) / FR__GEMM_TT;
    return (size_t)(tiles * (K / (b32 ? 32 : 256))) * (b32 ? FR__GEMM_REC32 : FR__GEMM_REC256);
}

/* Σ_k dmin·m_j·|a_k| of a Q4_K row (the min part of mag). */
static double q4_K_min_mag(const void *row, const float *a, int64_t K) {
    const fr_block_q4_K *x = row;
    double s = 0;
    for (int64_t b = 0; b < K / 256; b++)
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            fr__get_scale_min_k4(j, x[b].scales, &sc, &m);
            double sa = 0;
            for (int k = 0; k < 32; k++) sa += fabs(a[b * 256 + j * 32 + k]);
            s += fr_f16_to_f32(x[b].dmin) * m * sa;
        }
    return s;
}

/* Run the GEMM on W [M][K] and x [N][K] into y [N][ldy], converting with
 * nth threads' shares. */
static void run_gemm(int type, const unsigned char *W, size_t wrow, int64_t K, int64_t M, const float *x,
                     int64_t N, float *y, int64_t ldy, void *act, int nth) {
    const fr__gemm g = {
        .wtype = type, .W = W, .wrow = wrow, .K = K, .M = M, .N = N,
        .quantize = fr_kernels_get(fr_kernels_get(type)->vec_dot_type)->quantize,
        .act = act, .y = y, .ldy = ldy,
    };
    for (int i = 0; i < nth; i++) fr__avx512_gemm_convert(&g, x, i, nth);
    for (int64_t p = 0; p < (M + FR__GEMM_ROWS - 1) / FR__GEMM_ROWS; p++) fr__avx512_gemm_panel(&g, p);
}

/* Compare y against the twin; returns the number of bad outputs. */
static int check_y(int type, const unsigned char *W, size_t wrow, int64_t K, int64_t M, const float *x,
                   int64_t N, const float *y, int64_t ldy, const char *what) {
    const fr_type_ops *ref = fr_kernels_ref(type);
    const int vt = ref->vec_dot_type;
    size_t arow;
    fr_type_row_size(vt, K, &arow);
    unsigned char *aq = fr_malloc(arow);
    float *af = fr_malloc(sizeof(float) * (size_t)K), *wf = fr_malloc(sizeof(float) * (size_t)K);
    int bad = 0, gaps = 0;
    for (int64_t t = 0; t < N; t++) {
        fr_kernels_get(vt)->quantize(x + t * K, aq, K);
        fr_kernels_ref(vt)->dequantize(aq, af, K);
        for (int64_t r = 0; r < M; r++) {
            const unsigned char *row = W + (size_t)r * wrow;
            const double want = ref->vec_dot(K, row, aq);
            ref->dequantize(row, wf, K);
            double mag = 0;
            for (int64_t k = 0; k < K; k++) mag += fabs((double)wf[k] * af[k]);
            if (type == FR_TYPE_Q4_K) mag += q4_K_min_mag(row, af, K);
            const double got = y[t * ldy + r], tol = TOL_GEMM * mag + 1e-30;
            if (!(fabs(got - want) <= tol) && bad++ < 3)
                fprintf(stderr, "  %s %s K=%lld M=%lld N=%lld: y[%lld][%lld] = %.9g, want %.9g (tol %g)\n", what,
                        fr_type_name(type), (long long)K, (long long)M, (long long)N, (long long)t, (long long)r,
                        got, want, tol);
        }
        for (int64_t r = M; r < ldy; r++) gaps += y[t * ldy + r] != -12345.0f;
    }
    CHECK_MSG(gaps == 0, "%s %s: %d values written between rows", what, fr_type_name(type), gaps);
    fr_free(wf); fr_free(af); fr_free(aq);
    return bad;
}

static void gemm_case(int type, int64_t K, int64_t M, int64_t N) {
    size_t wrow;
    fr_type_row_size(type, K, &wrow);
    const int64_t ldy = M + 3;
    unsigned char *W = fr_malloc(wrow * (size_t)M);
    float *tmp = fr_malloc(sizeof(float) * (size_t)K), *x = fr_malloc(sizeof(float) * (size_t)(K * N));
    float *y[3];
    void *act = fr_malloc_aligned(act_size(type, K, N));
    for (int64_t r = 0; r < M; r++) ktest_weight_row(type, W + (size_t)r * wrow, K, tmp);
    ktest_fill(x, K * N, 0.7f);
    for (int i = 0; i < 3; i++) {
        y[i] = fr_malloc(sizeof(float) * (size_t)(ldy * N));
        for (int64_t k = 0; k < ldy * N; k++) y[i][k] = -12345.0f;
        run_gemm(type, W, wrow, K, M, x, N, y[i], ldy, act, i + 1);
    }
    const int bad = check_y(type, W, wrow, K, M, x, N, y[0], ldy, "gemm");
    CHECK_MSG(bad == 0, "gemm %s K=%lld M=%lld N=%lld: %d outputs off the twin", fr_type_name(type),
              (long long)K, (long long)M, (long long)N, bad);
    for (int i = 1; i < 3; i++)
        CHECK_MSG(!memcmp(y[0], y[i], sizeof(float) * (size_t)(ldy * N)),
                  "gemm %s K=%lld N=%lld: conversion shared by %d threads changes y", fr_type_name(type),
                  (long long)K, (long long)N, i + 1);
    for (int i = 0; i < 3; i++) fr_free(y[i]);
    fr_free_aligned(act);
    fr_free(x); fr_free(tmp); fr_free(W);
}

/* Largest integer sums: Q4_0 codes all 0 (−8), Q8_0 codes all −128, every
 * activation +127 (x constant), d = 1: y = −8·127·K·d_a, −128·127·K·d_a. */
static void extreme_case(int type) {
    const int64_t K = 2048, M = 16, N = 12;
    size_t wrow;
    fr_type_row_size(type, K, &wrow);
    unsigned char *W = fr_malloc(wrow * M);
    float *x = fr_malloc(sizeof(float) * K * N), *y = fr_malloc(sizeof(float) * M * N);
    void *act = fr_malloc_aligned(act_size(type, K, N));
    const uint16_t one = fr_f32_to_f16(1.0f);
    for (int64_t r = 0; r < M; r++)
        for (int64_t b = 0; b < K / 32; b++) {
            if (type == FR_TYPE_Q4_0) {
                fr_block_q4_0 *blk = (fr_block_q4_0 *)(W + r * wrow) + b;
                blk->d = one;
                memset(blk->qs, 0, sizeof blk->qs);
            } else {
                fr_block_q8_0 *blk = (fr_block_q8_0 *)(W + r * wrow) + b;
                blk->d = one;
                memset(blk->qs, 0x80, sizeof blk->qs);
            }
        }
    for (int64_t i = 0; i < K * N; i++) x[i] = 1.0f;
    run_gemm(type, W, wrow, K, M, x, N, y, M, act, 1);
    /* d_a = fp16(1/127); every q8 is 127 */
    const double da = fr_f16_to_f32(fr_f32_to_f16(1.0f / 127.0f));
    const double want = (type == FR_TYPE_Q4_0 ? -8.0 : -128.0) * 127.0 * (double)K * da;
    int bad = 0;
    for (int64_t i = 0; i < M * N; i++) bad += !(fabs(y[i] - want) <= TOL_GEMM * fabs(want));
    CHECK_MSG(bad == 0, "extreme %s: %d outputs differ from %.9g (y[0] = %.9g)", fr_type_name(type), bad, want,
              y[0]);
    fr_free_aligned(act);
    fr_free(y); fr_free(x); fr_free(W);
}

#endif

int main(void) {
#if !defined(__x86_64__)
    printf("not x86-64: x86/gemm_avx512.c is not built here\n");
    CHECK(fr__kernels_gemm() == NULL);
    return harness_done();
#else
    const fr_cpu_features *cpu = fr_cpu();
    if (!(cpu->avx512f && cpu->avx512bw && cpu->avx512vl && cpu->avx512vnni)) {
        printf("no AVX-512 VNNI on this CPU: the GEMM cannot run here\n");
        return harness_done();
    }
    size_t mem0 = fr_mem_in_use();
    ktest_seed(7);
    const int b32[] = {FR_TYPE_Q4_0, FR_TYPE_Q8_0}, b256[] = {FR_TYPE_Q4_K, FR_TYPE_Q6_K};
    const int64_t Ns[] = {1, 2, 3, 5, 7, 12, 13, 23, 41};
    for (int i = 0; i < 2; i++) {
        const int64_t K32[] = {32, 96, 1056};
        for (int k = 0; k < 3; k++)
            for (size_t n = 0; n < sizeof Ns / sizeof Ns[0]; n++) gemm_case(b32[i], K32[k], 37, Ns[n]);
        gemm_case(b32[i], 64, 5, 13);
        const int64_t K256[] = {256, 1280};
        for (int k = 0; k < 2; k++)
            for (size_t n = 0; n < sizeof Ns / sizeof Ns[0]; n++) gemm_case(b256[i], K256[k], 37, Ns[n]);
        gemm_case(b256[i], 512, 5, 13);
        extreme_case(b32[i]);
    }
    CHECK_INT(fr_mem_in_use(), mem0);
    return harness_done();
#endif
}
