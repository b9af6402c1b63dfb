/*
 * test_chat.c — chat template detection and formatting (GGUF.md §6).
 * The expected strings are written out by hand from llama.cpp's simple
 * formatter rules.
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
    CHECK_INT(fr_mem_in_use(), 0);
    return harness_done();
}
