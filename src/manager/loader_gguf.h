/*
 * loader_gguf.h — the manager's loader for GGUF models: a decoder (llama,
 * qwen2) becomes an open fr_model (weights mapped read-only) with its
 * scheduler (KV slots, batch thread); an encoder (bert, nomic-bert) an
 * open fr_model with its embedding batcher; both on the machine's compute
 * turn.
 *
 * The loader's object is an fr_loaded_model — a GGUF file loaded, decoder
 * or encoder; handlers get it from fr_handle_obj and submit requests to its
 * scheduler (decoders) or batcher (encoders).
 */
#ifndef FR_MANAGER_LOADER_GGUF_H
#define FR_MANAGER_LOADER_GGUF_H

#include "engine/model.h"
#include "manager/manager.h"
#include "sched/batcher.h"
#include "sched/sched.h"

/* What every GGUF model shares; must outlive the manager. */
typedef struct fr_gguf_env {
    fr_compute *compute;        /* not owned */
    int32_t n_ctx;              /* a model's ctx when its cfg says 0 (--ctx) */
    int32_t parallel;           /* slots when its cfg says 0 (--parallel) */
    int32_t queue;              /* waiting requests per model (--queue) */
    int32_t chunk;              /* prompt tokens per sequence per step; 0 = 256 */
    int32_t batch_tokens;       /* encoders: tokens per forward pass (--batch-tokens) */
} fr_gguf_env;

typedef struct fr_loaded_model {
    fr_model *model;
    fr_sched *sched;            /* decoders, else NULL */
    fr_batcher *batcher;        /* encoders, else NULL */
    uint64_t file_tag;          /* hash of the file's path, size and mtime: a
                                   cache key that changes when the file does */
    int chat_kind;              /* fr_chat_kind from tokenizer.chat_template
                                   (chatml when absent or not recognised) */
} fr_loaded_model;

/* The loader (ud = env).  probe opens the file's header and vocabulary
 * only to size it: a decoder has capabilities completion + chat and an
 * estimate of the file (mapped), the KV cache for ctx × parallel, the
 * scheduler's scratch and the model's heap; an encoder has embedding (or
 * rerank, with rank pooling) and the file, the batcher's scratch and the
 * heap. */
fr_loader fr_gguf_loader(fr_gguf_env *env);

/* The batcher configuration an encoder gets from env. */
fr_batcher_config fr_gguf_batcher_config(const fr_gguf_env *env);

/* The scheduler configuration a model gets from its cfg and env. */
fr_sched_config fr_gguf_sched_config(const fr_gguf_env *env, const fr_model_cfg *cfg);

#endif
