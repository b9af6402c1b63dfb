/*
 * sampler.h — llama.cpp's sampler chain (GGUF.md §7), seeded.
 *
 * Order: logit bias → penalties → top_k → top_p → min_p → temperature →
 * draw.  temp <= 0 is greedy (arg-max).  The same seed and inputs give the
 * same tokens.  Not thread-safe: one sampler per sequence.
 */
#ifndef FR_ENGINE_SAMPLER_H
#define FR_ENGINE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "frugal/engine.h"

/* The sampler API is public: frugal/engine.h. */

/* Heap bytes fr_sampler_create(p, n_vocab) allocates (for budgets). */
size_t fr_sampler_estimate_bytes(const fr_sampler_params *p, int32_t n_vocab);

#endif
