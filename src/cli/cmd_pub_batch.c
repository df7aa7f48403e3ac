/* cmd_pub_batch.c - houston pub --batch FILE: every JSON line of FILE (or
 * stdin) published with POST /api/v1/messages/batch, in requests of at
 * most the server's maxBatch messages and maxBody bytes (GET /api/v1/info),
 * each stored message on stdout as one JSON line.
 *
 * The whole file is read and checked first, so a malformed line sends
 * nothing. Each request is atomic on the server; a file longer than one
 * request is not: the first request that fails stops the command, and the
 * requests before it stay stored (their messages were printed). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/api.h"
#include "cli/commands.h"
#include "cli/output.h"

#define DEFAULT_MAX_BATCH 1000
#define DEFAULT_MAX_BODY  (1024 * 1024)
/* {"messages":[ ... ]} around the elements, and a comma each. */
#define ENVELOPE 32

/* Reads FILE's lines into a JSON array; blank lines are skipped. */
static json_t *read_lines(const char *path)
{
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (in == NULL) {
        hs_cli_error("cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    json_t *list = json_array();
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned long number = 0;
    while ((len = getline(&line, &cap, in)) >= 0) {
        number++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
            line[--len] = '\0';
        if (len == 0)
            continue;
        json_error_t jerr;
        json_t *element = json_loadb(line, (size_t)len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(element)) {
            hs_cli_error("%s line %lu: %s", path, number,
                         element ? "not a JSON object" : jerr.text);
            json_decref(element);
            json_decref(list);
            list = NULL;
            break;
        }
        json_array_append_new(list, element);
    }
    free(line);
    if (list && ferror(in)) {
        hs_cli_error("cannot read %s: %s", path, strerror(errno));
        json_decref(list);
        list = NULL;
    }
    if (in != stdin)
        fclose(in);
    return list;
}

/* The server's limits.maxBatch and limits.maxBody (GET /api/v1/info). */
static int server_limits(const hs_cli_options_t *opt, size_t *max_batch, size_t *max_body)
{
    int status;
    json_t *info;
    if (hs_cli_api_call(opt, "GET", "/api/v1/info", NULL, &status, &info) != 0)
        return -1;
    json_t *limits = json_object_get(info, "limits");
    json_int_t batch = json_integer_value(json_object_get(limits, "maxBatch"));
    json_int_t body = json_integer_value(json_object_get(limits, "maxBody"));
    *max_batch = batch > 0 ? (size_t)batch : DEFAULT_MAX_BATCH;
    *max_body = body > ENVELOPE ? (size_t)body : DEFAULT_MAX_BODY;
    json_decref(info);
    return 0;
}

/* One request; prints the stored messages. */
static int send_batch(const hs_cli_options_t *opt, json_t *messages)
{
    json_t *body = json_pack("{s:O}", "messages", messages);
    int status;
    json_t *answer;
    int rc = hs_cli_api_call(opt, "POST", "/api/v1/messages/batch", body, &status, &answer);
    json_decref(body);
    if (rc != 0)
        return -1;
    json_t *stored = json_object_get(answer, "messages");
    if (status != 201 || !json_is_array(stored)) {
        hs_cli_error("expected 201 Created with \"messages\", got HTTP %d", status);
        json_decref(answer);
        return -1;
    }
    size_t i;
    json_t *m;
    json_array_foreach(stored, i, m) if (hs_cli_print_json_line(m) != 0) rc = -1;
    json_decref(answer);
    return rc;
}

int hs_cli_cmd_pub_batch(const hs_cli_options_t *opt)
{
    json_t *all = read_lines(opt->batch);
    if (all == NULL)
        return HS_CLI_EXIT_FAIL;
    size_t max_batch, max_body;
    if (json_array_size(all) == 0 || server_limits(opt, &max_batch, &max_body) != 0) {
        if (json_array_size(all) == 0)
            hs_cli_error("%s has no messages", opt->batch);
        json_decref(all);
        return HS_CLI_EXIT_FAIL;
    }
    int rc = 0;
    size_t sent = 0, total = json_array_size(all);
    while (rc == 0 && sent < total) {
        /* As many as the count and the body limit allow, at least one (a
         * single element too large is the server's to refuse). */
        json_t *chunk = json_array();
        size_t bytes = ENVELOPE;
        while (sent < total && json_array_size(chunk) < max_batch) {
            json_t *element = json_array_get(all, sent);
            char *text = json_dumps(element, JSON_COMPACT);
            size_t len = text ? strlen(text) + 1 : 0;
            free(text);
            if (json_array_size(chunk) > 0 && bytes + len > max_body)
                break;
            bytes += len;
            json_array_append(chunk, element);
            sent++;
        }
        size_t first = sent - json_array_size(chunk);
        rc = send_batch(opt, chunk);
        if (rc != 0 && first > 0)
            hs_cli_error("messages %zu to %zu of %s were not stored; the %zu before them were",
                         first + 1, sent, opt->batch, first);
        json_decref(chunk);
    }
    json_decref(all);
    return rc == 0 ? HS_CLI_EXIT_OK : HS_CLI_EXIT_FAIL;
}
