/*
 * sched_int.h — the layouts shared by the scheduler's files and tests.
 */
#ifndef FR_SCHED_SCHED_INT_H
#define FR_SCHED_SCHED_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "sched/sched.h"

struct fr_compute {
    fr_pool *pool;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t next_ticket;        /* the next ticket to draw */
    uint64_t serving;            /* the ticket whose turn it is */
    int want_threads;            /* fr_compute_set_threads; applied at acquire */
    _Atomic int32_t slot_cap;    /* fr_compute_set_slot_cap; 0 = none */
};

fr_pool *fr__compute_pool(fr_compute *c);
/* Wait for this caller's turn (FIFO), then own the pool until release. */
void fr__compute_acquire(fr_compute *c);
void fr__compute_release(fr_compute *c);

#endif
