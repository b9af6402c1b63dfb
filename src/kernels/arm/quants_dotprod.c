/*
 * arm/quants_dotprod.c — the quantized dots of quants_neon.c built for ARMv8.2-A with
 * the dot product extension (SDOT, vdotq_s32: Cortex-A76 and later, the
 * Raspberry Pi 5) and FP16; compiled with -march=armv8.2-a+dotprod+fp16
 * and called only from the dotprod and i8mm levels (arm/table.c), which
 * kernels.c fills when getauxval reports ASIMDDP, FPHP and ASIMDHP.
 * The functions are named fr__dotprod_*; quants_neon.c explains them.
 */
#include "kernels/arm/quants_neon.c"
