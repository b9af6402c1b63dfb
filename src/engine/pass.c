/*
 * pass.c — the forward-pass core (pass.h): pool-task shares, residual
 * add + norm, FFN activations, the RoPE table and the tiled attention
 * driver that forward.c and encoder.c (and the encoder–decoder pass) call.
 *
 * Attention item (attend): the R query rows are gathered into qs
 * (fr_ops_att_put_q), their output rows zeroed, m = −∞, l = 0; then per
 * tile of keys: f16 keys and values converted once (f32 ones are read in
 * place), scores st = scale·q·k, the online softmax under the mask (nv[r]:
 * keys of the tile row r sees), o = o·corr + st·v.  A whole item ends with
 * o /= l; a chunk of a split decode leaves o, m and l for merge.
 * (A score bias, such as T5's relative position buckets, would be added
 * to st between att_qk and att_softmax; no user needs one yet.)
 */
#include "engine/pass.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/mem.h"

/* Decode steps split each KV head's keys into chunks so that every thread
 * gets about this many items (n_split). */
#define ATT_SPLIT_PER_THREAD 4

/* ---- a context's buffers ---- */

static void at_least_64(size_t *bytes, int n) {
    for (int i = 0; i < n; i++)
        if (bytes[i] == 0) bytes[i] = 64;
}

size_t fr__pass_total(size_t head, size_t *bytes, int n) {
    size_t total = head;
    at_least_64(bytes, n);
    for (int i = 0; i < n; i++)
        if (!fr_add_ok(total, bytes[i], &total)) return SIZE_MAX;
    return total;
}

bool fr__pass_alloc(void **bufs, size_t *bytes, int n, size_t head, size_t *alloc_bytes) {
    at_least_64(bytes, n);
    *alloc_bytes = head;
    return fr_malloc_aligned_n(bufs, bytes, (size_t)n, alloc_bytes);
}

void fr__pass_free(void *ctx, void **bufs, int n) {
    for (int i = 0; i < n; i++) fr_free_aligned(bufs[i]);
    fr_free(ctx);
}

/* ---- pool tasks ---- */

void fr__pass_share(int n, int ith, int nth, int *i0, int *i1) {
    *i0 = (int)((int64_t)n * ith / nth);
    *i1 = (int)((int64_t)n * (ith + 1) / nth);
}

void fr__pass_run(fr_pool *pool, fr_pool_fn fn, void *job, int64_t floats) {
    if (floats < FR_PASS_INLINE_FLOATS) fn(job, 0, 1);
    else fr_pool_run(pool, fn, job);
}

/* ---- norms and activations ---- */

void fr__pass_add_norm_task(void *arg, int ith, int nth) {
    const fr_pass_norm *j = arg;
    int64_t n = j->n;
    int t0, t1;
    fr__pass_share(j->N, ith, nth, &t0, &t1);
    for (int t = t0; t < t1; t++) {
        float *x = j->x + t * n, *xb = j->xb + t * n, *out = j->out + t * n;
        if (j->add) {
            if (j->bias) j->ops->add(xb, j->bias, n);
            j->ops->add(x, xb, n);
        }
        if (!j->w) continue;
        if (j->kind == FR_PASS_RMSNORM) j->ops->rmsnorm(out, x, j->w, n, j->eps);
        else j->ops->layernorm(out, x, j->w, j->b, n, j->eps);
    }
}

void fr__pass_act_task(void *arg, int ith, int nth) {
    const fr_pass_act *j = arg;
    int64_t n = j->n;
    if (j->kind == FR_PASS_SILU_GATE) {
        int64_t total = (int64_t)j->N * n;
        int64_t i0 = total * ith / nth & ~(int64_t)15, i1 = total * (ith + 1) / nth & ~(int64_t)15;
        if (ith == nth - 1) i1 = total;
        j->ops->silu_mul(j->h + i0, j->h2 + i0, i1 - i0);
        return;
    }
    int t0, t1;
    fr__pass_share(j->N, ith, nth, &t0, &t1);
    for (int t = t0; t < t1; t++) {
        float *h = j->h + t * n;
        if (j->bias) j->ops->add(h, j->bias, n);
        j->ops->gelu(h, n);
    }
}

/* ---- RoPE ---- */

void fr__pass_rope_freqs(const fr_hparams *hp, const float *factors, double *inv_freq) {
    for (int32_t k = 0; k < hp->n_rot / 2; k++) {
        double f = pow((double)hp->rope_base, -2.0 * k / hp->n_rot) * hp->rope_freq_scale;
        if (factors) f /= factors[k];
        inv_freq[k] = f;
    }
}

void fr__pass_rope(const fr_ops *ops, const fr_hparams *hp, bool neox, const double *inv_freq,
                   int32_t pos, float *cs, float *q, float *k) {
    /* cos θ_i and the signed sin θ_i at each rotated index (ops.h) */
    int half = hp->n_rot / 2;
    float *sn = cs + hp->n_rot;
    for (int i = 0; i < half; i++) {
        double theta = (double)pos * inv_freq[i];
        float co = (float)cos(theta), si = (float)sin(theta);
        int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
        cs[i0] = cs[i1] = co;
        sn[i0] = -si;
        sn[i1] = si;
    }
    ops->rope(q, hp->n_head, hp->head_dim, hp->n_rot, cs, sn, neox);
    ops->rope(k, hp->n_head_kv, hp->head_dim, hp->n_rot, cs, sn, neox);
}

/* ---- attention: scratch ---- */

static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

static int group_of(const fr_hparams *hp) { return hp->n_head / hp->n_head_kv; }

size_t fr__pass_att_layout(const fr_hparams *hp, int bq, bool kv_f16, float *base,
                           fr_pass_att_parts *p) {
    size_t R = (size_t)bq * (size_t)group_of(hp);
    size_t rp = (size_t)fr_ops_att_rp((int)R), hd = (size_t)hp->head_dim, off = 0;
    size_t tile = kv_f16 ? (size_t)FR_ATT_BK * hd : 0;
#define PART(field, type, n) \
    do { if (p) p->field = (type)(void *)(base + off); off += pad16(n); } while (0)
    PART(qs, float *, rp * hd);
    PART(st, float *, (size_t)FR_ATT_BK * rp);
    PART(kt, float *, tile);
    PART(vt, float *, tile);
    PART(m, float *, rp);
    PART(l, float *, rp);
    PART(corr, float *, rp);
    PART(nv, int32_t *, rp);
    PART(orow, float **, rp * sizeof(float *) / sizeof(float));
    PART(qrow, float **, rp * sizeof(float *) / sizeof(float));
    PART(cs, float *, 2 * (size_t)hp->n_rot);
#undef PART
    return off;
}

size_t fr__pass_att_split_floats(const fr_hparams *hp, int n_threads) {
    /* n_split <= ATT_SPLIT_PER_THREAD · n_threads chunks of n_head rows of
     * head_dim + 2 floats (att_part) */
    return n_threads == 1 ? 0 : (size_t)ATT_SPLIT_PER_THREAD * (size_t)n_threads *
                                    (size_t)hp->n_head * ((size_t)hp->head_dim + 2);
}

void fr__pass_att_parts(const fr_pass_att *a, int ith, fr_pass_att_parts *p) {
    fr__pass_att_layout(a->hp, a->bq, a->kv.f16, a->tmp + (size_t)ith * a->tmp_stride, p);
}

void fr__pass_att_init(fr_pass_att *a, const fr_hparams *hp, fr_pool *pool, int bq, float *tmp,
                       size_t tmp_stride) {
    *a = (fr_pass_att){.ops = fr_ops_get(), .hp = hp, .pool = pool,
                       .scale = 1.0f / sqrtf((float)hp->head_dim), .bq = bq, .tmp = tmp,
                       .tmp_stride = tmp_stride};
}

void fr__pass_att_begin(fr_pass_att *a) {
    atomic_store_explicit(&a->next, 0, memory_order_relaxed);
}

/* ---- attention: items ---- */

/* Where an item's rows end up: the attention output, normalised (o NULL),
 * or unnormalised partial rows o with their running max m and sum l, for a
 * split over key ranges that merge combines. */
typedef struct att_out {
    float *o, *m, *l;            /* [R][hd], [R], [R] or NULL */
} att_out;

/* Rows [row0, row0 + nk) of one KV head of the keys (or values), as f32:
 * converted into tile (f16) or read in place. */
static const float *kv_rows(const fr_pass_att *a, const void *kv, size_t head, int64_t row0,
                            int nk, float *tile) {
    size_t hd = (size_t)a->hp->head_dim, at = head + (size_t)row0 * hd;
    if (!a->kv.f16) return (const float *)kv + at;
    a->ops->f16_rows((const uint16_t *)kv + at, hd, nk, (int)hd, tile);
    return tile;
}

/* One attention item: KV head kvh, step tokens [t0, t1) of run ru, keys
 * [kb, ke) (ke is cut to what the last token sees). */
static void attend(const fr_pass_att *a, const fr_pass_att_parts *p, const fr_pass_att_run *ru,
                   int kvh, int t0, int t1, int kb, int ke, const att_out *out) {
    const fr_hparams *hp = a->hp;
    const fr_ops *ops = a->ops;
    int hd = hp->head_dim, group = group_of(hp);
    size_t head = (size_t)kvh * a->kv.head_stride;
    int pos0 = ru->n_keys - ru->n - ru->t0; /* causal: step token t is at position pos0 + t */
    int R = (t1 - t0) * group, rp = fr_ops_att_rp(R);

    for (int t = t0; t < t1; t++)
        for (int g = 0; g < group; g++) {
            int r = (t - t0) * group + g;
            size_t h = (size_t)(kvh * group + g) * (size_t)hd;
            p->qrow[r] = a->q.p + (size_t)t * a->q.stride + h;
            p->orow[r] = out->o ? out->o + (size_t)r * (size_t)hd
                                : a->out.p + (size_t)t * a->out.stride + h;
            memset(p->orow[r], 0, (size_t)hd * sizeof(float));
            p->m[r] = -INFINITY;
            p->l[r] = 0;
        }
    memset(p->qs, 0, (size_t)fr_ops_att_qs_floats(R, hd) * sizeof(float));
    fr_ops_att_put_q(p->qs, R, hd, (const float *const *)p->qrow);

    int last = a->causal ? pos0 + t1 : ru->n_keys; /* keys the last token sees */
    if (ke > last) ke = last;
    for (int k0 = kb; k0 < ke; k0 += FR_ATT_BK) {
        int nk = ke - k0 < FR_ATT_BK ? ke - k0 : FR_ATT_BK;
        const float *kt = kv_rows(a, a->kv.k, head, ru->kv_row + k0, nk, p->kt);
        const float *vt = kv_rows(a, a->kv.v, head, ru->kv_row + k0, nk, p->vt);
        ops->att_qk(nk, hd, kt, R, rp, p->qs, a->scale, p->st);
        if (a->causal) {
            for (int t = t0, r = 0; t < t1; t++)
                for (int g = 0; g < group; g++) p->nv[r++] = pos0 + t + 1 - k0;
        } else {
            for (int r = 0; r < R; r++) p->nv[r] = nk;  /* every key of the run */
        }
        ops->att_softmax(nk, R, rp, p->st, p->nv, p->m, p->l, p->corr);
        ops->att_pv(nk, hd, vt, R, rp, p->st, p->corr, p->orow);
    }
    if (out->o) {
        memcpy(out->m, p->m, (size_t)R * sizeof(float));
        memcpy(out->l, p->l, (size_t)R * sizeof(float));
        return;
    }
    for (int r = 0; r < R; r++) ops->scale(p->orow[r], 1.0f / p->l[r], hd);
}

/* Key-range chunks per KV head for a step of one run of one token: enough
 * items for every thread to take several (the heads alone may not divide
 * evenly), at least two tiles each; 1 (no split) without split scratch,
 * for batches, several runs and one thread. */
static int n_split_of(const fr_pass_att *a, int n_keys, int nth) {
    int n_kvh = a->hp->n_head_kv;
    if (!a->split || a->n_runs != 1 || a->N != 1 || nth == 1 ||
        n_kvh >= ATT_SPLIT_PER_THREAD * nth)
        return 1;
    int n_tiles = (n_keys + FR_ATT_BK - 1) / FR_ATT_BK;
    int want = (ATT_SPLIT_PER_THREAD * nth + n_kvh - 1) / n_kvh;
    int most = n_tiles / 2;
    return want < most ? want : most < 1 ? 1 : most;
}

/* The partial rows of a split step: [n_head_kv][n_split][group] rows of
 * o, then m, then l. */
static att_out att_part(const fr_pass_att *a, int n_split, int kvh, int s) {
    const fr_hparams *hp = a->hp;
    size_t group = (size_t)group_of(hp), hd = (size_t)hp->head_dim;
    size_t rows = (size_t)hp->n_head_kv * (size_t)n_split * group;
    size_t first = ((size_t)kvh * (size_t)n_split + (size_t)s) * group;
    float *base = a->split;
    return (att_out){base + first * hd, base + rows * hd + first, base + rows * (hd + 1) + first};
}

/* Combine the n_split partial rows of every query head of step token t:
 * M = max m_s, L = Σ l_s·e^(m_s−M), o = Σ o_s·e^(m_s−M) / L. */
static void merge(const fr_pass_att *a, int t, int n_split, int ith, int nth) {
    const fr_hparams *hp = a->hp;
    int hd = hp->head_dim, group = group_of(hp);
    for (int h = ith; h < hp->n_head; h += nth) {
        int kvh = h / group, g = h % group;
        float M = -INFINITY, L = 0;
        float *o = a->out.p + (size_t)t * a->out.stride + (size_t)h * (size_t)hd;
        for (int s = 0; s < n_split; s++) {
            att_out part = att_part(a, n_split, kvh, s);
            if (part.m[g] > M) M = part.m[g];
        }
        memset(o, 0, (size_t)hd * sizeof *o);
        for (int s = 0; s < n_split; s++) {
            att_out part = att_part(a, n_split, kvh, s);
            float w = expf(part.m[g] - M);
            L += part.l[g] * w;
            const float *po = part.o + (size_t)g * (size_t)hd;
            for (int d = 0; d < hd; d++) o[d] += w * po[d];
        }
        float inv = 1.0f / L;
        for (int d = 0; d < hd; d++) o[d] *= inv;
    }
}

void fr__pass_att_items(fr_pass_att *a, int ith, int nth) {
    int bq = a->bq, n_kvh = a->hp->n_head_kv;
    fr_pass_att_run ru;
    a->run(a->run_arg, 0, &ru);
    int n_split = n_split_of(a, ru.n_keys, nth);
    int n_items = 0;
    for (int r = 0; r < a->n_runs; r++) {
        a->run(a->run_arg, r, &ru);
        n_items += (ru.n + bq - 1) / bq * n_kvh;
    }
    n_items *= n_split;
    fr_pass_att_parts p;
    fr__pass_att_parts(a, ith, &p);
    for (;;) {
        int i = atomic_fetch_add_explicit(&a->next, 1, memory_order_relaxed);
        if (i >= n_items) break;
        int kvh = i % n_kvh;
        if (n_split > 1) {
            /* one run, one token: chunk s of the keys */
            a->run(a->run_arg, 0, &ru);
            int n_tiles = (ru.n_keys + FR_ATT_BK - 1) / FR_ATT_BK, s = i / n_kvh;
            int kb = (int)((int64_t)n_tiles * s / n_split) * FR_ATT_BK;
            int ke = (int)((int64_t)n_tiles * (s + 1) / n_split) * FR_ATT_BK;
            att_out out = att_part(a, n_split, kvh, s);
            attend(a, &p, &ru, kvh, ru.t0, ru.t0 + 1, kb, ke, &out);
            continue;
        }
        /* query block k counted run after run, each run's latest first */
        int k = i / n_kvh, nqb, r = 0;
        for (;;) {
            a->run(a->run_arg, r++, &ru);
            if (k < (nqb = (ru.n + bq - 1) / bq)) break;
            k -= nqb;
        }
        int qb = nqb - 1 - k;
        int t0 = ru.t0 + qb * bq, t1 = t0 + bq < ru.t0 + ru.n ? t0 + bq : ru.t0 + ru.n;
        attend(a, &p, &ru, kvh, t0, t1, 0, INT32_MAX, &(att_out){NULL, NULL, NULL});
    }
    if (n_split > 1) {
        fr_pool_barrier(a->pool);
        a->run(a->run_arg, 0, &ru);
        merge(a, ru.t0, n_split, ith, nth);
    }
}

void fr__pass_att_task(void *a, int ith, int nth) {
    fr__pass_att_items(a, ith, nth);
}
