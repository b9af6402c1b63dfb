/*
 * vocab_spm.c — SentencePiece BPE ("llama" vocabularies), as llama.cpp's
 * llm_tokenizer_spm does it.
 *
 * Input: one text fragment, already escaped (spaces are "▁", the prefix
 * space added).  Algorithm:
 *   1. Split into characters; the length of each comes from its lead byte
 *      alone (so invalid UTF-8 still splits, a byte or a few at a time).
 *   2. Put every adjacent pair whose concatenation is a vocab token into a
 *      max-heap keyed by (token score, then leftmost).
 *   3. Pop the best pair; skip it if either side changed since it was
 *      queued (sizes no longer add up); else merge right into left, unlink
 *      right and queue the new pairs with both neighbours.
 *   4. Each final symbol is a token, except single characters that are not
 *      in the vocab: those become byte tokens <0xNN>, one per byte.
 * llama.cpp's "resegment through rev_merge" never fires for a symbol that
 * came from a merge, because a merge only happens when the merged text is
 * a token; so step 4 needs no merge history.
 */
#include "base/err.h"
#include "base/mem.h"
#include "engine/unicode.h"
#include "engine/vocab_int.h"

#include <string.h>

typedef struct sym {
    uint32_t off, n;        /* bytes of the text; n = 0 once merged away */
    int32_t prev, next;     /* neighbours in the chain, -1 at the ends */
} sym;

typedef struct bigram {
    float score;
    int32_t left, right;
    uint32_t size;          /* bytes of left + right when queued */
} bigram;

typedef struct heap {
    bigram *v;
    size_t n, cap;
} heap;

/* a comes out before b */
static bool before(const bigram *a, const bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(heap *h, bigram b) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        bigram *p = fr_realloc(h->v, cap * sizeof *p);
        if (!p) return FR_ENOMEM;
        h->v = p;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&b, &h->v[parent])) break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = b;
    return 0;
}

static bigram heap_pop(heap *h) {
    bigram top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && before(&h->v[c + 1], &h->v[c])) c++;
        if (!before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

static int try_add(const fr_vocab *v, const char *text, const sym *s, int32_t left,
                   int32_t right, heap *h) {
    if (left < 0 || right < 0) return 0;
    uint32_t size = s[left].n + s[right].n;
    int32_t id = fr__vocab_lookup(v, text + s[left].off, size);
    if (id < 0) return 0;
    return heap_push(h, (bigram){v->scores[id], left, right, size});
}

int fr__vocab_spm_tokenize(const fr_vocab *v, const char *text, size_t len, fr__idvec *out) {
    if (!len) return 0;
    if (len > UINT32_MAX / 2) return FR_EINVAL;
    sym *s = fr_malloc(len * sizeof *s);
    heap h = {0};
    int rc = 0;
    if (!s) return FR_ENOMEM;
    int32_t n = 0;
    for (size_t off = 0; off < len;) {
        size_t k = fr__unicode_len_lead((uint8_t)text[off]);
        if (k > len - off) k = len - off;
        s[n] = (sym){(uint32_t)off, (uint32_t)k, n - 1, off + k == len ? -1 : n + 1};
        off += k;
        n++;
    }
    for (int32_t i = 1; i < n && !rc; i++) rc = try_add(v, text, s, i - 1, i, &h);
    while (h.n && !rc) {
        bigram b = heap_pop(&h);
        sym *l = &s[b.left], *r = &s[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue;   /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = b.left;
        rc = try_add(v, text, s, l->prev, b.left, &h);
        if (!rc) rc = try_add(v, text, s, b.left, l->next, &h);
    }
    for (int32_t i = 0; i != -1 && !rc; i = s[i].next) {
        int32_t id = fr__vocab_lookup(v, text + s[i].off, s[i].n);
        if (id >= 0) {
            rc = fr__idvec_push(out, id);
            continue;
        }
        for (uint32_t j = 0; j < s[i].n && !rc; j++) {
            int32_t bt = v->byte_tok[(uint8_t)text[s[i].off + j]];
            /* no byte token at all: llama.cpp would throw; the unknown
             * token is the closest honest answer */
            if (bt < 0) bt = v->unk;
            if (bt >= 0) rc = fr__idvec_push(out, bt);
        }
    }
    fr_free(h.v);
    fr_free(s);
    return rc;
}
