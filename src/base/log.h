/*
 * log.h — one-line log messages on stderr.
 *
 * The level threshold comes from FRUGAL_LOG (error, warn, info, debug;
 * default warn) or fr_log_set_level().  Thread-safe: each message is one
 * write.
 */
#ifndef FR_BASE_LOG_H
#define FR_BASE_LOG_H

enum { FR_LOG_ERROR, FR_LOG_WARN, FR_LOG_INFO, FR_LOG_DEBUG };

void fr_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fr_log_set_level(int level);
int  fr_log_level(void);

#define FR_ERROR(...) fr_log(FR_LOG_ERROR, __VA_ARGS__)
#define FR_WARN(...)  fr_log(FR_LOG_WARN, __VA_ARGS__)
#define FR_INFO(...)  fr_log(FR_LOG_INFO, __VA_ARGS__)
#define FR_DEBUG(...) fr_log(FR_LOG_DEBUG, __VA_ARGS__)

#endif
