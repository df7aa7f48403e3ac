#include "core/map.h"

#include <openssl/rand.h>
#include <string.h>

#include "core/alloc.h"

static uint64_t hash_bytes(uint64_t seed, const char *key, size_t len)
{
    /* FNV-1a over the bytes from a secret offset, then a 64-bit finaliser
     * (splitmix64) so that low bits, used for the index, mix all input. */
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h ? h : 1; /* 0 marks an empty slot */
}

void hs_map_init(hs_map_t *map)
{
    memset(map, 0, sizeof(*map));
    if (RAND_bytes((unsigned char *)&map->seed, sizeof(map->seed)) != 1)
        map->seed = (uint64_t)(uintptr_t)map ^ 0x9e3779b97f4a7c15ull;
}

void hs_map_dispose(hs_map_t *map)
{
    hs_free(map->slots);
    map->slots = NULL;
    map->cap = map->count = 0;
}

static int key_equals(const hs_map_slot_t *slot, uint64_t hash, const char *key, size_t len)
{
    return slot->hash == hash && strncmp(slot->key, key, len) == 0 && slot->key[len] == '\0';
}

static void insert_slot(hs_map_slot_t *slots, size_t cap, hs_map_slot_t entry)
{
    size_t mask = cap - 1;
    size_t i = entry.hash & mask;
    while (slots[i].hash != 0)
        i = (i + 1) & mask;
    slots[i] = entry;
}

static void grow(hs_map_t *map)
{
    size_t cap = map->cap ? map->cap * 2 : 16;
    hs_map_slot_t *slots = hs_calloc(cap, sizeof(*slots));
    for (size_t i = 0; i < map->cap; i++)
        if (map->slots[i].hash != 0)
            insert_slot(slots, cap, map->slots[i]);
    hs_free(map->slots);
    map->slots = slots;
    map->cap = cap;
}

void *hs_map_get(const hs_map_t *map, const char *key, size_t len)
{
    if (map->count == 0)
        return NULL;
    uint64_t hash = hash_bytes(map->seed, key, len);
    size_t mask = map->cap - 1;
    for (size_t i = hash & mask; map->slots[i].hash != 0; i = (i + 1) & mask)
        if (key_equals(&map->slots[i], hash, key, len))
            return map->slots[i].value;
    return NULL;
}

void *hs_map_put(hs_map_t *map, const char *key, size_t len, void *value)
{
    /* Load factor at most 3/4. */
    if ((map->count + 1) * 4 > map->cap * 3)
        grow(map);
    uint64_t hash = hash_bytes(map->seed, key, len);
    size_t mask = map->cap - 1;
    size_t i = hash & mask;
    for (; map->slots[i].hash != 0; i = (i + 1) & mask) {
        if (key_equals(&map->slots[i], hash, key, len)) {
            void *old = map->slots[i].value;
            map->slots[i].key = key;
            map->slots[i].value = value;
            return old;
        }
    }
    map->slots[i] = (hs_map_slot_t){.hash = hash, .key = key, .value = value};
    map->count++;
    return NULL;
}

void *hs_map_remove(hs_map_t *map, const char *key, size_t len)
{
    if (map->count == 0)
        return NULL;
    uint64_t hash = hash_bytes(map->seed, key, len);
    size_t mask = map->cap - 1;
    size_t i = hash & mask;
    while (map->slots[i].hash != 0 && !key_equals(&map->slots[i], hash, key, len))
        i = (i + 1) & mask;
    if (map->slots[i].hash == 0)
        return NULL;
    void *value = map->slots[i].value;
    /* Backward-shift: move later entries of the probe run into the hole when
     * their home slot does not lie strictly between the hole and them. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; map->slots[j].hash != 0; j = (j + 1) & mask) {
        size_t home = map->slots[j].hash & mask;
        size_t dist_j = (j - home) & mask;
        size_t dist_hole = (j - hole) & mask;
        if (dist_j >= dist_hole) {
            map->slots[hole] = map->slots[j];
            hole = j;
        }
    }
    map->slots[hole] = (hs_map_slot_t){0};
    map->count--;
    return value;
}

void *hs_map_next(const hs_map_t *map, size_t *pos)
{
    while (*pos < map->cap) {
        size_t i = (*pos)++;
        if (map->slots[i].hash != 0)
            return map->slots[i].value;
    }
    return NULL;
}
