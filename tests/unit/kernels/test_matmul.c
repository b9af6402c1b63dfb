/*
 * test_matmul.c — fr_matmul against a naive double-precision loop.
 *
 * For every computable weight type: random weights (M = 67 rows, an odd
 * count that leaves partial chunks), N ∈ {1, 3, 17, 30} activation rows
 * (N ≥ 4 takes the tiled GEMM for Q4_0, Q8_0, Q4_K and Q6_K on AVX-512
 * VNNI: 17 and 30 leave partial token tiles), thread
 * counts 1 (no pool), 1, 2 and 3 (pool), every ISA level the CPU has
 * (ref, avx2, avx512; on aarch64 ref, neon, dotprod, i8mm), ldy = M and ldy > M.  The expected value is
 *     Σ_k dequant(W)[r][k] · dequant(quant(x[t]))[k]
 * in double, where quant is the active table's quantizer for the
 * activation type (the one fr_matmul uses; test_simd checks it against the
 * twin).  Gaps between rows of y (ldy > M) must stay untouched.
 *
 * Tolerances (mag = Σ_k |w_k|·|a_k|, the size of the sum before
 * cancellation):
 *   TOL_MM  = 1e-5 · mag   float rounding of block scales and summation
 *                          order (integer parts are exact);
 *   TOL_S   = 2e-3 · Σ_b |m_b|·Σ_{k∈b} |a_k|   for Q4_1/Q5_1: Q8_1 stores
 *                          s = d·Σq rounded to f16 (2^-11 relative) from the
 *                          unrounded d, while dequant uses the f16 d.
 */
#include "harness.h"
#include "ktest.h"

#include "base/mem.h"
#include "kernels/kernels.h"

#define TOL_MM 1e-5
#define TOL_S  2e-3

enum { M = 67 };

static int type_has_min(int type) {
    return type == FR_TYPE_Q4_1 || type == FR_TYPE_Q5_1;
}

static float block_min(int type, const void *row, int64_t b) {
    if (type == FR_TYPE_Q4_1) return fr_f16_to_f32(((const fr_block_q4_1 *)row)[b].m);
    return fr_f16_to_f32(((const fr_block_q5_1 *)row)[b].m);
}

static void run_case(int type, int64_t K, int64_t N, fr_pool *pool, int64_t ldy, const char *isa) {
    const fr_type_ops *ops = fr_kernels_get(type);
    const int vt = ops->vec_dot_type;
    const fr_type_ops *aops = fr_kernels_get(vt);
    size_t wrow, arow;
    fr_type_row_size(type, K, &wrow);
    fr_type_row_size(vt, K, &arow);

    unsigned char *W = fr_malloc(wrow * M);
    float *tmp = fr_malloc(sizeof(float) * (size_t)K);
    float *Wf = fr_malloc(sizeof(float) * (size_t)(K * M));
    float *x = fr_malloc(sizeof(float) * (size_t)(K * N));
    unsigned char *xq = fr_malloc(arow * (size_t)N);
    float *af = fr_malloc(sizeof(float) * (size_t)(K * N));
    float *y = fr_malloc(sizeof(float) * (size_t)(ldy * N));
    size_t ws = fr_matmul_work_size(type, K, N);
    void *work = ws ? fr_malloc_aligned(ws) : NULL;

    for (int r = 0; r < M; r++) {
        ktest_weight_row(type, W + (size_t)r * wrow, K, tmp);
        fr_kernels_ref(type)->dequantize(W + (size_t)r * wrow, Wf + (size_t)r * K, K);
    }
    ktest_fill(x, K * N, 0.7f);
    for (int64_t t = 0; t < N; t++) {
        aops->quantize(x + t * K, xq + (size_t)t * arow, K);
        fr_kernels_ref(vt)->dequantize(xq + (size_t)t * arow, af + t * K, K);
    }
    for (int64_t i = 0; i < ldy * N; i++) y[i] = -12345.0f;

    fr_matmul(pool, type, W, K, M, x, N, y, ldy, work);

    int bad = 0, gaps = 0;
    for (int64_t t = 0; t < N; t++) {
        for (int r = 0; r < M; r++) {
            double want = 0, mag = 0, magm = 0;
            for (int64_t k = 0; k < K; k++) {
                want += (double)Wf[r * K + k] * af[t * K + k];
                mag += fabs((double)Wf[r * K + k] * af[t * K + k]);
            }
            if (type_has_min(type))
                for (int64_t b = 0; b < K / 32; b++) {
                    double s = 0;
                    for (int k = 0; k < 32; k++) s += fabs(af[t * K + b * 32 + k]);
                    magm += fabs(block_min(type, W + (size_t)r * wrow, b)) * s;
                }
            double tol = TOL_MM * mag + TOL_S * magm + 1e-30;
            double got = y[t * ldy + r];
            if (!(fabs(got - want) <= tol)) {
                if (bad++ < 3)
                    fprintf(stderr, "  %s %s K=%lld N=%lld nth=%d ldy=%lld: y[%lld][%d] = %.9g, want %.9g (tol %g)\n",
                            isa, fr_type_name(type), (long long)K, (long long)N, fr_pool_size(pool),
                            (long long)ldy, (long long)t, r, got, want, tol);
            }
        }
        for (int64_t r = M; r < ldy; r++) gaps += y[t * ldy + r] != -12345.0f;
    }
    CHECK_MSG(bad == 0, "%s %s K=%lld N=%lld nth=%d ldy=%lld: %d wrong outputs", isa,
              fr_type_name(type), (long long)K, (long long)N, fr_pool_size(pool), (long long)ldy, bad);
    CHECK_MSG(gaps == 0, "%s %s: %d values written between rows (ldy=%lld)", isa,
              fr_type_name(type), gaps, (long long)ldy);

    fr_free_aligned(work);
    fr_free(y); fr_free(af); fr_free(xq); fr_free(x); fr_free(Wf); fr_free(tmp); fr_free(W);
}

/* Every row's dot is computed the same way whatever the grouping (vec_dot4
 * is bit-identical to vec_dot), and activation blocks are quantized
 * independently: the output must not depend on the thread count. */
static void test_deterministic(fr_pool **pools) {
    const int types[] = {FR_TYPE_Q4_0, FR_TYPE_Q8_0, FR_TYPE_Q4_K, FR_TYPE_Q6_K, FR_TYPE_F16};
    const int64_t K = 512, N = 5, Mr = 203;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const int type = types[ti];
        size_t wrow;
        fr_type_row_size(type, K, &wrow);
        unsigned char *W = fr_malloc(wrow * Mr);
        float *tmp = fr_malloc(4 * K), *x = fr_malloc(4 * K * N);
        float *y0 = fr_malloc(4 * Mr * N), *y1 = fr_malloc(4 * Mr * N);
        void *work = fr_malloc_aligned(fr_matmul_work_size(type, K, N));
        for (int r = 0; r < Mr; r++) ktest_weight_row(type, W + r * wrow, K, tmp);
        ktest_fill(x, K * N, 1.0f);
        fr_matmul(NULL, type, W, K, Mr, x, N, y0, Mr, work);
        for (int p = 1; p <= 3; p++) {
            fr_matmul(pools[p], type, W, K, Mr, x, N, y1, Mr, work);
            CHECK_MSG(!memcmp(y0, y1, 4 * Mr * N), "%s: output with %d threads differs from 1 thread",
                      fr_type_name(type), p);
        }
        fr_free_aligned(work);
        fr_free(y1); fr_free(y0); fr_free(x); fr_free(tmp); fr_free(W);
    }
}

/* fr_matmul_multi gives exactly fr_matmul's results for every part (the
 * same kernels on the same prepared activation), for decode (fused) and
 * batches (one matmul each), with odd row counts and 1-3 threads. */
static void test_multi(fr_pool *pools[4]) {
    const int types[] = {FR_TYPE_Q4_0, FR_TYPE_Q8_0, FR_TYPE_Q4_K, FR_TYPE_Q6_K, FR_TYPE_F16, FR_TYPE_Q5_0};
    const int64_t Ms[3] = {67, 12, 133};
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        const int type = types[ti];
        const int64_t K = 512;
        size_t wrow;
        fr_type_row_size(type, K, &wrow);
        float *tmp = fr_malloc(sizeof(float) * K), *x = fr_malloc(sizeof(float) * K * 5);
        unsigned char *W[3];
        float *y0[3], *y1[3];
        fr_mm_part parts[3];
        for (int i = 0; i < 3; i++) {
            W[i] = fr_malloc(wrow * (size_t)Ms[i]);
            for (int64_t r = 0; r < Ms[i]; r++) ktest_weight_row(type, W[i] + r * wrow, K, tmp);
            y0[i] = fr_malloc(sizeof(float) * (size_t)Ms[i] * 5);
            y1[i] = fr_malloc(sizeof(float) * (size_t)Ms[i] * 5);
            parts[i] = (fr_mm_part){W[i], Ms[i], y1[i]};
        }
        ktest_fill(x, K * 5, 1.0f);
        for (int64_t N = 1; N <= 5; N += 4) {
            void *work = fr_malloc_aligned(fr_matmul_work_size(type, K, N));
            for (int p = 0; p <= 3; p++) {
                for (int i = 0; i < 3; i++) fr_matmul(pools[p], type, W[i], K, Ms[i], x, N, y0[i], Ms[i], work);
                fr_matmul_multi(pools[p], type, K, parts, 3, x, N, work);
                for (int i = 0; i < 3; i++)
                    CHECK_MSG(!memcmp(y0[i], y1[i], sizeof(float) * (size_t)(Ms[i] * N)),
                              "%s: multi part %d differs from fr_matmul (N %lld, %d threads)",
                              fr_type_name(type), i, (long long)N, fr_pool_size(pools[p]));
            }
            fr_free_aligned(work);
        }
        for (int i = 0; i < 3; i++) { fr_free(W[i]); fr_free(y0[i]); fr_free(y1[i]); }
        fr_free(tmp);
        fr_free(x);
    }
}

int main(void) {
    fr_pool *pools[4] = {NULL, NULL, NULL, NULL};
    for (int i = 1; i <= 3; i++) CHECK_INT(fr_pool_create(i, &pools[i]), 0);

    size_t mem0 = fr_mem_in_use();
    ktest_seed(42);
#if defined(__aarch64__)
    static const char *levels[] = {"ref", "neon", "dotprod", "i8mm"};
#else
    static const char *levels[] = {"ref", "avx2", "avx512"};
#endif
    const int n_levels = (int)(sizeof levels / sizeof levels[0]);
    for (int pass = 0; pass < n_levels; pass++) {
        if (fr_kernels_force_isa(levels[pass]) != 0) continue;   /* not on this CPU */
        const char *isa = fr_kernels_isa();
        printf("ISA: %s\n", isa);
        for (int ti = 0; ti < KTEST_NTYPES; ti++) {
            const int type = ktest_types[ti];
            const int64_t blck = fr_type_get(type)->blck;
            int64_t Ks[3];
            if (blck == 256) { Ks[0] = 256; Ks[1] = 768; Ks[2] = 0; }
            else if (blck == 32) { Ks[0] = 32; Ks[1] = 96; Ks[2] = 544; }
            else { Ks[0] = 37; Ks[1] = 544; Ks[2] = 0; }
            for (int ki = 0; ki < 3 && Ks[ki]; ki++) {
                const int64_t Ns[4] = {1, 3, 17, 30};
                for (int ni = 0; ni < 4; ni++)
                    for (int p = 0; p < 4; p++)
                        run_case(type, Ks[ki], Ns[ni], pools[p], (p & 1) ? M : M + 5, isa);
            }
        }
    }
    fr_kernels_force_ref(false);
    test_deterministic(pools);
    for (int l = 0; l < n_levels; l++)
        if (fr_kernels_force_isa(levels[l]) == 0) test_multi(pools);
    fr_kernels_force_ref(false);
    CHECK_INT(fr_mem_in_use(), mem0);

    /* work size: zero for F32 weights, N rows of the activation type
     * otherwise; where the CPU has decode GEMVs (AVX-512: Q4_0, Q8_0,
     * Q4_K, Q6_K, F16), up to 6 rows prepared in the GEMV's layout, each
     * rounded up to 64 bytes (Q4_0: 40 bytes a block; Q8_K family: 292 a
     * super-block; F16: 4 bytes an element) */
    const bool gemv = strcmp(fr_kernels_best_isa(), "avx512") == 0;
    CHECK_INT(fr_matmul_work_size(FR_TYPE_F32, 64, 3), 0);
    CHECK_INT(fr_matmul_work_size(FR_TYPE_Q4_0, 64, 3), gemv ? 3 * 128 : 3 * 2 * 34);
    CHECK_INT(fr_matmul_work_size(FR_TYPE_Q4_1, 64, 3), 3 * 2 * 36);
    CHECK_INT(fr_matmul_work_size(FR_TYPE_Q6_K, 512, 2), gemv ? 2 * 640 : 2 * 2 * 292);
    CHECK_INT(fr_matmul_work_size(FR_TYPE_F16, 10, 2), gemv ? 2 * 64 : 2 * 10 * 2);
    /* a size for N serves every smaller batch: F16 at 7 rows needs the
     * room of 6 prepared GEMV rows (6·4·K) more than 7 half rows */
    CHECK_INT(fr_matmul_work_size(FR_TYPE_F16, 64, 7), gemv ? 6 * 256 : 7 * 64 * 2);
    /* from 4 rows on, GEMM types need room for the GEMM's token tiles
     * (kernels_int.h): tiles of 12 tokens × blocks × a 12-token record,
     * 12·(32+4+4) bytes per 32-block, 12·(256+4+64) per super-block */
    CHECK_INT(fr_matmul_work_size(FR_TYPE_Q4_0, 64, 4), 1 * 2 * 480);
    CHECK_INT(fr_matmul_work_size(FR_TYPE_Q8_0, 64, 13), 2 * 2 * 480);
    CHECK_INT(fr_matmul_work_size(FR_TYPE_Q6_K, 512, 13), 2 * 2 * 3888);
    CHECK_INT(fr_matmul_work_size(FR_TYPE_Q4_1, 64, 4), 4 * 2 * 36);

    for (int i = 1; i <= 3; i++) fr_pool_destroy(pools[i]);
    return harness_done();
}
