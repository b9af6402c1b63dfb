/*
 * lru.c — the byte-capped LRU cache (contract: lru.h).
 *
 * Structure: a hash table of chains (FNV-1a of the key, power-of-two
 * buckets, doubled when the entries outnumber them) and a doubly linked
 * recency list, most recent at the head.  Each entry is one allocation:
 * the node, then the key bytes, then the value bytes; its cost against the
 * cap is that whole allocation.
 */
#include "base/lru.h"

#include <pthread.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"

typedef struct node {
    struct node *hnext;             /* hash chain */
    struct node *prev, *next;       /* recency: prev is more recent */
    uint64_t hash;
    size_t klen, vlen, cost;
    unsigned char data[];           /* key, then value */
} node;

struct fr_lru {
    pthread_mutex_t mu;
    size_t cap, bytes, entries;
    node **buckets;
    size_t n_buckets;               /* a power of two */
    node *head, *tail;
    uint64_t hits, misses, evictions;
};

static uint64_t fnv1a(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

int fr_lru_create(size_t cap, fr_lru **out) {
    *out = NULL;
    fr_lru *c = fr_calloc(1, sizeof *c);
    if (!c) return FR_ENOMEM;
    c->n_buckets = 64;
    if (!(c->buckets = fr_calloc(c->n_buckets, sizeof *c->buckets))) {
        fr_free(c);
        return FR_ENOMEM;
    }
    c->cap = cap;
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return 0;
}

static void unlink_node(fr_lru *c, node *n) {
    if (n->prev) n->prev->next = n->next;
    else c->head = n->next;
    if (n->next) n->next->prev = n->prev;
    else c->tail = n->prev;
    n->prev = n->next = NULL;
}

static void push_front(fr_lru *c, node *n) {
    n->prev = NULL;
    n->next = c->head;
    if (c->head) c->head->prev = n;
    c->head = n;
    if (!c->tail) c->tail = n;
}

static node **slot_of(fr_lru *c, uint64_t h, const void *key, size_t klen) {
    node **pp = &c->buckets[h & (c->n_buckets - 1)];
    while (*pp && !((*pp)->hash == h && (*pp)->klen == klen && !memcmp((*pp)->data, key, klen)))
        pp = &(*pp)->hnext;
    return pp;
}

/* Remove n from the table and the list and free it (mu held). */
static void drop(fr_lru *c, node *n) {
    node **pp = slot_of(c, n->hash, n->data, n->klen);
    *pp = n->hnext;
    unlink_node(c, n);
    c->bytes -= n->cost;
    c->entries--;
    fr_free(n);
}

static void grow(fr_lru *c) {
    size_t nb = c->n_buckets * 2;
    node **b = fr_calloc(nb, sizeof *b);
    if (!b) return;   /* longer chains, still correct */
    for (size_t i = 0; i < c->n_buckets; i++)
        for (node *n = c->buckets[i], *next; n; n = next) {
            next = n->hnext;
            n->hnext = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
        }
    fr_free(c->buckets);
    c->buckets = b;
    c->n_buckets = nb;
}

void fr_lru_clear(fr_lru *c) {
    pthread_mutex_lock(&c->mu);
    while (c->head) drop(c, c->head);
    pthread_mutex_unlock(&c->mu);
}

void fr_lru_destroy(fr_lru *c) {
    if (!c) return;
    fr_lru_clear(c);
    fr_free(c->buckets);
    pthread_mutex_destroy(&c->mu);
    fr_free(c);
}

bool fr_lru_get(fr_lru *c, const void *key, size_t klen, void *buf, size_t len) {
    uint64_t h = fnv1a(key, klen);
    pthread_mutex_lock(&c->mu);
    node *n = *slot_of(c, h, key, klen);
    bool hit = n && n->vlen == len;
    if (hit) {
        memcpy(buf, n->data + n->klen, len);
        unlink_node(c, n);
        push_front(c, n);
        c->hits++;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

bool fr_lru_put(fr_lru *c, const void *key, size_t klen, const void *val, size_t vlen) {
    size_t size;
    if (!fr_add_ok(sizeof(node), klen, &size) || !fr_add_ok(size, vlen, &size)) return false;
    size_t cost = size + 16;   /* fr_malloc's header */
    if (cost > c->cap) return false;
    node *n = fr_malloc(size);
    if (!n) return false;
    n->hash = fnv1a(key, klen);
    n->klen = klen;
    n->vlen = vlen;
    n->cost = cost;
    n->hnext = n->prev = n->next = NULL;
    memcpy(n->data, key, klen);
    memcpy(n->data + klen, val, vlen);
    pthread_mutex_lock(&c->mu);
    node *old = *slot_of(c, n->hash, key, klen);
    if (old) drop(c, old);
    while (c->tail && c->bytes + cost > c->cap) {
        drop(c, c->tail);
        c->evictions++;
    }
    node **pp = slot_of(c, n->hash, key, klen);
    *pp = n;
    push_front(c, n);
    c->bytes += cost;
    c->entries++;
    if (c->entries > c->n_buckets) grow(c);
    pthread_mutex_unlock(&c->mu);
    return true;
}

void fr_lru_stats_get(fr_lru *c, fr_lru_stats *out) {
    pthread_mutex_lock(&c->mu);
    *out = (fr_lru_stats){.hits = c->hits, .misses = c->misses, .evictions = c->evictions,
                          .bytes = c->bytes, .cap = c->cap, .entries = c->entries};
    pthread_mutex_unlock(&c->mu);
}
