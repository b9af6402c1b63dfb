/*
 * chunk.c — the chunker (chunk.h): atoms, their token counts and the
 * packing of atoms into chunks.
 *
 * Counting every atom with the tokenizer is the cost of this module: a
 * 1 MiB document is ~170,000 words.  Words repeat (a few hundred make up
 * half of any text), so short atoms go through a small direct-mapped
 * cache keyed by their bytes (exact: the bytes are compared), which
 * leaves one tokenizer call per distinct short word and one per long one.
 */
#include "search/chunk.h"

#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/utf8.h"

/* Boundary strengths, weakest first. */
enum { BRK_NONE, BRK_WORD, BRK_CLAUSE, BRK_SENT, BRK_LINE, BRK_PARA };

typedef struct atom {
    uint32_t start, end;        /* the word part: non-blank bytes */
    int32_t tokens;
    uint8_t brk;                /* strength of the boundary after it */
} atom;

#define CACHE_SLOTS 1024        /* power of two */
#define CACHE_WORD 22           /* longest atom the cache keeps, bytes */

typedef struct cache_slot {
    uint8_t len;                /* 0 = empty */
    char bytes[CACHE_WORD];
    int32_t tokens;
} cache_slot;

typedef struct chunker {
    const char *text;
    size_t len;
    int32_t size, overlap;
    fr_count_tokens_fn count;
    void *ud;
    atom *atoms;
    size_t n_atoms, cap_atoms;
    cache_slot *cache;
} chunker;

static inline bool is_blank(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

size_t fr__utf8_char_len(const unsigned char *s, size_t len) {
    int n = fr_utf8_char(s, len, NULL);    /* 0: cut short, -1: invalid */
    return n > 0 ? (size_t)n : 1;
}

static size_t char_len(const chunker *ck, size_t i) {
    return fr__utf8_char_len((const unsigned char *)ck->text + i, ck->len - i);
}

/* 。！？ : a CJK sentence end (also ends an atom without a blank). */
static bool is_cjk_stop(const unsigned char *s, size_t n) {
    return n == 3 && ((s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x82) ||
                      (s[0] == 0xEF && s[1] == 0xBC && (s[2] == 0x81 || s[2] == 0x9F)));
}

/* A closing quote or bracket, which may follow a sentence's end mark:
 * ) ] } " ' ” ’ » and the CJK 〉 》 」 』 】 〕 ） ］ ｝ (the character at
 * s[0..n), n its length). */
static bool is_closer(const unsigned char *s, size_t n) {
    if (n == 1) return s[0] == ')' || s[0] == ']' || s[0] == '}' || s[0] == '"' || s[0] == '\'';
    if (n == 2) return s[0] == 0xC2 && s[1] == 0xBB;
    if (n != 3) return false;
    if (s[0] == 0xE2 && s[1] == 0x80) return s[2] == 0x9D || s[2] == 0x99;
    if (s[0] == 0xE3 && s[1] == 0x80)
        return s[2] == 0x89 || s[2] == 0x8B || s[2] == 0x8D || s[2] == 0x8F || s[2] == 0x91 || s[2] == 0x95;
    return (s[0] == 0xEF && s[1] == 0xBC && (s[2] == 0x89 || s[2] == 0xBD)) ||
           (s[0] == 0xEF && s[1] == 0xBD && s[2] == 0x9D);
}

/* Bytes of the closer that ends s[start..end), or 0. */
static size_t closer_len(const unsigned char *s, size_t start, size_t end) {
    size_t n = end - start;
    if (is_closer(s + end - 1, 1)) return 1;
    if (n >= 2 && is_closer(s + end - 2, 2)) return 2;
    if (n >= 3 && is_closer(s + end - 3, 3)) return 3;
    return 0;
}

/* The strength of the boundary after the word [ws, we), whose blanks end
 * at be. */
static uint8_t classify(const chunker *ck, size_t ws, size_t we, size_t be) {
    const unsigned char *s = (const unsigned char *)ck->text;
    if (be >= ck->len) return BRK_PARA;
    int nl = 0;
    for (size_t i = we; i < be; i++) nl += s[i] == '\n';
    if (nl >= 2) return BRK_PARA;
    if (nl == 1) {
        /* a Markdown heading or code fence opens a new block */
        if (s[be] == '#') return BRK_PARA;
        if (be + 3 <= ck->len && (!memcmp(s + be, "```", 3) || !memcmp(s + be, "~~~", 3))) return BRK_PARA;
        return BRK_LINE;
    }
    size_t e = we, k;
    while (e > ws && (k = closer_len(s, ws, e)) > 0) e -= k;
    if (e == ws) return BRK_WORD;
    unsigned char c = s[e - 1];
    if (c == '.' || c == '!' || c == '?') return BRK_SENT;
    if (e - ws >= 3 && s[e - 3] == 0xE2 && s[e - 2] == 0x80 && c == 0xA6) return BRK_SENT;   /* … */
    if (e - ws >= 3 && is_cjk_stop(s + e - 3, 3)) return BRK_SENT;
    if (c == ',' || c == ';' || c == ':') return BRK_CLAUSE;
    return BRK_WORD;
}

static int count_span(chunker *ck, size_t start, size_t end, int32_t *out) {
    size_t n = end - start;
    const char *p = ck->text + start;
    cache_slot *slot = NULL;
    if (n <= CACHE_WORD) {
        uint32_t h = 2166136261u;
        for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 16777619u;
        slot = &ck->cache[h & (CACHE_SLOTS - 1)];
        if (slot->len == n && !memcmp(slot->bytes, p, n)) {
            *out = slot->tokens;
            return 0;
        }
    }
    int32_t t = 0;
    int rc = ck->count(ck->ud, p, n, &t);
    if (rc) return rc;
    if (t < 0) t = 0;
    if (slot) {
        slot->len = (uint8_t)n;
        memcpy(slot->bytes, p, n);
        slot->tokens = t;
    }
    *out = t;
    return 0;
}

static int push_atom(chunker *ck, size_t start, size_t end, int32_t tokens, uint8_t brk) {
    if (ck->n_atoms == ck->cap_atoms) {
        size_t nc = ck->cap_atoms ? ck->cap_atoms * 2 : 256;
        atom *na = fr_realloc(ck->atoms, nc * sizeof *na);
        if (!na) return FR_ENOMEM;
        ck->atoms = na;
        ck->cap_atoms = nc;
    }
    ck->atoms[ck->n_atoms++] = (atom){(uint32_t)start, (uint32_t)end, tokens, brk};
    return 0;
}

/* Where p + step bytes lands, moved to the next character boundary; at
 * least one character, at most end. */
static size_t advance(const chunker *ck, size_t p, size_t end, size_t step) {
    size_t q = p + char_len(ck, p);
    while (q < end && q - p < step) q += char_len(ck, q);
    return q > end ? end : q;
}

/* A word of more than size tokens: pieces that fit, cut at characters.
 * A piece of size/2 bytes is under size tokens for every tokenizer whose
 * tokens cover at least one byte; if the count says otherwise, the piece
 * is halved until it fits or is one character. */
static int split_long(chunker *ck, size_t start, size_t end, uint8_t brk) {
    size_t step = (size_t)ck->size / 2;
    for (size_t p = start; p < end;) {
        size_t q = advance(ck, p, end, step);
        int32_t t;
        int rc = count_span(ck, p, q, &t);
        if (rc) return rc;
        while (t > ck->size && q - p > char_len(ck, p)) {
            /* advance() rounds up to a character boundary, which can be q
             * again ([1-byte char][3-byte char] halves to 2 bytes, rounded
             * up to 4): then take the first character alone */
            size_t was = q;
            step = (q - p) / 2;
            if (step < 1) step = 1;
            q = advance(ck, p, was, step);
            if (q == was) q = p + char_len(ck, p);
            if ((rc = count_span(ck, p, q, &t))) return rc;
        }
        if ((rc = push_atom(ck, p, q, t, q == end ? brk : BRK_NONE))) return rc;
        p = q;
    }
    return 0;
}

static int make_atoms(chunker *ck) {
    const unsigned char *s = (const unsigned char *)ck->text;
    size_t i = 0, n = ck->len;
    while (i < n && is_blank(s[i])) i++;
    while (i < n) {
        size_t ws = i;
        while (i < n && !is_blank(s[i])) {
            size_t c = char_len(ck, i);
            bool stop = is_cjk_stop(s + i, c);
            i += c;
            if (!stop) continue;
            /* the closing quotes and brackets after it stay with the sentence */
            while (i < n && is_closer(s + i, c = char_len(ck, i))) i += c;
            break;
        }
        size_t we = i;
        while (i < n && is_blank(s[i])) i++;
        uint8_t brk = classify(ck, ws, we, i);
        int32_t t;
        int rc = count_span(ck, ws, we, &t);
        if (!rc) rc = t > ck->size ? split_long(ck, ws, we, brk) : push_atom(ck, ws, we, t, brk);
        if (rc) return rc;
    }
    return 0;
}

/* Where the chunk from atom b (atoms b..e-1 fit) ends: after the
 * strongest boundary among atoms lo..e-1 that fill at least half of the
 * chunk, the latest of equal ones; e-1 if none does. */
static size_t choose_cut(const chunker *ck, size_t b, size_t lo, size_t e) {
    const atom *a = ck->atoms;
    int64_t run = 0;
    size_t best = e - 1;
    int best_brk = -1;
    for (size_t k = b; k < e; k++) {
        run += a[k].tokens;
        if (k >= lo && 2 * run >= ck->size && a[k].brk >= best_brk) {
            best = k;
            best_brk = a[k].brk;
        }
    }
    return best;
}

/* The first atom of the chunk after the one of atoms b..c: the overlap. */
static size_t next_start(const chunker *ck, size_t b, size_t c) {
    const atom *a = ck->atoms;
    size_t j = c + 1;
    if (ck->overlap == 0) return j;
    int64_t ov = 0;
    while (j > b + 1 && ov + a[j - 1].tokens <= ck->overlap) ov += a[--j].tokens;
    /* start the overlap at a sentence when one begins in its second half */
    int64_t rest = ov;
    for (size_t k = j; k <= c && 2 * rest >= ck->overlap; k++) {
        if (k > j && a[k - 1].brk >= BRK_SENT) {
            ov = rest;
            j = k;
            break;
        }
        rest -= a[k].tokens;
    }
    /* the next atom must fit after the overlap */
    while (j <= c && ov + a[c + 1].tokens > ck->size) ov -= a[j++].tokens;
    return j;
}

static int pack(chunker *ck, fr_chunk **out, size_t *n_out) {
    const atom *a = ck->atoms;
    size_t n = ck->n_atoms, cap = 0, nc = 0;
    fr_chunk *ch = NULL;
    size_t b = 0, lo = 0;
    while (b < n) {
        int64_t sum = 0;
        size_t e = b;
        while (e < n && sum + a[e].tokens <= ck->size) sum += a[e++].tokens;
        if (e <= lo) e = lo + 1;        /* one character the tokenizer counts as more than size */
        size_t c = e < n ? choose_cut(ck, b, lo, e) : e - 1;
        if (nc == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            fr_chunk *p = fr_realloc(ch, ncap * sizeof *p);
            if (!p) {
                fr_free(ch);
                return FR_ENOMEM;
            }
            ch = p;
            cap = ncap;
        }
        int64_t t = 0;
        for (size_t k = b; k <= c; k++) t += a[k].tokens;
        ch[nc++] = (fr_chunk){a[b].start, a[c].end, t > INT32_MAX ? INT32_MAX : (int32_t)t};
        if (c + 1 >= n) break;
        b = next_start(ck, b, c);
        lo = c + 1;
    }
    *out = ch;
    *n_out = nc;
    return 0;
}

int fr__chunk_text(const char *text, size_t len, int32_t size, int32_t overlap,
                   fr_count_tokens_fn count, void *ud, fr_chunk **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    if (size < FR_CHUNK_MIN_SIZE || size > FR_CHUNK_MAX_SIZE)
        return fr_errf(FR_EINVAL, "chunk_size: %d, want %d to %d tokens", (int)size, FR_CHUNK_MIN_SIZE,
                       FR_CHUNK_MAX_SIZE);
    if (overlap < 0 || overlap > size / 2)
        return fr_errf(FR_EINVAL, "chunk_overlap: %d, want 0 to %d (half of chunk_size)", (int)overlap,
                       (int)(size / 2));
    if (len > FR_CHUNK_MAX_TEXT) return fr_errf(FR_EINVAL, "text: %zu bytes, at most %u", len, FR_CHUNK_MAX_TEXT);
    chunker ck = {.text = text, .len = len, .size = size, .overlap = overlap, .count = count, .ud = ud};
    if (!(ck.cache = fr_calloc(CACHE_SLOTS, sizeof *ck.cache))) return FR_ENOMEM;
    int rc = make_atoms(&ck);
    if (!rc && ck.n_atoms) rc = pack(&ck, out, n_out);
    fr_free(ck.atoms);
    fr_free(ck.cache);
    return rc;
}
