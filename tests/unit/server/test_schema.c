/*
 * test_schema.c — JSON Schema → GBNF (server/schema.c, fr__schema_gbnf):
 * each schema's grammar, run by the matcher (engine/grammar.h), accepts
 * JSON texts valid for the schema and refuses invalid ones (required and
 * optional members in order, additionalProperties, enum and const with
 * escapes, arrays' bounds, nested objects, anyOf, $ref recursion,
 * nullable, string lengths and formats with real dates, the bounded
 * whitespace); unsupported keywords are refused with the path and the
 * keyword; rules carry the prefix, so two schemas go into one grammar.
 */
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/grammar.h"
#include "server/server_int.h"
#include "harness.h"

static fr_gvocab *gv;   /* matchers need one; no masks are computed here */

/* The grammar of schema (JSON text) with root ::= s, compiled. */
static fr_grammar *compile(const char *schema_json) {
    json_t *s = json_loads(schema_json, JSON_DECODE_ANY, NULL);
    CHECK_MSG(s != NULL, "bad test schema %s", schema_json);
    if (!s) return NULL;
    fr_gbnf_buf b = {0};
    char err[256];
    int rc = fr__schema_gbnf(s, "s", &b, err, sizeof err);
    json_decref(s);
    CHECK_MSG(rc == 0, "schema %s: %s", schema_json, err);
    if (rc) {
        fr_free(b.p);
        return NULL;
    }
    size_t n = b.len + 16;
    char *t = fr_malloc(n);
    snprintf(t, n, "root ::= s\n%s", b.p);
    fr_grammar *g = NULL;
    rc = fr_grammar_parse(t, strlen(t), &g);
    CHECK_MSG(rc == 0, "grammar of %s: %s\n%s", schema_json, fr_errdetail(), t);
    fr_free(t);
    fr_free(b.p);
    return g;
}

static bool accepts(fr_grammar *g, const char *text) {
    fr_gmatcher *m = NULL;
    if (fr_gmatcher_create(g, gv, NULL, &m) != 0) return false;
    bool ok = fr_gmatcher_accept_bytes(m, text, strlen(text)) == 0 && fr_gmatcher_accepting(m);
    fr_gmatcher_destroy(m);
    return ok;
}

static void cases(const char *schema, const char *const *yes, const char *const *no) {
    fr_grammar *g = compile(schema);
    if (!g) return;
    for (; *yes; yes++) CHECK_MSG(accepts(g, *yes), "%s should accept %s", schema, *yes);
    for (; *no; no++) CHECK_MSG(!accepts(g, *no), "%s should refuse %s", schema, *no);
    fr_grammar_unref(g);
}

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

static void refuse(const char *schema, const char *want) {
    json_t *s = json_loads(schema, JSON_DECODE_ANY, NULL);
    fr_gbnf_buf b = {0};
    char err[256] = "";
    int rc = fr__schema_gbnf(s, "s", &b, err, sizeof err);
    CHECK_MSG(rc == FR_EINVAL && !strcmp(err, want), "%s: rc %d, '%s' (want '%s')", schema, rc, err, want);
    CHECK_INT(b.len, 0);
    fr_free(b.p);
    json_decref(s);
}

int main(void) {
    json_set_alloc_funcs(fr_malloc, fr_free);   /* as the server does */
    /* matchers need a vocabulary (for masks, unused here): llama-spm's */
    char path[512];
    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-llama-spm.gguf", harness_testdata());
    fr_gguf *gg = NULL;
    fr_vocab *v = NULL;
    if (fr_gguf_open(path, &gg) || fr_vocab_load(gg, &v) || fr_gvocab_create(v, &gv)) {
        CHECK_MSG(0, "load %s: %s", path, fr_errdetail());
        return harness_done();
    }

    cases("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"},"
          "\"c\":{\"type\":\"boolean\"}},\"required\":[\"b\"]}",
          L("{\"b\":\"x\"}", "{\"a\":1,\"b\":\"\"}", "{ \"a\": -12, \"b\": \"q\\\"\\u00e9\", \"c\": true }",
            "{\"b\":\"x\",\"c\":false}", "{\"a\":0,\"b\":\"\\n\",\"c\":true}"),
          L("{}", "{\"a\":1}", "{\"b\":\"x\",\"a\":1}", "{\"b\":\"x\",\"d\":1}", "{\"a\":01,\"b\":\"x\"}",
            "{\"b\":\"x\"  }", "{\n\"b\":\"x\"}", "{\"b\":x}", "{\"b\":\"x\",}"));
    cases("{\"type\":\"object\",\"properties\":{\"a\":{\"const\":1}},\"additionalProperties\":{\"type\":\"null\"}}",
          L("{}", "{\"a\":1}", "{\"a\":1,\"z\":null}", "{\"z\":null,\"y\":null}"),
          L("{\"a\":2}", "{\"z\":1}"));
    cases("{\"type\":\"object\"}", L("{}", "{\"k\":[1,{\"x\":null}],\"j\":\"s\"}"), L("[]", "1"));
    cases("{\"enum\":[\"a\\\"b\",1.5,null,[true],{\"k\":\"\\u00e9\"}]}",
          L("\"a\\\"b\"", "1.5", "null", "[true]", "{\"k\":\"\xc3\xa9\"}"), L("\"ab\"", "1", "true"));
    cases("{\"type\":\"array\",\"items\":{\"type\":\"number\"},\"minItems\":2,\"maxItems\":3}",
          L("[1,2]", "[1.5, -2e10, 3]", "[0,0.25]"), L("[]", "[1]", "[1,2,3,4]", "[1,]", "[1,\"2\"]"));
    cases("{\"type\":\"array\",\"maxItems\":0}", L("[]"), L("[1]"));
    cases("{\"anyOf\":[{\"type\":\"string\",\"maxLength\":2},{\"type\":\"integer\"}]}",
          L("\"ab\"", "\"\"", "42"), L("\"abc\"", "4.2", "null"));
    cases("{\"type\":[\"string\",\"null\"],\"minLength\":2,\"maxLength\":3}", L("\"ab\"", "\"\xc3\xa9\xc3\xa9\xc3\xa9\"", "null"),
          L("\"a\"", "\"abcd\""));
    cases("{\"type\":\"integer\",\"nullable\":true}", L("3", "null"), L("\"3\""));
    cases("{\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},"
          "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/n\"}}},\"required\":[\"v\"]}},"
          "\"$ref\":\"#/$defs/n\"}",
          L("{\"v\":1}", "{\"v\":1,\"kids\":[{\"v\":2,\"kids\":[]},{\"v\":3}]}"), L("{\"kids\":[]}", "{\"v\":1,\"kids\":[{}]}"));
    cases("{\"type\":\"string\",\"format\":\"date\"}", L("\"2024-02-29\"", "\"2000-02-29\"", "\"1999-12-31\"", "\"2023-04-30\""),
          L("\"2023-02-29\"", "\"1900-02-29\"", "\"2023-04-31\"", "\"2023-13-01\"", "\"2023-00-10\"", "\"2023-1-1\""));
    cases("{\"format\":\"date-time\"}", L("\"2024-01-31T23:59:59Z\"", "\"2024-01-31T00:00:00.123+05:30\""),
          L("\"2024-01-31T24:00:00Z\"", "\"2024-01-31 10:00:00Z\"", "\"2024-01-31T10:00:00\""));
    cases("{\"format\":\"uuid\"}", L("\"123e4567-e89b-12d3-a456-426614174000\""), L("\"123e4567e89b12d3a456426614174000\""));

    refuse("{\"type\":\"object\",\"patternProperties\":{}}", ": keyword 'patternProperties' is not supported");
    refuse("{\"properties\":{\"a\":{\"items\":{\"pattern\":\"x\"}}}}", ".properties.a.items: keyword 'pattern' is not supported");
    refuse("{\"anyOf\":[{},{\"format\":\"email\"}]}", ".anyOf[1]: format 'email' is not supported (date, time, date-time, uuid are)");
    refuse("{\"$ref\":\"http://x/y\"}", ": $ref 'http://x/y' is not supported (only #, #/$defs/NAME, #/definitions/NAME)");
    refuse("{\"type\":\"object\",\"required\":[\"x\"],\"properties\":{}}", ": required property 'x' is not in properties");
    refuse("{\"type\":\"thing\"}", ": type 'thing' is not a JSON Schema type");

    /* two schemas, two prefixes, one grammar */
    json_t *a = json_loads("{\"type\":\"integer\"}", 0, NULL), *b = json_loads("{\"enum\":[\"x\"]}", 0, NULL);
    fr_gbnf_buf buf = {0};
    char err[128];
    CHECK_INT(fr__schema_gbnf(a, "fa", &buf, err, sizeof err), 0);
    CHECK_INT(fr__schema_gbnf(b, "fb", &buf, err, sizeof err), 0);
    CHECK_INT(fr__schema_gbnf(b, "bad prefix", &buf, err, sizeof err), FR_EINVAL);
    size_t n = buf.len + 64;
    char *t = fr_malloc(n);
    snprintf(t, n, "root ::= \"[\" fa \",\" fb \"]\"\n%s", buf.p);
    fr_grammar *g = NULL;
    CHECK_INT(fr_grammar_parse(t, strlen(t), &g), 0);
    if (g) {
        CHECK(accepts(g, "[12,\"x\"]"));
        CHECK(!accepts(g, "[\"x\",12]"));
        fr_grammar_unref(g);
    }
    fr_free(t);
    fr_free(buf.p);
    json_decref(a);
    json_decref(b);

    fr_gvocab_destroy(gv);
    fr_vocab_destroy(v);
    fr_gguf_close(gg);
    return harness_done();
}
