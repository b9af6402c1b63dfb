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

void fr__arm_fill(fr__table *t, int level) {
    fr_type_ops *o = t->ops;
    switch (level) {
    case FR__ARM_NEON:
        o[FR_TYPE_F32].vec_dot = fr__neon_vec_dot_f32;
        break;
    case FR__ARM_DOTPROD:
        o[FR_TYPE_Q8_0].vec_dot = fr__dotprod_vec_dot_q8_0_q8_0;
        break;
    case FR__ARM_I8MM:
        break;
    }
}

void fr__arm_ops_fill(fr_ops *o, int level) {
    (void)o;
    (void)level;
}
