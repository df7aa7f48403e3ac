/* http_internal.h - what the files of src/http share privately. */
#ifndef HS_HTTP_INTERNAL_H
#define HS_HTTP_INTERNAL_H

#include "core/buf.h"
#include "http/client_addr.h"
#include "http/cors.h"
#include "http/server.h"

#define HS_HTTP_MAX_PARAMS 4  /* "{name}" segments per route */
#define HS_HTTP_MAX_QUERY  64 /* query parameters per request (more: 400) */

typedef struct hs_http_conn hs_http_conn_t;

/* What a response does to the connection. */
typedef enum {
    HS_HTTP_KEEP,          /* keep-alive, implicit (HTTP/1.1) */
    HS_HTTP_KEEP_EXPLICIT, /* keep-alive, said explicitly (HTTP/1.0 client) */
    HS_HTTP_CLOSE,         /* "Connection: close", then close after flush */
} hs_http_persist_t;

typedef struct header_ref {
    uint32_t name_off, name_len, value_off, value_len;
} header_ref_t;

typedef struct kv {
    char *name;
    char *value;
} kv_t;

struct hs_http_request {
    hs_http_conn_t *hc; /* NULL once the client went away */
    hs_http_server_t *server;
    enum http_method method;
    unsigned short http_major, http_minor;
    bool keep_alive;
    bool is_head;
    /* target as received (path and query), and the path alone; both
     * NUL-terminated */
    char *url;
    size_t url_len;
    char *path;
    size_t path_len;
    /* headers: names (lower-cased) and values in one buffer */
    char *hbuf;
    size_t hbuf_len, hbuf_cap;
    header_ref_t *headers;
    unsigned header_count, header_cap;
    bool last_was_value;
    /* body */
    char *body;
    size_t body_len, body_cap;
    /* captured path parameters and the decoded query */
    kv_t params[HS_HTTP_MAX_PARAMS];
    unsigned param_count;
    kv_t *query;
    unsigned query_count;
    uint64_t start_ms;
    char id[24];
    char client_addr[HS_CLIENT_ADDR_MAX]; /* set at dispatch */
    bool proxied;                         /* relayed by a trusted proxy */
    /* pipelining (server.c): the connection's queue of requests in flight */
    struct hs_http_request *next_in_flight;
    hs_buf_t *answer; /* encoded, waiting for the answers before it */
    int answer_status;
    hs_http_persist_t answer_persist;
    bool force_close;  /* an error found while reading it */
    unsigned conn_seq; /* its number on the connection, from 1 */
};

/* request.c */
hs_http_request_t *hs_http__request_new(hs_http_server_t *server, hs_http_conn_t *hc);
void hs_http__request_free(hs_http_request_t *req);
/* Appends a piece of a header name or value (pieces may be split across
 * reads); HS_ETOOBIG past max_bytes in all or max_headers headers. */
int hs_http__request_add_header_bytes(hs_http_request_t *req, const char *at, size_t len,
                                      bool is_value, size_t max_bytes, unsigned max_headers);
/* Splits url into path and query and decodes the query; HS_EINVAL on a bad
 * escape or too many parameters. */
int hs_http__request_parse_target(hs_http_request_t *req);
/* Every value of the header name, in order, joined with ","; NULL when
 * there is none. The caller frees it (hs_free). */
char *hs_http__request_header_joined(const hs_http_request_t *req, const char *name);
void hs_http__request_set_param(hs_http_request_t *req, const char *name, const char *value,
                                size_t len);

/* response.c */
const char *hs_http__reason(int status);

/* cors.c: the CORS header lines for req's answer ("" when the server has no
 * policy, the request no Origin, or an origin the policy refuses), written
 * into out; returns their length. */
size_t hs_http__cors_headers(const hs_http_request_t *req, char *out, size_t out_len);
/* Answers OPTIONS on a path the router serves with the methods in allow:
 * 204, Allow, and the preflight headers when the origin is allowed. */
void hs_http__cors_options(hs_http_request_t *req, const char *allow);

/* server.c: the server's CORS policy, or NULL. */
const hs_cors_t *hs_http__server_cors(const hs_http_server_t *server);
/* server.c: the server's policy, or NULL. */
const hs_http_policy_t *hs_http__server_policy(const hs_http_server_t *server);

hs_http_persist_t hs_http__persistence(hs_http_request_t *req, int status);
/* Queues the encoded response, logs it, releases req and moves the
 * connection on to its next request (or closes it). */
void hs_http__send_response(hs_http_request_t *req, int status, hs_buf_t *response,
                            hs_http_persist_t persist);

/* ---- server.c and parse.c: one HTTP connection and its server ------------- */

struct hs_http_conn {
    hs_conn_t *conn;
    hs_http_server_t *server;
    http_parser parser;
    hs_http_request_t *req;         /* being parsed */
    bool message_done;              /* req is complete (an upgrade held back) */
    hs_http_request_t *head, *tail; /* dispatched, answered in this order */
    unsigned in_flight;             /* requests in that queue */
    bool in_dispatch;               /* inside dispatch(), route handler included */
    bool stop;                      /* parse no further request: a close is coming */
    bool close_after;               /* an answer said close: close once it is out */
    bool continue_owed;             /* req wants "100 Continue" once the queue is empty */
    bool upgraded;                  /* a route took the connection away */
    bool peer_eof;                  /* the client closed its side */
    int error_status;               /* set by a parser callback that aborts */
    const char *error_code;
    const char *error_message;
    char *saved; /* bytes received after the request in flight */
    size_t saved_len;
    unsigned requests;
    struct hs_http_conn *prev, *next;
};

struct hs_http_server {
    hs_net_t *net;
    hs_router_t *router;
    hs_http_limits_t limits;
    char *name;
    hs_listener_t *listener;
    hs_listener_t *extra_listener; /* hs_http_server_listen_also */
    bool (*guard)(hs_http_request_t *req, void *ctx);
    void *guard_ctx;
    hs_cors_t *cors;                /* NULL: no CORS headers, OPTIONS only where routed */
    const hs_http_policy_t *policy; /* borrowed; NULL: no Host check, no proxies */
    hs_http_conn_t *conns;          /* HTTP connections (upgraded ones leave) */
    size_t conn_count;
    uint64_t request_seq;
    bool shutting_down;
    void (*shutdown_cb)(hs_http_server_t *, void *);
    void *shutdown_data;
};

/* parse.c: the callbacks that read one request into hc->req. */
extern const http_parser_settings hs_http__parser_settings;
/* server.c: the request being read must be complete within ms (0: no
 * deadline), else it is answered 408. */
void hs_http__request_deadline(hs_http_conn_t *hc, uint64_t ms);
/* server.c: "100 Continue", now (nothing is in flight) or once the answers
 * before it went out. */
void hs_http__send_continue(hs_http_conn_t *hc);

#endif
