/*
 * utf8.c — the strict UTF-8 decoder (see utf8.h).
 *
 * The lead byte gives the length and the allowed range of the second
 * byte (the Encoding Standard's "lower/upper boundary"): E0 needs A0..BF
 * (no overlongs), ED 80..9F (no surrogates), F0 90..BF (no overlongs),
 * F4 80..8F (nothing past U+10FFFF); every other byte after the lead is
 * 80..BF.  C0, C1 and F5..FF never begin a character.  The first byte out
 * of range ends the maximal subpart.
 */
#include "base/utf8.h"

int fr_utf8_char(const uint8_t *s, size_t len, size_t *sub) {
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;             /* allowed range of the 2nd byte */
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        if (sub) *sub = 1;
        return -1;
    }
    size_t k = 1;
    for (; k < need && k < len; k++) {
        uint8_t b = s[k];
        if (k == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) break;
    }
    if (k == need) return (int)need;
    if (sub) *sub = k;
    return k == len ? 0 : -1;
}

bool fr_utf8_valid(const char *s, size_t len) {
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        int n = fr_utf8_char(p + i, len - i, NULL);
        if (n <= 0) return false;
        i += (size_t)n;
    }
    return true;
}
