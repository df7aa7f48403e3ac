/* fences.h - a notifier's check of the fencing tokens on DELIVER commands.
 *
 * Each partition of the event log is processed by one consumer at a time,
 * under a lease with a fencing token that only grows (docs/scaling.md). A
 * consumer that stalled past its lease may still send deliveries after
 * another consumer took the partition over; a node remembers, per
 * partition, the highest token it saw and drops a DELIVER with a lower
 * one: the new holder hands that event on itself (it claimed it). Loop
 * thread only. */
#ifndef HS_ROLES_FENCES_H
#define HS_ROLES_FENCES_H

#include <stdbool.h>
#include <stdint.h>

typedef struct hs_fences hs_fences_t;

hs_fences_t *hs_fences_new(void);
void hs_fences_free(hs_fences_t *f);
/* Whether a DELIVER of partition with token fence goes on (and the
 * partition's highest token becomes fence if it is higher). fence 0 (a bus
 * without partitions) and a partition out of range always go on. */
bool hs_fences_admit(hs_fences_t *f, int partition, uint64_t fence);
/* Forgets every token: after a gap (Redis may have lost the counters). */
void hs_fences_reset(hs_fences_t *f);

#endif
