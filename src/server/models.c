/*
 * models.c — the models and memory routes (API.md "Models and memory"),
 * and the collector that puts the manager's and schedulers' state into
 * /metrics.
 *
 *   GET  /v1/models[?reload=1]      OpenAI's list, each entry with frugal's fields
 *   GET  /v1/models/{id}
 *   POST /v1/models/{id}/load       {"keep_alive"?, "pin"?}
 *   POST /v1/models/{id}/unload     {"force"?}
 *   POST /v1/models/plan            {"model"}
 *   GET  /v1/memory, /memory
 *   POST /v1/memory/unload, /memory/unload
 *
 * Everything here reads reports the manager makes under its lock
 * (fr_model_info, fr_memory_report); nothing holds a model.  The other
 * handlers get theirs from fr__models_acquire, which answers the 404 of
 * an unknown model and the 400 of one that does not do what they do.
 */
#include <string.h>

#include "base/err.h"
#include "base/lru.h"
#include "base/mem.h"
#include "manager/loader_gguf.h"
#include "server/server_int.h"

static json_t *caps_json(unsigned caps) {
    json_t *a = json_array();
    if (caps & FR_CAP_COMPLETION) json_array_append_new(a, json_string("completion"));
    if (caps & FR_CAP_CHAT) json_array_append_new(a, json_string("chat"));
    if (caps & FR_CAP_EMBEDDING) json_array_append_new(a, json_string("embedding"));
    if (caps & FR_CAP_RERANK) json_array_append_new(a, json_string("rerank"));
    return a;
}

static json_t *keep_alive_json(int64_t ms) {
    if (ms < 0) return json_integer(-1);
    char buf[32];
    if (ms % 60000 == 0) snprintf(buf, sizeof buf, "%lldm", (long long)(ms / 60000));
    else if (ms % 1000 == 0) snprintf(buf, sizeof buf, "%llds", (long long)(ms / 1000));
    else snprintf(buf, sizeof buf, "%lldms", (long long)ms);
    return json_string(buf);
}

static json_t *entry_json(const fr_model_info *m) {
    json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:s, s:I, s:I, s:I, s:b, s:i, s:o, s:o, s:o}",
                          "id", m->id, "object", "model", "created", (json_int_t)m->created,
                          "owned_by", "frugal", "state", fr_model_state_name(m->state),
                          "file_bytes", (json_int_t)m->file_bytes, "estimated_bytes",
                          (json_int_t)m->estimated_bytes, "resident_bytes",
                          (json_int_t)(m->usage.weights_resident + m->usage.kv + m->usage.scratch),
                          "pinned", m->pinned, "in_flight", (int)m->in_flight, "last_used",
                          m->last_used > 0 ? json_integer((json_int_t)m->last_used) : json_null(),
                          "keep_alive", keep_alive_json(m->keep_alive_ms), "capabilities",
                          caps_json(m->caps));
    if (o && m->alias[0]) json_object_set_new(o, "alias", json_string(m->alias));
    if (o && m->state == FR_MS_FAILED) json_object_set_new(o, "error", json_string(m->error));
    return o;
}

/* The manager, or a 404 when the server has none (FR_REPLIED). */
static int manager_or_404(fr_req *rq, fr_manager **mg) {
    *mg = fr__req_manager(rq);
    if (!*mg) return fr__reply_error(rq, 404, "model_not_found", "model", "no models are offered");
    return 0;
}

int fr__models_acquire(fr_req *rq, const char *id, int64_t keep_alive_ms, unsigned caps, const char *what,
                       fr_handle **out) {
    *out = NULL;
    fr_manager *mg = fr__req_manager(rq);
    if (!mg) return fr__reply_error(rq, 404, "model_not_found", "model",
                                    "model '%.128s' not found: no models are offered", id);
    fr_handle *h;
    int rc = fr_manager_acquire(mg, id, keep_alive_ms, &h);
    if (rc == FR_ENOENT)
        return fr__reply_error(rq, 404, "model_not_found", "model", "model '%.128s' not found", id);
    if (rc) return fr__reply_err(rq, rc, "model");
    if (!(fr_handle_caps(h) & caps)) {
        fr_manager_release(h);
        return fr__reply_error(rq, 400, "invalid_value", "model", "model '%.128s' does not do %s", id, what);
    }
    *out = h;
    return 0;
}

int fr__h_models(fr_req *rq) {
    fr_manager *mg = fr__req_manager(rq);
    json_t *data = json_array();
    if (mg) {
        const char *reload = fr__req_query(rq, "reload");
        if (reload && strcmp(reload, "0") != 0) {
            int rc = fr_manager_rescan(mg);
            if (rc) {
                json_decref(data);
                return rc;
            }
        }
        fr_model_info *list = NULL;
        size_t n = 0;
        int rc = fr_manager_list(mg, &list, &n);
        if (rc) {
            json_decref(data);
            return rc;
        }
        for (size_t i = 0; i < n; i++) json_array_append_new(data, entry_json(&list[i]));
        fr_free(list);
    }
    return fr__reply_json(rq, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

static int reply_entry(fr_req *rq, fr_manager *mg, const char *id) {
    fr_model_info info;
    int rc = fr_manager_get(mg, id, &info);
    if (rc == FR_ENOENT)
        return fr__reply_error(rq, 404, "model_not_found", "id", "model '%.128s' not found", id);
    if (rc) return rc;
    return fr__reply_json(rq, 200, entry_json(&info));
}

int fr__h_model(fr_req *rq) {
    fr_manager *mg;
    int rc = manager_or_404(rq, &mg);
    return rc ? rc : reply_entry(rq, mg, fr__req_param(rq, "id"));
}

int fr__h_model_load(fr_req *rq) {
    fr_manager *mg;
    int rc = manager_or_404(rq, &mg);
    if (rc) return rc;
    const char *id = fr__req_param(rq, "id");
    fr_body b = {.rq = rq, .obj = fr__req_json(rq)};     /* an empty body is no field */
    int64_t keep = FR_KEEP_ALIVE_INHERIT;
    bool pin = false;
    if ((rc = fr__body_keep_alive(&b, &keep)) || (rc = fr__body_bool(&b, "pin", &pin))) return rc;
    fr__req_set_model(rq, id);
    rc = fr_manager_load(mg, id, keep, pin);
    if (rc == FR_ENOENT)
        return fr__reply_error(rq, 404, "model_not_found", "id", "model '%.128s' not found", id);
    if (rc) return fr__reply_err(rq, rc, "id");
    return reply_entry(rq, mg, id);
}

int fr__h_model_unload(fr_req *rq) {
    fr_manager *mg;
    int rc = manager_or_404(rq, &mg);
    if (rc) return rc;
    const char *id = fr__req_param(rq, "id");
    fr_body b = {.rq = rq, .obj = fr__req_json(rq)};
    bool force = false;
    if ((rc = fr__body_bool(&b, "force", &force))) return rc;
    fr__req_set_model(rq, id);
    rc = fr_manager_unload(mg, id, force);
    if (rc == FR_ENOENT)
        return fr__reply_error(rq, 404, "model_not_found", "id", "model '%.128s' not found", id);
    if (rc == FR_ECONFLICT && force)    /* still held FR_FORCE_UNLOAD_WAIT_MS after the cancel */
        return fr__reply_error(rq, 409, "model_in_use", "id", "%s", fr_errdetail());
    if (rc == FR_ECONFLICT)
        return fr__reply_error(rq, 409, "model_in_use", "id",
                               "model '%.128s' has requests in flight; send {\"force\": true} to "
                               "cancel them", id);
    if (rc) return fr__reply_err(rq, rc, "id");
    return reply_entry(rq, mg, id);
}

static json_t *ids_json(char **ids, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_string(ids[i]));
    return a;
}

int fr__h_models_plan(fr_req *rq) {
    fr_manager *mg;
    int rc = manager_or_404(rq, &mg);
    if (rc) return rc;
    json_t *m = json_object_get(fr__req_json(rq), "model");
    if (!m) return fr__reply_error(rq, 400, "missing_field", "model", "model is required");
    if (!json_is_string(m))
        return fr__reply_error(rq, 400, "invalid_value", "model", "model must be a string");
    fr_plan plan;
    rc = fr_manager_plan(mg, json_string_value(m), &plan);
    if (rc == FR_ENOENT)
        return fr__reply_error(rq, 404, "model_not_found", "model", "model '%.128s' not found",
                               json_string_value(m));
    if (rc) return rc;
    json_t *o = json_pack("{s:s, s:b, s:b, s:I, s:o, s:f}", "model", json_string_value(m), "fits",
                          plan.fits, "loaded", plan.loaded, "estimated_bytes",
                          (json_int_t)plan.estimated_bytes, "evict", ids_json(plan.evict, plan.n_evict),
                          "estimated_load_ms", plan.estimated_load_ms);
    if (o && !plan.fits && plan.reason[0]) json_object_set_new(o, "reason", json_string(plan.reason));
    fr_plan_free(&plan);
    return fr__reply_json(rq, 200, o);
}

int fr__h_memory(fr_req *rq) {
    fr_manager *mg = fr__req_manager(rq);
    fr_memory_report r = {0};
    json_t *models = json_array();
    if (mg) {
        fr_manager_memory(mg, &r);
        fr_model_info *list = NULL;
        size_t n = 0;
        if (fr_manager_list(mg, &list, &n) == 0) {
            for (size_t i = 0; i < n; i++) {
                const fr_model_info *m = &list[i];
                if (m->state != FR_MS_LOADED && m->state != FR_MS_LOADING && m->state != FR_MS_UNLOADING)
                    continue;
                json_array_append_new(models, json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "id",
                                                        m->id, "state", fr_model_state_name(m->state),
                                                        "weights_mapped", (json_int_t)m->usage.weights_mapped,
                                                        "weights_resident",
                                                        (json_int_t)m->usage.weights_resident, "kv",
                                                        (json_int_t)m->usage.kv, "scratch",
                                                        (json_int_t)m->usage.scratch, "estimated_bytes",
                                                        (json_int_t)m->estimated_bytes));
            }
            fr_free(list);
        }
    }
    json_t *ev = json_object();
    for (int i = 0; i < FR_EVICT_COUNT; i++)
        json_object_set_new(ev, fr_evict_reason_name(i), json_integer((json_int_t)r.evictions[i]));
    json_t *o = json_pack(
        "{s:I, s:I, s:I, s:o, s:{s:I, s:I, s:I, s:I, s:f, s:f}, s:{s:f, s:f, s:f}, s:f, s:s, s:o,"
        " s:{s:I, s:I, s:I, s:I}, s:i, s:i}",
        "budget_bytes", (json_int_t)r.budget_bytes, "used_bytes", (json_int_t)r.used_bytes,
        "heap_bytes", (json_int_t)r.heap_bytes, "models", models, "system", "total",
        (json_int_t)r.sys_total, "available", (json_int_t)r.sys_available, "cgroup_limit",
        (json_int_t)r.cgroup_limit, "cgroup_current", (json_int_t)r.cgroup_current, "psi_some_avg10",
        r.psi_some_avg10, "psi_full_avg10", r.psi_full_avg10, "thresholds", "warning", r.warning,
        "critical", r.critical, "emergency", r.emergency, "used_pct", r.used_pct, "level",
        fr_mem_level_name(r.level), "evictions", ev, "loads", "total", (json_int_t)r.loads,
        "failures", (json_int_t)r.load_failures, "shed_budget", (json_int_t)r.sheds_budget,
        "shed_emergency", (json_int_t)r.sheds_emergency, "loaded", (int)r.loaded, "max_loaded",
        (int)r.max_loaded);
    return fr__reply_json(rq, 200, o);
}

int fr__h_memory_unload(fr_req *rq) {
    fr_manager *mg = fr__req_manager(rq);
    char **ids = NULL;
    size_t n = 0;
    uint64_t freed = 0;
    if (mg) {
        int rc = fr_manager_unload_idle(mg, &ids, &n, &freed);
        if (rc) return rc;
    }
    json_t *o = json_pack("{s:o, s:I}", "unloaded", ids_json(ids, n), "freed_bytes", (json_int_t)freed);
    fr_manager_free_ids(ids, n);
    return fr__reply_json(rq, 200, o);
}

/* ---- /metrics: what the manager and the schedulers know ---- */

/* A counter whose total lives elsewhere (a report): add what is new. */
static void counter_to(fr_metric *m, double total, const char *l1) {
    fr_series *s = fr_metric_series(m, l1, NULL, NULL, NULL);
    double now = fr_series_value(s);
    if (s && total > now) fr_series_add(s, total - now);
}

/* The families the collector fills, registered once (a collector may not
 * register: it runs under the registry's lock). */
struct fr_models_metrics {
    fr_manager *mg;
    fr_lru *cache;
    fr_metric *cache_hits, *cache_misses, *cache_bytes, *cache_entries;
    fr_metric *bytes, *level, *pct, *psi, *loaded, *loads, *fails, *load_s, *evict, *shed;
    fr_metric *slots, *busy, *queued, *steps;
    fr_metric *temp, *throttled, *fw, *threads;
};

int fr__models_metrics_create(fr_metrics *r, fr_manager *mg, fr_lru *cache, fr_models_metrics **out) {
    fr_models_metrics *c = fr_calloc(1, sizeof *c);
    if (!c) return FR_ENOMEM;
    c->mg = mg;
    c->cache = cache;
    int rc;
    if ((rc = fr_metric_counter(r, "frugal_embed_cache_hits_total", "Embedding vectors served from the cache",
                                NULL, &c->cache_hits)) ||
        (rc = fr_metric_counter(r, "frugal_embed_cache_misses_total", "Embedding vectors not in the cache",
                                NULL, &c->cache_misses)) ||
        (rc = fr_metric_gauge(r, "frugal_embed_cache_bytes", "Bytes the embedding cache holds", NULL,
                              &c->cache_bytes)) ||
        (rc = fr_metric_gauge(r, "frugal_embed_cache_entries", "Vectors the embedding cache holds", NULL,
                              &c->cache_entries)) ||
        (rc = fr_metric_gauge(r, "frugal_memory_bytes", "Bytes by kind: budget, used, heap, "
                              "weights_mapped, weights_resident, kv, scratch", "kind", &c->bytes)) ||
        (rc = fr_metric_gauge(r, "frugal_memory_level",
                              "Memory level: 0 ok, 1 warning, 2 critical, 3 emergency", NULL, &c->level)) ||
        (rc = fr_metric_gauge(r, "frugal_memory_used_percent",
                              "Memory in use, percent of the machine or cgroup", NULL, &c->pct)) ||
        (rc = fr_metric_gauge(r, "frugal_memory_psi_avg10",
                              "Memory pressure stall, percent of the last 10 s (-1: no PSI)", "kind", &c->psi)) ||
        (rc = fr_metric_gauge(r, "frugal_models_loaded", "Models loaded now", NULL, &c->loaded)) ||
        (rc = fr_metric_counter(r, "frugal_model_loads_total", "Model loads", NULL, &c->loads)) ||
        (rc = fr_metric_counter(r, "frugal_model_load_failures_total", "Model loads that failed", NULL,
                                &c->fails)) ||
        (rc = fr_metric_counter(r, "frugal_model_load_seconds_total", "Time spent loading models", NULL,
                                &c->load_s)) ||
        (rc = fr_metric_counter(r, "frugal_evictions_total", "Model unloads by reason", "reason", &c->evict)) ||
        (rc = fr_metric_counter(r, "frugal_sheds_total", "Requests refused with 503, by reason", "reason",
                                &c->shed)) ||
        (rc = fr_metric_gauge(r, "frugal_slots", "Slots (parallel requests) of each loaded model", "model",
                              &c->slots)) ||
        (rc = fr_metric_gauge(r, "frugal_slots_busy", "Slots serving a request", "model", &c->busy)) ||
        (rc = fr_metric_gauge(r, "frugal_queue_depth", "Requests waiting for a slot", "model", &c->queued)) ||
        (rc = fr_metric_counter(r, "frugal_forward_passes_total", "Forward passes (batches) run", "model",
                                &c->steps)) ||
        (rc = fr_metric_gauge(r, "frugal_soc_temperature_celsius",
                              "The hottest thermal zone (absent: no thermal zone)", NULL, &c->temp)) ||
        (rc = fr_metric_gauge(r, "frugal_throttled",
                              "1 while the SoC is hot and compute threads and slots are reduced", NULL,
                              &c->throttled)) ||
        (rc = fr_metric_gauge(r, "frugal_firmware_throttled",
                              "Raspberry Pi firmware get_throttled flags now (absent: not a Pi)", "flag", &c->fw)) ||
        (rc = fr_metric_gauge(r, "frugal_compute_threads", "Threads a forward pass uses now", NULL,
                              &c->threads))) {
        fr_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void fr__models_metrics_destroy(fr_models_metrics *c) { fr_free(c); }

static void collect_sched(void *ud, const char *id, void *obj) {
    fr_models_metrics *c = ud;
    const fr_loaded_model *l = obj;
    if (l->batcher) {
        fr_batcher_stats es;
        fr_batcher_stats_get(l->batcher, &es);
        fr_metric_set(c->queued, es.queued, id);
        counter_to(c->steps, (double)es.batches, id);
        return;
    }
    fr_sched_stats st;
    fr_sched_stats_get(l->sched, &st);
    fr_metric_set(c->slots, st.slots, id);
    fr_metric_set(c->busy, st.slots_busy, id);
    fr_metric_set(c->queued, st.queued, id);
    counter_to(c->steps, (double)st.steps, id);
}

void fr__collect_models(void *ud, fr_metrics *r) {
    (void)r;
    fr_models_metrics *c = ud;
    fr_manager *mg = c->mg;
    fr_memory_report rep;
    fr_manager_memory(mg, &rep);
    fr_model_info *list = NULL;
    size_t n = 0;
    uint64_t mapped = 0, resident = 0, kv = 0, scratch = 0;
    if (fr_manager_list(mg, &list, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            mapped += list[i].usage.weights_mapped;
            resident += list[i].usage.weights_resident;
            kv += list[i].usage.kv;
            scratch += list[i].usage.scratch;
            if (list[i].state != FR_MS_LOADED) {   /* gauges of models that went */
                fr_series *s = fr_metric_series(c->slots, list[i].id, NULL, NULL, NULL);
                if (fr_series_value(s) != 0) {
                    fr_series_set(s, 0);
                    fr_metric_set(c->busy, 0, list[i].id);
                    fr_metric_set(c->queued, 0, list[i].id);
                }
            }
        }
        fr_free(list);
    }
    fr_manager_visit(mg, collect_sched, c);
    fr_metric_set(c->bytes, (double)rep.budget_bytes, "budget");
    fr_metric_set(c->bytes, (double)rep.used_bytes, "used");
    fr_metric_set(c->bytes, (double)rep.heap_bytes, "heap");
    fr_metric_set(c->bytes, (double)mapped, "weights_mapped");
    fr_metric_set(c->bytes, (double)resident, "weights_resident");
    fr_metric_set(c->bytes, (double)kv, "kv");
    fr_metric_set(c->bytes, (double)scratch, "scratch");
    fr_metric_set(c->level, rep.level, NULL);
    fr_metric_set(c->pct, rep.used_pct, NULL);
    fr_metric_set(c->psi, rep.psi_some_avg10, "some");
    fr_metric_set(c->psi, rep.psi_full_avg10, "full");
    fr_metric_set(c->loaded, rep.loaded, NULL);
    counter_to(c->loads, (double)rep.loads, NULL);
    counter_to(c->fails, (double)rep.load_failures, NULL);
    counter_to(c->load_s, rep.load_ms_total / 1e3, NULL);
    for (int i = 0; i < FR_EVICT_COUNT; i++)
        counter_to(c->evict, (double)rep.evictions[i], fr_evict_reason_name(i));
    counter_to(c->shed, (double)rep.sheds_budget, "budget");
    counter_to(c->shed, (double)rep.sheds_emergency, "emergency");
    if (rep.temp_known) fr_metric_set(c->temp, rep.temp_c, NULL);
    fr_metric_set(c->throttled, rep.throttled, NULL);
    if (rep.fw_throttled >= 0) {
        static const char *const flags[] = {"under_voltage", "freq_capped", "throttled", "soft_temp_limit"};
        for (int i = 0; i < 4; i++) fr_metric_set(c->fw, (double)((rep.fw_throttled >> i) & 1), flags[i]);
    }
    if (rep.compute_threads) fr_metric_set(c->threads, rep.compute_threads, NULL);
    if (c->cache) {
        fr_lru_stats ls;
        fr_lru_stats_get(c->cache, &ls);
        counter_to(c->cache_hits, (double)ls.hits, NULL);
        counter_to(c->cache_misses, (double)ls.misses, NULL);
        fr_metric_set(c->cache_bytes, (double)ls.bytes, NULL);
        fr_metric_set(c->cache_entries, (double)ls.entries, NULL);
    }
}
