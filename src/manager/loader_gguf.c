/*
 * loader_gguf.c — language models for the manager (contract: loader_gguf.h).
 *
 * probe   fr_model_open (maps the file — no weight page is touched — and
 *         reads hyperparameters and the vocabulary), sizes the scheduler
 *         with fr_sched_estimate_bytes, closes.
 * load    fr_model_open, chat template detection, fr_sched_create.
 * usage   the mapping's size and its resident pages (mincore), the KV
 *         cache, and the rest of what the scheduler and model hold.
 * cancel  cancels every request of the model's scheduler by destroying
 *         nothing: the manager calls it before a forced unload, and the
 *         requests see "cancelled" at the next step (fr_sched_cancel_all).
 * unload  fr_sched_destroy (cancels what is left, joins the thread), then
 *         fr_model_close (munmap).
 */
#include "manager/loader_gguf.h"

#include <sys/stat.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/sysinfo.h"
#include "engine/chat.h"
#include "engine/gguf.h"

fr_sched_config fr_gguf_sched_config(const fr_gguf_env *env, const fr_model_cfg *cfg) {
    return (fr_sched_config){
        .n_ctx = cfg->n_ctx > 0 ? cfg->n_ctx : env->n_ctx,
        .n_slots = cfg->parallel > 0 ? cfg->parallel : env->parallel > 0 ? env->parallel : 1,
        .n_queue = env->queue,
        .chunk = env->chunk,
    };
}

fr_batcher_config fr_gguf_batcher_config(const fr_gguf_env *env) {
    return (fr_batcher_config){.batch_tokens = env->batch_tokens, .n_queue = env->queue};
}

static int probe(void *ud, const fr_model_cfg *cfg, unsigned *caps, fr_usage *est) {
    fr_gguf_env *env = ud;
    fr_model *m = NULL;
    int rc = fr_model_open(cfg->path, &m);
    if (rc) return rc;
    if (fr_model_is_encoder(m)) {
        fr_batcher_config ec = fr_gguf_batcher_config(env);
        size_t b = fr_batcher_estimate_bytes(m, &ec, fr_compute_threads(env->compute));
        int pooling = fr_model_pooling(m);
        *caps = pooling == FR_POOLING_RANK ? FR_CAP_RERANK : FR_CAP_EMBEDDING;
        est->weights_mapped = est->weights_resident = fr_gguf_file_size(fr_model_gguf(m));
        est->kv = 0;
        est->scratch = b + fr_model_heap_bytes(m);
        fr_model_close(m);
        if (b == SIZE_MAX)
            return fr_errf(FR_EUNSUPP, "%s: this encoder cannot be run (pooling %d)", cfg->path,
                           pooling);
        return 0;
    }
    fr_sched_config sc = fr_gguf_sched_config(env, cfg);
    size_t sched = fr_sched_estimate_bytes(m, &sc, fr_compute_threads(env->compute));
    if (sched == SIZE_MAX) {
        fr_model_close(m);
        return fr_errf(FR_EINVAL, "%s: ctx %d × parallel %d does not fit in memory sizes",
                       cfg->path, (int)sc.n_ctx, (int)sc.n_slots);
    }
    const fr_hparams *hp = fr_model_hparams(m);
    int32_t n_ctx = sc.n_ctx > 0 ? sc.n_ctx : hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    uint64_t kv = 2ull * (uint64_t)hp->n_layer * (uint64_t)sc.n_slots * (uint64_t)n_ctx *
                  (uint64_t)hp->n_head_kv * (uint64_t)hp->head_dim * 2u;
    *caps = FR_CAP_COMPLETION | FR_CAP_CHAT;
    est->weights_mapped = est->weights_resident = fr_gguf_file_size(fr_model_gguf(m));
    est->kv = kv;
    est->scratch = sched - kv + fr_model_heap_bytes(m);
    fr_model_close(m);
    return 0;
}

static uint64_t file_tag(const char *path) {
    struct stat st;
    uint64_t h = 1469598103934665603ull;
    for (const char *p = path; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    if (stat(path, &st) == 0) {
        uint64_t v[3] = {(uint64_t)st.st_size, (uint64_t)st.st_mtim.tv_sec, (uint64_t)st.st_mtim.tv_nsec};
        for (int i = 0; i < 3; i++) h = (h ^ v[i]) * 1099511628211ull;
    }
    return h;
}

static int load(void *ud, const fr_model_cfg *cfg, void **obj) {
    fr_gguf_env *env = ud;
    fr_loaded_model *l = fr_calloc(1, sizeof *l);
    if (!l) return FR_ENOMEM;
    int rc = fr_model_open(cfg->path, &l->model);
    if (rc) goto fail;
    l->file_tag = file_tag(cfg->path);
    if (fr_model_is_encoder(l->model)) {
        fr_batcher_config ec = fr_gguf_batcher_config(env);
        if ((rc = fr_batcher_create(l->model, env->compute, &ec, &l->batcher))) goto fail;
        *obj = l;
        return 0;
    }
    fr_gguf_str tmpl;
    char *src = NULL;
    if (cfg->chat_template) {   /* the configuration's, in place of the file's */
        if (!(src = fr_strdup(cfg->chat_template))) {
            rc = FR_ENOMEM;
            goto fail;
        }
    } else if (fr_gguf_get_str(fr_model_gguf(l->model), "tokenizer.chat_template", &tmpl) == 0 &&
               !(src = fr_strndup(tmpl.s, (size_t)tmpl.len))) {
        rc = FR_ENOMEM;
        goto fail;
    }
    int kind = fr_chat_detect(src);
    if (kind < 0) {
        FR_WARN("%s: chat template not recognised (%s); using chatml", cfg->path, fr_errdetail());
        kind = FR_CHAT_CHATML;
    }
    fr_free(src);
    l->chat_kind = kind;
    fr_sched_config sc = fr_gguf_sched_config(env, cfg);
    if ((rc = fr_sched_create(l->model, env->compute, &sc, &l->sched))) goto fail;
    *obj = l;
    return 0;
fail:
    fr_model_close(l->model);
    fr_free(l);
    return rc;
}

static void unload(void *ud, void *obj) {
    (void)ud;
    fr_loaded_model *l = obj;
    fr_sched_destroy(l->sched);
    fr_batcher_destroy(l->batcher);
    fr_model_close(l->model);
    fr_free(l);
}

static void usage(void *ud, void *obj, fr_usage *u) {
    (void)ud;
    const fr_loaded_model *l = obj;
    const fr_gguf *g = fr_model_gguf(l->model);
    u->weights_mapped = fr_gguf_file_size(g);
    u->weights_resident = fr_resident_bytes(fr_gguf_base(g), fr_gguf_file_size(g));
    u->kv = l->sched ? fr_sched_kv_bytes(l->sched) : 0;
    u->scratch = (l->sched ? fr_sched_bytes(l->sched) - u->kv : fr_batcher_bytes(l->batcher)) +
                 fr_model_heap_bytes(l->model);
}

static void cancel(void *ud, void *obj) {
    (void)ud;
    fr_loaded_model *l = obj;
    if (l->sched) fr_sched_cancel_all(l->sched);
    else fr_batcher_cancel_all(l->batcher);
}

fr_loader fr_gguf_loader(fr_gguf_env *env) {
    return (fr_loader){.ud = env, .probe = probe, .load = load, .unload = unload,
                       .usage = usage, .cancel = cancel};
}
