/*
 * gguf_int.h — the layout of a parsed GGUF file, shared by gguf.c, the
 * writer (gguf_write.c, which copies raw values out of a reader) and the
 * tests.  Nothing outside engine/gguf*.c and tests should include it.
 *
 * Invariants after a successful fr_gguf_parse: every pointer below points
 * inside [base, base + size); every length has been checked against the
 * bytes present; keys and tensor names are unique.
 */
#ifndef FR_ENGINE_GGUF_INT_H
#define FR_ENGINE_GGUF_INT_H

#include "engine/gguf.h"

#define FR_GGUF_MAGIC 0x46554747u      /* "GGUF" read as a little-endian u32 */
#define FR_GGUF_DEFAULT_ALIGNMENT 32u
#define FR_GGUF_MAX_NAME 64            /* tensor names are shorter than this */

typedef struct fr__gguf_kv {
    fr_gguf_str key;
    int type;               /* fr_gguf_vtype */
    int elem_type;          /* arrays: element type; else -1 */
    uint64_t count;         /* arrays: element count; else 1 */
    const uint8_t *raw;     /* the value bytes as stored after the type id
                             * (arrays: from the element type on) */
    size_t raw_len;
    const uint8_t *val;     /* scalars: the value; strings: the length
                             * prefix; arrays: the first element */
    /* String arrays: position of element j's length prefix relative to
     * val; 32-bit when the array spans less than 4 GiB. */
    uint32_t *str_off32;
    uint64_t *str_off64;
} fr__gguf_kv;

struct fr_gguf {
    char *path;             /* the name given at open (owned) */
    const uint8_t *base;    /* the image: a mapping or the caller's bytes */
    size_t size;
    bool mapped;            /* base came from mmap (unmapped at close) */
    uint32_t version;
    uint32_t alignment;
    size_t data_offset;     /* file offset of the tensor data section */
    int64_t n_kv;
    int64_t n_tensors;
    fr__gguf_kv *kv;        /* [n_kv] */
    fr_gguf_tensor *tensors;/* [n_tensors] */
    uint32_t *kv_hash;      /* open addressing: index + 1, 0 = empty */
    size_t kv_hash_mask;
    uint32_t *t_hash;
    size_t t_hash_mask;
};

/* Bytes one element of a scalar value type occupies, or 0 for STRING,
 * ARRAY and unknown ids. */
size_t fr__gguf_type_size(int vtype);

/* The name of a value type ("u32", "string"...), "?" when unknown. */
const char *fr__gguf_type_name(int vtype);

#endif
