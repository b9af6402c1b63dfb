/*
 * harness.h — the unit-test harness: CHECK macros that print both values
 * on failure, and a closing line "N passed, N failed".
 *
 *   int main(void) {
 *       CHECK(x == 1);
 *       CHECK_INT(got, want);
 *       CHECK_NEAR(a, b, 1e-6);
 *       return harness_done();
 *   }
 */
#ifndef FR_TEST_HARNESS_H
#define FR_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int harness_passed, harness_failed;

#define HARNESS_FAIL(...)                                                     \
    do {                                                                      \
        harness_failed++;                                                     \
        fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                  \
        fprintf(stderr, __VA_ARGS__);                                         \
        fputc('\n', stderr);                                                  \
    } while (0)

#define CHECK(c)                                                              \
    do {                                                                      \
        if (c) harness_passed++;                                              \
        else HARNESS_FAIL("%s", #c);                                          \
    } while (0)

#define CHECK_MSG(c, ...)                                                     \
    do {                                                                      \
        if (c) harness_passed++;                                              \
        else HARNESS_FAIL(__VA_ARGS__);                                       \
    } while (0)

#define CHECK_INT(a, b)                                                       \
    do {                                                                      \
        long long a_ = (long long)(a), b_ = (long long)(b);                   \
        if (a_ == b_) harness_passed++;                                       \
        else HARNESS_FAIL("%s == %s: got %lld, want %lld", #a, #b, a_, b_);   \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                 \
    do {                                                                      \
        double a_ = (double)(a), b_ = (double)(b), t_ = (double)(tol);        \
        if (fabs(a_ - b_) <= t_) harness_passed++;                            \
        else HARNESS_FAIL("%s ~ %s: got %.9g, want %.9g (tol %g)", #a, #b,    \
                          a_, b_, t_);                                        \
    } while (0)

#define CHECK_STR(a, b)                                                       \
    do {                                                                      \
        const char *a_ = (a), *b_ = (b);                                      \
        if (a_ && b_ && !strcmp(a_, b_)) harness_passed++;                    \
        else HARNESS_FAIL("%s == %s: got \"%s\", want \"%s\"", #a, #b,        \
                          a_ ? a_ : "(null)", b_ ? b_ : "(null)");            \
    } while (0)

/* The test-data folder (../shared/testdata), from FRUGAL_TESTDATA. */
static inline const char *harness_testdata(void) {
    const char *d = getenv("FRUGAL_TESTDATA");
    return d ? d : "../shared/testdata";
}

static inline int harness_done(void) {
    printf("%d passed, %d failed\n", harness_passed, harness_failed);
    return harness_failed ? 1 : 0;
}

#endif
