/*
 * test_parse.c — operator values: sizes (binary and decimal suffixes,
 * fractions, percentages, overflow), durations (units, combinations,
 * bare seconds, 0, -1), booleans, integers with ranges, percentages; and
 * that every error is FR_EINVAL with a detail naming the option and the
 * value.
 */
#include "harness.h"

#include "base/err.h"
#include "base/parse.h"

static uint64_t size_of(const char *s, uint64_t total) {
    uint64_t v = 12345;
    int rc = fr_parse_size("--size", s, total, &v);
    CHECK_MSG(rc == 0, "size '%s': %s", s, fr_errdetail());
    return v;
}

static int64_t dur_of(const char *s) {
    int64_t v = 12345;
    int rc = fr_parse_duration_ms("--keep-alive", s, &v);
    CHECK_MSG(rc == 0, "duration '%s': %s", s, fr_errdetail());
    return v;
}

/* Fails with FR_EINVAL and a detail that names opt and contains want. */
#define CHECK_BAD(call, want)                                                          \
    do {                                                                               \
        fr_errclear();                                                                 \
        int rc_ = (call);                                                              \
        CHECK_MSG(rc_ == FR_EINVAL, "%s: rc %d", #call, rc_);                          \
        CHECK_MSG(strstr(fr_errdetail(), want) != NULL, "%s: detail '%s' lacks '%s'",  \
                  #call, fr_errdetail(), want);                                        \
    } while (0)

static void test_sizes(void) {
    CHECK_INT(size_of("100000", 0), 100000);
    CHECK_INT(size_of("0", 0), 0);
    CHECK_INT(size_of("512K", 0), 512 * 1024);
    CHECK_INT(size_of("512M", 0), 512ull << 20);
    CHECK_INT(size_of("6G", 0), 6ull << 30);
    CHECK_INT(size_of("6g", 0), 6ull << 30);
    CHECK_INT(size_of("1T", 0), 1ull << 40);
    CHECK_INT(size_of("1.5GiB", 0), 3ull << 29);
    CHECK_INT(size_of("1.5G", 0), 3ull << 29);
    CHECK_INT(size_of("2KiB", 0), 2048);
    CHECK_INT(size_of("2KB", 0), 2000);
    CHECK_INT(size_of("1.5MB", 0), 1500000);
    CHECK_INT(size_of("512B", 0), 512);
    CHECK_INT(size_of(" 64M ", 0), 64ull << 20);
    CHECK_INT(size_of(".5K", 0), 512);
    CHECK_INT(size_of("75%", 8000), 6000);
    CHECK_INT(size_of("100%", 8000), 8000);
}

static void test_size_errors(void) {
    uint64_t v;
    double pct;
    CHECK_BAD(fr_parse_size("--memory-budget", "6X", 0, &v), "--memory-budget: bad size '6X'");
    CHECK_BAD(fr_parse_size("--memory-budget", "", 0, &v), "bad size");
    CHECK_BAD(fr_parse_size("--memory-budget", "G", 0, &v), "bad size 'G'");
    CHECK_BAD(fr_parse_size("--memory-budget", "-1G", 0, &v), "bad size");
    CHECK_BAD(fr_parse_size("--memory-budget", "1e9", 0, &v), "bad size");
    CHECK_BAD(fr_parse_size("--memory-budget", "0x10", 0, &v), "bad size");
    CHECK_BAD(fr_parse_size("--memory-budget", "6 G B", 0, &v), "bad size");
    CHECK_BAD(fr_parse_size("--memory-budget", "75%", 0, &v), "percentage is not allowed");
    CHECK_BAD(fr_parse_size("--memory-budget", "0%", 100, &v), "out of range");
    CHECK_BAD(fr_parse_size("--memory-budget", "101%", 100, &v), "out of range");
    CHECK_BAD(fr_parse_size("--memory-budget", "99999999999999999999", 0, &v), "out of range");
    CHECK_BAD(fr_parse_size("--memory-budget", "9000000T", 0, &v), "out of range");
    CHECK_BAD(fr_parse_size("--memory-budget", "nan", 0, &v), "bad size");
    CHECK_BAD(fr_parse_size("--memory-budget", "8E", 0, &v), "bad size '8E'");
    CHECK(fr_parse_size_or_pct("x", "60%", &v, &pct) == 0 && v == 0 && pct == 60);
    CHECK(fr_parse_size_or_pct("x", "2G", &v, &pct) == 0 && v == 2ull << 30 && pct == 0);
    CHECK_BAD(fr_parse_size_or_pct("FRUGAL_MEMORY_BUDGET", "lots", &v, &pct), "FRUGAL_MEMORY_BUDGET: bad size");
}

static void test_durations(void) {
    CHECK_INT(dur_of("5m"), 300000);
    CHECK_INT(dur_of("30s"), 30000);
    CHECK_INT(dur_of("1h30m"), 5400000);
    CHECK_INT(dur_of("250ms"), 250);
    CHECK_INT(dur_of("1m30s500ms"), 90500);
    CHECK_INT(dur_of("1d"), 86400000);
    CHECK_INT(dur_of("0"), 0);
    CHECK_INT(dur_of("0s"), 0);
    CHECK_INT(dur_of("-1"), FR_DURATION_NEVER);
    CHECK_INT(dur_of(" -1 "), FR_DURATION_NEVER);
    CHECK_INT(dur_of("90"), 90000);
    CHECK_INT(dur_of("1.5"), 1500);
    CHECK_INT(dur_of("0.25s"), 250);
    CHECK_INT(dur_of("1.5h"), 5400000);
    CHECK_INT(dur_of("10S"), 10000);
    int64_t v;
    CHECK_BAD(fr_parse_duration_ms("--keep-alive", "5 minutes", &v), "--keep-alive: bad duration '5 minutes'");
    CHECK_BAD(fr_parse_duration_ms("--keep-alive", "", &v), "bad duration");
    CHECK_BAD(fr_parse_duration_ms("--keep-alive", "-2", &v), "bad duration");
    CHECK_BAD(fr_parse_duration_ms("--keep-alive", "-5m", &v), "bad duration");
    CHECK_BAD(fr_parse_duration_ms("--keep-alive", "30m1h", &v), "bad duration");
    CHECK_BAD(fr_parse_duration_ms("--keep-alive", "1m1m", &v), "bad duration");
    CHECK_BAD(fr_parse_duration_ms("--keep-alive", "1h30", &v), "bad duration");
    CHECK_BAD(fr_parse_duration_ms("--keep-alive", "5x", &v), "bad duration");
    CHECK_BAD(fr_parse_duration_ms("--keep-alive", "m", &v), "bad duration");
    CHECK_BAD(fr_parse_duration_ms("--keep-alive", "99999999999999999999d", &v), "bad duration");
    CHECK_BAD(fr_parse_duration_ms("--keep-alive", "999999999999d", &v), "out of range");
}

static void test_bools_ints(void) {
    const char *yes[] = {"true", "yes", "on", "1", "TRUE", "Yes", " on "};
    const char *no[] = {"false", "no", "off", "0", "OFF"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        bool b = false;
        CHECK_MSG(fr_parse_bool("pin", yes[i], &b) == 0 && b, "'%s'", yes[i]);
    }
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        bool b = true;
        CHECK_MSG(fr_parse_bool("pin", no[i], &b) == 0 && !b, "'%s'", no[i]);
    }
    bool b;
    CHECK_BAD(fr_parse_bool("[model \"x\"] pin", "yep", &b), "[model \"x\"] pin: bad boolean 'yep'");
    CHECK_BAD(fr_parse_bool("pin", "", &b), "bad boolean");

    int64_t v;
    CHECK(fr_parse_int("--port", "8080", 0, 65535, &v) == 0 && v == 8080);
    CHECK(fr_parse_int("--port", " 0 ", 0, 65535, &v) == 0 && v == 0);
    CHECK(fr_parse_int("x", "-5", -10, 10, &v) == 0 && v == -5);
    CHECK(fr_parse_int("x", "+5", -10, 10, &v) == 0 && v == 5);
    CHECK(fr_parse_int("x", "-9223372036854775808", INT64_MIN, INT64_MAX, &v) == 0 && v == INT64_MIN);
    CHECK_BAD(fr_parse_int("--port", "http", 0, 65535, &v), "--port: bad integer 'http' (want an integer from 0 to 65535)");
    CHECK_BAD(fr_parse_int("--port", "70000", 0, 65535, &v), "--port: 70000 is out of range");
    CHECK_BAD(fr_parse_int("--port", "80.5", 0, 65535, &v), "bad integer");
    CHECK_BAD(fr_parse_int("--port", "", 0, 65535, &v), "bad integer");
    CHECK_BAD(fr_parse_int("--port", "-", 0, 65535, &v), "bad integer");
    CHECK_BAD(fr_parse_int("x", "9223372036854775808", INT64_MIN, INT64_MAX, &v), "out of range");
    CHECK_BAD(fr_parse_int("x", "99999999999999999999999", INT64_MIN, INT64_MAX, &v), "out of range");

    double d;
    CHECK(fr_parse_percent("--mem-warning", "80", 1, 100, &d) == 0 && d == 80);
    CHECK(fr_parse_percent("--mem-warning", "80%", 1, 100, &d) == 0 && d == 80);
    CHECK(fr_parse_percent("--mem-warning", "92.5", 1, 100, &d) == 0 && d == 92.5);
    CHECK_BAD(fr_parse_percent("--mem-warning", "120", 1, 100, &d), "out of range");
    CHECK_BAD(fr_parse_percent("--mem-warning", "high", 1, 100, &d), "--mem-warning: bad percentage 'high'");
    CHECK_BAD(fr_parse_percent("--mem-warning", "%", 1, 100, &d), "bad percentage");
}

int main(void) {
    test_sizes();
    test_size_errors();
    test_durations();
    test_bools_ints();
    /* a long bad value is quoted in part, and the detail stays one line */
    char big[400];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    uint64_t v;
    CHECK_BAD(fr_parse_size("--max-body", big, 0, &v), "...");
    return harness_done();
}
