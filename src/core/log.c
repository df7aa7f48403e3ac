#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/clock.h"

hs_log_state_t hs_log_singleton = {.threshold = HS_LOG_INFO};

static const char *const level_names[] = {"DEBUG", "INFO ", "WARN ", "ERROR", "OFF  "};

static const char *const json_level_names[] = {"debug", "info", "warn", "error", "off"};

/* The message as a JSON string body: quotes, backslashes and control
 * characters escaped. */
static size_t json_escape(char *out, size_t cap, const char *in, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 7 < cap; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    return o;
}

void hs_log_write(hs_log_level_t level, const char *fmt, ...)
{
    char message[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    size_t message_len = n < 0 ? 0 : (size_t)n >= sizeof(message) ? sizeof(message) - 1 : (size_t)n;

    char line[4096 + 128];
    char time[HS_RFC3339_MS_LEN + 1];
    hs_format_rfc3339_ms(hs_now_ms(), time);
    size_t len;
    if (hs_log_singleton.json) {
        len = (size_t)snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"",
                               time, json_level_names[level]);
        len += json_escape(line + len, sizeof(line) - len - 4, message, message_len);
        memcpy(line + len, "\"}\n", 3);
        len += 3;
    } else {
        len = (size_t)snprintf(line, sizeof(line), "%s %s ", time, level_names[level]);
        for (size_t i = 0; i < message_len; i++) /* one event, one line */
            line[len++] = message[i] == '\n' || message[i] == '\r' ? ' ' : message[i];
        line[len++] = '\n';
    }
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}

void hs_log_set_level(hs_log_level_t level)
{
    hs_log_singleton.threshold = level;
}

void hs_log_set_json(bool json)
{
    hs_log_singleton.json = json;
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
