/*
 * client.h — a minimal HTTP/1.1 client over real sockets for the server's
 * unit tests: connect to 127.0.0.1:port, send raw bytes, read one
 * response (Content-Length, chunked, or until close).  Every read has a
 * 10 s receive timeout so a broken server fails a test instead of hanging
 * it.  Memory here is plain malloc: it is the test's, not the server's.
 */
#ifndef FR_TEST_SERVER_CLIENT_H
#define FR_TEST_SERVER_CLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef struct http_resp {
    int status;             /* 0 when no status line arrived */
    char *head;             /* status line and headers, NUL-terminated */
    char *body;             /* de-chunked, NUL-terminated */
    size_t body_len;
    bool closed;            /* the server closed the connection */
} http_resp;

static inline void http_resp_free(http_resp *r) {
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

static inline int http_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { close(fd); return -1; }
    return fd;
}

static inline bool http_send(int fd, const char *data, size_t n) {
    while (n) {
        ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
        if (w <= 0) return false;
        data += w;
        n -= (size_t)w;
    }
    return true;
}

static inline void milli_sleep(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A growable byte buffer with a read position, fed from the socket. */
typedef struct rbuf { int fd; char *p; size_t len, pos; bool eof; } rbuf;

static inline bool rb_fill(rbuf *b) {
    if (b->eof) return false;
    char tmp[4096];
    ssize_t r = recv(b->fd, tmp, sizeof tmp, 0);
    if (r <= 0) { b->eof = true; return false; }
    b->p = realloc(b->p, b->len + (size_t)r + 1);
    memcpy(b->p + b->len, tmp, (size_t)r);
    b->len += (size_t)r;
    b->p[b->len] = 0;
    return true;
}

/* The next line (without CRLF), malloc'd; NULL at EOF. */
static inline char *rb_line(rbuf *b) {
    for (;;) {
        char *nl = b->p ? memchr(b->p + b->pos, '\n', b->len - b->pos) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - (b->p + b->pos));
            char *s = malloc(n + 1);
            memcpy(s, b->p + b->pos, n);
            s[n] = 0;
            if (n && s[n - 1] == '\r') s[n - 1] = 0;
            b->pos += n + 1;
            return s;
        }
        if (!rb_fill(b)) return NULL;
    }
}

static inline bool rb_take(rbuf *b, size_t n, char **out, size_t *out_len) {
    while (b->len - b->pos < n)
        if (!rb_fill(b)) return false;
    *out = realloc(*out, *out_len + n + 1);
    memcpy(*out + *out_len, b->p + b->pos, n);
    *out_len += n;
    (*out)[*out_len] = 0;
    b->pos += n;
    return true;
}

/* A header's value in r->head (case-insensitive name), copied into buf. */
static inline const char *http_header(const http_resp *r, const char *name, char *buf, size_t size) {
    size_t n = strlen(name);
    for (const char *p = r->head; p && *p; ) {
        const char *e = strstr(p, "\r\n");
        if (!e) e = p + strlen(p);
        if ((size_t)(e - p) > n && !strncasecmp(p, name, n) && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ') v++;
            size_t vn = (size_t)(e - v) < size - 1 ? (size_t)(e - v) : size - 1;
            memcpy(buf, v, vn);
            buf[vn] = 0;
            return buf;
        }
        p = *e ? e + 2 : e;
    }
    return NULL;
}

/* Read one response from fd (HEAD-less requests only). */
static inline bool http_read(int fd, http_resp *r) {
    rbuf b = {.fd = fd};
    memset(r, 0, sizeof *r);
    char *line;
    size_t head_len = 0;
    r->head = calloc(1, 1);
    while ((line = rb_line(&b))) {
        bool end = !*line;
        if (!end) {
            size_t n = strlen(line);
            r->head = realloc(r->head, head_len + n + 3);
            memcpy(r->head + head_len, line, n);
            memcpy(r->head + head_len + n, "\r\n", 3);
            head_len += n + 2;
        }
        free(line);
        if (end) break;
    }
    if (strncmp(r->head, "HTTP/1.", 7) || strlen(r->head) < 12) { free(b.p); r->closed = true; return false; }
    r->status = atoi(r->head + 9);
    char v[64];
    r->body = calloc(1, 1);
    if (http_header(r, "Content-Length", v, sizeof v)) {
        rb_take(&b, (size_t)strtoull(v, NULL, 10), &r->body, &r->body_len);
    } else if (http_header(r, "Transfer-Encoding", v, sizeof v) && strstr(v, "chunked")) {
        for (;;) {
            char *sz = rb_line(&b);
            if (!sz) break;
            size_t n = (size_t)strtoull(sz, NULL, 16);
            free(sz);
            if (n == 0) { free(rb_line(&b)); break; }
            if (!rb_take(&b, n, &r->body, &r->body_len)) break;
            free(rb_line(&b));
        }
    } else {
        while (rb_fill(&b)) {}
        rb_take(&b, b.len - b.pos, &r->body, &r->body_len);
    }
    free(b.p);
    return true;
}

/* One request on a fresh connection ("Connection: close"): method, path,
 * extra header lines (each ending in \r\n, may be NULL) and a body (may
 * be NULL). */
static inline bool http_do(int port, const char *method, const char *path, const char *headers,
                           const char *body, http_resp *r) {
    int fd = http_connect(port);
    memset(r, 0, sizeof *r);
    if (fd < 0) return false;
    char head[2048];
    size_t bl = body ? strlen(body) : 0;
    int n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s", method,
                     path, headers ? headers : "");
    if (body) n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %zu\r\n", bl);
    n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    bool ok = http_send(fd, head, (size_t)n) && (!body || http_send(fd, body, bl)) && http_read(fd, r);
    close(fd);
    return ok;
}

/* Wait until the peer closes fd (true) or ms pass (false). */
static inline bool http_wait_closed(int fd, int ms) {
    for (int waited = 0; waited < ms; waited += 50) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) > 0) {
            char c[256];
            ssize_t r = recv(fd, c, sizeof c, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) return true;
        }
    }
    return false;
}

#endif
