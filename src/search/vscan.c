/*
 * vscan.c — the plain C twin of the int8 dot kernel, the choice between
 * it and the SIMD versions (x86/vscan_avx2.c, x86/vscan_avx512.c), quantisation,
 * and the exact top-k with its error bound (vscan.h explains the bound).
 */
#include "search/vscan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/sysinfo.h"
#include "kernels/kernels.h"

void fr__vscan_dot_ref(const int8_t *q, const int8_t *rows, size_t n, size_t dim_pad, int32_t *out) {
    for (size_t r = 0; r < n; r++) {
        const int8_t *v = rows + r * dim_pad;
        int32_t s = 0;
        for (size_t d = 0; d < dim_pad; d++) s += (int32_t)q[d] * (int32_t)v[d];
        out[r] = s;
    }
}

#if defined(__x86_64__)
static bool have_avx2(void) {
    const fr_cpu_features *c = fr_cpu();
    return c->avx2 && c->fma && c->f16c;
}

static bool have_avx512(void) {
    const fr_cpu_features *c = fr_cpu();
    return have_avx2() && c->avx512f && c->avx512bw && c->avx512vl && c->avx512vnni;
}

fr_vscan_dot_fn fr__vscan_dot_for(const char *isa) {
    if (!strcmp(isa, "avx512")) return have_avx512() ? fr__vscan_dot_avx512 : NULL;
    if (!strcmp(isa, "avx2")) return have_avx2() ? fr__vscan_dot_avx2 : NULL;
    if (!strcmp(isa, "ref")) return fr__vscan_dot_ref;
    return NULL;
}
#elif defined(__aarch64__)
/* The kernels' aarch64 levels (kernels.c): 1 neon, 2 dotprod, 3 i8mm. */
fr_vscan_dot_fn fr__vscan_dot_for(const char *isa) {
    static const char *const names[] = {"ref", "neon", "dotprod", "i8mm"};
    const fr_cpu_features *c = fr_cpu();
    const bool has[4] = {true, c->neon, c->neon && c->dotprod && c->fp16,
                         c->neon && c->dotprod && c->fp16 && c->i8mm};
    for (int i = 0; i < 4; i++) {
        if (strcmp(isa, names[i]) != 0) continue;
        if (!has[i]) return NULL;
        for (int l = i; l > 0; l--)
            if (fr__vscan_arm[l]) return fr__vscan_arm[l];
        return fr__vscan_dot_ref;
    }
    return NULL;
}
#else
fr_vscan_dot_fn fr__vscan_dot_for(const char *isa) {
    return strcmp(isa, "ref") == 0 ? fr__vscan_dot_ref : NULL;
}
#endif

/* The kernels' level decides (it is capped by FRUGAL_ISA / FRUGAL_REF and
 * only ever names a level the CPU has); cheap enough to ask per scan. */
const char *fr__vscan_isa(void) {
    const char *isa = fr_kernels_isa();
    return fr__vscan_dot_for(isa) ? isa : "ref";
}

fr_vscan_dot_fn fr__vscan_dot(void) {
    return fr__vscan_dot_for(fr__vscan_isa());
}

bool fr__vscan_normalize(float *v, int32_t dim) {
    double ss = 0;
    for (int32_t i = 0; i < dim; i++) {
        if (!isfinite(v[i])) return false;
        ss += (double)v[i] * v[i];
    }
    if (!(ss > 0)) return false;
    double inv = 1.0 / sqrt(ss);
    for (int32_t i = 0; i < dim; i++) v[i] = (float)(v[i] * inv);
    return true;
}

void fr__vscan_quantize(const float *v, int32_t dim, size_t dim_pad, int8_t *q, float *scale,
                        float *err) {
    float amax = 0;
    for (int32_t i = 0; i < dim; i++) amax = fmaxf(amax, fabsf(v[i]));
    memset(q, 0, dim_pad);
    if (amax == 0) {
        *scale = 0;
        *err = 0;
        return;
    }
    float s = amax / 127.0f, inv = 127.0f / amax;
    double e2 = 0;
    for (int32_t i = 0; i < dim; i++) {
        float c = roundf(v[i] * inv);
        if (c > 127) c = 127;
        if (c < -127) c = -127;
        q[i] = (int8_t)c;
        double d = (double)v[i] - (double)s * c;
        e2 += d * d;
    }
    *scale = s;
    *err = nextafterf((float)sqrt(e2), INFINITY);   /* rounded up: a bound */
}

double fr__vscan_dot_f32(const float *a, const float *b, int32_t dim) {
    double s = 0;
    for (int32_t i = 0; i < dim; i++) s += (double)a[i] * b[i];
    return s;
}

/* ---- exact top k ---- */

typedef struct cand {
    float a;
    size_t idx;
} cand;

/* x ranks above y: higher approximate score, then lower index */
static inline bool above(cand x, cand y) {
    return x.a > y.a || (x.a == y.a && x.idx < y.idx);
}

/* A min-heap (the worst on top) of the best h candidates by approx. */
static void sift_down(cand *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && above(h[w], h[l])) w = l;
        if (r < n && above(h[w], h[r])) w = r;
        if (w == i) return;
        cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void sift_up(cand *h, size_t i) {
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!above(h[p], h[i])) return;
        cand t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

static int by_exact(const void *x, const void *y) {
    const fr_vscan_hit *a = x, *b = y;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int by_idx(const void *x, const void *y) {
    const cand *a = x, *b = y;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static bool in_heap(const cand *sorted, size_t n, size_t idx) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (sorted[mid].idx < idx) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && sorted[lo].idx == idx;
}

int fr__vscan_topk(const float *approx, const float *err, const uint8_t *allowed, size_t n,
                   float q_err, size_t k, fr_vscan_exact_fn exact, void *ud, fr_vscan_hit *out,
                   size_t *n_out, size_t *n_exact) {
    *n_out = 0;
    if (n_exact) *n_exact = 0;
    if (k == 0 || n == 0) return 0;
    size_t hcap = 2 * k + 16, nh = 0;
    if (hcap > n) hcap = n;
    cand *heap = fr_malloc(hcap * sizeof *heap);
    size_t ccap = hcap + 64, nc = 0;
    fr_vscan_hit *c = fr_malloc(ccap * sizeof *c);
    int rc = 0;
    if (!heap || !c) {
        rc = FR_ENOMEM;
        goto done;
    }
    float max_err = 0;
    for (size_t i = 0; i < n; i++) {
        if (allowed && !(allowed[i >> 3] >> (i & 7) & 1)) continue;
        if (err[i] > max_err) max_err = err[i];
        cand x = {approx[i], i};
        if (nh < hcap) {
            heap[nh] = x;
            sift_up(heap, nh++);
        } else if (above(x, heap[0])) {
            heap[0] = x;
            sift_down(heap, nh, 0);
        }
    }
    if (nh == 0) goto done;
    float floor_a = heap[0].a;      /* every candidate left out has a <= this */
    for (size_t j = 0; j < nh; j++) {
        double s;
        if ((rc = exact(ud, heap[j].idx, &s))) goto done;
        c[nc++] = (fr_vscan_hit){heap[j].idx, s};
    }
    qsort(c, nc, sizeof *c, by_exact);
    if (nh == hcap && nc >= k) {
        double kth = c[k - 1].score;
        double qe = q_err, slack = FR_VSCAN_SLACK;
        if ((double)floor_a + (1 + qe) * max_err + qe + slack >= kth) {
            /* some vector left out might reach the k-th: rescore them all */
            qsort(heap, nh, sizeof *heap, by_idx);
            for (size_t i = 0; i < n; i++) {
                if (allowed && !(allowed[i >> 3] >> (i & 7) & 1)) continue;
                if ((double)approx[i] + (1 + qe) * err[i] + qe + slack < kth) continue;
                if (in_heap(heap, nh, i)) continue;
                double s;
                if ((rc = exact(ud, i, &s))) goto done;
                if (nc == ccap) {
                    size_t ncap = ccap * 2;
                    fr_vscan_hit *p = fr_realloc(c, ncap * sizeof *p);
                    if (!p) {
                        rc = FR_ENOMEM;
                        goto done;
                    }
                    c = p;
                    ccap = ncap;
                }
                c[nc++] = (fr_vscan_hit){i, s};
            }
            qsort(c, nc, sizeof *c, by_exact);
        }
    }
    if (n_exact) *n_exact = nc;
    size_t m = nc < k ? nc : k;
    memcpy(out, c, m * sizeof *out);
    *n_out = m;
done:
    fr_free(heap);
    fr_free(c);
    return rc;
}
