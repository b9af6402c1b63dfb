/*
 * kernels_int.h — internals of the kernels module: the block layouts of
 * every computable type (GGUF.md §2) and the per-ISA row functions that
 * kernels.c puts in its dispatch table.
 *
 * Every function here has the signature of one fr_type_ops member
 * (kernels.h).  Names read fr__<isa>_<op>_<type>[_<activation type>]:
 * fr__ref_* are the plain C twins (ref.c), fr__avx2_* (x86/quants_avx2.c) and
 * fr__avx512_* (x86/quants_avx512.c) are only called when the CPU has the ISA.
 *
 * Half-precision fields are stored as raw uint16_t bits.  Blocks are at
 * least 2-byte aligned in a GGUF mapping (Q8_K, an activation-only type,
 * lives in 64-byte aligned work buffers).
 */
#ifndef FR_KERNELS_KERNELS_INT_H
#define FR_KERNELS_KERNELS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

#define FR_QK4_0 32
#define FR_QK8_0 32
#define FR_K_SCALE_SIZE 12

typedef struct { uint16_t d; uint8_t qs[16]; } fr_block_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[16]; } fr_block_q4_1;
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } fr_block_q5_0;
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } fr_block_q5_1;
typedef struct { uint16_t d; int8_t qs[32]; } fr_block_q8_0;
typedef struct { uint16_t d, s; int8_t qs[32]; } fr_block_q8_1;  /* s = d·Σqs */

typedef struct {
    uint8_t scales[16];          /* low 4 bits scale, high 4 bits min */
    uint8_t qs[64];              /* 2-bit codes */
    uint16_t d, dmin;
} fr_block_q2_K;
typedef struct {
    uint8_t hmask[32];           /* high bit of each code */
    uint8_t qs[64];              /* low 2 bits */
    uint8_t scales[12];          /* 16 six-bit scales, packed */
    uint16_t d;
} fr_block_q3_K;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[FR_K_SCALE_SIZE]; /* 8 six-bit scales and 8 mins */
    uint8_t qs[128];
} fr_block_q4_K;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[FR_K_SCALE_SIZE];
    uint8_t qh[32];
    uint8_t qs[128];
} fr_block_q5_K;
typedef struct {
    uint8_t ql[128];             /* low 4 bits */
    uint8_t qh[64];              /* high 2 bits */
    int8_t scales[16];
    uint16_t d;
} fr_block_q6_K;
typedef struct {
    float d;                     /* f32, may be negative */
    int8_t qs[256];
    int16_t bsums[16];           /* Σ of each 16 qs */
} fr_block_q8_K;

_Static_assert(sizeof(fr_block_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(fr_block_q4_1) == 20, "q4_1 block");
_Static_assert(sizeof(fr_block_q5_0) == 22, "q5_0 block");
_Static_assert(sizeof(fr_block_q5_1) == 24, "q5_1 block");
_Static_assert(sizeof(fr_block_q8_0) == 34, "q8_0 block");
_Static_assert(sizeof(fr_block_q8_1) == 36, "q8_1 block");
_Static_assert(sizeof(fr_block_q2_K) == 84, "q2_K block");
_Static_assert(sizeof(fr_block_q3_K) == 110, "q3_K block");
_Static_assert(sizeof(fr_block_q4_K) == 144, "q4_K block");
_Static_assert(sizeof(fr_block_q5_K) == 176, "q5_K block");
_Static_assert(sizeof(fr_block_q6_K) == 210, "q6_K block");
_Static_assert(sizeof(fr_block_q8_K) == 292, "q8_K block");

/* Q4_K/Q5_K: scale and min of sub-block j (0..7) from the 12 packed bytes. */
static inline void fr__get_scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* llama.cpp's nearest_int: round half to even via the 1.5·2^23 trick
 * (|f| must be below 2^22). */
static inline int fr__nearest_int(float f) {
    float v = f + 12582912.f;
    int32_t i;
    __builtin_memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* Four weight rows (`stride` bytes apart) · one activation row → out[0..3].
 * Optional per type and ISA; each out[r] equals what vec_dot returns for
 * that row, bit for bit, so results do not depend on how rows are grouped. */
typedef void (*fr__vec_dot4_fn)(int64_t n, const void *w, size_t stride, const void *a, float *out);

/* The active table's vec_dot4 for a weight type, or NULL (kernels.c). */
fr__vec_dot4_fn fr__kernels_dot4(int type);

/* Four weight rows · four activation rows (`astride` bytes apart):
 * out[4·t + r] = row r · activation t.  Optional, for batches (prefill);
 * equal to vec_dot within float rounding (not necessarily bit for bit). */
typedef void (*fr__vec_dot4x4_fn)(int64_t n, const void *w, size_t wstride, const void *a, size_t astride,
                                  float *out);

/* The active table's vec_dot4x4 for a weight type, or NULL (kernels.c). */
fr__vec_dot4x4_fn fr__kernels_dot4x4(int type);

/* Decode GEMV (one activation row) on a prepared activation: optional per
 * type and ISA.  The activation row x (n floats) is converted once per
 * matmul into `size(n)` bytes at a 64-byte aligned `prep` (`prepare` does
 * blocks [b0, b1) of `blck` elements, so threads can share the work; the
 * codes are those the type's vec_dot_type quantizer gives), then
 * `rows` computes y[r] = row r · x for nrows rows `stride` bytes apart.
 * Each y[r] is within the vec_dot tolerance of the twin (float rounding
 * only: other summation order, code offsets and mins summed apart); it
 * depends only on the row and x, not on nrows. */
typedef struct fr__gemv {
    int64_t blck;
    size_t (*size)(int64_t n);
    void (*prepare)(const float *x, int64_t n, int64_t b0, int64_t b1, void *prep);
    void (*rows)(int64_t n, const void *w, size_t stride, int64_t nrows, const void *prep, float *y);
    /* Optional (NULL: rows per activation): the same for na (1..4)
     * prepared activations at once, y[t][r] for activation t; each weight
     * block is loaded and unpacked once for all of them.  Each y[t][r]
     * equals what `rows` gives for activation t, bit for bit. */
    void (*rows4)(int64_t n, const void *w, size_t stride, int64_t nrows, const void *const *prep, int na,
                  float *const *y);
} fr__gemv;

/* The active table's GEMV for a weight type, or NULL (kernels.c). */
const fr__gemv *fr__kernels_gemv(int type);

/* The CPU's best table's GEMV even while the twins are forced: work sizes
 * use it, so a buffer sized in one mode serves both. */
const fr__gemv *fr__kernels_gemv_best(int type);

/* One instruction-set level's dispatch table (kernels.c keeps one per
 * level).  A level starts as a copy of the level below it (the reference
 * twins at the bottom), so an entry a level does not set keeps the one
 * below: NULL dot4/dot4x4/gemv/gemm entries mean "none, use vec_dot". */
typedef struct fr__table {
    fr_type_ops ops[FR_TYPE_COUNT];
    fr__vec_dot4_fn dot4[FR_TYPE_COUNT];
    fr__vec_dot4x4_fn dot4x4[FR_TYPE_COUNT];
    const fr__gemv *gemv[FR_TYPE_COUNT];
    const struct fr__gemm_ops *gemm;      /* batched int8 GEMM, or NULL */
} fr__table;

/* ---- arm/: the aarch64 levels ----
 *
 * On aarch64, kernels.c has the levels ref < neon < dotprod < i8mm
 * (FRUGAL_ISA=ref|neon|dotprod|i8mm caps them), each filled only when
 * getauxval says the CPU has it (fr_cpu: neon = ASIMD; dotprod = ASIMDDP
 * and FPHP+ASIMDHP; i8mm = HWCAP2_I8MM on top).  For each present level
 * in turn it copies the table below and calls fr__arm_fill(t, level),
 * which sets what that level has (arm/table.c; the functions live in
 * arm/ files named *_neon.c, *_dotprod.c, *_i8mm.c, compiled with -march for that
 * level by the Makefile) and leaves the rest.  The same for the
 * element-wise ops (ops.h): fr__arm_ops_fill(o, level) on a copy of the
 * level below, the reference ops at the bottom. */
enum { FR__ARM_NEON = 1, FR__ARM_DOTPROD = 2, FR__ARM_I8MM = 3 };
void fr__arm_fill(fr__table *t, int level);

/* arm/quants_neon.c (armv8-a) */
float fr__neon_vec_dot_f32(int64_t n, const void *w, const void *a);

/* arm/quants_dotprod.c (armv8.2-a+dotprod+fp16) */
float fr__dotprod_vec_dot_q8_0_q8_0(int64_t n, const void *w, const void *a);

/* ---- ref.c: the reference twins ---- */

void fr__ref_dequantize_f32(const void *src, float *dst, int64_t n);
void fr__ref_dequantize_f16(const void *src, float *dst, int64_t n);
void fr__ref_dequantize_bf16(const void *src, float *dst, int64_t n);
void fr__ref_dequantize_q4_0(const void *src, float *dst, int64_t n);
void fr__ref_dequantize_q4_1(const void *src, float *dst, int64_t n);
void fr__ref_dequantize_q5_0(const void *src, float *dst, int64_t n);
void fr__ref_dequantize_q5_1(const void *src, float *dst, int64_t n);
void fr__ref_dequantize_q8_0(const void *src, float *dst, int64_t n);
void fr__ref_dequantize_q8_1(const void *src, float *dst, int64_t n);
void fr__ref_dequantize_q2_K(const void *src, float *dst, int64_t n);
void fr__ref_dequantize_q3_K(const void *src, float *dst, int64_t n);
void fr__ref_dequantize_q4_K(const void *src, float *dst, int64_t n);
void fr__ref_dequantize_q5_K(const void *src, float *dst, int64_t n);
void fr__ref_dequantize_q6_K(const void *src, float *dst, int64_t n);
void fr__ref_dequantize_q8_K(const void *src, float *dst, int64_t n);

void fr__ref_quantize_f32(const float *src, void *dst, int64_t n);
void fr__ref_quantize_f16(const float *src, void *dst, int64_t n);
void fr__ref_quantize_bf16(const float *src, void *dst, int64_t n);
void fr__ref_quantize_q4_0(const float *src, void *dst, int64_t n);
void fr__ref_quantize_q4_1(const float *src, void *dst, int64_t n);
void fr__ref_quantize_q5_0(const float *src, void *dst, int64_t n);
void fr__ref_quantize_q5_1(const float *src, void *dst, int64_t n);
void fr__ref_quantize_q8_0(const float *src, void *dst, int64_t n);
void fr__ref_quantize_q8_1(const float *src, void *dst, int64_t n);
void fr__ref_quantize_q8_K(const float *src, void *dst, int64_t n);

float fr__ref_vec_dot_f32(int64_t n, const void *w, const void *a);
float fr__ref_vec_dot_f16(int64_t n, const void *w, const void *a);
float fr__ref_vec_dot_bf16(int64_t n, const void *w, const void *a);
float fr__ref_vec_dot_q4_0_q8_0(int64_t n, const void *w, const void *a);
float fr__ref_vec_dot_q4_1_q8_1(int64_t n, const void *w, const void *a);
float fr__ref_vec_dot_q5_0_q8_0(int64_t n, const void *w, const void *a);
float fr__ref_vec_dot_q5_1_q8_1(int64_t n, const void *w, const void *a);
float fr__ref_vec_dot_q8_0_q8_0(int64_t n, const void *w, const void *a);
float fr__ref_vec_dot_q2_K_q8_K(int64_t n, const void *w, const void *a);
float fr__ref_vec_dot_q3_K_q8_K(int64_t n, const void *w, const void *a);
float fr__ref_vec_dot_q4_K_q8_K(int64_t n, const void *w, const void *a);
float fr__ref_vec_dot_q5_K_q8_K(int64_t n, const void *w, const void *a);
float fr__ref_vec_dot_q6_K_q8_K(int64_t n, const void *w, const void *a);

/* ---- x86/quants_avx2.c (AVX2 + FMA + F16C) ---- */

void fr__avx2_dequantize_f16(const void *src, float *dst, int64_t n);
void fr__avx2_dequantize_q4_0(const void *src, float *dst, int64_t n);
void fr__avx2_dequantize_q8_0(const void *src, float *dst, int64_t n);
void fr__avx2_dequantize_q4_K(const void *src, float *dst, int64_t n);
void fr__avx2_dequantize_q6_K(const void *src, float *dst, int64_t n);

void fr__avx2_quantize_f16(const float *src, void *dst, int64_t n);
void fr__avx2_quantize_q8_0(const float *src, void *dst, int64_t n);
void fr__avx2_quantize_q8_K(const float *src, void *dst, int64_t n);
void fr__avx2_quantize_q8_1(const float *src, void *dst, int64_t n);
void fr__avx2_quantize_bf16(const float *src, void *dst, int64_t n);
void fr__avx2_dequantize_bf16(const void *src, float *dst, int64_t n);
float fr__avx2_vec_dot_bf16(int64_t n, const void *w, const void *a);
float fr__avx2_vec_dot_q4_1_q8_1(int64_t n, const void *w, const void *a);
float fr__avx2_vec_dot_q5_1_q8_1(int64_t n, const void *w, const void *a);

float fr__avx2_vec_dot_f32(int64_t n, const void *w, const void *a);
float fr__avx2_vec_dot_f16(int64_t n, const void *w, const void *a);
float fr__avx2_vec_dot_q4_0_q8_0(int64_t n, const void *w, const void *a);
float fr__avx2_vec_dot_q8_0_q8_0(int64_t n, const void *w, const void *a);
float fr__avx2_vec_dot_q4_K_q8_K(int64_t n, const void *w, const void *a);
float fr__avx2_vec_dot_q6_K_q8_K(int64_t n, const void *w, const void *a);
void  fr__avx2_vec_dot4_q4_0_q8_0(int64_t n, const void *w, size_t stride, const void *a, float *out);
float fr__avx2_vec_dot_q5_0_q8_0(int64_t n, const void *w, const void *a);
void  fr__avx2_vec_dot4_q5_0_q8_0(int64_t n, const void *w, size_t stride, const void *a, float *out);
float fr__avx2_vec_dot_q5_K_q8_K(int64_t n, const void *w, const void *a);
float fr__avx2_vec_dot_q2_K_q8_K(int64_t n, const void *w, const void *a);
float fr__avx2_vec_dot_q3_K_q8_K(int64_t n, const void *w, const void *a);

/* ---- x86/quants_avx512.c (AVX-512 F/BW/VL + VNNI, on ymm registers) ---- */

float fr__avx512_vec_dot_q4_0_q8_0(int64_t n, const void *w, const void *a);
float fr__avx512_vec_dot_q8_0_q8_0(int64_t n, const void *w, const void *a);
void  fr__avx512_vec_dot4_q4_0_q8_0(int64_t n, const void *w, size_t stride, const void *a, float *out);
void  fr__avx512_vec_dot4x4_q4_0_q8_0(int64_t n, const void *w, size_t wstride, const void *a, size_t astride,
                                      float *out);
/* Decode GEMVs on zmm registers (their prepared layouts: x86/quants_avx512.c). */
extern const fr__gemv fr__avx512_gemv_q4_0;
extern const fr__gemv fr__avx512_gemv_q8_0;
extern const fr__gemv fr__avx512_gemv_f16;
extern const fr__gemv fr__avx512_gemv_q4_K;
extern const fr__gemv fr__avx512_gemv_q6_K;

/* ---- x86/gemm_avx512.c: register-tiled int8 GEMM for batches (prefill) ----
 *
 * For Q4_0, Q8_0 (Q8_0 activations) and Q4_K, Q6_K (Q8_K activations).
 * The activations are converted once per matmul into tiles of
 * FR__GEMM_TT tokens (fr__avx512_gemm_convert); then each panel of
 * FR__GEMM_ROWS weight rows is unpacked, a K-slice at a time, into a
 * stack buffer of unsigned codes with one int32 lane per row and run
 * against every token tile (fr__avx512_gemm_panel).  The weights are only
 * read.  Activation layout, per tile of TT tokens (t = token in the tile):
 *   32-blocks (Q8_0 family), one record of FR__GEMM_REC32 bytes per block:
 *     int8 q[TT][32], float d[TT], int32 init[TT] (= −offset·Σq: 8 for
 *     Q4_0, 128 for Q8_0);
 *   256-blocks (Q8_K family), FR__GEMM_REC256 bytes per super-block:
 *     int8 q[TT][256], float d[TT], aux[TT][16] (Q4_K: float −Σ of each
 *     32-sub-block; Q6_K: int32 −32·bsums).
 * Records of one tile follow each other along K, tiles along N. */
#define FR__GEMM_ROWS   16
#define FR__GEMM_TT     12
#define FR__GEMM_REC32  (FR__GEMM_TT * (32 + 4 + 4))
#define FR__GEMM_REC256 (FR__GEMM_TT * (256 + 4 + 64))

typedef struct fr__gemm {
    int wtype;                 /* FR_TYPE_Q4_0, Q8_0, Q4_K or Q6_K */
    const unsigned char *W;    /* [M][wrow bytes], read only */
    size_t wrow;
    int64_t K, M, N;
    fr_quantize_fn quantize;   /* activation quantizer (Q8_0 or Q8_K) */
    unsigned char *act;        /* the layout above */
    float *y;                  /* [N][ldy] */
    int64_t ldy;
} fr__gemm;

/* Convert this thread's share (ith of nth) of x [N][K] into g->act. */
void fr__avx512_gemm_convert(const fr__gemm *g, const float *x, int ith, int nth);

/* y for weight rows [16p, 16p+16) ∩ [0, M) and all N tokens. */
void fr__avx512_gemm_panel(const fr__gemm *g, int64_t p);

/* A level's GEMM (fr__table.gemm): the two phases above, for the weight
 * types gemm_type() in matmul.c names, on the activation layout above. */
typedef struct fr__gemm_ops {
    void (*convert)(const fr__gemm *g, const float *x, int ith, int nth);
    void (*panel)(const fr__gemm *g, int64_t p);
} fr__gemm_ops;

/* The active level's GEMM, or NULL (kernels.c). */
const fr__gemm_ops *fr__kernels_gemm(void);

#endif
