/*
 * schema.c — structured output: the request fields that constrain a
 * generation ("grammar", "response_format", "json_schema") and JSON
 * Schema → GBNF (contract: server_int.h).
 *
 * Every way in ends as GBNF text in fr_gen_req.grammar; fr__gen_run
 * compiles it (engine/grammar.h) and the scheduler masks each step's
 * logits to the tokens it allows.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/grammar.h"
#include "server/server_int.h"

int fr__gen_compile_grammar(fr_req *rq, const fr_gen_req *q, fr_grammar **out) {
    *out = NULL;
    int rc = fr_grammar_parse(q->grammar, strlen(q->grammar), out);
    if (rc == FR_ENOMEM) return rc;
    if (rc) return fr__reply_error(rq, 400, "invalid_value", "grammar", "%s", fr_errdetail());
    return 0;
}

/* ================= JSON Schema → GBNF ================= */

#define SCHEMA_MAX_DEPTH 64             /* nested schemas */
#define SCHEMA_MAX_TEXT (256u << 10)     /* bytes of GBNF one schema may make */
#define SCHEMA_MAX_ITEMS 100             /* maxItems above this: unbounded */
#define SCHEMA_MAX_LEN 1000              /* maxLength above this: unbounded */
#define GENERIC_DEPTH 6                  /* nesting of free-form JSON values */

typedef struct sc {
    json_t *root;
    const char *prefix;
    fr_gbnf_buf *out;
    char *err;
    size_t errcap;
    char path[256];                      /* ".properties.a.items" where we are */
    int n_rules;
    json_t *refs;                        /* "$ref" string → rule name */
    bool oom;
    int generic;                         /* free-form value rules emitted (1 + depth) */
} sc;

static void buf_add(sc *c, const char *s, size_t n) {
    fr_gbnf_buf *b = c->out;
    if (c->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = fr_realloc(b->p, cap);
        if (!p) {
            c->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

__attribute__((format(printf, 2, 3)))
static void buf_fmt(sc *c, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        buf_add(c, tmp, (size_t)n);
        return;
    }
    char *big = fr_malloc((size_t)n + 1);
    if (!big) {
        c->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_add(c, big, (size_t)n);
    fr_free(big);
}

__attribute__((format(printf, 2, 3)))
static int sc_fail(sc *c, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->errcap) snprintf(c->err, c->errcap, "%s: %s", c->path, msg);
    return FR_EINVAL;
}

/* A GBNF literal of s[0..n) (escaping '"' and '\\' and control bytes). */
static void lit(sc *c, const char *s, size_t n) {
    buf_add(c, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            buf_add(c, e, 2);
        } else if (ch < 0x20) buf_fmt(c, "\\x%02X", ch);
        else buf_add(c, s + i, 1);
    }
    buf_add(c, "\"", 1);
}

/* One JSON value, encoded compactly, as a GBNF literal (enum, const,
 * property names).  json_dumpb into our own buffer: no dependence on
 * jansson's allocator settings. */
static int value_lit(sc *c, json_t *v) {
    size_t n = json_dumpb(v, NULL, 0, JSON_ENCODE_ANY | JSON_COMPACT);
    char *enc = n ? fr_malloc(n) : NULL;
    if (!enc || json_dumpb(v, enc, n, JSON_ENCODE_ANY | JSON_COMPACT) != n) {
        fr_free(enc);
        c->oom = true;
        return FR_ENOMEM;
    }
    lit(c, enc, n);
    fr_free(enc);
    return 0;
}

/* A new rule name: prefix-N. */
static void new_rule(sc *c, char *name, size_t cap) {
    snprintf(name, cap, "%s-%d", c->prefix, ++c->n_rules);
}

/* The primitives every schema may use, once per prefix. */
static void primitives(sc *c) {
    const char *p = c->prefix;
    buf_fmt(c, "%s-ws ::= \" \"?\n", p);
    buf_fmt(c, "%s-char ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4})\n", p);
    buf_fmt(c, "%s-string ::= \"\\\"\" %s-char* \"\\\"\"\n", p, p);
    buf_fmt(c, "%s-integer ::= \"-\"? (\"0\" | [1-9] [0-9]{0,15})\n", p);
    buf_fmt(c, "%s-number ::= %s-integer (\".\" [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?\n", p, p);
    buf_fmt(c, "%s-boolean ::= \"true\" | \"false\"\n", p);
    buf_fmt(c, "%s-null ::= \"null\"\n", p);
    /* RFC 3339 full-date: days as the month has them, February 29 in
     * leap years only (divisible by 4; centuries by 400) */
    buf_fmt(c, "%s-d28 ::= \"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8]\n", p);
    buf_fmt(c, "%s-md ::= (\"01\" | \"03\" | \"05\" | \"07\" | \"08\" | \"10\" | \"12\") \"-\" "
               "(%s-d28 | \"29\" | \"30\" | \"31\") | (\"04\" | \"06\" | \"09\" | \"11\") \"-\" "
               "(%s-d28 | \"29\" | \"30\") | \"02-\" %s-d28\n", p, p, p, p);
    buf_fmt(c, "%s-leap ::= [0-9] [0-9] ([02468] [48] | [13579] [26] | [2468] \"0\") | "
               "([02468] [048] | [13579] [26]) \"00\"\n", p);
    buf_fmt(c, "%s-date-body ::= [0-9]{4} \"-\" %s-md | %s-leap \"-02-29\"\n", p, p, p);
    buf_fmt(c, "%s-date ::= \"\\\"\" %s-date-body \"\\\"\"\n", p, p);
    buf_fmt(c, "%s-time-body ::= ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] "
               "(\".\" [0-9]{1,6})? (\"Z\" | [+-] ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9])\n", p);
    buf_fmt(c, "%s-time ::= \"\\\"\" %s-time-body \"\\\"\"\n", p, p);
    buf_fmt(c, "%s-date-time ::= \"\\\"\" %s-date-body \"T\" %s-time-body \"\\\"\"\n", p, p, p);
    buf_fmt(c, "%s-hex ::= [0-9a-fA-F]\n", p);
    buf_fmt(c, "%s-uuid ::= \"\\\"\" %s-hex{8} \"-\" %s-hex{4} \"-\" %s-hex{4} \"-\" %s-hex{4} "
               "\"-\" %s-hex{12} \"\\\"\"\n", p, p, p, p, p, p);
}

/* Free-form JSON at nesting depth d (deeper: scalars only). */
static void generic_name(sc *c, int d, char *name, size_t cap) {
    if (d >= GENERIC_DEPTH) snprintf(name, cap, "%s-scalar", c->prefix);
    else snprintf(name, cap, "%s-value%d", c->prefix, d);
}

static void generic(sc *c) {
    if (c->generic) return;
    c->generic = 1;
    const char *p = c->prefix;
    buf_fmt(c, "%s-scalar ::= %s-string | %s-number | %s-boolean | %s-null\n", p, p, p, p, p);
    for (int d = 0; d < GENERIC_DEPTH; d++) {
        char in[96];
        generic_name(c, d + 1, in, sizeof in);
        buf_fmt(c, "%s-value%d ::= %s-object%d | %s-array%d | %s-scalar\n", p, d, p, d, p, d, p);
        buf_fmt(c, "%s-object%d ::= \"{\" %s-ws (%s-string %s-ws \":\" %s-ws %s %s-ws "
                   "(\",\" %s-ws %s-string %s-ws \":\" %s-ws %s %s-ws)*)? \"}\"\n",
                p, d, p, p, p, p, in, p, p, p, p, p, in, p);
        buf_fmt(c, "%s-array%d ::= \"[\" %s-ws (%s %s-ws (\",\" %s-ws %s %s-ws)*)? \"]\"\n",
                p, d, p, in, p, p, in, p);
    }
}

static int schema_rule(sc *c, json_t *s, int depth, char *name, size_t cap);

/* Run f on a sub-schema with ".seg" appended to the path. */
static int sub(sc *c, json_t *s, int depth, const char *seg, char *name, size_t cap) {
    size_t at = strlen(c->path);
    snprintf(c->path + at, sizeof c->path - at, ".%s", seg);
    int rc = schema_rule(c, s, depth + 1, name, cap);
    if (!rc) c->path[at] = 0;
    return rc;
}

static const char *const known_keys[] = {
    "type", "properties", "required", "additionalProperties", "enum", "const", "items",
    "minItems", "maxItems", "anyOf", "oneOf", "$ref", "$defs", "definitions", "minLength",
    "maxLength", "format", "description", "title", "$schema", "$id", "$comment", "default",
    "examples", "strict", "name", "nullable", NULL};

static int check_keys(sc *c, json_t *s) {
    const char *k;
    json_t *v;
    json_object_foreach(s, k, v) {
        bool ok = false;
        for (int i = 0; known_keys[i] && !ok; i++) ok = !strcmp(k, known_keys[i]);
        if (!ok) return sc_fail(c, "keyword '%.64s' is not supported", k);
    }
    return 0;
}

/* A string with length bounds and/or a format. */
static int string_rule(sc *c, json_t *s, const char *name) {
    const char *p = c->prefix;
    const char *fmt = json_string_value(json_object_get(s, "format"));
    json_t *jmin = json_object_get(s, "minLength"), *jmax = json_object_get(s, "maxLength");
    if (json_object_get(s, "format") && !fmt) return sc_fail(c, "format must be a string");
    if (fmt) {
        if (jmin || jmax) return sc_fail(c, "minLength/maxLength with a format are not supported");
        if (!strcmp(fmt, "date") || !strcmp(fmt, "time") || !strcmp(fmt, "date-time") ||
            !strcmp(fmt, "uuid")) {
            buf_fmt(c, "%s ::= %s-%s\n", name, p, fmt);
            return 0;
        }
        return sc_fail(c, "format '%.64s' is not supported (date, time, date-time, uuid are)", fmt);
    }
    if ((jmin && !json_is_integer(jmin)) || (jmax && !json_is_integer(jmax)))
        return sc_fail(c, "minLength and maxLength must be integers");
    long long lo = jmin ? json_integer_value(jmin) : 0, hi = jmax ? json_integer_value(jmax) : -1;
    if (lo < 0 || (jmax && hi < lo)) return sc_fail(c, "minLength/maxLength out of range");
    if (lo > SCHEMA_MAX_LEN) return sc_fail(c, "minLength above %d is not supported", SCHEMA_MAX_LEN);
    if (hi > SCHEMA_MAX_LEN) hi = -1;
    if (hi < 0) buf_fmt(c, "%s ::= \"\\\"\" %s-char{%lld,} \"\\\"\"\n", name, p, lo);
    else buf_fmt(c, "%s ::= \"\\\"\" %s-char{%lld,%lld} \"\\\"\"\n", name, p, lo, hi);
    return 0;
}

static int array_rule(sc *c, json_t *s, int depth, const char *name) {
    const char *p = c->prefix;
    char item[96];
    json_t *items = json_object_get(s, "items");
    int rc;
    if (items) {
        if (json_is_array(items)) return sc_fail(c, "items as an array (tuple) is not supported");
        if ((rc = sub(c, items, depth, "items", item, sizeof item))) return rc;
    } else {
        generic(c);
        generic_name(c, 1, item, sizeof item);
    }
    json_t *jmin = json_object_get(s, "minItems"), *jmax = json_object_get(s, "maxItems");
    if ((jmin && !json_is_integer(jmin)) || (jmax && !json_is_integer(jmax)))
        return sc_fail(c, "minItems and maxItems must be integers");
    long long lo = jmin ? json_integer_value(jmin) : 0, hi = jmax ? json_integer_value(jmax) : -1;
    if (lo < 0 || (jmax && hi < lo)) return sc_fail(c, "minItems/maxItems out of range");
    if (lo > SCHEMA_MAX_ITEMS) return sc_fail(c, "minItems above %d is not supported", SCHEMA_MAX_ITEMS);
    if (hi > SCHEMA_MAX_ITEMS) hi = -1;
    if (hi == 0) {
        buf_fmt(c, "%s ::= \"[\" %s-ws \"]\"\n", name, p);
        return 0;
    }
    /* item (sep item){lo-1, hi-1}, optional when lo is 0 */
    long long rlo = lo > 0 ? lo - 1 : 0;
    char rep[64];
    if (hi < 0) snprintf(rep, sizeof rep, "{%lld,}", rlo);
    else snprintf(rep, sizeof rep, "{%lld,%lld}", rlo, hi - 1);
    buf_fmt(c, "%s ::= \"[\" %s-ws %s%s %s-ws (\",\" %s-ws %s %s-ws)%s%s \"]\"\n", name, p,
            lo == 0 ? "(" : "", item, p, p, item, p, rep, lo == 0 ? ")?" : "");
    return 0;
}

static int object_rule(sc *c, json_t *s, int depth, const char *name) {
    const char *p = c->prefix;
    json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
    json_t *addl = json_object_get(s, "additionalProperties");
    int rc;
    if (props && !json_is_object(props)) return sc_fail(c, "properties must be an object");
    if (req && !json_is_array(req)) return sc_fail(c, "required must be an array of names");
    if (addl && !json_is_boolean(addl) && !json_is_object(addl))
        return sc_fail(c, "additionalProperties must be a boolean or a schema");
    for (size_t i = 0; req && i < json_array_size(req); i++) {
        const char *r = json_string_value(json_array_get(req, i));
        if (!r) return sc_fail(c, "required must be an array of names");
        if (!json_object_get(props, r))
            return sc_fail(c, "required property '%.64s' is not in properties", r);
    }
    /* extra members: additionalProperties true/schema; absent means none
     * when properties are listed, any when not */
    char extra[96] = "";
    bool allow_extra = addl ? !json_is_false(addl) : !props || json_object_size(props) == 0;
    if (allow_extra) {
        char val[96];
        if (json_is_object(addl)) {
            if ((rc = sub(c, addl, depth, "additionalProperties", val, sizeof val))) return rc;
        } else {
            generic(c);
            generic_name(c, 1, val, sizeof val);
        }
        new_rule(c, extra, sizeof extra);
        buf_fmt(c, "%s ::= %s-string %s-ws \":\" %s-ws %s %s-ws\n", extra, p, p, p, val, p);
    }
    size_t n = props ? json_object_size(props) : 0;
    /* kv[i]: "key" ws ":" ws value ws, then A_i/B_i from the last one back
     * (grammar.h of the header: A: nothing written yet; B: after a member) */
    char (*kv)[96] = NULL;
    bool *required = NULL;
    if (n) {
        kv = fr_calloc(n, sizeof *kv);
        required = fr_calloc(n, sizeof *required);
        if (!kv || !required) {
            fr_free(kv);
            fr_free(required);
            c->oom = true;
            return FR_ENOMEM;
        }
    }
    size_t i = 0;
    const char *key;
    json_t *ps;
    rc = 0;
    json_object_foreach(props, key, ps) {
        char val[96], seg[96];
        snprintf(seg, sizeof seg, "properties.%.64s", key);
        if ((rc = sub(c, ps, depth, seg, val, sizeof val))) break;
        for (size_t k = 0; req && k < json_array_size(req); k++)
            if (!strcmp(json_string_value(json_array_get(req, k)), key)) required[i] = true;
        new_rule(c, kv[i], sizeof kv[i]);
        json_t *jk = json_string(key);
        buf_fmt(c, "%s ::= ", kv[i]);
        if (!jk || value_lit(c, jk)) c->oom = true;
        json_decref(jk);
        buf_fmt(c, " %s-ws \":\" %s-ws %s %s-ws\n", p, p, val, p);
        i++;
    }
    if (!rc) {
        char a_next[96], b_next[96];
        /* A_{n+1}, B_{n+1} */
        new_rule(c, a_next, sizeof a_next);
        new_rule(c, b_next, sizeof b_next);
        if (extra[0]) {
            buf_fmt(c, "%s ::= (%s (\",\" %s-ws %s)*)?\n", a_next, extra, p, extra);
            buf_fmt(c, "%s ::= (\",\" %s-ws %s)*\n", b_next, p, extra);
        } else {
            buf_fmt(c, "%s ::= \n", a_next);
            buf_fmt(c, "%s ::= \n", b_next);
        }
        for (size_t k = n; k-- > 0;) {
            char a[96], b[96];
            new_rule(c, a, sizeof a);
            new_rule(c, b, sizeof b);
            if (required[k]) {
                buf_fmt(c, "%s ::= %s %s\n", a, kv[k], b_next);
                buf_fmt(c, "%s ::= \",\" %s-ws %s %s\n", b, p, kv[k], b_next);
            } else {
                buf_fmt(c, "%s ::= %s %s | %s\n", a, kv[k], b_next, a_next);
                buf_fmt(c, "%s ::= \",\" %s-ws %s %s | %s\n", b, p, kv[k], b_next, b_next);
            }
            snprintf(a_next, sizeof a_next, "%s", a);
            snprintf(b_next, sizeof b_next, "%s", b);
        }
        buf_fmt(c, "%s ::= \"{\" %s-ws %s \"}\"\n", name, p, a_next);
    }
    fr_free(kv);
    fr_free(required);
    return rc;
}


static int type_rule(sc *c, json_t *s, int depth, const char *type, const char *name) {
    const char *p = c->prefix;
    if (!strcmp(type, "object")) return object_rule(c, s, depth, name);
    if (!strcmp(type, "array")) return array_rule(c, s, depth, name);
    if (!strcmp(type, "string")) return string_rule(c, s, name);
    if (!strcmp(type, "number") || !strcmp(type, "integer") || !strcmp(type, "boolean") ||
        !strcmp(type, "null")) {
        buf_fmt(c, "%s ::= %s-%s\n", name, p, type);
        return 0;
    }
    return sc_fail(c, "type '%.32s' is not a JSON Schema type", type);
}

/* Emit the rule for schema s; its name into name. */
static int schema_rule(sc *c, json_t *s, int depth, char *name, size_t cap) {
    int rc;
    if (c->oom) return FR_ENOMEM;
    if (c->out->len > SCHEMA_MAX_TEXT)
        return sc_fail(c, "the schema is too large (its grammar passes %u bytes)", SCHEMA_MAX_TEXT);
    if (depth > SCHEMA_MAX_DEPTH) return sc_fail(c, "schemas nested deeper than %d", SCHEMA_MAX_DEPTH);
    if (json_is_true(s) || (json_is_object(s) && json_object_size(s) == 0)) {
        generic(c);
        generic_name(c, 1, name, cap);
        return 0;
    }
    if (!json_is_object(s)) return sc_fail(c, "a schema must be an object or true");
    if ((rc = check_keys(c, s))) return rc;
    json_t *nullable = json_object_get(s, "nullable");
    if (nullable && !json_is_boolean(nullable)) return sc_fail(c, "nullable must be true or false");
    if (json_is_true(nullable)) {   /* OpenAPI's (openai's zod helper writes it): or null */
        json_t *inner_s = json_copy(s);
        if (!inner_s || json_object_del(inner_s, "nullable")) {
            json_decref(inner_s);
            return FR_ENOMEM;
        }
        char inner[96];
        rc = schema_rule(c, inner_s, depth + 1, inner, sizeof inner);
        json_decref(inner_s);
        if (rc) return rc;
        new_rule(c, name, cap);
        buf_fmt(c, "%s ::= %s | %s-null\n", name, inner, c->prefix);
        return 0;
    }
    json_t *ref = json_object_get(s, "$ref");
    if (ref) {
        const char *r = json_string_value(ref);
        if (!r) return sc_fail(c, "$ref must be a string");
        json_t *seen = json_object_get(c->refs, r);
        if (seen) {
            snprintf(name, cap, "%s", json_string_value(seen));
            return 0;
        }
        json_t *target = NULL;
        if (!strcmp(r, "#")) target = c->root;
        else if (!strncmp(r, "#/$defs/", 8)) target = json_object_get(json_object_get(c->root, "$defs"), r + 8);
        else if (!strncmp(r, "#/definitions/", 14))
            target = json_object_get(json_object_get(c->root, "definitions"), r + 14);
        else return sc_fail(c, "$ref '%.64s' is not supported (only #, #/$defs/NAME, #/definitions/NAME)", r);
        if (!target) return sc_fail(c, "$ref '%.64s' does not resolve", r);
        new_rule(c, name, cap);
        if (json_object_set_new(c->refs, r, json_string(name))) return FR_ENOMEM;
        char inner[96];
        if ((rc = sub(c, target, depth, "$ref", inner, sizeof inner))) return rc;
        buf_fmt(c, "%s ::= %s\n", name, inner);
        return 0;
    }
    new_rule(c, name, cap);
    json_t *en = json_object_get(s, "enum"), *cn = json_object_get(s, "const");
    if (cn) {
        buf_fmt(c, "%s ::= ", name);
        if ((rc = value_lit(c, cn))) return rc;
        buf_add(c, "\n", 1);
        return 0;
    }
    if (en) {
        if (!json_is_array(en) || json_array_size(en) == 0)
            return sc_fail(c, "enum must be a non-empty array");
        buf_fmt(c, "%s ::= ", name);
        for (size_t i = 0; i < json_array_size(en); i++) {
            if (i) buf_add(c, " | ", 3);
            if ((rc = value_lit(c, json_array_get(en, i)))) return rc;
        }
        buf_add(c, "\n", 1);
        return 0;
    }
    json_t *any = json_object_get(s, "anyOf");
    const char *any_kw = "anyOf";
    if (!any) {
        any = json_object_get(s, "oneOf");
        any_kw = "oneOf";
    }
    if (any) {
        if (!json_is_array(any) || json_array_size(any) == 0)
            return sc_fail(c, "%s must be a non-empty array of schemas", any_kw);
        size_t n = json_array_size(any);
        char (*alts)[96] = fr_calloc(n, sizeof *alts);
        if (!alts) return FR_ENOMEM;
        for (size_t i = 0; i < n && !rc; i++) {
            char seg[32];
            snprintf(seg, sizeof seg, "%s[%zu]", any_kw, i);
            rc = sub(c, json_array_get(any, i), depth, seg, alts[i], sizeof alts[i]);
        }
        if (!rc) {
            buf_fmt(c, "%s ::= ", name);
            for (size_t i = 0; i < n; i++) buf_fmt(c, "%s%s", i ? " | " : "", alts[i]);
            buf_add(c, "\n", 1);
        }
        fr_free(alts);
        return rc;
    }
    json_t *type = json_object_get(s, "type");
    if (!type) {   /* implied by the other keywords, else any value */
        if (json_object_get(s, "properties") || json_object_get(s, "additionalProperties") ||
            json_object_get(s, "required"))
            return type_rule(c, s, depth, "object", name);
        if (json_object_get(s, "items") || json_object_get(s, "minItems") || json_object_get(s, "maxItems"))
            return type_rule(c, s, depth, "array", name);
        if (json_object_get(s, "minLength") || json_object_get(s, "maxLength") || json_object_get(s, "format"))
            return type_rule(c, s, depth, "string", name);
        generic(c);
        char g[96];
        generic_name(c, 1, g, sizeof g);
        buf_fmt(c, "%s ::= %s\n", name, g);
        return 0;
    }
    if (json_is_string(type)) return type_rule(c, s, depth, json_string_value(type), name);
    if (!json_is_array(type) || json_array_size(type) == 0)
        return sc_fail(c, "type must be a string or a non-empty array of strings");
    size_t n = json_array_size(type);
    char (*alts)[96] = fr_calloc(n, sizeof *alts);
    if (!alts) return FR_ENOMEM;
    rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const char *t = json_string_value(json_array_get(type, i));
        if (!t) rc = sc_fail(c, "type must be a string or a non-empty array of strings");
        else {
            new_rule(c, alts[i], sizeof alts[i]);
            rc = type_rule(c, s, depth, t, alts[i]);
        }
    }
    if (!rc) {
        buf_fmt(c, "%s ::= ", name);
        for (size_t i = 0; i < n; i++) buf_fmt(c, "%s%s", i ? " | " : "", alts[i]);
        buf_add(c, "\n", 1);
    }
    fr_free(alts);
    return rc;
}

int fr__schema_gbnf(json_t *schema, const char *prefix, fr_gbnf_buf *out, char *err, size_t errcap) {
    if (errcap) err[0] = 0;
    size_t pl = prefix ? strlen(prefix) : 0;
    bool ok = pl > 0 && pl <= 32;
    for (size_t i = 0; ok && i < pl; i++)
        ok = (prefix[i] >= 'a' && prefix[i] <= 'z') || (prefix[i] >= 'A' && prefix[i] <= 'Z') ||
             (prefix[i] >= '0' && prefix[i] <= '9') || prefix[i] == '-' || prefix[i] == '_';
    if (!ok) {
        if (errcap) snprintf(err, errcap, ": bad rule prefix");
        return FR_EINVAL;
    }
    sc c = {.root = schema, .prefix = prefix, .out = out, .err = err, .errcap = errcap};
    if (!(c.refs = json_object())) return FR_ENOMEM;
    size_t start = out->len;
    primitives(&c);
    char name[96];
    int rc = schema_rule(&c, schema, 0, name, sizeof name);
    if (!rc && !c.oom) buf_fmt(&c, "%s ::= %s\n", prefix, name);
    json_decref(c.refs);
    if (c.oom) rc = FR_ENOMEM;
    if (rc && out->p) {   /* leave out as it was */
        out->len = start;
        out->p[start] = 0;
    }
    return rc;
}

/* ================= the request's fields ================= */

int fr__schema_grammar(fr_req *rq, json_t *schema, const char *field, const char **out) {
    fr_gbnf_buf b = {0};
    char err[384];
    int rc = fr__schema_gbnf(schema, "s", &b, err, sizeof err);
    if (rc == FR_ENOMEM) {
        fr_free(b.p);
        return rc;
    }
    if (rc) {
        fr_free(b.p);
        const char *param = strchr(field, '.') ? "response_format" : field;
        return fr__reply_error(rq, 400, "invalid_value", param, "%s%s", field, err);
    }
    static const char head[] = "root ::= s\n";
    char *t = fr__req_alloc(rq, sizeof head + b.len);
    if (!t) {
        fr_free(b.p);
        return FR_ENOMEM;
    }
    memcpy(t, head, sizeof head - 1);
    memcpy(t + sizeof head - 1, b.p, b.len + 1);
    fr_free(b.p);
    /* what the grammar parser refuses of a schema's grammar ($ref cycles
     * that consume nothing, the size limits) is the schema's fault */
    fr_grammar *g = NULL;
    rc = fr_grammar_parse(t, strlen(t), &g);
    fr_grammar_unref(g);
    if (rc == FR_ENOMEM) return rc;
    if (rc) {
        const char *param = strchr(field, '.') ? "response_format" : field;
        return fr__reply_error(rq, 400, "invalid_value", param, "%s: the schema cannot be used (%s)",
                               field, fr_errdetail());
    }
    *out = t;
    return 0;
}

int fr__gen_parse_structured(const fr_body *b, fr_gen_req *q) {
    fr_req *rq = b->rq;
    const char *gbnf = NULL, *set_by = NULL;
    size_t len = 0;
    int rc;
    json_t *rf = json_object_get(b->obj, "response_format");
    json_t *js = json_object_get(b->obj, "json_schema");
    if ((rc = fr__body_str(b, "grammar", 0, &gbnf, &len))) return rc;
    if (gbnf && len) {
        q->grammar = gbnf;
        set_by = "grammar";
    }
    if (js && !json_is_null(js)) {
        if (!json_is_object(js) && !json_is_true(js))
            return fr__reply_error(rq, 400, "invalid_value", "json_schema", "json_schema must be a schema (an object)");
        if (set_by)
            return fr__reply_error(rq, 400, "invalid_value", "json_schema",
                                   "json_schema and %s cannot both be given", set_by);
        if ((rc = fr__schema_grammar(rq, js, "json_schema", &q->grammar))) return rc;
        set_by = "json_schema";
    }
    if (!rf || json_is_null(rf)) return 0;
    const char *type = json_string_value(json_object_get(rf, "type"));
    if (!json_is_object(rf) || !type)
        return fr__reply_error(rq, 400, "invalid_value", "response_format",
                               "response_format must be an object with a \"type\": text, json_object "
                               "or json_schema");
    if (!strcmp(type, "text")) return 0;
    json_t *schema = NULL;
    const char *field;
    if (!strcmp(type, "json_object")) {
        /* llama-server's {"type": "json_object", "schema": {...}}; else any object */
        schema = json_object_get(rf, "schema");
        field = "response_format.schema";
    } else if (!strcmp(type, "json_schema")) {
        json_t *w = json_object_get(rf, "json_schema");
        if (!json_is_object(w))
            return fr__reply_error(rq, 400, "invalid_value", "response_format",
                                   "response_format.json_schema must be an object with a \"schema\"");
        schema = json_object_get(w, "schema");
        if (!schema) schema = json_object_get(rf, "schema");
        field = "response_format.json_schema.schema";
        if (!schema)
            return fr__reply_error(rq, 400, "missing_field", "response_format",
                                   "response_format.json_schema.schema is required");
    } else
        return fr__reply_error(rq, 400, "invalid_value", "response_format",
                               "response_format.type '%.32s' is not supported (text, json_object, "
                               "json_schema)", type);
    if (set_by)
        return fr__reply_error(rq, 400, "invalid_value", "response_format",
                               "response_format and %s cannot both be given", set_by);
    json_t *obj = NULL;
    if (!schema) {
        if (!(obj = json_pack("{s:s}", "type", "object"))) return FR_ENOMEM;
        schema = obj;
    }
    rc = fr__schema_grammar(rq, schema, field, &q->grammar);
    json_decref(obj);
    return rc;
}

int fr_server_schema_gbnf(const char *json, size_t len, char **gbnf, char *err, size_t errcap) {
    *gbnf = NULL;
    json_error_t je;
    json_t *schema = json_loadb(json, len, JSON_DECODE_ANY, &je);
    if (!schema) {
        if (errcap) snprintf(err, errcap, "not JSON: %s (line %d)", je.text, je.line);
        return FR_EINVAL;
    }
    fr_gbnf_buf b = {0};
    static const char head[] = "root ::= s\n";
    int rc = fr__schema_gbnf(schema, "s", &b, err, errcap);
    json_decref(schema);
    if (rc) {
        fr_free(b.p);
        return rc;
    }
    char *t = fr_malloc(sizeof head + b.len);
    if (!t) {
        fr_free(b.p);
        return FR_ENOMEM;
    }
    memcpy(t, head, sizeof head - 1);
    memcpy(t + sizeof head - 1, b.p, b.len + 1);
    fr_free(b.p);
    *gbnf = t;
    return 0;
}
