/*
 * ops.h — the forward pass's float operations besides the weight matmuls:
 * RMSNorm, residual adds, RoPE, SiLU·up, half-to-float rows of the KV
 * cache, the three steps of a tiled (flash-attention style) attention, and
 * for the encoders (bert) LayerNorm and GELU.
 *
 * Each op has a plain C twin in ops.c and, where the CPU allows, a SIMD
 * version (x86/ops_avx512.c, else x86/ops_avx2.c), chosen once from fr_cpu().
 * fr_ops_get() follows the kernels' choice: when fr_kernels_isa() is "ref"
 * (FRUGAL_REF=1 or fr_kernels_force_ref) it returns the twins.  Tables are
 * read-only after the first call, so every op is thread-safe on distinct
 * outputs.
 *
 * Attention tiles.  One work item of the attention holds R query rows that
 * read the same keys (the query heads of one KV head, for a block of
 * tokens).  A tile is nk <= FR_ATT_BK consecutive keys and values, already
 * converted to f32 ([nk][hd], row j = key j).  The scores of a tile are
 * stored transposed, st[j][r] with row stride rp (fr_ops_att_rp(R)), so the
 * softmax runs across rows in SIMD lanes.  The R queries are stored in
 * `qs` (fr_ops_att_put_q) as:
 *   R <  FR_ATT_RMIN:  row-major [R][hd]             (rp = R)
 *   R >= FR_ATT_RMIN:  transposed [hd][rp], rows >= R zero  (rp = R
 *                      rounded up to 16)
 * Per tile:   att_qk → att_softmax → att_pv,  with running m (max), l (sum)
 * per row; after the last tile o_r /= l_r (the caller).
 */
#ifndef FR_KERNELS_OPS_H
#define FR_KERNELS_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FR_ATT_BK   64   /* keys per attention tile */
#define FR_ATT_RMIN 8    /* from this many rows the queries are stored transposed */

typedef struct fr_ops {
    /* y[i] = x[i] · (1/sqrt(Σx²/n + eps)) · w[i], the sum in double as
     * ggml does.  y may equal x. */
    void (*rmsnorm)(float *y, const float *x, const float *w, int64_t n, float eps);

    /* y[i] += x[i] */
    void (*add)(float *y, const float *x, int64_t n);

    /* Rotate the first n_rot values of each of n_heads heads (hd apart) in
     * place: x[i] = x[i]·cs[i] + x[pair(i)]·sn[i] for i < n_rot, where
     * pair(i) = i^1 (NORM, adjacent pairs) or i ± n_rot/2 (neox, halves).
     * The caller fills cs with the cosines and sn with the signed sines
     * (−sin for the first of a pair, +sin for the second), so with
     * θ_k: NORM cs[2k] = cs[2k+1] = cos θ_k, sn[2k] = −sin θ_k,
     * sn[2k+1] = sin θ_k; neox cs[k] = cs[k+half] = cos θ_k, sn[k] =
     * −sin θ_k, sn[k+half] = sin θ_k. */
    void (*rope)(float *x, int n_heads, int hd, int n_rot, const float *cs, const float *sn,
                 bool neox);

    /* y[i] *= s */
    void (*scale)(float *y, float s, int64_t n);

    /* g[i] = g[i] / (1 + exp(−g[i])) · u[i]   (SiLU(gate) ⊙ up) */
    void (*silu_mul)(float *g, const float *u, int64_t n);

    /* dst[i·n + d] = half src[i·stride + d] as float, for i < rows, d < n
     * (a K or V tile out of the f16 cache). */
    void (*f16_rows)(const uint16_t *src, size_t stride, int rows, int n, float *dst);

    /* st[j·rp + r] = scale · (k_j · q_r) for j < nk, r < R.
     * k: [nk][hd]; qs: the R queries in the layout above. */
    void (*att_qk)(int nk, int hd, const float *k, int R, int rp, const float *qs, float scale,
                   float *st);

    /* Online softmax over one tile.  Row r sees keys j < nv[r] (nv may be
     * <= 0: no key, or >= nk: all).  m_new = max(m, max over visible st);
     * corr[r] = exp(m − m_new) (1 when m == m_new); st[j][r] becomes
     * exp(st − m_new) for visible keys and 0 for the rest; l = l·corr + Σ;
     * m = m_new.  m starts at −INFINITY, l at 0.  Arrays hold R entries
     * (rp for st rows). */
    void (*att_softmax)(int nk, int R, int rp, float *st, const int32_t *nv, float *m, float *l,
                        float *corr);

    /* o_r = o_r · corr[r] + Σ_{j<nk} st[j·rp + r] · v_j  for r < R;
     * v: [nk][hd]; orow[r] points at row r's hd outputs. */
    void (*att_pv)(int nk, int hd, const float *v, int R, int rp, const float *st,
                   const float *corr, float *const *orow);

    /* LayerNorm as ggml_norm then ·w + b: μ = Σx/n, d_i = x_i − μ,
     * σ² = Σd²/n (both sums in double), y_i = d_i·(1/sqrtf(σ² + eps))·w_i
     * + b_i.  b may be NULL (no bias).  y may equal x. */
    void (*layernorm)(float *y, const float *x, const float *w, const float *b, int64_t n,
                      float eps);

    /* x[i] = GELU(x[i]) in the tanh form ggml uses:
     * 0.5·x·(1 + tanh(√(2/π)·x·(1 + 0.044715·x²))).  (ggml's CPU path reads
     * an f16 table; this is the formula in f32.)  The SIMD versions compute
     * the same value as x / (1 + e^(−2u)), which has no cancellation. */
    void (*gelu)(float *x, int64_t n);
} fr_ops;

/* The active table (the twins when the kernels run their twins). */
const fr_ops *fr_ops_get(void);

/* The plain C twins. */
const fr_ops *fr_ops_ref(void);

/* Which instruction set the SIMD table uses ("avx512", "avx2" or "ref"). */
const char *fr_ops_isa(void);

/* Row stride of the score tile and of the transposed queries for R rows. */
static inline int fr_ops_att_rp(int R) {
    return R < FR_ATT_RMIN ? R : (R + 15) & ~15;
}

/* Store the R query rows q[r] (hd floats each) into qs. */
static inline void fr_ops_att_put_q(float *qs, int R, int hd, const float *const *q) {
    if (R < FR_ATT_RMIN) {
        for (int r = 0; r < R; r++)
            for (int d = 0; d < hd; d++) qs[r * hd + d] = q[r][d];
    } else {
        int rp = fr_ops_att_rp(R);
        for (int d = 0; d < hd; d++)
            for (int r = 0; r < R; r++) qs[d * rp + r] = q[r][d];
    }
}

/* Floats of qs for R rows of hd (the caller zeroes them before putting
 * rows, so the transposed padding is zero). */
static inline int64_t fr_ops_att_qs_floats(int R, int hd) {
    return (int64_t)fr_ops_att_rp(R) * hd;
}

#endif
