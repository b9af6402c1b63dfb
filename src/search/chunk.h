/*
 * chunk.h — cut a document's text into chunks of at most `size` tokens of
 * the collection's embedding model, each starting with up to `overlap`
 * tokens of the end of the previous one, preferring paragraph, line and
 * sentence boundaries (search layer internal; the index and the tests).
 *
 * The text is first split into atoms: a run of non-blank bytes (a word
 * with its punctuation) and the blanks after it; a CJK full stop, question
 * or exclamation mark also ends an atom.  Each atom is counted with the
 * model's tokenizer (the caller's count function, on the atom's word part
 * only) and carries the strength of the boundary after it: paragraph
 * (a blank line, or a line break before a Markdown heading or fence),
 * line, sentence (. ! ? … or a CJK terminator, closing quotes and brackets
 * allowed after it), clause (, ; :), word, or none (inside an atom that
 * was too long for one chunk and was cut at character boundaries into
 * pieces that fit).  Blanks are ASCII blanks; a chunk starts and ends on
 * a non-blank byte, never inside a UTF-8 character (an invalid byte is a
 * character of its own).
 *
 * Packing: a chunk takes atoms while their token counts sum to at most
 * `size`; unless the text ends there, it is cut after the strongest
 * boundary among the atoms that fill at least half of it (the latest of
 * equally strong ones).  The next chunk starts with the longest run of
 * whole atoms from the end of the previous chunk whose tokens sum to at
 * most `overlap` (less when the next atom would not fit otherwise), so
 * every chunk brings new text.
 *
 * A chunk's token count is the sum of its atoms' counts: exact for
 * WordPiece (words are tokenized one by one), an upper bound within a few
 * tokens for byte-level BPE and SentencePiece.  Invariants (the fuzz
 * target fuzz_chunker.c checks them): chunks are in text order with
 * strictly increasing starts and ends; together they cover every
 * non-blank byte (what lies between two chunks is blank); each holds at
 * most `size` tokens (a single character the tokenizer counts as more is
 * a chunk of its own); consecutive chunks share at most `overlap` tokens
 * and share nothing when `overlap` is 0.
 *
 * Pure and thread-safe; memory from fr_malloc.
 */
#ifndef FR_SEARCH_CHUNK_H
#define FR_SEARCH_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#define FR_CHUNK_MIN_SIZE 16        /* tokens */
#define FR_CHUNK_MAX_SIZE 8192
#define FR_CHUNK_MAX_TEXT (1u << 30) /* bytes the chunker takes (the index allows far less) */

/* Tokens of text[0..len) (no special tokens); 0 or a negative FR_E*. */
typedef int (*fr_count_tokens_fn)(void *ud, const char *text, size_t len, int32_t *n);

typedef struct fr_chunk {
    uint32_t start, end;        /* bytes [start, end) of the text */
    int32_t tokens;             /* the chunker's count: Σ of its atoms */
} fr_chunk;

/* Chunk text[0..len).  size in [FR_CHUNK_MIN_SIZE, FR_CHUNK_MAX_SIZE],
 * overlap in [0, size/2] (FR_EINVAL otherwise; len over FR_CHUNK_MAX_TEXT
 * too).  *out (fr_malloc'd, caller frees; NULL when *n_out is 0: a blank
 * text has no chunks).  Errors of count are returned as they are;
 * FR_ENOMEM. */
int fr__chunk_text(const char *text, size_t len, int32_t size, int32_t overlap,
                   fr_count_tokens_fn count, void *ud, fr_chunk **out, size_t *n_out);

/* Length of the character at s[0..len) (len >= 1) under strict UTF-8
 * (fr_utf8_char, base/utf8.h):
 * 2..4 for a valid multi-byte sequence, else 1 (ASCII or an invalid byte). */
size_t fr__utf8_char_len(const unsigned char *s, size_t len);

#endif
