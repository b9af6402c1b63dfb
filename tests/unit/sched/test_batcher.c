/*
 * test_batcher.c — the encoder batcher (sched/batcher.h) on the real
 * tiny-bert-q8_0 (../shared/testdata).
 *
 * The reference for every request is the same input run alone through the
 * batcher, one request at a time (and, for the texts of
 * refs/tiny-bert-q8_0.json, llama.cpp's vector: cosine >= 0.999).  Then:
 * 8 threads at once with different texts get the same vectors (cosine >=
 * 0.99999); while the compute turn is held, so that the batcher waits in
 * its first pass, 8 requests queue up and are served in 2 batches; a
 * request with more tokens than batch_tokens, or more sequences than
 * max_seqs, is split across passes and still correct; FR_ETOOLONG and
 * FR_EINVAL at submit; FR_EBUSY with retry_after >= 1 when the batcher
 * holds max_seqs + n_queue requests; fr_batcher_cancel_all fails the
 * waiting request and keeps serving; destroy with waiters: the request in
 * the pass finishes, the waiting one gets FR_ESHUTDOWN; nothing leaks.
 *
 * Holding the compute turn (sched_int.h) is what makes the queue states
 * deterministic: the batcher thread takes its batch, then waits for the
 * turn, so whatever is submitted after that stays queued until the test
 * lets go.
 */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <unistd.h>

#include "harness.h"

#include "base/err.h"
#include "base/mem.h"
#include "engine/model.h"
#include "sched/batcher.h"
#include "sched/sched_int.h"

#define N_TEXTS 16
#define DIM 256

static const char *const texts[N_TEXTS] = {
    "Hello world",
    "A small server that runs language models on a Raspberry Pi.",
    "Memory-mapped weights are paged in on demand.",
    "Äpfel und Birnen sind Obst.",
    "The weather is sunny today.",
    "It unloads the model that has been idle the longest.",
    "Llamas live in the Andes.",
    "What does the server do when memory runs short?",
    "one",
    "Batches of many sequences read the weights once for all of them.",
    "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.",
    "tokens, tokens and more tokens: a list, with punctuation!",
    "The quick brown fox jumps over the lazy dog",
    "日本語のテキスト",
    "embedding cache hit",
    "Each sequence attends only to its own tokens, in both directions.",
};

static int32_t *ids[N_TEXTS];
static size_t n_ids[N_TEXTS];
static float alone[N_TEXTS][DIM];   /* each text run alone through the batcher */

static double cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

static fr_enc_seq seq_of(int t) { return (fr_enc_seq){ids[t], (int32_t)n_ids[t]}; }

static fr_batcher *make(fr_model *m, fr_compute *cmp, int32_t batch_tokens, int32_t max_seqs,
                        int32_t n_queue) {
    fr_batcher_config cfg = {.batch_tokens = batch_tokens, .max_seqs = max_seqs, .n_queue = n_queue};
    fr_batcher *s = NULL;
    CHECK_INT(fr_batcher_create(m, cmp, &cfg, &s), 0);
    return s;
}

/* ---- a request on its own thread ---- */

typedef struct req {
    fr_batcher *s;
    fr_enc_seq seqs[N_TEXTS];
    int32_t n;
    int first;                  /* the text of seqs[0] (then first+1, ...) */
    int repeat;                 /* requests one after another */
    float out[N_TEXTS][DIM];
    int rc;
    double retry;
    pthread_t th;
} req;

static void *run_req(void *arg) {
    req *r = arg;
    for (int k = 0; k < (r->repeat > 0 ? r->repeat : 1); k++) {
        r->rc = fr_batcher_run(r->s, r->seqs, r->n, &r->out[0][0], &r->retry);
        if (r->rc) break;
    }
    return NULL;
}

static void req_start(req *r, fr_batcher *s, int first, int32_t n) {
    memset(r, 0, sizeof *r);
    r->s = s;
    r->first = first;
    r->n = n;
    for (int32_t i = 0; i < n; i++) r->seqs[i] = seq_of((first + i) % N_TEXTS);
    pthread_create(&r->th, NULL, run_req, r);
}

/* The vectors of a finished request are those of its texts alone. */
static void req_check(const char *what, req *r) {
    CHECK_MSG(r->rc == 0, "%s: rc %d (%s)", what, r->rc, fr_strerror(r->rc));
    if (r->rc) return;
    for (int32_t i = 0; i < r->n; i++) {
        int t = (r->first + i) % N_TEXTS;
        double c = cosine(r->out[i], alone[t], DIM);
        CHECK_MSG(c >= 0.99999, "%s: sequence %d (text %d) cosine %.8f to the text alone", what, (int)i, t, c);
    }
}

/* ---- the compute turn, held by the test ---- */

/* Wait until someone else (the batcher) waits for the turn that the test
 * holds: it has taken its batch. */
static bool wait_for_ticket(fr_compute *c, uint64_t waiting) {
    for (int i = 0; i < 20000; i++) {
        pthread_mutex_lock(&c->mu);
        uint64_t w = c->next_ticket - c->serving - 1;
        pthread_mutex_unlock(&c->mu);
        if (w >= waiting) return true;
        usleep(100);
    }
    return false;
}

static bool wait_for_queued(fr_batcher *s, int32_t n) {
    for (int i = 0; i < 20000; i++) {
        fr_batcher_stats st;
        fr_batcher_stats_get(s, &st);
        if (st.queued >= n) return true;
        usleep(100);
    }
    return false;
}

/* ---- the tests ---- */

static void test_alone(fr_batcher *s) {
    fr_batcher_stats st0, st1;
    fr_batcher_stats_get(s, &st0);
    for (int t = 0; t < N_TEXTS; t++) {
        fr_enc_seq q = seq_of(t);
        double retry = -1;
        CHECK_INT(fr_batcher_run(s, &q, 1, alone[t], &retry), 0);
        CHECK(retry == 0);
        double nn = 0;
        for (int k = 0; k < DIM; k++) nn += (double)alone[t][k] * alone[t][k];
        CHECK_NEAR(sqrt(nn), 1.0, 1e-4);
    }
    fr_batcher_stats_get(s, &st1);
    CHECK_INT(st1.requests - st0.requests, N_TEXTS);
    CHECK_INT(st1.batches - st0.batches, N_TEXTS);
    CHECK_INT(st1.sequences - st0.sequences, N_TEXTS);
    uint64_t tok = 0;
    for (int t = 0; t < N_TEXTS; t++) tok += n_ids[t];
    CHECK_INT(st1.tokens - st0.tokens, tok);
    CHECK_INT(st1.queued, 0);

    /* the first texts are llama.cpp's cases */
    char path[1024];
    snprintf(path, sizeof path, "%s/refs/tiny-bert-q8_0.json", harness_testdata());
    json_error_t jerr;
    json_t *ref = json_load_file(path, 0, &jerr);
    CHECK_MSG(ref != NULL, "%s: %s", path, jerr.text);
    json_t *cases = json_object_get(ref, "cases");
    size_t i;
    json_t *c;
    int matched = 0;
    json_array_foreach(cases, i, c) {
        const char *text = json_string_value(json_object_get(c, "text"));
        json_t *emb = json_object_get(c, "embedding"), *tokens = json_object_get(c, "tokens");
        for (int t = 0; t < N_TEXTS; t++) {
            if (!text || strcmp(text, texts[t])) continue;
            matched++;
            CHECK_INT(json_array_size(emb), DIM);
            CHECK_INT(json_array_size(tokens), n_ids[t]);
            float want[DIM] = {0};
            for (int k = 0; k < DIM && k < (int)json_array_size(emb); k++)
                want[k] = (float)json_number_value(json_array_get(emb, (size_t)k));
            double cs = cosine(alone[t], want, DIM);
            printf("llama.cpp reference '%s': cosine %.6f\n", text, cs);
            CHECK_MSG(cs >= 0.999, "'%s': cosine %.6f to llama.cpp's", text, cs);
        }
    }
    CHECK_INT(matched, 4);
    json_decref(ref);
}

/* 8 threads at once, 4 requests each, every thread its own texts; then 8
 * requests queued behind a held compute turn: 2 batches. */
static void test_concurrent(fr_batcher *s, fr_compute *cmp) {
    static req r[8];
    for (int i = 0; i < 8; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].s = s;
        r[i].first = 2 * i;
        r[i].n = 1 + i % 2;          /* one or two texts */
        r[i].repeat = 4;
        for (int32_t k = 0; k < r[i].n; k++) r[i].seqs[k] = seq_of((2 * i + k) % N_TEXTS);
    }
    for (int i = 0; i < 8; i++) pthread_create(&r[i].th, NULL, run_req, &r[i]);
    for (int i = 0; i < 8; i++) pthread_join(r[i].th, NULL);
    for (int i = 0; i < 8; i++) req_check("8 threads at once", &r[i]);

    fr_batcher_stats st0, st1;
    fr_batcher_stats_get(s, &st0);
    fr__compute_acquire(cmp);
    req_start(&r[0], s, 0, 1);
    CHECK(wait_for_ticket(cmp, 1));            /* the batcher holds r[0] in its pass */
    for (int i = 1; i < 8; i++) req_start(&r[i], s, 2 * i, 1);
    CHECK(wait_for_queued(s, 8));
    fr__compute_release(cmp);
    for (int i = 0; i < 8; i++) pthread_join(r[i].th, NULL);
    for (int i = 0; i < 8; i++) req_check("8 queued requests", &r[i]);
    fr_batcher_stats_get(s, &st1);
    printf("8 concurrent requests: %llu batches\n", (unsigned long long)(st1.batches - st0.batches));
    CHECK_INT(st1.requests - st0.requests, 8);
    CHECK_INT(st1.batches - st0.batches, 2);   /* r[0] alone, then the other 7 together */
    CHECK(st1.batches - st0.batches < st1.requests - st0.requests);
}

/* One request of 10 inputs on a batcher of 32 tokens a pass, and on one
 * of 3 sequences a pass. */
static void test_split(fr_model *m, fr_compute *cmp) {
    fr_batcher *s = make(m, cmp, 32, 0, 4);
    if (!s) return;
    CHECK_INT(fr_batcher_max_seq_tokens(s), 32);
    static req r;
    int64_t total = 0;
    for (int i = 0; i < 10; i++) total += (int64_t)n_ids[i];
    CHECK(total > 32);
    req_start(&r, s, 0, 10);
    pthread_join(r.th, NULL);
    req_check("10 inputs, 32 tokens a pass", &r);
    fr_batcher_stats st;
    fr_batcher_stats_get(s, &st);
    printf("10 inputs (%lld tokens) in passes of 32 tokens: %llu batches\n", (long long)total,
           (unsigned long long)st.batches);
    CHECK(st.batches >= (uint64_t)((total + 31) / 32));
    CHECK(st.batches <= 10);
    CHECK_INT(st.requests, 1);
    CHECK_INT(st.sequences, 10);
    CHECK_INT(st.tokens, total);
    /* a sequence of 33 tokens does not fit */
    int32_t many[40];
    for (int k = 0; k < 40; k++) many[k] = ids[1][k % n_ids[1]];
    fr_enc_seq big = {many, 33}, ok = {many, 32};
    float v[DIM];
    CHECK_INT(fr_batcher_run(s, &big, 1, v, NULL), FR_ETOOLONG);
    CHECK_INT(fr_batcher_run(s, &ok, 1, v, NULL), 0);
    fr_batcher_destroy(s);

    s = make(m, cmp, 0, 3, 4);
    if (!s) return;
    req_start(&r, s, 3, 10);
    pthread_join(r.th, NULL);
    req_check("10 inputs, 3 sequences a pass", &r);
    fr_batcher_stats_get(s, &st);
    CHECK_INT(st.batches, 4);
    CHECK_INT(st.sequences, 10);
    fr_batcher_destroy(s);
}

static void test_bad(fr_batcher *s) {
    float v[2 * DIM];
    int32_t max = fr_batcher_max_seq_tokens(s);
    CHECK_INT(max, 512);        /* n_ctx_train of tiny-bert, under 2048 batch tokens */
    int32_t *long_ids = fr_malloc((size_t)(max + 1) * sizeof *long_ids);
    for (int32_t k = 0; long_ids && k <= max; k++) long_ids[k] = ids[2][(size_t)k % n_ids[2]];
    fr_enc_seq q[2] = {seq_of(0), {long_ids, max + 1}};
    CHECK_INT(fr_batcher_run(s, q, 2, v, NULL), FR_ETOOLONG);
    q[1].n = max;
    CHECK_INT(fr_batcher_run(s, q, 2, v, NULL), 0);
    CHECK(cosine(v, alone[0], DIM) >= 0.99999);
    fr_free(long_ids);

    double retry = 7;
    CHECK_INT(fr_batcher_run(s, q, 0, v, &retry), FR_EINVAL);
    CHECK(retry == 0);
    CHECK_INT(fr_batcher_run(s, NULL, 1, v, NULL), FR_EINVAL);
    fr_enc_seq empty = {ids[0], 0};
    CHECK_INT(fr_batcher_run(s, &empty, 1, v, NULL), FR_EINVAL);
    fr_enc_seq none = {NULL, 3};
    CHECK_INT(fr_batcher_run(s, &none, 1, v, NULL), FR_EINVAL);
    int32_t n_vocab = fr_model_hparams(fr_batcher_model(s))->n_vocab;
    int32_t bad_hi[3] = {101, n_vocab, 102}, bad_lo[3] = {101, -1, 102}, edge[3] = {101, n_vocab - 1, 102};
    fr_enc_seq hi = {bad_hi, 3}, lo = {bad_lo, 3}, ed = {edge, 3};
    CHECK_INT(fr_batcher_run(s, &hi, 1, v, NULL), FR_EINVAL);
    CHECK(strstr(fr_errdetail(), "out of range") != NULL);
    CHECK_INT(fr_batcher_run(s, &lo, 1, v, NULL), FR_EINVAL);
    CHECK_INT(fr_batcher_run(s, &ed, 1, v, NULL), 0);
    fr_enc_seq mixed[2] = {seq_of(1), hi};   /* one bad sequence refuses the request */
    CHECK_INT(fr_batcher_run(s, mixed, 2, v, NULL), FR_EINVAL);
    fr_batcher_stats st;
    fr_batcher_stats_get(s, &st);
    CHECK_INT(st.queued, 0);
    CHECK_INT(st.rejected, 0);  /* refused inputs are not "busy" */
}

static void *destroy_thread(void *arg) {
    fr_batcher_destroy(arg);
    return NULL;
}

/* max_seqs 1 + n_queue 1: two requests in the batcher, the third is busy. */
static void test_busy_cancel_shutdown(fr_model *m, fr_compute *cmp) {
    static req a, b, c;
    fr_batcher *s = make(m, cmp, 0, 1, 1);
    if (!s) return;
    float v[DIM];
    fr_enc_seq q = seq_of(5);

    /* busy */
    fr__compute_acquire(cmp);
    req_start(&a, s, 0, 1);
    CHECK(wait_for_ticket(cmp, 1));
    req_start(&b, s, 1, 1);
    CHECK(wait_for_queued(s, 2));
    double retry = 0;
    CHECK_INT(fr_batcher_run(s, &q, 1, v, &retry), FR_EBUSY);
    CHECK_MSG(retry >= 1 && retry <= 60, "retry_after %g", retry);
    CHECK_INT(fr_batcher_run(s, &q, 1, v, NULL), FR_EBUSY);
    fr_batcher_stats st;
    fr_batcher_stats_get(s, &st);
    CHECK_INT(st.rejected, 2);
    CHECK_INT(st.queued, 2);
    fr__compute_release(cmp);
    pthread_join(a.th, NULL);
    pthread_join(b.th, NULL);
    req_check("busy: the request in the pass", &a);
    req_check("busy: the queued request", &b);
    CHECK_INT(fr_batcher_run(s, &q, 1, v, &retry), 0);   /* room again */
    CHECK(cosine(v, alone[5], DIM) >= 0.99999);

    /* cancel_all: the waiting request fails, the one in the pass finishes */
    fr__compute_acquire(cmp);
    req_start(&a, s, 2, 1);
    CHECK(wait_for_ticket(cmp, 1));
    req_start(&b, s, 3, 1);
    CHECK(wait_for_queued(s, 2));
    fr_batcher_cancel_all(s);
    pthread_join(b.th, NULL);
    CHECK_INT(b.rc, FR_ESHUTDOWN);
    fr_batcher_stats_get(s, &st);
    CHECK_INT(st.queued, 1);
    req_start(&c, s, 4, 1);                 /* still serving: queues behind a */
    CHECK(wait_for_queued(s, 2));
    fr__compute_release(cmp);
    pthread_join(a.th, NULL);
    pthread_join(c.th, NULL);
    req_check("cancel_all: the request in the pass", &a);
    req_check("cancel_all: a request after it", &c);

    /* destroy with waiters */
    fr__compute_acquire(cmp);
    req_start(&a, s, 6, 1);
    CHECK(wait_for_ticket(cmp, 1));
    req_start(&b, s, 7, 1);
    CHECK(wait_for_queued(s, 2));
    pthread_t killer;
    pthread_create(&killer, NULL, destroy_thread, s);
    /* the batcher is full, so a submit is FR_EBUSY until destroy has
     * marked it stopping (s lives until the batcher thread is joined,
     * which waits for the turn the test holds) */
    int rc = FR_EBUSY;
    for (int i = 0; i < 20000 && rc == FR_EBUSY; i++) {
        rc = fr_batcher_run(s, &q, 1, v, NULL);
        if (rc == FR_EBUSY) usleep(100);
    }
    CHECK_INT(rc, FR_ESHUTDOWN);
    fr__compute_release(cmp);
    pthread_join(killer, NULL);
    pthread_join(a.th, NULL);
    pthread_join(b.th, NULL);
    req_check("destroy: the request in the pass finishes", &a);
    CHECK_INT(b.rc, FR_ESHUTDOWN);
}

int main(void) {
    size_t mem0 = fr_mem_in_use();
    char path[1024];
    fr_model *bert = NULL, *llama = NULL;
    snprintf(path, sizeof path, "%s/models/tiny-bert-q8_0.gguf", harness_testdata());
    CHECK_INT(fr_model_open(path, &bert), 0);
    snprintf(path, sizeof path, "%s/models/tiny-llama-q8_0.gguf", harness_testdata());
    CHECK_INT(fr_model_open(path, &llama), 0);
    fr_compute *cmp = NULL;
    CHECK_INT(fr_compute_create(2, &cmp), 0);
    if (bert && llama && cmp) {
        fr_batcher_config cfg = {.n_queue = 16};
        fr_batcher *s = NULL;
        CHECK_INT(fr_batcher_create(llama, cmp, &cfg, &s), FR_EUNSUPP);
        CHECK(s == NULL);
        CHECK_INT(fr_batcher_estimate_bytes(llama, &cfg, 2), SIZE_MAX);
        for (int t = 0; t < N_TEXTS; t++)
            CHECK_INT(fr_enc_tokenize(bert, texts[t], strlen(texts[t]), 0, &ids[t], &n_ids[t], NULL), 0);
        size_t est = fr_batcher_estimate_bytes(bert, &cfg, 2);
        s = make(bert, cmp, 0, 0, 16);
        if (s) {
            CHECK_MSG(fr_batcher_bytes(s) <= est, "bytes %zu, estimate %zu", fr_batcher_bytes(s), est);
            CHECK_INT(fr_batcher_n_out(s), DIM);
            CHECK_INT(fr_batcher_pooling(s), FR_POOLING_MEAN);
            CHECK(fr_batcher_model(s) == bert);
            test_alone(s);
            test_concurrent(s, cmp);
            test_bad(s);
            fr_batcher_destroy(s);
        }
        test_split(bert, cmp);
        test_busy_cancel_shutdown(bert, cmp);
        for (int t = 0; t < N_TEXTS; t++) fr_free(ids[t]);
    }
    fr_compute_destroy(cmp);
    fr_model_close(bert);
    fr_model_close(llama);
    CHECK_INT(fr_mem_in_use(), mem0);
    return harness_done();
}
