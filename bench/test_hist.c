/* The bench's latency histogram: every quantile within its stated 1/64
 * relative error, the max exact, extremes and merging handled. Plain C
 * (no cmocka), so the bench stays free of houston's test libraries. */
#include "hist.h"

#include <stdio.h>

static int failures;

static void check_close(const char *what, double got, double want, double rel)
{
    double err = want ? (got - want) / want : got;
    if (err > rel || err < -rel) {
        printf("FAIL %s: got %.0f, want %.0f (error %.4f)\n", what, got, want, err);
        failures++;
    }
}

int main(void)
{
    static hist_t h, a, b;
    hist_init(&h);
    for (uint64_t v = 1; v <= 1000000; v++)
        hist_record(&h, v * 1000); /* 1 us .. 1 s in ns */
    check_close("p50", (double)hist_quantile(&h, 0.5), 5e8, 1.0 / 64);
    check_close("p90", (double)hist_quantile(&h, 0.9), 9e8, 1.0 / 64);
    check_close("p99", (double)hist_quantile(&h, 0.99), 9.9e8, 1.0 / 64);
    check_close("p99.9", (double)hist_quantile(&h, 0.999), 9.99e8, 1.0 / 64);
    check_close("max", (double)hist_quantile(&h, 1.0), 1e9, 0);
    check_close("count", (double)h.count, 1e6, 0);

    hist_init(&a);
    check_close("empty", (double)hist_quantile(&a, 0.5), 0, 0);
    for (uint64_t v = 0; v < 128; v++) /* the linear range is exact */
        hist_record(&a, v);
    check_close("exact p50", (double)hist_quantile(&a, 0.5), 64, 1.0 / 64);
    hist_init(&b);
    hist_record(&b, UINT64_MAX);
    hist_merge(&a, &b);
    check_close("merged count", (double)a.count, 129, 0);
    if (hist_quantile(&a, 1.0) != UINT64_MAX) {
        printf("FAIL merged max\n");
        failures++;
    }
    printf("%d passed, %d failed\n", failures ? 0 : 1, failures ? 1 : 0);
    return failures != 0;
}
