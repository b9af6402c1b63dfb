/*
 * fuzz_toolcall.c — any bytes as a model's answer, read for tool calls
 * (tools.c's parser), whole and streamed.
 *
 * The first byte b picks the reading: b & 3 the family (chatml/Hermes,
 * llama3, mistral, llama2-sys with Hermes' text), b & 4 parallel_tool_calls
 * off, b & 8 a named tool_choice; b >> 4 the size of the streamed pieces
 * (1 to 16 bytes).  The rest is the text.  Checks: the non-streamed
 * message is {"content": string or null[, "tool_calls": [...]]} with every
 * call's id "call_..." (29 bytes), type "function", a name of the tools,
 * arguments that parse as a JSON object; without parallel_tool_calls at
 * most one call; the streamed deltas fold into the same content and calls
 * (ids aside), each delta one of the three shapes.  A failed check aborts.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "engine/chat.h"
#include "server/server_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MUST(c)                                                                        \
    do {                                                                               \
        if (!(c)) {                                                                    \
            fprintf(stderr, "fuzz_toolcall: %s:%d: %s\n", __FILE__, __LINE__, #c);     \
            abort();                                                                   \
        }                                                                              \
    } while (0)

static const char *names[] = {"get_weather", "get_time", "f"};
static const int kinds[] = {FR_CHAT_CHATML, FR_CHAT_LLAMA3, FR_CHAT_MISTRAL, FR_CHAT_LLAMA2_SYS};

static bool known(const char *n) {
    for (size_t i = 0; i < 3; i++)
        if (n && !strcmp(n, names[i])) return true;
    return false;
}

/* Fold deltas as a client does into {"content", "tool_calls"} without ids. */
static json_t *fold(json_t *deltas) {
    json_t *calls = json_array();
    size_t clen = 0;
    char *content = NULL;
    bool any = false;
    for (size_t i = 0; i < json_array_size(deltas); i++) {
        json_t *d = json_array_get(deltas, i);
        MUST(json_object_size(d) == 1);
        json_t *c = json_object_get(d, "content");
        json_t *tc = json_array_get(json_object_get(d, "tool_calls"), 0);
        if (c) {
            MUST(json_is_string(c));
            content = fr_realloc(content, clen + json_string_length(c) + 1);
            MUST(content);
            memcpy(content + clen, json_string_value(c), json_string_length(c));
            clen += json_string_length(c);
            any = true;
            continue;
        }
        MUST(tc);
        json_t *fn = json_object_get(tc, "function");
        size_t index = (size_t)json_integer_value(json_object_get(tc, "index"));
        if (json_object_get(tc, "id")) {
            MUST(index == json_array_size(calls));
            MUST(!strcmp(json_string_value(json_object_get(fn, "arguments")), ""));
            json_array_append_new(calls, json_pack("{s:s, s:{s:O, s:s}}", "type", "function", "function", "name",
                                                   json_object_get(fn, "name"), "arguments", ""));
        } else {
            MUST(index + 1 == json_array_size(calls));
            json_object_set(json_object_get(json_array_get(calls, index), "function"), "arguments",
                            json_object_get(fn, "arguments"));
        }
    }
    json_t *m = json_object();
    json_object_set_new(m, "content", any ? json_stringn(content, clen) : json_null());
    if (json_array_size(calls)) json_object_set(m, "tool_calls", calls);
    json_decref(calls);
    fr_free(content);
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool init;
    if (!init) {
        json_set_alloc_funcs(fr_malloc, fr_free);
        init = true;
    }
    if (size < 1) return 0;
    uint8_t b = data[0];
    const char *text = (const char *)data + 1;
    size_t n = size - 1, step = (size_t)(b >> 4) + 1;
    fr_tools t = {.n = 3, .names = names, .parallel = !(b & 4),
                  .choice = b & 8 ? FR_TOOLS_NAMED : FR_TOOLS_AUTO, .named = 2};
    int kind = kinds[b & 3];

    json_t *m = json_object();
    int n_calls = -1;
    MUST(fr__tools_message_json(&t, kind, text, n, m, &n_calls) == 0);
    json_t *c = json_object_get(m, "content"), *calls = json_object_get(m, "tool_calls");
    MUST(json_is_string(c) || json_is_null(c));
    MUST(n_calls == (int)json_array_size(calls) && (calls ? n_calls > 0 : n_calls == 0));
    MUST(t.parallel || n_calls <= 1);
    for (size_t i = 0; i < json_array_size(calls); i++) {
        json_t *call = json_array_get(calls, i), *fn = json_object_get(call, "function");
        const char *id = json_string_value(json_object_get(call, "id"));
        MUST(id && strlen(id) == 29 && !strncmp(id, "call_", 5));
        MUST(!strcmp(json_string_value(json_object_get(call, "type")), "function"));
        const char *name = json_string_value(json_object_get(fn, "name"));
        MUST(known(name) && (t.choice != FR_TOOLS_NAMED || !strcmp(name, names[2])));
        const char *a = json_string_value(json_object_get(fn, "arguments"));
        json_t *args = a ? json_loads(a, 0, NULL) : NULL;
        MUST(json_is_object(args));
        json_decref(args);
        json_object_del(call, "id");
    }

    fr_tool_parser *p = NULL;
    MUST(fr__tool_parser_create(&t, kind, &p) == 0);
    json_t *deltas = json_array();
    size_t at = 0;
    do {
        size_t k = n - at < step ? n - at : step;
        MUST(fr__tool_parser_push(p, text + at, k, at + k == n, deltas) == 0);
        at += k;
    } while (at < n);
    MUST(fr__tool_parser_calls(p) == n_calls);
    json_t *s = fold(deltas);
    MUST(json_equal(s, m));
    json_decref(s);
    json_decref(deltas);
    fr__tool_parser_destroy(p);
    json_decref(m);
    return 0;
}
