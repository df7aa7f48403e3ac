/* partition.c - the topic -> partition function of the partitioned event
 * log (FNV-1a 32-bit of the topic, mod the partition count). */
#include "bus/partition.h"

uint32_t hs_partition_hash(const char *topic, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)topic[i];
        h *= 16777619u;
    }
    return h;
}

unsigned hs_partition_of(const char *topic, size_t len, unsigned count)
{
    return count > 1 ? hs_partition_hash(topic, len) % count : 0;
}
