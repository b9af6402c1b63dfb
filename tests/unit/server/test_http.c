/*
 * test_http.c — the HTTP server in-process, on a free loopback port, over
 * real sockets: routing (404, 405 + Allow, {param} decoding, queries),
 * JSON bodies (echo, malformed JSON with line and column, non-objects),
 * the body limit (declared and chunked), auth (Bearer, X-API-Key, wrong
 * key, /health without key), error mapping (FR_E* → status, code,
 * Retry-After), the body getters of body.c (values, and the 400 naming
 * the field for each kind of bad one), SSE streams (events, [DONE], the error event, a client
 * that leaves), a client gone during a blocking handler, the slow-header
 * watchdog, a handler and a stream that block longer than the idle
 * timeout, draining (in-flight requests finish, open and new connections
 * get 503 shutting_down, the port closes at the end; the timeout path calls
 * the cancel hook), the metrics, and no leaked bytes at the end.
 */
#include "harness.h"
#include "client.h"

#include <pthread.h>
#include <stdatomic.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "server/server_int.h"

/* ---- test routes ---- */

static atomic_int block_saw_gone, block_running, gone_hook_calls;
static atomic_int fin_calls, fin_completed;
static atomic_bool release_block;

static int h_echo(fr_req *rq) {
    json_t *j = fr__req_json(rq);
    return fr__reply_json(rq, 200, json_pack("{s:O?, s:b}", "got", j, "empty", j == NULL));
}

static int h_item(fr_req *rq) {
    return fr__reply_json(rq, 200, json_pack("{s:s}", "id", fr__req_param(rq, "id")));
}

static int h_query(fr_req *rq) {
    const char *q = fr__req_query(rq, "q");
    return fr__reply_json(rq, 200, json_pack("{s:s?}", "q", q));
}

static int h_err(fr_req *rq) { return fr_errf(FR_ENOENT, "model 'x' is not offered"); }

static int h_busy(fr_req *rq) {
    fr__req_set_retry_after(rq, 2.5);
    return fr__reply_err(rq, fr_errf(FR_EBUSY, "all 4 slots and 16 queue places are taken"), NULL);
}

static int h_noreply(fr_req *rq) { return 0; }

/* Every getter of body.c on one body; each step passes FR_REPLIED (a 400
 * went) straight up, as handlers do. */
static int h_fields(fr_req *rq) {
    fr_body b;
    long long n = 1;
    float t = 0.5f;
    bool flag = false, have_n = false;
    const char *name = NULL, *opt = "dflt";
    size_t name_len = 0;
    json_t *o = NULL;
    double x = -1;
    int64_t keep = -2;
    int rc;
    if ((rc = fr__body_need(rq, &b)) || (rc = fr__body_int(&b, "n", 1, 3, &n, &have_n)) ||
        (rc = fr__body_float(&b, "t", 0, 2, &t, NULL)) || (rc = fr__body_bool(&b, "flag", &flag)) ||
        (rc = fr__body_str(&b, "name", FR_BODY_REQUIRED, &name, &name_len)) ||
        (rc = fr__body_str(&b, "opt", 0, &opt, NULL)) || (rc = fr__body_object(&b, "o", "an object {\"x\": number}", &o)))
        return rc;
    fr_body ob = {.rq = rq, .obj = o, .prefix = "o"};
    if ((rc = fr__body_num(&ob, "x", 0, 1, &x, NULL)) || (rc = fr__body_keep_alive(&b, &keep))) return rc;
    return fr__reply_json(rq, 200, json_pack("{s:I, s:b, s:f, s:b, s:s, s:I, s:s, s:f, s:I}", "n", (json_int_t)n,
                                             "have_n", have_n, "t", (double)t, "flag", flag, "name", name, "name_len",
                                             (json_int_t)name_len, "opt", opt, "x", x, "keep", (json_int_t)keep));
}

static void gone_hook(void *ud) { atomic_fetch_add(&gone_hook_calls, 1); }

/* Blocks until the client leaves, the server stops, or the test releases it. */
static int h_block(fr_req *rq) {
    fr__req_on_gone(rq, gone_hook, NULL);
    atomic_fetch_add(&block_running, 1);
    for (int i = 0; i < 200 && !atomic_load(&release_block); i++)
        if (fr__req_gone(rq, 50)) { atomic_fetch_add(&block_saw_gone, 1); break; }
    atomic_fetch_sub(&block_running, 1);
    return fr__reply_json(rq, 200, json_pack("{s:s}", "status", "released"));
}

static atomic_int slow_started;

static int h_slow(fr_req *rq) {
    atomic_fetch_add(&slow_started, 1);
    const char *ms = fr__req_query(rq, "ms");
    milli_sleep(ms ? atoi(ms) : 100);
    return fr__reply_json(rq, 200, json_pack("{s:s}", "status", "done"));
}

typedef struct stream_ud { int sent, n, fail_after, gap_ms; bool wait_gone; } stream_ud;

static int pull(fr_sse *st, void *ud) {
    stream_ud *s = ud;
    if (s->wait_gone) {
        while (!fr__sse_gone(st, 50)) {}
        return fr_errf(FR_EINTERNAL, "client left");
    }
    if (s->fail_after >= 0 && s->sent == s->fail_after) return fr_errf(FR_EBUSY, "the model was unloaded");
    if (s->sent == s->n) return FR_SSE_END;
    if (s->gap_ms && s->sent) milli_sleep(s->gap_ms);
    int rc = fr__sse_json(st, json_pack("{s:i, s:s}", "i", s->sent, "text", "line\nbreak"));
    s->sent++;
    return rc;
}

static void fin(void *ud, bool completed) {
    atomic_fetch_add(&fin_calls, 1);
    if (completed) atomic_fetch_add(&fin_completed, 1);
    fr_free(ud);
}

static int h_stream(fr_req *rq) {
    stream_ud *s = fr_calloc(1, sizeof *s);
    if (!s) return FR_ENOMEM;
    const char *mode = fr__req_query(rq, "mode"), *gap = fr__req_query(rq, "gap");
    s->n = 3;
    s->fail_after = mode && !strcmp(mode, "fail") ? 1 : -1;
    s->wait_gone = mode && !strcmp(mode, "wait");
    s->gap_ms = gap ? atoi(gap) : 0;
    int rc = fr__reply_sse(rq, pull, fin, s);
    if (rc < 0) fr_free(s);
    return rc;
}

static const fr_route test_routes[] = {
    {"GET", "/health", fr__h_health, FR_ROUTE_PUBLIC | FR_ROUTE_DRAIN_OK},
    {"GET", "/metrics", fr__h_metrics, FR_ROUTE_DRAIN_OK},
    {"POST", "/echo", h_echo, FR_ROUTE_JSON},
    {"PUT", "/echo", h_echo, FR_ROUTE_JSON},
    {"GET", "/items/{id}/x", h_item, 0},
    {"GET", "/query", h_query, 0},
    {"GET", "/err", h_err, 0},
    {"GET", "/busy", h_busy, 0},
    {"GET", "/noreply", h_noreply, 0},
    {"POST", "/fields", h_fields, FR_ROUTE_JSON},
    {"GET", "/block", h_block, 0},
    {"GET", "/slow", h_slow, 0},
    {"GET", "/stream", h_stream, 0},
};

static fr_server *start(fr_metrics *m, const char *const *keys, size_t n_keys, int64_t conn_timeout_ms) {
    fr_server_config cfg = {.port = 0, .api_keys = keys, .n_api_keys = n_keys, .max_body = 1024,
                            .conn_timeout_ms = conn_timeout_ms,
                            .header_timeout_ms = conn_timeout_ms, .metrics = m};
    fr_server *s = NULL;
    int rc = fr__server_create_routes(&cfg, test_routes, sizeof test_routes / sizeof test_routes[0], &s);
    CHECK_MSG(rc == 0, "server create: %s", fr_errdetail());
    return s;
}

static json_t *body_json(const http_resp *r) {
    json_error_t e;
    return json_loadb(r->body ? r->body : "", r->body_len, 0, &e);
}

/* The error object's field, or "" (the caller keeps j). */
static const char *err_field(json_t *j, const char *f) {
    const char *s = json_string_value(json_object_get(json_object_get(j, "error"), f));
    return s ? s : "";
}

static void wait_for(atomic_int *v, int want, int ms) {
    for (int i = 0; i < ms / 10 && atomic_load(v) < want; i++) milli_sleep(10);
}

/* ---- tests ---- */

static void test_routing(int port) {
    http_resp r;
    char v[128];
    CHECK(http_do(port, "GET", "/health", NULL, NULL, &r));
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "{\"status\":\"ok\"}");
    CHECK(http_header(&r, "X-Request-Id", v, sizeof v) != NULL);
    http_resp_free(&r);

    CHECK(http_do(port, "GET", "/nope", NULL, NULL, &r));
    CHECK_INT(r.status, 404);
    json_t *j = body_json(&r);
    CHECK_STR(err_field(j, "type"), "invalid_request_error");
    CHECK_STR(err_field(j, "code"), "not_found");
    CHECK(json_is_null(json_object_get(json_object_get(j, "error"), "param")));
    json_decref(j);
    http_resp_free(&r);

    CHECK(http_do(port, "DELETE", "/echo", NULL, NULL, &r));
    CHECK_INT(r.status, 405);
    CHECK_STR(http_header(&r, "Allow", v, sizeof v), "POST, PUT");
    j = body_json(&r);
    CHECK_STR(err_field(j, "code"), "method_not_allowed");
    json_decref(j);
    http_resp_free(&r);

    CHECK(http_do(port, "GET", "/items/org%2Fmodel%20a/x", NULL, NULL, &r));
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "{\"id\":\"org/model a\"}");
    http_resp_free(&r);
    CHECK(http_do(port, "GET", "/items/bad%zz/x", NULL, NULL, &r));
    CHECK_INT(r.status, 400);
    http_resp_free(&r);
    CHECK(http_do(port, "GET", "/items//x", NULL, NULL, &r));
    CHECK_INT(r.status, 404);
    http_resp_free(&r);

    CHECK(http_do(port, "GET", "/query?q=a%20b+c&other=1", NULL, NULL, &r));
    CHECK_STR(r.body, "{\"q\":\"a b c\"}");
    http_resp_free(&r);
    CHECK(http_do(port, "GET", "/query", NULL, NULL, &r));
    CHECK_STR(r.body, "{\"q\":null}");
    http_resp_free(&r);
}

static void test_bodies(int port) {
    http_resp r;
    CHECK(http_do(port, "POST", "/echo", NULL, "{\"a\": [1, 2]}", &r));
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "{\"got\":{\"a\":[1,2]},\"empty\":false}");
    http_resp_free(&r);
    CHECK(http_do(port, "POST", "/echo", NULL, NULL, &r));
    CHECK_STR(r.body, "{\"got\":null,\"empty\":true}");
    http_resp_free(&r);

    CHECK(http_do(port, "POST", "/echo", NULL, "{\"a\": tru}", &r));
    CHECK_INT(r.status, 400);
    json_t *j = body_json(&r);
    CHECK_MSG(strstr(err_field(j, "message"), "malformed JSON at line 1, column ") != NULL, "message: %s",
              err_field(j, "message"));
    CHECK_STR(err_field(j, "type"), "invalid_request_error");
    json_decref(j);
    http_resp_free(&r);
    CHECK(http_do(port, "POST", "/echo", NULL, "{\n  \"a\": 1,\n  oops\n}", &r));
    j = body_json(&r);
    CHECK_MSG(strstr(err_field(j, "message"), "at line 3, column") != NULL, "message: %s", err_field(j, "message"));
    json_decref(j);
    http_resp_free(&r);
    CHECK(http_do(port, "POST", "/echo", NULL, "[1, 2]", &r));
    CHECK_INT(r.status, 400);
    http_resp_free(&r);

    /* a declared Content-Length over the limit: 413 before the body */
    char big[2001];
    memset(big, ' ', 2000);
    big[2000] = 0;
    CHECK(http_do(port, "POST", "/echo", NULL, big, &r));
    CHECK_INT(r.status, 413);
    j = body_json(&r);
    CHECK_STR(err_field(j, "code"), "body_too_large");
    json_decref(j);
    http_resp_free(&r);
    /* a chunked body that grows past the limit */
    int fd = http_connect(port);
    const char *h = "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    CHECK(http_send(fd, h, strlen(h)));
    char chunk[600];
    int n = snprintf(chunk, sizeof chunk, "200\r\n");
    memset(chunk + n, ' ', 512);
    memcpy(chunk + n + 512, "\r\n", 2);
    for (int i = 0; i < 3; i++) http_send(fd, chunk, (size_t)n + 514);
    http_send(fd, "0\r\n\r\n", 5);
    CHECK(http_read(fd, &r));
    CHECK_MSG(r.status == 413, "status %d: %s", r.status, r.body);
    http_resp_free(&r);
    close(fd);
}

static void test_errors(int port) {
    http_resp r;
    char v[64];
    CHECK(http_do(port, "GET", "/err", NULL, NULL, &r));
    CHECK_INT(r.status, 404);
    json_t *j = body_json(&r);
    CHECK_STR(err_field(j, "message"), "model 'x' is not offered");
    json_decref(j);
    http_resp_free(&r);
    CHECK(http_do(port, "GET", "/busy", NULL, NULL, &r));
    CHECK_INT(r.status, 503);
    CHECK_STR(http_header(&r, "Retry-After", v, sizeof v), "3");
    j = body_json(&r);
    CHECK_STR(err_field(j, "type"), "server_error");
    CHECK_STR(err_field(j, "code"), "overloaded");
    json_decref(j);
    http_resp_free(&r);
    CHECK(http_do(port, "GET", "/noreply", NULL, NULL, &r));
    CHECK_INT(r.status, 500);
    http_resp_free(&r);
    CHECK_STR(fr__err_code(FR_ENOENT, "model"), "model_not_found");
    CHECK_STR(fr__err_code(FR_ETOOLONG, NULL), "context_length_exceeded");
    CHECK_INT(fr_errstatus(FR_ETOOLONG), 413);
}

/* body.c: the values read, and the 400 of each kind of bad field. */
static void test_fields(int port) {
    http_resp r;
    CHECK(http_do(port, "POST", "/fields", NULL, "{\"name\": \"a\"}", &r));
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "{\"n\":1,\"have_n\":false,\"t\":0.5,\"flag\":false,\"name\":\"a\",\"name_len\":1,"
                      "\"opt\":\"dflt\",\"x\":-1.0,\"keep\":-2}");
    http_resp_free(&r);
    CHECK(http_do(port, "POST", "/fields", NULL,
                  "{\"n\": 3, \"t\": 2, \"flag\": true, \"name\": \"bc\", \"opt\": null, \"o\": {\"x\": 1}, "
                  "\"keep_alive\": \"1m\"}", &r));
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "{\"n\":3,\"have_n\":true,\"t\":2.0,\"flag\":true,\"name\":\"bc\",\"name_len\":2,"
                      "\"opt\":\"dflt\",\"x\":1.0,\"keep\":60000}");
    http_resp_free(&r);
    CHECK(http_do(port, "POST", "/fields", NULL, "{\"name\": \"a\", \"keep_alive\": -5}", &r));
    CHECK_MSG(r.status == 200 && strstr(r.body, "\"keep\":-1}"), "%d %s", r.status, r.body);
    http_resp_free(&r);

    static const struct { const char *body, *code, *param, *message; } bad[] = {
        {NULL, "missing_field", NULL, "the request needs a JSON body"},
        {"{}", "missing_field", "name", "name is required"},
        {"{\"name\": null}", "invalid_value", "name", "name must be a non-empty string"},
        {"{\"name\": \"\"}", "invalid_value", "name", "name must be a non-empty string"},
        {"{\"name\": \"a\\u0000b\"}", "invalid_json", NULL, NULL},     /* no NUL ever reaches a getter */
        {"{\"name\": \"a\", \"n\": 1.5}", "invalid_value", "n", "n must be an integer"},
        {"{\"name\": \"a\", \"n\": 4}", "invalid_value", "n", "n must be between 1 and 3 (got 4)"},
        {"{\"name\": \"a\", \"t\": \"x\"}", "invalid_value", "t", "t must be a number"},
        {"{\"name\": \"a\", \"t\": 2.5}", "invalid_value", "t", "t must be between 0 and 2 (got 2.5)"},
        {"{\"name\": \"a\", \"flag\": 1}", "invalid_value", "flag", "flag must be true or false"},
        {"{\"name\": \"a\", \"opt\": 7}", "invalid_value", "opt", "opt must be a non-empty string"},
        {"{\"name\": \"a\", \"o\": []}", "invalid_value", "o", "o must be an object {\"x\": number}"},
        {"{\"name\": \"a\", \"o\": {\"x\": true}}", "invalid_value", "o.x", "o.x must be a number"},
        {"{\"name\": \"a\", \"o\": {\"x\": 2}}", "invalid_value", "o.x", "o.x must be between 0 and 1 (got 2)"},
        {"{\"name\": \"a\", \"keep_alive\": \"soon\"}", "invalid_value", "keep_alive",
         "keep_alive must be a duration like \"5m\", \"0\" or \"-1\", or seconds"},
        {"{\"name\": \"a\", \"keep_alive\": 1e300}", "invalid_value", "keep_alive",
         "keep_alive 1e+300 s is out of range"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(http_do(port, "POST", "/fields", NULL, bad[i].body, &r));
        CHECK_MSG(r.status == 400, "%s: status %d", bad[i].body ? bad[i].body : "(none)", r.status);
        json_t *j = body_json(&r);
        CHECK_STR(err_field(j, "code"), bad[i].code);
        if (bad[i].message) CHECK_STR(err_field(j, "message"), bad[i].message);
        json_t *param = json_object_get(json_object_get(j, "error"), "param");
        if (bad[i].param) CHECK_STR(json_string_value(param) ? json_string_value(param) : "", bad[i].param);
        else CHECK(json_is_null(param));
        json_decref(j);
        http_resp_free(&r);
    }
}

static void test_streams(int port) {
    http_resp r;
    char v[64];
    atomic_store(&fin_calls, 0);
    atomic_store(&fin_completed, 0);
    CHECK(http_do(port, "GET", "/stream", NULL, NULL, &r));
    CHECK_INT(r.status, 200);
    CHECK_STR(http_header(&r, "Content-Type", v, sizeof v), "text/event-stream");
    CHECK_STR(http_header(&r, "Cache-Control", v, sizeof v), "no-cache");
    CHECK_STR(r.body, "data: {\"i\":0,\"text\":\"line\\nbreak\"}\n\n"
                      "data: {\"i\":1,\"text\":\"line\\nbreak\"}\n\n"
                      "data: {\"i\":2,\"text\":\"line\\nbreak\"}\n\n"
                      "data: [DONE]\n\n");
    http_resp_free(&r);
    wait_for(&fin_calls, 1, 2000);
    CHECK_INT(atomic_load(&fin_completed), 1);

    CHECK(http_do(port, "GET", "/stream?mode=fail", NULL, NULL, &r));
    CHECK_INT(r.status, 200);
    CHECK_MSG(strstr(r.body, "data: {\"i\":0,") == r.body, "body: %s", r.body);
    const char *e = strstr(r.body, "data: {\"error\":");
    CHECK_MSG(e && strstr(e, "the model was unloaded") && strstr(e, "\"code\":\"overloaded\""), "body: %s", r.body);
    size_t bl = strlen(r.body);
    CHECK(bl > 14 && !strcmp(r.body + bl - 14, "data: [DONE]\n\n"));
    http_resp_free(&r);
    wait_for(&fin_calls, 2, 2000);
    CHECK_INT(atomic_load(&fin_completed), 2);

    /* a client that leaves while pull waits: pull notices, fin(false) */
    int fd = http_connect(port);
    const char *req = "GET /stream?mode=wait HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    CHECK(http_send(fd, req, strlen(req)));
    char buf[256];
    CHECK(recv(fd, buf, sizeof buf, 0) > 0);        /* the headers */
    close(fd);
    wait_for(&fin_calls, 3, 5000);
    CHECK_INT(atomic_load(&fin_calls), 3);
    CHECK_INT(atomic_load(&fin_completed), 2);
}

static void test_gone(int port) {
    atomic_store(&block_saw_gone, 0);
    atomic_store(&gone_hook_calls, 0);
    int fd = http_connect(port);
    const char *req = "GET /block HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    CHECK(http_send(fd, req, strlen(req)));
    wait_for(&block_running, 1, 5000);
    close(fd);
    wait_for(&block_saw_gone, 1, 5000);
    CHECK_INT(atomic_load(&block_saw_gone), 1);
    CHECK_INT(atomic_load(&gone_hook_calls), 1);
}

static void test_slow_headers(int port) {
    /* conn timeout 500 ms: a request trickling in at one byte per 100 ms is
     * cut, while other clients are answered. */
    int fd = http_connect(port);
    const char *req = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    bool cut = false, others_ok = true;
    for (size_t i = 0; i < strlen(req) && !cut; i++) {
        if (!http_send(fd, req + i, 1)) { cut = true; break; }
        if (http_wait_closed(fd, 100)) cut = true;
        if (i % 10 == 0) {
            http_resp r;
            others_ok &= http_do(port, "GET", "/health", NULL, NULL, &r) && r.status == 200;
            http_resp_free(&r);
        }
    }
    CHECK_MSG(cut, "a client sending one byte per 100 ms was not dropped");
    CHECK(others_ok);
    close(fd);
}

static void test_long_handlers(int port) {
    /* conn timeout 500 ms, libmicrohttpd's idle timeout 1 s: a handler that
     * blocks 1.6 s and a stream with 1.2 s gaps still complete. */
    http_resp r;
    CHECK(http_do(port, "GET", "/slow?ms=1600", NULL, NULL, &r));
    CHECK_INT(r.status, 200);
    http_resp_free(&r);
    CHECK(http_do(port, "GET", "/stream?gap=1200", NULL, NULL, &r));
    CHECK_INT(r.status, 200);
    CHECK_MSG(strstr(r.body, "\"i\":2") && strstr(r.body, "[DONE]"), "body: %s", r.body);
    http_resp_free(&r);
}

static void test_auth(void) {
    const char *keys[] = {"sk-one", "sk-two-longer"};
    fr_metrics *m;
    CHECK(fr_metrics_create(&m) == 0);
    fr_server *s = start(m, keys, 2, 0);
    if (!s) { fr_metrics_destroy(m); return; }
    int port = fr_server_port(s);
    http_resp r;
    CHECK(http_do(port, "GET", "/metrics", NULL, NULL, &r));
    CHECK_INT(r.status, 401);
    json_t *j = body_json(&r);
    CHECK_STR(err_field(j, "code"), "unauthorized");
    json_decref(j);
    http_resp_free(&r);
    CHECK(http_do(port, "GET", "/metrics", "Authorization: Bearer sk-on\r\n", NULL, &r));
    CHECK_INT(r.status, 401);
    http_resp_free(&r);
    CHECK(http_do(port, "GET", "/metrics", "Authorization: Bearer sk-one-\r\n", NULL, &r));
    CHECK_INT(r.status, 401);
    http_resp_free(&r);
    CHECK(http_do(port, "GET", "/metrics", "Authorization: Bearer sk-two-longer\r\n", NULL, &r));
    CHECK_INT(r.status, 200);
    http_resp_free(&r);
    CHECK(http_do(port, "GET", "/metrics", "Authorization: bearer   sk-one\r\n", NULL, &r));
    CHECK_INT(r.status, 200);
    http_resp_free(&r);
    CHECK(http_do(port, "GET", "/metrics", "X-API-Key: sk-one\r\n", NULL, &r));
    CHECK_INT(r.status, 200);
    http_resp_free(&r);
    CHECK(http_do(port, "GET", "/health", NULL, NULL, &r));
    CHECK_INT(r.status, 200);
    http_resp_free(&r);
    /* unauthorised bodies are refused before they are read */
    CHECK(http_do(port, "POST", "/echo", NULL, "{}", &r));
    CHECK_INT(r.status, 401);
    http_resp_free(&r);
    fr_server_destroy(s);
    fr_metrics_destroy(m);
}

typedef struct bg_req { int port; const char *path; http_resp r; bool ok; } bg_req;

static void *bg_main(void *arg) {
    bg_req *b = arg;
    b->ok = http_do(b->port, "GET", b->path, NULL, NULL, &b->r);
    return NULL;
}

static atomic_int cancel_calls;
static void on_cancel(void *ud) {
    atomic_fetch_add(&cancel_calls, 1);
    atomic_store(&release_block, true);
}

typedef struct drain_arg { fr_server *s; int64_t timeout; int rc; } drain_arg;
static void *drain_main(void *arg) {
    drain_arg *d = arg;
    d->rc = fr_server_drain(d->s, d->timeout);
    return NULL;
}

static void test_drain(void) {
    fr_metrics *m;
    CHECK(fr_metrics_create(&m) == 0);
    fr_server *s = start(m, NULL, 0, 0);
    if (!s) { fr_metrics_destroy(m); return; }
    int port = fr_server_port(s);

    /* an idle keep-alive connection, opened before the drain */
    int ka = http_connect(port);
    const char *hreq = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    http_resp r;
    CHECK(http_send(ka, hreq, strlen(hreq)) && http_read(ka, &r));
    CHECK_INT(r.status, 200);
    http_resp_free(&r);

    /* a request in flight when the drain starts finishes normally */
    bg_req slow = {.port = port, .path = "/slow?ms=600"};
    pthread_t t;
    atomic_store(&slow_started, 0);
    pthread_create(&t, NULL, bg_main, &slow);
    wait_for(&slow_started, 1, 5000);
    drain_arg d = {.s = s, .timeout = 10000};
    pthread_t dt;
    pthread_create(&dt, NULL, drain_main, &d);
    for (int i = 0; i < 500 && !fr_server_draining(s); i++) milli_sleep(10);
    milli_sleep(50);

    CHECK(http_send(ka, hreq, strlen(hreq)) && http_read(ka, &r));
    CHECK_INT(r.status, 503);
    CHECK_STR(r.body, "{\"status\":\"shutting_down\"}");
    char v[32];
    CHECK(http_header(&r, "Retry-After", v, sizeof v) != NULL);
    http_resp_free(&r);
    close(ka);
    /* a new client is answered, not refused: 503 shutting_down */
    int nc = http_connect(port);
    CHECK_MSG(nc >= 0, "a new connection while draining was refused");
    if (nc >= 0) {
        CHECK(http_send(nc, hreq, strlen(hreq)) && http_read(nc, &r));
        CHECK_INT(r.status, 503);
        CHECK_STR(r.body, "{\"status\":\"shutting_down\"}");
        CHECK(http_header(&r, "Retry-After", v, sizeof v) != NULL);
        CHECK_STR(http_header(&r, "Connection", v, sizeof v), "close");
        http_resp_free(&r);
        close(nc);
    }
    int nc2 = http_connect(port);
    if (nc2 >= 0) {
        const char *ereq = "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}";
        CHECK(http_send(nc2, ereq, strlen(ereq)) && http_read(nc2, &r));
        CHECK_INT(r.status, 503);
        CHECK_MSG(strstr(r.body ? r.body : "", "shutting_down") != NULL, "body: %s", r.body);
        CHECK(http_header(&r, "Retry-After", v, sizeof v) != NULL);
        http_resp_free(&r);
        close(nc2);
    }

    pthread_join(t, NULL);
    CHECK(slow.ok);
    CHECK_INT(slow.r.status, 200);
    http_resp_free(&slow.r);
    pthread_join(dt, NULL);
    CHECK_INT(d.rc, 0);
    fr_server_destroy(s);
    /* once drained, the server no longer listens */
    int after = http_connect(port);
    CHECK_MSG(after < 0, "a connection after the drain was accepted");
    if (after >= 0) close(after);

    /* the timeout path: a blocked request is cancelled through the hook */
    s = start(m, NULL, 0, 0);
    if (!s) { fr_metrics_destroy(m); return; }
    port = fr_server_port(s);
    atomic_store(&release_block, false);
    atomic_store(&cancel_calls, 0);
    fr_server_set_cancel_hook(s, on_cancel, NULL);
    bg_req blk = {.port = port, .path = "/block"};
    pthread_create(&t, NULL, bg_main, &blk);
    wait_for(&block_running, 1, 5000);
    CHECK_INT(fr_server_drain(s, 100), FR_EBUSY);
    CHECK_INT(atomic_load(&cancel_calls), 1);
    pthread_join(t, NULL);
    CHECK(blk.ok && blk.r.status == 200);
    http_resp_free(&blk.r);
    fr_server_destroy(s);
    fr_metrics_destroy(m);
}

static void test_metrics(int port) {
    http_resp r;
    CHECK(http_do(port, "GET", "/metrics", NULL, NULL, &r));
    CHECK_INT(r.status, 200);
    char v[64];
    CHECK_MSG(http_header(&r, "Content-Type", v, sizeof v) && !strncmp(v, "text/plain; version=0.0.4", 25),
              "content type %s", v);
    CHECK(strstr(r.body, "# TYPE frugal_http_requests_total counter\n") != NULL);
    CHECK(strstr(r.body, "frugal_http_requests_total{route=\"/health\",status=\"200\"} ") != NULL);
    CHECK(strstr(r.body, "frugal_http_requests_total{route=\"unmatched\",status=\"404\"} 2\n") != NULL);
    CHECK(strstr(r.body, "frugal_http_requests_total{route=\"/items/{id}/x\",status=\"200\"} 1\n") != NULL);
    CHECK(strstr(r.body, "frugal_http_request_duration_seconds_bucket{route=\"/health\",le=\"+Inf\"} ") != NULL);
    CHECK(strstr(r.body, "frugal_http_requests_in_flight 1\n") != NULL);     /* this request */
    CHECK(strstr(r.body, "# TYPE frugal_http_connections gauge\n") != NULL);
    http_resp_free(&r);
}

int main(void) {
    fr_log_set_level(getenv("TEST_DEBUG") ? FR_LOG_DEBUG : FR_LOG_ERROR);
    size_t mem0 = fr_mem_in_use();
    fr_metrics *m;
    CHECK(fr_metrics_create(&m) == 0);
    fr_server *s = start(m, NULL, 0, 500);
    if (s) {
        int port = fr_server_port(s);
        CHECK(port > 0);
        test_routing(port);
        test_bodies(port);
        test_errors(port);
        test_fields(port);
        test_streams(port);
        test_gone(port);
        test_slow_headers(port);
        test_long_handlers(port);
        test_metrics(port);
        fr_server_destroy(s);
    }
    fr_metrics_destroy(m);
    test_auth();
    test_drain();
    CHECK_INT(fr_mem_in_use(), mem0);
    return harness_done();
}
