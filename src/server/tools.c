/*
 * tools.c — tool calls on POST /v1/chat/completions, in OpenAI's shapes.
 *
 * The request.  "tools" is an array of {"type": "function", "function":
 * {"name", "description", "parameters", "strict"}}: a name is 1 to 64
 * letters, digits, '_' or '-' (OpenAI's rule, which also keeps it safe
 * inside the call syntax and a grammar's literal), unique; "parameters" an
 * object (a JSON Schema).  "tool_choice" is "auto" (the default with
 * tools), "none", "required" or {"type": "function", "function": {"name"}}
 * naming one of them; "parallel_tool_calls" (default true) lets one
 * answer hold several calls.  Every refusal is a 400 naming the field
 * ("tools[2].function.name").  In the conversation, an assistant message
 * may carry "tool_calls" [{"id", "type": "function", "function": {"name",
 * "arguments": a JSON string}}] with its content null or absent, and a
 * "tool" message answers one by its "tool_call_id".
 *
 * The prompt.  The chat template renders the definitions and the calls
 * and results the way the model's family expects (chat.c,
 * fr_chat_apply_tools); here each definition is printed as that family's
 * template prints it (json.dumps's ", " and ": "; llama3 indented by 4),
 * and each call's arguments as a JSON value (a string that is not JSON is
 * quoted).  With tool_choice "none" no tools are shown and nothing is
 * parsed.
 *
 * The reply.  The model writes calls in its family's syntax:
 *   hermes (chatml and the llama-2 family): <tool_call>\n{"name": ...,
 *     "arguments": {...}}\n</tool_call>, any number, text around them;
 *   llama3: the whole answer is {"name": ..., "parameters": {...}}
 *     (after <|python_tag|> when the vocabulary prints it);
 *   mistral: the whole answer is [TOOL_CALLS] [{"name": ..., "arguments":
 *     {...}}, ...] (the marker is a control token, usually not printed).
 * The parser reads the text as it streams: text outside calls is content
 * (held back only while it could be the start of a call's syntax, and
 * trimmed of whitespace at both ends), a call goes out when it is whole,
 * as OpenAI streams it: a delta with its index, id ("call_" and 24 random
 * letters and digits), type and name and empty arguments, then one with
 * the arguments (compact JSON).  With "required" or a named function the
 * grammar lets nothing but calls through, so they are read live instead:
 * the head delta as soon as the name is written, then the arguments in
 * pieces as they come (the model's JSON without the whitespace between
 * tokens; a character split between pieces waits to be whole).  A call that does not parse (bad JSON, an
 * unknown function, arguments not an object, one call too many without
 * parallel_tool_calls) is dropped back into the content as the text it
 * was, or for the last, dropped.  The non-streamed reply is the same
 * deltas folded into one message, so both always agree.
 *
 * Enforcement.  "required" and a named function get a GBNF grammar
 * (fr_gen_req.grammar's contract: start rule "root") that allows only the
 * family's call syntax with the allowed names, each call's arguments as
 * that function's "parameters" schema says (fr__schema_gbnf; any JSON
 * object without one), one call, or one or more with parallel_tool_calls
 * where the family has a list (Llama 3.1's format has one call).  A
 * schema keyword the grammar cannot enforce is a 400 naming
 * tools[i].function.parameters then (and only then: "auto" does not
 * compile the schemas).  Mistral's marker is left out of the grammar (it
 * is a control token the grammar cannot spell); the parser reads the
 * array without it.
 */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/sysinfo.h"
#include "server/server_int.h"

#define MAX_TOOLS 128
#define MAX_CALLS 128               /* calls one assistant message may carry */
#define NAME_MAX_LEN 64

/* ---- the request ---- */

static bool good_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

static int bad(fr_req *rq, const char *param, const char *fmt, const char *arg) {
    return fr__reply_error(rq, 400, "invalid_value", param, fmt, param, arg);
}

static int parse_tool(fr_req *rq, fr_tools *t, size_t i) {
    char param[64];
    json_t *tool = json_array_get(t->defs, i);
    snprintf(param, sizeof param, "tools[%zu]", i);
    if (!json_is_object(tool)) return bad(rq, param, "%s must be an object%s", "");
    snprintf(param, sizeof param, "tools[%zu].type", i);
    const char *type = json_string_value(json_object_get(tool, "type"));
    if (!type || strcmp(type, "function") != 0)
        return bad(rq, param, "%s must be \"function\"%s", "");
    snprintf(param, sizeof param, "tools[%zu].function", i);
    json_t *fn = json_object_get(tool, "function");
    if (!json_is_object(fn)) return bad(rq, param, "%s must be an object%s", "");
    snprintf(param, sizeof param, "tools[%zu].function.name", i);
    const char *name = json_string_value(json_object_get(fn, "name"));
    if (!name || !good_name(name))
        return bad(rq, param, "%s must be 1 to 64 letters, digits, underscores or dashes%s", "");
    for (size_t k = 0; k < i; k++)
        if (strcmp(t->names[k], name) == 0)
            return bad(rq, param, "%s: '%s' is defined twice", name);
    t->names[i] = name;
    snprintf(param, sizeof param, "tools[%zu].function.description", i);
    json_t *d = json_object_get(fn, "description");
    if (d && !json_is_null(d) && !json_is_string(d)) return bad(rq, param, "%s must be a string%s", "");
    snprintf(param, sizeof param, "tools[%zu].function.parameters", i);
    json_t *p = json_object_get(fn, "parameters");
    if (p && !json_is_null(p) && !json_is_object(p))
        return bad(rq, param, "%s must be an object (a JSON Schema)%s", "");
    t->params[i] = json_is_object(p) ? p : NULL;
    snprintf(param, sizeof param, "tools[%zu].function.strict", i);
    json_t *st = json_object_get(fn, "strict");
    if (st && !json_is_null(st) && !json_is_boolean(st)) return bad(rq, param, "%s must be true or false%s", "");
    return 0;
}

static int parse_choice(const fr_body *b, fr_tools *t) {
    fr_req *rq = b->rq;
    json_t *c = json_object_get(b->obj, "tool_choice");
    if (!c || json_is_null(c)) return 0;
    if (json_is_string(c)) {
        const char *s = json_string_value(c);
        if (!strcmp(s, "auto")) t->choice = FR_TOOLS_AUTO;
        else if (!strcmp(s, "none")) t->choice = FR_TOOLS_NONE;
        else if (!strcmp(s, "required")) t->choice = FR_TOOLS_REQUIRED;
        else
            return fr__reply_error(rq, 400, "invalid_value", "tool_choice",
                                   "tool_choice must be \"auto\", \"none\", \"required\" or {\"type\": "
                                   "\"function\", \"function\": {\"name\": ...}} (got '%.32s')", s);
        return 0;
    }
    const char *type = json_string_value(json_object_get(c, "type"));
    json_t *fn = json_object_get(c, "function");
    const char *name = json_string_value(json_object_get(fn, "name"));
    if (!json_is_object(c) || !type || strcmp(type, "function") != 0 || !name)
        return fr__reply_error(rq, 400, "invalid_value", "tool_choice",
                               "tool_choice must be \"auto\", \"none\", \"required\" or {\"type\": "
                               "\"function\", \"function\": {\"name\": ...}}");
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->names[i], name)) {
            t->choice = FR_TOOLS_NAMED;
            t->named = i;
            return 0;
        }
    return fr__reply_error(rq, 400, "invalid_value", "tool_choice",
                           "tool_choice names function '%.64s', which is not in tools", name);
}

int fr__tools_parse(const fr_body *b, fr_gen_req *q) {
    fr_req *rq = b->rq;
    json_t *defs = json_object_get(b->obj, "tools");
    json_t *c = json_object_get(b->obj, "tool_choice");
    q->tools = NULL;
    if (!defs || json_is_null(defs) || (json_is_array(defs) && json_array_size(defs) == 0)) {
        /* no tools: "none" and "auto" mean nothing; a call cannot be required */
        if (c && !json_is_null(c) && !(json_is_string(c) && (!strcmp(json_string_value(c), "none") ||
                                                             !strcmp(json_string_value(c), "auto"))))
            return fr__reply_error(rq, 400, "invalid_value", "tool_choice",
                                   "tool_choice needs tools: none were given");
        return 0;
    }
    if (!json_is_array(defs) || json_array_size(defs) > MAX_TOOLS)
        return fr__reply_error(rq, 400, "invalid_value", "tools",
                               "tools must be an array of at most %d function definitions", MAX_TOOLS);
    fr_tools *t = fr__req_alloc(rq, sizeof *t);
    if (!t) return FR_ENOMEM;
    memset(t, 0, sizeof *t);
    t->defs = defs;
    t->n = json_array_size(defs);
    t->names = fr__req_alloc(rq, t->n * sizeof *t->names);
    t->params = fr__req_alloc(rq, t->n * sizeof *t->params);
    if (!t->names || !t->params) return FR_ENOMEM;
    int rc;
    for (size_t i = 0; i < t->n; i++)
        if ((rc = parse_tool(rq, t, i))) return rc;
    t->choice = FR_TOOLS_AUTO;
    t->parallel = true;
    if ((rc = parse_choice(b, t)) || (rc = fr__body_bool(b, "parallel_tool_calls", &t->parallel))) return rc;
    q->tools = t;
    return 0;
}

bool fr__tools_active(const fr_gen_req *q) { return q->tools && q->tools->choice != FR_TOOLS_NONE; }

/* A call's arguments as the template prints them: the JSON value the
 * string holds, else the string itself quoted. */
static const char *args_text(fr_req *rq, json_t *a) {
    json_t *v = NULL;
    if (json_is_string(a)) v = json_loadb(json_string_value(a), json_string_length(a), JSON_DECODE_ANY, NULL);
    char *s = json_dumps(v ? v : a, JSON_ENCODE_ANY);
    json_decref(v);
    if (!s) return NULL;
    char *out = fr__req_strdup(rq, s);
    fr_free(s);
    return out;
}

int fr__tools_message(fr_req *rq, json_t *msg, size_t i, fr_chat_msg *m) {
    char param[80];
    if (!strcmp(m->role, "tool")) {
        snprintf(param, sizeof param, "messages[%zu].tool_call_id", i);
        json_t *id = json_object_get(msg, "tool_call_id");
        if (!json_is_string(id))
            return fr__reply_error(rq, 400, id ? "invalid_value" : "missing_field", param,
                                   "%s must be a string (the id of the call this answers)", param);
        m->tool_call_id = json_string_value(id);
        return 0;
    }
    if (strcmp(m->role, "assistant") != 0) return 0;
    json_t *calls = json_object_get(msg, "tool_calls");
    snprintf(param, sizeof param, "messages[%zu].tool_calls", i);
    if (!calls || json_is_null(calls)) return 0;
    if (!json_is_array(calls) || json_array_size(calls) > MAX_CALLS)
        return fr__reply_error(rq, 400, "invalid_value", param, "%s must be an array of at most %d calls",
                               param, MAX_CALLS);
    size_t n = json_array_size(calls);
    fr_chat_call *cs = fr__req_alloc(rq, (n ? n : 1) * sizeof *cs);
    if (!cs) return FR_ENOMEM;
    for (size_t k = 0; k < n; k++) {
        json_t *c = json_array_get(calls, k);
        json_t *fn = json_object_get(c, "function");
        json_t *id = json_object_get(c, "id");
        const char *type = json_string_value(json_object_get(c, "type"));
        const char *name = json_string_value(json_object_get(fn, "name"));
        json_t *args = json_object_get(fn, "arguments");
        snprintf(param, sizeof param, "messages[%zu].tool_calls[%zu]", i, k);
        if (!json_is_object(c) || (type && strcmp(type, "function") != 0) || !json_is_object(fn) ||
            (id && !json_is_null(id) && !json_is_string(id)))
            return fr__reply_error(rq, 400, "invalid_value", param,
                                   "%s must be {\"id\": string, \"type\": \"function\", \"function\": "
                                   "{\"name\", \"arguments\"}}", param);
        snprintf(param, sizeof param, "messages[%zu].tool_calls[%zu].function.name", i, k);
        if (!name || !good_name(name))
            return fr__reply_error(rq, 400, "invalid_value", param,
                                   "%s must be 1 to 64 letters, digits, underscores or dashes", param);
        snprintf(param, sizeof param, "messages[%zu].tool_calls[%zu].function.arguments", i, k);
        if (!args || json_is_null(args))
            return fr__reply_error(rq, 400, "missing_field", param, "%s is required", param);
        cs[k].id = json_string_value(id);
        cs[k].name = name;
        if (!(cs[k].arguments = args_text(rq, args))) return FR_ENOMEM;
    }
    m->calls = cs;
    m->n_calls = n;
    return 0;
}

int fr__tools_defs(fr_req *rq, const fr_gen_req *q, int kind, const char *const **defs, size_t *n) {
    *defs = NULL;
    *n = 0;
    if (!fr__tools_active(q)) return 0;
    const fr_tools *t = q->tools;
    const char **d = fr__req_alloc(rq, t->n * sizeof *d);
    if (!d) return FR_ENOMEM;
    size_t flags = kind == FR_CHAT_LLAMA3 ? JSON_INDENT(4) : 0;
    for (size_t i = 0; i < t->n; i++) {
        char *s = json_dumps(json_array_get(t->defs, i), flags);
        d[i] = s ? fr__req_strdup(rq, s) : NULL;
        fr_free(s);
        if (!d[i]) return FR_ENOMEM;
    }
    *defs = d;
    *n = t->n;
    return 0;
}

/* ---- the grammar ---- */

typedef struct gbuf {
    char *s;
    size_t len, cap;
    bool oom;
} gbuf;

static void g_put(gbuf *g, const char *s) {
    size_t n = strlen(s);
    if (g->oom) return;
    if (g->len + n + 1 > g->cap) {
        size_t cap = g->cap ? g->cap : 1024;
        while (cap < g->len + n + 1) cap *= 2;
        char *p = fr_realloc(g->s, cap);
        if (!p) {
            g->oom = true;
            return;
        }
        g->s = p;
        g->cap = cap;
    }
    memcpy(g->s + g->len, s, n + 1);
    g->len += n;
}

/* Any JSON value; objects and arrays with ", " and ": " as the templates
 * print them. */
static const char generic_json[] =
    "tool-obj ::= \"{\" ( tool-str \": \" tool-val ( \", \" tool-str \": \" tool-val )* )? \"}\"\n"
    "tool-arr ::= \"[\" ( tool-val ( \", \" tool-val )* )? \"]\"\n"
    "tool-val ::= tool-obj | tool-arr | tool-str | tool-num | \"true\" | \"false\" | \"null\"\n"
    "tool-str ::= \"\\\"\" ( [^\"\\\\\\x00-\\x1f] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" [0-9a-fA-F] "
    "[0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] ) )* \"\\\"\"\n"
    "tool-num ::= \"-\"? ( \"0\" | [1-9] [0-9]* ) ( \".\" [0-9]+ )? ( [eE] [-+]? [0-9]+ )?\n";

int fr__tools_grammar(fr_req *rq, const fr_gen_req *q, int kind, const char **grammar) {
    *grammar = NULL;
    const fr_tools *t = q->tools;
    if (!t || (t->choice != FR_TOOLS_REQUIRED && t->choice != FR_TOOLS_NAMED)) return 0;
    bool hermes = kind != FR_CHAT_LLAMA3 && kind != FR_CHAT_MISTRAL;
    const char *key = kind == FR_CHAT_LLAMA3 ? "parameters" : "arguments";
    gbuf g = {0};
    char line[256];
    /* root: the family's list of calls */
    if (kind == FR_CHAT_MISTRAL)
        g_put(&g, t->parallel ? "root ::= \"[\" tool-call ( \", \" tool-call )* \"]\"\n"
                              : "root ::= \"[\" tool-call \"]\"\n");
    else if (hermes && t->parallel)
        g_put(&g, "root ::= tool-call ( \"\\n\" tool-call )*\n");
    else
        g_put(&g, "root ::= tool-call\n");
    g_put(&g, "tool-call ::= ");
    if (hermes) g_put(&g, "\"<tool_call>\\n\" ");
    g_put(&g, "\"{\\\"name\\\": \\\"\" tool-fn \"}\"");
    if (hermes) g_put(&g, " \"\\n</tool_call>\"");
    g_put(&g, "\ntool-fn ::= ");
    for (size_t i = 0; i < t->n; i++) {
        if (t->choice == FR_TOOLS_NAMED && i != t->named) continue;
        if (g.len && g.s[g.len - 1] != ' ') g_put(&g, " | ");
        char args[32] = "tool-obj";
        if (t->params[i]) snprintf(args, sizeof args, "tool-args%zu", i);
        snprintf(line, sizeof line, "\"%s\\\", \\\"%s\\\": \" %s", t->names[i], key, args);
        g_put(&g, line);
    }
    g_put(&g, "\n");
    g_put(&g, generic_json);
    /* each function's arguments as its parameters' schema says */
    fr_gbnf_buf sb = {0};
    int rc = 0;
    for (size_t i = 0; !rc && i < t->n; i++) {
        if (!t->params[i] || (t->choice == FR_TOOLS_NAMED && i != t->named)) continue;
        char prefix[32], err[384];
        snprintf(prefix, sizeof prefix, "tool-args%zu", i);
        if ((rc = fr__schema_gbnf(t->params[i], prefix, &sb, err, sizeof err)) == FR_EINVAL) {
            char param[64];
            snprintf(param, sizeof param, "tools[%zu].function.parameters", i);
            rc = fr__reply_error(rq, 400, "invalid_value", param, "%s%s (tool_choice %s enforces it)", param,
                                 err, t->choice == FR_TOOLS_NAMED ? "names the function and" : "\"required\"");
        }
    }
    if (!rc && sb.p) g_put(&g, sb.p);
    fr_free(sb.p);
    if (!rc && g.oom) rc = FR_ENOMEM;
    if (!rc && !(*grammar = fr__req_strdup(rq, g.s))) rc = FR_ENOMEM;
    fr_free(g.s);
    return rc;
}

/* ---- the reply's parser ---- */

enum { MODE_START, MODE_TEXT, MODE_CALL, MODE_WHOLE };
/* Live (enforced) reading: between calls, a call's head, its arguments
 * (sent), arguments not sent (a call that is not taken), the rest of an
 * object whose head is not a call's. */
enum { L_SEEK, L_HEAD, L_ARGS, L_SKIP_ARGS, L_SKIP_OBJ };

/* A JSON value read byte by byte: where it ends, and which of its bytes
 * are insignificant whitespace. */
typedef struct jscan {
    bool started, in_str, esc, scalar;
    int depth;
} jscan;

struct fr_tool_parser {
    const fr_tools *t;
    int kind;
    bool hermes;                /* tags anywhere; else the whole answer is the call list */
    int mode;
    char *buf;                  /* text not yet handed on */
    size_t len, cap;
    char *ws;                   /* content's whitespace held until more content comes */
    size_t ws_len, ws_cap;
    bool sent_content;
    int n_calls;
    bool live;                  /* required / named: calls sent as they are written */
    int live_state;             /* L_* */
    jscan js;
    char pend[4];               /* the arguments' last character, not whole yet */
    size_t n_pend;
};

static const char TAG_OPEN[] = "<tool_call>", TAG_CLOSE[] = "</tool_call>";
static const char PYTHON_TAG[] = "<|python_tag|>", MISTRAL_TAG[] = "[TOOL_CALLS]";

static bool grow(char **s, size_t *cap, size_t need) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    char *p = fr_realloc(*s, c);
    if (!p) return false;
    *s = p;
    *cap = c;
    return true;
}

int fr__tool_parser_create(const fr_tools *t, int kind, fr_tool_parser **out) {
    fr_tool_parser *p = fr_calloc(1, sizeof *p);
    if (!p) return FR_ENOMEM;
    p->t = t;
    p->kind = kind;
    p->hermes = kind != FR_CHAT_LLAMA3 && kind != FR_CHAT_MISTRAL;
    p->mode = p->hermes ? MODE_TEXT : MODE_START;
    p->live = t->choice == FR_TOOLS_REQUIRED || t->choice == FR_TOOLS_NAMED;
    *out = p;
    return 0;
}

void fr__tool_parser_destroy(fr_tool_parser *p) {
    if (!p) return;
    fr_free(p->buf);
    fr_free(p->ws);
    fr_free(p);
}

int fr__tool_parser_calls(const fr_tool_parser *p) { return p->n_calls; }

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Content: leading whitespace of the answer dropped, trailing whitespace
 * held until more content follows (and dropped at the end). */
static int emit_content(fr_tool_parser *p, const char *s, size_t n, json_t *deltas) {
    if (!p->sent_content)
        while (n && is_ws(*s)) s++, n--;
    size_t core = n;
    while (core && is_ws(s[core - 1])) core--;
    if (core == 0) {
        if (!p->sent_content || n == 0) return 0;
        if (!grow(&p->ws, &p->ws_cap, p->ws_len + n)) return FR_ENOMEM;
        memcpy(p->ws + p->ws_len, s, n);
        p->ws_len += n;
        return 0;
    }
    char *joined = fr_malloc(p->ws_len + core + 1);
    if (!joined) return FR_ENOMEM;
    if (p->ws_len) memcpy(joined, p->ws, p->ws_len);
    memcpy(joined + p->ws_len, s, core);
    json_t *text = fr__json_text(joined, p->ws_len + core);
    fr_free(joined);
    json_t *d = text ? json_pack("{s:o}", "content", text) : NULL;
    if (!d || json_array_append_new(deltas, d)) return FR_ENOMEM;
    p->sent_content = true;
    p->ws_len = 0;
    if (n > core) {
        if (!grow(&p->ws, &p->ws_cap, n - core)) return FR_ENOMEM;
        memcpy(p->ws, s + core, n - core);
        p->ws_len = n - core;
    }
    return 0;
}

static void call_id(char out[32]) {
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[24];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        /* no entropy source: a counter and the clock are still unique here */
        static _Atomic unsigned long long ctr;
        unsigned long long v = ++ctr ^ (unsigned long long)(fr_now_s() * 1e6);
        for (size_t i = 0; i < sizeof r; i++) r[i] = (unsigned char)(v >> (i % 8 * 8)) + (unsigned char)i;
    }
    memcpy(out, "call_", 5);
    for (size_t i = 0; i < sizeof r; i++) out[5 + i] = al[r[i] % (sizeof al - 1)];
    out[5 + sizeof r] = 0;
}

/* A call object {"name", "arguments" | "parameters"}: its two deltas, or
 * false when it is not a call to one of the tools. */
static bool call_ok(const fr_tool_parser *p, json_t *c, const char **name, json_t **args) {
    *name = json_string_value(json_object_get(c, "name"));
    *args = json_object_get(c, "arguments");
    if (!*args) *args = json_object_get(c, "parameters");
    if (!json_is_object(c) || !*name || !json_is_object(*args)) return false;
    for (size_t i = 0; i < p->t->n; i++)
        if (!strcmp(p->t->names[i], *name))
            return p->t->choice != FR_TOOLS_NAMED || i == p->t->named;
    return false;
}

static int emit_call(fr_tool_parser *p, const char *name, json_t *args, json_t *deltas) {
    if (!p->t->parallel && p->n_calls >= 1) return 0;     /* one too many: dropped */
    char id[32];
    call_id(id);
    char *a = json_dumps(args, JSON_COMPACT);
    if (!a) return FR_ENOMEM;
    json_t *d1 = json_pack("{s:[{s:i, s:s, s:s, s:{s:s, s:s}}]}", "tool_calls", "index", p->n_calls, "id", id,
                           "type", "function", "function", "name", name, "arguments", "");
    json_t *d2 = json_pack("{s:[{s:i, s:{s:s}}]}", "tool_calls", "index", p->n_calls, "function", "arguments", a);
    fr_free(a);
    if (!d1 || !d2) {
        json_decref(d1);
        json_decref(d2);
        return FR_ENOMEM;
    }
    int bad1 = json_array_append_new(deltas, d1), bad2 = json_array_append_new(deltas, d2);
    if (bad1 || bad2) return FR_ENOMEM;     /* (each is freed when not appended) */
    p->n_calls++;
    return 0;
}

/* Parse s as the family's call list: each call's deltas appended, true;
 * false (nothing appended) when it is not one. */
static int parse_calls(fr_tool_parser *p, const char *s, size_t n, json_t *deltas, bool *ok) {
    *ok = false;
    while (n && is_ws(*s)) s++, n--;
    while (n && is_ws(s[n - 1])) n--;
    if (p->kind == FR_CHAT_LLAMA3 && n >= sizeof PYTHON_TAG - 1 && !memcmp(s, PYTHON_TAG, sizeof PYTHON_TAG - 1))
        s += sizeof PYTHON_TAG - 1, n -= sizeof PYTHON_TAG - 1;
    if (p->kind == FR_CHAT_MISTRAL && n >= sizeof MISTRAL_TAG - 1 &&
        !memcmp(s, MISTRAL_TAG, sizeof MISTRAL_TAG - 1))
        s += sizeof MISTRAL_TAG - 1, n -= sizeof MISTRAL_TAG - 1;
    /* one or more JSON values (llama3: separated by ';' or whitespace);
     * a mistral array is its elements */
    json_t *calls = json_array();
    if (!calls) return FR_ENOMEM;
    size_t at = 0;
    bool good = true;
    while (good) {
        while (at < n && (is_ws(s[at]) || (at && s[at] == ';'))) at++;
        if (at == n) break;
        json_error_t err;
        json_t *v = json_loadb(s + at, n - at, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &err);
        if (!v) {
            if (json_error_code(&err) == json_error_out_of_memory) {   /* not the text's fault */
                json_decref(calls);
                return FR_ENOMEM;
            }
            good = false;
            break;
        }
        at += (size_t)err.position;
        int bad = json_is_array(v) && p->kind == FR_CHAT_MISTRAL ? json_array_extend(calls, v)
                                                                  : json_array_append(calls, v);
        json_decref(v);
        if (bad) {
            json_decref(calls);
            return FR_ENOMEM;
        }
    }
    size_t nc = json_array_size(calls);
    const char *name;
    json_t *args;
    for (size_t i = 0; good && i < nc; i++) good = call_ok(p, json_array_get(calls, i), &name, &args);
    int rc = 0;
    if (good && nc) {
        for (size_t i = 0; !rc && i < nc; i++) {
            call_ok(p, json_array_get(calls, i), &name, &args);
            rc = emit_call(p, name, args, deltas);
        }
        *ok = true;
    }
    json_decref(calls);
    return rc;
}

/* The length of the longest suffix of s[0..n) that is a proper prefix of
 * tag: text that may still become the tag. */
static size_t partial_tag(const char *s, size_t n, const char *tag) {
    size_t t = strlen(tag);
    for (size_t k = t - 1 < n ? t - 1 : n; k > 0; k--)
        if (!memcmp(s + n - k, tag, k)) return k;
    return 0;
}

/* The bytes at the end of s[0..n) that begin a UTF-8 character not yet
 * whole: held back, so that a character split between two pieces is sent
 * whole (its JSON string would otherwise get U+FFFDs). */
static size_t partial_utf8(const char *s, size_t n) {
    for (size_t k = 1; k <= 4 && k <= n; k++) {
        unsigned char c = (unsigned char)s[n - k];
        if ((c & 0xC0) == 0x80) continue;   /* a continuation byte: look further back */
        size_t need = c >= 0xF0 && c <= 0xF7 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return c >= 0xC0 && c <= 0xF7 && k < need ? k : 0;
    }
    return 0;
}

static void consume(fr_tool_parser *p, size_t k) {
    if (k == 0) return;     /* (an empty buffer may be NULL) */
    memmove(p->buf, p->buf + k, p->len - k);
    p->len -= k;
}

/* ---- live reading (tool_choice required or a named function) ----
 *
 * The grammar lets the model write nothing but calls, so a call can go
 * out as it is written: its head ({"name": "f", "arguments": ) gives the
 * first delta, the arguments follow as they come, without the whitespace
 * between JSON tokens, and what is between calls (the family's tags and
 * separators, none of which holds a '{') is skipped.  A call cut short
 * (max_tokens) is sent as far as it went, as OpenAI does. */

/* Feed s[0..n) to the value scanner; kept bytes go to out (may be NULL).
 * Returns how many bytes were read; *done when the value ended there. */
static size_t jscan_feed(jscan *j, const char *s, size_t n, char *out, size_t *n_out, bool *done) {
    *done = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!j->started) {
            if (is_ws(c)) continue;
            j->started = true;
            if (c == '{' || c == '[') j->depth = 1;
            else if (c == '"') j->in_str = true;
            else j->scalar = true;
            if (out) out[(*n_out)++] = c;
            continue;
        }
        if (j->in_str) {
            if (out) out[(*n_out)++] = c;
            if (j->esc) j->esc = false;
            else if (c == '\\') j->esc = true;
            else if (c == '"') {
                j->in_str = false;
                if (j->depth == 0) {
                    *done = true;
                    return i + 1;
                }
            }
            continue;
        }
        if (j->scalar) {
            if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '.' || c == '+' || c == '-' ||
                c == 'E') {
                if (out) out[(*n_out)++] = c;
                continue;
            }
            *done = true;
            return i;
        }
        if (is_ws(c)) continue;
        if (out) out[(*n_out)++] = c;
        if (c == '"') j->in_str = true;
        else if (c == '{' || c == '[') j->depth++;
        else if ((c == '}' || c == ']') && --j->depth == 0) {
            *done = true;
            return i + 1;
        }
    }
    return n;
}

/* Does s[0..n) begin with lit?  1 yes (*at moves past it), 0 cannot
 * tell yet, -1 no. */
static int lit_at(const char *s, size_t n, size_t *at, const char *lit) {
    size_t l = strlen(lit), k = n - *at < l ? n - *at : l;
    if (memcmp(s + *at, lit, k)) return -1;
    if (k < l) return 0;
    *at += l;
    return 1;
}

/* A call's head {"name": "NAME", "arguments"|"parameters": at the start of
 * s: 1 (its length in *len, the name in *name, *name_len), 0 (not whole
 * yet), -1 (not a call's head). */
static int match_head(const char *s, size_t n, size_t *len, const char **name, size_t *name_len) {
    size_t at = 0;
    int r;
#define WS() while (at < n && is_ws(s[at])) at++
#define LIT(x) if ((r = lit_at(s, n, &at, x)) <= 0) return r
    LIT("{");
    WS();
    LIT("\"name\"");
    WS();
    LIT(":");
    WS();
    LIT("\"");
    *name = s + at;
    while (at < n && s[at] != '"') {
        if (s[at] == '\\' || (size_t)(s + at - *name) >= NAME_MAX_LEN) return -1;
        at++;
    }
    if (at == n) return 0;
    *name_len = (size_t)(s + at - *name);
    at++;
    WS();
    LIT(",");
    WS();
    LIT("\"");
    if (at == n) return 0;
    LIT(s[at] == 'p' ? "parameters\"" : "arguments\"");
    WS();
    LIT(":");
#undef WS
#undef LIT
    *len = at;
    return 1;
}

/* The index of an allowed function named name[0..n), or -1. */
static int allowed_fn(const fr_tool_parser *p, const char *name, size_t n) {
    for (size_t i = 0; i < p->t->n; i++)
        if (strlen(p->t->names[i]) == n && !memcmp(p->t->names[i], name, n))
            return p->t->choice != FR_TOOLS_NAMED || i == p->t->named ? (int)i : -1;
    return -1;
}

static int live_push(fr_tool_parser *p, bool end, json_t *deltas) {
    for (;;) {
        if (p->live_state == L_SEEK) {
            char *o = p->len ? memchr(p->buf, '{', p->len) : NULL;
            if (!o) {
                p->len = 0;
                return 0;
            }
            consume(p, (size_t)(o - p->buf));
            p->live_state = L_HEAD;
            continue;
        }
        if (p->live_state == L_HEAD) {
            size_t hl = 0, nl = 0;
            const char *name = NULL;
            int r = match_head(p->buf, p->len, &hl, &name, &nl);
            if (r == 0) {
                if (end) p->len = 0;
                return 0;
            }
            memset(&p->js, 0, sizeof p->js);
            if (r < 0) {
                p->live_state = L_SKIP_OBJ;
                continue;
            }
            int fn = allowed_fn(p, name, nl);
            bool take = fn >= 0 && (p->t->parallel || p->n_calls == 0);
            if (take) {
                char id[32];
                call_id(id);
                json_t *d = json_pack("{s:[{s:i, s:s, s:s, s:{s:s, s:s}}]}", "tool_calls", "index", p->n_calls,
                                      "id", id, "type", "function", "function", "name", p->t->names[fn],
                                      "arguments", "");
                if (!d || json_array_append_new(deltas, d)) return FR_ENOMEM;
                p->n_calls++;
            }
            consume(p, hl);
            p->live_state = take ? L_ARGS : L_SKIP_ARGS;
            continue;
        }
        /* a value: the arguments (sent or not), or an object skipped whole */
        bool send = p->live_state == L_ARGS, done;
        char *out = send ? fr_malloc(p->n_pend + p->len + 1) : NULL;
        if (send && !out) return FR_ENOMEM;
        size_t n_out = p->n_pend;
        if (send) memcpy(out, p->pend, p->n_pend);
        p->n_pend = 0;
        size_t used = jscan_feed(&p->js, p->buf, p->len, out, &n_out, &done);
        /* a character cut at the end waits to be whole (its bytes go
         * before the next piece's) */
        size_t hold = send && !done && !end ? partial_utf8(out, n_out) : 0;
        if (hold) {
            memcpy(p->pend, out + n_out - hold, hold);
            p->n_pend = hold;
        }
        if (send && n_out > hold) {
            json_t *a = fr__json_text(out, n_out - hold);
            json_t *d = a ? json_pack("{s:[{s:i, s:{s:o}}]}", "tool_calls", "index", p->n_calls - 1, "function",
                                      "arguments", a) : NULL;
            if (!d || json_array_append_new(deltas, d)) {
                fr_free(out);
                return FR_ENOMEM;
            }
        }
        fr_free(out);
        consume(p, used);
        if (done) {
            p->live_state = L_SEEK;
            continue;
        }
        if (end) p->len = 0;
        return 0;
    }
}

int fr__tool_parser_push(fr_tool_parser *p, const char *text, size_t len, bool end, json_t *deltas) {
    if (len) {
        if (!grow(&p->buf, &p->cap, p->len + len + 1)) return FR_ENOMEM;
        memcpy(p->buf + p->len, text, len);
        p->len += len;
    }
    if (p->live) return live_push(p, end, deltas);
    int rc = 0;
    for (;;) {
        if (p->mode == MODE_START) {
            /* llama3, mistral: the answer is a call list if it starts as one */
            size_t i = 0;
            while (i < p->len && is_ws(p->buf[i])) i++;
            if (i == p->len && !end) return 0;
            const char *tag = p->kind == FR_CHAT_LLAMA3 ? PYTHON_TAG : MISTRAL_TAG;
            char open = p->kind == FR_CHAT_LLAMA3 ? '{' : '[';
            size_t rest = p->len - i, tl = strlen(tag);
            if (!end && rest < tl && (rest == 0 || !memcmp(p->buf + i, tag, rest))) return 0;
            bool call_like = rest && (p->buf[i] == open || (rest >= tl && !memcmp(p->buf + i, tag, tl)));
            p->mode = call_like ? MODE_WHOLE : MODE_TEXT;
            if (!call_like) p->hermes = false;      /* plain text from here on */
            continue;
        }
        if (p->mode == MODE_WHOLE) {
            if (!end) return 0;
            bool ok;
            if ((rc = parse_calls(p, p->buf, p->len, deltas, &ok))) return rc;
            if (!ok && (rc = emit_content(p, p->buf, p->len, deltas))) return rc;
            p->len = 0;
            return 0;
        }
        if (p->mode == MODE_TEXT) {
            char *at = p->hermes && p->len ? memmem(p->buf, p->len, TAG_OPEN, sizeof TAG_OPEN - 1) : NULL;
            if (at) {
                if ((rc = emit_content(p, p->buf, (size_t)(at - p->buf), deltas))) return rc;
                consume(p, (size_t)(at - p->buf) + sizeof TAG_OPEN - 1);
                p->mode = MODE_CALL;
                continue;
            }
            size_t hold = end ? 0 : p->hermes ? partial_tag(p->buf, p->len, TAG_OPEN) : 0;
            size_t cut = end ? 0 : partial_utf8(p->buf, p->len - hold);
            hold += cut;
            if ((rc = emit_content(p, p->buf, p->len - hold, deltas))) return rc;
            consume(p, p->len - hold);
            return 0;
        }
        /* MODE_CALL: the body up to the closing tag (or the end) */
        char *close = p->len ? memmem(p->buf, p->len, TAG_CLOSE, sizeof TAG_CLOSE - 1) : NULL;
        if (!close && !end) return 0;
        size_t body = close ? (size_t)(close - p->buf) : p->len;
        bool ok;
        if ((rc = parse_calls(p, p->buf, body, deltas, &ok))) return rc;
        if (!ok) {  /* not a call: the text as it was */
            size_t whole = close ? body + sizeof TAG_CLOSE - 1 : body;
            char *raw = fr_malloc(sizeof TAG_OPEN - 1 + whole);
            if (!raw) return FR_ENOMEM;
            memcpy(raw, TAG_OPEN, sizeof TAG_OPEN - 1);
            memcpy(raw + sizeof TAG_OPEN - 1, p->buf, whole);
            rc = emit_content(p, raw, sizeof TAG_OPEN - 1 + whole, deltas);
            fr_free(raw);
            if (rc) return rc;
        }
        consume(p, close ? body + sizeof TAG_CLOSE - 1 : body);
        p->mode = MODE_TEXT;
    }
}

int fr__tools_message_json(const fr_tools *t, int kind, const char *text, size_t len, json_t *message,
                           int *n_calls) {
    fr_tool_parser *p;
    int rc = fr__tool_parser_create(t, kind, &p);
    if (rc) return rc;
    json_t *deltas = json_array(), *calls = json_array();
    char *content = NULL;
    size_t clen = 0;
    if (!deltas || !calls) rc = FR_ENOMEM;
    if (!rc) rc = fr__tool_parser_push(p, text, len, true, deltas);
    for (size_t i = 0; !rc && i < json_array_size(deltas); i++) {
        json_t *d = json_array_get(deltas, i);
        json_t *c = json_object_get(d, "content");
        json_t *tc = json_array_get(json_object_get(d, "tool_calls"), 0);
        if (c) {
            const char *s = json_string_value(c);
            size_t n = json_string_length(c);
            char *g = fr_realloc(content, clen + n + 1);
            if (!g) {
                rc = FR_ENOMEM;
                break;
            }
            memcpy(g + clen, s, n);
            clen += n;
            g[clen] = 0;
            content = g;
        } else if (json_object_get(tc, "id")) {
            json_object_del(tc, "index");
            if (json_array_append(calls, tc)) rc = FR_ENOMEM;
        } else if (tc) {    /* more of the last call's arguments */
            json_t *f = json_object_get(json_array_get(calls, json_array_size(calls) - 1), "function");
            json_t *had = json_object_get(f, "arguments");
            json_t *more = json_object_get(json_object_get(tc, "function"), "arguments");
            size_t l1 = json_string_length(had), l2 = json_string_length(more);
            char *cat = fr_malloc(l1 + l2 + 1);
            if (!cat) {
                rc = FR_ENOMEM;
                break;
            }
            memcpy(cat, json_string_value(had), l1);
            memcpy(cat + l1, json_string_value(more), l2);
            json_object_set_new(f, "arguments", json_stringn(cat, l1 + l2));
            fr_free(cat);
        }
    }
    if (!rc) {
        *n_calls = (int)json_array_size(calls);
        /* null beside calls, as OpenAI's; a string otherwise */
        json_object_set_new(message, "content", content ? json_stringn(content, clen)
                                                : *n_calls ? json_null() : json_string(""));
        if (*n_calls) json_object_set(message, "tool_calls", calls);
    }
    fr_free(content);
    json_decref(deltas);
    json_decref(calls);
    fr__tool_parser_destroy(p);
    return rc;
}
