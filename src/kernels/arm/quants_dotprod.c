/*
 * arm/quants_dotprod.c — row kernels that need the ARMv8.2 dot product
 * instructions (SDOT/UDOT) and half-precision arithmetic (compiled with
 * -march=armv8.2-a+dotprod+fp16: Cortex-A76 of the Pi 5 and later).
 * arm/table.c puts them in the dotprod level, which kernels.c fills only
 * when getauxval reports ASIMDDP, FPHP and ASIMDHP.
 *
 * - vec_dot_q8_0_q8_0: per 32-block, two SDOTs give four int32 partial
 *   sums whose total is the exact Σ w·a (|w·a| ≤ 127², 8 products per
 *   lane per block); the block's d_w·d_a·sumi is added in scalar float in
 *   block order as the twin does (float rounding only: the compiler may
 *   fuse the multiply-add in one file and not the other).
 */
#include <arm_neon.h>

#include "kernels/kernels_int.h"
#include "kernels/types.h"

float fr__dotprod_vec_dot_q8_0_q8_0(int64_t n, const void *w, const void *a) {
    const fr_block_q8_0 *x = w, *y = a;
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / FR_QK8_0; b++) {
        int32x4_t s = vdupq_n_s32(0);
        s = vdotq_s32(s, vld1q_s8(x[b].qs), vld1q_s8(y[b].qs));
        s = vdotq_s32(s, vld1q_s8(x[b].qs + 16), vld1q_s8(y[b].qs + 16));
        const int sumi = vaddvq_s32(s);
        sumf += (float)sumi * (fr_f16_to_f32(x[b].d) * fr_f16_to_f32(y[b].d));
    }
    return sumf;
}
