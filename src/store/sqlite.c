/* sqlite.c - the store on SQLite, off the event loop.
 *
 * Two threads, each with its own connection: a writer that takes every
 * queued write (up to batch_max) and commits them in one transaction - one
 * fsync for the whole batch - and a reader for queries (WAL lets it read
 * while the writer writes). Finished operations go to a completion queue
 * and a uv_async wakes the loop, which runs their callbacks in completion
 * order; the writer completes in issue order, so write callbacks keep it.
 *
 * Durability: journal_mode=WAL with synchronous=FULL: a write whose callback
 * reported success survives a process crash and a power loss. Each write is
 * inside a savepoint, so a failing write leaves nothing behind while the
 * rest of its batch commits. */
#include "store/sqlite.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"

typedef enum op_kind {
    OP_PUT_MESSAGE,
    OP_ADD_SUBSCRIPTION,
    OP_REMOVE_SUBSCRIPTION,
    OP_ADD_CONNECTION,
    OP_REMOVE_CONNECTION,
    OP_REMOVE_NODE,
    OP_GET_MESSAGE,
    OP_LIST_MESSAGES,
    OP_LIST_SUBSCRIPTIONS,
    OP_STOP, /* ends a worker thread */
} op_kind_t;

typedef struct op {
    struct op *next;
    op_kind_t kind;
    int status;
    union {
        hs_store_done_cb done;
        hs_store_message_cb message;
        hs_store_messages_cb messages;
        hs_store_subscriptions_cb subscriptions;
        hs_store_subscribe_cb subscribe;
        hs_store_count_cb count;
    } cb;
    void *data;
    /* inputs (copies) */
    char *a; /* id / connection id / topic (see op) */
    char *b; /* topic / node / author */
    char *c; /* content */
    size_t c_len;
    uint64_t ms;
    hs_history_query_t query;
    char cursor[HS_ULID_LEN + 1];
    /* outputs */
    hs_message_t *msgs;
    hs_subscription_t *subs;
    size_t count;
    uint64_t created_ms;
} op_t;

typedef struct queue {
    op_t *head, **tail;
} queue_t;

typedef struct worker {
    struct sqlite_store *store;
    uv_thread_t thread;
    sqlite3 *db;
    queue_t queue;
    uv_cond_t cond;
    bool is_writer;
    bool running;
} worker_t;

typedef struct sqlite_store {
    hs_store_t base;
    char *path;
    unsigned batch_max;
    uv_mutex_t lock; /* guards both queues, the completion queue and closing */
    worker_t writer, reader;
    queue_t done;
    uv_async_t async;
    bool closing;
    int workers_stopped;
    hs_store_done_cb close_cb;
    void *close_data;
} sqlite_store_t;

static void queue_init(queue_t *q)
{
    q->head = NULL;
    q->tail = &q->head;
}

static void queue_push(queue_t *q, op_t *op)
{
    op->next = NULL;
    *q->tail = op;
    q->tail = &op->next;
}

/* ---- schema ----------------------------------------------------------- */

/* Migrations, applied in order, each once: PRAGMA user_version counts them. */
static const char *const migrations[] = {
    /* 1: messages, connections, subscriptions */
    "CREATE TABLE messages ("
    "  id TEXT PRIMARY KEY,"
    "  topic TEXT NOT NULL,"
    "  content TEXT NOT NULL,"
    "  author TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX messages_topic_id ON messages (topic, id);"
    "CREATE TABLE connections ("
    "  id TEXT PRIMARY KEY,"
    "  node TEXT NOT NULL,"
    "  connected_at INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX connections_node ON connections (node);"
    "CREATE TABLE subscriptions ("
    "  connection_id TEXT NOT NULL,"
    "  topic TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (connection_id, topic)"
    ") WITHOUT ROWID;"
    "CREATE INDEX subscriptions_topic ON subscriptions (topic, connection_id);",
};

static int exec(sqlite3 *db, const char *sql, char *err, size_t err_len)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, err_len, "%s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return HS_EIO;
    }
    return 0;
}

static int migrate(sqlite3 *db, const char *path, char *err, size_t err_len)
{
    sqlite3_stmt *stmt;
    int version = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, NULL) == SQLITE_OK) {
        if (sqlite3_step(stmt) == SQLITE_ROW)
            version = sqlite3_column_int(stmt, 0);
        sqlite3_finalize(stmt);
    }
    int latest = (int)(sizeof(migrations) / sizeof(migrations[0]));
    if (version > latest) {
        snprintf(err, err_len, "database '%s' has schema version %d, newer than this houston (%d)",
                 path, version, latest);
        return HS_EINVAL;
    }
    for (int v = version; v < latest; v++) {
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
        char reason[256];
        if (exec(db, "BEGIN IMMEDIATE", reason, sizeof(reason)) != 0 ||
            exec(db, migrations[v], reason, sizeof(reason)) != 0 ||
            exec(db, sql, reason, sizeof(reason)) != 0 ||
            exec(db, "COMMIT", reason, sizeof(reason)) != 0) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            snprintf(err, err_len, "migrating '%s' to schema version %d failed: %s", path, v + 1,
                     reason);
            return HS_EIO;
        }
        hs_log_info("store: %s migrated to schema version %d", path, v + 1);
    }
    return 0;
}

static int open_db(const char *path, bool read_only, sqlite3 **out, char *err, size_t err_len)
{
    int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    flags |= SQLITE_OPEN_NOMUTEX; /* each connection belongs to one thread */
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, err_len, "cannot open sqlite database '%s': %s", path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return HS_EIO;
    }
    sqlite3_busy_timeout(db, 5000);
    char reason[256];
    const char *pragmas = read_only ? "PRAGMA query_only = ON;"
                                    : "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;";
    if (exec(db, pragmas, reason, sizeof(reason)) != 0) {
        snprintf(err, err_len, "cannot use sqlite database '%s': %s", path, reason);
        sqlite3_close(db);
        return HS_EIO;
    }
    *out = db;
    return 0;
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
        *list_backward, *list_subs_conn, *list_subs_topic, *list_subs_both;
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

/* ---- writes (writer thread) --------------------------------------------- */

static int do_write(sqlite3 *db, stmts_t *s, op_t *op)
{
    sqlite3_stmt *st;
    int rc;
    switch (op->kind) {
    case OP_PUT_MESSAGE:
        st = stmt_for(db, &s->put_message,
                      "INSERT INTO messages (id, topic, content, author, created_at) "
                      "VALUES (?1, ?2, ?3, ?4, ?5)");
        if (st == NULL)
            return HS_EIO;
        bind_text(st, 1, op->a);
        bind_text(st, 2, op->b);
        sqlite3_bind_text(st, 3, op->c, (int)op->c_len, SQLITE_STATIC);
        bind_text(st, 4, op->c + op->c_len + 1); /* the author follows the content */
        sqlite3_bind_int64(st, 5, (sqlite3_int64)op->ms);
        return run_done(st);
    case OP_ADD_SUBSCRIPTION:
        st = stmt_for(db, &s->add_sub,
                      "INSERT INTO subscriptions (connection_id, topic, created_at) "
                      "VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING");
        if (st == NULL)
            return HS_EIO;
        bind_text(st, 1, op->a);
        bind_text(st, 2, op->b);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)op->ms);
        if (run_done(st) != 0)
            return HS_EIO;
        if (sqlite3_changes(db) == 1) {
            op->created_ms = op->ms;
            return 0;
        }
        st = stmt_for(db, &s->get_sub_created,
                      "SELECT created_at FROM subscriptions WHERE connection_id = ?1 AND "
                      "topic = ?2");
        if (st == NULL)
            return HS_EIO;
        bind_text(st, 1, op->a);
        bind_text(st, 2, op->b);
        rc = sqlite3_step(st);
        op->created_ms = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : op->ms;
        sqlite3_reset(st);
        return rc == SQLITE_ROW ? HS_EEXIST : HS_EIO;
    case OP_REMOVE_SUBSCRIPTION:
        if (op->b)
            st = stmt_for(db, &s->remove_sub,
                          "DELETE FROM subscriptions WHERE connection_id = ?1 AND topic = ?2");
        else
            st =
                stmt_for(db, &s->remove_subs, "DELETE FROM subscriptions WHERE connection_id = ?1");
        if (st == NULL)
            return HS_EIO;
        bind_text(st, 1, op->a);
        bind_text(st, 2, op->b);
        rc = run_done(st);
        op->count = rc == 0 ? (size_t)sqlite3_changes(db) : 0;
        return rc;
    case OP_ADD_CONNECTION:
        st = stmt_for(db, &s->add_conn,
                      "INSERT OR REPLACE INTO connections (id, node, connected_at) "
                      "VALUES (?1, ?2, ?3)");
        if (st == NULL)
            return HS_EIO;
        bind_text(st, 1, op->a);
        bind_text(st, 2, op->b);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)op->ms);
        return run_done(st);
    case OP_REMOVE_CONNECTION:
        st = stmt_for(db, &s->remove_subs, "DELETE FROM subscriptions WHERE connection_id = ?1");
        if (st == NULL)
            return HS_EIO;
        bind_text(st, 1, op->a);
        if (run_done(st) != 0)
            return HS_EIO;
        st = stmt_for(db, &s->remove_conn, "DELETE FROM connections WHERE id = ?1");
        if (st == NULL)
            return HS_EIO;
        bind_text(st, 1, op->a);
        return run_done(st);
    case OP_REMOVE_NODE:
        st = stmt_for(db, &s->remove_node_subs,
                      "DELETE FROM subscriptions WHERE connection_id IN "
                      "(SELECT id FROM connections WHERE node = ?1)");
        if (st == NULL)
            return HS_EIO;
        bind_text(st, 1, op->a);
        if (run_done(st) != 0)
            return HS_EIO;
        st = stmt_for(db, &s->remove_node_conns, "DELETE FROM connections WHERE node = ?1");
        if (st == NULL)
            return HS_EIO;
        bind_text(st, 1, op->a);
        rc = run_done(st);
        op->count = rc == 0 ? (size_t)sqlite3_changes(db) : 0;
        return rc;
    default:
        return HS_EINVAL;
    }
}

/* ---- reads (reader thread) ---------------------------------------------- */

static void row_to_message(sqlite3_stmt *st, hs_message_t *m)
{
    const char *id = (const char *)sqlite3_column_text(st, 0);
    snprintf(m->id, sizeof(m->id), "%s", id ? id : "");
    m->topic = hs_strdup((const char *)sqlite3_column_text(st, 1));
    const char *content = (const char *)sqlite3_column_text(st, 2);
    m->content_len = (size_t)sqlite3_column_bytes(st, 2);
    m->content = hs_strndup(content ? content : "", m->content_len);
    m->author = hs_strdup((const char *)sqlite3_column_text(st, 3));
    m->created_ms = (uint64_t)sqlite3_column_int64(st, 4);
}

static int collect_messages(sqlite3_stmt *st, op_t *op, size_t limit)
{
    op->msgs = hs_calloc(limit ? limit : 1, sizeof(hs_message_t));
    int rc;
    while (op->count < limit && (rc = sqlite3_step(st)) == SQLITE_ROW)
        row_to_message(st, &op->msgs[op->count++]);
    sqlite3_reset(st);
    return 0;
}

static int do_read(sqlite3 *db, stmts_t *s, op_t *op)
{
    sqlite3_stmt *st;
    switch (op->kind) {
    case OP_GET_MESSAGE:
        st = stmt_for(db, &s->get_message,
                      "SELECT id, topic, content, author, created_at FROM messages WHERE id = ?1");
        if (st == NULL)
            return HS_EIO;
        bind_text(st, 1, op->a);
        collect_messages(st, op, 1);
        return op->count == 1 ? 0 : HS_ENOTFOUND;
    case OP_LIST_MESSAGES: {
        bool forward = op->query.forward;
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
        bind_text(st, 1, op->a);
        /* Without a cursor, start below every id ("") or above ("Z"; ids
         * start with 0-7). */
        bind_text(st, 2, op->query.has_cursor ? op->cursor : forward ? "" : "Z");
        sqlite3_bind_int64(st, 3, op->query.limit);
        return collect_messages(st, op, op->query.limit);
    }
    case OP_LIST_SUBSCRIPTIONS: {
        if (op->a && op->b)
            st = stmt_for(db, &s->list_subs_both,
                          "SELECT connection_id, topic, created_at FROM subscriptions "
                          "WHERE connection_id = ?1 AND topic = ?2");
        else if (op->a)
            st = stmt_for(db, &s->list_subs_conn,
                          "SELECT connection_id, topic, created_at FROM subscriptions "
                          "WHERE connection_id = ?1 ORDER BY created_at, topic");
        else
            st = stmt_for(db, &s->list_subs_topic,
                          "SELECT connection_id, topic, created_at FROM subscriptions "
                          "WHERE topic = ?2 ORDER BY created_at, connection_id");
        if (st == NULL)
            return HS_EIO;
        bind_text(st, 1, op->a);
        bind_text(st, 2, op->b);
        size_t cap = 16;
        op->subs = hs_malloc(cap * sizeof(hs_subscription_t));
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            if (op->count == cap) {
                cap *= 2;
                op->subs = hs_realloc(op->subs, cap * sizeof(hs_subscription_t));
            }
            hs_subscription_t *sub = &op->subs[op->count++];
            snprintf(sub->connection_id, sizeof(sub->connection_id), "%s",
                     (const char *)sqlite3_column_text(st, 0));
            sub->topic = hs_strdup((const char *)sqlite3_column_text(st, 1));
            sub->created_ms = (uint64_t)sqlite3_column_int64(st, 2);
        }
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? 0 : HS_EIO;
    }
    default:
        return HS_EINVAL;
    }
}

/* ---- worker threads ----------------------------------------------------- */

static void complete(sqlite_store_t *store, op_t *ops)
{
    uv_mutex_lock(&store->lock);
    while (ops) {
        op_t *next = ops->next;
        queue_push(&store->done, ops);
        ops = next;
    }
    uv_mutex_unlock(&store->lock);
    uv_async_send(&store->async);
}

static void run_batch(worker_t *w, stmts_t *s, op_t *batch)
{
    sqlite3 *db = w->db;
    if (!w->is_writer) {
        for (op_t *op = batch; op; op = op->next)
            op->status = do_read(db, s, op);
        return;
    }
    char err[256];
    if (exec(db, "BEGIN IMMEDIATE", err, sizeof(err)) != 0) {
        hs_log_error("store: cannot begin a transaction: %s", err);
        for (op_t *op = batch; op; op = op->next)
            op->status = HS_EIO;
        return;
    }
    for (op_t *op = batch; op; op = op->next) {
        sqlite3_exec(db, "SAVEPOINT op", NULL, NULL, NULL);
        op->status = do_write(db, s, op);
        if (op->status != 0 && op->status != HS_EEXIST) {
            hs_log_error("store: write failed: %s", sqlite3_errmsg(db));
            sqlite3_exec(db, "ROLLBACK TO op", NULL, NULL, NULL);
        }
        sqlite3_exec(db, "RELEASE op", NULL, NULL, NULL);
    }
    if (exec(db, "COMMIT", err, sizeof(err)) != 0) {
        hs_log_error("store: commit failed: %s", err);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        for (op_t *op = batch; op; op = op->next)
            op->status = HS_EIO;
    }
}

static void worker_main(void *arg)
{
    worker_t *w = arg;
    sqlite_store_t *store = w->store;
    stmts_t stmts;
    memset(&stmts, 0, sizeof(stmts));
    unsigned max = w->is_writer ? store->batch_max : 16;
    for (;;) {
        uv_mutex_lock(&store->lock);
        while (w->queue.head == NULL)
            uv_cond_wait(&w->cond, &store->lock);
        /* Take up to max ops; a STOP op ends the batch and the thread. */
        op_t *batch = w->queue.head;
        op_t *last = batch;
        unsigned n = 1;
        bool stop = batch->kind == OP_STOP;
        while (!stop && last->next && n < max && last->next->kind != OP_STOP) {
            last = last->next;
            n++;
        }
        if (stop) {
            w->queue.head = batch->next;
            batch->next = NULL;
        } else {
            w->queue.head = last->next;
            last->next = NULL;
        }
        if (w->queue.head == NULL)
            w->queue.tail = &w->queue.head;
        uv_mutex_unlock(&store->lock);
        if (stop) {
            finalize_all(&stmts);
            if (sqlite3_close(w->db) != SQLITE_OK)
                hs_log_error("store: closing the database left statements open");
            w->db = NULL;
            complete(store, batch);
            return;
        }
        run_batch(w, &stmts, batch);
        complete(store, batch);
    }
}

/* ---- the loop side ------------------------------------------------------ */

static void op_free(op_t *op)
{
    if (op->msgs) {
        for (size_t i = 0; i < op->count; i++) {
            hs_free((char *)op->msgs[i].topic);
            hs_free((char *)op->msgs[i].content);
            hs_free((char *)op->msgs[i].author);
        }
        hs_free(op->msgs);
    }
    if (op->subs) {
        for (size_t i = 0; i < op->count; i++)
            hs_free((char *)op->subs[i].topic);
        hs_free(op->subs);
    }
    hs_free(op->a);
    hs_free(op->b);
    hs_free(op->c);
    hs_free(op);
}

static void async_closed_cb(uv_handle_t *handle)
{
    sqlite_store_t *store = handle->data;
    hs_store_done_cb cb = store->close_cb;
    void *data = store->close_data;
    uv_mutex_destroy(&store->lock);
    uv_cond_destroy(&store->writer.cond);
    uv_cond_destroy(&store->reader.cond);
    hs_free(store->path);
    hs_free(store);
    if (cb)
        cb(0, data);
}

static void run_callback(op_t *op)
{
    switch (op->kind) {
    case OP_PUT_MESSAGE:
    case OP_ADD_CONNECTION:
    case OP_REMOVE_CONNECTION:
        if (op->cb.done)
            op->cb.done(op->status, op->data);
        break;
    case OP_ADD_SUBSCRIPTION:
        if (op->cb.subscribe)
            op->cb.subscribe(op->status, op->created_ms, op->data);
        break;
    case OP_REMOVE_SUBSCRIPTION:
    case OP_REMOVE_NODE:
        if (op->cb.count)
            op->cb.count(op->status, op->count, op->data);
        break;
    case OP_GET_MESSAGE:
        op->cb.message(op->status, op->status == 0 ? &op->msgs[0] : NULL, op->data);
        break;
    case OP_LIST_MESSAGES:
        op->cb.messages(op->status, op->msgs, op->status == 0 ? op->count : 0, op->data);
        break;
    case OP_LIST_SUBSCRIPTIONS:
        op->cb.subscriptions(op->status, op->subs, op->status == 0 ? op->count : 0, op->data);
        break;
    case OP_STOP:
        break;
    }
}

static void async_cb(uv_async_t *async)
{
    sqlite_store_t *store = async->data;
    uv_mutex_lock(&store->lock);
    op_t *op = store->done.head;
    queue_init(&store->done);
    uv_mutex_unlock(&store->lock);
    while (op) {
        op_t *next = op->next;
        if (op->kind == OP_STOP) {
            store->workers_stopped++;
        } else {
            run_callback(op);
        }
        op_free(op);
        op = next;
    }
    if (store->closing && store->workers_stopped == 2 && !uv_is_closing((uv_handle_t *)async)) {
        uv_thread_join(&store->writer.thread);
        uv_thread_join(&store->reader.thread);
        uv_close((uv_handle_t *)async, async_closed_cb);
    }
}

static void submit(sqlite_store_t *store, op_t *op, bool write)
{
    uv_mutex_lock(&store->lock);
    if (store->closing) {
        /* Still never inside the call: through the completion queue. */
        op->status = HS_ECLOSED;
        queue_push(&store->done, op);
        uv_mutex_unlock(&store->lock);
        uv_async_send(&store->async);
        return;
    }
    worker_t *w = write ? &store->writer : &store->reader;
    queue_push(&w->queue, op);
    uv_cond_signal(&w->cond);
    uv_mutex_unlock(&store->lock);
}

static op_t *op_new(op_kind_t kind, void *data)
{
    op_t *op = hs_calloc(1, sizeof(*op));
    op->kind = kind;
    op->data = data;
    return op;
}

static char *dup_or_null(const char *s)
{
    return s ? hs_strdup(s) : NULL;
}

static void sq_put_message(hs_store_t *s, const hs_message_t *msg, hs_store_done_cb cb, void *data)
{
    op_t *op = op_new(OP_PUT_MESSAGE, data);
    op->cb.done = cb;
    op->a = hs_strdup(msg->id);
    op->b = hs_strdup(msg->topic);
    /* content, NUL, author, NUL in one allocation */
    size_t author_len = strlen(msg->author);
    op->c = hs_malloc(msg->content_len + 1 + author_len + 1);
    memcpy(op->c, msg->content, msg->content_len);
    op->c[msg->content_len] = '\0';
    memcpy(op->c + msg->content_len + 1, msg->author, author_len + 1);
    op->c_len = msg->content_len;
    op->ms = msg->created_ms;
    submit((sqlite_store_t *)s, op, true);
}

static void sq_get_message(hs_store_t *s, const char *id, hs_store_message_cb cb, void *data)
{
    op_t *op = op_new(OP_GET_MESSAGE, data);
    op->cb.message = cb;
    op->a = hs_strdup(id);
    submit((sqlite_store_t *)s, op, false);
}

static void sq_list_messages(hs_store_t *s, const hs_history_query_t *query,
                             hs_store_messages_cb cb, void *data)
{
    op_t *op = op_new(OP_LIST_MESSAGES, data);
    op->cb.messages = cb;
    op->query = *query;
    op->a = hs_strdup(query->topic);
    op->query.topic = NULL;
    if (query->has_cursor)
        hs_ulid_format(&query->cursor, op->cursor);
    submit((sqlite_store_t *)s, op, false);
}

static void sq_add_subscription(hs_store_t *s, const char *conn, const char *topic, uint64_t now_ms,
                                hs_store_subscribe_cb cb, void *data)
{
    op_t *op = op_new(OP_ADD_SUBSCRIPTION, data);
    op->cb.subscribe = cb;
    op->a = hs_strdup(conn);
    op->b = hs_strdup(topic);
    op->ms = now_ms;
    submit((sqlite_store_t *)s, op, true);
}

static void sq_remove_subscription(hs_store_t *s, const char *conn, const char *topic,
                                   hs_store_count_cb cb, void *data)
{
    op_t *op = op_new(OP_REMOVE_SUBSCRIPTION, data);
    op->cb.count = cb;
    op->a = hs_strdup(conn);
    op->b = dup_or_null(topic);
    submit((sqlite_store_t *)s, op, true);
}

static void sq_list_subscriptions(hs_store_t *s, const char *conn, const char *topic,
                                  hs_store_subscriptions_cb cb, void *data)
{
    op_t *op = op_new(OP_LIST_SUBSCRIPTIONS, data);
    op->cb.subscriptions = cb;
    op->a = dup_or_null(conn);
    op->b = dup_or_null(topic);
    submit((sqlite_store_t *)s, op, false);
}

static void sq_add_connection(hs_store_t *s, const char *conn, const char *node, uint64_t now_ms,
                              hs_store_done_cb cb, void *data)
{
    op_t *op = op_new(OP_ADD_CONNECTION, data);
    op->cb.done = cb;
    op->a = hs_strdup(conn);
    op->b = hs_strdup(node);
    op->ms = now_ms;
    submit((sqlite_store_t *)s, op, true);
}

static void sq_remove_connection(hs_store_t *s, const char *conn, hs_store_done_cb cb, void *data)
{
    op_t *op = op_new(OP_REMOVE_CONNECTION, data);
    op->cb.done = cb;
    op->a = hs_strdup(conn);
    submit((sqlite_store_t *)s, op, true);
}

static void sq_remove_node(hs_store_t *s, const char *node, hs_store_count_cb cb, void *data)
{
    op_t *op = op_new(OP_REMOVE_NODE, data);
    op->cb.count = cb;
    op->a = hs_strdup(node);
    submit((sqlite_store_t *)s, op, true);
}

static void sq_close(hs_store_t *s, hs_store_done_cb cb, void *data)
{
    sqlite_store_t *store = (sqlite_store_t *)s;
    uv_mutex_lock(&store->lock);
    if (store->closing) {
        uv_mutex_unlock(&store->lock);
        return;
    }
    /* Each worker finishes what is queued before its STOP. */
    queue_push(&store->writer.queue, op_new(OP_STOP, NULL));
    queue_push(&store->reader.queue, op_new(OP_STOP, NULL));
    uv_cond_signal(&store->writer.cond);
    uv_cond_signal(&store->reader.cond);
    store->closing = true;
    store->close_cb = cb;
    store->close_data = data;
    uv_mutex_unlock(&store->lock);
}

static const hs_store_ops_t sqlite_ops = {
    .name = "sqlite",
    .put_message = sq_put_message,
    .get_message = sq_get_message,
    .list_messages = sq_list_messages,
    .add_subscription = sq_add_subscription,
    .remove_subscription = sq_remove_subscription,
    .list_subscriptions = sq_list_subscriptions,
    .add_connection = sq_add_connection,
    .remove_connection = sq_remove_connection,
    .remove_node = sq_remove_node,
    .close = sq_close,
};

int hs_store_sqlite_open(uv_loop_t *loop, const char *path, const hs_store_options_t *options,
                         hs_store_t **out, char *err, size_t err_len)
{
    sqlite3 *writer_db = NULL, *reader_db = NULL;
    int rc = open_db(path, false, &writer_db, err, err_len);
    if (rc == 0)
        rc = migrate(writer_db, path, err, err_len);
    if (rc == 0)
        rc = open_db(path, true, &reader_db, err, err_len);
    if (rc != 0) {
        sqlite3_close(writer_db);
        sqlite3_close(reader_db);
        return rc;
    }
    sqlite_store_t *store = hs_calloc(1, sizeof(*store));
    store->base.ops = &sqlite_ops;
    store->base.loop = loop;
    store->path = hs_strdup(path);
    store->batch_max = options->batch_max ? options->batch_max : 512;
    uv_mutex_init(&store->lock);
    queue_init(&store->done);
    worker_t *workers[] = {&store->writer, &store->reader};
    sqlite3 *dbs[] = {writer_db, reader_db};
    for (int i = 0; i < 2; i++) {
        worker_t *w = workers[i];
        w->store = store;
        w->db = dbs[i];
        w->is_writer = i == 0;
        queue_init(&w->queue);
        uv_cond_init(&w->cond);
    }
    uv_async_init(loop, &store->async, async_cb);
    store->async.data = store;
    uv_thread_create(&store->writer.thread, worker_main, &store->writer);
    uv_thread_create(&store->reader.thread, worker_main, &store->reader);
    hs_log_info("store: sqlite database %s open", path);
    *out = &store->base;
    return 0;
}
