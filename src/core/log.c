#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/clock.h"

hs_log_state_t hs_log_singleton = {.threshold = HS_LOG_INFO};

static const char *const level_names[] = {"DEBUG", "INFO ", "WARN ", "ERROR", "OFF  "};

void hs_log_write(hs_log_level_t level, const char *fmt, ...)
{
    char line[2048];
    size_t len = hs_format_rfc3339_ms(hs_now_ms(), line);
    len += (size_t)snprintf(line + len, sizeof(line) - len, " %s ", level_names[level]);

    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    len += (size_t)n;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2; /* truncated: still one line */
    for (size_t i = HS_RFC3339_MS_LEN; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}

void hs_log_set_level(hs_log_level_t level)
{
    hs_log_singleton.threshold = level;
}

bool hs_log_parse_level(const char *name, hs_log_level_t *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i <= HS_LOG_OFF; i++) {
        if (strcasecmp(name, names[i]) == 0) {
            *out = (hs_log_level_t)i;
            return true;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *out = HS_LOG_WARN;
        return true;
    }
    return false;
}
