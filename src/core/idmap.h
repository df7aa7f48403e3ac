/* idmap.h - a hash table keyed by a binary ULID stored in the slot itself,
 * for directories with one entry per connection (the in-process bus's
 * connection -> node).
 *
 * Same scheme as map.h (open addressing, linear probing, backward-shift
 * deletion, a per-map seed from OpenSSL's RNG) but the 16-byte key is copied
 * into the slot, so an entry is 24 bytes and needs no allocation of its own
 * and no key kept alive by the caller. Values are non-NULL pointers (NULL
 * marks an empty slot).
 *
 * Not thread-safe: one map belongs to one loop.
 */
#ifndef HS_CORE_IDMAP_H
#define HS_CORE_IDMAP_H

#include <stddef.h>

#include "core/ulid.h"

typedef struct hs_idmap_slot {
    hs_ulid_t key;
    void *value; /* NULL = empty */
} hs_idmap_slot_t;

typedef struct hs_idmap {
    hs_idmap_slot_t *slots;
    size_t cap; /* power of two, or 0 before the first insert */
    size_t count;
    uint64_t seed;
} hs_idmap_t;

void hs_idmap_init(hs_idmap_t *map);
/* Frees the table (not the values). */
void hs_idmap_dispose(hs_idmap_t *map);
void *hs_idmap_get(const hs_idmap_t *map, const hs_ulid_t *key);
/* Inserts or replaces; value must not be NULL. Returns the previous value or
 * NULL. */
void *hs_idmap_put(hs_idmap_t *map, const hs_ulid_t *key, void *value);
/* Removes and returns the value, or NULL when absent. */
void *hs_idmap_remove(hs_idmap_t *map, const hs_ulid_t *key);
static inline size_t hs_idmap_count(const hs_idmap_t *map)
{
    return map->count;
}
/* Iteration: start with *pos = 0; returns the next slot or NULL at the end.
 * The map must not change during an iteration. */
const hs_idmap_slot_t *hs_idmap_next(const hs_idmap_t *map, size_t *pos);

#endif
