/*
 * batcher.c — the batcher of an encoder (contract: batcher.h).
 *
 * A request (job) is n sequences, an output array and a condition
 * variable, on the caller's stack; it sits in a FIFO under s->mu.  The
 * thread builds each batch from the head of the FIFO: whole sequences in
 * order (job after job; a job's first `next` sequences may already be in
 * earlier batches), stopping before a sequence that would pass
 * batch_tokens or at max_seqs.  A lone sequence is never too big: it was
 * checked against fr_batcher_max_seq_tokens at submit.  After the pass the
 * thread copies each sequence's vector to its job; a job whose every
 * sequence is done leaves the FIFO and is woken.  The forward pass runs
 * outside s->mu, on the compute turn.
 */
#include "sched/batcher.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/sysinfo.h"
#include "sched/sched_int.h"

#define DEFAULT_BATCH_TOKENS 2048
#define DEFAULT_MAX_SEQS 64

typedef struct job {
    struct job *next_job;
    const fr_enc_seq *seqs;
    int32_t n;
    int32_t taken;               /* sequences handed to a batch */
    int32_t done;                /* sequences with their output */
    float *out;                  /* [n][n_out] */
    int rc;                      /* set when it fails (shutdown) */
    bool finished;
    pthread_cond_t cv;
} job;

struct fr_batcher {
    fr_model *model;
    fr_compute *compute;
    fr_batcher_config cfg;
    fr_enc *enc;
    int32_t n_out, max_seq;
    int32_t n_vocab;
    size_t bytes;
    fr_enc_seq *batch;           /* [max_seqs] the sequences of a pass */
    job **owner;                 /* [max_seqs] their jobs */
    int32_t *index;              /* [max_seqs] their index in the job */
    pthread_t thread;
    bool started;
    /* under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;           /* work arrived, or stop */
    bool stop;
    job *head, *tail;
    int32_t queued;
    int32_t callers;             /* fr_batcher_run calls waiting for their job */
    uint64_t requests, sequences, tokens, batches, rejected;
    double gap_ewma, last_done;
};

static void resolve(fr_batcher_config *c) {
    if (c->batch_tokens <= 0) c->batch_tokens = DEFAULT_BATCH_TOKENS;
    if (c->max_seqs <= 0) c->max_seqs = DEFAULT_MAX_SEQS;
    if (c->n_queue < 0) c->n_queue = 0;
}

static size_t tables_bytes(const fr_batcher_config *c) {
    return sizeof(fr_batcher) +
           (size_t)c->max_seqs * (sizeof(fr_enc_seq) + sizeof(job *) + sizeof(int32_t));
}

size_t fr_batcher_estimate_bytes(const fr_model *m, const fr_batcher_config *cfg, int n_threads) {
    fr_batcher_config c = *cfg;
    resolve(&c);
    size_t enc = fr_enc_estimate_bytes(m, c.batch_tokens, c.max_seqs, FR_POOLING_MODEL, n_threads);
    if (enc == 0 || enc == SIZE_MAX) return SIZE_MAX;
    return enc + tables_bytes(&c);
}

static void *loop(void *arg);

int fr_batcher_create(fr_model *m, fr_compute *compute, const fr_batcher_config *cfg,
                      fr_batcher **out) {
    *out = NULL;
    if (!fr_model_is_encoder(m)) return fr_errf(FR_EUNSUPP, "not an encoder model");
    fr_batcher *s = fr_calloc(1, sizeof *s);
    if (!s) return FR_ENOMEM;
    s->model = m;
    s->compute = compute;
    s->cfg = *cfg;
    resolve(&s->cfg);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    int rc = fr_enc_create(m, s->cfg.batch_tokens, s->cfg.max_seqs, FR_POOLING_MODEL,
                           fr__compute_pool(compute), &s->enc);
    if (rc) goto fail;
    s->n_out = fr_enc_n_out(s->enc);
    int32_t train = fr_model_n_ctx_train(m);
    s->max_seq = train > 0 && train < s->cfg.batch_tokens ? train : s->cfg.batch_tokens;
    s->n_vocab = fr_model_hparams(m)->n_vocab;
    rc = FR_ENOMEM;
    size_t n = (size_t)s->cfg.max_seqs;
    if (!(s->batch = fr_calloc(n, sizeof *s->batch)) || !(s->owner = fr_calloc(n, sizeof *s->owner)) ||
        !(s->index = fr_calloc(n, sizeof *s->index)))
        goto fail;
    s->bytes = fr_enc_bytes(s->enc) + tables_bytes(&s->cfg);
    if (pthread_create(&s->thread, NULL, loop, s) != 0) {
        rc = fr_errf(FR_ENOMEM, "cannot start the embedding thread");
        goto fail;
    }
    s->started = true;
    *out = s;
    return 0;
fail:
    fr_batcher_destroy(s);
    return rc;
}

/* Fail every queued job with rc (mu held). */
static void fail_all(fr_batcher *s, int rc) {
    for (job *j = s->head; j; j = j->next_job) {
        j->rc = rc;
        j->finished = true;
        pthread_cond_signal(&j->cv);
    }
    s->head = s->tail = NULL;
    s->queued = 0;
}

void fr_batcher_destroy(fr_batcher *s) {
    if (!s) return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    pthread_mutex_lock(&s->mu);
    fail_all(s, FR_ESHUTDOWN);
    /* the failed callers still need s->mu to return: wait until they have */
    while (s->callers > 0) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    fr_enc_destroy(s->enc);
    fr_free(s->batch);
    fr_free(s->owner);
    fr_free(s->index);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    fr_free(s);
}

void fr_batcher_cancel_all(fr_batcher *s) {
    pthread_mutex_lock(&s->mu);
    /* the job the thread holds in a pass finishes; the rest fail */
    job **pp = &s->head;
    while (*pp) {
        job *j = *pp;
        if (j->taken > 0) {
            pp = &j->next_job;
            continue;
        }
        *pp = j->next_job;
        j->rc = FR_ESHUTDOWN;
        j->finished = true;
        s->queued--;
        pthread_cond_signal(&j->cv);
    }
    s->tail = NULL;
    for (job *j = s->head; j; j = j->next_job) s->tail = j;
    pthread_mutex_unlock(&s->mu);
}

size_t fr_batcher_bytes(const fr_batcher *s) { return s->bytes; }
fr_model *fr_batcher_model(const fr_batcher *s) { return s->model; }
int fr_batcher_pooling(const fr_batcher *s) { return fr_enc_pooling(s->enc); }
int32_t fr_batcher_n_out(const fr_batcher *s) { return s->n_out; }
int32_t fr_batcher_max_seq_tokens(const fr_batcher *s) { return s->max_seq; }

void fr_batcher_stats_get(fr_batcher *s, fr_batcher_stats *out) {
    pthread_mutex_lock(&s->mu);
    *out = (fr_batcher_stats){.requests = s->requests, .sequences = s->sequences,
                              .tokens = s->tokens, .batches = s->batches,
                              .rejected = s->rejected, .queued = s->queued};
    pthread_mutex_unlock(&s->mu);
}

int fr_batcher_run(fr_batcher *s, const fr_enc_seq *seqs, int32_t n, float *out,
                   double *retry_after_s) {
    if (retry_after_s) *retry_after_s = 0;
    if (n < 1 || !seqs) return fr_errf(FR_EINVAL, "no input to embed");
    for (int32_t i = 0; i < n; i++) {
        if (seqs[i].n < 1 || !seqs[i].tokens) return fr_errf(FR_EINVAL, "input %d has no tokens", (int)i);
        if (seqs[i].n > s->max_seq)
            return fr_errf(FR_ETOOLONG, "input %d is %d tokens; the model takes at most %d", (int)i,
                           (int)seqs[i].n, (int)s->max_seq);
        for (int32_t k = 0; k < seqs[i].n; k++)
            if (seqs[i].tokens[k] < 0 || seqs[i].tokens[k] >= s->n_vocab)
                return fr_errf(FR_EINVAL, "input %d: token %d is out of range [0, %d)", (int)i,
                               (int)seqs[i].tokens[k], (int)s->n_vocab);
    }
    job j = {.seqs = seqs, .n = n, .out = out};
    pthread_cond_init(&j.cv, NULL);
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    if (s->stop) rc = fr_errf(FR_ESHUTDOWN, "the model is shutting down");
    else if (s->queued >= s->cfg.n_queue + s->cfg.max_seqs) {
        /* room for a full batch being served plus the queue */
        s->rejected++;
        double ra = ceil(s->gap_ewma > 0 ? s->gap_ewma * (double)s->queued : 1.0);
        if (retry_after_s) *retry_after_s = ra < 1 ? 1 : ra > 60 ? 60 : ra;
        rc = fr_errf(FR_EBUSY, "%d requests are waiting for model; the queue holds %d",
                     (int)s->queued, (int)s->cfg.n_queue);
    } else {
        if (s->tail) s->tail->next_job = &j;
        else s->head = &j;
        s->tail = &j;
        s->queued++;
        s->callers++;
        pthread_cond_signal(&s->cv);
        while (!j.finished) pthread_cond_wait(&j.cv, &s->mu);
        rc = j.rc;
        if (--s->callers == 0 && s->stop) pthread_cond_broadcast(&s->cv);   /* destroy waits */
    }
    pthread_mutex_unlock(&s->mu);
    pthread_cond_destroy(&j.cv);
    return rc;
}

/* Build the next batch from the FIFO (mu held); returns its sequences. */
static int32_t gather(fr_batcher *s, int64_t *tokens) {
    int32_t k = 0;
    int64_t t = 0;
    for (job *j = s->head; j && k < s->cfg.max_seqs; j = j->next_job) {
        while (j->taken < j->n && k < s->cfg.max_seqs) {
            const fr_enc_seq *q = &j->seqs[j->taken];
            if (k > 0 && t + q->n > s->cfg.batch_tokens) goto full;
            s->batch[k] = *q;
            s->owner[k] = j;
            s->index[k] = j->taken++;
            t += q->n;
            k++;
        }
    }
full:
    *tokens = t;
    return k;
}

static void *loop(void *arg) {
    fr_batcher *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stop && !s->head) pthread_cond_wait(&s->cv, &s->mu);
        if (s->stop) break;
        int64_t tokens = 0;
        int32_t k = gather(s, &tokens);
        pthread_mutex_unlock(&s->mu);

        const float *res = NULL;
        fr__compute_acquire(s->compute);
        int rc = fr_enc_encode(s->enc, s->batch, k, fr_enc_pooling(s->enc) != FR_POOLING_RANK, &res);
        fr__compute_release(s->compute);
        if (rc) FR_ERROR("embedding batch of %d sequences failed: %s", (int)k, fr_errdetail());

        pthread_mutex_lock(&s->mu);
        s->batches++;
        s->sequences += (uint64_t)k;
        s->tokens += (uint64_t)tokens;
        for (int32_t i = 0; i < k; i++) {
            job *j = s->owner[i];
            if (rc) j->rc = rc;
            else memcpy(j->out + (size_t)s->index[i] * (size_t)s->n_out, res + (size_t)i * (size_t)s->n_out,
                        (size_t)s->n_out * sizeof(float));
            j->done++;
        }
        /* complete jobs leave the FIFO (they are at its head, in order) */
        double now = fr_now_s();
        while (s->head && s->head->done == s->head->n) {
            job *j = s->head;
            s->head = j->next_job;
            if (!s->head) s->tail = NULL;
            s->queued--;
            s->requests++;
            if (s->last_done > 0) {
                double gap = now - s->last_done;
                s->gap_ewma = s->gap_ewma > 0 ? 0.8 * s->gap_ewma + 0.2 * gap : gap;
            }
            s->last_done = now;
            j->finished = true;
            pthread_cond_signal(&j->cv);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}
