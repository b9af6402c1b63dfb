/*
 * cmd_index.c — `frugal index`: the document index (search/search.h) from the
 * command line, on the same data directory as `frugal serve --data`.
 *
 *   frugal index add --collection C [--model M] [--chunk-size N]
 *         [--chunk-overlap N] [--stemming] [--id-from path|name] FILE|DIR...
 *       plain text and Markdown; a directory is walked recursively (names
 *       sorted bytewise, hidden names skipped, symlinked directories not
 *       followed) for *.txt, *.md, *.markdown, *.text and files without an
 *       extension; a FILE named on the command line is taken whatever its
 *       extension.  Each file must be valid UTF-8 without NUL bytes and at
 *       most FR_SEARCH_MAX_DOC_BYTES long; one that is not (or cannot be
 *       read) is reported on stderr by name and skipped, the rest go on,
 *       and the exit status is 1 at the end.  The document id is the path
 *       relative to the directory argument (or the FILE as given, without
 *       a leading "./"); --id-from name takes the file name alone.
 *       Metadata: {"path": the path as walked, "bytes": its size}.  The
 *       collection is created with model M when it is missing.  One line
 *       per file on stdout (added / replaced / unchanged, chunks), then a
 *       summary line.
 *   frugal index search --collection C [--mode hybrid|bm25|vector]
 *         [--top-k N] [--candidates N] [--fusion rrf|linear] [--rerank M]
 *         [--filter JSON] [--group-by-document] [--json] QUERY...
 *       a table (rank, score, document id, an excerpt of the chunk), or
 *       with --json the body the server's search route answers.
 *   frugal index rm --collection C (ID... | --all)
 *   frugal index ls [--collection C] [--json]
 *   frugal index check [--collection C]
 *       fr_index_check's report; exit 1 when it found problems.
 *
 Settings come from the server's sources, with its precedence (flags >
 * FRUGAL_* variables > the INI file of --config F or FRUGAL_CONFIG >
 * defaults): every subcommand takes --data DIR (FRUGAL_DATA, [search]
 * data; ./data) and --data-sync normal|full (FRUGAL_DATA_SYNC, [search]
 * data_sync; normal), as the server: full makes every write it reports
 * done survive a power cut (SQLite synchronous=FULL).  The ones that need models (add; search in vector or
 * hybrid mode, or with a reranker) start them as `frugal serve` does
 * (fr_cli_models_start in cmd_serve.c): --models DIR (FRUGAL_MODELS), the INI
 * file's [model] sections, --threads N and the server's other settings.  Running next to the server is safe: the index
 * is SQLite in WAL mode, every document is written in one transaction.
 *
 * Exit status: 0; 1 when something failed (one line naming it); 2 for a
 * usage error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/sysinfo.h"
#include "cli/cli.h"
#include "cli/serve_config.h"
#include "manager/loader_gguf.h"
#include "manager/manager.h"
#include "search/search.h"
#include "server/server.h"

#define BATCH_DOCS 16               /* documents per fr_index_add call */
#define BATCH_BYTES (4u << 20)      /* ...or text bytes, whichever comes first */
#define EXCERPT_CHARS 72            /* of a chunk in the search table */
#define MAX_DEPTH 64                /* directory nesting the walk follows */

/* ---- options ---- */

enum { SUB_ADD, SUB_SEARCH, SUB_RM, SUB_LS, SUB_CHECK, SUB_COUNT };
static const char *const sub_names[SUB_COUNT] = {"add", "search", "rm", "ls", "check"};

typedef struct ix_opts {
    int sub;
    const char *data, *models, *config, *collection, *model, *rerank, *filter, *data_sync;
    long threads, chunk_size, chunk_overlap, top_k, candidates;
    int mode, fusion;
    bool stemming, id_from_name, group, json, all;
    bool has_chunk_size, has_chunk_overlap, has_top_k, has_candidates;
    char **args;                /* positional arguments */
    int n_args;
} ix_opts;

static void usage(FILE *f) {
    fputs("usage: frugal index <subcommand> [--data DIR] [options]\n\n"
          "  add --collection C [--model M] [--chunk-size N] [--chunk-overlap N] [--stemming]\n"
          "      [--id-from path|name] FILE|DIR...     add text and Markdown files (recursively)\n"
          "  search --collection C [--mode hybrid|bm25|vector] [--top-k N] [--candidates N]\n"
          "      [--fusion rrf|linear] [--rerank M] [--filter JSON] [--group-by-document] [--json] QUERY\n"
          "  rm --collection C (ID... | --all)        delete documents, or the whole collection\n"
          "  ls [--collection C] [--json]             collections: model, counts, bytes\n"
          "  check [--collection C]                   consistency of the index (exit 1: problems)\n\n"
          "  --data DIR (FRUGAL_DATA)    the index directory, as `frugal serve --data` (./data)\n"
          "  --data-sync normal|full (FRUGAL_DATA_SYNC)\n"
          "                              full: every write reported done is on the disk (normal)\n"
          "  --models DIR (FRUGAL_MODELS), --threads N\n"
          "                              the models, found as `frugal serve` finds them\n"
          "  --config F (FRUGAL_CONFIG)  the server's INI file: [model] sections, [search] data\n",
          f);
}

/* Which options each subcommand takes (bit per subcommand). */
#define S(x) (1u << (x))
#define ALL (S(SUB_ADD) | S(SUB_SEARCH) | S(SUB_RM) | S(SUB_LS) | S(SUB_CHECK))
#define MODELS (S(SUB_ADD) | S(SUB_SEARCH))

static bool allowed(const ix_opts *o, unsigned subs, const char *opt) {
    if (subs & S(o->sub)) return true;
    fr_cli_usage("index %s: %s does not apply here (frugal index --help)", sub_names[o->sub], opt);
    return false;
}

static int parse_mode(const char *s) {
    if (!s) return -1;
    if (!strcmp(s, "hybrid")) return FR_SEARCH_HYBRID;
    if (!strcmp(s, "bm25")) return FR_SEARCH_BM25;
    if (!strcmp(s, "vector")) return FR_SEARCH_VECTOR;
    return -1;
}

/* argv[0] is the subcommand.  Returns 0, or 2 after a usage line. */
static int parse(int argc, char **argv, ix_opts *o) {
    const char *cmd = sub_names[o->sub];
    o->mode = FR_SEARCH_HYBRID;
    o->fusion = FR_FUSION_RRF;
    o->args = fr_calloc((size_t)argc + 1, sizeof *o->args);
    if (!o->args) return fr_cli_fail(FR_ENOMEM, "index");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define VALUE(subs)                                                              \
    do {                                                                         \
        if (!allowed(o, (subs), a)) return 2;                                    \
        if (!v) return fr_cli_usage("index %s: %s needs a value", cmd, a);       \
        i++;                                                                     \
    } while (0)
        if (!strcmp(a, "--data")) { VALUE(ALL); o->data = v; }
        else if (!strcmp(a, "--data-sync")) {
            VALUE(ALL);
            if (strcmp(v, "normal") && strcmp(v, "full"))
                return fr_cli_usage("index %s: --data-sync: bad value '%s' (want normal or full)", cmd, v);
            o->data_sync = v;
        }
        else if (!strcmp(a, "--models")) { VALUE(MODELS); o->models = v; }
        else if (!strcmp(a, "--config")) { VALUE(ALL); o->config = v; }
        else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            if (!allowed(o, MODELS, a) || !fr_cli_int(a, v, 1, 1024, &o->threads)) return 2;
            i++;
        } else if (!strcmp(a, "--collection") || !strcmp(a, "-c")) { VALUE(ALL); o->collection = v; }
        else if (!strcmp(a, "--model") || !strcmp(a, "-m")) { VALUE(S(SUB_ADD)); o->model = v; }
        else if (!strcmp(a, "--chunk-size")) {
            if (!allowed(o, S(SUB_ADD), a) || !fr_cli_int(a, v, 16, 8192, &o->chunk_size)) return 2;
            o->has_chunk_size = true;
            i++;
        } else if (!strcmp(a, "--chunk-overlap")) {
            if (!allowed(o, S(SUB_ADD), a) || !fr_cli_int(a, v, 0, 4096, &o->chunk_overlap)) return 2;
            o->has_chunk_overlap = true;
            i++;
        } else if (!strcmp(a, "--stemming")) {
            if (!allowed(o, S(SUB_ADD), a)) return 2;
            o->stemming = true;
        } else if (!strcmp(a, "--id-from")) {
            VALUE(S(SUB_ADD));
            if (strcmp(v, "path") && strcmp(v, "name"))
                return fr_cli_usage("index add: --id-from must be path or name (got '%s')", v);
            o->id_from_name = !strcmp(v, "name");
        } else if (!strcmp(a, "--mode")) {
            VALUE(S(SUB_SEARCH));
            if ((o->mode = parse_mode(v)) < 0)
                return fr_cli_usage("index search: --mode must be hybrid, bm25 or vector (got '%s')", v);
        } else if (!strcmp(a, "--fusion")) {
            VALUE(S(SUB_SEARCH));
            if (!strcmp(v, "rrf")) o->fusion = FR_FUSION_RRF;
            else if (!strcmp(v, "linear")) o->fusion = FR_FUSION_LINEAR;
            else return fr_cli_usage("index search: --fusion must be rrf or linear (got '%s')", v);
        } else if (!strcmp(a, "--top-k") || !strcmp(a, "-k")) {
            if (!allowed(o, S(SUB_SEARCH), a) || !fr_cli_int(a, v, 1, FR_SEARCH_MAX_TOP_K, &o->top_k))
                return 2;
            o->has_top_k = true;
            i++;
        } else if (!strcmp(a, "--candidates")) {
            if (!allowed(o, S(SUB_SEARCH), a) ||
                !fr_cli_int(a, v, 1, FR_SEARCH_MAX_CANDIDATES, &o->candidates))
                return 2;
            o->has_candidates = true;
            i++;
        } else if (!strcmp(a, "--rerank")) { VALUE(S(SUB_SEARCH)); o->rerank = v; }
        else if (!strcmp(a, "--filter")) { VALUE(S(SUB_SEARCH)); o->filter = v; }
        else if (!strcmp(a, "--group-by-document")) {
            if (!allowed(o, S(SUB_SEARCH), a)) return 2;
            o->group = true;
        } else if (!strcmp(a, "--json")) {
            if (!allowed(o, S(SUB_SEARCH) | S(SUB_LS), a)) return 2;
            o->json = true;
        } else if (!strcmp(a, "--all")) {
            if (!allowed(o, S(SUB_RM), a)) return 2;
            o->all = true;
        } else if (!strcmp(a, "--")) {
            while (++i < argc) o->args[o->n_args++] = argv[i];
        } else if (a[0] == '-' && a[1]) {
            return fr_cli_usage("index %s: unknown option '%s' (frugal index --help)", cmd, a);
        } else {
            o->args[o->n_args++] = argv[i];
        }
#undef VALUE
    }
    bool need_collection = o->sub == SUB_ADD || o->sub == SUB_SEARCH || o->sub == SUB_RM;
    if (need_collection && !o->collection)
        return fr_cli_usage("index %s: --collection C is required", cmd);
    switch (o->sub) {
    case SUB_ADD:
        if (!o->n_args) return fr_cli_usage("index add: give at least one FILE or DIR");
        break;
    case SUB_SEARCH:
        if (!o->n_args) return fr_cli_usage("index search: give the query");
        break;
    case SUB_RM:
        if (o->all && o->n_args) return fr_cli_usage("index rm: give document ids or --all, not both");
        if (!o->all && !o->n_args) return fr_cli_usage("index rm: give at least one document id (or --all)");
        break;
    default:
        if (o->n_args) return fr_cli_usage("index %s: unexpected argument '%s'", cmd, o->args[0]);
    }
    return 0;
}

/* ---- models, as the server starts them ---- */

typedef struct ix_models {
    fr_serve_config cfg;
    fr_compute *compute;
    fr_gguf_env env;
    fr_manager *manager;
    fr_search_models provider;
    bool cfg_ready;
} ix_models;

/* No models directory and no [model] section: a model error says so. */
static bool no_models;

static const char *env_get(const char *name) { return getenv(name); }

/* The server's configuration sources (INI file, FRUGAL_* variables), then
 * our flags.  Returns 0 or 2 (bad configuration, reported). */
static int config_load(const ix_opts *o, ix_models *m) {
    fr_serve_config *c = &m->cfg;
    int rc = fr_serve_config_init(c);
    if (rc) return fr_cli_fail(rc, "index");
    m->cfg_ready = true;
    const char *ini = o->config ? o->config : getenv("FRUGAL_CONFIG");
    if (ini && !*ini) ini = NULL;
    if ((ini && (rc = fr_serve_config_file(c, ini))) || (rc = fr_serve_config_env(c, env_get))) {
        fr_cli_fail(rc, "index");
        return 2;
    }
    const struct { const char *flag; char **field; } paths[] = {
        {o->models, &c->models_dir}, {o->data, &c->data_dir}};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        if (!paths[i].flag) continue;
        char *d = fr_strdup(paths[i].flag);
        if (!d) return fr_cli_fail(FR_ENOMEM, "index");
        fr_free(*paths[i].field);
        *paths[i].field = d;
    }
    if (o->threads) c->threads = o->threads;
    if (o->data_sync) c->data_sync_full = !strcmp(o->data_sync, "full");
    if ((rc = fr_serve_config_finish(c))) {
        fr_cli_fail(rc, "index");
        return 2;
    }
    if (!c->data_dir || !*c->data_dir) return fr_cli_usage("index: --data DIR is empty");
    /* the manager's "loaded" lines are the server's business: warnings only,
     * unless asked for */
    fr_log_set_level(getenv("FRUGAL_LOG") ? (int)c->log_level : FR_LOG_WARN);
    return 0;
}

/* The models, as `frugal serve` starts them.  0, 1 or 2 (reported). */
static int models_start(ix_models *m) {
    fr_serve_config *c = &m->cfg;
    if (c->models_dir) {
        struct stat sb;
        if (stat(c->models_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            fr_cli_usage("--models %s: %s", c->models_dir,
                         stat(c->models_dir, &sb) != 0 ? strerror(errno) : "not a directory");
            return 2;
        }
    }
    no_models = !c->models_dir && !c->n_models;
    int rc = fr_cli_models_start(c, &m->compute, &m->env, &m->manager);
    if (rc) return fr_cli_fail(rc, "models");
    fr_search_models_manager(m->manager, &m->provider);
    return 0;
}

/* fr_cli_fail, with a hint when a model was not found and none are offered. */
static int model_fail(int rc, const char *what) {
    const char *d = fr_errdetail();
    if (rc == FR_ENOENT && no_models && d && strstr(d, "model '")) {
        fprintf(stderr, "frugal: %s: %s (no --models DIR, FRUGAL_MODELS or [model] section)\n", what, d);
        return 1;
    }
    return fr_cli_fail(rc, what);
}

static void models_stop(ix_models *m) {
    if (m->manager || m->compute) fr_cli_models_stop(&m->compute, &m->manager);
    if (m->cfg_ready) fr_serve_config_deinit(&m->cfg);
}

static int index_open(const ix_models *m, fr_index **ix) {
    fr_index_config ic = {.data_dir = m->cfg.data_dir, .models = m->manager ? &m->provider : NULL,
                          .sync_full = m->cfg.data_sync_full};
    int rc = fr_index_open(&ic, ix);
    if (rc) return fr_cli_fail(rc, m->cfg.data_dir);
    int level = -1;
    fr_index_synchronous(*ix, &level);
    FR_DEBUG("index: %s/frugal.db opened (synchronous=%s)", m->cfg.data_dir,
             level == 2 ? "full" : level == 1 ? "normal" : "?");
    return 0;
}

/* ---- add ---- */

/* Why text[0..len) is not text ("" when it is): a NUL byte or a byte
 * sequence that is not UTF-8 (overlong forms, surrogates and code points
 * past U+10FFFF included). */
static const char *not_text(const unsigned char *s, size_t len, size_t *at) {
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        *at = i;
        if (c == 0) return "a NUL byte";
        if (c < 0x80) { i++; continue; }
        size_t n;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { n = 2; cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { n = 3; cp = c & 0x07; }
        else return "not UTF-8";
        if (len - i - 1 < n) return "not UTF-8 (cut short)";
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return "not UTF-8";
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return "not UTF-8";
        i += n + 1;
    }
    return "";
}

/* A walked file is a candidate when it is text or Markdown by its name. */
static bool text_name(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return true;       /* no extension */
    static const char *const exts[] = {".txt", ".md", ".markdown", ".text"};
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (!strcasecmp(dot, exts[i])) return true;
    return false;
}

typedef struct pending {
    char *path, *id, *text, *meta;
    size_t len;
} pending;

typedef struct add_state {
    fr_index *ix;
    const ix_opts *o;
    pending batch[BATCH_DOCS];
    size_t n, bytes;
    int64_t files, added, replaced, unchanged, failed, ignored, chunks, embedded;
    int fatal;                  /* an error that stops the run (database, model): its code */
    const char *data_dir;
} add_state;

static void pending_free(pending *p) {
    fr_free(p->path);
    fr_free(p->id);
    fr_free(p->text);
    fr_free(p->meta);           /* json_dumps: jansson allocates with fr_malloc here */
    memset(p, 0, sizeof *p);
}

static void file_failed(add_state *st, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void file_failed(add_state *st, const char *path, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "frugal: %s: ", path);
    vfprintf(stderr, fmt, ap);
    fputs(", skipped\n", stderr);
    va_end(ap);
    st->failed++;
}

static void report(add_state *st, const fr_add_result *r) {
    static const char *const words[] = {"added", "replaced", "unchanged"};
    int s = r->status >= 0 && r->status <= FR_ADD_UNCHANGED ? r->status : 0;
    if (s == FR_ADD_UNCHANGED) printf("unchanged %s\n", r->id);     /* the index does not count its chunks */
    else printf("%s %s (%d chunk%s, %d embedded)\n", words[s], r->id, (int)r->chunks, r->chunks == 1 ? "" : "s",
                (int)r->embedded);
    if (s == FR_ADD_ADDED) st->added++;
    else if (s == FR_ADD_REPLACED) st->replaced++;
    else st->unchanged++;
    st->chunks += r->chunks;
    st->embedded += r->embedded;
}

/* Add docs[0..n): results reported.  A document the index refuses
 * (FR_EINVAL / FR_ETOOLONG: the call wrote nothing) is retried alone so
 * that only that file is skipped; any other error is fatal. */
static void add_docs(add_state *st, pending *p, size_t n) {
    fr_doc_in docs[BATCH_DOCS] = {{0}};
    fr_add_result res[BATCH_DOCS];
    for (size_t i = 0; i < n; i++)
        docs[i] = (fr_doc_in){.id = p[i].id, .text = p[i].text, .len = p[i].len, .metadata = p[i].meta};
    size_t done = 0;
    int rc = fr_index_add(st->ix, st->o->collection, st->o->model, docs, n, res, &done);
    for (size_t i = 0; i < done && i < n; i++) report(st, &res[i]);
    if (!rc) return;
    if ((rc == FR_EINVAL || rc == FR_ETOOLONG) && done == 0) {
        if (n == 1) {
            const char *d = fr_errdetail();
            file_failed(st, p[0].path, "%s", d && *d ? d : fr_strerror(rc));
            return;
        }
        for (size_t i = 0; i < n && !st->fatal; i++) add_docs(st, &p[i], 1);
        return;
    }
    if (rc == FR_ENOSPC) {
        const char *d = fr_errdetail();
        fprintf(stderr, "frugal: %s: not stored: %s\n", done < n ? p[done].path : "index add",
                d && *d ? d : fr_strerror(rc));
    } else {
        model_fail(rc, done < n ? p[done].path : "index add");
    }
    st->failed += (int64_t)(n - done);
    st->fatal = rc;
}

static void flush(add_state *st) {
    if (st->n && !st->fatal) add_docs(st, st->batch, st->n);
    for (size_t i = 0; i < st->n; i++) pending_free(&st->batch[i]);
    st->n = st->bytes = 0;
    fflush(stdout);
}

/* Read a regular file of at most FR_SEARCH_MAX_DOC_BYTES.  0, or 1 after
 * reporting the file. */
static int read_text(add_state *st, const char *path, char **text, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);   /* a FIFO must not block us */
    if (fd < 0) { file_failed(st, path, "cannot open: %s", strerror(errno)); return 1; }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        file_failed(st, path, "not a regular file");
        return 1;
    }
    if (sb.st_size > (off_t)FR_SEARCH_MAX_DOC_BYTES) {
        close(fd);
        file_failed(st, path, "too big (%lld bytes; the limit is %u)", (long long)sb.st_size,
                    FR_SEARCH_MAX_DOC_BYTES);
        return 1;
    }
    size_t cap = (size_t)sb.st_size + 1, n = 0;
    char *buf = fr_malloc(cap + 1);
    if (!buf) { close(fd); file_failed(st, path, "out of memory"); return 1; }
    for (;;) {      /* one byte more than the size: a file that grew is seen */
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            file_failed(st, path, "cannot read: %s", strerror(errno));
            close(fd);
            fr_free(buf);
            return 1;
        }
        if (r == 0) break;
        n += (size_t)r;
        if (n == cap) break;
    }
    close(fd);
    if (n > (size_t)sb.st_size) {
        fr_free(buf);
        file_failed(st, path, "changed while it was read");
        return 1;
    }
    buf[n] = 0;
    *text = buf;
    *len = n;
    return 0;
}

/* One file: read, check, queue (flushing when the batch is full or
 * already holds this id). */
static void add_file(add_state *st, const char *path, const char *id) {
    if (st->fatal) return;
    st->files++;
    char *text = NULL;
    size_t len = 0, at = 0;
    if (*not_text((const unsigned char *)path, strlen(path), &at)) {
        file_failed(st, path, "the name is not UTF-8");
        return;
    }
    if (read_text(st, path, &text, &len)) return;
    const char *why = not_text((const unsigned char *)text, len, &at);
    if (*why) {
        file_failed(st, path, "not text (%s at byte %zu)", why, at);
        fr_free(text);
        return;
    }
    for (size_t i = 0; i < st->n; i++)
        if (!strcmp(st->batch[i].id, id)) { flush(st); break; }
    if (st->n == BATCH_DOCS || (st->n && st->bytes + len > BATCH_BYTES)) flush(st);
    json_t *mj = json_pack("{s:s, s:I}", "path", path, "bytes", (json_int_t)len);
    pending *p = &st->batch[st->n];
    p->path = fr_strdup(path);
    p->id = fr_strdup(id);
    p->meta = mj ? json_dumps(mj, JSON_COMPACT) : NULL;
    json_decref(mj);
    p->text = text;
    p->len = len;
    if (!p->path || !p->id || !p->meta) {
        file_failed(st, path, "out of memory");
        pending_free(p);
        return;
    }
    st->n++;
    st->bytes += len;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    while (a > 1 && dir[a - 1] == '/') a--;
    char *s = fr_malloc(a + b + 2);
    if (!s) return NULL;
    memcpy(s, dir, a);
    size_t k = a;
    if (!(a == 1 && dir[0] == '/')) s[k++] = '/';
    memcpy(s + k, name, b + 1);
    return s;
}

/* Walk dir (its id prefix rel, "" at the top) in sorted order. */
static void walk(add_state *st, const char *dir, const char *rel, int depth) {
    if (depth > MAX_DEPTH) { file_failed(st, dir, "nested more than %d directories deep", MAX_DEPTH); return; }
    DIR *d = opendir(dir);
    if (!d) { file_failed(st, dir, "cannot open the directory: %s", strerror(errno)); return; }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    bool stop = false;        /* out of memory, or a fatal error */
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;      /* hidden, . and .. */
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **nn = fr_realloc(names, nc * sizeof *nn);
            if (!nn) { stop = true; break; }
            names = nn;
            cap = nc;
        }
        if (!(names[n] = fr_strdup(e->d_name))) { stop = true; break; }
        n++;
    }
    closedir(d);
    if (stop) file_failed(st, dir, "out of memory listing the directory");
    if (n) qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n && !stop; i++) {
        char *path = join(dir, names[i]);
        char *id = *rel ? join(rel, names[i]) : fr_strdup(names[i]);
        struct stat sb;
        if (!path || !id) {
            file_failed(st, dir, "out of memory");
        } else if (lstat(path, &sb) != 0) {
            file_failed(st, path, "cannot stat: %s", strerror(errno));
        } else {
            bool link = S_ISLNK(sb.st_mode);
            if (link && stat(path, &sb) != 0) {
                st->files++;
                file_failed(st, path, "a broken symbolic link");
            } else if (S_ISDIR(sb.st_mode)) {
                if (!link) walk(st, path, id, depth + 1);  /* symlinked directories: no loops */
            } else if (!S_ISREG(sb.st_mode) || !text_name(names[i])) {
                st->ignored++;
            } else {
                add_file(st, path, st->o->id_from_name ? names[i] : id);
            }
        }
        fr_free(path);
        fr_free(id);
        if (st->fatal) stop = true;
    }
    for (size_t i = 0; i < n; i++) fr_free(names[i]);
    fr_free(names);
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* The collection exists with the flags' settings, or is created with them. */
static int ensure_collection(add_state *st) {
    const ix_opts *o = st->o;
    fr_collection_info ci;
    int rc = fr_index_collection_get(st->ix, o->collection, &ci);
    if (rc == FR_ENOENT) {
        if (!o->model)
            return fr_cli_usage("index add: collection '%s' does not exist: give --model M to create it",
                                o->collection);
        fr_collection_params cp = {.name = o->collection, .model = o->model,
                                   .chunk_size = o->has_chunk_size ? (int32_t)o->chunk_size : 0,
                                   .chunk_overlap = o->has_chunk_overlap ? (int32_t)o->chunk_overlap : -1,
                                   .stemming = o->stemming};
        if ((rc = fr_index_collection_create(st->ix, &cp, &ci)) == FR_ECONFLICT)
            rc = fr_index_collection_get(st->ix, o->collection, &ci);   /* made meanwhile */
        else if (!rc)
            printf("created collection %s (model %s, %d dimensions, chunks of %d tokens, overlap %d%s)\n",
                   ci.name, ci.model, (int)ci.dim, (int)ci.chunk_size, (int)ci.chunk_overlap,
                   ci.stemming ? ", stemming" : "");
    }
    if (rc) {
        char what[FR_SEARCH_MAX_NAME + 16];
        snprintf(what, sizeof what, "collection %s", o->collection);
        return model_fail(rc, what);
    }
    char why[640] = "";
    if (o->model && strcmp(o->model, ci.model))
        snprintf(why, sizeof why, "its model is %s, not %s", ci.model, o->model);
    else if (o->has_chunk_size && o->chunk_size != ci.chunk_size)
        snprintf(why, sizeof why, "its chunk size is %d, not %ld", (int)ci.chunk_size, o->chunk_size);
    else if (o->has_chunk_overlap && o->chunk_overlap != ci.chunk_overlap)
        snprintf(why, sizeof why, "its chunk overlap is %d, not %ld", (int)ci.chunk_overlap, o->chunk_overlap);
    else if (o->stemming && !ci.stemming)
        snprintf(why, sizeof why, "it was made without stemming");
    if (*why) {
        fprintf(stderr, "frugal: collection %s: %s (settings are fixed when it is created)\n", ci.name, why);
        return 1;
    }
    return 0;
}

static int cmd_add(const ix_opts *o, fr_index *ix, const char *data_dir) {
    add_state *st = fr_calloc(1, sizeof *st);
    if (!st) return fr_cli_fail(FR_ENOMEM, "index add");
    st->ix = ix;
    st->o = o;
    st->data_dir = data_dir;
    int code = ensure_collection(st);
    if (code) { fr_free(st); return code; }
    fflush(stdout);
    double t0 = fr_now_s();
    for (int i = 0; i < o->n_args && !st->fatal; i++) {
        const char *a = o->args[i];
        struct stat sb;
        if (stat(a, &sb) != 0) {
            st->files++;
            file_failed(st, a, "%s", strerror(errno));
        } else if (S_ISDIR(sb.st_mode)) {
            walk(st, a, "", 0);
        } else {
            const char *id = a;
            while (id[0] == '.' && id[1] == '/') id += 2;
            add_file(st, a, o->id_from_name ? base_name(a) : id);
        }
    }
    flush(st);
    printf("%lld file%s: %lld added, %lld replaced, %lld unchanged, %lld failed; %lld chunks, %lld embedded",
           (long long)st->files, st->files == 1 ? "" : "s", (long long)st->added, (long long)st->replaced,
           (long long)st->unchanged, (long long)st->failed, (long long)st->chunks, (long long)st->embedded);
    if (st->ignored) printf("; %lld ignored (not text or Markdown by name)", (long long)st->ignored);
    printf("; %.2f s\n", fr_now_s() - t0);
    fflush(stdout);
    if (st->fatal == FR_ENOSPC)
        fprintf(stderr, "frugal: index add: stopped, the disk of data directory %s is full: the files reported "
                        "added or replaced are stored whole, the others are not; free space and run it again "
                        "(the stored ones come back unchanged)\n", st->data_dir);
    code = st->failed || st->fatal ? 1 : 0;
    fr_free(st);
    return code;
}

/* ---- search ---- */

/* The query: the arguments joined by spaces. */
static char *query_text(const ix_opts *o) {
    size_t n = 1;
    for (int i = 0; i < o->n_args; i++) n += strlen(o->args[i]) + 1;
    char *q = fr_malloc(n), *w = q;
    if (!q) return NULL;
    for (int i = 0; i < o->n_args; i++) {
        size_t l = strlen(o->args[i]);
        if (i) *w++ = ' ';
        memcpy(w, o->args[i], l);
        w += l;
    }
    *w = 0;
    return q;
}

/* The server's search reply (fr_server_search_json), on one line. */
static int print_json(const ix_opts *o, const fr_search_result *r) {
    json_t *root = fr_server_search_json(o->collection, o->mode, r);
    if (!root) return FR_ENOMEM;
    int rc = json_dumpf(root, stdout, JSON_COMPACT) ? FR_EIO : 0;
    putchar('\n');
    json_decref(root);
    return rc;
}

/* An excerpt of text on one line: blanks collapsed, at most EXCERPT_CHARS
 * characters, "..." when cut. */
static void excerpt(const char *s, char *out, size_t cap) {
    size_t w = 0, chars = 0;
    bool blank = false;
    for (; *s && w + 8 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            blank = w > 0;
            continue;
        }
        if ((c & 0xc0) != 0x80) {       /* a character starts */
            if (chars + (blank ? 1 : 0) >= EXCERPT_CHARS) { memcpy(out + w, "...", 3); w += 3; break; }
            if (blank) { out[w++] = ' '; chars++; blank = false; }
            chars++;
        }
        out[w++] = (char)(c < 0x20 ? ' ' : c);
    }
    out[w] = 0;
}

static void print_table(const fr_search_result *r) {
    int idw = 8;
    for (size_t i = 0; i < r->n; i++) {
        int l = (int)strlen(r->hits[i].document_id);
        if (l > idw) idw = l < 40 ? l : 40;
    }
    printf("%4s  %-10s  %-*s  %s\n", "rank", "score", idw, "document", "text");
    char ex[EXCERPT_CHARS * 4 + 16];
    for (size_t i = 0; i < r->n; i++) {
        const fr_search_hit *h = &r->hits[i];
        excerpt(h->text ? h->text : "", ex, sizeof ex);
        printf("%4zu  %-10.6g  %-*s  %s\n", i + 1, h->score, idw, h->document_id, ex);
    }
    printf("%zu result%s in %.1f ms", r->n, r->n == 1 ? "" : "s", r->took_ms);
    for (size_t i = 0; i < r->n_dropped; i++)
        printf(i ? ", %s" : "; common terms dropped: %s", r->dropped_terms[i]);
    putchar('\n');
}

static int cmd_search(const ix_opts *o, fr_index *ix) {
    char *q = query_text(o);
    if (!q) return fr_cli_fail(FR_ENOMEM, "index search");
    fr_search_params p;
    fr_search_params_init(&p);
    p.collection = o->collection;
    p.query = q;
    p.mode = o->mode;
    p.fusion = o->fusion;
    if (o->has_top_k) p.top_k = (int32_t)o->top_k;
    if (o->has_candidates) p.candidates = (int32_t)o->candidates;
    p.filter = o->filter;
    p.rerank = o->rerank;
    p.group_by_document = o->group;
    fr_search_result *r = NULL;
    int rc = fr_index_search(ix, &p, &r);
    fr_free(q);
    if (rc) return model_fail(rc, "search");
    if (o->json) rc = print_json(o, r);
    else print_table(r);
    fr_search_result_free(r);
    fflush(stdout);
    return rc ? fr_cli_fail(rc, "search") : 0;
}

/* ---- rm, ls, check ---- */

static int cmd_rm(const ix_opts *o, fr_index *ix) {
    int rc;
    if (o->all) {
        if ((rc = fr_index_collection_delete(ix, o->collection))) return fr_cli_fail(rc, o->collection);
        printf("deleted collection %s\n", o->collection);
        return 0;
    }
    int code = 0;
    for (int i = 0; i < o->n_args; i++) {
        if ((rc = fr_index_delete(ix, o->collection, o->args[i]))) {
            code = fr_cli_fail(rc, o->args[i]);
            if (rc != FR_ENOENT) break;     /* the database: do not go on */
            continue;
        }
        printf("deleted %s\n", o->args[i]);
    }
    fflush(stdout);
    return code;
}

static int cmd_ls(const ix_opts *o, fr_index *ix) {
    fr_collection_info one, *list = NULL;
    size_t n = 0;
    int rc;
    if (o->collection) {
        if ((rc = fr_index_collection_get(ix, o->collection, &one))) return fr_cli_fail(rc, o->collection);
        list = &one;
        n = 1;
    } else if ((rc = fr_index_collection_list(ix, &list, &n))) {
        return fr_cli_fail(rc, "index ls");
    }
    if (o->json) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++) json_array_append_new(a, fr_server_collection_json(&list[i]));
        json_t *root = a ? json_pack("{s:s, s:o}", "object", "list", "data", a) : NULL;
        if (root) json_dumpf(root, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(root);
        rc = root ? 0 : FR_ENOMEM;
    } else {
        printf("%-20s %-24s %5s %10s %10s %10s %12s %12s  %s\n", "collection", "model", "dim", "documents",
               "chunks", "vectors", "text_bytes", "vector_bytes", "chunking");
        for (size_t i = 0; i < n; i++) {
            const fr_collection_info *c = &list[i];
            printf("%-20s %-24s %5d %10lld %10lld %10lld %12lld %12lld  %d/%d%s\n", c->name, c->model,
                   (int)c->dim, (long long)c->documents, (long long)c->chunks, (long long)c->vectors,
                   (long long)c->text_bytes, (long long)c->vector_bytes, (int)c->chunk_size,
                   (int)c->chunk_overlap, c->stemming ? " stemming" : "");
        }
    }
    if (list != &one) fr_free(list);
    fflush(stdout);
    return rc ? fr_cli_fail(rc, "index ls") : 0;
}

static int cmd_check(const ix_opts *o, fr_index *ix) {
    fr_index_report r;
    memset(&r, 0, sizeof r);
    int rc = fr_index_check(ix, o->collection, &r);
    if (rc) return fr_cli_fail(rc, o->collection ? o->collection : "index check");
    printf("%lld collection%s, %lld documents, %lld chunks, %lld FTS rows, %lld vectors: ",
           (long long)r.collections, r.collections == 1 ? "" : "s", (long long)r.documents,
           (long long)r.chunks, (long long)r.fts_rows, (long long)r.vectors);
    if (r.problems == 0) printf("consistent\n");
    else printf("%lld problem%s; the first: %s\n", (long long)r.problems, r.problems == 1 ? "" : "s", r.first);
    fflush(stdout);
    return r.problems ? 1 : 0;
}

/* ---- the command ---- */

int fr_cli_index(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    ix_opts o;
    memset(&o, 0, sizeof o);
    o.sub = -1;
    for (int i = 0; i < SUB_COUNT; i++)
        if (!strcmp(argv[1], sub_names[i])) o.sub = i;
    if (o.sub < 0) return fr_cli_usage("index: unknown subcommand '%s' (add, search, rm, ls, check)", argv[1]);
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); return 0; }
    /* metadata and replies are built with jansson: on the counted heap */
    json_set_alloc_funcs(fr_malloc, fr_free);
    int code = parse(argc - 1, argv + 1, &o);
    if (code) { fr_free(o.args); return code; }

    bool need_models = o.sub == SUB_ADD ||
                       (o.sub == SUB_SEARCH && (o.mode != FR_SEARCH_BM25 || o.rerank));
    ix_models m;
    memset(&m, 0, sizeof m);
    fr_index *ix = NULL;
    if ((code = config_load(&o, &m))) goto out;
    if (need_models && (code = models_start(&m))) goto out;
    if ((code = index_open(&m, &ix))) goto out;
    switch (o.sub) {
    case SUB_ADD: code = cmd_add(&o, ix, m.cfg.data_dir); break;
    case SUB_SEARCH: code = cmd_search(&o, ix); break;
    case SUB_RM: code = cmd_rm(&o, ix); break;
    case SUB_LS: code = cmd_ls(&o, ix); break;
    default: code = cmd_check(&o, ix); break;
    }
out:
    if (ix) fr_index_close(ix);
    models_stop(&m);
    fr_free(o.args);
    return code;
}
