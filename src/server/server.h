/*
 * server.h — the HTTP server: libmicrohttpd, routing, auth, bodies, JSON
 * and SSE replies, metrics and draining.  What the rest of frugal calls
 * (frugal serve, tests); the handlers' side is server_int.h.
 *
 * One fr_server is one listening socket served by libmicrohttpd's epoll
 * loop on a few worker threads (one per core): an open connection costs a
 * socket and a few kilobytes, never a thread.  A request whose headers and
 * body are in runs its handler on a thread of its own while the connection
 * is suspended, so a handler may block (a generation waits; a stream's
 * pull function waits for tokens) without holding up other clients.  A
 * client must send its headers within header_timeout_ms and its body
 * within conn_timeout_ms, and a connection on which nothing moves (a
 * client that stops reading a reply) is closed after conn_timeout_ms.
 *
 * Lifecycle: create (binds and starts serving) → drain (stop accepting,
 * let requests in flight finish, cancel the rest) → destroy.
 */
#ifndef FR_SERVER_SERVER_H
#define FR_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/metrics.h"
#include "manager/manager.h"

typedef struct fr_server fr_server;
typedef struct fr_server_search fr_server_search;

typedef struct fr_server_config {
    const char *host;               /* numeric address or name to bind; NULL = "127.0.0.1" */
    int port;                       /* 0 = any free port (read it with fr_server_port) */
    const char *const *api_keys;    /* copied; every route but /health needs one of them */
    size_t n_api_keys;              /* 0 = no auth */
    size_t max_body;                /* request body limit in bytes; 0 = 1 MiB */
    int64_t conn_timeout_ms;        /* body deadline and idle (no bytes moving) timeout; 0 = 30 s */
    int64_t header_timeout_ms;      /* a request's headers must be in within this; 0 = 10 s */
    unsigned conn_limit;            /* open connections in all; 0 = 1024 */
    unsigned conn_per_ip;           /* open connections from one address; 0 = 64 */
    const char *cors_origins;       /* comma-separated origins allowed to call from a browser
                                       ("http://app.example:3000"; "*" = any); NULL = none */
    const char *allowed_hosts;      /* comma-separated Host names accepted besides loopback
                                       ones when bound to loopback; NULL = none */
    fr_manager *manager;            /* the models; NULL = none offered (not owned) */
    int64_t request_timeout_ms;     /* a generation's deadline unless the request says
                                       "timeout"; <= 0 = none */
    size_t embed_cache_bytes;       /* the LRU cache of embedding vectors; 0 = none */
    fr_metrics *metrics;            /* where requests are counted; NULL = fr_metrics_default() */
    fr_server_search *search;       /* the document index of /v1/collections (not owned);
                                       NULL = those routes answer 404 */
} fr_server_config;

/* Bind host:port and start serving.  The first call also points
 * jansson's allocator at fr_malloc/fr_free, so JSON memory is counted:
 * nothing may hold jansson objects made before it.  FR_EINVAL (bad host
 * or config; the detail says what), FR_EIO (cannot bind or start: the
 * detail names the address and the reason, e.g. "Address already in
 * use"), FR_ENOMEM.  Not thread-safe against itself. */
int fr_server_create(const fr_server_config *cfg, fr_server **out);

/* The port actually bound (the one chosen when cfg->port was 0). */
int fr_server_port(const fr_server *s);

/* The hook drain calls when in-flight requests outlive its timeout: it
 * should make every running generation finish (fr_gen_cancel, scheduler
 * shutdown).  Called from the draining thread, once.  Set it before
 * draining; fn NULL removes it.  Not thread-safe against fr_server_drain. */
void fr_server_set_cancel_hook(fr_server *s, void (*fn)(void *ud), void *ud);

/* Drain: new requests — on connections already open or opened now — are
 * answered, not refused: /health 503 {"status":"shutting_down"}, every
 * other route but the drain-safe ones 503 "shutting down" with
 * Retry-After, each with Connection: close; wait up to timeout_ms (-1 = forever) for the requests in flight
 * to finish, then call the cancel hook and tell blocked handlers to stop
 * (fr__req_gone turns true), wait for them, and close every connection.
 * Returns 0 when everything finished within the timeout, FR_EBUSY when
 * requests had to be cancelled.  Call from one thread, once; the server
 * then only waits for fr_server_destroy. */
int fr_server_drain(fr_server *s, int64_t timeout_ms);

/* True once fr_server_drain has started.  Thread-safe. */
bool fr_server_draining(const fr_server *s);

/* Stop (drains with timeout 0 if fr_server_drain was not called) and free.
 * NULL is fine. */
void fr_server_destroy(fr_server *s);

/* The document index behind /v1/collections (server/collections.c), opened
 * lazily so that a server that never searches costs nothing: create
 * checks data_dir (an existing one must be a directory we may write;
 * a missing one must be creatable: its nearest existing parent is a
 * directory we may write) and opens the index at once only when
 * DIR/frugal.db exists already (so a damaged or foreign database is a
 * start-up error).  Otherwise the directory and the database are made at
 * the first write (creating a collection or adding documents); reads
 * before that see no collections.  The index uses mg's models
 * (fr_search_models_manager; mg may be NULL: no models) and holds at most
 * cache_bytes of int8 vectors (0 = the index's default); sync_full sets
 * SQLite's synchronous=FULL (search.h: every acknowledged write is on the
 * disk) instead of NORMAL.  FR_EIO naming the directory, or
 * fr_index_open's errors; FR_ENOMEM.  destroy closes the index (no server
 * may still use it); NULL is fine. */
int  fr_server_search_create(const char *data_dir, size_t cache_bytes, bool sync_full, fr_manager *mg,
                             fr_server_search **out);
void fr_server_search_destroy(fr_server_search *ss);

/* The body of a search reply (docs/API-search.md: POST
 * /v1/collections/{name}/search) for res, the result of a search of
 * collection in mode (FR_SEARCH_*): the hits with their scores and ranks
 * ("fused" in hybrid mode only), the dropped terms, the candidates.  Text
 * that is not UTF-8 gets U+FFFD, metadata that is not a JSON object
 * becomes {}.  `frugal index search --json` prints the same.  A new
 * reference, or NULL when memory runs out; res stays the caller's.
 * Thread-safe. */
struct json_t;
struct fr_search_result;
struct fr_collection_info;
struct json_t *fr_server_search_json(const char *collection, int mode, const struct fr_search_result *res);

/* A collection as GET /v1/collections/{name} shows it (docs/API-search.md),
 * for c from fr_index_collection_get or _list; `frugal index ls --json`
 * prints the same.  A new reference, or NULL when memory runs out.
 * Thread-safe. */
struct json_t *fr_server_collection_json(const struct fr_collection_info *c);

/* A JSON Schema (json[0..len), JSON text) as a GBNF grammar whose start
 * rule "root" matches the JSON texts valid for it, exactly as
 * response_format json_schema compiles it (schema.c; what is supported:
 * fr__schema_gbnf in server_int.h).  0 with *gbnf fr_malloc'd (the
 * caller frees it); FR_EINVAL with err naming the problem; FR_ENOMEM.
 * `frugal bench --json-schema` uses it.  Thread-safe. */
int fr_server_schema_gbnf(const char *json, size_t len, char **gbnf, char *err, size_t errcap);

#endif
