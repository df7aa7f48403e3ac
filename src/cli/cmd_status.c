/* cmd_status.c - houston status: readiness (/readyz) and a few counters
 * from /metrics of a running server, for a human. Exit 0 when ready. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api.h"
#include "cli/commands.h"
#include "cli/http_client.h"
#include "cli/output.h"
#include "core/error.h"
#include "core/metrics.h"

/* The value of an unlabelled sample "name value" in a Prometheus text
 * page; returns 0 when found. */
static int find_sample(const char *page, const char *name, double *value)
{
    size_t len = strlen(name);
    for (const char *line = page; line && *line;
         line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        if (strncmp(line, name, len) == 0 && line[len] == ' ') {
            *value = strtod(line + len + 1, NULL);
            return 0;
        }
    }
    return HS_ENOTFOUND;
}

static void print_reason(const char *body)
{
    json_t *root = json_loads(body, 0, NULL);
    const char *message =
        json_string_value(json_object_get(json_object_get(root, "error"), "message"));
    printf("  %-24s %s\n", "reason", message ? message : body);
    json_decref(root);
}

int hs_cli_cmd_status(const hs_cli_options_t *opt)
{
    hs_cli_response_t ready, metrics;
    char err[512], shown[1400];
    hs_cli_url_show(&opt->api, shown, sizeof(shown));
    int rc = hs_cli_http_request(&opt->api, &opt->tls, "GET", "/readyz", opt->api_key, NULL, &ready,
                                 err, sizeof(err));
    if (rc != 0) {
        hs_cli_api_print_failure(opt, rc, err);
        return HS_CLI_EXIT_FAIL;
    }
    int is_ready = ready.status == 200;
    printf("houston at %s: %s\n", shown, is_ready ? "ready" : "NOT READY");
    if (!is_ready)
        print_reason(ready.body);
    hs_cli_response_dispose(&ready);
    if (hs_cli_http_request(&opt->api, &opt->tls, "GET", "/metrics", opt->api_key, NULL, &metrics,
                            err, sizeof(err)) != 0 ||
        metrics.status != 200) {
        printf("  %-24s unavailable (%s)\n", "metrics", metrics.body ? "HTTP error" : err);
        hs_cli_response_dispose(&metrics);
        fflush(stdout);
        return is_ready ? HS_CLI_EXIT_OK : HS_CLI_EXIT_FAIL;
    }
    /* The lines shown are the metrics the table gives a label. */
    for (size_t i = 0; i < hs_metric_def_count; i++) {
        const hs_metric_def_t *def = &hs_metric_defs[i];
        double value;
        if (def->status_label && find_sample(metrics.body, def->name, &value) == 0)
            printf("  %-24s %.0f\n", def->status_label, value);
    }
    hs_cli_response_dispose(&metrics);
    fflush(stdout);
    return is_ready ? HS_CLI_EXIT_OK : HS_CLI_EXIT_FAIL;
}
