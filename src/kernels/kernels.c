/*
 * kernels.c — the dispatch table: which row function runs for each type.
 *
 * One set of tables per instruction-set level, indexed by type id:
 * levels[ISA_REF] holds the plain C twins (ref.c); levels[ISA_AVX2] starts
 * as a copy of it and gets the AVX2+FMA+F16C functions (x86_avx2.c);
 * levels[ISA_AVX512] starts as a copy of that and gets the AVX-512
 * F/BW/VL/VNNI ones (x86_avx512.c) on top.  A level is filled only when the
 * CPU has it.  The active level is the best the CPU has, capped by
 * FRUGAL_ISA=ref|avx2|avx512 or FRUGAL_REF=1, or chosen by
 * fr_kernels_force_isa()/fr_kernels_force_ref().  Besides fr_type_ops, a
 * level holds the optional four-row and 4×4 dots (fr__kernels_dot4,
 * fr__kernels_dot4x4) and the decode GEMVs (fr__kernels_gemv) that
 * fr_matmul uses where present; the reference level has none.
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

#if defined(__x86_64__) || defined(__i386__)
#define FR_KERNELS_X86 1
enum { ISA_REF, ISA_AVX2, ISA_AVX512, ISA_COUNT };
#define LEVEL_NAMES {.name = "ref"}, {.name = "avx2"}, {.name = "avx512"}
#elif defined(__aarch64__)
#include <sys/auxv.h>
#define FR_KERNELS_ARM 1
enum { ISA_REF, ISA_NEON, ISA_DOTPROD, ISA_I8MM, ISA_COUNT };
#define LEVEL_NAMES {.name = "ref"}, {.name = "neon"}, {.name = "dotprod"}, {.name = "i8mm"}
#else
enum { ISA_REF, ISA_COUNT };
#define LEVEL_NAMES {.name = "ref"}
#endif

typedef struct level {
    const char *name;
    bool present;                          /* the CPU can run it */
    fr_type_ops ops[FR_TYPE_COUNT];
    fr__vec_dot4_fn dot4[FR_TYPE_COUNT];   /* NULL where none */
    fr__vec_dot4x4_fn dot4x4[FR_TYPE_COUNT];
    const fr__gemv *gemv[FR_TYPE_COUNT];
} level;

static level levels[ISA_COUNT] = {LEVEL_NAMES};
static int best_level;                     /* the CPU's best */
static _Atomic(const level *) active;
static pthread_once_t once = PTHREAD_ONCE_INIT;

#define OPS(t, dq, q, dot, vt) \
    levels[ISA_REF].ops[FR_TYPE_##t] = (fr_type_ops){dq, q, dot, FR_TYPE_##vt}

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

#ifdef FR_KERNELS_X86
static void fill_avx2(level *l) {
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

/* On top of the AVX2 table (AVX-512 CPUs have AVX2). */
static void fill_avx512(level *l) {
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
}

/* Fill the levels this CPU has on top of ref; returns the best. */
static int fill_levels(void) {
    level *ref = &levels[ISA_REF], *avx2 = &levels[ISA_AVX2], *avx512 = &levels[ISA_AVX512];
    const fr_cpu_features *cpu = fr_cpu();
    int best = ISA_REF;
    if (cpu->avx2 && cpu->fma && cpu->f16c) {
        memcpy(avx2->ops, ref->ops, sizeof ref->ops);
        fill_avx2(avx2);
        avx2->present = true;
        best = ISA_AVX2;
        if (cpu->avx512f && cpu->avx512bw && cpu->avx512vl && cpu->avx512vnni) {
            memcpy(avx512->ops, avx2->ops, sizeof avx2->ops);
            memcpy(avx512->dot4, avx2->dot4, sizeof avx2->dot4);
            fill_avx512(avx512);
            avx512->present = true;
            best = ISA_AVX512;
        }
    }
    return best;
}
#endif

#ifdef FR_KERNELS_ARM
/* Plain NEON (arm/neon.c): every type's dot, the activation quantizers. */
static void fill_neon(level *l) {
    fr_type_ops *t = l->ops;
    t[FR_TYPE_F32].vec_dot = fr__neon_vec_dot_f32;
    t[FR_TYPE_F16].dequantize = fr__neon_dequantize_f16;
    t[FR_TYPE_F16].quantize = fr__neon_quantize_f16;
    t[FR_TYPE_F16].vec_dot = fr__neon_vec_dot_f16;
    t[FR_TYPE_BF16].dequantize = fr__neon_dequantize_bf16;
    t[FR_TYPE_BF16].quantize = fr__neon_quantize_bf16;
    t[FR_TYPE_BF16].vec_dot = fr__neon_vec_dot_bf16;
    t[FR_TYPE_Q4_0].dequantize = fr__neon_dequantize_q4_0;
    t[FR_TYPE_Q8_0].dequantize = fr__neon_dequantize_q8_0;
    t[FR_TYPE_Q8_0].quantize = fr__neon_quantize_q8_0;
    t[FR_TYPE_Q8_1].quantize = fr__neon_quantize_q8_1;
    t[FR_TYPE_Q8_K].quantize = fr__neon_quantize_q8_K;
    t[FR_TYPE_Q4_K].dequantize = fr__neon_dequantize_q4_K;
    t[FR_TYPE_Q6_K].dequantize = fr__neon_dequantize_q6_K;
#define QDOTS(isa)                                                         \
    t[FR_TYPE_Q4_0].vec_dot = fr__##isa##_vec_dot_q4_0_q8_0;               \
    t[FR_TYPE_Q5_0].vec_dot = fr__##isa##_vec_dot_q5_0_q8_0;               \
    t[FR_TYPE_Q8_0].vec_dot = fr__##isa##_vec_dot_q8_0_q8_0;               \
    t[FR_TYPE_Q4_1].vec_dot = fr__##isa##_vec_dot_q4_1_q8_1;               \
    t[FR_TYPE_Q5_1].vec_dot = fr__##isa##_vec_dot_q5_1_q8_1;               \
    t[FR_TYPE_Q2_K].vec_dot = fr__##isa##_vec_dot_q2_K_q8_K;               \
    t[FR_TYPE_Q3_K].vec_dot = fr__##isa##_vec_dot_q3_K_q8_K;               \
    t[FR_TYPE_Q4_K].vec_dot = fr__##isa##_vec_dot_q4_K_q8_K;               \
    t[FR_TYPE_Q5_K].vec_dot = fr__##isa##_vec_dot_q5_K_q8_K;               \
    t[FR_TYPE_Q6_K].vec_dot = fr__##isa##_vec_dot_q6_K_q8_K;               \
    l->dot4[FR_TYPE_Q4_0] = fr__##isa##_vec_dot4_q4_0_q8_0;                \
    l->dot4[FR_TYPE_Q8_0] = fr__##isa##_vec_dot4_q8_0_q8_0;                \
    l->dot4x4[FR_TYPE_Q4_0] = fr__##isa##_vec_dot4x4_q4_0_q8_0;            \
    l->dot4x4[FR_TYPE_Q8_0] = fr__##isa##_vec_dot4x4_q8_0_q8_0;
    QDOTS(neon)
}

/* On top of the NEON table: the quantized dots with SDOT. */
static void fill_dotprod(level *l) {
    fr_type_ops *t = l->ops;
    QDOTS(dotprod)
#undef QDOTS
}

/* On top of the dotprod table: the batch tiles with SMMLA. */
static void fill_i8mm(level *l) {
    l->dot4x4[FR_TYPE_Q4_0] = fr__i8mm_vec_dot4x4_q4_0_q8_0;
    l->dot4x4[FR_TYPE_Q8_0] = fr__i8mm_vec_dot4x4_q8_0_q8_0;
    l->dot4x4[FR_TYPE_Q4_K] = fr__i8mm_vec_dot4x4_q4_K_q8_K;
    l->dot4x4[FR_TYPE_Q6_K] = fr__i8mm_vec_dot4x4_q6_K_q8_K;
}

/* The levels from the kernel's hardware capabilities (getauxval): NEON
 * (HWCAP_ASIMD, every AArch64 Linux CPU), dotprod (+ HWCAP_ASIMDDP and the
 * half-precision HWCAP_FPHP/ASIMDHP, Cortex-A76), i8mm (+ HWCAP2_I8MM). */
#define HWC_ASIMD   (1ul << 1)
#define HWC_FPHP    (1ul << 9)
#define HWC_ASIMDHP (1ul << 10)
#define HWC_ASIMDDP (1ul << 20)
#define HWC2_I8MM   (1ul << 13)

static void copy_level(level *dst, const level *src) {
    memcpy(dst->ops, src->ops, sizeof src->ops);
    memcpy(dst->dot4, src->dot4, sizeof src->dot4);
    memcpy(dst->dot4x4, src->dot4x4, sizeof src->dot4x4);
    memcpy(dst->gemv, src->gemv, sizeof src->gemv);
}

static int fill_levels(void) {
    const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    int best = ISA_REF;
    if (!(hw & HWC_ASIMD)) return best;
    copy_level(&levels[ISA_NEON], &levels[ISA_REF]);
    fill_neon(&levels[ISA_NEON]);
    levels[ISA_NEON].present = true;
    best = ISA_NEON;
    const unsigned long dp = HWC_ASIMDDP | HWC_FPHP | HWC_ASIMDHP;
    if ((hw & dp) != dp) return best;
    copy_level(&levels[ISA_DOTPROD], &levels[ISA_NEON]);
    fill_dotprod(&levels[ISA_DOTPROD]);
    levels[ISA_DOTPROD].present = true;
    best = ISA_DOTPROD;
    if (!(hw2 & HWC2_I8MM)) return best;
    copy_level(&levels[ISA_I8MM], &levels[ISA_DOTPROD]);
    fill_i8mm(&levels[ISA_I8MM]);
    levels[ISA_I8MM].present = true;
    return ISA_I8MM;
}
#endif

#if !defined(FR_KERNELS_X86) && !defined(FR_KERNELS_ARM)
static int fill_levels(void) { return ISA_REF; }
#endif

static int find_level(const char *name) {
    for (int i = 0; i < ISA_COUNT; i++)
        if (strcmp(levels[i].name, name) == 0) return i;
    return -1;
}

static void init_once(void) {
    fill_ref();
    levels[ISA_REF].present = true;
    best_level = fill_levels();
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

bool fr__kernels_has(const char *isa) {
    fr_kernels_init();
    const int i = isa ? find_level(isa) : -1;
    return i >= 0 && levels[i].present;
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
    return lookup(cur()->ops, type);
}

fr__vec_dot4_fn fr__kernels_dot4(int type) {
    const level *l = cur();
    return type < 0 || type >= FR_TYPE_COUNT ? NULL : l->dot4[type];
}

fr__vec_dot4x4_fn fr__kernels_dot4x4(int type) {
    const level *l = cur();
    return type < 0 || type >= FR_TYPE_COUNT ? NULL : l->dot4x4[type];
}

const fr__gemv *fr__kernels_gemv(int type) {
    const level *l = cur();
    return type < 0 || type >= FR_TYPE_COUNT ? NULL : l->gemv[type];
}

const fr__gemv *fr__kernels_gemv_best(int type) {
    fr_kernels_init();
    return type < 0 || type >= FR_TYPE_COUNT ? NULL : levels[best_level].gemv[type];
}

const fr_type_ops *fr_kernels_ref(int type) {
    fr_kernels_init();
    return lookup(levels[ISA_REF].ops, type);
}

void fr_dequantize_row(int type, const void *src, float *dst, int64_t n) {
    const fr_type_ops *ops = fr_kernels_get(type);
    FR_ASSERT(ops);
    ops->dequantize(src, dst, n);
}
