/*
 * test_pass.c — the forward-pass core (engine/pass.h) on its own.
 *
 * The attention driver against the textbook formula in double, in the
 * layouts its users give it: several runs of one call whose queries and
 * keys differ in number (cross-attention: n query tokens over n_keys
 * source rows, from row kv_row of each head), with and without the
 * causal mask, keys and values in f32 and in f16, GQA groups, blocks of
 * bq tokens and pools of 1, 2 and 3 threads; and the decode split (one
 * query token over many keys) against the same formula.  The output is a
 * convex combination of value rows, so the bound is absolute: TOL_ATT ·
 * max|v| (float accumulation over up to ~300 keys, as test_model.c's).
 * Then the residual add + norm task against the ops it calls, row by row.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/mem.h"
#include "engine/pass.h"
#include "harness.h"
#include "kernels/pool.h"
#include "kernels/types.h"

#define TOL_ATT 2e-5

static uint64_t rng = 4242;
static float rnd(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) & 0xFFFFFF) / 16777216.0f * 2.0f - 1.0f;
}

#define MAX_RUNS 3
typedef struct runs {
    fr_pass_att_run r[MAX_RUNS];
} runs;

static void run_of(const void *arg, int r, fr_pass_att_run *out) {
    *out = ((const runs *)arg)->r[r];
}

/* Largest |out − reference| over every query row of the call. */
static double worst_err(const fr_pass_att *a, const runs *rs, const float *kf, const float *vf) {
    const fr_hparams *hp = a->hp;
    int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    double worst = 0, sc[512], ref[128];
    for (int ri = 0; ri < a->n_runs; ri++) {
        const fr_pass_att_run *ru = &rs->r[ri];
        for (int i = 0; i < ru->n; i++) {
            int t = ru->t0 + i, nk = a->causal ? ru->n_keys - ru->n + i + 1 : ru->n_keys;
            for (int h = 0; h < hp->n_head; h++) {
                const float *q = a->q.p + (size_t)t * a->q.stride + (size_t)h * (size_t)hd;
                size_t head = (size_t)(h / group) * a->kv.head_stride;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < nk; j++) {
                    const float *k = kf + head + (size_t)(ru->kv_row + j) * (size_t)hd;
                    double d = 0;
                    for (int e = 0; e < hd; e++) d += (double)q[e] * k[e];
                    sc[j] = d * a->scale;
                    if (sc[j] > mx) mx = sc[j];
                }
                for (int e = 0; e < hd; e++) ref[e] = 0;
                for (int j = 0; j < nk; j++) {
                    const float *v = vf + head + (size_t)(ru->kv_row + j) * (size_t)hd;
                    double w = exp(sc[j] - mx);
                    sum += w;
                    for (int e = 0; e < hd; e++) ref[e] += w * v[e];
                }
                const float *o = a->out.p + (size_t)t * a->out.stride + (size_t)h * (size_t)hd;
                for (int e = 0; e < hd; e++) {
                    double err = fabs(o[e] - ref[e] / sum);
                    if (!(err <= worst)) worst = err;
                }
            }
        }
    }
    return worst;
}

static void test_attention(void) {
    fr_hparams hp = {.n_head = 6, .n_head_kv = 2, .head_dim = 40, .n_rot = 40};
    int hd = hp.head_dim, n_q = hp.n_head * hd;
    enum { ROWS = 400, N = 12 };
    size_t kv_floats = (size_t)hp.n_head_kv * ROWS * (size_t)hd;
    float *kf = fr_malloc(kv_floats * sizeof *kf), *vf = fr_malloc(kv_floats * sizeof *vf);
    uint16_t *kh = fr_malloc(kv_floats * sizeof *kh), *vh = fr_malloc(kv_floats * sizeof *vh);
    float *kr = fr_malloc(kv_floats * sizeof *kr), *vr = fr_malloc(kv_floats * sizeof *vr);
    for (size_t i = 0; i < kv_floats; i++) {
        kf[i] = 2 * rnd();
        vf[i] = rnd();
        kh[i] = fr_f32_to_f16(kf[i]);
        vh[i] = fr_f32_to_f16(vf[i]);
        kr[i] = fr_f16_to_f32(kh[i]); /* what the f16 call reads */
        vr[i] = fr_f16_to_f32(vh[i]);
    }
    /* queries with a stride wider than a row (q | k | v, as the encoder's) */
    float *q = fr_malloc((size_t)N * 3 * (size_t)n_q * sizeof *q);
    float *out = fr_malloc((size_t)N * (size_t)n_q * sizeof *out);
    for (size_t i = 0; i < (size_t)N * 3 * (size_t)n_q; i++) q[i] = 2 * rnd();
    /* cross-attention: 3 queries over 150 source rows from row 0, 7 over
     * 9 rows from row 200, 2 over 1 row from row 399 */
    runs cross = {{{0, 3, 150, 0}, {3, 7, 9, 200}, {10, 2, 1, 399}}};
    /* causal: runs at positions 60.., 0.., 300.. of their rows */
    runs causal = {{{0, 3, 63, 0}, {3, 7, 7, 100}, {10, 2, 302, 0}}};
    fr_pool *pools[3] = {NULL, NULL, NULL};
    CHECK_INT(fr_pool_create(2, &pools[1]), 0);
    CHECK_INT(fr_pool_create(3, &pools[2]), 0);
    for (int bq = 1; bq <= 4; bq += 3) {
        size_t stride = fr__pass_att_layout(&hp, bq, true, NULL, NULL);
        float *tmp = fr_malloc_aligned(3 * stride * sizeof(float));
        for (int pi = 0; pi < 3; pi++)
            for (int f16 = 0; f16 < 2; f16++)
                for (int c = 0; c < 2; c++) {
                    fr_pass_att a;
                    fr__pass_att_init(&a, &hp, pools[pi], bq, tmp, stride);
                    a.causal = c;
                    a.q = (fr_pass_rows){q, 3 * (size_t)n_q};
                    a.out = (fr_pass_rows){out, (size_t)n_q};
                    a.kv = f16 ? (fr_pass_kv){kh, vh, true, ROWS * (size_t)hd}
                               : (fr_pass_kv){kf, vf, false, ROWS * (size_t)hd};
                    a.run = run_of;
                    a.run_arg = c ? &causal : &cross;
                    a.n_runs = MAX_RUNS;
                    a.N = N;
                    memset(out, 0xff, (size_t)N * (size_t)n_q * sizeof *out); /* NaN */
                    fr__pass_att_begin(&a);
                    fr_pool_run(pools[pi], fr__pass_att_task, &a);
                    double w = worst_err(&a, a.run_arg, f16 ? kr : kf, f16 ? vr : vf);
                    CHECK_MSG(w <= TOL_ATT, "attention bq %d threads %d %s %s: max err %g", bq,
                              pi + 1, f16 ? "f16" : "f32", c ? "causal" : "cross", w);
                    if (pi == 2)
                        printf("attention bq %d, %s keys, %-6s: max|err| %.2g\n", bq,
                               f16 ? "f16" : "f32", c ? "causal" : "cross", w);
                }
        fr_free_aligned(tmp);
    }

    /* the decode split: one query token over 300 keys on 3 threads, with
     * the partials after the threads' scratch */
    size_t stride = fr__pass_att_layout(&hp, 1, true, NULL, NULL);
    size_t split = fr__pass_att_split_floats(&hp, 3);
    CHECK_INT(fr__pass_att_split_floats(&hp, 1), 0);
    float *tmp = fr_malloc_aligned((3 * stride + split) * sizeof(float));
    for (int f16 = 0; f16 < 2; f16++) {
        runs one = {{{0, 1, 300, 50}}};
        fr_pass_att a;
        fr__pass_att_init(&a, &hp, pools[2], 1, tmp, stride);
        a.causal = true;
        a.split = tmp + 3 * stride;
        a.q = (fr_pass_rows){q, (size_t)n_q};
        a.out = (fr_pass_rows){out, (size_t)n_q};
        a.kv = f16 ? (fr_pass_kv){kh, vh, true, ROWS * (size_t)hd}
                   : (fr_pass_kv){kf, vf, false, ROWS * (size_t)hd};
        a.run = run_of;
        a.run_arg = &one;
        a.n_runs = 1;
        a.N = 1;
        memset(out, 0xff, (size_t)n_q * sizeof *out);
        fr__pass_att_begin(&a);
        fr_pool_run(pools[2], fr__pass_att_task, &a);
        double w = worst_err(&a, &one, f16 ? kr : kf, f16 ? vr : vf);
        CHECK_MSG(w <= TOL_ATT, "split decode %s: max err %g", f16 ? "f16" : "f32", w);
        printf("attention split decode, %s keys: max|err| %.2g\n", f16 ? "f16" : "f32", w);
    }
    fr_free_aligned(tmp);
    fr_pool_destroy(pools[1]);
    fr_pool_destroy(pools[2]);
    fr_free(kf);
    fr_free(vf);
    fr_free(kh);
    fr_free(vh);
    fr_free(kr);
    fr_free(vr);
    fr_free(q);
    fr_free(out);
}

/* The add + norm task: each row as the ops compute it, into xb
 * (pre-norm, RMSNorm) or x (post-norm, LayerNorm), with and without the
 * add and the bias. */
static void test_add_norm(void) {
    enum { R = 5, E = 48 };
    float x[R * E], xb[R * E], wx[R * E], wxb[R * E], w[E], b[E], bias[E];
    for (int i = 0; i < E; i++) w[i] = rnd(), b[i] = rnd(), bias[i] = rnd();
    const fr_ops *ops = fr_ops_get();
    for (int kind = 0; kind < 2; kind++)
        for (int add = 0; add < 2; add++) {
            for (int i = 0; i < R * E; i++) x[i] = wx[i] = rnd(), xb[i] = wxb[i] = rnd();
            fr_pass_norm j = {.ops = ops, .N = R, .n = E, .x = x, .xb = xb,
                              .out = kind == FR_PASS_RMSNORM ? xb : x, .add = add,
                              .bias = add ? bias : NULL, .kind = kind, .w = w, .b = b,
                              .eps = 1e-5f};
            fr__pass_add_norm_task(&j, 0, 2);
            fr__pass_add_norm_task(&j, 1, 2);
            for (int t = 0; t < R; t++) {
                float *rx = wx + t * E, *rxb = wxb + t * E;
                if (add) {
                    ops->add(rxb, bias, E);
                    ops->add(rx, rxb, E);
                }
                if (kind == FR_PASS_RMSNORM) ops->rmsnorm(rxb, rx, w, E, 1e-5f);
                else ops->layernorm(rx, rx, w, b, E, 1e-5f);
            }
            CHECK(memcmp(x, wx, sizeof x) == 0);
            CHECK(memcmp(xb, wxb, sizeof xb) == 0);
        }
}

int main(void) {
    size_t base = fr_mem_in_use();
    test_attention();
    test_add_norm();
    CHECK_INT(fr_mem_in_use(), base);
    return harness_done();
}
