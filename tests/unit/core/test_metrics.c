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

/* The JSON twin (GET /api/v1/stats): every row under its name, in table
 * order, with its value; histograms cumulative with their bounds. */
static void test_json_is_the_table(void **state)
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
    }
    hs_histogram_observe(&m.publish_commit, 0.0004); /* first bucket */
    hs_histogram_observe(&m.publish_commit, 0.003);  /* le 0.005 */
    hs_histogram_observe(&m.publish_commit, 60);     /* +Inf */
    m.http_responses[201] = 7;
    m.http_responses[404] = 2;
    hs_buf_t *buf = hs_metrics_render_json(&m, &g, 1234567890123ULL);
    char *text = malloc(buf->len + 1);
    memcpy(text, buf->data, buf->len);
    text[buf->len] = '\0';
    hs_buf_unref(buf);
    const char *head = "{\"at\":1234567890123,\"metrics\":{\"houston_connections\":";
    assert_memory_equal(text, head, strlen(head));
    assert_string_equal(text + strlen(text) - 2, "}}");
    /* Every name once, in table order; counters and gauges with their value. */
    const char *at = text;
    for (size_t i = 0; i < hs_metric_def_count; i++) {
        const hs_metric_def_t *d = &hs_metric_defs[i];
        char want[160];
        if (d->source == HS_METRIC_COUNTERS || d->source == HS_METRIC_GAUGES)
            snprintf(want, sizeof(want), "\"%s\":%zu%c", d->name, 1000 + i,
                     i + 1 < hs_metric_def_count ? ',' : '}');
        else
            snprintf(want, sizeof(want), "\"%s\":{", d->name);
        const char *found = strstr(at, want);
        assert_non_null(found);
        at = found + strlen(want);
    }
    assert_non_null(strstr(text, "\"houston_http_responses_total\":{\"201\":7,\"404\":2}"));
    /* Cumulative buckets, one more than the bounds; the last is the count. */
    assert_non_null(strstr(text,
                           "\"houston_publish_commit_seconds\":{\"le\":[0.0005,0.001,0.0025,"
                           "0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5],\"buckets\":[1,1,1,2,2,"
                           "2,2,2,2,2,2,2,2,3],\"sum\":60.003400,\"count\":3}"));
    assert_non_null(strstr(text, "\"houston_publish_to_socket_seconds\":{\"le\":[0.0005,"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_follow_the_conventions),
        cmocka_unit_test(test_exposition_is_the_table),
        cmocka_unit_test(test_status_labels),
        cmocka_unit_test(test_json_is_the_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
