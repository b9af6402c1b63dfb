/*
 * arm/vscan_arm.c — the int8 scan kernel of each aarch64 level (vscan.h),
 * in a file of its own with the baseline flags: it only names them.  The
 * kernels live in files named for their -march (vscan_neon.c,
 * vscan_dotprod.c, vscan_i8mm.c; Makefile); vscan.c hands out entry
 * [level] only when the CPU has that level, and a NULL entry means the
 * level below's (the plain C twin at the bottom).
 */
#include "search/vscan.h"

const fr_vscan_dot_fn fr__vscan_arm[4] = {
    NULL,       /* [0] unused: the twin, fr__vscan_dot_ref */
    NULL,       /* FR__ARM_NEON */
    NULL,       /* FR__ARM_DOTPROD */
    NULL,       /* FR__ARM_I8MM */
};
