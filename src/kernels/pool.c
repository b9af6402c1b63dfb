/*
 * pool.c — the persistent compute pool (see pool.h for the contract).
 *
 * Structure: n threads in all; thread 0 is whoever calls fr_pool_run, the
 * n−1 workers are created once in fr_pool_create and live until
 * fr_pool_destroy.  A run is announced by bumping `run_gen`; a worker that
 * sees a new generation calls fn(ctx, ith, n), then increments `done`.  The
 * caller runs its own share, then waits until done == n−1.
 *
 * Waiting: an idle worker spins on run_gen (with `pause`) for SPIN_YIELD
 * iterations, then keeps polling with sched_yield() (so that on a busy
 * machine the thread it waits for can have the core) for IDLE_NS, then
 * sleeps on `cv`.  Before sleeping it increments `sleepers`
 * and re-reads run_gen under the mutex; fr_pool_run bumps run_gen, then only
 * if sleepers > 0 takes the mutex and broadcasts.  Both sides use seq_cst,
 * so either the worker sees the new generation or the runner sees the
 * sleeper (no lost wake-up), and a busy token loop never touches the mutex.
 *
 * Barrier: a counter and a generation, each on its own cache line.  The
 * last thread to arrive resets the counter and bumps the generation; the
 * others spin on the generation.  Nobody sleeps inside a run; after a while
 * spinning threads call sched_yield() so an oversubscribed machine (more
 * threads than cores, sanitizers) still makes progress.
 *
 * Fewer threads.  fr_pool_set_threads(pool, k) makes the next runs use
 * threads 0..k-1 only (the SoC is hot: manager/pressure.c through
 * sched/compute.c).  `active` is atomic so that anyone may read it.  A
 * run's thread count travels in the low bits of run_gen, so a worker
 * reads generation and count at once; a worker not in the run skips it
 * without counting itself done (the caller waits for n_run − 1), and a
 * worker whose ith is not below `active` parks on park_cv, where runs do
 * not wake it, until set_threads includes it again (set stores active
 * and broadcasts under mu, the worker checks under mu: no lost wake-up).
 * A parked worker misses no run it belongs to: such a run waits for it,
 * so the generation it reads when it comes back is that run's.  The
 * barrier counts n_run threads.  The kernels size their work from
 * fr_pool_threads before the run, so the count changes only between
 * runs, by the pool's one caller.
 *
 * Nothing is allocated per run.  One caller at a time (pool.h).
 */
#include "kernels/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/sysinfo.h"

#define SPIN_YIELD 128        /* pause iterations before a wait starts yielding */
#define IDLE_NS    2000000    /* an idle worker yields this long, then sleeps */

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpu_relax(void) { _mm_pause(); }
#else
static inline void cpu_relax(void) { }
#endif

typedef struct worker {
    fr_pool *pool;
    int ith;
} worker;

struct fr_pool {
    /* written once per run by the caller, read by workers after run_gen */
    fr_pool_fn fn;
    void *ctx;
    int n;
    int n_run;              /* threads of the current run (<= n) */
    bool stop;
    pthread_t *threads;     /* [n-1] */
    worker *workers;        /* [n-1] */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_cond_t park_cv;     /* parked workers (ith >= active) */

    _Alignas(64) atomic_int active;     /* threads the next run uses */
    _Alignas(64) atomic_uint run_gen;
    _Alignas(64) atomic_int done;
    _Alignas(64) atomic_int sleepers;
    _Alignas(64) atomic_int bar_count;
    _Alignas(64) atomic_uint bar_gen;
};

/* Spin (then yield) until *gen differs from old; returns the new value. */
static unsigned wait_gen_change(atomic_uint *gen, unsigned old) {
    unsigned g;
    int spins = 0;
    while ((g = atomic_load_explicit(gen, memory_order_acquire)) == old) {
        if (spins < SPIN_YIELD) { spins++; cpu_relax(); }
        else sched_yield();
    }
    return g;
}

/* run_gen: a run counter above GEN_SHIFT bits, the run's thread count
 * below, so a worker learns both from one atomic read. */
#define GEN_SHIFT 11
#define GEN_NTH(g) ((int)((g) & ((1u << GEN_SHIFT) - 1)))
_Static_assert(1024 < (1 << GEN_SHIFT), "thread count field of run_gen");

static void *worker_main(void *arg) {
    worker *w = arg;
    fr_pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        if (w->ith >= atomic_load(&p->active)) {
            /* parked: not woken by runs until fr_pool_set_threads includes it */
            pthread_mutex_lock(&p->mu);
            while (w->ith >= atomic_load(&p->active) && !p->stop) pthread_cond_wait(&p->park_cv, &p->mu);
            bool stop = p->stop;
            pthread_mutex_unlock(&p->mu);
            if (stop) break;
        }
        unsigned g;
        int spins = 0;
        uint64_t t0 = 0;
        while ((g = atomic_load_explicit(&p->run_gen, memory_order_acquire)) == seen) {
            if (spins < SPIN_YIELD) { spins++; cpu_relax(); continue; }
            /* then yield (the thread we wait for may share our core) until
             * IDLE_NS have passed, then sleep */
            uint64_t now = fr_now_ns();
            if (!t0) t0 = now;
            else if (now - t0 > IDLE_NS) break;
            sched_yield();
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while ((g = atomic_load(&p->run_gen)) == seen) pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        seen = g;
        if (p->stop) break;
        /* a run of fewer threads than ith goes on without this one (and
         * then fn and ctx may already be the next run's) */
        if (w->ith >= GEN_NTH(g)) continue;
        p->fn(p->ctx, w->ith, GEN_NTH(g));
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
    return NULL;
}

/* Announce a run of n threads (fn, ctx and n_run are set). */
static void announce(fr_pool *p, int n) {
    unsigned g = atomic_load_explicit(&p->run_gen, memory_order_relaxed);
    atomic_store(&p->run_gen, (((g >> GEN_SHIFT) + 1) << GEN_SHIFT) | (unsigned)n);  /* seq_cst: pairs with sleepers */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

static void stop_workers(fr_pool *p, int started) {
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->park_cv);
    pthread_mutex_unlock(&p->mu);
    announce(p, p->n);
    for (int i = 0; i < started; i++) pthread_join(p->threads[i], NULL);
}

int fr_pool_create(int n_threads, fr_pool **out) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return fr_errf(FR_EINVAL, "pool: bad thread count %d", n_threads);
    fr_pool *p = fr_malloc_aligned(sizeof *p);
    if (!p) return FR_ENOMEM;
    memset(p, 0, sizeof *p);
    p->n = n_threads;
    p->n_run = n_threads;
    atomic_init(&p->active, n_threads);
    atomic_init(&p->run_gen, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->bar_count, 0);
    atomic_init(&p->bar_gen, 0);
    int rc = FR_ENOMEM;
    if (n_threads > 1) {
        p->threads = fr_calloc((size_t)n_threads - 1, sizeof *p->threads);
        p->workers = fr_calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->threads || !p->workers) goto fail_arrays;
    }
    if (pthread_mutex_init(&p->mu, NULL)) goto fail_arrays;
    if (pthread_cond_init(&p->cv, NULL)) goto fail_mutex;
    if (pthread_cond_init(&p->park_cv, NULL)) {
        pthread_cond_destroy(&p->cv);
        goto fail_mutex;
    }
    for (int i = 0; i < n_threads - 1; i++) {
        p->workers[i] = (worker){p, i + 1};
        if (pthread_create(&p->threads[i], NULL, worker_main, &p->workers[i])) {
            stop_workers(p, i);
            rc = fr_errf(FR_ENOMEM, "pool: cannot start thread %d of %d", i + 1, n_threads);
            goto fail_cond;
        }
    }
    *out = p;
    return 0;

fail_cond:
    pthread_cond_destroy(&p->park_cv);
    pthread_cond_destroy(&p->cv);
fail_mutex:
    pthread_mutex_destroy(&p->mu);
fail_arrays:
    fr_free(p->workers);
    fr_free(p->threads);
    fr_free_aligned(p);
    return rc;
}

void fr_pool_destroy(fr_pool *pool) {
    if (!pool) return;
    stop_workers(pool, pool->n - 1);
    pthread_cond_destroy(&pool->park_cv);
    pthread_cond_destroy(&pool->cv);
    pthread_mutex_destroy(&pool->mu);
    fr_free(pool->workers);
    fr_free(pool->threads);
    fr_free_aligned(pool);
}

int fr_pool_size(const fr_pool *pool) {
    return pool ? pool->n : 1;
}

int fr_pool_threads(const fr_pool *pool) {
    return pool ? atomic_load_explicit(&pool->active, memory_order_relaxed) : 1;
}

void fr_pool_set_threads(fr_pool *pool, int n) {
    if (!pool) return;
    if (n < 1) n = 1;
    if (n > pool->n) n = pool->n;
    pthread_mutex_lock(&pool->mu);      /* parked workers check under mu */
    atomic_store(&pool->active, n);
    pthread_cond_broadcast(&pool->park_cv);
    pthread_mutex_unlock(&pool->mu);
}

void fr_pool_run(fr_pool *pool, fr_pool_fn fn, void *ctx) {
    int n_run = pool ? atomic_load_explicit(&pool->active, memory_order_relaxed) : 1;
    if (n_run == 1) {
        if (pool) pool->n_run = 1;      /* the barrier's count */
        fn(ctx, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n_run = n_run;
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    announce(pool, n_run);
    fn(ctx, 0, n_run);
    int spins = 0;
    while (atomic_load_explicit(&pool->done, memory_order_acquire) != n_run - 1) {
        if (spins < SPIN_YIELD) { spins++; cpu_relax(); }
        else sched_yield();
    }
}

void fr_pool_barrier(fr_pool *pool) {
    if (!pool || pool->n_run == 1) return;
    unsigned g = atomic_load_explicit(&pool->bar_gen, memory_order_acquire);
    if (atomic_fetch_add_explicit(&pool->bar_count, 1, memory_order_acq_rel) == pool->n_run - 1) {
        atomic_store_explicit(&pool->bar_count, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&pool->bar_gen, 1, memory_order_release);
    } else {
        wait_gen_change(&pool->bar_gen, g);
    }
}
