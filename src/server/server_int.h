/*
 * server_int.h — what the server's own files share: the server and
 * request structures, the route table, and the helpers handlers use to
 * read a request and write a reply (JSON, errors, SSE streams).
 *
 * Writing a handler
 * -----------------
 * A handler is `int h(fr_req *rq)`, listed in the route table (routes.c)
 * with a method, a path pattern and flags.  By the time it runs, the
 * request has been routed, authorised and, for FR_ROUTE_JSON routes, its
 * body parsed (fr__req_json: NULL when the body was empty; a non-empty
 * body that is not a JSON object never reaches the handler).  It answers
 * with exactly one of fr__reply_json, fr__reply_text, fr__reply_error,
 * fr__reply_err or fr__reply_sse, and returns what that returned; or it
 * returns a negative FR_E* code without replying, and the dispatcher
 * answers with fr__reply_err(rq, code, NULL) from the thread's
 * fr_errdetail().
 *
 * "Already replied" has one sign: FR_REPLIED.  Every fr__reply_* returns
 * it once the answer is queued, and so does every helper that may answer
 * in the handler's place: the body getters (body.c: a bad field is a 400
 * naming it), a handler's own checks ("collection 'x' not found").  So a
 * handler, and anything it calls that may answer, has one rule for each
 * step:
 *
 *     if ((rc = step(...))) return rc;
 *
 * 0: nothing was sent, go on; FR_REPLIED: the answer went, stop and pass
 * it up as it is; negative: nothing was sent, the code says why.  A
 * handler never looks at rq->status to learn whether something replied.
 *
 *   static int h_model_plan(fr_req *rq) {         // POST /v1/models/{id}/plan
 *       fr_body b;
 *       bool fresh = false;                       // the default when absent
 *       int rc;
 *       if ((rc = fr__body_need(rq, &b)) ||       // 400 without a body
 *           (rc = fr__body_bool(&b, "fresh", &fresh)))  // 400 "fresh must be true or false"
 *           return rc;
 *       fr_model_info info;
 *       if ((rc = fr_manager_get(fr__req_manager(rq), fr__req_param(rq, "id"), &info)))
 *           return fr__reply_err(rq, rc, "id");   // FR_ENOENT: 404 not_found
 *       json_t *o = json_pack("{s:s, s:b}", "id", info.id, "fresh", fresh);
 *       return fr__reply_json(rq, 200, o);        // steals o; FR_REPLIED
 *   }
 *
 * A handler runs on the request's own thread (http.c) while libmicrohttpd
 * leaves the connection suspended, and may block; a long wait should poll
 * fr__req_gone(rq, ms) to notice a client that went away.  Its reply is
 * handed to libmicrohttpd when it returns.
 *
 * Streaming: fr__reply_sse(rq, pull, fin, ud) answers 200 text/event-
 * stream and returns; after the handler returns, the request's thread
 * calls pull(st, ud) again and again until the stream ends, and
 * libmicrohttpd sends what it appended as the client takes it.  pull may
 * block until it has something (waiting in slices and checking
 * fr__sse_gone(st, ms), which also sends a ": keep-alive" comment when the
 * stream has been quiet a while), appends events with fr__sse_json /
 * fr__sse_data, and returns FR_SSE_MORE, FR_SSE_END (the helper appends
 * "data: [DONE]"), or a negative FR_E* (the helper appends one error
 * event, then [DONE]).  The generation is not held back by a slow reader:
 * its output waits in the stream's buffer.  fin(ud, completed) runs
 * exactly once when the request is over, whatever happened (completed =
 * the client got [DONE]): release everything there.
 *
 * Memory: every request has an arena (fr__req_alloc, fr__req_strdup) freed
 * when the request completes; parameters, query values and log fields live
 * there.
 */
#ifndef FR_SERVER_SERVER_INT_H
#define FR_SERVER_SERVER_INT_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/lru.h"
#include "base/mem.h"
#include "base/metrics.h"
#include "engine/chat.h"
#include "sched/sched.h"
#include "server/server.h"

typedef struct fr_req fr_req;
typedef struct fr_sse fr_sse;
typedef struct fr_conn fr_conn;

/* ---- routes ---- */

typedef int (*fr_handler)(fr_req *rq);

enum {
    FR_ROUTE_PUBLIC   = 1,      /* no API key needed (/health) */
    FR_ROUTE_JSON     = 2,      /* the body is parsed as a JSON object before the handler */
    FR_ROUTE_DRAIN_OK = 4,      /* still served while draining (others: 503 shutting down) */
};

typedef struct fr_route {
    const char *method;         /* "GET", "POST", "DELETE"; HEAD requests match GET */
    const char *pattern;        /* "/v1/models/{id}/load": literal and {name} segments;
                                   {name} matches one non-empty segment, percent-decoded */
    fr_handler fn;
    unsigned flags;             /* FR_ROUTE_* */
} fr_route;

#define FR_ROUTE_MAX_PARAMS 4

/* The server's table (routes.c). */
extern const fr_route fr__routes[];
extern const size_t fr__n_routes;

/* Handlers of routes.c's table, by file: health.c */
int fr__h_health(fr_req *rq);
int fr__h_metrics(fr_req *rq);
/* gen.c */
int fr__h_chat_completions(fr_req *rq);
int fr__h_completions(fr_req *rq);
/* models.c */
int fr__h_models(fr_req *rq);
int fr__h_model(fr_req *rq);
int fr__h_model_load(fr_req *rq);
int fr__h_model_unload(fr_req *rq);
int fr__h_models_plan(fr_req *rq);
int fr__h_memory(fr_req *rq);
int fr__h_memory_unload(fr_req *rq);
/* embeddings.c */
int fr__h_embeddings(fr_req *rq);
int fr__h_rerank(fr_req *rq);
int fr__h_rerank_tei(fr_req *rq);
/* Ollama's POST /api/embed (legacy false) and /api/embeddings (true):
 * model is the id to acquire, name the one the reply shows. */
int fr__embeddings_ollama(fr_req *rq, const char *model, const char *name, bool legacy, int64_t keep_alive_ms);
/* ollama.c */
int fr__h_ollama_root(fr_req *rq);
int fr__h_ollama_version(fr_req *rq);
int fr__h_ollama_tags(fr_req *rq);
int fr__h_ollama_ps(fr_req *rq);
int fr__h_ollama_show(fr_req *rq);
int fr__h_ollama_generate(fr_req *rq);
int fr__h_ollama_chat(fr_req *rq);
int fr__h_ollama_embed(fr_req *rq);
int fr__h_ollama_embeddings(fr_req *rq);
/* collections.c */
int fr__h_collections_create(fr_req *rq);
int fr__h_collections_list(fr_req *rq);
int fr__h_collection_get(fr_req *rq);
int fr__h_collection_delete(fr_req *rq);
int fr__h_documents_add(fr_req *rq);
int fr__h_document_delete(fr_req *rq);
int fr__h_collection_search(fr_req *rq);
int fr__h_collection_ask(fr_req *rq);

/* collections.c: set "cited" on each source object (an array of {"marker": n,
 * ...}) whose [n] the answer cites (also "[1, 3]"); returns the array of
 * cited markers in source order (new reference). */
json_t *fr__ask_mark_cited(json_t *sources, const char *answer);
/* The /metrics collector of the models (models.c): families registered
 * at create; fr__collect_models(ud = that object) refreshes them from the
 * manager's and schedulers' reports at every render. */
typedef struct fr_models_metrics fr_models_metrics;
int  fr__models_metrics_create(fr_metrics *r, fr_manager *mg, fr_lru *cache,
                               fr_models_metrics **out);
void fr__models_metrics_destroy(fr_models_metrics *c);
void fr__collect_models(void *ud, fr_metrics *r);

/* Match method and path against a table.  Returns the route, or NULL with
 * *path_known telling whether another method would have matched (405
 * rather than 404; allow, when not NULL, gets the "GET, POST" list, at
 * most allow_size bytes).  Parameters go into rq (its arena).  FR_EINVAL
 * when a segment is badly percent-encoded. */
int fr__route_match(fr_req *rq, const fr_route *table, size_t n, const char *method, const char *path,
                    const fr_route **out, bool *path_known, char *allow, size_t allow_size);

/* ---- the server ---- */

struct fr_server {
    struct MHD_Daemon *daemon;
    fr_server_config cfg;           /* api_keys points into keys */
    char **keys;                    /* owned copies */
    size_t *key_lens;
    char *host;
    int port;
    const fr_route *routes;
    size_t n_routes;

    fr_metrics *metrics;
    fr_metric *m_requests, *m_duration, *m_in_flight, *m_conns, *m_conns_total;
    fr_models_metrics *models_metrics; /* with a manager: its collector's state */
    fr_lru *embed_cache;     /* vectors by (model file, input); NULL = none */

    pthread_mutex_t mu;             /* guards in_flight, threads, conns and the watchdog */
    pthread_cond_t cond;            /* in_flight or threads changed, conns changed, stop */
    int in_flight;                  /* requests not yet freed */
    int threads;                    /* request threads running */
    char **cors_origins;            /* owned, parsed from cfg.cors_origins */
    size_t n_cors_origins;
    bool cors_any;                  /* "*" was listed */
    char **allowed_hosts;           /* owned, from cfg.allowed_hosts */
    size_t n_allowed_hosts;
    bool loopback;                  /* bound to a loopback address: Host is checked */
    fr_conn *conns;                 /* open connections (doubly linked) */
    pthread_t watchdog;
    bool watchdog_started, watchdog_stop;

    atomic_bool draining;           /* fr_server_drain began */
    atomic_bool stopping;           /* the drain timeout passed: handlers must end */
    bool drained;
    atomic_uint_fast64_t next_id;
    void (*cancel_hook)(void *ud);
    void *cancel_ud;
};

/* Create with a route table other than fr__routes (tests add their own
 * routes; the table must outlive the server). */
int fr__server_create_routes(const fr_server_config *cfg, const fr_route *routes, size_t n_routes,
                             fr_server **out);

/* ---- requests ---- */

typedef struct fr_hdr { struct fr_hdr *next; const char *name, *value; } fr_hdr;

struct fr_req {
    fr_server *srv;
    struct MHD_Connection *conn;
    fr_conn *c;                     /* the connection's bookkeeping */
    fr_arena arena;                 /* everything below that is a pointer lives here */
    char id[24];                    /* "req-17" */
    const char *method;             /* "GET", "POST", ... */
    const char *path;               /* as received (percent-encoded), without the query */
    const fr_route *route;          /* NULL when unmatched */
    const char *route_name;         /* route->pattern, or "unmatched" (metrics label) */
    int n_params;
    const char *param_names[FR_ROUTE_MAX_PARAMS];   /* point into route->pattern ... */
    size_t param_name_lens[FR_ROUTE_MAX_PARAMS];
    const char *params[FR_ROUTE_MAX_PARAMS];        /* ... and decoded values */

    char *body;                     /* fr_malloc'd, NUL-terminated; NULL when empty */
    size_t body_len, body_cap;
    bool too_large;                 /* the body passed max_body: 413 at its end */
    bool body_oom;                  /* no memory for it: 503 at its end */
    json_t *json;                   /* parsed body (FR_ROUTE_JSON), owned */
    double t_start;                 /* fr_now_s() at the first byte we saw */
    bool begun;                     /* routed and checked (begin() in http.c) */
    bool dispatched;                /* the handler has been called */

    int status;                     /* of the reply queued, 0 before */
    double retry_after_s;           /* for 503s; 0 = the default */
    fr_hdr *headers;                /* extra reply headers */

    /* log fields, set by handlers */
    const char *model;
    int32_t prompt_tokens, gen_tokens;
    double queue_ms;

    atomic_bool gone;               /* the client went away */
    void (*on_gone)(void *ud);
    void *on_gone_ud;
    fr_sse *sse;                    /* the stream, when the reply is one */

    /* The hand-over between libmicrohttpd's thread and the request's own
     * (http.c): from dispatch until the handler returns the connection is
     * suspended and the reply waits in `pending`; the request is freed by
     * whichever of the two sides lets go of it last (refs). */
    pthread_mutex_t mu;             /* guards the fields below and the stream's buffer */
    int refs;                       /* libmicrohttpd's + the thread's while it runs */
    bool deferred;                  /* replies go to pending (the handler runs on its thread) */
    struct MHD_Response *pending;   /* the reply to queue when the connection resumes */
    int pending_status;
    bool completed_ok;              /* libmicrohttpd sent the whole reply (set at its completion) */
    int fd;                         /* our own dup of the socket, for fr__req_gone; -1 none */
};

/* Scratch memory for the request's lifetime (freed when it completes):
 * NULL on allocation failure. */
void *fr__req_alloc(fr_req *rq, size_t n);
char *fr__req_strdup(fr_req *rq, const char *s);

/* The value of path parameter {name}, decoded; NULL if the route has none. */
const char *fr__req_param(const fr_req *rq, const char *name);
/* A query argument (?reload=1), decoded; NULL if absent, "" if given
 * without a value. */
const char *fr__req_query(fr_req *rq, const char *key);
/* A request header (case-insensitive name); NULL if absent. */
const char *fr__req_header(const fr_req *rq, const char *name);
/* The parsed JSON body (borrowed; NULL when the body was empty). */
json_t *fr__req_json(const fr_req *rq);
/* The models (NULL when the server has no manager). */
fr_manager *fr__req_manager(const fr_req *rq);

/* Fields of the request's log line ("model=... prompt=... gen=...
 * queue_ms=..."); model is copied. */
void fr__req_set_model(fr_req *rq, const char *model);
void fr__req_set_tokens(fr_req *rq, int32_t prompt, int32_t gen);
void fr__req_set_queue_ms(fr_req *rq, double ms);
/* The Retry-After (seconds, rounded up, at least 1) of a 503 reply to
 * come; the default is 1 (5 while draining). */
void fr__req_set_retry_after(fr_req *rq, double seconds);

/* Wait up to timeout_ms (0 = just look) for the client to go away: true
 * once its socket reports hang-up or error, or once the server is
 * stopping and the request must end.  The first time it turns true the
 * on_gone hook runs (in the calling thread).  Call only from the
 * request's connection thread (a handler or a pull function). */
bool fr__req_gone(fr_req *rq, int timeout_ms);
/* A hook run once when the client is found gone (by fr__req_gone or
 * because libmicrohttpd ended the request abnormally), e.g. to cancel the
 * generation.  Runs in the connection's thread. */
void fr__req_on_gone(fr_req *rq, void (*fn)(void *ud), void *ud);

/* ---- replies ---- */

/* What a function returns when it has answered the request (see "Writing
 * a handler" above): every fr__reply_* below once its answer is queued,
 * and every helper that may answer in a handler's place.  Their failures
 * are negative FR_E* codes, and then nothing was sent. */
enum { FR_REPLIED = 1 };

/* Add a header to the reply to come (name and value copied); 0 or
 * FR_ENOMEM. */
int fr__reply_header(fr_req *rq, const char *name, const char *value);

/* A JSON reply.  Steals body (NULL is FR_ENOMEM: json_pack's failure
 * passes straight through).  Content-Type application/json.  FR_REPLIED;
 * FR_ENOMEM; FR_EINTERNAL if a reply was already queued. */
int fr__reply_json(fr_req *rq, int status, json_t *body);
/* A reply of len bytes (copied) with the given content type; as
 * fr__reply_json. */
int fr__reply_text(fr_req *rq, int status, const char *content_type, const char *text, size_t len);

/* The error shape of API.md: {"error": {"message", "type", "param",
 * "code"}}; type is "invalid_request_error" below 500, else
 * "server_error"; param may be NULL (JSON null); code NULL picks the
 * status's usual code (invalid_value, unauthorized, not_found, ...).
 * Every 503 carries Retry-After.  FR_REPLIED, or as fr__reply_json. */
int fr__reply_error(fr_req *rq, int status, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* An error from an FR_E* code: status fr_errstatus(err), message
 * fr_errdetail() (or the code's message when there is no detail), code
 * from the table in reply.c (FR_ENOENT with param "model" is
 * "model_not_found", FR_ETOOLONG "context_length_exceeded", FR_EBUSY
 * "overloaded", ...).  FR_REPLIED, or as fr__reply_json. */
int fr__reply_err(fr_req *rq, int err, const char *param);
/* A JSON string of n bytes that need not be valid UTF-8 (generated text,
 * a client's bytes quoted in a message): valid UTF-8 passes as it is;
 * each maximal invalid subpart (a byte token of a random model, a
 * character cut by a stop string or a length limit) becomes U+FFFD, as a
 * browser's TextDecoder decodes the same bytes — JSON holds only Unicode.
 * NUL bytes are kept.  New reference, or NULL (no memory). */
json_t *fr__json_text(const char *p, size_t n);

/* The error object alone ({"error": {...}}), for streams and tests; new
 * reference or NULL. */
json_t *fr__error_json(int status, const char *code, const char *param, const char *message);
/* The code string fr__reply_err uses for err (and param). */
const char *fr__err_code(int err, const char *param);

/* ---- reading a JSON body (body.c) ----
 *
 * A reader is an object of the request's JSON body (the body itself, or
 * an object inside it) and the request that answers for it.  Each getter
 * reads one field: absent or null leaves *out as it was (the caller's
 * default) and *present false; a value of the wrong type or out of
 * [lo, hi] answers 400 invalid_value naming the field ("temperature must
 * be between 0 and 2 (got 5)") and returns FR_REPLIED.  Values are
 * borrowed from the body, which lives as long as the request. */
typedef struct fr_body {
    fr_req *rq;
    json_t *obj;                /* borrowed; NULL reads as an empty object */
    const char *prefix;         /* errors name a field "prefix.key"; NULL: "key" */
} fr_body;

/* The request's body as a reader; without one, 400 missing_field "the
 * request needs a JSON body" (FR_REPLIED). */
int fr__body_need(fr_req *rq, fr_body *b);
/* An integer in [lo, hi] ("n must be an integer"). */
int fr__body_int(const fr_body *b, const char *key, long long lo, long long hi, long long *out, bool *present);
int fr__body_i32(const fr_body *b, const char *key, int32_t lo, int32_t hi, int32_t *out, bool *present);
/* A number in [lo, hi] ("top_p must be a number"). */
int fr__body_num(const fr_body *b, const char *key, double lo, double hi, double *out, bool *present);
int fr__body_float(const fr_body *b, const char *key, double lo, double hi, float *out, bool *present);
/* true or false ("stream must be true or false"). */
int fr__body_bool(const fr_body *b, const char *key, bool *out);
/* A non-empty string ("mode must be a non-empty string"; it holds no NUL:
 * see body.c); *len, when not NULL, gets its length in bytes.  Flags: */
enum {
    FR_BODY_REQUIRED = 1,       /* absent: 400 missing_field "model is required";
                                   null: as a value of the wrong type */
};
int fr__body_str(const fr_body *b, const char *key, unsigned flags, const char **out, size_t *len);
/* An object (borrowed); any other value: 400 "KEY must be MUST" (must:
 * "an object of metadata keys and scalar values"). */
int fr__body_object(const fr_body *b, const char *key, const char *must, json_t **out);
/* "keep_alive": a duration string ("5m", "0", "-1": fr_parse_duration_ms)
 * or a number of seconds (negative: FR_DURATION_NEVER), in ms. */
int fr__body_keep_alive(const fr_body *b, int64_t *out);

/* ---- generation (gen.c) ---- */

typedef enum fr_gen_kind { FR_GEN_CHAT, FR_GEN_TEXT } fr_gen_kind;

#define FR_GEN_MAX_BIAS 1024        /* logit_bias entries a request may give */

/* A generation request, validated: what the generation routes parse from
 * their bodies, and what another handler fills in itself (POST .../ask).
 * Pointers are borrowed and must live until the request is over. */
typedef struct fr_gen_req {
    fr_gen_kind kind;
    const char *model;
    const fr_chat_msg *msgs;    /* chat */
    size_t n_msgs;
    const char *prompt;         /* text: a string prompt, or NULL */
    int32_t *prompt_ids;        /* text: a prompt of token ids */
    int32_t n_prompt_ids;
    bool stream, include_usage;
    int32_t max_tokens;         /* 0: until the context ends */
    fr_sampler_params sp;
    const char *stop[FR_GEN_MAX_STOPS];
    int32_t n_stop;
    int32_t bias_ids[FR_GEN_MAX_BIAS];
    float bias[FR_GEN_MAX_BIAS];
    int32_t n_bias;
    bool logprobs;
    int32_t top_logprobs;
    bool ignore_eos;
    int64_t keep_alive_ms;      /* FR_KEEP_ALIVE_INHERIT: the model's */
    double timeout_s;           /* 0: none */
    /* Constrained decoding: GBNF text (llama.cpp's grammar format, the
     * start rule named "root") that the output must match, or NULL.  Set
     * from "grammar", from "response_format" (json_object, json_schema:
     * compiled to GBNF by schema.c) or by the tools code (tool_choice
     * required or a named function).  Compiled and enforced by
     * fr__gen_run. */
    const char *grammar;
    /* OpenAI's other shapes (gen_shapes.c).  Text completions with
     * several prompts: prompts[i] (a string) or prompts_ids[i] [
     * prompts_n_ids[i]] (token ids) for i < n_prompts; n_prompts 0: the
     * one prompt above. */
    const char **prompts;
    int32_t **prompts_ids;
    int32_t *prompts_n_ids;
    int32_t n_prompts;
    int32_t n;                  /* choices per prompt; 0 or 1: one */
    bool echo;                  /* text: the prompt precedes the completion */
    struct fr_tools *tools;     /* chat: tools.c's reading of "tools", NULL without */
} fr_gen_req;

/* Every field of a generation body but "model" and the prompt
 * ("messages" or "prompt") into q, whose kind is set (the two read
 * "logprobs" differently): max_tokens, stream, the sampler's, stop,
 * logit_bias, logprobs, keep_alive, timeout ...; what is absent gets its
 * default.  top_k false leaves "top_k" to the caller (ask: its number of
 * sources).  0, FR_REPLIED (a 400 naming the field) or FR_ENOMEM. */
int fr__gen_parse_options(const fr_body *b, bool top_k, fr_gen_req *q);

/* What a generation did so far, for hooks that report it themselves
 * (Ollama's counters and durations): times as fr_gen_out's. */
typedef struct fr_gen_stats {
    int32_t n_prompt, n_gen;
    double queue_ms, ttft_ms, total_ms;
    int finish;                 /* FR_FINISH_* */
} fr_gen_stats;

/* schema.c: the structured-output fields of a generation body into
 * q->grammar (fr__gen_parse_options calls it last): "grammar" (GBNF
 * text, as llama-server takes it), "response_format" ({"type": "text"},
 * {"type": "json_object"} optionally with llama-server's "schema",
 * {"type": "json_schema", "json_schema": {"name", "schema", "strict"}})
 * and llama-server's top-level "json_schema".  At most one of them may
 * set a grammar.  0, FR_REPLIED (a 400 naming the field, or the schema
 * keyword that is not supported) or FR_ENOMEM. */
int fr__gen_parse_structured(const fr_body *b, fr_gen_req *q);
/* GBNF for a request's JSON schema: "root ::= s" and the schema's rules
 * (fr__schema_gbnf), in the request's arena, checked by the grammar
 * parser; a 400 naming where (field.path: problem; param field, or
 * "response_format" for a field inside it) when it is not supported.
 * response_format's and Ollama's "format" use it. */
int fr__schema_grammar(fr_req *rq, json_t *schema, const char *field, const char **out);

/* JSON Schema → GBNF (schema.c), for response_format, json_schema, and
 * for whatever else needs a grammar from a schema (tool calls).
 *
 * Appends to *out (text NUL-terminated; out->p is fr_realloc'd: start
 * with {0} and fr_free(out->p) when done) rules whose names all begin
 * with `prefix` ("PREFIX-…") and one rule named exactly `prefix` that
 * matches a JSON text valid for `schema`; no "root" rule, so several
 * schemas (distinct prefixes) can go into one grammar, e.g.
 *     root ::= "{\"name\": \"f\", \"arguments\": " f ws "}"   + rules of prefix "f".
 * prefix: 1 to 32 of [A-Za-z0-9_-].
 *
 * Supported: type (object, array, string, number, integer, boolean, null,
 * or an array of them), properties (kept in their order), required (the
 * others may be left out), additionalProperties (false, true, or a
 * schema; absent: no other members when properties are listed, any
 * members when not), enum, const, items (one schema), minItems/maxItems,
 * anyOf/oneOf (oneOf as anyOf: exclusivity is not enforced), $ref to #,
 * #/$defs/NAME or #/definitions/NAME (recursive ones too), minLength/
 * maxLength, format date, time, date-time, uuid, nullable (OpenAPI's,
 * as openai's zod helper writes it: the value or null); description, title,
 * $schema, $id, $comment, default, examples, strict and name are ignored.
 * true or {} is any JSON value.  Any other keyword is refused.
 * Bounds: maxItems above 100 and maxLength above 1000 count as
 * unbounded; free-form values ({} or no "items") nest at most 6 deep;
 * integers have at most 16 digits, fractions 16, exponents 3.
 * Whitespace: at most one space between tokens (so that a model cannot
 * loop on whitespace forever), no newlines.
 *
 * 0; FR_EINVAL with err holding "PATH: problem", where PATH is empty at
 * the schema's root or names where, as ".properties.a.items" (so
 * snprintf("%s%s", "response_format.json_schema.schema", err) reads
 * "response_format.json_schema.schema.properties.a.items: keyword
 * 'patternProperties' is not supported"); out is then as it was;
 * FR_ENOMEM. */
typedef struct fr_gbnf_buf {
    char *p;
    size_t len, cap;
} fr_gbnf_buf;
int fr__schema_gbnf(json_t *schema, const char *prefix, fr_gbnf_buf *out, char *err, size_t errcap);

/* Compile q->grammar (fr__gen_run does, before the model is acquired):
 * 0 with *out holding one reference, FR_REPLIED (400 naming "grammar"
 * with the parser's message: line, column, problem) or FR_ENOMEM. */
int fr__gen_compile_grammar(fr_req *rq, const fr_gen_req *q, fr_grammar **out);

/* Hooks of another handler that generates through fr__gen_run (each may
 * be NULL; hooks must live until fin):
 *   body        non-streaming: turns the chat.completion object into the
 *               reply's body (steals it; NULL = no memory);
 *   last_event  streaming: gets a chunk envelope with "choices": [] and
 *               "usage" (stolen) and returns one more event to send before
 *               [DONE] (stolen), or NULL for none;
 *   fin         runs exactly once when the request is over, whatever
 *               happened (also when fr__gen_run fails before answering). */
typedef struct fr_gen_hooks {
    void *ud;
    json_t *(*body)(void *ud, json_t *completion);
    json_t *(*last_event)(void *ud, json_t *envelope);
    void (*fin)(void *ud);
    /* Streaming in another shape (Ollama's routes): each chunk event
     * (the envelope with one choice, stolen) goes through chunk, which
     * returns the object to send (stolen) or NULL to send nothing; ndjson
     * frames the stream as NDJSON (fr__reply_ndjson) instead of SSE. */
    json_t *(*chunk)(void *ud, json_t *event);
    bool ndjson;
    /* When not NULL, kept up to date before every hook call. */
    fr_gen_stats *stats;
} fr_gen_hooks;

/* Generate for q and answer as POST /v1/chat/completions (or
 * /v1/completions) answers, reshaped by hooks (NULL: none).  h is a
 * handle of q->model the caller acquired (fr__models_acquire) or NULL to
 * acquire it here; it is released here in every case.  q must live until
 * hooks->fin (the request's arena does).  FR_REPLIED or a negative FR_E*
 * as a handler returns. */
int fr__gen_run(fr_req *rq, const fr_gen_req *q, fr_handle *h, const fr_gen_hooks *hooks);

/* ---- tool calls (tools.c) ----
 *
 * OpenAI's function calling on /v1/chat/completions: "tools",
 * "tool_choice" and "parallel_tool_calls" in the request, assistant
 * messages with "tool_calls" and "tool" messages in the conversation, and
 * "tool_calls" in the reply, parsed from the text the model wrote in its
 * family's call syntax (engine.h, fr_chat_apply_tools).  "required" and a
 * named function are enforced by a grammar (fr_gen_req.grammar's GBNF). */

typedef enum fr_tool_choice {
    FR_TOOLS_AUTO, FR_TOOLS_NONE, FR_TOOLS_REQUIRED, FR_TOOLS_NAMED
} fr_tool_choice;

typedef struct fr_tools {
    json_t *defs;               /* the request's "tools" (borrowed) */
    size_t n;
    const char **names;         /* tools[i].function.name */
    json_t **params;            /* tools[i].function.parameters, or NULL */
    fr_tool_choice choice;
    size_t named;               /* FR_TOOLS_NAMED: the function's index */
    bool parallel;              /* parallel_tool_calls (default true) */
} fr_tools;

/* "tools", "tool_choice" and "parallel_tool_calls" of a chat body into
 * q->tools (the request's arena; left NULL when there are no tools): 0,
 * FR_REPLIED (400 naming the field: "tools[2].function.name",
 * "tool_choice") or FR_ENOMEM. */
int fr__tools_parse(const fr_body *b, fr_gen_req *q);
/* What messages[i] (its role is checked already; its content read into
 * m->content, NULL for an assistant message with tool_calls and no
 * content) adds for tools: an assistant's "tool_calls" into m->calls, a
 * tool message's "tool_call_id".  0, FR_REPLIED or FR_ENOMEM. */
int fr__tools_message(fr_req *rq, json_t *msg, size_t i, fr_chat_msg *m);
/* The definitions as chat kind prints them (the request's arena), for
 * fr_chat_tokenize_tools; *n 0 when the request offers no tools or
 * tool_choice is "none". */
int fr__tools_defs(fr_req *rq, const fr_gen_req *q, int kind, const char *const **defs, size_t *n);
/* The grammar that enforces tool_choice "required" or a named function
 * in kind's call syntax (GBNF, root "root", the request's arena; each
 * call's arguments as its parameters' schema says, fr__schema_gbnf), or
 * NULL when nothing is enforced.  0, FR_REPLIED (400 naming
 * "tools[i].function.parameters" and the schema keyword the grammar
 * cannot enforce) or FR_ENOMEM. */
int fr__tools_grammar(fr_req *rq, const fr_gen_req *q, int kind, const char **grammar);
/* True when the reply is parsed for calls (tools offered, choice not none). */
bool fr__tools_active(const fr_gen_req *q);

/* The reply's parser: text in, OpenAI's deltas out.  Content outside the
 * calls is trimmed of the whitespace around it; a call that does not
 * parse (bad JSON, an unknown function, arguments that are not an
 * object) stays text in the content. */
typedef struct fr_tool_parser fr_tool_parser;
int  fr__tool_parser_create(const fr_tools *t, int kind, fr_tool_parser **out);
void fr__tool_parser_destroy(fr_tool_parser *p);
/* Feed len bytes of the answer (end: there is no more); appends to deltas
 * (a JSON array) what can be sent now: {"content": "..."} and, for each
 * call, {"tool_calls": [{"index", "id", "type": "function", "function":
 * {"name", "arguments": ""}}]} then {"tool_calls": [{"index", "function":
 * {"arguments": "..."}}]} (several, the pieces to join, when tool_choice
 * is required or names a function: those calls are read as written).
 * 0 or FR_ENOMEM. */
int  fr__tool_parser_push(fr_tool_parser *p, const char *text, size_t len, bool end, json_t *deltas);
/* Calls found so far. */
int  fr__tool_parser_calls(const fr_tool_parser *p);
/* The whole answer's message fields from its deltas: sets message's
 * "content" (null when there is none beside calls, else a string) and
 * "tool_calls" (when there are calls); *n_calls gets their number. */
int  fr__tools_message_json(const fr_tools *t, int kind, const char *text, size_t len, json_t *message,
                            int *n_calls);

/* ---- models (models.c) ---- */

/* Acquire model id for a request (keep_alive_ms as fr_manager_acquire)
 * and check that it has one of caps: 404 model_not_found when there is
 * no such model, 400 "model 'x' does not do WHAT" when it lacks caps,
 * the manager's error otherwise (503 busy or over budget ...): FR_REPLIED
 * with *out NULL; 0 with *out held (fr_manager_release). */
int fr__models_acquire(fr_req *rq, const char *id, int64_t keep_alive_ms, unsigned caps, const char *what,
                       fr_handle **out);

/* ---- server-sent events ---- */

enum { FR_SSE_MORE = 0, FR_SSE_END = 1 };

typedef int (*fr_sse_pull_fn)(fr_sse *st, void *ud);
typedef void (*fr_sse_fin_fn)(void *ud, bool completed);

/* Answer 200 with an event stream fed by pull (see the top of this file):
 * FR_REPLIED, and fin (may be NULL) will run.  On failure (FR_ENOMEM,
 * FR_EINTERNAL when a reply was already queued) fin is NOT called: the
 * caller still owns ud. */
int fr__reply_sse(fr_req *rq, fr_sse_pull_fn pull, fr_sse_fin_fn fin, void *ud);
/* The same stream framed as NDJSON (application/x-ndjson, Ollama's
 * streams; sse.c): each fr__sse_json/fr__sse_data appends one line, no
 * [DONE] at the end, no keep-alive, an error as {"error": "message"}. */
int fr__reply_ndjson(fr_req *rq, fr_sse_pull_fn pull, fr_sse_fin_fn fin, void *ud);
/* Append one event "data: <json>\n\n"; steals obj.  FR_ENOMEM. */
int fr__sse_json(fr_sse *st, json_t *obj);
/* Append one event with len bytes of data (no newlines in data). */
int fr__sse_data(fr_sse *st, const char *data, size_t len);
/* fr__req_gone for the stream's request. */
bool fr__sse_gone(fr_sse *st, int timeout_ms);

/* ---- inside http.c/reply.c ---- */

/* Queue a response for rq with status, the request's extra headers,
 * Retry-After on 503, X-Request-Id, and Connection: close while
 * draining.  Takes ownership of resp (destroyed here).  FR_REPLIED, or
 * FR_ENOMEM, FR_EINTERNAL. */
int fr__queue(fr_req *rq, int status, struct MHD_Response *resp);
/* The stream's side of the request thread (sse.c): pull until the
 * stream ends, handing bytes to the reader.  Runs after the handler. */
void fr__sse_produce(fr_sse *st);
/* Resume rq's connection, which we suspended (http.c; without rq->mu:
 * nobody else may end a connection we hold suspended). */
void fr__req_resume(fr_req *rq);
/* The stream's end: called once when both sides are done with the request. */
void fr__sse_finish(fr_sse *st, bool completed);

#endif
