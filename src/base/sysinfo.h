/*
 * sysinfo.h — what the machine is: CPU features, core counts, memory, time.
 */
#ifndef FR_BASE_SYSINFO_H
#define FR_BASE_SYSINFO_H

#include <stdbool.h>
#include <stdint.h>

typedef struct fr_cpu_features {
    bool avx, avx2, fma, f16c;
    bool avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16;
    bool avxvnni;
} fr_cpu_features;

/* The CPU's features, read once with cpuid (and xgetbv for OS support).
 * Thread-safe after the first call. */
const fr_cpu_features *fr_cpu(void);

/* Physical cores (SMT siblings counted once); at least 1. */
int fr_physical_cores(void);

/* Total physical memory in bytes (MemTotal), 0 if unknown. */
uint64_t fr_mem_total(void);

/* Monotonic clock in nanoseconds / seconds. */
uint64_t fr_now_ns(void);
double   fr_now_s(void);

/* Peak resident set size of this process in bytes (VmHWM), 0 if unknown. */
uint64_t fr_rss_peak(void);
/* Current resident set size (VmRSS). */
uint64_t fr_rss_now(void);

#endif
