/*
 * fake_loader.h — a fake fr_loader for the manager's tests, and the
 * temporary directories they work in.
 *
 * The fake knows a table of models by id (estimate: weights, kv,
 * scratch; what usage reports, which may differ from the estimate), and
 * records every probe, load, unload and cancel ("+A -A" in the order of
 * the calls).  It can be told to fail the next loads or probes, to make a
 * load wait at a gate until the test opens it, and to keep a fake
 * /proc/meminfo under FRUGAL_SYSROOT up to date: available = total -
 * base - the bytes of the loaded models, so that unloading really lowers
 * the memory level the manager reads.
 *
 * Every test runs with FRUGAL_SYSROOT pointing at its own directory, so
 * the real machine's memory never decides an outcome.
 */
#ifndef FR_TEST_FAKE_LOADER_H
#define FR_TEST_FAKE_LOADER_H

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/mem.h"
#include "manager/manager.h"

#define MiB (1024ull * 1024)

typedef struct fake_model {
    char id[64];
    uint64_t weights, kv, scratch;      /* the estimate */
    uint64_t resident;                  /* usage: resident weights (UINT64_MAX = weights) */
    uint64_t extra;                     /* usage: added to scratch */
    int fail_loads;                     /* the next n loads fail (FR_EIO) */
    int fail_probes;                    /* the next n probes fail (FR_EFORMAT) */
    bool gate;                          /* loads wait for fake.gate_open */
} fake_model;

typedef struct fake {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    fake_model models[24];
    int n_models;
    char log[8192];
    int probes, loads, unloads, cancels;
    int in_gate;                        /* loads waiting at the gate */
    bool gate_open;
    fr_model_cfg last_cfg;              /* what the last load was given */
    /* the fake /proc/meminfo */
    char meminfo[512];                  /* path, "" = none */
    uint64_t sim_total, sim_base, sim_loaded;
} fake;

typedef struct fake_obj {
    fake *f;
    fake_model *m;
    bool cancelled;                     /* under f->mu */
} fake_obj;

static inline void fake_log(fake *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void fake_log(fake *f, const char *fmt, ...) {
    size_t len = strlen(f->log);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->log + len, sizeof f->log - len, fmt, ap);
    va_end(ap);
}

static inline void fake_init(fake *f) {
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
}

static inline void fake_deinit(fake *f) {
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
}

static inline fake_model *fake_add(fake *f, const char *id, uint64_t weights, uint64_t kv, uint64_t scratch) {
    fake_model *m = &f->models[f->n_models++];
    memset(m, 0, sizeof *m);
    snprintf(m->id, sizeof m->id, "%s", id);
    m->weights = weights;
    m->kv = kv;
    m->scratch = scratch;
    m->resident = UINT64_MAX;
    return m;
}

static inline fake_model *fake_find(fake *f, const char *id) {
    for (int i = 0; i < f->n_models; i++)
        if (!strcmp(f->models[i].id, id)) return &f->models[i];
    return NULL;
}

static inline uint64_t fake_total(const fake_model *m) { return m->weights + m->kv + m->scratch; }

/* Rewrite the fake meminfo (f->mu held). */
static inline void fake_write_meminfo(fake *f) {
    if (!f->meminfo[0]) return;
    uint64_t used = f->sim_base + f->sim_loaded;
    uint64_t avail = used < f->sim_total ? f->sim_total - used : 0;
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", f->meminfo);
    FILE *fp = fopen(tmp, "w");
    if (!fp) return;
    fprintf(fp, "MemTotal:       %8llu kB\nMemFree:        %8llu kB\nMemAvailable:   %8llu kB\n"
            "Buffers:           84112 kB\nCached:          1611592 kB\n",
            (unsigned long long)(f->sim_total / 1024), (unsigned long long)(avail / 1024),
            (unsigned long long)(avail / 1024));
    fclose(fp);
    rename(tmp, f->meminfo);
}

static inline void fake_set_base(fake *f, uint64_t base) {
    pthread_mutex_lock(&f->mu);
    f->sim_base = base;
    fake_write_meminfo(f);
    pthread_mutex_unlock(&f->mu);
}

static int fake_probe(void *ud, const fr_model_cfg *cfg, unsigned *caps, fr_usage *est) {
    fake *f = ud;
    pthread_mutex_lock(&f->mu);
    f->probes++;
    fake_model *m = fake_find(f, cfg->id);
    int rc = 0;
    if (!m) {
        rc = fr_errf(FR_EFORMAT, "%s: the fake loader has no model '%s'", cfg->path, cfg->id);
    } else if (m->fail_probes > 0) {
        m->fail_probes--;
        rc = fr_errf(FR_EFORMAT, "%s: bad magic (injected)", cfg->path);
    } else {
        *caps = FR_CAP_COMPLETION | FR_CAP_CHAT;
        *est = (fr_usage){m->weights, m->weights, m->kv, m->scratch};
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int fake_load(void *ud, const fr_model_cfg *cfg, void **obj) {
    fake *f = ud;
    pthread_mutex_lock(&f->mu);
    f->loads++;
    fake_log(f, "+%s ", cfg->id);
    f->last_cfg = *cfg;
    fake_model *m = fake_find(f, cfg->id);
    if (m && m->gate) {
        f->in_gate++;
        pthread_cond_broadcast(&f->cv);
        while (!f->gate_open) pthread_cond_wait(&f->cv, &f->mu);
        f->in_gate--;
    }
    int rc = 0;
    if (!m) {
        rc = fr_errf(FR_EINVAL, "no model '%s'", cfg->id);
    } else if (m->fail_loads > 0) {
        m->fail_loads--;
        rc = fr_errf(FR_EIO, "%s: read error at offset 4096 (injected)", cfg->path);
    } else {
        fake_obj *o = fr_malloc(sizeof *o);
        if (!o) {
            rc = fr_errf(FR_ENOMEM, "fake load '%s': out of memory", cfg->id);
        } else {
            *o = (fake_obj){f, m, false};
            *obj = o;
            f->sim_loaded += fake_total(m);
            fake_write_meminfo(f);
        }
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static void fake_unload(void *ud, void *obj) {
    fake *f = ud;
    fake_obj *o = obj;
    pthread_mutex_lock(&f->mu);
    f->unloads++;
    fake_log(f, "-%s ", o->m->id);
    f->sim_loaded -= fake_total(o->m);
    fake_write_meminfo(f);
    pthread_mutex_unlock(&f->mu);
    fr_free(o);
}

static void fake_usage(void *ud, void *obj, fr_usage *u) {
    fake *f = ud;
    fake_obj *o = obj;
    pthread_mutex_lock(&f->mu);
    const fake_model *m = o->m;
    *u = (fr_usage){m->weights, m->resident == UINT64_MAX ? m->weights : m->resident, m->kv,
                    m->scratch + m->extra};
    pthread_mutex_unlock(&f->mu);
}

static void fake_cancel(void *ud, void *obj) {
    fake *f = ud;
    fake_obj *o = obj;
    pthread_mutex_lock(&f->mu);
    f->cancels++;
    o->cancelled = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static inline fr_loader fake_loader(fake *f) {
    return (fr_loader){f, fake_probe, fake_load, fake_unload, fake_usage, fake_cancel};
}

static inline void fake_open_gate(fake *f) {
    pthread_mutex_lock(&f->mu);
    f->gate_open = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static inline int fake_in_gate(fake *f) {
    pthread_mutex_lock(&f->mu);
    int n = f->in_gate;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* ---- files ---- */

static char test_root[256];

static inline void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Make root/rel (with its directories) holding text (may be ""). */
static inline void put_file(const char *rel, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", test_root, rel);
    for (char *p = path + strlen(test_root) + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        mkdir(path, 0755);
        *p = '/';
    }
    FILE *fp = fopen(path, "w");
    if (!fp) { HARNESS_FAIL("cannot write %s: %s", path, strerror(errno)); return; }
    fputs(text, fp);
    fclose(fp);
}

static inline void del_file(const char *rel) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", test_root, rel);
    unlink(path);
}

static inline const char *test_path(const char *rel) {
    static char buf[4][1024];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, sizeof buf[0], "%s/%s", test_root, rel);
    return b;
}

/* A fresh root with an empty sysroot (and a quiet meminfo), set as
 * FRUGAL_SYSROOT. */
static inline void test_root_init(const char *tag) {
    snprintf(test_root, sizeof test_root, "/tmp/frugal-test-%s-%d", tag, (int)getpid());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_root);
    if (system(cmd) != 0) HARNESS_FAIL("%s failed", cmd);
    mkdir(test_root, 0755);
    put_file("sys/proc/meminfo", "MemTotal:       16000000 kB\nMemFree:        12000000 kB\n"
             "MemAvailable:   12000000 kB\n");
    setenv("FRUGAL_SYSROOT", test_path("sys"), 1);
}

static inline void test_root_done(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_root);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", test_root);
}

/* Poll cond (a few ms apart) for up to 10 s: only where threads must
 * meet, never to wait for a timer. */
#define WAIT_FOR(cond)                                                        \
    do {                                                                      \
        for (int w_ = 0; w_ < 10000 && !(cond); w_++) sleep_ms(1);            \
        CHECK(cond);                                                          \
    } while (0)

/* A config for tests: no thread passes (one an hour), keep-alive never
 * (tests set it where they test it), no INI models. */
static inline fr_manager_config test_config(fake *f, const char *dir, uint64_t budget) {
    fr_manager_config c;
    memset(&c, 0, sizeof c);
    c.models_dir = dir;
    c.defaults.keep_alive_ms = -1;
    c.budget_bytes = budget;
    c.housekeeping_ms = 3600 * 1000;
    c.loader = fake_loader(f);
    return c;
}

static inline int model_state(fr_manager *mg, const char *id) {
    fr_model_info info;
    int rc = fr_manager_get(mg, id, &info);
    return rc < 0 ? rc : info.state;
}

/* "A,B": the loaded models, by id. */
static inline const char *loaded_set(fr_manager *mg) {
    static char buf[512];
    buf[0] = 0;
    fr_model_info *v;
    size_t n;
    if (fr_manager_list(mg, &v, &n) < 0) return "(list failed)";
    for (size_t i = 0; i < n; i++) {
        if (v[i].state != FR_MS_LOADED) continue;
        size_t len = strlen(buf);
        snprintf(buf + len, sizeof buf - len, "%s%s", len ? "," : "", v[i].id);
    }
    fr_free(v);
    return buf;
}

#endif
