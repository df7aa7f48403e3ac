/* dedupe.h - remembers the last N message ids a notifier delivered, so a
 * message the bus hands over twice (at-least-once: an event redelivered
 * after a consumer died, or appended again after Redis came back) reaches
 * no connection twice.
 *
 * A ring of ids and a hash map over it: O(1) per message, fixed memory
 * (about 50 bytes an id). An id older than the last N is not recognized;
 * N is --dedupe-window. Used only where the bus redelivers (scale-out).
 */
#ifndef HS_ROLES_DEDUPE_H
#define HS_ROLES_DEDUPE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct hs_dedupe hs_dedupe_t;

hs_dedupe_t *hs_dedupe_new(size_t capacity);
/* True when id was seen among the last capacity ids; otherwise records it
 * (evicting the oldest) and returns false. */
bool hs_dedupe_seen(hs_dedupe_t *d, const char *id);
void hs_dedupe_free(hs_dedupe_t *d);

#endif
