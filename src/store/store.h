/* store.h - durable storage of messages, subscriptions and connections.
 *
 * The roles see only this interface; back-ends (sqlite.c, mariadb.c)
 * supply the SQL (engine.h). Every operation is asynchronous: it is queued,
 * runs off the event loop (a writer thread that commits queued writes in
 * batches, one transaction per batch; reads on their own connection), and its
 * callback runs later on the loop thread that issued it - never inside the
 * call that started it. Callbacks of writes run in the order the writes were
 * issued. A write's callback with status 0 means the data is committed.
 *
 * Data passed to a callback (messages, subscriptions) lives only during the
 * callback. Data passed in is copied before the call returns.
 *
 * The callback of a write (put_message, add/remove_subscription,
 * add/remove_connection, remove_node) may be NULL: the write still happens.
 * Reads need one. Operations issued after close complete with HS_ECLOSED,
 * through the same queue (still not inside the call).
 *
 * Status codes: 0, HS_ENOTFOUND, HS_EEXIST (see each op), HS_EIO (storage
 * failure; nothing of that operation was written), HS_ECLOSED (store
 * closing).
 */
#ifndef HS_STORE_STORE_H
#define HS_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/ulid.h"

typedef struct hs_message {
    char id[HS_ULID_LEN + 1];
    const char *topic;
    const char *content;
    size_t content_len;
    const char *author;
    uint64_t created_ms; /* the id's timestamp */
    /* put_message(_once) of a new message only: the topic's id before this
     * one ("" for its first), read under the topic's sequence in the same
     * transaction - the link live delivery checks its order by
     * (docs/scaling.md, "Live order"). "" in every other result. */
    char prev[HS_ULID_LEN + 1];
} hs_message_t;

typedef struct hs_subscription {
    char connection_id[HS_ULID_LEN + 1];
    const char *topic;
    uint64_t created_ms;
} hs_subscription_t;

/* A connection row with its subscriptions (get_connection). */
typedef struct hs_connection_info {
    const char *id;
    const char *node;
    const char *user; /* the token's "sub", or NULL */
    uint64_t connected_ms;
    const char *last_ack; /* the highest acknowledged message id, or NULL */
    uint64_t epoch;       /* bumped by every claim (a resume): which attach owns it */
    bool attached;        /* false while detached (resumable); see claim_connection */
    const char *address;  /* the client's address at its last attach, or NULL */
    uint64_t detached_ms; /* when its last attach dropped (wall clock), 0 if never */
    const hs_subscription_t *subs;
    size_t sub_count;
} hs_connection_info_t;

/* Opaque: engine.c holds its threads, queues and back-end. */
typedef struct hs_store hs_store_t;

typedef void (*hs_store_done_cb)(int status, void *data);
/* status 0 and msg, or HS_ENOTFOUND and NULL, or an error. */
typedef void (*hs_store_message_cb)(int status, const hs_message_t *msg, void *data);
typedef void (*hs_store_messages_cb)(int status, const hs_message_t *msgs, size_t count,
                                     void *data);
typedef void (*hs_store_subscriptions_cb)(int status, const hs_subscription_t *subs, size_t count,
                                          void *data);
/* status 0 when created, HS_EEXIST when it already existed (not an error);
 * created_ms is the stored creation time either way. */
typedef void (*hs_store_subscribe_cb)(int status, uint64_t created_ms, void *data);
/* status 0 and info, or HS_ENOTFOUND and NULL, or an error. */
typedef void (*hs_store_connection_cb)(int status, const hs_connection_info_t *info, void *data);
/* count of rows removed. */
typedef void (*hs_store_count_cb)(int status, size_t count, void *data);

/* An idempotency key (Idempotency-Key) stored with a message in the same
 * transaction (put_message_once). */
typedef struct hs_idempotency {
    const char *key;        /* 1..128 printable ASCII characters */
    const char *body_hash;  /* hex SHA-256 of the canonical fields, 64 chars */
    uint64_t not_before_ms; /* a stored key created before this has expired:
                               the publish counts as new and takes the key over */
} hs_idempotency_t;

/* A history query. */
typedef struct hs_history_query {
    const char *topic;
    bool has_cursor;  /* false: start from the oldest (forward) or newest */
    hs_ulid_t cursor; /* exclusive */
    bool forward;     /* true: ids > cursor ascending; false: < cursor descending */
    unsigned limit;   /* at most this many rows are returned; the result is
                         allocated for limit rows, so callers bound it */
    size_t max_bytes; /* 0, or no row is read after the rows read hold this
                         many bytes of content */
} hs_history_query_t;

/* A topic as GET /api/v1/topics/{topic} shows it (get_topic, list_topics).
 * Strings live during the callback only. */
typedef struct hs_topic_info {
    const char *topic;
    uint64_t messages;    /* in its history now (exact: counted in the read) */
    const char *first_id; /* its oldest and newest message, NULL without any */
    const char *last_id;
    uint64_t subscribers;  /* subscription rows of the topic (connections) */
    bool has_age;          /* the topic sets its own retention age (else the default) */
    uint64_t age_ms;       /* its own, when has_age; 0: kept forever */
    bool has_count;        /* the topic sets its own retention count */
    uint64_t count;        /* its own, when has_count; 0: unlimited */
    const char *pruned_id; /* the highest id pruned from it (the horizon), or NULL */
} hs_topic_info_t;

/* status 0 and the topic, or HS_ENOTFOUND and NULL (no messages, no
 * subscribers and no settings of its own), or an error. */
typedef void (*hs_store_topic_cb)(int status, const hs_topic_info_t *topic, void *data);
typedef void (*hs_store_topics_cb)(int status, const hs_topic_info_t *topics, size_t count,
                                   void *data);
/* A history page and whether the walk reached into pruned history: true
 * when a message the page would hold, or that lies between the cursor and
 * the page, was pruned (a forward walk whose cursor is below the topic's
 * prune horizon; a backward walk that ran out of rows above it). */
typedef void (*hs_store_history_cb)(int status, const hs_message_t *msgs, size_t count, bool pruned,
                                    void *data);

/* One retention field of a PUT /api/v1/topics/{topic}. */
typedef enum hs_topic_change {
    HS_TOPIC_KEEP = 0, /* not given: unchanged */
    HS_TOPIC_SET,      /* the topic's own value */
    HS_TOPIC_DEFAULT,  /* null: back to the process's default */
} hs_topic_change_t;

typedef struct hs_topic_settings {
    hs_topic_change_t age, count;
    uint64_t age_ms; /* with HS_TOPIC_SET */
    uint64_t count_value;
} hs_topic_settings_t;

/* The operations. One implementation (engine.c) runs them all; the
 * back-ends differ only in SQL, behind engine.h's hs_store_backend_t, the
 * store's one table of function pointers. There is no second table here
 * because nothing implements the store another way (the tests of the roles
 * use a real SQLite file, which costs milliseconds): a test double would
 * bring it back. */
/* Stores a message. Its id is minted by the store inside the transaction,
 * under the topic's sequence (docs/scaling.md, "Message ids"): msg->id is
 * only a candidate (the caller's clock; MariaDB ignores it and mints from
 * its own clock, NOW(3)), and the stored id is
 * max(candidate, the topic's last id + a random step), so the ids of a topic increase in
 * commit order across every process and clock. cb gets 0 and the message
 * as stored (its id and created_ms are the minted ones), or an error and
 * NULL. */
void hs_store_put_message(hs_store_t *store, const hs_message_t *msg, hs_store_message_cb cb,
                          void *data);
void hs_store_get_message(hs_store_t *store, const char *id, hs_store_message_cb cb, void *data);
/* put_message guarded by an idempotency key, both rows in one
 * transaction (the id is minted as in put_message). cb gets 0 and the new
 * message (stored, with its minted id); HS_EEXIST and
 * the original message (the key is known with the same body_hash:
 * nothing written); HS_EINVAL and NULL (the key is known with another
 * body_hash: nothing written); or an error. Keys are unique across
 * every process sharing the database (a unique index): of concurrent
 * publishes with one key exactly one stores a message. */
void hs_store_put_message_once(hs_store_t *store, const hs_message_t *msg,
                               const hs_idempotency_t *idem, hs_store_message_cb cb, void *data);
/* A batch publish: count messages stored in one transaction, all or none,
 * their ids minted in order as put_message mints one (so a topic's messages
 * of the batch follow each other in batch order, each one's prev the one
 * before). idem may be NULL; with it, the key covers the batch as
 * put_message_once's covers a message (body_hash: the whole batch's). cb
 * gets 0 and the messages as stored, in order; HS_EEXIST and the original
 * batch's messages (the key is known with the same body_hash: nothing
 * written; a message deleted since is missing from the list); HS_EINVAL
 * and none (the key is known with another body_hash); or an error and none
 * (nothing written). count is at least 1. */
void hs_store_put_messages(hs_store_t *store, const hs_message_t *msgs, size_t count,
                           const hs_idempotency_t *idem, hs_store_messages_cb cb, void *data);
/* Removes the idempotency keys created before before_ms; count is the
 * keys removed. The writer also does it by itself once a minute when
 * the store was opened with an idempotency_window_ms. */
void hs_store_purge_idempotency_keys(hs_store_t *store, uint64_t before_ms, hs_store_count_cb cb,
                                     void *data);
void hs_store_list_messages(hs_store_t *store, const hs_history_query_t *query,
                            hs_store_messages_cb cb, void *data);
/* list_messages that also says whether the page reached into pruned
 * history (hs_store_history_cb); one more primary-key read. */
void hs_store_read_history(hs_store_t *store, const hs_history_query_t *query,
                           hs_store_history_cb cb, void *data);
/* The topic's counts and settings (reader; the counts are exact as of the
 * read: one index range count over the topic's messages). */
void hs_store_get_topic(hs_store_t *store, const char *topic, hs_store_topic_cb cb, void *data);
/* Topics in name order: those with messages, subscribers or settings of
 * their own, named prefix* (prefix may be NULL) and after after (exclusive;
 * may be NULL), at most limit of them. */
void hs_store_list_topics(hs_store_t *store, const char *prefix, const char *after, unsigned limit,
                          hs_store_topics_cb cb, void *data);
/* Stores the topic's own retention settings (a write; a topic whose own
 * settings all go back to the default keeps its row for its prune horizon). */
void hs_store_set_topic(hs_store_t *store, const char *topic, const hs_topic_settings_t *settings,
                        hs_store_done_cb cb, void *data);
void hs_store_add_subscription(hs_store_t *store, const char *connection_id, const char *topic,
                               uint64_t now_ms, hs_store_subscribe_cb cb, void *data);
/* Deletion (DELETE /api/v1/messages/{id}, /api/v1/topics/{topic}). What a
 * topic's deletion removed. */
typedef struct hs_topic_deletion {
    uint64_t messages;      /* history rows */
    uint64_t subscriptions; /* subscription rows */
    bool settings;          /* it had retention settings of its own */
    const char *last_id;    /* its newest message when the deletion began, or NULL */
} hs_topic_deletion_t;
/* status 0 and what was removed, HS_ENOTFOUND (nothing to remove: no
 * messages, no subscribers, no settings of its own) or an error. */
typedef void (*hs_store_deleted_cb)(int status, const hs_topic_deletion_t *removed, void *data);
/* Removes message id of topic (a write): HS_ENOTFOUND when topic has no
 * such message. The topic's sequence is kept: later ids stay above it. */
void hs_store_delete_message(hs_store_t *store, const char *topic, const char *id,
                             hs_store_done_cb cb, void *data);
/* Removes a topic: its subscriptions and settings in the first write, then
 * its messages up to its last id at that moment in writes of at most
 * HS_DELETE_BATCH rows each, so the writer commits other writes between
 * them (messages published after the first write are kept). The topic's
 * horizon moves to that last id (a cursor below it reads "pruned"); its
 * sequence is kept. cb runs once the last step committed. */
void hs_store_delete_topic(hs_store_t *store, const char *topic, hs_store_deleted_cb cb,
                           void *data);
/* topic NULL removes every subscription of the connection. */
void hs_store_remove_subscription(hs_store_t *store, const char *connection_id, const char *topic,
                                  hs_store_count_cb cb, void *data);
/* connection_id and/or topic (at least one) filter the list; ordered by
 * creation time. */
void hs_store_list_subscriptions(hs_store_t *store, const char *connection_id, const char *topic,
                                 hs_store_subscriptions_cb cb, void *data);
/* user (the token's "sub") and address (the client's) may be NULL. */
void hs_store_add_connection(hs_store_t *store, const char *connection_id, const char *node,
                             const char *user, const char *address, uint64_t now_ms,
                             hs_store_done_cb cb, void *data);
/* The connection row and its subscriptions. Runs in order with the
 * writes (on the writer), so it sees every write issued before it. */
void hs_store_get_connection(hs_store_t *store, const char *connection_id,
                             hs_store_connection_cb cb, void *data);
/* Removes the connection row and all its subscriptions, atomically. */
void hs_store_remove_connection(hs_store_t *store, const char *connection_id, hs_store_done_cb cb,
                                void *data);
/* Records the highest message id the connection acknowledged (a write;
 * a missing row is not an error). */
void hs_store_set_last_ack(hs_store_t *store, const char *connection_id, const char *message_id,
                           hs_store_done_cb cb, void *data);
/* A resume: moves the detached connection row to node, marks it
 * attached and bumps its epoch to epoch + 1 - only while it is still
 * detached at epoch (a compare-and-set: of two resumes of one connection
 * at once, on one node or two, exactly one wins). HS_ENOTFOUND when
 * there is no such row (gone, attached, or taken by another resume). */
void hs_store_claim_connection(hs_store_t *store, const char *connection_id, const char *node,
                               const char *address, uint64_t epoch, hs_store_done_cb cb,
                               void *data);
/* The transport of the attach at epoch dropped at detached_ms (wall
 * clock): the row is marked detached (resumable) since then.
 * HS_ENOTFOUND when the row is gone or another attach owns it (a later
 * epoch). */
void hs_store_release_connection(hs_store_t *store, const char *connection_id, uint64_t epoch,
                                 uint64_t detached_ms, hs_store_done_cb cb, void *data);
/* Like remove_connection, but only while the row is detached at epoch
 * (the end of a resume window must not remove what a resume took over,
 * here or on another node); HS_ENOTFOUND when it is not. Subscriptions
 * of the connection without any connection row (an API subscribe that
 * raced its removal) are removed either way. */
void hs_store_expire_connection(hs_store_t *store, const char *connection_id, uint64_t epoch,
                                hs_store_done_cb cb, void *data);
/* Removes every connection of node and their subscriptions (start-up of a
 * node, or a dead node); count is the connections removed. */
void hs_store_remove_node(hs_store_t *store, const char *node, hs_store_count_cb cb, void *data);
/* The connections of user (a token's "sub"), each with its
 * subscriptions when with_topics: those with ids after after (NULL or "":
 * from the first), at most limit (1..1001), in id order. Runs on the
 * writer, in order with the writes (as get_connection). */
typedef void (*hs_store_connections_cb)(int status, const hs_connection_info_t *conns, size_t count,
                                        void *data);
void hs_store_list_user_connections(hs_store_t *store, const char *user, const char *after,
                                    unsigned limit, bool with_topics, hs_store_connections_cb cb,
                                    void *data);
/* Finishes queued work (callbacks still run), then closes; cb runs last.
 * The store is freed after cb returns. */
void hs_store_close(hs_store_t *store, hs_store_done_cb cb, void *data);

typedef struct hs_store_options {
    unsigned batch_max;             /* most writes in one transaction (default 512) */
    uint64_t connect_wait_ms;       /* MariaDB: wait this long at open for the server */
    uint64_t idempotency_window_ms; /* the writer purges older keys once a minute
                                       (0: never by itself) */
    /* Retention (docs/limits.md, "Retention"): with prune set, the writer
     * prunes in the background what the defaults below or a topic's own
     * settings no longer keep. */
    bool prune;
    uint64_t retention_age_ms; /* 0: forever */
    uint64_t retention_count;  /* newest N per topic; 0: unlimited */
} hs_store_options_t;

/* Opens the back-end named by url ("sqlite:PATH" or "mysql://user:pass@host:port/db";
 * "mariadb://" is the same).
 * Creates or migrates the schema (versioned, idempotent) before returning.
 * Blocking: call at start-up, before the loop runs. Returns 0 or an error
 * and writes a reason into err. */
int hs_store_open(uv_loop_t *loop, const char *url, const hs_store_options_t *options,
                  hs_store_t **out, char *err, size_t err_len);

#endif
