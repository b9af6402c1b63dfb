/*
 * provider.c — the index's models from the model manager
 * (fr_search_models_manager, search.h).
 *
 * acquire takes a reference on the manager's model (fr_manager_acquire,
 * loading it if needed) and checks that it can do what is asked:
 *
 *   EMBED     an encoder with embedding pooling: embed runs the texts
 *             through the model's batcher ([CLS] text [SEP], cut to the
 *             batcher's longest sequence); dim = the batcher's output
 *             width; max_tokens = its longest sequence.
 *   RERANK    an encoder with a classifier head (rank pooling): rerank
 *             runs ([CLS] query [SEP] document) pairs, cut to fit.
 *   GENERATE  a decoder: count_tokens with its tokenizer, max_tokens = the
 *             context of one of its slots.
 *
 * count_tokens tokenizes without special tokens (fr_tokenize with
 * add_special and parse_special false): for a WordPiece vocabulary that
 * is the chunker's unit; for a decoder it is the text as the model reads
 * it before its chat template.
 *
 * The batcher refuses work with FR_EBUSY when its queue is full (other
 * requests are embedding at the same time); the index's call is then
 * retried after the batcher's Retry-After estimate (at least 10 ms, at most
 * 500 ms a wait) for up to BUSY_LIMIT_S in all before FR_EBUSY goes back to
 * the index.  Long inputs go to the batcher in slices of at most
 * SLICE_SEQS sequences, so that one ingest does not take every slot of a
 * batch from the requests of /v1/embeddings.
 *
 * Every error carries a detail naming the model.  The object handed out
 * (fr_search_model.obj) is one fr_malloc'd struct holding the handle; it
 * is freed by release.  Thread-safe: the calls of one acquired model may
 * run on several threads at once (tokenizers are read-only, the batcher
 * is thread-safe).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/sysinfo.h"
#include "manager/loader_gguf.h"
#include "search/search.h"

#define BUSY_LIMIT_S 60.0
#define SLICE_SEQS 32

typedef struct held {
    fr_manager *mg;
    fr_handle *h;
    fr_loaded_model *lm;
    int use;
    char name[128];
} held;

/* rc with the detail "model 'name': <what>: <the current detail>" (the
 * detail is copied first: fr_errf writes the buffer it would read). */
static int wrap(int rc, const char *name, const char *what) {
    char d[400];
    snprintf(d, sizeof d, "%s", *fr_errdetail() ? fr_errdetail() : fr_strerror(rc));
    return fr_errf(rc, "model '%.128s': %s%s%s", name, what ? what : "", what ? ": " : "", d);
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static int count_tokens(void *obj, const char *text, size_t len, int32_t *n) {
    held *m = obj;
    *n = 0;
    if (len == 0) return 0;
    int32_t *ids = NULL;
    size_t k = 0;
    int rc = fr_tokenize(fr_model_vocab(m->lm->model), text, len, false, false, &ids, &k);
    fr_free(ids);
    if (rc) return wrap(rc, m->name, "cannot tokenize");
    if (k > INT32_MAX) return fr_errf(FR_ETOOLONG, "model '%s': %zu tokens", m->name, k);
    *n = (int32_t)k;
    return 0;
}

/* fr_batcher_run, retried while the batcher is busy. */
static int run_batcher(held *m, const fr_enc_seq *seqs, int32_t n, float *out) {
    double start = fr_now_s();
    for (;;) {
        double retry = 0;
        int rc = fr_batcher_run(m->lm->batcher, seqs, n, out, &retry);
        if (rc != FR_EBUSY) {
            if (rc) return wrap(rc, m->name, NULL);
            return 0;
        }
        if (fr_now_s() - start > BUSY_LIMIT_S)
            return fr_errf(FR_EBUSY, "model '%s' stayed busy for %.0f s", m->name, BUSY_LIMIT_S);
        sleep_s(retry < 0.01 ? 0.01 : retry > 0.5 ? 0.5 : retry);
    }
}

/* Encode n inputs, each tokenized by tok(i) into seqs, SLICE_SEQS at a
 * time; out[i·n_out ..]. */
typedef int (*tok_fn)(held *m, void *ud, int32_t i, int32_t max, int32_t **ids, size_t *n);

static int encode(held *m, int32_t n, tok_fn tok, void *ud, float *out) {
    int32_t n_out = fr_batcher_n_out(m->lm->batcher), max = fr_batcher_max_seq_tokens(m->lm->batcher);
    fr_enc_seq seqs[SLICE_SEQS];
    int32_t *ids[SLICE_SEQS];
    int rc = 0;
    for (int32_t at = 0; at < n && !rc; at += SLICE_SEQS) {
        int32_t k = n - at < SLICE_SEQS ? n - at : SLICE_SEQS, got = 0;
        for (; got < k; got++) {
            size_t len = 0;
            ids[got] = NULL;
            if ((rc = tok(m, ud, at + got, max, &ids[got], &len))) break;
            seqs[got] = (fr_enc_seq){ids[got], (int32_t)len};
        }
        if (!rc) rc = run_batcher(m, seqs, k, out + (size_t)at * (size_t)n_out);
        for (int32_t i = 0; i < got; i++) fr_free(ids[i]);
    }
    return rc;
}

typedef struct embed_in {
    const char *const *texts;
    const size_t *lens;
} embed_in;

static int tok_embed(held *m, void *ud, int32_t i, int32_t max, int32_t **ids, size_t *n) {
    const embed_in *in = ud;
    int rc = fr_enc_tokenize(m->lm->model, in->texts[i], in->lens[i], max, ids, n, NULL);
    if (rc) return fr_errf(rc, "model '%s': cannot tokenize text %d", m->name, (int)i);
    return 0;
}

static int embed(void *obj, const char *const *texts, const size_t *lens, int32_t n, float *out) {
    held *m = obj;
    if (n <= 0) return 0;
    embed_in in = {texts, lens};
    return encode(m, n, tok_embed, &in, out);
}

typedef struct rerank_in {
    const char *query;
    size_t qlen;
    const char *const *docs;
    const size_t *lens;
} rerank_in;

static int tok_rerank(held *m, void *ud, int32_t i, int32_t max, int32_t **ids, size_t *n) {
    const rerank_in *in = ud;
    int rc = fr_enc_rerank_tokens(m->lm->model, in->query, in->qlen, in->docs[i], in->lens[i], max, ids, n,
                                  NULL);
    if (rc) return fr_errf(rc, "model '%s': cannot tokenize document %d", m->name, (int)i);
    return 0;
}

static int rerank(void *obj, const char *query, size_t qlen, const char *const *docs, const size_t *lens,
                  int32_t n, float *scores) {
    held *m = obj;
    if (n <= 0) return 0;
    int32_t n_out = fr_batcher_n_out(m->lm->batcher);
    float *out = scores;
    size_t bytes;
    if (n_out != 1) {
        if (!fr_mul_ok((size_t)n, (size_t)n_out * sizeof(float), &bytes) || !(out = fr_malloc(bytes)))
            return fr_errf(FR_ENOMEM, "model '%s': no memory for %d scores", m->name, (int)n);
    }
    rerank_in in = {query, qlen, docs, lens};
    int rc = encode(m, n, tok_rerank, &in, out);
    if (n_out != 1) {
        for (int32_t i = 0; !rc && i < n; i++) scores[i] = out[(size_t)i * (size_t)n_out];
        fr_free(out);
    }
    return rc;
}

static const char *use_name(int use) {
    return use == FR_SEARCH_USE_EMBED ? "embeddings" : use == FR_SEARCH_USE_RERANK ? "reranking" : "generation";
}

static int acquire(void *ud, const char *name, int use, fr_search_model *out) {
    fr_manager *mg = ud;
    memset(out, 0, sizeof *out);
    if (!name || !*name) return fr_errf(FR_EINVAL, "no model named");
    if (use != FR_SEARCH_USE_EMBED && use != FR_SEARCH_USE_RERANK && use != FR_SEARCH_USE_GENERATE)
        return fr_errf(FR_EINVAL, "model '%.128s': unknown use %d", name, use);
    if (!mg) return fr_errf(FR_ENOENT, "model '%.128s' not found: no models are offered", name);
    held *m = fr_calloc(1, sizeof *m);
    if (!m) return fr_errf(FR_ENOMEM, "model '%.128s': no memory", name);
    m->mg = mg;
    m->use = use;
    snprintf(m->name, sizeof m->name, "%s", name);
    int rc = fr_manager_acquire(mg, name, -2, &m->h);
    if (rc) {
        fr_free(m);
        if (rc == FR_ENOENT) return fr_errf(FR_ENOENT, "model '%.128s' not found", name);
        if (strstr(fr_errdetail(), name)) return rc;       /* the detail names it already */
        return wrap(rc, name, NULL);
    }
    unsigned caps = fr_handle_caps(m->h);
    m->lm = fr_handle_obj(m->h);
    unsigned want = use == FR_SEARCH_USE_EMBED ? FR_CAP_EMBEDDING
                    : use == FR_SEARCH_USE_RERANK ? FR_CAP_RERANK : FR_CAP_COMPLETION | FR_CAP_CHAT;
    bool ok = (caps & want) && m->lm &&
              (use == FR_SEARCH_USE_GENERATE ? m->lm->sched != NULL : m->lm->batcher != NULL);
    if (!ok) {
        fr_manager_release(m->h);
        fr_free(m);
        return fr_errf(FR_EUNSUPP, "model '%.128s' does not do %s", name, use_name(use));
    }
    out->obj = m;
    out->count_tokens = count_tokens;
    if (use == FR_SEARCH_USE_GENERATE) {
        out->max_tokens = fr_sched_n_ctx(m->lm->sched);
    } else {
        out->max_tokens = fr_batcher_max_seq_tokens(m->lm->batcher);
        out->dim = fr_batcher_n_out(m->lm->batcher);
        if (use == FR_SEARCH_USE_EMBED) out->embed = embed;
        else out->rerank = rerank;
    }
    return 0;
}

static void release(void *ud, fr_search_model *sm) {
    (void)ud;
    if (!sm || !sm->obj) return;
    held *m = sm->obj;
    fr_manager_release(m->h);
    fr_free(m);
    memset(sm, 0, sizeof *sm);
}

void fr_search_models_manager(fr_manager *mg, fr_search_models *out) {
    out->ud = mg;
    out->acquire = acquire;
    out->release = release;
}
