/*
 * fuzz_schema.c — any bytes as a JSON Schema through the JSON Schema →
 * GBNF compiler (server/schema.c, fr__schema_gbnf).
 *
 * Input that is not JSON is skipped.  A schema the compiler refuses must
 * come with a message "PATH: problem" (server_int.h); on success the
 * output buffer holds rules for the prefix, and "root ::= s" plus them
 * must parse as a grammar — except for the two refusals the grammar
 * parser makes that a schema can cause (a $ref cycle that consumes
 * nothing: left recursion; the size limits).  A refusal leaves the buffer
 * as it was.
 */
#include "base/err.h"
#include "base/mem.h"
#include "engine/grammar.h"
#include "server/server_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) {
        json_set_alloc_funcs(fr_malloc, fr_free);   /* as the server does */
        init = 1;
    }
    json_t *schema = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (!schema) return 0;
    fr_gbnf_buf b = {0};
    static const char head[] = "root ::= s\n";
    char err[256];
    int rc = fr__schema_gbnf(schema, "s", &b, err, sizeof err);
    if (rc) {
        if (rc != FR_EINVAL && rc != FR_ENOMEM) abort();
        if (rc == FR_EINVAL && (!strstr(err, ": ") || (err[0] != '.' && err[0] != ':'))) abort();
        if (b.len) abort();
    } else {
        size_t n = sizeof head - 1 + b.len;
        char *t = fr_malloc(n + 1);
        if (!t) abort();
        memcpy(t, head, sizeof head - 1);
        memcpy(t + sizeof head - 1, b.p, b.len + 1);
        fr_grammar *g = NULL;
        fr_errclear();
        rc = fr_grammar_parse(t, n, &g);
        if (rc && rc != FR_ENOMEM && !strstr(fr_errdetail(), "left recursion") &&
            !strstr(fr_errdetail(), "too large") && !strstr(fr_errdetail(), "bytes, at most"))
            abort();
        fr_grammar_unref(g);
        fr_free(t);
    }
    fr_free(b.p);
    json_decref(schema);
    return 0;
}
