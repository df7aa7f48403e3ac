/* idmap.c - the ULID-keyed hash table (see idmap.h): keys inline in the
 * slots, so a directory entry per connection allocates nothing. */
#include "core/idmap.h"

#include <openssl/rand.h>
#include <string.h>

#include "core/alloc.h"

static size_t hash_id(uint64_t seed, const hs_ulid_t *key)
{
    /* Both halves through a seeded splitmix64-style mix: ids are made by the
     * server, but the seed keeps a peer that learns ids from aiming
     * collisions at the table. */
    uint64_t a, b;
    memcpy(&a, key->bytes, 8);
    memcpy(&b, key->bytes + 8, 8);
    uint64_t h = (a ^ seed) * 0x9e3779b97f4a7c15ull;
    h ^= b + (seed >> 7) + (h << 6) + (h >> 2);
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return (size_t)h;
}

void hs_idmap_init(hs_idmap_t *map)
{
    memset(map, 0, sizeof(*map));
    if (RAND_bytes((unsigned char *)&map->seed, sizeof(map->seed)) != 1)
        map->seed = (uint64_t)(uintptr_t)map ^ 0x9e3779b97f4a7c15ull;
}

void hs_idmap_dispose(hs_idmap_t *map)
{
    hs_free(map->slots);
    map->slots = NULL;
    map->cap = map->count = 0;
}

static int same_id(const hs_ulid_t *a, const hs_ulid_t *b)
{
    return memcmp(a->bytes, b->bytes, sizeof(a->bytes)) == 0;
}

static void grow(hs_idmap_t *map)
{
    size_t cap = map->cap ? map->cap * 2 : 16;
    hs_idmap_slot_t *slots = hs_calloc(cap, sizeof(*slots));
    size_t mask = cap - 1;
    for (size_t i = 0; i < map->cap; i++) {
        if (map->slots[i].value == NULL)
            continue;
        size_t j = hash_id(map->seed, &map->slots[i].key) & mask;
        while (slots[j].value != NULL)
            j = (j + 1) & mask;
        slots[j] = map->slots[i];
    }
    hs_free(map->slots);
    map->slots = slots;
    map->cap = cap;
}

/* The slot holding key, or the empty slot ending its probe run. */
static size_t find(const hs_idmap_t *map, const hs_ulid_t *key)
{
    size_t mask = map->cap - 1;
    size_t i = hash_id(map->seed, key) & mask;
    while (map->slots[i].value != NULL && !same_id(&map->slots[i].key, key))
        i = (i + 1) & mask;
    return i;
}

void *hs_idmap_get(const hs_idmap_t *map, const hs_ulid_t *key)
{
    if (map->count == 0)
        return NULL;
    return map->slots[find(map, key)].value;
}

void *hs_idmap_put(hs_idmap_t *map, const hs_ulid_t *key, void *value)
{
    /* Load factor at most 3/4. */
    if ((map->count + 1) * 4 > map->cap * 3)
        grow(map);
    size_t i = find(map, key);
    void *old = map->slots[i].value;
    map->slots[i].key = *key;
    map->slots[i].value = value;
    if (old == NULL)
        map->count++;
    return old;
}

void *hs_idmap_remove(hs_idmap_t *map, const hs_ulid_t *key)
{
    if (map->count == 0)
        return NULL;
    size_t mask = map->cap - 1;
    size_t i = find(map, key);
    void *value = map->slots[i].value;
    if (value == NULL)
        return NULL;
    /* Backward-shift: move later entries of the probe run into the hole when
     * their home slot does not lie strictly between the hole and them. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; map->slots[j].value != NULL; j = (j + 1) & mask) {
        size_t home = hash_id(map->seed, &map->slots[j].key) & mask;
        size_t dist_j = (j - home) & mask;
        size_t dist_hole = (j - hole) & mask;
        if (dist_j >= dist_hole) {
            map->slots[hole] = map->slots[j];
            hole = j;
        }
    }
    map->slots[hole] = (hs_idmap_slot_t){0};
    map->count--;
    return value;
}

const hs_idmap_slot_t *hs_idmap_next(const hs_idmap_t *map, size_t *pos)
{
    while (*pos < map->cap) {
        size_t i = (*pos)++;
        if (map->slots[i].value != NULL)
            return &map->slots[i];
    }
    return NULL;
}
