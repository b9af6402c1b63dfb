/*
 * kernels.h — typed row operations: dequantize, quantize, dot products and
 * the matrix multiply that the engine's projections run on.
 *
 * Each computable type has a reference twin in ref.c (plain C) and, where
 * written, SIMD versions (x86/quants_avx2.c, x86/quants_avx512.c) chosen once at start
 * from the CPU's features.  FRUGAL_REF=1 in the environment (or
 * fr_kernels_force_ref(true)) selects the twins everywhere; FRUGAL_ISA=
 * ref|avx2|avx512 caps the level (so the AVX2 paths can be tested on an
 * AVX-512 machine).
 *
 * Dot products follow llama.cpp: the activation row is first quantized to
 * the weight type's vec_dot_type (Q8_0 for q4_0/q5_0/q8_0, Q8_1 for
 * q4_1/q5_1, Q8_K for k-quants, F16 for f16, BF16 for bf16, F32 for f32),
 * then vec_dot works on (weight row, quantized activation row).
 */
#ifndef FR_KERNELS_KERNELS_H
#define FR_KERNELS_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/pool.h"
#include "kernels/types.h"

/* n is always a multiple of the type's block size. */
typedef void  (*fr_dequantize_fn)(const void *src, float *dst, int64_t n);
typedef void  (*fr_quantize_fn)(const float *src, void *dst, int64_t n);
typedef float (*fr_vec_dot_fn)(int64_t n, const void *w, const void *a);

typedef struct fr_type_ops {
    fr_dequantize_fn dequantize;  /* type → f32 */
    fr_quantize_fn   quantize;    /* f32 → type (NULL if none; the SIMD Q8_0
                                     quantizer rounds half to even, as
                                     llama.cpp's AVX path; twins use roundf) */
    fr_vec_dot_fn    vec_dot;     /* row of type · row of vec_dot_type (NULL
                                     for the activation-only Q8_1, Q8_K) */
    int              vec_dot_type;
} fr_type_ops;

/* Choose implementations for this CPU; idempotent, thread-safe after the
 * first call (call once at start; every getter below calls it lazily). */
void fr_kernels_init(void);

/* Force the reference twins (true) or the CPU's best (false). */
void fr_kernels_force_ref(bool ref);

/* Use the tables of one level: "ref", "avx2" or "avx512", or NULL for the
 * CPU's best.  FR_EUNSUPP when the CPU lacks it (nothing changes).  Meant
 * for start-up and tests, not while other threads run kernels. */
int fr_kernels_force_isa(const char *isa);

/* Which instruction set the active table uses: "avx512", "avx2" or "ref". */
const char *fr_kernels_isa(void);
/* The CPU's best level, whatever is active. */
const char *fr_kernels_best_isa(void);

/* Active ops for a type, or NULL when the type is not computable.  The
 * activation-only types Q8_1 and Q8_K also have ops (dequantize, quantize;
 * vec_dot NULL).  Weight quantizers exist for F32, F16, BF16, Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0 (K-quant weights: quantize is NULL). */
const fr_type_ops *fr_kernels_get(int type);

/* The reference twin's ops, or NULL. */
const fr_type_ops *fr_kernels_ref(int type);

/* A convenience wrapper over the active table (type must be computable). */
void  fr_dequantize_row(int type, const void *src, float *dst, int64_t n);

/*
 * y = W·x for a batch:  for t < N, r < M:
 *     y[t*ldy + r] = dot(row r of W, x[t*K .. t*K+K-1])
 * W: M rows of K elements of wtype (row r at byte r*row_size(wtype, K)).
 * x: N rows of K floats.  work: fr_matmul_work_size(wtype, K, N) bytes,
 * 64-byte aligned, owned by the caller (the token loop never allocates).
 * pool may be NULL (single-threaded).  Rows are split across the pool.
 */
size_t fr_matmul_work_size(int wtype, int64_t K, int64_t N);
void   fr_matmul(fr_pool *pool, int wtype, const void *W, int64_t K, int64_t M,
                 const float *x, int64_t N, float *y, int64_t ldy, void *work);

/* Several matrices on the same input x (N rows of K floats), all of type
 * wtype: y_i[t*M_i + r] = dot(row r of W_i, x[t]).  For a decode step
 * (N = 1) one pool run covers them all (the activation is prepared once);
 * otherwise it is fr_matmul per matrix.  work as for fr_matmul with the
 * same (wtype, K, N).  The results equal fr_matmul's. */
typedef struct fr_mm_part {
    const void *W;              /* M rows of K elements of wtype */
    int64_t M;
    float *y;                   /* [N][M] */
} fr_mm_part;
void fr_matmul_multi(fr_pool *pool, int wtype, int64_t K, const fr_mm_part *parts, int n_parts,
                     const float *x, int64_t N, void *work);

#endif
