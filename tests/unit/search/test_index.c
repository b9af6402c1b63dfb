/*
 * test_index.c — the document index (search.h) on a fake provider and on
 * tiny-bert:
 *
 * - fusion (fr__search_fuse) against hand-computed RRF and linear values;
 * - the vector leg returns exactly the top k of a brute-force float32
 *   reference computed here: random vectors ("rand-D": a PRNG seeded by
 *   the text's hash) for several collection sizes and dims 384, 37, 65,
 *   with the int8 cache and with a cache too small (the SQLite scan); and
 *   tiny-bert embeddings through fr_enc_*;
 * - the BM25 leg equals FTS5's own `bm25()` order, run here on the file;
 * - hybrid RRF / linear scores equal the formula on the legs' ranks;
 * - group_by_document, filters (both legs, several keys), the common-term
 *   cut, replace / unchanged / delete / dedup of identical chunks;
 * - bad input gives the documented error, names the field, and leaves
 *   the index as it was (fr_index_check and the counts);
 * - a search thread during an ingest sees whole documents only; reopening
 *   keeps everything; a second fr_index on the same directory (another
 *   process's view) sees the writes of the first; fr_index_check finds a
 *   planted inconsistency.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/err.h"
#include "base/mem.h"
#include "frugal/engine.h"
#include "frugal/kernels.h"
#include "harness.h"
#include "search/index_int.h"
#include "search/search.h"
#include "search/vscan.h"

/* ---- the fake provider ----
 *
 *   fake-D    EMBED, dim D: Σ over the text's words (lowercased, letters
 *             and digits) of a unit-ish PRNG vector seeded by the word, so
 *             texts sharing words are near; tokens = words
 *   rand-D    EMBED, dim D: one PRNG vector seeded by the whole text
 *   rerank    RERANK: the count of query words in the document, minus
 *             a thousandth of the document's length in words
 */

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static uint64_t xs(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static float unif(uint64_t *s) { return (float)((xs(s) >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1; }

typedef struct fake {
    int kind;                       /* 0 fake, 1 rand, 2 rerank */
    int32_t dim;
} fake;

static atomic_int embed_calls, embed_texts;

static int fake_count(void *obj, const char *text, size_t len, int32_t *n) {
    int32_t c = 0;
    bool in = false;
    for (size_t i = 0; i < len; i++) {
        bool b = text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r';
        if (!b && !in) c++;
        in = !b;
    }
    *n = c;
    return 0;
}

static void word_vec(const char *w, size_t n, int32_t dim, float *acc) {
    char low[64];
    size_t k = 0;
    for (size_t i = 0; i < n && k < sizeof low; i++) {
        char ch = w[i];
        if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) low[k++] = ch;
    }
    if (!k) return;
    uint64_t s = fnv(low, k) | 1;
    for (int32_t d = 0; d < dim; d++) acc[d] += unif(&s);
}

static void fake_vec(int kind, int32_t dim, const char *t, size_t len, float *out) {
    memset(out, 0, (size_t)dim * sizeof *out);
    if (kind == 1) {
        uint64_t s = fnv(t, len) | 1;
        for (int32_t d = 0; d < dim; d++) out[d] = unif(&s);
        return;
    }
    size_t i = 0;
    while (i < len) {
        while (i < len && (t[i] == ' ' || t[i] == '\n')) i++;
        size_t st = i;
        while (i < len && t[i] != ' ' && t[i] != '\n') i++;
        if (i > st) word_vec(t + st, i - st, dim, out);
    }
}

static int fake_embed(void *obj, const char *const *texts, const size_t *lens, int32_t n, float *out) {
    fake *f = obj;
    atomic_fetch_add(&embed_calls, 1);
    atomic_fetch_add(&embed_texts, n);
    for (int32_t i = 0; i < n; i++) fake_vec(f->kind, f->dim, texts[i], lens[i], out + (size_t)i * f->dim);
    return 0;
}

static bool has_word(const char *doc, size_t dl, const char *w, size_t wl) {
    for (size_t i = 0; i + wl <= dl; i++) {
        if ((i == 0 || doc[i - 1] == ' ') && !strncmp(doc + i, w, wl) &&
            (i + wl == dl || doc[i + wl] == ' ' || doc[i + wl] == '.'))
            return true;
    }
    return false;
}

static int fake_rerank(void *obj, const char *q, size_t ql, const char *const *docs, const size_t *lens,
                       int32_t n, float *scores) {
    for (int32_t i = 0; i < n; i++) {
        float s = 0;
        size_t a = 0;
        while (a < ql) {
            while (a < ql && q[a] == ' ') a++;
            size_t b = a;
            while (b < ql && q[b] != ' ') b++;
            if (b > a && has_word(docs[i], lens[i], q + a, b - a)) s += 1;
            a = b;
        }
        int32_t words;
        fake_count(NULL, docs[i], lens[i], &words);
        scores[i] = s - 0.001f * (float)words;
    }
    return 0;
}

static int fake_acquire(void *ud, const char *name, int use, fr_search_model *out) {
    memset(out, 0, sizeof *out);
    int kind, dim = 0;
    if (!strncmp(name, "fake-", 5)) kind = 0, dim = atoi(name + 5);
    else if (!strncmp(name, "rand-", 5)) kind = 1, dim = atoi(name + 5);
    else if (!strcmp(name, "rerank")) kind = 2;
    else return fr_errf(FR_ENOENT, "model '%s' not found", name);
    if ((kind == 2) != (use == FR_SEARCH_USE_RERANK))
        return fr_errf(FR_EUNSUPP, "model '%s' cannot do that", name);
    fake *f = fr_malloc(sizeof *f);
    if (!f) return fr_errf(FR_ENOMEM, "no memory for model '%s'", name);
    f->kind = kind;
    f->dim = dim;
    out->obj = f;
    out->dim = dim;
    out->max_tokens = 512;
    out->count_tokens = fake_count;
    out->embed = fake_embed;
    out->rerank = fake_rerank;
    return 0;
}

static void fake_release(void *ud, fr_search_model *m) { fr_free(m->obj); }

static const fr_search_models FAKE = {NULL, fake_acquire, fake_release};

/* ---- helpers ---- */

static char root[256];

static void make_root(void) {
    snprintf(root, sizeof root, "/tmp/frugal-test-index-XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        exit(1);
    }
}

static void rm_root(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", root);
}

static fr_index *open_ix(const char *sub, size_t cache) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", root, sub);
    fr_index_config cfg = {dir, &FAKE, cache, 0, 0, false};
    fr_index *ix = NULL;
    int rc = fr_index_open(&cfg, &ix);
    CHECK_MSG(rc == 0, "open %s: %s %s", dir, fr_errname(rc), fr_errdetail());
    return ix;
}

static void mkcoll(fr_index *ix, const char *name, const char *model, int32_t cs, int32_t ov,
                   bool stem) {
    fr_collection_params p = {name, model, cs, ov, stem};
    int rc = fr_index_collection_create(ix, &p, NULL);
    CHECK_MSG(rc == 0, "create %s: %s %s", name, fr_errname(rc), fr_errdetail());
}

static int add1(fr_index *ix, const char *coll, const char *id, const char *text, const char *meta,
                fr_add_result *res) {
    fr_doc_in d = {id, text, strlen(text), meta};
    fr_add_result tmp;
    int rc = fr_index_add(ix, coll, NULL, &d, 1, res ? res : &tmp, NULL);
    CHECK_MSG(rc == 0, "add %s: %s %s", id, fr_errname(rc), fr_errdetail());
    return rc;
}

static fr_search_result *search(fr_index *ix, const char *coll, const char *q, int mode, int top_k,
                                void (*tweak)(fr_search_params *, void *), void *ud) {
    fr_search_params p;
    fr_search_params_init(&p);
    p.collection = coll;
    p.query = q;
    p.mode = mode;
    p.top_k = top_k;
    if (tweak) tweak(&p, ud);
    fr_search_result *r = NULL;
    int rc = fr_index_search(ix, &p, &r);
    CHECK_MSG(rc == 0, "search '%s' in %s: %s %s", q, coll, fr_errname(rc), fr_errdetail());
    return r;
}

static void check_ok(fr_index *ix, const char *coll) {
    fr_index_report r;
    int rc = fr_index_check(ix, coll, &r);
    CHECK_INT(rc, 0);
    CHECK_MSG(r.problems == 0, "check %s: %lld problems: %s", coll ? coll : "(all)",
              (long long)r.problems, r.first);
}

static int64_t coll_id(fr_index *ix, const char *name) {
    ix_conn *c;
    fr__ix_conn_get(ix, &c);
    ix_coll co;
    int rc = fr__ix_coll_find(c, name, &co);
    fr__ix_conn_put(ix, c);
    return rc ? -1 : co.id;
}

static sqlite3 *raw_db(const char *sub) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s/frugal.db", root, sub);
    sqlite3 *db = NULL;
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* ---- fusion on made-up rankings ---- */

static void test_fuse(void) {
    /* bm25: chunks 10, 20, 30 with scores (-bm25) 5, 3, 1
     * vector: chunks 20, 40 with cosines 0.9, 0.5 */
    fr_fuse_item b[] = {{10, 1, 5}, {20, 2, 3}, {30, 3, 1}};
    fr_fuse_item v[] = {{20, 2, 0.9}, {40, 4, 0.5}};
    fr_fused *f;
    size_t n;
    CHECK_INT(fr__search_fuse(FR_FUSION_RRF, 60, 0.5, 0.5, b, 3, v, 2, &f, &n), 0);
    CHECK_INT(n, 4);
    /* 20: 1/62 + 1/61; 10: 1/61; 40: 1/62; 30: 1/63 */
    int64_t want[] = {20, 10, 40, 30};
    double ws[] = {1.0 / 62 + 1.0 / 61, 1.0 / 61, 1.0 / 62, 1.0 / 63};
    for (size_t i = 0; i < 4 && i < n; i++) {
        CHECK_INT(f[i].chunk_id, want[i]);
        CHECK_NEAR(f[i].score, ws[i], 1e-15);
    }
    CHECK_INT(f[0].rank_bm25, 2);
    CHECK_INT(f[0].rank_vector, 1);
    CHECK_INT(f[2].rank_bm25, 0);
    CHECK_INT(f[2].rank_vector, 2);
    fr_free(f);

    /* linear, w 0.3 / 0.7: bm25 norm (s-1)/4: 10→1, 20→0.5, 30→0;
     * vector norm (s-0.5)/0.4: 20→1, 40→0.
     * 10: 0.3; 20: 0.15 + 0.7 = 0.85; 30: 0; 40: 0 (missing legs give 0) */
    CHECK_INT(fr__search_fuse(FR_FUSION_LINEAR, 60, 0.3, 0.7, b, 3, v, 2, &f, &n), 0);
    CHECK_INT(n, 4);
    CHECK_INT(f[0].chunk_id, 20);
    CHECK_NEAR(f[0].score, 0.85, 1e-12);
    CHECK_INT(f[1].chunk_id, 10);
    CHECK_NEAR(f[1].score, 0.3, 1e-12);
    /* 30 and 40 tie at 0: the better rank first (30 is bm25 rank 3, 40 vector rank 2) */
    CHECK_INT(f[2].chunk_id, 40);
    CHECK_INT(f[3].chunk_id, 30);
    CHECK_NEAR(f[2].score, 0, 1e-15);
    fr_free(f);

    /* a leg of one (max == min): normalised to 1 */
    CHECK_INT(fr__search_fuse(FR_FUSION_LINEAR, 60, 0.5, 0.5, b, 1, NULL, 0, &f, &n), 0);
    CHECK_INT(n, 1);
    CHECK_NEAR(f[0].score, 0.5, 1e-15);
    fr_free(f);

    /* RRF with k = 0 and only the vector leg */
    CHECK_INT(fr__search_fuse(FR_FUSION_RRF, 0, 0.5, 0.5, NULL, 0, v, 2, &f, &n), 0);
    CHECK_INT(n, 2);
    CHECK_NEAR(f[0].score, 1.0, 1e-15);
    CHECK_NEAR(f[1].score, 0.5, 1e-15);
    fr_free(f);

    CHECK_INT(fr__search_fuse(FR_FUSION_RRF, 60, 0.5, 0.5, NULL, 0, NULL, 0, &f, &n), 0);
    CHECK_INT(n, 0);
    CHECK(f == NULL);
}

/* ---- vector exactness: random vectors ---- */

typedef struct refhit {
    int idx;
    double s;
} refhit;

static int by_ref(const void *a, const void *b) {
    const refhit *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return x->idx - y->idx;
}

static void unit(float *v, int32_t dim) {
    double ss = 0;
    for (int32_t i = 0; i < dim; i++) ss += (double)v[i] * v[i];
    double inv = 1 / sqrt(ss);
    for (int32_t i = 0; i < dim; i++) v[i] = (float)(v[i] * inv);
}

static void set_candidates(fr_search_params *p, void *ud) { p->candidates = *(int *)ud; }

static void test_vector_random(void) {
    static const int32_t dims[] = {384, 37, 65};
    static const int sizes[] = {1, 9, 257, 1500};
    char sub[64], text[64], coll[32];
    for (size_t di = 0; di < 3; di++) {
        int32_t dim = dims[di];
        for (int cached = 0; cached < 2; cached++) {
            snprintf(sub, sizeof sub, "vec-%d-%d", (int)dim, cached);
            fr_index *ix = open_ix(sub, cached ? 0 : 1);   /* 1 byte: nothing fits */
            if (!ix) return;
            char model[32];
            snprintf(model, sizeof model, "rand-%d", (int)dim);
            for (size_t si = 0; si < 4; si++) {
                int n = sizes[si];
                if (dim == 384 && n > 300 && !cached) n = 600;
                snprintf(coll, sizeof coll, "c%d", n);
                mkcoll(ix, coll, model, 16, 0, false);
                fr_doc_in *docs = fr_calloc((size_t)n, sizeof *docs);
                char (*texts)[24] = fr_malloc((size_t)n * 24);
                char (*ids)[16] = fr_malloc((size_t)n * 16);
                for (int i = 0; i < n; i++) {
                    snprintf(texts[i], 24, "doc%05d", i);
                    snprintf(ids[i], 16, "d%d", i);
                    docs[i] = (fr_doc_in){ids[i], texts[i], strlen(texts[i]), NULL};
                }
                size_t done = 0;
                int rc = fr_index_add(ix, coll, model, docs, (size_t)n, NULL, &done);
                CHECK_MSG(rc == 0, "add %d: %s", n, fr_errdetail());
                CHECK_INT(done, n);
                /* the reference: every vector, unit, in double */
                float *vecs = fr_malloc((size_t)n * dim * sizeof(float));
                for (int i = 0; i < n; i++) {
                    fake_vec(1, dim, texts[i], strlen(texts[i]), vecs + (size_t)i * dim);
                    unit(vecs + (size_t)i * dim, dim);
                }
                refhit *ref = fr_malloc((size_t)n * sizeof *ref);
                for (int qi = 0; qi < 5; qi++) {
                    snprintf(text, sizeof text, "query %d", qi);
                    float q[384];
                    fake_vec(1, dim, text, strlen(text), q);
                    unit(q, dim);
                    for (int i = 0; i < n; i++) {
                        ref[i].idx = i;
                        ref[i].s = fr__vscan_dot_f32(q, vecs + (size_t)i * dim, dim);
                    }
                    qsort(ref, (size_t)n, sizeof *ref, by_ref);
                    int ks[] = {1, 10, 50};
                    for (int kk = 0; kk < 3; kk++) {
                        int k = ks[kk];
                        int cand = k;
                        fr_search_result *r =
                            search(ix, coll, text, FR_SEARCH_VECTOR, k, set_candidates, &cand);
                        if (!r) continue;
                        int want = k < n ? k : n;
                        CHECK_MSG((int)r->n == want, "dim %d n %d k %d: %zu hits, want %d",
                                  (int)dim, n, k, r->n, want);
                        for (int i = 0; i < want && i < (int)r->n; i++) {
                            CHECK_MSG(!strcmp(r->hits[i].text, texts[ref[i].idx]),
                                      "dim %d n %d k %d cached %d: hit %d is %s, want %s", (int)dim,
                                      n, k, cached, i, r->hits[i].text, texts[ref[i].idx]);
                            CHECK_NEAR(r->hits[i].vector, ref[i].s, 1e-6);
                            CHECK_NEAR(r->hits[i].score, ref[i].s, 1e-6);
                            CHECK(r->hits[i].has_vector && !r->hits[i].has_bm25);
                        }
                        fr_search_result_free(r);
                    }
                }
                fr_collection_info info;
                CHECK_INT(fr_index_collection_get(ix, coll, &info), 0);
                CHECK_INT(info.vectors, n);
                if (cached) CHECK(info.cached_bytes >= (int64_t)n * (int64_t)(fr__vscan_pad(dim) + 16));
                else CHECK_INT(info.cached_bytes, 0);
                fr_free(ref);
                fr_free(vecs);
                fr_free(docs);
                fr_free(texts);
                fr_free(ids);
            }
            check_ok(ix, NULL);
            fr_index_close(ix);
        }
    }
}

/* Near-identical vectors (texts sharing all but one or two words: the
 * int8 scores of many candidates lie within the error bound of each
 * other, so the exact rescoring has work to do), with and without a
 * filter, against the brute-force reference. */
static void filter_even(fr_search_params *p, void *ud) {
    p->candidates = *(int *)ud;
    p->filter = "{\"even\": true}";
}

#define SHARED                                                                              \
    "shared common words of every text here and many more that make all the vectors close "  \
    "to each other so that int8 scores cannot tell them apart without the exact rescoring"

static void test_vector_clustered(void) {
    static const int32_t dims[] = {37, 384};
    for (size_t di = 0; di < 2; di++) {
        int32_t dim = dims[di];
        char sub[32], model[32];
        snprintf(sub, sizeof sub, "clu-%d", (int)dim);
        snprintf(model, sizeof model, "fake-%d", (int)dim);
        fr_index *ix = open_ix(sub, di == 0 ? 1 : 0);      /* 37: scanned from SQLite */
        if (!ix) return;
        mkcoll(ix, "c", model, 64, 0, false);   /* one chunk per text */
        enum { N = 800 };
        static char texts[N][320];
        float *vecs = fr_malloc((size_t)N * dim * sizeof(float));
        for (int i = 0; i < N; i++) {
            snprintf(texts[i], sizeof texts[i],
                     "%s u%d v%d", SHARED, i, i % 17);
            char id[16], meta[32];
            snprintf(id, sizeof id, "d%d", i);
            snprintf(meta, sizeof meta, "{\"even\": %s}", i % 2 ? "false" : "true");
            add1(ix, "c", id, texts[i], meta, NULL);
            fake_vec(0, dim, texts[i], strlen(texts[i]), vecs + (size_t)i * dim);
            unit(vecs + (size_t)i * dim, dim);
        }
        refhit *ref = fr_malloc(N * sizeof *ref);
        size_t total_exact = 0;
        for (int qi = 0; qi < 6; qi++) {
            char q[320];
            snprintf(q, sizeof q, "%s u%d v3", SHARED, qi * 101);
            float qv[384];
            fake_vec(0, dim, q, strlen(q), qv);
            unit(qv, dim);
            for (int filt = 0; filt < 2; filt++) {
                int n = 0;
                for (int i = 0; i < N; i++) {
                    if (filt && i % 2) continue;
                    ref[n].idx = i;
                    ref[n].s = fr__vscan_dot_f32(qv, vecs + (size_t)i * dim, dim);
                    n++;
                }
                qsort(ref, (size_t)n, sizeof *ref, by_ref);
                int k = 20;
                fr_search_result *r = search(ix, "c", q, FR_SEARCH_VECTOR, k,
                                             filt ? filter_even : set_candidates, &k);
                if (!r) continue;
                CHECK_INT(r->n, k);
                total_exact += r->vector_exact;
                for (int i = 0; i < k && i < (int)r->n; i++) {
                    CHECK_NEAR(r->hits[i].vector, ref[i].s, 1e-6);
                    /* equal scores may come in either order: compare the text
                     * when the next reference score differs */
                    if ((i + 1 >= n || ref[i + 1].s < ref[i].s - 1e-7) &&
                        (i == 0 || ref[i - 1].s > ref[i].s + 1e-7))
                        CHECK_MSG(!strcmp(r->hits[i].text, texts[ref[i].idx]),
                                  "clustered dim %d filt %d: hit %d %s, want %s", (int)dim, filt,
                                  i, r->hits[i].text, texts[ref[i].idx]);
                }
                fr_search_result_free(r);
            }
        }
        printf("clustered dim %d: %zu float32 rescorings for 12 searches of k = 20\n", (int)dim,
               total_exact);
        fr_free(ref);
        fr_free(vecs);
        check_ok(ix, "c");
        fr_index_close(ix);
    }
}

/* ---- tiny-bert ---- */

typedef struct bert {
    fr_model *m;
    fr_enc *e;
    fr_pool *pool;
    int32_t max_tokens, dim;
    pthread_mutex_t mu;
} bert;

static bert BERT;

static int bert_count(void *obj, const char *text, size_t len, int32_t *n) {
    bert *b = obj;
    int32_t *ids;
    size_t ni;
    int rc = fr_enc_tokenize(b->m, text, len, 1 << 20, &ids, &ni, NULL);
    if (rc) return rc;
    fr_free(ids);
    *n = ni >= 2 ? (int32_t)ni - 2 : 0;
    return 0;
}

static int bert_embed(void *obj, const char *const *texts, const size_t *lens, int32_t n, float *out) {
    bert *b = obj;
    int rc = 0;
    pthread_mutex_lock(&b->mu);
    for (int32_t i = 0; i < n && !rc; i++) {
        int32_t *ids;
        size_t ni;
        if ((rc = fr_enc_tokenize(b->m, texts[i], lens[i], b->max_tokens, &ids, &ni, NULL))) break;
        fr_enc_seq s = {ids, (int32_t)ni};
        const float *o;
        rc = fr_enc_encode(b->e, &s, 1, true, &o);
        if (!rc) memcpy(out + (size_t)i * b->dim, o, (size_t)b->dim * sizeof(float));
        fr_free(ids);
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

static int bert_acquire(void *ud, const char *name, int use, fr_search_model *out) {
    memset(out, 0, sizeof *out);
    if (strcmp(name, "tiny-bert")) return fr_errf(FR_ENOENT, "model '%s' not found", name);
    if (use != FR_SEARCH_USE_EMBED) return fr_errf(FR_EUNSUPP, "tiny-bert embeds only");
    out->obj = &BERT;
    out->dim = BERT.dim;
    out->max_tokens = BERT.max_tokens;
    out->count_tokens = bert_count;
    out->embed = bert_embed;
    return 0;
}

static void bert_release(void *ud, fr_search_model *m) {}

static const char *SENTENCES[] = {
    "The cat sat on the warm mat by the fire.",
    "Dogs love to run in the park on sunny days.",
    "Quantum computers use qubits to perform calculations.",
    "The stock market fell sharply after the announcement.",
    "Fresh bread is baked every morning at the corner bakery.",
    "Volcanoes erupt when magma rises to the surface.",
    "The orchestra played a beautiful symphony last night.",
    "Rainforests are home to millions of species of plants.",
    "She learned to play the violin when she was five.",
    "The new phone has a faster processor and a better camera.",
    "Astronauts trained for months before the mission to the moon.",
    "A good cup of coffee starts with freshly ground beans.",
    "The river flooded the valley after days of heavy rain.",
    "Chess players study openings and endgames for years.",
    "The museum opened a new exhibit on ancient Egypt.",
    "Electric cars are becoming cheaper every year.",
    "The chef prepared a delicious pasta with tomato sauce.",
    "Birds migrate south for the winter to find food.",
    "The library lends books, films and music for free.",
    "Mountain climbers carry oxygen at very high altitudes.",
    "The kitten chased a ball of yarn across the floor.",
    "Solar panels turn sunlight into electricity.",
    "The football team won the championship in overtime.",
    "Doctors recommend eight hours of sleep each night.",
};

static void test_tinybert(void) {
    char path[600];
    snprintf(path, sizeof path, "%s/models/tiny-bert-f16.gguf", harness_testdata());
    if (access(path, R_OK) != 0) {
        printf("skip tiny-bert: %s missing\n", path);
        return;
    }
    CHECK_INT(fr_model_open(path, &BERT.m), 0);
    if (!BERT.m) return;
    CHECK_INT(fr_pool_create(1, &BERT.pool), 0);
    CHECK_INT(fr_enc_create(BERT.m, 0, 1, FR_POOLING_MODEL, BERT.pool, &BERT.e), 0);
    if (!BERT.e) return;
    BERT.max_tokens = fr_enc_max_tokens(BERT.e);
    BERT.dim = fr_enc_n_out(BERT.e);
    pthread_mutex_init(&BERT.mu, NULL);
    fr_search_models prov = {NULL, bert_acquire, bert_release};
    char dir[512];
    snprintf(dir, sizeof dir, "%s/bert", root);
    fr_index_config cfg = {dir, &prov, 0, 0, 0, false};
    fr_index *ix = NULL;
    CHECK_INT(fr_index_open(&cfg, &ix), 0);
    if (!ix) return;
    fr_collection_params cp = {"b", "tiny-bert", 0, -1, false};
    fr_collection_info info;
    int rc = fr_index_collection_create(ix, &cp, &info);
    CHECK_MSG(rc == 0, "create: %s", fr_errdetail());
    CHECK_INT(info.dim, BERT.dim);
    size_t ns = sizeof SENTENCES / sizeof SENTENCES[0];
    fr_doc_in docs[64];
    char ids[64][16];
    for (size_t i = 0; i < ns; i++) {
        snprintf(ids[i], 16, "s%zu", i);
        docs[i] = (fr_doc_in){ids[i], SENTENCES[i], strlen(SENTENCES[i]), NULL};
    }
    CHECK_INT(fr_index_add(ix, "b", "tiny-bert", docs, ns, NULL, NULL), 0);
    /* the reference: each sentence embedded alone, cosine with the query */
    float *vecs = fr_malloc(ns * (size_t)BERT.dim * sizeof(float));
    for (size_t i = 0; i < ns; i++) {
        const char *t = SENTENCES[i];
        size_t l = strlen(t);
        bert_embed(&BERT, &t, &l, 1, vecs + i * BERT.dim);
        unit(vecs + i * BERT.dim, BERT.dim);
    }
    static const char *queries[] = {"a small cat playing", "space travel", "food and cooking",
                                    "weather and water", "music"};
    refhit ref[64];
    for (size_t qi = 0; qi < 5; qi++) {
        float q[4096];
        const char *t = queries[qi];
        size_t l = strlen(t);
        bert_embed(&BERT, &t, &l, 1, q);
        unit(q, BERT.dim);
        for (size_t i = 0; i < ns; i++) {
            ref[i].idx = (int)i;
            ref[i].s = fr__vscan_dot_f32(q, vecs + i * BERT.dim, BERT.dim);
        }
        qsort(ref, ns, sizeof *ref, by_ref);
        int cand = 5;
        fr_search_result *r = search(ix, "b", queries[qi], FR_SEARCH_VECTOR, 5, set_candidates, &cand);
        if (!r) continue;
        CHECK_INT(r->n, 5);
        for (size_t i = 0; i < r->n; i++) {
            CHECK_STR(r->hits[i].document_id, ids[ref[i].idx]);
            CHECK_NEAR(r->hits[i].vector, ref[i].s, 1e-5);
        }
        if (qi == 0) printf("tiny-bert '%s': %s (%.4f)\n", queries[qi], r->hits[0].text,
                            r->hits[0].vector);
        fr_search_result_free(r);
    }
    fr_free(vecs);
    check_ok(ix, "b");
    fr_index_close(ix);
    fr_enc_destroy(BERT.e);
    fr_pool_destroy(BERT.pool);
    fr_model_close(BERT.m);
    pthread_mutex_destroy(&BERT.mu);
}

/* ---- BM25 against FTS5 ---- */

static const char *WORDS[] = {"alpha", "beta",  "gamma", "delta", "epsilon", "zeta",
                              "eta",   "theta", "iota",  "kappa", "lambda",  "mu",
                              "running", "runs", "runner", "café", "naïve", "Résumé"};

static char *gen_text(uint64_t seed, int words) {
    char *t = fr_malloc((size_t)words * 12 + 1);
    size_t k = 0;
    uint64_t s = seed | 1;
    for (int i = 0; i < words; i++) {
        const char *w = WORDS[xs(&s) % (sizeof WORDS / sizeof WORDS[0])];
        if (i) t[k++] = (xs(&s) % 9 == 0) ? '\n' : ' ';
        size_t l = strlen(w);
        memcpy(t + k, w, l);
        k += l;
        if (xs(&s) % 11 == 0) t[k++] = '.';
    }
    t[k] = 0;
    return t;
}

static void big_candidates(fr_search_params *p, void *ud) {
    p->candidates = 10000;
    p->common_min = 1000000;
}

static void test_bm25_fts5(void) {
    fr_index *ix = open_ix("bm25", 0);
    if (!ix) return;
    for (int stem = 0; stem < 2; stem++) {
        const char *coll = stem ? "stem" : "plain";
        mkcoll(ix, coll, "fake-16", 16, 4, stem);
        for (int d = 0; d < 40; d++) {
            char id[16];
            snprintf(id, sizeof id, "d%d", d);
            char *t = gen_text((uint64_t)d * 7919 + 1, 10 + d * 3);
            add1(ix, coll, id, t, NULL, NULL);
            fr_free(t);
        }
        check_ok(ix, coll);
        int64_t cid = coll_id(ix, coll);
        sqlite3 *db = raw_db("bm25");
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT rowid, bm25(fts_%lld) FROM fts_%lld WHERE fts_%lld MATCH ?"
                 " ORDER BY bm25(fts_%lld), rowid",
                 (long long)cid, (long long)cid, (long long)cid, (long long)cid);
        static const char *queries[][2] = {
            {"alpha", "\"alpha\""},
            {"beta gamma", "\"beta\" OR \"gamma\""},
            {"DELTA \"zeta\" OR", "\"delta\" OR \"zeta\" OR \"or\""},
            {"cafe naive", "\"cafe\" OR \"naive\""},
            {"résumé", "\"resume\""},
            {"run", "\"run\""},
            {"running mu*", "\"running\" OR \"mu\""},
        };
        for (size_t qi = 0; qi < sizeof queries / sizeof queries[0]; qi++) {
            fr_search_result *r = search(ix, coll, queries[qi][0], FR_SEARCH_BM25, 1000,
                                         big_candidates, NULL);
            if (!r) continue;
            sqlite3_stmt *st;
            CHECK_INT(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
            sqlite3_bind_text(st, 1, queries[qi][1], -1, SQLITE_STATIC);
            size_t i = 0;
            bool same = true;
            while (sqlite3_step(st) == SQLITE_ROW) {
                int64_t rowid = sqlite3_column_int64(st, 0);
                double b = sqlite3_column_double(st, 1);
                if (i >= r->n || r->hits[i].chunk_id != rowid || r->hits[i].bm25 != b ||
                    r->hits[i].score != -b || r->hits[i].rank_bm25 != (int32_t)(i + 1))
                    same = false;
                i++;
            }
            sqlite3_finalize(st);
            CHECK_MSG(same && i == r->n, "%s '%s': %zu hits, FTS5 %zu, same order %d", coll,
                      queries[qi][0], r->n, i, same);
            if (qi == 5) {
                /* "run" with stemming finds running/runs too */
                if (stem) CHECK(r->n > 0);
            }
            fr_search_result_free(r);
        }
        /* FTS5's own order (no tie-break) gives the same scores */
        sqlite3_close(db);
    }
    fr_index_close(ix);
}

/* ---- hybrid fusion end to end ---- */

static void linear_w(fr_search_params *p, void *ud) {
    p->fusion = FR_FUSION_LINEAR;
    p->w_bm25 = 0.25;
    p->w_vector = 0.75;
    p->candidates = 20;
}

static void cand20(fr_search_params *p, void *ud) { p->candidates = 20; }

static void test_hybrid(void) {
    fr_index *ix = open_ix("hybrid", 0);
    if (!ix) return;
    mkcoll(ix, "h", "fake-32", 16, 0, false);
    for (int d = 0; d < 60; d++) {
        char id[16];
        snprintf(id, sizeof id, "d%d", d);
        char *t = gen_text((uint64_t)d * 104729 + 3, 8 + d % 20);
        add1(ix, "h", id, t, NULL, NULL);
        fr_free(t);
    }
    const char *q = "alpha theta kappa";
    fr_search_result *rb = search(ix, "h", q, FR_SEARCH_BM25, 20, cand20, NULL);
    fr_search_result *rv = search(ix, "h", q, FR_SEARCH_VECTOR, 20, cand20, NULL);
    fr_search_result *rr = search(ix, "h", q, FR_SEARCH_HYBRID, 20, cand20, NULL);
    fr_search_result *rl = search(ix, "h", q, FR_SEARCH_HYBRID, 20, linear_w, NULL);
    if (!rb || !rv || !rr || !rl) return;
    double bmin = INFINITY, bmax = -INFINITY, vmin = INFINITY, vmax = -INFINITY;
    for (size_t i = 0; i < rb->n; i++) {
        bmin = fmin(bmin, -rb->hits[i].bm25);
        bmax = fmax(bmax, -rb->hits[i].bm25);
    }
    for (size_t i = 0; i < rv->n; i++) {
        vmin = fmin(vmin, rv->hits[i].vector);
        vmax = fmax(vmax, rv->hits[i].vector);
    }
    for (int pass = 0; pass < 2; pass++) {
        fr_search_result *r = pass ? rl : rr;
        double prev = INFINITY;
        for (size_t i = 0; i < r->n; i++) {
            fr_search_hit *h = &r->hits[i];
            /* the legs' ranks are those of the single-leg searches */
            int rb_rank = 0, rv_rank = 0;
            for (size_t j = 0; j < rb->n; j++)
                if (rb->hits[j].chunk_id == h->chunk_id) rb_rank = (int)j + 1;
            for (size_t j = 0; j < rv->n; j++)
                if (rv->hits[j].chunk_id == h->chunk_id) rv_rank = (int)j + 1;
            CHECK_INT(h->rank_bm25, rb_rank);
            CHECK_INT(h->rank_vector, rv_rank);
            double want = 0;
            if (!pass) {
                if (rb_rank) want += 1.0 / (60 + rb_rank);
                if (rv_rank) want += 1.0 / (60 + rv_rank);
            } else {
                if (rb_rank) want += 0.25 * (-h->bm25 - bmin) / (bmax - bmin);
                if (rv_rank) want += 0.75 * (h->vector - vmin) / (vmax - vmin);
            }
            CHECK_NEAR(h->score, want, 1e-12);
            CHECK(h->score <= prev);
            prev = h->score;
            CHECK_INT(h->rank_fused, (int)i + 1);
        }
    }
    fr_search_result_free(rb);
    fr_search_result_free(rv);
    fr_search_result_free(rr);
    fr_search_result_free(rl);

    /* rerank: the fake reranker's order */
    fr_search_params p;
    fr_search_params_init(&p);
    p.collection = "h";
    p.query = "alpha theta";
    p.rerank = "rerank";
    p.top_k = 5;
    p.rerank_top_n = 15;
    fr_search_result *r = NULL;
    CHECK_INT(fr_index_search(ix, &p, &r), 0);
    if (r) {
        CHECK_INT(r->n, 5);
        for (size_t i = 0; i < r->n; i++) {
            CHECK(r->hits[i].has_rerank);
            CHECK_INT(r->hits[i].rank_rerank, (int)i + 1);
            CHECK(r->hits[i].rank_fused >= 1 && r->hits[i].rank_fused <= 15);
            float s;
            const char *t = r->hits[i].text;
            size_t l = strlen(t);
            fake_rerank(NULL, p.query, strlen(p.query), &t, &l, 1, &s);
            CHECK_NEAR(r->hits[i].rerank, s, 1e-6);
            CHECK_NEAR(r->hits[i].score, s, 1e-6);
            if (i) CHECK(r->hits[i].rerank <= r->hits[i - 1].rerank);
        }
        fr_search_result_free(r);
    }
    fr_index_close(ix);
}

/* ---- group_by_document and filters ---- */

static void group_on(fr_search_params *p, void *ud) {
    p->group_by_document = true;
    p->candidates = 1000;
}

static void cand1000(fr_search_params *p, void *ud) { p->candidates = 1000; }

static void filter_on(fr_search_params *p, void *ud) {
    p->filter = ud;
    p->candidates = 1000;
}

static void test_group_filter(void) {
    fr_index *ix = open_ix("group", 0);
    if (!ix) return;
    mkcoll(ix, "g", "fake-24", 16, 0, false);
    static const char *langs[] = {"en", "de", "fr"};
    for (int d = 0; d < 30; d++) {
        char id[16], meta[128];
        snprintf(id, sizeof id, "d%d", d);
        snprintf(meta, sizeof meta, "{\"lang\": \"%s\", \"year\": %d, \"ok\": %s, \"n\": null}",
                 langs[d % 3], 2000 + d % 4, d % 2 ? "true" : "false");
        char *t = gen_text((uint64_t)d * 31337 + 5, 60 + d);   /* several chunks */
        add1(ix, "g", id, t, meta, NULL);
        fr_free(t);
    }
    check_ok(ix, "g");
    for (int mode = 0; mode < 3; mode++) {
        fr_search_result *all = search(ix, "g", "beta lambda", mode, 1000, cand1000, NULL);
        fr_search_result *gr = search(ix, "g", "beta lambda", mode, 1000, group_on, NULL);
        if (!all || !gr) return;
        CHECK(gr->n > 1 && gr->n <= 30);
        /* one hit per document, and it is that document's first hit in the full list */
        for (size_t i = 0; i < gr->n; i++) {
            for (size_t j = 0; j < i; j++)
                CHECK(strcmp(gr->hits[i].document_id, gr->hits[j].document_id));
            size_t first = 0;
            while (first < all->n && strcmp(all->hits[first].document_id, gr->hits[i].document_id))
                first++;
            CHECK_MSG(first < all->n && all->hits[first].chunk_id == gr->hits[i].chunk_id,
                      "mode %d: document %s: grouped chunk %lld, best %lld", mode,
                      gr->hits[i].document_id, (long long)gr->hits[i].chunk_id,
                      first < all->n ? (long long)all->hits[first].chunk_id : -1LL);
        }
        /* every document with a hit appears */
        size_t docs = 0;
        for (size_t i = 0; i < all->n; i++) {
            size_t j = 0;
            while (j < i && strcmp(all->hits[j].document_id, all->hits[i].document_id)) j++;
            if (j == i) docs++;
        }
        CHECK_INT(gr->n, docs);
        fr_search_result_free(all);
        fr_search_result_free(gr);
    }
    /* filters, on each leg and fused */
    static const struct {
        const char *f;
        int n_docs;
        const char *lang;
        int year;
        int ok;
    } F[] = {
        {"{\"lang\": \"en\"}", 10, "en", -1, -1},
        {"{\"lang\": \"de\", \"year\": 2001}", 3, "de", 2001, -1},   /* d = 1 mod 12 */
        {"{\"year\": 2002.0}", 7, NULL, 2002, -1},
        {"{\"ok\": true, \"lang\": \"fr\"}", 5, "fr", -1, 1},
        {"{\"n\": null, \"ok\": false}", 15, NULL, -1, 0},
        {"{\"lang\": \"xx\"}", 0, NULL, -1, -1},
        {"{\"missing\": 1}", 0, NULL, -1, -1},
    };
    for (size_t fi = 0; fi < sizeof F / sizeof F[0]; fi++) {
        for (int mode = 0; mode < 3; mode++) {
            fr_search_result *r = search(ix, "g", "beta lambda gamma", mode, 1000, filter_on,
                                         (void *)F[fi].f);
            if (!r) continue;
            int seen[30] = {0}, nd = 0;
            for (size_t i = 0; i < r->n; i++) {
                int d = atoi(r->hits[i].document_id + 1);
                if (!seen[d]++) nd++;
                bool ok = true;
                if (F[fi].lang && strcmp(langs[d % 3], F[fi].lang)) ok = false;
                if (F[fi].year >= 0 && 2000 + d % 4 != F[fi].year) ok = false;
                if (F[fi].ok >= 0 && d % 2 != F[fi].ok) ok = false;
                if (F[fi].n_docs == 0) ok = false;
                CHECK_MSG(ok, "filter %s mode %d: document %s (%s)", F[fi].f, mode,
                          r->hits[i].document_id, r->hits[i].metadata);
            }
            int want = F[fi].n_docs;
            if (mode != FR_SEARCH_BM25)     /* the vector leg reaches every document */
                CHECK_MSG(nd == want, "filter %s mode %d: %d documents, want %d", F[fi].f, mode,
                          nd, want);
            else
                CHECK(nd <= want);
            fr_search_result_free(r);
        }
    }
    fr_index_close(ix);
}

/* ---- the common-term cut ---- */

static void common_cut(fr_search_params *p, void *ud) {
    p->common_share = 0.5;
    p->common_min = 5;
    p->candidates = 1000;
}

static void test_common(void) {
    fr_index *ix = open_ix("common", 0);
    if (!ix) return;
    mkcoll(ix, "c", "fake-8", 16, 0, false);
    for (int d = 0; d < 20; d++) {
        char id[16], text[128];
        snprintf(id, sizeof id, "d%d", d);
        /* "the" in all 20, "often" in 12 (> 10 = 0.5·20), "rare" in 3 (<= 5) */
        snprintf(text, sizeof text, "the word%d %s %s", d, d < 12 ? "often" : "", d < 3 ? "rare" : "");
        add1(ix, "c", id, text, NULL, NULL);
    }
    fr_search_result *r = search(ix, "c", "The often rare", FR_SEARCH_BM25, 100, common_cut, NULL);
    if (r) {
        CHECK_INT(r->n_dropped, 2);
        if (r->n_dropped == 2) {
            CHECK_STR(r->dropped_terms[0], "the");
            CHECK_STR(r->dropped_terms[1], "often");
        }
        CHECK_INT(r->n, 3);         /* only "rare" is searched */
        for (size_t i = 0; i < r->n; i++) CHECK(strstr(r->hits[i].text, "rare") != NULL);
        fr_search_result_free(r);
    }
    /* below common_min nothing is dropped */
    r = search(ix, "c", "the often", FR_SEARCH_BM25, 100, cand1000, NULL);
    if (r) {
        CHECK_INT(r->n_dropped, 0);
        CHECK_INT(r->n, 20);
        fr_search_result_free(r);
    }
    /* all terms dropped: the bm25 leg is empty, hybrid still has vectors */
    r = search(ix, "c", "the", FR_SEARCH_HYBRID, 100, common_cut, NULL);
    if (r) {
        CHECK_INT(r->n_dropped, 1);
        CHECK_INT(r->bm25_candidates, 0);
        CHECK(r->n > 0);
        fr_search_result_free(r);
    }
    fr_index_close(ix);
}

/* ---- replace, unchanged, delete, dedup ---- */

static void counts(fr_index *ix, const char *c, int64_t *docs, int64_t *chunks, int64_t *vecs) {
    fr_collection_info info;
    CHECK_INT(fr_index_collection_get(ix, c, &info), 0);
    *docs = info.documents;
    *chunks = info.chunks;
    *vecs = info.vectors;
}

static void test_lifecycle(void) {
    fr_index *ix = open_ix("life", 0);
    if (!ix) return;
    mkcoll(ix, "l", "fake-16", 16, 0, false);
    int64_t d, c, v;
    fr_add_result res;
    const char *A = "one two three four five six seven eight nine ten eleven twelve thirteen "
                    "fourteen fifteen sixteen. seventeen eighteen nineteen twenty.";
    add1(ix, "l", "a", A, "{\"v\": 1}", &res);
    CHECK_INT(res.status, FR_ADD_ADDED);
    CHECK_INT(res.chunks, 2);
    CHECK_INT(res.embedded, 2);
    CHECK_STR(res.id, "a");
    counts(ix, "l", &d, &c, &v);
    CHECK_INT(d, 1);
    CHECK_INT(c, 2);
    CHECK_INT(v, 2);
    /* unchanged: nothing embedded, nothing written */
    int calls = atomic_load(&embed_calls);
    add1(ix, "l", "a", A, "{ \"v\" : 1 }", &res);   /* same metadata, other spacing */
    CHECK_INT(res.status, FR_ADD_UNCHANGED);
    CHECK_INT(atomic_load(&embed_calls), calls);
    /* other metadata: replaced, vectors reused */
    add1(ix, "l", "a", A, "{\"v\": 2}", &res);
    CHECK_INT(res.status, FR_ADD_REPLACED);
    CHECK_INT(res.embedded, 0);
    CHECK_INT(atomic_load(&embed_calls), calls);
    counts(ix, "l", &d, &c, &v);
    CHECK_INT(d, 1);
    CHECK_INT(c, 2);
    CHECK_INT(v, 2);
    /* the same text with other blanks in another document: shares the vectors */
    char B[512];
    snprintf(B, sizeof B, "  one two\tthree  four five six seven eight nine ten eleven twelve "
                          "thirteen \t fourteen fifteen sixteen.  seventeen eighteen nineteen twenty.");
    add1(ix, "l", "b", B, NULL, &res);
    CHECK_INT(res.status, FR_ADD_ADDED);
    CHECK_INT(res.embedded, 0);
    counts(ix, "l", &d, &c, &v);
    CHECK_INT(d, 2);
    CHECK_INT(c, 4);
    CHECK_INT(v, 2);
    /* a document that repeats a chunk: one vector for both */
    add1(ix, "l", "r", "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi "
                       "omicron pi.\n\nalpha beta gamma delta epsilon zeta eta theta iota kappa "
                       "lambda mu nu xi omicron pi.", NULL, &res);
    CHECK_INT(res.chunks, 2);
    CHECK_INT(res.embedded, 1);
    counts(ix, "l", &d, &c, &v);
    CHECK_INT(v, 3);
    check_ok(ix, "l");
    /* replace a with new text: its old vectors stay (b uses them) */
    add1(ix, "l", "a", "completely different words here", NULL, &res);
    CHECK_INT(res.status, FR_ADD_REPLACED);
    CHECK_INT(res.embedded, 1);
    counts(ix, "l", &d, &c, &v);
    CHECK_INT(d, 3);
    CHECK_INT(c, 5);
    CHECK_INT(v, 4);
    check_ok(ix, "l");
    /* searches see the new text only */
    fr_search_result *r = search(ix, "l", "different", FR_SEARCH_BM25, 10, NULL, NULL);
    if (r) {
        CHECK_INT(r->n, 1);
        if (r->n) CHECK_STR(r->hits[0].document_id, "a");
        if (r->n) CHECK_STR(r->hits[0].metadata, "{}");
        fr_search_result_free(r);
    }
    /* delete b: its vectors go (nothing else uses them) */
    CHECK_INT(fr_index_delete(ix, "l", "b"), 0);
    counts(ix, "l", &d, &c, &v);
    CHECK_INT(d, 2);
    CHECK_INT(c, 3);
    CHECK_INT(v, 2);
    CHECK_INT(fr_index_delete(ix, "l", "b"), FR_ENOENT);
    CHECK_INT(fr_index_delete(ix, "nope", "a"), FR_ENOENT);
    check_ok(ix, "l");
    r = search(ix, "l", "seventeen", FR_SEARCH_HYBRID, 10, NULL, NULL);
    if (r) {
        for (size_t i = 0; i < r->n; i++) CHECK(strstr(r->hits[i].text, "seventeen") == NULL);
        fr_search_result_free(r);
    }
    /* random ids, several documents in one call */
    fr_doc_in docs[3] = {{NULL, "x y z", 5, NULL}, {"", "p q r", 5, NULL}, {"k", "", 0, NULL}};
    fr_add_result rs[3];
    size_t done = 0;
    CHECK_INT(fr_index_add(ix, "l", "fake-16", docs, 3, rs, &done), 0);
    CHECK_INT(done, 3);
    CHECK_INT(strlen(rs[0].id), 32);
    CHECK_INT(strlen(rs[1].id), 32);
    CHECK(strcmp(rs[0].id, rs[1].id));
    CHECK_INT(rs[2].chunks, 0);     /* a blank text has no chunks */
    check_ok(ix, "l");
    /* the collection list and deleting a collection */
    mkcoll(ix, "z2", "fake-8", 16, 0, false);
    fr_collection_info *list;
    size_t n;
    CHECK_INT(fr_index_collection_list(ix, &list, &n), 0);
    CHECK_INT(n, 2);
    if (n == 2) {
        CHECK_STR(list[0].name, "l");
        CHECK_STR(list[1].name, "z2");
        CHECK_INT(list[0].documents, 5);
    }
    fr_free(list);
    CHECK_INT(fr_index_collection_delete(ix, "l"), 0);
    CHECK_INT(fr_index_collection_get(ix, "l", NULL), FR_ENOENT);
    CHECK_INT(fr_index_collection_delete(ix, "l"), FR_ENOENT);
    check_ok(ix, NULL);
    fr_index_close(ix);
}

/* ---- bad input ---- */

typedef struct snap {
    fr_index_report rep;
    int64_t docs, chunks, vecs, gen;
} snap;

static void take(fr_index *ix, snap *s) {
    memset(s, 0, sizeof *s);
    CHECK_INT(fr_index_check(ix, NULL, &s->rep), 0);
    counts(ix, "bad", &s->docs, &s->chunks, &s->vecs);
    ix_conn *c;
    fr__ix_conn_get(ix, &c);
    ix_coll co;
    fr__ix_coll_find(c, "bad", &co);
    fr__ix_conn_put(ix, c);
    s->gen = co.generation;
}

static void same(fr_index *ix, const snap *a, const char *what) {
    snap b;
    take(ix, &b);
    CHECK_MSG(a->rep.documents == b.rep.documents && a->rep.chunks == b.rep.chunks &&
                  a->rep.fts_rows == b.rep.fts_rows && a->rep.vectors == b.rep.vectors &&
                  a->rep.collections == b.rep.collections && b.rep.problems == 0 &&
                  a->gen == b.gen && a->docs == b.docs,
              "%s changed the index", what);
}

typedef struct bad_search {
    const char *what, *field;
    int err;
    void (*set)(fr_search_params *);
} bad_search;

static void s_empty(fr_search_params *p) { p->query = ""; }
static void s_null(fr_search_params *p) { p->query = NULL; }
static void s_topk0(fr_search_params *p) { p->top_k = 0; }
static void s_topkbig(fr_search_params *p) { p->top_k = FR_SEARCH_MAX_TOP_K + 1; }
static void s_cand(fr_search_params *p) { p->candidates = 0; }
static void s_mode(fr_search_params *p) { p->mode = 7; }
static void s_fusion(fr_search_params *p) { p->fusion = 3; }
static void s_rrfk(fr_search_params *p) { p->rrf_k = -1; }
static void s_weights(fr_search_params *p) { p->w_bm25 = -1; }
static void s_weights0(fr_search_params *p) { p->fusion = FR_FUSION_LINEAR; p->w_bm25 = p->w_vector = 0; }
static void s_filter1(fr_search_params *p) { p->filter = "{\"a\": "; }
static void s_filter2(fr_search_params *p) { p->filter = "[1, 2]"; }
static void s_filter3(fr_search_params *p) { p->filter = "{\"a\": [1]}"; }
static void s_filter4(fr_search_params *p) { p->filter = "{\"a\\\"b\": 1}"; }
static void s_filter5(fr_search_params *p) { p->filter = "{\"a\": {\"b\": 1}}"; }
static void s_rtn(fr_search_params *p) { p->rerank_top_n = 0; }
static void s_share(fr_search_params *p) { p->common_share = 0; }
static void s_model(fr_search_params *p) { p->model = "fake-9"; }
static void s_coll(fr_search_params *p) { p->collection = "nope"; }
static void s_collbad(fr_search_params *p) { p->collection = "a/b"; }
static void s_rerank(fr_search_params *p) { p->rerank = "unknown"; }
static void s_rerank2(fr_search_params *p) { p->rerank = "fake-16"; }
static void s_utf8(fr_search_params *p) { p->query = "ab\xff"; }

static void test_bad_input(void) {
    fr_index *ix = open_ix("bad", 0);
    if (!ix) return;
    mkcoll(ix, "bad", "fake-16", 16, 0, false);
    for (int d = 0; d < 5; d++) {
        char id[16];
        snprintf(id, sizeof id, "d%d", d);
        char *t = gen_text((uint64_t)d + 99, 40);
        add1(ix, "bad", id, t, "{\"k\": 1}", NULL);
        fr_free(t);
    }
    snap s0;
    take(ix, &s0);
    CHECK_INT(s0.rep.problems, 0);

    static const bad_search BS[] = {
        {"empty query", "query", FR_EINVAL, s_empty},
        {"null query", "query", FR_EINVAL, s_null},
        {"bad utf-8", "query", FR_EINVAL, s_utf8},
        {"top_k 0", "top_k", FR_EINVAL, s_topk0},
        {"top_k big", "top_k", FR_EINVAL, s_topkbig},
        {"candidates", "candidates", FR_EINVAL, s_cand},
        {"mode", "mode", FR_EINVAL, s_mode},
        {"fusion", "fusion", FR_EINVAL, s_fusion},
        {"rrf_k", "rrf_k", FR_EINVAL, s_rrfk},
        {"weights", "weights", FR_EINVAL, s_weights},
        {"weights 0", "weights", FR_EINVAL, s_weights0},
        {"filter cut", "filter", FR_EINVAL, s_filter1},
        {"filter array", "filter", FR_EINVAL, s_filter2},
        {"filter nested", "filter", FR_EINVAL, s_filter3},
        {"filter quote", "filter", FR_EINVAL, s_filter4},
        {"filter object", "filter", FR_EINVAL, s_filter5},
        {"rerank_top_n", "rerank_top_n", FR_EINVAL, s_rtn},
        {"common_share", "common_share", FR_EINVAL, s_share},
        {"model", "model", FR_EINVAL, s_model},
        {"collection", "nope", FR_ENOENT, s_coll},
        {"collection name", "collection", FR_ENOENT, s_collbad},
        {"rerank unknown", "unknown", FR_ENOENT, s_rerank},
        {"rerank not a reranker", "fake-16", FR_EUNSUPP, s_rerank2},
    };
    for (size_t i = 0; i < sizeof BS / sizeof BS[0]; i++) {
        fr_search_params p;
        fr_search_params_init(&p);
        p.collection = "bad";
        p.query = "alpha";
        BS[i].set(&p);
        fr_search_result *r = (fr_search_result *)1;
        int rc = fr_index_search(ix, &p, &r);
        CHECK_MSG(rc == BS[i].err, "%s: got %s, want %s", BS[i].what, fr_errname(rc),
                  fr_errname(BS[i].err));
        CHECK_MSG(strstr(fr_errdetail(), BS[i].field) != NULL, "%s: detail '%s' lacks '%s'",
                  BS[i].what, fr_errdetail(), BS[i].field);
        CHECK(r == NULL);
        same(ix, &s0, BS[i].what);
    }

    /* documents */
    char *big = fr_malloc(FR_SEARCH_MAX_DOC_BYTES + 2);
    memset(big, 'a', FR_SEARCH_MAX_DOC_BYTES + 1);
    big[FR_SEARCH_MAX_DOC_BYTES + 1] = 0;
    char longid[FR_SEARCH_MAX_ID + 2];
    memset(longid, 'i', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    static char bigmeta[FR_SEARCH_MAX_META + 16];
    memset(bigmeta, ' ', sizeof bigmeta - 1);
    bigmeta[0] = '{';
    bigmeta[sizeof bigmeta - 2] = '}';
    bigmeta[sizeof bigmeta - 1] = 0;
    struct {
        const char *what, *field;
        int err;
        fr_doc_in d;
    } BD[] = {
        {"too long", "documents[2].text", FR_ETOOLONG, {"x", big, FR_SEARCH_MAX_DOC_BYTES + 1, NULL}},
        {"bad utf-8", "documents[2].text", FR_EINVAL, {"x", "ab\xc3(", 4, NULL}},
        {"nul byte", "documents[2].text", FR_EINVAL, {"x", "ab\0cd", 5, NULL}},
        {"id control", "documents[2].id", FR_EINVAL, {"a\nb", "text", 4, NULL}},
        {"id c1 control", "documents[2].id", FR_EINVAL, {"a\xc2\x85" "b", "text", 4, NULL}},
        {"id too long", "documents[2].id", FR_EINVAL, {longid, "text", 4, NULL}},
        {"id bad utf-8", "documents[2].id", FR_EINVAL, {"a\xff", "text", 4, NULL}},
        {"meta array", "documents[2].metadata", FR_EINVAL, {"x", "text", 4, "[1]"}},
        {"meta broken", "documents[2].metadata", FR_EINVAL, {"x", "text", 4, "{\"a\": }"}},
        {"meta string", "documents[2].metadata", FR_EINVAL, {"x", "text", 4, "\"s\""}},
        {"meta too long", "documents[2].metadata", FR_ETOOLONG, {"x", "text", 4, bigmeta}},
        {"duplicate id", "d1", FR_EINVAL, {"d1", "text", 4, NULL}},
        {"text null", "documents[2].text", FR_EINVAL, {"x", NULL, 3, NULL}},
    };
    for (size_t i = 0; i < sizeof BD / sizeof BD[0]; i++) {
        /* two good documents first: they are not written either */
        fr_doc_in docs[3] = {{"new1", "fresh words here", 16, NULL},
                             {"d1", "replaced text", 13, NULL}, BD[i].d};
        size_t done = 99;
        int rc = fr_index_add(ix, "bad", NULL, docs, 3, NULL, &done);
        CHECK_MSG(rc == BD[i].err, "%s: got %s, want %s (%s)", BD[i].what, fr_errname(rc),
                  fr_errname(BD[i].err), fr_errdetail());
        CHECK_MSG(strstr(fr_errdetail(), BD[i].field) != NULL, "%s: detail '%s' lacks '%s'",
                  BD[i].what, fr_errdetail(), BD[i].field);
        CHECK_INT(done, 0);
        same(ix, &s0, BD[i].what);
    }
    fr_free(big);
    fr_doc_in ok = {"new1", "fresh words", 11, NULL};
    CHECK_INT(fr_index_add(ix, "bad", "fake-17", &ok, 1, NULL, NULL), FR_EINVAL);
    CHECK(strstr(fr_errdetail(), "model") != NULL);
    same(ix, &s0, "add with another model");
    CHECK_INT(fr_index_add(ix, "nope", NULL, &ok, 1, NULL, NULL), FR_ENOENT);
    same(ix, &s0, "add to an unknown collection");

    /* collections */
    struct {
        const char *what, *field;
        int err;
        fr_collection_params p;
    } BC[] = {
        {"empty name", "name", FR_EINVAL, {"", "fake-8", 0, -1, false}},
        {"bad name", "name", FR_EINVAL, {"a b", "fake-8", 0, -1, false}},
        {"long name", "name", FR_EINVAL,
         {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "fake-8", 0, -1, false}},
        {"chunk_size", "chunk_size", FR_EINVAL, {"x", "fake-8", 8, -1, false}},
        {"chunk_size model", "chunk_size", FR_EINVAL, {"x", "fake-8", 1000, -1, false}},
        {"overlap", "chunk_overlap", FR_EINVAL, {"x", "fake-8", 32, 17, false}},
        {"overlap neg", "chunk_overlap", FR_EINVAL, {"x", "fake-8", 32, -2, false}},
        {"unknown model", "nomodel", FR_ENOENT, {"x", "nomodel", 0, -1, false}},
        {"reranker", "rerank", FR_EUNSUPP, {"x", "rerank", 0, -1, false}},
        {"exists", "bad", FR_ECONFLICT, {"bad", "fake-8", 0, -1, false}},
    };
    for (size_t i = 0; i < sizeof BC / sizeof BC[0]; i++) {
        int rc = fr_index_collection_create(ix, &BC[i].p, NULL);
        CHECK_MSG(rc == BC[i].err, "%s: got %s, want %s", BC[i].what, fr_errname(rc),
                  fr_errname(BC[i].err));
        CHECK_MSG(strstr(fr_errdetail(), BC[i].field) != NULL, "%s: detail '%s' lacks '%s'",
                  BC[i].what, fr_errdetail(), BC[i].field);
        same(ix, &s0, BC[i].what);
    }
    fr_collection_info info;
    CHECK_INT(fr_index_collection_get(ix, "x", &info), FR_ENOENT);
    /* defaults: chunk_size min(256, 512 - 2), overlap min(32, 256/8) */
    fr_collection_params dp = {"defaults", "fake-8", 0, -1, true};
    CHECK_INT(fr_index_collection_create(ix, &dp, &info), 0);
    CHECK_INT(info.chunk_size, 256);
    CHECK_INT(info.chunk_overlap, 32);
    CHECK_INT(info.dim, 8);
    CHECK(info.stemming);
    fr_index_close(ix);
}

/* ---- a search during an ingest ---- */

#define CONC_DOCS 120

static void conc_text(int d, int version, char *buf, size_t cap) {
    size_t k = 0;
    for (int w = 0; w < 50 && k + 24 < cap; w++)
        k += (size_t)snprintf(buf + k, cap - k, "%sw%dv%dx%d common", w ? " " : "", d, version, w);
}

typedef struct conc {
    fr_index *ix;
    atomic_int stop;
    atomic_int searches, bad;
} conc;

static void *searcher(void *arg) {
    conc *c = arg;
    char buf[4096];
    while (!atomic_load(&c->stop)) {
        for (int mode = 0; mode < 3; mode++) {
            fr_search_params p;
            fr_search_params_init(&p);
            p.collection = "cc";
            p.query = "common w3v0x1 w5v1x2";
            p.mode = mode;
            p.top_k = 50;
            p.candidates = 200;
            fr_search_result *r = NULL;
            int rc = fr_index_search(c->ix, &p, &r);
            if (rc) {
                fprintf(stderr, "search during ingest: %s %s\n", fr_errname(rc), fr_errdetail());
                atomic_fetch_add(&c->bad, 1);
                continue;
            }
            for (size_t i = 0; i < r->n; i++) {
                /* the chunk's text belongs to the document at the version its metadata says */
                int d = atoi(r->hits[i].document_id + 1);
                const char *v = strstr(r->hits[i].metadata, "\"v\":");
                int ver = v ? atoi(v + 4) : -1;
                conc_text(d, ver, buf, sizeof buf);
                if (ver < 0 || !strstr(buf, r->hits[i].text)) {
                    fprintf(stderr, "inconsistent hit: doc %s meta %s text %.60s\n",
                            r->hits[i].document_id, r->hits[i].metadata, r->hits[i].text);
                    atomic_fetch_add(&c->bad, 1);
                }
            }
            fr_search_result_free(r);
            atomic_fetch_add(&c->searches, 1);
        }
    }
    return NULL;
}

/* a second writer on the same collection: documents d1000.. */
static void *writer2(void *arg) {
    conc *c = arg;
    char text[4096], id[16], meta[16];
    for (int d = 1000; d < 1060; d++) {
        conc_text(d, 0, text, sizeof text);
        snprintf(id, sizeof id, "d%d", d);
        snprintf(meta, sizeof meta, "{\"v\":0}");
        fr_doc_in doc = {id, text, strlen(text), meta};
        if (fr_index_add(c->ix, "cc", NULL, &doc, 1, NULL, NULL)) atomic_fetch_add(&c->bad, 1);
    }
    return NULL;
}

static void test_concurrent(void) {
    fr_index *ix = open_ix("conc", 0);
    if (!ix) return;
    mkcoll(ix, "cc", "fake-48", 16, 4, false);
    conc c = {ix, 0, 0, 0};
    pthread_t th[2];
    add1(ix, "cc", "d0", "w0v0x0 common", "{\"v\":0}", NULL);
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, searcher, &c);
    pthread_t w2;
    pthread_create(&w2, NULL, writer2, &c);
    char buf[4096], meta[32], id[16];
    for (int version = 0; version < 2; version++) {
        for (int d = 0; d < CONC_DOCS; d += 4) {
            fr_doc_in docs[4];
            char texts[4][4096], ids[4][16], metas[4][32];
            for (int j = 0; j < 4; j++) {
                conc_text(d + j, version, texts[j], sizeof texts[j]);
                snprintf(ids[j], 16, "d%d", d + j);
                snprintf(metas[j], 32, "{\"v\":%d}", version);
                docs[j] = (fr_doc_in){ids[j], texts[j], strlen(texts[j]), metas[j]};
            }
            CHECK_INT(fr_index_add(ix, "cc", NULL, docs, 4, NULL, NULL), 0);
            if (d % 20 == 0) {
                snprintf(id, sizeof id, "d%d", d + 1);
                CHECK_INT(fr_index_delete(ix, "cc", id), 0);
            }
        }
    }
    (void)buf;
    (void)meta;
    pthread_join(w2, NULL);
    atomic_store(&c.stop, 1);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    CHECK_INT(atomic_load(&c.bad), 0);
    CHECK(atomic_load(&c.searches) > 0);
    printf("concurrent: %d searches during the ingest\n", atomic_load(&c.searches));
    check_ok(ix, "cc");
    fr_collection_info info;
    CHECK_INT(fr_index_collection_get(ix, "cc", &info), 0);
    CHECK_INT(info.documents, CONC_DOCS - CONC_DOCS / 20 + 60);   /* d0..d119 less 6 deleted, d1000.. */
    fr_index_close(ix);
}

/* ---- two views of one directory, reopening, a planted fault ---- */

static void test_reopen_and_check(void) {
    fr_index *a = open_ix("two", 0), *b = open_ix("two", 0);
    if (!a || !b) return;
    mkcoll(a, "t", "fake-20", 16, 0, false);
    add1(a, "t", "d0", "red green blue", NULL, NULL);
    fr_search_result *r = search(b, "t", "green", FR_SEARCH_VECTOR, 10, NULL, NULL);
    if (r) {
        CHECK_INT(r->n, 1);         /* b's cache now holds one vector */
        fr_search_result_free(r);
    }
    add1(a, "t", "d1", "yellow green purple", NULL, NULL);
    add1(a, "t", "d2", "black white grey", NULL, NULL);
    CHECK_INT(fr_index_delete(a, "t", "d0"), 0);
    r = search(b, "t", "green", FR_SEARCH_VECTOR, 10, NULL, NULL);
    if (r) {
        CHECK_INT(r->n, 2);         /* b reloaded: d1, d2 (d0 is gone) */
        for (size_t i = 0; i < r->n; i++) CHECK(strcmp(r->hits[i].document_id, "d0"));
        if (r->n) CHECK_STR(r->hits[0].document_id, "d1");
        fr_search_result_free(r);
    }
    fr_index_close(b);
    fr_search_result *before = search(a, "t", "green grey", FR_SEARCH_HYBRID, 10, NULL, NULL);
    fr_index_close(a);
    /* reopen: everything is still there */
    a = open_ix("two", 0);
    if (!a) return;
    int64_t d, c, v;
    counts(a, "t", &d, &c, &v);
    CHECK_INT(d, 2);
    CHECK_INT(c, 2);
    CHECK_INT(v, 2);
    fr_search_result *after = search(a, "t", "green grey", FR_SEARCH_HYBRID, 10, NULL, NULL);
    if (before && after) {
        CHECK_INT(after->n, before->n);
        for (size_t i = 0; i < after->n && i < before->n; i++) {
            CHECK_INT(after->hits[i].chunk_id, before->hits[i].chunk_id);
            CHECK_NEAR(after->hits[i].score, before->hits[i].score, 1e-12);
        }
    }
    fr_search_result_free(before);
    fr_search_result_free(after);
    check_ok(a, NULL);
    /* plant faults with raw SQL */
    int64_t cid = coll_id(a, "t");
    sqlite3 *db = raw_db("two");
    char sql[256];
    snprintf(sql, sizeof sql, "DELETE FROM fts_%lld WHERE rowid = (SELECT min(id) FROM chunks)",
             (long long)cid);
    CHECK_INT(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    fr_index_report rep;
    CHECK_INT(fr_index_check(a, "t", &rep), 0);
    CHECK(rep.problems > 0);
    CHECK(strstr(rep.first, "FTS") != NULL);
    printf("planted: %lld problems, first: %s\n", (long long)rep.problems, rep.first);
    CHECK_INT(fr_index_check(a, NULL, &rep), 0);
    CHECK(rep.problems > 0);
    CHECK_INT(fr_index_check(a, "nope", &rep), FR_ENOENT);
    sqlite3_close(db);
    fr_index_close(a);

    /* a file that is not ours */
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/other", root);
    snprintf(path, sizeof path, "%s/frugal.db", dir);
    fr_index *o = open_ix("other", 0);
    fr_index_close(o);
    db = raw_db("other");
    sqlite3_exec(db, "UPDATE meta SET value = 99 WHERE key = 'schema'", NULL, NULL, NULL);
    sqlite3_close(db);
    fr_index_config cfg = {dir, &FAKE, 0, 0, 0, false};
    CHECK_INT(fr_index_open(&cfg, &o), FR_EFORMAT);
    FILE *f = fopen(path, "w");
    fputs("this is not a database at all, not even close; it is just text.", f);
    fclose(f);
    CHECK_INT(fr_index_open(&cfg, &o), FR_EFORMAT);
}

/* ---- kill -9 during an ingest by another process ---- */

#define KILL_DOCS 400

static void kill_text(int d, char *buf, size_t cap) {
    size_t k = 0;
    for (int w = 0; w < 40 + d % 30 && k + 24 < cap; w++)
        k += (size_t)snprintf(buf + k, cap - k, "%sk%dw%d%s", w ? " " : "", d, w,
                              w % 7 == 6 ? "." : "");
}

static int ingest_all(fr_index *ix) {
    char text[2048], id[16];
    for (int d = 0; d < KILL_DOCS; d++) {
        kill_text(d, text, sizeof text);
        snprintf(id, sizeof id, "k%d", d);
        fr_doc_in doc = {id, text, strlen(text), NULL};
        int rc = fr_index_add(ix, "k", NULL, &doc, 1, NULL, NULL);
        if (rc) return rc;
    }
    return 0;
}

static void test_kill9(void) {
    fr_index *ix = open_ix("kill", 0);
    if (!ix) return;
    mkcoll(ix, "k", "fake-32", 16, 4, false);
    fr_index_close(ix);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        fr_index *cx = open_ix("kill", 0);
        int rc = cx ? ingest_all(cx) : -1;
        _exit(rc ? 1 : 0);
    }
    /* this process searches while the other writes (its cache follows the
     * other's generations), then kills it */
    ix = open_ix("kill", 0);
    if (!ix) return;
    int64_t docs = 0;
    int searches = 0;
    for (int spin = 0; spin < 2000 && docs < KILL_DOCS / 3; spin++) {
        fr_collection_info info;
        CHECK_INT(fr_index_collection_get(ix, "k", &info), 0);
        docs = info.documents;
        fr_search_result *r = search(ix, "k", "k5w3 k100w2", FR_SEARCH_HYBRID, 10, NULL, NULL);
        if (r) {
            /* every hit is of a whole document: its text is that document's */
            char text[2048];
            for (size_t i = 0; i < r->n; i++) {
                kill_text(atoi(r->hits[i].document_id + 1), text, sizeof text);
                CHECK(strstr(text, r->hits[i].text) != NULL);
            }
            CHECK(r->vector_candidates <= info.chunks || info.chunks == 0 || true);
            fr_search_result_free(r);
        }
        searches++;
        usleep(2000);
    }
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status));
    fr_collection_info info;
    CHECK_INT(fr_index_collection_get(ix, "k", &info), 0);
    printf("kill -9 after %lld documents (%d searches meanwhile)\n", (long long)info.documents,
           searches);
    CHECK(info.documents < KILL_DOCS);
    check_ok(ix, "k");
    /* a vector search now equals one on a fresh index handle (cache right) */
    fr_search_result *r1 = search(ix, "k", "k7w1 k7w2", FR_SEARCH_VECTOR, 10, NULL, NULL);
    fr_index *fresh = open_ix("kill", 1);
    fr_search_result *r2 = fresh ? search(fresh, "k", "k7w1 k7w2", FR_SEARCH_VECTOR, 10, NULL, NULL)
                                 : NULL;
    if (r1 && r2) {
        CHECK_INT(r1->n, r2->n);
        for (size_t i = 0; i < r1->n && i < r2->n; i++)
            CHECK_INT(r1->hits[i].chunk_id, r2->hits[i].chunk_id);
    }
    fr_search_result_free(r1);
    fr_search_result_free(r2);
    fr_index_close(fresh);
    /* a re-ingest completes */
    CHECK_INT(ingest_all(ix), 0);
    CHECK_INT(fr_index_collection_get(ix, "k", &info), 0);
    CHECK_INT(info.documents, KILL_DOCS);
    check_ok(ix, "k");
    fr_index_close(ix);
}

/* ---- an index without models: bm25 and deletes only ---- */

static void test_no_models(void) {
    fr_index *ix = open_ix("nomodels", 0);
    if (!ix) return;
    mkcoll(ix, "n", "fake-8", 16, 0, false);
    add1(ix, "n", "a", "apples and pears", NULL, NULL);
    fr_index_close(ix);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/nomodels", root);
    fr_index_config cfg = {dir, NULL, 0, 0, 0, false};
    CHECK_INT(fr_index_open(&cfg, &ix), 0);
    if (!ix) return;
    fr_search_result *r = search(ix, "n", "pears", FR_SEARCH_BM25, 10, NULL, NULL);
    if (r) {
        CHECK_INT(r->n, 1);
        fr_search_result_free(r);
    }
    fr_search_params p;
    fr_search_params_init(&p);
    p.collection = "n";
    p.query = "pears";
    CHECK_INT(fr_index_search(ix, &p, &r), FR_EUNSUPP);
    fr_doc_in d = {"b", "x", 1, NULL};
    CHECK_INT(fr_index_add(ix, "n", NULL, &d, 1, NULL, NULL), FR_EUNSUPP);
    CHECK_INT(fr_index_delete(ix, "n", "a"), 0);
    check_ok(ix, NULL);
    fr_index_close(ix);
}

/* ---- durability: synchronous NORMAL or FULL on every connection ---- */

static int conn_sync(ix_conn *c) {
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(c->db, "PRAGMA synchronous", -1, &st, NULL) != SQLITE_OK) return -1;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void test_sync(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/sync", root);
    for (int full = 0; full < 2; full++) {
        fr_index_config cfg = {.data_dir = dir, .models = &FAKE, .sync_full = full};
        fr_index *ix = NULL;
        CHECK_INT(fr_index_open(&cfg, &ix), 0);
        if (!ix) return;
        int level = -1;
        CHECK_INT(fr_index_synchronous(ix, &level), 0);
        CHECK_INT(level, full ? 2 : 1);         /* FULL, NORMAL */
        /* every connection of the pool, not only the first */
        ix_conn *a = NULL, *b = NULL;
        CHECK_INT(fr__ix_conn_get(ix, &a), 0);
        CHECK_INT(fr__ix_conn_get(ix, &b), 0);
        if (a && b) {
            CHECK(a != b);
            CHECK_INT(conn_sync(a), full ? 2 : 1);
            CHECK_INT(conn_sync(b), full ? 2 : 1);
        }
        fr__ix_conn_put(ix, a);
        fr__ix_conn_put(ix, b);
        if (full) {
            mkcoll(ix, "s", "fake-8", 16, 0, false);
            add1(ix, "s", "a", "written with synchronous full", NULL, NULL);
            check_ok(ix, NULL);
        }
        fr_index_close(ix);
    }
}

/* ---- a full disk: SQLITE_FULL (made with max_page_count) is FR_ENOSPC,
 * the documents before it are stored whole, the rest not at all ---- */

static void set_max_pages(fr_index *ix, long long extra) {
    ix_conn *c = NULL;
    CHECK_INT(fr__ix_conn_get(ix, &c), 0);
    if (!c) return;
    sqlite3_stmt *st;
    long long pages = 0;
    if (sqlite3_prepare_v2(c->db, "PRAGMA page_count", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) pages = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    char sql[80];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld", pages + extra);
    CHECK_INT(sqlite3_exec(c->db, sql, NULL, NULL, NULL), SQLITE_OK);
    fr__ix_conn_put(ix, c);
}

static void test_full(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/full", root);
    /* one connection: the page limit set on it holds for every write */
    fr_index_config cfg = {.data_dir = dir, .models = &FAKE, .max_connections = 1};
    fr_index *ix = NULL;
    CHECK_INT(fr_index_open(&cfg, &ix), 0);
    if (!ix) return;
    mkcoll(ix, "f", "fake-64", 16, 0, false);
    add1(ix, "f", "first", "stored before the disk fills up", NULL, NULL);
    enum { N = 60 };
    static char texts[N][2048], ids[N][16];
    fr_doc_in docs[N];
    fr_add_result res[N];
    for (int i = 0; i < N; i++) {
        int k = snprintf(texts[i], sizeof texts[i], "doc%02d", i);
        for (int w = 0; k < 1900; w++) k += snprintf(texts[i] + k, sizeof texts[i] - k, " w%d_%d", i, w);
        snprintf(ids[i], sizeof ids[i], "d%02d", i);
        docs[i] = (fr_doc_in){ids[i], texts[i], strlen(texts[i]), NULL};
    }
    set_max_pages(ix, 12);
    size_t done = 99;
    int rc = fr_index_add(ix, "f", NULL, docs, N, res, &done);
    CHECK_MSG(rc == FR_ENOSPC, "a full database: %s %s", fr_errname(rc), fr_errdetail());
    CHECK_INT(fr_errstatus(FR_ENOSPC), 507);
    CHECK_MSG(strstr(fr_errdetail(), "no space left") && strstr(fr_errdetail(), dir),
              "the detail names the data directory: %s", fr_errdetail());
    CHECK_MSG(done > 0 && done < N, "some stored, not all: %zu", done);
    for (size_t i = 0; i < done && i < N; i++)
        CHECK_MSG(res[i].status == FR_ADD_ADDED && !strcmp(res[i].id, ids[i]) && res[i].chunks > 0,
                  "result %zu: %d %s", i, res[i].status, res[i].id);
    /* the index holds exactly the first done documents, each whole */
    check_ok(ix, NULL);
    int64_t nd, nc, nv;
    counts(ix, "f", &nd, &nc, &nv);
    CHECK_INT(nd, (int64_t)done + 1);
    fr_search_result *r = search(ix, "f", "doc00", FR_SEARCH_BM25, 10, NULL, NULL);
    if (r) {
        CHECK_INT(r->n, 1);
        fr_search_result_free(r);
    }
    char q[16];
    snprintf(q, sizeof q, "doc%02zu", done);
    r = search(ix, "f", q, FR_SEARCH_BM25, 10, NULL, NULL);
    if (r) {
        CHECK_MSG(r->n == 0, "the first document not stored (%s) is not found", q);
        fr_search_result_free(r);
    }
    /* space again: the same call stores the rest, the stored ones are unchanged */
    set_max_pages(ix, 100000);
    rc = fr_index_add(ix, "f", NULL, docs, N, res, &done);
    CHECK_MSG(rc == 0, "after space is freed: %s %s", fr_errname(rc), fr_errdetail());
    CHECK_INT(done, N);
    counts(ix, "f", &nd, &nc, &nv);
    CHECK_INT(nd, N + 1);
    check_ok(ix, NULL);
    fr_index_close(ix);
}

/* ---- the cache budget: least recently searched out ---- */

static void test_cache_lru(void) {
    /* 300 vectors of dim 64: 300 × (64 + 16) = 24,000 bytes each; the
     * budget holds one collection, not two */
    fr_index *ix = open_ix("lru", 40000);
    if (!ix) return;
    const char *names[] = {"a", "b"};
    for (int c = 0; c < 2; c++) {
        mkcoll(ix, names[c], "rand-64", 16, 0, false);
        fr_doc_in docs[300];
        char texts[300][16], ids[300][16];
        for (int i = 0; i < 300; i++) {
            snprintf(texts[i], 16, "%s%d", names[c], i);
            snprintf(ids[i], 16, "i%d", i);
            docs[i] = (fr_doc_in){ids[i], texts[i], strlen(texts[i]), NULL};
        }
        CHECK_INT(fr_index_add(ix, names[c], NULL, docs, 300, NULL, NULL), 0);
    }
    fr_search_result *ra = search(ix, "a", "q", FR_SEARCH_VECTOR, 5, NULL, NULL);
    fr_collection_info ia, ib;
    fr_index_collection_get(ix, "a", &ia);
    fr_index_collection_get(ix, "b", &ib);
    CHECK(ia.cached_bytes >= 24000);
    CHECK_INT(ib.cached_bytes, 0);
    fr_search_result *rb = search(ix, "b", "q", FR_SEARCH_VECTOR, 5, NULL, NULL);
    fr_index_collection_get(ix, "a", &ia);
    fr_index_collection_get(ix, "b", &ib);
    CHECK_INT(ia.cached_bytes, 0);
    CHECK(ib.cached_bytes >= 24000);
    CHECK(fr_index_cache_bytes(ix) >= (size_t)ib.cached_bytes);
    /* the same answers after the eviction */
    fr_search_result *ra2 = search(ix, "a", "q", FR_SEARCH_VECTOR, 5, NULL, NULL);
    if (ra && ra2 && rb) {
        CHECK_INT(ra->n, 5);
        CHECK_INT(ra2->n, 5);
        for (size_t i = 0; i < ra->n && i < ra2->n; i++) CHECK_STR(ra->hits[i].text, ra2->hits[i].text);
        CHECK(rb->n == 5 && rb->hits[0].text[0] == 'b');
    }
    fr_search_result_free(ra);
    fr_search_result_free(ra2);
    fr_search_result_free(rb);
    /* writes of this process patch the cache of a (it is cached again now) */
    add1(ix, "a", "new", "a-new", NULL, NULL);
    fr_index_collection_get(ix, "a", &ia);
    CHECK(ia.cached_bytes >= 24080);
    fr_search_result *r = search(ix, "a", "a-new", FR_SEARCH_VECTOR, 1, NULL, NULL);
    if (r) {
        CHECK(r->n == 1 && !strcmp(r->hits[0].document_id, "new"));
        CHECK_NEAR(r->n ? r->hits[0].vector : 0, 1.0, 1e-6);
        fr_search_result_free(r);
    }
    fr_index_close(ix);
}

/* ---- every allocation failure: FR_ENOMEM (or the disk's error), a
 * consistent index, nothing leaked (ASan) ---- */

static void test_oom(void) {
    fr_index *ix = open_ix("oom", 0);
    if (!ix) return;
    mkcoll(ix, "o", "fake-16", 16, 2, false);
    add1(ix, "o", "base", "alpha beta gamma delta epsilon zeta", "{\"k\": 1}", NULL);
    int fails = 0, oks = 0;
    for (long n = 0; n < 20000; n += n < 400 ? 1 : 1 + n / 40) {
        char id[16], text[256];
        snprintf(id, sizeof id, "o%ld", n % 7);
        snprintf(text, sizeof text,
                 "alpha words %ld and more words to make two chunks of it: one two three four "
                 "five six seven eight nine ten eleven twelve thirteen fourteen", n);
        fr_doc_in d = {id, text, strlen(text), "{\"k\": 2}"};
        fr_mem_fail_after(n);
        int rc = fr_index_add(ix, "o", NULL, &d, 1, NULL, NULL);
        fr_search_params p;
        fr_search_params_init(&p);
        p.collection = "o";
        p.query = "alpha words";
        p.filter = "{\"k\": 2}";
        p.group_by_document = n % 2;
        fr_search_result *r = NULL;
        int rs = fr_index_search(ix, &p, &r);
        int rd = n % 5 == 0 ? fr_index_delete(ix, "o", id) : 0;
        fr_mem_fail_after(-1);
        fr_search_result_free(r);
        CHECK_MSG(rc == 0 || rc == FR_ENOMEM || rc == FR_EIO, "add at %ld: %s %s", n,
                  fr_errname(rc), fr_errdetail());
        CHECK_MSG(rs == 0 || rs == FR_ENOMEM || rs == FR_EIO, "search at %ld: %s %s", n,
                  fr_errname(rs), fr_errdetail());
        CHECK_MSG(rd == 0 || rd == FR_ENOMEM || rd == FR_EIO || rd == FR_ENOENT,
                  "delete at %ld: %s %s", n, fr_errname(rd), fr_errdetail());
        if (rc || rs) fails++;
        else oks++;
        if (!rc && !rs && !rd && oks > 3) break;     /* past every allocation */
        if (n % 50 == 0) check_ok(ix, "o");
    }
    check_ok(ix, "o");
    CHECK(oks > 0);     /* the failure point went past the last allocation */
    printf("oom: %d runs failed somewhere, %d ran through\n", fails, oks);
    fr_index_close(ix);

    /* opening, creating and dropping a collection, checking */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/oom", root);
    fr_index_config cfg = {dir, &FAKE, 0, 0, 0, false};
    int through = 0;
    for (long n = 0; n < 20000 && through < 3; n += n < 300 ? 1 : 1 + n / 40) {
        fr_mem_fail_after(n);
        fr_index *o = NULL;
        int ro = fr_index_open(&cfg, &o);
        fr_collection_params cp = {"tmp", "fake-8", 16, 0, n % 2 == 0};
        int rcr = o ? fr_index_collection_create(o, &cp, NULL) : 0;
        fr_index_report rep;
        int rch = o ? fr_index_check(o, NULL, &rep) : 0;
        int rdl = o ? fr_index_collection_delete(o, "tmp") : 0;
        fr_mem_fail_after(-1);
        CHECK_MSG(ro == 0 || ro == FR_ENOMEM || ro == FR_EIO, "open at %ld: %s", n, fr_errname(ro));
        CHECK_MSG(rcr == 0 || rcr == FR_ENOMEM || rcr == FR_EIO, "create at %ld: %s %s", n,
                  fr_errname(rcr), fr_errdetail());
        CHECK_MSG(rch == 0 || rch == FR_ENOMEM || rch == FR_EIO, "check at %ld: %s", n,
                  fr_errname(rch));
        CHECK_MSG(rdl == 0 || rdl == FR_ENOMEM || rdl == FR_EIO || rdl == FR_ENOENT,
                  "drop at %ld: %s", n, fr_errname(rdl));
        if (o && !ro && !rcr && !rch && !rdl) through++;
        if (o) {
            fr_index_collection_delete(o, "tmp");
            fr_index_check(o, NULL, &rep);
            CHECK_MSG(rep.problems == 0, "after oom at %ld: %s", n, rep.first);
        }
        fr_index_close(o);
    }
    CHECK(through > 0);
}

int main(void) {
    make_root();
    test_fuse();
    test_lifecycle();
    test_bad_input();
    test_common();
    test_bm25_fts5();
    test_hybrid();
    test_group_filter();
    test_reopen_and_check();
    test_concurrent();
    test_kill9();
    test_no_models();
    test_sync();
    test_full();
    test_vector_random();
    test_vector_clustered();
    test_cache_lru();
    test_oom();
    test_tinybert();
    rm_root();
    return harness_done();
}
