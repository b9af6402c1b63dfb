/*
 * fuzz_http.h — what the fuzz targets that speak HTTP to the real server
 * (fuzz_request.c, fuzz_search.c) share: a growing byte buffer, one
 * exchange over a fresh loopback connection with an overall deadline, the
 * response's parse (Content-Length or chunked), header lookup, the checks
 * every route's reply must pass (API.md's error shape, Retry-After on a
 * 503, an event stream's lines), the failure report (the request, the
 * response, then abort), the target's exit when it cannot run, its
 * scratch directory of model links, the heap check at exit, the
 * request's bytes, the "max_tokens" cap put into a body, and the sweep of
 * scratch directories that crashed runs left in /tmp.
 *
 * A target sets fh before anything else: its name (the prefix of every
 * message and of its scratch directory /tmp/NAME.PID), the deadline of
 * one exchange and the response's cap; then, once its server runs, the
 * port.
 * Everything here is static (FH_FN: marked unused, so that a target
 * need not call all of it), and not inline: GCC's -Wstringop-overflow
 * misreads put() once it is inlined into make_body().  Memory is plain
 * malloc: it is the target's, not the server's counted heap.
 */
#ifndef FR_FUZZ_HTTP_H
#define FR_FUZZ_HTTP_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base/log.h"
#include "base/mem.h"

#define FH_FN static __attribute__((unused))
#define FH_MAX_MODELS 8

typedef struct buf { char *p; size_t len, cap; } buf;

static struct fuzz_http {
    const char *name;           /* "fuzz_request": messages, /tmp/NAME.PID */
    int port;                   /* the server's, on 127.0.0.1 */
    double deadline_s;          /* one exchange; more is a hang */
    size_t max_resp;            /* more response bytes than this is a runaway */
    bool verbose;               /* FUZZ_VERBOSE: print each status and reply */
    /* What was asked, for the messages of a failure. */
    const char *cur_path;
    const buf *cur_req;
} fh;

/* The target cannot run: say why, exit 2. */
FH_FN void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
FH_FN void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", fh.name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* A run that crashed never reached teardown: remove, with the target's
 * remove_dir, the directories /tmp/NAME.PID of processes that are gone. */
FH_FN void sweep_stale_dirs(void (*remove_dir)(const char *dir)) {
    char prefix[64];
    size_t pn = (size_t)snprintf(prefix, sizeof prefix, "%s.", fh.name);
    DIR *d = opendir("/tmp");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, prefix, pn)) continue;
        long pid = strtol(e->d_name + pn, &end, 10);
        if (*end || pid <= 0 || pid == getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;   /* alive, or not ours */
        char dir[300];
        snprintf(dir, sizeof dir, "/tmp/%s", e->d_name);
        remove_dir(dir);
    }
    if (d) closedir(d);
}

/* The start of a target: the server's log level (FUZZ_DEBUG=1: debug,
 * else errors only), fh.verbose (FUZZ_VERBOSE=1), then the scratch
 * directory /tmp/NAME.PID into dir, made afresh, with a link dir/F.gguf
 * to $FRUGAL_TESTDATA/models/F.gguf (default ../shared/testdata) for each
 * of the n model files.  remove_dir is the target's: it removes what the
 * target puts in such a directory, here the stale ones and a crashed
 * run's under the same pid.  A model that cannot be read, a directory or
 * a link that cannot be made: die. */
FH_FN void fh_scratch_dir(const char *const *models, int n, void (*remove_dir)(const char *dir), char *dir,
                          size_t dir_size) {
    fr_log_set_level(getenv("FUZZ_DEBUG") ? FR_LOG_DEBUG : FR_LOG_ERROR);
    fh.verbose = getenv("FUZZ_VERBOSE") != NULL;
    const char *td = getenv("FRUGAL_TESTDATA");
    if (!td) td = "../shared/testdata";
    char abs[FH_MAX_MODELS][4096];
    if (n > FH_MAX_MODELS) die("more than %d models", FH_MAX_MODELS);
    for (int i = 0; i < n; i++) {
        char rel[1024];
        snprintf(rel, sizeof rel, "%s/models/%s.gguf", td, models[i]);
        if (!realpath(rel, abs[i]) || access(abs[i], R_OK) != 0)
            die("cannot read %s: %s (set FRUGAL_TESTDATA)", rel, strerror(errno));
    }
    sweep_stale_dirs(remove_dir);
    snprintf(dir, dir_size, "/tmp/%s.%d", fh.name, (int)getpid());
    remove_dir(dir);                        /* a crashed run's, under the same pid */
    if (mkdir(dir, 0700) != 0) die("cannot make the scratch directory %s: %s", dir, strerror(errno));
    for (int i = 0; i < n; i++) {
        char link[400];
        snprintf(link, sizeof link, "%s/%s.gguf", dir, models[i]);
        if (symlink(abs[i], link) != 0) die("cannot link %s: %s", link, strerror(errno));
    }
}

/* At exit, once the server and all it started are stopped: the counted
 * heap must be back at mem0, or abort. */
FH_FN void fh_check_heap(size_t mem0) {
    if (fr_mem_in_use() != mem0) {
        fprintf(stderr, "%s: %lld counted heap bytes still in use after shutdown (%zu before)\n", fh.name,
                (long long)fr_mem_in_use(), mem0);
        abort();
    }
}

/* ---- the client ---- */

FH_FN void put(buf *b, const void *s, size_t n) {
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

FH_FN double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Print what failed, the request (fh.cur_path, fh.cur_req), the response
 * and, when at is given, the part of it at fault; then abort. */
FH_FN void fail_at(const char *what, const buf *resp, const char *at, size_t at_len) __attribute__((noreturn));
FH_FN void fail_at(const char *what, const buf *resp, const char *at, size_t at_len) {
    const buf *req = fh.cur_req;
    fprintf(stderr, "%s: %s\n--- request %s (%zu bytes):\n%.*s\n--- response (%zu bytes):\n%.*s\n---\n",
            fh.name, what, fh.cur_path, req ? req->len : 0, req ? (int)(req->len > 8000 ? 8000 : req->len) : 0,
            req ? req->p : "", resp ? resp->len : 0, resp ? (int)(resp->len > 65536 ? 65536 : resp->len) : 0,
            resp && resp->p ? resp->p : "");
    if (at) fprintf(stderr, "--- at:\n%.*s\n---\n", (int)(at_len > 8000 ? 8000 : at_len), at);
    abort();
}

FH_FN void fail(const char *what, const buf *resp) __attribute__((noreturn));
FH_FN void fail(const char *what, const buf *resp) { fail_at(what, resp, NULL, 0); }

/* A request's bytes: METHOD PATH with a Content-Length, "Connection:
 * close", then the body. */
FH_FN void make_request(const char *method, const char *path, const void *body, size_t len, buf *req) {
    char head[1024];
    int hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", method, path, len);
    put(req, head, (size_t)hn);
    if (len) put(req, body, len);
}

/* The body p[0..n), with "max_tokens":cap put in after the opening brace
 * when cap is not 0 and the body is a JSON object that sets neither
 * max_tokens nor max_completion_tokens; else as it is. */
FH_FN void make_body(const uint8_t *p, size_t n, int cap, buf *out) {
    json_error_t e;
    json_t *j = cap ? json_loadb((const char *)p, n, 0, &e) : NULL;
    /* An object's first byte that is not white space is its brace. */
    const uint8_t *brace = json_is_object(j) ? memchr(p, '{', n) : NULL;
    if (brace && !json_object_get(j, "max_tokens") && !json_object_get(j, "max_completion_tokens")) {
        size_t at = (size_t)(brace - p) + 1;
        char ins[32];
        snprintf(ins, sizeof ins, "\"max_tokens\":%d%s", cap, json_object_size(j) ? "," : "");
        put(out, p, at);
        put(out, ins, strlen(ins));
        put(out, p + at, n - at);
    } else {
        put(out, p, n);
    }
    json_decref(j);
}

/* Send req to fh.port, read until the server closes (within fh.deadline_s
 * and fh.max_resp, or fail).  false: the connection was reset or dropped
 * before any byte came back. */
FH_FN bool exchange(const buf *req, buf *resp) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket() failed", NULL);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fh.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {(time_t)fh.deadline_s, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) fail("cannot connect to the server", NULL);
    double deadline = now_s() + fh.deadline_s;
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
        if (resp->len + (size_t)r > fh.max_resp) {
            char what[64];
            snprintf(what, sizeof what, "the response passed %zu MiB", fh.max_resp >> 20);
            fail(what, resp);
        }
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
    char ctype[128], retry_after[32];
    buf body;                   /* de-chunked */
} http_resp;

FH_FN bool header(const char *head, const char *name, char *out, size_t size) {
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

/* The status, Content-Type, Retry-After and the body of raw; the caller
 * frees r->body.p. */
FH_FN void parse_http(const buf *raw, http_resp *r) {
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

/* A 503 carries Retry-After: an integer >= 1. */
FH_FN void check_retry_after(const http_resp *r, const buf *raw) {
    if (r->status != 503) return;
    char *e;
    long ra = strtol(r->retry_after, &e, 10);
    if (!r->retry_after[0] || *e || ra < 1) fail("a 503 without Retry-After", raw);
}

/* API.md's error shape, type server_error exactly for 5xx, never
 * out_of_memory. */
FH_FN void check_error_shape(const http_resp *r, const buf *raw) {
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

/* An event stream: every line "data: " + a JSON object (given to
 * on_event, when not NULL) or "data: [DONE]", or empty; [DONE] last. */
FH_FN void check_stream(const http_resp *r, const buf *raw, void (*on_event)(json_t *j, const buf *raw)) {
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
            if (on_event) on_event(j, raw);
            json_decref(j);
        }
        p = nl + 1;
    }
    if (!done) fail("a stream that does not end with data: [DONE]", raw);
}

#endif
