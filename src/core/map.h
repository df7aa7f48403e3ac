/* map.h - a string-keyed hash table for the in-memory indexes (topic ->
 * subscribers, connection id -> connection).
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones), so lookups stay short after churn. The map stores pointers:
 * the key bytes belong to the value and must stay unchanged while the entry
 * exists - an entry costs 24 bytes and no allocation of its own. The hash is
 * seeded per map from OpenSSL's RNG so peers cannot aim collisions at it
 * without knowing the seed.
 *
 * Not thread-safe: one map belongs to one loop.
 */
#ifndef HS_CORE_MAP_H
#define HS_CORE_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct hs_map_slot {
    uint64_t hash; /* 0 = empty */
    const char *key;
    void *value;
} hs_map_slot_t;

typedef struct hs_map {
    hs_map_slot_t *slots;
    size_t cap; /* power of two, or 0 before the first insert */
    size_t count;
    uint64_t seed;
} hs_map_t;

void hs_map_init(hs_map_t *map);
/* Frees the table (not the values). */
void hs_map_dispose(hs_map_t *map);
void *hs_map_get(const hs_map_t *map, const char *key, size_t len);
/* Inserts or replaces; returns the previous value or NULL. key must stay valid
 * and unchanged while the entry exists; its length is recomputed with strlen
 * on comparisons, so keys must be NUL-terminated at len. */
void *hs_map_put(hs_map_t *map, const char *key, size_t len, void *value);
/* Removes and returns the value, or NULL when absent. */
void *hs_map_remove(hs_map_t *map, const char *key, size_t len);
static inline size_t hs_map_count(const hs_map_t *map)
{
    return map->count;
}
/* Iteration: start with *pos = 0; returns the next value or NULL at the end.
 * The map must not change during an iteration. */
void *hs_map_next(const hs_map_t *map, size_t *pos);

#endif
