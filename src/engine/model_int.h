/*
 * model_int.h — the layout of fr_model and fr_ctx and the RoPE kinds,
 * shared by model.c (loading), forward.c (the decoder forward pass),
 * encoder.c (bert, nomic-bert) and their tests.  What the passes share
 * beyond the model's layout (attention, norms, RoPE table) is pass.h.
 *
 * Dimension names used in the shape comments:
 *   n_embd   width of the residual stream
 *   n_q      n_head * head_dim     (query width)
 *   n_kv     n_head_kv * head_dim  (key/value width)
 *   n_ff     feed-forward width
 *   n_vocab  vocabulary size
 * Shapes are written row-major, outer dimension first: a matmul weight
 * [M][K] has M rows of K elements (GGUF ne = {K, M}).
 */
#ifndef FR_ENGINE_MODEL_INT_H
#define FR_ENGINE_MODEL_INT_H

#include <stdint.h>

#include "engine/model.h"

/* The kinds of rotary position embedding, the values of fr_hparams.rope_type
 * (llama.cpp's LLAMA_ROPE_TYPE_*; GGUF.md "RoPE"): which values of a head
 * are rotated together. */
enum fr_rope_kind {
    FR_ROPE_NONE = -1,           /* no RoPE (bert: position rows instead) */
    FR_ROPE_NORM = 0,            /* pairs (2i, 2i+1): llama */
    FR_ROPE_NEOX = 2             /* pairs (i, i + n_rot/2): qwen2, nomic-bert */
};

/* A matrix in the mapping: rows rows of cols elements of type. */
typedef struct fr_weight {
    const void *data;
    int type;
    int64_t cols;            /* K: elements per row (ne0) */
    int64_t rows;            /* M: number of rows (ne1) */
    size_t row_bytes;
    size_t nbytes;
} fr_weight;

typedef struct fr_layer {
    const float *attn_norm;      /* [n_embd] */
    fr_weight wq;                /* [n_q][n_embd] */
    fr_weight wk;                /* [n_kv][n_embd] */
    fr_weight wv;                /* [n_kv][n_embd] */
    fr_weight wo;                /* [n_embd][n_q] */
    const float *bq;             /* [n_q] or NULL */
    const float *bk;             /* [n_kv] or NULL */
    const float *bv;             /* [n_kv] or NULL */
    const float *bo;             /* [n_embd] or NULL */
    const float *ffn_norm;       /* [n_embd] */
    fr_weight w_gate;            /* [n_ff][n_embd] (bert: zeroed) */
    fr_weight w_up;              /* [n_ff][n_embd] */
    fr_weight w_down;            /* [n_embd][n_ff] */

    /* encoders (post-LayerNorm blocks; attn_norm and ffn_norm are NULL) */
    fr_weight wqkv;              /* [n_q + 2·n_kv][n_embd] fused Q,K,V, or zeroed
                                    (then wq, wk, wv) */
    const float *bqkv;           /* [n_q + 2·n_kv] or NULL */
    const float *attn_out_norm;  /* [n_embd] LayerNorm after attention + residual */
    const float *attn_out_norm_b;/* [n_embd] */
    const float *b_up;           /* [n_ff] or NULL */
    const float *b_down;         /* [n_embd] or NULL */
    const float *out_norm;       /* [n_embd] LayerNorm after the FFN + residual */
    const float *out_norm_b;     /* [n_embd] */
} fr_layer;

struct fr_model {
    fr_gguf *gguf;               /* owned: the mapping the weights live in */
    fr_vocab *vocab;             /* owned */
    fr_hparams hp;
    fr_weight tok_embd;          /* [n_vocab][n_embd] */
    const float *output_norm;    /* [n_embd] */
    fr_weight output;            /* [n_vocab][n_embd]; == tok_embd when tied */
    const float *output_bias;    /* [n_vocab] or NULL */
    const float *rope_freqs;     /* [n_rot/2] or NULL */
    bool tied_output;
    fr_layer *layers;            /* [n_layer], fr_malloc'd */

    /* encoders (hp.encoder): output_norm and output are unused */
    fr_weight tok_types;         /* [n_types][n_embd] (row 0 is added), or zeroed */
    fr_weight pos_embd;          /* [n_ctx_train][n_embd] (bert), zeroed (nomic: RoPE) */
    const float *tok_norm;       /* [n_embd] LayerNorm of the embeddings */
    const float *tok_norm_b;     /* [n_embd] */
    fr_weight cls;               /* [n_embd][n_embd] rank head, or zeroed */
    const float *cls_b;          /* [n_embd] or NULL */
    fr_weight cls_out;           /* [n_cls_out][n_embd], or zeroed */
    const float *cls_out_b;      /* [n_cls_out] or NULL */
    size_t heap_bytes;           /* counted heap the model holds (vocab, tables) */
};

/* The largest number of tokens one forward step processes; longer inputs
 * are split into steps of this many (llama.cpp's default ubatch). */
#define FR_UBATCH 512

#define FR_CTX_NBUFS 18

/* One sequence's share of a step: tokens [t0, t0+n) of the step are
 * positions pos0 .. pos0+n-1 of sequence seq. */
typedef struct fr_step_run {
    int32_t seq, pos0, t0, n;
    int32_t logits_row;          /* row of logits, or -1 */
    const int32_t *tokens;       /* [n], the caller's */
} fr_step_run;

struct fr_ctx {
    fr_model *model;             /* not owned */
    fr_pool *pool;               /* not owned; NULL = single-threaded */
    int32_t n_ctx;               /* positions per sequence */
    int32_t n_seq;               /* sequences (KV slots) */
    int32_t n_ubatch;            /* tokens per step: min(FR_UBATCH, n_ctx·n_seq) */
    int n_threads;
    int32_t *seq_len;            /* [n_seq] positions filled */
    uint16_t *k_cache;           /* [n_layer][n_head_kv][n_seq][n_ctx][head_dim] f16 */
    uint16_t *v_cache;           /* [n_layer][n_head_kv][n_seq][n_ctx][head_dim] f16 */
    double *inv_freq;            /* [n_rot/2]: base^(-2k/n_rot)·freq_scale/ff[k] */
    float *x;                    /* [n_ubatch][n_embd] residual stream */
    float *xb;                   /* [n_ubatch][n_embd] normed input */
    float *q;                    /* [n_ubatch][n_q] */
    float *k;                    /* [n_ubatch][n_kv] */
    float *v;                    /* [n_ubatch][n_kv] */
    float *att;                  /* [n_ubatch][n_q] attention output */
    float *hb;                   /* [n_ubatch][n_ff] */
    float *hb2;                  /* [n_ubatch][n_ff] */
    float *att_tmp;              /* [n_threads][att_stride floats]: per-thread
                                    attention tiles and RoPE cos/sin */
    int att_bq;                  /* tokens per attention work item */
    size_t att_stride;           /* floats of one thread's att_tmp */
    int32_t *tok_seq;            /* [n_ubatch] sequence of each token of a step */
    int32_t *tok_pos;            /* [n_ubatch] its position */
    fr_step_run *runs;           /* [n_seq] the runs of the current step */
    float *logits;               /* [n_seq][n_vocab] */
    void *work;                  /* matmul work buffer, work_size bytes */
    size_t work_size;
    void *bufs[FR_CTX_NBUFS];    /* every buffer above, fr_malloc_aligned'd */
    size_t alloc_bytes;          /* bytes allocated for this context */
};

/* Causal attention of one step, for tests: att[t] for the N tokens of
 * sequence 0 at positions pos0.. from q (already rotated) and layer il of
 * the KV cache (rows 0 .. pos0+N-1 filled), split over the context's pool. */
void fr__ctx_attention(fr_ctx *c, int il, int N, int pos0);

#endif
