#include "core/clock.h"

#include <time.h>

uint64_t hs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

size_t hs_format_rfc3339_ms(uint64_t ms, char out[HS_RFC3339_MS_LEN + 1])
{
    time_t secs = (time_t)(ms / 1000u);
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* Written by hand: the fields are bounded, so no truncation is possible
     * and no format-truncation warning needs silencing. */
    unsigned year = (unsigned)(tm.tm_year + 1900) % 10000u;
    const unsigned fields[] = {(unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday, (unsigned)tm.tm_hour,
                               (unsigned)tm.tm_min, (unsigned)tm.tm_sec};
    static const char seps[] = "--T::";
    char *p = out;
    *p++ = (char)('0' + year / 1000u);
    *p++ = (char)('0' + year / 100u % 10u);
    *p++ = (char)('0' + year / 10u % 10u);
    *p++ = (char)('0' + year % 10u);
    for (int i = 0; i < 5; i++) {
        *p++ = seps[i];
        *p++ = (char)('0' + fields[i] / 10u % 10u);
        *p++ = (char)('0' + fields[i] % 10u);
    }
    unsigned millis = (unsigned)(ms % 1000u);
    *p++ = '.';
    *p++ = (char)('0' + millis / 100u);
    *p++ = (char)('0' + millis / 10u % 10u);
    *p++ = (char)('0' + millis % 10u);
    *p++ = 'Z';
    *p = '\0';
    return HS_RFC3339_MS_LEN;
}
