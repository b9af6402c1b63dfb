/*
 * arm/quants_neon.c — row kernels on plain ARMv8-A Advanced SIMD
 * (compiled with -march=armv8-a; every aarch64 CPU has it, Cortex-A72 of
 * the Pi 4 included).  arm/table.c puts them in the neon level.
 *
 * Each function is the twin of the fr__ref_* function of the same name in
 * ref.c and computes the same thing within float rounding:
 *
 * - vec_dot_f32 accumulates in four 4-lane float accumulators with fused
 *   multiply-add; the twin accumulates in double.
 */
#include <arm_neon.h>

#include "kernels/kernels_int.h"

float fr__neon_vec_dot_f32(int64_t n, const void *w, const void *a) {
    const float *x = w, *y = a;
    float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 4; k++) acc[k] = vfmaq_f32(acc[k], vld1q_f32(x + i + 4 * k), vld1q_f32(y + i + 4 * k));
    for (; i + 4 <= n; i += 4) acc[0] = vfmaq_f32(acc[0], vld1q_f32(x + i), vld1q_f32(y + i));
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
    for (; i < n; i++) sum += x[i] * y[i];
    return sum;
}
