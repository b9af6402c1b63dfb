/*
 * compute.c — the machine's one compute pool and the turn every forward
 * pass takes on it.
 *
 * The turn is a ticket lock: a scheduler that wants to run a pass draws the
 * next ticket and waits until it is served, so passes run one at a time in
 * the order they were asked for.  Two models with work therefore
 * alternate pass by pass instead of one starving the other (a plain mutex
 * lets the thread that just released it take it again).
 *
 * Fewer threads (fr_compute_set_threads) are applied to the pool when a
 * turn starts: the turn's holder is the pool's only caller and no run is
 * in progress then, as fr_pool_set_threads requires.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "base/err.h"
#include "base/mem.h"
#include "kernels/pool.h"
#include "sched/sched_int.h"

int fr_compute_create(int n_threads, fr_compute **out) {
    *out = NULL;
    if (n_threads < 1) return fr_errf(FR_EINVAL, "compute pool of %d threads", n_threads);
    fr_compute *c = fr_calloc(1, sizeof *c);
    if (!c) return FR_ENOMEM;
    int rc = fr_pool_create(n_threads, &c->pool);
    if (rc) {
        fr_free(c);
        return rc;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->want_threads = n_threads;
    atomic_init(&c->slot_cap, 0);
    *out = c;
    return 0;
}

void fr_compute_destroy(fr_compute *c) {
    if (!c) return;
    fr_pool_destroy(c->pool);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    fr_free(c);
}

int fr_compute_threads(const fr_compute *c) { return fr_pool_size(c->pool); }

fr_pool *fr__compute_pool(fr_compute *c) { return c->pool; }

void fr__compute_acquire(fr_compute *c) {
    pthread_mutex_lock(&c->mu);
    uint64_t ticket = c->next_ticket++;
    while (c->serving != ticket) pthread_cond_wait(&c->cv, &c->mu);
    int want = c->want_threads;
    pthread_mutex_unlock(&c->mu);
    if (want != fr_pool_threads(c->pool)) fr_pool_set_threads(c->pool, want);
}

void fr_compute_set_threads(fr_compute *c, int n) {
    int size = fr_pool_size(c->pool);
    pthread_mutex_lock(&c->mu);
    c->want_threads = n < 1 ? 1 : n > size ? size : n;
    pthread_mutex_unlock(&c->mu);
}

int fr_compute_threads_active(fr_compute *c) {
    pthread_mutex_lock(&c->mu);
    int n = c->want_threads;
    pthread_mutex_unlock(&c->mu);
    return n;
}

void fr_compute_set_slot_cap(fr_compute *c, int32_t n) { atomic_store(&c->slot_cap, n < 0 ? 0 : n); }

int32_t fr_compute_slot_cap(fr_compute *c) { return atomic_load(&c->slot_cap); }

void fr__compute_release(fr_compute *c) {
    pthread_mutex_lock(&c->mu);
    c->serving++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}
