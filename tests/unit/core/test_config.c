/* The settings table: defaults, a settings file, environment and flags in
 * that order of precedence, units and limits, errors that name the setting,
 * and `houston config`'s output with secrets masked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/error.h"

static char path[64];

static int load(hs_config_t *cfg, char *err, int argc, char **argv)
{
    hs_config_defaults(cfg);
    return hs_config_load(cfg, argc, argv, err, 256);
}

static void write_file(const char *text)
{
    snprintf(path, sizeof(path), "/tmp/houston-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* What `houston config` prints for cfg; free() it. */
static char *printed(const hs_config_t *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    hs_config_print(cfg, out);
    fclose(out);
    return text;
}

static void test_defaults(void **state)
{
    (void)state;
    hs_config_t cfg;
    char err[256];
    assert_int_equal(load(&cfg, err, 0, NULL), 0);
    assert_string_equal(cfg.ws_addr, ":9001");
    assert_string_equal(cfg.api_addr, ":9002");
    assert_string_equal(cfg.db, "sqlite:houston.db");
    assert_int_equal(cfg.max_content, 65536);
    assert_int_equal(cfg.ping_interval_ms, 30000);
    assert_int_equal(cfg.node_stream_max, 10000);
    assert_int_equal(cfg.event_stream_max, 100000);
    assert_int_equal(cfg.sources[0], HS_CONFIG_DEFAULT);
    hs_config_dispose(&cfg);
}

static void test_precedence_file_env_flag(void **state)
{
    (void)state;
    write_file("# comment\n\nws_addr = 127.0.0.1:1111\nmax-content = 1k\n"
               "ping-interval = 250ms\napi-addr=:2222\n");
    setenv("HOUSTON_MAX_CONTENT", "2k", 1);
    setenv("HOUSTON_API_ADDR", ":3333", 1);
    char flag_config[96];
    snprintf(flag_config, sizeof(flag_config), "--config=%s", path);
    char *argv[] = {flag_config, "--api-addr", ":4444", "--ping-interval=2m"};
    hs_config_t cfg;
    char err[256];
    assert_int_equal(load(&cfg, err, 4, argv), 0);
    assert_string_equal(cfg.ws_addr, "127.0.0.1:1111"); /* file */
    assert_int_equal(cfg.max_content, 2048);            /* env over file */
    assert_string_equal(cfg.api_addr, ":4444");         /* flag over env */
    assert_int_equal(cfg.ping_interval_ms, 120000);     /* flag over file */
    char *text = printed(&cfg);
    assert_non_null(strstr(text, "ws-addr              = 127.0.0.1:1111   # file"));
    assert_non_null(strstr(text, "max-content          = 2048   # environment"));
    assert_non_null(strstr(text, "api-addr             = :4444   # flag"));
    free(text);
    hs_config_dispose(&cfg);
    unsetenv("HOUSTON_MAX_CONTENT");
    unsetenv("HOUSTON_API_ADDR");
    unlink(path);
}

static void test_secrets_are_masked(void **state)
{
    (void)state;
    char *argv[] = {"--db", "mysql://houston:s3cret@db:3306/houston"};
    hs_config_t cfg;
    char err[256];
    assert_int_equal(load(&cfg, err, 2, argv), 0);
    char *text = printed(&cfg);
    assert_null(strstr(text, "s3cret"));
    assert_non_null(strstr(text, "mysql://houston:***@db:3306/houston"));
    free(text);
    hs_config_dispose(&cfg);
}

static void test_errors_name_the_setting(void **state)
{
    (void)state;
    struct {
        const char *arg;
        const char *mention;
    } cases[] = {
        {"--max-content=abc", "--max-content"},
        {"--max-content=1t", "--max-content"},
        {"--max-content=0", "out of range"},
        {"--ping-interval=5x", "--ping-interval"},
        {"--batch-max=1k", "--batch-max"},
        {"--nope=1", "unknown flag --nope"},
        {"--log-format=xml", "--log-format"},
        {"stray", "unexpected argument"},
        {"--max-body=99999999999999999999999", "--max-body"},
        /* streams keep at least 1,000 entries */
        {"--node-stream-max=999", "out of range"},
        {"--event-stream-max=10", "out of range"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hs_config_t cfg;
        char err[256] = "";
        char *argv[] = {(char *)cases[i].arg};
        assert_int_equal(load(&cfg, err, 1, argv), HS_EINVAL);
        assert_non_null(strstr(err, cases[i].mention));
        hs_config_dispose(&cfg);
    }
    hs_config_t cfg;
    char err[256] = "";
    char *argv[] = {"--ws-addr"};
    assert_int_equal(load(&cfg, err, 1, argv), HS_EINVAL);
    assert_non_null(strstr(err, "needs a value"));
    hs_config_dispose(&cfg);

    write_file("max-content = 1k\nbogus = 3\n");
    char flag_config[96];
    snprintf(flag_config, sizeof(flag_config), "--config=%s", path);
    char *file_argv[] = {flag_config};
    assert_int_equal(load(&cfg, err, 1, file_argv), HS_EINVAL);
    assert_non_null(strstr(err, ":2: unknown setting \"bogus\""));
    hs_config_dispose(&cfg);
    unlink(path);
}

static void test_security_settings(void **state)
{
    (void)state;
    hs_config_t cfg;
    char err[256];
    setenv("HOUSTON_API_KEY", "from-env", 1);
    char *argv[] = {"--api-key",
                    "first",
                    "--insecure",
                    "--api-key=second,third",
                    "--jwt-secret",
                    "hush",
                    "--client-message-rate",
                    "0"};
    assert_int_equal(load(&cfg, err, 8, argv), 0);
    /* Repeated flags add up; the environment's value is replaced. */
    assert_string_equal(cfg.api_key, "first,second,third");
    assert_int_equal(cfg.insecure, 1);
    assert_int_equal(cfg.client_message_rate, 0);
    assert_int_equal(cfg.max_conns_per_ip, 256);
    assert_int_equal(cfg.connect_rate, 50);
    assert_int_equal(hs_config_source(&cfg, "api-key"), HS_CONFIG_FLAG);
    assert_int_equal(hs_config_source(&cfg, "api-addr"), HS_CONFIG_DEFAULT);
    char *text = printed(&cfg);
    assert_null(strstr(text, "first"));
    assert_null(strstr(text, "hush"));
    assert_non_null(strstr(text, "insecure             = true"));
    free(text);
    hs_config_dispose(&cfg);
    char *only_env[] = {"--insecure=false"};
    assert_int_equal(load(&cfg, err, 1, only_env), 0);
    assert_string_equal(cfg.api_key, "from-env");
    assert_int_equal(cfg.insecure, 0);
    hs_config_dispose(&cfg);
    unsetenv("HOUSTON_API_KEY");
    char *bad[] = {"--insecure=maybe"};
    assert_int_equal(load(&cfg, err, 1, bad), HS_EINVAL);
    assert_non_null(strstr(err, "--insecure"));
    hs_config_dispose(&cfg);
}

static void test_durations_and_retention(void **state)
{
    (void)state;
    uint64_t ms = 0;
    assert_int_equal(hs_config_parse_duration("7d", &ms), 0);
    assert_true(ms == 7ull * 24 * 3600 * 1000);
    assert_int_equal(hs_config_parse_duration("12h", &ms), 0);
    assert_true(ms == 12ull * 3600 * 1000);
    assert_int_equal(hs_config_parse_duration("1500ms", &ms), 0);
    assert_true(ms == 1500);
    assert_int_equal(hs_config_parse_duration("1w", &ms), HS_EINVAL);
    assert_int_equal(hs_config_parse_duration("", &ms), HS_EINVAL);
    char text[32];
    const struct {
        uint64_t ms;
        const char *text;
    } shown[] = {{0, "0"},         {1500, "1500ms"}, {90000, "90s"},
                 {5400000, "90m"}, {86400000, "1d"}, {7200000, "2h"}};
    for (size_t i = 0; i < sizeof(shown) / sizeof(shown[0]); i++) {
        hs_config_format_duration(shown[i].ms, text, sizeof(text));
        assert_string_equal(text, shown[i].text);
    }
    hs_config_t cfg;
    hs_config_defaults(&cfg);
    assert_true(cfg.retention_age_ms == 0 && cfg.retention_count == 0);
    char err[256];
    char *argv[] = {"--retention-age", "7d", "--retention-count=1000"};
    assert_int_equal(hs_config_load(&cfg, 3, argv, err, sizeof(err)), 0);
    assert_true(cfg.retention_age_ms == 7ull * 24 * 3600 * 1000);
    assert_true(cfg.retention_count == 1000);
    hs_config_dispose(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),           cmocka_unit_test(test_precedence_file_env_flag),
        cmocka_unit_test(test_secrets_are_masked), cmocka_unit_test(test_errors_name_the_setting),
        cmocka_unit_test(test_security_settings),  cmocka_unit_test(test_durations_and_retention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
