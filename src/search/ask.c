/*
 * ask.c — the retrieval half of answering a question (search.h,
 * fr_index_ask_prompt): search the collection, then build a prompt of
 * numbered sources that fits the generation model's budget.
 *
 * The prompt (before the model's chat template, which is the caller's):
 *
 *   <instructions>
 *
 *   Sources:
 *
 *   [1] <text of the best chunk>
 *
 *   [2] <text of the next one that fits>
 *   ...
 *
 *   Question: <question>
 *
 * When no source is taken, the line "(no sources were found)" stands in
 * their place (left out too if even it does not fit).
 *
 * The caller makes the whole prompt one user message's content, which
 * fr_chat_tokenize tokenizes as ordinary text: a chunk holding "</s>" or
 * "<|im_end|>" is those characters to the model, not a control token
 * that would end the turn.  count_tokens counts without special tokens
 * too, so the budget counts the prompt as the model will read it.
 *
 * Budget.  The question and the instructions must fit on their own
 * (FR_ETOOLONG otherwise).  Then the retrieved chunks are taken best
 * first: a chunk whose "[n] text" block would pass the budget is skipped
 * and the next one tried (n counts only the chunks taken, so markers are
 * 1..k with no gaps).  The blocks are counted one by one with the model's
 * tokenizer and their counts added, which is what the prompt costs up to
 * the few tokens a byte-level BPE may merge or split at a block's edges;
 * so the assembled prompt is counted once more as a whole, and while that
 * count passes the budget the last source is dropped (rare: each drop
 * frees a whole block).  prompt_tokens is that exact count.
 *
 * The generation model is acquired from the index's provider for the
 * whole call (its tokenizer counts the budget) and released before it
 * returns.  Thread-safe as fr_index_search is.
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/sysinfo.h"
#include "search/index_int.h"

#define DEFAULT_RESERVE 512

static const char default_instructions[] =
    "Answer the question using only the numbered sources below. Cite the sources you use as [n], "
    "where n is the number of the source. If the sources do not contain the answer, say that they do "
    "not contain it instead of guessing.";

void fr_ask_params_init(fr_ask_params *p) {
    memset(p, 0, sizeof *p);
    fr_search_params_init(&p->search);
    p->search.mode = FR_SEARCH_HYBRID;
    p->reserve_tokens = DEFAULT_RESERVE;
}

void fr_ask_prompt_free(fr_ask_prompt *a) {
    if (!a) return;
    for (size_t i = 0; i < a->n_sources; i++) {
        fr_free(a->sources[i].document_id);
        fr_free(a->sources[i].text);
        fr_free(a->sources[i].metadata);
    }
    fr_free(a->sources);
    fr_free(a->prompt);
    fr_free(a);
}

/* A growing string. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static int put(sbuf *b, const char *s, size_t n) {
    size_t need;
    if (!fr_add_ok(b->len, n + 1, &need)) return fr_errf(FR_ENOMEM, "ask: prompt size overflows");
    if (need > b->cap) {
        size_t nc = b->cap ? b->cap : 1024;
        while (nc < need) nc *= 2;
        char *q = fr_realloc(b->p, nc);
        if (!q) return fr_errf(FR_ENOMEM, "ask: no memory for a prompt of %zu bytes", need);
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

static int puts_(sbuf *b, const char *s) { return put(b, s, strlen(s)); }

typedef struct gen {
    const fr_search_models *pv;
    fr_search_model m;
    const char *name;
} gen;

static int count(gen *g, const char *s, size_t n, int32_t *out) {
    int rc = g->m.count_tokens(g->m.obj, s, n, out);
    if (rc) return rc;
    if (*out < 0) return fr_errf(FR_EINTERNAL, "model '%.128s': negative token count", g->name);
    return 0;
}

/* The source block of a hit: "[n] text\n\n". */
static int block(sbuf *b, int32_t marker, const char *text) {
    char head[24];
    int k = snprintf(head, sizeof head, "[%d] ", (int)marker);
    b->len = 0;
    int rc = put(b, head, (size_t)k);
    if (!rc) rc = puts_(b, text);
    if (!rc) rc = puts_(b, "\n\n");
    return rc;
}

/* instructions + sources[0..n) + question into *out; with no source, a
 * line that says so when none_line. */
static int assemble(sbuf *out, const char *instr, const fr_search_hit *const *taken, size_t n,
                    const char *question, bool none_line) {
    sbuf blk = {0};
    out->len = 0;
    int rc = puts_(out, instr);
    if (!rc) rc = puts_(out, "\n\nSources:\n\n");
    for (size_t i = 0; !rc && i < n; i++) {
        rc = block(&blk, (int32_t)(i + 1), taken[i]->text);
        if (!rc) rc = put(out, blk.p, blk.len);
    }
    if (!rc && n == 0 && none_line) rc = puts_(out, "(no sources were found)\n\n");
    if (!rc) rc = puts_(out, "Question: ");
    if (!rc) rc = puts_(out, question);
    fr_free(blk.p);
    return rc;
}

static int copy_source(fr_ask_source *s, int32_t marker, const fr_search_hit *h) {
    s->marker = marker;
    s->chunk_id = h->chunk_id;
    s->score = h->score;
    s->document_id = fr_strdup(h->document_id ? h->document_id : "");
    s->text = fr_strdup(h->text ? h->text : "");
    s->metadata = fr_strdup(h->metadata ? h->metadata : "{}");
    if (!s->document_id || !s->text || !s->metadata) return fr_errf(FR_ENOMEM, "ask: no memory for a source");
    return 0;
}

int fr_index_ask_prompt(fr_index *ix, const fr_ask_params *p, fr_ask_prompt **out) {
    double t0 = fr_now_s();
    *out = NULL;
    if (!ix || !p) return fr_errf(FR_EINVAL, "fr_index_ask_prompt: NULL argument");
    if (!p->model || !*p->model) return fr_errf(FR_EINVAL, "model: the generation model is required");
    if (!p->search.query || !*p->search.query) return fr_errf(FR_EINVAL, "query: the question is empty");
    if (p->budget_tokens < 0)
        return fr_errf(FR_EINVAL, "budget_tokens: %d must be 0 (the model's context) or more",
                       (int)p->budget_tokens);
    if (p->reserve_tokens < 0)
        return fr_errf(FR_EINVAL, "reserve_tokens: %d must be 0 or more", (int)p->reserve_tokens);
    gen g = {.pv = ix->has_models ? &ix->models : NULL, .name = p->model};
    if (!g.pv || !g.pv->acquire)
        return fr_errf(FR_ENOENT, "model '%.128s' not found: the index has no models", p->model);
    int rc = g.pv->acquire(g.pv->ud, p->model, FR_SEARCH_USE_GENERATE, &g.m);
    if (rc) return rc;
    if (!g.m.count_tokens) {
        g.pv->release(g.pv->ud, &g.m);
        return fr_errf(FR_EUNSUPP, "model '%.128s' cannot count tokens", p->model);
    }

    fr_search_result *res = NULL;
    fr_ask_prompt *a = NULL;
    const fr_search_hit **taken = NULL;
    sbuf prompt = {0}, blk = {0};
    const char *instr = p->instructions && *p->instructions ? p->instructions : default_instructions;
    const char *question = p->search.query;
    int32_t budget = p->budget_tokens;
    if (budget == 0) {
        budget = g.m.max_tokens - p->reserve_tokens;
        if (budget <= 0) {
            rc = fr_errf(FR_ETOOLONG, "model '%.128s' has a context of %d tokens: nothing is left for the "
                         "prompt after the %d reserved for the answer", p->model, (int)g.m.max_tokens,
                         (int)p->reserve_tokens);
            goto out;
        }
    }
    /* what the prompt costs without sources */
    int32_t base = 0;
    if ((rc = assemble(&prompt, instr, NULL, 0, question, true)) ||
        (rc = count(&g, prompt.p, prompt.len, &base)))
        goto out;
    /* the "(no sources were found)" line is not there when there are sources */
    int32_t none = 0;
    if ((rc = count(&g, "(no sources were found)\n\n", 25, &none))) goto out;
    int32_t used = base - none > 0 ? base - none : 0;
    if (used > budget) {
        rc = fr_errf(FR_ETOOLONG, "the question and instructions are %d tokens of model '%.128s'; the "
                     "budget is %d", (int)base, p->model, (int)budget);
        goto out;
    }

    if ((rc = fr_index_search(ix, &p->search, &res))) goto out;
    if (!(a = fr_calloc(1, sizeof *a)) ||
        (res->n && !(taken = fr_calloc(res->n, sizeof *taken)))) {
        rc = fr_errf(FR_ENOMEM, "ask: no memory");
        goto out;
    }
    size_t n_taken = 0;
    for (size_t i = 0; i < res->n; i++) {
        int32_t t = 0;
        if ((rc = block(&blk, (int32_t)(n_taken + 1), res->hits[i].text ? res->hits[i].text : "")) ||
            (rc = count(&g, blk.p, blk.len, &t)))
            goto out;
        if (used + (int64_t)t > budget) {
            a->n_skipped++;
            continue;
        }
        used += t;
        taken[n_taken++] = &res->hits[i];
    }
    /* the exact count of the whole; drop the last source while it is over
     * (with none left, the line saying so goes too if it does not fit) */
    int32_t exact = 0;
    for (bool none_line = true;;) {
        if ((rc = assemble(&prompt, instr, taken, n_taken, question, none_line)) ||
            (rc = count(&g, prompt.p, prompt.len, &exact)))
            goto out;
        if (exact <= budget) break;
        if (n_taken == 0) {
            if (!none_line) break;
            none_line = false;
            continue;
        }
        n_taken--;
        a->n_skipped++;
    }
    if (exact > budget) {
        rc = fr_errf(FR_ETOOLONG, "the question and instructions are %d tokens of model '%.128s'; the "
                     "budget is %d", (int)exact, p->model, (int)budget);
        goto out;
    }
    if (n_taken && !(a->sources = fr_calloc(n_taken, sizeof *a->sources))) {
        rc = fr_errf(FR_ENOMEM, "ask: no memory for %zu sources", n_taken);
        goto out;
    }
    for (size_t i = 0; i < n_taken; i++) {
        a->n_sources = i + 1;
        if ((rc = copy_source(&a->sources[i], (int32_t)(i + 1), taken[i]))) goto out;
    }
    a->prompt = prompt.p;
    prompt.p = NULL;
    a->prompt_tokens = exact;
    a->took_ms = (fr_now_s() - t0) * 1e3;
    *out = a;
    a = NULL;
out:
    g.pv->release(g.pv->ud, &g.m);
    if (res) fr_search_result_free(res);
    fr_free(taken);
    fr_free(prompt.p);
    fr_free(blk.p);
    fr_ask_prompt_free(a);
    return rc;
}
