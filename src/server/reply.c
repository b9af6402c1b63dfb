/*
 * reply.c — answers: JSON, text, the error shape of API.md, and the
 * mapping from FR_E* codes to HTTP statuses and error codes.
 *
 * Every reply goes through fr__queue, which adds the headers every answer
 * carries: X-Request-Id, Retry-After on a 503, Connection: close while
 * draining, and the handler's extra headers.  One reply per request:
 * a second one is a bug (FR_EINTERNAL, logged).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
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
    if (rq->status) {
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
    if (!ok || MHD_queue_response(rq->conn, (unsigned)status, resp) != MHD_YES) {
        MHD_destroy_response(resp);
        FR_ERROR("%s: cannot queue the %d reply for %s", rq->id, status, rq->route_name);
        return fr_errf(FR_EINTERNAL, "%s: cannot queue the %d reply", rq->id, status);
    }
    MHD_destroy_response(resp);             /* the connection holds its own reference */
    rq->status = status;
    return 0;
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
    default:  return status >= 500 ? "internal_error" : "invalid_request";
    }
}

json_t *fr__error_json(int status, const char *code, const char *param, const char *message) {
    return json_pack("{s:{s:s, s:s, s:s?, s:s}}", "error", "message", message ? message : "",
                     "type", status >= 500 ? "server_error" : "invalid_request_error",
                     "param", param, "code", code ? code : status_code(status));
}

int fr__reply_error(fr_req *rq, int status, const char *code, const char *param, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Take the message out of a detail: a failing json_pack below must not
     * be confused with the error being reported. */
    return fr__reply_json(rq, status, fr__error_json(status, code, param, msg));
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
    default:           return "internal_error";
    }
}

int fr__reply_err(fr_req *rq, int err, const char *param) {
    const char *d = fr_errdetail();
    char msg[512];
    snprintf(msg, sizeof msg, "%s", d && *d ? d : fr_strerror(err));
    int status = fr_errstatus(err);
    if (status >= 500 && status != 503) FR_ERROR("%s: %s %s: %s", rq->id, rq->method, rq->route_name, msg);
    return fr__reply_json(rq, status, fr__error_json(status, fr__err_code(err, param), param, msg));
}
