/* engine.c - threads, queues and completions shared by the store back-ends
 * (see engine.h). */
#include "store/engine.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"

#define READ_BATCH     16
#define PURGE_EVERY_NS (60 * 1000000000ull)
/* A batch the database aborted (deadlock) runs again up to this many times. */
#define MAX_BATCH_ATTEMPTS 5

typedef struct queue {
    hs_store_op_t *head, **tail;
} queue_t;

typedef struct worker {
    struct engine *engine;
    uv_thread_t thread;
    void *conn;
    queue_t queue;
    uv_cond_t cond;
    bool is_writer;
    bool kick; /* loop thread only: ops queued since the last wake-up */
} worker_t;

typedef struct engine {
    hs_store_t base;
    const hs_store_engine_ops_t *ops;
    unsigned batch_max;
    uv_mutex_t lock; /* guards both queues, the completion queue and closing */
    worker_t writer, reader;
    queue_t done;
    uv_async_t async;
    uv_check_t kick;     /* wakes the workers once per loop iteration */
    uv_idle_t kick_soon; /* active while a kick is due: the poll must not block */
    int handles_open;    /* async, kick, kick_soon; the engine is freed when all closed */
    bool closing;
    int workers_stopped;
    hs_store_done_cb close_cb;
    void *close_data;
    uint64_t idempotency_window_ms; /* 0: the writer purges no keys by itself */
    uint64_t next_purge_ns;         /* writer thread only (uv_hrtime) */
} engine_t;

static void queue_init(queue_t *q)
{
    q->head = NULL;
    q->tail = &q->head;
}

static void queue_push(queue_t *q, hs_store_op_t *op)
{
    op->next = NULL;
    *q->tail = op;
    q->tail = &op->next;
}

/* ---- outputs ------------------------------------------------------------ */

void hs_store_op_add_message(hs_store_op_t *op, size_t cap, const char *id, const char *topic,
                             const char *content, size_t content_len, const char *author,
                             uint64_t created_ms)
{
    if (op->msgs == NULL)
        op->msgs = hs_calloc(cap ? cap : 1, sizeof(hs_message_t));
    hs_message_t *m = &op->msgs[op->count++];
    snprintf(m->id, sizeof(m->id), "%s", id ? id : "");
    m->topic = hs_strdup(topic ? topic : "");
    m->content = hs_strndup(content ? content : "", content_len);
    m->content_len = content_len;
    m->author = hs_strdup(author ? author : "");
    m->created_ms = created_ms;
}

void hs_store_op_add_subscription(hs_store_op_t *op, const char *connection_id, const char *topic,
                                  uint64_t created_ms)
{
    /* Grows by doubling: the capacity is the next power of two >= count. */
    size_t cap = 16;
    while (cap < op->count)
        cap *= 2;
    if (op->subs == NULL)
        op->subs = hs_malloc(cap * sizeof(hs_subscription_t));
    else if (op->count == cap)
        op->subs = hs_realloc(op->subs, cap * 2 * sizeof(hs_subscription_t));
    hs_subscription_t *sub = &op->subs[op->count++];
    snprintf(sub->connection_id, sizeof(sub->connection_id), "%s",
             connection_id ? connection_id : "");
    sub->topic = hs_strdup(topic ? topic : "");
    sub->created_ms = created_ms;
}

/* Forgets what a write filled in, before its batch runs again. */
static void op_reset_outputs(hs_store_op_t *op)
{
    if (op->msgs) {
        for (size_t i = 0; i < op->count; i++) {
            hs_free((char *)op->msgs[i].topic);
            hs_free((char *)op->msgs[i].content);
            hs_free((char *)op->msgs[i].author);
        }
        hs_free(op->msgs);
        op->msgs = NULL;
    }
    if (op->subs) {
        for (size_t i = 0; i < op->count; i++)
            hs_free((char *)op->subs[i].topic);
        hs_free(op->subs);
        op->subs = NULL;
    }
    hs_free(op->out_node);
    hs_free(op->out_user);
    hs_free(op->out_ack);
    hs_free(op->out_address);
    op->out_ack = op->out_address = NULL;
    op->out_node = op->out_user = NULL;
    op->count = 0;
    op->created_ms = 0;
    op->found = false;
}

static void op_free(hs_store_op_t *op)
{
    op_reset_outputs(op);
    hs_free(op->a);
    hs_free(op->b);
    hs_free(op->key);
    hs_free(op->address);
    hs_free(op->content);
    hs_free(op);
}

/* ---- worker threads ----------------------------------------------------- */

static void complete(engine_t *e, hs_store_op_t *ops)
{
    uv_mutex_lock(&e->lock);
    while (ops) {
        hs_store_op_t *next = ops->next;
        queue_push(&e->done, ops);
        ops = next;
    }
    uv_mutex_unlock(&e->lock);
    uv_async_send(&e->async);
}

static void run_batch(worker_t *w, hs_store_op_t *batch)
{
    const hs_store_engine_ops_t *ops = w->engine->ops;
    if (!w->is_writer) {
        for (hs_store_op_t *op = batch; op; op = op->next)
            op->status = ops->read(w->conn, op);
        return;
    }
    for (int attempt = 1;; attempt++) {
        int rc = ops->begin(w->conn);
        if (rc != 0) {
            /* An unreachable server was reported once by the back-end. */
            if (rc != HS_EUNAVAIL)
                hs_log_error("store: cannot begin a transaction: %s", ops->error(w->conn));
            for (hs_store_op_t *op = batch; op; op = op->next)
                op->status = rc == HS_EAGAIN ? HS_EIO : rc;
            return;
        }
        bool again = false;
        for (hs_store_op_t *op = batch; op && !again; op = op->next) {
            if (attempt > 1)
                op_reset_outputs(op);
            ops->savepoint(w->conn);
            op->status = ops->write(w->conn, op);
            /* The database dropped the whole transaction: no release. */
            again = op->status == HS_EAGAIN;
            if (again)
                break;
            bool failed = op->status != 0 && op->status != HS_EEXIST && op->status != HS_ENOTFOUND;
            /* A reused idempotency key is the caller's mistake, not a failure. */
            bool refused = op->kind == HS_OP_PUT_MESSAGE_ONCE && op->status == HS_EINVAL;
            if (failed && !refused)
                hs_log_error("store: write failed: %s", ops->error(w->conn));
            ops->release(w->conn, failed);
        }
        rc = again ? HS_EAGAIN : ops->commit(w->conn);
        if (rc == HS_EAGAIN && attempt < MAX_BATCH_ATTEMPTS) {
            hs_log_warn("store: transaction aborted (%s); running the batch again",
                        ops->error(w->conn));
            ops->rollback(w->conn);
            continue;
        }
        if (rc != 0) {
            hs_log_error("store: commit failed: %s", ops->error(w->conn));
            ops->rollback(w->conn);
            for (hs_store_op_t *op = batch; op; op = op->next)
                op->status = rc == HS_EAGAIN ? HS_EIO : rc;
        }
        return;
    }
}

/* Writer thread: removes the expired idempotency keys when a minute has
 * passed since the last time, as a batch of its own. Expiry itself is exact
 * without it (put_message_once checks the key's age); this only bounds the
 * table. */
static void purge_if_due(worker_t *w)
{
    engine_t *e = w->engine;
    uint64_t now = uv_hrtime();
    if (e->idempotency_window_ms == 0 || now < e->next_purge_ns)
        return;
    e->next_purge_ns = now + PURGE_EVERY_NS;
    uint64_t wall = hs_now_ms();
    hs_store_op_t op = {.kind = HS_OP_PURGE_KEYS};
    op.ms = wall > e->idempotency_window_ms ? wall - e->idempotency_window_ms : 0;
    run_batch(w, &op);
    if (op.status == 0 && op.count > 0)
        hs_log_debug("store: %zu expired idempotency keys removed", op.count);
}

/* Waits for work; the writer wakes up for a due purge as well. Called and
 * returns with e->lock held; false when woken for a purge only. */
static bool wait_for_work(worker_t *w)
{
    engine_t *e = w->engine;
    while (w->queue.head == NULL) {
        if (!w->is_writer || e->idempotency_window_ms == 0) {
            uv_cond_wait(&w->cond, &e->lock);
            continue;
        }
        uint64_t now = uv_hrtime();
        if (now >= e->next_purge_ns)
            return false;
        uv_cond_timedwait(&w->cond, &e->lock, e->next_purge_ns - now);
    }
    return true;
}

static void worker_main(void *arg)
{
    worker_t *w = arg;
    engine_t *e = w->engine;
    unsigned max = w->is_writer ? e->batch_max : READ_BATCH;
    for (;;) {
        if (w->is_writer)
            purge_if_due(w);
        uv_mutex_lock(&e->lock);
        if (!wait_for_work(w)) {
            uv_mutex_unlock(&e->lock);
            continue;
        }
        /* Take up to max ops; a STOP op is taken alone and ends the thread. */
        hs_store_op_t *batch = w->queue.head;
        hs_store_op_t *last = batch;
        bool stop = batch->kind == HS_OP_STOP;
        for (unsigned n = 1; !stop && last->next && n < max && last->next->kind != HS_OP_STOP; n++)
            last = last->next;
        w->queue.head = last->next;
        last->next = NULL;
        if (w->queue.head == NULL)
            w->queue.tail = &w->queue.head;
        uv_mutex_unlock(&e->lock);
        if (stop) {
            e->ops->close(w->conn);
            w->conn = NULL;
            complete(e, batch);
            return;
        }
        run_batch(w, batch);
        complete(e, batch);
    }
}

/* ---- the loop side ------------------------------------------------------ */

static void async_closed_cb(uv_handle_t *handle)
{
    engine_t *e = handle->data;
    if (--e->handles_open > 0)
        return;
    hs_store_done_cb cb = e->close_cb;
    void *data = e->close_data;
    uv_mutex_destroy(&e->lock);
    uv_cond_destroy(&e->writer.cond);
    uv_cond_destroy(&e->reader.cond);
    hs_free(e);
    if (cb)
        cb(0, data);
}

static void run_callback(hs_store_op_t *op)
{
    switch (op->kind) {
    case HS_OP_PUT_MESSAGE_ONCE:
        if (op->cb.message)
            op->cb.message(op->status,
                           (op->status == 0 || op->status == HS_EEXIST) && op->count ? &op->msgs[0]
                                                                                     : NULL,
                           op->data);
        break;
    case HS_OP_PUT_MESSAGE:
    case HS_OP_ADD_CONNECTION:
    case HS_OP_REMOVE_CONNECTION:
    case HS_OP_SET_LAST_ACK:
    case HS_OP_CLAIM_CONNECTION:
    case HS_OP_RELEASE_CONNECTION:
    case HS_OP_EXPIRE_CONNECTION:
        if (op->cb.done)
            op->cb.done(op->status, op->data);
        break;
    case HS_OP_ADD_SUBSCRIPTION:
        if (op->cb.subscribe)
            op->cb.subscribe(op->status, op->created_ms, op->data);
        break;
    case HS_OP_REMOVE_SUBSCRIPTION:
    case HS_OP_REMOVE_NODE:
    case HS_OP_PURGE_KEYS:
        if (op->cb.count)
            op->cb.count(op->status, op->count, op->data);
        break;
    case HS_OP_GET_MESSAGE:
        if (op->status == 0 && op->count == 0)
            op->status = HS_ENOTFOUND;
        op->cb.message(op->status, op->status == 0 ? &op->msgs[0] : NULL, op->data);
        break;
    case HS_OP_LIST_MESSAGES:
        op->cb.messages(op->status, op->msgs, op->status == 0 ? op->count : 0, op->data);
        break;
    case HS_OP_LIST_SUBSCRIPTIONS:
        op->cb.subscriptions(op->status, op->subs, op->status == 0 ? op->count : 0, op->data);
        break;
    case HS_OP_GET_CONNECTION: {
        if (op->status == 0 && !op->found)
            op->status = HS_ENOTFOUND;
        hs_connection_info_t info = {.id = op->a,
                                     .node = op->out_node ? op->out_node : "",
                                     .user = op->out_user,
                                     .connected_ms = op->created_ms,
                                     .last_ack = op->out_ack,
                                     .epoch = op->out_epoch,
                                     .attached = op->out_attached,
                                     .address = op->out_address,
                                     .detached_ms = op->out_detached_ms,
                                     .subs = op->subs,
                                     .sub_count = op->subs ? op->count : 0};
        op->cb.connection(op->status, op->status == 0 ? &info : NULL, op->data);
        break;
    }
    case HS_OP_STOP:
        break;
    }
}

static void async_cb(uv_async_t *async)
{
    engine_t *e = async->data;
    uv_mutex_lock(&e->lock);
    hs_store_op_t *op = e->done.head;
    queue_init(&e->done);
    uv_mutex_unlock(&e->lock);
    while (op) {
        hs_store_op_t *next = op->next;
        if (op->kind == HS_OP_STOP)
            e->workers_stopped++;
        else
            run_callback(op);
        op_free(op);
        op = next;
    }
    if (e->closing && e->workers_stopped == 2 && !uv_is_closing((uv_handle_t *)async)) {
        /* Both threads returned (their STOP came back): joining is instant. */
        uv_thread_join(&e->writer.thread);
        uv_thread_join(&e->reader.thread);
        uv_close((uv_handle_t *)async, async_closed_cb);
        uv_close((uv_handle_t *)&e->kick, async_closed_cb);
        uv_close((uv_handle_t *)&e->kick_soon, async_closed_cb);
    }
}

static void kick_soon_cb(uv_idle_t *idle)
{
    (void)idle; /* its being active is what counts */
}

static void submit(engine_t *e, hs_store_op_t *op, bool write)
{
    uv_mutex_lock(&e->lock);
    if (e->closing) {
        /* Still never inside the call: through the completion queue. */
        op->status = HS_ECLOSED;
        queue_push(&e->done, op);
        uv_mutex_unlock(&e->lock);
        uv_async_send(&e->async);
        return;
    }
    worker_t *w = write ? &e->writer : &e->reader;
    queue_push(&w->queue, op);
    uv_mutex_unlock(&e->lock);
    /* Submitted from a timer or a close callback, the op would otherwise
     * wait for the next event after a blocking poll. */
    if (!e->writer.kick && !e->reader.kick)
        uv_idle_start(&e->kick_soon, kick_soon_cb);
    w->kick = true;
}

/* Runs once the loop has handled everything that was ready (uv_check): one
 * wake-up per worker for all the ops of the iteration. Signalled on each
 * submit instead, the writer would start a commit with the first publish
 * of an iteration while the loop is still parsing the rest: more, smaller
 * transactions, more fsyncs and more context switches for the same work. */
static void kick_cb(uv_check_t *check)
{
    engine_t *e = check->data;
    uv_idle_stop(&e->kick_soon);
    worker_t *workers[] = {&e->writer, &e->reader};
    for (int i = 0; i < 2; i++) {
        if (!workers[i]->kick)
            continue;
        workers[i]->kick = false;
        uv_mutex_lock(&e->lock);
        uv_cond_signal(&workers[i]->cond);
        uv_mutex_unlock(&e->lock);
    }
}

static hs_store_op_t *op_new(hs_store_op_kind_t kind, void *data)
{
    hs_store_op_t *op = hs_calloc(1, sizeof(*op));
    op->kind = kind;
    op->data = data;
    return op;
}

static char *dup_or_null(const char *s)
{
    return s ? hs_strdup(s) : NULL;
}

/* Copies a message's fields into op (PUT_MESSAGE, PUT_MESSAGE_ONCE). */
static void copy_message(hs_store_op_t *op, const hs_message_t *msg)
{
    op->a = hs_strdup(msg->id);
    op->b = hs_strdup(msg->topic);
    /* content, NUL, author, NUL in one allocation */
    size_t author_len = strlen(msg->author);
    op->content = hs_malloc(msg->content_len + 1 + author_len + 1);
    memcpy(op->content, msg->content, msg->content_len);
    op->content[msg->content_len] = '\0';
    memcpy(op->content + msg->content_len + 1, msg->author, author_len + 1);
    op->content_len = msg->content_len;
    op->author = op->content + msg->content_len + 1;
    op->ms = msg->created_ms;
}

static void e_put_message(hs_store_t *s, const hs_message_t *msg, hs_store_done_cb cb, void *data)
{
    hs_store_op_t *op = op_new(HS_OP_PUT_MESSAGE, data);
    op->cb.done = cb;
    copy_message(op, msg);
    submit((engine_t *)s, op, true);
}

static void e_put_message_once(hs_store_t *s, const hs_message_t *msg, const hs_idempotency_t *idem,
                               hs_store_message_cb cb, void *data)
{
    hs_store_op_t *op = op_new(HS_OP_PUT_MESSAGE_ONCE, data);
    op->cb.message = cb;
    copy_message(op, msg);
    op->key = hs_strdup(idem->key);
    snprintf(op->key_hash, sizeof(op->key_hash), "%s", idem->body_hash);
    op->not_before_ms = idem->not_before_ms;
    submit((engine_t *)s, op, true);
}

static void e_purge_idempotency_keys(hs_store_t *s, uint64_t before_ms, hs_store_count_cb cb,
                                     void *data)
{
    hs_store_op_t *op = op_new(HS_OP_PURGE_KEYS, data);
    op->cb.count = cb;
    op->ms = before_ms;
    submit((engine_t *)s, op, true);
}

static void e_get_message(hs_store_t *s, const char *id, hs_store_message_cb cb, void *data)
{
    hs_store_op_t *op = op_new(HS_OP_GET_MESSAGE, data);
    op->cb.message = cb;
    op->a = hs_strdup(id);
    submit((engine_t *)s, op, false);
}

static void e_list_messages(hs_store_t *s, const hs_history_query_t *query, hs_store_messages_cb cb,
                            void *data)
{
    hs_store_op_t *op = op_new(HS_OP_LIST_MESSAGES, data);
    op->cb.messages = cb;
    op->query = *query;
    op->a = hs_strdup(query->topic);
    op->query.topic = NULL;
    if (query->has_cursor)
        hs_ulid_format(&query->cursor, op->cursor);
    submit((engine_t *)s, op, false);
}

static void e_add_subscription(hs_store_t *s, const char *conn, const char *topic, uint64_t now_ms,
                               hs_store_subscribe_cb cb, void *data)
{
    hs_store_op_t *op = op_new(HS_OP_ADD_SUBSCRIPTION, data);
    op->cb.subscribe = cb;
    op->a = hs_strdup(conn);
    op->b = hs_strdup(topic);
    op->ms = now_ms;
    submit((engine_t *)s, op, true);
}

static void e_remove_subscription(hs_store_t *s, const char *conn, const char *topic,
                                  hs_store_count_cb cb, void *data)
{
    hs_store_op_t *op = op_new(HS_OP_REMOVE_SUBSCRIPTION, data);
    op->cb.count = cb;
    op->a = hs_strdup(conn);
    op->b = dup_or_null(topic);
    submit((engine_t *)s, op, true);
}

static void e_list_subscriptions(hs_store_t *s, const char *conn, const char *topic,
                                 hs_store_subscriptions_cb cb, void *data)
{
    hs_store_op_t *op = op_new(HS_OP_LIST_SUBSCRIPTIONS, data);
    op->cb.subscriptions = cb;
    op->a = dup_or_null(conn);
    op->b = dup_or_null(topic);
    submit((engine_t *)s, op, false);
}

static void e_add_connection(hs_store_t *s, const char *conn, const char *node, const char *user,
                             const char *address, uint64_t now_ms, hs_store_done_cb cb, void *data)
{
    hs_store_op_t *op = op_new(HS_OP_ADD_CONNECTION, data);
    op->cb.done = cb;
    op->a = hs_strdup(conn);
    op->b = hs_strdup(node);
    op->content = dup_or_null(user);
    op->address = dup_or_null(address);
    op->ms = now_ms;
    submit((engine_t *)s, op, true);
}

static void e_get_connection(hs_store_t *s, const char *conn, hs_store_connection_cb cb, void *data)
{
    hs_store_op_t *op = op_new(HS_OP_GET_CONNECTION, data);
    op->cb.connection = cb;
    op->a = hs_strdup(conn);
    submit((engine_t *)s, op, true);
}

static void e_remove_connection(hs_store_t *s, const char *conn, hs_store_done_cb cb, void *data)
{
    hs_store_op_t *op = op_new(HS_OP_REMOVE_CONNECTION, data);
    op->cb.done = cb;
    op->a = hs_strdup(conn);
    submit((engine_t *)s, op, true);
}

/* The connection writes that take a connection and a second string. */
static void submit_pair(hs_store_t *s, hs_store_op_kind_t kind, const char *a, const char *b,
                        hs_store_done_cb cb, void *data)
{
    hs_store_op_t *op = op_new(kind, data);
    op->cb.done = cb;
    op->a = hs_strdup(a);
    op->b = hs_strdup(b);
    submit((engine_t *)s, op, true);
}

static void e_set_last_ack(hs_store_t *s, const char *conn, const char *message_id,
                           hs_store_done_cb cb, void *data)
{
    submit_pair(s, HS_OP_SET_LAST_ACK, conn, message_id, cb, data);
}

/* The connection writes guarded by an epoch (node and address may be NULL). */
static void submit_epoch(hs_store_t *s, hs_store_op_kind_t kind, const char *conn, const char *node,
                         const char *address, uint64_t epoch, hs_store_done_cb cb, void *data)
{
    hs_store_op_t *op = op_new(kind, data);
    op->cb.done = cb;
    op->a = hs_strdup(conn);
    op->b = dup_or_null(node);
    op->address = dup_or_null(address);
    op->ms = epoch;
    submit((engine_t *)s, op, true);
}

static void e_claim_connection(hs_store_t *s, const char *conn, const char *node,
                               const char *address, uint64_t epoch, hs_store_done_cb cb, void *data)
{
    submit_epoch(s, HS_OP_CLAIM_CONNECTION, conn, node, address, epoch, cb, data);
}

static void e_release_connection(hs_store_t *s, const char *conn, uint64_t epoch,
                                 uint64_t detached_ms, hs_store_done_cb cb, void *data)
{
    hs_store_op_t *op = op_new(HS_OP_RELEASE_CONNECTION, data);
    op->cb.done = cb;
    op->a = hs_strdup(conn);
    op->ms = epoch;
    op->at_ms = detached_ms;
    submit((engine_t *)s, op, true);
}

static void e_expire_connection(hs_store_t *s, const char *conn, uint64_t epoch,
                                hs_store_done_cb cb, void *data)
{
    submit_epoch(s, HS_OP_EXPIRE_CONNECTION, conn, NULL, NULL, epoch, cb, data);
}

static void e_remove_node(hs_store_t *s, const char *node, hs_store_count_cb cb, void *data)
{
    hs_store_op_t *op = op_new(HS_OP_REMOVE_NODE, data);
    op->cb.count = cb;
    op->a = hs_strdup(node);
    submit((engine_t *)s, op, true);
}

static void e_close(hs_store_t *s, hs_store_done_cb cb, void *data)
{
    engine_t *e = (engine_t *)s;
    uv_mutex_lock(&e->lock);
    if (e->closing) {
        uv_mutex_unlock(&e->lock);
        return;
    }
    /* Each worker finishes what is queued before its STOP. */
    queue_push(&e->writer.queue, op_new(HS_OP_STOP, NULL));
    queue_push(&e->reader.queue, op_new(HS_OP_STOP, NULL));
    uv_cond_signal(&e->writer.cond);
    uv_cond_signal(&e->reader.cond);
    e->closing = true;
    e->close_cb = cb;
    e->close_data = data;
    uv_mutex_unlock(&e->lock);
}

static const hs_store_ops_t engine_store_ops = {
    .name = "engine",
    .put_message = e_put_message,
    .put_message_once = e_put_message_once,
    .purge_idempotency_keys = e_purge_idempotency_keys,
    .get_message = e_get_message,
    .list_messages = e_list_messages,
    .add_subscription = e_add_subscription,
    .remove_subscription = e_remove_subscription,
    .list_subscriptions = e_list_subscriptions,
    .add_connection = e_add_connection,
    .get_connection = e_get_connection,
    .remove_connection = e_remove_connection,
    .set_last_ack = e_set_last_ack,
    .claim_connection = e_claim_connection,
    .release_connection = e_release_connection,
    .expire_connection = e_expire_connection,
    .remove_node = e_remove_node,
    .close = e_close,
};

hs_store_t *hs_store_engine_start(uv_loop_t *loop, const hs_store_engine_ops_t *ops,
                                  void *writer_conn, void *reader_conn, unsigned batch_max,
                                  uint64_t idempotency_window_ms)
{
    engine_t *e = hs_calloc(1, sizeof(*e));
    e->base.ops = &engine_store_ops;
    e->base.loop = loop;
    e->ops = ops;
    e->batch_max = batch_max ? batch_max : 512;
    e->idempotency_window_ms = idempotency_window_ms;
    uv_mutex_init(&e->lock);
    queue_init(&e->done);
    worker_t *workers[] = {&e->writer, &e->reader};
    void *conns[] = {writer_conn, reader_conn};
    for (int i = 0; i < 2; i++) {
        worker_t *w = workers[i];
        w->engine = e;
        w->conn = conns[i];
        w->is_writer = i == 0;
        queue_init(&w->queue);
        uv_cond_init(&w->cond);
    }
    uv_async_init(loop, &e->async, async_cb);
    e->async.data = e;
    uv_check_init(loop, &e->kick);
    e->kick.data = e;
    uv_check_start(&e->kick, kick_cb);
    uv_unref((uv_handle_t *)&e->kick); /* the async keeps the loop alive */
    uv_idle_init(loop, &e->kick_soon);
    e->kick_soon.data = e;
    e->handles_open = 3;
    uv_thread_create(&e->writer.thread, worker_main, &e->writer);
    uv_thread_create(&e->reader.thread, worker_main, &e->reader);
    return &e->base;
}
