/*
 * batcher.h — the per-model batcher of an encoder (embeddings, reranking).
 *
 * Requests that arrive together are merged into one forward pass: a
 * thread takes the queued sequences in arrival order until the batch
 * holds batch_tokens tokens or max_seqs sequences (a request's sequences
 * may be spread over consecutive batches), runs fr_enc_encode on the
 * machine's compute turn, hands every sequence its vector (or score) and
 * wakes the requests that are complete.  So throughput grows with
 * concurrency while a lone request still runs at once.
 *
 * Admission: at most max_seqs + n_queue requests are in the batcher (a
 * full batch's worth and the queue); beyond that FR_EBUSY with a
 * Retry-After estimate.  Every function is
 * thread-safe except destroy (the manager guarantees no caller remains).
 */
#ifndef FR_SCHED_BATCHER_H
#define FR_SCHED_BATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"
#include "sched/sched.h"

typedef struct fr_batcher fr_batcher;

typedef struct fr_batcher_config {
    int32_t batch_tokens;       /* tokens per forward pass (--batch-tokens); 0 = 2048 */
    int32_t max_seqs;           /* sequences per forward pass; 0 = 64 */
    int32_t n_queue;            /* requests waiting (--queue); >= 0 */
} fr_batcher_config;

/* Bytes create would allocate (the encoder's scratch and the batcher's
 * tables) on a pool of n_threads; SIZE_MAX on overflow or a decoder. */
size_t fr_batcher_estimate_bytes(const fr_model *m, const fr_batcher_config *cfg, int n_threads);

/* m (an encoder) and compute are not owned.  FR_EINVAL, FR_EUNSUPP (not an
 * encoder), FR_ENOMEM. */
int  fr_batcher_create(fr_model *m, fr_compute *compute, const fr_batcher_config *cfg,
                       fr_batcher **out);
/* Fails the waiting requests with FR_ESHUTDOWN (and waits until their
 * fr_batcher_run calls have returned), stops the thread, frees.  No call may
 * start once it has begun. */
void fr_batcher_destroy(fr_batcher *s);

size_t  fr_batcher_bytes(const fr_batcher *s);
fr_model *fr_batcher_model(const fr_batcher *s);
int     fr_batcher_pooling(const fr_batcher *s);    /* FR_POOLING_* of its vectors */
int32_t fr_batcher_n_out(const fr_batcher *s);      /* floats per sequence */
/* The longest sequence one request may hold (min(n_ctx_train, batch_tokens)). */
int32_t fr_batcher_max_seq_tokens(const fr_batcher *s);

/* Encode n sequences (tokens as fr_enc_tokenize / fr_enc_rerank_tokens
 * give them; not copied: they must stay valid until this returns) into
 * out[n][fr_batcher_n_out], L2-normalised unless the pooling is rank, and
 * wait for it.  FR_EINVAL (no sequence, an empty one, a token out of
 * range), FR_ETOOLONG (a sequence over fr_batcher_max_seq_tokens), FR_EBUSY
 * (queue full; *retry_after_s >= 1 when not NULL), FR_ESHUTDOWN. */
int fr_batcher_run(fr_batcher *s, const fr_enc_seq *seqs, int32_t n, float *out,
                   double *retry_after_s);

/* Cancel every waiting request (FR_ESHUTDOWN for them); keeps serving. */
void fr_batcher_cancel_all(fr_batcher *s);

typedef struct fr_batcher_stats {
    uint64_t requests, sequences, tokens;
    uint64_t batches;               /* forward passes */
    uint64_t rejected;              /* FR_EBUSY */
    int32_t queued;
} fr_batcher_stats;
void fr_batcher_stats_get(fr_batcher *s, fr_batcher_stats *out);

#endif
