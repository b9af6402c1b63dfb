/*
 * test_sampler.c — the sampler chain on small hand-made logit vectors with
 * hand-computed expectations (GGUF.md §7).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/sampler.h"
#include "harness.h"

/* Parameters with every filter off: plain softmax sampling at temp. */
static fr_sampler_params plain(float temp, uint64_t seed) {
    fr_sampler_params p;
    fr_sampler_params_default(&p);
    p.temp = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = seed;
    return p;
}

static fr_sampler *make(const fr_sampler_params *p, int32_t n_vocab) {
    fr_sampler *s = NULL;
    int rc = fr_sampler_create(p, n_vocab, &s);
    CHECK_INT(rc, 0);
    return s;
}

/* Draw n times; counts[] receives how often each token came out. */
static void draw(fr_sampler *s, const float *logits, int32_t n_vocab, int n, int *counts) {
    int bad = 0;
    memset(counts, 0, sizeof(int) * (size_t)n_vocab);
    for (int i = 0; i < n; i++) {
        int32_t t = fr_sampler_sample(s, logits);
        if (t >= 0 && t < n_vocab) counts[t]++;
        else bad++;
    }
    CHECK_INT(bad, 0);
}

static void test_defaults(void) {
    fr_sampler_params p;
    fr_sampler_params_default(&p);
    CHECK_NEAR(p.temp, 0.8, 1e-6);
    CHECK_INT(p.top_k, 40);
    CHECK_NEAR(p.top_p, 0.95, 1e-6);
    CHECK_NEAR(p.min_p, 0.05, 1e-6);
    CHECK_NEAR(p.repeat_penalty, 1.0, 0);
    CHECK_INT(p.repeat_last_n, 64);
    CHECK_INT(p.seed, 0xFFFFFFFFu);
    fr_sampler *s = NULL;
    CHECK_INT(fr_sampler_create(&p, 0, &s), FR_EINVAL);
}

static void test_greedy(void) {
    enum { N = 1000 };
    static float logits[N];
    uint32_t x = 12345;
    int32_t best = 0;
    for (int i = 0; i < N; i++) {
        x = x * 1664525u + 1013904223u;
        logits[i] = (float)(x >> 8) / (float)(1u << 24) * 20.0f - 10.0f;
        if (logits[i] > logits[best]) best = i;
    }
    fr_sampler_params p;
    fr_sampler_params_default(&p); /* top_k/top_p/min_p on: greedy ignores them */
    p.temp = 0;
    p.seed = 1;
    fr_sampler *s = make(&p, N);
    p.temp = -1;
    fr_sampler *s2 = make(&p, N);
    /* top_k = 1 at temperature 1 is greedy too */
    fr_sampler_params pk = plain(1.0f, 7);
    pk.top_k = 1;
    fr_sampler *s3 = make(&pk, N);

    size_t before = fr_mem_in_use();
    for (int i = 0; i < 5; i++) CHECK_INT(fr_sampler_sample(s, logits), best);
    CHECK_INT(fr_sampler_sample(s2, logits), best);
    for (int i = 0; i < 20; i++) CHECK_INT(fr_sampler_sample(s3, logits), best);
    CHECK_INT(fr_mem_in_use(), before); /* no allocation while sampling */
    fr_sampler_destroy(s);
    fr_sampler_destroy(s2);
    fr_sampler_destroy(s3);
}

static void test_seed(void) {
    enum { N = 50, DRAWS = 200 };
    float logits[N];
    for (int i = 0; i < N; i++) logits[i] = (float)(i % 7) * 0.3f;
    fr_sampler_params p = plain(1.0f, 42);
    fr_sampler *a = make(&p, N), *b = make(&p, N);
    p.seed = 43;
    fr_sampler *c = make(&p, N);
    int same_ab = 0, same_ac = 0;
    for (int i = 0; i < DRAWS; i++) {
        int32_t ta = fr_sampler_sample(a, logits), tb = fr_sampler_sample(b, logits);
        int32_t tc = fr_sampler_sample(c, logits);
        same_ab += ta == tb;
        same_ac += ta == tc;
    }
    CHECK_INT(same_ab, DRAWS);
    /* Two independent streams over ~35 likely tokens agree about 1 time in 35. */
    CHECK_MSG(same_ac < DRAWS / 4, "seeds 42 and 43 agree on %d of %d draws", same_ac, DRAWS);
    fr_sampler_destroy(a);
    fr_sampler_destroy(b);
    fr_sampler_destroy(c);
}

/* 10000 draws at temp 1 from logits {1, 2, 3}: softmax is
 * e^1, e^2, e^3 / Σ = 0.09003, 0.24473, 0.66524. */
static void test_distribution(void) {
    const float logits[3] = {1, 2, 3};
    int counts[3];
    fr_sampler_params p = plain(1.0f, 2024);
    fr_sampler *s = make(&p, 3);
    size_t before = fr_mem_in_use();
    draw(s, logits, 3, 10000, counts);
    CHECK_INT(fr_mem_in_use(), before);
    /* standard deviation of a frequency here is at most 0.005 */
    CHECK_NEAR(counts[0] / 10000.0, 0.09003, 0.02);
    CHECK_NEAR(counts[1] / 10000.0, 0.24473, 0.02);
    CHECK_NEAR(counts[2] / 10000.0, 0.66524, 0.02);
    fr_sampler_destroy(s);

    /* temp 0.5 doubles the logits: softmax {2,4,6} = 0.01588, 0.11731, 0.86681 */
    p = plain(0.5f, 99);
    s = make(&p, 3);
    draw(s, logits, 3, 10000, counts);
    CHECK_NEAR(counts[0] / 10000.0, 0.01588, 0.01);
    CHECK_NEAR(counts[1] / 10000.0, 0.11731, 0.02);
    CHECK_NEAR(counts[2] / 10000.0, 0.86681, 0.02);
    fr_sampler_destroy(s);

    /* top_k = 2 keeps {1, 2}: renormalised e^2, e^3 = 0.26894, 0.73106 */
    p = plain(1.0f, 5);
    p.top_k = 2;
    s = make(&p, 3);
    draw(s, logits, 3, 10000, counts);
    CHECK_INT(counts[0], 0);
    CHECK_NEAR(counts[1] / 10000.0, 0.26894, 0.02);
    CHECK_NEAR(counts[2] / 10000.0, 0.73106, 0.02);
    fr_sampler_destroy(s);
}

/* probs {0.5, 0.3, 0.2}: top_p keeps the smallest prefix reaching p. */
static void test_top_p(void) {
    const float logits[3] = {logf(0.5f), logf(0.3f), logf(0.2f)};
    int counts[3];
    struct { float top_p; int n_survive; } cases[] = {
        {0.45f, 1}, {0.5f, 1}, {0.6f, 2}, {0.79f, 2}, {0.85f, 3}, {0.99f, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fr_sampler_params p = plain(1.0f, 1000 + i);
        p.top_p = cases[i].top_p;
        fr_sampler *s = make(&p, 3);
        draw(s, logits, 3, 3000, counts);
        int survived = (counts[0] > 0) + (counts[1] > 0) + (counts[2] > 0);
        CHECK_MSG(survived == cases[i].n_survive && counts[0] > 0 &&
                      (cases[i].n_survive < 2 || counts[1] > 0),
                  "top_p %.2f: counts %d %d %d, want the first %d", (double)cases[i].top_p,
                  counts[0], counts[1], counts[2], cases[i].n_survive);
        if (cases[i].n_survive == 2) /* renormalised: 0.625, 0.375 */
            CHECK_NEAR(counts[0] / 3000.0, 0.625, 0.04);
        fr_sampler_destroy(s);
    }
}

/* probs {0.5, 0.3, 0.1, 0.04, 0.01}: min_p keeps p >= min_p·p_max. */
static void test_min_p(void) {
    const float logits[5] = {logf(0.5f), logf(0.3f), logf(0.1f), logf(0.04f), logf(0.01f)};
    int counts[5];
    struct { float min_p; int n_survive; } cases[] = {
        {0.01f, 5}, /* p >= 0.005 */
        {0.05f, 4}, /* p >= 0.025 */
        {0.1f, 3},  /* p >= 0.05 */
        {0.5f, 2},  /* p >= 0.25 */
        {0.9f, 1},  /* p >= 0.45 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fr_sampler_params p = plain(1.0f, 77 + i);
        p.min_p = cases[i].min_p;
        fr_sampler *s = make(&p, 5);
        draw(s, logits, 5, 6000, counts);
        int last = -1, ok = 1;
        for (int t = 0; t < 5; t++) {
            if (counts[t] > 0) last = t;
            if ((t < cases[i].n_survive) != (counts[t] > 0)) ok = 0;
        }
        CHECK_MSG(ok, "min_p %.2f: counts %d %d %d %d %d (last %d), want the first %d",
                  (double)cases[i].min_p, counts[0], counts[1], counts[2], counts[3], counts[4],
                  last, cases[i].n_survive);
        fr_sampler_destroy(s);
    }
}

static int32_t greedy_after(const float *logits, int32_t n, const int32_t *hist, int n_hist,
                            float repeat, int32_t last_n, float freq, float presence) {
    fr_sampler_params p = plain(0.0f, 1);
    p.repeat_penalty = repeat;
    p.repeat_last_n = last_n;
    p.freq_penalty = freq;
    p.presence_penalty = presence;
    fr_sampler *s = make(&p, n);
    for (int i = 0; i < n_hist; i++) fr_sampler_accept(s, hist[i]);
    int32_t t = fr_sampler_sample(s, logits);
    fr_sampler_destroy(s);
    return t;
}

static void test_penalties(void) {
    const float l1[3] = {2.0f, 1.5f, 0.0f};
    const int32_t h0[] = {0};
    /* positive logit divided: 2.0/2 = 1.0 < 1.5 */
    CHECK_INT(greedy_after(l1, 3, h0, 1, 2.0f, 64, 0, 0), 1);
    /* 2.0/1.2 = 1.67 > 1.5 */
    CHECK_INT(greedy_after(l1, 3, h0, 1, 1.2f, 64, 0, 0), 0);
    /* negative logit multiplied: -1.0·2 = -2.0 < -1.5 (dividing would give -0.5) */
    const float l2[2] = {-1.0f, -1.5f};
    CHECK_INT(greedy_after(l2, 2, h0, 1, 2.0f, 64, 0, 0), 1);
    /* a token repeated in the history is penalised once by repeat_penalty */
    const int32_t h000[] = {0, 0, 0};
    CHECK_INT(greedy_after(l1, 3, h000, 3, 1.2f, 64, 0, 0), 0); /* 1.67 still wins */
    /* frequency: 3.0 − 3·0.2 = 2.4 < 2.5; 3.0 − 3·0.1 = 2.7 > 2.5 */
    const float l3[2] = {3.0f, 2.5f};
    CHECK_INT(greedy_after(l3, 2, h000, 3, 1.0f, 64, 0.2f, 0), 1);
    CHECK_INT(greedy_after(l3, 2, h000, 3, 1.0f, 64, 0.1f, 0), 0);
    /* presence counts once: 3.0 − 0.4 = 2.6 > 2.5; 3.0 − 0.6 = 2.4 < 2.5 */
    CHECK_INT(greedy_after(l3, 2, h000, 3, 1.0f, 64, 0, 0.4f), 0);
    CHECK_INT(greedy_after(l3, 2, h000, 3, 1.0f, 64, 0, 0.6f), 1);
    /* the window: only the last repeat_last_n accepted tokens count */
    const int32_t h0111[] = {0, 1, 1, 1};
    CHECK_INT(greedy_after(l3, 2, h0111, 4, 1.0f, 2, 0, 1.0f), 0);  /* only 1 penalised */
    CHECK_INT(greedy_after(l3, 2, h0111, 4, 1.0f, 4, 0, 1.0f), 0);  /* both: 2.0 vs 1.5 */
    const int32_t h1110[] = {1, 1, 1, 0};
    CHECK_INT(greedy_after(l3, 2, h1110, 4, 1.0f, 1, 0, 1.0f), 1);  /* only 0: 2.0 < 2.5 */
    CHECK_INT(greedy_after(l3, 2, h1110, 4, 1.0f, 0, 0, 1.0f), 0);  /* window 0: off */
}

static void test_bias(void) {
    const float logits[4] = {0.5f, 3.0f, 2.0f, 1.0f};
    fr_sampler_params p = plain(0.0f, 3);
    fr_sampler *s = make(&p, 4);
    CHECK_INT(fr_sampler_sample(s, logits), 1);
    fr_sampler_set_bias(s, 1, -INFINITY);
    CHECK_INT(fr_sampler_sample(s, logits), 2);
    fr_sampler_set_bias(s, 0, 5.0f); /* 5.5 now wins */
    CHECK_INT(fr_sampler_sample(s, logits), 0);
    fr_sampler_set_bias(s, 99, 1.0f); /* out of range: ignored */
    fr_sampler_destroy(s);

    /* a banned token is never drawn, even as the most likely one */
    int counts[4];
    p = plain(1.0f, 11);
    s = make(&p, 4);
    fr_sampler_set_bias(s, 1, -INFINITY);
    draw(s, logits, 4, 5000, counts);
    CHECK_INT(counts[1], 0);
    CHECK(counts[0] > 0 && counts[2] > 0 && counts[3] > 0);
    fr_sampler_destroy(s);
}

/* Every failing allocation in create is FR_ENOMEM and leaks nothing. */
static void test_oom(void) {
    fr_sampler_params p = plain(1.0f, 1);
    fr_sampler *s = NULL;
    int n;
    for (n = 0; n < 100; n++) {
        fr_mem_fail_after(n);
        int rc = fr_sampler_create(&p, 1000, &s);
        fr_mem_fail_after(-1);
        if (rc == 0) break;
        CHECK_INT(rc, FR_ENOMEM);
        CHECK(s == NULL);
        CHECK_INT(fr_mem_in_use(), 0);
    }
    CHECK(n > 0 && s != NULL);
    fr_sampler_destroy(s);
}

int main(void) {
    test_oom();
    test_defaults();
    test_greedy();
    test_seed();
    test_distribution();
    test_top_p();
    test_min_p();
    test_penalties();
    test_bias();
    CHECK_INT(fr_mem_in_use(), 0);
    return harness_done();
}
