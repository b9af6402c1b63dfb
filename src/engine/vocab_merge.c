/*
 * vocab_merge.c — the merge loop that SentencePiece BPE and byte-level BPE
 * share.
 *
 * The text is split into UTF-8 characters, kept as a doubly linked chain of
 * symbols.  Every adjacent pair the tokenizer can merge is queued in a
 * min-heap keyed by (priority, then leftmost); the best pair is merged and
 * its new neighbours are queued.  Entries whose symbols changed since they
 * were queued are stale and skipped (their byte size no longer matches).
 * The tokenizer supplies the priority: SPM uses minus the merged token's
 * score, BPE the merge rank.
 */
#include "base/err.h"
#include "base/mem.h"
#include "engine/unicode.h"
#include "engine/vocab_int.h"

/* a comes out before b */
static bool before(const fr__bigram *a, const fr__bigram *b) {
    return a->prio < b->prio || (a->prio == b->prio && a->left < b->left);
}

static int heap_push(fr__merge_scratch *m, fr__bigram b) {
    if (m->n_heap == m->cap_heap) {
        size_t cap = m->cap_heap ? 2 * m->cap_heap : 64;
        fr__bigram *p = fr_realloc(m->heap, cap * sizeof *p);
        if (!p) return FR_ENOMEM;
        m->heap = p;
        m->cap_heap = cap;
    }
    size_t i = m->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&b, &m->heap[parent])) break;
        m->heap[i] = m->heap[parent];
        i = parent;
    }
    m->heap[i] = b;
    return 0;
}

static fr__bigram heap_pop(fr__merge_scratch *m) {
    fr__bigram top = m->heap[0], last = m->heap[--m->n_heap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m->n_heap) break;
        if (c + 1 < m->n_heap && before(&m->heap[c + 1], &m->heap[c])) c++;
        if (!before(&m->heap[c], &last)) break;
        m->heap[i] = m->heap[c];
        i = c;
    }
    if (m->n_heap) m->heap[i] = last;
    return top;
}

static int queue(fr__merge_scratch *m, const char *text, int32_t left, int32_t right,
                 fr__pair_prio_fn prio, const void *ctx) {
    if (left < 0 || right < 0) return 0;
    const fr__sym *s = m->syms;
    float p;
    if (!prio(ctx, text, &s[left], &s[right], &p)) return 0;
    return heap_push(m, (fr__bigram){p, left, right, s[left].n + s[right].n});
}

int fr__merge_run(fr__merge_scratch *m, const char *text, size_t len, fr__pair_prio_fn prio,
                  const void *ctx, int32_t *n_syms) {
    *n_syms = 0;
    if (len > UINT32_MAX / 2) return FR_EINVAL;
    if (len > m->cap_syms) {
        fr__sym *p = fr_realloc(m->syms, len * sizeof *p);
        if (!p) return FR_ENOMEM;
        m->syms = p;
        m->cap_syms = len;
    }
    fr__sym *s = m->syms;
    int32_t n = 0;
    for (size_t off = 0; off < len;) {
        size_t k = fr__unicode_len_lead((uint8_t)text[off]);
        if (k > len - off) k = len - off;
        s[n] = (fr__sym){(uint32_t)off, (uint32_t)k, n - 1, off + k == len ? -1 : n + 1};
        off += k;
        n++;
    }
    m->n_heap = 0;
    int rc = 0;
    for (int32_t i = 1; i < n && !rc; i++) rc = queue(m, text, i - 1, i, prio, ctx);
    while (m->n_heap && !rc) {
        fr__bigram b = heap_pop(m);
        fr__sym *l = &s[b.left], *r = &s[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = b.left;
        rc = queue(m, text, l->prev, b.left, prio, ctx);
        if (!rc) rc = queue(m, text, b.left, l->next, prio, ctx);
    }
    *n_syms = n;
    return rc;
}

void fr__merge_scratch_deinit(fr__merge_scratch *m) {
    fr_free(m->syms);
    fr_free(m->heap);
    *m = (fr__merge_scratch){0};
}
