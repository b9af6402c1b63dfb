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

int fr_chat_apply_spans(int kind, const fr_chat_msg *msgs, size_t n, bool add_generation_prompt,
                        char **out, fr_span **spans, size_t *n_spans) {
    *out = NULL;
    if (spans) *spans = NULL;
    if (n_spans) *n_spans = 0;
    if (kind < 0 || kind >= N_KINDS) return fr_errf(FR_EINVAL, "chat: bad template kind %d", kind);
    for (size_t i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content)
            return fr_errf(FR_EINVAL, "chat: message %zu has no %s", i,
                           msgs[i].role ? "content" : "role");
    sbuf b = {.want_spans = spans && n_spans};
    sb_put(&b, "", 0);

    switch (kind) {
    case FR_CHAT_CHATML:
        for (size_t i = 0; i < n; i++) {
            sb_str(&b, "<|im_start|>");
            sb_msg_str(&b, msgs[i].role);
            sb_str(&b, "\n");
            sb_msg_str(&b, msgs[i].content);
            sb_str(&b, "<|im_end|>\n");
        }
        if (add_generation_prompt) sb_str(&b, "<|im_start|>assistant\n");
        break;
    case FR_CHAT_LLAMA3:
        for (size_t i = 0; i < n; i++) {
            sb_str(&b, "<|start_header_id|>");
            sb_msg_str(&b, msgs[i].role);
            sb_str(&b, "<|end_header_id|>\n\n");
            sb_content(&b, msgs[i].content, true);
            sb_str(&b, "<|eot_id|>");
        }
        if (add_generation_prompt) sb_str(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    default: { /* the llama-2 family; it has no generation prompt */
        bool sys = kind != FR_CHAT_LLAMA2;
        bool bos_inside = kind == FR_CHAT_LLAMA2_SYS_BOS;
        bool strip = kind == FR_CHAT_LLAMA2_SYS_STRIP;
        bool inside_turn = true; /* the first "[INST] " needs no BOS text */
        sb_str(&b, "[INST] ");
        for (size_t i = 0; i < n; i++) {
            const char *role = msgs[i].role;
            if (!inside_turn) {
                inside_turn = true;
                sb_str(&b, bos_inside ? "<s>[INST] " : "[INST] ");
            }
            if (!strcmp(role, "system")) {
                if (sys) {
                    sb_str(&b, "<<SYS>>\n");
                    sb_content(&b, msgs[i].content, strip);
                    sb_str(&b, "\n<</SYS>>\n\n");
                } else {
                    sb_content(&b, msgs[i].content, strip);
                    sb_str(&b, "\n");
                }
            } else if (!strcmp(role, "user")) {
                sb_content(&b, msgs[i].content, strip);
                sb_str(&b, " [/INST]");
            } else {
                sb_content(&b, msgs[i].content, strip);
                sb_str(&b, "</s>");
                inside_turn = false;
            }
        }
        break;
    }
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

int fr_chat_apply(int kind, const fr_chat_msg *msgs, size_t n, bool add_generation_prompt,
                  char **out) {
    return fr_chat_apply_spans(kind, msgs, n, add_generation_prompt, out, NULL, NULL);
}

int fr_chat_tokenize(const fr_vocab *v, int kind, const fr_chat_msg *msgs, size_t n,
                     bool add_generation_prompt, int32_t **ids, size_t *n_ids) {
    if (!v || !ids || !n_ids) return FR_EINVAL;
    *ids = NULL;
    *n_ids = 0;
    char *text = NULL;
    fr_span *spans = NULL;
    size_t n_spans = 0;
    int rc = fr_chat_apply_spans(kind, msgs, n, add_generation_prompt, &text, &spans, &n_spans);
    if (rc) return rc;
    rc = fr_tokenize_mixed(v, text, strlen(text), true, spans, n_spans, ids, n_ids);
    fr_free(spans);
    fr_free(text);
    return rc;
}
