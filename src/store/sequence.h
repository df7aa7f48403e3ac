/* sequence.h - minting message ids under the topic sequences (private to
 * src/store; called by engine.c on the writer thread, inside the batch's
 * transaction). */
#ifndef HS_STORE_SEQUENCE_H
#define HS_STORE_SEQUENCE_H

#include <stdbool.h>

#include "store/engine.h"

/* PUT_MESSAGE or PUT_MESSAGE_ONCE: an op whose id the store mints. */
bool hs_store_is_put(const hs_store_op_t *op);

/* The puts of op whose ids the store mints, in order (*count 0 when none):
 * a PUT_MESSAGE(_ONCE)'s one, a PUT_BATCH's every one. */
struct hs_store_put_input *hs_store_op_puts(hs_store_op_t *op, size_t *count);

/* A batch's copy of the sequence rows it holds locked (sorted by topic;
 * topic points at an op's own copy). */
typedef struct hs_store_sequence {
    const char *topic;
    char last[HS_ULID_LEN + 1]; /* the last id minted or read, "" for none */
    bool dirty;                 /* minted from: to be stored before the commit */
} hs_store_sequence_t;

typedef struct hs_store_sequences {
    hs_store_sequence_t *entries;
    size_t count, cap;
    const char **missing; /* topics without a row (an op's own copy) */
    size_t missing_count, missing_cap;
    uint64_t now_ms;   /* the store's clock when the batch took its rows (0: none) */
    hs_ulid_gen_t gen; /* the batch's candidates, from now_ms */
} hs_store_sequences_t;

/* One per attempt of a batch: init after BEGIN, dispose after COMMIT or
 * ROLLBACK. */
void hs_store_sequences_init(hs_store_sequences_t *seqs);
void hs_store_sequences_dispose(hs_store_sequences_t *seqs);

/* Takes the sequence rows of every topic of batch's puts into seqs, in
 * topic order, before any op runs. Returns 0 or the back-end's status
 * (HS_EAGAIN: run the batch again; HS_ENOTFOUND: some topics have no row
 * yet, listed in seqs->missing - roll back, hs_store_create_sequences, run
 * the batch again). */
int hs_store_lock_sequences(const hs_store_backend_t *ops, void *conn, hs_store_op_t *batch,
                            hs_store_sequences_t *seqs);

/* Creates the rows of seqs->missing, each in a statement of its own
 * outside any transaction (after the attempt's ROLLBACK, before the next
 * one's BEGIN). Returns 0 or the back-end's status. */
int hs_store_create_sequences(const hs_store_backend_t *ops, void *conn,
                              const hs_store_sequences_t *seqs);

/* Replaces put->id with the minted id, max(candidate, the topic's last id
 * + a random step of 1 to 2^40), where the candidate is a ULID of the store's clock read with the
 * rows (the caller's id only when the back-end has no clock), and sets
 * put->created_ms to its time (seqs holds the topic's row:
 * hs_store_lock_sequences). */
int hs_store_mint_id(const hs_store_backend_t *ops, void *conn, hs_store_sequences_t *seqs,
                     struct hs_store_put_input *put);

/* An op that minted but stored nothing (a failed write, an idempotent
 * repeat): the topic's last id goes back to put->prev, so the next message's
 * prev is the last one stored and live delivery sees no gap. */
void hs_store_unmint_id(hs_store_sequences_t *seqs, struct hs_store_put_input *put);

/* Mints the ids of every put of op in order (hs_store_mint_id; none for an
 * op without puts: 0). When one fails, those minted before it are given
 * back and its status returned. */
int hs_store_mint_ids(const hs_store_backend_t *ops, void *conn, hs_store_sequences_t *seqs,
                      hs_store_op_t *op);
/* Gives back every id op minted (hs_store_unmint_id, last first, so that a
 * batch's several messages of one topic rewind to the id before them). */
void hs_store_unmint_ids(hs_store_sequences_t *seqs, hs_store_op_t *op);

/* Stores the last id of every topic the batch minted from; runs last,
 * before COMMIT. Returns 0 or the back-end's status. */
int hs_store_sequences_flush(const hs_store_backend_t *ops, void *conn, hs_store_sequences_t *seqs);

#endif
