/*
 * types.h — tensor element types (ggml's ids and block layouts) and the
 * half-precision conversions.
 *
 * Type ids are ggml's, as stored in GGUF files (GGUF.md §2).  A type is
 * *known* when fr_type_get() returns non-NULL: its block size and bytes per
 * block are then exact, so a GGUF reader can validate sizes even for types
 * frugal cannot compute.  `computable` says whether the kernels implement it.
 */
#ifndef FR_KERNELS_TYPES_H
#define FR_KERNELS_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum fr_type {
    FR_TYPE_F32 = 0,
    FR_TYPE_F16 = 1,
    FR_TYPE_Q4_0 = 2,
    FR_TYPE_Q4_1 = 3,
    FR_TYPE_Q5_0 = 6,
    FR_TYPE_Q5_1 = 7,
    FR_TYPE_Q8_0 = 8,
    FR_TYPE_Q8_1 = 9,
    FR_TYPE_Q2_K = 10,
    FR_TYPE_Q3_K = 11,
    FR_TYPE_Q4_K = 12,
    FR_TYPE_Q5_K = 13,
    FR_TYPE_Q6_K = 14,
    FR_TYPE_Q8_K = 15,
    FR_TYPE_IQ2_XXS = 16,
    FR_TYPE_IQ2_XS = 17,
    FR_TYPE_IQ3_XXS = 18,
    FR_TYPE_IQ1_S = 19,
    FR_TYPE_IQ4_NL = 20,
    FR_TYPE_IQ3_S = 21,
    FR_TYPE_IQ2_S = 22,
    FR_TYPE_IQ4_XS = 23,
    FR_TYPE_I8 = 24,
    FR_TYPE_I16 = 25,
    FR_TYPE_I32 = 26,
    FR_TYPE_I64 = 27,
    FR_TYPE_F64 = 28,
    FR_TYPE_IQ1_M = 29,
    FR_TYPE_BF16 = 30,
    FR_TYPE_TQ1_0 = 34,
    FR_TYPE_TQ2_0 = 35,
    FR_TYPE_MXFP4 = 39,
    FR_TYPE_COUNT = 43
};

#define FR_QK_K 256

typedef struct fr_type_info {
    const char *name;      /* "q4_0" */
    int blck;              /* elements per block */
    size_t size;           /* bytes per block */
    bool computable;       /* dequantize/vec_dot implemented */
} fr_type_info;

/* The type's layout, or NULL for an id that is not a known ggml type. */
const fr_type_info *fr_type_get(int type);

/* The type's name, or "?" for unknown ids. */
const char *fr_type_name(int type);

/* Type id for a name ("q8_0", case-insensitive), or -1. */
int fr_type_from_name(const char *name);

/* Bytes of n elements of type (n must be a multiple of the block size).
 * Returns false on unknown type, indivisible n or overflow. */
bool fr_type_row_size(int type, int64_t n, size_t *out);

/* ---- half precision ---- */

static inline float fr_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) bits = sign;
        else { /* subnormal: renormalise */
            int e = -1;
            do { e++; man <<= 1; } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) bits = sign | 0x7f800000 | (man << 13);
    else bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Round to nearest even, as F16C's vcvtps2ph with rounding mode 0. */
static inline uint16_t fr_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffff;
    if (ax >= 0x7f800000) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000 ? 0x200 : 0));
    if (ax >= 0x477ff000) return (uint16_t)(sign | 0x7c00); /* overflow → inf */
    if (ax < 0x38800000) { /* subnormal half or zero */
        if (ax < 0x33000000) return (uint16_t)sign;
        uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t v = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (v & 1))) v++;
        return (uint16_t)(sign | v);
    }
    uint32_t v = ((ax >> 13) - ((127 - 15) << 10));
    uint32_t rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (v & 1))) v++;
    return (uint16_t)(sign | v);
}

static inline float fr_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Round to nearest even; NaN stays NaN (as ggml). */
static inline uint16_t fr_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 64);
    return (uint16_t)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

#endif
