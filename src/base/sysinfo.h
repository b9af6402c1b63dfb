/*
 * sysinfo.h — what the machine is: CPU features, core counts, memory, time,
 * and how much memory is left (meminfo, cgroup v2, PSI).
 *
 * The memory sources (fr_mem_status_read, fr_cgroup_limit, fr_mem_limit)
 * read their files under a root prefix taken from the environment variable
 * FRUGAL_SYSROOT (default ""), looked up at every call, so that tests can
 * point them at a directory of fake files:
 *   $FRUGAL_SYSROOT/proc/meminfo
 *   $FRUGAL_SYSROOT/proc/self/cgroup              (the "0::/path" line)
 *   $FRUGAL_SYSROOT/sys/fs/cgroup/<path>/memory.{max,current,events}
 *   $FRUGAL_SYSROOT/proc/pressure/memory
 * Missing files are normal (no cgroup v2, a kernel without PSI): the
 * fields say unknown instead of the call failing.
 */
#ifndef FR_BASE_SYSINFO_H
#define FR_BASE_SYSINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fr_cpu_features {
    /* x86-64 */
    bool avx, avx2, fma, f16c;
    bool avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16;
    bool avxvnni;
    /* aarch64: Advanced SIMD (HWCAP_ASIMD), SDOT/UDOT (HWCAP_ASIMDDP),
     * half-precision arithmetic (HWCAP_FPHP and HWCAP_ASIMDHP), SMMLA
     * (HWCAP2_I8MM) */
    bool neon, dotprod, fp16, i8mm;
} fr_cpu_features;

/* The CPU's features, read once with cpuid (and xgetbv for OS support) on
 * x86-64, from getauxval(AT_HWCAP/AT_HWCAP2) on aarch64 (the kernel's
 * word: under qemu-user, the emulated -cpu model's).  Fields of the other
 * architecture stay false.  Thread-safe after the first call. */
const fr_cpu_features *fr_cpu(void);

/* Sets f's aarch64 fields from the AT_HWCAP and AT_HWCAP2 words (pure bit
 * arithmetic, on every architecture, so tests can give it made-up words). */
void fr__cpu_from_hwcap(fr_cpu_features *f, unsigned long hwcap, unsigned long hwcap2);

/* Physical cores (SMT siblings counted once); at least 1. */
int fr_physical_cores(void);

/* One reading of the memory sources.  Bytes; 0 or -1 mean unknown as
 * each field says. */
typedef struct fr_mem_status {
    bool meminfo;               /* /proc/meminfo was read */
    uint64_t total;             /* MemTotal; 0 = unknown */
    uint64_t available;         /* MemAvailable (on kernels without it:
                                   MemFree + Buffers + Cached) */
    bool cgroup;                /* the process's cgroup v2 directory was found */
    uint64_t cgroup_limit;      /* the tightest memory.max from the process's
                                   cgroup up to the root; 0 = no limit */
    uint64_t cgroup_current;    /* memory.current of the cgroup that sets
                                   that limit (the process's own if none) */
    int64_t cgroup_oom;         /* memory.events "oom" of the process's
                                   cgroup; -1 = unknown */
    int64_t cgroup_oom_kill;    /* memory.events "oom_kill"; -1 = unknown */
    bool psi;                   /* /proc/pressure/memory was read */
    double psi_some_avg10, psi_some_avg60;  /* percent of time; -1 = unknown */
    double psi_full_avg10, psi_full_avg60;
} fr_mem_status;

/* Read meminfo, the cgroup and PSI now (a handful of small files; no
 * heap).  Returns 0: what cannot be read is left unknown.  Thread-safe
 * (but FRUGAL_SYSROOT must not be changed while another thread reads). */
int fr_mem_status_read(fr_mem_status *out);

/* The cgroup v2 memory limit of this process (the tightest memory.max on
 * its path), 0 when there is none or no cgroup v2. */
uint64_t fr_cgroup_limit(void);

/* The memory this process may use: min(MemTotal, cgroup limit), both under
 * FRUGAL_SYSROOT; when MemTotal is unknown, the physical pages sysconf
 * reports; 0 only if even that fails.  The manager's default budget is 75%
 * of it. */
uint64_t fr_mem_limit(void);

/* The page size (sysconf(_SC_PAGESIZE): 4 KiB on x86-64, 16 KiB on a Pi 5
 * kernel, 64 KiB on some arm64 ones; 4096 only if sysconf fails).  Nothing
 * may assume 4 KiB: page arithmetic takes this value (mincore below: the
 * GGUF mapping starts at file offset 0 and needs no rounding). */
size_t fr_page_size(void);

/* fr_resident_bytes for pages of ps bytes with mincore_fn in place of
 * mincore(2) (which it calls with ps-aligned addresses, lengths that are
 * multiples of ps and at most 4096 pages at once): tests give it other
 * page sizes and made-up residency.  0 for a ps that is not a power of two. */
uint64_t fr__resident_bytes_ps(const void *addr, size_t len, size_t ps,
                               int (*mincore_fn)(void *, size_t, unsigned char *));

/* Bytes of [addr, addr + len) whose pages are resident now (mincore(2),
 * page by page, in chunks: no allocation).  Partial first and last pages
 * count only their part inside the range.  Parts of the range that are
 * not mapped count as 0.  Thread-safe. */
uint64_t fr_resident_bytes(const void *addr, size_t len);

/* Monotonic clock in nanoseconds / seconds. */
uint64_t fr_now_ns(void);
double   fr_now_s(void);

/* Peak resident set size of this process in bytes (VmHWM), 0 if unknown. */
uint64_t fr_rss_peak(void);

#endif
