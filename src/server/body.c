/*
 * body.c — reading a request's JSON body: one getter per kind of field,
 * each of which answers the 400 that names the field when the value is
 * not what the field takes.
 *
 * Every handler that reads a body reads it through these, so a field of
 * a kind is refused with the same words wherever it appears:
 *
 *   absent, required        400 missing_field   "model is required"
 *   wrong type              400 invalid_value   "top_k must be an integer"
 *   out of range            400 invalid_value   "temperature must be between 0 and 2 (got 5)"
 *
 * and the error's param is the field ("weights.bm25" for a field of an
 * object inside the body: see fr_body.prefix).  A getter returns 0 when
 * the field was read or is absent or null (its *out then keeps the
 * caller's default), FR_REPLIED when it answered the 400, or a negative
 * FR_E* when even that failed (server_int.h, "Writing a handler").
 *
 * Nothing here allocates: strings and objects are borrowed from the
 * parsed body, which lives as long as the request.  A string holds no NUL
 * character: http.c parses bodies without JSON_ALLOW_NUL, so "\u0000" is
 * malformed JSON (400 invalid_json) before any handler runs.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/parse.h"
#include "server/server_int.h"

/* Answer 400 with code, naming field key: the message is its name and
 * then fmt ("weights.bm25 must be a number").  FR_REPLIED. */
__attribute__((format(printf, 4, 5)))
static int refuse(const fr_body *b, const char *key, const char *code, const char *fmt, ...) {
    char param[128], what[384];
    if (b->prefix) snprintf(param, sizeof param, "%s.%s", b->prefix, key);
    else snprintf(param, sizeof param, "%s", key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return fr__reply_error(b->rq, 400, code, param, "%s %s", param, what);
}

/* The field's value; NULL when it is absent or null. */
static json_t *field(const fr_body *b, const char *key, bool *present) {
    json_t *v = b->obj ? json_object_get(b->obj, key) : NULL;
    if (json_is_null(v)) v = NULL;
    if (present) *present = v != NULL;
    return v;
}

int fr__body_need(fr_req *rq, fr_body *b) {
    *b = (fr_body){.rq = rq, .obj = fr__req_json(rq)};
    if (!b->obj) return fr__reply_error(rq, 400, "missing_field", NULL, "the request needs a JSON body");
    return 0;
}

int fr__body_int(const fr_body *b, const char *key, long long lo, long long hi, long long *out, bool *present) {
    json_t *v = field(b, key, present);
    if (!v) return 0;
    if (!json_is_integer(v)) return refuse(b, key, "invalid_value", "must be an integer");
    long long n = json_integer_value(v);
    if (n < lo || n > hi) return refuse(b, key, "invalid_value", "must be between %lld and %lld (got %lld)", lo, hi, n);
    *out = n;
    return 0;
}

int fr__body_i32(const fr_body *b, const char *key, int32_t lo, int32_t hi, int32_t *out, bool *present) {
    long long n = *out;
    int rc = fr__body_int(b, key, lo, hi, &n, present);
    *out = (int32_t)n;
    return rc;
}

int fr__body_num(const fr_body *b, const char *key, double lo, double hi, double *out, bool *present) {
    json_t *v = field(b, key, present);
    if (!v) return 0;
    if (!json_is_number(v)) return refuse(b, key, "invalid_value", "must be a number");
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi)) return refuse(b, key, "invalid_value", "must be between %g and %g (got %g)", lo, hi, d);
    *out = d;
    return 0;
}

int fr__body_float(const fr_body *b, const char *key, double lo, double hi, float *out, bool *present) {
    double d = *out;
    int rc = fr__body_num(b, key, lo, hi, &d, present);
    *out = (float)d;
    return rc;
}

int fr__body_bool(const fr_body *b, const char *key, bool *out) {
    json_t *v = field(b, key, NULL);
    if (!v) return 0;
    if (!json_is_boolean(v)) return refuse(b, key, "invalid_value", "must be true or false");
    *out = json_is_true(v);
    return 0;
}

int fr__body_str(const fr_body *b, const char *key, unsigned flags, const char **out, size_t *len) {
    json_t *v = b->obj ? json_object_get(b->obj, key) : NULL;
    bool required = flags & FR_BODY_REQUIRED;
    if (!v && required) return refuse(b, key, "missing_field", "is required");
    if (!required && (!v || json_is_null(v))) return 0;
    if (!json_is_string(v) || json_string_length(v) == 0)
        return refuse(b, key, "invalid_value", "must be a non-empty string");
    *out = json_string_value(v);
    if (len) *len = json_string_length(v);
    return 0;
}

int fr__body_object(const fr_body *b, const char *key, const char *must, json_t **out) {
    json_t *v = field(b, key, NULL);
    if (!v) return 0;
    if (!json_is_object(v)) return refuse(b, key, "invalid_value", "must be %s", must);
    *out = v;
    return 0;
}

int fr__body_keep_alive(const fr_body *b, int64_t *out) {
    json_t *v = field(b, "keep_alive", NULL);
    if (!v) return 0;
    if (json_is_number(v)) {
        double s = json_number_value(v);
        if (!(s < 0 || s * 1000.0 < FR_DURATION_MAX_MS))   /* the cast below would be undefined */
            return refuse(b, "keep_alive", "invalid_value", "%g s is out of range", s);
        *out = s < 0 ? FR_DURATION_NEVER : (int64_t)(s * 1000);
        return 0;
    }
    if (!json_is_string(v) || fr_parse_duration_ms("keep_alive", json_string_value(v), out))
        return refuse(b, "keep_alive", "invalid_value", "must be a duration like \"5m\", \"0\" or \"-1\", or seconds");
    return 0;
}
