/*
 * parse.h — operator values: sizes, durations, booleans, integers,
 * percentages.  One set of rules for command-line flags, FRUGAL_*
 * environment variables and the INI file, so that "6G" means the same
 * thing wherever it is written.
 *
 * Every parser takes `opt`, the name of the place the value came from
 * ("--memory-budget", "FRUGAL_PORT", "frugal.ini:4: [server] port"), and
 * on bad input returns FR_EINVAL with a detail naming opt, the value and
 * what was expected:
 *
 *   --port: bad integer 'http' (want an integer from 0 to 65535)
 *
 * Leading and trailing blanks are ignored; anything else that is not part
 * of the value is an error (no silent "12abc" → 12).  Nothing allocates;
 * every function is thread-safe.
 *
 * Sizes:      "100000", "512K", "512M", "6G", "1T" (K/M/G/T and KiB/MiB/
 *             GiB/TiB are powers of 1024; KB/MB/GB/TB are powers of 1000),
 *             fractions ("1.5G", "1.5GiB"), an optional trailing "B" for
 *             bytes ("512B"), and, where a total is given, "75%" of it.
 *             The result is rounded down to whole bytes.
 * Durations:  "250ms", "30s", "5m", "1h30m", "1d" (units ms, s, m, h, d,
 *             combined largest first); a bare number is seconds ("90",
 *             "1.5"); "0" is zero; "-1" means never (FR_DURATION_NEVER).
 * Booleans:   true/false, yes/no, on/off, 1/0 (any letter case).
 */
#ifndef FR_BASE_PARSE_H
#define FR_BASE_PARSE_H

#include <stdbool.h>
#include <stdint.h>

/* A duration of -1: "never" (a keep-alive that never expires). */
#define FR_DURATION_NEVER (-1)
/* Durations reach 2^53 ms at most (past it a double no longer holds every
 * millisecond, and a cast to int64_t could be undefined). */
#define FR_DURATION_MAX_MS 9007199254740992.0

/* A size in bytes.  total: what "N%" is a percentage of; 0 refuses
 * percentages (the detail says a percentage is not allowed there).
 * Sizes above 2^63 are out of range. */
int fr_parse_size(const char *opt, const char *s, uint64_t total, uint64_t *out);

/* A size in bytes or a percentage, without resolving the percentage: for
 * values whose total is known only later (the memory budget is a share of
 * the smaller of RAM and the cgroup limit, read by the manager).  Exactly
 * one of *bytes and *pct is set non-zero on success, unless the value is
 * zero (both 0).  pct is in (0, 100]. */
int fr_parse_size_or_pct(const char *opt, const char *s, uint64_t *bytes, double *pct);

/* A duration in milliseconds: >= 0, or FR_DURATION_NEVER for "-1".  The
 * result is rounded to the nearest millisecond; durations from
 * FR_DURATION_MAX_MS on are out of range. */
int fr_parse_duration_ms(const char *opt, const char *s, int64_t *out_ms);

/* A boolean. */
int fr_parse_bool(const char *opt, const char *s, bool *out);

/* A decimal integer in [lo, hi]. */
int fr_parse_int(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out);

/* A number in [lo, hi], with an optional trailing '%' ("80" or "80%"). */
int fr_parse_percent(const char *opt, const char *s, double lo, double hi, double *out);

#endif
