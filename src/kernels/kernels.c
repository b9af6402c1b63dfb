/*
 * kernels.c — the dispatch table: which row function runs for each type.
 *
 * One table (fr__table, kernels_int.h) per instruction-set level, indexed
 * by type id; the levels depend on the architecture the file is built for:
 *
 *   x86-64:  ref < avx2 < avx512     FRUGAL_ISA=ref|avx2|avx512
 *   aarch64: ref < neon < dotprod < i8mm
 *                                    FRUGAL_ISA=ref|neon|dotprod|i8mm
 *
 * levels[0] holds the plain C twins (ref.c); each level above starts as a
 * copy of the one below and gets its own functions on top: AVX2+FMA+F16C
 * (x86/quants_avx2.c), AVX-512 F/BW/VL/VNNI (x86/quants_avx512.c); on ARM
 * fr__arm_fill (arm/table.c) for plain NEON (Cortex-A72), + dotprod and
 * fp16 (Cortex-A76), + i8mm.  A level is filled only when the CPU has it
 * (fr_cpu: cpuid, or getauxval(AT_HWCAP/AT_HWCAP2)), and the levels above
 * a missing one are missing too.  The active level is the best the CPU
 * has, capped by FRUGAL_ISA or FRUGAL_REF=1, or chosen by
 * fr_kernels_force_isa()/fr_kernels_force_ref().  Besides fr_type_ops, a
 * level holds the optional four-row and 4×4 dots (fr__kernels_dot4,
 * fr__kernels_dot4x4), the decode GEMVs (fr__kernels_gemv) and the batched
 * GEMM (fr__kernels_gemm) that fr_matmul uses where present; the
 * reference level has none.
 *
 * Besides the computable weight types, the tables hold the activation-only
 * types Q8_1 and Q8_K (dequantize and quantize, vec_dot NULL), because
 * fr_matmul quantizes activations through the same table.
 *
 * Init runs once under pthread_once; afterwards the tables are read-only,
 * so every getter is thread-safe.  fr_kernels_force_isa() flips an atomic
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

#if defined(__x86_64__)
enum { ISA_REF, ISA_AVX2, ISA_AVX512, ISA_COUNT };
#define LEVEL_NAMES {.name = "ref"}, {.name = "avx2"}, {.name = "avx512"}
#elif defined(__aarch64__)
enum { ISA_REF, ISA_NEON = FR__ARM_NEON, ISA_DOTPROD = FR__ARM_DOTPROD, ISA_I8MM = FR__ARM_I8MM, ISA_COUNT };
#define LEVEL_NAMES {.name = "ref"}, {.name = "neon"}, {.name = "dotprod"}, {.name = "i8mm"}
#else
enum { ISA_REF, ISA_COUNT };
#define LEVEL_NAMES {.name = "ref"}
#endif

typedef struct level {
    const char *name;
    bool present;                          /* the CPU can run it */
    fr__table t;
} level;

static level levels[ISA_COUNT] = {LEVEL_NAMES};
static int best_level;                     /* the CPU's best */
static _Atomic(const level *) active;
static pthread_once_t once = PTHREAD_ONCE_INIT;

#define OPS(ty, dq, q, dot, vt) \
    levels[ISA_REF].t.ops[FR_TYPE_##ty] = (fr_type_ops){dq, q, dot, FR_TYPE_##vt}

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

#if defined(__x86_64__)
static void fill_avx2(fr__table *l) {
    fr_type_ops *t = l->ops;
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
    l->dot4[FR_TYPE_Q4_0] = fr__avx2_vec_dot4_q4_0_q8_0;
    l->dot4[FR_TYPE_Q5_0] = fr__avx2_vec_dot4_q5_0_q8_0;
}

static const fr__gemm_ops avx512_gemm = {fr__avx512_gemm_convert, fr__avx512_gemm_panel};

/* On top of the AVX2 table (AVX-512 CPUs have AVX2). */
static void fill_avx512(fr__table *l) {
    fr_type_ops *t = l->ops;
    t[FR_TYPE_Q4_0].vec_dot = fr__avx512_vec_dot_q4_0_q8_0;
    t[FR_TYPE_Q8_0].vec_dot = fr__avx512_vec_dot_q8_0_q8_0;
    l->dot4[FR_TYPE_Q4_0] = fr__avx512_vec_dot4_q4_0_q8_0;
    l->dot4x4[FR_TYPE_Q4_0] = fr__avx512_vec_dot4x4_q4_0_q8_0;
    l->gemv[FR_TYPE_Q4_0] = &fr__avx512_gemv_q4_0;
    l->gemv[FR_TYPE_Q8_0] = &fr__avx512_gemv_q8_0;
    l->gemv[FR_TYPE_F16] = &fr__avx512_gemv_f16;
    l->gemv[FR_TYPE_Q4_K] = &fr__avx512_gemv_q4_K;
    l->gemv[FR_TYPE_Q6_K] = &fr__avx512_gemv_q6_K;
    l->gemm = &avx512_gemm;
}
#endif

static int find_level(const char *name) {
    for (int i = 0; i < ISA_COUNT; i++)
        if (strcmp(levels[i].name, name) == 0) return i;
    return -1;
}

/* Level i as a copy of level i-1 with its own functions on top. */
static void stack(int i, void (*fill)(fr__table *, int)) {
    levels[i].t = levels[i - 1].t;
    fill(&levels[i].t, i);
    levels[i].present = true;
    best_level = i;
}

#if defined(__x86_64__)
static void x86_fill(fr__table *t, int i) {
    if (i == ISA_AVX2) fill_avx2(t);
    else fill_avx512(t);
}
#endif

static void init_once(void) {
    fill_ref();
    levels[ISA_REF].present = true;
    const fr_cpu_features *cpu = fr_cpu();
#if defined(__x86_64__)
    if (cpu->avx2 && cpu->fma && cpu->f16c) {
        stack(ISA_AVX2, x86_fill);
        if (cpu->avx512f && cpu->avx512bw && cpu->avx512vl && cpu->avx512vnni) stack(ISA_AVX512, x86_fill);
    }
#elif defined(__aarch64__)
    if (cpu->neon) {
        stack(ISA_NEON, fr__arm_fill);
        if (cpu->dotprod && cpu->fp16) {
            stack(ISA_DOTPROD, fr__arm_fill);
            if (cpu->i8mm) stack(ISA_I8MM, fr__arm_fill);
        }
    }
#else
    (void)cpu;
    (void)stack;
#endif
    /* FRUGAL_ISA caps the level (an unknown or absent one is ignored with
     * the CPU's best kept: the environment must not stop the program). */
    int pick = best_level;
    const char *isa = getenv("FRUGAL_ISA"), *r = getenv("FRUGAL_REF");
    int want = isa && *isa ? find_level(isa) : -1;
    if (want >= 0 && want < pick) pick = want;
    if (r && *r && strcmp(r, "0") != 0) pick = ISA_REF;
    atomic_store(&active, &levels[pick]);
}

void fr_kernels_init(void) {
    pthread_once(&once, init_once);
}

void fr_kernels_force_ref(bool ref) {
    fr_kernels_init();
    atomic_store(&active, &levels[ref ? ISA_REF : best_level]);
}

int fr_kernels_force_isa(const char *isa) {
    fr_kernels_init();
    int i = isa ? find_level(isa) : best_level;
    if (i < 0 || !levels[i].present) return FR_EUNSUPP;
    atomic_store(&active, &levels[i]);
    return 0;
}

const char *fr_kernels_isa(void) {
    fr_kernels_init();
    return atomic_load_explicit(&active, memory_order_relaxed)->name;
}

const char *fr_kernels_best_isa(void) {
    fr_kernels_init();
    return levels[best_level].name;
}

static const level *cur(void) {
    fr_kernels_init();
    return atomic_load_explicit(&active, memory_order_acquire);
}

static const fr_type_ops *lookup(const fr_type_ops *table, int type) {
    if (type < 0 || type >= FR_TYPE_COUNT || !table[type].dequantize) return NULL;
    return &table[type];
}

const fr_type_ops *fr_kernels_get(int type) {
    return lookup(cur()->t.ops, type);
}

fr__vec_dot4_fn fr__kernels_dot4(int type) {
    const level *l = cur();
    return type < 0 || type >= FR_TYPE_COUNT ? NULL : l->t.dot4[type];
}

fr__vec_dot4x4_fn fr__kernels_dot4x4(int type) {
    const level *l = cur();
    return type < 0 || type >= FR_TYPE_COUNT ? NULL : l->t.dot4x4[type];
}

const fr__gemv *fr__kernels_gemv(int type) {
    const level *l = cur();
    return type < 0 || type >= FR_TYPE_COUNT ? NULL : l->t.gemv[type];
}

const fr__gemm_ops *fr__kernels_gemm(void) {
    return cur()->t.gemm;
}

const fr__gemv *fr__kernels_gemv_best(int type) {
    fr_kernels_init();
    return type < 0 || type >= FR_TYPE_COUNT ? NULL : levels[best_level].t.gemv[type];
}

const fr_type_ops *fr_kernels_ref(int type) {
    fr_kernels_init();
    return lookup(levels[ISA_REF].t.ops, type);
}

void fr_dequantize_row(int type, const void *src, float *dst, int64_t n) {
    const fr_type_ops *ops = fr_kernels_get(type);
    FR_ASSERT(ops);
    ops->dequantize(src, dst, n);
}
