/*
 * metrics.h — a small thread-safe metrics registry, rendered in the
 * Prometheus text exposition format (version 0.0.4) for GET /metrics.
 *
 * A registry holds families (a name, a help line, a type and up to
 * FR_METRIC_MAX_LABELS label names); a family holds series, one per
 * combination of label values, created on first use.  Counters and gauges
 * hold one double; histograms hold fixed buckets (upper bounds given at
 * registration, +Inf added), a sum and a count.
 *
 *   fr_metric *req;
 *   fr_metric_counter(fr_metrics_default(), "frugal_http_requests_total",
 *                     "HTTP requests by route and status", "route,status", &req);
 *   fr_metric_add(req, 1, "/health", "200");
 *
 * Any layer may record: the process-wide registry is fr_metrics_default();
 * tests make their own with fr_metrics_create.  Registering a name that
 * exists with the same type and labels returns the existing family, so two
 * modules (or two servers in one test) can register the same metric.
 *
 * Cost and locking: a family's series list is guarded by the family's
 * mutex, taken for the lookup by label values; the value updates are
 * atomics.  A hot path that always uses the same labels can look the
 * series up once (fr_metric_series) and update it lock-free.  Families
 * and series are never freed before the registry, so their pointers stay
 * valid.  Rendering takes the registry lock and each family's lock in
 * turn; a histogram is read bucket by bucket, and its _count is the sum of
 * the buckets read, so a rendered histogram is always consistent.
 */
#ifndef FR_BASE_METRICS_H
#define FR_BASE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define FR_METRIC_MAX_LABELS 4
#define FR_METRIC_MAX_BUCKETS 32

typedef struct fr_metrics fr_metrics;
typedef struct fr_metric fr_metric;         /* a family */
typedef struct fr_series fr_series;         /* one label combination */

enum fr_metric_type { FR_METRIC_COUNTER, FR_METRIC_GAUGE, FR_METRIC_HISTOGRAM };

/* An empty registry.  FR_ENOMEM. */
int  fr_metrics_create(fr_metrics **out);
/* Free the registry, its families and series.  No other thread may use it
 * (or a pointer into it) any more.  NULL is fine. */
void fr_metrics_destroy(fr_metrics *r);

/* The process-wide registry, created on first use (thread-safe), freed at
 * exit.  NULL only if that first allocation failed. */
fr_metrics *fr_metrics_default(void);

/* Register (or find) a family.  name: [a-zA-Z_:][a-zA-Z0-9_:]*; help: one
 * line (copied); labels: comma-separated label names ("route,status"), or
 * NULL/"" for none.  Histograms take n_bounds (1..FR_METRIC_MAX_BUCKETS)
 * strictly increasing finite upper bounds, copied.  FR_EINVAL (bad name,
 * labels or bounds; or the name exists with another type, labels or
 * bounds: the detail says which), FR_ENOMEM.  Thread-safe. */
int fr_metric_counter(fr_metrics *r, const char *name, const char *help, const char *labels,
                      fr_metric **out);
int fr_metric_gauge(fr_metrics *r, const char *name, const char *help, const char *labels,
                    fr_metric **out);
int fr_metric_histogram(fr_metrics *r, const char *name, const char *help, const char *labels,
                        const double *bounds, int n_bounds, fr_metric **out);

/* Find or create the series for label values (as many as the family has
 * label names; the rest are ignored; a NULL value counts as "").  Values
 * are copied.  NULL when m is NULL or on allocation failure (the update is then lost, which
 * the update functions below accept silently: metrics never fail a
 * request).  Thread-safe. */
fr_series *fr_metric_series(fr_metric *m, const char *l1, const char *l2, const char *l3,
                            const char *l4);

/* Updates on a series: lock-free and thread-safe.  add: counters (v >= 0)
 * and gauges; set: gauges; observe: histograms.  A call of the wrong kind
 * for the family's type is ignored (FR_ASSERT in debug builds is not worth
 * a crash in production).  NULL series are ignored. */
void fr_series_add(fr_series *s, double v);
void fr_series_set(fr_series *s, double v);
void fr_series_observe(fr_series *s, double v);
double fr_series_value(const fr_series *s);         /* counter/gauge value; histogram sum */
uint64_t fr_series_count(const fr_series *s);       /* histogram observations */

/* Shorthands: look the series up by label values and update it, e.g.
 * fr_metric_add(m, 1, "/health", "200").  An unlabelled family takes one
 * NULL: fr_metric_set(m, 3, NULL).  NULL families are ignored. */
#define fr_metric_add(m, v, ...)     fr_series_add(fr__metric_series_va(m, __VA_ARGS__), v)
#define fr_metric_set(m, v, ...)     fr_series_set(fr__metric_series_va(m, __VA_ARGS__), v)
#define fr_metric_observe(m, v, ...) fr_series_observe(fr__metric_series_va(m, __VA_ARGS__), v)
#define fr__metric_series_va(m, ...) fr__metric_series4(m, __VA_ARGS__, NULL, NULL, NULL, NULL)
#define fr__metric_series4(m, a, b, c, d, ...) fr_metric_series(m, a, b, c, d)

/* A collector runs at the start of every render (before any family is
 * read), to refresh gauges that are cheaper to sample than to track (bytes
 * by kind, models loaded, memory level).  It may update any metric of the
 * registry but must not register new families or render.  FR_ENOMEM.
 * Remove it (same fn and ud) before ud goes away. */
typedef void (*fr_metrics_collect_fn)(void *ud, fr_metrics *r);
int  fr_metrics_add_collector(fr_metrics *r, fr_metrics_collect_fn fn, void *ud);
void fr_metrics_remove_collector(fr_metrics *r, fr_metrics_collect_fn fn, void *ud);

/* Render every family in registration order (series in creation order):
 * "# HELP", "# TYPE", then samples; histograms as name_bucket{...,le="b"}
 * (cumulative, ending with le="+Inf"), name_sum and name_count.  Families
 * without series render their HELP and TYPE only, except unlabelled
 * counters and gauges, which render 0.  *out is fr_malloc'd,
 * NUL-terminated (caller frees with fr_free), *len its length.  FR_ENOMEM.
 * Thread-safe (concurrent updates land in this render or the next). */
int fr_metrics_render(fr_metrics *r, char **out, size_t *len);

#endif
