/*
 * utf8.h — strict UTF-8: the one decoder of frugal that says what is valid.
 *
 * Strict as RFC 3629 and the Encoding Standard (WHATWG, section 9.1.1):
 * no overlong forms, no surrogates, nothing past U+10FFFF.  Where the
 * bytes are not valid, the decoder names the "maximal subpart": the
 * longest prefix that could still have begun a character (at least one
 * byte), which a replacing decoder turns into one U+FFFD, as WHATWG's
 * TextDecoder and Python's errors="replace" do.
 *
 * Users: the streaming detokenizer keeps an unfinished character back
 * (engine/vocab.c), JSON strings of generated text and error messages
 * replace what is not valid (server/reply.c), the chunker and the index
 * check and step through documents and queries (search/).  The tokenizers'
 * lenient decoder, which copies llama.cpp's, stays in engine/unicode.h.
 *
 * Pure functions, thread-safe.
 */
#ifndef FR_BASE_UTF8_H
#define FR_BASE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The character at s[0..len) (len >= 1): its length 1..4 when it is a
 * complete valid character; 0 when s[0..len) is a proper prefix of a valid
 * character (more bytes could complete it: cut short); -1 when invalid.
 * When the result is 0 or -1 and sub is not NULL, *sub = the length of
 * the maximal subpart (1..3; len when cut short). */
int fr_utf8_char(const uint8_t *s, size_t len, size_t *sub);

/* Is s[0..len) valid UTF-8 in full (a cut-short end is not)? */
bool fr_utf8_valid(const char *s, size_t len);

#endif
