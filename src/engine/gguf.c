/*
 * gguf.c — the GGUF reader: map a file, validate every byte we will hand
 * out, build an index of key/value pairs and tensors.
 *
 * The format (GGUF.md §1; all integers little-endian, no padding between
 * fields except where marked):
 *
 *   offset  size  field
 *   ------  ----  -----------------------------------------------------
 *   0       4     magic "GGUF" (47 47 55 46)
 *   4       4     version u32: 2 or 3 (1 had 32-bit counts; a big-endian
 *                 file reads as a number whose low 16 bits are zero)
 *   8       8     n_tensors (i64, must be >= 0)
 *   16      8     n_kv      (i64, must be >= 0)
 *   24      ...   n_kv key/value pairs:
 *                   key    string (u64 len + bytes, no NUL; non-empty, unique)
 *                   vtype  u32  (value type, below)
 *                   value  as vtype says
 *           ...   n_tensors tensor records:
 *                   name    string (1..63 bytes, unique)
 *                   n_dims  u32 (1..4)
 *                   ne      n_dims x i64 (ne[0] innermost; each >= 0)
 *                   type    u32 ggml type id (kernels/types.h)
 *                   offset  u64 from the start of the data section,
 *                           a multiple of the alignment
 *           pad   zero bytes up to a multiple of the alignment
 *           ...   data section: tensor bytes, each tensor aligned
 *
 *   value types (id: name, bytes):
 *     0 u8 1   1 i8 1   2 u16 2   3 i16 2   4 u32 4   5 i32 4   6 f32 4
 *     7 bool 1 (nonzero = true)   8 string: u64 len + len bytes
 *     9 array: elem vtype u32, count u64, count packed elements
 *              (strings each length-prefixed; arrays of arrays rejected)
 *     10 u64 8   11 i64 8   12 f64 8
 *
 *   alignment: general.alignment (u32, power of two), default 32.
 *   tensor bytes: (ne[0] / block) * block_bytes * ne[1] * ne[2] * ne[3].
 *
 * Design: one pass with a bounds-checked cursor over the image.  Counts from
 * the file are checked against the bytes left before anything is allocated
 * for them (every pair needs >= 13 bytes, every tensor record >= 33, every
 * string-array element >= 8).  The index keeps pointers into the image;
 * string arrays get a table of element positions so element j is O(1).
 * Keys and tensor names sit in small open-addressing hash tables, which
 * also detect duplicates in linear time.
 */
#include "engine/gguf.h"

#include "base/err.h"
#include "base/mem.h"
#include "engine/gguf_int.h"
#include "kernels/types.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define KV_MIN_BYTES 13u      /* key len 8 + 1 key byte + vtype 4 */
#define TENSOR_MIN_BYTES 33u  /* name len 8 + 1 + n_dims 4 + ne 8 + type 4 + offset 8 */
#define SHOWN 80              /* at most this many bytes of a key in messages */

static const struct { const char *name; size_t size; } vtypes[FR_GGUF_VTYPE_COUNT] = {
    [FR_GGUF_U8] = {"u8", 1},    [FR_GGUF_I8] = {"i8", 1},
    [FR_GGUF_U16] = {"u16", 2},  [FR_GGUF_I16] = {"i16", 2},
    [FR_GGUF_U32] = {"u32", 4},  [FR_GGUF_I32] = {"i32", 4},
    [FR_GGUF_F32] = {"f32", 4},  [FR_GGUF_BOOL] = {"bool", 1},
    [FR_GGUF_STRING] = {"string", 0}, [FR_GGUF_ARRAY] = {"array", 0},
    [FR_GGUF_U64] = {"u64", 8},  [FR_GGUF_I64] = {"i64", 8},
    [FR_GGUF_F64] = {"f64", 8},
};

size_t fr__gguf_type_size(int vtype) {
    return vtype >= 0 && vtype < FR_GGUF_VTYPE_COUNT ? vtypes[vtype].size : 0;
}

const char *fr__gguf_type_name(int vtype) {
    return vtype >= 0 && vtype < FR_GGUF_VTYPE_COUNT ? vtypes[vtype].name : "?";
}

/* ---- bounds-checked cursor ---- */

typedef struct cursor {
    const uint8_t *p;
    size_t pos, size;
    const char *name;   /* file name for messages */
} cursor;

static size_t left(const cursor *c) { return c->size - c->pos; }

static int truncated(const cursor *c, const char *what) {
    return fr_errf(FR_EFORMAT, "%s: %s: truncated at byte %zu (file has %zu bytes)",
                   c->name, what, c->pos, c->size);
}

static int rd_bytes(cursor *c, size_t n, const uint8_t **out, const char *what) {
    if (n > left(c)) return truncated(c, what);
    *out = c->p + c->pos;
    c->pos += n;
    return 0;
}

static int rd_u32(cursor *c, uint32_t *v, const char *what) {
    const uint8_t *b = NULL;
    *v = 0;
    int rc = rd_bytes(c, 4, &b, what);
    if (rc) return rc;
    memcpy(v, b, 4);
    return 0;
}

static int rd_u64(cursor *c, uint64_t *v, const char *what) {
    const uint8_t *b = NULL;
    *v = 0;
    int rc = rd_bytes(c, 8, &b, what);
    if (rc) return rc;
    memcpy(v, b, 8);
    return 0;
}

/* A length-prefixed string; the bytes must be inside the image. */
static int rd_str(cursor *c, fr_gguf_str *s, const char *what) {
    uint64_t len;
    s->s = NULL;
    s->len = 0;
    int rc = rd_u64(c, &len, what);
    if (rc) return rc;
    if (len > left(c))
        return fr_errf(FR_EFORMAT, "%s: %s: string length %" PRIu64 " at byte %zu runs past "
                       "the end of the file (%zu bytes left)", c->name, what, len,
                       c->pos - 8, left(c));
    s->s = (const char *)(c->p + c->pos);
    s->len = len;
    c->pos += (size_t)len;
    return 0;
}

static int shown(uint64_t len) { return len > SHOWN ? SHOWN : (int)len; }

/* ---- hashing ---- */

static uint64_t hash_bytes(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull;    /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* A table of >= 2n slots (power of two); *mask = slots - 1. */
static uint32_t *hash_create(int64_t n, size_t *mask) {
    size_t slots = 8;
    while (slots < (size_t)n * 2) slots *= 2;
    *mask = slots - 1;
    return fr_calloc(slots, sizeof(uint32_t));
}

static bool key_eq(const fr_gguf_str *a, const char *s, size_t n) {
    return a->len == n && memcmp(a->s, s, n) == 0;
}

static int64_t kv_lookup(const fr_gguf *g, const char *s, size_t n) {
    if (!g->kv_hash) return -1;
    for (size_t i = hash_bytes(s, n) & g->kv_hash_mask;; i = (i + 1) & g->kv_hash_mask) {
        uint32_t e = g->kv_hash[i];
        if (!e) return -1;
        if (key_eq(&g->kv[e - 1].key, s, n)) return e - 1;
    }
}

static int64_t tensor_lookup(const fr_gguf *g, const char *s, size_t n) {
    if (!g->t_hash) return -1;
    for (size_t i = hash_bytes(s, n) & g->t_hash_mask;; i = (i + 1) & g->t_hash_mask) {
        uint32_t e = g->t_hash[i];
        if (!e) return -1;
        const char *name = g->tensors[e - 1].name;
        if (strlen(name) == n && memcmp(name, s, n) == 0) return e - 1;
    }
}

/* Insert index idx under its key; false when the key is present already. */
static bool hash_insert(uint32_t *tab, size_t mask, const fr_gguf *g, bool tensors,
                        const char *s, size_t n, int64_t idx) {
    for (size_t i = hash_bytes(s, n) & mask;; i = (i + 1) & mask) {
        uint32_t e = tab[i];
        if (!e) { tab[i] = (uint32_t)(idx + 1); return true; }
        if (tensors) {
            const char *name = g->tensors[e - 1].name;
            if (strlen(name) == n && memcmp(name, s, n) == 0) return false;
        } else if (key_eq(&g->kv[e - 1].key, s, n)) return false;
    }
}

/* ---- parsing ---- */

static void gguf_free(fr_gguf *g) {
    if (!g) return;
    if (g->kv)
        for (int64_t i = 0; i < g->n_kv; i++) {
            fr_free(g->kv[i].str_off32);
            fr_free(g->kv[i].str_off64);
        }
    fr_free(g->kv);
    fr_free(g->tensors);
    fr_free(g->kv_hash);
    fr_free(g->t_hash);
    if (g->mapped && g->size) munmap((void *)g->base, g->size);
    fr_free(g->path);
    fr_free(g);
}

static int parse_header(fr_gguf *g, cursor *c) {
    const uint8_t *magic = NULL;
    uint32_t version;
    uint64_t n_tensors, n_kv;
    int rc;
    if ((rc = rd_bytes(c, 4, &magic, "magic"))) return rc;
    if (memcmp(magic, "GGUF", 4) != 0)
        return fr_errf(FR_EFORMAT, "%s: bad magic: %02x %02x %02x %02x (want \"GGUF\")",
                       c->name, magic[0], magic[1], magic[2], magic[3]);
    if ((rc = rd_u32(c, &version, "version"))) return rc;
    if (version == 0) return fr_errf(FR_EFORMAT, "%s: version: 0 is invalid", c->name);
    if ((version & 0xFFFF) == 0)
        return fr_errf(FR_EFORMAT, "%s: version: 0x%08x has the wrong byte order "
                       "(big-endian file?)", c->name, version);
    if (version == 1)
        return fr_errf(FR_EFORMAT, "%s: version: 1 is not supported (need 2 or 3)", c->name);
    if (version > 3)
        return fr_errf(FR_EFORMAT, "%s: version: %u is newer than 3", c->name, version);
    g->version = version;
    if ((rc = rd_u64(c, &n_tensors, "n_tensors"))) return rc;
    if ((rc = rd_u64(c, &n_kv, "n_kv"))) return rc;
    if ((int64_t)n_tensors < 0)
        return fr_errf(FR_EFORMAT, "%s: n_tensors: negative (%" PRId64 ")", c->name,
                       (int64_t)n_tensors);
    if ((int64_t)n_kv < 0)
        return fr_errf(FR_EFORMAT, "%s: n_kv: negative (%" PRId64 ")", c->name, (int64_t)n_kv);
    /* Indices live in 32-bit hash slots; no real file comes near. */
    if (n_kv > left(c) / KV_MIN_BYTES || n_kv > INT32_MAX)
        return fr_errf(FR_EFORMAT, "%s: n_kv: %" PRIu64 " pairs cannot fit in the %zu bytes "
                       "left", c->name, n_kv, left(c));
    if (n_tensors > left(c) / TENSOR_MIN_BYTES || n_tensors > INT32_MAX ||
        n_kv * KV_MIN_BYTES + n_tensors * TENSOR_MIN_BYTES > left(c))
        return fr_errf(FR_EFORMAT, "%s: n_tensors: %" PRIu64 " tensors (and %" PRIu64
                       " pairs) cannot fit in the %zu bytes left", c->name, n_tensors,
                       n_kv, left(c));
    g->n_tensors = (int64_t)n_tensors;
    g->n_kv = (int64_t)n_kv;
    return 0;
}

/* An array's elements: kv->elem_type and count are read; walk and index. */
static int parse_array(cursor *c, fr__gguf_kv *kv) {
    const fr_gguf_str *k = &kv->key;
    uint32_t et;
    uint64_t count;
    int rc;
    if ((rc = rd_u32(c, &et, "array element type"))) return rc;
    if (et == FR_GGUF_ARRAY)
        return fr_errf(FR_EFORMAT, "%s: key '%.*s': nested array", c->name, shown(k->len), k->s);
    if (et >= FR_GGUF_VTYPE_COUNT)
        return fr_errf(FR_EFORMAT, "%s: key '%.*s': bad array element type %u", c->name,
                       shown(k->len), k->s, et);
    if ((rc = rd_u64(c, &count, "array count"))) return rc;
    kv->elem_type = (int)et;
    kv->count = count;
    kv->val = c->p + c->pos;
    if (et != FR_GGUF_STRING) {
        size_t es = vtypes[et].size, n;
        const uint8_t *b = NULL;
        if (count > SIZE_MAX || !fr_mul_ok((size_t)count, es, &n) || n > left(c))
            return fr_errf(FR_EFORMAT, "%s: key '%.*s': array of %" PRIu64 " %s runs past the "
                           "end of the file (%zu bytes left)", c->name, shown(k->len), k->s,
                           count, vtypes[et].name, left(c));
        return rd_bytes(c, n, &b, "array");
    }
    /* Every string element takes at least its 8-byte length. */
    if (count > left(c) / 8)
        return fr_errf(FR_EFORMAT, "%s: key '%.*s': array of %" PRIu64 " strings cannot fit "
                       "in the %zu bytes left", c->name, shown(k->len), k->s, count, left(c));
    if (count == 0) return 0;
    size_t start = c->pos;
    bool off64 = left(c) > UINT32_MAX;
    if (off64) kv->str_off64 = fr_malloc((size_t)count * sizeof(uint64_t));
    else kv->str_off32 = fr_malloc((size_t)count * sizeof(uint32_t));
    if (!kv->str_off64 && !kv->str_off32) return FR_ENOMEM;
    for (uint64_t j = 0; j < count; j++) {
        uint64_t len;
        size_t at = c->pos - start;
        if (off64) kv->str_off64[j] = at;
        else kv->str_off32[j] = (uint32_t)at;
        if ((rc = rd_u64(c, &len, "array string length"))) return rc;
        if (len > left(c))
            return fr_errf(FR_EFORMAT, "%s: key '%.*s': string %" PRIu64 " of %" PRIu64
                           ": length %" PRIu64 " runs past the end of the file (%zu bytes "
                           "left)", c->name, shown(k->len), k->s, j, count, len, left(c));
        c->pos += (size_t)len;
    }
    return 0;
}

static int parse_kv(fr_gguf *g, cursor *c, int64_t i) {
    fr__gguf_kv *kv = &g->kv[i];
    uint32_t vt;
    int rc;
    kv->elem_type = -1;
    kv->count = 1;
    if ((rc = rd_str(c, &kv->key, "key"))) return rc;
    if (kv->key.len == 0)
        return fr_errf(FR_EFORMAT, "%s: key %" PRId64 ": empty key", c->name, i);
    if (!hash_insert(g->kv_hash, g->kv_hash_mask, g, false, kv->key.s, kv->key.len, i))
        return fr_errf(FR_EFORMAT, "%s: key '%.*s': duplicate key", c->name,
                       shown(kv->key.len), kv->key.s);
    if ((rc = rd_u32(c, &vt, "value type"))) return rc;
    if (vt >= FR_GGUF_VTYPE_COUNT)
        return fr_errf(FR_EFORMAT, "%s: key '%.*s': bad value type %u", c->name,
                       shown(kv->key.len), kv->key.s, vt);
    kv->type = (int)vt;
    kv->raw = c->p + c->pos;
    if (vt == FR_GGUF_STRING) {
        fr_gguf_str s;
        kv->val = kv->raw;
        rc = rd_str(c, &s, "string value");
    } else if (vt == FR_GGUF_ARRAY) {
        rc = parse_array(c, kv);
    } else {
        const uint8_t *b = NULL;
        kv->val = kv->raw;
        rc = rd_bytes(c, vtypes[vt].size, &b, "value");
    }
    if (rc) return rc;
    kv->raw_len = (size_t)(c->p + c->pos - kv->raw);
    return 0;
}

static int parse_alignment(fr_gguf *g, const char *name) {
    g->alignment = FR_GGUF_DEFAULT_ALIGNMENT;
    int64_t i = kv_lookup(g, "general.alignment", strlen("general.alignment"));
    if (i < 0) return 0;
    const fr__gguf_kv *kv = &g->kv[i];
    if (kv->type != FR_GGUF_U32)
        return fr_errf(FR_EFORMAT, "%s: key 'general.alignment': type %s, want u32", name,
                       fr__gguf_type_name(kv->type));
    uint32_t a;
    memcpy(&a, kv->val, 4);
    if (a == 0 || (a & (a - 1)))
        return fr_errf(FR_EFORMAT, "%s: key 'general.alignment': %u is not a power of two",
                       name, a);
    g->alignment = a;
    return 0;
}

static int parse_tensor(fr_gguf *g, cursor *c, int64_t i) {
    fr_gguf_tensor *t = &g->tensors[i];
    fr_gguf_str name = {NULL, 0};
    uint32_t n_dims = 0, type = 0;
    int rc;
    if ((rc = rd_str(c, &name, "tensor name"))) return rc;
    if (name.len == 0)
        return fr_errf(FR_EFORMAT, "%s: tensor %" PRId64 ": empty name", c->name, i);
    if (name.len >= FR_GGUF_MAX_NAME)
        return fr_errf(FR_EFORMAT, "%s: tensor '%.*s': name of %" PRIu64 " bytes (max %d)",
                       c->name, shown(name.len), name.s, name.len, FR_GGUF_MAX_NAME - 1);
    if (memchr(name.s, 0, (size_t)name.len))
        return fr_errf(FR_EFORMAT, "%s: tensor %" PRId64 ": name contains a NUL byte",
                       c->name, i);
    memcpy(t->name, name.s, (size_t)name.len);
    t->name[name.len] = 0;
    if (!hash_insert(g->t_hash, g->t_hash_mask, g, true, t->name, (size_t)name.len, i))
        return fr_errf(FR_EFORMAT, "%s: tensor '%s': duplicate name", c->name, t->name);
    if ((rc = rd_u32(c, &n_dims, "tensor n_dims"))) return rc;
    if (n_dims == 0 || n_dims > 4)
        return fr_errf(FR_EFORMAT, "%s: tensor '%s': n_dims %u (want 1..4)", c->name, t->name,
                       n_dims);
    t->n_dims = (int)n_dims;
    int64_t nel = 1;
    for (int d = 0; d < 4; d++) {
        uint64_t v = 1;
        if (d < (int)n_dims && (rc = rd_u64(c, &v, "tensor dims"))) return rc;
        if ((int64_t)v < 0)
            return fr_errf(FR_EFORMAT, "%s: tensor '%s': ne[%d] is negative (%" PRId64 ")",
                           c->name, t->name, d, (int64_t)v);
        t->ne[d] = (int64_t)v;
        if (__builtin_mul_overflow(nel, t->ne[d], &nel))
            return fr_errf(FR_EFORMAT, "%s: tensor '%s': element count overflows at ne[%d] "
                           "= %" PRId64, c->name, t->name, d, t->ne[d]);
    }
    if ((rc = rd_u32(c, &type, "tensor type"))) return rc;
    const fr_type_info *ti = fr_type_get((int)type);
    if (type > INT32_MAX || !ti)
        return fr_errf(FR_EFORMAT, "%s: tensor '%s': bad type id %u", c->name, t->name, type);
    t->type = (int)type;
    if (t->ne[0] % ti->blck)
        return fr_errf(FR_EFORMAT, "%s: tensor '%s': ne[0] = %" PRId64 " is not a multiple of "
                       "the %s block size %d", c->name, t->name, t->ne[0], ti->name, ti->blck);
    size_t nb;
    if (!fr_type_row_size(t->type, t->ne[0], &nb) || !fr_mul_ok(nb, (size_t)t->ne[1], &nb) ||
        !fr_mul_ok(nb, (size_t)t->ne[2], &nb) || !fr_mul_ok(nb, (size_t)t->ne[3], &nb))
        return fr_errf(FR_EFORMAT, "%s: tensor '%s': byte size overflows", c->name, t->name);
    t->nbytes = nb;
    if ((rc = rd_u64(c, &t->offset, "tensor offset"))) return rc;
    if (t->offset % g->alignment)
        return fr_errf(FR_EFORMAT, "%s: tensor '%s': offset %" PRIu64 " is not a multiple "
                       "of the alignment %u", c->name, t->name, t->offset, g->alignment);
    if (i > 0) {
        const fr_gguf_tensor *p = &g->tensors[i - 1];
        /* p->offset + p->nbytes cannot wrap: p was checked the same way. */
        if (t->offset < p->offset + p->nbytes)
            return fr_errf(FR_EFORMAT, "%s: tensor '%s': offset %" PRIu64 " is before the end "
                           "of the previous tensor '%s' (%" PRIu64 ")", c->name, t->name,
                           t->offset, p->name, (uint64_t)(p->offset + p->nbytes));
    }
    if (t->offset > UINT64_MAX - t->nbytes)
        return fr_errf(FR_EFORMAT, "%s: tensor '%s': offset %" PRIu64 " + size %zu overflows",
                       c->name, t->name, t->offset, t->nbytes);
    return 0;
}

/* After the records: locate the data section and check every tensor's bytes
 * are inside the image. */
static int place_tensors(fr_gguf *g, cursor *c) {
    size_t a = g->alignment, pos = c->pos;
    size_t data = pos % a ? pos + (a - pos % a) : pos;
    if (data < pos) data = SIZE_MAX;   /* cannot happen for real sizes */
    g->data_offset = data;
    if (g->n_tensors == 0) return 0;
    if (data > c->size)
        return fr_errf(FR_EFORMAT, "%s: padding before the data section: truncated at byte "
                       "%zu (data would start at %zu)", c->name, c->size, data);
    size_t room = c->size - data;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        fr_gguf_tensor *t = &g->tensors[i];
        if (t->offset > room)
            return fr_errf(FR_EFORMAT, "%s: tensor '%s': offset %" PRIu64 " is past the end "
                           "of the file (data section holds %zu bytes)", c->name, t->name,
                           t->offset, room);
        if (t->nbytes > room - t->offset)
            return fr_errf(FR_EFORMAT, "%s: tensor '%s': %zu bytes at offset %" PRIu64
                           " run past the end of the file (data section holds %zu bytes)",
                           c->name, t->name, t->nbytes, t->offset, room);
        t->data = g->base + data + t->offset;
    }
    return 0;
}

static int parse_image(fr_gguf *g) {
    cursor c = {g->base, 0, g->size, g->path};
    int rc;
    if ((rc = parse_header(g, &c))) return rc;
    if (g->n_kv) {
        g->kv = fr_calloc((size_t)g->n_kv, sizeof *g->kv);
        g->kv_hash = hash_create(g->n_kv, &g->kv_hash_mask);
        if (!g->kv || !g->kv_hash) return FR_ENOMEM;
    }
    for (int64_t i = 0; i < g->n_kv; i++)
        if ((rc = parse_kv(g, &c, i))) return rc;
    if ((rc = parse_alignment(g, c.name))) return rc;
    if (g->n_tensors) {
        if ((uint64_t)g->n_tensors > left(&c) / TENSOR_MIN_BYTES)
            return fr_errf(FR_EFORMAT, "%s: n_tensors: %" PRId64 " tensors cannot fit in the "
                           "%zu bytes left", c.name, g->n_tensors, left(&c));
        g->tensors = fr_calloc((size_t)g->n_tensors, sizeof *g->tensors);
        g->t_hash = hash_create(g->n_tensors, &g->t_hash_mask);
        if (!g->tensors || !g->t_hash) return FR_ENOMEM;
    }
    for (int64_t i = 0; i < g->n_tensors; i++)
        if ((rc = parse_tensor(g, &c, i))) return rc;
    return place_tensors(g, &c);
}

static int gguf_new(const char *name, fr_gguf **out) {
    fr_gguf *g = fr_calloc(1, sizeof *g);
    if (!g) return FR_ENOMEM;
    g->path = fr_strdup(name ? name : "<memory>");
    if (!g->path) { fr_free(g); return FR_ENOMEM; }
    *out = g;
    return 0;
}

int fr_gguf_parse(const void *data, size_t size, const char *name, fr_gguf **out) {
    fr_gguf *g;
    *out = NULL;
    int rc = gguf_new(name, &g);
    if (rc) return rc;
    g->base = data;
    g->size = data ? size : 0;
    if ((rc = parse_image(g))) {
        if (rc == FR_ENOMEM) fr_errf(rc, "%s: out of memory while indexing", g->path);
        gguf_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

int fr_gguf_open(const char *path, fr_gguf **out) {
    fr_gguf *g;
    struct stat st;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);   /* a FIFO must not block */
    if (fd < 0)
        return fr_errf(errno == ENOENT ? FR_ENOENT : FR_EIO, "%s: cannot open: %s", path,
                       strerror(errno));
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return fr_errf(FR_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fr_errf(FR_EIO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return fr_errf(FR_EIO, "%s: file too large to map", path);
    }
    int rc = gguf_new(path, &g);
    if (rc) { close(fd); return rc; }
    g->size = (size_t)st.st_size;
    if (g->size) {
        void *m = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            gguf_free(g);
            return fr_errf(FR_EIO, "%s: cannot map %jd bytes: %s", path, (intmax_t)st.st_size,
                           strerror(e));
        }
        g->base = m;
        g->mapped = true;
    }
    close(fd);
    if ((rc = parse_image(g))) {
        if (rc == FR_ENOMEM) fr_errf(rc, "%s: out of memory while indexing", path);
        gguf_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

void fr_gguf_close(fr_gguf *g) { gguf_free(g); }

const char *fr_gguf_path(const fr_gguf *g) { return g->path; }
uint32_t fr_gguf_version(const fr_gguf *g) { return g->version; }
size_t fr_gguf_file_size(const fr_gguf *g) { return g->size; }
const void *fr_gguf_base(const fr_gguf *g) { return g->base; }
size_t fr_gguf_data_offset(const fr_gguf *g) { return g->data_offset; }
uint32_t fr_gguf_alignment(const fr_gguf *g) { return g->alignment; }

/* ---- key/value pairs ---- */

int64_t fr_gguf_n_kv(const fr_gguf *g) { return g->n_kv; }

int64_t fr_gguf_find_key(const fr_gguf *g, const char *key) {
    return kv_lookup(g, key, strlen(key));
}

fr_gguf_str fr_gguf_key(const fr_gguf *g, int64_t i) {
    fr_gguf_str none = {"", 0};
    return i >= 0 && i < g->n_kv ? g->kv[i].key : none;
}

int fr_gguf_kv_type(const fr_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? g->kv[i].type : -1;
}

/* The pair for key, or FR_ENOENT (no detail: absence is normal). */
static int find(const fr_gguf *g, const char *key, const fr__gguf_kv **out) {
    int64_t i = kv_lookup(g, key, strlen(key));
    if (i < 0) return FR_ENOENT;
    *out = &g->kv[i];
    return 0;
}

static int wrong_type(const fr_gguf *g, const char *key, int type, const char *want) {
    return fr_errf(FR_EFORMAT, "%s: key '%s': type %s, want %s", g->path, key,
                   fr__gguf_type_name(type), want);
}

/* An integer scalar as signed/unsigned 64 bits: *neg says which half. */
static bool int_value(const fr__gguf_kv *kv, uint64_t *u, int64_t *s, bool *neg) {
    const uint8_t *p = kv->val;
    *neg = false;
    switch (kv->type) {
    case FR_GGUF_U8: *u = p[0]; break;
    case FR_GGUF_I8: *s = (int8_t)p[0]; *neg = true; break;
    case FR_GGUF_U16: { uint16_t v; memcpy(&v, p, 2); *u = v; break; }
    case FR_GGUF_I16: { int16_t v; memcpy(&v, p, 2); *s = v; *neg = true; break; }
    case FR_GGUF_U32: { uint32_t v; memcpy(&v, p, 4); *u = v; break; }
    case FR_GGUF_I32: { int32_t v; memcpy(&v, p, 4); *s = v; *neg = true; break; }
    case FR_GGUF_U64: memcpy(u, p, 8); break;
    case FR_GGUF_I64: memcpy(s, p, 8); *neg = true; break;
    default: return false;
    }
    if (*neg && *s >= 0) { *u = (uint64_t)*s; *neg = false; }
    else if (!*neg) *s = *u > INT64_MAX ? INT64_MAX : (int64_t)*u;
    return true;
}

int fr_gguf_get_u64(const fr_gguf *g, const char *key, uint64_t *out) {
    const fr__gguf_kv *kv;
    uint64_t u;
    int64_t s;
    bool neg;
    int rc = find(g, key, &kv);
    if (rc) return rc;
    if (!int_value(kv, &u, &s, &neg)) return wrong_type(g, key, kv->type, "an integer");
    if (neg)
        return fr_errf(FR_EFORMAT, "%s: key '%s': %" PRId64 " is negative", g->path, key, s);
    *out = u;
    return 0;
}

int fr_gguf_get_i64(const fr_gguf *g, const char *key, int64_t *out) {
    const fr__gguf_kv *kv;
    uint64_t u;
    int64_t s;
    bool neg;
    int rc = find(g, key, &kv);
    if (rc) return rc;
    if (!int_value(kv, &u, &s, &neg)) return wrong_type(g, key, kv->type, "an integer");
    if (!neg && u > INT64_MAX)
        return fr_errf(FR_EFORMAT, "%s: key '%s': %" PRIu64 " does not fit in i64", g->path,
                       key, u);
    *out = neg ? s : (int64_t)u;
    return 0;
}

int fr_gguf_get_u32(const fr_gguf *g, const char *key, uint32_t *out) {
    uint64_t v = 0;
    int rc = fr_gguf_get_u64(g, key, &v);
    if (rc) return rc;
    if (v > UINT32_MAX)
        return fr_errf(FR_EFORMAT, "%s: key '%s': %" PRIu64 " does not fit in u32", g->path,
                       key, v);
    *out = (uint32_t)v;
    return 0;
}

int fr_gguf_get_f32(const fr_gguf *g, const char *key, float *out) {
    const fr__gguf_kv *kv;
    int rc = find(g, key, &kv);
    if (rc) return rc;
    if (kv->type == FR_GGUF_F32) {
        memcpy(out, kv->val, 4);
    } else if (kv->type == FR_GGUF_F64) {
        double d;
        memcpy(&d, kv->val, 8);
        *out = (float)d;
    } else {
        return wrong_type(g, key, kv->type, "f32 or f64");
    }
    return 0;
}

int fr_gguf_get_bool(const fr_gguf *g, const char *key, bool *out) {
    const fr__gguf_kv *kv;
    int rc = find(g, key, &kv);
    if (rc) return rc;
    if (kv->type != FR_GGUF_BOOL) return wrong_type(g, key, kv->type, "bool");
    *out = kv->val[0] != 0;
    return 0;
}

/* A validated string at p (its u64 length prefix). */
static fr_gguf_str str_at(const uint8_t *p) {
    fr_gguf_str s;
    memcpy(&s.len, p, 8);
    s.s = (const char *)p + 8;
    return s;
}

int fr_gguf_get_str(const fr_gguf *g, const char *key, fr_gguf_str *out) {
    const fr__gguf_kv *kv;
    int rc = find(g, key, &kv);
    if (rc) return rc;
    if (kv->type != FR_GGUF_STRING) return wrong_type(g, key, kv->type, "string");
    *out = str_at(kv->val);
    return 0;
}

int fr_gguf_get_arr(const fr_gguf *g, const char *key, int *elem_type, uint64_t *count,
                    const void **data) {
    const fr__gguf_kv *kv;
    int rc = find(g, key, &kv);
    if (rc) return rc;
    if (kv->type != FR_GGUF_ARRAY) return wrong_type(g, key, kv->type, "array");
    if (elem_type) *elem_type = kv->elem_type;
    if (count) *count = kv->count;
    if (data) *data = kv->val;
    return 0;
}

static fr_gguf_str arr_str(const fr__gguf_kv *kv, uint64_t j) {
    return str_at(kv->val + (kv->str_off64 ? kv->str_off64[j] : kv->str_off32[j]));
}

int fr_gguf_get_arr_str(const fr_gguf *g, const char *key, uint64_t j, fr_gguf_str *out) {
    const fr__gguf_kv *kv;
    int rc = find(g, key, &kv);
    if (rc) return rc;
    if (kv->type != FR_GGUF_ARRAY || kv->elem_type != FR_GGUF_STRING)
        return fr_errf(FR_EFORMAT, "%s: key '%s': not an array of strings", g->path, key);
    if (j >= kv->count)
        return fr_errf(FR_ERANGE, "%s: key '%s': index %" PRIu64 " >= count %" PRIu64,
                       g->path, key, j, kv->count);
    *out = arr_str(kv, j);
    return 0;
}

/* ---- formatting ---- */

typedef struct outbuf {
    char *buf;
    size_t cap, len;
    bool full;
} outbuf;

static void put(outbuf *o, const char *s, size_t n) {
    if (o->full) return;
    if (o->len + n + 1 > o->cap) {
        n = o->cap - o->len - 1;
        o->full = true;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = 0;
}

static void putf(outbuf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(outbuf *o, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) put(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* The shortest %g form that reads back to the same value. */
static void put_float(outbuf *o, double v, bool single) {
    char tmp[40];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (isnan(v) || isinf(v)) break;
        if (single ? strtof(tmp, NULL) == (float)v : strtod(tmp, NULL) == v) break;
    }
    put(o, tmp, strlen(tmp));
}

static void put_quoted(outbuf *o, fr_gguf_str s) {
    put(o, "\"", 1);
    for (uint64_t i = 0; i < s.len && !o->full; i++) {
        unsigned char ch = (unsigned char)s.s[i];
        switch (ch) {
        case '"': put(o, "\\\"", 2); break;
        case '\\': put(o, "\\\\", 2); break;
        case '\n': put(o, "\\n", 2); break;
        case '\r': put(o, "\\r", 2); break;
        case '\t': put(o, "\\t", 2); break;
        default:
            if (ch < 0x20 || ch == 0x7f) putf(o, "\\x%02x", ch);
            else put(o, (const char *)&ch, 1);
        }
    }
    put(o, "\"", 1);
}

/* One scalar of type t at p (strings: p is the length prefix). */
static void put_scalar(outbuf *o, int t, const uint8_t *p) {
    switch (t) {
    case FR_GGUF_U8: putf(o, "%u", p[0]); break;
    case FR_GGUF_I8: putf(o, "%d", (int8_t)p[0]); break;
    case FR_GGUF_U16: { uint16_t v; memcpy(&v, p, 2); putf(o, "%u", v); break; }
    case FR_GGUF_I16: { int16_t v; memcpy(&v, p, 2); putf(o, "%d", v); break; }
    case FR_GGUF_U32: { uint32_t v; memcpy(&v, p, 4); putf(o, "%" PRIu32, v); break; }
    case FR_GGUF_I32: { int32_t v; memcpy(&v, p, 4); putf(o, "%" PRId32, v); break; }
    case FR_GGUF_U64: { uint64_t v; memcpy(&v, p, 8); putf(o, "%" PRIu64, v); break; }
    case FR_GGUF_I64: { int64_t v; memcpy(&v, p, 8); putf(o, "%" PRId64, v); break; }
    case FR_GGUF_F32: { float v; memcpy(&v, p, 4); put_float(o, v, true); break; }
    case FR_GGUF_F64: { double v; memcpy(&v, p, 8); put_float(o, v, false); break; }
    case FR_GGUF_BOOL: putf(o, "%s", p[0] ? "true" : "false"); break;
    case FR_GGUF_STRING: put_quoted(o, str_at(p)); break;
    default: put(o, "?", 1);
    }
}

void fr_gguf_format_value(const fr_gguf *g, int64_t i, char *buf, size_t cap,
                          size_t max_array_items) {
    if (!buf || cap == 0) return;
    outbuf o = {buf, cap, 0, false};
    buf[0] = 0;
    if (i < 0 || i >= g->n_kv) return;
    const fr__gguf_kv *kv = &g->kv[i];
    if (kv->type != FR_GGUF_ARRAY) {
        put_scalar(&o, kv->type, kv->val);
    } else {
        size_t es = vtypes[kv->elem_type].size;
        uint64_t shown_n = kv->count < max_array_items ? kv->count : max_array_items;
        put(&o, "[", 1);
        for (uint64_t j = 0; j < shown_n && !o.full; j++) {
            if (j) put(&o, ", ", 2);
            if (kv->elem_type == FR_GGUF_STRING)
                put_quoted(&o, arr_str(kv, j));
            else
                put_scalar(&o, kv->elem_type, kv->val + j * es);
        }
        if (shown_n < kv->count)
            putf(&o, "%s... (%" PRIu64 " items)", shown_n ? ", " : "", kv->count);
        put(&o, "]", 1);
    }
    if (o.full && cap >= 4) memcpy(buf + cap - 4, "...", 4);
}

/* ---- tensors ---- */

int64_t fr_gguf_n_tensors(const fr_gguf *g) { return g->n_tensors; }

const fr_gguf_tensor *fr_gguf_tensor_at(const fr_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const fr_gguf_tensor *fr_gguf_find_tensor(const fr_gguf *g, const char *name) {
    int64_t i = tensor_lookup(g, name, strlen(name));
    return i < 0 ? NULL : &g->tensors[i];
}
