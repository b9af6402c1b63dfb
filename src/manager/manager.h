/*
 * manager.h — which models are loaded: the registry, the memory budget and
 * pressure, the load/evict policy, and reference-counted handles.
 *
 * The operator offers models (every *.gguf of a models directory, plus
 * [model "name"] sections of the INI file).  Nothing is loaded until a
 * request asks for it (or the INI says preload).  Before a load the
 * manager estimates what the model will hold (mapped weights + KV cache
 * for ctx × parallel + scratch) and evicts idle, unpinned models, least
 * recently used first, until it fits the byte budget and --max-loaded; if
 * it cannot fit, the acquire fails with FR_EBUDGET and nothing running is
 * disturbed.  Admission counts each loaded model at max(estimate,
 * measurement) (a model whose pages are not resident yet still reserves
 * its room), each admitted load at its estimate, and the counted heap
 * that no model accounts for.  Concurrent acquires of a model that is
 * loading wait for the one load (single flight).  A model with references
 * (requests in flight) is never evicted.
 *
 * What a "model" is to the manager is a loader's business (fr_loader): the
 * language-model loader opens the GGUF file and starts its scheduler
 * (manager/loader_gguf.c); tests use fake loaders; embedding models bring
 * their own.  The manager only sees estimates, usage and an opaque object.
 *
 * A housekeeping thread unloads models whose keep-alive expired and reads
 * the memory level (cgroup v2, /proc/meminfo, PSI; base/sysinfo.h):
 *   warning   — logged and exported;
 *   critical  — evict idle models, LRU first, until below critical;
 *   emergency — evict every idle model and refuse new loads (FR_EBUDGET,
 *               detail says "memory emergency") until it clears.
 * The level is the used percentage (cgroup memory.current / memory.max
 * when the process has a cgroup limit, else (MemTotal - MemAvailable) /
 * MemTotal) against the thresholds, raised by PSI: "some avg10" >= 10 %
 * makes it at least warning, "full avg10" >= 10 % at least critical.  PSI
 * alone never makes an emergency (stalls say the machine is slow, not
 * that it is out of memory), and at a critical level that PSI alone
 * causes, a pass evicts one model only (avg10 needs time to show the
 * effect).  Pinned models are never evicted, not even at emergency.
 *
 * Locking: one mutex guards the registry and every entry's state; loads
 * and unloads run outside it (the entry is marked loading/unloading), and
 * waiters sleep on a condition variable (two more mutexes only serialise
 * rescans and housekeeping passes).  The loader's callbacks are never
 * called with a lock held.  Every public function is thread-safe.
 */
#ifndef FR_MANAGER_MANAGER_H
#define FR_MANAGER_MANAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fr_manager fr_manager;
typedef struct fr_handle fr_handle;

/* "No keep-alive of its own: take the next one up" — in a model's
 * configuration the server default (--keep-alive), in a request the
 * model's setting, in the manager's record of the last request's value
 * "none yet". */
#define FR_KEEP_ALIVE_INHERIT (-2)

/* What the operator says about one model (INI [model "name"] or the
 * defaults from the command line).  Strings are copied by the manager. */
typedef struct fr_model_cfg {
    const char *id;             /* name requests use */
    const char *path;           /* the GGUF file */
    const char *alias;          /* a second name, or NULL */
    int32_t n_ctx;              /* 0 = the server default (--ctx) */
    int32_t parallel;           /* 0 = the server default (--parallel) */
    int64_t keep_alive_ms;      /* FR_KEEP_ALIVE_INHERIT = the server default; -1 never; 0 at once */
    int32_t threads;            /* 0 = the server default */
    bool pin;                   /* never evicted */
    bool preload;               /* loaded at start */
    const char *chat_template;  /* a template name or Jinja source (fr_chat_detect)
                                   used instead of the file's; NULL: the file's */
} fr_model_cfg;

/* Capabilities (bits). */
enum { FR_CAP_COMPLETION = 1, FR_CAP_CHAT = 2, FR_CAP_EMBEDDING = 4, FR_CAP_RERANK = 8 };

/* A loader's estimate and measurement, in bytes. */
typedef struct fr_usage {
    uint64_t weights_mapped;    /* bytes of the file mapping */
    uint64_t weights_resident;  /* of those, pages in memory now (mincore) */
    uint64_t kv;                /* KV cache */
    uint64_t scratch;           /* every other counted heap byte */
} fr_usage;

typedef struct fr_loader {
    void *ud;
    /* Read the file's header: capabilities (FR_CAP_*) and an estimate
     * (weights_mapped = file bytes that will be mapped; resident = the
     * same; kv and scratch as the load will allocate).  Cheap: no weights
     * are touched.  FR_EFORMAT etc. with a detail. */
    int (*probe)(void *ud, const fr_model_cfg *cfg, unsigned *caps, fr_usage *estimate);
    /* Load: map, allocate, start threads.  *obj is the loader's object. */
    int (*load)(void *ud, const fr_model_cfg *cfg, void **obj);
    /* Unload: stop, free, unmap (the manager calls malloc_trim after). */
    void (*unload)(void *ud, void *obj);
    /* What the loaded object holds now.  May be called from several
     * threads at once, and while requests run on obj. */
    void (*usage)(void *ud, void *obj, fr_usage *u);
    /* Optional (NULL = none): make every request running on obj finish
     * soon ("cancelled"), without freeing anything; handles stay valid.
     * Used by fr_manager_unload(force). */
    void (*cancel)(void *ud, void *obj);
} fr_loader;

typedef struct fr_manager_config {
    const char *models_dir;         /* scanned for *.gguf; NULL = none */
    const fr_model_cfg *models;     /* INI models (copied) */
    size_t n_models;
    fr_model_cfg defaults;          /* n_ctx, parallel, keep_alive_ms (INHERIT = 5 min),
                                       threads */
    uint64_t budget_bytes;          /* 0 = 75% of min(RAM, cgroup limit) */
    int32_t max_loaded;             /* 0 = no count limit */
    double mem_warning, mem_critical, mem_emergency;   /* percent; 0 = 80, 90, 95 */
    int32_t housekeeping_ms;        /* poll period; 0 = 1000 */
    fr_loader loader;
    struct fr_compute *compute;     /* the compute pool to throttle when the SoC
                                       is hot (pressure.c); NULL = none */
} fr_manager_config;

/* Scan the directory, register the INI models, start housekeeping, load
 * preloads (a preload that fails is logged, not fatal; a preloaded model
 * whose section sets no keep_alive keeps -1).  An INI model whose file is
 * missing, or two models with one id (or an alias that is another
 * model's name), is FR_EINVAL naming it; a models directory that cannot
 * be read is FR_EIO.  A directory file whose id is an INI model's name,
 * or that is the file of an INI model, is left to the INI model.
 * FR_ENOMEM. */
int  fr_manager_create(const fr_manager_config *cfg, fr_manager **out);
/* Unload everything (waits for handles to be released), stop the thread. */
void fr_manager_destroy(fr_manager *mg);

/* Rescan the models directory: new files are added, vanished files are
 * removed (unloaded first when idle; kept until idle otherwise: such a
 * model is listed with removed = true, refuses new acquires with
 * FR_ENOENT, and goes when its last handle is released).  A file whose
 * size or mtime changed is probed again (at its next load if it is
 * loaded now).  FR_EIO if the directory cannot be read (the registry is
 * then unchanged), FR_ENOMEM.  Call it from a thread, not from a signal
 * handler. */
int fr_manager_rescan(fr_manager *mg);

/* Get a loaded model, loading it if needed (blocking; single flight).
 * keep_alive_ms: FR_KEEP_ALIVE_INHERIT = keep the model's setting, else the request's
 * keep_alive (applies from the release on).  Errors: FR_ENOENT (unknown
 * id), FR_EBUDGET (cannot fit: too big for the budget, or everything
 * else that would have to go is busy or pinned, or memory emergency;
 * detail says which), FR_EBUSY (a forced unload of it is draining),
 * FR_ESHUTDOWN, or the loader's error (the entry is then "failed" with
 * that message; the next acquire tries again).  A model already loaded
 * is handed out without any I/O, even at memory emergency. */
int  fr_manager_acquire(fr_manager *mg, const char *id, int64_t keep_alive_ms, fr_handle **out);
void fr_manager_release(fr_handle *h);
/* As fr_manager_release, from any thread, including the loader's own
 * (a scheduler's loop): it never unloads in the calling thread nor waits
 * for anything but the manager's lock; an unload the release makes due
 * (keep_alive 0, a vanished file, a forced unload that gave up) runs in
 * the housekeeping thread, woken at once. */
void fr_manager_release_async(fr_handle *h);
void *fr_handle_obj(const fr_handle *h);      /* the loader's object */
const char *fr_handle_id(const fr_handle *h);
unsigned fr_handle_caps(const fr_handle *h);

/* Admission of request memory known before the work (an embeddings
 * reply): would bytes more of counted heap fit the budget now, next to
 * what the models are counted as (the admission rule of loads) and the
 * rest of the counted heap?  Nothing is evicted for it and nothing is
 * reserved: the caller allocates what it asked for at once (fr_malloc),
 * and from then on the heap counts it.  0, or FR_EBUDGET with a detail
 * "<what> needs N MiB; the memory budget is ..." (counted as a budget
 * shed).  FR_EINVAL for NULL arguments. */
int fr_manager_admit_bytes(fr_manager *mg, uint64_t bytes, const char *what);

/* Load without a request (POST /v1/models/{id}/load): as acquire +
 * release, optionally pinning (until fr_manager_unload) and setting the
 * keep-alive. */
int fr_manager_load(fr_manager *mg, const char *id, int64_t keep_alive_ms, bool pin);

/* How long a forced unload waits for the handles of a model after
 * cancelling its requests (ms).  Requests end within a step of the cancel
 * and give their handles back then; what still holds the model after this
 * is not ending soon (a client that does not read its reply). */
#define FR_FORCE_UNLOAD_WAIT_MS 5000

/* Unload now (pinned or not; a pin from fr_manager_load is dropped).
 * Returns 0 at once when the model is not loaded; waits for a load in
 * progress first.  FR_ENOENT; FR_ECONFLICT when it has references and not
 * force.  With force: the model stops taking new references at once
 * (acquires of it fail with FR_EBUSY until it is unloaded; after that they
 * load it again as usual), loader.cancel (if any) is asked to end its
 * requests, the call waits up to FR_FORCE_UNLOAD_WAIT_MS for every handle
 * to be released, then unloads.  If handles remain after that wait, the
 * model is handed out again at once, is unloaded when its last handle is
 * released, and the call fails with FR_ECONFLICT (the detail says so).
 * Handles are never invalidated under their holders; the caller must not
 * hold a handle of that model itself. */
int fr_manager_unload(fr_manager *mg, const char *id, bool force);

/* Unload every idle (no handles), unpinned model; *freed = the bytes they
 * were counted as (max of estimate and measurement).  The ids unloaded
 * are written to ids (fr_malloc'd array of fr_malloc'd strings; free with
 * fr_manager_free_ids).  ids, n_ids and freed may be NULL. */
int  fr_manager_unload_idle(fr_manager *mg, char ***ids, size_t *n_ids, uint64_t *freed);
void fr_manager_free_ids(char **ids, size_t n);

/* Call fn for every loaded model with its id and the loader's object,
 * which stay valid during the call (the model cannot be unloaded then).
 * fn runs without the manager's lock and must not call back into the
 * manager in a way that waits for this model's unload.  For metrics and
 * for cancelling every request at shutdown. */
void fr_manager_visit(fr_manager *mg, void (*fn)(void *ud, const char *id, void *obj), void *ud);

/* Ask every loaded model to end its requests (loader.cancel): the
 * server's drain timeout.  Models stay loaded. */
void fr_manager_cancel_all(fr_manager *mg);

/* ---- reports ---- */

enum fr_model_state { FR_MS_UNLOADED, FR_MS_LOADING, FR_MS_LOADED, FR_MS_UNLOADING, FR_MS_FAILED };
const char *fr_model_state_name(int state);  /* "unloaded", "loading", ... */

typedef struct fr_model_info {
    char id[128];
    char alias[128];            /* "" when none */
    char path[512];
    int state;
    char error[256];            /* when failed */
    unsigned caps;
    uint64_t file_bytes;
    uint64_t estimated_bytes;   /* what a load is expected to hold */
    fr_usage usage;             /* measured, when loaded */
    bool pinned;
    int32_t in_flight;          /* handles held */
    int32_t waiting;            /* acquires waiting for its load or unload */
    double last_used;           /* unix time, 0 = never */
    int64_t keep_alive_ms;      /* effective */
    double created;             /* unix time the file was found (mtime) */
    bool removed;               /* its file vanished; dropped once idle */
} fr_model_info;

/* Every registered model, sorted by id: *out is fr_malloc'd. */
int fr_manager_list(fr_manager *mg, fr_model_info **out, size_t *n);
/* One model by id or alias: FR_ENOENT. */
int fr_manager_get(fr_manager *mg, const char *id, fr_model_info *out);

/* Would id fit now (a fresh memory reading; the admission rule of
 * acquire)?  Changes nothing.  evict: the ids that would be unloaded, in
 * order, least recently used first (fr_malloc'd; fr_manager_free_ids).
 * Unloads already in progress count as done (reason then says so).
 * estimated_load_ms: estimated bytes / the measured speed of past loads
 * (50 MB/s before the first).  FR_ENOENT, FR_ENOMEM. */
typedef struct fr_plan {
    bool fits;
    bool loaded;                /* already loaded: nothing to do */
    uint64_t estimated_bytes;
    char **evict;
    size_t n_evict;
    double estimated_load_ms;   /* from the measured load speed */
    char reason[256];           /* why it does not fit */
} fr_plan;
int  fr_manager_plan(fr_manager *mg, const char *id, fr_plan *out);
void fr_plan_free(fr_plan *p);

enum fr_mem_level { FR_LEVEL_OK, FR_LEVEL_WARNING, FR_LEVEL_CRITICAL, FR_LEVEL_EMERGENCY };
const char *fr_mem_level_name(int level);    /* "ok", "warning", ... */

/* Eviction and shed reasons (for /v1/memory and /metrics). */
enum fr_evict_reason { FR_EVICT_LRU, FR_EVICT_KEEP_ALIVE, FR_EVICT_CRITICAL,
                       FR_EVICT_EMERGENCY, FR_EVICT_REQUEST, FR_EVICT_RESCAN, FR_EVICT_COUNT };
const char *fr_evict_reason_name(int reason); /* "lru", "keep_alive", "critical", ... */

typedef struct fr_memory_report {
    uint64_t budget_bytes;
    uint64_t used_bytes;        /* Σ loaded (resident weights + kv + scratch)
                                   + the rest of the counted heap */
    uint64_t heap_bytes;        /* fr_mem_in_use() */
    uint64_t sys_total, sys_available, cgroup_limit, cgroup_current;
                                /* 0 = unknown; cgroup_limit 0 = none */
    int64_t cgroup_oom, cgroup_oom_kill;   /* memory.events; -1 = unknown */
    double psi_some_avg10, psi_full_avg10; /* percent; -1 = no PSI */
    double used_pct;            /* of the machine or cgroup, what the levels use */
    double warning, critical, emergency;
    int level;
    uint64_t evictions[FR_EVICT_COUNT];
    uint64_t loads, load_failures, sheds_budget, sheds_emergency;
    double load_ms_total;
    uint64_t load_bytes_total;  /* estimated bytes of those loads */
    int32_t loaded, max_loaded;
    /* the SoC (pressure.c, base/sysinfo.h fr_thermal) */
    bool temp_known;
    double temp_c;              /* the hottest thermal zone */
    double hot_c, cool_c;       /* throttle at hot_c, back to normal at cool_c */
    bool throttled;             /* threads and slots are reduced now */
    int64_t fw_throttled;       /* the Pi firmware's bits; -1 = not read */
    int32_t compute_threads;    /* forward-pass threads now (0: no compute) */
} fr_memory_report;
void fr_manager_memory(fr_manager *mg, fr_memory_report *out);

/* Run one housekeeping pass now (tests; the thread does it every period). */
void fr_manager_housekeep(fr_manager *mg);

#endif
