/* engine.h - what every store back-end shares (private to src/store).
 *
 * The engine owns the threads and the queues: a writer thread that takes
 * every queued write (up to batch_max) and runs them in one transaction, each
 * inside a savepoint so a failing write leaves nothing while the others
 * commit (unless the back-end says the write is one statement, which the
 * database undoes by itself: write_is_atomic); a reader thread for queries; a completion queue
 * drained on the loop through a uv_async, so callbacks run on the loop, never inside the call that
 * issued them, and writes complete in issue order.
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
    HS_OP_PUT_MESSAGE,         /* in.put */
    HS_OP_PUT_MESSAGE_ONCE,    /* in.put, with its key fields */
    HS_OP_PUT_BATCH,           /* in.batch: several puts, all or none (batch.c) */
    HS_OP_PURGE_KEYS,          /* in.purge */
    HS_OP_ADD_SUBSCRIPTION,    /* in.subscription */
    HS_OP_REMOVE_SUBSCRIPTION, /* in.subscription (topic NULL: all of the connection) */
    HS_OP_ADD_CONNECTION,      /* in.add_connection */
    HS_OP_REMOVE_CONNECTION,   /* in.connection */
    HS_OP_REMOVE_NODE,         /* in.node */
    HS_OP_SET_LAST_ACK,        /* in.last_ack */
    HS_OP_CLAIM_CONNECTION,    /* in.claim; HS_ENOTFOUND: not detached at that epoch */
    HS_OP_RELEASE_CONNECTION,  /* in.release; HS_ENOTFOUND: not that attach's */
    HS_OP_EXPIRE_CONNECTION,   /* in.expire; HS_ENOTFOUND: not detached at that epoch */
    HS_OP_GET_CONNECTION,      /* in.connection; on the writer: ordered with the writes */
    HS_OP_GET_MESSAGE,         /* in.message */
    HS_OP_LIST_MESSAGES,       /* in.list */
    HS_OP_LIST_SUBSCRIPTIONS,  /* in.subscription (connection_id and/or topic NULL) */
    HS_OP_GET_TOPIC,           /* in.topic */
    HS_OP_LIST_TOPICS,         /* in.topics */
    HS_OP_SET_TOPIC,           /* in.topic with its settings */
    HS_OP_PRUNE,               /* in.prune; the writer's own (retention.c) */
    HS_OP_USER_CONNECTIONS,    /* in.user; on the writer: ordered with the writes */
    HS_OP_DELETE_MESSAGE,      /* in.deletion (topic, id); HS_ENOTFOUND: no such message */
    HS_OP_DELETE_TOPIC,        /* in.deletion: one step of a topic's deletion (deletion.c) */
    HS_OP_STOP,                /* ends a worker thread; no inputs */
} hs_store_op_kind_t;

/* The inputs of each kind of operation: a tagged union (the tag is
 * hs_store_op_t.kind). Every string is the op's own copy (operations.c and the
 * other operation files make it at submission; engine.c frees it with the op), so back-ends bind
 * them without copying. A member is named for what it holds in that operation: no field means one
 * thing in one op and another in the next. */
typedef union hs_store_op_input {
    struct hs_store_put_input {
        char *id; /* the caller's candidate; the writer replaces it with the
                     id it mints (same length) before the write */
        char *topic;
        char *content; /* content_len bytes, NUL, author, NUL: one allocation */
        size_t content_len;
        const char *author;         /* points into content */
        uint64_t created_ms;        /* the id's timestamp (of the minted id, after it) */
        char prev[HS_ULID_LEN + 1]; /* the topic's last id before the minted one */
        /* PUT_MESSAGE_ONCE only */
        char *key;
        char key_hash[64 + 1];
        uint64_t not_before_ms; /* a key created before this has expired */
    } put;
    /* A batch publish (batch.c): count puts, minted and stored in order in
     * one savepoint, all or none. Each put is as PUT_MESSAGE's (key NULL);
     * the key fields are the batch's, as PUT_MESSAGE_ONCE's, with key NULL
     * when the batch has none. The batch's key row names its first message,
     * and the idempotency_batches row lists every id (the repeat's answer). */
    struct hs_store_batch_input {
        struct hs_store_put_input *puts;
        size_t count;
        char *key;
        char key_hash[64 + 1];
        uint64_t not_before_ms;
    } batch;
    struct {
        uint64_t before_ms; /* keys created before this go */
    } purge;
    struct {
        char *id;
    } message;
    struct {
        char *topic;
        hs_history_query_t query;     /* its topic is NULL: see topic */
        char cursor[HS_ULID_LEN + 1]; /* query.cursor formatted, when query.has_cursor */
        bool want_pruned;             /* read_history: read the prune horizon too */
    } list;
    struct {
        char *topic;
        hs_topic_settings_t settings; /* SET_TOPIC */
    } topic;
    struct {
        char *prefix; /* or NULL */
        char *after;  /* or NULL */
        unsigned limit;
    } topics;
    /* One step of the pruner (retention.c): walks topics after cursor in
     * name order and removes what their retention no longer keeps, at most
     * max_rows rows and max_topics topics looked at. */
    struct {
        char *cursor; /* the last topic of the previous step, "" at a sweep's start */
        uint64_t now_ms;
        uint64_t default_age_ms;
        uint64_t default_count;
        unsigned max_rows;
        unsigned max_topics;
    } prune;
    /* DELETE_MESSAGE: the message id of topic. DELETE_TOPIC: one step
     * (deletion.c): the first removes the topic's subscriptions and its
     * own settings, reads its last id into out.bound and moves its horizon
     * there; every step removes at most max_rows of its oldest messages
     * at or below bound (the first step's). */
    struct {
        char *topic;
        char *id; /* DELETE_MESSAGE */
        bool first;
        char bound[HS_ULID_LEN + 1]; /* later steps: the first step's out.bound */
        unsigned max_rows;
    } deletion;
    struct {
        char *connection_id; /* LIST_SUBSCRIPTIONS: may be NULL */
        char *topic;         /* REMOVE, LIST: may be NULL */
        uint64_t now_ms;     /* ADD: the creation time of a new row */
    } subscription;
    struct {
        char *connection_id;
        char *node;
        char *user;    /* or NULL */
        char *address; /* or NULL */
        uint64_t now_ms;
    } add_connection;
    struct {
        char *connection_id;
    } connection;
    struct {
        char *connection_id;
        char *message_id;
    } last_ack;
    struct {
        char *connection_id;
        char *node;
        char *address;  /* or NULL */
        uint64_t epoch; /* the row must be detached at this epoch */
    } claim;
    struct {
        char *connection_id;
        uint64_t epoch;
        uint64_t detached_ms;
    } release;
    struct {
        char *connection_id;
        uint64_t epoch;
    } expire;
    struct {
        char *node;
    } node;
    /* USER_CONNECTIONS (users.c): the user's connections with ids
     * after after ("": from the first), at most limit, in id order. */
    struct {
        char *user;
        char *after;
        unsigned limit;
        bool with_topics; /* read their subscriptions too */
    } user;
} hs_store_op_input_t;

/* GET_CONNECTION's row (its subscriptions are in out.subs). */
typedef struct hs_store_connection_row {
    bool found;
    char *node;
    char *user;     /* NULL when none */
    char *last_ack; /* NULL when none */
    char *address;  /* NULL when none */
    uint64_t connected_ms;
    uint64_t epoch;
    bool attached;
    uint64_t detached_ms;
} hs_store_connection_row_t;

/* What a back-end fills in (allocated with hs_malloc/hs_strdup; the engine
 * frees it, and forgets it before a batch runs again). */
typedef struct hs_store_op_output {
    hs_message_t *msgs; /* GET_MESSAGE, LIST_MESSAGES, PUT_MESSAGE_ONCE, PUT_BATCH (a repeat) */
    hs_subscription_t *subs; /* LIST_SUBSCRIPTIONS, GET_CONNECTION */
    size_t count;            /* rows in msgs or subs; rows removed (REMOVE_SUBSCRIPTION,
                                REMOVE_NODE, PURGE_KEYS) */
    uint64_t created_ms;     /* ADD_SUBSCRIPTION: the stored creation time */
    hs_store_connection_row_t connection; /* GET_CONNECTION */
    hs_topic_info_t *topics;              /* GET_TOPIC, LIST_TOPICS (count rows) */
    char *pruned_id; /* LIST_MESSAGES with want_pruned: the topic's horizon, or NULL */
    char *cursor;    /* PRUNE: where the next step starts; NULL: the sweep is over */
    /* USER_CONNECTIONS: the rows (strings owned; subs unset: the
     * subscriptions, ordered by connection id, are in subs) */
    hs_connection_info_t *conns;
    size_t conn_count;
    /* DELETE_TOPIC (count: the messages the step removed) */
    uint64_t subs_removed;       /* first step: subscription rows removed */
    bool settings_removed;       /* first step: the topic had settings of its own */
    char bound[HS_ULID_LEN + 1]; /* first step: the topic's last id ("" : none) */
} hs_store_op_output_t;

/* One operation. */
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
        hs_store_history_cb history;
        hs_store_topic_cb topic;
        hs_store_topics_cb topics;
        hs_store_connections_cb connections;
        hs_store_deleted_cb deleted;
    } cb;
    void *data;
    hs_store_op_input_t in;
    hs_store_op_output_t out;
} hs_store_op_t;

/* The one table of the store: what a back-end (sqlite.c, mariadb.c)
 * supplies. The public operations (store.h) are plain functions of the
 * engine, which is the only implementation of them. */
typedef struct hs_store_backend {
    const char *name;
    /* Writer thread: a batch is begin, (savepoint, write, release)*, commit. */
    int (*begin)(void *conn);
    int (*commit)(void *conn);
    void (*rollback)(void *conn);
    void (*savepoint)(void *conn);
    /* Ends the op's savepoint, undoing it first when undo is true. */
    void (*release)(void *conn, bool undo);
    /* Optional. True when write(op) is one statement that, when it fails,
     * the database undoes by itself while the transaction goes on (InnoDB's
     * statement rollback); the engine then takes no savepoint around it. On
     * MariaDB a savepoint and its release are two round trips each, which
     * made a plain publish three statements instead of one (issue 16 item
     * 4, docs/performance.md). Errors that end the whole transaction
     * (deadlock: HS_EAGAIN) run the batch again either way. */
    bool (*write_is_atomic)(const struct hs_store_op *op);
    /* The topic sequences (PUT_MESSAGE, PUT_MESSAGE_ONCE; writer thread).
     * sequence_get (inside the batch's transaction) reads the topic's last
     * id ("" when it has no message) and locks its row until the
     * transaction ends (SELECT ... FOR UPDATE: a publish of the topic in
     * another transaction, here or in another process, waits for this one
     * to commit); HS_ENOTFOUND when the topic has no row yet.
     * sequence_create runs OUTSIDE any transaction (autocommit, after the
     * batch's attempt was rolled back): adds the row, initialised from
     * MAX(id) of the topic's messages (rows written before the sequences
     * existed); a row created meanwhile by another process is kept.
     * sequence_set (inside) stores id as the last id.
     * sequence.c takes the rows at the start of a batch, mints ids from its
     * copy and stores them before COMMIT. */
    int (*sequence_get)(void *conn, const char *topic, char last[HS_ULID_LEN + 1]);
    int (*sequence_create)(void *conn, const char *topic);
    int (*sequence_set)(void *conn, const char *topic, const char *id);
    /* Optional (NULL: every commit is durable): durable false makes the
     * next transactions' commits skip their sync until it is true again -
     * used for the pruner's steps, whose loss in a crash is harmless (the
     * rows are pruned again) and whose WAL frames the next durable commit
     * syncs anyway. Between transactions only. */
    void (*set_durable)(void *conn, bool durable);
    /* The clock ids are minted from (wall clock, ms; writer thread, in the
     * batch's transaction): MariaDB's, one clock for every publisher
     * sharing the database, whatever their own clocks say. NULL (SQLite:
     * one process) mints from the caller's candidate, its own clock. */
    int (*clock_ms)(void *conn, uint64_t *now_ms);
    /* Returns the op's status: 0, HS_EEXIST, HS_ENOTFOUND, HS_EIO,
     * HS_EUNAVAIL (the server cannot be reached) or HS_EAGAIN (the database
     * aborted the whole transaction, e.g. a deadlock: the engine rolls back
     * and runs the batch again, a few times); PUT_MESSAGE_ONCE also
     * HS_EINVAL (key reused with another body), and fills out.msgs with the
     * stored or the original message; PUT_BATCH with a key likewise
     * (HS_EEXIST: out.msgs holds what remains of the original batch). */
    int (*write)(void *conn, hs_store_op_t *op);
    /* Reader thread. */
    int (*read)(void *conn, hs_store_op_t *op);
    /* The last error on conn, for logs. */
    const char *(*error)(void *conn);
    /* Closes conn, on its thread, when the store closes. */
    void (*close)(void *conn);
} hs_store_backend_t;

/* Starts the threads over the two connections (options: batch_max; with
 * idempotency_window_ms the writer purges the keys older than that once a
 * minute, first at start; with prune it runs the pruner, retention.h). */
hs_store_t *hs_store_engine_start(uv_loop_t *loop, const hs_store_backend_t *backend,
                                  void *writer_conn, void *reader_conn,
                                  const hs_store_options_t *options);

/* Helpers for back-ends filling outputs. */
void hs_store_op_add_message(hs_store_op_t *op, size_t cap, const char *id, const char *topic,
                             const char *content, size_t content_len, const char *author,
                             uint64_t created_ms);
void hs_store_op_add_subscription(hs_store_op_t *op, const char *connection_id, const char *topic,
                                  uint64_t created_ms);
/* Copies info (its strings too) into op->out.topics, allocated for cap rows. */
void hs_store_op_add_topic(hs_store_op_t *op, size_t cap, const hs_topic_info_t *info);

/* For the other files of the engine (operations.c, topics.c, retention.c): a new op, and
 * its submission to the writer (write) or the reader, as every public
 * operation does. */
hs_store_op_t *hs_store_op_new(hs_store_op_kind_t kind, void *data);
void hs_store_submit(hs_store_t *store, hs_store_op_t *op, bool write);
/* topics.c: frees the inputs of the topic kinds and the outputs only they
 * fill; runs their callbacks (and read_history's: LIST_MESSAGES with
 * want_pruned). */
void hs_store_topics_op_free(hs_store_op_t *op);
void hs_store_topics_reset_outputs(hs_store_op_t *op);
void hs_store_topics_callback(hs_store_op_t *op);
/* operations.c: copies msg's fields into put (the op's own copies, freed
 * with it). */
void hs_store_put_input_copy(struct hs_store_put_input *put, const hs_message_t *msg);
/* batch.c: frees PUT_BATCH's inputs; runs its callback. */
void hs_store_batch_op_free(hs_store_op_t *op);
void hs_store_batch_callback(hs_store_op_t *op);
/* users.c: USER_CONNECTIONS's inputs, outputs and callback, as
 * topics.c's above; add_user_connection copies info's strings into
 * op->out.conns, allocated for cap rows. */
void hs_store_users_op_free(hs_store_op_t *op);
void hs_store_users_reset_outputs(hs_store_op_t *op);
void hs_store_users_callback(hs_store_op_t *op);
void hs_store_op_add_user_connection(hs_store_op_t *op, size_t cap,
                                     const hs_connection_info_t *info);
/* deletion.c: frees DELETE_* inputs; runs their callbacks (a topic's
 * deletion submits its next step from there). */
void hs_store_deletion_op_free(hs_store_op_t *op);
void hs_store_deletion_callback(hs_store_op_t *op);
/* The inclusive id bounds of retention (retention.c): the highest id a
 * message older than cutoff_ms can have. */
void hs_store_id_before(uint64_t cutoff_ms, char out[HS_ULID_LEN + 1]);

#endif
