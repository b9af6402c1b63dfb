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

typedef struct fr_sampler fr_sampler;

typedef struct fr_sampler_params {
    float temp;             /* 0.80 */
    int32_t top_k;          /* 40; <= 0 off */
    float top_p;            /* 0.95; 1 off */
    float min_p;            /* 0.05; 0 off */
    float repeat_penalty;   /* 1.0 off */
    int32_t repeat_last_n;  /* 64 */
    float freq_penalty;     /* 0 */
    float presence_penalty; /* 0 */
    uint64_t seed;          /* 0xFFFFFFFF = random */
} fr_sampler_params;

void fr_sampler_params_default(fr_sampler_params *p);

/* A sampler for n_vocab logits; every buffer is allocated here, so
 * sampling never allocates.  FR_EINVAL (n_vocab <= 0) or FR_ENOMEM.
 * repeat_last_n < 0 keeps the last 4096 tokens. */
int  fr_sampler_create(const fr_sampler_params *p, int32_t n_vocab, fr_sampler **out);
void fr_sampler_destroy(fr_sampler *s);          /* NULL is fine */

/* Add a bias to a token's logit before the chain (-INFINITY bans it).
 * Setting a token's bias again replaces it; out-of-range ids are ignored. */
void fr_sampler_set_bias(fr_sampler *s, int32_t token, float bias);

/* Record an accepted token (prompt tokens too) for the penalties. */
void fr_sampler_accept(fr_sampler *s, int32_t token);

/* Choose the next token from n_vocab logits (not modified).  If every
 * token is banned, returns 0. */
int32_t fr_sampler_sample(fr_sampler *s, const float *logits);

#endif
