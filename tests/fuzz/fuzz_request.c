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
 *     total_tokens <= 65 (the last token sampled takes no position); a
 *     completion has one choice with a finish_reason; embeddings have a
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
#include "server/server.h"

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

static bool verbose;                    /* FUZZ_VERBOSE: print each status and reply */

static struct {
    bool started;
    char dir[64];                       /* the scratch models directory */
    char links[N_MODELS][128];
    fr_compute *compute;
    fr_llm_env env;
    fr_manager *manager;
    fr_metrics *metrics;
    fr_server *server;
    int port;
    size_t mem0;
} g;

/* The target cannot run: say why, exit 2. */
static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_request: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* Remove a models directory of ours: its links, then the directory
 * (which fails, harmlessly, if anything else is in it). */
static void remove_dir(const char *dir) {
    for (int i = 0; i < N_MODELS; i++) {
        char p[400];
        snprintf(p, sizeof p, "%s/%s.gguf", dir, model_files[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* A run that crashed never reached teardown: remove the directories of
 * processes that are gone (/tmp/fuzz_request.PID). */
static void sweep_stale_dirs(void) {
    DIR *d = opendir("/tmp");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, "fuzz_request.", 13)) continue;
        long pid = strtol(e->d_name + 13, &end, 10);
        if (*end || pid <= 0 || pid == getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;   /* alive, or not ours */
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
    fr_manager_destroy(g.manager);
    fr_compute_destroy(g.compute);
    fr_metrics_destroy(g.metrics);
    remove_dir(g.dir);
    if (fr_mem_in_use() != g.mem0) {
        fprintf(stderr, "fuzz_request: %lld counted heap bytes still in use after shutdown (%zu before)\n",
                (long long)fr_mem_in_use(), g.mem0);
        abort();
    }
}

static void start(void) {
    const char *td = getenv("FRUGAL_TESTDATA");
    if (!td) td = "../shared/testdata";
    fr_log_set_level(getenv("FUZZ_DEBUG") ? FR_LOG_DEBUG : FR_LOG_ERROR);
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    g.mem0 = fr_mem_in_use();
    char abs[N_MODELS][4096];
    for (int i = 0; i < N_MODELS; i++) {
        char rel[1024];
        snprintf(rel, sizeof rel, "%s/models/%s.gguf", td, model_files[i]);
        if (!realpath(rel, abs[i]) || access(abs[i], R_OK) != 0)
            die("cannot read %s: %s (set FRUGAL_TESTDATA)", rel, strerror(errno));
    }
    sweep_stale_dirs();
    snprintf(g.dir, sizeof g.dir, "/tmp/fuzz_request.%d", (int)getpid());
    remove_dir(g.dir);                      /* a crashed run's, under the same pid */
    if (mkdir(g.dir, 0700) != 0) die("cannot make the models directory %s: %s", g.dir, strerror(errno));
    for (int i = 0; i < N_MODELS; i++) {
        snprintf(g.links[i], sizeof g.links[i], "%s/%s.gguf", g.dir, model_files[i]);
        if (symlink(abs[i], g.links[i]) != 0) die("cannot link %s: %s", g.links[i], strerror(errno));
    }
    if (fr_compute_create(1, &g.compute)) die("compute pool: %s", fr_errdetail());
    g.env = (fr_llm_env){.compute = g.compute, .n_ctx = N_CTX, .parallel = 2, .queue = 4, .batch_tokens = 256};
    fr_manager_config mc = {
        .models_dir = g.dir,
        .defaults = {.n_ctx = N_CTX, .parallel = 2, .keep_alive_ms = 2000, .threads = 1},
        .loader = fr_llm_loader(&g.env),
    };
    if (fr_manager_create(&mc, &g.manager)) die("model manager: %s", fr_errdetail());
    if (fr_metrics_create(&g.metrics)) die("metrics: %s", fr_errdetail());
    fr_server_config sc = {.host = "127.0.0.1", .port = 0, .max_body = MAX_BODY,
                           .conn_timeout_ms = 10000, .manager = g.manager, .metrics = g.metrics,
                           .embed_cache_bytes = 1 << 20};
    if (fr_server_create(&sc, &g.server)) die("server: %s", fr_errdetail());
    g.port = fr_server_port(g.server);
    g.started = true;
    atexit(teardown);
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

/* What was asked, for the messages of a failure. */
static const char *cur_path;
static const buf *cur_req;

static void fail_at(const char *what, const buf *resp, const char *at, size_t at_len) {
    fprintf(stderr, "fuzz_request: %s\n--- request %s (%zu bytes):\n%.*s\n--- response (%zu bytes):\n%.*s\n---\n",
            what, cur_path, cur_req->len, (int)(cur_req->len > 8000 ? 8000 : cur_req->len), cur_req->p,
            resp ? resp->len : 0, resp ? (int)(resp->len > 65536 ? 65536 : resp->len) : 0,
            resp && resp->p ? resp->p : "");
    if (at) fprintf(stderr, "--- at:\n%.*s\n---\n", (int)(at_len > 8000 ? 8000 : at_len), at);
    abort();
}

static void fail(const char *what, const buf *resp) { fail_at(what, resp, NULL, 0); }

/* Send req, read until the server closes.  false: the connection was reset
 * or dropped before any byte came back. */
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
    /* A body the server refuses early (413) may meet a closed socket:
     * sending stops there and the answer is read all the same. */
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
    /* An abortive close: no TIME_WAIT left behind, however many inputs run. */
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    return !(reset && resp->len == 0);
}

/* ---- checking the response ---- */

typedef struct http_resp {
    int status;
    const char *head;           /* status line and headers, NUL-terminated copy */
    char ctype[128], retry_after[32];
    buf body;                   /* de-chunked */
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

static void parse_http(const buf *raw, http_resp *r, char *head_copy, size_t head_size) {
    const char *end = raw->p ? strstr(raw->p, "\r\n\r\n") : NULL;
    if (!end || strncmp(raw->p, "HTTP/1.1 ", 9)) fail("no HTTP/1.1 response head", raw);
    size_t hl = (size_t)(end - raw->p) + 2;
    if (hl >= head_size) fail("response head too long", raw);
    memcpy(head_copy, raw->p, hl);
    head_copy[hl] = 0;
    r->head = head_copy;
    r->status = atoi(raw->p + 9);
    if (!header(head_copy, "Content-Type", r->ctype, sizeof r->ctype)) r->ctype[0] = 0;
    if (!header(head_copy, "Retry-After", r->retry_after, sizeof r->retry_after)) r->retry_after[0] = 0;
    const char *p = end + 4, *stop = raw->p + raw->len;
    char v[64];
    if (header(head_copy, "Content-Length", v, sizeof v)) {
        size_t n = strtoull(v, NULL, 10);
        if ((size_t)(stop - p) != n) fail("body length differs from Content-Length", raw);
        put(&r->body, p, n);
    } else if (header(head_copy, "Transfer-Encoding", v, sizeof v) && strstr(v, "chunked")) {
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
    if (!json_is_object(err) || !msg || !*msg || !type ||
        !json_is_string(json_object_get(err, "code")) || !(json_is_string(param) || json_is_null(param)))
        fail("an error reply without the error shape {error: {message, type, param, code}}", raw);
    if (strcmp(type, r->status >= 500 ? "server_error" : "invalid_request_error"))
        fail("an error reply with the wrong type", raw);
    /* The machine has memory to spare (and ASan aborts rather than return
     * NULL): "out of memory" means something else failed, e.g. json_pack
     * refusing a message that is not UTF-8. */
    if (!strcmp(json_string_value(json_object_get(err, "code")), "out_of_memory"))
        fail("an out_of_memory reply while memory is plentiful", raw);
    json_decref(j);
}

/* A generation's usage: within the context. */
static void check_usage(json_t *usage, const buf *raw) {
    if (!usage || json_is_null(usage)) return;
    json_t *pt = json_object_get(usage, "prompt_tokens"), *ct = json_object_get(usage, "completion_tokens"),
           *tt = json_object_get(usage, "total_tokens");
    if (!json_is_integer(pt) || !json_is_integer(ct) || !json_is_integer(tt)) fail("usage without its counts", raw);
    long long p = json_integer_value(pt), c = json_integer_value(ct), t = json_integer_value(tt);
    /* n_ctx positions hold the prompt and every generated token but the
     * last, which is sampled and never fed back: at most n_ctx + 1. */
    if (p < 1 || p >= N_CTX || c < 0 || t != p + c || t > N_CTX + 1) fail("usage outside the context", raw);
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
            json_t *err = json_object_get(j, "error");
            if (err) {
                const char *msg = json_string_value(json_object_get(err, "message"));
                if (!msg || !*msg) fail("a stream error event without a message", raw);
            }
            check_usage(json_object_get(j, "usage"), raw);
            json_decref(j);
        }
        p = nl + 1;
    }
    if (!done) fail("a stream that does not end with data: [DONE]", raw);
}

static void check(const buf *raw, int route) {
    bool gen = route == 0 || route == 2;
    http_resp r = {0};
    static char head[16384];
    parse_http(raw, &r, head, sizeof head);
    if (verbose) fprintf(stderr, "%d %s %.200s\n", r.status, cur_path, r.body.p);
    switch (r.status) {
    case 200: case 400: case 404: case 409: case 413: case 503: break;
    default: fail(r.status == 500 ? "a 500: a bug" : "a status API.md does not list for these routes", raw);
    }
    if (r.status == 503) {
        char *e;
        long ra = strtol(r.retry_after, &e, 10);
        if (!r.retry_after[0] || *e || ra < 1) fail("a 503 without Retry-After", raw);
    }
    if (r.status != 200) {
        if (strncmp(r.ctype, "application/json", 16)) fail("an error reply that is not application/json", raw);
        check_error_shape(&r, raw);
    } else if (!strncmp(r.ctype, "text/event-stream", 17)) {
        if (!gen) fail("an event stream from a route that does not stream", raw);
        check_stream(&r, raw);
    } else {
        if (strncmp(r.ctype, "application/json", 16)) fail("a 200 that is neither JSON nor a stream", raw);
        json_error_t e;
        json_t *j = json_loadb(r.body.p, r.body.len, JSON_ALLOW_NUL, &e);
        if (!json_is_object(j)) fail("a 200 whose body is not a JSON object", raw);
        if (gen) {
            json_t *ch = json_object_get(j, "choices");
            const char *fin = json_string_value(json_object_get(json_array_get(ch, 0), "finish_reason"));
            if (json_array_size(ch) != 1 || !fin ||
                (strcmp(fin, "stop") && strcmp(fin, "length") && strcmp(fin, "cancelled")))
                fail("a completion without one choice and a finish_reason", raw);
            check_usage(json_object_get(j, "usage"), raw);
        } else if (route == 1 && !json_is_array(json_object_get(j, "data"))) {
            fail("embeddings without a data array", raw);
        } else if (route == 3 && !json_is_array(json_object_get(j, "results"))) {
            fail("a rerank without a results array", raw);
        }
        json_decref(j);
    }
    free(r.body.p);
}

/* ---- one input ---- */

/* The body, with "max_tokens":cap put in after the opening brace when it
 * is a JSON object that sets no max_tokens (see the top of the file). */
static void make_body(const uint8_t *p, size_t n, int cap, buf *out) {
    json_error_t e;
    json_t *j = cap ? json_loadb((const char *)p, n, 0, &e) : NULL;
    if (json_is_object(j) && !json_object_get(j, "max_tokens") && !json_object_get(j, "max_completion_tokens")) {
        const uint8_t *brace = memchr(p, '{', n);    /* the first byte that is not white space */
        size_t at = (size_t)(brace - p) + 1;
        char ins[32];
        int k = snprintf(ins, sizeof ins, "\"max_tokens\":%d%s", cap, json_object_size(j) ? "," : "");
        put(out, p, at);
        put(out, ins, (size_t)k);
        put(out, p + at, n - at);
    } else {
        put(out, p, n);
    }
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g.started) start();
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
    char head[1024];
    int hn = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", path, body.len);
    put(&req, head, (size_t)hn);
    if (body.len) put(&req, body.p, body.len);
    cur_path = path;
    cur_req = &req;
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
