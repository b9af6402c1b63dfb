/*
 * test_thermal.c — the manager's thermal rule (pressure.c) on fake sysfs
 * files under FRUGAL_SYSROOT, with a real compute pool of 4 threads:
 * temperatures over time → the forward-pass thread count and the slot cap
 * change with hysteresis (hot from the passive trip point − 5 °C, or 80 °C
 * without one; back only at 5 °C below that); the Pi firmware's
 * "throttled now" bits count as hot; the pool takes the new count at the
 * next compute turn; fr_manager_memory reports it all.
 */
#include "harness.h"

#include "fake_loader.h"

#include "base/log.h"
#include "kernels/pool.h"
#include "sched/sched.h"
#include "sched/sched_int.h"

static fake F;

static void temp(int millideg) {
    char buf[32];
    snprintf(buf, sizeof buf, "%d\n", millideg);
    put_file("sys/sys/class/thermal/thermal_zone0/temp", buf);
}

/* One housekeeping pass at this temperature; the report after it. */
static void step(fr_manager *mg, int millideg, fr_memory_report *r) {
    temp(millideg);
    fr_manager_housekeep(mg);
    fr_manager_memory(mg, r);
}

int main(void) {
    test_root_init("thermal");
    fake_init(&F);
    put_file("models/A.gguf", "");
    int log_level = fr_log_level();
    fr_log_set_level(FR_LOG_ERROR);
    size_t mem0 = fr_mem_in_use();

    fr_compute *cmp;
    CHECK_INT(fr_compute_create(4, &cmp), 0);
    fr_manager_config c = test_config(&F, test_path("models"), 1000 * MiB);
    c.defaults.parallel = 4;
    c.compute = cmp;
    fr_manager *mg;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    fr_memory_report r;

    /* no thermal zone: nothing known, nothing throttled */
    fr_manager_memory(mg, &r);
    CHECK(!r.temp_known && !r.throttled);
    CHECK_INT(r.compute_threads, 4);
    CHECK_INT(r.fw_throttled, -1);

    /* a Pi 5's zone: no passive trip point, so hot from 80 °C, cool at 75 */
    put_file("sys/sys/class/thermal/thermal_zone0/type", "cpu-thermal\n");
    put_file("sys/sys/class/thermal/thermal_zone0/trip_point_0_type", "critical\n");
    put_file("sys/sys/class/thermal/thermal_zone0/trip_point_0_temp", "110000\n");
    const int temps[] = {50000, 79900, 80000, 83000, 77000, 75100, 75000, 79000, 81000, 60000};
    const int hot[] = {0, 0, 1, 1, 1, 1, 0, 0, 1, 0};
    for (size_t i = 0; i < sizeof temps / sizeof temps[0]; i++) {
        step(mg, temps[i], &r);
        CHECK(r.temp_known);
        CHECK_NEAR(r.temp_c, temps[i] / 1000.0, 1e-9);
        CHECK_NEAR(r.hot_c, 80, 1e-9);
        CHECK_NEAR(r.cool_c, 75, 1e-9);
        CHECK_MSG(r.throttled == hot[i], "%d m°C (step %zu): throttled %d, want %d", temps[i], i, r.throttled,
                  hot[i]);
        CHECK_INT(r.compute_threads, hot[i] ? 2 : 4);
        CHECK_INT(fr_compute_threads_active(cmp), hot[i] ? 2 : 4);
        CHECK_INT(fr_compute_slot_cap(cmp), hot[i] ? 2 : 0);
    }
    CHECK_INT(fr_compute_threads(cmp), 4);          /* the pool's size stays */

    /* the pool takes the count at the next turn, not before */
    step(mg, 90000, &r);
    CHECK_INT(fr_pool_threads(fr__compute_pool(cmp)), 4);
    fr__compute_acquire(cmp);
    CHECK_INT(fr_pool_threads(fr__compute_pool(cmp)), 2);
    fr__compute_release(cmp);
    step(mg, 40000, &r);
    fr__compute_acquire(cmp);
    CHECK_INT(fr_pool_threads(fr__compute_pool(cmp)), 4);
    fr__compute_release(cmp);

    /* a passive trip point at 70 °C: hot from 65, cool at 60; the hottest zone counts */
    put_file("sys/sys/class/thermal/thermal_zone0/trip_point_1_type", "passive\n");
    put_file("sys/sys/class/thermal/thermal_zone0/trip_point_1_temp", "70000\n");
    put_file("sys/sys/class/thermal/thermal_zone1/temp", "30000\n");
    step(mg, 64000, &r);
    CHECK_NEAR(r.hot_c, 65, 1e-9);
    CHECK(!r.throttled);
    step(mg, 65500, &r);
    CHECK(r.throttled);
    step(mg, 61000, &r);
    CHECK(r.throttled);
    step(mg, 60000, &r);
    CHECK(!r.throttled);
    /* another zone, without trip points, is the hottest: its rule (80 °C) */
    put_file("sys/sys/class/thermal/thermal_zone1/temp", "78000\n");
    step(mg, 55000, &r);
    CHECK(!r.throttled);
    CHECK_NEAR(r.temp_c, 78, 1e-9);
    CHECK_NEAR(r.hot_c, 80, 1e-9);
    step(mg, 62000, &r);
    CHECK(!r.throttled);
    put_file("sys/sys/class/thermal/thermal_zone1/temp", "81000\n");
    step(mg, 55000, &r);
    CHECK(r.throttled);
    CHECK_NEAR(r.temp_c, 81, 1e-9);
    put_file("sys/sys/class/thermal/thermal_zone1/temp", "30000\n");
    step(mg, 55000, &r);
    CHECK(!r.throttled);
    CHECK_INT(r.compute_threads, 4);

    /* the firmware throttling now is hot at any temperature; its sticky
     * bits (since boot) and under-voltage alone are not */
    put_file("sys/sys/devices/platform/soc/soc:firmware/get_throttled", "0x50000\n");
    step(mg, 50000, &r);
    CHECK(!r.throttled);
    CHECK_INT(r.fw_throttled, 0x50000);
    put_file("sys/sys/devices/platform/soc/soc:firmware/get_throttled", "0x1\n");
    step(mg, 50000, &r);
    CHECK(!r.throttled);
    put_file("sys/sys/devices/platform/soc/soc:firmware/get_throttled", "0x8\n");
    step(mg, 50000, &r);
    CHECK(r.throttled);
    CHECK_INT(r.compute_threads, 2);
    put_file("sys/sys/devices/platform/soc/soc:firmware/get_throttled", "0x80008\n");
    step(mg, 50000, &r);
    CHECK(r.throttled);
    put_file("sys/sys/devices/platform/soc/soc:firmware/get_throttled", "0x80000\n");
    step(mg, 50000, &r);
    CHECK(!r.throttled);
    CHECK_INT(r.compute_threads, 4);
    fr_manager_destroy(mg);

    /* one slot when the default is 1 or 2; one thread of a 1-thread pool */
    fr_compute *one;
    CHECK_INT(fr_compute_create(1, &one), 0);
    c.compute = one;
    c.defaults.parallel = 2;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    step(mg, 99000, &r);
    CHECK(r.throttled);
    CHECK_INT(r.compute_threads, 1);
    CHECK_INT(fr_compute_slot_cap(one), 1);
    fr_manager_destroy(mg);
    fr_compute_destroy(one);

    /* without a compute pool: reported, nothing to throttle */
    c.compute = NULL;
    CHECK_INT(fr_manager_create(&c, &mg), 0);
    step(mg, 99000, &r);
    CHECK(r.throttled);
    CHECK_INT(r.compute_threads, 0);
    fr_manager_destroy(mg);

    fr_compute_destroy(cmp);
    CHECK_INT(fr_mem_in_use(), mem0);
    fr_log_set_level(log_level);
    fake_deinit(&F);
    test_root_done();
    return harness_done();
}
