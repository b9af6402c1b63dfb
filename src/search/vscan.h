/*
 * vscan.h — the exact vector search of the index (search layer internal):
 * int8 copies of the vectors scanned with SIMD dot products, then the
 * candidates rescored in float32, with a bound that proves the result is
 * the exact top-k of the float32 vectors.
 *
 * Quantisation.  A vector v (L2-normalised, dim floats) is stored as
 * codes q[i] = round(v[i] / s) in [-127, 127] with scale s = max|v| / 127
 * and its error e = ||v - s·q||₂ (rounded up).  Rows are dim_pad bytes, a
 * multiple of 64, zero-padded, so the kernels have no tails.
 *
 * The bound.  For a unit query x with codes (s_x, q_x, e_x) the
 * approximate score a = s_x·s_v·(q_x·q_v) (the integer dot is exact)
 * differs from the true x·v by at most
 *     (1 + e_x)·e_v + e_x          (+ FR_VSCAN_SLACK for float rounding)
 * because x·v − a = x̃·(v − ṽ) + (x − x̃)·v with ||x̃|| ≤ 1 + e_x, ||v|| = 1.
 * fr__vscan_topk rescores the best candidates by a, takes the k-th exact
 * score S, and rescores every other vector whose a + bound reaches S:
 * nothing it skips can beat S, so the result is exact.
 *
 * Kernels.  fr__vscan_dot_ref (plain C), _avx2 (vpmaddubsw with the sign
 * trick, x86/vscan_avx2.c), _avx512 (AVX-512 VNNI vpdpbusd, x86/vscan_avx512.c)
 * compute the same integers; on aarch64 the NEON ones of arm/ (listed in
 * fr__vscan_arm by level).  fr__vscan_dot() returns the one of the ISA
 * level the kernels run (fr_kernels_isa(): FRUGAL_ISA / FRUGAL_REF apply).
 * All functions are thread-safe.
 */
#ifndef FR_SEARCH_VSCAN_H
#define FR_SEARCH_VSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FR_VSCAN_ALIGN 64
#define FR_VSCAN_SLACK 1e-5f        /* float rounding of a, with room to spare */

/* out[r] = Σ_d q[d]·rows[r·dim_pad + d] for r < n.  dim_pad % 64 == 0;
 * codes in [-127, 127] (−128 is never produced and not supported). */
typedef void (*fr_vscan_dot_fn)(const int8_t *q, const int8_t *rows, size_t n, size_t dim_pad,
                                int32_t *out);
void fr__vscan_dot_ref(const int8_t *q, const int8_t *rows, size_t n, size_t dim_pad, int32_t *out);
void fr__vscan_dot_avx2(const int8_t *q, const int8_t *rows, size_t n, size_t dim_pad, int32_t *out);
void fr__vscan_dot_avx512(const int8_t *q, const int8_t *rows, size_t n, size_t dim_pad, int32_t *out);

/* aarch64 (arm/vscan_arm.c): the kernel of each level, indexed by
 * FR__ARM_NEON/DOTPROD/I8MM (kernels/kernels_int.h: 1, 2, 3; [0] unused);
 * NULL: the level below's (the twin at the bottom). */
extern const fr_vscan_dot_fn fr__vscan_arm[4];

/* The kernel for the active ISA level, and its name ("avx512", "avx2",
 * "ref"); the SIMD ones NULL when the CPU lacks them (for tests). */
fr_vscan_dot_fn fr__vscan_dot(void);
const char *fr__vscan_isa(void);
fr_vscan_dot_fn fr__vscan_dot_for(const char *isa);

/* Row bytes for dim: dim rounded up to a multiple of 64. */
static inline size_t fr__vscan_pad(int32_t dim) {
    return ((size_t)dim + FR_VSCAN_ALIGN - 1) / FR_VSCAN_ALIGN * FR_VSCAN_ALIGN;
}

/* Scale v to unit length in place; false for a zero or non-finite vector. */
bool fr__vscan_normalize(float *v, int32_t dim);

/* Codes of v[dim] into q[dim_pad] (padding zeroed), its scale and error. */
void fr__vscan_quantize(const float *v, int32_t dim, size_t dim_pad, int8_t *q, float *scale,
                        float *err);

/* Σ a[i]·b[i] accumulated in double, in index order (the rescoring). */
double fr__vscan_dot_f32(const float *a, const float *b, int32_t dim);

/* Exact score of candidate idx (fetch its float32 vector, dot it). */
typedef int (*fr_vscan_exact_fn)(void *ud, size_t idx, double *score);

typedef struct fr_vscan_hit {
    size_t idx;                 /* the candidate's index in approx[] */
    double score;               /* exact */
} fr_vscan_hit;

/* The exact top k of n candidates, best first (ties: lower idx first),
 * from approximate scores approx[n], their errors err[n] (e_v), the
 * query's error q_err, and exact().  allowed (a bitmap of n bits, or NULL
 * for all) restricts the candidates.  out has room for k; *n_out = min(k,
 * allowed).  *n_exact (may be NULL) = how many exact() calls it took.
 * Returns exact()'s error, or FR_ENOMEM. */
int fr__vscan_topk(const float *approx, const float *err, const uint8_t *allowed, size_t n,
                   float q_err, size_t k, fr_vscan_exact_fn exact, void *ud, fr_vscan_hit *out,
                   size_t *n_out, size_t *n_exact);

#endif
