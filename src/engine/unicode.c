/*
 * unicode.c — UTF-8 helpers and the GPT-2 byte table (see unicode.h).
 *
 * The byte table: bytes 0x21-0x7E, 0xA1-0xAC and 0xAE-0xFF stand for the
 * code point of the same value; the other 68 bytes (0x00-0x20, 0x7F-0xA0,
 * 0xAD) take U+0100, U+0101, ... in increasing byte order.  So space is
 * U+0120 "Ġ" and newline U+010A "Ċ".  Both directions are computed, not
 * tabulated: the inverse of U+0100 + k is the k-th byte of that list.
 */
#include "engine/unicode.h"

size_t fr__unicode_len_lead(uint8_t c) {
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[c >> 4];
}

uint32_t fr__unicode_decode(const uint8_t *s, size_t len, size_t *n) {
    uint8_t c = s[0];
    *n = 1;
    if (!(c & 0x80)) return c;
    if (!(c & 0x40)) return FR_CPT_INVALID;           /* stray continuation byte */
    size_t need = !(c & 0x20) ? 2 : !(c & 0x10) ? 3 : !(c & 0x08) ? 4 : 0;
    if (need == 0 || len < need) return FR_CPT_INVALID;
    uint32_t cpt = c & (0x7Fu >> need);
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80) return FR_CPT_INVALID;
        cpt = (cpt << 6) | (s[i] & 0x3Fu);
    }
    *n = need;
    return cpt;
}

size_t fr__unicode_encode(uint32_t cpt, char *out) {
    if (cpt < 0x80) {
        out[0] = (char)cpt;
        return 1;
    }
    if (cpt < 0x800) {
        out[0] = (char)(0xC0 | (cpt >> 6));
        out[1] = (char)(0x80 | (cpt & 0x3F));
        return 2;
    }
    if (cpt < 0x10000) {
        out[0] = (char)(0xE0 | (cpt >> 12));
        out[1] = (char)(0x80 | ((cpt >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cpt & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | ((cpt >> 18) & 0x07));
    out[1] = (char)(0x80 | ((cpt >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cpt >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cpt & 0x3F));
    return 4;
}

bool fr__unicode_is_space(uint32_t c) {
    if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
    if (c < 0x85) return false;
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Bytes that keep their own value as code point. */
static bool byte_is_self(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t fr__unicode_byte_to_cpt(uint8_t b) {
    if (byte_is_self(b)) return b;
    /* rank of b among the 68 remapped bytes */
    unsigned k = b <= 0x20 ? b : b <= 0xA0 ? 0x21 + (b - 0x7F) : 0x21 + 0x22;
    return 0x100 + k;
}

int fr__unicode_cpt_to_byte(uint32_t cpt) {
    if (cpt < 0x100) return byte_is_self(cpt) ? (int)cpt : -1;
    if (cpt >= 0x100 + 68) return -1;
    unsigned k = cpt - 0x100;
    if (k <= 0x20) return (int)k;
    if (k < 0x21 + 0x22) return (int)(0x7F + (k - 0x21));
    return 0xAD;
}
