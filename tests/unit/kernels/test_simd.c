/*
 * test_simd.c — every SIMD kernel against its reference twin in ref.c, on
 * random rows of several lengths (the smallest, odd block counts, tails
 * for the per-element types), plus all-zero and badly scaled inputs.
 *
 * Tolerances, each with its reason:
 *   exact (0)        dequantizers, quantize_f16/bf16/q8_K, the Q2_K..Q6_K
 *                    dots and the Q4_0 vec_dot4x4: same integer work and
 *                    the same scalar float expression per block, so
 *                    bit-identical to the twins; also vec_dot4 vs vec_dot
 *                    per row, and the AVX-512 dots vs the AVX2 ones (same
 *                    lane sums, same float ops);
 *   TOL_DOT_REL 1e-5 · Σ_k |w_k·a_k| (+ Σ_b |m_b·s_b| for Q4_1/Q5_1)
 *                    Q4_0/Q5_0/Q8_0/Q4_1/Q5_1 dots: the per-block integer
 *                    sums are exact, but d_w·d_a·sumi is accumulated in 8
 *                    float lanes instead of one scalar (rounding order);
 *   TOL_FDOT_REL 1e-5 · Σ_k |w_k·a_k|  F32/F16/BF16 dots: float lanes vs the
 *                    twin's double accumulator;
 *   decode GEMVs     Q4_0 within TOL_DOT_REL (the −8 offset is a separate
 *                    float sum), F16 within TOL_FDOT_REL; the prepared
 *                    activation exact, one row alone = the same row in a
 *                    batch of rows, bit for bit;
 *   TOL_Q8_0_CODE 1  quantize_q8_0: the AVX path (as llama.cpp's) rounds half
 *                    to even and scales by 127/amax instead of 1/(amax/127),
 *                    so a code may differ by one where x·id is (nearly) .5;
 *                    d must be identical and at most 2% of codes may differ
 *                    (quantize_q8_1 likewise; s must match where codes do).
 *
 * When the CPU lacks an ISA its checks are skipped with a message; the
 * closing line is printed either way.
 */
#include "harness.h"
#include "ktest.h"

#include "base/mem.h"
#include "base/sysinfo.h"
#include "kernels/kernels.h"

#if defined(__aarch64__)
/* Helpers (four-row dots, GEMVs) that no NEON kernel needs yet. */
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

#define TOL_DOT_REL 1e-5
#define TOL_FDOT_REL 1e-5
#define TOL_Q8_0_CODE 1

typedef void (*dq_fn)(const void *, float *, int64_t);
typedef void (*q_fn)(const float *, void *, int64_t);
typedef float (*dot_fn)(int64_t, const void *, const void *);

static size_t row_bytes(int type, int64_t n) {
    size_t b = 0;
    fr_type_row_size(type, n, &b);
    return b;
}

/* lengths in elements for a type: smallest, odd block counts, tails */
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

static void check_dequant(const char *name, int type, dq_fn simd) {
    int64_t ls[8];
    const int nl = lengths(type, ls);
    int bad = 0;
    for (int li = 0; li < nl; li++) {
        const int64_t n = ls[li];
        unsigned char *row = fr_malloc(row_bytes(type, n));
        float *tmp = fr_malloc(4 * (size_t)n), *a = fr_malloc(4 * (size_t)n), *b = fr_malloc(4 * (size_t)n);
        for (int rep = 0; rep < 3; rep++) {
            ktest_weight_row(type, row, n, tmp);
            fr_kernels_ref(type)->dequantize(row, a, n);
            simd(row, b, n);
            if (memcmp(a, b, 4 * (size_t)n) && bad++ < 3) {
                for (int64_t i = 0; i < n; i++)
                    if (a[i] != b[i]) {
                        fprintf(stderr, "  %s n=%lld: [%lld] %.9g, twin %.9g\n", name, (long long)n,
                                (long long)i, b[i], a[i]);
                        break;
                    }
            }
        }
        fr_free(b); fr_free(a); fr_free(tmp); fr_free(row);
    }
    CHECK_MSG(bad == 0, "%s: %d rows differ from the twin", name, bad);
}

/* Weight row and an activation row already in the vec_dot_type (quantized
 * by the twin), SIMD dot vs twin dot. */
static void check_dot(const char *name, int type, dot_fn simd, double tol_rel) {
    const fr_type_ops *ops = fr_kernels_ref(type);
    const fr_type_ops *aops = fr_kernels_ref(ops->vec_dot_type);
    int64_t ls[8];
    const int nl = lengths(type, ls);
    int bad = 0;
    for (int li = 0; li < nl; li++) {
        const int64_t n = ls[li];
        unsigned char *w = fr_malloc(row_bytes(type, n)), *aq = fr_malloc(row_bytes(ops->vec_dot_type, n));
        float *x = fr_malloc(4 * (size_t)n), *wf = fr_malloc(4 * (size_t)n), *af = fr_malloc(4 * (size_t)n);
        for (int rep = 0; rep < 6; rep++) {
            ktest_weight_row(type, w, n, x);
            const float scale = rep == 3 ? 1e-3f : rep == 4 ? 1e3f : 1.0f;
            if (rep == 5) memset(x, 0, 4 * (size_t)n);
            else ktest_fill(x, n, scale);
            aops->quantize(x, aq, n);
            ops->dequantize(w, wf, n);
            aops->dequantize(aq, af, n);
            double mag = 0;
            for (int64_t k = 0; k < n; k++) mag += fabs((double)wf[k] * af[k]);
            if (type == FR_TYPE_Q4_1 || type == FR_TYPE_Q5_1) /* the m_w·s_a terms */
                for (int64_t b = 0; b < n / 32; b++) {
                    const uint16_t m = type == FR_TYPE_Q4_1 ? ((fr_block_q4_1 *)w)[b].m : ((fr_block_q5_1 *)w)[b].m;
                    mag += fabs((double)fr_f16_to_f32(m) * fr_f16_to_f32(((fr_block_q8_1 *)aq)[b].s));
                }
            const float want = ops->vec_dot(n, w, aq), got = simd(n, w, aq);
            const double tol = tol_rel * mag;
            if (!(fabs((double)got - want) <= tol) && bad++ < 3)
                fprintf(stderr, "  %s n=%lld rep %d: %.9g, twin %.9g (tol %g)\n", name, (long long)n, rep,
                        got, want, tol);
        }
        fr_free(af); fr_free(wf); fr_free(x); fr_free(aq); fr_free(w);
    }
    CHECK_MSG(bad == 0, "%s: %d dots differ from the twin", name, bad);
}

/* vec_dot4 on 4 rows = vec_dot per row, bit for bit; and another ISA's
 * vec_dot (`same`) must agree exactly with `simd`. */
static void check_dot4_same(const char *name, int type, fr__vec_dot4_fn dot4, dot_fn single, dot_fn same) {
    const fr_type_ops *ops = fr_kernels_ref(type);
    int64_t ls[8];
    const int nl = lengths(type, ls);
    int bad = 0;
    for (int li = 0; li < nl; li++) {
        const int64_t n = ls[li];
        const size_t rb = row_bytes(type, n);
        unsigned char *w = fr_malloc(4 * rb), *aq = fr_malloc(row_bytes(ops->vec_dot_type, n));
        float *x = fr_malloc(4 * (size_t)n);
        for (int rep = 0; rep < 4; rep++) {
            for (int r = 0; r < 4; r++) ktest_weight_row(type, w + r * rb, n, x);
            ktest_fill(x, n, rep == 2 ? 1e3f : 1.0f);
            fr_kernels_ref(ops->vec_dot_type)->quantize(x, aq, n);
            float out[4] = {0};
            if (dot4) dot4(n, w, rb, aq, out);
            for (int r = 0; r < 4; r++) {
                const float one = single(n, w + r * rb, aq);
                if (dot4 && out[r] != one && bad++ < 3)
                    fprintf(stderr, "  %s n=%lld row %d: dot4 %.9g, dot %.9g\n", name, (long long)n, r, out[r], one);
                if (same && same(n, w + r * rb, aq) != one && bad++ < 3)
                    fprintf(stderr, "  %s n=%lld row %d: %.9g vs %.9g\n", name, (long long)n, r,
                            same(n, w + r * rb, aq), one);
            }
        }
        fr_free(x); fr_free(aq); fr_free(w);
    }
    CHECK_MSG(bad == 0, "%s: %d results not bit-identical", name, bad);
}

/* vec_dot4x4 = the twin for each (row, activation) pair, bit for bit. */
static void check_dot4x4(const char *name, int type, fr__vec_dot4x4_fn dot4x4, dot_fn single) {
    const fr_type_ops *ops = fr_kernels_ref(type);
    int64_t ls[8];
    const int nl = lengths(type, ls);
    int bad = 0;
    for (int li = 0; li < nl; li++) {
        const int64_t n = ls[li];
        const size_t rb = row_bytes(type, n), ab = row_bytes(ops->vec_dot_type, n);
        unsigned char *w = fr_malloc(4 * rb), *aq = fr_malloc(4 * ab);
        float *x = fr_malloc(4 * (size_t)n);
        for (int r = 0; r < 4; r++) ktest_weight_row(type, w + r * rb, n, x);
        for (int t = 0; t < 4; t++) {
            ktest_fill(x, n, t == 2 ? 1e3f : 1.0f);
            if (t == 3) memset(x, 0, 4 * (size_t)n);
            fr_kernels_ref(ops->vec_dot_type)->quantize(x, aq + t * ab, n);
        }
        float out[16];
        dot4x4(n, w, rb, aq, ab, out);
        for (int t = 0; t < 4; t++)
            for (int r = 0; r < 4; r++) {
                const float one = single(n, w + r * rb, aq + t * ab);
                if (out[4 * t + r] != one && bad++ < 3)
                    fprintf(stderr, "  %s n=%lld row %d act %d: %.9g, dot %.9g\n", name, (long long)n, r, t,
                            out[4 * t + r], one);
            }
        fr_free(x); fr_free(aq); fr_free(w);
    }
    CHECK_MSG(bad == 0, "%s: %d results not bit-identical", name, bad);
}

#if defined(__x86_64__)
/* Decode GEMV (fr__gemv) on `nr` (odd) rows: the prepared activation holds
 * exactly the codes and scale of the Q8_0 row fr__avx2_quantize_q8_0 gives
 * and the offsets −8·d·Σq (Q4_0) or −128·d·Σq (Q8_0), whatever block
 * ranges `prepare` is
 * called on; each y[r] is within tol_rel·mag of the twin's vec_dot on that
 * Q8_0 row and equals the single-row result bit for bit. */
static void check_gemv_q8_0(const char *name, int type, const fr__gemv *g, double tol_rel) {
    const int64_t ls[] = {32, 64, 96, 224, 288, 544, 2048};
    const int nr = 5;
    int bad = 0, bad_prep = 0;
    for (size_t li = 0; li < sizeof ls / sizeof ls[0]; li++) {
        const int64_t n = ls[li], nb = n / 32;
        const size_t rb = row_bytes(type, n);
        unsigned char *w = fr_malloc(nr * rb);
        fr_block_q8_0 *aq = fr_malloc(row_bytes(FR_TYPE_Q8_0, n));
        float *x = fr_malloc(4 * (size_t)n), *wf = fr_malloc(4 * (size_t)n), *af = fr_malloc(4 * (size_t)n);
        unsigned char *prep = fr_malloc_aligned(g->size(n));
        for (int rep = 0; rep < 4; rep++) {
            for (int r = 0; r < nr; r++) ktest_weight_row(type, w + r * rb, n, x);
            if (rep == 3) memset(x, 0, 4 * (size_t)n);
            else ktest_fill(x, n, rep == 1 ? 1e-3f : rep == 2 ? 1e3f : 1.0f);
            fr__avx2_quantize_q8_0(x, aq, n);
            /* three "threads", last range first */
            g->prepare(x, n, 2 * nb / 3, nb, prep);
            g->prepare(x, n, nb / 3, 2 * nb / 3, prep);
            g->prepare(x, n, 0, nb / 3, prep);
            const float *pd = (const float *)(prep + 32 * nb), *poff = pd + nb;
            for (int64_t b = 0; b < nb; b++) {
                int sum = 0;
                for (int j = 0; j < 32; j++) sum += aq[b].qs[j];
                bad_prep += memcmp(prep + 32 * b, aq[b].qs, 32) != 0;
                bad_prep += pd[b] != fr_f16_to_f32(aq[b].d);
                const float ofs = type == FR_TYPE_Q4_0 ? -8.0f : -128.0f;
                bad_prep += poff[b] != ofs * fr_f16_to_f32(aq[b].d) * (float)sum;
            }
            float y[5], y1;
            g->rows(n, w, rb, nr, prep, y);
            fr__ref_dequantize_q8_0(aq, af, n);
            for (int r = 0; r < nr; r++) {
                fr_kernels_ref(type)->dequantize(w + r * rb, wf, n);
                double mag = 0;
                for (int64_t k = 0; k < n; k++) mag += fabs((double)wf[k] * af[k]);
                const float want = fr_kernels_ref(type)->vec_dot(n, w + r * rb, aq);
                g->rows(n, w + r * rb, rb, 1, prep, &y1);
                if ((!(fabs((double)y[r] - want) <= tol_rel * mag) || y1 != y[r]) && bad++ < 3)
                    fprintf(stderr, "  %s n=%lld rep %d row %d: %.9g (alone %.9g), twin %.9g (tol %g)\n", name,
                            (long long)n, rep, r, y[r], y1, want, tol_rel * mag);
            }
        }
        fr_free_aligned(prep);
        fr_free(af); fr_free(wf); fr_free(x); fr_free(aq); fr_free(w);
    }
    CHECK_MSG(bad_prep == 0, "%s: %d prepared blocks differ", name, bad_prep);
    CHECK_MSG(bad == 0, "%s: %d outputs differ from the twin", name, bad);
}
#endif

/* F16 GEMV: the prepared activation is the twin's f16 rounding of x, as
 * floats (exact); y[r] within TOL_FDOT_REL·mag of the twin's vec_dot_f16
 * on those halves and bit-identical to the single-row result. */
/* rows4 (where a GEMV has it) against rows: for 1..4 activations at once,
 * every result equal bit for bit to the one-activation kernel's, over row
 * lengths with and without a partial group of blocks. */
static void check_gemv_rows4(const char *name, int type, const fr__gemv *g) {
    if (!g->rows4) return;
    const int64_t ls32[] = {32, 96, 224, 288, 896, 2048}, ls256[] = {256, 768, 2048};
    const bool k = g->blck == 256;
    const int64_t *ls = k ? ls256 : ls32;
    const size_t nls = k ? 3 : 6;
    const int nr = 7;
    int bad = 0;
    for (size_t li = 0; li < nls; li++) {
        const int64_t n = ls[li];
        const size_t rb = row_bytes(type, n), ps = (g->size(n) + 63) & ~(size_t)63;
        unsigned char *w = fr_malloc(nr * rb), *prep = fr_malloc_aligned(4 * ps);
        float *x = fr_malloc(4 * (size_t)n), *y1 = fr_malloc(4 * nr * sizeof(float)),
              *y4 = fr_malloc(4 * nr * sizeof(float));
        for (int r = 0; r < nr; r++) ktest_weight_row(type, w + r * rb, n, x);
        for (int t = 0; t < 4; t++) {
            ktest_fill(x, n, t == 1 ? 1e-3f : t == 2 ? 1e3f : 1.0f);
            g->prepare(x, n, 0, n / g->blck, prep + (size_t)t * ps);
            g->rows(n, w, rb, nr, prep + (size_t)t * ps, y1 + t * nr);
        }
        for (int na = 1; na <= 4; na++) {
            const void *p[4];
            float *out[4];
            for (int t = 0; t < na; t++) {
                p[t] = prep + (size_t)t * ps;
                out[t] = y4 + t * nr;
            }
            memset(y4, 0, 4 * nr * sizeof(float));
            g->rows4(n, w, rb, nr, p, na, out);
            if (memcmp(y4, y1, (size_t)na * nr * sizeof(float)) && bad++ < 3)
                fprintf(stderr, "  %s rows4 n=%lld na=%d differs from rows\n", name, (long long)n, na);
        }
        fr_free(y4); fr_free(y1); fr_free(x); fr_free_aligned(prep); fr_free(w);
    }
    CHECK_MSG(bad == 0, "%s: rows4 differs from rows in %d cases", name, bad);
}

static void check_gemv_f16(const char *name, const fr__gemv *g) {
    const int64_t ls[] = {1, 7, 8, 31, 33, 64, 100, 130, 1000, 2048};
    const int nr = 3;
    int bad = 0, bad_prep = 0;
    for (size_t li = 0; li < sizeof ls / sizeof ls[0]; li++) {
        const int64_t n = ls[li];
        const size_t rb = row_bytes(FR_TYPE_F16, n);
        unsigned char *w = fr_malloc(nr * rb);
        uint16_t *ah = fr_malloc(2 * (size_t)n);
        float *x = fr_malloc(4 * (size_t)n);
        float *prep = fr_malloc_aligned(g->size(n));
        for (int rep = 0; rep < 3; rep++) {
            for (int r = 0; r < nr; r++) ktest_weight_row(FR_TYPE_F16, w + r * rb, n, x);
            ktest_fill(x, n, rep == 1 ? 1e-3f : rep == 2 ? 1e3f : 1.0f);
            fr__ref_quantize_f16(x, ah, n);
            g->prepare(x, n, n / 2, n, prep);
            g->prepare(x, n, 0, n / 2, prep);
            for (int64_t k = 0; k < n; k++) bad_prep += prep[k] != fr_f16_to_f32(ah[k]);
            float y[3], y1;
            g->rows(n, w, rb, nr, prep, y);
            for (int r = 0; r < nr; r++) {
                const uint16_t *wr = (const uint16_t *)(w + r * rb);
                double mag = 0;
                for (int64_t k = 0; k < n; k++) mag += fabs((double)fr_f16_to_f32(wr[k]) * prep[k]);
                const float want = fr__ref_vec_dot_f16(n, wr, ah);
                g->rows(n, wr, rb, 1, prep, &y1);
                if ((!(fabs((double)y[r] - want) <= TOL_FDOT_REL * mag) || y1 != y[r]) && bad++ < 3)
                    fprintf(stderr, "  %s n=%lld row %d: %.9g (alone %.9g), twin %.9g\n", name, (long long)n, r,
                            y[r], y1, want);
            }
        }
        fr_free_aligned(prep);
        fr_free(x); fr_free(ah); fr_free(w);
    }
    CHECK_MSG(bad_prep == 0, "%s: %d prepared values differ", name, bad_prep);
    CHECK_MSG(bad == 0, "%s: %d outputs differ from the twin", name, bad);
}

#if defined(__x86_64__)
/* K-quant GEMV (Q8_K activations): the prepared codes, d and bsums (Q6_K)
 * or the int16 Σ per 32-element sub-block (Q4_K, codes in sub-block order
 * 0 2 1 3 4 6 5 7) are those of fr__avx2_quantize_q8_K; y[r] within
 * TOL_DOT_REL·mag of the twin's vec_dot (mag also counts the Q4_K mins
 * term, summed apart in floats), and bit-identical to the single row. */
static void check_gemv_q8_K(const char *name, int type, const fr__gemv *g) {
    const int64_t ls[] = {256, 768, 2048, 5632};
    static const int order[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    const int nr = 5;
    int bad = 0, bad_prep = 0;
    for (size_t li = 0; li < sizeof ls / sizeof ls[0]; li++) {
        const int64_t n = ls[li], nb = n / 256;
        const size_t rb = row_bytes(type, n);
        unsigned char *w = fr_malloc(nr * rb);
        fr_block_q8_K *aq = fr_malloc(row_bytes(FR_TYPE_Q8_K, n));
        float *x = fr_malloc(4 * (size_t)n), *wf = fr_malloc(4 * (size_t)n), *af = fr_malloc(4 * (size_t)n);
        unsigned char *prep = fr_malloc_aligned(g->size(n));
        for (int rep = 0; rep < 4; rep++) {
            for (int r = 0; r < nr; r++) ktest_weight_row(type, w + r * rb, n, x);
            if (rep == 3) memset(x, 0, 4 * (size_t)n);
            else ktest_fill(x, n, rep == 1 ? 1e-3f : rep == 2 ? 1e3f : 1.0f);
            fr__avx2_quantize_q8_K(x, aq, n);
            g->prepare(x, n, nb / 2, nb, prep);
            g->prepare(x, n, 0, nb / 2, prep);
            const float *pd = (const float *)(prep + 256 * nb);
            for (int64_t b = 0; b < nb; b++) {
                bad_prep += pd[b] != aq[b].d;
                const unsigned char *aux = (const unsigned char *)(pd + nb) + 32 * b;
                if (type == FR_TYPE_Q6_K) {
                    bad_prep += memcmp(prep + 256 * b, aq[b].qs, 256) != 0;
                    bad_prep += memcmp(aux, aq[b].bsums, 32) != 0;
                } else {
                    for (int j = 0; j < 16; j++) {
                        int16_t s;
                        memcpy(&s, aux + 2 * j, 2);
                        if (j < 8) bad_prep += memcmp(prep + 256 * b + 32 * j, aq[b].qs + 32 * order[j], 32) != 0;
                        bad_prep += s != (j < 8 ? aq[b].bsums[2 * j] + aq[b].bsums[2 * j + 1] : 0);
                    }
                }
            }
            float y[5], y1;
            g->rows(n, w, rb, nr, prep, y);
            fr__ref_dequantize_q8_K(aq, af, n);
            for (int r = 0; r < nr; r++) {
                const unsigned char *wr = w + r * rb;
                fr_kernels_ref(type)->dequantize(wr, wf, n);
                double mag = 0;
                for (int64_t k = 0; k < n; k++) mag += fabs((double)wf[k] * af[k]);
                if (type == FR_TYPE_Q4_K)
                    for (int64_t b = 0; b < nb; b++) {
                        const fr_block_q4_K *xb = (const fr_block_q4_K *)wr + b;
                        for (int j = 0; j < 8; j++) {
                            uint8_t sc, m;
                            fr__get_scale_min_k4(j, xb->scales, &sc, &m);
                            double sa = 0;
                            for (int k = 0; k < 32; k++) sa += fabs((double)af[256 * b + 32 * j + k]);
                            mag += fabs((double)fr_f16_to_f32(xb->dmin) * m) * sa;
                        }
                    }
                const float want = fr_kernels_ref(type)->vec_dot(n, wr, aq);
                g->rows(n, wr, rb, 1, prep, &y1);
                if ((!(fabs((double)y[r] - want) <= TOL_DOT_REL * mag) || y1 != y[r]) && bad++ < 3)
                    fprintf(stderr, "  %s n=%lld rep %d row %d: %.9g (alone %.9g), twin %.9g (tol %g)\n", name,
                            (long long)n, rep, r, y[r], y1, want, TOL_DOT_REL * mag);
            }
        }
        fr_free_aligned(prep);
        fr_free(af); fr_free(wf); fr_free(x); fr_free(aq); fr_free(w);
    }
    CHECK_MSG(bad_prep == 0, "%s: %d prepared values differ", name, bad_prep);
    CHECK_MSG(bad == 0, "%s: %d outputs differ from the twin", name, bad);
}
#endif

/* fr_matmul with one activation row takes the active GEMV: y equals
 * `rows` on the prepared row, bit for bit, with 1, 2 and 3 threads and an
 * odd row count (partial chunks). */
static void check_gemv_matmul(int type, int64_t K) {
    const fr__gemv *g = fr__kernels_gemv(type);
    const int64_t M = 203;
    const size_t rb = row_bytes(type, K);
    unsigned char *W = fr_malloc(rb * M);
    float *x = fr_malloc(4 * (size_t)K), *tmp = fr_malloc(4 * (size_t)K);
    float *want = fr_malloc(4 * M), *y = fr_malloc(4 * M);
    void *work = fr_malloc_aligned(fr_matmul_work_size(type, K, 1));
    void *prep = fr_malloc_aligned(g->size(K));
    for (int64_t r = 0; r < M; r++) ktest_weight_row(type, W + r * rb, K, tmp);
    ktest_fill(x, K, 1.0f);
    g->prepare(x, K, 0, K / g->blck, prep);
    g->rows(K, W, rb, M, prep, want);
    for (int nth = 1; nth <= 3; nth++) {
        fr_pool *pool = NULL;
        CHECK_INT(fr_pool_create(nth, &pool), 0);
        memset(y, 0, 4 * M);
        fr_matmul(pool, type, W, K, M, x, 1, y, M, work);
        CHECK_MSG(!memcmp(y, want, 4 * M), "%s K=%lld: matmul with %d threads differs from the GEMV",
                  fr_type_name(type), (long long)K, nth);
        fr_pool_destroy(pool);
    }
    fr_free_aligned(prep); fr_free_aligned(work);
    fr_free(y); fr_free(want); fr_free(tmp); fr_free(x); fr_free(W);
}

static void check_quant_exact(const char *name, int type, q_fn simd) {
    int64_t ls[8];
    const int nl = lengths(type, ls);
    int bad = 0;
    for (int li = 0; li < nl; li++) {
        const int64_t n = ls[li];
        const size_t rb = row_bytes(type, n);
        float *x = fr_malloc(4 * (size_t)n);
        unsigned char *a = fr_malloc(rb), *b = fr_malloc(rb);
        for (int rep = 0; rep < 4; rep++) {
            if (rep == 3) memset(x, 0, 4 * (size_t)n);
            else ktest_fill(x, n, rep == 1 ? 1e-4f : rep == 2 ? 300.0f : 1.0f);
            fr_kernels_ref(type)->quantize(x, a, n);
            memset(b, 0xAB, rb);
            simd(x, b, n);
            if (memcmp(a, b, rb) && bad++ < 3) fprintf(stderr, "  %s n=%lld rep %d differs\n", name, (long long)n, rep);
        }
        fr_free(b); fr_free(a); fr_free(x);
    }
    CHECK_MSG(bad == 0, "%s: %d rows differ from the twin", name, bad);
}

#if defined(__x86_64__)
static void check_quant_q8_0(void) {
    int64_t ls[8];
    const int nl = lengths(FR_TYPE_Q8_0, ls);
    int bad_d = 0, bad_q = 0;
    long diff = 0, total = 0;
    for (int li = 0; li < nl; li++) {
        const int64_t n = ls[li];
        float *x = fr_malloc(4 * (size_t)n);
        fr_block_q8_0 *a = fr_malloc(row_bytes(FR_TYPE_Q8_0, n)), *b = fr_malloc(row_bytes(FR_TYPE_Q8_0, n));
        for (int rep = 0; rep < 4; rep++) {
            if (rep == 3) memset(x, 0, 4 * (size_t)n);
            else ktest_fill(x, n, rep == 1 ? 1e-4f : rep == 2 ? 300.0f : 1.0f);
            fr__ref_quantize_q8_0(x, a, n);
            fr__avx2_quantize_q8_0(x, b, n);
            for (int64_t k = 0; k < n / 32; k++) {
                bad_d += a[k].d != b[k].d;
                for (int j = 0; j < 32; j++) {
                    int dq = abs(a[k].qs[j] - b[k].qs[j]);
                    bad_q += dq > TOL_Q8_0_CODE;
                    diff += dq != 0;
                    total++;
                }
            }
        }
        fr_free(b); fr_free(a); fr_free(x);
    }
    CHECK_MSG(bad_d == 0, "quantize_q8_0: %d scales differ", bad_d);
    CHECK_MSG(bad_q == 0, "quantize_q8_0: %d codes differ by more than %d", bad_q, TOL_Q8_0_CODE);
    CHECK_MSG(diff * 50 <= total, "quantize_q8_0: %ld of %ld codes differ", diff, total);

    /* exact ties: amax 127 → id 1; AVX rounds half to even */
    float t[32] = {127.0f, 0.5f, 1.5f, 2.5f, -2.5f, -0.5f, 3.49f};
    fr_block_q8_0 q;
    fr__avx2_quantize_q8_0(t, &q, 32);
    CHECK_INT(q.d, 0x3C00);
    CHECK_INT(q.qs[0], 127); CHECK_INT(q.qs[1], 0); CHECK_INT(q.qs[2], 2);
    CHECK_INT(q.qs[3], 2); CHECK_INT(q.qs[4], -2); CHECK_INT(q.qs[5], 0); CHECK_INT(q.qs[6], 3);
}
#endif

#if defined(__x86_64__)
/* quantize_q8_1: as quantize_q8_0, and where a block's codes agree with
 * the twin's, s must agree bit for bit (same d, same Σq). */
static void check_quant_q8_1(void) {
    const int64_t n = 2048;
    float *x = fr_malloc(4 * (size_t)n);
    fr_block_q8_1 *a = fr_malloc(row_bytes(FR_TYPE_Q8_1, n)), *b = fr_malloc(row_bytes(FR_TYPE_Q8_1, n));
    int bad = 0, same = 0;
    for (int rep = 0; rep < 3; rep++) {
        ktest_fill(x, n, rep == 1 ? 1e-3f : 2.0f);
        fr__ref_quantize_q8_1(x, a, n);
        fr__avx2_quantize_q8_1(x, b, n);
        for (int64_t k = 0; k < n / 32; k++) {
            bad += a[k].d != b[k].d;
            int diff = 0;
            for (int j = 0; j < 32; j++) {
                bad += abs(a[k].qs[j] - b[k].qs[j]) > TOL_Q8_0_CODE;
                diff |= a[k].qs[j] != b[k].qs[j];
            }
            if (!diff) { same++; bad += a[k].s != b[k].s; }
        }
    }
    CHECK_MSG(bad == 0, "quantize_q8_1: %d mismatches", bad);
    CHECK_MSG(same > 150, "quantize_q8_1: only %d of 192 blocks with identical codes", same);
    fr_free(b); fr_free(a); fr_free(x);
}
#endif

#if defined(__x86_64__)
/* quantize_bf16 on the edge values of fr_f32_to_bf16. */
static void check_bf16_edges(void) {
    float x[16];
    uint32_t bits[16] = {0x3F800000, 0x3F808000, 0x3F818000, 0x3F808001, 0x80000000, 0x7F800000,
                         0xFF800000, 0x7F7FFFFF, 0x00010000, 0x12345678, 0x1234C000, 0xC0400000,
                         0x7FC00000, 0x7F800001, 0xFFC00001, 0x00000001};
    memcpy(x, bits, sizeof x);
    uint16_t a[16], b[16];
    fr__ref_quantize_bf16(x, a, 16);
    fr__avx2_quantize_bf16(x, b, 16);
    CHECK_MSG(!memcmp(a, b, sizeof a), "quantize_bf16 edge values differ from the twin");
}
#endif

#if defined(__aarch64__)
/* The CPU's levels (fr_cpu from getauxval; under qemu-user the -cpu
 * model's): the best is the one kernels.c reports, each present one can
 * be forced, FRUGAL_ISA caps the start-up choice, and FRUGAL_EXPECT_ISA
 * (set by scripts/test-arm.sh from the -cpu model) is the best it must find. */
static void check_arm_levels(const fr_cpu_features *cpu) {
    const bool dp = cpu->neon && cpu->dotprod && cpu->fp16, mm = dp && cpu->i8mm;
    const char *best = mm ? "i8mm" : dp ? "dotprod" : cpu->neon ? "neon" : "ref";
    const char *isa = getenv("FRUGAL_ISA"), *expect = getenv("FRUGAL_EXPECT_ISA");
    const char *start = fr_kernels_isa();            /* the level chosen at start-up */
    printf("kernels: best %s, active %s (FRUGAL_ISA=%s)\n", fr_kernels_best_isa(), start, isa ? isa : "");
    CHECK_STR(fr_kernels_best_isa(), best);
    if (expect && *expect) CHECK_STR(fr_kernels_best_isa(), expect);
    if (isa && *isa && fr_kernels_force_isa(isa) == 0) CHECK_STR(start, isa);   /* capped */
    else CHECK_STR(start, best);
    static const char *const names[] = {"ref", "neon", "dotprod", "i8mm"};
    const bool has[] = {true, cpu->neon, dp, mm};
    for (int i = 0; i < 4; i++) {
        CHECK_INT(fr_kernels_force_isa(names[i]), has[i] ? 0 : FR_EUNSUPP);
        if (has[i]) CHECK_STR(fr_kernels_isa(), names[i]);
    }
    CHECK_INT(fr_kernels_force_isa("avx2"), FR_EUNSUPP);   /* not this architecture's */
    /* each level has what it and the levels below set (arm/table.c) */
    if (cpu->neon) {
        fr_kernels_force_isa("neon");
        CHECK(fr_kernels_get(FR_TYPE_F32)->vec_dot == fr__neon_vec_dot_f32);
        CHECK(fr_kernels_get(FR_TYPE_Q8_0)->vec_dot == fr__neon_vec_dot_q8_0_q8_0);
    }
    if (dp) {
        fr_kernels_force_isa("dotprod");
        CHECK(fr_kernels_get(FR_TYPE_F32)->vec_dot == fr__neon_vec_dot_f32);
        CHECK(fr_kernels_get(FR_TYPE_Q8_0)->vec_dot == fr__dotprod_vec_dot_q8_0_q8_0);
    }
    fr_kernels_force_ref(true);
    CHECK(fr_kernels_get(FR_TYPE_F32)->vec_dot == fr__ref_vec_dot_f32);
    fr_kernels_force_isa(NULL);
}
#endif

int main(void) {
    const fr_cpu_features *cpu = fr_cpu();
    ktest_seed(1234);
    size_t mem0 = fr_mem_in_use();
#if defined(__aarch64__)
    check_arm_levels(cpu);
    if (!cpu->neon) {
        printf("skipped: this CPU lacks Advanced SIMD; arm/*_neon.c not tested\n");
    } else {
        check_dot("neon vec_dot_f32", FR_TYPE_F32, fr__neon_vec_dot_f32, TOL_FDOT_REL);
    }
    if (!(cpu->neon && cpu->dotprod && cpu->fp16)) {
        printf("skipped: this CPU lacks dotprod/fp16; arm/*_dotprod.c not tested\n");
    } else {
        check_dot("dotprod vec_dot_q8_0_q8_0", FR_TYPE_Q8_0, fr__dotprod_vec_dot_q8_0_q8_0, TOL_DOT_REL);
    }
#elif defined(__x86_64__)
    if (!(cpu->avx2 && cpu->fma && cpu->f16c)) {
        printf("skipped: this CPU lacks AVX2/FMA/F16C; x86/quants_avx2.c not tested\n");
    } else {
        check_dequant("avx2 dequantize_f16", FR_TYPE_F16, fr__avx2_dequantize_f16);
        check_dequant("avx2 dequantize_q4_0", FR_TYPE_Q4_0, fr__avx2_dequantize_q4_0);
        check_dequant("avx2 dequantize_q8_0", FR_TYPE_Q8_0, fr__avx2_dequantize_q8_0);
        check_dequant("avx2 dequantize_q4_K", FR_TYPE_Q4_K, fr__avx2_dequantize_q4_K);
        check_dequant("avx2 dequantize_q6_K", FR_TYPE_Q6_K, fr__avx2_dequantize_q6_K);

        check_quant_exact("avx2 quantize_f16", FR_TYPE_F16, fr__avx2_quantize_f16);
        check_quant_exact("avx2 quantize_q8_K", FR_TYPE_Q8_K, fr__avx2_quantize_q8_K);
        check_quant_q8_0();
        check_quant_q8_1();
        check_quant_exact("avx2 quantize_bf16", FR_TYPE_BF16, fr__avx2_quantize_bf16);
        check_bf16_edges();
        check_dequant("avx2 dequantize_bf16", FR_TYPE_BF16, fr__avx2_dequantize_bf16);

        check_dot("avx2 vec_dot_f32", FR_TYPE_F32, fr__avx2_vec_dot_f32, TOL_FDOT_REL);
        check_dot("avx2 vec_dot_f16", FR_TYPE_F16, fr__avx2_vec_dot_f16, TOL_FDOT_REL);
        check_dot("avx2 vec_dot_bf16", FR_TYPE_BF16, fr__avx2_vec_dot_bf16, TOL_FDOT_REL);
        check_dot("avx2 vec_dot_q4_1_q8_1", FR_TYPE_Q4_1, fr__avx2_vec_dot_q4_1_q8_1, TOL_DOT_REL);
        check_dot("avx2 vec_dot_q5_1_q8_1", FR_TYPE_Q5_1, fr__avx2_vec_dot_q5_1_q8_1, TOL_DOT_REL);
        check_dot("avx2 vec_dot_q4_0_q8_0", FR_TYPE_Q4_0, fr__avx2_vec_dot_q4_0_q8_0, TOL_DOT_REL);
        check_dot("avx2 vec_dot_q8_0_q8_0", FR_TYPE_Q8_0, fr__avx2_vec_dot_q8_0_q8_0, TOL_DOT_REL);
        check_dot("avx2 vec_dot_q4_K_q8_K", FR_TYPE_Q4_K, fr__avx2_vec_dot_q4_K_q8_K, 0);
        check_dot("avx2 vec_dot_q6_K_q8_K", FR_TYPE_Q6_K, fr__avx2_vec_dot_q6_K_q8_K, 0);
        check_dot("avx2 vec_dot_q5_0_q8_0", FR_TYPE_Q5_0, fr__avx2_vec_dot_q5_0_q8_0, TOL_DOT_REL);
        check_dot("avx2 vec_dot_q5_K_q8_K", FR_TYPE_Q5_K, fr__avx2_vec_dot_q5_K_q8_K, 0);
        check_dot("avx2 vec_dot_q2_K_q8_K", FR_TYPE_Q2_K, fr__avx2_vec_dot_q2_K_q8_K, 0);
        check_dot("avx2 vec_dot_q3_K_q8_K", FR_TYPE_Q3_K, fr__avx2_vec_dot_q3_K_q8_K, 0);
        check_dot4_same("avx2 vec_dot4_q4_0_q8_0", FR_TYPE_Q4_0, fr__avx2_vec_dot4_q4_0_q8_0,
                        fr__avx2_vec_dot_q4_0_q8_0, NULL);
        check_dot4_same("avx2 vec_dot4_q5_0_q8_0", FR_TYPE_Q5_0, fr__avx2_vec_dot4_q5_0_q8_0,
                        fr__avx2_vec_dot_q5_0_q8_0, NULL);

        /* the dispatch table picks them */
        fr_kernels_force_ref(false);
        CHECK(fr_kernels_get(FR_TYPE_Q4_0)->vec_dot == fr__avx2_vec_dot_q4_0_q8_0 ||
              strcmp(fr_kernels_isa(), "avx2") != 0);
        fr_kernels_force_ref(true);
        CHECK_STR(fr_kernels_isa(), "ref");
        CHECK(fr_kernels_get(FR_TYPE_Q4_0)->vec_dot == fr__ref_vec_dot_q4_0_q8_0);
        fr_kernels_force_ref(false);
    }
    if (!(cpu->avx2 && cpu->fma && cpu->f16c && cpu->avx512f && cpu->avx512bw && cpu->avx512vl &&
          cpu->avx512vnni)) {
        printf("skipped: this CPU lacks AVX-512 F/BW/VL/VNNI; x86/quants_avx512.c not tested\n");
    } else {
        /* bit-identical to the AVX2 versions, hence within their tolerances of the twins */
        check_dot("avx512 vec_dot_q4_0_q8_0", FR_TYPE_Q4_0, fr__avx512_vec_dot_q4_0_q8_0, TOL_DOT_REL);
        check_dot("avx512 vec_dot_q8_0_q8_0", FR_TYPE_Q8_0, fr__avx512_vec_dot_q8_0_q8_0, TOL_DOT_REL);
        check_dot4_same("avx512 vec_dot4_q4_0_q8_0", FR_TYPE_Q4_0, fr__avx512_vec_dot4_q4_0_q8_0,
                        fr__avx512_vec_dot_q4_0_q8_0, fr__avx2_vec_dot_q4_0_q8_0);
        check_dot4_same("avx512 vec_dot_q8_0_q8_0", FR_TYPE_Q8_0, NULL, fr__avx512_vec_dot_q8_0_q8_0,
                        fr__avx2_vec_dot_q8_0_q8_0);
        check_dot4x4("avx512 vec_dot4x4_q4_0_q8_0", FR_TYPE_Q4_0, fr__avx512_vec_dot4x4_q4_0_q8_0,
                     fr__ref_vec_dot_q4_0_q8_0);
        check_gemv_q8_0("avx512 gemv_q4_0", FR_TYPE_Q4_0, &fr__avx512_gemv_q4_0, TOL_DOT_REL);
        check_gemv_q8_0("avx512 gemv_q8_0", FR_TYPE_Q8_0, &fr__avx512_gemv_q8_0, TOL_DOT_REL);
        check_gemv_rows4("avx512 gemv_q4_0", FR_TYPE_Q4_0, &fr__avx512_gemv_q4_0);
        check_gemv_rows4("avx512 gemv_q8_0", FR_TYPE_Q8_0, &fr__avx512_gemv_q8_0);
        check_gemv_rows4("avx512 gemv_q6_K", FR_TYPE_Q6_K, &fr__avx512_gemv_q6_K);
        check_gemv_f16("avx512 gemv_f16", &fr__avx512_gemv_f16);
        check_gemv_q8_K("avx512 gemv_q4_K", FR_TYPE_Q4_K, &fr__avx512_gemv_q4_K);
        check_gemv_q8_K("avx512 gemv_q6_K", FR_TYPE_Q6_K, &fr__avx512_gemv_q6_K);
        fr_kernels_force_ref(false);
        check_gemv_matmul(FR_TYPE_Q4_0, 544);
        check_gemv_matmul(FR_TYPE_Q8_0, 544);
        check_gemv_matmul(FR_TYPE_F16, 100);
        check_gemv_matmul(FR_TYPE_Q4_K, 768);
        check_gemv_matmul(FR_TYPE_Q6_K, 768);
        fr_kernels_force_ref(false);
        CHECK(fr__kernels_gemv(FR_TYPE_Q4_0) == &fr__avx512_gemv_q4_0);
        fr_kernels_force_ref(true);
        CHECK(fr__kernels_gemv(FR_TYPE_Q4_0) == NULL);
        /* work sizes cover the GEMV's layout in either mode: 64 elements
         * of Q4_0 = 2 blocks of 32 codes + d + offset, rounded up to 64
         * bytes (each prepared row starts aligned) */
        CHECK(fr__kernels_gemv_best(FR_TYPE_Q4_0) == &fr__avx512_gemv_q4_0);
        CHECK_INT(fr_matmul_work_size(FR_TYPE_Q4_0, 64, 1), 128);
        CHECK_INT(fr_matmul_work_size(FR_TYPE_F16, 10, 1), 64);
        fr_kernels_force_ref(false);
        CHECK_INT(fr_matmul_work_size(FR_TYPE_Q4_0, 64, 1), 128);
        fr_kernels_force_ref(true);
        fr_kernels_force_ref(false);
        CHECK_STR(fr_kernels_isa(), "avx512");
    }
#endif
    CHECK_INT(fr_mem_in_use(), mem0);
    return harness_done();
}
