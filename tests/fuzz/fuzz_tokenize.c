/*
 * fuzz_tokenize.c — any bytes (invalid UTF-8 included) through the
 * tokenizers and back.
 *
 * Four vocabularies are loaded once from $FRUGAL_TESTDATA (default
 * ../shared/testdata): llama-spm (SentencePiece), gpt2-pre-llama-bpe
 * (byte-level BPE, llama3 split, ignore_merges), deepseek-coder (five
 * split regexes, user-defined tokens) and bert-bge (WordPiece: NFD,
 * lowercase, punctuation split, [UNK] words).  If one cannot be loaded the target
 * stops at once with a message (a fuzzer that tests nothing must not look
 * like one that finds nothing).  Each input is tokenized with parse_special off and on;
 * every id must be in range and every id must detokenize without error.
 * For byte-level BPE without special parsing the text must come back
 * byte for byte (every byte has a token there, and we keep invalid bytes).
 * fr_tokenize_mixed runs too, with two plain ranges placed by the input's
 * first bytes (ids in range), and with one plain range over everything
 * (the same ids as fr_tokenize without special parsing).
 */
#include "base/err.h"
#include "base/mem.h"
#include "engine/gguf.h"
#include "engine/vocab.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_VOCABS 4
static const char *const names[N_VOCABS] = {"llama-spm", "gpt2-pre-llama-bpe", "deepseek-coder",
                                            "bert-bge"};
static fr_gguf *ggufs[N_VOCABS];
static fr_vocab *vocabs[N_VOCABS];
static int loaded;   /* 0 = not tried, 1 = tried */

static void load_all(void) {
    const char *dir = getenv("FRUGAL_TESTDATA");
    if (!dir) dir = "../shared/testdata";
    for (int i = 0; i < N_VOCABS; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/vocab/ggml-vocab-%s.gguf", dir, names[i]);
        if (fr_gguf_open(path, &ggufs[i]) != 0 || fr_vocab_load(ggufs[i], &vocabs[i]) != 0) {
            fprintf(stderr, "fuzz_tokenize: cannot load %s: %s (set FRUGAL_TESTDATA)\n", path,
                    fr_errdetail());
            exit(2);
        }
    }
    loaded = 1;
}

static void run(const fr_vocab *v, const uint8_t *data, size_t size, bool parse_special,
                bool exact) {
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = fr_tokenize(v, (const char *)data, size, true, parse_special, &ids, &n);
    if (rc) {
        if (rc != FR_ENOMEM) abort();
        return;
    }
    char *text = malloc(n * 256 + 16);
    size_t pos = 0;
    fr_detok d;
    fr_detok_init(&d, v);
    int32_t nv = fr_vocab_n_tokens(v);
    size_t first = fr_vocab_add_bos(v) ? 1 : 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= nv) abort();
        char piece[64];
        size_t k = fr_token_to_piece(v, ids[i], true, piece, sizeof piece);
        (void)k;
        if (i < first) continue;   /* BOS: not part of the text */
        int w = fr_detok_push(&d, v, ids[i], text + pos, 256);
        if (w < 0) {
            /* a piece longer than 256 bytes: allowed to refuse, skip it */
            continue;
        }
        pos += (size_t)w;
    }
    int w = fr_detok_flush(&d, text + pos, 16);
    if (w < 0 || w > 3) abort();
    pos += (size_t)w;
    if (exact && (pos != size || memcmp(text, data, size) != 0)) {
        fprintf(stderr, "round trip differs: %zu bytes in, %zu out\n", size, pos);
        abort();
    }
    free(text);
    fr_free(ids);
}

/* Plain ranges: two placed by the first bytes, then one over everything. */
static void run_mixed(const fr_vocab *v, const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    size_t a = size ? data[0] % (size + 1) : 0;
    size_t b = size > 1 ? a + data[1] % (size - a + 1) : a;
    size_t c = size > 2 ? b + data[2] % (size - b + 1) : b;
    fr_span two[2] = {{0, a}, {b, c - b}};
    int32_t *ids = NULL, *ref = NULL;
    size_t n = 0, nr = 0;
    int rc = fr_tokenize_mixed(v, text, size, true, two, 2, &ids, &n);
    if (rc && rc != FR_ENOMEM) abort();
    for (size_t i = 0; !rc && i < n; i++)
        if (ids[i] < 0 || ids[i] >= fr_vocab_n_tokens(v)) abort();
    fr_free(ids);
    ids = NULL;
    fr_span all = {0, size};
    rc = fr_tokenize_mixed(v, text, size, true, &all, 1, &ids, &n);
    int rc2 = fr_tokenize(v, text, size, true, false, &ref, &nr);
    if (!rc && !rc2 && (n != nr || (n && memcmp(ids, ref, n * sizeof *ids)))) abort();
    fr_free(ids);
    fr_free(ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!loaded) load_all();
    if (size > 1 << 16) return 0;
    for (int i = 0; i < N_VOCABS; i++) {
        run(vocabs[i], data, size, false, i == 1);
        run(vocabs[i], data, size, true, false);
        run_mixed(vocabs[i], data, size);
    }
    return 0;
}
