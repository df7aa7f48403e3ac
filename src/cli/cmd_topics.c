/* cmd_topics.c - houston topics [PREFIX]
 *
 * Prints every topic (named PREFIX*, when given) as one JSON line each, in
 * name order, paging through GET /api/v1/topics (1000 a page): its message
 * count, first and last id, subscribers and retention, as the API shows it.
 */
#include <stdio.h>
#include <string.h>

#include "cli/api.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "core/alloc.h"
#include "core/error.h"

int hs_cli_cmd_topics(const hs_cli_options_t *opt)
{
    const char *prefix = opt->arg_count > 0 ? opt->args[0] : NULL;
    char prefix_q[1024] = "", after_q[1024] = "", target[2200];
    if (prefix)
        hs_cli_url_encode(prefix, prefix_q, sizeof(prefix_q));
    char *after = NULL;
    int rc = 0;
    do {
        if (after)
            hs_cli_url_encode(after, after_q, sizeof(after_q));
        snprintf(target, sizeof(target), "/api/v1/topics?limit=%d%s%s%s%s", HS_CLI_PAGE_MAX,
                 prefix ? "&prefix=" : "", prefix_q, after ? "&after=" : "", after ? after_q : "");
        int status;
        json_t *page = NULL;
        if ((rc = hs_cli_api_call(opt, "GET", target, NULL, &status, &page)) != 0)
            break;
        json_t *topics = json_object_get(page, "topics");
        if (!json_is_array(topics)) {
            hs_cli_error("the topics answer has no \"topics\" array");
            json_decref(page);
            rc = HS_EPROTO;
            break;
        }
        size_t i;
        json_t *topic;
        json_array_foreach(topics, i, topic)
        {
            if (rc == 0)
                rc = hs_cli_print_json_line(topic);
        }
        const char *next = json_string_value(json_object_get(page, "next"));
        hs_free(after);
        after = next && rc == 0 ? hs_strdup(next) : NULL;
        json_decref(page);
    } while (after);
    hs_free(after);
    return rc == 0 ? HS_CLI_EXIT_OK : HS_CLI_EXIT_FAIL;
}
