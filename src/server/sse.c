/*
 * sse.c — server-sent event streams (text/event-stream).
 *
 * A stream is a libmicrohttpd response of unknown size (sent chunked)
 * with two sides that meet in one buffer, guarded by the request's mutex:
 *
 *   the producer  the request's own thread (http.c), once the handler has
 *                 returned: fr__sse_produce calls the handler's pull
 *                 function until the stream ends, appending its events;
 *   the reader    libmicrohttpd's worker thread (`reader` below), which
 *                 hands out the buffered bytes as the socket takes them.
 *                 With nothing buffered and the stream not over, it
 *                 suspends the connection (`waiting`) and returns 0; the
 *                 producer resumes it after its next append.
 *
 * So a worker never blocks on a generation, and a generation never waits
 * for a slow client: its output waits here (the buffer is counted memory,
 * bounded by the request's max_tokens) and the model is free as soon as
 * the answer is complete.  A client that stops reading is cut by
 * libmicrohttpd's idle timeout (nothing moved for conn_timeout); a stream
 * that is idle itself (a request queued for a slot) sends a comment line
 * ": keep-alive" every keepalive interval so that proxies and clients do
 * not take the silence for a dead peer.
 *
 * Wire format, one event per chunk of output:
 *
 *   data: {"id":"...","choices":[...]}\n\n
 *   ...
 *   data: [DONE]\n\n                          after pull returns FR_SSE_END
 *
 * and when pull fails after the stream started (the status line is gone):
 *
 *   data: {"error":{"message":...,"type":...,"param":null,"code":...}}\n\n
 *   data: [DONE]\n\n
 *
 * A client that goes away ends the stream without more bytes: pull sees
 * fr__sse_gone, the producer stops, and the reader ends with an error;
 * fin(ud, false) runs once, from fr__sse_finish, when both sides are done.
 *
 * NDJSON (fr__reply_ndjson, Ollama's streams): the same machinery with
 * another framing, application/x-ndjson, one JSON object a line:
 *
 *   {"model":"...","response":"The","done":false}\n
 *   ...
 *   {"model":"...","done":true,...}\n         the last line pull appends
 *
 * with no end marker, no keep-alive (an empty line is not JSON, and
 * Ollama's clients parse every line), and an error after the status line
 * as Ollama sends it: {"error":"message"}\n.
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "base/sysinfo.h"
#include "server/server_int.h"

#define KEEPALIVE_MAX_S 15.0

struct fr_sse {
    fr_req *rq;
    fr_sse_pull_fn pull;
    fr_sse_fin_fn fin;
    void *ud;
    /* guarded by rq->mu: */
    char *buf;                  /* pending bytes [off, len) */
    size_t off, len, cap;
    bool ended;                 /* [DONE] is in the buffer */
    bool failed;                /* the producer stopped without [DONE]: end with an error */
    bool waiting;               /* the reader suspended the connection for want of bytes */
    bool completed;             /* the reader reported the end of the stream */
    bool ndjson;                /* NDJSON framing (set before the stream starts) */
    /* the producer's own: */
    bool oom;                   /* an append failed since the last check */
    double last;                /* fr_now_s() of the last append */
    double keepalive_s;
};

static void append(fr_sse *st, const char *s, size_t n) {
    if (st->oom) return;
    pthread_mutex_lock(&st->rq->mu);
    if (st->len + n > st->cap) {
        size_t nc = st->cap ? st->cap : 1024;
        while (nc < st->len + n) nc *= 2;
        char *nb = fr_realloc(st->buf, nc);
        if (!nb) {
            st->oom = true;
            pthread_mutex_unlock(&st->rq->mu);
            return;
        }
        st->buf = nb;
        st->cap = nc;
    }
    memcpy(st->buf + st->len, s, n);
    st->len += n;
    pthread_mutex_unlock(&st->rq->mu);
    st->last = fr_now_s();
}

/* Wake the reader if it is waiting for bytes. */
static void flush(fr_sse *st) {
    pthread_mutex_lock(&st->rq->mu);
    bool wake = st->waiting;
    st->waiting = false;
    pthread_mutex_unlock(&st->rq->mu);
    if (wake) fr__req_resume(st->rq);       /* suspended by us: nobody else can end it meanwhile */
}

int fr__sse_data(fr_sse *st, const char *data, size_t len) {
    if (memchr(data, '\n', len) || memchr(data, '\r', len))
        return fr_errf(FR_EINTERNAL, "an SSE event may not contain a line break");
    if (st->ndjson) {
        append(st, data, len);
        append(st, "\n", 1);
        return st->oom ? FR_ENOMEM : 0;
    }
    append(st, "data: ", 6);
    append(st, data, len);
    append(st, "\n\n", 2);
    return st->oom ? FR_ENOMEM : 0;
}

int fr__sse_json(fr_sse *st, json_t *obj) {
    if (!obj) return FR_ENOMEM;
    char *text = json_dumps(obj, JSON_COMPACT);      /* escapes newlines in strings */
    json_decref(obj);
    if (!text) return FR_ENOMEM;
    int rc = fr__sse_data(st, text, strlen(text));
    fr_free(text);
    return rc;
}

bool fr__sse_gone(fr_sse *st, int timeout_ms) {
    if (fr__req_gone(st->rq, timeout_ms)) return true;
    if (!st->ndjson && fr_now_s() - st->last >= st->keepalive_s && !st->oom) {
        append(st, ": keep-alive\n\n", 14);
        st->oom = false;                    /* a lost comment is no loss */
        flush(st);
    }
    return false;
}

static void append_error(fr_sse *st, int err) {
    const char *d = fr_errdetail();
    int status = fr_errstatus(err);
    FR_WARN("%s: stream failed: %s", st->rq->id, d && *d ? d : fr_strerror(err));
    const char *msg = d && *d ? d : fr_strerror(err);
    json_t *e = st->ndjson ? json_pack("{s:o}", "error", fr__json_text(msg, strlen(msg)))
                           : fr__error_json(status, fr__err_code(err, NULL), NULL, msg);
    if (!e || fr__sse_json(st, e)) {
        static const char fallback[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                                       "\"param\":null,\"code\":\"out_of_memory\"}}";
        static const char fallback_nd[] = "{\"error\":\"out of memory\"}";
        st->oom = false;
        if (st->ndjson) fr__sse_data(st, fallback_nd, sizeof fallback_nd - 1);
        else fr__sse_data(st, fallback, sizeof fallback - 1);
    }
}

void fr__sse_produce(fr_sse *st) {
    fr_req *rq = st->rq;
    for (;;) {
        if (fr__req_gone(rq, 0)) break;
        pthread_mutex_lock(&rq->mu);
        size_t mark = st->len;              /* where this pull's events begin */
        pthread_mutex_unlock(&rq->mu);
        fr_errclear();
        int rc = st->pull(st, st->ud);
        if (st->oom && rc >= 0) rc = fr_errf(FR_ENOMEM, "no memory for the stream's events");
        if (rc == FR_SSE_MORE) { flush(st); continue; }
        if (rc != FR_SSE_END) {
            if (atomic_load(&rq->gone)) break;
            if (st->oom) {                  /* drop a half-written event */
                st->oom = false;
                pthread_mutex_lock(&rq->mu);
                if (st->len > mark) st->len = mark;
                pthread_mutex_unlock(&rq->mu);
            }
            append_error(st, rc < 0 ? rc : FR_EINTERNAL);
        }
        if (!st->ndjson) append(st, "data: [DONE]\n\n", 14);
        if (st->oom) break;
        pthread_mutex_lock(&rq->mu);
        st->ended = true;
        pthread_mutex_unlock(&rq->mu);
        flush(st);
        return;
    }
    pthread_mutex_lock(&rq->mu);
    st->failed = true;
    pthread_mutex_unlock(&rq->mu);
    flush(st);
}

/* libmicrohttpd's worker wants bytes. */
static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max) {
    fr_sse *st = cls;
    fr_req *rq = st->rq;
    pthread_mutex_lock(&rq->mu);
    ssize_t out;
    if (st->off < st->len) {
        size_t n = st->len - st->off;
        if (n > max) n = max;
        memcpy(buf, st->buf + st->off, n);
        st->off += n;
        if (st->off == st->len) st->off = st->len = 0;
        out = (ssize_t)n;
    } else if (st->ended) {
        st->completed = true;
        out = MHD_CONTENT_READER_END_OF_STREAM;
    } else if (st->failed) {
        out = MHD_CONTENT_READER_END_WITH_ERROR;
    } else {
        st->waiting = true;
        MHD_suspend_connection(rq->conn);  /* the producer resumes it */
        out = 0;
    }
    pthread_mutex_unlock(&rq->mu);
    return out;
}

static int reply_stream(fr_req *rq, bool ndjson, fr_sse_pull_fn pull, fr_sse_fin_fn fin, void *ud) {
    if (rq->status || rq->pending) return fr_errf(FR_EINTERNAL, "%s: stream after a reply", rq->id);
    fr_sse *st = fr_calloc(1, sizeof *st);
    if (!st) return FR_ENOMEM;
    st->rq = rq;
    st->ndjson = ndjson;
    st->pull = pull;
    st->fin = fin;
    st->ud = ud;
    st->last = fr_now_s();
    st->keepalive_s = (double)rq->srv->cfg.conn_timeout_ms / 2000.0;
    if (st->keepalive_s > KEEPALIVE_MAX_S) st->keepalive_s = KEEPALIVE_MAX_S;
    if (st->keepalive_s < 1) st->keepalive_s = 1;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, reader, st, NULL);
    if (!r ||
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                ndjson ? "application/x-ndjson" : "text/event-stream") != MHD_YES ||
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") != MHD_YES ||
        MHD_add_response_header(r, "X-Accel-Buffering", "no") != MHD_YES) {
        if (r) MHD_destroy_response(r);
        fr_free(st);
        return FR_ENOMEM;
    }
    int rc = fr__queue(rq, 200, r);
    if (rc < 0) { fr_free(st); return rc; }
    rq->sse = st;
    return FR_REPLIED;
}

int fr__reply_sse(fr_req *rq, fr_sse_pull_fn pull, fr_sse_fin_fn fin, void *ud) {
    return reply_stream(rq, false, pull, fin, ud);
}

int fr__reply_ndjson(fr_req *rq, fr_sse_pull_fn pull, fr_sse_fin_fn fin, void *ud) {
    return reply_stream(rq, true, pull, fin, ud);
}

void fr__sse_finish(fr_sse *st, bool completed) {
    if (st->fin) st->fin(st->ud, completed && st->completed);
    fr_free(st->buf);
    fr_free(st);
}
