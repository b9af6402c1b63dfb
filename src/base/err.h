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

#include "frugal/base.h"

/* The table (FR_ERR_MAP), the codes and their getters are public:
 * frugal/base.h.  Here: recording a detail, and assertions. */

/* Record a detail message for the calling thread and return code, so that
 * failures read: return fr_errf(FR_EFORMAT, "%s: key '%s': bad type %u", ...). */
int fr_errf(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int fr_verrf(int code, const char *fmt, va_list ap);

#define FR_ASSERT(c)                                                          \
    do {                                                                      \
        if (!(c)) fr__assert_fail(#c, __FILE__, __LINE__);                    \
    } while (0)
void fr__assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#endif
