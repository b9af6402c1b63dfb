/*
 * test_pressure.c — the manager's memory levels from fake files under
 * FRUGAL_SYSROOT: the fake loader keeps /proc/meminfo up to date as it
 * loads and unloads, so that each unload really lowers the level the
 * manager reads next.  Critical evicts idle models LRU-first until below
 * critical (busy ones are skipped); emergency evicts every idle model and
 * refuses loads while loaded models are still handed out; service returns
 * when the files say the pressure fell.  PSI makes warning and critical
 * (one eviction per pass); a cgroup limit takes over the percentage; the
 * default budget follows the cgroup; transitions are logged once.
 */
#include "harness.h"

#include <fcntl.h>

#include "fake_loader.h"

#include "base/log.h"

static fake F;

static void use(fr_manager *mg, const char *id) {
    fr_handle *h;
    int rc = fr_manager_acquire(mg, id, -2, &h);
    CHECK_MSG(rc == 0, "acquire %s: %s: %s", id, fr_errname(rc), fr_errdetail());
    if (rc == 0) fr_manager_release(h);
}

static int level_now(fr_manager *mg, fr_memory_report *r) {
    fr_manager_memory(mg, r);
    return r->level;
}

static void put_psi(double some, double full) {
    char buf[256];
    snprintf(buf, sizeof buf, "some avg10=%.2f avg60=1.00 avg300=0.50 total=123456\n"
             "full avg10=%.2f avg60=0.50 avg300=0.10 total=23456\n", some, full);
    put_file("sys/proc/pressure/memory", buf);
}

/* Count lines containing what in a file. */
static int count_in_file(const char *path, const char *what) {
    FILE *fp = fopen(path, "r");
    if (!fp) return -1;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, fp)) n += strstr(line, what) != NULL;
    fclose(fp);
    return n;
}

int main(void) {
    test_root_init("pressure");
    fake_init(&F);
    fake_add(&F, "A", 80 * MiB, 15 * MiB, 5 * MiB);
    fake_add(&F, "B", 80 * MiB, 15 * MiB, 5 * MiB);
    fake_add(&F, "C", 80 * MiB, 15 * MiB, 5 * MiB);
    put_file("models/A.gguf", "");
    put_file("models/B.gguf", "");
    put_file("models/C.gguf", "");
    /* a 5000 MiB machine: each model is 2 % of it */
    snprintf(F.meminfo, sizeof F.meminfo, "%s", test_path("sys/proc/meminfo"));
    F.sim_total = 5000 * MiB;
    fake_set_base(&F, 4350 * MiB);                  /* 87 % before any model */
    int log_level = fr_log_level();
    fr_log_set_level(FR_LOG_ERROR);
    size_t mem0 = fr_mem_in_use();

    fr_manager_config c = test_config(&F, test_path("models"), 1000 * MiB);
    fr_manager *mg;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    fr_memory_report r;
    CHECK_INT(level_now(mg, &r), FR_LEVEL_WARNING);
    CHECK_NEAR(r.used_pct, 87, 1e-9);
    CHECK_INT(r.sys_total, 5000 * MiB);
    CHECK_INT(r.cgroup_limit, 0);
    CHECK_NEAR(r.psi_some_avg10, -1, 0);            /* no PSI file */

    /* ---- critical: idle models go, LRU first, until below critical ---- */
    use(mg, "A");                                   /* 89 % */
    use(mg, "B");                                   /* 91 %: critical does not refuse loads */
    use(mg, "C");                                   /* 93 % */
    CHECK_INT(level_now(mg, &r), FR_LEVEL_CRITICAL);
    fr_handle *hb;
    CHECK_INT(fr_manager_acquire(mg, "B", -2, &hb), 0);   /* B busy: LRU order is A, C, B */
    fr_manager_housekeep(mg);
    CHECK_STR(loaded_set(mg), "B");                 /* A then C (91 % is still critical) */
    CHECK_STR(F.log, "+A +B +C -A -C ");
    CHECK_INT(level_now(mg, &r), FR_LEVEL_WARNING);
    CHECK_NEAR(r.used_pct, 89, 1e-9);
    CHECK_INT(r.evictions[FR_EVICT_CRITICAL], 2);
    fr_manager_housekeep(mg);                       /* below critical: nothing more */
    CHECK_STR(loaded_set(mg), "B");

    /* ---- emergency: every idle model goes, new loads are refused ---- */
    use(mg, "A");
    fake_set_base(&F, 4700 * MiB);                  /* 98 % with A and B */
    fr_manager_housekeep(mg);
    CHECK_STR(loaded_set(mg), "B");                 /* B is busy */
    CHECK_INT(level_now(mg, &r), FR_LEVEL_EMERGENCY);
    CHECK_NEAR(r.used_pct, 96, 1e-9);
    CHECK_INT(r.evictions[FR_EVICT_EMERGENCY], 1);
    fr_handle *h;
    CHECK_INT(fr_manager_acquire(mg, "C", -2, &h), FR_EBUDGET);
    CHECK_MSG(strstr(fr_errdetail(), "memory emergency") != NULL, "detail: %s", fr_errdetail());
    CHECK_INT(model_state(mg, "C"), FR_MS_UNLOADED);     /* refused, not failed */
    fr_plan p;
    CHECK_INT(fr_manager_plan(mg, "C", &p), 0);
    CHECK(!p.fits);
    CHECK(strstr(p.reason, "memory emergency") != NULL);
    fr_plan_free(&p);
    CHECK_INT(fr_manager_acquire(mg, "B", -2, &h), 0);    /* loaded: still served */
    fr_manager_release(h);
    fr_manager_memory(mg, &r);
    CHECK_INT(r.sheds_emergency, 1);
    CHECK_INT(r.sheds_budget, 0);

    /* ---- the files say pressure fell: loads work again (fresh reading) ---- */
    fake_set_base(&F, 2000 * MiB);
    use(mg, "C");
    CHECK_STR(loaded_set(mg), "B,C");
    CHECK_INT(level_now(mg, &r), FR_LEVEL_OK);
    fr_manager_release(hb);

    /* ---- PSI ---- */
    use(mg, "A");
    CHECK_STR(loaded_set(mg), "A,B,C");
    put_psi(15, 2);                                 /* some >= 10: warning */
    fr_manager_housekeep(mg);
    CHECK_INT(level_now(mg, &r), FR_LEVEL_WARNING);
    CHECK_NEAR(r.psi_some_avg10, 15, 1e-9);
    CHECK_NEAR(r.psi_full_avg10, 2, 1e-9);
    CHECK_STR(loaded_set(mg), "A,B,C");
    put_psi(40, 20);                                /* full >= 10: critical, one per pass */
    F.log[0] = 0;
    fr_manager_housekeep(mg);
    CHECK_INT(level_now(mg, &r), FR_LEVEL_CRITICAL);
    CHECK_STR(F.log, "-C ");                        /* LRU: C, then B (released after C), A */
    fr_manager_housekeep(mg);
    CHECK_STR(F.log, "-C -B ");
    CHECK(r.level != FR_LEVEL_EMERGENCY);           /* PSI alone never makes one */
    put_psi(0, 0);
    fr_manager_housekeep(mg);
    CHECK_INT(level_now(mg, &r), FR_LEVEL_OK);
    CHECK_STR(loaded_set(mg), "A");

    /* ---- transitions are logged once ---- */
    {
        char logpath[512];
        snprintf(logpath, sizeof logpath, "%s", test_path("stderr.log"));
        fflush(stderr);
        int saved = dup(2), fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        close(fd);
        fr_log_set_level(FR_LOG_WARN);
        put_psi(15, 0);
        for (int i = 0; i < 3; i++) fr_manager_housekeep(mg);
        put_psi(0, 0);
        for (int i = 0; i < 3; i++) fr_manager_housekeep(mg);
        fr_log_set_level(FR_LOG_ERROR);
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        CHECK_INT(count_in_file(logpath, "memory level warning (was ok)"), 1);
        CHECK_INT(count_in_file(logpath, "memory level"), 1);   /* the way back is info */
    }

    /* ---- a cgroup limit takes over the percentage ---- */
    put_file("sys/proc/self/cgroup", "0::/frugal.slice\n");
    put_file("sys/sys/fs/cgroup/frugal.slice/memory.max", "1048576000\n");        /* 1000 MiB */
    put_file("sys/sys/fs/cgroup/frugal.slice/memory.current", "1006632960\n");    /* 960 MiB */
    put_file("sys/sys/fs/cgroup/frugal.slice/memory.events",
             "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n");
    CHECK_INT(level_now(mg, &r), FR_LEVEL_EMERGENCY);
    CHECK_NEAR(r.used_pct, 96, 1e-9);
    CHECK_INT(r.cgroup_limit, 1000 * MiB);
    CHECK_INT(r.cgroup_current, 960 * MiB);
    CHECK_INT(r.cgroup_oom_kill, 1);
    fr_manager_housekeep(mg);
    CHECK_STR(loaded_set(mg), "");
    put_file("sys/sys/fs/cgroup/frugal.slice/memory.current", "524288000\n");     /* 50 % */
    use(mg, "B");
    CHECK_INT(level_now(mg, &r), FR_LEVEL_OK);
    fr_manager_destroy(mg);

    /* the default budget: 75 % of min(MemTotal, cgroup limit) */
    c.budget_bytes = 0;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    fr_manager_memory(mg, &r);
    CHECK_INT(r.budget_bytes, 750 * MiB);
    fr_manager_destroy(mg);

    CHECK_INT(fr_mem_in_use(), mem0);
    fr_log_set_level(log_level);
    fake_deinit(&F);
    test_root_done();
    return harness_done();
}
