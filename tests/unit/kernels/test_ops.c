/*
 * test_ops.c — the forward-pass ops (kernels/ops.h): the reference twins
 * against hand-checked values and plain double-precision formulas, and
 * every SIMD op against its twin on random inputs of awkward sizes (odd
 * lengths, tails of 1..15 lanes, row counts around the layout switch at
 * FR_ATT_RMIN, partial tiles, head sizes that are and are not multiples of
 * 16, masked keys).
 *
 * Tolerances, each with its reason:
 *   TOL_EXP_ULP 2        the SIMD exp vs libm's expf (Cephes polynomial,
 *                        two-step range reduction; llama.cpp's is ~1.5 ulp);
 *   TOL_NORM_REL 1e-6    rmsnorm: the same double sum in another order and
 *                        the same float products (a 1-ulp scale change);
 *   TOL_SILU_REL 1e-6    silu_mul: exp within 2 ulp, then one division;
 *   TOL_DOT_REL 1e-5     att_qk / att_pv: float FMA chains in another order,
 *                        relative to Σ|terms|;
 *   TOL_ROPE_REL 2.5e-7  rope: one FMA instead of a product and a sum,
 *                        relative to |x_i| + |x_pair|;
 *   TOL_SOFTMAX_REL 1e-6 att_softmax: exp within 2 ulp; the maxima and the
 *                        zeroed (masked) weights must be identical;
 *   TOL_NORM_REL 1e-6    layernorm too, relative to |(x−μ)·scale·w| + |b|
 *                        (the double sums in another order move the mean and
 *                        the scale by an ulp);
 *   TOL_GELU 1e-6        gelu, relative to max(|x|, 1e-3): the SIMD form
 *                        x/(1 + e^(−2u)) against the twin's tanhf formula,
 *                        whose 1 + tanh cancels for negative x (an absolute
 *                        error of a few 1e-8·|x|);
 *   exact (0)            add, scale, f16_rows (one rounding / none).
 * Each SIMD table the CPU has (AVX2, AVX-512) is compared in turn; one it
 * lacks is skipped with a message; the twins are checked either way.
 */
#include <math.h>
#include <stdint.h>

#include "harness.h"
#include "ktest.h"

#include "base/mem.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "kernels/ops_int.h"
#include "kernels/types.h"

#define TOL_EXP_ULP 2
#define TOL_NORM_REL 1e-6
#define TOL_SILU_REL 1e-6
#define TOL_DOT_REL 1e-5
#define TOL_SOFTMAX_REL 1e-6
#define TOL_ROPE_REL 2.5e-7
#define TOL_GELU 1e-6

/* The SIMD table under test (each one the CPU has, in turn) and its name. */
static const fr_ops *simd_table;
static const char *simd_name;

static bool have_simd(void) { return simd_table != NULL; }

static const fr_ops *simd(void) { return simd_table; }

#if defined(__x86_64__) /* for test_exp */
static int32_t ulp_diff(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    if (ia < 0) ia = INT32_MIN - ia;
    if (ib < 0) ib = INT32_MIN - ib;
    int64_t d = (int64_t)ia - ib;
    return (int32_t)(d < 0 ? -d : d);
}
#endif

static void fill(float *x, int64_t n, float s) {
    for (int64_t i = 0; i < n; i++) x[i] = ktest_normal(s);
}

/* Hand-checked values of the twins. */
static void test_ref_values(void) {
    const fr_ops *r = fr_ops_ref();
    /* rmsnorm of (3, 4): mean square 12.5, scale 1/sqrt(12.5) */
    float x[2] = {3, 4}, w[2] = {1, 2}, y[2];
    r->rmsnorm(y, x, w, 2, 0.0f);
    CHECK_NEAR(y[0], 3 / sqrt(12.5), 1e-6);
    CHECK_NEAR(y[1], 8 / sqrt(12.5), 1e-6);
    /* silu(0) = 0, silu(x)·1 = x·sigmoid(x) */
    float g[3] = {0, 1, -2}, u[3] = {5, 1, 3};
    r->silu_mul(g, u, 3);
    CHECK_NEAR(g[0], 0, 0);
    CHECK_NEAR(g[1], 1 / (1 + exp(-1.0)), 1e-7);
    CHECK_NEAR(g[2], 3 * -2 / (1 + exp(2.0)), 1e-6);
    /* one tile of 3 keys, 1 row, key 2 masked: weights e^(s - max) */
    float k[3 * 2] = {1, 0, 0, 1, 1, 1}, q[2] = {2, 1}, st[3], qs[2];
    const float *qrow[1] = {q};
    fr_ops_att_put_q(qs, 1, 2, qrow);
    r->att_qk(3, 2, k, 1, 1, qs, 0.5f, st);
    CHECK_NEAR(st[0], 1.0, 0);
    CHECK_NEAR(st[1], 0.5, 0);
    CHECK_NEAR(st[2], 1.5, 0);
    float m = -INFINITY, l = 0, corr;
    int32_t nv = 2;
    r->att_softmax(3, 1, 1, st, &nv, &m, &l, &corr);
    CHECK_NEAR(m, 1.0, 0);
    CHECK_NEAR(corr, 0, 0);
    CHECK_NEAR(st[0], 1, 0);
    CHECK_NEAR(st[1], exp(-0.5), 1e-7);
    CHECK_NEAR(st[2], 0, 0);
    CHECK_NEAR(l, 1 + exp(-0.5), 1e-6);
    float v[3 * 2] = {1, 2, 3, 4, 100, 100}, o[2] = {7, 7};
    float *orow[1] = {o};
    r->att_pv(3, 2, v, 1, 1, st, &corr, orow);
    CHECK_NEAR(o[0], 1 + 3 * exp(-0.5), 1e-6);
    CHECK_NEAR(o[1], 2 + 4 * exp(-0.5), 1e-6);
    /* layernorm of (1, 2, 3, 6): mean 3, variance 3.5 */
    float lx[4] = {1, 2, 3, 6}, lw[4] = {1, 2, 1, 1}, lb[4] = {0, 0, 1, -1}, ly[4];
    r->layernorm(ly, lx, lw, lb, 4, 0.0f);
    CHECK_NEAR(ly[0], -2 / sqrt(3.5), 1e-6);
    CHECK_NEAR(ly[1], -2 / sqrt(3.5), 1e-6);
    CHECK_NEAR(ly[2], 1, 1e-6);
    CHECK_NEAR(ly[3], 3 / sqrt(3.5) - 1, 1e-6);
    r->layernorm(lx, lx, lw, NULL, 4, 0.5f); /* in place, no bias, eps */
    CHECK_NEAR(lx[3], 3 / sqrt(4.0), 1e-6);
    /* gelu: 0 at 0, ~x for large x, ~0 for very negative x, and the
     * tanh formula in between */
    float gx[5] = {0, 1, -1, 12, -12};
    r->gelu(gx, 5);
    CHECK_NEAR(gx[0], 0, 0);
    CHECK_NEAR(gx[1], 0.5 * (1 + tanh(0.7978845608 * (1 + 0.044715))), 1e-6);
    CHECK_NEAR(gx[2], -0.5 * (1 - tanh(0.7978845608 * (1 + 0.044715))), 1e-6);
    CHECK_NEAR(gx[3], 12, 1e-6);
    CHECK_NEAR(gx[4], 0, 1e-6);
    uint16_t h[3] = {0x3c00, 0xc000, 0x3555};
    float hf[3];
    r->f16_rows(h, 1, 3, 1, hf);
    CHECK_NEAR(hf[0], 1, 0);
    CHECK_NEAR(hf[1], -2, 0);
    CHECK_NEAR(hf[2], 0.333251953125, 0);
}

#if defined(__x86_64__)
/* exp of 16 values with the table's ISA */
static void simd_exp16(const float *x, float *y) {
    if (simd_table == fr__ops_avx512()) {
        fr__avx512_exp16(x, y);
    } else {
        fr__avx2_exp8(x, y);
        fr__avx2_exp8(x + 8, y + 8);
    }
}

static void test_exp(void) {
    if (!have_simd()) return;
    float x[16], y[16];
    int32_t worst = 0;
    for (int it = 0; it < 20000; it++) {
        for (int i = 0; i < 16; i++) x[i] = ktest_uniform(-87.0f, 88.5f);
        if (it == 0) {
            const float special[16] = {0, -0.0f, 1, -1, 0.5f, -0.3465736f, 0.3465736f, 88.7f,
                                       -87.3f, 1e-8f, -1e-8f, 10, -10, 50, -50, 0.6931472f};
            memcpy(x, special, sizeof x);
        }
        simd_exp16(x, y);
        for (int i = 0; i < 16; i++) {
            int32_t d = ulp_diff(y[i], expf(x[i]));
            if (d > worst) worst = d;
        }
    }
    CHECK_MSG(worst <= TOL_EXP_ULP, "%s exp: worst %d ulp", simd_name, (int)worst);
    printf("%s exp: worst %d ulp over 320000 values\n", simd_name, (int)worst);
    /* far below and above the range, and -inf: 0, 0, +inf */
    const float edge[16] = {-INFINITY, -200, -104, 89, 100, INFINITY, -87.3f, 88,
                            88.72f, -87.5f, 0, 0, 0, 0, 0, 0};
    simd_exp16(edge, y);
    CHECK_NEAR(y[0], 0, 0);
    CHECK_NEAR(y[1], 0, 0);
    CHECK(y[2] >= 0 && y[2] < 1e-40);
    CHECK(isinf(y[3]) && y[3] > 0);
    CHECK(isinf(y[4]) && y[4] > 0);
    CHECK(isinf(y[5]) && y[5] > 0);
    CHECK(ulp_diff(y[6], expf(-87.3f)) <= TOL_EXP_ULP); /* smallest normal results */
    CHECK(ulp_diff(y[7], expf(88)) <= TOL_EXP_ULP);
    CHECK(ulp_diff(y[8], expf(88.72f)) <= TOL_EXP_ULP); /* largest finite */
    CHECK(y[9] >= 0 && y[9] <= 1.1 * expf(-87.5f)); /* a denormal or 0 */
}
#endif

static void test_rows(void) {
    if (!have_simd()) return;
    const fr_ops *s = simd(), *r = fr_ops_ref();
    const int64_t lens[] = {1, 7, 15, 16, 17, 33, 256, 2048, 5001};
    enum { MAXN = 5001 };
    float *x = fr_malloc(MAXN * sizeof *x), *w = fr_malloc(MAXN * sizeof *w);
    float *a = fr_malloc(MAXN * sizeof *a), *b = fr_malloc(MAXN * sizeof *b);
    float *u = fr_malloc(MAXN * sizeof *u);
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        int64_t n = lens[li];
        fill(x, n, 3.0f);
        fill(w, n, 1.0f);
        fill(u, n, 2.0f);
        x[0] = 40.0f; /* a large entry */

        r->rmsnorm(a, x, w, n, 1e-5f);
        s->rmsnorm(b, x, w, n, 1e-5f);
        double worst = 0;
        for (int64_t i = 0; i < n; i++) {
            double e = fabs((double)a[i] - b[i]) / (fabs(a[i]) + 1e-30);
            if (!(e <= worst)) worst = e; /* NaN too */
        }
        CHECK_MSG(worst <= TOL_NORM_REL, "%s rmsnorm n=%lld: rel %g", simd_name, (long long)n, worst);
        memcpy(b, x, (size_t)n * sizeof *b); /* in place */
        s->rmsnorm(b, b, w, n, 1e-5f);
        bool same = true;
        for (int64_t i = 0; i < n; i++) same &= fabsf(a[i] - b[i]) <= TOL_NORM_REL * fabsf(a[i]);
        CHECK_MSG(same, "rmsnorm in place n=%lld", (long long)n);

        memcpy(a, x, (size_t)n * sizeof *a);
        memcpy(b, x, (size_t)n * sizeof *b);
        r->add(a, w, n);
        s->add(b, w, n);
        CHECK_MSG(!memcmp(a, b, (size_t)n * sizeof *a), "add n=%lld", (long long)n);
        r->scale(a, 0.37f, n);
        s->scale(b, 0.37f, n);
        CHECK_MSG(!memcmp(a, b, (size_t)n * sizeof *a), "scale n=%lld", (long long)n);

        for (int64_t i = 0; i < n; i++) a[i] = b[i] = ktest_uniform(-30.0f, 30.0f);
        if (n > 3) a[1] = b[1] = -100.0f, a[2] = b[2] = 100.0f; /* exp over/underflow */
        r->silu_mul(a, u, n);
        s->silu_mul(b, u, n);
        worst = 0;
        for (int64_t i = 0; i < n; i++) {
            double e = fabs((double)a[i] - b[i]) / (fabs(a[i]) + 1e-30);
            if (a[i] == b[i]) e = 0;
            if (!(e <= worst)) worst = e; /* NaN too */
        }
        CHECK_MSG(worst <= TOL_SILU_REL, "silu_mul n=%lld: rel %g", (long long)n, worst);

        /* layernorm with and without bias, out of place and in place; a
         * large common offset makes the mean matter */
        for (int64_t i = 0; i < n; i++) x[i] = ktest_normal(2.0f) + 5.0f;
        x[0] = 60.0f;
        for (int nb = 0; nb < 2; nb++) {
            const float *bias = nb ? u : NULL;
            r->layernorm(a, x, w, bias, n, 1e-12f);
            memcpy(b, x, (size_t)n * sizeof *b);
            s->layernorm(b, b, w, bias, n, 1e-12f);
            double mean = 0, var = 0;
            for (int64_t i = 0; i < n; i++) mean += x[i];
            mean /= (double)n;
            for (int64_t i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
            double sc = n > 1 ? 1 / sqrt(var / (double)n + 1e-12) : 0;
            worst = 0;
            for (int64_t i = 0; i < n; i++) {
                double mag = fabs((x[i] - mean) * sc * w[i]) + (bias ? fabs(bias[i]) : 0) + 1e-30;
                double e = fabs((double)a[i] - b[i]) / mag;
                if (!(e <= worst)) worst = e;
            }
            CHECK_MSG(worst <= TOL_NORM_REL, "%s layernorm n=%lld bias %d: rel %g", simd_name,
                      (long long)n, nb, worst);
        }

        /* gelu over [-12, 12] plus far tails */
        for (int64_t i = 0; i < n; i++) x[i] = a[i] = b[i] = ktest_uniform(-12.0f, 12.0f);
        if (n > 3) x[1] = a[1] = b[1] = -200.0f, x[2] = a[2] = b[2] = 200.0f;
        r->gelu(a, n);
        s->gelu(b, n);
        worst = 0;
        for (int64_t i = 0; i < n; i++) {
            double e = fabs((double)a[i] - b[i]) / fmax(fabs(x[i]), 1e-3);
            if (!(e <= worst)) worst = e; /* NaN too */
        }
        CHECK_MSG(worst <= TOL_GELU, "%s gelu n=%lld: rel %g", simd_name, (long long)n, worst);
    }
    fr_free(x);
    fr_free(w);
    fr_free(a);
    fr_free(b);
    fr_free(u);
}

/* One item of R rows, hd, against the twins: qk, softmax (two tiles, the
 * second continuing the first's m and l), pv. */
static void check_tiles(const fr_ops *s, int R, int hd, int nk) {
    const fr_ops *r = fr_ops_ref();
    int rp = fr_ops_att_rp(R);
    size_t nq = (size_t)fr_ops_att_qs_floats(R, hd);
    float *k = fr_malloc((size_t)FR_ATT_BK * (size_t)hd * sizeof *k);
    float *v = fr_malloc((size_t)FR_ATT_BK * (size_t)hd * sizeof *v);
    float *qs = fr_calloc(nq, sizeof *qs), *row = fr_malloc((size_t)hd * sizeof *row);
    float *st_r = fr_malloc((size_t)FR_ATT_BK * (size_t)rp * sizeof *st_r);
    float *st_s = fr_malloc((size_t)FR_ATT_BK * (size_t)rp * sizeof *st_s);
    float *o_r = fr_malloc((size_t)R * (size_t)hd * sizeof *o_r);
    float *o_s = fr_malloc((size_t)R * (size_t)hd * sizeof *o_s);
    float *o_p = fr_malloc((size_t)R * (size_t)hd * sizeof *o_p);
    float *m_r = fr_malloc((size_t)R * 6 * sizeof(float)), *l_r = m_r + R, *c_r = l_r + R;
    float *m_s = c_r + R, *l_s = m_s + R, *c_s = l_s + R;
    int32_t *nv = fr_malloc((size_t)R * sizeof *nv);
    float **or_r = fr_malloc((size_t)R * sizeof *or_r), **or_s = fr_malloc((size_t)R * sizeof *or_s);
    float *qa = fr_malloc((size_t)R * (size_t)hd * sizeof *qa);
    float **qp = fr_malloc((size_t)R * sizeof *qp);
    float scale = 1.0f / sqrtf((float)hd);
    double sum_abs_q = 0;

    for (int i = 0; i < R; i++) {
        fill(row, hd, 1.0f);
        for (int d = 0; d < hd; d++) sum_abs_q += fabsf(row[d]);
        for (int d = 0; d < hd; d++) qa[(size_t)i * (size_t)hd + (size_t)d] = row[d];
        qp[i] = qa + (size_t)i * (size_t)hd;
        m_r[i] = m_s[i] = -INFINITY;
        l_r[i] = l_s[i] = 0;
        or_r[i] = o_r + (size_t)i * (size_t)hd;
        or_s[i] = o_s + (size_t)i * (size_t)hd;
    }
    fr_ops_att_put_q(qs, R, hd, (const float *const *)qp);
    for (size_t i = 0; i < (size_t)R * (size_t)hd; i++) o_r[i] = o_s[i] = 0;

    for (int tile = 0; tile < 2; tile++) {
        fill(k, (int64_t)nk * hd, 2.0f);
        fill(v, (int64_t)nk * hd, 1.0f);
        r->att_qk(nk, hd, k, R, rp, qs, scale, st_r);
        s->att_qk(nk, hd, k, R, rp, qs, scale, st_s);
        double worst = 0;
        for (int j = 0; j < nk; j++) {
            double bound = 0;
            for (int d = 0; d < hd; d++) bound += fabsf(k[j * hd + d]);
            bound *= scale * sum_abs_q; /* ≥ Σ|k·q| of any row */
            for (int i = 0; i < R; i++) {
                double e = fabs((double)st_r[j * rp + i] - st_s[j * rp + i]) / bound;
                if (!(e <= worst)) worst = e; /* NaN too */
            }
        }
        CHECK_MSG(worst <= TOL_DOT_REL, "%s att_qk R=%d hd=%d nk=%d: rel %g", simd_name, R, hd, nk, worst);

        /* the same scores for both, then the softmax; some rows see no key,
         * some all, some a part */
        for (int j = 0; j < nk; j++)
            for (int i = 0; i < R; i++) st_s[j * rp + i] = st_r[j * rp + i];
        for (int i = 0; i < R; i++) nv[i] = (int32_t)(ktest_u32() % (uint32_t)(nk + 5)) - 2;
        if (tile == 0) nv[0] = nk; /* row 0 has a finite max after tile 0 */
        r->att_softmax(nk, R, rp, st_r, nv, m_r, l_r, c_r);
        s->att_softmax(nk, R, rp, st_s, nv, m_s, l_s, c_s);
        bool same_m = true, zeros = true;
        double we = 0;
        for (int i = 0; i < R; i++) {
            same_m &= m_r[i] == m_s[i] || (isinf(m_r[i]) && isinf(m_s[i]));
            double e = fabs((double)l_r[i] - l_s[i]) / (fabs(l_r[i]) + 1e-30);
            if (l_r[i] == l_s[i]) e = 0;
            double ec = fabs((double)c_r[i] - c_s[i]) / (fabs(c_r[i]) + 1e-30);
            if (c_r[i] == c_s[i]) ec = 0;
            if (!(e <= we)) we = e;
            if (!(ec <= we)) we = ec;
            for (int j = 0; j < nk; j++) {
                float a = st_r[j * rp + i], b = st_s[j * rp + i];
                if (j >= nv[i]) zeros &= a == 0 && b == 0;
                double ep = a == b ? 0 : fabs((double)a - b) / (fabs(a) + 1e-30);
                if (!(ep <= we)) we = ep;
            }
        }
        CHECK_MSG(same_m, "att_softmax R=%d nk=%d: maxima differ", R, nk);
        CHECK_MSG(zeros, "att_softmax R=%d nk=%d: masked weights not 0", R, nk);
        CHECK_MSG(we <= TOL_SOFTMAX_REL, "%s att_softmax R=%d nk=%d: rel %g", simd_name, R, nk, we);

        /* pv on the same weights */
        for (int j = 0; j < nk; j++)
            for (int i = 0; i < R; i++) st_s[j * rp + i] = st_r[j * rp + i];
        for (int i = 0; i < R; i++) c_s[i] = c_r[i];
        for (size_t i = 0; i < (size_t)R * (size_t)hd; i++) o_p[i] = o_r[i] * c_r[i / (size_t)hd];
        r->att_pv(nk, hd, v, R, rp, st_r, c_r, or_r);
        s->att_pv(nk, hd, v, R, rp, st_s, c_s, or_s);
        worst = 0;
        for (int i = 0; i < R; i++) {
            for (int d = 0; d < hd; d++) {
                double bound = 0;
                for (int j = 0; j < nk; j++) bound += fabs(st_r[j * rp + i] * v[j * hd + d]);
                bound += fabs(o_p[(size_t)i * (size_t)hd + (size_t)d]) + 1e-30;
                double e = fabs((double)o_r[(size_t)i * (size_t)hd + (size_t)d] -
                                o_s[(size_t)i * (size_t)hd + (size_t)d]) / bound;
                if (!(e <= worst)) worst = e; /* NaN too */
            }
        }
        CHECK_MSG(worst <= TOL_DOT_REL, "%s att_pv R=%d hd=%d nk=%d: rel %g", simd_name, R, hd, nk, worst);
        /* continue from identical state */
        for (size_t i = 0; i < (size_t)R * (size_t)hd; i++) o_s[i] = o_r[i];
        for (int i = 0; i < R; i++) m_s[i] = m_r[i], l_s[i] = l_r[i];
    }
    fr_free(k);
    fr_free(v);
    fr_free(qs);
    fr_free(row);
    fr_free(st_r);
    fr_free(st_s);
    fr_free(o_r);
    fr_free(o_s);
    fr_free(o_p);
    fr_free(m_r);
    fr_free(nv);
    fr_free(or_r);
    fr_free(or_s);
    fr_free(qa);
    fr_free(qp);
}

static void test_tiles(void) {
    if (!have_simd()) return;
    const fr_ops *s = simd();
    const int Rs[] = {1, 2, 5, 7, 8, 9, 16, 17, 33, 64, 65};
    const int hds[] = {64, 128, 80, 24, 8};
    const int nks[] = {1, 3, 4, 5, 63, FR_ATT_BK};
    for (size_t a = 0; a < sizeof Rs / sizeof Rs[0]; a++)
        for (size_t b = 0; b < sizeof hds / sizeof hds[0]; b++)
            for (size_t c = 0; c < sizeof nks / sizeof nks[0]; c++)
                check_tiles(s, Rs[a], hds[b], nks[c]);
}

static void test_f16_rows(void) {
    if (!have_simd()) return;
    const fr_ops *s = simd(), *r = fr_ops_ref();
    enum { ROWS = 5, STRIDE = 300 };
    uint16_t src[ROWS * STRIDE];
    for (int i = 0; i < ROWS * STRIDE; i++) src[i] = fr_f32_to_f16(ktest_normal(100.0f));
    src[3] = 0x7c00;  /* +inf */
    src[4] = 0x0001;  /* smallest denormal */
    const int ns[] = {1, 15, 16, 17, 64, 80, 128, 300};
    float a[ROWS * 300], b[ROWS * 300];
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        r->f16_rows(src, STRIDE, ROWS, ns[i], a);
        s->f16_rows(src, STRIDE, ROWS, ns[i], b);
        CHECK_MSG(!memcmp(a, b, (size_t)ROWS * (size_t)ns[i] * sizeof(float)), "f16_rows n=%d",
                  ns[i]);
    }
}

/* RoPE: the twin on a hand-checked quarter turn, then SIMD vs twin for
 * both pairings, full and partial rotation, several heads. */
static void test_rope(void) {
    const fr_ops *r = fr_ops_ref();
    /* θ = 90°: (x0, x1) → (−x1, x0) for NORM pairs and for neox halves */
    float x[4] = {1, 2, 3, 4}, cs[4] = {0, 0, 0, 0}, sn[4] = {-1, 1, -1, 1};
    r->rope(x, 1, 4, 4, cs, sn, false);
    CHECK_NEAR(x[0], -2, 0);
    CHECK_NEAR(x[1], 1, 0);
    CHECK_NEAR(x[2], -4, 0);
    CHECK_NEAR(x[3], 3, 0);
    float y[4] = {1, 2, 3, 4}, sn2[4] = {-1, -1, 1, 1};
    r->rope(y, 1, 4, 4, cs, sn2, true);
    CHECK_NEAR(y[0], -3, 0);
    CHECK_NEAR(y[1], -4, 0);
    CHECK_NEAR(y[2], 1, 0);
    CHECK_NEAR(y[3], 2, 0);
    if (!have_simd()) return;
    const fr_ops *s = simd();
    struct { int n_heads, hd, n_rot; } cases[] = {{1, 64, 64}, {3, 64, 32}, {2, 128, 128},
                                                   {5, 80, 80}, {2, 64, 24}, {1, 16, 16}};
    enum { MAXX = 5 * 128 };
    float a[MAXX], b[MAXX], c[128], sv[128], orig[MAXX];
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int neox = 0; neox < 2; neox++) {
            int n = cases[ci].n_heads * cases[ci].hd, nr = cases[ci].n_rot, half = nr / 2;
            fill(orig, n, 2.0f);
            memcpy(a, orig, (size_t)n * sizeof *a);
            memcpy(b, orig, (size_t)n * sizeof *b);
            for (int k = 0; k < half; k++) {
                float th = ktest_uniform(-100.0f, 100.0f);
                int i0 = neox ? k : 2 * k, i1 = neox ? k + half : 2 * k + 1;
                c[i0] = c[i1] = cosf(th);
                sv[i0] = -sinf(th);
                sv[i1] = sinf(th);
            }
            r->rope(a, cases[ci].n_heads, cases[ci].hd, nr, c, sv, neox);
            s->rope(b, cases[ci].n_heads, cases[ci].hd, nr, c, sv, neox);
            double worst = 0;
            for (int i = 0; i < n; i++) {
                int h = i / cases[ci].hd, d = i % cases[ci].hd;
                int pair = d >= nr ? d : neox ? (d < half ? d + half : d - half) : d ^ 1;
                double bound = fabs(orig[i]) + fabs(orig[h * cases[ci].hd + pair]) + 1e-30;
                double e = fabs((double)a[i] - b[i]) / bound;
                if (!(e <= worst)) worst = e; /* NaN too */
                if (d >= nr && (a[i] != orig[i] || b[i] != orig[i])) worst = 1; /* untouched */
            }
            CHECK_MSG(worst <= TOL_ROPE_REL, "rope heads %d hd %d n_rot %d neox %d: rel %g",
                      cases[ci].n_heads, cases[ci].hd, nr, neox, worst);
        }
}

/* fr_ops_get follows the kernels' choice of twins. */
static void test_dispatch(void) {
    fr_kernels_force_ref(true);
    CHECK(fr_ops_get() == fr_ops_ref());
    fr_kernels_force_ref(false);
    const char *best = fr_kernels_best_isa();
    if (strcmp(best, "ref") != 0) CHECK(fr_ops_get() != fr_ops_ref());
    else CHECK(fr_ops_get() == fr_ops_ref());
    CHECK(fr_ops_get() == fr__ops_for(best));
    CHECK_STR(fr_ops_isa(), best);
    CHECK(fr__ops_for("no-such-isa") == NULL);
}

int main(void) {
    ktest_seed(7);
    test_ref_values();
    test_rope(); /* its twin checks */
#if defined(__aarch64__)
    static const char *const names[] = {"neon", "dotprod", "i8mm"};
#else
    static const char *const names[] = {"avx2", "avx512"};
#endif
    struct { const fr_ops *t; const char *name; } isas[sizeof names / sizeof names[0]];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        isas[i].t = fr__ops_for(names[i]);
        isas[i].name = names[i];
    }
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        simd_table = isas[i].t;
        simd_name = isas[i].name;
        if (!simd_table) {
            printf("no %s: its SIMD ops skipped\n", simd_name);
            continue;
        }
        int before = harness_failed;
#if defined(__x86_64__)
        test_exp();
#endif
        test_rows();
        test_tiles();
        test_f16_rows();
        test_rope();
        printf("%s ops: %s\n", simd_name, harness_failed == before ? "match the twins" : "FAIL");
    }
    simd_table = NULL;
    test_dispatch();
    return harness_done();
}
