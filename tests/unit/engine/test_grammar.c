/*
 * test_grammar.c — GBNF grammars (engine/grammar.h): the parser accepts
 * llama.cpp's syntax and refuses bad grammars with line, column and the
 * problem; the matcher accepts exactly the sentences of small grammars
 * (byte by byte, partial UTF-8 included); bounds hold against hostile
 * grammars; and token masks over the tiny-llama (SentencePiece, byte
 * fallback) and tiny-qwen2 (byte-level BPE) vocabularies equal a
 * brute-force check of every token at every step of random walks, with
 * the mask cache answering states seen again.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/grammar.h"
#include "engine/model.h"
#include "engine/vocab.h"
#include "harness.h"

static fr_grammar *parse(const char *text) {
    fr_grammar *g = NULL;
    int rc = fr_grammar_parse(text, strlen(text), &g);
    CHECK_MSG(rc == 0, "parse %s: %s", text, fr_errdetail());
    return g;
}

/* The parse fails with FR_EINVAL and a detail containing want. */
static void refuse(const char *text, const char *want) {
    fr_grammar *g = NULL;
    int rc = fr_grammar_parse(text, strlen(text), &g);
    CHECK_MSG(rc == FR_EINVAL && strstr(fr_errdetail(), want), "refuse %s: rc %d, '%s' (want '%s')",
              text, rc, fr_errdetail(), want);
    fr_grammar_unref(g);
}

static void test_parse(void) {
    const char *good[] = {
        "root ::= \"a\"",
        "root ::= \"yes\" | \"no\"",
        "root ::= x y\nx ::= [a-z]+\ny ::= [^a-z\\n]*  # comment\n",
        "root ::= (\"a\" | \"b\")* \"c\"? [0-9]{2} [0-9]{1,} [0-9]{0,3} .",
        "# leading comment\n\nroot ::=\n  \"x\"\n  | \"y\"\n",
        "root ::= \"\\x41\\u00e9\\U0001F600\\t\\n\\r\\\"\\\\\"",
        "root ::= [\\]\\[\\-a-c\\x00-\\x1F]",
        "root ::= obj\nobj ::= \"{\" (pair (\",\" pair)*)? \"}\"\npair ::= \"k\" \":\" obj | \"v\"",
        "root ::= \"\"",
        "root ::= ( \"a\"\n  \"b\" )",
        "root-name_2 ::= \"a\"\nroot ::= root-name_2",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) fr_grammar_unref(parse(good[i]));
    refuse("root ::= foo", "line 1, column 10: undefined rule 'foo'");
    refuse("root ::= \"abc", "unterminated literal");
    refuse("root ::= [abc", "unterminated character class");
    refuse("root ::= []", "empty character class");
    refuse("start ::= \"a\"", "no rule named 'root'");
    refuse("root ::= root \"a\"", "left recursion");
    refuse("root ::= a\na ::= b \"x\"\nb ::= \"\" | a", "left recursion");
    refuse("root ::= (\"a\"?)*", "left recursion");
    refuse("root ::= \"a\"\nroot ::= \"b\"", "line 2, column 1: rule 'root' is defined twice");
    refuse("root ::= [z-a]", "range end");
    refuse("root ::= \"a\"{5,2}", "maximum is below");
    refuse("root ::= \"a\"{2000}", "repetition count above");
    refuse("root ::= * \"a\"", "nothing before it");
    refuse("root ::= (\"a\"", "unclosed '('");
    refuse("root ::= \"\\q\"", "unknown escape");
    refuse("root ::= \"\\x4\"", "hexadecimal digits");
    refuse("root \"a\"", "'::=' expected");
    refuse("root ::= \"a\" )", "unexpected ')'");
    refuse("root ::= \"a\"\n\n   x ::= \"b\" @", "line 3, column 14: unexpected character '@'");
    /* nested repetitions stay small: each level is one rule */
    fr_grammar_unref(parse("root ::= ((\"ab\"{1000}){1000})"));
    /* too large: {0,1000} makes 1000 rules; 17 of them pass the limit */
    char many[512] = "root ::=";
    for (int i = 0; i < 17; i++) strcat(many, " \"a\"{0,1000}");
    refuse(many, "too large");
    /* the text limit */
    size_t big = FR_GRAMMAR_MAX_TEXT + 1;
    char *t = fr_malloc(big);
    memset(t, ' ', big);
    memcpy(t, "root ::= \"a\"", 12);
    fr_grammar *g = NULL;
    CHECK_INT(fr_grammar_parse(t, big, &g), FR_EINVAL);
    fr_free(t);
}

/* A vocabulary for matchers that compute no masks here. */
static fr_gvocab *empty_vocab;

/* Does g accept s as a whole (byte by byte, split at every position)? */
static int matches(fr_grammar *g, const char *s) {
    size_t n = strlen(s);
    int result = -1;
    for (size_t split = 0; split <= n; split++) {
        fr_gmatcher *m = NULL;
        if (fr_gmatcher_create(g, empty_vocab, NULL, &m) != 0) return -2;
        int r = fr_gmatcher_accept_bytes(m, s, split) == 0 &&
                fr_gmatcher_accept_bytes(m, s + split, n - split) == 0 && fr_gmatcher_accepting(m);
        fr_gmatcher_destroy(m);
        if (result >= 0 && r != result) return -3;   /* splitting must not matter */
        result = r;
    }
    return result;
}

static void test_match(fr_model *m) {
    fr_gvocab_create(fr_model_vocab(m), &empty_vocab);
    struct { const char *g, *yes[6], *no[6]; } cases[] = {
        {"root ::= \"yes\" | \"no\"", {"yes", "no"}, {"", "y", "yess", "noo", "Yes"}},
        {"root ::= [a-c]+ \"!\"?", {"a", "abc!", "ccc"}, {"", "!", "ad", "a!!"}},
        {"root ::= [^a-c\\n]{2,3}", {"xy", "xyz", "\xc3\xa9z"}, {"x", "ab", "wxyz", "x\n"}},
        {"root ::= \"\\u00e9\" . \"x\"", {"\xc3\xa9\xe2\x82\xacx", "\xc3\xa9" "ax"},
         {"\xc3\xa9x", "ex", "\xc3\xa9\xffx"}},
        {"root ::= obj\nobj ::= \"{\" (pair (\",\" pair)*)? \"}\"\npair ::= \"k:\" (obj | \"v\")",
         {"{}", "{k:v}", "{k:{k:v},k:{}}"}, {"{", "{k:}", "{k:v,}", "{}}"}},
        {"root ::= \"a\"{3}", {"aaa"}, {"aa", "aaaa"}},
        {"root ::= \"\"", {""}, {"a"}},
        {"root ::= [\\U0001F600-\\U0001F64F]", {"\xf0\x9f\x98\x80"}, {"\xf0\x9f\x98", "a", "\xf0\x9f\x99\x90"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fr_grammar *g = parse(cases[i].g);
        if (!g) continue;
        for (int k = 0; k < 6 && cases[i].yes[k]; k++)
            CHECK_MSG(matches(g, cases[i].yes[k]) == 1, "%s should accept '%s' (%d)", cases[i].g,
                      cases[i].yes[k], matches(g, cases[i].yes[k]));
        for (int k = 0; k < 6 && cases[i].no[k]; k++)
            CHECK_MSG(matches(g, cases[i].no[k]) == 0, "%s should refuse '%s' (%d)", cases[i].g,
                      cases[i].no[k], matches(g, cases[i].no[k]));
        fr_grammar_unref(g);
    }
    /* done: nothing more can follow */
    fr_grammar *g = parse("root ::= \"ab\" \"c\"?");
    fr_gmatcher *mt = NULL;
    CHECK_INT(fr_gmatcher_create(g, empty_vocab, NULL, &mt), 0);
    CHECK(!fr_gmatcher_accepting(mt));
    CHECK_INT(fr_gmatcher_accept_bytes(mt, "ab", 2), 0);
    CHECK(fr_gmatcher_accepting(mt) && !fr_gmatcher_done(mt));
    CHECK_INT(fr_gmatcher_allows(mt, "c", 1), 1);
    CHECK_INT(fr_gmatcher_allows(mt, "d", 1), 0);
    CHECK_INT(fr_gmatcher_accept_bytes(mt, "d", 1), FR_EINVAL);
    CHECK(fr_gmatcher_accepting(mt));               /* unchanged by the refusal */
    CHECK_INT(fr_gmatcher_accept_bytes(mt, "c", 1), 0);
    CHECK(fr_gmatcher_done(mt));
    fr_gmatcher_destroy(mt);
    fr_grammar_unref(g);

    /* hostile: an ambiguous grammar stops with FR_ETOOLONG, not forever */
    char amb[4096];
    int n = snprintf(amb, sizeof amb, "root ::= r0 \"!\"\n");
    for (int i = 0; i < 24; i++)
        n += snprintf(amb + n, sizeof amb - (size_t)n, "r%d ::= r%d | r%d\n", i, i + 1, i + 1);
    snprintf(amb + n, sizeof amb - (size_t)n, "r24 ::= \"a\"\n");
    g = parse(amb);
    int rc = g ? fr_gmatcher_create(g, empty_vocab, NULL, &mt) : -1;
    CHECK_MSG(rc == FR_ETOOLONG && strstr(fr_errdetail(), "ambiguous"), "ambiguous: rc %d %s", rc,
              fr_errdetail());
    if (rc == 0) fr_gmatcher_destroy(mt);
    fr_grammar_unref(g);
    /* deep nesting is dropped at the depth limit rather than growing */
    g = parse("root ::= \"(\" root \")\" | \"x\"");
    CHECK_INT(fr_gmatcher_create(g, empty_vocab, NULL, &mt), 0);
    int refused_at = -1;
    for (int i = 0; i < 2 * FR_GRAMMAR_MAX_DEPTH && refused_at < 0; i++)
        if (fr_gmatcher_accept_bytes(mt, "(", 1) != 0) refused_at = i;
    CHECK(refused_at > 100 && refused_at <= FR_GRAMMAR_MAX_DEPTH);
    fr_gmatcher_destroy(mt);
    fr_grammar_unref(g);
    fr_gvocab_destroy(empty_vocab);
    empty_vocab = NULL;
}

/* Masks against brute force along random walks. */
static void walks(const char *model_name, const char *gtext, int n_walks, int max_steps) {
    char path[512];
    snprintf(path, sizeof path, "%s/models/%s.gguf", harness_testdata(), model_name);
    fr_model *m = NULL;
    if (fr_model_open(path, &m) != 0) {
        CHECK_MSG(0, "open %s: %s", path, fr_errdetail());
        return;
    }
    const fr_vocab *v = fr_model_vocab(m);
    fr_gvocab *tv = NULL;
    CHECK_INT(fr_gvocab_create(v, &tv), 0);
    fr_grammar *g = parse(gtext);
    int32_t nv = fr_vocab_n_tokens(v);
    int32_t *allowed = fr_malloc((size_t)nv * sizeof *allowed);
    uint64_t rng = 12345;
    int mismatches = 0, steps = 0, ends = 0;
    uint64_t masks = 0, hits = 0;
    for (int w = 0; w < n_walks && g; w++) {
        fr_gmatcher *mt = NULL;
        CHECK_INT(fr_gmatcher_create(g, tv, NULL, &mt), 0);
        for (int s = 0; s < max_steps; s++) {
            const uint64_t *mask;
            int32_t n_allowed = 0, count = 0;
            CHECK_INT(fr_gmatcher_mask(mt, &mask, &n_allowed), 0);
            /* brute force: every token's text, tried from this state */
            for (int32_t t = 0; t < nv; t++) {
                char buf[FR_GRAMMAR_MAX_TOKEN];
                size_t l = fr_token_to_piece(v, t, false, buf, sizeof buf);
                bool want;
                if (fr_vocab_is_eog(v, t)) want = fr_gmatcher_accepting(mt);
                else want = l > 0 && l <= sizeof buf && fr_gmatcher_allows(mt, buf, l) == 1;
                bool got = mask[t >> 6] >> (t & 63) & 1;
                if (want != got && mismatches++ < 5)
                    fprintf(stderr, "%s step %d token %d '%.*s': mask %d, brute force %d\n", model_name,
                            s, (int)t, (int)l, buf, got, want);
                if (got) allowed[count++] = t;
            }
            CHECK_INT(count, n_allowed);
            steps++;
            if (fr_gmatcher_done(mt) || count == 0) break;
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            int32_t t = allowed[(rng >> 33) % (uint64_t)count];
            if (fr_vocab_is_eog(v, t)) {
                ends++;
                break;
            }
            CHECK_INT(fr_gmatcher_accept_token(mt, t), 0);
        }
        fr_gmatcher_stats st;
        fr_gmatcher_stats_get(mt, &st);
        masks += st.masks;
        hits += st.hits;
        fr_gmatcher_destroy(mt);
    }
    CHECK_MSG(mismatches == 0, "%s: %d mask bits differ from brute force", model_name, mismatches);
    printf("  %s: %d steps, masks %llu, cache hits %llu\n", model_name, steps,
           (unsigned long long)masks, (unsigned long long)hits);
    fr_free(allowed);
    fr_grammar_unref(g);
    fr_gvocab_destroy(tv);
    fr_model_close(m);
}

/* The cache: the same state twice is one walk. */
static void test_cache(const char *model_name) {
    char path[512];
    snprintf(path, sizeof path, "%s/models/%s.gguf", harness_testdata(), model_name);
    fr_model *m = NULL;
    if (fr_model_open(path, &m) != 0) return;
    fr_gvocab *tv = NULL;
    fr_gvocab_create(fr_model_vocab(m), &tv);
    fr_grammar *g = parse("root ::= (\"ab\")+");
    fr_gmatcher *mt = NULL;
    CHECK_INT(fr_gmatcher_create(g, tv, NULL, &mt), 0);
    const uint64_t *mask;
    int32_t n;
    for (int i = 0; i < 5; i++) {
        CHECK_INT(fr_gmatcher_mask(mt, &mask, &n), 0);
        CHECK_INT(fr_gmatcher_accept_bytes(mt, "ab", 2), 0);
    }
    fr_gmatcher_stats st;
    fr_gmatcher_stats_get(mt, &st);
    CHECK_INT(st.masks, 5);
    CHECK_INT(st.hits, 3);      /* start, after "ab" (accepting), then the same state again */
    CHECK(fr_gmatcher_bytes(mt) > 0 && fr_gvocab_bytes(tv) > 0 && fr_grammar_bytes(g) > 0);
    CHECK(fr_gvocab_bytes(tv) <= fr_gvocab_estimate_bytes(fr_model_vocab(m)));
    fr_gmatcher_destroy(mt);
    fr_grammar_unref(g);

    /* a shared cache: a second matcher of the same grammar text finds
     * every mask; two grammars whose states look alike do not mix */
    fr_gmask_cache *sc = NULL;
    CHECK_INT(fr_gmask_cache_create(tv, 1 << 20, &sc), 0);
    const char *texts[] = {"root ::= \"ab\" \"cd\"", "root ::= \"ab\" \"cd\"", "root ::= \"xy\" \"cd\""};
    int32_t id_a = fr_vocab_find(fr_model_vocab(m), "a", 1), id_x = fr_vocab_find(fr_model_vocab(m), "x", 1);
    for (int k = 0; k < 3; k++) {
        fr_grammar *gk = parse(texts[k]);
        fr_gmatcher *mk = NULL;
        CHECK_INT(fr_gmatcher_create(gk, tv, sc, &mk), 0);
        CHECK_INT(fr_gmatcher_mask(mk, &mask, &n), 0);
        if (id_a >= 0 && id_x >= 0) {
            CHECK_INT(mask[id_a >> 6] >> (id_a & 63) & 1, k < 2);
            CHECK_INT(mask[id_x >> 6] >> (id_x & 63) & 1, k == 2);
        }
        CHECK_INT(fr_gmatcher_accept_bytes(mk, k < 2 ? "ab" : "xy", 2), 0);
        CHECK_INT(fr_gmatcher_mask(mk, &mask, &n), 0);
        fr_gmatcher_stats_get(mk, &st);
        CHECK_INT(st.hits, k == 1 ? 2 : 0);
        fr_gmatcher_destroy(mk);
        fr_grammar_unref(gk);
    }
    CHECK(fr_gmask_cache_bytes(sc) > 0);
    fr_gmask_cache_destroy(sc);
    fr_gvocab_destroy(tv);
    fr_model_close(m);
}

static const char json_gbnf[] =
    "root ::= \"{\" ws ( member ( \",\" ws member )* )? \"}\"\n"
    "member ::= str ws \":\" ws value ws\n"
    "value ::= str | num | \"true\" | \"false\" | \"null\" | \"[\" ws ( value ws (\",\" ws value ws){0,3} )? \"]\"\n"
    "str ::= \"\\\"\" ( [^\"\\\\\\x00-\\x1F] | \"\\\\\" [\"\\\\nt] ){0,8} \"\\\"\"\n"
    "num ::= \"-\"? [0-9]{1,4} (\".\" [0-9]{1,3})?\n"
    "ws ::= \" \"?\n";

int main(void) {
    test_parse();
    char path[512];
    snprintf(path, sizeof path, "%s/models/tiny-llama-q8_0.gguf", harness_testdata());
    fr_model *m = NULL;
    if (fr_model_open(path, &m) == 0) {
        test_match(m);
        fr_model_close(m);
    } else CHECK_MSG(0, "open %s", path);
    walks("tiny-llama-q8_0", json_gbnf, 6, 40);
    walks("tiny-llama-q8_0", "root ::= [\\u00e0-\\u00ff\\u4e00-\\u4e0f]{1,6} \"!\"", 4, 10);
    walks("tiny-qwen2-q8_0", json_gbnf, 3, 30);
    walks("tiny-qwen2-q8_0", "root ::= \"\\u00e9\"{1,3} [^a-z]{0,4} \"x\"", 3, 10);
    test_cache("tiny-llama-q8_0");
    return harness_done();
}
