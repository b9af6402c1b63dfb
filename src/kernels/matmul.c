/*
 * matmul.c — y = W·x over the compute pool (kernels.h: fr_matmul).
 *
 * One run of the pool, two phases:
 *
 * 1. Every thread converts its share of the N activation rows into `work`,
 *    in the weight type's vec_dot_type (Q8_0, Q8_1, Q8_K, F16, BF16).  The
 *    N·(K/blck) blocks are cut into nth contiguous ranges, so even a single
 *    row is shared.  F32 weights skip this and read x directly.  Barrier.
 *
 * 2. The M weight rows are cut into chunks (64 rows for one activation row,
 *    16 otherwise, smaller when that would leave fewer than 4 chunks per
 *    thread).  Thread i starts with chunk i, then takes the next free one
 *    from an atomic counter, so faster threads take more.  Inside a chunk,
 *    activation rows pass in tiles of T_TILE while the chunk's weight rows
 *    (a few KiB each) stay in cache: each weight byte comes from memory
 *    once per call.  For a batch (N > 1), where the ISA has a vec_dot4 for
 *    the type, rows go four at a time so each activation block is loaded
 *    and summed once for four rows, and with a vec_dot4x4 four activation
 *    rows at a time too (each weight block unpacked once for four tokens).
 *    For one activation row (decode) rows go one at a time: the weights
 *    then stream through memory strictly in order, which measured ~1.8×
 *    faster than four interleaved row streams (26 vs 14 GB/s, Q4_0, two
 *    threads), although vec_dot4 wins when the rows sit in cache.  Where
 *    the ISA has a decode GEMV for the type (fr__kernels_gemv: Q4_0, Q8_0,
 *    Q4_K, Q6_K, F16 on AVX-512) and N is small (below GEMV_MAX_N: the
 *    decode step of a few sequences batched together), phase 1 instead
 *    prepares each activation row in the GEMV's own layout (blocks shared
 *    by the threads) and each chunk is one call of its `rows` per
 *    activation row: the first streams the chunk's weights from memory,
 *    the others find them in L2, so N sequences cost little more than one,
 *    and each row's result is exactly what N = 1 gives (the same kernel
 *    on the same prepared row): batching does not change the answers.
 *    Chunks hold a multiple of 4 rows, so which kernel computes which
 *    output depends only on (M, N), never on the thread count: y is
 *    reproducible.
 *
 * Larger batches (N ≥ GEMV_MAX_N) with Q4_0, Q8_0, Q4_K or Q6_K weights,
 * when the AVX-512 table is active, take the tiled int8 GEMM instead
 * (x86/gemm_avx512.c; see "batches on AVX-512 VNNI" below): phase 1 converts
 * into the GEMM's token tiles, phase 2 hands out panels of 16 rows.
 *
 * Nothing is allocated: the context lives on the caller's stack and the
 * converted activations go into the caller's `work` (the GEMM adds a
 * ~20 KiB stack buffer per thread for its unpacked weight panel).
 */
#include <stdatomic.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "kernels/kernels.h"
#include "kernels/kernels_int.h"

#define CHUNK_GEMV 64   /* weight rows per chunk when N == 1 */
#define CHUNK_GEMM 16   /* weight rows per chunk when N > 1 */
#define T_TILE     16   /* activation rows per tile inside a chunk */
/* Below this many rows the decode GEMV runs per row rather than the tiled
 * GEMM (measured, Q4_0 and Q8_0 2048×5632, 2 threads: one row at a time it
 * wins up to 6 rows; with rows4, four at a time, up to 8). */
#define GEMV_MAX_N   7
#define GEMV4_MAX_N  9

typedef struct mm_ctx {
    const fr_type_ops *wops;   /* weight type */
    const fr_type_ops *aops;   /* vec_dot_type (activations) */
    fr__vec_dot4_fn dot4;      /* four rows at once, or NULL */
    fr__vec_dot4x4_fn dot4x4;  /* four rows × four activations, or NULL */
    const fr__gemv *gemv;      /* N < GEMV_MAX_N on prepared activations, or NULL */
    size_t prep;               /* bytes of one prepared activation row (64-aligned) */
    const unsigned char *W;    /* [M][wrow bytes] */
    size_t wrow;
    const float *x;            /* [N][K] */
    const unsigned char *act;  /* [N][arow bytes]: converted x (or x itself) */
    unsigned char *work;       /* the same bytes, for phase 1 */
    size_t arow;
    int64_t K, M, N, ldy;
    int64_t ablk;              /* elements per activation block */
    int64_t chunk, n_chunks;
    float *y;                  /* [N][ldy] */
    fr_pool *pool;
    bool convert;
    _Alignas(64) atomic_llong next_chunk;
} mm_ctx;

/* Bytes of one activation row prepared for gemv, rounded up to 64. */
static size_t prep_bytes(const fr__gemv *gemv, int64_t K) {
    return (gemv->size(K) + 63) & ~(size_t)63;
}

static bool use_gemv(const fr__gemv *gemv, int64_t N) {
    return gemv && N < (gemv->rows4 ? GEMV4_MAX_N : GEMV_MAX_N);
}

/* This thread's share of preparing N rows of x for gemv into work (row t
 * at t·prep): the N·K/blck blocks cut into nth ranges. */
static void prepare_rows(const fr__gemv *gemv, const float *x, int64_t K, int64_t N,
                         unsigned char *work, size_t prep, int ith, int nth) {
    const int64_t nb = K / gemv->blck, total = nb * N;
    for (int64_t i = total * ith / nth, end = total * (ith + 1) / nth; i < end;) {
        const int64_t t = i / nb, b = i % nb;
        const int64_t e = end - i < nb - b ? b + (end - i) : nb;
        gemv->prepare(x + t * K, K, b, e, work + (size_t)t * prep);
        i += e - b;
    }
}

/* Rows [r0, r1) of W against the N prepared rows: four at a time where
 * the GEMV has rows4 (each weight block unpacked once for four), else one
 * by one (the chunk's weights then come from L2 after the first). */
static void gemv_chunk(const fr__gemv *gemv, int64_t K, const unsigned char *W, size_t wrow, int64_t r0,
                       int64_t r1, const unsigned char *work, size_t prep, int64_t N, float *y, int64_t ldy) {
    int64_t t = 0;
    if (gemv->rows4 && N > 1)
        for (; t < N; t += 4) {
            const int na = N - t < 4 ? (int)(N - t) : 4;
            const void *p[4];
            float *out[4];
            for (int i = 0; i < na; i++) {
                p[i] = work + (size_t)(t + i) * prep;
                out[i] = y + (t + i) * ldy + r0;
            }
            gemv->rows4(K, W + (size_t)r0 * wrow, wrow, r1 - r0, p, na, out);
        }
    for (; t < N; t++)
        gemv->rows(K, W + (size_t)r0 * wrow, wrow, r1 - r0, work + (size_t)t * prep, y + t * ldy + r0);
}

static void convert_share(mm_ctx *c, int ith, int nth) {
    if (c->gemv) { /* rows prepared for the GEMV: their blocks shared by the threads */
        prepare_rows(c->gemv, c->x, c->K, c->N, c->work, c->prep, ith, nth);
        return;
    }
    const int64_t nb = c->K / c->ablk, total = nb * c->N;
    const int64_t start = total * ith / nth, end = total * (ith + 1) / nth;
    const size_t bbytes = c->arow / (size_t)nb;
    for (int64_t i = start; i < end;) {
        const int64_t t = i / nb, b = i % nb;
        int64_t cnt = nb - b;
        if (cnt > end - i) cnt = end - i;
        c->aops->quantize(c->x + t * c->K + b * c->ablk,
                          c->work + (size_t)t * c->arow + (size_t)b * bbytes, cnt * c->ablk);
        i += cnt;
    }
}

static void do_chunk(const mm_ctx *c, int64_t ch) {
    const fr_vec_dot_fn dot = c->wops->vec_dot;
    const int64_t r0 = ch * c->chunk;
    const int64_t r1 = r0 + c->chunk < c->M ? r0 + c->chunk : c->M;
    if (c->gemv) {
        gemv_chunk(c->gemv, c->K, c->W, c->wrow, r0, r1, c->work, c->prep, c->N, c->y, c->ldy);
        return;
    }
    for (int64_t t0 = 0; t0 < c->N; t0 += T_TILE) {
        const int64_t t1 = t0 + T_TILE < c->N ? t0 + T_TILE : c->N;
        int64_t r = r0;
        if (c->dot4 || c->dot4x4) /* four rows per pass share each activation block */
            for (; r + 4 <= r1; r += 4) {
                const void *w = c->W + (size_t)r * c->wrow;
                int64_t t = t0;
                if (c->dot4x4) /* and four activations share each weight block */
                    for (; t + 4 <= t1; t += 4) {
                        float out[16];
                        c->dot4x4(c->K, w, c->wrow, c->act + (size_t)t * c->arow, c->arow, out);
                        for (int k = 0; k < 4; k++) memcpy(c->y + (t + k) * c->ldy + r, out + 4 * k, 16);
                    }
                for (; t < t1; t++) {
                    const unsigned char *act = c->act + (size_t)t * c->arow;
                    if (c->dot4) {
                        float out[4];
                        c->dot4(c->K, w, c->wrow, act, out);
                        memcpy(c->y + t * c->ldy + r, out, sizeof out);
                    } else {
                        for (int k = 0; k < 4; k++)
                            c->y[t * c->ldy + r + k] = dot(c->K, (const unsigned char *)w + k * c->wrow, act);
                    }
                }
            }
        for (; r < r1; r++) {
            const void *w = c->W + (size_t)r * c->wrow;
            for (int64_t t = t0; t < t1; t++)
                c->y[t * c->ldy + r] = dot(c->K, w, c->act + (size_t)t * c->arow);
        }
    }
}

static void matmul_task(void *arg, int ith, int nth) {
    mm_ctx *c = arg;
    if (c->convert) {
        convert_share(c, ith, nth);
        fr_pool_barrier(c->pool);
    }
    for (int64_t ch = ith; ch < c->n_chunks;
         ch = atomic_fetch_add_explicit(&c->next_chunk, 1, memory_order_relaxed))
        do_chunk(c, ch);
}

/* ---- batches on AVX-512 VNNI: the tiled int8 GEMM (x86/gemm_avx512.c) ----
 *
 * One pool run: every thread converts its share of the activations into
 * the GEMM's token tiles, barrier, then threads take panels of 16 weight
 * rows from an atomic counter (thread i starts with panel i).  Each panel
 * reads its weight rows once and runs them against every token. */

#define GEMM_MIN_N 4   /* fewer rows: packing a panel costs more than it saves
                          (types with a decode GEMV take it below GEMV_MAX_N) */

typedef struct gemm_ctx {
    fr__gemm g;
    const fr__gemm_ops *ops;
    const float *x;
    fr_pool *pool;
    int64_t n_panels;
    _Alignas(64) atomic_llong next;
} gemm_ctx;

static bool gemm_type(int wtype) {
    return wtype == FR_TYPE_Q4_0 || wtype == FR_TYPE_Q8_0 || wtype == FR_TYPE_Q4_K || wtype == FR_TYPE_Q6_K;
}

/* Bytes of the GEMM's activation tiles (kernels_int.h), 0 on overflow. */
static size_t gemm_act_size(int wtype, int64_t K, int64_t N) {
    const bool b32 = wtype == FR_TYPE_Q4_0 || wtype == FR_TYPE_Q8_0;
    const size_t tiles = (size_t)((N + FR__GEMM_TT - 1) / FR__GEMM_TT);
    const size_t groups = (size_t)(K / (b32 ? 32 : 256));
    size_t a, b;
    if (!fr_mul_ok(tiles, groups, &a) || !fr_mul_ok(a, b32 ? FR__GEMM_REC32 : FR__GEMM_REC256, &b)) return 0;
    return b;
}

static void gemm_task(void *arg, int ith, int nth) {
    gemm_ctx *c = arg;
    c->ops->convert(&c->g, c->x, ith, nth);
    fr_pool_barrier(c->pool);
    for (int64_t p = ith; p < c->n_panels; p = atomic_fetch_add_explicit(&c->next, 1, memory_order_relaxed))
        c->ops->panel(&c->g, p);
}

/* Whether the call suits the GEMM.  fr_matmul_work_size sizes `work` for
 * it whichever table is active; fr_matmul takes it when the active level
 * has one (fr__kernels_gemm: on x86 the AVX-512 level, which kernels.c
 * installs only on CPUs with AVX-512 F/BW/VL and VNNI, which
 * x86/gemm_avx512.c needs). */
static bool gemm_use(int wtype, int64_t N) {
    return N >= GEMM_MIN_N && gemm_type(wtype) && !use_gemv(fr__kernels_gemv(wtype), N);
}

static void gemm_run(const fr__gemm_ops *ops, fr_pool *pool, int wtype, const void *W, size_t wrow, int64_t K,
                     int64_t M, const float *x, int64_t N, float *y, int64_t ldy, void *work,
                     fr_quantize_fn quantize) {
    gemm_ctx c = {
        .ops = ops,
        .g = {.wtype = wtype, .W = W, .wrow = wrow, .K = K, .M = M, .N = N, .quantize = quantize,
              .act = work, .y = y, .ldy = ldy},
        .x = x, .pool = pool, .n_panels = (M + FR__GEMM_ROWS - 1) / FR__GEMM_ROWS,
    };
    atomic_init(&c.next, fr_pool_size(pool));
    fr_pool_run(pool, gemm_task, &c);
}

size_t fr_matmul_work_size(int wtype, int64_t K, int64_t N) {
    const fr_type_ops *ops = fr_kernels_get(wtype);
    if (!ops || ops->vec_dot_type == FR_TYPE_F32 || K <= 0 || N <= 0) return 0;
    size_t row, total;
    if (!fr_type_row_size(ops->vec_dot_type, K, &row) || !fr_mul_ok(row, (size_t)N, &total))
        return 0;
    /* whichever table is active; and a buffer sized for N must serve any
     * smaller batch too, so the GEMV rows count up to the most it takes */
    const fr__gemv *gemv = fr__kernels_gemv_best(wtype);
    const int64_t gmax = gemv && gemv->rows4 ? GEMV4_MAX_N - 1 : GEMV_MAX_N - 1;
    const int64_t gn = N < gmax ? N : gmax;
    if (gemv && prep_bytes(gemv, K) * (size_t)gn > total) total = prep_bytes(gemv, K) * (size_t)gn;
    if (N >= GEMM_MIN_N && gemm_type(wtype)) { /* whichever table is active when fr_matmul runs */
        const size_t g = gemm_act_size(wtype, K, N);
        if (!g) return 0;
        if (g > total) total = g;
    }
    return total;
}

void fr_matmul(fr_pool *pool, int wtype, const void *W, int64_t K, int64_t M,
               const float *x, int64_t N, float *y, int64_t ldy, void *work) {
    if (M <= 0 || N <= 0) return;
    const fr_type_ops *wops = fr_kernels_get(wtype);
    FR_ASSERT(wops && wops->vec_dot);
    const fr_type_ops *aops = fr_kernels_get(wops->vec_dot_type);
    FR_ASSERT(aops && aops->quantize);
    mm_ctx c = {
        .wops = wops, .aops = aops, .dot4 = N > 1 ? fr__kernels_dot4(wtype) : NULL,
        .dot4x4 = fr__kernels_dot4x4(wtype), .gemv = fr__kernels_gemv(wtype),
        .W = W, .x = x, .K = K, .M = M, .N = N,
        .ldy = ldy, .y = y, .pool = pool,
        .ablk = fr_type_get(wops->vec_dot_type)->blck,
    };
    FR_ASSERT(ldy >= M && K % fr_type_get(wtype)->blck == 0 && K % c.ablk == 0);
    FR_ASSERT(fr_type_row_size(wtype, K, &c.wrow));
    FR_ASSERT(fr_type_row_size(wops->vec_dot_type, K, &c.arow));
    if (!use_gemv(c.gemv, N)) c.gemv = NULL;
    else c.prep = prep_bytes(c.gemv, K);
    const fr__gemm_ops *gemm = fr__kernels_gemm();
    if (gemm && gemm_use(wtype, N)) {
        FR_ASSERT(work);
        gemm_run(gemm, pool, wtype, W, c.wrow, K, M, x, N, y, ldy, work, aops->quantize);
        return;
    }
    c.convert = wops->vec_dot_type != FR_TYPE_F32;
    c.work = work;
    c.act = c.convert ? (const unsigned char *)work : (const unsigned char *)x;
    FR_ASSERT(!c.convert || work);

    const int nth = fr_pool_size(pool);
    /* chunks are multiples of 4 rows, so the 4-row groups (and with them
     * which kernel computes which row) do not depend on the thread count */
    c.chunk = c.gemv || N == 1 ? CHUNK_GEMV : CHUNK_GEMM;
    if ((M + c.chunk - 1) / c.chunk < 4 * nth) {
        c.chunk = M / (4 * nth) & ~(int64_t)3;
        if (c.chunk < 4) c.chunk = 4;
    }
    c.n_chunks = (M + c.chunk - 1) / c.chunk;
    atomic_init(&c.next_chunk, nth);
    fr_pool_run(pool, matmul_task, &c);
}

/* ---- several matrices on one input: y_i = W_i·x (decode) ----
 *
 * The Q, K and V projections (and gate and up) read the same normed
 * input.  When the GEMV path applies (a decode GEMV for the type, N below
 * GEMV_MAX_N), one pool run prepares the rows once and hands out chunks of
 * all the matrices' rows from one counter: one wake-up and one barrier
 * instead of one per matrix, and no thread idles at the end of a small
 * matrix.  Anything else runs fr_matmul per matrix. */

#define MULTI_MAX 4

typedef struct mm_multi {
    const fr__gemv *gemv;
    const float *x;
    unsigned char *work;
    size_t prep;
    int64_t K, N;
    size_t wrow;
    int n;
    fr_mm_part part[MULTI_MAX];
    int64_t chunk;
    int64_t first[MULTI_MAX + 1];   /* first chunk of each part; first[n] = total */
    fr_pool *pool;
    _Alignas(64) atomic_llong next_chunk;
} mm_multi;

static void multi_task(void *arg, int ith, int nth) {
    mm_multi *c = arg;
    prepare_rows(c->gemv, c->x, c->K, c->N, c->work, c->prep, ith, nth);
    fr_pool_barrier(c->pool);
    int p = 0;
    for (int64_t ch = ith; ch < c->first[c->n];
         ch = atomic_fetch_add_explicit(&c->next_chunk, 1, memory_order_relaxed)) {
        while (ch >= c->first[p + 1]) p++;
        while (p > 0 && ch < c->first[p]) p--;
        const fr_mm_part *pt = &c->part[p];
        const int64_t r0 = (ch - c->first[p]) * c->chunk;
        const int64_t r1 = r0 + c->chunk < pt->M ? r0 + c->chunk : pt->M;
        gemv_chunk(c->gemv, c->K, pt->W, c->wrow, r0, r1, c->work, c->prep, c->N, pt->y, pt->M);
    }
}

void fr_matmul_multi(fr_pool *pool, int wtype, int64_t K, const fr_mm_part *parts, int n_parts,
                     const float *x, int64_t N, void *work) {
    const fr__gemv *gemv = fr__kernels_gemv(wtype);
    if (!use_gemv(gemv, N) || n_parts > MULTI_MAX) {
        for (int i = 0; i < n_parts; i++)
            fr_matmul(pool, wtype, parts[i].W, K, parts[i].M, x, N, parts[i].y, parts[i].M, work);
        return;
    }
    mm_multi c = {.gemv = gemv, .x = x, .work = work, .prep = prep_bytes(gemv, K), .K = K, .N = N,
                  .n = n_parts, .pool = pool};
    FR_ASSERT(fr_type_row_size(wtype, K, &c.wrow) && K % gemv->blck == 0 && work);
    const int nth = fr_pool_size(pool);
    int64_t rows = 0;
    for (int i = 0; i < n_parts; i++) {
        c.part[i] = parts[i];
        rows += parts[i].M;
    }
    c.chunk = CHUNK_GEMV;
    if ((rows + c.chunk - 1) / c.chunk < 4 * nth) {
        c.chunk = rows / (4 * nth) & ~(int64_t)3;
        if (c.chunk < 4) c.chunk = 4;
    }
    c.first[0] = 0;
    for (int i = 0; i < n_parts; i++) c.first[i + 1] = c.first[i] + (parts[i].M + c.chunk - 1) / c.chunk;
    atomic_init(&c.next_chunk, nth);
    fr_pool_run(pool, multi_task, &c);
}
