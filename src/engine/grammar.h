/*
 * grammar.h — GBNF grammars (llama.cpp's format) and grammar-constrained
 * decoding: a parser, a pushdown matcher over Unicode code points, and
 * per-state token masks over a vocabulary.
 *
 * Three objects:
 *   fr_grammar    a compiled grammar: immutable after fr_grammar_parse,
 *                 reference-counted (fr_grammar_ref/unref), so several
 *                 sequences may share it across threads.
 *   fr_gvocab     the vocabulary as the matcher sees it: every token's
 *                 text (fr_token_to_piece, not special), sorted by bytes
 *                 with the common prefix of each with the previous one,
 *                 and which tokens end generation.  Built once per
 *                 vocabulary (the scheduler keeps one per model);
 *                 immutable, shared read-only.
 *   fr_gmask_cache  token masks by (grammar, state), for one fr_gvocab:
 *                 a matcher has its own, or several share one (the
 *                 scheduler keeps one per model, so that requests with
 *                 the same grammar reuse each other's masks).  Not
 *                 thread-safe: matchers sharing one must be used from
 *                 one thread at a time.
 *   fr_gmatcher   one sequence's position in a grammar: a set of stacks
 *                 (as llama.cpp's: each stack is the list of grammar
 *                 positions still to match, its top a character
 *                 element; an empty stack means the input so far is a
 *                 complete sentence) plus the bytes of a UTF-8 character
 *                 not finished yet (a token may end in the middle of a
 *                 character: byte-fallback tokens).  Not thread-safe; one
 *                 per sequence.
 *
 * Grammar syntax (GBNF): rules `name ::= alternatives`, names of letters,
 * digits, '-' and '_'; the start rule is "root".  Alternatives separated
 * by '|', sequences of: "literal" (escapes \n \r \t \" \\ \[ \] \- \xHH
 * \uHHHH \UHHHHHHHH), [character classes] with ranges a-z and negation
 * [^...] (same escapes), '.' (any character), rule names, ( groups ), each
 * optionally followed by *, +, ?, {m}, {m,} or {m,n}.  '#' starts a
 * comment to the end of the line.  A rule ends at a newline unless inside
 * parentheses or the next line continues it with '|'.  Repetitions are
 * lowered to generated rules (x* → R ::= x R | empty), so matching keeps
 * no counters.  Left recursion (direct, indirect, or through a prefix that
 * can match nothing, as in (x?)*) is refused: the matcher expands rules
 * depth-first.
 *
 * Limits (a hostile grammar cannot take more than these): text
 * FR_GRAMMAR_MAX_TEXT bytes, FR_GRAMMAR_MAX_RULES rules (generated ones
 * included), FR_GRAMMAR_MAX_ELEMS elements, repetition counts up to
 * FR_GRAMMAR_MAX_REPEAT; at run time a stack deeper than
 * FR_GRAMMAR_MAX_DEPTH is dropped, a state of more than
 * FR_GRAMMAR_MAX_STACKS stacks or FR_GRAMMAR_MAX_STATE_WORDS positions, or
 * an expansion of more than FR_GRAMMAR_MAX_WORK steps or
 * FR_GRAMMAR_MAX_WORK_WORDS positions, is an error (FR_ETOOLONG: "the
 * grammar is too ambiguous").  So a matcher holds at most about 84 KiB per
 * state it keeps (its current one, two spares, and one per byte of the
 * longest token text during a mask: 22 MiB in the very worst case, some
 * tens of KiB for JSON grammars) plus an 8 MiB work list at worst.
 *
 * Masks.  fr_gmatcher_mask gives, for the current state, a bitmask of
 * n_vocab bits: token t is allowed when its whole text can be consumed
 * from the state (a trailing unfinished character counts when some
 * character it could become is allowed); tokens with empty text never
 * (they would let a model loop without progress); end-of-generation
 * tokens exactly when the state is accepting.  One mask is one walk over
 * the sorted token texts, sharing the work of common prefixes (the
 * states after each prefix are kept by depth; a dead prefix skips every
 * token that starts with it).  Masks are cached (fr_gmask_cache): the key
 * is a 64-bit hash of the grammar's compiled form and of the state
 * (order-independent over its stacks, plus the unfinished character);
 * bounded by bytes, least recently used evicted; a state seen again, by
 * this matcher or by another one sharing the cache, costs a lookup.  (A 64-bit collision would
 * give the wrong mask; the next token's fr_gmatcher_accept would then
 * refuse it.)
 */
#ifndef FR_ENGINE_GRAMMAR_H
#define FR_ENGINE_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frugal/engine.h"

#define FR_GRAMMAR_MAX_TEXT (1u << 20)     /* bytes of GBNF */
#define FR_GRAMMAR_MAX_RULES 16384
#define FR_GRAMMAR_MAX_ELEMS (1u << 20)
#define FR_GRAMMAR_MAX_REPEAT 1000         /* m, n in {m,n} */
#define FR_GRAMMAR_MAX_DEPTH 1024          /* elements on one stack */
#define FR_GRAMMAR_MAX_STACKS 1024         /* stacks in one state */
#define FR_GRAMMAR_MAX_STATE_WORDS 16384   /* positions of all stacks of one state */
#define FR_GRAMMAR_MAX_WORK_WORDS (1 << 21) /* positions on the expansion's work list */
#define FR_GRAMMAR_MAX_WORK 200000         /* expansion steps per character */
#define FR_GRAMMAR_MAX_TOKEN 256           /* bytes of a token text the masks consider */

/* Bytes of masks a matcher's own cache keeps at most (at least 4 masks). */
#define FR_GMATCHER_MASK_BYTES (2u << 20)
/* What the scheduler budgets: a shared cache per model, and per slot a
 * matcher (the masks are in the shared cache): its states and the memo of
 * a mask walk (at most 1 MiB of kept sets, 128 KiB of entries) — what
 * JSON-schema grammars take; a hostile grammar can take more, up to the
 * limits above. */
#define FR_GMASK_SHARED_BYTES (8u << 20)
#define FR_GMATCHER_BUDGET(n_vocab) ((size_t)(3u << 19))

typedef struct fr_grammar fr_grammar;
typedef struct fr_gvocab fr_gvocab;
typedef struct fr_gmatcher fr_gmatcher;
typedef struct fr_gmask_cache fr_gmask_cache;

/* Parse and compile len bytes of GBNF.  FR_EINVAL with a detail naming
 * the line and column and the problem (syntax, an undefined rule, a
 * missing "root", left recursion, too large), FR_ENOMEM.  The result has
 * one reference. */
int  fr_grammar_parse(const char *text, size_t len, fr_grammar **out);
fr_grammar *fr_grammar_ref(fr_grammar *g);
void fr_grammar_unref(fr_grammar *g);          /* NULL is fine */
size_t fr_grammar_bytes(const fr_grammar *g);
int32_t fr_grammar_n_rules(const fr_grammar *g);

/* The vocabulary's token texts for masks.  FR_ENOMEM. */
int  fr_gvocab_create(const fr_vocab *v, fr_gvocab **out);
void fr_gvocab_destroy(fr_gvocab *tv);         /* NULL is fine */
size_t fr_gvocab_bytes(const fr_gvocab *tv);
/* Bytes fr_gvocab_create would take for v (an upper bound). */
size_t fr_gvocab_estimate_bytes(const fr_vocab *v);
int32_t fr_gvocab_n_tokens(const fr_gvocab *tv);

/* A mask cache for tv's vocabulary holding at most max_bytes of masks
 * (at least 4, at most 4096 masks).  FR_ENOMEM. */
int  fr_gmask_cache_create(const fr_gvocab *tv, size_t max_bytes, fr_gmask_cache **out);
void fr_gmask_cache_destroy(fr_gmask_cache *c);    /* NULL is fine */
size_t fr_gmask_cache_bytes(const fr_gmask_cache *c);

/* A matcher at the start of g (g gets a reference; tv must outlive it)
 * using the mask cache `cache` (of tv; it must outlive the matcher), or
 * with its own of FR_GMATCHER_MASK_BYTES when cache is NULL.  FR_EINVAL
 * (a cache of another vocabulary), FR_ENOMEM, FR_ETOOLONG (see above). */
int  fr_gmatcher_create(fr_grammar *g, const fr_gvocab *tv, fr_gmask_cache *cache, fr_gmatcher **out);
void fr_gmatcher_destroy(fr_gmatcher *m);      /* NULL is fine */
size_t fr_gmatcher_bytes(const fr_gmatcher *m);

/* Some stack is empty and no character is unfinished: the text so far is
 * a sentence of the grammar. */
bool fr_gmatcher_accepting(const fr_gmatcher *m);
/* Accepting and nothing more can follow. */
bool fr_gmatcher_done(const fr_gmatcher *m);

/* Consume bytes (a token's text): 0, or FR_EINVAL when the grammar does
 * not allow them (the state is then unchanged), FR_ETOOLONG, FR_ENOMEM. */
int fr_gmatcher_accept_bytes(fr_gmatcher *m, const char *s, size_t n);
/* Could the bytes be consumed now?  1 yes, 0 no (the state is unchanged
 * either way), or a negative error. */
int fr_gmatcher_allows(fr_gmatcher *m, const char *s, size_t n);
/* Consume token id's text; an end-of-generation token is accepted (and
 * changes nothing) when the state is accepting. */
int fr_gmatcher_accept_token(fr_gmatcher *m, int32_t id);

/* The mask of the current state: *mask points to n_vocab bits (bit t of
 * word t/64), owned by the cache, valid until the next fr_gmatcher_mask
 * of any matcher using that cache; *n_allowed
 * counts the set bits.  0, FR_ENOMEM, FR_ETOOLONG. */
int fr_gmatcher_mask(fr_gmatcher *m, const uint64_t **mask, int32_t *n_allowed);

typedef struct fr_gmatcher_stats {
    uint64_t masks, hits;       /* fr_gmatcher_mask calls; of them answered by the cache */
    double walk_ms;             /* time spent computing masks (misses) */
} fr_gmatcher_stats;
void fr_gmatcher_stats_get(const fr_gmatcher *m, fr_gmatcher_stats *out);

#endif
