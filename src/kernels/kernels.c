/*
 * kernels.c — the dispatch table: which row function runs for each type.
 *
 * Two tables of fr_type_ops, indexed by type id: `ref_ops` holds the plain C
 * twins (ref.c) and never changes; `best_ops` starts as a copy of it and,
 * at init, gets the SIMD functions the CPU supports (AVX2+FMA+F16C for
 * x86_avx2.c, then AVX-512 F/BW/VL/VNNI for x86_avx512.c on top).  The
 * active table is one of the two, chosen by FRUGAL_REF=1 or
 * fr_kernels_force_ref().  Three more internal tables hold the optional
 * four-row and 4×4 dots (fr__kernels_dot4, fr__kernels_dot4x4) and the
 * decode GEMVs (fr__kernels_gemv) that fr_matmul uses where present; the
 * reference side has none.
 *
 * Besides the computable weight types, the tables hold the activation-only
 * types Q8_1 and Q8_K (dequantize and quantize, vec_dot NULL), because
 * fr_matmul quantizes activations through the same table.
 *
 * Init runs once under pthread_once; afterwards the tables are read-only,
 * so every getter is thread-safe.  fr_kernels_force_ref() flips an atomic
 * pointer and is meant for start-up and tests, not for use while other
 * threads run kernels.
 */
#include "kernels/kernels.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/sysinfo.h"
#include "kernels/kernels_int.h"

static fr_type_ops ref_ops[FR_TYPE_COUNT];
static fr_type_ops best_ops[FR_TYPE_COUNT];
static fr__vec_dot4_fn ref_dot4[FR_TYPE_COUNT];   /* all NULL */
static fr__vec_dot4_fn best_dot4[FR_TYPE_COUNT];
static fr__vec_dot4x4_fn ref_dot4x4[FR_TYPE_COUNT];   /* all NULL */
static fr__vec_dot4x4_fn best_dot4x4[FR_TYPE_COUNT];
static const fr__gemv *ref_gemv[FR_TYPE_COUNT];      /* all NULL */
static const fr__gemv *best_gemv[FR_TYPE_COUNT];
static const char *best_isa = "ref";
static _Atomic(const fr_type_ops *) active;
static _Atomic(const char *) active_isa;
static _Atomic(const fr__vec_dot4_fn *) active_dot4;
static _Atomic(const fr__vec_dot4x4_fn *) active_dot4x4;
static _Atomic(const fr__gemv *const *) active_gemv;
static pthread_once_t once = PTHREAD_ONCE_INIT;

#define OPS(t, dq, q, dot, vt) \
    ref_ops[FR_TYPE_##t] = (fr_type_ops){dq, q, dot, FR_TYPE_##vt}

static void fill_ref(void) {
    OPS(F32, fr__ref_dequantize_f32, fr__ref_quantize_f32, fr__ref_vec_dot_f32, F32);
    OPS(F16, fr__ref_dequantize_f16, fr__ref_quantize_f16, fr__ref_vec_dot_f16, F16);
    OPS(BF16, fr__ref_dequantize_bf16, fr__ref_quantize_bf16, fr__ref_vec_dot_bf16, BF16);
    OPS(Q4_0, fr__ref_dequantize_q4_0, fr__ref_quantize_q4_0, fr__ref_vec_dot_q4_0_q8_0, Q8_0);
    OPS(Q4_1, fr__ref_dequantize_q4_1, fr__ref_quantize_q4_1, fr__ref_vec_dot_q4_1_q8_1, Q8_1);
    OPS(Q5_0, fr__ref_dequantize_q5_0, fr__ref_quantize_q5_0, fr__ref_vec_dot_q5_0_q8_0, Q8_0);
    OPS(Q5_1, fr__ref_dequantize_q5_1, fr__ref_quantize_q5_1, fr__ref_vec_dot_q5_1_q8_1, Q8_1);
    OPS(Q8_0, fr__ref_dequantize_q8_0, fr__ref_quantize_q8_0, fr__ref_vec_dot_q8_0_q8_0, Q8_0);
    OPS(Q8_1, fr__ref_dequantize_q8_1, fr__ref_quantize_q8_1, NULL, Q8_1);
    OPS(Q2_K, fr__ref_dequantize_q2_K, NULL, fr__ref_vec_dot_q2_K_q8_K, Q8_K);
    OPS(Q3_K, fr__ref_dequantize_q3_K, NULL, fr__ref_vec_dot_q3_K_q8_K, Q8_K);
    OPS(Q4_K, fr__ref_dequantize_q4_K, NULL, fr__ref_vec_dot_q4_K_q8_K, Q8_K);
    OPS(Q5_K, fr__ref_dequantize_q5_K, NULL, fr__ref_vec_dot_q5_K_q8_K, Q8_K);
    OPS(Q6_K, fr__ref_dequantize_q6_K, NULL, fr__ref_vec_dot_q6_K_q8_K, Q8_K);
    OPS(Q8_K, fr__ref_dequantize_q8_K, fr__ref_quantize_q8_K, NULL, Q8_K);
}

#undef OPS

static void fill_avx2(void) {
    fr_type_ops *t = best_ops;
    t[FR_TYPE_F32].vec_dot = fr__avx2_vec_dot_f32;
    t[FR_TYPE_F16].dequantize = fr__avx2_dequantize_f16;
    t[FR_TYPE_F16].quantize = fr__avx2_quantize_f16;
    t[FR_TYPE_F16].vec_dot = fr__avx2_vec_dot_f16;
    t[FR_TYPE_Q4_0].dequantize = fr__avx2_dequantize_q4_0;
    t[FR_TYPE_Q4_0].vec_dot = fr__avx2_vec_dot_q4_0_q8_0;
    t[FR_TYPE_Q8_0].dequantize = fr__avx2_dequantize_q8_0;
    t[FR_TYPE_Q8_0].quantize = fr__avx2_quantize_q8_0;
    t[FR_TYPE_Q8_0].vec_dot = fr__avx2_vec_dot_q8_0_q8_0;
    t[FR_TYPE_Q4_K].dequantize = fr__avx2_dequantize_q4_K;
    t[FR_TYPE_Q4_K].vec_dot = fr__avx2_vec_dot_q4_K_q8_K;
    t[FR_TYPE_Q6_K].dequantize = fr__avx2_dequantize_q6_K;
    t[FR_TYPE_Q6_K].vec_dot = fr__avx2_vec_dot_q6_K_q8_K;
    t[FR_TYPE_Q8_K].quantize = fr__avx2_quantize_q8_K;
    t[FR_TYPE_Q5_0].vec_dot = fr__avx2_vec_dot_q5_0_q8_0;
    t[FR_TYPE_Q5_K].vec_dot = fr__avx2_vec_dot_q5_K_q8_K;
    t[FR_TYPE_Q2_K].vec_dot = fr__avx2_vec_dot_q2_K_q8_K;
    t[FR_TYPE_Q3_K].vec_dot = fr__avx2_vec_dot_q3_K_q8_K;
    t[FR_TYPE_Q4_1].vec_dot = fr__avx2_vec_dot_q4_1_q8_1;
    t[FR_TYPE_Q5_1].vec_dot = fr__avx2_vec_dot_q5_1_q8_1;
    t[FR_TYPE_Q8_1].quantize = fr__avx2_quantize_q8_1;
    t[FR_TYPE_BF16].dequantize = fr__avx2_dequantize_bf16;
    t[FR_TYPE_BF16].quantize = fr__avx2_quantize_bf16;
    t[FR_TYPE_BF16].vec_dot = fr__avx2_vec_dot_bf16;
    best_dot4[FR_TYPE_Q4_0] = fr__avx2_vec_dot4_q4_0_q8_0;
    best_dot4[FR_TYPE_Q5_0] = fr__avx2_vec_dot4_q5_0_q8_0;
    best_isa = "avx2";
}

/* On top of the AVX2 table (AVX-512 CPUs have AVX2). */
static void fill_avx512(void) {
    fr_type_ops *t = best_ops;
    t[FR_TYPE_Q4_0].vec_dot = fr__avx512_vec_dot_q4_0_q8_0;
    t[FR_TYPE_Q8_0].vec_dot = fr__avx512_vec_dot_q8_0_q8_0;
    best_dot4[FR_TYPE_Q4_0] = fr__avx512_vec_dot4_q4_0_q8_0;
    best_dot4x4[FR_TYPE_Q4_0] = fr__avx512_vec_dot4x4_q4_0_q8_0;
    best_gemv[FR_TYPE_Q4_0] = &fr__avx512_gemv_q4_0;
    best_gemv[FR_TYPE_Q8_0] = &fr__avx512_gemv_q8_0;
    best_gemv[FR_TYPE_F16] = &fr__avx512_gemv_f16;
    best_gemv[FR_TYPE_Q4_K] = &fr__avx512_gemv_q4_K;
    best_gemv[FR_TYPE_Q6_K] = &fr__avx512_gemv_q6_K;
    best_isa = "avx512";
}

static void select_tables(bool ref) {
    atomic_store(&active, ref ? ref_ops : best_ops);
    atomic_store(&active_isa, ref ? "ref" : best_isa);
    atomic_store(&active_dot4, ref ? ref_dot4 : best_dot4);
    atomic_store(&active_dot4x4, ref ? ref_dot4x4 : best_dot4x4);
    atomic_store(&active_gemv, ref ? ref_gemv : best_gemv);
}

static void init_once(void) {
    fill_ref();
    memcpy(best_ops, ref_ops, sizeof best_ops);
    const fr_cpu_features *cpu = fr_cpu();
    if (cpu->avx2 && cpu->fma && cpu->f16c) {
        fill_avx2();
        if (cpu->avx512f && cpu->avx512bw && cpu->avx512vl && cpu->avx512vnni) fill_avx512();
    }
    const char *env = getenv("FRUGAL_REF");
    select_tables(env && *env && strcmp(env, "0") != 0);
}

void fr_kernels_init(void) {
    pthread_once(&once, init_once);
}

void fr_kernels_force_ref(bool ref) {
    fr_kernels_init();
    select_tables(ref);
}

const char *fr_kernels_isa(void) {
    fr_kernels_init();
    return atomic_load_explicit(&active_isa, memory_order_relaxed);
}

static const fr_type_ops *lookup(const fr_type_ops *table, int type) {
    if (type < 0 || type >= FR_TYPE_COUNT || !table[type].dequantize) return NULL;
    return &table[type];
}

const fr_type_ops *fr_kernels_get(int type) {
    fr_kernels_init();
    return lookup(atomic_load_explicit(&active, memory_order_acquire), type);
}

fr__vec_dot4_fn fr__kernels_dot4(int type) {
    fr_kernels_init();
    if (type < 0 || type >= FR_TYPE_COUNT) return NULL;
    return atomic_load_explicit(&active_dot4, memory_order_acquire)[type];
}

fr__vec_dot4x4_fn fr__kernels_dot4x4(int type) {
    fr_kernels_init();
    if (type < 0 || type >= FR_TYPE_COUNT) return NULL;
    return atomic_load_explicit(&active_dot4x4, memory_order_acquire)[type];
}

const fr__gemv *fr__kernels_gemv(int type) {
    fr_kernels_init();
    if (type < 0 || type >= FR_TYPE_COUNT) return NULL;
    return atomic_load_explicit(&active_gemv, memory_order_acquire)[type];
}

const fr__gemv *fr__kernels_gemv_best(int type) {
    fr_kernels_init();
    if (type < 0 || type >= FR_TYPE_COUNT) return NULL;
    return best_gemv[type];
}

const fr_type_ops *fr_kernels_ref(int type) {
    fr_kernels_init();
    return lookup(ref_ops, type);
}

void fr_dequantize_row(int type, const void *src, float *dst, int64_t n) {
    const fr_type_ops *ops = fr_kernels_get(type);
    FR_ASSERT(ops);
    ops->dequantize(src, dst, n);
}

float fr_vec_dot(int type, int64_t n, const void *w, const void *a_quantized) {
    const fr_type_ops *ops = fr_kernels_get(type);
    FR_ASSERT(ops && ops->vec_dot);
    return ops->vec_dot(n, w, a_quantized);
}
