/*
 * test_lru.c — the byte-capped LRU cache: hits and misses, recency order
 * of evictions, the byte cap (counted as the allocator counts), replace,
 * oversize entries, a zero cap, growth of the table, threads, leaks.
 */
#include <pthread.h>
#include <stdio.h>

#include "harness.h"

#include "base/lru.h"
#include "base/mem.h"

static void key_of(char *k, int i) { snprintf(k, 32, "key-%d", i); }

static void test_basic(void) {
    fr_lru *c = NULL;
    CHECK_INT(fr_lru_create(10000, &c), 0);
    float v[8] = {1, 2, 3, 4, 5, 6, 7, 8}, got[8];
    CHECK(!fr_lru_get(c, "a", 1, got, sizeof got));
    CHECK(fr_lru_put(c, "a", 1, v, sizeof v));
    CHECK(fr_lru_get(c, "a", 1, got, sizeof got));
    CHECK(!memcmp(got, v, sizeof v));
    CHECK(!fr_lru_get(c, "a", 1, got, 4));        /* another length: a miss */
    CHECK(!fr_lru_get(c, "ab", 2, got, sizeof got));
    v[0] = 42;
    CHECK(fr_lru_put(c, "a", 1, v, sizeof v));      /* replace */
    CHECK(fr_lru_get(c, "a", 1, got, sizeof got) && got[0] == 42);
    fr_lru_stats st;
    fr_lru_stats_get(c, &st);
    CHECK_INT(st.hits, 2);
    CHECK_INT(st.misses, 3);
    CHECK_INT(st.entries, 1);
    CHECK(st.bytes > sizeof v && st.bytes <= st.cap);
    fr_lru_destroy(c);
}

/* Entries of equal size: the cap holds exactly k of them; the least
 * recently used goes first, and a get makes an entry recent. */
static void test_order(void) {
    char val[100] = {0}, got[100];
    fr_lru *probe = NULL;
    CHECK_INT(fr_lru_create(1 << 20, &probe), 0);
    CHECK(fr_lru_put(probe, "key-0", 5, val, sizeof val));
    fr_lru_stats st;
    fr_lru_stats_get(probe, &st);
    size_t one = st.bytes;
    fr_lru_destroy(probe);

    fr_lru *c = NULL;
    CHECK_INT(fr_lru_create(3 * one, &c), 0);      /* room for three */
    char k[32];
    for (int i = 0; i < 3; i++) {
        key_of(k, i);
        CHECK(fr_lru_put(c, k, strlen(k), val, sizeof val));
    }
    key_of(k, 0);
    CHECK(fr_lru_get(c, k, strlen(k), got, sizeof got));   /* 0 is now the most recent */
    key_of(k, 3);
    CHECK(fr_lru_put(c, k, strlen(k), val, sizeof val));   /* evicts 1 */
    key_of(k, 1);
    CHECK(!fr_lru_get(c, k, strlen(k), got, sizeof got));
    const int kept[3] = {0, 2, 3};
    for (int j = 0; j < 3; j++) {
        key_of(k, kept[j]);
        CHECK_MSG(fr_lru_get(c, k, strlen(k), got, sizeof got), "key %d kept", kept[j]);
    }
    fr_lru_stats_get(c, &st);
    CHECK_INT(st.entries, 3);
    CHECK_INT(st.evictions, 1);
    CHECK(st.bytes <= st.cap);

    /* larger than the cap: not stored, nothing evicted */
    char big[4096] = {0};
    CHECK(!fr_lru_put(c, "big", 3, big, sizeof big));
    fr_lru_stats_get(c, &st);
    CHECK_INT(st.entries, 3);
    fr_lru_clear(c);
    fr_lru_stats_get(c, &st);
    CHECK_INT(st.entries, 0);
    CHECK_INT(st.bytes, 0);
    fr_lru_destroy(c);

    CHECK_INT(fr_lru_create(0, &c), 0);            /* stores nothing */
    CHECK(!fr_lru_put(c, "a", 1, val, 1));
    CHECK(!fr_lru_get(c, "a", 1, got, 1));
    fr_lru_destroy(c);
}

/* Many entries: the table grows, every one is found, bytes stay capped. */
static void test_many(void) {
    fr_lru *c = NULL;
    CHECK_INT(fr_lru_create(1 << 20, &c), 0);
    char k[32];
    int found = 0;
    for (int i = 0; i < 5000; i++) {
        key_of(k, i);
        fr_lru_put(c, k, strlen(k), &i, sizeof i);
    }
    for (int i = 0; i < 5000; i++) {
        key_of(k, i);
        int v = -1;
        if (fr_lru_get(c, k, strlen(k), &v, sizeof v)) found += v == i;
    }
    fr_lru_stats st;
    fr_lru_stats_get(c, &st);
    CHECK_INT(found, (int)st.entries);
    CHECK(st.entries > 1000 && st.bytes <= st.cap);
    fr_lru_destroy(c);
}

static fr_lru *shared;

static void *worker(void *arg) {
    int base = (int)(intptr_t)arg;
    char k[32];
    for (int i = 0; i < 2000; i++) {
        key_of(k, base + i % 300);
        int v = base + i % 300, got = 0;
        if (!fr_lru_get(shared, k, strlen(k), &got, sizeof got)) fr_lru_put(shared, k, strlen(k), &v, sizeof v);
        else if (got != v) return (void *)1;
    }
    return NULL;
}

static void test_threads(void) {
    CHECK_INT(fr_lru_create(16 << 10, &shared), 0);
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, (void *)(intptr_t)(i * 1000));
    for (int i = 0; i < 4; i++) {
        void *r = NULL;
        pthread_join(t[i], &r);
        CHECK(r == NULL);
    }
    fr_lru_stats st;
    fr_lru_stats_get(shared, &st);
    CHECK(st.bytes <= st.cap && st.hits + st.misses == 8000);
    fr_lru_destroy(shared);
}

int main(void) {
    size_t mem0 = fr_mem_in_use();
    test_basic();
    test_order();
    test_many();
    test_threads();
    CHECK_INT(fr_mem_in_use(), mem0);
    return harness_done();
}
