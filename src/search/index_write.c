/*
 * index_write.c — adding, replacing and deleting documents (search.h).
 *
 * fr_index_add in four steps:
 *   1. validate every document (text, id, metadata; duplicate ids) before
 *      anything is read or written; then the collection and the model;
 *   2. for a group of documents (until IX_GROUP_CHUNKS chunks want a new
 *      vector): skip the ones whose stored hash equals theirs, chunk the
 *      others with the collection's model, hash each chunk's
 *      whitespace-collapsed text and look its vector up;
 *   3. embed the texts of the group that have no vector, each distinct
 *      text once, IX_EMBED_BATCH per call, outside any transaction;
 *   4. write each document in one write transaction: replace its chunks,
 *      FTS rows and vectors, bump the collection's counters and
 *      generation, commit, then patch this process's vector cache.
 * A vector looked up in step 2 may be gone by step 4 (another writer
 * deleted its last chunk): the transaction is rolled back, the missing
 * texts are embedded and it is tried again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/err.h"
#include "base/mem.h"
#include "search/chunk.h"
#include "search/index_int.h"
#include "search/vscan.h"

#define RETRY 1                     /* write_doc: a vector went missing */

typedef struct pchunk {
    uint32_t start, end;
    int32_t tokens;
    uint8_t hash[16];
    char *norm;                     /* whitespace-collapsed text (fr_malloc'd) */
    size_t norm_len;
    bool have;                      /* a stored vector had this hash at lookup */
    const float *vec;               /* its embedding when computed here, else NULL */
} pchunk;

typedef struct pdoc {
    const fr_doc_in *in;
    char id[FR_SEARCH_MAX_ID + 1];
    char *meta;                     /* minified JSON object */
    uint8_t hash[16];
    bool unchanged;
    pchunk *ch;
    size_t n_ch;
} pdoc;

/* ---- validation ---- */

static bool utf8_ok(const char *s, size_t n, bool controls) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        if (u[i] < 0x80) {
            if (u[i] == 0) return false;
            if (controls && (u[i] < 0x20 || u[i] == 0x7f)) return false;
            i++;
            continue;
        }
        size_t l = fr__utf8_char_len(u + i, n - i);
        if (l < 2) return false;
        if (controls && l == 2 && u[i] == 0xc2 && u[i + 1] < 0xa0) return false; /* C1 */
        i += l;
    }
    return true;
}

static int check_meta(ix_conn *c, sqlite3_stmt *st, const char *meta, size_t i, char **out) {
    *out = NULL;
    if (!meta) {
        *out = fr_strdup("{}");
        return *out ? 0 : fr_errf(FR_ENOMEM, "index: no memory");
    }
    size_t ml = strlen(meta);
    if (ml > FR_SEARCH_MAX_META)
        return fr_errf(FR_ETOOLONG, "documents[%zu].metadata: %zu bytes, more than %d", i, ml,
                       FR_SEARCH_MAX_META);
    if (!utf8_ok(meta, ml, false))
        return fr_errf(FR_EINVAL, "documents[%zu].metadata: not valid UTF-8", i);
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, meta, (int)ml, SQLITE_STATIC);
    /* json_type() fails on malformed JSON (SQLITE_ERROR) and says
     * SQLITE_NOMEM when it runs out of memory (json_valid() cannot tell) */
    int s = sqlite3_step(st);
    if ((s & 0xff) == SQLITE_ERROR) {
        sqlite3_reset(st);
        return fr_errf(FR_EINVAL, "documents[%zu].metadata: not JSON", i);
    }
    if (s != SQLITE_ROW) {
        int r = fr__ix_sqerr(c->db, s, "metadata");
        sqlite3_reset(st);
        return r;
    }
    const char *type = (const char *)sqlite3_column_text(st, 0);
    if (!type || strcmp(type, "object")) {
        bool oom = !type && sqlite3_errcode(c->db) == SQLITE_NOMEM;
        sqlite3_reset(st);
        if (oom) return fr_errf(FR_ENOMEM, "index: no memory");
        return fr_errf(FR_EINVAL, "documents[%zu].metadata: not a JSON object", i);
    }
    const char *min = (const char *)sqlite3_column_text(st, 1);
    *out = min ? fr_strdup(min) : NULL;
    sqlite3_reset(st);
    return *out ? 0 : fr_errf(FR_ENOMEM, "index: no memory");
}

static int by_id(const void *a, const void *b) {
    const pdoc *x = *(const pdoc *const *)a, *y = *(const pdoc *const *)b;
    return strcmp(x->id, y->id);
}

static void random_id(char out[33]) {
    uint8_t b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)ts.tv_sec ^
                     (uint64_t)(uintptr_t)out;
        for (int i = 0; i < 16; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b[i] = (uint8_t)x;
        }
    }
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static int validate(ix_conn *c, const fr_doc_in *docs, size_t n, pdoc *pd) {
    sqlite3_stmt *st;
    int rc = fr__ix_prepare(c, "SELECT json_type(?1), json(?1)", &st);
    if (rc) return rc;
    for (size_t i = 0; i < n && !rc; i++) {
        const fr_doc_in *d = &docs[i];
        pd[i].in = d;
        if (!d->text && d->len)
            rc = fr_errf(FR_EINVAL, "documents[%zu].text: missing", i);
        else if (d->len > FR_SEARCH_MAX_DOC_BYTES)
            rc = fr_errf(FR_ETOOLONG, "documents[%zu].text: %zu bytes, more than %u", i, d->len,
                         FR_SEARCH_MAX_DOC_BYTES);
        else if (!utf8_ok(d->text ? d->text : "", d->len, false))
            rc = fr_errf(FR_EINVAL, "documents[%zu].text: not valid UTF-8 (or a NUL byte)", i);
        if (rc) break;
        if (d->id && *d->id) {
            size_t l = strlen(d->id);
            if (l > FR_SEARCH_MAX_ID)
                rc = fr_errf(FR_EINVAL, "documents[%zu].id: %zu bytes, more than %d", i, l,
                             FR_SEARCH_MAX_ID);
            else if (!utf8_ok(d->id, l, true))
                rc = fr_errf(FR_EINVAL, "documents[%zu].id: not UTF-8 without control characters",
                             i);
            else
                memcpy(pd[i].id, d->id, l + 1);
        }
        if (rc) break;
        rc = check_meta(c, st, d->metadata, i, &pd[i].meta);
    }
    sqlite3_finalize(st);
    if (rc) return rc;
    /* duplicate ids among the given ones */
    pdoc **order = fr_malloc((n ? n : 1) * sizeof *order);
    if (!order) return fr_errf(FR_ENOMEM, "index: no memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (pd[i].id[0]) order[k++] = &pd[i];
    qsort(order, k, sizeof *order, by_id);
    for (size_t i = 1; i < k && !rc; i++) {
        if (!strcmp(order[i - 1]->id, order[i]->id))
            rc = fr_errf(FR_EINVAL, "documents[%zu].id: '%s' given twice",
                         (size_t)(order[i] - pd), order[i]->id);
    }
    fr_free(order);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) {
        if (!pd[i].id[0]) random_id(pd[i].id);
        const char *t = pd[i].in->text ? pd[i].in->text : "";
        fr__ix_hash(t, pd[i].in->len, pd[i].meta, strlen(pd[i].meta), pd[i].hash);
    }
    return 0;
}

/* ---- statements of one add or delete ---- */

typedef struct wctx {
    fr_index *ix;
    ix_conn *c;
    ix_coll coll;
    fr_search_model m;
    bool have_model;
    sqlite3_stmt *doc_get, *doc_ins, *doc_upd, *doc_del, *ch_list, *ch_del, *fts_del, *fts_ins,
        *vec_find, *vec_ins, *f32_ins, *vec_gc, *f32_gc, *ch_ins, *coll_upd, *coll_gen;
    /* the write in progress: the cache delta */
    ix_vadd *adds;
    int8_t *codes;                  /* [cap_adds][dim_pad] */
    size_t n_adds, cap_adds;
    int64_t *dels, *old_vecs;
    size_t n_dels, cap_dels, n_old, cap_old;
} wctx;

static int wprep(wctx *w) {
    char sql[256];
    long long id = (long long)w->coll.id;
    int rc = 0;
    struct {
        sqlite3_stmt **st;
        const char *sql;
    } list[] = {
        {&w->doc_get, "SELECT id, hash, chunks, length(CAST(text AS BLOB)) FROM documents"
                      " WHERE coll = ? AND doc_id = ?"},
        {&w->doc_ins, "INSERT INTO documents(coll, doc_id, text, metadata, hash, chunks, updated)"
                      " VALUES(?, ?, ?, ?, ?, ?, ?)"},
        {&w->doc_upd, "UPDATE documents SET text = ?, metadata = ?, hash = ?, chunks = ?,"
                      " updated = ? WHERE id = ?"},
        {&w->doc_del, "DELETE FROM documents WHERE id = ?"},
        {&w->ch_list, "SELECT id, vec FROM chunks WHERE doc = ?"},
        {&w->ch_del, "DELETE FROM chunks WHERE doc = ?"},
        {&w->vec_find, "SELECT id FROM vectors WHERE coll = ? AND hash = ?"},
        {&w->vec_ins, "INSERT INTO vectors(coll, hash, i8, scale, err) VALUES(?, ?, ?, ?, ?)"},
        {&w->f32_ins, "INSERT INTO vec_f32(id, f32) VALUES(?, ?)"},
        {&w->vec_gc, "DELETE FROM vectors WHERE id = ?1 AND NOT EXISTS"
                     " (SELECT 1 FROM chunks WHERE vec = ?1)"},
        {&w->f32_gc, "DELETE FROM vec_f32 WHERE id = ?"},
        {&w->ch_ins, "INSERT INTO chunks(coll, doc, position, start, \"end\", tokens, vec)"
                     " VALUES(?, ?, ?, ?, ?, ?, ?)"},
        {&w->coll_upd, "UPDATE collections SET generation = generation + 1,"
                       " documents = documents + ?, chunks = chunks + ?, vectors = vectors + ?,"
                       " text_bytes = text_bytes + ? WHERE id = ?"},
        {&w->coll_gen, "SELECT generation FROM collections WHERE id = ?"},
    };
    for (size_t i = 0; i < sizeof list / sizeof list[0] && !rc; i++)
        rc = fr__ix_prepare(w->c, list[i].sql, list[i].st);
    if (rc) return rc;
    snprintf(sql, sizeof sql, "DELETE FROM fts_%lld WHERE rowid = ?", id);
    if ((rc = fr__ix_prepare(w->c, sql, &w->fts_del))) return rc;
    snprintf(sql, sizeof sql, "INSERT INTO fts_%lld(rowid, text) VALUES(?, ?)", id);
    return fr__ix_prepare(w->c, sql, &w->fts_ins);
}

static void wfree(wctx *w) {
    sqlite3_stmt *all[] = {w->doc_get,  w->doc_ins, w->doc_upd, w->doc_del,  w->ch_list,
                           w->ch_del,   w->fts_del, w->fts_ins, w->vec_find, w->vec_ins,
                           w->f32_ins,  w->vec_gc,  w->f32_gc,  w->ch_ins,   w->coll_upd,
                           w->coll_gen};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sqlite3_finalize(all[i]);
    fr_free(w->adds);
    fr_free(w->codes);
    fr_free(w->dels);
    fr_free(w->old_vecs);
    if (w->have_model) w->ix->models.release(w->ix->models.ud, &w->m);
}

/* Step st (already bound) to DONE; reset. */
static int run(wctx *w, sqlite3_stmt *st, const char *what) {
    int s = sqlite3_step(st);
    sqlite3_reset(st);
    if (s != SQLITE_DONE && s != SQLITE_ROW) return fr__ix_sqerr(w->c->db, s, what);
    return 0;
}

static int push_i64(int64_t **arr, size_t *n, size_t *cap, int64_t v) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        int64_t *p = fr_realloc(*arr, nc * sizeof *p);
        if (!p) return fr_errf(FR_ENOMEM, "index: no memory");
        *arr = p;
        *cap = nc;
    }
    (*arr)[(*n)++] = v;
    return 0;
}

/* Remove the chunks and FTS rows of document row drow; their vector ids
 * go to w->old_vecs; *n_chunks = how many. */
static int remove_chunks(wctx *w, int64_t drow, int64_t *n_chunks) {
    w->n_old = 0;
    *n_chunks = 0;
    sqlite3_bind_int64(w->ch_list, 1, drow);
    int s, rc = 0;
    while ((s = sqlite3_step(w->ch_list)) == SQLITE_ROW) {
        int64_t cid = sqlite3_column_int64(w->ch_list, 0), vec = sqlite3_column_int64(w->ch_list, 1);
        (*n_chunks)++;
        sqlite3_bind_int64(w->fts_del, 1, cid);
        if ((rc = run(w, w->fts_del, "delete FTS row"))) break;
        bool seen = false;
        for (size_t i = 0; i < w->n_old && !seen; i++) seen = w->old_vecs[i] == vec;
        if (!seen && (rc = push_i64(&w->old_vecs, &w->n_old, &w->cap_old, vec))) break;
    }
    sqlite3_reset(w->ch_list);
    if (rc) return rc;
    if (s != SQLITE_DONE) return fr__ix_sqerr(w->c->db, s, "list chunks");
    sqlite3_bind_int64(w->ch_del, 1, drow);
    return run(w, w->ch_del, "delete chunks");
}

/* Delete the old vectors no chunk uses any more; they go to w->dels. */
static int gc_vectors(wctx *w, int64_t *n_removed) {
    w->n_dels = 0;
    *n_removed = 0;
    for (size_t i = 0; i < w->n_old; i++) {
        sqlite3_bind_int64(w->vec_gc, 1, w->old_vecs[i]);
        int rc = run(w, w->vec_gc, "delete vector");
        if (rc) return rc;
        if (sqlite3_changes(w->c->db) > 0) {
            sqlite3_bind_int64(w->f32_gc, 1, w->old_vecs[i]);
            if ((rc = run(w, w->f32_gc, "delete vector"))) return rc;
            if ((rc = push_i64(&w->dels, &w->n_dels, &w->cap_dels, w->old_vecs[i]))) return rc;
            (*n_removed)++;
        }
    }
    return 0;
}

static double now_unix(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The collection's generation and existence in this transaction. */
static int coll_gen(wctx *w, int64_t *gen) {
    sqlite3_bind_int64(w->coll_gen, 1, w->coll.id);
    int s = sqlite3_step(w->coll_gen);
    if (s == SQLITE_ROW) *gen = sqlite3_column_int64(w->coll_gen, 0);
    sqlite3_reset(w->coll_gen);
    if (s == SQLITE_DONE) return fr_errf(FR_ENOENT, "collection '%s' was deleted", w->coll.name);
    if (s != SQLITE_ROW) return fr__ix_sqerr(w->c->db, s, "collection");
    return 0;
}

static int add_vector(wctx *w, const pchunk *ch, int64_t *id) {
    int32_t dim = w->coll.dim;
    size_t pad = fr__vscan_pad(dim);
    if (w->n_adds == w->cap_adds) {
        size_t nc = w->cap_adds ? w->cap_adds * 2 : 16;
        ix_vadd *a = fr_realloc(w->adds, nc * sizeof *a);
        if (!a) return fr_errf(FR_ENOMEM, "index: no memory");
        w->adds = a;
        int8_t *q = fr_realloc(w->codes, nc * pad);
        if (!q) return fr_errf(FR_ENOMEM, "index: no memory");
        w->codes = q;
        w->cap_adds = nc;
    }
    int8_t *q = w->codes + w->n_adds * pad;
    float scale, err;
    fr__vscan_quantize(ch->vec, dim, pad, q, &scale, &err);
    sqlite3_stmt *st = w->vec_ins;
    sqlite3_bind_int64(st, 1, w->coll.id);
    sqlite3_bind_blob(st, 2, ch->hash, 16, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, q, dim, SQLITE_STATIC);
    sqlite3_bind_double(st, 4, scale);
    sqlite3_bind_double(st, 5, err);
    int rc = run(w, st, "insert vector");
    if (rc) return rc;
    *id = sqlite3_last_insert_rowid(w->c->db);
    sqlite3_bind_int64(w->f32_ins, 1, *id);
    sqlite3_bind_blob(w->f32_ins, 2, ch->vec, (int)(4 * (size_t)dim), SQLITE_STATIC);
    if ((rc = run(w, w->f32_ins, "insert vector"))) return rc;
    w->adds[w->n_adds++] = (ix_vadd){*id, scale, err, NULL};
    return 0;
}

/* Write document d in one transaction.  RETRY (rolled back) when a chunk
 * has neither a stored vector nor an embedding: its `have` is cleared. */
static int write_doc(wctx *w, pdoc *d, fr_add_result *res) {
    fr_index *ix = w->ix;
    int rc = fr__ix_begin_write(ix, w->c);
    if (rc) return rc;
    w->n_adds = 0;
    w->n_dels = 0;
    w->n_old = 0;
    int64_t gen0;
    if ((rc = coll_gen(w, &gen0))) goto rollback;

    sqlite3_bind_int64(w->doc_get, 1, w->coll.id);
    sqlite3_bind_text(w->doc_get, 2, d->id, -1, SQLITE_STATIC);
    int s = sqlite3_step(w->doc_get);
    int64_t drow = 0, old_len = 0;
    bool exists = s == SQLITE_ROW, same = false;
    if (exists) {
        drow = sqlite3_column_int64(w->doc_get, 0);
        same = sqlite3_column_bytes(w->doc_get, 1) == 16 &&
               !memcmp(sqlite3_column_blob(w->doc_get, 1), d->hash, 16);
        old_len = sqlite3_column_int64(w->doc_get, 3);
    }
    sqlite3_reset(w->doc_get);
    if (!exists && s != SQLITE_DONE) {
        rc = fr__ix_sqerr(w->c->db, s, "find document");
        goto rollback;
    }
    snprintf(res->id, sizeof res->id, "%s", d->id);
    if (same) {
        fr__ix_rollback(ix, w->c, true);
        res->status = FR_ADD_UNCHANGED;
        res->chunks = 0;
        res->embedded = 0;
        return 0;
    }
    int64_t old_chunks = 0;
    if (exists && (rc = remove_chunks(w, drow, &old_chunks))) goto rollback;

    const char *text = d->in->text ? d->in->text : "";
    size_t len = d->in->len;
    double now = now_unix();
    sqlite3_stmt *st = exists ? w->doc_upd : w->doc_ins;
    int k = 1;
    if (!exists) {
        sqlite3_bind_int64(st, k++, w->coll.id);
        sqlite3_bind_text(st, k++, d->id, -1, SQLITE_STATIC);
    }
    sqlite3_bind_text(st, k++, text, (int)len, SQLITE_STATIC);
    sqlite3_bind_text(st, k++, d->meta, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, k++, d->hash, 16, SQLITE_STATIC);
    sqlite3_bind_int64(st, k++, (int64_t)d->n_ch);
    sqlite3_bind_double(st, k++, now);
    if (exists) sqlite3_bind_int64(st, k++, drow);
    if ((rc = run(w, st, "write document"))) goto rollback;
    if (!exists) drow = sqlite3_last_insert_rowid(w->c->db);

    bool missing = false;
    int32_t embedded = 0;
    for (size_t j = 0; j < d->n_ch; j++) {
        pchunk *ch = &d->ch[j];
        sqlite3_bind_int64(w->vec_find, 1, w->coll.id);
        sqlite3_bind_blob(w->vec_find, 2, ch->hash, 16, SQLITE_STATIC);
        s = sqlite3_step(w->vec_find);
        int64_t vec = s == SQLITE_ROW ? sqlite3_column_int64(w->vec_find, 0) : 0;
        sqlite3_reset(w->vec_find);
        if (s != SQLITE_ROW && s != SQLITE_DONE) {
            rc = fr__ix_sqerr(w->c->db, s, "find vector");
            goto rollback;
        }
        if (!vec) {
            if (!ch->vec) {
                ch->have = false;
                missing = true;
                continue;
            }
            if ((rc = add_vector(w, ch, &vec))) goto rollback;
            embedded++;
        }
        if (missing) continue;
        st = w->ch_ins;
        sqlite3_bind_int64(st, 1, w->coll.id);
        sqlite3_bind_int64(st, 2, drow);
        sqlite3_bind_int64(st, 3, (int64_t)j);
        sqlite3_bind_int64(st, 4, ch->start);
        sqlite3_bind_int64(st, 5, ch->end);
        sqlite3_bind_int(st, 6, ch->tokens);
        sqlite3_bind_int64(st, 7, vec);
        if ((rc = run(w, st, "insert chunk"))) goto rollback;
        int64_t cid = sqlite3_last_insert_rowid(w->c->db);
        sqlite3_bind_int64(w->fts_ins, 1, cid);
        sqlite3_bind_text(w->fts_ins, 2, text + ch->start, (int)(ch->end - ch->start),
                          SQLITE_STATIC);
        if ((rc = run(w, w->fts_ins, "insert FTS row"))) goto rollback;
    }
    if (missing) {
        fr__ix_rollback(ix, w->c, true);
        return RETRY;
    }
    int64_t removed;
    if ((rc = gc_vectors(w, &removed))) goto rollback;
    st = w->coll_upd;
    sqlite3_bind_int64(st, 1, exists ? 0 : 1);
    sqlite3_bind_int64(st, 2, (int64_t)d->n_ch - old_chunks);
    sqlite3_bind_int64(st, 3, (int64_t)w->n_adds - removed);
    sqlite3_bind_int64(st, 4, (int64_t)len - old_len);
    sqlite3_bind_int64(st, 5, w->coll.id);
    if ((rc = run(w, st, "update collection"))) goto rollback;
    if ((rc = fr__ix_commit(ix, w->c, true))) return rc;

    size_t pad = fr__vscan_pad(w->coll.dim);
    for (size_t j = 0; j < w->n_adds; j++) w->adds[j].codes = w->codes + j * pad;
    fr__ix_cache_apply(ix, w->coll.id, gen0, w->adds, w->n_adds, w->dels, w->n_dels);
    res->status = exists ? FR_ADD_REPLACED : FR_ADD_ADDED;
    res->chunks = (int32_t)d->n_ch;
    res->embedded = embedded;
    return 0;
rollback:
    fr__ix_rollback(ix, w->c, true);
    return rc;
}

/* ---- preparing and embedding ---- */

static void pdoc_clear(pdoc *d) {
    for (size_t j = 0; j < d->n_ch; j++) fr_free(d->ch[j].norm);
    fr_free(d->ch);
    d->ch = NULL;
    d->n_ch = 0;
}

/* Look the stored hash up (unchanged?), chunk, hash the chunks and look
 * their vectors up.  *n_missing += chunks without a stored vector. */
static int prepare_doc(wctx *w, pdoc *d, size_t *n_missing) {
    sqlite3_bind_int64(w->doc_get, 1, w->coll.id);
    sqlite3_bind_text(w->doc_get, 2, d->id, -1, SQLITE_STATIC);
    int s = sqlite3_step(w->doc_get);
    d->unchanged = s == SQLITE_ROW && sqlite3_column_bytes(w->doc_get, 1) == 16 &&
                   !memcmp(sqlite3_column_blob(w->doc_get, 1), d->hash, 16);
    sqlite3_reset(w->doc_get);
    if (s != SQLITE_ROW && s != SQLITE_DONE) return fr__ix_sqerr(w->c->db, s, "find document");
    if (d->unchanged) return 0;

    fr_chunk *chunks = NULL;
    size_t nc = 0;
    const char *text = d->in->text ? d->in->text : "";
    int rc = fr__chunk_text(text, d->in->len, w->coll.chunk_size, w->coll.chunk_overlap,
                            w->m.count_tokens, w->m.obj, &chunks, &nc);
    if (rc) return rc;
    if (nc) {
        d->ch = fr_calloc(nc, sizeof *d->ch);
        if (!d->ch) {
            fr_free(chunks);
            return fr_errf(FR_ENOMEM, "index: no memory");
        }
    }
    d->n_ch = nc;
    for (size_t j = 0; j < nc && !rc; j++) {
        pchunk *ch = &d->ch[j];
        ch->start = chunks[j].start;
        ch->end = chunks[j].end;
        ch->tokens = chunks[j].tokens;
        ch->norm = fr__ix_norm_text(text + ch->start, ch->end - ch->start, &ch->norm_len);
        if (!ch->norm) {
            rc = fr_errf(FR_ENOMEM, "index: no memory");
            break;
        }
        fr__ix_norm_hash(text + ch->start, ch->end - ch->start, ch->hash);
        sqlite3_bind_int64(w->vec_find, 1, w->coll.id);
        sqlite3_bind_blob(w->vec_find, 2, ch->hash, 16, SQLITE_STATIC);
        s = sqlite3_step(w->vec_find);
        ch->have = s == SQLITE_ROW;
        sqlite3_reset(w->vec_find);
        if (s != SQLITE_ROW && s != SQLITE_DONE) rc = fr__ix_sqerr(w->c->db, s, "find vector");
        if (!ch->have) (*n_missing)++;
    }
    fr_free(chunks);
    return rc;
}

static int by_hash(const void *a, const void *b) {
    const pchunk *x = *(const pchunk *const *)a, *y = *(const pchunk *const *)b;
    return memcmp(x->hash, y->hash, 16);
}

/* Embed every chunk of docs[0..n) with !have and no vec, each distinct
 * text once; the floats go to *buf (fr_malloc'd, freed by the caller). */
static int embed_missing(wctx *w, pdoc *docs, size_t n, float **buf) {
    *buf = NULL;
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < docs[i].n_ch; j++)
            if (!docs[i].ch[j].have && !docs[i].ch[j].vec) cnt++;
    if (!cnt) return 0;
    pchunk **all = fr_malloc(cnt * sizeof *all);
    if (!all) return fr_errf(FR_ENOMEM, "index: no memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < docs[i].n_ch; j++)
            if (!docs[i].ch[j].have && !docs[i].ch[j].vec) all[k++] = &docs[i].ch[j];
    qsort(all, cnt, sizeof *all, by_hash);
    /* the distinct ones first */
    size_t u = 0;
    pchunk **uniq = fr_malloc(cnt * sizeof *uniq);
    if (!uniq) {
        fr_free(all);
        return fr_errf(FR_ENOMEM, "index: no memory");
    }
    for (size_t i = 0; i < cnt; i++)
        if (i == 0 || memcmp(all[i]->hash, all[i - 1]->hash, 16)) uniq[u++] = all[i];
    int32_t dim = w->coll.dim;
    size_t bytes;
    int rc = 0;
    float *out = NULL;
    if (!fr_mul_ok(u, (size_t)dim * sizeof(float), &bytes) || !(out = fr_malloc(bytes))) {
        rc = fr_errf(FR_ENOMEM, "index: no memory for %zu embeddings", u);
        goto done;
    }
    const char *texts[IX_EMBED_BATCH];
    size_t lens[IX_EMBED_BATCH];
    for (size_t b = 0; b < u && !rc; b += IX_EMBED_BATCH) {
        int32_t nb = (int32_t)(u - b < IX_EMBED_BATCH ? u - b : IX_EMBED_BATCH);
        for (int32_t t = 0; t < nb; t++) {
            texts[t] = uniq[b + t]->norm;
            lens[t] = uniq[b + t]->norm_len;
        }
        float *o = out + b * (size_t)dim;
        if ((rc = w->m.embed(w->m.obj, texts, lens, nb, o))) break;
        for (int32_t t = 0; t < nb && !rc; t++) {
            float *v = o + (size_t)t * dim;
            bool zero = true, finite = true;
            for (int32_t e = 0; e < dim; e++) {
                if (v[e] != 0) zero = false;
                if (!(v[e] - v[e] == 0)) finite = false;
            }
            if (!finite)
                rc = fr_errf(FR_EINTERNAL, "model '%s' returned a non-finite vector",
                             w->coll.model);
            else if (!zero)
                fr__vscan_normalize(v, dim);
        }
    }
    if (rc) goto done;
    /* every chunk points at its text's vector */
    for (size_t i = 0, q = 0; i < cnt; i++) {
        while (memcmp(uniq[q]->hash, all[i]->hash, 16)) q++;
        all[i]->vec = out + q * (size_t)dim;
    }
    *buf = out;
    out = NULL;
done:
    fr_free(out);
    fr_free(all);
    fr_free(uniq);
    return rc;
}

/* After FR_ENOSPC: fr__ix_reclaim; true when the WAL was emptied.  The
 * no-space detail stays the thread's. */
static bool reclaim(wctx *w) {
    char d[512];
    snprintf(d, sizeof d, "%s", fr_errdetail());
    bool ok = fr__ix_reclaim(w->ix, w->c) == 0;
    fr_errf(FR_ENOSPC, "%s", d);
    return ok;
}

/* ---- the calls ---- */

static int open_coll(fr_index *ix, const char *collection, wctx *w) {
    memset(w, 0, sizeof *w);
    w->ix = ix;
    int rc = fr__ix_conn_get(ix, &w->c);
    if (rc) return rc;
    return 0;
}

int fr_index_add(fr_index *ix, const char *collection, const char *model, const fr_doc_in *docs,
                 size_t n, fr_add_result *results, size_t *n_done) {
    if (n_done) *n_done = 0;
    if (fr__ix_check_name(collection, "collection"))
        return fr_errf(FR_ENOENT, "collection '%s' not found", collection ? collection : "");
    if (n > 0 && !docs) return fr_errf(FR_EINVAL, "documents: missing");
    if (results && n) memset(results, 0, n * sizeof *results);
    if (model && strlen(model) > 255) return fr_errf(FR_EINVAL, "model: name too long");
    wctx w;
    int rc = open_coll(ix, collection, &w);
    if (rc) return rc;
    pdoc *pd = fr_calloc(n, sizeof *pd);
    float *extra = NULL;
    if (!pd) {
        rc = fr_errf(FR_ENOMEM, "index: no memory");
        goto out;
    }
    if ((rc = validate(w.c, docs, n, pd))) goto out;
    if ((rc = fr__ix_coll_find(w.c, collection, &w.coll))) goto out;
    if (n == 0) goto out;
    if (model && strcmp(model, w.coll.model)) {
        rc = fr_errf(FR_EINVAL, "model: '%s' is not the model of collection '%s' ('%s')", model,
                     collection, w.coll.model);
        goto out;
    }
    if (!ix->has_models) {
        rc = fr_errf(FR_EUNSUPP, "model: this index has no models to embed with");
        goto out;
    }
    if ((rc = ix->models.acquire(ix->models.ud, w.coll.model, FR_SEARCH_USE_EMBED, &w.m))) goto out;
    w.have_model = true;
    if (w.m.dim != w.coll.dim) {
        rc = fr_errf(FR_EINVAL, "model: '%s' gives %d floats, collection '%s' holds %d",
                     w.coll.model, (int)w.m.dim, collection, (int)w.coll.dim);
        goto out;
    }
    if ((rc = wprep(&w))) goto out;

    size_t i = 0, done = 0;
    while (i < n && !rc) {
        size_t g0 = i, missing = 0;
        while (i < n && missing < IX_GROUP_CHUNKS && i - g0 < 64 && !rc)
            rc = prepare_doc(&w, &pd[i++], &missing);
        float *emb = NULL;
        if (!rc) rc = embed_missing(&w, pd + g0, i - g0, &emb);
        for (size_t d = g0; d < i && !rc; d++) {
            fr_add_result tmp, *res = results ? &results[d] : &tmp;
            memset(res, 0, sizeof *res);
            if (pd[d].unchanged) {
                snprintf(res->id, sizeof res->id, "%s", pd[d].id);
                res->status = FR_ADD_UNCHANGED;
                done++;
                if (n_done) *n_done = done;
                continue;
            }
            bool reclaimed = false;
            for (int tries = 0; tries < 4; tries++) {
                rc = write_doc(&w, &pd[d], res);
                if (rc == FR_ENOSPC && !reclaimed) {
                    /* the disk is full: once, give the WAL's old pages back and try again */
                    reclaimed = true;
                    if (reclaim(&w)) { tries--; continue; }
                    break;
                }
                if (rc != RETRY) break;
                fr_free(extra);
                extra = NULL;
                if ((rc = embed_missing(&w, &pd[d], 1, &extra))) break;
                rc = RETRY;
            }
            if (rc == RETRY) rc = fr_errf(FR_EBUSY, "documents[%zu]: its vectors keep vanishing", d);
            if (!rc) done++;
            if (n_done) *n_done = done;
            pdoc_clear(&pd[d]);
            fr_free(extra);
            extra = NULL;
        }
        fr_free(emb);
    }
out:
    if (pd) {
        for (size_t d = 0; d < n; d++) {
            pdoc_clear(&pd[d]);
            fr_free(pd[d].meta);
        }
    }
    fr_free(pd);
    fr_free(extra);
    wfree(&w);
    fr__ix_conn_put(ix, w.c);
    return rc;
}

int fr_index_delete(fr_index *ix, const char *collection, const char *doc_id) {
    if (fr__ix_check_name(collection, "collection"))
        return fr_errf(FR_ENOENT, "collection '%s' not found", collection ? collection : "");
    if (!doc_id || !*doc_id || strlen(doc_id) > FR_SEARCH_MAX_ID)
        return fr_errf(FR_ENOENT, "document '%s' not found", doc_id ? doc_id : "");
    wctx w;
    int rc = open_coll(ix, collection, &w);
    if (rc) return rc;
    if ((rc = fr__ix_coll_find(w.c, collection, &w.coll))) goto out;
    if ((rc = wprep(&w))) goto out;
    if ((rc = fr__ix_begin_write(ix, w.c))) goto out;
    int64_t gen0;
    if ((rc = coll_gen(&w, &gen0))) goto rollback;
    sqlite3_bind_int64(w.doc_get, 1, w.coll.id);
    sqlite3_bind_text(w.doc_get, 2, doc_id, -1, SQLITE_STATIC);
    int s = sqlite3_step(w.doc_get);
    int64_t drow = s == SQLITE_ROW ? sqlite3_column_int64(w.doc_get, 0) : 0;
    int64_t old_len = s == SQLITE_ROW ? sqlite3_column_int64(w.doc_get, 3) : 0;
    sqlite3_reset(w.doc_get);
    if (s == SQLITE_DONE) {
        rc = fr_errf(FR_ENOENT, "document '%s' not found in collection '%s'", doc_id, collection);
        goto rollback;
    }
    if (s != SQLITE_ROW) {
        rc = fr__ix_sqerr(w.c->db, s, "find document");
        goto rollback;
    }
    int64_t n_chunks, removed;
    if ((rc = remove_chunks(&w, drow, &n_chunks))) goto rollback;
    sqlite3_bind_int64(w.doc_del, 1, drow);
    if ((rc = run(&w, w.doc_del, "delete document"))) goto rollback;
    if ((rc = gc_vectors(&w, &removed))) goto rollback;
    sqlite3_bind_int64(w.coll_upd, 1, -1);
    sqlite3_bind_int64(w.coll_upd, 2, -n_chunks);
    sqlite3_bind_int64(w.coll_upd, 3, -removed);
    sqlite3_bind_int64(w.coll_upd, 4, -old_len);
    sqlite3_bind_int64(w.coll_upd, 5, w.coll.id);
    if ((rc = run(&w, w.coll_upd, "update collection"))) goto rollback;
    if ((rc = fr__ix_commit(ix, w.c, true))) goto out;
    fr__ix_cache_apply(ix, w.coll.id, gen0, NULL, 0, w.dels, w.n_dels);
    goto out;
rollback:
    fr__ix_rollback(ix, w.c, true);
out:
    wfree(&w);
    fr__ix_conn_put(ix, w.c);
    return rc;
}
