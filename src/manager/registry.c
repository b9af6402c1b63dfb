/*
 * registry.c — the manager's registry: entries, lookup by id or alias,
 * and the scan of the models directory (at create and on
 * fr_manager_rescan).  Layouts and locking: manager_int.h, manager.c.
 *
 * The registry is an array of entry pointers sorted by id; entries are
 * separate allocations, so a pointer stays valid while the array grows or
 * shrinks (an entry is freed only by fr__registry_sweep and destroy).
 * Lookups are linear: a server offers tens of models, not thousands.
 *
 * A scan, one at a time (rescan_mu), runs in four steps so that no file
 * system call or probe happens with mu held:
 *   1. read the directory (no lock): candidates {id, path, size, mtime};
 *   2. with mu: which candidates are new, which files changed;
 *   3. no lock: build and probe an entry for each new or changed file;
 *   4. with mu: insert the new entries, apply the new probes to entries
 *      that are not loaded (a loaded one is probed again at its next
 *      load), mark the entries whose files vanished as removed, unload the
 *      idle ones among them and drop what nobody uses.
 * Only scans insert entries, so what step 2 found new is still new in
 * step 4.  The room in the array is reserved before step 4 changes
 * anything: a scan that fails leaves the registry as it was.
 */
#include "manager/manager_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"

/* ---- entries ---- */

int fr__entry_create(fr_manager *mg, const fr_model_cfg *cfg, bool from_ini, fr__entry **out) {
    *out = NULL;
    fr__entry *e = fr_calloc(1, sizeof *e);
    if (!e) return fr_errf(FR_ENOMEM, "model '%s': out of memory", cfg->id);
    e->id = fr_strdup(cfg->id);
    e->path = fr_strdup(cfg->path);
    e->alias = cfg->alias && cfg->alias[0] && strcmp(cfg->alias, cfg->id) ? fr_strdup(cfg->alias) : NULL;
    e->chat_template = cfg->chat_template ? fr_strdup(cfg->chat_template) : NULL;
    if (!e->id || !e->path || (cfg->alias && cfg->alias[0] && strcmp(cfg->alias, cfg->id) && !e->alias) ||
        (cfg->chat_template && !e->chat_template)) {
        fr__entry_free(e);
        return fr_errf(FR_ENOMEM, "model '%s': out of memory", cfg->id);
    }
    e->cfg = *cfg;
    e->cfg.id = e->id;
    e->cfg.path = e->path;
    e->cfg.alias = e->alias;
    e->cfg.chat_template = e->chat_template;
    const fr_model_cfg *d = &mg->defaults;
    if (!e->cfg.n_ctx) e->cfg.n_ctx = d->n_ctx;
    if (!e->cfg.parallel) e->cfg.parallel = d->parallel;
    if (!e->cfg.threads) e->cfg.threads = d->threads;
    if (e->cfg.keep_alive_ms == FR_KEEP_ALIVE_INHERIT) e->cfg.keep_alive_ms = e->cfg.preload ? -1 : d->keep_alive_ms;
    e->from_ini = from_ini;
    e->state = FR_MS_UNLOADED;
    e->keep_alive_now = FR_KEEP_ALIVE_INHERIT;
    e->unload_reason = -1;
    *out = e;
    return 0;
}

void fr__entry_free(fr__entry *e) {
    if (!e) return;
    fr_free(e->id);
    fr_free(e->alias);
    fr_free(e->chat_template);
    fr_free(e->path);
    fr_free(e);
}

/* ---- file names in messages ---- */

const char *fr__entry_file_name(const fr_manager *mg, const fr__entry *e) {
    const char *p = e->path;
    size_t n = mg->models_dir ? strlen(mg->models_dir) : 0;
    while (n > 1 && mg->models_dir[n - 1] == '/') n--;
    if (n && !strncmp(p, mg->models_dir, n) && p[n] == '/') {
        while (p[n] == '/') n++;
        if (p[n]) return p + n;
    }
    const char *slash = strrchr(p, '/');
    return slash && slash[1] ? slash + 1 : p;
}

void fr__entry_message(const fr_manager *mg, const fr__entry *e, const char *detail, char *msg,
                       size_t cap) {
    const char *name = fr__entry_file_name(mg, e);
    size_t plen = strlen(e->path), nlen = strlen(name), len = 0;
    int w = snprintf(msg, cap, "model '%s': ", e->id);
    len = w < 0 ? 0 : (size_t)w < cap ? (size_t)w : cap - 1;
    for (const char *s = detail; *s && len + 1 < cap;) {
        if (plen && !strncmp(s, e->path, plen)) {
            size_t k = nlen < cap - 1 - len ? nlen : cap - 1 - len;
            memcpy(msg + len, name, k);
            len += k;
            s += plen;
        } else if (plen > 1 && *s == '/' && !strncmp(s, e->path, strlen(s))) {
            break;      /* the detail was cut inside the path: leave it out */
        } else {
            msg[len++] = *s++;
        }
    }
    msg[len] = 0;
}

int fr__entry_probe(fr_manager *mg, fr__entry *e, unsigned *caps, fr_usage *est, char *msg, size_t cap) {
    *caps = 0;
    *est = (fr_usage){0};
    msg[0] = 0;
    fr_errclear();
    int rc = mg->loader.probe(mg->loader.ud, &e->cfg, caps, est);
    if (rc > 0) rc = FR_EINTERNAL;
    if (rc < 0) fr__entry_message(mg, e, *fr_errdetail() ? fr_errdetail() : fr_strerror(rc), msg, cap);
    return rc;
}

/* ---- lookup ---- */

fr__entry *fr__registry_find(fr_manager *mg, const char *id) {
    for (size_t i = 0; i < mg->n_entries; i++)
        if (!strcmp(mg->entries[i]->id, id)) return mg->entries[i];
    for (size_t i = 0; i < mg->n_entries; i++)
        if (mg->entries[i]->alias && !strcmp(mg->entries[i]->alias, id)) return mg->entries[i];
    return NULL;
}

int fr__registry_reserve(fr_manager *mg, size_t more) {
    if (mg->n_entries + more <= mg->cap_entries) return 0;
    size_t cap = mg->cap_entries ? mg->cap_entries : 8;
    while (cap < mg->n_entries + more) cap *= 2;
    fr__entry **p = fr_realloc(mg->entries, cap * sizeof *p);
    if (!p) return fr_errf(FR_ENOMEM, "model registry: out of memory for %zu entries", cap);
    mg->entries = p;
    mg->cap_entries = cap;
    return 0;
}

void fr__registry_insert(fr_manager *mg, fr__entry *e) {
    FR_ASSERT(mg->n_entries < mg->cap_entries);
    size_t i = mg->n_entries;
    while (i > 0 && strcmp(mg->entries[i - 1]->id, e->id) > 0) i--;
    memmove(&mg->entries[i + 1], &mg->entries[i], (mg->n_entries - i) * sizeof *mg->entries);
    mg->entries[i] = e;
    mg->n_entries++;
}

void fr__registry_sweep(fr_manager *mg) {
    size_t k = 0;
    for (size_t i = 0; i < mg->n_entries; i++) {
        fr__entry *e = mg->entries[i];
        if (e->removed && !e->refs && !e->users && !e->measuring &&
            (e->state == FR_MS_UNLOADED || e->state == FR_MS_FAILED)) {
            FR_INFO("model '%s' dropped from the registry (its file is gone)", e->id);
            fr__entry_free(e);
            continue;
        }
        mg->entries[k++] = e;
    }
    mg->n_entries = k;
}

/* ---- the directory scan ---- */

typedef struct cand {
    char *id, *path;
    uint64_t size;
    double mtime;
    dev_t dev;
    ino_t ino;
    bool skip;              /* an INI model has this name or this file */
    bool changed;           /* a known file whose size or mtime changed */
    bool known;             /* already registered */
    fr__entry *fresh;       /* new or re-probed entry (step 3) */
    int probe_rc;
    char msg[256];
} cand;

static int cand_cmp(const void *a, const void *b) {
    return strcmp(((const cand *)a)->id, ((const cand *)b)->id);
}

static void free_cands(cand *c, size_t n) {
    for (size_t i = 0; i < n; i++) {
        fr_free(c[i].id);
        fr_free(c[i].path);
        fr__entry_free(c[i].fresh);
    }
    fr_free(c);
}

static double mtime_of(const struct stat *st) {
    return (double)st->st_mtim.tv_sec + (double)st->st_mtim.tv_nsec * 1e-9;
}

/* Step 1: the *.gguf files of the directory, sorted by id. */
static int list_dir(const char *dir, cand **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d) return fr_errf(FR_EIO, "models directory '%s': %s", dir, strerror(errno));
    cand *c = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        size_t len = strlen(name);
        if (name[0] == '.' || len <= 5 || strcmp(name + len - 5, ".gguf")) continue;
        char path[4096];
        int pl = snprintf(path, sizeof path, "%s/%s", dir, name);
        if (pl < 0 || (size_t)pl >= sizeof ((fr_model_info *)0)->path ||
            len - 5 >= sizeof ((fr_model_info *)0)->id) {
            FR_WARN("models directory: '%s': name too long, skipped", name);
            continue;
        }
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            cand *p = fr_realloc(c, nc * sizeof *p);
            if (!p) { rc = FR_ENOMEM; break; }
            c = p;
            cap = nc;
        }
        cand *x = &c[n];
        memset(x, 0, sizeof *x);
        n++;
        x->id = fr_strndup(name, len - 5);
        x->path = fr_strdup(path);
        if (!x->id || !x->path) { rc = FR_ENOMEM; break; }
        x->size = (uint64_t)st.st_size;
        x->mtime = mtime_of(&st);
        x->dev = st.st_dev;
        x->ino = st.st_ino;
    }
    closedir(d);
    if (rc < 0) {
        free_cands(c, n);
        return fr_errf(rc, "models directory '%s': out of memory", dir);
    }
    if (n) qsort(c, n, sizeof *c, cand_cmp);
    *out = c;
    *n_out = n;
    return 0;
}

static bool cand_has(const cand *c, size_t n, const char *id) {
    cand key = {.id = (char *)id};
    return n && bsearch(&key, c, n, sizeof *c, cand_cmp) != NULL;
}

/* Step 2, with mu: mark each candidate skip (an INI model has its name or
 * its file), known or new, changed or not.  *n_new = the entries step 4
 * may insert.  FR_ESHUTDOWN once the manager is stopping. */
static int classify(fr_manager *mg, cand *c, size_t n, size_t *n_new) {
    *n_new = 0;
    pthread_mutex_lock(&mg->mu);
    if (mg->stopping) {
        pthread_mutex_unlock(&mg->mu);
        return fr_errf(FR_ESHUTDOWN, "the model manager is shutting down");
    }
    for (size_t i = 0; i < n; i++) {
        cand *x = &c[i];
        fr__entry *e = fr__registry_find(mg, x->id);
        for (size_t j = 0; !x->skip && j < mg->n_entries; j++) {
            const fr__entry *o = mg->entries[j];
            if (o->from_ini && o->dev == x->dev && o->ino == x->ino) x->skip = true;
        }
        if (e && e->from_ini) x->skip = true;
        if (x->skip) continue;
        if (e) {
            x->known = true;
            x->changed = e->file_bytes != x->size || e->created != x->mtime;
            if (e->removed) {
                /* its file is back; it may be swept before step 4, so
                 * have a fresh entry ready and room for it */
                x->changed = true;
                (*n_new)++;
            }
        } else {
            (*n_new)++;
        }
    }
    pthread_mutex_unlock(&mg->mu);
    return 0;
}

/* Step 3, no lock: a fresh, probed entry for each new or changed file.
 * A failed probe is kept in the candidate (probe_rc, msg) for step 4;
 * only FR_ENOMEM fails the scan. */
static int probe_cands(fr_manager *mg, cand *c, size_t n) {
    for (size_t i = 0; i < n; i++) {
        cand *x = &c[i];
        if (x->skip || (x->known && !x->changed)) continue;
        fr_model_cfg mc = {.id = x->id, .path = x->path, .keep_alive_ms = FR_KEEP_ALIVE_INHERIT};
        int rc = fr__entry_create(mg, &mc, false, &x->fresh);
        if (rc < 0) return rc;
        x->probe_rc = fr__entry_probe(mg, x->fresh, &x->fresh->caps, &x->fresh->estimate,
                                      x->msg, sizeof x->msg);
        if (x->probe_rc == FR_ENOMEM) return fr_errf(FR_ENOMEM, "%s", x->msg);
    }
    return 0;
}

/* Step 4 for one candidate, mu held, room reserved: a file that is back
 * is no longer removed; a new entry is inserted (true returned); a
 * changed one takes the new probe unless it is loaded. */
static bool apply_cand(fr_manager *mg, cand *x) {
    fr__entry *e = x->known ? fr__registry_find(mg, x->id) : NULL;   /* NULL: swept since step 2 */
    if (e && e->removed) {
        e->removed = false;
        FR_INFO("model '%s': its file is back", e->id);
    }
    if (!x->fresh) return false;
    fr__entry *f = x->fresh;
    if (!e) {
        /* new */
        e = f;
        x->fresh = NULL;
    } else if (e->state == FR_MS_UNLOADED || e->state == FR_MS_FAILED) {
        /* changed, not loaded: take the new probe */
        e->caps = f->caps;
        e->estimate = f->estimate;
        if (e->state == FR_MS_FAILED) e->error[0] = 0;
        e->state = FR_MS_UNLOADED;
    } else {
        e->probed = false;              /* probed again at its next load */
    }
    e->file_bytes = x->size;
    e->created = x->mtime;
    e->dev = x->dev;
    e->ino = x->ino;
    if (x->probe_rc < 0 && (e == f || e->state == FR_MS_UNLOADED)) {
        e->probed = false;
        e->state = FR_MS_FAILED;
        snprintf(e->error, sizeof e->error, "%s", x->msg);
        FR_WARN("%s", x->msg);
    } else if (e == f || e->state == FR_MS_UNLOADED) {
        e->probed = true;
    }
    if (e != f) return false;
    fr__registry_insert(mg, e);
    return true;
}

/* Step 4, mu held: mark the directory's entries whose files are not
 * among the candidates removed and unload the idle ones among them.
 * Returns how many were marked. */
static size_t remove_vanished(fr_manager *mg, const cand *c, size_t n) {
    size_t removed = 0;
    fr__entry *list = NULL;
    for (size_t i = 0; i < mg->n_entries; i++) {
        fr__entry *e = mg->entries[i];
        if (e->from_ini || e->removed || cand_has(c, n, e->id)) continue;
        e->removed = true;
        removed++;
        FR_INFO("model '%s': file '%s' is gone%s", e->id, e->path,
                e->state == FR_MS_LOADED && e->refs ? "; dropped once its requests finish" : "");
        if (e->state == FR_MS_LOADED && e->refs == 0)
            fr__manager_mark_unload(e, FR_EVICT_RESCAN, &list);
    }
    fr__manager_unload_list(mg, list);
    return removed;
}

/* The four steps of the file header, one scan at a time. */
int fr__registry_scan(fr_manager *mg) {
    if (!mg->models_dir) return 0;
    pthread_mutex_lock(&mg->rescan_mu);
    cand *c = NULL;
    size_t n = 0, n_new;
    int rc = list_dir(mg->models_dir, &c, &n);
    if (rc < 0) goto out;
    if ((rc = classify(mg, c, n, &n_new)) < 0) goto out;
    if ((rc = probe_cands(mg, c, n)) < 0) goto out;

    pthread_mutex_lock(&mg->mu);
    if ((rc = fr__registry_reserve(mg, n_new)) < 0) {
        pthread_mutex_unlock(&mg->mu);
        goto out;
    }
    size_t added = 0;
    for (size_t i = 0; i < n; i++)
        if (!c[i].skip && apply_cand(mg, &c[i])) added++;
    size_t removed = remove_vanished(mg, c, n);
    fr__registry_sweep(mg);
    pthread_mutex_unlock(&mg->mu);
    if (added || removed)
        FR_INFO("models directory '%s': %zu added, %zu removed", mg->models_dir, added, removed);
    rc = 0;
out:
    free_cands(c, n);
    pthread_mutex_unlock(&mg->rescan_mu);
    return rc;
}
