/*
 * fuzz_chunker.c — any bytes through the chunker (search/chunk.h), every
 * invariant of its header checked on the result.
 *
 * Input: byte 0-1 the chunk size (16 + b0 % 64, or over the whole range
 * 16..8192 when b1's top bit is set), byte 2 the overlap (0, or b2 % (size
 * / 2 + 1)), byte 3 the count function, the rest the text:
 *
 *   mode 0  a token per byte                  (additive)
 *   mode 1  a token per character             (additive: lead bytes)
 *   mode 2  a weight 0..3 per byte from byte 3, and the byte value of the
 *           text's first byte worth more than size (additive)
 *   mode 3  1 + len/4 per call, whatever the bytes (not additive)
 *
 * Checked: chunks in text order, starts and ends strictly increasing;
 * each starts and ends on a non-blank byte and on a character boundary
 * (strict UTF-8, an invalid byte a character of its own); only blanks
 * outside every chunk; at most size tokens a chunk unless it is one
 * character; consecutive chunks share at most overlap tokens, nothing
 * when overlap is 0; for the additive counts, a chunk's count is the
 * weight of its non-blank bytes (the sum of its atoms); the same input
 * gives the same chunks twice.  Errors: none are allowed (the count never
 * fails) but FR_ENOMEM.
 */
#include "base/err.h"
#include "base/mem.h"
#include "search/chunk.h"
#include "../unit/base/utf8_ref.h"    /* ref_char_len: strict UTF-8 apart from base/utf8.c */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct counter {
    int mode;
    int32_t w[256];
} counter;

static int count(void *ud, const char *t, size_t n, int32_t *out) {
    const counter *c = ud;
    if (c->mode == 3) {
        *out = 1 + (int32_t)(n / 4);
        return 0;
    }
    int64_t s = 0;
    for (size_t i = 0; i < n; i++) s += c->w[(unsigned char)t[i]];
    *out = s > INT32_MAX ? INT32_MAX : (int32_t)s;
    return 0;
}

static bool blank(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int64_t weight(const counter *c, const unsigned char *t, size_t a, size_t b) {
    int64_t s = 0;
    for (size_t i = a; i < b; i++)
        if (!blank(t[i])) s += c->w[t[i]];
    return s;
}

#define FAIL(...)                                                             \
    do {                                                                      \
        fprintf(stderr, "fuzz_chunker: size %d overlap %d mode %d, %zu bytes: ", size, overlap, \
                c.mode, len);                                                 \
        fprintf(stderr, __VA_ARGS__);                                         \
        fputc('\n', stderr);                                                  \
        abort();                                                              \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n_data) {
    if (n_data < 4 || n_data > (1 << 16) + 4) return 0;
    int32_t size = data[1] & 0x80 ? 16 + (int32_t)((data[0] | (data[1] & 0x7F) << 8) % 8177)
                                  : 16 + data[0] % 64;
    int32_t overlap = data[2] == 0 ? 0 : (int32_t)(data[2] % (size / 2 + 1));
    counter c = {.mode = data[3] & 3};
    const unsigned char *t = data + 4;
    size_t len = n_data - 4;
    for (int i = 0; i < 256; i++) {
        if (c.mode == 0) c.w[i] = 1;
        else if (c.mode == 1) c.w[i] = i >= 0x80 && i < 0xC0 ? 0 : 1;
        else c.w[i] = (int32_t)(((unsigned)i * (data[3] | 1u) + (data[3] >> 2)) >> 3 & 3);
    }
    if (c.mode == 2 && len) c.w[t[0]] = size + 1 + data[3] % 5;
    bool additive = c.mode != 3;

    fr_chunk *ch = NULL, *again = NULL;
    size_t n = 0, n2 = 0;
    int rc = fr__chunk_text((const char *)t, len, size, overlap, count, &c, &ch, &n);
    if (rc == FR_ENOMEM) return 0;
    if (rc) FAIL("error %d: %s", rc, fr_errdetail());
    if ((n == 0) != (ch == NULL)) FAIL("%zu chunks, out %p", n, (void *)ch);

    /* the character starts, walking from 0 */
    unsigned char *cs = calloc(len + 1, 1);
    if (!cs) abort();
    for (size_t i = 0; i < len; i += ref_char_len(t + i, len - i)) cs[i] = 1;
    cs[len] = 1;
    size_t covered = 0;
    for (size_t i = 0; i < n; i++) {
        const fr_chunk *k = &ch[i];
        if (!(k->start < k->end && k->end <= len)) FAIL("chunk %zu: [%u, %u)", i, k->start, k->end);
        if (i && !(k->start > ch[i - 1].start && k->end > ch[i - 1].end))
            FAIL("chunk %zu [%u, %u) after [%u, %u)", i, k->start, k->end, ch[i - 1].start, ch[i - 1].end);
        if (blank(t[k->start]) || blank(t[k->end - 1])) FAIL("chunk %zu [%u, %u): blank edge", i, k->start, k->end);
        if (!cs[k->start] || !cs[k->end]) FAIL("chunk %zu [%u, %u): inside a character", i, k->start, k->end);
        for (size_t b = covered; b < k->start; b++)
            if (!blank(t[b])) FAIL("byte %zu (0x%02x) before chunk %zu in no chunk", b, t[b], i);
        if (k->end > covered) covered = k->end;
        bool one = k->start + ref_char_len(t + k->start, len - k->start) == k->end;
        if (k->tokens > size && !one) FAIL("chunk %zu [%u, %u): %d tokens", i, k->start, k->end, k->tokens);
        if (k->tokens < 0) FAIL("chunk %zu: %d tokens", i, k->tokens);
        if (additive && weight(&c, t, k->start, k->end) != k->tokens)
            FAIL("chunk %zu [%u, %u): %d tokens, weighs %lld", i, k->start, k->end, k->tokens,
                 (long long)weight(&c, t, k->start, k->end));
        if (i && k->start < ch[i - 1].end) {
            if (overlap == 0) FAIL("chunks %zu, %zu overlap with overlap 0", i - 1, i);
            if (additive && weight(&c, t, k->start, ch[i - 1].end) > overlap)
                FAIL("chunks %zu, %zu share %lld tokens", i - 1, i, (long long)weight(&c, t, k->start, ch[i - 1].end));
        }
    }
    for (size_t b = covered; b < len; b++)
        if (!blank(t[b])) FAIL("byte %zu (0x%02x) after the last chunk in no chunk", b, t[b]);
    free(cs);

    /* deterministic: the same chunks again */
    rc = fr__chunk_text((const char *)t, len, size, overlap, count, &c, &again, &n2);
    if (rc == 0 && (n2 != n || (n && memcmp(again, ch, n * sizeof *ch))))
        FAIL("a second run gives %zu chunks, the first %zu", n2, n);
    fr_free(again);
    fr_free(ch);
    return 0;
}
