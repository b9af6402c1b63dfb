/*
 * chat.h — chat templates: chatml, llama-2 and llama-3, recognised from the
 * model's tokenizer.chat_template as llama.cpp's simple formatter does
 * (GGUF.md §6); chatml when the file has none.
 */
#ifndef FR_ENGINE_CHAT_H
#define FR_ENGINE_CHAT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct fr_chat_msg {
    const char *role;     /* "system", "user", "assistant" */
    const char *content;
} fr_chat_msg;

/* LLAMA2: no system support (system text goes in plainly);
 * LLAMA2_SYS: system in <<SYS>>; _BOS: later turns reopen with "<s>[INST] ";
 * _STRIP: contents are trimmed. */
enum fr_chat_kind { FR_CHAT_CHATML, FR_CHAT_LLAMA2, FR_CHAT_LLAMA2_SYS, FR_CHAT_LLAMA3,
                    FR_CHAT_LLAMA2_SYS_BOS, FR_CHAT_LLAMA2_SYS_STRIP };

/* Which template a Jinja source stands for (NULL → chatml); a bare name
 * ("chatml", "llama2", "llama2-sys", "llama2-sys-bos", "llama2-sys-strip",
 * "llama3") is accepted too.  Returns the kind, or FR_EUNSUPP (detail
 * quotes the start of the template) when it is recognised as none of them. */
int fr_chat_detect(const char *tmpl);

/* The kind's name as fr_chat_detect accepts it; "?" for a bad kind. */
const char *fr_chat_name(int kind);

/* Format messages; *out is fr_malloc'd and NUL-terminated.  The result is
 * meant for fr_tokenize with add_special and parse_special true. */
int fr_chat_apply(int kind, const fr_chat_msg *msgs, size_t n, bool add_generation_prompt,
                  char **out);

#endif
