/* sequence.h - minting message ids under the topic sequences (private to
 * src/store; called by engine.c on the writer thread, inside the batch's
 * transaction). */
#ifndef HS_STORE_SEQUENCE_H
#define HS_STORE_SEQUENCE_H

#include <stdbool.h>

#include "store/engine.h"

/* PUT_MESSAGE or PUT_MESSAGE_ONCE: an op whose id the store mints. */
bool hs_store_is_put(const hs_store_op_t *op);

/* Takes the sequence rows of every topic of batch's puts in topic order
 * when there are several topics (none otherwise). Returns 0 or the
 * back-end's status (HS_EAGAIN: run the batch again). */
int hs_store_lock_sequences(const hs_store_backend_t *ops, void *conn, hs_store_op_t *batch);

/* Replaces put->id (the caller's candidate) with the minted id,
 * max(candidate, the topic's last id + 1), sets put->created_ms to its time
 * and stores it as the topic's last id. Runs inside the op's savepoint:
 * undoing the op undoes the sequence too. */
int hs_store_mint_id(const hs_store_backend_t *ops, void *conn, struct hs_store_put_input *put);

#endif
