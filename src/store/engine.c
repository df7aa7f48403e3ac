/* engine.c - threads, queues and completions shared by the store back-ends
 * (see engine.h). The operations' submissions are apart: operations.c,
 * topics.c, users.c, batch.c and deletion.c. */
#include "store/engine.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "store/retention.h"
#include "store/sequence.h"

#define READ_BATCH     16
#define PURGE_EVERY_NS (60 * 1000000000ull)
/* A batch the database aborted (deadlock) runs again up to this many times. */
#define MAX_BATCH_ATTEMPTS 5

typedef struct queue {
    hs_store_op_t *head, **tail;
} queue_t;

typedef struct worker {
    struct hs_store *engine;
    uv_thread_t thread;
    void *conn;
    queue_t queue;
    uv_cond_t cond;
    bool is_writer;
    bool kick; /* loop thread only: ops queued since the last wake-up */
} worker_t;

/* The store (hs_store_t is opaque outside this file). */
struct hs_store {
    const hs_store_backend_t *backend;
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
    hs_store_pruner_t *pruner;      /* writer thread only; NULL: no retention here */
};
typedef struct hs_store engine_t;

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
    if (op->out.msgs == NULL)
        op->out.msgs = hs_calloc(cap ? cap : 1, sizeof(hs_message_t));
    hs_message_t *m = &op->out.msgs[op->out.count++];
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
    while (cap < op->out.count)
        cap *= 2;
    if (op->out.subs == NULL)
        op->out.subs = hs_malloc(cap * sizeof(hs_subscription_t));
    else if (op->out.count == cap)
        op->out.subs = hs_realloc(op->out.subs, cap * 2 * sizeof(hs_subscription_t));
    hs_subscription_t *sub = &op->out.subs[op->out.count++];
    snprintf(sub->connection_id, sizeof(sub->connection_id), "%s",
             connection_id ? connection_id : "");
    sub->topic = hs_strdup(topic ? topic : "");
    sub->created_ms = created_ms;
}

/* Forgets what a write filled in, before its batch runs again. */
static void op_reset_outputs(hs_store_op_t *op)
{
    if (op->out.msgs) {
        for (size_t i = 0; i < op->out.count; i++) {
            hs_free((char *)op->out.msgs[i].topic);
            hs_free((char *)op->out.msgs[i].content);
            hs_free((char *)op->out.msgs[i].author);
        }
        hs_free(op->out.msgs);
        op->out.msgs = NULL;
    }
    if (op->out.subs) {
        for (size_t i = 0; i < op->out.count; i++)
            hs_free((char *)op->out.subs[i].topic);
        hs_free(op->out.subs);
        op->out.subs = NULL;
    }
    hs_store_connection_row_t *row = &op->out.connection;
    hs_free(row->node);
    hs_free(row->user);
    hs_free(row->last_ack);
    hs_free(row->address);
    hs_store_topics_reset_outputs(op);
    hs_store_users_reset_outputs(op);
    memset(&op->out, 0, sizeof(op->out));
}

/* Frees the inputs of op's kind (the union's member that is live). */
static void op_free(hs_store_op_t *op)
{
    op_reset_outputs(op);
    hs_store_op_input_t *in = &op->in;
    switch (op->kind) {
    case HS_OP_PUT_MESSAGE:
    case HS_OP_PUT_MESSAGE_ONCE:
        hs_free(in->put.id);
        hs_free(in->put.topic);
        hs_free(in->put.content); /* the author too */
        hs_free(in->put.key);
        break;
    case HS_OP_PUT_BATCH:
        hs_store_batch_op_free(op);
        break;
    case HS_OP_GET_MESSAGE:
        hs_free(in->message.id);
        break;
    case HS_OP_LIST_MESSAGES:
        hs_free(in->list.topic);
        break;
    case HS_OP_ADD_SUBSCRIPTION:
    case HS_OP_REMOVE_SUBSCRIPTION:
    case HS_OP_LIST_SUBSCRIPTIONS:
        hs_free(in->subscription.connection_id);
        hs_free(in->subscription.topic);
        break;
    case HS_OP_ADD_CONNECTION:
        hs_free(in->add_connection.connection_id);
        hs_free(in->add_connection.node);
        hs_free(in->add_connection.user);
        hs_free(in->add_connection.address);
        break;
    case HS_OP_GET_CONNECTION:
    case HS_OP_REMOVE_CONNECTION:
        hs_free(in->connection.connection_id);
        break;
    case HS_OP_SET_LAST_ACK:
        hs_free(in->last_ack.connection_id);
        hs_free(in->last_ack.message_id);
        break;
    case HS_OP_CLAIM_CONNECTION:
        hs_free(in->claim.connection_id);
        hs_free(in->claim.node);
        hs_free(in->claim.address);
        break;
    case HS_OP_RELEASE_CONNECTION:
        hs_free(in->release.connection_id);
        break;
    case HS_OP_EXPIRE_CONNECTION:
        hs_free(in->expire.connection_id);
        break;
    case HS_OP_REMOVE_NODE:
        hs_free(in->node.node);
        break;
    case HS_OP_GET_TOPIC:
    case HS_OP_LIST_TOPICS:
    case HS_OP_SET_TOPIC:
    case HS_OP_PRUNE:
        hs_store_topics_op_free(op);
        break;
    case HS_OP_USER_CONNECTIONS:
        hs_store_users_op_free(op);
        break;
    case HS_OP_DELETE_MESSAGE:
    case HS_OP_DELETE_TOPIC:
        hs_store_deletion_op_free(op);
        break;
    case HS_OP_PURGE_KEYS:
    case HS_OP_STOP:
        break;
    }
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
    const hs_store_backend_t *ops = w->engine->backend;
    if (!w->is_writer) {
        for (hs_store_op_t *op = batch; op; op = op->next)
            op->status = ops->read(w->conn, op);
        return;
    }
    int creates = 0;
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
        hs_store_sequences_t seqs;
        hs_store_sequences_init(&seqs);
        rc = hs_store_lock_sequences(ops, w->conn, batch, &seqs);
        if (rc == HS_ENOTFOUND && creates < MAX_BATCH_ATTEMPTS) {
            /* A topic's first publish: its row is created outside the
             * transaction (sequence.c says why), then the batch runs again
             * (not counted as an attempt: rows are never removed, so this
             * happens once unless a create itself was aborted). */
            ops->rollback(w->conn);
            rc = hs_store_create_sequences(ops, w->conn, &seqs);
            hs_store_sequences_dispose(&seqs);
            creates++;
            if (rc == 0 || rc == HS_EAGAIN) {
                attempt--;
                continue;
            }
            hs_log_error("store: cannot create the topic sequences: %s", ops->error(w->conn));
            for (hs_store_op_t *op = batch; op; op = op->next)
                op->status = rc;
            return;
        }
        if (rc == HS_ENOTFOUND)
            rc = HS_EIO; /* created, and missing again and again */
        if (rc != 0 && rc != HS_EAGAIN) {
            hs_log_error("store: cannot lock the topic sequences: %s", ops->error(w->conn));
            ops->rollback(w->conn);
            hs_store_sequences_dispose(&seqs);
            for (hs_store_op_t *op = batch; op; op = op->next)
                op->status = rc;
            return;
        }
        bool again = rc == HS_EAGAIN;
        for (hs_store_op_t *op = batch; op && !again; op = op->next) {
            if (attempt > 1)
                op_reset_outputs(op);
            bool guarded = !(ops->write_is_atomic && ops->write_is_atomic(op));
            if (guarded)
                ops->savepoint(w->conn);
            op->status = hs_store_mint_ids(ops, w->conn, &seqs, op);
            bool minted = op->status == 0;
            if (op->status == 0)
                op->status = ops->write(w->conn, op);
            if (minted && op->status != 0) /* nothing stored under the ids */
                hs_store_unmint_ids(&seqs, op);
            /* The database dropped the whole transaction: no release. */
            again = op->status == HS_EAGAIN;
            if (again)
                break;
            bool failed = op->status != 0 && op->status != HS_EEXIST && op->status != HS_ENOTFOUND;
            /* A reused idempotency key is the caller's mistake, not a failure. */
            bool refused = (op->kind == HS_OP_PUT_MESSAGE_ONCE || op->kind == HS_OP_PUT_BATCH) &&
                           op->status == HS_EINVAL;
            if (failed && !refused)
                hs_log_error("store: write failed: %s", ops->error(w->conn));
            if (guarded)
                ops->release(w->conn, failed);
        }
        rc = again ? HS_EAGAIN : hs_store_sequences_flush(ops, w->conn, &seqs);
        hs_store_sequences_dispose(&seqs);
        if (rc == 0)
            rc = ops->commit(w->conn);
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
    op.in.purge.before_ms = wall > e->idempotency_window_ms ? wall - e->idempotency_window_ms : 0;
    run_batch(w, &op);
    if (op.status == 0 && op.out.count > 0)
        hs_log_debug("store: %zu expired idempotency keys removed", op.out.count);
}

/* Writer thread: one step of the pruner when one is due (retention.c: a
 * small transaction of its own, between the batches of writes). The rows it
 * removed are counted on the loop (houston_messages_pruned_total). */
static void prune_if_due(worker_t *w)
{
    engine_t *e = w->engine;
    if (e->pruner == NULL)
        return;
    uv_mutex_lock(&e->lock);
    bool busy = w->queue.head != NULL; /* writes first, for a while */
    uv_mutex_unlock(&e->lock);
    hs_store_op_t *op = hs_store_op_new(HS_OP_PRUNE, NULL);
    if (!hs_store_pruner_next(e->pruner, uv_hrtime(), busy, op)) {
        op_free(op);
        return;
    }
    if (e->backend->set_durable)
        e->backend->set_durable(w->conn, false);
    run_batch(w, op);
    if (e->backend->set_durable)
        e->backend->set_durable(w->conn, true);
    hs_store_pruner_done(e->pruner, op, uv_hrtime());
    if (op->status == 0 && op->out.count > 0)
        complete(e, op);
    else
        op_free(op);
}

/* When the writer has work of its own (a purge, a prune step), UINT64_MAX:
 * none. */
static uint64_t own_work_due_ns(engine_t *e)
{
    uint64_t due = e->idempotency_window_ms ? e->next_purge_ns : UINT64_MAX;
    uint64_t prune = e->pruner ? hs_store_pruner_due_ns(e->pruner) : UINT64_MAX;
    return prune < due ? prune : due;
}

/* Waits for work; the writer wakes up for its own due work as well. Called
 * and returns with e->lock held; false when woken for that only. */
static bool wait_for_work(worker_t *w)
{
    engine_t *e = w->engine;
    while (w->queue.head == NULL) {
        uint64_t due = w->is_writer ? own_work_due_ns(e) : UINT64_MAX;
        if (due == UINT64_MAX) {
            uv_cond_wait(&w->cond, &e->lock);
            continue;
        }
        uint64_t now = uv_hrtime();
        if (now >= due)
            return false;
        uv_cond_timedwait(&w->cond, &e->lock, due - now);
    }
    return true;
}

static void worker_main(void *arg)
{
    worker_t *w = arg;
    engine_t *e = w->engine;
    unsigned max = w->is_writer ? e->batch_max : READ_BATCH;
    for (;;) {
        if (w->is_writer) {
            purge_if_due(w);
            prune_if_due(w);
        }
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
            if (w->is_writer)
                hs_store_pruner_free(e->pruner);
            e->backend->close(w->conn);
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
        if (op->status == 0 && op->out.count) /* a new message: its link */
            memcpy(op->out.msgs[0].prev, op->in.put.prev, sizeof(op->in.put.prev));
        if (op->cb.message)
            op->cb.message(op->status,
                           (op->status == 0 || op->status == HS_EEXIST) && op->out.count
                               ? &op->out.msgs[0]
                               : NULL,
                           op->data);
        break;
    case HS_OP_PUT_BATCH:
        hs_store_batch_callback(op);
        break;
    case HS_OP_PUT_MESSAGE:
        if (op->cb.message) {
            const struct hs_store_put_input *put = &op->in.put;
            hs_message_t msg = {.topic = put->topic,
                                .content = put->content,
                                .content_len = put->content_len,
                                .author = put->author,
                                .created_ms = put->created_ms};
            snprintf(msg.id, sizeof(msg.id), "%s", put->id);
            memcpy(msg.prev, put->prev, sizeof(msg.prev));
            op->cb.message(op->status, op->status == 0 ? &msg : NULL, op->data);
        }
        break;
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
            op->cb.subscribe(op->status, op->out.created_ms, op->data);
        break;
    case HS_OP_REMOVE_SUBSCRIPTION:
    case HS_OP_REMOVE_NODE:
    case HS_OP_PURGE_KEYS:
        if (op->cb.count)
            op->cb.count(op->status, op->out.count, op->data);
        break;
    case HS_OP_GET_MESSAGE:
        if (op->status == 0 && op->out.count == 0)
            op->status = HS_ENOTFOUND;
        op->cb.message(op->status, op->status == 0 ? &op->out.msgs[0] : NULL, op->data);
        break;
    case HS_OP_LIST_MESSAGES:
        if (op->in.list.want_pruned)
            hs_store_topics_callback(op); /* read_history */
        else
            op->cb.messages(op->status, op->out.msgs, op->status == 0 ? op->out.count : 0,
                            op->data);
        break;
    case HS_OP_PRUNE:
        hs_metrics_singleton.messages_pruned += op->out.count;
        break;
    case HS_OP_GET_TOPIC:
    case HS_OP_LIST_TOPICS:
    case HS_OP_SET_TOPIC:
        hs_store_topics_callback(op);
        break;
    case HS_OP_USER_CONNECTIONS:
        hs_store_users_callback(op);
        break;
    case HS_OP_DELETE_MESSAGE:
    case HS_OP_DELETE_TOPIC:
        hs_store_deletion_callback(op);
        break;
    case HS_OP_LIST_SUBSCRIPTIONS:
        op->cb.subscriptions(op->status, op->out.subs, op->status == 0 ? op->out.count : 0,
                             op->data);
        break;
    case HS_OP_GET_CONNECTION: {
        const hs_store_connection_row_t *row = &op->out.connection;
        if (op->status == 0 && !row->found)
            op->status = HS_ENOTFOUND;
        hs_connection_info_t info = {.id = op->in.connection.connection_id,
                                     .node = row->node ? row->node : "",
                                     .user = row->user,
                                     .connected_ms = row->connected_ms,
                                     .last_ack = row->last_ack,
                                     .epoch = row->epoch,
                                     .attached = row->attached,
                                     .address = row->address,
                                     .detached_ms = row->detached_ms,
                                     .subs = op->out.subs,
                                     .sub_count = op->out.subs ? op->out.count : 0};
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

void hs_store_submit(engine_t *e, hs_store_op_t *op, bool write)
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

hs_store_op_t *hs_store_op_new(hs_store_op_kind_t kind, void *data)
{
    hs_store_op_t *op = hs_calloc(1, sizeof(*op));
    op->kind = kind;
    op->data = data;
    return op;
}

void hs_store_close(hs_store_t *s, hs_store_done_cb cb, void *data)
{
    engine_t *e = s;
    uv_mutex_lock(&e->lock);
    if (e->closing) {
        uv_mutex_unlock(&e->lock);
        return;
    }
    /* Each worker finishes what is queued before its STOP. */
    queue_push(&e->writer.queue, hs_store_op_new(HS_OP_STOP, NULL));
    queue_push(&e->reader.queue, hs_store_op_new(HS_OP_STOP, NULL));
    uv_cond_signal(&e->writer.cond);
    uv_cond_signal(&e->reader.cond);
    e->closing = true;
    e->close_cb = cb;
    e->close_data = data;
    uv_mutex_unlock(&e->lock);
}

hs_store_t *hs_store_engine_start(uv_loop_t *loop, const hs_store_backend_t *backend,
                                  void *writer_conn, void *reader_conn,
                                  const hs_store_options_t *options)
{
    engine_t *e = hs_calloc(1, sizeof(*e));
    e->backend = backend;
    e->batch_max = options->batch_max ? options->batch_max : 512;
    e->idempotency_window_ms = options->idempotency_window_ms;
    e->pruner = options->prune ? hs_store_pruner_new(options, uv_hrtime()) : NULL;
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
    return e;
}
