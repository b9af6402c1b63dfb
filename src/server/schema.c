/*
 * schema.c — structured output: the request fields that constrain a
 * generation ("grammar", "response_format", "json_schema") and JSON
 * Schema → GBNF (contract: server_int.h).
 *
 * Every way in ends as GBNF text in fr_gen_req.grammar; fr__gen_run
 * compiles it (engine/grammar.h) and the scheduler masks each step's
 * logits to the tokens it allows.
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/grammar.h"
#include "server/server_int.h"

int fr__gen_parse_structured(const fr_body *b, fr_gen_req *q) {
    const char *gbnf = NULL;
    size_t len = 0;
    int rc = fr__body_str(b, "grammar", 0, &gbnf, &len);
    if (rc) return rc;
    if (gbnf && len) q->grammar = gbnf;
    return 0;
}

int fr__gen_compile_grammar(fr_req *rq, const fr_gen_req *q, fr_grammar **out) {
    *out = NULL;
    int rc = fr_grammar_parse(q->grammar, strlen(q->grammar), out);
    if (rc == FR_ENOMEM) return rc;
    if (rc) return fr__reply_error(rq, 400, "invalid_value", "grammar", "grammar: %s", fr_errdetail());
    return 0;
}
