/* fences.c - the highest fencing token a notifier saw per partition, and
 * the drop of a stale partition holder's deliveries (fences.h). */
#include "roles/fences.h"

#include <string.h>

#include "bus/partition.h"
#include "core/alloc.h"

struct hs_fences {
    uint64_t highest[HS_PARTITIONS_MAX];
};

hs_fences_t *hs_fences_new(void)
{
    return hs_calloc(1, sizeof(hs_fences_t));
}

void hs_fences_free(hs_fences_t *f)
{
    hs_free(f);
}

bool hs_fences_admit(hs_fences_t *f, int partition, uint64_t fence)
{
    if (fence == 0 || partition < 0 || partition >= HS_PARTITIONS_MAX)
        return true;
    if (fence < f->highest[partition])
        return false;
    f->highest[partition] = fence;
    return true;
}

void hs_fences_reset(hs_fences_t *f)
{
    memset(f->highest, 0, sizeof(f->highest));
}
