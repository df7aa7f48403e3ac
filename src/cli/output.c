/* output.c - JSON lines, errors, and the progress line. */
#include "cli/output.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"

/* The one progress line on screen, so that an error can erase it first.
 * Process-wide by nature (there is one stderr). */
static hs_cli_progress_t *active_progress;

void hs_cli_error(const char *fmt, ...)
{
    if (active_progress)
        hs_cli_progress_done(active_progress);
    va_list ap;
    va_start(ap, fmt);
    fputs("houston: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int hs_cli_print_json_line(const json_t *value)
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (text == NULL)
        return HS_EINVAL;
    int bad = fputs(text, stdout) == EOF || fputc('\n', stdout) == EOF || fflush(stdout) != 0;
    free(text);
    return bad ? HS_EIO : 0;
}

static unsigned long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000ull + (unsigned long long)ts.tv_nsec / 1000000ull;
}

void hs_cli_progress_init(hs_cli_progress_t *progress)
{
    progress->enabled = isatty(STDERR_FILENO) == 1;
    progress->shown = false;
    progress->last_ms = 0;
}

void hs_cli_progress_update(hs_cli_progress_t *progress, const char *fmt, ...)
{
    if (!progress->enabled)
        return;
    unsigned long long now = now_ms();
    if (progress->shown && now - progress->last_ms < 100)
        return;
    progress->last_ms = now;
    progress->shown = true;
    active_progress = progress;
    va_list ap;
    va_start(ap, fmt);
    fputs("\r\033[K", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
}

void hs_cli_progress_done(hs_cli_progress_t *progress)
{
    if (progress->shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    progress->shown = false;
    if (active_progress == progress)
        active_progress = NULL;
}
