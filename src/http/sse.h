/* sse.h - Server-Sent Events on the HTTP server: the response head that
 * turns a request into an event stream, and the event format.
 *
 * Knows nothing of what is streamed (the notifier's SSE transport,
 * roles/transport_sse.c, does). Thread affinity: the loop thread only.
 */
#ifndef HS_HTTP_SSE_H
#define HS_HTTP_SSE_H

#include <stddef.h>

#include "core/buf.h"
#include "http/server.h"
#include "net/net.h"

/* Answers req with "200 OK, text/event-stream" (with the request's Origin
 * echoed in Access-Control-Allow-Origin; the caller checked it) and takes
 * its connection: the caller owns the returned connection and sets its
 * handler. NULL when the client went away, or after answering 400 when
 * pipelined requests before it still wait for their answers. */
hs_conn_t *hs_http_sse_accept(hs_http_request_t *req);

/* One event: "event: <event>", "id: <id>" when id is not NULL, one "data:"
 * line per line of data, and the blank line that ends it. The caller owns
 * the returned buffer (hs_buf_unref). */
hs_buf_t *hs_http_sse_event(const char *event, const char *id, const char *data, size_t len);

#endif
