/* config.h - houston's settings, from one table.
 *
 * One table of settings (name, flag, HOUSTON_* variable, type, default,
 * limits, help) drives defaults, environment parsing, flag parsing and the
 * --help text. Precedence: default < environment < flag. The resulting
 * hs_config_t is read-only after start-up.
 *
 * Flags are "--name VALUE" or "--name=VALUE"; booleans are "--name" or
 * "--name=true|false" (1/0, yes/no in files and the environment). A list
 * setting (--api-key) given several times on the command line keeps every
 * value, joined with commas.
 * Sizes accept a suffix k/K, m/M, g/G (KiB, MiB, GiB); durations accept
 * ms, s, m, h, d (a bare number is seconds).
 */
#ifndef HS_CORE_CONFIG_H
#define HS_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Where a setting's value came from; later sources win. */
typedef enum hs_config_source {
    HS_CONFIG_DEFAULT = 0,
    HS_CONFIG_FILE,
    HS_CONFIG_ENV,
    HS_CONFIG_FLAG,
} hs_config_source_t;

#define HS_CONFIG_MAX_SETTINGS 64

typedef struct hs_config {
    char *ws_addr;             /* --ws-addr        HOUSTON_WS_ADDR        ":9001" */
    char *api_addr;            /* --api-addr       HOUSTON_API_ADDR       ":9002" */
    char *db;                  /* --db             HOUSTON_DB             "sqlite:houston.db" */
    char *config_file;         /* --config          HOUSTON_CONFIG         "" (key = value lines) */
    char *log_level;           /* --log-level      HOUSTON_LOG_LEVEL      "info" */
    char *node_id;             /* --node-id        HOUSTON_NODE_ID        "" = generated */
    char *allowed_origins;     /* --allowed-origins HOUSTON_ALLOWED_ORIGINS "" = own origin only */
    char *allowed_hosts;       /* --allowed-hosts  HOUSTON_ALLOWED_HOSTS  "" = loopback names */
    char *trusted_proxies;     /* --trusted-proxies HOUSTON_TRUSTED_PROXIES "" = none */
    char *cors_origins;        /* --cors-origins   HOUSTON_CORS_ORIGINS   "" = console's loopback */
    uint64_t max_content;      /* --max-content    HOUSTON_MAX_CONTENT    64 KiB */
    uint64_t max_body;         /* --max-body       HOUSTON_MAX_BODY       1 MiB */
    uint64_t max_ws_message;   /* --max-ws-message HOUSTON_MAX_WS_MESSAGE 64 KiB */
    uint64_t max_pending;      /* --max-pending    HOUSTON_MAX_PENDING    1 MiB */
    uint64_t ping_interval_ms; /* --ping-interval   HOUSTON_PING_INTERVAL   30 s */
    uint64_t header_timeout_ms;     /* --header-timeout  HOUSTON_HEADER_TIMEOUT  10 s */
    uint64_t body_timeout_ms;       /* --body-timeout    HOUSTON_BODY_TIMEOUT    10 s */
    uint64_t idle_timeout_ms;       /* --idle-timeout    HOUSTON_IDLE_TIMEOUT    60 s */
    uint64_t shutdown_timeout_ms;   /* --shutdown-timeout HOUSTON_SHUTDOWN_TIMEOUT 10 s */
    uint64_t max_connections;       /* --max-connections     HOUSTON_MAX_CONNECTIONS     100000 */
    uint64_t max_subscriptions;     /* --max-subscriptions   HOUSTON_MAX_SUBSCRIPTIONS   1000 */
    uint64_t keepalive_requests;    /* --keepalive-requests  HOUSTON_KEEPALIVE_REQUESTS  10000 */
    uint64_t heartbeat_interval_ms; /* --heartbeat-interval HOUSTON_HEARTBEAT_INTERVAL 5 s */
    uint64_t batch_max;
    uint64_t claim_idle_ms;         /* --claim-idle     HOUSTON_CLAIM_IDLE     30 s */
    uint64_t node_stream_max;       /* --node-stream-max  HOUSTON_NODE_STREAM_MAX  10000 */
    uint64_t event_stream_max;      /* --event-stream-max HOUSTON_EVENT_STREAM_MAX 100000 */
    uint64_t partitions;            /* --partitions     HOUSTON_PARTITIONS     16 */
    char *flush_threads;            /* --flush-threads  HOUSTON_FLUSH_THREADS  "auto" = cores - 1 */
    uint64_t db_wait_ms;            /* --db-wait        HOUSTON_DB_WAIT        60 s */
    uint64_t dedupe_window;         /* --dedupe-window  HOUSTON_DEDUPE_WINDOW  100000 */
    uint64_t live_hold_ms;          /* --live-hold      HOUSTON_LIVE_HOLD      200 ms */
    uint64_t live_hold_max;         /* --live-hold-max  HOUSTON_LIVE_HOLD_MAX  1000 per topic */
    uint64_t live_hold_bytes;       /* --live-hold-bytes HOUSTON_LIVE_HOLD_BYTES 16 MiB */
    uint64_t idempotency_window_ms; /* --idempotency-window HOUSTON_IDEMPOTENCY_WINDOW 24 h */
    uint64_t retention_age_ms;      /* --retention-age   HOUSTON_RETENTION_AGE   0 = forever */
    uint64_t retention_count;       /* --retention-count HOUSTON_RETENTION_COUNT 0 = unlimited */
    char *redis;        /* --redis           HOUSTON_REDIS          "" (in-process bus) */
    char *metrics_addr; /* --metrics-addr    HOUSTON_METRICS_ADDR   "" (off) */
    char *log_format;   /* --log-format      HOUSTON_LOG_FORMAT     "text" or "json" */

    /* --public-ws-url HOUSTON_PUBLIC_WS_URL "": the WebSocket URL GET /api/v1/info names */
    char *public_ws_url;
    /* security (docs/security.md) */
    char *api_key;             /* --api-key (repeatable, comma list) HOUSTON_API_KEY  "" (secret) */
    char *api_key_file;        /* --api-key-file    HOUSTON_API_KEY_FILE   "" */
    uint64_t insecure;         /* --insecure        HOUSTON_INSECURE       0 (boolean) */
    char *jwt_secret;          /* --jwt-secret      HOUSTON_JWT_SECRET     "" (secret) */
    char *jwt_public_key;      /* --jwt-public-key  HOUSTON_JWT_PUBLIC_KEY "" (PEM file) */
    char *jwt_issuer;          /* --jwt-issuer      HOUSTON_JWT_ISSUER     "" (not checked) */
    char *jwt_audience;        /* --jwt-audience    HOUSTON_JWT_AUDIENCE   "" (not checked) */
    uint64_t max_conns_per_ip; /* --max-connections-per-ip  256 (0: off) */
    uint64_t connect_rate;     /* --connect-rate        50 per s per IP, burst twice (0: off) */
    uint64_t client_message_rate; /* --client-message-rate 20 per s, burst twice (0: off) */
    char *tls_cert;        /* --tls-cert        HOUSTON_TLS_CERT       "" (plain listeners) */
    char *tls_key;         /* --tls-key         HOUSTON_TLS_KEY        "" */
    char *tls_min_version; /* --tls-min-version HOUSTON_TLS_MIN_VERSION "1.2" */
    /* resume (docs/recovery.md) */
    uint64_t resume_window_ms;  /* --resume-window     HOUSTON_RESUME_WINDOW     60 s (0: off) */
    char *resume_secret;        /* --resume-secret     HOUSTON_RESUME_SECRET     "" = random */
    uint64_t resume_max_replay; /* --resume-max-replay HOUSTON_RESUME_MAX_REPLAY 10000 */
    uint64_t resume_max_bytes;  /* --resume-max-bytes HOUSTON_RESUME_MAX_BYTES 16m */
    uint64_t max_batch;         /* --max-batch         HOUSTON_MAX_BATCH         1000 */
    unsigned char sources[HS_CONFIG_MAX_SETTINGS];
    /* hs_config_source_t per setting */ /* --batch-max      HOUSTON_BATCH_MAX      512 */
} hs_config_t;

/* The bounds of a retention setting, the flags' and a topic's own (API). */
#define HS_RETENTION_AGE_MAX_MS (100ull * 365 * 24 * 3600 * 1000)
#define HS_RETENTION_COUNT_MAX  1000000000ull

/* Parses a duration as the settings do ("500ms", "30s", "5m", "12h", "7d";
 * a bare number is seconds) into milliseconds. 0 or HS_EINVAL. */
int hs_config_parse_duration(const char *text, uint64_t *ms);
/* Formats ms in the largest unit that divides it ("7d", "90m", "1500ms", "0"). */
void hs_config_format_duration(uint64_t ms, char *out, size_t len);

/* Fills every field with its default. */
void hs_config_defaults(hs_config_t *cfg);
/* Applies the settings file (--config or HOUSTON_CONFIG: "key = value"
 * lines, '#' comments, keys are the flag names), then HOUSTON_* environment
 * variables, then the flags in argv[0..argc). Unknown keys or flags, bad
 * values and values out of limits are errors: returns HS_EINVAL with a
 * one-line reason in err. "--help" and "--version" are not handled here
 * (main looks for them first). */
int hs_config_load(hs_config_t *cfg, int argc, char **argv, char *err, size_t err_len);
/* Prints the settings part of --help: one line per flag with its variable,
 * default and help text. */
void hs_config_print_help(FILE *out);
/* Prints the effective settings, one "name = value  # source" line each, with
 * secrets (passwords in URLs) masked. */
void hs_config_print(const hs_config_t *cfg, FILE *out);
void hs_config_dispose(hs_config_t *cfg);
/* Where the setting named name (flag name without "--") came from. */
hs_config_source_t hs_config_source(const hs_config_t *cfg, const char *name);

/* A read-only view of one row of the settings table, for generated
 * documentation (the man page). Strings are static; never NULL. */
typedef struct hs_config_setting_info {
    const char *name; /* flag without the leading "--" */
    const char *env;  /* HOUSTON_* variable */
    const char *arg;  /* placeholder: ADDR, URL, SIZE, ... */
    const char *def;  /* default as a user would write it; "" when empty */
    const char *help; /* one line */
} hs_config_setting_info_t;

/* Calls cb once per setting, in table order. */
void hs_config_each(void (*cb)(const hs_config_setting_info_t *info, void *ctx), void *ctx);

#endif
