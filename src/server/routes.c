/*
 * routes.c — the route table and the matcher.
 *
 * The table is the whole HTTP surface of the server, one line per route:
 * method, path pattern, handler, flags.  To add a route, write the handler
 * in the file of its area (health.c health and metrics, gen.c completions,
 * models.c models and memory, embeddings.c embeddings and rerank,
 * collections.c collections, ollama.c Ollama's API), declare it in server_int.h and add its line here.
 *
 * Patterns are '/'-separated segments, each a literal or a {name}
 * parameter that matches one non-empty segment.  Matching walks the table
 * in order (the first match wins) and compares segments as received;
 * parameter values are percent-decoded into the request's arena (so
 * "/v1/models/org%2Fmodel" gives id "org/model").  When the path matches
 * some route but not the method, the caller answers 405 with the Allow
 * list built here.
 */
#include <string.h>

#include "base/err.h"
#include "server/server_int.h"

const fr_route fr__routes[] = {
    {"GET", "/health", fr__h_health, FR_ROUTE_PUBLIC | FR_ROUTE_DRAIN_OK},
    {"GET", "/metrics", fr__h_metrics, FR_ROUTE_DRAIN_OK},
    {"POST", "/v1/chat/completions", fr__h_chat_completions, FR_ROUTE_JSON},
    {"POST", "/v1/completions", fr__h_completions, FR_ROUTE_JSON},
    {"POST", "/v1/embeddings", fr__h_embeddings, FR_ROUTE_JSON},
    {"POST", "/v1/rerank", fr__h_rerank, FR_ROUTE_JSON},
    {"POST", "/rerank", fr__h_rerank_tei, FR_ROUTE_JSON},
    {"GET", "/v1/models", fr__h_models, 0},
    {"POST", "/v1/models/plan", fr__h_models_plan, FR_ROUTE_JSON},
    {"GET", "/v1/models/{id}", fr__h_model, 0},
    {"POST", "/v1/models/{id}/load", fr__h_model_load, FR_ROUTE_JSON},
    {"POST", "/v1/models/{id}/unload", fr__h_model_unload, FR_ROUTE_JSON},
    {"GET", "/v1/memory", fr__h_memory, FR_ROUTE_DRAIN_OK},
    {"POST", "/v1/memory/unload", fr__h_memory_unload, FR_ROUTE_JSON},
    {"GET", "/memory", fr__h_memory, FR_ROUTE_DRAIN_OK},
    {"POST", "/memory/unload", fr__h_memory_unload, FR_ROUTE_JSON},
    {"POST", "/v1/collections", fr__h_collections_create, FR_ROUTE_JSON},
    {"GET", "/v1/collections", fr__h_collections_list, 0},
    {"GET", "/v1/collections/{name}", fr__h_collection_get, 0},
    {"DELETE", "/v1/collections/{name}", fr__h_collection_delete, 0},
    {"POST", "/v1/collections/{name}/documents", fr__h_documents_add, FR_ROUTE_JSON},
    {"DELETE", "/v1/collections/{name}/documents/{id}", fr__h_document_delete, 0},
    {"POST", "/v1/collections/{name}/search", fr__h_collection_search, FR_ROUTE_JSON},
    {"POST", "/v1/collections/{name}/ask", fr__h_collection_ask, FR_ROUTE_JSON},
    /* Ollama's API (ollama.c) */
    {"GET", "/", fr__h_ollama_root, FR_ROUTE_PUBLIC},
    {"GET", "/api/version", fr__h_ollama_version, 0},
    {"GET", "/api/tags", fr__h_ollama_tags, 0},
    {"GET", "/api/ps", fr__h_ollama_ps, 0},
    {"POST", "/api/show", fr__h_ollama_show, FR_ROUTE_JSON},
    {"POST", "/api/generate", fr__h_ollama_generate, FR_ROUTE_JSON},
    {"POST", "/api/chat", fr__h_ollama_chat, FR_ROUTE_JSON},
    {"POST", "/api/embed", fr__h_ollama_embed, FR_ROUTE_JSON},
    {"POST", "/api/embeddings", fr__h_ollama_embeddings, FR_ROUTE_JSON},
};
const size_t fr__n_routes = sizeof fr__routes / sizeof fr__routes[0];

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decode [s, s+n) into the arena; FR_EINVAL on a bad or NUL escape. */
static int decode(fr_req *rq, const char *s, size_t n, const char **out) {
    char *d = fr__req_alloc(rq, n + 1), *o = d;
    if (!d) return FR_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') { *o++ = s[i]; continue; }
        int hi = i + 2 < n ? hexval(s[i + 1]) : -1, lo = i + 2 < n ? hexval(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi | lo) == 0)
            return fr_errf(FR_EINVAL, "bad percent-encoding in path segment '%.*s'", (int)(n > 100 ? 100 : n), s);
        *o++ = (char)(hi * 16 + lo);
        i += 2;
    }
    *o = 0;
    *out = d;
    return 0;
}

/* Does path match pattern?  Records parameters in rq when it does. */
static int match(fr_req *rq, const char *pattern, const char *path, bool *ok) {
    const char *p = pattern, *s = path;
    *ok = false;
    rq->n_params = 0;
    while (*p && *s) {
        if (*p != '/' || *s != '/') return 0;
        p++;
        s++;
        const char *pe = strchr(p, '/'), *se = strchr(s, '/');
        size_t pn = pe ? (size_t)(pe - p) : strlen(p), sn = se ? (size_t)(se - s) : strlen(s);
        if (pn >= 2 && p[0] == '{' && p[pn - 1] == '}') {
            if (sn == 0 || rq->n_params == FR_ROUTE_MAX_PARAMS) return 0;
            const char *v = NULL;
            int rc = decode(rq, s, sn, &v);
            if (rc) return rc;
            rq->param_names[rq->n_params] = p + 1;
            rq->param_name_lens[rq->n_params] = pn - 2;
            rq->params[rq->n_params++] = v;
        } else if (pn != sn || memcmp(p, s, pn)) {
            return 0;
        }
        p += pn;
        s += sn;
    }
    *ok = !*p && !*s;
    if (!*ok) rq->n_params = 0;
    return 0;
}

int fr__route_match(fr_req *rq, const fr_route *table, size_t n, const char *method, const char *path,
                    const fr_route **out, bool *path_known, char *allow, size_t allow_size) {
    const char *m = strcmp(method, "HEAD") ? method : "GET";
    *out = NULL;
    *path_known = false;
    if (allow && allow_size) allow[0] = 0;
    for (size_t i = 0; i < n; i++) {
        bool ok;
        int rc = match(rq, table[i].pattern, path, &ok);
        if (rc) return rc;
        if (!ok) continue;
        if (!strcmp(table[i].method, m)) { *out = &table[i]; return 0; }
        if (allow && !strstr(allow, table[i].method)) {
            size_t used = strlen(allow), need = strlen(table[i].method) + (used ? 2 : 0);
            if (used + need < allow_size) {
                if (used) strcat(allow, ", ");
                strcat(allow, table[i].method);
            }
        }
        *path_known = true;
    }
    rq->n_params = 0;
    return 0;
}
