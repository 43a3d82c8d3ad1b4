/*
 * test_ws_deflate.c - permessage-deflate (RFC 7692): offers accepted and declined,
 * messages deflated and inflated back, the inflated-size bound, bad DEFLATE data, and
 * compressed messages through the frame parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ws_deflate.h"
#include "ws_frame.h"

static bool offer(const char *text, gw_ws_pmd *pmd, char *answer)
{
    return gw_ws_pmd_negotiate(text, strlen(text), pmd, answer);
}

static void accepts_the_first_valid_offer_and_answers_no_context_takeover(void **state)
{
    (void)state;
    gw_ws_pmd pmd;
    char answer[GW_WS_PMD_ANSWER_MAX];
    assert_true(offer("permessage-deflate; client_max_window_bits", &pmd, answer));
    assert_true(pmd.on);
    assert_int_equal(pmd.server_bits, 15);
    assert_string_equal(answer, "permessage-deflate; server_no_context_takeover; "
                                "client_no_context_takeover");
    assert_true(offer("x-foo; a=1, permessage-deflate; server_max_window_bits=99, "
                      "PerMessage-Deflate ; server_max_window_bits = \"10\" ; "
                      "client_max_window_bits=9",
                      &pmd, answer));
    assert_int_equal(pmd.server_bits, 10);
    assert_non_null(strstr(answer, "server_max_window_bits=10"));
}

static void declines_unknown_repeated_and_invalid_parameters(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "permessage-deflate; foo",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover=x",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=\"10",
        "permessage-deflate;",
        "deflate-frame",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gw_ws_pmd pmd;
        char answer[GW_WS_PMD_ANSWER_MAX];
        assert_false(offer(bad[i], &pmd, answer));
        assert_false(pmd.on);
        assert_string_equal(answer, "");
    }
}

static void deflates_and_inflates_back(void **state)
{
    (void)state;
    gw_ws_deflater *d = gw_ws_deflater_new(15, 6);
    assert_non_null(d);
    uint8_t msg[5000];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)("barista"[i % 7]);
    for (int round = 0; round < 2; round++) { /* no context kept between messages */
        br_buf z = {.max = sizeof(msg)};
        assert_int_equal(gw_ws_deflate(d, msg, sizeof(msg), &z), 0);
        assert_true(z.len < 200);
        br_buf plain = {.max = sizeof(msg)};
        assert_int_equal(gw_ws_inflate(z.data, z.len, &plain), 0);
        assert_int_equal(plain.len, sizeof(msg));
        assert_memory_equal(plain.data, msg, sizeof(msg));
        /* One byte less room than the message: over the bound. */
        br_buf small = {.max = sizeof(msg) - 1};
        assert_int_equal(gw_ws_inflate(z.data, z.len, &small), BR_ELIMIT);
        br_buf_free(&small);
        br_buf_free(&plain);
        br_buf_free(&z);
    }
    /* Random bytes do not shrink: sent as they are. */
    uint32_t x = 12345;
    for (size_t i = 0; i < 64; i++)
        msg[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 24);
    br_buf z = {.max = 64};
    assert_int_equal(gw_ws_deflate(d, msg, 64, &z), BR_EFULL);
    br_buf_free(&z);
    gw_ws_deflater_destroy(&d);
    gw_ws_deflater_destroy(&d);
    assert_null(d);
}

static void refuses_data_that_is_not_deflate(void **state)
{
    (void)state;
    static const uint8_t reserved_block[] = {0xff, 0xff, 0xff};
    br_buf out = {.max = 1024};
    assert_int_equal(gw_ws_inflate(reserved_block, sizeof(reserved_block), &out), BR_EVALUE);
    br_buf_free(&out);
    /* A final empty block followed by more bytes: trailing garbage. */
    static const uint8_t final_then_more[] = {0x03, 0x00, 0x41, 0x42};
    out = (br_buf){.max = 1024};
    assert_int_equal(gw_ws_inflate(final_then_more, sizeof(final_then_more), &out), BR_EVALUE);
    br_buf_free(&out);
    /* An empty message is the empty stored block alone: inflates to nothing. */
    out = (br_buf){.max = 1024};
    assert_int_equal(gw_ws_inflate((const uint8_t *)"\x00", 1, &out), 0);
    assert_int_equal(out.len, 0);
    br_buf_free(&out);
}

static const uint8_t mask_key[4] = {0x11, 0x22, 0x33, 0x44};

/* A masked client frame with RSV1 set as asked. */
static size_t client_frame(uint8_t *out, bool fin, bool rsv1, uint8_t op, const void *pl, size_t n)
{
    size_t h = gw_ws_frame_header(out, fin, op, n, mask_key);
    if (rsv1)
        out[0] |= GW_WS_RSV1;
    memcpy(out + h, pl, n);
    gw_ws_mask(out + h, n, mask_key, 0);
    return h + n;
}

static gw_ws_event_kind parse(bool deflate, uint64_t max, const uint8_t *buf, size_t n,
                              gw_ws_event *ev, br_buf *copy)
{
    gw_ws_limits lim = {
        .max_frame = max, .max_message = max, .require_mask = true, .deflate = deflate};
    gw_ws_parser p;
    gw_ws_parser_init(&p, &lim);
    size_t used;
    gw_ws_event_kind k = gw_ws_parser_feed(&p, buf, n, &used, ev);
    if (k == GW_WS_EV_MESSAGE && copy)
        assert_int_equal(br_buf_append(copy, ev->data, ev->len), 0);
    gw_ws_parser_reset(&p);
    return k;
}

static void parser_inflates_compressed_messages_under_its_limits(void **state)
{
    (void)state;
    gw_ws_deflater *d = gw_ws_deflater_new(15, 6);
    static const char text[] = "caf\xc3\xa9 caf\xc3\xa9 caf\xc3\xa9 caf\xc3\xa9 caf\xc3\xa9";
    br_buf z = {.max = sizeof(text)};
    assert_int_equal(gw_ws_deflate(d, (const uint8_t *)text, sizeof(text) - 1, &z), 0);
    uint8_t buf[4096];
    /* Split into two fragments: RSV1 on the first one only. */
    size_t n = client_frame(buf, false, true, GW_WS_OP_TEXT, z.data, 3);
    n += client_frame(buf + n, true, false, GW_WS_OP_CONT, z.data + 3, z.len - 3);
    gw_ws_event ev;
    br_buf got = {.max = 1024};
    assert_int_equal(parse(true, 1024, buf, n, &ev, &got), GW_WS_EV_MESSAGE);
    assert_true(ev.text);
    assert_int_equal(got.len, sizeof(text) - 1);
    assert_memory_equal(got.data, text, sizeof(text) - 1);
    br_buf_free(&got);
    /* Without the extension, RSV1 is a protocol error. */
    assert_int_equal(parse(false, 1024, buf, n, &ev, NULL), GW_WS_EV_ERROR);
    assert_int_equal(ev.code, GW_WS_CLOSE_PROTOCOL);
    /* RSV1 on a continuation frame, or a control frame: 1002. */
    n = client_frame(buf, false, false, GW_WS_OP_TEXT, "ab", 2);
    n += client_frame(buf + n, true, true, GW_WS_OP_CONT, z.data, z.len);
    assert_int_equal(parse(true, 1024, buf, n, &ev, NULL), GW_WS_EV_ERROR);
    assert_int_equal(ev.code, GW_WS_CLOSE_PROTOCOL);
    n = client_frame(buf, true, true, GW_WS_OP_PING, "", 0);
    assert_int_equal(parse(true, 1024, buf, n, &ev, NULL), GW_WS_EV_ERROR);
    assert_int_equal(ev.code, GW_WS_CLOSE_PROTOCOL);
    /* Inflating past the message limit: 1009. */
    n = client_frame(buf, true, true, GW_WS_OP_TEXT, z.data, z.len);
    assert_int_equal(parse(true, sizeof(text) - 2, buf, n, &ev, NULL), GW_WS_EV_ERROR);
    assert_int_equal(ev.code, GW_WS_CLOSE_TOO_BIG);
    /* Not DEFLATE: 1007. */
    n = client_frame(buf, true, true, GW_WS_OP_BINARY, "\xff\xff", 2);
    assert_int_equal(parse(true, 1024, buf, n, &ev, NULL), GW_WS_EV_ERROR);
    assert_int_equal(ev.code, GW_WS_CLOSE_BAD_DATA);
    /* Valid DEFLATE of invalid UTF-8 in a text message: 1007. */
    br_buf_free(&z);
    z.max = 64;
    static const uint8_t bad_utf8[] = "\xc0\xaf\xc0\xaf\xc0\xaf\xc0\xaf\xc0\xaf\xc0\xaf\xc0\xaf";
    assert_int_equal(gw_ws_deflate(d, bad_utf8, sizeof(bad_utf8) - 1, &z), 0);
    n = client_frame(buf, true, true, GW_WS_OP_TEXT, z.data, z.len);
    assert_int_equal(parse(true, 1024, buf, n, &ev, NULL), GW_WS_EV_ERROR);
    assert_int_equal(ev.code, GW_WS_CLOSE_BAD_DATA);
    br_buf_free(&z);
    gw_ws_deflater_destroy(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_the_first_valid_offer_and_answers_no_context_takeover),
        cmocka_unit_test(declines_unknown_repeated_and_invalid_parameters),
        cmocka_unit_test(deflates_and_inflates_back),
        cmocka_unit_test(refuses_data_that_is_not_deflate),
        cmocka_unit_test(parser_inflates_compressed_messages_under_its_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
