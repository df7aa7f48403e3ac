/* The publish path writes a message's JSON text directly; it must be byte
 * for byte what jansson makes of the same object (the history and the
 * idempotent repeat still go through jansson, and a client may compare). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "roles/render.h"

static void assert_same_as_jansson(const char *topic, const char *content, size_t content_len,
                                   const char *author)
{
    hs_message_t msg = {.topic = topic,
                        .content = content,
                        .content_len = content_len,
                        .author = author,
                        .created_ms = 1764430000123ull};
    memcpy(msg.id, "01KB2Q6Z8T3V0E9M4N5P6R7S8W", HS_ULID_LEN + 1);
    json_t *json = hs_render_message(&msg);
    assert_non_null(json);
    size_t want_len, got_len;
    char *want = hs_render_text(json, &want_len);
    char *got = hs_render_message_text(&msg, &got_len);
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, want_len);
    assert_int_equal(got[got_len], '\0');
    free(want);
    hs_free(got);
    json_decref(json);
}

static void test_plain_and_escaped(void **state)
{
    (void)state;
    assert_same_as_jansson("t", "hello", 5, "");
    assert_same_as_jansson("news/eu", "a \"quoted\" \\ back/slash", 24, "svc-1");
    assert_same_as_jansson("t", "", 0, "");
    assert_same_as_jansson("t", "nul\0inside", 10, "a");
    assert_same_as_jansson("t", "\b\f\n\r\t\x01\x1f\x7f", 8, "\n");
    assert_same_as_jansson("caf\xc3\xa9", "\xe2\x80\xa8 \xf0\x9f\x98\x80 \xc3\xbc", 12,
                           "\xe2\x82\xac");
}

static void test_every_ascii_byte(void **state)
{
    (void)state;
    char all[128];
    for (int i = 0; i < 128; i++)
        all[i] = (char)i;
    assert_same_as_jansson("t", all, sizeof(all), "x");
    for (int i = 0; i < 128; i++) {
        char author[2] = {(char)(i ? i : 1), '\0'};
        assert_same_as_jansson("t", all + i, 1, author);
    }
}

/* Random valid UTF-8: ASCII of every kind mixed with 2-, 3- and 4-byte
 * characters. */
static void test_random_utf8(void **state)
{
    (void)state;
    srand(7);
    static const char *const wide[] = {"\xc3\xa9",        "\xd0\xaf",     "\xe2\x80\xa8",
                                       "\xe4\xb8\xad",    "\xef\xbf\xbd", "\xf0\x9f\x98\x80",
                                       "\xf4\x8f\xbf\xbf"};
    char text[512];
    for (int round = 0; round < 500; round++) {
        size_t len = 0;
        while (len < sizeof(text) - 8 && rand() % 64) {
            if (rand() % 4 == 0) {
                const char *w = wide[rand() % 7];
                memcpy(text + len, w, strlen(w));
                len += strlen(w);
            } else {
                text[len++] = (char)(rand() % 128);
            }
        }
        assert_same_as_jansson("topic", text, len, "author");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_escaped),
        cmocka_unit_test(test_every_ascii_byte),
        cmocka_unit_test(test_random_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
