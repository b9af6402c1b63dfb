/*
 * test_chunk.c — the chunker (search/chunk.h) against every invariant its
 * header states, on hand-made texts whose cuts are worked out in the
 * comments and on random texts:
 *
 *   order        starts and ends strictly increasing;
 *   coverage     every non-blank byte in some chunk, only blanks between;
 *   edges        a chunk starts and ends on a non-blank byte, never inside
 *                a UTF-8 character (checked with base/utf8_ref.h's decoder);
 *   size         Σ tokens ≤ size, except one character counted as more;
 *   overlap      the bytes two chunks share hold ≤ overlap tokens, none
 *                when overlap is 0;
 *   tokens       the chunk's count is the sum of its atoms: with an
 *                additive count (a weight per byte) that is the weight of
 *                its non-blank bytes, recomputed here;
 *   boundaries   paragraph > line > sentence > clause > word among the
 *                atoms that fill at least half a chunk, the latest of
 *                equal ones; CJK terminators (and closers after them);
 *   long atoms   cut at character boundaries into pieces that fit;
 *   the cache    of short atoms' counts gives the count of a direct call;
 *   errors       bad size, overlap, length; the count's own errors; ENOMEM.
 *
 * The file includes chunk.c to reach make_atoms and the atom strengths.
 */
#include "harness.h"

#include "search/chunk.c"

#include "base/utf8_ref.h"     /* ref_char_len: strict UTF-8 apart from base/utf8.c */

#include <stdint.h>

/* ---- count functions ---- */

/* Additive: tokens = Σ w[byte] (blanks never reach it). */
typedef struct wcount {
    int32_t w[256];
    long calls;
} wcount;

static int count_w(void *ud, const char *t, size_t n, int32_t *out) {
    wcount *c = ud;
    c->calls++;
    int64_t s = 0;
    for (size_t i = 0; i < n; i++) s += c->w[(unsigned char)t[i]];
    *out = s > INT32_MAX ? INT32_MAX : (int32_t)s;
    return 0;
}

static void w_bytes(wcount *c) { /* one token per byte */
    memset(c, 0, sizeof *c);
    for (int i = 0; i < 256; i++) c->w[i] = 1;
}

static void w_chars(wcount *c) { /* one token per character: lead bytes only */
    w_bytes(c);
    for (int i = 0x80; i < 0xC0; i++) c->w[i] = 0;
}

/* One token per call: every atom is one token (words), pieces too. */
static long one_calls;
static int count_one(void *ud, const char *t, size_t n, int32_t *out) {
    (void)ud, (void)t, (void)n;
    one_calls++;
    *out = 1;
    return 0;
}

/* Not additive and not monotone: a hash of the bytes. */
static long hash_calls;
static int32_t hash_tokens(const char *t, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)t[i]) * 16777619u;
    return 1 + (int32_t)(h % 5) + (int32_t)(n / 6);
}
static int count_hash(void *ud, const char *t, size_t n, int32_t *out) {
    (void)ud;
    hash_calls++;
    *out = hash_tokens(t, n);
    return 0;
}

/* FR_EIO at call number `fail_at` (from 1). */
static long fail_at, fail_calls;
static int count_fail(void *ud, const char *t, size_t n, int32_t *out) {
    (void)ud, (void)t;
    if (++fail_calls == fail_at) return fr_errf(FR_EIO, "count: failing on purpose");
    *out = (int32_t)n;
    return 0;
}

/* starts[i] = 1 where a character starts (walking from 0), for i <= len. */
static unsigned char *char_starts(const char *text, size_t len) {
    unsigned char *b = calloc(len + 1, 1);
    for (size_t i = 0; i < len;) {
        b[i] = 1;
        i += ref_char_len((const unsigned char *)text + i, len - i);
    }
    b[len] = 1;
    return b;
}

static bool blank(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Weight of the non-blank bytes of text[a..b). */
static int64_t span_w(const wcount *c, const char *text, size_t a, size_t b) {
    int64_t s = 0;
    for (size_t i = a; i < b; i++)
        if (!blank((unsigned char)text[i])) s += c->w[(unsigned char)text[i]];
    return s;
}

/* ---- the invariants ---- */

static char why[512];

/* True when the chunks of text obey chunk.h; else false with why[] set.
 * wc (may be NULL): the additive count used, to recompute token counts. */
static bool invariants(const char *text, size_t len, int32_t size, int32_t overlap,
                       const fr_chunk *ch, size_t n, const wcount *wc) {
    unsigned char *cs = char_starts(text, len);
    bool ok = false;
    size_t covered = 0; /* bytes before this were checked */
    for (size_t i = 0; i < n; i++) {
        const fr_chunk *c = &ch[i];
        if (!(c->start < c->end && c->end <= len)) {
            snprintf(why, sizeof why, "chunk %zu: [%u, %u) of %zu bytes", i, c->start, c->end, len);
            goto out;
        }
        if (i > 0 && !(c->start > ch[i - 1].start && c->end > ch[i - 1].end)) {
            snprintf(why, sizeof why, "chunk %zu [%u, %u) after [%u, %u): not increasing", i, c->start,
                     c->end, ch[i - 1].start, ch[i - 1].end);
            goto out;
        }
        if (blank((unsigned char)text[c->start]) || blank((unsigned char)text[c->end - 1])) {
            snprintf(why, sizeof why, "chunk %zu [%u, %u): starts or ends on a blank", i, c->start, c->end);
            goto out;
        }
        if (!cs[c->start] || !cs[c->end]) {
            snprintf(why, sizeof why, "chunk %zu [%u, %u): inside a UTF-8 character", i, c->start, c->end);
            goto out;
        }
        /* what lies between the previous chunk's end and this start is blank */
        for (size_t k = covered; k < c->start; k++)
            if (!blank((unsigned char)text[k])) {
                snprintf(why, sizeof why, "byte %zu (0x%02x) before chunk %zu is in no chunk", k,
                         (unsigned char)text[k], i);
                goto out;
            }
        if (c->end > covered) covered = c->end;
        bool one_char = c->start + ref_char_len((const unsigned char *)text + c->start, len - c->start) == c->end;
        if (c->tokens > size && !one_char) {
            snprintf(why, sizeof why, "chunk %zu [%u, %u): %d tokens > size %d", i, c->start, c->end,
                     c->tokens, size);
            goto out;
        }
        if (wc) {
            int64_t t = span_w(wc, text, c->start, c->end);
            if (t != c->tokens) {
                snprintf(why, sizeof why, "chunk %zu [%u, %u): says %d tokens, its bytes weigh %lld", i,
                         c->start, c->end, c->tokens, (long long)t);
                goto out;
            }
        }
        if (i > 0 && c->start < ch[i - 1].end) {
            if (overlap == 0) {
                snprintf(why, sizeof why, "chunks %zu and %zu share [%u, %u) with overlap 0", i - 1, i,
                         c->start, ch[i - 1].end);
                goto out;
            }
            if (wc) {
                int64_t t = span_w(wc, text, c->start, ch[i - 1].end);
                if (t > overlap) {
                    snprintf(why, sizeof why, "chunks %zu and %zu share %lld tokens > overlap %d", i - 1, i,
                             (long long)t, overlap);
                    goto out;
                }
            }
        }
    }
    for (size_t k = covered; k < len; k++)
        if (!blank((unsigned char)text[k])) {
            snprintf(why, sizeof why, "byte %zu (0x%02x) after the last chunk is in no chunk", k,
                     (unsigned char)text[k]);
            goto out;
        }
    ok = true;
out:
    free(cs);
    return ok;
}

/* Chunk, check, and return the chunks (caller fr_frees) in *out. */
static size_t run(const char *text, size_t len, int32_t size, int32_t overlap, fr_count_tokens_fn f,
                  void *ud, const wcount *wc, fr_chunk **out, int line) {
    fr_chunk *ch = NULL;
    size_t n = 0;
    int rc = fr__chunk_text(text, len, size, overlap, f, ud, &ch, &n);
    CHECK_MSG(rc == 0, "line %d: fr__chunk_text: %d %s", line, rc, fr_errdetail());
    bool ok = invariants(text, len, size, overlap, ch, n, wc);
    CHECK_MSG(ok, "line %d: size %d overlap %d: %s", line, size, overlap, why);
    if (out) *out = ch;
    else fr_free(ch);
    return n;
}
#define RUN(text, size, overlap, f, ud, wc, out) \
    run((text), strlen(text), (size), (overlap), (f), (ud), (wc), (out), __LINE__)

/* chunk i's text equals want */
static bool chunk_is(const char *text, const fr_chunk *c, const char *want) {
    size_t n = strlen(want);
    return c->end - c->start == n && !memcmp(text + c->start, want, n);
}
#define CHECK_CHUNK(text, c, want)                                                                  \
    CHECK_MSG(chunk_is((text), (c), (want)), "chunk [%u, %u) is \"%.*s\", want \"%s\"", (c)->start, \
              (c)->end, (int)((c)->end - (c)->start), (text) + (c)->start, (want))

/* ---- atoms (make_atoms) ---- */

typedef struct atoms {
    atom *a;
    size_t n;
} atoms;

static atoms atoms_of(const char *text, int32_t size, fr_count_tokens_fn f, void *ud) {
    chunker ck = {.text = text, .len = strlen(text), .size = size, .count = f, .ud = ud};
    ck.cache = fr_calloc(CACHE_SLOTS, sizeof *ck.cache);
    int rc = make_atoms(&ck);
    CHECK_MSG(rc == 0, "make_atoms: %d", rc);
    fr_free(ck.cache);
    return (atoms){ck.atoms, ck.n_atoms};
}

/* The strength after the atom whose word part is `word` (the first one). */
static int brk_after(const char *text, const char *word) {
    atoms as = atoms_of(text, 256, count_one, NULL);
    int b = -1;
    size_t wl = strlen(word);
    for (size_t i = 0; i < as.n; i++)
        if (as.a[i].end - as.a[i].start == wl && !memcmp(text + as.a[i].start, word, wl)) {
            b = as.a[i].brk;
            break;
        }
    fr_free(as.a);
    return b;
}

static void test_utf8_len(void) {
    /* every 1-, 2- and 3-byte prefix, and the 4th byte at its edges */
    static const unsigned char fourth[] = {0x00, 0x41, 0x7F, 0x80, 0x9F, 0xA0, 0xBF, 0xC0, 0xF0, 0xFF};
    long bad = 0;
    unsigned char s[4];
    for (unsigned a = 0; a < 256; a++) {
        s[0] = (unsigned char)a;
        if (fr__utf8_char_len(s, 1) != 1) bad++;
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (unsigned char)b;
            if (fr__utf8_char_len(s, 2) != ref_char_len(s, 2)) bad++;
            for (unsigned c = 0; c < 256; c++) {
                s[2] = (unsigned char)c;
                if (fr__utf8_char_len(s, 3) != ref_char_len(s, 3)) bad++;
                if (a < 0xF0 || a > 0xF4 || b < 0x80 || b > 0xBF) continue;
                for (size_t d = 0; d < sizeof fourth; d++) {
                    s[3] = fourth[d];
                    if (fr__utf8_char_len(s, 4) != ref_char_len(s, 4)) bad++;
                }
            }
        }
    }
    CHECK_INT(bad, 0);
    CHECK_INT(fr__utf8_char_len((const unsigned char *)"\xe4\xb8\xad", 3), 3);     /* 中 */
    CHECK_INT(fr__utf8_char_len((const unsigned char *)"\xe4\xb8\xad", 2), 1);     /* cut short */
    CHECK_INT(fr__utf8_char_len((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4); /* 😀 */
    CHECK_INT(fr__utf8_char_len((const unsigned char *)"\xc0\x80", 2), 1);         /* overlong */
    CHECK_INT(fr__utf8_char_len((const unsigned char *)"\xed\xa0\x80", 3), 1);     /* surrogate */
    CHECK_INT(fr__utf8_char_len((const unsigned char *)"\xf4\x90\x80\x80", 4), 1); /* > U+10FFFF */
}

static void test_strengths(void) {
    CHECK_INT(brk_after("a b", "a"), BRK_WORD);
    CHECK_INT(brk_after("a, b", "a,"), BRK_CLAUSE);
    CHECK_INT(brk_after("a; b", "a;"), BRK_CLAUSE);
    CHECK_INT(brk_after("a: b", "a:"), BRK_CLAUSE);
    CHECK_INT(brk_after("a. b", "a."), BRK_SENT);
    CHECK_INT(brk_after("a! b", "a!"), BRK_SENT);
    CHECK_INT(brk_after("a? b", "a?"), BRK_SENT);
    CHECK_INT(brk_after("a\xe2\x80\xa6 b", "a\xe2\x80\xa6"), BRK_SENT);                  /* … */
    CHECK_INT(brk_after("(a.) b", "(a.)"), BRK_SENT);
    CHECK_INT(brk_after("\"a.\" b", "\"a.\""), BRK_SENT);
    CHECK_INT(brk_after("'a?') b", "'a?')"), BRK_SENT);
    CHECK_INT(brk_after("\xe2\x80\x9c" "a.\xe2\x80\x9d b", "\xe2\x80\x9c" "a.\xe2\x80\x9d"), BRK_SENT); /* “a.” */
    CHECK_INT(brk_after("a.\xe2\x80\x99 b", "a.\xe2\x80\x99"), BRK_SENT);                /* a.’ */
    CHECK_INT(brk_after("a!\xc2\xbb b", "a!\xc2\xbb"), BRK_SENT);                        /* a!» */
    CHECK_INT(brk_after("a,) b", "a,)"), BRK_CLAUSE);
    CHECK_INT(brk_after(") b", ")"), BRK_WORD);             /* only closers: a word */
    CHECK_INT(brk_after("a.b c", "a.b"), BRK_WORD);         /* the mark must end the word */
    CHECK_INT(brk_after("a\nb", "a"), BRK_LINE);
    CHECK_INT(brk_after("a.\nb", "a."), BRK_LINE);          /* the line beats the sentence */
    CHECK_INT(brk_after("a \r\n b", "a"), BRK_LINE);
    CHECK_INT(brk_after("a\n\nb", "a"), BRK_PARA);
    CHECK_INT(brk_after("a\n \t\n b", "a"), BRK_PARA);      /* a blank line with blanks on it */
    CHECK_INT(brk_after("a\n# Title", "a"), BRK_PARA);      /* a Markdown heading */
    CHECK_INT(brk_after("a\n```c", "a"), BRK_PARA);         /* a fence */
    CHECK_INT(brk_after("a\n~~~", "a"), BRK_PARA);
    CHECK_INT(brk_after("a\n``b", "a"), BRK_LINE);          /* not a fence */
    CHECK_INT(brk_after("a b", "b"), BRK_PARA);             /* the end of the text */
    CHECK_INT(brk_after("a b  \n", "b"), BRK_PARA);
    /* CJK: 。！？ end an atom without a blank; closers after them stay with it */
    const char *cjk = "\xe4\xbd\xa0\xe5\xa5\xbd\xe3\x80\x82\xe4\xbb\x96\xef\xbc\x81\xe5\x90\x97\xef\xbc\x9f\xe5\xa5\xbd";
    atoms as = atoms_of(cjk, 256, count_one, NULL);  /* 你好。他！吗？好 */
    CHECK_INT(as.n, 4);
    if (as.n == 4) {
        CHECK_INT(as.a[0].end - as.a[0].start, 9);
        CHECK_INT(as.a[0].brk, BRK_SENT);
        CHECK_INT(as.a[1].end - as.a[1].start, 6);
        CHECK_INT(as.a[1].brk, BRK_SENT);
        CHECK_INT(as.a[2].brk, BRK_SENT);
        CHECK_INT(as.a[3].brk, BRK_PARA);
    }
    fr_free(as.a);
    /* 「你好。」他说。 and 你好。）」x: the closers belong to the first atom */
    const char *q = "\xe3\x80\x8c\xe4\xbd\xa0\xe5\xa5\xbd\xe3\x80\x82\xe3\x80\x8d\xe4\xbb\x96\xe8\xaf\xb4\xe3\x80\x82";
    as = atoms_of(q, 256, count_one, NULL);
    CHECK_INT(as.n, 2);
    if (as.n == 2) {
        CHECK_INT(as.a[0].end, 15);
        CHECK_INT(as.a[0].brk, BRK_SENT);
    }
    fr_free(as.a);
    const char *q2 = "\xe4\xbd\xa0\xe3\x80\x82\xef\xbc\x89\xe3\x80\x8d\"x";
    as = atoms_of(q2, 256, count_one, NULL);
    CHECK_INT(as.n, 2);
    if (as.n == 2) {
        CHECK_INT(as.a[0].end, 13);
        CHECK_INT(as.a[0].brk, BRK_SENT);
        CHECK_INT(as.a[1].end - as.a[1].start, 1);
    }
    fr_free(as.a);
    /* a full stop in the middle of a word with a blank before the next */
    CHECK_INT(brk_after("\xe5\xa5\xbd\xe3\x80\x82 b", "\xe5\xa5\xbd\xe3\x80\x82"), BRK_SENT);
    /* an invalid byte or a cut-short sequence is a character: no stop */
    as = atoms_of("a\xe3\x80 b\xe3", 256, count_one, NULL);
    CHECK_INT(as.n, 2);
    fr_free(as.a);
}

/* Words w0 w1 ... w29, one token each, marks after some of them. */
static void words(char *buf, size_t cap, int n, const char *const *after) {
    size_t pos = 0;
    for (int i = 0; i < n; i++) {
        const char *sep = after && after[i] ? after[i] : " ";
        pos += (size_t)snprintf(buf + pos, cap - pos, "w%d%s", i, i == n - 1 ? "" : sep);
    }
}

/* The first chunk of the text (size 16, overlap 0, a token per word) ends
 * with `last`. */
static void cut_at(const char *const *after, const char *last, int line) {
    char buf[1024];
    words(buf, sizeof buf, 30, after);
    fr_chunk *ch = NULL;
    size_t n = run(buf, strlen(buf), 16, 0, count_one, NULL, NULL, &ch, line);
    bool ok = n >= 2;
    if (ok) {
        size_t l = strlen(last);
        ok = ch[0].start == 0 && ch[0].end >= l && !memcmp(buf + ch[0].end - l, last, l);
    }
    CHECK_MSG(ok, "line %d: first chunk \"%.*s\", want it to end with \"%s\"", line,
              n ? (int)(ch[0].end - ch[0].start) : 0, buf, last);
    fr_free(ch);
}

static void test_boundaries(void) {
    /* 30 one-token words, size 16: the first chunk could take w0..w15;
     * the atoms that fill at least half are w7..w15 (run >= 8). */
    const char *a[30] = {0};
    cut_at(a, "w15", __LINE__);             /* words only: the latest */
    a[4] = ". ";
    cut_at(a, "w15", __LINE__);             /* a sentence before the half does not count */
    a[4] = NULL;
    a[8] = ", ";
    cut_at(a, "w8,", __LINE__);             /* clause > word */
    a[12] = ". ";
    cut_at(a, "w12.", __LINE__);            /* sentence > clause */
    a[9] = ". ";
    cut_at(a, "w12.", __LINE__);            /* equal: the latest */
    a[10] = "\n";
    cut_at(a, "w10", __LINE__);             /* line > sentence */
    a[7] = "\n\n";
    cut_at(a, "w7", __LINE__);              /* paragraph > line */
    a[13] = "\n\n";
    cut_at(a, "w13", __LINE__);             /* equal paragraphs: the latest */
    a[15] = ".\n\n";
    cut_at(a, "w15.", __LINE__);            /* at the very end of what fits */
    a[15] = NULL;
    a[16] = ".\n\n";                        /* w16 does not fit: not a candidate */
    cut_at(a, "w13", __LINE__);

    /* a whole text that fits is one chunk, whatever its boundaries */
    fr_chunk *ch = NULL;
    const char *t = "One. Two.\n\nThree, four\nfive.";
    CHECK_INT(RUN(t, 16, 0, count_one, NULL, NULL, &ch), 1);
    if (ch) CHECK_CHUNK(t, &ch[0], t);
    fr_free(ch);
    /* leading and trailing blanks are outside every chunk */
    t = "  \n\t hello world \n\n ";
    CHECK_INT(RUN(t, 16, 0, count_one, NULL, NULL, &ch), 1);
    if (ch) CHECK_CHUNK(t, &ch[0], "hello world");
    fr_free(ch);
}

static void test_overlap(void) {
    char buf[1024];
    fr_chunk *ch = NULL;
    /* words only, overlap 4: each chunk after the first starts 4 words
     * before the previous end: w0..w15, w12..w27, w24..w29 */
    words(buf, sizeof buf, 30, NULL);
    size_t n = RUN(buf, 16, 4, count_one, NULL, NULL, &ch);
    CHECK_INT(n, 3);
    if (n == 3) {
        CHECK_CHUNK(buf, &ch[0], "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15");
        CHECK_CHUNK(buf, &ch[1], "w12 w13 w14 w15 w16 w17 w18 w19 w20 w21 w22 w23 w24 w25 w26 w27");
        CHECK_CHUNK(buf, &ch[2], "w24 w25 w26 w27 w28 w29");
        CHECK_INT(ch[1].tokens, 16);
    }
    fr_free(ch);
    /* overlap 0: w0..w15, w16..w29 */
    n = RUN(buf, 16, 0, count_one, NULL, NULL, &ch);
    CHECK_INT(n, 2);
    if (n == 2) CHECK_INT(ch[1].start, strstr(buf, "w16") - buf);
    fr_free(ch);
    /* overlap 8 with a sentence ending at w9 and a line after w14: the
     * cut is after w14 (line); the overlap w7..w14 starts instead at w10,
     * where a sentence begins with 5 of its 8 tokens still after it */
    const char *a[30] = {0};
    a[9] = ". ";
    a[14] = "\n";
    words(buf, sizeof buf, 30, a);
    n = RUN(buf, 16, 8, count_one, NULL, NULL, &ch);
    CHECK(n >= 2);
    if (n >= 2) {
        CHECK_MSG(!memcmp(buf + ch[0].end - 3, "w14", 3), "chunk 0 ends %.3s", buf + ch[0].end - 3);
        CHECK_INT(ch[1].start, strstr(buf, "w10") - buf);
    }
    fr_free(ch);
    /* a sentence that begins too late in the overlap (fewer than half its
     * tokens after it) is not used: sentence at w12, line at w14 */
    memset(a, 0, sizeof a);
    a[12] = ". ";
    a[14] = "\n";
    words(buf, sizeof buf, 30, a);
    n = RUN(buf, 16, 8, count_one, NULL, NULL, &ch);
    if (n >= 2) CHECK_INT(ch[1].start, strstr(buf, "w7 ") - buf);
    fr_free(ch);
    /* the overlap shrinks so that the next atom fits: 16 one-byte words,
     * then a word of 12 bytes (one token a byte), size 16, overlap 8: the
     * second chunk is 4 words of overlap + the long word = 16 tokens */
    wcount wb;
    w_bytes(&wb);
    const char *t = "a a a a a a a a a a a a a a a a bbbbbbbbbbbb a a";
    n = RUN(t, 16, 8, count_w, &wb, &wb, &ch);
    CHECK(n >= 2);
    if (n >= 2) {
        CHECK_CHUNK(t, &ch[0], "a a a a a a a a a a a a a a a a");
        CHECK_CHUNK(t, &ch[1], "a a a a bbbbbbbbbbbb");
        CHECK_INT(ch[1].tokens, 16);
    }
    fr_free(ch);
    /* the overlap goes entirely when the next atom alone fills a chunk */
    t = "a a a a a a a a a a a a a a a a bbbbbbbbbbbbbbbb a";
    n = RUN(t, 16, 8, count_w, &wb, &wb, &ch);
    CHECK_INT(n, 3);
    if (n == 3) CHECK_CHUNK(t, &ch[1], "bbbbbbbbbbbbbbbb");
    fr_free(ch);
}

static void test_long_atoms(void) {
    wcount wb, wc;
    w_bytes(&wb);
    w_chars(&wc);
    fr_chunk *ch = NULL;
    /* 1000 'a', a token a byte, size 16: pieces of 8 bytes, two a chunk */
    char *t = malloc(4096);
    memset(t, 'a', 1000);
    t[1000] = 0;
    size_t n = RUN(t, 16, 0, count_w, &wb, &wb, &ch);
    CHECK_INT(n, 63);
    bool all16 = true;
    for (size_t i = 0; i + 1 < n; i++) all16 &= ch[i].end - ch[i].start == 16 && ch[i].tokens == 16;
    CHECK(all16);
    fr_free(ch);
    /* the same with overlap: no whole atom of the previous chunk fits in
     * 4 tokens, so the pieces follow each other */
    n = RUN(t, 16, 4, count_w, &wb, &wb, &ch);
    CHECK_INT(n, 63);
    fr_free(ch);
    /* overlap 8: one piece (8 tokens) of overlap */
    n = RUN(t, 16, 8, count_w, &wb, &wb, &ch);
    CHECK_INT(n, 124);
    if (n > 2) CHECK_INT(ch[1].start, 8);
    fr_free(ch);
    /* 300 × é (2 bytes), a token a byte: every cut on an even offset */
    for (int i = 0; i < 300; i++) memcpy(t + 2 * i, "\xc3\xa9", 2);
    t[600] = 0;
    RUN(t, 16, 0, count_w, &wb, &wb, NULL);
    RUN(t, 17, 3, count_w, &wb, &wb, NULL);
    RUN(t, 16, 0, count_w, &wc, &wc, NULL);
    /* 200 × 😀 (4 bytes), a token a byte, size 17: pieces of 2 emoji */
    for (int i = 0; i < 200; i++) memcpy(t + 4 * i, "\xf0\x9f\x98\x80", 4);
    t[800] = 0;
    n = RUN(t, 17, 0, count_w, &wb, &wb, &ch);
    CHECK_INT(n, 50);
    if (n == 50) CHECK_INT(ch[0].end, 16);
    fr_free(ch);
    /* mixed: valid, invalid and cut-short sequences in one long word */
    size_t pos = 0;
    for (int i = 0; i < 100; i++) {
        static const char *const parts[] = {"x", "\xc3\xa9", "\x80", "\xe4\xb8\xad", "\xff", "\xe4\xb8",
                                            "\xf0\x9f\x98\x80", "\xf0\x9f"};
        const char *p = parts[i % 8];
        memcpy(t + pos, p, strlen(p));
        pos += strlen(p);
    }
    t[pos] = 0;
    for (int32_t size = 16; size < 40; size += 7) {
        RUN(t, size, 0, count_w, &wb, &wb, NULL);
        RUN(t, size, size / 2, count_w, &wb, &wb, NULL);
        RUN(t, size, size / 3, count_w, &wc, &wc, NULL);
    }
    /* the cuts inside a long word are the weakest boundary: a sentence of
     * 34 tokens (size 64, a token a character), then a word of 101 é cut
     * in pieces of 32 bytes (16 tokens): 34 + 16 fit, and the cut is after
     * the sentence, not after the piece (whose word ends the text) */
    pos = 0;
    memset(t, 'x', 33);
    memcpy(t + 33, ". ", 2);
    pos = 35;
    for (int i = 0; i < 101; i++) memcpy(t + pos, "\xc3\xa9", 2), pos += 2;
    t[pos] = 0;
    n = RUN(t, 64, 0, count_w, &wc, &wc, &ch);
    CHECK(n >= 2);
    if (n >= 2) CHECK_INT(ch[0].end, 34);
    fr_free(ch);
    /* a long word among short ones, counted one token a call (so the
     * whole word is 1 token and never split): one chunk, no pieces */
    memset(t, 'z', 2000);
    t[2000] = 0;
    CHECK_INT(RUN(t, 16, 0, count_one, NULL, NULL, NULL), 1);
    free(t);

    /* one character counted as more than size is a chunk of its own */
    wcount wh;
    w_bytes(&wh);
    wh.w['~'] = 40;
    const char *h = "ab ~ cd";
    n = RUN(h, 16, 0, count_w, &wh, &wh, &ch);
    CHECK_INT(n, 3);
    if (n == 3) {
        CHECK_CHUNK(h, &ch[1], "~");
        CHECK_INT(ch[1].tokens, 40);
    }
    fr_free(ch);
    h = "abcdefghij~klmnopqrstuvwxyz0123456789";     /* inside a long word */
    n = RUN(h, 16, 0, count_w, &wh, &wh, &ch);
    bool found = false;
    for (size_t i = 0; i < n; i++) found |= chunk_is(h, &ch[i], "~") && ch[i].tokens == 40;
    CHECK(found);
    fr_free(ch);
    RUN(h, 16, 8, count_w, &wh, &wh, NULL);
    RUN("~~~~ ~ ~~ a b c ~", 16, 4, count_w, &wh, &wh, NULL);
    /* halving a piece of [1-byte][3-byte] characters: 2 bytes round up to
     * the whole piece again; the first character must go alone (this
     * looped forever once) */
    wcount wx;
    w_bytes(&wx);
    wx.w[0x80] = 20;
    n = RUN("\x80\xe4\xb8\xad", 16, 0, count_w, &wx, &wx, &ch);
    CHECK_INT(n, 2);
    if (n == 2) CHECK_INT(ch[0].end, 1);
    fr_free(ch);
    RUN("\x80\xe4\xb8\xad\x80\xf0\x9f\x98\x80\x80\x80\xe4\xb8\xad", 16, 4, count_w, &wx, &wx, NULL);
    /* a heavy 3-byte character */
    wh.w[0xe4] = 30;
    RUN("\xe4\xb8\xad\xe4\xb8\xad a \xe4\xb8\xad b", 16, 8, count_w, &wh, &wh, NULL);
}

static void test_cjk(void) {
    wcount wc;
    w_chars(&wc);
    fr_chunk *ch = NULL;
    /* sentences of 1..9 characters + 。, a token a character, no blanks:
     * every cut is right after a terminator (each atom is a sentence) */
    char t[8192];
    size_t pos = 0;
    static const char *const stops[] = {"\xe3\x80\x82", "\xef\xbc\x81", "\xef\xbc\x9f"};
    for (int s = 0; s < 60; s++) {
        for (int c = 0; c <= s % 9; c++) memcpy(t + pos, "\xe5\xad\x97", 3), pos += 3; /* 字 */
        memcpy(t + pos, stops[s % 3], 3), pos += 3;
    }
    t[pos] = 0;
    size_t n = run(t, pos, 16, 0, count_w, &wc, &wc, &ch, __LINE__);
    CHECK(n > 5);
    bool at_stop = true;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *e = (const unsigned char *)t + ch[i].end - 3;
        at_stop &= is_cjk_stop(e, 3);
    }
    CHECK(at_stop);
    fr_free(ch);
    run(t, pos, 20, 6, count_w, &wc, &wc, NULL, __LINE__);
    /* one CJK sentence longer than a chunk: cut into pieces */
    pos = 0;
    for (int c = 0; c < 100; c++) memcpy(t + pos, "\xe5\xad\x97", 3), pos += 3;
    memcpy(t + pos, "\xe3\x80\x82", 3), pos += 3;
    t[pos] = 0;
    n = run(t, pos, 16, 0, count_w, &wc, &wc, NULL, __LINE__);
    CHECK(n >= 7);
    /* mixed: English words and CJK, blank-separated and not */
    const char *m = "Hello world. \xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c\xe3\x80\x82\xe5\x86\x8d"
                    "\xe8\xa7\x81\xef\xbc\x81 Goodbye, world! \xe3\x80\x8c\xe5\xa5\xbd\xe3\x80\x82\xe3\x80\x8d"
                    "\xe4\xbb\x96\xe8\xaf\xb4\xe3\x80\x82 The end.";
    RUN(m, 16, 0, count_w, &wc, &wc, NULL);
    RUN(m, 16, 8, count_w, &wc, &wc, NULL);
    RUN(m, 16, 4, count_one, NULL, NULL, NULL);
}

/* The cache: every atom's count equals a direct call on its bytes, on a
 * text of thousands of distinct words (colliding slots, lengths around
 * the cache's limit, prefixes of each other) counted by a hash. */
static void test_cache(void) {
    size_t cap = 1 << 20, pos = 0;
    char *t = malloc(cap);
    uint32_t x = 12345;
    for (int i = 0; i < 30000 && pos + 64 < cap; i++) {
        x = x * 1664525u + 1013904223u;
        int len = 1 + (int)((x >> 8) % 30);            /* 1..30: both sides of CACHE_WORD */
        uint32_t id = (x >> 16) % 50;                  /* 50 stems × 30 lengths */
        for (int k = 0; k < len; k++) t[pos++] = (char)('a' + (id >> (k % 12)) % 26);
        t[pos++] = (x >> 3) % 7 ? ' ' : '\n';
    }
    t[pos] = 0;
    hash_calls = 0;
    atoms as = atoms_of(t, 8192, count_hash, NULL);
    long bad = 0;
    for (size_t i = 0; i < as.n; i++)
        if (as.a[i].tokens != hash_tokens(t + as.a[i].start, as.a[i].end - as.a[i].start)) bad++;
    CHECK_INT(bad, 0);
    CHECK_INT(as.n, 30000);
    CHECK_MSG(hash_calls < (long)as.n, "the cache saved no call: %ld calls for %zu atoms", hash_calls, as.n);
    fr_free(as.a);
    /* a repetitive text: one call per distinct short word */
    pos = 0;
    for (int i = 0; i < 5000; i++) pos += (size_t)snprintf(t + pos, cap - pos, "%s ", i % 3 ? "the" : "cat");
    t[pos] = 0;
    one_calls = 0;
    fr_chunk *ch = NULL;
    size_t n = RUN(t, 64, 8, count_one, NULL, NULL, &ch);
    CHECK_INT(one_calls, 2);
    CHECK(n > 1);
    fr_free(ch);
    free(t);
}

static void test_random(void) {
    static const char *const parts[] = {
        "the", "a", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "unbelievably",
        " ", " ", " ", " ", " ", "  ", "\t", "\n", "\n\n", "\r\n", ". ", ", ", "; ", ": ", "! ", "? ",
        ".", ")", "\"", "\xe2\x80\x9d", "\xe2\x80\xa6", "\n# ", "\n```\n", "\xc3\xa9", "\xe4\xb8\xad",
        "\xe3\x80\x82", "\xef\xbc\x81", "\xe3\x80\x8d", "\xf0\x9f\x98\x80", "\x80", "\xff", "\xe4\xb8",
        "~", "supercalifragilisticexpialidocious", "x", "\f", "\v", "0123456789"};
    const int n_parts = (int)(sizeof parts / sizeof parts[0]);
    char *t = malloc(1 << 16);
    uint32_t x = 777;
    int bad_cases = 0;
    for (int c = 0; c < 3000; c++) {
        x = x * 1664525u + 1013904223u;
        size_t target = (x >> 8) % (c < 2500 ? 600 : 8000), pos = 0;
        while (pos < target) {
            x = x * 1664525u + 1013904223u;
            const char *p = parts[(x >> 10) % (uint32_t)n_parts];
            size_t l = strlen(p);
            memcpy(t + pos, p, l);
            pos += l;
        }
        x = x * 1664525u + 1013904223u;
        int32_t size = 16 + (int32_t)((x >> 8) % (c % 10 == 0 ? 400 : 48));
        x = x * 1664525u + 1013904223u;
        int32_t overlap = (x >> 9) % 3 == 0 ? 0 : (int32_t)((x >> 12) % (uint32_t)(size / 2 + 1));
        wcount w;
        switch (c % 4) {
        case 0: w_bytes(&w); break;
        case 1: w_chars(&w); break;
        default:                /* random weights 0..3, some heavy bytes */
            for (int i = 0; i < 256; i++) {
                x = x * 1664525u + 1013904223u;
                w.w[i] = (int32_t)((x >> 20) % 4);
            }
            w.w['~'] = size + 5;
            w.w[0xf0] = size * 2;
            break;
        }
        fr_chunk *ch = NULL;
        size_t n = 0;
        int rc = fr__chunk_text(t, pos, size, overlap, count_w, &w, &ch, &n);
        if (rc || !invariants(t, pos, size, overlap, ch, n, &w)) {
            if (bad_cases++ < 3)
                fprintf(stderr, "  random case %d (%zu bytes, size %d, overlap %d): rc %d: %s\n", c, pos, size,
                        overlap, rc, rc ? fr_errdetail() : why);
        }
        fr_free(ch);
        /* the same text with a non-additive count: all but the recount */
        rc = fr__chunk_text(t, pos, size, overlap, count_hash, NULL, &ch, &n);
        if (rc || !invariants(t, pos, size, overlap, ch, n, NULL)) {
            if (bad_cases++ < 3)
                fprintf(stderr, "  random case %d (hash count): rc %d: %s\n", c, rc, rc ? fr_errdetail() : why);
        }
        fr_free(ch);
    }
    CHECK_INT(bad_cases, 0);
    free(t);
}

static void test_errors(void) {
    fr_chunk *ch = (fr_chunk *)1;
    size_t n = 99;
    const char *t = "some text here";
    CHECK_INT(fr__chunk_text(t, strlen(t), 15, 0, count_one, NULL, &ch, &n), FR_EINVAL);
    CHECK(ch == NULL && n == 0);
    CHECK_INT(fr__chunk_text(t, strlen(t), 8193, 0, count_one, NULL, &ch, &n), FR_EINVAL);
    CHECK_INT(fr__chunk_text(t, strlen(t), -1, 0, count_one, NULL, &ch, &n), FR_EINVAL);
    CHECK_INT(fr__chunk_text(t, strlen(t), 16, -1, count_one, NULL, &ch, &n), FR_EINVAL);
    CHECK_INT(fr__chunk_text(t, strlen(t), 16, 9, count_one, NULL, &ch, &n), FR_EINVAL);
    CHECK_INT(fr__chunk_text(t, strlen(t), 17, 9, count_one, NULL, &ch, &n), FR_EINVAL);
    CHECK(strstr(fr_errdetail(), "chunk_overlap") != NULL);
    CHECK_INT(fr__chunk_text(t, (size_t)FR_CHUNK_MAX_TEXT + 1, 16, 0, count_one, NULL, &ch, &n), FR_EINVAL);
    /* the limits themselves are accepted */
    CHECK_INT(fr__chunk_text(t, strlen(t), 16, 8, count_one, NULL, &ch, &n), 0);
    CHECK_INT(n, 1);
    fr_free(ch);
    CHECK_INT(fr__chunk_text(t, strlen(t), 8192, 4096, count_one, NULL, &ch, &n), 0);
    fr_free(ch);
    /* blank and empty texts have no chunks */
    CHECK_INT(fr__chunk_text(" \n\t\r\n  ", 7, 16, 0, count_one, NULL, &ch, &n), 0);
    CHECK(ch == NULL && n == 0);
    CHECK_INT(fr__chunk_text("", 0, 16, 0, count_one, NULL, &ch, &n), 0);
    CHECK(ch == NULL && n == 0);
    /* the count's error comes back as it is, at any call */
    const char *long_t = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron "
                         "pi rho sigma tau upsilon phi chi psi omega and a very long word: "
                         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    int bad = 0;
    for (fail_at = 1; fail_at < 40; fail_at++) {
        fail_calls = 0;
        int rc = fr__chunk_text(long_t, strlen(long_t), 16, 4, count_fail, NULL, &ch, &n);
        if (fail_calls < fail_at) {         /* no call failed: done */
            fr_free(ch);
            break;
        }
        if (rc != FR_EIO || ch || n) bad++;
    }
    CHECK_INT(bad, 0);
    CHECK(fail_at > 20);
    /* every allocation failing in turn: FR_ENOMEM, nothing leaked (ASan) */
    char *big = malloc(20000);
    for (int i = 0; i < 20000; i++) big[i] = i % 7 == 6 ? ' ' : 'a' + i % 26;
    int nomem = 0, okays = 0;
    for (long k = 0; k < 40; k++) {
        fr_mem_fail_after(k);
        int rc = fr__chunk_text(big, 20000, 16, 4, count_one, NULL, &ch, &n);
        fr_mem_fail_after(-1);
        if (rc == FR_ENOMEM) {
            nomem++;
            if (ch || n) bad++;
        } else if (rc == 0) {
            okays++;
            fr_free(ch);
        } else bad++;
    }
    free(big);
    CHECK_INT(bad, 0);
    CHECK(nomem > 3 && okays > 0);
}

/* A real paragraph-structured text: typical sizes, overlaps. */
static void test_prose(void) {
    const char *t =
        "# Memory-frugal inference\n\n"
        "frugal serves models on small machines. It maps the weights, loads what a request needs, "
        "and evicts what has not been used for a while; the budget is a number of bytes, not a "
        "count of models.\n\n"
        "Search works the same way: documents are cut into chunks (a few hundred tokens each), "
        "every chunk gets a vector, and a query is answered by keywords and by meaning. \"Does it "
        "scale?\" — to a million chunks on one core, yes.\n"
        "A line of its own.\n\n"
        "```\ncode block\n  indented\n```\n\n"
        "- item one\n- item two, with a comma\n- item three…\n";
    wcount wb, wc;
    w_bytes(&wb);
    w_chars(&wc);
    for (int32_t size = 16; size <= 128; size *= 2)
        for (int32_t ov = 0; ov <= size / 2; ov += size / 8) {
            RUN(t, size, ov, count_w, &wb, &wb, NULL);
            RUN(t, size, ov, count_w, &wc, &wc, NULL);
            RUN(t, size, ov, count_one, NULL, NULL, NULL);
        }
    /* with a token per word and size 16, the heading (3 tokens) is too
     * short to be a chunk of its own: the first chunk ends at the first
     * sentence after it (its 9th token) */
    fr_chunk *ch = NULL;
    size_t n = RUN(t, 16, 0, count_one, NULL, NULL, &ch);
    CHECK(n > 3);
    if (n > 3) CHECK_CHUNK(t, &ch[0], "# Memory-frugal inference\n\nfrugal serves models on small machines.");
    /* size 64: the heading and the paragraph after it (40 tokens), cut at
     * the paragraph's end */
    fr_free(ch);
    n = RUN(t, 64, 0, count_one, NULL, NULL, &ch);
    CHECK(n >= 2);
    if (n >= 2) CHECK_MSG(!memcmp(t + ch[0].end - 10, "of models.", 10), "chunk 0 ends \"%.10s\"", t + ch[0].end - 10);
    fr_free(ch);
}

int main(void) {
    test_utf8_len();
    test_strengths();
    test_boundaries();
    test_overlap();
    test_long_atoms();
    test_cjk();
    test_cache();
    test_random();
    test_errors();
    test_prose();
    return harness_done();
}
