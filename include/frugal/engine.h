/*
 * frugal/engine.h — the public C API of frugal's engine: open a GGUF model,
 * run it in a context, tokenize and detokenize, sample, format chats.
 *
 * Ownership and threads:
 *   - fr_model owns the read-only mapping of the file (weights are never
 *     copied), the vocabulary and the hyperparameters; it is immutable
 *     after open and may be shared by any number of threads and contexts.
 *   - fr_ctx owns the KV cache and scratch of one sequence (or of several,
 *     fr_ctx_create_seqs); one thread at a time.  It computes on an fr_pool (frugal/kernels.h) it does not own.
 *   - fr_sampler belongs to one sequence; one thread at a time.
 *   - fr_enc owns the scratch of an encoder (bert) for batches of many
 *     sequences; one thread at a time.  It computes on an fr_pool it does
 *     not own.
 * Errors: 0 or a negative FR_E* code (frugal/base.h), with a detail line
 * from fr_errdetail().
 */
#ifndef FRUGAL_ENGINE_H
#define FRUGAL_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frugal/base.h"
#include "frugal/kernels.h"

typedef struct fr_model fr_model;       /* a loaded model file */
typedef struct fr_ctx fr_ctx;           /* KV cache and scratch of n_seq sequences */
typedef struct fr_vocab fr_vocab;       /* a model's tokenizer */
typedef struct fr_sampler fr_sampler;   /* the sampler chain of one sequence */
typedef struct fr_enc fr_enc;           /* an encoder's scratch for batches of sequences */

/* Pooling of an encoder's token vectors ({arch}.pooling_type). */
enum fr_pooling {
    FR_POOLING_MODEL = -1,  /* as the model file says (fr_enc_create) */
    FR_POOLING_NONE = 0,    /* one vector per token */
    FR_POOLING_MEAN = 1,    /* the average of the sequence's tokens */
    FR_POOLING_CLS = 2,     /* the first token ([CLS]) */
    FR_POOLING_LAST = 3,    /* the last token */
    FR_POOLING_RANK = 4     /* [CLS] through the classifier head: a score */
};

/* ---- models and contexts ---- */

typedef struct fr_hparams {
    char arch[32];          /* "llama", "qwen2", "bert", "nomic-bert" */
    int32_t n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv;
    int32_t head_dim, n_ff, n_rot;
    float rms_eps, rope_base, rope_freq_scale;
    int rope_type;          /* 0 NORM (adjacent pairs), 2 NEOX (halves), -1 none (bert) */
    /* encoders */
    bool encoder;           /* bert, nomic-bert: use fr_enc_*, not fr_ctx_* */
    float norm_eps;         /* LayerNorm eps (attention.layer_norm_epsilon) */
    int pooling;            /* {arch}.pooling_type (FR_POOLING_*; decoders NONE) */
    int32_t n_cls_out;      /* outputs of the rank head (rows of cls.output, else 1) */
} fr_hparams;

/* Open a model file: map, validate, find every tensor the architecture
 * needs (with the shapes it needs), load the vocab.  FR_EFORMAT (detail
 * names file and tensor/key), FR_EUNSUPP (unknown architecture or tensor
 * type), FR_ENOENT/FR_EIO, FR_ENOMEM. */
int  fr_model_open(const char *path, fr_model **out);
void fr_model_close(fr_model *m);

const fr_hparams *fr_model_hparams(const fr_model *m);
const fr_vocab *fr_model_vocab(const fr_model *m);
/* Bytes of weights a decode step reads (all matmul weights + one embedding row;
 * for an encoder, every matmul weight of one forward pass). */
size_t fr_model_weight_bytes(const fr_model *m);

/* bert and nomic-bert are encoders: fr_enc_* runs them, fr_ctx_create
 * refuses them (FR_EUNSUPP).  Decoders give pooling FR_POOLING_NONE. */
bool fr_model_is_encoder(const fr_model *m);
int32_t fr_model_n_embd(const fr_model *m);      /* width of the hidden state */
int32_t fr_model_n_ctx_train(const fr_model *m); /* longest sequence it was trained on */
int fr_model_pooling(const fr_model *m);         /* FR_POOLING_*, from the file */

/* Create a context for n_ctx positions (0 = min(n_ctx_train, 4096)),
 * computing on pool (NULL = single-threaded; not owned).  FR_EUNSUPP for
 * an encoder model (fr_enc_create). */
int  fr_ctx_create(fr_model *m, int32_t n_ctx, fr_pool *pool, fr_ctx **out);
void fr_ctx_destroy(fr_ctx *c);
int32_t fr_ctx_n_ctx(const fr_ctx *c);
int32_t fr_ctx_n_past(const fr_ctx *c);      /* positions filled */
void fr_ctx_reset(fr_ctx *c);                 /* forget the sequence */
size_t fr_ctx_kv_bytes(const fr_ctx *c);
/* Every byte the context allocated: KV cache plus scratch (steps of up to
 * 512 tokens) plus the matmul work buffer. */
size_t fr_ctx_bytes(const fr_ctx *c);
/* What fr_ctx_bytes would be for fr_ctx_create(m, n_ctx, a pool of
 * n_threads), without allocating (for the memory budget).  0 for bad
 * arguments, SIZE_MAX if it does not fit in size_t or m is an encoder. */
size_t fr_ctx_estimate_bytes(const fr_model *m, int32_t n_ctx, int n_threads);

/* Run n tokens of sequence 0 at positions n_past .. n_past+n-1 (in steps
 * of at most 512 tokens) and append them to its KV cache.  *logits
 * receives the n_vocab logits after the last token (owned by the context,
 * valid until the next eval).  FR_ETOOLONG if n_past + n > n_ctx,
 * FR_EINVAL for n <= 0 or a token id out of range (nothing is changed
 * then).  Never allocates. */
int fr_ctx_eval(fr_ctx *c, const int32_t *tokens, int32_t n, const float **logits);

/* ---- several sequences in one context (continuous batching) ---- */

/* A context with n_seq independent sequences (KV slots) of n_ctx
 * positions each; fr_ctx_create is the case n_seq = 1.  The KV cache is
 * n_seq times as large; scratch is shared. */
int fr_ctx_create_seqs(fr_model *m, int32_t n_ctx, int32_t n_seq, fr_pool *pool, fr_ctx **out);
size_t fr_ctx_estimate_bytes_seqs(const fr_model *m, int32_t n_ctx, int32_t n_seq,
                                  int n_threads);
int32_t fr_ctx_n_seq(const fr_ctx *c);
/* Most tokens one fr_ctx_eval_batch takes (min(512, n_ctx·n_seq)). */
int32_t fr_ctx_max_batch(const fr_ctx *c);
/* Positions sequence seq holds (0 for a bad seq); forget them. */
int32_t fr_ctx_seq_len(const fr_ctx *c, int32_t seq);
void fr_ctx_seq_clear(fr_ctx *c, int32_t seq);

/* One sequence's part of a batch: n tokens at positions pos .. pos+n-1.
 * pos may be below what the sequence holds: the positions from pos on are
 * forgotten first (a shared prompt prefix is kept, the rest replaced). */
typedef struct fr_batch_run {
    int32_t seq;                /* each sequence at most once per batch */
    int32_t pos;                /* <= fr_ctx_seq_len(seq) */
    int32_t n;                  /* >= 1 */
    const int32_t *tokens;      /* [n] */
    bool want_logits;           /* logits after the last token */
    const float *logits;        /* out: n_vocab floats when want_logits, owned
                                   by the context, valid until the next eval */
} fr_batch_run;

/* One forward pass over every run: the weights are read once for all of
 * them.  The total of n must be <= fr_ctx_max_batch(c).  FR_EINVAL (bad
 * seq, duplicate seq, pos beyond the sequence, token out of range, batch
 * too big), FR_ETOOLONG (pos + n > n_ctx); nothing is changed on error.
 * Never allocates. */
int fr_ctx_eval_batch(fr_ctx *c, fr_batch_run *runs, int32_t n_runs);

/* ---- encoders: embeddings and reranking (bert, nomic-bert) ----
 *
 * One fr_enc_encode is one forward pass over many sequences (in steps of
 * at most max_tokens tokens when they do not fit one): the weights are
 * read once per step for all of them, every sequence attends only to its
 * own tokens (bidirectionally), and each gets its pooled vector, or its
 * score for rank pooling.  Everything is allocated at fr_enc_create; an
 * encode never allocates.  Typical serving use:
 *
 *   fr_enc_create(m, 2048, 64, FR_POOLING_MODEL, pool, &e);   once
 *   per request: fr_enc_tokenize (or fr_enc_rerank_tokens) each input,
 *   fr_enc_encode(e, seqs, n, true, &out)  →  out[i·fr_enc_n_out(e) ...]
 */

/* An encoder context for batches of up to max_tokens tokens in all (0 =
 * n_ctx_train) and max_seqs sequences, pooling as given (FR_POOLING_MODEL:
 * the file's; FR_POOLING_RANK needs the classifier head), computing on
 * pool (NULL = single-threaded; not owned).  FR_EUNSUPP (a decoder, or
 * rank pooling without a head), FR_EINVAL (sizes), FR_ENOMEM. */
int  fr_enc_create(fr_model *m, int32_t max_tokens, int32_t max_seqs, int pooling, fr_pool *pool,
                   fr_enc **out);
void fr_enc_destroy(fr_enc *e);                 /* NULL is fine */
/* What fr_enc_bytes would be for those arguments and a pool of n_threads,
 * without allocating (the memory budget); 0 for bad arguments (a decoder
 * too), SIZE_MAX if it does not fit in size_t. */
size_t fr_enc_estimate_bytes(const fr_model *m, int32_t max_tokens, int32_t max_seqs, int pooling,
                             int n_threads);
size_t  fr_enc_bytes(const fr_enc *e);          /* every byte the context allocated */
int32_t fr_enc_max_tokens(const fr_enc *e);
int32_t fr_enc_max_seqs(const fr_enc *e);
int     fr_enc_pooling(const fr_enc *e);        /* FR_POOLING_* in effect */
/* Floats of output per sequence (per token for FR_POOLING_NONE): n_embd,
 * or the head's n_cls_out (1 for a reranker: the score) for rank. */
int32_t fr_enc_n_out(const fr_enc *e);

typedef struct fr_enc_seq {
    const int32_t *tokens;      /* [n], e.g. from fr_enc_tokenize */
    int32_t n;                  /* 1 .. min(n_ctx_train, max_tokens) */
} fr_enc_seq;

/* Encode n_seqs sequences.  *out receives n_seqs × fr_enc_n_out floats in
 * order (FR_POOLING_NONE: Σn × n_embd, one row per token), owned by the
 * context and valid until the next encode.  normalize: L2-normalise each
 * vector (a zero vector stays zero); scores (rank) are never normalised.
 * FR_EINVAL (no sequence, more than max_seqs, an empty sequence, a token
 * out of range, FR_POOLING_NONE with more than max_tokens in all),
 * FR_ETOOLONG (a sequence longer than n_ctx_train or max_tokens); nothing
 * is computed or changed on error.  Never allocates. */
int fr_enc_encode(fr_enc *e, const fr_enc_seq *seqs, int32_t n_seqs, bool normalize,
                  const float **out);

/* The input of one text to embed: [CLS] text [SEP] (add_special, special
 * token texts parsed, as llama.cpp's server and TEI), truncated to
 * max_tokens (0 = n_ctx_train) by cutting the text and keeping the final
 * [SEP].  *truncated (may be NULL) says whether it was.  *ids is fr_malloc'd.
 * FR_ENOMEM, FR_EINVAL (max_tokens < 0). */
int fr_enc_tokenize(const fr_model *m, const char *text, size_t len, int32_t max_tokens,
                    int32_t **ids, size_t *n_ids, bool *truncated);

/* The input of a (query, document) pair for a reranker, as llama.cpp
 * builds it: [CLS] query [SEP] document, no trailing [SEP] (a vocabulary
 * without [SEP]: BOS query EOS document, each special where it exists).
 * Longer than max_tokens (0 = n_ctx_train): the longer part is cut first
 * (longest first, as Hugging Face's tokenizers), so each keeps at least
 * half of the room it needs; the special tokens always stay.  Same
 * ownership and errors as fr_enc_tokenize. */
int fr_enc_rerank_tokens(const fr_model *m, const char *query, size_t qlen, const char *doc,
                         size_t dlen, int32_t max_tokens, int32_t **ids, size_t *n_ids,
                         bool *truncated);

/* Cut ids[0..n) in place to at most max_tokens (0 = n_ctx_train): an input
 * that ends with [SEP] keeps it as its last token (and [CLS] first), any
 * other is cut at the end.  Returns the new length.
 * The three input helpers only read the model: thread-safe. */
size_t fr_enc_truncate(const fr_model *m, int32_t *ids, size_t n, int32_t max_tokens);

/* ---- tokenizer ---- */

/* Token attribute bits (from tokenizer.ggml.token_type). */
enum {
    FR_TOKEN_UNDEFINED = 0, FR_TOKEN_NORMAL = 1, FR_TOKEN_UNKNOWN = 2,
    FR_TOKEN_CONTROL = 3, FR_TOKEN_USER_DEFINED = 4, FR_TOKEN_UNUSED = 5,
    FR_TOKEN_BYTE = 6
};

int32_t fr_vocab_n_tokens(const fr_vocab *v);
const char *fr_vocab_model_name(const fr_vocab *v);   /* "llama", "gpt2", "bert" */
const char *fr_vocab_pre_name(const fr_vocab *v);     /* "default", "llama-bpe", ... */
int32_t fr_vocab_bos(const fr_vocab *v);              /* -1 if none */
int32_t fr_vocab_eos(const fr_vocab *v);              /* -1 if none */
int32_t fr_vocab_sep(const fr_vocab *v);              /* [SEP] of WordPiece; -1 if none */
bool fr_vocab_add_bos(const fr_vocab *v);
bool fr_vocab_add_eos(const fr_vocab *v);
bool fr_vocab_is_eog(const fr_vocab *v, int32_t id);  /* end of generation */
int  fr_vocab_token_type(const fr_vocab *v, int32_t id);
/* The token's vocabulary text (not NUL-terminated), or NULL for a bad id. */
const char *fr_vocab_token_text(const fr_vocab *v, int32_t id, size_t *len);
/* Id of a token whose text is exactly s, or -1. */
int32_t fr_vocab_find(const fr_vocab *v, const char *s, size_t len);

/* Tokenize len bytes of text.  add_special adds BOS/EOS as the vocab says
 * (WordPiece: [CLS] first and [SEP] last, always);
 * parse_special turns control-token texts into their ids (a prompt the
 * caller wrote whole, such as a raw completion prompt; a chat prompt whose
 * messages come from someone else is fr_chat_tokenize's).  User-defined
 * tokens are split out either way, as llama.cpp does.
 * *ids is allocated with fr_malloc (caller frees with fr_free).
 * Returns 0, FR_ENOMEM or FR_EINVAL. */
int fr_tokenize(const fr_vocab *v, const char *text, size_t len, bool add_special,
                bool parse_special, int32_t **ids, size_t *n_ids);

/* A byte range [off, off + len) of a text. */
typedef struct fr_span {
    size_t off, len;
} fr_span;

/* Tokenize text with special tokens parsed, except in the n_plain ranges
 * plain[] (in order, not overlapping, inside the text), whose special-token
 * texts are ordinary text: llama.cpp's parse_special split, for a prompt
 * made of trusted text (a template) and untrusted text (messages,
 * documents).  The pre-pass runs per range; then the raw text from one
 * special token to the next is tokenized as one piece even where it
 * crosses a range border, so byte-level BPE and SentencePiece merges (and
 * SPM's prefix space, given only to text at the start or after a special
 * token) come out as for the same text tokenized whole: when the plain
 * ranges hold no special token's text the ids equal fr_tokenize's with
 * parse_special.  Same ownership and errors as fr_tokenize (FR_EINVAL with
 * a detail for ranges out of order or past len). */
int fr_tokenize_mixed(const fr_vocab *v, const char *text, size_t len, bool add_special,
                      const fr_span *plain, size_t n_plain, int32_t **ids, size_t *n_ids);

/* The bytes token id contributes to the output text (SPM and WordPiece
 * "▁" → " ",
 * byte tokens → their byte, gpt2 code points → bytes).  Control tokens give
 * nothing unless `special`.  Returns the number of bytes needed; writes at
 * most cap bytes (no NUL).  A bad id gives 0. */
size_t fr_token_to_piece(const fr_vocab *v, int32_t id, bool special, char *buf, size_t cap);

/* Streaming detokenizer: pushes a token's piece and emits only complete
 * UTF-8 characters; bytes of an unfinished character wait for the next
 * push.  Invalid sequences are emitted as they are once they cannot become
 * valid.  Caller-owned state; zero-initialise (or fr_detok_init). */
typedef struct fr_detok {
    char pending[8];
    int n_pending;
    bool first;         /* next piece is the first of the sequence */
    bool strip_space;   /* drop the leading space of the first piece (SPM) */
} fr_detok;
void fr_detok_init(fr_detok *d, const fr_vocab *v);
/* Append the complete text to out (cap bytes); returns bytes written, or
 * the negative FR_EINVAL if cap is too small (cap >= 256 is always enough). */
int fr_detok_push(fr_detok *d, const fr_vocab *v, int32_t id, char *out, size_t cap);
/* Whatever is still pending (an unfinished character) at end of stream. */
int fr_detok_flush(fr_detok *d, char *out, size_t cap);

/* ---- sampler ---- */



typedef struct fr_sampler_params {
    float temp;             /* 0.80 */
    int32_t top_k;          /* 40; <= 0 off */
    float top_p;            /* 0.95; 1 off */
    float min_p;            /* 0.05; 0 off */
    float repeat_penalty;   /* 1.0 off */
    int32_t repeat_last_n;  /* 64 */
    float freq_penalty;     /* 0 */
    float presence_penalty; /* 0 */
    uint64_t seed;          /* 0xFFFFFFFF = random */
} fr_sampler_params;

void fr_sampler_params_default(fr_sampler_params *p);

/* A sampler for n_vocab logits; every buffer is allocated here, so
 * sampling never allocates.  FR_EINVAL (n_vocab <= 0) or FR_ENOMEM.
 * repeat_last_n < 0 keeps the last 4096 tokens. */
int  fr_sampler_create(const fr_sampler_params *p, int32_t n_vocab, fr_sampler **out);
void fr_sampler_destroy(fr_sampler *s);          /* NULL is fine */

/* Add a bias to a token's logit before the chain (-INFINITY bans it).
 * Setting a token's bias again replaces it; out-of-range ids are ignored. */
void fr_sampler_set_bias(fr_sampler *s, int32_t token, float bias);

/* Record an accepted token (prompt tokens too) for the penalties. */
void fr_sampler_accept(fr_sampler *s, int32_t token);

/* Choose the next token from n_vocab logits (not modified).  If every
 * token is banned, returns 0. */
int32_t fr_sampler_sample(fr_sampler *s, const float *logits);

/* ---- chat templates ---- */

/* A function call an assistant message made (OpenAI's tool_calls). */
typedef struct fr_chat_call {
    const char *id;         /* "call_..." (Mistral prints it), or NULL */
    const char *name;       /* the function's name */
    const char *arguments;  /* a JSON value's text, printed as it is */
} fr_chat_call;

typedef struct fr_chat_msg {
    const char *role;     /* "system", "user", "assistant", "tool" */
    const char *content;  /* NULL only for an assistant message with calls */
    const fr_chat_call *calls;  /* assistant: the calls it made (n_calls) */
    size_t n_calls;
    const char *tool_call_id;   /* tool: the call this is the result of, or NULL */
} fr_chat_msg;

/* LLAMA2: no system support (system text goes in plainly);
 * LLAMA2_SYS: system in <<SYS>>; _BOS: later turns reopen with "<s>[INST] ";
 * _STRIP: contents are trimmed.  MISTRAL: Mistral's v3 tokenizer format
 * ("[INST] ...[/INST]"), recognised by [AVAILABLE_TOOLS] or [TOOL_CALLS]
 * in the template. */
enum fr_chat_kind { FR_CHAT_CHATML, FR_CHAT_LLAMA2, FR_CHAT_LLAMA2_SYS, FR_CHAT_LLAMA3,
                    FR_CHAT_LLAMA2_SYS_BOS, FR_CHAT_LLAMA2_SYS_STRIP, FR_CHAT_MISTRAL };

/* Which template a Jinja source stands for (NULL → chatml); a bare name
 * ("chatml", "llama2", "llama2-sys", "llama2-sys-bos", "llama2-sys-strip",
 * "llama3", "mistral") is accepted too.  Returns the kind, or FR_EUNSUPP (detail
 * quotes the start of the template) when it is recognised as none of them. */
int fr_chat_detect(const char *tmpl);

/* The kind's name as fr_chat_detect accepts it; "?" for a bad kind. */
const char *fr_chat_name(int kind);

/* Format messages; *out is fr_malloc'd and NUL-terminated.  The text is
 * for reading: tokenizing it with parse_special would turn a message that
 * contains "</s>" or "<|im_end|>" into that control token, so a prompt is
 * tokenized with fr_chat_tokenize (or fr_tokenize_mixed with the spans of
 * fr_chat_apply_spans). */
int fr_chat_apply(int kind, const fr_chat_msg *msgs, size_t n, bool add_generation_prompt,
                  char **out);

/* fr_chat_apply, and in *spans (fr_malloc'd, NULL when *n_spans is 0) the
 * byte ranges of *out that came from the messages (roles and contents, as
 * written there: trimmed where the template trims), in order. */
int fr_chat_apply_spans(int kind, const fr_chat_msg *msgs, size_t n, bool add_generation_prompt,
                        char **out, fr_span **spans, size_t *n_spans);

/* Format messages and tokenize the prompt with v: the template's own text
 * with special tokens parsed (its markers are control tokens when the
 * vocabulary has them), the messages' text as ordinary text
 * (fr_tokenize_mixed), BOS as the vocabulary says.  *ids is fr_malloc'd.
 * Errors as fr_chat_apply and fr_tokenize. */
int fr_chat_tokenize(const fr_vocab *v, int kind, const fr_chat_msg *msgs, size_t n,
                     bool add_generation_prompt, int32_t **ids, size_t *n_ids);

/* Tools.  The *_tools forms render n_tools function definitions the way
 * the kind's family expects, and the messages' calls and tool results:
 *   chatml (Qwen2.5, Hermes): a system turn (the first system message's
 *     text, then "# Tools" with the definitions in <tools></tools>, one a
 *     line, and the instruction to answer with <tool_call>{"name": ...,
 *     "arguments": ...}</tool_call>); calls as <tool_call> blocks; results
 *     as a user turn of <tool_response> blocks;
 *   llama3 (Llama 3.1's JSON tool calling): "Environment: ipython" in the
 *     system turn, the definitions and the instruction to answer with
 *     {"name": ..., "parameters": ...} in the first user turn; results in
 *     the "ipython" role;
 *   mistral: [AVAILABLE_TOOLS] [...][/AVAILABLE_TOOLS] before the last
 *     user turn, calls as [TOOL_CALLS] [{"name", "arguments", "id"}],
 *     results as [TOOL_RESULTS] {"content", "call_id"}[/TOOL_RESULTS];
 *   the llama-2 family, which has no format of its own: chatml's text
 *     (Hermes) inside its turns.
 * tools[i] is one definition's JSON text as the family prints it (OpenAI's
 * {"type": "function", "function": {...}} object; llama3's prompt shows
 * it indented by 4).  Every text that comes from the caller (definitions,
 * names, arguments, results, ids) is a message span: ordinary text, never
 * a control token.  With n_tools 0 the definitions are left out and the
 * rest is rendered the same way. */
int fr_chat_apply_tools(int kind, const fr_chat_msg *msgs, size_t n, const char *const *tools,
                        size_t n_tools, bool add_generation_prompt, char **out, fr_span **spans,
                        size_t *n_spans);
int fr_chat_tokenize_tools(const fr_vocab *v, int kind, const fr_chat_msg *msgs, size_t n,
                           const char *const *tools, size_t n_tools, bool add_generation_prompt,
                           int32_t **ids, size_t *n_ids);

#endif
