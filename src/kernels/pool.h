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

typedef struct fr_pool fr_pool;
typedef void (*fr_pool_fn)(void *ctx, int ith, int nth);

/* Create a pool of n_threads (>= 1).  Returns 0 or FR_ENOMEM/FR_EINVAL. */
int  fr_pool_create(int n_threads, fr_pool **out);
void fr_pool_destroy(fr_pool *pool);          /* NULL is fine */
int  fr_pool_size(const fr_pool *pool);       /* 1 for NULL */

/* Run fn on all threads; pool may be NULL (runs fn(ctx, 0, 1)). */
void fr_pool_run(fr_pool *pool, fr_pool_fn fn, void *ctx);

/* Wait until all nth threads of the current run reach the barrier. */
void fr_pool_barrier(fr_pool *pool);

#endif
