/*
 * test_err.c — the error table and the detail line (base/err.h,
 * frugal/base.h):
 *
 *   the table    every FR_E* code negative, distinct and in order after
 *                FR__ERR_FIRST; its name, message and HTTP status as
 *                FR_ERR_MAP lists them, and the statuses the server relies
 *                on written out; 0 is "ok"; an unknown code is "unknown
 *                error", EUNKNOWN, 500;
 *   fr_errf      returns its code, formats the detail, truncates a long
 *                one at the buffer, fr_errclear empties it; the detail is
 *                per thread (another thread neither sees nor clobbers it);
 *   FR_ASSERT    a false condition aborts, naming the expression, the file
 *                and the line (in a child process).
 */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#include "base/err.h"

static void test_table(void) {
    static const struct { int code; const char *name, *msg; int status; } want[] = {
#define ROW(name, msg, status) {FR_##name, #name, msg, status},
        FR_ERR_MAP(ROW)
#undef ROW
    };
    const int n = (int)(sizeof want / sizeof want[0]);
    CHECK_INT(n, FR__ERR_LAST - FR__ERR_FIRST - 1);
    for (int i = 0; i < n; i++) {
        CHECK_INT(want[i].code, FR__ERR_FIRST + 1 + i);
        CHECK_MSG(want[i].code < 0, "%s = %d is not negative", want[i].name, want[i].code);
        CHECK_STR(fr_errname(want[i].code), want[i].name);
        CHECK_STR(fr_strerror(want[i].code), want[i].msg);
        CHECK_INT(fr_errstatus(want[i].code), want[i].status);
    }
    /* the statuses the HTTP layer's answers depend on */
    CHECK_INT(fr_errstatus(FR_EINVAL), 400);
    CHECK_INT(fr_errstatus(FR_ENOENT), 404);
    CHECK_INT(fr_errstatus(FR_ECONFLICT), 409);
    CHECK_INT(fr_errstatus(FR_ETOOLONG), 413);
    CHECK_INT(fr_errstatus(FR_EIO), 500);
    CHECK_INT(fr_errstatus(FR_EINTERNAL), 500);
    CHECK_INT(fr_errstatus(FR_ENOMEM), 503);
    CHECK_INT(fr_errstatus(FR_EBUSY), 503);
    CHECK_INT(fr_errstatus(FR_EBUDGET), 503);
    CHECK_INT(fr_errstatus(FR_ESHUTDOWN), 503);
    CHECK_INT(fr_errstatus(FR_ENOSPC), 507);
    CHECK_STR(fr_errname(FR_EFORMAT), "EFORMAT");
    CHECK_STR(fr_strerror(FR_EFORMAT), "malformed file");
    /* success and codes outside the table */
    CHECK_STR(fr_strerror(0), "ok");
    CHECK_STR(fr_errname(0), "OK");
    static const int unknown[] = {1, -1, 42, FR__ERR_FIRST, FR__ERR_LAST, -100000};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        CHECK_STR(fr_strerror(unknown[i]), "unknown error");
        CHECK_STR(fr_errname(unknown[i]), "EUNKNOWN");
        CHECK_INT(fr_errstatus(unknown[i]), 500);
    }
}

static int verrf_wrapper(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = fr_verrf(code, fmt, ap);
    va_end(ap);
    return rc;
}

static void test_detail(void) {
    fr_errclear();
    CHECK_STR(fr_errdetail(), "");
    CHECK_INT(fr_errf(FR_EFORMAT, "%s: key '%s': bad type %u", "m.gguf", "general.name", 7u), FR_EFORMAT);
    CHECK_STR(fr_errdetail(), "m.gguf: key 'general.name': bad type 7");
    CHECK_INT(fr_errf(FR_ERANGE, "second"), FR_ERANGE);       /* the last one wins */
    CHECK_STR(fr_errdetail(), "second");
    CHECK_INT(verrf_wrapper(FR_EIO, "%d/%d", 3, 4), FR_EIO);
    CHECK_STR(fr_errdetail(), "3/4");
    fr_errclear();
    CHECK_STR(fr_errdetail(), "");
    /* longer than the buffer: cut, terminated */
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    CHECK_INT(fr_errf(FR_EINVAL, "%s", big), FR_EINVAL);
    size_t len = strlen(fr_errdetail());
    CHECK_INT(len, 511);
    CHECK(fr_errdetail()[0] == 'x' && fr_errdetail()[510] == 'x');
    fr_errclear();
}

static void *other_thread(void *arg) {
    char *seen = arg;
    snprintf(seen, 64, "%s", fr_errdetail());      /* the main thread's? */
    fr_errf(FR_EBUSY, "from the other thread");
    return NULL;
}

static void test_per_thread(void) {
    fr_errf(FR_EINVAL, "main thread");
    char seen[64] = "unset";
    pthread_t t;
    CHECK_INT(pthread_create(&t, NULL, other_thread, seen), 0);
    pthread_join(t, NULL);
    CHECK_STR(seen, "");                            /* a new thread starts empty */
    CHECK_STR(fr_errdetail(), "main thread");       /* and does not clobber ours */
    fr_errclear();
}

static void test_assert(void) {
    int fds[2];
    CHECK_INT(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        int one = 1;
        FR_ASSERT(one == 1);                        /* true: nothing happens */
        FR_ASSERT(one == 2);
        _exit(0);                                   /* not reached */
    }
    close(fds[1]);
    char out[512] = {0};
    size_t got = 0;
    ssize_t r;
    while (got < sizeof out - 1 && (r = read(fds[0], out + got, sizeof out - 1 - got)) > 0) got += (size_t)r;
    close(fds[0]);
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "FR_ASSERT(false): status %d, not SIGABRT", st);
    CHECK_MSG(strstr(out, "assertion failed: one == 2") && strstr(out, "test_err.c:"),
              "FR_ASSERT's message: \"%s\"", out);
}

int main(void) {
    test_table();
    test_detail();
    test_per_thread();
    test_assert();
    return harness_done();
}
