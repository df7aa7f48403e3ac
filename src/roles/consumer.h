/* consumer.h - the consumer role: turns "message created" events into one
 * DELIVER command per notifier node that holds subscribers of the topic.
 *
 * The work per message is O(nodes holding subscribers), never
 * O(subscribers): each node fans out locally. An event is acknowledged on
 * the bus only after every node command was handed over, so a consumer that
 * dies mid-way leaves the event to be redelivered.
 *
 * Thread affinity: the loop thread only.
 */
#ifndef HS_ROLES_CONSUMER_H
#define HS_ROLES_CONSUMER_H

#include "bus/bus.h"

typedef struct hs_consumer hs_consumer_t;

/* Registers as the bus's event consumer. */
hs_consumer_t *hs_consumer_new(hs_bus_t *bus, int *status);
/* Number of events still being handed over. */
size_t hs_consumer_in_flight(const hs_consumer_t *consumer);
/* Frees the consumer; call after the bus is closed. */
void hs_consumer_free(hs_consumer_t *consumer);

#endif
