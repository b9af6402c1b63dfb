/*
 * test_ask.c — fr_index_ask_prompt (search/ask.c) on a real index with a
 * fake provider: a token is a word (a run of non-blank bytes), so every
 * budget below is counted by hand.
 *
 *   emb-8     EMBED, dim 8: a word-hash bag of words (deterministic)
 *   gen-N     GENERATE with a context of N tokens
 *
 * Checked: the defaults; every source in when the budget allows, markers
 * 1..n in retrieval order, "[n] text" blocks, the question last, the
 * default and custom instructions, prompt_tokens = the words of the
 * prompt; a tight budget: a long best chunk skipped and the shorter next
 * ones taken, prompt_tokens <= budget, skipped + sources = retrieved;
 * budget 0 = context − reserve; errors (empty question, unknown
 * collection, unknown model, a model that cannot generate, negative
 * budget, instructions over the budget, a context under the reserve).
 * Leaks are the sanitizer pass's to find (SQLite's page cache, counted
 * too, grows with reads, so the heap is not compared here).
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/mem.h"
#include "harness.h"
#include "search/search.h"

static int words(void *obj, const char *t, size_t n, int32_t *out) {
    (void)obj;
    int32_t k = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && (t[i] == ' ' || t[i] == '\n' || t[i] == '\t' || t[i] == '\r')) i++;
        if (i == n) break;
        k++;
        while (i < n && !(t[i] == ' ' || t[i] == '\n' || t[i] == '\t' || t[i] == '\r')) i++;
    }
    *out = k;
    return 0;
}

static int embed(void *obj, const char *const *texts, const size_t *lens, int32_t n, float *out) {
    (void)obj;
    for (int32_t i = 0; i < n; i++) {
        float *v = out + (size_t)i * 8;
        memset(v, 0, 8 * sizeof *v);
        uint32_t h = 2166136261u;
        for (size_t k = 0; k < lens[i]; k++) {
            char c = texts[i][k];
            if (c == ' ' || c == '.') {
                v[h % 8] += 1;
                h = 2166136261u;
            } else {
                h = (h ^ (unsigned char)c) * 16777619u;
            }
        }
        v[h % 8] += 1;
    }
    return 0;
}

static int acquire(void *ud, const char *name, int use, fr_search_model *out) {
    (void)ud;
    memset(out, 0, sizeof *out);
    out->count_tokens = words;
    if (!strcmp(name, "emb-8")) {
        if (use != FR_SEARCH_USE_EMBED) return fr_errf(FR_EUNSUPP, "model '%s' only embeds", name);
        out->dim = 8;
        out->max_tokens = 512;
        out->embed = embed;
        return 0;
    }
    if (!strncmp(name, "gen-", 4)) {
        if (use != FR_SEARCH_USE_GENERATE) return fr_errf(FR_EUNSUPP, "model '%s' only generates", name);
        out->max_tokens = atoi(name + 4);
        return 0;
    }
    return fr_errf(FR_ENOENT, "model '%s' not found", name);
}

static void release(void *ud, fr_search_model *m) { (void)ud; (void)m; }

static const fr_search_models FAKE = {NULL, acquire, release};

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f) {
    (void)sb; (void)flag; (void)f;
    return remove(p);
}

static int32_t count_of(const char *s) {
    int32_t n;
    words(NULL, s, strlen(s), &n);
    return n;
}

int main(void) {
    char dir[] = "/tmp/test_ask.XXXXXX";
    if (!mkdtemp(dir)) return 1;
    fr_index *ix = NULL;
    fr_index_config ic = {.data_dir = dir, .models = &FAKE};
    CHECK_INT(fr_index_open(&ic, &ix), 0);
    if (!ix) return harness_done();
    fr_collection_params cp = {.name = "k", .model = "emb-8", .chunk_size = 64, .chunk_overlap = 0};
    CHECK_INT(fr_index_collection_create(ix, &cp, NULL), 0);
    /* "long": 60 words, all about zebras; the short ones mention zebras once */
    char longtext[1024] = "";
    for (int i = 0; i < 30; i++) strcat(longtext, i % 2 ? "stripes " : "zebra ");
    strcat(longtext, "end.");
    fr_doc_in docs[] = {
        {"long", longtext, strlen(longtext), NULL},
        {"s1", "one zebra runs fast.", 20, NULL},
        {"s2", "a zebra sleeps here.", 20, NULL},
        {"s3", "lions hunt a zebra.", 19, NULL},
    };
    CHECK_INT(fr_index_add(ix, "k", NULL, docs, 4, NULL, NULL), 0);

    fr_ask_params p;
    fr_ask_params_init(&p);
    CHECK_INT(p.reserve_tokens, 512);
    CHECK_INT(p.budget_tokens, 0);
    CHECK_INT(p.search.top_k, 10);
    CHECK_INT(p.search.mode, FR_SEARCH_HYBRID);
    CHECK(p.instructions == NULL && p.model == NULL);

    /* everything fits */
    p.search.collection = "k";
    p.search.query = "zebra";
    p.search.mode = FR_SEARCH_BM25;
    p.model = "gen-4096";
    fr_ask_prompt *a = NULL;
    CHECK_INT(fr_index_ask_prompt(ix, &p, &a), 0);
    if (a) {
        CHECK_INT(a->n_sources, 4);
        CHECK_INT(a->n_skipped, 0);
        for (size_t i = 0; i < a->n_sources; i++) {
            CHECK_INT(a->sources[i].marker, (int)i + 1);
            char blk[1100];
            snprintf(blk, sizeof blk, "[%d] %s\n", (int)i + 1, a->sources[i].text);
            CHECK_MSG(strstr(a->prompt, blk) != NULL, "source %zu is not in the prompt as [n] text", i);
            CHECK(a->sources[i].document_id && a->sources[i].metadata && !strcmp(a->sources[i].metadata, "{}"));
            if (i) CHECK(a->sources[i].score <= a->sources[i - 1].score);
        }
        CHECK(strstr(a->prompt, "Cite the sources") != NULL);
        CHECK(strstr(a->prompt, "do not contain") != NULL);
        const char *q = strstr(a->prompt, "Question: zebra");
        CHECK(q && q[strlen("Question: zebra")] == 0);
        CHECK_INT(a->prompt_tokens, count_of(a->prompt));
        CHECK(a->took_ms >= 0);
    }
    fr_ask_prompt_free(a);
    a = NULL;

    /* the long chunk ranks first in bm25 for "zebra stripes" */
    p.search.query = "zebra stripes";
    CHECK_INT(fr_index_ask_prompt(ix, &p, &a), 0);
    int32_t full = a ? a->prompt_tokens : 0;
    CHECK(a && a->n_sources == 4 && !strcmp(a->sources[0].document_id, "long"));
    fr_ask_prompt_free(a);
    a = NULL;
    /* its block is 62 words ("[1]", 60 words, "end."): 20 words less than
     * the full prompt and it must go, while the short ones (5 words each
     * with their marker) stay */
    p.budget_tokens = full - 20;
    CHECK_INT(fr_index_ask_prompt(ix, &p, &a), 0);
    if (a) {
        CHECK_INT(a->n_sources, 3);
        CHECK_INT(a->n_skipped, 1);
        CHECK(a->prompt_tokens <= p.budget_tokens);
        CHECK_INT(a->prompt_tokens, count_of(a->prompt));
        for (size_t i = 0; i < a->n_sources; i++) {
            CHECK(strcmp(a->sources[i].document_id, "long") != 0);
            CHECK_INT(a->sources[i].marker, (int)i + 1);
        }
    }
    fr_ask_prompt_free(a);
    a = NULL;
    /* the question and instructions alone: no source fits */
    fr_ask_params p0 = p;
    p0.budget_tokens = 1000000;
    p0.search.filter = "{\"none\": 1}";      /* the same question, nothing found */
    CHECK_INT(fr_index_ask_prompt(ix, &p0, &a), 0);
    int32_t base = a ? a->prompt_tokens : 0;
    CHECK(a && a->n_sources == 0 && strstr(a->prompt, "no sources"));
    fr_ask_prompt_free(a);
    a = NULL;
    /* the "(no sources were found)" line is 4 words: base leaves those 4
     * for the sources, too few for any block (each is at least 5), and
     * base - 1 not even room for the line, which then goes too */
    p.budget_tokens = base;
    CHECK_INT(fr_index_ask_prompt(ix, &p, &a), 0);
    CHECK(a && a->n_sources == 0 && a->n_skipped == 4 && a->prompt_tokens == base);
    fr_ask_prompt_free(a);
    a = NULL;
    p.budget_tokens = base - 1;
    CHECK_INT(fr_index_ask_prompt(ix, &p, &a), 0);
    CHECK(a && a->n_sources == 0 && a->prompt_tokens == base - 4 && !strstr(a->prompt, "no sources"));
    fr_ask_prompt_free(a);
    a = NULL;

    /* custom instructions */
    p.budget_tokens = 0;
    p.instructions = "Reply in French.";
    CHECK_INT(fr_index_ask_prompt(ix, &p, &a), 0);
    CHECK(a && !strncmp(a->prompt, "Reply in French.\n", 17) && !strstr(a->prompt, "Cite the sources"));
    fr_ask_prompt_free(a);
    a = NULL;
    p.instructions = NULL;

    /* budget 0: context − reserve */
    p.model = "gen-600";       /* 600 - 512 = 88 tokens */
    CHECK_INT(fr_index_ask_prompt(ix, &p, &a), 0);
    CHECK(a && a->prompt_tokens <= 88 && a->n_skipped >= 1);
    fr_ask_prompt_free(a);
    a = NULL;

    /* errors */
    fr_ask_params e = p;
    e.model = "gen-500";       /* under the reserve */
    CHECK_INT(fr_index_ask_prompt(ix, &e, &a), FR_ETOOLONG);
    e = p;
    e.budget_tokens = 10;      /* under the instructions */
    CHECK_INT(fr_index_ask_prompt(ix, &e, &a), FR_ETOOLONG);
    e = p;
    e.budget_tokens = -1;
    CHECK_INT(fr_index_ask_prompt(ix, &e, &a), FR_EINVAL);
    e = p;
    e.search.query = "";
    CHECK_INT(fr_index_ask_prompt(ix, &e, &a), FR_EINVAL);
    e = p;
    e.model = NULL;
    CHECK_INT(fr_index_ask_prompt(ix, &e, &a), FR_EINVAL);
    e = p;
    e.model = "nope";
    CHECK_INT(fr_index_ask_prompt(ix, &e, &a), FR_ENOENT);
    CHECK(strstr(fr_errdetail(), "nope") != NULL);
    e = p;
    e.model = "emb-8";
    CHECK_INT(fr_index_ask_prompt(ix, &e, &a), FR_EUNSUPP);
    e = p;
    e.search.collection = "missing";
    CHECK_INT(fr_index_ask_prompt(ix, &e, &a), FR_ENOENT);
    e = p;
    e.search.top_k = 0;
    CHECK_INT(fr_index_ask_prompt(ix, &e, &a), FR_EINVAL);
    CHECK(a == NULL);
    fr_ask_prompt_free(NULL);

    fr_index_close(ix);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    return harness_done();
}
