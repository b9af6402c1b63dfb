/*
 * metrics.c — the metrics registry (see metrics.h for the model).
 *
 * Structures: a registry is a singly linked list of families in
 * registration order; a family is a list of series in creation order.
 * Both lists are append-only until the registry is destroyed.
 *
 * Locking: appends happen under a lock (the registry's for families, the
 * family's for series) and publish the new node with a release store of
 * the tail's next pointer, so readers walk the lists without the lock
 * (acquire loads).  Series lookups are therefore lock-free when the series
 * exists; creation takes the family lock and looks again before
 * appending, so two threads never create the same series twice.
 *
 * Values are doubles stored as their bit pattern in a 64-bit atomic; add
 * is a compare-and-swap loop, set a plain store.  Histogram buckets are
 * per-bucket (not cumulative) atomic counts, summed when rendering.
 *
 * Format written (Prometheus text exposition, version 0.0.4):
 *
 *   # HELP name help text, with \\ and \n escaped
 *   # TYPE name counter|gauge|histogram
 *   name{label="value",...} 12
 *   name_bucket{label="value",le="0.5"} 3      (cumulative, then le="+Inf")
 *   name_sum{label="value"} 1.25
 *   name_count{label="value"} 4
 *
 * Label values escape \\, \" and \n.
 */
#include "base/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"

struct fr_series {
    _Atomic(fr_series *) next;
    const fr_metric *family;
    char *values[FR_METRIC_MAX_LABELS];
    _Atomic uint64_t value;             /* double bits: counter/gauge value, histogram sum */
    _Atomic uint64_t buckets[];         /* histograms: [n_bounds + 1] counts, last is +Inf */
};

struct fr_metric {
    _Atomic(fr_metric *) next;
    int type;
    char *name, *help;
    int n_labels;
    char *labels[FR_METRIC_MAX_LABELS];
    int n_bounds;
    double bounds[FR_METRIC_MAX_BUCKETS];
    pthread_mutex_t mu;                 /* guards appends to the series list */
    _Atomic(fr_series *) head;
    fr_series *tail;
};

typedef struct collector { fr_metrics_collect_fn fn; void *ud; } collector;

struct fr_metrics {
    pthread_mutex_t mu;                 /* guards family appends, collectors, renders */
    _Atomic(fr_metric *) head;
    fr_metric *tail;
    collector *collectors;
    size_t n_collectors, cap_collectors;
};

/* ---- doubles in atomics ---- */

static uint64_t dbits(double v) { uint64_t u; memcpy(&u, &v, sizeof u); return u; }
static double bitsd(uint64_t u) { double v; memcpy(&v, &u, sizeof v); return v; }

static void atomic_add_double(_Atomic uint64_t *a, double v) {
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, dbits(bitsd(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {}
}

/* ---- registry ---- */

int fr_metrics_create(fr_metrics **out) {
    fr_metrics *r = fr_calloc(1, sizeof *r);
    if (!r) return FR_ENOMEM;
    pthread_mutex_init(&r->mu, NULL);
    *out = r;
    return 0;
}

static void free_family(fr_metric *m) {
    fr_series *s = atomic_load(&m->head);
    while (s) {
        fr_series *n = atomic_load(&s->next);
        for (int i = 0; i < FR_METRIC_MAX_LABELS; i++) fr_free(s->values[i]);
        fr_free(s);
        s = n;
    }
    for (int i = 0; i < m->n_labels; i++) fr_free(m->labels[i]);
    pthread_mutex_destroy(&m->mu);
    fr_free(m->name);
    fr_free(m->help);
    fr_free(m);
}

void fr_metrics_destroy(fr_metrics *r) {
    if (!r) return;
    fr_metric *m = atomic_load(&r->head);
    while (m) {
        fr_metric *n = atomic_load(&m->next);
        free_family(m);
        m = n;
    }
    fr_free(r->collectors);
    pthread_mutex_destroy(&r->mu);
    fr_free(r);
}

static fr_metrics *default_registry;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static void default_init(void) {
    if (fr_metrics_create(&default_registry)) default_registry = NULL;
}

fr_metrics *fr_metrics_default(void) {
    pthread_once(&default_once, default_init);
    return default_registry;
}

static bool name_ok(const char *s, bool colon) {
    if (!s || !*s) return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
        if (!alpha && !(p > s && c >= '0' && c <= '9')) return false;
    }
    return true;
}

/* Split "a,b" into m->labels; FR_EINVAL names the bad part. */
static int split_labels(fr_metric *m, const char *labels) {
    const char *p = labels ? labels : "";
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (m->n_labels == FR_METRIC_MAX_LABELS)
            return fr_errf(FR_EINVAL, "metric %s: more than %d labels", m->name, FR_METRIC_MAX_LABELS);
        char *l = fr_strndup(p, n);
        if (!l) return FR_ENOMEM;
        m->labels[m->n_labels++] = l;
        if (!name_ok(l, false) || !strcmp(l, "le") || !strncmp(l, "__", 2))
            return fr_errf(FR_EINVAL, "metric %s: bad label name '%s'", m->name, l);
        p = e ? e + 1 : p + n;
        if (e && !*p) return fr_errf(FR_EINVAL, "metric %s: empty label name", m->name);
    }
    return 0;
}

static bool same_shape(const fr_metric *a, const fr_metric *b) {
    if (a->type != b->type || a->n_labels != b->n_labels || a->n_bounds != b->n_bounds) return false;
    for (int i = 0; i < a->n_labels; i++)
        if (strcmp(a->labels[i], b->labels[i])) return false;
    for (int i = 0; i < a->n_bounds; i++)
        if (a->bounds[i] != b->bounds[i]) return false;
    return true;
}

static int reg(fr_metrics *r, int type, const char *name, const char *help, const char *labels,
               const double *bounds, int n_bounds, fr_metric **out) {
    if (!r) return fr_errf(FR_EINVAL, "metric %s: no registry", name ? name : "(null)");
    if (!name_ok(name, true)) return fr_errf(FR_EINVAL, "bad metric name '%s'", name ? name : "(null)");
    if (type == FR_METRIC_HISTOGRAM) {
        if (n_bounds < 1 || n_bounds > FR_METRIC_MAX_BUCKETS || !bounds)
            return fr_errf(FR_EINVAL, "metric %s: %d buckets (want 1 to %d)", name, n_bounds,
                           FR_METRIC_MAX_BUCKETS);
        for (int i = 0; i < n_bounds; i++)
            if (!isfinite(bounds[i]) || (i && bounds[i] <= bounds[i - 1]))
                return fr_errf(FR_EINVAL, "metric %s: bucket bounds must be finite and increasing", name);
    } else n_bounds = 0;

    fr_metric *m = fr_calloc(1, sizeof *m);
    if (!m) return FR_ENOMEM;
    pthread_mutex_init(&m->mu, NULL);
    m->type = type;
    m->n_bounds = n_bounds;
    if (n_bounds) memcpy(m->bounds, bounds, (size_t)n_bounds * sizeof *bounds);
    int rc = FR_ENOMEM;
    if (!(m->name = fr_strdup(name)) || !(m->help = fr_strdup(help ? help : ""))) goto fail;
    for (char *p = m->help; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';         /* help is one line */
    if ((rc = split_labels(m, labels))) goto fail;

    pthread_mutex_lock(&r->mu);
    for (fr_metric *e = atomic_load(&r->head); e; e = atomic_load(&e->next)) {
        if (strcmp(e->name, name)) continue;
        bool same = same_shape(e, m);
        pthread_mutex_unlock(&r->mu);
        free_family(m);
        if (!same)
            return fr_errf(FR_EINVAL, "metric %s is already registered with another type, labels or buckets",
                           name);
        *out = e;
        return 0;
    }
    if (r->tail) atomic_store_explicit(&r->tail->next, m, memory_order_release);
    else atomic_store_explicit(&r->head, m, memory_order_release);
    r->tail = m;
    pthread_mutex_unlock(&r->mu);
    *out = m;
    return 0;
fail:
    free_family(m);
    return rc;
}

int fr_metric_counter(fr_metrics *r, const char *name, const char *help, const char *labels,
                      fr_metric **out) {
    return reg(r, FR_METRIC_COUNTER, name, help, labels, NULL, 0, out);
}

int fr_metric_gauge(fr_metrics *r, const char *name, const char *help, const char *labels,
                    fr_metric **out) {
    return reg(r, FR_METRIC_GAUGE, name, help, labels, NULL, 0, out);
}

int fr_metric_histogram(fr_metrics *r, const char *name, const char *help, const char *labels,
                        const double *bounds, int n_bounds, fr_metric **out) {
    return reg(r, FR_METRIC_HISTOGRAM, name, help, labels, bounds, n_bounds, out);
}

/* ---- series ---- */

static bool series_is(const fr_series *s, int n, const char *const *v) {
    for (int i = 0; i < n; i++)
        if (strcmp(s->values[i], v[i] ? v[i] : "")) return false;
    return true;
}

static fr_series *find_series(const fr_metric *m, const char *const *v) {
    for (fr_series *s = atomic_load_explicit(&m->head, memory_order_acquire); s;
         s = atomic_load_explicit(&s->next, memory_order_acquire))
        if (series_is(s, m->n_labels, v)) return s;
    return NULL;
}

fr_series *fr_metric_series(fr_metric *m, const char *l1, const char *l2, const char *l3,
                            const char *l4) {
    if (!m) return NULL;
    const char *v[FR_METRIC_MAX_LABELS] = {l1, l2, l3, l4};
    fr_series *s = find_series(m, v);
    if (s) return s;

    pthread_mutex_lock(&m->mu);
    if ((s = find_series(m, v))) goto out;
    size_t nb = m->type == FR_METRIC_HISTOGRAM ? (size_t)m->n_bounds + 1 : 0;
    s = fr_calloc(1, sizeof *s + nb * sizeof s->buckets[0]);
    if (!s) goto out;
    s->family = m;
    for (int i = 0; i < m->n_labels; i++) {
        if (!(s->values[i] = fr_strdup(v[i] ? v[i] : ""))) {
            for (int j = 0; j < i; j++) fr_free(s->values[j]);
            fr_free(s);
            s = NULL;
            goto out;
        }
    }
    if (m->tail) atomic_store_explicit(&m->tail->next, s, memory_order_release);
    else atomic_store_explicit(&m->head, s, memory_order_release);
    m->tail = s;
out:
    pthread_mutex_unlock(&m->mu);
    return s;
}

void fr_series_add(fr_series *s, double v) {
    if (!s || s->family->type == FR_METRIC_HISTOGRAM) return;
    if (s->family->type == FR_METRIC_COUNTER && !(v >= 0)) return;
    atomic_add_double(&s->value, v);
}

void fr_series_set(fr_series *s, double v) {
    if (!s || s->family->type != FR_METRIC_GAUGE) return;
    atomic_store_explicit(&s->value, dbits(v), memory_order_relaxed);
}

void fr_series_observe(fr_series *s, double v) {
    if (!s || s->family->type != FR_METRIC_HISTOGRAM || isnan(v)) return;
    const fr_metric *m = s->family;
    int b = 0;
    while (b < m->n_bounds && v > m->bounds[b]) b++;     /* le: v <= bound */
    atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
    atomic_add_double(&s->value, v);
}

double fr_series_value(const fr_series *s) {
    return s ? bitsd(atomic_load_explicit(&((fr_series *)s)->value, memory_order_relaxed)) : 0;
}

uint64_t fr_series_count(const fr_series *s) {
    if (!s || s->family->type != FR_METRIC_HISTOGRAM) return 0;
    uint64_t n = 0;
    for (int b = 0; b <= s->family->n_bounds; b++)
        n += atomic_load_explicit(&((fr_series *)s)->buckets[b], memory_order_relaxed);
    return n;
}

/* ---- collectors ---- */

int fr_metrics_add_collector(fr_metrics *r, fr_metrics_collect_fn fn, void *ud) {
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    if (r->n_collectors == r->cap_collectors) {
        size_t nc = r->cap_collectors ? r->cap_collectors * 2 : 4;
        collector *c = fr_realloc(r->collectors, nc * sizeof *c);
        if (!c) { rc = FR_ENOMEM; goto out; }
        r->collectors = c;
        r->cap_collectors = nc;
    }
    r->collectors[r->n_collectors++] = (collector){fn, ud};
out:
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void fr_metrics_remove_collector(fr_metrics *r, fr_metrics_collect_fn fn, void *ud) {
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n_collectors; i++) {
        if (r->collectors[i].fn != fn || r->collectors[i].ud != ud) continue;
        memmove(&r->collectors[i], &r->collectors[i + 1], (r->n_collectors - i - 1) * sizeof *r->collectors);
        r->n_collectors--;
        break;
    }
    pthread_mutex_unlock(&r->mu);
}

/* ---- rendering ---- */

typedef struct sbuf { char *p; size_t len, cap; bool oom; } sbuf;

static void put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->len + n + 1) nc *= 2;
        char *np = fr_realloc(b->p, nc);
        if (!np) { b->oom = true; return; }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

/* Escape for HELP (\\ and \n) or, with quote, for label values (also \"). */
static void put_escaped(sbuf *b, const char *s, bool quote) {
    for (const char *p = s; *p; p++) {
        if (*p == '\\') put(b, "\\\\", 2);
        else if (*p == '\n') put(b, "\\n", 2);
        else if (quote && *p == '"') put(b, "\\\"", 2);
        else put(b, p, 1);
    }
}

/* The shortest decimal that reads back as v; integers without a point. */
static void fmt_num(char tmp[40], double v) {
    if (isnan(v)) snprintf(tmp, 40, "NaN");
    else if (isinf(v)) snprintf(tmp, 40, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15) snprintf(tmp, 40, "%.0f", v);
    else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(tmp, 40, "%.*g", prec, v);
            if (strtod(tmp, NULL) == v) break;
        }
    }
}

static void put_num(sbuf *b, double v) {
    char tmp[40];
    fmt_num(tmp, v);
    puts_(b, tmp);
}

static void put_u64(sbuf *b, uint64_t v) {
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    puts_(b, tmp);
}

/* name{labels[,le="x"]} — le is NULL for non-bucket samples. */
static void put_sample_name(sbuf *b, const fr_metric *m, const char *suffix, const fr_series *s,
                            const char *le) {
    puts_(b, m->name);
    puts_(b, suffix);
    if (m->n_labels == 0 && !le) return;
    put(b, "{", 1);
    for (int i = 0; i < m->n_labels; i++) {
        if (i) put(b, ",", 1);
        puts_(b, m->labels[i]);
        put(b, "=\"", 2);
        put_escaped(b, s->values[i], true);
        put(b, "\"", 1);
    }
    if (le) {
        if (m->n_labels) put(b, ",", 1);
        put(b, "le=\"", 4);
        puts_(b, le);
        put(b, "\"", 1);
    }
    put(b, "}", 1);
}

static void render_family(sbuf *b, const fr_metric *m) {
    static const char *types[] = {"counter", "gauge", "histogram"};
    puts_(b, "# HELP ");
    puts_(b, m->name);
    put(b, " ", 1);
    put_escaped(b, m->help, false);
    puts_(b, "\n# TYPE ");
    puts_(b, m->name);
    put(b, " ", 1);
    puts_(b, types[m->type]);
    put(b, "\n", 1);
    const fr_series *head = atomic_load_explicit(&m->head, memory_order_acquire);
    if (!head && m->type != FR_METRIC_HISTOGRAM && m->n_labels == 0) {
        puts_(b, m->name);
        puts_(b, " 0\n");
        return;
    }
    for (const fr_series *s = head; s; s = atomic_load_explicit(&s->next, memory_order_acquire)) {
        double v = bitsd(atomic_load_explicit(&((fr_series *)s)->value, memory_order_relaxed));
        if (m->type != FR_METRIC_HISTOGRAM) {
            put_sample_name(b, m, "", s, NULL);
            put(b, " ", 1);
            put_num(b, v);
            put(b, "\n", 1);
            continue;
        }
        uint64_t cum = 0;
        for (int i = 0; i <= m->n_bounds; i++) {
            char le[40];
            cum += atomic_load_explicit(&((fr_series *)s)->buckets[i], memory_order_relaxed);
            if (i < m->n_bounds) fmt_num(le, m->bounds[i]);
            else snprintf(le, sizeof le, "+Inf");
            put_sample_name(b, m, "_bucket", s, le);
            put(b, " ", 1);
            put_u64(b, cum);
            put(b, "\n", 1);
        }
        put_sample_name(b, m, "_sum", s, NULL);
        put(b, " ", 1);
        put_num(b, v);
        put(b, "\n", 1);
        put_sample_name(b, m, "_count", s, NULL);
        put(b, " ", 1);
        put_u64(b, cum);
        put(b, "\n", 1);
    }
}

int fr_metrics_render(fr_metrics *r, char **out, size_t *len) {
    sbuf b = {0};
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n_collectors; i++) r->collectors[i].fn(r->collectors[i].ud, r);
    for (const fr_metric *m = atomic_load(&r->head); m; m = atomic_load(&m->next)) render_family(&b, m);
    pthread_mutex_unlock(&r->mu);
    put(&b, "", 0);                  /* an empty registry still gives "" */
    if (b.oom) { fr_free(b.p); return FR_ENOMEM; }
    *out = b.p;
    *len = b.len;
    return 0;
}
