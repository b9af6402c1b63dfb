/*
 * collections.c — document search over HTTP (docs/API-search.md):
 * collections, documents, search and ask, on the index of
 * search/search.h.
 *
 *   POST   /v1/collections                        create (201)
 *   GET    /v1/collections                        list
 *   GET    /v1/collections/{name}                 one, with its counts
 *   DELETE /v1/collections/{name}                 drop it
 *   POST   /v1/collections/{name}/documents       add or replace documents
 *   DELETE /v1/collections/{name}/documents/{id}  delete one
 *   POST   /v1/collections/{name}/search          bm25, vector or hybrid
 *   POST   /v1/collections/{name}/ask             retrieve, then generate
 *
 * Handlers validate what they can see in the body (types, ranges, the
 * document limits of search.h) and answer 400 naming the field before the
 * index is called, so a bad request changes nothing; the index checks the
 * rest (its own errors name the field in their detail, which becomes the
 * message; the param is taken from the detail's leading "field:" when it
 * has one).  Statuses follow the error table: 400 invalid, 404 unknown
 * collection or model, 409 a collection that exists, 413 a document over
 * FR_SEARCH_MAX_DOC_BYTES ("document_too_large"; the body limit comes
 * first unless --max-body is larger), 503 busy or no memory, 507 a full
 * disk ("insufficient_storage", FR_ENOSPC).  Adding documents that fails
 * after some were stored, or on a full disk, answers the error with the
 * results of every document (stored or "not_stored") in the same body.
 *
 * The index (fr_server_search) is opened lazily: see server.h.  Its mutex
 * only guards the opening; the index itself is thread-safe.
 *
 * Ask: the body holds the retrieval's fields and a chat completion's
 * (gen.c's fr__gen_parse_options reads those into an fr_gen_req, all but
 * "top_k", which in ask is the number of sources), and both are checked
 * before anything runs.  The generation model is then acquired, once: it
 * must chat, and its context sets the prompt's budget (context − the
 * answer's max_tokens, or a quarter of the context, − TEMPLATE_TOKENS for
 * the chat template); fr_index_ask_prompt retrieves and builds the
 * prompt, which becomes the request's one user message; and gen.c's
 * fr__gen_run generates with the handle already held and hooks that add
 * the sources: the last event of a stream, or the "sources" of the
 * {"answer", ...} reply.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/sysinfo.h"
#include "manager/loader_gguf.h"
#include "search/chunk.h"
#include "search/search.h"
#include "server/server_int.h"

#define MAX_DOCS 1000               /* documents per request */
#define TEMPLATE_TOKENS 64          /* the chat template's own tokens, at most */
#define ASK_TOP_K 5
#define ASK_MAX_SOURCES FR_SEARCH_MAX_TOP_K

struct fr_server_search {
    pthread_mutex_t mu;             /* guards ix while it is opened */
    char *dir, *db;                 /* DIR, DIR/frugal.db */
    size_t cache_bytes;
    bool sync_full;                 /* PRAGMA synchronous=FULL */
    fr_search_models models;
    fr_manager *mg;
    fr_index *ix;                   /* NULL until opened */
};

/* ---- the lazily opened index ---- */

/* mkdir -p dir. */
static int make_dirs(const char *dir) {
    char p[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof p) return fr_errf(FR_EIO, "data directory '%.200s': bad path", dir);
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != 0) continue;
        char c = p[i];
        p[i] = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return fr_errf(errno == ENOSPC || errno == EDQUOT ? FR_ENOSPC : FR_EIO,
                           "data directory %s: cannot make %s: %s", dir, p, strerror(errno));
        p[i] = c;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return fr_errf(FR_EIO, "data directory %s: not a directory", dir);
    return 0;
}

/* An existing directory must be writable; a missing one creatable. */
static int check_dir(const char *dir) {
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) return fr_errf(FR_EIO, "data directory %s: not a directory", dir);
        if (access(dir, R_OK | W_OK | X_OK) != 0)
            return fr_errf(FR_EIO, "data directory %s: %s", dir, strerror(errno));
        return 0;
    }
    if (errno != ENOENT) return fr_errf(FR_EIO, "data directory %s: %s", dir, strerror(errno));
    char p[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof p) return fr_errf(FR_EIO, "data directory '%.200s': bad path", dir);
    memcpy(p, dir, n + 1);
    for (;;) {     /* the nearest existing parent */
        while (n > 1 && p[n - 1] == '/') p[--n] = 0;
        char *slash = strrchr(p, '/');
        if (!slash) { strcpy(p, "."); }
        else if (slash == p) p[1] = 0;
        else *slash = 0;
        n = strlen(p);
        if (stat(p, &sb) == 0) break;
        if (errno != ENOENT || !strcmp(p, ".") || !strcmp(p, "/"))
            return fr_errf(FR_EIO, "data directory %s: %s: %s", dir, p, strerror(errno));
    }
    if (!S_ISDIR(sb.st_mode)) return fr_errf(FR_EIO, "data directory %s: %s is not a directory", dir, p);
    if (access(p, W_OK | X_OK) != 0)
        return fr_errf(FR_EIO, "data directory %s: cannot be made in %s: %s", dir, p, strerror(errno));
    return 0;
}

static int open_index(fr_server_search *ss) {
    int rc = make_dirs(ss->dir);
    if (rc) return rc;
    fr_index_config ic = {.data_dir = ss->dir, .models = &ss->models, .cache_bytes = ss->cache_bytes,
                          .sync_full = ss->sync_full};
    if ((rc = fr_index_open(&ic, &ss->ix))) {
        ss->ix = NULL;
        return rc;
    }
    /* the level SQLite reports, not the one asked for */
    int level = -1;
    fr_index_synchronous(ss->ix, &level);
    FR_INFO("search: index %s opened (synchronous=%s)", ss->db,
            level == 2 ? "full" : level == 1 ? "normal" : level == 3 ? "extra" : level == 0 ? "off" : "?");
    return 0;
}

int fr_server_search_create(const char *data_dir, size_t cache_bytes, bool sync_full, fr_manager *mg,
                            fr_server_search **out) {
    *out = NULL;
    if (!data_dir || !*data_dir) return fr_errf(FR_EINVAL, "data directory: empty path");
    int rc = check_dir(data_dir);
    if (rc) return rc;
    fr_server_search *ss = fr_calloc(1, sizeof *ss);
    size_t n = strlen(data_dir);
    if (!ss || !(ss->dir = fr_strdup(data_dir)) || !(ss->db = fr_malloc(n + 11))) {
        if (ss) fr_free(ss->dir);
        fr_free(ss);
        return fr_errf(FR_ENOMEM, "data directory %s: no memory", data_dir);
    }
    snprintf(ss->db, n + 11, "%s/frugal.db", data_dir);
    pthread_mutex_init(&ss->mu, NULL);
    ss->cache_bytes = cache_bytes;
    ss->sync_full = sync_full;
    ss->mg = mg;
    fr_search_models_manager(mg, &ss->models);
    struct stat sb;
    if (stat(ss->db, &sb) == 0 && (rc = open_index(ss))) {
        char d[400];
        snprintf(d, sizeof d, "%s", fr_errdetail());
        fr_server_search_destroy(ss);
        return fr_errf(rc, "data directory %s: %s", data_dir, d);
    }
    *out = ss;
    return 0;
}

void fr_server_search_destroy(fr_server_search *ss) {
    if (!ss) return;
    if (ss->ix) fr_index_close(ss->ix);
    pthread_mutex_destroy(&ss->mu);
    fr_free(ss->db);
    fr_free(ss->dir);
    fr_free(ss);
}

/* The index; with create false, NULL (and 0) when none exists yet.  A
 * server without search answers 404 (FR_REPLIED). */
static int get_index(fr_req *rq, bool create, fr_index **out) {
    fr_server_search *ss = rq->srv->cfg.search;
    *out = NULL;
    if (!ss) return fr__reply_error(rq, 404, "not_found", NULL, "document search is not enabled on this server");
    pthread_mutex_lock(&ss->mu);
    int rc = 0;
    struct stat sb;
    if (!ss->ix && (create || stat(ss->db, &sb) == 0)) rc = open_index(ss);
    *out = ss->ix;
    pthread_mutex_unlock(&ss->mu);
    return rc;
}

/* ---- replies ---- */

/* The field a detail starts with ("documents[2].text: ..."), or dflt. */
static const char *param_of(fr_req *rq, const char *detail, const char *dflt) {
    size_t n = 0;
    while (detail[n] && (detail[n] == '_' || detail[n] == '.' || detail[n] == '[' || detail[n] == ']' ||
                         (detail[n] >= 'a' && detail[n] <= 'z') || (detail[n] >= '0' && detail[n] <= '9')))
        n++;
    if (n == 0 || n > 64 || detail[n] != ':') return dflt;
    char buf[72];
    memcpy(buf, detail, n);
    buf[n] = 0;
    const char *p = fr__req_strdup(rq, buf);
    return p ? p : dflt;
}

/* An error of the index as it is answered: status, code, param, message. */
typedef struct ix_error {
    int status;
    const char *code, *param;
    char msg[512];
} ix_error;

/* The answer to an error of the index: the status of the error table,
 * the detail as the message, the param from the detail's "field:", else
 * "model" when the detail names a model ("model 'x' ..."; dflt "rerank"
 * wins then: the search handler passes it when the detail names the
 * reranker), else dflt; none for a full disk, which is no field's fault. */
static void ix_error_of(fr_req *rq, int rc, const char *dflt, ix_error *e) {
    char *d = e->msg;
    snprintf(d, sizeof e->msg, "%s", *fr_errdetail() ? fr_errdetail() : fr_strerror(rc));
    bool names_model = strstr(d, "model '") || strstr(d, "unknown model");
    bool rr = dflt && !strcmp(dflt, "rerank");
    const char *param = param_of(rq, d, NULL);
    if (!param) param = rr ? dflt : names_model ? "model" : dflt;
    if (rc == FR_ENOSPC) param = NULL;
    e->status = fr_errstatus(rc);
    e->code = fr__err_code(rc, param);
    e->param = param;
    if (rc == FR_ENOENT) {
        e->status = 404;
        if (names_model && !strstr(d, "collection '")) {
            e->code = "model_not_found";
            e->param = rr ? "rerank" : "model";
        } else {
            e->code = "not_found";
            e->param = param ? param : "name";
        }
    } else if (rc == FR_ETOOLONG && param && !strncmp(param, "documents", 9)) {
        e->status = 413;
        e->code = "document_too_large";
    } else if (rc == FR_ECONFLICT) {
        e->status = 409;
        e->code = "collection_exists";
        e->param = param ? param : "name";
    }
    if (rc == FR_EBUSY && !rq->retry_after_s) fr__req_set_retry_after(rq, 1);
    if (e->status >= 500 && e->status != 503)
        FR_ERROR("%s: %s %s: %s", rq->id, rq->method, rq->route_name, e->msg);
}

static int ix_err(fr_req *rq, int rc, const char *dflt) {
    ix_error e;
    ix_error_of(rq, rc, dflt, &e);
    return fr__reply_error(rq, e.status, e.code, e.param, "%s", e.msg);
}

json_t *fr_server_collection_json(const fr_collection_info *c) {
    return json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f}",
                     "object", "collection", "name", c->name, "model", c->model, "dimensions", (int)c->dim,
                     "chunk_size", (int)c->chunk_size, "chunk_overlap", (int)c->chunk_overlap, "stemming",
                     (int)c->stemming, "documents", (json_int_t)c->documents, "chunks", (json_int_t)c->chunks,
                     "vectors", (json_int_t)c->vectors, "text_bytes", (json_int_t)c->text_bytes,
                     "vector_bytes", (json_int_t)c->vector_bytes, "bytes",
                     (json_int_t)(c->text_bytes + c->vector_bytes), "cached_bytes", (json_int_t)c->cached_bytes,
                     "created", c->created);
}

/* A JSON object text from the index, or null. */
static json_t *meta_json(const char *s) {
    json_error_t e;
    json_t *j = s ? json_loads(s, 0, &e) : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        return json_object();
    }
    return j;
}

/* ---- reading the body ---- */

/* The retrieval fields of search and ask (qkey: "query" or "question"). */
static int parse_search(const fr_body *b, const char *qkey, fr_search_params *sp) {
    fr_req *rq = b->rq;
    json_t *q = json_object_get(b->obj, qkey);
    if (!q) return fr__reply_error(rq, 400, "missing_field", qkey, "%s is required", qkey);
    if (!json_is_string(q)) return fr__reply_error(rq, 400, "invalid_value", qkey, "%s must be a string", qkey);
    const char *qs = json_string_value(q);
    size_t i = 0;
    while (qs[i] == ' ' || qs[i] == '\t' || qs[i] == '\n' || qs[i] == '\r') i++;
    if (!qs[i]) return fr__reply_error(rq, 400, "invalid_value", qkey, "%s must not be empty", qkey);
    sp->query = qs;
    const char *mode = NULL, *fusion = NULL;
    int rc;
    if ((rc = fr__body_i32(b, "top_k", 1, FR_SEARCH_MAX_TOP_K, &sp->top_k, NULL)) ||
        (rc = fr__body_str(b, "mode", 0, &mode, NULL)))
        return rc;
    if (mode) {
        if (!strcmp(mode, "bm25")) sp->mode = FR_SEARCH_BM25;
        else if (!strcmp(mode, "vector")) sp->mode = FR_SEARCH_VECTOR;
        else if (!strcmp(mode, "hybrid")) sp->mode = FR_SEARCH_HYBRID;
        else return fr__reply_error(rq, 400, "invalid_value", "mode", "mode must be bm25, vector or hybrid");
    }
    if ((rc = fr__body_str(b, "fusion", 0, &fusion, NULL))) return rc;
    if (fusion) {
        if (!strcmp(fusion, "rrf")) sp->fusion = FR_FUSION_RRF;
        else if (!strcmp(fusion, "linear")) sp->fusion = FR_FUSION_LINEAR;
        else return fr__reply_error(rq, 400, "invalid_value", "fusion", "fusion must be rrf or linear");
    }
    json_t *w = NULL, *f = NULL;
    if ((rc = fr__body_object(b, "weights", "an object {\"bm25\": number, \"vector\": number}", &w))) return rc;
    if (w) {
        const char *k;
        json_t *v;
        json_object_foreach(w, k, v) {
            if (strcmp(k, "bm25") && strcmp(k, "vector"))
                return fr__reply_error(rq, 400, "invalid_value", "weights",
                                       "weights has keys bm25 and vector only (got '%.40s')", k);
        }
        fr_body wb = {.rq = rq, .obj = w, .prefix = "weights"};
        if ((rc = fr__body_num(&wb, "bm25", 0, 1e6, &sp->w_bm25, NULL)) ||
            (rc = fr__body_num(&wb, "vector", 0, 1e6, &sp->w_vector, NULL)))
            return rc;
        if (sp->w_bm25 + sp->w_vector <= 0)
            return fr__reply_error(rq, 400, "invalid_value", "weights", "weights must not both be 0");
    }
    if ((rc = fr__body_i32(b, "rrf_k", 1, 1000000, &sp->rrf_k, NULL)) ||
        (rc = fr__body_i32(b, "candidates", 1, FR_SEARCH_MAX_CANDIDATES, &sp->candidates, NULL)) ||
        (rc = fr__body_object(b, "filter", "an object of metadata keys and scalar values", &f)))
        return rc;
    if (f) {
        const char *k;
        json_t *v;
        json_object_foreach(f, k, v) {
            if (json_is_object(v) || json_is_array(v) || json_is_null(v))
                return fr__reply_error(rq, 400, "invalid_value", "filter",
                                       "filter.%.60s must be a string, a number or a boolean", k);
            if (!*k || strchr(k, '"') || strchr(k, '\\'))
                return fr__reply_error(rq, 400, "invalid_value", "filter",
                                       "filter key '%.60s' must be non-empty, without '\"' or '\\'", k);
        }
        if (json_object_size(f)) {
            char *s = json_dumps(f, JSON_COMPACT);
            if (!s) return FR_ENOMEM;
            sp->filter = fr__req_strdup(rq, s);
            fr_free(s);
            if (!sp->filter) return FR_ENOMEM;
        }
    }
    if ((rc = fr__body_str(b, "rerank", 0, &sp->rerank, NULL)) ||
        (rc = fr__body_i32(b, "rerank_top_n", 1, FR_SEARCH_MAX_TOP_K, &sp->rerank_top_n, NULL)) ||
        (rc = fr__body_bool(b, "group_by_document", &sp->group_by_document)))
        return rc;
    return 0;
}

/* The collection name of the path, checked as the index would: an
 * impossible one is a 404 (FR_REPLIED). */
static int path_name(fr_req *rq, const char **out) {
    const char *name = fr__req_param(rq, "name");
    size_t n = name ? strlen(name) : 0;
    bool ok = n >= 1 && n <= FR_SEARCH_MAX_NAME;
    for (size_t i = 0; ok && i < n; i++) {
        char c = name[i];
        ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
             c == '-';
    }
    if (!ok)
        return fr__reply_error(rq, 404, "not_found", "name",
                               "no collection '%.80s' (names are 1 to %d of A-Z a-z 0-9 _ . -)", name ? name : "",
                               FR_SEARCH_MAX_NAME);
    *out = name;
    return 0;
}

/* Before a write that may make the data directory: an unknown model is
 * a 404 that leaves nothing behind (FR_REPLIED). */
static int model_known(fr_req *rq, const char *model) {
    fr_manager *mg = fr__req_manager(rq);
    fr_model_info mi;
    if (mg && fr_manager_get(mg, model, &mi) != FR_ENOENT) return 0;
    return fr__reply_error(rq, 404, "model_not_found", "model", "model '%.128s' not found%s", model,
                           mg ? "" : ": no models are offered");
}

static int no_collection(fr_req *rq, const char *name) {
    return fr__reply_error(rq, 404, "not_found", "name", "collection '%s' not found", name);
}

/* The path's collection in an index that exists: 404s otherwise. */
static int find_collection(fr_req *rq, const char **name, fr_index **ix) {
    int rc = path_name(rq, name);
    if (!rc) rc = get_index(rq, false, ix);
    if (!rc && !*ix) rc = no_collection(rq, *name);
    return rc;
}

/* ---- collections ---- */

/* The collection fields of a create (also used by documents' implicit create). */
static int parse_collection(const fr_body *b, fr_collection_params *cp) {
    int rc;
    cp->chunk_size = 0;
    cp->chunk_overlap = -1;
    if ((rc = fr__body_i32(b, "chunk_size", FR_CHUNK_MIN_SIZE, FR_CHUNK_MAX_SIZE, &cp->chunk_size, NULL)) ||
        (rc = fr__body_i32(b, "chunk_overlap", 0, FR_CHUNK_MAX_SIZE / 2, &cp->chunk_overlap, NULL)) ||
        (rc = fr__body_bool(b, "stemming", &cp->stemming)))
        return rc;
    return 0;
}

int fr__h_collections_create(fr_req *rq) {
    fr_body b;
    fr_collection_params cp = {0};
    int rc;
    if ((rc = fr__body_need(rq, &b)) ||
        (rc = fr__body_str(&b, "name", FR_BODY_REQUIRED, &cp.name, NULL)) ||
        (rc = fr__body_str(&b, "model", FR_BODY_REQUIRED, &cp.model, NULL)) ||
        (rc = parse_collection(&b, &cp)))
        return rc;
    fr__req_set_model(rq, cp.model);
    fr_index *ix;
    if ((rc = model_known(rq, cp.model)) || (rc = get_index(rq, true, &ix))) return rc;
    fr_collection_info info;
    rc = fr_index_collection_create(ix, &cp, &info);
    if (rc) return ix_err(rq, rc, "name");
    return fr__reply_json(rq, 201, fr_server_collection_json(&info));
}

int fr__h_collections_list(fr_req *rq) {
    fr_index *ix;
    int rc = get_index(rq, false, &ix);
    if (rc) return rc;
    fr_collection_info *list = NULL;
    size_t n = 0;
    rc = ix ? fr_index_collection_list(ix, &list, &n) : 0;
    if (rc) return ix_err(rq, rc, NULL);
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(data, fr_server_collection_json(&list[i]));
    fr_free(list);
    return fr__reply_json(rq, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

int fr__h_collection_get(fr_req *rq) {
    const char *name;
    fr_index *ix;
    int rc = find_collection(rq, &name, &ix);
    if (rc) return rc;
    fr_collection_info info;
    rc = fr_index_collection_get(ix, name, &info);
    if (rc) return ix_err(rq, rc, "name");
    return fr__reply_json(rq, 200, fr_server_collection_json(&info));
}

int fr__h_collection_delete(fr_req *rq) {
    const char *name;
    fr_index *ix;
    int rc = find_collection(rq, &name, &ix);
    if (rc) return rc;
    rc = fr_index_collection_delete(ix, name);
    if (rc) return ix_err(rq, rc, "name");
    return fr__reply_json(rq, 200, json_pack("{s:s, s:s, s:b}", "object", "collection", "name", name, "deleted", 1));
}

/* ---- documents ---- */

static bool id_ok(const char *s, size_t n) {
    if (n > FR_SEARCH_MAX_ID) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 32 || s[i] == 127) return false;
    return true;
}

int fr__h_documents_add(fr_req *rq) {
    const char *name, *model = NULL;
    fr_body b;
    int rc;
    if ((rc = path_name(rq, &name)) || (rc = fr__body_need(rq, &b)) ||
        (rc = fr__body_str(&b, "model", 0, &model, NULL)))
        return rc;
    if (model) fr__req_set_model(rq, model);
    json_t *body = b.obj;
    json_t *docs = json_object_get(body, "documents");
    if (!docs) return fr__reply_error(rq, 400, "missing_field", "documents", "documents is required");
    size_t n = json_array_size(docs);
    if (!json_is_array(docs) || n == 0)
        return fr__reply_error(rq, 400, "invalid_value", "documents", "documents must be a non-empty array");
    if (n > MAX_DOCS)
        return fr__reply_error(rq, 400, "invalid_value", "documents", "%zu documents, at most %d a request", n,
                               MAX_DOCS);
    fr_doc_in *in = fr__req_alloc(rq, n * sizeof *in);
    fr_add_result *res = fr__req_alloc(rq, n * sizeof *res);
    if (!in || !res) return FR_ENOMEM;
    memset(in, 0, n * sizeof *in);
    memset(res, 0, n * sizeof *res);
    char param[48];
    for (size_t i = 0; i < n; i++) {
        json_t *d = json_array_get(docs, i);
        if (!json_is_object(d)) {
            snprintf(param, sizeof param, "documents[%zu]", i);
            return fr__reply_error(rq, 400, "invalid_value", param, "%s must be an object with a text", param);
        }
        json_t *t = json_object_get(d, "text"), *id = json_object_get(d, "id"), *m = json_object_get(d, "metadata");
        snprintf(param, sizeof param, "documents[%zu].text", i);
        if (!t) return fr__reply_error(rq, 400, "missing_field", param, "%s is required", param);
        if (!json_is_string(t)) return fr__reply_error(rq, 400, "invalid_value", param, "%s must be a string", param);
        if (json_string_length(t) > FR_SEARCH_MAX_DOC_BYTES)
            return fr__reply_error(rq, 413, "document_too_large", param, "%s is %zu bytes; a document holds at most %u",
                                   param, json_string_length(t), FR_SEARCH_MAX_DOC_BYTES);
        in[i].text = json_string_value(t);
        in[i].len = json_string_length(t);
        snprintf(param, sizeof param, "documents[%zu].id", i);
        if (id && !json_is_null(id)) {
            if (!json_is_string(id) || !id_ok(json_string_value(id), json_string_length(id)))
                return fr__reply_error(rq, 400, "invalid_value", param,
                                       "%s must be a string of at most %d bytes without control characters", param,
                                       FR_SEARCH_MAX_ID);
            in[i].id = json_string_value(id);
            for (size_t k = 0; k < i && *in[i].id; k++)
                if (in[k].id && !strcmp(in[k].id, in[i].id))
                    return fr__reply_error(rq, 400, "invalid_value", param, "%s '%.80s' is also documents[%zu].id",
                                           param, in[i].id, k);
        }
        snprintf(param, sizeof param, "documents[%zu].metadata", i);
        if (m && !json_is_null(m)) {
            if (!json_is_object(m)) return fr__reply_error(rq, 400, "invalid_value", param, "%s must be an object", param);
            char *s = json_dumps(m, JSON_COMPACT);
            if (!s) return FR_ENOMEM;
            size_t sl = strlen(s);
            in[i].metadata = fr__req_strdup(rq, s);
            fr_free(s);
            if (!in[i].metadata) return FR_ENOMEM;
            if (sl > FR_SEARCH_MAX_META)
                return fr__reply_error(rq, 400, "invalid_value", param, "%s is %zu bytes of JSON, at most %d", param,
                                       sl, FR_SEARCH_MAX_META);
        }
    }
    fr_collection_params cp = {.name = name, .model = model};
    fr_index *ix;
    if ((rc = parse_collection(&b, &cp)) || (model && (rc = model_known(rq, model))) ||
        (rc = get_index(rq, model != NULL, &ix)))
        return rc;
    if (!ix) return fr__reply_error(rq, 404, "not_found", "name",
                                    "collection '%s' not found (send \"model\" to create it)", name);
    fr_collection_info info;
    rc = fr_index_collection_get(ix, name, &info);
    bool created = false;
    if (rc == FR_ENOENT && model) {
        rc = fr_index_collection_create(ix, &cp, &info);
        if (rc == FR_ECONFLICT) rc = 0;        /* another request made it meanwhile */
        else created = rc == 0;
    } else if (rc == FR_ENOENT) {
        return fr__reply_error(rq, 404, "not_found", "name",
                               "collection '%s' not found (send \"model\" to create it)", name);
    }
    if (rc) return ix_err(rq, rc, created ? "documents" : "model");
    size_t done = 0;
    double t0 = fr_now_s();
    rc = fr_index_add(ix, name, model, in, n, res, &done);
    if (rc && done == 0 && rc != FR_ENOSPC) {
        /* nothing was stored (a refused document: nothing was written) */
        if (created) fr_index_collection_delete(ix, name);     /* made for this request: goes again */
        return ix_err(rq, rc, "documents");
    }
    if (rc) {
        /* some were stored (or the disk is full): the error with the
         * results of every document, which says which ones are stored */
        char d[512];
        snprintf(d, sizeof d, "%s", *fr_errdetail() ? fr_errdetail() : fr_strerror(rc));
        if (created && done == 0 && !fr_index_collection_delete(ix, name)) created = false;
        fr_errf(rc, "%s; %zu of %zu documents were stored (see results)", d, done, n);
    }
    ix_error e = {0};
    if (rc) ix_error_of(rq, rc, "documents", &e);
    json_t *arr = json_array();
    int64_t chunks = 0, embedded = 0;
    for (size_t i = 0; i < n; i++) {
        static const char *const st[] = {"added", "replaced", "unchanged"};
        if (i >= done && rc) {
            /* not stored: the id it was sent with (a random one was never used) */
            json_array_append_new(arr, json_pack("{s:s?, s:s, s:b}", "id", in[i].id && *in[i].id ? in[i].id : NULL,
                                                 "status", "not_stored", "stored", 0));
            continue;
        }
        int s = res[i].status >= 0 && res[i].status <= 2 ? res[i].status : 0;
        json_array_append_new(arr, json_pack("{s:s, s:s, s:b, s:i, s:i}", "id", res[i].id, "status", st[s], "stored",
                                             1, "chunks", (int)res[i].chunks, "embedded", (int)res[i].embedded));
        chunks += res[i].chunks;
        embedded += res[i].embedded;
    }
    json_t *out = json_pack("{s:s, s:s, s:b, s:o, s:I, s:I, s:I, s:f}", "object", "list", "collection", name,
                            "created_collection", (int)created, "results", arr, "stored", (json_int_t)done,
                            "chunks", (json_int_t)chunks, "embedded", (json_int_t)embedded, "took_ms",
                            (fr_now_s() - t0) * 1e3);
    if (!rc) return fr__reply_json(rq, 200, out);
    json_t *err = fr__error_json(e.status, e.code, e.param, e.msg);
    if (!out || !err || json_object_update(out, err)) {
        json_decref(out);
        json_decref(err);
        return fr__reply_error(rq, e.status, e.code, e.param, "%s", e.msg);
    }
    json_decref(err);
    return fr__reply_json(rq, e.status, out);
}

int fr__h_document_delete(fr_req *rq) {
    const char *name, *id = fr__req_param(rq, "id");
    fr_index *ix;
    int rc = find_collection(rq, &name, &ix);
    if (rc) return rc;
    rc = fr_index_delete(ix, name, id);
    if (rc) return ix_err(rq, rc, "id");
    return fr__reply_json(rq, 200, json_pack("{s:s, s:s, s:s, s:b}", "object", "document", "id", id, "collection",
                                             name, "deleted", 1));
}

/* ---- search ---- */

static json_t *hit_json(const fr_search_hit *h, bool hybrid) {
    json_t *scores = json_object(), *ranks = json_object();
    if (h->has_bm25) json_object_set_new(scores, "bm25", json_real(h->bm25));
    if (h->has_vector) json_object_set_new(scores, "vector", json_real(h->vector));
    if (h->has_rerank) json_object_set_new(scores, "rerank", json_real(h->rerank));
    if (h->rank_bm25 > 0) json_object_set_new(ranks, "bm25", json_integer(h->rank_bm25));
    if (h->rank_vector > 0) json_object_set_new(ranks, "vector", json_integer(h->rank_vector));
    if (hybrid && h->rank_fused > 0) json_object_set_new(ranks, "fused", json_integer(h->rank_fused));
    if (h->rank_rerank > 0) json_object_set_new(ranks, "rerank", json_integer(h->rank_rerank));
    const char *t = h->text ? h->text : "";
    return json_pack("{s:s, s:I, s:i, s:o, s:o, s:f, s:o, s:o}", "document_id", h->document_id ? h->document_id : "",
                     "chunk_id", (json_int_t)h->chunk_id, "position", (int)h->position, "text",
                     fr__json_text(t, strlen(t)), "metadata", meta_json(h->metadata), "score", h->score, "scores",
                     scores, "ranks", ranks);
}

static const char *mode_name(int mode) {
    return mode == FR_SEARCH_BM25 ? "bm25" : mode == FR_SEARCH_VECTOR ? "vector" : "hybrid";
}

json_t *fr_server_search_json(const char *collection, int mode, const fr_search_result *res) {
    json_t *hits = json_array(), *dropped = json_array();
    bool ok = hits && dropped;
    for (size_t i = 0; ok && i < res->n; i++)
        ok = !json_array_append_new(hits, hit_json(&res->hits[i], mode == FR_SEARCH_HYBRID));
    for (size_t i = 0; ok && i < res->n_dropped; i++) {
        const char *t = res->dropped_terms[i] ? res->dropped_terms[i] : "";
        ok = !json_array_append_new(dropped, fr__json_text(t, strlen(t)));
    }
    if (!ok) {
        json_decref(hits);
        json_decref(dropped);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:s, s:o, s:f, s:o, s:i, s:i}", "object", "list", "collection", collection,
                     "mode", mode_name(mode), "results", hits, "took_ms", res->took_ms, "dropped_terms", dropped,
                     "bm25_candidates", (int)res->bm25_candidates, "vector_candidates",
                     (int)res->vector_candidates);
}

int fr__h_collection_search(fr_req *rq) {
    const char *name;
    fr_body b;
    fr_search_params sp;
    fr_search_params_init(&sp);
    fr_index *ix;
    int rc;
    if ((rc = path_name(rq, &name)) || (rc = fr__body_need(rq, &b)) ||
        (rc = parse_search(&b, "query", &sp)) || (rc = fr__body_str(&b, "model", 0, &sp.model, NULL)) ||
        (rc = get_index(rq, false, &ix)))
        return rc;
    if (!ix) return no_collection(rq, name);
    sp.collection = name;
    fr_search_result *res = NULL;
    rc = fr_index_search(ix, &sp, &res);
    if (rc) return ix_err(rq, rc, sp.rerank && strstr(fr_errdetail(), sp.rerank) ? "rerank" : NULL);
    json_t *out = fr_server_search_json(name, sp.mode, res);
    fr_search_result_free(res);
    return fr__reply_json(rq, 200, out);
}

/* ---- ask ---- */

typedef struct ask_run {
    fr_ask_prompt *ap;
    json_t *sources;            /* (owned) */
    const char *collection;
    fr_chat_msg msg;            /* the generation's one message: ap's prompt */
    fr_gen_hooks hk;
} ask_run;

static json_t *sources_json(const fr_ask_prompt *ap) {
    json_t *a = json_array();
    for (size_t i = 0; i < ap->n_sources; i++) {
        const fr_ask_source *s = &ap->sources[i];
        const char *t = s->text ? s->text : "";
        json_array_append_new(a, json_pack("{s:i, s:I, s:s, s:o, s:o, s:f}", "marker", (int)s->marker, "chunk_id",
                                           (json_int_t)s->chunk_id, "document_id", s->document_id ? s->document_id : "",
                                           "text", fr__json_text(t, strlen(t)), "metadata", meta_json(s->metadata),
                                           "score", s->score));
    }
    return a;
}

/* Mark the sources the answer cites: "cited": true on each whose [n]
 * (also inside "[1, 3]" or "[2][4]") appears in the text, and the list
 * of the cited markers, in marker order. */
json_t *fr__ask_mark_cited(json_t *sources, const char *answer) {
    size_t n = json_array_size(sources);
    bool seen[ASK_MAX_SOURCES + 1] = {0};
    for (const char *p = answer ? answer : ""; (p = strchr(p, '[')); ) {
        p++;
        for (;;) {
            long v = 0;
            int digits = 0;
            while (*p >= '0' && *p <= '9' && digits < 6) v = v * 10 + (*p++ - '0'), digits++;
            if (!digits) break;
            if (v >= 1 && v <= ASK_MAX_SOURCES) seen[v] = true;
            if (*p == ',') { p++; while (*p == ' ') p++; continue; }
            break;
        }
    }
    json_t *cited = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(sources, i);
        json_int_t m = json_integer_value(json_object_get(s, "marker"));
        bool c = m >= 1 && m <= ASK_MAX_SOURCES && seen[m];
        json_object_set_new(s, "cited", json_boolean(c));
        if (c) json_array_append_new(cited, json_integer(m));
    }
    return cited;
}

static json_t *ask_body(void *ud, json_t *c) {
    ask_run *a = ud;
    json_t *choice = json_array_get(json_object_get(c, "choices"), 0);
    json_t *msg = json_object_get(choice, "message");
    json_t *cited = fr__ask_mark_cited(a->sources, json_string_value(json_object_get(msg, "content")));
    json_t *out = json_pack("{s:O?, s:s, s:O?, s:O?, s:s, s:O?, s:O?, s:O, s:O?, s:{s:i, s:i, s:f}}", "id",
                            json_object_get(c, "id"), "object", "collection.answer", "created",
                            json_object_get(c, "created"), "model", json_object_get(c, "model"), "collection",
                            a->collection, "answer", json_object_get(msg, "content"), "finish_reason",
                            json_object_get(choice, "finish_reason"), "sources", a->sources, "usage",
                            json_object_get(c, "usage"), "retrieval", "sources", (int)a->ap->n_sources, "skipped",
                            (int)a->ap->n_skipped, "took_ms", a->ap->took_ms);
    json_object_set_new(out, "cited", cited);
    json_decref(c);
    return out;
}

static json_t *ask_last(void *ud, json_t *ev) {
    ask_run *a = ud;
    if (!ev) return NULL;
    json_object_set(ev, "sources", a->sources);
    return ev;
}

static void ask_fin(void *ud) {
    ask_run *a = ud;
    json_decref(a->sources);
    fr_ask_prompt_free(a->ap);
    a->sources = NULL;
    a->ap = NULL;
}

int fr__h_collection_ask(fr_req *rq) {
    const char *name;
    fr_body b;
    fr_ask_params p;
    fr_ask_params_init(&p);
    p.search.top_k = ASK_TOP_K;
    fr_gen_req *q = fr__req_alloc(rq, sizeof *q);
    if (!q) return FR_ENOMEM;
    memset(q, 0, sizeof *q);
    q->kind = FR_GEN_CHAT;
    /* the retrieval's fields, then the generation's: a chat completion's
     * but its messages (the prompt made here) and top_k (here the number
     * of sources) */
    int rc;
    if ((rc = path_name(rq, &name)) || (rc = fr__body_need(rq, &b)) ||
        (rc = parse_search(&b, "question", &p.search)) ||
        (rc = fr__body_str(&b, "model", FR_BODY_REQUIRED, &p.model, NULL)) ||
        (rc = fr__body_str(&b, "embedding_model", 0, &p.search.model, NULL)) ||
        (rc = fr__body_str(&b, "instructions", 0, &p.instructions, NULL)) ||
        (rc = fr__gen_parse_options(&b, false, q)))
        return rc;
    p.search.collection = name;
    q->model = p.model;
    fr__req_set_model(rq, p.model);
    fr_index *ix;
    if ((rc = get_index(rq, false, &ix))) return rc;
    if (!ix) return no_collection(rq, name);
    fr_collection_info info;
    if ((rc = fr_index_collection_get(ix, name, &info))) return ix_err(rq, rc, "name");

    /* the generation model, held from here to the end of the generation:
     * it must chat; its context sets the budget */
    fr_handle *h;
    if ((rc = fr__models_acquire(rq, q->model, q->keep_alive_ms, FR_CAP_CHAT, "chat completions", &h))) return rc;
    const fr_loaded_model *lm = fr_handle_obj(h);
    int32_t n_ctx = fr_sched_n_ctx(lm->sched);
    int64_t reserve = q->max_tokens > 0 ? q->max_tokens : n_ctx / 4;
    int64_t budget = (int64_t)n_ctx - reserve - TEMPLATE_TOKENS;
    if (budget < 16) {
        fr_manager_release(h);
        return fr__reply_error(rq, 413, "context_length_exceeded", q->max_tokens > 0 ? "max_tokens" : "model",
                               "the context of model '%.128s' holds %d tokens: %lld for the answer and %d for the "
                               "chat template leave no room for the sources", p.model, (int)n_ctx,
                               (long long)reserve, TEMPLATE_TOKENS);
    }
    p.budget_tokens = (int32_t)budget;

    ask_run *a = fr__req_alloc(rq, sizeof *a);
    if (!a) {
        fr_manager_release(h);
        return FR_ENOMEM;
    }
    memset(a, 0, sizeof *a);
    a->collection = name;
    if ((rc = fr_index_ask_prompt(ix, &p, &a->ap))) {
        fr_manager_release(h);
        if (rc == FR_ETOOLONG)
            return fr__reply_error(rq, 413, "context_length_exceeded", "question", "%s", fr_errdetail());
        return ix_err(rq, rc, p.search.rerank && strstr(fr_errdetail(), p.search.rerank) ? "rerank" : NULL);
    }
    if (!(a->sources = sources_json(a->ap))) {
        fr_manager_release(h);
        ask_fin(a);
        return FR_ENOMEM;
    }
    /* one user turn: the prompt, valid UTF-8 (the documents' text and the
     * question are, and chunks end between characters) */
    a->msg = (fr_chat_msg){.role = "user", .content = a->ap->prompt};
    q->msgs = &a->msg;
    q->n_msgs = 1;
    a->hk = (fr_gen_hooks){.ud = a, .body = ask_body, .last_event = ask_last, .fin = ask_fin};
    return fr__gen_run(rq, q, h, &a->hk);
}
