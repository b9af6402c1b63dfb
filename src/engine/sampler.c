/*
 * sampler.c — llama.cpp's default sampler chain (GGUF.md §7).
 *
 *   logit bias → penalties (last repeat_last_n accepted tokens) → top_k →
 *   top_p → min_p → temperature → draw from the softmax
 *
 * temp <= 0 returns the arg-max after bias and penalties (the filters in
 * between always keep the arg-max).  Candidates live in arrays sized at
 * create (n_vocab entries), so sampling never allocates.  Tokens banned
 * with a -INFINITY bias (or NaN logits) never become candidates.
 *
 * The RNG is xoshiro256** seeded through splitmix64 from `seed`
 * (0xFFFFFFFF: from the clock); draws are (x >> 11)·2^-53 in [0, 1).
 */
#include <math.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/sampler.h"

#define SEED_RANDOM 0xFFFFFFFFu
#define HISTORY_MAX_DEFAULT 4096   /* repeat_last_n < 0 ("whole context") */

typedef struct cand {
    float logit;
    int32_t id;
} cand;

struct fr_sampler {
    fr_sampler_params p;
    int32_t n_vocab;
    float *bias;            /* [n_vocab] */
    cand *cands;            /* [n_vocab] */
    cand *tmp;              /* [n_vocab] merge-sort scratch */
    int32_t *count;         /* [n_vocab] occurrences in history, zero between samples */
    int32_t *hist;          /* [hist_cap] ring of accepted tokens */
    int32_t hist_cap, hist_len, hist_head;
    uint64_t rng[4];
};

/* ---- RNG ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4]) {
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static double rng_uniform(fr_sampler *s) {
    return (double)(xoshiro_next(s->rng) >> 11) * (1.0 / 9007199254740992.0);
}

void fr_sampler_params_default(fr_sampler_params *p) {
    p->temp = 0.80f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->freq_penalty = 0.0f;
    p->presence_penalty = 0.0f;
    p->seed = SEED_RANDOM;
}

size_t fr_sampler_estimate_bytes(const fr_sampler_params *p, int32_t n_vocab) {
    size_t hist = (size_t)(p->repeat_last_n < 0 ? HISTORY_MAX_DEFAULT
                                                : p->repeat_last_n > 0 ? p->repeat_last_n : 1);
    return sizeof(fr_sampler) + (size_t)n_vocab * (sizeof(float) + 2 * sizeof(cand) + sizeof(int32_t)) +
           hist * sizeof(int32_t);
}

int fr_sampler_create(const fr_sampler_params *p, int32_t n_vocab, fr_sampler **out) {
    *out = NULL;
    if (n_vocab <= 0) return fr_errf(FR_EINVAL, "sampler: n_vocab %d", (int)n_vocab);
    fr_sampler *s = fr_calloc(1, sizeof *s);
    if (!s) return FR_ENOMEM;
    s->p = *p;
    s->n_vocab = n_vocab;
    s->hist_cap = p->repeat_last_n < 0 ? HISTORY_MAX_DEFAULT : p->repeat_last_n;
    s->bias = fr_calloc((size_t)n_vocab, sizeof *s->bias);
    s->cands = fr_malloc((size_t)n_vocab * sizeof *s->cands);
    s->tmp = fr_malloc((size_t)n_vocab * sizeof *s->tmp);
    s->count = fr_calloc((size_t)n_vocab, sizeof *s->count);
    s->hist = fr_malloc((size_t)(s->hist_cap > 0 ? s->hist_cap : 1) * sizeof *s->hist);
    if (!s->bias || !s->cands || !s->tmp || !s->count || !s->hist) {
        fr_sampler_destroy(s);
        return FR_ENOMEM;
    }
    uint64_t seed = p->seed;
    if (seed == SEED_RANDOM) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        seed ^= (uint64_t)(uintptr_t)s;
    }
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&seed);
    *out = s;
    return 0;
}

void fr_sampler_destroy(fr_sampler *s) {
    if (!s) return;
    fr_free(s->bias);
    fr_free(s->cands);
    fr_free(s->tmp);
    fr_free(s->count);
    fr_free(s->hist);
    fr_free(s);
}

void fr_sampler_set_bias(fr_sampler *s, int32_t token, float bias) {
    if (token >= 0 && token < s->n_vocab) s->bias[token] = bias;
}

void fr_sampler_accept(fr_sampler *s, int32_t token) {
    if (s->hist_cap <= 0 || token < 0 || token >= s->n_vocab) return;
    s->hist[s->hist_head] = token;
    s->hist_head = (s->hist_head + 1) % s->hist_cap;
    if (s->hist_len < s->hist_cap) s->hist_len++;
}

/* ---- the chain ---- */

/* Descending logit, then ascending id: a total order, so runs repeat. */
static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Bottom-up merge sort of a[0..n) in cand_cmp order, with scratch tmp[n]
 * (libc's qsort may allocate for large arrays). */
static void cand_sort(cand *a, cand *tmp, int32_t n) {
    cand *src = a, *dst = tmp;
    for (int32_t w = 1; w < n; w *= 2) {
        for (int32_t lo = 0; lo < n; lo += 2 * w) {
            int32_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int32_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) dst[k++] = cand_cmp(&src[j], &src[i]) < 0 ? src[j++] : src[i++];
            while (i < mid) dst[k++] = src[i++];
            while (j < hi) dst[k++] = src[j++];
        }
        cand *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, (size_t)n * sizeof *a);
}

/* repeat penalty, then logit -= count·freq + (count > 0)·presence, over
 * the distinct tokens of the history.  cands[i].id == i at this point. */
static void apply_penalties(fr_sampler *s) {
    const fr_sampler_params *p = &s->p;
    if (s->hist_len == 0 ||
        (p->repeat_penalty == 1.0f && p->freq_penalty == 0.0f && p->presence_penalty == 0.0f))
        return;
    for (int32_t i = 0; i < s->hist_len; i++) s->count[s->hist[i]]++;
    for (int32_t i = 0; i < s->hist_len; i++) {
        int32_t id = s->hist[i], n = s->count[id];
        if (n == 0) continue; /* already done */
        float *l = &s->cands[id].logit;
        if (p->repeat_penalty != 1.0f && p->repeat_penalty > 0) {
            if (*l <= 0) *l *= p->repeat_penalty;
            else *l /= p->repeat_penalty;
        }
        *l -= (float)n * p->freq_penalty + p->presence_penalty;
        s->count[id] = 0;
    }
}

int32_t fr_sampler_sample(fr_sampler *s, const float *logits) {
    const fr_sampler_params *p = &s->p;
    int32_t n_vocab = s->n_vocab;

    for (int32_t i = 0; i < n_vocab; i++) {
        s->cands[i].id = i;
        s->cands[i].logit = logits[i] + s->bias[i];
    }
    apply_penalties(s);

    /* Drop banned tokens (−inf or NaN), keeping order. */
    int32_t n = 0;
    for (int32_t i = 0; i < n_vocab; i++)
        if (s->cands[i].logit > -INFINITY) s->cands[n++] = s->cands[i];
    if (n == 0) return 0; /* everything banned: nothing sensible to choose */

    if (p->temp <= 0) {
        int32_t best = 0;
        for (int32_t i = 1; i < n; i++)
            if (s->cands[i].logit > s->cands[best].logit) best = i;
        return s->cands[best].id;
    }

    /* top_k: select and sort the k best; without it sort everything. */
    int32_t k = p->top_k > 0 && p->top_k < n ? p->top_k : n;
    if (k < n) {
        /* Quickselect (Hoare partition, cand_cmp order) moves the k best
         * to the front, so only k candidates are sorted. */
        int32_t lo = 0, hi = n - 1;
        while (lo < hi) {
            cand pivot = s->cands[(lo + hi) / 2];
            int32_t i = lo, j = hi;
            while (i <= j) {
                while (cand_cmp(&s->cands[i], &pivot) < 0) i++;
                while (cand_cmp(&s->cands[j], &pivot) > 0) j--;
                if (i <= j) {
                    cand t = s->cands[i];
                    s->cands[i] = s->cands[j];
                    s->cands[j] = t;
                    i++;
                    j--;
                }
            }
            if (k - 1 <= j) hi = j;
            else if (k - 1 >= i) lo = i;
            else break;
        }
        n = k;
    }
    cand_sort(s->cands, s->tmp, n);

    /* top_p: the smallest prefix whose probability reaches top_p. */
    if (p->top_p < 1.0f) {
        float max = s->cands[0].logit;
        double sum = 0;
        for (int32_t i = 0; i < n; i++) sum += exp((double)s->cands[i].logit - max);
        double cum = 0;
        for (int32_t i = 0; i < n; i++) {
            cum += exp((double)s->cands[i].logit - max) / sum;
            if (cum >= p->top_p) {
                n = i + 1;
                break;
            }
        }
    }

    /* min_p: keep logit >= max + ln(min_p), i.e. p >= min_p·p_max. */
    if (p->min_p > 0.0f) {
        float thresh = s->cands[0].logit + logf(p->min_p);
        int32_t keep = 1;
        while (keep < n && s->cands[keep].logit >= thresh) keep++;
        n = keep;
    }

    /* temperature, then draw. */
    float max = s->cands[0].logit / p->temp;
    double sum = 0;
    for (int32_t i = 0; i < n; i++) sum += exp((double)(s->cands[i].logit / p->temp) - max);
    double u = rng_uniform(s) * sum, cum = 0;
    for (int32_t i = 0; i < n; i++) {
        cum += exp((double)(s->cands[i].logit / p->temp) - max);
        if (u < cum) return s->cands[i].id;
    }
    return s->cands[n - 1].id;
}
