/* hist: log-linear histogram (see hist.h). */
#include "hist.h"

#include <string.h>

static unsigned bucket_of(uint64_t v)
{
    if (v < 2 * HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - HIST_SUB_BITS; /* v >> shift is in [SUB, 2 SUB) */
    return 2 * HIST_SUB + (shift - 1) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

/* The middle of bucket i's value range. */
static uint64_t value_of(unsigned i)
{
    if (i < 2 * HIST_SUB)
        return i;
    unsigned shift = (i - 2 * HIST_SUB) / HIST_SUB + 1;
    uint64_t sub = (i - 2 * HIST_SUB) % HIST_SUB + HIST_SUB;
    return (sub << shift) + ((1ull << shift) >> 1);
}

void hist_init(hist_t *h)
{
    memset(h, 0, sizeof *h);
}

void hist_record(hist_t *h, uint64_t value)
{
    h->buckets[bucket_of(value)]++;
    h->count++;
    if (value > h->max)
        h->max = value;
}

void hist_merge(hist_t *dst, const hist_t *src)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t hist_quantile(const hist_t *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.5);
    if (rank < 1)
        rank = 1;
    if (rank >= h->count)
        return h->max;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = value_of(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}
