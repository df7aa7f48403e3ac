/* clock.h - wall-clock time and its RFC 3339 rendering. */
#ifndef HS_CORE_CLOCK_H
#define HS_CORE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#define HS_RFC3339_MS_LEN 24 /* "2026-11-24T15:54:17.123Z" */

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). Thread-safe. */
uint64_t hs_now_ms(void);

/* Writes ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC) and a NUL into out; returns 24. */
size_t hs_format_rfc3339_ms(uint64_t ms, char out[HS_RFC3339_MS_LEN + 1]);

#endif
