/*
 * http.c — libmicrohttpd wiring: the daemon, the life of a request, auth,
 * the origin and host checks, the body limit, the connection watchdog,
 * metrics, the request log and draining.
 *
 * Threads.  libmicrohttpd runs its epoll loop on a pool of worker threads,
 * one per core (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL with
 * MHD_OPTION_THREAD_POOL_SIZE): they accept, read headers and bodies and
 * write replies for every connection, and never block.  An idle or slow
 * connection costs a socket and libmicrohttpd's per-connection memory,
 * not a thread.  A request whose body is in is dispatched: the connection
 * is suspended (libmicrohttpd stops watching it) and the handler runs on
 * a thread of its own, the request thread, which may block (a generation
 * waits for its tokens).  The handler's reply waits in rq->pending until
 * the request thread resumes the connection; libmicrohttpd then calls
 * on_access again and the reply is queued.  For a stream, the request
 * thread goes on pulling events into the stream's buffer (sse.c) while
 * the worker sends them.  We add one more thread, the watchdog (below).
 *
 * Limits on clients: at most conn_limit connections in all and
 * conn_per_ip from one address (libmicrohttpd closes the others at once);
 * a request's headers must arrive within header_timeout and its body
 * within conn_timeout (the watchdog); a connection on which no byte moves
 * for conn_timeout (a client that stops reading a reply or a stream) is
 * closed by libmicrohttpd's idle timeout, which stays on for streams.
 * libmicrohttpd parses strictly (MHD_OPTION_STRICT_FOR_CLIENT): HTTP/1.1
 * without Host is refused, and begin() refuses header names with blanks
 * and values with a bare CR.
 *
 * A request, as libmicrohttpd calls us (on_access):
 *   1. first call, headers complete: create the fr_req (its arena, id and
 *      start time), count it in flight; if a body follows, begin(): check
 *      the Host (DNS rebinding) and the Origin (cross-site requests; 403),
 *      answer a CORS preflight, route it (404/405, but 401 first when keys
 *      are set and none was given), refuse it while draining (503), check
 *      the key (401) and a declared Content-Length (413) — all before a
 *      byte of body is read.  Without a body, begin() waits for the next
 *      call: a reply queued in the first call makes libmicrohttpd close
 *      the connection;
 *   2. calls with body bytes: append to rq->body.  A body without a
 *      declared length (chunked) that grows past max_body is dropped and
 *      the rest discarded as it comes (libmicrohttpd accepts no reply in
 *      the middle of a body; the watchdog bounds how long that can last),
 *      and the last call answers 413;
 *   3. last call: parse JSON (FR_ROUTE_JSON routes; 400 with line and
 *      column, duplicate keys refused), suspend, start the request thread;
 *   4. the call after the resume: queue the pending reply.
 *   on_completed: count and log the request, and drop libmicrohttpd's
 *   reference; whichever side lets go last closes the stream (fin), frees
 *   the request and wakes a drain waiting for in_flight to reach 0.
 *
 * Paths are routed as received: the unescape callback leaves the URL
 * alone, and routes.c decodes each {param} segment itself, so that an id
 * containing "%2F" stays one segment.  Query values are decoded on
 * lookup (fr__req_query).
 *
 * The watchdog.  libmicrohttpd's connection timeout counts idle time, so a
 * client that sends one header byte a second never trips it.  Each
 * connection therefore carries a receive window: it opens when the
 * connection is accepted or its previous request completes (for the
 * headers: header_timeout), and again when the headers are in (for the
 * body: conn_timeout); it closes when the handler is called.  The watchdog
 * thread, every 100 ms, shuts down (shutdown(2), never close: the fd stays
 * libmicrohttpd's) the socket of any connection whose window has been open
 * too long, which makes libmicrohttpd drop it.  Connections are
 * registered and unregistered from libmicrohttpd's connection-notify
 * callback, which runs before it closes the socket; the list and the
 * windows are guarded by srv->mu.
 *
 * Draining: see fr_server_drain in server.h.  libmicrohttpd must not be
 * stopped while a connection is suspended, so the drain waits for every
 * request thread to end first.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/sysinfo.h"
#include "base/lru.h"
#include "server/server_int.h"

#define DEFAULT_MAX_BODY (1u << 20)
#define DEFAULT_CONN_TIMEOUT_MS 30000
#define DEFAULT_HEADER_TIMEOUT_MS 10000
#define DEFAULT_CONN_LIMIT 1024
#define DEFAULT_CONN_PER_IP 64
#define LISTEN_BACKLOG 1024
#define REQUEST_THREAD_STACK (4u << 20)  /* virtual: only the pages a handler touches are resident */
#define WATCHDOG_PERIOD_MS 100
#define AFTER_CANCEL_WAIT_MS 10000     /* how long drain waits for cancelled handlers */

struct fr_conn {
    fr_conn *prev, *next;
    struct MHD_Connection *mc;
    int fd;
    double since;               /* fr_now_s() the receive window opened */
    bool receiving;             /* the window is open */
    bool headers_in;            /* ... for the body (else for the headers) */
    bool killed;                /* the watchdog shut the socket down */
    bool line_seen;             /* libmicrohttpd parsed a request line on it */
    unsigned requests;          /* requests completed on it */
};

/* Request-duration buckets, seconds: from a /health to a long generation. */
static const double duration_bounds[] = {0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};

/* ---- jansson on the counted allocator ---- */

static pthread_once_t json_once = PTHREAD_ONCE_INIT;
static void json_init(void) { json_set_alloc_funcs(fr_malloc, fr_free); }

/* ---- time ---- */

static void abs_deadline(struct timespec *ts, int64_t ms) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) { ts->tv_sec++; ts->tv_nsec -= 1000000000; }
}

/* ---- connections and the watchdog ---- */

enum { WINDOW_CLOSED, WINDOW_HEADERS, WINDOW_BODY };

static void conn_window(fr_server *s, fr_conn *c, int window) {
    if (!c) return;
    pthread_mutex_lock(&s->mu);
    c->receiving = window != WINDOW_CLOSED;
    c->headers_in = window == WINDOW_BODY;
    c->since = fr_now_s();
    pthread_mutex_unlock(&s->mu);
}

/* libmicrohttpd parsed a request line (its return value is the request's
 * first context: none). */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *mc) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    fr_conn *c = ci ? ci->socket_context : NULL;
    if (c) c->line_seen = true;
    return NULL;
}

/* libmicrohttpd drops a connection whose first request line it cannot
 * parse at all ("GARBAGE", a URL with a blank) without a word.  A client
 * deserves to know: when a connection closes before its first request
 * line was parsed, while its peer is still there and the watchdog did not
 * cut it, send a 400 before the socket goes.  (MHD_USE_TURBO keeps
 * libmicrohttpd from shutting the socket's sending side before it tells
 * us the connection is closing.) */
static void answer_garbage(fr_server *s, fr_conn *c) {
    if (c->fd < 0 || c->killed || c->line_seen || c->requests) return;
    /* A request line that does not parse is refused as it arrives; a
     * connection this old was closed for being idle (libmicrohttpd's
     * timeout may come before the header deadline), not for garbage. */
    int64_t idle_ms = s->cfg.header_timeout_ms < s->cfg.conn_timeout_ms ? s->cfg.header_timeout_ms
                                                                         : s->cfg.conn_timeout_ms;
    if (fr_now_s() - c->since >= (double)idle_ms / 2000.0) return;
    char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) return;     /* the peer left */
    static const char body[] = "{\"error\":{\"message\":\"malformed request line (want METHOD /path HTTP/1.1)\","
                               "\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"bad_request\"}}";
    char msg[320];
    int len = snprintf(msg, sizeof msg, "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                       "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", sizeof body - 1, body);
    if (len > 0 && (size_t)len < sizeof msg && send(c->fd, msg, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL) == len)
        FR_DEBUG("connection fd %d: malformed request line, answered 400", c->fd);
}

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    fr_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        fr_conn *c = fr_calloc(1, sizeof *c);
        *socket_context = c;
        fr_metric_add(s->m_conns, 1, NULL);
        fr_metric_add(s->m_conns_total, 1, NULL);
        if (!c) return;             /* not watched: the idle timeout still applies */
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        c->mc = mc;
        c->fd = ci ? ci->connect_fd : -1;
        c->receiving = true;
        c->since = fr_now_s();
        pthread_mutex_lock(&s->mu);
        c->next = s->conns;
        if (s->conns) s->conns->prev = c;
        s->conns = c;
        pthread_mutex_unlock(&s->mu);
    } else {
        fr_conn *c = *socket_context;
        fr_metric_add(s->m_conns, -1, NULL);
        if (!c) return;
        answer_garbage(s, c);
        pthread_mutex_lock(&s->mu);
        if (c->prev) c->prev->next = c->next;
        else s->conns = c->next;
        if (c->next) c->next->prev = c->prev;
        pthread_mutex_unlock(&s->mu);
        fr_free(c);
        *socket_context = NULL;
    }
}

static void *watchdog_main(void *arg) {
    fr_server *s = arg;
    double body_limit = (double)s->cfg.conn_timeout_ms / 1000.0;
    double header_limit = (double)s->cfg.header_timeout_ms / 1000.0;
    pthread_mutex_lock(&s->mu);
    while (!s->watchdog_stop) {
        struct timespec ts;
        abs_deadline(&ts, WATCHDOG_PERIOD_MS);
        pthread_cond_timedwait(&s->cond, &s->mu, &ts);
        double now = fr_now_s();
        for (fr_conn *c = s->conns; c; c = c->next) {
            double limit = c->headers_in ? body_limit : header_limit;
            if (!c->receiving || c->killed || c->fd < 0 || now - c->since <= limit) continue;
            FR_DEBUG("connection fd %d: no complete request %s in %.1f s, dropped", c->fd,
                     c->headers_in ? "body" : "header", now - c->since);
            shutdown(c->fd, SHUT_RDWR);
            c->killed = true;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Log fields: printable ASCII only, bounded, so that a path cannot forge
 * log lines. */
static void clean(char *dst, size_t size, const char *s) {
    size_t i = 0;
    for (; s && *s && i + 1 < size; s++) dst[i++] = (*s > 32 && *s < 127) ? *s : '?';
    dst[i] = 0;
    if (!i && size > 1) { dst[0] = '-'; dst[1] = 0; }
}

/* ---- requests ---- */

static fr_req *req_create(fr_server *s, struct MHD_Connection *mc, const char *url, const char *method) {
    fr_req *rq = fr_calloc(1, sizeof *rq);
    if (!rq) return NULL;
    fr_arena_init(&rq->arena, 4096);
    pthread_mutex_init(&rq->mu, NULL);
    rq->refs = 1;
    rq->fd = -1;
    rq->srv = s;
    rq->conn = mc;
    rq->t_start = fr_now_s();
    rq->route_name = "unmatched";
    rq->prompt_tokens = rq->gen_tokens = -1;
    rq->queue_ms = -1;
    snprintf(rq->id, sizeof rq->id, "req-%llu", (unsigned long long)atomic_fetch_add(&s->next_id, 1));
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    rq->c = ci ? ci->socket_context : NULL;
    /* Copies: the request may outlive libmicrohttpd's buffers (req_end). */
    if (!(rq->path = fr__req_strdup(rq, url)) || !(rq->method = fr__req_strdup(rq, method))) {
        pthread_mutex_destroy(&rq->mu);
        fr_arena_deinit(&rq->arena);
        fr_free(rq);
        return NULL;
    }
    return rq;
}

static void req_free(fr_req *rq) {
    if (rq->pending) MHD_destroy_response(rq->pending);
    if (rq->json) json_decref(rq->json);
    if (rq->fd >= 0) close(rq->fd);
    fr_free(rq->body);
    pthread_mutex_destroy(&rq->mu);
    fr_arena_deinit(&rq->arena);
    fr_free(rq);
}

void *fr__req_alloc(fr_req *rq, size_t n) { return fr_arena_alloc(&rq->arena, n ? n : 1); }

char *fr__req_strdup(fr_req *rq, const char *s) {
    size_t n = strlen(s);
    char *d = fr__req_alloc(rq, n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

const char *fr__req_param(const fr_req *rq, const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < rq->n_params; i++)
        if (rq->param_name_lens[i] == n && !memcmp(rq->param_names[i], name, n)) return rq->params[i];
    return NULL;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

const char *fr__req_query(fr_req *rq, const char *key) {
    const char *raw = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, key);
    if (!raw) return NULL;
    char *d = fr__req_alloc(rq, strlen(raw) + 1), *o = d;
    if (!d) return NULL;
    for (const char *p = raw; *p; p++) {
        int hi, lo;
        if (*p == '+') *o++ = ' ';
        else if (*p == '%' && (hi = hexval(p[1])) >= 0 && (lo = hexval(p[2])) >= 0 && (hi | lo)) {
            *o++ = (char)(hi * 16 + lo);
            p += 2;
        } else *o++ = *p;
    }
    *o = 0;
    return d;
}

const char *fr__req_header(const fr_req *rq, const char *name) {
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

json_t *fr__req_json(const fr_req *rq) { return rq->json; }

fr_manager *fr__req_manager(const fr_req *rq) { return rq->srv->cfg.manager; }

void fr__req_set_model(fr_req *rq, const char *model) {
    rq->model = model ? fr__req_strdup(rq, model) : NULL;
}

void fr__req_set_tokens(fr_req *rq, int32_t prompt, int32_t gen) {
    rq->prompt_tokens = prompt;
    rq->gen_tokens = gen;
}

void fr__req_set_queue_ms(fr_req *rq, double ms) { rq->queue_ms = ms; }

void fr__req_set_retry_after(fr_req *rq, double seconds) { rq->retry_after_s = seconds; }

void fr__req_on_gone(fr_req *rq, void (*fn)(void *ud), void *ud) {
    rq->on_gone = fn;
    rq->on_gone_ud = ud;
}

static void mark_gone(fr_req *rq) {
    if (atomic_exchange(&rq->gone, true)) return;
    FR_DEBUG("%s: client gone", rq->id);
    if (rq->on_gone) rq->on_gone(rq->on_gone_ud);
}

bool fr__req_gone(fr_req *rq, int timeout_ms) {
    if (atomic_load(&rq->gone)) return true;
    /* Our own dup of the socket: libmicrohttpd may close its descriptor
     * (and the number be reused) while the request thread still asks. */
    int fd = rq->fd;
    /* Wait in slices so that a server that starts stopping is noticed. */
    int64_t left = timeout_ms < 0 ? 0 : timeout_ms;
    for (;;) {
        if (atomic_load(&rq->srv->stopping)) { mark_gone(rq); return true; }
        if (atomic_load(&rq->gone)) return true;
        int slice = left > 50 ? 50 : (int)left;
        if (fd >= 0) {
            struct pollfd p = {.fd = fd, .events = POLLRDHUP};
            int n = poll(&p, 1, slice);
            if (n > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) {
                mark_gone(rq);
                return true;
            }
            if (n < 0 && errno != EINTR) return false;
        } else if (slice > 0) {
            struct timespec ts = {slice / 1000, (slice % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        left -= slice;
        if (left <= 0) return false;
    }
}

void fr__req_resume(fr_req *rq) { MHD_resume_connection(rq->conn); }

/* ---- auth ---- */

/* Constant-time comparison: the time depends on the length of what the
 * client sent, never on how much of a key it got right. */
static bool key_equal(const char *got, size_t n, const char *key, size_t klen) {
    size_t diff = n ^ klen;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)got[i] ^ (unsigned char)key[klen ? i % klen : 0];
    return diff == 0;
}

static bool authorised(const fr_req *rq) {
    const fr_server *s = rq->srv;
    const char *got = NULL;
    size_t n = 0;
    const char *auth = fr__req_header(rq, MHD_HTTP_HEADER_AUTHORIZATION);
    if (auth && !strncasecmp(auth, "Bearer", 6) && (auth[6] == ' ' || auth[6] == '\t')) {
        got = auth + 7;
        while (*got == ' ' || *got == '\t') got++;
    } else got = fr__req_header(rq, "X-API-Key");
    if (!got) return false;
    n = strlen(got);
    while (n && (got[n - 1] == ' ' || got[n - 1] == '\t')) n--;
    bool ok = false;
    for (size_t i = 0; i < s->cfg.n_api_keys; i++)       /* no early exit */
        ok |= key_equal(got, n, s->keys[i], s->key_lens[i]);
    return ok;
}

/* ---- who may ask: Host (DNS rebinding) and Origin (cross-site requests) ---- */

/* Split a comma-separated list into owned strings (blanks trimmed, empty
 * items skipped).  FR_ENOMEM. */
static int split_list(const char *text, char ***out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    for (const char *p = text; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        const char *e = p;
        while (*e && *e != ',') e++;
        size_t n = (size_t)(e - p);
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
        if (n) {
            char **nv = fr_realloc(*out, (*n_out + 1) * sizeof *nv);
            if (!nv) return FR_ENOMEM;
            *out = nv;
            if (!(nv[*n_out] = fr_strndup(p, n))) return FR_ENOMEM;
            (*n_out)++;
        }
        p = e;
    }
    return 0;
}

static void free_list(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) fr_free(v[i]);
    fr_free(v);
}

/* The host part of a Host header value ("[::1]:8080" -> "::1",
 * "localhost:80" -> "localhost"), into buf; false when malformed. */
static bool host_name(const char *h, char *buf, size_t size) {
    size_t n;
    if (*h == '[') {
        const char *e = strchr(h, ']');
        if (!e || (e[1] && e[1] != ':')) return false;
        h++;
        n = (size_t)(e - h);
    } else {
        const char *e = strchr(h, ':');
        n = e ? (size_t)(e - h) : strlen(h);
    }
    if (!n || n >= size) return false;
    memcpy(buf, h, n);
    buf[n] = 0;
    return true;
}

static bool is_loopback_name(const char *h) {
    if (!strcasecmp(h, "localhost") || !strcmp(h, "::1")) return true;
    size_t n = strlen(h);
    if (n > 10 && !strcasecmp(h + n - 10, ".localhost")) return true;
    struct in_addr a;
    return inet_pton(AF_INET, h, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

/* Bound to loopback, only a client on this machine can reach us — but a
 * web page can, through a name it controls that resolves to 127.0.0.1
 * (DNS rebinding): its requests then carry that name as Host.  So the
 * Host must name a loopback host or one of --allowed-host. */
static bool host_allowed(const fr_req *rq) {
    const fr_server *s = rq->srv;
    if (!s->loopback) return true;
    const char *h = fr__req_header(rq, MHD_HTTP_HEADER_HOST);
    if (!h) return true;                    /* HTTP/1.0 without Host: no browser sends that */
    char name[256];
    if (!host_name(h, name, sizeof name)) return false;
    if (is_loopback_name(name)) return true;
    for (size_t i = 0; i < s->n_allowed_hosts; i++)
        if (!strcasecmp(name, s->allowed_hosts[i])) return true;
    return false;
}

/* A browser sends Origin with every cross-site request that could change
 * something (any POST, whatever its content type) and with CORS requests;
 * curl and the SDKs send none.  Allowed: no Origin, the server's own
 * origin (same Host), or one listed with --cors-origin. */
static bool origin_listed(const fr_server *s, const char *origin) {
    if (s->cors_any) return true;
    for (size_t i = 0; i < s->n_cors_origins; i++)
        if (!strcasecmp(origin, s->cors_origins[i])) return true;
    return false;
}

static bool same_origin(const fr_req *rq, const char *origin) {
    const char *host = fr__req_header(rq, MHD_HTTP_HEADER_HOST);
    if (!host) return false;
    const char *p = !strncasecmp(origin, "http://", 7) ? origin + 7 : NULL;
    return p && !strcasecmp(p, host);
}

/* Headers libmicrohttpd accepts even in strict mode but a proxy may read
 * otherwise: a blank in a header name (before the colon) and a bare CR in
 * a value.  Returns the offending name, or NULL. */
static enum MHD_Result find_bad_header(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                       const char *value, size_t value_size) {
    const char **bad = cls;
    for (size_t i = 0; i < key_size; i++)
        if (key[i] == ' ' || key[i] == '\t' || key[i] == '\r') { *bad = key; return MHD_NO; }
    if (value && memchr(value, '\r', value_size)) { *bad = key; return MHD_NO; }
    return MHD_YES;
}

/* ---- the access handler ---- */

static bool has_body(const fr_req *rq) {
    const char *cl = fr__req_header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return fr__req_header(rq, MHD_HTTP_HEADER_TRANSFER_ENCODING) || (cl && strcmp(cl, "0"));
}

/* Answer a CORS preflight (OPTIONS with Access-Control-Request-Method)
 * from an allowed origin: which methods the path takes, which headers a
 * client may send. */
static void preflight(fr_req *rq) {
    char allow[64] = "";
    bool known = false;
    const fr_route *rt = NULL;
    int rc = fr__route_match(rq, rq->srv->routes, rq->srv->n_routes, "OPTIONS", rq->path, &rt, &known, allow,
                             sizeof allow);
    if (rc) { fr__reply_err(rq, rc, NULL); return; }
    if (!known) { fr__reply_error(rq, 404, "not_found", NULL, "no route %s", rq->path); return; }
    fr__reply_header(rq, "Access-Control-Allow-Methods", allow);
    fr__reply_header(rq, "Access-Control-Allow-Headers", "Authorization, Content-Type, X-API-Key");
    fr__reply_header(rq, "Access-Control-Max-Age", "600");
    fr__reply_text(rq, 204, "text/plain", "", 0);
}

/* Headers are in: check who asks, route it, refuse early, or wait for the
 * body. */
static void begin(fr_req *rq) {
    fr_server *s = rq->srv;
    char allow[64];
    bool known = false;
    const fr_route *rt = NULL;
    rq->begun = true;
    conn_window(s, rq->c, WINDOW_BODY);     /* the body gets its own window */

    for (const char *m = rq->method; *m; m++)          /* a token (RFC 9110 5.6.2) */
        if (*m <= 32 || *m >= 127 || strchr("\"(),/:;<=>?@[\\]{}", *m)) {
            fr__reply_error(rq, 400, "bad_request", NULL, "malformed request line: the method is not a token");
            return;
        }
    const char *bad = NULL;
    MHD_get_connection_values_n(rq->conn, MHD_HEADER_KIND, find_bad_header, &bad);
    if (bad) {
        char name[64];
        clean(name, sizeof name, bad);
        fr__reply_error(rq, 400, "bad_request", NULL, "malformed header '%s' (a blank in its name or a bare CR)",
                        name);
        return;
    }
    if (!host_allowed(rq)) {
        char host[128];
        clean(host, sizeof host, fr__req_header(rq, MHD_HTTP_HEADER_HOST));
        fr__reply_error(rq, 403, "forbidden", NULL,
                        "Host '%s' is not this server's: bound to a loopback address, it answers only "
                        "loopback names and those listed with --allowed-host", host);
        return;
    }
    const char *origin = fr__req_header(rq, "Origin");
    if (origin) {
        if (!same_origin(rq, origin) && !origin_listed(s, origin)) {
            char o[128];
            clean(o, sizeof o, origin);
            fr__reply_error(rq, 403, "forbidden", NULL,
                            "requests from web pages of origin '%s' are not allowed (see --cors-origin)", o);
            return;
        }
        fr__reply_header(rq, "Access-Control-Allow-Origin", origin);
        fr__reply_header(rq, "Vary", "Origin");
        if (!strcmp(rq->method, "OPTIONS") && fr__req_header(rq, "Access-Control-Request-Method")) {
            preflight(rq);
            return;
        }
    }

    int rc = fr__route_match(rq, s->routes, s->n_routes, rq->method, rq->path, &rt, &known, allow, sizeof allow);
    if (rc) { fr__reply_err(rq, rc, NULL); return; }
    /* With keys, a client without one learns nothing, not even which
     * paths exist: 401 comes before 404 and 405. */
    if (s->cfg.n_api_keys && !(rt && (rt->flags & FR_ROUTE_PUBLIC)) && !authorised(rq)) {
        fr__reply_header(rq, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
        fr__reply_error(rq, 401, "unauthorized", NULL,
                        "a valid API key is required (Authorization: Bearer KEY or X-API-Key: KEY)");
        return;
    }
    if (!rt) {
        if (known) {
            fr__reply_header(rq, MHD_HTTP_HEADER_ALLOW, allow);
            fr__reply_error(rq, 405, "method_not_allowed", NULL, "method %s is not allowed on %s (allowed: %s)",
                            rq->method, rq->path, allow);
        } else fr__reply_error(rq, 404, "not_found", NULL, "no route %s %s", rq->method, rq->path);
        return;
    }
    rq->route = rt;
    rq->route_name = rt->pattern;
    if (atomic_load(&s->draining) && !(rt->flags & FR_ROUTE_DRAIN_OK)) {
        fr__reply_error(rq, 503, "shutting_down", NULL, "the server is shutting down");
        return;
    }
    const char *cl = fr__req_header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(cl, &end, 10);
        if (end != cl && !*end && (errno == ERANGE || v > s->cfg.max_body))
            fr__reply_error(rq, 413, "body_too_large", NULL, "request body is larger than the limit of %zu bytes",
                            s->cfg.max_body);
    }
}

static void body_append(fr_req *rq, const char *data, size_t n) {
    fr_server *s = rq->srv;
    if (rq->too_large) return;
    if (n > s->cfg.max_body - rq->body_len) {
        /* libmicrohttpd takes no reply while a body is arriving: drop the
         * body, discard the rest (the watchdog bounds how long) and
         * answer 413 at its end. */
        rq->too_large = true;
        fr_free(rq->body);
        rq->body = NULL;
        rq->body_len = rq->body_cap = 0;
        return;
    }
    if (rq->body_len + n + 1 > rq->body_cap) {
        size_t nc = rq->body_cap ? rq->body_cap : 4096;
        while (nc < rq->body_len + n + 1) nc *= 2;
        if (nc > s->cfg.max_body + 1) nc = s->cfg.max_body + 1;
        char *nb = fr_realloc(rq->body, nc);
        if (!nb) {
            rq->body_oom = true;            /* answered at the body's end, as above */
            rq->too_large = true;
            fr_free(rq->body);
            rq->body = NULL;
            rq->body_len = rq->body_cap = 0;
            return;
        }
        rq->body = nb;
        rq->body_cap = nc;
    }
    memcpy(rq->body + rq->body_len, data, n);
    rq->body_len += n;
    rq->body[rq->body_len] = 0;
}

static void req_end(fr_req *rq);

/* Let go of rq: libmicrohttpd's side (on_completed) or the request
 * thread's.  The last one ends it. */
static void req_release(fr_req *rq) {
    pthread_mutex_lock(&rq->mu);
    int left = --rq->refs;
    pthread_mutex_unlock(&rq->mu);
    if (!left) req_end(rq);
}

/* The request thread: the handler, then the stream if it answered with
 * one.  The connection is suspended until the handler has replied. */
static void *request_main(void *arg) {
    fr_req *rq = arg;
    fr_server *s = rq->srv;
    const fr_route *rt = rq->route;
    fr_errclear();
    int rc = rt->fn(rq);
    if (!rq->pending && !rq->status) {
        if (rc < 0) fr__reply_err(rq, rc, NULL);
        else fr__reply_error(rq, 500, "internal_error", NULL, "the handler of %s %s sent no reply", rt->method,
                             rt->pattern);
    }
    fr_sse *st = rq->sse;
    fr__req_resume(rq);                     /* on_access queues the reply */
    if (st) fr__sse_produce(st);
    req_release(rq);
    pthread_mutex_lock(&s->mu);
    s->threads--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* The body is complete: parse it and hand the request to its thread. */
static void dispatch(fr_req *rq) {
    fr_server *s = rq->srv;
    const fr_route *rt = rq->route;
    conn_window(s, rq->c, WINDOW_CLOSED);
    if ((rt->flags & FR_ROUTE_JSON) && rq->body_len) {
        json_error_t e;
        rq->json = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &e);
        if (!rq->json) {
            fr__reply_error(rq, 400, "invalid_json", NULL, "malformed JSON at line %d, column %d: %s", e.line,
                            e.column, e.text);
            return;
        }
        if (!json_is_object(rq->json)) {
            fr__reply_error(rq, 400, "invalid_value", NULL, "the request body must be a JSON object");
            return;
        }
    }
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci) rq->fd = fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0);
    rq->dispatched = true;
    rq->deferred = true;
    rq->refs = 2;
    pthread_mutex_lock(&s->mu);
    s->threads++;
    pthread_mutex_unlock(&s->mu);
    MHD_suspend_connection(rq->conn);
    pthread_attr_t attr;
    pthread_t t;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, REQUEST_THREAD_STACK);
    int e = pthread_create(&t, &attr, request_main, rq);
    pthread_attr_destroy(&attr);
    if (e == 0) return;
    /* No thread: answer here. */
    MHD_resume_connection(rq->conn);
    rq->deferred = false;
    rq->refs = 1;
    pthread_mutex_lock(&s->mu);
    s->threads--;
    pthread_mutex_unlock(&s->mu);
    FR_WARN("%s: cannot start a request thread: %s", rq->id, strerror(e));
    fr__reply_error(rq, 503, "overloaded", NULL, "the server cannot start another request now");
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                                 const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    fr_server *s = cls;
    fr_req *rq = *con_cls;
    if (!rq) {
        if (!(rq = req_create(s, mc, url, method))) return MHD_NO;     /* drops the connection */
        *con_cls = rq;
        pthread_mutex_lock(&s->mu);
        s->in_flight++;
        pthread_mutex_unlock(&s->mu);
        fr_metric_add(s->m_in_flight, 1, NULL);
        /* A request with a body is checked now, before any of it is read.
         * One without is checked at the next call: libmicrohttpd closes
         * the connection after a reply queued in this first call. */
        if (has_body(rq)) begin(rq);
        return MHD_YES;
    }
    if (rq->dispatched) {
        /* Resumed by the request thread: its reply is ready. */
        if (rq->pending) {
            struct MHD_Response *r = rq->pending;
            rq->pending = NULL;
            rq->deferred = false;
            if (MHD_queue_response(mc, (unsigned)rq->pending_status, r) != MHD_YES) {
                FR_ERROR("%s: cannot queue the %d reply for %s", rq->id, rq->pending_status, rq->route_name);
                MHD_destroy_response(r);
                return MHD_NO;
            }
            MHD_destroy_response(r);        /* the connection holds its own reference */
        }
        return rq->status ? MHD_YES : MHD_NO;
    }
    if (*upload_size) {
        if (!rq->begun) begin(rq);
        if (!rq->status) body_append(rq, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (!rq->begun) begin(rq);
    if (!rq->status && rq->body_oom)
        fr__reply_err(rq, fr_errf(FR_ENOMEM, "no memory for the request body"), NULL);
    if (!rq->status && rq->too_large)
        fr__reply_error(rq, 413, "body_too_large", NULL, "request body is larger than the limit of %zu bytes",
                        s->cfg.max_body);
    if (!rq->status) dispatch(rq);
    return rq->status || rq->dispatched ? MHD_YES : MHD_NO;
}

static void log_request(const fr_req *rq, int status, double secs) {
    if (fr_log_level() < FR_LOG_INFO) return;
    char route[160], model[130], extra[96] = "";
    clean(route, sizeof route, rq->route ? rq->route_name : rq->path);
    clean(model, sizeof model, rq->model);
    size_t n = 0;
    if (rq->prompt_tokens >= 0)
        n += (size_t)snprintf(extra + n, sizeof extra - n, " prompt=%d gen=%d", rq->prompt_tokens, rq->gen_tokens);
    if (rq->queue_ms >= 0 && n < sizeof extra)
        snprintf(extra + n, sizeof extra - n, " queue_ms=%.1f", rq->queue_ms);
    FR_INFO("%s %s %s model=%s status=%d%s total_ms=%.1f", rq->id, rq->method, route, model, status, extra,
            secs * 1000.0);
}

/* Both sides are done: close the stream, count and log the request, free
 * it. */
static void req_end(fr_req *rq) {
    fr_server *s = rq->srv;
    if (rq->sse) fr__sse_finish(rq->sse, rq->completed_ok);
    /* No reply at all, or one the client left before it had it whole
     * (a non-streamed request: 499, as nginx logs it; a stream keeps its
     * 200, its end is counted by the generation). */
    bool left = !rq->completed_ok || atomic_load(&rq->gone);
    int status = rq->status && (rq->sse || !left) ? rq->status : 499;
    char st[8];
    snprintf(st, sizeof st, "%d", status);
    double secs = fr_now_s() - rq->t_start;
    fr_metric_add(s->m_requests, 1, rq->route_name, st);
    fr_metric_observe(s->m_duration, secs, rq->route_name);
    fr_metric_add(s->m_in_flight, -1, NULL);
    log_request(rq, status, secs);
    req_free(rq);

    pthread_mutex_lock(&s->mu);
    s->in_flight--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    fr_server *s = cls;
    fr_req *rq = *con_cls;
    if (!rq) return;
    *con_cls = NULL;
    rq->completed_ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;   /* read by req_end, after req_release's lock */
    if (!rq->completed_ok) mark_gone(rq);
    conn_window(s, rq->c, WINDOW_HEADERS);  /* waiting for the next request */
    if (rq->c) rq->c->requests++;
    req_release(rq);
}

/* Keep the URL as received; routes.c decodes segments. */
static size_t unescape_none(void *cls, struct MHD_Connection *c, char *s) { return strlen(s); }

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = 0;
    FR_DEBUG("microhttpd: %s", buf);
}

/* ---- the listening socket ---- */

static int open_listener(const char *host, int port, int *fd_out, int *port_out) {
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *res = NULL;
    int g = getaddrinfo(host, ps, &hints, &res);
    if (g) return fr_errf(FR_EINVAL, "cannot resolve host '%s': %s", host, gai_strerror(g));
    int err = 0, fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) { err = errno; continue; }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, LISTEN_BACKLOG) == 0) break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) return fr_errf(FR_EIO, "cannot listen on %s:%d: %s", host, port, strerror(err));
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    *fd_out = fd;
    *port_out = port;
    return 0;
}

/* ---- lifecycle ---- */

static int register_metrics(fr_server *s) {
    fr_metrics *m = s->metrics;
    int rc;
    if ((rc = fr_metric_counter(m, "frugal_http_requests_total", "HTTP requests by route pattern and status",
                                "route,status", &s->m_requests)) ||
        (rc = fr_metric_histogram(m, "frugal_http_request_duration_seconds",
                                  "HTTP request time from headers to last byte, by route pattern", "route",
                                  duration_bounds, (int)(sizeof duration_bounds / sizeof duration_bounds[0]),
                                  &s->m_duration)) ||
        (rc = fr_metric_gauge(m, "frugal_http_requests_in_flight", "HTTP requests being handled", NULL,
                              &s->m_in_flight)) ||
        (rc = fr_metric_gauge(m, "frugal_http_connections", "Open HTTP connections", NULL, &s->m_conns)) ||
        (rc = fr_metric_counter(m, "frugal_http_connections_total", "HTTP connections accepted", NULL,
                                &s->m_conns_total)))
        return rc;
    return 0;
}

/* Each connection is a descriptor: raise the soft limit toward the hard
 * one so that conn_limit connections fit beside the models and the
 * index, or lower conn_limit to what fits (and say so). */
static void fit_fd_limit(fr_server *s) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t want = (rlim_t)s->cfg.conn_limit + 256;
    if (rl.rlim_cur < want) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) rl.rlim_cur = old;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        unsigned fit = rl.rlim_cur > 512 ? (unsigned)(rl.rlim_cur - 256) : (unsigned)(rl.rlim_cur / 2);
        FR_WARN("open-file limit %llu: at most %u connections instead of %u", (unsigned long long)rl.rlim_cur,
                fit, s->cfg.conn_limit);
        s->cfg.conn_limit = fit;
    }
}

static void free_server(fr_server *s) {
    if (s->models_metrics) {
        fr_metrics_remove_collector(s->metrics, fr__collect_models, s->models_metrics);
        fr__models_metrics_destroy(s->models_metrics);
    }
    fr_lru_destroy(s->embed_cache);
    for (size_t i = 0; s->keys && i < s->cfg.n_api_keys; i++) fr_free(s->keys[i]);
    fr_free(s->keys);
    fr_free(s->key_lens);
    fr_free(s->host);
    free_list(s->cors_origins, s->n_cors_origins);
    free_list(s->allowed_hosts, s->n_allowed_hosts);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->mu);
    fr_free(s);
}

int fr__server_create_routes(const fr_server_config *cfg, const fr_route *routes, size_t n_routes,
                             fr_server **out) {
    pthread_once(&json_once, json_init);
    fr_server *s = fr_calloc(1, sizeof *s);
    if (!s) return FR_ENOMEM;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&s->next_id, 1);
    s->cfg = *cfg;
    s->routes = routes;
    s->n_routes = n_routes;
    if (!s->cfg.max_body) s->cfg.max_body = DEFAULT_MAX_BODY;
    if (s->cfg.conn_timeout_ms <= 0) s->cfg.conn_timeout_ms = DEFAULT_CONN_TIMEOUT_MS;
    if (s->cfg.header_timeout_ms <= 0) s->cfg.header_timeout_ms = DEFAULT_HEADER_TIMEOUT_MS;
    if (!s->cfg.conn_limit) s->cfg.conn_limit = DEFAULT_CONN_LIMIT;
    if (!s->cfg.conn_per_ip) s->cfg.conn_per_ip = DEFAULT_CONN_PER_IP;
    s->cfg.cors_origins = s->cfg.allowed_hosts = NULL;      /* parsed below; not kept */
    s->metrics = cfg->metrics ? cfg->metrics : fr_metrics_default();
    int rc = FR_ENOMEM, fd = -1;
    if (!(s->host = fr_strdup(cfg->host ? cfg->host : "127.0.0.1"))) goto fail;
    s->cfg.host = s->host;
    if (cfg->port < 0 || cfg->port > 65535) { rc = fr_errf(FR_EINVAL, "port %d out of range", cfg->port); goto fail; }

    /* Copy the keys. */
    s->cfg.api_keys = NULL;
    if (cfg->n_api_keys) {
        if (!(s->keys = fr_calloc(cfg->n_api_keys, sizeof *s->keys)) ||
            !(s->key_lens = fr_calloc(cfg->n_api_keys, sizeof *s->key_lens)))
            goto fail;
        for (size_t i = 0; i < cfg->n_api_keys; i++) {
            if (!cfg->api_keys[i] || !cfg->api_keys[i][0]) {
                s->cfg.n_api_keys = i;
                rc = fr_errf(FR_EINVAL, "API key %zu is empty", i + 1);
                goto fail;
            }
            if (!(s->keys[i] = fr_strdup(cfg->api_keys[i]))) { s->cfg.n_api_keys = i; goto fail; }
            s->key_lens[i] = strlen(s->keys[i]);
        }
        s->cfg.api_keys = (const char *const *)s->keys;
    }
    rc = FR_ENOMEM;
    if (split_list(cfg->cors_origins, &s->cors_origins, &s->n_cors_origins) ||
        split_list(cfg->allowed_hosts, &s->allowed_hosts, &s->n_allowed_hosts))
        goto fail;
    for (size_t i = 0; i < s->n_cors_origins; i++) s->cors_any |= !strcmp(s->cors_origins[i], "*");
    s->loopback = is_loopback_name(s->host);
    if (!s->metrics) goto fail;
    if ((rc = register_metrics(s))) goto fail;
    if (cfg->manager) {
        if (cfg->embed_cache_bytes && (rc = fr_lru_create(cfg->embed_cache_bytes, &s->embed_cache)))
            goto fail;
        if ((rc = fr__models_metrics_create(s->metrics, cfg->manager, s->embed_cache, &s->models_metrics)))
            goto fail;
        if ((rc = fr_metrics_add_collector(s->metrics, fr__collect_models, s->models_metrics))) {
            fr__models_metrics_destroy(s->models_metrics);
            s->models_metrics = NULL;
            goto fail;
        }
    }
    if ((rc = open_listener(s->host, cfg->port, &fd, &s->port))) goto fail;
    fit_fd_limit(s);

    unsigned timeout_s = (unsigned)((s->cfg.conn_timeout_ms + 999) / 1000);
    int cores = fr_physical_cores();
    unsigned workers = cores > 1 ? (unsigned)cores : 1;
    s->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC |
            MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_access, s,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,           /* first, to catch every message */
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_THREAD_POOL_SIZE, workers,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, s->cfg.conn_limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, s->cfg.conn_per_ip,
        MHD_OPTION_STRICT_FOR_CLIENT, 1,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape_none, s,
        MHD_OPTION_URI_LOG_CALLBACK, on_request_line, s,
        MHD_OPTION_END);
    if (!s->daemon) {
        close(fd);
        rc = fr_errf(FR_EIO, "cannot start the HTTP server on %s:%d", s->host, s->port);
        goto fail;
    }
    if (pthread_create(&s->watchdog, NULL, watchdog_main, s) != 0) {
        MHD_stop_daemon(s->daemon);
        rc = fr_errf(FR_EIO, "cannot start the connection watchdog thread");
        goto fail;
    }
    s->watchdog_started = true;
    *out = s;
    return 0;
fail:
    free_server(s);
    return rc;
}

int fr_server_create(const fr_server_config *cfg, fr_server **out) {
    return fr__server_create_routes(cfg, fr__routes, fr__n_routes, out);
}

int fr_server_port(const fr_server *s) { return s->port; }

void fr_server_set_cancel_hook(fr_server *s, void (*fn)(void *ud), void *ud) {
    s->cancel_hook = fn;
    s->cancel_ud = ud;
}

bool fr_server_draining(const fr_server *s) { return atomic_load(&((fr_server *)s)->draining); }

/* Wait (s->mu held) until nothing is in flight or timeout_ms passes (-1:
 * forever); true if nothing is. */
static bool wait_idle(fr_server *s, int64_t timeout_ms) {
    struct timespec ts;
    if (timeout_ms >= 0) abs_deadline(&ts, timeout_ms);
    while (s->in_flight > 0) {
        if (timeout_ms < 0) pthread_cond_wait(&s->cond, &s->mu);
        else if (pthread_cond_timedwait(&s->cond, &s->mu, &ts) == ETIMEDOUT) break;
    }
    return s->in_flight == 0;
}

int fr_server_drain(fr_server *s, int64_t timeout_ms) {
    if (s->drained) return 0;
    s->drained = true;
    /* The server goes on accepting while it drains, so that a client —
     * or a load balancer's health check — hears why instead of a refused
     * connection: /health answers 503 shutting_down, every other new
     * request 503 with Retry-After (begin()), each with Connection: close. */
    atomic_store(&s->draining, true);
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    bool idle = wait_idle(s, timeout_ms);
    if (!idle) {
        FR_WARN("drain: %d requests still running after %lld ms: cancelling them", s->in_flight,
                (long long)timeout_ms);
        rc = FR_EBUSY;
        pthread_mutex_unlock(&s->mu);
        if (s->cancel_hook) s->cancel_hook(s->cancel_ud);
        atomic_store(&s->stopping, true);
        pthread_mutex_lock(&s->mu);
        if (!wait_idle(s, AFTER_CANCEL_WAIT_MS))
            FR_WARN("drain: %d requests did not end after cancel; stopping anyway", s->in_flight);
    }
    atomic_store(&s->stopping, true);
    /* A request thread holds its connection suspended until its handler
     * returns, and libmicrohttpd must not stop with one suspended: wait
     * for them (they see `stopping` through fr__req_gone). */
    while (s->threads > 0) {
        struct timespec ts;
        abs_deadline(&ts, AFTER_CANCEL_WAIT_MS);
        if (pthread_cond_timedwait(&s->cond, &s->mu, &ts) == ETIMEDOUT)
            FR_WARN("drain: %d request threads still running; waiting for them", s->threads);
    }
    pthread_mutex_unlock(&s->mu);
    MHD_stop_daemon(s->daemon);             /* stops listening, closes the remaining connections */
    s->daemon = NULL;
    return rc;
}

void fr_server_destroy(fr_server *s) {
    if (!s) return;
    if (!s->drained) fr_server_drain(s, 0);
    if (s->watchdog_started) {
        pthread_mutex_lock(&s->mu);
        s->watchdog_stop = true;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->watchdog, NULL);
    }
    free_server(s);
}
