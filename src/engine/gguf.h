/*
 * gguf.h — read (and write) GGUF files.
 *
 * A reader maps the file read-only and validates every byte it will ever
 * hand out: header, key/value pairs, tensor records, offsets and sizes
 * (see the byte table at the top of gguf.c).  After a successful open,
 * every accessor below is a bounds-safe lookup into the mapping; nothing
 * is copied except the index arrays.  Any violation is FR_EFORMAT with a
 * detail message (fr_errdetail()) naming the file, the key or tensor and
 * the bad value.
 *
 * Thread-safety: a fr_gguf is immutable after open; readers may share it.
 */
#ifndef FR_ENGINE_GGUF_H
#define FR_ENGINE_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fr_gguf fr_gguf;

enum fr_gguf_vtype {
    FR_GGUF_U8 = 0, FR_GGUF_I8 = 1, FR_GGUF_U16 = 2, FR_GGUF_I16 = 3,
    FR_GGUF_U32 = 4, FR_GGUF_I32 = 5, FR_GGUF_F32 = 6, FR_GGUF_BOOL = 7,
    FR_GGUF_STRING = 8, FR_GGUF_ARRAY = 9, FR_GGUF_U64 = 10, FR_GGUF_I64 = 11,
    FR_GGUF_F64 = 12, FR_GGUF_VTYPE_COUNT
};

typedef struct fr_gguf_str {
    const char *s;   /* points into the mapping: NOT NUL-terminated */
    uint64_t len;
} fr_gguf_str;

typedef struct fr_gguf_tensor {
    char name[64];          /* NUL-terminated copy (GGUF limit: < 64 bytes) */
    int type;               /* ggml type id (kernels/types.h) */
    int n_dims;             /* 1..4 */
    int64_t ne[4];          /* missing dims are 1 */
    uint64_t offset;        /* relative to the data section */
    size_t nbytes;          /* validated: inside the file */
    const void *data;       /* into the mapping */
} fr_gguf_tensor;

/* Open and validate a file.  Returns 0, FR_ENOENT/FR_EIO (cannot open or
 * map), FR_EFORMAT (malformed) or FR_ENOMEM. */
int fr_gguf_open(const char *path, fr_gguf **out);

/* Parse an in-memory image (not copied: data must outlive the result).
 * `name` is used in error messages.  Same validation as fr_gguf_open. */
int fr_gguf_parse(const void *data, size_t size, const char *name, fr_gguf **out);

void fr_gguf_close(fr_gguf *g);                /* unmaps; NULL is fine */

const char *fr_gguf_path(const fr_gguf *g);   /* the name given at open */
uint32_t fr_gguf_version(const fr_gguf *g);
size_t fr_gguf_file_size(const fr_gguf *g);
const void *fr_gguf_base(const fr_gguf *g);    /* start of the mapping */
size_t fr_gguf_data_offset(const fr_gguf *g);  /* file offset of tensor data */
uint32_t fr_gguf_alignment(const fr_gguf *g);

/* ---- key/value pairs ---- */
int64_t fr_gguf_n_kv(const fr_gguf *g);
int64_t fr_gguf_find_key(const fr_gguf *g, const char *key);    /* index or -1 */
fr_gguf_str fr_gguf_key(const fr_gguf *g, int64_t i);
int fr_gguf_kv_type(const fr_gguf *g, int64_t i);               /* fr_gguf_vtype */

/* Typed getters by key.  Return 0 and store the value, FR_ENOENT when the
 * key is absent, FR_EFORMAT (with detail) when it has an incompatible type.
 * get_u64/get_i64 accept any integer type whose value fits; get_u32 too
 * (range-checked); get_f32 accepts F32 and F64; get_bool accepts BOOL. */
int fr_gguf_get_u32(const fr_gguf *g, const char *key, uint32_t *out);
int fr_gguf_get_i64(const fr_gguf *g, const char *key, int64_t *out);
int fr_gguf_get_u64(const fr_gguf *g, const char *key, uint64_t *out);
int fr_gguf_get_f32(const fr_gguf *g, const char *key, float *out);
int fr_gguf_get_bool(const fr_gguf *g, const char *key, bool *out);
int fr_gguf_get_str(const fr_gguf *g, const char *key, fr_gguf_str *out);

/* Arrays: element type and count; for non-string element types `data`
 * points at the packed little-endian elements in the mapping (may be
 * unaligned: read with memcpy).  FR_ENOENT / FR_EFORMAT as above. */
int fr_gguf_get_arr(const fr_gguf *g, const char *key, int *elem_type,
                    uint64_t *count, const void **data);
/* Element j of a string array (validated at open; O(1) after open).
 * FR_ERANGE when j >= count. */
int fr_gguf_get_arr_str(const fr_gguf *g, const char *key, uint64_t j, fr_gguf_str *out);

/* Scalar value of pair i as text (for `frugal inspect`), into buf. */
void fr_gguf_format_value(const fr_gguf *g, int64_t i, char *buf, size_t cap,
                          size_t max_array_items);

/* ---- tensors ---- */
int64_t fr_gguf_n_tensors(const fr_gguf *g);
const fr_gguf_tensor *fr_gguf_tensor_at(const fr_gguf *g, int64_t i);
const fr_gguf_tensor *fr_gguf_find_tensor(const fr_gguf *g, const char *name); /* NULL if absent */

/* ---- writer ----
 * Builds a file in memory-bounded steps: add key/values and tensor infos
 * (with their data pointers, not copied), then fr_gguf_writer_save writes
 * header, infos, padding and data.  Writes GGUF version 3, alignment 32
 * unless general.alignment is set; every tensor starts and ends padded to
 * the alignment; a file without tensors ends right after its pairs (as
 * llama.cpp writes it: re-saving its files reproduces them byte for byte).
 * Setting a key that is present replaces its value in place.  save writes
 * PATH.tmp~ and renames it over PATH, so PATH may be the file whose mapping
 * supplies the tensor data.  Errors: FR_EINVAL (empty key, duplicate
 * tensor, bad type or shape, bad general.alignment), FR_ENOMEM, FR_EIO
 * (detail names the path).  Not thread-safe. */
typedef struct fr_gguf_writer fr_gguf_writer;
int  fr_gguf_writer_create(fr_gguf_writer **out);
void fr_gguf_writer_destroy(fr_gguf_writer *w);
int  fr_gguf_writer_set_u32(fr_gguf_writer *w, const char *key, uint32_t v);
int  fr_gguf_writer_set_i32(fr_gguf_writer *w, const char *key, int32_t v);
int  fr_gguf_writer_set_f32(fr_gguf_writer *w, const char *key, float v);
int  fr_gguf_writer_set_bool(fr_gguf_writer *w, const char *key, bool v);
int  fr_gguf_writer_set_str(fr_gguf_writer *w, const char *key, const char *v);
/* A string of len bytes (may hold NULs; copied). */
int  fr_gguf_writer_set_strn(fr_gguf_writer *w, const char *key, const char *v, size_t len);
/* Any scalar type (not STRING/ARRAY): the value is read from v (copied);
 * FR_EINVAL for other types. */
int  fr_gguf_writer_set_scalar(fr_gguf_writer *w, const char *key, int type, const void *v);
/* Array of scalars (elem_type not STRING/ARRAY): count elements packed at data (copied). */
int  fr_gguf_writer_set_arr(fr_gguf_writer *w, const char *key, int elem_type,
                            const void *data, uint64_t count);
/* Array of strings (copied); lens may be NULL for NUL-terminated strings. */
int  fr_gguf_writer_set_arr_str(fr_gguf_writer *w, const char *key,
                                const char *const *strs, const uint64_t *lens, uint64_t count);
/* Copy every key/value of g except general.alignment-related layout keys
 * the caller overrides later (later set_* of the same key replaces it). */
int  fr_gguf_writer_copy_kv(fr_gguf_writer *w, const fr_gguf *g, const char *prefix_filter);
/* Tensor: data must stay valid until save; nbytes must match the shape. */
/* data == NULL writes zeros (handy for tests and placeholders). */
int  fr_gguf_writer_add_tensor(fr_gguf_writer *w, const char *name, int type,
                               int n_dims, const int64_t *ne, const void *data);
int  fr_gguf_writer_save(fr_gguf_writer *w, const char *path);

#endif
