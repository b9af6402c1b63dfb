/*
 * ops_int.h — the per-ISA functions behind the fr_ops table (ops.h):
 * fr__ref_* are the plain C twins (ops.c); fr__avx2_* (x86/ops_avx2.c) need
 * AVX2, FMA and F16C; fr__avx512_* (x86/ops_avx512.c) AVX-512 F/BW/VL on top.
 * Each has the signature of the fr_ops member of the same name.
 */
#ifndef FR_KERNELS_OPS_INT_H
#define FR_KERNELS_OPS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/ops.h"

void fr__ref_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps);
void fr__ref_add(float *y, const float *x, int64_t n);
void fr__ref_rope(float *x, int n_heads, int hd, int n_rot, const float *cs, const float *sn,
                  bool neox);
void fr__ref_scale(float *y, float s, int64_t n);
void fr__ref_silu_mul(float *g, const float *u, int64_t n);
void fr__ref_f16_rows(const uint16_t *src, size_t stride, int rows, int n, float *dst);
void fr__ref_att_qk(int nk, int hd, const float *k, int R, int rp, const float *qs, float scale,
                    float *st);
void fr__ref_att_softmax(int nk, int R, int rp, float *st, const int32_t *nv, float *m, float *l,
                         float *corr);
void fr__ref_att_pv(int nk, int hd, const float *v, int R, int rp, const float *st,
                    const float *corr, float *const *orow);
void fr__ref_layernorm(float *y, const float *x, const float *w, const float *b, int64_t n,
                       float eps);
void fr__ref_gelu(float *x, int64_t n);

void fr__avx512_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps);
void fr__avx512_add(float *y, const float *x, int64_t n);
void fr__avx512_rope(float *x, int n_heads, int hd, int n_rot, const float *cs, const float *sn,
                     bool neox);
void fr__avx512_scale(float *y, float s, int64_t n);
void fr__avx512_silu_mul(float *g, const float *u, int64_t n);
void fr__avx512_f16_rows(const uint16_t *src, size_t stride, int rows, int n, float *dst);
void fr__avx512_att_qk(int nk, int hd, const float *k, int R, int rp, const float *qs,
                       float scale, float *st);
void fr__avx512_att_softmax(int nk, int R, int rp, float *st, const int32_t *nv, float *m,
                            float *l, float *corr);
void fr__avx512_att_pv(int nk, int hd, const float *v, int R, int rp, const float *st,
                       const float *corr, float *const *orow);
void fr__avx512_layernorm(float *y, const float *x, const float *w, const float *b, int64_t n,
                          float eps);
void fr__avx512_gelu(float *x, int64_t n);

void fr__avx2_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps);
void fr__avx2_add(float *y, const float *x, int64_t n);
void fr__avx2_rope(float *x, int n_heads, int hd, int n_rot, const float *cs, const float *sn,
                   bool neox);
void fr__avx2_scale(float *y, float s, int64_t n);
void fr__avx2_silu_mul(float *g, const float *u, int64_t n);
void fr__avx2_f16_rows(const uint16_t *src, size_t stride, int rows, int n, float *dst);
void fr__avx2_att_qk(int nk, int hd, const float *k, int R, int rp, const float *qs, float scale,
                     float *st);
void fr__avx2_att_softmax(int nk, int R, int rp, float *st, const int32_t *nv, float *m, float *l,
                          float *corr);
void fr__avx2_att_pv(int nk, int hd, const float *v, int R, int rp, const float *st,
                     const float *corr, float *const *orow);
void fr__avx2_layernorm(float *y, const float *x, const float *w, const float *b, int64_t n,
                        float eps);
void fr__avx2_gelu(float *x, int64_t n);

/* exp(x) for 8 lanes, within 2 ulp of expf above −87.3 (AVX2; for tests). */
void fr__avx2_exp8(const float *x, float *y);

/* The SIMD tables, or NULL when the CPU lacks the ISA (for tests; x86). */
const fr_ops *fr__ops_avx2(void);
const fr_ops *fr__ops_avx512(void);

/* The table of the kernels' level named isa (fr_kernels_isa's names: "ref",
 * "avx2", "avx512"; "neon", "dotprod", "i8mm"), or NULL when the CPU lacks
 * it or the name is not one of this architecture's. */
const fr_ops *fr__ops_for(const char *isa);

/* aarch64 (arm/table.c): set the ops level FR__ARM_NEON/DOTPROD/I8MM has
 * on o, a copy of the level below (kernels_int.h); unset members keep the
 * level below's, the reference twins at the bottom. */
void fr__arm_ops_fill(fr_ops *o, int level);

/* Make fr_ops_get() return t (NULL: back to the normal choice); for tests
 * that run the engine on a table other than the CPU's best. */
void fr__ops_override(const fr_ops *t);

/* exp(x) for 16 lanes, within 2 ulp of expf (AVX-512 only; for tests). */
void fr__avx512_exp16(const float *x, float *y);

#endif
