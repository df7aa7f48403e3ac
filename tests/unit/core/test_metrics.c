/* The metrics table and the exposition rendered from it: every metric of
 * hs_metric_defs appears once with its # HELP and # TYPE lines, in table
 * order, with the value of the field its row names; the names follow the
 * Prometheus conventions; `houston status` shows the rows with a label. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"

static char *render(const hs_metrics_t *m, const hs_metrics_gauges_t *g)
{
    hs_buf_t *buf = hs_metrics_render(m, g);
    char *text = malloc(buf->len + 1);
    memcpy(text, buf->data, buf->len);
    text[buf->len] = '\0';
    hs_buf_unref(buf);
    return text;
}

static void test_names_follow_the_conventions(void **state)
{
    (void)state;
    assert_true(hs_metric_def_count >= 20);
    for (size_t i = 0; i < hs_metric_def_count; i++) {
        const hs_metric_def_t *d = &hs_metric_defs[i];
        assert_memory_equal(d->name, "houston_", 8);
        assert_true(strcmp(d->type, "gauge") == 0 || strcmp(d->type, "counter") == 0 ||
                    strcmp(d->type, "histogram") == 0);
        size_t n = strlen(d->name);
        bool total = n > 6 && strcmp(d->name + n - 6, "_total") == 0;
        assert_int_equal(total, strcmp(d->type, "counter") == 0); /* counters, and only they */
        assert_int_equal(strcmp(d->type, "histogram") == 0, d->source == HS_METRIC_HISTOGRAM);
        assert_true(d->help[0] != '\0' && strchr(d->help, '\n') == NULL);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(d->name, hs_metric_defs[j].name);
    }
}

/* Each field set to a value of its own; the exposition shows each under
 * its row's name, in table order. */
static void test_exposition_is_the_table(void **state)
{
    (void)state;
    static hs_metrics_t m;
    memset(&m, 0, sizeof(m));
    hs_metrics_gauges_t g = {0};
    for (size_t i = 0; i < hs_metric_def_count; i++) {
        const hs_metric_def_t *d = &hs_metric_defs[i];
        if (d->source == HS_METRIC_COUNTERS)
            *(uint64_t *)((char *)&m + d->offset) = 1000 + i;
        else if (d->source == HS_METRIC_GAUGES)
            *(uint64_t *)((char *)&g + d->offset) = 1000 + i;
        else if (d->source == HS_METRIC_HISTOGRAM)
            for (size_t k = 0; k < i; k++)
                hs_histogram_observe((hs_histogram_t *)((char *)&m + d->offset), 0.003);
    }
    m.http_responses[201] = 4;
    m.http_responses[404] = 1;
    char *text = render(&m, &g);
    const char *at = text;
    for (size_t i = 0; i < hs_metric_def_count; i++) {
        const hs_metric_def_t *d = &hs_metric_defs[i];
        char line[1024];
        snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help, d->name,
                 d->type);
        const char *found = strstr(at, line);
        assert_non_null(found); /* present, and after the rows before it */
        at = found + strlen(line);
        if (d->source == HS_METRIC_COUNTERS || d->source == HS_METRIC_GAUGES)
            snprintf(line, sizeof(line), "\n%s %zu\n", d->name, 1000 + i);
        else if (d->source == HS_METRIC_HISTOGRAM)
            snprintf(line, sizeof(line), "\n%s_count %zu\n", d->name, i);
        else
            snprintf(line, sizeof(line), "\n%s{status=\"201\"} 4\n%s{status=\"404\"} 1\n", d->name,
                     d->name);
        assert_non_null(strstr(at - 1, line));
    }
    /* Nothing but the table: every # TYPE line is a row's. */
    size_t types = 0;
    for (const char *p = text; (p = strstr(p, "# TYPE ")) != NULL; p++)
        types++;
    assert_int_equal(types, hs_metric_def_count);
    free(text);
}

/* `houston status` shows the rows with a label, and those are these. */
static void test_status_labels(void **state)
{
    (void)state;
    static const char *const shown[] = {
        "houston_connections",      "houston_subscriptions",
        "houston_topics",           "houston_messages_published_total",
        "houston_deliveries_total", "houston_bytes_sent_total",
    };
    size_t labelled = 0;
    for (size_t i = 0; i < hs_metric_def_count; i++) {
        const hs_metric_def_t *d = &hs_metric_defs[i];
        if (d->status_label == NULL)
            continue;
        assert_true(labelled < sizeof(shown) / sizeof(shown[0]));
        assert_string_equal(d->name, shown[labelled]);
        assert_true(strlen(d->status_label) <= 24); /* the width of status's column */
        labelled++;
    }
    assert_int_equal(labelled, sizeof(shown) / sizeof(shown[0]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_follow_the_conventions),
        cmocka_unit_test(test_exposition_is_the_table),
        cmocka_unit_test(test_status_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
