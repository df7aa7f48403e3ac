/* notifier_replay.c - what a resumed client is sent: the replay of the
 * history it missed, merged with the live messages held meanwhile, streamed
 * part by part; and the ids it has already (has_already).
 */
#include <stdlib.h>
#include <string.h>

#include "roles/notifier_internal.h"

/* Drops what a resume keeps: the live messages held during its replay, and
 * the ids its replay sent. */
void hs_notifier__drop_held(client_t *c)
{
    if (c->held) {
        held_t *h = c->held->head;
        while (h) {
            held_t *next = h->next;
            hs_free(h);
            h = next;
        }
        hs_free(c->held);
        c->held = NULL;
    }
    hs_free(c->replayed);
    c->replayed = NULL;
}

void hs_notifier__held_push(client_t *c, held_t *h)
{
    if (c->held == NULL) {
        c->held = hs_calloc(1, sizeof(*c->held));
        c->held->tail = &c->held->head;
    }
    h->next = NULL;
    c->held->bytes += h->len;
    *c->held->tail = h;
    c->held->tail = &h->next;
}

size_t hs_notifier__held_bytes(const client_t *c)
{
    return c->held ? c->held->bytes : 0;
}

/* Takes the first held message, or NULL. The queue stays allocated until
 * the replay ends. */
static held_t *held_pop(client_t *c)
{
    held_t *h = c->held ? c->held->head : NULL;
    if (h == NULL)
        return NULL;
    c->held->head = h->next;
    if (c->held->head == NULL)
        c->held->tail = &c->held->head;
    c->held->bytes -= h->len;
    return h;
}

static int id_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Whether the client has a message arriving live since its last resume: at
 * or below the cursor it gave, or sent by the replay (forgotten once
 * nothing of it can still be on its way). */
bool hs_notifier__has_already(client_t *c, const char *id)
{
    const replayed_t *r = c->replayed;
    if (r == NULL)
        return false;
    if (hs_now_ms() > r->until_ms) {
        hs_free(c->replayed);
        c->replayed = NULL;
        return false;
    }
    if (r->floor[0] && strcmp(id, r->floor) <= 0)
        return true;
    return r->count && bsearch(id, r->ids, r->count, sizeof(r->ids[0]), id_cmp) != NULL;
}

/* Holds a live message during a replay. Past --max-pending of them the
 * held ones are dropped: the replay then ends by closing the transport so
 * that the client resumes again (the history has them). */
void hs_notifier__hold(client_t *c, const char *id, const char *json, size_t len)
{
    size_t max = (size_t)c->notifier->cfg->max_pending;
    if (c->held_overflow)
        return;
    if (max > 0 && hs_notifier__held_bytes(c) + len > max) {
        hs_notifier__drop_held(c);
        c->held_overflow = true;
        return;
    }
    held_t *h = hs_malloc(sizeof(*h) + len + 1);
    snprintf(h->id, sizeof(h->id), "%s", id ? id : "");
    h->deleted = false;
    h->len = len;
    memcpy(h->json, json, len);
    h->json[len] = '\0';
    hs_notifier__held_push(c, h);
}

static void replay_free(struct replay *r);

/* Drops the rest of a replay being streamed (the client detached or goes). */
void hs_notifier__drop_stream(client_t *client)
{
    if (client->stream) {
        replay_free(client->stream);
        client->stream = NULL;
    }
}

/* ---- replay ------------------------------------------------------------ */

/* The replay of one resume: a history query per topic, merged by id. */
typedef struct replay {
    client_ref_t ref;
    char after[HS_ULID_LEN + 1];
    unsigned limit;   /* rows asked of each topic */
    size_t max_bytes; /* bytes of content read of each topic at most */
    size_t pending;   /* queries still running */
    bool failed;
    bool pruned;                 /* a topic's replay reached into history retention removed */
    char bound[HS_ULID_LEN + 1]; /* "" or the lowest last id of a topic that had more */
    held_t **items;              /* sorted by id once every query is back */
    size_t count, cap;
    size_t sent; /* items[0, sent) are the replay */
    size_t pos;  /* of which items[0, pos) are queued */
} replay_t;

static int held_cmp(const void *a, const void *b)
{
    return strcmp((*(held_t *const *)a)->id, (*(held_t *const *)b)->id);
}

static int held_id_cmp(const void *key, const void *item)
{
    return strcmp(key, (*(held_t *const *)item)->id);
}

/* A message committed before the replay's history read but not yet handed
 * to this node by the bus arrives live after the replay, which already sent
 * it; and a message at or below the resume's cursor can be handed over
 * again, to this node, by a bus that took over a stopped consumer's events:
 * one the client had before it dropped (the cursor it gave), or one still
 * on its way when it dropped (the cursor is the detach, when it gave none:
 * sent after the replay, it would come after newer messages of its topic;
 * like a held one at or below the cursor, held_wanted, it is not sent). The client keeps the ids
 * its replay sent and its cursor for as long as such a message can be on its way (twice
 * --claim-idle, at least 10 s: a bus redelivers an unacknowledged event after --claim-idle; or
 * twice the take-over of a dead consumer's partitions, 4 heartbeats), and only the ids created
 * within that time (items is sorted by id, which is by creation time). */
static void remember_replayed(hs_notifier_t *n, client_t *client, const char *cursor,
                              held_t *const *items, size_t count)
{
    uint64_t horizon = 2 * n->cfg->claim_idle_ms, now = hs_now_ms();
    if (horizon < 8 * n->cfg->heartbeat_interval_ms)
        horizon = 8 * n->cfg->heartbeat_interval_ms;
    if (horizon < 10000)
        horizon = 10000;
    size_t first = 0;
    hs_ulid_t id;
    while (first < count && hs_ulid_parse(items[first]->id, HS_ULID_LEN, &id) == 0 &&
           hs_ulid_time_ms(&id) + horizon < now)
        first++;
    hs_free(client->replayed);
    client->replayed = NULL;
    if (first == count && (cursor == NULL || cursor[0] == '\0'))
        return; /* nothing to remember */
    replayed_t *r = hs_malloc(sizeof(*r) + (count - first) * sizeof(r->ids[0]));
    snprintf(r->floor, sizeof(r->floor), "%s", cursor ? cursor : "");
    r->count = count - first;
    for (size_t i = first; i < count; i++)
        memcpy(r->ids[i - first], items[i]->id, HS_ULID_LEN + 1);
    r->until_ms = now + horizon;
    client->replayed = r;
}

static void send_held(client_t *c, const held_t *h)
{
    transport_msg_t msg = {.id = h->id, .json = h->json, .json_len = h->len};
    hs_notifier__client_send_message(c, &msg);
    hs_notifier__transport_msg_dispose(&msg);
}

static void replay_free(replay_t *r)
{
    for (size_t i = 0; i < r->count; i++)
        hs_free(r->items[i]);
    hs_free(r->items);
    hs_free(r);
}

/* Whether a live message held during the resume is one the client lacks:
 * not at or below its cursor, not sent by the replay. This is decided per
 * message, not by comparing with the last replayed id: the topics' queries
 * read at different moments, so a live message of one topic may have an id
 * below the last replayed message of another and be in neither. */
static bool held_wanted(const replay_t *r, const held_t *h)
{
    if (r->after[0] && strcmp(h->id, r->after) <= 0)
        return false;
    return r->sent == 0 ||
           bsearch(h->id, r->items, r->sent, sizeof(*r->items), held_id_cmp) == NULL;
}

/* Sends the next part of a resume: frames of up to a quarter of
 * --max-pending (at least one), first from the replay, then from the live
 * messages held since the attach (which go on arriving, held, until the
 * holding ends). The next part goes when the transport has written this one
 * (client_drained), so a resume of any size is streamed as fast as the
 * client reads and the queue never holds more than a part - bounded, with
 * room for pings. When nothing is left the client is live. Live messages
 * past --max-pending while it holds them: the client is asked to resume
 * again from where it got. */
static void stream_replay(hs_notifier_t *n, client_t *client)
{
    replay_t *r = client->stream;
    size_t budget = (size_t)n->cfg->max_pending, part = budget ? budget / 4 : SIZE_MAX;
    size_t bytes = 0;
    client->unbounded = true; /* bounded here, by the part */
    while (!client->held_overflow && r->pos < r->sent &&
           (bytes == 0 || bytes + r->items[r->pos]->len <= part)) {
        bytes += r->items[r->pos]->len;
        send_held(client, r->items[r->pos++]);
    }
    while (!client->held_overflow && r->pos == r->sent && client->held && client->held->head &&
           (bytes == 0 || bytes + client->held->head->len <= part)) {
        held_t *h = held_pop(client);
        if (h->deleted) { /* after whatever of its message went before it */
            bytes += h->len;
            hs_notifier__client_send_text(client, "deleted", h->json, h->len);
        } else if (held_wanted(r, h)) {
            bytes += h->len;
            send_held(client, h);
        }
        hs_free(h);
    }
    client->unbounded = false;
    if (!client->held_overflow &&
        (bytes > 0 || r->pos < r->sent || (client->held && client->held->head)))
        return; /* the rest, or the end, once this part is written */
    client->stream = NULL;
    client->replaying = false;
    hs_notifier__drop_held(client);
    if (client->held_overflow) {
        client->held_overflow = false;
        hs_log_info("notifier: conn %s: too many live messages during its resume; asking it to "
                    "resume again",
                    client->id);
        replay_free(r);
        hs_notifier__ask_to_resume(n, client, "resume again");
        return;
    }
    remember_replayed(n, client, r->after, r->items, r->sent);
    replay_free(r);
}

/* The transport wrote everything queued: the next part of a replay. */
void hs_notifier__client_drained(client_t *client)
{
    if (client && client->stream && hs_notifier__client_attached(client))
        stream_replay(client->notifier, client);
}

/* Every topic's query is back: sends "connected", then the replay (part by
 * part), then what was held. What is replayed is a prefix of the merged ids
 * that is known complete: not past the last id read of a topic that had
 * more rows than asked (bound), at most --resume-max-replay messages; what
 * is cut is said with truncated/next. */
static void finish_replay(replay_t *r)
{
    hs_notifier_t *n = r->ref.notifier;
    bool same;
    client_t *client = hs_notifier__ref_client(&r->ref, &same);
    if (client == NULL || !same) {
        replay_free(r); /* gone, or dropped again: a later resume replays anew */
        return;
    }
    if (r->count > 1)
        qsort(r->items, r->count, sizeof(*r->items), held_cmp);
    size_t max = (size_t)n->cfg->resume_max_replay;
    while (r->sent < r->count && r->sent < max &&
           (r->bound[0] == '\0' || strcmp(r->items[r->sent]->id, r->bound) <= 0))
        r->sent++;
    bool truncated = r->sent < r->count || r->bound[0] != '\0';
    const char *next = truncated ? (r->sent ? r->items[r->sent - 1]->id : r->after) : NULL;
    hs_notifier__send_connected(n, client, true, true, r->sent, next, r->pruned);
    if (r->failed)
        hs_notifier__client_error(client, "internal",
                                  "the replay failed; page the history from lastID");
    hs_log_info("notifier: conn %s resumed after %s: %zu to replay%s", client->id, r->after,
                r->sent, next ? " (truncated)" : "");
    client->stream = r;
    stream_replay(n, client);
}

static void replay_part_cb(int status, const hs_message_t *msgs, size_t count, bool pruned,
                           void *data)
{
    replay_t *r = data;
    r->pruned |= pruned;
    if (status != 0) {
        hs_log_error("notifier: conn %s: a replay query failed: %s", r->ref.id,
                     hs_strerror(status));
        r->failed = true;
    }
    for (size_t i = 0; i < count; i++) {
        size_t len;
        char *text = hs_render_message_text(&msgs[i], &len);
        held_t *h = hs_malloc(sizeof(*h) + len + 1);
        h->next = NULL;
        memcpy(h->id, msgs[i].id, sizeof(h->id));
        h->deleted = false;
        h->len = len;
        memcpy(h->json, text, len + 1);
        hs_free(text);
        if (r->count == r->cap) {
            r->cap = r->cap ? 2 * r->cap : 64;
            r->items = hs_realloc(r->items, r->cap * sizeof(*r->items));
        }
        r->items[r->count++] = h;
    }
    /* A topic that may have more rows than read (the row or byte bound
     * stopped the read): nothing past its last row read is known to be
     * complete. */
    size_t bytes = 0;
    for (size_t i = 0; i < count; i++)
        bytes += msgs[i].content_len;
    bool more = count >= r->limit || (r->max_bytes && bytes >= r->max_bytes);
    if (count > 0 && more && (r->bound[0] == '\0' || strcmp(msgs[count - 1].id, r->bound) < 0))
        memcpy(r->bound, msgs[count - 1].id, sizeof(r->bound));
    if (--r->pending == 0)
        finish_replay(r);
}

/* The lowest id of a millisecond, as text: every id created from ms on is
 * above it but the one with all-zero randomness. */
static const char *ulid_at(uint64_t ms, char out[HS_ULID_LEN + 1])
{
    hs_ulid_t id = {{0}};
    for (int i = 5; i >= 0; i--, ms >>= 8)
        id.bytes[i] = (uint8_t)(ms & 0xff);
    hs_ulid_format(&id, out);
    return out;
}

/* A resumed client is attached and registered: replays what it missed after
 * last_id (or its last ack), holding live messages meanwhile, then says
 * connected. Without a cursor nothing is replayed, but what arrived live
 * since the attach is sent. */
void hs_notifier__start_resume(hs_notifier_t *n, client_t *client, const resume_ask_t *ask)
{
    /* The cursor: the client's lastID, else its last ack, else the moment
     * its connection was detached - it was sent nothing since, so whatever
     * was created from then on is what it lacks. */
    char since[HS_ULID_LEN + 1], ack[HS_ULID_LEN + 1];
    if (client->has_ack)
        hs_ulid_format(&client->last_ack, ack);
    const char *after = ask->has_last_id      ? ask->last_id
                        : client->has_ack     ? ack
                        : client->detached_ms ? ulid_at(client->detached_ms, since)
                                              : NULL;
    hs_ulid_t cursor;
    replay_t *r = hs_calloc(1, sizeof(*r));
    hs_notifier__client_ref_init(&r->ref, client);
    client->replaying = true;
    bool parsed = after && hs_ulid_parse(after, strlen(after), &cursor) == 0;
    if (parsed) {
        /* Kept even when nothing is replayed (no topics yet): a message at
         * or below the client's cursor that a bus hands over again after a
         * subscribe is one it has (has_already). */
        snprintf(r->after, sizeof(r->after), "%s", after);
    }
    if (!parsed || client->sub_count == 0) {
        /* Nothing to replay; what arrived since the attach is sent. */
        hs_notifier__send_connected(n, client, true, true, 0, NULL, false);
        client->stream = r;
        stream_replay(n, client);
        return;
    }
    r->limit = (unsigned)n->cfg->resume_max_replay + 1;
    /* The replay's working memory: --resume-max-bytes over all its topics
     * (each reads at least one row). */
    r->max_bytes = (size_t)n->cfg->resume_max_bytes / client->sub_count;
    if (r->max_bytes == 0)
        r->max_bytes = 1;
    r->pending = client->sub_count;
    for (sub_t *s = client->subs; s; s = s->client_next) {
        hs_history_query_t q = {.topic = s->topic->name,
                                .has_cursor = true,
                                .cursor = cursor,
                                .forward = true,
                                .limit = r->limit,
                                .max_bytes = r->max_bytes};
        hs_store_read_history(n->store, &q, replay_part_cb, r);
    }
}
