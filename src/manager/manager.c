/*
 * manager.c — the model manager's lifecycle, handles, admission, unloads
 * and reports (contract: manager.h; the registry scan is registry.c, the
 * memory levels and housekeeping are pressure.c; layouts: manager_int.h).
 *
 * Structures.  The registry is an array of entries sorted by id, one per
 * model the operator offered.  Each entry is a small state machine:
 *
 *     UNLOADED/FAILED --acquire--> LOADING --ok--> LOADED --evict--> UNLOADING
 *           ^                        |  |                               |
 *           |        budget refusal  |  +--load error--> FAILED         |
 *           +------------------------+<------------------------------- -+
 *
 * Only the thread that moved an entry into LOADING moves it out again, and
 * likewise for UNLOADING; everybody else who needs the entry in another
 * state sleeps on mg->cv, which is broadcast on every change of a state,
 * a reference count or a measuring count.
 *
 * Invariants (with mu held):
 *   - obj != NULL only in LOADED and UNLOADING; refs > 0 only in LOADED
 *     and in UNLOADING while a forced unload drains;
 *   - the loader's unload never runs while refs > 0 or measuring > 0;
 *   - an entry is freed only by fr__registry_sweep (removed, and no refs, users,
 *     measuring, load or unload) and by destroy, so a thread that counted
 *     itself in e->users, holds a handle, or owns e's LOADING/UNLOADING
 *     may use e across an unlock;
 *   - the loader's callbacks are never called with mu held.
 *
 * Locking.  mu guards the registry and every field below "guarded by mu"
 * in manager_int.h.  rescan_mu serialises registry scans and hk_mu
 * housekeeping passes; both are taken before mu, never after.  Handles
 * carry copies of obj and caps, so fr_handle_* read no shared state.
 *
 * Admission (plan_room).  A load needs estimate = weights + KV + scratch
 * (loader.probe).  Already counted: each LOADED model at max(estimate,
 * measurement), each admitted LOADING model at its estimate, each model
 * being unloaded for another reason than making room (keep-alive, request,
 * pressure, a forced drain: its bytes are still there) at its cost, and
 * the counted heap that no model accounts for.  Unloads that make room for
 * an admitted load are not counted: that load counts its own estimate, and
 * starts only after they finish.  If the new model does not fit the
 * budget, or --max-loaded would be exceeded, the planner takes idle,
 * unpinned LOADED models, least recently used first, until it does.  The
 * victims are marked UNLOADING under the lock, unloaded outside it, then
 * the model is loaded outside it.  If it cannot fit, nothing is marked:
 * FR_EBUDGET with a detail naming what is in the way.  If unloads for
 * other reasons are in progress and the model does not fit without
 * evicting, the acquire waits for them first rather than evict more than
 * needed.  At memory emergency, new loads are refused; loaded models are
 * still handed out.
 *
 * Keep-alive.  When the last handle goes, the model's idle timer starts
 * with the keep-alive of that release (the request's, else the model's):
 * 0 unloads it at once (in the releasing thread), -1 never, n > 0 makes
 * it eligible for the housekeeping pass n ms later.  Pinned models never
 * expire and are never evicted (not even at emergency: pins are the
 * operator's word, and new loads are refused instead).
 *
 * Forced unload.  fr_manager_unload(force) of a model with handles moves
 * it to UNLOADING at once and marks it draining, asks the loader to
 * cancel its work (loader.cancel, when the loader has one: the requests
 * finish "cancelled", the handles stay valid), waits until every handle
 * is released, then unloads.  Without loader.cancel it waits for the
 * requests to finish by themselves.  Handles are never invalidated under
 * their holders.  While it drains, acquires of that model fail at once
 * with FR_EBUSY (503, retry) instead of waiting: the drain waits for
 * handle holders, and a holder that waited for the drain would never
 * release.  For the same reason admission counts a draining model as
 * held and never waits for it.  The wait is bounded
 * (FR_FORCE_UNLOAD_WAIT_MS): a holder that has not let go by then is not
 * ending by itself soon, so the model goes back to LOADED (acquires work
 * again), is flagged unload_idle, and is unloaded by whoever releases its
 * last handle (or by housekeeping); the call fails with FR_ECONFLICT
 * saying so.  Language-model requests give their handle back when their
 * generation ends, not when their client has read the answer (gen.c,
 * fr_manager_release_async), so a stream nobody reads does not hold a
 * model past the cancel.
 *
 * Releases from a loader's own threads (fr_manager_release_async) never
 * unload in that thread (the unload would join it): an unload the release
 * makes due is left to the housekeeping thread, woken at once.
 *
 * No deadlock: every wait in acquire is for a load or an unload that is
 * running in some thread and ends without anyone releasing a handle.
 */
#include "manager/manager_int.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "sched/sched.h"

struct fr_handle {
    fr_manager *mg;
    fr__entry *e;
    void *obj;              /* copies: fixed while the handle is held */
    unsigned caps;
    int64_t keep_alive_ms;  /* the request's, or FR_KEEP_ALIVE_INHERIT */
};

/* ---- names ---- */

const char *fr_model_state_name(int state) {
    static const char *names[] = {"unloaded", "loading", "loaded", "unloading", "failed"};
    return state >= 0 && state <= FR_MS_FAILED ? names[state] : "unknown";
}

const char *fr_mem_level_name(int level) {
    static const char *names[] = {"ok", "warning", "critical", "emergency"};
    return level >= 0 && level <= FR_LEVEL_EMERGENCY ? names[level] : "unknown";
}

const char *fr_evict_reason_name(int reason) {
    static const char *names[] = {"lru", "keep_alive", "critical", "emergency", "request", "rescan"};
    return reason >= 0 && reason < FR_EVICT_COUNT ? names[reason] : "shutdown";
}

/* ---- bytes ---- */

static uint64_t sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

uint64_t fr__manager_usage_total(const fr_usage *u) {
    return sat_add(sat_add(u->weights_resident, u->kv), u->scratch);
}

static uint64_t estimate_total(const fr__entry *e) {
    return sat_add(sat_add(e->estimate.weights_mapped, e->estimate.kv), e->estimate.scratch);
}

uint64_t fr__manager_entry_cost(const fr__entry *e) {
    uint64_t est = estimate_total(e);
    if (e->state != FR_MS_LOADED && e->state != FR_MS_UNLOADING) return est;
    uint64_t used = fr__manager_usage_total(&e->usage);
    return used > est ? used : est;
}

/* The counted heap that no model accounts for: fr_mem_in_use minus the
 * KV and scratch of models that hold memory (measured) or are loading
 * (estimated).  mu held. */
static uint64_t heap_rest(const fr_manager *mg) {
    uint64_t heap = fr_mem_in_use(), models = 0;
    for (size_t i = 0; i < mg->n_entries; i++) {
        const fr__entry *e = mg->entries[i];
        if (e->state == FR_MS_LOADED || e->state == FR_MS_UNLOADING)
            models = sat_add(models, sat_add(e->usage.kv, e->usage.scratch));
        else if (e->state == FR_MS_LOADING && e->admitted)
            models = sat_add(models, sat_add(e->estimate.kv, e->estimate.scratch));
    }
    return heap > models ? heap - models : 0;
}

static void fmt_bytes(char *buf, size_t cap, uint64_t b) {
    if (b == UINT64_MAX) snprintf(buf, cap, "unlimited");
    else if (b >= (1ull << 30)) snprintf(buf, cap, "%.2f GiB", (double)b / (double)(1ull << 30));
    else snprintf(buf, cap, "%.1f MiB", (double)b / (double)(1ull << 20));
}

static bool pinned(const fr__entry *e) { return e->cfg.pin || e->pin_runtime; }

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void touch(fr_manager *mg, fr__entry *e) {
    e->tick = ++mg->tick;
    e->last_used = wall_now();
}

/* ---- victims and unloads ---- */

fr__entry *fr__manager_lru_idle(fr_manager *mg) {
    fr__entry *best = NULL;
    for (size_t i = 0; i < mg->n_entries; i++) {
        fr__entry *e = mg->entries[i];
        if (e->state != FR_MS_LOADED || e->refs > 0 || pinned(e) || e->chosen) continue;
        if (!best || e->tick < best->tick) best = e;
    }
    return best;
}

void fr__manager_mark_unload(fr__entry *e, int reason, fr__entry **list) {
    FR_ASSERT(e->state == FR_MS_LOADED && e->refs == 0);
    e->state = FR_MS_UNLOADING;
    e->unload_reason = reason;
    e->chosen = false;
    e->vnext = NULL;
    while (*list) list = &(*list)->vnext;   /* keep the order of marking */
    *list = e;
}

void fr__manager_unload_list(fr_manager *mg, fr__entry *v) {
    while (v) {
        fr__entry *next = v->vnext;
        v->vnext = NULL;
        FR_ASSERT(v->state == FR_MS_UNLOADING);
        while (v->measuring > 0 || v->refs > 0) pthread_cond_wait(&mg->cv, &mg->mu);
        void *obj = v->obj;
        fr_usage u = v->usage;
        uint64_t cost = fr__manager_entry_cost(v);
        int reason = v->unload_reason;
        pthread_mutex_unlock(&mg->mu);

        mg->loader.unload(mg->loader.ud, obj);
        malloc_trim(0);
        char b0[32], b1[32], b2[32], b3[32];
        fmt_bytes(b0, sizeof b0, cost);
        fmt_bytes(b1, sizeof b1, u.weights_resident);
        fmt_bytes(b2, sizeof b2, u.kv);
        fmt_bytes(b3, sizeof b3, u.scratch);
        FR_INFO("unload '%s' (%s): %s released (resident weights %s, kv %s, scratch %s)",
                v->id, fr_evict_reason_name(reason), b0, b1, b2, b3);

        pthread_mutex_lock(&mg->mu);
        v->obj = NULL;
        v->usage = (fr_usage){0};
        v->state = FR_MS_UNLOADED;
        v->claimed = false;
        v->draining = false;
        v->unload_idle = false;
        v->expires_ns = 0;
        v->keep_alive_now = FR_KEEP_ALIVE_INHERIT;
        if (reason >= 0 && reason < FR_EVICT_COUNT) mg->evictions[reason]++;
        pthread_cond_broadcast(&mg->cv);
        v = next;
    }
}

/* ---- admission ---- */

static void clear_chosen(fr__entry *v) {
    for (; v; v = v->vnext) v->chosen = false;
}

/* Append "a (2 in flight), b (pinned)" for the loaded models that keep e
 * from fitting.  mu held. */
static void list_blockers(fr_manager *mg, const fr__entry *e, char *buf, size_t cap) {
    size_t len = strlen(buf);
    int shown = 0;
    for (size_t i = 0; i < mg->n_entries && len + 1 < cap; i++) {
        const fr__entry *x = mg->entries[i];
        if (x == e) continue;
        int n;
        const char *sep = shown ? ", " : "";
        if (x->state == FR_MS_LOADED && x->refs > 0)
            n = snprintf(buf + len, cap - len, "%s%s (%d in flight)", sep, x->id, (int)x->refs);
        else if (x->state == FR_MS_LOADED && pinned(x))
            n = snprintf(buf + len, cap - len, "%s%s (pinned)", sep, x->id);
        else if (x->state == FR_MS_LOADING && x->admitted)
            n = snprintf(buf + len, cap - len, "%s%s (loading)", sep, x->id);
        else if (x->state == FR_MS_UNLOADING && x->draining)
            n = snprintf(buf + len, cap - len, "%s%s (unloading, %d in flight)", sep, x->id,
                         (int)x->refs);
        else if (x->state == FR_MS_UNLOADING)
            n = snprintf(buf + len, cap - len, "%s%s (unloading)", sep, x->id);
        else continue;
        if (n < 0) break;
        len += (size_t)n < cap - len ? (size_t)n : cap - len - 1;
        shown++;
    }
    if (!shown) snprintf(buf + len, cap - len, "the rest of the process's heap");
}

/* Choose the victims that make room for e (not LOADED).  mu held; no
 * allocation.  Returns 0 with *victims (linked by vnext, flagged chosen,
 * LRU first; NULL when it fits as is), or FR_EBUDGET with the reason.
 * Models being unloaded for other reasons than making room: a forced
 * drain counts as held; the others (their unload is running and ends by
 * itself) count as held when count_draining (acquire), as gone otherwise
 * (plan), and *n_draining says how many of them there are. */
static int plan_room(fr_manager *mg, fr__entry *e, bool count_draining, fr__entry **victims,
                     int *n_draining, char *reason, size_t cap) {
    *victims = NULL;
    *n_draining = 0;
    reason[0] = 0;
    uint64_t need = estimate_total(e), budget = mg->budget;
    char nb[32], bb[32], hb[32];
    fmt_bytes(nb, sizeof nb, need);
    fmt_bytes(bb, sizeof bb, budget);
    if (need > budget) {
        snprintf(reason, cap, "model '%s' needs %s, more than the whole memory budget (%s)",
                 e->id, nb, bb);
        return FR_EBUDGET;
    }
    uint64_t held = heap_rest(mg);
    int64_t count = 0;
    for (size_t i = 0; i < mg->n_entries; i++) {
        const fr__entry *x = mg->entries[i];
        if (x == e) continue;
        if (x->state == FR_MS_LOADED) {
            held = sat_add(held, fr__manager_entry_cost(x));
            count++;
        } else if (x->state == FR_MS_LOADING && x->admitted) {
            held = sat_add(held, estimate_total(x));
            count++;
        } else if (x->state == FR_MS_UNLOADING && x->draining) {
            held = sat_add(held, fr__manager_entry_cost(x));
            count++;
        } else if (x->state == FR_MS_UNLOADING && !x->claimed) {
            (*n_draining)++;
            if (count_draining) {
                held = sat_add(held, fr__manager_entry_cost(x));
                count++;
            }
        }
    }
    int64_t max = mg->max_loaded;
    fr__entry **tail = victims;
    while (sat_add(held, need) > budget || (max > 0 && count + 1 > max)) {
        fr__entry *v = fr__manager_lru_idle(mg);
        if (!v) break;
        v->chosen = true;
        v->vnext = NULL;
        *tail = v;
        tail = &v->vnext;
        uint64_t c = fr__manager_entry_cost(v);
        held = held > c ? held - c : 0;
        count--;
    }
    if (sat_add(held, need) <= budget && !(max > 0 && count + 1 > max)) return 0;

    clear_chosen(*victims);
    *victims = NULL;
    int n;
    if (sat_add(held, need) > budget) {
        fmt_bytes(hb, sizeof hb, held);
        n = snprintf(reason, cap, "model '%s' needs %s; budget %s, %s held that cannot be evicted: ",
                     e->id, nb, bb, hb);
    } else {
        n = snprintf(reason, cap, "model '%s': --max-loaded %d reached and no loaded model can be "
                     "evicted: ", e->id, (int)max);
    }
    if (n > 0 && (size_t)n < cap) list_blockers(mg, e, reason, cap);
    return FR_EBUDGET;
}

int fr_manager_admit_bytes(fr_manager *mg, uint64_t bytes, const char *what) {
    if (!mg || !what) return fr_errf(FR_EINVAL, "fr_manager_admit_bytes: NULL argument");
    pthread_mutex_lock(&mg->mu);
    uint64_t held = heap_rest(mg);
    for (size_t i = 0; i < mg->n_entries; i++) {
        const fr__entry *x = mg->entries[i];
        if (x->state == FR_MS_LOADED || x->state == FR_MS_UNLOADING)
            held = sat_add(held, fr__manager_entry_cost(x));
        else if (x->state == FR_MS_LOADING && x->admitted) held = sat_add(held, estimate_total(x));
    }
    int rc = 0;
    if (sat_add(held, bytes) > mg->budget) {
        char nb[32], bb[32], hb[32];
        fmt_bytes(nb, sizeof nb, bytes);
        fmt_bytes(bb, sizeof bb, mg->budget);
        fmt_bytes(hb, sizeof hb, held);
        mg->sheds_budget++;
        rc = fr_errf(FR_EBUDGET, "%s needs %s; the memory budget is %s and %s of it is held "
                     "(models and heap)", what, nb, bb, hb);
    }
    pthread_mutex_unlock(&mg->mu);
    return rc;
}

/* Record the end of a load attempt started with sequence seq: the new
 * state, the outcome for the waiters, and the detail for the caller. */
static int finish_load(fr_manager *mg, fr__entry *e, uint64_t seq, int rc, int state, const char *msg) {
    e->state = state;
    e->admitted = false;
    e->done_seq = seq;
    e->done_rc = rc;
    snprintf(e->done_msg, sizeof e->done_msg, "%s", msg);
    if (state == FR_MS_FAILED) snprintf(e->error, sizeof e->error, "%s", msg);
    pthread_cond_broadcast(&mg->cv);
    return rc < 0 ? fr_errf(rc, "%s", msg) : 0;
}

/* Load e (UNLOADED or FAILED; the caller counted itself in e->users).
 * mu held; dropped while reading the memory and probing, unloading
 * victims and loading.  On success the caller's reference is taken. */
static int load_entry(fr_manager *mg, fr__entry *e) {
    int prev = e->state, rc = 0;
    uint64_t seq = ++e->load_seq;
    char msg[256];
    e->state = FR_MS_LOADING;
    e->admitted = false;

    /* a fresh memory reading for the decision, and the probe if needed */
    bool probe = !e->probed;
    unsigned caps = 0;
    fr_usage est = {0};
    fr_mem_status st;
    pthread_mutex_unlock(&mg->mu);
    fr_mem_status_read(&st);
    if (probe) rc = fr__entry_probe(mg, e, &caps, &est, msg, sizeof msg);
    pthread_mutex_lock(&mg->mu);
    fr__pressure_apply_status(mg, &st);
    if (probe) {
        if (rc < 0) {
            mg->load_failures++;
            FR_INFO("load '%s' failed: %s", e->id, msg);
            return finish_load(mg, e, seq, rc, FR_MS_FAILED, msg);
        }
        e->caps = caps;
        e->estimate = est;
        e->probed = true;
    }

    fr__entry *victims;
    for (;;) {
        if (mg->stopping)
            return finish_load(mg, e, seq, FR_ESHUTDOWN, prev, "the model manager is shutting down");
        if (mg->level >= FR_LEVEL_EMERGENCY) {
            mg->sheds_emergency++;
            snprintf(msg, sizeof msg, "memory emergency: %.1f%% of %s in use (emergency at %.0f%%); "
                     "'%s' is not loaded until it clears", mg->used_pct,
                     mg->st.cgroup && mg->st.cgroup_limit ? "the cgroup limit" : "physical memory",
                     mg->emergency, e->id);
            FR_INFO("load '%s' refused: %s", e->id, msg);
            return finish_load(mg, e, seq, FR_EBUDGET, prev, msg);
        }
        int n_draining;
        rc = plan_room(mg, e, true, &victims, &n_draining, msg, sizeof msg);
        if (n_draining > 0 && (rc < 0 || victims)) {
            /* unloads in progress may make the room: wait for them
             * (they end by themselves) rather than evict more than
             * needed */
            clear_chosen(victims);
            pthread_cond_wait(&mg->cv, &mg->mu);
            continue;
        }
        if (rc < 0) {
            mg->sheds_budget++;
            FR_INFO("load '%s' refused: %s", e->id, msg);
            return finish_load(mg, e, seq, rc, prev, msg);
        }
        break;
    }

    e->admitted = true;
    fr__entry *list = NULL;
    for (fr__entry *v = victims, *next; v; v = next) {
        next = v->vnext;
        v->claimed = true;
        fr__manager_mark_unload(v, FR_EVICT_LRU, &list);
        FR_INFO("evict '%s' (lru) to make room for '%s'", v->id, e->id);
    }
    fr__manager_unload_list(mg, list);

    pthread_mutex_unlock(&mg->mu);
    uint64_t t0 = fr_now_ns();
    void *obj = NULL;
    fr_errclear();
    rc = mg->loader.load(mg->loader.ud, &e->cfg, &obj);
    double ms = (double)(fr_now_ns() - t0) / 1e6;
    fr_usage u = {0};
    if (rc > 0) rc = FR_EINTERNAL;
    if (rc == 0) mg->loader.usage(mg->loader.ud, obj, &u);
    else fr__entry_message(mg, e, *fr_errdetail() ? fr_errdetail() : fr_strerror(rc), msg, sizeof msg);
    pthread_mutex_lock(&mg->mu);

    if (rc < 0) {
        mg->load_failures++;
        FR_INFO("load '%s' failed after %.1f ms: %s", e->id, ms, msg);
        return finish_load(mg, e, seq, rc, FR_MS_FAILED, msg);
    }
    e->obj = obj;
    e->usage = u;
    e->error[0] = 0;
    e->expires_ns = 0;
    e->keep_alive_now = FR_KEEP_ALIVE_INHERIT;
    e->refs++;
    mg->loads++;
    mg->load_ms_total += ms;
    mg->load_bytes_total = sat_add(mg->load_bytes_total, estimate_total(e));
    char b0[32], b1[32], b2[32], b3[32];
    fmt_bytes(b0, sizeof b0, estimate_total(e));
    fmt_bytes(b1, sizeof b1, u.weights_resident);
    fmt_bytes(b2, sizeof b2, u.kv);
    fmt_bytes(b3, sizeof b3, u.scratch);
    FR_INFO("load '%s': %s estimated; resident weights %s, kv %s, scratch %s; %.1f ms",
            e->id, b0, b1, b2, b3, ms);
    return finish_load(mg, e, seq, 0, FR_MS_LOADED, "");
}

/* Get a reference to e, loading it if needed.  mu held; e->users counted. */
static int obtain(fr_manager *mg, fr__entry *e) {
    for (;;) {
        if (e->removed)
            return fr_errf(FR_ENOENT, "model '%s' was removed from the models directory", e->id);
        switch (e->state) {
        case FR_MS_LOADED:
            e->refs++;
            return 0;
        case FR_MS_LOADING: {
            uint64_t seq = e->load_seq;
            e->waiting++;
            while (e->done_seq < seq) pthread_cond_wait(&mg->cv, &mg->mu);
            e->waiting--;
            if (e->done_seq == seq && e->done_rc < 0)
                return fr_errf(e->done_rc, "%s", e->done_msg);   /* the same outcome */
            continue;
        }
        case FR_MS_UNLOADING:
            if (e->draining)
                return fr_errf(FR_EBUSY, "model '%s' is being unloaded (waiting for %d request%s "
                               "to end)", e->id, (int)e->refs, e->refs == 1 ? "" : "s");
            e->waiting++;
            while (e->state == FR_MS_UNLOADING) pthread_cond_wait(&mg->cv, &mg->mu);
            e->waiting--;
            continue;
        default:
            if (mg->stopping) return fr_errf(FR_ESHUTDOWN, "the model manager is shutting down");
            return load_entry(mg, e);
        }
    }
}

/* ---- handles ---- */

int fr_manager_acquire(fr_manager *mg, const char *id, int64_t keep_alive_ms, fr_handle **out) {
    if (out) *out = NULL;
    if (!mg || !id || !out) return fr_errf(FR_EINVAL, "fr_manager_acquire: NULL argument");
    if (keep_alive_ms < FR_KEEP_ALIVE_INHERIT)
        return fr_errf(FR_EINVAL, "model '%s': keep_alive %" PRId64 " ms: must be >= -2", id,
                       keep_alive_ms);
    fr_handle *h = fr_malloc(sizeof *h);
    if (!h) return fr_errf(FR_ENOMEM, "model '%s': out of memory for a handle", id);

    pthread_mutex_lock(&mg->mu);
    int rc;
    fr__entry *e = fr__registry_find(mg, id);
    if (mg->stopping) rc = fr_errf(FR_ESHUTDOWN, "the model manager is shutting down");
    else if (!e) rc = fr_errf(FR_ENOENT, "unknown model '%s'", id);
    else if (e->state == FR_MS_LOADED && !e->removed) {
        e->refs++;                              /* the fast path: no I/O */
        rc = 0;
    } else {
        e->users++;
        rc = obtain(mg, e);
        e->users--;
        pthread_cond_broadcast(&mg->cv);
    }
    if (rc == 0) {
        touch(mg, e);
        *h = (fr_handle){mg, e, e->obj, e->caps, keep_alive_ms};
    } else {
        fr__registry_sweep(mg);
    }
    pthread_mutex_unlock(&mg->mu);
    if (rc < 0) {
        fr_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

/* Drop h.  An unload the release makes due (keep-alive 0, a vanished
 * file, a forced unload that gave up waiting) runs here, or, when defer,
 * in the housekeeping thread, woken at once. */
static void release(fr_handle *h, bool defer) {
    fr_manager *mg = h->mg;
    fr__entry *e = h->e;
    fr__entry *list = NULL;
    pthread_mutex_lock(&mg->mu);
    FR_ASSERT(e->refs > 0);
    e->refs--;
    touch(mg, e);
    if (e->refs == 0) {
        pthread_cond_broadcast(&mg->cv);
        if (e->state == FR_MS_LOADED) {
            int64_t ka = h->keep_alive_ms != FR_KEEP_ALIVE_INHERIT ? h->keep_alive_ms : e->cfg.keep_alive_ms;
            const int64_t max_ms = INT64_C(1000000000000);   /* 31 years: "never" */
            e->keep_alive_now = ka;
            e->expires_ns = ka > 0 && ka < max_ms ? fr_now_ns() + (uint64_t)ka * 1000000u : 0;
            int reason = -1;
            if (e->removed) reason = FR_EVICT_RESCAN;
            else if (e->unload_idle) reason = FR_EVICT_REQUEST;
            else if (ka == 0 && !pinned(e) && !mg->stopping) reason = FR_EVICT_KEEP_ALIVE;
            if (reason >= 0 && defer) {
                if (reason == FR_EVICT_KEEP_ALIVE) e->expires_ns = fr_now_ns();   /* due now */
                mg->hk_now = true;
                pthread_cond_signal(&mg->hk_cv);
            } else if (reason >= 0) {
                fr__manager_mark_unload(e, reason, &list);
            }
        }
    }
    fr__manager_unload_list(mg, list);
    fr__registry_sweep(mg);
    pthread_mutex_unlock(&mg->mu);
    fr_free(h);
}

void fr_manager_release(fr_handle *h) {
    if (h) release(h, false);
}

void fr_manager_release_async(fr_handle *h) {
    if (h) release(h, true);
}

void *fr_handle_obj(const fr_handle *h) { return h ? h->obj : NULL; }
const char *fr_handle_id(const fr_handle *h) { return h ? h->e->id : NULL; }
unsigned fr_handle_caps(const fr_handle *h) { return h ? h->caps : 0; }

int fr_manager_load(fr_manager *mg, const char *id, int64_t keep_alive_ms, bool pin) {
    fr_handle *h;
    int rc = fr_manager_acquire(mg, id, keep_alive_ms, &h);
    if (rc < 0) return rc;
    if (pin) {
        pthread_mutex_lock(&mg->mu);
        h->e->pin_runtime = true;
        pthread_mutex_unlock(&mg->mu);
    }
    fr_manager_release(h);
    return 0;
}

/* ---- unloads on request ---- */

int fr_manager_unload(fr_manager *mg, const char *id, bool force) {
    if (!mg || !id) return fr_errf(FR_EINVAL, "fr_manager_unload: NULL argument");
    pthread_mutex_lock(&mg->mu);
    fr__entry *e = fr__registry_find(mg, id);
    if (!e) {
        pthread_mutex_unlock(&mg->mu);
        return fr_errf(FR_ENOENT, "unknown model '%s'", id);
    }
    if (mg->stopping) {
        pthread_mutex_unlock(&mg->mu);
        return fr_errf(FR_ESHUTDOWN, "the model manager is shutting down");
    }
    int rc = 0;
    e->users++;
    for (bool done = false; !done;) {
        switch (e->state) {
        case FR_MS_LOADING: {
            uint64_t seq = e->load_seq;
            e->waiting++;
            while (e->done_seq < seq) pthread_cond_wait(&mg->cv, &mg->mu);
            e->waiting--;
            break;                              /* look again */
        }
        case FR_MS_UNLOADING:                   /* someone else unloads it */
            e->waiting++;
            while (e->state == FR_MS_UNLOADING) pthread_cond_wait(&mg->cv, &mg->mu);
            e->waiting--;
            done = true;
            break;
        case FR_MS_LOADED: {
            if (e->refs > 0 && !force) {
                rc = fr_errf(FR_ECONFLICT, "model '%s' has %d request%s in flight "
                             "(force unloads it once they are cancelled)",
                             e->id, (int)e->refs, e->refs == 1 ? "" : "s");
                done = true;
                break;
            }
            e->pin_runtime = false;
            int32_t busy = e->refs;
            e->state = FR_MS_UNLOADING;
            e->unload_reason = FR_EVICT_REQUEST;
            e->vnext = NULL;
            if (busy > 0) {
                e->draining = true;
                FR_INFO("unload '%s' (request, force): %d request%s in flight%s", e->id, (int)busy,
                        busy == 1 ? "" : "s", mg->loader.cancel ? ", cancelling" : ", waiting");
                if (mg->loader.cancel) {
                    /* we own the UNLOADING state: obj stays until we unload */
                    void *obj = e->obj;
                    pthread_mutex_unlock(&mg->mu);
                    mg->loader.cancel(mg->loader.ud, obj);
                    pthread_mutex_lock(&mg->mu);
                }
                struct timespec until;
                clock_gettime(CLOCK_REALTIME, &until);      /* mg->cv's clock */
                until.tv_sec += FR_FORCE_UNLOAD_WAIT_MS / 1000;
                until.tv_nsec += (long)(FR_FORCE_UNLOAD_WAIT_MS % 1000) * 1000000L;
                if (until.tv_nsec >= 1000000000L) {
                    until.tv_sec++;
                    until.tv_nsec -= 1000000000L;
                }
                int wrc = 0;
                while (e->refs > 0 && wrc != ETIMEDOUT)
                    wrc = pthread_cond_timedwait(&mg->cv, &mg->mu, &until);
                e->draining = false;
                if (e->refs > 0) {
                    /* what still holds it does not end by itself soon (a
                     * client that does not read what it asked for): give
                     * the model back to the requests that wait for it,
                     * and unload it when it is next idle */
                    e->state = FR_MS_LOADED;
                    e->unload_idle = true;
                    pthread_cond_broadcast(&mg->cv);
                    bool one = e->refs == 1;
                    FR_WARN("unload '%s' (request, force): %d request%s still hold%s it after %d ms; "
                            "it stays loaded until %s", e->id, (int)e->refs, one ? "" : "s",
                            one ? "s" : "", FR_FORCE_UNLOAD_WAIT_MS, one ? "it ends" : "they end");
                    rc = fr_errf(FR_ECONFLICT, "model '%s': %d request%s still hold%s it %d s after "
                                 "the cancel (a client not reading its reply?); it stays loaded and "
                                 "is unloaded as soon as %s", e->id, (int)e->refs, one ? "" : "s",
                                 one ? "s" : "", FR_FORCE_UNLOAD_WAIT_MS / 1000,
                                 one ? "it ends" : "they end");
                    done = true;
                    break;
                }
            }
            fr__manager_unload_list(mg, e);
            done = true;
            break;
        }
        default:                                /* unloaded or failed */
            done = true;
            break;
        }
    }
    e->users--;
    pthread_cond_broadcast(&mg->cv);
    fr__registry_sweep(mg);
    pthread_mutex_unlock(&mg->mu);
    return rc;
}

void fr_manager_free_ids(char **ids, size_t n) {
    if (!ids) return;
    for (size_t i = 0; i < n; i++) fr_free(ids[i]);
    fr_free(ids);
}

int fr_manager_unload_idle(fr_manager *mg, char ***ids, size_t *n_ids, uint64_t *freed) {
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    if (freed) *freed = 0;
    if (!mg) return fr_errf(FR_EINVAL, "fr_manager_unload_idle: NULL manager");
    pthread_mutex_lock(&mg->mu);
    if (mg->stopping) {
        pthread_mutex_unlock(&mg->mu);
        return fr_errf(FR_ESHUTDOWN, "the model manager is shutting down");
    }
    size_t n = 0;
    for (size_t i = 0; i < mg->n_entries; i++) {
        const fr__entry *e = mg->entries[i];
        n += e->state == FR_MS_LOADED && e->refs == 0 && !pinned(e);
    }
    char **arr = NULL;
    if (ids && n) {
        arr = fr_calloc(n, sizeof *arr);
        size_t k = 0;
        for (size_t i = 0; arr && i < mg->n_entries; i++) {
            const fr__entry *e = mg->entries[i];
            if (e->state != FR_MS_LOADED || e->refs > 0 || pinned(e)) continue;
            if (!(arr[k++] = fr_strdup(e->id))) {
                fr_manager_free_ids(arr, k);
                arr = NULL;
            }
        }
        if (!arr) {
            pthread_mutex_unlock(&mg->mu);
            return fr_errf(FR_ENOMEM, "unload idle models: out of memory for the list");
        }
    }
    fr__entry *list = NULL;
    uint64_t bytes = 0;
    for (size_t i = 0; i < mg->n_entries; i++) {
        fr__entry *e = mg->entries[i];
        if (e->state != FR_MS_LOADED || e->refs > 0 || pinned(e)) continue;
        bytes = sat_add(bytes, fr__manager_entry_cost(e));
        fr__manager_mark_unload(e, FR_EVICT_REQUEST, &list);
    }
    fr__manager_unload_list(mg, list);
    fr__registry_sweep(mg);
    pthread_mutex_unlock(&mg->mu);
    if (ids) *ids = arr;
    if (n_ids) *n_ids = n;
    if (freed) *freed = bytes;
    return 0;
}

/* ---- measurements ---- */

void fr__manager_refresh_usage(fr_manager *mg) {
    pthread_mutex_lock(&mg->mu);
    /* by index: an insertion or a sweep between the unlocks may make us
     * skip or repeat one entry, which is harmless */
    for (size_t i = 0; i < mg->n_entries; i++) {
        fr__entry *e = mg->entries[i];
        if (e->state != FR_MS_LOADED) continue;
        e->measuring++;
        void *obj = e->obj;
        pthread_mutex_unlock(&mg->mu);
        fr_usage u = {0};
        mg->loader.usage(mg->loader.ud, obj, &u);
        pthread_mutex_lock(&mg->mu);
        if (e->obj == obj) e->usage = u;
        if (--e->measuring == 0) pthread_cond_broadcast(&mg->cv);
    }
    pthread_mutex_unlock(&mg->mu);
}

void fr_manager_visit(fr_manager *mg, void (*fn)(void *ud, const char *id, void *obj), void *ud) {
    pthread_mutex_lock(&mg->mu);
    for (size_t i = 0; i < mg->n_entries; i++) {   /* by index, as above */
        fr__entry *e = mg->entries[i];
        if (e->state != FR_MS_LOADED) continue;
        e->measuring++;   /* keeps obj (and id) until we are done */
        void *obj = e->obj;
        pthread_mutex_unlock(&mg->mu);
        fn(ud, e->id, obj);
        pthread_mutex_lock(&mg->mu);
        if (--e->measuring == 0) pthread_cond_broadcast(&mg->cv);
    }
    pthread_mutex_unlock(&mg->mu);
}

static void cancel_one(void *ud, const char *id, void *obj) {
    fr_manager *mg = ud;
    (void)id;
    mg->loader.cancel(mg->loader.ud, obj);
}

void fr_manager_cancel_all(fr_manager *mg) {
    if (mg->loader.cancel) fr_manager_visit(mg, cancel_one, mg);
}

/* ---- reports ---- */

static void fill_info(const fr__entry *e, fr_model_info *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", e->id);
    snprintf(out->alias, sizeof out->alias, "%s", e->alias ? e->alias : "");
    snprintf(out->path, sizeof out->path, "%s", e->path);
    out->state = e->state;
    snprintf(out->error, sizeof out->error, "%s", e->state == FR_MS_FAILED ? e->error : "");
    out->caps = e->caps;
    out->file_bytes = e->file_bytes;
    out->estimated_bytes = estimate_total(e);
    if (e->state == FR_MS_LOADED || e->state == FR_MS_UNLOADING) out->usage = e->usage;
    out->pinned = pinned(e);
    out->in_flight = e->refs;
    out->waiting = e->waiting;
    out->last_used = e->last_used;
    out->keep_alive_ms = e->keep_alive_now != FR_KEEP_ALIVE_INHERIT ? e->keep_alive_now : e->cfg.keep_alive_ms;
    out->created = e->created;
    out->removed = e->removed;
}

int fr_manager_list(fr_manager *mg, fr_model_info **out, size_t *n) {
    *out = NULL;
    *n = 0;
    fr__manager_refresh_usage(mg);
    pthread_mutex_lock(&mg->mu);
    fr_model_info *arr = NULL;
    if (mg->n_entries) {
        arr = fr_calloc(mg->n_entries, sizeof *arr);
        if (!arr) {
            pthread_mutex_unlock(&mg->mu);
            return fr_errf(FR_ENOMEM, "list models: out of memory for %zu entries", mg->n_entries);
        }
        for (size_t i = 0; i < mg->n_entries; i++) fill_info(mg->entries[i], &arr[i]);
    }
    *n = mg->n_entries;
    pthread_mutex_unlock(&mg->mu);
    *out = arr;
    return 0;
}

int fr_manager_get(fr_manager *mg, const char *id, fr_model_info *out) {
    if (!id) return fr_errf(FR_EINVAL, "fr_manager_get: NULL id");
    fr__manager_refresh_usage(mg);
    pthread_mutex_lock(&mg->mu);
    fr__entry *e = fr__registry_find(mg, id);
    if (e) fill_info(e, out);
    pthread_mutex_unlock(&mg->mu);
    return e ? 0 : fr_errf(FR_ENOENT, "unknown model '%s'", id);
}

void fr_plan_free(fr_plan *p) {
    if (!p) return;
    fr_manager_free_ids(p->evict, p->n_evict);
    p->evict = NULL;
    p->n_evict = 0;
}

int fr_manager_plan(fr_manager *mg, const char *id, fr_plan *out) {
    memset(out, 0, sizeof *out);
    if (!id) return fr_errf(FR_EINVAL, "fr_manager_plan: NULL id");
    fr__pressure_read_status(mg);
    pthread_mutex_lock(&mg->mu);
    fr__entry *e = fr__registry_find(mg, id);
    if (!e || e->removed) {
        pthread_mutex_unlock(&mg->mu);
        return fr_errf(FR_ENOENT, "unknown model '%s'", id);
    }
    out->estimated_bytes = estimate_total(e);
    double speed = mg->load_ms_total > 0 && mg->load_bytes_total > 0
                       ? (double)mg->load_bytes_total / mg->load_ms_total : FR__LOAD_BYTES_PER_MS;
    out->estimated_load_ms = (double)out->estimated_bytes / speed;
    int rc = 0;
    if (e->state == FR_MS_LOADED) {
        out->loaded = out->fits = true;
        out->estimated_load_ms = 0;
    } else if (e->state == FR_MS_LOADING) {
        out->fits = true;
        snprintf(out->reason, sizeof out->reason, "model '%s' is loading now", e->id);
    } else if (!e->probed) {
        snprintf(out->reason, sizeof out->reason, "%s", e->error[0] ? e->error : "not probed yet");
    } else if (mg->level >= FR_LEVEL_EMERGENCY) {
        snprintf(out->reason, sizeof out->reason, "memory emergency: %.1f%% in use (emergency at "
                 "%.0f%%)", mg->used_pct, mg->emergency);
    } else {
        fr__entry *victims;
        int n_draining;
        out->fits = plan_room(mg, e, false, &victims, &n_draining, out->reason,
                              sizeof out->reason) == 0;
        for (fr__entry *v = victims; v; v = v->vnext) out->n_evict++;
        if (out->n_evict) {
            out->evict = fr_calloc(out->n_evict, sizeof *out->evict);
            size_t k = 0;
            for (fr__entry *v = victims; out->evict && v; v = v->vnext, k++)
                if (!(out->evict[k] = fr_strdup(v->id))) {
                    fr_manager_free_ids(out->evict, k);
                    out->evict = NULL;
                }
            if (!out->evict) {
                out->n_evict = 0;
                rc = fr_errf(FR_ENOMEM, "plan '%s': out of memory for the eviction list", id);
            }
        }
        clear_chosen(victims);
        if (out->fits && n_draining && !out->reason[0])
            snprintf(out->reason, sizeof out->reason, "after %d unload%s in progress", n_draining,
                     n_draining == 1 ? "" : "s");
    }
    pthread_mutex_unlock(&mg->mu);
    if (rc < 0) memset(out, 0, sizeof *out);
    return rc;
}

void fr_manager_memory(fr_manager *mg, fr_memory_report *out) {
    memset(out, 0, sizeof *out);
    fr__manager_refresh_usage(mg);
    fr__pressure_read_status(mg);
    fr__thermal_read(mg);
    pthread_mutex_lock(&mg->mu);
    uint64_t resident = 0, heap_models = 0;
    int32_t loaded = 0;
    for (size_t i = 0; i < mg->n_entries; i++) {
        const fr__entry *e = mg->entries[i];
        if (e->state != FR_MS_LOADED && e->state != FR_MS_UNLOADING) continue;
        resident = sat_add(resident, e->usage.weights_resident);
        heap_models = sat_add(heap_models, sat_add(e->usage.kv, e->usage.scratch));
        loaded += e->state == FR_MS_LOADED;
    }
    out->heap_bytes = fr_mem_in_use();
    /* Σ (resident + kv + scratch) + the heap the models do not account for */
    out->used_bytes = sat_add(resident, heap_models > out->heap_bytes ? heap_models : out->heap_bytes);
    out->budget_bytes = mg->budget;
    out->sys_total = mg->st.total;
    out->sys_available = mg->st.available;
    out->cgroup_limit = mg->st.cgroup_limit;
    out->cgroup_current = mg->st.cgroup ? mg->st.cgroup_current : 0;
    out->cgroup_oom = mg->st.cgroup_oom;
    out->cgroup_oom_kill = mg->st.cgroup_oom_kill;
    out->psi_some_avg10 = mg->st.psi_some_avg10;
    out->psi_full_avg10 = mg->st.psi_full_avg10;
    out->used_pct = mg->used_pct;
    out->warning = mg->warning;
    out->critical = mg->critical;
    out->emergency = mg->emergency;
    out->level = mg->level;
    memcpy(out->evictions, mg->evictions, sizeof out->evictions);
    out->loads = mg->loads;
    out->load_failures = mg->load_failures;
    out->sheds_budget = mg->sheds_budget;
    out->sheds_emergency = mg->sheds_emergency;
    out->load_ms_total = mg->load_ms_total;
    out->load_bytes_total = mg->load_bytes_total;
    out->loaded = loaded;
    out->max_loaded = mg->max_loaded;
    out->temp_known = mg->thermal.temp_known;
    out->temp_c = mg->thermal.temp_c;
    out->hot_c = mg->hot_c;
    out->cool_c = mg->cool_c;
    out->throttled = mg->hot;
    out->fw_throttled = mg->thermal.fw_throttled;
    out->compute_threads = mg->compute ? fr_compute_threads_active(mg->compute) : 0;
    pthread_mutex_unlock(&mg->mu);
}

/* ---- create / destroy ---- */

static int check_cfg_numbers(const char *what, const fr_model_cfg *m) {
    if (m->n_ctx < 0 || m->parallel < 0 || m->threads < 0)
        return fr_errf(FR_EINVAL, "%s: n_ctx %d, parallel %d, threads %d: must be >= 0", what,
                       (int)m->n_ctx, (int)m->parallel, (int)m->threads);
    if (m->keep_alive_ms < FR_KEEP_ALIVE_INHERIT)
        return fr_errf(FR_EINVAL, "%s: keep_alive %" PRId64 " ms: must be >= -2", what, m->keep_alive_ms);
    return 0;
}

/* Does another INI model (before index i) already use this name? */
static const char *name_taken(const fr_model_cfg *models, size_t i, const char *name) {
    for (size_t j = 0; j < i; j++) {
        if (!strcmp(models[j].id, name)) return models[j].id;
        if (models[j].alias && models[j].alias[0] && !strcmp(models[j].alias, name)) return models[j].id;
    }
    return NULL;
}

/* Everything about the configuration that can be checked without
 * allocating. */
static int check_config(const fr_manager_config *cfg) {
    const fr_loader *L = &cfg->loader;
    if (!L->probe || !L->load || !L->unload || !L->usage)
        return fr_errf(FR_EINVAL, "model manager: the loader lacks %s", !L->probe ? "probe" :
                       !L->load ? "load" : !L->unload ? "unload" : "usage");
    if (cfg->max_loaded < 0)
        return fr_errf(FR_EINVAL, "max_loaded %d: must be >= 0", (int)cfg->max_loaded);
    if (cfg->housekeeping_ms < 0)
        return fr_errf(FR_EINVAL, "housekeeping period %d ms: must be >= 0", (int)cfg->housekeeping_ms);
    double w = cfg->mem_warning ? cfg->mem_warning : 80, c = cfg->mem_critical ? cfg->mem_critical : 90,
           em = cfg->mem_emergency ? cfg->mem_emergency : 95;
    if (!(w > 0 && w <= c && c <= em && em <= 100))
        return fr_errf(FR_EINVAL, "memory thresholds %g/%g/%g%%: need 0 < warning <= critical "
                       "<= emergency <= 100", w, c, em);
    int rc = check_cfg_numbers("defaults", &cfg->defaults);
    if (rc < 0) return rc;
    if (cfg->n_models && !cfg->models) return fr_errf(FR_EINVAL, "%zu models but no array", cfg->n_models);
    for (size_t i = 0; i < cfg->n_models; i++) {
        const fr_model_cfg *m = &cfg->models[i];
        if (!m->id || !m->id[0]) return fr_errf(FR_EINVAL, "model #%zu: no id", i + 1);
        if (strlen(m->id) >= sizeof ((fr_model_info *)0)->id)
            return fr_errf(FR_EINVAL, "model '%.40s...': id longer than %zu bytes", m->id,
                           sizeof ((fr_model_info *)0)->id - 1);
        if (m->alias && strlen(m->alias) >= sizeof ((fr_model_info *)0)->alias)
            return fr_errf(FR_EINVAL, "model '%s': alias longer than %zu bytes", m->id,
                           sizeof ((fr_model_info *)0)->alias - 1);
        if (!m->path || !m->path[0]) return fr_errf(FR_EINVAL, "model '%s': no path", m->id);
        if (strlen(m->path) >= sizeof ((fr_model_info *)0)->path)
            return fr_errf(FR_EINVAL, "model '%s': path longer than %zu bytes", m->id,
                           sizeof ((fr_model_info *)0)->path - 1);
        char what[160];
        snprintf(what, sizeof what, "model '%s'", m->id);
        if ((rc = check_cfg_numbers(what, m)) < 0) return rc;
        const char *other = name_taken(cfg->models, i, m->id);
        if (other) return fr_errf(FR_EINVAL, "model id '%s' is used twice (also by model '%s')", m->id, other);
        if (m->alias && m->alias[0] && strcmp(m->alias, m->id) &&
            (other = name_taken(cfg->models, i, m->alias)))
            return fr_errf(FR_EINVAL, "model '%s': alias '%s' is already a name of model '%s'",
                           m->id, m->alias, other);
        struct stat st;
        if (stat(m->path, &st) != 0)
            return fr_errf(FR_EINVAL, "model '%s': file '%s': %s", m->id, m->path, strerror(errno));
        if (!S_ISREG(st.st_mode))
            return fr_errf(FR_EINVAL, "model '%s': '%s' is not a regular file", m->id, m->path);
    }
    return 0;
}

/* Register the INI models (no thread runs yet). */
static int add_ini_models(fr_manager *mg, const fr_manager_config *cfg) {
    int rc = fr__registry_reserve(mg, cfg->n_models);
    if (rc < 0) return rc;
    for (size_t i = 0; i < cfg->n_models; i++) {
        fr__entry *e;
        if ((rc = fr__entry_create(mg, &cfg->models[i], true, &e)) < 0) return rc;
        struct stat st;
        if (stat(e->path, &st) == 0) {
            e->file_bytes = (uint64_t)st.st_size;
            e->created = (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec * 1e-9;
            e->dev = st.st_dev;
            e->ino = st.st_ino;
        }
        char msg[256];
        if (fr__entry_probe(mg, e, &e->caps, &e->estimate, msg, sizeof msg) == 0) {
            e->probed = true;
        } else {
            e->state = FR_MS_FAILED;
            snprintf(e->error, sizeof e->error, "%s", msg);
            FR_WARN("%s", msg);
        }
        pthread_mutex_lock(&mg->mu);
        fr__registry_insert(mg, e);
        pthread_mutex_unlock(&mg->mu);
    }
    return 0;
}

static void free_registry(fr_manager *mg) {
    for (size_t i = 0; i < mg->n_entries; i++) fr__entry_free(mg->entries[i]);
    fr_free(mg->entries);
    mg->entries = NULL;
    mg->n_entries = mg->cap_entries = 0;
}

int fr_manager_create(const fr_manager_config *cfg, fr_manager **out) {
    if (!out) return fr_errf(FR_EINVAL, "fr_manager_create: NULL out");
    *out = NULL;
    if (!cfg) return fr_errf(FR_EINVAL, "fr_manager_create: NULL config");
    int rc = check_config(cfg);
    if (rc < 0) return rc;

    fr_manager *mg = fr_calloc(1, sizeof *mg);
    if (!mg) return fr_errf(FR_ENOMEM, "model manager: out of memory");
    mg->loader = cfg->loader;
    mg->defaults = cfg->defaults;
    mg->defaults.id = mg->defaults.path = mg->defaults.alias = NULL;
    if (mg->defaults.keep_alive_ms == FR_KEEP_ALIVE_INHERIT) mg->defaults.keep_alive_ms = FR__KEEP_ALIVE_DEFAULT_MS;
    mg->max_loaded = cfg->max_loaded;
    mg->warning = cfg->mem_warning ? cfg->mem_warning : 80;
    mg->critical = cfg->mem_critical ? cfg->mem_critical : 90;
    mg->emergency = cfg->mem_emergency ? cfg->mem_emergency : 95;
    mg->housekeeping_ms = cfg->housekeeping_ms ? cfg->housekeeping_ms : 1000;
    mg->compute = cfg->compute;
    mg->threads_max = cfg->compute ? fr_compute_threads(cfg->compute) : 0;
    mg->slots_hot = mg->defaults.parallel / 2 > 0 ? mg->defaults.parallel / 2 : 1;
    mg->thermal.fw_throttled = -1;
    mg->oom_kill_seen = -1;
    mg->st.cgroup_oom = mg->st.cgroup_oom_kill = -1;
    mg->st.psi_some_avg10 = mg->st.psi_full_avg10 = -1;
    mg->budget = cfg->budget_bytes;
    if (!mg->budget) {
        uint64_t limit = fr_mem_limit();
        mg->budget = limit ? limit / 4 * 3 : UINT64_MAX;
        if (!limit) FR_WARN("model manager: the machine's memory size is unknown; no byte budget");
    }

    pthread_condattr_t ca;
    int crc;
    rc = fr_errf(FR_ENOMEM, "model manager: cannot create its locks");
    if (pthread_mutex_init(&mg->rescan_mu, NULL)) goto fail_mem;
    if (pthread_mutex_init(&mg->hk_mu, NULL)) goto fail_rescan_mu;
    if (pthread_mutex_init(&mg->mu, NULL)) goto fail_hk_mu;
    if (pthread_cond_init(&mg->cv, NULL)) goto fail_mu;
    if (pthread_condattr_init(&ca)) goto fail_cv;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    crc = pthread_cond_init(&mg->hk_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (crc) goto fail_cv;

    rc = fr_errf(FR_ENOMEM, "model manager: out of memory");
    if (cfg->models_dir && !(mg->models_dir = fr_strdup(cfg->models_dir))) goto fail_hk_cv;
    if ((rc = add_ini_models(mg, cfg)) < 0) goto fail_registry;
    if ((rc = fr__registry_scan(mg)) < 0) goto fail_registry;
    fr__pressure_read_status(mg);

    if (pthread_create(&mg->thread, NULL, fr__pressure_housekeeping_main, mg)) {
        rc = fr_errf(FR_ENOMEM, "model manager: cannot start the housekeeping thread");
        goto fail_registry;
    }
    mg->thread_started = true;

    char bb[32];
    fmt_bytes(bb, sizeof bb, mg->budget);
    FR_INFO("model manager: %zu models, budget %s, max loaded %d, levels %.0f/%.0f/%.0f%%",
            mg->n_entries, bb, (int)mg->max_loaded, mg->warning, mg->critical, mg->emergency);
    for (size_t i = 0; i < cfg->n_models; i++) {
        if (!cfg->models[i].preload) continue;
        if ((rc = fr_manager_load(mg, cfg->models[i].id, -2, false)) < 0)
            FR_WARN("preload '%s' failed: %s: %s", cfg->models[i].id, fr_strerror(rc), fr_errdetail());
    }
    fr_errclear();
    *out = mg;
    return 0;

fail_registry:
    free_registry(mg);
    fr_free(mg->models_dir);
fail_hk_cv:
    pthread_cond_destroy(&mg->hk_cv);
fail_cv:
    pthread_cond_destroy(&mg->cv);
fail_mu:
    pthread_mutex_destroy(&mg->mu);
fail_hk_mu:
    pthread_mutex_destroy(&mg->hk_mu);
fail_rescan_mu:
    pthread_mutex_destroy(&mg->rescan_mu);
fail_mem:
    fr_free(mg);
    return rc;
}

/* Anything still moving (handles, waiters, loads, unloads, measurements)? */
static bool busy(const fr_manager *mg) {
    for (size_t i = 0; i < mg->n_entries; i++) {
        const fr__entry *e = mg->entries[i];
        if (e->refs || e->users || e->measuring || e->state == FR_MS_LOADING ||
            e->state == FR_MS_UNLOADING)
            return true;
    }
    return false;
}

void fr_manager_destroy(fr_manager *mg) {
    if (!mg) return;
    pthread_mutex_lock(&mg->mu);
    mg->stopping = true;
    pthread_cond_broadcast(&mg->hk_cv);
    pthread_cond_broadcast(&mg->cv);
    pthread_mutex_unlock(&mg->mu);
    if (mg->thread_started) pthread_join(mg->thread, NULL);
    /* a scan or a pass in progress finishes first */
    pthread_mutex_lock(&mg->rescan_mu);
    pthread_mutex_unlock(&mg->rescan_mu);
    pthread_mutex_lock(&mg->hk_mu);
    pthread_mutex_unlock(&mg->hk_mu);

    pthread_mutex_lock(&mg->mu);
    while (busy(mg)) pthread_cond_wait(&mg->cv, &mg->mu);
    fr__entry *list = NULL;
    for (size_t i = 0; i < mg->n_entries; i++)
        if (mg->entries[i]->state == FR_MS_LOADED)
            fr__manager_mark_unload(mg->entries[i], -1, &list);
    fr__manager_unload_list(mg, list);
    pthread_mutex_unlock(&mg->mu);

    free_registry(mg);
    fr_free(mg->models_dir);
    pthread_cond_destroy(&mg->hk_cv);
    pthread_cond_destroy(&mg->cv);
    pthread_mutex_destroy(&mg->mu);
    pthread_mutex_destroy(&mg->hk_mu);
    pthread_mutex_destroy(&mg->rescan_mu);
    fr_free(mg);
}

int fr_manager_rescan(fr_manager *mg) {
    if (!mg) return fr_errf(FR_EINVAL, "fr_manager_rescan: NULL manager");
    return fr__registry_scan(mg);
}
