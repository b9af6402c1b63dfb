/*
 * cmd_bench_search.c — `frugal bench-search`: the document index (search.h)
 * on generated data, in the manner of `frugal bench`.
 *
 * Data.  A made-up vocabulary of --vocab words (100,000; syllables that
 * spell the word's rank, so frequent words are short) drawn with Zipf
 * frequencies (p ∝ 1/(rank + 1)), so BM25 sees realistic term statistics:
 * a few hundred words are in most chunks, most words in a handful.
 * Documents of --doc-chunks paragraphs (4) of exactly --words words (64)
 * in sentences of 5 to 14 words; the collection's chunk_size is --words
 * and its overlap 0, so each paragraph is one chunk.  Vectors come from a
 * fake embedding model: a text's vector is --dim (384) uniform random
 * numbers seeded by a hash of the text; count_tokens counts words.  The
 * time spent in that model is measured and taken out of every figure.
 *
 * Ingest: documents through fr_index_add, --batch (16) a call, until
 * --chunks (100,000) chunks are stored.  Figures: chunks/s, the database
 * on disk (frugal.db + its WAL), the process's peak RSS, the index's
 * counted heap (fr_index_cache_bytes) after the searches.
 *
 * Queries: --queries (200) random queries of 2 or 3 words whose ranks are
 * log-uniform in [--query-min-rank (100), vocab): below the index's
 * common-term cut (a term in more than 10% of the chunks is dropped),
 * their document frequencies from the generator printed beside.  Each
 * query runs as bm25, vector and hybrid (rrf, no rerank), top_k 10,
 * candidates 100, one at a time on this thread, after 5 warm-up queries
 * per mode (the first vector query, which loads the int8 copies into
 * memory, is timed apart as "vector cold").  Latency p50/p95/mean, from the
 * call to the result, less the fake model's time.
 *
 * The index goes to --data DIR (kept), or by default to a fresh directory
 * under $TMPDIR (/tmp) that is removed at the end unless --keep.  --reuse
 * --data DIR (same --chunks, --words, --doc-chunks, --vocab, --seed)
 * skips the ingest and searches the index a --keep run left there (the
 * texts are generated again, unstored, for the same queries and term
 * statistics); --modes bm25,vector (a list) runs only those.  --json
 * prints one object.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/sysinfo.h"
#include "cli/cli.h"
#include "kernels/kernels.h"
#include "search/chunk.h"
#include "search/search.h"
#include "search/vscan.h"

#define BS_COLL "bench"
#define BS_MODEL "fake"
#define BS_WARMUP 5

/* ---- random numbers ---- */

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double unit_rand(uint64_t *s) { return (double)(splitmix(s) >> 11) / 9007199254740992.0; }

/* ---- the fake model ---- */

typedef struct fake_model {
    int32_t dim;
    pthread_mutex_t mu;
    double embed_s;             /* time inside embed(), all threads */
    long embed_texts;
} fake_model;

static int fake_count(void *obj, const char *t, size_t n, int32_t *out) {
    (void)obj;
    int32_t w = 0;
    bool in = false;
    for (size_t i = 0; i < n; i++) {
        bool b = t[i] == ' ' || t[i] == '\n' || t[i] == '\t' || t[i] == '\r' || t[i] == '\f' || t[i] == '\v';
        if (!b && !in) w++;
        in = !b;
    }
    *out = w;
    return 0;
}

static int fake_embed(void *obj, const char *const *texts, const size_t *lens, int32_t n, float *out) {
    fake_model *f = obj;
    double t0 = fr_now_s();
    for (int32_t i = 0; i < n; i++) {
        uint64_t h = 1469598103934665603ull;
        for (size_t k = 0; k < lens[i]; k++) h = (h ^ (unsigned char)texts[i][k]) * 1099511628211ull;
        float *v = out + (size_t)i * (size_t)f->dim;
        for (int32_t d = 0; d < f->dim; d++) v[d] = (float)(2 * unit_rand(&h) - 1);
    }
    double dt = fr_now_s() - t0;
    pthread_mutex_lock(&f->mu);
    f->embed_s += dt;
    f->embed_texts += n;
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static double embed_time(fake_model *f) {
    pthread_mutex_lock(&f->mu);
    double s = f->embed_s;
    pthread_mutex_unlock(&f->mu);
    return s;
}

static int fake_acquire(void *ud, const char *name, int use, fr_search_model *out) {
    if (strcmp(name, BS_MODEL))
        return fr_errf(FR_ENOENT, "model '%s': bench-search has only '%s'", name, BS_MODEL);
    if (use != FR_SEARCH_USE_EMBED) return fr_errf(FR_EUNSUPP, "model '%s': embeddings only", name);
    fake_model *f = ud;
    memset(out, 0, sizeof *out);
    out->obj = f;
    out->dim = f->dim;
    out->max_tokens = 8192;
    out->count_tokens = fake_count;
    out->embed = fake_embed;
    return 0;
}

static void fake_release(void *ud, fr_search_model *m) { (void)ud, (void)m; }

/* ---- the vocabulary ---- */

typedef struct vocab {
    int32_t n;
    char *text;                 /* the words, NUL-separated */
    uint32_t *off;              /* [n] */
    uint8_t *len;               /* [n] */
    double *cdf;                /* [n] Zipf */
    int32_t *df;                /* [n] chunks holding the word */
    int64_t *last;              /* [n] the last chunk that counted it */
} vocab;

/* The word of rank r: its base-100 digits, most significant first, as
 * syllables (20 consonants × 5 vowels); 1 syllable below rank 100, 2
 * below 10,000, ...  Distinct for distinct ranks. */
static size_t spell(int32_t r, char *out) {
    static const char cons[] = "bcdfghjklmnprstvwxyz", vow[] = "aeiou";
    int digits[8], nd = 0;
    do {
        digits[nd++] = r % 100;
        r /= 100;
    } while (r > 0);
    size_t n = 0;
    for (int i = nd - 1; i >= 0; i--) {
        out[n++] = cons[digits[i] / 5];
        out[n++] = vow[digits[i] % 5];
    }
    return n;
}

static int vocab_init(vocab *v, int32_t n) {
    memset(v, 0, sizeof *v);
    v->n = n;
    v->text = fr_malloc((size_t)n * 9);
    v->off = fr_malloc((size_t)n * sizeof *v->off);
    v->len = fr_malloc((size_t)n);
    v->cdf = fr_malloc((size_t)n * sizeof *v->cdf);
    v->df = fr_calloc((size_t)n, sizeof *v->df);
    v->last = fr_malloc((size_t)n * sizeof *v->last);
    if (!v->text || !v->off || !v->len || !v->cdf || !v->df || !v->last) return FR_ENOMEM;
    size_t pos = 0;
    double sum = 0;
    for (int32_t r = 0; r < n; r++) {
        v->off[r] = (uint32_t)pos;
        v->len[r] = (uint8_t)spell(r, v->text + pos);
        pos += v->len[r];
        v->text[pos++] = 0;
        sum += 1.0 / (r + 1.0);
        v->cdf[r] = sum;
        v->last[r] = -1;
    }
    for (int32_t r = 0; r < n; r++) v->cdf[r] /= sum;
    return 0;
}

static void vocab_deinit(vocab *v) {
    fr_free(v->text);
    fr_free(v->off);
    fr_free(v->len);
    fr_free(v->cdf);
    fr_free(v->df);
    fr_free(v->last);
}

static int32_t zipf_draw(const vocab *v, uint64_t *s) {
    double u = unit_rand(s);
    int32_t lo = 0, hi = v->n - 1;
    while (lo < hi) {
        int32_t mid = (lo + hi) / 2;
        if (v->cdf[mid] < u) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* ---- documents ---- */

typedef struct textbuf {
    char *p;
    size_t n, cap;
    long paras;
} textbuf;

static int put(textbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t nc = (b->n + n + 1) * 2;
        char *np = fr_realloc(b->p, nc);
        if (!np) return FR_ENOMEM;
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

/* Document text: paras paragraphs of exactly words words; chunk is the
 * number of the first paragraph's chunk (for the document frequencies). */
static int make_doc(vocab *v, uint64_t *s, long paras, long words, int64_t chunk, textbuf *b) {
    b->n = 0;
    for (long p = 0; p < paras; p++, chunk++) {
        long left_in_sentence = 5 + (long)(splitmix(s) % 10);
        for (long w = 0; w < words; w++) {
            int32_t r = zipf_draw(v, s);
            if (v->last[r] != chunk) {
                v->last[r] = chunk;
                v->df[r]++;
            }
            int rc = put(b, v->text + v->off[r], v->len[r]);
            if (rc) return rc;
            const char *sep = " ";
            if (w == words - 1) sep = p == paras - 1 ? "." : ".\n\n";
            else if (--left_in_sentence == 0) {
                sep = ". ";
                left_in_sentence = 5 + (long)(splitmix(s) % 10);
            } else if (splitmix(s) % 16 == 0) sep = ", ";
            if ((rc = put(b, sep, strlen(sep)))) return rc;
        }
    }
    return 0;
}

/* ---- measuring ---- */

typedef struct lat {
    const char *mode;
    double *ms;                 /* [n] */
    long n;
    double p50, p95, mean, max;
    double hits, exact, bm25_cands, vec_cands, dropped;  /* means per query */
} lat;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* nearest rank */
static double pct(const double *sorted, long n, double p) {
    long k = (long)ceil(p * (double)n) - 1;
    if (k < 0) k = 0;
    if (k >= n) k = n - 1;
    return sorted[k];
}

static void summarize(lat *l) {
    qsort(l->ms, (size_t)l->n, sizeof *l->ms, cmp_double);
    double s = 0;
    for (long i = 0; i < l->n; i++) s += l->ms[i];
    l->mean = s / (double)l->n;
    l->p50 = pct(l->ms, l->n, 0.50);
    l->p95 = pct(l->ms, l->n, 0.95);
    l->max = l->ms[l->n - 1];
}

/* One search; *ms = its time less the fake model's. */
static int one_search(fr_index *ix, fake_model *f, const char *q, int mode, int32_t top_k, int32_t cands,
                      double *ms, lat *acc) {
    fr_search_params p;
    fr_search_params_init(&p);
    p.collection = BS_COLL;
    p.query = q;
    p.mode = mode;
    p.fusion = FR_FUSION_RRF;
    p.top_k = top_k;
    p.candidates = cands;
    fr_search_result *r = NULL;
    double e0 = embed_time(f), t0 = fr_now_s();
    int rc = fr_index_search(ix, &p, &r);
    double dt = fr_now_s() - t0 - (embed_time(f) - e0);
    if (rc) return rc;
    *ms = dt * 1e3;
    if (acc) {
        acc->hits += (double)r->n;
        acc->exact += (double)r->vector_exact;
        acc->bm25_cands += r->bm25_candidates;
        acc->vec_cands += r->vector_candidates;
        acc->dropped += (double)r->n_dropped;
    }
    fr_search_result_free(r);
    return 0;
}

static uint64_t file_size(const char *dir, const char *name) {
    char path[4096];
    int k = snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat st;
    return k > 0 && (size_t)k < sizeof path && stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Remove the scratch directory we made (its files, then itself). */
static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char path[4096];
            int k = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (k > 0 && (size_t)k < sizeof path) unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

int fr_cli_bench_search(int argc, char **argv) {
    long n_chunks = 100000, dim = 384, n_queries = 200, words = 64, doc_chunks = 4, batch = 16;
    long n_vocab = 100000, qmin = 100, top_k = 10, cands = 100, cache_mb = 0, seed = 1;
    const char *data = NULL, *only = "bm25,vector,hybrid";
    bool keep = false, json = false, reuse = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--chunks")) { if (!fr_cli_int(a, v, 1, 100000000, &n_chunks)) return 2; i++; }
        else if (!strcmp(a, "--dim")) { if (!fr_cli_int(a, v, 1, 8192, &dim)) return 2; i++; }
        else if (!strcmp(a, "--queries")) { if (!fr_cli_int(a, v, 1, 1000000, &n_queries)) return 2; i++; }
        else if (!strcmp(a, "--words")) { if (!fr_cli_int(a, v, FR_CHUNK_MIN_SIZE, FR_CHUNK_MAX_SIZE, &words)) return 2; i++; }
        else if (!strcmp(a, "--doc-chunks")) { if (!fr_cli_int(a, v, 1, 1000, &doc_chunks)) return 2; i++; }
        else if (!strcmp(a, "--batch")) { if (!fr_cli_int(a, v, 1, 10000, &batch)) return 2; i++; }
        else if (!strcmp(a, "--vocab")) { if (!fr_cli_int(a, v, 1000, 1000000, &n_vocab)) return 2; i++; }
        else if (!strcmp(a, "--query-min-rank")) { if (!fr_cli_int(a, v, 0, 999999, &qmin)) return 2; i++; }
        else if (!strcmp(a, "--top-k")) { if (!fr_cli_int(a, v, 1, FR_SEARCH_MAX_TOP_K, &top_k)) return 2; i++; }
        else if (!strcmp(a, "--candidates")) { if (!fr_cli_int(a, v, 1, FR_SEARCH_MAX_CANDIDATES, &cands)) return 2; i++; }
        else if (!strcmp(a, "--cache-mb")) { if (!fr_cli_int(a, v, 0, 1 << 20, &cache_mb)) return 2; i++; }
        else if (!strcmp(a, "--seed")) { if (!fr_cli_int(a, v, 0, 1L << 30, &seed)) return 2; i++; }
        else if (!strcmp(a, "--data") && v) { data = v; i++; }
        else if (!strcmp(a, "--modes") && v) { only = v; i++; }
        else if (!strcmp(a, "--keep")) keep = true;
        else if (!strcmp(a, "--reuse")) reuse = true;
        else if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "--ref")) fr_kernels_force_ref(true);
        else return fr_cli_usage("bench-search: unknown option or missing value '%s'", a);
    }
    if (qmin >= n_vocab) return fr_cli_usage("bench-search: --query-min-rank must be below --vocab");
    if (reuse && !data) return fr_cli_usage("bench-search: --reuse needs --data DIR (an index kept by --keep)");

    char scratch[4096] = "";
    if (!data) {
        const char *tmp = getenv("TMPDIR");
        snprintf(scratch, sizeof scratch, "%s/frugal-bench-search-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(scratch)) {
            fprintf(stderr, "frugal: bench-search: cannot make %s: %s\n", scratch, strerror(errno));
            return 1;
        }
        data = scratch;
    }

    fake_model fm = {.dim = (int32_t)dim};
    pthread_mutex_init(&fm.mu, NULL);
    fr_search_models models = {.ud = &fm, .acquire = fake_acquire, .release = fake_release};
    vocab voc;
    textbuf *texts = NULL;
    fr_doc_in *docs = NULL;
    fr_add_result *res = NULL;
    char (*ids)[32] = NULL;
    char **queries = NULL;
    lat legs[3] = {{.mode = "bm25"}, {.mode = "vector"}, {.mode = "hybrid"}};
    static const int modes[3] = {FR_SEARCH_BM25, FR_SEARCH_VECTOR, FR_SEARCH_HYBRID};
    fr_index *ix = NULL;
    int rc, code = 1;
    const char *stage = "vocabulary";
    uint64_t rs = (uint64_t)seed * 0x2545F4914F6CDD1Dull + 1;
    if ((rc = vocab_init(&voc, (int32_t)n_vocab))) goto fail;

    stage = data;
    fr_index_config cfg = {.data_dir = data, .models = &models,
                           .cache_bytes = cache_mb ? (size_t)cache_mb << 20 : 0};
    if ((rc = fr_index_open(&cfg, &ix))) goto fail;
    stage = "collection";
    fr_collection_params cp = {.name = BS_COLL, .model = BS_MODEL, .chunk_size = (int32_t)words,
                               .chunk_overlap = 0};
    rc = reuse ? 0 : fr_index_collection_create(ix, &cp, NULL);
    if (rc == FR_ECONFLICT) {       /* a kept --data from an earlier run */
        if ((rc = fr_index_collection_delete(ix, BS_COLL)) == 0) rc = fr_index_collection_create(ix, &cp, NULL);
    }
    if (rc) goto fail;

    /* ---- ingest ---- */
    stage = "ingest";
    texts = fr_calloc((size_t)batch, sizeof *texts);
    docs = fr_calloc((size_t)batch, sizeof *docs);
    res = fr_calloc((size_t)batch, sizeof *res);
    ids = fr_calloc((size_t)batch, sizeof *ids);
    if (!texts || !docs || !res || !ids) { rc = FR_ENOMEM; goto fail; }
    int64_t stored = 0, n_docs = 0, text_bytes = 0;
    double gen_s = 0, e0 = embed_time(&fm), t0 = fr_now_s(), next_report = t0 + 10;
    while (stored < n_chunks) {
        double g0 = fr_now_s();
        long nb = 0;
        for (int64_t planned = stored; nb < batch && planned < n_chunks; nb++) {
            long paras = n_chunks - planned < doc_chunks ? (long)(n_chunks - planned) : doc_chunks;
            if ((rc = make_doc(&voc, &rs, paras, words, planned, &texts[nb]))) goto fail;
            snprintf(ids[nb], sizeof ids[nb], "doc%08lld", (long long)(n_docs + nb));
            docs[nb] = (fr_doc_in){.id = ids[nb], .text = texts[nb].p, .len = texts[nb].n};
            text_bytes += (int64_t)texts[nb].n;
            texts[nb].paras = paras;
            planned += paras;
        }
        gen_s += fr_now_s() - g0;
        size_t done = 0;
        int64_t before = stored;
        if (reuse) {            /* the same texts, for the same statistics and queries */
            for (long k = 0; k < nb; k++) res[k].chunks = (int32_t)texts[k].paras;
        } else if ((rc = fr_index_add(ix, BS_COLL, NULL, docs, (size_t)nb, res, &done)))
            goto fail;
        for (long k = 0; k < nb; k++) stored += res[k].chunks;
        n_docs += nb;
        if (stored == before) {
            rc = fr_errf(FR_EINTERNAL, "%ld documents made no chunks", nb);
            goto fail;
        }
        if (!json && fr_now_s() > next_report) {
            fprintf(stderr, "bench-search: %lld of %ld chunks, %.0f chunks/s\n", (long long)stored, n_chunks,
                    (double)stored / (fr_now_s() - t0 - gen_s - (embed_time(&fm) - e0)));
            next_report = fr_now_s() + 10;
        }
    }
    double ingest_embed_s = embed_time(&fm) - e0;
    double ingest_s = reuse ? 0 : fr_now_s() - t0 - gen_s - ingest_embed_s;
    fr_collection_info info;
    stage = "collection";
    if ((rc = fr_index_collection_get(ix, BS_COLL, &info))) goto fail;

    /* ---- queries ---- */
    stage = "queries";
    queries = fr_calloc((size_t)(n_queries + BS_WARMUP), sizeof *queries);
    if (!queries) { rc = FR_ENOMEM; goto fail; }
    double df_sum = 0, df_max = 0, lo = log((double)qmin + 1), hi = log((double)n_vocab);
    long n_terms = 0;
    for (long q = 0; q < n_queries + BS_WARMUP; q++) {
        char buf[256];
        size_t pos = 0;
        long nt = 2 + (long)(splitmix(&rs) % 2);
        for (long t = 0; t < nt; t++) {
            int32_t r = (int32_t)(exp(lo + (hi - lo) * unit_rand(&rs)) - 1);
            if (r < qmin) r = (int32_t)qmin;
            if (r >= voc.n) r = voc.n - 1;
            if (t) buf[pos++] = ' ';
            memcpy(buf + pos, voc.text + voc.off[r], voc.len[r]);
            pos += voc.len[r];
            if (q >= BS_WARMUP) {
                double share = (double)voc.df[r] / (double)(stored > 0 ? stored : 1);
                df_sum += share;
                if (share > df_max) df_max = share;
                n_terms++;
            }
        }
        buf[pos] = 0;
        if (!(queries[q] = fr_strdup(buf))) { rc = FR_ENOMEM; goto fail; }
    }
    double cold_ms = 0;
    for (int m = 0; m < 3; m++) {
        lat *l = &legs[m];
        if (!strstr(only, l->mode)) continue;
        if (!(l->ms = fr_malloc((size_t)n_queries * sizeof *l->ms))) { rc = FR_ENOMEM; goto fail; }
        stage = l->mode;
        for (long q = 0; q < BS_WARMUP; q++) {
            double ms;
            if ((rc = one_search(ix, &fm, queries[q], modes[m], (int32_t)top_k, (int32_t)cands, &ms, NULL)))
                goto fail;
            if (modes[m] == FR_SEARCH_VECTOR && q == 0) cold_ms = ms;
        }
        for (long q = 0; q < n_queries; q++)
            if ((rc = one_search(ix, &fm, queries[BS_WARMUP + q], modes[m], (int32_t)top_k, (int32_t)cands,
                                 &l->ms[q], l)))
                goto fail;
        l->n = n_queries;
        summarize(l);
        double nq = (double)n_queries;
        l->hits /= nq, l->exact /= nq, l->bm25_cands /= nq, l->vec_cands /= nq, l->dropped /= nq;
    }
    size_t cache = fr_index_cache_bytes(ix);
    uint64_t db = file_size(data, "frugal.db"), wal = file_size(data, "frugal.db-wal");
    uint64_t rss = fr_rss_peak();

    if (json) {
        printf("{\"chunks\": %lld, \"documents\": %lld, \"dim\": %ld, \"words_per_chunk\": %ld, "
               "\"vocab\": %ld, \"text_bytes\": %lld, \"ingest_s\": %.3f, \"ingest_chunks_per_s\": %.1f, "
               "\"ingest_docs_per_s\": %.1f, \"embed_s_excluded\": %.3f, \"db_bytes\": %llu, "
               "\"wal_bytes\": %llu, \"peak_rss\": %llu, \"cache_bytes\": %zu, \"vector_cold_ms\": %.3f, "
               "\"queries\": %ld, \"top_k\": %ld, \"candidates\": %ld, \"query_term_df_mean\": %.5f, "
               "\"query_term_df_max\": %.5f, \"kernels\": \"%s\", \"results\": [",
               (long long)info.chunks, (long long)info.documents, dim, words, n_vocab, (long long)text_bytes,
               ingest_s, reuse ? 0 : (double)info.chunks / ingest_s, reuse ? 0 : (double)info.documents / ingest_s,
               ingest_embed_s,
               (unsigned long long)db, (unsigned long long)wal, (unsigned long long)rss, cache, cold_ms,
               n_queries, top_k, cands, n_terms ? df_sum / (double)n_terms : 0, df_max, fr__vscan_isa());
        for (int m = 0, first = 1; m < 3; m++) {
            const lat *l = &legs[m];
            if (!l->n) continue;
            printf("%s{\"mode\": \"%s\", \"p50_ms\": %.3f, \"p95_ms\": %.3f, \"mean_ms\": %.3f, "
                   "\"max_ms\": %.3f, \"hits\": %.2f, \"bm25_candidates\": %.1f, \"vector_candidates\": %.1f, "
                   "\"vector_exact\": %.1f, \"dropped_terms\": %.2f}",
                   first ? "" : ", ", l->mode, l->p50, l->p95, l->mean, l->max, l->hits, l->bm25_cands, l->vec_cands,
                   l->exact, l->dropped);
            first = 0;
        }
        printf("]}\n");
    } else {
        printf("index: %lld chunks in %lld documents (%ld words each, vocabulary %ld), %d-dim vectors, "
               "%.1f MiB of text\n",
               (long long)info.chunks, (long long)info.documents, words, n_vocab, (int)dim,
               (double)text_bytes / 1048576.0);
        if (reuse) printf("ingest: none (--reuse of %s)\n", data);
        else
            printf("ingest: %.1f s, %.0f chunks/s (%.0f documents/s; fake embedder's %.2f s taken out)\n",
                   ingest_s, (double)info.chunks / ingest_s, (double)info.documents / ingest_s, ingest_embed_s);
        printf("disk: %.1f MiB (frugal.db %.1f MiB + WAL %.1f MiB); peak RSS %.1f MiB; index heap %.1f MiB\n",
               (double)(db + wal) / 1048576.0, (double)db / 1048576.0, (double)wal / 1048576.0,
               (double)rss / 1048576.0, (double)cache / 1048576.0);
        printf("queries: %ld, 2-3 terms each in %.2f%% of the chunks on average (at most %.2f%%); top_k %ld, "
               "candidates %ld; vector kernel %s; first vector query (loads the int8 copies) %.1f ms\n\n",
               n_queries, n_terms ? 100 * df_sum / (double)n_terms : 0, 100 * df_max, top_k, cands,
               fr__vscan_isa(), cold_ms);
        printf("| mode | p50 ms | p95 ms | mean ms | max ms | hits | bm25 cand. | vector cand. | float32 rescored |\n"
               "|---|---|---|---|---|---|---|---|---|\n");
        for (int m = 0; m < 3; m++) {
            const lat *l = &legs[m];
            if (!l->n) continue;
            printf("| %s | %.2f | %.2f | %.2f | %.2f | %.1f | %.1f | %.1f | %.1f |\n", l->mode, l->p50, l->p95,
                   l->mean, l->max, l->hits, l->bm25_cands, l->vec_cands, l->exact);
        }
    }
    code = 0;
    goto done;
fail:
    code = fr_cli_fail(rc, stage);
done:
    fr_index_close(ix);
    for (long q = 0; queries && q < n_queries + BS_WARMUP; q++) fr_free(queries[q]);
    fr_free(queries);
    for (int m = 0; m < 3; m++) fr_free(legs[m].ms);
    for (long k = 0; texts && k < batch; k++) fr_free(texts[k].p);
    fr_free(texts);
    fr_free(docs);
    fr_free(res);
    fr_free(ids);
    vocab_deinit(&voc);
    pthread_mutex_destroy(&fm.mu);
    if (*scratch) {
        if (keep) fprintf(stderr, "bench-search: the index is in %s\n", scratch);
        else remove_dir(scratch);
    }
    return code;
}
