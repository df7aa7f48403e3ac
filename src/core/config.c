/* config.c - the settings table and its three readers (environment, flags,
 * --help). Adding a setting is one row here and one field in config.h. */
#include "core/config.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/redact.h"

typedef enum setting_type { T_STRING, T_SIZE, T_DURATION, T_UINT, T_BOOL } setting_type_t;

typedef struct setting {
    const char *name; /* flag without the leading "--" */
    const char *env;
    setting_type_t type;
    size_t offset;
    const char *def; /* default, in the same syntax a user would write */
    uint64_t min, max;
    const char *arg; /* placeholder in --help */
    const char *help;
    bool url_secret; /* a URL whose password is masked when shown */
    bool secret;     /* shown as "***" when set (keys, secrets) */
    bool list;       /* repeated flags accumulate, comma-joined */
} setting_t;

#define KIB 1024ull
#define MIB (1024ull * 1024ull)
#define GIB (1024ull * 1024ull * 1024ull)
#define SEC 1000ull

static const setting_t settings[] = {
    {"ws-addr", "HOUSTON_WS_ADDR", T_STRING, offsetof(hs_config_t, ws_addr), ":9001", 0, 0, "ADDR",
     "WebSocket (notifier) listen address, host:port or :port", .url_secret = false},
    {"api-addr", "HOUSTON_API_ADDR", T_STRING, offsetof(hs_config_t, api_addr), ":9002", 0, 0,
     "ADDR", "HTTP API (publisher) listen address", .url_secret = false},
    {"redis", "HOUSTON_REDIS", T_STRING, offsetof(hs_config_t, redis), "", 0, 0, "URL",
     "bus: redis://host:port[/db], or a Redis Cluster's seeds redis://h1:p1,h2:p2[/db] "
     "(empty: in-process, serve only)",
     .url_secret = true},
    {"metrics-addr", "HOUSTON_METRICS_ADDR", T_STRING, offsetof(hs_config_t, metrics_addr), "", 0,
     0, "ADDR", "also serve /metrics, /healthz and /readyz on this address (empty: off)",
     .url_secret = false},
    {"public-ws-url", "HOUSTON_PUBLIC_WS_URL", T_STRING, offsetof(hs_config_t, public_ws_url), "",
     0, 0, "URL",
     "where clients reach the WebSocket port (ws[s]://host[:port][/prefix]), as GET /api/v1/info "
     "tells them; set it behind a proxy or for scale-out notifiers (empty: derived)",
     .url_secret = false},
    {"tls-cert", "HOUSTON_TLS_CERT", T_STRING, offsetof(hs_config_t, tls_cert), "", 0, 0, "FILE",
     "PEM certificate chain; with --tls-key every listener speaks TLS only (wss://, https://)",
     .url_secret = false},
    {"tls-key", "HOUSTON_TLS_KEY", T_STRING, offsetof(hs_config_t, tls_key), "", 0, 0, "FILE",
     "PEM private key (unencrypted) of --tls-cert", .url_secret = false},
    {"tls-min-version", "HOUSTON_TLS_MIN_VERSION", T_STRING, offsetof(hs_config_t, tls_min_version),
     "1.2", 0, 0, "VERSION", "oldest TLS version accepted: 1.2 or 1.3", .url_secret = false},
    {"db", "HOUSTON_DB", T_STRING, offsetof(hs_config_t, db), "sqlite:houston.db", 0, 0, "URL",
     "store: sqlite:PATH or mysql://user:pass@host:port/database", .url_secret = true},
    {"config", "HOUSTON_CONFIG", T_STRING, offsetof(hs_config_t, config_file), "", 0, 0, "FILE",
     "read settings from FILE first (key = value lines; env and flags win)", .url_secret = false},
    {"log-level", "HOUSTON_LOG_LEVEL", T_STRING, offsetof(hs_config_t, log_level), "info", 0, 0,
     "LEVEL", "debug, info, warn or error", .url_secret = false},
    {"log-format", "HOUSTON_LOG_FORMAT", T_STRING, offsetof(hs_config_t, log_format), "text", 0, 0,
     "FORMAT", "text (one line per event) or json (one JSON object per line)", .url_secret = false},
    {"node-id", "HOUSTON_NODE_ID", T_STRING, offsetof(hs_config_t, node_id), "", 0, 0, "ID",
     "this notifier's node id (default: local)", .url_secret = false},
    {"allowed-origins", "HOUSTON_ALLOWED_ORIGINS", T_STRING, offsetof(hs_config_t, allowed_origins),
     "", 0, 0, "LIST",
     "browser Origins that may open a WebSocket or event stream besides the server's own "
     "(comma list; * only with client tokens; empty: the server's own only)",
     .url_secret = false},
    {"allowed-hosts", "HOUSTON_ALLOWED_HOSTS", T_STRING, offsetof(hs_config_t, allowed_hosts), "",
     0, 0, "LIST",
     "Host names both ports answer to besides localhost and loopback addresses; others get 421 "
     "(checked without an API key, or when set)",
     .url_secret = false},
    {"trusted-proxies", "HOUSTON_TRUSTED_PROXIES", T_STRING, offsetof(hs_config_t, trusted_proxies),
     "", 0, 0, "CIDRS",
     "reverse proxies (addresses, CIDR blocks) whose X-Forwarded-For / Forwarded give the client "
     "address (empty: none)",
     .url_secret = false},
    {"cors-origins", "HOUSTON_CORS_ORIGINS", T_STRING, offsetof(hs_config_t, cors_origins), "", 0,
     0, "LIST",
     "browser Origins that may call the API (CORS): a comma list, * or none "
     "(empty: the console's, on loopback)",
     .url_secret = false},
    {"max-content", "HOUSTON_MAX_CONTENT", T_SIZE, offsetof(hs_config_t, max_content), "64k", 1,
     16 * MIB, "SIZE", "largest message content", .url_secret = false},
    {"max-body", "HOUSTON_MAX_BODY", T_SIZE, offsetof(hs_config_t, max_body), "1m", KIB, 64 * MIB,
     "SIZE", "largest API request body", .url_secret = false},
    {"max-ws-message", "HOUSTON_MAX_WS_MESSAGE", T_SIZE, offsetof(hs_config_t, max_ws_message),
     "64k", 125, 16 * MIB, "SIZE", "largest message a WebSocket client may send",
     .url_secret = false},
    {"max-pending", "HOUSTON_MAX_PENDING", T_SIZE, offsetof(hs_config_t, max_pending), "1m", 0, GIB,
     "SIZE", "bytes queued to a client before it is closed with 1008 (0: no bound)",
     .url_secret = false},
    {"ping-interval", "HOUSTON_PING_INTERVAL", T_DURATION, offsetof(hs_config_t, ping_interval_ms),
     "30s", 0, 3600 * SEC, "DURATION",
     "WebSocket ping period; two missed pongs close the connection (0: off)", .url_secret = false},
    {"header-timeout", "HOUSTON_HEADER_TIMEOUT", T_DURATION,
     offsetof(hs_config_t, header_timeout_ms), "10s", 100, 3600 * SEC, "DURATION",
     "a request's head must arrive within this", .url_secret = false},
    {"body-timeout", "HOUSTON_BODY_TIMEOUT", T_DURATION, offsetof(hs_config_t, body_timeout_ms),
     "10s", 100, 3600 * SEC, "DURATION", "a request's body must arrive within this",
     .url_secret = false},
    {"idle-timeout", "HOUSTON_IDLE_TIMEOUT", T_DURATION, offsetof(hs_config_t, idle_timeout_ms),
     "60s", 0, 24 * 3600 * SEC, "DURATION",
     "idle keep-alive connections close after this (0: never)", .url_secret = false},
    {"shutdown-timeout", "HOUSTON_SHUTDOWN_TIMEOUT", T_DURATION,
     offsetof(hs_config_t, shutdown_timeout_ms), "10s", 0, 600 * SEC, "DURATION",
     "graceful shutdown limit (0: none)", .url_secret = false},
    {"max-connections", "HOUSTON_MAX_CONNECTIONS", T_UINT, offsetof(hs_config_t, max_connections),
     "100000", 1, 10000000, "N", "WebSocket connections at once; beyond it the upgrade gets 503",
     .url_secret = false},
    {"max-subscriptions", "HOUSTON_MAX_SUBSCRIPTIONS", T_UINT,
     offsetof(hs_config_t, max_subscriptions), "1000", 1, 1000000, "N",
     "subscriptions per connection; beyond it a subscribe gets 429", .url_secret = false},
    {"keepalive-requests", "HOUSTON_KEEPALIVE_REQUESTS", T_UINT,
     offsetof(hs_config_t, keepalive_requests), "10000", 0, 100000000, "N",
     "requests on one keep-alive connection before it is closed (0: no limit)",
     .url_secret = false},
    {"heartbeat-interval", "HOUSTON_HEARTBEAT_INTERVAL", T_DURATION,
     offsetof(hs_config_t, heartbeat_interval_ms), "5s", 100, 3600 * SEC, "DURATION",
     "scale-out: a notifier or consumer beats this often; 3 missed beats and the others remove "
     "its connections or take its partitions",
     .url_secret = false},
    {"batch-max", "HOUSTON_BATCH_MAX", T_UINT, offsetof(hs_config_t, batch_max), "512", 1, 100000,
     "N", "most store writes committed in one transaction", .url_secret = false},
    {"claim-idle", "HOUSTON_CLAIM_IDLE", T_DURATION, offsetof(hs_config_t, claim_idle_ms), "30s",
     100, 24 * 3600 * SEC, "DURATION",
     "scale-out: a consumer hands on again its own events whose hand-off failed this long ago "
     "(a dead consumer's are taken over with its partitions)",
     .url_secret = false},
    {"node-stream-max", "HOUSTON_NODE_STREAM_MAX", T_UINT, offsetof(hs_config_t, node_stream_max),
     "10000", 1000, 100000000, "N",
     "scale-out: a notifier's command stream in Redis keeps about this many entries; a notifier "
     "that falls further behind closes its connections with 1001 so they resume",
     .url_secret = false},
    {"event-stream-max", "HOUSTON_EVENT_STREAM_MAX", T_UINT,
     offsetof(hs_config_t, event_stream_max), "100000", 1000, 100000000, "N",
     "scale-out: the event stream in Redis keeps about this many entries; consumers that fall "
     "further behind make every notifier close its connections with 1001",
     .url_secret = false},
    {"partitions", "HOUSTON_PARTITIONS", T_UINT, offsetof(hs_config_t, partitions), "16", 1, 1024,
     "N",
     "scale-out: the event log's partitions (streams, each read by one consumer at a time); "
     "every process of a deployment must use the same number",
     .url_secret = false},
    {"flush-threads", "HOUSTON_FLUSH_THREADS", T_STRING, offsetof(hs_config_t, flush_threads),
     "auto", 0, 0, "N|auto",
     "helper threads sharing the socket writes of a large fan-out (auto: one per core beyond "
     "the first; 0: none)",
     .url_secret = false},
    {"db-wait", "HOUSTON_DB_WAIT", T_DURATION, offsetof(hs_config_t, db_wait_ms), "60s", 0,
     3600 * SEC, "DURATION", "at start-up, wait this long for MariaDB to accept connections",
     .url_secret = false},
    {"dedupe-window", "HOUSTON_DEDUPE_WINDOW", T_UINT, offsetof(hs_config_t, dedupe_window),
     "100000", 1, 100000000, "N",
     "scale-out: a notifier remembers this many delivered ids and drops redelivered ones",
     .url_secret = false},
    {"live-hold", "HOUSTON_LIVE_HOLD", T_DURATION, offsetof(hs_config_t, live_hold_ms), "200ms", 1,
     60 * SEC, "DURATION",
     "scale-out: a notifier holds a topic's message whose predecessor has not arrived this "
     "long, then reads the missing ones from the store",
     .url_secret = false},
    {"live-hold-max", "HOUSTON_LIVE_HOLD_MAX", T_UINT, offsetof(hs_config_t, live_hold_max), "1000",
     1, 1000000, "N",
     "scale-out: messages a notifier holds per topic for a gap, and the longest gap it fills "
     "from the store; beyond, the topic's subscribers are closed with 1001 and resume",
     .url_secret = false},
    {"live-hold-bytes", "HOUSTON_LIVE_HOLD_BYTES", T_SIZE, offsetof(hs_config_t, live_hold_bytes),
     "16m", KIB, GIB, "SIZE", "scale-out: bytes a notifier holds for gaps, all topics together",
     .url_secret = false},
    {"idempotency-window", "HOUSTON_IDEMPOTENCY_WINDOW", T_DURATION,
     offsetof(hs_config_t, idempotency_window_ms), "24h", SEC, 30 * 24 * 3600 * SEC, "DURATION",
     "a publish repeated with the same Idempotency-Key within this answers the original message",
     .url_secret = false},
    {"retention-age", "HOUSTON_RETENTION_AGE", T_DURATION, offsetof(hs_config_t, retention_age_ms),
     "0", 0, HS_RETENTION_AGE_MAX_MS, "DURATION",
     "messages older than this are pruned from the history, per topic unless the topic sets its "
     "own (0: kept forever)",
     .url_secret = false},
    {"retention-count", "HOUSTON_RETENTION_COUNT", T_UINT, offsetof(hs_config_t, retention_count),
     "0", 0, HS_RETENTION_COUNT_MAX, "N",
     "each topic keeps its newest N messages, unless the topic sets its own (0: no limit)",
     .url_secret = false},
    {"api-key", "HOUSTON_API_KEY", T_STRING, offsetof(hs_config_t, api_key), "", 0, 0, "KEY",
     "API key backends must send (Authorization: Bearer or X-API-Key); repeat the flag or "
     "separate keys with commas",
     .secret = true, .list = true},
    {"api-key-file", "HOUSTON_API_KEY_FILE", T_STRING, offsetof(hs_config_t, api_key_file), "", 0,
     0, "FILE", "more API keys, one per line ('#' comments); re-read on SIGHUP",
     .url_secret = false},
    {"insecure", "HOUSTON_INSECURE", T_BOOL, offsetof(hs_config_t, insecure), "false", 0, 1,
     "[=true|false]", "allow a non-loopback --api-addr without any API key", .url_secret = false},
    {"jwt-secret", "HOUSTON_JWT_SECRET", T_STRING, offsetof(hs_config_t, jwt_secret), "", 0, 0,
     "SECRET", "HS256 secret of client tokens; WebSocket clients then need a token",
     .secret = true},
    {"jwt-public-key", "HOUSTON_JWT_PUBLIC_KEY", T_STRING, offsetof(hs_config_t, jwt_public_key),
     "", 0, 0, "FILE",
     "PEM public key of client tokens (RSA: RS256, EC P-256: ES256); WebSocket clients then "
     "need a token",
     .url_secret = false},
    {"jwt-issuer", "HOUSTON_JWT_ISSUER", T_STRING, offsetof(hs_config_t, jwt_issuer), "", 0, 0,
     "ISS", "required \"iss\" claim of client tokens (empty: not checked)", .url_secret = false},
    {"jwt-audience", "HOUSTON_JWT_AUDIENCE", T_STRING, offsetof(hs_config_t, jwt_audience), "", 0,
     0, "AUD", "required \"aud\" claim of client tokens (empty: not checked)", .url_secret = false},
    {"max-connections-per-ip", "HOUSTON_MAX_CONNECTIONS_PER_IP", T_UINT,
     offsetof(hs_config_t, max_conns_per_ip), "256", 0, 10000000, "N",
     "WebSocket connections at once from one IP address; beyond it the upgrade gets 429 (0: "
     "no limit)",
     .url_secret = false},
    {"connect-rate", "HOUSTON_CONNECT_RATE", T_UINT, offsetof(hs_config_t, connect_rate), "50", 0,
     1000000, "N",
     "WebSocket upgrades per second from one IP address, bursts of twice that; beyond it 429 "
     "(0: no limit)",
     .url_secret = false},
    {"resume-window", "HOUSTON_RESUME_WINDOW", T_DURATION, offsetof(hs_config_t, resume_window_ms),
     "60s", 0, 24 * 3600 * SEC, "DURATION",
     "a connection dropped without a clean close keeps its subscriptions this long for a "
     "resume (0: off)",
     .url_secret = false},
    {"resume-secret", "HOUSTON_RESUME_SECRET", T_STRING, offsetof(hs_config_t, resume_secret), "",
     0, 0, "SECRET",
     "HMAC key of resume tokens; every notifier of a deployment needs the same (empty: random "
     "per process)",
     .secret = true},
    {"resume-max-replay", "HOUSTON_RESUME_MAX_REPLAY", T_UINT,
     offsetof(hs_config_t, resume_max_replay), "10000", 1, 1000000, "N",
     "most messages replayed on a resume; past it the client pages the rest from the history "
     "API",
     .url_secret = false},
    {"resume-max-bytes", "HOUSTON_RESUME_MAX_BYTES", T_SIZE,
     offsetof(hs_config_t, resume_max_bytes), "16m", 64 * 1024, GIB, "SIZE",
     "most bytes of messages a resume reads from the history at once; past it the client pages "
     "the rest (truncated/next)",
     .url_secret = false},
    {"client-message-rate", "HOUSTON_CLIENT_MESSAGE_RATE", T_UINT,
     offsetof(hs_config_t, client_message_rate), "20", 0, 1000000, "N",
     "messages per second a WebSocket client may send, bursts of twice that; beyond it an "
     "error frame, then close 1008 (0: no limit)",
     .url_secret = false},
    {"max-batch", "HOUSTON_MAX_BATCH", T_UINT, offsetof(hs_config_t, max_batch), "1000", 1, 100000,
     "N", "messages in one POST /api/v1/messages/batch (stored in one transaction); more get 413",
     .url_secret = false},
};

#define SETTING_COUNT (sizeof(settings) / sizeof(settings[0]))
_Static_assert(SETTING_COUNT <= HS_CONFIG_MAX_SETTINGS, "raise HS_CONFIG_MAX_SETTINGS");

/* Parses digits and an optional unit; *unit_out points at the suffix. */
static int parse_number(const char *text, uint64_t *value, const char **unit)
{
    if (!isdigit((unsigned char)text[0]))
        return HS_EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0)
        return HS_EINVAL;
    *value = v;
    *unit = end;
    return 0;
}

static int mul_checked(uint64_t a, uint64_t b, uint64_t *out)
{
    if (b != 0 && a > UINT64_MAX / b)
        return HS_EINVAL;
    *out = a * b;
    return 0;
}

static int parse_bool(const char *text, uint64_t *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return HS_EINVAL;
}

static int parse_value(const setting_t *s, const char *text, uint64_t *out)
{
    if (s->type == T_BOOL)
        return parse_bool(text, out);
    uint64_t v;
    const char *unit;
    if (parse_number(text, &v, &unit) != 0)
        return HS_EINVAL;
    uint64_t scale = 1;
    switch (s->type) {
    case T_SIZE:
        if (*unit == '\0' || strcmp(unit, "b") == 0 || strcmp(unit, "B") == 0)
            scale = 1;
        else if (strcmp(unit, "k") == 0 || strcmp(unit, "K") == 0 || strcmp(unit, "KiB") == 0)
            scale = KIB;
        else if (strcmp(unit, "m") == 0 || strcmp(unit, "M") == 0 || strcmp(unit, "MiB") == 0)
            scale = MIB;
        else if (strcmp(unit, "g") == 0 || strcmp(unit, "G") == 0 || strcmp(unit, "GiB") == 0)
            scale = GIB;
        else
            return HS_EINVAL;
        break;
    case T_DURATION:
        if (*unit == '\0' || strcmp(unit, "s") == 0)
            scale = SEC;
        else if (strcmp(unit, "ms") == 0)
            scale = 1;
        else if (strcmp(unit, "m") == 0)
            scale = 60 * SEC;
        else if (strcmp(unit, "h") == 0)
            scale = 3600 * SEC;
        else if (strcmp(unit, "d") == 0)
            scale = 24 * 3600 * SEC;
        else
            return HS_EINVAL;
        break;
    case T_UINT:
        if (*unit != '\0')
            return HS_EINVAL;
        break;
    case T_STRING:
    case T_BOOL:
        return HS_EINVAL;
    }
    return mul_checked(v, scale, out);
}

int hs_config_parse_duration(const char *text, uint64_t *ms)
{
    static const setting_t duration = {.type = T_DURATION};
    return parse_value(&duration, text, ms);
}

void hs_config_format_duration(uint64_t ms, char *out, size_t len)
{
    static const struct {
        uint64_t ms;
        const char *unit;
    } units[] = {{24 * 3600 * SEC, "d"}, {3600 * SEC, "h"}, {60 * SEC, "m"}, {SEC, "s"}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (ms != 0 && ms % units[i].ms == 0) {
            snprintf(out, len, "%llu%s", (unsigned long long)(ms / units[i].ms), units[i].unit);
            return;
        }
    snprintf(out, len, ms ? "%llums" : "0", (unsigned long long)ms);
}

static const char *type_noun(setting_type_t type)
{
    switch (type) {
    case T_SIZE:
        return "a size (e.g. 64k, 1m)";
    case T_DURATION:
        return "a duration (e.g. 500ms, 30s, 5m, 7d)";
    case T_UINT:
        return "a whole number";
    case T_BOOL:
        return "true or false";
    case T_STRING:
        break;
    }
    return "a string";
}

static int apply(hs_config_t *cfg, const setting_t *s, const char *source, const char *text,
                 char *err, size_t err_len, bool append)
{
    char *field = (char *)cfg + s->offset;
    if (s->type == T_STRING) {
        char **slot = (char **)field;
        if (append && *slot && (*slot)[0] && text[0]) {
            size_t a = strlen(*slot), b = strlen(text);
            char *joined = hs_malloc(a + b + 2);
            memcpy(joined, *slot, a);
            joined[a] = ',';
            memcpy(joined + a + 1, text, b + 1);
            hs_free(*slot);
            *slot = joined;
            return 0;
        }
        hs_free(*slot);
        *slot = hs_strdup(text);
        return 0;
    }
    uint64_t value;
    if (parse_value(s, text, &value) != 0)
        return hs_fail_invalid(err, err_len, "%s: \"%s\" is not %s", source, text,
                               type_noun(s->type));
    if (value < s->min || value > s->max)
        return hs_fail_invalid(err, err_len, "%s: %s is out of range (%llu to %llu%s)", source,
                               text, (unsigned long long)s->min, (unsigned long long)s->max,
                               s->type == T_SIZE       ? " bytes"
                               : s->type == T_DURATION ? " ms"
                                                       : "");
    *(uint64_t *)field = value;
    return 0;
}

void hs_config_defaults(hs_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    char err[128];
    for (size_t i = 0; i < SETTING_COUNT; i++)
        apply(cfg, &settings[i], settings[i].name, settings[i].def, err, sizeof(err), false);
}

static const setting_t *find_setting(const char *name, size_t len)
{
    for (size_t i = 0; i < SETTING_COUNT; i++)
        if (strlen(settings[i].name) == len && strncmp(settings[i].name, name, len) == 0)
            return &settings[i];
    return NULL;
}

static void set_source(hs_config_t *cfg, const setting_t *s, hs_config_source_t source)
{
    cfg->sources[s - settings] = (unsigned char)source;
}

/* "key = value" lines; '#' starts a comment; keys are flag names ('_' may
 * stand for '-'). */
static int load_file(hs_config_t *cfg, const char *path, char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return hs_fail_invalid(err, err_len, "--config: cannot read \"%s\": %s", path,
                               strerror(errno));
    char line[4096];
    int number = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        number++;
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '#' || *p == '\0')
            continue;
        char *eq = strchr(p, '=');
        if (eq == NULL) {
            rc = hs_fail_invalid(err, err_len, "%s:%d: expected \"key = value\"", path, number);
            break;
        }
        char *key_end = eq;
        while (key_end > p && isspace((unsigned char)key_end[-1]))
            key_end--;
        for (char *k = p; k < key_end; k++)
            if (*k == '_')
                *k = '-';
        char *value = eq + 1;
        while (isspace((unsigned char)*value))
            value++;
        char *value_end = value + strlen(value);
        while (value_end > value && isspace((unsigned char)value_end[-1]))
            value_end--;
        *value_end = '\0';
        const setting_t *s = find_setting(p, (size_t)(key_end - p));
        if (s == NULL || s->offset == offsetof(hs_config_t, config_file)) {
            rc = hs_fail_invalid(err, err_len, "%s:%d: unknown setting \"%.*s\"", path, number,
                                 (int)(key_end - p), p);
            break;
        }
        char source[300];
        snprintf(source, sizeof(source), "%s:%d: %s", path, number, s->name);
        rc = apply(cfg, s, source, value, err, err_len, false);
        if (rc == 0)
            set_source(cfg, s, HS_CONFIG_FILE);
    }
    fclose(f);
    return rc;
}

/* Splits "--name=value" or "--name value" at argv[*i]. */
static int parse_flag(int argc, char **argv, int *i, const setting_t **out, const char **value,
                      char *err, size_t err_len)
{
    const char *arg = argv[*i];
    if (strncmp(arg, "--", 2) != 0) {
        char shown[512]; /* perhaps a URL given without its flag */
        hs_redact_url(arg, shown, sizeof(shown));
        return hs_fail_invalid(err, err_len, "unexpected argument \"%s\"", shown);
    }
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
    const setting_t *s = find_setting(name, name_len);
    if (s == NULL)
        return hs_fail_invalid(err, err_len, "unknown flag --%.*s", (int)name_len, name);
    if (eq) {
        *value = eq + 1;
    } else if (s->type == T_BOOL) {
        *value = "true";
    } else {
        if (*i + 1 >= argc)
            return hs_fail_invalid(err, err_len, "--%s needs a value", s->name);
        *value = argv[++*i];
    }
    *out = s;
    return 0;
}

int hs_config_load(hs_config_t *cfg, int argc, char **argv, char *err, size_t err_len)
{
    /* The file comes first, wherever its name was given. */
    const char *file = getenv("HOUSTON_CONFIG");
    for (int i = 0; i < argc; i++) {
        const setting_t *s;
        const char *value;
        if (parse_flag(argc, argv, &i, &s, &value, err, err_len) != 0)
            return HS_EINVAL;
        if (s->offset == offsetof(hs_config_t, config_file))
            file = value;
    }
    if (file && file[0] && load_file(cfg, file, err, err_len) != 0)
        return HS_EINVAL;
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        const char *value = getenv(settings[i].env);
        if (value == NULL)
            continue;
        if (apply(cfg, &settings[i], settings[i].env, value, err, err_len, false) != 0)
            return HS_EINVAL;
        set_source(cfg, &settings[i], HS_CONFIG_ENV);
    }
    for (int i = 0; i < argc; i++) {
        const setting_t *s;
        const char *value;
        if (parse_flag(argc, argv, &i, &s, &value, err, err_len) != 0)
            return HS_EINVAL;
        char source[64];
        snprintf(source, sizeof(source), "--%s", s->name);
        /* A list flag given again adds to the earlier flags (not to the
         * environment or the file, which flags replace). */
        bool append = s->list && cfg->sources[s - settings] == HS_CONFIG_FLAG;
        if (apply(cfg, s, source, value, err, err_len, append) != 0)
            return HS_EINVAL;
        set_source(cfg, s, HS_CONFIG_FLAG);
    }
    if (strcmp(cfg->log_format, "text") != 0 && strcmp(cfg->log_format, "json") != 0)
        return hs_fail_invalid(err, err_len, "--log-format: \"%s\" is not text or json",
                               cfg->log_format);
    return 0;
}

static void print_masked_url(FILE *out, const char *value)
{
    char masked[1024];
    hs_redact_url(value, masked, sizeof(masked));
    fputs(masked, out);
}

void hs_config_print(const hs_config_t *cfg, FILE *out)
{
    static const char *const source_names[] = {"default", "file", "environment", "flag"};
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        const setting_t *s = &settings[i];
        const char *field = (const char *)cfg + s->offset;
        fprintf(out, "%-20s = ", s->name);
        if (s->type == T_STRING) {
            const char *value = *(char *const *)field;
            if (s->secret && value[0])
                fputs("***", out);
            else if (s->url_secret)
                print_masked_url(out, value);
            else
                fputs(value, out);
        } else {
            uint64_t value = *(const uint64_t *)field;
            if (s->type == T_BOOL)
                fputs(value ? "true" : "false", out);
            else
                fprintf(out, "%llu%s", (unsigned long long)value,
                        s->type == T_DURATION ? "ms" : "");
        }
        fprintf(out, "   # %s\n", source_names[cfg->sources[i]]);
    }
}

void hs_config_print_help(FILE *out)
{
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        const setting_t *s = &settings[i];
        char flag[48];
        snprintf(flag, sizeof(flag), "--%s %s", s->name, s->arg);
        fprintf(out, "  %-28s %s\n  %-28s [env %s, default %s]\n", flag, s->help, "", s->env,
                s->def[0] ? s->def : "\"\"");
    }
}

void hs_config_dispose(hs_config_t *cfg)
{
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        if (settings[i].type == T_STRING) {
            char **slot = (char **)((char *)cfg + settings[i].offset);
            hs_free(*slot);
            *slot = NULL;
        }
    }
}

void hs_config_each(void (*cb)(const hs_config_setting_info_t *info, void *ctx), void *ctx)
{
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        const setting_t *s = &settings[i];
        hs_config_setting_info_t info = {s->name, s->env, s->arg, s->def, s->help};
        cb(&info, ctx);
    }
}

hs_config_source_t hs_config_source(const hs_config_t *cfg, const char *name)
{
    const setting_t *s = find_setting(name, strlen(name));
    return s ? (hs_config_source_t)cfg->sources[s - settings] : HS_CONFIG_DEFAULT;
}
