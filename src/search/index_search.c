/*
 * index_search.c — fr_index_search (search.h): validation, the BM25 leg,
 * the vector leg, fusion, grouping and reranking.
 *
 * Order of work: every parameter is checked (no database read); the
 * collection is found and the model compared; the query's terms are
 * made by a per-connection temp FTS5 table with the collection's
 * tokenizer (fr__ix_query_terms) and the query is embedded (outside any
 * transaction); then ONE read transaction (one WAL snapshot) runs both
 * legs and reads the hits' texts; the reranker runs after it.
 *
 * BM25 leg: each term quoted (no query syntax), OR'ed, ranked by FTS5's
 * bm25() (lower better; the hit's bm25 is that raw value, its leg score
 * -bm25).  The common-term cut drops a term whose chunk count (the
 * fts5vocab 'row' table) is above common_share × chunks and above
 * common_min (dropped_terms lists them as the tokenizer makes them, before
 * stemming); when every term is dropped the leg is empty.  The first
 * IX_MAX_TERMS distinct terms are used (as the embedding cuts a long
 * query to the model's max_tokens).
 *
 * Vector leg: the unit query's int8 codes against the collection's cache
 * (or the rows of SQLite when it does not fit), fr__vscan_topk for the
 * exact top `candidates` vectors by cosine (float32 copies read for the
 * candidates it asks about), each vector then stands for every chunk of
 * the snapshot using it (identical chunk texts share one), chunk ids
 * ascending, cut at `candidates` chunks.  A vector of the cache that the
 * snapshot lacks (a newer write) scores -inf and is dropped.  A filter
 * restricts both legs: SQL on the documents' metadata for BM25, and the
 * `allowed` bitmap of the vectors used by a matching document here.
 *
 * Fusion (fr__search_fuse): RRF or linear, see index_int.h; a chunk
 * missing from one leg gets nothing (RRF) or 0 (linear) from it.  Then,
 * in this order: group_by_document keeps each document's first chunk of
 * the fused order; the list is cut to top_k, or to max(top_k,
 * rerank_top_n) when reranking; the reranker orders those by its score
 * (ties: the fused order) and the list is cut to top_k.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/sysinfo.h"
#include "base/utf8.h"
#include "search/chunk.h"
#include "search/index_int.h"
#include "search/vscan.h"

#define MAX_QUERY 65536
#define MAX_FILTER_KEYS 32

void fr_search_params_init(fr_search_params *p) {
    memset(p, 0, sizeof *p);
    p->top_k = 10;
    p->mode = FR_SEARCH_HYBRID;
    p->fusion = FR_FUSION_RRF;
    p->rrf_k = 60;
    p->w_bm25 = 0.5;
    p->w_vector = 0.5;
    p->candidates = 100;
    p->rerank_top_n = 20;
    p->common_share = 0.1;
    p->common_min = 1000;
}

void fr_search_result_free(fr_search_result *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) {
        fr_free(r->hits[i].document_id);
        fr_free(r->hits[i].text);
        fr_free(r->hits[i].metadata);
    }
    fr_free(r->hits);
    for (size_t i = 0; i < r->n_dropped; i++) fr_free(r->dropped_terms[i]);
    fr_free(r->dropped_terms);
    fr_free(r);
}

/* ---- fusion ---- */

typedef struct fent {
    int64_t chunk_id, doc;
    int leg;
    int32_t rank;
    double score;
} fent;

static int by_chunk(const void *a, const void *b) {
    const fent *x = a, *y = b;
    if (x->chunk_id != y->chunk_id) return x->chunk_id < y->chunk_id ? -1 : 1;
    return x->leg - y->leg;
}

static int32_t best_rank(const fr_fused *f) {
    int32_t a = f->rank_bm25 ? f->rank_bm25 : INT32_MAX;
    int32_t b = f->rank_vector ? f->rank_vector : INT32_MAX;
    return a < b ? a : b;
}

static int by_fused(const void *a, const void *b) {
    const fr_fused *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    int32_t rx = best_rank(x), ry = best_rank(y);
    if (rx != ry) return rx < ry ? -1 : 1;
    return x->chunk_id < y->chunk_id ? -1 : x->chunk_id > y->chunk_id;
}

static void minmax(const fr_fuse_item *l, size_t n, double *mn, double *mx) {
    *mn = INFINITY;
    *mx = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (l[i].score < *mn) *mn = l[i].score;
        if (l[i].score > *mx) *mx = l[i].score;
    }
}

static double norm01(double s, double mn, double mx) {
    return mx > mn ? (s - mn) / (mx - mn) : 1.0;
}

int fr__search_fuse(int fusion, int32_t rrf_k, double w_bm25, double w_vector,
                    const fr_fuse_item *bm25, size_t n_bm25, const fr_fuse_item *vec, size_t n_vec,
                    fr_fused **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    size_t n = n_bm25 + n_vec;
    if (n == 0) return 0;
    fent *e = fr_malloc(n * sizeof *e);
    fr_fused *f = fr_malloc(n * sizeof *f);
    if (!e || !f) {
        fr_free(e);
        fr_free(f);
        return fr_errf(FR_ENOMEM, "search: no memory to fuse %zu hits", n);
    }
    for (size_t i = 0; i < n_bm25; i++)
        e[i] = (fent){bm25[i].chunk_id, bm25[i].doc, 0, (int32_t)(i + 1), bm25[i].score};
    for (size_t i = 0; i < n_vec; i++)
        e[n_bm25 + i] = (fent){vec[i].chunk_id, vec[i].doc, 1, (int32_t)(i + 1), vec[i].score};
    qsort(e, n, sizeof *e, by_chunk);
    double bmn, bmx, vmn, vmx;
    minmax(bm25, n_bm25, &bmn, &bmx);
    minmax(vec, n_vec, &vmn, &vmx);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        fr_fused *o;
        if (m > 0 && f[m - 1].chunk_id == e[i].chunk_id) {
            o = &f[m - 1];
            if ((e[i].leg == 0 && o->rank_bm25) || (e[i].leg == 1 && o->rank_vector)) continue;
        } else {
            o = &f[m++];
            memset(o, 0, sizeof *o);
            o->chunk_id = e[i].chunk_id;
            o->doc = e[i].doc;
        }
        if (e[i].leg == 0) {
            o->rank_bm25 = e[i].rank;
            o->bm25 = e[i].score;
        } else {
            o->rank_vector = e[i].rank;
            o->vector = e[i].score;
        }
    }
    for (size_t i = 0; i < m; i++) {
        fr_fused *o = &f[i];
        double s = 0;
        if (fusion == FR_FUSION_LINEAR) {
            if (o->rank_bm25) s += w_bm25 * norm01(o->bm25, bmn, bmx);
            if (o->rank_vector) s += w_vector * norm01(o->vector, vmn, vmx);
        } else {
            if (o->rank_bm25) s += 1.0 / ((double)rrf_k + o->rank_bm25);
            if (o->rank_vector) s += 1.0 / ((double)rrf_k + o->rank_vector);
        }
        o->score = s;
    }
    qsort(f, m, sizeof *f, by_fused);
    fr_free(e);
    *out = f;
    *n_out = m;
    return 0;
}

/* A copy of a text column; NULL when SQLite or we run out of memory. */
static char *col_dup(sqlite3_stmt *st, int col) {
    const char *t = (const char *)sqlite3_column_text(st, col);
    return t ? fr_strndup(t, (size_t)sqlite3_column_bytes(st, col)) : NULL;
}

/* ---- query terms ---- */

void fr__ix_terms_free(ix_terms *t) {
    for (size_t i = 0; i < t->n; i++) {
        if (t->stem[i] != t->plain[i]) fr_free(t->stem[i]);
        fr_free(t->plain[i]);
    }
    fr_free(t->plain);
    fr_free(t->stem);
    memset(t, 0, sizeof *t);
}

/* The terms of q by the temp table `tab` (and its vocab `tab`v): out[offset]. */
static int tokenize(ix_conn *c, const char *tab, const char *q, char ***out, size_t *n) {
    char sql[160];
    sqlite3_stmt *st;
    *out = NULL;
    *n = 0;
    /* empty first: a failed call (out of memory) may have left its row */
    snprintf(sql, sizeof sql, "DELETE FROM temp.%s", tab);
    int rc = fr__ix_exec(c, sql);
    if (rc) return rc;
    snprintf(sql, sizeof sql, "INSERT INTO temp.%s(rowid, t) VALUES(1, ?)", tab);
    if ((rc = fr__ix_prepare(c, sql, &st))) return rc;
    sqlite3_bind_text(st, 1, q, -1, SQLITE_STATIC);
    int s = sqlite3_step(st);
    sqlite3_finalize(st);
    if (s != SQLITE_DONE) return fr__ix_sqerr(c->db, s, "tokenize the query");
    snprintf(sql, sizeof sql, "SELECT term, \"offset\" FROM temp.%sv ORDER BY \"offset\"", tab);
    char **arr = NULL;
    size_t cnt = 0, cap = 0;
    if ((rc = fr__ix_prepare(c, sql, &st))) goto clear;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t off = sqlite3_column_int64(st, 1);
        if (off < 0 || off > 1000000) continue;
        if ((size_t)off >= cap) {
            size_t nc = cap ? cap : 16;
            while (nc <= (size_t)off) nc *= 2;
            char **p = fr_realloc(arr, nc * sizeof *p);
            if (!p) {
                rc = fr_errf(FR_ENOMEM, "search: no memory for the query terms");
                break;
            }
            memset(p + cap, 0, (nc - cap) * sizeof *p);
            arr = p;
            cap = nc;
        }
        if (arr[off]) continue;
        arr[off] = col_dup(st, 0);
        if (!arr[off]) {
            rc = fr_errf(FR_ENOMEM, "search: no memory for the query terms");
            break;
        }
        if ((size_t)off + 1 > cnt) cnt = (size_t)off + 1;
    }
    if (!rc && s != SQLITE_DONE) rc = fr__ix_sqerr(c->db, s, "query terms");
    sqlite3_finalize(st);
clear:
    snprintf(sql, sizeof sql, "DELETE FROM temp.%s", tab);
    int r2 = fr__ix_exec(c, sql);
    if (!rc) rc = r2;
    if (rc) {
        for (size_t i = 0; i < cap; i++) fr_free(arr ? arr[i] : NULL);
        fr_free(arr);
        return rc;
    }
    *out = arr;
    *n = cnt;
    return 0;
}

int fr__ix_query_terms(ix_conn *c, const char *q, bool stemming, ix_terms *out) {
    memset(out, 0, sizeof *out);
    int rc;
    if (!c->qtok) {
        rc = fr__ix_exec(c,
                         "CREATE VIRTUAL TABLE IF NOT EXISTS temp.fr_qt USING"
                         " fts5(t, tokenize='unicode61 remove_diacritics 2');"
                         "CREATE VIRTUAL TABLE IF NOT EXISTS temp.fr_qtv USING"
                         " fts5vocab(temp, fr_qt, instance);"
                         "CREATE VIRTUAL TABLE IF NOT EXISTS temp.fr_qp USING"
                         " fts5(t, tokenize='porter unicode61 remove_diacritics 2');"
                         "CREATE VIRTUAL TABLE IF NOT EXISTS temp.fr_qpv USING"
                         " fts5vocab(temp, fr_qp, instance);");
        if (rc) return rc;
        c->qtok = true;
    }
    char **plain = NULL, **stem = NULL;
    size_t np = 0, ns = 0;
    if ((rc = tokenize(c, "fr_qt", q, &plain, &np))) return rc;
    if (stemming && (rc = tokenize(c, "fr_qp", q, &stem, &ns))) goto fail;
    out->plain = fr_calloc(np ? np : 1, sizeof *out->plain);
    out->stem = fr_calloc(np ? np : 1, sizeof *out->stem);
    if (!out->plain || !out->stem) {
        rc = fr_errf(FR_ENOMEM, "search: no memory for the query terms");
        goto fail;
    }
    for (size_t i = 0; i < np && out->n < IX_MAX_TERMS; i++) {
        if (!plain[i]) continue;
        char *p = plain[i], *s = p;
        if (stemming && i < ns && stem[i]) s = stem[i];
        bool dup = false;
        for (size_t j = 0; j < out->n && !dup; j++) dup = !strcmp(out->stem[j], s);
        if (dup) continue;
        out->plain[out->n] = p;
        out->stem[out->n] = s;
        out->n++;
        plain[i] = NULL;
        if (s != p) stem[i] = NULL;
    }
    rc = 0;
fail:
    for (size_t i = 0; i < np; i++) fr_free(plain[i]);
    for (size_t i = 0; i < ns; i++) fr_free(stem[i]);
    fr_free(plain);
    fr_free(stem);
    if (rc) fr__ix_terms_free(out);
    return rc;
}

/* ---- validation ---- */

typedef struct filt {
    char *path;                     /* $."key" */
    int type;                       /* SQLITE_TEXT, SQLITE_INTEGER, SQLITE_FLOAT; or 't','f','n' */
    int64_t i;
    double r;
    char *text;
} filt;

typedef struct sctx {
    fr_index *ix;
    const fr_search_params *p;
    ix_conn *c;
    ix_coll coll;
    filt f[MAX_FILTER_KEYS];
    int nf;
    char fsql[MAX_FILTER_KEYS * 160 + 1];   /* " AND ..." on alias d, params ?10.. */
    ix_terms terms;
    float *qv;                      /* [dim] unit query */
    int8_t *qcodes;                 /* [dim_pad] */
    float qscale, qerr;
    bool has_q;
    fr_search_model rr;
    bool have_rr;
    fr_fuse_item *bm, *vec;
    size_t nbm, nvec;
    fr_fused *fused;                /* [nfused] the legs fused, then grouped */
    size_t nfused;
    size_t vexact;
    char **dropped;
    size_t ndropped;
} sctx;

static int parse_filter(sctx *x, const char *filter) {
    sqlite3_stmt *st;
    int rc = fr__ix_prepare(x->c, "SELECT json_type(?1)", &st);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, filter, -1, SQLITE_STATIC);
    /* malformed JSON: SQLITE_ERROR; out of memory: SQLITE_NOMEM */
    int s = sqlite3_step(st);
    const char *t = s == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    bool obj = t && !strcmp(t, "object");
    bool oom = s == SQLITE_ROW && !t && sqlite3_errcode(x->c->db) == SQLITE_NOMEM;
    if ((s & 0xff) == SQLITE_ERROR) {
        sqlite3_finalize(st);
        return fr_errf(FR_EINVAL, "filter: not JSON");
    }
    if (s != SQLITE_ROW) {
        rc = fr__ix_sqerr(x->c->db, s, "filter");
        sqlite3_finalize(st);
        return rc;
    }
    sqlite3_finalize(st);
    if (oom) return fr_errf(FR_ENOMEM, "search: no memory");
    if (!obj) return fr_errf(FR_EINVAL, "filter: not a JSON object");
    if ((rc = fr__ix_prepare(x->c, "SELECT key, type, atom FROM json_each(?1)", &st))) return rc;
    sqlite3_bind_text(st, 1, filter, -1, SQLITE_STATIC);
    char *o = x->fsql;
    o[0] = 0;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(st, 0);
        const char *type = (const char *)sqlite3_column_text(st, 1);
        if (!key || !type) {
            rc = sqlite3_errcode(x->c->db) == SQLITE_NOMEM ? fr_errf(FR_ENOMEM, "search: no memory")
                                                           : fr_errf(FR_EINVAL, "filter: bad key");
            break;
        }
        if (strchr(key, '"')) {
            rc = fr_errf(FR_EINVAL, "filter: key '%s' holds '\"'", key);
            break;
        }
        if (x->nf == MAX_FILTER_KEYS) {
            rc = fr_errf(FR_EINVAL, "filter: more than %d keys", MAX_FILTER_KEYS);
            break;
        }
        filt *f = &x->f[x->nf];
        memset(f, 0, sizeof *f);
        size_t kl = strlen(key);
        f->path = fr_malloc(kl + 5);
        if (!f->path) {
            rc = fr_errf(FR_ENOMEM, "search: no memory");
            break;
        }
        snprintf(f->path, kl + 5, "$.\"%s\"", key);
        x->nf++;
        int pp = 10 + 2 * (x->nf - 1), pv = pp + 1;
        char cond[160];
        if (!strcmp(type, "text")) {
            f->type = SQLITE_TEXT;
            f->text = col_dup(st, 2);
            if (!f->text) {
                rc = fr_errf(FR_ENOMEM, "search: no memory");
                break;
            }
            snprintf(cond, sizeof cond,
                     " AND json_type(d.metadata, ?%d) = 'text' AND json_extract(d.metadata, ?%d) = ?%d",
                     pp, pp, pv);
        } else if (!strcmp(type, "integer") || !strcmp(type, "real")) {
            f->type = type[0] == 'i' ? SQLITE_INTEGER : SQLITE_FLOAT;
            f->i = sqlite3_column_int64(st, 2);
            f->r = sqlite3_column_double(st, 2);
            snprintf(cond, sizeof cond,
                     " AND json_type(d.metadata, ?%d) IN ('integer', 'real')"
                     " AND json_extract(d.metadata, ?%d) = ?%d",
                     pp, pp, pv);
        } else if (!strcmp(type, "true") || !strcmp(type, "false") || !strcmp(type, "null")) {
            f->type = type[0];
            snprintf(cond, sizeof cond, " AND json_type(d.metadata, ?%d) = '%s'", pp, type);
        } else {
            rc = fr_errf(FR_EINVAL, "filter: key '%s': %s is not a scalar", key, type);
            break;
        }
        strcat(o, cond);
    }
    if (!rc && s != SQLITE_DONE) rc = fr__ix_sqerr(x->c->db, s, "filter");
    sqlite3_finalize(st);
    return rc;
}

static void bind_filter(sctx *x, sqlite3_stmt *st) {
    for (int j = 0; j < x->nf; j++) {
        filt *f = &x->f[j];
        int pp = 10 + 2 * j, pv = pp + 1;
        sqlite3_bind_text(st, pp, f->path, -1, SQLITE_STATIC);
        if (f->type == SQLITE_TEXT) sqlite3_bind_text(st, pv, f->text, -1, SQLITE_STATIC);
        else if (f->type == SQLITE_INTEGER) sqlite3_bind_int64(st, pv, f->i);
        else if (f->type == SQLITE_FLOAT) sqlite3_bind_double(st, pv, f->r);
    }
}

static int check_params(const fr_search_params *p) {
    if (!p->query || !*p->query) return fr_errf(FR_EINVAL, "query: empty");
    size_t ql = strlen(p->query);
    if (ql > MAX_QUERY)
        return fr_errf(FR_ETOOLONG, "query: %zu bytes, more than %d", ql, MAX_QUERY);
    if (!fr_utf8_valid(p->query, ql)) return fr_errf(FR_EINVAL, "query: not valid UTF-8");
    if (p->top_k < 1 || p->top_k > FR_SEARCH_MAX_TOP_K)
        return fr_errf(FR_EINVAL, "top_k: %d is not in 1..%d", (int)p->top_k, FR_SEARCH_MAX_TOP_K);
    if (p->candidates < 1 || p->candidates > FR_SEARCH_MAX_CANDIDATES)
        return fr_errf(FR_EINVAL, "candidates: %d is not in 1..%d", (int)p->candidates,
                       FR_SEARCH_MAX_CANDIDATES);
    if (p->mode != FR_SEARCH_HYBRID && p->mode != FR_SEARCH_BM25 && p->mode != FR_SEARCH_VECTOR)
        return fr_errf(FR_EINVAL, "mode: %d is not hybrid, bm25 or vector", p->mode);
    if (p->fusion != FR_FUSION_RRF && p->fusion != FR_FUSION_LINEAR)
        return fr_errf(FR_EINVAL, "fusion: %d is not rrf or linear", p->fusion);
    if (p->rrf_k < 0 || p->rrf_k > 1000000)
        return fr_errf(FR_EINVAL, "rrf_k: %d is not in 0..1000000", (int)p->rrf_k);
    if (!isfinite(p->w_bm25) || !isfinite(p->w_vector) || p->w_bm25 < 0 || p->w_vector < 0 ||
        (p->fusion == FR_FUSION_LINEAR && p->w_bm25 + p->w_vector <= 0))
        return fr_errf(FR_EINVAL, "weights: %g, %g: each must be >= 0 and not both 0",
                       p->w_bm25, p->w_vector);
    if (p->rerank_top_n < 1 || p->rerank_top_n > FR_SEARCH_MAX_CANDIDATES)
        return fr_errf(FR_EINVAL, "rerank_top_n: %d is not in 1..%d", (int)p->rerank_top_n,
                       FR_SEARCH_MAX_CANDIDATES);
    if (!(p->common_share > 0 && p->common_share <= 1))
        return fr_errf(FR_EINVAL, "common_share: %g is not in (0, 1]", p->common_share);
    if (p->common_min < 0)
        return fr_errf(FR_EINVAL, "common_min: %lld is negative", (long long)p->common_min);
    if (p->rerank && (!*p->rerank || strlen(p->rerank) > 255))
        return fr_errf(FR_EINVAL, "rerank: bad model name");
    if (p->model && (!*p->model || strlen(p->model) > 255))
        return fr_errf(FR_EINVAL, "model: bad model name");
    return 0;
}

/* ---- the BM25 leg ---- */

static int push_item(fr_fuse_item **arr, size_t *n, size_t *cap, fr_fuse_item it) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        fr_fuse_item *p = fr_realloc(*arr, nc * sizeof *p);
        if (!p) return fr_errf(FR_ENOMEM, "search: no memory");
        *arr = p;
        *cap = nc;
    }
    (*arr)[(*n)++] = it;
    return 0;
}

static void quote_into(char *dst, const char *s) {
    char *o = dst + strlen(dst);
    *o++ = '"';
    for (; *s; s++) {
        if (*s == '"') *o++ = '"';
        *o++ = *s;
    }
    *o++ = '"';
    *o = 0;
}

static int bm25_leg(sctx *x) {
    const fr_search_params *p = x->p;
    long long id = (long long)x->coll.id;
    char sql[MAX_FILTER_KEYS * 160 + 512];
    int rc = 0;
    if (x->terms.n == 0) return 0;
    size_t mlen = 1;
    for (size_t i = 0; i < x->terms.n; i++) mlen += 2 * strlen(x->terms.plain[i]) + 8;
    char *match = fr_malloc(mlen);
    x->dropped = fr_calloc(x->terms.n, sizeof *x->dropped);
    if (!match || !x->dropped) {
        fr_free(match);
        return fr_errf(FR_ENOMEM, "search: no memory");
    }
    match[0] = 0;
    sqlite3_stmt *st;
    snprintf(sql, sizeof sql, "SELECT doc FROM fts_%lld_v WHERE term = ?", id);
    if ((rc = fr__ix_prepare(x->c, sql, &st))) goto out;
    double cut = p->common_share * (double)x->coll.chunks;
    for (size_t i = 0; i < x->terms.n && !rc; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, x->terms.stem[i], -1, SQLITE_STATIC);
        int s = sqlite3_step(st);
        int64_t docs = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        if (s != SQLITE_ROW && s != SQLITE_DONE) {
            rc = fr__ix_sqerr(x->c->db, s, "term counts");
            break;
        }
        if ((double)docs > cut && docs > p->common_min) {
            x->dropped[x->ndropped] = fr_strdup(x->terms.plain[i]);
            if (!x->dropped[x->ndropped]) rc = fr_errf(FR_ENOMEM, "search: no memory");
            else x->ndropped++;
            continue;
        }
        if (match[0]) strcat(match, " OR ");
        quote_into(match, x->terms.plain[i]);
    }
    sqlite3_finalize(st);
    if (rc || !match[0]) goto out;
    /* Without a filter the join to chunks (for the document) comes after
     * the LIMIT: FTS5 scores every match, and joining each of them first
     * cost as much again (a query term in 5% of 1M chunks: 100 ms joined
     * first, 61 ms joined after; 9 and 5 ms at 100k). */
    if (x->nf)
        snprintf(sql, sizeof sql,
                 "SELECT fts_%lld.rowid, bm25(fts_%lld), c.doc FROM fts_%lld"
                 " JOIN chunks c ON c.id = fts_%lld.rowid JOIN documents d ON d.id = c.doc"
                 " WHERE fts_%lld MATCH ?1%s ORDER BY bm25(fts_%lld), fts_%lld.rowid LIMIT ?2",
                 id, id, id, id, id, x->fsql, id, id);
    else
        snprintf(sql, sizeof sql,
                 "SELECT t.r, t.s, c.doc FROM (SELECT rowid AS r, bm25(fts_%lld) AS s FROM fts_%lld"
                 " WHERE fts_%lld MATCH ?1 ORDER BY s, r LIMIT ?2) t JOIN chunks c ON c.id = t.r"
                 " ORDER BY t.s, t.r",
                 id, id, id);
    if ((rc = fr__ix_prepare(x->c, sql, &st))) goto out;
    sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, p->candidates);
    bind_filter(x, st);
    size_t cap = 0;
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW && !rc) {
        fr_fuse_item it = {sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 2),
                           sqlite3_column_double(st, 1)};
        rc = push_item(&x->bm, &x->nbm, &cap, it);
    }
    if (!rc && s != SQLITE_DONE) rc = fr__ix_sqerr(x->c->db, s, "bm25");
    sqlite3_finalize(st);
out:
    fr_free(match);
    return rc;
}

/* ---- the vector leg ---- */

typedef struct exact_ud {
    sqlite3_stmt *st;
    const int64_t *ids;
    const float *q;
    float *buf;
    int32_t dim;
    sqlite3 *db;
} exact_ud;

static int exact_score(void *ud, size_t idx, double *score) {
    exact_ud *e = ud;
    sqlite3_reset(e->st);
    sqlite3_bind_int64(e->st, 1, e->ids[idx]);
    int s = sqlite3_step(e->st);
    if (s == SQLITE_DONE) {
        *score = -INFINITY;         /* not in this snapshot */
        return 0;
    }
    if (s != SQLITE_ROW) return fr__ix_sqerr(e->db, s, "read a vector");
    if (sqlite3_column_bytes(e->st, 0) != 4 * e->dim) {
        *score = -INFINITY;         /* fr_index_check reports it */
        return 0;
    }
    memcpy(e->buf, sqlite3_column_blob(e->st, 0), 4 * (size_t)e->dim);
    *score = fr__vscan_dot_f32(e->q, e->buf, e->dim);
    return 0;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The sorted distinct ids of the vectors used by documents the filter
 * matches. */
static int filter_vectors(sctx *x, int64_t **out, size_t *n) {
    char sql[MAX_FILTER_KEYS * 160 + 256];
    snprintf(sql, sizeof sql,
             "SELECT c.vec FROM documents d JOIN chunks c ON c.doc = d.id WHERE d.coll = ?1%s",
             x->fsql);
    sqlite3_stmt *st;
    int rc = fr__ix_prepare(x->c, sql, &st);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, x->coll.id);
    bind_filter(x, st);
    int64_t *a = NULL;
    size_t cnt = 0, cap = 0;
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 256;
            int64_t *p = fr_realloc(a, nc * sizeof *p);
            if (!p) {
                rc = fr_errf(FR_ENOMEM, "search: no memory");
                break;
            }
            a = p;
            cap = nc;
        }
        a[cnt++] = sqlite3_column_int64(st, 0);
    }
    if (!rc && s != SQLITE_DONE) rc = fr__ix_sqerr(x->c->db, s, "filter");
    sqlite3_finalize(st);
    if (rc) {
        fr_free(a);
        return rc;
    }
    if (cnt) qsort(a, cnt, sizeof *a, cmp_i64);
    size_t u = 0;
    for (size_t i = 0; i < cnt; i++)
        if (u == 0 || a[u - 1] != a[i]) a[u++] = a[i];
    *out = a;
    *n = u;
    return 0;
}

static bool has_id(const int64_t *a, size_t n, int64_t v) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a[mid] < v) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && a[lo] == v;
}

/* The int8 scan of the rows of SQLite (no cache): ids, approx, err. */
static int scan_sqlite(sctx *x, int64_t **ids, float **approx, float **err, size_t *n) {
    int32_t dim = x->coll.dim;
    size_t pad = fr__vscan_pad(dim), cap = 0, cnt = 0, blk = 256, nb = 0;
    int8_t *rows = fr_malloc_aligned(blk * pad);
    int32_t dots[256];
    float sc[256];
    int64_t *I = NULL;
    float *A = NULL, *E = NULL;
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (!rows) return fr_errf(FR_ENOMEM, "search: no memory");
    if ((rc = fr__ix_prepare(x->c, "SELECT id, i8, scale, err FROM vectors WHERE coll = ? ORDER BY id", &st)))
        goto out;
    sqlite3_bind_int64(st, 1, x->coll.id);
    fr_vscan_dot_fn dot = fr__vscan_dot();
    int s;
    for (;;) {
        s = sqlite3_step(st);
        bool row = s == SQLITE_ROW;
        if (row && sqlite3_column_bytes(st, 1) == dim) {
            if (cnt == cap) {
                size_t nc = cap ? cap * 2 : 1024;
                int64_t *pi = fr_realloc(I, nc * sizeof *pi);
                if (pi) I = pi;
                float *pa = pi ? fr_realloc(A, nc * sizeof *pa) : NULL;
                if (pa) A = pa;
                float *pe = pa ? fr_realloc(E, nc * sizeof *pe) : NULL;
                if (!pe) {
                    rc = fr_errf(FR_ENOMEM, "search: no memory");
                    break;
                }
                E = pe;
                cap = nc;
            }
            int8_t *r = rows + nb * pad;
            memcpy(r, sqlite3_column_blob(st, 1), (size_t)dim);
            memset(r + dim, 0, pad - (size_t)dim);
            sc[nb] = (float)sqlite3_column_double(st, 2);
            I[cnt + nb] = sqlite3_column_int64(st, 0);
            E[cnt + nb] = (float)sqlite3_column_double(st, 3);
            nb++;
        }
        if (nb == blk || (!row && nb) || (row && cnt + nb == cap && nb)) {
            dot(x->qcodes, rows, nb, pad, dots);
            for (size_t i = 0; i < nb; i++) A[cnt + i] = x->qscale * sc[i] * (float)dots[i];
            cnt += nb;
            nb = 0;
        }
        if (!row) break;
    }
    if (!rc && s != SQLITE_DONE) rc = fr__ix_sqerr(x->c->db, s, "scan vectors");
out:
    sqlite3_finalize(st);
    fr_free_aligned(rows);
    if (rc) {
        fr_free(I);
        fr_free(A);
        fr_free(E);
        return rc;
    }
    *ids = I;
    *approx = A;
    *err = E;
    *n = cnt;
    return 0;
}

static int vector_leg(sctx *x) {
    const fr_search_params *p = x->p;
    if (!x->has_q || x->coll.vectors <= 0) return 0;
    int32_t dim = x->coll.dim;
    int rc;
    int64_t *allowed_ids = NULL;
    size_t n_allowed = 0;
    if (x->nf && (rc = filter_vectors(x, &allowed_ids, &n_allowed))) return rc;
    if (x->nf && n_allowed == 0) return 0;

    ix_vcache *vc = NULL;
    if ((rc = fr__ix_cache_acquire(x->ix, x->c, &x->coll, &vc))) {
        fr_free(allowed_ids);
        return rc;
    }
    const int64_t *ids;
    const float *errs;
    size_t n = 0;
    int64_t *own_ids = NULL;
    float *approx = NULL, *own_err = NULL;
    const float *approx_ro = NULL;
    uint8_t *allowed = NULL;
    fr_vscan_hit *hits = NULL;
    float *fbuf = NULL;
    sqlite3_stmt *fst = NULL, *cst = NULL;
    if (vc) {
        ids = vc->ids;
        errs = vc->err;
        n = vc->n;
        /* the connection's scratch holds the scores (no page faults of a
         * fresh buffer per search); the dots go by blocks through the stack */
        if (x->c->scratch_cap < n) {
            size_t cap = n + n / 4 + 1024;
            float *sp = fr_malloc(cap * sizeof *sp);
            if (!sp) {
                rc = fr_errf(FR_ENOMEM, "search: no memory");
                goto out;
            }
            fr_free(x->c->scratch);
            x->c->scratch = sp;
            x->c->scratch_cap = cap;
        }
        float *ap = x->c->scratch;
        fr_vscan_dot_fn dot = fr__vscan_dot();
        int32_t dots[512];
        for (size_t b = 0; b < n; b += 512) {
            size_t m = n - b < 512 ? n - b : 512;
            dot(x->qcodes, vc->rows + b * vc->dim_pad, m, vc->dim_pad, dots);
            for (size_t i = 0; i < m; i++) ap[b + i] = x->qscale * vc->scale[b + i] * (float)dots[i];
        }
        approx_ro = ap;
    } else {
        if ((rc = scan_sqlite(x, &own_ids, &approx, &own_err, &n))) goto out;
        ids = own_ids;
        errs = own_err;
        approx_ro = approx;
    }
    if (n == 0) goto out;
    if (x->nf) {
        allowed = fr_calloc((n + 7) / 8, 1);
        if (!allowed) {
            rc = fr_errf(FR_ENOMEM, "search: no memory");
            goto out;
        }
        for (size_t i = 0; i < n; i++)
            if (has_id(allowed_ids, n_allowed, ids[i])) allowed[i >> 3] |= (uint8_t)(1u << (i & 7));
    }
    size_t k = (size_t)p->candidates;
    hits = fr_malloc(k * sizeof *hits);
    fbuf = fr_malloc((size_t)dim * sizeof *fbuf);
    if (!hits || !fbuf) {
        rc = fr_errf(FR_ENOMEM, "search: no memory");
        goto out;
    }
    if ((rc = fr__ix_prepare(x->c, "SELECT f32 FROM vec_f32 WHERE id = ?", &fst))) goto out;
    exact_ud eu = {fst, ids, x->qv, fbuf, dim, x->c->db};
    size_t nh = 0;
    if ((rc = fr__vscan_topk(approx_ro, errs, allowed, n, x->qerr, k, exact_score, &eu, hits, &nh,
                             &x->vexact)))
        goto out;
    /* each vector: its chunks in the snapshot (that the filter allows) */
    char sql[MAX_FILTER_KEYS * 160 + 256];
    snprintf(sql, sizeof sql,
             "SELECT c.id, c.doc FROM chunks c%s WHERE c.vec = ?1%s ORDER BY c.id",
             x->nf ? " JOIN documents d ON d.id = c.doc" : "", x->fsql);
    if ((rc = fr__ix_prepare(x->c, sql, &cst))) goto out;
    size_t cap = 0;
    for (size_t h = 0; h < nh && x->nvec < k && !rc; h++) {
        if (hits[h].score == -INFINITY) continue;
        sqlite3_reset(cst);
        sqlite3_bind_int64(cst, 1, ids[hits[h].idx]);
        bind_filter(x, cst);
        int s = SQLITE_DONE;
        while (x->nvec < k && (s = sqlite3_step(cst)) == SQLITE_ROW) {
            fr_fuse_item it = {sqlite3_column_int64(cst, 0), sqlite3_column_int64(cst, 1),
                               hits[h].score};
            if ((rc = push_item(&x->vec, &x->nvec, &cap, it))) break;
        }
        if (!rc && x->nvec < k && s != SQLITE_DONE) rc = fr__ix_sqerr(x->c->db, s, "chunks of a vector");
    }
out:
    sqlite3_finalize(fst);
    sqlite3_finalize(cst);
    if (vc) fr__ix_cache_release(x->ix, vc);
    fr_free(allowed_ids);
    fr_free(own_ids);
    fr_free(own_err);
    fr_free(approx);
    fr_free(allowed);
    fr_free(hits);
    fr_free(fbuf);
    return rc;
}

/* ---- the query vector ---- */

static int embed_query(sctx *x) {
    fr_index *ix = x->ix;
    fr_search_model m;
    memset(&m, 0, sizeof m);
    int rc = ix->models.acquire(ix->models.ud, x->coll.model, FR_SEARCH_USE_EMBED, &m);
    if (rc) return rc;
    int32_t dim = x->coll.dim;
    size_t pad = fr__vscan_pad(dim), nl;
    char *norm = NULL;
    if (m.dim != dim) {
        rc = fr_errf(FR_EINVAL, "model: '%s' gives %d floats, collection '%s' holds %d",
                     x->coll.model, (int)m.dim, x->coll.name, (int)dim);
        goto out;
    }
    x->qv = fr_malloc((size_t)dim * sizeof *x->qv);
    x->qcodes = fr_malloc_aligned(pad);
    norm = fr__ix_norm_text(x->p->query, strlen(x->p->query), &nl);
    if (!x->qv || !x->qcodes || !norm) {
        rc = fr_errf(FR_ENOMEM, "search: no memory");
        goto out;
    }
    const char *t = norm;
    if ((rc = m.embed(m.obj, &t, &nl, 1, x->qv))) goto out;
    x->has_q = fr__vscan_normalize(x->qv, dim);
    if (x->has_q) fr__vscan_quantize(x->qv, dim, pad, x->qcodes, &x->qscale, &x->qerr);
out:
    fr_free(norm);
    ix->models.release(ix->models.ud, &m);
    return rc;
}

/* ---- the search ---- */

typedef struct dset {
    int64_t *slot;
    size_t cap;
} dset;

/* true when v was not in the set yet (and adds it) */
static bool dset_add(dset *d, int64_t v) {
    size_t i = (size_t)((uint64_t)v * 0x9e3779b97f4a7c15ULL >> 20) & (d->cap - 1);
    while (d->slot[i] != INT64_MIN) {
        if (d->slot[i] == v) return false;
        i = (i + 1) & (d->cap - 1);
    }
    d->slot[i] = v;
    return true;
}

static int by_rerank(const void *a, const void *b) {
    const fr_search_hit *x = a, *y = b;
    if (x->rerank != y->rerank) return x->rerank > y->rerank ? -1 : 1;
    return x->rank_fused - y->rank_fused;
}

/* Parameter checks that need no database: the values, the collection's
 * name, and what an index without models cannot do. */
static int check_request(const fr_index *ix, const fr_search_params *p) {
    int rc = check_params(p);
    if (rc) return rc;
    if (fr__ix_check_name(p->collection, "collection"))
        return fr_errf(FR_ENOENT, "collection '%s' not found", p->collection ? p->collection : "");
    if (p->mode != FR_SEARCH_BM25 && !ix->has_models)
        return fr_errf(FR_EUNSUPP, "mode: this index has no models: bm25 only");
    if (p->rerank && !ix->has_models)
        return fr_errf(FR_EUNSUPP, "rerank: this index has no models");
    return 0;
}

/* Everything before the read transaction: the filter parsed, the
 * collection found and its model compared, the query's terms made and
 * the query embedded (as the mode asks), the reranker acquired
 * (x->have_rr; released by fr_index_search). */
static int prepare(sctx *x) {
    const fr_search_params *p = x->p;
    fr_index *ix = x->ix;
    int rc;
    if (p->filter && (rc = parse_filter(x, p->filter))) return rc;
    if ((rc = fr__ix_coll_find(x->c, p->collection, &x->coll))) return rc;
    if (p->model && strcmp(p->model, x->coll.model))
        return fr_errf(FR_EINVAL, "model: '%s' is not the model of collection '%s' ('%s')",
                       p->model, x->coll.name, x->coll.model);
    if (p->mode != FR_SEARCH_VECTOR &&
        (rc = fr__ix_query_terms(x->c, p->query, x->coll.stemming, &x->terms)))
        return rc;
    if (p->mode != FR_SEARCH_BM25 && (rc = embed_query(x))) return rc;
    if (p->rerank) {
        if ((rc = ix->models.acquire(ix->models.ud, p->rerank, FR_SEARCH_USE_RERANK, &x->rr)))
            return rc;
        x->have_rr = true;
        if (!x->rr.rerank) return fr_errf(FR_EUNSUPP, "rerank: model '%s' cannot rerank", p->rerank);
    }
    return 0;
}

/* Inside the read transaction: the collection read again from this
 * snapshot (it may have been dropped since prepare), then the legs the
 * mode asks for. */
static int run_legs(sctx *x) {
    const fr_search_params *p = x->p;
    int rc = fr__ix_coll_by_id(x->c, x->coll.id, &x->coll);
    if (rc) {
        if (rc == FR_ENOENT) rc = fr_errf(FR_ENOENT, "collection '%s' not found", p->collection);
        return rc;
    }
    if (p->mode != FR_SEARCH_VECTOR && (rc = bm25_leg(x))) return rc;
    if (p->mode != FR_SEARCH_BM25 && (rc = vector_leg(x))) return rc;
    return 0;
}

/* The legs fused into x->fused; a one-leg mode scores by its leg. */
static int fuse_legs(sctx *x) {
    const fr_search_params *p = x->p;
    /* the bm25 leg's score is -bm25 (higher better) */
    for (size_t i = 0; i < x->nbm; i++) x->bm[i].score = -x->bm[i].score;
    int rc = fr__search_fuse(p->fusion, p->rrf_k, p->w_bm25, p->w_vector, x->bm, x->nbm, x->vec,
                             x->nvec, &x->fused, &x->nfused);
    if (rc) return rc;
    if (p->mode != FR_SEARCH_HYBRID) {
        for (size_t i = 0; i < x->nfused; i++)
            x->fused[i].score = p->mode == FR_SEARCH_BM25 ? x->fused[i].bm25 : x->fused[i].vector;
    }
    return 0;
}

/* group_by_document: keep each document's first chunk of the fused
 * order, in place. */
static int group_by_document(sctx *x) {
    dset seen = {NULL, 16};
    while (seen.cap < 2 * x->nfused) seen.cap *= 2;
    seen.slot = fr_malloc(seen.cap * sizeof *seen.slot);
    if (!seen.slot) return fr_errf(FR_ENOMEM, "search: no memory");
    for (size_t i = 0; i < seen.cap; i++) seen.slot[i] = INT64_MIN;
    size_t m = 0;
    for (size_t i = 0; i < x->nfused; i++)
        if (dset_add(&seen, x->fused[i].doc)) x->fused[m++] = x->fused[i];
    x->nfused = m;
    fr_free(seen.slot);
    return 0;
}

/* The first keep fused chunks as hits of res (text, document id and
 * metadata read from the snapshot; a chunk the snapshot lacks is
 * skipped), ranked in the fused order. */
static int read_hits(sctx *x, size_t keep, fr_search_result *res) {
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT c.position, d.doc_id, d.metadata, fts_%lld.text FROM chunks c"
             " JOIN documents d ON d.id = c.doc JOIN fts_%lld ON fts_%lld.rowid = c.id"
             " WHERE c.id = ?",
             (long long)x->coll.id, (long long)x->coll.id, (long long)x->coll.id);
    sqlite3_stmt *dst;
    int rc = fr__ix_prepare(x->c, sql, &dst);
    if (rc) return rc;
    for (size_t i = 0; i < keep; i++) {
        const fr_fused *f = &x->fused[i];
        sqlite3_reset(dst);
        sqlite3_bind_int64(dst, 1, f->chunk_id);
        int s = sqlite3_step(dst);
        if (s == SQLITE_DONE) continue;
        if (s != SQLITE_ROW) {
            rc = fr__ix_sqerr(x->c->db, s, "read a hit");
            break;
        }
        fr_search_hit *h = &res->hits[res->n];
        h->chunk_id = f->chunk_id;
        h->position = sqlite3_column_int(dst, 0);
        h->document_id = col_dup(dst, 1);
        h->metadata = col_dup(dst, 2);
        h->text = col_dup(dst, 3);
        res->n++;
        if (!h->document_id || !h->metadata || !h->text) {
            rc = fr_errf(FR_ENOMEM, "search: no memory");
            break;
        }
        h->score = f->score;
        h->has_bm25 = f->rank_bm25 > 0;
        h->bm25 = h->has_bm25 ? -f->bm25 : 0;
        h->rank_bm25 = f->rank_bm25;
        h->has_vector = f->rank_vector > 0;
        h->vector = h->has_vector ? f->vector : 0;
        h->rank_vector = f->rank_vector;
        h->rank_fused = (int32_t)res->n;
    }
    sqlite3_finalize(dst);
    return rc;
}

/* The reranker scores every hit of res against the query; the hits are
 * ordered by that score (ties: the fused order), which becomes their
 * score. */
static int rerank_hits(sctx *x, fr_search_result *res) {
    const fr_search_params *p = x->p;
    size_t n = res->n;
    const char **docs = fr_malloc(n * sizeof *docs);
    size_t *lens = fr_malloc(n * sizeof *lens);
    float *sc = fr_malloc(n * sizeof *sc);
    int rc;
    if (!docs || !lens || !sc) {
        rc = fr_errf(FR_ENOMEM, "search: no memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        docs[i] = res->hits[i].text;
        lens[i] = strlen(res->hits[i].text);
    }
    rc = x->rr.rerank(x->rr.obj, p->query, strlen(p->query), docs, lens, (int32_t)n, sc);
    for (size_t i = 0; i < n && !rc; i++) {
        res->hits[i].rerank = sc[i];
        res->hits[i].has_rerank = true;
    }
    if (rc) goto out;
    qsort(res->hits, n, sizeof *res->hits, by_rerank);
    for (size_t i = 0; i < n; i++) {
        res->hits[i].rank_rerank = (int32_t)(i + 1);
        res->hits[i].score = res->hits[i].rerank;
    }
out:
    fr_free(docs);
    fr_free(lens);
    fr_free(sc);
    return rc;
}

/* res cut to its first top_k hits. */
static void cut_hits(fr_search_result *res, int32_t top_k) {
    while (res->n > (size_t)top_k) {
        fr_search_hit *h = &res->hits[--res->n];
        fr_free(h->document_id);
        fr_free(h->text);
        fr_free(h->metadata);
    }
}

/* The steps in the order the file header gives: check, prepare, one
 * read transaction for the legs and the hits' texts, rerank after it,
 * cut to top_k. */
int fr_index_search(fr_index *ix, const fr_search_params *p, fr_search_result **out) {
    *out = NULL;
    uint64_t t0 = fr_now_ns();
    int rc = check_request(ix, p);
    if (rc) return rc;

    sctx x;
    memset(&x, 0, sizeof x);
    x.ix = ix;
    x.p = p;
    fr_search_result *res = NULL;
    bool in_txn = false;
    if ((rc = fr__ix_conn_get(ix, &x.c))) return rc;
    if ((rc = prepare(&x))) goto out;

    if ((rc = fr__ix_begin_read(x.c))) goto out;
    in_txn = true;
    if ((rc = run_legs(&x))) goto out;
    if ((rc = fuse_legs(&x))) goto out;
    if (p->group_by_document && x.nfused && (rc = group_by_document(&x))) goto out;
    size_t keep = (size_t)p->top_k;
    if (p->rerank && (size_t)p->rerank_top_n > keep) keep = (size_t)p->rerank_top_n;
    if (keep > x.nfused) keep = x.nfused;

    res = fr_calloc(1, sizeof *res);
    if (!res || (keep && !(res->hits = fr_calloc(keep, sizeof *res->hits)))) {
        rc = fr_errf(FR_ENOMEM, "search: no memory");
        goto out;
    }
    if ((rc = read_hits(&x, keep, res))) goto out;
    fr__ix_commit(ix, x.c, false);
    in_txn = false;

    if (p->rerank && res->n && (rc = rerank_hits(&x, res))) goto out;
    cut_hits(res, p->top_k);
    res->dropped_terms = x.dropped;
    res->n_dropped = x.ndropped;
    x.dropped = NULL;
    x.ndropped = 0;
    res->bm25_candidates = (int32_t)x.nbm;
    res->vector_candidates = (int32_t)x.nvec;
    res->vector_exact = x.vexact;
    res->took_ms = (double)(fr_now_ns() - t0) / 1e6;
    *out = res;
    res = NULL;
out:
    if (in_txn) fr__ix_rollback(ix, x.c, false);
    fr__ix_conn_put(ix, x.c);
    if (x.have_rr) ix->models.release(ix->models.ud, &x.rr);
    fr_search_result_free(res);
    for (int j = 0; j < x.nf; j++) {
        fr_free(x.f[j].path);
        fr_free(x.f[j].text);
    }
    for (size_t i = 0; i < x.ndropped; i++) fr_free(x.dropped[i]);
    fr_free(x.dropped);
    fr__ix_terms_free(&x.terms);
    fr_free(x.qv);
    fr_free_aligned(x.qcodes);
    fr_free(x.bm);
    fr_free(x.vec);
    fr_free(x.fused);
    return rc;
}
