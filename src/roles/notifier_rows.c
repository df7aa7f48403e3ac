/* notifier_rows.c - the connection rows the notifier writes: the writes that
 * end or detach a row, retried while the store is away, and the batched
 * acknowledgements.
 */
#include <stdlib.h>
#include <string.h>

#include "roles/notifier_internal.h"

void hs_notifier__store_write_cb(int status, void *data)
{
    if (status != 0)
        hs_log_error("notifier: storing connection state failed: %s", hs_strerror(status));
    (void)data;
}

/* ---- connection rows that must change even while the store is away ----- */

/* The row of a new connection, and the writes that end or detach one. One
 * the store could not make (unreachable) is tried again each second
 * (ack_timer_cb) until it is made or no longer applies (HS_ENOTFOUND:
 * another attach owns the row, or it is gone; HS_EEXIST: the row is there),
 * for at most CONN_WRITE_TRIES tries: otherwise the row of a connection that
 * ended during an outage would stay listed for ever, and one that began
 * during it would have none - no resume could claim it, and subscriptions
 * an API subscribe stored for it would outlive it wherever the cleanup goes
 * by the connection's row (a dead node's). The row of a new connection is
 * written only while the connection is still attached here (a detached or
 * ended one has its own writes, which remove what an API subscribe left).
 * Each is idempotent and the epoch-guarded ones change nothing once a later
 * attach owns the row, so the order they are made in does not matter. */

static const char *const conn_write_names[] = {
    [CW_ADD] = "storing it",
    [CW_REMOVE] = "removing it",
    [CW_RELEASE] = "marking it detached",
    [CW_EXPIRE] = "removing it at the end of its window",
};

typedef struct conn_write {
    struct conn_write *next;
    hs_notifier_t *notifier;
    conn_write_kind_t kind;
    char id[HS_ULID_LEN + 1];
    uint64_t epoch, at_ms;
    unsigned tries;
} conn_write_t;

#define CONN_WRITE_TRIES 600 /* ten minutes */

static void conn_write_cb(int status, void *data);

static void conn_write_issue(conn_write_t *w)
{
    hs_notifier_t *n = w->notifier;
    hs_store_t *store = n->store;
    w->tries++;
    switch (w->kind) {
    case CW_ADD: {
        client_t *client = hs_notifier__find_client(n, w->id);
        if (client == NULL || client->serial != w->epoch || !hs_notifier__client_attached(client)) {
            hs_free(w); /* ended or detached meanwhile: its own writes follow */
            return;
        }
        hs_store_add_connection(store, client->id, n->node_id, hs_notifier__claims(client)->sub,
                                client->ip ? client->ip->ip : NULL, client->connected_ms,
                                conn_write_cb, w);
        break;
    }
    case CW_REMOVE:
        hs_store_remove_connection(store, w->id, conn_write_cb, w);
        break;
    case CW_RELEASE:
        hs_store_release_connection(store, w->id, w->epoch, w->at_ms, conn_write_cb, w);
        break;
    case CW_EXPIRE:
        hs_store_expire_connection(store, w->id, w->epoch, conn_write_cb, w);
        break;
    }
}

void hs_notifier__conn_write(hs_notifier_t *n, conn_write_kind_t kind, const char *id,
                             uint64_t epoch, uint64_t at_ms)
{
    conn_write_t *w = hs_calloc(1, sizeof(*w));
    w->notifier = n;
    w->kind = kind;
    memcpy(w->id, id, sizeof(w->id));
    w->epoch = epoch;
    w->at_ms = at_ms;
    conn_write_issue(w);
}

static void conn_write_cb(int status, void *data)
{
    conn_write_t *w = data;
    hs_notifier_t *n = w->notifier;
    if (status == HS_ENOTFOUND && w->kind != CW_REMOVE)
        hs_log_info("notifier: conn %s: %s: another attach owns the row now, or it is gone", w->id,
                    conn_write_names[w->kind]);
    if (w->kind == CW_ADD && status == 0 && w->tries > 1)
        hs_log_info("notifier: conn %s: its row is stored now (try %u)", w->id, w->tries);
    if (w->kind == CW_RELEASE && status == HS_ENOTFOUND) {
        /* No row at this epoch: another attach owns it (the expire below
         * changes nothing then), or the connection never got one - it
         * began while the store was away and detached before its row was
         * written. Subscriptions an API subscribe stored for it meanwhile
         * would outlive it if this node died before the resume window's
         * end (its cleanup goes by the rows): they go now. */
        w->kind = CW_EXPIRE;
        w->tries = 0;
        conn_write_issue(w);
        return;
    }
    if (status == 0 || status == HS_ENOTFOUND || (w->kind == CW_ADD && status == HS_EEXIST)) {
        hs_free(w);
        return;
    }
    if (status == HS_ECLOSED || w->tries >= CONN_WRITE_TRIES) {
        hs_log_error("notifier: conn %s: %s failed for good: %s", w->id, conn_write_names[w->kind],
                     hs_strerror(status));
        hs_free(w);
        return;
    }
    if (w->tries == 1)
        hs_log_warn("notifier: conn %s: %s failed (%s); trying again each second", w->id,
                    conn_write_names[w->kind], hs_strerror(status));
    w->next = n->retries;
    n->retries = w;
}

void hs_notifier__conn_writes_retry(hs_notifier_t *n)
{
    conn_write_t *w = n->retries;
    n->retries = NULL;
    while (w) {
        conn_write_t *next = w->next;
        conn_write_issue(w);
        w = next;
    }
}

void hs_notifier__flush_ack(hs_notifier_t *n, client_t *client)
{
    if (client->ack_dirty) {
        client->ack_dirty = false;
        char ack[HS_ULID_LEN + 1];
        hs_ulid_format(&client->last_ack, ack);
        hs_store_set_last_ack(n->store, client->id, ack, hs_notifier__store_write_cb, NULL);
    }
}

/* The store is closed: nothing more can be written. */
void hs_notifier__conn_writes_dispose(hs_notifier_t *n)
{
    while (n->retries) {
        conn_write_t *next = n->retries->next;
        hs_log_error("notifier: conn %s: %s never succeeded", n->retries->id,
                     conn_write_names[n->retries->kind]);
        hs_free(n->retries);
        n->retries = next;
    }
}
