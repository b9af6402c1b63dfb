/*
 * membw.c — the read-bandwidth probe behind `frugal bench --membw`.
 *
 * Each thread sums 64-bit words of its own contiguous slice, with eight
 * independent accumulators so the loop is limited by loads, not by the
 * add chain; the AVX2 variant (chosen at run time) reads 256 bits a load.
 * The sums are kept so the compiler cannot drop the reads.
 */
#include "kernels/membw.h"

#include <stdint.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/sysinfo.h"

#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint64_t *p, size_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(p + i + 4)));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(p + i + 8)));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(p + i + 12)));
    }
    a0 = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    uint64_t out[4];
    _mm256_storeu_si256((__m256i *)out, a0);
    uint64_t s = out[0] ^ out[1] ^ out[2] ^ out[3];
    for (; i < n; i++) s ^= p[i];
    return s;
}
#endif

static uint64_t sum_plain(const uint64_t *p, size_t n) {
    uint64_t s[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] ^= p[i + k];
    for (; i < n; i++) s[0] ^= p[i];
    return s[0] ^ s[1] ^ s[2] ^ s[3] ^ s[4] ^ s[5] ^ s[6] ^ s[7];
}

typedef struct membw_job {
    const uint64_t *buf;
    size_t words;
    uint64_t sums[64][8]; /* one cache line per thread */
} membw_job;

static void membw_task(void *ctx, int ith, int nth) {
    membw_job *j = ctx;
    size_t per = (j->words / (size_t)nth) & ~(size_t)15;
    size_t start = per * (size_t)ith, n = ith == nth - 1 ? j->words - start : per;
#if defined(__x86_64__)
    uint64_t s = fr_cpu()->avx2 ? sum_avx2(j->buf + start, n) : sum_plain(j->buf + start, n);
#else
    uint64_t s = sum_plain(j->buf + start, n);
#endif
    j->sums[ith & 63][0] = s;
}

double fr_membw_read(fr_pool *pool, size_t bytes, int reps) {
    membw_job *j = fr_calloc(1, sizeof *j);
    uint64_t *buf = fr_malloc_aligned(bytes);
    if (!j || !buf) {
        fr_free(j);
        fr_free_aligned(buf);
        return FR_ENOMEM;
    }
    memset(buf, 0x5a, bytes); /* fault every page in before timing */
    j->buf = buf;
    j->words = bytes / sizeof(uint64_t);
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = fr_now_s();
        fr_pool_run(pool, membw_task, j);
        double dt = fr_now_s() - t0;
        if (dt > 0 && (double)bytes / dt > best) best = (double)bytes / dt;
    }
    fr_free_aligned(buf);
    fr_free(j);
    return best;
}
