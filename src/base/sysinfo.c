/*
 * sysinfo.c — cpuid, /proc and /sys readers.
 *
 * The memory sources (fr_mem_status_read and friends) read small text
 * files under $FRUGAL_SYSROOT with open/read into stack buffers: no heap,
 * no stdio, nothing kept between calls.  Formats (as the kernel writes
 * them, Documentation/filesystems/proc.rst, admin-guide/cgroup-v2.rst,
 * accounting/psi.rst):
 *
 *   /proc/meminfo            "MemTotal:       24684084 kB"  one key per line
 *   /proc/self/cgroup        "0::/user.slice/session-2.scope"  (v2 line;
 *                            v1 controllers add "N:name:/path" lines)
 *   memory.max               "max" or a byte count
 *   memory.current           a byte count
 *   memory.events            "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n..."
 *   /proc/pressure/memory    "some avg10=0.00 avg60=0.00 avg300=0.00 total=0"
 *                            "full avg10=0.00 avg60=0.00 avg300=0.00 total=0"
 *
 * The cgroup limit is the tightest memory.max from the process's cgroup
 * up to the root of the mount, since any ancestor's limit binds too.  When
 * the path from /proc/self/cgroup does not exist under /sys/fs/cgroup (a
 * container that mounts its own cgroup at /sys/fs/cgroup without a cgroup
 * namespace), the mount's root directory is the process's cgroup.
 */
#include "base/sysinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
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

#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

/* The bits of <asm/hwcap.h> (arch/arm64/include/uapi/asm/hwcap.h), spelled
 * out so that older headers build too. */
#define FR_HWCAP_FPHP    (1ul << 9)
#define FR_HWCAP_ASIMDHP (1ul << 10)
#define FR_HWCAP_ASIMD   (1ul << 1)
#define FR_HWCAP_ASIMDDP (1ul << 20)
#define FR_HWCAP2_I8MM   (1ul << 13)

void fr__cpu_from_hwcap(fr_cpu_features *f, unsigned long hwcap, unsigned long hwcap2) {
    f->neon = hwcap & FR_HWCAP_ASIMD;
    f->dotprod = f->neon && (hwcap & FR_HWCAP_ASIMDDP);
    f->fp16 = f->neon && (hwcap & FR_HWCAP_FPHP) && (hwcap & FR_HWCAP_ASIMDHP);
    f->i8mm = f->neon && (hwcap2 & FR_HWCAP2_I8MM);
}

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
#elif defined(__aarch64__)
    fr__cpu_from_hwcap(&f, getauxval(AT_HWCAP), getauxval(AT_HWCAP2));
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

uint64_t fr_rss_peak(void) { return read_kb("/proc/self/status", "VmHWM"); }

uint64_t fr_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double fr_now_s(void) { return (double)fr_now_ns() * 1e-9; }

/* ---- memory sources (FRUGAL_SYSROOT) ---- */

#define SYS_PATH_MAX 1024    /* sysroot + a cgroup path (k8s paths are ~200) */

static const char *sysroot(void) {
    const char *r = getenv("FRUGAL_SYSROOT");
    return r ? r : "";
}

/* root + formatted path into buf; false if it does not fit. */
static bool sys_path(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool sys_path(char *buf, size_t cap, const char *fmt, ...) {
    int n = snprintf(buf, cap, "%s", sysroot());
    if (n < 0 || (size_t)n >= cap) return false;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, cap - (size_t)n, fmt, ap);
    va_end(ap);
    return m >= 0 && (size_t)m < cap - (size_t)n;
}

/* Read up to cap-1 bytes of a small file, NUL-terminated.  False if the
 * file cannot be opened or read. */
static bool read_small(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    size_t len = 0;
    while (len < cap - 1) {
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { close(fd); return false; }
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = 0;
    return true;
}

/* The value of "key:" in a meminfo text (kB → bytes); false if absent. */
static bool meminfo_key(const char *text, const char *key, uint64_t *out) {
    size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, key, kl) || p[kl] != ':') continue;
        char *end;
        unsigned long long v = strtoull(p + kl + 1, &end, 10);
        if (end == p + kl + 1) return false;
        *out = (uint64_t)v * 1024;
        return true;
    }
    return false;
}

/* A cgroup value file: a byte count, or "max" (*out = 0, no limit). */
static bool read_cg_value(const char *dir, const char *file, uint64_t *out) {
    char path[SYS_PATH_MAX], buf[64];
    int n = snprintf(path, sizeof path, "%s/%s", dir, file);
    if (n < 0 || (size_t)n >= sizeof path || !read_small(path, buf, sizeof buf)) return false;
    if (!strncmp(buf, "max", 3)) { *out = 0; return true; }
    char *end;
    unsigned long long v = strtoull(buf, &end, 10);
    if (end == buf) return false;
    *out = (uint64_t)v;
    return true;
}

/* "key N" in a memory.events text; -1 if absent. */
static int64_t events_key(const char *text, const char *key) {
    size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, key, kl) || p[kl] != ' ') continue;
        char *end;
        long long v = strtoll(p + kl + 1, &end, 10);
        return end == p + kl + 1 ? -1 : (int64_t)v;
    }
    return -1;
}

/* avg10/avg60 from the PSI line starting with kind ("some", "full"). */
static void psi_line(const char *text, const char *kind, double *avg10, double *avg60) {
    size_t kl = strlen(kind);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, kind, kl) || p[kl] != ' ') continue;
        const char *a = strstr(p, "avg10="), *b = strstr(p, "avg60=");
        const char *eol = strchr(p, '\n');
        if (a && (!eol || a < eol)) *avg10 = strtod(a + 6, NULL);
        if (b && (!eol || b < eol)) *avg60 = strtod(b + 6, NULL);
        return;
    }
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void read_cgroup(fr_mem_status *st) {
    char buf[4096], base[SYS_PATH_MAX], dir[SYS_PATH_MAX];
    if (!sys_path(base, sizeof base, "/proc/self/cgroup") || !read_small(base, buf, sizeof buf))
        return;
    const char *rel = NULL;
    for (char *p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, "0::", 3)) { rel = p + 3; break; }
    if (!rel || *rel != '/') return;
    size_t rl = strcspn(rel, "\n");
    if (!sys_path(base, sizeof base, "/sys/fs/cgroup")) return;
    size_t bl = strlen(base);
    /* dir = base + rel without a trailing slash ("0::/" is the root) */
    while (rl > 0 && rel[rl - 1] == '/') rl--;
    if (bl + rl >= sizeof dir) return;
    memcpy(dir, base, bl);
    memcpy(dir + bl, rel, rl);
    dir[bl + rl] = 0;
    if (!is_dir(dir)) {
        memcpy(dir, base, bl + 1);
        rl = 0;
    }
    uint64_t leaf_current;
    if (!read_cg_value(dir, "memory.current", &leaf_current)) return;
    st->cgroup = true;
    st->cgroup_current = leaf_current;
    char ev[1024], path[SYS_PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/memory.events", dir);
    if (n > 0 && (size_t)n < sizeof path && read_small(path, ev, sizeof ev)) {
        st->cgroup_oom = events_key(ev, "oom");
        st->cgroup_oom_kill = events_key(ev, "oom_kill");
    }
    /* walk up to the mount root: the tightest limit binds */
    for (;;) {
        uint64_t max, cur;
        if (read_cg_value(dir, "memory.max", &max) && max > 0 &&
            (st->cgroup_limit == 0 || max < st->cgroup_limit)) {
            st->cgroup_limit = max;
            st->cgroup_current = read_cg_value(dir, "memory.current", &cur) ? cur : leaf_current;
        }
        size_t len = strlen(dir);
        if (len <= bl) break;
        char *slash = strrchr(dir + bl, '/');
        if (!slash) break;
        *slash = 0;
    }
}

int fr_mem_status_read(fr_mem_status *out) {
    fr_mem_status st = {0};
    st.cgroup_oom = st.cgroup_oom_kill = -1;
    st.psi_some_avg10 = st.psi_some_avg60 = st.psi_full_avg10 = st.psi_full_avg60 = -1;
    char path[SYS_PATH_MAX], buf[8192];

    if (sys_path(path, sizeof path, "/proc/meminfo") && read_small(path, buf, sizeof buf) &&
        meminfo_key(buf, "MemTotal", &st.total)) {
        st.meminfo = true;
        if (!meminfo_key(buf, "MemAvailable", &st.available)) {
            uint64_t f = 0, b = 0, c = 0;
            meminfo_key(buf, "MemFree", &f);
            meminfo_key(buf, "Buffers", &b);
            meminfo_key(buf, "Cached", &c);
            st.available = f + b + c;
        }
        if (st.available > st.total) st.available = st.total;
    }
    read_cgroup(&st);
    if (sys_path(path, sizeof path, "/proc/pressure/memory") && read_small(path, buf, sizeof buf)) {
        psi_line(buf, "some", &st.psi_some_avg10, &st.psi_some_avg60);
        psi_line(buf, "full", &st.psi_full_avg10, &st.psi_full_avg60);
        st.psi = st.psi_some_avg10 >= 0;
    }
    *out = st;
    return 0;
}

uint64_t fr_cgroup_limit(void) {
    fr_mem_status st;
    fr_mem_status_read(&st);
    return st.cgroup_limit;
}

uint64_t fr_mem_limit(void) {
    fr_mem_status st;
    fr_mem_status_read(&st);
    uint64_t total = st.total;
    if (!total) {
        long pages = sysconf(_SC_PHYS_PAGES), ps = sysconf(_SC_PAGESIZE);
        if (pages > 0 && ps > 0) total = (uint64_t)pages * (uint64_t)ps;
    }
    if (st.cgroup_limit && (!total || st.cgroup_limit < total)) return st.cgroup_limit;
    return total;
}

/* Page-size arithmetic (issue 13: a Pi 5 kernel has 16 KiB pages, some
 * arm64 distributions 64 KiB): nothing here assumes 4 KiB; the page size
 * comes from sysconf, falling back to 4096 only if sysconf fails. */
size_t fr_page_size(void) {
    long ps = sysconf(_SC_PAGESIZE);
    return ps > 0 ? (size_t)ps : 4096;
}

#define MINCORE_CHUNK 4096   /* pages per mincore call (a 4 KiB vector, whatever the page size) */

uint64_t fr__resident_bytes_ps(const void *addr, size_t len, size_t ps,
                               int (*mincore_fn)(void *, size_t, unsigned char *)) {
    if (!addr || !len || !ps || (ps & (ps - 1))) return 0;
    uintptr_t start = (uintptr_t)addr, end;
    if (__builtin_add_overflow(start, len, &end)) end = UINTPTR_MAX;
    unsigned char vec[MINCORE_CHUNK];
    uint64_t total = 0;
    for (uintptr_t a = start & ~(uintptr_t)(ps - 1); a < end;) {
        uintptr_t left = (end - a + ps - 1) / ps;
        size_t pages = left < MINCORE_CHUNK ? (size_t)left : MINCORE_CHUNK;
        if (mincore_fn((void *)a, pages * ps, vec) == 0) {
            for (size_t i = 0; i < pages; i++) {
                if (!(vec[i] & 1)) continue;
                uintptr_t lo = a + i * ps, hi = lo + ps;
                if (lo < start) lo = start;
                if (hi > end) hi = end;
                total += hi - lo;
            }
        }
        if (pages * ps > UINTPTR_MAX - a) break;
        a += pages * ps;
    }
    return total;
}

uint64_t fr_resident_bytes(const void *addr, size_t len) {
    return fr__resident_bytes_ps(addr, len, fr_page_size(), mincore);
}
