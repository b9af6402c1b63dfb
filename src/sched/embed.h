/*
 * embed.h — the per-model batcher of an encoder (embeddings, reranking).
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
#ifndef FR_SCHED_EMBED_H
#define FR_SCHED_EMBED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"
#include "sched/sched.h"

typedef struct fr_embed_sched fr_embed_sched;

typedef struct fr_embed_config {
    int32_t batch_tokens;       /* tokens per forward pass (--batch-tokens); 0 = 2048 */
    int32_t max_seqs;           /* sequences per forward pass; 0 = 64 */
    int32_t n_queue;            /* requests waiting (--queue); >= 0 */
} fr_embed_config;

/* Bytes create would allocate (the encoder's scratch and the batcher's
 * tables) on a pool of n_threads; SIZE_MAX on overflow or a decoder. */
size_t fr_embed_sched_estimate_bytes(const fr_model *m, const fr_embed_config *cfg, int n_threads);

/* m (an encoder) and compute are not owned.  FR_EINVAL, FR_EUNSUPP (not an
 * encoder), FR_ENOMEM. */
int  fr_embed_sched_create(fr_model *m, fr_compute *compute, const fr_embed_config *cfg,
                           fr_embed_sched **out);
/* Fails the waiting requests with FR_ESHUTDOWN (and waits until their
 * fr_embed_run calls have returned), stops the thread, frees.  No call may
 * start once it has begun. */
void fr_embed_sched_destroy(fr_embed_sched *s);

size_t  fr_embed_sched_bytes(const fr_embed_sched *s);
fr_model *fr_embed_sched_model(const fr_embed_sched *s);
int     fr_embed_pooling(const fr_embed_sched *s);    /* FR_POOLING_* of its vectors */
int32_t fr_embed_n_out(const fr_embed_sched *s);      /* floats per sequence */
/* The longest sequence one request may hold (min(n_ctx_train, batch_tokens)). */
int32_t fr_embed_max_seq_tokens(const fr_embed_sched *s);

/* Encode n sequences (tokens as fr_enc_tokenize / fr_enc_rerank_tokens
 * give them; not copied: they must stay valid until this returns) into
 * out[n][fr_embed_n_out], L2-normalised unless the pooling is rank, and
 * wait for it.  FR_EINVAL (no sequence, an empty one, a token out of
 * range), FR_ETOOLONG (a sequence over fr_embed_max_seq_tokens), FR_EBUSY
 * (queue full; *retry_after_s >= 1 when not NULL), FR_ESHUTDOWN. */
int fr_embed_run(fr_embed_sched *s, const fr_enc_seq *seqs, int32_t n, float *out,
                 double *retry_after_s);

/* Cancel every waiting request (FR_ESHUTDOWN for them); keeps serving. */
void fr_embed_cancel_all(fr_embed_sched *s);

typedef struct fr_embed_stats {
    uint64_t requests, sequences, tokens;
    uint64_t batches;               /* forward passes */
    uint64_t rejected;              /* FR_EBUSY */
    int32_t queued;
} fr_embed_stats;
void fr_embed_stats_get(fr_embed_sched *s, fr_embed_stats *out);

#endif
