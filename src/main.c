/* main.c - the houston command line.
 *
 *   houston [serve] [flags]   all roles in one process (embedded mode)
 *   houston publisher|notifier|consumer [flags]   one role (scale-out)
 *   houston config|routes [flags]   the effective settings, the routes
 *   houston migrate [--db URL]   the schema brought up to date, then exit
 *   houston pub|sub|history|status ...   the client (src/cli/)
 *   houston --help | --version
 *
 * serve wires the roles to one loop: the notifier (WebSocket port), the
 * publisher (API port) and the consumer, over the SQLite store and the
 * in-process bus by default; --db mysql://… and --redis redis://… put it on
 * MariaDB and Redis like the scale-out roles, which need both (open_store,
 * open_bus). Shutdown on SIGINT/SIGTERM runs in dependency order:
 * stop accepting and answer in-flight requests, close WebSockets with 1001,
 * flush and close the store, drain and close the bus, then the loop ends.
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "bus/bus.h"
#include "cli/cli.h"
#include "core/config.h"
#include "core/error.h"
#include "core/redact.h"
#include "core/log.h"
#include "http/client_addr.h"
#include "http/cors.h"
#include "http/origin.h"
#include "http/server.h"
#include "net/net.h"
#include "roles/auth.h"
#include "net/tls.h"
#include "roles/consumer.h"
#include "roles/health.h"
#include "roles/notifier.h"
#include "roles/publisher.h"
#include "roles/token.h"
#include "store/store.h"

#define EMBEDDED_NODE_ID "local"

enum { ROLE_PUBLISHER = 1, ROLE_NOTIFIER = 2, ROLE_CONSUMER = 4, ROLE_ALL = 7 };

typedef struct app {
    uv_loop_t *loop;
    int roles;
    char node[300];
    hs_config_t cfg;
    hs_net_t *net;
    hs_tls_t *tls; /* --tls-cert and --tls-key: every listener speaks TLS */
    hs_store_t *store;
    hs_bus_t *bus;
    hs_publisher_t *publisher;
    hs_notifier_t *notifier;
    hs_consumer_t *consumer;
    hs_auth_t *auth;               /* API keys (publisher, metrics) */
    hs_token_verifier_t *verifier; /* client tokens (notifier), NULL when off */
    char api_addr[300];            /* the API address in effect */
    /* who may reach the two ports (docs/security.md): the servers borrow it */
    hs_http_policy_t policy;
    hs_host_list_t *allowed_hosts;   /* NULL: no Host check */
    hs_addr_list_t *trusted_proxies; /* --trusted-proxies */
    hs_cors_t *allowed_origins;      /* --allowed-origins */
    /* --metrics-addr: an extra server with the operations routes only */
    hs_router_t *metrics_router;
    hs_health_t *metrics_health;
    hs_http_server_t *metrics_http;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    uv_signal_t sighup; /* reloads --api-key-file and the TLS certificate */
    unsigned flush_threads;
    uv_timer_t shutdown_timer;
    int stopping;
    int roles_running;
    int exit_code;
} app_t;

static void print_usage(FILE *out)
{
    fprintf(out,
            "houston %s - real-time messaging server\n\n"
            "Usage: houston [COMMAND] [FLAGS]\n\n"
            "Commands:\n",
            HOUSTON_VERSION);
    hs_cli_print_commands(out);
    fprintf(out, "\nClient flags (pub, sub, history, status; 'houston pub --help'):\n");
    hs_cli_print_client_flags(out);
    fprintf(out, "\nServer flags (each also read from its HOUSTON_* environment variable):\n");
    hs_config_print_help(out);
}

/* ---- shutdown ---------------------------------------------------------- */

static void handle_closed_cb(uv_handle_t *handle)
{
    (void)handle;
}

static void bus_closed_cb(int status, void *data)
{
    app_t *app = data;
    (void)status;
    if (app->consumer)
        hs_consumer_free(app->consumer);
    if (app->metrics_http) {
        hs_http_server_free(app->metrics_http);
        hs_health_free(app->metrics_health);
        hs_router_free(app->metrics_router);
    }
    if (app->notifier)
        hs_notifier_free(app->notifier);
    if (app->publisher)
        hs_publisher_free(app->publisher);
    hs_net_close(app->net);
    hs_auth_free(app->auth);
    hs_host_list_free(app->allowed_hosts);
    hs_addr_list_free(app->trusted_proxies);
    hs_cors_free(app->allowed_origins);
    hs_token_verifier_free(app->verifier);
    uv_close((uv_handle_t *)&app->sighup, handle_closed_cb);
    uv_close((uv_handle_t *)&app->sigint, handle_closed_cb);
    uv_close((uv_handle_t *)&app->sigterm, handle_closed_cb);
    uv_close((uv_handle_t *)&app->shutdown_timer, handle_closed_cb);
    hs_log_info("houston: stopped");
}

static void store_closed_cb(int status, void *data)
{
    app_t *app = data;
    if (status != 0) {
        hs_log_error("houston: closing the store failed: %s", hs_strerror(status));
        app->exit_code = 1;
    }
    hs_bus_close(app->bus, bus_closed_cb, app);
}

static void role_stopped_cb(void *data);

static void metrics_stopped_cb(hs_http_server_t *server, void *data)
{
    (void)server;
    role_stopped_cb(data);
}

static void role_stopped_cb(void *data)
{
    app_t *app = data;
    if (--app->roles_running > 0)
        return;
    /* No request or connection is left: what they wrote is queued in the
     * store, which commits it before closing. */
    if (app->store)
        hs_store_close(app->store, store_closed_cb, app);
    else
        store_closed_cb(0, app);
}

static void shutdown_timeout_cb(uv_timer_t *timer)
{
    app_t *app = timer->data;
    hs_log_error("houston: shutdown did not finish within %llu ms; exiting",
                 (unsigned long long)app->cfg.shutdown_timeout_ms);
    exit(1);
}

static void shut_down(app_t *app);

static void signal_cb(uv_signal_t *handle, int signum)
{
    app_t *app = handle->data;
    if (app->stopping) {
        hs_log_warn("houston: second signal; exiting now");
        exit(1);
    }
    hs_log_info("houston: %s received; shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
    shut_down(app);
}

/* Redis says the deployment uses another --partitions (the bus logged
 * both numbers): this process stops, with a non-zero status. */
static void partitions_mismatch_cb(const char *why, void *data)
{
    app_t *app = data;
    (void)why;
    app->exit_code = 2;
    if (!app->stopping)
        shut_down(app);
}

static void shut_down(app_t *app)
{
    app->stopping = 1;
    uv_signal_stop(&app->sigint);
    uv_signal_stop(&app->sigterm);
    uv_signal_stop(&app->sighup);
    if (app->cfg.shutdown_timeout_ms > 0) {
        uv_timer_start(&app->shutdown_timer, shutdown_timeout_cb, app->cfg.shutdown_timeout_ms, 0);
        uv_unref((uv_handle_t *)&app->shutdown_timer);
    }
    /* One count more than the parts, dropped last, so that parts that stop
     * at once do not finish the shutdown before the others started. */
    app->roles_running = 1;
    if (app->publisher) {
        app->roles_running++;
        hs_publisher_shutdown(app->publisher, role_stopped_cb, app);
    }
    if (app->notifier) {
        app->roles_running++;
        hs_notifier_shutdown(app->notifier, role_stopped_cb, app);
    }
    if (app->metrics_http) {
        app->roles_running++;
        hs_http_server_shutdown(app->metrics_http, metrics_stopped_cb, app);
    }
    role_stopped_cb(app);
}

/* SIGHUP with TLS on: a renewed certificate is used for the connections
 * accepted from now on; on any error the previous one stays. */
/* SIGHUP: the API key file and the TLS certificate are read again; what
 * fails to load is logged and the previous one kept. */
static void reload_cb(uv_signal_t *handle, int signum)
{
    app_t *app = handle->data;
    (void)signum;
    char err[512] = "";
    if (app->auth && hs_auth_reload(app->auth, err, sizeof(err)) != 0)
        hs_log_error("houston: SIGHUP: API keys not reloaded: %s", err);
    else if (app->auth)
        hs_log_info("houston: SIGHUP: %zu API keys loaded", hs_auth_key_count(app->auth));
    if (app->tls == NULL)
        return;
    if (hs_tls_reload(app->tls, app->cfg.tls_cert, app->cfg.tls_key, app->cfg.tls_min_version, err,
                      sizeof(err)) != 0) {
        hs_log_error("houston: SIGHUP: %s; keeping the previous certificate", err);
        return;
    }
    char about[512];
    hs_tls_describe(app->tls, about, sizeof(about));
    hs_log_info("houston: SIGHUP: TLS certificate loaded again: %s", about);
}

/* ---- serve ------------------------------------------------------------- */

static void notifier_gauges(void *ctx, hs_metrics_gauges_t *out)
{
    hs_notifier_gauges(ctx, out);
}

static void stale_removed_cb(int status, size_t count, void *data)
{
    (void)data;
    if (status != 0)
        hs_log_error("houston: removing stale connections failed: %s", hs_strerror(status));
    else if (count > 0)
        hs_log_info("houston: removed %zu connections left from a previous run", count);
}

/* The notifier's node id: --node-id, or "local" for serve on the
 * in-process bus, or this host and WebSocket address, stable across
 * restarts so a restart cleans up after the previous run. */
static void choose_node_id(app_t *app)
{
    if (app->cfg.node_id[0]) {
        snprintf(app->node, sizeof(app->node), "%s", app->cfg.node_id);
    } else if (app->cfg.redis[0] == '\0') {
        snprintf(app->node, sizeof(app->node), "%s", EMBEDDED_NODE_ID);
    } else {
        char host[128] = "host";
        size_t len = sizeof(host);
        uv_os_gethostname(host, &len);
        snprintf(app->node, sizeof(app->node), "%s%s", host, app->cfg.ws_addr);
    }
}

static int open_bus(app_t *app)
{
    if (app->cfg.redis[0] == '\0') {
        if (app->roles != ROLE_ALL) {
            hs_log_error("houston: the roles run as separate processes need --redis "
                         "redis://host:port");
            return 1;
        }
        app->bus = hs_bus_inproc_new(app->loop);
        return 0;
    }
    char err[256] = "";
    hs_bus_redis_options_t options = {.claim_idle_ms = app->cfg.claim_idle_ms,
                                      .node_stream_max = app->cfg.node_stream_max,
                                      .event_stream_max = app->cfg.event_stream_max,
                                      .partitions = (unsigned)app->cfg.partitions,
                                      .heartbeat_ms = app->cfg.heartbeat_interval_ms,
                                      .mismatch_cb = partitions_mismatch_cb,
                                      .mismatch_data = app};
    int rc = hs_bus_redis_open(app->loop, app->cfg.redis, &options, &app->bus, err, sizeof(err));
    if (rc != 0) {
        hs_log_error("houston: %s", err[0] ? err : hs_strerror(rc));
        return 1;
    }
    return 0;
}

/* Whether addr ("host:port", "[v6]:port", ":port") names a loopback host;
 * ":port" and "*:port" are every interface. */
static bool addr_is_loopback(const char *addr)
{
    char host[128];
    const char *end;
    if (addr[0] == '[') {
        end = strchr(addr, ']');
        if (end == NULL)
            return false;
        addr++;
    } else {
        end = strrchr(addr, ':');
        if (end == NULL)
            return false;
    }
    size_t len = (size_t)(end - addr);
    if (len == 0 || len >= sizeof(host))
        return false;
    memcpy(host, addr, len);
    host[len] = '\0';
    if (strcmp(host, "localhost") == 0)
        return true;
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET, host, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &v6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&v6) || (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
    return false;
}

static char *read_file(const char *path, char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, err_len, "--jwt-public-key: cannot read \"%s\"", path);
        return NULL;
    }
    char *text = calloc(1, 65537);
    size_t n = text ? fread(text, 1, 65536, f) : 0;
    fclose(f);
    if (text && n == 65536) {
        snprintf(err, err_len, "--jwt-public-key: \"%s\" is too large", path);
        free(text);
        return NULL;
    }
    return text;
}

/* The Host check, the Origin list and the trusted proxies, shared by the
 * API and WebSocket servers. The Host check is on without an API key (the
 * keyless API trusts whoever reaches it, and a rebinding page reaches it
 * under its own name), or whenever --allowed-hosts is set. */
static int setup_browser_rules(app_t *app, bool keys)
{
    char err[256] = "";
    hs_config_t *cfg = &app->cfg;
    if (hs_addr_list_parse(cfg->trusted_proxies, &app->trusted_proxies, err, sizeof(err)) != 0) {
        hs_log_error("houston: %s", err);
        return 1;
    }
    app->allowed_origins = hs_cors_new(
        cfg->allowed_origins[strspn(cfg->allowed_origins, " \t")] ? cfg->allowed_origins : "none",
        NULL);
    if (hs_cors_allows_any(app->allowed_origins) && app->verifier == NULL) {
        hs_log_error("houston: --allowed-origins \"*\" lets every web page open connections; it "
                     "is allowed only together with client tokens (--jwt-secret or "
                     "--jwt-public-key). List the origins instead");
        return 1;
    }
    if (cfg->allowed_hosts[0] || ((app->roles & ROLE_PUBLISHER) && !keys))
        app->allowed_hosts = hs_host_list_new(cfg->allowed_hosts);
    app->policy = (hs_http_policy_t){.allowed_hosts = app->allowed_hosts,
                                     .trusted_proxies = app->trusted_proxies,
                                     .allowed_origins = app->allowed_origins};
    if (hs_addr_list_count(app->trusted_proxies) > 0 && !keys && (app->roles & ROLE_PUBLISHER))
        hs_log_warn("houston: --trusted-proxies without an API key: requests relayed by a proxy "
                    "are refused by the API (403); set --api-key");
    return 0;
}

/* API keys, the secure-by-default API address, client tokens. Returns 0,
 * or 1 after logging why houston cannot start. */
static int setup_security(app_t *app)
{
    char err[256] = "";
    hs_config_t *cfg = &app->cfg;
    snprintf(app->api_addr, sizeof(app->api_addr), "%s", cfg->api_addr);
    if (hs_auth_new(cfg->api_key, cfg->api_key_file, &app->auth, err, sizeof(err)) != 0) {
        hs_log_error("houston: %s", err);
        return 1;
    }
    bool keys = hs_auth_key_count(app->auth) > 0;
    if (app->roles & ROLE_PUBLISHER) {
        if (!keys && hs_config_source(cfg, "api-addr") == HS_CONFIG_DEFAULT) {
            /* Secure by default: an API anyone on the network could use is
             * something one asks for, not something one gets. */
            const char *port = strrchr(cfg->api_addr, ':');
            snprintf(app->api_addr, sizeof(app->api_addr), "127.0.0.1%s", port ? port : ":9002");
            hs_log_warn("houston: no API key configured (--api-key, --api-key-file): the API "
                        "listens on loopback only (127.0.0.1 and ::1)");
        } else if (!keys && !addr_is_loopback(cfg->api_addr)) {
            if (!cfg->insecure) {
                hs_log_error("houston: refusing to serve the API on %s without an API key: "
                             "anyone who reaches it could publish and read everything. Set "
                             "--api-key / HOUSTON_API_KEY (or --api-key-file), listen on a "
                             "loopback address, or pass --insecure",
                             cfg->api_addr);
                return 1;
            }
            hs_log_warn("houston: --insecure: the API on %s needs no key; anyone who reaches "
                        "it can publish and read every topic",
                        cfg->api_addr);
        }
    }
    if (cfg->jwt_secret[0] || cfg->jwt_public_key[0]) {
        char *pem = NULL;
        if (cfg->jwt_public_key[0] &&
            (pem = read_file(cfg->jwt_public_key, err, sizeof(err))) == NULL) {
            hs_log_error("houston: %s", err);
            return 1;
        }
        hs_token_options_t options = {.secret = cfg->jwt_secret,
                                      .public_key_pem = pem,
                                      .issuer = cfg->jwt_issuer,
                                      .audience = cfg->jwt_audience};
        int rc = hs_token_verifier_new(&options, &app->verifier, err, sizeof(err));
        free(pem);
        if (rc != 0) {
            hs_log_error("houston: %s", err);
            return 1;
        }
    }
    if (hs_info_check_public_url(cfg->public_ws_url, err, sizeof(err)) != 0) {
        hs_log_error("houston: %s", err);
        return 1;
    }
    return setup_browser_rules(app, keys);
}

/* Client-side subscribes without tokens: only in the loopback development
 * default of the embedded server (no key, API on loopback). */
static bool open_client_subscribe(const app_t *app)
{
    return (app->roles & ROLE_PUBLISHER) && hs_auth_key_count(app->auth) == 0 &&
           addr_is_loopback(app->api_addr);
}

/* --flush-threads: "auto" (one helper per core beyond the loop's own, at
 * most 7) or a number. */
static int parse_flush_threads(app_t *app)
{
    const char *v = app->cfg.flush_threads;
    if (strcmp(v, "auto") == 0) {
        unsigned cores = uv_available_parallelism();
        app->flush_threads = cores > 1 ? (cores - 1 > 7 ? 7 : cores - 1) : 0;
        return 0;
    }
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (v[0] == '\0' || *end != '\0' || n > 64) {
        hs_log_error("houston: --flush-threads: \"%s\" is not auto or a number 0-64", v);
        return 1;
    }
    app->flush_threads = (unsigned)n;
    return 0;
}

/* --tls-cert and --tls-key: both or neither. Checked before anything is
 * opened, so a bad certificate stops the start at once. */
static int load_tls(app_t *app)
{
    bool cert = app->cfg.tls_cert[0] != '\0', key = app->cfg.tls_key[0] != '\0';
    if (!cert && !key)
        return 0;
    if (cert != key) {
        hs_log_error("houston: --tls-cert and --tls-key go together (%s is missing)",
                     cert ? "--tls-key" : "--tls-cert");
        return 1;
    }
    char err[512] = "";
    if (hs_tls_new(app->cfg.tls_cert, app->cfg.tls_key, app->cfg.tls_min_version, &app->tls, err,
                   sizeof(err)) != 0) {
        hs_log_error("houston: %s", err);
        return 1;
    }
    char about[512];
    hs_tls_describe(app->tls, about, sizeof(about));
    hs_log_info("houston: TLS on every listener (wss://, https://): %s", about);
    return 0;
}

/* The store's options from the settings, the one place for both users:
 * serve (prune: a process with the publisher role prunes the history) and
 * migrate (it only opens and closes the store). */
static hs_store_options_t store_options_of(const hs_config_t *cfg, bool prune)
{
    return (hs_store_options_t){.batch_max = (unsigned)cfg->batch_max,
                                .connect_wait_ms = cfg->db_wait_ms,
                                .idempotency_window_ms = cfg->idempotency_window_ms,
                                .prune = prune,
                                .retention_age_ms = cfg->retention_age_ms,
                                .retention_count = cfg->retention_count};
}

static int serve(app_t *app)
{
    char err[256] = "";
    int rc;
    choose_node_id(app);
    if (setup_security(app) != 0 || load_tls(app) != 0 || parse_flush_threads(app) != 0)
        return 1;
    if (app->roles & (ROLE_PUBLISHER | ROLE_NOTIFIER)) {
        /* Every process with the publisher role prunes (docs/scaling.md,
         * "Retention"): in the scale-out mode several, with harmless
         * overlap. */
        hs_store_options_t store_options =
            store_options_of(&app->cfg, (app->roles & ROLE_PUBLISHER) != 0);
        rc = hs_store_open(app->loop, app->cfg.db, &store_options, &app->store, err, sizeof(err));
        if (rc != 0) {
            hs_log_error("houston: %s", err[0] ? err : hs_strerror(rc));
            return 1;
        }
    }
    if (open_bus(app) != 0)
        return 1;
    app->net = hs_net_new(app->loop);
    hs_net_set_flush_threads(app->net, app->flush_threads);
    if (app->tls)
        hs_net_set_tls(app->net, app->tls);
    if (app->roles & ROLE_NOTIFIER) {
        /* Connections of an earlier run of this node are gone; so are their
         * subscriptions. */
        hs_store_remove_node(app->store, app->node, stale_removed_cb, NULL);
        app->notifier = hs_notifier_new(app->net, app->store, app->bus, &app->cfg, app->node);
        hs_notifier_set_security(app->notifier, app->verifier, open_client_subscribe(app));
        hs_notifier_set_http_policy(app->notifier, &app->policy);
        rc = hs_notifier_start(app->notifier, app->cfg.ws_addr);
        if (rc != 0) {
            hs_log_error("houston: cannot listen on %s (WebSocket): %s", app->cfg.ws_addr,
                         hs_strerror(rc));
            return 1;
        }
    }
    if (app->roles & ROLE_PUBLISHER) {
        app->publisher = hs_publisher_new(app->net, app->store, app->bus, &app->cfg);
        if (app->notifier)
            hs_publisher_set_gauges(app->publisher, notifier_gauges, app->notifier);
        hs_publisher_set_auth(app->publisher, app->auth);
        hs_publisher_set_http_policy(app->publisher, &app->policy);
        rc = hs_publisher_start(app->publisher, app->api_addr);
        if (rc != 0) {
            hs_log_error("houston: cannot listen on %s (API): %s", app->api_addr, hs_strerror(rc));
            return 1;
        }
        hs_info_site_t site = {.ws_port = app->notifier ? hs_notifier_port(app->notifier) : 0,
                               .tls = app->tls != NULL,
                               .api_keys = hs_auth_key_count(app->auth) > 0,
                               .client_tokens = app->verifier != NULL,
                               .scale_out = app->cfg.redis[0] != '\0',
                               .consumer = (app->roles & ROLE_CONSUMER) != 0};
        hs_publisher_set_site(app->publisher, &site);
        if (strcmp(app->api_addr, app->cfg.api_addr) != 0) {
            /* The loopback default: IPv6 too, where the host has it. */
            char v6[64];
            snprintf(v6, sizeof(v6), "[::1]%s", strrchr(app->api_addr, ':'));
            if (hs_publisher_listen_also(app->publisher, v6) != 0)
                hs_log_debug("houston: no IPv6 loopback for the API");
        }
    }
    if (app->roles & ROLE_CONSUMER) {
        app->consumer = hs_consumer_new(app->bus, &rc);
        if (rc != 0) {
            hs_log_error("houston: cannot consume events: %s", hs_strerror(rc));
            return 1;
        }
    }
    if (app->cfg.metrics_addr[0]) {
        /* The same settings as the API and WebSocket listeners (one function
         * fills every listener's limits). */
        hs_http_limits_t limits;
        hs_http_limits_from_config(&limits, &app->cfg);
        app->metrics_router = hs_router_new();
        app->metrics_health = hs_health_add_routes(app->metrics_router, app->store, app->bus);
        if (app->notifier)
            hs_health_set_gauges(app->metrics_health, notifier_gauges, app->notifier);
        hs_health_add_metrics_route(app->metrics_health, app->metrics_router);
        app->metrics_http = hs_http_server_new(app->net, app->metrics_router, &limits, "metrics");
        hs_http_server_set_guard(app->metrics_http, hs_auth_guard_cb, app->auth);
        rc = hs_http_server_listen(app->metrics_http, app->cfg.metrics_addr);
        if (rc != 0) {
            hs_log_error("houston: cannot listen on %s (metrics): %s", app->cfg.metrics_addr,
                         hs_strerror(rc));
            return 1;
        }
    }
    uv_signal_init(app->loop, &app->sigint);
    uv_signal_init(app->loop, &app->sigterm);
    uv_signal_init(app->loop, &app->sighup);
    uv_timer_init(app->loop, &app->shutdown_timer);
    app->sigint.data = app->sigterm.data = app->sighup.data = app->shutdown_timer.data = app;
    uv_signal_start(&app->sighup, reload_cb, SIGHUP);
    uv_signal_start(&app->sigint, signal_cb, SIGINT);
    uv_signal_start(&app->sigterm, signal_cb, SIGTERM);

    char db_shown[512], redis_shown[512];
    hs_redact_url(app->cfg.db, db_shown, sizeof(db_shown));
    hs_redact_url(app->cfg.redis, redis_shown, sizeof(redis_shown));
    hs_log_info("houston %s:%s%s%s%s%s, store %s, bus %s", HOUSTON_VERSION,
                app->notifier ? " WebSocket on " : "", app->notifier ? app->cfg.ws_addr : "",
                app->publisher ? " API on " : "", app->publisher ? app->api_addr : "",
                app->consumer ? " consumer" : "", app->store ? db_shown : "none",
                app->cfg.redis[0] ? redis_shown : "in-process");
    if (app->notifier)
        hs_log_info("houston: notifier node %s", app->node);
    uv_run(app->loop, UV_RUN_DEFAULT);
    return app->exit_code;
}

static void print_route(enum http_method method, const char *pattern, void *data)
{
    printf("%s %s %s\n", (const char *)data, http_method_str(method), pattern);
}

/* `houston routes`: every route of both ports, "PORT METHOD PATH" per line;
 * the tests compare it with docs/openapi.yaml. */
static int print_routes(hs_config_t *cfg)
{
    uv_loop_t *loop = uv_default_loop();
    hs_net_t *net = hs_net_new(loop);
    hs_notifier_t *notifier = hs_notifier_new(net, NULL, NULL, cfg, "routes");
    hs_publisher_t *publisher = hs_publisher_new(net, NULL, NULL, cfg);
    hs_router_each(hs_notifier_router(notifier), print_route, "ws");
    hs_router_each(hs_publisher_router(publisher), print_route, "api");
    hs_publisher_free(publisher);
    hs_notifier_free(notifier);
    hs_net_close(net);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}

static void migrate_closed_cb(int status, void *data)
{
    *(int *)data = status;
}

/* houston migrate: opens the store - which creates or migrates the schema,
 * or refuses a database of a newer houston - and closes it (docs/operations.md,
 * "Upgrading"). The servers do the same at start-up; this lets an operator
 * migrate ahead of a rollout and see the outcome. */
static int migrate(const hs_config_t *cfg)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return 1;
    hs_store_options_t options = store_options_of(cfg, false);
    hs_store_t *store = NULL;
    char err[256] = "";
    char db[512];
    hs_redact_url(cfg->db, db, sizeof(db));
    int rc = hs_store_open(&loop, cfg->db, &options, &store, err, sizeof(err));
    if (rc != 0) {
        hs_log_error("houston: %s", err[0] ? err : hs_strerror(rc));
        uv_loop_close(&loop);
        return 1;
    }
    int closed = -1;
    hs_store_close(store, migrate_closed_cb, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        hs_log_warn("houston: some handles were still open at exit");
    if (closed != 0) {
        hs_log_error("houston: closing %s failed: %s", db, hs_strerror(closed));
        return 1;
    }
    hs_log_info("houston: %s: the schema is up to date", db);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    /* The client commands have their own flags and --help. */
    if (argc > 1 && hs_cli_handles(argv[1]))
        return hs_cli_main(argc - 1, argv + 1);
    int first = 1;
    const char *command = "serve";
    if (argc > 1 && argv[1][0] != '-') {
        command = argv[1];
        first = 2;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("houston %s\n", HOUSTON_VERSION);
            return 0;
        }
    }
    if (strcmp(command, "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (strcmp(command, "version") == 0) {
        printf("houston %s\n", HOUSTON_VERSION);
        return 0;
    }
    static const struct {
        const char *name;
        int roles;
    } commands[] = {{"serve", ROLE_ALL},
                    {"publisher", ROLE_PUBLISHER},
                    {"notifier", ROLE_NOTIFIER},
                    {"consumer", ROLE_CONSUMER},
                    {"config", 0},
                    {"routes", 0},
                    {"migrate", 0}};
    int roles = -1;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(command, commands[i].name) == 0)
            roles = commands[i].roles;
    if (roles < 0) {
        fprintf(stderr, "houston: unknown command '%s' (try 'houston --help')\n", command);
        return 2;
    }

    app_t app;
    memset(&app, 0, sizeof(app));
    hs_config_defaults(&app.cfg);
    char err[256];
    if (hs_config_load(&app.cfg, argc - first, argv + first, err, sizeof(err)) != 0) {
        fprintf(stderr, "houston: %s (try 'houston --help')\n", err);
        hs_config_dispose(&app.cfg);
        return 2;
    }
    hs_log_level_t level;
    if (!hs_log_parse_level(app.cfg.log_level, &level)) {
        fprintf(stderr, "houston: --log-level: unknown level '%s'\n", app.cfg.log_level);
        hs_config_dispose(&app.cfg);
        return 2;
    }
    hs_log_set_level(level);
    hs_log_set_json(strcmp(app.cfg.log_format, "json") == 0);
    if (strcmp(command, "routes") == 0) {
        int code = print_routes(&app.cfg);
        hs_config_dispose(&app.cfg);
        return code;
    }
    if (strcmp(command, "config") == 0) {
        hs_config_print(&app.cfg, stdout);
        hs_config_dispose(&app.cfg);
        return 0;
    }
    if (strcmp(command, "migrate") == 0) {
        int code = migrate(&app.cfg);
        hs_config_dispose(&app.cfg);
        return code;
    }

    app.roles = roles;
    app.loop = uv_default_loop();
    int code = serve(&app);
    if (code == 0 && uv_loop_close(app.loop) != 0)
        hs_log_warn("houston: some handles were still open at exit");
    hs_tls_free(app.tls);
    hs_config_dispose(&app.cfg);
    return code;
}
