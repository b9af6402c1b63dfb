/*
 * model.h — a decoder language model (llama, qwen2) loaded from GGUF, and
 * a context that runs it: KV cache plus forward pass.
 *
 * fr_model owns the GGUF mapping (weights are never copied), the vocab and
 * the hyperparameters; it is immutable after open and may be shared.
 * fr_ctx owns an F16 KV cache for n_ctx positions of one sequence, the
 * compute pool reference and a scratch arena sized at creation, so that
 * evaluation never allocates.  A context is used by one thread at a time.
 */
#ifndef FR_ENGINE_MODEL_H
#define FR_ENGINE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"
#include "engine/vocab.h"
#include "kernels/pool.h"

typedef struct fr_model fr_model;
typedef struct fr_ctx fr_ctx;

typedef struct fr_hparams {
    char arch[32];          /* "llama", "qwen2" */
    int32_t n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv;
    int32_t head_dim, n_ff, n_rot;
    float rms_eps, rope_base, rope_freq_scale;
    int rope_type;          /* 0 NORM (adjacent pairs), 2 NEOX (halves) */
} fr_hparams;

/* Open a model file: map, validate, find every tensor the architecture
 * needs (with the shapes it needs), load the vocab.  FR_EFORMAT (detail
 * names file and tensor/key), FR_EUNSUPP (unknown architecture or tensor
 * type), FR_ENOENT/FR_EIO, FR_ENOMEM. */
int  fr_model_open(const char *path, fr_model **out);
void fr_model_close(fr_model *m);

const fr_hparams *fr_model_hparams(const fr_model *m);
const fr_vocab *fr_model_vocab(const fr_model *m);
const fr_gguf *fr_model_gguf(const fr_model *m);
/* Bytes of weights a decode step reads (all matmul weights + one embedding row). */
size_t fr_model_weight_bytes(const fr_model *m);

/* Create a context for n_ctx positions (0 = min(n_ctx_train, 4096)),
 * computing on pool (NULL = single-threaded; not owned). */
int  fr_ctx_create(fr_model *m, int32_t n_ctx, fr_pool *pool, fr_ctx **out);
void fr_ctx_destroy(fr_ctx *c);
int32_t fr_ctx_n_ctx(const fr_ctx *c);
int32_t fr_ctx_n_past(const fr_ctx *c);      /* positions filled */
void fr_ctx_reset(fr_ctx *c);                 /* forget the sequence */
size_t fr_ctx_kv_bytes(const fr_ctx *c);
/* Every byte the context allocated: KV cache plus scratch (steps of up to
 * 512 tokens) plus the matmul work buffer. */
size_t fr_ctx_bytes(const fr_ctx *c);
/* What fr_ctx_bytes would be for fr_ctx_create(m, n_ctx, a pool of
 * n_threads), without allocating (for the memory budget).  0 for bad
 * arguments, SIZE_MAX if it does not fit in size_t. */
size_t fr_ctx_estimate_bytes(const fr_model *m, int32_t n_ctx, int n_threads);

/* Run n tokens at positions n_past .. n_past+n-1 in one batched forward
 * pass and append them to the KV cache.  *logits receives the n_vocab
 * logits after the last token (owned by the context, valid until the next
 * eval).  FR_ETOOLONG if n_past + n > n_ctx, FR_EINVAL for n <= 0 or a
 * token id out of range (nothing is changed then).  Never allocates. */
int fr_ctx_eval(fr_ctx *c, const int32_t *tokens, int32_t n, const float **logits);

#endif
