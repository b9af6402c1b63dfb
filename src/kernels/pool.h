/*
 * pool.h — the persistent compute pool.
 *
 * n threads in all: the caller of fr_pool_run is thread 0 and n-1 workers
 * are created once, at fr_pool_create.  Between runs the workers spin
 * briefly, then sleep on a condition variable; nothing spawns threads per
 * token.  fr_pool_run(pool, fn, ctx) calls fn(ctx, ith, nth) on every thread
 * and returns when all have finished.  fr_pool_barrier() may be called by
 * every thread inside fn to synchronise phases.
 *
 * One run at a time: fr_pool_run is not reentrant and the pool must be used
 * by one caller thread at a time.
 */
#ifndef FR_KERNELS_POOL_H
#define FR_KERNELS_POOL_H

#include "frugal/kernels.h"

/* Creation, destruction and size are public: frugal/kernels.h. */

/* Threads the next runs use: 1..fr_pool_size (all unless set lower).
 * fn gets this count as nth; work split before a run must use it, while
 * buffers per thread are sized for fr_pool_size.  set clamps n to
 * [1, size] and may only be called between runs by the pool's caller;
 * fr_pool_threads may be read by any thread. */
int  fr_pool_threads(const fr_pool *pool);
void fr_pool_set_threads(fr_pool *pool, int n);

/* Run fn on the threads (fr_pool_threads); pool may be NULL (runs fn(ctx, 0, 1)). */
void fr_pool_run(fr_pool *pool, fr_pool_fn fn, void *ctx);

/* Wait until all nth threads of the current run reach the barrier. */
void fr_pool_barrier(fr_pool *pool);

#endif
