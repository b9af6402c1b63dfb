/*
 * arm/table.c — what each aarch64 level puts in the dispatch tables
 * (compiled with the baseline flags: it only stores function pointers).
 *
 * kernels.c keeps the levels ref < neon < dotprod < i8mm and builds each
 * present one as a copy of the level below plus what fr__arm_fill sets for
 * it; ops.c does the same for the element-wise ops with fr__arm_ops_fill
 * (kernels_int.h, ops_int.h).  An entry a level leaves alone keeps the
 * level below's, so a kernel written for plain NEON serves the dotprod and
 * i8mm levels too, and anything not written yet runs the reference twin.
 * The functions themselves live in the files whose names end in the level
 * their -march needs: *_neon.c (armv8-a), *_dotprod.c (armv8.2-a +dotprod
 * +fp16), *_i8mm.c (+i8mm); they may only be called from a level that the
 * CPU has, which is what filling them here, level by level, ensures.
 */
#include "kernels/kernels_int.h"
#include "kernels/ops_int.h"

/* The quantized dots of one build of arm/quants_neon.c (fr__neon_* or,
 * with SDOT, fr__dotprod_*), with their four-row and 4×4 batch versions. */
#define QDOTS(isa)                                                  \
    do {                                                            \
        o[FR_TYPE_Q4_0].vec_dot = fr__##isa##_vec_dot_q4_0_q8_0;    \
        o[FR_TYPE_Q5_0].vec_dot = fr__##isa##_vec_dot_q5_0_q8_0;    \
        o[FR_TYPE_Q8_0].vec_dot = fr__##isa##_vec_dot_q8_0_q8_0;    \
        o[FR_TYPE_Q4_1].vec_dot = fr__##isa##_vec_dot_q4_1_q8_1;    \
        o[FR_TYPE_Q5_1].vec_dot = fr__##isa##_vec_dot_q5_1_q8_1;    \
        o[FR_TYPE_Q2_K].vec_dot = fr__##isa##_vec_dot_q2_K_q8_K;    \
        o[FR_TYPE_Q3_K].vec_dot = fr__##isa##_vec_dot_q3_K_q8_K;    \
        o[FR_TYPE_Q4_K].vec_dot = fr__##isa##_vec_dot_q4_K_q8_K;    \
        o[FR_TYPE_Q5_K].vec_dot = fr__##isa##_vec_dot_q5_K_q8_K;    \
        o[FR_TYPE_Q6_K].vec_dot = fr__##isa##_vec_dot_q6_K_q8_K;    \
        t->dot4[FR_TYPE_Q4_0] = fr__##isa##_vec_dot4_q4_0_q8_0;     \
        t->dot4[FR_TYPE_Q8_0] = fr__##isa##_vec_dot4_q8_0_q8_0;     \
        t->dot4x4[FR_TYPE_Q4_0] = fr__##isa##_vec_dot4x4_q4_0_q8_0; \
        t->dot4x4[FR_TYPE_Q8_0] = fr__##isa##_vec_dot4x4_q8_0_q8_0; \
    } while (0)

void fr__arm_fill(fr__table *t, int level) {
    fr_type_ops *o = t->ops;
    switch (level) {
    case FR__ARM_NEON: /* every type's dot; the activation quantizers */
        o[FR_TYPE_F32].vec_dot = fr__neon_vec_dot_f32;
        o[FR_TYPE_F16].dequantize = fr__neon_dequantize_f16;
        o[FR_TYPE_F16].quantize = fr__neon_quantize_f16;
        o[FR_TYPE_F16].vec_dot = fr__neon_vec_dot_f16;
        t->dot4x4[FR_TYPE_F16] = fr__neon_vec_dot4x4_f16;
        o[FR_TYPE_BF16].dequantize = fr__neon_dequantize_bf16;
        o[FR_TYPE_BF16].quantize = fr__neon_quantize_bf16;
        o[FR_TYPE_BF16].vec_dot = fr__neon_vec_dot_bf16;
        o[FR_TYPE_Q4_0].dequantize = fr__neon_dequantize_q4_0;
        o[FR_TYPE_Q8_0].dequantize = fr__neon_dequantize_q8_0;
        o[FR_TYPE_Q8_0].quantize = fr__neon_quantize_q8_0;
        o[FR_TYPE_Q8_1].quantize = fr__neon_quantize_q8_1;
        o[FR_TYPE_Q8_K].quantize = fr__neon_quantize_q8_K;
        o[FR_TYPE_Q4_K].dequantize = fr__neon_dequantize_q4_K;
        o[FR_TYPE_Q6_K].dequantize = fr__neon_dequantize_q6_K;
        QDOTS(neon);
        break;
    case FR__ARM_DOTPROD: /* the quantized dots again with SDOT */
        QDOTS(dotprod);
        break;
    case FR__ARM_I8MM: /* the batch tiles with SMMLA */
        t->dot4x4[FR_TYPE_Q4_0] = fr__i8mm_vec_dot4x4_q4_0_q8_0;
        t->dot4x4[FR_TYPE_Q8_0] = fr__i8mm_vec_dot4x4_q8_0_q8_0;
        t->dot4x4[FR_TYPE_Q4_K] = fr__i8mm_vec_dot4x4_q4_K_q8_K;
        t->dot4x4[FR_TYPE_Q6_K] = fr__i8mm_vec_dot4x4_q6_K_q8_K;
        break;
    }
}

#undef QDOTS

void fr__arm_ops_fill(fr_ops *o, int level) {
    if (level != FR__ARM_NEON) return; /* the higher levels keep these */
    o->rmsnorm = fr__neon_rmsnorm;
    o->add = fr__neon_add;
    o->rope = fr__neon_rope;
    o->scale = fr__neon_scale;
    o->silu_mul = fr__neon_silu_mul;
    o->f16_rows = fr__neon_f16_rows;
    o->att_qk = fr__neon_att_qk;
    o->att_softmax = fr__neon_att_softmax;
    o->att_pv = fr__neon_att_pv;
    o->layernorm = fr__neon_layernorm;
    o->gelu = fr__neon_gelu;
}
