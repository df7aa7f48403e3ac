/* partition.h - which partition of the event log a topic's events go to.
 *
 * Every role computes it the same way, so one topic's events are always in
 * one partition (one stream, read by one consumer at a time), which keeps
 * them in order to the notifiers. The function is part of the on-Redis
 * format: changing it (or --partitions) on a live deployment moves topics
 * between partitions (docs/scaling.md). */
#ifndef HS_BUS_PARTITION_H
#define HS_BUS_PARTITION_H

#include <stddef.h>
#include <stdint.h>

#define HS_PARTITIONS_DEFAULT 16
#define HS_PARTITIONS_MAX     1024

/* FNV-1a, 32 bits, of the topic's bytes (offset basis 2166136261, prime
 * 16777619). */
uint32_t hs_partition_hash(const char *topic, size_t len);
/* hs_partition_hash(topic) mod count; count 1..HS_PARTITIONS_MAX. */
unsigned hs_partition_of(const char *topic, size_t len, unsigned count);

#endif
