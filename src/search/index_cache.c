/*
 * index_cache.c — the in-memory int8 copies of each collection's vectors
 * (index_int.h: ix_vcache), kept right across writers and processes.
 *
 * A cache shows the collection at one generation (the counter every write
 * transaction of the collection bumps).  A search reads the collection's
 * row in its read transaction; when the cache is older it is reloaded
 * from that snapshot (another process wrote, or it was never loaded).
 * This process's own writes patch it after their commit (the vectors
 * added, the ids removed) when it was at the generation the write started
 * from; otherwise it is left for the next search to reload.  A cache
 * newer than a search's snapshot is used as it is: its vectors the
 * snapshot lacks are found missing when their float32 copy is read
 * (index_search.c drops them).
 *
 * Budget: all caches together hold at most ix->cache_limit bytes
 * (cap × (dim_pad + 16)); a load evicts the least recently searched
 * caches nobody holds; a collection that still does not fit is not
 * cached (the search scans SQLite instead).
 */
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "search/index_int.h"
#include "search/vscan.h"

static size_t row_bytes(const ix_vcache *vc) { return vc->dim_pad + 16; }

static void contents_free(ix_vcache *vc) {
    fr_free_aligned(vc->rows);
    fr_free(vc->ids);
    fr_free(vc->scale);
    fr_free(vc->err);
    vc->rows = NULL;
    vc->ids = NULL;
    vc->scale = vc->err = NULL;
    vc->n = vc->cap = 0;
}

static void vc_destroy(ix_vcache *vc) {
    contents_free(vc);
    pthread_rwlock_destroy(&vc->lock);
    fr_free(vc);
}

static void unlink_vc(fr_index *ix, ix_vcache *vc) {
    for (ix_vcache **pp = &ix->caches; *pp; pp = &(*pp)->next) {
        if (*pp == vc) {
            *pp = vc->next;
            return;
        }
    }
}

/* With cache_mu held: evict caches other than keep, least recently used
 * first, until `other + need` fits; true when it does. */
static bool make_room(fr_index *ix, ix_vcache *keep, size_t need) {
    for (;;) {
        size_t other = ix->cache_total - keep->bytes;
        if (need <= ix->cache_limit && other <= ix->cache_limit - need) return true;
        ix_vcache *victim = NULL;
        for (ix_vcache *v = ix->caches; v; v = v->next) {
            if (v == keep || v->refs > 0 || v->bytes == 0) continue;
            if (!victim || v->used < victim->used) victim = v;
        }
        if (!victim || pthread_rwlock_trywrlock(&victim->lock) != 0) return false;
        unlink_vc(ix, victim);
        ix->cache_total -= victim->bytes;
        pthread_rwlock_unlock(&victim->lock);
        vc_destroy(victim);
    }
}

/* Resize keep's arrays to cap rows (with its write lock held). */
static int vc_resize(fr_index *ix, ix_vcache *vc, size_t cap) {
    size_t rb = row_bytes(vc), need, rows_b;
    if (!fr_mul_ok(cap, rb, &need) || !fr_mul_ok(cap, vc->dim_pad, &rows_b)) return FR_ENOMEM;
    pthread_mutex_lock(&ix->cache_mu);
    bool ok = make_room(ix, vc, need);
    pthread_mutex_unlock(&ix->cache_mu);
    if (!ok) return FR_EBUDGET;
    int8_t *rows = cap ? fr_malloc_aligned(rows_b) : NULL;
    int64_t *ids = cap ? fr_malloc(cap * sizeof *ids) : NULL;
    float *sc = cap ? fr_malloc(cap * sizeof *sc) : NULL;
    float *er = cap ? fr_malloc(cap * sizeof *er) : NULL;
    if (cap && (!rows || !ids || !sc || !er)) {
        fr_free_aligned(rows);
        fr_free(ids);
        fr_free(sc);
        fr_free(er);
        return FR_ENOMEM;
    }
    size_t keep = vc->n < cap ? vc->n : cap;
    if (keep) {
        memcpy(rows, vc->rows, keep * vc->dim_pad);
        memcpy(ids, vc->ids, keep * sizeof *ids);
        memcpy(sc, vc->scale, keep * sizeof *sc);
        memcpy(er, vc->err, keep * sizeof *er);
    }
    contents_free(vc);
    vc->rows = rows;
    vc->ids = ids;
    vc->scale = sc;
    vc->err = er;
    vc->n = keep;
    vc->cap = cap;
    pthread_mutex_lock(&ix->cache_mu);
    ix->cache_total = ix->cache_total - vc->bytes + need;
    vc->bytes = need;
    pthread_mutex_unlock(&ix->cache_mu);
    return 0;
}

static void vc_empty(fr_index *ix, ix_vcache *vc) {
    contents_free(vc);
    vc->gen = -1;
    pthread_mutex_lock(&ix->cache_mu);
    ix->cache_total -= vc->bytes;
    vc->bytes = 0;
    pthread_mutex_unlock(&ix->cache_mu);
}

/* Load every vector of coll from the snapshot of c (write lock held).
 * FR_EBUDGET: it does not fit (left empty). */
static int vc_load(fr_index *ix, ix_conn *c, ix_vcache *vc, const ix_coll *coll) {
    vc_empty(ix, vc);
    vc->dim = coll->dim;
    vc->dim_pad = fr__vscan_pad(coll->dim);
    size_t count = coll->vectors > 0 ? (size_t)coll->vectors : 0;
    int rc = vc_resize(ix, vc, count);
    if (rc) {
        vc_empty(ix, vc);
        return rc;
    }
    sqlite3_stmt *st;
    if ((rc = fr__ix_prepare(c, "SELECT id, i8, scale, err FROM vectors WHERE coll = ? ORDER BY id", &st))) {
        vc_empty(ix, vc);
        return rc;
    }
    sqlite3_bind_int64(st, 1, coll->id);
    int s;
    size_t n = 0;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == vc->cap) break;    /* the counter lies: reload next time */
        const void *q = sqlite3_column_blob(st, 1);
        int qn = sqlite3_column_bytes(st, 1);
        if (qn != vc->dim) continue;    /* fr_index_check reports it */
        int8_t *row = vc->rows + n * vc->dim_pad;
        memcpy(row, q, (size_t)qn);
        memset(row + qn, 0, vc->dim_pad - (size_t)qn);
        vc->ids[n] = sqlite3_column_int64(st, 0);
        vc->scale[n] = (float)sqlite3_column_double(st, 2);
        vc->err[n] = (float)sqlite3_column_double(st, 3);
        n++;
    }
    sqlite3_finalize(st);
    if (s != SQLITE_ROW && s != SQLITE_DONE) {
        rc = fr__ix_sqerr(c->db, s, "load vectors");
        vc_empty(ix, vc);
        return rc;
    }
    vc->n = n;
    vc->gen = s == SQLITE_ROW ? -1 : coll->generation;
    if (vc->gen < 0) {
        vc_empty(ix, vc);
        return FR_EBUDGET;
    }
    return 0;
}

static ix_vcache *find_locked(fr_index *ix, int64_t coll) {
    for (ix_vcache *v = ix->caches; v; v = v->next)
        if (v->coll == coll && !v->dead) return v;
    return NULL;
}

static void unref(fr_index *ix, ix_vcache *vc);

int fr__ix_cache_acquire(fr_index *ix, ix_conn *c, const ix_coll *coll, ix_vcache **out) {
    *out = NULL;
    pthread_mutex_lock(&ix->cache_mu);
    ix_vcache *vc = find_locked(ix, coll->id);
    if (!vc) {
        vc = fr_calloc(1, sizeof *vc);
        if (!vc) {
            pthread_mutex_unlock(&ix->cache_mu);
            return 0;               /* no memory for a cache: scan SQLite */
        }
        vc->coll = coll->id;
        vc->dim = coll->dim;
        vc->dim_pad = fr__vscan_pad(coll->dim);
        vc->gen = -1;
        pthread_rwlock_init(&vc->lock, NULL);
        vc->next = ix->caches;
        ix->caches = vc;
    }
    vc->refs++;
    vc->used = ++ix->tick;
    pthread_mutex_unlock(&ix->cache_mu);

    for (int tries = 0; tries < 4; tries++) {
        pthread_rwlock_rdlock(&vc->lock);
        if (vc->gen >= 0 && vc->gen >= coll->generation && vc->dim == coll->dim) {
            *out = vc;
            return 0;
        }
        pthread_rwlock_unlock(&vc->lock);
        pthread_rwlock_wrlock(&vc->lock);
        int rc = 0;
        if (!(vc->gen >= 0 && vc->gen >= coll->generation && vc->dim == coll->dim))
            rc = vc_load(ix, c, vc, coll);
        pthread_rwlock_unlock(&vc->lock);
        if (rc == FR_EBUDGET || rc == FR_ENOMEM) break;
        if (rc) {
            unref(ix, vc);
            return rc;
        }
    }
    unref(ix, vc);                  /* does not fit: the caller scans SQLite */
    return 0;
}

/* Drop a reference (no lock of vc held). */
static void unref(fr_index *ix, ix_vcache *vc) {
    pthread_mutex_lock(&ix->cache_mu);
    bool destroy = --vc->refs == 0 && vc->dead;
    if (destroy) {
        unlink_vc(ix, vc);
        ix->cache_total -= vc->bytes;
    }
    pthread_mutex_unlock(&ix->cache_mu);
    if (destroy) vc_destroy(vc);
}

void fr__ix_cache_release(fr_index *ix, ix_vcache *vc) {
    if (!vc) return;
    pthread_rwlock_unlock(&vc->lock);   /* the read lock of acquire */
    unref(ix, vc);
}

void fr__ix_cache_apply(fr_index *ix, int64_t coll, int64_t gen0, const ix_vadd *add, size_t n_add,
                        const int64_t *del, size_t n_del) {
    pthread_mutex_lock(&ix->cache_mu);
    ix_vcache *vc = find_locked(ix, coll);
    if (vc) vc->refs++;
    pthread_mutex_unlock(&ix->cache_mu);
    if (!vc) return;
    pthread_rwlock_wrlock(&vc->lock);
    if (vc->gen == gen0) {
        for (size_t j = 0; j < n_del; j++) {
            for (size_t i = 0; i < vc->n; i++) {
                if (vc->ids[i] != del[j]) continue;
                size_t last = vc->n - 1;
                if (i != last) {
                    memcpy(vc->rows + i * vc->dim_pad, vc->rows + last * vc->dim_pad, vc->dim_pad);
                    vc->ids[i] = vc->ids[last];
                    vc->scale[i] = vc->scale[last];
                    vc->err[i] = vc->err[last];
                }
                vc->n--;
                break;
            }
        }
        bool ok = true;
        if (vc->n + n_add > vc->cap) {
            size_t cap = vc->cap + vc->cap / 4 + 16;
            if (cap < vc->n + n_add) cap = vc->n + n_add;
            if (vc_resize(ix, vc, cap)) ok = false;
        }
        if (ok) {
            for (size_t j = 0; j < n_add; j++) {
                int8_t *row = vc->rows + vc->n * vc->dim_pad;
                memcpy(row, add[j].codes, (size_t)vc->dim);
                memset(row + vc->dim, 0, vc->dim_pad - (size_t)vc->dim);
                vc->ids[vc->n] = add[j].id;
                vc->scale[vc->n] = add[j].scale;
                vc->err[vc->n] = add[j].err;
                vc->n++;
            }
            vc->gen = gen0 + 1;
        } else {
            vc_empty(ix, vc);
        }
    }
    pthread_rwlock_unlock(&vc->lock);
    unref(ix, vc);
}

void fr__ix_cache_drop(fr_index *ix, int64_t coll) {
    pthread_mutex_lock(&ix->cache_mu);
    for (ix_vcache *v = ix->caches; v; v = v->next) {
        if (v->coll != coll || v->dead) continue;
        if (v->refs == 0) {
            unlink_vc(ix, v);
            ix->cache_total -= v->bytes;
            pthread_mutex_unlock(&ix->cache_mu);
            vc_destroy(v);
            return;
        }
        v->dead = true;
        break;
    }
    pthread_mutex_unlock(&ix->cache_mu);
}

void fr__ix_cache_free_all(fr_index *ix) {
    ix_vcache *v = ix->caches;
    while (v) {
        ix_vcache *next = v->next;
        vc_destroy(v);
        v = next;
    }
    ix->caches = NULL;
    ix->cache_total = 0;
}

size_t fr__ix_cache_bytes_of(fr_index *ix, int64_t coll) {
    pthread_mutex_lock(&ix->cache_mu);
    ix_vcache *v = find_locked(ix, coll);
    size_t n = v && v->gen >= 0 ? v->bytes : 0;
    pthread_mutex_unlock(&ix->cache_mu);
    return n;
}
