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
 * Attention is pass.h's driver (fr_pass_att), causal, over the f16 cache:
 * a work item is one KV head and a block of att_bq tokens, i.e. the R =
 * att_bq·group query rows that read the same keys, walked in tiles of
 * FR_ATT_BK with an online softmax; keys after the block's last token are
 * never read.  Items are taken from a shared counter, longest (latest
 * tokens) first within a run.  A decode step of one sequence has one item
 * per KV head, split over key ranges when that leaves threads idle.  The
 * norms, SiLU·up, RoPE table and the pool-task shares are pass.h's too.
 *
 * Errors are detected before anything changes, so a failed eval leaves the
 * context as it was.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/model_int.h"
#include "engine/pass.h"
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
    size_t kv, att = fr__pass_att_layout(hp, att_bq(hp, n_ubatch), true, NULL, NULL);
    size_t part = fr__pass_att_split_floats(hp, n_threads); /* decode key-range split */
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
    return true;
}

size_t fr_ctx_estimate_bytes_seqs(const fr_model *m, int32_t n_ctx, int32_t n_seq,
                                  int n_threads) {
    size_t bytes[B_COUNT];
    if (n_ctx < 0 || n_seq < 1 || n_threads < 1) return 0;
    if (m->hp.encoder) return SIZE_MAX; /* no decoder context fits an encoder */
    if (!plan(m, resolve_n_ctx(m, n_ctx), n_seq, n_threads, bytes)) return SIZE_MAX;
    return fr__pass_total(sizeof(fr_ctx), bytes, B_COUNT);
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
    if (!fr__pass_alloc(c->bufs, bytes, B_COUNT, sizeof *c, &c->alloc_bytes)) {
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
    c->att_stride = fr__pass_att_layout(hp, c->att_bq, true, NULL, NULL);
    c->logits = c->bufs[B_LOGITS];
    c->seq_len = c->bufs[B_SEQ_LEN];
    memset(c->seq_len, 0, (size_t)n_seq * sizeof *c->seq_len);
    c->tok_seq = c->bufs[B_TOK_SEQ];
    c->tok_pos = c->bufs[B_TOK_POS];
    c->runs = c->bufs[B_RUNS];
    c->work = c->bufs[B_WORK];
    c->work_size = bytes[B_WORK];

    /* θ_k = pos · base^(−2k/n_rot) · freq_scale / ff[k]; computed in double. */
    fr__pass_rope_freqs(hp, m->rope_freqs, c->inv_freq);
    *out = c;
    return 0;
}

void fr_ctx_destroy(fr_ctx *c) {
    if (c) fr__pass_free(c, c->bufs, FR_CTX_NBUFS);
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

int fr_ctx_seq_copy(fr_ctx *c, int32_t src, int32_t dst, int32_t n) {
    if (src < 0 || src >= c->n_seq || dst < 0 || dst >= c->n_seq || src == dst || n < 0 ||
        n > c->seq_len[src])
        return fr_errf(FR_EINVAL, "copy of %d positions from sequence %d to %d (%d sequences, "
                       "the source holds %d)", (int)n, (int)src, (int)dst, (int)c->n_seq,
                       src >= 0 && src < c->n_seq ? (int)c->seq_len[src] : 0);
    const fr_hparams *hp = &c->model->hp;
    size_t hd = (size_t)hp->head_dim, per_seq = (size_t)c->n_ctx * hd, rows = (size_t)n * hd;
    size_t blocks = (size_t)hp->n_layer * (size_t)hp->n_head_kv;   /* [layer][head] */
    for (size_t b = 0; b < blocks; b++) {
        size_t base = b * (size_t)c->n_seq * per_seq;
        memcpy(c->k_cache + base + (size_t)dst * per_seq, c->k_cache + base + (size_t)src * per_seq,
               rows * sizeof *c->k_cache);
        memcpy(c->v_cache + base + (size_t)dst * per_seq, c->v_cache + base + (size_t)src * per_seq,
               rows * sizeof *c->v_cache);
    }
    c->seq_len[dst] = n;
    return 0;
}

size_t fr_ctx_bytes(const fr_ctx *c) { return c->alloc_bytes; }

size_t fr_ctx_kv_bytes(const fr_ctx *c) {
    const fr_hparams *hp = &c->model->hp;
    return 2 * (size_t)hp->n_layer * (size_t)c->n_seq * (size_t)c->n_ctx *
           (size_t)hp->n_head_kv * (size_t)hp->head_dim * sizeof(uint16_t);
}

/* ---- building blocks ---- */

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
    fr_pass_norm norm;           /* x += xb (+bias); xb = RMSNorm(x)·norm */
    fr_pass_act act;             /* hb = silu(hb) ⊙ hb2 */
    fr_pass_att att;             /* causal, over layer il of the KV cache */
} step_job;

/* Run r of the step as the attention sees it: its keys are the positions
 * 0 .. pos0+n−1 of its sequence's rows of the cache. */
static void att_run_of(const void *arg, int r, fr_pass_att_run *out) {
    const fr_ctx *c = arg;
    const fr_step_run *ru = &c->runs[r];
    *out = (fr_pass_att_run){.t0 = ru->t0, .n = ru->n, .n_keys = ru->pos0 + ru->n,
                             .kv_row = (int64_t)ru->seq * c->n_ctx};
}

/* The step's jobs for N tokens in n_runs runs (the attention's layer is
 * set by set_layer). */
static void init_job(fr_ctx *c, step_job *j, int N, int n_runs) {
    const fr_hparams *hp = &c->model->hp;
    size_t n_q = (size_t)hp->n_head * (size_t)hp->head_dim;
    *j = (step_job){.c = c, .ops = fr_ops_get(), .f16 = fr_kernels_get(FR_TYPE_F16), .N = N};
    j->norm = (fr_pass_norm){.ops = j->ops, .N = N, .n = hp->n_embd, .x = c->x, .xb = c->xb,
                             .out = c->xb, .kind = FR_PASS_RMSNORM, .eps = hp->rms_eps};
    j->act = (fr_pass_act){.ops = j->ops, .N = N, .n = hp->n_ff, .kind = FR_PASS_SILU_GATE,
                           .h = c->hb, .h2 = c->hb2};
    fr_pass_att *a = &j->att;
    fr__pass_att_init(a, hp, c->pool, c->att_bq, c->att_tmp, c->att_stride);
    /* causal over the step's sequences in the cache; a decode step may split */
    a->causal = true;
    if (c->n_threads > 1) a->split = c->att_tmp + (size_t)c->n_threads * c->att_stride;
    a->q = (fr_pass_rows){c->q, n_q};
    a->out = (fr_pass_rows){c->att, n_q};
    a->kv = (fr_pass_kv){.f16 = true, /* k, v: set_layer */
                         .head_stride = (size_t)c->n_seq * (size_t)c->n_ctx * (size_t)hp->head_dim};
    a->run = att_run_of;
    a->run_arg = c;
    a->n_runs = n_runs;
    a->N = N;
}

/* Layer il: its weights and its KV cache. */
static void set_layer(step_job *j, int il) {
    fr_ctx *c = j->c;
    const fr_hparams *hp = &c->model->hp;
    size_t layer = (size_t)c->n_seq * (size_t)c->n_ctx * (size_t)hp->n_head_kv *
                   (size_t)hp->head_dim;
    j->il = il;
    j->L = &c->model->layers[il];
    j->att.kv.k = c->k_cache + (size_t)il * layer;
    j->att.kv.v = c->v_cache + (size_t)il * layer;
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
    bool neox = hp->rope_type == FR_ROPE_NEOX;
    size_t seq_rows = (size_t)c->n_ctx * hd;             /* one KV head of one sequence */
    uint16_t *kc = (uint16_t *)j->att.kv.k, *vc = (uint16_t *)j->att.kv.v;
    fr_pass_att_parts p;
    fr__pass_att_parts(&j->att, ith, &p);
    int t0, t1;
    fr__pass_share(j->N, ith, nth, &t0, &t1);
    for (int t = t0; t < t1; t++) {
        float *q = c->q + t * n_q, *k = c->k + t * n_kv, *v = c->v + t * n_kv;
        add_bias_row(j->ops, q, L->bq, n_q);
        add_bias_row(j->ops, k, L->bk, n_kv);
        add_bias_row(j->ops, v, L->bv, n_kv);
        fr__pass_rope(j->ops, hp, neox, c->inv_freq, c->tok_pos[t], p.cs, q, k);
        for (int h = 0; h < hp->n_head_kv; h++) {
            size_t src = (size_t)h * hd;
            size_t dst = ((size_t)h * (size_t)c->n_seq + (size_t)c->tok_seq[t]) * seq_rows +
                         (size_t)c->tok_pos[t] * hd;
            j->f16->quantize(k + src, kc + dst, (int64_t)hd);
            j->f16->quantize(v + src, vc + dst, (int64_t)hd);
        }
    }
}

/* Biases, RoPE, cache store; barrier; attention. */
static void attention_task(void *arg, int ith, int nth) {
    step_job *j = arg;
    qkv_rows(j, ith, nth);
    fr_pool_barrier(j->c->pool);
    fr__pass_att_items(&j->att, ith, nth);
}

void fr__ctx_attention(fr_ctx *c, int il, int N, int pos0) {
    c->runs[0] = (fr_step_run){.seq = 0, .pos0 = pos0, .t0 = 0, .n = N, .logits_row = -1};
    step_job job;
    init_job(c, &job, N, 1);
    set_layer(&job, il);
    fr_pool_run(c->pool, fr__pass_att_task, &job.att);
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

/* One step over the n_runs runs already in c->runs (validated; N tokens in
 * all, <= n_ubatch, t0 in step order, logits_row >= 0 where wanted). */
static void forward_step(fr_ctx *c, int N, int n_runs) {
    const fr_model *m = c->model;
    const fr_hparams *hp = &m->hp;
    int64_t n_embd = hp->n_embd, n_ff = hp->n_ff;
    step_job job;
    init_job(c, &job, N, n_runs);

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
    job.norm.add = false;
    job.norm.bias = NULL;
    job.norm.w = m->layers[0].attn_norm;
    fr__pass_run(c->pool, fr__pass_add_norm_task, &job.norm, N * n_embd);

    /* a short decode of one sequence: attention cheaper than a wake-up */
    bool att_inline = n_runs == 1 && N == 1 &&
                      (int64_t)(c->runs[0].pos0 + 1) * hp->n_head < INLINE_ATT_ROWS;
    for (int il = 0; il < hp->n_layer; il++) {
        set_layer(&job, il);
        const fr_layer *L = job.L;

        /* xb = RMSNorm(x)·attn_norm is ready */
        const fr_weight *qkv[3] = {&L->wq, &L->wk, &L->wv};
        float *qkv_out[3] = {c->q, c->k, c->v};
        matmul_same_input(c, qkv, qkv_out, 3, N);
        fr__pass_att_begin(&job.att);
        if (N * (n_embd + n_ff) < FR_PASS_INLINE_FLOATS || N <= n_runs) {
            qkv_rows(&job, 0, 1); /* small: no barrier inside the run */
            if (att_inline)
                fr__pass_att_task(&job.att, 0, 1);
            else
                fr_pool_run(c->pool, fr__pass_att_task, &job.att);
        } else {
            fr_pool_run(c->pool, attention_task, &job);
        }

        matmul(c, &L->wo, c->att, N, c->xb);
        job.norm.add = true;
        job.norm.bias = L->bo;
        job.norm.w = L->ffn_norm;
        fr__pass_run(c->pool, fr__pass_add_norm_task, &job.norm, N * n_embd);

        const fr_weight *gu[2] = {&L->w_gate, &L->w_up};
        float *gu_out[2] = {c->hb, c->hb2};
        matmul_same_input(c, gu, gu_out, 2, N);
        fr__pass_run(c->pool, fr__pass_act_task, &job.act, N * n_ff);
        matmul(c, &L->w_down, c->hb, N, c->xb);

        /* x += xb, then the next layer's norm (none after the last) */
        job.norm.bias = NULL;
        job.norm.w = il + 1 < hp->n_layer ? m->layers[il + 1].attn_norm : NULL;
        fr__pass_run(c->pool, fr__pass_add_norm_task, &job.norm, N * n_embd);
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
