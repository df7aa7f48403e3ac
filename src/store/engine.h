/* engine.h - what every store back-end shares (private to src/store).
 *
 * The engine owns the threads and the queues: a writer thread that takes
 * every queued write (up to batch_max) and runs them in one transaction, each
 * inside a savepoint so a failing write leaves nothing while the others
 * commit; a reader thread for queries; a completion queue drained on the
 * loop through a uv_async, so callbacks run on the loop, never inside the
 * call that issued them, and writes complete in issue order.
 *
 * A back-end supplies one connection per thread (opened before the engine
 * starts, so open errors are reported synchronously) and the functions
 * below, which run on that connection's thread only.
 */
#ifndef HS_STORE_ENGINE_H
#define HS_STORE_ENGINE_H

#include <stdbool.h>

#include "store/store.h"

typedef enum hs_store_op_kind {
    HS_OP_PUT_MESSAGE,
    HS_OP_PUT_MESSAGE_ONCE, /* PUT_MESSAGE's inputs plus key, key_hash, not_before_ms */
    HS_OP_PURGE_KEYS,       /* idempotency keys created before ms */
    HS_OP_ADD_SUBSCRIPTION,
    HS_OP_REMOVE_SUBSCRIPTION,
    HS_OP_ADD_CONNECTION,
    HS_OP_REMOVE_CONNECTION,
    HS_OP_REMOVE_NODE,
    HS_OP_SET_LAST_ACK,       /* a: connection, b: message id */
    HS_OP_CLAIM_CONNECTION,   /* a: connection, b: node, ms: epoch; HS_ENOTFOUND: not detached
                                 at that epoch */
    HS_OP_RELEASE_CONNECTION, /* a: connection, ms: epoch; HS_ENOTFOUND: not that attach's */
    HS_OP_EXPIRE_CONNECTION,  /* a: connection, ms: epoch; HS_ENOTFOUND: not detached at it */
    HS_OP_GET_CONNECTION,     /* on the writer: ordered with the writes */
    HS_OP_GET_MESSAGE,
    HS_OP_LIST_MESSAGES,
    HS_OP_LIST_SUBSCRIPTIONS,
    HS_OP_STOP, /* ends a worker thread */
} hs_store_op_kind_t;

/* One operation: inputs copied at submission, outputs filled by the
 * back-end (allocated with hs_malloc/hs_strdup; the engine frees them). */
typedef struct hs_store_op {
    struct hs_store_op *next;
    hs_store_op_kind_t kind;
    int status;
    union {
        hs_store_done_cb done;
        hs_store_message_cb message;
        hs_store_messages_cb messages;
        hs_store_subscriptions_cb subscriptions;
        hs_store_subscribe_cb subscribe;
        hs_store_count_cb count;
        hs_store_connection_cb connection;
    } cb;
    void *data;
    /* inputs */
    char *a;       /* message id / connection id / node (see the op) */
    char *b;       /* topic / node */
    char *content; /* PUT_MESSAGE: content, NUL, author, NUL; ADD_CONNECTION: user or NULL */
    size_t content_len;
    const char *author; /* points into content */
    uint64_t ms;
    hs_history_query_t query; /* LIST_MESSAGES; its topic is in a */
    char cursor[HS_ULID_LEN + 1];
    char *key;              /* PUT_MESSAGE_ONCE */
    char *address;          /* ADD_CONNECTION, CLAIM_CONNECTION: the client's, or NULL */
    uint64_t at_ms;         /* RELEASE_CONNECTION: when it was detached */
    char key_hash[64 + 1];  /* PUT_MESSAGE_ONCE */
    uint64_t not_before_ms; /* PUT_MESSAGE_ONCE */
    /* outputs */
    hs_message_t *msgs;
    hs_subscription_t *subs;
    size_t count;
    uint64_t created_ms;      /* ADD_SUBSCRIPTION; GET_CONNECTION: connected_at */
    char *out_node;           /* GET_CONNECTION */
    char *out_user;           /* GET_CONNECTION, NULL when none */
    char *out_ack;            /* GET_CONNECTION: last_ack, NULL when none */
    bool found;               /* GET_CONNECTION: the row exists */
    uint64_t out_epoch;       /* GET_CONNECTION */
    bool out_attached;        /* GET_CONNECTION */
    char *out_address;        /* GET_CONNECTION, NULL when none */
    uint64_t out_detached_ms; /* GET_CONNECTION */
} hs_store_op_t;

typedef struct hs_store_engine_ops {
    const char *name;
    /* Writer thread: a batch is begin, (savepoint, write, release)*, commit. */
    int (*begin)(void *conn);
    int (*commit)(void *conn);
    void (*rollback)(void *conn);
    void (*savepoint)(void *conn);
    /* Ends the op's savepoint, undoing it first when undo is true. */
    void (*release)(void *conn, bool undo);
    /* Returns the op's status: 0, HS_EEXIST, HS_ENOTFOUND, HS_EIO,
     * HS_EUNAVAIL (the server cannot be reached) or HS_EAGAIN (the database
     * aborted the whole transaction, e.g. a deadlock: the engine rolls back
     * and runs the batch again, a few times); PUT_MESSAGE_ONCE also
     * HS_EINVAL (key reused with another body), and fills msgs with the
     * stored or the original message. */
    int (*write)(void *conn, hs_store_op_t *op);
    /* Reader thread. */
    int (*read)(void *conn, hs_store_op_t *op);
    /* The last error on conn, for logs. */
    const char *(*error)(void *conn);
    /* Closes conn, on its thread, when the store closes. */
    void (*close)(void *conn);
} hs_store_engine_ops_t;

/* Starts the threads over the two connections. With idempotency_window_ms
 * the writer purges the keys older than that once a minute (first at start). */
hs_store_t *hs_store_engine_start(uv_loop_t *loop, const hs_store_engine_ops_t *ops,
                                  void *writer_conn, void *reader_conn, unsigned batch_max,
                                  uint64_t idempotency_window_ms);

/* Helpers for back-ends filling outputs. */
void hs_store_op_add_message(hs_store_op_t *op, size_t cap, const char *id, const char *topic,
                             const char *content, size_t content_len, const char *author,
                             uint64_t created_ms);
void hs_store_op_add_subscription(hs_store_op_t *op, const char *connection_id, const char *topic,
                                  uint64_t created_ms);

#endif
