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

/* A pair may merge when its concatenation is a token; the higher the
 * token's score, the sooner. */
static bool spm_prio(const void *ctx, const char *text, const fr__sym *l, const fr__sym *r,
                     float *prio) {
    const fr_vocab *v = ctx;
    int32_t id = fr__vocab_lookup(v, text + l->off, l->n + r->n);
    if (id < 0) return false;
    *prio = -v->scores[id];
    return true;
}

int fr__vocab_spm_tokenize(const fr_vocab *v, const char *text, size_t len, fr__idvec *out) {
    if (!len) return 0;
    fr__merge_scratch m = {0};
    int32_t n;
    int rc = fr__merge_run(&m, text, len, spm_prio, v, &n);
    const fr__sym *s = m.syms;
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
    fr__merge_scratch_deinit(&m);
    return rc;
}
