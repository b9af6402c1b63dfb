/*
 * test_vocab.c — the tokenizers against llama.cpp's reference outputs.
 *
 * - testdata/vocab/ggml-vocab-NAME.gguf{,.inp,.out}: every case tokenized
 *   with add_special = false, parse_special = false must equal the .out
 *   line exactly; every case also round-trips through the streaming
 *   detokenizer, whose chunks must each be valid UTF-8 (WordPiece, which
 *   lowercases and drops accents and spaces, only has to give valid UTF-8).
 * - testdata/refs/tiny-*.json: the `tokens` of each prompt (add_special =
 *   true) with the vocab of the matching model file.
 * - special tokens with and without parse_special, token pieces, EOG,
 *   a 4-byte emoji fed one byte token at a time, unknown tokenizer models
 *   and pre-tokenizers, allocation failures, speed.
 * - WordPiece: its word split, [CLS] ... [SEP] framing, [UNK] words, the
 *   normalizer keys (lowercase, strip_accents) and their defaults on a
 *   small written vocabulary, detokenized text.
 */
#include "harness.h"

#include "base/err.h"
#include "base/mem.h"
#include "base/utf8.h"
#include "engine/gguf.h"
#include "engine/vocab.h"
#include "engine/vocab_int.h"

#include <jansson.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#define SEP "\n__ggml_vocab_test__\n"

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    if (len) *len = (size_t)n;
    return buf;
}

static fr_vocab *open_vocab(const char *rel, fr_gguf **g) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", harness_testdata(), rel);
    *g = NULL;
    int rc = fr_gguf_open(path, g);
    CHECK_MSG(rc == 0, "open %s: %s %s", path, fr_errname(rc), fr_errdetail());
    if (rc) return NULL;
    fr_vocab *v = NULL;
    rc = fr_vocab_load(*g, &v);
    CHECK_MSG(rc == 0, "vocab %s: %s %s", path, fr_errname(rc), fr_errdetail());
    return v;
}

static void close_vocab(fr_vocab *v, fr_gguf *g) {
    fr_vocab_destroy(v);
    fr_gguf_close(g);
}

static void print_ids(FILE *f, const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) fprintf(f, " %d", ids[i]);
    fputc('\n', f);
}

/* Tokenize and compare with want[0..nwant). */
static bool tok_eq(const fr_vocab *v, const char *s, size_t len, bool add_special,
                   bool parse_special, const int32_t *want, size_t nwant) {
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = fr_tokenize(v, s, len, add_special, parse_special, &ids, &n);
    bool ok = rc == 0 && n == nwant && (n == 0 || !memcmp(ids, want, n * sizeof *ids));
    if (!ok) {
        fprintf(stderr, "  text \"%.*s\" (rc %d)\n  got: ", (int)len, s, rc);
        print_ids(stderr, ids, n);
        fprintf(stderr, "  want:");
        print_ids(stderr, want, nwant);
    }
    fr_free(ids);
    return ok;
}

/*
 * Decode ids through the streaming detokenizer; every chunk must be valid
 * UTF-8 on its own (when the whole text is); returns the concatenation
 * (malloc'd) and its length.
 */
static char *detok_all(const fr_vocab *v, const int32_t *ids, size_t n, bool want_valid,
                       size_t *out_len) {
    size_t cap = 256 * (n + 1), pos = 0;
    char *all = malloc(cap);
    fr_detok d;
    fr_detok_init(&d, v);
    bool chunks_ok = true;
    for (size_t i = 0; i < n; i++) {
        char buf[256];
        int k = fr_detok_push(&d, v, ids[i], buf, sizeof buf);
        CHECK_MSG(k >= 0, "detok push %d: %d", ids[i], k);
        if (k < 0) break;
        if (want_valid && !fr_utf8_valid(buf, (size_t)k)) chunks_ok = false;
        memcpy(all + pos, buf, (size_t)k);
        pos += (size_t)k;
    }
    char buf[16];
    int k = fr_detok_flush(&d, buf, sizeof buf);
    CHECK(k >= 0);
    if (k > 0) {
        if (want_valid) chunks_ok = false;   /* nothing may be left of valid text */
        memcpy(all + pos, buf, (size_t)k);
        pos += (size_t)k;
    }
    CHECK_MSG(chunks_ok, "a detokenizer chunk was not valid UTF-8 on its own");
    *out_len = pos;
    return all;
}

/* Parse one .out line of ids. */
static size_t parse_ids(const char *line, size_t len, int32_t *ids, size_t cap) {
    size_t n = 0;
    const char *p = line, *end = line + len;
    while (p < end) {
        while (p < end && *p == ' ') p++;
        if (p >= end) break;
        char *q;
        long x = strtol(p, &q, 10);
        if (q == p) break;
        if (n < cap) ids[n] = (int32_t)x;
        n++;
        p = q;
    }
    return n;
}

static void test_vocab_file(const char *name, bool exact_roundtrip) {
    char rel[256], path[512];
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", name);
    fr_gguf *g;
    fr_vocab *v = open_vocab(rel, &g);
    if (!v) return;
    size_t inp_len, out_len;
    snprintf(path, sizeof path, "%s/%s.inp", harness_testdata(), rel);
    char *inp = slurp(path, &inp_len);
    snprintf(path, sizeof path, "%s/%s.out", harness_testdata(), rel);
    char *out = slurp(path, &out_len);
    CHECK_MSG(inp && out, "cannot read %s cases", name);
    if (!inp || !out) {
        free(inp);
        free(out);
        close_vocab(v, g);
        return;
    }
    /* the .out lines (a final newline ends the last one) */
    size_t n_lines = 0;
    for (size_t i = 0; i < out_len; i++) n_lines += out[i] == '\n';
    if (out_len && out[out_len - 1] != '\n') n_lines++;
    /* the .inp cases: split on SEP; a file ending with SEP has no empty
     * case after it */
    size_t seplen = strlen(SEP), n_cases = 0;
    const char *p = inp, *end = inp + inp_len;
    bool trailing = inp_len >= seplen && !memcmp(end - seplen, SEP, seplen);
    const char *limit = trailing ? end - seplen : end;
    const char *line = out;
    size_t matched = 0, roundtrip = 0;
    for (;;) {
        const char *sep = memmem(p, (size_t)(limit - p), SEP, seplen);
        const char *case_end = sep ? sep : limit;
        size_t clen = (size_t)(case_end - p);
        n_cases++;
        const char *nl = memchr(line, '\n', (size_t)(out + out_len - line));
        size_t llen = nl ? (size_t)(nl - line) : (size_t)(out + out_len - line);
        if (n_cases <= n_lines) {
            int32_t want[1024];
            size_t nwant = parse_ids(line, llen, want, 1024);
            bool ok = nwant <= 1024 && tok_eq(v, p, clen, false, false, want, nwant);
            CHECK_MSG(ok, "%s case %zu differs from llama.cpp", name, n_cases);
            matched += ok;
            /* round trip */
            int32_t *ids;
            size_t n;
            if (fr_tokenize(v, p, clen, false, false, &ids, &n) == 0) {
                size_t dl;
                bool valid = fr_utf8_valid(p, clen);
                char *d = detok_all(v, ids, n, valid, &dl);
                bool same = exact_roundtrip ? dl == clen && !memcmp(d, p, clen)
                                            : fr_utf8_valid(d, dl);
                CHECK_MSG(same, "%s case %zu: detokenized \"%.*s\", want \"%.*s\"", name,
                          n_cases, (int)dl, d, (int)clen, p);
                roundtrip += same;
                free(d);
                fr_free(ids);
            }
            line = nl ? nl + 1 : out + out_len;
        }
        if (!sep) break;
        p = sep + seplen;
    }
    CHECK_MSG(n_cases == n_lines, "%s: %zu cases but %zu .out lines", name, n_cases, n_lines);
    printf("vocab %-20s %zu cases, %zu match llama.cpp, %zu %s\n", name, n_cases,
           matched, roundtrip, exact_roundtrip ? "round-trip" : "detokenize to valid UTF-8");
    free(inp);
    free(out);
    close_vocab(v, g);
}

/* The tokens arrays of refs/MODEL.json against the vocab of the model. */
static void test_refs(const char *model) {
    char path[512], rel[256];
    snprintf(path, sizeof path, "%s/refs/%s.json", harness_testdata(), model);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    CHECK_MSG(root != NULL, "%s: %s", path, jerr.text);
    if (!root) return;
    snprintf(rel, sizeof rel, "models/%s.gguf", model);
    fr_gguf *g;
    fr_vocab *v = open_vocab(rel, &g);
    json_t *cases = json_object_get(root, "cases");
    size_t i, ok = 0, total = json_array_size(cases);
    json_t *c;
    CHECK(total > 0);
    json_array_foreach(cases, i, c) {
        /* decoders: "prompt"; embedding models: "text" */
        json_t *pj = json_object_get(c, "prompt");
        if (!pj) pj = json_object_get(c, "text");
        const char *prompt = json_string_value(pj);
        size_t plen = json_string_length(pj);
        json_t *toks = json_object_get(c, "tokens");
        size_t nt = json_array_size(toks);
        int32_t *want = malloc((nt + 1) * sizeof *want);
        for (size_t k = 0; k < nt; k++)
            want[k] = (int32_t)json_integer_value(json_array_get(toks, k));
        bool same = v && prompt && tok_eq(v, prompt, plen, true, false, want, nt);
        CHECK_MSG(same, "%s: prompt %zu tokens differ", model, i);
        ok += same;
        free(want);
    }
    printf("refs  %-20s %zu of %zu prompts match\n", model, ok, total);
    if (v) close_vocab(v, g);
    json_decref(root);
}

static void test_special_tokens(void) {
    fr_gguf *g;
    fr_vocab *v = open_vocab("vocab/ggml-vocab-gpt-2.gguf", &g);
    if (v) {
        int32_t eot = fr_vocab_find(v, "<|endoftext|>", 13);
        CHECK_INT(eot, 50256);
        CHECK_INT(fr_vocab_token_type(v, eot), FR_TOKEN_CONTROL);
        CHECK(fr_vocab_is_eog(v, eot));
        CHECK(!fr_vocab_is_eog(v, 0));
        CHECK(!fr_vocab_add_bos(v));
        CHECK_STR(fr_vocab_pre_name(v), "gpt-2");
        CHECK_STR(fr_vocab_model_name(v), "gpt2");
        int32_t *ids;
        size_t n;
        CHECK(fr_tokenize(v, "<|endoftext|>", 13, false, true, &ids, &n) == 0);
        CHECK(n == 1 && ids[0] == eot);
        fr_free(ids);
        CHECK(fr_tokenize(v, "<|endoftext|>", 13, false, false, &ids, &n) == 0);
        CHECK(n > 1);
        for (size_t i = 0; i < n; i++) CHECK(ids[i] != eot);
        fr_free(ids);
        /* in the middle of text: "a" + special + " b" */
        CHECK(fr_tokenize(v, "a<|endoftext|> b", 16, false, true, &ids, &n) == 0);
        CHECK(n == 3 && ids[0] == fr_vocab_find(v, "a", 1) && ids[1] == eot &&
              ids[2] == fr_vocab_find(v, "\xc4\xa0" "b", 3));
        fr_free(ids);
        /* pieces: control tokens print only on request; Ġ is a space */
        char buf[64];
        CHECK_INT(fr_token_to_piece(v, eot, false, buf, sizeof buf), 0);
        size_t k = fr_token_to_piece(v, eot, true, buf, sizeof buf);
        CHECK(k == 13 && !memcmp(buf, "<|endoftext|>", 13));
        int32_t hello = fr_vocab_find(v, "\xc4\xa0" "Hello", 7);
        CHECK(hello >= 0);
        k = fr_token_to_piece(v, hello, false, buf, sizeof buf);
        CHECK(k == 6 && !memcmp(buf, " Hello", 6));
        CHECK_INT(fr_token_to_piece(v, hello, false, buf, 3), 6);   /* size needed */
        CHECK_INT(fr_token_to_piece(v, -1, true, buf, sizeof buf), 0);
        CHECK_INT(fr_token_to_piece(v, 50257, true, buf, sizeof buf), 0);

        /* a 4-byte emoji split over byte-level tokens: nothing comes out
         * until the character is complete */
        const char *emoji = "\xf0\x9f\xa6\x99";
        CHECK(fr_tokenize(v, emoji, 4, false, false, &ids, &n) == 0);
        CHECK(n >= 2);
        fr_detok d;
        fr_detok_init(&d, v);
        size_t got = 0;
        char all[16];
        for (size_t i = 0; i < n; i++) {
            int w = fr_detok_push(&d, v, ids[i], buf, sizeof buf);
            CHECK(w >= 0);
            if (i + 1 < n) CHECK_INT(w, 0);
            if (w > 0 && got + (size_t)w <= sizeof all) memcpy(all + got, buf, (size_t)w), got += (size_t)w;
        }
        CHECK_INT(fr_detok_flush(&d, buf, sizeof buf), 0);
        CHECK(got == 4 && !memcmp(all, emoji, 4));
        fr_free(ids);
        close_vocab(v, g);
    }

    v = open_vocab("vocab/ggml-vocab-llama-spm.gguf", &g);
    if (v) {
        CHECK_INT(fr_vocab_bos(v), 1);
        CHECK_INT(fr_vocab_eos(v), 2);
        CHECK(fr_vocab_add_bos(v));
        CHECK(!fr_vocab_add_eos(v));
        CHECK(fr_vocab_is_eog(v, 2));
        CHECK(!fr_vocab_is_eog(v, 1));
        CHECK_STR(fr_vocab_model_name(v), "llama");
        int32_t *ids;
        size_t n;
        /* parse_special: "<s>" and "</s>" are their ids; the text after a
         * special token gets the prefix space again */
        CHECK(fr_tokenize(v, "<s>", 3, false, true, &ids, &n) == 0);
        CHECK(n == 1 && ids[0] == 1);
        fr_free(ids);
        CHECK(fr_tokenize(v, "</s>", 4, false, true, &ids, &n) == 0);
        CHECK(n == 1 && ids[0] == 2);
        fr_free(ids);
        CHECK(fr_tokenize(v, "</s>", 4, false, false, &ids, &n) == 0);
        CHECK(n > 1);
        for (size_t i = 0; i < n; i++) CHECK(ids[i] != 2);
        fr_free(ids);
        CHECK(fr_tokenize(v, "<s>", 3, false, false, &ids, &n) == 0);
        CHECK(n > 1);
        for (size_t i = 0; i < n; i++) CHECK(ids[i] != 1);
        fr_free(ids);
        int32_t hello = fr_vocab_find(v, "\xe2\x96\x81" "Hello", 8);
        CHECK(hello >= 0);
        CHECK(fr_tokenize(v, "Hello</s>Hello", 14, true, true, &ids, &n) == 0);
        CHECK(n == 4 && ids[0] == 1 && ids[1] == hello && ids[2] == 2 && ids[3] == hello);
        fr_free(ids);
        /* empty text: only BOS with add_special, nothing without */
        CHECK(fr_tokenize(v, "", 0, true, false, &ids, &n) == 0);
        CHECK(n == 1 && ids[0] == 1);
        fr_free(ids);
        CHECK(fr_tokenize(v, NULL, 0, false, false, &ids, &n) == 0);
        CHECK(n == 0 && ids != NULL);
        fr_free(ids);
        CHECK_INT(fr_tokenize(v, NULL, 3, false, false, &ids, &n), FR_EINVAL);

        /* pieces: "▁" is a space, <0x41> is "A", <s> only on request */
        char buf[64];
        size_t k = fr_token_to_piece(v, hello, false, buf, sizeof buf);
        CHECK(k == 6 && !memcmp(buf, " Hello", 6));
        k = fr_token_to_piece(v, fr_vocab_find(v, "<0x41>", 6), false, buf, sizeof buf);
        CHECK(k == 1 && buf[0] == 'A');
        CHECK_INT(fr_token_to_piece(v, 1, false, buf, sizeof buf), 0);
        k = fr_token_to_piece(v, 1, true, buf, sizeof buf);
        CHECK(k == 3 && !memcmp(buf, "<s>", 3));

        /* the emoji falls back to 4 byte tokens; fed one at a time the
         * detokenizer holds them until the character is complete */
        const char *emoji = "\xf0\x9f\xa6\x99";
        CHECK(fr_tokenize(v, emoji, 4, false, false, &ids, &n) == 0);
        int32_t want[5] = {fr_vocab_find(v, "\xe2\x96\x81", 3), fr_vocab_find(v, "<0xF0>", 6),
                           fr_vocab_find(v, "<0x9F>", 6), fr_vocab_find(v, "<0xA6>", 6),
                           fr_vocab_find(v, "<0x99>", 6)};
        CHECK(n == 5 && !memcmp(ids, want, sizeof want));
        fr_detok d;
        fr_detok_init(&d, v);
        int w0 = fr_detok_push(&d, v, ids[0], buf, sizeof buf);   /* "▁": the stripped space */
        CHECK_INT(w0, 0);
        for (size_t i = 1; i < 4; i++) CHECK_INT(fr_detok_push(&d, v, ids[i], buf, sizeof buf), 0);
        int w = fr_detok_push(&d, v, ids[4], buf, sizeof buf);
        CHECK(w == 4 && !memcmp(buf, emoji, 4));
        fr_free(ids);
        /* an unfinished character comes out at flush; a byte that cannot
         * start a character goes out at once */
        fr_detok_init(&d, v);
        CHECK_INT(fr_detok_push(&d, v, want[1], buf, sizeof buf), 0);
        CHECK_INT(fr_detok_push(&d, v, want[2], buf, sizeof buf), 0);
        CHECK_INT(fr_detok_flush(&d, buf, sizeof buf), 2);
        CHECK(!memcmp(buf, "\xf0\x9f", 2));
        CHECK_INT(fr_detok_push(&d, v, want[4], buf, sizeof buf), 1);
        /* too small a buffer: an error and nothing consumed */
        fr_detok_init(&d, v);
        CHECK_INT(fr_detok_push(&d, v, hello, buf, 3), FR_EINVAL);
        CHECK_INT(fr_detok_push(&d, v, hello, buf, sizeof buf), 5);   /* "Hello": space stripped */
        /* BOS first: no space is stripped from the next piece */
        fr_detok_init(&d, v);
        CHECK_INT(fr_detok_push(&d, v, 1, buf, sizeof buf), 0);
        CHECK_INT(fr_detok_push(&d, v, hello, buf, sizeof buf), 6);
        close_vocab(v, g);
    }

    /* deepseek-coder: user-defined tokens are split out even without
     * parse_special; its control tokens only with it */
    v = open_vocab("vocab/ggml-vocab-deepseek-coder.gguf", &g);
    if (v) {
        int32_t *ids;
        size_t n;
        CHECK(fr_tokenize(v, "x<|EOT|>", 8, false, false, &ids, &n) == 0);
        CHECK(n == 2 && ids[1] == 32021);
        fr_free(ids);
        const char *bos = "<\xef\xbd\x9c" "begin\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>";
        CHECK(fr_tokenize(v, bos, strlen(bos), false, true, &ids, &n) == 0);
        CHECK(n == 1 && ids[0] == 32013);
        fr_free(ids);
        CHECK(fr_tokenize(v, bos, strlen(bos), false, false, &ids, &n) == 0);
        CHECK(n > 1);
        fr_free(ids);
        CHECK(fr_vocab_add_bos(v));
        CHECK_INT(fr_vocab_bos(v), 32013);
        CHECK(fr_vocab_is_eog(v, 32014));
        close_vocab(v, g);
    }
}

/* A small vocab GGUF written with the writer and opened again. */
static int tiny_vocab(const char *model, const char *pre, fr_gguf **g, fr_vocab **v,
                      char *path, size_t cap) {
    static const char *const toks[] = {"a", "b", "ab", "\xc4\xa0", "<|x|>", "c"};
    static const int32_t types[] = {1, 1, 1, 1, 3, 1};
    static const char *const merges[] = {"a b", "\xc4\xa0 a"};
    snprintf(path, cap, "/tmp/frugal-test-vocab-%d.gguf", (int)getpid());
    fr_gguf_writer *w;
    int rc = fr_gguf_writer_create(&w);
    if (rc) return rc;
    rc = fr_gguf_writer_set_str(w, "general.architecture", "gpt2");
    if (!rc) rc = fr_gguf_writer_set_str(w, "tokenizer.ggml.model", model);
    if (!rc && pre) rc = fr_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);
    if (!rc) rc = fr_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 6);
    if (!rc) rc = fr_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", FR_GGUF_I32, types, 6);
    if (!rc) rc = fr_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 2);
    if (!rc) rc = fr_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 4);
    if (!rc) rc = fr_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 99);   /* ignored */
    if (!rc) rc = fr_gguf_writer_save(w, path);
    fr_gguf_writer_destroy(w);
    if (rc) return rc;
    rc = fr_gguf_open(path, g);
    if (rc) return rc;
    return fr_vocab_load(*g, v);
}

static void test_tiny(void) {
    char path[256];
    fr_gguf *g = NULL;
    fr_vocab *v = NULL;
    int rc = tiny_vocab("gpt2", "no-such-pre", &g, &v, path, sizeof path);
    CHECK_INT(rc, FR_EUNSUPP);
    CHECK_MSG(strstr(fr_errdetail(), "no-such-pre") != NULL, "detail: %s", fr_errdetail());
    CHECK(v == NULL);
    fr_gguf_close(g);
    unlink(path);

    g = NULL;
    rc = tiny_vocab("t5", "default", &g, &v, path, sizeof path);
    CHECK_INT(rc, FR_EUNSUPP);
    CHECK_MSG(strstr(fr_errdetail(), "t5") != NULL, "detail: %s", fr_errdetail());
    fr_gguf_close(g);
    unlink(path);

    /* no pre key: "default"; bad bos id ignored (default 11 >= n_vocab: none) */
    g = NULL;
    v = NULL;
    rc = tiny_vocab("gpt2", NULL, &g, &v, path, sizeof path);
    CHECK_INT(rc, 0);
    if (v) {
        CHECK_STR(fr_vocab_pre_name(v), "default");
        CHECK_INT(fr_vocab_bos(v), -1);
        CHECK_INT(fr_vocab_eos(v), 4);
        CHECK(fr_vocab_is_eog(v, 4));
        int32_t *ids;
        size_t n;
        /* pieces "ab", " ab", " c": a+b (rank 0) beats Ġ+a (rank 1), and
         * Ġ+ab is no merge */
        CHECK(fr_tokenize(v, "ab ab c", 7, true, false, &ids, &n) == 0);
        CHECK_MSG(n == 5 && ids[0] == 2 && ids[1] == 3 && ids[2] == 2 && ids[3] == 3 &&
                      ids[4] == 5,
                  "got %zu ids", n);
        fr_free(ids);
        /* allocation failures: every one gives FR_ENOMEM and leaks nothing */
        size_t before = fr_mem_in_use();
        int fails = 0;
        for (long k = 0; k < 200; k++) {
            fr_mem_fail_after(k);
            rc = fr_tokenize(v, "ab ab <|x|>c", 12, true, true, &ids, &n);
            fr_mem_fail_after(-1);
            if (rc == 0) {
                fr_free(ids);
                break;
            }
            fails++;
            CHECK_INT(rc, FR_ENOMEM);
        }
        CHECK(fails > 0);
        CHECK_INT(fr_mem_in_use(), before);
        fr_vocab_destroy(v);
        before = fr_mem_in_use();
        fails = 0;
        for (long k = 0; k < 400; k++) {
            fr_vocab *v2 = NULL;
            fr_mem_fail_after(k);
            rc = fr_vocab_load(g, &v2);
            fr_mem_fail_after(-1);
            if (rc == 0) {
                fr_vocab_destroy(v2);
                break;
            }
            fails++;
            CHECK_INT(rc, FR_ENOMEM);
            CHECK(v2 == NULL);
        }
        CHECK(fails > 0);
        CHECK_INT(fr_mem_in_use(), before);
    }
    fr_gguf_close(g);
    unlink(path);
}

/* Words of the WordPiece split, joined with '|'. */
static void collect_word(void *ctx, const char *w, size_t n);

static char *wpm_words(const fr_vocab *v, const char *text, char *buf, size_t cap) {
    struct { char *buf; size_t n, cap; } acc = {buf, 0, cap};
    buf[0] = 0;
    CHECK_INT(fr__vocab_wpm_split(v, text, strlen(text), collect_word, &acc), 0);
    return buf;
}

static void collect_word(void *ctx, const char *w, size_t n) {
    struct { char *buf; size_t n, cap; } *acc = ctx;
    if (acc->n + n + 2 < acc->cap) {
        memcpy(acc->buf + acc->n, w, n);
        acc->n += n;
        acc->buf[acc->n++] = '|';
        acc->buf[acc->n] = 0;
    }
}

static void test_wordpiece(void) {
    fr_gguf *g;
    fr_vocab *v = open_vocab("vocab/ggml-vocab-bert-bge.gguf", &g);
    if (!v) return;
    CHECK_STR(fr_vocab_model_name(v), "bert");
    CHECK_STR(fr_vocab_pre_name(v), "bert-bge");
    CHECK_INT(fr_vocab_bos(v), 101);
    CHECK_INT(fr_vocab_sep(v), 102);
    CHECK_INT(fr_vocab_eos(v), -1);
    CHECK(fr_vocab_add_bos(v));
    CHECK(!fr_vocab_add_eos(v));
    CHECK(!fr_vocab_is_eog(v, 102));

    /* the split: NFD and marks dropped, lowercase, punctuation and CJK
     * alone, ASCII symbols alone (but not other symbols), controls and
     * U+200B (Cf) gone, whitespace of every kind */
    char buf[512];
    CHECK_STR(wpm_words(v, "H\xc3\xa9llo, WORLD!! \xe6\x9d\xb1\xe4\xba\xacx\tcafe\xcc\x81\xe2\x80\x8b"
                           "z a+b=c \xe2\x82\xac" "5 \xc2\xa0 end\x01.", buf, sizeof buf),
              "hello|,|world|!|!|\xe6\x9d\xb1|\xe4\xba\xac|x|cafez|a|+|b|=|c|\xe2\x82\xac" "5|end|.|");
    /* invalid UTF-8 bytes are U+FFFD: dropped */
    CHECK_STR(wpm_words(v, "ab\xff" "cd \xc3", buf, sizeof buf), "abcd|");

    int32_t *ids;
    size_t n;
    int32_t hello = fr_vocab_find(v, "\xe2\x96\x81hello", 8), world = fr_vocab_find(v, "\xe2\x96\x81world", 8);
    CHECK_INT(hello, 7592);
    CHECK_INT(world, 2088);
    /* add_special frames the text as [CLS] ... [SEP]; empty text too */
    int32_t want1[] = {101, 7592, 2088, 102};
    CHECK(tok_eq(v, "Hello world", 11, true, false, want1, 4));
    int32_t want2[] = {101, 102};
    CHECK(tok_eq(v, "", 0, true, false, want2, 2));
    CHECK(tok_eq(v, "  \t", 3, true, false, want2, 2));
    /* a word that cannot be covered is one [UNK] */
    int32_t want3[] = {7592, 100, 2088};
    CHECK(tok_eq(v, "hello \xf0\x9f\xa6\x99\xf0\x9f\xa6\x99 world", 20, false, false, want3, 3));
    /* parse_special: [SEP] and [CLS] in the text are their ids; without it
     * they are brackets and words */
    int32_t want4[] = {7592, 102, 2088, 101};
    CHECK(tok_eq(v, "hello[SEP] world [CLS]", 22, false, true, want4, 4));
    CHECK(fr_tokenize(v, "hello[SEP]", 10, false, false, &ids, &n) == 0);
    CHECK(n > 2);
    for (size_t i = 0; i < n; i++) CHECK(ids[i] != 102);
    fr_free(ids);

    /* detokenize: "▁" is a space, the first one dropped; [CLS] and [SEP]
     * print only on request */
    char out[256];
    CHECK(fr_tokenize(v, "Hello, world!", 13, true, false, &ids, &n) == 0);
    size_t dl;
    char *d = detok_all(v, ids, n, true, &dl);
    CHECK_MSG(dl == 15 && !memcmp(d, "hello , world !", 15), "detok \"%.*s\"", (int)dl, d);
    free(d);
    fr_free(ids);
    CHECK_INT(fr_token_to_piece(v, 101, false, out, sizeof out), 0);
    CHECK_INT(fr_token_to_piece(v, 101, true, out, sizeof out), 5);
    CHECK(!memcmp(out, "[CLS]", 5));
    CHECK_INT(fr_token_to_piece(v, hello, false, out, sizeof out), 6);
    CHECK(!memcmp(out, " hello", 6));
    /* a continuation piece has no space: "Raspberry" = ▁ras + p + berry */
    CHECK(fr_tokenize(v, "Raspberry", 9, false, false, &ids, &n) == 0);
    CHECK(n == 3);
    d = detok_all(v, ids, n, true, &dl);
    CHECK_MSG(dl == 9 && !memcmp(d, "raspberry", 9), "detok \"%.*s\"", (int)dl, d);
    free(d);
    fr_free(ids);

    /* a long word without any match and a long text: no quadratic blow-up */
    static char big[1 << 16];
    for (size_t i = 0; i < sizeof big; i++) big[i] = "abcdefghij"[i % 10];
    CHECK(fr_tokenize(v, big, sizeof big, true, true, &ids, &n) == 0);
    CHECK(n >= 3);
    fr_free(ids);

    /* allocation failures: FR_ENOMEM and nothing leaked */
    size_t before = fr_mem_in_use();
    int fails = 0;
    for (long k = 0; k < 100; k++) {
        fr_mem_fail_after(k);
        int rc = fr_tokenize(v, "Hello, world! caf\xc3\xa9 [SEP] x", 27, true, true, &ids, &n);
        fr_mem_fail_after(-1);
        if (rc == 0) {
            fr_free(ids);
            break;
        }
        fails++;
        CHECK_INT(rc, FR_ENOMEM);
    }
    CHECK(fails > 0);
    CHECK_INT(fr_mem_in_use(), before);
    close_vocab(v, g);
}

/* A small WordPiece vocabulary with the normalizer keys set (lc, sa: 1
 * true, 0 false, -1 absent). */
static fr_vocab *wpm_vocab(int lc, int sa, fr_gguf **g, char *path, size_t cap) {
    static const char *const toks[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "\xe2\x96\x81" "ab",
                                       "c", "\xe2\x96\x81" "Ab", "\xe2\x96\x81\xc3\xa9",
                                       "\xe2\x96\x81" "e", "\xe2\x96\x81\xc3\x89"};
    static const int32_t types[] = {3, 3, 3, 3, 1, 1, 1, 1, 1, 1};
    snprintf(path, cap, "/tmp/frugal-test-wpm-%d.gguf", (int)getpid());
    fr_gguf_writer *w;
    *g = NULL;
    if (fr_gguf_writer_create(&w)) return NULL;
    int rc = fr_gguf_writer_set_str(w, "tokenizer.ggml.model", "bert");
    if (!rc) rc = fr_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 10);
    if (!rc) rc = fr_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", FR_GGUF_I32, types, 10);
    if (!rc) rc = fr_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 2);
    if (!rc) rc = fr_gguf_writer_set_u32(w, "tokenizer.ggml.seperator_token_id", 3);
    if (!rc) rc = fr_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 1);
    if (!rc && lc >= 0) rc = fr_gguf_writer_set_bool(w, "tokenizer.ggml.normalizer.lowercase", lc);
    if (!rc && sa >= 0) rc = fr_gguf_writer_set_bool(w, "tokenizer.ggml.normalizer.strip_accents", sa);
    if (!rc) rc = fr_gguf_writer_save(w, path);
    fr_gguf_writer_destroy(w);
    fr_vocab *v = NULL;
    if (!rc) rc = fr_gguf_open(path, g);
    if (!rc) rc = fr_vocab_load(*g, &v);
    CHECK_MSG(rc == 0, "wpm vocab: %s %s", fr_errname(rc), fr_errdetail());
    return v;
}

static void test_wordpiece_keys(void) {
    static const struct {
        int lc, sa;
        const char *text;
        int32_t want[4];
        size_t n;
    } cases[] = {
        /* defaults: lowercase, strip accents */
        {-1, -1, "ABc", {4, 5}, 2},
        {-1, -1, "\xc3\xa9", {8}, 1},
        {-1, -1, "e\xcc\x81", {8}, 1},              /* decomposed input: the mark goes */
        {-1, -1, "\xc3\x89 abc", {8, 4, 5}, 3},
        /* lowercase off: strip_accents follows it (off) */
        {0, -1, "Abc", {6, 5}, 2},
        {0, -1, "\xc3\xa9", {7}, 1},
        {0, -1, "\xc3\x89", {9}, 1},
        {0, -1, "ABc", {1}, 1},                     /* "▁A..." is no token: [UNK] */
        /* lowercase off, strip_accents on */
        {0, 1, "\xc3\xa9 Abc", {8, 6, 5}, 3},
        /* lowercase on, strip_accents off: É → é, kept */
        {1, 0, "\xc3\x89", {7}, 1},
        {1, 0, "ABC", {4, 5}, 2},
    };
    char path[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fr_gguf *g;
        fr_vocab *v = wpm_vocab(cases[i].lc, cases[i].sa, &g, path, sizeof path);
        if (v) {
            bool ok = tok_eq(v, cases[i].text, strlen(cases[i].text), false, false, cases[i].want,
                             cases[i].n);
            CHECK_MSG(ok, "wordpiece keys case %zu (lowercase %d, strip_accents %d)", i,
                      cases[i].lc, cases[i].sa);
            if (i == 0) {   /* the ids from the keys: [CLS] 2, [SEP] 3 */
                int32_t want[] = {2, 4, 5, 3};
                CHECK(tok_eq(v, "abc", 3, true, false, want, 4));
            }
        }
        fr_vocab_destroy(v);
        fr_gguf_close(g);
        unlink(path);
    }
}

/* Pieces of the pre-tokenizers, checked by hand against the regexes. */
typedef struct pieces {
    char buf[512];
    size_t n;
} pieces;

static void collect(void *ctx, const char *s, size_t len) {
    pieces *p = ctx;
    if (p->n + len + 1 < sizeof p->buf) {
        memcpy(p->buf + p->n, s, len);
        p->n += len;
        p->buf[p->n++] = '|';
        p->buf[p->n] = 0;
    }
}

static void test_split(void) {
    fr_gguf *g;
    fr_vocab *v = open_vocab("vocab/ggml-vocab-gpt-2.gguf", &g);
    if (v) {
        pieces p = {{0}, 0};
        fr__vocab_bpe_split(v, "Hello  world's 123!!\n", 21, collect, &p);
        CHECK_STR(p.buf, "Hello| | world|'s| 123|!!|\n|");
        close_vocab(v, g);
    }
    v = open_vocab("vocab/ggml-vocab-gpt2-pre-llama-bpe.gguf", &g);
    if (v) {
        CHECK(fr_vocab_add_bos(v));    /* llama3 pre-tokenizers add BOS by default */
        pieces p = {{0}, 0};
        fr__vocab_bpe_split(v, "I'M 12345 ok\n\n x", 16, collect, &p);
        CHECK_STR(p.buf, "I|'M| |123|45| ok|\n\n| x|");
        close_vocab(v, g);
    }
}

/* Every pre-tokenizer name we know loads (its regexes compile); a few
 * splits worked out by hand from the regex lists. */
static void test_pretok_names(void) {
    static const char *const known[] = {
        "default", "llama3", "llama-v3", "llama-bpe", "falcon3", "qwen2", "deepseek-r1-qwen",
        "gpt-2", "phi-2", "mpt", "olmo", "starcoder", "refact", "falcon", "deepseek-coder",
        "deepseek-llm", "dbrx", "smaug-bpe", "stablelm2", "command-r", NULL};
    static const struct { const char *pre, *text, *want; } cases[] = {
        {"qwen2", "abc 12345", "abc| |1|2|3|4|5|"},
        {"default", "Hello, world 12345!", "Hello|,| world| |123|45|!|"},
        {"starcoder", "ab12 c", "ab|1|2| c|"},
        {"falcon", "a+b=c 1234", "a|+|b|=|c| |123|4|"},
        {"deepseek-llm", "Hello, World!\n  x  ", "Hello|,| World|!|\n| | x|  |"},
        {"deepseek-llm", "ab \xe4\xb8\xad\xe6\x96\x87 42", "ab| |\xe4\xb8\xad\xe6\x96\x87| |42|"},
    };
    char path[256];
    for (const char *const *n = known; *n; n++) {
        fr_gguf *g = NULL;
        fr_vocab *v = NULL;
        int rc = tiny_vocab("gpt2", *n, &g, &v, path, sizeof path);
        CHECK_MSG(rc == 0, "pre-tokenizer %s: %s %s", *n, fr_errname(rc), fr_errdetail());
        if (v) CHECK_STR(fr_vocab_pre_name(v), *n);
        for (size_t i = 0; v && i < sizeof cases / sizeof cases[0]; i++) {
            if (strcmp(cases[i].pre, *n)) continue;
            pieces p = {{0}, 0};
            fr__vocab_bpe_split(v, cases[i].text, strlen(cases[i].text), collect, &p);
            CHECK_STR(p.buf, cases[i].want);
        }
        fr_vocab_destroy(v);
        fr_gguf_close(g);
        unlink(path);
    }
}

/* One vocab shared by two threads: same ids as a single thread. */
typedef struct thr {
    const fr_vocab *v;
    const char *text;
    size_t len;
    const int32_t *want;
    size_t nwant;
    int bad;
} thr;

static void *thr_main(void *arg) {
    thr *t = arg;
    for (int rep = 0; rep < 50; rep++) {
        int32_t *ids;
        size_t n;
        if (fr_tokenize(t->v, t->text, t->len, true, true, &ids, &n) != 0) {
            t->bad++;
            continue;
        }
        if (n != t->nwant || memcmp(ids, t->want, n * sizeof *ids)) t->bad++;
        fr_free(ids);
    }
    return NULL;
}

static void test_threads(void) {
    fr_gguf *g;
    fr_vocab *v = open_vocab("vocab/ggml-vocab-gpt2-pre-llama-bpe.gguf", &g);
    if (!v) return;
    const char *text = "Hello, y'all! How are you \xf0\x9f\x98\x81 ?<|endoftext|> 3333 naïve";
    int32_t *want;
    size_t nwant;
    CHECK(fr_tokenize(v, text, strlen(text), true, true, &want, &nwant) == 0);
    thr t[2] = {{v, text, strlen(text), want, nwant, 0}, {v, text, strlen(text), want, nwant, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, thr_main, &t[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    CHECK_INT(t[0].bad + t[1].bad, 0);
    fr_free(want);
    close_vocab(v, g);
}

static void test_speed(void) {
    static const char *const names[] = {"llama-spm", "gpt-2", "gpt2-pre-llama-bpe", "bert-bge"};
    char text[4096];
    const char *para = "The quick brown fox jumps over the lazy dog; 1234567 naïve café 東京 🦙! ";
    size_t pl = strlen(para);
    for (size_t i = 0; i < sizeof text; i++) text[i] = para[i % pl];
    text[sizeof text - 1] = '.';
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char rel[128];
        snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", names[k]);
        fr_gguf *g;
        fr_vocab *v = open_vocab(rel, &g);
        if (!v) continue;
        double best = 1e9;
        for (int rep = 0; rep < 5; rep++) {
            struct timespec a, b;
            clock_gettime(CLOCK_MONOTONIC, &a);
            int32_t *ids;
            size_t n;
            int rc = fr_tokenize(v, text, sizeof text, true, true, &ids, &n);
            clock_gettime(CLOCK_MONOTONIC, &b);
            CHECK(rc == 0 && n > 500);
            fr_free(ids);
            double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
            if (ms < best) best = ms;
        }
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
        double limit = 200;
#else
        double limit = 10;
#endif
        printf("speed %-20s 4 KB in %.2f ms\n", names[k], best);
        CHECK_MSG(best < limit, "%s: 4 KB took %.2f ms", names[k], best);
        close_vocab(v, g);
    }
}

int main(void) {
    test_vocab_file("llama-spm", true);
    test_vocab_file("gpt-2", true);
    test_vocab_file("deepseek-coder", true);
    test_vocab_file("gpt2-pre-llama-bpe", true);
    test_vocab_file("bert-bge", false);
    test_refs("tiny-llama-f32");
    test_refs("tiny-llama-f16");
    test_refs("tiny-llama-q8_0");
    test_refs("tiny-llama-q4_0");
    test_refs("tiny-llama-q4_k_m");
    test_refs("tiny-llama-q6_k");
    test_refs("tiny-qwen2-q8_0");
    test_refs("tiny-bert-f16");
    test_refs("tiny-bert-q8_0");
    test_special_tokens();
    test_wordpiece();
    test_wordpiece_keys();
    test_tiny();
    test_split();
    test_pretok_names();
    test_threads();
    test_speed();
    return harness_done();
}
