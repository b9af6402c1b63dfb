/*
 * arm/vscan_dotprod.c — vscan_neon.c built with SDOT
 * (-march=armv8.2-a+dotprod+fp16) as fr__vscan_dot_dotprod; vscan_arm.c
 * lists it for the dotprod and i8mm levels, which the CPU must have.
 */
#include "search/arm/vscan_neon.c"
