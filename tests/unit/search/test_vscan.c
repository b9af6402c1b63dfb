/*
 * test_vscan.c — the exact vector scan (search/vscan.h):
 *
 *   kernels      ref, avx2 and avx512 give the same integers (exact: the
 *                sums are of int8 products in int32, no saturation) on
 *                random codes, on all ±127 (the extremes of vpmaddubsw's
 *                pairs and of vpdpbusd), alternating signs and zeros, for
 *                many row counts (the 4-row blocks and the tail) and row
 *                widths; against a sum computed here in int64;
 *   selection    fr__vscan_dot_for: NULL for an unknown ISA and for one
 *                the CPU lacks (the CPU's features faked through a rename
 *                of fr_cpu in the included vscan.c), the twin always;
 *   quantize     codes in [-127, 127] with 127 at the largest |v|, padding
 *                zeroed, the error an upper bound of ||v - s·q|| and close
 *                to it; normalize; the zero vector;
 *   top-k        EXACTLY the brute-force float32 top-k (same double dot,
 *                ties by lower index) on random unit vectors: all, under
 *                an allowed bitmap, k > n, duplicates (ties), near-copies
 *                whose approximate order differs from the exact one, and
 *                hand-made scores where the winner has the worst
 *                approximate score; n_exact = the exact() calls; exact()'s
 *                error and FR_ENOMEM come back, with nothing leaked.
 */
#include "harness.h"

#include <stdint.h>

#include "base/sysinfo.h"

/* vscan.c with its fr_cpu() calls sent to fake_cpu(): the ISA checks
 * under a CPU that lacks a feature */
static fr_cpu_features fake;
static bool faking;
const fr_cpu_features *fake_cpu(void);
#define fr_cpu fake_cpu
#include "search/vscan.c"
#undef fr_cpu
const fr_cpu_features *fake_cpu(void) {
    return faking ? &fake : fr_cpu();
}

/* ---- random numbers (deterministic) ---- */

static uint64_t rng = 88172645463325252ull;
static uint64_t next_u64(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static double uniform(void) { return (double)(next_u64() >> 11) / 9007199254740992.0; }
static float gauss(void) {
    double u = uniform(), v = uniform();
    if (u < 1e-300) u = 1e-300;
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

/* ---- kernels ---- */

static int64_t dot_i64(const int8_t *a, const int8_t *b, size_t n) {
    int64_t s = 0;
    for (size_t i = 0; i < n; i++) s += (int64_t)a[i] * b[i];
    return s;
}

enum { FILL_RANDOM, FILL_MAX, FILL_MIN, FILL_ALT, FILL_SPARSE, FILL_COUNT };

static void fill_codes(int8_t *p, size_t n, int kind, int row) {
    for (size_t i = 0; i < n; i++) {
        switch (kind) {
        case FILL_RANDOM: p[i] = (int8_t)((int)(next_u64() % 255) - 127); break;
        case FILL_MAX: p[i] = 127; break;
        case FILL_MIN: p[i] = -127; break;
        case FILL_ALT: p[i] = (int8_t)(((i + (size_t)row) & 1) ? 127 : -127); break;
        default: p[i] = next_u64() % 4 ? 0 : (int8_t)((next_u64() & 1) ? 127 : -127); break;
        }
    }
}

#if defined(__aarch64__)
static const char *const isas[] = {"ref", "neon", "dotprod", "i8mm"};
#else
static const char *const isas[] = {"ref", "avx2", "avx512"};
#endif
#define N_ISAS ((int)(sizeof isas / sizeof isas[0]))

static void test_kernels(void) {
    static const size_t dims[] = {64, 128, 192, 384, 448, 768, 1024, 4096};
    static const size_t ns[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 100};
    int ran[4] = {0};
    long bad = 0;
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        const size_t dp = dims[di];
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            const size_t n = ns[ni];
            for (int qk = 0; qk < FILL_COUNT; qk++)
                for (int rk = 0; rk < FILL_COUNT; rk++) {
                    if (qk != rk && qk != FILL_RANDOM && rk != FILL_RANDOM) continue;
                    int8_t *q = fr_malloc_aligned(dp);
                    /* rows at an odd offset: the kernels use unaligned loads */
                    int8_t *buf = fr_malloc(n * dp + 64 + 1), *rows = buf + 1;
                    int32_t *out = fr_malloc((n + 1) * sizeof *out);
                    fill_codes(q, dp, qk, 0);
                    for (size_t r = 0; r < n; r++) fill_codes(rows + r * dp, dp, rk, (int)r);
                    for (int k = 0; k < N_ISAS; k++) {
                        fr_vscan_dot_fn f = fr__vscan_dot_for(isas[k]);
                        if (!f) continue;
                        ran[k]++;
                        out[n] = 0x5A5A5A5A;            /* the kernels write n results, no more */
                        f(q, rows, n, dp, out);
                        for (size_t r = 0; r < n; r++)
                            if (out[r] != dot_i64(q, rows + r * dp, dp) && bad++ < 5)
                                fprintf(stderr, "  %s dim_pad %zu n %zu fill %d/%d row %zu: %d, want %lld\n",
                                        isas[k], dp, n, qk, rk, r, out[r], (long long)dot_i64(q, rows + r * dp, dp));
                        if (out[n] != 0x5A5A5A5A && bad++ < 5) fprintf(stderr, "  %s wrote past n\n", isas[k]);
                    }
                    fr_free(out);
                    fr_free(buf);
                    fr_free_aligned(q);
                }
        }
    }
    CHECK_INT(bad, 0);
    CHECK(ran[0] > 0);
    for (int k = 1; k < N_ISAS; k++)
        if (!ran[k]) printf("test_vscan: no %s on this CPU, its kernel not checked\n", isas[k]);
    /* the extremes: 4096 × 127·127 = 66,064,384, and −(that) */
    int8_t *q = fr_malloc(4096), *r = fr_malloc(4 * 4096);
    int32_t out[4];
    memset(q, 127, 4096);
    for (int k = 0; k < 4; k++) memset(r + k * 4096, k & 1 ? -127 : 127, 4096);
    for (int k = 0; k < N_ISAS; k++) {
        fr_vscan_dot_fn f = fr__vscan_dot_for(isas[k]);
        if (!f) continue;
        f(q, r, 4, 4096, out);
        CHECK_INT(out[0], 66064384);
        CHECK_INT(out[1], -66064384);
        f(q, r + 4096, 1, 4096, out);         /* the one-row tail */
        CHECK_INT(out[0], -66064384);
    }
    fr_free(q);
    fr_free(r);
}

#if defined(__x86_64__)
static void test_select(void) {
    const fr_cpu_features *c = fr_cpu();
    bool avx2 = c->avx2 && c->fma && c->f16c;
    bool avx512 = avx2 && c->avx512f && c->avx512bw && c->avx512vl && c->avx512vnni;
    CHECK(fr__vscan_dot_for("ref") == fr__vscan_dot_ref);
    CHECK(fr__vscan_dot_for("avx2") == (avx2 ? fr__vscan_dot_avx2 : NULL));
    CHECK(fr__vscan_dot_for("avx512") == (avx512 ? fr__vscan_dot_avx512 : NULL));
    CHECK(fr__vscan_dot_for("neon") == NULL);     /* not this architecture's */
    CHECK(fr__vscan_dot_for("") == NULL);
    /* the active one follows the kernels' level */
    CHECK_STR(fr__vscan_isa(), fr_kernels_isa());
    CHECK(fr__vscan_dot() == fr__vscan_dot_for(fr__vscan_isa()));
    fr_kernels_force_ref(true);
    CHECK_STR(fr__vscan_isa(), "ref");
    CHECK(fr__vscan_dot() == fr__vscan_dot_ref);
    fr_kernels_force_ref(false);
    /* CPUs without the features: AVX-512 F/BW/VL but no VNNI (Skylake-X),
     * AVX without AVX2, nothing */
    faking = true;
    fake = *c;
    fake.avx512vnni = false;
    CHECK(fr__vscan_dot_for("avx512") == NULL);
    CHECK(fr__vscan_dot_for("avx2") == (avx2 ? fr__vscan_dot_avx2 : NULL));
    fake.avx512vnni = c->avx512vnni;
    fake.avx512bw = false;
    CHECK(fr__vscan_dot_for("avx512") == NULL);
    memset(&fake, 0, sizeof fake);
    fake.avx = true;
    CHECK(fr__vscan_dot_for("avx2") == NULL);
    CHECK(fr__vscan_dot_for("avx512") == NULL);
    CHECK(fr__vscan_dot_for("ref") == fr__vscan_dot_ref);
    /* whatever the kernels say, the scan never picks a kernel it lacks */
    CHECK(fr__vscan_dot() != NULL);
    CHECK(strcmp(fr__vscan_isa(), "ref") == 0);
    faking = false;
}
#elif defined(__aarch64__)
/* The arm levels: a level the CPU lacks gives NULL; one it has gives its
 * fr__vscan_arm entry, else the nearest level below's, else the twin. */
static fr_vscan_dot_fn arm_expect(int level) {
    for (int l = level; l > 0; l--)
        if (fr__vscan_arm[l]) return fr__vscan_arm[l];
    return fr__vscan_dot_ref;
}

static void test_select(void) {
    const fr_cpu_features *c = fr_cpu();
    const bool dp = c->neon && c->dotprod && c->fp16, mm = dp && c->i8mm;
    CHECK(fr__vscan_dot_for("ref") == fr__vscan_dot_ref);
    CHECK(fr__vscan_dot_for("neon") == (c->neon ? arm_expect(1) : NULL));
    CHECK(fr__vscan_dot_for("dotprod") == (dp ? arm_expect(2) : NULL));
    CHECK(fr__vscan_dot_for("i8mm") == (mm ? arm_expect(3) : NULL));
    CHECK(fr__vscan_dot_for("avx2") == NULL);      /* not this architecture's */
    CHECK(fr__vscan_dot_for("") == NULL);
    CHECK_STR(fr__vscan_isa(), fr_kernels_isa());
    CHECK(fr__vscan_dot() == fr__vscan_dot_for(fr__vscan_isa()));
    fr_kernels_force_ref(true);
    CHECK_STR(fr__vscan_isa(), "ref");
    CHECK(fr__vscan_dot() == fr__vscan_dot_ref);
    fr_kernels_force_ref(false);
    /* a CPU with dotprod but no fp16 (none is known; the level needs both),
     * and one without Advanced SIMD */
    faking = true;
    fake = *c;
    fake.fp16 = false;
    CHECK(fr__vscan_dot_for("dotprod") == NULL);
    CHECK(fr__vscan_dot_for("i8mm") == NULL);
    memset(&fake, 0, sizeof fake);
    CHECK(fr__vscan_dot_for("neon") == NULL);
    CHECK(fr__vscan_dot_for("ref") == fr__vscan_dot_ref);
    CHECK(fr__vscan_dot() != NULL);
    CHECK(strcmp(fr__vscan_isa(), "ref") == 0);
    faking = false;
}
#else
static void test_select(void) {
    CHECK(fr__vscan_dot_for("ref") == fr__vscan_dot_ref);
}
#endif

/* ---- quantize, normalize ---- */

static void random_unit(float *v, int32_t dim) {
    do {
        for (int32_t i = 0; i < dim; i++) v[i] = gauss();
    } while (!fr__vscan_normalize(v, dim));
}

static void test_quantize(void) {
    static const int32_t dims[] = {1, 3, 64, 100, 384, 385, 768};
    long bad = 0;
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        const int32_t dim = dims[di];
        const size_t dp = fr__vscan_pad(dim);
        CHECK_INT(dp % 64, 0);
        CHECK(dp >= (size_t)dim && dp < (size_t)dim + 64);
        float *v = fr_malloc(4 * (size_t)dim);
        int8_t *q = fr_malloc(dp);
        for (int rep = 0; rep < 50; rep++) {
            random_unit(v, dim);
            double ss = 0;
            for (int32_t i = 0; i < dim; i++) ss += (double)v[i] * v[i];
            if (fabs(ss - 1) > 1e-6 && bad++ < 5) fprintf(stderr, "  dim %d: norm² %.9g\n", dim, ss);
            if (rep % 5 == 1) for (int32_t i = 0; i < dim; i++) v[i] *= 1e-3f;    /* any scale */
            memset(q, 0x55, dp);
            float s, e;
            fr__vscan_quantize(v, dim, dp, q, &s, &e);
            float amax = 0;
            int max_code = 0;
            for (int32_t i = 0; i < dim; i++) {
                amax = fmaxf(amax, fabsf(v[i]));
                if (abs(q[i]) > max_code) max_code = abs(q[i]);
                if (q[i] == INT8_MIN && bad++ < 5) fprintf(stderr, "  code %d\n", q[i]);
            }
            for (size_t i = (size_t)dim; i < dp; i++)
                if (q[i] != 0 && bad++ < 5) fprintf(stderr, "  dim %d: padding [%zu] = %d\n", dim, i, q[i]);
            if (max_code != 127 && bad++ < 5) fprintf(stderr, "  dim %d: largest code %d\n", dim, max_code);
            if (fabs(s - amax / 127.0) > 1e-6 * amax && bad++ < 5) fprintf(stderr, "  scale %g\n", s);
            /* the error: an upper bound, and a tight one */
            double e2 = 0;
            for (int32_t i = 0; i < dim; i++) {
                double d = (double)v[i] - (double)s * q[i];
                e2 += d * d;
                /* each code is the nearest: |v - s·q| <= s/2 (a hair more: float) */
                if (fabs(d) > 0.5001 * s && bad++ < 5) fprintf(stderr, "  code %d off by %g·s\n", q[i], d / s);
            }
            if (!(e >= sqrt(e2) && e <= sqrt(e2) * (1 + 1e-6) + 1e-30) && bad++ < 5)
                fprintf(stderr, "  dim %d: error %.9g, ||v - s·q|| %.9g\n", dim, e, sqrt(e2));
        }
        fr_free(q);
        fr_free(v);
    }
    CHECK_INT(bad, 0);
    /* zero: no scale, no error, zero codes; normalize refuses it */
    float z[70] = {0};
    int8_t qz[128];
    memset(qz, 1, sizeof qz);
    float s = 1, e = 1;
    fr__vscan_quantize(z, 70, 128, qz, &s, &e);
    CHECK(s == 0 && e == 0);
    bool zero = true;
    for (int i = 0; i < 128; i++) zero &= qz[i] == 0;
    CHECK(zero);
    CHECK(!fr__vscan_normalize(z, 70));
    z[3] = NAN;
    CHECK(!fr__vscan_normalize(z, 70));
    z[3] = INFINITY;
    CHECK(!fr__vscan_normalize(z, 70));
    z[3] = -4;
    CHECK(fr__vscan_normalize(z, 70));
    CHECK(z[3] == -1.0f);
    /* one element: code ±127 exactly, no error */
    float one = -0.25f;
    int8_t q1[64];
    fr__vscan_quantize(&one, 1, 64, q1, &s, &e);
    CHECK_INT(q1[0], -127);
    CHECK_NEAR(s, 0.25 / 127, 1e-9);
    CHECK(e < 1e-7);
    /* the dot in double, index order */
    float a[3] = {1e8f, 1, -1e8f}, b[3] = {1, 1, 1};
    CHECK(fr__vscan_dot_f32(a, b, 3) == 1.0);
}

/* ---- top-k ---- */

typedef struct set {
    int32_t dim;
    size_t dp, n;
    float *v;           /* [n][dim] unit vectors */
    int8_t *q;          /* [n][dp] */
    float *scale, *err; /* [n] */
    float *x;           /* [dim] the query */
    int8_t *qx;         /* [dp] */
    float sx, ex;
    float *approx;      /* [n] */
    long calls;
    long fail_at;       /* exact() fails at this call (from 1); 0 never */
} set;

static int exact_fn(void *ud, size_t idx, double *score) {
    set *s = ud;
    if (++s->calls == s->fail_at) return fr_errf(FR_EIO, "exact: failing on purpose");
    if (idx >= s->n) return fr_errf(FR_EINTERNAL, "exact: idx %zu of %zu", idx, s->n);
    *score = fr__vscan_dot_f32(s->x, s->v + idx * (size_t)s->dim, s->dim);
    return 0;
}

/* Quantize every vector and the query, and the approximate scores with
 * the active kernel (as the index computes them: float s_x·s_v·dot). */
static void prepare(set *s) {
    s->dp = fr__vscan_pad(s->dim);
    s->q = fr_malloc(s->n * s->dp + 1);
    s->scale = fr_malloc(4 * s->n + 4);
    s->err = fr_malloc(4 * s->n + 4);
    s->approx = fr_malloc(4 * s->n + 4);
    s->qx = fr_malloc(s->dp);
    for (size_t i = 0; i < s->n; i++)
        fr__vscan_quantize(s->v + i * (size_t)s->dim, s->dim, s->dp, s->q + i * s->dp, &s->scale[i], &s->err[i]);
    fr__vscan_quantize(s->x, s->dim, s->dp, s->qx, &s->sx, &s->ex);
    int32_t *dots = fr_malloc(4 * s->n + 4);
    fr__vscan_dot()(s->qx, s->q, s->n, s->dp, dots);
    for (size_t i = 0; i < s->n; i++) s->approx[i] = s->sx * s->scale[i] * (float)dots[i];
    fr_free(dots);
}

static void set_free(set *s) {
    fr_free(s->v);
    fr_free(s->q);
    fr_free(s->scale);
    fr_free(s->err);
    fr_free(s->approx);
    fr_free(s->x);
    fr_free(s->qx);
}

static set random_set(size_t n, int32_t dim) {
    set s = {.dim = dim, .n = n};
    s.v = fr_malloc(4 * n * (size_t)dim + 4);
    s.x = fr_malloc(4 * (size_t)dim);
    for (size_t i = 0; i < n; i++) random_unit(s.v + i * (size_t)dim, dim);
    random_unit(s.x, dim);
    prepare(&s);
    return s;
}

static int by_score(const void *a, const void *b) {
    const fr_vscan_hit *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static bool bit(const uint8_t *m, size_t i) { return !m || (m[i >> 3] >> (i & 7) & 1); }

/* The brute-force reference: every allowed vector's exact score, sorted;
 * returns how many (at most k) went to want. */
static size_t brute(const set *s, const uint8_t *allowed, size_t k, fr_vscan_hit *want) {
    fr_vscan_hit *all = fr_malloc((s->n + 1) * sizeof *all);
    size_t m = 0;
    for (size_t i = 0; i < s->n; i++)
        if (bit(allowed, i)) all[m++] = (fr_vscan_hit){i, fr__vscan_dot_f32(s->x, s->v + i * (size_t)s->dim, s->dim)};
    qsort(all, m, sizeof *all, by_score);
    size_t r = m < k ? m : k;
    memcpy(want, all, r * sizeof *all);
    fr_free(all);
    return r;
}

/* topk vs brute force on s; returns n_exact. */
static size_t check_topk(set *s, const uint8_t *allowed, size_t k, const char *what, int line) {
    fr_vscan_hit *got = fr_malloc((k + 1) * sizeof *got), *want = fr_malloc((k + 1) * sizeof *want);
    size_t n_got = 12345, n_exact = 12345;
    s->calls = 0;
    int rc = fr__vscan_topk(s->approx, s->err, allowed, s->n, s->ex, k, exact_fn, s, got, &n_got, &n_exact);
    size_t n_want = brute(s, allowed, k, want);
    CHECK_MSG(rc == 0, "line %d %s: rc %d", line, what, rc);
    CHECK_MSG(n_got == n_want, "line %d %s (n %zu k %zu): %zu hits, want %zu", line, what, s->n, k, n_got, n_want);
    size_t bad = 0;
    for (size_t i = 0; i < n_got && i < n_want; i++)
        if ((got[i].idx != want[i].idx || got[i].score != want[i].score) && bad++ < 3)
            fprintf(stderr, "  line %d %s: hit %zu: idx %zu score %.17g, want idx %zu score %.17g\n", line, what,
                    i, got[i].idx, got[i].score, want[i].idx, want[i].score);
    CHECK_MSG(bad == 0, "line %d %s (n %zu k %zu): %zu hits differ from the brute force", line, what, s->n, k, bad);
    CHECK_MSG((long)n_exact == s->calls, "line %d %s: n_exact %zu, %ld exact() calls", line, what, n_exact,
              s->calls);
    fr_free(got);
    fr_free(want);
    return n_exact;
}

static void test_topk_random(void) {
    static const size_t ns[] = {1, 2, 10, 37, 100, 1000, 5000};
    static const size_t ks[] = {1, 3, 10, 50, 100};
    static const int32_t dims[] = {8, 64, 384};
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
        for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
            set s = random_set(ns[ni], dims[di]);
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
                size_t k = ks[ki];
                size_t ne = check_topk(&s, NULL, k, "random", __LINE__);
                /* the bound prunes: far fewer exact scores than vectors */
                if (s.n == 5000 && dims[di] == 384 && k == 10)
                    CHECK_MSG(ne < 500, "n 5000 k 10: %zu exact scores", ne);
                /* an allowed bitmap: half, a tenth, a few, none */
                uint8_t *m = fr_calloc((s.n + 7) / 8 + 1, 1);
                static const int every[] = {2, 10, 997};
                for (int e = 0; e < 3; e++) {
                    memset(m, 0, (s.n + 7) / 8 + 1);
                    for (size_t i = 0; i < s.n; i++)
                        if (next_u64() % (uint64_t)every[e] == 0) m[i >> 3] |= (uint8_t)(1u << (i & 7));
                    check_topk(&s, m, k, "allowed", __LINE__);
                }
                memset(m, 0, (s.n + 7) / 8 + 1);
                check_topk(&s, m, k, "none allowed", __LINE__);
                /* the bits past n are ignored */
                memset(m, 0xFF, (s.n + 7) / 8);
                check_topk(&s, m, k, "all allowed", __LINE__);
                fr_free(m);
            }
            /* k > n: everything, sorted */
            check_topk(&s, NULL, s.n + 5, "k > n", __LINE__);
            set_free(&s);
        }
}

/* Duplicates: vector i is base[i % 40], so every score appears n/40
 * times and the k-th is tied; the lower indices must win. */
static void test_topk_ties(void) {
    set s = {.dim = 64, .n = 1200};
    s.v = fr_malloc(4 * s.n * 64);
    s.x = fr_malloc(4 * 64);
    for (size_t i = 0; i < 40; i++) random_unit(s.v + i * 64, 64);
    for (size_t i = 40; i < s.n; i++) memcpy(s.v + i * 64, s.v + (i % 40) * 64, 4 * 64);
    random_unit(s.x, 64);
    prepare(&s);
    for (size_t k = 1; k <= 100; k += 7) check_topk(&s, NULL, k, "ties", __LINE__);
    uint8_t m[150] = {0};
    for (size_t i = 0; i < s.n; i += 3) m[i >> 3] |= (uint8_t)(1u << (i & 7));
    check_topk(&s, m, 20, "ties allowed", __LINE__);
    set_free(&s);
    /* every vector the same: the first k indices */
    s = (set){.dim = 64, .n = 500};
    s.v = fr_malloc(4 * s.n * 64);
    s.x = fr_malloc(4 * 64);
    random_unit(s.v, 64);
    for (size_t i = 1; i < s.n; i++) memcpy(s.v + i * 64, s.v, 4 * 64);
    random_unit(s.x, 64);
    prepare(&s);
    fr_vscan_hit out[10];
    size_t n_out, n_exact;
    CHECK_INT(fr__vscan_topk(s.approx, s.err, NULL, s.n, s.ex, 10, exact_fn, &s, out, &n_out, &n_exact), 0);
    CHECK_INT(n_out, 10);
    bool first = true;
    for (size_t i = 0; i < n_out; i++) first &= out[i].idx == i;
    CHECK(first);
    set_free(&s);
}

/* Near-copies of one vector: their exact scores differ by less than the
 * quantization error, so the approximate order is a shuffle of the exact
 * one and the exact top-k lies partly outside the approximate top 2k+16:
 * the rescoring by the bound must find it. */
static void test_topk_adversarial(void) {
    const int32_t dim = 384;
    set s = {.dim = dim, .n = 3000};
    s.v = fr_malloc(4 * s.n * (size_t)dim);
    s.x = fr_malloc(4 * (size_t)dim);
    float *base = fr_malloc(4 * (size_t)dim);
    random_unit(base, dim);
    for (size_t i = 0; i < s.n; i++) {
        float *v = s.v + i * (size_t)dim;
        for (int32_t d = 0; d < dim; d++) v[d] = base[d] + 0.0002f * gauss();
        fr__vscan_normalize(v, dim);
    }
    /* the query near the base too, so the scores are high and close */
    for (int32_t d = 0; d < dim; d++) s.x[d] = base[d] + 0.5f * gauss() / sqrtf((float)dim);
    fr__vscan_normalize(s.x, dim);
    prepare(&s);
    const size_t k = 10;
    /* how far apart the two orders are: the exact top k's worst rank by
     * approximate score */
    fr_vscan_hit want[10];
    brute(&s, NULL, k, want);
    size_t worst = 0;
    for (size_t j = 0; j < k; j++) {
        size_t rank = 0;
        for (size_t i = 0; i < s.n; i++)
            if (s.approx[i] > s.approx[want[j].idx] || (s.approx[i] == s.approx[want[j].idx] && i < want[j].idx))
                rank++;
        if (rank > worst) worst = rank;
    }
    CHECK_MSG(worst >= 2 * k + 16, "not adversarial: the exact top %zu is within the approximate top %zu", k,
              worst + 1);
    size_t ne = check_topk(&s, NULL, k, "near-copies", __LINE__);
    CHECK(ne > 2 * k + 16);
    check_topk(&s, NULL, 1, "near-copies k 1", __LINE__);
    check_topk(&s, NULL, 100, "near-copies k 100", __LINE__);
    fr_free(base);
    set_free(&s);
}

/* Hand-made scores (no vectors): exact() returns want[i]; every
 * approx[i] obeys the bound |exact - approx| <= (1 + q_err)·err + q_err. */
typedef struct hand {
    const double *score;
    long calls, fail_at;
} hand;

static int hand_exact(void *ud, size_t idx, double *score) {
    hand *h = ud;
    if (++h->calls == h->fail_at) return fr_errf(FR_EIO, "hand: failing on purpose");
    *score = h->score[idx];
    return 0;
}

static void test_topk_hand(void) {
    enum { N = 1000 };
    static float approx[N], err[N];
    static double score[N];
    /* everyone 0.5 with a small error; the last one approximately 0.1
     * with a large error and exactly 0.55: it wins from the last place */
    for (int i = 0; i < N; i++) {
        approx[i] = 0.5f;
        err[i] = 0.01f;
        score[i] = 0.5 - 1e-6 * i;
    }
    approx[N - 1] = 0.1f;
    err[N - 1] = 0.5f;
    score[N - 1] = 0.55;
    hand h = {score, 0, 0};
    fr_vscan_hit out[3];
    size_t n_out = 0, n_exact = 0;
    CHECK_INT(fr__vscan_topk(approx, err, NULL, N, 0.001f, 3, hand_exact, &h, out, &n_out, &n_exact), 0);
    CHECK_INT(n_out, 3);
    CHECK_INT(out[0].idx, N - 1);
    CHECK_INT(out[1].idx, 0);
    CHECK_INT(out[2].idx, 1);
    CHECK_INT(n_exact, h.calls);
    /* with a small error it cannot reach 0.5: skipped, and only the heap
     * (2k + 16 candidates) is rescored */
    err[N - 1] = 0.01f;
    score[N - 1] = 0.1;
    h.calls = 0;
    CHECK_INT(fr__vscan_topk(approx, err, NULL, N, 0.001f, 3, hand_exact, &h, out, &n_out, &n_exact), 0);
    CHECK_INT(out[0].idx, 0);
    /* 0.5 + bound reaches the k-th of the heap: all the 0.5s are rescored,
     * the 0.1 is not */
    CHECK_INT(n_exact, N - 1);
    /* a clear winner by approx: only the heap is scored */
    for (int i = 0; i < N; i++) {
        approx[i] = (float)(0.9 - 0.0005 * i);
        err[i] = 0.001f;
        score[i] = approx[i];
    }
    h.calls = 0;
    CHECK_INT(fr__vscan_topk(approx, err, NULL, N, 0.001f, 3, hand_exact, &h, out, &n_out, &n_exact), 0);
    CHECK_INT(n_exact, 2 * 3 + 16);
    CHECK_INT(out[0].idx, 0);
    /* every term of the bound counts: q_err 0.1, err 0.1, so the bound is
     * 1.1·0.1 + 0.1 = 0.21.  Three at 0.9, nineteen at 0.75 (the heap's
     * floor), the rest approximately 0.7; one of those is exactly 0.905
     * (within 0.21 of 0.7).  Without the query's terms (0.75 + 0.1 < 0.9)
     * the rescoring would be skipped, and 0.7 + 0.1 < 0.9 would skip it */
    for (int i = 0; i < N; i++) {
        approx[i] = i < 3 ? 0.9f : i < 22 ? 0.75f : 0.7f;
        err[i] = 0.1f;
        score[i] = approx[i];
    }
    score[N - 2] = 0.905;
    h = (hand){score, 0, 0};
    CHECK_INT(fr__vscan_topk(approx, err, NULL, N, 0.1f, 3, hand_exact, &h, out, &n_out, &n_exact), 0);
    CHECK_INT(out[0].idx, N - 2);
    CHECK_INT(out[1].idx, 0);
    CHECK_INT(out[2].idx, 1);
    /* a hair outside the bound is skipped (the bound is what it says) */
    for (int i = 22; i < N; i++) approx[i] = 0.68f;
    h = (hand){score, 0, 0};
    CHECK_INT(fr__vscan_topk(approx, err, NULL, N, 0.1f, 3, hand_exact, &h, out, &n_out, &n_exact), 0);
    CHECK_INT(n_exact, 22);
    for (int i = 0; i < N; i++) {
        approx[i] = (float)(0.9 - 0.0005 * i);
        err[i] = 0.001f;
        score[i] = approx[i];
    }
    /* exact()'s error, at any call, comes back (ASan: nothing leaked) */
    int bad = 0;
    for (long f = 1; f <= 30; f++) {
        h = (hand){score, 0, f};
        int rc = fr__vscan_topk(approx, err, NULL, N, 0.5f, 3, hand_exact, &h, out, &n_out, &n_exact);
        if (rc != FR_EIO) bad++;
    }
    CHECK_INT(bad, 0);
    /* out of memory */
    h = (hand){score, 0, 0};
    fr_mem_fail_after(0);
    CHECK_INT(fr__vscan_topk(approx, err, NULL, N, 0.001f, 3, hand_exact, &h, out, &n_out, &n_exact), FR_ENOMEM);
    fr_mem_fail_after(1);
    CHECK_INT(fr__vscan_topk(approx, err, NULL, N, 0.001f, 3, hand_exact, &h, out, &n_out, &n_exact), FR_ENOMEM);
    fr_mem_fail_after(-1);
    CHECK_INT(n_out, 0);
    /* the rescoring's growth past the first buffer fails: ENOMEM too */
    for (int i = 0; i < N; i++) approx[i] = 0.5f, err[i] = 0.1f, score[i] = 0.5;
    int nomem = 0;
    for (long k = 0; k < 6; k++) {
        h = (hand){score, 0, 0};
        fr_mem_fail_after(k);
        int rc = fr__vscan_topk(approx, err, NULL, N, 0.001f, 3, hand_exact, &h, out, &n_out, &n_exact);
        fr_mem_fail_after(-1);
        nomem += rc == FR_ENOMEM;
        if (rc != 0 && rc != FR_ENOMEM) bad++;
    }
    CHECK(nomem >= 3);
    CHECK_INT(bad, 0);
    /* k 0 and n 0: nothing, no call */
    h = (hand){score, 0, 0};
    CHECK_INT(fr__vscan_topk(approx, err, NULL, N, 0.001f, 0, hand_exact, &h, out, &n_out, &n_exact), 0);
    CHECK(n_out == 0 && n_exact == 0 && h.calls == 0);
    CHECK_INT(fr__vscan_topk(approx, err, NULL, 0, 0.001f, 3, hand_exact, &h, out, &n_out, NULL), 0);
    CHECK(n_out == 0 && h.calls == 0);
}

int main(void) {
    test_kernels();
    test_select();
    test_quantize();
    test_topk_random();
    test_topk_ties();
    test_topk_adversarial();
    test_topk_hand();
    return harness_done();
}
