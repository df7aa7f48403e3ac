/* http_internal.h - what the files of src/http share privately. */
#ifndef HS_HTTP_INTERNAL_H
#define HS_HTTP_INTERNAL_H

#include "http/server.h"

#define HS_HTTP_MAX_PARAMS 4
#define HS_HTTP_MAX_QUERY  64

typedef struct hs_http_conn hs_http_conn_t;

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
    /* target: path and query, NUL-terminated */
    char *url;
    size_t url_len, path_len;
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
};

/* request.c */
hs_http_request_t *hs_http__request_new(hs_http_server_t *server, hs_http_conn_t *hc);
void hs_http__request_free(hs_http_request_t *req);
/* Appends to the header buffer; returns HS_ETOOBIG past max bytes. */
int hs_http__request_add_header_bytes(hs_http_request_t *req, const char *at, size_t len,
                                      bool is_value, size_t max_bytes, unsigned max_headers);
/* Parses the query string; HS_EINVAL on a bad escape or too many params. */
int hs_http__request_parse_query(hs_http_request_t *req);
void hs_http__request_set_param(hs_http_request_t *req, const char *name, const char *value,
                                size_t len);

/* server.c */
const char *hs_http__reason(int status);

#endif
