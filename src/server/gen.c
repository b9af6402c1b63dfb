/*
 * gen.c — POST /v1/chat/completions and POST /v1/completions (API.md,
 * OpenAI's shapes).
 *
 * A request goes: parse and validate the body into an fr_gen_req
 * (server_int.h; body.c's getters answer the 400 naming the field) →
 * acquire the model (fr__models_acquire: 404 unknown, 400 when it does
 * not do the route's kind, 503 when it cannot be loaded now) → build the
 * prompt (below) → 413 if it leaves no room in the context → submit to
 * the model's scheduler (503 with Retry-After when its slots and queue
 * are full) → either wait for the whole answer in this connection's
 * thread, or answer with an event stream whose pull function hands over
 * each piece of text as it comes.  A client that goes away cancels its request at the next
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
 * token).  A prompt of token ids is taken as it is.
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
#include "server/server_int.h"

#define MAX_MESSAGES 1024
#define WAIT_SLICE_MS 50

/* A request in progress (arena memory), shared with the stream. */
typedef struct gen_run {
    fr_req *rq;
    const fr_gen_req *q;
    fr_handle *h;
    fr_loaded_model *lm;
    fr_gen *g;
    char id[40];
    long created;
    bool sent_role;             /* chat stream: the first chunk went */
    bool done;
    int32_t n_prompt, n_gen;
    size_t text_offset;         /* text completions' logprobs.text_offset */
    double queue_ms, ttft_ms, total_ms;
    int finish;                 /* the last reported */
    const fr_gen_hooks *hk;     /* another handler's (fr__gen_run), or NULL */
    bool hk_done;               /* hk->fin has run */
    bool streaming;             /* the stream's fin owns the end of the request */
    bool tools;                 /* the reply is read for tool calls (tools.c) */
    int n_calls;                /* the calls read so far */
    fr_tool_parser *tp;         /* a stream's reader of them */
    const char *tool_grammar;   /* tool_choice's grammar for this model's family, or NULL */
    fr_grammar *gram;           /* q->grammar compiled, until submitted */
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
        if (!json_is_null(c) || strcmp(role, "assistant") || !json_array_size(json_object_get(mi, "tool_calls"))) {
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

/* prompt: a string, a one-string array, or an array of token ids. */
static int parse_prompt(const fr_body *b, fr_gen_req *q) {
    fr_req *rq = b->rq;
    json_t *p = json_object_get(b->obj, "prompt");
    if (!p) return fr__reply_error(rq, 400, "missing_field", "prompt", "prompt is required");
    if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0)))
        p = json_array_get(p, 0);
    if (json_is_string(p)) {
        q->prompt = json_string_value(p);
        return 0;
    }
    size_t n = json_array_size(p);
    if (!json_is_array(p) || n == 0)
        return fr__reply_error(rq, 400, "invalid_value", "prompt",
                               "prompt must be a string or a non-empty array of token ids");
    if (n > INT32_MAX / 2) return fr__reply_error(rq, 413, "context_length_exceeded", "prompt",
                                                  "prompt has %zu tokens", n);
    q->prompt_ids = fr__req_alloc(rq, n * sizeof *q->prompt_ids);
    if (!q->prompt_ids) return FR_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(p, i);
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) > INT32_MAX)
            return fr__reply_error(rq, 400, "invalid_value", "prompt",
                                   "prompt[%zu] must be a token id (a non-negative integer); one "
                                   "prompt per request", i);
        q->prompt_ids[i] = (int32_t)json_integer_value(t);
    }
    q->n_prompt_ids = (int32_t)n;
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

    long long n = 1, seed = -1;
    bool have;
    int rc;
    if ((rc = fr__body_int(b, "n", 1, 1, &n, NULL))) return rc;
    if ((rc = fr__body_i32(b, "max_tokens", 1, 1 << 20, &q->max_tokens, &have))) return rc;
    if (!have && (rc = fr__body_i32(b, "max_completion_tokens", 1, 1 << 20, &q->max_tokens, NULL))) return rc;
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
        (rc = kind == FR_GEN_CHAT ? parse_messages(&b, q) : parse_prompt(&b, q)) ||
        (rc = fr__gen_parse_options(&b, true, q)))
        return rc;
    return kind == FR_GEN_CHAT ? fr__tools_parse(&b, q) : 0;
}

/* ---- prompt ---- */

/* Tokenize the request's prompt for lm: *ids from the request's arena. */
static int build_prompt(fr_req *rq, const fr_gen_req *q, const fr_loaded_model *lm, int32_t **ids, int32_t *n) {
    const fr_vocab *v = fr_model_vocab(lm->model);
    if (q->prompt_ids) {
        int32_t nv = fr_vocab_n_tokens(v);
        for (int32_t i = 0; i < q->n_prompt_ids; i++)
            if (q->prompt_ids[i] >= nv)
                return fr__reply_error(rq, 400, "invalid_value", "prompt",
                                       "prompt[%d] = %d is not a token of this model (%d tokens)",
                                       (int)i, (int)q->prompt_ids[i], (int)nv);
        *ids = q->prompt_ids;
        *n = q->n_prompt_ids;
        return 0;
    }
    int32_t *tok = NULL;
    size_t nt = 0, n_defs = 0;
    const char *const *defs = NULL;
    int rc = q->kind == FR_GEN_CHAT ? fr__tools_defs(rq, q, lm->chat_kind, &defs, &n_defs) : 0;
    if (rc) return rc;
    rc = q->kind == FR_GEN_CHAT
             ? fr_chat_tokenize_tools(v, lm->chat_kind, q->msgs, q->n_msgs, defs, n_defs, true, &tok, &nt)
             : fr_tokenize(v, q->prompt, strlen(q->prompt), true, true, &tok, &nt);
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

/* The reply's finish_reason: "tool_calls" when the answer was calls. */
static const char *finish_of(const gen_run *r, int finish) {
    return finish == FR_FINISH_STOP && r->n_calls ? "tool_calls" : finish_reason(finish);
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

/* Legacy completions logprobs: parallel arrays, appended to obj's. */
static void text_logprobs(gen_run *r, const fr_gen_prob *probs, int32_t n, json_t *obj) {
    const fr_vocab *v = fr_model_vocab(r->lm->model);
    char buf[256];
    json_t *tokens = json_object_get(obj, "tokens"), *lps = json_object_get(obj, "token_logprobs");
    json_t *tops = json_object_get(obj, "top_logprobs"), *offs = json_object_get(obj, "text_offset");
    for (int32_t i = 0; i < n; i++) {
        size_t len;
        json_array_append_new(tokens, token_str(v, probs[i].id, buf, sizeof buf, &len));
        json_array_append_new(lps, json_real(probs[i].logprob));
        json_array_append_new(offs, json_integer((json_int_t)r->text_offset));
        r->text_offset += len;
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

static json_t *choice(gen_run *r, const char *text, size_t len, const fr_gen_prob *probs, int32_t n_probs,
                      int finish, bool delta);

/* A non-streamed answer read for tool calls: m's content and tool_calls. */
static void tool_message(gen_run *r, const char *text, size_t len, json_t *m) {
    if (fr__tools_message_json(r->q->tools, r->lm->chat_kind, text ? text : "", len, m, &r->n_calls))
        FR_WARN("%s: no memory to read the answer for tool calls", r->id);
}

/* A stream read for tool calls: the choices of what o brings (a first
 * one with the role, then one per delta), appended to choices. */
static int tool_chunks(gen_run *r, const fr_gen_out *o, json_t *choices) {
    json_t *deltas = json_array();
    if (!deltas) return FR_ENOMEM;
    int rc = fr__tool_parser_push(r->tp, o->text, o->len, o->finish != FR_FINISH_NONE, deltas);
    r->n_calls = fr__tool_parser_calls(r->tp);
    if (!r->sent_role) json_array_append_new(choices, choice(r, NULL, 0, NULL, 0, FR_FINISH_NONE, true));
    for (size_t i = 0; !rc && i < json_array_size(deltas); i++)
        json_array_append_new(choices, json_pack("{s:i, s:O, s:n, s:n}", "index", 0, "delta",
                                                 json_array_get(deltas, i), "logprobs", "finish_reason"));
    json_decref(deltas);
    return rc;
}

/* One choice object: chat (message or delta) or text. */
static json_t *choice(gen_run *r, const char *text, size_t len, const fr_gen_prob *probs, int32_t n_probs,
                      int finish, bool delta) {
    json_t *c = json_pack("{s:i}", "index", 0);
    json_t *lp = json_null();
    if (r->q->logprobs && (n_probs || !delta)) {
        if (r->q->kind == FR_GEN_CHAT) {
            json_t *content = json_array();
            chat_logprobs(r, probs, n_probs, content);
            lp = json_pack("{s:o}", "content", content);
        } else {
            lp = new_text_logprobs();
            text_logprobs(r, probs, n_probs, lp);
        }
    }
    if (r->q->kind == FR_GEN_CHAT) {
        json_t *m = json_object();
        if (!delta || !r->sent_role) json_object_set_new(m, "role", json_string("assistant"));
        if (!delta || len || !r->sent_role)
            json_object_set_new(m, "content", fr__json_text(text ? text : "", len));
        if (!delta && r->tools) tool_message(r, text, len, m);
        json_object_set_new(c, delta ? "delta" : "message", m);
        r->sent_role = true;
    } else {
        json_object_set_new(c, "text", fr__json_text(text ? text : "", len));
    }
    json_object_set_new(c, "logprobs", lp);
    json_object_set_new(c, "finish_reason",
                        finish != FR_FINISH_NONE ? json_string(finish_of(r, finish)) : json_null());
    return c;
}

static json_t *envelope(const gen_run *r, bool chunk, json_t *choices) {
    const char *object = r->q->kind == FR_GEN_CHAT ? (chunk ? "chat.completion.chunk" : "chat.completion")
                                                 : "text_completion";
    return json_pack("{s:s, s:s, s:I, s:s, s:n, s:o}", "id", r->id, "object", object, "created",
                     (json_int_t)r->created, "model", r->q->model, "system_fingerprint", "choices",
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

/* The generation ended (the scheduler's thread, with the request's lock
 * held): give the model back now rather than when the client has read
 * the answer.  What is left to send waits in the fr_gen, which outlives
 * the model, so a client that does not read holds no model.  Not armed
 * for logprobs, whose token texts need the model's vocabulary until the
 * last chunk is written. */
static void on_end(void *ud) {
    gen_run *r = ud;
    fr_handle *h = r->h;
    r->h = NULL;
    fr_manager_release_async(h);
}

static void on_gone(void *ud) {
    gen_run *r = ud;
    if (r->g) fr_gen_cancel(r->g);
}

static void record(gen_run *r, const fr_gen_out *o) {
    r->n_gen = o->n_gen;
    r->queue_ms = o->queue_ms;
    r->ttft_ms = o->ttft_ms;
    r->total_ms = o->total_ms;
    r->finish = o->finish;
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

/* The end of the request: the generation is let go first (which disarms
 * on_end, or waits for it), then the handle if on_end did not take it. */
static void finish_run(gen_run *r) {
    hook_fin(r);
    fr__tool_parser_destroy(r->tp);
    r->tp = NULL;
    if (r->g) {
        if (r->finish != FR_FINISH_NONE) observe(r, r->finish);
        fr_gen_release(r->g);
        r->g = NULL;
    }
    if (r->h) {
        fr_manager_release(r->h);
        r->h = NULL;
    }
}

/* Streaming: hand over what the generation has, as chunks. */
static int pull(fr_sse *st, void *ud) {
    gen_run *r = ud;
    for (;;) {
        fr_gen_out o;
        int rc = fr_gen_wait(r->g, WAIT_SLICE_MS, &o);
        if (rc) return rc;
        record(r, &o);
        int finish = o.finish;
        if (finish == FR_FINISH_ERROR) {
            int err = o.error;
            fr_gen_out_free(&o);
            const char *msg = o.error_msg ? o.error_msg : fr_strerror(err ? err : FR_EINTERNAL);
            rc = fr_errf(err ? err : FR_EINTERNAL, "generation failed: %s", msg);
            fr_gen_out_free(&o);
            return rc;
        }
        if (o.len || o.n_probs || finish != FR_FINISH_NONE) {
            json_t *choices = json_array();
            if (r->tp) {
                if ((rc = tool_chunks(r, &o, choices))) {
                    fr_gen_out_free(&o);
                    json_decref(choices);
                    return rc;
                }
            } else if (o.len || o.n_probs || (r->q->kind == FR_GEN_CHAT && !r->sent_role))
                json_array_append_new(choices, choice(r, o.text, o.len, o.probs, o.n_probs,
                                                      FR_FINISH_NONE, true));
            if (finish != FR_FINISH_NONE)
                json_array_append_new(choices, choice(r, NULL, 0, NULL, 0, finish, true));
            fr_gen_out_free(&o);
            /* one choice per event: the text first, then the finish */
            for (size_t i = 0; i < json_array_size(choices); i++) {
                json_t *ev = envelope(r, true, json_pack("[O]", json_array_get(choices, i)));
                if (r->q->include_usage) json_object_set_new(ev, "usage", json_null());
                if ((rc = send_chunk(st, r, ev))) {
                    json_decref(choices);
                    return rc;
                }
            }
            json_decref(choices);
            if (finish != FR_FINISH_NONE) {
                if (r->q->include_usage) {
                    json_t *ev = envelope(r, true, json_array());
                    json_object_set_new(ev, "usage", usage_json(r));
                    if ((rc = fr__sse_json(st, ev))) return rc;
                }
                if (r->hk && r->hk->last_event) {
                    json_t *ev = envelope(r, true, json_array());
                    if (ev) json_object_set_new(ev, "usage", usage_json(r));
                    if ((ev = r->hk->last_event(r->hk->ud, ev)) && (rc = fr__sse_json(st, ev))) return rc;
                }
                r->done = true;
                return FR_SSE_END;
            }
            return FR_SSE_MORE;
        }
        fr_gen_out_free(&o);
        if (fr__sse_gone(st, 0)) {
            fr_gen_cancel(r->g);
            return FR_SSE_END;
        }
    }
}

static void fin(void *ud, bool completed) {
    gen_run *r = ud;
    (void)completed;
    if (r->g && r->finish == FR_FINISH_NONE) {
        /* The stream ended before its finish was read (the client went
         * away): stop the generation and count it as what it became, so
         * that it is not missing from the metrics. */
        fr_gen_cancel(r->g);
        fr_gen_out o;
        if (fr_gen_wait(r->g, 0, &o) == 0) {
            record(r, &o);
            fr_gen_out_free(&o);
        }
        if (r->finish == FR_FINISH_NONE) r->finish = FR_FINISH_CANCELLED;
    }
    finish_run(r);
}

/* Wait for the whole answer in this thread. */
static int collect(gen_run *r) {
    fr_req *rq = r->rq;
    char *text = NULL;
    size_t len = 0;
    fr_gen_prob *probs = NULL;
    int32_t n_probs = 0;
    int finish = FR_FINISH_NONE, rc = 0;
    while (finish == FR_FINISH_NONE) {
        fr_gen_out o;
        if ((rc = fr_gen_wait(r->g, WAIT_SLICE_MS, &o))) break;
        record(r, &o);
        finish = o.finish;
        if (finish == FR_FINISH_ERROR) {
            rc = o.error ? o.error : FR_EINTERNAL;
            if (o.error_msg) fr_errf(rc, "generation failed: %s", o.error_msg);
        }
        if (o.len) {
            char *t = fr_realloc(text, len + o.len + 1);
            if (!t) rc = FR_ENOMEM;
            else {
                memcpy(t + len, o.text, o.len);
                len += o.len;
                t[len] = 0;
                text = t;
            }
        }
        if (o.n_probs) {
            fr_gen_prob *p = fr_realloc(probs, (size_t)(n_probs + o.n_probs) * sizeof *p);
            if (!p) rc = FR_ENOMEM;
            else {
                memcpy(p + n_probs, o.probs, (size_t)o.n_probs * sizeof *p);
                n_probs += o.n_probs;
                probs = p;
            }
        }
        fr_gen_out_free(&o);
        if (rc) break;
        if (finish == FR_FINISH_NONE && fr__req_gone(rq, 0)) fr_gen_cancel(r->g);
    }
    if (rc == 0) {
        json_t *body = envelope(r, false, json_pack("[o]", choice(r, text, len, probs, n_probs,
                                                                  finish, false)));
        json_object_del(body, "system_fingerprint");
        json_object_set_new(body, "usage", usage_json(r));
        if (body && r->hk && r->hk->body) body = r->hk->body(r->hk->ud, body);
        rc = fr__reply_json(rq, 200, body);
    }
    fr_free(text);
    fr_free(probs);
    return rc;
}

/* Tools for this model's family: the grammar of tool_choice (required or
 * a named function) and, for a stream, the reader of its calls. */
static int tools_prepare(gen_run *r) {
    if (!fr__tools_active(r->q)) return 0;
    r->tools = true;
    int rc = fr__tools_grammar(r->rq, r->q, r->lm->chat_kind, &r->tool_grammar);
    if (!rc && r->tool_grammar) {   /* it takes the place of a response_format's */
        fr_grammar_unref(r->gram);
        r->gram = NULL;
        if ((rc = fr_grammar_parse(r->tool_grammar, strlen(r->tool_grammar), &r->gram)) && rc != FR_ENOMEM)
            rc = fr_errf(FR_EINTERNAL, "the tools' grammar does not compile: %s", fr_errdetail());
    }
    if (!rc && r->q->stream) rc = fr__tool_parser_create(r->q->tools, r->lm->chat_kind, &r->tp);
    return rc;
}

/* The request's "timeout", else the server's --request-timeout. */
static double deadline_of(const fr_req *rq, const fr_gen_req *q) {
    double t = q->timeout_s > 0 ? q->timeout_s
               : rq->srv->cfg.request_timeout_ms > 0 ? (double)rq->srv->cfg.request_timeout_ms / 1e3 : 0;
    return t > 0 ? fr_now_s() + t : 0;
}

static int run(fr_req *rq, const fr_gen_req *q, gen_run *r) {
    fr__req_set_model(rq, q->model);
    r->q = q;
    r->created = (long)time(NULL);
    snprintf(r->id, sizeof r->id, "%s-%s", q->kind == FR_GEN_CHAT ? "chatcmpl" : "cmpl", rq->id);

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

    int32_t *ids = NULL, n_ids = 0;
    if ((rc = build_prompt(rq, q, r->lm, &ids, &n_ids))) {
        finish_run(r);
        return rc;
    }
    r->n_prompt = n_ids;
    if ((rc = tools_prepare(r))) {
        finish_run(r);
        return rc;
    }
    int32_t n_ctx = fr_sched_n_ctx(r->lm->sched);
    if (n_ids >= n_ctx) {
        finish_run(r);
        return fr__reply_error(rq, 413, "context_length_exceeded", chat ? "messages" : "prompt",
                               "the prompt is %d tokens; the context of model '%.128s' holds %d "
                               "(at least one must remain for the answer)", (int)n_ids, q->model,
                               (int)n_ctx);
    }
    fr_gen_params gp = {
        .prompt = ids, .n_prompt = n_ids,
        .max_tokens = q->max_tokens > 0 ? q->max_tokens : n_ctx - n_ids,
        .sampling = q->sp, .bias_ids = q->bias_ids, .bias = q->bias, .n_bias = q->n_bias,
        .stop = q->stop, .n_stop = q->n_stop, .ignore_eos = q->ignore_eos,
        .n_probs = q->logprobs ? (q->top_logprobs > 0 ? q->top_logprobs : 1) : 0,
        .deadline = deadline_of(rq, q), .grammar = r->gram,
        .on_end = q->logprobs ? NULL : on_end, .on_end_ud = r,
    };
    int32_t nv = fr_vocab_n_tokens(fr_model_vocab(r->lm->model));
    for (int32_t i = 0; i < q->n_bias; i++)
        if (q->bias_ids[i] >= nv) {
            finish_run(r);
            return fr__reply_error(rq, 400, "invalid_value", "logit_bias",
                                   "logit_bias: %d is not a token of this model (%d tokens)",
                                   (int)q->bias_ids[i], (int)nv);
        }
    double retry = 0;
    rc = fr_sched_submit(r->lm->sched, &gp, &r->g, &retry);
    fr_grammar_unref(r->gram);  /* the generation holds its own reference */
    r->gram = NULL;
    if (rc) {
        finish_run(r);
        if (rc == FR_EBUSY) {
            fr__req_set_retry_after(rq, retry);
            count_shed(rq, "queue_full");
        }
        return fr__reply_err(rq, rc, NULL);
    }
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
