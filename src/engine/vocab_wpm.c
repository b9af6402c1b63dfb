/*
 * vocab_wpm.c — WordPiece ("bert" vocabularies), as llama.cpp's
 * llm_tokenizer_wpm does it (GGUF.md §5).
 *
 * The converter rewrote the vocabulary: word-initial pieces carry a "▁"
 * (U+2581) prefix, "##" continuation pieces lost their "##", control
 * tokens ([CLS], [SEP], ...) are unchanged.  One raw-text fragment becomes
 * words, then tokens:
 *
 *   1. Normalize, one code point at a time (bytes that are not UTF-8 count
 *      as U+FFFD, so they vanish in step c):
 *      a. strip_accents: canonical decomposition (NFD, utf8proc) of each
 *         code point, and its nonspacing marks (Mn) dropped — what Hugging
 *         Face's BertNormalizer does;
 *      b. whitespace (llama.cpp's set, unicode.h) ends the current word;
 *      c. U+0000, U+FFFD and control characters (Cc, Cf, Co, Cs) vanish;
 *      d. lowercase: simple lowercase mapping (utf8proc_tolower).
 *   2. Split: every punctuation character (P*), every ASCII symbol (S*
 *      below U+007F) and every CJK ideograph (llama.cpp's ranges) is a
 *      word of its own.
 *   3. Each word w: s = "▁" + w; from the left, take the longest prefix of
 *      what is left that is a token (at most max_token_len + 1 bytes, by
 *      bytes as llama.cpp); when no prefix is, the word's tokens are
 *      dropped and it becomes one [UNK].
 * [CLS] ... [SEP] around the whole input is fr_tokenize's business.
 *
 * Keys: tokenizer.ggml.normalizer.lowercase (default true) and
 * .strip_accents (default: the value of lowercase), read by vocab.c.
 *
 * Memory: one word buffer per call, grown as needed (fr_realloc).
 */
#include "base/err.h"
#include "base/mem.h"
#include "engine/unicode.h"
#include "engine/vocab_int.h"

#include <string.h>
#include <utf8proc.h>

/* llama.cpp's is_chinese_char (the CJK ideograph blocks of BERT's
 * tokenizer, with Hugging Face's 0x2B920 where 0x2B820 was meant). */
static bool is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static bool is_control_cat(int cat) {
    return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
           cat == UTF8PROC_CATEGORY_CO || cat == UTF8PROC_CATEGORY_CS;
}

static bool is_punct_cat(int cat) {
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

static bool is_symbol_cat(int cat) {
    return cat >= UTF8PROC_CATEGORY_SM && cat <= UTF8PROC_CATEGORY_SO;
}

/* The current word: "▁" then its bytes. */
typedef struct word {
    char *s;
    size_t n, cap;
} word;

#define WORD_PREFIX 3   /* "▁" */

static int word_put(word *w, const char *p, size_t n) {
    if (w->n + n > w->cap) {
        size_t cap = w->cap ? w->cap : 64;
        while (cap < w->n + n) cap *= 2;
        char *s = fr_realloc(w->s, cap);
        if (!s) return FR_ENOMEM;
        w->s = s;
        w->cap = cap;
    }
    memcpy(w->s + w->n, p, n);
    w->n += n;
    return 0;
}

/* Called with each finished word: s[0..n) is "▁" + word (n > 3). */
typedef int (*word_fn)(void *ctx, const fr_vocab *v, const char *s, size_t n);

static int flush(word *w, const fr_vocab *v, word_fn fn, void *ctx) {
    int rc = 0;
    if (w->n > WORD_PREFIX) rc = fn(ctx, v, w->s, w->n);
    w->n = WORD_PREFIX;
    return rc;
}

/* Steps 1 and 2: call fn for every word of text. */
static int split(const fr_vocab *v, const char *text, size_t len, word_fn fn, void *ctx) {
    word w = {0};
    int rc = word_put(&w, "\xe2\x96\x81", WORD_PREFIX);
    const uint8_t *p = (const uint8_t *)text;
    for (size_t i = 0; i < len && !rc;) {
        size_t k;
        uint32_t c0 = fr__unicode_decode(p + i, len - i, &k);
        i += k;
        if (c0 == FR_CPT_INVALID || c0 > 0x10FFFF) continue;   /* U+FFFD: dropped */
        utf8proc_int32_t d[8];
        utf8proc_ssize_t nd = 1;
        d[0] = (utf8proc_int32_t)c0;
        if (v->strip_accents) {
            int bc = 0;
            nd = utf8proc_decompose_char((utf8proc_int32_t)c0, d, 8, UTF8PROC_DECOMPOSE, &bc);
            if (nd < 1 || nd > 8) nd = 1, d[0] = (utf8proc_int32_t)c0;
        }
        for (utf8proc_ssize_t j = 0; j < nd && !rc; j++) {
            uint32_t c = (uint32_t)d[j];
            if (fr__unicode_is_space(c)) {
                rc = flush(&w, v, fn, ctx);
                continue;
            }
            if (c == 0 || c == 0xFFFD) continue;
            int cat = utf8proc_category((utf8proc_int32_t)c);
            if (is_control_cat(cat)) continue;
            if (v->strip_accents && cat == UTF8PROC_CATEGORY_MN) continue;
            uint32_t lc = v->lowercase ? (uint32_t)utf8proc_tolower((utf8proc_int32_t)c) : c;
            char u[4];
            size_t nu = fr__unicode_encode(lc, u);
            if (is_punct_cat(cat) || (c < 0x7F && is_symbol_cat(cat)) || is_cjk(c)) {
                if (!(rc = flush(&w, v, fn, ctx)) && !(rc = word_put(&w, u, nu)))
                    rc = flush(&w, v, fn, ctx);
            } else {
                rc = word_put(&w, u, nu);
            }
        }
    }
    if (!rc) rc = flush(&w, v, fn, ctx);
    fr_free(w.s);
    return rc;
}

/* Step 3: greedy longest match from the left; [UNK] for a word that
 * cannot be covered. */
static int match_word(void *ctx, const fr_vocab *v, const char *s, size_t n) {
    fr__idvec *out = ctx;
    size_t start = out->n;
    int rc = 0;
    for (size_t i = 0; i < n && !rc;) {
        size_t j = n - i < (size_t)v->max_token_len + 1 ? n : i + v->max_token_len + 1;
        int32_t id = -1;
        for (; j > i; j--)
            if ((id = fr__vocab_lookup(v, s + i, j - i)) >= 0) break;
        if (id < 0) {
            out->n = start;   /* discard the word's tokens */
            break;
        }
        rc = fr__idvec_push(out, id);
        i = j;
    }
    if (!rc && out->n == start && v->unk >= 0) rc = fr__idvec_push(out, v->unk);
    return rc;
}

int fr__vocab_wpm_tokenize(const fr_vocab *v, const char *text, size_t len, fr__idvec *out) {
    return split(v, text, len, match_word, out);
}

typedef struct split_cb {
    void (*cb)(void *ctx, const char *word, size_t len);
    void *ctx;
} split_cb;

static int call_cb(void *ctx, const fr_vocab *v, const char *s, size_t n) {
    (void)v;
    split_cb *c = ctx;
    c->cb(c->ctx, s + WORD_PREFIX, n - WORD_PREFIX);
    return 0;
}

int fr__vocab_wpm_split(const fr_vocab *v, const char *text, size_t len,
                        void (*cb)(void *ctx, const char *word, size_t len), void *ctx) {
    split_cb c = {cb, ctx};
    return split(v, text, len, call_cb, &c);
}
