/*
 * gguf_write.c — the GGUF writer (format: the byte table in gguf.c).
 *
 * A writer holds key/value pairs, each already serialized (the bytes that
 * follow the value type id in the file), and tensor records that point at
 * the caller's data.  fr_gguf_writer_save streams header, pairs, records,
 * padding and data through buffered stdio: memory use is the metadata only,
 * whatever the size of the tensors.  Pairs keep insertion order; setting a
 * key again replaces its value in place.  Not thread-safe.
 */
#include "engine/gguf.h"

#include "base/err.h"
#include "base/mem.h"
#include "engine/gguf_int.h"
#include "kernels/types.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct wkv {
    char *key;          /* owned; key_len bytes (+ NUL) */
    size_t key_len;
    int type;           /* fr_gguf_vtype */
    uint8_t *raw;       /* owned serialized value */
    size_t raw_len;
} wkv;

typedef struct wtensor {
    char name[FR_GGUF_MAX_NAME];
    int type, n_dims;
    int64_t ne[4];      /* missing dims are 1 */
    size_t nbytes;
    const void *data;   /* the caller's; NULL writes zeros */
} wtensor;

struct fr_gguf_writer {
    wkv *kv;            /* [n_kv] of cap_kv */
    size_t n_kv, cap_kv;
    wtensor *t;         /* [n_t] of cap_t */
    size_t n_t, cap_t;
};

int fr_gguf_writer_create(fr_gguf_writer **out) {
    *out = fr_calloc(1, sizeof **out);
    return *out ? 0 : FR_ENOMEM;
}

void fr_gguf_writer_destroy(fr_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        fr_free(w->kv[i].key);
        fr_free(w->kv[i].raw);
    }
    fr_free(w->kv);
    fr_free(w->t);
    fr_free(w);
}

/* Grow an array of elem-sized items to hold one more. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return 0;
    size_t ncap = *cap ? *cap * 2 : 16, bytes;
    if (!fr_mul_ok(ncap, elem, &bytes)) return FR_ENOMEM;
    void *p = fr_realloc(*arr, bytes);
    if (!p) return FR_ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

/* Store key = value, taking ownership of raw (freed on failure too). */
static int put_kv(fr_gguf_writer *w, const char *key, size_t key_len, int type, uint8_t *raw,
                  size_t raw_len) {
    if (key_len == 0) {
        fr_free(raw);
        return fr_errf(FR_EINVAL, "gguf writer: empty key");
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        wkv *kv = &w->kv[i];
        if (kv->key_len == key_len && memcmp(kv->key, key, key_len) == 0) {
            fr_free(kv->raw);
            kv->type = type;
            kv->raw = raw;
            kv->raw_len = raw_len;
            return 0;
        }
    }
    char *k = fr_strndup(key, key_len);
    if (!k || grow((void **)&w->kv, &w->cap_kv, w->n_kv, sizeof *w->kv)) {
        fr_free(k);
        fr_free(raw);
        return FR_ENOMEM;
    }
    w->kv[w->n_kv++] = (wkv){k, key_len, type, raw, raw_len};
    return 0;
}

static int put_scalar(fr_gguf_writer *w, const char *key, int type, const void *v, size_t n) {
    uint8_t *raw = fr_malloc(n);
    if (!raw) return FR_ENOMEM;
    memcpy(raw, v, n);
    return put_kv(w, key, strlen(key), type, raw, n);
}

int fr_gguf_writer_set_u32(fr_gguf_writer *w, const char *key, uint32_t v) {
    return put_scalar(w, key, FR_GGUF_U32, &v, 4);
}

int fr_gguf_writer_set_i32(fr_gguf_writer *w, const char *key, int32_t v) {
    return put_scalar(w, key, FR_GGUF_I32, &v, 4);
}

int fr_gguf_writer_set_f32(fr_gguf_writer *w, const char *key, float v) {
    return put_scalar(w, key, FR_GGUF_F32, &v, 4);
}

int fr_gguf_writer_set_bool(fr_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return put_scalar(w, key, FR_GGUF_BOOL, &b, 1);
}

int fr_gguf_writer_set_scalar(fr_gguf_writer *w, const char *key, int type, const void *v) {
    size_t n = fr__gguf_type_size(type);
    if (n == 0) return fr_errf(FR_EINVAL, "gguf writer: key '%s': bad scalar type %d", key, type);
    return put_scalar(w, key, type, v, n);
}

int fr_gguf_writer_set_str(fr_gguf_writer *w, const char *key, const char *v) {
    return fr_gguf_writer_set_strn(w, key, v, strlen(v));
}

int fr_gguf_writer_set_strn(fr_gguf_writer *w, const char *key, const char *v, size_t len) {
    size_t n;
    if (!fr_add_ok(len, 8, &n)) return FR_ENOMEM;
    uint8_t *raw = fr_malloc(n);
    if (!raw) return FR_ENOMEM;
    uint64_t l = len;
    memcpy(raw, &l, 8);
    if (len) memcpy(raw + 8, v, len);
    return put_kv(w, key, strlen(key), FR_GGUF_STRING, raw, n);
}

int fr_gguf_writer_set_arr(fr_gguf_writer *w, const char *key, int elem_type, const void *data,
                           uint64_t count) {
    size_t es = fr__gguf_type_size(elem_type), n, total;
    if (es == 0)
        return fr_errf(FR_EINVAL, "gguf writer: key '%s': bad array element type %d", key,
                       elem_type);
    if (count > SIZE_MAX || !fr_mul_ok((size_t)count, es, &n) || !fr_add_ok(n, 12, &total))
        return FR_ENOMEM;
    uint8_t *raw = fr_malloc(total);
    if (!raw) return FR_ENOMEM;
    uint32_t et = (uint32_t)elem_type;
    memcpy(raw, &et, 4);
    memcpy(raw + 4, &count, 8);
    if (n) memcpy(raw + 12, data, n);
    return put_kv(w, key, strlen(key), FR_GGUF_ARRAY, raw, total);
}

int fr_gguf_writer_set_arr_str(fr_gguf_writer *w, const char *key, const char *const *strs,
                               const uint64_t *lens, uint64_t count) {
    size_t total = 12;
    for (uint64_t j = 0; j < count; j++) {
        size_t len = lens ? (size_t)lens[j] : strlen(strs[j]);
        if ((lens && lens[j] > SIZE_MAX) || !fr_add_ok(total, 8, &total) ||
            !fr_add_ok(total, len, &total))
            return FR_ENOMEM;
    }
    uint8_t *raw = fr_malloc(total), *p;
    if (!raw) return FR_ENOMEM;
    uint32_t et = FR_GGUF_STRING;
    memcpy(raw, &et, 4);
    memcpy(raw + 4, &count, 8);
    p = raw + 12;
    for (uint64_t j = 0; j < count; j++) {
        uint64_t len = lens ? lens[j] : strlen(strs[j]);
        memcpy(p, &len, 8);
        if (len) memcpy(p + 8, strs[j], (size_t)len);
        p += 8 + len;
    }
    return put_kv(w, key, strlen(key), FR_GGUF_ARRAY, raw, total);
}

int fr_gguf_writer_copy_kv(fr_gguf_writer *w, const fr_gguf *g, const char *prefix_filter) {
    size_t plen = prefix_filter ? strlen(prefix_filter) : 0;
    for (int64_t i = 0; i < g->n_kv; i++) {
        const fr__gguf_kv *kv = &g->kv[i];
        if (plen && (kv->key.len < plen || memcmp(kv->key.s, prefix_filter, plen) != 0))
            continue;
        uint8_t *raw = fr_malloc(kv->raw_len ? kv->raw_len : 1);
        if (!raw) return FR_ENOMEM;
        memcpy(raw, kv->raw, kv->raw_len);
        int rc = put_kv(w, kv->key.s, (size_t)kv->key.len, kv->type, raw, kv->raw_len);
        if (rc) return rc;
    }
    return 0;
}

int fr_gguf_writer_add_tensor(fr_gguf_writer *w, const char *name, int type, int n_dims,
                              const int64_t *ne, const void *data) {
    size_t len = strlen(name), nb;
    const fr_type_info *ti = fr_type_get(type);
    if (len == 0 || len >= FR_GGUF_MAX_NAME)
        return fr_errf(FR_EINVAL, "gguf writer: tensor '%s': name must be 1..%d bytes", name,
                       FR_GGUF_MAX_NAME - 1);
    if (!ti) return fr_errf(FR_EINVAL, "gguf writer: tensor '%s': bad type id %d", name, type);
    if (n_dims < 1 || n_dims > 4)
        return fr_errf(FR_EINVAL, "gguf writer: tensor '%s': n_dims %d", name, n_dims);
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name))
            return fr_errf(FR_EINVAL, "gguf writer: tensor '%s': duplicate name", name);
    wtensor t = {.type = type, .n_dims = n_dims, .ne = {1, 1, 1, 1}, .data = data};
    memcpy(t.name, name, len + 1);
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] < 0)
            return fr_errf(FR_EINVAL, "gguf writer: tensor '%s': ne[%d] negative", name, d);
        t.ne[d] = ne[d];
    }
    if (!fr_type_row_size(type, t.ne[0], &nb) || !fr_mul_ok(nb, (size_t)t.ne[1], &nb) ||
        !fr_mul_ok(nb, (size_t)t.ne[2], &nb) || !fr_mul_ok(nb, (size_t)t.ne[3], &nb))
        return fr_errf(FR_EINVAL, "gguf writer: tensor '%s': ne[0] %" PRId64 " not a multiple "
                       "of the %s block size, or size overflows", name, t.ne[0], ti->name);
    t.nbytes = nb;
    if (grow((void **)&w->t, &w->cap_t, w->n_t, sizeof *w->t)) return FR_ENOMEM;
    w->t[w->n_t++] = t;
    return 0;
}

/* ---- save ---- */

typedef struct sink {
    FILE *f;
    uint64_t pos;
    bool failed;
} sink;

static void out(sink *s, const void *p, size_t n) {
    if (s->failed || n == 0) return;
    if (fwrite(p, 1, n, s->f) != n) s->failed = true;
    s->pos += n;
}

static void out_u32(sink *s, uint32_t v) { out(s, &v, 4); }
static void out_u64(sink *s, uint64_t v) { out(s, &v, 8); }

static void out_zeros(sink *s, uint64_t n) {
    static const uint8_t zeros[4096];
    while (n && !s->failed) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        out(s, zeros, k);
        n -= k;
    }
}

static void out_pad(sink *s, uint32_t align) {
    if (s->pos % align) out_zeros(s, align - s->pos % align);
}

static int writer_alignment(const fr_gguf_writer *w, uint32_t *align) {
    *align = FR_GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        const wkv *kv = &w->kv[i];
        if (kv->key_len != 17 || memcmp(kv->key, "general.alignment", 17) != 0) continue;
        uint32_t a = 0;
        if (kv->type == FR_GGUF_U32) memcpy(&a, kv->raw, 4);
        if (a == 0 || (a & (a - 1)))
            return fr_errf(FR_EINVAL, "gguf writer: general.alignment must be a u32 power "
                           "of two");
        *align = a;
    }
    return 0;
}

int fr_gguf_writer_save(fr_gguf_writer *w, const char *path) {
    uint32_t align;
    int rc = writer_alignment(w, &align);
    if (rc) return rc;
    /* Write beside the target and rename at the end: the target may be the
     * file whose mapping supplies the tensor data. */
    size_t plen = strlen(path);
    char *tmp = fr_malloc(plen + 8);
    if (!tmp) return FR_ENOMEM;
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp~", 6);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        rc = fr_errf(FR_EIO, "%s: cannot create: %s", path, strerror(errno));
        fr_free(tmp);
        return rc;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 16);
    sink s = {f, 0, false};
    out(&s, "GGUF", 4);
    out_u32(&s, 3);
    out_u64(&s, w->n_t);
    out_u64(&s, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        const wkv *kv = &w->kv[i];
        out_u64(&s, kv->key_len);
        out(&s, kv->key, kv->key_len);
        out_u32(&s, (uint32_t)kv->type);
        out(&s, kv->raw, kv->raw_len);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        out_u64(&s, strlen(t->name));
        out(&s, t->name, strlen(t->name));
        out_u32(&s, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) out_u64(&s, (uint64_t)t->ne[d]);
        out_u32(&s, (uint32_t)t->type);
        out_u64(&s, off);
        off += t->nbytes;
        if (off % align) off += align - off % align;
    }
    if (w->n_t) out_pad(&s, align);   /* as llama.cpp: no padding without tensors */
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        if (t->data) out(&s, t->data, t->nbytes);
        else out_zeros(&s, t->nbytes);
        out_pad(&s, align);
    }
    int e = s.failed ? errno : 0;
    if (fclose(f) != 0 && !e) e = errno ? errno : EIO;
    if (!s.failed && !e && rename(tmp, path) != 0) e = errno;
    if (s.failed || e) {
        unlink(tmp);
        rc = fr_errf(FR_EIO, "%s: write failed: %s", path, strerror(e ? e : EIO));
    }
    fr_free(tmp);
    return rc;
}
