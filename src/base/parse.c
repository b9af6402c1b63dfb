/*
 * parse.c — operator values (see parse.h for the accepted forms).
 *
 * The numbers are scanned by hand rather than with strtod/strtoll: those
 * accept hex, exponents, "inf", "nan" and leading signs that an operator
 * never means in "6G", and they depend on the locale.  A number here is
 * digits with an optional fraction: "12", "1.5", ".5".  Integers without a
 * fraction are computed exactly in 64 bits; fractional values go through
 * double, which is exact for the values people write ("1.5G", "0.25s").
 */
#include "base/parse.h"

#include <ctype.h>
#include <math.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"

/* At most this much of a bad value is quoted in an error detail. */
#define SHOW 80

typedef struct num {
    uint64_t ip;        /* integer part */
    double frac;        /* fractional part, in [0, 1) */
    bool has_frac;
    bool overflow;      /* integer part does not fit 64 bits */
} num;

/* Trim blanks: [*b, *e) is the value without them. */
static void trim(const char *s, const char **b, const char **e) {
    const char *p = s, *q = s + strlen(s);
    while (p < q && isspace((unsigned char)*p)) p++;
    while (q > p && isspace((unsigned char)q[-1])) q--;
    *b = p;
    *e = q;
}

/* Scan digits [. digits] at *p (before end); false if there is no digit. */
static bool scan_num(const char **p, const char *end, num *n) {
    const char *s = *p;
    int digits = 0;
    memset(n, 0, sizeof *n);
    while (s < end && isdigit((unsigned char)*s)) {
        unsigned d = (unsigned)(*s - '0');
        if (n->ip > (UINT64_MAX - d) / 10) n->overflow = true;
        else n->ip = n->ip * 10 + d;
        s++;
        digits++;
    }
    if (s < end && *s == '.') {
        const char *f = s + 1;
        double scale = 0.1;
        while (f < end && isdigit((unsigned char)*f)) {
            n->frac += (*f - '0') * scale;
            scale *= 0.1;
            f++;
            digits++;
        }
        if (f > s + 1) { n->has_frac = true; s = f; }
        else if (digits) s = f;       /* "5." is 5 */
    }
    if (!digits) return false;
    *p = s;
    return true;
}

static double num_value(const num *n) { return (double)n->ip + n->frac; }

static int bad(const char *opt, const char *what, const char *s, const char *want) {
    return fr_errf(FR_EINVAL, "%s: bad %s '%.*s'%s (want %s)", opt ? opt : "value", what, SHOW, s,
                   strlen(s) > SHOW ? "..." : "", want);
}

/* ---- sizes ---- */

typedef struct unit { const char *name; uint64_t mult; } unit;

static const unit size_units[] = {
    {"", 1}, {"b", 1},
    {"k", 1ull << 10}, {"kib", 1ull << 10}, {"kb", 1000ull},
    {"m", 1ull << 20}, {"mib", 1ull << 20}, {"mb", 1000000ull},
    {"g", 1ull << 30}, {"gib", 1ull << 30}, {"gb", 1000000000ull},
    {"t", 1ull << 40}, {"tib", 1ull << 40}, {"tb", 1000000000000ull},
};

#define SIZE_WANT "a size like 100000, 512K, 512M, 6G or 1.5GiB"
#define SIZE_MAX_BYTES (1ull << 63)

/* A size or a percentage; *is_pct tells which (value in *bytes or *pct). */
static int scan_size(const char *opt, const char *s, bool allow_pct, uint64_t *bytes, double *pct,
                     bool *is_pct) {
    const char *want = allow_pct ? SIZE_WANT " or a percentage like 75%" : SIZE_WANT;
    const char *p, *end;
    num n;
    trim(s, &p, &end);
    if (!scan_num(&p, end, &n)) return bad(opt, "size", s, want);
    size_t ulen = (size_t)(end - p);
    *is_pct = false;
    if (ulen == 1 && *p == '%') {
        if (!allow_pct) return bad(opt, "size", s, SIZE_WANT " (a percentage is not allowed here)");
        double v = num_value(&n);
        if (n.overflow || v <= 0 || v > 100)
            return fr_errf(FR_EINVAL, "%s: percentage '%.*s' out of range (want more than 0%% and at most 100%%)",
                           opt, SHOW, s);
        *pct = v;
        *is_pct = true;
        return 0;
    }
    for (size_t i = 0; i < sizeof size_units / sizeof size_units[0]; i++) {
        const unit *u = &size_units[i];
        if (strlen(u->name) != ulen || strncasecmp(p, u->name, ulen)) continue;
        if (n.overflow) goto range;
        if (!n.has_frac) {
            uint64_t v;
            if (__builtin_mul_overflow(n.ip, u->mult, &v) || v > SIZE_MAX_BYTES) goto range;
            *bytes = v;
        } else {
            double v = num_value(&n) * (double)u->mult;
            if (!(v < (double)SIZE_MAX_BYTES)) goto range;
            *bytes = (uint64_t)v;
        }
        return 0;
    }
    return bad(opt, "size", s, want);
range:
    return fr_errf(FR_EINVAL, "%s: size '%.*s' out of range (at most 8 EiB)", opt, SHOW, s);
}

int fr_parse_size(const char *opt, const char *s, uint64_t total, uint64_t *out) {
    uint64_t bytes = 0;
    double pct = 0;
    bool is_pct;
    int rc = scan_size(opt, s, total > 0, &bytes, &pct, &is_pct);
    if (rc) return rc;
    *out = is_pct ? (uint64_t)((double)total * (pct / 100.0)) : bytes;
    return 0;
}

int fr_parse_size_or_pct(const char *opt, const char *s, uint64_t *bytes, double *pct) {
    uint64_t b = 0;
    double p = 0;
    bool is_pct;
    int rc = scan_size(opt, s, true, &b, &p, &is_pct);
    if (rc) return rc;
    *bytes = is_pct ? 0 : b;
    *pct = is_pct ? p : 0;
    return 0;
}

/* ---- durations ---- */

static const unit dur_units[] = {       /* largest first: the order they combine in */
    {"d", 86400000ull}, {"h", 3600000ull}, {"m", 60000ull}, {"s", 1000ull}, {"ms", 1ull},
};
#define N_DUR (sizeof dur_units / sizeof dur_units[0])
#define DUR_WANT "a duration like 250ms, 30s, 5m or 1h30m; a bare number is seconds; -1 is never"

int fr_parse_duration_ms(const char *opt, const char *s, int64_t *out_ms) {
    const char *p, *end;
    trim(s, &p, &end);
    if (end - p == 2 && p[0] == '-' && p[1] == '1') { *out_ms = FR_DURATION_NEVER; return 0; }
    if (p == end) return bad(opt, "duration", s, DUR_WANT);
    double total = 0;
    size_t next_unit = 0;           /* units must come largest first, once each */
    bool first = true;
    while (p < end) {
        num n;
        if (!scan_num(&p, end, &n) || n.overflow) return bad(opt, "duration", s, DUR_WANT);
        const char *u = p;
        while (p < end && isalpha((unsigned char)*p)) p++;
        size_t ulen = (size_t)(p - u);
        if (ulen == 0) {
            /* a bare number: seconds, and only on its own */
            if (!first || p != end) return bad(opt, "duration", s, DUR_WANT);
            total = num_value(&n) * 1000.0;
            break;
        }
        size_t k = 0;
        while (k < N_DUR && (strlen(dur_units[k].name) != ulen || strncasecmp(u, dur_units[k].name, ulen)))
            k++;
        if (k == N_DUR || k < next_unit) return bad(opt, "duration", s, DUR_WANT);
        next_unit = k + 1;
        total += num_value(&n) * (double)dur_units[k].mult;
        first = false;
    }
    if (!(total < FR_DURATION_MAX_MS)) return fr_errf(FR_EINVAL, "%s: duration '%.*s' out of range", opt, SHOW, s);
    *out_ms = (int64_t)llround(total);
    return 0;
}

/* ---- booleans, integers, percentages ---- */

int fr_parse_bool(const char *opt, const char *s, bool *out) {
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    const char *p, *end;
    trim(s, &p, &end);
    size_t len = (size_t)(end - p);
    for (size_t i = 0; i < 4; i++) {
        if (strlen(yes[i]) == len && !strncasecmp(p, yes[i], len)) { *out = true; return 0; }
        if (strlen(no[i]) == len && !strncasecmp(p, no[i], len)) { *out = false; return 0; }
    }
    return bad(opt, "boolean", s, "true/false, yes/no, on/off or 1/0");
}

int fr_parse_int(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out) {
    const char *p, *end;
    trim(s, &p, &end);
    bool neg = p < end && *p == '-';
    if (neg || (p < end && *p == '+')) p++;
    uint64_t mag = 0;
    const char *digits = p;
    bool overflow = false;
    while (p < end && isdigit((unsigned char)*p)) {
        unsigned d = (unsigned)(*p++ - '0');
        if (mag > (UINT64_MAX - d) / 10) overflow = true;
        else mag = mag * 10 + d;
    }
    if (p == digits || p != end)
        return fr_errf(FR_EINVAL, "%s: bad integer '%.*s' (want an integer from %lld to %lld)", opt,
                       SHOW, s, (long long)lo, (long long)hi);
    int64_t v;
    if (overflow || (neg ? mag > (uint64_t)INT64_MAX + 1 : mag > (uint64_t)INT64_MAX)) goto range;
    v = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    if (v < lo || v > hi) goto range;
    *out = v;
    return 0;
range:
    return fr_errf(FR_EINVAL, "%s: %.*s is out of range (want an integer from %lld to %lld)", opt, SHOW,
                   s, (long long)lo, (long long)hi);
}

int fr_parse_percent(const char *opt, const char *s, double lo, double hi, double *out) {
    const char *p, *end;
    num n;
    trim(s, &p, &end);
    if (end > p && end[-1] == '%') end--;
    if (!scan_num(&p, end, &n) || p != end || n.overflow)
        return fr_errf(FR_EINVAL, "%s: bad percentage '%.*s' (want a number from %g to %g, like 80 or 80%%)",
                       opt, SHOW, s, lo, hi);
    double v = num_value(&n);
    if (v < lo || v > hi)
        return fr_errf(FR_EINVAL, "%s: percentage %.*s out of range (want %g to %g)", opt, SHOW, s, lo, hi);
    *out = v;
    return 0;
}
