/*
 * reply_int.h — reply helpers of reply.c beyond those of server_int.h,
 * for handlers that build a large reply themselves instead of as a tree
 * of json_t (embeddings.c: one json_t per float would cost tens of bytes
 * per number).
 */
#ifndef FR_SERVER_REPLY_INT_H
#define FR_SERVER_REPLY_INT_H

#include <stddef.h>

#include "server/server_int.h"

/* A reply of len bytes of buf, a buffer from fr_malloc that the reply
 * takes over: libmicrohttpd sends it without a copy and frees it with
 * fr_free once sent, so it stays counted in the heap (and so in the
 * memory budget) until then.  buf is freed on failure too.  FR_REPLIED;
 * FR_ENOMEM, FR_EINTERNAL if a reply was already queued. */
int fr__reply_owned(fr_req *rq, int status, const char *content_type, char *buf, size_t len);

/* A real as jansson's json_dumps writes one (json_real): "%.17g", ".0"
 * added when that reads as an integer, the exponent without '+' and
 * leading zeros; "null" for NaN and infinities (which json_real refuses).
 * Writes at most FR_REAL_TEXT_MAX bytes, no NUL; returns the length. */
#define FR_REAL_TEXT_MAX 24
size_t fr__real_text(double v, char *out);

#endif
