/*
 * mem.h — the counted allocator, arenas and overflow-checked size math.
 *
 * Every heap byte of frugal goes through fr_malloc/fr_free so that the
 * memory budget can read how much the process holds besides its mappings
 * (fr_mem_in_use, fr_mem_peak).  A size header in front of each block makes
 * fr_free exact.  The counters are atomic: all functions are thread-safe.
 *
 * For tests, fr_mem_fail_after(n) makes the n-th allocation from now fail
 * (returns NULL), proving that failure paths return FR_ENOMEM and leak
 * nothing.
 */
#ifndef FR_BASE_MEM_H
#define FR_BASE_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frugal/base.h"

/* fr_free, fr_mem_in_use and fr_mem_peak are public: frugal/base.h. */

void *fr_malloc(size_t n);              /* NULL on failure or n == 0 overflow */
void *fr_calloc(size_t count, size_t size); /* zeroed; NULL if count*size overflows */
void *fr_realloc(void *p, size_t n);    /* like realloc; p may be NULL */
char *fr_strdup(const char *s);
char *fr_strndup(const char *s, size_t n);

/* 64-byte aligned allocation (for SIMD buffers), freed with fr_free_aligned. */
void *fr_malloc_aligned(size_t n);
void  fr_free_aligned(void *p);
/* bufs[i] = fr_malloc_aligned(bytes[i]) for i < n, their sizes added to
 * *total; false at the first that fails (the ones before it stay in
 * bufs[] for the caller to free, the rest are untouched). */
bool  fr_malloc_aligned_n(void **bufs, const size_t *bytes, size_t n, size_t *total);

/* The n-th allocation from now fails; -1 = never. */
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
 * freed all at once by fr_arena_reset/deinit.  Not thread-safe. */
typedef struct fr_arena_chunk fr_arena_chunk;
typedef struct fr_arena {
    fr_arena_chunk *head;
    size_t chunk_size;    /* default size of a new chunk */
    size_t used;          /* bytes handed out since the last reset */
} fr_arena;

void  fr_arena_init(fr_arena *a, size_t chunk_size);
void *fr_arena_alloc(fr_arena *a, size_t n);     /* NULL on failure */
void  fr_arena_reset(fr_arena *a);               /* keeps the first chunk */
void  fr_arena_deinit(fr_arena *a);

#endif
