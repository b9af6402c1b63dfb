/*
 * index_int.h — internals of the document index (search.h), shared by its
 * files and their tests:
 *
 *   index.c         open/close, the connection pool, the schema, SQL
 *                   helpers, collections, fr_index_check
 *   index_write.c   fr_index_add, fr_index_delete (validation, chunking,
 *                   embedding in batches, one transaction per document)
 *   index_cache.c   the in-memory int8 copies of each collection's vectors
 *   index_search.c  fr_index_search: the BM25 leg, the vector leg, fusion
 *
 * Schema (DIR/frugal.db, WAL; schema version in meta):
 *
 *   meta(key PRIMARY KEY, value)       format = 'frugal-index', schema = 1
 *   collections(id AUTOINCREMENT, name UNIQUE, model, dim, chunk_size,
 *       chunk_overlap, stemming, created, generation, documents, chunks,
 *       vectors, text_bytes)           counters kept in step by every write;
 *                                      generation +1 in every write
 *                                      transaction of the collection
 *   documents(id, coll, doc_id, text, metadata, hash, chunks, updated)
 *       UNIQUE(coll, doc_id); metadata minified by json(); hash = 16 bytes
 *       over the text and the metadata (unchanged detection)
 *   chunks(id AUTOINCREMENT, coll, doc, position, start, "end", tokens, vec)
 *       text = the document's bytes [start, end); its copy lives in the FTS
 *       table under rowid = chunk id; vec = its vector's id
 *   vectors(id AUTOINCREMENT, coll, hash, scale, err, i8)
 *       UNIQUE(coll, hash): one per distinct whitespace-collapsed chunk
 *       text; i8 = dim codes with their scale and error (vscan.h)
 *   vec_f32(id = the vector's, f32)    dim floats (unit length); a table
 *       of its own so that loading or scanning the int8 codes reads only
 *       them (~dim + 40 bytes a row, not 5·dim)
 *   fts_<coll id>    fts5(text, tokenize = '[porter ]unicode61 remove_diacritics 2')
 *   fts_<coll id>_v  fts5vocab(fts_<id>, 'row'): per-term chunk counts
 *
 * Locking: the pool's mutex guards the free list of connections; write_mu
 * serialises this process's write transactions (other processes wait in
 * SQLite's busy handler); cache_mu guards the list of vector caches, their
 * reference counts and the byte total; each cache has a rwlock (searches
 * read, reloads and write deltas write).  Order: write_mu, then cache_mu,
 * then a cache's rwlock (a cache's rwlock is never taken with cache_mu
 * held except by trywrlock).
 */
#ifndef FR_SEARCH_INDEX_INT_H
#define FR_SEARCH_INDEX_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "search/search.h"

#define IX_SCHEMA 1
#define IX_EMBED_BATCH 32           /* texts per embed() call */
#define IX_GROUP_CHUNKS 64          /* new chunks gathered before embedding */
#define IX_MAX_TERMS 256            /* distinct query terms of the BM25 leg */

typedef struct ix_conn {
    sqlite3 *db;
    bool in_use;
    bool qtok;                      /* the temp tables of query_terms exist */
    float *scratch;                 /* [scratch_cap] approximate scores of a vector scan */
    size_t scratch_cap;
} ix_conn;

/* One collection's int8 copies (index_cache.c). */
typedef struct ix_vcache {
    int64_t coll;
    int32_t dim;
    size_t dim_pad;
    int64_t gen;                    /* the collection's generation they show; -1 none */
    size_t n, cap;
    int8_t *rows;                   /* [cap][dim_pad], 64-byte aligned */
    int64_t *ids;                   /* [cap] vector ids */
    float *scale, *err;             /* [cap] */
    size_t bytes;                   /* counted: cap × (dim_pad + 16) */
    uint64_t used;                  /* LRU tick of the last search */
    int refs;                       /* searches and writers holding it (cache_mu) */
    bool dead;                      /* its collection was dropped: free at refs 0 */
    pthread_rwlock_t lock;
    struct ix_vcache *next;
} ix_vcache;

struct fr_index {
    char *dir, *path;
    fr_search_models models;
    bool has_models;
    size_t cache_limit;
    int32_t busy_ms;
    bool sync_full;                 /* PRAGMA synchronous=FULL on every connection */
    bool tight;                     /* a write found the disk full (write_mu): writes
                                       checkpoint the WAL (index.c, "a full disk") */
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    ix_conn *conns;
    int n_conns;
    pthread_mutex_t write_mu;
    pthread_mutex_t cache_mu;
    ix_vcache *caches;
    size_t cache_total;
    uint64_t tick;
};

/* A collection's row. */
typedef struct ix_coll {
    int64_t id;
    char name[FR_SEARCH_MAX_NAME + 1];
    char model[256];
    int32_t dim, chunk_size, chunk_overlap;
    bool stemming;
    int64_t generation, documents, chunks, vectors, text_bytes;
    double created;
} ix_coll;

/* ---- index.c ---- */
int  fr__ix_conn_get(fr_index *ix, ix_conn **out);
void fr__ix_conn_put(fr_index *ix, ix_conn *c);
/* Map an SQLite failure to FR_E* with a detail "index: what: sqlite
 * message"; a write that found no space (SQLITE_FULL, or an I/O error
 * with errno ENOSPC or EDQUOT) is FR_ENOSPC with the detail "data
 * directory DIR: no space left on its disk (what: sqlite message)". */
int  fr__ix_sqerr(sqlite3 *db, int rc, const char *what);
int  fr__ix_exec(ix_conn *c, const char *sql);
int  fr__ix_prepare(ix_conn *c, const char *sql, sqlite3_stmt **st);
int  fr__ix_begin_read(ix_conn *c);
int  fr__ix_begin_write(fr_index *ix, ix_conn *c);   /* takes write_mu */
int  fr__ix_commit(fr_index *ix, ix_conn *c, bool write);
void fr__ix_rollback(fr_index *ix, ix_conn *c, bool write);
/* After a write found no space: copy the WAL's pages into the database
 * and truncate the WAL to nothing (SQLite's TRUNCATE checkpoint, under
 * write_mu), and keep the WAL short from now on (index.c, "a full
 * disk").  0 when the WAL is empty now: the write may be tried again;
 * else the checkpoint's error (no space to grow the database by the
 * WAL's pages, another process reading). */
int  fr__ix_reclaim(fr_index *ix, ix_conn *c);
/* FR_EINVAL unless 1..64 of [A-Za-z0-9_.-]. */
int  fr__ix_check_name(const char *name, const char *field);
/* FR_ENOENT "collection 'x' not found". */
int  fr__ix_coll_find(ix_conn *c, const char *name, ix_coll *out);
int  fr__ix_coll_by_id(ix_conn *c, int64_t id, ix_coll *out);
/* 16-byte hash of text with ASCII blank runs collapsed to one space and
 * the ends trimmed (the dedup key of vectors). */
void fr__ix_norm_hash(const char *s, size_t n, uint8_t out[16]);
void fr__ix_hash(const void *a, size_t na, const void *b, size_t nb, uint8_t out[16]);
/* Normalised text (as hashed), fr_malloc'd. */
char *fr__ix_norm_text(const char *s, size_t n, size_t *out_len);

/* ---- index_cache.c ---- */
/* The cache of coll holding at least generation gen, read-locked, with a
 * reference; loaded (in the caller's read transaction on c) when older.
 * *out NULL (return 0) when it does not fit in the budget: scan SQLite. */
int  fr__ix_cache_acquire(fr_index *ix, ix_conn *c, const ix_coll *coll, ix_vcache **out);
void fr__ix_cache_release(fr_index *ix, ix_vcache *vc);
/* After a committed write that moved coll from gen0 to gen0 + 1: apply
 * the added vectors and removed ids when the cache is at gen0, else
 * leave it to reload. */
typedef struct ix_vadd {
    int64_t id;
    float scale, err;
    const int8_t *codes;            /* [dim] */
} ix_vadd;
void fr__ix_cache_apply(fr_index *ix, int64_t coll, int64_t gen0, const ix_vadd *add, size_t n_add,
                        const int64_t *del, size_t n_del);
void fr__ix_cache_drop(fr_index *ix, int64_t coll);
void fr__ix_cache_free_all(fr_index *ix);
size_t fr__ix_cache_bytes_of(fr_index *ix, int64_t coll);

/* ---- index_search.c: fusion (pure, for tests) ---- */

/* One leg's ranking, best first; score higher better (BM25: -bm25). */
typedef struct fr_fuse_item {
    int64_t chunk_id;
    int64_t doc;                    /* the document's row (for grouping) */
    double score;
} fr_fuse_item;

typedef struct fr_fused {
    int64_t chunk_id, doc;
    double score;                   /* fused */
    double bm25, vector;            /* the legs' scores as given (valid where rank > 0) */
    int32_t rank_bm25, rank_vector; /* 1-based; 0 = not in that leg */
} fr_fused;

/* Fuse two rankings (either may be empty) into *out (fr_malloc'd, every
 * chunk of either leg once), best first; ties by the better of the two
 * ranks, then chunk id.
 *   RRF:    score = Σ_legs 1 / (rrf_k + rank)
 *   linear: score = w_bm25 · nb + w_vector · nv, n = (s - min) / (max - min)
 *           over that leg's list (1 when max == min); a chunk missing from
 *           a leg gets 0 for it.
 * FR_ENOMEM. */
int fr__search_fuse(int fusion, int32_t rrf_k, double w_bm25, double w_vector,
                    const fr_fuse_item *bm25, size_t n_bm25, const fr_fuse_item *vec, size_t n_vec,
                    fr_fused **out, size_t *n_out);

/* The query's terms as the collection's tokenizer makes them (unicode61
 * remove_diacritics 2: plain[i]; with porter on top: stem[i] = the indexed
 * form, else the same as plain[i]), distinct by the indexed form, in
 * query order.  Arrays and strings fr_malloc'd; free with fr__ix_terms_free. */
typedef struct ix_terms {
    char **plain, **stem;
    size_t n;
} ix_terms;
int  fr__ix_query_terms(ix_conn *c, const char *q, bool stemming, ix_terms *out);
void fr__ix_terms_free(ix_terms *t);

#endif
