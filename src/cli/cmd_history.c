/* cmd_history.c - houston history TOPIC [--limit N] [--before ID | --after ID]
 *
 * Prints one JSON line per message, always oldest first, paging through
 * GET /api/v1/messages (1000 a page):
 *   no flag            the whole history
 *   --after ID         every message after ID        (--limit N: the first N)
 *   --before ID        every message before ID       (--limit N: the last N)
 *   --limit N          the N newest messages
 * Walks that end at a cursor go forward and stream; walks that keep the last
 * N go backward and hold at most N messages before printing them.
 */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#include "cli/api.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "core/alloc.h"
#include "core/error.h"

#define ULID_LEN 26

typedef struct walk {
    const hs_cli_options_t *opt;
    const char *topic;
    hs_cli_progress_t progress;
    unsigned long count;
} walk_t;

static unsigned page_size(unsigned long remaining)
{
    return remaining == 0 || remaining > HS_CLI_PAGE_MAX ? HS_CLI_PAGE_MAX : (unsigned)remaining;
}

/* Forward from after (NULL: the start), at most limit (0: all), stopping
 * before the first id >= before (NULL: no end). Upper case before, since ids
 * are compared as strings (ULIDs sort by time when upper case). */
static int walk_forward(walk_t *w, const char *after, const char *before, unsigned long limit)
{
    char *cursor = after ? hs_strdup(after) : NULL;
    int rc = 0;
    for (;;) {
        json_t *page;
        rc = hs_cli_api_history_page(w->opt, w->topic, cursor,
                                     page_size(limit ? limit - w->count : 0), true, &page);
        if (rc != 0)
            break;
        json_t *messages = json_object_get(page, "messages");
        size_t i;
        json_t *msg;
        bool done = false;
        json_array_foreach(messages, i, msg)
        {
            const char *id = json_string_value(json_object_get(msg, "id"));
            if (before && id && strcmp(id, before) >= 0) {
                done = true;
                break;
            }
            if ((rc = hs_cli_print_json_line(msg)) != 0) {
                done = true;
                break;
            }
            if (++w->count == limit) {
                done = true;
                break;
            }
        }
        const char *next = json_string_value(json_object_get(page, "next"));
        hs_free(cursor);
        cursor = next && !done ? hs_strdup(next) : NULL;
        json_decref(page);
        if (cursor == NULL)
            break;
        hs_cli_progress_update(&w->progress, "history %s: %lu messages", w->topic, w->count);
    }
    hs_free(cursor);
    return rc;
}

/* Backward from before (NULL: the newest) collecting limit messages, then
 * printed oldest first. */
static int walk_backward(walk_t *w, const char *before, unsigned long limit)
{
    json_t *held = json_array();
    char *cursor = before ? hs_strdup(before) : NULL;
    int rc = 0;
    while (json_array_size(held) < limit) {
        json_t *page;
        rc = hs_cli_api_history_page(w->opt, w->topic, cursor,
                                     page_size(limit - json_array_size(held)), false, &page);
        if (rc != 0)
            break;
        json_t *messages = json_object_get(page, "messages");
        size_t i;
        json_t *msg;
        json_array_foreach(messages, i, msg)
        {
            if (json_array_size(held) < limit)
                json_array_append(held, msg);
        }
        const char *next = json_string_value(json_object_get(page, "next"));
        hs_free(cursor);
        cursor = next ? hs_strdup(next) : NULL;
        json_decref(page);
        if (cursor == NULL)
            break;
        hs_cli_progress_update(&w->progress, "history %s: %zu messages", w->topic,
                               json_array_size(held));
    }
    hs_free(cursor);
    hs_cli_progress_done(&w->progress);
    for (size_t i = json_array_size(held); rc == 0 && i > 0; i--)
        rc = hs_cli_print_json_line(json_array_get(held, i - 1));
    json_decref(held);
    return rc;
}

static char *upper_id(const char *id)
{
    char *copy = hs_strdup(id);
    for (char *p = copy; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    return copy;
}

int hs_cli_cmd_history(const hs_cli_options_t *opt)
{
    walk_t w = {.opt = opt, .topic = opt->args[0]};
    hs_cli_progress_init(&w.progress);
    char *before = opt->before ? upper_id(opt->before) : NULL;
    if (before && strlen(before) != ULID_LEN) {
        hs_cli_error("--before: \"%s\" is not a ULID (26 characters)", opt->before);
        hs_free(before);
        return HS_CLI_EXIT_USAGE;
    }
    int rc;
    if (opt->limit && !opt->after)
        rc = walk_backward(&w, before, opt->limit);
    else
        rc = walk_forward(&w, opt->after, before, opt->limit);
    hs_cli_progress_done(&w.progress);
    hs_free(before);
    return rc == 0 ? HS_CLI_EXIT_OK : HS_CLI_EXIT_FAIL;
}
