/*
 * sampler.h — llama.cpp's sampler chain (GGUF.md §7), seeded.
 *
 * Order: logit bias → penalties → top_k → top_p → min_p → temperature →
 * draw.  temp <= 0 is greedy (arg-max).  The same seed and inputs give the
 * same tokens.  Not thread-safe: one sampler per sequence.
 */
#ifndef FR_ENGINE_SAMPLER_H
#define FR_ENGINE_SAMPLER_H

#include <stdint.h>

#include "frugal/engine.h"

/* The sampler API is public: frugal/engine.h. */

#endif
