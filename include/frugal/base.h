/*
 * frugal/base.h — the public part of frugal's base layer: the error table
 * and the heap counters.
 *
 * Every function of the library returns int: 0 on success or a negative
 * FR_E* code from the table below, and writes results through
 * out-parameters.  The failing call also records a detail line for the
 * calling thread (which file, key or value), read with fr_errdetail().
 * Everything here is thread-safe.
 */
#ifndef FRUGAL_BASE_H
#define FRUGAL_BASE_H

#include <stddef.h>

/* name, message, HTTP status */
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
    X(EBUDGET,  "does not fit in the memory budget",    503)                \
    X(ECONFLICT,"in use",                               409)                \
    X(ESHUTDOWN,"shutting down",                        503)                \
    X(EINTERNAL,"internal error",                       500)                \
    X(ENOSPC,   "no space left on the disk",            507)

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

/* The calling thread's last detail message, or "" if none.  The pointer is
 * valid until the thread's next fr_errf(). */
const char *fr_errdetail(void);

/* Forget the detail message. */
void fr_errclear(void);

/* Every heap byte of the library is counted.  Objects the library hands
 * out (token arrays, formatted prompts) are freed with fr_free. */
void   fr_free(void *p);                /* p may be NULL */
size_t fr_mem_in_use(void);             /* bytes currently allocated */
size_t fr_mem_peak(void);               /* high-water mark of fr_mem_in_use */

#endif
