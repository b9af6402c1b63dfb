/*
 * fuzz_search.c — request bodies of the document-search routes
 * (docs/API-search.md), through the real server and index, over real
 * sockets.
 *
 * On the first input the target starts, once and in-process, what
 * `frugal serve --models DIR --data DIR/data --ctx 384 --parallel 2
 * --queue 4 --threads 1 --keep-alive -1 --batch-tokens 256 --port 0`
 * starts: a compute pool of one thread, a manager with the language-model
 * loader over a scratch directory (/tmp/fuzz_search.PID: removed at exit,
 * or by the next run if this one crashed) holding symlinks to
 * tiny-bert-q8_0 (embedding), tiny-bert-rerank-q8_0 (rerank) and
 * tiny-llama-q8_0 (ask) from $FRUGAL_TESTDATA (default
 * ../shared/testdata), the document index in DIR/data, and an fr_server
 * on 127.0.0.1, port 0.  Then it creates the collection "c" (tiny-bert,
 * chunks of 32 tokens) with four small documents, so that searches have
 * something to find.  Without the models the target says why and exits 2.
 *
 * An input is one request.  Its first byte b picks it:
 *
 *   b & 7     0     POST /v1/collections/c/search
 *             1     POST /v1/collections/c/documents
 *             2     POST /v1/collections/c/ask
 *             3     POST /v1/collections
 *             4     POST /v1/collections/{name}/search
 *             5     POST /v1/collections/{name}/documents
 *             6     DELETE /v1/collections/c/documents/{name}
 *             7     GET /v1/collections/{name}, or DELETE it when b & 8
 *                   (never "c": its documents are what searches find)
 *   b >> 4    {name}: one of names[] (c, a missing one, percent-encodings
 *             of a bad name, of bytes that are not UTF-8, of a NUL, a name
 *             one byte past the limit)
 *
 * and the rest is the body, sent as it is in one HTTP/1.1 POST on a fresh
 * connection.  Asks are bounded as fuzz_request.c bounds generations: a
 * body that is a JSON object without max_tokens gets "max_tokens":2 after
 * its opening brace (a full answer in the sanitizer build costs seconds).
 *
 * The response is read whole (deadline DEADLINE_S) and checked:
 *   - the status is one of 200, 201, 400, 404, 409, 413, 503 (a 500 is a
 *     bug);
 *   - every non-200/201 body is API.md's error shape with type
 *     server_error exactly for 5xx and never code out_of_memory;
 *   - a 503 carries Retry-After >= 1;
 *   - a 200 is a JSON object (or for ask with "stream": an event stream
 *     whose lines are "data: " JSON objects, ending with [DONE]); a search
 *     has a results array whose scores are in order, best first, each
 *     with document_id, chunk_id, text and an object metadata; documents
 *     have a results array with one entry per document sent; an answer
 *     has answer and sources.
 * A failure prints the request and the response, then aborts.
 * FUZZ_VERBOSE=1 prints every status and the start of every reply.
 *
 * The replay build (plain main, no clang) starts the same server and
 * replays the corpus in `make replay`; at exit everything is stopped and
 * the counted heap must be back where it started.
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
#include "search/search.h"
#include "server/server.h"

#include "fuzz_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_CTX 384
#define MAX_BODY (1u << 20)
#define MAX_RESP (8u << 20)
#define DEADLINE_S 60.0

#define N_MODELS 3
static const char *const model_files[N_MODELS] = {"tiny-bert-q8_0", "tiny-bert-rerank-q8_0", "tiny-llama-q8_0"};
static const char *const names[16] = {
    "c", "c", "c", "c", "missing", "c2", "d-1.x_y", "%63",           /* %63 = "c" */
    "bad%20name", "%FF%FE", "c%00", "..",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 65 bytes */
    "doc1", "doc2", "%2E%2E%2Fc",
};

static struct {
    bool started;
    char dir[64], data[96];
    fr_compute *compute;
    fr_gguf_env env;
    fr_manager *manager;
    fr_metrics *metrics;
    fr_server_search *search;
    fr_server *server;
    size_t mem0;
} g;

/* Remove a scratch directory of ours: the links, the database, the dirs. */
static void remove_dir(const char *dir) {
    char p[400];
    for (int i = 0; i < N_MODELS; i++) {
        snprintf(p, sizeof p, "%s/%s.gguf", dir, model_files[i]);
        unlink(p);
    }
    static const char *const db[] = {"frugal.db", "frugal.db-wal", "frugal.db-shm", "frugal.db-journal"};
    for (size_t i = 0; i < sizeof db / sizeof *db; i++) {
        snprintf(p, sizeof p, "%s/data/%s", dir, db[i]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/data", dir);
    rmdir(p);
    rmdir(dir);
}

static void teardown(void) {
    if (!g.started) return;
    g.started = false;
    fr_server_drain(g.server, 5000);
    fr_server_destroy(g.server);
    fr_server_search_destroy(g.search);
    fr_manager_destroy(g.manager);
    fr_compute_destroy(g.compute);
    fr_metrics_destroy(g.metrics);
    remove_dir(g.dir);
    fh_check_heap(g.mem0);
}

/* ---- checking the response ---- */

/* A search's results: in order, each with its fields. */
static void check_results(json_t *j, const buf *raw) {
    json_t *res = json_object_get(j, "results");
    if (!json_is_array(res)) fail("a search without a results array", raw);
    double prev = 1e308;
    for (size_t i = 0; i < json_array_size(res); i++) {
        json_t *h = json_array_get(res, i);
        json_t *sc = json_object_get(h, "score");
        if (!json_is_string(json_object_get(h, "document_id")) || !json_is_integer(json_object_get(h, "chunk_id")) ||
            !json_is_string(json_object_get(h, "text")) || !json_is_object(json_object_get(h, "metadata")) ||
            !json_is_number(sc) || !json_is_object(json_object_get(h, "scores")) ||
            !json_is_object(json_object_get(h, "ranks")))
            fail("a search result without its fields", raw);
        double s = json_number_value(sc);
        if (s > prev + 1e-9) fail("search results not best first", raw);
        prev = s;
    }
}

static void check(const buf *raw, int route, size_t n_docs) {
    http_resp r = {0};
    parse_http(raw, &r);
    if (fh.verbose) fprintf(stderr, "%d %s %.200s\n", r.status, fh.cur_path, r.body.p);
    switch (r.status) {
    case 200: case 201: case 400: case 404: case 409: case 413: case 503: break;
    default: fail(r.status == 500 ? "a 500: a bug" : "a status API.md does not list for these routes", raw);
    }
    check_retry_after(&r, raw);
    if (r.status >= 300) {
        if (strncmp(r.ctype, "application/json", 16)) fail("an error reply that is not application/json", raw);
        check_error_shape(&r, raw);
    } else if (!strncmp(r.ctype, "text/event-stream", 17)) {
        if (route != 2) fail("an event stream from a route that does not stream", raw);
        check_stream(&r, raw, NULL);
    } else {
        if (strncmp(r.ctype, "application/json", 16)) fail("a 200 that is neither JSON nor a stream", raw);
        json_error_t e;
        json_t *j = json_loadb(r.body.p, r.body.len, JSON_ALLOW_NUL, &e);
        if (!json_is_object(j)) fail("a 200 whose body is not a JSON object", raw);
        if (route == 0 || route == 4) check_results(j, raw);
        if ((route == 1 || route == 5) && json_array_size(json_object_get(j, "results")) != n_docs)
            fail("documents: not one result per document sent", raw);
        if (route == 2 && (!json_is_array(json_object_get(j, "sources")) || !json_object_get(j, "answer")))
            fail("an answer without answer and sources", raw);
        json_decref(j);
    }
    free(r.body.p);
}

/* One request; returns the status. */
static int request(const char *method, const char *path, const char *body, size_t len, int route, size_t n_docs) {
    buf req = {0}, resp = {0};
    make_request(method, path, body, len, &req);
    fh.cur_path = path;
    fh.cur_req = &req;
    int status = 0;
    if (!exchange(&req, &resp)) {
        if (len <= MAX_BODY) fail("the server dropped the connection without a response", &resp);
    } else {
        check(&resp, route, n_docs);
        status = atoi(resp.p + 9);
    }
    free(req.p);
    free(resp.p);
    fh.cur_req = NULL;
    return status;
}

static const char seed_docs[] =
    "{\"model\": \"tiny-bert-q8_0\", \"chunk_size\": 32, \"chunk_overlap\": 4, \"documents\": ["
    "{\"id\": \"doc1\", \"text\": \"Cats are small animals that purr and sleep on the mat.\", "
    "\"metadata\": {\"topic\": \"animals\", \"year\": 2020}},"
    "{\"id\": \"doc2\", \"text\": \"A rocket engine burns fuel to launch spacecraft into orbit.\", "
    "\"metadata\": {\"topic\": \"space\", \"year\": 2021}},"
    "{\"id\": \"doc3\", \"text\": \"Boil the pasta in salted water. Serve it with tomato sauce.\", "
    "\"metadata\": {\"topic\": \"food\"}},"
    "{\"id\": \"doc4\", \"text\": \"The moon landing was a milestone of space exploration. Astronauts walked "
    "on the lunar surface and brought rocks back to Earth for study.\", \"metadata\": {\"topic\": \"space\"}}]}";

static void start(void) {
    fh.name = "fuzz_search";
    fh.deadline_s = DEADLINE_S;
    fh.max_resp = MAX_RESP;
    fh_scratch_dir(model_files, N_MODELS, remove_dir, g.dir, sizeof g.dir);
    snprintf(g.data, sizeof g.data, "%s/data", g.dir);
    /* SQLite's one-time allocations (made at its first use, kept for the
     * process) must not count as a leak: open and close an index once
     * before the heap is measured. */
    fr_index_config ic = {.data_dir = g.data};
    fr_index *ix;
    if (fr_index_open(&ic, &ix)) die("index %s: %s", g.data, fr_errdetail());
    fr_index_close(ix);
    g.mem0 = fr_mem_in_use();
    if (fr_compute_create(1, &g.compute)) die("compute pool: %s", fr_errdetail());
    g.env = (fr_gguf_env){.compute = g.compute, .n_ctx = N_CTX, .parallel = 2, .queue = 4, .batch_tokens = 256};
    fr_manager_config mc = {
        .models_dir = g.dir,
        .defaults = {.n_ctx = N_CTX, .parallel = 2, .keep_alive_ms = -1, .threads = 1},
        .loader = fr_gguf_loader(&g.env),
    };
    if (fr_manager_create(&mc, &g.manager)) die("model manager: %s", fr_errdetail());
    if (fr_metrics_create(&g.metrics)) die("metrics: %s", fr_errdetail());
    if (fr_server_search_create(g.data, 0, false, g.manager, &g.search)) die("index: %s", fr_errdetail());
    fr_server_config sc = {.host = "127.0.0.1", .port = 0, .max_body = MAX_BODY, .conn_timeout_ms = 10000,
                           .manager = g.manager, .metrics = g.metrics, .search = g.search};
    if (fr_server_create(&sc, &g.server)) die("server: %s", fr_errdetail());
    fh.port = fr_server_port(g.server);
    g.started = true;
    atexit(teardown);
    int s = request("POST", "/v1/collections/c/documents", seed_docs, strlen(seed_docs), 1, 4);
    if (s != 200) die("seeding the collection c: status %d", s);
}

/* Documents in a body: the size of its "documents" array (for the check). */
static size_t n_docs_of(const buf *b) {
    json_error_t e;
    json_t *j = json_loadb(b->p ? b->p : "", b->len, 0, &e);
    size_t n = json_array_size(json_object_get(j, "documents"));
    json_decref(j);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g.started) start();
    if (size < 1) return 0;
    uint8_t b = data[0];
    int route = b & 7;
    const char *name = names[b >> 4];
    char path[700];
    const char *method = "POST";
    switch (route) {
    case 0: snprintf(path, sizeof path, "/v1/collections/c/search"); break;
    case 1: snprintf(path, sizeof path, "/v1/collections/c/documents"); break;
    case 2: snprintf(path, sizeof path, "/v1/collections/c/ask"); break;
    case 3: snprintf(path, sizeof path, "/v1/collections"); break;
    case 4: snprintf(path, sizeof path, "/v1/collections/%s/search", name); break;
    case 5: snprintf(path, sizeof path, "/v1/collections/%s/documents", name); break;
    case 6:
        method = "DELETE";
        snprintf(path, sizeof path, "/v1/collections/c/documents/%s", name);
        break;
    default:
        if ((b & 8) && strcmp(name, "c") && strcmp(name, "%63")) method = "DELETE";
        else method = "GET";
        snprintf(path, sizeof path, "/v1/collections/%s", name);
        break;
    }
    buf body = {0};
    make_body(data + 1, size - 1, route == 2 ? 2 : 0, &body);
    size_t nd = route == 1 || route == 5 ? n_docs_of(&body) : 0;
    request(method, path, body.p ? body.p : "", body.len, route, nd);
    free(body.p);
    return 0;
}
