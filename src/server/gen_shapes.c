/*
 * gen_shapes.c — the parts of OpenAI's request and reply shapes that
 * gen.c's two routes share and that are not generation itself: several
 * prompts, "n" and "echo", ids, system_fingerprint, unknown fields, and
 * the over-long prompt's error.
 *
 * Prompts.  POST /v1/completions takes "prompt" as a string, an array of
 * token ids (one prompt), an array of strings or an array of token-id
 * arrays (one prompt each, answered as one choice each, "index" in order:
 * prompt i's choices are i·n .. i·n + n-1, as OpenAI numbers them).
 * LangChain's generate() sends the array of strings.
 *
 * Ids.  "chatcmpl-" / "cmpl-" and 24 random characters (getrandom), so
 * they are unique across restarts — a counter from 0 would repeat.
 *
 * system_fingerprint.  "fp_" and 10 hex digits of a hash of the build's
 * version (FINGERPRINT_VERSION below: change it when the generation code
 * changes what a seed gives) and the model file's identity (its file tag:
 * path, size, mtime).  The same build and file give the same
 * fingerprint, as OpenAI's means "same seed, same backend, same output".
 *
 * Unknown fields are ignored, as OpenAI ignores them, and named in a
 * debug-level log line (--log-level debug) so that a client sending a
 * field frugal does not know can be found out.
 *
 * An over-long prompt is a 400 context_length_exceeded with OpenAI's
 * message ("This model's maximum context length is N tokens. However,
 * your messages resulted in M tokens. ..."), param "messages" or
 * "prompt" — not a 413, which OpenAI's clients do not recognise.
 */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/err.h"
#include "base/log.h"
#include "server/gen_shapes.h"

#define FINGERPRINT_VERSION "frugal-gen-1"
#define MAX_PROMPTS 256
#define MAX_N 128

void fr__gen_new_id(const char *prefix, char *out, size_t cap) {
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char b[24];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {   /* never on Linux >= 3.17; still unique enough */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^ (uint64_t)(uintptr_t)out;
        for (size_t i = 0; i < sizeof b; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            b[i] = (unsigned char)x;
        }
    }
    char tail[sizeof b + 1];
    for (size_t i = 0; i < sizeof b; i++) tail[i] = alnum[b[i] % (sizeof alnum - 1)];
    tail[sizeof b] = 0;
    snprintf(out, cap, "%s-%s", prefix, tail);
}

void fr__gen_fingerprint(uint64_t file_tag, char out[FR_GEN_FP_LEN]) {
    uint64_t h = 0xcbf29ce484222325ull;     /* FNV-1a */
    for (const char *p = FINGERPRINT_VERSION; *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    for (int i = 0; i < 8; i++) h = (h ^ ((file_tag >> (8 * i)) & 0xff)) * 0x100000001b3ull;
    snprintf(out, FR_GEN_FP_LEN, "fp_%010llx", (unsigned long long)(h & 0xffffffffffull));
}

/* The fields the two routes read (or knowingly ignore); the others are
 * logged.  Fields another part of frugal reads belong here too. */
static const char *const known[] = {
    "model", "messages", "prompt", "n", "max_tokens", "max_completion_tokens", "stream",
    "stream_options", "temperature", "top_p", "min_p", "top_k", "repeat_penalty", "repeat_last_n",
    "presence_penalty", "frequency_penalty", "seed", "stop", "logit_bias", "logprobs", "top_logprobs",
    "ignore_eos", "keep_alive", "timeout", "echo", "user", "grammar", "response_format", "tools",
    "tool_choice", "parallel_tool_calls", "json_schema", NULL};

void fr__gen_log_unknown(const fr_body *b, const char *route) {
    const char *key;
    json_t *v;
    json_object_foreach(b->obj, key, v) {
        bool k = false;
        for (size_t i = 0; known[i] && !k; i++) k = strcmp(known[i], key) == 0;
        if (!k) FR_DEBUG("%s: request %s: ignoring the unknown field '%.64s'", route, b->rq->id, key);
    }
}

/* One prompt of token ids at a (an array of integers) into *ids, *n. */
static int token_prompt(fr_req *rq, json_t *a, const char *param, int32_t **ids, int32_t *n) {
    size_t len = json_array_size(a);
    if (len == 0)
        return fr__reply_error(rq, 400, "invalid_value", "prompt", "%s must not be empty", param);
    if (len > INT32_MAX / 2)
        return fr__reply_error(rq, 400, "context_length_exceeded", "prompt", "%s has %zu tokens", param, len);
    if (!(*ids = fr__req_alloc(rq, len * sizeof **ids))) return FR_ENOMEM;
    for (size_t i = 0; i < len; i++) {
        json_t *t = json_array_get(a, i);
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) > INT32_MAX)
            return fr__reply_error(rq, 400, "invalid_value", "prompt",
                                   "%s[%zu] must be a token id (a non-negative integer)", param, i);
        (*ids)[i] = (int32_t)json_integer_value(t);
    }
    *n = (int32_t)len;
    return 0;
}

int fr__gen_parse_prompts(const fr_body *b, fr_gen_req *q) {
    fr_req *rq = b->rq;
    json_t *p = json_object_get(b->obj, "prompt");
    if (!p) return fr__reply_error(rq, 400, "missing_field", "prompt", "prompt is required");
    if (json_is_string(p)) {
        q->prompt = json_string_value(p);
        return 0;
    }
    const char *must = "prompt must be a string, an array of strings, an array of token ids or an "
                       "array of token-id arrays";
    size_t n = json_array_size(p);
    if (!json_is_array(p) || n == 0) return fr__reply_error(rq, 400, "invalid_value", "prompt", "%s", must);
    json_t *first = json_array_get(p, 0);
    if (json_is_integer(first)) return token_prompt(rq, p, "prompt", &q->prompt_ids, &q->n_prompt_ids);
    if (n > MAX_PROMPTS)
        return fr__reply_error(rq, 400, "invalid_value", "prompt", "prompt has %zu prompts, at most %d", n,
                               MAX_PROMPTS);
    q->prompts = fr__req_alloc(rq, n * sizeof *q->prompts);
    q->prompts_ids = fr__req_alloc(rq, n * sizeof *q->prompts_ids);
    q->prompts_n_ids = fr__req_alloc(rq, n * sizeof *q->prompts_n_ids);
    if (!q->prompts || !q->prompts_ids || !q->prompts_n_ids) return FR_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(p, i);
        char param[32];
        snprintf(param, sizeof param, "prompt[%zu]", i);
        q->prompts[i] = NULL;
        q->prompts_ids[i] = NULL;
        q->prompts_n_ids[i] = 0;
        if (json_is_string(e)) q->prompts[i] = json_string_value(e);
        else if (json_is_array(e)) {
            int rc = token_prompt(rq, e, param, &q->prompts_ids[i], &q->prompts_n_ids[i]);
            if (rc) return rc;
        } else {
            return fr__reply_error(rq, 400, "invalid_value", "prompt",
                                   "%s must be a string or an array of token ids (%s)", param, must);
        }
    }
    q->n_prompts = (int32_t)n;
    if (n == 1) {   /* one prompt after all: the single form */
        q->prompt = q->prompts[0];
        q->prompt_ids = q->prompts_ids[0];
        q->n_prompt_ids = q->prompts_n_ids[0];
        q->n_prompts = 0;
    }
    return 0;
}

int fr__gen_parse_shapes(const fr_body *b, fr_gen_req *q) {
    int rc;
    q->n = 1;
    q->echo = false;
    if ((rc = fr__body_i32(b, "n", 1, MAX_N, &q->n, NULL))) return rc;
    if (q->kind == FR_GEN_TEXT && (rc = fr__body_bool(b, "echo", &q->echo))) return rc;
    return 0;
}

int fr__gen_too_long(fr_req *rq, bool chat, int32_t n_ctx, int32_t n_tokens) {
    const char *what = chat ? "messages" : "prompt";
    return fr__reply_error(rq, 400, "context_length_exceeded", what,
                           "This model's maximum context length is %d tokens. However, your %s "
                           "resulted in %d tokens. Please reduce the length of the %s.",
                           (int)n_ctx, what, (int)n_tokens, what);
}
