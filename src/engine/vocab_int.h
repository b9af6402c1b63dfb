/*
 * vocab_int.h — the layout of a loaded vocabulary, shared by vocab.c
 * (loading, special tokens, decoding), vocab_spm.c (SentencePiece BPE),
 * vocab_bpe.c (byte-level BPE and its pre-tokenizers), vocab_wpm.c
 * (WordPiece) and the tests.
 * Nothing outside engine/vocab*.c and tests should include it.
 *
 * Invariants after fr_vocab_load: every token id in [0, n_tokens) has its
 * text at text + tok_off[id], tok_off[id + 1] - tok_off[id] bytes long; the
 * special ids (bos, eos, ...) are -1 or < n_tokens; the hash tables hold
 * id + 1 (0 = empty slot) and are at most half full.
 */
#ifndef FR_ENGINE_VOCAB_INT_H
#define FR_ENGINE_VOCAB_INT_H

#include "engine/vocab.h"

enum { FR_VOCAB_SPM = 1, FR_VOCAB_BPE = 2, FR_VOCAB_WPM = 3 };

#define FR_VOCAB_MAX_REGEX 6

/* Per-token flag bits (vocab->flags). */
enum { FR_TOKF_EOG = 1 };

/* A piece of the text to tokenize: raw text, or a special token already
 * recognised by the pre-pass. */
typedef struct fr__vocab_frag {
    size_t off, len;        /* raw text: bytes [off, off + len) */
    int32_t token;          /* special token id, or -1 for raw text */
} fr__vocab_frag;

/* A growable output id list (fr_malloc'd). */
typedef struct fr__idvec {
    int32_t *v;
    size_t n, cap;
} fr__idvec;

struct fr_vocab {
    int kind;                   /* FR_VOCAB_SPM, FR_VOCAB_BPE or FR_VOCAB_WPM */
    char model[16];             /* tokenizer.ggml.model */
    char pre[64];               /* tokenizer.ggml.pre ("default" if absent) */
    int32_t n_tokens;

    char *text;                 /* every token's text, back to back */
    uint32_t *tok_off;          /* [n_tokens + 1] */
    float *scores;              /* [n_tokens] (SPM merge priority) */
    uint8_t *types;             /* [n_tokens] FR_TOKEN_* */
    uint8_t *flags;             /* [n_tokens] FR_TOKF_* */
    uint32_t *tok_hash;         /* text -> id + 1; later duplicates win */
    size_t tok_hash_mask;

    /* BPE merges "A B": rank = index; A ends at the first space at
     * index >= 1 (merge_split = length of A). */
    int32_t n_merges;
    char *merge_text;
    uint32_t *merge_off;        /* [n_merges + 1] */
    uint32_t *merge_split;      /* [n_merges] */
    uint32_t *merge_hash;       /* "A B" -> rank + 1; first one wins */
    size_t merge_hash_mask;

    /* Tokens the pre-pass splits out (control, user-defined, unknown),
     * longest text first. */
    int32_t *special;
    int32_t n_special;

    int32_t bos, eos, unk, pad, eot, eom;
    int32_t sep, mask;          /* WPM: [SEP] (ends add_special input), [MASK]; else -1 */
    bool add_bos, add_eos, add_space_prefix;
    bool lowercase, strip_accents;      /* WPM normalizer */
    uint32_t max_token_len;     /* bytes of the longest token text */
    bool ignore_merges;         /* BPE: a piece that is a token is kept whole */

    int n_regex;                /* BPE pre-tokenizer: split regexes in order */
    void *regex[FR_VOCAB_MAX_REGEX];    /* pcre2_code_8 * */

    int32_t byte_tok[256];      /* SPM: <0xNN> (or the 1-byte token), -1 */
};

/* Hash of n bytes (FNV-1a, 64-bit). */
uint64_t fr__vocab_hash(const void *p, size_t n);

/* Id of the token whose text is s[0..n), or -1. */
int32_t fr__vocab_lookup(const fr_vocab *v, const char *s, size_t n);

/* Rank of the merge (a, b), or -1. */
int32_t fr__vocab_merge_rank(const fr_vocab *v, const char *a, size_t na,
                             const char *b, size_t nb);

int fr__idvec_push(fr__idvec *o, int32_t id);

/* Tokenize one raw-text fragment, appending ids to out.  SPM: `text` is
 * already escaped ("▁" for spaces, prefix space added).  0 or FR_ENOMEM. */
int fr__vocab_spm_tokenize(const fr_vocab *v, const char *text, size_t len, fr__idvec *out);
int fr__vocab_bpe_tokenize(const fr_vocab *v, const char *text, size_t len, fr__idvec *out);
int fr__vocab_wpm_tokenize(const fr_vocab *v, const char *text, size_t len, fr__idvec *out);

/* For tests: the words WordPiece makes of text (normalized, each without
 * the "▁" prefix), calling cb for each.  0 or FR_ENOMEM. */
int fr__vocab_wpm_split(const fr_vocab *v, const char *text, size_t len,
                        void (*cb)(void *ctx, const char *word, size_t len), void *ctx);

/* Set up v's pre-tokenizer from v->pre: the regex list and ignore_merges.
 * FR_EUNSUPP (detail names the pre-tokenizer) for an unknown name;
 * FR_EINTERNAL if a regex fails to compile.  *is_llama3 tells the caller
 * that the add_bos default is true. */
int fr__vocab_bpe_setup(fr_vocab *v, bool *is_llama3);
void fr__vocab_bpe_free(fr_vocab *v);

/* For tests: split text as the pre-tokenizer does, calling cb for each
 * piece (original bytes, before the byte-level mapping). */
typedef void (*fr__vocab_piece_cb)(void *ctx, const char *piece, size_t len);
int fr__vocab_bpe_split(const fr_vocab *v, const char *text, size_t len,
                        fr__vocab_piece_cb cb, void *ctx);


/* ---- the shared merge loop (vocab_merge.c) ---- */
typedef struct fr__sym {
    uint32_t off, n;        /* bytes of the text; n = 0 once merged away */
    int32_t prev, next;     /* neighbours in the chain, -1 at the ends */
} fr__sym;

typedef struct fr__bigram {
    float prio;             /* lower merges first; ties → leftmost */
    int32_t left, right;
    uint32_t size;          /* bytes of left + right when queued */
} fr__bigram;

typedef struct fr__merge_scratch {   /* zero-initialise; reusable */
    fr__sym *syms;
    size_t cap_syms;
    fr__bigram *heap;
    size_t n_heap, cap_heap;
} fr__merge_scratch;

/* Whether symbols l and r (bytes of text) may merge, and with what priority. */
typedef bool (*fr__pair_prio_fn)(const void *ctx, const char *text, const fr__sym *l,
                                 const fr__sym *r, float *prio);

/* Split text into UTF-8 characters and merge pairs until none is allowed.
 * The chain starts at m->syms[0] (follow .next); *n_syms characters were
 * made (0 for empty text).  FR_ENOMEM, FR_EINVAL (text too long). */
int fr__merge_run(fr__merge_scratch *m, const char *text, size_t len, fr__pair_prio_fn prio,
                  const void *ctx, int32_t *n_syms);
void fr__merge_scratch_deinit(fr__merge_scratch *m);

#endif
