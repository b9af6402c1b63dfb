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

/* Run fn on all threads; pool may be NULL (runs fn(ctx, 0, 1)). */
void fr_pool_run(fr_pool *pool, fr_pool_fn fn, void *ctx);

/* Wait until all nth threads of the current run reach the barrier. */
void fr_pool_barrier(fr_pool *pool);

#endif
