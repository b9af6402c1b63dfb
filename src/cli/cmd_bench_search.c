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

/* ---- the command ---- */

typedef struct bs_opts {
    long n_chunks, dim, n_queries, words, doc_chunks, batch;
    long n_vocab, qmin, top_k, cands, cache_mb, seed;
    const char *data, *only;
    bool keep, json, reuse;
} bs_opts;

/* One run: what the steps below make, and what the report prints. */
typedef struct bs_run {
    const bs_opts *o;
    const char *stage;          /* what a failure is reported as */
    fake_model fm;
    fr_search_models models;
    vocab voc;
    uint64_t rs;                /* the generator: texts, then queries */
    fr_index *ix;
    /* ingest: one batch of documents */
    textbuf *texts;             /* [batch] */
    fr_doc_in *docs;            /* [batch] */
    fr_add_result *res;         /* [batch] */
    char (*ids)[32];            /* [batch] */
    int64_t stored, text_bytes;
    double ingest_s, ingest_embed_s;
    fr_collection_info info;
    /* queries */
    char **queries;             /* [n_queries + BS_WARMUP] */
    double df_sum, df_max;      /* the query terms' chunk shares */
    long n_terms;
    lat legs[3];
    double cold_ms;
    size_t cache;
    uint64_t db, wal, rss;
} bs_run;

static const int bs_modes[3] = {FR_SEARCH_BM25, FR_SEARCH_VECTOR, FR_SEARCH_HYBRID};

/* The options into *o (defaults in the file header).  0, or the exit
 * code of a usage error. */
static int parse_args(int argc, char **argv, bs_opts *o) {
    *o = (bs_opts){.n_chunks = 100000, .dim = 384, .n_queries = 200, .words = 64, .doc_chunks = 4,
                   .batch = 16, .n_vocab = 100000, .qmin = 100, .top_k = 10, .cands = 100,
                   .cache_mb = 0, .seed = 1, .only = "bm25,vector,hybrid"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--chunks")) { if (!fr_cli_int(a, v, 1, 100000000, &o->n_chunks)) return 2; i++; }
        else if (!strcmp(a, "--dim")) { if (!fr_cli_int(a, v, 1, 8192, &o->dim)) return 2; i++; }
        else if (!strcmp(a, "--queries")) { if (!fr_cli_int(a, v, 1, 1000000, &o->n_queries)) return 2; i++; }
        else if (!strcmp(a, "--words")) { if (!fr_cli_int(a, v, FR_CHUNK_MIN_SIZE, FR_CHUNK_MAX_SIZE, &o->words)) return 2; i++; }
        else if (!strcmp(a, "--doc-chunks")) { if (!fr_cli_int(a, v, 1, 1000, &o->doc_chunks)) return 2; i++; }
        else if (!strcmp(a, "--batch")) { if (!fr_cli_int(a, v, 1, 10000, &o->batch)) return 2; i++; }
        else if (!strcmp(a, "--vocab")) { if (!fr_cli_int(a, v, 1000, 1000000, &o->n_vocab)) return 2; i++; }
        else if (!strcmp(a, "--query-min-rank")) { if (!fr_cli_int(a, v, 0, 999999, &o->qmin)) return 2; i++; }
        else if (!strcmp(a, "--top-k")) { if (!fr_cli_int(a, v, 1, FR_SEARCH_MAX_TOP_K, &o->top_k)) return 2; i++; }
        else if (!strcmp(a, "--candidates")) { if (!fr_cli_int(a, v, 1, FR_SEARCH_MAX_CANDIDATES, &o->cands)) return 2; i++; }
        else if (!strcmp(a, "--cache-mb")) { if (!fr_cli_int(a, v, 0, 1 << 20, &o->cache_mb)) return 2; i++; }
        else if (!strcmp(a, "--seed")) { if (!fr_cli_int(a, v, 0, 1L << 30, &o->seed)) return 2; i++; }
        else if (!strcmp(a, "--data") && v) { o->data = v; i++; }
        else if (!strcmp(a, "--modes") && v) { o->only = v; i++; }
        else if (!strcmp(a, "--keep")) o->keep = true;
        else if (!strcmp(a, "--reuse")) o->reuse = true;
        else if (!strcmp(a, "--json")) o->json = true;
        else if (!strcmp(a, "--ref")) fr_kernels_force_ref(true);
        else return fr_cli_usage("bench-search: unknown option or missing value '%s'", a);
    }
    if (o->qmin >= o->n_vocab) return fr_cli_usage("bench-search: --query-min-rank must be below --vocab");
    if (o->reuse && !o->data) return fr_cli_usage("bench-search: --reuse needs --data DIR (an index kept by --keep)");
    return 0;
}

/* The index on o->data with the collection: a fresh one (an old one of a
 * kept --data is deleted first), or the kept one with --reuse. */
static int open_index(bs_run *b) {
    const bs_opts *o = b->o;
    b->stage = o->data;
    fr_index_config cfg = {.data_dir = o->data, .models = &b->models,
                           .cache_bytes = o->cache_mb ? (size_t)o->cache_mb << 20 : 0};
    int rc = fr_index_open(&cfg, &b->ix);
    if (rc) return rc;
    b->stage = "collection";
    fr_collection_params cp = {.name = BS_COLL, .model = BS_MODEL, .chunk_size = (int32_t)o->words,
                               .chunk_overlap = 0};
    rc = o->reuse ? 0 : fr_index_collection_create(b->ix, &cp, NULL);
    if (rc == FR_ECONFLICT) {       /* a kept --data from an earlier run */
        if ((rc = fr_index_collection_delete(b->ix, BS_COLL)) == 0) rc = fr_index_collection_create(b->ix, &cp, NULL);
    }
    return rc;
}

/* Generate documents and add them, --batch a call, until --chunks chunks
 * are stored (with --reuse, only generate them: the same texts, for the
 * same statistics and queries).  Times the ingest less the generator's
 * and the fake model's time; progress on stderr every 10 s. */
static int ingest(bs_run *b) {
    const bs_opts *o = b->o;
    int rc;
    b->stage = "ingest";
    b->texts = fr_calloc((size_t)o->batch, sizeof *b->texts);
    b->docs = fr_calloc((size_t)o->batch, sizeof *b->docs);
    b->res = fr_calloc((size_t)o->batch, sizeof *b->res);
    b->ids = fr_calloc((size_t)o->batch, sizeof *b->ids);
    if (!b->texts || !b->docs || !b->res || !b->ids) return FR_ENOMEM;
    int64_t n_docs = 0;
    double gen_s = 0, e0 = embed_time(&b->fm), t0 = fr_now_s(), next_report = t0 + 10;
    while (b->stored < o->n_chunks) {
        double g0 = fr_now_s();
        long nb = 0;
        for (int64_t planned = b->stored; nb < o->batch && planned < o->n_chunks; nb++) {
            long paras = o->n_chunks - planned < o->doc_chunks ? (long)(o->n_chunks - planned) : o->doc_chunks;
            textbuf *t = &b->texts[nb];
            if ((rc = make_doc(&b->voc, &b->rs, paras, o->words, planned, t))) return rc;
            snprintf(b->ids[nb], sizeof b->ids[nb], "doc%08lld", (long long)(n_docs + nb));
            b->docs[nb] = (fr_doc_in){.id = b->ids[nb], .text = t->p, .len = t->n};
            b->text_bytes += (int64_t)t->n;
            t->paras = paras;
            planned += paras;
        }
        gen_s += fr_now_s() - g0;
        size_t done = 0;
        int64_t before = b->stored;
        if (o->reuse) {
            for (long k = 0; k < nb; k++) b->res[k].chunks = (int32_t)b->texts[k].paras;
        } else if ((rc = fr_index_add(b->ix, BS_COLL, NULL, b->docs, (size_t)nb, b->res, &done)))
            return rc;
        for (long k = 0; k < nb; k++) b->stored += b->res[k].chunks;
        n_docs += nb;
        if (b->stored == before) return fr_errf(FR_EINTERNAL, "%ld documents made no chunks", nb);
        if (!o->json && fr_now_s() > next_report) {
            fprintf(stderr, "bench-search: %lld of %ld chunks, %.0f chunks/s\n", (long long)b->stored, o->n_chunks,
                    (double)b->stored / (fr_now_s() - t0 - gen_s - (embed_time(&b->fm) - e0)));
            next_report = fr_now_s() + 10;
        }
    }
    b->ingest_embed_s = embed_time(&b->fm) - e0;
    b->ingest_s = o->reuse ? 0 : fr_now_s() - t0 - gen_s - b->ingest_embed_s;
    b->stage = "collection";
    return fr_index_collection_get(b->ix, BS_COLL, &b->info);
}

/* BS_WARMUP + --queries queries of 2 or 3 words, ranks log-uniform in
 * [--query-min-rank, vocab); the measured ones' terms' chunk shares are
 * summed into df_sum and df_max. */
static int make_queries(bs_run *b) {
    const bs_opts *o = b->o;
    const vocab *voc = &b->voc;
    b->stage = "queries";
    b->queries = fr_calloc((size_t)(o->n_queries + BS_WARMUP), sizeof *b->queries);
    if (!b->queries) return FR_ENOMEM;
    double lo = log((double)o->qmin + 1), hi = log((double)o->n_vocab);
    for (long q = 0; q < o->n_queries + BS_WARMUP; q++) {
        char buf[256];
        size_t pos = 0;
        long nt = 2 + (long)(splitmix(&b->rs) % 2);
        for (long t = 0; t < nt; t++) {
            int32_t r = (int32_t)(exp(lo + (hi - lo) * unit_rand(&b->rs)) - 1);
            if (r < o->qmin) r = (int32_t)o->qmin;
            if (r >= voc->n) r = voc->n - 1;
            if (t) buf[pos++] = ' ';
            memcpy(buf + pos, voc->text + voc->off[r], voc->len[r]);
            pos += voc->len[r];
            if (q >= BS_WARMUP) {
                double share = (double)voc->df[r] / (double)(b->stored > 0 ? b->stored : 1);
                b->df_sum += share;
                if (share > b->df_max) b->df_max = share;
                b->n_terms++;
            }
        }
        buf[pos] = 0;
        if (!(b->queries[q] = fr_strdup(buf))) return FR_ENOMEM;
    }
    return 0;
}

/* Each mode of --modes: the warm-up queries (the first vector one timed
 * as cold_ms), then the measured ones into its lat, summarized. */
static int run_queries(bs_run *b) {
    const bs_opts *o = b->o;
    int rc;
    for (int m = 0; m < 3; m++) {
        lat *l = &b->legs[m];
        if (!strstr(o->only, l->mode)) continue;
        if (!(l->ms = fr_malloc((size_t)o->n_queries * sizeof *l->ms))) return FR_ENOMEM;
        b->stage = l->mode;
        for (long q = 0; q < BS_WARMUP; q++) {
            double ms;
            if ((rc = one_search(b->ix, &b->fm, b->queries[q], bs_modes[m], (int32_t)o->top_k, (int32_t)o->cands,
                                 &ms, NULL)))
                return rc;
            if (bs_modes[m] == FR_SEARCH_VECTOR && q == 0) b->cold_ms = ms;
        }
        for (long q = 0; q < o->n_queries; q++)
            if ((rc = one_search(b->ix, &b->fm, b->queries[BS_WARMUP + q], bs_modes[m], (int32_t)o->top_k,
                                 (int32_t)o->cands, &l->ms[q], l)))
                return rc;
        l->n = o->n_queries;
        summarize(l);
        double nq = (double)o->n_queries;
        l->hits /= nq, l->exact /= nq, l->bm25_cands /= nq, l->vec_cands /= nq, l->dropped /= nq;
    }
    return 0;
}

/* --json: the figures as one object, one result per mode run. */
static void print_json(const bs_run *b) {
    const bs_opts *o = b->o;
    const fr_collection_info *info = &b->info;
    printf("{\"chunks\": %lld, \"documents\": %lld, \"dim\": %ld, \"words_per_chunk\": %ld, "
           "\"vocab\": %ld, \"text_bytes\": %lld, \"ingest_s\": %.3f, \"ingest_chunks_per_s\": %.1f, "
           "\"ingest_docs_per_s\": %.1f, \"embed_s_excluded\": %.3f, \"db_bytes\": %llu, "
           "\"wal_bytes\": %llu, \"peak_rss\": %llu, \"cache_bytes\": %zu, \"vector_cold_ms\": %.3f, "
           "\"queries\": %ld, \"top_k\": %ld, \"candidates\": %ld, \"query_term_df_mean\": %.5f, "
           "\"query_term_df_max\": %.5f, \"kernels\": \"%s\", \"results\": [",
           (long long)info->chunks, (long long)info->documents, o->dim, o->words, o->n_vocab,
           (long long)b->text_bytes, b->ingest_s, o->reuse ? 0 : (double)info->chunks / b->ingest_s,
           o->reuse ? 0 : (double)info->documents / b->ingest_s, b->ingest_embed_s,
           (unsigned long long)b->db, (unsigned long long)b->wal, (unsigned long long)b->rss, b->cache, b->cold_ms,
           o->n_queries, o->top_k, o->cands, b->n_terms ? b->df_sum / (double)b->n_terms : 0, b->df_max,
           fr__vscan_isa());
    for (int m = 0, first = 1; m < 3; m++) {
        const lat *l = &b->legs[m];
        if (!l->n) continue;
        printf("%s{\"mode\": \"%s\", \"p50_ms\": %.3f, \"p95_ms\": %.3f, \"mean_ms\": %.3f, "
               "\"max_ms\": %.3f, \"hits\": %.2f, \"bm25_candidates\": %.1f, \"vector_candidates\": %.1f, "
               "\"vector_exact\": %.1f, \"dropped_terms\": %.2f}",
               first ? "" : ", ", l->mode, l->p50, l->p95, l->mean, l->max, l->hits, l->bm25_cands, l->vec_cands,
               l->exact, l->dropped);
        first = 0;
    }
    printf("]}\n");
}

/* The figures as lines and a Markdown table, one row per mode run. */
static void print_table(const bs_run *b) {
    const bs_opts *o = b->o;
    const fr_collection_info *info = &b->info;
    printf("index: %lld chunks in %lld documents (%ld words each, vocabulary %ld), %d-dim vectors, "
           "%.1f MiB of text\n",
           (long long)info->chunks, (long long)info->documents, o->words, o->n_vocab, (int)o->dim,
           (double)b->text_bytes / 1048576.0);
    if (o->reuse) printf("ingest: none (--reuse of %s)\n", o->data);
    else
        printf("ingest: %.1f s, %.0f chunks/s (%.0f documents/s; fake embedder's %.2f s taken out)\n",
               b->ingest_s, (double)info->chunks / b->ingest_s, (double)info->documents / b->ingest_s,
               b->ingest_embed_s);
    printf("disk: %.1f MiB (frugal.db %.1f MiB + WAL %.1f MiB); peak RSS %.1f MiB; index heap %.1f MiB\n",
           (double)(b->db + b->wal) / 1048576.0, (double)b->db / 1048576.0, (double)b->wal / 1048576.0,
           (double)b->rss / 1048576.0, (double)b->cache / 1048576.0);
    printf("queries: %ld, 2-3 terms each in %.2f%% of the chunks on average (at most %.2f%%); top_k %ld, "
           "candidates %ld; vector kernel %s; first vector query (loads the int8 copies) %.1f ms\n\n",
           o->n_queries, b->n_terms ? 100 * b->df_sum / (double)b->n_terms : 0, 100 * b->df_max, o->top_k,
           o->cands, fr__vscan_isa(), b->cold_ms);
    printf("| mode | p50 ms | p95 ms | mean ms | max ms | hits | bm25 cand. | vector cand. | float32 rescored |\n"
           "|---|---|---|---|---|---|---|---|---|\n");
    for (int m = 0; m < 3; m++) {
        const lat *l = &b->legs[m];
        if (!l->n) continue;
        printf("| %s | %.2f | %.2f | %.2f | %.2f | %.1f | %.1f | %.1f | %.1f |\n", l->mode, l->p50, l->p95,
               l->mean, l->max, l->hits, l->bm25_cands, l->vec_cands, l->exact);
    }
}

/* Everything b holds (its index closed). */
static void bs_run_deinit(bs_run *b) {
    const bs_opts *o = b->o;
    fr_index_close(b->ix);
    for (long q = 0; b->queries && q < o->n_queries + BS_WARMUP; q++) fr_free(b->queries[q]);
    fr_free(b->queries);
    for (int m = 0; m < 3; m++) fr_free(b->legs[m].ms);
    for (long k = 0; b->texts && k < o->batch; k++) fr_free(b->texts[k].p);
    fr_free(b->texts);
    fr_free(b->docs);
    fr_free(b->res);
    fr_free(b->ids);
    vocab_deinit(&b->voc);
    pthread_mutex_destroy(&b->fm.mu);
}

/* The steps of the file header: options, the scratch directory, the
 * vocabulary, the index, ingest, queries, the report. */
int fr_cli_bench_search(int argc, char **argv) {
    bs_opts o;
    int code = parse_args(argc, argv, &o);
    if (code) return code;

    char scratch[4096] = "";
    if (!o.data) {
        const char *tmp = getenv("TMPDIR");
        snprintf(scratch, sizeof scratch, "%s/frugal-bench-search-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(scratch)) {
            fprintf(stderr, "frugal: bench-search: cannot make %s: %s\n", scratch, strerror(errno));
            return 1;
        }
        o.data = scratch;
    }

    bs_run b = {.o = &o};
    b.fm.dim = (int32_t)o.dim;
    pthread_mutex_init(&b.fm.mu, NULL);
    b.models = (fr_search_models){.ud = &b.fm, .acquire = fake_acquire, .release = fake_release};
    b.legs[0].mode = "bm25";
    b.legs[1].mode = "vector";
    b.legs[2].mode = "hybrid";
    b.rs = (uint64_t)o.seed * 0x2545F4914F6CDD1Dull + 1;
    b.stage = "vocabulary";
    int rc = vocab_init(&b.voc, (int32_t)o.n_vocab);
    if (!rc) rc = open_index(&b);
    if (!rc) rc = ingest(&b);
    if (!rc) rc = make_queries(&b);
    if (!rc) rc = run_queries(&b);
    if (rc) {
        code = fr_cli_fail(rc, b.stage);
    } else {
        b.cache = fr_index_cache_bytes(b.ix);
        b.db = file_size(o.data, "frugal.db");
        b.wal = file_size(o.data, "frugal.db-wal");
        b.rss = fr_rss_peak();
        if (o.json) print_json(&b);
        else print_table(&b);
    }
    bs_run_deinit(&b);
    if (*scratch) {
        if (o.keep) fprintf(stderr, "bench-search: the index is in %s\n", scratch);
        else remove_dir(scratch);
    }
    return code;
}
