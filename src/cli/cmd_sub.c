/* cmd_sub.c - houston sub TOPIC... [--since ID]
 *
 * Finds the WebSocket (discover.h: --ws-server, else GET /api/v1/info),
 * opens it (with --token as its client token), reads the connected frame, subscribes each topic
 * through POST /api/v1/subscribes, then prints every message as one JSON
 * line (the message object). With --since ID it first prints each topic's
 * history after ID, then goes on live without a gap or a duplicate:
 *
 *   1. subscribe first, so every message committed after the subscribe
 *      answer arrives live;
 *   2. page the history forward from ID; live frames that arrive meanwhile
 *      are read (pings answered) and held, at most HOLD_MAX of them;
 *   3. print the held frames, then live ones, skipping any message whose id
 *      is not greater than the last id printed for its topic. Ids are ULIDs
 *      in publish order, and each topic's frames arrive in publish order, so
 *      "id greater than the last one printed" is exactly "not printed yet".
 *
 * SIGINT or SIGTERM closes the WebSocket with 1000 and exits 0; the server
 * closing the connection (1001 at its shutdown, or the socket ending) exits 1.
 */
#include <ctype.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli/api.h"
#include "cli/commands.h"
#include "cli/discover.h"
#include "cli/output.h"
#include "cli/ws_client.h"
#include "core/alloc.h"
#include "core/error.h"

#define CONNECT_TIMEOUT_MS 10000
#define CLOSE_TIMEOUT_MS   2000
#define HOLD_MAX           100000
#define ULID_LEN           26

/* Set by the signal handler; the one piece of process-wide state sub needs,
 * since a signal handler cannot be given a context. */
static volatile sig_atomic_t stop_requested;

static void stop_cb(int signum)
{
    (void)signum;
    stop_requested = 1;
}

typedef struct sub {
    const hs_cli_options_t *opt;
    hs_cli_ws_t *ws;
    /* last id printed per topic (opt->args order), "" before the first */
    char last_id[HS_CLI_MAX_ARGS][ULID_LEN + 1];
    json_t *held; /* live messages that arrived during the catch-up */
    bool holding;
    hs_cli_progress_t progress;
} sub_t;

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = stop_cb;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocking wait returns at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static int topic_index(const sub_t *s, const char *topic)
{
    for (int i = 0; topic && i < s->opt->arg_count; i++)
        if (strcmp(s->opt->args[i], topic) == 0)
            return i;
    return -1;
}

/* Prints msg unless its topic already printed it (or a later one). */
static int deliver(sub_t *s, json_t *msg)
{
    int t = topic_index(s, json_string_value(json_object_get(msg, "topic")));
    const char *id = json_string_value(json_object_get(msg, "id"));
    if (t >= 0 && id) {
        if (strcmp(id, s->last_id[t]) <= 0)
            return 0;
        snprintf(s->last_id[t], sizeof(s->last_id[t]), "%s", id);
    }
    return hs_cli_print_json_line(msg);
}

/* A text frame from the server: message frames are delivered (or held);
 * anything else (a notification, an error frame) is not a message and is
 * left out of stdout. */
static int on_frame(sub_t *s, const char *text, size_t len)
{
    json_t *frame = json_loadb(text, len, JSON_ALLOW_NUL, NULL);
    json_t *msg = json_object_get(frame, "message");
    const char *type = json_string_value(json_object_get(frame, "type"));
    int rc = 0;
    if (type && strcmp(type, "message") == 0 && json_is_object(msg)) {
        if (!s->holding) {
            rc = deliver(s, msg);
        } else if (json_array_size(s->held) >= HOLD_MAX) {
            hs_cli_error("more than %d live messages arrived during the catch-up", HOLD_MAX);
            rc = HS_ETOOBIG;
        } else {
            json_array_append(s->held, msg);
        }
    }
    json_decref(frame);
    return rc;
}

static void report_closed(const sub_t *s)
{
    uint16_t code = hs_cli_ws_close_code(s->ws);
    if (code == 1001)
        hs_cli_error("the server is going away (close code 1001)");
    else if (code == 1006)
        hs_cli_error("the connection to the server was lost");
    else
        hs_cli_error("the server closed the connection (close code %u)", code);
}

/* Reads frames for up to timeout_ms. 0 to go on, else an error (printed). */
static int pump(sub_t *s, int timeout_ms)
{
    char *text;
    size_t len;
    int rc = hs_cli_ws_read(s->ws, timeout_ms, &text, &len);
    while (rc == 1) {
        rc = on_frame(s, text, len);
        hs_free(text);
        if (rc != 0)
            return rc;
        /* Take whatever else is already there without waiting. */
        rc = hs_cli_ws_read(s->ws, 0, &text, &len);
    }
    if (rc == HS_ECLOSED)
        report_closed(s);
    else if (rc < 0)
        hs_cli_error("WebSocket: %s", hs_strerror(rc));
    return rc;
}

static int read_connection_id(sub_t *s, char *out, size_t cap)
{
    char *text;
    size_t len;
    int rc = hs_cli_ws_read(s->ws, CONNECT_TIMEOUT_MS, &text, &len);
    if (rc != 1) {
        if (rc == HS_ECLOSED)
            report_closed(s);
        else
            hs_cli_error("no connected frame from the server");
        return HS_EIO;
    }
    json_t *frame = json_loadb(text, len, 0, NULL);
    const char *id = json_string_value(json_object_get(frame, "connectionID"));
    const char *type = json_string_value(json_object_get(frame, "type"));
    rc = id && type && strcmp(type, "connected") == 0 ? 0 : HS_EPROTO;
    if (rc == 0)
        snprintf(out, cap, "%s", id);
    else
        hs_cli_error("expected the connected frame, got: %.200s", text);
    json_decref(frame);
    hs_free(text);
    return rc;
}

static int subscribe_all(sub_t *s, const char *connection_id)
{
    for (int i = 0; i < s->opt->arg_count; i++) {
        json_t *body = json_object();
        json_object_set_new(body, "topic", json_string(s->opt->args[i]));
        json_object_set_new(body, "connectionID", json_string(connection_id));
        int status;
        json_t *answer;
        int rc = hs_cli_api_call(s->opt, "POST", "/api/v1/subscribes", body, &status, &answer);
        json_decref(body);
        json_decref(answer);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Step 2 for one topic: its history after the cursor, page by page. */
static int catch_up_topic(sub_t *s, int t, const char *since, unsigned long *count)
{
    char *cursor = hs_strdup(since);
    int rc = 0;
    while (cursor && rc == 0 && !stop_requested) {
        json_t *page;
        rc = hs_cli_api_history_page(s->opt, s->opt->args[t], cursor, HS_CLI_PAGE_MAX, true, &page);
        if (rc != 0)
            break;
        size_t i;
        json_t *msg;
        json_array_foreach(json_object_get(page, "messages"), i, msg)
        {
            if (rc == 0)
                rc = deliver(s, msg);
            (*count)++;
        }
        const char *next = json_string_value(json_object_get(page, "next"));
        hs_free(cursor);
        cursor = next ? hs_strdup(next) : NULL;
        json_decref(page);
        hs_cli_progress_update(&s->progress, "catching up on %s: %lu messages", s->opt->args[t],
                               *count);
        if (rc == 0)
            rc = pump(s, 0);
    }
    hs_free(cursor);
    return rc;
}

static int catch_up(sub_t *s, const char *since)
{
    char cursor[ULID_LEN + 1];
    snprintf(cursor, sizeof(cursor), "%s", since);
    for (char *p = cursor; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    for (int t = 0; t < s->opt->arg_count; t++)
        snprintf(s->last_id[t], sizeof(s->last_id[t]), "%s", cursor);
    s->holding = true;
    s->held = json_array();
    int rc = 0;
    unsigned long count = 0;
    for (int t = 0; t < s->opt->arg_count && rc == 0 && !stop_requested; t++)
        rc = catch_up_topic(s, t, since, &count);
    hs_cli_progress_done(&s->progress);
    s->holding = false;
    size_t i;
    json_t *msg;
    json_array_foreach(s->held, i, msg)
    {
        if (rc == 0)
            rc = deliver(s, msg);
    }
    json_decref(s->held);
    s->held = NULL;
    return rc;
}

int hs_cli_cmd_sub(const hs_cli_options_t *opt)
{
    if (opt->since && strlen(opt->since) != ULID_LEN) {
        hs_cli_error("--since: \"%s\" is not a message id (a 26-character ULID)", opt->since);
        return HS_CLI_EXIT_USAGE;
    }
    sub_t s = {.opt = opt};
    hs_cli_progress_init(&s.progress);
    stop_requested = 0;
    install_signals();
    char err[512], shown[1400];
    hs_cli_url_t ws_url;
    if (hs_cli_discover_ws(opt, &ws_url) != 0)
        return stop_requested ? HS_CLI_EXIT_OK : HS_CLI_EXIT_FAIL;
    int rc = hs_cli_ws_connect(&ws_url, &opt->tls, opt->token, CONNECT_TIMEOUT_MS, &s.ws, err,
                               sizeof(err));
    if (rc != 0) {
        hs_cli_url_show(&ws_url, shown, sizeof(shown));
        /* "Is it there?" only when nothing answered; a refusal says why. */
        if (rc == HS_EIO)
            hs_cli_error("%s (is the notifier at %s ? see --ws-server)", err, shown);
        else
            hs_cli_error("%s (WebSocket %s)", err, shown);
        return stop_requested ? HS_CLI_EXIT_OK : HS_CLI_EXIT_FAIL;
    }
    char connection_id[64];
    rc = read_connection_id(&s, connection_id, sizeof(connection_id));
    if (rc == 0)
        rc = subscribe_all(&s, connection_id);
    if (rc == 0 && opt->since)
        rc = catch_up(&s, opt->since);
    while (rc == 0 && !stop_requested)
        rc = pump(&s, 1000);
    if (stop_requested || rc != HS_ECLOSED)
        hs_cli_ws_close(s.ws, 1000, CLOSE_TIMEOUT_MS);
    hs_cli_ws_free(s.ws);
    /* A stop asked for by a signal is the normal end, even mid-way. */
    if (stop_requested && rc == 0)
        return HS_CLI_EXIT_OK;
    return rc == 0 ? HS_CLI_EXIT_OK : HS_CLI_EXIT_FAIL;
}
