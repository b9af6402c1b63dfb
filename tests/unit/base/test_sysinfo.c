/*
 * test_sysinfo.c — the memory sources of base/sysinfo: /proc/meminfo,
 * cgroup v2 (memory.max / current / events, the tightest limit on the
 * path, the mount-root fallback), PSI, all read under FRUGAL_SYSROOT from
 * files in the kernel's formats; missing files give "unknown"; and
 * fr_resident_bytes on file and anonymous mappings.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/sysinfo.h"

static char root[256];

/* Write root + rel with the formatted text, creating directories. */
static void put(const char *rel, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(const char *rel, const char *fmt, ...) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        mkdir(path, 0755);
        *p = '/';
    }
    FILE *fp = fopen(path, "w");
    if (!fp) { HARNESS_FAIL("cannot write %s: %s", path, strerror(errno)); return; }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(fp, fmt, ap);
    va_end(ap);
    fclose(fp);
}

static void rm(const char *rel) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    unlink(path);
}

static void rm_tree(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", root);
}

/* A real /proc/meminfo, shortened (the kernel's spacing and units). */
static const char *MEMINFO =
    "MemTotal:        8052144 kB\n"
    "MemFree:          612356 kB\n"
    "MemAvailable:    2013036 kB\n"
    "Buffers:           84112 kB\n"
    "Cached:          1611592 kB\n"
    "SwapCached:            0 kB\n"
    "Active:          5033700 kB\n"
    "Inactive:        1750008 kB\n"
    "SwapTotal:             0 kB\n"
    "SwapFree:              0 kB\n"
    "Dirty:               188 kB\n"
    "AnonPages:       5087920 kB\n"
    "Mapped:           523920 kB\n"
    "Shmem:             29872 kB\n"
    "HugePages_Total:       0\n"
    "Hugepagesize:       2048 kB\n";

static const char *EVENTS =
    "low 0\nhigh 0\nmax 17\noom 3\noom_kill 2\noom_group_kill 0\n";

static const char *PSI =
    "some avg10=12.50 avg60=3.10 avg300=0.80 total=123456789\n"
    "full avg10=1.25 avg60=0.30 avg300=0.05 total=2345678\n";

static void test_missing(void) {
    /* an empty root: nothing is known, nothing fails */
    fr_mem_status st;
    CHECK_INT(fr_mem_status_read(&st), 0);
    CHECK(!st.meminfo);
    CHECK_INT(st.total, 0);
    CHECK_INT(st.available, 0);
    CHECK(!st.cgroup);
    CHECK_INT(st.cgroup_limit, 0);
    CHECK_INT(st.cgroup_current, 0);
    CHECK_INT(st.cgroup_oom, -1);
    CHECK_INT(st.cgroup_oom_kill, -1);
    CHECK(!st.psi);
    CHECK_NEAR(st.psi_some_avg10, -1, 0);
    CHECK_NEAR(st.psi_full_avg10, -1, 0);
    CHECK_INT(fr_cgroup_limit(), 0);
    /* MemTotal unknown: the physical pages sysconf reports */
    CHECK(fr_mem_limit() > 0);
}

static void test_meminfo(void) {
    put("proc/meminfo", "%s", MEMINFO);
    fr_mem_status st;
    fr_mem_status_read(&st);
    CHECK(st.meminfo);
    CHECK_INT(st.total, 8052144ull * 1024);
    CHECK_INT(st.available, 2013036ull * 1024);
    CHECK(!st.cgroup);
    CHECK_INT(fr_mem_limit(), 8052144ull * 1024);

    /* an old kernel without MemAvailable: MemFree + Buffers + Cached */
    put("proc/meminfo", "MemTotal:        8052144 kB\nMemFree:          612356 kB\n"
        "Buffers:           84112 kB\nCached:          1611592 kB\n");
    fr_mem_status_read(&st);
    CHECK_INT(st.available, (612356ull + 84112 + 1611592) * 1024);

    /* garbage is unknown, not a crash */
    put("proc/meminfo", "MemTotal: lots\n");
    fr_mem_status_read(&st);
    CHECK(!st.meminfo);
    put("proc/meminfo", "%s", MEMINFO);
}

static void test_cgroup(void) {
    /* a systemd-style path, with v1 controller lines around the v2 one */
    put("proc/self/cgroup", "12:memory:/user.slice\n1:name=systemd:/user.slice/x.scope\n"
        "0::/frugal.slice/serve.scope\n");
    put("sys/fs/cgroup/frugal.slice/serve.scope/memory.max", "max\n");
    put("sys/fs/cgroup/frugal.slice/serve.scope/memory.current", "123456789\n");
    put("sys/fs/cgroup/frugal.slice/serve.scope/memory.events", "%s", EVENTS);
    fr_mem_status st;
    fr_mem_status_read(&st);
    CHECK(st.cgroup);
    CHECK_INT(st.cgroup_limit, 0);              /* "max" everywhere: no limit */
    CHECK_INT(st.cgroup_current, 123456789);
    CHECK_INT(st.cgroup_oom, 3);
    CHECK_INT(st.cgroup_oom_kill, 2);
    CHECK_INT(fr_cgroup_limit(), 0);

    /* the parent's limit binds: its limit and its current */
    put("sys/fs/cgroup/frugal.slice/memory.max", "1073741824\n");
    put("sys/fs/cgroup/frugal.slice/memory.current", "900000000\n");
    fr_mem_status_read(&st);
    CHECK_INT(st.cgroup_limit, 1073741824);
    CHECK_INT(st.cgroup_current, 900000000);
    CHECK_INT(fr_cgroup_limit(), 1073741824);
    CHECK_INT(fr_mem_limit(), 1073741824);      /* below MemTotal */

    /* a tighter limit on the leaf wins */
    put("sys/fs/cgroup/frugal.slice/serve.scope/memory.max", "536870912\n");
    fr_mem_status_read(&st);
    CHECK_INT(st.cgroup_limit, 536870912);
    CHECK_INT(st.cgroup_current, 123456789);

    /* a limit above physical memory: MemTotal is the limit */
    put("sys/fs/cgroup/frugal.slice/serve.scope/memory.max", "%llu\n", 64ull << 30);
    put("sys/fs/cgroup/frugal.slice/memory.max", "max\n");
    CHECK_INT(fr_mem_limit(), 8052144ull * 1024);

    /* no memory.events: counts unknown, the rest still read */
    rm("sys/fs/cgroup/frugal.slice/serve.scope/memory.events");
    fr_mem_status_read(&st);
    CHECK(st.cgroup);
    CHECK_INT(st.cgroup_oom_kill, -1);

    /* the path is not under the mount (a container without a cgroup
     * namespace): the mount root is the process's cgroup */
    put("proc/self/cgroup", "0::/docker/0123456789abcdef\n");
    put("sys/fs/cgroup/memory.max", "268435456\n");
    put("sys/fs/cgroup/memory.current", "200000000\n");
    fr_mem_status_read(&st);
    CHECK(st.cgroup);
    CHECK_INT(st.cgroup_limit, 268435456);
    CHECK_INT(st.cgroup_current, 200000000);

    /* "0::/": the root itself */
    put("proc/self/cgroup", "0::/\n");
    fr_mem_status_read(&st);
    CHECK_INT(st.cgroup_limit, 268435456);

    /* cgroup v1 only: no v2 line, no cgroup */
    put("proc/self/cgroup", "4:memory:/process_api/2f8b\n3:cpuset:/\n");
    fr_mem_status_read(&st);
    CHECK(!st.cgroup);
    CHECK_INT(st.cgroup_limit, 0);
    rm("proc/self/cgroup");
}

static void test_psi(void) {
    put("proc/pressure/memory", "%s", PSI);
    fr_mem_status st;
    fr_mem_status_read(&st);
    CHECK(st.psi);
    CHECK_NEAR(st.psi_some_avg10, 12.5, 1e-9);
    CHECK_NEAR(st.psi_some_avg60, 3.1, 1e-9);
    CHECK_NEAR(st.psi_full_avg10, 1.25, 1e-9);
    CHECK_NEAR(st.psi_full_avg60, 0.3, 1e-9);
    /* a kernel that has only the "some" line */
    put("proc/pressure/memory", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
    fr_mem_status_read(&st);
    CHECK(st.psi);
    CHECK_NEAR(st.psi_some_avg10, 0, 0);
    CHECK_NEAR(st.psi_full_avg10, -1, 0);
    rm("proc/pressure/memory");
    fr_mem_status_read(&st);
    CHECK(!st.psi);
}

static void test_resident(void) {
    long ps = sysconf(_SC_PAGESIZE);
    CHECK_INT(fr_resident_bytes(NULL, 100), 0);

    /* a sparse file: nothing is in the page cache until it is touched */
    char path[512];
    snprintf(path, sizeof path, "%s/weights.bin", root);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    size_t len = 64 * (size_t)ps;
    CHECK_INT(ftruncate(fd, (off_t)len), 0);
    const volatile unsigned char *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    CHECK(p != MAP_FAILED);
    if (p != MAP_FAILED) {
        CHECK_INT(fr_resident_bytes((const void *)p, len), 0);
        unsigned sum = p[0] + p[ps] + p[10 * ps] + p[len - 1];
        CHECK_INT(sum, 0);
        uint64_t r = fr_resident_bytes((const void *)p, len);
        /* at least the pages touched; fault-around may bring more */
        CHECK_MSG(r >= 4 * (uint64_t)ps && r <= len, "resident %llu of %zu", (unsigned long long)r, len);
        /* partial pages count only their part in the range */
        CHECK_INT(fr_resident_bytes((const void *)(p + 100), 50), 50);
        CHECK_INT(fr_resident_bytes((const void *)(p + ps - 10), 20), 20);
        munmap((void *)p, len);
    }
    close(fd);
    unlink(path);

    /* anonymous memory, no huge pages: exactly the pages written; more
     * than one mincore chunk (4096 pages) */
    size_t big = 5000 * (size_t)ps;
    unsigned char *a = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(a != MAP_FAILED);
    if (a != MAP_FAILED) {
        madvise(a, big, MADV_NOHUGEPAGE);
        CHECK_INT(fr_resident_bytes(a, big), 0);
        a[0] = 1;
        a[4500 * (size_t)ps] = 1;
        a[big - 1] = 1;
        CHECK_INT(fr_resident_bytes(a, big), 3 * (uint64_t)ps);
        CHECK_INT(fr_resident_bytes(a + 4096 * (size_t)ps, 904 * (size_t)ps), 2 * (uint64_t)ps);
        madvise(a, big, MADV_DONTNEED);
        CHECK_INT(fr_resident_bytes(a, big), 0);
        munmap(a, big);
    }
}

/* fr__resident_bytes_ps with 4, 16 and 64 KiB pages on made-up addresses
 * (no real mapping: fake_mincore answers).  Each call must get a
 * page-aligned address and a whole number of pages, at most one chunk of
 * 4096; every third page counts as resident (page number % 3 == 0). */
static size_t fake_ps;
static int fake_calls, fake_bad;
static uintptr_t fake_next;            /* where the next call must start */

static int fake_mincore(void *addr, size_t len, unsigned char *vec) {
    const uintptr_t a = (uintptr_t)addr;
    fake_calls++;
    if (a % fake_ps || len % fake_ps || len / fake_ps > 4096 || (fake_next && a != fake_next)) fake_bad++;
    fake_next = a + len;
    for (size_t i = 0; i < len / fake_ps; i++) vec[i] = (a / fake_ps + i) % 3 == 0;
    return 0;
}

/* The expected count, byte range by byte range. */
static uint64_t want_resident(uintptr_t start, size_t len, size_t ps) {
    uint64_t n = 0;
    for (uintptr_t p = start / ps; p * ps < start + len; p++) {
        if (p % 3) continue;
        uintptr_t lo = p * ps, hi = lo + ps;
        if (lo < start) lo = start;
        if (hi > start + len) hi = start + len;
        n += hi - lo;
    }
    return n;
}

static void test_page_sizes(void) {
    CHECK(fr_page_size() >= 4096 && (fr_page_size() & (fr_page_size() - 1)) == 0);
    CHECK_INT(fr_page_size(), (uint64_t)sysconf(_SC_PAGESIZE));
    static const size_t sizes[] = {4096, 16384, 65536};
    for (int k = 0; k < 3; k++) {
        const size_t ps = fake_ps = sizes[k];
        const uintptr_t base = (uintptr_t)0x40000000;    /* aligned for all three */
        struct { uintptr_t off; size_t len; } cases[] = {
            {0, 1},                          /* one byte of page 0 (resident) */
            {ps - 10, 20},                   /* straddles pages 0 and 1 */
            {100, 3 * ps},                   /* partial first and last page */
            {ps, ps},                        /* exactly page 1 (not resident) */
            {3 * ps + 5, 4096},              /* 4 KiB inside a bigger page */
            {7, 4096 * ps + 3 * ps},         /* more than one chunk of pages */
        };
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            const uintptr_t start = base + cases[c].off;
            fake_calls = fake_bad = 0;
            fake_next = 0;
            uint64_t got = fr__resident_bytes_ps((const void *)start, cases[c].len, ps, fake_mincore);
            uint64_t want = want_resident(start, cases[c].len, ps);
            CHECK_MSG(got == want, "page %zu case %zu: %llu resident bytes, want %llu", ps, c,
                      (unsigned long long)got, (unsigned long long)want);
            CHECK_MSG(fake_bad == 0, "page %zu case %zu: mincore got an unaligned range", ps, c);
            size_t pages = (start + cases[c].len + ps - 1) / ps - start / ps;
            CHECK_INT(fake_calls, (pages + 4095) / 4096);
        }
        /* 4 KiB pages would have counted these differently: page 1 of a
         * bigger page is 4 KiB pages 4..7 (16K) or 16..31 (64K) */
        if (ps > 4096) {
            fake_calls = 0;
            fake_next = 0;
            CHECK_INT(fr__resident_bytes_ps((const void *)(base + ps), 4096, ps, fake_mincore), 0);
        }
    }
    CHECK_INT(fr__resident_bytes_ps((const void *)0x40000000, 100, 12288, fake_mincore), 0); /* not a power of two */
    CHECK_INT(fr__resident_bytes_ps((const void *)0x40000000, 100, 0, fake_mincore), 0);
}

/* The aarch64 feature bits as the kernel sets them (arm64 hwcap.h): the
 * Pi 4's Cortex-A72 (fp asimd evtstrm crc32 cpuid), the Pi 5's Cortex-A76
 * (+ atomics fphp asimdhp asimdrdm lrcpc dcpop asimddp), a Neoverse V1
 * (+ i8mm in AT_HWCAP2). */
static void test_hwcap(void) {
    fr_cpu_features f = {0};
    const unsigned long a72 = (1ul << 0) | (1ul << 1) | (1ul << 2) | (1ul << 7) | (1ul << 11);
    const unsigned long a76 = a72 | (1ul << 8) | (1ul << 9) | (1ul << 10) | (1ul << 12) | (1ul << 15) |
                              (1ul << 16) | (1ul << 20);
    fr__cpu_from_hwcap(&f, a72, 0);
    CHECK(f.neon && !f.dotprod && !f.fp16 && !f.i8mm);
    fr__cpu_from_hwcap(&f, a76, 0);
    CHECK(f.neon && f.dotprod && f.fp16 && !f.i8mm);
    fr__cpu_from_hwcap(&f, a76, 1ul << 13);
    CHECK(f.neon && f.dotprod && f.fp16 && f.i8mm);
    fr__cpu_from_hwcap(&f, a76 & ~(1ul << 10), 1ul << 13);   /* no ASIMDHP: no fp16 */
    CHECK(f.neon && f.dotprod && !f.fp16 && f.i8mm);
    fr__cpu_from_hwcap(&f, 0, ~0ul);                          /* no Advanced SIMD: nothing */
    CHECK(!f.neon && !f.dotprod && !f.fp16 && !f.i8mm);
#if defined(__aarch64__)
    const fr_cpu_features *c = fr_cpu();
    printf("this CPU: neon %d dotprod %d fp16 %d i8mm %d\n", c->neon, c->dotprod, c->fp16, c->i8mm);
    CHECK(c->neon);                                           /* every aarch64 Linux has it */
    CHECK(!c->avx2);
#elif defined(__x86_64__)
    CHECK(!fr_cpu()->neon);
#endif
}

int main(void) {
    snprintf(root, sizeof root, "/tmp/frugal-test-sysinfo-%d", (int)getpid());
    CHECK_INT(mkdir(root, 0755), 0);
    setenv("FRUGAL_SYSROOT", root, 1);

    test_missing();
    test_meminfo();
    test_cgroup();
    test_psi();
    test_resident();
    test_page_sizes();
    test_hwcap();

    unsetenv("FRUGAL_SYSROOT");
    /* the real machine: MemTotal is known */
    fr_mem_status st;
    fr_mem_status_read(&st);
    CHECK(st.meminfo && st.total > 0 && st.available <= st.total);
    rm_tree();
    return harness_done();
}
