/* cmd_pub.c - houston pub TOPIC TEXT [--author A]: POST /api/v1/messages,
 * the stored message on stdout (--batch FILE: cmd_pub_batch.c). */
#include <jansson.h>

#include "cli/api.h"
#include "cli/commands.h"
#include "cli/output.h"

int hs_cli_cmd_pub(const hs_cli_options_t *opt)
{
    if (opt->batch && opt->arg_count == 0)
        return hs_cli_cmd_pub_batch(opt);
    if (opt->batch || opt->arg_count != 2) {
        hs_cli_error("usage: houston pub TOPIC TEXT [--author A] | houston pub --batch FILE");
        return HS_CLI_EXIT_USAGE;
    }
    json_t *body = json_object();
    json_object_set_new(body, "topic", json_string(opt->args[0]));
    json_object_set_new(body, "content", json_string(opt->args[1]));
    if (opt->author)
        json_object_set_new(body, "author", json_string(opt->author));
    if (json_object_size(body) != (opt->author ? 3u : 2u)) {
        json_decref(body);
        hs_cli_error("TOPIC, TEXT and --author must be UTF-8");
        return HS_CLI_EXIT_USAGE;
    }
    int status;
    json_t *answer;
    int rc = hs_cli_api_call(opt, "POST", "/api/v1/messages", body, &status, &answer);
    json_decref(body);
    if (rc != 0)
        return HS_CLI_EXIT_FAIL;
    if (status != 201) {
        hs_cli_error("expected 201 Created, got HTTP %d", status);
        json_decref(answer);
        return HS_CLI_EXIT_FAIL;
    }
    rc = hs_cli_print_json_line(answer);
    json_decref(answer);
    return rc == 0 ? HS_CLI_EXIT_OK : HS_CLI_EXIT_FAIL;
}
