/*
 * test_manager_oom.c — allocation failures: fr_mem_fail_after(n) makes
 * the n-th allocation from now fail, for every n until the call goes
 * through.  Every failing fr_manager_create, acquire (including one that
 * must evict first), rescan, list, plan and unload_idle returns FR_ENOMEM
 * (create may also succeed with a preload that failed: that is logged,
 * not fatal), leaves the manager usable, and leaks nothing (the counted
 * heap returns to where it was; ASan checks the rest).
 */
#include "harness.h"

#include "fake_loader.h"

#include "base/log.h"

static fake F;

#define SWEEP_MAX 400

static fr_manager_config config(fr_model_cfg *ini, size_t n_ini, uint64_t budget) {
    fr_manager_config c = test_config(&F, test_path("models"), budget);
    c.models = ini;
    c.n_models = n_ini;
    return c;
}

static int n_listed(fr_manager *mg) {
    fr_model_info *v;
    size_t n;
    if (fr_manager_list(mg, &v, &n) < 0) return -1;
    fr_free(v);
    return (int)n;
}

static void sweep_create(void) {
    fr_model_cfg ini[2] = {
        {.id = "P", .path = test_path("ini/P.gguf"), .alias = "pinned", .keep_alive_ms = -2,
         .pin = true, .preload = true},
        {.id = "Q", .path = test_path("ini/Q.gguf"), .keep_alive_ms = -2},
    };
    fr_manager_config c = config(ini, 2, 1000 * MiB);
    size_t mem0 = fr_mem_in_use();
    int ok = 0, oom = 0, n;
    for (n = 0; n < SWEEP_MAX; n++) {
        fr_manager *mg = NULL;
        fr_mem_fail_after(n);
        int rc = fr_manager_create(&c, &mg);
        fr_mem_fail_after(-1);
        CHECK_MSG(rc == 0 || rc == FR_ENOMEM, "create, allocation %d fails: %s", n, fr_errname(rc));
        if (rc == FR_ENOMEM) {
            oom++;
            CHECK(mg == NULL);
            CHECK_MSG(strstr(fr_errdetail(), "out of memory") != NULL, "detail: %s", fr_errdetail());
        }
        if (rc == 0) {
            ok++;
            CHECK_INT(n_listed(mg), 5);             /* A B C P Q */
            /* the preload may have failed (logged): usable either way */
            bool preloaded = model_state(mg, "P") == FR_MS_LOADED;
            fr_handle *h;
            CHECK_INT(fr_manager_acquire(mg, "pinned", -2, &h), 0);
            fr_manager_release(h);
            fr_manager_destroy(mg);
            if (preloaded && ok > 3) break;         /* well past the last allocation */
        }
        CHECK_MSG(fr_mem_in_use() == mem0, "create, allocation %d fails: %zu bytes leaked", n,
                  fr_mem_in_use() - mem0);
    }
    CHECK(oom > 5);
    CHECK(n < SWEEP_MAX);
}

static void sweep_acquire(void) {
    fr_manager_config c = config(NULL, 0, 250 * MiB);
    size_t mem0 = fr_mem_in_use();
    for (int evict = 0; evict < 2; evict++) {
        int n;
        for (n = 0; n < SWEEP_MAX; n++) {
            fr_manager *mg;
            CHECK_INT(fr_manager_create(&c, &mg), 0);
            if (evict) {                            /* C needs A's room */
                fr_handle *h;
                CHECK_INT(fr_manager_acquire(mg, "A", -2, &h), 0);
                fr_manager_release(h);
                CHECK_INT(fr_manager_acquire(mg, "B", -2, &h), 0);
                fr_manager_release(h);
            }
            size_t mem1 = fr_mem_in_use();
            fr_handle *h = NULL;
            fr_mem_fail_after(n);
            int rc = fr_manager_acquire(mg, "C", -2, &h);
            fr_mem_fail_after(-1);
            CHECK_MSG(rc == 0 || rc == FR_ENOMEM, "acquire, allocation %d fails: %s", n, fr_errname(rc));
            if (rc == FR_ENOMEM) {
                CHECK(h == NULL);
                CHECK_MSG(strstr(fr_errdetail(), "out of memory") != NULL, "detail: %s", fr_errdetail());
                if (!evict) CHECK_INT(fr_mem_in_use(), mem1);
                /* the next acquire works */
                CHECK_INT(fr_manager_acquire(mg, "C", -2, &h), 0);
            }
            if (h) fr_manager_release(h);
            fr_memory_report r;
            fr_manager_memory(mg, &r);
            CHECK(r.used_bytes <= r.budget_bytes);
            fr_manager_destroy(mg);
            CHECK_MSG(fr_mem_in_use() == mem0, "acquire, allocation %d fails: leak", n);
            if (rc == 0) break;
        }
        CHECK(n >= 2);                              /* the handle and the fake's object */
    }
}

static void sweep_others(void) {
    fr_manager_config c = config(NULL, 0, 250 * MiB);
    size_t mem0 = fr_mem_in_use();
    fr_manager *mg;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    fr_handle *h;
    CHECK_INT(fr_manager_acquire(mg, "A", -2, &h), 0);
    fr_manager_release(h);
    CHECK_INT(fr_manager_acquire(mg, "B", -2, &h), 0);
    fr_manager_release(h);

    /* rescan with new and removed files */
    put_file("models/D.gguf", "");
    put_file("models/E.gguf", "");
    del_file("models/C.gguf");
    int n, rc = -1;
    for (n = 0; n < SWEEP_MAX && rc; n++) {
        size_t mem1 = fr_mem_in_use();
        fr_mem_fail_after(n);
        rc = fr_manager_rescan(mg);
        fr_mem_fail_after(-1);
        CHECK_MSG(rc == 0 || rc == FR_ENOMEM, "rescan, allocation %d fails: %s", n, fr_errname(rc));
        if (rc == FR_ENOMEM) {
            CHECK_INT(n_listed(mg), 3);             /* unchanged: A B C */
            CHECK_INT(fr_mem_in_use(), mem1);
        }
    }
    CHECK_INT(n_listed(mg), 4);                     /* A B D E */
    CHECK(n > 3);

    /* list, plan, unload_idle */
    for (n = 0, rc = -1; n < SWEEP_MAX && rc; n++) {
        fr_model_info *v = NULL;
        size_t k = 0;
        fr_mem_fail_after(n);
        rc = fr_manager_list(mg, &v, &k);
        fr_mem_fail_after(-1);
        CHECK(rc == 0 || (rc == FR_ENOMEM && v == NULL && k == 0));
        fr_free(v);
    }
    for (n = 0, rc = -1; n < SWEEP_MAX && rc; n++) {
        fr_plan p;
        fr_mem_fail_after(n);
        rc = fr_manager_plan(mg, "D", &p);          /* evicts A */
        fr_mem_fail_after(-1);
        CHECK(rc == 0 || (rc == FR_ENOMEM && p.evict == NULL));
        if (rc == 0) CHECK(p.fits && p.n_evict == 1);
        fr_plan_free(&p);
    }
    CHECK(n >= 2);
    CHECK_STR(loaded_set(mg), "A,B");
    for (n = 0, rc = -1; n < SWEEP_MAX && rc; n++) {
        char **ids = NULL;
        size_t k = 0;
        fr_mem_fail_after(n);
        rc = fr_manager_unload_idle(mg, &ids, &k, NULL);
        fr_mem_fail_after(-1);
        CHECK(rc == 0 || rc == FR_ENOMEM);
        if (rc == FR_ENOMEM) CHECK_STR(loaded_set(mg), "A,B");   /* nothing unloaded */
        if (rc == 0) CHECK_INT(k, 2);
        fr_manager_free_ids(ids, k);
    }
    CHECK(n >= 3);
    CHECK_STR(loaded_set(mg), "");
    fr_manager_destroy(mg);
    CHECK_INT(fr_mem_in_use(), mem0);
    put_file("models/C.gguf", "");
    del_file("models/D.gguf");
    del_file("models/E.gguf");
}

int main(void) {
    test_root_init("manager-oom");
    fake_init(&F);
    const char *ids[] = {"A", "B", "C", "D", "E", "P", "Q"};
    for (int i = 0; i < 7; i++) fake_add(&F, ids[i], 80 * MiB, 15 * MiB, 5 * MiB);
    put_file("models/A.gguf", "");
    put_file("models/B.gguf", "");
    put_file("models/C.gguf", "");
    put_file("ini/P.gguf", "");
    put_file("ini/Q.gguf", "");
    int level = fr_log_level();
    fr_log_set_level(FR_LOG_ERROR);                 /* failing preloads warn: keep quiet */

    sweep_create();
    sweep_acquire();
    sweep_others();

    fr_log_set_level(level);
    fake_deinit(&F);
    test_root_done();
    return harness_done();
}
