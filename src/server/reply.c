/*
 * reply.c — answers: JSON, text, the error shape of API.md, and the
 * mapping from FR_E* codes to HTTP statuses and error codes.
 *
 * Every reply goes through fr__queue, which adds the headers every answer
 * carries: X-Request-Id, Retry-After on a 503, Connection: close while
 * draining, and the handler's extra headers.  One reply per request:
 * a second one is a bug (FR_EINTERNAL, logged).  A reply queued is
 * FR_REPLIED, the sign handlers pass up (server_int.h).
 *
 * fr__reply_owned hands a buffer the handler wrote (fr_malloc'd) to
 * libmicrohttpd without a copy; fr__real_text writes a number as jansson
 * would, for handlers that write large replies themselves (reply_int.h).
 *
 * fr__json_text makes any bytes a JSON string (U+FFFD for what is not
 * UTF-8): generated text, and error messages that quote a client's bytes.
 *
 * Errors under /api/ (Ollama's routes, ollama.c, and whatever the server
 * answers there before a handler runs: 401, 404, 413, 503 draining) take
 * Ollama's shape, {"error": "message"}, with the same status: Ollama's
 * clients read the message from that string.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "base/utf8.h"
#include "server/reply_int.h"
#include "server/server_int.h"

int fr__reply_header(fr_req *rq, const char *name, const char *value) {
    fr_hdr *h = fr__req_alloc(rq, sizeof *h);
    if (!h || !(h->name = fr__req_strdup(rq, name)) || !(h->value = fr__req_strdup(rq, value))) return FR_ENOMEM;
    h->next = rq->headers;
    rq->headers = h;
    return 0;
}

int fr__queue(fr_req *rq, int status, struct MHD_Response *resp) {
    if (!resp) return FR_ENOMEM;
    if (rq->status || rq->pending) {
        FR_ERROR("%s: a second reply (%d after %d) for %s: a bug", rq->id, status, rq->status, rq->route_name);
        MHD_destroy_response(resp);
        return FR_EINTERNAL;
    }
    bool ok = MHD_add_response_header(resp, "X-Request-Id", rq->id) == MHD_YES;
    for (const fr_hdr *h = rq->headers; h; h = h->next)
        ok &= MHD_add_response_header(resp, h->name, h->value) == MHD_YES;
    bool draining = atomic_load(&rq->srv->draining);
    if (status == 503) {
        double ra = rq->retry_after_s > 0 ? rq->retry_after_s : draining ? 5 : 1;
        char v[24];
        snprintf(v, sizeof v, "%.0f", ra > 86400 ? 86400 : ceil(ra));
        ok &= MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v) == MHD_YES;
    }
    if (draining) ok &= MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close") == MHD_YES;
    if (ok && rq->deferred) {
        /* On the request thread: the connection is suspended, and the
         * reply waits for on_access (http.c) to queue it. */
        rq->pending = resp;
        rq->pending_status = status;
        rq->status = status;
        return FR_REPLIED;
    }
    if (!ok || MHD_queue_response(rq->conn, (unsigned)status, resp) != MHD_YES) {
        MHD_destroy_response(resp);
        FR_ERROR("%s: cannot queue the %d reply for %s", rq->id, status, rq->route_name);
        return fr_errf(FR_EINTERNAL, "%s: cannot queue the %d reply", rq->id, status);
    }
    MHD_destroy_response(resp);             /* the connection holds its own reference */
    rq->status = status;
    return FR_REPLIED;
}

int fr__reply_text(fr_req *rq, int status, const char *content_type, const char *text, size_t len) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!r) return FR_ENOMEM;
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES) {
        MHD_destroy_response(r);
        return FR_ENOMEM;
    }
    return fr__queue(rq, status, r);
}

int fr__reply_json(fr_req *rq, int status, json_t *body) {
    if (!body) return fr_errf(FR_ENOMEM, "no memory for the reply");
    /* json_dumps allocates with fr_malloc (http.c sets jansson's allocator),
     * so the buffer goes to libmicrohttpd with fr_free as its free function. */
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) return fr_errf(FR_ENOMEM, "no memory for the reply");
    size_t len = strlen(text);
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(len, text, fr_free);
    if (!r) { fr_free(text); return FR_ENOMEM; }
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") != MHD_YES) {
        MHD_destroy_response(r);
        return FR_ENOMEM;
    }
    return fr__queue(rq, status, r);
}

int fr__reply_owned(fr_req *rq, int status, const char *content_type, char *buf, size_t len) {
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(len, buf, fr_free);
    if (!r) {
        fr_free(buf);
        return FR_ENOMEM;
    }
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES) {
        MHD_destroy_response(r);
        return FR_ENOMEM;
    }
    return fr__queue(rq, status, r);
}

size_t fr__real_text(double v, char *out) {
    if (!isfinite(v)) {
        memcpy(out, "null", 4);
        return 4;
    }
    char b[40];
    int n = snprintf(b, sizeof b, "%.17g", v);
    if (n <= 0 || (size_t)n >= sizeof b) return 0;
    size_t len = (size_t)n;
    if (!memchr(b, '.', len) && !memchr(b, 'e', len)) {
        memcpy(b + len, ".0", 3);
        len += 2;
    }
    char *e = memchr(b, 'e', len);
    if (e) {                                /* "e+07" -> "e7", "e-05" -> "e-5" */
        char *start = e + 1, *end;
        if (*start == '+') {
            memmove(start, start + 1, (size_t)(b + len - start));
            len--;
        }
        if (*start == '-') start++;
        for (end = start; *end == '0' && end[1]; end++) {}
        if (end != start) {
            memmove(start, end, (size_t)(b + len - end));
            len -= (size_t)(end - start);
        }
    }
    if (len > FR_REAL_TEXT_MAX) len = FR_REAL_TEXT_MAX;     /* cannot happen for %.17g */
    memcpy(out, b, len);
    return len;
}

json_t *fr__json_text(const char *p, size_t n) {
    /* Each maximal subpart (base/utf8.h) becomes one U+FFFD. */
    const uint8_t *u = (const uint8_t *)p;
    size_t i = 0, bad = 0;
    int k;
    while (i < n && (k = fr_utf8_char(u + i, n - i, NULL)) > 0) i += (size_t)k;
    if (i == n) return json_stringn_nocheck(p, n);
    char *out = fr_malloc(3 * n + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (i = 0; i < n;) {
        if ((k = fr_utf8_char(u + i, n - i, &bad)) > 0) {
            memcpy(out + o, p + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += bad;
        }
    }
    json_t *j = json_stringn_nocheck(out, o);
    fr_free(out);
    return j;
}

static const char *status_code(int status) {
    switch (status) {
    case 400: return "invalid_value";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 409: return "conflict";
    case 413: return "body_too_large";
    case 503: return "overloaded";
    case 507: return "insufficient_storage";
    default:  return status >= 500 ? "internal_error" : "invalid_request";
    }
}

json_t *fr__error_json(int status, const char *code, const char *param, const char *message) {
    /* The message may quote a client's bytes (a model id from the path,
     * jansson's text of a malformed body) or be cut inside a character:
     * made valid UTF-8, since json_pack refuses anything else and the
     * reply would be lost. */
    if (!message) message = "";
    return json_pack("{s:{s:o, s:s, s:s?, s:s}}", "error", "message", fr__json_text(message, strlen(message)),
                     "type", status >= 500 ? "server_error" : "invalid_request_error",
                     "param", param, "code", code ? code : status_code(status));
}

/* Does rq answer in Ollama's error shape? */
static bool ollama_path(const fr_req *rq) {
    return rq->path && strncmp(rq->path, "/api/", 5) == 0;
}

static json_t *error_body(const fr_req *rq, int status, const char *code, const char *param, const char *msg) {
    if (ollama_path(rq)) return json_pack("{s:o}", "error", fr__json_text(msg, strlen(msg)));
    return fr__error_json(status, code, param, msg);
}

int fr__reply_error(fr_req *rq, int status, const char *code, const char *param, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Take the message out of a detail: a failing json_pack below must not
     * be confused with the error being reported. */
    return fr__reply_json(rq, status, error_body(rq, status, code, param, msg));
}

const char *fr__err_code(int err, const char *param) {
    switch (err) {
    case FR_EINVAL: case FR_ERANGE: case FR_EFORMAT: return "invalid_value";
    case FR_EUNSUPP:   return "unsupported";
    case FR_ENOENT:    return param && !strcmp(param, "model") ? "model_not_found" : "not_found";
    case FR_ETOOLONG:  return "context_length_exceeded";
    case FR_EBUSY:     return "overloaded";
    case FR_EBUDGET:   return "insufficient_memory";
    case FR_ENOMEM:    return "out_of_memory";
    case FR_ECONFLICT: return "model_in_use";
    case FR_ESHUTDOWN: return "shutting_down";
    case FR_ENOSPC:    return "insufficient_storage";
    default:           return "internal_error";
    }
}

int fr__reply_err(fr_req *rq, int err, const char *param) {
    const char *d = fr_errdetail();
    char msg[512];
    snprintf(msg, sizeof msg, "%s", d && *d ? d : fr_strerror(err));
    int status = fr_errstatus(err);
    if (status >= 500 && status != 503) FR_ERROR("%s: %s %s: %s", rq->id, rq->method, rq->route_name, msg);
    return fr__reply_json(rq, status, error_body(rq, status, fr__err_code(err, param), param, msg));
}
