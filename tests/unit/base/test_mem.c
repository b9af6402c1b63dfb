/*
 * test_mem.c — the counted allocator and arenas (base/mem.h):
 *
 *   counters     fr_mem_in_use moves by exactly the bytes asked for (the
 *                header is not counted) and back on fr_free; the peak never
 *                falls below it; fr_mem_thread_net counts only its thread;
 *   edge sizes   fr_malloc(0) is a block of its own; sizes that overflow
 *                with the header, and calloc's count*size, are NULL and
 *                count nothing;
 *   realloc      NULL is malloc, grow and shrink keep the bytes and count
 *                the new size, 0 keeps a block, a failure leaves p whole;
 *   strings      strdup/strndup copy and terminate;
 *   aligned      64-byte aligned for every size, counted with their slack,
 *                fr_malloc_aligned_n stops at the first failure;
 *   fail-after   n allocations succeed, the next fails, then all succeed;
 *   arenas       16-byte aligned bump allocation, one chunk until it is
 *                full, a large request its own chunk, used counted,
 *                deinit gives every byte back, failures are NULL;
 *   size math    fr_mul_ok and fr_add_ok at the overflow edge.
 */
#include <pthread.h>
#include <stdint.h>

#include "harness.h"

#include "base/mem.h"

static void test_counters(void) {
    size_t before = fr_mem_in_use();
    int64_t net = fr_mem_thread_net();
    char *p = fr_malloc(1000);
    CHECK(p != NULL);
    memset(p, 0xAB, 1000);
    CHECK_INT(fr_mem_in_use() - before, 1000);
    CHECK_INT(fr_mem_thread_net() - net, 1000);
    CHECK(fr_mem_peak() >= fr_mem_in_use());
    char *q = fr_malloc(5000);
    CHECK_INT(fr_mem_in_use() - before, 6000);
    CHECK(fr_mem_peak() >= before + 6000);
    fr_free(q);
    CHECK_INT(fr_mem_in_use() - before, 1000);
    CHECK(fr_mem_peak() >= before + 6000);          /* the peak stays */
    fr_free(p);
    CHECK_INT(fr_mem_in_use(), before);
    CHECK_INT(fr_mem_thread_net(), net);
    fr_free(NULL);                                  /* allowed, no change */
    CHECK_INT(fr_mem_in_use(), before);
}

static void *thread_alloc(void *arg) {
    int64_t net = fr_mem_thread_net();
    void *p = fr_malloc(777);
    *(int64_t *)arg = fr_mem_thread_net() - net;
    return p;                                       /* freed by the main thread */
}

static void test_thread_net(void) {
    int64_t net = fr_mem_thread_net(), theirs = 0;
    size_t before = fr_mem_in_use();
    pthread_t t;
    void *p = NULL;
    CHECK_INT(pthread_create(&t, NULL, thread_alloc, &theirs), 0);
    pthread_join(t, &p);
    CHECK_INT(theirs, 777);
    CHECK_INT(fr_mem_thread_net(), net);            /* not this thread's */
    CHECK_INT(fr_mem_in_use() - before, 777);       /* but the process's */
    fr_free(p);
    CHECK_INT(fr_mem_thread_net() - net, -777);     /* freed here */
    CHECK_INT(fr_mem_in_use(), before);
}

static void test_edge_sizes(void) {
    size_t before = fr_mem_in_use();
    void *a = fr_malloc(0), *b = fr_malloc(0);
    CHECK(a && b && a != b);
    CHECK_INT(fr_mem_in_use(), before);
    fr_free(a);
    fr_free(b);
    CHECK(fr_malloc(SIZE_MAX) == NULL);             /* n + header overflows */
    CHECK(fr_malloc(SIZE_MAX - 8) == NULL);
    CHECK(fr_calloc(SIZE_MAX / 2, 3) == NULL);      /* count*size overflows */
    CHECK(fr_calloc((size_t)1 << 33, (size_t)1 << 33) == NULL);
    CHECK_INT(fr_mem_in_use(), before);
    unsigned char *z = fr_calloc(100, 3);
    int nonzero = 0;
    for (int i = 0; z && i < 300; i++) nonzero += z[i] != 0;
    CHECK(z && nonzero == 0);
    CHECK_INT(fr_mem_in_use() - before, 300);
    fr_free(z);
    void *c0 = fr_calloc(0, 16);
    CHECK(c0 != NULL);
    fr_free(c0);
    CHECK_INT(fr_mem_in_use(), before);
}

static void test_realloc(void) {
    size_t before = fr_mem_in_use();
    char *p = fr_realloc(NULL, 10);                 /* NULL: a new block */
    CHECK(p != NULL);
    CHECK_INT(fr_mem_in_use() - before, 10);
    memcpy(p, "0123456789", 10);
    p = fr_realloc(p, 100000);                      /* grow: bytes kept */
    CHECK(p && !memcmp(p, "0123456789", 10));
    CHECK_INT(fr_mem_in_use() - before, 100000);
    p = fr_realloc(p, 4);                           /* shrink */
    CHECK(p && !memcmp(p, "0123", 4));
    CHECK_INT(fr_mem_in_use() - before, 4);
    char *same = fr_realloc(p, SIZE_MAX);           /* overflow: NULL, p whole */
    CHECK(same == NULL);
    CHECK(!memcmp(p, "0123", 4));
    CHECK_INT(fr_mem_in_use() - before, 4);
    fr_mem_fail_after(0);                           /* a failing realloc */
    CHECK(fr_realloc(p, 64) == NULL);
    CHECK(!memcmp(p, "0123", 4));
    CHECK_INT(fr_mem_in_use() - before, 4);
    p = fr_realloc(p, 0);                           /* 0: a block of 0 bytes */
    CHECK(p != NULL);
    CHECK_INT(fr_mem_in_use(), before);
    fr_free(p);
    CHECK_INT(fr_mem_in_use(), before);
}

static void test_strings(void) {
    size_t before = fr_mem_in_use();
    char *s = fr_strdup("hello");
    CHECK_STR(s, "hello");
    CHECK_INT(fr_mem_in_use() - before, 6);
    char *t = fr_strndup("hello world", 5);
    CHECK_STR(t, "hello");
    char *e = fr_strndup("", 0);
    CHECK_STR(e, "");
    fr_free(s);
    fr_free(t);
    fr_free(e);
    CHECK_INT(fr_mem_in_use(), before);
    fr_mem_fail_after(0);
    CHECK(fr_strdup("x") == NULL);
    CHECK_INT(fr_mem_in_use(), before);
}

static void test_aligned(void) {
    size_t before = fr_mem_in_use();
    static const size_t sizes[] = {0, 1, 15, 16, 63, 64, 65, 1000, 4096, 100003};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = fr_malloc_aligned(sizes[i]);
        CHECK_MSG(p && ((uintptr_t)p & 63) == 0, "fr_malloc_aligned(%zu) = %p", sizes[i], (void *)p);
        if (p) memset(p, 0x5A, sizes[i]);           /* the whole block is ours (ASan) */
        CHECK_INT(fr_mem_in_use() - before, sizes[i] + 64 + 16);
        fr_free_aligned(p);
        CHECK_INT(fr_mem_in_use(), before);
    }
    fr_free_aligned(NULL);
    CHECK(fr_malloc_aligned(SIZE_MAX - 32) == NULL);
    CHECK_INT(fr_mem_in_use(), before);

    /* fr_malloc_aligned_n: every buffer, or a stop at the first failure */
    static const size_t bytes[3] = {100, 200, 300};
    void *bufs[3] = {0};
    size_t total = 7;
    CHECK(fr_malloc_aligned_n(bufs, bytes, 3, &total));
    CHECK_INT(total, 7 + 600);
    for (int i = 0; i < 3; i++) {
        CHECK(bufs[i] && ((uintptr_t)bufs[i] & 63) == 0);
        fr_free_aligned(bufs[i]);
    }
    void *sentinel = (void *)&total;
    void *part[3] = {NULL, NULL, sentinel};
    total = 0;
    fr_mem_fail_after(1);                           /* the second fails */
    CHECK(!fr_malloc_aligned_n(part, bytes, 3, &total));
    CHECK(part[0] != NULL);                         /* left for the caller */
    CHECK(part[1] == NULL);
    CHECK(part[2] == sentinel);                     /* untouched */
    CHECK_INT(total, 100);
    fr_free_aligned(part[0]);
    CHECK_INT(fr_mem_in_use(), before);
}

static void test_fail_after(void) {
    size_t before = fr_mem_in_use();
    void *p[5];
    fr_mem_fail_after(2);
    for (int i = 0; i < 5; i++) p[i] = fr_malloc(8);
    CHECK(p[0] && p[1]);
    CHECK(p[2] == NULL);                            /* the third */
    CHECK(p[3] && p[4]);                            /* once only */
    for (int i = 0; i < 5; i++) fr_free(p[i]);
    CHECK_INT(fr_mem_in_use(), before);
    fr_mem_fail_after(0);
    CHECK(fr_calloc(2, 2) == NULL);                 /* calloc counts too */
    void *ok = fr_malloc(1);
    CHECK(ok != NULL);
    fr_free(ok);
    fr_mem_fail_after(3);
    fr_mem_fail_after(-1);                          /* disarmed */
    int nulls = 0;
    for (int i = 0; i < 10; i++) {
        void *q = fr_malloc(8);
        nulls += q == NULL;
        fr_free(q);
    }
    CHECK_INT(nulls, 0);
    CHECK_INT(fr_mem_in_use(), before);
}

static void test_arena(void) {
    size_t before = fr_mem_in_use();
    fr_arena a;
    fr_arena_init(&a, 0);
    CHECK_INT(a.chunk_size, 64 * 1024);             /* 0: the default */
    CHECK(a.head == NULL && a.used == 0);
    CHECK_INT(fr_mem_in_use(), before);             /* nothing until the first alloc */
    fr_arena_deinit(&a);

    fr_arena_init(&a, 1024);
    unsigned char *p1 = fr_arena_alloc(&a, 10);
    unsigned char *p2 = fr_arena_alloc(&a, 17);
    unsigned char *p3 = fr_arena_alloc(&a, 16);
    CHECK(p1 && p2 && p3);
    CHECK(((uintptr_t)p1 & 15) == 0 && ((uintptr_t)p2 & 15) == 0 && ((uintptr_t)p3 & 15) == 0);
    CHECK(p2 == p1 + 16 && p3 == p2 + 32);          /* bump, rounded up to 16 */
    CHECK_INT(a.used, 16 + 32 + 16);
    size_t one_chunk = fr_mem_in_use() - before;
    CHECK(one_chunk >= 1024 && one_chunk < 1024 + 128);
    memset(p1, 1, 10), memset(p2, 2, 17), memset(p3, 3, 16);
    /* the rest of the chunk, then a new one */
    unsigned char *fill = fr_arena_alloc(&a, 1024 - 64);
    CHECK(fill == p3 + 16);
    CHECK_INT(fr_mem_in_use() - before, one_chunk);
    unsigned char *next = fr_arena_alloc(&a, 1);
    CHECK(next != NULL);
    CHECK(fr_mem_in_use() - before >= 2 * 1024);
    /* larger than a chunk: a chunk of its size */
    size_t mid = fr_mem_in_use();
    unsigned char *big = fr_arena_alloc(&a, 10000);
    CHECK(big && ((uintptr_t)big & 15) == 0);
    if (big) memset(big, 9, 10000);
    CHECK(fr_mem_in_use() - mid >= 10000 && fr_mem_in_use() - mid < 10000 + 128);
    CHECK(p1[9] == 1 && p2[16] == 2 && p3[15] == 3);  /* earlier blocks kept */
    CHECK(fr_arena_alloc(&a, SIZE_MAX) == NULL);    /* overflow */
    CHECK(fr_arena_alloc(&a, SIZE_MAX - 20) == NULL);
    fr_mem_fail_after(0);
    CHECK(fr_arena_alloc(&a, 100000) == NULL);      /* a new chunk that fails */
    size_t used = a.used;
    fr_arena_deinit(&a);
    CHECK(used > 0);
    CHECK(a.head == NULL && a.used == 0);
    CHECK_INT(fr_mem_in_use(), before);             /* every chunk given back */
    fr_arena_deinit(&a);                            /* twice is harmless */
}

static void test_size_math(void) {
    size_t r = 0;
    CHECK(fr_mul_ok(1u << 20, 1u << 20, &r) && r == (size_t)1 << 40);
    CHECK(!fr_mul_ok(SIZE_MAX / 2 + 1, 2, &r));
    CHECK(fr_mul_ok(SIZE_MAX, 1, &r) && r == SIZE_MAX);
    CHECK(fr_mul_ok(0, SIZE_MAX, &r) && r == 0);
    CHECK(fr_add_ok(SIZE_MAX - 1, 1, &r) && r == SIZE_MAX);
    CHECK(!fr_add_ok(SIZE_MAX, 1, &r));
}

int main(void) {
    test_counters();
    test_thread_net();
    test_edge_sizes();
    test_realloc();
    test_strings();
    test_aligned();
    test_fail_after();
    test_arena();
    test_size_math();
    return harness_done();
}
