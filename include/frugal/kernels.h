/*
 * frugal/kernels.h — the public part of the kernels layer: the compute
 * pool that every forward pass runs on.  Workers are created once and
 * wait between runs; nothing spawns threads per token.  A pool runs one
 * job at a time; create, destroy and size are thread-safe.
 */
#ifndef FRUGAL_KERNELS_H
#define FRUGAL_KERNELS_H

typedef struct fr_pool fr_pool;
typedef void (*fr_pool_fn)(void *ctx, int ith, int nth);

/* Create a pool of n_threads (>= 1).  Returns 0 or FR_ENOMEM/FR_EINVAL. */
int  fr_pool_create(int n_threads, fr_pool **out);
void fr_pool_destroy(fr_pool *pool);          /* NULL is fine */
int  fr_pool_size(const fr_pool *pool);       /* 1 for NULL */

#endif
