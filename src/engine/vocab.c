/*
 * vocab.c — loading a tokenizer from GGUF keys, the special-token
 * pre-pass (over the whole text, or per range for fr_tokenize_mixed, whose
 * plain ranges keep their special-token texts as text), tokenize
 * dispatch, token -> text and the streaming detokenizer.  The tokenizer algorithms live in vocab_spm.c
 * (SentencePiece BPE, "llama"), vocab_bpe.c (byte-level BPE, "gpt2") and
 * vocab_wpm.c (WordPiece, "bert").
 * Everything follows llama.cpp's llama-vocab.cpp as GGUF.md §5 describes.
 *
 * Memory: the vocab copies what it needs out of the GGUF (texts into one
 * blob, offsets, scores, types, merges) and indexes texts and merges in
 * open-addressing hash tables of 32-bit slots, at most half full.  Roughly
 * 2x the text size plus 20 bytes per token and 16 per merge.
 *
 * Thread-safety: a loaded vocab is never written again; tokenize and
 * detokenize allocate their own scratch, so any number of threads may use
 * one vocab at once.
 */
#include "engine/vocab.h"

#include "base/err.h"
#include "base/mem.h"
#include "base/utf8.h"
#include "engine/unicode.h"
#include "engine/vocab_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K_TOKENS "tokenizer.ggml.tokens"
#define K_SCORES "tokenizer.ggml.scores"
#define K_TYPES "tokenizer.ggml.token_type"
#define K_MERGES "tokenizer.ggml.merges"

/* ---- hashing ---- */

uint64_t fr__vocab_hash(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

/* A table of 32-bit slots for n entries, at most half full. */
static uint32_t *table_create(size_t n, size_t *mask) {
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    *mask = cap - 1;
    return fr_calloc(cap, sizeof(uint32_t));
}

static const char *tok_text(const fr_vocab *v, int32_t id, size_t *len) {
    *len = v->tok_off[id + 1] - v->tok_off[id];
    return v->text + v->tok_off[id];
}

int32_t fr__vocab_lookup(const fr_vocab *v, const char *s, size_t n) {
    size_t i = (size_t)fr__vocab_hash(s, n) & v->tok_hash_mask;
    for (;; i = (i + 1) & v->tok_hash_mask) {
        uint32_t slot = v->tok_hash[i];
        if (!slot) return -1;
        size_t len;
        const char *t = tok_text(v, (int32_t)slot - 1, &len);
        if (len == n && !memcmp(t, s, n)) return (int32_t)slot - 1;
    }
}

/* Insert id; a later token with the same text replaces the earlier one
 * (llama.cpp's token_to_id map is assigned in id order). */
static void tok_insert(fr_vocab *v, int32_t id) {
    size_t n;
    const char *s = tok_text(v, id, &n);
    size_t i = (size_t)fr__vocab_hash(s, n) & v->tok_hash_mask;
    for (;; i = (i + 1) & v->tok_hash_mask) {
        uint32_t slot = v->tok_hash[i];
        if (slot) {
            size_t len;
            const char *t = tok_text(v, (int32_t)slot - 1, &len);
            if (len != n || memcmp(t, s, n)) continue;
        }
        v->tok_hash[i] = (uint32_t)id + 1;
        return;
    }
}

static uint64_t hash_pair(const char *a, size_t na, const char *b, size_t nb) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < na; i++) h = (h ^ (uint8_t)a[i]) * 0x100000001b3ull;
    h = (h ^ (uint8_t)' ') * 0x100000001b3ull;
    for (size_t i = 0; i < nb; i++) h = (h ^ (uint8_t)b[i]) * 0x100000001b3ull;
    return h;
}

static bool merge_is(const fr_vocab *v, int32_t r, const char *a, size_t na, const char *b,
                     size_t nb) {
    const char *m = v->merge_text + v->merge_off[r];
    size_t len = v->merge_off[r + 1] - v->merge_off[r];
    return v->merge_split[r] == na && len == na + 1 + nb && !memcmp(m, a, na) &&
           !memcmp(m + na + 1, b, nb);
}

int32_t fr__vocab_merge_rank(const fr_vocab *v, const char *a, size_t na, const char *b,
                             size_t nb) {
    if (!v->merge_hash) return -1;
    size_t i = (size_t)hash_pair(a, na, b, nb) & v->merge_hash_mask;
    for (;; i = (i + 1) & v->merge_hash_mask) {
        uint32_t slot = v->merge_hash[i];
        if (!slot) return -1;
        if (merge_is(v, (int32_t)slot - 1, a, na, b, nb)) return (int32_t)slot - 1;
    }
}

/* Insert merge r; the first (best-ranked) of equal merges stays. */
static void merge_insert(fr_vocab *v, int32_t r) {
    const char *m = v->merge_text + v->merge_off[r];
    size_t na = v->merge_split[r];
    size_t nb = v->merge_off[r + 1] - v->merge_off[r] - na - 1;
    size_t i = (size_t)hash_pair(m, na, m + na + 1, nb) & v->merge_hash_mask;
    for (;; i = (i + 1) & v->merge_hash_mask) {
        uint32_t slot = v->merge_hash[i];
        if (!slot) {
            v->merge_hash[i] = (uint32_t)r + 1;
            return;
        }
        if (merge_is(v, (int32_t)slot - 1, m, na, m + na + 1, nb)) return;
    }
}

int fr__idvec_push(fr__idvec *o, int32_t id) {
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 64;
        int32_t *p = fr_realloc(o->v, cap * sizeof *p);
        if (!p) return FR_ENOMEM;
        o->v = p;
        o->cap = cap;
    }
    o->v[o->n++] = id;
    return 0;
}

/* ---- loading ---- */

void fr_vocab_destroy(fr_vocab *v) {
    if (!v) return;
    fr__vocab_bpe_free(v);
    fr_free(v->text);
    fr_free(v->tok_off);
    fr_free(v->scores);
    fr_free(v->types);
    fr_free(v->flags);
    fr_free(v->tok_hash);
    fr_free(v->merge_text);
    fr_free(v->merge_off);
    fr_free(v->merge_split);
    fr_free(v->merge_hash);
    fr_free(v->special);
    fr_free(v);
}

static const char *gname(const fr_gguf *g) {
    const char *p = fr_gguf_path(g);
    return p ? p : "gguf";
}

static bool str_is(fr_gguf_str s, const char *lit) {
    size_t n = strlen(lit);
    return s.len == n && !memcmp(s.s, lit, n);
}

static int load_tokens(fr_vocab *v, const fr_gguf *g) {
    int et;
    uint64_t count;
    const void *data;
    int rc = fr_gguf_get_arr(g, K_TOKENS, &et, &count, &data);
    if (rc == FR_ENOENT) return fr_errf(FR_EFORMAT, "%s: key '%s' is missing", gname(g), K_TOKENS);
    if (rc) return rc;
    if (et != FR_GGUF_STRING)
        return fr_errf(FR_EFORMAT, "%s: key '%s': not an array of strings", gname(g), K_TOKENS);
    if (count == 0 || count >= INT32_MAX)
        return fr_errf(FR_EFORMAT, "%s: key '%s': %llu tokens", gname(g), K_TOKENS,
                       (unsigned long long)count);
    v->n_tokens = (int32_t)count;
    size_t n = (size_t)count;
    v->tok_off = fr_malloc((n + 1) * sizeof *v->tok_off);
    v->types = fr_malloc(n);
    v->flags = fr_calloc(n, 1);
    v->scores = fr_calloc(n, sizeof *v->scores);
    if (!v->tok_off || !v->types || !v->flags || !v->scores) return FR_ENOMEM;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        fr_gguf_str s;
        rc = fr_gguf_get_arr_str(g, K_TOKENS, i, &s);
        if (rc) return rc;
        total += s.len;
        if (total >= UINT32_MAX)
            return fr_errf(FR_EFORMAT, "%s: key '%s': token texts exceed 4 GiB", gname(g),
                           K_TOKENS);
    }
    v->text = fr_malloc(total ? (size_t)total : 1);
    if (!v->text) return FR_ENOMEM;
    uint32_t off = 0;
    for (size_t i = 0; i < n; i++) {
        fr_gguf_str s;
        fr_gguf_get_arr_str(g, K_TOKENS, i, &s);
        v->tok_off[i] = off;
        memcpy(v->text + off, s.s, (size_t)s.len);
        off += (uint32_t)s.len;
        v->types[i] = FR_TOKEN_NORMAL;   /* llama.cpp's default without token_type */
    }
    v->tok_off[n] = off;

    rc = fr_gguf_get_arr(g, K_SCORES, &et, &count, &data);
    if (rc == 0) {
        if ((et != FR_GGUF_F32 && et != FR_GGUF_F64) || count != n)
            return fr_errf(FR_EFORMAT, "%s: key '%s': want %zu floats", gname(g), K_SCORES, n);
        for (size_t i = 0; i < n; i++) {
            if (et == FR_GGUF_F32) {
                memcpy(&v->scores[i], (const char *)data + 4 * i, 4);
            } else {
                double d;
                memcpy(&d, (const char *)data + 8 * i, 8);
                v->scores[i] = (float)d;
            }
        }
    } else if (rc != FR_ENOENT) {
        return rc;
    }

    rc = fr_gguf_get_arr(g, K_TYPES, &et, &count, &data);
    if (rc == 0) {
        if ((et != FR_GGUF_I32 && et != FR_GGUF_U32) || count != n)
            return fr_errf(FR_EFORMAT, "%s: key '%s': want %zu 32-bit integers", gname(g),
                           K_TYPES, n);
        for (size_t i = 0; i < n; i++) {
            int32_t t;
            memcpy(&t, (const char *)data + 4 * i, 4);
            /* unknown values count as undefined, as in llama.cpp */
            v->types[i] = (uint8_t)(t >= FR_TOKEN_NORMAL && t <= FR_TOKEN_BYTE ? t
                                                                             : FR_TOKEN_UNDEFINED);
        }
    } else if (rc != FR_ENOENT) {
        return rc;
    }

    v->tok_hash = table_create(n, &v->tok_hash_mask);
    if (!v->tok_hash) return FR_ENOMEM;
    for (size_t i = 0; i < n; i++) tok_insert(v, (int32_t)i);
    return 0;
}

static int load_merges(fr_vocab *v, const fr_gguf *g) {
    int et;
    uint64_t count;
    int rc = fr_gguf_get_arr(g, K_MERGES, &et, &count, NULL);
    if (rc == FR_ENOENT) return fr_errf(FR_EFORMAT, "%s: key '%s' is missing", gname(g), K_MERGES);
    if (rc) return rc;
    if (et != FR_GGUF_STRING)
        return fr_errf(FR_EFORMAT, "%s: key '%s': not an array of strings", gname(g), K_MERGES);
    if (count >= (1u << 24)) /* ranks are merge priorities held exactly in a float */
        return fr_errf(FR_EFORMAT, "%s: key '%s': %llu merges", gname(g), K_MERGES,
                       (unsigned long long)count);
    size_t n = (size_t)count;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        fr_gguf_str s;
        rc = fr_gguf_get_arr_str(g, K_MERGES, i, &s);
        if (rc) return rc;
        total += s.len;
        if (total >= UINT32_MAX)
            return fr_errf(FR_EFORMAT, "%s: key '%s': merges exceed 4 GiB", gname(g), K_MERGES);
    }
    v->merge_text = fr_malloc(total ? (size_t)total : 1);
    v->merge_off = fr_malloc((n + 1) * sizeof *v->merge_off);
    v->merge_split = fr_malloc((n ? n : 1) * sizeof *v->merge_split);
    v->merge_hash = table_create(n, &v->merge_hash_mask);
    if (!v->merge_text || !v->merge_off || !v->merge_split || !v->merge_hash) return FR_ENOMEM;
    uint32_t off = 0;
    for (size_t i = 0; i < n; i++) {
        fr_gguf_str s;
        fr_gguf_get_arr_str(g, K_MERGES, i, &s);
        v->merge_off[i] = off;
        memcpy(v->merge_text + off, s.s, (size_t)s.len);
        off += (uint32_t)s.len;
        /* split at the first space at index >= 1; without one the merge
         * is ("", "") in llama.cpp, which never matches */
        const char *sp = s.len > 1 ? memchr(s.s + 1, ' ', (size_t)s.len - 1) : NULL;
        v->merge_split[i] = sp ? (uint32_t)(sp - s.s) : UINT32_MAX;
    }
    v->merge_off[n] = off;
    v->n_merges = (int32_t)n;
    for (size_t i = 0; i < n; i++)
        if (v->merge_split[i] != UINT32_MAX) merge_insert(v, (int32_t)i);
    return 0;
}

/* A special id key: absent keeps the default; ids >= n_tokens are ignored. */
static int load_id(const fr_vocab *v, const fr_gguf *g, const char *key, int32_t *id) {
    uint32_t u;
    int rc = fr_gguf_get_u32(g, key, &u);
    if (rc == FR_ENOENT) return 0;
    if (rc) return rc;
    if (u < (uint32_t)v->n_tokens) *id = (int32_t)u;
    return 0;
}

static int load_bool(const fr_gguf *g, const char *key, bool *b) {
    int rc = fr_gguf_get_bool(g, key, b);
    return rc == FR_ENOENT ? 0 : rc;
}

/* The first token among texts[] present in the vocab, or -1. */
static int32_t find_first(const fr_vocab *v, const char *const *texts) {
    for (; *texts; texts++) {
        int32_t id = fr__vocab_lookup(v, *texts, strlen(*texts));
        if (id >= 0) return id;
    }
    return -1;
}

static void force_control(fr_vocab *v, int32_t id) {
    if (id >= 0 && v->types[id] != FR_TOKEN_CONTROL) v->types[id] = FR_TOKEN_CONTROL;
}

/* End-of-generation and the other tokens llama.cpp recognises by text
 * (they become control tokens: printed only on request). */
static void detect_special(fr_vocab *v) {
    static const char *const eot_texts[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
        "_<EOT>", "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>", NULL};
    static const char *const eom_texts[] = {"<|eom_id|>", NULL};
    static const char *const eog_texts[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>",
        "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>",
        "<end_of_utterance>", NULL};
    /* fill-in-the-middle tokens: only their type changes */
    static const char *const fim_texts[] = {
        "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>",
        "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>",
        "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "hole\xef\xbd\x9c>",
        "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>",
        "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>",
        "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>",
        "<|fim_pad|>", "<fim-pad>", "<fim_pad>",
        "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>",
        "<|file_sep|>", NULL};

    if (v->eot < 0) {
        v->eot = find_first(v, eot_texts);
        force_control(v, v->eot);
    }
    if (v->eom < 0) {
        v->eom = find_first(v, eom_texts);
        force_control(v, v->eom);
    }
    for (const char *const *t = fim_texts; *t; t++) force_control(v, fr__vocab_lookup(v, *t, strlen(*t)));
    for (const char *const *t = eog_texts; *t; t++) {
        int32_t id = fr__vocab_lookup(v, *t, strlen(*t));
        if (id < 0) continue;
        v->flags[id] |= FR_TOKF_EOG;
        force_control(v, id);
    }
    if (v->eos >= 0) v->flags[v->eos] |= FR_TOKF_EOG;
    if (v->eot >= 0) v->flags[v->eot] |= FR_TOKF_EOG;
    if (v->eom >= 0) v->flags[v->eom] |= FR_TOKF_EOG;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool is_special_type(int t) {
    return t == FR_TOKEN_CONTROL || t == FR_TOKEN_USER_DEFINED || t == FR_TOKEN_UNKNOWN;
}

/* The pre-pass list: longest text first, ties by id (llama.cpp sorts by
 * length only; the order among equal lengths is unspecified there). */
static int build_special(fr_vocab *v) {
    int32_t n = 0;
    for (int32_t i = 0; i < v->n_tokens; i++)
        n += is_special_type(v->types[i]) && v->tok_off[i + 1] > v->tok_off[i];
    uint64_t *keys = fr_malloc((size_t)(n ? n : 1) * sizeof *keys);
    v->special = fr_malloc((size_t)(n ? n : 1) * sizeof *v->special);
    if (!keys || !v->special) {
        fr_free(keys);
        return FR_ENOMEM;
    }
    n = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        uint32_t len = v->tok_off[i + 1] - v->tok_off[i];
        if (is_special_type(v->types[i]) && len > 0)
            keys[n++] = ((uint64_t)(UINT32_MAX - len) << 32) | (uint32_t)i;
    }
    qsort(keys, (size_t)n, sizeof *keys, cmp_u64);
    for (int32_t k = 0; k < n; k++) v->special[k] = (int32_t)(keys[k] & 0xFFFFFFFFu);
    v->n_special = n;
    fr_free(keys);
    return 0;
}

static void build_byte_tokens(fr_vocab *v) {
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char buf[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        int32_t id = fr__vocab_lookup(v, buf, 6);
        if (id < 0) {
            char c = (char)b;
            id = fr__vocab_lookup(v, &c, 1);
        }
        v->byte_tok[b] = id;
    }
}

static int vocab_load(fr_vocab *v, const fr_gguf *g) {
    fr_gguf_str model;
    int rc = fr_gguf_get_str(g, "tokenizer.ggml.model", &model);
    if (rc == FR_ENOENT)
        return fr_errf(FR_EFORMAT, "%s: key 'tokenizer.ggml.model' is missing", gname(g));
    if (rc) return rc;
    if (str_is(model, "llama")) {
        v->kind = FR_VOCAB_SPM;
    } else if (str_is(model, "gpt2")) {
        v->kind = FR_VOCAB_BPE;
    } else if (str_is(model, "bert")) {
        v->kind = FR_VOCAB_WPM;
    } else {
        return fr_errf(FR_EUNSUPP, "%s: tokenizer model '%.*s' is not supported", gname(g),
                       (int)(model.len > 64 ? 64 : model.len), model.s);
    }
    strcpy(v->model, v->kind == FR_VOCAB_SPM ? "llama" : v->kind == FR_VOCAB_BPE ? "gpt2" : "bert");
    strcpy(v->pre, "default");

    rc = load_tokens(v, g);
    if (rc) return rc;

    bool llama3 = false;
    v->sep = v->mask = -1;
    if (v->kind == FR_VOCAB_SPM) {
        v->bos = 1, v->eos = 2, v->unk = 0;
        v->add_bos = true, v->add_eos = false, v->add_space_prefix = true;
    } else if (v->kind == FR_VOCAB_WPM) {
        /* [CLS] is the bos id (cls_token_id is not read, as llama.cpp) */
        v->bos = 101, v->eos = -1, v->unk = 100, v->sep = 102, v->mask = 103;
        v->add_bos = true, v->add_eos = false, v->add_space_prefix = false;
        v->lowercase = true;
        fr_gguf_str pre;
        rc = fr_gguf_get_str(g, "tokenizer.ggml.pre", &pre);
        if (rc == 0 && pre.len > 0 && pre.len < sizeof v->pre) {
            memcpy(v->pre, pre.s, (size_t)pre.len);
            v->pre[pre.len] = 0;
        } else if (rc != 0 && rc != FR_ENOENT) {
            return rc;
        }
        if ((rc = load_bool(g, "tokenizer.ggml.normalizer.lowercase", &v->lowercase))) return rc;
        v->strip_accents = v->lowercase;
        if ((rc = load_bool(g, "tokenizer.ggml.normalizer.strip_accents", &v->strip_accents)))
            return rc;
    } else {
        rc = load_merges(v, g);
        if (rc) return rc;
        v->bos = 11, v->eos = 11, v->unk = -1;
        v->add_bos = false, v->add_eos = false, v->add_space_prefix = false;
        fr_gguf_str pre;
        rc = fr_gguf_get_str(g, "tokenizer.ggml.pre", &pre);
        if (rc == 0) {
            if (pre.len >= sizeof v->pre)
                return fr_errf(FR_EUNSUPP, "%s: unknown pre-tokenizer '%.*s'", gname(g),
                               (int)(pre.len > 200 ? 200 : pre.len), pre.s);
            memcpy(v->pre, pre.s, (size_t)pre.len);
            v->pre[pre.len] = 0;
            if (!pre.len) strcpy(v->pre, "default");
        } else if (rc != FR_ENOENT) {
            return rc;
        }
        rc = fr__vocab_bpe_setup(v, &llama3);
        if (rc) {
            char detail[256];
            snprintf(detail, sizeof detail, "%s", fr_errdetail());
            return fr_errf(rc, "%s: %s", gname(g), detail);
        }
        if (llama3) v->add_bos = true;
    }
    v->pad = v->kind == FR_VOCAB_WPM ? 0 : -1;
    v->eot = v->eom = -1;
    if (v->bos >= v->n_tokens) v->bos = -1;
    if (v->eos >= v->n_tokens) v->eos = -1;
    if (v->unk >= v->n_tokens) v->unk = -1;
    if (v->sep >= v->n_tokens) v->sep = -1;
    if (v->mask >= v->n_tokens) v->mask = -1;
    if (v->pad >= v->n_tokens) v->pad = -1;

    if ((rc = load_bool(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix)) ||
        (rc = load_id(v, g, "tokenizer.ggml.bos_token_id", &v->bos)) ||
        (rc = load_id(v, g, "tokenizer.ggml.eos_token_id", &v->eos)) ||
        (rc = load_id(v, g, "tokenizer.ggml.unknown_token_id", &v->unk)) ||
        (rc = load_id(v, g, "tokenizer.ggml.padding_token_id", &v->pad)) ||
        (rc = load_id(v, g, "tokenizer.ggml.eot_token_id", &v->eot)) ||
        (rc = load_id(v, g, "tokenizer.ggml.eom_token_id", &v->eom)) ||
        (rc = load_id(v, g, "tokenizer.ggml.seperator_token_id", &v->sep)) ||
        (rc = load_id(v, g, "tokenizer.ggml.mask_token_id", &v->mask)) ||
        (rc = load_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos)) ||
        (rc = load_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos)))
        return rc;

    detect_special(v);
    rc = build_special(v);
    if (rc) return rc;
    build_byte_tokens(v);
    for (int32_t i = 0; i < v->n_tokens; i++) {
        uint32_t n = v->tok_off[i + 1] - v->tok_off[i];
        if (n > v->max_token_len) v->max_token_len = n;
    }
    return 0;
}

int fr_vocab_load(const fr_gguf *g, fr_vocab **out) {
    if (!g || !out) return FR_EINVAL;
    *out = NULL;
    fr_vocab *v = fr_calloc(1, sizeof *v);
    if (!v) return FR_ENOMEM;
    int rc = vocab_load(v, g);
    if (rc) {
        fr_vocab_destroy(v);
        return rc;
    }
    *out = v;
    return 0;
}

/* ---- accessors ---- */

int32_t fr_vocab_n_tokens(const fr_vocab *v) { return v->n_tokens; }
const char *fr_vocab_model_name(const fr_vocab *v) { return v->model; }
const char *fr_vocab_pre_name(const fr_vocab *v) { return v->pre; }
int32_t fr_vocab_bos(const fr_vocab *v) { return v->bos; }
int32_t fr_vocab_eos(const fr_vocab *v) { return v->eos; }
int32_t fr_vocab_sep(const fr_vocab *v) { return v->sep; }
bool fr_vocab_add_bos(const fr_vocab *v) { return v->add_bos && v->bos >= 0; }
bool fr_vocab_add_eos(const fr_vocab *v) { return v->add_eos && v->eos >= 0; }

bool fr_vocab_is_eog(const fr_vocab *v, int32_t id) {
    return id >= 0 && id < v->n_tokens && (v->flags[id] & FR_TOKF_EOG);
}

int fr_vocab_token_type(const fr_vocab *v, int32_t id) {
    return id >= 0 && id < v->n_tokens ? v->types[id] : FR_TOKEN_UNDEFINED;
}

const char *fr_vocab_token_text(const fr_vocab *v, int32_t id, size_t *len) {
    if (id < 0 || id >= v->n_tokens) return NULL;
    size_t n;
    const char *s = tok_text(v, id, &n);
    if (len) *len = n;
    return s;
}

int32_t fr_vocab_find(const fr_vocab *v, const char *s, size_t len) {
    return fr__vocab_lookup(v, s, len);
}

/* ---- tokenize ---- */

typedef struct fragvec {
    fr__vocab_frag *v;
    size_t n, cap;
} fragvec;

/* Make room for k more fragments. */
static int frag_reserve(fragvec *f, size_t k) {
    if (f->n + k <= f->cap) return 0;
    size_t cap = f->cap ? f->cap : 16;
    while (cap < f->n + k) cap *= 2;
    fr__vocab_frag *p = fr_realloc(f->v, cap * sizeof *p);
    if (!p) return FR_ENOMEM;
    f->v = p;
    f->cap = cap;
    return 0;
}

/*
 * The special-token pre-pass over the bytes [off, off + len) of text,
 * appending to f.  For each special token, longest first, every raw
 * fragment of the range is searched for its text; a hit splits the
 * fragment into left text, the token and right text (which is searched
 * again).  Without parse_special only user-defined tokens take part.
 */
static uint32_t gram_bit(const char *p) {
    uint32_t x;
    memcpy(&x, p, 4);
    return (x * 0x9E3779B1u) >> 16;
}

static int partition(const fr_vocab *v, const char *text, size_t off, size_t len,
                     bool parse_special, fragvec *f) {
    if (!len) return 0;
    int rc = frag_reserve(f, 1);
    if (rc) return rc;
    size_t first = f->n;    /* the range's fragments are f->v[first..] */
    f->v[f->n++] = (fr__vocab_frag){off, len, -1};
    const char *r = text + off;
    /* With many special tokens (some vocabs have thousands), a bitmap of
     * the text's 4-byte grams rules most of them out without a search. */
    uint64_t *grams = NULL;
    if (v->n_special > 64 && len >= 4) {
        grams = fr_calloc(1024, sizeof *grams);
        if (!grams) return FR_ENOMEM;
        for (size_t i = 0; i + 4 <= len; i++) {
            uint32_t b = gram_bit(r + i);
            grams[b >> 6] |= 1ull << (b & 63);
        }
    }
    for (int32_t k = 0; k < v->n_special && !rc; k++) {
        int32_t id = v->special[k];
        if (!parse_special && v->types[id] != FR_TOKEN_USER_DEFINED) continue;
        size_t slen;
        const char *s = tok_text(v, id, &slen);
        if (slen > len) continue;
        if (grams && slen >= 4) {
            uint32_t a = gram_bit(s), b = gram_bit(s + slen - 4);
            if (!(grams[a >> 6] >> (a & 63) & 1) || !(grams[b >> 6] >> (b & 63) & 1)) continue;
        }
        if (!memmem(r, len, s, slen)) continue;
        for (size_t i = first; i < f->n; i++) {
            fr__vocab_frag fr = f->v[i];
            if (fr.token >= 0 || fr.len < slen) continue;
            const char *hit = memmem(text + fr.off, fr.len, s, slen);
            if (!hit) continue;
            size_t left = (size_t)(hit - (text + fr.off));
            size_t right = fr.len - left - slen;
            size_t add = (left > 0) + (right > 0);   /* fragments beyond the one replaced */
            rc = frag_reserve(f, add);
            if (rc) break;
            memmove(&f->v[i + 1 + add], &f->v[i + 1], (f->n - i - 1) * sizeof *f->v);
            f->n += add;
            size_t j = i;
            if (left) f->v[j++] = (fr__vocab_frag){fr.off, left, -1};
            f->v[j] = (fr__vocab_frag){0, 0, id};
            if (right) f->v[j + 1] = (fr__vocab_frag){fr.off + left + slen, right, -1};
            i = j;   /* the loop's i++ moves on to the right remainder */
        }
    }
    fr_free(grams);
    return rc;
}

/* SPM: the fragment with the optional prefix space, every space as "▁". */
static int spm_fragment(const fr_vocab *v, const char *s, size_t n, bool prefix, char **buf,
                        size_t *cap, fr__idvec *out) {
    size_t spaces = prefix;
    for (size_t i = 0; i < n; i++) spaces += s[i] == ' ';
    size_t need = n + prefix + 2 * spaces;
    if (need > *cap) {
        char *p = fr_realloc(*buf, need);
        if (!p) return FR_ENOMEM;
        *buf = p;
        *cap = need;
    }
    char *o = *buf;
    if (prefix) o = memcpy(o, "\xe2\x96\x81", 3), o += 3;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') memcpy(o, "\xe2\x96\x81", 3), o += 3;
        else *o++ = s[i];
    }
    return fr__vocab_spm_tokenize(v, *buf, (size_t)(o - *buf), out);
}

/*
 * The pre-pass of a text whose plain ranges are ordinary text: the text
 * between them with special tokens parsed, the ranges with parse_special
 * off.  Raw fragments that meet at a range border are then joined, so the
 * tokenizer sees one piece of text from one special token to the next,
 * wherever the borders were: a text whose plain ranges hold no special
 * token's text is split exactly as fr_tokenize with parse_special splits
 * it (and as llama.cpp splits a chat template's output).
 */
static int partition_mixed(const fr_vocab *v, const char *text, size_t len,
                           const fr_span *plain, size_t n_plain, fragvec *f) {
    size_t at = 0;
    int rc = 0;
    for (size_t k = 0; k <= n_plain && !rc; k++) {
        size_t end = k < n_plain ? plain[k].off : len;
        rc = partition(v, text, at, end - at, true, f);
        if (!rc && k < n_plain) rc = partition(v, text, end, plain[k].len, false, f);
        if (k < n_plain) at = end + plain[k].len;
    }
    if (rc) return rc;
    size_t j = 0;
    for (size_t i = 0; i < f->n; i++) {
        fr__vocab_frag *prev = j ? &f->v[j - 1] : NULL;
        if (prev && prev->token < 0 && f->v[i].token < 0 && prev->off + prev->len == f->v[i].off)
            prev->len += f->v[i].len;
        else
            f->v[j++] = f->v[i];
    }
    f->n = j;
    return 0;
}

int fr_tokenize(const fr_vocab *v, const char *text, size_t len, bool add_special,
                bool parse_special, int32_t **ids, size_t *n_ids) {
    fr_span all = {0, len};
    return fr_tokenize_mixed(v, text, len, add_special, &all, parse_special ? 0 : 1, ids, n_ids);
}

int fr_tokenize_mixed(const fr_vocab *v, const char *text, size_t len, bool add_special,
                      const fr_span *plain, size_t n_plain, int32_t **ids, size_t *n_ids) {
    if (!v || !ids || !n_ids || (!text && len) || (!plain && n_plain)) return FR_EINVAL;
    *ids = NULL;
    *n_ids = 0;
    for (size_t k = 0, at = 0; k < n_plain; k++) {
        if (plain[k].off < at || plain[k].off > len || plain[k].len > len - plain[k].off)
            return fr_errf(FR_EINVAL, "tokenize: plain range %zu [%zu, +%zu) is out of order or "
                           "past the text's %zu bytes", k, plain[k].off, plain[k].len, len);
        at = plain[k].off + plain[k].len;
    }
    fragvec f = {0};
    fr__idvec out = {0};
    char *buf = NULL;
    size_t cap = 0;
    int rc = fr__idvec_push(&out, 0);    /* makes *ids non-NULL even when empty */
    if (rc) goto done;
    out.n = 0;
    rc = partition_mixed(v, text, len, plain, n_plain, &f);
    if (rc) goto done;
    /* WordPiece always frames add_special input as [CLS] ... [SEP] */
    bool wpm = v->kind == FR_VOCAB_WPM;
    if (add_special && (v->add_bos || wpm) && v->bos >= 0 && (rc = fr__idvec_push(&out, v->bos)))
        goto done;
    bool prev_special = true;   /* SPM: the first fragment gets the prefix space */
    for (size_t i = 0; i < f.n; i++) {
        const fr__vocab_frag *fr = &f.v[i];
        if (fr->token >= 0) {
            rc = fr__idvec_push(&out, fr->token);
            prev_special = true;
        } else if (v->kind == FR_VOCAB_SPM) {
            rc = spm_fragment(v, text + fr->off, fr->len, v->add_space_prefix && prev_special,
                              &buf, &cap, &out);
            prev_special = false;
        } else if (wpm) {
            rc = fr__vocab_wpm_tokenize(v, text + fr->off, fr->len, &out);
        } else {
            rc = fr__vocab_bpe_tokenize(v, text + fr->off, fr->len, &out);
        }
        if (rc) goto done;
    }
    if (add_special && v->add_eos && v->eos >= 0 && (rc = fr__idvec_push(&out, v->eos))) goto done;
    if (add_special && wpm && v->sep >= 0) rc = fr__idvec_push(&out, v->sep);
done:
    fr_free(f.v);
    fr_free(buf);
    if (rc) {
        fr_free(out.v);
        return rc;
    }
    *ids = out.v;
    *n_ids = out.n;
    return 0;
}

/* ---- detokenize ---- */

/* Append n bytes at *pos, writing only what fits in cap. */
static void put(char *buf, size_t cap, size_t *pos, const char *s, size_t n) {
    if (*pos < cap) memcpy(buf + *pos, s, n < cap - *pos ? n : cap - *pos);
    *pos += n;
}

size_t fr_token_to_piece(const fr_vocab *v, int32_t id, bool special, char *buf, size_t cap) {
    if (!v || id < 0 || id >= v->n_tokens) return 0;
    int t = v->types[id];
    size_t n, pos = 0;
    const char *s = tok_text(v, id, &n);
    if (t == FR_TOKEN_CONTROL || t == FR_TOKEN_UNKNOWN) {
        if (special) put(buf, cap, &pos, s, n);
        return pos;
    }
    if (t == FR_TOKEN_USER_DEFINED) {
        put(buf, cap, &pos, s, n);
        return pos;
    }
    if (v->kind == FR_VOCAB_SPM || v->kind == FR_VOCAB_WPM) {
        if (t == FR_TOKEN_BYTE) {
            /* "<0xNN>" */
            char hex[3] = {n > 3 ? s[3] : 0, n > 4 ? s[4] : 0, 0};
            char c = (char)strtol(hex, NULL, 16);
            put(buf, cap, &pos, &c, 1);
            return pos;
        }
        if (t != FR_TOKEN_NORMAL) return 0;
        for (size_t i = 0; i < n;) {
            if (i + 3 <= n && !memcmp(s + i, "\xe2\x96\x81", 3)) {
                put(buf, cap, &pos, " ", 1);
                i += 3;
            } else {
                put(buf, cap, &pos, s + i, 1);
                i++;
            }
        }
        return pos;
    }
    if (t != FR_TOKEN_NORMAL) return 0;
    /* byte-level BPE: each code point stands for one byte; a code point
     * outside the table is copied as it is */
    const uint8_t *p = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        size_t k;
        uint32_t cpt = fr__unicode_decode(p + i, n - i, &k);
        int b = cpt == FR_CPT_INVALID ? -1 : fr__unicode_cpt_to_byte(cpt);
        if (b >= 0) {
            char c = (char)b;
            put(buf, cap, &pos, &c, 1);
        } else {
            put(buf, cap, &pos, s + i, k);
        }
        i += k;
    }
    return pos;
}

void fr_detok_init(fr_detok *d, const fr_vocab *v) {
    memset(d, 0, sizeof *d);
    d->first = true;
    /* llama.cpp strips one leading space of the first piece whenever the
     * vocab adds a prefix space (SPM by default; any vocab whose GGUF sets
     * tokenizer.ggml.add_space_prefix); WordPiece words all start with
     * "▁", so the text would otherwise start with a space */
    d->strip_space = v && (v->add_space_prefix || v->kind == FR_VOCAB_WPM);
}

int fr_detok_push(fr_detok *d, const fr_vocab *v, int32_t id, char *out, size_t cap) {
    if (!d || !v || (!out && cap)) return FR_EINVAL;
    size_t np = (size_t)d->n_pending;
    if (cap < np) return FR_EINVAL;
    size_t n = fr_token_to_piece(v, id, false, out ? out + np : NULL, cap - np);
    if (np + n > cap) return FR_EINVAL;   /* nothing consumed: retry with more room */
    if (np) memcpy(out, d->pending, np);
    if (d->first && d->strip_space && n > 0 && out[np] == ' ') {
        memmove(out + np, out + np + 1, n - 1);
        n--;
    }
    /* WordPiece: [CLS] (no text) does not end the first piece */
    if (n > 0 || v->kind != FR_VOCAB_WPM) d->first = false;
    size_t total = np + n, i = 0;
    const uint8_t *p = (const uint8_t *)out;
    while (i < total) {
        int k = fr_utf8_char(p + i, total - i, NULL);
        if (k == 0) break;             /* an unfinished character: keep it */
        i += k > 0 ? (size_t)k : 1;    /* invalid bytes go out as they are */
    }
    d->n_pending = (int)(total - i);
    if (total > i) memcpy(d->pending, out + i, total - i);
    return (int)i;
}

int fr_detok_flush(fr_detok *d, char *out, size_t cap) {
    if (!d) return FR_EINVAL;
    size_t np = (size_t)d->n_pending;
    if (cap < np) return FR_EINVAL;
    if (np) memcpy(out, d->pending, np);
    d->n_pending = 0;
    return (int)np;
}
