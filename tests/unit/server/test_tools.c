/*
 * test_tools.c — reading tool calls out of generated text (tools.c): per
 * family (Hermes' <tool_call> blocks for chatml and the llama-2 family,
 * Llama 3.1's bare JSON, Mistral's [TOOL_CALLS] list), malformed and
 * unknown calls kept as content, parallel_tool_calls and a named
 * tool_choice, the shape of the streamed deltas, and that every split of
 * a text into streamed pieces folds into the non-streamed message; and
 * the grammar tool_choice gives each family.
 */
#include <string.h>

#include "harness.h"

#include "base/mem.h"
#include "server/server_int.h"

static const char *names[] = {"get_weather", "get_time"};
static fr_tools tools = {.n = 2, .names = names, .choice = FR_TOOLS_AUTO, .parallel = true};

/* The message of a whole text: content (NULL for null) and calls. */
static json_t *message(int kind, const char *text) {
    json_t *m = json_object();
    int n = -1;
    CHECK_INT(fr__tools_message_json(&tools, kind, text, strlen(text), m, &n), 0);
    CHECK_INT(n, (int)json_array_size(json_object_get(m, "tool_calls")));
    return m;
}

static const char *content(json_t *m) { return json_string_value(json_object_get(m, "content")); }
static size_t n_calls(json_t *m) { return json_array_size(json_object_get(m, "tool_calls")); }
static const char *call_field(json_t *m, size_t i, const char *key) {
    json_t *c = json_array_get(json_object_get(m, "tool_calls"), i);
    if (!strcmp(key, "id") || !strcmp(key, "type")) return json_string_value(json_object_get(c, key));
    return json_string_value(json_object_get(json_object_get(c, "function"), key));
}

/* The stream of text in pieces of `step` bytes, folded as a client folds
 * deltas; checks each delta's shape on the way. */
static json_t *streamed(int kind, const char *text, size_t step) {
    fr_tool_parser *p = NULL;
    CHECK_INT(fr__tool_parser_create(&tools, kind, &p), 0);
    json_t *deltas = json_array();
    size_t n = strlen(text);
    for (size_t at = 0; at <= n; at += step) {
        size_t k = n - at < step ? n - at : step;
        CHECK_INT(fr__tool_parser_push(p, text + at, k, at + k >= n, deltas), 0);
        if (at + k >= n) break;
    }
    json_t *m = json_object(), *calls = json_array();
    char buf[4096] = "";
    bool any = false;
    for (size_t i = 0; i < json_array_size(deltas); i++) {
        json_t *d = json_array_get(deltas, i);
        json_t *c = json_object_get(d, "content");
        json_t *tc = json_array_get(json_object_get(d, "tool_calls"), 0);
        CHECK(json_object_size(d) == 1 && (c || tc));
        if (c) {
            strncat(buf, json_string_value(c), sizeof buf - strlen(buf) - 1);
            any = true;
            continue;
        }
        json_int_t index = json_integer_value(json_object_get(tc, "index"));
        json_t *fn = json_object_get(tc, "function");
        if (json_object_get(tc, "id")) {    /* a new call: index, id, type, name, empty arguments */
            CHECK_INT(index, (json_int_t)json_array_size(calls));
            CHECK_STR(json_string_value(json_object_get(tc, "type")), "function");
            CHECK_STR(json_string_value(json_object_get(fn, "arguments")), "");
            CHECK(json_string_value(json_object_get(fn, "name")) != NULL);
            json_array_append_new(calls, json_pack("{s:O, s:s, s:{s:O, s:s}}", "id", json_object_get(tc, "id"),
                                                   "type", "function", "function", "name",
                                                   json_object_get(fn, "name"), "arguments", ""));
        } else {                            /* its arguments */
            CHECK_INT(index, (json_int_t)json_array_size(calls) - 1);
            CHECK(json_object_size(tc) == 2 && json_object_size(fn) == 1);
            json_t *f = json_object_get(json_array_get(calls, (size_t)index), "function");
            char *a = fr_malloc(4096);
            snprintf(a, 4096, "%s%s", json_string_value(json_object_get(f, "arguments")),
                     json_string_value(json_object_get(fn, "arguments")));
            json_object_set_new(f, "arguments", json_string(a));
            fr_free(a);
        }
    }
    CHECK_INT(fr__tool_parser_calls(p), (int)json_array_size(calls));
    json_object_set_new(m, "content", any ? json_string(buf) : json_null());
    if (json_array_size(calls)) json_object_set(m, "tool_calls", calls);
    json_decref(calls);
    json_decref(deltas);
    fr__tool_parser_destroy(p);
    return m;
}

/* Ids are random: equal messages but for them. */
static bool same_but_ids(json_t *a, json_t *b) {
    json_t *x = json_deep_copy(a), *y = json_deep_copy(b);
    for (size_t i = 0; i < n_calls(x); i++) json_object_del(json_array_get(json_object_get(x, "tool_calls"), i), "id");
    for (size_t i = 0; i < n_calls(y); i++) json_object_del(json_array_get(json_object_get(y, "tool_calls"), i), "id");
    bool eq = json_equal(x, y);
    json_decref(x);
    json_decref(y);
    return eq;
}

/* Whole and every streamed split agree. */
static void check_stream(int kind, const char *text) {
    json_t *whole = message(kind, text);
    for (size_t step = 1; step <= 13; step++) {
        json_t *s = streamed(kind, text, step);
        if (!same_but_ids(whole, s)) {
            char *a = json_dumps(whole, 0), *b = json_dumps(s, 0);
            CHECK_MSG(false, "%s, step %zu: streamed %s, whole %s", fr_chat_name(kind), step, b, a);
            fr_free(a);
            fr_free(b);
        }
        json_decref(s);
    }
    json_decref(whole);
}

#define CALL_PARIS "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}"
#define CALL_TIME "{\"name\": \"get_time\", \"arguments\": {}}"

static void test_hermes(void) {
    json_t *m = message(FR_CHAT_CHATML, "<tool_call>\n" CALL_PARIS "\n</tool_call>");
    CHECK(json_is_null(json_object_get(m, "content")));
    CHECK_INT(n_calls(m), 1);
    CHECK_STR(call_field(m, 0, "name"), "get_weather");
    CHECK_STR(call_field(m, 0, "arguments"), "{\"city\":\"Paris\"}");
    CHECK_STR(call_field(m, 0, "type"), "function");
    const char *id = call_field(m, 0, "id");
    CHECK(id && strlen(id) == 29 && !strncmp(id, "call_", 5));
    json_decref(m);

    /* text around calls is content, trimmed; two calls, two ids */
    m = message(FR_CHAT_CHATML, "  Let me check.\n<tool_call>\n" CALL_PARIS "\n</tool_call>\n<tool_call>\n"
                                CALL_TIME "\n</tool_call>\n");
    CHECK_STR(content(m), "Let me check.");
    CHECK_INT(n_calls(m), 2);
    CHECK_STR(call_field(m, 1, "name"), "get_time");
    CHECK_STR(call_field(m, 1, "arguments"), "{}");
    CHECK(strcmp(call_field(m, 0, "id"), call_field(m, 1, "id")) != 0);
    json_decref(m);

    /* malformed JSON, an unknown function, arguments that are not an
     * object: the text stays content, as it was */
    const char *bad[] = {
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": }\n</tool_call>",
        "<tool_call>\n{\"name\": \"launch\", \"arguments\": {}}\n</tool_call>",
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": \"Paris\"}\n</tool_call>",
        "<tool_call>\n[1, 2]\n</tool_call>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        m = message(FR_CHAT_CHATML, bad[i]);
        CHECK_INT(n_calls(m), 0);
        CHECK_STR(content(m), bad[i]);
        json_decref(m);
    }
    /* an unclosed call that parses is a call (a stop string or EOS ended
     * it); text that only begins like the tag is text */
    m = message(FR_CHAT_CHATML, "<tool_call>\n" CALL_PARIS);
    CHECK_INT(n_calls(m), 1);
    json_decref(m);
    m = message(FR_CHAT_CHATML, "a <tool_ca");
    CHECK_STR(content(m), "a <tool_ca");
    json_decref(m);
    m = message(FR_CHAT_CHATML, "  \n ");
    CHECK(json_is_null(json_object_get(m, "content")) && n_calls(m) == 0);
    json_decref(m);
    /* the llama-2 family reads Hermes' syntax too */
    m = message(FR_CHAT_LLAMA2_SYS, "<tool_call>\n" CALL_TIME "\n</tool_call>");
    CHECK_INT(n_calls(m), 1);
    json_decref(m);

    check_stream(FR_CHAT_CHATML, "<tool_call>\n" CALL_PARIS "\n</tool_call>");
    check_stream(FR_CHAT_CHATML, "Let me check. <tool_call>\n" CALL_PARIS "\n</tool_call> and <tool_call>\n"
                                 CALL_TIME "\n</tool_call>  then <tool_c");
    check_stream(FR_CHAT_CHATML, "<tool_call>{bad}</tool_call>\n\n<tool_call>\n" CALL_TIME "\n</tool_call>");
    check_stream(FR_CHAT_CHATML, "plain words <b> </tool_call> \xF0\x9F\x98\x80 end ");
}

static void test_llama3(void) {
    json_t *m = message(FR_CHAT_LLAMA3, " {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}");
    CHECK_INT(n_calls(m), 1);
    CHECK_STR(call_field(m, 0, "arguments"), "{\"city\":\"Paris\"}");
    CHECK(json_is_null(json_object_get(m, "content")));
    json_decref(m);
    m = message(FR_CHAT_LLAMA3, "<|python_tag|>" CALL_TIME);
    CHECK_INT(n_calls(m), 1);
    json_decref(m);
    m = message(FR_CHAT_LLAMA3, "{\"name\": \"get_weather\", \"parameters\": {}}; " CALL_TIME);
    CHECK_INT(n_calls(m), 2);
    json_decref(m);
    m = message(FR_CHAT_LLAMA3, "{not json at all");
    CHECK_INT(n_calls(m), 0);
    CHECK_STR(content(m), "{not json at all");
    json_decref(m);
    m = message(FR_CHAT_LLAMA3, "Sunny. " CALL_TIME);   /* a call only as the whole answer */
    CHECK_INT(n_calls(m), 0);
    json_decref(m);
    check_stream(FR_CHAT_LLAMA3, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}");
    check_stream(FR_CHAT_LLAMA3, "Hello there, {\"name\": 1}");
    check_stream(FR_CHAT_LLAMA3, "  <|python_ta");
}

static void test_mistral(void) {
    json_t *m = message(FR_CHAT_MISTRAL, "[TOOL_CALLS] [" CALL_PARIS ", " CALL_TIME "]");
    CHECK_INT(n_calls(m), 2);
    CHECK_STR(call_field(m, 1, "name"), "get_time");
    json_decref(m);
    m = message(FR_CHAT_MISTRAL, "[" CALL_PARIS "]");   /* the marker is a control token: often unprinted */
    CHECK_INT(n_calls(m), 1);
    json_decref(m);
    m = message(FR_CHAT_MISTRAL, "[1] is a citation");
    CHECK_INT(n_calls(m), 0);
    CHECK_STR(content(m), "[1] is a citation");
    json_decref(m);
    check_stream(FR_CHAT_MISTRAL, "[TOOL_CALLS] [" CALL_PARIS ", " CALL_TIME "]");
    check_stream(FR_CHAT_MISTRAL, "No tools needed.");
}

static void test_choice(void) {
    /* without parallel_tool_calls: the first call only */
    tools.parallel = false;
    json_t *m = message(FR_CHAT_CHATML, "<tool_call>\n" CALL_PARIS "\n</tool_call>\n<tool_call>\n" CALL_TIME
                                        "\n</tool_call>");
    CHECK_INT(n_calls(m), 1);
    json_decref(m);
    check_stream(FR_CHAT_MISTRAL, "[" CALL_PARIS ", " CALL_TIME "]");
    tools.parallel = true;
    /* a named function: a call to another is not one */
    tools.choice = FR_TOOLS_NAMED;
    tools.named = 1;
    m = message(FR_CHAT_CHATML, "<tool_call>\n" CALL_PARIS "\n</tool_call>");
    CHECK_INT(n_calls(m), 0);
    json_decref(m);
    tools.choice = FR_TOOLS_AUTO;
}

/* The grammar of required / a named function, per family. */
static void test_grammar(void) {
    fr_gen_req q = {.tools = &tools};
    fr_req rq;
    memset(&rq, 0, sizeof rq);
    fr_arena_init(&rq.arena, 4096);
    const char *g = NULL;
    CHECK_INT(fr__tools_grammar(&rq, &q, FR_CHAT_CHATML, &g), 0);
    CHECK(g == NULL);   /* auto: nothing enforced */
    tools.choice = FR_TOOLS_REQUIRED;
    CHECK_INT(fr__tools_grammar(&rq, &q, FR_CHAT_CHATML, &g), 0);
    CHECK(g && strstr(g, "root ::= tool-call ( \"\\n\" tool-call )*\n"));
    CHECK(g && strstr(g, "\"<tool_call>\\n\" \"{\\\"name\\\": \\\"\" tool-fn \"}\" \"\\n</tool_call>\""));
    CHECK(g && strstr(g, "tool-fn ::= \"get_weather\\\", \\\"arguments\\\": \" tool-obj | \"get_time\\\", "));
    tools.choice = FR_TOOLS_NAMED;
    tools.named = 1;
    tools.parallel = false;
    CHECK_INT(fr__tools_grammar(&rq, &q, FR_CHAT_LLAMA3, &g), 0);
    CHECK(g && strstr(g, "root ::= tool-call\n"));
    CHECK(g && strstr(g, "tool-fn ::= \"get_time\\\", \\\"parameters\\\": \" tool-obj\n"));
    CHECK(g && !strstr(g, "get_weather"));
    tools.parallel = true;
    CHECK_INT(fr__tools_grammar(&rq, &q, FR_CHAT_MISTRAL, &g), 0);
    CHECK(g && strstr(g, "root ::= \"[\" tool-call ( \", \" tool-call )* \"]\"\n"));
    tools.choice = FR_TOOLS_AUTO;
    fr_arena_deinit(&rq.arena);
}

int main(void) {
    json_set_alloc_funcs(fr_malloc, fr_free);  /* as the server sets it (http.c) */
    test_hermes();
    test_llama3();
    test_mistral();
    test_choice();
    test_grammar();
    CHECK_INT(fr_mem_in_use(), 0);
    return harness_done();
}
