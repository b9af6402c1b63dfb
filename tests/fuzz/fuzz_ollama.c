/*
 * fuzz_ollama.c — request bodies of Ollama's routes (src/server/ollama.c),
 * through the real server, over real sockets.
 *
 * On the first input the target starts, once and in-process, the server
 * fuzz_request.c starts (--ctx 64 --parallel 2 --queue 4 --threads 1
 * --keep-alive 2s) over a scratch models directory (/tmp/fuzz_ollama.PID)
 * of links to tiny-llama-q8_0, tiny-qwen2-q8_0 and tiny-bert-q8_0 from
 * $FRUGAL_TESTDATA; without them it says why and exits 2.
 *
 * An input is one request.  Its first byte b picks it:
 *
 *   b & 7     0, 5  POST /api/generate
 *             1, 6  POST /api/chat
 *             2     POST /api/embed
 *             3     POST /api/embeddings
 *             4     POST /api/show
 *             7     GET /api/tags, /api/ps (b & 8), or /api/version (b & 16)
 *   b >> 5    generation routes: the num_predict cap (below)
 *
 * and the rest is the body, sent as it is in one HTTP/1.1 request on a
 * fresh connection.  The cap: when the body parses as a JSON object with
 * no "options", "options":{"num_predict":N} is put in after its brace (N
 * = 1, 2, 4 or 8; for b >> 5 == 7 no cap), for the reason fuzz_request.c
 * gives (a token costs 10-65 ms in the libFuzzer build).
 *
 * The response is read whole and checked:
 *   - the status is 200, 400, 404, 413 or 503 (a 500 is a bug); a 503
 *     carries Retry-After;
 *   - every other status has Ollama's error shape: exactly {"error":
 *     non-empty string}, application/json;
 *   - a 200 is a JSON object (application/json), or for the generation
 *     routes application/x-ndjson: every line one JSON object, none empty,
 *     the last one {"done": true, ...} or {"error": string}, none after it;
 *   - a generation's last object says done, and its counters stay inside
 *     the context (prompt_eval_count < 64, the sum <= 65; durations >= 0);
 *     embed has "embeddings", embeddings "embedding", show "details",
 *     tags and ps "models", version "version".
 * A failure prints the request and the response, then aborts.  The replay
 * build replays the corpus in `make replay` and checks that the counted
 * heap is back where it started at exit.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/metrics.h"
#include "manager/loader_gguf.h"
#include "manager/manager.h"
#include "sched/sched.h"
#include "server/server.h"

#include "fuzz_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_CTX 64
#define MAX_BODY (1u << 20)
#define MAX_RESP (8u << 20)
#define DEADLINE_S 30.0

#define N_MODELS 3
static const char *const model_files[N_MODELS] = {"tiny-llama-q8_0", "tiny-qwen2-q8_0", "tiny-bert-q8_0"};
static const int caps[8] = {1, 2, 4, 8, 1, 2, 4, 0};   /* 0: no cap */

#include "fuzz_models_server.h"

/* The body, with "options":{"num_predict":cap} after the brace of an
 * object that has no options (cap 0: as it is). */
static void make_ollama_body(const uint8_t *p, size_t n, int cap, buf *out) {
    json_error_t e;
    json_t *j = cap ? json_loadb((const char *)p, n, 0, &e) : NULL;
    const uint8_t *brace = json_is_object(j) ? memchr(p, '{', n) : NULL;
    if (brace && !json_object_get(j, "options")) {
        size_t at = (size_t)(brace - p) + 1;
        char ins[48];
        snprintf(ins, sizeof ins, "\"options\":{\"num_predict\":%d}%s", cap, json_object_size(j) ? "," : "");
        put(out, p, at);
        put(out, ins, strlen(ins));
        put(out, p + at, n - at);
    } else {
        put(out, p, n);
    }
    json_decref(j);
}

/* ---- checking the response ---- */

/* Exactly {"error": non-empty string}. */
static void check_ollama_error(const http_resp *r, const buf *raw) {
    json_error_t e;
    json_t *j = json_loadb(r->body.p, r->body.len, JSON_ALLOW_NUL, &e);
    const char *msg = json_string_value(json_object_get(j, "error"));
    if (!json_is_object(j) || json_object_size(j) != 1 || !msg || !*msg)
        fail("an error reply without Ollama's shape {\"error\": string}", raw);
    json_decref(j);
}

static bool is_count(json_t *v) { return json_is_integer(v) && json_integer_value(v) >= 0; }

/* A generation's last object: done, and its counters inside the context. */
static void check_done(json_t *j, const buf *raw) {
    if (!json_is_true(json_object_get(j, "done"))) fail("a generation's last object is not done", raw);
    const char *reason = json_string_value(json_object_get(j, "done_reason"));
    if (!reason) fail("a done object without done_reason", raw);
    if (!strcmp(reason, "load") || !strcmp(reason, "unload")) return;
    static const char *const keys[] = {"total_duration", "load_duration", "prompt_eval_count",
                                       "prompt_eval_duration", "eval_count", "eval_duration"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!is_count(json_object_get(j, keys[i]))) fail("a done object without its counters", raw);
    long long p = json_integer_value(json_object_get(j, "prompt_eval_count"));
    long long c = json_integer_value(json_object_get(j, "eval_count"));
    if (p < 1 || p >= N_CTX || p + c > N_CTX + 1) fail("counters outside the context", raw);
}

/* NDJSON: one object a line, the last done or an error. */
static void check_ndjson(const http_resp *r, const buf *raw) {
    const char *p = r->body.p, *stop = r->body.p + r->body.len;
    bool over = false;
    while (p < stop) {
        const char *nl = memchr(p, '\n', (size_t)(stop - p));
        if (!nl) fail("an NDJSON stream whose last line is not terminated", raw);
        size_t n = (size_t)(nl - p);
        if (n == 0) fail("an empty line in an NDJSON stream", raw);
        if (over) fail("a line after the last object", raw);
        json_error_t e;
        json_t *j = json_loadb(p, n, JSON_ALLOW_NUL, &e);
        if (!json_is_object(j)) fail_at("an NDJSON line that is not a JSON object", raw, p, n);
        json_t *err = json_object_get(j, "error");
        if (err) {
            if (!json_is_string(err) || !json_string_length(err)) fail("a stream error without its message", raw);
            over = true;
        } else if (json_is_true(json_object_get(j, "done"))) {
            check_done(j, raw);
            over = true;
        } else if (!json_is_false(json_object_get(j, "done"))) {
            fail_at("an NDJSON line without done", raw, p, n);
        }
        json_decref(j);
        p = nl + 1;
    }
    if (!over) fail("an NDJSON stream that does not end with done or an error", raw);
}

static void check(const buf *raw, int route, uint8_t b) {
    bool gen = route == 0 || route == 1 || route == 5 || route == 6;
    http_resp r = {0};
    parse_http(raw, &r);
    if (fh.verbose) fprintf(stderr, "%d %s %.200s\n", r.status, fh.cur_path, r.body.p);
    switch (r.status) {
    case 200: case 400: case 404: case 413: case 503: break;
    default: fail(r.status == 500 ? "a 500: a bug" : "a status these routes do not answer", raw);
    }
    check_retry_after(&r, raw);
    if (r.status != 200) {
        if (strncmp(r.ctype, "application/json", 16)) fail("an error reply that is not application/json", raw);
        check_ollama_error(&r, raw);
    } else if (!strncmp(r.ctype, "application/x-ndjson", 20)) {
        if (!gen) fail("an NDJSON stream from a route that does not stream", raw);
        check_ndjson(&r, raw);
    } else {
        if (strncmp(r.ctype, "application/json", 16)) fail("a 200 that is neither JSON nor NDJSON", raw);
        json_error_t e;
        json_t *j = json_loadb(r.body.p, r.body.len, JSON_ALLOW_NUL, &e);
        if (!json_is_object(j)) fail("a 200 whose body is not a JSON object", raw);
        const char *want = gen ? NULL : route == 2 ? "embeddings" : route == 3 ? "embedding"
                                      : route == 4 ? "details" : b & 16 ? "version" : "models";
        if (gen) check_done(j, raw);
        else if (!json_object_get(j, want)) fail("a 200 without the field its route answers", raw);
        json_decref(j);
    }
    free(r.body.p);
}

/* ---- one input ---- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g.started) start_server("fuzz_ollama", model_files, N_MODELS);
    if (size < 1) return 0;
    uint8_t b = data[0];
    int route = b & 7;
    bool gen = route == 0 || route == 1 || route == 5 || route == 6;
    static const char *const paths[8] = {"/api/generate", "/api/chat", "/api/embed", "/api/embeddings",
                                         "/api/show", "/api/generate", "/api/chat", NULL};
    const char *path = paths[route] ? paths[route] : b & 16 ? "/api/version" : b & 8 ? "/api/ps" : "/api/tags";
    buf body = {0}, req = {0}, resp = {0};
    if (route == 7) put(&body, "", 0);
    else make_ollama_body(data + 1, size - 1, gen ? caps[b >> 5] : 0, &body);
    make_request(route == 7 ? "GET" : "POST", path, body.p, route == 7 ? 0 : body.len, &req);
    fh.cur_path = path;
    fh.cur_req = &req;
    if (!exchange(&req, &resp)) {
        if (body.len <= MAX_BODY) fail("the server dropped the connection without a response", &resp);
    } else {
        check(&resp, route, b);
    }
    free(body.p);
    free(req.p);
    free(resp.p);
    return 0;
}
