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
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/metrics.h"
#include "manager/loader_llm.h"
#include "manager/manager.h"
#include "sched/sched.h"
#include "search/search.h"
#include "server/server.h"

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

static bool verbose;

static struct {
    bool started;
    char dir[64], data[96];
    char links[N_MODELS][128];
    fr_compute *compute;
    fr_llm_env env;
    fr_manager *manager;
    fr_metrics *metrics;
    fr_server_search *search;
    fr_server *server;
    int port;
    size_t mem0;
} g;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_search: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

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

static void sweep_stale_dirs(void) {
    DIR *d = opendir("/tmp");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, "fuzz_search.", 12)) continue;
        long pid = strtol(e->d_name + 12, &end, 10);
        if (*end || pid <= 0 || pid == getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char dir[300];
        snprintf(dir, sizeof dir, "/tmp/%s", e->d_name);
        remove_dir(dir);
    }
    if (d) closedir(d);
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
    if (fr_mem_in_use() != g.mem0) {
        fprintf(stderr, "fuzz_search: %lld counted heap bytes still in use after shutdown (%zu before)\n",
                (long long)fr_mem_in_use(), g.mem0);
        abort();
    }
}

/* ---- the client ---- */

typedef struct buf { char *p; size_t len, cap; } buf;

static void put(buf *b, const void *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->len + n + 1) nc *= 2;
        b->p = realloc(b->p, nc);
        if (!b->p) abort();
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *cur_path;
static const buf *cur_req;

static void fail_at(const char *what, const buf *resp, const char *at, size_t at_len) {
    fprintf(stderr, "fuzz_search: %s\n--- request %s (%zu bytes):\n%.*s\n--- response (%zu bytes):\n%.*s\n---\n",
            what, cur_path, cur_req ? cur_req->len : 0,
            cur_req ? (int)(cur_req->len > 8000 ? 8000 : cur_req->len) : 0, cur_req ? cur_req->p : "",
            resp ? resp->len : 0, resp ? (int)(resp->len > 65536 ? 65536 : resp->len) : 0,
            resp && resp->p ? resp->p : "");
    if (at) fprintf(stderr, "--- at:\n%.*s\n---\n", (int)(at_len > 8000 ? 8000 : at_len), at);
    abort();
}

static void fail(const char *what, const buf *resp) { fail_at(what, resp, NULL, 0); }

static bool exchange(const buf *req, buf *resp) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket() failed", NULL);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {(time_t)DEADLINE_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) fail("cannot connect to the server", NULL);
    double deadline = now_s() + DEADLINE_S;
    for (size_t off = 0; off < req->len;) {
        ssize_t w = send(fd, req->p + off, req->len - off, MSG_NOSIGNAL);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) continue;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) fail("hang: the server takes no more bytes", resp);
            break;
        }
        off += (size_t)w;
    }
    bool reset = false;
    for (;;) {
        int left = (int)((deadline - now_s()) * 1000);
        if (left <= 0) fail("hang: no complete response within the deadline", resp);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, left);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) fail("hang: no complete response within the deadline", resp);
        char tmp[16384];
        ssize_t r = recv(fd, tmp, sizeof tmp, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { reset = true; break; }
        if (r == 0) break;
        if (resp->len + (size_t)r > MAX_RESP) fail("the response passed 8 MiB", resp);
        put(resp, tmp, (size_t)r);
    }
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    return !(reset && resp->len == 0);
}

typedef struct http_resp {
    int status;
    char ctype[128], retry_after[32];
    buf body;
} http_resp;

static bool header(const char *head, const char *name, char *out, size_t size) {
    size_t n = strlen(name);
    for (const char *p = head; *p;) {
        const char *e = strstr(p, "\r\n");
        if (!e) e = p + strlen(p);
        if ((size_t)(e - p) > n && !strncasecmp(p, name, n) && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ') v++;
            size_t vn = (size_t)(e - v) < size - 1 ? (size_t)(e - v) : size - 1;
            memcpy(out, v, vn);
            out[vn] = 0;
            return true;
        }
        p = *e ? e + 2 : e;
    }
    return false;
}

static void parse_http(const buf *raw, http_resp *r) {
    static char head[16384];
    const char *end = raw->p ? strstr(raw->p, "\r\n\r\n") : NULL;
    if (!end || strncmp(raw->p, "HTTP/1.1 ", 9)) fail("no HTTP/1.1 response head", raw);
    size_t hl = (size_t)(end - raw->p) + 2;
    if (hl >= sizeof head) fail("response head too long", raw);
    memcpy(head, raw->p, hl);
    head[hl] = 0;
    r->status = atoi(raw->p + 9);
    if (!header(head, "Content-Type", r->ctype, sizeof r->ctype)) r->ctype[0] = 0;
    if (!header(head, "Retry-After", r->retry_after, sizeof r->retry_after)) r->retry_after[0] = 0;
    const char *p = end + 4, *stop = raw->p + raw->len;
    char v[64];
    if (header(head, "Content-Length", v, sizeof v)) {
        size_t n = strtoull(v, NULL, 10);
        if ((size_t)(stop - p) != n) fail("body length differs from Content-Length", raw);
        put(&r->body, p, n);
    } else if (header(head, "Transfer-Encoding", v, sizeof v) && strstr(v, "chunked")) {
        for (;;) {
            char *e;
            size_t n = strtoull(p, &e, 16);
            if (e == p || stop - e < 2 || memcmp(e, "\r\n", 2)) fail("bad chunk header", raw);
            p = e + 2;
            if (n == 0) break;
            if ((size_t)(stop - p) < n + 2 || memcmp(p + n, "\r\n", 2)) fail("truncated chunk", raw);
            put(&r->body, p, n);
            p += n + 2;
        }
    } else {
        fail("a response with neither Content-Length nor chunked encoding", raw);
    }
    if (!r->body.p) put(&r->body, "", 0);
}

static void check_error_shape(const http_resp *r, const buf *raw) {
    json_error_t e;
    json_t *j = json_loadb(r->body.p, r->body.len, JSON_ALLOW_NUL, &e);
    json_t *err = json_object_get(j, "error");
    const char *msg = json_string_value(json_object_get(err, "message"));
    const char *type = json_string_value(json_object_get(err, "type"));
    json_t *param = json_object_get(err, "param");
    if (!json_is_object(err) || !msg || !*msg || !type || !json_is_string(json_object_get(err, "code")) ||
        !(json_is_string(param) || json_is_null(param)))
        fail("an error reply without the error shape {error: {message, type, param, code}}", raw);
    if (strcmp(type, r->status >= 500 ? "server_error" : "invalid_request_error"))
        fail("an error reply with the wrong type", raw);
    if (!strcmp(json_string_value(json_object_get(err, "code")), "out_of_memory"))
        fail("an out_of_memory reply while memory is plentiful", raw);
    json_decref(j);
}

static void check_stream(const http_resp *r, const buf *raw) {
    const char *p = r->body.p, *stop = r->body.p + r->body.len;
    bool done = false;
    while (p < stop) {
        const char *nl = memchr(p, '\n', (size_t)(stop - p));
        if (!nl) fail("a stream whose last line is not terminated", raw);
        size_t n = (size_t)(nl - p);
        if (n == 0) { p = nl + 1; continue; }
        if (done) fail("bytes after data: [DONE]", raw);
        if (n < 6 || memcmp(p, "data: ", 6)) fail("a stream line that is not data: ...", raw);
        const char *d = p + 6;
        size_t dn = n - 6;
        if (dn == 6 && !memcmp(d, "[DONE]", 6)) done = true;
        else {
            json_error_t e;
            json_t *j = json_loadb(d, dn, JSON_ALLOW_NUL, &e);
            if (!json_is_object(j)) fail_at("a stream event that is not a JSON object", raw, p, n);
            json_decref(j);
        }
        p = nl + 1;
    }
    if (!done) fail("a stream that does not end with data: [DONE]", raw);
}

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
    if (verbose) fprintf(stderr, "%d %s %.200s\n", r.status, cur_path, r.body.p);
    switch (r.status) {
    case 200: case 201: case 400: case 404: case 409: case 413: case 503: break;
    default: fail(r.status == 500 ? "a 500: a bug" : "a status API.md does not list for these routes", raw);
    }
    if (r.status == 503) {
        char *e;
        long ra = strtol(r.retry_after, &e, 10);
        if (!r.retry_after[0] || *e || ra < 1) fail("a 503 without Retry-After", raw);
    }
    if (r.status >= 300) {
        if (strncmp(r.ctype, "application/json", 16)) fail("an error reply that is not application/json", raw);
        check_error_shape(&r, raw);
    } else if (!strncmp(r.ctype, "text/event-stream", 17)) {
        if (route != 2) fail("an event stream from a route that does not stream", raw);
        check_stream(&r, raw);
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
    char head[1024];
    int hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", method, path, len);
    put(&req, head, (size_t)hn);
    if (len) put(&req, body, len);
    cur_path = path;
    cur_req = &req;
    int status = 0;
    if (!exchange(&req, &resp)) {
        if (len <= MAX_BODY) fail("the server dropped the connection without a response", &resp);
    } else {
        check(&resp, route, n_docs);
        status = atoi(resp.p + 9);
    }
    free(req.p);
    free(resp.p);
    cur_req = NULL;
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
    const char *td = getenv("FRUGAL_TESTDATA");
    if (!td) td = "../shared/testdata";
    fr_log_set_level(getenv("FUZZ_DEBUG") ? FR_LOG_DEBUG : FR_LOG_ERROR);
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    char abs[N_MODELS][4096];
    for (int i = 0; i < N_MODELS; i++) {
        char rel[1024];
        snprintf(rel, sizeof rel, "%s/models/%s.gguf", td, model_files[i]);
        if (!realpath(rel, abs[i]) || access(abs[i], R_OK) != 0)
            die("cannot read %s: %s (set FRUGAL_TESTDATA)", rel, strerror(errno));
    }
    sweep_stale_dirs();
    snprintf(g.dir, sizeof g.dir, "/tmp/fuzz_search.%d", (int)getpid());
    snprintf(g.data, sizeof g.data, "%s/data", g.dir);
    remove_dir(g.dir);
    if (mkdir(g.dir, 0700) != 0) die("cannot make the scratch directory %s: %s", g.dir, strerror(errno));
    for (int i = 0; i < N_MODELS; i++) {
        snprintf(g.links[i], sizeof g.links[i], "%s/%s.gguf", g.dir, model_files[i]);
        if (symlink(abs[i], g.links[i]) != 0) die("cannot link %s: %s", g.links[i], strerror(errno));
    }
    /* SQLite's one-time allocations (made at its first use, kept for the
     * process) must not count as a leak: open and close an index once
     * before the heap is measured. */
    fr_index_config ic = {.data_dir = g.data};
    fr_index *ix;
    if (fr_index_open(&ic, &ix)) die("index %s: %s", g.data, fr_errdetail());
    fr_index_close(ix);
    g.mem0 = fr_mem_in_use();
    if (fr_compute_create(1, &g.compute)) die("compute pool: %s", fr_errdetail());
    g.env = (fr_llm_env){.compute = g.compute, .n_ctx = N_CTX, .parallel = 2, .queue = 4, .batch_tokens = 256};
    fr_manager_config mc = {
        .models_dir = g.dir,
        .defaults = {.n_ctx = N_CTX, .parallel = 2, .keep_alive_ms = -1, .threads = 1},
        .loader = fr_llm_loader(&g.env),
    };
    if (fr_manager_create(&mc, &g.manager)) die("model manager: %s", fr_errdetail());
    if (fr_metrics_create(&g.metrics)) die("metrics: %s", fr_errdetail());
    if (fr_server_search_create(g.data, 0, g.manager, &g.search)) die("index: %s", fr_errdetail());
    fr_server_config sc = {.host = "127.0.0.1", .port = 0, .max_body = MAX_BODY, .conn_timeout_ms = 10000,
                           .manager = g.manager, .metrics = g.metrics, .search = g.search};
    if (fr_server_create(&sc, &g.server)) die("server: %s", fr_errdetail());
    g.port = fr_server_port(g.server);
    g.started = true;
    atexit(teardown);
    int s = request("POST", "/v1/collections/c/documents", seed_docs, strlen(seed_docs), 1, 4);
    if (s != 200) die("seeding the collection c: status %d", s);
}

/* The body, with "max_tokens":2 after the opening brace when it is a JSON
 * object without max_tokens (asks only). */
static void make_body(const uint8_t *p, size_t n, bool cap, buf *out) {
    json_error_t e;
    json_t *j = cap ? json_loadb((const char *)p, n, 0, &e) : NULL;
    if (json_is_object(j) && !json_object_get(j, "max_tokens") && !json_object_get(j, "max_completion_tokens")) {
        const uint8_t *brace = memchr(p, '{', n);
        size_t at = (size_t)(brace - p) + 1;
        const char *ins = json_object_size(j) ? "\"max_tokens\":2," : "\"max_tokens\":2";
        put(out, p, at);
        put(out, ins, strlen(ins));
        put(out, p + at, n - at);
    } else {
        put(out, p, n);
    }
    json_decref(j);
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
    make_body(data + 1, size - 1, route == 2, &body);
    size_t nd = route == 1 || route == 5 ? n_docs_of(&body) : 0;
    request(method, path, body.p ? body.p : "", body.len, route, nd);
    free(body.p);
    return 0;
}
