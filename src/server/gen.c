/*
 * gen.c — POST /v1/chat/completions and POST /v1/completions (API.md,
 * OpenAI's shapes).
 *
 * A request goes: parse and validate the body into an fr_gen_req
 * (server_int.h; body.c's getters answer the 400 naming the field) →
 * acquire the model (fr__models_acquire: 404 unknown, 400 when it does
 * not do the route's kind, 503 when it cannot be loaded now) → build the
 * prompt (below) → 400 context_length_exceeded if it leaves no room in
 * the context (OpenAI's answer; gen_shapes.c) → submit to the model's
 * scheduler (503 with Retry-After when its slots and queue are full) →
 * either wait for the whole answer in this connection's thread, or answer
 * with an event stream whose pull function hands over each piece of text
 * as it comes.
 *
 * Choices.  A request has one generation per choice (gen_seq): "n" of
 * them per prompt, and a text completion may have several prompts
 * (gen_shapes.c parses them); choice i·n + j is prompt i's j-th.  Each
 * prompt's n are one group of the scheduler (fr_sched_submit_n: the
 * prompt is read once, its KV copied to the others' slots, each sampled
 * with seed + j); n beyond the model's slots is a 400 naming n.  Usage
 * counts each prompt once and every choice's tokens.  A stream begins
 * with each chat choice's role alone ({"role": "assistant", "content":
 * ""}, as OpenAI sends it) or each echoed prompt, then hands over what
 * any choice has as chunks naming its index; the model is given back
 * when the last of them ends.  A client that goes away cancels its request at the next
 * step (fr__req_gone while waiting, and the on_gone hook).  The handle is
 * released (with the request's keep_alive) as soon as the generation
 * ends — from the scheduler's thread, by the on_end hook — not when the
 * client has read the last byte: the rest of the answer is buffered in
 * the generation (fr_gen), so a stream whose client stopped reading does
 * not keep its model from a forced unload or an eviction.  Requests with
 * logprobs keep it until they are over (their token texts come from the
 * model's vocabulary).
 *
 * The prompt.  Chat: the model's template with the messages, tokenized by
 * fr_chat_tokenize: special tokens are parsed in the template's own text
 * only, so "</s>" or "<|im_end|>" in a message (or in a document that
 * /ask quotes in one) is ordinary text, never the control token.  Text
 * completions: the prompt is the client's whole prompt, tokenized with
 * BOS as the vocabulary says and special tokens parsed, as llama-server
 * does (a client may write its own template: "<|im_start|>" is then the
 * token).  A prompt of token ids is taken as it is.  With "echo" the
 * prompt's text leads the choice's text, and with logprobs its tokens'
 * logprobs lead too (the first null, as OpenAI's; the scheduler computes
 * the others only when asked: fr_gen_params.prompt_logprobs).
 *
 * Other handlers generate through the same path, with no JSON in between:
 * fr__gen_run, the typed entry both routes end in, takes an fr_gen_req,
 * optionally the handle of its model when the caller holds one already,
 * and hooks.  The ask route of collections.c fills the request from its
 * own body (fr__gen_parse_options: every field of a chat completion but
 * the messages, which are its prompt, and "top_k", which is its number of
 * sources), hands over the model it acquired to size that prompt, and
 * lends hooks that reshape the non-streamed reply and add one event at
 * the end of a stream.  Ollama's routes (ollama.c) lend hooks that
 * reshape every streamed chunk (chunk), frame the stream as NDJSON
 * (ndjson) and read the counters and times as they go (stats).
 *
 * Everything a request allocates for its own bookkeeping comes from the
 * request's arena, except the generation's output, which the scheduler
 * hands over as fr_malloc'd pieces and which is freed piece by piece.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "base/sysinfo.h"
#include "engine/chat.h"
#include "engine/vocab.h"
#include "manager/loader_gguf.h"
#include "server/gen_shapes.h"
#include "server/server_int.h"

#define MAX_MESSAGES 1024
#define WAIT_SLICE_MS 50

/* One choice of a request: one generation (n per prompt; text
 * completions may have several prompts).  Arena memory. */
typedef struct gen_seq {
    fr_gen *g;
    int32_t index, prompt;      /* the choice's "index"; which prompt */
    bool sent_role;             /* chat stream: the role chunk went */
    bool sent_echo;             /* echo: the prompt went */
    int finish;                 /* the last reported */
    int32_t n_gen;
    size_t text_offset;         /* text completions' logprobs.text_offset */
    bool strip_space;           /* echo: the first piece's leading space is not in the text */
    int n_calls;                /* tool calls read so far (tools.c) */
    fr_tool_parser *tp;         /* a stream's reader of them */
} gen_seq;

/* A request in progress (arena memory), shared with the stream. */
typedef struct gen_run {
    fr_req *rq;
    const fr_gen_req *q;
    fr_handle *h;
    fr_loaded_model *lm;
    gen_seq *seqs;              /* [n_seqs], in "index" order */
    int32_t n_seqs;
    atomic_int ends_left;       /* generations still running (on_end) */
    const char **echo;          /* echo: each prompt's text [n_prompts] */
    size_t *echo_len;
    int32_t **p_ids;            /* each prompt's tokens */
    char id[48];
    char fp[FR_GEN_FP_LEN];     /* system_fingerprint */
    long created;
    bool done;
    int32_t n_prompt, n_gen;    /* prompt tokens (each prompt once), generated (all choices) */
    double queue_ms, ttft_ms, total_ms;
    int finish;                 /* the last reported */
    const fr_gen_hooks *hk;     /* another handler's (fr__gen_run), or NULL */
    bool hk_done;               /* hk->fin has run */
    bool streaming;             /* the stream's fin owns the end of the request */
    bool tools;                 /* the reply is read for tool calls (tools.c) */
    const char *tool_grammar;   /* tool_choice's grammar for this model's family, or NULL */
    fr_grammar *gram;           /* q->grammar compiled, until submitted */
    int32_t n_tp;               /* seqs[0 .. n_tp) may have a tool parser */
} gen_run;

/* ---- parsing ---- */

/* A message's content: a string, or an array of {"type":"text","text"}
 * parts (joined). */
static int parse_content(fr_req *rq, json_t *c, size_t i, const char **out) {
    char param[48];
    snprintf(param, sizeof param, "messages[%zu].content", i);
    if (json_is_string(c)) {
        *out = json_string_value(c);
        return 0;
    }
    if (!json_is_array(c))
        return fr__reply_error(rq, 400, "invalid_value", param,
                               "%s must be a string or an array of text parts", param);
    size_t total = 0, n = json_array_size(c);
    for (size_t k = 0; k < n; k++) {
        json_t *part = json_array_get(c, k);
        const char *type = json_string_value(json_object_get(part, "type"));
        json_t *text = json_object_get(part, "text");
        if (!json_is_object(part) || !type || strcmp(type, "text") != 0 || !json_is_string(text))
            return fr__reply_error(rq, 400, "invalid_value", param,
                                   "%s[%zu] must be {\"type\": \"text\", \"text\": string} (only "
                                   "text parts are supported)", param, k);
        total += json_string_length(text);
    }
    char *s = fr__req_alloc(rq, total + 1), *p = s;
    if (!s) return FR_ENOMEM;
    for (size_t k = 0; k < n; k++) {
        json_t *text = json_object_get(json_array_get(c, k), "text");
        memcpy(p, json_string_value(text), json_string_length(text));
        p += json_string_length(text);
    }
    *p = 0;
    *out = s;
    return 0;
}

static int parse_messages(const fr_body *b, fr_gen_req *q) {
    fr_req *rq = b->rq;
    json_t *msgs = json_object_get(b->obj, "messages");
    if (!msgs) return fr__reply_error(rq, 400, "missing_field", "messages", "messages is required");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return fr__reply_error(rq, 400, "invalid_value", "messages",
                               "messages must be a non-empty array");
    size_t n = json_array_size(msgs);
    if (n > MAX_MESSAGES)
        return fr__reply_error(rq, 400, "invalid_value", "messages",
                               "messages has %zu entries, at most %d", n, MAX_MESSAGES);
    fr_chat_msg *m = fr__req_alloc(rq, n * sizeof *m);
    if (!m) return FR_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *mi = json_array_get(msgs, i);
        char param[48];
        snprintf(param, sizeof param, "messages[%zu].role", i);
        const char *role = json_string_value(json_object_get(mi, "role"));
        if (!json_is_object(mi) || !role)
            return fr__reply_error(rq, 400, "invalid_value", param, "%s must be a string", param);
        if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant") &&
            strcmp(role, "developer") && strcmp(role, "tool"))
            return fr__reply_error(rq, 400, "invalid_value", param,
                                   "%s must be system, user, assistant or tool (got '%.32s')", param, role);
        m[i] = (fr_chat_msg){.role = strcmp(role, "developer") == 0 ? "system" : role};
        json_t *c = json_object_get(mi, "content");
        int rc;
        if ((c && !json_is_null(c)) || strcmp(role, "assistant") ||
            !json_array_size(json_object_get(mi, "tool_calls"))) {
            if (!c) {   /* (an assistant's calls may come without content) */
                snprintf(param, sizeof param, "messages[%zu].content", i);
                return fr__reply_error(rq, 400, "missing_field", param, "%s is required", param);
            }
            if ((rc = parse_content(rq, c, i, &m[i].content))) return rc;
        }
        if ((rc = fr__tools_message(rq, mi, i, &m[i]))) return rc;
    }
    q->msgs = m;
    q->n_msgs = n;
    return 0;
}

/* stop: a string or an array of strings, within the scheduler's limits;
 * empty strings stop nothing and are dropped. */
static int parse_stop(const fr_body *b, fr_gen_req *q) {
    fr_req *rq = b->rq;
    json_t *s = json_object_get(b->obj, "stop");
    if (!s || json_is_null(s)) return 0;
    if (json_is_string(s)) {
        if (json_string_length(s) == 0) return 0;
        q->stop[q->n_stop++] = json_string_value(s);
        return 0;
    }
    if (!json_is_array(s) || json_array_size(s) > FR_GEN_MAX_STOPS)
        return fr__reply_error(rq, 400, "invalid_value", "stop",
                               "stop must be a string or an array of at most %d strings", FR_GEN_MAX_STOPS);
    for (size_t i = 0; i < json_array_size(s); i++) {
        json_t *e = json_array_get(s, i);
        if (!json_is_string(e))
            return fr__reply_error(rq, 400, "invalid_value", "stop", "stop[%zu] must be a string", i);
        if (json_string_length(e) > FR_GEN_MAX_STOP_LEN)
            return fr__reply_error(rq, 400, "invalid_value", "stop", "stop[%zu] is %zu bytes, at most %d", i,
                                   json_string_length(e), FR_GEN_MAX_STOP_LEN);
        if (json_string_length(e)) q->stop[q->n_stop++] = json_string_value(e);
    }
    return 0;
}

static int parse_bias(const fr_body *b, fr_gen_req *q) {
    fr_req *rq = b->rq;
    json_t *lb = json_object_get(b->obj, "logit_bias");
    if (!lb || json_is_null(lb)) return 0;
    if (!json_is_object(lb) || json_object_size(lb) > FR_GEN_MAX_BIAS)
        return fr__reply_error(rq, 400, "invalid_value", "logit_bias",
                               "logit_bias must be an object of at most %d token ids", FR_GEN_MAX_BIAS);
    const char *key;
    json_t *v;
    json_object_foreach(lb, key, v) {
        char *end;
        long id = strtol(key, &end, 10);
        if (!*key || *end || id < 0 || id > INT32_MAX)
            return fr__reply_error(rq, 400, "invalid_value", "logit_bias",
                                   "logit_bias key '%.32s' is not a token id", key);
        if (!json_is_number(v) || json_number_value(v) < -100 || json_number_value(v) > 100)
            return fr__reply_error(rq, 400, "invalid_value", "logit_bias",
                                   "logit_bias[%s] must be a number from -100 to 100", key);
        double d = json_number_value(v);
        q->bias_ids[q->n_bias] = (int32_t)id;
        q->bias[q->n_bias++] = d <= -100 ? -INFINITY : (float)d;
    }
    return 0;
}

int fr__gen_parse_options(const fr_body *b, bool top_k, fr_gen_req *q) {
    q->stream = q->include_usage = q->logprobs = q->ignore_eos = false;
    q->max_tokens = q->n_stop = q->n_bias = q->top_logprobs = 0;
    q->keep_alive_ms = FR_KEEP_ALIVE_INHERIT;
    q->timeout_s = 0;
    fr_sampler_params_default(&q->sp);

    long long seed = -1;
    bool have;
    int rc;
    /* max_completion_tokens is the newer name: it wins when both come */
    if ((rc = fr__body_i32(b, "max_tokens", 1, 1 << 20, &q->max_tokens, NULL)) ||
        (rc = fr__body_i32(b, "max_completion_tokens", 1, 1 << 20, &q->max_tokens, NULL)))
        return rc;
    if ((rc = fr__body_bool(b, "stream", &q->stream))) return rc;
    json_t *so = NULL;
    if ((rc = fr__body_object(b, "stream_options", "an object", &so))) return rc;
    fr_body sb = {.rq = b->rq, .obj = so};     /* its fields are named as they are */
    if ((rc = fr__body_bool(&sb, "include_usage", &q->include_usage))) return rc;

    fr_sampler_params *sp = &q->sp;
    if ((rc = fr__body_float(b, "temperature", 0, 2, &sp->temp, NULL)) ||
        (rc = fr__body_float(b, "top_p", 0, 1, &sp->top_p, NULL)) ||
        (rc = fr__body_float(b, "min_p", 0, 1, &sp->min_p, NULL)) ||
        (top_k && (rc = fr__body_i32(b, "top_k", -1, 1 << 20, &sp->top_k, NULL))) ||
        (rc = fr__body_float(b, "repeat_penalty", 0.01, 10, &sp->repeat_penalty, NULL)) ||
        (rc = fr__body_i32(b, "repeat_last_n", -1, 1 << 16, &sp->repeat_last_n, NULL)))
        return rc;
    sp->presence_penalty = sp->freq_penalty = 0;
    if ((rc = fr__body_float(b, "presence_penalty", -2, 2, &sp->presence_penalty, NULL)) ||
        (rc = fr__body_float(b, "frequency_penalty", -2, 2, &sp->freq_penalty, NULL)) ||
        (rc = fr__body_int(b, "seed", INT64_MIN, INT64_MAX, &seed, &have)))
        return rc;
    if (have) sp->seed = (uint64_t)seed;
    if ((rc = parse_stop(b, q)) || (rc = parse_bias(b, q))) return rc;
    if (q->kind == FR_GEN_CHAT) {   /* logprobs: true, top_logprobs: how many alternatives */
        if ((rc = fr__body_bool(b, "logprobs", &q->logprobs)) ||
            (rc = fr__body_i32(b, "top_logprobs", 0, FR_GEN_MAX_PROBS, &q->top_logprobs, NULL)))
            return rc;
        if (q->top_logprobs > 0 && !q->logprobs)
            return fr__reply_error(b->rq, 400, "invalid_value", "top_logprobs",
                                   "top_logprobs needs logprobs: true");
    } else {                        /* legacy completions: logprobs is the number of alternatives */
        if ((rc = fr__body_i32(b, "logprobs", 0, FR_GEN_MAX_PROBS, &q->top_logprobs, &q->logprobs))) return rc;
    }
    if ((rc = fr__body_bool(b, "ignore_eos", &q->ignore_eos)) ||
        (rc = fr__body_keep_alive(b, &q->keep_alive_ms)) ||
        (rc = fr__body_num(b, "timeout", 0, 86400, &q->timeout_s, NULL)))
        return rc;
    return fr__gen_parse_structured(b, q);   /* grammar, response_format (schema.c) */
}

/* The whole body of a generation route into q. */
static int parse(fr_req *rq, fr_gen_kind kind, fr_gen_req *q) {
    fr_body b;
    int rc;
    memset(q, 0, sizeof *q);
    q->kind = kind;
    if ((rc = fr__body_need(rq, &b)) || (rc = fr__body_str(&b, "model", FR_BODY_REQUIRED, &q->model, NULL)) ||
        (rc = kind == FR_GEN_CHAT ? parse_messages(&b, q) : fr__gen_parse_prompts(&b, q)) ||
        (rc = fr__gen_parse_options(&b, true, q)) || (rc = fr__gen_parse_shapes(&b, q)) ||
        (kind == FR_GEN_CHAT && (rc = fr__tools_parse(&b, q))))
        return rc;
    fr__gen_log_unknown(&b, kind == FR_GEN_CHAT ? "/v1/chat/completions" : "/v1/completions");
    return 0;
}

/* ---- prompt ---- */

/* Tokenize the request's prompt k (of several, else the one) for lm:
 * *ids from the request's arena. */
static int build_prompt(fr_req *rq, const fr_gen_req *q, const fr_loaded_model *lm, int32_t k, int32_t **ids,
                        int32_t *n) {
    const fr_vocab *v = fr_model_vocab(lm->model);
    int32_t *pids = q->n_prompts ? q->prompts_ids[k] : q->prompt_ids;
    int32_t n_pids = q->n_prompts ? q->prompts_n_ids[k] : q->n_prompt_ids;
    const char *text = q->n_prompts ? q->prompts[k] : q->prompt;
    if (pids) {
        int32_t nv = fr_vocab_n_tokens(v);
        for (int32_t i = 0; i < n_pids; i++)
            if (pids[i] >= nv)
                return fr__reply_error(rq, 400, "invalid_value", "prompt",
                                       "prompt[%d] = %d is not a token of this model (%d tokens)",
                                       (int)i, (int)pids[i], (int)nv);
        *ids = pids;
        *n = n_pids;
        return 0;
    }
    int32_t *tok = NULL;
    size_t nt = 0, n_defs = 0;
    const char *const *defs = NULL;
    int rc = q->kind == FR_GEN_CHAT ? fr__tools_defs(rq, q, lm->chat_kind, &defs, &n_defs) : 0;
    if (rc) return rc;
    rc = q->kind == FR_GEN_CHAT
             ? fr_chat_tokenize_tools(v, lm->chat_kind, q->msgs, q->n_msgs, defs, n_defs, true, &tok, &nt)
             : fr_tokenize(v, text, strlen(text), true, true, &tok, &nt);
    if (rc) return rc;
    if (nt == 0) {
        fr_free(tok);
        return fr__reply_error(rq, 400, "invalid_value", q->kind == FR_GEN_CHAT ? "messages" : "prompt",
                               "the prompt has no tokens");
    }
    *ids = fr__req_alloc(rq, nt * sizeof **ids);
    if (!*ids) {
        fr_free(tok);
        return FR_ENOMEM;
    }
    memcpy(*ids, tok, nt * sizeof *tok);
    fr_free(tok);
    *n = (int32_t)nt;
    return 0;
}

/* ---- replies ---- */

static const char *finish_reason(int finish) {
    return finish == FR_FINISH_LENGTH ? "length" : finish == FR_FINISH_CANCELLED ? "cancelled" : "stop";
}

static json_t *usage_json(const gen_run *r) {
    return json_pack("{s:i, s:i, s:i}", "prompt_tokens", (json_int_t)r->n_prompt, "completion_tokens",
                     (json_int_t)r->n_gen, "total_tokens", (json_int_t)(r->n_prompt + r->n_gen));
}

static json_t *bytes_json(const char *p, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) json_array_append_new(a, json_integer((unsigned char)p[i]));
    return a;
}

/* A token's text for logprobs (its bytes as the model would print them). */
static json_t *token_str(const fr_vocab *v, int32_t id, char *buf, size_t cap, size_t *len) {
    size_t n = fr_token_to_piece(v, id, true, buf, cap);
    if (n > cap) n = cap;
    *len = n;
    return fr__json_text(buf, n);
}

/* Chat logprobs entries for probs, appended to arr. */
static void chat_logprobs(const gen_run *r, const fr_gen_prob *probs, int32_t n, json_t *arr) {
    const fr_vocab *v = fr_model_vocab(r->lm->model);
    char buf[256];
    for (int32_t i = 0; i < n; i++) {
        size_t len;
        json_t *top = json_array();
        for (int32_t k = 0; k < probs[i].n_top && k < r->q->top_logprobs; k++) {
            size_t l2;
            json_t *t = token_str(v, probs[i].top_id[k], buf, sizeof buf, &l2);
            json_array_append_new(top, json_pack("{s:o, s:f, s:o}", "token", t, "logprob",
                                                 (double)probs[i].top_logprob[k], "bytes",
                                                 bytes_json(buf, l2)));
        }
        json_t *tok = token_str(v, probs[i].id, buf, sizeof buf, &len);
        json_array_append_new(arr, json_pack("{s:o, s:f, s:o, s:o}", "token", tok, "logprob",
                                             (double)probs[i].logprob, "bytes", bytes_json(buf, len),
                                             "top_logprobs", top));
    }
}

/* Legacy completions logprobs: parallel arrays, appended to obj's.  With
 * echo, the prompt's first token leads (logprob null, as OpenAI: nothing
 * predicts it); the scheduler's probs then begin with the prompt's other
 * tokens. */
static void text_logprobs(gen_run *r, gen_seq *sq, bool echo_first, const fr_gen_prob *probs, int32_t n,
                          json_t *obj) {
    const fr_vocab *v = fr_model_vocab(r->lm->model);
    char buf[256];
    json_t *tokens = json_object_get(obj, "tokens"), *lps = json_object_get(obj, "token_logprobs");
    json_t *tops = json_object_get(obj, "top_logprobs"), *offs = json_object_get(obj, "text_offset");
    if (echo_first) {
        size_t len;
        int32_t t0 = r->p_ids[sq->prompt][0];
        json_array_append_new(tokens, token_str(v, t0, buf, sizeof buf, &len));
        json_array_append_new(lps, json_null());
        json_array_append_new(tops, json_null());
        json_array_append_new(offs, json_integer((json_int_t)sq->text_offset));
        len = fr_token_to_piece(v, t0, false, buf, sizeof buf);   /* BOS is not in the text */
        if (len >= sizeof buf) len = 0;
        /* the detokenizer drops a prompt's leading space (SentencePiece's " H") */
        const char *text = r->echo[sq->prompt];
        sq->strip_space = text[0] != ' ';
        if (len && sq->strip_space && buf[0] == ' ') len--;
        if (len) sq->strip_space = false;
        sq->text_offset += len;
    }
    for (int32_t i = 0; i < n; i++) {
        size_t len;
        json_array_append_new(tokens, token_str(v, probs[i].id, buf, sizeof buf, &len));
        json_array_append_new(lps, json_real(probs[i].logprob));
        json_array_append_new(offs, json_integer((json_int_t)sq->text_offset));
        if (sq->strip_space && len) {
            if (buf[0] == ' ') len--;
            sq->strip_space = false;
        }
        sq->text_offset += len;
        json_t *top = json_object();
        for (int32_t k = 0; k < probs[i].n_top && k < r->q->top_logprobs; k++) {
            size_t l2;
            json_t *key = token_str(v, probs[i].top_id[k], buf, sizeof buf, &l2);
            if (key) json_object_set_new(top, json_string_value(key), json_real(probs[i].top_logprob[k]));
            json_decref(key);
        }
        json_array_append_new(tops, top);
    }
}

static json_t *new_text_logprobs(void) {
    return json_pack("{s:[], s:[], s:[], s:[]}", "tokens", "token_logprobs", "top_logprobs",
                     "text_offset");
}

/* The reply's finish_reason: "tool_calls" when the answer was calls. */
static const char *finish_of(const gen_seq *sq, int finish) {
    return finish == FR_FINISH_STOP && sq->n_calls ? "tool_calls" : finish_reason(finish);
}

/* A non-streamed answer read for tool calls: m's content and tool_calls. */
static void tool_message(gen_run *r, gen_seq *sq, const char *text, size_t len, json_t *m) {
    if (fr__tools_message_json(r->q->tools, r->lm->chat_kind, text ? text : "", len, m, &sq->n_calls))
        FR_WARN("%s: no memory to read the answer for tool calls", r->id);
}

/* One choice object of sq: chat (message or delta) or text.  A text
 * choice's first one carries the prompt with echo (the caller put it in
 * text). */
static json_t *choice(gen_run *r, gen_seq *sq, const char *text, size_t len, const fr_gen_prob *probs,
                      int32_t n_probs, int finish, bool delta) {
    json_t *c = json_pack("{s:i}", "index", (json_int_t)sq->index);
    json_t *lp = json_null();
    bool echo_first = r->q->kind == FR_GEN_TEXT && r->q->echo && !sq->sent_echo;
    if (echo_first) sq->sent_echo = true;
    if (r->q->logprobs && (n_probs || !delta || echo_first)) {
        if (r->q->kind == FR_GEN_CHAT) {
            json_t *content = json_array();
            chat_logprobs(r, probs, n_probs, content);
            lp = json_pack("{s:o}", "content", content);
        } else {
            lp = new_text_logprobs();
            text_logprobs(r, sq, echo_first, probs, n_probs, lp);
        }
    }
    if (r->q->kind == FR_GEN_CHAT) {
        /* a stream's first chunk is the role alone, as OpenAI sends it:
         * {"role": "assistant", "content": ""}; the others carry content */
        json_t *m = json_object();
        if (!delta || !sq->sent_role) json_object_set_new(m, "role", json_string("assistant"));
        if (!delta || len || !sq->sent_role)
            json_object_set_new(m, "content", fr__json_text(text ? text : "", len));
        if (!delta && r->tools) tool_message(r, sq, text, len, m);
        json_object_set_new(c, delta ? "delta" : "message", m);
        sq->sent_role = true;
    } else {
        json_object_set_new(c, "text", fr__json_text(text ? text : "", len));
    }
    json_object_set_new(c, "logprobs", lp);
    json_object_set_new(c, "finish_reason",
                        finish != FR_FINISH_NONE ? json_string(finish_of(sq, finish)) : json_null());
    return c;
}

/* A stream read for tool calls: the choices of what o brings (the role's
 * first if it has not gone, then one per delta), appended to choices. */
static int tool_chunks(gen_run *r, gen_seq *sq, const fr_gen_out *o, json_t *choices) {
    json_t *deltas = json_array();
    if (!deltas) return FR_ENOMEM;
    int rc = fr__tool_parser_push(sq->tp, o->text, o->len, o->finish != FR_FINISH_NONE, deltas);
    sq->n_calls = fr__tool_parser_calls(sq->tp);
    if (!sq->sent_role) json_array_append_new(choices, choice(r, sq, NULL, 0, NULL, 0, FR_FINISH_NONE, true));
    for (size_t i = 0; !rc && i < json_array_size(deltas); i++)
        json_array_append_new(choices, json_pack("{s:i, s:O, s:n, s:n}", "index", (json_int_t)sq->index, "delta",
                                                 json_array_get(deltas, i), "logprobs", "finish_reason"));
    json_decref(deltas);
    return rc;
}

static json_t *envelope(const gen_run *r, bool chunk, json_t *choices) {
    const char *object = r->q->kind == FR_GEN_CHAT ? (chunk ? "chat.completion.chunk" : "chat.completion")
                                                 : "text_completion";
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:o}", "id", r->id, "object", object, "created",
                     (json_int_t)r->created, "model", r->q->model, "system_fingerprint", r->fp, "choices",
                     choices);
}

/* ---- metrics ---- */

static const double ttft_bounds[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
static const double tok_bounds[] = {0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1};
static const double queue_bounds[] = {0.001, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60};

/* Record a finished generation in the server's registry. */
static void observe(gen_run *r, int finish) {
    fr_metrics *mx = r->rq->srv->metrics;
    fr_metric *tokens = NULL, *ttft = NULL, *per_tok = NULL, *queue = NULL, *fin = NULL;
    fr_metric_counter(mx, "frugal_tokens_total", "Tokens by model and kind (prompt, generated)",
                      "model,kind", &tokens);
    fr_metric_histogram(mx, "frugal_time_to_first_token_seconds",
                        "From the request's arrival at the scheduler to its first generated token",
                        "model", ttft_bounds, (int)(sizeof ttft_bounds / sizeof *ttft_bounds), &ttft);
    fr_metric_histogram(mx, "frugal_time_per_token_seconds",
                        "Mean time between generated tokens, per request", "model", tok_bounds,
                        (int)(sizeof tok_bounds / sizeof *tok_bounds), &per_tok);
    fr_metric_histogram(mx, "frugal_queue_wait_seconds", "Time requests waited for a slot", "model",
                        queue_bounds, (int)(sizeof queue_bounds / sizeof *queue_bounds), &queue);
    fr_metric_counter(mx, "frugal_generations_total", "Generations by model and finish reason",
                      "model,finish", &fin);
    const char *m = r->q->model;
    fr_metric_add(tokens, r->n_prompt, m, "prompt");
    fr_metric_add(tokens, r->n_gen, m, "generated");
    fr_metric_add(fin, 1, m, finish_reason(finish));
    fr_metric_observe(queue, r->queue_ms / 1e3, m);
    if (r->n_gen > 0 && r->ttft_ms > 0) fr_metric_observe(ttft, r->ttft_ms / 1e3, m);
    if (r->n_gen > 1 && r->total_ms > r->ttft_ms)
        fr_metric_observe(per_tok, (r->total_ms - r->ttft_ms) / 1e3 / (r->n_gen - 1), m);
}

static void count_shed(fr_req *rq, const char *reason) {
    fr_metric *shed = NULL;
    fr_metric_counter(rq->srv->metrics, "frugal_sheds_total",
                      "Requests refused with 503, by reason", "reason", &shed);
    fr_metric_add(shed, 1, reason);
}

/* ---- the request's life ---- */

/* A generation ended (the scheduler's thread, with its lock held): when
 * it was the last of the request's, give the model back now rather than
 * when the client has read the answer.  What is left to send waits in the
 * fr_gen, which outlives the model, so a client that does not read holds
 * no model.  Not armed for logprobs, whose token texts need the model's
 * vocabulary until the last chunk is written. */
static void on_end(void *ud) {
    gen_run *r = ud;
    if (atomic_fetch_sub(&r->ends_left, 1) != 1) return;
    fr_handle *h = r->h;
    r->h = NULL;
    fr_manager_release_async(h);
}

static void cancel_all(gen_run *r) {
    for (int32_t i = 0; i < r->n_seqs; i++)
        if (r->seqs[i].g) fr_gen_cancel(r->seqs[i].g);
}

static void on_gone(void *ud) { cancel_all(ud); }

/* What o says of sq, and the request's totals. */
static void record(gen_run *r, gen_seq *sq, const fr_gen_out *o) {
    r->n_gen += o->n_gen - sq->n_gen;
    sq->n_gen = o->n_gen;
    sq->finish = o->finish;
    if (sq == r->seqs) {
        r->queue_ms = o->queue_ms;
        r->ttft_ms = o->ttft_ms;
        r->total_ms = o->total_ms;
        r->finish = o->finish;
    }
    fr__req_set_tokens(r->rq, r->n_prompt, r->n_gen);
    fr__req_set_queue_ms(r->rq, r->queue_ms);
    if (r->hk && r->hk->stats)
        *r->hk->stats = (fr_gen_stats){.n_prompt = r->n_prompt, .n_gen = r->n_gen, .queue_ms = r->queue_ms,
                                       .ttft_ms = r->ttft_ms, .total_ms = r->total_ms, .finish = r->finish};
}

/* Send a streamed chunk event, through the hook of a handler that
 * streams another shape. */
static int send_chunk(fr_sse *st, const gen_run *r, json_t *ev) {
    if (r->hk && r->hk->chunk) {
        if (!ev) return FR_ENOMEM;
        if (!(ev = r->hk->chunk(r->hk->ud, ev))) return 0;
    }
    return fr__sse_json(st, ev);
}

/* The end of a request for the handler that lent its hooks. */
static void hook_fin(gen_run *r) {
    if (r->hk && !r->hk_done) {
        r->hk_done = true;
        if (r->hk->fin) r->hk->fin(r->hk->ud);
    }
}

/* The end of the request: the generations are let go first (which
 * disarms on_end, or waits for it), then the handle if on_end did not
 * take it. */
static void finish_run(gen_run *r) {
    hook_fin(r);
    for (int32_t i = 0; i < r->n_tp; i++) {
        fr__tool_parser_destroy(r->seqs[i].tp);
        r->seqs[i].tp = NULL;
    }
    if (r->seqs && r->seqs[0].g && r->finish != FR_FINISH_NONE) observe(r, r->finish);
    for (int32_t i = 0; i < r->n_seqs; i++)
        if (r->seqs[i].g) {
            fr_gen_release(r->seqs[i].g);
            r->seqs[i].g = NULL;
        }
    if (r->h) {
        fr_manager_release(r->h);
        r->h = NULL;
    }
}

/* Streaming, one choice: hand over what its generation has, as chunks (a
 * text chunk, then the finish's).  *sent: something went. */
static int pull_seq(gen_run *r, gen_seq *sq, fr_sse *st, int timeout_ms, bool *sent) {
    fr_gen_out o;
    int rc = fr_gen_wait(sq->g, timeout_ms, &o);
    if (rc) return rc;
    record(r, sq, &o);
    int finish = o.finish;
    if (finish == FR_FINISH_ERROR) {
        int err = o.error ? o.error : FR_EINTERNAL;
        rc = fr_errf(err, "generation failed: %s", o.error_msg ? o.error_msg : fr_strerror(err));
        fr_gen_out_free(&o);
        return rc;
    }
    json_t *choices = json_array();
    if (sq->tp) {
        if ((rc = tool_chunks(r, sq, &o, choices))) {
            fr_gen_out_free(&o);
            json_decref(choices);
            return rc;
        }
    } else if (o.len || o.n_probs)
        json_array_append_new(choices, choice(r, sq, o.text, o.len, o.probs, o.n_probs, FR_FINISH_NONE, true));
    if (finish != FR_FINISH_NONE) json_array_append_new(choices, choice(r, sq, NULL, 0, NULL, 0, finish, true));
    fr_gen_out_free(&o);
    /* one choice per event: the text first, then the finish */
    for (size_t i = 0; i < json_array_size(choices) && rc == 0; i++) {
        json_t *ev = envelope(r, true, json_pack("[O]", json_array_get(choices, i)));
        if (r->q->include_usage) json_object_set_new(ev, "usage", json_null());
        rc = send_chunk(st, r, ev);
        *sent = true;
    }
    json_decref(choices);
    return rc;
}

/* The first events of a stream: each chat choice's role alone, each
 * echoed prompt. */
static int stream_head(gen_run *r, fr_sse *st) {
    int rc = 0;
    for (int32_t i = 0; i < r->n_seqs && rc == 0; i++) {
        gen_seq *sq = &r->seqs[i];
        json_t *c = NULL;
        if (r->q->kind == FR_GEN_CHAT && !sq->sent_role) c = choice(r, sq, NULL, 0, NULL, 0, FR_FINISH_NONE, true);
        else if (r->q->kind == FR_GEN_TEXT && r->q->echo && !sq->sent_echo)
            c = choice(r, sq, r->echo[sq->prompt], r->echo_len[sq->prompt], NULL, 0, FR_FINISH_NONE, true);
        if (!c) continue;
        json_t *ev = envelope(r, true, json_pack("[o]", c));
        if (r->q->include_usage) json_object_set_new(ev, "usage", json_null());
        rc = send_chunk(st, r, ev);
    }
    return rc;
}

/* Streaming: hand over what the generations have, as chunks whose choice
 * says its index. */
static int pull(fr_sse *st, void *ud) {
    gen_run *r = ud;
    int rc = stream_head(r, st);
    if (rc) return rc;
    for (;;) {
        bool sent = false, running = false;
        gen_seq *wait = NULL;
        for (int32_t i = 0; i < r->n_seqs; i++) {
            gen_seq *sq = &r->seqs[i];
            if (sq->finish != FR_FINISH_NONE) continue;
            if ((rc = pull_seq(r, sq, st, 0, &sent))) return rc;
            if (sq->finish == FR_FINISH_NONE) {
                running = true;
                if (!wait) wait = sq;
            }
        }
        if (!running) {
            int rc2;
            if (r->q->include_usage) {
                json_t *ev = envelope(r, true, json_array());
                json_object_set_new(ev, "usage", usage_json(r));
                if ((rc2 = fr__sse_json(st, ev))) return rc2;
            }
            if (r->hk && r->hk->last_event) {
                json_t *ev = envelope(r, true, json_array());
                if (ev) json_object_set_new(ev, "usage", usage_json(r));
                if ((ev = r->hk->last_event(r->hk->ud, ev)) && (rc2 = fr__sse_json(st, ev))) return rc2;
            }
            r->done = true;
            return FR_SSE_END;
        }
        if (sent) return FR_SSE_MORE;
        /* nothing new: wait on one that runs (the others step with it) */
        if ((rc = pull_seq(r, wait, st, WAIT_SLICE_MS, &sent))) return rc;
        if (sent) return FR_SSE_MORE;
        if (fr__sse_gone(st, 0)) {
            cancel_all(r);
            return FR_SSE_END;
        }
    }
}

static void fin(void *ud, bool completed) {
    gen_run *r = ud;
    (void)completed;
    for (int32_t i = 0; i < r->n_seqs; i++) {
        gen_seq *sq = &r->seqs[i];
        if (!sq->g || sq->finish != FR_FINISH_NONE) continue;
        /* The stream ended before its finish was read (the client went
         * away): stop the generation and count it as what it became, so
         * that it is not missing from the metrics. */
        fr_gen_cancel(sq->g);
        fr_gen_out o;
        if (fr_gen_wait(sq->g, 0, &o) == 0) {
            record(r, sq, &o);
            fr_gen_out_free(&o);
        }
        if (sq->finish == FR_FINISH_NONE) sq->finish = FR_FINISH_CANCELLED;
        if (i == 0) r->finish = sq->finish;
    }
    finish_run(r);
}

/* Wait for the whole of one choice in this thread: its text (after the
 * echoed prompt) and probabilities, fr_malloc'd. */
static int collect_seq(gen_run *r, gen_seq *sq, char **text, size_t *len, fr_gen_prob **probs,
                       int32_t *n_probs) {
    fr_req *rq = r->rq;
    int rc = 0;
    *text = NULL;
    *len = 0;
    *probs = NULL;
    *n_probs = 0;
    if (r->q->kind == FR_GEN_TEXT && r->q->echo) {
        size_t n = r->echo_len[sq->prompt];
        if (!(*text = fr_malloc(n + 1))) return FR_ENOMEM;
        memcpy(*text, r->echo[sq->prompt], n);
        (*text)[n] = 0;
        *len = n;
    }
    while (sq->finish == FR_FINISH_NONE) {
        fr_gen_out o;
        if ((rc = fr_gen_wait(sq->g, WAIT_SLICE_MS, &o))) break;
        record(r, sq, &o);
        if (sq->finish == FR_FINISH_ERROR) {
            rc = o.error ? o.error : FR_EINTERNAL;
            if (o.error_msg) fr_errf(rc, "generation failed: %s", o.error_msg);
        }
        if (o.len) {
            char *t = fr_realloc(*text, *len + o.len + 1);
            if (!t) rc = FR_ENOMEM;
            else {
                memcpy(t + *len, o.text, o.len);
                *len += o.len;
                t[*len] = 0;
                *text = t;
            }
        }
        if (o.n_probs) {
            fr_gen_prob *p = fr_realloc(*probs, (size_t)(*n_probs + o.n_probs) * sizeof *p);
            if (!p) rc = FR_ENOMEM;
            else {
                memcpy(p + *n_probs, o.probs, (size_t)o.n_probs * sizeof *p);
                *n_probs += o.n_probs;
                *probs = p;
            }
        }
        fr_gen_out_free(&o);
        if (rc) break;
        if (sq->finish == FR_FINISH_NONE && fr__req_gone(rq, 0)) cancel_all(r);
    }
    return rc;
}

/* Wait for the whole answer in this thread. */
static int collect(gen_run *r) {
    json_t *choices = json_array();
    int rc = choices ? 0 : FR_ENOMEM;
    for (int32_t i = 0; i < r->n_seqs && rc == 0; i++) {
        char *text;
        size_t len;
        fr_gen_prob *probs;
        int32_t n_probs;
        gen_seq *sq = &r->seqs[i];
        if ((rc = collect_seq(r, sq, &text, &len, &probs, &n_probs)) == 0)
            json_array_append_new(choices, choice(r, sq, text, len, probs, n_probs, sq->finish, false));
        fr_free(text);
        fr_free(probs);
    }
    if (rc) {
        cancel_all(r);
        json_decref(choices);
        return rc;
    }
    json_t *body = envelope(r, false, choices);
    if (body) json_object_set_new(body, "usage", usage_json(r));
    if (body && r->hk && r->hk->body) body = r->hk->body(r->hk->ud, body);
    return fr__reply_json(r->rq, 200, body);
}

/* Tools for this model's family: the grammar of tool_choice (required or
 * a named function; it takes the place of a response_format's) and, for a
 * stream, each choice's reader of its calls. */
static int tools_prepare(gen_run *r, int32_t n_seqs) {
    if (!fr__tools_active(r->q)) return 0;
    r->tools = true;
    int rc = fr__tools_grammar(r->rq, r->q, r->lm->chat_kind, &r->tool_grammar);
    if (!rc && r->tool_grammar) {
        fr_grammar_unref(r->gram);
        r->gram = NULL;
        if ((rc = fr_grammar_parse(r->tool_grammar, strlen(r->tool_grammar), &r->gram)) && rc != FR_ENOMEM)
            rc = fr_errf(FR_EINTERNAL, "the tools' grammar does not compile: %s", fr_errdetail());
    }
    if (r->q->stream) r->n_tp = n_seqs;
    for (int32_t i = 0; !rc && r->q->stream && i < n_seqs; i++)
        rc = fr__tool_parser_create(r->q->tools, r->lm->chat_kind, &r->seqs[i].tp);
    return rc;
}

/* The request's "timeout", else the server's --request-timeout. */
static double deadline_of(const fr_req *rq, const fr_gen_req *q) {
    double t = q->timeout_s > 0 ? q->timeout_s
               : rq->srv->cfg.request_timeout_ms > 0 ? (double)rq->srv->cfg.request_timeout_ms / 1e3 : 0;
    return t > 0 ? fr_now_s() + t : 0;
}

/* Prompt k's text for echo: the client's string, or its tokens' text. */
static int echo_text(gen_run *r, int32_t k, const int32_t *ids, int32_t n) {
    const fr_gen_req *q = r->q;
    const char *text = q->n_prompts ? q->prompts[k] : q->prompt;
    if (text) {
        r->echo[k] = text;
        r->echo_len[k] = strlen(text);
        return 0;
    }
    const fr_vocab *v = fr_model_vocab(r->lm->model);
    char buf[256];
    size_t len = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t w = fr_token_to_piece(v, ids[i], false, buf, sizeof buf);
        len += w < sizeof buf ? w : 0;
    }
    char *t = fr__req_alloc(r->rq, len + 1), *p = t;
    if (!t) return FR_ENOMEM;
    for (int32_t i = 0; i < n; i++) {
        size_t w = fr_token_to_piece(v, ids[i], false, buf, sizeof buf);
        if (w < sizeof buf) {
            memcpy(p, buf, w);
            p += w;
        }
    }
    *p = 0;
    r->echo[k] = t;
    r->echo_len[k] = len;
    return 0;
}

static int run(fr_req *rq, const fr_gen_req *q, gen_run *r) {
    fr__req_set_model(rq, q->model);
    r->q = q;
    r->created = (long)time(NULL);
    fr__gen_new_id(q->kind == FR_GEN_CHAT ? "chatcmpl" : "cmpl", r->id, sizeof r->id);

    int rc;
    bool chat = q->kind == FR_GEN_CHAT;
    if (q->grammar && (rc = fr__gen_compile_grammar(rq, q, &r->gram))) {
        finish_run(r);
        return rc;
    }
    if (!r->h && (rc = fr__models_acquire(rq, q->model, q->keep_alive_ms, chat ? FR_CAP_CHAT : FR_CAP_COMPLETION,
                                          chat ? "chat completions" : "text completions", &r->h)))
        return rc;
    r->lm = fr_handle_obj(r->h);
    fr__gen_fingerprint(r->lm->file_tag, r->fp);

    /* n choices for each prompt, in that order */
    int32_t n_prompts = q->n_prompts > 0 ? q->n_prompts : 1, n = q->n > 1 ? q->n : 1;
    int32_t slots = fr_sched_n_slots(r->lm->sched), n_ctx = fr_sched_n_ctx(r->lm->sched);
    if (n > slots) {
        finish_run(r);
        return fr__reply_error(rq, 400, "invalid_value", "n",
                               "n is %d; model '%.128s' generates at most %d sequences at once (its "
                               "parallel slots)", (int)n, q->model, (int)slots);
    }
    int32_t **ids = fr__req_alloc(rq, (size_t)n_prompts * sizeof *ids);
    int32_t *n_ids = fr__req_alloc(rq, (size_t)n_prompts * sizeof *n_ids);
    r->seqs = fr__req_alloc(rq, (size_t)n_prompts * (size_t)n * sizeof *r->seqs);
    r->echo = fr__req_alloc(rq, (size_t)n_prompts * sizeof *r->echo);
    r->echo_len = fr__req_alloc(rq, (size_t)n_prompts * sizeof *r->echo_len);
    fr_gen **gens = fr__req_alloc(rq, (size_t)n * sizeof *gens);
    if (!ids || !n_ids || !r->seqs || !r->echo || !r->echo_len || !gens) {
        finish_run(r);
        return FR_ENOMEM;
    }
    memset(r->seqs, 0, (size_t)n_prompts * (size_t)n * sizeof *r->seqs);
    r->p_ids = ids;
    for (int32_t k = 0; k < n_prompts; k++) {
        if ((rc = build_prompt(rq, q, r->lm, k, &ids[k], &n_ids[k])) ||
            (q->echo && (rc = echo_text(r, k, ids[k], n_ids[k])))) {
            finish_run(r);
            return rc;
        }
        if (n_ids[k] >= n_ctx) {
            finish_run(r);
            return fr__gen_too_long(rq, chat, n_ctx, n_ids[k]);
        }
        r->n_prompt += n_ids[k];
    }
    if ((rc = tools_prepare(r, n_prompts * n))) {
        finish_run(r);
        return rc;
    }
    int32_t nv = fr_vocab_n_tokens(fr_model_vocab(r->lm->model));
    for (int32_t i = 0; i < q->n_bias; i++)
        if (q->bias_ids[i] >= nv) {
            finish_run(r);
            return fr__reply_error(rq, 400, "invalid_value", "logit_bias",
                                   "logit_bias: %d is not a token of this model (%d tokens)",
                                   (int)q->bias_ids[i], (int)nv);
        }
    bool early_release = !q->logprobs;
    atomic_init(&r->ends_left, n_prompts * n);
    for (int32_t k = 0; k < n_prompts; k++) {
        fr_gen_params gp = {
            .prompt = ids[k], .n_prompt = n_ids[k],
            .max_tokens = q->max_tokens > 0 ? q->max_tokens : n_ctx - n_ids[k],
            .sampling = q->sp, .bias_ids = q->bias_ids, .bias = q->bias, .n_bias = q->n_bias,
            .stop = q->stop, .n_stop = q->n_stop, .ignore_eos = q->ignore_eos,
            .n_probs = q->logprobs ? (q->top_logprobs > 0 ? q->top_logprobs : 1) : 0,
            .prompt_logprobs = q->echo && q->logprobs,
            .deadline = deadline_of(rq, q), .grammar = r->gram,
            .on_end = early_release ? on_end : NULL, .on_end_ud = r,
        };
        double retry = 0;
        if ((rc = fr_sched_submit_n(r->lm->sched, &gp, n, gens, &retry))) {
            cancel_all(r);
            /* the handle goes with the generations, not by on_end halfway */
            for (int32_t i = 0; i < r->n_seqs; i++) fr_gen_release(r->seqs[i].g), r->seqs[i].g = NULL;
            finish_run(r);
            if (rc == FR_EBUSY) {
                fr__req_set_retry_after(rq, retry);
                count_shed(rq, "queue_full");
            }
            return fr__reply_err(rq, rc, NULL);
        }
        for (int32_t j = 0; j < n; j++) {
            gen_seq *sq = &r->seqs[r->n_seqs];
            sq->g = gens[j];
            sq->index = r->n_seqs++;
            sq->prompt = k;
        }
    }
    fr_grammar_unref(r->gram);  /* the generations hold their own references */
    r->gram = NULL;
    fr__req_on_gone(rq, on_gone, r);
    if (q->stream) {
        if ((rc = r->hk && r->hk->ndjson ? fr__reply_ndjson(rq, pull, fin, r) : fr__reply_sse(rq, pull, fin, r)) < 0)
            finish_run(r);
        else r->streaming = true;
        return rc;
    }
    rc = collect(r);
    finish_run(r);
    return rc;
}

int fr__gen_run(fr_req *rq, const fr_gen_req *q, fr_handle *h, const fr_gen_hooks *hk) {
    gen_run *r = fr__req_alloc(rq, sizeof *r);
    if (!r) {
        if (h) fr_manager_release(h);
        if (hk && hk->fin) hk->fin(hk->ud);
        return FR_ENOMEM;
    }
    memset(r, 0, sizeof *r);
    r->rq = rq;
    r->h = h;
    r->hk = hk;
    int rc = run(rq, q, r);
    fr_grammar_unref(r->gram);  /* when run returned before submitting */
    r->gram = NULL;
    if (!r->streaming) hook_fin(r);     /* every other way out ends here */
    return rc;
}

static int h_generate(fr_req *rq, fr_gen_kind kind) {
    fr_gen_req *q = fr__req_alloc(rq, sizeof *q);
    if (!q) return FR_ENOMEM;
    int rc = parse(rq, kind, q);
    return rc ? rc : fr__gen_run(rq, q, NULL, NULL);
}

int fr__h_chat_completions(fr_req *rq) { return h_generate(rq, FR_GEN_CHAT); }
int fr__h_completions(fr_req *rq) { return h_generate(rq, FR_GEN_TEXT); }
