/* retention.h - the pruner's schedule (private to src/store; the writer
 * thread's only).
 *
 * Retention removes what a topic no longer keeps (store.h options, a
 * topic's own settings) in the background: the writer runs one small step
 * at a time between its batches of writes, each step its own short
 * transaction (at most HS_PRUNE_BATCH rows and HS_PRUNE_TOPICS topics looked
 * at), so a publish waits at most for one step. A sweep walks every topic in
 * name order; a new sweep starts HS_PRUNE_INTERVAL_MS after the last one
 * ended, and steps of a sweep that still finds rows follow each other
 * HS_PRUNE_PAUSE_MS apart. A due step lets queued writes go first, for up to
 * HS_PRUNE_MAX_DEFER_MS (so a steady publish load cannot starve it)
 * (docs/limits.md, "Retention").
 */
#ifndef HS_STORE_RETENTION_H
#define HS_STORE_RETENTION_H

#include <stdbool.h>
#include <stdint.h>

#include "store/engine.h"

#define HS_PRUNE_BATCH       300
#define HS_PRUNE_TOPICS      500
#define HS_PRUNE_PAUSE_MS    10
#define HS_PRUNE_INTERVAL_MS 1000
/* A due step waits while writes are queued, for at most this long. */
#define HS_PRUNE_MAX_DEFER_MS 100

typedef struct hs_store_pruner hs_store_pruner_t;

/* options: the defaults (retention_age_ms, retention_count); the first
 * sweep starts at once. */
hs_store_pruner_t *hs_store_pruner_new(const hs_store_options_t *options, uint64_t now_ns);
void hs_store_pruner_free(hs_store_pruner_t *pruner);
/* When the next step is due (uv_hrtime). */
uint64_t hs_store_pruner_due_ns(const hs_store_pruner_t *pruner);
/* Fills op (a PRUNE op) with the next step when one is due by now_ns -
 * with writes queued (busy), only once it waited HS_PRUNE_MAX_DEFER_MS;
 * false when none is. */
bool hs_store_pruner_next(hs_store_pruner_t *pruner, uint64_t now_ns, bool busy, hs_store_op_t *op);
/* Takes the step's outcome (status, rows removed, where the next starts). */
void hs_store_pruner_done(hs_store_pruner_t *pruner, const hs_store_op_t *op, uint64_t now_ns);

#endif
