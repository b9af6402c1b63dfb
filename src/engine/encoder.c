/*
 * encoder.c — the bert / nomic-bert forward pass for embeddings and
 * reranking (GGUF.md §4), and the encoder context fr_enc.
 *
 * An fr_enc holds scratch for steps of up to T = max_tokens tokens and
 * S = max_seqs sequences, all allocated at fr_enc_create; fr_enc_encode
 * never allocates.  There is no KV cache: a sequence is encoded in one
 * step from scratch.
 *
 * A step is a batch of runs, run i being the n_i tokens of one sequence
 * (step tokens [t0_i, t0_i + n_i), positions 0 .. n_i−1).  Every matmul
 * runs once over all N = Σ n_i tokens, so the weights stream once for the
 * whole batch; attention items belong to one run and read only its keys,
 * so a sequence never sees another.  An encode packs its sequences into
 * as few steps as max_tokens allows, in order.
 *
 * One step, hidden state x[N][n_embd]:
 *   x = token_embd[id] + token_types[0] + position_embd[pos]   (bert; no
 *       position rows in nomic-bert, which rotates q and k instead)
 *   x = LayerNorm(x; token_embd_norm)
 *   per layer (post-norm):
 *     qkv[t] = [Wq·x | Wk·x | Wv·x] (+ biases), or the fused Wqkv·x
 *     (nomic-bert: RoPE NEOX on q and k at each token's position)
 *     k, v scattered by head: kh[h][t], vh[h][t]              (one pass)
 *     att = softmax(q·kᵀ/√head_dim)·v per head over the run's keys
 *     x = LayerNorm(x + Wo·att + bo; attn_output_norm)
 *     bert:  f = Wdown·gelu(Wup·x + bup) + bdown
 *     nomic: f = Wdown·(silu(Wgate·x) ⊙ Wup·x)
 *     x = LayerNorm(x + f; layer_output_norm)
 *   pooling per run: mean, first ([CLS]), last, none (every token), or
 *   rank: c = x[first]; c = tanh(cls·c + cls_b); score = cls_out·c + b
 *   (the classifier matmuls run once for all runs of the step); then the
 *   vectors are L2-normalised when asked.
 *
 * Attention is pass.h's driver (fr_pass_att, the decoder's): an item is
 * one head and a block of up to att_bq query tokens of a run, walking the
 * run's keys in tiles of FR_ATT_BK straight out of kh/vh (f32; no mask:
 * every key of the run is visible), with an online softmax.  Items come
 * from a shared counter.  The add+LayerNorm, GELU / SiLU·up, RoPE table
 * and pool-task shares are pass.h's too.
 *
 * Threads.  Besides the matmuls a layer makes four pool runs (bias/RoPE/
 * scatter then, after a barrier, attention; add+norm; bias+GELU; add+norm);
 * element-wise ones run on the calling thread when the step is small.  A
 * sequence's result does not depend on what else is in its step, nor on
 * the thread count (the matmul kernels make each output row independent
 * of the other rows and of the split).
 *
 * Errors are found before anything is computed, so a refused encode
 * leaves the context and its last output as they were.
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

#define MAX_TOKENS (1 << 20)   /* bounds that keep every size product small */
#define MAX_SEQS   (1 << 20)

/* Query tokens per attention item (heads are not grouped in encoders). */
#define ATT_ROWS 64

/* One sequence's share of a step. */
typedef struct enc_run {
    int32_t t0, n;               /* step tokens [t0, t0 + n) */
    int32_t seq;                 /* index of the sequence in the encode call */
    const int32_t *tokens;       /* [n], the caller's */
} enc_run;

enum { B_X, B_XB, B_QKV, B_KH, B_VH, B_ATT, B_HB, B_HB2, B_ATT_TMP, B_INV_FREQ, B_CLS_IN,
       B_CLS_MID, B_OUT, B_SUM, B_TOK_POS, B_RUNS, B_WORK, B_COUNT };

struct fr_enc {
    fr_model *model;             /* not owned */
    fr_pool *pool;               /* not owned; NULL = single-threaded */
    int n_threads;
    int pooling;                 /* FR_POOLING_* in effect */
    int32_t max_tokens;          /* T */
    int32_t max_seqs;            /* S */
    int32_t n_out;               /* floats per pooled vector */
    int att_bq;                  /* query tokens per attention item */
    size_t att_stride;           /* floats of one thread's att_tmp */
    float *x;                    /* [T][n_embd] hidden state */
    float *xb;                   /* [T][n_embd] projection outputs, embedding rows */
    float *qkv;                  /* [T][3·n_q] q | k | v of each token */
    float *kh, *vh;              /* [n_head][T][head_dim] keys, values by head */
    float *att;                  /* [T][n_q] attention output */
    float *hb, *hb2;             /* [T][n_ff] (hb2: gated FFN only) */
    float *att_tmp;              /* [n_threads][att_stride] */
    double *inv_freq;            /* [n_rot/2] nomic-bert RoPE */
    float *cls_in, *cls_mid;     /* [S][n_embd] rank head input and middle */
    float *out;                  /* [S][n_out] pooled vectors or scores */
    double *sum;                 /* [n_embd] mean pooling */
    int32_t *tok_pos;            /* [T] position of each step token */
    enc_run *runs;               /* [S] runs of the current step */
    void *work;                  /* matmul work buffer */
    size_t work_size;
    void *bufs[B_COUNT];
    size_t alloc_bytes;
};

/* ---- sizes ---- */

static int att_bq_of(int32_t max_tokens) {
    return max_tokens < ATT_ROWS ? (int)max_tokens : ATT_ROWS;
}

static void max_work(size_t *cur, const fr_weight *w, int64_t N) {
    if (!w->data) return;
    size_t s = fr_matmul_work_size(w->type, w->cols, N);
    if (s > *cur) *cur = s;
}

static int resolve_pooling(const fr_model *m, int pooling) {
    return pooling == FR_POOLING_MODEL ? m->hp.pooling : pooling;
}

static int32_t resolve_tokens(const fr_model *m, int32_t max_tokens) {
    return max_tokens == 0 ? m->hp.n_ctx_train : max_tokens;
}

/* Check the arguments of create/estimate; FR_E* with a detail. */
static int check_args(const fr_model *m, int32_t max_tokens, int32_t max_seqs, int pooling) {
    if (!m->hp.encoder)
        return fr_errf(FR_EUNSUPP, "%s is a decoder, not an encoder (fr_ctx_create)", m->hp.arch);
    if (max_tokens < 1 || max_tokens > MAX_TOKENS)
        return fr_errf(FR_EINVAL, "encoder: %d tokens per batch, between 1 and %d",
                       (int)max_tokens, MAX_TOKENS);
    if (max_seqs < 1 || max_seqs > MAX_SEQS)
        return fr_errf(FR_EINVAL, "encoder: %d sequences per batch, between 1 and %d",
                       (int)max_seqs, MAX_SEQS);
    if (pooling < FR_POOLING_NONE || pooling > FR_POOLING_RANK)
        return fr_errf(FR_EINVAL, "encoder: pooling %d", pooling);
    if (pooling == FR_POOLING_RANK && !m->cls.data && !m->cls_out.data)
        return fr_errf(FR_EUNSUPP, "%s: rank pooling needs a classifier head (cls, cls.output)",
                       fr_gguf_path(m->gguf));
    return 0;
}

/* Bytes of every buffer; false on overflow.  The arguments are checked. */
static bool plan(const fr_model *m, int32_t T, int32_t S, int pooling, int n_threads,
                 size_t bytes[B_COUNT]) {
    const fr_hparams *hp = &m->hp;
    size_t t = (size_t)T, s = (size_t)S, f = sizeof(float);
    size_t n_embd = (size_t)hp->n_embd, n_ff = (size_t)hp->n_ff;
    size_t n_q = (size_t)hp->n_head * (size_t)hp->head_dim;
    size_t n_out = pooling == FR_POOLING_RANK ? (size_t)hp->n_cls_out : n_embd;
    size_t att = fr__pass_att_layout(hp, att_bq_of(T), false, NULL, NULL);
    bool gated = m->layers[0].w_gate.data != NULL;
    memset(bytes, 0, sizeof(size_t) * B_COUNT);
    if (!fr_mul_ok(t * f, n_embd, &bytes[B_X]) || !fr_mul_ok(t * f, 3 * n_q, &bytes[B_QKV]) ||
        !fr_mul_ok(t * f, n_q, &bytes[B_KH]) || !fr_mul_ok(t * f, n_ff, &bytes[B_HB]) ||
        !fr_mul_ok(att * f, (size_t)n_threads, &bytes[B_ATT_TMP]) ||
        !fr_mul_ok(s * f, n_out, &bytes[B_OUT]))
        return false;
    bytes[B_XB] = bytes[B_X];
    bytes[B_VH] = bytes[B_ATT] = bytes[B_KH];
    bytes[B_HB2] = gated ? bytes[B_HB] : 0;
    bytes[B_INV_FREQ] = (size_t)hp->n_rot / 2 * sizeof(double);
    if (pooling == FR_POOLING_RANK) bytes[B_CLS_IN] = bytes[B_CLS_MID] = s * n_embd * f;
    bytes[B_SUM] = n_embd * sizeof(double);
    bytes[B_TOK_POS] = t * sizeof(int32_t);
    bytes[B_RUNS] = s * sizeof(enc_run);
    size_t work = 0;
    for (int32_t il = 0; il < hp->n_layer; il++) {
        const fr_layer *L = &m->layers[il];
        max_work(&work, &L->wq, T);
        max_work(&work, &L->wk, T);
        max_work(&work, &L->wv, T);
        max_work(&work, &L->wqkv, T);
        max_work(&work, &L->wo, T);
        max_work(&work, &L->w_gate, T);
        max_work(&work, &L->w_up, T);
        max_work(&work, &L->w_down, T);
    }
    if (pooling == FR_POOLING_RANK) {
        max_work(&work, &m->cls, S);
        max_work(&work, &m->cls_out, S);
    }
    bytes[B_WORK] = work;
    return true;
}

size_t fr_enc_estimate_bytes(const fr_model *m, int32_t max_tokens, int32_t max_seqs, int pooling,
                             int n_threads) {
    if (!m || !m->hp.encoder || n_threads < 1) return 0;
    max_tokens = resolve_tokens(m, max_tokens);
    pooling = resolve_pooling(m, pooling);
    if (check_args(m, max_tokens, max_seqs, pooling)) return 0;
    size_t bytes[B_COUNT];
    if (!plan(m, max_tokens, max_seqs, pooling, n_threads, bytes)) return SIZE_MAX;
    return fr__pass_total(sizeof(fr_enc), bytes, B_COUNT);
}

int fr_enc_create(fr_model *m, int32_t max_tokens, int32_t max_seqs, int pooling, fr_pool *pool,
                  fr_enc **out) {
    *out = NULL;
    if (max_tokens < 0) return fr_errf(FR_EINVAL, "encoder: %d tokens per batch", (int)max_tokens);
    max_tokens = resolve_tokens(m, max_tokens);
    pooling = resolve_pooling(m, pooling);
    int rc = check_args(m, max_tokens, max_seqs, pooling);
    if (rc) return rc;
    size_t bytes[B_COUNT];
    int n_threads = fr_pool_size(pool);
    if (!plan(m, max_tokens, max_seqs, pooling, n_threads, bytes))
        return fr_errf(FR_ENOMEM, "encoder of %d tokens × %d sequences: size overflows",
                       (int)max_tokens, (int)max_seqs);
    fr_enc *e = fr_calloc(1, sizeof *e);
    if (!e) return FR_ENOMEM;
    const fr_hparams *hp = &m->hp;
    e->model = m;
    e->pool = pool;
    e->n_threads = n_threads;
    e->pooling = pooling;
    e->max_tokens = max_tokens;
    e->max_seqs = max_seqs;
    e->n_out = pooling == FR_POOLING_RANK ? hp->n_cls_out : hp->n_embd;
    e->att_bq = att_bq_of(max_tokens);
    e->att_stride = fr__pass_att_layout(hp, e->att_bq, false, NULL, NULL);
    if (!fr__pass_alloc(e->bufs, bytes, B_COUNT, sizeof *e, &e->alloc_bytes)) {
        fr_enc_destroy(e);
        return FR_ENOMEM;
    }
    memset(e->bufs[B_OUT], 0, bytes[B_OUT]); /* nothing encoded yet: zero vectors */
    e->x = e->bufs[B_X];
    e->xb = e->bufs[B_XB];
    e->qkv = e->bufs[B_QKV];
    e->kh = e->bufs[B_KH];
    e->vh = e->bufs[B_VH];
    e->att = e->bufs[B_ATT];
    e->hb = e->bufs[B_HB];
    e->hb2 = e->bufs[B_HB2];
    e->att_tmp = e->bufs[B_ATT_TMP];
    e->inv_freq = e->bufs[B_INV_FREQ];
    fr__pass_rope_freqs(hp, m->rope_freqs, e->inv_freq); /* nomic-bert's θ_k, as forward.c */
    e->cls_in = e->bufs[B_CLS_IN];
    e->cls_mid = e->bufs[B_CLS_MID];
    e->out = e->bufs[B_OUT];
    e->sum = e->bufs[B_SUM];
    e->tok_pos = e->bufs[B_TOK_POS];
    e->runs = e->bufs[B_RUNS];
    e->work = e->bufs[B_WORK];
    e->work_size = bytes[B_WORK];
    *out = e;
    return 0;
}

void fr_enc_destroy(fr_enc *e) {
    if (e) fr__pass_free(e, e->bufs, B_COUNT);
}

size_t fr_enc_bytes(const fr_enc *e) { return e->alloc_bytes; }
int32_t fr_enc_max_tokens(const fr_enc *e) { return e->max_tokens; }
int32_t fr_enc_max_seqs(const fr_enc *e) { return e->max_seqs; }
int fr_enc_pooling(const fr_enc *e) { return e->pooling; }
int32_t fr_enc_n_out(const fr_enc *e) { return e->n_out; }

/* ---- the step ---- */

typedef struct enc_job {
    fr_enc *e;
    const fr_layer *L;
    const fr_ops *ops;
    int N, n_runs;
    fr_pass_norm norm;           /* x = LayerNorm(x + xb (+ bias)) */
    fr_pass_act act;             /* the FFN's activation */
    fr_pass_att att;             /* over each run's own keys, no mask */
} enc_job;

static const char *row_of(const fr_weight *w, int64_t r) {
    return (const char *)w->data + (size_t)r * w->row_bytes;
}

/* x[t] = token row + type row 0 + position row; LayerNorm. */
static void embed_task(void *arg, int ith, int nth) {
    enc_job *j = arg;
    fr_enc *e = j->e;
    const fr_model *m = e->model;
    int64_t n = m->hp.n_embd;
    int t0, t1;
    fr__pass_share(j->N, ith, nth, &t0, &t1);
    int r = 0;
    for (int t = t0; t < t1; t++) {
        while (t >= e->runs[r].t0 + e->runs[r].n) r++;
        const enc_run *ru = &e->runs[r];
        float *x = e->x + t * n, *tmp = e->xb + t * n;
        int32_t pos = t - ru->t0;
        e->tok_pos[t] = pos;
        fr_dequantize_row(m->tok_embd.type, row_of(&m->tok_embd, ru->tokens[pos]), x, n);
        if (m->tok_types.data) {
            fr_dequantize_row(m->tok_types.type, row_of(&m->tok_types, 0), tmp, n);
            j->ops->add(x, tmp, n);
        }
        if (m->pos_embd.data) {
            fr_dequantize_row(m->pos_embd.type, row_of(&m->pos_embd, pos), tmp, n);
            j->ops->add(x, tmp, n);
        }
        j->ops->layernorm(x, x, m->tok_norm, m->tok_norm_b, n, m->hp.norm_eps);
    }
}

/* Biases, RoPE (nomic-bert) and the scatter of k, v by head, for this
 * thread's tokens. */
static void qkv_rows(const enc_job *j, int ith, int nth) {
    fr_enc *e = j->e;
    const fr_hparams *hp = &e->model->hp;
    const fr_layer *L = j->L;
    int64_t n_q = (int64_t)hp->n_head * hp->head_dim;
    size_t hd = (size_t)hp->head_dim, T = (size_t)e->max_tokens;
    fr_pass_att_parts p;
    fr__pass_att_parts(&j->att, ith, &p);
    int t0, t1;
    fr__pass_share(j->N, ith, nth, &t0, &t1);
    for (int t = t0; t < t1; t++) {
        float *q = e->qkv + t * 3 * n_q, *k = q + n_q, *v = k + n_q;
        if (L->bqkv) j->ops->add(q, L->bqkv, 3 * n_q);
        if (L->bq) j->ops->add(q, L->bq, n_q);
        if (L->bk) j->ops->add(k, L->bk, n_q);
        if (L->bv) j->ops->add(v, L->bv, n_q);
        if (hp->rope_type != FR_ROPE_NONE)
            fr__pass_rope(j->ops, hp, hp->rope_type == FR_ROPE_NEOX, e->inv_freq, e->tok_pos[t],
                          p.cs, q, k);
        for (int h = 0; h < hp->n_head; h++) {
            size_t dst = ((size_t)h * T + (size_t)t) * hd;
            memcpy(e->kh + dst, k + (size_t)h * hd, hd * sizeof(float));
            memcpy(e->vh + dst, v + (size_t)h * hd, hd * sizeof(float));
        }
    }
}

/* Run r of the step as the attention sees it: its n keys are the rows of
 * its own tokens in kh, vh. */
static void att_run_of(const void *arg, int r, fr_pass_att_run *out) {
    const enc_run *ru = &((const fr_enc *)arg)->runs[r];
    *out = (fr_pass_att_run){.t0 = ru->t0, .n = ru->n, .n_keys = ru->n, .kv_row = ru->t0};
}

static void attention_task(void *arg, int ith, int nth) {
    enc_job *j = arg;
    qkv_rows(j, ith, nth);
    fr_pool_barrier(j->e->pool);
    fr__pass_att_items(&j->att, ith, nth);
}

static void matmul(fr_enc *e, const fr_weight *w, const float *x, int64_t N, float *y,
                   int64_t ldy) {
    fr_matmul(e->pool, w->type, w->data, w->cols, w->rows, x, N, y, ldy, e->work);
}

static void l2_normalize(float *v, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)v[i] * v[i];
    float k = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
    for (int64_t i = 0; i < n; i++) v[i] *= k;
}

/* Pool the step's runs into out (rows = the runs' sequence indices). */
static void pool_step(fr_enc *e, const fr_ops *ops, int n_runs) {
    const fr_model *m = e->model;
    int64_t n_embd = m->hp.n_embd;
    if (e->pooling == FR_POOLING_RANK) {
        /* [CLS] of every run, then the head for all of them at once */
        for (int r = 0; r < n_runs; r++)
            memcpy(e->cls_in + r * n_embd, e->x + (int64_t)e->runs[r].t0 * n_embd,
                   (size_t)n_embd * sizeof(float));
        float *c = e->cls_in;
        if (m->cls.data) {
            matmul(e, &m->cls, c, n_runs, e->cls_mid, n_embd);
            for (int r = 0; r < n_runs; r++) {
                float *y = e->cls_mid + r * n_embd;
                if (m->cls_b) ops->add(y, m->cls_b, n_embd);
                for (int64_t i = 0; i < n_embd; i++) y[i] = tanhf(y[i]);
            }
            c = e->cls_mid;
        }
        int64_t n_out = e->n_out;
        float *dst = e->out + (int64_t)e->runs[0].seq * n_out;  /* runs hold consecutive seqs */
        if (m->cls_out.data) {
            matmul(e, &m->cls_out, c, n_runs, dst, n_out);
            if (m->cls_out_b)
                for (int r = 0; r < n_runs; r++) ops->add(dst + r * n_out, m->cls_out_b, n_out);
        } else {
            for (int r = 0; r < n_runs; r++)
                memcpy(dst + r * n_out, c + r * n_embd, (size_t)n_out * sizeof(float));
        }
        return;
    }
    for (int r = 0; r < n_runs; r++) {
        const enc_run *ru = &e->runs[r];
        float *dst = e->out + (int64_t)ru->seq * n_embd;
        const float *x0 = e->x + (int64_t)ru->t0 * n_embd;
        if (e->pooling == FR_POOLING_MEAN) {
            memset(e->sum, 0, (size_t)n_embd * sizeof(double));
            for (int32_t t = 0; t < ru->n; t++)
                for (int64_t i = 0; i < n_embd; i++) e->sum[i] += x0[t * n_embd + i];
            for (int64_t i = 0; i < n_embd; i++) dst[i] = (float)(e->sum[i] / ru->n);
        } else {
            const float *src = e->pooling == FR_POOLING_LAST ? x0 + (ru->n - 1) * n_embd : x0;
            memcpy(dst, src, (size_t)n_embd * sizeof(float));
        }
    }
}

/* The step's jobs for N tokens in n_runs runs. */
static void init_job(fr_enc *e, enc_job *j, int N, int n_runs) {
    const fr_hparams *hp = &e->model->hp;
    size_t n_q = (size_t)hp->n_head * (size_t)hp->head_dim;
    *j = (enc_job){.e = e, .ops = fr_ops_get(), .N = N, .n_runs = n_runs};
    j->norm = (fr_pass_norm){.ops = j->ops, .N = N, .n = hp->n_embd, .x = e->x, .xb = e->xb,
                             .out = e->x, .add = true, .kind = FR_PASS_LAYERNORM,
                             .eps = hp->norm_eps};
    j->act = (fr_pass_act){.ops = j->ops, .N = N, .n = hp->n_ff, .h = e->hb, .h2 = e->hb2};
    /* each run reads its own tokens' keys, all of them; never split */
    fr__pass_att_init(&j->att, hp, e->pool, e->att_bq, e->att_tmp, e->att_stride);
    j->att.q = (fr_pass_rows){e->qkv, 3 * n_q};
    j->att.out = (fr_pass_rows){e->att, n_q};
    j->att.kv = (fr_pass_kv){e->kh, e->vh, false, (size_t)e->max_tokens * (size_t)hp->head_dim};
    j->att.run = att_run_of;
    j->att.run_arg = e;
    j->att.n_runs = n_runs;
    j->att.N = N;
}

/* One step over the runs in e->runs (validated; N tokens in all). */
static void forward_step(fr_enc *e, int N, int n_runs) {
    const fr_model *m = e->model;
    const fr_hparams *hp = &m->hp;
    int64_t n_embd = hp->n_embd, n_ff = hp->n_ff, n_q = (int64_t)hp->n_head * hp->head_dim;
    enc_job job;
    init_job(e, &job, N, n_runs);
    fr__pass_run(e->pool, embed_task, &job, N * n_embd);

    for (int il = 0; il < hp->n_layer; il++) {
        const fr_layer *L = &m->layers[il];
        job.L = L;
        if (L->wqkv.data) {
            matmul(e, &L->wqkv, e->x, N, e->qkv, 3 * n_q);
        } else {
            matmul(e, &L->wq, e->x, N, e->qkv, 3 * n_q);
            matmul(e, &L->wk, e->x, N, e->qkv + n_q, 3 * n_q);
            matmul(e, &L->wv, e->x, N, e->qkv + 2 * n_q, 3 * n_q);
        }
        fr__pass_att_begin(&job.att);
        if (N * 3 * n_q < FR_PASS_INLINE_FLOATS) {
            qkv_rows(&job, 0, 1);
            fr_pool_run(e->pool, fr__pass_att_task, &job.att);
        } else {
            fr_pool_run(e->pool, attention_task, &job);
        }

        matmul(e, &L->wo, e->att, N, e->xb, n_embd);
        job.norm.bias = L->bo;
        job.norm.w = L->attn_out_norm;
        job.norm.b = L->attn_out_norm_b;
        fr__pass_run(e->pool, fr__pass_add_norm_task, &job.norm, N * n_embd);

        if (L->w_gate.data) {
            matmul(e, &L->w_gate, e->x, N, e->hb, n_ff);
            matmul(e, &L->w_up, e->x, N, e->hb2, n_ff);
            job.act.kind = FR_PASS_SILU_GATE;
        } else {
            matmul(e, &L->w_up, e->x, N, e->hb, n_ff);
            job.act.kind = FR_PASS_GELU;
            job.act.bias = L->b_up;
        }
        fr__pass_run(e->pool, fr__pass_act_task, &job.act, N * n_ff);
        matmul(e, &L->w_down, e->hb, N, e->xb, n_embd);
        job.norm.bias = L->b_down;
        job.norm.w = L->out_norm;
        job.norm.b = L->out_norm_b;
        fr__pass_run(e->pool, fr__pass_add_norm_task, &job.norm, N * n_embd);
    }
    if (e->pooling != FR_POOLING_NONE) pool_step(e, job.ops, n_runs);
}

/* Check a whole encode without changing anything. */
static int check_encode(const fr_enc *e, const fr_enc_seq *seqs, int32_t n_seqs) {
    const fr_hparams *hp = &e->model->hp;
    int32_t longest = hp->n_ctx_train < e->max_tokens ? hp->n_ctx_train : e->max_tokens;
    int64_t total = 0;
    if (n_seqs < 1 || !seqs)
        return fr_errf(FR_EINVAL, "encode: %d sequences: at least one", (int)n_seqs);
    if (n_seqs > e->max_seqs)
        return fr_errf(FR_EINVAL, "encode: %d sequences: at most %d per batch", (int)n_seqs,
                       (int)e->max_seqs);
    for (int32_t i = 0; i < n_seqs; i++) {
        const fr_enc_seq *s = &seqs[i];
        if (s->n < 1 || !s->tokens)
            return fr_errf(FR_EINVAL, "encode: sequence %d has %d tokens", (int)i, (int)s->n);
        if (s->n > longest)
            return fr_errf(FR_ETOOLONG, "encode: sequence %d has %d tokens, at most %d (%s)",
                           (int)i, (int)s->n, (int)longest,
                           longest == hp->n_ctx_train ? "the model's context" : "the batch size");
        for (int32_t t = 0; t < s->n; t++)
            if (s->tokens[t] < 0 || s->tokens[t] >= hp->n_vocab)
                return fr_errf(FR_EINVAL, "encode: sequence %d: token %d at index %d is out of "
                               "range [0, %d)", (int)i, (int)s->tokens[t], (int)t,
                               (int)hp->n_vocab);
        total += s->n;
    }
    if (e->pooling == FR_POOLING_NONE && total > e->max_tokens)
        return fr_errf(FR_EINVAL, "encode: %lld tokens without pooling: at most %d per batch",
                       (long long)total, (int)e->max_tokens);
    return 0;
}

int fr_enc_encode(fr_enc *e, const fr_enc_seq *seqs, int32_t n_seqs, bool normalize,
                  const float **out) {
    if (out) *out = NULL;
    int rc = check_encode(e, seqs, n_seqs);
    if (rc) return rc;
    for (int32_t i = 0; i < n_seqs;) {
        int32_t N = 0, n_runs = 0;
        while (i < n_seqs && N + seqs[i].n <= e->max_tokens) {
            e->runs[n_runs++] = (enc_run){.t0 = N, .n = seqs[i].n, .seq = i,
                                          .tokens = seqs[i].tokens};
            N += seqs[i].n;
            i++;
        }
        forward_step(e, N, n_runs);
    }
    const float *res = e->out;
    if (e->pooling == FR_POOLING_NONE) {
        int64_t total = 0, n_embd = e->model->hp.n_embd;
        for (int32_t i = 0; i < n_seqs; i++) total += seqs[i].n;
        if (normalize)
            for (int64_t t = 0; t < total; t++) l2_normalize(e->x + t * n_embd, n_embd);
        res = e->x;
    } else if (normalize && e->pooling != FR_POOLING_RANK) {
        for (int32_t i = 0; i < n_seqs; i++) l2_normalize(e->out + (int64_t)i * e->n_out, e->n_out);
    }
    if (out) *out = res;
    return 0;
}

/* ---- inputs ---- */

/* The closing special token of add_special input: [SEP] (WordPiece) or EOS. */
static int32_t closer(const fr_vocab *v) {
    int32_t s = fr_vocab_sep(v);
    return s >= 0 ? s : fr_vocab_add_eos(v) ? fr_vocab_eos(v) : -1;
}

size_t fr_enc_truncate(const fr_model *m, int32_t *ids, size_t n, int32_t max_tokens) {
    size_t max = (size_t)(max_tokens > 0 ? max_tokens : m->hp.n_ctx_train);
    if (n <= max) return n;
    int32_t c = closer(m->vocab);
    if (max >= 2 && c >= 0 && ids[n - 1] == c) ids[max - 1] = c;
    return max;
}

int fr_enc_tokenize(const fr_model *m, const char *text, size_t len, int32_t max_tokens,
                    int32_t **ids, size_t *n_ids, bool *truncated) {
    if (truncated) *truncated = false;
    if (max_tokens < 0) return fr_errf(FR_EINVAL, "tokenize: at most %d tokens", (int)max_tokens);
    int rc = fr_tokenize(m->vocab, text, len, true, true, ids, n_ids);
    if (rc) return rc;
    size_t n = fr_enc_truncate(m, *ids, *n_ids, max_tokens);
    if (truncated) *truncated = n < *n_ids;
    *n_ids = n;
    return 0;
}

int fr_enc_rerank_tokens(const fr_model *m, const char *query, size_t qlen, const char *doc,
                         size_t dlen, int32_t max_tokens, int32_t **ids, size_t *n_ids,
                         bool *truncated) {
    if (truncated) *truncated = false;
    *ids = NULL;
    *n_ids = 0;
    if (max_tokens < 0) return fr_errf(FR_EINVAL, "rerank: at most %d tokens", (int)max_tokens);
    const fr_vocab *v = m->vocab;
    int32_t *q = NULL, *d = NULL;
    size_t nq, nd;
    int rc = fr_tokenize(v, query, qlen, false, true, &q, &nq);
    if (!rc) rc = fr_tokenize(v, doc, dlen, false, true, &d, &nd);
    if (rc) goto done;
    int32_t bos = fr_vocab_add_bos(v) || fr_vocab_sep(v) >= 0 ? fr_vocab_bos(v) : -1;
    int32_t mid = fr_vocab_sep(v) >= 0 ? fr_vocab_sep(v) : fr_vocab_eos(v);
    size_t specials = (bos >= 0) + (mid >= 0);
    size_t max = (size_t)(max_tokens > 0 ? max_tokens : m->hp.n_ctx_train);
    size_t room = max > specials ? max - specials : 0;
    if (nq + nd > room) {
        /* longest first: the shorter part keeps what it has if it fits in
         * half the room, the other gets the rest */
        size_t half = room / 2;
        if (nq <= half) nd = room - nq;
        else if (nd <= half) nq = room - nd;
        else nq = room - half, nd = half;
        if (truncated) *truncated = true;
    }
    int32_t *out = fr_malloc((nq + nd + specials + 1) * sizeof *out);
    if (!out) { rc = FR_ENOMEM; goto done; }
    size_t n = 0;
    if (bos >= 0) out[n++] = bos;
    memcpy(out + n, q, nq * sizeof *out);
    n += nq;
    if (mid >= 0) out[n++] = mid;
    memcpy(out + n, d, nd * sizeof *out);
    n += nd;
    *ids = out;
    *n_ids = n;
done:
    fr_free(q);
    fr_free(d);
    return rc;
}
