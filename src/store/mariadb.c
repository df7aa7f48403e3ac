/* mariadb.c - the store on MariaDB/MySQL (MariaDB Connector/C).
 *
 * Like the SQLite back-end it runs on the engine's two threads, each with
 * its own connection, so the loop never waits on the database. Every
 * operation's statement is prepared once per connection and then only bound
 * and executed (mariadb_stmt.c): parameters travel apart from the SQL, so
 * nothing is escaped and content may hold any byte; after a reconnect the
 * statements are prepared again on the new connection. Transaction control
 * (START TRANSACTION, SAVEPOINT, ...) and migrations are plain text
 * statements: they take no parameters. Ids and topics are ASCII with binary
 * collation, so ORDER BY id is ULID (= time) order.
 *
 * A connection lost between batches is re-established before the next one
 * (mariadb_conn.c: the URL, connecting, reconnecting with backoff, the
 * status of an error); while the server cannot be reached every operation
 * fails at once with HS_EUNAVAIL (the API answers 503). A batch that fails
 * mid-way is rolled back and its writes report the error, so nothing
 * half-written remains. */
#include "store/mariadb.h"

#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "store/engine.h"
#include "store/mariadb_internal.h"
#include "store/mariadb_schema.h"
#include <uv.h>

#define MESSAGE_COLUMNS "SELECT id, topic, content, author, created_at FROM messages "
#define SUB_COLUMNS     "SELECT connection_id, topic, created_at FROM subscriptions "

static const char *const statement_sql[STMT_COUNT] = {
    [INSERT_MESSAGE] = "INSERT INTO messages (id, topic, content, author, created_at) "
                       "VALUES (?, ?, ?, ?, ?)",
    [GET_MESSAGE] = MESSAGE_COLUMNS "WHERE id = ?",
    [GET_MESSAGE_SHARED] = MESSAGE_COLUMNS "WHERE id = ? LOCK IN SHARE MODE",
    /* Without a cursor the bound is "" (forward) or "Z" (backward: ids
     * start with 0-7), as in sqlite.c: one statement per direction. */
    [LIST_FORWARD] = MESSAGE_COLUMNS "WHERE topic = ? AND id > ? ORDER BY id ASC LIMIT ?",
    [LIST_BACKWARD] = MESSAGE_COLUMNS "WHERE topic = ? AND id < ? ORDER BY id DESC LIMIT ?",
    [KEY_INSERT] = "INSERT INTO idempotency_keys (`key`, body_hash, message_id, created_at) "
                   "VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE `key` = `key`",
    [KEY_GET] = "SELECT body_hash, message_id, created_at FROM idempotency_keys "
                "WHERE `key` = ? FOR UPDATE",
    [KEY_UPDATE] = "UPDATE idempotency_keys SET body_hash = ?, message_id = ?, created_at = ? "
                   "WHERE `key` = ?",
    [KEY_PURGE] = "DELETE FROM idempotency_keys WHERE created_at < ?",
    /* A batch's ids (its key row is locked: claim_key). */
    [BATCH_GET] = "SELECT message_ids FROM idempotency_batches WHERE `key` = ? LOCK IN SHARE MODE",
    [BATCH_PUT] = "REPLACE INTO idempotency_batches (`key`, message_ids, created_at) "
                  "VALUES (?, ?, ?)",
    [BATCH_PURGE] = "DELETE FROM idempotency_batches WHERE created_at < ?",
    [SUB_ADD] = "INSERT IGNORE INTO subscriptions (connection_id, topic, created_at) "
                "VALUES (?, ?, ?)",
    [SUB_CREATED] = "SELECT created_at FROM subscriptions WHERE connection_id = ? AND topic = ?",
    [SUB_REMOVE] = "DELETE FROM subscriptions WHERE connection_id = ? AND topic = ?",
    [SUBS_REMOVE] = "DELETE FROM subscriptions WHERE connection_id = ?",
    [SUBS_OF_CONN] = SUB_COLUMNS "WHERE connection_id = ? ORDER BY created_at, topic",
    [SUBS_OF_TOPIC] = SUB_COLUMNS "WHERE topic = ? ORDER BY created_at, connection_id",
    [SUB_OF_BOTH] = SUB_COLUMNS "WHERE connection_id = ? AND topic = ?",
    [CONN_ADD] = "REPLACE INTO connections (id, node, connected_at, user_sub, address) "
                 "VALUES (?, ?, ?, ?, ?)",
    [CONN_GET] = "SELECT node, connected_at, user_sub, last_ack, epoch, attached, address, "
                 "detached_at FROM connections WHERE id = ?",
    [CONN_REMOVE] = "DELETE FROM connections WHERE id = ?",
    [SET_ACK] = "UPDATE connections SET last_ack = ? WHERE id = ?",
    [CLAIM] = "UPDATE connections SET node = ?, epoch = epoch + 1, attached = 1, address = ? "
              "WHERE id = ? AND epoch = ? AND attached = 0",
    [RELEASE] = "UPDATE connections SET attached = 0, detached_at = ? WHERE id = ? AND epoch = ?",
    [EXPIRE_SUBS] = "DELETE s FROM subscriptions s JOIN connections c ON s.connection_id = c.id "
                    "WHERE c.id = ? AND c.epoch = ? AND c.attached = 0",
    /* Subscriptions left without a connection (stored by an API subscribe
     * racing the kick that removed it, its command to the node lost) go
     * too. */
    [ORPHAN_SUBS] = "DELETE FROM subscriptions WHERE connection_id = ? AND NOT EXISTS "
                    "(SELECT 1 FROM connections WHERE id = ?)",
    [EXPIRE_CONN] = "DELETE FROM connections WHERE id = ? AND epoch = ? AND attached = 0",
    [NODE_SUBS] = "DELETE s FROM subscriptions s JOIN connections c ON s.connection_id = c.id "
                  "WHERE c.node = ?",
    [NODE_CONNS] = "DELETE FROM connections WHERE node = ?",
    /* The topic sequences (engine.h, docs/scaling.md "Message ids"). A
     * locking read: it waits for another transaction holding the row and
     * then reads the latest committed last_id, not this transaction's
     * snapshot. A row is created outside any transaction (sequence.c says
     * why), in two autocommit statements: LAST, a plain read that takes no
     * locks (INSERT ... SELECT would take shared next-key locks on the
     * messages index, which other publishers' message INSERTs wait for),
     * then CREATE. No message of a topic without a row can be in flight -
     * a publish inserts only under the topic's locked row - so the read
     * sees every message the row must count; and if another process
     * created the row in between, ON DUPLICATE KEY keeps its row. */
    [SEQ_GET] = "SELECT last_id FROM topic_sequences WHERE topic = ? FOR UPDATE",
    [SEQ_LAST] = "SELECT COALESCE(MAX(id), '') FROM messages WHERE topic = ?",
    [SEQ_CREATE] = "INSERT INTO topic_sequences (topic, last_id) VALUES (?, ?) "
                   "ON DUPLICATE KEY UPDATE topic = topic",
    [SEQ_SET] = "UPDATE topic_sequences SET last_id = ? WHERE topic = ?",
};

/* The status of the last failure (c->err): HS_EUNAVAIL when the connection
 * is the cause (the next use reconnects), HS_EAGAIN when InnoDB gave up the
 * transaction over a lock (a deadlock between publishers writing the same
 * idempotency keys in other orders: the engine runs the batch again), else
 * HS_EIO. */
static int statement_error(conn_t *c)
{
    return hs_mariadb_status(&c->err);
}

/* ---- running statements ------------------------------------------------------ */

/* Runs the prepared statement id with params; 0 or the status of its error. */
static int run_stmt(conn_t *c, stmt_id_t id, const md_param_t *params, unsigned count,
                    bool streamed)
{
    if (md_stmt_run(c->db, &c->stmts[id], statement_sql[id], params, count, streamed, &c->err))
        return statement_error(c);
    return 0;
}

/* RUN(c, id, md_text(a), md_u64(b), ...): the parameters as a literal array
 * (sizeof does not evaluate them a second time). */
#define PARAMS(...)                                                                                \
    (const md_param_t[])                                                                           \
    {                                                                                              \
        __VA_ARGS__                                                                                \
    }
#define RUN(c, id, ...)                                                                            \
    run_stmt((c), (id), PARAMS(__VA_ARGS__),                                                       \
             (unsigned)(sizeof(PARAMS(__VA_ARGS__)) / sizeof(md_param_t)), false)

/* Rows the last run of id changed, into *count (may be NULL). */
static int changed(conn_t *c, stmt_id_t id, size_t *count)
{
    if (count)
        *count = (size_t)md_stmt_affected(&c->stmts[id]);
    return 0;
}

static int run_text(conn_t *c, const char *sql)
{
    if (mysql_query(c->db, sql) == 0)
        return 0;
    hs_mariadb__record_error(c);
    return statement_error(c);
}

/* ---- writes ---------------------------------------------------------------------- */

static int insert_message(conn_t *c, const struct hs_store_put_input *put)
{
    return RUN(c, INSERT_MESSAGE, md_text(put->id), md_text(put->topic),
               md_blob(put->content, put->content_len), md_text(put->author),
               md_u64(put->created_ms));
}

/* Reads the rows of the last run of id (a message query) into op, at most
 * cap of them and, with max_bytes, none after the rows read hold that many
 * bytes of content; then ends the result (dropping unread streamed rows). */
static int fetch_messages(conn_t *c, stmt_id_t id, hs_store_op_t *op, size_t cap, size_t max_bytes)
{
    md_stmt_t *st = &c->stmts[id];
    md_row_t row;
    size_t bytes = 0;
    int rc = 0;
    while (op->out.count < cap && (max_bytes == 0 || bytes < max_bytes) &&
           (rc = md_stmt_fetch(st, &row, &c->err)) == 1) {
        bytes += row.len[2];
        hs_store_op_add_message(op, cap, row.col[0], row.col[1], row.col[2], row.len[2], row.col[3],
                                row.col[4] ? strtoull(row.col[4], NULL, 10) : 0);
    }
    md_stmt_end(st);
    return rc < 0 ? statement_error(c) : 0;
}

/* Reads subscription rows (connection_id, topic, created_at) into op. */
static int fetch_subscriptions(conn_t *c, stmt_id_t id, hs_store_op_t *op)
{
    md_stmt_t *st = &c->stmts[id];
    md_row_t row;
    int rc;
    while ((rc = md_stmt_fetch(st, &row, &c->err)) == 1)
        hs_store_op_add_subscription(op, row.col[0], row.col[1],
                                     row.col[2] ? strtoull(row.col[2], NULL, 10) : 0);
    md_stmt_end(st);
    return rc < 0 ? statement_error(c) : 0;
}

/* The key row of a publish, or of a batch (put: its first message).
 * Several publishers may insert one key at once. The insert waits for
 * another transaction's uncommitted row with that key and, once it commits,
 * finds the duplicate (0 rows): exactly one message is stored. ON DUPLICATE
 * KEY UPDATE (not INSERT IGNORE) because it takes the row's exclusive lock
 * at once: with IGNORE two transactions would both hold a shared lock and
 * deadlock when upgrading it for the read below. The reads after it are
 * locking reads, which see the latest committed rows rather than this
 * transaction's snapshot (REPEATABLE READ). A key that expired (not yet
 * purged) or whose message is gone is taken over by this publish: 0.
 * HS_EEXIST: known with the same body_hash, its message read into op's
 * out.msgs (room for cap rows); HS_EINVAL: known with another body_hash. */
static int claim_key(conn_t *c, const struct hs_store_put_input *put, const char *key,
                     const char *key_hash, uint64_t not_before_ms, hs_store_op_t *op, size_t cap)
{
    size_t n = 0;
    int rc = RUN(c, KEY_INSERT, md_text(key), md_text(key_hash), md_text(put->id),
                 md_u64(put->created_ms));
    if (rc != 0 || changed(c, KEY_INSERT, &n) != 0 || n != 0)
        return rc;
    if ((rc = RUN(c, KEY_GET, md_text(key))) != 0)
        return rc;
    md_row_t row;
    int got = md_stmt_fetch(&c->stmts[KEY_GET], &row, &c->err);
    if (got != 1 || !row.col[0] || !row.col[1] || !row.col[2]) {
        md_stmt_end(&c->stmts[KEY_GET]);
        return got < 0 ? statement_error(c) : HS_EIO;
    }
    bool same = strcmp(row.col[0], key_hash) == 0;
    char message_id[HS_ULID_LEN + 1];
    snprintf(message_id, sizeof(message_id), "%s", row.col[1]);
    bool take_over = strtoull(row.col[2], NULL, 10) < not_before_ms;
    md_stmt_end(&c->stmts[KEY_GET]);
    if (!take_over && !same)
        return HS_EINVAL;
    if (!take_over) {
        if ((rc = RUN(c, GET_MESSAGE_SHARED, md_text(message_id))) != 0 ||
            (rc = fetch_messages(c, GET_MESSAGE_SHARED, op, cap, 0)) != 0)
            return rc;
        if (op->out.count == 1)
            return HS_EEXIST;
    }
    return RUN(c, KEY_UPDATE, md_text(key_hash), md_text(put->id), md_u64(put->created_ms),
               md_text(key));
}

static int put_message_once(conn_t *c, hs_store_op_t *op)
{
    const struct hs_store_put_input *put = &op->in.put;
    int rc = claim_key(c, put, put->key, put->key_hash, put->not_before_ms, op, 1);
    if (rc == 0)
        rc = insert_message(c, put);
    if (rc == 0)
        hs_store_op_add_message(op, 1, put->id, put->topic, put->content, put->content_len,
                                put->author, put->created_ms);
    return rc;
}

/* A repeated batch: the rest of the original (its first message is read),
 * by the ids of its row; a message deleted since is left out. */
static int read_batch(conn_t *c, const struct hs_store_batch_input *in, hs_store_op_t *op)
{
    int rc = RUN(c, BATCH_GET, md_text(in->key));
    if (rc != 0)
        return rc;
    md_row_t row;
    int got = md_stmt_fetch(&c->stmts[BATCH_GET], &row, &c->err);
    char *ids = got == 1 && row.col[0] ? hs_strdup(row.col[0]) : NULL;
    md_stmt_end(&c->stmts[BATCH_GET]);
    if (got < 0)
        return statement_error(c);
    const char *p = ids ? strchr(ids, ',') : NULL;
    while (p && rc == 0 && op->out.count < in->count) {
        char id[HS_ULID_LEN + 1];
        snprintf(id, sizeof(id), "%.*s", HS_ULID_LEN, p + 1);
        if ((rc = RUN(c, GET_MESSAGE_SHARED, md_text(id))) == 0)
            rc = fetch_messages(c, GET_MESSAGE_SHARED, op, in->count, 0);
        p = strchr(p + 1, ',');
    }
    hs_free(ids);
    return rc != 0 ? rc : HS_EEXIST;
}

/* A batch publish (batch.c): its messages in order; with a key, the key
 * row (as a single publish's, naming the first message) and the batch's
 * row listing every id, comma-separated, which answers a repeat. */
static int put_batch(conn_t *c, hs_store_op_t *op)
{
    const struct hs_store_batch_input *in = &op->in.batch;
    if (in->count == 0)
        return 0;
    int rc = 0;
    if (in->key) {
        rc = claim_key(c, &in->puts[0], in->key, in->key_hash, in->not_before_ms, op, in->count);
        if (rc == HS_EEXIST)
            return read_batch(c, in, op);
        if (rc != 0)
            return rc;
    }
    for (size_t i = 0; i < in->count && rc == 0; i++)
        rc = insert_message(c, &in->puts[i]);
    if (rc != 0 || in->key == NULL)
        return rc;
    size_t len = in->count * (HS_ULID_LEN + 1);
    char *ids = hs_malloc(len);
    for (size_t i = 0; i < in->count; i++) {
        memcpy(ids + i * (HS_ULID_LEN + 1), in->puts[i].id, HS_ULID_LEN);
        ids[i * (HS_ULID_LEN + 1) + HS_ULID_LEN] = i + 1 < in->count ? ',' : '\0';
    }
    rc = RUN(c, BATCH_PUT, md_text(in->key), md_text(ids), md_u64(in->puts[0].created_ms));
    hs_free(ids);
    return rc;
}

/* Runs an epoch-guarded connection write; HS_ENOTFOUND when it changed no
 * row (the epoch always changes or the row goes, so "changed" is
 * "matched"). */
static int changed_or_not_found(conn_t *c, stmt_id_t id, int rc)
{
    size_t n = 0;
    if (rc != 0)
        return rc;
    changed(c, id, &n);
    return n ? 0 : HS_ENOTFOUND;
}

static int add_subscription(conn_t *c, hs_store_op_t *op)
{
    const char *conn = op->in.subscription.connection_id, *topic = op->in.subscription.topic;
    uint64_t now_ms = op->in.subscription.now_ms;
    size_t n = 0;
    int rc = RUN(c, SUB_ADD, md_text(conn), md_text(topic), md_u64(now_ms));
    if (rc != 0)
        return rc;
    changed(c, SUB_ADD, &n);
    op->out.created_ms = now_ms;
    if (n == 1)
        return 0;
    if ((rc = RUN(c, SUB_CREATED, md_text(conn), md_text(topic))) != 0)
        return rc;
    md_row_t row;
    if (md_stmt_fetch(&c->stmts[SUB_CREATED], &row, &c->err) == 1 && row.col[0])
        op->out.created_ms = strtoull(row.col[0], NULL, 10);
    md_stmt_end(&c->stmts[SUB_CREATED]);
    return HS_EEXIST;
}

static char *dup_or_null(const char *s)
{
    return s ? hs_strdup(s) : NULL;
}

static int get_connection(conn_t *c, hs_store_op_t *op)
{
    const char *id = op->in.connection.connection_id;
    int rc = RUN(c, CONN_GET, md_text(id));
    if (rc != 0)
        return rc;
    md_row_t row;
    int got = md_stmt_fetch(&c->stmts[CONN_GET], &row, &c->err);
    if (got == 1) {
        hs_store_connection_row_t *out = &op->out.connection;
        out->found = true;
        out->node = hs_strdup(row.col[0] ? row.col[0] : "");
        out->connected_ms = row.col[1] ? strtoull(row.col[1], NULL, 10) : 0;
        out->user = dup_or_null(row.col[2]);
        out->last_ack = dup_or_null(row.col[3]);
        out->epoch = row.col[4] ? strtoull(row.col[4], NULL, 10) : 0;
        out->attached = row.col[5] && strcmp(row.col[5], "0") != 0;
        out->address = dup_or_null(row.col[6]);
        out->detached_ms = row.col[7] ? strtoull(row.col[7], NULL, 10) : 0;
    }
    md_stmt_end(&c->stmts[CONN_GET]);
    if (got != 1)
        return got < 0 ? statement_error(c) : 0;
    if ((rc = RUN(c, SUBS_OF_CONN, md_text(id))) != 0)
        return rc;
    return fetch_subscriptions(c, SUBS_OF_CONN, op);
}

static int expire_connection(conn_t *c, const char *id, uint64_t epoch)
{
    int rc = RUN(c, EXPIRE_SUBS, md_text(id), md_u64(epoch));
    if (rc == 0)
        rc = RUN(c, ORPHAN_SUBS, md_text(id), md_text(id));
    if (rc != 0)
        return rc;
    return changed_or_not_found(c, EXPIRE_CONN, RUN(c, EXPIRE_CONN, md_text(id), md_u64(epoch)));
}

/* The connection lent to mariadb_topics.c. */
static hs_md_topic_conn_t topic_conn(conn_t *c)
{
    return (hs_md_topic_conn_t){.db = c->db, .stmts = c->topic_stmts, .err = &c->err};
}

static int md_write(void *conn, hs_store_op_t *op)
{
    conn_t *c = conn;
    const hs_store_op_input_t *in = &op->in;
    hs_md_topic_conn_t tc = topic_conn(c);
    int rc;
    switch (op->kind) {
    case HS_OP_SET_TOPIC:
    case HS_OP_PRUNE:
    case HS_OP_DELETE_MESSAGE:
    case HS_OP_DELETE_TOPIC:
        return hs_mariadb_topics_write(&tc, op);
    case HS_OP_USER_CONNECTIONS: {
        hs_md_topic_conn_t uc = {.db = c->db, .stmts = c->user_stmts, .err = &c->err};
        return hs_mariadb_users_read(&uc, op);
    }
    case HS_OP_PUT_MESSAGE:
        return insert_message(c, &in->put);
    case HS_OP_PUT_MESSAGE_ONCE:
        return put_message_once(c, op);
    case HS_OP_PUT_BATCH:
        return put_batch(c, op);
    case HS_OP_PURGE_KEYS:
        rc = RUN(c, BATCH_PURGE, md_u64(in->purge.before_ms));
        if (rc == 0)
            rc = RUN(c, KEY_PURGE, md_u64(in->purge.before_ms));
        return rc != 0 ? rc : changed(c, KEY_PURGE, &op->out.count);
    case HS_OP_ADD_SUBSCRIPTION:
        return add_subscription(c, op);
    case HS_OP_REMOVE_SUBSCRIPTION:
        if (in->subscription.topic == NULL) {
            rc = RUN(c, SUBS_REMOVE, md_text(in->subscription.connection_id));
            return rc != 0 ? rc : changed(c, SUBS_REMOVE, &op->out.count);
        }
        rc = RUN(c, SUB_REMOVE, md_text(in->subscription.connection_id),
                 md_text(in->subscription.topic));
        return rc != 0 ? rc : changed(c, SUB_REMOVE, &op->out.count);
    case HS_OP_ADD_CONNECTION:
        return RUN(c, CONN_ADD, md_text(in->add_connection.connection_id),
                   md_text(in->add_connection.node), md_u64(in->add_connection.now_ms),
                   md_text(in->add_connection.user), md_text(in->add_connection.address));
    case HS_OP_GET_CONNECTION:
        return get_connection(c, op);
    case HS_OP_REMOVE_CONNECTION:
        rc = RUN(c, SUBS_REMOVE, md_text(in->connection.connection_id));
        return rc != 0 ? rc : RUN(c, CONN_REMOVE, md_text(in->connection.connection_id));
    case HS_OP_SET_LAST_ACK:
        return RUN(c, SET_ACK, md_text(in->last_ack.message_id),
                   md_text(in->last_ack.connection_id));
    case HS_OP_CLAIM_CONNECTION:
        return changed_or_not_found(c, CLAIM,
                                    RUN(c, CLAIM, md_text(in->claim.node),
                                        md_text(in->claim.address),
                                        md_text(in->claim.connection_id), md_u64(in->claim.epoch)));
    case HS_OP_RELEASE_CONNECTION:
        return changed_or_not_found(c, RELEASE,
                                    RUN(c, RELEASE, md_u64(in->release.detached_ms),
                                        md_text(in->release.connection_id),
                                        md_u64(in->release.epoch)));
    case HS_OP_EXPIRE_CONNECTION:
        return expire_connection(c, in->expire.connection_id, in->expire.epoch);
    case HS_OP_REMOVE_NODE:
        rc = RUN(c, NODE_SUBS, md_text(in->node.node));
        if (rc == 0)
            rc = RUN(c, NODE_CONNS, md_text(in->node.node));
        return rc != 0 ? rc : changed(c, NODE_CONNS, &op->out.count);
    default:
        return HS_EINVAL;
    }
}

/* ---- reads ------------------------------------------------------------------------- */

static int md_read(void *conn, hs_store_op_t *op)
{
    conn_t *c = conn;
    int rc = hs_mariadb__ensure_connected(c);
    if (rc != 0)
        return rc;
    const hs_store_op_input_t *in = &op->in;
    hs_md_topic_conn_t tc = topic_conn(c);
    switch (op->kind) {
    case HS_OP_GET_TOPIC:
    case HS_OP_LIST_TOPICS:
        return hs_mariadb_topics_read(&tc, op);
    case HS_OP_GET_MESSAGE:
        if ((rc = RUN(c, GET_MESSAGE, md_text(in->message.id))) != 0 ||
            (rc = fetch_messages(c, GET_MESSAGE, op, 1, 0)) != 0)
            return rc;
        return op->out.count == 1 ? 0 : HS_ENOTFOUND;
    case HS_OP_LIST_MESSAGES: {
        const hs_history_query_t *q = &in->list.query;
        stmt_id_t id = q->forward ? LIST_FORWARD : LIST_BACKWARD;
        const char *bound = q->has_cursor ? in->list.cursor : q->forward ? "" : "Z";
        /* With a byte bound (a resume's replay) the rows are streamed from
         * the server rather than all held at once, and no row is kept after
         * the bound. */
        rc = run_stmt(c, id, PARAMS(md_text(in->list.topic), md_text(bound), md_u64(q->limit)), 3,
                      q->max_bytes != 0);
        if (rc == 0)
            rc = fetch_messages(c, id, op, q->limit, q->max_bytes);
        /* After the page: a prune in between makes it say pruned, never hide it. */
        if (rc == 0 && in->list.want_pruned)
            rc = hs_mariadb_topics_horizon(&tc, op);
        return rc;
    }
    case HS_OP_LIST_SUBSCRIPTIONS: {
        const char *conn_id = in->subscription.connection_id, *topic = in->subscription.topic;
        stmt_id_t id;
        if (conn_id && topic) {
            id = SUB_OF_BOTH;
            rc = RUN(c, id, md_text(conn_id), md_text(topic));
        } else if (conn_id) {
            id = SUBS_OF_CONN;
            rc = RUN(c, id, md_text(conn_id));
        } else {
            id = SUBS_OF_TOPIC;
            rc = RUN(c, id, md_text(topic));
        }
        return rc != 0 ? rc : fetch_subscriptions(c, id, op);
    }
    default:
        return HS_EINVAL;
    }
}

/* ---- the engine's interface ----------------------------------------------------------- */

static int md_begin(void *conn)
{
    conn_t *c = conn;
    int rc = hs_mariadb__ensure_connected(c);
    return rc != 0 ? rc : run_text(c, "START TRANSACTION");
}

static int md_commit(void *conn)
{
    return run_text(conn, "COMMIT");
}

static void md_rollback(void *conn)
{
    run_text(conn, "ROLLBACK");
}

static void md_savepoint(void *conn)
{
    run_text(conn, "SAVEPOINT op");
}

static void md_release(void *conn, bool undo)
{
    if (undo)
        run_text(conn, "ROLLBACK TO SAVEPOINT op");
    run_text(conn, "RELEASE SAVEPOINT op");
}

/* A plain publish is one INSERT: when it fails (a duplicate id), InnoDB
 * undoes that statement alone and the transaction goes on, so it needs no
 * savepoint. Every other write is several statements, or may be. */
static bool md_write_is_atomic(const hs_store_op_t *op)
{
    return op->kind == HS_OP_PUT_MESSAGE;
}

static int md_sequence_get(void *conn, const char *topic, char last[HS_ULID_LEN + 1])
{
    conn_t *c = conn;
    int rc = RUN(c, SEQ_GET, md_text(topic));
    if (rc != 0)
        return rc;
    md_row_t row;
    int fetched = md_stmt_fetch(&c->stmts[SEQ_GET], &row, &c->err);
    if (fetched == 1)
        snprintf(last, HS_ULID_LEN + 1, "%s", row.col[0] ? row.col[0] : "");
    md_stmt_end(&c->stmts[SEQ_GET]);
    return fetched < 0 ? statement_error(c) : fetched == 1 ? 0 : HS_ENOTFOUND;
}

static int md_sequence_create(void *conn, const char *topic)
{
    conn_t *c = conn;
    int rc = RUN(c, SEQ_LAST, md_text(topic));
    if (rc != 0)
        return rc;
    char last[HS_ULID_LEN + 1] = "";
    md_row_t row;
    int fetched = md_stmt_fetch(&c->stmts[SEQ_LAST], &row, &c->err);
    if (fetched == 1 && row.col[0])
        snprintf(last, sizeof(last), "%s", row.col[0]);
    md_stmt_end(&c->stmts[SEQ_LAST]);
    if (fetched < 0)
        return statement_error(c);
    return RUN(c, SEQ_CREATE, md_text(topic), md_text(last));
}

static int md_sequence_set(void *conn, const char *topic, const char *id)
{
    return RUN((conn_t *)conn, SEQ_SET, md_text(id), md_text(topic));
}

static int md_clock_ms(void *conn, uint64_t *now_ms)
{
    conn_t *c = conn;
    int rc = run_text(c, "SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS UNSIGNED)");
    if (rc != 0)
        return rc;
    MYSQL_RES *res = mysql_store_result(c->db);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    rc = row && row[0] ? 0 : HS_EIO;
    if (rc == 0)
        *now_ms = strtoull(row[0], NULL, 10);
    if (res)
        mysql_free_result(res);
    else
        hs_mariadb__record_error(c);
    return rc;
}

static const char *md_error(void *conn)
{
    conn_t *c = conn;
    if (c->err.number)
        return c->err.message;
    return c->db ? mysql_error(c->db) : "not connected";
}

static void md_close(void *conn)
{
    conn_t *c = conn;
    hs_mariadb__close_statements(c);
    if (c->db)
        mysql_close(c->db);
    mysql_thread_end();
    hs_free(c);
}

static const hs_store_backend_t mariadb_backend = {
    .name = "mariadb",
    .begin = md_begin,
    .commit = md_commit,
    .rollback = md_rollback,
    .savepoint = md_savepoint,
    .release = md_release,
    .write_is_atomic = md_write_is_atomic,
    .sequence_get = md_sequence_get,
    .sequence_create = md_sequence_create,
    .sequence_set = md_sequence_set,
    .clock_ms = md_clock_ms,
    .write = md_write,
    .read = md_read,
    .error = md_error,
    .close = md_close,
};

int hs_store_mariadb_open(uv_loop_t *loop, const char *url, const hs_store_options_t *options,
                          hs_store_t **out, char *err, size_t err_len)
{
    target_t target;
    int rc = hs_mariadb__parse_url(url, &target, err, err_len);
    if (rc != 0)
        return rc;
    conn_t *conns[2];
    for (int i = 0; i < 2; i++) {
        conns[i] = hs_calloc(1, sizeof(conn_t));
        conns[i]->target = target;
    }
    /* The server may still be on its way: wait for it (mariadb_conn.c). */
    rc = hs_mariadb__connect_waiting(conns[0], options->connect_wait_ms, err, err_len);
    if (rc == 0)
        rc = hs_mariadb_migrate(conns[0]->db, conns[0]->target.database, err, err_len);
    if (rc == 0)
        rc = hs_mariadb__connect(conns[1], err, err_len);
    if (rc != 0) {
        for (int i = 0; i < 2; i++) {
            hs_mariadb__close_statements(conns[i]);
            if (conns[i]->db)
                mysql_close(conns[i]->db);
            hs_free(conns[i]);
        }
        return rc;
    }
    *out = hs_store_engine_start(loop, &mariadb_backend, conns[0], conns[1], options);
    hs_log_info("store: MariaDB %s:%u/%s open", target.host, target.port, target.database);
    return 0;
}
