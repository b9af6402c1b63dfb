/*
 * search.h — the document index: collections of documents cut into
 * chunks, searched by BM25 (SQLite FTS5), by vectors (an exact int8 scan
 * rescored in float32) or both fused, optionally reranked; and the
 * retrieval half of answering questions (the prompt with numbered
 * sources).
 *
 * Storage: one SQLite database, DIR/frugal.db, in WAL mode (readers never
 * wait for the writer; several processes may share it: the server, and
 * `frugal index` while it runs), busy timeout 5 s.  Every write is one
 * transaction: each document is added, replaced or deleted whole.
 * Durability (fr_index_config.sync_full): by default synchronous=NORMAL,
 * where a commit is not flushed to the disk (only the WAL's checkpoints
 * are): a crash of the process loses nothing committed, but a power cut
 * or a kernel crash may lose the last committed transactions (never half
 * of one; the database stays consistent).  sync_full sets
 * synchronous=FULL: every commit is fsync'ed before it returns, so what
 * was acknowledged survives a power cut, at the price of one fsync a
 * document.
 *
 * A full disk: a write that finds no space (SQLITE_FULL, or an I/O error
 * with ENOSPC) is FR_ENOSPC, its detail naming the data directory; its
 * transaction is rolled back, so the index stays as it was before that
 * document, and writes work again once there is space.
 *
 * Models: the index never loads a model itself.  The caller hands it a
 * provider (fr_search_models): a function that acquires a model by name
 * and fills an fr_search_model with the calls the index needs (count
 * tokens, embed texts, rerank), and one that releases it.  The server
 * builds one on its manager (fr_search_models_manager); tests use a fake
 * one or the real tiny-bert.  A collection is bound to the embedding
 * model it was created with (name and dimension recorded); a request that
 * names another model is FR_EINVAL.
 *
 * Limits (FR_ETOOLONG / FR_EINVAL past them, naming the field):
 *   document text   FR_SEARCH_MAX_DOC_BYTES (1 MiB) of valid UTF-8
 *   document id     1 .. FR_SEARCH_MAX_ID bytes of UTF-8 without controls
 *   metadata        a JSON object, at most FR_SEARCH_MAX_META bytes
 *   collection name 1 .. 64 of [A-Za-z0-9_.-]
 *   top_k           1 .. FR_SEARCH_MAX_TOP_K; candidates 1 .. 10000
 *
 * Memory: the int8 copies of a collection's vectors are loaded into the
 * counted heap at its first vector search and kept in step with writes:
 * dim rounded up to 64 bytes + 16 bytes (id, scale, error) per vector, so
 * 100,000 vectors of 384 dimensions hold 40 MB.  All collections together
 * hold at most cache_bytes (fr_index_config; least recently searched
 * first out); a collection that does not fit is scanned from SQLite
 * instead (slower, no memory).  Float32 vectors are read from SQLite for
 * the candidates only.
 *
 * Thread-safety: every function may be called from any thread at once on
 * one fr_index (a pool of SQLite connections; writes are serialised).
 * Results are owned by the caller and freed with their _free function.
 * Errors: 0 or a negative FR_E* with a detail (fr_errdetail) that names
 * the field or the collection.
 */
#ifndef FR_SEARCH_SEARCH_H
#define FR_SEARCH_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "manager/manager.h"

#define FR_SEARCH_MAX_DOC_BYTES (1u << 20)
#define FR_SEARCH_MAX_ID 256
#define FR_SEARCH_MAX_META 65536
#define FR_SEARCH_MAX_NAME 64
#define FR_SEARCH_MAX_TOP_K 1000
#define FR_SEARCH_MAX_CANDIDATES 10000

typedef struct fr_index fr_index;

/* ---- models: what the caller provides ---- */

/* What a model is acquired for. */
enum fr_search_use {
    FR_SEARCH_USE_EMBED = 1,    /* embed, count_tokens, dim */
    FR_SEARCH_USE_RERANK = 2,   /* rerank */
    FR_SEARCH_USE_GENERATE = 3  /* count_tokens, max_tokens (the prompt budget of ask) */
};

/* One acquired model.  The calls may run on any thread while the model
 * is held; they return 0 or a negative FR_E* (with a detail). */
typedef struct fr_search_model {
    void *obj;                  /* the provider's */
    int32_t dim;                /* EMBED: floats per vector */
    int32_t max_tokens;         /* the longest input it takes, in tokens */
    /* Tokens of text[0..len) without special tokens (EMBED: the chunker's
     * unit; GENERATE: the prompt budget). */
    int (*count_tokens)(void *obj, const char *text, size_t len, int32_t *n);
    /* EMBED: out[i·dim ..] = the vector of texts[i] for i < n (cut to
     * max_tokens if longer).  Any length; the index normalises. */
    int (*embed)(void *obj, const char *const *texts, const size_t *lens, int32_t n, float *out);
    /* RERANK: scores[i] = relevance of docs[i] to query (higher better). */
    int (*rerank)(void *obj, const char *query, size_t qlen, const char *const *docs,
                  const size_t *lens, int32_t n, float *scores);
} fr_search_model;

typedef struct fr_search_models {
    void *ud;
    /* Acquire model `name` for `use` and fill *out.  FR_ENOENT (unknown
     * model), FR_EUNSUPP (it cannot do that use), FR_EBUDGET/FR_EBUSY
     * (cannot load now), each with a detail naming the model. */
    int  (*acquire)(void *ud, const char *name, int use, fr_search_model *out);
    void (*release)(void *ud, fr_search_model *m);
} fr_search_models;

/* The provider the server uses: models of the manager (fr_manager_acquire
 * / release around each use; encoders through their batcher with
 * fr_batcher_run, retried while it is busy; decoders for GENERATE).  mg is
 * not owned and must outlive every index that uses the provider. */
void fr_search_models_manager(fr_manager *mg, fr_search_models *out);

/* ---- the index ---- */

typedef struct fr_index_config {
    const char *data_dir;           /* created if missing; the database is DIR/frugal.db */
    const fr_search_models *models; /* copied; NULL: no model (bm25 search and deletes only) */
    size_t cache_bytes;             /* in-memory int8 vectors, all collections; 0 = 256 MiB,
                                       SIZE_MAX = no limit */
    int32_t busy_timeout_ms;        /* waiting for another process's write; 0 = 5000 */
    int32_t max_connections;        /* SQLite connections in the pool; 0 = 8 */
    bool sync_full;                 /* PRAGMA synchronous=FULL (every commit on the disk when
                                       it returns); false: NORMAL (see Storage above) */
} fr_index_config;

/* Open (creating the directory, the database and its schema when
 * missing).  FR_EIO (directory or database cannot be made or opened),
 * FR_ENOSPC (no space to make them), FR_EFORMAT (not a frugal index, or
 * the schema of a newer frugal), FR_ENOMEM. */
int  fr_index_open(const fr_index_config *cfg, fr_index **out);
/* Close every connection and free the caches.  No call may be running. */
void fr_index_close(fr_index *ix);

/* The synchronous level SQLite reports on the index's connections
 * (PRAGMA synchronous: 1 NORMAL, 2 FULL). */
int  fr_index_synchronous(fr_index *ix, int *level);

/* Counted heap the index holds now (vector caches and SQLite's own heap
 * when SQLite was configured to use the counted allocator, as
 * fr_index_open does when it is the first user of SQLite). */
size_t fr_index_cache_bytes(fr_index *ix);

/* ---- collections ---- */

typedef struct fr_collection_params {
    const char *name;           /* 1..64 of [A-Za-z0-9_.-] */
    const char *model;          /* the embedding model (acquired once to learn its dimension) */
    int32_t chunk_size;         /* tokens; 0 = min(256, the model's max_tokens - 2) */
    int32_t chunk_overlap;      /* tokens; -1 = min(32, chunk_size / 8); 0 = none */
    bool stemming;              /* FTS5 porter stemming (English) */
} fr_collection_params;

typedef struct fr_collection_info {
    char name[FR_SEARCH_MAX_NAME + 1];
    char model[256];
    int32_t dim, chunk_size, chunk_overlap;
    bool stemming;
    int64_t documents, chunks;
    int64_t vectors;            /* distinct chunk texts: one vector each */
    int64_t text_bytes;         /* of the documents' texts */
    int64_t vector_bytes;       /* stored: vectors × (4·dim + dim + 24) */
    int64_t cached_bytes;       /* int8 copies in memory now (0 = not loaded) */
    double created;             /* unix time */
} fr_collection_info;

/* Create a collection.  FR_EINVAL (name, chunk sizes: chunk_size in
 * 16..8192 and at most the model's max_tokens - 2, overlap at most half
 * of it), FR_ECONFLICT (exists), FR_ENOSPC (the disk is full), the
 * provider's errors for the model (FR_ENOENT unknown, FR_EUNSUPP not an
 * embedding model).  *out (may be NULL) receives its info. */
int fr_index_collection_create(fr_index *ix, const fr_collection_params *p, fr_collection_info *out);
/* FR_ENOENT when there is no such collection. */
int fr_index_collection_get(fr_index *ix, const char *name, fr_collection_info *out);
/* Every collection, by name; *out fr_malloc'd (fr_free), NULL when *n is 0. */
int fr_index_collection_list(fr_index *ix, fr_collection_info **out, size_t *n);
/* Drop a collection with its documents, chunks and vectors (one
 * transaction).  FR_ENOENT. */
int fr_index_collection_delete(fr_index *ix, const char *name);

/* ---- documents ---- */

typedef struct fr_doc_in {
    const char *id;             /* NULL or "": a random id (32 hex digits) */
    const char *text;
    size_t len;                 /* bytes of text */
    const char *metadata;       /* a JSON object (NUL-terminated), or NULL for {} */
} fr_doc_in;

enum fr_add_status { FR_ADD_ADDED, FR_ADD_REPLACED, FR_ADD_UNCHANGED };

typedef struct fr_add_result {
    char id[FR_SEARCH_MAX_ID + 1];
    int32_t chunks;
    int32_t embedded;           /* chunks embedded now (others reused a stored vector) */
    int status;                 /* fr_add_status */
} fr_add_result;

/* Add (or replace: same id) n documents to a collection.  Every document
 * is validated before anything is written (a bad one fails the call with
 * the index untouched: FR_EINVAL/FR_ETOOLONG naming "documents[i].text",
 * ".id" or ".metadata"; a duplicate id in the call is FR_EINVAL).  Then
 * documents are chunked with the collection's model, the chunks whose
 * text (whitespace-collapsed) has no stored vector yet are embedded in
 * batches, and each document is written in one transaction; a document
 * whose text and metadata equal the stored ones is left alone
 * (unchanged).  model: NULL, or it must be the collection's (FR_EINVAL).
 * results (n entries, may be NULL) say what happened to each; *n_done
 * (may be NULL) = documents committed, which on a later failure (the
 * model, the disk) are the first *n_done.  FR_ENOENT (collection), the
 * provider's errors, FR_ENOSPC (the disk is full: the documents from
 * *n_done on were not stored), FR_EIO/FR_EBUSY (database), FR_ENOMEM. */
int fr_index_add(fr_index *ix, const char *collection, const char *model, const fr_doc_in *docs,
                 size_t n, fr_add_result *results, size_t *n_done);

/* Delete one document (its chunks, FTS rows and the vectors no other
 * chunk uses) in one transaction.  FR_ENOENT (collection or document). */
int fr_index_delete(fr_index *ix, const char *collection, const char *doc_id);

/* ---- search ---- */

enum fr_search_mode { FR_SEARCH_HYBRID, FR_SEARCH_BM25, FR_SEARCH_VECTOR };
enum fr_search_fusion { FR_FUSION_RRF, FR_FUSION_LINEAR };

typedef struct fr_search_params {
    const char *collection;
    const char *query;          /* non-empty UTF-8 */
    const char *model;          /* NULL, or must be the collection's model */
    int32_t top_k;              /* 10; 1 .. FR_SEARCH_MAX_TOP_K */
    int mode;                   /* FR_SEARCH_HYBRID */
    int fusion;                 /* FR_FUSION_RRF */
    int32_t rrf_k;              /* 60: score = Σ_legs 1 / (rrf_k + rank), ranks from 1 */
    double w_bm25, w_vector;    /* linear: Σ w · (s - min) / (max - min) per leg; 0.5, 0.5
                                   (a hit missing from a leg gets 0 for it; a leg whose
                                   scores are all equal gives 1) */
    int32_t candidates;         /* per leg; 100 */
    const char *filter;         /* JSON object of scalars: metadata key = value for each; NULL none */
    const char *rerank;         /* a reranker model, or NULL */
    int32_t rerank_top_n;       /* fused results reranked; 20 (at least top_k are) */
    bool group_by_document;     /* the best chunk of each document only */
    double common_share;        /* BM25 drops a query term in more than this share of chunks... */
    int64_t common_min;         /* ...and in more than this many; 0.1 and 1000 */
} fr_search_params;

/* The defaults above (query and collection NULL). */
void fr_search_params_init(fr_search_params *p);

typedef struct fr_search_hit {
    char *document_id;
    int64_t chunk_id;
    int32_t position;           /* of the chunk in its document, from 0 */
    char *text;                 /* the chunk's text */
    char *metadata;             /* the document's metadata, a JSON object */
    double score;               /* what the order is by, higher better: rerank score if
                                   reranked, else the fused score (hybrid), -bm25 (bm25), or
                                   the cosine (vector) */
    double bm25, vector, rerank;        /* valid where has_* */
    bool has_bm25, has_vector, has_rerank;
    int32_t rank_bm25, rank_vector, rank_fused, rank_rerank;   /* 1-based; 0 = not in it */
} fr_search_hit;

typedef struct fr_search_result {
    fr_search_hit *hits;        /* best first */
    size_t n;
    double took_ms;
    char **dropped_terms;       /* query terms the common-term cut dropped (as the
                                   tokenizer makes them, before stemming) */
    size_t n_dropped;
    int32_t bm25_candidates, vector_candidates;
    size_t vector_exact;        /* float32 rescorings the exact top-k took */
} fr_search_result;

/* Search.  BM25: the query's terms (as the collection's FTS5 tokenizer
 * makes them, each quoted: no query syntax) OR'ed, scored by FTS5's
 * bm25(); vector: the query embedded with the collection's model, the
 * exact top candidates by cosine.  Errors, all before anything is read:
 * FR_EINVAL naming query (empty), top_k, candidates, mode, fusion,
 * rrf_k, weights, filter (not an object of scalars, or a key with '"'),
 * rerank_top_n, model (not the collection's), common_share; FR_ENOENT
 * (collection); the provider's (model, rerank).  *out: free with
 * fr_search_result_free. */
int  fr_index_search(fr_index *ix, const fr_search_params *p, fr_search_result **out);
void fr_search_result_free(fr_search_result *r);

/* ---- ask: retrieval and the prompt ---- */

typedef struct fr_ask_params {
    fr_search_params search;    /* the retrieval (hybrid; reranked when search.rerank is set) */
    const char *model;          /* the generation model: its tokenizer counts the budget */
    int32_t budget_tokens;      /* most tokens the prompt may take; 0 = the model's
                                   max_tokens - reserve_tokens */
    int32_t reserve_tokens;     /* for the answer and the chat template when budget is 0; 512 */
    const char *instructions;   /* NULL = the default (answer from the sources, cite [n]) */
} fr_ask_params;

void fr_ask_params_init(fr_ask_params *p);

typedef struct fr_ask_source {
    int32_t marker;             /* n of [n] in the prompt, from 1 */
    int64_t chunk_id;
    char *document_id;
    char *text;
    char *metadata;
    double score;
} fr_ask_source;

typedef struct fr_ask_prompt {
    char *prompt;               /* instructions, numbered sources, the question */
    int32_t prompt_tokens;      /* by the generation model's count */
    fr_ask_source *sources;     /* in marker order */
    size_t n_sources;
    size_t n_skipped;           /* retrieved chunks left out: they did not fit */
    double took_ms;
} fr_ask_prompt;

/* Retrieve and build the prompt: the retrieved chunks, best first, each
 * as "[n] text" while the whole prompt (counted with the generation
 * model's tokenizer, the text as the model will see it before its chat
 * template) fits budget_tokens; a chunk that does not fit is skipped and
 * the next one tried.  The chat template and generation are the caller's.
 * Errors as fr_index_search, plus FR_EINVAL (budget), FR_ETOOLONG (the
 * question and instructions alone do not fit), the provider's (model). */
int  fr_index_ask_prompt(fr_index *ix, const fr_ask_params *p, fr_ask_prompt **out);
void fr_ask_prompt_free(fr_ask_prompt *a);

/* ---- consistency ---- */

typedef struct fr_index_report {
    int64_t collections, documents, chunks, fts_rows, vectors;
    int64_t problems;           /* disagreements found; 0 = consistent */
    char first[512];            /* the first one, in words ("" when none) */
} fr_index_report;

/* Check one collection (NULL: every one) and the database: SQLite's
 * quick_check; every chunk has exactly one FTS row holding its text and
 * a vector of the collection's dimension (float32 and int8 copies of the
 * right sizes); every FTS row and every vector belongs to a chunk; each
 * document's chunk positions are 0..n-1; document and chunk counts agree
 * with the collection's.  Returns 0 with the report filled (problems > 0
 * when it is not consistent), FR_ENOENT (collection), FR_EIO. */
int fr_index_check(fr_index *ix, const char *collection, fr_index_report *out);

#endif
