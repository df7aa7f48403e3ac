/* The RFC 6455 codec and the UTF-8 validator, as data: bytes in, expected
 * results out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/error.h"
#include "ws/codec.h"
#include "ws/handshake.h"
#include "ws/utf8.h"

/* One header case: the bytes, and what the parser says of them. header is
 * also checked on HS_EAGAIN when it is not 0 (how many bytes it waits for). */
typedef struct header_case {
    const char *bytes;
    size_t len;
    int rc;
    uint8_t opcode;
    uint64_t payload;
    size_t header;
} header_case_t;

static void check_header_cases(const header_case_t *cases, size_t count, int mode)
{
    for (size_t i = 0; i < count; i++) {
        hs_ws_frame_header_t h = {0};
        int rc = hs_ws_parse_header((const uint8_t *)cases[i].bytes, cases[i].len, mode, &h);
        assert_int_equal(rc, cases[i].rc);
        if (rc == 0) {
            assert_int_equal(h.opcode, cases[i].opcode);
            assert_int_equal(h.payload_len, cases[i].payload);
            assert_int_equal(h.masked, mode == HS_WS_MASKED);
            if (mode == HS_WS_UNMASKED)
                assert_memory_equal(h.mask, "\0\0\0\0", 4);
        }
        if (rc == 0 || (rc == HS_EAGAIN && cases[i].header != 0))
            assert_int_equal(h.header_len, cases[i].header);
    }
}

/* Frames from a client (the server's side): masked, or a protocol error. */
static void test_header_cases(void **state)
{
    (void)state;
    static const header_case_t cases[] = {
        {"\x81\x85\x01\x02\x03\x04", 6, 0, 0x1, 5, 6},           /* masked text */
        {"\x81\x05", 2, HS_EPROTO, 0, 0, 0},                     /* unmasked */
        {"\x81", 1, HS_EAGAIN, 0, 0, 0},                         /* short */
        {"\x81\x85\x01\x02", 4, HS_EAGAIN, 0, 0, 0},             /* mask missing */
        {"\x82\xfe\x01\x00\x01\x02\x03\x04", 8, 0, 0x2, 256, 8}, /* 16-bit length */
        {"\x82\xfe\x01", 3, HS_EAGAIN, 0, 0, 0},
        {"\x82\xff\x00\x00\x00\x00\x00\x01\x00\x00\x01\x02\x03\x04", 14, 0, 0x2, 65536, 14},
        {"\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00\x01\x02\x03\x04", 14, HS_EPROTO, 0, 0, 0},
        {"\xc1\x80\x00\x00\x00\x00", 6, HS_EPROTO, 0, 0, 0},         /* RSV1 */
        {"\xa1\x80\x00\x00\x00\x00", 6, HS_EPROTO, 0, 0, 0},         /* RSV2 */
        {"\x83\x80\x00\x00\x00\x00", 6, HS_EPROTO, 0, 0, 0},         /* opcode 3 */
        {"\x8b\x80\x00\x00\x00\x00", 6, HS_EPROTO, 0, 0, 0},         /* opcode 0xB */
        {"\x09\x80\x00\x00\x00\x00", 6, HS_EPROTO, 0, 0, 0},         /* fragmented ping */
        {"\x89\xfe\x00\x7e\x00\x00\x00\x00", 8, HS_EPROTO, 0, 0, 0}, /* ping > 125 */
        {"\x89\xfd\x00\x00\x00\x00", 6, 0, 0x9, 125, 6},             /* ping = 125 */
        {"\x00\x80\x00\x00\x00\x00", 6, 0, 0x0, 0, 6},               /* continuation */
    };
    check_header_cases(cases, sizeof(cases) / sizeof(cases[0]), HS_WS_MASKED);
}

/* The same parser told that frames come from a server (the CLI, the bench):
 * a mask is now the protocol error, and the header has no mask bytes. */
static void test_server_header_cases(void **state)
{
    (void)state;
    static const header_case_t cases[] = {
        {"\x81\x05hello", 7, 0, 0x1, 5, 2},                  /* unmasked text */
        {"\x81\x85\x01\x02\x03\x04", 6, HS_EPROTO, 0, 0, 0}, /* masked */
        {"\x81", 1, HS_EAGAIN, 0, 0, 2},                     /* short */
        {"\x82\x7e\x01\x00", 4, 0, 0x2, 256, 4},             /* 16-bit length */
        {"\x82\x7e\x01", 3, HS_EAGAIN, 0, 0, 4},             /* needs exactly 4 */
        {"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10, 0, 0x2, 65536, 10},
        {"\x82\x7f\x00\x00\x00", 5, HS_EAGAIN, 0, 0, 10}, /* needs exactly 10 */
        {"\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00", 10, HS_EPROTO, 0, 0, 0},
        {"\xc1\x00", 2, HS_EPROTO, 0, 0, 0},         /* RSV1 */
        {"\x83\x00", 2, HS_EPROTO, 0, 0, 0},         /* opcode 3 */
        {"\x09\x00", 2, HS_EPROTO, 0, 0, 0},         /* fragmented ping */
        {"\x89\x7e\x00\x7e", 4, HS_EPROTO, 0, 0, 0}, /* ping > 125 */
        {"\x88\x02\x03\xe8", 4, 0, 0x8, 2, 2},       /* close 1000 */
        {"\x00\x00", 2, 0, 0x0, 0, 2},               /* continuation */
    };
    check_header_cases(cases, sizeof(cases) / sizeof(cases[0]), HS_WS_UNMASKED);
    /* A frame the server encodes is one the client side parses back. */
    hs_buf_t *frame = hs_ws_frame_new(HS_WS_OP_TEXT, "hello", 5);
    hs_ws_frame_header_t h = {0};
    assert_int_equal(
        hs_ws_parse_header((const uint8_t *)frame->data, frame->len, HS_WS_UNMASKED, &h), 0);
    assert_int_equal(h.header_len, 2);
    assert_int_equal(h.payload_len, 5);
    assert_true(h.fin);
    hs_buf_unref(frame);
}

static void test_encode_lengths(void **state)
{
    (void)state;
    uint8_t h[HS_WS_MAX_HEADER];
    assert_int_equal(hs_ws_write_header(h, true, HS_WS_OP_TEXT, 0), 2);
    assert_memory_equal(h, "\x81\x00", 2);
    assert_int_equal(hs_ws_write_header(h, true, HS_WS_OP_TEXT, 125), 2);
    assert_memory_equal(h, "\x81\x7d", 2);
    assert_int_equal(hs_ws_write_header(h, true, HS_WS_OP_BINARY, 126), 4);
    assert_memory_equal(h, "\x82\x7e\x00\x7e", 4);
    assert_int_equal(hs_ws_write_header(h, false, HS_WS_OP_TEXT, 65535), 4);
    assert_memory_equal(h, "\x01\x7e\xff\xff", 4);
    assert_int_equal(hs_ws_write_header(h, true, HS_WS_OP_TEXT, 65536), 10);
    assert_memory_equal(h, "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    hs_buf_t *frame = hs_ws_frame_new(HS_WS_OP_TEXT, "hello", 5);
    assert_int_equal(frame->len, 7);
    assert_memory_equal(frame->data, "\x81\x05hello", 7);
    hs_buf_unref(frame);
    frame = hs_ws_close_frame_new(1001, "bye");
    assert_memory_equal(frame->data,
                        "\x88\x05\x03\xe9"
                        "bye",
                        7);
    hs_buf_unref(frame);
    frame = hs_ws_close_frame_new(0, NULL);
    assert_memory_equal(frame->data, "\x88\x00", 2);
    hs_buf_unref(frame);
    /* A long reason is cut to fit 125 bytes without splitting a character. */
    char reason[200];
    memset(reason, 'a', sizeof(reason));
    memcpy(reason + 122, "\xc3\xa9", 2);
    reason[199] = '\0';
    frame = hs_ws_close_frame_new(1000, reason);
    assert_int_equal(frame->data[1], 2 + 122);
    hs_buf_unref(frame);
}

static void test_unmask_in_pieces(void **state)
{
    (void)state;
    const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t data[] = {0x7f, 0x9f, 0x4d, 0x51, 0x58}; /* RFC 6455 5.7: "Hello" */
    uint8_t whole[5];
    memcpy(whole, data, 5);
    hs_ws_unmask(whole, 5, mask, 0);
    assert_memory_equal(whole, "Hello", 5);
    hs_ws_unmask(data, 3, mask, 0);
    hs_ws_unmask(data + 3, 2, mask, 3);
    assert_memory_equal(data, "Hello", 5);
    uint8_t big[37];
    for (int i = 0; i < 37; i++)
        big[i] = (uint8_t)(i ^ mask[i % 4]);
    hs_ws_unmask(big + 1, 36, mask, 1);
    for (int i = 1; i < 37; i++)
        assert_int_equal(big[i], i);
}

static void test_close_codes(void **state)
{
    (void)state;
    uint16_t ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999};
    uint16_t bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_true(hs_ws_close_code_valid(ok[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(hs_ws_close_code_valid(bad[i]));
}

static hs_utf8_result_t check(const char *s, size_t len)
{
    hs_utf8_state_t st;
    hs_utf8_init(&st);
    return hs_utf8_feed(&st, (const uint8_t *)s, len);
}

static void test_utf8(void **state)
{
    (void)state;
    struct {
        const char *s;
        size_t len;
        hs_utf8_result_t want;
    } cases[] = {
        {"hello world, plain ascii text!", 30, HS_UTF8_ACCEPT},
        {"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 11, HS_UTF8_ACCEPT}, /* kosme */
        {"\xf4\x8f\xbf\xbf", 4, HS_UTF8_ACCEPT},                              /* U+10FFFF */
        {"\xef\xbf\xbf", 3, HS_UTF8_ACCEPT},                                  /* U+FFFF */
        {"\xf4\x90\x80\x80", 4, HS_UTF8_REJECT},                              /* > U+10FFFF */
        {"\xed\xa0\x80", 3, HS_UTF8_REJECT},                                  /* surrogate */
        {"\xc0\xaf", 2, HS_UTF8_REJECT},                                      /* overlong / */
        {"\xe0\x80\xaf", 3, HS_UTF8_REJECT},                                  /* overlong */
        {"\xf0\x80\x80\xaf", 4, HS_UTF8_REJECT},                              /* overlong */
        {"\x80", 1, HS_UTF8_REJECT},                                          /* lone cont. */
        {"\xfe", 1, HS_UTF8_REJECT},
        {"\xce", 1, HS_UTF8_INCOMPLETE},
        {"\xce\x41", 2, HS_UTF8_REJECT},
        {"abcdefgh\xce", 9, HS_UTF8_INCOMPLETE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(check(cases[i].s, cases[i].len), cases[i].want);
    /* Fed one byte at a time, a split character is still accepted, and a
     * bad byte is rejected where it occurs, not at the end. */
    const char *kosme = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
    hs_utf8_state_t st;
    hs_utf8_init(&st);
    for (size_t i = 0; i < 11; i++) {
        hs_utf8_result_t r = hs_utf8_feed(&st, (const uint8_t *)kosme + i, 1);
        assert_true(r != HS_UTF8_REJECT);
    }
    assert_int_equal(st.need, 0);
    hs_utf8_init(&st);
    assert_int_equal(hs_utf8_feed(&st, (const uint8_t *)"\xed", 1), HS_UTF8_INCOMPLETE);
    assert_int_equal(hs_utf8_feed(&st, (const uint8_t *)"\xa0", 1), HS_UTF8_REJECT);
}

static void test_handshake(void **state)
{
    (void)state;
    char accept[HS_WS_ACCEPT_LEN + 1];
    hs_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, accept); /* RFC 6455 1.3 */
    assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_true(hs_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==", 24));
    assert_false(hs_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=", 23));
    assert_false(hs_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ!!", 24));
    assert_false(hs_ws_key_valid("aGVsbG8gd29ybGQgaGVsbG8=", 24)); /* 17 bytes */
    assert_true(hs_ws_header_has_token("keep-alive, Upgrade", 19, "upgrade"));
    assert_true(hs_ws_header_has_token("websocket", 9, "websocket"));
    assert_false(hs_ws_header_has_token("upgrades", 8, "upgrade"));
    assert_false(hs_ws_header_has_token("", 0, "upgrade"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_cases),   cmocka_unit_test(test_server_header_cases),
        cmocka_unit_test(test_encode_lengths), cmocka_unit_test(test_unmask_in_pieces),
        cmocka_unit_test(test_close_codes),    cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_handshake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
