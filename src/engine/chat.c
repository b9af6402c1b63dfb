/*
 * chat.c — llama.cpp's simple chat formatter for chatml, llama-2 and
 * llama-3 (GGUF.md §6).
 *
 * Detection looks for marker substrings in the Jinja source, in this
 * order: "<|im_start|>" → chatml; "<|start_header_id|>" and
 * "<|end_header_id|>" → llama3; "[INST]" → llama2, with "<<SYS>>" → a
 * variant with system support ("bos_token + '[INST]" → BOS inside the
 * history, "content.strip()" → trimmed contents).  The output never holds
 * BOS text; the tokenizer adds it (add_special).
 *
 * Special tokens.  The formatter notes where each role and content went
 * in its output; fr_chat_tokenize parses special tokens in the template's
 * own text only, so a message holding "</s>", "<|im_end|>" or
 * "<|eot_id|>" reaches the model as those characters, not as the control
 * token (llama.cpp's parse_special split).  The raw text between two of
 * the template's special tokens is still tokenized as one piece
 * (fr_tokenize_mixed), so an ordinary conversation gives the same ids as
 * tokenizing the formatted text whole with parse_special.
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/chat.h"
#include "engine/vocab.h"

static const char *const kind_names[] = {
    [FR_CHAT_CHATML] = "chatml",
    [FR_CHAT_LLAMA2] = "llama2",
    [FR_CHAT_LLAMA2_SYS] = "llama2-sys",
    [FR_CHAT_LLAMA3] = "llama3",
    [FR_CHAT_LLAMA2_SYS_BOS] = "llama2-sys-bos",
    [FR_CHAT_LLAMA2_SYS_STRIP] = "llama2-sys-strip",
    [FR_CHAT_MISTRAL] = "mistral",
};
#define N_KINDS ((int)(sizeof kind_names / sizeof kind_names[0]))

const char *fr_chat_name(int kind) {
    return kind >= 0 && kind < N_KINDS ? kind_names[kind] : "?";
}

int fr_chat_detect(const char *tmpl) {
    if (!tmpl) return FR_CHAT_CHATML;
    for (int k = 0; k < N_KINDS; k++)
        if (!strcmp(tmpl, kind_names[k])) return k;
    if (strstr(tmpl, "<|im_start|>")) return FR_CHAT_CHATML;
    if (strstr(tmpl, "<|start_header_id|>") && strstr(tmpl, "<|end_header_id|>"))
        return FR_CHAT_LLAMA3;
    if (strstr(tmpl, "[AVAILABLE_TOOLS]") || strstr(tmpl, "[TOOL_CALLS]")) return FR_CHAT_MISTRAL;
    if (strstr(tmpl, "[INST]")) {
        if (!strstr(tmpl, "<<SYS>>")) return FR_CHAT_LLAMA2;
        if (strstr(tmpl, "bos_token + '[INST]")) return FR_CHAT_LLAMA2_SYS_BOS;
        if (strstr(tmpl, "content.strip()")) return FR_CHAT_LLAMA2_SYS_STRIP;
        return FR_CHAT_LLAMA2_SYS;
    }
    char head[41];
    size_t n = strlen(tmpl);
    if (n > 40) n = 40;
    memcpy(head, tmpl, n);
    head[n] = 0;
    for (size_t i = 0; i < n; i++)
        if (head[i] == '\n' || head[i] == '\r' || head[i] == '\t') head[i] = ' ';
    return fr_errf(FR_EUNSUPP, "chat template not recognised: \"%s%s\"", head,
                   strlen(tmpl) > 40 ? "..." : "");
}

/* ---- a growing string ---- */

typedef struct sbuf {
    char *s;
    size_t len, cap;
    bool oom;
    bool want_spans;        /* note the messages' ranges in spans */
    fr_span *spans;
    size_t n_spans, cap_spans;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    size_t need;
    if (!fr_add_ok(b->len, n + 1, &need)) { b->oom = true; return; }
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need) cap *= 2;
        char *p = fr_realloc(b->s, cap);
        if (!p) { b->oom = true; return; }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* Text from a message (a role or a content): put, and its range noted. */
static void sb_msg(sbuf *b, const char *s, size_t n) {
    size_t at = b->len;
    sb_put(b, s, n);
    if (b->oom || !b->want_spans || n == 0) return;
    if (b->n_spans == b->cap_spans) {
        size_t cap = b->cap_spans ? 2 * b->cap_spans : 16;
        fr_span *p = fr_realloc(b->spans, cap * sizeof *p);
        if (!p) { b->oom = true; return; }
        b->spans = p;
        b->cap_spans = cap;
    }
    b->spans[b->n_spans++] = (fr_span){at, n};
}

static void sb_msg_str(sbuf *b, const char *s) { sb_msg(b, s, strlen(s)); }

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Content with leading and trailing whitespace removed (when trim). */
static void sb_content(sbuf *b, const char *s, bool trim) {
    size_t n = strlen(s);
    if (trim) {
        while (n && is_space(*s)) s++, n--;
        while (n && is_space(s[n - 1])) n--;
    }
    sb_msg(b, s, n);
}

static bool is_role(const fr_chat_msg *m, const char *role) { return strcmp(m->role, role) == 0; }

static const char *content_of(const fr_chat_msg *m) { return m->content ? m->content : ""; }

/* ---- tools in Hermes' text (chatml; the llama-2 family borrows it) ---- */

static void hermes_tools(sbuf *b, const char *const *tools, size_t n_tools) {
    sb_str(b, "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
              "You are provided with function signatures within <tools></tools> XML tags:\n<tools>");
    for (size_t t = 0; t < n_tools; t++) {
        sb_str(b, "\n");
        sb_msg_str(b, tools[t]);
    }
    sb_str(b, "\n</tools>\n\nFor each function call, return a json object with function name and "
              "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "
              "<function-name>, \"arguments\": <args-json-object>}\n</tool_call>");
}

/* Each call as "\n<tool_call>\n{...}\n</tool_call>". */
static void hermes_calls(sbuf *b, const fr_chat_msg *m) {
    for (size_t c = 0; c < m->n_calls; c++) {
        sb_str(b, "\n<tool_call>\n{\"name\": \"");
        sb_msg_str(b, m->calls[c].name);
        sb_str(b, "\", \"arguments\": ");
        sb_msg_str(b, m->calls[c].arguments);
        sb_str(b, "}\n</tool_call>");
    }
}

/* ---- the families ---- */

static void apply_chatml(sbuf *b, const fr_chat_msg *msgs, size_t n, const char *const *tools,
                         size_t n_tools, bool gen) {
    size_t i = 0;
    if (n_tools) {  /* the system turn: its text, then the tools */
        sb_str(b, "<|im_start|>system\n");
        if (n && is_role(&msgs[0], "system")) {
            sb_msg_str(b, content_of(&msgs[0]));
            sb_str(b, "\n\n");
            i = 1;
        }
        hermes_tools(b, tools, n_tools);
        sb_str(b, "<|im_end|>\n");
    }
    for (; i < n; i++) {
        const fr_chat_msg *m = &msgs[i];
        if (is_role(m, "tool")) {   /* consecutive results share one user turn */
            if (i == 0 || !is_role(&msgs[i - 1], "tool")) sb_str(b, "<|im_start|>user");
            sb_str(b, "\n<tool_response>\n");
            sb_msg_str(b, content_of(m));
            sb_str(b, "\n</tool_response>");
            if (i + 1 == n || !is_role(&msgs[i + 1], "tool")) sb_str(b, "<|im_end|>\n");
        } else if (m->n_calls) {
            sb_str(b, "<|im_start|>");
            sb_msg_str(b, m->role);
            if (*content_of(m)) {
                sb_str(b, "\n");
                sb_msg_str(b, m->content);
            }
            hermes_calls(b, m);
            sb_str(b, "<|im_end|>\n");
        } else {
            sb_str(b, "<|im_start|>");
            sb_msg_str(b, m->role);
            sb_str(b, "\n");
            sb_msg_str(b, content_of(m));
            sb_str(b, "<|im_end|>\n");
        }
    }
    if (gen) sb_str(b, "<|im_start|>assistant\n");
}

static void apply_llama3(sbuf *b, const fr_chat_msg *msgs, size_t n, const char *const *tools,
                         size_t n_tools, bool gen) {
    size_t i = 0, tools_at = SIZE_MAX;  /* the user message that carries the tools */
    if (n_tools) {
        /* Llama 3.1's JSON tool calling: the system turn turns the
         * environment on, the first user turn lists the functions. */
        sb_str(b, "<|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\n"
                  "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n");
        if (n && is_role(&msgs[0], "system")) {
            sb_content(b, content_of(&msgs[0]), true);
            i = 1;
        }
        sb_str(b, "<|eot_id|>");
        for (tools_at = i; tools_at < n && !is_role(&msgs[tools_at], "user"); tools_at++) {}
    }
    for (size_t k = i; k <= n; k++) {
        if (k == tools_at) {    /* (n: no user message; the tools get a turn of their own) */
            sb_str(b, "<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, "
                      "please respond with a JSON for a function call with its proper arguments that "
                      "best answers the given prompt.\n\nRespond in the format {\"name\": function "
                      "name, \"parameters\": dictionary of argument name and its value}.Do not use "
                      "variables.\n\n");
            for (size_t t = 0; t < n_tools; t++) {
                sb_msg_str(b, tools[t]);
                sb_str(b, "\n\n");
            }
            if (k < n) sb_content(b, content_of(&msgs[k]), true);
            sb_str(b, "<|eot_id|>");
            continue;
        }
        if (k == n) break;
        const fr_chat_msg *m = &msgs[k];
        if (is_role(m, "tool")) {
            sb_str(b, "<|start_header_id|>ipython<|end_header_id|>\n\n");
            sb_msg_str(b, content_of(m));
        } else if (m->n_calls) {
            sb_str(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
            for (size_t c = 0; c < m->n_calls; c++) {
                sb_str(b, c ? "\n{\"name\": \"" : "{\"name\": \"");
                sb_msg_str(b, m->calls[c].name);
                sb_str(b, "\", \"parameters\": ");
                sb_msg_str(b, m->calls[c].arguments);
                sb_str(b, "}");
            }
        } else {
            sb_str(b, "<|start_header_id|>");
            sb_msg_str(b, m->role);
            sb_str(b, "<|end_header_id|>\n\n");
            sb_content(b, content_of(m), true);
        }
        sb_str(b, "<|eot_id|>");
    }
    if (gen) sb_str(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/* One [INST] turn of Mistral's: m (NULL: none), and when it is the last
 * the tools before it and the system text inside it. */
static void mistral_inst(sbuf *b, bool last, const char *sys, const fr_chat_msg *m,
                         const char *const *tools, size_t n_tools) {
    if (last && n_tools) {
        sb_str(b, "[AVAILABLE_TOOLS] [");
        for (size_t t = 0; t < n_tools; t++) {
            if (t) sb_str(b, ", ");
            sb_msg_str(b, tools[t]);
        }
        sb_str(b, "][/AVAILABLE_TOOLS]");
    }
    sb_str(b, "[INST] ");
    if (last && sys) {
        sb_msg_str(b, sys);
        if (m) sb_str(b, "\n\n");
    }
    if (m) sb_msg_str(b, content_of(m));
    sb_str(b, "[/INST]");
}

/* Mistral's v3 format: the system text goes into the last user turn, the
 * tools before it; no generation prompt (the model answers after
 * [/INST] or a tool result). */
static void apply_mistral(sbuf *b, const fr_chat_msg *msgs, size_t n, const char *const *tools,
                          size_t n_tools) {
    size_t i = 0, last_user = n;
    const char *sys = NULL;
    if (n && is_role(&msgs[0], "system")) {
        sys = content_of(&msgs[0]);
        i = 1;
    }
    for (size_t k = i; k < n; k++)
        if (is_role(&msgs[k], "user")) last_user = k;
    for (size_t k = i; k < n; k++) {
        const fr_chat_msg *m = &msgs[k];
        if (is_role(m, "user") || is_role(m, "system")) {
            mistral_inst(b, k == last_user, sys, m, tools, n_tools);
        } else if (is_role(m, "tool")) {
            sb_str(b, "[TOOL_RESULTS] {\"content\": ");
            sb_msg_str(b, content_of(m));
            sb_str(b, ", \"call_id\": \"");
            if (m->tool_call_id) sb_msg_str(b, m->tool_call_id);
            sb_str(b, "\"}[/TOOL_RESULTS]");
        } else if (m->n_calls) {
            sb_str(b, "[TOOL_CALLS] [");
            for (size_t c = 0; c < m->n_calls; c++) {
                sb_str(b, c ? ", {\"name\": \"" : "{\"name\": \"");
                sb_msg_str(b, m->calls[c].name);
                sb_str(b, "\", \"arguments\": ");
                sb_msg_str(b, m->calls[c].arguments);
                if (m->calls[c].id) {
                    sb_str(b, ", \"id\": \"");
                    sb_msg_str(b, m->calls[c].id);
                    sb_str(b, "\"");
                }
                sb_str(b, "}");
            }
            sb_str(b, "]</s>");
        } else {
            sb_str(b, " ");
            sb_content(b, content_of(m), true);
            sb_str(b, "</s>");
        }
    }
    if (last_user == n && (sys || n_tools)) mistral_inst(b, true, sys, NULL, tools, n_tools);
}

/* The llama-2 family, with Hermes' text for tools: the definitions in
 * the system part, calls after the assistant's text, results as a user
 * turn of <tool_response> blocks. */
static void apply_llama2(sbuf *b, int kind, const fr_chat_msg *msgs, size_t n,
                         const char *const *tools, size_t n_tools) {
    bool sys = kind != FR_CHAT_LLAMA2;
    bool bos_inside = kind == FR_CHAT_LLAMA2_SYS_BOS;
    bool strip = kind == FR_CHAT_LLAMA2_SYS_STRIP;
    bool inside_turn = true; /* the first "[INST] " needs no BOS text */
    bool tools_due = n_tools > 0;
    sb_str(b, "[INST] ");
    for (size_t i = 0; i < n; i++) {
        const fr_chat_msg *m = &msgs[i];
        bool is_sys = is_role(m, "system");
        if (!inside_turn) {
            inside_turn = true;
            sb_str(b, bos_inside ? "<s>[INST] " : "[INST] ");
        }
        if (is_sys || tools_due) {  /* the system part (with the tools, the first time) */
            if (sys) sb_str(b, "<<SYS>>\n");
            if (is_sys) sb_content(b, content_of(m), strip);
            if (tools_due) {
                if (is_sys) sb_str(b, "\n\n");
                hermes_tools(b, tools, n_tools);
                tools_due = false;
            }
            sb_str(b, sys ? "\n<</SYS>>\n\n" : "\n");
            if (is_sys) continue;
        }
        if (is_role(m, "user")) {
            sb_content(b, content_of(m), strip);
            sb_str(b, " [/INST]");
        } else if (is_role(m, "tool")) {
            sb_str(b, "<tool_response>\n");
            sb_msg_str(b, content_of(m));
            sb_str(b, "\n</tool_response>");
            sb_str(b, i + 1 < n && is_role(&msgs[i + 1], "tool") ? "\n" : " [/INST]");
        } else {
            sb_content(b, content_of(m), strip);
            hermes_calls(b, m);
            sb_str(b, "</s>");
            inside_turn = false;
        }
    }
}

int fr_chat_apply_tools(int kind, const fr_chat_msg *msgs, size_t n, const char *const *tools,
                        size_t n_tools, bool add_generation_prompt, char **out, fr_span **spans,
                        size_t *n_spans) {
    *out = NULL;
    if (spans) *spans = NULL;
    if (n_spans) *n_spans = 0;
    if (kind < 0 || kind >= N_KINDS) return fr_errf(FR_EINVAL, "chat: bad template kind %d", kind);
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role || (!msgs[i].content && !msgs[i].n_calls))
            return fr_errf(FR_EINVAL, "chat: message %zu has no %s", i,
                           msgs[i].role ? "content" : "role");
        for (size_t c = 0; c < msgs[i].n_calls; c++)
            if (!msgs[i].calls[c].name || !msgs[i].calls[c].arguments)
                return fr_errf(FR_EINVAL, "chat: message %zu, call %zu has no %s", i, c,
                               msgs[i].calls[c].name ? "arguments" : "name");
    }
    for (size_t t = 0; t < n_tools; t++)
        if (!tools[t]) return fr_errf(FR_EINVAL, "chat: tool %zu has no definition", t);
    sbuf b = {.want_spans = spans && n_spans};
    sb_put(&b, "", 0);

    switch (kind) {
    case FR_CHAT_CHATML: apply_chatml(&b, msgs, n, tools, n_tools, add_generation_prompt); break;
    case FR_CHAT_LLAMA3: apply_llama3(&b, msgs, n, tools, n_tools, add_generation_prompt); break;
    case FR_CHAT_MISTRAL: apply_mistral(&b, msgs, n, tools, n_tools); break;
    default: apply_llama2(&b, kind, msgs, n, tools, n_tools); break;  /* no generation prompt */
    }
    if (b.oom) {
        fr_free(b.s);
        fr_free(b.spans);
        return FR_ENOMEM;
    }
    *out = b.s;
    if (b.want_spans) {
        *spans = b.spans;
        *n_spans = b.n_spans;
    }
    return 0;
}

int fr_chat_apply_spans(int kind, const fr_chat_msg *msgs, size_t n, bool add_generation_prompt,
                        char **out, fr_span **spans, size_t *n_spans) {
    return fr_chat_apply_tools(kind, msgs, n, NULL, 0, add_generation_prompt, out, spans, n_spans);
}

int fr_chat_apply(int kind, const fr_chat_msg *msgs, size_t n, bool add_generation_prompt,
                  char **out) {
    return fr_chat_apply_spans(kind, msgs, n, add_generation_prompt, out, NULL, NULL);
}

int fr_chat_tokenize_tools(const fr_vocab *v, int kind, const fr_chat_msg *msgs, size_t n,
                           const char *const *tools, size_t n_tools, bool add_generation_prompt,
                           int32_t **ids, size_t *n_ids) {
    if (!v || !ids || !n_ids) return FR_EINVAL;
    *ids = NULL;
    *n_ids = 0;
    char *text = NULL;
    fr_span *spans = NULL;
    size_t n_spans = 0;
    int rc = fr_chat_apply_tools(kind, msgs, n, tools, n_tools, add_generation_prompt, &text, &spans,
                                 &n_spans);
    if (rc) return rc;
    rc = fr_tokenize_mixed(v, text, strlen(text), true, spans, n_spans, ids, n_ids);
    fr_free(spans);
    fr_free(text);
    return rc;
}

int fr_chat_tokenize(const fr_vocab *v, int kind, const fr_chat_msg *msgs, size_t n,
                     bool add_generation_prompt, int32_t **ids, size_t *n_ids) {
    return fr_chat_tokenize_tools(v, kind, msgs, n, NULL, 0, add_generation_prompt, ids, n_ids);
}
