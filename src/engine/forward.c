/*
 * forward.c — the llama/qwen2 forward pass and its KV cache (GGUF.md §4).
 *
 * A context holds, for one sequence, the F16 KV cache
 *     k_cache, v_cache: [n_layer][n_ctx][n_kv]   (n_kv = n_head_kv·head_dim)
 * (values rounded to half as llama.cpp's default cache does) and scratch
 * buffers for one step of up to n_ubatch = min(512, n_ctx) tokens.  All of
 * it is allocated at fr_ctx_create; fr_ctx_eval never allocates.
 *
 * One step over N tokens at positions p0 .. p0+N-1, residual x[N][n_embd]:
 *   x = token_embd rows
 *   per layer:
 *     xb = RMSNorm(x)·attn_norm
 *     q = Wq·xb (+bq), k = Wk·xb (+bk), v = Wv·xb (+bv)      fr_matmul
 *     RoPE on q, k (NORM: pairs (2i, 2i+1); NEOX: pairs (i, i+n_rot/2))
 *     k, v → cache rows p0+t (half)
 *     att = causal softmax(q·kᵀ/√head_dim)·v per head (GQA: query head h
 *           reads KV head h/(n_head/n_head_kv)), heads split over the pool
 *     x += Wo·att (+bo)
 *     xb = RMSNorm(x)·ffn_norm
 *     x += Wdown·(silu(Wgate·xb) ⊙ Wup·xb)
 *   logits = output·(RMSNorm(x[N-1])·output_norm) (+output.bias), only
 *   after the last step of an eval.
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
#include "kernels/kernels.h"
#include "kernels/types.h"

/* ---- creation ---- */

/* The buffers of a context, in allocation order (fr_ctx.bufs). */
_Static_assert(FR_CTX_NBUFS == 15, "fr_ctx.bufs holds every buffer");
enum { B_KCACHE, B_VCACHE, B_INV_FREQ, B_ROPE_CS, B_X, B_XB, B_Q, B_K, B_V, B_ATT, B_HB, B_HB2,
       B_ATT_TMP, B_LOGITS, B_WORK, B_COUNT };

static int32_t resolve_n_ctx(const fr_model *m, int32_t n_ctx) {
    if (n_ctx != 0) return n_ctx;
    int32_t train = m->hp.n_ctx_train;
    return train > 0 && train < 4096 ? train : 4096;
}

/* Per-thread attention scratch: n_ctx scores and one head_dim row, padded
 * to a cache line so threads never share one. */
static size_t att_stride(int32_t n_ctx, int32_t head_dim) {
    return ((size_t)n_ctx + (size_t)head_dim + 15) & ~(size_t)15;
}

static size_t max_work(size_t cur, const fr_weight *w, int64_t N) {
    size_t s = fr_matmul_work_size(w->type, w->cols, N);
    return s > cur ? s : cur;
}

/* Bytes of every buffer for n_ctx positions and n_threads; false on
 * overflow. */
static bool plan(const fr_model *m, int32_t n_ctx, int n_threads, size_t bytes[B_COUNT]) {
    const fr_hparams *hp = &m->hp;
    int32_t n_ubatch = n_ctx < FR_UBATCH ? n_ctx : FR_UBATCH;
    size_t nub = (size_t)n_ubatch, f = sizeof(float);
    size_t n_embd = (size_t)hp->n_embd, n_ff = (size_t)hp->n_ff;
    size_t n_q = (size_t)hp->n_head * (size_t)hp->head_dim;
    size_t n_kv = (size_t)hp->n_head_kv * (size_t)hp->head_dim;
    size_t kv;
    if (!fr_mul_ok((size_t)hp->n_layer * (size_t)n_ctx, n_kv * sizeof(uint16_t), &kv) ||
        !fr_mul_ok(att_stride(n_ctx, hp->head_dim) * f, (size_t)n_threads, &bytes[B_ATT_TMP]))
        return false;
    bytes[B_KCACHE] = bytes[B_VCACHE] = kv;
    bytes[B_INV_FREQ] = (size_t)hp->n_rot / 2 * sizeof(double);
    bytes[B_ROPE_CS] = (size_t)hp->n_rot * f;
    bytes[B_X] = bytes[B_XB] = nub * n_embd * f;
    bytes[B_Q] = bytes[B_ATT] = nub * n_q * f;
    bytes[B_K] = bytes[B_V] = nub * n_kv * f;
    bytes[B_HB] = bytes[B_HB2] = nub * n_ff * f;
    bytes[B_LOGITS] = (size_t)hp->n_vocab * f;
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
    bytes[B_WORK] = max_work(work, &m->output, 1);
    for (int i = 0; i < B_COUNT; i++)
        if (bytes[i] == 0) bytes[i] = 64; /* never ask for 0 bytes */
    return true;
}

size_t fr_ctx_estimate_bytes(const fr_model *m, int32_t n_ctx, int n_threads) {
    size_t bytes[B_COUNT], total = sizeof(fr_ctx);
    if (n_ctx < 0 || n_threads < 1) return 0;
    if (!plan(m, resolve_n_ctx(m, n_ctx), n_threads, bytes)) return SIZE_MAX;
    for (int i = 0; i < B_COUNT; i++)
        if (!fr_add_ok(total, bytes[i], &total)) return SIZE_MAX;
    return total;
}

int fr_ctx_create(fr_model *m, int32_t n_ctx, fr_pool *pool, fr_ctx **out) {
    *out = NULL;
    const fr_hparams *hp = &m->hp;
    if (n_ctx < 0) return fr_errf(FR_EINVAL, "context size %d is negative", (int)n_ctx);
    n_ctx = resolve_n_ctx(m, n_ctx);

    size_t bytes[B_COUNT];
    if (!plan(m, n_ctx, fr_pool_size(pool), bytes))
        return fr_errf(FR_ENOMEM, "context of %d positions: size overflows", (int)n_ctx);
    fr_ctx *c = fr_calloc(1, sizeof *c);
    if (!c) return FR_ENOMEM;
    c->model = m;
    c->pool = pool;
    c->n_ctx = n_ctx;
    c->n_ubatch = n_ctx < FR_UBATCH ? n_ctx : FR_UBATCH;
    c->n_threads = fr_pool_size(pool);
    c->alloc_bytes = sizeof *c;
    for (int i = 0; i < B_COUNT; i++) {
        if (!(c->bufs[i] = fr_malloc_aligned(bytes[i]))) {
            fr_ctx_destroy(c);
            return FR_ENOMEM;
        }
        c->alloc_bytes += bytes[i];
    }
    c->k_cache = c->bufs[B_KCACHE];
    c->v_cache = c->bufs[B_VCACHE];
    c->inv_freq = c->bufs[B_INV_FREQ];
    c->rope_cs = c->bufs[B_ROPE_CS];
    c->x = c->bufs[B_X];
    c->xb = c->bufs[B_XB];
    c->q = c->bufs[B_Q];
    c->k = c->bufs[B_K];
    c->v = c->bufs[B_V];
    c->att = c->bufs[B_ATT];
    c->hb = c->bufs[B_HB];
    c->hb2 = c->bufs[B_HB2];
    c->att_tmp = c->bufs[B_ATT_TMP];
    c->logits = c->bufs[B_LOGITS];
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
int32_t fr_ctx_n_past(const fr_ctx *c) { return c->n_past; }
void fr_ctx_reset(fr_ctx *c) { c->n_past = 0; }

size_t fr_ctx_bytes(const fr_ctx *c) { return c->alloc_bytes; }

size_t fr_ctx_kv_bytes(const fr_ctx *c) {
    const fr_hparams *hp = &c->model->hp;
    return 2 * (size_t)hp->n_layer * (size_t)c->n_ctx * (size_t)hp->n_head_kv *
           (size_t)hp->head_dim * sizeof(uint16_t);
}

/* ---- building blocks ---- */

/* y = x / sqrt(mean(x²) + eps) · w, the sum in double as ggml does. */
static void rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (double)x[i] * x[i];
    float scale = 1.0f / sqrtf((float)(sum / (double)n) + eps);
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * scale * w[i];
}

static void add_bias(float *y, const float *b, int64_t N, int64_t n) {
    if (!b) return;
    for (int64_t t = 0; t < N; t++)
        for (int64_t i = 0; i < n; i++) y[t * n + i] += b[i];
}

static void matmul(fr_ctx *c, const fr_weight *w, const float *x, int64_t N, float *y) {
    fr_matmul(c->pool, w->type, w->data, w->cols, w->rows, x, N, y, w->rows, c->work);
}

/* Rotate n_heads heads of head_dim values with the cos/sin in rope_cs. */
static void rope(const fr_ctx *c, float *v, int n_heads) {
    const fr_hparams *hp = &c->model->hp;
    int half = hp->n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *x = v + (size_t)h * (size_t)hp->head_dim;
        for (int k = 0; k < half; k++) {
            float cs = c->rope_cs[2 * k], sn = c->rope_cs[2 * k + 1];
            int i0 = hp->rope_type == 2 ? k : 2 * k;
            int i1 = hp->rope_type == 2 ? k + half : 2 * k + 1;
            float x0 = x[i0], x1 = x[i1];
            x[i0] = x0 * cs - x1 * sn;
            x[i1] = x0 * sn + x1 * cs;
        }
    }
}

/* y += w·x over n floats, in blocks of 8 that the compiler vectorizes. */
static void axpy(float *restrict y, float w, const float *restrict x, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) y[i + l] += w * x[i + l];
    for (; i < n; i++) y[i] += w * x[i];
}

typedef struct att_job {
    fr_ctx *c;
    const fr_type_ops *f16;      /* f16 → f32 rows */
    const fr_type_ops *f32;      /* f32 dot product */
    int il;                      /* layer */
    int N;                       /* tokens in the step */
    int pos0;                    /* position of the first */
} att_job;

/* Causal attention for (token, head) items ith, ith+nth, ...; interleaved
 * so that threads share long and short rows alike. */
static void attention_task(void *arg, int ith, int nth) {
    const att_job *j = arg;
    fr_ctx *c = j->c;
    const fr_hparams *hp = &c->model->hp;
    int hd = hp->head_dim, n_head = hp->n_head, group = hp->n_head / hp->n_head_kv;
    size_t n_q = (size_t)n_head * (size_t)hd, n_kv = (size_t)hp->n_head_kv * (size_t)hd;
    float *scores = c->att_tmp + (size_t)ith * att_stride(c->n_ctx, hd);
    float *row = scores + c->n_ctx;
    const uint16_t *kc = c->k_cache + (size_t)j->il * (size_t)c->n_ctx * n_kv;
    const uint16_t *vc = c->v_cache + (size_t)j->il * (size_t)c->n_ctx * n_kv;
    float scale = 1.0f / sqrtf((float)hd);

    for (int item = ith; item < j->N * n_head; item += nth) {
        int t = item / n_head, h = item % n_head;
        size_t kv_off = (size_t)(h / group) * (size_t)hd;
        const float *q = c->q + (size_t)t * n_q + (size_t)h * (size_t)hd;
        int n_keys = j->pos0 + t + 1;

        float max = -INFINITY;
        for (int p = 0; p < n_keys; p++) {
            j->f16->dequantize(kc + (size_t)p * n_kv + kv_off, row, hd);
            float s = j->f32->vec_dot(hd, row, q) * scale;
            scores[p] = s;
            if (s > max) max = s;
        }
        double sum = 0;
        for (int p = 0; p < n_keys; p++) {
            scores[p] = expf(scores[p] - max);
            sum += scores[p];
        }
        float inv = (float)(1.0 / sum);

        float *o = c->att + (size_t)t * n_q + (size_t)h * (size_t)hd;
        memset(o, 0, (size_t)hd * sizeof *o);
        for (int p = 0; p < n_keys; p++) {
            j->f16->dequantize(vc + (size_t)p * n_kv + kv_off, row, hd);
            axpy(o, scores[p] * inv, row, hd);
        }
    }
}

/* One step: N (<= n_ubatch) validated tokens at positions n_past... */
static void forward_step(fr_ctx *c, const int32_t *tokens, int N, bool want_logits) {
    const fr_model *m = c->model;
    const fr_hparams *hp = &m->hp;
    const fr_type_ops *f16 = fr_kernels_get(FR_TYPE_F16), *f32 = fr_kernels_get(FR_TYPE_F32);
    int64_t n_embd = hp->n_embd, n_ff = hp->n_ff;
    int64_t n_q = (int64_t)hp->n_head * hp->head_dim;
    int64_t n_kv = (int64_t)hp->n_head_kv * hp->head_dim;
    int pos0 = c->n_past;

    for (int t = 0; t < N; t++)
        fr_dequantize_row(m->tok_embd.type,
                          (const char *)m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.row_bytes,
                          c->x + t * n_embd, n_embd);

    for (int il = 0; il < hp->n_layer; il++) {
        const fr_layer *L = &m->layers[il];

        for (int t = 0; t < N; t++)
            rmsnorm(c->xb + t * n_embd, c->x + t * n_embd, L->attn_norm, n_embd, hp->rms_eps);
        matmul(c, &L->wq, c->xb, N, c->q);
        matmul(c, &L->wk, c->xb, N, c->k);
        matmul(c, &L->wv, c->xb, N, c->v);
        add_bias(c->q, L->bq, N, n_q);
        add_bias(c->k, L->bk, N, n_kv);
        add_bias(c->v, L->bv, N, n_kv);

        uint16_t *kc = c->k_cache + (size_t)il * (size_t)c->n_ctx * (size_t)n_kv;
        uint16_t *vc = c->v_cache + (size_t)il * (size_t)c->n_ctx * (size_t)n_kv;
        for (int t = 0; t < N; t++) {
            double pos = pos0 + t;
            for (int k = 0; k < hp->n_rot / 2; k++) {
                double theta = pos * c->inv_freq[k];
                c->rope_cs[2 * k] = (float)cos(theta);
                c->rope_cs[2 * k + 1] = (float)sin(theta);
            }
            rope(c, c->q + t * n_q, hp->n_head);
            rope(c, c->k + t * n_kv, hp->n_head_kv);
            uint16_t *kd = kc + (size_t)(pos0 + t) * (size_t)n_kv;
            uint16_t *vd = vc + (size_t)(pos0 + t) * (size_t)n_kv;
            for (int64_t i = 0; i < n_kv; i++) {
                kd[i] = fr_f32_to_f16(c->k[t * n_kv + i]);
                vd[i] = fr_f32_to_f16(c->v[t * n_kv + i]);
            }
        }

        att_job job = {.c = c, .f16 = f16, .f32 = f32, .il = il, .N = N, .pos0 = pos0};
        fr_pool_run(c->pool, attention_task, &job);

        matmul(c, &L->wo, c->att, N, c->xb);
        add_bias(c->xb, L->bo, N, n_embd);
        for (int64_t i = 0; i < N * n_embd; i++) c->x[i] += c->xb[i];

        for (int t = 0; t < N; t++)
            rmsnorm(c->xb + t * n_embd, c->x + t * n_embd, L->ffn_norm, n_embd, hp->rms_eps);
        matmul(c, &L->w_gate, c->xb, N, c->hb);
        matmul(c, &L->w_up, c->xb, N, c->hb2);
        for (int64_t i = 0; i < N * n_ff; i++) {
            float g = c->hb[i];
            c->hb[i] = g / (1.0f + expf(-g)) * c->hb2[i];
        }
        matmul(c, &L->w_down, c->hb, N, c->xb);
        for (int64_t i = 0; i < N * n_embd; i++) c->x[i] += c->xb[i];
    }
    c->n_past += N;

    if (want_logits) {
        rmsnorm(c->xb, c->x + (int64_t)(N - 1) * n_embd, m->output_norm, n_embd, hp->rms_eps);
        matmul(c, &m->output, c->xb, 1, c->logits);
        if (m->output_bias)
            for (int32_t i = 0; i < hp->n_vocab; i++) c->logits[i] += m->output_bias[i];
    }
}

int fr_ctx_eval(fr_ctx *c, const int32_t *tokens, int32_t n, const float **logits) {
    if (logits) *logits = NULL;
    if (n <= 0 || !tokens) return fr_errf(FR_EINVAL, "eval: %d tokens", (int)n);
    if ((int64_t)c->n_past + n > c->n_ctx)
        return fr_errf(FR_ETOOLONG, "eval: %d tokens after %d do not fit a context of %d",
                       (int)n, (int)c->n_past, (int)c->n_ctx);
    int32_t n_vocab = c->model->hp.n_vocab;
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return fr_errf(FR_EINVAL, "eval: token %d at index %d is out of range [0, %d)",
                           (int)tokens[i], (int)i, (int)n_vocab);
    for (int32_t off = 0; off < n; off += c->n_ubatch) {
        int32_t nb = n - off < c->n_ubatch ? n - off : c->n_ubatch;
        forward_step(c, tokens + off, nb, off + nb == n);
    }
    if (logits) *logits = c->logits;
    return 0;
}
