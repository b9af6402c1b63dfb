/*
 * vocab.h — tokenizers: SentencePiece BPE ("llama") and byte-level BPE
 * ("gpt2") with llama.cpp's pre-tokenizers; WordPiece ("bert") later.
 *
 * A vocab is built from a GGUF file's tokenizer.* keys and owns copies of
 * everything it needs (it does not keep the fr_gguf).  Immutable after
 * load: tokenize/detokenize are thread-safe.
 */
#ifndef FR_ENGINE_VOCAB_H
#define FR_ENGINE_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"

typedef struct fr_vocab fr_vocab;

/* Token attribute bits (from tokenizer.ggml.token_type). */
enum {
    FR_TOKEN_UNDEFINED = 0, FR_TOKEN_NORMAL = 1, FR_TOKEN_UNKNOWN = 2,
    FR_TOKEN_CONTROL = 3, FR_TOKEN_USER_DEFINED = 4, FR_TOKEN_UNUSED = 5,
    FR_TOKEN_BYTE = 6
};

/* Load the tokenizer of g.  FR_EFORMAT for missing/malformed keys,
 * FR_EUNSUPP (detail names it) for an unknown tokenizer model or
 * pre-tokenizer name, FR_ENOMEM. */
int  fr_vocab_load(const fr_gguf *g, fr_vocab **out);
void fr_vocab_destroy(fr_vocab *v);

int32_t fr_vocab_n_tokens(const fr_vocab *v);
const char *fr_vocab_model_name(const fr_vocab *v);   /* "llama", "gpt2" */
const char *fr_vocab_pre_name(const fr_vocab *v);     /* "default", "llama-bpe", ... */
int32_t fr_vocab_bos(const fr_vocab *v);              /* -1 if none */
int32_t fr_vocab_eos(const fr_vocab *v);              /* -1 if none */
bool fr_vocab_add_bos(const fr_vocab *v);
bool fr_vocab_add_eos(const fr_vocab *v);
bool fr_vocab_is_eog(const fr_vocab *v, int32_t id);  /* end of generation */
int  fr_vocab_token_type(const fr_vocab *v, int32_t id);
/* The token's vocabulary text (not NUL-terminated), or NULL for a bad id. */
const char *fr_vocab_token_text(const fr_vocab *v, int32_t id, size_t *len);
/* Id of a token whose text is exactly s, or -1. */
int32_t fr_vocab_find(const fr_vocab *v, const char *s, size_t len);

/* Tokenize len bytes of text.  add_special adds BOS/EOS as the vocab says;
 * parse_special turns control-token texts into their ids (chat prompts).
 * *ids is allocated with fr_malloc (caller frees with fr_free).
 * Returns 0, FR_ENOMEM or FR_EINVAL. */
int fr_tokenize(const fr_vocab *v, const char *text, size_t len, bool add_special,
                bool parse_special, int32_t **ids, size_t *n_ids);

/* The bytes token id contributes to the output text (SPM "▁" → " ",
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

#endif
