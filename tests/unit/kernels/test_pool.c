/*
 * test_pool.c — the persistent compute pool: every ith runs exactly once
 * per run, barrier phases see all writes of the phase, workers that fell
 * asleep wake up, create/destroy repeatedly without leaks, allocation
 * failures unwind; fr_pool_set_threads: runs use exactly the threads set
 * (nth and barriers follow), parked workers come back, clamping.
 */
#include "harness.h"

#include <stdatomic.h>
#include <time.h>

#include "base/err.h"
#include "base/mem.h"
#include "kernels/pool.h"

enum { MAX_T = 4, PHASES = 5 };

typedef struct {
    fr_pool *pool;
    int run;
    atomic_int calls[MAX_T];
    atomic_int bad_nth, bad_ith, bad_phase;
    int data[PHASES][MAX_T];
} ctx_t;

static void count_fn(void *arg, int ith, int nth) {
    ctx_t *c = arg;
    if (nth != fr_pool_threads(c->pool)) atomic_fetch_add(&c->bad_nth, 1);
    if (ith < 0 || ith >= nth || ith >= MAX_T) { atomic_fetch_add(&c->bad_ith, 1); return; }
    atomic_fetch_add(&c->calls[ith], 1);
}

/* Each phase: write my slot, barrier, read everyone's slot of the phase. */
static void phase_fn(void *arg, int ith, int nth) {
    ctx_t *c = arg;
    for (int p = 0; p < PHASES; p++) {
        c->data[p][ith] = c->run * 100 + p;
        fr_pool_barrier(c->pool);
        for (int j = 0; j < nth; j++)
            if (c->data[p][j] != c->run * 100 + p) atomic_fetch_add(&c->bad_phase, 1);
    }
}

static void sleep_ms(int ms) {
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

int main(void) {
    size_t mem0 = fr_mem_in_use();

    /* NULL pool runs fn(ctx, 0, 1) on the caller */
    {
        ctx_t c = {0};
        fr_pool_run(NULL, count_fn, &c);
        CHECK_INT(atomic_load(&c.calls[0]), 1);
        CHECK_INT(atomic_load(&c.bad_nth), 0);
        CHECK_INT(fr_pool_size(NULL), 1);
        fr_pool_barrier(NULL); /* no-op */
    }

    for (int n = 1; n <= MAX_T; n++) {
        fr_pool *pool;
        CHECK_INT(fr_pool_create(n, &pool), 0);
        CHECK_INT(fr_pool_size(pool), n);
        ctx_t c = {0};
        c.pool = pool;
        const int runs = 3000;
        for (int r = 0; r < runs; r++) fr_pool_run(pool, count_fn, &c);
        for (int i = 0; i < n; i++)
            CHECK_MSG(atomic_load(&c.calls[i]) == runs, "n=%d: thread %d ran %d times, want %d", n, i,
                      atomic_load(&c.calls[i]), runs);
        for (int i = n; i < MAX_T; i++) CHECK_INT(atomic_load(&c.calls[i]), 0);
        CHECK_INT(atomic_load(&c.bad_nth), 0);
        CHECK_INT(atomic_load(&c.bad_ith), 0);

        for (c.run = 1; c.run <= 2000; c.run++) fr_pool_run(pool, phase_fn, &c);
        CHECK_MSG(atomic_load(&c.bad_phase) == 0, "n=%d: %d stale reads after barriers", n,
                  atomic_load(&c.bad_phase));

        /* let the workers fall asleep on the condition variable, then wake them */
        for (int i = 0; i < MAX_T; i++) atomic_store(&c.calls[i], 0);
        for (int r = 0; r < 3; r++) {
            sleep_ms(60);
            fr_pool_run(pool, count_fn, &c);
            c.run = 5000 + r;
            fr_pool_run(pool, phase_fn, &c);
        }
        for (int i = 0; i < n; i++) CHECK_INT(atomic_load(&c.calls[i]), 3);
        CHECK_INT(atomic_load(&c.bad_phase), 0);
        fr_pool_destroy(pool);
    }

    /* fewer threads at run time: 4 → 2 → 1 → 3 → 9 (clamped to 4) → 0 (1),
     * with pauses so that parked and sleeping workers are both exercised */
    {
        fr_pool *pool;
        CHECK_INT(fr_pool_create(MAX_T, &pool), 0);
        CHECK_INT(fr_pool_threads(pool), MAX_T);
        const int want[] = {2, 1, 3, 9, 0, 4}, got[] = {2, 1, 3, 4, 1, 4};
        for (int k = 0; k < 6; k++) {
            fr_pool_set_threads(pool, want[k]);
            CHECK_INT(fr_pool_threads(pool), got[k]);
            CHECK_INT(fr_pool_size(pool), MAX_T);
            ctx_t c = {0};
            c.pool = pool;
            for (int r = 0; r < 500; r++) fr_pool_run(pool, count_fn, &c);
            sleep_ms(20);
            for (int r = 0; r < 500; r++) fr_pool_run(pool, count_fn, &c);
            for (c.run = 1; c.run <= 300; c.run++) fr_pool_run(pool, phase_fn, &c);
            for (int i = 0; i < MAX_T; i++)
                CHECK_MSG(atomic_load(&c.calls[i]) == (i < got[k] ? 1000 : 0),
                          "set %d: thread %d ran %d times", want[k], i, atomic_load(&c.calls[i]));
            CHECK_INT(atomic_load(&c.bad_nth), 0);
            CHECK_INT(atomic_load(&c.bad_ith), 0);
            CHECK_INT(atomic_load(&c.bad_phase), 0);
        }
        fr_pool_set_threads(pool, 2);
        fr_pool_destroy(pool);                     /* parked workers stop too */
        fr_pool_set_threads(NULL, 3);
        CHECK_INT(fr_pool_threads(NULL), 1);
    }

    /* create/destroy repeatedly, with and without a run in between */
    for (int i = 0; i < 100; i++) {
        fr_pool *pool;
        int n = 1 + i % MAX_T;
        CHECK_INT(fr_pool_create(n, &pool), 0);
        if (i % 2) {
            ctx_t c = {0};
            c.pool = pool;
            fr_pool_run(pool, count_fn, &c);
            int total = 0;
            for (int k = 0; k < MAX_T; k++) total += atomic_load(&c.calls[k]);
            CHECK_INT(total, n);
        }
        fr_pool_destroy(pool);
    }
    fr_pool_destroy(NULL);

    /* bad arguments and allocation failures unwind cleanly */
    fr_pool *p = (fr_pool *)&mem0;
    CHECK_INT(fr_pool_create(0, &p), FR_EINVAL);
    CHECK(p == NULL);
    for (int k = 0; k < 3; k++) {  /* fail_after(k): allocation k (from 0) fails */
        fr_mem_fail_after(k);
        int rc = fr_pool_create(3, &p);
        fr_mem_fail_after(-1);
        CHECK_MSG(rc == FR_ENOMEM, "allocation %d failing: create returned %d", k, rc);
        if (rc == 0) fr_pool_destroy(p);
    }

    CHECK_INT(fr_mem_in_use(), mem0);
    return harness_done();
}
