/*
 * pressure.c — memory levels and the housekeeping pass (layouts and
 * locking: manager_int.h, manager.c).
 *
 * Level.  One reading of base/sysinfo (fr_mem_status_read) gives the used
 * percentage: cgroup memory.current / memory.max when the process has a
 * cgroup limit, else (MemTotal - MemAvailable) / MemTotal; nothing known
 * is 0 %.  Against the thresholds it gives the byte level (ok, warning,
 * critical, emergency).  PSI raises it: "some avg10" >= 10 % (some task
 * stalled on memory a tenth of the time) makes it at least warning, "full
 * avg10" >= 10 % (every task stalled) at least critical.  PSI never makes
 * an emergency by itself: stalls say the machine is slow, not that it is
 * about to run out, and an emergency refuses service.
 *
 * A pass (fr_manager_housekeep; the thread runs one every period, tests
 * call it directly):
 *   1. measure every loaded model (loader.usage) and read the memory;
 *   2. unload idle models whose keep-alive expired, idle models whose
 *      file vanished (rescan), and idle models a forced unload gave up
 *      waiting for;
 *   3. while the level is critical or worse: at emergency (bytes), unload
 *      every idle unpinned model; at critical (bytes), the least recently
 *      used one; read the memory again after each round.  When only PSI
 *      makes it critical, one model per pass: avg10 moves slowly, and
 *      re-reading at once would evict everything for one spike.
 * The loop ends when the level falls below critical or nothing idle is
 * left; busy and pinned models are never touched.  Besides its period, a
 * pass runs at once when fr_manager_release_async left it an unload
 * (mg->hk_now).
 *
 * Level changes are logged once per transition (warning and worse at warn
 * level, the return to ok at info), and so is a new cgroup OOM kill.
 *
 * Temperature.  Every pass (and every fr_manager_memory, so /metrics is
 * current) reads the thermal zones (base/sysinfo.h fr_thermal_read).  The
 * SoC counts as hot from hot_c on: FR__THERMAL_MARGIN_C (5 °C) below the
 * hottest zone's lowest passive trip point, where the kernel's own
 * throttling starts; without one, FR__THERMAL_HOT_C, 80 °C: the Raspberry
 * Pi firmware caps the ARM clock from 80 °C and throttles ARM and GPU
 * from 85 °C (Raspberry Pi documentation, "Frequency management and
 * thermal control"), and the Pi kernels' cpu-thermal zone has no passive
 * trip (only the 110 °C critical one, and fan "active" points on the Pi 5).
 * The firmware saying it throttles or applies its soft temperature limit
 * now (get_throttled bits 0x4, 0x8) is hot too.  It stays hot until the
 * temperature is at most cool_c = hot_c − FR__THERMAL_HYST_C and the
 * firmware bits are clear (hysteresis: no flapping around one degree).
 * While hot, the compute pool runs forward passes on half its threads
 * (at least 1) and each scheduler fills at most half the default slots
 * (at least 1; requests beyond wait in its queue); both come back when it
 * cools.  Both transitions are logged.
 */
#include "manager/manager_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "base/err.h"
#include "base/log.h"
#include "sched/sched.h"

static int byte_level(const fr_manager *mg, double pct) {
    if (pct >= mg->emergency) return FR_LEVEL_EMERGENCY;
    if (pct >= mg->critical) return FR_LEVEL_CRITICAL;
    if (pct >= mg->warning) return FR_LEVEL_WARNING;
    return FR_LEVEL_OK;
}

void fr__pressure_apply_status(fr_manager *mg, const fr_mem_status *st) {
    double pct = 0;
    bool cg = st->cgroup && st->cgroup_limit;
    if (cg) pct = 100.0 * (double)st->cgroup_current / (double)st->cgroup_limit;
    else if (st->meminfo && st->total) pct = 100.0 * (double)(st->total - st->available) / (double)st->total;
    int lb = byte_level(mg, pct), level = lb;
    if (st->psi && st->psi_some_avg10 >= FR__PSI_SOME_WARNING && level < FR_LEVEL_WARNING)
        level = FR_LEVEL_WARNING;
    if (st->psi && st->psi_full_avg10 >= FR__PSI_FULL_CRITICAL && level < FR_LEVEL_CRITICAL)
        level = FR_LEVEL_CRITICAL;
    if (level != mg->level) {
        char psi[64] = "";
        if (st->psi)
            snprintf(psi, sizeof psi, "; psi some %.1f%%, full %.1f%%", st->psi_some_avg10,
                     st->psi_full_avg10);
        fr_log(level > FR_LEVEL_OK ? FR_LOG_WARN : FR_LOG_INFO,
               "memory level %s (was %s): %.1f%% of %s in use (warning %.0f%%, critical %.0f%%, "
               "emergency %.0f%%)%s", fr_mem_level_name(level), fr_mem_level_name(mg->level), pct,
               cg ? "the cgroup limit" : "physical memory", mg->warning, mg->critical,
               mg->emergency, psi);
    }
    if (st->cgroup_oom_kill >= 0) {
        if (mg->oom_kill_seen >= 0 && st->cgroup_oom_kill > mg->oom_kill_seen)
            FR_WARN("the cgroup's OOM killer ran %" PRId64 " time(s) since the last reading",
                    st->cgroup_oom_kill - mg->oom_kill_seen);
        mg->oom_kill_seen = st->cgroup_oom_kill;
    }
    mg->st = *st;
    mg->used_pct = pct;
    mg->level = level;
    mg->level_bytes = lb;
}

void fr__thermal_apply(fr_manager *mg, const fr_thermal *t) {
    mg->hot_c = t->passive_known ? t->passive_c - FR__THERMAL_MARGIN_C : FR__THERMAL_HOT_C;
    mg->cool_c = mg->hot_c - FR__THERMAL_HYST_C;
    bool fw = t->fw_throttled > 0 && (t->fw_throttled & FR__FW_THROTTLED_NOW);
    bool hot = mg->hot;
    if (!hot && ((t->temp_known && t->temp_c >= mg->hot_c) || fw)) hot = true;
    else if (hot && !fw && (!t->temp_known || t->temp_c <= mg->cool_c)) hot = false;
    mg->thermal = *t;
    if (hot == mg->hot) return;
    mg->hot = hot;
    int threads = hot ? (mg->threads_max / 2 > 0 ? mg->threads_max / 2 : 1) : mg->threads_max;
    if (mg->compute) {
        fr_compute_set_threads(mg->compute, threads);
        fr_compute_set_slot_cap(mg->compute, hot ? mg->slots_hot : 0);
    }
    char temp[32] = "unknown";
    if (t->temp_known) snprintf(temp, sizeof temp, "%.1f °C", t->temp_c);
    if (hot)
        FR_WARN("SoC hot (%s, hot from %.1f °C%s): %d compute thread%s, at most %d slot%s per model "
                "until %.1f °C", temp, mg->hot_c, fw ? ", the firmware throttles" : "", threads,
                threads == 1 ? "" : "s", (int)mg->slots_hot, mg->slots_hot == 1 ? "" : "s", mg->cool_c);
    else
        FR_INFO("SoC cooled (%s <= %.1f °C): %d compute threads, all slots again", temp, mg->cool_c, threads);
}

void fr__thermal_read(fr_manager *mg) {
    fr_thermal t;
    fr_thermal_read(&t);
    pthread_mutex_lock(&mg->mu);
    fr__thermal_apply(mg, &t);
    pthread_mutex_unlock(&mg->mu);
}

void fr__pressure_read_status(fr_manager *mg) {
    fr_mem_status st;
    fr_mem_status_read(&st);
    pthread_mutex_lock(&mg->mu);
    fr__pressure_apply_status(mg, &st);
    pthread_mutex_unlock(&mg->mu);
}

/* Step 3 of a pass.  mu held; dropped to unload and to read. */
static void relieve(fr_manager *mg) {
    bool psi_round_done = false;
    while (mg->level >= FR_LEVEL_CRITICAL && !mg->stopping) {
        fr__entry *list = NULL;
        if (mg->level_bytes >= FR_LEVEL_EMERGENCY) {
            for (fr__entry *v; (v = fr__manager_lru_idle(mg));) fr__manager_mark_unload(v, FR_EVICT_EMERGENCY, &list);
        } else if (mg->level_bytes >= FR_LEVEL_CRITICAL || !psi_round_done) {
            fr__entry *v = fr__manager_lru_idle(mg);
            if (v) fr__manager_mark_unload(v, FR_EVICT_CRITICAL, &list);
            psi_round_done = mg->level_bytes < FR_LEVEL_CRITICAL;
        }
        if (!list) {
            FR_DEBUG("memory %s and no idle model to evict", fr_mem_level_name(mg->level));
            return;
        }
        fr__manager_unload_list(mg, list);
        pthread_mutex_unlock(&mg->mu);
        fr__pressure_read_status(mg);
        pthread_mutex_lock(&mg->mu);
    }
}

void fr_manager_housekeep(fr_manager *mg) {
    pthread_mutex_lock(&mg->hk_mu);
    fr__manager_refresh_usage(mg);
    fr__pressure_read_status(mg);
    fr__thermal_read(mg);
    pthread_mutex_lock(&mg->mu);
    if (!mg->stopping) {
        uint64_t now = fr_now_ns();
        fr__entry *list = NULL;
        for (size_t i = 0; i < mg->n_entries; i++) {
            fr__entry *e = mg->entries[i];
            if (e->state != FR_MS_LOADED || e->refs > 0) continue;
            if (e->removed) fr__manager_mark_unload(e, FR_EVICT_RESCAN, &list);
            else if (e->unload_idle) fr__manager_mark_unload(e, FR_EVICT_REQUEST, &list);
            else if (!e->cfg.pin && !e->pin_runtime && e->expires_ns && now >= e->expires_ns)
                fr__manager_mark_unload(e, FR_EVICT_KEEP_ALIVE, &list);
        }
        fr__manager_unload_list(mg, list);
        relieve(mg);
        fr__registry_sweep(mg);
    }
    pthread_mutex_unlock(&mg->mu);
    pthread_mutex_unlock(&mg->hk_mu);
}

void *fr__pressure_housekeeping_main(void *arg) {
    fr_manager *mg = arg;
    pthread_mutex_lock(&mg->mu);
    while (!mg->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += mg->housekeeping_ms / 1000;
        ts.tv_nsec += (long)(mg->housekeeping_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        int rc = 0;
        while (!mg->stopping && !mg->hk_now && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&mg->hk_cv, &mg->mu, &ts);
        if (mg->stopping) break;
        mg->hk_now = false;
        pthread_mutex_unlock(&mg->mu);
        fr_manager_housekeep(mg);
        pthread_mutex_lock(&mg->mu);
    }
    pthread_mutex_unlock(&mg->mu);
    return NULL;
}
