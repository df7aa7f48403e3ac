/* transport_ws.c - the WebSocket transport of a notifier client.
 */
#include <stdlib.h>
#include <string.h>

#include "roles/notifier_internal.h"

static void ws_close_cb(hs_ws_session_t *ws, uint16_t code, bool clean)
{
    client_t *client = hs_ws_data(ws);
    if (client == NULL)
        return; /* the server ended it already (drop_transport) */
    hs_notifier_t *n = client->notifier;
    hs_log_info("notifier: conn %s closed (code %u, %s)", client->id, code,
                clean ? "clean" : "unclean");
    /* 1001 (going away) and 1006 (no close frame: a reset, missed pongs)
     * may come back; 1000 and every close the server decided end it. */
    hs_notifier__transport_ended(n, client, code == 1001 || code == 1006);
}

static void ws_drain_cb(hs_ws_session_t *ws)
{
    hs_notifier__client_drained(hs_ws_data(ws));
}

const hs_ws_callbacks_t hs_notifier__ws_callbacks = {
    .on_message = hs_notifier__ws_message_cb,
    .on_close = ws_close_cb,
    .on_drain = ws_drain_cb,
};
