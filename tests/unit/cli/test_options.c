/* The client's URLs and flags: schemes, default ports and paths, IPv6
 * hosts, the WebSocket URL derived from --server, environment versus
 * flags, per-command flags, and the man page naming every setting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/manpage.h"
#include "cli/options.h"
#include "cli/url.h"
#include "core/config.h"
#include "core/error.h"

static void test_urls(void **state)
{
    hs_cli_url_t u;
    char err[256];
    assert_int_equal(
        hs_cli_url_parse("http://example.org:9002/prefix/", "http", "80", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "example.org");
    assert_string_equal(u.port, "9002");
    assert_string_equal(u.path, "/prefix");
    assert_string_equal(u.authority, "example.org:9002");
    assert_int_equal(hs_cli_url_parse("ws://[::1]:9001", "ws", "80", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.authority, "[::1]:9001");
    assert_string_equal(u.path, "");
    assert_int_equal(hs_cli_url_parse("localhost", "http", "80", &u, err, sizeof(err)), 0);
    assert_string_equal(u.port, "80");
    assert_int_equal(hs_cli_url_parse(":9002", "http", "80", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "localhost");
    /* The secure forms, 443 without a port. */
    assert_int_equal(hs_cli_url_parse("https://x", "http", "80", &u, err, sizeof(err)), 0);
    assert_true(u.tls);
    assert_string_equal(u.scheme, "https");
    assert_string_equal(u.port, "443");
    assert_int_equal(hs_cli_url_parse("WSS://x:8443/p", "ws", "80", &u, err, sizeof(err)), 0);
    assert_true(u.tls);
    assert_string_equal(u.authority, "x:8443");
    assert_int_equal(hs_cli_url_parse("http://x", "http", "80", &u, err, sizeof(err)), 0);
    assert_false(u.tls);
    assert_int_equal(hs_cli_url_parse("wss://x", "http", "80", &u, err, sizeof(err)), HS_EINVAL);
    assert_non_null(strstr(err, "only http:// and https://"));
    assert_int_equal(hs_cli_url_parse("httpss://x", "http", "80", &u, err, sizeof(err)), HS_EINVAL);
    /* A query (a token, perhaps) is never shown. */
    assert_int_equal(
        hs_cli_url_parse("ws://h:1/api/v1/ws?token=SECRET", "ws", "80", &u, err, sizeof(err)), 0);
    char shown[256];
    hs_cli_url_show(&u, shown, sizeof(shown));
    assert_string_equal(shown, "ws://h:1/api/v1/ws?***");
    assert_int_equal(hs_cli_url_parse("http://x:abc", "http", "80", &u, err, sizeof(err)),
                     HS_EINVAL);
    assert_int_equal(hs_cli_url_parse("http://[::1", "http", "80", &u, err, sizeof(err)),
                     HS_EINVAL);
}

static int parse(unsigned allowed, hs_cli_options_t *opt, char *err, int argc, ...)
{
    static char *argv[16];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    return hs_cli_options_parse(argc, argv, allowed, opt, err, 256);
}

static void test_defaults_and_derived_ws_url(void **state)
{
    unsetenv("HOUSTON_URL");
    unsetenv("HOUSTON_WS_URL");
    unsetenv("HOUSTON_API_KEY");
    hs_cli_options_t opt;
    char err[256];
    assert_int_equal(parse(0, &opt, err, 1, "topic"), 0);
    assert_string_equal(opt.api.authority, "localhost:9002");
    assert_string_equal(opt.ws.authority, "localhost:9001");
    assert_string_equal(opt.ws.path, "/api/v1/ws");
    assert_null(opt.api_key);
    assert_int_equal(opt.arg_count, 1);
    assert_false(opt.ws_given);
    assert_null(opt.token);
    assert_false(opt.tls.insecure);
    assert_int_equal(parse(0, &opt, err, 2, "--server", "http://[::1]:8000"), 0);
    assert_string_equal(opt.ws.authority, "[::1]:9001");
    /* An https API's fallback WebSocket is wss. */
    assert_int_equal(parse(0, &opt, err, 2, "--server", "https://h:8000"), 0);
    assert_string_equal(opt.ws.scheme, "wss");
    assert_string_equal(opt.ws.authority, "h:9001");
}

static void test_tls_and_token_flags(void **state)
{
    unsetenv("HOUSTON_URL");
    unsetenv("HOUSTON_WS_URL");
    setenv("HOUSTON_TOKEN", "env.jwt.x", 1);
    setenv("HOUSTON_CA_FILE", "/env/ca.pem", 1);
    hs_cli_options_t opt;
    char err[256];
    assert_int_equal(parse(0, &opt, err, 0), 0);
    assert_string_equal(opt.token, "env.jwt.x");
    assert_string_equal(opt.tls.ca_file, "/env/ca.pem");
    assert_int_equal(
        parse(0, &opt, err, 5, "--token", "a.b.c", "--ca-file=/x.pem", "--insecure", "topic"), 0);
    assert_string_equal(opt.token, "a.b.c");
    assert_string_equal(opt.tls.ca_file, "/x.pem");
    assert_true(opt.tls.insecure);
    assert_int_equal(opt.arg_count, 1);
    assert_int_equal(parse(0, &opt, err, 1, "--insecure=false"), 0);
    assert_false(opt.tls.insecure);
    assert_int_equal(parse(0, &opt, err, 1, "--insecure=maybe"), HS_EINVAL);
    /* A header injection is refused, and the value is not repeated. */
    assert_int_equal(parse(0, &opt, err, 2, "--token", "x\r\nX-Evil: 1"), HS_EINVAL);
    assert_non_null(strstr(err, "--token"));
    assert_null(strstr(err, "Evil"));
    assert_int_equal(parse(0, &opt, err, 2, "--api-key", "a b"), HS_EINVAL);
    assert_non_null(strstr(err, "--api-key"));
    unsetenv("HOUSTON_TOKEN");
    unsetenv("HOUSTON_CA_FILE");
}

static void test_environment_and_flags(void **state)
{
    setenv("HOUSTON_URL", "http://env-host:1", 1);
    setenv("HOUSTON_WS_URL", "ws://ws-host:2/custom", 1);
    setenv("HOUSTON_API_KEY", "env-key", 1);
    hs_cli_options_t opt;
    char err[256];
    assert_int_equal(parse(0, &opt, err, 0), 0);
    assert_string_equal(opt.api.authority, "env-host:1");
    assert_string_equal(opt.ws.authority, "ws-host:2");
    assert_string_equal(opt.ws.path, "/custom");
    assert_string_equal(opt.api_key, "env-key");
    assert_int_equal(parse(0, &opt, err, 3, "--server=http://flag-host:3", "--api-key", "k"), 0);
    assert_string_equal(opt.api.authority, "flag-host:3");
    assert_string_equal(opt.api_key, "k");
    unsetenv("HOUSTON_URL");
    unsetenv("HOUSTON_WS_URL");
    unsetenv("HOUSTON_API_KEY");
}

static void test_command_flags(void **state)
{
    hs_cli_options_t opt;
    char err[256];
    assert_int_equal(parse(HS_CLI_OPT_AUTHOR, &opt, err, 5, "t", "--author", "al", "--", "-x"), 0);
    assert_string_equal(opt.author, "al");
    assert_int_equal(opt.arg_count, 2);
    assert_string_equal(opt.args[1], "-x");
    assert_int_equal(parse(HS_CLI_OPT_SINCE, &opt, err, 3, "t", "--author", "al"), HS_EINVAL);
    assert_non_null(strstr(err, "unknown flag --author"));
    assert_int_equal(parse(HS_CLI_OPT_AUTHOR | HS_CLI_OPT_BATCH, &opt, err, 1, "--batch=-"), 0);
    assert_string_equal(opt.batch, "-");
    assert_int_equal(opt.arg_count, 0);
    assert_int_equal(parse(HS_CLI_OPT_AUTHOR, &opt, err, 2, "--batch", "f.jsonl"), HS_EINVAL);
    assert_int_equal(parse(HS_CLI_OPT_LIMIT, &opt, err, 2, "--limit", "0"), HS_EINVAL);
    assert_int_equal(parse(HS_CLI_OPT_LIMIT, &opt, err, 2, "--limit", "12"), 0);
    assert_int_equal(opt.limit, 12);
    unsigned both = HS_CLI_OPT_BEFORE | HS_CLI_OPT_AFTER;
    assert_int_equal(parse(both, &opt, err, 4, "--before", "a", "--after", "b"), HS_EINVAL);
    assert_int_equal(parse(0, &opt, err, 1, "--server"), HS_EINVAL);
    assert_non_null(strstr(err, "needs a value"));
    assert_int_equal(parse(0, &opt, err, 1, "-h"), 0);
    assert_true(opt.help);
}

/* The page writes --max-content as \-\-max\-content. */
static void setting_cb(const hs_config_setting_info_t *info, void *ctx)
{
    char escaped[256] = "\\-\\-";
    size_t n = strlen(escaped);
    for (const char *p = info->name; *p && n + 3 < sizeof(escaped); p++) {
        if (*p == '-')
            escaped[n++] = '\\';
        escaped[n++] = *p;
    }
    escaped[n] = '\0';
    assert_non_null(strstr((const char *)ctx, escaped));
}

static void test_manpage_names_every_setting(void **state)
{
    char *page = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&page, &len);
    hs_cli_print_manpage(out);
    fclose(out);
    assert_non_null(strstr(page, ".TH HOUSTON 1"));
    assert_non_null(strstr(page, ".SH SEE ALSO"));
    hs_config_each(setting_cb, page);
    free(page);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_defaults_and_derived_ws_url),
        cmocka_unit_test(test_tls_and_token_flags),
        cmocka_unit_test(test_environment_and_flags),
        cmocka_unit_test(test_command_flags),
        cmocka_unit_test(test_manpage_names_every_setting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
