/*
 * ops.c — the plain C twins of the forward-pass ops (ops.h) and the
 * dispatch between them and the SIMD versions (x86/ops_avx512.c).
 *
 * The twins are written for clarity: one element at a time, libm's expf
 * and tanhf, the RMSNorm and LayerNorm sums in double.  The SIMD table is chosen once (pthread_once):
 * AVX-512 F/BW/VL (x86/ops_avx512.c), else AVX2+FMA+F16C (x86/ops_avx2.c), else
 * the twins; fr_ops_get() returns it unless the kernels run a lower level
 * (fr_kernels_isa() "ref": the twins; "avx2": the AVX2 table).  On aarch64
 * the tables follow the kernels' levels neon < dotprod < i8mm, each a copy
 * of the one below with fr__arm_ops_fill's functions on top (arm/table.c;
 * kernels_int.h), and fr_ops_get() returns the kernels' level's.
 */
#include "kernels/ops.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "base/sysinfo.h"
#include "kernels/kernels.h"
#include "kernels/ops_int.h"
#include "kernels/types.h"

void fr__ref_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (double)x[i] * x[i];
    float scale = 1.0f / sqrtf((float)(sum / (double)n) + eps);
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * scale * w[i];
}

void fr__ref_add(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

void fr__ref_rope(float *x, int n_heads, int hd, int n_rot, const float *cs, const float *sn,
                  bool neox) {
    int half = n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * (size_t)hd;
        for (int k = 0; k < half; k++) {
            int i0 = neox ? k : 2 * k, i1 = neox ? k + half : 2 * k + 1;
            float x0 = v[i0], x1 = v[i1];
            v[i0] = x0 * cs[i0] + x1 * sn[i0];
            v[i1] = x1 * cs[i1] + x0 * sn[i1];
        }
    }
}

void fr__ref_scale(float *y, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] *= s;
}

void fr__ref_silu_mul(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void fr__ref_f16_rows(const uint16_t *src, size_t stride, int rows, int n, float *dst) {
    for (int i = 0; i < rows; i++)
        for (int d = 0; d < n; d++) dst[(size_t)i * (size_t)n + (size_t)d] = fr_f16_to_f32(src[(size_t)i * stride + (size_t)d]);
}

void fr__ref_att_qk(int nk, int hd, const float *k, int R, int rp, const float *qs, float scale,
                    float *st) {
    bool rowmajor = R < FR_ATT_RMIN;
    for (int j = 0; j < nk; j++)
        for (int r = 0; r < R; r++) {
            float s = 0;
            for (int d = 0; d < hd; d++)
                s += k[j * hd + d] * (rowmajor ? qs[r * hd + d] : qs[d * rp + r]);
            st[j * rp + r] = scale * s;
        }
}

void fr__ref_att_softmax(int nk, int R, int rp, float *st, const int32_t *nv, float *m, float *l,
                         float *corr) {
    for (int r = 0; r < R; r++) {
        int n = nv[r] < 0 ? 0 : nv[r] > nk ? nk : nv[r];
        float mx = m[r];
        for (int j = 0; j < n; j++)
            if (st[j * rp + r] > mx) mx = st[j * rp + r];
        corr[r] = mx == m[r] ? 1.0f : expf(m[r] - mx);
        float sum = 0;
        for (int j = 0; j < nk; j++) {
            float p = j < n ? expf(st[j * rp + r] - mx) : 0.0f;
            st[j * rp + r] = p;
            sum += p;
        }
        l[r] = l[r] * corr[r] + sum;
        m[r] = mx;
    }
}

void fr__ref_att_pv(int nk, int hd, const float *v, int R, int rp, const float *st,
                    const float *corr, float *const *orow) {
    for (int r = 0; r < R; r++) {
        float *o = orow[r];
        for (int d = 0; d < hd; d++) o[d] *= corr[r];
        for (int j = 0; j < nk; j++) {
            float p = st[j * rp + r];
            for (int d = 0; d < hd; d++) o[d] += p * v[j * hd + d];
        }
    }
}

void fr__ref_layernorm(float *y, const float *x, const float *w, const float *b, int64_t n,
                       float eps) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += x[i];
    float mean = (float)(sum / (double)n);
    double sum2 = 0;
    for (int64_t i = 0; i < n; i++) {
        float d = x[i] - mean;
        sum2 += (double)(d * d);
    }
    float scale = 1.0f / sqrtf((float)(sum2 / (double)n) + eps);
    for (int64_t i = 0; i < n; i++) {
        float v = (x[i] - mean) * scale * w[i];
        y[i] = b ? v + b[i] : v;
    }
}

#define GELU_COEF_A 0.044715f
#define SQRT_2_OVER_PI 0.79788456080286535587989211986876f

void fr__ref_gelu(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(SQRT_2_OVER_PI * v * (1.0f + GELU_COEF_A * v * v)));
    }
}

static const fr_ops ref_table = {
    .rmsnorm = fr__ref_rmsnorm,
    .add = fr__ref_add,
    .rope = fr__ref_rope,
    .scale = fr__ref_scale,
    .silu_mul = fr__ref_silu_mul,
    .f16_rows = fr__ref_f16_rows,
    .att_qk = fr__ref_att_qk,
    .att_softmax = fr__ref_att_softmax,
    .att_pv = fr__ref_att_pv,
    .layernorm = fr__ref_layernorm,
    .gelu = fr__ref_gelu,
};

#if defined(__x86_64__)
static fr_ops avx2_table, avx512_table, best_table;
static bool have_avx2, have_avx512;
static const char *best_isa = "ref";
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_once(void) {
    const fr_cpu_features *cpu = fr_cpu();
    best_table = ref_table;
    have_avx2 = cpu->avx2 && cpu->fma && cpu->f16c;
    have_avx512 = have_avx2 && cpu->avx512f && cpu->avx512bw && cpu->avx512vl;
    avx2_table = (fr_ops){
        .rmsnorm = fr__avx2_rmsnorm,
        .add = fr__avx2_add,
        .rope = fr__avx2_rope,
        .scale = fr__avx2_scale,
        .silu_mul = fr__avx2_silu_mul,
        .f16_rows = fr__avx2_f16_rows,
        .att_qk = fr__avx2_att_qk,
        .att_softmax = fr__avx2_att_softmax,
        .att_pv = fr__avx2_att_pv,
        .layernorm = fr__avx2_layernorm,
        .gelu = fr__avx2_gelu,
    };
    avx512_table = (fr_ops){
        .rmsnorm = fr__avx512_rmsnorm,
        .add = fr__avx512_add,
        .rope = fr__avx512_rope,
        .scale = fr__avx512_scale,
        .silu_mul = fr__avx512_silu_mul,
        .f16_rows = fr__avx512_f16_rows,
        .att_qk = fr__avx512_att_qk,
        .att_softmax = fr__avx512_att_softmax,
        .att_pv = fr__avx512_att_pv,
        .layernorm = fr__avx512_layernorm,
        .gelu = fr__avx512_gelu,
    };
    if (have_avx512) {
        best_table = avx512_table;
        best_isa = "avx512";
    } else if (have_avx2) {
        best_table = avx2_table;
        best_isa = "avx2";
    }
}

const fr_ops *fr__ops_avx2(void) {
    pthread_once(&once, init_once);
    return have_avx2 ? &avx2_table : NULL;
}

const fr_ops *fr__ops_avx512(void) {
    pthread_once(&once, init_once);
    return have_avx512 ? &avx512_table : NULL;
}

const fr_ops *fr__ops_for(const char *isa) {
    if (strcmp(isa, "ref") == 0) return &ref_table;
    if (strcmp(isa, "avx2") == 0) return fr__ops_avx2();
    if (strcmp(isa, "avx512") == 0) return fr__ops_avx512();
    return NULL;
}
#elif defined(__aarch64__)
/* Indexed like the kernels' levels (FR__ARM_*); NULL where the CPU lacks
 * the level. */
static const char *const level_names[] = {"ref", "neon", "dotprod", "i8mm"};
static fr_ops arm_tables[4];
static const fr_ops *arm_level[4];
static fr_ops best_table;
static const char *best_isa = "ref";
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_once(void) {
    const fr_cpu_features *cpu = fr_cpu();
    const bool has[4] = {true, cpu->neon, cpu->neon && cpu->dotprod && cpu->fp16,
                         cpu->neon && cpu->dotprod && cpu->fp16 && cpu->i8mm};
    arm_tables[0] = ref_table;
    arm_level[0] = &arm_tables[0];
    best_table = ref_table;
    for (int i = 1; i < 4 && has[i]; i++) {
        arm_tables[i] = arm_tables[i - 1];
        fr__arm_ops_fill(&arm_tables[i], i);
        arm_level[i] = &arm_tables[i];
        best_table = arm_tables[i];
        best_isa = level_names[i];
    }
}

const fr_ops *fr__ops_for(const char *isa) {
    pthread_once(&once, init_once);
    for (int i = 0; i < 4; i++)
        if (strcmp(isa, level_names[i]) == 0) return arm_level[i];
    return NULL;
}
#else
static fr_ops best_table;
static const char *best_isa = "ref";
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_once(void) { best_table = ref_table; }

const fr_ops *fr__ops_for(const char *isa) {
    return strcmp(isa, "ref") == 0 ? &ref_table : NULL;
}
#endif

static _Atomic(const fr_ops *) override;

void fr__ops_override(const fr_ops *t) { atomic_store(&override, t); }

const fr_ops *fr_ops_get(void) {
    pthread_once(&once, init_once);
    const fr_ops *o = atomic_load_explicit(&override, memory_order_relaxed);
    if (o) return o;
    const char *isa = fr_kernels_isa();
    if (strcmp(isa, "ref") == 0) return &ref_table;
    const fr_ops *t = fr__ops_for(isa);
    return t ? t : &best_table;
}

const fr_ops *fr_ops_ref(void) { return &ref_table; }

const char *fr_ops_isa(void) {
    pthread_once(&once, init_once);
    return best_isa;
}
