/*
 * index.c — the index's storage (index_int.h has the schema and the
 * locking): opening the database, the connection pool, transactions,
 * collections and the consistency check.
 *
 * The pool: up to max_connections SQLite connections, opened lazily, each
 * used by one thread at a time (SQLITE_OPEN_NOMUTEX; our pool mutex hands
 * them out).  Reads run in a deferred transaction (one WAL snapshot);
 * writes take write_mu (one writer in this process) and BEGIN IMMEDIATE
 * (other processes: the busy timeout).
 *
 * SQLite's heap: when this is the first user of SQLite in the process,
 * SQLite is configured to allocate through fr_malloc (an 8-byte size
 * header in front), so its page cache and statements count in the budget.
 */
#include "search/index_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "base/err.h"
#include "base/mem.h"
#include "search/chunk.h"

/* ---- SQLite's allocator ---- */

static void *sq_malloc(int n) {
    uint64_t *p = fr_malloc((size_t)n + 8);
    if (!p) return NULL;
    p[0] = (uint64_t)n;
    return p + 1;
}
static void sq_free(void *p) {
    if (p) fr_free((uint64_t *)p - 1);
}
static void *sq_realloc(void *p, int n) {
    if (!p) return sq_malloc(n);
    uint64_t *q = fr_realloc((uint64_t *)p - 1, (size_t)n + 8);
    if (!q) return NULL;
    q[0] = (uint64_t)n;
    return q + 1;
}
static int sq_size(void *p) { return p ? (int)((uint64_t *)p)[-1] : 0; }
static int sq_roundup(int n) { return (n + 7) & ~7; }
static int sq_init(void *ud) { return SQLITE_OK; }
static void sq_shutdown(void *ud) {}

static pthread_once_t sq_once = PTHREAD_ONCE_INIT;
static bool sq_counted;

static void sq_setup(void) {
    static const sqlite3_mem_methods m = {sq_malloc, sq_free, sq_realloc, sq_size,
                                          sq_roundup, sq_init, sq_shutdown, NULL};
    /* SQLITE_MISUSE when SQLite already started: then it keeps its own. */
    sq_counted = sqlite3_config(SQLITE_CONFIG_MALLOC, &m) == SQLITE_OK;
    sqlite3_initialize();
}

/* ---- errors and statements ---- */

/* A write that failed for want of space: SQLITE_FULL (a database, WAL or
 * journal page that could not be written: SQLite's unix VFS says so for
 * ENOSPC), or an I/O error whose errno says so (growing the WAL index
 * -shm file, truncating, opening: SQLITE_IOERR_* / SQLITE_CANTOPEN with
 * ENOSPC, or EDQUOT for a user's quota). */
static bool no_space(sqlite3 *db, int rc) {
    int prim = rc & 0xff;
    if (prim == SQLITE_FULL) return true;
    if (prim != SQLITE_IOERR && prim != SQLITE_CANTOPEN) return false;
    int e = db ? sqlite3_system_errno(db) : 0;
    return e == ENOSPC || e == EDQUOT;
}

/* FR_ENOSPC, "data directory DIR: no space left on its disk (what: why)",
 * DIR from the database's path (DIR/frugal.db). */
static int nospace(const char *path, const char *what, const char *why) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path && *path ? path : "?");
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir && !strcmp(slash, "/frugal.db")) *slash = 0;
    return fr_errf(FR_ENOSPC, "data directory %s: no space left on its disk (%s: %s)", dir, what, why);
}

int fr__ix_sqerr(sqlite3 *db, int rc, const char *what) {
    int prim = rc & 0xff, code;
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    if (no_space(db, rc)) return nospace(db ? sqlite3_db_filename(db, "main") : NULL, what, msg);
    switch (prim) {
    case SQLITE_NOMEM: code = FR_ENOMEM; break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: code = FR_EBUSY; break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: code = FR_EFORMAT; break;
    default: code = FR_EIO; break;
    }
    return fr_errf(code, "index: %s: %s", what, msg);
}

int fr__ix_exec(ix_conn *c, const char *sql) {
    char *err = NULL;
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK) {
        int r = fr__ix_sqerr(c->db, rc, sql);
        sqlite3_free(err);
        return r;
    }
    return 0;
}

int fr__ix_prepare(ix_conn *c, const char *sql, sqlite3_stmt **st) {
    int rc = sqlite3_prepare_v2(c->db, sql, -1, st, NULL);
    if (rc != SQLITE_OK) {
        *st = NULL;
        return fr__ix_sqerr(c->db, rc, sql);
    }
    return 0;
}

int fr__ix_begin_read(ix_conn *c) {
    int rc = fr__ix_exec(c, "BEGIN");
    if (rc) return rc;
    /* start the snapshot now: the first read of the main database */
    sqlite3_stmt *st;
    if ((rc = fr__ix_prepare(c, "SELECT value FROM meta WHERE key = 'schema'", &st))) goto fail;
    int s = sqlite3_step(st);
    sqlite3_finalize(st);
    if (s != SQLITE_ROW && s != SQLITE_DONE) {
        rc = fr__ix_sqerr(c->db, s, "begin read");
        goto fail;
    }
    return 0;
fail:
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* ---- a full disk: keeping the WAL short ----
 *
 * Between checkpoints (SQLite's automatic one comes at 1000 pages, 8 MB)
 * the WAL holds every version of every page a write touched: a document
 * of a few KB rewrites ~15 pages (its rows, the chunks', vectors' and FTS
 * segments' b-trees, their indexes), ~100 KB of WAL, where the database
 * keeps one copy of each page.  A nearly full disk cannot afford that.
 * So once a write found the disk full, the index is "tight": every write
 * transaction checkpoints and truncates the WAL before it starts (giving
 * back what the WAL held, if the database can grow by its pages) and
 * after it commits (so the WAL holds one transaction), until the disk
 * has IX_ROOMY bytes free again. */

#define IX_ROOMY ((uint64_t)64 << 20)
#define IX_CKPT_BUSY_MS 1000        /* waiting for readers to leave the WAL */

/* TRUNCATE checkpoint (write_mu held); SQLite's result. */
static int checkpoint(fr_index *ix, ix_conn *c) {
    sqlite3_busy_timeout(c->db, IX_CKPT_BUSY_MS < ix->busy_ms ? IX_CKPT_BUSY_MS : ix->busy_ms);
    int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    sqlite3_busy_timeout(c->db, ix->busy_ms);
    return rc;
}

/* Bytes free for us on the data directory's disk (UINT64_MAX unknown). */
static uint64_t disk_free(const fr_index *ix) {
    struct statvfs sv;
    if (statvfs(ix->dir, &sv) != 0) return UINT64_MAX;
    return (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
}

int fr__ix_reclaim(fr_index *ix, ix_conn *c) {
    pthread_mutex_lock(&ix->write_mu);
    ix->tight = true;
    int rc = checkpoint(ix, c);
    pthread_mutex_unlock(&ix->write_mu);
    return rc == SQLITE_OK ? 0 : fr__ix_sqerr(c->db, rc, "checkpoint");
}

int fr__ix_begin_write(fr_index *ix, ix_conn *c) {
    pthread_mutex_lock(&ix->write_mu);
    if (ix->tight) checkpoint(ix, c);       /* when it fails, the write finds out for itself */
    int rc = fr__ix_exec(c, "BEGIN IMMEDIATE");
    if (rc) pthread_mutex_unlock(&ix->write_mu);
    return rc;
}

int fr__ix_commit(fr_index *ix, ix_conn *c, bool write) {
    int rc = fr__ix_exec(c, "COMMIT");
    if (rc) sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    if (write) {
        if (rc == FR_ENOSPC) {
            ix->tight = true;
        } else if (!rc && ix->tight) {
            checkpoint(ix, c);
            if (disk_free(ix) >= IX_ROOMY) ix->tight = false;
        }
        pthread_mutex_unlock(&ix->write_mu);
    }
    return rc;
}

void fr__ix_rollback(fr_index *ix, ix_conn *c, bool write) {
    if (!sqlite3_get_autocommit(c->db)) sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    if (write) pthread_mutex_unlock(&ix->write_mu);
}

/* ---- hashing: two 64-bit lanes of a multiply-xorshift mix ---- */

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

typedef struct hstate {
    uint64_t a, b, len;
    uint8_t buf[8];
    int nbuf;
} hstate;

static void h_word(hstate *h, uint64_t w) {
    h->a = mix64(h->a ^ w) * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL;
    h->b = mix64(h->b + w * 0xbf58476d1ce4e5b9ULL) ^ (h->a >> 29);
}

static void h_byte(hstate *h, uint8_t x) {
    h->buf[h->nbuf++] = x;
    h->len++;
    if (h->nbuf == 8) {
        uint64_t w;
        memcpy(&w, h->buf, 8);
        h_word(h, w);
        h->nbuf = 0;
    }
}

static void h_init(hstate *h) {
    h->a = 0x243f6a8885a308d3ULL;
    h->b = 0x13198a2e03707344ULL;
    h->len = 0;
    h->nbuf = 0;
}

static void h_final(hstate *h, uint8_t out[16]) {
    uint64_t w = 0;
    memcpy(&w, h->buf, (size_t)h->nbuf);
    h_word(h, w ^ ((uint64_t)h->nbuf << 56));
    h_word(h, h->len);
    uint64_t a = mix64(h->a ^ h->b), b = mix64(h->b + a);
    memcpy(out, &a, 8);
    memcpy(out + 8, &b, 8);
}

static inline bool is_blank(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

void fr__ix_norm_hash(const char *s, size_t n, uint8_t out[16]) {
    hstate h;
    h_init(&h);
    bool pending = false, any = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (is_blank(ch)) {
            pending = any;
            continue;
        }
        if (pending) h_byte(&h, ' ');
        pending = false;
        any = true;
        h_byte(&h, ch);
    }
    h_final(&h, out);
}

char *fr__ix_norm_text(const char *s, size_t n, size_t *out_len) {
    char *t = fr_malloc(n + 1);
    if (!t) return NULL;
    size_t k = 0;
    bool pending = false, any = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (is_blank(ch)) {
            pending = any;
            continue;
        }
        if (pending) t[k++] = ' ';
        pending = false;
        any = true;
        t[k++] = (char)ch;
    }
    t[k] = 0;
    *out_len = k;
    return t;
}

void fr__ix_hash(const void *a, size_t na, const void *b, size_t nb, uint8_t out[16]) {
    hstate h;
    h_init(&h);
    for (int i = 0; i < 8; i++) h_byte(&h, (uint8_t)((uint64_t)na >> (8 * i)));
    for (size_t i = 0; i < na; i++) h_byte(&h, ((const uint8_t *)a)[i]);
    for (size_t i = 0; i < nb; i++) h_byte(&h, ((const uint8_t *)b)[i]);
    h_final(&h, out);
}

/* ---- names ---- */

int fr__ix_check_name(const char *name, const char *field) {
    if (!name || !*name) return fr_errf(FR_EINVAL, "%s: empty collection name", field);
    size_t n = strlen(name);
    if (n > FR_SEARCH_MAX_NAME)
        return fr_errf(FR_EINVAL, "%s: collection name longer than %d bytes", field,
                       FR_SEARCH_MAX_NAME);
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return fr_errf(FR_EINVAL, "%s: collection name may hold only [A-Za-z0-9_.-]", field);
    }
    return 0;
}

/* ---- schema ---- */

static const char *SCHEMA =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value);"
    "CREATE TABLE IF NOT EXISTS collections("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, model TEXT NOT NULL,"
    " dim INTEGER NOT NULL, chunk_size INTEGER NOT NULL, chunk_overlap INTEGER NOT NULL,"
    " stemming INTEGER NOT NULL, created REAL NOT NULL, generation INTEGER NOT NULL DEFAULT 0,"
    " documents INTEGER NOT NULL DEFAULT 0, chunks INTEGER NOT NULL DEFAULT 0,"
    " vectors INTEGER NOT NULL DEFAULT 0, text_bytes INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS documents("
    " id INTEGER PRIMARY KEY, coll INTEGER NOT NULL, doc_id TEXT NOT NULL, text TEXT NOT NULL,"
    " metadata TEXT NOT NULL, hash BLOB NOT NULL, chunks INTEGER NOT NULL, updated REAL NOT NULL,"
    " UNIQUE(coll, doc_id));"
    "CREATE TABLE IF NOT EXISTS chunks("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, coll INTEGER NOT NULL, doc INTEGER NOT NULL,"
    " position INTEGER NOT NULL, start INTEGER NOT NULL, \"end\" INTEGER NOT NULL,"
    " tokens INTEGER NOT NULL, vec INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc, position);"
    "CREATE INDEX IF NOT EXISTS chunks_vec ON chunks(vec);"
    "CREATE INDEX IF NOT EXISTS chunks_coll ON chunks(coll);"
    "CREATE TABLE IF NOT EXISTS vectors("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, coll INTEGER NOT NULL, hash BLOB NOT NULL,"
    " scale REAL NOT NULL, err REAL NOT NULL, i8 BLOB NOT NULL, UNIQUE(coll, hash));"
    "CREATE INDEX IF NOT EXISTS vectors_coll ON vectors(coll, id);"
    "CREATE TABLE IF NOT EXISTS vec_f32(id INTEGER PRIMARY KEY, f32 BLOB NOT NULL);"
    "INSERT OR IGNORE INTO meta VALUES('format', 'frugal-index');"
    "INSERT OR IGNORE INTO meta VALUES('schema', 1);";

static int conn_open(fr_index *ix, sqlite3 **out) {
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(ix->path, &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
        int r = no_space(db, rc) ? nospace(ix->path, "open", msg)
                                 : fr_errf(rc == SQLITE_NOMEM ? FR_ENOMEM : FR_EIO,
                                           "index: cannot open %s: %s", ix->path, msg);
        sqlite3_close(db);
        return r;
    }
    sqlite3_busy_timeout(db, ix->busy_ms);
    sqlite3_extended_result_codes(db, 1);
    ix_conn tmp = {db, false, false, NULL, 0};
    /* synchronous: see search.h (Storage) */
    if ((rc = fr__ix_exec(&tmp, ix->sync_full ? "PRAGMA synchronous=FULL; PRAGMA temp_store=MEMORY;"
                                              : "PRAGMA synchronous=NORMAL; PRAGMA temp_store=MEMORY;"))) {
        int prim = sqlite3_errcode(db) & 0xff;
        if (prim == SQLITE_NOTADB || prim == SQLITE_CORRUPT)
            rc = fr_errf(FR_EFORMAT, "index: %s is not an SQLite database", ix->path);
        sqlite3_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

/* Create the schema, or check that it is ours. */
static int schema_setup(fr_index *ix, ix_conn *c) {
    sqlite3_stmt *st;
    int rc;
    /* 8 KiB pages for a new database (a no-op on an existing one): a
     * float32 vector of 384 dimensions is a 1,536-byte row, two to a 4 KiB
     * page with a quarter of it empty, five to an 8 KiB page.  It must be
     * set before the file switches to WAL. */
    if ((rc = fr__ix_exec(c, "PRAGMA page_size=8192"))) return rc;
    /* WAL is persistent in the file; asking needs no write lock when it is set */
    if ((rc = fr__ix_prepare(c, "PRAGMA journal_mode=WAL", &st))) return rc;
    rc = sqlite3_step(st);
    bool wal = rc == SQLITE_ROW && !sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    if (rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT)
        return fr_errf(FR_EFORMAT, "index: %s is not an SQLite database", ix->path);
    if (rc != SQLITE_ROW) return fr__ix_sqerr(c->db, rc, "journal_mode");
    if (!wal) return fr_errf(FR_EIO, "index: %s: cannot switch to WAL mode", ix->path);

    /* a database with tables but no meta is someone else's */
    if ((rc = fr__ix_prepare(c,
                             "SELECT (SELECT count(*) FROM sqlite_schema WHERE type='table'),"
                             " (SELECT count(*) FROM sqlite_schema WHERE name='meta')",
                             &st)))
        return rc;
    rc = sqlite3_step(st);
    int64_t n_tables = sqlite3_column_int64(st, 0), has_meta = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) return fr__ix_sqerr(c->db, rc, "schema");
    if (n_tables > 0 && !has_meta)
        return fr_errf(FR_EFORMAT, "index: %s is not a frugal index", ix->path);
    if (has_meta) {
        if ((rc = fr__ix_prepare(c, "SELECT (SELECT value FROM meta WHERE key='format'),"
                                    " (SELECT value FROM meta WHERE key='schema')",
                                 &st)))
            return rc;
        rc = sqlite3_step(st);
        const char *fmt = (const char *)sqlite3_column_text(st, 0);
        bool ours = fmt && !strcmp(fmt, "frugal-index");
        int64_t ver = sqlite3_column_int64(st, 1);
        sqlite3_finalize(st);
        if (rc != SQLITE_ROW) return fr__ix_sqerr(c->db, rc, "meta");
        if (!ours) return fr_errf(FR_EFORMAT, "index: %s is not a frugal index", ix->path);
        if (ver > IX_SCHEMA)
            return fr_errf(FR_EFORMAT, "index: %s has schema %lld, newer than this frugal's %d",
                           ix->path, (long long)ver, IX_SCHEMA);
        if (ver == IX_SCHEMA) return 0;
    }
    if ((rc = fr__ix_begin_write(ix, c))) return rc;
    if ((rc = fr__ix_exec(c, SCHEMA))) {
        fr__ix_rollback(ix, c, true);
        return rc;
    }
    return fr__ix_commit(ix, c, true);
}

static int mkdirs(const char *dir) {
    char buf[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof buf) return fr_errf(FR_EIO, "index: bad data directory '%s'", dir);
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char keep = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return fr_errf(errno == ENOSPC || errno == EDQUOT ? FR_ENOSPC : FR_EIO,
                               "index: cannot create %s: %s", buf, strerror(errno));
            buf[i] = keep;
        }
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return fr_errf(FR_EIO, "index: %s is not a directory", dir);
    return 0;
}

int fr_index_open(const fr_index_config *cfg, fr_index **out) {
    *out = NULL;
    if (!cfg || !cfg->data_dir || !*cfg->data_dir)
        return fr_errf(FR_EINVAL, "index: no data directory");
    pthread_once(&sq_once, sq_setup);
    int rc = mkdirs(cfg->data_dir);
    if (rc) return rc;
    fr_index *ix = fr_calloc(1, sizeof *ix);
    if (!ix) return fr_errf(FR_ENOMEM, "index: no memory");
    size_t dl = strlen(cfg->data_dir);
    ix->dir = fr_strdup(cfg->data_dir);
    ix->path = fr_malloc(dl + 16);
    ix->n_conns = cfg->max_connections > 0 ? cfg->max_connections : 8;
    ix->conns = fr_calloc((size_t)ix->n_conns, sizeof *ix->conns);
    if (!ix->dir || !ix->path || !ix->conns) {
        fr_free(ix->dir);
        fr_free(ix->path);
        fr_free(ix->conns);
        fr_free(ix);
        return fr_errf(FR_ENOMEM, "index: no memory");
    }
    snprintf(ix->path, dl + 16, "%s/frugal.db", cfg->data_dir);
    if (cfg->models) {
        ix->models = *cfg->models;
        ix->has_models = true;
    }
    ix->cache_limit = cfg->cache_bytes ? cfg->cache_bytes : (size_t)256 << 20;
    ix->busy_ms = cfg->busy_timeout_ms > 0 ? cfg->busy_timeout_ms : 5000;
    ix->sync_full = cfg->sync_full;
    pthread_mutex_init(&ix->pool_mu, NULL);
    pthread_cond_init(&ix->pool_cv, NULL);
    pthread_mutex_init(&ix->write_mu, NULL);
    pthread_mutex_init(&ix->cache_mu, NULL);

    ix_conn *c;
    if ((rc = fr__ix_conn_get(ix, &c))) goto fail;
    rc = schema_setup(ix, c);
    fr__ix_conn_put(ix, c);
    if (rc) goto fail;
    *out = ix;
    return 0;
fail:
    fr_index_close(ix);
    return rc;
}

void fr_index_close(fr_index *ix) {
    if (!ix) return;
    for (int i = 0; i < ix->n_conns; i++) {
        if (ix->conns[i].db) sqlite3_close_v2(ix->conns[i].db);
        fr_free(ix->conns[i].scratch);
    }
    fr__ix_cache_free_all(ix);
    pthread_mutex_destroy(&ix->pool_mu);
    pthread_cond_destroy(&ix->pool_cv);
    pthread_mutex_destroy(&ix->write_mu);
    pthread_mutex_destroy(&ix->cache_mu);
    fr_free(ix->conns);
    fr_free(ix->dir);
    fr_free(ix->path);
    fr_free(ix);
}

int fr_index_synchronous(fr_index *ix, int *level) {
    *level = -1;
    ix_conn *c;
    int rc = fr__ix_conn_get(ix, &c);
    if (rc) return rc;
    sqlite3_stmt *st;
    if (!(rc = fr__ix_prepare(c, "PRAGMA synchronous", &st))) {
        int s = sqlite3_step(st);
        if (s == SQLITE_ROW) *level = sqlite3_column_int(st, 0);
        else rc = fr__ix_sqerr(c->db, s, "PRAGMA synchronous");
        sqlite3_finalize(st);
    }
    fr__ix_conn_put(ix, c);
    return rc;
}

size_t fr_index_cache_bytes(fr_index *ix) {
    pthread_mutex_lock(&ix->cache_mu);
    size_t n = ix->cache_total;
    pthread_mutex_unlock(&ix->cache_mu);
    if (sq_counted) n += (size_t)sqlite3_memory_used();
    return n;
}

int fr__ix_conn_get(fr_index *ix, ix_conn **out) {
    pthread_mutex_lock(&ix->pool_mu);
    for (;;) {
        int empty = -1;
        for (int i = 0; i < ix->n_conns; i++) {
            if (ix->conns[i].db && !ix->conns[i].in_use) {
                ix->conns[i].in_use = true;
                pthread_mutex_unlock(&ix->pool_mu);
                *out = &ix->conns[i];
                return 0;
            }
            if (!ix->conns[i].db && !ix->conns[i].in_use && empty < 0) empty = i;
        }
        if (empty >= 0) {
            ix_conn *c = &ix->conns[empty];
            c->in_use = true;       /* reserved while it opens */
            pthread_mutex_unlock(&ix->pool_mu);
            sqlite3 *db = NULL;
            int rc = conn_open(ix, &db);
            pthread_mutex_lock(&ix->pool_mu);
            if (rc) {
                c->in_use = false;
                pthread_cond_signal(&ix->pool_cv);
                pthread_mutex_unlock(&ix->pool_mu);
                return rc;
            }
            c->db = db;
            c->qtok = false;
            pthread_mutex_unlock(&ix->pool_mu);
            *out = c;
            return 0;
        }
        pthread_cond_wait(&ix->pool_cv, &ix->pool_mu);
    }
}

void fr__ix_conn_put(fr_index *ix, ix_conn *c) {
    if (!c) return;
    if (!sqlite3_get_autocommit(c->db)) sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_lock(&ix->pool_mu);
    c->in_use = false;
    pthread_cond_signal(&ix->pool_cv);
    pthread_mutex_unlock(&ix->pool_mu);
}

/* ---- collections ---- */

#define COLL_COLS                                                                         \
    "id, name, model, dim, chunk_size, chunk_overlap, stemming, created, generation,"      \
    " documents, chunks, vectors, text_bytes"

static void coll_row(sqlite3_stmt *st, ix_coll *o) {
    memset(o, 0, sizeof *o);
    o->id = sqlite3_column_int64(st, 0);
    const char *s = (const char *)sqlite3_column_text(st, 1);
    snprintf(o->name, sizeof o->name, "%s", s ? s : "");
    s = (const char *)sqlite3_column_text(st, 2);
    snprintf(o->model, sizeof o->model, "%s", s ? s : "");
    o->dim = sqlite3_column_int(st, 3);
    o->chunk_size = sqlite3_column_int(st, 4);
    o->chunk_overlap = sqlite3_column_int(st, 5);
    o->stemming = sqlite3_column_int(st, 6) != 0;
    o->created = sqlite3_column_double(st, 7);
    o->generation = sqlite3_column_int64(st, 8);
    o->documents = sqlite3_column_int64(st, 9);
    o->chunks = sqlite3_column_int64(st, 10);
    o->vectors = sqlite3_column_int64(st, 11);
    o->text_bytes = sqlite3_column_int64(st, 12);
}

int fr__ix_coll_find(ix_conn *c, const char *name, ix_coll *out) {
    sqlite3_stmt *st;
    int rc = fr__ix_prepare(c, "SELECT " COLL_COLS " FROM collections WHERE name = ?", &st);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        coll_row(st, out);
        rc = 0;
    } else if (s == SQLITE_DONE) {
        rc = fr_errf(FR_ENOENT, "collection '%s' not found", name);
    } else {
        rc = fr__ix_sqerr(c->db, s, "collection");
    }
    sqlite3_finalize(st);
    return rc;
}

int fr__ix_coll_by_id(ix_conn *c, int64_t id, ix_coll *out) {
    sqlite3_stmt *st;
    int rc = fr__ix_prepare(c, "SELECT " COLL_COLS " FROM collections WHERE id = ?", &st);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, id);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        coll_row(st, out);
        rc = 0;
    } else if (s == SQLITE_DONE) {
        rc = fr_errf(FR_ENOENT, "collection %lld was deleted", (long long)id);
    } else {
        rc = fr__ix_sqerr(c->db, s, "collection");
    }
    sqlite3_finalize(st);
    return rc;
}

static void coll_info(fr_index *ix, const ix_coll *c, fr_collection_info *o) {
    memset(o, 0, sizeof *o);
    snprintf(o->name, sizeof o->name, "%s", c->name);
    snprintf(o->model, sizeof o->model, "%s", c->model);
    o->dim = c->dim;
    o->chunk_size = c->chunk_size;
    o->chunk_overlap = c->chunk_overlap;
    o->stemming = c->stemming;
    o->documents = c->documents;
    o->chunks = c->chunks;
    o->vectors = c->vectors;
    o->text_bytes = c->text_bytes;
    o->vector_bytes = c->vectors * (5 * (int64_t)c->dim + 24);
    o->cached_bytes = (int64_t)fr__ix_cache_bytes_of(ix, c->id);
    o->created = c->created;
}

int fr_index_collection_create(fr_index *ix, const fr_collection_params *p, fr_collection_info *out) {
    int rc = fr__ix_check_name(p->name, "name");
    if (rc) return rc;
    if (!p->model || !*p->model) return fr_errf(FR_EINVAL, "model: missing");
    if (strlen(p->model) >= sizeof ((ix_coll *)0)->model)
        return fr_errf(FR_EINVAL, "model: name too long");
    if (p->chunk_size != 0 && (p->chunk_size < FR_CHUNK_MIN_SIZE || p->chunk_size > FR_CHUNK_MAX_SIZE))
        return fr_errf(FR_EINVAL, "chunk_size: %d is not in 16..8192", (int)p->chunk_size);
    if (p->chunk_overlap < -1)
        return fr_errf(FR_EINVAL, "chunk_overlap: %d is negative", (int)p->chunk_overlap);
    if (!ix->has_models) return fr_errf(FR_EUNSUPP, "model: this index has no models");

    fr_search_model m;
    memset(&m, 0, sizeof m);
    if ((rc = ix->models.acquire(ix->models.ud, p->model, FR_SEARCH_USE_EMBED, &m))) return rc;
    int32_t dim = m.dim, max_tokens = m.max_tokens;
    ix->models.release(ix->models.ud, &m);
    if (dim <= 0 || dim > 65536)
        return fr_errf(FR_EUNSUPP, "model: '%s' gives vectors of %d floats", p->model, (int)dim);
    int32_t cs = p->chunk_size;
    int32_t lim = max_tokens > 0 ? max_tokens - 2 : 8192;
    if (cs == 0) cs = lim < 256 ? lim : 256;
    if (cs < 16 || cs > 8192)
        return fr_errf(FR_EINVAL, "chunk_size: %d is not in 16..8192", (int)cs);
    if (cs > lim)
        return fr_errf(FR_EINVAL, "chunk_size: %d is more than model '%s' takes (%d - 2)", (int)cs,
                       p->model, (int)max_tokens);
    int32_t ov = p->chunk_overlap;
    if (ov == -1) ov = cs / 8 < 32 ? cs / 8 : 32;
    if (ov > cs / 2)
        return fr_errf(FR_EINVAL, "chunk_overlap: %d is more than half of chunk_size %d", (int)ov,
                       (int)cs);

    ix_conn *c;
    if ((rc = fr__ix_conn_get(ix, &c))) return rc;
    if ((rc = fr__ix_begin_write(ix, c))) goto out;
    sqlite3_stmt *st;
    if ((rc = fr__ix_prepare(c,
                             "INSERT INTO collections(name, model, dim, chunk_size, chunk_overlap,"
                             " stemming, created) VALUES(?, ?, ?, ?, ?, ?, ?)",
                             &st)))
        goto rollback;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->model, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, dim);
    sqlite3_bind_int(st, 4, cs);
    sqlite3_bind_int(st, 5, ov);
    sqlite3_bind_int(st, 6, p->stemming);
    sqlite3_bind_double(st, 7, (double)ts.tv_sec + ts.tv_nsec * 1e-9);
    int s = sqlite3_step(st);
    sqlite3_finalize(st);
    if ((s & 0xff) == SQLITE_CONSTRAINT) {
        rc = fr_errf(FR_ECONFLICT, "collection '%s' exists", p->name);
        goto rollback;
    }
    if (s != SQLITE_DONE) {
        rc = fr__ix_sqerr(c->db, s, "create collection");
        goto rollback;
    }
    int64_t id = sqlite3_last_insert_rowid(c->db);
    char sql[512];
    snprintf(sql, sizeof sql,
             "CREATE VIRTUAL TABLE fts_%lld USING fts5(text, tokenize='%sunicode61 remove_diacritics 2');"
             "CREATE VIRTUAL TABLE fts_%lld_v USING fts5vocab(fts_%lld, 'row');",
             (long long)id, p->stemming ? "porter " : "", (long long)id, (long long)id);
    if ((rc = fr__ix_exec(c, sql))) goto rollback;
    if ((rc = fr__ix_commit(ix, c, true))) goto out;
    fr__ix_cache_drop(ix, id);
    if (out) {
        ix_coll co;
        if ((rc = fr__ix_coll_find(c, p->name, &co))) goto out;
        coll_info(ix, &co, out);
    }
    goto out;
rollback:
    fr__ix_rollback(ix, c, true);
out:
    fr__ix_conn_put(ix, c);
    return rc;
}

int fr_index_collection_get(fr_index *ix, const char *name, fr_collection_info *out) {
    int rc = fr__ix_check_name(name, "collection");
    if (rc) return rc == FR_EINVAL ? fr_errf(FR_ENOENT, "collection '%s' not found", name ? name : "")
                                   : rc;
    ix_conn *c;
    if ((rc = fr__ix_conn_get(ix, &c))) return rc;
    ix_coll co;
    rc = fr__ix_coll_find(c, name, &co);
    fr__ix_conn_put(ix, c);
    if (!rc && out) coll_info(ix, &co, out);
    return rc;
}

int fr_index_collection_list(fr_index *ix, fr_collection_info **out, size_t *n) {
    *out = NULL;
    *n = 0;
    ix_conn *c;
    int rc = fr__ix_conn_get(ix, &c);
    if (rc) return rc;
    sqlite3_stmt *st;
    fr_collection_info *arr = NULL;
    size_t cnt = 0, cap = 0;
    if ((rc = fr__ix_prepare(c, "SELECT " COLL_COLS " FROM collections ORDER BY name", &st)))
        goto done;
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 8;
            fr_collection_info *p = fr_realloc(arr, nc * sizeof *p);
            if (!p) {
                rc = fr_errf(FR_ENOMEM, "index: no memory for the collection list");
                break;
            }
            arr = p;
            cap = nc;
        }
        ix_coll co;
        coll_row(st, &co);
        coll_info(ix, &co, &arr[cnt++]);
    }
    if (!rc && s != SQLITE_DONE) rc = fr__ix_sqerr(c->db, s, "list collections");
    sqlite3_finalize(st);
done:
    fr__ix_conn_put(ix, c);
    if (rc || cnt == 0) {
        fr_free(arr);
        return rc;
    }
    *out = arr;
    *n = cnt;
    return 0;
}

int fr_index_collection_delete(fr_index *ix, const char *name) {
    int rc = fr__ix_check_name(name, "collection");
    if (rc) return fr_errf(FR_ENOENT, "collection '%s' not found", name ? name : "");
    ix_conn *c;
    if ((rc = fr__ix_conn_get(ix, &c))) return rc;
    if ((rc = fr__ix_begin_write(ix, c))) goto out;
    ix_coll co;
    if ((rc = fr__ix_coll_find(c, name, &co))) goto rollback;
    char sql[800];
    long long id = (long long)co.id;
    snprintf(sql, sizeof sql,
             "DROP TABLE IF EXISTS fts_%lld_v; DROP TABLE IF EXISTS fts_%lld;"
             "DELETE FROM chunks WHERE coll = %lld;"
             "DELETE FROM vec_f32 WHERE id IN (SELECT id FROM vectors WHERE coll = %lld);"
             "DELETE FROM vectors WHERE coll = %lld;"
             "DELETE FROM documents WHERE coll = %lld; DELETE FROM collections WHERE id = %lld;",
             id, id, id, id, id, id, id);
    if ((rc = fr__ix_exec(c, sql))) goto rollback;
    rc = fr__ix_commit(ix, c, true);
    fr__ix_cache_drop(ix, co.id);
    goto out;
rollback:
    fr__ix_rollback(ix, c, true);
out:
    fr__ix_conn_put(ix, c);
    return rc;
}

/* ---- consistency ---- */

static void problem(fr_index_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(fr_index_report *r, const char *fmt, ...) {
    if (r->problems++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->first, sizeof r->first, fmt, ap);
        va_end(ap);
    }
}

/* One integer from sql with ?1 = a. */
static int q_int(ix_conn *c, const char *sql, int64_t a, int64_t *out) {
    sqlite3_stmt *st;
    int rc = fr__ix_prepare(c, sql, &st);
    if (rc) return rc;
    if (sqlite3_bind_parameter_count(st) >= 1) sqlite3_bind_int64(st, 1, a);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
    else rc = fr__ix_sqerr(c->db, s, sql);
    sqlite3_finalize(st);
    return rc;
}

/* The collection's rows counted against its counters and the FTS table
 * (added to r's totals).  *fts_ok = false, with a problem, when its FTS
 * table cannot be read: nothing more of it can be checked. */
static int check_counts(ix_conn *c, const ix_coll *co, fr_index_report *r, bool *fts_ok) {
    int rc;
    char sql[512];
    int64_t nd, nc, nv, nf;
    *fts_ok = true;
    if ((rc = q_int(c, "SELECT count(*) FROM documents WHERE coll = ?1", co->id, &nd))) return rc;
    if ((rc = q_int(c, "SELECT count(*) FROM chunks WHERE coll = ?1", co->id, &nc))) return rc;
    if ((rc = q_int(c, "SELECT count(*) FROM vectors WHERE coll = ?1", co->id, &nv))) return rc;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM fts_%lld", (long long)co->id);
    if ((rc = q_int(c, sql, 0, &nf))) {
        problem(r, "collection '%s': its FTS table cannot be read: %s", co->name, fr_errdetail());
        *fts_ok = false;
        return 0;
    }
    r->documents += nd;
    r->chunks += nc;
    r->vectors += nv;
    r->fts_rows += nf;
    const struct { int64_t n, count; const char *what; } counts[] = {
        {nd, co->documents, "documents"}, {nc, co->chunks, "chunks"}, {nv, co->vectors, "vectors"},
    };
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++)
        if (counts[i].n != counts[i].count)
            problem(r, "collection '%s': %lld %s, its count says %lld", co->name, (long long)counts[i].n,
                    counts[i].what, (long long)counts[i].count);
    if (nf != nc)
        problem(r, "collection '%s': %lld FTS rows for %lld chunks", co->name, (long long)nf,
                (long long)nc);
    return 0;
}

/* Rows that belong to nothing: each query counts them (?1 = the
 * collection; %lld, in the first, its FTS table's number). */
static int check_orphans(ix_conn *c, const ix_coll *co, fr_index_report *r) {
    static const struct { const char *sql, *what; } orphans[] = {
        {"SELECT count(*) FROM fts_%lld f WHERE NOT EXISTS"
         " (SELECT 1 FROM chunks c WHERE c.id = f.rowid AND c.coll = ?1)", "FTS rows belong to no chunk"},
        {"SELECT count(*) FROM vectors v WHERE coll = ?1 AND NOT EXISTS"
         " (SELECT 1 FROM chunks c WHERE c.vec = v.id)", "vectors belong to no chunk"},
        {"SELECT count(*) FROM vectors v WHERE coll = ?1 AND NOT EXISTS"
         " (SELECT 1 FROM vec_f32 f WHERE f.id = v.id)", "vectors lack their float32 copy"},
        {"SELECT count(*) FROM chunks c WHERE coll = ?1 AND NOT EXISTS"
         " (SELECT 1 FROM documents d WHERE d.id = c.doc AND d.coll = c.coll)", "chunks belong to no document"},
    };
    char sql[512];
    int64_t n;
    for (size_t i = 0; i < sizeof orphans / sizeof *orphans; i++) {
        /* the others have no %: the id is ignored */
        snprintf(sql, sizeof sql, orphans[i].sql, (long long)co->id);
        int rc = q_int(c, sql, co->id, &n);
        if (rc) return rc;
        if (n) problem(r, "collection '%s': %lld %s", co->name, (long long)n, orphans[i].what);
    }
    return 0;
}

/* One chunk row of sc (see check_documents) of document didb (text dt,
 * dlen bytes), expected at position pos: its position, its span, its FTS
 * text = the document's bytes, its vector's hash, sizes and collection. */
static void check_chunk(const ix_coll *co, fr_index_report *r, sqlite3_stmt *sc, const char *didb,
                        const char *dt, int64_t dlen, int64_t pos) {
    int64_t cid = sqlite3_column_int64(sc, 0);
    int64_t p = sqlite3_column_int64(sc, 1), a = sqlite3_column_int64(sc, 2),
            b = sqlite3_column_int64(sc, 3);
    if (p != pos)
        problem(r, "document '%s': chunk %lld at position %lld, expected %lld", didb,
                (long long)cid, (long long)p, (long long)pos);
    if (a < 0 || b < a || b > dlen) {
        problem(r, "document '%s': chunk %lld spans bytes %lld..%lld of %lld", didb,
                (long long)cid, (long long)a, (long long)b, (long long)dlen);
        return;
    }
    if (sqlite3_column_type(sc, 4) == SQLITE_NULL) {
        problem(r, "document '%s': chunk %lld has no FTS row", didb, (long long)cid);
    } else {
        const char *ft = (const char *)sqlite3_column_blob(sc, 4);
        int64_t fl = sqlite3_column_bytes(sc, 4);
        if (fl != b - a || (fl && memcmp(ft, dt + a, (size_t)fl)))
            problem(r, "document '%s': chunk %lld: its FTS text is not its text", didb,
                    (long long)cid);
    }
    if (sqlite3_column_type(sc, 5) == SQLITE_NULL) {
        problem(r, "document '%s': chunk %lld has no vector", didb, (long long)cid);
        return;
    }
    uint8_t h[16];
    fr__ix_norm_hash(dt + a, (size_t)(b - a), h);
    const void *vh = sqlite3_column_blob(sc, 5);
    if (sqlite3_column_bytes(sc, 5) != 16 || memcmp(vh, h, 16))
        problem(r, "document '%s': chunk %lld: its vector is of another text", didb,
                (long long)cid);
    if (sqlite3_column_int64(sc, 6) != 4 * (int64_t)co->dim ||
        sqlite3_column_int64(sc, 7) != co->dim)
        problem(r, "document '%s': chunk %lld: vector of the wrong size", didb,
                (long long)cid);
    if (sqlite3_column_int64(sc, 8) != co->id)
        problem(r, "document '%s': chunk %lld: vector of another collection", didb,
                (long long)cid);
}

/* Each document of the collection: positions 0..n-1, its count, and each
 * chunk (check_chunk). */
static int check_documents(ix_conn *c, const ix_coll *co, fr_index_report *r) {
    char sql[512];
    sqlite3_stmt *sd = NULL, *sc = NULL;
    int rc = fr__ix_prepare(c, "SELECT id, doc_id, text, chunks FROM documents WHERE coll = ?", &sd);
    if (rc) return rc;
    snprintf(sql, sizeof sql,
             "SELECT c.id, c.position, c.start, c.\"end\", f.text, v.hash,"
             " (SELECT length(f32) FROM vec_f32 WHERE id = c.vec), length(v.i8), v.coll"
             " FROM chunks c LEFT JOIN fts_%lld f ON f.rowid = c.id"
             " LEFT JOIN vectors v ON v.id = c.vec WHERE c.doc = ? ORDER BY c.position",
             (long long)co->id);
    if ((rc = fr__ix_prepare(c, sql, &sc))) {
        sqlite3_finalize(sd);
        return rc;
    }
    sqlite3_bind_int64(sd, 1, co->id);
    int s;
    while ((s = sqlite3_step(sd)) == SQLITE_ROW) {
        int64_t drow = sqlite3_column_int64(sd, 0);
        const char *did = (const char *)sqlite3_column_text(sd, 1);
        const char *dt = (const char *)sqlite3_column_blob(sd, 2);
        int64_t dlen = sqlite3_column_bytes(sd, 2), dch = sqlite3_column_int64(sd, 3);
        char didb[FR_SEARCH_MAX_ID + 1];
        snprintf(didb, sizeof didb, "%s", did ? did : "");
        sqlite3_reset(sc);
        sqlite3_bind_int64(sc, 1, drow);
        int64_t pos = 0;
        int t;
        while ((t = sqlite3_step(sc)) == SQLITE_ROW) check_chunk(co, r, sc, didb, dt, dlen, pos++);
        if (t != SQLITE_DONE) {
            rc = fr__ix_sqerr(c->db, t, "check chunks");
            break;
        }
        if (pos != dch)
            problem(r, "document '%s': %lld chunks, its count says %lld", didb, (long long)pos,
                    (long long)dch);
    }
    if (!rc && s != SQLITE_DONE) rc = fr__ix_sqerr(c->db, s, "check documents");
    sqlite3_finalize(sd);
    sqlite3_finalize(sc);
    return rc;
}

/* One collection: its counts, its orphan rows, its documents. */
static int check_coll(ix_conn *c, const ix_coll *co, fr_index_report *r) {
    r->collections++;
    bool fts_ok;
    int rc = check_counts(c, co, r, &fts_ok);
    if (rc || !fts_ok) return rc;
    if ((rc = check_orphans(c, co, r))) return rc;
    return check_documents(c, co, r);
}

int fr_index_check(fr_index *ix, const char *collection, fr_index_report *out) {
    memset(out, 0, sizeof *out);
    if (collection) {
        int rc = fr__ix_check_name(collection, "collection");
        if (rc) return fr_errf(FR_ENOENT, "collection '%s' not found", collection);
    }
    ix_conn *c;
    int rc = fr__ix_conn_get(ix, &c);
    if (rc) return rc;
    ix_coll *colls = NULL;
    size_t nco = 0;
    if ((rc = fr__ix_begin_read(c))) goto out;
    sqlite3_stmt *st;
    if ((rc = fr__ix_prepare(c, "PRAGMA quick_check", &st))) goto out;
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        const char *m = (const char *)sqlite3_column_text(st, 0);
        if (m && strcmp(m, "ok")) problem(out, "quick_check: %s", m);
    }
    sqlite3_finalize(st);
    if (s != SQLITE_DONE) {
        rc = fr__ix_sqerr(c->db, s, "quick_check");
        goto out;
    }
    if (collection) {
        colls = fr_malloc(sizeof *colls);
        if (!colls) {
            rc = fr_errf(FR_ENOMEM, "index: no memory");
            goto out;
        }
        if ((rc = fr__ix_coll_find(c, collection, colls))) goto out;
        nco = 1;
    } else {
        int64_t total;
        if ((rc = q_int(c, "SELECT count(*) FROM collections", 0, &total))) goto out;
        if (total > 0) {
            colls = fr_malloc((size_t)total * sizeof *colls);
            if (!colls) {
                rc = fr_errf(FR_ENOMEM, "index: no memory");
                goto out;
            }
            if ((rc = fr__ix_prepare(c, "SELECT " COLL_COLS " FROM collections ORDER BY id", &st)))
                goto out;
            while (nco < (size_t)total && (s = sqlite3_step(st)) == SQLITE_ROW)
                coll_row(st, &colls[nco++]);
            sqlite3_finalize(st);
        }
        /* rows of no collection */
        int64_t n;
        static const char *orphans[] = {
            "SELECT count(*) FROM documents WHERE coll NOT IN (SELECT id FROM collections)",
            "SELECT count(*) FROM chunks WHERE coll NOT IN (SELECT id FROM collections)",
            "SELECT count(*) FROM vectors WHERE coll NOT IN (SELECT id FROM collections)",
            "SELECT count(*) FROM vec_f32 WHERE id NOT IN (SELECT id FROM vectors)"};
        static const char *what[] = {"documents", "chunks", "vectors", "float32 vectors"};
        for (int i = 0; i < 4; i++) {
            if ((rc = q_int(c, orphans[i], 0, &n))) goto out;
            if (n) problem(out, "%lld %s belong to no collection", (long long)n, what[i]);
        }
    }
    for (size_t i = 0; i < nco; i++) {
        if ((rc = check_coll(c, &colls[i], out))) goto out;
    }
    fr__ix_commit(ix, c, false);
    /* FTS5's own check of each index (a write statement: outside the read) */
    for (size_t i = 0; i < nco; i++) {
        char sql[160];
        snprintf(sql, sizeof sql, "INSERT INTO fts_%lld(fts_%lld) VALUES('integrity-check')",
                 (long long)colls[i].id, (long long)colls[i].id);
        pthread_mutex_lock(&ix->write_mu);
        int e = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
        pthread_mutex_unlock(&ix->write_mu);
        if ((e & 0xff) == SQLITE_CORRUPT)
            problem(out, "collection '%s': FTS5 integrity-check failed", colls[i].name);
        else if (e != SQLITE_OK && (e & 0xff) != SQLITE_BUSY && (e & 0xff) != SQLITE_ERROR) {
            rc = fr__ix_sqerr(c->db, e, "integrity-check");
            goto out;
        }
    }
out:
    fr_free(colls);
    fr__ix_conn_put(ix, c);
    return rc;
}
