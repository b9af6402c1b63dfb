/*
 * membw.h — measure the machine's memory read bandwidth the way a decode
 * step reads weights: every thread of the pool streams its own slice of a
 * buffer much larger than the caches.
 */
#ifndef FR_KERNELS_MEMBW_H
#define FR_KERNELS_MEMBW_H

#include <stddef.h>

#include "kernels/pool.h"

/* Read a buffer of `bytes` (allocated, touched and freed here) `reps` times
 * with the pool; returns the best pass in bytes per second, or a negative
 * FR_E* code (FR_ENOMEM). */
double fr_membw_read(fr_pool *pool, size_t bytes, int reps);

#endif
