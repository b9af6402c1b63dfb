/*
 * sse.c — server-sent event streams (text/event-stream).
 *
 * A stream is a libmicrohttpd response of unknown size (sent chunked)
 * whose content reader is `reader` below.  The reader hands out bytes
 * from a pending buffer; when the buffer is empty it calls the handler's
 * pull function, which blocks until it has events and appends them.  So
 * the only thread involved is the connection's own.
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
 * A client that goes away ends the stream without more bytes: the reader
 * checks the socket before every pull and returns END_WITH_ERROR, and the
 * request-completed callback reports the abnormal end; either way fin(ud,
 * false) runs, once, from fr__sse_finish.
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "server/server_int.h"

struct fr_sse {
    fr_req *rq;
    fr_sse_pull_fn pull;
    fr_sse_fin_fn fin;
    void *ud;
    char *buf;                  /* pending bytes [off, len) */
    size_t off, len, cap;
    bool oom;
    bool ended;                 /* [DONE] is in the buffer */
    bool completed;             /* the reader reported end of stream */
};

static void append(fr_sse *st, const char *s, size_t n) {
    if (st->oom) return;
    if (st->len + n > st->cap) {
        size_t nc = st->cap ? st->cap : 1024;
        while (nc < st->len + n) nc *= 2;
        char *nb = fr_realloc(st->buf, nc);
        if (!nb) { st->oom = true; return; }
        st->buf = nb;
        st->cap = nc;
    }
    memcpy(st->buf + st->len, s, n);
    st->len += n;
}

int fr__sse_data(fr_sse *st, const char *data, size_t len) {
    if (memchr(data, '\n', len) || memchr(data, '\r', len))
        return fr_errf(FR_EINTERNAL, "an SSE event may not contain a line break");
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

fr_req *fr__sse_req(fr_sse *st) { return st->rq; }

bool fr__sse_gone(fr_sse *st, int timeout_ms) { return fr__req_gone(st->rq, timeout_ms); }

static void append_error(fr_sse *st, int err) {
    const char *d = fr_errdetail();
    int status = fr_errstatus(err);
    FR_WARN("%s: stream failed: %s", st->rq->id, d && *d ? d : fr_strerror(err));
    json_t *e = fr__error_json(status, fr__err_code(err, NULL), NULL, d && *d ? d : fr_strerror(err));
    if (!e || fr__sse_json(st, e)) {
        static const char fallback[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                                       "\"param\":null,\"code\":\"out_of_memory\"}}";
        st->oom = false;
        fr__sse_data(st, fallback, sizeof fallback - 1);
    }
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max) {
    fr_sse *st = cls;
    while (st->off == st->len) {
        st->off = st->len = 0;
        if (st->ended) { st->completed = true; return MHD_CONTENT_READER_END_OF_STREAM; }
        if (fr__req_gone(st->rq, 0)) return MHD_CONTENT_READER_END_WITH_ERROR;
        fr_errclear();
        int rc = st->pull(st, st->ud);
        if (st->oom && rc >= 0) rc = fr_errf(FR_ENOMEM, "no memory for the stream's events");
        if (rc == FR_SSE_MORE) continue;
        if (rc != FR_SSE_END) {
            if (atomic_load(&st->rq->gone)) return MHD_CONTENT_READER_END_WITH_ERROR;
            if (st->oom) { st->oom = false; st->len = 0; }   /* drop a half-written event */
            append_error(st, rc < 0 ? rc : FR_EINTERNAL);
        }
        append(st, "data: [DONE]\n\n", 14);
        if (st->oom) return MHD_CONTENT_READER_END_WITH_ERROR;
        st->ended = true;
    }
    size_t n = st->len - st->off;
    if (n > max) n = max;
    memcpy(buf, st->buf + st->off, n);
    st->off += n;
    return (ssize_t)n;
}

int fr__reply_sse(fr_req *rq, fr_sse_pull_fn pull, fr_sse_fin_fn fin, void *ud) {
    if (rq->status) return fr_errf(FR_EINTERNAL, "%s: stream after a reply", rq->id);
    fr_sse *st = fr_calloc(1, sizeof *st);
    if (!st) return FR_ENOMEM;
    st->rq = rq;
    st->pull = pull;
    st->fin = fin;
    st->ud = ud;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, reader, st, NULL);
    if (!r || MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream") != MHD_YES ||
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") != MHD_YES ||
        MHD_add_response_header(r, "X-Accel-Buffering", "no") != MHD_YES) {
        if (r) MHD_destroy_response(r);
        fr_free(st);
        return FR_ENOMEM;
    }
    int rc = fr__queue(rq, 200, r);
    if (rc) { fr_free(st); return rc; }
    rq->sse = st;
    return 0;
}

void fr__sse_finish(fr_sse *st, bool completed) {
    if (st->fin) st->fin(st->ud, completed && st->completed);
    fr_free(st->buf);
    fr_free(st);
}
