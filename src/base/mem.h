/*
 * mem.h — the counted allocator, arenas and overflow-checked size math.
 *
 * Every heap byte of frugal goes through fr_malloc/fr_free so that the
 * memory budget can read how much the process holds besides its mappings
 * (fr_mem_in_use, fr_mem_peak).  A size header in front of each block makes
 * fr_free exact.  The counters are atomic: all functions are thread-safe.
 *
 * For tests, fr_mem_fail_after(n) lets n more allocations succeed and makes
 * the next one fail (return NULL), proving that failure paths return
 * FR_ENOMEM and leak nothing.
 */
#ifndef FR_BASE_MEM_H
#define FR_BASE_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frugal/base.h"

/* fr_free, fr_mem_in_use and fr_mem_peak are public: frugal/base.h. */

/* NULL on failure (out of memory, n plus the header overflows, or a
 * fail_after); fr_malloc(0) returns a block of its own, freed with fr_free
 * like any other. */
void *fr_malloc(size_t n);
void *fr_calloc(size_t count, size_t size); /* zeroed; NULL if count*size overflows */
/* Like realloc, but p NULL is fr_malloc(n) and n 0 keeps a 0-byte block
 * (never frees p); on failure NULL and p untouched. */
void *fr_realloc(void *p, size_t n);
char *fr_strdup(const char *s);
char *fr_strndup(const char *s, size_t n);

/* 64-byte aligned allocation (for SIMD buffers), freed with fr_free_aligned. */
void *fr_malloc_aligned(size_t n);
void  fr_free_aligned(void *p);
/* bufs[i] = fr_malloc_aligned(bytes[i]) for i < n, their sizes added to
 * *total; false at the first that fails (the ones before it stay in
 * bufs[] for the caller to free, the rest are untouched). */
bool  fr_malloc_aligned_n(void **bufs, const size_t *bytes, size_t n, size_t *total);

/* n more allocations succeed, the one after fails (once; the ones after it
 * succeed again); 0 = the next one fails, -1 = none fails.  Counts
 * fr_malloc, fr_calloc, fr_realloc and what is built on them. */
void   fr_mem_fail_after(long n);
/* Bytes the calling thread allocated minus the bytes it freed, since it
 * started: the difference across a call is what that call kept on the
 * heap (when it allocates on this thread only). */
int64_t fr_mem_thread_net(void);

/* Overflow-checked size arithmetic: return true and store the result when it
 * fits in size_t, false otherwise. */
static inline bool fr_mul_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool fr_add_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* Arena: a chain of chunks; allocations are bump-pointer, 16-byte aligned,
 * freed all at once by fr_arena_deinit.  Not thread-safe. */
typedef struct fr_arena_chunk fr_arena_chunk;
typedef struct fr_arena {
    fr_arena_chunk *head;
    size_t chunk_size;    /* default size of a new chunk */
    size_t used;          /* bytes handed out (each rounded up to 16) */
} fr_arena;

void  fr_arena_init(fr_arena *a, size_t chunk_size);
void *fr_arena_alloc(fr_arena *a, size_t n);     /* NULL on failure */
void  fr_arena_deinit(fr_arena *a);

#endif
