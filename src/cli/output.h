/* output.h - what the client commands write: JSON lines on stdout, errors
 * and progress on stderr.
 *
 * Progress lines are written only when stderr is a terminal ("long
 * operations show progress on a terminal and stay quiet in pipes"); each
 * overwrites the previous one and hs_cli_progress_done erases it.
 */
#ifndef HS_CLI_OUTPUT_H
#define HS_CLI_OUTPUT_H

#include <jansson.h>
#include <stdbool.h>

/* "houston: <message>\n" on stderr (after erasing a progress line). */
void hs_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One compact JSON line on stdout, flushed at once so a pipe sees each
 * message when it arrives. HS_EIO when stdout is gone (a closed pipe). */
int hs_cli_print_json_line(const json_t *value);

typedef struct hs_cli_progress {
    bool enabled; /* stderr is a terminal */
    bool shown;   /* a line is on screen */
    unsigned long long last_ms;
} hs_cli_progress_t;

void hs_cli_progress_init(hs_cli_progress_t *progress);
/* Shows a progress line, at most every 100 ms; nothing when not enabled. */
void hs_cli_progress_update(hs_cli_progress_t *progress, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Erases the progress line, if one is shown. */
void hs_cli_progress_done(hs_cli_progress_t *progress);

#endif
