/* notifier_resume.c - resuming a connection by token: the ask, the claim of
 * its row in the store (takeover), adopting this node's copy or rebuilding it
 * from the rows, and the second read once it is in the directory.
 */
#include <stdlib.h>
#include <string.h>

#include "roles/notifier_internal.h"

/* A resumed connection is in the directory, so every API call for it comes
 * here from now on: its rows are read once more, and what changed since the
 * resume read them (an API unsubscribe that found it in no node's
 * directory, a kick) is applied before the replay starts. */
void hs_notifier__reread_cb(int status, const hs_connection_info_t *info, void *data)
{
    registration_t *reg = data;
    hs_notifier_t *n = reg->ref.notifier;
    bool same;
    client_t *client = hs_notifier__ref_client(&reg->ref, &same);
    if (client == NULL || !same) {
        hs_free(reg);
        return;
    }
    if (status == HS_ENOTFOUND) {
        hs_log_info("notifier: conn %s was removed while it resumed (a kick)", client->id);
        hs_notifier__end_client(n, client, 4000, "disconnected by server");
        hs_free(reg);
        return;
    }
    if (status == 0) {
        const char **topics = hs_calloc(info->sub_count ? info->sub_count : 1, sizeof(*topics));
        for (size_t i = 0; i < info->sub_count; i++)
            topics[i] = info->subs[i].topic;
        hs_notifier__sync_topics(n, client, topics, info->sub_count);
        hs_free(topics);
    }
    hs_notifier__start_resume(n, client, &reg->ask);
    hs_free(reg);
}

/* ?resume=, and the last id from ?lastID= or Last-Event-ID (SSE). */
void hs_notifier__read_resume_ask(hs_http_request_t *req, resume_ask_t *ask)
{
    memset(ask, 0, sizeof(*ask));
    const char *token = hs_http_query(req, "resume");
    if (token && token[0]) {
        ask->asked = true;
        snprintf(ask->token, sizeof(ask->token), "%s", token);
    }
    size_t len = 0;
    const char *last = hs_http_query(req, "lastID");
    if (last)
        len = strlen(last);
    else
        last = hs_http_header(req, "last-event-id", &len);
    if (last && hs_ulid_canonical(last, len, ask->last_id) == 0)
        ask->has_last_id = true;
}

static bool same_user(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* A resume (?resume=<token>) of a connection not attached on this node. The
 * store is the one truth of who owns a connection: the request waits (a
 * late upgrade) while the store says whether the connection is detached,
 * whose user it is and at which epoch, and while the resume claims it at
 * that epoch - a compare-and-set, so of two resumes at once (on this node
 * or two) one wins and the other gets a new connection. This node's own
 * detached copy is used only when no other attach took the connection
 * since (same epoch): a copy left behind by a move to another notifier
 * is stale (its subscriptions may have changed there) and is rebuilt from
 * the rows. */
typedef struct takeover {
    hs_notifier_t *notifier;
    hs_http_request_t *req;
    transport_accept_fn accept; /* the transport asked for */
    resume_ask_t ask;
    hs_token_claims_t claims;
    ip_entry_t *ip_entry;
    char id[HS_ULID_LEN + 1];
    uint64_t epoch;       /* the detached row's, claimed from */
    uint64_t detached_ms; /* the row's detached_at */
    uint64_t connected_ms;
    char last_ack[HS_ULID_LEN + 1];
    char **topics;
    size_t topic_count;
} takeover_t;

static void takeover_free(takeover_t *t)
{
    for (size_t i = 0; i < t->topic_count; i++)
        hs_free(t->topics[i]);
    hs_free(t->topics);
    hs_free(t);
}

/* The client of a won claim: this node's copy when it is current, else one
 * built from the rows read; either way its subscriptions are those of the
 * rows (a copy detached by a stream gap may have missed commands). At the
 * new epoch, holding live messages until its replay; the caller attaches
 * the transport (or detaches it again) at once. */
static client_t *adopt(hs_notifier_t *n, takeover_t *t)
{
    client_t *client = hs_notifier__find_client(n, t->id);
    if (client && !hs_notifier__client_attached(client) && client->epoch == t->epoch) {
        hs_notifier__stop_client_timer(&client->window);
        hs_notifier__sync_topics(n, client, (const char *const *)t->topics, t->topic_count);
    } else {
        if (client) {
            /* Another attach (here or elsewhere) had it since this copy was
             * made: the copy goes, the rows are the claim's now. */
            hs_log_info("notifier: conn %s: this node's copy is stale (epoch %llu, the store "
                        "has %llu); rebuilt from the store",
                        client->id, (unsigned long long)client->epoch,
                        (unsigned long long)t->epoch);
            /* attached: cannot be, the row was detached */
            hs_notifier__client_drop_transport(client, 1001, "resumed elsewhere");
            hs_notifier__free_client(n, client);
        }
        client = hs_notifier__client_new(n, t->id, t->connected_ms);
        client->has_ack = t->last_ack[0] &&
                          hs_ulid_parse(t->last_ack, strlen(t->last_ack), &client->last_ack) == 0;
        hs_notifier__sync_topics(n, client, (const char *const *)t->topics, t->topic_count);
    }
    client->epoch = t->epoch + 1;
    client->detached_ms = t->detached_ms;
    client->replaying = true; /* hold live messages from now on */
    return client;
}

/* Ends the wait: the connection claimed (taken), or a new one. */
static void takeover_finish(takeover_t *t, bool taken)
{
    hs_notifier_t *n = t->notifier;
    if (n->shutting_down) {
        hs_http_respond_error(t->req, 503, "unavailable", "server is shutting down");
        if (taken) /* give the claim back: another node may resume it */
            hs_notifier__conn_write(n, CW_RELEASE, t->id, t->epoch + 1, t->detached_ms);
        goto out;
    }
    transport_t *transport = t->accept(n, t->req);
    if (transport == NULL) {
        if (taken) /* the client went away meanwhile: it stays resumable */
            hs_notifier__detach(n, adopt(n, t), 0, NULL);
        goto out;
    }
    if (!taken) {
        hs_notifier__open_client(n, t->ask.asked, transport, &t->claims, t->ip_entry);
        takeover_free(t);
        return;
    }
    client_t *client = adopt(n, t);
    hs_notifier__attach(n, client, transport, &t->claims, t->ip_entry);
    hs_metrics_singleton.resumes++;
    hs_log_info("notifier: conn %s resumed from %s (%u topics, epoch %llu)", client->id,
                transport->ops->peer(transport), client->sub_count,
                (unsigned long long)client->epoch);
    hs_notifier__register_client(n, client, true, &t->ask);
    takeover_free(t);
    return;
out:
    hs_token_claims_dispose(&t->claims);
    takeover_free(t);
}

static void claimed_cb(int status, void *data)
{
    takeover_t *t = data;
    if (status != 0 && status != HS_ENOTFOUND)
        hs_log_error("notifier: conn %s: claiming it failed: %s", t->id, hs_strerror(status));
    else if (status == HS_ENOTFOUND)
        hs_log_info("notifier: conn %s: another resume claimed it first", t->id);
    takeover_finish(t, status == 0);
}

static void stored_connection_cb(int status, const hs_connection_info_t *info, void *data)
{
    takeover_t *t = data;
    hs_notifier_t *n = t->notifier;
    if (status != 0 || info->attached || !same_user(info->user, t->claims.sub)) {
        /* Gone, attached somewhere, another user's, or the store cannot
         * say: a new connection. */
        takeover_finish(t, false);
        return;
    }
    t->epoch = info->epoch;
    t->detached_ms = info->detached_ms;
    t->connected_ms = info->connected_ms;
    if (info->last_ack)
        snprintf(t->last_ack, sizeof(t->last_ack), "%s", info->last_ack);
    t->topics = hs_calloc(info->sub_count ? info->sub_count : 1, sizeof(*t->topics));
    for (size_t i = 0; i < info->sub_count; i++)
        t->topics[t->topic_count++] = hs_strdup(info->subs[i].topic);
    hs_store_claim_connection(n->store, t->id, n->node_id, t->ip_entry ? t->ip_entry->ip : NULL,
                              t->epoch, claimed_cb, t);
}

/* Starts a resume when ask holds a valid token of a connection that is not
 * attached on this node. Returns true when it did (the request is answered
 * later). */
bool hs_notifier__start_takeover(hs_notifier_t *n, hs_http_request_t *req,
                                 transport_accept_fn accept, const resume_ask_t *ask,
                                 hs_token_claims_t *claims, ip_entry_t *ip_entry)
{
    char id[HS_ULID_LEN + 1];
    if (n->cfg->resume_window_ms == 0 ||
        hs_resume_token_check(n->resume_secret, n->resume_secret_len, ask->token,
                              strlen(ask->token), hs_now_ms(), id) != 0)
        return false;
    client_t *local = hs_notifier__find_client(n, id);
    if (local && hs_notifier__client_attached(local))
        return false; /* attached here: a new connection */
    takeover_t *t = hs_calloc(1, sizeof(*t));
    t->notifier = n;
    t->req = req;
    t->accept = accept;
    t->ask = *ask;
    t->claims = *claims;
    t->ip_entry = ip_entry;
    memcpy(t->id, id, sizeof(t->id));
    hs_store_get_connection(n->store, id, stored_connection_cb, t);
    return true;
}
