/*
 * test_utf8.c — the strict UTF-8 decoder (base/utf8.h) against the
 * Encoding Standard's decoder written out from its text (utf8_ref.h):
 *
 *   a valid character    fr_utf8_char's length is what the standard
 *                        decodes first, byte for byte, and what
 *                        ref_char_len (code point bounds) says;
 *   the maximal subpart  where fr_utf8_char says invalid (-1) or cut short
 *                        (0), the standard's first output is one U+FFFD
 *                        that consumed exactly *sub bytes: decode(s) =
 *                        U+FFFD + decode(s + sub); cut short iff a lead
 *                        byte's subpart is the whole rest;
 *   fr_utf8_valid        true iff the standard decodes the bytes to
 *                        themselves;
 *
 * over every input of 1, 2 and 3 bytes, and every 4-byte input whose
 * first byte is a 4-byte lead, with boundary bytes after; and named cases
 * (overlongs, surrogates, past U+10FFFF, stray continuations, cuts).
 */
#include "harness.h"

#include "base/utf8.h"
#include "base/utf8_ref.h"

/* The first step of the standard's decode of s[0..n) agrees with
 * fr_utf8_char at s? */
static bool agrees(const unsigned char *s, size_t n) {
    unsigned char all[32], rest[32];
    size_t an = whatwg_decode(s, n, all), sub = 99;
    int k = fr_utf8_char(s, n, &sub);
    if (k > 0) {
        if ((size_t)k > n || (size_t)k != ref_char_len(s, n)) return false;
        size_t rn = whatwg_decode(s + k, n - (size_t)k, rest);
        return an == (size_t)k + rn && !memcmp(all, s, (size_t)k) && !memcmp(all + k, rest, rn);
    }
    if (k != 0 && k != -1) return false;
    if (sub < 1 || sub > 3 || sub > n) return false;
    if ((k == 0) != (sub == n && s[0] >= 0xC2 && s[0] <= 0xF4)) return false;   /* cut short: a lead, then the end */
    if (ref_char_len(s, n) != 1 || s[0] < 0x80) return false;
    size_t rn = whatwg_decode(s + sub, n - sub, rest);
    return an == 3 + rn && !memcmp(all, "\xEF\xBF\xBD", 3) && !memcmp(all + 3, rest, rn);
}

/* fr_utf8_valid(s) iff the standard decodes s to itself? */
static bool valid_agrees(const unsigned char *s, size_t n) {
    unsigned char out[32];
    size_t on = whatwg_decode(s, n, out);
    return fr_utf8_valid((const char *)s, n) == (on == n && !memcmp(out, s, n));
}

static void test_against_whatwg(void) {
    static const unsigned char edge[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0,
                                         0xC1, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF};
    long bad = 0, bad_valid = 0;
    unsigned char s[4];
    for (unsigned a = 0; a < 256; a++) {
        s[0] = (unsigned char)a;
        bad += !agrees(s, 1);
        bad_valid += !valid_agrees(s, 1);
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (unsigned char)b;
            bad += !agrees(s, 2);
            bad_valid += !valid_agrees(s, 2);
            for (unsigned c = 0; c < 256; c++) {
                s[2] = (unsigned char)c;
                bad += !agrees(s, 3);
                if (a >= 0x80) bad_valid += !valid_agrees(s, 3);
            }
        }
    }
    for (unsigned a = 0xF0; a <= 0xF4; a++)
        for (unsigned b = 0; b < 256; b++)
            for (size_t c = 0; c < sizeof edge; c++)
                for (size_t d = 0; d < sizeof edge; d++) {
                    s[0] = (unsigned char)a, s[1] = (unsigned char)b, s[2] = edge[c], s[3] = edge[d];
                    bad += !agrees(s, 4);
                    bad_valid += !valid_agrees(s, 4);
                }
    CHECK_MSG(bad == 0, "%ld inputs: fr_utf8_char differs from the Encoding Standard's decoder", bad);
    CHECK_MSG(bad_valid == 0, "%ld inputs: fr_utf8_valid differs from the Encoding Standard's decoder", bad_valid);
}

#define U(lit) (const uint8_t *)(lit), sizeof(lit) - 1

static void test_named(void) {
    size_t sub = 0;
    CHECK_INT(fr_utf8_char(U("A"), NULL), 1);
    CHECK_INT(fr_utf8_char(U("\0"), NULL), 1);
    CHECK_INT(fr_utf8_char(U("\xC3\xA9"), NULL), 2);                 /* é */
    CHECK_INT(fr_utf8_char(U("\xE4\xB8\xAD" "x"), NULL), 3);         /* 中, then more */
    CHECK_INT(fr_utf8_char(U("\xF0\x9F\x98\x80"), NULL), 4);         /* 😀 */
    CHECK_INT(fr_utf8_char(U("\xF4\x8F\xBF\xBF"), NULL), 4);         /* U+10FFFF */
    CHECK_INT(fr_utf8_char(U("\xED\x9F\xBF"), NULL), 3);             /* U+D7FF */
    CHECK_INT(fr_utf8_char(U("\xEE\x80\x80"), NULL), 3);             /* U+E000 */
    /* cut short: 0, the subpart is all there is */
    CHECK_INT(fr_utf8_char(U("\xE4\xB8"), &sub), 0);
    CHECK_INT(sub, 2);
    CHECK_INT(fr_utf8_char(U("\xF0\x9F\x98"), &sub), 0);
    CHECK_INT(sub, 3);
    CHECK_INT(fr_utf8_char(U("\xC3"), &sub), 0);
    CHECK_INT(sub, 1);
    CHECK_INT(fr_utf8_char(U("\xF4\x8F\xBF"), &sub), 0);
    CHECK_INT(sub, 3);
    /* invalid: -1, the maximal subpart */
    CHECK_INT(fr_utf8_char(U("\x80"), &sub), -1);                    /* stray continuation */
    CHECK_INT(sub, 1);
    CHECK_INT(fr_utf8_char(U("\xC0\x80"), &sub), -1);                /* C0 never leads */
    CHECK_INT(sub, 1);
    CHECK_INT(fr_utf8_char(U("\xE0\x80\x80"), &sub), -1);            /* overlong */
    CHECK_INT(sub, 1);
    CHECK_INT(fr_utf8_char(U("\xF0\x80\x80\x80"), &sub), -1);
    CHECK_INT(sub, 1);
    CHECK_INT(fr_utf8_char(U("\xED\xA0\x80"), &sub), -1);            /* a surrogate */
    CHECK_INT(sub, 1);
    CHECK_INT(fr_utf8_char(U("\xF4\x90\x80\x80"), &sub), -1);        /* past U+10FFFF */
    CHECK_INT(sub, 1);
    CHECK_INT(fr_utf8_char(U("\xF5\x80"), &sub), -1);
    CHECK_INT(sub, 1);
    CHECK_INT(fr_utf8_char(U("\xE2\x82" "A"), &sub), -1);            /* cut by a new character */
    CHECK_INT(sub, 2);
    CHECK_INT(fr_utf8_char(U("\xF0\x9F\x98" "A"), &sub), -1);
    CHECK_INT(sub, 3);
    CHECK_INT(fr_utf8_char(U("\xC3\xC3\xA9"), &sub), -1);            /* a new lead ends it */
    CHECK_INT(sub, 1);
    CHECK_INT(fr_utf8_char(U("\xFF"), NULL), -1);                    /* sub may be NULL */
    CHECK_INT(fr_utf8_char(U("\xE2\x82"), NULL), 0);

    CHECK(fr_utf8_valid("", 0));
    CHECK(fr_utf8_valid("a\0b", 3));
    CHECK(fr_utf8_valid("h\xC3\xA9llo \xE4\xB8\x96 \xF0\x9F\x98\x80", 15));
    CHECK(!fr_utf8_valid("ab\xff", 3));
    CHECK(!fr_utf8_valid("ab\xE4\xB8", 4));                          /* cut at the end */
    CHECK(!fr_utf8_valid("\xED\xA0\x80", 3));
    CHECK(!fr_utf8_valid("\xC0\xAF", 2));
}

int main(void) {
    test_named();
    test_against_whatwg();
    return harness_done();
}
