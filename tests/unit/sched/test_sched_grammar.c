/*
 * test_sched_grammar.c — grammars in the scheduler (sched.h's
 * fr_gen_params.grammar): the output matches, the request ends "stop"
 * once the grammar is complete, the scheduler keeps its own reference to
 * the grammar (the caller lets go right after submitting), and a request
 * that cannot go on ends "error" with error_msg saying why (too
 * ambiguous; a dead end when only ever deeper nesting is allowed and the
 * depth limit is reached).  On tiny-llama-f32.
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"

#include "base/err.h"
#include "base/mem.h"
#include "engine/grammar.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "sched/sched.h"

/* Everything a request produced, read until it finished. */
typedef struct result {
    char text[8192];
    size_t len;
    fr_gen_out last;
} result;

static void collect(fr_gen *g, result *r) {
    memset(r, 0, sizeof *r);
    for (;;) {
        fr_gen_out o;
        CHECK_INT(fr_gen_wait(g, 10000, &o), 0);
        if (o.len && r->len + o.len < sizeof r->text) {
            memcpy(r->text + r->len, o.text, o.len);
            r->len += o.len;
        }
        int fin = o.finish;
        r->last = o;
        r->last.text = NULL;
        r->last.probs = NULL;
        fr_gen_out_free(&o);
        if (fin != FR_FINISH_NONE) break;
    }
    r->text[r->len] = 0;
}

static fr_gen_params params(const int32_t *prompt, int32_t n, int32_t max_tokens, fr_grammar *gr) {
    fr_gen_params p = {.prompt = prompt, .n_prompt = n, .max_tokens = max_tokens, .grammar = gr};
    fr_sampler_params_default(&p.sampling);
    p.sampling.temp = 0;
    return p;
}

static fr_grammar *parse(const char *text) {
    fr_grammar *g = NULL;
    CHECK_MSG(fr_grammar_parse(text, strlen(text), &g) == 0, "%s: %s", text, fr_errdetail());
    return g;
}

int main(void) {
    size_t mem0 = fr_mem_in_use();
    char path[1024];
    snprintf(path, sizeof path, "%s/models/tiny-llama-f32.gguf", harness_testdata());
    fr_model *m = NULL;
    fr_compute *cmp = NULL;
    fr_sched *s = NULL;
    CHECK_INT(fr_model_open(path, &m), 0);
    CHECK_INT(fr_compute_create(2, &cmp), 0);
    fr_sched_config cfg = {.n_ctx = 1200, .n_slots = 2, .n_queue = 2};
    if (m && cmp) CHECK_INT(fr_sched_create(m, cmp, &cfg, &s), 0);
    if (s) {
        int32_t *tok = NULL;
        size_t n = 0;
        const char *prompt = "Once upon a time";
        CHECK_INT(fr_tokenize(fr_model_vocab(m), prompt, strlen(prompt), true, false, &tok, &n), 0);
        result r;
        fr_gen *g = NULL;

        /* yes or no, nothing else; "stop" as soon as it is complete */
        for (int k = 0; k < 2; k++) {
            fr_grammar *gr = parse("root ::= \"yes\" | \"no\"");
            fr_gen_params p = params(tok, (int32_t)n, 50, gr);
            p.sampling.temp = 1;
            p.sampling.seed = (uint64_t)k;
            CHECK_INT(fr_sched_submit(s, &p, &g, NULL), 0);
            fr_grammar_unref(gr);     /* the request holds its own */
            collect(g, &r);
            fr_gen_release(g);
            CHECK_MSG(!strcmp(r.text, "yes") || !strcmp(r.text, "no"), "grammar output '%s'", r.text);
            CHECK_INT(r.last.finish, FR_FINISH_STOP);
        }

        /* too ambiguous: an error that says so */
        char amb[4096];
        int k = snprintf(amb, sizeof amb, "root ::= r0 \"!\"\n");
        for (int i = 0; i < 24; i++)
            k += snprintf(amb + k, sizeof amb - (size_t)k, "r%d ::= r%d | r%d\n", i, i + 1, i + 1);
        snprintf(amb + k, sizeof amb - (size_t)k, "r24 ::= \"a\"\n");
        fr_grammar *gr = parse(amb);
        fr_gen_params p = params(tok, (int32_t)n, 5, gr);
        CHECK_INT(fr_sched_submit(s, &p, &g, NULL), 0);
        collect(g, &r);
        CHECK_INT(r.last.finish, FR_FINISH_ERROR);
        CHECK_MSG(r.last.error_msg && strstr(r.last.error_msg, "ambiguous"), "error_msg: %s",
                  r.last.error_msg ? r.last.error_msg : "(null)");
        fr_gen_release(g);
        fr_grammar_unref(gr);

        /* a dead end: only ever deeper nesting, which stops at the depth limit */
        gr = parse("root ::= \"(\" root \")\"");
        p = params(tok, (int32_t)n, 1150, gr);
        CHECK_INT(fr_sched_submit(s, &p, &g, NULL), 0);
        collect(g, &r);
        CHECK_INT(r.last.finish, FR_FINISH_ERROR);
        CHECK_MSG(r.last.error_msg && strstr(r.last.error_msg, "dead end"), "error_msg: %s",
                  r.last.error_msg ? r.last.error_msg : "(null)");
        CHECK(r.len > 0 && strspn(r.text, "(") == r.len);
        fr_gen_release(g);
        fr_grammar_unref(gr);
        fr_free(tok);
    }
    fr_sched_destroy(s);
    fr_compute_destroy(cmp);
    fr_model_close(m);
    CHECK_INT(fr_mem_in_use(), mem0);
    return harness_done();
}
