/*
 * vocab_bpe.c — byte-level BPE ("gpt2" vocabularies) with llama.cpp's
 * pre-tokenizers.
 *
 * 1. Pre-split.  The pre-tokenizer named by tokenizer.ggml.pre is a list of
 *    regexes applied in order; each one splits every existing piece, and
 *    both its matches and the gaps between them become pieces.  A regex
 *    sees one piece at a time, so `$` and look-ahead stop at the piece's
 *    end, as in llama.cpp (std::regex over each piece's range).
 *    We run the regexes with PCRE2 (UTF + UCP, JIT) over a working copy of
 *    the text in which, as llama.cpp does before its regex engines run,
 *    every non-ASCII whitespace character (GGUF.md's \s set) is replaced by
 *    U+000B, and `\s` in the patterns is rewritten to the ASCII class
 *    [\t-\r ]; so \s means exactly llama.cpp's whitespace set.  Bytes of
 *    invalid UTF-8 stand in the working copy as U+FFFD (a symbol, as in
 *    llama.cpp) but keep their own byte in the pieces.
 * 2. Each piece's bytes are mapped through the GPT-2 byte table
 *    (unicode.h) to code points.
 * 3. ignore_merges (llama3 family): a piece that is itself a token is
 *    emitted whole.
 * 4. Otherwise: start from the piece's characters; repeatedly merge the
 *    adjacent pair with the lowest merge rank (ties: leftmost), using a
 *    min-heap and skipping stale pairs, until no pair is a merge.
 * 5. Each symbol is looked up; a symbol that is not a token is emitted as
 *    the tokens of its single bytes where those exist (llama.cpp).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/unicode.h"
#include "engine/vocab_int.h"

#include <string.h>

/* ---- pre-tokenizers ---- */

#define RX_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RX_LLAMA3_A                                                                          \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
#define RX_LLAMA3_B " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_LLAMA3 RX_LLAMA3_A "\\p{N}{1,3}|" RX_LLAMA3_B
#define RX_QWEN2 RX_LLAMA3_A "\\p{N}|" RX_LLAMA3_B
#define RX_CJK "[\xe4\xb8\x80-\xe9\xbe\xa5\xe0\xa0\x80-\xe4\xb8\x80\xea\xb0\x80-\xed\x9f\xbf]+"

typedef struct pretok {
    const char *names;          /* NUL-separated, ends with an empty name */
    bool ignore_merges;
    bool llama3;                /* add_bos defaults to true */
    const char *rx[FR_VOCAB_MAX_REGEX];
} pretok;

static const pretok pretoks[] = {
    {"default\0", false, false,
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", RX_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}},
    {"llama3\0llama-v3\0llama-bpe\0falcon3\0falcon-h1\0pixtral\0", true, true, {RX_LLAMA3}},
    {"dbrx\0smaug-bpe\0", false, false, {RX_LLAMA3}},
    {"qwen2\0deepseek-r1-qwen\0stablelm2\0", false, false, {RX_QWEN2}},
    {"gpt-2\0phi-2\0mpt\0olmo\0gigachat\0", false, false, {RX_GPT2}},
    {"starcoder\0refact\0command-r\0smollm\0codeshell\0exaone\0minerva-7b\0", false, false,
     {"\\p{N}", RX_GPT2}},
    {"falcon\0", false, false,
     {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RX_GPT2, "[0-9][0-9][0-9]"}},
    {"deepseek-coder\0", false, false,
     {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RX_CJK, "\\p{N}"}},
    {"deepseek-llm\0", false, false,
     {"[\\r\\n]",
      "\\s?[A-Za-z\xc2\xb5\xc3\x80-\xc3\x96\xc3\x98-\xc3\xb6\xc3\xb8-\xc6\xba\xc6\xbc-\xc6\xbf"
      "\xc7\x84-\xca\x93\xca\x95-\xca\xaf\xcd\xb0-\xcd\xb3\xcd\xb6\xcd\xb7\xcd\xbb-\xcd\xbd"
      "\xcd\xbf\xce\x86\xce\x88-\xce\x8a\xce\x8c\xce\x8e-\xce\xa1\xce\xa3-\xcf\xb5\xcf\xb7-"
      "\xd2\x81\xd2\x8a-\xd4\xaf\xd4\xb1-\xd5\x96\xe1\x82\xa0-\xe1\x83\x85\xe1\x8e\xa0-\xe1"
      "\x8f\xb5\xe1\x8f\xb8-\xe1\x8f\xbd\xe1\xb2\x90-\xe1\xb2\xba\xe1\xb2\xbd-\xe1\xb2\xbf"
      "\xe1\xb4\x80-\xe1\xb4\xab\xe1\xb5\xab-\xe1\xb5\xb7\xe1\xb5\xb9-\xe1\xb6\x9a\xe1\xb8"
      "\x80-\xe1\xbc\x95\xe1\xbc\x98-\xe1\xbc\x9d\xe1\xbc\xa0-\xe1\xbd\x85\xe1\xbd\x88-\xe1"
      "\xbd\x8d\xe1\xbd\x90-\xe1\xbd\x97\xe1\xbd\x99\xe1\xbd\x9b\xe1\xbd\x9d\xe1\xbd\x9f-"
      "\xe1\xbd\xbd\xe1\xbe\x80-\xe1\xbe\xb4\xe1\xbe\xb6-\xe1\xbe\xbc\xe1\xbe\xbe\xe1\xbf"
      "\x82-\xe1\xbf\x84\xe1\xbf\x86-\xe1\xbf\x8c\xe1\xbf\x90-\xe1\xbf\x93\xe1\xbf\x96-\xe1"
      "\xbf\x9b\xe1\xbf\xa0-\xe1\xbf\xac\xe1\xbf\xb2-\xe1\xbf\xb4\xe1\xbf\xb6-\xe1\xbf\xbc"
      "\xe2\x84\x82\xe2\x84\x87\xe2\x84\x8a-\xe2\x84\x93\xe2\x84\x95\xe2\x84\x99-\xe2\x84"
      "\x9d\xe2\x84\xa4\xe2\x84\xa6\xe2\x84\xa8\xe2\x84\xaa-\xe2\x84\xad\xe2\x84\xaf-\xe2"
      "\x84\xb4\xe2\x84\xb9\xe2\x84\xbc-\xe2\x84\xbf\xe2\x85\x85-\xe2\x85\x89\xe2\x85\x8e"
      "\xe2\x86\x83\xe2\x86\x84\xe2\xb0\x80-\xe2\xb1\xbb\xe2\xb1\xbe-\xe2\xb3\xa4\xe2\xb3"
      "\xab-\xe2\xb3\xae\xe2\xb3\xb2\xe2\xb3\xb3\xea\x99\x80-\xea\x99\xad\xea\x9a\x80-\xea"
      "\x9a\x9b\xea\x9c\xa2-\xea\x9d\xaf\xea\x9d\xb1-\xea\x9e\x87\xea\x9e\x8b-\xea\x9e\x8e"
      "\xea\xad\xb0-\xea\xae\xbf\xef\xac\x80-\xef\xac\x86\xef\xac\x93-\xef\xac\x97\xef\xbc"
      "\xa1-\xef\xbc\xba\xef\xbd\x81-\xef\xbd\x9a\xf0\x90\x90\x80-\xf0\x90\x91\x8f\xf0\x90"
      "\x92\xb0-\xf0\x90\x93\x93\xf0\x90\x93\x98-\xf0\x90\x93\xbb\xf0\x90\xb2\x80-\xf0\x90"
      "\xb2\xb2\xf0\x90\xb3\x80-\xf0\x90\xb3\xb2\xf0\x91\xa2\xa0-\xf0\x91\xa3\x9f\xf0\x9e"
      "\xa4\x80-\xf0\x9e\xa5\x83]+",
      "\\s?[!-/:-~\xef\xbc\x81-\xef\xbc\x8f\xef\xbc\x9a-\xef\xbd\x9e\xe2\x80\x98-\xe2\x80"
      "\x9f\xe3\x80\x80-\xe3\x80\x82]+",
      "\\s+$", RX_CJK, "\\p{N}+"}},
};

static const pretok *find_pretok(const char *name) {
    for (size_t i = 0; i < sizeof pretoks / sizeof pretoks[0]; i++)
        for (const char *n = pretoks[i].names; *n; n += strlen(n) + 1)
            if (!strcmp(n, name)) return &pretoks[i];
    return NULL;
}

/* Rewrite \s and \S to llama.cpp's whitespace, which in the working text
 * is ASCII only.  Returns a fr_malloc'd pattern. */
static char *rewrite_space(const char *rx) {
    size_t n = strlen(rx);
    char *o = fr_malloc(n * 8 + 1), *p = o;
    if (!o) return NULL;
    bool in_class = false;
    for (size_t i = 0; i < n; i++) {
        if (rx[i] == '\\' && i + 1 < n) {
            char c = rx[i + 1];
            if (c == 's') p = stpcpy(p, in_class ? "\\t-\\r " : "[\\t-\\r ]");
            else if (c == 'S' && !in_class) p = stpcpy(p, "[^\\t-\\r ]");
            else *p++ = '\\', *p++ = c;
            i++;
            continue;
        }
        if (rx[i] == '[' && !in_class) in_class = true;
        else if (rx[i] == ']' && in_class) in_class = false;
        *p++ = rx[i];
    }
    *p = 0;
    return o;
}

static void *pc_malloc(PCRE2_SIZE n, void *ctx) {
    (void)ctx;
    return fr_malloc(n ? n : 1);
}

static void pc_free(void *p, void *ctx) {
    (void)ctx;
    fr_free(p);
}

int fr__vocab_bpe_setup(fr_vocab *v, bool *is_llama3) {
    const pretok *pt = find_pretok(v->pre);
    if (!pt) return fr_errf(FR_EUNSUPP, "unknown pre-tokenizer '%s'", v->pre);
    *is_llama3 = pt->llama3;
    v->ignore_merges = pt->ignore_merges;
    pcre2_general_context *gc = pcre2_general_context_create(pc_malloc, pc_free, NULL);
    pcre2_compile_context *cc = gc ? pcre2_compile_context_create(gc) : NULL;
    int rc = 0;
    if (!cc) rc = FR_ENOMEM;
    for (int i = 0; !rc && i < FR_VOCAB_MAX_REGEX && pt->rx[i]; i++) {
        char *pat = rewrite_space(pt->rx[i]);
        if (!pat) {
            rc = FR_ENOMEM;
            break;
        }
        int err;
        PCRE2_SIZE erroff;
        pcre2_code *code = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                         PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err,
                                         &erroff, cc);
        fr_free(pat);
        if (!code) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(err, msg, sizeof msg);
            rc = err == PCRE2_ERROR_HEAP_FAILED
                     ? FR_ENOMEM
                     : fr_errf(FR_EINTERNAL, "pre-tokenizer '%s': regex %d: %s at %zu", v->pre,
                               i, (const char *)msg, (size_t)erroff);
            break;
        }
        pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);   /* optional: falls back to the interpreter */
        v->regex[v->n_regex++] = code;
    }
    pcre2_compile_context_free(cc);
    pcre2_general_context_free(gc);
    return rc;
}

void fr__vocab_bpe_free(fr_vocab *v) {
    for (int i = 0; i < v->n_regex; i++) pcre2_code_free(v->regex[i]);
    v->n_regex = 0;
}

/* ---- the split ---- */

/* The text as code points: where each starts in the text and in the
 * working copy (both arrays have n + 1 entries). */
typedef struct cpts {
    size_t n;
    uint32_t *off;          /* byte offset in the original text */
    uint32_t *woff;         /* byte offset in the working copy */
    char *work;             /* working copy: valid UTF-8 */
    size_t wlen;
} cpts;

static void cpts_free(cpts *c) {
    fr_free(c->off);
    fr_free(c->woff);
    fr_free(c->work);
}

static int cpts_build(const char *text, size_t len, cpts *c) {
    memset(c, 0, sizeof *c);
    /* the working copy grows at most 3x (an invalid byte becomes U+FFFD) */
    c->off = fr_malloc((len + 1) * sizeof *c->off);
    c->woff = fr_malloc((len + 1) * sizeof *c->woff);
    c->work = fr_malloc(3 * len + 1);
    if (!c->off || !c->woff || !c->work) return FR_ENOMEM;
    const uint8_t *p = (const uint8_t *)text;
    size_t i = 0, w = 0, n = 0;
    while (i < len) {
        size_t k;
        uint32_t cpt = fr__unicode_decode(p + i, len - i, &k);
        if (cpt >= 0x80 && fr__unicode_is_space(cpt)) cpt = 0x0B;
        else if (cpt == FR_CPT_INVALID || cpt > 0x10FFFF || (cpt >= 0xD800 && cpt <= 0xDFFF))
            cpt = 0xFFFD;
        c->off[n] = (uint32_t)i;
        c->woff[n] = (uint32_t)w;
        w += fr__unicode_encode(cpt, c->work + w);
        i += k;
        n++;
    }
    c->off[n] = (uint32_t)len;
    c->woff[n] = (uint32_t)w;
    c->work[w] = 0;
    c->n = n;
    c->wlen = w;
    return 0;
}

typedef struct sizevec {
    size_t *v;
    size_t n, cap;
} sizevec;

static int sv_push(sizevec *s, size_t x) {
    if (!x) return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        size_t *p = fr_realloc(s->v, cap * sizeof *p);
        if (!p) return FR_ENOMEM;
        s->v = p;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return 0;
}

/* The code point that starts at working byte w, searched in [lo, hi]
 * (PCRE2 in UTF mode only reports character boundaries). */
static size_t cpt_at(const cpts *c, size_t w, size_t lo, size_t hi) {
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->woff[mid] < w) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* One regex over every piece of `in` (code point counts) into `out`. */
static int split_one(const pcre2_code *code, pcre2_match_data *md, const cpts *c,
                     const sizevec *in, sizevec *out) {
    size_t start = 0;
    int rc = 0;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    for (size_t k = 0; k < in->n && !rc; k++) {
        size_t cnt = in->v[k];
        const char *subj = c->work + c->woff[start];
        size_t slen = c->woff[start + cnt] - c->woff[start];
        size_t pos = 0, done = 0;         /* bytes in subj; `done` = end of last piece */
        while (pos < slen && !rc) {
            int m = pcre2_match(code, (PCRE2_SPTR)subj, slen, pos, PCRE2_NO_UTF_CHECK, md, NULL);
            if (m < 0 && m != PCRE2_ERROR_NOMATCH)   /* e.g. JIT stack: retry interpreted */
                m = pcre2_match(code, (PCRE2_SPTR)subj, slen, pos,
                                PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
            if (m < 0) break;
            size_t a = ov[0], b = ov[1];
            if (b <= a) {                     /* empty match: step one character on */
                pos = a + fr__unicode_len_lead((uint8_t)subj[a]);
                continue;
            }
            size_t w0 = c->woff[start];
            size_t cd = cpt_at(c, w0 + done, start, start + cnt);
            size_t ca = cpt_at(c, w0 + a, cd, start + cnt);
            size_t cb = cpt_at(c, w0 + b, ca, start + cnt);
            if ((rc = sv_push(out, ca - cd))) break;
            if ((rc = sv_push(out, cb - ca))) break;
            done = pos = b;
        }
        if (!rc) {
            size_t cd = cpt_at(c, c->woff[start] + done, start, start + cnt);
            rc = sv_push(out, start + cnt - cd);
        }
        start += cnt;
    }
    return rc;
}

/* Pieces of the text as code point counts (zero-length pieces dropped). */
static int split(const fr_vocab *v, const cpts *c, sizevec *out) {
    sizevec a = {0}, b = {0};
    int rc = sv_push(&a, c->n);
    pcre2_general_context *gc = pcre2_general_context_create(pc_malloc, pc_free, NULL);
    pcre2_match_data *md = gc ? pcre2_match_data_create(4, gc) : NULL;
    if (!md) rc = FR_ENOMEM;
    for (int i = 0; i < v->n_regex && !rc; i++) {
        b.n = 0;
        rc = split_one(v->regex[i], md, c, &a, &b);
        sizevec t = a;
        a = b;
        b = t;
    }
    pcre2_match_data_free(md);
    pcre2_general_context_free(gc);
    fr_free(b.v);
    if (rc) {
        fr_free(a.v);
        return rc;
    }
    *out = a;
    return 0;
}

int fr__vocab_bpe_split(const fr_vocab *v, const char *text, size_t len, fr__vocab_piece_cb cb,
                        void *ctx) {
    cpts c;
    sizevec pieces = {0};
    int rc = cpts_build(text, len, &c);
    if (!rc && len) rc = split(v, &c, &pieces);
    for (size_t k = 0, start = 0; !rc && k < pieces.n; k++) {
        cb(ctx, text + c.off[start], c.off[start + pieces.v[k]] - c.off[start]);
        start += pieces.v[k];
    }
    fr_free(pieces.v);
    cpts_free(&c);
    return rc;
}

/* ---- merges ---- */

/* Scratch reused across the pieces of one tokenize call. */
typedef struct scratch {
    char *word;             /* the mapped piece */
    size_t word_cap;
    fr__merge_scratch m;
} scratch;

/* A pair may merge when it is in the merges list; lower rank first. */
static bool bpe_prio(const void *ctx, const char *w, const fr__sym *l, const fr__sym *r,
                     float *prio) {
    int32_t rank = fr__vocab_merge_rank(ctx, w + l->off, l->n, w + r->off, r->n);
    if (rank < 0) return false;
    *prio = (float)rank; /* exact: ranks stay below 2^24 */
    return true;
}

/* BPE of one pre-split piece (original bytes). */
static int bpe_piece(const fr_vocab *v, const char *piece, size_t len, scratch *sc,
                     fr__idvec *out) {
    if (2 * len > sc->word_cap) {
        char *p = fr_realloc(sc->word, 2 * len);
        if (!p) return FR_ENOMEM;
        sc->word = p;
        sc->word_cap = 2 * len;
    }
    size_t wl = 0;
    for (size_t i = 0; i < len; i++)
        wl += fr__unicode_encode(fr__unicode_byte_to_cpt((uint8_t)piece[i]), sc->word + wl);
    const char *w = sc->word;
    if (v->ignore_merges) {
        int32_t id = fr__vocab_lookup(v, w, wl);
        if (id >= 0) return fr__idvec_push(out, id);
    }
    int32_t n;
    int rc = fr__merge_run(&sc->m, w, wl, bpe_prio, v, &n);
    const fr__sym *s = sc->m.syms;
    for (int32_t i = 0; n > 0 && i != -1 && !rc; i = s[i].next) {
        int32_t id = fr__vocab_lookup(v, w + s[i].off, s[i].n);
        if (id >= 0) {
            rc = fr__idvec_push(out, id);
            continue;
        }
        for (uint32_t j = 0; j < s[i].n && !rc; j++) {
            int32_t bt = fr__vocab_lookup(v, w + s[i].off + j, 1);
            if (bt >= 0) rc = fr__idvec_push(out, bt);
        }
    }
    return rc;
}

int fr__vocab_bpe_tokenize(const fr_vocab *v, const char *text, size_t len, fr__idvec *out) {
    if (!len) return 0;
    if (len > UINT32_MAX / 4) return FR_EINVAL;
    cpts c;
    sizevec pieces = {0};
    scratch sc = {0};
    int rc = cpts_build(text, len, &c);
    if (!rc) rc = split(v, &c, &pieces);
    for (size_t k = 0, start = 0; !rc && k < pieces.n; k++) {
        size_t a = c.off[start], b = c.off[start + pieces.v[k]];
        rc = bpe_piece(v, text + a, b - a, &sc, out);
        start += pieces.v[k];
    }
    fr_free(sc.word);
    fr__merge_scratch_deinit(&sc.m);
    fr_free(pieces.v);
    cpts_free(&c);
    return rc;
}
