/*
 * embeddings.c — POST /v1/embeddings (OpenAI's shape), POST /v1/rerank
 * (Jina's and Cohere's shape) and POST /rerank (text-embeddings-
 * inference's).
 *
 * The two rerank shapes, each as its service answers (read from TEI's
 * router, router/src/http/types.rs and server.rs; Jina's reranker API
 * docs; Cohere's rerank v2 reference):
 *   /rerank (TEI)   {query, texts, raw_scores = false, return_text =
 *                   false, truncate = false}, no model: the one "model"
 *                   names anyway, else the first model by id that reranks
 *                   (404 "no reranker" when none).  A bare JSON array of
 *                   {index, score, text?} sorted by score, best first, every
 *                   text.  score: the sigmoid of the classifier's logit, as
 *                   TEI applies to a one-label classifier, or the logit
 *                   itself with raw_scores.  A body with "documents" and no
 *                   "texts" is llama-server's /rerank (its alias of
 *                   /v1/rerank) and is answered as /v1/rerank.
 *   /v1/rerank      {model (optional, as llama-server: else as above),
 *                   query, documents (strings or {"text"} objects), top_n,
 *                   return_documents = false (Cohere's default; Jina's is
 *                   true), truncate}: {id, object, model, results: [{index,
 *                   relevance_score, document: {text}?}], usage:
 *                   {prompt_tokens, total_tokens}} (Jina's fields; Cohere's
 *                   clients read results).  relevance_score is in [0, 1] at
 *                   both services: the sigmoid of the logit.  (llama-server
 *                   answers the raw logit here; frugal did too before.)
 *
 * A request: parse and validate (400 naming the field) → acquire the model
 * (404, 503) → tokenize every input ([CLS] text [SEP]; for rerank
 * [CLS] query [SEP] document), 413 for an input over the model's context
 * unless "truncate": true → look each embedding up in the vector cache →
 * the misses go to the model's batcher in one call (fr_batcher_run), which
 * merges them with other requests' inputs into forward passes → store the
 * new vectors in the cache → reply.  The embeddings reply is written
 * straight into one buffer (below: its size is bounded, admitted against
 * the memory budget and allocated before any work; a reply that cannot
 * be afforded is a 503 naming its size, before any forward pass).
 *
 * Ollama's POST /api/embed and /api/embeddings (ollama.c) come through
 * the same path (fr__embeddings_ollama) and differ only in their fields
 * and reply: {"model", "embeddings": [[...]], "total_duration",
 * "load_duration", "prompt_eval_count"} and the older {"embedding": [...]}.
 *
 * The cache key is the model's file tag (path, size, mtime: a changed file
 * never serves old vectors), a byte for the kind of input, and the input
 * (the text, or the token ids).  The value is the vector and the input's
 * token count (for usage).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "base/lru.h"
#include "base/mem.h"
#include "base/sysinfo.h"
#include "manager/loader_gguf.h"
#include "server/reply_int.h"
#include "server/server_int.h"

#define MAX_INPUTS 2048

/* One input: where its tokens are, where its vector goes. */
typedef struct item {
    const char *text;           /* a text input, or NULL */
    size_t len;
    int32_t *ids;               /* its tokens (fr_malloc'd by tokenize, or the request's) */
    size_t n_ids;
    bool own_ids;
    bool cached;
    bool cut;                   /* a truncated text: not cached (its key is the whole text) */
} item;

/* The reply's shape. */
enum { SHAPE_OPENAI, SHAPE_OLLAMA, SHAPE_OLLAMA_LEGACY };

typedef struct embed_req {
    fr_req *rq;
    const char *model;
    int shape;
    int64_t keep_alive_ms;      /* as fr_manager_acquire */
    double load_ms;             /* the acquire's time (Ollama's load_duration) */
    fr_handle *h;
    fr_loaded_model *lm;
    item *items;
    size_t n;
    float *vecs;                /* [n][n_out] */
    int32_t n_out;
} embed_req;

static void release(embed_req *e) {
    for (size_t i = 0; e->items && i < e->n; i++)
        if (e->items[i].own_ids) fr_free(e->items[i].ids);
    fr_free(e->vecs);
    if (e->h) fr_manager_release(e->h);
    e->h = NULL;
}

static int bad_input(fr_req *rq, const char *param, const char *fmt, size_t i) {
    return fr__reply_error(rq, 400, "invalid_value", param, fmt, i);
}

/* input: a string, an array of strings, an array of token ids, or an
 * array of arrays of token ids. */
static int parse_input(fr_req *rq, json_t *in, embed_req *e) {
    if (!in) return fr__reply_error(rq, 400, "missing_field", "input", "input is required");
    json_t *one = NULL;
    size_t n;
    if (json_is_string(in)) {
        one = in;
        n = 1;
    } else if (json_is_array(in)) {
        n = json_array_size(in);
        if (n == 0) return fr__reply_error(rq, 400, "invalid_value", "input", "input must not be empty");
        if (json_is_integer(json_array_get(in, 0))) {  /* one sequence of token ids */
            one = in;
            n = 1;
        }
    } else {
        return fr__reply_error(rq, 400, "invalid_value", "input",
                               "input must be a string, an array of strings or an array of token-id arrays");
    }
    if (n > MAX_INPUTS)
        return fr__reply_error(rq, 400, "invalid_value", "input", "input has %zu items, at most %d", n,
                               MAX_INPUTS);
    if (!(e->items = fr__req_alloc(rq, n * sizeof *e->items))) return FR_ENOMEM;
    memset(e->items, 0, n * sizeof *e->items);
    e->n = n;
    for (size_t i = 0; i < n; i++) {
        json_t *x = one ? one : json_array_get(in, i);
        item *it = &e->items[i];
        if (json_is_string(x)) {
            if (json_string_length(x) == 0) return bad_input(rq, "input", "input[%zu] is an empty string", i);
            it->text = json_string_value(x);
            it->len = json_string_length(x);
        } else if (json_is_array(x) && json_array_size(x) > 0) {
            size_t k = json_array_size(x);
            if (!(it->ids = fr__req_alloc(rq, k * sizeof *it->ids))) return FR_ENOMEM;
            for (size_t t = 0; t < k; t++) {
                json_t *v = json_array_get(x, t);
                if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
                    return bad_input(rq, "input", "input[%zu] must hold token ids (non-negative integers)", i);
                it->ids[t] = (int32_t)json_integer_value(v);
            }
            it->n_ids = k;
        } else {
            return bad_input(rq, "input", "input[%zu] must be a non-empty string or an array of token ids", i);
        }
    }
    return 0;
}

/* Acquire the model and check it can do `cap`. */
static int acquire(fr_req *rq, embed_req *e, unsigned cap, const char *what) {
    double t0 = fr_now_s();
    int rc = fr__models_acquire(rq, e->model, e->keep_alive_ms, cap, what, &e->h);
    if (rc) return rc;
    e->load_ms = (fr_now_s() - t0) * 1e3;
    e->lm = fr_handle_obj(e->h);
    e->n_out = fr_batcher_n_out(e->lm->batcher);
    return 0;
}

/* The cache key of item it: file tag, kind, bytes. */
static size_t cache_key(const embed_req *e, const item *it, unsigned char *buf, size_t cap) {
    size_t n = it->text ? it->len : it->n_ids * sizeof(int32_t);
    if (9 + n > cap) return 0;
    memcpy(buf, &e->lm->file_tag, 8);
    buf[8] = it->text ? 't' : 'i';
    memcpy(buf + 9, it->text ? (const void *)it->text : (const void *)it->ids, n);
    return 9 + n;
}

/* Tokenize (texts), check the context, look up the cache, run the misses.
 * Answers input errors itself (FR_REPLIED). */
static int compute(fr_req *rq, embed_req *e, bool truncate, uint64_t *tokens) {
    const fr_model *m = fr_batcher_model(e->lm->batcher);
    int32_t max = fr_batcher_max_seq_tokens(e->lm->batcher);
    size_t vbytes = (size_t)e->n_out * sizeof(float);
    if (!(e->vecs = fr_malloc(e->n * (vbytes + sizeof(int32_t))))) return FR_ENOMEM;
    fr_lru *cache = rq->srv->embed_cache;
    size_t kcap = 0;
    unsigned char *key = NULL, *val = fr__req_alloc(rq, vbytes + sizeof(int32_t));
    if (!val) return FR_ENOMEM;
    fr_enc_seq *seqs = fr__req_alloc(rq, e->n * sizeof *seqs);
    size_t *which = fr__req_alloc(rq, e->n * sizeof *which);
    if (!seqs || !which) return FR_ENOMEM;
    size_t n_miss = 0;
    *tokens = 0;
    for (size_t i = 0; i < e->n; i++) {
        item *it = &e->items[i];
        if (cache) {
            size_t need = 9 + (it->text ? it->len : it->n_ids * sizeof(int32_t));
            if (need > kcap) {
                kcap = need * 2;
                if (!(key = fr__req_alloc(rq, kcap))) return FR_ENOMEM;
            }
            size_t kl = cache_key(e, it, key, kcap);
            if (kl && fr_lru_get(cache, key, kl, val, vbytes + sizeof(int32_t))) {
                memcpy(e->vecs + i * (size_t)e->n_out, val, vbytes);
                int32_t nt;
                memcpy(&nt, val + vbytes, sizeof nt);
                *tokens += (uint64_t)nt;
                it->cached = true;
                continue;
            }
        }
        if (it->text) {
            /* max_tokens 0 would mean n_ctx_train (a silent cut): without
             * truncate, take every token so that a long input is a 413 */
            int rc = fr_enc_tokenize(m, it->text, it->len, truncate ? max : INT32_MAX, &it->ids, &it->n_ids,
                                     &it->cut);
            if (rc) return rc;
            it->own_ids = true;
        } else if (truncate && it->n_ids > (size_t)max) {
            it->n_ids = fr_enc_truncate(m, it->ids, it->n_ids, max);
        }
        if (it->n_ids > (size_t)max)
            return fr__reply_error(rq, 413, "context_length_exceeded", "input",
                                   "input[%zu] is %zu tokens; model '%.128s' takes at most %d (send "
                                   "\"truncate\": true to cut it)", i, it->n_ids, e->model, (int)max);
        *tokens += it->n_ids;
        seqs[n_miss] = (fr_enc_seq){it->ids, (int32_t)it->n_ids};
        which[n_miss++] = i;
    }
    if (n_miss) {
        float *out = fr_malloc(n_miss * vbytes);
        if (!out) return FR_ENOMEM;
        double retry = 0;
        int rc = fr_batcher_run(e->lm->batcher, seqs, (int32_t)n_miss, out, &retry);
        if (rc) {
            fr_free(out);
            if (rc == FR_EBUSY) fr__req_set_retry_after(rq, retry);
            if (rc != FR_EINVAL) return rc;
            return fr__reply_err(rq, rc, "input");     /* a token id out of range: name the field */
        }
        for (size_t k = 0; k < n_miss; k++) {
            item *it = &e->items[which[k]];
            memcpy(e->vecs + which[k] * (size_t)e->n_out, out + k * (size_t)e->n_out, vbytes);
            if (!cache || it->cut) continue;
            size_t need = 9 + (it->text ? it->len : it->n_ids * sizeof(int32_t));
            if (need > kcap) {
                kcap = need * 2;
                if (!(key = fr__req_alloc(rq, kcap))) break;
            }
            size_t kl = cache_key(e, it, key, kcap);
            int32_t nt = (int32_t)it->n_ids;
            memcpy(val, out + k * (size_t)e->n_out, vbytes);
            memcpy(val + vbytes, &nt, sizeof nt);
            if (kl) fr_lru_put(cache, key, kl, val, vbytes + sizeof nt);
        }
        fr_free(out);
    }
    return 0;
}

/* n bytes as base64 into o ((n + 2) / 3 * 4 bytes, no NUL). */
static void base64_into(const void *p, size_t n, char *o, size_t *out_len) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = p;
    size_t len = (n + 2) / 3 * 4;
    char *w = o;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) | (i + 2 < n ? s[i + 2] : 0);
        *w++ = tab[v >> 18 & 63];
        *w++ = tab[v >> 12 & 63];
        *w++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
        *w++ = i + 2 < n ? tab[v & 63] : '=';
    }
    *out_len = len;
}

/* ---- the embeddings reply, written straight into one buffer ----
 *
 *   {"object":"list","data":[{"object":"embedding","index":0,"embedding":[...]},...],
 *    "model":"...","usage":{"prompt_tokens":N,"total_tokens":N}}
 *
 * byte for byte what json_dumps(JSON_COMPACT) made of the same reply as a
 * json_t tree, whose one object per float cost ~80 bytes a number (a
 * 2048-input request: 11 MB of text, ~100 MB of peak RSS).  The buffer is
 * sized for the worst case before any work, admitted against the memory
 * budget (fr_manager_admit_bytes) with the vectors, allocated, filled,
 * shrunk to its length and handed to libmicrohttpd as it is. */

#define ITEM_HEAD_MAX 72    /* ,{"object":"embedding","index":<20 digits>,"embedding": (64) */
#define ITEM_TAIL_MAX 4     /* ]}, or "}, */
#define REPLY_TAIL_MAX 160  /* ],"model": + usage with two 20-digit numbers; Ollama's three */

/* The reply's size at most (b64: each vector a base64 string). */
static size_t reply_bound(const embed_req *e, bool b64, size_t model_json_len) {
    size_t fbytes = (size_t)e->n_out * sizeof(float);
    size_t vec = b64 ? (fbytes + 2) / 3 * 4 + 2 : (size_t)e->n_out * (FR_REAL_TEXT_MAX + 1) + 2;
    return 32 + e->n * (ITEM_HEAD_MAX + vec + ITEM_TAIL_MAX) + model_json_len + REPLY_TAIL_MAX;
}

/* Is there room for the reply (cap bytes) and the vectors compute
 * allocates?  503 (FR_EBUDGET) naming the sizes when not (FR_REPLIED). */
static int admit(fr_req *rq, embed_req *e, bool b64, size_t cap) {
    fr_manager *mg = fr__req_manager(rq);
    size_t vbytes = (size_t)e->n_out * sizeof(float);
    size_t vecs = e->n * (2 * vbytes + sizeof(int32_t));  /* e->vecs, and compute's out */
    char what[200], rb[32], vb[32];
    snprintf(rb, sizeof rb, "%.1f MiB", (double)cap / (1 << 20));
    snprintf(vb, sizeof vb, "%.1f MiB", (double)vecs / (1 << 20));
    snprintf(what, sizeof what, "the reply to %zu input%s of %d dimensions (%s %s, at most %s, and %s "
             "of vectors)", e->n, e->n == 1 ? "" : "s", (int)e->n_out, b64 ? "base64" : "float",
             "text", rb, vb);
    int rc = fr_manager_admit_bytes(mg, (uint64_t)cap + vecs, what);
    if (rc == FR_EBUDGET)       /* counted in frugal_sheds_total{reason="budget"} by the manager */
        return fr__reply_err(rq, rc, NULL);
    return rc;
}

static size_t put(char *p, const char *s) {
    size_t n = strlen(s);
    memcpy(p, s, n);
    return n;
}

/* Write the reply into out (reply_bound bytes); returns its length. */
static size_t write_reply(const embed_req *e, bool b64, const char *model_json, uint64_t tokens,
                          char *out) {
    char *p = out;
    if (e->shape == SHAPE_OLLAMA) p += sprintf(p, "{\"model\":%s,\"embeddings\":[", model_json);
    else if (e->shape == SHAPE_OLLAMA_LEGACY) p += put(p, "{\"embedding\":");
    else p += put(p, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < e->n; i++) {
        const float *v = e->vecs + i * (size_t)e->n_out;
        if (e->shape == SHAPE_OPENAI)
            p += sprintf(p, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", i ? "," : "", i);
        else if (i)
            *p++ = ',';
        if (b64) {
            size_t len;
            *p++ = '"';
            base64_into(v, (size_t)e->n_out * sizeof(float), p, &len);
            p += len;
            *p++ = '"';
        } else {
            *p++ = '[';
            for (int32_t k = 0; k < e->n_out; k++) {
                if (k) *p++ = ',';
                p += fr__real_text(v[k], p);
            }
            *p++ = ']';
        }
        if (e->shape == SHAPE_OPENAI) *p++ = '}';
    }
    if (e->shape == SHAPE_OLLAMA_LEGACY) {
        p += put(p, "}");
        return (size_t)(p - out);
    }
    if (e->shape == SHAPE_OLLAMA) {
        double total_ms = (fr_now_s() - e->rq->t_start) * 1e3;
        p += sprintf(p, "],\"total_duration\":%lld,\"load_duration\":%lld,\"prompt_eval_count\":%llu}",
                     (long long)(total_ms * 1e6), (long long)(e->load_ms * 1e6), (unsigned long long)tokens);
        return (size_t)(p - out);
    }
    p += put(p, "],\"model\":");
    p += put(p, model_json);
    p += sprintf(p, ",\"usage\":{\"prompt_tokens\":%llu,\"total_tokens\":%llu}}",
                 (unsigned long long)tokens, (unsigned long long)tokens);
    return (size_t)(p - out);
}

/* The body and its model; the request's log names the model. */
static int open_body(fr_req *rq, fr_body *b, embed_req *e) {
    int rc = fr__body_need(rq, b);
    if (!rc) rc = fr__body_str(b, "model", FR_BODY_REQUIRED, &e->model, NULL);
    if (!rc) fr__req_set_model(rq, e->model);
    return rc;
}

static int embed(fr_req *rq, embed_req *e, bool b64, bool truncate, const char *model_json);

int fr__h_embeddings(fr_req *rq) {
    fr_body b;
    embed_req e = {.rq = rq, .shape = SHAPE_OPENAI, .keep_alive_ms = FR_KEEP_ALIVE_INHERIT};
    int rc;
    if ((rc = open_body(rq, &b, &e)) || (rc = parse_input(rq, json_object_get(b.obj, "input"), &e))) return rc;
    json_t *body = b.obj;
    bool b64 = false, truncate = false;
    json_t *fmt = json_object_get(body, "encoding_format");
    if (fmt && !json_is_null(fmt)) {
        const char *f = json_string_value(fmt);
        if (!f || (strcmp(f, "float") && strcmp(f, "base64")))
            return fr__reply_error(rq, 400, "invalid_value", "encoding_format",
                                   "encoding_format must be \"float\" or \"base64\"");
        b64 = strcmp(f, "base64") == 0;
    }
    json_t *dims = json_object_get(body, "dimensions");
    if ((rc = fr__body_bool(&b, "truncate", &truncate)) ||
        (rc = acquire(rq, &e, FR_CAP_EMBEDDING, "embeddings")))
        return rc;
    if (dims && !json_is_null(dims) && (!json_is_integer(dims) || json_integer_value(dims) != e.n_out)) {
        release(&e);
        return fr__reply_error(rq, 400, "invalid_value", "dimensions",
                               "model '%.128s' gives vectors of %d dimensions", e.model, (int)e.n_out);
    }
    char *model_json = json_dumps(json_object_get(body, "model"), JSON_ENCODE_ANY);
    if (!model_json) {
        release(&e);
        return FR_ENOMEM;
    }
    rc = embed(rq, &e, b64, truncate, model_json);
    fr_free(model_json);
    return rc;
}

/* The rest of a request whose model e holds: reply with its vectors. */
static int embed(fr_req *rq, embed_req *e, bool b64, bool truncate, const char *model_json) {
    int rc;
    /* the reply's memory, admitted and allocated before any work */
    char *reply = NULL;
    size_t cap = reply_bound(e, b64, strlen(model_json));
    if ((rc = admit(rq, e, b64, cap)) || !(reply = fr_malloc(cap))) {
        release(e);
        return rc ? rc : FR_ENOMEM;
    }
    uint64_t tokens = 0;
    if ((rc = compute(rq, e, truncate, &tokens))) {
        release(e);
        fr_free(reply);
        return rc;
    }
    fr__req_set_tokens(rq, (int32_t)tokens, 0);
    size_t len = write_reply(e, b64, model_json, tokens, reply);
    release(e);
    char *shrunk = fr_realloc(reply, len);    /* give back the bound's slack */
    return fr__reply_owned(rq, 200, "application/json", shrunk ? shrunk : reply, len);
}

int fr__embeddings_ollama(fr_req *rq, const char *model, const char *name, bool legacy, int64_t keep_alive_ms) {
    fr_body b;
    embed_req e = {.rq = rq, .model = model, .shape = legacy ? SHAPE_OLLAMA_LEGACY : SHAPE_OLLAMA,
                   .keep_alive_ms = keep_alive_ms};
    bool truncate = true;                       /* Ollama's default */
    int rc;
    if ((rc = fr__body_need(rq, &b))) return rc;
    json_t *in = json_object_get(b.obj, legacy ? "prompt" : "input");
    if (legacy && in && !json_is_string(in))
        return fr__reply_error(rq, 400, "invalid_value", "prompt", "prompt must be a string");
    if (legacy && (!in || json_string_length(in) == 0))    /* as Ollama: nothing to embed */
        return fr__reply_json(rq, 200, json_pack("{s:[]}", "embedding"));
    if ((rc = parse_input(rq, in, &e)) || (!legacy && (rc = fr__body_bool(&b, "truncate", &truncate))) ||
        (rc = acquire(rq, &e, FR_CAP_EMBEDDING, "embeddings")))
        return rc;
    json_t *nj = json_string(name);
    char *model_json = nj ? json_dumps(nj, JSON_ENCODE_ANY) : NULL;
    json_decref(nj);
    if (!model_json) {
        release(&e);
        return FR_ENOMEM;
    }
    rc = embed(rq, &e, false, truncate, model_json);
    fr_free(model_json);
    return rc;
}

typedef struct ranked {
    size_t index;
    float score;
} ranked;

static int by_score(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* A document's text: a string, or Jina's and Cohere's {"text": ...}
 * (objs); NULL otherwise. */
static json_t *doc_text(json_t *d, bool objs) {
    if (objs && json_is_object(d)) d = json_object_get(d, "text");
    return json_is_string(d) ? d : NULL;
}

/* The documents field `param` of a rerank body: a non-empty array of
 * strings (or {"text"} objects when objs).  *n its size; FR_REPLIED. */
static int rerank_docs(fr_req *rq, json_t *body, const char *param, bool objs, json_t **out, size_t *n) {
    json_t *docs = json_object_get(body, param);
    if (!docs) return fr__reply_error(rq, 400, "missing_field", param, "%s is required", param);
    *n = json_array_size(docs);
    if (!json_is_array(docs) || *n == 0)
        return fr__reply_error(rq, 400, "invalid_value", param, "%s must be a non-empty array of strings", param);
    if (*n > MAX_INPUTS)
        return fr__reply_error(rq, 400, "invalid_value", param, "%zu %s, at most %d", *n, param, MAX_INPUTS);
    for (size_t i = 0; i < *n; i++)
        if (!doc_text(json_array_get(docs, i), objs))
            return fr__reply_error(rq, 400, "invalid_value", param, "%s[%zu] must be a string%s", param, i,
                                   objs ? " or {\"text\": string}" : "");
    *out = docs;
    return 0;
}

/* Score query against every document with e->model (acquired and
 * released here): *rk sorted by raw score (the classifier's logit), best
 * first, from the request's arena.  FR_REPLIED or FR_E*. */
static int rerank_run(fr_req *rq, embed_req *e, const char *query, size_t query_len, json_t *docs, size_t n,
                      bool objs, bool truncate, const char *param, ranked **out, uint64_t *tokens) {
    int rc;
    if ((rc = acquire(rq, e, FR_CAP_RERANK, "reranking"))) return rc;
    const fr_model *m = fr_batcher_model(e->lm->batcher);
    int32_t max = fr_batcher_max_seq_tokens(e->lm->batcher);
    if (!(e->items = fr__req_alloc(rq, n * sizeof *e->items))) {
        release(e);
        return FR_ENOMEM;
    }
    memset(e->items, 0, n * sizeof *e->items);
    e->n = n;
    fr_enc_seq *seqs = fr__req_alloc(rq, n * sizeof *seqs);
    float *scores = fr__req_alloc(rq, n * (size_t)e->n_out * sizeof *scores);
    ranked *rk = fr__req_alloc(rq, n * sizeof *rk);
    if (!seqs || !scores || !rk) {
        release(e);
        return FR_ENOMEM;
    }
    *tokens = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *d = doc_text(json_array_get(docs, i), objs);
        item *it = &e->items[i];
        bool cut = false;
        rc = fr_enc_rerank_tokens(m, query, query_len, json_string_value(d), json_string_length(d),
                                  truncate ? max : INT32_MAX, &it->ids, &it->n_ids, &cut);
        if (rc) {
            release(e);
            return rc;
        }
        it->own_ids = true;
        if (it->n_ids > (size_t)max) {
            release(e);
            return fr__reply_error(rq, 413, "context_length_exceeded", param,
                                   "query and %s[%zu] are %zu tokens; model '%.128s' takes at most %d "
                                   "(send \"truncate\": true to cut them)", param, i, it->n_ids, e->model,
                                   (int)max);
        }
        seqs[i] = (fr_enc_seq){it->ids, (int32_t)it->n_ids};
        *tokens += it->n_ids;
    }
    double retry = 0;
    rc = fr_batcher_run(e->lm->batcher, seqs, (int32_t)n, scores, &retry);
    if (rc) {
        release(e);
        if (rc == FR_EBUSY) fr__req_set_retry_after(rq, retry);
        return fr__reply_err(rq, rc, NULL);
    }
    for (size_t i = 0; i < n; i++) rk[i] = (ranked){i, scores[i * (size_t)e->n_out]};
    qsort(rk, n, sizeof *rk, by_score);
    fr__req_set_tokens(rq, (int32_t)*tokens, 0);
    release(e);
    *out = rk;
    return 0;
}

static double sigmoid(float x) { return 1.0 / (1.0 + exp(-(double)x)); }

/* The reranker of a body: the one "model" names, else (TEI's requests
 * have no model; llama-server's make it optional) the first model by id
 * that reranks. */
static int default_reranker(fr_req *rq, fr_body *b, embed_req *e) {
    int rc;
    if ((rc = fr__body_str(b, "model", 0, &e->model, NULL))) return rc;
    if (!e->model) {
        fr_model_info *all = NULL;
        size_t n = 0;
        if ((rc = fr_manager_list(fr__req_manager(rq), &all, &n))) return rc;
        for (size_t i = 0; i < n && !e->model; i++)
            if ((all[i].caps & FR_CAP_RERANK) && !all[i].removed) e->model = fr__req_strdup(rq, all[i].id);
        fr_free(all);
        if (!e->model)
            return fr__reply_error(rq, 404, "model_not_found", "model",
                                   "no reranker: none of the %zu models reranks (without \"model\" the first "
                                   "model that does is used)", n);
    }
    fr__req_set_model(rq, e->model);
    return 0;
}

/* POST /v1/rerank: Jina's and Cohere's shape (the file's header). */
int fr__h_rerank(fr_req *rq) {
    fr_body b;
    embed_req e = {.rq = rq};
    const char *query;
    size_t query_len, n;
    json_t *docs;
    int rc;
    if ((rc = fr__body_need(rq, &b)) || (rc = default_reranker(rq, &b, &e)) ||
        (rc = fr__body_str(&b, "query", FR_BODY_REQUIRED, &query, &query_len)) ||
        (rc = rerank_docs(rq, b.obj, "documents", true, &docs, &n)))
        return rc;
    int32_t top_n = (int32_t)n;
    bool ret_docs = false, truncate = false;
    if ((rc = fr__body_i32(&b, "top_n", 1, INT32_MAX, &top_n, NULL)) ||
        (rc = fr__body_bool(&b, "return_documents", &ret_docs)) || (rc = fr__body_bool(&b, "truncate", &truncate)))
        return rc;
    if ((size_t)top_n > n) top_n = (int32_t)n;
    ranked *rk;
    uint64_t tokens;
    if ((rc = rerank_run(rq, &e, query, query_len, docs, n, true, truncate, "documents", &rk, &tokens))) return rc;
    json_t *results = json_array();
    for (int32_t i = 0; i < top_n; i++) {
        json_t *r = json_pack("{s:I, s:f}", "index", (json_int_t)rk[i].index, "relevance_score",
                              sigmoid(rk[i].score));
        if (ret_docs)
            json_object_set_new(r, "document",
                                json_pack("{s:O}", "text", doc_text(json_array_get(docs, rk[i].index), true)));
        json_array_append_new(results, r);
    }
    char id[40];
    snprintf(id, sizeof id, "rerank-%s", rq->id);
    return fr__reply_json(rq, 200, json_pack("{s:s, s:s, s:o, s:s, s:{s:I, s:I}}", "id", id, "object", "list",
                                             "results", results, "model", e.model, "usage", "prompt_tokens",
                                             (json_int_t)tokens, "total_tokens", (json_int_t)tokens));
}

/* POST /rerank: text-embeddings-inference's shape (the file's header);
 * a body with "documents" and no "texts" is llama-server's alias of
 * /v1/rerank and answered as that. */
int fr__h_rerank_tei(fr_req *rq) {
    fr_body b;
    embed_req e = {.rq = rq};
    const char *query;
    size_t query_len, n;
    json_t *docs;
    int rc;
    if ((rc = fr__body_need(rq, &b))) return rc;
    if (!json_object_get(b.obj, "texts") && json_object_get(b.obj, "documents")) return fr__h_rerank(rq);
    if ((rc = default_reranker(rq, &b, &e)) ||
        (rc = fr__body_str(&b, "query", FR_BODY_REQUIRED, &query, &query_len)) ||
        (rc = rerank_docs(rq, b.obj, "texts", false, &docs, &n)))
        return rc;
    bool raw = false, ret_text = false, truncate = false;
    if ((rc = fr__body_bool(&b, "raw_scores", &raw)) || (rc = fr__body_bool(&b, "return_text", &ret_text)) ||
        (rc = fr__body_bool(&b, "truncate", &truncate)))
        return rc;
    ranked *rk;
    uint64_t tokens;
    if ((rc = rerank_run(rq, &e, query, query_len, docs, n, false, truncate, "texts", &rk, &tokens))) return rc;
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_pack("{s:I, s:f}", "index", (json_int_t)rk[i].index, "score",
                              raw ? (double)rk[i].score : sigmoid(rk[i].score));
        if (ret_text) json_object_set_new(r, "text", json_copy(json_array_get(docs, rk[i].index)));
        json_array_append_new(out, r);
    }
    return fr__reply_json(rq, 200, out);
}
