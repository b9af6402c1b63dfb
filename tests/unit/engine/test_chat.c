/*
 * test_chat.c — chat template detection and formatting (GGUF.md §6).
 * The expected strings are written out by hand from llama.cpp's simple
 * formatter rules, and with tools from the families' own templates
 * (Qwen2.5's, Llama 3.1's, Mistral-7B-Instruct-v0.3's).
 */
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/chat.h"
#include "harness.h"

static const fr_chat_msg conv[] = {
    {.role = "system", .content = "You are helpful."},
    {.role = "user", .content = "Hello"},
    {.role = "assistant", .content = "Hi there"},
    {.role = "user", .content = "How are you?"},
};
/* The same with whitespace around contents, for the trimming templates. */
static const fr_chat_msg conv_ws[] = {
    {.role = "system", .content = "  You are helpful.\n"},
    {.role = "user", .content = "\tHello "},
    {.role = "assistant", .content = " Hi there  "},
    {.role = "user", .content = "How are you?\n\n"},
};

static void check_apply(int kind, const fr_chat_msg *m, size_t n, bool gen, const char *want) {
    char *out = NULL;
    int rc = fr_chat_apply(kind, m, n, gen, &out);
    CHECK_INT(rc, 0);
    CHECK_STR(out, want);
    fr_free(out);
}

static void test_apply(void) {
    check_apply(FR_CHAT_CHATML, conv, 4, true,
                "<|im_start|>system\nYou are helpful.<|im_end|>\n"
                "<|im_start|>user\nHello<|im_end|>\n"
                "<|im_start|>assistant\nHi there<|im_end|>\n"
                "<|im_start|>user\nHow are you?<|im_end|>\n"
                "<|im_start|>assistant\n");
    check_apply(FR_CHAT_CHATML, conv, 2, false,
                "<|im_start|>system\nYou are helpful.<|im_end|>\n"
                "<|im_start|>user\nHello<|im_end|>\n");
    /* chatml keeps whitespace as it is */
    check_apply(FR_CHAT_CHATML, conv_ws + 1, 1, false,
                "<|im_start|>user\n\tHello <|im_end|>\n");

    const char *l3 = "<|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>"
                     "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
                     "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
                     "<|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|>"
                     "<|start_header_id|>assistant<|end_header_id|>\n\n";
    check_apply(FR_CHAT_LLAMA3, conv, 4, true, l3);
    check_apply(FR_CHAT_LLAMA3, conv_ws, 4, true, l3); /* llama3 trims */
    check_apply(FR_CHAT_LLAMA3, conv + 1, 1, false,
                "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>");

    /* llama2 without system support: the system text goes in plainly;
     * there is no generation prompt. */
    const char *l2 = "[INST] You are helpful.\nHello [/INST]Hi there</s>[INST] How are you? [/INST]";
    check_apply(FR_CHAT_LLAMA2, conv, 4, true, l2);
    check_apply(FR_CHAT_LLAMA2, conv, 4, false, l2);
    check_apply(FR_CHAT_LLAMA2_SYS, conv, 4, true,
                "[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\n"
                "Hello [/INST]Hi there</s>[INST] How are you? [/INST]");
    check_apply(FR_CHAT_LLAMA2_SYS_BOS, conv, 4, true,
                "[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\n"
                "Hello [/INST]Hi there</s><s>[INST] How are you? [/INST]");
    check_apply(FR_CHAT_LLAMA2_SYS_STRIP, conv_ws, 4, true,
                "[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\n"
                "Hello [/INST]Hi there</s>[INST] How are you? [/INST]");
    /* the non-strip variant keeps the whitespace */
    check_apply(FR_CHAT_LLAMA2_SYS, conv_ws + 1, 1, false, "[INST] \tHello  [/INST]");

    /* no messages */
    check_apply(FR_CHAT_CHATML, conv, 0, true, "<|im_start|>assistant\n");
    check_apply(FR_CHAT_CHATML, conv, 0, false, "");

    char *out = (char *)1;
    CHECK_INT(fr_chat_apply(42, conv, 4, true, &out), FR_EINVAL);
    CHECK(out == NULL);
    fr_chat_msg bad = {.role = "user", .content = NULL};
    CHECK_INT(fr_chat_apply(FR_CHAT_CHATML, &bad, 1, true, &out), FR_EINVAL);
}


/* ---- tools ---- */

static const char DEF[] = "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\"}}";
static const fr_chat_call calls2[] = {
    {.id = "call_1", .name = "get_weather", .arguments = "{\"city\": \"Paris\"}"},
    {.id = "call_2", .name = "get_weather", .arguments = "{\"city\": \"Lyon\"}"},
};
static const fr_chat_msg conv_tools[] = {
    {.role = "system", .content = "Be brief."},
    {.role = "user", .content = "Weather in Paris?"},
    {.role = "assistant", .content = NULL, .calls = calls2, .n_calls = 2},
    {.role = "tool", .content = "{\"temp\": 21}", .tool_call_id = "call_1"},
    {.role = "tool", .content = "rain", .tool_call_id = "call_2"},
};

#define HERMES_TOOLS                                                                              \
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"            \
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"       \
    "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\"}}\n</tools>\n\n"            \
    "For each function call, return a json object with function name and arguments within "       \
    "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": " \
    "<args-json-object>}\n</tool_call>"
#define HERMES_CALLS                                                                              \
    "\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>" \
    "\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Lyon\"}}\n</tool_call>"

static void check_tools(int kind, const fr_chat_msg *m, size_t n, size_t n_tools, const char *want) {
    const char *defs[] = {DEF};
    char *out = NULL;
    CHECK_INT(fr_chat_apply_tools(kind, m, n, defs, n_tools, true, &out, NULL, NULL), 0);
    CHECK_MSG(out && !strcmp(out, want), "%s:\n got: %s\nwant: %s", fr_chat_name(kind), out, want);
    fr_free(out);
}

static void test_tools(void) {
    /* Qwen2.5 / Hermes: the tools in the system turn, calls as
     * <tool_call> blocks, consecutive results in one user turn */
    check_tools(FR_CHAT_CHATML, conv_tools, 5, 1,
                "<|im_start|>system\nBe brief.\n\n" HERMES_TOOLS "<|im_end|>\n"
                "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
                "<|im_start|>assistant" HERMES_CALLS "<|im_end|>\n"
                "<|im_start|>user\n<tool_response>\n{\"temp\": 21}\n</tool_response>\n<tool_response>\n"
                "rain\n</tool_response><|im_end|>\n"
                "<|im_start|>assistant\n");
    /* without a system message the tools make one; without tools the
     * history is rendered the same way */
    check_tools(FR_CHAT_CHATML, conv_tools + 1, 1, 1,
                "<|im_start|>system\n" HERMES_TOOLS "<|im_end|>\n"
                "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n");
    check_tools(FR_CHAT_CHATML, conv_tools + 2, 2, 0,
                "<|im_start|>assistant" HERMES_CALLS "<|im_end|>\n"
                "<|im_start|>user\n<tool_response>\n{\"temp\": 21}\n</tool_response><|im_end|>\n"
                "<|im_start|>assistant\n");
    /* an assistant's text before its calls */
    fr_chat_msg said = {.role = "assistant", .content = "Let me look.", .calls = calls2, .n_calls = 1};
    check_tools(FR_CHAT_CHATML, &said, 1, 0,
                "<|im_start|>assistant\nLet me look.\n<tool_call>\n{\"name\": \"get_weather\", "
                "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n<|im_start|>assistant\n");

    /* Llama 3.1 JSON tool calling */
    check_tools(FR_CHAT_LLAMA3, conv_tools, 5, 1,
                "<|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nCutting Knowledge "
                "Date: December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|>"
                "<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, please "
                "respond with a JSON for a function call with its proper arguments that best answers "
                "the given prompt.\n\nRespond in the format {\"name\": function name, \"parameters\": "
                "dictionary of argument name and its value}.Do not use variables.\n\n"
                "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\"}}\n\n"
                "Weather in Paris?<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"get_weather\", "
                "\"parameters\": {\"city\": \"Paris\"}}\n{\"name\": \"get_weather\", \"parameters\": "
                "{\"city\": \"Lyon\"}}<|eot_id|>"
                "<|start_header_id|>ipython<|end_header_id|>\n\n{\"temp\": 21}<|eot_id|>"
                "<|start_header_id|>ipython<|end_header_id|>\n\nrain<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n");

    /* Mistral v3: the tools and the system text at the last user turn */
    check_tools(FR_CHAT_MISTRAL, conv_tools, 5, 1,
                "[AVAILABLE_TOOLS] [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\"}}]"
                "[/AVAILABLE_TOOLS][INST] Be brief.\n\nWeather in Paris?[/INST]"
                "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": "
                "\"call_1\"}, {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Lyon\"}, \"id\": "
                "\"call_2\"}]</s>"
                "[TOOL_RESULTS] {\"content\": {\"temp\": 21}, \"call_id\": \"call_1\"}[/TOOL_RESULTS]"
                "[TOOL_RESULTS] {\"content\": rain, \"call_id\": \"call_2\"}[/TOOL_RESULTS]");
    check_apply(FR_CHAT_MISTRAL, conv, 4, true,
                "[INST] Hello[/INST] Hi there</s>[INST] You are helpful.\n\nHow are you?[/INST]");

    /* the llama-2 family borrows Hermes' text */
    check_tools(FR_CHAT_LLAMA2_SYS, conv_tools, 5, 1,
                "[INST] <<SYS>>\nBe brief.\n\n" HERMES_TOOLS "\n<</SYS>>\n\nWeather in Paris? [/INST]"
                HERMES_CALLS "</s>[INST] <tool_response>\n{\"temp\": 21}\n</tool_response>\n"
                "<tool_response>\nrain\n</tool_response> [/INST]");
    check_tools(FR_CHAT_LLAMA2, conv_tools + 1, 1, 1,
                "[INST] " HERMES_TOOLS "\nWeather in Paris? [/INST]");

    /* the caller's texts are message spans: definitions, names,
     * arguments, results, ids */
    const char *defs[] = {DEF};
    char *out = NULL;
    fr_span *sp = NULL;
    size_t ns = 0;
    CHECK_INT(fr_chat_apply_tools(FR_CHAT_MISTRAL, conv_tools, 5, defs, 1, true, &out, &sp, &ns), 0);
    const char *want[] = {DEF, "Be brief.", "Weather in Paris?", "get_weather", "{\"city\": \"Paris\"}",
                          "call_1", "get_weather", "{\"city\": \"Lyon\"}", "call_2", "{\"temp\": 21}",
                          "call_1", "rain", "call_2"};
    CHECK_INT(ns, sizeof want / sizeof *want);
    for (size_t i = 0; out && i < ns && i < sizeof want / sizeof *want; i++)
        CHECK_MSG(sp[i].len == strlen(want[i]) && !memcmp(out + sp[i].off, want[i], sp[i].len),
                  "span %zu is '%.*s', want '%s'", i, (int)sp[i].len, out + sp[i].off, want[i]);
    fr_free(out);
    fr_free(sp);

    /* a call without a name, a tool without a definition: refused */
    fr_chat_call nameless = {.arguments = "{}"};
    fr_chat_msg bad = {.role = "assistant", .calls = &nameless, .n_calls = 1};
    CHECK_INT(fr_chat_apply_tools(FR_CHAT_CHATML, &bad, 1, NULL, 0, true, &out, NULL, NULL), FR_EINVAL);
    const char *nodef[] = {NULL};
    CHECK_INT(fr_chat_apply_tools(FR_CHAT_CHATML, conv, 1, nodef, 1, true, &out, NULL, NULL), FR_EINVAL);
}

static void test_detect(void) {
    CHECK_INT(fr_chat_detect(NULL), FR_CHAT_CHATML);

    const char *qwen2 =
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
        "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    CHECK_INT(fr_chat_detect(qwen2), FR_CHAT_CHATML);

    const char *llama3 =
        "{% set loop_messages = messages %}{% for message in loop_messages %}"
        "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
        "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
        "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
        "{% endif %}";
    CHECK_INT(fr_chat_detect(llama3), FR_CHAT_LLAMA3);
    /* only one of the two header markers: not llama3 */
    CHECK_INT(fr_chat_detect("{{ '<|start_header_id|>' + role }}"), FR_EUNSUPP);

    /* Llama 2 chat's own template: <<SYS>> and bos_token + '[INST] ' */
    const char *llama2_bos =
        "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
        "{% set system_message = messages[0]['content'] %}{% else %}"
        "{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
        "{% for message in loop_messages %}"
        "{% if loop.index0 == 0 and system_message != false %}"
        "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
        "{% else %}{% set content = message['content'] %}{% endif %}"
        "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
        "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
        "{% endif %}{% endfor %}";
    CHECK_INT(fr_chat_detect(llama2_bos), FR_CHAT_LLAMA2_SYS_BOS);

    const char *llama2_sys =
        "{% for message in messages %}{% if message['role'] == 'system' %}"
        "{{ '<<SYS>>\\n' + message['content'] + '\\n<</SYS>>\\n\\n' }}"
        "{% elif message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
        "{% else %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}";
    CHECK_INT(fr_chat_detect(llama2_sys), FR_CHAT_LLAMA2_SYS);

    const char *llama2_strip =
        "{% for message in messages %}{% if message['role'] == 'system' %}"
        "{{ '<<SYS>>\\n' + message['content'].strip() + '\\n<</SYS>>\\n\\n' }}"
        "{% elif message['role'] == 'user' %}{{ '[INST] ' + message['content'].strip() + ' [/INST]' }}"
        "{% endif %}{% set content = message['content'] %}{{ content.strip() }}{% endfor %}";
    CHECK_INT(fr_chat_detect(llama2_strip), FR_CHAT_LLAMA2_SYS_STRIP);

    const char *mistral =
        "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
        "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}"
        "{{ message['content'] + eos_token}}{% endif %}{% endfor %}";
    CHECK_INT(fr_chat_detect(mistral), FR_CHAT_LLAMA2);
    /* Mistral's v3 template with tools */
    CHECK_INT(fr_chat_detect("{%- if tools is not none and (message == user_messages[-1]) %}"
                             "{{- \"[AVAILABLE_TOOLS] [\" }}{{- \"[INST] \" + message[\"content\"] + "
                             "\"[/INST]\" }}"), FR_CHAT_MISTRAL);
    CHECK_INT(fr_chat_detect("mistral"), FR_CHAT_MISTRAL);
    CHECK_STR(fr_chat_name(FR_CHAT_MISTRAL), "mistral");

    /* bare names */
    CHECK_INT(fr_chat_detect("chatml"), FR_CHAT_CHATML);
    CHECK_INT(fr_chat_detect("llama3"), FR_CHAT_LLAMA3);
    CHECK_INT(fr_chat_detect("llama2-sys"), FR_CHAT_LLAMA2_SYS);
    CHECK_STR(fr_chat_name(FR_CHAT_LLAMA3), "llama3");
    CHECK_STR(fr_chat_name(-1), "?");

    /* Gemma's template is none of them; the detail quotes 40 chars. */
    const char *gemma =
        "{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + role + '\\n' "
        "+ message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}";
    CHECK_INT(fr_chat_detect(gemma), FR_EUNSUPP);
    CHECK_MSG(strstr(fr_errdetail(), "\"{{ bos_token }}{% for message in message...\"") != NULL,
              "detail: %s", fr_errdetail());
    CHECK_MSG(strstr(fr_errdetail(), "<start_of_turn>") == NULL, "detail too long: %s",
              fr_errdetail());
    CHECK_INT(fr_chat_detect(""), FR_EUNSUPP);
}

/* A long conversation grows the buffer several times; every failing
 * allocation is FR_ENOMEM and leaks nothing. */
static void test_oom(void) {
    static char big[3000];
    memset(big, 'x', sizeof big - 1);
    fr_chat_msg msgs[4] = {{.role = "system", .content = big}, {.role = "user", .content = big}, {.role = "assistant", .content = big}, {.role = "user", .content = big}};
    char *out = NULL;
    int n;
    for (n = 0; n < 100; n++) {
        fr_mem_fail_after(n);
        int rc = fr_chat_apply(FR_CHAT_LLAMA3, msgs, 4, true, &out);
        fr_mem_fail_after(-1);
        if (rc == 0) break;
        CHECK_INT(rc, FR_ENOMEM);
        CHECK(out == NULL);
        CHECK_INT(fr_mem_in_use(), 0);
    }
    CHECK(n > 1 && out != NULL);
    /* per message: header 19 + role + 19 + content + eot 10; roles 6+4+9+4;
     * the generation prompt 19 + 9 + 19 */
    CHECK_INT(out ? strlen(out) : 0, 4 * (19 + 19 + 2999 + 10) + (6 + 4 + 9 + 4) + (19 + 9 + 19));
    fr_free(out);
}

int main(void) {
    test_oom();
    test_apply();
    test_detect();
    test_tools();
    CHECK_INT(fr_mem_in_use(), 0);
    return harness_done();
}
