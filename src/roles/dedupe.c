#include "roles/dedupe.h"

#include <string.h>

#include "core/alloc.h"
#include "core/map.h"
#include "core/ulid.h"

struct hs_dedupe {
    hs_map_t ids; /* keys point into ring */
    size_t capacity;
    size_t next; /* the ring slot written next (the oldest once full) */
    size_t count;
    char (*ring)[HS_ULID_LEN + 1];
};

hs_dedupe_t *hs_dedupe_new(size_t capacity)
{
    hs_dedupe_t *d = hs_calloc(1, sizeof(*d));
    d->capacity = capacity ? capacity : 1;
    d->ring = hs_calloc(d->capacity, sizeof(*d->ring));
    hs_map_init(&d->ids);
    return d;
}

bool hs_dedupe_seen(hs_dedupe_t *d, const char *id)
{
    size_t len = strnlen(id, HS_ULID_LEN + 1);
    if (len != HS_ULID_LEN)
        return false; /* not an id this notifier could have recorded */
    if (hs_map_get(&d->ids, id, len) != NULL)
        return true;
    char *slot = d->ring[d->next];
    if (d->count == d->capacity)
        hs_map_remove(&d->ids, slot, HS_ULID_LEN);
    else
        d->count++;
    memcpy(slot, id, HS_ULID_LEN + 1);
    hs_map_put(&d->ids, slot, HS_ULID_LEN, slot);
    d->next = (d->next + 1) % d->capacity;
    return false;
}

void hs_dedupe_free(hs_dedupe_t *d)
{
    if (d == NULL)
        return;
    hs_map_dispose(&d->ids);
    hs_free(d->ring);
    hs_free(d);
}
