/*
 * loader_llm.h — the manager's loader for language models (llama, qwen2):
 * a GGUF file becomes an open fr_model (weights mapped read-only) with its
 * scheduler (KV slots, batch thread) on the machine's compute turn.
 *
 * The loader's object is an fr_llm; handlers get it from fr_handle_obj
 * and submit requests to its scheduler.
 */
#ifndef FR_MANAGER_LOADER_LLM_H
#define FR_MANAGER_LOADER_LLM_H

#include "engine/model.h"
#include "manager/manager.h"
#include "sched/sched.h"

/* What every language model shares; must outlive the manager. */
typedef struct fr_llm_env {
    fr_compute *compute;        /* not owned */
    int32_t n_ctx;              /* a model's ctx when its cfg says 0 (--ctx) */
    int32_t parallel;           /* slots when its cfg says 0 (--parallel) */
    int32_t queue;              /* waiting requests per model (--queue) */
    int32_t chunk;              /* prompt tokens per sequence per step; 0 = 256 */
} fr_llm_env;

typedef struct fr_llm {
    fr_model *model;
    fr_sched *sched;
    int chat_kind;              /* fr_chat_kind from tokenizer.chat_template
                                   (chatml when absent or not recognised) */
} fr_llm;

/* The loader (ud = env).  probe opens the file's header and vocabulary
 * only to size it: capabilities completion + chat; estimate = the file
 * (mapped), the KV cache for ctx × parallel, the scheduler's scratch and
 * the model's heap. */
fr_loader fr_llm_loader(fr_llm_env *env);

/* The scheduler configuration a model gets from its cfg and env. */
fr_sched_config fr_llm_sched_config(const fr_llm_env *env, const fr_model_cfg *cfg);

#endif
