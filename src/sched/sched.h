/*
 * sched.h — the per-model request scheduler: slots, continuous batching,
 * chunked prefill, bounded admission.
 *
 * One fr_sched per loaded language model.  It owns a multi-sequence
 * context (one KV slot per parallel request, n_ctx positions each) and one
 * thread, the batch loop: each step gathers the next token of every
 * decoding sequence plus, for sequences still reading their prompt, a
 * chunk of at most `chunk` prompt tokens, runs one forward pass for all of
 * it, samples every sequence that reached its end of prompt, and pushes
 * the new text to each request's output.  A long prompt therefore never
 * stalls the others for more than one chunk.
 *
 * The machine has one fr_compute: the compute pool and the turn that every
 * scheduler takes for each forward pass, so that only one pass runs at a
 * time and models with work alternate (FIFO tickets).
 *
 * Admission: at most n_slots requests run; at most n_queue more wait in
 * FIFO order; a submit beyond that fails with FR_EBUSY and a Retry-After
 * estimate from the measured completion rate.
 *
 * A request (fr_gen) is shared by the scheduler and one consumer thread
 * (the HTTP handler), each holding a reference: the consumer reads output
 * with fr_gen_wait and lets go with fr_gen_release (which cancels a
 * request still running); cancel is also possible at any time from any
 * thread and takes effect at the next step, freeing the slot.
 *
 * Thread-safety: every function here is thread-safe except
 * fr_sched_destroy, which must not race with other calls on the same
 * scheduler (the manager holds references to prevent that).
 */
#ifndef FR_SCHED_SCHED_H
#define FR_SCHED_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/grammar.h"
#include "engine/model.h"
#include "engine/sampler.h"

/* ---- the machine's compute turn ---- */

typedef struct fr_compute fr_compute;

/* A pool of n_threads workers and the turn lock.  FR_EINVAL, FR_ENOMEM. */
int  fr_compute_create(int n_threads, fr_compute **out);
void fr_compute_destroy(fr_compute *c);   /* no scheduler may still use it */
int  fr_compute_threads(const fr_compute *c);   /* the pool's size (buffers are sized for it) */

/* Throttling (the SoC is hot: manager/pressure.c).  set_threads makes the
 * forward passes that start from now on use n threads (clamped to
 * [1, fr_compute_threads]); a pass already running keeps its count.
 * set_slot_cap lets each scheduler fill at most n slots (0 = all of them)
 * with new requests; requests beyond wait in its queue (a group of n
 * continuations larger than the cap still runs, alone).  Thread-safe;
 * the getters return what was set. */
void fr_compute_set_threads(fr_compute *c, int n);
int  fr_compute_threads_active(fr_compute *c);
void fr_compute_set_slot_cap(fr_compute *c, int32_t n);
int32_t fr_compute_slot_cap(fr_compute *c);

/* ---- schedulers ---- */

typedef struct fr_sched fr_sched;

typedef struct fr_sched_config {
    int32_t n_ctx;      /* positions per slot; 0 = min(n_ctx_train, 4096) */
    int32_t n_slots;    /* requests decoding at once (--parallel), >= 1 */
    int32_t n_queue;    /* requests waiting beyond the slots (--queue), >= 0 */
    int32_t chunk;      /* prompt tokens per sequence per step; 0 = 256 */
} fr_sched_config;

/* Bytes fr_sched_create would allocate for m with cfg on a pool of
 * n_threads (KV cache for n_slots × n_ctx, scratch, logits, samplers),
 * without allocating: the manager's estimate.  SIZE_MAX on overflow. */
size_t fr_sched_estimate_bytes(const fr_model *m, const fr_sched_config *cfg, int n_threads);

/* Create the scheduler and start its thread.  m and compute are not
 * owned and must outlive it.  FR_EINVAL (bad config), FR_ENOMEM. */
int fr_sched_create(fr_model *m, fr_compute *compute, const fr_sched_config *cfg,
                    fr_sched **out);

/* Cancel every request (running ones finish with "cancelled", queued ones
 * too), stop and join the thread, free everything.  NULL is fine. */
void fr_sched_destroy(fr_sched *s);

/* Bytes the scheduler holds (KV + scratch + per-slot state). */
size_t fr_sched_bytes(const fr_sched *s);
size_t fr_sched_kv_bytes(const fr_sched *s);
int32_t fr_sched_n_ctx(const fr_sched *s);

typedef struct fr_sched_stats {
    int32_t slots, slots_busy, queue_cap, queued;
    uint64_t requests_done, tokens_prompt, tokens_generated;
    uint64_t steps;                 /* forward passes run */
    uint64_t rejected;              /* submits refused: queue full */
    double drain_per_s;             /* completions per second, smoothed */
} fr_sched_stats;
void fr_sched_stats_get(const fr_sched *s, fr_sched_stats *out);

/* Cancel every request running or queued now (they finish "cancelled"
 * at the next step); the scheduler keeps serving new ones. */
void fr_sched_cancel_all(fr_sched *s);

/* True when no request is running or queued. */
bool fr_sched_idle(const fr_sched *s);

/* ---- requests ---- */

typedef struct fr_gen fr_gen;

typedef struct fr_gen_params {
    const int32_t *prompt;      /* tokens (copied); n_prompt >= 1 */
    int32_t n_prompt;
    int32_t max_tokens;         /* >= 1; generation also ends at the context end */
    fr_sampler_params sampling;
    const int32_t *bias_ids;    /* logit bias (copied): -INFINITY bans */
    const float *bias;
    int32_t n_bias;
    const char *const *stop;    /* stop strings (copied); the text ends before one */
    int32_t n_stop;
    bool ignore_eos;            /* keep going past end-of-generation tokens */
    int32_t n_probs;            /* 0: no logprobs; k >= 1: the chosen token's
                                   logprob and the top k (k <= FR_GEN_MAX_PROBS) */
    double deadline;            /* fr_now_s() time; past it: finish "length"; 0 none */
    /* The prompt's own logprobs (echo): with n_probs >= 1, the request's
     * probabilities begin with n_prompt - 1 entries, for prompt tokens 1
     * .. n_prompt-1 (each from the logits after the tokens before it),
     * before those of the generated tokens.  The prompt is then read one
     * token a step (a forward pass gives the logits of its last position
     * only) and the slot's cached prefix is not reused; without this flag
     * nothing of it costs anything. */
    bool prompt_logprobs;
    /* Optional: a compiled grammar the output must match (engine/
     * grammar.h).  Submit takes a reference of its own (the caller may
     * drop its reference right after); the request's sequence gets its
     * own matcher.  Each step, tokens the grammar does not allow get
     * -INFINITY before the sampler's chain (logit_bias, penalties,
     * temperature ... apply to what remains), end-of-generation tokens
     * only once the output is a sentence of the grammar; the request ends
     * "stop" when the output is complete and nothing more can follow, and
     * "error" (error_msg says so) when no token can continue it. */
    fr_grammar *grammar;
    /* Optional: called once when the request ends, however it ends (its
     * output, all of it still unread, is complete by then), from the
     * scheduler's thread with the request's lock held — unless the
     * consumer let go first (fr_gen_release disarms it, and once that
     * returns the hook is not running and never will).  It must not block,
     * wait for this scheduler or destroy it, nor call fr_gen_* on this
     * request.  gen.c gives the model back here (fr_manager_release_async)
     * so that a client that does not read does not hold the model. */
    void (*on_end)(void *ud);
    void *on_end_ud;
} fr_gen_params;

/* The limits of a request, checked by fr_sched_submit (FR_EINVAL) and
 * answered as 400s naming the field by the server before it submits. */
#define FR_GEN_MAX_PROBS 20         /* top logprobs per token */
#define FR_GEN_MAX_STOPS 16         /* stop strings */
#define FR_GEN_MAX_STOP_LEN 256     /* bytes of one stop string */

enum fr_finish {
    FR_FINISH_NONE = 0,         /* still running */
    FR_FINISH_STOP,             /* end-of-generation token or a stop string */
    FR_FINISH_LENGTH,           /* max_tokens, context end or deadline */
    FR_FINISH_CANCELLED,        /* fr_gen_cancel, release, or shutdown */
    FR_FINISH_ERROR             /* fr_gen_out.error says what */
};
const char *fr_finish_name(int finish);   /* "stop", "length", "cancelled", "error" */

/* One generated token's probabilities (log, natural base), when asked. */
typedef struct fr_gen_prob {
    int32_t id;
    float logprob;
    int32_t n_top;
    int32_t top_id[FR_GEN_MAX_PROBS];
    float top_logprob[FR_GEN_MAX_PROBS];
} fr_gen_prob;

/* What fr_gen_wait hands over: everything new since the previous call. */
typedef struct fr_gen_out {
    char *text;                 /* new text (complete UTF-8 characters; text
                                   that might begin a stop string is held
                                   back until it cannot); fr_malloc'd, NUL-
                                   terminated, caller frees; NULL when none */
    size_t len;
    fr_gen_prob *probs;         /* [n_probs] for the tokens behind this text
                                   (when n_probs was asked); fr_malloc'd */
    int32_t n_probs;
    int finish;                 /* FR_FINISH_NONE while running */
    int error;                  /* FR_E* when finish is FR_FINISH_ERROR */
    const char *error_msg;      /* and what happened, when known (else NULL);
                                   valid until fr_gen_release */
    int32_t n_prompt, n_gen;    /* tokens so far */
    double queue_ms;            /* submit → slot (valid once it has a slot) */
    double ttft_ms;             /* submit → first generated token */
    double total_ms;            /* submit → finish */
} fr_gen_out;

/* Queue a request.  On success *out holds the consumer's reference.
 * FR_ETOOLONG: n_prompt >= n_ctx (nothing to generate into; checked
 * before any work); FR_EINVAL: bad params (detail names the field);
 * FR_EBUSY: slots and queue are full, *retry_after_s (if not NULL) says
 * when to try again (>= 1); FR_ESHUTDOWN: the scheduler is stopping;
 * FR_ENOMEM. */
int fr_sched_submit(fr_sched *s, const fr_gen_params *p, fr_gen **out, double *retry_after_s);

/* n continuations of one prompt (OpenAI's "n"): n requests, out[0..n),
 * admitted together (they need n free slots at once, and count n against
 * the queue), whose prompt is read once: the first request's slot reads
 * it, then its keys and values are copied into the others' slots and all
 * n sample from the same last logits, each with its own sampler (seed + i
 * when the seed is fixed, so they differ).  Until the prompt is in, a
 * cancel or deadline of out[0] ends them all.  n in [1, the slots]
 * (FR_EINVAL naming n otherwise); errors as fr_sched_submit, and then
 * out[] is all NULL. */
int fr_sched_submit_n(fr_sched *s, const fr_gen_params *p, int32_t n, fr_gen **out,
                      double *retry_after_s);
int32_t fr_sched_n_slots(const fr_sched *s);

/* Wait up to timeout_ms (0 = poll, -1 = forever) for new output or the
 * end.  Returns 0 with *out filled (text may be NULL on a timeout; check
 * out->finish), or FR_ENOMEM.  After the call that reports a finish,
 * further calls report the same finish with no text. */
int fr_gen_wait(fr_gen *g, int timeout_ms, fr_gen_out *out);
void fr_gen_out_free(fr_gen_out *out);    /* frees text and probs */

/* Stop generating at the next step (from any thread; idempotent). */
void fr_gen_cancel(fr_gen *g);

/* The consumer lets go: disarms on_end (waiting for it if it runs now),
 * cancels if still running, drops its reference. */
void fr_gen_release(fr_gen *g);

#endif
