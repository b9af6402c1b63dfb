/* log.c — leveled messages on stderr, one write(2) per message. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int level = -1;

static int env_level(void) {
    const char *e = getenv("FRUGAL_LOG");
    if (!e) return FR_LOG_WARN;
    if (!strcmp(e, "error")) return FR_LOG_ERROR;
    if (!strcmp(e, "info")) return FR_LOG_INFO;
    if (!strcmp(e, "debug")) return FR_LOG_DEBUG;
    return FR_LOG_WARN;
}

int fr_log_level(void) {
    if (level < 0) level = env_level();
    return level;
}

void fr_log_set_level(int l) { level = l; }

void fr_log(int l, const char *fmt, ...) {
    if (l > fr_log_level()) return;
    static const char *names[] = {"error", "warn", "info", "debug"};
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "frugal: %s: ", names[l]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof buf - 2) len = sizeof buf - 2;
    buf[len++] = '\n';
    ssize_t w = write(2, buf, len);
    (void)w;
}
