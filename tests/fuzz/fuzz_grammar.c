/*
 * fuzz_grammar.c — any bytes through the GBNF parser and, when they
 * parse, the matcher (engine/grammar.h).
 *
 * The input is a grammar, then optionally a NUL byte and text to match.
 * A failed parse must be FR_EINVAL with a detail that names a line and
 * column (or the start rule, or the size limit), never anything else;
 * a grammar that parses gets a matcher over the llama-spm vocabulary
 * (loaded once from $FRUGAL_TESTDATA; without it the target stops at
 * once with a message), whose first masks are checked against
 * fr_gmatcher_allows for about 512 of the allowed tokens (evenly spread)
 * and counted, and which then takes the
 * text byte by byte: a refused byte leaves the state as it was
 * (fr_gmatcher_allows said no first), an accepted one must have been
 * allowed.  Bounds (FR_ETOOLONG) are fine; nothing may leak or crash.
 */
#include "base/err.h"
#include "base/mem.h"
#include "engine/gguf.h"
#include "engine/grammar.h"
#include "engine/vocab.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fr_gguf *gguf;
static fr_vocab *vocab;
static fr_gvocab *gv;

static void load(void) {
    const char *dir = getenv("FRUGAL_TESTDATA");
    if (!dir) dir = "../shared/testdata";
    char path[1024];
    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-llama-spm.gguf", dir);
    if (fr_gguf_open(path, &gguf) != 0 || fr_vocab_load(gguf, &vocab) != 0 ||
        fr_gvocab_create(vocab, &gv) != 0) {
        fprintf(stderr, "fuzz_grammar: cannot load %s: %s (set FRUGAL_TESTDATA)\n", path, fr_errdetail());
        exit(2);
    }
}

static void check_mask(fr_gmatcher *m) {
    const uint64_t *mask;
    int32_t n = 0;
    int rc = fr_gmatcher_mask(m, &mask, &n);
    if (rc) {
        if (rc != FR_ETOOLONG && rc != FR_ENOMEM) abort();
        return;
    }
    int32_t nv = fr_gvocab_n_tokens(gv), count = 0;
    int32_t stride = n > 512 ? n / 512 : 1;   /* check about 512 of them: speed */
    for (int32_t t = 0; t < nv; t++) {
        if (!(mask[t >> 6] >> (t & 63) & 1)) continue;
        if (count++ % stride) continue;
        if (fr_vocab_is_eog(vocab, t)) {
            if (!fr_gmatcher_accepting(m)) abort();
            continue;
        }
        char buf[FR_GRAMMAR_MAX_TOKEN];
        size_t l = fr_token_to_piece(vocab, t, false, buf, sizeof buf);
        int a = fr_gmatcher_allows(m, buf, l);
        if (a == 0) abort();   /* the mask allowed what the matcher refuses */
    }
    if (count != n) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!gv) load();
    const uint8_t *nul = memchr(data, 0, size);
    size_t glen = nul ? (size_t)(nul - data) : size;
    const char *text = nul ? (const char *)nul + 1 : NULL;
    size_t tlen = nul ? size - glen - 1 : 0;
    fr_grammar *g = NULL;
    fr_errclear();
    int rc = fr_grammar_parse((const char *)data, glen, &g);
    if (rc) {
        const char *d = fr_errdetail();
        if (rc != FR_EINVAL && rc != FR_ENOMEM) abort();
        if (rc == FR_EINVAL && !strstr(d, "line ") && !strstr(d, "'root'") && !strstr(d, "bytes"))
            abort();
        return 0;
    }
    fr_gmatcher *m = NULL;
    rc = fr_gmatcher_create(g, gv, NULL, &m);
    fr_grammar_unref(g);   /* the matcher holds its own reference */
    if (rc) {
        if (rc != FR_ETOOLONG && rc != FR_ENOMEM) abort();
        return 0;
    }
    check_mask(m);
    for (size_t i = 0; i < tlen && i < 4096; i++) {
        int a = fr_gmatcher_allows(m, text + i, 1);
        rc = fr_gmatcher_accept_bytes(m, text + i, 1);
        if (a < 0 || rc == FR_ETOOLONG) break;
        if ((a == 1) != (rc == 0)) abort();
        if (rc) continue;   /* refused: the same state goes on */
        if (i < 3) check_mask(m);
        if (fr_gmatcher_done(m) && !fr_gmatcher_accepting(m)) abort();
    }
    fr_gmatcher_destroy(m);
    return 0;
}
