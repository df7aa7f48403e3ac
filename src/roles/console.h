/* console.h - the web console: static files compiled into the binary
 * (web/, see console_assets.h), served on the notifier's port.
 *
 *   GET /                 the page (web/index.html)
 *   GET /console/{file}   its scripts and styles (web/<file>)
 *
 * Answers carry the content type, "Cache-Control: no-cache" with an ETag
 * (a hash of the file taken at build time; If-None-Match gets 304), and
 * nosniff; the page also a Content-Security-Policy that allows scripts and
 * styles from the same origin only and connections to any http(s) and ws(s)
 * URL, since the API base URL is editable. HEAD is answered by the server.
 *
 * Thread affinity: the loop thread only (the handlers hold no state).
 */
#ifndef HS_ROLES_CONSOLE_H
#define HS_ROLES_CONSOLE_H

#include "http/server.h"

/* Adds the console's routes to router. */
void hs_console_add_routes(hs_router_t *router);

#endif
