/* hist: a fixed-memory log-linear histogram of uint64 values (nanoseconds
 * here), in the manner of HdrHistogram: 64 linear sub-buckets per power of
 * two, so any recorded value is reported within 1/64 (1.6 %) of itself.
 * Plain struct, no allocation: it can be sent through a pipe as is. */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 6
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_BUCKETS  (2 * HIST_SUB + (64 - HIST_SUB_BITS - 1) * HIST_SUB)

typedef struct {
    uint64_t count;
    uint64_t max;
    uint64_t buckets[HIST_BUCKETS];
} hist_t;

void hist_init(hist_t *h);
void hist_record(hist_t *h, uint64_t value);
/* Adds every count of src into dst. */
void hist_merge(hist_t *dst, const hist_t *src);
/* The value at quantile q (0..1]; 0 when empty. The max is exact. */
uint64_t hist_quantile(const hist_t *h, double q);

#endif
