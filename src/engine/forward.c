/*
 * forward.c — the llama/qwen2 forward pass and its KV cache (GGUF.md §4).
 *
 * A context holds, for n_seq sequences (slots) of n_ctx positions each,
 * the F16 KV cache
 *     k_cache, v_cache: [n_layer][n_head_kv][n_seq][n_ctx][head_dim]
 * (each KV head's rows of one sequence contiguous, so an attention item
 * streams them) (values rounded to half as llama.cpp's default cache does)
 * and scratch buffers for one step of up to n_ubatch = min(512, n_ctx·n_seq)
 * tokens.  All of it is allocated at fr_ctx_create; evaluation never
 * allocates.
 *
 * A step is a batch of runs: run i is n_i tokens of sequence s_i at its
 * positions p_i .. p_i+n_i-1 (each sequence at most once).  Every matmul
 * runs once over all N = Σ n_i tokens, so the weights are streamed once
 * for every sequence of the batch (continuous batching); RoPE and the
 * cache store use each token's own position and sequence; attention items
 * belong to one run and read only that sequence's keys.
 *
 * One step over N tokens, residual x[N][n_embd]:
 *   x = token_embd rows
 *   per layer:
 *     xb = RMSNorm(x)·attn_norm                       (fused with the add below)
 *     q = Wq·xb (+bq), k = Wk·xb (+bk), v = Wv·xb (+bv)      fr_matmul
 *     RoPE on q, k (NORM: pairs (2i, 2i+1); NEOX: pairs (i, i+n_rot/2))
 *     k, v → cache rows p0+t (half)
 *     att = causal softmax(q·kᵀ/√head_dim)·v per head (GQA: query head h
 *           reads KV head h/(n_head/n_head_kv))
 *     x += Wo·att (+bo);  xb = RMSNorm(x)·ffn_norm     (one pass)
 *     hb = silu(Wgate·xb) ⊙ Wup·xb
 *     x += Wdown·hb;  xb = next layer's RMSNorm(x)      (one pass)
 *   logits = output·(RMSNorm(x[last])·output_norm) (+output.bias) for the
 *   last token of every run that asks for them, in one matmul.
 *
 * Threads.  Besides the matmuls, a layer makes at most four pool runs:
 * add+norm, bias+RoPE+cache store then (after a barrier) attention, add+norm,
 * SiLU·up.  The element-wise ones split tokens (or elements) over the pool
 * and run on the calling thread alone when the step is small (decode), where
 * a wake-up would cost more than the work.
 *
 * Attention is tiled (flash-attention style, kernels/ops.h): a work item is
 * one KV head and a block of att_bq tokens, i.e. the R = att_bq·group query
 * rows that read the same keys.  It walks the keys in tiles of FR_ATT_BK,
 * converting each K and V tile from half to float once for all R rows,
 * with an online softmax (running max and sum per row); keys after the
 * block's last token are never read, and masked keys inside the diagonal
 * tile get weight 0.  Items are taken from a shared counter, longest
 * (latest tokens) first within a run.  A decode step of one sequence has
 * one item per KV head, split over key ranges when that leaves threads
 * idle.
 *
 * Errors are detected before anything changes, so a failed eval leaves the
 * context as it was.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/model_int.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "kernels/types.h"

/* ---- creation ---- */

/* The buffers of a context, in allocation order (fr_ctx.bufs). */
_Static_assert(FR_CTX_NBUFS == 18, "fr_ctx.bufs holds every buffer");
enum { B_KCACHE, B_VCACHE, B_INV_FREQ, B_X, B_XB, B_Q, B_K, B_V, B_ATT, B_HB, B_HB2,
       B_ATT_TMP, B_LOGITS, B_WORK, B_SEQ_LEN, B_TOK_SEQ, B_TOK_POS, B_RUNS, B_COUNT };

/* Query rows per attention item, about: enough to reuse each converted
 * K/V tile many times, few enough that a thread's tiles stay in L1/L2. */
#define ATT_ROWS 64

/* Decode steps split each KV head's keys into chunks so that every thread
 * gets about this many items (att_n_split). */
#define ATT_SPLIT_PER_THREAD 4

static int32_t resolve_n_ctx(const fr_model *m, int32_t n_ctx) {
    if (n_ctx != 0) return n_ctx;
    int32_t train = m->hp.n_ctx_train;
    return train > 0 && train < 4096 ? train : 4096;
}

/* Tokens per attention item for steps of up to n_ubatch tokens. */
static int att_bq(const fr_hparams *hp, int32_t n_ubatch) {
    int group = hp->n_head / hp->n_head_kv;
    int bq = ATT_ROWS / group;
    if (bq < 1) bq = 1;
    if (bq > n_ubatch) bq = n_ubatch;
    return bq;
}

/* One thread's attention scratch, in floats (each part a multiple of 16
 * floats, so every part is 64-byte aligned):
 *   qs [rp][hd], st [BK][rp], kt [BK][hd], vt [BK][hd], m, l, corr, nv [rp],
 *   orow, qrow [rp] pointers, RoPE cos and signed sin [2][n_rot]. */
typedef struct att_parts {
    float *qs, *st, *kt, *vt, *m, *l, *corr;
    int32_t *nv;
    float **orow, **qrow;
    float *cs;
} att_parts;

static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

static size_t att_layout(const fr_hparams *hp, int bq, float *base, att_parts *p) {
    size_t R = (size_t)bq * (size_t)(hp->n_head / hp->n_head_kv);
    size_t rp = (size_t)fr_ops_att_rp((int)R), hd = (size_t)hp->head_dim, off = 0;
#define PART(field, type, n) \
    do { if (p) p->field = (type)(void *)(base + off); off += pad16(n); } while (0)
    PART(qs, float *, rp * hd);
    PART(st, float *, (size_t)FR_ATT_BK * rp);
    PART(kt, float *, (size_t)FR_ATT_BK * hd);
    PART(vt, float *, (size_t)FR_ATT_BK * hd);
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

static size_t max_work(size_t cur, const fr_weight *w, int64_t N) {
    size_t s = fr_matmul_work_size(w->type, w->cols, N);
    return s > cur ? s : cur;
}

static int32_t ubatch_of(int32_t n_ctx, int32_t n_seq) {
    int64_t total = (int64_t)n_ctx * n_seq;
    return total < FR_UBATCH ? (int32_t)total : FR_UBATCH;
}

/* Bytes of every buffer for n_seq sequences of n_ctx positions and
 * n_threads; false on overflow. */
static bool plan(const fr_model *m, int32_t n_ctx, int32_t n_seq, int n_threads,
                 size_t bytes[B_COUNT]) {
    const fr_hparams *hp = &m->hp;
    int32_t n_ubatch = ubatch_of(n_ctx, n_seq);
    size_t nub = (size_t)n_ubatch, f = sizeof(float);
    size_t n_embd = (size_t)hp->n_embd, n_ff = (size_t)hp->n_ff;
    size_t n_q = (size_t)hp->n_head * (size_t)hp->head_dim;
    size_t n_kv = (size_t)hp->n_head_kv * (size_t)hp->head_dim;
    size_t kv, att = att_layout(hp, att_bq(hp, n_ubatch), NULL, NULL);
    /* decode key-range split (att_part): n_split <= ATT_SPLIT_PER_THREAD ·
     * n_threads chunks of n_head rows of head_dim + 2 floats */
    size_t part = n_threads == 1 ? 0 : (size_t)ATT_SPLIT_PER_THREAD * (size_t)n_threads *
                                           (size_t)hp->n_head * ((size_t)hp->head_dim + 2);
    if (!fr_mul_ok((size_t)hp->n_layer * (size_t)n_ctx, n_kv * sizeof(uint16_t), &kv) ||
        !fr_mul_ok(kv, (size_t)n_seq, &kv) ||
        !fr_mul_ok((size_t)hp->n_vocab * f, (size_t)n_seq, &bytes[B_LOGITS]) ||
        !fr_mul_ok(att, (size_t)n_threads, &att) || !fr_add_ok(att, part, &att) ||
        !fr_mul_ok(att, f, &bytes[B_ATT_TMP]))
        return false;
    bytes[B_KCACHE] = bytes[B_VCACHE] = kv;
    bytes[B_INV_FREQ] = (size_t)hp->n_rot / 2 * sizeof(double);
    bytes[B_X] = bytes[B_XB] = nub * n_embd * f;
    bytes[B_Q] = bytes[B_ATT] = nub * n_q * f;
    bytes[B_K] = bytes[B_V] = nub * n_kv * f;
    bytes[B_HB] = bytes[B_HB2] = nub * n_ff * f;
    bytes[B_SEQ_LEN] = (size_t)n_seq * sizeof(int32_t);
    bytes[B_TOK_SEQ] = bytes[B_TOK_POS] = nub * sizeof(int32_t);
    bytes[B_RUNS] = (size_t)n_seq * sizeof(fr_step_run);
    size_t work = 0;
    for (int32_t il = 0; il < hp->n_layer; il++) {
        const fr_layer *L = &m->layers[il];
        work = max_work(work, &L->wq, n_ubatch);
        work = max_work(work, &L->wk, n_ubatch);
        work = max_work(work, &L->wv, n_ubatch);
        work = max_work(work, &L->wo, n_ubatch);
        work = max_work(work, &L->w_gate, n_ubatch);
        work = max_work(work, &L->w_up, n_ubatch);
        work = max_work(work, &L->w_down, n_ubatch);
    }
    bytes[B_WORK] = max_work(work, &m->output, n_seq < n_ubatch ? n_seq : n_ubatch);
    for (int i = 0; i < B_COUNT; i++)
        if (bytes[i] == 0) bytes[i] = 64; /* never ask for 0 bytes */
    return true;
}

size_t fr_ctx_estimate_bytes_seqs(const fr_model *m, int32_t n_ctx, int32_t n_seq,
                                  int n_threads) {
    size_t bytes[B_COUNT], total = sizeof(fr_ctx);
    if (n_ctx < 0 || n_seq < 1 || n_threads < 1) return 0;
    if (m->hp.encoder) return SIZE_MAX; /* no decoder context fits an encoder */
    if (!plan(m, resolve_n_ctx(m, n_ctx), n_seq, n_threads, bytes)) return SIZE_MAX;
    for (int i = 0; i < B_COUNT; i++)
        if (!fr_add_ok(total, bytes[i], &total)) return SIZE_MAX;
    return total;
}

size_t fr_ctx_estimate_bytes(const fr_model *m, int32_t n_ctx, int n_threads) {
    return fr_ctx_estimate_bytes_seqs(m, n_ctx, 1, n_threads);
}

int fr_ctx_create(fr_model *m, int32_t n_ctx, fr_pool *pool, fr_ctx **out) {
    return fr_ctx_create_seqs(m, n_ctx, 1, pool, out);
}

int fr_ctx_create_seqs(fr_model *m, int32_t n_ctx, int32_t n_seq, fr_pool *pool, fr_ctx **out) {
    *out = NULL;
    const fr_hparams *hp = &m->hp;
    if (n_ctx < 0) return fr_errf(FR_EINVAL, "context size %d is negative", (int)n_ctx);
    if (n_seq < 1) return fr_errf(FR_EINVAL, "%d sequences: at least 1", (int)n_seq);
    if (hp->encoder)
        return fr_errf(FR_EUNSUPP, "%s: %s is an encoder: it embeds (fr_enc_create), it does not "
                       "generate", fr_gguf_path(m->gguf), hp->arch);
    n_ctx = resolve_n_ctx(m, n_ctx);

    size_t bytes[B_COUNT];
    if (!plan(m, n_ctx, n_seq, fr_pool_size(pool), bytes))
        return fr_errf(FR_ENOMEM, "context of %d × %d positions: size overflows", (int)n_seq,
                       (int)n_ctx);
    fr_ctx *c = fr_calloc(1, sizeof *c);
    if (!c) return FR_ENOMEM;
    c->model = m;
    c->pool = pool;
    c->n_ctx = n_ctx;
    c->n_seq = n_seq;
    c->n_ubatch = ubatch_of(n_ctx, n_seq);
    c->n_threads = fr_pool_size(pool);
    c->alloc_bytes = sizeof *c;
    if (!fr_malloc_aligned_n(c->bufs, bytes, B_COUNT, &c->alloc_bytes)) {
        fr_ctx_destroy(c);
        return FR_ENOMEM;
    }
    c->k_cache = c->bufs[B_KCACHE];
    c->v_cache = c->bufs[B_VCACHE];
    c->inv_freq = c->bufs[B_INV_FREQ];
    c->x = c->bufs[B_X];
    c->xb = c->bufs[B_XB];
    c->q = c->bufs[B_Q];
    c->k = c->bufs[B_K];
    c->v = c->bufs[B_V];
    c->att = c->bufs[B_ATT];
    c->hb = c->bufs[B_HB];
    c->hb2 = c->bufs[B_HB2];
    c->att_tmp = c->bufs[B_ATT_TMP];
    c->att_bq = att_bq(hp, c->n_ubatch);
    c->att_stride = att_layout(hp, c->att_bq, NULL, NULL);
    c->logits = c->bufs[B_LOGITS];
    c->seq_len = c->bufs[B_SEQ_LEN];
    memset(c->seq_len, 0, (size_t)n_seq * sizeof *c->seq_len);
    c->tok_seq = c->bufs[B_TOK_SEQ];
    c->tok_pos = c->bufs[B_TOK_POS];
    c->runs = c->bufs[B_RUNS];
    c->work = c->bufs[B_WORK];
    c->work_size = bytes[B_WORK];

    /* θ_k = pos · base^(−2k/n_rot) · freq_scale / ff[k]; computed in double. */
    for (int32_t k = 0; k < hp->n_rot / 2; k++) {
        double f = pow((double)hp->rope_base, -2.0 * k / hp->n_rot) * hp->rope_freq_scale;
        if (m->rope_freqs) f /= m->rope_freqs[k];
        c->inv_freq[k] = f;
    }
    *out = c;
    return 0;
}

void fr_ctx_destroy(fr_ctx *c) {
    if (!c) return;
    for (int i = 0; i < FR_CTX_NBUFS; i++) fr_free_aligned(c->bufs[i]);
    fr_free(c);
}

int32_t fr_ctx_n_ctx(const fr_ctx *c) { return c->n_ctx; }
int32_t fr_ctx_n_past(const fr_ctx *c) { return c->seq_len[0]; }
int32_t fr_ctx_n_seq(const fr_ctx *c) { return c->n_seq; }
int32_t fr_ctx_max_batch(const fr_ctx *c) { return c->n_ubatch; }

void fr_ctx_reset(fr_ctx *c) {
    memset(c->seq_len, 0, (size_t)c->n_seq * sizeof *c->seq_len);
}

int32_t fr_ctx_seq_len(const fr_ctx *c, int32_t seq) {
    return seq >= 0 && seq < c->n_seq ? c->seq_len[seq] : 0;
}

void fr_ctx_seq_clear(fr_ctx *c, int32_t seq) {
    if (seq >= 0 && seq < c->n_seq) c->seq_len[seq] = 0;
}

size_t fr_ctx_bytes(const fr_ctx *c) { return c->alloc_bytes; }

size_t fr_ctx_kv_bytes(const fr_ctx *c) {
    const fr_hparams *hp = &c->model->hp;
    return 2 * (size_t)hp->n_layer * (size_t)c->n_seq * (size_t)c->n_ctx *
           (size_t)hp->n_head_kv * (size_t)hp->head_dim * sizeof(uint16_t);
}

/* ---- building blocks ---- */

/* Below this many floats an element-wise pass runs on the calling thread:
 * a pool wake-up and barrier cost more than the work. */
#define INLINE_FLOATS 16384

/* A decode step whose attention reads fewer (key, query head) pairs than
 * this runs it on the calling thread. */
#define INLINE_ATT_ROWS 1024

/* What the pool tasks of one step share. */
typedef struct step_job {
    fr_ctx *c;
    const fr_layer *L;
    const fr_ops *ops;
    const fr_type_ops *f16;
    int N, il;
    const fr_step_run *runs;     /* [n_runs] */
    int n_runs;
    const float *bias;           /* add_norm: added with xb (or NULL) */
    const float *norm;           /* add_norm: norm weight (or NULL: no norm) */
    bool add;                    /* add_norm: x += xb first */
    _Alignas(64) atomic_int next; /* attention: next item */
    char pad[64 - sizeof(atomic_int)];
} step_job;

static void token_range(int N, int ith, int nth, int *t0, int *t1) {
    *t0 = (int)((int64_t)N * ith / nth);
    *t1 = (int)((int64_t)N * (ith + 1) / nth);
}

static float *thread_tmp(const fr_ctx *c, int ith) {
    return c->att_tmp + (size_t)ith * c->att_stride;
}

/* x[t] += xb[t] (+bias); xb[t] = RMSNorm(x[t])·norm, over this thread's
 * tokens. */
static void add_norm_task(void *arg, int ith, int nth) {
    const step_job *j = arg;
    fr_ctx *c = j->c;
    const fr_hparams *hp = &c->model->hp;
    int64_t n = hp->n_embd;
    int t0, t1;
    token_range(j->N, ith, nth, &t0, &t1);
    for (int t = t0; t < t1; t++) {
        float *x = c->x + t * n, *xb = c->xb + t * n;
        if (j->add) {
            if (j->bias) j->ops->add(xb, j->bias, n);
            j->ops->add(x, xb, n);
        }
        if (j->norm) j->ops->rmsnorm(xb, x, j->norm, n, hp->rms_eps);
    }
}

/* hb = silu(hb) ⊙ hb2 over this thread's share of the elements. */
static void silu_task(void *arg, int ith, int nth) {
    const step_job *j = arg;
    fr_ctx *c = j->c;
    int64_t total = (int64_t)j->N * c->model->hp.n_ff;
    int64_t i0 = total * ith / nth & ~(int64_t)15, i1 = total * (ith + 1) / nth & ~(int64_t)15;
    if (ith == nth - 1) i1 = total;
    j->ops->silu_mul(c->hb + i0, c->hb2 + i0, i1 - i0);
}

static void add_bias_row(const fr_ops *ops, float *y, const float *b, int64_t n) {
    if (b) ops->add(y, b, n);
}

/* Biases, RoPE and the cache store for this thread's tokens. */
static void qkv_rows(const step_job *j, int ith, int nth) {
    fr_ctx *c = j->c;
    const fr_hparams *hp = &c->model->hp;
    const fr_layer *L = j->L;
    int64_t n_q = (int64_t)hp->n_head * hp->head_dim;
    int64_t n_kv = (int64_t)hp->n_head_kv * hp->head_dim;
    size_t hd = (size_t)hp->head_dim;
    bool neox = hp->rope_type == 2;
    size_t seq_rows = (size_t)c->n_ctx * hd;             /* one KV head of one sequence */
    size_t layer = (size_t)c->n_seq * (size_t)c->n_ctx * (size_t)n_kv;
    uint16_t *kc = c->k_cache + (size_t)j->il * layer;
    uint16_t *vc = c->v_cache + (size_t)j->il * layer;
    att_parts p;
    att_layout(hp, c->att_bq, thread_tmp(c, ith), &p);
    int t0, t1;
    token_range(j->N, ith, nth, &t0, &t1);
    for (int t = t0; t < t1; t++) {
        float *q = c->q + t * n_q, *k = c->k + t * n_kv, *v = c->v + t * n_kv;
        add_bias_row(j->ops, q, L->bq, n_q);
        add_bias_row(j->ops, k, L->bk, n_kv);
        add_bias_row(j->ops, v, L->bv, n_kv);
        /* cos θ_i and the signed sin θ_i at each rotated index (ops.h) */
        double pos = c->tok_pos[t];
        int half = hp->n_rot / 2;
        float *cs = p.cs, *sn = p.cs + hp->n_rot;
        for (int i = 0; i < half; i++) {
            double theta = pos * c->inv_freq[i];
            float co = (float)cos(theta), si = (float)sin(theta);
            int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
            cs[i0] = cs[i1] = co;
            sn[i0] = -si;
            sn[i1] = si;
        }
        j->ops->rope(q, hp->n_head, hp->head_dim, hp->n_rot, cs, sn, neox);
        j->ops->rope(k, hp->n_head_kv, hp->head_dim, hp->n_rot, cs, sn, neox);
        for (int h = 0; h < hp->n_head_kv; h++) {
            size_t src = (size_t)h * hd;
            size_t dst = ((size_t)h * (size_t)c->n_seq + (size_t)c->tok_seq[t]) * seq_rows +
                         (size_t)c->tok_pos[t] * hd;
            j->f16->quantize(k + src, kc + dst, (int64_t)hd);
            j->f16->quantize(v + src, vc + dst, (int64_t)hd);
        }
    }
}

/* Where an item's rows end up: the attention output, normalised (o NULL),
 * or unnormalised partial rows o with their running max m and sum l, for a
 * split over key ranges that att_merge combines. */
typedef struct att_out {
    float *o, *m, *l;            /* [R][hd], [R], [R] or NULL */
} att_out;

/* One attention item: KV head kvh, tokens [t0, t1) of run ru of the
 * step, keys [kb, ke) (ke is cut to what the last token sees). */
static void att_item(const step_job *j, const att_parts *p, const fr_step_run *ru, int kvh,
                     int t0, int t1, int kb, int ke, const att_out *out) {
    fr_ctx *c = j->c;
    const fr_hparams *hp = &c->model->hp;
    const fr_ops *ops = j->ops;
    int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    size_t n_q = (size_t)hp->n_head * (size_t)hd;
    size_t head = (((size_t)j->il * (size_t)hp->n_head_kv + (size_t)kvh) * (size_t)c->n_seq +
                   (size_t)ru->seq) * (size_t)c->n_ctx * (size_t)hd;
    int pos0 = ru->pos0 - ru->t0;   /* position of step token t is pos0 + t */
    const uint16_t *kc = c->k_cache + head, *vc = c->v_cache + head;
    int R = (t1 - t0) * group, rp = fr_ops_att_rp(R);
    float scale = 1.0f / sqrtf((float)hd);

    for (int t = t0; t < t1; t++)
        for (int g = 0; g < group; g++) {
            int r = (t - t0) * group + g;
            size_t off = (size_t)t * n_q + (size_t)(kvh * group + g) * (size_t)hd;
            p->qrow[r] = c->q + off;
            p->orow[r] = out->o ? out->o + (size_t)r * (size_t)hd : c->att + off;
            memset(p->orow[r], 0, (size_t)hd * sizeof(float));
            p->m[r] = -INFINITY;
            p->l[r] = 0;
        }
    memset(p->qs, 0, (size_t)fr_ops_att_qs_floats(R, hd) * sizeof(float));
    fr_ops_att_put_q(p->qs, R, hd, (const float *const *)p->qrow);

    if (ke > pos0 + t1) ke = pos0 + t1; /* the last token sees keys < pos0+t1 */
    for (int k0 = kb; k0 < ke; k0 += FR_ATT_BK) {
        int nk = ke - k0 < FR_ATT_BK ? ke - k0 : FR_ATT_BK;
        ops->f16_rows(kc + (size_t)k0 * (size_t)hd, (size_t)hd, nk, hd, p->kt);
        ops->f16_rows(vc + (size_t)k0 * (size_t)hd, (size_t)hd, nk, hd, p->vt);
        ops->att_qk(nk, hd, p->kt, R, rp, p->qs, scale, p->st);
        for (int t = t0, r = 0; t < t1; t++)
            for (int g = 0; g < group; g++) p->nv[r++] = pos0 + t + 1 - k0;
        ops->att_softmax(nk, R, rp, p->st, p->nv, p->m, p->l, p->corr);
        ops->att_pv(nk, hd, p->vt, R, rp, p->st, p->corr, p->orow);
    }
    if (out->o) {
        memcpy(out->m, p->m, (size_t)R * sizeof(float));
        memcpy(out->l, p->l, (size_t)R * sizeof(float));
        return;
    }
    for (int r = 0; r < R; r++) ops->scale(p->orow[r], 1.0f / p->l[r], hd);
}

/* Key-range chunks per KV head for a decode step of one sequence: enough
 * items for every thread to take several (the heads alone may not divide
 * evenly), at least two tiles each; 1 (no split) for batches, several
 * sequences and one thread. */
static int att_n_split(const fr_ctx *c, int n_runs, int N, int pos0, int nth) {
    int n_kvh = c->model->hp.n_head_kv;
    if (n_runs != 1 || N != 1 || nth == 1 || n_kvh >= ATT_SPLIT_PER_THREAD * nth) return 1;
    int n_tiles = (pos0 + 1 + FR_ATT_BK - 1) / FR_ATT_BK;
    int want = (ATT_SPLIT_PER_THREAD * nth + n_kvh - 1) / n_kvh;
    int most = n_tiles / 2;
    return want < most ? want : most < 1 ? 1 : most;
}

/* The partial rows of a split decode step: after the per-thread parts of
 * att_tmp, [n_head_kv][n_split][group] rows of o, then m, then l. */
static att_out att_part(const fr_ctx *c, int n_split, int kvh, int s) {
    const fr_hparams *hp = &c->model->hp;
    size_t group = (size_t)(hp->n_head / hp->n_head_kv), hd = (size_t)hp->head_dim;
    size_t rows = (size_t)hp->n_head_kv * (size_t)n_split * group;
    size_t first = ((size_t)kvh * (size_t)n_split + (size_t)s) * group;
    float *base = c->att_tmp + (size_t)c->n_threads * c->att_stride;
    return (att_out){base + first * hd, base + rows * hd + first, base + rows * (hd + 1) + first};
}

/* Combine the n_split partial rows of every query head into att (N = 1):
 * M = max m_s, L = Σ l_s·e^(m_s−M), o = Σ o_s·e^(m_s−M) / L. */
static void att_merge(const step_job *j, int n_split, int ith, int nth) {
    fr_ctx *c = j->c;
    const fr_hparams *hp = &c->model->hp;
    int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    for (int h = ith; h < hp->n_head; h += nth) {
        int kvh = h / group, g = h % group;
        float M = -INFINITY, L = 0, *o = c->att + (size_t)h * (size_t)hd;
        for (int s = 0; s < n_split; s++) {
            att_out a = att_part(c, n_split, kvh, s);
            if (a.m[g] > M) M = a.m[g];
        }
        memset(o, 0, (size_t)hd * sizeof *o);
        for (int s = 0; s < n_split; s++) {
            att_out a = att_part(c, n_split, kvh, s);
            float w = expf(a.m[g] - M);
            L += a.l[g] * w;
            const float *po = a.o + (size_t)g * (size_t)hd;
            for (int d = 0; d < hd; d++) o[d] += w * po[d];
        }
        float inv = 1.0f / L;
        for (int d = 0; d < hd; d++) o[d] *= inv;
    }
}

/* Attention items from the shared counter, run after run (each run's
 * latest token blocks first), or (decode split) KV head × key chunk, then
 * a barrier and the merge. */
static void att_items(step_job *j, int ith, int nth) {
    fr_ctx *c = j->c;
    const fr_hparams *hp = &c->model->hp;
    int bq = c->att_bq, n_kvh = hp->n_head_kv;
    const fr_step_run *r0 = &j->runs[0];
    int n_split = att_n_split(c, j->n_runs, j->N, r0->pos0, nth);
    int n_items = 0;
    for (int r = 0; r < j->n_runs; r++) n_items += (j->runs[r].n + bq - 1) / bq * n_kvh;
    n_items *= n_split;
    att_parts p;
    att_layout(hp, bq, thread_tmp(c, ith), &p);
    for (;;) {
        int i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (i >= n_items) break;
        int kvh = i % n_kvh;
        if (n_split > 1) {
            int n_tiles = (r0->pos0 + 1 + FR_ATT_BK - 1) / FR_ATT_BK, s = i / n_kvh;
            int kb = (int)((int64_t)n_tiles * s / n_split) * FR_ATT_BK;
            int ke = (int)((int64_t)n_tiles * (s + 1) / n_split) * FR_ATT_BK;
            att_out out = att_part(c, n_split, kvh, s);
            att_item(j, &p, r0, kvh, 0, 1, kb, ke, &out);
            continue;
        }
        const fr_step_run *ru = j->runs;
        int k = i / n_kvh, nqb;
        while (k >= (nqb = (ru->n + bq - 1) / bq)) { k -= nqb; ru++; }
        int qb = nqb - 1 - k;
        int t0 = ru->t0 + qb * bq, t1 = t0 + bq < ru->t0 + ru->n ? t0 + bq : ru->t0 + ru->n;
        att_item(j, &p, ru, kvh, t0, t1, 0, INT32_MAX, &(att_out){NULL, NULL, NULL});
    }
    if (n_split > 1) {
        fr_pool_barrier(c->pool);
        att_merge(j, n_split, ith, nth);
    }
}

/* Biases, RoPE, cache store; barrier; attention. */
static void attention_task(void *arg, int ith, int nth) {
    step_job *j = arg;
    qkv_rows(j, ith, nth);
    fr_pool_barrier(j->c->pool);
    att_items(j, ith, nth);
}

static void attention_only_task(void *arg, int ith, int nth) {
    att_items(arg, ith, nth);
}

void fr__ctx_attention(fr_ctx *c, int il, int N, int pos0) {
    c->runs[0] = (fr_step_run){.seq = 0, .pos0 = pos0, .t0 = 0, .n = N, .logits_row = -1};
    step_job job = {.c = c, .ops = fr_ops_get(), .f16 = fr_kernels_get(FR_TYPE_F16), .N = N,
                    .runs = c->runs, .n_runs = 1, .il = il};
    atomic_init(&job.next, 0);
    fr_pool_run(c->pool, attention_only_task, &job);
}

static void matmul(fr_ctx *c, const fr_weight *w, const float *x, int64_t N, float *y) {
    fr_matmul(c->pool, w->type, w->data, w->cols, w->rows, x, N, y, w->rows, c->work);
}

/* Several projections of xb: one fused run when they share a type
 * (fr_matmul_multi), else one matmul each. */
static void matmul_same_input(fr_ctx *c, const fr_weight *const *w, float *const *y, int n, int64_t N) {
    bool same = true;
    for (int i = 1; i < n; i++) same = same && w[i]->type == w[0]->type && w[i]->cols == w[0]->cols;
    if (!same) {
        for (int i = 0; i < n; i++) matmul(c, w[i], c->xb, N, y[i]);
        return;
    }
    fr_mm_part parts[3];
    for (int i = 0; i < n; i++) parts[i] = (fr_mm_part){w[i]->data, w[i]->rows, y[i]};
    fr_matmul_multi(c->pool, w[0]->type, w[0]->cols, parts, n, c->xb, N, c->work);
}

/* Run an element-wise task over the pool, or inline when small. */
static void run_elementwise(fr_ctx *c, fr_pool_fn fn, step_job *j, int64_t floats) {
    if (floats < INLINE_FLOATS) fn(j, 0, 1);
    else fr_pool_run(c->pool, fn, j);
}

/* One step over the n_runs runs already in c->runs (validated; N tokens in
 * all, <= n_ubatch, t0 in step order, logits_row >= 0 where wanted). */
static void forward_step(fr_ctx *c, int N, int n_runs) {
    const fr_model *m = c->model;
    const fr_hparams *hp = &m->hp;
    int64_t n_embd = hp->n_embd, n_ff = hp->n_ff;
    step_job job = {.c = c, .ops = fr_ops_get(), .f16 = fr_kernels_get(FR_TYPE_F16), .N = N,
                    .runs = c->runs, .n_runs = n_runs};

    for (int r = 0; r < n_runs; r++) {
        const fr_step_run *ru = &c->runs[r];
        for (int t = 0; t < ru->n; t++) {
            int ts = ru->t0 + t;
            c->tok_seq[ts] = ru->seq;
            c->tok_pos[ts] = ru->pos0 + t;
            fr_dequantize_row(m->tok_embd.type,
                              (const char *)m->tok_embd.data +
                                  (size_t)ru->tokens[t] * m->tok_embd.row_bytes,
                              c->x + ts * n_embd, n_embd);
        }
        c->seq_len[ru->seq] = ru->pos0 + ru->n;
    }
    job.add = false;
    job.bias = NULL;
    job.norm = m->layers[0].attn_norm;
    run_elementwise(c, add_norm_task, &job, N * n_embd);

    /* a short decode of one sequence: attention cheaper than a wake-up */
    bool att_inline = n_runs == 1 && N == 1 &&
                      (int64_t)(c->runs[0].pos0 + 1) * hp->n_head < INLINE_ATT_ROWS;
    for (int il = 0; il < hp->n_layer; il++) {
        const fr_layer *L = &m->layers[il];
        job.L = L;
        job.il = il;

        /* xb = RMSNorm(x)·attn_norm is ready */
        const fr_weight *qkv[3] = {&L->wq, &L->wk, &L->wv};
        float *qkv_out[3] = {c->q, c->k, c->v};
        matmul_same_input(c, qkv, qkv_out, 3, N);
        atomic_store_explicit(&job.next, 0, memory_order_relaxed);
        if (N * (n_embd + n_ff) < INLINE_FLOATS || N <= n_runs) {
            qkv_rows(&job, 0, 1); /* small: no barrier inside the run */
            if (att_inline)
                attention_only_task(&job, 0, 1);
            else
                fr_pool_run(c->pool, attention_only_task, &job);
        } else {
            fr_pool_run(c->pool, attention_task, &job);
        }

        matmul(c, &L->wo, c->att, N, c->xb);
        job.add = true;
        job.bias = L->bo;
        job.norm = L->ffn_norm;
        run_elementwise(c, add_norm_task, &job, N * n_embd);

        const fr_weight *gu[2] = {&L->w_gate, &L->w_up};
        float *gu_out[2] = {c->hb, c->hb2};
        matmul_same_input(c, gu, gu_out, 2, N);
        run_elementwise(c, silu_task, &job, N * n_ff);
        matmul(c, &L->w_down, c->hb, N, c->xb);

        /* x += xb, then the next layer's norm (none after the last) */
        job.bias = NULL;
        job.norm = il + 1 < hp->n_layer ? m->layers[il + 1].attn_norm : NULL;
        run_elementwise(c, add_norm_task, &job, N * n_embd);
    }

    /* logits for the last token of every run that asks, in one matmul */
    int n_out = 0;
    for (int r = 0; r < n_runs; r++) {
        fr_step_run *ru = &c->runs[r];
        if (ru->logits_row < 0) continue;
        ru->logits_row = n_out;
        job.ops->rmsnorm(c->xb + (int64_t)n_out * n_embd,
                         c->x + (int64_t)(ru->t0 + ru->n - 1) * n_embd, m->output_norm, n_embd,
                         hp->rms_eps);
        n_out++;
    }
    if (n_out) {
        matmul(c, &m->output, c->xb, n_out, c->logits);
        if (m->output_bias)
            for (int r = 0; r < n_out; r++)
                job.ops->add(c->logits + (int64_t)r * hp->n_vocab, m->output_bias, hp->n_vocab);
    }
}

/* Check a batch without changing anything: sequences in range and
 * distinct, positions within what each holds and the context, tokens in
 * range, the total within a step. */
static int check_batch(const fr_ctx *c, const fr_batch_run *runs, int32_t n_runs,
                       int64_t max_total, int32_t *total) {
    int32_t n_vocab = c->model->hp.n_vocab;
    int64_t sum = 0;
    if (n_runs < 1 || n_runs > c->n_seq || !runs)
        return fr_errf(FR_EINVAL, "batch of %d runs: between 1 and %d", (int)n_runs, (int)c->n_seq);
    for (int32_t i = 0; i < n_runs; i++) {
        const fr_batch_run *r = &runs[i];
        if (r->seq < 0 || r->seq >= c->n_seq)
            return fr_errf(FR_EINVAL, "batch run %d: sequence %d out of range [0, %d)", (int)i,
                           (int)r->seq, (int)c->n_seq);
        for (int32_t k = 0; k < i; k++)
            if (runs[k].seq == r->seq)
                return fr_errf(FR_EINVAL, "batch run %d: sequence %d appears twice", (int)i,
                               (int)r->seq);
        if (r->n <= 0 || !r->tokens)
            return fr_errf(FR_EINVAL, "batch run %d: %d tokens", (int)i, (int)r->n);
        if (r->pos < 0 || r->pos > c->seq_len[r->seq])
            return fr_errf(FR_EINVAL, "batch run %d: position %d, sequence %d holds %d", (int)i,
                           (int)r->pos, (int)r->seq, (int)c->seq_len[r->seq]);
        if ((int64_t)r->pos + r->n > c->n_ctx)
            return fr_errf(FR_ETOOLONG, "eval: %d tokens after %d do not fit a context of %d",
                           (int)r->n, (int)r->pos, (int)c->n_ctx);
        for (int32_t t = 0; t < r->n; t++)
            if (r->tokens[t] < 0 || r->tokens[t] >= n_vocab)
                return fr_errf(FR_EINVAL, "eval: token %d at index %d is out of range [0, %d)",
                               (int)r->tokens[t], (int)t, (int)n_vocab);
        sum += r->n;
    }
    if (sum > max_total)
        return fr_errf(FR_EINVAL, "batch of %lld tokens: at most %lld per step", (long long)sum,
                       (long long)max_total);
    *total = (int32_t)sum;
    return 0;
}

static void start_step(fr_ctx *c, int r, int32_t seq, int32_t pos, int32_t t0, int32_t n,
                       const int32_t *tokens, bool logits) {
    c->runs[r] = (fr_step_run){.seq = seq, .pos0 = pos, .t0 = t0, .n = n,
                               .logits_row = logits ? 0 : -1, .tokens = tokens};
}

int fr_ctx_eval_batch(fr_ctx *c, fr_batch_run *runs, int32_t n_runs) {
    int32_t N = 0, t0 = 0;
    int rc = check_batch(c, runs, n_runs, c->n_ubatch, &N);
    if (rc) return rc;
    for (int32_t i = 0; i < n_runs; i++) {
        start_step(c, i, runs[i].seq, runs[i].pos, t0, runs[i].n, runs[i].tokens,
                   runs[i].want_logits);
        t0 += runs[i].n;
    }
    forward_step(c, N, n_runs);
    for (int32_t i = 0; i < n_runs; i++)
        runs[i].logits = runs[i].want_logits
                             ? c->logits + (int64_t)c->runs[i].logits_row * c->model->hp.n_vocab
                             : NULL;
    return 0;
}

int fr_ctx_eval(fr_ctx *c, const int32_t *tokens, int32_t n, const float **logits) {
    if (logits) *logits = NULL;
    if (n <= 0 || !tokens) return fr_errf(FR_EINVAL, "eval: %d tokens", (int)n);
    /* validate the whole input as one run (nothing changes on error), then
     * run it in steps of n_ubatch */
    fr_batch_run whole = {.seq = 0, .pos = c->seq_len[0], .n = n, .tokens = tokens};
    int32_t N;
    int rc = check_batch(c, &whole, 1, INT64_MAX, &N);
    if (rc) return rc;
    for (int32_t off = 0; off < n; off += c->n_ubatch) {
        int32_t nb = n - off < c->n_ubatch ? n - off : c->n_ubatch;
        start_step(c, 0, 0, c->seq_len[0], 0, nb, tokens + off, off + nb == n);
        forward_step(c, nb, 1);
    }
    if (logits) *logits = c->logits;
    return 0;
}
