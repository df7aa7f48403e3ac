/* live_order.h - the order of one topic's live messages on a notifier
 * (docs/scaling.md, "Live order"): each message carries the topic's id
 * before it (prev, minted under the store's sequence), so a node delivers
 * a message only after its predecessor, holds one that comes early, drops
 * one it already delivered.
 *
 * Pure bookkeeping, no loop, no store, no clock of its own: the notifier
 * (notifier_order.c) reads the baseline and the missing messages from the
 * store, runs the hold timer and closes the subscribers when a gap cannot be
 * filled. Loop thread only. */
#ifndef HS_ROLES_LIVE_ORDER_H
#define HS_ROLES_LIVE_ORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ulid.h"

/* A message held back: its predecessor has not been delivered yet. */
typedef struct hs_live_msg {
    struct hs_live_msg *next;
    char id[HS_ULID_LEN + 1];
    char prev[HS_ULID_LEN + 1];
    bool deleted; /* deleted while held: passed in the chain, never delivered */
    size_t len;
    char json[]; /* the message object, len bytes and a NUL */
} hs_live_msg_t;

/* Limits shared by every topic of a notifier. */
typedef struct hs_live_budget {
    size_t max_held;       /* messages held per topic */
    size_t max_held_bytes; /* bytes held across all topics */
    size_t held_bytes;     /* held now, all topics */
} hs_live_budget_t;

typedef struct hs_live_order {
    hs_live_budget_t *budget;
    bool known;                 /* last is the baseline or a delivered id */
    char last[HS_ULID_LEN + 1]; /* the last id delivered ("" : none yet) */
    hs_live_msg_t *held;        /* ascending ids */
    size_t held_count, held_bytes;
    uint64_t gap_since_ms; /* when the held messages began to wait (0: none held) */
} hs_live_order_t;

typedef void (*hs_live_deliver_fn)(const char *id, const char *json, size_t len, void *data);

typedef enum hs_live_result {
    HS_LIVE_DELIVERED, /* delivered, with any held successors it unblocked */
    HS_LIVE_REPEAT,    /* at or below the last delivered id: dropped */
    HS_LIVE_HELD,      /* a gap (or no baseline yet): held */
    HS_LIVE_OVERFLOW,  /* a gap, and the hold is full: not held; the caller
                          closes the topic's subscribers and resets */
} hs_live_result_t;

/* Starts without a baseline: every message is held until set_baseline. */
void hs_live_order_init(hs_live_order_t *o, hs_live_budget_t *budget);
/* Frees what is held. */
void hs_live_order_dispose(hs_live_order_t *o);

/* A live message of the topic: id, its prev ("" for the topic's first;
 * NULL when the event carried none: delivered when above last), and its
 * JSON. deliver runs for each message delivered, in id order, before the
 * call returns. */
hs_live_result_t hs_live_order_offer(hs_live_order_t *o, const char *id, const char *prev,
                                     const char *json, size_t len, uint64_t now_ms,
                                     hs_live_deliver_fn deliver, void *data);

/* The topic's last id as the store had it before the topic was served here
 * ("" when it had none): held messages at or below it are dropped, those
 * that follow it are delivered. Ignored once known. */
void hs_live_order_set_baseline(hs_live_order_t *o, const char *last, uint64_t now_ms,
                                hs_live_deliver_fn deliver, void *data);

/* The message id was deleted (a "deleted" event): if it is held, it keeps
 * its place in the chain (its successors follow it) but is not delivered.
 * Returns whether it was held. */
bool hs_live_order_forget(hs_live_order_t *o, const char *id);

/* A message read from the store to fill a gap (ascending ids, all above the
 * cursor last was when the read was issued): delivered when above last. */
void hs_live_order_fill(hs_live_order_t *o, const char *id, const char *json, size_t len,
                        hs_live_deliver_fn deliver, void *data);
/* After a fill's messages: delivers the held messages it unblocked.
 * Returns true when nothing is held any more. */
bool hs_live_order_fill_done(hs_live_order_t *o, uint64_t now_ms, hs_live_deliver_fn deliver,
                             void *data);

/* The gap cannot be filled (the subscribers were asked to resume): drops
 * what is held and makes the highest id seen (held, or seen: the message
 * that overflowed, may be NULL) the last one, so the messages of the gap
 * that arrive later are repeats; the resumes replay them. */
void hs_live_order_reset(hs_live_order_t *o, const char *seen);

/* Whether messages wait (a gap or no baseline). */
static inline bool hs_live_order_holding(const hs_live_order_t *o)
{
    return o->held != NULL;
}

#endif
