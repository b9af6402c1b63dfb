/*
 * unicode.h — the small amount of Unicode the tokenizers need (engine
 * internal; include only from engine/vocab*.c, engine/unicode.c and tests).
 *
 * - A lenient UTF-8 decoder that behaves like llama.cpp's: the sequence
 *   length comes from the lead byte alone, continuation bytes are checked,
 *   overlong forms and surrogates are accepted.  A byte that does not start
 *   a decodable sequence is "invalid": it is its own character (one byte),
 *   with the category of U+FFFD, and its byte is kept as it is.
 * - White_Space as llama.cpp defines it (GGUF.md §5).
 * - The GPT-2 byte <-> code point table of byte-level BPE.
 *
 * Strict UTF-8 (what is valid, and where a replacement goes) is base's:
 * base/utf8.h.
 *
 * All functions are pure and thread-safe.
 */
#ifndef FR_ENGINE_UNICODE_H
#define FR_ENGINE_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Returned by fr__unicode_decode for a byte that starts no valid sequence. */
#define FR_CPT_INVALID 0xFFFFFFFFu

/* Length of the sequence a lead byte announces, from its top four bits
 * (continuation bytes count 1), as llama.cpp's unicode_len_utf8. */
size_t fr__unicode_len_lead(uint8_t c);

/* Decode one character at s[0..len) (len >= 1): the code point, or
 * FR_CPT_INVALID for an invalid byte; *n = bytes consumed (>= 1). */
uint32_t fr__unicode_decode(const uint8_t *s, size_t len, size_t *n);

/* UTF-8 of cpt (< 0x200000) into out[4]; returns the byte count. */
size_t fr__unicode_encode(uint32_t cpt, char *out);

/* llama.cpp's whitespace set: U+0009-000D, 0020, 0085, 00A0, 1680,
 * 2000-200A, 2028, 2029, 202F, 205F, 3000. */
bool fr__unicode_is_space(uint32_t cpt);

/* GPT-2 byte-level mapping: the code point byte b stands for, and back
 * (-1 if cpt stands for no byte). */
uint32_t fr__unicode_byte_to_cpt(uint8_t b);
int fr__unicode_cpt_to_byte(uint32_t cpt);

#endif
