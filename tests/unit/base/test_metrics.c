/*
 * test_metrics.c — the metrics registry: registration rules (names,
 * labels, buckets, re-registration), counters/gauges/histograms, the
 * exact Prometheus text of a small registry (HELP/TYPE lines, label
 * escaping, cumulative buckets, _sum/_count, number formatting),
 * collectors, concurrent updates from several threads, and no leaks.
 */
#include "harness.h"

#include <pthread.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/metrics.h"

static char *render(fr_metrics *r) {
    char *out = NULL;
    size_t len = 0;
    CHECK(fr_metrics_render(r, &out, &len) == 0);
    CHECK(out && strlen(out) == len);
    return out;
}

static void test_register(fr_metrics *r) {
    fr_metric *a, *b;
    CHECK(fr_metric_counter(r, "t_total", "help", "route,status", &a) == 0);
    CHECK(fr_metric_counter(r, "t_total", "other help", "route,status", &b) == 0 && a == b);
    CHECK_INT(fr_metric_gauge(r, "t_total", "help", "route,status", &b), FR_EINVAL);
    CHECK(strstr(fr_errdetail(), "already registered") != NULL);
    CHECK_INT(fr_metric_counter(r, "t_total", "help", "route", &b), FR_EINVAL);
    CHECK_INT(fr_metric_counter(r, "9bad", "h", NULL, &b), FR_EINVAL);
    CHECK_INT(fr_metric_counter(r, "bad-name", "h", NULL, &b), FR_EINVAL);
    CHECK_INT(fr_metric_counter(r, "ok_name", "h", "le", &b), FR_EINVAL);
    CHECK_INT(fr_metric_counter(r, "ok_name", "h", "a,", &b), FR_EINVAL);
    CHECK_INT(fr_metric_counter(r, "ok_name", "h", "a,b,c,d,e", &b), FR_EINVAL);
    CHECK_INT(fr_metric_counter(r, "ok_name", "h", "a-b", &b), FR_EINVAL);
    double bad_bounds[] = {1, 0.5};
    CHECK_INT(fr_metric_histogram(r, "h_seconds", "h", NULL, bad_bounds, 2, &b), FR_EINVAL);
    CHECK_INT(fr_metric_histogram(r, "h_seconds", "h", NULL, bad_bounds, 0, &b), FR_EINVAL);
}

static void test_render(void) {
    fr_metrics *r;
    CHECK(fr_metrics_create(&r) == 0);
    fr_metric *req, *up, *lat, *empty;
    double bounds[] = {0.1, 0.5, 1};
    CHECK(fr_metric_counter(r, "req_total", "Requests by \\ route\nand status", "route,status", &req) == 0);
    CHECK(fr_metric_gauge(r, "up", "Is it up", NULL, &up) == 0);
    CHECK(fr_metric_histogram(r, "lat_seconds", "Latency", "model", bounds, 3, &lat) == 0);
    CHECK(fr_metric_gauge(r, "empty_by_model", "No series yet", "model", &empty) == 0);
    fr_metric_add(req, 1, "/health", "200");
    fr_metric_add(req, 2, "/health", "200");
    fr_metric_add(req, 1, "/v1/x \"q\"\n\\", "404");
    fr_metric_add(req, -5, "/health", "200");        /* counters never go down */
    fr_metric_set(up, 1, NULL);
    fr_metric_add(up, 0.25, NULL);
    fr_metric_observe(lat, 0.05, "tiny");
    fr_metric_observe(lat, 0.1, "tiny");             /* le is inclusive */
    fr_metric_observe(lat, 0.7, "tiny");
    fr_metric_observe(lat, 3, "tiny");
    fr_metric_observe(lat, 3, NULL);                 /* "" model */
    fr_series *s = fr_metric_series(req, "/health", "200", NULL, NULL);
    fr_series_observe(s, 1);                         /* wrong kind: ignored */
    fr_series_set(s, 100);
    CHECK_NEAR(fr_series_value(s), 3, 0);
    CHECK_INT(fr_series_count(fr_metric_series(lat, "tiny", NULL, NULL, NULL)), 4);

    char *out = render(r);
    const char *want =
        "# HELP req_total Requests by \\\\ route and status\n"
        "# TYPE req_total counter\n"
        "req_total{route=\"/health\",status=\"200\"} 3\n"
        "req_total{route=\"/v1/x \\\"q\\\"\\n\\\\\",status=\"404\"} 1\n"
        "# HELP up Is it up\n"
        "# TYPE up gauge\n"
        "up 1.25\n"
        "# HELP lat_seconds Latency\n"
        "# TYPE lat_seconds histogram\n"
        "lat_seconds_bucket{model=\"tiny\",le=\"0.1\"} 2\n"
        "lat_seconds_bucket{model=\"tiny\",le=\"0.5\"} 2\n"
        "lat_seconds_bucket{model=\"tiny\",le=\"1\"} 3\n"
        "lat_seconds_bucket{model=\"tiny\",le=\"+Inf\"} 4\n"
        "lat_seconds_sum{model=\"tiny\"} 3.85\n"
        "lat_seconds_count{model=\"tiny\"} 4\n"
        "lat_seconds_bucket{model=\"\",le=\"0.1\"} 0\n"
        "lat_seconds_bucket{model=\"\",le=\"0.5\"} 0\n"
        "lat_seconds_bucket{model=\"\",le=\"1\"} 0\n"
        "lat_seconds_bucket{model=\"\",le=\"+Inf\"} 1\n"
        "lat_seconds_sum{model=\"\"} 3\n"
        "lat_seconds_count{model=\"\"} 1\n"
        "# HELP empty_by_model No series yet\n"
        "# TYPE empty_by_model gauge\n";
    CHECK_STR(out, want);
    fr_free(out);
    fr_metrics_destroy(r);
}

static int collected;
static fr_metric *collected_gauge;
static void collect(void *ud, fr_metrics *r) {
    collected++;
    fr_metric_set(collected_gauge, *(double *)ud, NULL);
}

static void test_collector(void) {
    fr_metrics *r;
    CHECK(fr_metrics_create(&r) == 0);
    CHECK(fr_metric_gauge(r, "models_loaded", "Models loaded", NULL, &collected_gauge) == 0);
    double value = 2;
    CHECK(fr_metrics_add_collector(r, collect, &value) == 0);
    char *out = render(r);
    CHECK(strstr(out, "\nmodels_loaded 2\n") != NULL);
    fr_free(out);
    value = 1e-7;
    out = render(r);
    CHECK_MSG(strstr(out, "\nmodels_loaded 1e-07\n") != NULL, "%s", out);
    fr_free(out);
    fr_metrics_remove_collector(r, collect, &value);
    value = 5;
    out = render(r);
    CHECK(strstr(out, "\nmodels_loaded 1e-07\n") != NULL);
    fr_free(out);
    CHECK_INT(collected, 2);
    fr_metrics_destroy(r);
}

typedef struct worker { fr_metric *c, *h; int id; } worker;

static void *work(void *arg) {
    worker *w = arg;
    char route[16];
    for (int i = 0; i < 20000; i++) {
        snprintf(route, sizeof route, "/r%d", i % 8);
        fr_metric_add(w->c, 1, route, "200");
        fr_metric_observe(w->h, 0.001 * (i % 100), route);
    }
    return NULL;
}

static void test_threads(void) {
    fr_metrics *r;
    CHECK(fr_metrics_create(&r) == 0);
    fr_metric *c, *h;
    double b[] = {0.01, 0.05};
    CHECK(fr_metric_counter(r, "hits_total", "h", "route,status", &c) == 0);
    CHECK(fr_metric_histogram(r, "dur_seconds", "h", "route", b, 2, &h) == 0);
    pthread_t t[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){c, h, i};
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    double total = 0;
    uint64_t count = 0;
    for (int i = 0; i < 8; i++) {
        char route[16];
        snprintf(route, sizeof route, "/r%d", i);
        total += fr_series_value(fr_metric_series(c, route, "200", NULL, NULL));
        count += fr_series_count(fr_metric_series(h, route, NULL, NULL, NULL));
    }
    CHECK_NEAR(total, 80000, 0);
    CHECK_INT(count, 80000);
    char *out = render(r);
    int series = 0;
    for (const char *p = out; (p = strstr(p, "\nhits_total{")); p++) series++;
    CHECK_INT(series, 8);               /* each label set created once */
    fr_free(out);
    fr_metrics_destroy(r);
}

int main(void) {
    size_t mem0 = fr_mem_in_use();
    fr_metrics *r;
    CHECK(fr_metrics_create(&r) == 0);
    test_register(r);
    fr_metrics_destroy(r);
    test_render();
    test_collector();
    test_threads();
    CHECK_INT(fr_mem_in_use(), mem0);           /* every registry freed everything */
    CHECK(fr_metrics_default() != NULL && fr_metrics_default() == fr_metrics_default());
    return harness_done();
}
