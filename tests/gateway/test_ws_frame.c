/*
 * test_ws_frame.c - the WebSocket frame parser and encoder (RFC 6455, section 5):
 * masking, fragmentation, control-frame rules, close codes, UTF-8 across fragments,
 * size limits, input cut at every byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ws_frame.h"

static const uint8_t mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* A client frame: header, then the payload masked with mask_key (or unmasked). */
static size_t client_frame(uint8_t *out, bool fin, uint8_t op, const void *payload, size_t n,
                           bool masked)
{
    size_t h = gw_ws_frame_header(out, fin, op, n, masked ? mask_key : NULL);
    memcpy(out + h, payload, n);
    if (masked)
        gw_ws_mask(out + h, n, mask_key, 0);
    return h + n;
}

static gw_ws_limits limits(uint64_t max_frame, uint64_t max_message)
{
    gw_ws_limits lim = {.max_frame = max_frame, .max_message = max_message, .require_mask = true};
    return lim;
}

/* Feeds everything; returns the first event (NONE if none) and how much was used. */
static gw_ws_event_kind feed_all(gw_ws_parser *p, const uint8_t *buf, size_t len, size_t *used,
                                 gw_ws_event *ev)
{
    return gw_ws_parser_feed(p, buf, len, used, ev);
}

static void reads_a_masked_text_message(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = client_frame(buf, true, GW_WS_OP_TEXT, "Hello", 5, true);
    /* The RFC's own example (5.7): a masked "Hello". */
    const uint8_t rfc[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    assert_int_equal(n, sizeof(rfc));
    assert_memory_equal(buf, rfc, n);
    gw_ws_limits lim = limits(1024, 1024);
    gw_ws_parser p;
    gw_ws_parser_init(&p, &lim);
    gw_ws_event ev;
    size_t used;
    assert_int_equal(feed_all(&p, buf, n, &used, &ev), GW_WS_EV_MESSAGE);
    assert_int_equal(used, n);
    assert_true(ev.text);
    assert_int_equal(ev.len, 5);
    assert_memory_equal(ev.data, "Hello", 5);
    gw_ws_parser_reset(&p);
}

static void refuses_an_unmasked_client_frame(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = client_frame(buf, true, GW_WS_OP_TEXT, "Hello", 5, false);
    gw_ws_limits lim = limits(1024, 1024);
    gw_ws_parser p;
    gw_ws_parser_init(&p, &lim);
    gw_ws_event ev;
    size_t used;
    assert_int_equal(feed_all(&p, buf, n, &used, &ev), GW_WS_EV_ERROR);
    assert_int_equal(ev.code, GW_WS_CLOSE_PROTOCOL);
    /* Done: nothing more is read. */
    assert_int_equal(gw_ws_parser_feed(&p, buf, n, &used, &ev), GW_WS_EV_NONE);
    assert_int_equal(used, 0);
    gw_ws_parser_reset(&p);
}

static void joins_fragments_with_a_ping_between_them(void **state)
{
    (void)state;
    uint8_t buf[256];
    size_t n = client_frame(buf, false, GW_WS_OP_BINARY, "abc", 3, true);
    n += client_frame(buf + n, true, GW_WS_OP_PING, "pp", 2, true);
    n += client_frame(buf + n, false, GW_WS_OP_CONT, "", 0, true);
    n += client_frame(buf + n, true, GW_WS_OP_CONT, "defg", 4, true);
    gw_ws_limits lim = limits(1024, 1024);
    gw_ws_parser p;
    gw_ws_parser_init(&p, &lim);
    gw_ws_event ev;
    size_t used, at = 0;
    assert_int_equal(gw_ws_parser_feed(&p, buf, n, &used, &ev), GW_WS_EV_PING);
    assert_int_equal(ev.len, 2);
    assert_memory_equal(ev.data, "pp", 2);
    at += used;
    assert_int_equal(gw_ws_parser_feed(&p, buf + at, n - at, &used, &ev), GW_WS_EV_MESSAGE);
    assert_false(ev.text);
    assert_int_equal(ev.len, 7);
    assert_memory_equal(ev.data, "abcdefg", 7);
    assert_int_equal(at + used, n);
    gw_ws_parser_reset(&p);
}

/* Every split of the input into two reads gives the same events. */
static void reads_the_same_whatever_the_read_boundaries(void **state)
{
    (void)state;
    uint8_t big[300];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)('a' + i % 26);
    uint8_t buf[1024];
    size_t n = client_frame(buf, false, GW_WS_OP_TEXT, "caf\xc3", 4, true);
    n += client_frame(buf + n, true, GW_WS_OP_CONT, "\xa9!", 2, true);
    n += client_frame(buf + n, true, GW_WS_OP_BINARY, big, sizeof(big), true);
    n += client_frame(buf + n, true, GW_WS_OP_PONG, "x", 1, true);
    gw_ws_limits lim = limits(70000, 70000);
    for (size_t cut = 0; cut <= n; cut++) {
        gw_ws_parser p;
        gw_ws_parser_init(&p, &lim);
        gw_ws_event ev;
        int seen = 0;
        const uint8_t *parts[2] = {buf, buf + cut};
        size_t lens[2] = {cut, n - cut};
        for (int k = 0; k < 2; k++) {
            size_t at = 0, used;
            while (at < lens[k]) {
                gw_ws_event_kind kind =
                    gw_ws_parser_feed(&p, parts[k] + at, lens[k] - at, &used, &ev);
                at += used;
                if (kind == GW_WS_EV_NONE)
                    continue;
                assert_int_not_equal(kind, GW_WS_EV_ERROR);
                if (seen == 0) {
                    assert_int_equal(kind, GW_WS_EV_MESSAGE);
                    assert_true(ev.text);
                    assert_int_equal(ev.len, 6);
                    assert_memory_equal(ev.data, "caf\xc3\xa9!", 6);
                } else if (seen == 1) {
                    assert_int_equal(kind, GW_WS_EV_MESSAGE);
                    assert_int_equal(ev.len, sizeof(big));
                    assert_memory_equal(ev.data, big, sizeof(big));
                } else {
                    assert_int_equal(kind, GW_WS_EV_PONG);
                }
                seen++;
            }
        }
        assert_int_equal(seen, 3);
        gw_ws_parser_reset(&p);
    }
}

static void expect_error(const uint8_t *buf, size_t n, gw_ws_limits lim, uint16_t code)
{
    gw_ws_parser p;
    gw_ws_parser_init(&p, &lim);
    gw_ws_event ev;
    size_t at = 0, used;
    gw_ws_event_kind kind = GW_WS_EV_NONE;
    while (at < n) {
        kind = gw_ws_parser_feed(&p, buf + at, n - at, &used, &ev);
        at += used;
        if (kind == GW_WS_EV_ERROR || used == 0)
            break;
    }
    assert_int_equal(kind, GW_WS_EV_ERROR);
    assert_int_equal(ev.code, code);
    gw_ws_parser_reset(&p);
}

static void enforces_control_frame_rules(void **state)
{
    (void)state;
    uint8_t buf[512], payload[126];
    memset(payload, 'p', sizeof(payload));
    gw_ws_limits lim = limits(1024, 1024);
    /* 126 bytes of ping. */
    size_t n = client_frame(buf, true, GW_WS_OP_PING, payload, 126, true);
    expect_error(buf, n, lim, GW_WS_CLOSE_PROTOCOL);
    /* 125 is fine. */
    n = client_frame(buf, true, GW_WS_OP_PING, payload, 125, true);
    gw_ws_parser p;
    gw_ws_parser_init(&p, &lim);
    gw_ws_event ev;
    size_t used;
    assert_int_equal(gw_ws_parser_feed(&p, buf, n, &used, &ev), GW_WS_EV_PING);
    assert_int_equal(ev.len, 125);
    gw_ws_parser_reset(&p);
    /* A fragmented control frame. */
    n = client_frame(buf, false, GW_WS_OP_PONG, "a", 1, true);
    expect_error(buf, n, lim, GW_WS_CLOSE_PROTOCOL);
    /* Reserved bits, unknown opcodes. */
    n = client_frame(buf, true, GW_WS_OP_TEXT, "a", 1, true);
    buf[0] |= 0x40;
    expect_error(buf, n, lim, GW_WS_CLOSE_PROTOCOL);
    n = client_frame(buf, true, 0x3, "a", 1, true);
    expect_error(buf, n, lim, GW_WS_CLOSE_PROTOCOL);
    n = client_frame(buf, true, 0xb, "a", 1, true);
    expect_error(buf, n, lim, GW_WS_CLOSE_PROTOCOL);
}

static void enforces_fragmentation_order(void **state)
{
    (void)state;
    uint8_t buf[256];
    gw_ws_limits lim = limits(1024, 1024);
    /* Continuation with nothing to continue. */
    size_t n = client_frame(buf, true, GW_WS_OP_CONT, "a", 1, true);
    expect_error(buf, n, lim, GW_WS_CLOSE_PROTOCOL);
    /* A new text frame while a message is open. */
    n = client_frame(buf, false, GW_WS_OP_TEXT, "a", 1, true);
    n += client_frame(buf + n, true, GW_WS_OP_TEXT, "b", 1, true);
    expect_error(buf, n, lim, GW_WS_CLOSE_PROTOCOL);
}

static void refuses_lengths_not_in_shortest_form(void **state)
{
    (void)state;
    /* 5 bytes announced with the 16-bit form, then with the 64-bit one. */
    uint8_t a[] = {0x82, 0xfe, 0x00, 0x05, 1, 2, 3, 4, 0, 0, 0, 0, 0};
    expect_error(a, sizeof(a), limits(1024, 1024), GW_WS_CLOSE_PROTOCOL);
    uint8_t b[] = {0x82, 0xff, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4};
    expect_error(b, sizeof(b), limits(1024, 1024), GW_WS_CLOSE_PROTOCOL);
    uint8_t c[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4};
    expect_error(c, sizeof(c), limits(1024, 1024), GW_WS_CLOSE_PROTOCOL);
}

static void enforces_frame_and_message_size_limits(void **state)
{
    (void)state;
    uint8_t payload[200], buf[1024];
    memset(payload, 'x', sizeof(payload));
    /* A frame of 101 bytes against a 100-byte frame limit: refused from its header. */
    size_t n = gw_ws_frame_header(buf, true, GW_WS_OP_BINARY, 101, mask_key);
    expect_error(buf, n, limits(100, 1000), GW_WS_CLOSE_TOO_BIG);
    /* Fragments within the frame limit whose total passes the message limit. */
    n = client_frame(buf, false, GW_WS_OP_BINARY, payload, 100, true);
    n += client_frame(buf + n, false, GW_WS_OP_CONT, payload, 100, true);
    n += client_frame(buf + n, true, GW_WS_OP_CONT, payload, 1, true);
    expect_error(buf, n, limits(100, 200), GW_WS_CLOSE_TOO_BIG);
    /* A 2^62-byte announcement fails at once, without memory for it. */
    uint8_t huge[] = {0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    expect_error(huge, sizeof(huge), limits(1 << 20, 1 << 20), GW_WS_CLOSE_TOO_BIG);
    /* Control frames do not count against the message limit. */
    gw_ws_limits lim = limits(100, 100);
    gw_ws_parser p;
    gw_ws_parser_init(&p, &lim);
    n = client_frame(buf, false, GW_WS_OP_BINARY, payload, 100, true);
    n += client_frame(buf + n, true, GW_WS_OP_PING, payload, 125, true);
    n += client_frame(buf + n, true, GW_WS_OP_CONT, "", 0, true);
    gw_ws_event ev;
    size_t used, at = 0;
    assert_int_equal(gw_ws_parser_feed(&p, buf, n, &used, &ev), GW_WS_EV_PING);
    at += used;
    assert_int_equal(gw_ws_parser_feed(&p, buf + at, n - at, &used, &ev), GW_WS_EV_MESSAGE);
    assert_int_equal(ev.len, 100);
    gw_ws_parser_reset(&p);
}

static void validates_utf8_across_fragments(void **state)
{
    (void)state;
    uint8_t buf[256];
    gw_ws_limits lim = limits(1024, 1024);
    /* A 4-byte sequence (U+1F600) split 1 + 3 over two frames is fine ... */
    gw_ws_parser p;
    gw_ws_parser_init(&p, &lim);
    size_t n = client_frame(buf, false, GW_WS_OP_TEXT, "\xf0", 1, true);
    n += client_frame(buf + n, true, GW_WS_OP_CONT, "\x9f\x98\x80", 3, true);
    gw_ws_event ev;
    size_t used;
    assert_int_equal(gw_ws_parser_feed(&p, buf, n, &used, &ev), GW_WS_EV_MESSAGE);
    assert_int_equal(ev.len, 4);
    gw_ws_parser_reset(&p);
    /* ... an invalid byte fails in the fragment that carries it, before the message
     * ends ... */
    gw_ws_parser_init(&p, &lim);
    n = client_frame(buf, false, GW_WS_OP_TEXT, "ok\xf0\x28", 4, true);
    assert_int_equal(gw_ws_parser_feed(&p, buf, n, &used, &ev), GW_WS_EV_ERROR);
    assert_int_equal(ev.code, GW_WS_CLOSE_BAD_DATA);
    gw_ws_parser_reset(&p);
    /* ... a message that ends inside a sequence fails, a surrogate fails, and binary
     * messages are not checked. */
    n = client_frame(buf, false, GW_WS_OP_TEXT, "a", 1, true);
    n += client_frame(buf + n, true, GW_WS_OP_CONT, "\xe2\x82", 2, true);
    expect_error(buf, n, lim, GW_WS_CLOSE_BAD_DATA);
    n = client_frame(buf, true, GW_WS_OP_TEXT, "\xed\xa0\x80", 3, true);
    expect_error(buf, n, lim, GW_WS_CLOSE_BAD_DATA);
    gw_ws_parser_init(&p, &lim);
    n = client_frame(buf, true, GW_WS_OP_BINARY, "\xed\xa0\x80", 3, true);
    assert_int_equal(gw_ws_parser_feed(&p, buf, n, &used, &ev), GW_WS_EV_MESSAGE);
    gw_ws_parser_reset(&p);
}

static void checks_close_codes_and_reasons(void **state)
{
    (void)state;
    uint8_t buf[256], pl[GW_WS_MAX_CONTROL];
    gw_ws_limits lim = limits(1024, 1024);
    gw_ws_parser p;
    gw_ws_event ev;
    size_t used;
    /* A close with a code and a reason. */
    size_t pn = gw_ws_close_payload(pl, 4000, "bye", 3);
    size_t n = client_frame(buf, true, GW_WS_OP_CLOSE, pl, pn, true);
    gw_ws_parser_init(&p, &lim);
    assert_int_equal(gw_ws_parser_feed(&p, buf, n, &used, &ev), GW_WS_EV_CLOSE);
    assert_int_equal(ev.code, 4000);
    assert_int_equal(ev.len, 3);
    assert_memory_equal(ev.data, "bye", 3);
    gw_ws_parser_reset(&p);
    /* An empty close is 1005. */
    n = client_frame(buf, true, GW_WS_OP_CLOSE, "", 0, true);
    gw_ws_parser_init(&p, &lim);
    assert_int_equal(gw_ws_parser_feed(&p, buf, n, &used, &ev), GW_WS_EV_CLOSE);
    assert_int_equal(ev.code, GW_WS_CLOSE_NO_STATUS);
    gw_ws_parser_reset(&p);
    /* One byte, codes that must not be sent, and a reason that is not UTF-8. */
    n = client_frame(buf, true, GW_WS_OP_CLOSE, "\x03", 1, true);
    expect_error(buf, n, lim, GW_WS_CLOSE_PROTOCOL);
    const uint16_t bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pn = gw_ws_close_payload(pl, bad[i], "", 0);
        n = client_frame(buf, true, GW_WS_OP_CLOSE, pl, pn, true);
        expect_error(buf, n, lim, GW_WS_CLOSE_PROTOCOL);
    }
    pn = gw_ws_close_payload(pl, 1000, "\xff", 1);
    n = client_frame(buf, true, GW_WS_OP_CLOSE, pl, pn, true);
    expect_error(buf, n, lim, GW_WS_CLOSE_BAD_DATA);
    assert_true(gw_ws_close_code_valid(1000));
    assert_true(gw_ws_close_code_valid(1011));
    assert_true(gw_ws_close_code_valid(4999));
}

static void close_payload_cuts_a_long_reason_at_a_code_point(void **state)
{
    (void)state;
    char reason[200];
    /* "é" is 2 bytes: 123 bytes of room ends inside one, so 122 are kept. */
    for (size_t i = 0; i < sizeof(reason); i += 2) {
        reason[i] = (char)0xc3;
        reason[i + 1] = (char)0xa9;
    }
    uint8_t pl[GW_WS_MAX_CONTROL];
    size_t n = gw_ws_close_payload(pl, 1000, reason, sizeof(reason));
    assert_int_equal(n, 2 + 122);
}

static void encodes_headers_in_shortest_form(void **state)
{
    (void)state;
    uint8_t h[GW_WS_MAX_HEADER];
    assert_int_equal(gw_ws_frame_header(h, true, GW_WS_OP_TEXT, 125, NULL), 2);
    assert_int_equal(h[0], 0x81);
    assert_int_equal(h[1], 125);
    assert_int_equal(gw_ws_frame_header(h, true, GW_WS_OP_BINARY, 126, NULL), 4);
    assert_int_equal(h[1], 126);
    assert_int_equal(h[2], 0);
    assert_int_equal(h[3], 126);
    assert_int_equal(gw_ws_frame_header(h, false, GW_WS_OP_BINARY, 65536, NULL), 10);
    assert_int_equal(h[0], 0x02);
    assert_int_equal(h[1], 127);
    assert_int_equal(h[7], 1);
    assert_int_equal(gw_ws_frame_header(h, true, GW_WS_OP_PING, 0, mask_key), 6);
    assert_int_equal(h[1], 0x80);
    assert_memory_equal(h + 2, mask_key, 4);
}

static void releases_a_large_message_buffer_before_the_next_message(void **state)
{
    (void)state;
    static uint8_t buf[70000], payload[65000];
    memset(payload, 'z', sizeof(payload));
    gw_ws_limits lim = limits(100000, 100000);
    gw_ws_parser p;
    gw_ws_parser_init(&p, &lim);
    size_t n = client_frame(buf, true, GW_WS_OP_BINARY, payload, sizeof(payload), true);
    gw_ws_event ev;
    size_t used;
    assert_int_equal(gw_ws_parser_feed(&p, buf, n, &used, &ev), GW_WS_EV_MESSAGE);
    assert_true(gw_ws_parser_memory(&p) >= sizeof(payload));
    n = client_frame(buf, true, GW_WS_OP_BINARY, "a", 1, true);
    assert_int_equal(gw_ws_parser_feed(&p, buf, n, &used, &ev), GW_WS_EV_MESSAGE);
    assert_true(gw_ws_parser_memory(&p) < 4096);
    gw_ws_parser_reset(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_a_masked_text_message),
        cmocka_unit_test(refuses_an_unmasked_client_frame),
        cmocka_unit_test(joins_fragments_with_a_ping_between_them),
        cmocka_unit_test(reads_the_same_whatever_the_read_boundaries),
        cmocka_unit_test(enforces_control_frame_rules),
        cmocka_unit_test(enforces_fragmentation_order),
        cmocka_unit_test(refuses_lengths_not_in_shortest_form),
        cmocka_unit_test(enforces_frame_and_message_size_limits),
        cmocka_unit_test(validates_utf8_across_fragments),
        cmocka_unit_test(checks_close_codes_and_reasons),
        cmocka_unit_test(close_payload_cuts_a_long_reason_at_a_code_point),
        cmocka_unit_test(encodes_headers_in_shortest_form),
        cmocka_unit_test(releases_a_large_message_buffer_before_the_next_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
