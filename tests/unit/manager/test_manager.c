/*
 * test_manager.c — the model manager with a fake loader over a temporary
 * models directory of empty *.gguf files: lazy loading, the LRU order,
 * pins, busy models, --max-loaded, single flight (success and failure),
 * failed loads and their retry, keep-alive (per request, per model,
 * global; 0 and -1), plans, unloads with and without force, unload_idle,
 * rescans (new, removed, busy, changed files), admission by max(estimate,
 * measurement), preload, configuration errors, destroy waiting for
 * handles, and a small concurrent run.
 *
 * Timers are never waited for: keep-alive expiry is driven by
 * fr_manager_housekeep after sleeping past a 1 ms keep-alive; threads
 * meet through the fake's gate and the manager's "waiting" count.
 */
#include "harness.h"

#include "fake_loader.h"

#include "base/log.h"
#include "base/sysinfo.h"

static fake F;

/* Models A, B, C (100 MiB each: 80 weights + 15 kv + 5 scratch) and a
 * few others, in the directory "models". */
static void setup_models(void) {
    fake_init(&F);
    fake_add(&F, "A", 80 * MiB, 15 * MiB, 5 * MiB);
    fake_add(&F, "B", 80 * MiB, 15 * MiB, 5 * MiB);
    fake_add(&F, "C", 80 * MiB, 15 * MiB, 5 * MiB);
    fake_add(&F, "big", 280 * MiB, 15 * MiB, 5 * MiB);
    fake_add(&F, "slow", 80 * MiB, 15 * MiB, 5 * MiB);
    fake_add(&F, "P", 80 * MiB, 15 * MiB, 5 * MiB);
    fake_add(&F, "ini", 80 * MiB, 15 * MiB, 5 * MiB);
    put_file("models/A.gguf", "");
    put_file("models/B.gguf", "");
    put_file("models/C.gguf", "");
    put_file("models/big.gguf", "");
    put_file("models/slow.gguf", "");
    put_file("models/notes.txt", "not a model");
    put_file("models/.hidden.gguf", "");
    put_file("ini/P.gguf", "");
    put_file("ini/ini-model.gguf", "");
}

static void reset_fake(void) {
    pthread_mutex_lock(&F.mu);
    F.log[0] = 0;
    F.probes = F.loads = F.unloads = F.cancels = 0;
    F.gate_open = false;
    for (int i = 0; i < F.n_models; i++) {
        F.models[i].gate = false;
        F.models[i].fail_loads = F.models[i].fail_probes = 0;
        F.models[i].extra = 0;
        F.models[i].resident = UINT64_MAX;
    }
    pthread_mutex_unlock(&F.mu);
}

static void use(fr_manager *mg, const char *id) {
    fr_handle *h;
    int rc = fr_manager_acquire(mg, id, -2, &h);
    CHECK_MSG(rc == 0, "acquire %s: %s: %s", id, fr_errname(rc), fr_errdetail());
    if (rc == 0) fr_manager_release(h);
}

static void check_used_within_budget(fr_manager *mg) {
    fr_memory_report r;
    fr_manager_memory(mg, &r);
    CHECK_MSG(r.used_bytes <= r.budget_bytes, "used %llu > budget %llu",
              (unsigned long long)r.used_bytes, (unsigned long long)r.budget_bytes);
}

static void test_lazy(void) {
    reset_fake();
    fr_model_cfg ini = {.id = "ini", .path = test_path("ini/ini-model.gguf"), .alias = "ini-alias",
                        .n_ctx = 2048, .keep_alive_ms = -2};
    fr_manager_config c = test_config(&F, test_path("models"), 1000 * MiB);
    c.models = &ini;
    c.n_models = 1;
    c.defaults.n_ctx = 4096;
    c.defaults.parallel = 3;
    fr_manager *mg;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    CHECK_INT(F.loads, 0);                          /* nothing loaded at start */

    fr_model_info *v;
    size_t n;
    CHECK_INT(fr_manager_list(mg, &v, &n), 0);
    CHECK_INT(n, 6);                                /* A B C big ini slow; not .hidden, not .txt */
    if (n == 6) {
        CHECK_STR(v[0].id, "A");
        CHECK_STR(v[3].id, "big");              /* strcmp order */
        CHECK_STR(v[4].id, "ini");
        CHECK_STR(v[4].alias, "ini-alias");
        CHECK_STR(v[5].id, "slow");
        CHECK_INT(v[0].state, FR_MS_UNLOADED);
        CHECK_INT(v[0].estimated_bytes, 100 * MiB);  /* probed at the scan */
        CHECK_INT(v[0].file_bytes, 0);
        CHECK_INT(v[0].caps, FR_CAP_COMPLETION | FR_CAP_CHAT);
        struct stat st;
        stat(test_path("models/A.gguf"), &st);
        CHECK_NEAR(v[0].created, (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec * 1e-9, 1e-6);
        CHECK_NEAR(v[0].last_used, 0, 0);
        CHECK_INT(v[0].keep_alive_ms, -1);
    }
    fr_free(v);

    fr_handle *h1, *h2;
    CHECK_INT(fr_manager_acquire(mg, "A", -2, &h1), 0);
    CHECK_INT(F.loads, 1);
    CHECK_STR(fr_handle_id(h1), "A");
    CHECK(fr_handle_obj(h1) != NULL);
    CHECK_INT(fr_handle_caps(h1), FR_CAP_COMPLETION | FR_CAP_CHAT);
    CHECK_INT(F.last_cfg.n_ctx, 4096);              /* the server default */
    CHECK_INT(F.last_cfg.parallel, 3);
    CHECK_INT(fr_manager_acquire(mg, "A", -2, &h2), 0);
    CHECK_INT(F.loads, 1);                          /* loaded once */
    CHECK(fr_handle_obj(h2) == fr_handle_obj(h1));
    fr_model_info info;
    CHECK_INT(fr_manager_get(mg, "A", &info), 0);
    CHECK_INT(info.state, FR_MS_LOADED);
    CHECK_INT(info.in_flight, 2);
    CHECK(info.last_used > 0);
    CHECK_INT(info.usage.weights_resident, 80 * MiB);
    CHECK_INT(info.usage.kv, 15 * MiB);
    fr_manager_release(h1);
    fr_manager_release(h2);
    CHECK_INT(model_state(mg, "A"), FR_MS_LOADED);  /* keep-alive -1 */
    CHECK_INT(fr_manager_get(mg, "A", &info), 0);
    CHECK_INT(info.in_flight, 0);

    /* the alias and the INI settings */
    CHECK_INT(fr_manager_acquire(mg, "ini-alias", -2, &h1), 0);
    CHECK_STR(fr_handle_id(h1), "ini");
    CHECK_INT(F.last_cfg.n_ctx, 2048);
    CHECK_INT(F.last_cfg.parallel, 3);
    fr_manager_release(h1);

    /* unknown */
    CHECK_INT(fr_manager_acquire(mg, "nope", -2, &h1), FR_ENOENT);
    CHECK(strstr(fr_errdetail(), "'nope'") != NULL);
    CHECK(h1 == NULL);
    CHECK_INT(fr_manager_get(mg, "nope", &info), FR_ENOENT);
    CHECK_INT(fr_manager_acquire(mg, "A", -3, &h1), FR_EINVAL);

    fr_memory_report r;
    fr_manager_memory(mg, &r);
    CHECK_INT(r.loads, 2);
    CHECK_INT(r.loaded, 2);
    CHECK_INT(r.budget_bytes, 1000 * MiB);
    CHECK(r.load_ms_total >= 0);
    fr_manager_destroy(mg);
    CHECK_INT(F.unloads, 2);                        /* destroy unloads all */
}

/* A, B, C, A, C, B with room for two. */
static void test_lru(void) {
    reset_fake();
    fr_manager_config c = test_config(&F, test_path("models"), 250 * MiB);
    fr_manager *mg;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    static const char *seq[] = {"A", "B", "C", "A", "C", "B"};
    static const char *want[] = {"A", "A,B", "B,C", "A,C", "A,C", "B,C"};
    for (int i = 0; i < 6; i++) {
        use(mg, seq[i]);
        CHECK_STR(loaded_set(mg), want[i]);
        check_used_within_budget(mg);
    }
    CHECK_STR(F.log, "+A +B -A +C -B +A -A +B ");
    fr_memory_report r;
    fr_manager_memory(mg, &r);
    CHECK_INT(r.evictions[FR_EVICT_LRU], 3);
    CHECK_INT(r.loads, 5);
    fr_manager_destroy(mg);
}

static void test_pinned(void) {
    reset_fake();
    fr_model_cfg ini = {.id = "P", .path = test_path("ini/P.gguf"), .keep_alive_ms = -2, .pin = true};
    fr_manager_config c = test_config(&F, test_path("models"), 250 * MiB);
    c.models = &ini;
    c.n_models = 1;
    fr_manager *mg;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    use(mg, "P");
    use(mg, "A");
    use(mg, "B");                                   /* evicts A, the LRU that is not pinned */
    CHECK_STR(loaded_set(mg), "B,P");
    use(mg, "C");
    CHECK_STR(loaded_set(mg), "C,P");
    fr_model_info info;
    fr_manager_get(mg, "P", &info);
    CHECK(info.pinned);
    /* unload_idle leaves pins alone; keep-alive 0 does not unload a pin */
    fr_handle *h;
    CHECK_INT(fr_manager_acquire(mg, "P", 0, &h), 0);
    fr_manager_release(h);
    CHECK_INT(model_state(mg, "P"), FR_MS_LOADED);
    CHECK_INT(fr_manager_unload_idle(mg, NULL, NULL, NULL), 0);
    CHECK_STR(loaded_set(mg), "P");
    /* fr_manager_load(pin) pins until an explicit unload */
    CHECK_INT(fr_manager_load(mg, "A", -2, true), 0);
    fr_manager_get(mg, "A", &info);
    CHECK(info.pinned);
    /* the only room there is is pinned models': refused, nothing moves */
    CHECK_INT(fr_manager_acquire(mg, "B", -2, &h), FR_EBUDGET);
    const char *d = fr_errdetail();
    CHECK_MSG(strstr(d, "A (pinned)") && strstr(d, "P (pinned)"), "detail: %s", d);
    CHECK_STR(loaded_set(mg), "A,P");
    CHECK_INT(fr_manager_unload(mg, "A", false), 0);   /* explicit: allowed, unpins */
    use(mg, "B");
    use(mg, "A");                                   /* no longer pinned: evictable again */
    CHECK_STR(loaded_set(mg), "A,P");
    use(mg, "B");
    CHECK_STR(loaded_set(mg), "B,P");
    fr_manager_destroy(mg);
}

static void test_busy(void) {
    reset_fake();
    fr_manager_config c = test_config(&F, test_path("models"), 250 * MiB);
    fr_manager *mg;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    fr_handle *ha, *hb, *hc;
    CHECK_INT(fr_manager_acquire(mg, "A", -2, &ha), 0);
    CHECK_INT(fr_manager_acquire(mg, "B", -2, &hb), 0);
    CHECK_INT(fr_manager_acquire(mg, "C", -2, &hc), FR_EBUDGET);
    const char *d = fr_errdetail();
    CHECK_MSG(strstr(d, "A (1 in flight)") && strstr(d, "B (1 in flight)"), "detail: %s", d);
    CHECK_STR(loaded_set(mg), "A,B");               /* nothing disturbed */
    CHECK_STR(F.log, "+A +B ");
    CHECK_INT(model_state(mg, "C"), FR_MS_UNLOADED);/* a refusal is not a failure */
    fr_memory_report r;
    fr_manager_memory(mg, &r);
    CHECK_INT(r.sheds_budget, 1);
    fr_manager_release(ha);
    CHECK_INT(fr_manager_acquire(mg, "C", -2, &hc), 0);
    CHECK_STR(loaded_set(mg), "B,C");
    CHECK_STR(F.log, "+A +B -A +C ");
    fr_manager_release(hb);
    fr_manager_release(hc);
    /* too big for the budget alone */
    CHECK_INT(fr_manager_acquire(mg, "big", -2, &ha), FR_EBUDGET);
    CHECK(strstr(fr_errdetail(), "more than the whole memory budget") != NULL);
    CHECK_STR(loaded_set(mg), "B,C");
    fr_manager_destroy(mg);
}

static void test_max_loaded(void) {
    reset_fake();
    fr_manager_config c = test_config(&F, test_path("models"), 100000 * MiB);
    c.max_loaded = 2;
    fr_manager *mg;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    use(mg, "A");
    use(mg, "B");
    use(mg, "C");
    CHECK_STR(loaded_set(mg), "B,C");
    fr_handle *hb, *hc, *h;
    CHECK_INT(fr_manager_acquire(mg, "B", -2, &hb), 0);
    CHECK_INT(fr_manager_acquire(mg, "C", -2, &hc), 0);
    CHECK_INT(fr_manager_acquire(mg, "A", -2, &h), FR_EBUDGET);
    CHECK(strstr(fr_errdetail(), "--max-loaded 2") != NULL);
    fr_manager_release(hb);
    CHECK_INT(fr_manager_acquire(mg, "A", -2, &h), 0);
    CHECK_STR(loaded_set(mg), "A,C");
    fr_manager_release(h);
    fr_manager_release(hc);
    fr_memory_report r;
    fr_manager_memory(mg, &r);
    CHECK_INT(r.max_loaded, 2);
    CHECK_INT(r.loaded, 2);
    fr_manager_destroy(mg);
}

/* ---- single flight ---- */

enum { N_THREADS = 8 };

typedef struct {
    fr_manager *mg;
    int rc;
    void *obj;
    char detail[256];
} acq_arg;

static void *acquire_thread(void *p) {
    acq_arg *a = p;
    fr_handle *h;
    a->rc = fr_manager_acquire(a->mg, "slow", -2, &h);
    snprintf(a->detail, sizeof a->detail, "%s", fr_errdetail());
    if (a->rc == 0) {
        a->obj = fr_handle_obj(h);
        fr_manager_release(h);
    }
    return NULL;
}

static int waiting_for(fr_manager *mg, const char *id) {
    fr_model_info info;
    return fr_manager_get(mg, id, &info) == 0 ? info.waiting : -1;
}

/* N threads acquire "slow" while its one load waits at the gate; the
 * gate opens once the other N-1 are asleep on that load. */
static void run_flight(fr_manager *mg, acq_arg *a) {
    pthread_t t[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        a[i] = (acq_arg){.mg = mg};
        pthread_create(&t[i], NULL, acquire_thread, &a[i]);
    }
    WAIT_FOR(fake_in_gate(&F) == 1);
    WAIT_FOR(waiting_for(mg, "slow") == N_THREADS - 1);
    CHECK_INT(model_state(mg, "slow"), FR_MS_LOADING);
    fake_open_gate(&F);
    for (int i = 0; i < N_THREADS; i++) pthread_join(t[i], NULL);
}

static void test_single_flight(void) {
    reset_fake();
    fr_manager_config c = test_config(&F, test_path("models"), 1000 * MiB);
    fr_manager *mg;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    fake_find(&F, "slow")->gate = true;
    acq_arg a[N_THREADS];
    run_flight(mg, a);
    CHECK_INT(F.loads, 1);
    for (int i = 0; i < N_THREADS; i++) {
        CHECK_INT(a[i].rc, 0);
        CHECK(a[i].obj != NULL && a[i].obj == a[0].obj);
    }
    CHECK_INT(waiting_for(mg, "slow"), 0);

    /* the load fails: every waiter gets that failure, one load only */
    CHECK_INT(fr_manager_unload(mg, "slow", false), 0);
    reset_fake();
    fake_find(&F, "slow")->gate = true;
    fake_find(&F, "slow")->fail_loads = 1;
    run_flight(mg, a);
    CHECK_INT(F.loads, 1);
    for (int i = 0; i < N_THREADS; i++) {
        CHECK_INT(a[i].rc, FR_EIO);
        CHECK_MSG(strstr(a[i].detail, "read error at offset 4096") != NULL, "detail: %s", a[i].detail);
    }
    fr_model_info info;
    fr_manager_get(mg, "slow", &info);
    CHECK_INT(info.state, FR_MS_FAILED);
    CHECK(strstr(info.error, "read error at offset 4096") != NULL);
    fr_memory_report r;
    fr_manager_memory(mg, &r);
    CHECK_INT(r.load_failures, 1);

    /* the next acquire tries again, and succeeds */
    use(mg, "slow");
    CHECK_INT(F.loads, 2);
    fr_manager_get(mg, "slow", &info);
    CHECK_INT(info.state, FR_MS_LOADED);
    CHECK_STR(info.error, "");
    fr_manager_destroy(mg);
}

static void test_probe_failure(void) {
    reset_fake();
    fake_find(&F, "B")->fail_probes = 2;            /* at the scan and at the first acquire */
    fr_manager_config c = test_config(&F, test_path("models"), 1000 * MiB);
    fr_manager *mg;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    fr_model_info info;
    fr_manager_get(mg, "B", &info);
    CHECK_INT(info.state, FR_MS_FAILED);
    CHECK(strstr(info.error, "bad magic") != NULL);
    fr_plan p;
    CHECK_INT(fr_manager_plan(mg, "B", &p), 0);
    CHECK(!p.fits);
    CHECK(strstr(p.reason, "bad magic") != NULL);
    fr_plan_free(&p);
    fr_handle *h;
    CHECK_INT(fr_manager_acquire(mg, "B", -2, &h), FR_EFORMAT);
    CHECK(strstr(fr_errdetail(), "bad magic") != NULL);
    CHECK_INT(F.loads, 0);
    use(mg, "B");                                   /* probes again, loads */
    CHECK_INT(F.loads, 1);
    fr_manager_get(mg, "B", &info);
    CHECK_INT(info.estimated_bytes, 100 * MiB);
    fr_manager_destroy(mg);
}

/* ---- keep-alive ---- */

static void test_keep_alive(void) {
    reset_fake();
    fr_model_cfg ini = {.id = "ini", .path = test_path("ini/ini-model.gguf"), .keep_alive_ms = 1};
    fr_manager_config c = test_config(&F, test_path("models"), 1000 * MiB);
    c.models = &ini;
    c.n_models = 1;
    fr_manager *mg;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    fr_handle *h, *h2;

    /* per request: an hour is not over yet; 1 ms is */
    CHECK_INT(fr_manager_acquire(mg, "A", 3600 * 1000, &h), 0);
    fr_manager_release(h);
    fr_model_info info;
    fr_manager_get(mg, "A", &info);
    CHECK_INT(info.keep_alive_ms, 3600 * 1000);
    fr_manager_housekeep(mg);
    CHECK_INT(model_state(mg, "A"), FR_MS_LOADED);
    CHECK_INT(fr_manager_acquire(mg, "A", 1, &h), 0);
    fr_manager_release(h);
    sleep_ms(20);
    fr_manager_housekeep(mg);
    CHECK_INT(model_state(mg, "A"), FR_MS_UNLOADED);
    fr_memory_report r;
    fr_manager_memory(mg, &r);
    CHECK_INT(r.evictions[FR_EVICT_KEEP_ALIVE], 1);

    /* -1: never, whatever the model says */
    CHECK_INT(fr_manager_acquire(mg, "ini", -1, &h), 0);
    fr_manager_release(h);
    sleep_ms(20);
    fr_manager_housekeep(mg);
    CHECK_INT(model_state(mg, "ini"), FR_MS_LOADED);
    /* the model's own keep-alive (INI: 1 ms) when the request says none */
    use(mg, "ini");
    sleep_ms(20);
    fr_manager_housekeep(mg);
    CHECK_INT(model_state(mg, "ini"), FR_MS_UNLOADED);

    /* 0: at the release, the last one */
    CHECK_INT(fr_manager_acquire(mg, "B", 0, &h), 0);
    CHECK_INT(fr_manager_acquire(mg, "B", 0, &h2), 0);
    fr_manager_release(h);
    CHECK_INT(model_state(mg, "B"), FR_MS_LOADED);
    fr_manager_release(h2);
    CHECK_INT(model_state(mg, "B"), FR_MS_UNLOADED);
    /* a handle in use does not expire */
    CHECK_INT(fr_manager_acquire(mg, "C", 1, &h), 0);
    sleep_ms(20);
    fr_manager_housekeep(mg);
    CHECK_INT(model_state(mg, "C"), FR_MS_LOADED);
    fr_manager_release(h);
    CHECK_STR(F.log, "+A -A +ini -ini +B -B +C ");
    fr_manager_destroy(mg);

    /* the global default: defaults.keep_alive_ms */
    reset_fake();
    c = test_config(&F, test_path("models"), 1000 * MiB);
    c.defaults.keep_alive_ms = 1;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    use(mg, "A");
    fr_manager_get(mg, "A", &info);
    CHECK_INT(info.keep_alive_ms, 1);
    sleep_ms(20);
    fr_manager_housekeep(mg);
    CHECK_INT(model_state(mg, "A"), FR_MS_UNLOADED);
    fr_manager_destroy(mg);

    /* -2 in the defaults: five minutes */
    c.defaults.keep_alive_ms = -2;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    fr_manager_get(mg, "A", &info);
    CHECK_INT(info.keep_alive_ms, 5 * 60 * 1000);
    fr_manager_destroy(mg);
}

/* ---- plan ---- */

static void test_plan(void) {
    reset_fake();
    fr_manager_config c = test_config(&F, test_path("models"), 250 * MiB);
    fr_manager *mg;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    fr_plan p;
    CHECK_INT(fr_manager_plan(mg, "A", &p), 0);
    CHECK(p.fits && !p.loaded && p.n_evict == 0);
    CHECK_INT(p.estimated_bytes, 100 * MiB);
    CHECK_NEAR(p.estimated_load_ms, 100.0 * MiB / 50000.0, 1e-6);   /* the default speed */
    fr_plan_free(&p);
    use(mg, "A");
    use(mg, "B");
    CHECK_INT(fr_manager_plan(mg, "A", &p), 0);
    CHECK(p.fits && p.loaded);
    fr_plan_free(&p);

    CHECK_INT(fr_manager_plan(mg, "C", &p), 0);
    CHECK(p.fits && !p.loaded);
    CHECK_INT(p.n_evict, 1);
    if (p.n_evict == 1) CHECK_STR(p.evict[0], "A");
    CHECK(p.estimated_load_ms >= 0);
    fr_plan_free(&p);
    CHECK_STR(loaded_set(mg), "A,B");               /* nothing changed */
    CHECK_STR(F.log, "+A +B ");

    /* "big" (300 MiB) does not fit a 250 MiB budget */
    CHECK_INT(fr_manager_plan(mg, "big", &p), 0);
    CHECK(!p.fits && p.n_evict == 0);
    CHECK(strstr(p.reason, "more than the whole memory budget") != NULL);
    fr_plan_free(&p);

    /* A busy: B goes instead; both busy: nothing fits */
    fr_handle *ha, *hb;
    CHECK_INT(fr_manager_acquire(mg, "A", -2, &ha), 0);
    CHECK_INT(fr_manager_plan(mg, "C", &p), 0);
    CHECK(p.fits && p.n_evict == 1);
    if (p.n_evict == 1) CHECK_STR(p.evict[0], "B");
    fr_plan_free(&p);
    CHECK_INT(fr_manager_acquire(mg, "B", -2, &hb), 0);
    CHECK_INT(fr_manager_plan(mg, "C", &p), 0);
    CHECK(!p.fits && p.n_evict == 0);
    CHECK_MSG(strstr(p.reason, "A (1 in flight)") != NULL, "reason: %s", p.reason);
    fr_plan_free(&p);
    fr_manager_release(ha);
    fr_manager_release(hb);

    /* room for one with A and B evicted in LRU order */
    fr_manager_destroy(mg);
    reset_fake();
    c = test_config(&F, test_path("models"), 350 * MiB);
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    use(mg, "B");
    use(mg, "A");
    use(mg, "C");
    CHECK_INT(fr_manager_plan(mg, "big", &p), 0);
    CHECK(p.fits);
    CHECK_INT(p.n_evict, 3);
    if (p.n_evict == 3) {
        CHECK_STR(p.evict[0], "B");
        CHECK_STR(p.evict[1], "A");
        CHECK_STR(p.evict[2], "C");
    }
    /* a measured speed replaces the default */
    fr_memory_report r;
    fr_manager_memory(mg, &r);
    if (r.load_ms_total > 0)
        CHECK_NEAR(p.estimated_load_ms, 300.0 * MiB / (r.load_bytes_total / r.load_ms_total), 1e-3);
    fr_plan_free(&p);
    CHECK_INT(fr_manager_plan(mg, "nope", &p), FR_ENOENT);
    fr_manager_destroy(mg);
}

/* ---- unloads ---- */

typedef struct {
    fr_handle *h;
    bool released;          /* under F.mu */
    int delay_ms;           /* without cancel: release after this */
    fr_manager *mg;
    int acquire_rc;         /* an acquire of the same model during the drain */
} holder;

/* Hold h until the fake's cancel reaches its object (the drain has
 * begun), try to acquire the model again, then release. */
static void *hold_until_cancelled(void *p) {
    holder *a = p;
    fake_obj *o = fr_handle_obj(a->h);
    pthread_mutex_lock(&F.mu);
    while (!o->cancelled) pthread_cond_wait(&F.cv, &F.mu);
    pthread_mutex_unlock(&F.mu);
    fr_handle *h2;
    a->acquire_rc = fr_manager_acquire(a->mg, fr_handle_id(a->h), -2, &h2);
    if (a->acquire_rc == 0) fr_manager_release(h2);
    pthread_mutex_lock(&F.mu);
    a->released = true;
    pthread_mutex_unlock(&F.mu);
    fr_manager_release(a->h);
    return NULL;
}

static void *hold_for_a_while(void *p) {
    holder *a = p;
    sleep_ms(a->delay_ms);
    pthread_mutex_lock(&F.mu);
    a->released = true;
    pthread_mutex_unlock(&F.mu);
    fr_manager_release(a->h);
    return NULL;
}

static void test_unload(void) {
    reset_fake();
    fr_manager_config c = test_config(&F, test_path("models"), 1000 * MiB);
    fr_manager *mg;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    CHECK_INT(fr_manager_unload(mg, "nope", false), FR_ENOENT);
    CHECK_INT(fr_manager_unload(mg, "A", false), 0);    /* not loaded: nothing to do */
    use(mg, "A");
    CHECK_INT(fr_manager_unload(mg, "A", false), 0);
    CHECK_INT(model_state(mg, "A"), FR_MS_UNLOADED);

    /* in use: 409 without force */
    fr_handle *h;
    CHECK_INT(fr_manager_acquire(mg, "A", -2, &h), 0);
    CHECK_INT(fr_manager_unload(mg, "A", false), FR_ECONFLICT);
    CHECK(strstr(fr_errdetail(), "1 request in flight") != NULL);
    CHECK_INT(model_state(mg, "A"), FR_MS_LOADED);

    /* force: cancel, wait for the handle, unload */
    holder ho = {h, false, 0, mg, 0};
    pthread_t t;
    pthread_create(&t, NULL, hold_until_cancelled, &ho);
    CHECK_INT(fr_manager_unload(mg, "A", true), 0);
    pthread_mutex_lock(&F.mu);
    CHECK(ho.released);
    CHECK_INT(F.cancels, 1);
    pthread_mutex_unlock(&F.mu);
    pthread_join(t, NULL);
    CHECK_INT(ho.acquire_rc, FR_EBUSY);             /* no waiting on a drain */
    CHECK_INT(model_state(mg, "A"), FR_MS_UNLOADED);
    use(mg, "A");                                   /* loads again */
    CHECK_STR(F.log, "+A -A +A -A +A ");
    fr_memory_report r;
    fr_manager_memory(mg, &r);
    CHECK_INT(r.evictions[FR_EVICT_REQUEST], 2);

    /* unload_idle: the idle ones, not the busy one */
    use(mg, "B");
    CHECK_INT(fr_manager_acquire(mg, "C", -2, &h), 0);
    char **ids;
    size_t n;
    uint64_t freed;
    CHECK_INT(fr_manager_unload_idle(mg, &ids, &n, &freed), 0);
    CHECK_INT(n, 2);
    if (n == 2) {
        CHECK_STR(ids[0], "A");
        CHECK_STR(ids[1], "B");
    }
    CHECK_INT(freed, 200 * MiB);
    fr_manager_free_ids(ids, n);
    CHECK_STR(loaded_set(mg), "C");
    CHECK_INT(fr_manager_unload_idle(mg, &ids, &n, &freed), 0);
    CHECK_INT(n, 0);
    CHECK(ids == NULL);
    CHECK_INT(freed, 0);
    fr_manager_release(h);
    fr_manager_destroy(mg);

    /* a loader without cancel: force waits for the request to end */
    reset_fake();
    c.loader.cancel = NULL;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    CHECK_INT(fr_manager_acquire(mg, "A", -2, &h), 0);
    ho = (holder){h, false, 30, mg, 0};
    pthread_create(&t, NULL, hold_for_a_while, &ho);
    CHECK_INT(fr_manager_unload(mg, "A", true), 0);
    pthread_mutex_lock(&F.mu);
    CHECK(ho.released);
    CHECK_INT(F.cancels, 0);
    pthread_mutex_unlock(&F.mu);
    pthread_join(t, NULL);
    CHECK_INT(model_state(mg, "A"), FR_MS_UNLOADED);
    fr_manager_destroy(mg);
}

/* A holder that does not let go when cancelled (a client that does not
 * read): the forced unload gives up after FR_FORCE_UNLOAD_WAIT_MS, the
 * model is handed out again at once, and it goes when its last handle
 * does.  Releases from a loader's thread (release_async) leave the unload
 * they make due to housekeeping.  And the admission of request bytes. */
static void test_unload_bounded(void) {
    reset_fake();
    fr_manager_config c = test_config(&F, test_path("models"), 1000 * MiB);
    c.housekeeping_ms = 60000;          /* only release_async's wake-up runs a pass */
    fr_manager *mg;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    fr_handle *h, *h2;
    CHECK_INT(fr_manager_acquire(mg, "A", -2, &h), 0);
    uint64_t t0 = fr_now_ns();
    CHECK_INT(fr_manager_unload(mg, "A", true), FR_ECONFLICT);
    double waited_ms = (double)(fr_now_ns() - t0) / 1e6;
    CHECK_MSG(waited_ms >= FR_FORCE_UNLOAD_WAIT_MS - 50, "gave up after %.0f ms", waited_ms);
    CHECK(strstr(fr_errdetail(), "stays loaded") != NULL);
    CHECK_INT(F.cancels, 1);
    CHECK_INT(model_state(mg, "A"), FR_MS_LOADED);
    CHECK_INT(fr_manager_acquire(mg, "A", -2, &h2), 0);     /* not FR_EBUSY any more */
    fr_manager_release(h2);
    CHECK_INT(model_state(mg, "A"), FR_MS_LOADED);          /* h still holds it */
    fr_manager_release(h);                                  /* the last: unloaded now */
    CHECK_INT(model_state(mg, "A"), FR_MS_UNLOADED);
    use(mg, "A");                                           /* and loads again as usual */
    CHECK_INT(model_state(mg, "A"), FR_MS_LOADED);

    /* release_async with keep_alive 0: no unload in the caller, housekeeping does it */
    CHECK_INT(fr_manager_acquire(mg, "B", 0, &h), 0);
    fr_manager_release_async(h);
    bool gone = false;
    for (int i = 0; i < 400 && !gone; i++) {
        gone = model_state(mg, "B") == FR_MS_UNLOADED;
        if (!gone) usleep(5000);
    }
    CHECK_MSG(gone, "B still %s after release_async with keep_alive 0",
              fr_model_state_name(model_state(mg, "B")));
    CHECK_INT(model_state(mg, "A"), FR_MS_LOADED);          /* keep-alive 5 min */

    /* admission of request bytes: A holds 100 MiB of the 1000 */
    CHECK_INT(fr_manager_admit_bytes(mg, 100 * MiB, "a small reply"), 0);
    CHECK_INT(fr_manager_admit_bytes(mg, 950 * MiB, "the reply to 9 inputs"), FR_EBUDGET);
    CHECK(strstr(fr_errdetail(), "the reply to 9 inputs needs 950.0 MiB") != NULL);
    fr_memory_report r;
    fr_manager_memory(mg, &r);
    CHECK_INT(r.sheds_budget, 1);
    fr_manager_destroy(mg);
}

/* ---- rescan ---- */

static int n_listed(fr_manager *mg) {
    fr_model_info *v;
    size_t n;
    if (fr_manager_list(mg, &v, &n) < 0) return -1;
    fr_free(v);
    return (int)n;
}

static void test_rescan(void) {
    reset_fake();
    fake_add(&F, "D", 80 * MiB, 15 * MiB, 5 * MiB);
    fake_add(&F, "X", 10 * MiB, 0, 0);
    fr_manager_config c = test_config(&F, test_path("models"), 1000 * MiB);
    fr_manager *mg;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    CHECK_INT(n_listed(mg), 5);

    /* a new file and a removed one */
    put_file("models/D.gguf", "");
    del_file("models/C.gguf");
    CHECK_INT(fr_manager_rescan(mg), 0);
    CHECK_INT(n_listed(mg), 5);
    CHECK_INT(model_state(mg, "D"), FR_MS_UNLOADED);
    CHECK_INT(model_state(mg, "C"), FR_ENOENT);
    fr_model_info info;
    CHECK_INT(fr_manager_get(mg, "D", &info), 0);
    CHECK_INT(info.estimated_bytes, 100 * MiB);

    /* a busy model whose file goes: kept until released */
    fr_handle *h;
    CHECK_INT(fr_manager_acquire(mg, "A", -2, &h), 0);
    del_file("models/A.gguf");
    CHECK_INT(fr_manager_rescan(mg), 0);
    CHECK_INT(fr_manager_get(mg, "A", &info), 0);
    CHECK(info.removed);
    CHECK_INT(info.state, FR_MS_LOADED);
    fr_handle *h2;
    CHECK_INT(fr_manager_acquire(mg, "A", -2, &h2), FR_ENOENT);
    CHECK(strstr(fr_errdetail(), "removed") != NULL);
    fr_manager_release(h);
    CHECK_INT(model_state(mg, "A"), FR_ENOENT);     /* unloaded and dropped */
    CHECK_STR(F.log, "+A -A ");

    /* an idle loaded model whose file goes: unloaded at the rescan */
    use(mg, "D");
    del_file("models/D.gguf");
    CHECK_INT(fr_manager_rescan(mg), 0);
    CHECK_INT(model_state(mg, "D"), FR_ENOENT);
    CHECK_STR(F.log, "+A -A +D -D ");
    fr_memory_report r;
    fr_manager_memory(mg, &r);
    CHECK_INT(r.evictions[FR_EVICT_RESCAN], 2);

    /* files come back; a changed file is probed again */
    put_file("models/A.gguf", "");
    put_file("models/C.gguf", "");
    int probes = F.probes;
    CHECK_INT(fr_manager_rescan(mg), 0);
    CHECK_INT(n_listed(mg), 5);
    CHECK_INT(F.probes, probes + 2);
    CHECK_INT(fr_manager_rescan(mg), 0);            /* nothing changed: no probes */
    CHECK_INT(F.probes, probes + 2);
    put_file("models/B.gguf", "now with some bytes");
    fake_find(&F, "B")->kv = 35 * MiB;
    CHECK_INT(fr_manager_rescan(mg), 0);
    CHECK_INT(F.probes, probes + 3);
    fr_manager_get(mg, "B", &info);
    CHECK_INT(info.file_bytes, 19);
    CHECK_INT(info.estimated_bytes, 120 * MiB);
    fake_find(&F, "B")->kv = 15 * MiB;

    /* the directory itself vanishes: FR_EIO, registry unchanged */
    fr_manager_destroy(mg);
    put_file("gone/X.gguf", "");
    c = test_config(&F, test_path("gone"), 1000 * MiB);
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    CHECK_INT(n_listed(mg), 1);
    del_file("gone/X.gguf");
    rmdir(test_path("gone"));
    CHECK_INT(fr_manager_rescan(mg), FR_EIO);
    CHECK(strstr(fr_errdetail(), "gone") != NULL);
    CHECK_INT(n_listed(mg), 1);
    fr_manager_destroy(mg);
}

/* ---- admission counts max(estimate, measurement) ---- */

static void test_measured(void) {
    reset_fake();
    fr_manager_config c = test_config(&F, test_path("models"), 250 * MiB);
    fr_manager *mg;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    /* A grows past its estimate (160 MiB measured): B does not fit beside it */
    fake_find(&F, "A")->extra = 60 * MiB;
    use(mg, "A");
    use(mg, "B");
    CHECK_STR(loaded_set(mg), "B");
    fake_find(&F, "A")->extra = 0;

    /* B's pages are not resident yet: it still counts its estimate */
    fake_find(&F, "B")->resident = 0;
    fr_manager_housekeep(mg);                       /* measures */
    fr_memory_report r;
    fr_manager_memory(mg, &r);
    /* used: resident weights 0 + kv 15 + scratch 5 (the rest of the heap is
     * smaller than that) */
    CHECK_INT(r.used_bytes, 20 * MiB);
    CHECK(r.heap_bytes < 20 * MiB);
    use(mg, "C");
    CHECK_STR(loaded_set(mg), "B,C");
    use(mg, "A");                                   /* 100 + 100 + 100 > 250 */
    CHECK_STR(loaded_set(mg), "A,C");
    check_used_within_budget(mg);
    fr_manager_destroy(mg);
}

/* ---- preload ---- */

static void test_preload(void) {
    reset_fake();
    fr_model_cfg ini[2] = {
        {.id = "P", .path = test_path("ini/P.gguf"), .keep_alive_ms = -2, .preload = true},
        {.id = "ini", .path = test_path("ini/ini-model.gguf"), .keep_alive_ms = -2, .preload = true},
    };
    fake_find(&F, "ini")->fail_loads = 1;
    fr_manager_config c = test_config(&F, test_path("models"), 1000 * MiB);
    c.defaults.keep_alive_ms = 1;
    c.models = ini;
    c.n_models = 2;
    fr_manager *mg;
    int level = fr_log_level();
    fr_log_set_level(FR_LOG_ERROR);                 /* the failing preload warns */
    CHECK_INT(fr_manager_create(&c, &mg), 0);       /* a failing preload is not fatal */
    fr_log_set_level(level);
    fr_model_info info;
    fr_manager_get(mg, "P", &info);
    CHECK_INT(info.state, FR_MS_LOADED);
    CHECK_INT(info.keep_alive_ms, -1);              /* preloaded: stays */
    fr_manager_get(mg, "ini", &info);
    CHECK_INT(info.state, FR_MS_FAILED);
    sleep_ms(20);
    fr_manager_housekeep(mg);
    CHECK_INT(model_state(mg, "P"), FR_MS_LOADED);
    fr_manager_destroy(mg);
}

/* ---- configuration ---- */

static void test_config_errors(void) {
    reset_fake();
    int level = fr_log_level();
    fr_log_set_level(FR_LOG_ERROR);                 /* probes of unknown models warn */
    fr_manager *mg = (fr_manager *)&mg;
    fr_manager_config c = test_config(&F, test_path("models"), 1000 * MiB);
    fr_model_cfg two[2] = {
        {.id = "x", .path = test_path("ini/P.gguf"), .keep_alive_ms = -2},
        {.id = "x", .path = test_path("ini/ini-model.gguf"), .keep_alive_ms = -2},
    };
    c.models = two;
    c.n_models = 2;
    CHECK_INT(fr_manager_create(&c, &mg), FR_EINVAL);
    CHECK(mg == NULL);
    CHECK(strstr(fr_errdetail(), "'x' is used twice") != NULL);
    two[1].id = "y";
    two[1].alias = "x";
    CHECK_INT(fr_manager_create(&c, &mg), FR_EINVAL);
    CHECK(strstr(fr_errdetail(), "alias 'x'") != NULL);
    two[1].alias = NULL;
    two[1].path = test_path("ini/missing.gguf");
    CHECK_INT(fr_manager_create(&c, &mg), FR_EINVAL);
    CHECK_MSG(strstr(fr_errdetail(), "missing.gguf") && strstr(fr_errdetail(), "'y'"),
              "detail: %s", fr_errdetail());
    two[1].path = test_path("ini/ini-model.gguf");
    two[1].keep_alive_ms = -7;
    CHECK_INT(fr_manager_create(&c, &mg), FR_EINVAL);
    two[1].keep_alive_ms = -2;
    two[1].path = NULL;
    CHECK_INT(fr_manager_create(&c, &mg), FR_EINVAL);
    two[1].path = test_path("ini/ini-model.gguf");
    c.mem_warning = 95;
    c.mem_critical = 90;
    CHECK_INT(fr_manager_create(&c, &mg), FR_EINVAL);
    CHECK(strstr(fr_errdetail(), "thresholds") != NULL);
    c.mem_warning = c.mem_critical = 0;
    c.max_loaded = -1;
    CHECK_INT(fr_manager_create(&c, &mg), FR_EINVAL);
    c.max_loaded = 0;
    c.loader.probe = NULL;
    CHECK_INT(fr_manager_create(&c, &mg), FR_EINVAL);
    CHECK(strstr(fr_errdetail(), "probe") != NULL);
    c.loader = fake_loader(&F);
    c.models_dir = test_path("no-such-dir");
    CHECK_INT(fr_manager_create(&c, &mg), FR_EIO);
    CHECK(strstr(fr_errdetail(), "no-such-dir") != NULL);
    CHECK_INT(fr_manager_create(NULL, &mg), FR_EINVAL);

    /* a directory file that is an INI model's name or file is the INI's */
    c.models_dir = test_path("models");
    fr_model_cfg same[2] = {
        {.id = "chat", .path = test_path("models/A.gguf"), .keep_alive_ms = -2},
        {.id = "B", .path = test_path("ini/P.gguf"), .keep_alive_ms = -2},
    };
    c.models = same;
    c.n_models = 2;
    fake_add(&F, "chat", 10 * MiB, 0, 0);
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    CHECK_INT(model_state(mg, "A"), FR_ENOENT);     /* A.gguf is "chat" */
    fr_model_info info;
    CHECK_INT(fr_manager_get(mg, "B", &info), 0);
    CHECK_STR(info.path, test_path("ini/P.gguf"));
    CHECK_INT(n_listed(mg), 5);                     /* B(ini) big C chat slow */
    fr_manager_destroy(mg);
    F.n_models--;

    /* the default budget: 75% of the (fake) machine */
    c = test_config(&F, NULL, 0);
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    fr_memory_report r;
    fr_manager_memory(mg, &r);
    CHECK_INT(r.budget_bytes, 16000000ull * 1024 / 4 * 3);
    CHECK_INT(r.sys_total, 16000000ull * 1024);
    CHECK_NEAR(r.warning, 80, 0);
    CHECK_NEAR(r.critical, 90, 0);
    CHECK_NEAR(r.emergency, 95, 0);
    CHECK_INT(n_listed(mg), 0);
    fr_manager_destroy(mg);
    fr_log_set_level(level);
}

/* ---- destroy waits for handles ---- */

static void test_destroy_waits(void) {
    reset_fake();
    fr_manager_config c = test_config(&F, test_path("models"), 1000 * MiB);
    fr_manager *mg;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    use(mg, "B");
    fr_handle *h;
    CHECK_INT(fr_manager_acquire(mg, "A", -2, &h), 0);
    holder ho = {h, false, 30, mg, 0};
    pthread_t t;
    pthread_create(&t, NULL, hold_for_a_while, &ho);
    fr_manager_destroy(mg);
    pthread_mutex_lock(&F.mu);
    CHECK(ho.released);
    CHECK_INT(F.unloads, 2);
    pthread_mutex_unlock(&F.mu);
    pthread_join(t, NULL);
}

/* ---- a small concurrent run ---- */

typedef struct {
    fr_manager *mg;
    unsigned seed;
    int bad;
} mix_arg;

static void *mix_thread(void *p) {
    mix_arg *a = p;
    static const char *ids[] = {"A", "B", "C"};
    for (int i = 0; i < 200; i++) {
        a->seed = a->seed * 1103515245u + 12345u;
        const char *id = ids[(a->seed >> 16) % 3];
        fr_handle *h;
        int rc = fr_manager_acquire(a->mg, id, (a->seed >> 8) % 4 == 0 ? 0 : -2, &h);
        if (rc == FR_EBUDGET) continue;             /* every resident was busy */
        if (rc != 0 || strcmp(fr_handle_id(h), id)) { a->bad++; continue; }
        if ((a->seed >> 4) % 8 == 0) fr_manager_housekeep(a->mg);
        fr_manager_release(h);
    }
    return NULL;
}

static void test_concurrent(void) {
    reset_fake();
    fr_manager_config c = test_config(&F, test_path("models"), 250 * MiB);
    fr_manager *mg;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    pthread_t t[4];
    mix_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (mix_arg){mg, 17u * (unsigned)i + 1, 0};
        pthread_create(&t[i], NULL, mix_thread, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK_INT(a[i].bad, 0);
    }
    check_used_within_budget(mg);
    fr_model_info *v;
    size_t n;
    CHECK_INT(fr_manager_list(mg, &v, &n), 0);
    int loaded = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK_INT(v[i].in_flight, 0);
        loaded += v[i].state == FR_MS_LOADED;
    }
    fr_free(v);
    CHECK(loaded <= 2);
    fr_manager_destroy(mg);
    CHECK_INT(F.loads, F.unloads);
}

int main(void) {
    test_root_init("manager");
    setup_models();
    size_t mem0 = fr_mem_in_use();

    test_lazy();
    test_lru();
    test_pinned();
    test_busy();
    test_max_loaded();
    test_single_flight();
    test_probe_failure();
    test_keep_alive();
    test_plan();
    test_unload();
    test_unload_bounded();
    test_rescan();
    test_measured();
    test_preload();
    test_config_errors();
    test_destroy_waits();
    test_concurrent();

    CHECK_INT(fr_mem_in_use(), mem0);               /* no leaks */
    fake_deinit(&F);
    test_root_done();
    return harness_done();
}
