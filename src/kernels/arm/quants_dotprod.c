/*
 * arm/quants_dotprod.c — the quantized dots of quants_neon.c built for ARMv8.2-A with
 * the dot product extension (SDOT, vdotq_s32: Cortex-A76 and later, the
 * Raspberry Pi 5) and FP16; compiled with -march=armv8.2-a+dotprod+fp16
 * and called only when the kernel reports HWCAP_ASIMDDP (kernels.c).
 * The functions are named fr__dotprod_*; quants_neon.c explains them.
 */
#include "quants_neon.c"
