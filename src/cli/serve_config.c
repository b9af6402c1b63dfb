/*
 * serve_config.c — `frugal serve` settings: the option table and its
 * three sources (INI file, environment, flags).
 *
 * The INI file (parsed with inih):
 *
 *   [server]
 *   host = 127.0.0.1          port = 8080        models = /srv/models
 *   api_key = K               (repeatable; or several, comma-separated)
 *   api_key_file = keys.txt   threads = 4        parallel = 4
 *   queue = 16                ctx = 2048         max_body = 1M
 *   keep_alive = 5m           drain_timeout = 30s
 *   conn_timeout = 30s        max_loaded = 2     log_level = info
 *   header_timeout = 10s      max_conns = 1024   max_conns_per_ip = 64
 *   cors_origin = http://app.example:3000, http://localhost:5173
 *   allowed_host = frugal.lan
 *   profile = auto            (a board profile: see "board profiles" below)
 *
 *   [memory]
 *   budget = 6G | 75%         warning = 80       critical = 90
 *   emergency = 95
 *
 *   [search]
 *   data = ./data             cache = 256M       data_sync = normal | full
 *
 *   [model "tiny"]            (one section per model; the name is its id)
 *   path = tiny.gguf          (required)         alias = small
 *   ctx = 4096                parallel = 2       keep_alive = -1
 *   pin = yes                 preload = yes      threads = 2
 *   chat_template = llama3    (a template name or Jinja source in place of the file's)
 *
 * Line tracking.  inih reports the line of a syntax error, but its
 * handler is not told which line a key came from, and it silently splits
 * lines longer than its buffer.  So the text is fed to ini_parse_stream
 * through our own line reader, which counts lines (the handler runs for
 * the line the reader handed out last), refuses over-long lines and NUL
 * bytes, strips leading blanks (so indented keys work and inih never
 * takes a line for a multi-line continuation), and reads section headers
 * itself: sections are validated (and
 * models created) when their header is read, so an empty unknown section
 * or an empty [model "x"] is still an error, and model names are not cut
 * at inih's section length limit.
 */
#include "cli/serve_config.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "base/sysinfo.h"
#include "frugal/engine.h"

enum kind { K_STR, K_PATH, K_INT, K_SIZE, K_BUDGET, K_DUR, K_PCT, K_KEYS, K_LOG, K_SYNC, K_PROFILE };
/* where a setting came from (fr_serve_config.src); the API key lists
 * compare INI < ENV < FLAG, profiles set no keys */
enum { SRC_DEFAULT = 0, SRC_INI = 1, SRC_ENV = 2, SRC_FLAG = 3, SRC_PROFILE = 4 };

typedef struct opt {
    const char *section, *key;      /* INI */
    const char *flag, *env;
    int kind;
    size_t off;                     /* field of fr_serve_config */
    int64_t lo, hi;                 /* K_INT / K_DUR ranges; K_SIZE: lo is the minimum */
    const char *arg, *help;
} opt;

#define F(field) offsetof(fr_serve_config, field)

static const opt opts[] = {
    {"server", "profile", "--profile", "FRUGAL_PROFILE", K_PROFILE, F(profile), 0, 0, "NAME",
     "board profile: the defaults of threads, budget, levels, max_loaded, parallel and queue for a "
     "board (pi4-4g, pi4-8g, pi5-4g, pi5-8g, pi5-16g, cm4-4g, vps-2c, x86-16g) or auto (none)"},
    {"server", "models", "--models", "FRUGAL_MODELS", K_PATH, F(models_dir), 0, 0, "DIR",
     "folder of *.gguf models offered (default: none)"},
    {"server", "host", "--host", "FRUGAL_HOST", K_STR, F(host), 0, 0, "ADDR", "address to listen on (127.0.0.1)"},
    {"server", "port", "--port", "FRUGAL_PORT", K_INT, F(port), 0, 65535, "N", "port; 0 picks a free one (8080)"},
    {"server", "api_key", "--api-key", "FRUGAL_API_KEY", K_KEYS, F(api_keys), 0, 0, "KEY",
     "require this key (repeatable; in the variable and INI: comma-separated)"},
    {"server", "api_key_file", "--api-key-file", "FRUGAL_API_KEY_FILE", K_PATH, F(api_key_file), 0, 0, "FILE",
     "require one of the keys in FILE, one per line"},
    {"server", "threads", "--threads", "FRUGAL_THREADS", K_INT, F(threads), 1, 1024, "N",
     "compute threads (physical cores)"},
    {"server", "parallel", "--parallel", "FRUGAL_PARALLEL", K_INT, F(parallel), 1, 256, "N",
     "requests decoding at once per model (4)"},
    {"server", "queue", "--queue", "FRUGAL_QUEUE", K_INT, F(queue), 0, 65536, "N",
     "requests waiting per model beyond those (16)"},
    {"server", "ctx", "--ctx", "FRUGAL_CTX", K_INT, F(ctx), 16, 1 << 24, "N", "context tokens per request (2048)"},
    {"server", "max_body", "--max-body", "FRUGAL_MAX_BODY", K_SIZE, F(max_body), 1024, 1 << 30, "SIZE",
     "request body limit (1M)"},
    {"server", "keep_alive", "--keep-alive", "FRUGAL_KEEP_ALIVE", K_DUR, F(keep_alive_ms), -1, INT64_MAX, "DUR",
     "unload idle models after DUR; 0 at once, -1 never (5m)"},
    {"server", "drain_timeout", "--drain-timeout", "FRUGAL_DRAIN_TIMEOUT", K_DUR, F(drain_timeout_ms), -1,
     INT64_MAX, "DUR", "on SIGTERM, wait DUR for requests to finish; -1 forever (30s)"},
    {"server", "conn_timeout", "--conn-timeout", "FRUGAL_CONN_TIMEOUT", K_DUR, F(conn_timeout_ms), 1, INT64_MAX,
     "DUR", "drop a connection that sends no complete request within DUR (30s)"},
    {"server", "header_timeout", "--header-timeout", "FRUGAL_HEADER_TIMEOUT", K_DUR, F(header_timeout_ms), 1,
     INT64_MAX, "DUR", "drop a connection whose request headers are not all in within DUR (10s)"},
    {"server", "max_conns", "--max-conns", "FRUGAL_MAX_CONNS", K_INT, F(max_conns), 1, 1 << 20, "N",
     "open connections in all (1024)"},
    {"server", "max_conns_per_ip", "--max-conns-per-ip", "FRUGAL_MAX_CONNS_PER_IP", K_INT, F(max_conns_per_ip), 1,
     1 << 20, "N", "open connections from one client address (64)"},
    {"server", "cors_origin", "--cors-origin", "FRUGAL_CORS_ORIGIN", K_STR, F(cors_origin), 0, 0, "LIST",
     "web-page origins allowed to call, comma-separated, or * (none: browsers' cross-site requests get 403)"},
    {"server", "allowed_host", "--allowed-host", "FRUGAL_ALLOWED_HOST", K_STR, F(allowed_host), 0, 0, "LIST",
     "Host names answered besides loopback ones when bound to loopback, comma-separated"},
    {"server", "batch_tokens", "--batch-tokens", "FRUGAL_BATCH_TOKENS", K_INT, F(batch_tokens), 16, 1 << 20,
     "N", "embedding and rerank inputs merged into one forward pass, in tokens (2048)"},
    {"memory", "embed_cache", "--embed-cache", "FRUGAL_EMBED_CACHE", K_SIZE, F(embed_cache), 0, (int64_t)1 << 40,
     "SIZE", "LRU cache of embedding vectors, counted in the budget; 0 = none (32M)"},
    {"server", "request_timeout", "--request-timeout", "FRUGAL_REQUEST_TIMEOUT", K_DUR, F(request_timeout_ms),
     -1, INT64_MAX, "DUR", "end a generation after DUR with finish_reason length; -1 never (10m)"},
    {"server", "max_loaded", "--max-loaded", "FRUGAL_MAX_LOADED", K_INT, F(max_loaded), 0, 1024, "N",
     "models loaded at once; 0 = as many as fit"},
    {"server", "log_level", "--log-level", "FRUGAL_LOG", K_LOG, F(log_level), 0, 0, "LEVEL",
     "error, warn, info or debug (info)"},
    {"memory", "budget", "--memory-budget", "FRUGAL_MEMORY_BUDGET", K_BUDGET, F(budget_bytes), 0, 0, "SIZE|PCT",
     "memory for models, like 6G or 60% (75% of RAM or the cgroup limit)"},
    {"memory", "warning", "--mem-warning", "FRUGAL_MEM_WARNING", K_PCT, F(mem_warning), 1, 100, "PCT",
     "memory use that is logged and exported (80)"},
    {"memory", "critical", "--mem-critical", "FRUGAL_MEM_CRITICAL", K_PCT, F(mem_critical), 1, 100, "PCT",
     "memory use that evicts idle models (90)"},
    {"memory", "emergency", "--mem-emergency", "FRUGAL_MEM_EMERGENCY", K_PCT, F(mem_emergency), 1, 100, "PCT",
     "memory use that evicts every idle model and refuses loads (95)"},
    {"search", "data", "--data", "FRUGAL_DATA", K_PATH, F(data_dir), 0, 0, "DIR",
     "the document index (DIR/frugal.db), made at the first write (./data)"},
    {"search", "cache", "--search-cache", "FRUGAL_SEARCH_CACHE", K_SIZE, F(search_cache), 0, (int64_t)1 << 40,
     "SIZE", "int8 copies of the index's vectors kept in memory; 0 = the default (256M)"},
    {"search", "data_sync", "--data-sync", "FRUGAL_DATA_SYNC", K_SYNC, F(data_sync_full), 0, 0, "normal|full",
     "normal: a power cut may lose the last acknowledged writes (never corrupts); full: every "
     "acknowledged write is on the disk (an fsync each) (normal)"},
};
#define N_OPTS (sizeof opts / sizeof opts[0])
_Static_assert(N_OPTS <= 64, "ini_seen is a 64-bit mask");

/* The keys of a [model "name"] section, bit i of model_seen. */
static const char *const model_keys[] = {"path", "alias", "ctx", "parallel", "keep_alive", "pin", "preload",
                                         "threads", "chat_template"};
#define N_MODEL_KEYS (sizeof model_keys / sizeof model_keys[0])
#define MAX_MODEL_NAME 127          /* fr_model_info.id holds 128 bytes */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* ---- board profiles ----
 *
 * A profile gives values to some settings, written as in the INI file and
 * run through the same parsers; each applies only where no INI key,
 * variable or flag set it (fr_serve_config_finish), so the precedence is
 * default < profile < INI < environment < flag.  Starting points, from the
 * services frugal replaces: on a Pi, threads = cores − 1 (all are 4-core),
 * one cached model, warning 60 % / critical 70 % / emergency 95 %, 2
 * parallel requests; budgets Pi 4 8 GB 5G, Pi 5 16 GB 12G, a 24 GB x86
 * 18 GB (75 %).  The rest is derived: a 4 GB board keeps the 8 GB board's
 * ~3 GB for the OS and gets 2.5G; a Pi 5 8 GB is a Pi 4 8 GB; queue is 4
 * × parallel; a 2-core VPS uses both cores and 60 % of its memory (its
 * size varies); x86-16g, 75 % (12G of 16 GB, 18G of 24 GB), keeps the
 * physical-core default and 4 slots, 2 models, levels 70/80/95.  The
 * table is in the README ("Board profiles"). */

typedef struct profile {
    const char *name, *what;
    const char *kv[8][2];           /* INI key, value */
} profile;

#define PI_LEVELS {"warning", "60"}, {"critical", "70"}, {"emergency", "95"}
static const profile profiles[] = {
    {"pi4-4g", "Raspberry Pi 4, 4 GB",
     {{"threads", "3"}, {"budget", "2560M"}, PI_LEVELS, {"max_loaded", "1"}, {"parallel", "2"},
      {"queue", "8"}}},
    {"pi4-8g", "Raspberry Pi 4, 8 GB",
     {{"threads", "3"}, {"budget", "5G"}, PI_LEVELS, {"max_loaded", "1"}, {"parallel", "2"},
      {"queue", "8"}}},
    {"pi5-4g", "Raspberry Pi 5, 4 GB (or 2 GB)",
     {{"threads", "3"}, {"budget", "2560M"}, PI_LEVELS, {"max_loaded", "1"}, {"parallel", "2"},
      {"queue", "8"}}},
    {"pi5-8g", "Raspberry Pi 5, 8 GB",
     {{"threads", "3"}, {"budget", "5G"}, PI_LEVELS, {"max_loaded", "1"}, {"parallel", "2"},
      {"queue", "8"}}},
    {"pi5-16g", "Raspberry Pi 5, 16 GB",
     {{"threads", "3"}, {"budget", "12G"}, PI_LEVELS, {"max_loaded", "1"}, {"parallel", "2"},
      {"queue", "8"}}},
    {"cm4-4g", "Raspberry Pi Compute Module 4, 4 GB or less",
     {{"threads", "3"}, {"budget", "2560M"}, PI_LEVELS, {"max_loaded", "1"}, {"parallel", "2"},
      {"queue", "8"}}},
    {"vps-2c", "a virtual server with 2 cores",
     {{"threads", "2"}, {"budget", "60%"}, PI_LEVELS, {"max_loaded", "1"}, {"parallel", "2"},
      {"queue", "8"}}},
    {"x86-16g", "a machine with more cores, 16 GB or more",
     {{"budget", "75%"}, {"warning", "70"}, {"critical", "80"}, {"emergency", "95"}, {"max_loaded", "2"},
      {"parallel", "4"}, {"queue", "16"}}},
};
#define N_PROFILES (sizeof profiles / sizeof profiles[0])
#define PROFILE_NAMES "pi4-4g, pi4-8g, pi5-4g, pi5-8g, pi5-16g, cm4-4g, vps-2c, x86-16g or auto"

static const profile *find_profile(const char *name) {
    for (size_t i = 0; i < N_PROFILES; i++)
        if (!strcmp(profiles[i].name, name)) return &profiles[i];
    return NULL;
}

const char *fr_serve_profile_auto(const fr_board *b) {
    const uint64_t gib = 1ull << 30;
    bool big = b->mem_total > 6 * gib, huge = b->mem_total > 12 * gib;
    if (strstr(b->model, "Raspberry Pi 5") || strstr(b->model, "Compute Module 5"))
        return huge ? "pi5-16g" : big ? "pi5-8g" : "pi5-4g";
    if (strstr(b->model, "Compute Module 4")) return big ? "pi4-8g" : "cm4-4g";
    if (strstr(b->model, "Raspberry Pi 4") || strstr(b->model, "Raspberry Pi 400"))
        return big ? "pi4-8g" : "pi4-4g";
    return b->cpus > 0 && b->cpus <= 2 ? "vps-2c" : "x86-16g";
}

static const opt *find_key(const char *key);
static int set_opt(fr_serve_config *c, const opt *o, const char *where, const char *v, int source,
                   const char *base_dir);

/* Apply the profile to the settings nobody else set. */
static int apply_profile(fr_serve_config *c) {
    const char *name = c->profile;
    if (!strcmp(name, "auto")) {
        fr_board b;
        fr_board_read(&b);
        name = fr_serve_profile_auto(&b);
        snprintf(c->board, sizeof c->board, "%s%s%d CPUs, %.1f GiB", b.model, *b.model ? ", " : "", b.cpus,
                 (double)b.mem_total / (double)(1ull << 30));
    }
    const profile *pr = find_profile(name);
    if (!pr) return FR_EINTERNAL;
    snprintf(c->profile_used, sizeof c->profile_used, "%s", pr->name);
    char where[64];
    snprintf(where, sizeof where, "profile %s", pr->name);
    for (size_t k = 0; k < 8 && pr->kv[k][0]; k++) {
        const opt *o = find_key(pr->kv[k][0]);
        if (!o) return FR_EINTERNAL;
        size_t i = (size_t)(o - opts);
        if (c->src[i] != SRC_DEFAULT) continue;
        int rc = set_opt(c, o, where, pr->kv[k][1], SRC_PROFILE, NULL);
        if (rc) return rc;
        c->src[i] = SRC_PROFILE;
    }
    return 0;
}

/* ---- defaults and freeing ---- */

int fr_serve_config_init(fr_serve_config *c) {
    memset(c, 0, sizeof *c);
    if (!(c->host = fr_strdup("127.0.0.1"))) return FR_ENOMEM;
    c->port = 8080;
    c->keep_alive_ms = 5 * 60 * 1000;
    c->parallel = 4;
    c->queue = 16;
    c->ctx = 2048;
    c->max_body = 1 << 20;
    c->mem_warning = 80;
    c->mem_critical = 90;
    c->mem_emergency = 95;
    c->drain_timeout_ms = 30000;
    c->conn_timeout_ms = 30000;
    c->header_timeout_ms = 10000;
    c->max_conns = 1024;
    c->max_conns_per_ip = 64;
    c->request_timeout_ms = 10 * 60 * 1000;
    c->batch_tokens = 2048;
    c->embed_cache = 32 << 20;
    if (!(c->data_dir = fr_strdup("./data"))) return FR_ENOMEM;
    c->log_level = FR_LOG_INFO;
    return 0;
}

static void free_keys(fr_serve_config *c) {
    for (size_t i = 0; i < c->n_api_keys; i++) fr_free(c->api_keys[i]);
    fr_free(c->api_keys);
    c->api_keys = NULL;
    c->n_api_keys = 0;
}

static void free_model(fr_model_cfg *m) {
    fr_free((char *)m->id);
    fr_free((char *)m->path);
    fr_free((char *)m->alias);
    fr_free((char *)m->chat_template);
}

void fr_serve_config_deinit(fr_serve_config *c) {
    fr_free(c->models_dir);
    fr_free(c->host);
    fr_free(c->api_key_file);
    fr_free(c->config_path);
    fr_free(c->data_dir);
    fr_free(c->cors_origin);
    fr_free(c->allowed_host);
    fr_free(c->profile);
    free_keys(c);
    for (size_t i = 0; i < c->n_models; i++) free_model(&c->models[i]);
    fr_free(c->models);
    memset(c, 0, sizeof *c);
}

/* ---- setting one option ---- */

static char *join_path(const char *base, const char *path) {
    if (!base || !*base || path[0] == '/') return fr_strdup(path);
    size_t a = strlen(base), b = strlen(path);
    char *s = fr_malloc(a + b + 2);
    if (!s) return NULL;
    memcpy(s, base, a);
    s[a] = '/';
    memcpy(s + a + 1, path, b + 1);
    return s;
}

static int set_str(char **field, const char *v) {
    char *s = fr_strdup(v);
    if (!s) return FR_ENOMEM;
    fr_free(*field);
    *field = s;
    return 0;
}

/* A key must be printable ASCII without blanks or commas: it travels in a
 * header and lists are comma-separated. */
static int add_key(fr_serve_config *c, const char *where, const char *k, size_t n) {
    if (n == 0) return fr_errf(FR_EINVAL, "%s: empty API key", where);
    for (size_t i = 0; i < n; i++)
        if (k[i] <= 32 || k[i] >= 127 || k[i] == ',')
            return fr_errf(FR_EINVAL, "%s: an API key may only hold printable characters without blanks or commas",
                           where);
    char **nk = fr_realloc(c->api_keys, (c->n_api_keys + 1) * sizeof *nk);
    if (!nk) return FR_ENOMEM;
    c->api_keys = nk;
    if (!(nk[c->n_api_keys] = fr_strndup(k, n))) return FR_ENOMEM;
    c->n_api_keys++;
    return 0;
}

static int set_keys(fr_serve_config *c, const char *where, const char *v, int source) {
    if (c->keys_source < source) {      /* a higher source replaces the list */
        free_keys(c);
        c->keys_source = source;
    }
    if (source == SRC_FLAG) c->api_key_flag = true;
    const char *p = v;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
        int rc = add_key(c, where, p, n);
        if (rc) return rc;
        if (!e) return 0;
        p = e + 1;
    }
}

static int set_value(fr_serve_config *c, const opt *o, const char *where, const char *v, int source,
                     const char *base_dir) {
    char *field = (char *)c + o->off;
    int64_t i64;
    uint64_t u64;
    double d;
    int rc = 0;
    switch (o->kind) {
    case K_STR:
        if (!*v) return fr_errf(FR_EINVAL, "%s: empty value", where);
        return set_str((char **)field, v);
    case K_PATH: {
        if (!*v) return fr_errf(FR_EINVAL, "%s: empty path", where);
        char *s = join_path(source == SRC_INI ? base_dir : NULL, v);
        if (!s) return FR_ENOMEM;
        fr_free(*(char **)field);
        *(char **)field = s;
        return 0;
    }
    case K_INT:
        if ((rc = fr_parse_int(where, v, o->lo, o->hi, &i64))) return rc;
        *(int64_t *)field = i64;
        return 0;
    case K_SIZE:
        if ((rc = fr_parse_size(where, v, 0, &u64))) return rc;
        if (u64 < (uint64_t)o->lo || u64 > (uint64_t)o->hi)
            return fr_errf(FR_EINVAL, "%s: %.60s is out of range (want %lld to %lld bytes)", where, v,
                           (long long)o->lo, (long long)o->hi);
        *(uint64_t *)field = u64;
        return 0;
    case K_BUDGET:
        return fr_parse_size_or_pct(where, v, &c->budget_bytes, &c->budget_pct);
    case K_DUR:
        if ((rc = fr_parse_duration_ms(where, v, &i64))) return rc;
        if (i64 < o->lo)
            return fr_errf(FR_EINVAL, "%s: %.60s is out of range (want %s)", where, v,
                           o->lo > 0 ? "more than 0" : o->lo == 0 ? "0 or more" : "-1 (never), 0 or more");
        *(int64_t *)field = i64;
        return 0;
    case K_PCT:
        if ((rc = fr_parse_percent(where, v, (double)o->lo, (double)o->hi, &d))) return rc;
        *(double *)field = d;
        return 0;
    case K_KEYS:
        return set_keys(c, where, v, source);
    case K_LOG:
        for (int l = 0; l < 4; l++)
            if (!strcmp(v, level_names[l])) { *(int64_t *)field = l; return 0; }
        return fr_errf(FR_EINVAL, "%s: bad log level '%.40s' (want error, warn, info or debug)", where, v);
    case K_SYNC:
        if (!strcmp(v, "normal") || !strcmp(v, "full")) { *(bool *)field = !strcmp(v, "full"); return 0; }
        return fr_errf(FR_EINVAL, "%s: bad value '%.40s' (want normal or full)", where, v);
    case K_PROFILE:
        if (strcmp(v, "auto") && !find_profile(v))
            return fr_errf(FR_EINVAL, "%s: unknown profile '%.40s' (known: " PROFILE_NAMES ")", where, v);
        return set_str((char **)field, v);
    }
    return FR_EINTERNAL;
}

/* Set o from text v and note the source. */
static int set_opt(fr_serve_config *c, const opt *o, const char *where, const char *v, int source,
                   const char *base_dir) {
    int rc = set_value(c, o, where, v, source, base_dir);
    if (!rc) {
        c->src[o - opts] = (uint8_t)source;
        c->src_line[o - opts] = 0;
    }
    return rc;
}

static const opt *find_key(const char *key) {
    for (size_t i = 0; i < N_OPTS; i++)
        if (!strcmp(opts[i].key, key)) return &opts[i];
    return NULL;
}

/* ---- INI ---- */

enum { SEC_NONE, SEC_SERVER, SEC_MEMORY, SEC_SEARCH, SEC_MODEL };

typedef struct ini_state {
    fr_serve_config *c;
    const char *text;
    size_t len, pos;
    int line;                   /* of the line handed out last */
    const char *name, *base_dir;
    int section;                /* SEC_* */
    char *section_text;         /* as written between [ ], for messages */
    size_t model;               /* index into c->models when SEC_MODEL */
    unsigned *model_seen;       /* keys seen per model, parallel to c->models */
    int *model_line;            /* header line per model */
    int rc;                     /* first error: the parse stops */
} ini_state;

#define INI_FAIL(st, code, ...) ((st)->rc = fr_errf(code, __VA_ARGS__), 0)

/* A section header [..] at str (trimmed line starting with '['). */
static void ini_section(ini_state *st, const char *str) {
    const char *close = strchr(str, ']');
    if (!close) {
        st->rc = fr_errf(FR_EINVAL, "%s:%d: syntax error (a section header without ']')", st->name, st->line);
        return;
    }
    size_t n = (size_t)(close - str - 1);
    char *sec = fr_strndup(str + 1, n);
    if (!sec) { st->rc = FR_ENOMEM; return; }
    fr_free(st->section_text);
    st->section_text = sec;
    if (!strcmp(sec, "server")) { st->section = SEC_SERVER; return; }
    if (!strcmp(sec, "memory")) { st->section = SEC_MEMORY; return; }
    if (!strcmp(sec, "search")) { st->section = SEC_SEARCH; return; }
    const char *p = sec;
    if (strncmp(p, "model", 5) || (p[5] != ' ' && p[5] != '\t')) {
        st->rc = fr_errf(FR_EINVAL, "%s:%d: unknown section [%.60s] (want [server], [memory], [search] or [model \"name\"])",
                 st->name, st->line, sec);
        return;
    }
    p += 5;
    while (*p == ' ' || *p == '\t') p++;
    size_t len = strlen(p);
    const char *q = len >= 2 && p[0] == '"' && p[len - 1] == '"' ? memchr(p + 1, '"', len - 2) : p;
    if (len < 3 || p[0] != '"' || p[len - 1] != '"' || q) {
        st->rc = fr_errf(FR_EINVAL, "%s:%d: bad section [%.60s] (want [model \"name\"] with a non-empty name)",
                 st->name, st->line, sec);
        return;
    }
    const char *id = p + 1;
    size_t id_len = len - 2;
    for (size_t i = 0; i < id_len; i++)
        if ((unsigned char)id[i] < 32 || id[i] == 127) {
            st->rc = fr_errf(FR_EINVAL, "%s:%d: model name with a control character", st->name, st->line);
            return;
        }
    if (id_len > MAX_MODEL_NAME) {
        st->rc = fr_errf(FR_EINVAL, "%s:%d: model name longer than %d bytes", st->name, st->line, MAX_MODEL_NAME);
        return;
    }
    fr_serve_config *c = st->c;
    for (size_t i = 0; i < c->n_models; i++)
        if (strlen(c->models[i].id) == id_len && !memcmp(c->models[i].id, id, id_len)) {
            st->rc = fr_errf(FR_EINVAL, "%s:%d: model \"%s\" is defined twice (first at line %d)", st->name, st->line,
                     c->models[i].id, st->model_line[i]);
            return;
        }
    size_t n1 = c->n_models + 1;
    fr_model_cfg *nm = fr_realloc(c->models, n1 * sizeof *nm);
    if (nm) c->models = nm;
    unsigned *ns = nm ? fr_realloc(st->model_seen, n1 * sizeof *ns) : NULL;
    if (ns) st->model_seen = ns;
    int *nl = ns ? fr_realloc(st->model_line, n1 * sizeof *nl) : NULL;
    if (nl) st->model_line = nl;
    char *idc = nl ? fr_strndup(id, id_len) : NULL;
    if (!idc) { st->rc = FR_ENOMEM; return; }
    memset(&c->models[c->n_models], 0, sizeof *c->models);
    c->models[c->n_models].id = idc;
    c->models[c->n_models].keep_alive_ms = FR_KEEP_ALIVE_INHERIT;
    st->model_seen[c->n_models] = 0;
    st->model_line[c->n_models] = st->line;
    st->model = c->n_models++;
    st->section = SEC_MODEL;
}

/* inih's reader: one line of the buffer per call (see the file comment). */
static char *read_line(char *str, int num, void *stream) {
    ini_state *st = stream;
    if (st->rc || st->pos >= st->len) return NULL;
    const char *p = st->text + st->pos;
    const char *nl = memchr(p, '\n', st->len - st->pos);
    size_t n = nl ? (size_t)(nl - p) + 1 : st->len - st->pos;
    st->pos += n;
    st->line++;
    if (memchr(p, 0, n)) {
        st->rc = fr_errf(FR_EINVAL, "%s:%d: NUL byte in the line", st->name, st->line);
        return NULL;
    }
    /* Leading blanks go: indented keys are fine, and inih never sees a
     * continuation line (values are one line). */
    if (st->line == 1 && n >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) { p += 3; n -= 3; }
    while (n && (*p == ' ' || *p == '\t')) { p++; n--; }
    if (n + 1 > (size_t)num) {
        st->rc = fr_errf(FR_EINVAL, "%s:%d: line longer than %d characters", st->name, st->line, num - 2);
        return NULL;
    }
    memcpy(str, p, n);
    str[n] = 0;
    if (*str == '[') ini_section(st, str);
    return st->rc ? NULL : str;
}

static int ini_model_key(ini_state *st, const char *where, const char *key, const char *v) {
    fr_model_cfg *m = &st->c->models[st->model];
    size_t k = 0;
    while (k < N_MODEL_KEYS && strcmp(model_keys[k], key)) k++;
    if (k == N_MODEL_KEYS)
        return fr_errf(FR_EINVAL, "%s: unknown key (want path, alias, ctx, parallel, keep_alive, pin, preload, "
                       "threads or chat_template)", where);
    if (st->model_seen[st->model] & (1u << k)) return fr_errf(FR_EINVAL, "%s: given twice", where);
    st->model_seen[st->model] |= 1u << k;
    int64_t i64;
    int rc = 0;
    char *s;
    switch (k) {
    case 0:
        if (!*v) return fr_errf(FR_EINVAL, "%s: empty path", where);
        if (!(s = join_path(st->base_dir, v))) return FR_ENOMEM;
        m->path = s;
        return 0;
    case 1:
        if (!*v) return fr_errf(FR_EINVAL, "%s: empty alias", where);
        if (!(s = fr_strdup(v))) return FR_ENOMEM;
        m->alias = s;
        return 0;
    case 2: rc = fr_parse_int(where, v, 16, 1 << 24, &i64); if (!rc) m->n_ctx = (int32_t)i64; return rc;
    case 3: rc = fr_parse_int(where, v, 1, 256, &i64); if (!rc) m->parallel = (int32_t)i64; return rc;
    case 4: return fr_parse_duration_ms(where, v, &m->keep_alive_ms);
    case 5: return fr_parse_bool(where, v, &m->pin);
    case 6: return fr_parse_bool(where, v, &m->preload);
    case 8:
        if (fr_chat_detect(v) < 0)
            return fr_errf(FR_EINVAL, "%s: '%.60s' is not a chat template (want chatml, llama2, llama2-sys, "
                           "llama2-sys-bos, llama2-sys-strip, llama3 or mistral)", where, v);
        if (!(s = fr_strdup(v))) return FR_ENOMEM;
        m->chat_template = s;
        return 0;
    default: rc = fr_parse_int(where, v, 1, 1024, &i64); if (!rc) m->threads = (int32_t)i64; return rc;
    }
}

static int on_key(void *user, const char *section_ignored, const char *key, const char *value) {
    ini_state *st = user;
    if (st->rc) return 0;
    char where[256];
    snprintf(where, sizeof where, "%s:%d: [%.60s] %.60s", st->name, st->line,
             st->section_text ? st->section_text : "", key);
    if (st->section == SEC_NONE) return INI_FAIL(st, FR_EINVAL, "%s:%d: key '%.60s' before any section", st->name,
                                                 st->line, key);
    if (st->section == SEC_MODEL) {
        st->rc = ini_model_key(st, where, key, value);
        return st->rc ? 0 : 1;
    }
    const char *sec = st->section == SEC_SERVER ? "server" : st->section == SEC_SEARCH ? "search" : "memory";
    for (size_t i = 0; i < N_OPTS; i++) {
        if (strcmp(opts[i].section, sec) || strcmp(opts[i].key, key)) continue;
        if ((st->c->ini_seen & (1ull << i)) && opts[i].kind != K_KEYS)
            return INI_FAIL(st, FR_EINVAL, "%s: given twice", where);
        st->c->ini_seen |= 1ull << i;
        st->rc = set_opt(st->c, &opts[i], where, value, SRC_INI, st->base_dir);
        st->c->src_line[i] = st->line;
        return st->rc ? 0 : 1;
    }
    return INI_FAIL(st, FR_EINVAL, "%s: unknown key", where);
}

int fr_serve_config_ini(fr_serve_config *c, const char *text, size_t len, const char *name,
                        const char *base_dir) {
    ini_state st = {.c = c, .text = text, .len = len, .name = name, .base_dir = base_dir};
    int line = ini_parse_stream(read_line, &st, on_key, &st);
    int rc = st.rc;
    if (!rc && line > 0)
        rc = fr_errf(FR_EINVAL, "%s:%d: syntax error (want key = value, [section], or a comment)", name, line);
    if (!rc && line < 0) rc = fr_errf(FR_ENOMEM, "%s: no memory to parse", name);
    for (size_t i = 0; !rc && i < c->n_models; i++)
        if (!c->models[i].path)
            rc = fr_errf(FR_EINVAL, "%s:%d: [model \"%s\"] has no path", name, st.model_line[i], c->models[i].id);
    fr_free(st.section_text);
    fr_free(st.model_seen);
    fr_free(st.model_line);
    return rc;
}

/* ---- files ---- */

static int read_file(const char *path, const char *what, char **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return fr_errf(FR_EIO, "%s %s: %s", what, path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            size_t nc = cap ? cap * 2 : 8192;
            if (nc > (64u << 20)) { fclose(f); fr_free(buf); return fr_errf(FR_EINVAL, "%s %s: larger than 64 MiB", what, path); }
            char *nb = fr_realloc(buf, nc);
            if (!nb) { fr_free(buf); fclose(f); return FR_ENOMEM; }
            buf = nb;
            cap = nc;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) { fr_free(buf); return fr_errf(FR_EIO, "%s %s: read error", what, path); }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}

int fr_serve_config_file(fr_serve_config *c, const char *path) {
    char *text;
    size_t len;
    int rc = read_file(path, "config file", &text, &len);
    if (rc) return rc;
    const char *slash = strrchr(path, '/');
    char *dir = slash ? fr_strndup(path, (size_t)(slash - path) + (slash == path)) : NULL;
    if (slash && !dir) { fr_free(text); return FR_ENOMEM; }
    rc = fr_serve_config_ini(c, text, len, path, dir);
    fr_free(dir);
    fr_free(text);
    if (!rc) rc = set_str(&c->config_path, path);
    return rc;
}

/* ---- environment and flags ---- */

int fr_serve_config_env(fr_serve_config *c, const char *(*getenv_fn)(const char *name)) {
    for (size_t i = 0; i < N_OPTS; i++) {
        const char *v = getenv_fn(opts[i].env);
        if (!v || !*v) continue;
        int rc = set_opt(c, &opts[i], opts[i].env, v, SRC_ENV, NULL);
        if (rc) return rc;
    }
    return 0;
}

/* The option of flag a ("--port" or "--port=8080"); *inline_v gets the
 * part after '='. */
static const opt *find_flag(const char *a, const char **inline_v) {
    const char *eq = strchr(a, '=');
    size_t n = eq ? (size_t)(eq - a) : strlen(a);
    *inline_v = eq ? eq + 1 : NULL;
    for (size_t i = 0; i < N_OPTS; i++)
        if (strlen(opts[i].flag) == n && !strncmp(opts[i].flag, a, n)) return &opts[i];
    return NULL;
}

const char *fr_serve_config_path(int argc, char **argv, const char *(*getenv_fn)(const char *name)) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--config")) { if (i + 1 < argc) path = argv[++i]; }
        else if (!strncmp(argv[i], "--config=", 9)) path = argv[i] + 9;
        else if (find_flag(argv[i], &v) && !v) i++;       /* skip the flag's value */
    }
    if (!path && getenv_fn) {
        path = getenv_fn("FRUGAL_CONFIG");
        if (path && !*path) path = NULL;
    }
    return path;
}

int fr_serve_config_args(fr_serve_config *c, int argc, char **argv, bool *help) {
    *help = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { *help = true; return 0; }
        if (!strcmp(a, "--print-config")) { c->print_config = true; continue; }
        if (!strcmp(a, "--config") || !strncmp(a, "--config=", 9)) {
            if (!strcmp(a, "--config") && ++i >= argc) return fr_errf(FR_EINVAL, "--config needs a file");
            continue;
        }
        const opt *o = find_flag(a, &v);
        if (!o) return fr_errf(FR_EINVAL, "serve: unknown option '%.60s' (try frugal serve --help)", a);
        if (!v) {
            if (i + 1 >= argc) return fr_errf(FR_EINVAL, "%s needs a value (%s)", o->flag, o->arg);
            v = argv[++i];
        }
        int rc = set_opt(c, o, o->flag, v, SRC_FLAG, NULL);
        if (rc) return rc;
    }
    return 0;
}

/* ---- finishing ---- */

static int read_key_file(fr_serve_config *c) {
    char *text;
    size_t len;
    int rc = read_file(c->api_key_file, "API key file", &text, &len);
    if (rc) return rc;
    size_t before = c->n_api_keys;
    int line = 0;
    for (char *p = text; !rc && p < text + len;) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        char *e = nl ? nl : text + len;
        line++;
        char *b = p;
        while (b < e && (*b == ' ' || *b == '\t')) b++;
        char *t = e;
        while (t > b && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\r')) t--;
        if (t > b && *b != '#') {
            char where[300];
            snprintf(where, sizeof where, "%s:%d", c->api_key_file, line);
            rc = add_key(c, where, b, (size_t)(t - b));
        }
        p = e + 1;
    }
    fr_free(text);
    if (!rc && c->n_api_keys == before) rc = fr_errf(FR_EINVAL, "API key file %s has no keys", c->api_key_file);
    return rc;
}

int fr_serve_config_finish(fr_serve_config *c) {
    int rc;
    if (c->api_key_file && (rc = read_key_file(c))) return rc;
    if (c->profile && (rc = apply_profile(c))) return rc;
    if (!c->threads) c->threads = fr_physical_cores();
    if (!(c->mem_warning < c->mem_critical && c->mem_critical < c->mem_emergency))
        return fr_errf(FR_EINVAL, "memory thresholds must rise: warning %g%% < critical %g%% < emergency %g%%",
                       c->mem_warning, c->mem_critical, c->mem_emergency);
    return 0;
}

/* ---- --print-config ---- */

/* ms as the INI writes it. */
static void fmt_dur(char *buf, size_t cap, int64_t ms) {
    if (ms < 0) snprintf(buf, cap, "-1");
    else if (ms && ms % 60000 == 0) snprintf(buf, cap, "%lldm", (long long)(ms / 60000));
    else if (ms && ms % 1000 == 0) snprintf(buf, cap, "%llds", (long long)(ms / 1000));
    else snprintf(buf, cap, "%lldms", (long long)ms);
}

static void fmt_size(char *buf, size_t cap, uint64_t b) {
    static const char units[] = "KMGT";
    int u = -1;
    while (u < 3 && b && b % 1024 == 0) { b /= 1024; u++; }
    if (u < 0) snprintf(buf, cap, "%llu", (unsigned long long)b);
    else snprintf(buf, cap, "%llu%c", (unsigned long long)b, units[u]);
}

void fr_serve_config_print(const fr_serve_config *c, FILE *f) {
    for (size_t i = 0; i < N_OPTS; i++) {
        const opt *o = &opts[i];
        const char *field = (const char *)c + o->off;
        char val[256], src[300];
        switch (o->kind) {
        case K_STR: case K_PATH: case K_PROFILE: {
            const char *str = *(char *const *)field;
            snprintf(val, sizeof val, "%s", str ? str : "(none)");
            if (o->kind == K_PROFILE && str && *c->profile_used && strcmp(str, c->profile_used))
                snprintf(val, sizeof val, "%s -> %s (%s)", str, c->profile_used, c->board);
            break;
        }
        case K_INT: snprintf(val, sizeof val, "%lld", (long long)*(const int64_t *)field); break;
        case K_SIZE: fmt_size(val, sizeof val, *(const uint64_t *)field); break;
        case K_BUDGET:
            if (c->budget_pct > 0) {
                char b[32];
                fmt_size(b, sizeof b, (uint64_t)((double)fr_mem_limit() * c->budget_pct / 100.0) & ~(uint64_t)1048575);
                snprintf(val, sizeof val, "%g%% (%s of %.1f GiB)", c->budget_pct, b,
                         (double)fr_mem_limit() / (double)(1ull << 30));
            } else if (c->budget_bytes) fmt_size(val, sizeof val, c->budget_bytes);
            else snprintf(val, sizeof val, "75%%");
            break;
        case K_DUR: fmt_dur(val, sizeof val, *(const int64_t *)field); break;
        case K_PCT: snprintf(val, sizeof val, "%g", *(const double *)field); break;
        case K_KEYS: snprintf(val, sizeof val, "(%zu key%s)", c->n_api_keys, c->n_api_keys == 1 ? "" : "s"); break;
        case K_LOG: snprintf(val, sizeof val, "%s", level_names[*(const int64_t *)field & 3]); break;
        case K_SYNC: snprintf(val, sizeof val, "%s", *(const bool *)field ? "full" : "normal"); break;
        default: snprintf(val, sizeof val, "?"); break;
        }
        switch (c->src[i]) {
        case SRC_PROFILE: snprintf(src, sizeof src, "profile %s", c->profile_used); break;
        case SRC_INI:
            snprintf(src, sizeof src, "INI %s:%d", c->config_path ? c->config_path : "", (int)c->src_line[i]);
            break;
        case SRC_ENV: snprintf(src, sizeof src, "env %s", o->env); break;
        case SRC_FLAG: snprintf(src, sizeof src, "flag %s", o->flag); break;
        default:
            snprintf(src, sizeof src, "default%s", field == (const char *)&c->threads ? " (physical cores)" : "");
        }
        fprintf(f, "%-16s %-40s %s\n", o->key, val, src);
    }
    if (c->n_models) fprintf(f, "%-16s %-40zu %s\n", "[model] sections", c->n_models, "INI");
}

void fr_serve_config_usage(FILE *f) {
    fprintf(f, "usage: frugal serve [options]\n\n"
               "Settings come from flags, then FRUGAL_* variables, then the INI file, then the board profile\n"
               "(--profile), then defaults.\n\n"
               "  --config FILE (FRUGAL_CONFIG)\n      INI file: [server], [memory], [search], [model \"name\"] sections\n"
               "  --print-config\n      print the effective settings and where each came from, then exit\n");
    for (size_t i = 0; i < N_OPTS; i++)
        fprintf(f, "  %s %s (%s; [%s] %s)\n      %s\n", opts[i].flag, opts[i].arg, opts[i].env, opts[i].section,
                opts[i].key, opts[i].help);
}
