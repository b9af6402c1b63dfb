/*
 * http.c — libmicrohttpd wiring: the daemon, the life of a request, auth,
 * the body limit, the connection watchdog, metrics, the request log and
 * draining.
 *
 * Threads.  libmicrohttpd runs one listening thread and one thread per
 * connection (MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_
 * THREAD): every callback of a connection — the access handler, the
 * stream reader, the completion callback — runs in that connection's
 * thread, so a handler that blocks holds up nobody else.  We add one
 * thread, the watchdog (below).
 *
 * A request, as libmicrohttpd calls us (on_access):
 *   1. first call, headers complete: create the fr_req (its arena, id and
 *      start time), count it in flight; if a body follows, begin(): route
 *      it (404/405), refuse it while draining (503), check the key (401)
 *      and a declared Content-Length (413) — all before a byte of body is
 *      read.  Without a body, begin() waits for the next call: a reply
 *      queued in the first call makes libmicrohttpd close the connection;
 *   2. calls with body bytes: append to rq->body.  A body without a
 *      declared length (chunked) that grows past max_body is dropped and
 *      the rest discarded as it comes (libmicrohttpd accepts no reply in
 *      the middle of a body; the watchdog bounds how long that can last),
 *      and the last call answers 413;
 *   3. last call: parse JSON (FR_ROUTE_JSON routes; 400 with line and
 *      column), call the handler, which queues exactly one reply.
 *   on_completed: close the stream (fin), count and log the request, free
 *   it, wake a drain waiting for in_flight to reach 0.
 *
 * Paths are routed as received: the unescape callback leaves the URL
 * alone, and routes.c decodes each {param} segment itself, so that an id
 * containing "%2F" stays one segment.  Query values are decoded on
 * lookup (fr__req_query).
 *
 * The watchdog.  libmicrohttpd's connection timeout counts idle time, so a
 * client that sends one header byte a second never trips it.  Each
 * connection therefore carries a receive window: it opens when the
 * connection is accepted or its previous request completes, and again
 * when the headers are in (for the body); it closes when the handler is
 * called.  The watchdog thread, every 100 ms, shuts down (shutdown(2),
 * never close: the fd stays libmicrohttpd's) the socket of any connection
 * whose window has been open longer than conn_timeout_ms, which makes
 * libmicrohttpd drop it.  Handlers and streams are never cut: their
 * windows are closed.  Connections are registered and unregistered from
 * libmicrohttpd's connection-notify callback, which runs before it closes
 * the socket; the list and the windows are guarded by srv->mu.
 *
 * Draining: see fr_server_drain in server.h.
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
#define DEFAULT_CONN_LIMIT 256
#define WATCHDOG_PERIOD_MS 100
#define AFTER_CANCEL_WAIT_MS 10000     /* how long drain waits for cancelled handlers */

struct fr_conn {
    fr_conn *prev, *next;
    struct MHD_Connection *mc;
    int fd;
    double since;               /* fr_now_s() the receive window opened */
    bool receiving;             /* the window is open */
    bool killed;                /* the watchdog shut the socket down */
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

static void conn_window(fr_server *s, fr_conn *c, bool open) {
    if (!c) return;
    pthread_mutex_lock(&s->mu);
    c->receiving = open;
    c->since = fr_now_s();
    pthread_mutex_unlock(&s->mu);
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
    double limit = (double)s->cfg.conn_timeout_ms / 1000.0;
    pthread_mutex_lock(&s->mu);
    while (!s->watchdog_stop) {
        struct timespec ts;
        abs_deadline(&ts, WATCHDOG_PERIOD_MS);
        pthread_cond_timedwait(&s->cond, &s->mu, &ts);
        double now = fr_now_s();
        for (fr_conn *c = s->conns; c; c = c->next) {
            if (!c->receiving || c->killed || c->fd < 0 || now - c->since <= limit) continue;
            FR_DEBUG("connection fd %d: no complete request in %.1f s, dropped", c->fd, now - c->since);
            shutdown(c->fd, SHUT_RDWR);
            c->killed = true;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- requests ---- */

static fr_req *req_create(fr_server *s, struct MHD_Connection *mc, const char *url, const char *method) {
    fr_req *rq = fr_calloc(1, sizeof *rq);
    if (!rq) return NULL;
    fr_arena_init(&rq->arena, 4096);
    rq->srv = s;
    rq->conn = mc;
    rq->t_start = fr_now_s();
    rq->method = method;
    rq->route_name = "unmatched";
    rq->prompt_tokens = rq->gen_tokens = -1;
    rq->queue_ms = -1;
    snprintf(rq->id, sizeof rq->id, "req-%llu", (unsigned long long)atomic_fetch_add(&s->next_id, 1));
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    rq->c = ci ? ci->socket_context : NULL;
    if (!(rq->path = fr__req_strdup(rq, url))) {
        fr_arena_deinit(&rq->arena);
        fr_free(rq);
        return NULL;
    }
    return rq;
}

static void req_free(fr_req *rq) {
    if (rq->json) json_decref(rq->json);
    fr_free(rq->body);
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

const char *fr__req_body(const fr_req *rq, size_t *len) {
    if (len) *len = rq->body_len;
    return rq->body;
}

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
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    int fd = ci ? ci->connect_fd : -1;
    /* Wait in slices so that a server that starts stopping is noticed. */
    int64_t left = timeout_ms < 0 ? 0 : timeout_ms;
    for (;;) {
        if (atomic_load(&rq->srv->stopping)) { mark_gone(rq); return true; }
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

/* ---- the access handler ---- */

static bool has_body(const fr_req *rq) {
    const char *cl = fr__req_header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return fr__req_header(rq, MHD_HTTP_HEADER_TRANSFER_ENCODING) || (cl && strcmp(cl, "0"));
}

/* Headers are in: route, refuse early, or wait for the body. */
static void begin(fr_req *rq) {
    fr_server *s = rq->srv;
    char allow[64];
    bool known = false;
    const fr_route *rt = NULL;
    rq->begun = true;
    conn_window(s, rq->c, true);            /* the body gets its own window */

    int rc = fr__route_match(rq, s->routes, s->n_routes, rq->method, rq->path, &rt, &known, allow, sizeof allow);
    if (rc) { fr__reply_err(rq, rc, NULL); return; }
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
    if (s->cfg.n_api_keys && !(rt->flags & FR_ROUTE_PUBLIC) && !authorised(rq)) {
        fr__reply_header(rq, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
        fr__reply_error(rq, 401, "unauthorized", NULL,
                        "a valid API key is required (Authorization: Bearer KEY or X-API-Key: KEY)");
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

/* The body is complete: parse it and call the handler. */
static void dispatch(fr_req *rq) {
    const fr_route *rt = rq->route;
    conn_window(rq->srv, rq->c, false);
    if ((rt->flags & FR_ROUTE_JSON) && rq->body_len) {
        json_error_t e;
        rq->json = json_loadb(rq->body, rq->body_len, 0, &e);
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
    /* From here the request may take as long as it needs (a generation,
     * a stream): libmicrohttpd's idle timeout would cut a stream whose
     * reader waits longer than it, so it is off until the request ends. */
    MHD_set_connection_option(rq->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    rq->dispatched = true;
    fr_errclear();
    int rc = rt->fn(rq);
    if (rq->status) return;
    if (rc < 0) fr__reply_err(rq, rc, NULL);
    else fr__reply_error(rq, 500, "internal_error", NULL, "the handler of %s %s sent no reply", rt->method,
                         rt->pattern);
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
    return rq->status ? MHD_YES : MHD_NO;
}

/* Log fields: printable ASCII only, bounded, so that a path cannot forge
 * log lines. */
static void clean(char *dst, size_t size, const char *s) {
    size_t i = 0;
    for (; s && *s && i + 1 < size; s++) dst[i++] = (*s > 32 && *s < 127) ? *s : '?';
    dst[i] = 0;
    if (!i && size > 1) { dst[0] = '-'; dst[1] = 0; }
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

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    fr_server *s = cls;
    fr_req *rq = *con_cls;
    if (!rq) return;
    *con_cls = NULL;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) mark_gone(rq);
    if (rq->sse) fr__sse_finish(rq->sse, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);

    /* No reply at all: the client went away (or the server stopped) first. */
    int status = rq->status ? rq->status : 499;
    char st[8];
    snprintf(st, sizeof st, "%d", status);
    double secs = fr_now_s() - rq->t_start;
    fr_metric_add(s->m_requests, 1, rq->route_name, st);
    fr_metric_observe(s->m_duration, secs, rq->route_name);
    fr_metric_add(s->m_in_flight, -1, NULL);
    log_request(rq, status, secs);
    conn_window(s, rq->c, true);            /* waiting for the next request */
    if (rq->dispatched)
        MHD_set_connection_option(mc, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)((s->cfg.conn_timeout_ms + 999) / 1000));
    req_free(rq);

    pthread_mutex_lock(&s->mu);
    s->in_flight--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
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
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 128) == 0) break;
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
    if (!s->cfg.conn_limit) s->cfg.conn_limit = DEFAULT_CONN_LIMIT;
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

    unsigned timeout_s = (unsigned)((s->cfg.conn_timeout_ms + 999) / 1000);
    s->daemon = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_access, s,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,           /* first, to catch every message */
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, s->cfg.conn_limit,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape_none, s,
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

int fr_server_in_flight(const fr_server *s) {
    fr_server *m = (fr_server *)s;
    pthread_mutex_lock(&m->mu);
    int n = m->in_flight;
    pthread_mutex_unlock(&m->mu);
    return n;
}

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
    atomic_store(&s->draining, true);
    /* Quiesce stops the accept loop; the kernel would still complete
     * handshakes into the backlog, so the socket also stops listening
     * (shutdown, not close: libmicrohttpd may look at the fd until it
     * stops).  New clients get a refused connection. */
    MHD_socket lfd = MHD_quiesce_daemon(s->daemon);
    if (lfd != MHD_INVALID_SOCKET) shutdown(lfd, SHUT_RDWR);
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
    pthread_mutex_unlock(&s->mu);
    atomic_store(&s->stopping, true);
    MHD_stop_daemon(s->daemon);             /* closes idle connections, joins their threads */
    s->daemon = NULL;
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
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
