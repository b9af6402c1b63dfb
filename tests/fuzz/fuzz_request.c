/*
 * fuzz_request.c — request bodies of every JSON route, through the real
 * server, over real sockets.
 *
 * On the first input the target starts, once and in-process, what
 * `frugal serve --models DIR --ctx 64 --parallel 2 --queue 4 --threads 1
 * --keep-alive 2s --batch-tokens 256 --embed-cache 1M --port 0` starts: a
 * compute pool of one thread, a manager with the language-model loader
 * over a scratch models directory (/tmp/fuzz_request.PID: removed at exit,
 * or by the next run if this one crashed) holding symlinks to
 * tiny-llama-q8_0, tiny-qwen2-q8_0 (decoders), tiny-bert-q8_0 (embedding)
 * and tiny-bert-rerank-q8_0 (rerank) .gguf from $FRUGAL_TESTDATA (default
 * ../shared/testdata), and an fr_server on 127.0.0.1, port 0.  If the
 * models cannot be found the target says why and exits 2 (a fuzzer that
 * tests nothing must not look like one that finds nothing).
 *
 * An input is one request.  Its first byte b picks it:
 *
 *   b & 7     0     POST /v1/chat/completions
 *             1     POST /v1/embeddings
 *             2     POST /v1/completions
 *             3     POST /v1/rerank (or /rerank when b & 8)
 *             4     POST /v1/models/{id}/load
 *             5     POST /v1/models/{id}/unload
 *             6     POST /v1/models/plan
 *             7     POST /v1/memory/unload (or /memory/unload when b & 8)
 *   b >> 3    load and unload: {id}, one of load_ids (three models, and
 *             percent-encodings: of a model's name, of bytes that are not
 *             UTF-8, of a long id, of a NUL, of "../": unknown ids)
 *   b >> 5    generation routes: the max_tokens cap (below)
 *
 * and the rest is the body, sent as it is with a Content-Length in one
 * HTTP/1.1 POST on a fresh connection ("Connection: close").
 *
 * The cap.  The server bounds a generation by itself: the context holds 64
 * positions, so an answer has at most 65 - prompt tokens.  But in the
 * libFuzzer build (ASan, UBSan, coverage callbacks in every kernel loop) a
 * generated token costs about 10 ms with tiny-llama and 35-65 ms with
 * tiny-qwen2 (its 50k-token output matrix), so a full context takes 0.5 s
 * and 2-4 s: far over the ~50 ms an input should cost.  So when the body
 * parses as a JSON object with neither max_tokens nor
 * max_completion_tokens, the target inserts "max_tokens":N right after its
 * opening brace (the rest of the bytes stay as they are), with N =
 * caps[b >> 5]: 1, 2, 4 or 8, and for b >> 5 == 7 no cap at all, so that
 * runs to the context's end are still tried, one input in eight.  Bodies
 * that give max_tokens themselves are sent unchanged: the server's own
 * bounds (1..2^20, then the context) are what is under test there.  With
 * the cap a run averages 75-170 inputs per second (the encoders' routes
 * are the slower part).
 *
 * The whole response is read (the server closes the connection after it;
 * at most MAX_RESP bytes; a socket timeout and an overall deadline of
 * DEADLINE_S turn a hang into an abort with a message) and checked:
 *   - the status is one of 200, 400, 404, 409, 413, 503 (a 500 is a bug);
 *   - every non-200 body is the error shape of API.md: {"error":
 *     {"message": non-empty string, "type", "param": string or null,
 *     "code": string}}, with type server_error exactly for 5xx, and never
 *     code out_of_memory (memory is plentiful here: that code means some
 *     other failure was reported as one);
 *   - a 503 carries Retry-After: an integer >= 1;
 *   - a 200 is valid JSON (an object; "\u0000" is valid JSON, and a byte
 *     token <0x00> generates it), or for text/event-stream: every
 *     line is "data: " + a JSON object or "data: [DONE]", or empty, and
 *     the last event is [DONE];
 *   - a generation's usage stays inside the context: prompt_tokens < 64 and
 *     total_tokens <= 65 (the last token sampled takes no position) for
 *     each of its k choices (several prompts, n: each prompt counted once,
 *     so at most k times that); a completion has choices with index 0, 1,
 *     ... in order and a finish_reason each; TEI's /rerank may answer a
 *     bare array; embeddings have a
 *     data array, a rerank a results array.
 * A failure prints the request and the response, then aborts.  FUZZ_VERBOSE=1
 * prints every status and the start of every reply; FUZZ_DEBUG=1 turns the
 * server's log on.
 *
 * libFuzzer instruments every thread, so coverage counts the server's
 * connection threads, the scheduler's batch loop and the manager.  The
 * replay build (plain main, no clang) starts the same server and replays
 * the corpus in `make replay`; at exit the server, manager and pool are
 * stopped and the counted heap must be back where it started.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
#define MAX_BODY (1u << 20)             /* the server's default limit */
#define MAX_RESP (8u << 20)             /* more than this is a runaway answer */
#define DEADLINE_S 30.0                 /* per request; more is a hang */

#define N_MODELS 4
static const char *const model_files[N_MODELS] = {"tiny-llama-q8_0", "tiny-qwen2-q8_0", "tiny-bert-q8_0",
                                                  "tiny-bert-rerank-q8_0"};
#define E70 "%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9"
static const char *const load_ids[8] = {
    "tiny-llama-q8_0", "tiny-qwen2-q8_0", "tiny-bert-q8_0", "tiny%2Dllama-q8_0",
    "%FF%FE",                                       /* not UTF-8 */
    "a" E70 E70 E70 E70 E70 E70 E70,                /* 141 bytes: a message's %.128s cuts an é */
    "tiny-llama-q8_0%00",                           /* a NUL escape: 400 */
    "%2E%2E%2F%2E%2E%2Ftiny-llama-q8_0",            /* "../../tiny-llama-q8_0": unknown */
};
static const int caps[8] = {1, 2, 4, 8, 1, 2, 4, 0};   /* 0: no cap */

#include "fuzz_models_server.h"

/* ---- checking the response ---- */

/* Choices in the reply or stream being checked (a stream's highest index
 * + 1 so far). */
static long long n_choices;

/* A generation's usage: within the context, for each of its choices. */
static void check_usage(json_t *usage, const buf *raw) {
    if (!usage || json_is_null(usage)) return;
    json_t *pt = json_object_get(usage, "prompt_tokens"), *ct = json_object_get(usage, "completion_tokens"),
           *tt = json_object_get(usage, "total_tokens");
    if (!json_is_integer(pt) || !json_is_integer(ct) || !json_is_integer(tt)) fail("usage without its counts", raw);
    long long p = json_integer_value(pt), c = json_integer_value(ct), t = json_integer_value(tt);
    /* n_ctx positions hold the prompt and every generated token but the
     * last, which is sampled and never fed back: at most n_ctx + 1. */
    long long k = n_choices > 1 ? n_choices : 1;
    if (p < 1 || p >= k * N_CTX || c < 0 || t != p + c || t > k * (N_CTX + 1)) fail("usage outside the context", raw);
}

/* A stream event: an error event has a message, a usage stays inside the
 * context. */
static void check_event(json_t *j, const buf *raw) {
    json_t *err = json_object_get(j, "error");
    if (err) {
        const char *msg = json_string_value(json_object_get(err, "message"));
        if (!msg || !*msg) fail("a stream error event without a message", raw);
    }
    json_t *ch = json_object_get(j, "choices");
    for (size_t i = 0; i < json_array_size(ch); i++) {
        json_t *ix = json_object_get(json_array_get(ch, i), "index");
        if (!json_is_integer(ix) || json_integer_value(ix) < 0) fail("a stream choice without an index", raw);
        else if (json_integer_value(ix) + 1 > n_choices) n_choices = json_integer_value(ix) + 1;
    }
    check_usage(json_object_get(j, "usage"), raw);
}

static void check(const buf *raw, int route) {
    bool gen = route == 0 || route == 2;
    http_resp r = {0};
    parse_http(raw, &r);
    if (fh.verbose) fprintf(stderr, "%d %s %.200s\n", r.status, fh.cur_path, r.body.p);
    switch (r.status) {
    case 200: case 400: case 404: case 409: case 413: case 503: break;
    default: fail(r.status == 500 ? "a 500: a bug" : "a status API.md does not list for these routes", raw);
    }
    check_retry_after(&r, raw);
    n_choices = 0;
    if (r.status != 200) {
        if (strncmp(r.ctype, "application/json", 16)) fail("an error reply that is not application/json", raw);
        check_error_shape(&r, raw);
    } else if (!strncmp(r.ctype, "text/event-stream", 17)) {
        if (!gen) fail("an event stream from a route that does not stream", raw);
        check_stream(&r, raw, check_event);
    } else {
        if (strncmp(r.ctype, "application/json", 16)) fail("a 200 that is neither JSON nor a stream", raw);
        json_error_t e;
        json_t *j = json_loadb(r.body.p, r.body.len, JSON_ALLOW_NUL, &e);
        if (!json_is_object(j) && !(route == 3 && json_is_array(j) && !strcmp(fh.cur_path, "/rerank")))
            fail("a 200 whose body is not a JSON object", raw);
        if (gen) {
            json_t *ch = json_object_get(j, "choices");
            n_choices = (long long)json_array_size(ch);
            if (n_choices < 1) fail("a completion without choices", raw);
            for (size_t i = 0; i < json_array_size(ch); i++) {
                json_t *c = json_array_get(ch, i);
                const char *fin = json_string_value(json_object_get(c, "finish_reason"));
                if (json_integer_value(json_object_get(c, "index")) != (json_int_t)i || !fin ||
                    (strcmp(fin, "stop") && strcmp(fin, "length") && strcmp(fin, "cancelled")))
                    fail("a completion choice without its index in order and a finish_reason", raw);
            }
            check_usage(json_object_get(j, "usage"), raw);
        } else if (route == 1 && !json_is_array(json_object_get(j, "data"))) {
            fail("embeddings without a data array", raw);
        } else if (route == 3 && json_is_object(j) && !json_is_array(json_object_get(j, "results"))) {
            fail("a rerank without a results array", raw);
        }
        json_decref(j);
    }
    free(r.body.p);
}

/* ---- one input ---- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g.started) start_server("fuzz_request", model_files, N_MODELS);
    if (size < 1) return 0;
    uint8_t b = data[0];
    int route = b & 7;
    bool gen = route == 0 || route == 2;
    char path[640];
    switch (route) {
    case 0: snprintf(path, sizeof path, "/v1/chat/completions"); break;
    case 1: snprintf(path, sizeof path, "/v1/embeddings"); break;
    case 2: snprintf(path, sizeof path, "/v1/completions"); break;
    case 3: snprintf(path, sizeof path, "%s", b & 8 ? "/rerank" : "/v1/rerank"); break;
    case 4: snprintf(path, sizeof path, "/v1/models/%s/load", load_ids[b >> 3 & 7]); break;
    case 5: snprintf(path, sizeof path, "/v1/models/%s/unload", load_ids[b >> 3 & 7]); break;
    case 6: snprintf(path, sizeof path, "/v1/models/plan"); break;
    default: snprintf(path, sizeof path, "%s", b & 8 ? "/memory/unload" : "/v1/memory/unload"); break;
    }
    buf body = {0}, req = {0}, resp = {0};
    make_body(data + 1, size - 1, gen ? caps[b >> 5] : 0, &body);
    make_request("POST", path, body.p, body.len, &req);
    fh.cur_path = path;
    fh.cur_req = &req;
    if (!exchange(&req, &resp)) {
        /* Only a body over the limit may be refused before it is read; the
         * kernel may then reset the connection under the 413. */
        if (body.len <= MAX_BODY) fail("the server dropped the connection without a response", &resp);
    } else {
        check(&resp, route);
    }
    free(body.p);
    free(req.p);
    free(resp.p);
    return 0;
}
