/*
 * mem.c — counted allocator and arenas.
 *
 * Each fr_malloc block carries a 16-byte header holding its size, so frees
 * subtract exactly what was added.  Aligned blocks keep the original pointer
 * and size just before the aligned address.
 */
#include "base/mem.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define HDR 16

static atomic_size_t in_use;
static atomic_size_t peak;
static _Thread_local int64_t thread_net;   /* this thread's allocations minus its frees */
static atomic_long fail_countdown = -1;

static bool should_fail(void) {
    long n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (n < 0) return false;
    n = atomic_fetch_sub(&fail_countdown, 1);
    return n == 0;
}

static void count_add(size_t n) {
    thread_net += (int64_t)n;
    size_t now = atomic_fetch_add(&in_use, n) + n;
    size_t p = atomic_load_explicit(&peak, memory_order_relaxed);
    while (now > p && !atomic_compare_exchange_weak(&peak, &p, now)) {}
}

void *fr_malloc(size_t n) {
    size_t total;
    if (!fr_add_ok(n, HDR, &total) || should_fail()) return NULL;
    unsigned char *p = malloc(total);
    if (!p) return NULL;
    memcpy(p, &n, sizeof n);
    count_add(n);
    return p + HDR;
}

void *fr_calloc(size_t count, size_t size) {
    size_t n;
    if (!fr_mul_ok(count, size, &n)) return NULL;
    void *p = fr_malloc(n);
    if (p) memset(p, 0, n);
    return p;
}

void fr_free(void *p) {
    if (!p) return;
    unsigned char *base = (unsigned char *)p - HDR;
    size_t n;
    memcpy(&n, base, sizeof n);
    atomic_fetch_sub(&in_use, n);
    thread_net -= (int64_t)n;
    free(base);
}

void *fr_realloc(void *p, size_t n) {
    if (!p) return fr_malloc(n);
    size_t total;
    if (!fr_add_ok(n, HDR, &total) || should_fail()) return NULL;
    unsigned char *base = (unsigned char *)p - HDR;
    size_t old;
    memcpy(&old, base, sizeof old);
    unsigned char *nb = realloc(base, total);
    if (!nb) return NULL;
    memcpy(nb, &n, sizeof n);
    atomic_fetch_sub(&in_use, old);
    thread_net -= (int64_t)old;
    count_add(n);
    return nb + HDR;
}

int64_t fr_mem_thread_net(void) { return thread_net; }

char *fr_strndup(const char *s, size_t n) {
    char *d = fr_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

char *fr_strdup(const char *s) { return fr_strndup(s, strlen(s)); }

void *fr_malloc_aligned(size_t n) {
    size_t total;
    if (!fr_add_ok(n, 64 + HDR, &total)) return NULL;
    unsigned char *raw = fr_malloc(total);
    if (!raw) return NULL;
    uintptr_t a = ((uintptr_t)raw + sizeof(void *) + 63) & ~(uintptr_t)63;
    memcpy((void *)(a - sizeof(void *)), &raw, sizeof raw);
    return (void *)a;
}

bool fr_malloc_aligned_n(void **bufs, const size_t *bytes, size_t n, size_t *total) {
    for (size_t i = 0; i < n; i++) {
        if (!(bufs[i] = fr_malloc_aligned(bytes[i]))) return false;
        *total += bytes[i];
    }
    return true;
}

void fr_free_aligned(void *p) {
    if (!p) return;
    void *raw;
    memcpy(&raw, (unsigned char *)p - sizeof(void *), sizeof raw);
    fr_free(raw);
}

size_t fr_mem_in_use(void) { return atomic_load(&in_use); }
size_t fr_mem_peak(void) { return atomic_load(&peak); }
void fr_mem_fail_after(long n) { atomic_store(&fail_countdown, n); }

/* ---- arenas ---- */

struct fr_arena_chunk {
    fr_arena_chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

void fr_arena_init(fr_arena *a, size_t chunk_size) {
    a->head = NULL;
    a->chunk_size = chunk_size ? chunk_size : 64 * 1024;
    a->used = 0;
}

void *fr_arena_alloc(fr_arena *a, size_t n) {
    size_t need;
    if (!fr_add_ok(n, 15, &need)) return NULL;
    need &= ~(size_t)15;
    fr_arena_chunk *c = a->head;
    if (!c || c->size - c->used < need) {
        size_t sz = need > a->chunk_size ? need : a->chunk_size, total;
        if (!fr_add_ok(sz, sizeof *c, &total)) return NULL;
        c = fr_malloc(total);
        if (!c) return NULL;
        c->size = sz;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += need;
    a->used += need;
    return p;
}

void fr_arena_deinit(fr_arena *a) {
    fr_arena_chunk *c = a->head;
    while (c) {
        fr_arena_chunk *n = c->next;
        fr_free(c);
        c = n;
    }
    a->head = NULL;
    a->used = 0;
}
