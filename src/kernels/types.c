/* types.c — the ggml type table (GGUF.md §2). */
#include "kernels/types.h"

#include <strings.h>

/* Types whose ids are removed or whose layout frugal does not know are
 * absent (name NULL). */
static const fr_type_info table[FR_TYPE_COUNT] = {
    [FR_TYPE_F32]     = {"f32", 1, 4, true},
    [FR_TYPE_F16]     = {"f16", 1, 2, true},
    [FR_TYPE_Q4_0]    = {"q4_0", 32, 18, true},
    [FR_TYPE_Q4_1]    = {"q4_1", 32, 20, true},
    [FR_TYPE_Q5_0]    = {"q5_0", 32, 22, true},
    [FR_TYPE_Q5_1]    = {"q5_1", 32, 24, true},
    [FR_TYPE_Q8_0]    = {"q8_0", 32, 34, true},
    [FR_TYPE_Q8_1]    = {"q8_1", 32, 36, false},
    [FR_TYPE_Q2_K]    = {"q2_k", 256, 84, true},
    [FR_TYPE_Q3_K]    = {"q3_k", 256, 110, true},
    [FR_TYPE_Q4_K]    = {"q4_k", 256, 144, true},
    [FR_TYPE_Q5_K]    = {"q5_k", 256, 176, true},
    [FR_TYPE_Q6_K]    = {"q6_k", 256, 210, true},
    [FR_TYPE_Q8_K]    = {"q8_k", 256, 292, false},
    [FR_TYPE_IQ2_XXS] = {"iq2_xxs", 256, 66, false},
    [FR_TYPE_IQ2_XS]  = {"iq2_xs", 256, 74, false},
    [FR_TYPE_IQ3_XXS] = {"iq3_xxs", 256, 98, false},
    [FR_TYPE_IQ1_S]   = {"iq1_s", 256, 50, false},
    [FR_TYPE_IQ4_NL]  = {"iq4_nl", 32, 18, false},
    [FR_TYPE_IQ3_S]   = {"iq3_s", 256, 110, false},
    [FR_TYPE_IQ2_S]   = {"iq2_s", 256, 82, false},
    [FR_TYPE_IQ4_XS]  = {"iq4_xs", 256, 136, false},
    [FR_TYPE_I8]      = {"i8", 1, 1, false},
    [FR_TYPE_I16]     = {"i16", 1, 2, false},
    [FR_TYPE_I32]     = {"i32", 1, 4, false},
    [FR_TYPE_I64]     = {"i64", 1, 8, false},
    [FR_TYPE_F64]     = {"f64", 1, 8, false},
    [FR_TYPE_IQ1_M]   = {"iq1_m", 256, 56, false},
    [FR_TYPE_BF16]    = {"bf16", 1, 2, true},
    [FR_TYPE_TQ1_0]   = {"tq1_0", 256, 54, false},
    [FR_TYPE_TQ2_0]   = {"tq2_0", 256, 66, false},
    [FR_TYPE_MXFP4]   = {"mxfp4", 32, 17, false},
};

const fr_type_info *fr_type_get(int type) {
    if (type < 0 || type >= FR_TYPE_COUNT || !table[type].name) return NULL;
    return &table[type];
}

const char *fr_type_name(int type) {
    const fr_type_info *t = fr_type_get(type);
    return t ? t->name : "?";
}

int fr_type_from_name(const char *name) {
    for (int i = 0; i < FR_TYPE_COUNT; i++)
        if (table[i].name && !strcasecmp(table[i].name, name)) return i;
    return -1;
}

bool fr_type_row_size(int type, int64_t n, size_t *out) {
    const fr_type_info *t = fr_type_get(type);
    if (!t || n < 0 || n % t->blck) return false;
    return __builtin_mul_overflow((size_t)(n / t->blck), t->size, out) == 0;
}
