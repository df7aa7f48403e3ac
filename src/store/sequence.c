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
#include <sys/random.h>
#include <uv.h>

#include "core/alloc.h"
#include "core/error.h"

bool hs_store_is_put(const hs_store_op_t *op)
{
    return op->kind == HS_OP_PUT_MESSAGE || op->kind == HS_OP_PUT_MESSAGE_ONCE;
}

struct hs_store_put_input *hs_store_op_puts(hs_store_op_t *op, size_t *count)
{
    if (hs_store_is_put(op)) {
        *count = 1;
        return &op->in.put;
    }
    *count = op->kind == HS_OP_PUT_BATCH ? op->in.batch.count : 0;
    return *count ? op->in.batch.puts : NULL;
}

static int compare_topics(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int compare_entries(const void *a, const void *b)
{
    return strcmp(((const hs_store_sequence_t *)a)->topic, ((const hs_store_sequence_t *)b)->topic);
}

void hs_store_sequences_init(hs_store_sequences_t *seqs)
{
    memset(seqs, 0, sizeof(*seqs));
}

void hs_store_sequences_dispose(hs_store_sequences_t *seqs)
{
    hs_free(seqs->entries);
    hs_free(seqs->missing);
    memset(seqs, 0, sizeof(*seqs));
}

/* The entry of topic (entries are kept sorted by topic), or NULL. */
static hs_store_sequence_t *find(hs_store_sequences_t *seqs, const char *topic)
{
    hs_store_sequence_t key = {.topic = topic};
    return seqs->count ? bsearch(&key, seqs->entries, seqs->count, sizeof(key), compare_entries)
                       : NULL;
}

/* Takes topic's row into seqs (sorted insert). */
static int take(const hs_store_backend_t *ops, void *conn, hs_store_sequences_t *seqs,
                const char *topic, hs_store_sequence_t **out)
{
    char last[HS_ULID_LEN + 1] = "";
    int rc = ops->sequence_get(conn, topic, last);
    if (rc != 0)
        return rc;
    if (seqs->count == seqs->cap) {
        seqs->cap = seqs->cap ? seqs->cap * 2 : 4;
        seqs->entries = hs_realloc(seqs->entries, seqs->cap * sizeof(*seqs->entries));
    }
    size_t at = seqs->count;
    while (at > 0 && strcmp(seqs->entries[at - 1].topic, topic) > 0)
        at--;
    memmove(seqs->entries + at + 1, seqs->entries + at,
            (seqs->count - at) * sizeof(*seqs->entries));
    hs_store_sequence_t *e = &seqs->entries[at];
    *e = (hs_store_sequence_t){.topic = topic};
    memcpy(e->last, last, sizeof(e->last));
    seqs->count++;
    *out = e;
    return 0;
}

/* A batch takes the sequence rows of its topics first, before any op's
 * savepoint, and in topic order: two processes' batches over the same
 * topics then wait for each other instead of locking them in opposite
 * orders and deadlocking (InnoDB would abort one, and the batch would run
 * again).
 *
 * A missing row (a topic's first publish) is not created here, inside the
 * transaction: HS_ENOTFOUND tells the engine to roll back, create the
 * batch's missing rows outside any transaction (hs_store_create_sequences)
 * and run the batch again. Created inside, the rows deadlocked two
 * publishers creating topics at once, again on every retry: the locking
 * read of a missing row takes a gap lock (REPEATABLE READ), both
 * transactions hold the gap, and each one's INSERT of its row waits for
 * the other's gap lock; and the row's INSERT ... SELECT MAX(id) FROM
 * messages took shared next-key locks on the messages index that the other
 * transaction's message INSERTs waited for. An autocommit statement that
 * holds nothing else waits but closes no cycle. */
int hs_store_lock_sequences(const hs_store_backend_t *ops, void *conn, hs_store_op_t *batch,
                            hs_store_sequences_t *seqs)
{
    size_t n = 0, count;
    for (hs_store_op_t *op = batch; op; op = op->next) {
        hs_store_op_puts(op, &count);
        n += count;
    }
    if (n == 0)
        return 0;
    const char **topics = hs_malloc(n * sizeof(*topics));
    n = 0;
    for (hs_store_op_t *op = batch; op; op = op->next) {
        struct hs_store_put_input *puts = hs_store_op_puts(op, &count);
        for (size_t i = 0; i < count; i++)
            topics[n++] = puts[i].topic;
    }
    qsort(topics, n, sizeof(*topics), compare_topics);
    int rc = 0;
    hs_store_sequence_t *e;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i > 0 && strcmp(topics[i - 1], topics[i]) == 0)
            continue;
        rc = take(ops, conn, seqs, topics[i], &e);
        if (rc == HS_ENOTFOUND) { /* note it, find the others */
            if (seqs->missing_count == seqs->missing_cap) {
                seqs->missing_cap = seqs->missing_cap ? seqs->missing_cap * 2 : 4;
                seqs->missing =
                    hs_realloc(seqs->missing, seqs->missing_cap * sizeof(*seqs->missing));
            }
            seqs->missing[seqs->missing_count++] = topics[i];
            rc = 0;
        }
    }
    hs_free(topics);
    if (rc == 0 && seqs->missing_count)
        return HS_ENOTFOUND;
    /* The candidates' clock, read once the rows are held: every publisher
     * mints from the database's clock, so the ids of all topics follow one
     * clock, not each publisher's (see hs_store_mint_id). */
    if (rc == 0 && ops->clock_ms) {
        rc = ops->clock_ms(conn, &seqs->now_ms);
        hs_ulid_gen_init(&seqs->gen);
    }
    return rc;
}

/* The id above prev for a topic whose candidate is not above its last id:
 * prev + 1 + a random number below 2^40, not prev + 1. The candidates of a
 * batch come from one generator and follow each other across topics (topic
 * a gets X, topic b X + 1), so a topic's last + 1 is, more often than not,
 * the id another topic's message took in that millisecond (another batch
 * of this publisher, or another publisher's): the INSERT then failed on the
 * primary key (test_sequence.c). A random step is as unlikely to meet
 * another id as a random candidate is, and stays in the millisecond (the
 * random part starts below 2^79). False past the largest id. */
static bool step_above(hs_ulid_t *id)
{
    uint64_t step = 0;
    if (getrandom(&step, sizeof(step), 0) != (ssize_t)sizeof(step))
        step = (uint64_t)uv_hrtime(); /* never on Linux for 8 bytes */
    step = 1 + (step & ((1ull << 40) - 1));
    for (int i = 15; i >= 0 && step; i--) {
        step += id->bytes[i];
        id->bytes[i] = (uint8_t)step;
        step >>= 8;
    }
    return step == 0;
}

/* Mints the id of a message of put->topic under the topic's sequence row:
 * max(candidate, last + a step: step_above), where the candidate is a ULID of the store's
 * clock (MariaDB's NOW(3), read once per batch: one clock for every
 * publisher, so that ids of different topics are as ordered as that clock,
 * and a resume's lastID - one id across topics - does not pass over a
 * message of another topic published later by a publisher whose clock is
 * behind) and last the topic's last id. The row stays locked until
 * the batch commits, so the publishes of one topic mint and commit one at a
 * time, across every process sharing the database: ids of a topic increase
 * in commit order whatever the publishers' clocks say, and once a reader
 * sees id X of a topic no lower id of it can appear later (the transaction
 * that would write it waits for the row, then mints above X).
 *
 * The row is read once per batch and written once, before the commit
 * (hs_store_sequences_flush): in between the lock is held, so the copy in
 * seqs is the truth. An op undone after minting (a failed write, an
 * idempotent repeat) gives its id back (hs_store_unmint_id): the next
 * message is minted from the last one stored, and its prev names it. A batch
 * run again (HS_EAGAIN) starts from fresh seqs and mints again from the id
 * minted the first time, which is still a fine candidate. */
int hs_store_mint_id(const hs_store_backend_t *ops, void *conn, hs_store_sequences_t *seqs,
                     struct hs_store_put_input *put)
{
    hs_store_sequence_t *e = find(seqs, put->topic);
    if (e == NULL) {
        int rc = take(ops, conn, seqs, put->topic, &e);
        if (rc != 0)
            return rc;
    }
    hs_ulid_t id, prev;
    if (seqs->now_ms) {
        if (hs_ulid_gen_next(&seqs->gen, seqs->now_ms, &id) != 0)
            return HS_EIO; /* 2^80 ids in one millisecond */
    } else if (hs_ulid_parse(put->id, strlen(put->id), &id) != 0) {
        hs_ulid_new(&id); /* no usable candidate: the writer's clock */
    }
    if (e->last[0] && hs_ulid_parse(e->last, strlen(e->last), &prev) == 0 &&
        hs_ulid_cmp(&id, &prev) <= 0) {
        id = prev;
        if (!step_above(&id))
            return HS_EIO; /* the topic reached the largest id: nothing above it */
    }
    memcpy(put->prev, e->last, sizeof(put->prev));
    hs_ulid_format(&id, e->last);
    e->dirty = true;
    hs_free(put->id);
    put->id = hs_strdup(e->last);
    put->created_ms = hs_ulid_time_ms(&id);
    return 0;
}

void hs_store_unmint_id(hs_store_sequences_t *seqs, struct hs_store_put_input *put)
{
    hs_store_sequence_t *e = find(seqs, put->topic);
    if (e && strcmp(e->last, put->id) == 0)
        memcpy(e->last, put->prev, sizeof(e->last));
}

int hs_store_mint_ids(const hs_store_backend_t *ops, void *conn, hs_store_sequences_t *seqs,
                      hs_store_op_t *op)
{
    size_t count;
    struct hs_store_put_input *puts = hs_store_op_puts(op, &count);
    for (size_t i = 0; i < count; i++) {
        int rc = hs_store_mint_id(ops, conn, seqs, &puts[i]);
        if (rc != 0) {
            while (i-- > 0)
                hs_store_unmint_id(seqs, &puts[i]);
            return rc;
        }
    }
    return 0;
}

void hs_store_unmint_ids(hs_store_sequences_t *seqs, hs_store_op_t *op)
{
    size_t count;
    struct hs_store_put_input *puts = hs_store_op_puts(op, &count);
    while (count-- > 0)
        hs_store_unmint_id(seqs, &puts[count]);
}

int hs_store_create_sequences(const hs_store_backend_t *ops, void *conn,
                              const hs_store_sequences_t *seqs)
{
    int rc = 0;
    for (size_t i = 0; i < seqs->missing_count && rc == 0; i++)
        rc = ops->sequence_create(conn, seqs->missing[i]);
    return rc;
}

int hs_store_sequences_flush(const hs_store_backend_t *ops, void *conn, hs_store_sequences_t *seqs)
{
    int rc = 0;
    for (size_t i = 0; i < seqs->count && rc == 0; i++)
        if (seqs->entries[i].dirty)
            rc = ops->sequence_set(conn, seqs->entries[i].topic, seqs->entries[i].last);
    return rc;
}
