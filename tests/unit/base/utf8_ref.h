/*
 * utf8_ref.h — strict UTF-8 written out apart from base/utf8.c, for the
 * tests that check it and its users: test_utf8.c (the decoder itself),
 * server/test_gen.c (fr__json_text's replacement), search/test_chunk.c
 * and fuzz/fuzz_chunker.c (the chunker's character boundaries).
 *
 * - ref_char_len: the length of the character at s[0..len) when it is a
 *   complete valid one, else 1 — decoded to a code point and checked
 *   against the bounds (overlong, surrogate, past U+10FFFF) rather than
 *   byte ranges as utf8.c does.
 * - whatwg_decode: the Encoding Standard's UTF-8 decoder (section 9.1.1),
 *   step by step from its text, with replacement: each error is one
 *   U+FFFD, the offending byte "restored to the queue".
 */
#ifndef FR_TEST_UTF8_REF_H
#define FR_TEST_UTF8_REF_H

#include <stddef.h>
#include <stdint.h>

static inline size_t ref_char_len(const unsigned char *s, size_t len) {
    unsigned c = s[0];
    size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n <= 1 || n > len) return 1;
    uint32_t cp = c & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 1;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 1;
    return n;
}

static inline size_t put_cp(unsigned char *o, uint32_t cp) {
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xC0 | cp >> 6); o[1] = (unsigned char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decode p[0..n) and encode the result back as UTF-8 into out (4n+4
 * bytes); returns the length. */
static inline size_t whatwg_decode(const unsigned char *p, size_t n, unsigned char *out) {
    size_t o = 0;
    uint32_t cp = 0;
    int needed = 0, seen = 0;
    unsigned lower = 0x80, upper = 0xBF;
    for (size_t i = 0; i < n; i++) {
        unsigned b = p[i];
        if (needed == 0) {
            if (b <= 0x7F) o += put_cp(out + o, b);
            else if (b >= 0xC2 && b <= 0xDF) { needed = 1; cp = b & 0x1F; }
            else if (b >= 0xE0 && b <= 0xEF) {
                if (b == 0xE0) lower = 0xA0;
                if (b == 0xED) upper = 0x9F;
                needed = 2;
                cp = b & 0xF;
            } else if (b >= 0xF0 && b <= 0xF4) {
                if (b == 0xF0) lower = 0x90;
                if (b == 0xF4) upper = 0x8F;
                needed = 3;
                cp = b & 0x7;
            } else o += put_cp(out + o, 0xFFFD);
            continue;
        }
        if (b < lower || b > upper) {
            cp = 0;
            needed = seen = 0;
            lower = 0x80;
            upper = 0xBF;
            i--;                                /* "restore byte to ioQueue" */
            o += put_cp(out + o, 0xFFFD);
            continue;
        }
        lower = 0x80;
        upper = 0xBF;
        cp = cp << 6 | (b & 0x3F);
        if (++seen == needed) {
            o += put_cp(out + o, cp);
            cp = 0;
            needed = seen = 0;
        }
    }
    if (needed) o += put_cp(out + o, 0xFFFD);
    return o;
}

#endif
