/*
 * pass.h — the forward-pass core: the pieces every architecture's pass is
 * made of, shared by forward.c (decoders: llama, qwen2), encoder.c (bert,
 * nomic-bert) and the encoder–decoder pass to come (self-attention with a
 * causal mask over its own KV cache, cross-attention over the encoder's
 * output).  A pass file keeps what is its own (embeddings, which weights,
 * in which order, the KV cache or the pooling); what is here knows nothing
 * of fr_model or fr_layer: it takes rows, widths and pointers.
 *
 *   buffers      fr__pass_total, fr__pass_alloc, fr__pass_free: a
 *                context's scratch, all allocated when it is created
 *   pool tasks   fr__pass_share (a thread's rows), fr__pass_run (an
 *                element-wise task on the pool, or inline when small)
 *   norms        fr__pass_add_norm_task: residual add (+ bias), then
 *                RMSNorm or LayerNorm, into the residual (post-norm) or
 *                beside it (pre-norm)
 *   activations  fr__pass_act_task: SiLU(gate) ⊙ up, or GELU(h + bias)
 *   RoPE         fr__pass_rope_freqs (θ per pair), fr__pass_rope (one
 *                token's q and k, NORM or NEOX pairs)
 *   attention    fr_pass_att: one attention call over the runs of a step,
 *                tiled (flash-attention style, kernels/ops.h), queries,
 *                keys and values where the caller says, with or without a
 *                causal mask, keys in f16 or f32; fr__pass_att_layout is
 *                the per-thread scratch it (and the RoPE table) uses.
 *
 * Bit-for-bit: the order of every float operation is the one forward.c
 * and encoder.c had before they shared this file; a result never depends
 * on the thread count or on which thread ran which item.
 *
 * Every function is thread-safe on distinct outputs; the tasks are
 * fr_pool_fn's that each thread of a run calls with its (ith, nth) and
 * that never allocate.
 */
#ifndef FR_ENGINE_PASS_H
#define FR_ENGINE_PASS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frugal/engine.h"
#include "kernels/ops.h"
#include "kernels/pool.h"

/* ---- a context's buffers ----
 *
 * A pass context (fr_ctx, fr_enc) plans its scratch as n buffer sizes and
 * allocates them all when it is created, so that a step never allocates;
 * its bytes are the struct's plus the buffers'. */

/* head + Σ bytes[i], each size of 0 made 64 first (never ask for 0
 * bytes); SIZE_MAX on overflow. */
size_t fr__pass_total(size_t head, size_t *bytes, int n);

/* bufs[i] = 64-byte aligned bytes[i] (0 made 64), *alloc_bytes = head + Σ
 * bytes[i].  false when one fails: those before it stay in bufs for
 * fr__pass_free, the rest are NULL when bufs was zeroed. */
bool fr__pass_alloc(void **bufs, size_t *bytes, int n, size_t head, size_t *alloc_bytes);

/* Free a context's n buffers (NULL ones skipped), then the context (fr_free). */
void fr__pass_free(void *ctx, void **bufs, int n);

/* ---- pool tasks ---- */

/* Below this many floats an element-wise task runs on the calling thread:
 * a pool wake-up and barrier cost more than the work. */
#define FR_PASS_INLINE_FLOATS 16384

/* This thread's share [*i0, *i1) of n rows (tokens), for thread ith of nth. */
void fr__pass_share(int n, int ith, int nth, int *i0, int *i1);

/* fn(job) over the pool, or on the calling thread alone when the task
 * touches fewer than FR_PASS_INLINE_FLOATS floats. */
void fr__pass_run(fr_pool *pool, fr_pool_fn fn, void *job, int64_t floats);

/* ---- residual and norm ---- */

enum fr_pass_norm_kind {
    FR_PASS_RMSNORM,             /* ops->rmsnorm(·, w, eps) */
    FR_PASS_LAYERNORM            /* ops->layernorm(·, w, b, eps) */
};

/* The job of fr__pass_add_norm_task, for each of the N token rows t:
 *   if add:  xb[t] += bias (when not NULL); x[t] += xb[t]
 *   if w:    out[t] = norm(x[t])
 * out is xb for a pre-norm block (the residual x goes on; xb feeds the next
 * matmul) or x for a post-norm one (the residual itself is normalised). */
typedef struct fr_pass_norm {
    const fr_ops *ops;
    int N;                       /* token rows */
    int64_t n;                   /* floats per row (n_embd) */
    float *x;                    /* [N][n] residual stream */
    float *xb;                   /* [N][n] the sublayer's output */
    float *out;                  /* [N][n] where the normed rows go: xb or x */
    bool add;
    const float *bias;           /* [n] or NULL */
    int kind;                    /* enum fr_pass_norm_kind */
    const float *w;              /* [n] norm weight, or NULL: no norm */
    const float *b;              /* [n] LayerNorm bias, or NULL */
    float eps;
} fr_pass_norm;

/* fr_pool_fn over an fr_pass_norm; this thread's share of the rows. */
void fr__pass_add_norm_task(void *job, int ith, int nth);

/* ---- feed-forward activations ---- */

enum fr_pass_act_kind {
    FR_PASS_SILU_GATE,           /* h = SiLU(h) ⊙ h2 (gated FFN) */
    FR_PASS_GELU                 /* h = GELU(h + bias) */
};

/* The job of fr__pass_act_task over N rows of n floats. */
typedef struct fr_pass_act {
    const fr_ops *ops;
    int N;                       /* token rows */
    int64_t n;                   /* floats per row (n_ff) */
    int kind;                    /* enum fr_pass_act_kind */
    float *h;                    /* [N][n] in and out */
    const float *h2;             /* [N][n] up projection (SILU_GATE) */
    const float *bias;           /* [n] or NULL (GELU) */
} fr_pass_act;

/* fr_pool_fn over an fr_pass_act: SILU_GATE splits the N·n elements in
 * 16-aligned shares, GELU the rows. */
void fr__pass_act_task(void *job, int ith, int nth);

/* ---- RoPE (GGUF.md "RoPE") ---- */

/* inv_freq[k] = base^(−2k/n_rot) · freq_scale / factors[k] for k <
 * n_rot/2, in double; factors (rope_freqs.weight) may be NULL (all 1). */
void fr__pass_rope_freqs(const fr_hparams *hp, const float *factors, double *inv_freq);

/* Rotate one token at position pos: the n_head query heads q and the
 * n_head_kv key heads k (head_dim apart), first n_rot values of each, by
 * θ_i = pos · inv_freq[i]; pairs (2i, 2i+1) (NORM) or (i, i + n_rot/2)
 * (neox).  cs is the thread's table, 2·n_rot floats (fr_pass_att_parts). */
void fr__pass_rope(const fr_ops *ops, const fr_hparams *hp, bool neox, const double *inv_freq,
                   int32_t pos, float *cs, float *q, float *k);

/* ---- attention ----
 *
 * One call attends the query rows of a step's runs (one run = one
 * sequence's tokens) to that sequence's keys.  Heads: n_head query heads
 * in groups of n_head / n_head_kv over n_head_kv KV heads (GQA; 1 each
 * without it).  A work item is one KV head and a block of up to bq query
 * tokens of one run, i.e. R = bq · group query rows that read the same
 * keys; it walks them in tiles of FR_ATT_BK (converting f16 tiles to f32
 * once for all R rows) with an online softmax: running max m and sum l per
 * row.  Items are taken from a shared counter, each run's latest block
 * first (the longest, under a causal mask).
 *
 * Where things are:
 *   query row of step token t, head h:   q.p + t·q.stride + h·head_dim
 *   output row of step token t, head h:  out.p + t·out.stride + h·head_dim
 *   key j of a run, KV head g:           kv.k + g·kv.head_stride + (kv_row + j)·head_dim
 *                                        (half or float elements; values alike)
 * Masks: without causal, every query row of a run reads keys [0, n_keys);
 * with it, the run's i-th query token (of n) is at position n_keys − n + i
 * and reads keys [0, n_keys − n + i + 1) (keys are positions).
 *
 * Decode split: with split scratch (fr__pass_att_split_floats), a step of
 * one run of one token on several threads and few KV heads splits each
 * head's keys into chunks so every thread gets items; their partial rows
 * (unnormalised o, m, l) are merged after a barrier.
 */

/* One sequence's share of an attention call. */
typedef struct fr_pass_att_run {
    int32_t t0, n;               /* query rows: step tokens [t0, t0 + n) */
    int32_t n_keys;              /* keys the run's last query token reads */
    int64_t kv_row;              /* its key 0 is row kv_row of each KV head */
} fr_pass_att_run;

/* The r-th run of the call (r < n_runs), from the caller's own run list. */
typedef void (*fr_pass_att_run_fn)(const void *arg, int r, fr_pass_att_run *run);

/* One thread's scratch (each part a multiple of 16 floats, so 64-byte
 * aligned): qs [rp][hd], st [BK][rp], kt [BK][hd], vt [BK][hd] (f16 keys
 * only), m, l, corr, nv [rp], orow, qrow [rp] pointers, then the RoPE
 * table cs: cos and signed sin [2][n_rot]. */
typedef struct fr_pass_att_parts {
    float *qs, *st, *kt, *vt, *m, *l, *corr;
    int32_t *nv;
    float **orow, **qrow;
    float *cs;
} fr_pass_att_parts;

/* Floats of one thread's scratch for items of bq query tokens (R = bq ·
 * n_head / n_head_kv rows), with the f16 tiles when kv_f16; fills *p at
 * base when p is not NULL. */
size_t fr__pass_att_layout(const fr_hparams *hp, int bq, bool kv_f16, float *base,
                           fr_pass_att_parts *p);

/* Floats of the decode split's partial rows for pools of up to n_threads
 * (0 for one thread: it never splits). */
size_t fr__pass_att_split_floats(const fr_hparams *hp, int n_threads);

/* Rows of floats, one a step token: row t at p + t·stride. */
typedef struct fr_pass_rows {
    float *p;
    size_t stride;
} fr_pass_rows;

/* Keys and values: [KV head][row][head_dim] elements, half (f16) or float. */
typedef struct fr_pass_kv {
    const void *k, *v;
    bool f16;
    size_t head_stride;          /* elements from one KV head to the next */
} fr_pass_kv;

typedef struct fr_pass_att {
    const fr_ops *ops;
    const fr_hparams *hp;        /* n_head, n_head_kv, head_dim, n_rot */
    fr_pool *pool;               /* the pool the call runs on (split barrier) */
    float scale;                 /* scores are scale · q·k (1/√head_dim) */
    int bq;                      /* query tokens per item */
    float *tmp;                  /* [threads][tmp_stride] (fr__pass_att_layout) */
    size_t tmp_stride;
    float *split;                /* decode split partials, or NULL: never split */
    bool causal;
    fr_pass_rows q, out;         /* queries; where the output goes */
    fr_pass_kv kv;
    fr_pass_att_run_fn run;      /* the runs: run(run_arg, r, &ru) */
    const void *run_arg;
    int n_runs;
    int N;                       /* query tokens in all */
    _Alignas(64) atomic_int next; /* next item (fr__pass_att_begin zeroes it) */
    char pad[64 - sizeof(atomic_int)];
} fr_pass_att;

/* A call of hp's heads on pool with items of bq tokens and the per-thread
 * scratch tmp (tmp_stride floats a thread): scale 1/√head_dim, no mask,
 * no split, the active ops; the caller then sets q, out, kv, the runs
 * (run, run_arg, n_runs, N) and causal or split where it wants them. */
void fr__pass_att_init(fr_pass_att *a, const fr_hparams *hp, fr_pool *pool, int bq, float *tmp,
                       size_t tmp_stride);

/* Ready a call for a new run of the pool (the item counter to 0). */
void fr__pass_att_begin(fr_pass_att *a);

/* This thread's scratch parts (the RoPE table included). */
void fr__pass_att_parts(const fr_pass_att *a, int ith, fr_pass_att_parts *p);

/* This thread's part of the call: every thread of a pool run calls it
 * (after fr__pass_att_begin, and after whatever filled q, k and v has
 * finished on every thread: a barrier when in the same run). */
void fr__pass_att_items(fr_pass_att *a, int ith, int nth);

/* fr_pool_fn: fr__pass_att_items on an fr_pass_att. */
void fr__pass_att_task(void *a, int ith, int nth);

#endif
