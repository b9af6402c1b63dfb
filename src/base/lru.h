/*
 * lru.h — a byte-capped least-recently-used cache of byte strings.
 *
 * Keys and values are copied in; the cache never holds more than `cap`
 * bytes of entries (key + value + bookkeeping, all through fr_malloc, so
 * the memory budget sees them).  A get that hits moves the entry to the
 * front; a put that would exceed the cap evicts from the back first.  An
 * entry larger than the cap is not stored.  Hits and misses are counted.
 *
 * Thread-safe: one mutex guards everything (operations are short: a hash
 * lookup and a memcpy).
 */
#ifndef FR_BASE_LRU_H
#define FR_BASE_LRU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fr_lru fr_lru;

/* A cache of at most cap bytes (0: a cache that stores nothing but still
 * counts misses).  FR_ENOMEM. */
int  fr_lru_create(size_t cap, fr_lru **out);
void fr_lru_destroy(fr_lru *c);                 /* NULL is fine */

/* Copy the value of key into buf (cap bytes) and return true when it is
 * cached with exactly len == cap bytes; false (a miss) otherwise. */
bool fr_lru_get(fr_lru *c, const void *key, size_t klen, void *buf, size_t len);

/* Store (or replace) key → value.  Returns false when it was not stored
 * (larger than the cap, or no memory: a cache may always drop things). */
bool fr_lru_put(fr_lru *c, const void *key, size_t klen, const void *val, size_t vlen);

typedef struct fr_lru_stats {
    uint64_t hits, misses, evictions;
    size_t bytes, cap, entries;
} fr_lru_stats;
void fr_lru_stats_get(fr_lru *c, fr_lru_stats *out);

/* Drop every entry. */
void fr_lru_clear(fr_lru *c);

#endif
