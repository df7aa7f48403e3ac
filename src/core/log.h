/* log.h - one line per event, with a level, to stderr.
 *
 *   2026-11-24T15:54:17.123Z INFO  notifier: conn 01J... connected from 127.0.0.1:51234
 *
 * The level is checked before the arguments are evaluated. Lines are written
 * with a single write(2) so lines from different threads never interleave.
 * The threshold lives in the hs_log_singleton; set it once at start-up.
 */
#ifndef HS_CORE_LOG_H
#define HS_CORE_LOG_H

#include <stdbool.h>

typedef enum {
    HS_LOG_DEBUG = 0,
    HS_LOG_INFO = 1,
    HS_LOG_WARN = 2,
    HS_LOG_ERROR = 3,
    HS_LOG_OFF = 4,
} hs_log_level_t;

typedef struct hs_log_state {
    hs_log_level_t threshold;
    bool json; /* one JSON object per line instead of text */
} hs_log_state_t;

/* Process-wide logging settings: written at start-up, read everywhere. */
extern hs_log_state_t hs_log_singleton;

#define hs_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) >= hs_log_singleton.threshold)                                                 \
            hs_log_write((level), __VA_ARGS__);                                                    \
    } while (0)

#define hs_log_debug(...) hs_log(HS_LOG_DEBUG, __VA_ARGS__)
#define hs_log_info(...)  hs_log(HS_LOG_INFO, __VA_ARGS__)
#define hs_log_warn(...)  hs_log(HS_LOG_WARN, __VA_ARGS__)
#define hs_log_error(...) hs_log(HS_LOG_ERROR, __VA_ARGS__)

/* Writes one line unconditionally; use the macros above instead. */
void hs_log_write(hs_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void hs_log_set_level(hs_log_level_t level);
/* Text lines or JSON objects ({"time","level","msg"}), one per line. */
void hs_log_set_json(bool json);
/* Parses "debug", "info", "warn", "error" or "off"; returns false if unknown. */
bool hs_log_parse_level(const char *name, hs_log_level_t *out);

#endif
