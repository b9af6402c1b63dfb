/* err.c — the error table's strings and the per-thread detail message. */
#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>

static _Thread_local char detail[512];

struct err_row { int code; const char *name, *msg; int status; };

static const struct err_row rows[] = {
#define FR_ERR_ROW(name, msg, status) { FR_##name, #name, msg, status },
    FR_ERR_MAP(FR_ERR_ROW)
#undef FR_ERR_ROW
};

static const struct err_row *find_row(int code) {
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i].code == code) return &rows[i];
    return NULL;
}

const char *fr_strerror(int code) {
    if (code == 0) return "ok";
    const struct err_row *r = find_row(code);
    return r ? r->msg : "unknown error";
}

const char *fr_errname(int code) {
    if (code == 0) return "OK";
    const struct err_row *r = find_row(code);
    return r ? r->name : "EUNKNOWN";
}

int fr_errstatus(int code) {
    const struct err_row *r = find_row(code);
    return r ? r->status : 500;
}

int fr_verrf(int code, const char *fmt, va_list ap) {
    vsnprintf(detail, sizeof detail, fmt, ap);
    return code;
}

int fr_errf(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fr_verrf(code, fmt, ap);
    va_end(ap);
    return code;
}

const char *fr_errdetail(void) { return detail; }

void fr_errclear(void) { detail[0] = 0; }

void fr__assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "frugal: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
