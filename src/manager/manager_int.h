/*
 * manager_int.h — the layout of the model manager, shared by its files
 * (manager.c: lifecycle, handles, admission, unloads, reports;
 * registry.c: entries, the directory scan and rescan; pressure.c: memory
 * levels and housekeeping) and their tests.  Nothing outside
 * src/manager/ and tests/unit/manager/ should include it.
 *
 * Every field of fr_manager and of an entry below the "guarded by mu"
 * line is read and written only with mg->mu held.  Fields above it are
 * written once before the entry is published (inserted into the
 * registry) and never change afterwards, so they may be read without the
 * lock by anyone who keeps the entry alive (see "lifetime" in manager.c).
 */
#ifndef FR_MANAGER_MANAGER_INT_H
#define FR_MANAGER_MANAGER_INT_H

#include <pthread.h>
#include <sys/types.h>

#include "base/sysinfo.h"
#include "manager/manager.h"

#define FR__KEEP_ALIVE_DEFAULT_MS (5 * 60 * 1000)  /* defaults.keep_alive_ms = INHERIT */
#define FR__LOAD_BYTES_PER_MS     50000.0          /* 50 MB/s until a load is measured */

/* PSI rule (percent of the last 10 s): see pressure.c. */
#define FR__PSI_SOME_WARNING  10.0
#define FR__PSI_FULL_CRITICAL 10.0

/* Thermal rule (degrees Celsius): see pressure.c. */
#define FR__THERMAL_MARGIN_C 5.0    /* throttle this far below the passive trip */
#define FR__THERMAL_HOT_C    80.0   /* without a passive trip point */
#define FR__THERMAL_HYST_C   5.0    /* back to normal this far below that */
#define FR__FW_THROTTLED_NOW 0xcu   /* get_throttled: throttled | soft temp limit */

typedef struct fr__entry fr__entry;

struct fr__entry {
    /* ---- immutable after publication ---- */
    char *id;                   /* owned */
    char *alias;                /* owned, or NULL */
    char *chat_template;        /* owned, or NULL (cfg.chat_template) */
    char *path;                 /* owned */
    fr_model_cfg cfg;           /* resolved against the defaults; its strings
                                   point at id/alias/path above */
    bool from_ini;              /* an INI model (rescan never removes it) */

    /* ---- guarded by mu ---- */
    int state;                  /* FR_MS_* */
    char error[256];            /* why the last load failed (FR_MS_FAILED) */
    bool probed;                /* caps and estimate are valid */
    unsigned caps;
    fr_usage estimate;          /* from loader.probe */
    uint64_t file_bytes;
    double created;             /* file mtime, unix seconds */
    dev_t dev;                  /* the file, to recognise it under two names */
    ino_t ino;
    void *obj;                  /* the loader's object while LOADED/UNLOADING */
    fr_usage usage;             /* last measurement (loader.usage) */
    int32_t refs;               /* handles held */
    int32_t users;              /* threads inside acquire/unload that keep
                                   this entry across an unlock */
    int32_t waiting;            /* of those, how many sleep on a load/unload */
    int32_t measuring;          /* threads calling loader.usage on obj right
                                   now (obj must stay until they are done) */
    bool pin_runtime;           /* pinned by fr_manager_load(pin = true) */
    bool removed;               /* its file vanished: no new acquires; dropped
                                   once idle and unloaded */
    bool admitted;              /* LOADING and counted in the budget */
    bool claimed;               /* UNLOADING to make room for an admitted
                                   load (that load counts its bytes) */
    bool draining;              /* UNLOADING by a forced unload that waits
                                   for its handles to be released */
    bool unload_idle;           /* a forced unload gave up waiting: unload
                                   when the last handle goes */
    bool chosen;                /* scratch flag of the admission planner */
    fr__entry *vnext;           /* scratch list of victims */
    int unload_reason;          /* FR_EVICT_*, or -1 (shutdown) */
    uint64_t load_seq;          /* loads started (single-flight generation) */
    uint64_t done_seq;          /* the last load attempt that finished ... */
    int done_rc;                /* ... and its outcome ... */
    char done_msg[256];         /* ... and detail, for waiters */
    uint64_t tick;              /* LRU clock: mg->tick at the last acquire/release */
    double last_used;           /* unix seconds, 0 = never */
    uint64_t expires_ns;        /* fr_now_ns() time to unload when idle; 0 = never */
    int64_t keep_alive_now;     /* the keep-alive that set expires_ns (INHERIT: none yet) */
};

struct fr_manager {
    /* ---- immutable after create ---- */
    fr_loader loader;
    char *models_dir;           /* owned, or NULL */
    fr_model_cfg defaults;      /* resolved (keep_alive_ms never INHERIT) */
    uint64_t budget;
    int32_t max_loaded;
    double warning, critical, emergency;
    int32_t housekeeping_ms;

    pthread_mutex_t rescan_mu;  /* one registry scan at a time (before mu) */
    pthread_mutex_t hk_mu;      /* one housekeeping pass at a time (before mu) */
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* any state, refs or measuring change */
    pthread_cond_t hk_cv;       /* wakes the housekeeping thread (stop, hk_now) */
    pthread_t thread;
    bool thread_started;

    /* ---- guarded by mu ---- */
    fr__entry **entries;        /* [n_entries], sorted by id */
    size_t n_entries, cap_entries;
    bool stopping;
    bool hk_now;                /* run a housekeeping pass now (an unload that
                                   fr_manager_release_async left to it) */
    uint64_t tick;
    fr_mem_status st;           /* the last reading */
    double used_pct;
    int level;                  /* FR_LEVEL_* of that reading */
    int level_bytes;            /* the part of level that bytes alone give */
    int64_t oom_kill_seen;      /* cgroup oom_kill count at the last reading */
    uint64_t evictions[FR_EVICT_COUNT];
    uint64_t loads, load_failures, sheds_budget, sheds_emergency;
    double load_ms_total;
    uint64_t load_bytes_total;
    fr_thermal thermal;         /* the last reading */
    bool hot;                   /* throttling now */
    double hot_c, cool_c;       /* of that reading's trip point */
    struct fr_compute *compute; /* immutable; NULL = nothing to throttle */
    int threads_max;            /* the pool's size */
    int32_t slots_hot;          /* slot cap while hot */
};

/* ---- manager.c ---- */

/* Bytes an entry is counted as: estimate or measurement, whichever is
 * larger. */
uint64_t fr__manager_usage_total(const fr_usage *u);
uint64_t fr__manager_entry_cost(const fr__entry *e);

/* Unload the victims listed through vnext (each already UNLOADING with
 * its unload_reason set), in order.  Called and returns with mu held;
 * drops it around each loader.unload.  Logs and counts each. */
void fr__manager_unload_list(fr_manager *mg, fr__entry *victims);

/* Mark e (LOADED, refs == 0) UNLOADING for reason and push it on *list. */
void fr__manager_mark_unload(fr__entry *e, int reason, fr__entry **list);

/* The idle, unpinned, loaded entry used least recently that is not
 * chosen yet, or NULL.  mu held. */
fr__entry *fr__manager_lru_idle(fr_manager *mg);

/* Measure every loaded entry (loader.usage, outside mu).  mu not held. */
void fr__manager_refresh_usage(fr_manager *mg);

/* ---- registry.c ---- */

/* A new entry for one model (strings copied, cfg resolved against
 * mg->defaults), not yet published.  FR_ENOMEM. */
int  fr__entry_create(fr_manager *mg, const fr_model_cfg *cfg, bool from_ini, fr__entry **out);
void fr__entry_free(fr__entry *e);

/* The name of e's file that clients may see: its path relative to the
 * models directory when it lies there, else its base name.  Absolute
 * paths of the server's disk stay in its log, out of HTTP replies. */
const char *fr__entry_file_name(const fr_manager *mg, const fr__entry *e);
/* msg = "model '<id>': <detail>" with every occurrence of e's path in
 * detail replaced by fr__entry_file_name (a path cut off at the end of
 * detail is dropped).  For the messages that reach clients (a failed
 * probe or load in GET /v1/models and in the acquire's error). */
void fr__entry_message(const fr_manager *mg, const fr__entry *e, const char *detail, char *msg,
                       size_t cap);

/* Probe e's file (outside mu: e not yet published, or e LOADING).
 * Fills caps/estimate; on failure writes the detail to msg
 * (fr__entry_message: no absolute path). */
int fr__entry_probe(fr_manager *mg, fr__entry *e, unsigned *caps, fr_usage *est,
                    char *msg, size_t cap);

/* The published entry named id (or alias), removed ones included; NULL. */
fr__entry *fr__registry_find(fr_manager *mg, const char *id);

/* Insert into the sorted registry; the caller made room with
 * fr__registry_reserve.  mu held. */
void fr__registry_insert(fr_manager *mg, fr__entry *e);
int  fr__registry_reserve(fr_manager *mg, size_t more);

/* Free every removed entry that nobody uses any more.  mu held. */
void fr__registry_sweep(fr_manager *mg);

/* Scan mg->models_dir (create and fr_manager_rescan). */
int fr__registry_scan(fr_manager *mg);

/* ---- pressure.c ---- */

/* Store a reading taken outside mu, compute the level, log transitions.
 * mu held. */
void fr__pressure_apply_status(fr_manager *mg, const fr_mem_status *st);

/* Take a reading and apply it.  mu not held. */
void fr__pressure_read_status(fr_manager *mg);

/* Store a thermal reading, decide hot or not (hysteresis), and throttle
 * or restore the compute pool on a change.  mu held. */
void fr__thermal_apply(fr_manager *mg, const fr_thermal *t);

/* Take a thermal reading and apply it.  mu not held. */
void fr__thermal_read(fr_manager *mg);

/* The housekeeping thread's body. */
void *fr__pressure_housekeeping_main(void *arg);

#endif
