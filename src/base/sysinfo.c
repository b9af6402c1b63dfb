/* sysinfo.c — cpuid, /proc and /sys readers. */
#include "base/sysinfo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
static uint64_t xgetbv0(void) {
    uint32_t a, d;
    __asm__ volatile("xgetbv" : "=a"(a), "=d"(d) : "c"(0));
    return ((uint64_t)d << 32) | a;
}
#endif

static fr_cpu_features features;
static int features_done;

const fr_cpu_features *fr_cpu(void) {
    if (features_done) return &features;
    fr_cpu_features f = {0};
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        bool osxsave = c & (1u << 27);
        uint64_t xcr0 = osxsave ? xgetbv0() : 0;
        bool ymm = (xcr0 & 6) == 6, zmm = (xcr0 & 0xe6) == 0xe6;
        f.avx = ymm && (c & (1u << 28));
        f.fma = f.avx && (c & (1u << 12));
        f.f16c = f.avx && (c & (1u << 29));
        if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
            f.avx2 = f.avx && (b & (1u << 5));
            f.avx512f = zmm && (b & (1u << 16));
            f.avx512bw = f.avx512f && (b & (1u << 30));
            f.avx512vl = f.avx512f && (b & (1u << 31));
            f.avx512vnni = f.avx512f && (c & (1u << 11));
        }
        if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
            f.avxvnni = f.avx2 && (a & (1u << 4));
            f.avx512bf16 = f.avx512f && (a & (1u << 5));
        }
    }
#endif
    features = f;
    features_done = 1;
    return &features;
}

int fr_physical_cores(void) {
    /* count distinct (physical id, core id) pairs in /proc/cpuinfo */
    FILE *fp = fopen("/proc/cpuinfo", "r");
    int n = 0;
    if (fp) {
        char line[256];
        int phys = 0, seen[1024][2], nseen = 0;
        while (fgets(line, sizeof line, fp)) {
            int v;
            if (sscanf(line, "physical id : %d", &v) == 1) phys = v;
            else if (sscanf(line, "core id : %d", &v) == 1) {
                int dup = 0;
                for (int i = 0; i < nseen; i++)
                    if (seen[i][0] == phys && seen[i][1] == v) dup = 1;
                if (!dup && nseen < 1024) { seen[nseen][0] = phys; seen[nseen][1] = v; nseen++; }
            }
        }
        fclose(fp);
        n = nseen;
    }
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    return n;
}

static uint64_t read_kb(const char *path, const char *key) {
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    char line[256];
    size_t kl = strlen(key);
    uint64_t v = 0;
    while (fgets(line, sizeof line, fp)) {
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            v = strtoull(line + kl + 1, NULL, 10) * 1024;
            break;
        }
    }
    fclose(fp);
    return v;
}

uint64_t fr_mem_total(void) { return read_kb("/proc/meminfo", "MemTotal"); }
uint64_t fr_rss_peak(void) { return read_kb("/proc/self/status", "VmHWM"); }
uint64_t fr_rss_now(void) { return read_kb("/proc/self/status", "VmRSS"); }

uint64_t fr_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double fr_now_s(void) { return (double)fr_now_ns() * 1e-9; }
