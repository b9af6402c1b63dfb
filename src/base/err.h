/*
 * err.h — the one error table of frugal.
 *
 * Every error has a name, a message and an HTTP status, listed once in
 * FR_ERR_MAP.  Functions return int: 0 on success or a negative FR_E* code,
 * and write results through out-parameters.  Besides the code, the failing
 * function may record a detail line (which file, which key, which value)
 * with fr_errf(); it is kept per thread and read with fr_errdetail().
 */
#ifndef FR_BASE_ERR_H
#define FR_BASE_ERR_H

#include <stdarg.h>

#define FR_ERR_MAP(X)                                                       \
    X(EINVAL,   "invalid argument",                     400)                \
    X(ENOMEM,   "out of memory",                        503)                \
    X(EFORMAT,  "malformed file",                       400)                \
    X(EIO,      "input/output error",                   500)                \
    X(ENOENT,   "not found",                            404)                \
    X(EUNSUPP,  "unsupported",                          400)                \
    X(ERANGE,   "value out of range",                   400)                \
    X(ETOOLONG, "input longer than the context",        413)                \
    X(EBUSY,    "busy",                                 503)                \
    X(EINTERNAL,"internal error",                       500)

enum {
    FR_OK = 0,
#define FR_ERR_ENUM(name, msg, status) FR_##name,
    FR__ERR_FIRST = -1000,
    FR_ERR_MAP(FR_ERR_ENUM)
#undef FR_ERR_ENUM
    FR__ERR_LAST
};

/* The short message of an error code ("malformed file"); never NULL. */
const char *fr_strerror(int code);

/* The code's name without prefix ("EFORMAT"); never NULL. */
const char *fr_errname(int code);

/* The HTTP status that an error maps to (500 for unknown codes). */
int fr_errstatus(int code);

/* Record a detail message for the calling thread and return code, so that
 * failures read: return fr_errf(FR_EFORMAT, "%s: key '%s': bad type %u", ...). */
int fr_errf(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int fr_verrf(int code, const char *fmt, va_list ap);

/* The calling thread's last detail message, or "" if none.  The pointer is
 * valid until the thread's next fr_errf(). */
const char *fr_errdetail(void);

/* Forget the detail message. */
void fr_errclear(void);

#define FR_ASSERT(c)                                                          \
    do {                                                                      \
        if (!(c)) fr__assert_fail(#c, __FILE__, __LINE__);                    \
    } while (0)
void fr__assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#endif
