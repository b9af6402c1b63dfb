/*
 * sched.c — one language model's requests: slots, continuous batching,
 * chunked prefill, bounded admission (contract: sched.h).
 *
 * Structures.
 *   fr_sched  the model's context with one KV sequence per slot, the slots,
 *             the FIFO of queued requests, and the batch-loop thread.
 *   slot      a KV sequence and what it holds: cache[0..cache_len) are the
 *             tokens whose keys and values sit in the sequence (they stay
 *             after a request ends, so the next request that shares a
 *             prefix with them skips it); the request it serves, if any,
 *             with its sampler, its prompt position and its last token.
 *   fr_gen    one request: the parameters (copied at submit), the output
 *             not yet read by the consumer (text, probabilities, finish),
 *             and the scheduler's text state (detokenizer, text held back
 *             while it might begin a stop string).
 *
 * The loop.  Each turn: take the queue's cancelled and expired requests
 * out; give free slots to queued requests (the free slot whose cache
 * shares the longest prefix with the prompt); end requests that were
 * cancelled or ran past their deadline; then build one batch — one token
 * for every slot that is generating, then prompt chunks of at most
 * cfg.chunk tokens for slots still reading their prompt, up to what one
 * step takes — run it on the compute turn, and sample every slot whose
 * run asked for logits.  With nothing to do the thread sleeps on the
 * scheduler's condition variable; submit and destroy wake it.  A cancel
 * needs no wake-up: a cancelled request is running or queued, and the
 * queue is non-empty only while every slot is busy (or, while the compute's
 * slot cap holds, at least one: slot_limit), so the loop is awake.
 *
 * Groups (fr_sched_submit_n: n continuations of one prompt).  The leader
 * stands in the queue for its group and is taken only when n slots are
 * free (and then nothing behind it overtakes it: FIFO).  Each sibling gets
 * a slot of its own that follows the leader's (slot.follow): it is left
 * out of the batches until the leader's last prompt chunk has run; then
 * share_prompt copies the leader's KV rows into it (fr_ctx_seq_copy) and
 * samples it from the same logits, and from there on every member is an
 * ordinary request.  A leader freed before its prompt is in takes its
 * followers with it (cancelled).
 *
 * Prompt logprobs (echo).  A request with prompt_probs is fed one prompt
 * token a step with logits wanted, and each step's logits give the next
 * prompt token's logprob (prompt_prob), for it and its followers.  Without
 * the flag nothing of this runs.
 *
 * Stop strings.  Detokenized text (complete UTF-8 characters only) goes
 * to the request's hold buffer; text that contains a stop string ends the
 * request right before it; the longest tail of the hold that is a prefix
 * of some stop string is kept back, the rest is emitted.  With max stop
 * length S the hold never exceeds S - 1 + one piece, so it is allocated
 * once at submit.
 *
 * Locking.  s->mu guards the queue, the counters the handlers read
 * (n_active, n_queued, statistics) and the stop flag.  g->mu guards the
 * request's output (text, probabilities, finish, times) and its on_end
 * hook, which runs under it (so fr_gen_release, which disarms the hook
 * under it, never returns while the hook runs); the consumer waits on
 * g->cv.  Slots and the scheduler-side fields of a request are
 * touched by the loop thread only.  g->cancel is an atomic flag.  A
 * request has two references (the loop's, the consumer's); it is freed by
 * whichever drops the last.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/sysinfo.h"
#include "engine/grammar.h"
#include "engine/vocab.h"
#include "sched/sched_int.h"

#define DEFAULT_CHUNK 256
#define PIECE_MAX 512             /* bytes one token's text may take */

struct fr_gen {
    atomic_int refs;
    atomic_bool cancel;
    /* parameters (owned copies) */
    int32_t *prompt;
    int32_t n_prompt, max_tokens;
    fr_sampler_params sp;
    int32_t *bias_ids;
    float *bias;
    int32_t n_bias;
    char **stop;
    size_t *stop_len;
    int32_t n_stop;
    bool ignore_eos;
    int32_t n_probs;
    bool prompt_probs;            /* echo: the prompt's logprobs first */
    double deadline;
    /* n > 1 (fr_sched_submit_n): the first request leads its group in the
     * queue; the others wait for its prompt in their slots */
    fr_gen **sibs;                /* the leader's [n_sibs] (loop-side) */
    int32_t n_sibs;
    fr_gen *leader;               /* a sibling's; NULL for a leader or alone */
    fr_grammar *grammar;          /* a reference, or NULL */
    char errmsg[160];             /* what a FINISH_ERROR was, when not just its code */
    void (*on_end)(void *ud);     /* under mu: NULL once run or disarmed */
    void *on_end_ud;
    /* output, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *out;
    size_t out_len, out_cap;
    fr_gen_prob *probs;
    int32_t n_out_probs, probs_cap;
    int finish, error;
    int32_t n_gen;
    double t_submit, t_slot, t_first, t_done;
    /* loop-side state */
    fr_gen *next;                 /* queue link */
    fr_detok detok;
    char *hold;                   /* [hold_cap] */
    size_t hold_len, hold_cap;
    int32_t n_prompt_eval;        /* prompt tokens actually evaluated */
};

typedef struct slot {
    fr_gen *g;                    /* NULL: free */
    fr_sampler *smp;
    fr_gmatcher *gm;              /* the request's grammar position, or NULL */
    float *masked;                /* [n_vocab] logits with the grammar's mask */
    int32_t *cache;               /* [n_ctx] tokens in the KV sequence */
    int32_t cache_len;
    int32_t n_fed;                /* prompt tokens in the cache */
    int32_t last;                 /* the token to feed next when generating */
    bool generating;              /* the whole prompt is in */
    int32_t follow;               /* n > 1: waiting for slot `follow` to read
                                     the group's prompt; else -1 */
} slot;

struct fr_sched {
    fr_model *model;
    fr_compute *compute;
    fr_sched_config cfg;
    fr_ctx *ctx;
    const fr_vocab *vocab;
    fr_gvocab *gvocab;            /* token texts for grammars: made at the first one */
    fr_gmask_cache *gcache;       /* and the masks all grammar requests share */
    int32_t n_vocab, max_batch;
    slot *slots;                  /* [n_slots] */
    size_t bytes;                 /* everything allocated at create */
    pthread_t thread;
    bool thread_started;
    /* under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    uint64_t cancel_epoch;        /* bumped by fr_sched_cancel_all */
    uint64_t cancel_seen;         /* the loop's copy (loop thread only) */
    fr_gen *q_head, *q_tail;
    int32_t n_queued, n_active;
    uint64_t done, tok_prompt, tok_gen, steps, rejected;
    double last_done, gap_ewma;   /* seconds between completions, smoothed */
    int32_t rr;                   /* first slot to consider for prompt chunks */
};

const char *fr_finish_name(int finish) {
    switch (finish) {
    case FR_FINISH_STOP: return "stop";
    case FR_FINISH_LENGTH: return "length";
    case FR_FINISH_CANCELLED: return "cancelled";
    case FR_FINISH_ERROR: return "error";
    default: return "none";
    }
}

/* ---- requests ---- */

static void gen_unref(fr_gen *g) {
    if (atomic_fetch_sub(&g->refs, 1) != 1) return;
    for (int32_t i = 0; i < g->n_stop; i++) fr_free(g->stop[i]);
    fr_free(g->stop);
    fr_free(g->stop_len);
    fr_free(g->prompt);
    fr_free(g->bias_ids);
    fr_free(g->bias);
    fr_free(g->out);
    fr_free(g->probs);
    fr_free(g->hold);
    fr_free(g->sibs);
    fr_grammar_unref(g->grammar);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    fr_free(g);
}

static void *dup_array(const void *src, size_t n, size_t size) {
    if (n == 0) return NULL;
    void *p = fr_malloc(n * size);
    if (p) memcpy(p, src, n * size);
    return p;
}

static int check_params(const fr_sched *s, const fr_gen_params *p) {
    if (!p->prompt || p->n_prompt < 1)
        return fr_errf(FR_EINVAL, "prompt: %d tokens, at least 1", (int)p->n_prompt);
    if (p->n_prompt >= s->cfg.n_ctx)
        return fr_errf(FR_ETOOLONG, "prompt of %d tokens does not fit the context of %d tokens "
                       "(at least one must remain to generate)", (int)p->n_prompt,
                       (int)s->cfg.n_ctx);
    for (int32_t i = 0; i < p->n_prompt; i++)
        if (p->prompt[i] < 0 || p->prompt[i] >= s->n_vocab)
            return fr_errf(FR_EINVAL, "prompt: token %d at index %d is out of range [0, %d)",
                           (int)p->prompt[i], (int)i, (int)s->n_vocab);
    if (p->max_tokens < 1)
        return fr_errf(FR_EINVAL, "max_tokens: %d, at least 1", (int)p->max_tokens);
    if (p->n_probs < 0 || p->n_probs > FR_GEN_MAX_PROBS)
        return fr_errf(FR_EINVAL, "top_logprobs: %d, between 0 and %d", (int)p->n_probs,
                       FR_GEN_MAX_PROBS);
    if (p->n_stop < 0 || p->n_stop > FR_GEN_MAX_STOPS || (p->n_stop && !p->stop))
        return fr_errf(FR_EINVAL, "stop: %d strings, at most %d", (int)p->n_stop, FR_GEN_MAX_STOPS);
    for (int32_t i = 0; i < p->n_stop; i++) {
        size_t n = p->stop[i] ? strlen(p->stop[i]) : 0;
        if (n == 0 || n > FR_GEN_MAX_STOP_LEN)
            return fr_errf(FR_EINVAL, "stop[%d]: %zu bytes, between 1 and %d", (int)i, n,
                           FR_GEN_MAX_STOP_LEN);
    }
    if (p->n_bias < 0 || (p->n_bias && (!p->bias_ids || !p->bias)))
        return fr_errf(FR_EINVAL, "logit_bias: %d entries", (int)p->n_bias);
    for (int32_t i = 0; i < p->n_bias; i++)
        if (p->bias_ids[i] < 0 || p->bias_ids[i] >= s->n_vocab)
            return fr_errf(FR_EINVAL, "logit_bias: token %d is out of range [0, %d)",
                           (int)p->bias_ids[i], (int)s->n_vocab);
    return 0;
}

static int gen_create(fr_sched *s, const fr_gen_params *p, fr_gen **out) {
    fr_gen *g = fr_calloc(1, sizeof *g);
    if (!g) return FR_ENOMEM;
    atomic_init(&g->refs, 1);
    atomic_init(&g->cancel, false);
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    g->n_prompt = p->n_prompt;
    g->max_tokens = p->max_tokens;
    g->sp = p->sampling;
    g->n_bias = p->n_bias;
    g->ignore_eos = p->ignore_eos;
    g->n_probs = p->n_probs;
    g->prompt_probs = p->prompt_logprobs && p->n_probs > 0;
    g->deadline = p->deadline;
    if (p->grammar) g->grammar = fr_grammar_ref(p->grammar);
    g->on_end = p->on_end;
    g->on_end_ud = p->on_end_ud;
    g->prompt = dup_array(p->prompt, (size_t)p->n_prompt, sizeof *g->prompt);
    g->bias_ids = dup_array(p->bias_ids, (size_t)p->n_bias, sizeof *g->bias_ids);
    g->bias = dup_array(p->bias, (size_t)p->n_bias, sizeof *g->bias);
    size_t longest = 0;
    bool ok = g->prompt && (!p->n_bias || (g->bias_ids && g->bias));
    if (ok && p->n_stop) {
        g->stop = fr_calloc((size_t)p->n_stop, sizeof *g->stop);
        g->stop_len = fr_calloc((size_t)p->n_stop, sizeof *g->stop_len);
        ok = g->stop && g->stop_len;
        for (int32_t i = 0; ok && i < p->n_stop; i++) {
            g->stop_len[i] = strlen(p->stop[i]);
            ok = (g->stop[i] = fr_strdup(p->stop[i])) != NULL;
            g->n_stop = i + 1;
            if (g->stop_len[i] > longest) longest = g->stop_len[i];
        }
    }
    g->hold_cap = longest + 2 * PIECE_MAX;
    ok = ok && (g->hold = fr_malloc(g->hold_cap)) != NULL;
    if (!ok) {
        gen_unref(g);
        return FR_ENOMEM;
    }
    fr_detok_init(&g->detok, s->vocab);
    g->detok.strip_space = false;   /* a continuation: its leading space is text */
    g->t_submit = fr_now_s();
    *out = g;
    return 0;
}

/* Append to the consumer's text (g->mu held). */
static bool out_append(fr_gen *g, const char *p, size_t n) {
    if (n == 0) return true;
    if (g->out_len + n + 1 > g->out_cap) {
        size_t cap = g->out_cap ? g->out_cap : 256;
        while (cap < g->out_len + n + 1) cap *= 2;
        char *q = fr_realloc(g->out, cap);
        if (!q) return false;
        g->out = q;
        g->out_cap = cap;
    }
    memcpy(g->out + g->out_len, p, n);
    g->out_len += n;
    g->out[g->out_len] = 0;
    return true;
}

static bool probs_append(fr_gen *g, const fr_gen_prob *pr) {
    if (g->n_out_probs == g->probs_cap) {
        int32_t cap = g->probs_cap ? 2 * g->probs_cap : 8;
        fr_gen_prob *q = fr_realloc(g->probs, (size_t)cap * sizeof *q);
        if (!q) return false;
        g->probs = q;
        g->probs_cap = cap;
    }
    g->probs[g->n_out_probs++] = *pr;
    return true;
}

/* Longest k < hold_len + 1 such that the hold's last k bytes begin some
 * stop string (k < that stop's length). */
static size_t stop_prefix_tail(const fr_gen *g) {
    size_t best = 0;
    for (int32_t i = 0; i < g->n_stop; i++) {
        size_t n = g->stop_len[i] - 1;
        if (n > g->hold_len) n = g->hold_len;
        for (size_t k = n; k > best; k--)
            if (!memcmp(g->hold + g->hold_len - k, g->stop[i], k)) {
                best = k;
                break;
            }
    }
    return best;
}

/* New text from the detokenizer: emit what can no longer start a stop
 * string.  Returns true when a stop string was found (the text before it
 * has been emitted).  g->mu held; false result also on OOM (g->error). */
static bool push_text(fr_gen *g, const char *p, size_t n) {
    if (g->n_stop == 0) {
        if (!out_append(g, p, n)) g->error = FR_ENOMEM;
        return false;
    }
    memcpy(g->hold + g->hold_len, p, n);   /* hold_len <= longest - 1 before */
    g->hold_len += n;
    size_t at = SIZE_MAX;
    for (int32_t i = 0; i < g->n_stop; i++) {
        const char *f = memmem(g->hold, g->hold_len, g->stop[i], g->stop_len[i]);
        if (f && (size_t)(f - g->hold) < at) at = (size_t)(f - g->hold);
    }
    if (at != SIZE_MAX) {
        if (!out_append(g, g->hold, at)) g->error = FR_ENOMEM;
        g->hold_len = 0;
        return true;
    }
    size_t keep = stop_prefix_tail(g), emit = g->hold_len - keep;
    if (!out_append(g, g->hold, emit)) g->error = FR_ENOMEM;
    memmove(g->hold, g->hold + emit, keep);
    g->hold_len = keep;
    return false;
}

/* End a request (loop thread): flush held text unless a stop string or a
 * cancel ended it (text held for a stop string that never came is text
 * after all, and so are the bytes of an unfinished character), record,
 * run the on_end hook, wake the consumer, drop the loop's reference. */
static void gen_finish(fr_sched *s, fr_gen *g, int finish, int error, bool flush) {
    double now = fr_now_s();
    pthread_mutex_lock(&s->mu);   /* counted before the consumer can look */
    s->done++;
    if (s->last_done > 0) {
        double gap = now - s->last_done;
        s->gap_ewma = s->gap_ewma > 0 ? 0.8 * s->gap_ewma + 0.2 * gap : gap;
    }
    s->last_done = now;
    pthread_mutex_unlock(&s->mu);

    pthread_mutex_lock(&g->mu);
    if (flush) {
        char tail[16];
        int w = fr_detok_flush(&g->detok, tail, sizeof tail);
        out_append(g, g->hold, g->hold_len);
        if (w > 0) out_append(g, tail, (size_t)w);
    }
    g->hold_len = 0;
    g->finish = finish;
    g->error = error;
    g->t_done = now;
    if (g->on_end) {
        void (*fn)(void *) = g->on_end;
        g->on_end = NULL;
        fn(g->on_end_ud);
    }
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    gen_unref(g);
}

/* ---- creation ---- */

static int32_t resolve_ctx(const fr_model *m, int32_t n_ctx) {
    if (n_ctx > 0) return n_ctx;
    int32_t train = fr_model_hparams(m)->n_ctx_train;
    return train > 0 && train < 4096 ? train : 4096;
}

static size_t slots_bytes(const fr_model *m, const fr_sched_config *cfg) {
    fr_sampler_params sp;
    fr_sampler_params_default(&sp);
    size_t n_vocab = (size_t)fr_model_hparams(m)->n_vocab;
    size_t per = sizeof(slot) + (size_t)resolve_ctx(m, cfg->n_ctx) * sizeof(int32_t) +
                 fr_sampler_estimate_bytes(&sp, (int32_t)n_vocab) +
                 n_vocab * sizeof(float) + FR_GMATCHER_BUDGET(n_vocab);
    /* grammars: the token texts and the mask cache once, a matcher per
     * slot (grammar.h) */
    return sizeof(fr_sched) + fr_gvocab_estimate_bytes(fr_model_vocab(m)) + FR_GMASK_SHARED_BYTES +
           (size_t)cfg->n_slots * per;
}

static int check_config(const fr_sched_config *cfg) {
    if (cfg->n_ctx < 0) return fr_errf(FR_EINVAL, "context of %d tokens", (int)cfg->n_ctx);
    if (cfg->n_slots < 1 || cfg->n_slots > 256)
        return fr_errf(FR_EINVAL, "parallel: %d slots, between 1 and 256", (int)cfg->n_slots);
    if (cfg->n_queue < 0) return fr_errf(FR_EINVAL, "queue: %d, at least 0", (int)cfg->n_queue);
    if (cfg->chunk < 0) return fr_errf(FR_EINVAL, "chunk: %d tokens", (int)cfg->chunk);
    return 0;
}

size_t fr_sched_estimate_bytes(const fr_model *m, const fr_sched_config *cfg, int n_threads) {
    if (check_config(cfg)) return SIZE_MAX;
    size_t ctx = fr_ctx_estimate_bytes_seqs(m, resolve_ctx(m, cfg->n_ctx), cfg->n_slots,
                                            n_threads);
    if (ctx == SIZE_MAX) return SIZE_MAX;
    return ctx + slots_bytes(m, cfg);
}

static void *loop(void *arg);

int fr_sched_create(fr_model *m, fr_compute *compute, const fr_sched_config *cfg,
                    fr_sched **out) {
    *out = NULL;
    int rc = check_config(cfg);
    if (rc) return rc;
    fr_sched *s = fr_calloc(1, sizeof *s);
    if (!s) return FR_ENOMEM;
    s->model = m;
    s->compute = compute;
    s->cfg = *cfg;
    s->cfg.n_ctx = resolve_ctx(m, cfg->n_ctx);
    if (s->cfg.chunk == 0) s->cfg.chunk = DEFAULT_CHUNK;
    s->vocab = fr_model_vocab(m);
    s->n_vocab = fr_model_hparams(m)->n_vocab;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    rc = fr_ctx_create_seqs(m, s->cfg.n_ctx, s->cfg.n_slots, fr__compute_pool(compute), &s->ctx);
    if (rc) goto fail;
    s->max_batch = fr_ctx_max_batch(s->ctx);
    if (s->cfg.chunk > s->max_batch) s->cfg.chunk = s->max_batch;
    rc = FR_ENOMEM;
    if (!(s->slots = fr_calloc((size_t)s->cfg.n_slots, sizeof *s->slots))) goto fail;
    for (int32_t i = 0; i < s->cfg.n_slots; i++) {
        if (!(s->slots[i].cache = fr_malloc((size_t)s->cfg.n_ctx * sizeof(int32_t))) ||
            !(s->slots[i].masked = fr_malloc((size_t)s->n_vocab * sizeof(float))))
            goto fail;
        s->slots[i].follow = -1;
    }
    s->bytes = fr_ctx_bytes(s->ctx) + slots_bytes(m, &s->cfg);
    if (pthread_create(&s->thread, NULL, loop, s) != 0) {
        rc = fr_errf(FR_ENOMEM, "cannot start the scheduler thread");
        goto fail;
    }
    s->thread_started = true;
    *out = s;
    return 0;
fail:
    fr_sched_destroy(s);
    return rc;
}

void fr_sched_destroy(fr_sched *s) {
    if (!s) return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    if (s->slots)
        for (int32_t i = 0; i < s->cfg.n_slots; i++) {
            fr_free(s->slots[i].cache);
            fr_free(s->slots[i].masked);
        }
    fr_free(s->slots);
    fr_gmask_cache_destroy(s->gcache);
    fr_gvocab_destroy(s->gvocab);
    fr_ctx_destroy(s->ctx);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    fr_free(s);
}

size_t fr_sched_bytes(const fr_sched *s) { return s->bytes; }
size_t fr_sched_kv_bytes(const fr_sched *s) { return fr_ctx_kv_bytes(s->ctx); }
int32_t fr_sched_n_ctx(const fr_sched *s) { return s->cfg.n_ctx; }

void fr_sched_stats_get(const fr_sched *s, fr_sched_stats *out) {
    fr_sched *m = (fr_sched *)s;  /* the lock is not part of the value */
    pthread_mutex_lock(&m->mu);
    *out = (fr_sched_stats){
        .slots = s->cfg.n_slots, .slots_busy = s->n_active, .queue_cap = s->cfg.n_queue,
        .queued = s->n_queued, .requests_done = s->done, .tokens_prompt = s->tok_prompt,
        .tokens_generated = s->tok_gen, .steps = s->steps, .rejected = s->rejected,
        .drain_per_s = s->gap_ewma > 0 ? 1.0 / s->gap_ewma : 0};
    pthread_mutex_unlock(&m->mu);
}

void fr_sched_cancel_all(fr_sched *s) {
    pthread_mutex_lock(&s->mu);
    for (fr_gen *g = s->q_head; g; g = g->next) atomic_store(&g->cancel, true);
    s->cancel_epoch++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

bool fr_sched_idle(const fr_sched *s) {
    fr_sched_stats st;
    fr_sched_stats_get(s, &st);
    return st.slots_busy == 0 && st.queued == 0;
}

/* ---- submit and consume ---- */

int fr_sched_submit(fr_sched *s, const fr_gen_params *p, fr_gen **out, double *retry_after_s) {
    return fr_sched_submit_n(s, p, 1, out, retry_after_s);
}

int32_t fr_sched_n_slots(const fr_sched *s) { return s->cfg.n_slots; }

int fr_sched_submit_n(fr_sched *s, const fr_gen_params *p, int32_t n, fr_gen **out, double *retry_after_s) {
    if (retry_after_s) *retry_after_s = 0;
    if (n < 1 || n > s->cfg.n_slots)
        return fr_errf(FR_EINVAL, "n: %d, between 1 and %d (the model's slots)", (int)n, (int)s->cfg.n_slots);
    for (int32_t i = 0; i < n; i++) out[i] = NULL;
    int rc = check_params(s, p);
    if (rc) return rc;
    fr_gen_params pi = *p;
    for (int32_t i = 0; i < n && rc == 0; i++) {
        /* a fixed seed gives each continuation its own: seed + i */
        if (i > 0 && p->sampling.seed != 0xFFFFFFFFu) pi.sampling.seed = p->sampling.seed + (uint64_t)i;
        rc = gen_create(s, &pi, &out[i]);
    }
    fr_gen *g = out[0];
    if (rc == 0 && n > 1) {
        if (!(g->sibs = fr_calloc((size_t)(n - 1), sizeof *g->sibs))) rc = FR_ENOMEM;
        for (int32_t i = 1; rc == 0 && i < n; i++) {
            g->sibs[i - 1] = out[i];
            out[i]->leader = g;
        }
        if (rc == 0) g->n_sibs = n - 1;
    }
    if (rc == 0) {
        pthread_mutex_lock(&s->mu);
        if (s->stop) rc = fr_errf(FR_ESHUTDOWN, "the model is shutting down");
        else if (s->n_active + s->n_queued + n > s->cfg.n_slots + s->cfg.n_queue) {
            s->rejected++;
            /* one slot frees about every gap_ewma seconds */
            double wait = s->gap_ewma > 0 ? s->gap_ewma * (double)(s->n_queued + 1) : 1.0;
            double ra = ceil(wait);
            if (retry_after_s) *retry_after_s = ra < 1 ? 1 : ra > 60 ? 60 : ra;
            rc = fr_errf(FR_EBUSY, "all %d slots and %d queue places are taken",
                         (int)s->cfg.n_slots, (int)s->cfg.n_queue);
        } else {
            for (int32_t i = 0; i < n; i++) atomic_fetch_add(&out[i]->refs, 1);   /* the loop's */
            if (s->q_tail) s->q_tail->next = g;      /* the group's leader stands for it */
            else s->q_head = g;
            s->q_tail = g;
            s->n_queued += n;
            pthread_cond_signal(&s->cv);
        }
        pthread_mutex_unlock(&s->mu);
    }
    if (rc) {
        for (int32_t i = 0; i < n; i++) {
            if (out[i]) gen_unref(out[i]);
            out[i] = NULL;
        }
        return rc;
    }
    return 0;
}

static void deadline_ts(int timeout_ms, struct timespec *ts) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int fr_gen_wait(fr_gen *g, int timeout_ms, fr_gen_out *out) {
    memset(out, 0, sizeof *out);
    struct timespec until;
    if (timeout_ms > 0) deadline_ts(timeout_ms, &until);
    pthread_mutex_lock(&g->mu);
    while (g->out_len == 0 && g->n_out_probs == 0 && g->finish == FR_FINISH_NONE &&
           timeout_ms != 0) {
        if (timeout_ms < 0) pthread_cond_wait(&g->cv, &g->mu);
        else if (pthread_cond_timedwait(&g->cv, &g->mu, &until) != 0) break;
    }
    if (g->out_len) {
        out->text = g->out;
        out->len = g->out_len;
        g->out = NULL;
        g->out_len = g->out_cap = 0;
    }
    if (g->n_out_probs) {
        out->probs = g->probs;
        out->n_probs = g->n_out_probs;
        g->probs = NULL;
        g->n_out_probs = g->probs_cap = 0;
    }
    out->finish = g->finish;
    out->error = g->error;
    out->error_msg = g->finish == FR_FINISH_ERROR && g->errmsg[0] ? g->errmsg : NULL;
    out->n_prompt = g->n_prompt;
    out->n_gen = g->n_gen;
    out->queue_ms = g->t_slot > 0 ? (g->t_slot - g->t_submit) * 1e3 : 0;
    out->ttft_ms = g->t_first > 0 ? (g->t_first - g->t_submit) * 1e3 : 0;
    out->total_ms = g->t_done > 0 ? (g->t_done - g->t_submit) * 1e3 : 0;
    pthread_mutex_unlock(&g->mu);
    return 0;
}

void fr_gen_out_free(fr_gen_out *out) {
    fr_free(out->text);
    fr_free(out->probs);
    out->text = NULL;
    out->probs = NULL;
}

void fr_gen_cancel(fr_gen *g) { atomic_store(&g->cancel, true); }

void fr_gen_release(fr_gen *g) {
    if (!g) return;
    pthread_mutex_lock(&g->mu);     /* waits for an on_end that runs now */
    g->on_end = NULL;
    pthread_mutex_unlock(&g->mu);
    fr_gen_cancel(g);
    gen_unref(g);
}

/* ---- the loop ---- */

static int32_t common_prefix(const int32_t *a, int32_t na, const int32_t *b, int32_t nb) {
    int32_t n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

/* Give request g the free slot whose cache shares the longest prefix with
 * its prompt; make its sampler.  follow >= 0: g waits there for slot
 * follow's copy of the prompt (n > 1).  The slot's index, or -1 (g
 * finished with an error) on OOM. */
static int32_t assign(fr_sched *s, fr_gen *g, int32_t follow) {
    int32_t best = -1, best_len = -1;
    for (int32_t i = 0; i < s->cfg.n_slots; i++) {
        slot *sl = &s->slots[i];
        if (sl->g) continue;
        int32_t n = common_prefix(sl->cache, sl->cache_len, g->prompt, g->n_prompt);
        if (n > best_len) { best = i; best_len = n; }
    }
    FR_ASSERT(best >= 0);
    slot *sl = &s->slots[best];
    fr_sampler *smp = NULL;
    if (fr_sampler_create(&g->sp, s->n_vocab, &smp) != 0) {
        gen_finish(s, g, FR_FINISH_ERROR, FR_ENOMEM, false);
        return -1;
    }
    for (int32_t i = 0; i < g->n_bias; i++) fr_sampler_set_bias(smp, g->bias_ids[i], g->bias[i]);
    for (int32_t i = 0; i < g->n_prompt; i++) fr_sampler_accept(smp, g->prompt[i]);
    fr_gmatcher *gm = NULL;
    if (g->grammar) {
        int rc = 0;
        if (!s->gvocab) rc = fr_gvocab_create(s->vocab, &s->gvocab);
        if (!rc && !s->gcache) rc = fr_gmask_cache_create(s->gvocab, FR_GMASK_SHARED_BYTES, &s->gcache);
        if (!rc) rc = fr_gmatcher_create(g->grammar, s->gvocab, s->gcache, &gm);
        if (rc) {
            snprintf(g->errmsg, sizeof g->errmsg, "%s", fr_errdetail());
            fr_sampler_destroy(smp);
            gen_finish(s, g, FR_FINISH_ERROR, rc, false);
            return -1;
        }
    }
    /* keep the shared prefix, but evaluate at least the last prompt token;
     * the prompt's logprobs need every position evaluated */
    if (best_len > g->n_prompt - 1) best_len = g->n_prompt - 1;
    if (g->prompt_probs || follow >= 0) best_len = 0;
    sl->g = g;
    sl->smp = smp;
    sl->gm = gm;
    sl->cache_len = best_len;
    sl->n_fed = best_len;
    sl->generating = false;
    sl->follow = follow;
    g->n_prompt_eval = follow >= 0 ? 0 : g->n_prompt - best_len;
    pthread_mutex_lock(&g->mu);
    g->t_slot = fr_now_s();
    pthread_mutex_unlock(&g->mu);
    return best;
}

/* A group's leader was taken from the queue: slots for it and its
 * siblings (counted active already). */
static void assign_group(fr_sched *s, fr_gen *g) {
    int32_t lead = assign(s, g, -1), lost = lead < 0;
    for (int32_t i = 0; i < g->n_sibs; i++) {
        fr_gen *sib = g->sibs[i];
        if (lead < 0) gen_finish(s, sib, FR_FINISH_ERROR, FR_ENOMEM, false);
        else if (assign(s, sib, lead) >= 0) continue;
        lost++;
    }
    g->n_sibs = 0;      /* from here on each stands alone */
    if (lost) {
        pthread_mutex_lock(&s->mu);
        s->n_active -= lost;
        pthread_mutex_unlock(&s->mu);
    }
}

static void free_slot(fr_sched *s, slot *sl, int finish, int error, bool flush) {
    fr_gen *g = sl->g;
    int32_t me = (int32_t)(sl - s->slots);
    if (!sl->generating && sl->follow < 0)      /* its followers never get the prompt */
        for (int32_t i = 0; i < s->cfg.n_slots; i++)
            if (s->slots[i].g && s->slots[i].follow == me && s->slots[i].g->leader == g)
                free_slot(s, &s->slots[i], finish == FR_FINISH_ERROR ? finish : FR_FINISH_CANCELLED,
                          error, false);
    sl->g = NULL;
    sl->follow = -1;
    fr_sampler_destroy(sl->smp);
    sl->smp = NULL;
    fr_gmatcher_destroy(sl->gm);
    sl->gm = NULL;
    pthread_mutex_lock(&s->mu);
    s->n_active--;
    s->tok_gen += (uint64_t)g->n_gen;
    pthread_mutex_unlock(&s->mu);
    gen_finish(s, g, finish, error, flush);
}

static bool expired(const fr_gen *g, double now) { return g->deadline > 0 && now >= g->deadline; }

/* The lists take_queue makes, each linked through fr_gen.next. */
enum { Q_CANCELLED, Q_EXPIRED, Q_TAKEN, Q_LISTS };

/* Under s->mu: take out of the queue the requests that were cancelled or
 * expired, and up to n_free requests for slots (counted active now). */
static void take_queue(fr_sched *s, int32_t n_free, fr_gen *lists[Q_LISTS], double now) {
    fr_gen **pp = &s->q_head, *last = NULL, **tails[Q_LISTS];
    for (int i = 0; i < Q_LISTS; i++) {
        lists[i] = NULL;
        tails[i] = &lists[i];
    }
    while (*pp) {
        fr_gen *g = *pp;
        int32_t need = 1 + g->n_sibs;   /* a group takes its slots together */
        int to = atomic_load(&g->cancel) ? Q_CANCELLED : expired(g, now) ? Q_EXPIRED
                 : n_free >= need        ? Q_TAKEN : -1;
        if (to < 0) {
            n_free = 0;                 /* FIFO: nothing overtakes a group that waits */
            last = g;
            pp = &g->next;
            continue;
        }
        *pp = g->next;
        g->next = NULL;
        *tails[to] = g;
        tails[to] = &g->next;
        s->n_queued -= need;
        if (to == Q_TAKEN) {
            n_free -= need;
            s->n_active += need;
        }
    }
    s->q_tail = last;
}

/* Log-probabilities of the raw logits: the chosen token and the top k. */
static void token_probs(const float *logits, int32_t n_vocab, int32_t chosen, int32_t k,
                        fr_gen_prob *pr) {
    float mx = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)(logits[i] - mx));
    float lse = mx + (float)log(sum);
    memset(pr, 0, sizeof *pr);
    pr->id = chosen;
    pr->logprob = logits[chosen] - lse;
    pr->n_top = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        float v = logits[i];
        if (pr->n_top == k && v <= pr->top_logprob[k - 1]) continue;
        int32_t j = pr->n_top < k ? pr->n_top++ : k - 1;
        while (j > 0 && pr->top_logprob[j - 1] < v) {
            pr->top_logprob[j] = pr->top_logprob[j - 1];
            pr->top_id[j] = pr->top_id[j - 1];
            j--;
        }
        pr->top_logprob[j] = v;
        pr->top_id[j] = i;
    }
    for (int32_t j = 0; j < pr->n_top; j++) pr->top_logprob[j] -= lse;
}

/* End the slot's request with an error and a message for the client. */
static void fail_slot(fr_sched *s, slot *sl, int rc, const char *msg) {
    snprintf(sl->g->errmsg, sizeof sl->g->errmsg, "%s", msg);
    free_slot(s, sl, FR_FINISH_ERROR, rc, false);
}

/* Grammar: the logits with every token the grammar does not allow now
 * at -INFINITY (the sampler's chain then works on what remains); NULL
 * when the slot's request has ended (dead end or error). */
static const float *grammar_mask(fr_sched *s, slot *sl, const float *logits) {
    const uint64_t *mask;
    int32_t n_allowed = 0;
    int rc = fr_gmatcher_mask(sl->gm, &mask, &n_allowed);
    if (rc) {
        fail_slot(s, sl, rc, fr_errdetail());
        return NULL;
    }
    if (n_allowed == 0) {
        fail_slot(s, sl, FR_EINVAL, "the grammar allows no token of this model here (a dead "
                  "end: no token's text continues the output)");
        return NULL;
    }
    float *out = sl->masked;
    for (int32_t i = 0; i < s->n_vocab; i++)
        out[i] = mask[i >> 6] >> (i & 63) & 1 ? logits[i] : -INFINITY;
    return out;
}

/* The slot's run asked for logits: choose, emit, decide whether it ends. */
static void after_logits(fr_sched *s, slot *sl, const float *logits) {
    fr_gen *g = sl->g;
    if (sl->gm && !(logits = grammar_mask(s, sl, logits))) return;
    int32_t tok = fr_sampler_sample(sl->smp, logits);
    if (!g->ignore_eos && fr_vocab_is_eog(s->vocab, tok)) {
        free_slot(s, sl, FR_FINISH_STOP, 0, true);
        return;
    }
    bool grammar_done = false;
    if (sl->gm) {
        int rc = fr_gmatcher_accept_token(sl->gm, tok);
        if (rc) {
            fail_slot(s, sl, rc, fr_errdetail());
            return;
        }
        grammar_done = fr_gmatcher_done(sl->gm);
    }
    fr_sampler_accept(sl->smp, tok);
    char piece[PIECE_MAX];
    int w = fr_detok_push(&g->detok, s->vocab, tok, piece, sizeof piece);
    fr_gen_prob pr;
    if (g->n_probs) token_probs(logits, s->n_vocab, tok, g->n_probs, &pr);
    pthread_mutex_lock(&g->mu);
    g->n_gen++;
    if (g->t_first == 0) g->t_first = fr_now_s();
    bool stopped = w > 0 && push_text(g, piece, (size_t)w);
    if (g->n_probs && !probs_append(g, &pr)) g->error = FR_ENOMEM;
    int err = g->error;
    bool more = g->n_gen < g->max_tokens;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (err) free_slot(s, sl, FR_FINISH_ERROR, err, false);
    else if (stopped) free_slot(s, sl, FR_FINISH_STOP, 0, false);
    else if (grammar_done) free_slot(s, sl, FR_FINISH_STOP, 0, true);
    else if (!more || sl->cache_len >= s->cfg.n_ctx) free_slot(s, sl, FR_FINISH_LENGTH, 0, true);
    else {
        sl->last = tok;
        sl->generating = true;
    }
}

/* Slot i's request reads its prompt with its logprobs: the logits after
 * prompt token n_fed - 1 give prompt token n_fed's; its followers get the
 * same entry. */
static void prompt_prob(fr_sched *s, int32_t i, const float *logits) {
    slot *sl = &s->slots[i];
    fr_gen *g = sl->g;
    fr_gen_prob pr;
    token_probs(logits, s->n_vocab, g->prompt[sl->n_fed], g->n_probs, &pr);
    for (int32_t k = -1; k < s->cfg.n_slots; k++) {
        slot *o = k < 0 ? sl : &s->slots[k];
        if (k >= 0 && !(o->g && o->follow == i && o->g->leader == g)) continue;
        pthread_mutex_lock(&o->g->mu);
        if (!probs_append(o->g, &pr)) o->g->error = FR_ENOMEM;
        pthread_cond_broadcast(&o->g->cv);
        pthread_mutex_unlock(&o->g->mu);
    }
}

/* Slot i's request has read its whole prompt: its followers (n > 1) get a
 * copy of its keys and values and sample from the same logits. */
static void share_prompt(fr_sched *s, int32_t i, const float *logits) {
    slot *lead = &s->slots[i];
    fr_gen *g = lead->g;
    for (int32_t k = 0; k < s->cfg.n_slots; k++) {
        slot *o = &s->slots[k];
        if (!o->g || o->follow != i || o->g->leader != g) continue;
        int rc = fr_ctx_seq_copy(s->ctx, i, k, lead->cache_len);
        if (rc) {   /* a bug: both are slots of this context */
            FR_ERROR("scheduler: sharing a prompt failed: %s", fr_errdetail());
            free_slot(s, o, FR_FINISH_ERROR, rc, false);
            continue;
        }
        memcpy(o->cache, lead->cache, (size_t)lead->cache_len * sizeof *o->cache);
        o->cache_len = o->n_fed = lead->cache_len;
        o->follow = -1;
        after_logits(s, o, logits);
    }
}

/* Build and run one batch; false when no slot had work. */
static bool step(fr_sched *s) {
    fr_batch_run runs[256];
    int32_t owner[256], nr = 0, total = 0, n = s->cfg.n_slots;
    for (int32_t i = 0; i < n; i++) {
        slot *sl = &s->slots[i];
        if (!sl->g || !sl->generating) continue;
        runs[nr] = (fr_batch_run){.seq = i, .pos = sl->cache_len, .n = 1, .tokens = &sl->last,
                                  .want_logits = true};
        owner[nr++] = i;
        total++;
    }
    for (int32_t k = 0; k < n && total < s->max_batch; k++) {
        int32_t i = (s->rr + k) % n;
        slot *sl = &s->slots[i];
        if (!sl->g || sl->generating || sl->follow >= 0) continue;
        int32_t left = sl->g->n_prompt - sl->n_fed, room = s->max_batch - total;
        int32_t take = left < s->cfg.chunk ? left : s->cfg.chunk;
        if (take > room) take = room;
        if (sl->g->prompt_probs) take = 1;      /* the logits of every position */
        runs[nr] = (fr_batch_run){.seq = i, .pos = sl->cache_len, .n = take,
                                  .tokens = sl->g->prompt + sl->n_fed,
                                  .want_logits = sl->n_fed + take == sl->g->n_prompt ||
                                                 sl->g->prompt_probs};
        owner[nr++] = i;
        total += take;
    }
    if (nr == 0) return false;
    s->rr = (s->rr + 1) % n;
    fr__compute_acquire(s->compute);
    int rc = fr_ctx_eval_batch(s->ctx, runs, nr);
    fr__compute_release(s->compute);
    uint64_t n_prompt_tok = 0;
    for (int32_t r = 0; r < nr; r++) {
        slot *sl = &s->slots[owner[r]];
        if (rc) {   /* a bug: the batch was built to be valid */
            FR_ERROR("scheduler: a forward pass failed: %s", fr_errdetail());
            free_slot(s, sl, FR_FINISH_ERROR, rc, false);
            continue;
        }
        memcpy(sl->cache + sl->cache_len, runs[r].tokens, (size_t)runs[r].n * sizeof(int32_t));
        sl->cache_len += runs[r].n;
        if (!sl->generating) {
            sl->n_fed += runs[r].n;
            n_prompt_tok += (uint64_t)runs[r].n;
            if (sl->n_fed < sl->g->n_prompt) {  /* a prompt position's logits (echo) */
                if (runs[r].want_logits) prompt_prob(s, owner[r], runs[r].logits);
                continue;
            }
            share_prompt(s, owner[r], runs[r].logits);
        }
        if (runs[r].want_logits) after_logits(s, sl, runs[r].logits);
    }
    pthread_mutex_lock(&s->mu);
    s->steps++;
    s->tok_prompt += n_prompt_tok;
    pthread_mutex_unlock(&s->mu);
    return true;
}

static void finish_list(fr_sched *s, fr_gen *list, int finish) {
    while (list) {
        fr_gen *g = list;
        list = g->next;
        g->next = NULL;
        for (int32_t i = 0; i < g->n_sibs; i++) gen_finish(s, g->sibs[i], finish, 0, finish == FR_FINISH_LENGTH);
        g->n_sibs = 0;
        gen_finish(s, g, finish, 0, finish == FR_FINISH_LENGTH);
    }
}

/* Slots the loop may fill now: all of them, or the compute's cap while
 * the SoC is hot (a group larger than the cap still runs, alone).  Under
 * s->mu. */
static int32_t slot_limit(const fr_sched *s) {
    int32_t lim = fr_compute_slot_cap(s->compute);
    if (lim <= 0 || lim > s->cfg.n_slots) lim = s->cfg.n_slots;
    if (s->n_active == 0 && s->q_head && 1 + s->q_head->n_sibs > lim) lim = 1 + s->q_head->n_sibs;
    return lim > s->n_active ? lim - s->n_active : 0;
}

static void *loop(void *arg) {
    fr_sched *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        double now = fr_now_s();
        bool cancel_all = s->cancel_epoch != s->cancel_seen;
        s->cancel_seen = s->cancel_epoch;
        fr_gen *q[Q_LISTS];
        take_queue(s, cancel_all ? 0 : slot_limit(s), q, now);
        if (s->n_active == 0 && !q[Q_CANCELLED] && !q[Q_EXPIRED]) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        pthread_mutex_unlock(&s->mu);

        finish_list(s, q[Q_CANCELLED], FR_FINISH_CANCELLED);
        finish_list(s, q[Q_EXPIRED], FR_FINISH_LENGTH);
        while (q[Q_TAKEN]) {
            fr_gen *g = q[Q_TAKEN];
            q[Q_TAKEN] = g->next;
            g->next = NULL;
            assign_group(s, g);
        }
        for (int32_t i = 0; i < s->cfg.n_slots; i++) {
            slot *sl = &s->slots[i];
            if (!sl->g) continue;
            if (cancel_all) atomic_store(&sl->g->cancel, true);
            if (atomic_load(&sl->g->cancel)) free_slot(s, sl, FR_FINISH_CANCELLED, 0, false);
            else if (expired(sl->g, now)) free_slot(s, sl, FR_FINISH_LENGTH, 0, true);
        }
        step(s);
        pthread_mutex_lock(&s->mu);
    }
    /* shutdown: everything still here is cancelled */
    fr_gen *rest = s->q_head;
    s->q_head = s->q_tail = NULL;
    s->n_queued = 0;
    pthread_mutex_unlock(&s->mu);
    finish_list(s, rest, FR_FINISH_CANCELLED);
    for (int32_t i = 0; i < s->cfg.n_slots; i++)
        if (s->slots[i].g) free_slot(s, &s->slots[i], FR_FINISH_CANCELLED, 0, false);
    return NULL;
}
