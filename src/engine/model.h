/*
 * model.h — a model loaded from GGUF: a decoder language model (llama,
 * qwen2) or an encoder (bert, nomic-bert; run by fr_enc_*), and the
 * context that runs a decoder: KV cache plus forward pass.
 *
 * fr_model owns the GGUF mapping (weights are never copied), the vocab and
 * the hyperparameters; it is immutable after open and may be shared.
 * fr_ctx owns an F16 KV cache for n_ctx positions of each of its n_seq
 * sequences (fr_ctx_create_seqs; fr_ctx_create makes one), the compute
 * pool reference and a scratch arena sized at creation, so that
 * evaluation never allocates.  A context is used by one thread at a time.
 */
#ifndef FR_ENGINE_MODEL_H
#define FR_ENGINE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"
#include "engine/vocab.h"
#include "frugal/engine.h"
#include "kernels/pool.h"

/* The public API (open, contexts, eval) is in frugal/engine.h. */

/* The model's parsed file (owned by the model). */
const fr_gguf *fr_model_gguf(const fr_model *m);

/* Counted heap bytes the open model holds (vocabulary, tables; not the
 * mapping). */
size_t fr_model_heap_bytes(const fr_model *m);

#endif
