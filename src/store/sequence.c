/* sequence.c - the topic sequences: message ids minted by the store, in
 * commit order per topic (issue 16; docs/scaling.md, "Message ids").
 *
 * Each topic has a row with its last id (engine.h: sequence_get/create/set,
 * supplied by the back-ends). The writer takes the row inside the publish
 * transaction and mints the id under it, so that publishes of one topic -
 * from any number of processes, with any clocks - mint and commit one at a
 * time. Apart from engine.c because it is one rule (how an id is chosen),
 * while engine.c is threads and queues. */
#include "store/sequence.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

bool hs_store_is_put(const hs_store_op_t *op)
{
    return op->kind == HS_OP_PUT_MESSAGE || op->kind == HS_OP_PUT_MESSAGE_ONCE;
}

/* Reads and locks topic's sequence row, creating it on the topic's first
 * publish. */
static int take_sequence(const hs_store_backend_t *ops, void *conn, const char *topic,
                         char last[HS_ULID_LEN + 1])
{
    int rc = ops->sequence_get(conn, topic, last);
    if (rc == HS_ENOTFOUND) {
        rc = ops->sequence_create(conn, topic);
        if (rc == 0)
            rc = ops->sequence_get(conn, topic, last);
        if (rc == HS_ENOTFOUND)
            rc = HS_EIO;
    }
    return rc;
}

static int compare_topics(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A batch with messages of several topics takes their sequence rows first,
 * in topic order: two processes' batches over the same topics then wait for
 * each other instead of locking them in opposite orders and deadlocking
 * (InnoDB would abort one, and the batch would run again). A batch of one
 * topic (the common case) skips this. */
int hs_store_lock_sequences(const hs_store_backend_t *ops, void *conn, hs_store_op_t *batch)
{
    size_t n = 0;
    for (hs_store_op_t *op = batch; op; op = op->next)
        n += hs_store_is_put(op);
    if (n < 2)
        return 0;
    const char **topics = hs_malloc(n * sizeof(*topics));
    n = 0;
    for (hs_store_op_t *op = batch; op; op = op->next)
        if (hs_store_is_put(op))
            topics[n++] = op->in.put.topic;
    qsort(topics, n, sizeof(*topics), compare_topics);
    int rc = 0;
    if (strcmp(topics[0], topics[n - 1]) != 0) {
        char last[HS_ULID_LEN + 1];
        for (size_t i = 0; i < n && rc == 0; i++)
            if (i == 0 || strcmp(topics[i - 1], topics[i]) != 0)
                rc = take_sequence(ops, conn, topics[i], last);
    }
    hs_free(topics);
    return rc;
}

/* Mints the id of a message of put->topic under the topic's sequence row:
 * max(candidate, last + 1), where the candidate is the caller's id (a ULID
 * of its clock) and last the topic's last id. The row stays locked until
 * the batch commits, so the publishes of one topic mint and commit one at a
 * time, across every process sharing the database: ids of a topic increase
 * in commit order whatever the publishers' clocks say, and once a reader
 * sees id X of a topic no lower id of it can appear later (the transaction
 * that would write it waits for the row, then mints above X). A batch run
 * again (HS_EAGAIN) mints again from the id minted the first time, which is
 * still a fine candidate. */
int hs_store_mint_id(const hs_store_backend_t *ops, void *conn, struct hs_store_put_input *put)
{
    char last[HS_ULID_LEN + 1] = "";
    int rc = take_sequence(ops, conn, put->topic, last);
    if (rc != 0)
        return rc;
    hs_ulid_t id, prev;
    if (hs_ulid_parse(put->id, strlen(put->id), &id) != 0)
        hs_ulid_new(&id); /* no usable candidate: the writer's clock */
    if (last[0] && hs_ulid_parse(last, strlen(last), &prev) == 0 && hs_ulid_cmp(&id, &prev) <= 0) {
        id = prev;
        if (!hs_ulid_increment(&id))
            return HS_EIO; /* the topic reached the largest id: nothing above it */
    }
    char minted[HS_ULID_LEN + 1];
    hs_ulid_format(&id, minted);
    hs_free(put->id);
    put->id = hs_strdup(minted);
    put->created_ms = hs_ulid_time_ms(&id);
    return ops->sequence_set(conn, put->topic, put->id);
}
