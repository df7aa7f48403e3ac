/* sqlite.c - the store on SQLite (embedded mode).
 *
 * The engine (engine.c) runs it on two threads, each with its own
 * connection: the writer commits batches (one fsync per batch), the reader
 * answers queries while the writer writes (WAL).
 *
 * Durability: journal_mode=WAL with synchronous=FULL: a write whose callback
 * reported success survives a process crash and a power loss. The schema is
 * a list of migrations applied in order under PRAGMA user_version (the same
 * idea as mariadb.c's schema_version table), in sqlite_schema.c. Design:
 * docs/internals/store.md. */
#include "store/sqlite.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "store/engine.h"
#include "store/sqlite_schema.h"
#include "store/sqlite_topics.h"
#include "store/sqlite_users.h"

/* Sets the journal mode and checks it took: SQLite silently keeps the old
 * mode where WAL is impossible (e.g. no shared memory), and the reader's
 * concurrency depends on it. */
static int use_wal(sqlite3 *db, char *reason, size_t len)
{
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &stmt, NULL) != SQLITE_OK) {
        snprintf(reason, len, "%s", sqlite3_errmsg(db));
        return HS_EIO;
    }
    const char *mode = NULL;
    if (sqlite3_step(stmt) == SQLITE_ROW)
        mode = (const char *)sqlite3_column_text(stmt, 0);
    int rc = mode != NULL && strcmp(mode, "wal") == 0 ? 0 : HS_EIO;
    if (rc != 0)
        snprintf(reason, len, "%s",
                 mode ? "the file system does not allow WAL journal mode" : sqlite3_errmsg(db));
    sqlite3_finalize(stmt);
    return rc;
}

/* The writer opens read-write (creating the file); the reader opens the same
 * file read-only once the writer made it a WAL database. */
static int open_db(const char *path, bool read_only, sqlite3 **out, char *err, size_t err_len)
{
    int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    flags |= SQLITE_OPEN_NOMUTEX; /* each connection belongs to one thread */
    sqlite3 *db = NULL;
    char reason[256] = "";
    int rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        snprintf(reason, sizeof(reason), "%s", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        goto fail;
    }
    /* SQLite opens a write-protected file read-only without saying so. */
    if (!read_only && sqlite3_db_readonly(db, "main") == 1) {
        snprintf(reason, sizeof(reason), "the file is read-only");
        goto fail;
    }
    /* Waits for the other connection's lock (checkpoints, a second process)
     * rather than failing at once with SQLITE_BUSY. */
    sqlite3_busy_timeout(db, 5000);
    /* The first statements read the header: a file that is not a database
     * fails here. foreign_keys: the v1 schema has none (subscriptions may
     * exist without a connection row) but later migrations may. */
    if (hs_sqlite_exec(db, "PRAGMA foreign_keys = ON", reason, sizeof(reason)) != 0)
        goto fail;
    if (read_only) {
        if (hs_sqlite_exec(db, "PRAGMA query_only = ON", reason, sizeof(reason)) != 0)
            goto fail;
    } else {
        /* FULL: each commit (one per batch) syncs the WAL, so an acknowledged
         * write survives a power loss, not only a crash (docs/internals/store.md). */
        if (use_wal(db, reason, sizeof(reason)) != 0 ||
            hs_sqlite_exec(db, "PRAGMA synchronous = FULL", reason, sizeof(reason)) != 0)
            goto fail;
    }
    *out = db;
    return 0;
fail:
    snprintf(err, err_len, "cannot open sqlite database '%s': %s", path, reason);
    sqlite3_close(db);
    return HS_EIO;
}

/* ---- statements -------------------------------------------------------- */

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL) != SQLITE_OK)
        hs_log_error("store: preparing \"%s\" failed: %s", sql, sqlite3_errmsg(db));
    return stmt;
}

/* Statements are prepared on first use by the thread that owns the
 * connection and kept for its life. */
typedef struct stmts {
    sqlite3_stmt *put_message, *add_sub, *get_sub_created, *remove_sub, *remove_subs, *add_conn,
        *remove_conn, *remove_node_subs, *remove_node_conns, *get_message, *list_forward,
        *list_backward, *list_subs_conn, *list_subs_topic, *list_subs_both, *get_conn,
        *get_conn_subs, *set_ack, *claim_conn, *release_conn, *expire_subs, *expire_conn,
        *key_insert, *key_get, *key_update, *key_purge, *get_message_w, *seq_get, *seq_create,
        *seq_set, *batch_get, *batch_put, *batch_purge;
    /* the writer's transaction control, run for every batch and op */
    sqlite3_stmt *tx_begin, *tx_commit, *sp_begin, *sp_undo, *sp_release;
} stmts_t;

static sqlite3_stmt *stmt_for(sqlite3 *db, sqlite3_stmt **slot, const char *sql)
{
    if (*slot == NULL)
        *slot = prepare(db, sql);
    else
        sqlite3_reset(*slot);
    if (*slot)
        sqlite3_clear_bindings(*slot);
    return *slot;
}

static void finalize_all(stmts_t *s)
{
    sqlite3_stmt **all = (sqlite3_stmt **)s;
    for (size_t i = 0; i < sizeof(*s) / sizeof(sqlite3_stmt *); i++) {
        sqlite3_finalize(all[i]);
        all[i] = NULL;
    }
}

static int run_done(sqlite3_stmt *stmt)
{
    if (stmt == NULL)
        return HS_EIO;
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? 0 : HS_EIO;
}

static void bind_text(sqlite3_stmt *stmt, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(stmt, i, s, -1, SQLITE_STATIC);
}

/* Runs the statement in slot (prepared from sql on first use) with text
 * parameters ?1 = a and ?2 = b (either may be NULL: not bound). */
static int run_texts(sqlite3 *db, sqlite3_stmt **slot, const char *sql, const char *a,
                     const char *b)
{
    sqlite3_stmt *st = stmt_for(db, slot, sql);
    if (st == NULL)
        return HS_EIO;
    bind_text(st, 1, a);
    bind_text(st, 2, b);
    return run_done(st);
}

/* The epoch-guarded connection writes' parameters: ?1 the connection, ?2 the
 * node, ?3 the epoch, ?4 the address, ?5 detached_at (NULLs: not bound). */
typedef struct epoch_args {
    const char *connection_id, *node;
    uint64_t epoch;
    const char *address;
    uint64_t detached_ms;
} epoch_args_t;

/* Runs an epoch-guarded write; HS_ENOTFOUND when no row matched. */
static int run_epoch_changed(sqlite3 *db, sqlite3_stmt **slot, const char *sql,
                             const epoch_args_t *args)
{
    sqlite3_stmt *st = stmt_for(db, slot, sql);
    if (st == NULL)
        return HS_EIO;
    bind_text(st, 1, args->connection_id);
    bind_text(st, 2, args->node);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)args->epoch);
    bind_text(st, 4, args->address);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)args->detached_ms);
    int rc = run_done(st);
    return rc == 0 && sqlite3_changes(db) == 0 ? HS_ENOTFOUND : rc;
}

static int collect_messages(sqlite3_stmt *st, hs_store_op_t *op, size_t limit);

/* ---- writes (writer thread) --------------------------------------------- */

static int insert_message(sqlite3 *db, stmts_t *s, const struct hs_store_put_input *put)
{
    sqlite3_stmt *st = stmt_for(db, &s->put_message,
                                "INSERT INTO messages (id, topic, content, author, created_at) "
                                "VALUES (?1, ?2, ?3, ?4, ?5)");
    if (st == NULL)
        return HS_EIO;
    bind_text(st, 1, put->id);
    bind_text(st, 2, put->topic);
    sqlite3_bind_text(st, 3, put->content, (int)put->content_len, SQLITE_STATIC);
    bind_text(st, 4, put->author);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)put->created_ms);
    return run_done(st);
}

/* Reads message id into op's out.msgs (room for cap rows); a missing one
 * adds nothing. */
static int read_message_w(sqlite3 *db, stmts_t *s, const char *id, hs_store_op_t *op, size_t cap)
{
    sqlite3_stmt *st = stmt_for(db, &s->get_message_w,
                                "SELECT id, topic, content, author, created_at FROM messages "
                                "WHERE id = ?1");
    if (st == NULL)
        return HS_EIO;
    bind_text(st, 1, id);
    return collect_messages(st, op, cap);
}

/* ?1..?4 of an idempotency key row: the key, its body hash, the message
 * that holds it and when. */
static void bind_key_row(sqlite3_stmt *st, const char *key, const char *key_hash,
                         const struct hs_store_put_input *put)
{
    bind_text(st, 1, key);
    bind_text(st, 2, key_hash);
    bind_text(st, 3, put->id);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)put->created_ms);
}

/* The key row of a publish, or of a batch (message_id: its first message).
 * The key row first: the writer holds the database's write lock (BEGIN
 * IMMEDIATE, also against other processes), so "insert or find" cannot
 * race. Returns 0 when this publish takes the key: new, or known but
 * expired (not yet purged), or its message is gone; HS_EEXIST when it is
 * known with the same body_hash and its message is there (read into op's
 * out.msgs, room for cap rows); HS_EINVAL when known with another
 * body_hash; or HS_EIO. */
static int claim_key(sqlite3 *db, stmts_t *s, const struct hs_store_put_input *put, const char *key,
                     const char *key_hash, uint64_t not_before_ms, hs_store_op_t *op, size_t cap)
{
    sqlite3_stmt *st = stmt_for(db, &s->key_insert,
                                "INSERT INTO idempotency_keys (`key`, body_hash, message_id, "
                                "created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING");
    if (st == NULL)
        return HS_EIO;
    bind_key_row(st, key, key_hash, put);
    if (run_done(st) != 0)
        return HS_EIO;
    if (sqlite3_changes(db) == 1)
        return 0;
    st = stmt_for(db, &s->key_get,
                  "SELECT body_hash, message_id, created_at FROM idempotency_keys "
                  "WHERE `key` = ?1");
    if (st == NULL)
        return HS_EIO;
    bind_text(st, 1, key);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return HS_EIO;
    }
    bool same = strcmp((const char *)sqlite3_column_text(st, 0), key_hash) == 0;
    char message_id[HS_ULID_LEN + 1];
    snprintf(message_id, sizeof(message_id), "%s", (const char *)sqlite3_column_text(st, 1));
    uint64_t created = (uint64_t)sqlite3_column_int64(st, 2);
    sqlite3_reset(st);
    bool take_over = created < not_before_ms;
    if (!take_over && !same)
        return HS_EINVAL;
    if (!take_over) {
        if (read_message_w(db, s, message_id, op, cap) != 0)
            return HS_EIO;
        if (op->out.count == 1)
            return HS_EEXIST;
        /* the original message is gone: taken over */
    }
    st = stmt_for(db, &s->key_update,
                  "UPDATE idempotency_keys SET body_hash = ?2, message_id = ?3, "
                  "created_at = ?4 WHERE `key` = ?1");
    if (st == NULL)
        return HS_EIO;
    bind_key_row(st, key, key_hash, put);
    return run_done(st) != 0 ? HS_EIO : 0;
}

static int put_message_once(sqlite3 *db, stmts_t *s, hs_store_op_t *op)
{
    const struct hs_store_put_input *put = &op->in.put;
    int rc = claim_key(db, s, put, put->key, put->key_hash, put->not_before_ms, op, 1);
    if (rc == 0)
        rc = insert_message(db, s, put);
    if (rc == 0)
        hs_store_op_add_message(op, 1, put->id, put->topic, put->content, put->content_len,
                                put->author, put->created_ms);
    return rc;
}

/* A batch publish (batch.c): its messages in order; with a key, the key
 * row (as a single publish's, naming the first message) and the batch's
 * row listing every id, comma-separated, which answers a repeat. */
static int put_batch(sqlite3 *db, stmts_t *s, hs_store_op_t *op)
{
    const struct hs_store_batch_input *in = &op->in.batch;
    if (in->count == 0)
        return 0;
    int rc = 0;
    sqlite3_stmt *st;
    if (in->key) {
        rc =
            claim_key(db, s, &in->puts[0], in->key, in->key_hash, in->not_before_ms, op, in->count);
        if (rc == HS_EEXIST) { /* the rest of the original, by the ids of its row */
            st = stmt_for(db, &s->batch_get,
                          "SELECT message_ids FROM idempotency_batches WHERE `key` = ?1");
            if (st == NULL)
                return HS_EIO;
            bind_text(st, 1, in->key);
            char *ids = NULL;
            if (sqlite3_step(st) == SQLITE_ROW)
                ids = hs_strdup((const char *)sqlite3_column_text(st, 0));
            sqlite3_reset(st);
            const char *p = ids ? strchr(ids, ',') : NULL; /* the first is read */
            while (p && rc == HS_EEXIST && op->out.count < in->count) {
                char id[HS_ULID_LEN + 1];
                snprintf(id, sizeof(id), "%.*s", HS_ULID_LEN, p + 1);
                if (read_message_w(db, s, id, op, in->count) != 0)
                    rc = HS_EIO;
                p = strchr(p + 1, ',');
            }
            hs_free(ids);
        }
        if (rc != 0)
            return rc;
    }
    for (size_t i = 0; i < in->count && rc == 0; i++)
        rc = insert_message(db, s, &in->puts[i]);
    if (rc != 0 || in->key == NULL)
        return rc;
    char *ids = hs_malloc(in->count * (HS_ULID_LEN + 1));
    for (size_t i = 0; i < in->count; i++) {
        memcpy(ids + i * (HS_ULID_LEN + 1), in->puts[i].id, HS_ULID_LEN);
        ids[i * (HS_ULID_LEN + 1) + HS_ULID_LEN] = i + 1 < in->count ? ',' : '\0';
    }
    st = stmt_for(db, &s->batch_put,
                  "INSERT OR REPLACE INTO idempotency_batches (`key`, message_ids, created_at) "
                  "VALUES (?1, ?2, ?3)");
    if (st == NULL) {
        hs_free(ids);
        return HS_EIO;
    }
    bind_text(st, 1, in->key);
    bind_text(st, 2, ids);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)in->puts[0].created_ms);
    rc = run_done(st);
    hs_free(ids);
    return rc;
}

static int do_write(sqlite3 *db, stmts_t *s, hs_store_op_t *op)
{
    sqlite3_stmt *st;
    int rc;
    switch (op->kind) {
    case HS_OP_PUT_MESSAGE:
        return insert_message(db, s, &op->in.put);
    case HS_OP_PUT_MESSAGE_ONCE:
        return put_message_once(db, s, op);
    case HS_OP_PUT_BATCH:
        return put_batch(db, s, op);
    case HS_OP_PURGE_KEYS:
        st = stmt_for(db, &s->batch_purge, "DELETE FROM idempotency_batches WHERE created_at < ?1");
        if (st == NULL)
            return HS_EIO;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)op->in.purge.before_ms);
        if (run_done(st) != 0)
            return HS_EIO;
        st = stmt_for(db, &s->key_purge, "DELETE FROM idempotency_keys WHERE created_at < ?1");
        if (st == NULL)
            return HS_EIO;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)op->in.purge.before_ms);
        rc = run_done(st);
        op->out.count = rc == 0 ? (size_t)sqlite3_changes(db) : 0;
        return rc;
    case HS_OP_ADD_SUBSCRIPTION:
        st = stmt_for(db, &s->add_sub,
                      "INSERT INTO subscriptions (connection_id, topic, created_at) "
                      "VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING");
        if (st == NULL)
            return HS_EIO;
        bind_text(st, 1, op->in.subscription.connection_id);
        bind_text(st, 2, op->in.subscription.topic);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)op->in.subscription.now_ms);
        if (run_done(st) != 0)
            return HS_EIO;
        if (sqlite3_changes(db) == 1) {
            op->out.created_ms = op->in.subscription.now_ms;
            return 0;
        }
        st = stmt_for(db, &s->get_sub_created,
                      "SELECT created_at FROM subscriptions WHERE connection_id = ?1 AND "
                      "topic = ?2");
        if (st == NULL)
            return HS_EIO;
        bind_text(st, 1, op->in.subscription.connection_id);
        bind_text(st, 2, op->in.subscription.topic);
        rc = sqlite3_step(st);
        op->out.created_ms =
            rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : op->in.subscription.now_ms;
        sqlite3_reset(st);
        return rc == SQLITE_ROW ? HS_EEXIST : HS_EIO;
    case HS_OP_REMOVE_SUBSCRIPTION:
        if (op->in.subscription.topic)
            rc = run_texts(db, &s->remove_sub,
                           "DELETE FROM subscriptions WHERE connection_id = ?1 AND topic = ?2",
                           op->in.subscription.connection_id, op->in.subscription.topic);
        else
            rc =
                run_texts(db, &s->remove_subs, "DELETE FROM subscriptions WHERE connection_id = ?1",
                          op->in.subscription.connection_id, NULL);
        op->out.count = rc == 0 ? (size_t)sqlite3_changes(db) : 0;
        return rc;
    case HS_OP_ADD_CONNECTION:
        st = stmt_for(db, &s->add_conn,
                      "INSERT OR REPLACE INTO connections (id, node, connected_at, user_sub, "
                      "address) VALUES (?1, ?2, ?3, ?4, ?5)");
        if (st == NULL)
            return HS_EIO;
        bind_text(st, 1, op->in.add_connection.connection_id);
        bind_text(st, 2, op->in.add_connection.node);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)op->in.add_connection.now_ms);
        bind_text(st, 4, op->in.add_connection.user);
        bind_text(st, 5, op->in.add_connection.address);
        return run_done(st);
    case HS_OP_GET_CONNECTION:
        st = stmt_for(db, &s->get_conn,
                      "SELECT node, connected_at, user_sub, last_ack, epoch, attached, address, "
                      "detached_at FROM "
                      "connections WHERE id = ?1");
        if (st == NULL)
            return HS_EIO;
        bind_text(st, 1, op->in.connection.connection_id);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            hs_store_connection_row_t *row = &op->out.connection;
            row->found = true;
            row->node = hs_strdup((const char *)sqlite3_column_text(st, 0));
            row->connected_ms = (uint64_t)sqlite3_column_int64(st, 1);
            if (sqlite3_column_type(st, 2) != SQLITE_NULL)
                row->user = hs_strdup((const char *)sqlite3_column_text(st, 2));
            if (sqlite3_column_type(st, 3) != SQLITE_NULL)
                row->last_ack = hs_strdup((const char *)sqlite3_column_text(st, 3));
            row->epoch = (uint64_t)sqlite3_column_int64(st, 4);
            row->attached = sqlite3_column_int64(st, 5) != 0;
            if (sqlite3_column_type(st, 6) != SQLITE_NULL)
                row->address = hs_strdup((const char *)sqlite3_column_text(st, 6));
            row->detached_ms = (uint64_t)sqlite3_column_int64(st, 7);
        }
        sqlite3_reset(st);
        if (rc != SQLITE_ROW)
            return rc == SQLITE_DONE ? 0 : HS_EIO;
        st = stmt_for(db, &s->get_conn_subs,
                      "SELECT connection_id, topic, created_at FROM subscriptions "
                      "WHERE connection_id = ?1 ORDER BY created_at, topic");
        if (st == NULL)
            return HS_EIO;
        bind_text(st, 1, op->in.connection.connection_id);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            hs_store_op_add_subscription(op, (const char *)sqlite3_column_text(st, 0),
                                         (const char *)sqlite3_column_text(st, 1),
                                         (uint64_t)sqlite3_column_int64(st, 2));
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? 0 : HS_EIO;
    case HS_OP_REMOVE_CONNECTION:
        if (run_texts(db, &s->remove_subs, "DELETE FROM subscriptions WHERE connection_id = ?1",
                      op->in.connection.connection_id, NULL) != 0)
            return HS_EIO;
        return run_texts(db, &s->remove_conn, "DELETE FROM connections WHERE id = ?1",
                         op->in.connection.connection_id, NULL);
    case HS_OP_SET_LAST_ACK:
        return run_texts(db, &s->set_ack, "UPDATE connections SET last_ack = ?2 WHERE id = ?1",
                         op->in.last_ack.connection_id, op->in.last_ack.message_id);
    case HS_OP_CLAIM_CONNECTION: {
        epoch_args_t args = {.connection_id = op->in.claim.connection_id,
                             .node = op->in.claim.node,
                             .epoch = op->in.claim.epoch,
                             .address = op->in.claim.address};
        return run_epoch_changed(
            db, &s->claim_conn,
            "UPDATE connections SET node = ?2, epoch = epoch + 1, attached = 1, "
            "address = ?4 WHERE id = ?1 AND epoch = ?3 AND attached = 0",
            &args);
    }
    case HS_OP_RELEASE_CONNECTION: {
        epoch_args_t args = {.connection_id = op->in.release.connection_id,
                             .epoch = op->in.release.epoch,
                             .detached_ms = op->in.release.detached_ms};
        return run_epoch_changed(db, &s->release_conn,
                                 "UPDATE connections SET attached = 0, detached_at = ?5 "
                                 "WHERE id = ?1 AND epoch = ?3",
                                 &args);
    }
    case HS_OP_EXPIRE_CONNECTION: {
        epoch_args_t args = {.connection_id = op->in.expire.connection_id,
                             .epoch = op->in.expire.epoch};
        if (run_epoch_changed(db, &s->expire_subs,
                              "DELETE FROM subscriptions WHERE connection_id = ?1 AND (EXISTS "
                              "(SELECT 1 FROM connections WHERE id = ?1 AND epoch = ?3 AND "
                              "attached = 0) OR NOT EXISTS (SELECT 1 FROM connections WHERE "
                              "id = ?1))",
                              &args) == HS_EIO)
            return HS_EIO;
        return run_epoch_changed(db, &s->expire_conn,
                                 "DELETE FROM connections WHERE id = ?1 AND epoch = ?3 AND "
                                 "attached = 0",
                                 &args);
    }
    case HS_OP_REMOVE_NODE:
        if (run_texts(db, &s->remove_node_subs,
                      "DELETE FROM subscriptions WHERE connection_id IN "
                      "(SELECT id FROM connections WHERE node = ?1)",
                      op->in.node.node, NULL) != 0)
            return HS_EIO;
        rc = run_texts(db, &s->remove_node_conns, "DELETE FROM connections WHERE node = ?1",
                       op->in.node.node, NULL);
        op->out.count = rc == 0 ? (size_t)sqlite3_changes(db) : 0;
        return rc;
    default:
        return HS_EINVAL;
    }
}

/* ---- reads (reader thread) ---------------------------------------------- */

static int collect_messages(sqlite3_stmt *st, hs_store_op_t *op, size_t limit)
{
    int rc = SQLITE_DONE;
    size_t bytes = 0, max_bytes = op->kind == HS_OP_LIST_MESSAGES ? op->in.list.query.max_bytes : 0;
    while (op->out.count < limit && (max_bytes == 0 || bytes < max_bytes) &&
           (rc = sqlite3_step(st)) == SQLITE_ROW) {
        bytes += (size_t)sqlite3_column_bytes(st, 2);
        hs_store_op_add_message(
            op, limit, (const char *)sqlite3_column_text(st, 0),
            (const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2),
            (size_t)sqlite3_column_bytes(st, 2), (const char *)sqlite3_column_text(st, 3),
            (uint64_t)sqlite3_column_int64(st, 4));
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : HS_EIO;
}

static int do_read(sqlite3 *db, stmts_t *s, hs_store_op_t *op)
{
    sqlite3_stmt *st;
    switch (op->kind) {
    case HS_OP_GET_MESSAGE:
        st = stmt_for(db, &s->get_message,
                      "SELECT id, topic, content, author, created_at FROM messages WHERE id = ?1");
        if (st == NULL)
            return HS_EIO;
        bind_text(st, 1, op->in.message.id);
        if (collect_messages(st, op, 1) != 0)
            return HS_EIO;
        return op->out.count == 1 ? 0 : HS_ENOTFOUND;
    case HS_OP_LIST_MESSAGES: {
        const hs_history_query_t *query = &op->in.list.query;
        bool forward = query->forward;
        if (forward)
            st = stmt_for(db, &s->list_forward,
                          "SELECT id, topic, content, author, created_at FROM messages "
                          "WHERE topic = ?1 AND id > ?2 ORDER BY id ASC LIMIT ?3");
        else
            st = stmt_for(db, &s->list_backward,
                          "SELECT id, topic, content, author, created_at FROM messages "
                          "WHERE topic = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3");
        if (st == NULL)
            return HS_EIO;
        bind_text(st, 1, op->in.list.topic);
        /* Without a cursor, start below every id ("") or above ("Z"; ids
         * start with 0-7). */
        bind_text(st, 2, query->has_cursor ? op->in.list.cursor : forward ? "" : "Z");
        sqlite3_bind_int64(st, 3, query->limit);
        return collect_messages(st, op, query->limit);
    }
    case HS_OP_LIST_SUBSCRIPTIONS: {
        const char *conn = op->in.subscription.connection_id;
        const char *topic = op->in.subscription.topic;
        if (conn && topic)
            st = stmt_for(db, &s->list_subs_both,
                          "SELECT connection_id, topic, created_at FROM subscriptions "
                          "WHERE connection_id = ?1 AND topic = ?2");
        else if (conn)
            st = stmt_for(db, &s->list_subs_conn,
                          "SELECT connection_id, topic, created_at FROM subscriptions "
                          "WHERE connection_id = ?1 ORDER BY created_at, topic");
        else
            st = stmt_for(db, &s->list_subs_topic,
                          "SELECT connection_id, topic, created_at FROM subscriptions "
                          "WHERE topic = ?2 ORDER BY created_at, connection_id");
        if (st == NULL)
            return HS_EIO;
        bind_text(st, 1, conn);
        bind_text(st, 2, topic);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            hs_store_op_add_subscription(op, (const char *)sqlite3_column_text(st, 0),
                                         (const char *)sqlite3_column_text(st, 1),
                                         (uint64_t)sqlite3_column_int64(st, 2));
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? 0 : HS_EIO;
    }
    default:
        return HS_EINVAL;
    }
}

/* ---- the engine's interface --------------------------------------------- */

/* One thread's connection and its prepared statements. */
typedef struct conn {
    sqlite3 *db;
    stmts_t stmts;
    hs_sqlite_topic_stmts_t topic_stmts; /* sqlite_topics.c's */
    hs_sqlite_user_stmts_t user_stmts;   /* sqlite_users.c's */
    /* Some errors (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM) make SQLite roll
     * the whole transaction back by itself. The rest of the batch must then
     * not run: each op's SAVEPOINT would open a transaction of its own and
     * RELEASE would commit it, writing ops the batch will report as failed. */
    bool aborted;
} conn_t;

static int sq_begin(void *c)
{
    conn_t *conn = c;
    conn->aborted = false;
    return run_texts(conn->db, &conn->stmts.tx_begin, "BEGIN IMMEDIATE", NULL, NULL);
}

static int sq_commit(void *c)
{
    conn_t *conn = c;
    if (conn->aborted)
        return HS_EIO;
    return run_texts(conn->db, &conn->stmts.tx_commit, "COMMIT", NULL, NULL);
}

static void sq_rollback(void *c)
{
    sqlite3_exec(((conn_t *)c)->db, "ROLLBACK", NULL, NULL, NULL);
}

static void sq_savepoint(void *c)
{
    conn_t *conn = c;
    /* Autocommit mode inside a batch: the batch's transaction is gone. */
    if (conn->aborted || sqlite3_get_autocommit(conn->db)) {
        conn->aborted = true;
        return;
    }
    if (run_texts(conn->db, &conn->stmts.sp_begin, "SAVEPOINT op", NULL, NULL) != 0)
        conn->aborted = true; /* without it a failing op could not be undone alone */
}

static void sq_release(void *c, bool undo)
{
    conn_t *conn = c;
    sqlite3 *db = conn->db;
    if (conn->aborted)
        return;
    if (undo)
        run_texts(db, &conn->stmts.sp_undo, "ROLLBACK TO op", NULL, NULL);
    run_texts(db, &conn->stmts.sp_release, "RELEASE op", NULL, NULL);
}

static int sq_write(void *c, hs_store_op_t *op)
{
    conn_t *conn = c;
    if (conn->aborted)
        return HS_EIO;
    if (op->kind == HS_OP_SET_TOPIC || op->kind == HS_OP_PRUNE ||
        op->kind == HS_OP_DELETE_MESSAGE || op->kind == HS_OP_DELETE_TOPIC)
        return hs_sqlite_topics_write(conn->db, &conn->topic_stmts, op);
    if (op->kind == HS_OP_USER_CONNECTIONS)
        return hs_sqlite_users_read(conn->db, &conn->user_stmts, op);
    return do_write(conn->db, &conn->stmts, op);
}

/* The topic sequences (engine.h): BEGIN IMMEDIATE holds the one write lock. */
static int sq_sequence_get(void *c, const char *topic, char last[HS_ULID_LEN + 1])
{
    conn_t *conn = c;
    sqlite3_stmt *st = stmt_for(conn->db, &conn->stmts.seq_get,
                                "SELECT last_id FROM topic_sequences WHERE topic = ?1");
    if (conn->aborted || st == NULL)
        return HS_EIO;
    bind_text(st, 1, topic);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        snprintf(last, HS_ULID_LEN + 1, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? HS_ENOTFOUND : HS_EIO;
}

static int sq_sequence_create(void *c, const char *topic)
{
    conn_t *conn = c; /* outside a transaction (autocommit): engine.h */
    return run_texts(conn->db, &conn->stmts.seq_create,
                     "INSERT INTO topic_sequences (topic, last_id) SELECT ?1, COALESCE(MAX(id), "
                     "'') FROM messages WHERE topic = ?1 ON CONFLICT DO NOTHING",
                     topic, NULL);
}

static int sq_sequence_set(void *c, const char *topic, const char *id)
{
    conn_t *conn = c;
    if (conn->aborted) /* the batch's transaction is gone: this would commit alone */
        return HS_EIO;
    return run_texts(conn->db, &conn->stmts.seq_set,
                     "UPDATE topic_sequences SET last_id = ?2 WHERE topic = ?1", topic, id);
}

/* synchronous NORMAL in WAL mode: the commit appends to the WAL without
 * a sync; the next FULL commit's sync covers those frames too. */
static void sq_set_durable(void *c, bool durable)
{
    conn_t *conn = c;
    sqlite3_exec(conn->db, durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
                 NULL, NULL, NULL);
}

static int sq_read(void *c, hs_store_op_t *op)
{
    conn_t *conn = c;
    if (op->kind == HS_OP_GET_TOPIC || op->kind == HS_OP_LIST_TOPICS)
        return hs_sqlite_topics_read(conn->db, &conn->topic_stmts, op);
    int rc = do_read(conn->db, &conn->stmts, op);
    /* After the page: a prune in between makes it say pruned, never hide it. */
    if (rc == 0 && op->kind == HS_OP_LIST_MESSAGES && op->in.list.want_pruned)
        rc = hs_sqlite_topics_horizon(conn->db, &conn->topic_stmts, op);
    return rc;
}

static const char *sq_error(void *c)
{
    return sqlite3_errmsg(((conn_t *)c)->db);
}

static void sq_close(void *c)
{
    conn_t *conn = c;
    finalize_all(&conn->stmts);
    hs_sqlite_topics_finalize(&conn->topic_stmts);
    hs_sqlite_users_finalize(&conn->user_stmts);
    if (sqlite3_close(conn->db) != SQLITE_OK)
        hs_log_error("store: closing the database left statements open");
    hs_free(conn);
}

static const hs_store_backend_t sqlite_backend = {
    .name = "sqlite",
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .savepoint = sq_savepoint,
    .release = sq_release,
    .sequence_get = sq_sequence_get,
    .sequence_create = sq_sequence_create,
    .sequence_set = sq_sequence_set,
    .set_durable = sq_set_durable,
    .clock_ms = NULL, /* one process: the caller's clock is the only one */
    .write = sq_write,
    .read = sq_read,
    .error = sq_error,
    .close = sq_close,
};

static conn_t *conn_new(sqlite3 *db)
{
    conn_t *conn = hs_calloc(1, sizeof(*conn));
    conn->db = db;
    return conn;
}

int hs_store_sqlite_open(uv_loop_t *loop, const char *path, const hs_store_options_t *options,
                         hs_store_t **out, char *err, size_t err_len)
{
    sqlite3 *writer_db = NULL, *reader_db = NULL;
    int rc = open_db(path, false, &writer_db, err, err_len);
    if (rc == 0)
        rc = hs_sqlite_migrate(writer_db, path, err, err_len);
    if (rc == 0)
        rc = open_db(path, true, &reader_db, err, err_len);
    if (rc != 0) {
        sqlite3_close(writer_db);
        sqlite3_close(reader_db);
        return rc;
    }
    *out = hs_store_engine_start(loop, &sqlite_backend, conn_new(writer_db), conn_new(reader_db),
                                 options);
    hs_log_info("store: sqlite database %s open", path);
    return 0;
}
